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

use crate::node::{ConnId, Durable, GroupId, NodeMessage, Router, Transport, HOME};
use crate::protocol::Reply;
use crate::raft::Raft;
use crate::raft::{Lsn, NodeId, PlantedBug, Record, Recovered, Snapshot};
use crate::wal::disk::Disk;
use crate::wal::{Layout, Wal, WalError, WalOptions};
use std::collections::BTreeMap;

/// Work done by turns and by the disk, for statistics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TurnStats {
    /// Rounds of output performed.
    pub rounds: u64,
    pub fsyncs: u64,
    pub records: u64,
    /// Bytes written to log segments.
    pub bytes: u64,
    pub snapshots: u64,
}

impl TurnStats {
    /// Adds `other`'s disk work (fsyncs, records, snapshots).
    pub fn add(&mut self, other: &TurnStats) {
        self.fsyncs += other.fsyncs;
        self.records += other.records;
        self.bytes += other.bytes;
        self.snapshots += other.snapshots;
    }
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

/// What a disk turn ([`write`]) made durable, and what the shell passes on
/// to the router.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Written {
    /// Per group, the last `Lsn` now durable (each goes back as
    /// [`Input::Persisted`]).
    pub durable: BTreeMap<GroupId, Lsn>,
    /// The groups whose old entries keep the log above [`SEGMENTS_KEPT`]
    /// segments (`Wal::pinning`): the shell asks each to compact
    /// (`Router::compact`).
    pub compact: Vec<GroupId>,
}

/// The disk's side of a turn: makes `jobs` (each a group's) durable in
/// order, with one write and one fdatasync for all the groups' records
/// between snapshots.
pub async fn write<D: Disk>(
    wal: &mut Wal<D>,
    jobs: Vec<(GroupId, DiskJob)>,
    stats: &mut TurnStats,
) -> Result<Written, WalError> {
    let mut durable = BTreeMap::new();
    let mut pending: BTreeMap<GroupId, Vec<(Lsn, Record)>> = BTreeMap::new();
    let mut jobs = jobs.into_iter().peekable();
    while let Some((group, job)) = jobs.next() {
        match job {
            DiskJob::Append(batch) => {
                match pending.get_mut(&group) {
                    Some(records) => records.extend(batch),
                    None => _ = pending.insert(group, batch),
                }
                if matches!(jobs.peek(), Some((_, DiskJob::Append(_)))) {
                    continue;
                }
                let parts: Vec<(u32, &[(Lsn, Record)])> =
                    pending.iter().map(|(group, records)| (group.0, records.as_slice())).collect();
                let before = wal.bytes_written();
                wal.append_groups(&parts).await?;
                stats.fsyncs += 1;
                stats.bytes += wal.bytes_written() - before;
                for (group, records) in std::mem::take(&mut pending) {
                    stats.records += records.len() as u64;
                    if let Some((last, _)) = records.last() {
                        durable.insert(group, *last);
                    }
                }
            }
            DiskJob::Snapshot(snapshot) => {
                wal.save_group_snapshot(group.0, &snapshot).await?;
                stats.snapshots += 1;
                let (index, bytes) = (snapshot.meta.index.0, snapshot.data.len());
                tracing::info!(group = group.0, index, bytes, "snapshot saved");
            }
        }
    }
    let compact = wal.pinning(SEGMENTS_KEPT).into_iter().map(GroupId).collect();
    Ok(Written { durable, compact })
}

/// A member's logs: the home group's own, and with several shards one log
/// that all key groups of a core share, so that a turn's records of every
/// key group of the core take one durable write. An executor has the logs
/// of its core: core 0 both, another core its key groups' (`open_logs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogId {
    /// The home group's (`Layout::Single`, the data directory's top level:
    /// a cluster of one shard has this log alone, as before shards).
    Home,
    /// The key groups' of the executor's core (`Layout::Groups`, under
    /// `groups/` for core 0, `groups-<core>/` for another: `keys_dir`).
    Keys,
}

impl LogId {
    /// The log holding `group`.
    pub fn of(group: GroupId) -> LogId {
        if group == HOME {
            LogId::Home
        } else {
            LogId::Keys
        }
    }

    /// Where the log of core `core` is under the data directory.
    pub fn subdir(self, core: u32) -> String {
        match self {
            LogId::Home => String::new(),
            LogId::Keys => keys_dir(core),
        }
    }
}

