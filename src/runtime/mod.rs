//! The production shell: the only code that knows glommio, sockets, files
//! and the wall clock.
//!
//! Everything that decides anything lives in the pure core (`raft`, `kv`,
//! `node`, `protocol`, the `wal` formats); this module performs the IO
//! those layers ask for, on one glommio executor (DESIGN §8):
//! - [`server`]: start-up (recover; bootstrap a new cluster or join one),
//!   the listeners, the ticker, and the loop that feeds events to the node
//!   and performs its output with group commit;
//! - [`client`]: one task per Redis connection (parse, hand over, reply);
//! - [`peer`]: the peer wire, outbound links with reconnect and backoff,
//!   inbound readers;
//! - [`join`]: the `CLUSTER JOIN` handshake of a new node;
//! - [`tls`]: TLS for clients, mutual TLS between peers, certificates
//!   bound to member ids;
//! - [`lock`]: the data directory's `LOCK`, one process per directory;
//! - [`http`]: the operator's port (`--metrics-addr`): `/metrics`,
//!   `/health`, `/ready`;
//! - [`readings`]: what the shell measures (disk, latencies, memory, CPU)
//!   for INFO and `/metrics`;
//! - [`offline`]: `cashe check` and `cashe dump` on a stopped node's
//!   data directory;
//! - [`mailbox`]: the queue between tasks;
//! - [`disk`]: [`disk::GlommioDisk`], the production implementation of the
//!   storage seam `wal::disk::Disk`.
//!
//! No branch here may decide anything about Raft or the key-value state: if
//! one does, it belongs in the core.

pub mod backup;
pub mod client;
pub mod cores;
pub mod disk;
pub mod group_cores;
pub mod http;
pub mod join;
pub mod lock;
pub mod mailbox;
pub mod offline;
pub mod peer;
pub mod readings;
pub mod server;
pub mod tls;

pub use server::{serve, AdoptListener, ServerConfig, Stopped};

/// A counter for what strangers can make happen at will (refused
/// connections): log the first, then every power of two, so that a
/// scanner cannot fill the disk with log lines.
pub(crate) struct Sparse(std::cell::Cell<u64>);

impl Sparse {
    pub(crate) const fn new() -> Sparse {
        Sparse(std::cell::Cell::new(0))
    }

    /// Counts one; `Some(count)` when this one should be logged.
    pub(crate) fn hit(&self) -> Option<u64> {
        let count = self.0.get() + 1;
        self.0.set(count);
        count.is_power_of_two().then_some(count)
    }
}
