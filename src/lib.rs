//! cashe: a replicated, durable, linearizable key-value database that
//! speaks the Redis protocol.
//!
//! The crate is layered so that everything deciding anything is pure and
//! deterministic (see `docs/architecture.md`):
//! - [`raft`]: the consensus core, a state machine with no IO.
//! - [`kv`]: the replicated key space: Redis 7.0 string and key commands
//!   over an ordered map, deterministic given each command's `now_ms`.
//! - [`frame`]: length + checksum framing shared by the WAL and the peer wire.
//! - [`wal`]: the write-ahead log and snapshots: formats and recovery (pure),
//!   group commit through a small async disk trait, and a simulated disk.
//! - [`node`]: one replica (Raft + KV + requests in flight), the member
//!   directory, server commands and the peer wire; [`turn`]: what every
//!   shell does with a node's output.
//!
//! The production shell (glommio sockets, files and timers) lives behind the
//! default `server` feature; `cargo build --no-default-features` builds the
//! pure core alone, which is what the simulator links.
#![forbid(unsafe_code)]

pub mod frame;
pub mod kv;
pub mod node;
pub mod protocol;
pub mod raft;
pub mod turn;
pub mod wal;

#[cfg(feature = "server")]
pub mod runtime;