/// The key groups' shared log's directory for core `core`.
pub fn keys_dir(core: u32) -> String {
    if core == 0 {
        KEYS_DIR.to_string()
    } else {
        format!("{KEYS_DIR}-{core}")
    }
}

/// The key groups' shared log's directory under the data directory.
const KEYS_DIR: &str = "groups";

/// How many segments a log keeps before [`write`] names the groups whose
/// old entries hold its oldest one, to compact (`Wal::pinning`).
pub const SEGMENTS_KEPT: usize = 4;

/// A member's logs, opened and recovered.
pub struct Logs<D: Disk> {
    pub wals: Vec<(LogId, Wal<D>)>,
    pub recovered: BTreeMap<GroupId, Recovered>,
    /// A new cluster was founded: the groups were bootstrapped.
    pub bootstrapped: bool,
}

/// Opens (or creates) the logs of core `core` of a member whose groups are
/// on `cores` cores (`node::core_of`), for a cluster of `shards` shards,
/// `disk(subdir)` giving a disk rooted at a directory under the data
/// directory, and recovers the core's groups: core 0 has the home group's
/// log and, with several shards, its key groups'; another core its key
/// groups' only. A founding member that recovered nothing bootstraps every
/// group (`bootstrap_if_new`). A directory of one log per key group
/// (`groups/<k>/`, written before the shared log) is refused by name: this
/// build does not read it.
pub async fn open_logs<D: Disk>(
    disk: impl Fn(&str) -> D,
    options: WalOptions,
    id: NodeId,
    joining: bool,
    shards: u32,
    (core, cores): (u32, u32),
) -> Result<Logs<D>, String> {
    let groups = crate::node::group_ids(shards);
    let of_core = |g: &GroupId| crate::node::core_of(*g, cores) == core;
    let keys: Vec<u32> = groups.iter().filter(|g| **g != HOME && of_core(g)).map(|g| g.0).collect();
    let keys_subdir = LogId::Keys.subdir(core);
    let mut options = options;
    if shards > 1 {
        options.meta_version = crate::wal::format::META_FORMAT_VERSION_GROUPS;
    }
    if core == 0 && shards > 1 {
        // Builds before the shared log wrote `groups/<k>/meta` first of all
        // in each key group's own directory.
        let old = format!("1/{}", crate::wal::format::META_FILE);
        match disk(&keys_subdir).read(&old).await {
            Ok(_) => {
                return Err(format!(
                    "{KEYS_DIR}/{old}: a log of one key group, as builds before the shared log wrote them; \
                     this build keeps every key group in one log ({KEYS_DIR}/wal) and does not read them: \
                     move this data directory away and have the member join again"
                ))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("{KEYS_DIR}/{old}: {e}")),
        }
    }
    let mut wals = Vec::new();
    let mut recovered = BTreeMap::new();
    if core == 0 {
        let (home, home_recovered) =
            Wal::open(disk(&LogId::Home.subdir(0)), options).await.map_err(|e| e.to_string())?;
        wals.push((LogId::Home, home));
        recovered.insert(HOME, home_recovered);
    }
    if !keys.is_empty() {
        let layout = Layout::Groups(keys);
        let (wal, groups) =
            Wal::open_layout(disk(&keys_subdir), options, layout).await.map_err(|e| e.to_string())?;
        // The log syncs its own directory; the entry naming it in the data
        // directory must be durable too before anything in it counts (a
        // lost `groups/` would start the key groups empty).
        let datadir = disk(&LogId::Home.subdir(0));
        datadir.sync_dir("").await.map_err(|e| format!("syncing the data directory: {e}"))?;
        recovered.extend(groups.into_iter().map(|(group, state)| (GroupId(group), state)));
        wals.push((LogId::Keys, wal));
    }
    let mut bootstrapped = false;
    for (log, wal) in &mut wals {
        let mut parts = Vec::new();
        for (group, state) in recovered.iter_mut().filter(|(group, _)| LogId::of(**group) == *log) {
            if let Some(records) = bootstrap_if_new(id, joining, state) {
                parts.push((group.0, records));
            }
        }
        let parts: Vec<(u32, &[(Lsn, Record)])> = parts.iter().map(|(g, r)| (*g, r.as_slice())).collect();
        if !parts.is_empty() {
            wal.append_groups(&parts).await.map_err(|e| e.to_string())?;
            bootstrapped = true;
        }
    }
    Ok(Logs { wals, recovered, bootstrapped })
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
