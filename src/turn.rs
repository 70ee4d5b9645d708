//! One turn of a shell: what the production runtime and the simulator both
//! do with a node's output, so the simulator tests the same sequence.
//!
//! Until the node has nothing more to say: take its output; hand every
//! message to `send` (they may leave before the fsync: the core holds back
//! whatever promises durability); hand every reply to `reply` (each is
//! already backed by durable state); write all records of the output with
//! one write and one fdatasync, then report them `persisted`; save a
//! compaction snapshot if there is one. An error from the WAL is fatal: the
//! caller stops the node.

use crate::node::{ConnId, Node, NodeMessage};
use crate::protocol::Reply;
use crate::raft::Raft;
use crate::raft::{Lsn, NodeId, PlantedBug, Record, Recovered};
use crate::wal::disk::Disk;
use crate::wal::{Wal, WalError};

/// Work done by turns, for statistics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TurnStats {
    /// Rounds of output performed.
    pub rounds: u64,
    pub fsyncs: u64,
    pub records: u64,
    pub snapshots: u64,
}

/// Performs the node's output until it is idle.
pub async fn drain<D: Disk>(
    node: &mut Node,
    wal: &mut Wal<D>,
    mut send: impl FnMut(NodeId, NodeMessage),
    mut reply: impl FnMut(ConnId, Reply),
    stats: &mut TurnStats,
) -> Result<(), WalError> {
    let ack_early = node.raft().config().planted_bug.active(PlantedBug::AckBeforeFsync);
    loop {
        let output = node.take_output();
        let idle = output.persist.is_empty()
            && output.send.is_empty()
            && output.replies.is_empty()
            && output.snapshot.is_none();
        if idle {
            return Ok(());
        }
        stats.rounds += 1;
        for (to, message) in output.send {
            send(to, message);
        }
        for (conn, answer) in output.replies {
            reply(conn, answer);
        }
        let mut records = output.persist;
        let mut snapshot = output.snapshot;
        if let Some((last, _)) = records.last() {
            let last = *last;
            if ack_early {
                // The planted bug: report durable, and let out what that
                // releases (acknowledgements, replies), before the fsync.
                node.persisted(last);
                let early = node.take_output();
                for (to, message) in early.send {
                    send(to, message);
                }
                for (conn, answer) in early.replies {
                    reply(conn, answer);
                }
                records.extend(early.persist);
                snapshot = early.snapshot.or(snapshot);
            }
            wal.append(&records).await?;
            stats.fsyncs += 1;
            stats.records += records.len() as u64;
            if let Some((last, _)) = records.last() {
                node.persisted(*last);
            }
        }
        if let Some(snapshot) = snapshot {
            wal.save_snapshot(&snapshot).await?;
            stats.snapshots += 1;
            tracing::info!(index = snapshot.meta.index.0, bytes = snapshot.data.len(), "snapshot saved");
        }
    }
}

/// What a shell hands the node: everything its tasks saw since the last
/// turn, fed in arrival order by [`feed`].
#[derive(Debug)]
pub enum Input {
    Opened(ConnId),
    Client { conn: ConnId, args: Vec<Vec<u8>> },
    Closed(ConnId),
    Peer { from: NodeId, message: NodeMessage },
    Tick,
}

pub fn feed(node: &mut Node, input: Input, now_ms: u64) {
    match input {
        Input::Opened(conn) => node.connected(conn, now_ms),
        Input::Client { conn, args } => node.client(conn, args, now_ms),
        Input::Closed(conn) => node.disconnected(conn),
        Input::Peer { from, message } => node.step(from, message),
        Input::Tick => node.tick(now_ms),
    }
}

/// Start-up of a new cluster: the founding member (number 1, not joining)
/// that recovered nothing becomes the only voter. Returns the records the
/// shell must make durable before it builds the node; `recovered` becomes
/// the bootstrap state. A bootstrap a crash interrupted before its records
/// were durable simply happens again.
pub fn bootstrap_if_new(id: NodeId, joining: bool, recovered: &mut Recovered) -> Option<Vec<(Lsn, Record)>> {
    if id != crate::node::FOUNDER || joining || *recovered != Recovered::default() {
        return None;
    }
    *recovered = Raft::bootstrap([id]);
    let entries = recovered.entries.iter().map(|e| Record::Entry(e.clone()));
    let records = entries.chain([Record::HardState(recovered.hard_state)]);
    Some(records.enumerate().map(|(i, r)| (Lsn(i as u64 + 1), r)).collect())
}
