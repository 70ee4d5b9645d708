//! One turn of a shell: what the production runtime and the simulator both
//! do with a node's output, so the simulator tests the same sequence.
//!
//! The loop and the disk run side by side. [`drain`] takes the node's output
//! until it has nothing more to say: every message goes to `send` (they may
//! leave before the fsync: the core holds back whatever promises
//! durability), every reply to `reply` (each is already backed by durable
//! state), and every record and compaction snapshot, in order, to `disk` as
//! a [`DiskJob`]. The loop does not wait for the disk: while one fsync runs
//! it goes on taking requests and replicating, and whatever queued up in the
//! meantime is the next group commit. The disk side ([`write`]) makes a
//! batch of jobs durable in order, with one `Wal::append` (one write and
//! one sync) for all the records between snapshots, and the shell feeds the last `Lsn` back
//! as [`Input::Persisted`]. An error from the WAL is fatal: the caller
//! stops the node.

use crate::node::{ConnId, Durable, GroupId, NodeMessage, Router, Transport};
use crate::protocol::Reply;
use crate::raft::Raft;
use crate::raft::{Lsn, NodeId, PlantedBug, Record, Recovered, Snapshot};
use crate::wal::disk::Disk;
use crate::wal::{Wal, WalError};

/// Work done by turns and by the disk, for statistics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TurnStats {
    /// Rounds of output performed.
    pub rounds: u64,
    pub fsyncs: u64,
    pub records: u64,
    pub snapshots: u64,
}

/// Something the node handed out to make durable, in the node's order.
#[derive(Debug)]
pub enum DiskJob {
    /// Records to append; the last one's `Lsn` goes back as `persisted`.
    Append(Vec<(Lsn, Record)>),
    /// A compaction snapshot to store.
    Snapshot(Snapshot),
}

/// Performs the router's output until it is idle, handing durable work to
/// `disk` (per group) without waiting for it.
pub fn drain(
    router: &mut Router,
    now_ms: u64,
    mut send: impl FnMut(NodeId, GroupId, NodeMessage),
    mut reply: impl FnMut(ConnId, Reply),
    mut disk: impl FnMut(GroupId, DiskJob),
    stats: &mut TurnStats,
) {
    let ack_early = router.home().raft().config().planted_bug.active(PlantedBug::AckBeforeFsync);
    loop {
        let output = router.take_output(now_ms);
        if output.is_empty() {
            return;
        }
        stats.rounds += 1;
        for (to, group, message) in output.send {
            send(to, group, message);
        }
        for (conn, answer) in output.replies {
            reply(conn, answer);
        }
        for (group, durable) in output.durable {
            match durable {
                Durable::Records(records) => {
                    let Some((last, _)) = records.last() else { continue };
                    let last = *last;
                    disk(group, DiskJob::Append(records));
                    if ack_early {
                        // The planted bug: report durable, and let out what
                        // that releases (acknowledgements, replies), before
                        // the fsync.
                        router.persisted(group, last);
                    }
                }
                Durable::Snapshot(snapshot) => disk(group, DiskJob::Snapshot(snapshot)),
            }
        }
    }
}

/// The disk's side of a turn: makes `jobs` durable in order, one write and
/// one fdatasync for the records between snapshots. Returns the last `Lsn`
/// now durable, if the jobs held records.
pub async fn write<D: Disk>(
    wal: &mut Wal<D>,
    jobs: Vec<DiskJob>,
    stats: &mut TurnStats,
) -> Result<Option<Lsn>, WalError> {
    let mut records = Vec::new();
    let mut durable = None;
    let mut jobs = jobs.into_iter().peekable();
    while let Some(job) = jobs.next() {
        match job {
            DiskJob::Append(batch) => {
                if records.is_empty() {
                    records = batch;
                } else {
                    records.extend(batch);
                }
                if matches!(jobs.peek(), Some(DiskJob::Append(_))) {
                    continue;
                }
                durable = wal.append(&records).await?.or(durable);
                stats.fsyncs += 1;
                stats.records += records.len() as u64;
                records.clear();
            }
            DiskJob::Snapshot(snapshot) => {
                wal.save_snapshot(&snapshot).await?;
                stats.snapshots += 1;
                tracing::info!(index = snapshot.meta.index.0, bytes = snapshot.data.len(), "snapshot saved");
            }
        }
    }
    Ok(durable)
}

/// What a shell hands the node: everything its tasks saw since the last
/// turn, fed in arrival order by [`feed`].
#[derive(Debug)]
pub enum Input {
    /// A client connection opened, plain or TLS.
    Opened(ConnId, Transport),
    Client {
        conn: ConnId,
        args: Vec<Vec<u8>>,
    },
    Closed(ConnId),
    Peer {
        from: NodeId,
        group: GroupId,
        message: NodeMessage,
    },
    Tick,
    /// A group's disk made every record through this `Lsn` durable.
    Persisted(GroupId, Lsn),
}

pub fn feed(router: &mut Router, input: Input, now_ms: u64) {
    match input {
        Input::Opened(conn, transport) => router.connected(conn, transport, now_ms),
        Input::Client { conn, args } => router.client(conn, args, now_ms),
        Input::Closed(conn) => router.disconnected(conn),
        Input::Peer { from, group, message } => router.step(from, group, message),
        Input::Tick => router.tick(now_ms),
        Input::Persisted(group, lsn) => router.persisted(group, lsn),
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
