//! The production shell: the only code that knows glommio.
//!
//! Everything that decides anything lives in the pure core (`raft`, `wal`
//! codecs, later `kv`, `node`, `protocol`); this module only performs the IO
//! those layers ask for, on one glommio executor (DESIGN §8). Today it holds
//! the disk: [`disk::GlommioDisk`], the production implementation of the
//! storage seam `wal::disk::Disk` (the simulator's stand-in is
//! `wal::sim_disk::SimDisk`). The server loop — listeners, peer connections,
//! group-commit writer, ticker — comes later. No branch here may decide
//! anything about Raft or the key-value state: if one does, it belongs in the
//! core.

pub mod disk;
