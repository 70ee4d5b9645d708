//! Several Raft groups behind one set of client connections: issue 16's
//! `Router` above `Replica`s (each replica a [`Node`]). Pure and
//! deterministic, like the nodes it drives; the server and the simulator
//! drive a router, as they drove one node.
//!
//! **Groups.** Group 0 (`HOME`) is the one Raft group of today: the member
//! directory, and every command without keys. With `shards == 1` it holds
//! the key space too, and the router passes every command to it, so one
//! router with one shard is exactly today's node. With `shards == S > 1`
//! the key space is in groups 1 to S, group `1 + slot × S / 16384` holding
//! a key of slot `slot` (contiguous slot ranges, fixed when the cluster is
//! made, so two keys that share a group always will). Each group is a full
//! [`Node`]: its own Raft, store, requests in flight, and a session per
//! connection; forwarding to a group's leader is the node's, as today.
//!
//! **Routes.** A command with keys goes to its keys' group. One whose keys
//! are in several groups gets Redis's `-CROSSSLOT`, unless each of its keys
//! stands alone (MGET, DEL, UNLINK, EXISTS) and the connection does
//! not route by slot itself: it is then split, each group given the
//! command with its own keys, and the answers put back together (values in
//! the keys' order, counts added up); each part is atomic in its group, the
//! whole is not (as a cluster client's non-atomic MGET). Commands that set
//! up a connection (HELLO, AUTH, SELECT, READONLY,
//! READWRITE, CLIENT SETNAME/SETINFO) go to every group, so each group's
//! session speaks the same protocol as the same user; the client gets the
//! home group's answer. DBSIZE, KEYS, FLUSHALL, FLUSHDB and RANDOMKEY go to
//! the key groups this member leads, as a Redis Cluster master answers them
//! for its own slots (a cluster client asks every master and adds up; a
//! plain client through one node sees that node's share, as in Redis
//! Cluster), and their answers are merged (a sum, a concatenation, OK when
//! all are, one of the keys found, the groups taken in turn).
//! SCAN does the same over the groups this member leads, one after the
//! other (the cursor carries the group's number in its top 16 bits and the
//! group's own cursor below). Everything else without keys goes home.
//!
//! **Transactions** with several shards run in one group. MULTI and the
//! commands after it are queued at the home group, which answers QUEUED or
//! its error as always, while the router checks that every queued keyed
//! command is in the transaction's group (that of its WATCHes, else of its
//! first keyed command): one elsewhere gets `-CROSSSLOT` and dooms the
//! transaction. At EXEC the router drops the home group's queue (DISCARD,
//! answer dropped) and sends MULTI, the queued commands and EXEC to the
//! transaction's group, whose EXEC answers the client; a doomed
//! transaction, or one without keys, is the home group's EXEC to answer.
//! WATCH goes to its keys' group (one group per connection until EXEC,
//! DISCARD or UNWATCH), so that group's EXEC sees it. The commands the
//! router sends on its own behalf have their answers dropped.
//!
//! **Order.** A connection's commands take effect in the order sent and
//! its replies leave in that order, across groups: the router starts a
//! command only when everything of the connection in flight is in the
//! same group (whose node keeps order within the group, as today), or
//! nothing is; a command for every group starts alone. Replies come back
//! from each group in its session's order and leave in sequence order.

use super::server::{command_name, CommandName, CommandStats, RouterInfo};
use super::slots::{Shard, ShardViews};
use super::{placement, ConnId, Directory, Node, NodeMessage, Output, Transport};
use crate::kv::slot::{self, key_slot, SLOTS};
use crate::kv::{self};
use crate::protocol::Reply;
use crate::raft::{Index, Lsn, NodeId, Record, Snapshot, Term};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

mod observe;
pub use observe::{GroupCounters, GroupState};

/// A Raft group of the cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct GroupId(pub u32);

/// The directory's group, and the key space's with one shard.
pub const HOME: GroupId = GroupId(0);

/// The groups of a cluster of `shards` shards: the home group alone with
/// one, else the home group and key groups 1 to `shards`.
pub fn group_ids(shards: u32) -> Vec<GroupId> {
    if shards <= 1 {
        vec![HOME]
    } else {
        (0..=shards).map(GroupId).collect()
    }
}

const CROSSSLOT: &str = "CROSSSLOT Keys in request don't hash to the same slot";

/// Where a SCAN cursor keeps its group (`Router::route_scan`): a group's own
/// cursor (a key's creation number) stays below.
const SCAN_GROUP_SHIFT: u32 = 48;

/// Where a command goes.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Route {
    Group(GroupId),
    /// EXEC of a transaction queued at the home group: run in its keys'
    /// group (MULTI, the commands, EXEC), the home group's queue discarded.
    Exec,
    /// DISCARD of such a transaction: at the home group, and the watches
    /// in the watched group dropped.
    Discard,
    /// SCAN of one key group with its own cursor; the cursor answered
    /// names the group, and moves to `next` (the next key group this
    /// member leads) when the group is done; `cursor` is the group's own.
    Scan {
        group: GroupId,
        next: Option<GroupId>,
        cursor: u64,
    },
    /// To every group; the home group's answer is the client's.
    Every,
    /// A command of keys that stand alone, over several groups: each group
    /// gets the command with its own keys (`parts`: the group and the
    /// positions of its keys among the `keys`), and the answers are put
    /// back together. Each part is atomic in its group, the whole is not.
    Split {
        kind: SplitKind,
        keys: usize,
        parts: Vec<(GroupId, Vec<usize>)>,
    },
    /// To every group that holds keys; the answers merged.
    Merge(Merge),
    /// Answered here, at its turn.
    Refuse(Reply),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SplitKind {
    /// MGET: each part's values go back to their keys' positions.
    Values,
    /// DEL, UNLINK, EXISTS: the parts' counts added up.
    Sum,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Merge {
    /// DBSIZE: the sum of the integers (0 for no group).
    Sum,
    /// KEYS: the arrays, one after the other.
    Concat,
    /// FLUSHALL, FLUSHDB: OK if every group said OK, else the first error.
    AllOk,
    /// RANDOMKEY: one of the groups' keys (nil if none has one), the
    /// group taken in turn (`Router::picks`), so that every group's keys
    /// come up.
    AnyKey(u64),
}

/// Where a command's keys are (`Router::key_groups_of`).
enum KeyGroups {
    /// No keys (or not a command).
    None,
    One(GroupId),
    Several,
}

/// A command started and not answered yet.
#[derive(Debug)]
struct InFlight {
    /// The client's command's number; `None` for a command the router
    /// sends on its own behalf (its answer is dropped).
    seq: Option<u64>,
    route: Route,
    /// Answers so far, by group.
    answers: BTreeMap<GroupId, Reply>,
    /// Groups asked.
    asked: Vec<GroupId>,
    /// The member a single group's command went to when this member holds
    /// no replica of the group (`Router::via`); `None`: this member's own.
    via: Option<NodeId>,
    /// Per group asked at another member, the `Proxy` number: its answer
    /// is matched by number (a lost one times out alone; the others'
    /// answers still find their own commands).
    proxies: BTreeMap<GroupId, u64>,
}

/// One connection's commands, in order.
#[derive(Debug, Default)]
struct Line {
    next_seq: u64,
    /// Commands not started yet; the head's route once decided (when it
    /// reaches the head, so that a login before it has taken effect).
    waiting: VecDeque<(u64, Option<Route>, Vec<Vec<u8>>)>,
    /// Started, in start order (= sequence order).
    in_flight: VecDeque<InFlight>,
    /// Finished replies waiting for an earlier one.
    ready: BTreeMap<u64, Reply>,
    /// The next sequence number to release.
    released: u64,
    /// The key group this connection's WATCHes are in, until EXEC,
    /// DISCARD or UNWATCH (with several shards).
    watch_group: Option<GroupId>,
    /// Where the WATCHes went, once one did (`Router::via`): the
    /// transaction's EXEC, and an UNWATCH, must reach that same session.
    watch_via: Option<Option<NodeId>>,
    /// With several shards, the commands not answered yet, in order, as
    /// commandstats names them (`None`: unknown), for `Router::stats`.
    unanswered: VecDeque<Option<CommandName>>,
    /// What set the connection up (`Route::Every` commands: the last of
    /// each kind, in order), replayed first on a member that runs its
    /// commands for a group held elsewhere.
    setup: Vec<Vec<Vec<u8>>>,
    /// Per group held elsewhere, the member its commands went to last.
    remote: BTreeMap<GroupId, NodeId>,
    /// Per group, the member a command timed out at (`expire_proxied`), the
    /// newest such command's proxy number, and when (ms): until that member
    /// answers one at least as new, it may still run them, so the
    /// connection's later commands for the group go there too (after them,
    /// in the same stand-in's order), never to another place they could
    /// overtake them at. Unless the member stays silent (no beat) for
    /// `UNSETTLED_SILENCE_MS`: a peer link closes after
    /// `wire::IDLE_CLOSE_MS` without a frame, dropping what it held, so by
    /// then nothing sent before can still arrive (a member that left, or
    /// died, would otherwise hold the connection's commands forever).
    unsettled: BTreeMap<GroupId, (NodeId, u64, u64)>,
    /// Per group and member its commands went to, the next `Proxy`'s
    /// `seq` (and the `Stand`s to close).
    stands_at: BTreeMap<(GroupId, NodeId), u64>,
}

/// Commands of a connection sent to another member in one `Proxy`, not
/// answered yet (`Router::proxied`).
#[derive(Debug)]
struct Proxied {
    conn: ConnId,
    group: GroupId,
    member: NodeId,
    /// Ticks left before they time out.
    ticks: u32,
    /// Whether an answer other than `-TIMEOUT` says the member's session
    /// of the connection has settled every earlier command: a client's
    /// command does (a read there waits for an earlier write of unknown
    /// outcome, `Node::pump`'s barrier; a write is forwarded behind it), an
    /// UNWATCH the router sends of its own does not (it is answered there
    /// at once).
    settles: bool,
}

/// A connection standing for another member's client connection, for
/// commands of one group this member holds and that one does not
/// (`NodeMessage::Proxy`).
#[derive(Debug)]
struct Stand {
    /// Its connection here.
    conn: ConnId,
    /// The setup it ran.
    setup: Vec<Vec<Vec<u8>>>,
    /// Per command given to the group, in order: the proxy number to
    /// answer, or `None` for a setup command (its answer is dropped).
    pending: VecDeque<Option<u64>>,
    /// The `seq` the next `Proxy` must carry.
    next_seq: u64,
}

/// Connections standing in for other members' start here (`Stand`),
/// far above any the shells number.
const STAND_CONN_BASE: u64 = 1 << 62;

/// How a member refuses a `Proxy` for a group it holds no replica of.
const NO_REPLICA: &str = "this member holds no replica";

/// How long a member a command timed out at must stay silent before the
/// connection's commands for its group may go elsewhere (`Line::unsettled`):
/// twice the time after which a peer link without a frame closes.
const UNSETTLED_SILENCE_MS: u64 = 2 * super::wire::IDLE_CLOSE_MS;

/// The connection `Router::misroute` uses: below the stand-ins', above any
/// the shells number; its answers go nowhere.
const MISROUTED_CONN: ConnId = ConnId(STAND_CONN_BASE - 1);

/// What one group hands the shell to make durable, in the group's order.
#[derive(Debug)]
pub enum Durable {
    Records(Vec<(Lsn, Record)>),
    /// A compaction snapshot, after the records handed out before it.
    Snapshot(Snapshot),
}

/// What the shell must do, each item tagged with its group.
#[derive(Debug, Default)]
pub struct RouterOutput {
    pub durable: Vec<(GroupId, Durable)>,
    pub send: Vec<(NodeId, GroupId, NodeMessage)>,
    pub replies: Vec<(ConnId, Reply)>,
}

impl RouterOutput {
    pub fn is_empty(&self) -> bool {
        self.durable.is_empty() && self.send.is_empty() && self.replies.is_empty()
    }
}

/// Ticks between two looks at how key groups' leaders are spread.
const BALANCE_TICKS: u64 = 50;

/// Leadership transfers one look may start (the rate limit of spreading:
/// 1,024 groups started on one member spread over three in about 20 s).
const BALANCE_TRANSFERS_MAX: usize = 16;

/// Ticks between two sweeps, which tick every group, dormant or not: a
/// safety net (a dormant group has nothing to do by definition, and what
/// can give it something wakes it: input, a member's silence, an expiry
/// alarm, a directory change).
const SWEEP_TICKS: u64 = 500;

/// A member's core's last beat (`Router::on_beat`).
#[derive(Debug, Default)]
struct Beat {
    /// The router tick it came at.
    tick: u64,
    /// The groups it named (of this router's core).
    groups: BTreeSet<GroupId>,
    /// The key groups it said it leads.
    leads: BTreeSet<GroupId>,
    /// The member's clock (ms) when it came.
    at_ms: u64,
}

/// Which of a member's `cores` runs `group`: the home group core 0, key
/// group `g` core `(g - 1) % cores` (so that the groups, and with them
/// their leaders, spread over the cores).
pub fn core_of(group: GroupId, cores: u32) -> u32 {
    if group == HOME || cores <= 1 {
        0
    } else {
        (group.0 - 1) % cores
    }
}

/// Which core of a member of `cores` cores takes `message` for `group`
/// sent to it (by another member, or by one of its own cores): `None` for
/// every core (a beat: each core takes the lines of its groups); a proxy's
/// answer goes to core 0, where the client connections are; anything else
/// to the group's core.
pub fn core_for_message(group: GroupId, message: &NodeMessage, cores: u32) -> Option<u32> {
    match message {
        NodeMessage::Beat { .. } => None,
        NodeMessage::ProxyReply { .. } => Some(0),
        _ => Some(core_of(group, cores)),
    }
}

/// The most cores a member may say it runs (a bound on what a beat makes
/// the balancer count).
pub const CORES_MAX: u32 = 1024;

/// What a core other than 0 must know of the home group, which runs on
/// core 0 (`Router::home_view`, `set_home_view`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HomeView {
    pub directory: Directory,
    /// The home group knows a leader and its membership holds this member.
    pub leader_known: bool,
    /// The home group's committed voters.
    pub voters: BTreeSet<NodeId>,
    /// The home group knows this member was removed.
    pub removed: bool,
}

/// What a core other than 0 tells core 0 about its groups, for INFO
/// (`Router::report`, `set_report`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CoreReport {
    /// Per group of the core: its state, and its keys if the member holds it.
    pub groups: BTreeMap<GroupId, (GroupState, Option<kv::KeyCounts>)>,
    /// Groups awake and led quietly (`Router::activity`).
    pub awake: usize,
    pub quiet: usize,
    /// Peer messages the core handed out and took in.
    pub sent: u64,
    pub received: u64,
}

impl Beat {
    /// Whether it is the last beat due at tick `ticks` or the one before
    /// (one may be lost, and the next is not overdue yet), beats coming
    /// every `beat_ticks`.
    fn is_current(&self, ticks: u64, beat_ticks: u64) -> bool {
        self.tick + beat_ticks * 2 >= ticks
    }
}

/// The groups of one member and the connections it serves.
pub struct Router {
    groups: BTreeMap<GroupId, Node>,
    shards: u32,
    ticks: u64,
    /// Ticks since the home group last knew a leader.
    home_leaderless_ticks: u64,
    /// The member's clock: the largest `now_ms` any input brought. Every
    /// group is brought to it before it acts, so a member stamps and reads
    /// with one clock whichever group does it.
    now_ms: u64,
    lines: BTreeMap<ConnId, Line>,
    output: RouterOutput,
    /// RANDOMKEYs routed, to take the groups in turn (`Merge::AnyKey`).
    picks: u64,
    /// Peer messages handed out and taken in, for INFO.
    messages_sent: u64,
    messages_received: u64,
    /// Groups given input since their output was last taken: only these
    /// (and the home group) are asked for output.
    touched: BTreeSet<GroupId>,
    /// With several shards, what commandstats, errorstats and INFO's totals
    /// count: the commands clients sent and the replies they got, as a
    /// node of one group counts them (the groups' own nodes also count the
    /// commands the router sends on its own behalf).
    stats: CommandStats,
    /// Groups ticked on every tick; the others are dormant (`dormant`), and
    /// join again on input, an alarm, or a sweep.
    awake: BTreeSet<GroupId>,
    /// The first group found to have met state it cannot trust (`fatal`),
    /// looked for among the groups whose output is taken.
    fatal_group: Option<GroupId>,
    /// Each member's cores' last beats: when, and the groups they named.
    beats: BTreeMap<(NodeId, u32), Beat>,
    /// This router's core among its member's, and how many the member
    /// runs (`core_of`): it runs the groups of its core, and treats the
    /// others as held elsewhere (those its member holds are at `me`).
    core: u32,
    cores: u32,
    /// On a core other than 0, the home group as core 0 last told it.
    home_view: Option<HomeView>,
    /// On core 0, the other cores' last reports.
    reports: BTreeMap<u32, CoreReport>,
    /// Each member's cores, as its beats say (`balance_leaders`).
    member_cores: BTreeMap<NodeId, u32>,
    /// Dormant groups this member leads whose next key expires then (ms).
    expiry_alarms: BTreeSet<(u64, GroupId)>,
    /// The home group's directory at the last tick: a change makes the next
    /// tick a sweep, so that every key group's leader follows it at once.
    directory: Directory,
    /// Members each key group is placed on (`NodeConfig::replicas`).
    replicas: u32,
    /// Per key group, the leader the latest beat named, with its term
    /// (`NodeMessage::Beat::leads`): for groups this member does not hold.
    leaders: BTreeMap<GroupId, (Term, NodeId)>,
    /// Commands sent to another member (`Proxy`) and not answered yet.
    proxied: BTreeMap<u64, Proxied>,
    next_proxy: u64,
    /// Added to a connection's number in `Proxy` messages: drawn at boot,
    /// so that a connection of this run is never taken, where it runs,
    /// for one of a previous run that had the same number (its stand-in
    /// connection holds that one's session: MULTI, WATCH, SELECT).
    proxy_conn_base: u64,
    /// Connections standing in for other members' (`Stand`), by the member,
    /// its connection and the group; and the way back.
    stands: BTreeMap<(NodeId, u64, GroupId), Stand>,
    stand_of: BTreeMap<ConnId, (NodeId, u64, GroupId)>,
    next_stand: u64,
    /// Per member, the `boot` of its latest `Proxy`.
    stand_boots: BTreeMap<NodeId, u64>,
    /// Per group of this core, what happened to it (`observe`).
    counters: BTreeMap<GroupId, GroupCounters>,
    /// Readiness probes waiting, and those answered (`probe_readiness`).
    probes: observe::Probes,
    probes_done: Vec<(u64, Result<(), String>)>,
}

impl Router {
    /// A router over `groups`: `HOME` and, with `shards > 1`, groups 1 to
    /// `shards`. Panics if one is missing (a bug of the caller).
    pub fn new(shards: u32, groups: BTreeMap<GroupId, Node>) -> Router {
        let shards = shards.max(1);
        let groups_at_start: BTreeSet<GroupId> = groups.keys().copied().collect();
        assert!(
            groups.keys().copied().eq(group_ids(shards)),
            "a router over {shards} shards needs groups {:?}",
            group_ids(shards)
        );
        let replicas = groups[&HOME].config().replicas;
        let nonce = groups[&HOME].boot_nonce();
        Router {
            groups,
            shards,
            replicas,
            leaders: BTreeMap::new(),
            proxied: BTreeMap::new(),
            // Proxy numbers, too, never repeat a previous run's.
            next_proxy: nonce >> 1,
            proxy_conn_base: nonce.rotate_left(32),
            stands: BTreeMap::new(),
            stand_of: BTreeMap::new(),
            stand_boots: BTreeMap::new(),
            next_stand: 0,
            ticks: 0,
            home_leaderless_ticks: 0,
            now_ms: 0,
            lines: BTreeMap::new(),
            output: RouterOutput::default(),
            picks: 0,
            messages_sent: 0,
            messages_received: 0,
            touched: BTreeSet::new(),
            stats: CommandStats::default(),
            awake: groups_at_start,
            fatal_group: None,
            beats: BTreeMap::new(),
            core: 0,
            cores: 1,
            home_view: None,
            reports: BTreeMap::new(),
            member_cores: BTreeMap::new(),
            expiry_alarms: BTreeSet::new(),
            directory: Directory::default(),
            counters: BTreeMap::new(),
            probes: BTreeMap::new(),
            probes_done: Vec::new(),
        }
    }

    /// This router as core `core` of a member running `cores` (see the
    /// field): it ticks and runs only its own core's groups.
    pub fn on_core(mut self, core: u32, cores: u32) -> Router {
        self.cores = cores.clamp(1, CORES_MAX);
        self.core = core.min(self.cores - 1);
        let me = self.home().raft().id();
        self.member_cores.insert(me, self.cores);
        let mine: BTreeSet<GroupId> = self.groups.keys().copied().filter(|g| self.mine(*g)).collect();
        self.awake = mine;
        self
    }

    /// Whether `group` runs on this router's core.
    pub fn mine(&self, group: GroupId) -> bool {
        core_of(group, self.cores) == self.core
    }

    /// This member's cores.
    pub fn cores(&self) -> u32 {
        self.cores
    }

    /// What the other cores must know of the home group (core 0's).
    pub fn home_view(&self) -> HomeView {
        let home = self.home();
        let raft = home.raft();
        HomeView {
            directory: home.directory().clone(),
            leader_known: raft.leader().is_some() && raft.membership().contains(raft.id()),
            voters: raft.committed_membership().voters.clone(),
            removed: home.is_removed(),
        }
    }

    /// On a core other than 0: the home group as core 0 sees it.
    pub fn set_home_view(&mut self, view: HomeView) {
        self.home_view = Some(view);
    }

    /// The home group's directory, here or as core 0 told it.
    fn home_directory(&self) -> &Directory {
        match &self.home_view {
            Some(view) => &view.directory,
            None => self.home().directory(),
        }
    }

    /// What core 0 shows of this core's groups (`CoreReport`).
    pub fn report(&self) -> CoreReport {
        let groups = self.groups.keys().copied().filter(|g| *g != HOME && self.mine(*g));
        let groups = groups
            .map(|group| {
                let node = &self.groups[&group];
                let keys = self.holds(group).then(|| node.store().key_counts(self.now_ms));
                (group, (self.group_state(group, node), keys))
            })
            .collect();
        let (awake, quiet) = self.own_activity();
        let (sent, received) = (self.messages_sent, self.messages_received);
        CoreReport { groups, awake, quiet, sent, received }
    }

    /// On core 0: core `core`'s report.
    pub fn set_report(&mut self, core: u32, report: CoreReport) {
        self.reports.insert(core, report);
    }

    /// The members `group`'s membership moves towards: every member for
    /// the home group, the group's placement for a key group.
    fn target(&self, group: GroupId) -> BTreeSet<NodeId> {
        if group == HOME {
            Node::every_member(&self.directory)
        } else {
            placement::replicas_of(group, &self.directory, self.replicas)
        }
    }

    pub fn group(&self, group: GroupId) -> Option<&Node> {
        self.groups.get(&group)
    }

    /// Whether this member serves `group` itself: every group when every
    /// member holds every group; else a key group placed on it that its
    /// Raft membership holds it in (as a voter, or a learner catching up).
    pub fn holds(&self, group: GroupId) -> bool {
        if !self.mine(group) {
            return false;
        }
        if group == HOME || self.shards == 1 || self.replicas == 0 {
            return true;
        }
        let Some(node) = self.groups.get(&group) else { return false };
        let me = node.raft().id();
        node.raft().membership().contains(me) && self.target(group).contains(&me)
    }

    /// The leader of `group` as this member knows it: its own replica's,
    /// else the latest beat's.
    fn leader_of(&self, group: GroupId) -> Option<NodeId> {
        let node = self.groups.get(&group)?;
        let raft = node.raft();
        // Not a copy this member no longer holds: its leader may be long
        // gone (nothing replicates to it any more).
        if self.holds(group) {
            if let Some(leader) = raft.leader() {
                return Some(leader);
            }
        }
        self.leaders.get(&group).map(|(_, leader)| *leader).or(raft.leader())
    }

    /// Where `conn`'s commands for `group` go: `None` to this member's own
    /// replica; else the member holding one that its last such command went
    /// to, while that one is still placed there, or the group's leader, or
    /// a placed member that answers.
    fn via(&mut self, conn: ConnId, group: GroupId) -> Option<NodeId> {
        let watching = self.lines.get(&conn).is_some_and(|line| line.watch_group == Some(group));
        if let Some(pinned) = self.lines.get(&conn).and_then(|line| line.watch_via).filter(|_| watching) {
            return pinned;
        }
        let chosen = self.choose_via(conn, group);
        if let (true, Some(line)) = (watching, self.lines.get_mut(&conn)) {
            line.watch_via = Some(chosen);
        }
        chosen
    }

    /// Ends the connection's WATCHes: their group and where they went, if
    /// any was sent.
    fn forget_watch(&mut self, conn: ConnId) -> Option<(GroupId, Option<NodeId>)> {
        let line = self.lines.get_mut(&conn)?;
        let via = line.watch_via.take();
        line.watch_group.take().map(|group| (group, via.flatten()))
    }

    /// `via` for a command no WATCH pins: where a command of the
    /// connection for `group` timed out, until that member answers
    /// (`Line::unsettled`); else this member's own replica, the group's
    /// leader, the member used last, another core of this member, or a
    /// placed member that answers.
    fn choose_via(&mut self, conn: ConnId, group: GroupId) -> Option<NodeId> {
        if let Some((member, _, since_ms)) = self.lines.get(&conn).and_then(|line| line.unsettled.get(&group))
        {
            let heard_ms = self.last_beat_ms(*member).unwrap_or(0).max(*since_ms);
            if self.now_ms.saturating_sub(heard_ms) <= UNSETTLED_SILENCE_MS {
                return Some(*member);
            }
            let line = self.lines.get_mut(&conn).expect("looked up");
            line.unsettled.remove(&group);
        }
        if self.holds(group) {
            return None;
        }
        let target = self.target(group);
        let me = self.home().raft().id();
        let last = self.lines.get(&conn).and_then(|line| line.remote.get(&group)).copied();
        // Led by another core of this member: at `me`.
        let leader = self.leader_of(group).filter(|l| *l != me || !self.mine(group));
        let sibling = (target.contains(&me) && !self.mine(group)).then_some(me);
        let chosen = leader.or(last.filter(|l| target.contains(l))).or(sibling).or_else(|| {
            let others = || target.iter().copied().filter(|m| *m != me);
            others().find(|m| self.heard_recently(*m)).or_else(|| others().next())
        });
        if let (Some(member), Some(line)) = (chosen, self.lines.get_mut(&conn)) {
            line.remote.insert(group, member);
        }
        chosen
    }

    /// Hands `args` of `conn` to `group`, at this member (`via` `None`) or at
    /// the member `via` (`Proxy`), for the connection's newest command in
    /// flight (which notes the proxy's number).
    fn deliver(
        &mut self,
        conn: ConnId,
        group: GroupId,
        via: Option<NodeId>,
        args: Vec<Vec<u8>>,
        now_ms: u64,
    ) {
        match via {
            None => {
                if let Some(node) = self.node_mut(group) {
                    node.client(conn, args, now_ms);
                }
            }
            Some(member) => self.proxy(conn, group, member, vec![args]),
        }
    }

    /// Sends `commands` of `conn` for `group` to `member` as one `Proxy`,
    /// answered for the connection's newest command in flight.
    fn proxy(&mut self, conn: ConnId, group: GroupId, member: NodeId, commands: Vec<Vec<Vec<u8>>>) {
        let id = self.next_proxy;
        self.next_proxy = self.next_proxy.wrapping_add(1);
        let ticks = self.home().config().forward_timeout_ticks.saturating_mul(2);
        let Some(line) = self.lines.get_mut(&conn) else { return };
        let settles = line.in_flight.back().is_some_and(|flight| flight.seq.is_some());
        self.proxied.insert(id, Proxied { conn, group, member, ticks, settles });
        let next = line.stands_at.entry((group, member)).or_default();
        let seq = *next;
        *next += 1;
        if let Some(flight) = line.in_flight.back_mut() {
            flight.proxies.insert(group, id);
        }
        let (conn, setup) = (self.proxy_conn_base.wrapping_add(conn.0), line.setup.clone());
        let boot = self.proxy_conn_base;
        self.output.send.push((member, group, NodeMessage::Proxy { boot, conn, id, seq, setup, commands }));
    }

    /// The group holding keys of `slot`.
    pub fn group_of_slot(&self, slot: u16) -> GroupId {
        if self.shards == 1 {
            return HOME;
        }
        GroupId(slot::group_of_slot(slot, self.shards))
    }

    /// The groups that hold keys.
    fn key_groups(&self) -> Vec<GroupId> {
        if self.shards == 1 {
            vec![HOME]
        } else {
            (1..=self.shards).map(GroupId).collect()
        }
    }

    /// The home group: the directory, INFO, CLUSTER.
    pub fn home(&self) -> &Node {
        self.groups.get(&HOME).expect("the home group")
    }

    pub fn home_mut(&mut self) -> &mut Node {
        self.groups.get_mut(&HOME).expect("the home group")
    }

    /// A group to give input to: its output is taken next (`touched`), and
    /// it is ticked until it is dormant again.
    fn node_mut(&mut self, group: GroupId) -> Option<&mut Node> {
        let node = self.groups.get_mut(&group)?;
        self.touched.insert(group);
        self.awake.insert(group);
        Some(node)
    }

    /// Every group is given input.
    fn touch_all(&mut self) {
        self.touched.extend(self.groups.keys().copied());
        self.awake.extend(self.groups.keys().copied());
    }

    pub fn groups(&self) -> impl Iterator<Item = (GroupId, &Node)> {
        self.groups.iter().map(|(g, node)| (*g, node))
    }

    /// Slots `[first, last]` of a key group.
    fn slots_of(&self, group: GroupId) -> (u16, u16) {
        if self.shards == 1 {
            return (0, SLOTS - 1);
        }
        let first = |g: u32| (u32::from(SLOTS) * (g - 1)).div_ceil(self.shards) as u16;
        let last = if group.0 == self.shards { SLOTS - 1 } else { first(group.0 + 1) - 1 };
        (first(group.0), last)
    }

    /// The key groups as this member sees them, for the home group's
    /// CLUSTER answers: those with a known leader, and the members heard
    /// from.
    fn shard_views(&self) -> ShardViews {
        let shards = self.key_groups().into_iter().filter_map(|group| {
            let raft = self.groups.get(&group)?.raft();
            let master = self.leader_of(group)?;
            // A group held elsewhere: its members as placed.
            let voters =
                if self.holds(group) { raft.membership().voters.clone() } else { self.target(group) };
            let replicas = voters.iter().copied().filter(|v| *v != master).collect();
            Some(Shard { slots: vec![self.slots_of(group)], master, replicas })
        });
        let members = self.home().raft().membership().members();
        let answering = members.filter(|m| self.heard_recently(*m)).collect();
        ShardViews { shards: shards.collect(), answering }
    }

    /// The keys of every key group this member holds, as INFO keyspace
    /// counts them (not a copy left over from before a replica moved away).
    fn keyspace(&self) -> kv::KeyCounts {
        let counts = self.groups.iter().filter(|(group, _)| **group != HOME && self.holds(**group));
        let counts = counts.map(|(_, node)| node.store().key_counts(self.now_ms));
        let reported =
            self.reports.values().flat_map(|report| report.groups.values().filter_map(|(_, keys)| *keys));
        counts.chain(reported).fold(kv::KeyCounts::default(), |sum, counts| kv::KeyCounts {
            keys: sum.keys + counts.keys,
            expires: sum.expires + counts.expires,
        })
    }

    /// INFO's lines about this member's groups (its cluster section), one
    /// per group (`group_line`; INFO stats counts them: `raft_groups*`); a
    /// member without a replica of a group runs its keys' commands at one
    /// that has, and its own copy, if any, is left over from before a move.
    /// With several cores, a group of another core is as that core last
    /// reported it (`CoreReport`).
    fn group_lines(&self) -> Vec<(String, String)> {
        let states = self.group_states().into_iter();
        states.map(|(group, state)| (format!("group{}", group.0), self.group_line(&state))).collect()
    }

    /// The key groups this member leads: what a keyless key-space command
    /// covers here, as a Redis Cluster master answers for its own slots.
    fn led_key_groups(&self) -> Vec<GroupId> {
        let led = |group: &GroupId| match self.mine(*group) {
            true => self.groups.get(group).is_some_and(|node| node.raft().is_leader()),
            // Another core's: as its beats say.
            false => self.sibling_leads(*group),
        };
        self.key_groups().into_iter().filter(led).collect()
    }

    /// The member's clock (see the field).
    pub fn now_ms(&self) -> u64 {
        self.now_ms
    }

    /// Takes `now_ms` into the member's clock; the clock to act with.
    fn clock(&mut self, now_ms: u64) -> u64 {
        self.now_ms = self.now_ms.max(now_ms);
        self.now_ms
    }

    /// One tick of the member's clock. A dormant group (see `dormant`) is
    /// left alone but on a sweep, every `SWEEP_TICKS` or when the directory
    /// changed, so that an idle member's ticks cost little per group.
    pub fn tick(&mut self, now_ms: u64) {
        let now_ms = self.clock(now_ms);
        self.ticks += 1;
        self.expire_proxied(now_ms);
        let directory_changed = self.home_directory() != &self.directory;
        if directory_changed {
            self.directory = self.home_directory().clone();
        }
        let sweep = self.shards == 1 || directory_changed || self.ticks.is_multiple_of(SWEEP_TICKS);
        self.wake_due(now_ms);
        let candidates: Vec<GroupId> = if sweep {
            self.groups.keys().copied().filter(|group| self.mine(*group)).collect()
        } else {
            self.awake.iter().copied().collect()
        };
        for group in candidates {
            if !self.dormant(group, now_ms) {
                self.awake.insert(group);
            } else {
                self.awake.remove(&group);
                let node = &self.groups[&group];
                if let Some(at) = node.store().next_expiry_ms().filter(|_| node.raft().is_leader()) {
                    self.expiry_alarms.insert((at, group));
                }
                if !sweep {
                    continue;
                }
            }
            let node = self.groups.get_mut(&group).expect("a group of the router");
            node.tick(now_ms);
            if group != HOME && self.shards > 1 {
                // The key groups' members are placed among the home group's.
                let target = placement::replicas_of(group, &self.directory, self.replicas);
                let node = self.groups.get_mut(&group).expect("a group of the router");
                node.follow_membership(&self.directory, &target);
            }
            self.touched.insert(group);
        }
        if self.shards > 1 {
            if sweep && self.core == 0 {
                let views = self.shard_views();
                self.home_mut().set_shards(views);
            }
            if self.ticks.is_multiple_of(self.beat_ticks()) {
                self.step_down_quiet_leaders_cut_off();
                self.send_beats();
            }
            if self.ticks.is_multiple_of(BALANCE_TICKS) {
                self.balance_leaders();
            }
            self.leave_groups_when_cut_off();
        }
    }

    /// Whether `group` has nothing to do on a tick: its leader here is quiet,
    /// or its leader's last beat named it and the next is not overdue, and
    /// its node waits for nothing (`Node::is_dormant`).
    fn dormant(&self, group: GroupId, now_ms: u64) -> bool {
        let Some(node) = self.groups.get(&group) else { return false };
        let held = node.raft().leader().is_some_and(|leader| {
            let beats = self.beats.range((leader, 0)..=(leader, u32::MAX));
            beats.into_iter().any(|(_, beat)| beat.groups.contains(&group) && self.is_current(beat))
        });
        node.is_dormant(held, now_ms, &self.directory, &self.target(group))
    }

    /// Ticks between two beats: the heartbeat period, or a sixth of the
    /// election timeout if longer (a beat names every quiet group, so it is
    /// sent less often than heartbeats; a follower no longer held starts
    /// its election timeout from the last beat it had).
    fn beat_ticks(&self) -> u64 {
        let config = self.home().raft().config();
        u64::from(config.heartbeat_ticks.max(config.election_ticks / 6).max(1))
    }

    /// `beat.is_current` now.
    fn is_current(&self, beat: &Beat) -> bool {
        beat.is_current(self.ticks, self.beat_ticks())
    }

    /// Wakes the dormant groups that must act: those held by a member whose
    /// beats stopped (crashed, cut off), and leaders with a key due to
    /// expire.
    fn wake_due(&mut self, now_ms: u64) {
        let (ticks, beat_ticks) = (self.ticks, self.beat_ticks());
        for beat in self.beats.values_mut() {
            if !beat.is_current(ticks, beat_ticks) && !beat.groups.is_empty() {
                self.awake.append(&mut beat.groups);
            }
        }
        while let Some((at, group)) = self.expiry_alarms.first().copied() {
            if at > now_ms {
                break;
            }
            self.expiry_alarms.pop_first();
            self.awake.insert(group);
        }
    }

    /// A group this member leads quietly while it has heard from fewer than
    /// a quorum of its voters within an election timeout steps down
    /// (`Raft::step_down_quiet`): a quiet leader runs no check-quorum, so
    /// the router runs it from the beats. Not in the first election timeout
    /// of the router, before every live member has beaten.
    fn step_down_quiet_leaders_cut_off(&mut self) {
        if self.ticks <= u64::from(self.home().raft().config().election_ticks) {
            return;
        }
        let me = self.home().raft().id();
        let cut_off: Vec<GroupId> = (self.groups.iter())
            .filter(|(group, node)| node.raft().is_quiet() && self.mine(**group))
            .filter(|(_, node)| {
                let membership = node.raft().membership();
                let heard = membership.voters.iter().filter(|v| **v == me || self.heard_recently(**v));
                heard.count() < membership.quorum()
            })
            .map(|(group, _)| *group)
            .collect();
        for group in cut_off {
            let node = self.groups.get_mut(&group).expect("a group of the router");
            if node.step_down_quiet() {
                self.touched.insert(group);
                self.awake.insert(group);
            }
        }
    }

    /// One beat to every member, naming the groups this member leads
    /// quietly that it follows (`raft::quiesce`): it stands in for their
    /// heartbeats.
    fn send_beats(&mut self) {
        // Every other member gets one, naming no group if need be: a beat
        // is also how members know each other alive (`heard_recently`).
        // With several cores, each core beats for its own groups, to the
        // other members and to this member's other cores (which learn the
        // groups it leads from it).
        let me = self.home().raft().id();
        let members =
            self.directory.members.keys().filter(|m| **m != me && !self.directory.removed.contains(m));
        let siblings = (self.cores > 1).then_some(me);
        let mut beats: BTreeMap<NodeId, Vec<(GroupId, Term, Index)>> =
            members.copied().chain(siblings).map(|member| (member, Vec::new())).collect();
        for (group, node) in &self.groups {
            let raft = node.raft();
            if !raft.is_quiet() || !self.mine(*group) {
                continue;
            }
            for member in raft.membership().members() {
                if let Some((term, commit)) = raft.quiet_beat(member) {
                    beats.entry(member).or_default().push((*group, term, commit));
                }
            }
        }
        // With key groups placed on some members only, every beat names
        // every group this member leads, for the members without them.
        // So do they with several cores, for the other cores.
        let leads: Vec<(GroupId, Term)> = if self.replicas == 0 && self.cores == 1 {
            Vec::new()
        } else {
            let led = self
                .groups
                .iter()
                .filter(|(group, node)| **group != HOME && self.mine(**group) && node.raft().is_leader());
            led.map(|(group, node)| (*group, node.raft().term())).collect()
        };
        let (core, cores) = (self.core, self.cores);
        for (member, groups) in beats {
            let beat = NodeMessage::Beat { groups, leads: leads.clone(), core, cores };
            self.output.send.push((member, HOME, beat));
        }
    }

    /// A beat from `from`: each group it names takes it as its leader's
    /// heartbeat, and stays dormant while the beats go on naming it; a
    /// group it no longer names wakes (its leader woke, stepped down or
    /// restarted).
    fn on_beat(
        &mut self,
        (from, core): (NodeId, u32),
        lines: Vec<(GroupId, Term, Index)>,
        leads: Vec<(GroupId, Term)>,
    ) {
        let led: BTreeSet<GroupId> = leads.iter().map(|(group, _)| *group).collect();
        for (group, term) in leads {
            let known = self.leaders.entry(group).or_insert((term, from));
            if term >= known.0 {
                *known = (term, from);
            }
        }
        // A group this member does not hold is dropped, as any message of one.
        let named: BTreeSet<GroupId> = lines
            .iter()
            .map(|(group, _, _)| *group)
            .filter(|group| self.groups.contains_key(group) && self.mine(*group))
            .collect();
        let beat = self.beats.entry((from, core)).or_default();
        beat.tick = self.ticks;
        beat.at_ms = self.now_ms;
        beat.leads = led;
        let dropped: Vec<GroupId> = beat.groups.difference(&named).copied().collect();
        beat.groups = named;
        self.awake.extend(dropped);
        for (group, term, commit) in lines {
            if !self.mine(group) {
                continue;
            }
            let Some(node) = self.groups.get_mut(&group) else { continue };
            if node.on_quiet_beat(from, term, commit) {
                self.touched.insert(group);
                self.awake.insert(group);
            }
        }
    }

    /// Connections standing in here for other members' clients (`Stand`).
    pub fn stand_ins(&self) -> usize {
        self.stands.len()
    }

    /// Groups ticked on every tick (the others are dormant), and groups this
    /// member leads quietly: for INFO and tests.
    pub fn activity(&self) -> (usize, usize) {
        let (awake, quiet) = self.own_activity();
        let reports = self.reports.values();
        reports.fold((awake, quiet), |(awake, quiet), report| (awake + report.awake, quiet + report.quiet))
    }

    /// `activity` of this core alone.
    fn own_activity(&self) -> (usize, usize) {
        let quiet = self.groups.values().filter(|node| node.raft().is_quiet()).count();
        (self.awake.len(), quiet)
    }

    /// Whether `member` beat within an election timeout (every member beats
    /// to every other):
    /// a quiet leader's own view of its followers stops at its last
    /// heartbeat, as it runs no check-quorum, so the router's is used.
    fn heard_recently(&self, member: NodeId) -> bool {
        // Within an election timeout, not two beat periods: a member busy
        // with load sends its beats late, and is alive all the same.
        let election_ticks = u64::from(self.home().raft().config().election_ticks);
        let beats = self.beats.range((member, 0)..=(member, u32::MAX));
        beats.into_iter().any(|(_, beat)| beat.tick + election_ticks > self.ticks)
    }

    /// Peer messages this member handed out and took in.
    pub fn message_counts(&self) -> (u64, u64) {
        let reports = self.reports.values();
        reports.fold((self.messages_sent, self.messages_received), |(sent, received), report| {
            (sent + report.sent, received + report.received)
        })
    }

    /// A key group's leader changes the group's membership from its own
    /// copy of the directory, so it must hear from the home group: a member
    /// whose home group has known no leader for two election timeouts (cut
    /// off, or removed without knowing it: a removed member is no longer
    /// replicated to) hands over every key group it leads, to the most
    /// up-to-date voter, so that leaders with a current directory take them
    /// (a removed member's groups would otherwise never drop it, nor add the
    /// members that joined since). So does a member whose home group's
    /// membership does not hold it: one removed before its home group's log
    /// ever reached it knows a leader (from its beats) but no directory, and
    /// would lead on with none, never handing over nor changing a group.
    fn leave_groups_when_cut_off(&mut self) {
        let election_ticks = self.home().raft().config().election_ticks;
        let leader_known = match &self.home_view {
            Some(view) => view.leader_known,
            None => {
                let home = self.home().raft();
                home.leader().is_some() && home.membership().contains(home.id())
            }
        };
        if leader_known {
            self.home_leaderless_ticks = 0;
            return;
        }
        self.home_leaderless_ticks += 1;
        if self.home_leaderless_ticks < 2 * u64::from(election_ticks) {
            return;
        }
        self.touch_all();
        for (group, node) in self.groups.iter_mut() {
            if *group != HOME && node.raft().is_leader() && node.raft().transfer_target().is_none() {
                if let Some(to) = node.transfer_leadership() {
                    tracing::info!(group = group.0, %to, "the home group knows no leader: handing over a group");
                }
            }
        }
    }

    /// Spreads the key groups' leaders over the members: a member hands
    /// groups to the voters that lead the fewest, while one of them that
    /// answers leads at least two fewer than it does, so that the counts end
    /// at most one apart (a rule of "no more than the share" stops at 6/6/4
    /// for 16 groups over three). Up to `BALANCE_TRANSFERS_MAX` transfers
    /// per look, and none while one of this member's is in flight. Every
    /// member decides only for the groups it leads, from the leaders it
    /// knows, so a stale view costs a wasted transfer, never safety (a
    /// transfer is Raft's, §3.10).
    ///
    /// With several cores the counts are per member and core (a group
    /// handed to a member lands on that member's core of the group), and
    /// between cores one apart a member's busiest core also hands a group
    /// to a member leading at least two fewer in all, so that the members'
    /// totals end at most one apart too (5/5/6 for 16 groups over three
    /// members of two cores, not 6/6/4).
    fn balance_leaders(&mut self) {
        let voters = match &self.home_view {
            Some(view) => view.voters.clone(),
            None => self.home().raft().committed_membership().voters.clone(),
        };
        if voters.len() < 2 {
            return;
        }
        let me = self.home().raft().id();
        let key_groups = self.key_groups();
        // Counted per core of each member (a member's cores as its beats
        // say): a group handed to a member lands on that member's core of
        // the group, so the counts to even out are the cores'.
        let member_cores = self.member_cores.clone();
        let cores_of = |member: NodeId| member_cores.get(&member).copied().unwrap_or(1);
        let mut led: BTreeMap<(NodeId, u32), usize> =
            voters.iter().flat_map(|v| (0..cores_of(*v)).map(move |core| ((*v, core), 0))).collect();
        for group in &key_groups {
            if let Some(leader) = self.leader_of(*group) {
                *led.entry((leader, core_of(*group, cores_of(leader)))).or_default() += 1;
            }
        }
        let mut mine = led.get(&(me, self.core)).copied().unwrap_or(0);
        let mut totals: BTreeMap<NodeId, usize> = BTreeMap::new();
        for ((member, _), count) in &led {
            *totals.entry(*member).or_default() += count;
        }
        // This member's busiest core (the first of the busiest) evens out
        // the members' totals.
        let busiest =
            led.range((me, 0)..=(me, u32::MAX)).max_by_key(|((_, core), count)| (**count, u32::MAX - core));
        let evens_totals = busiest.is_some_and(|((_, core), _)| *core == self.core);
        let transferring = self.groups.values().any(|node| node.raft().transfer_target().is_some());
        if transferring {
            return;
        }
        // Whether a unit of `count` groups of a member leading `total` may
        // take one from this core.
        let may_take = |count: usize, total: usize, mine: usize, my_total: usize| {
            count + 1 < mine || (evens_totals && count + 1 == mine && total + 1 < my_total)
        };
        let mut started = 0;
        for group in key_groups {
            let my_total = totals.get(&me).copied().unwrap_or(0);
            let any = led.iter().any(|((member, _), count)| {
                *member != me && may_take(*count, totals.get(member).copied().unwrap_or(0), mine, my_total)
            });
            if !any || started == BALANCE_TRANSFERS_MAX {
                return;
            }
            let Some(node) = self.groups.get(&group).filter(|_| self.mine(group)) else { continue };
            if !node.raft().is_leader() {
                continue;
            }
            let target = led
                .iter()
                .filter(|((member, core), count)| {
                    *member != me
                        && *core == core_of(group, cores_of(*member))
                        && may_take(**count, totals.get(member).copied().unwrap_or(0), mine, my_total)
                        && node.raft().membership().is_voter(*member)
                        && (node.raft().heard_recently(*member) == Some(true) || self.heard_recently(*member))
                })
                .min_by_key(|((member, core), count)| (**count, totals.get(member).copied(), *member, *core))
                .map(|(unit, _)| *unit);
            let Some((target, core)) = target else { continue };
            if self.node_mut(group).is_some_and(|node| node.transfer_leadership_to(target)) {
                tracing::info!(group = group.0, to = %target, core, "spreading leaders: handing over a group");
                *led.entry((target, core)).or_default() += 1;
                *totals.entry(target).or_default() += 1;
                *totals.entry(me).or_default() -= 1;
                mine -= 1;
                started += 1;
            }
        }
    }

    /// True once the home group knows this member was removed and it leads
    /// no key group any more (it hands them over first, so that a leaving
    /// member's groups keep a leader; their new leaders then remove it).
    /// With several cores: core 0's says whether the member may stop, and
    /// it waits for the other cores to lead none either (their beats).
    pub fn is_removed(&self) -> bool {
        let removed = match &self.home_view {
            Some(view) => view.removed,
            None => self.home().is_removed(),
        };
        let me = self.home().raft().id();
        let mut siblings = self.beats.range((me, 0)..=(me, u32::MAX));
        removed
            && !self.groups.iter().any(|(group, node)| *group != HOME && node.raft().is_leader())
            && !siblings.any(|(_, beat)| !beat.leads.is_empty())
    }

    /// When (ms) `member`'s last beat came, from any of its cores.
    fn last_beat_ms(&self, member: NodeId) -> Option<u64> {
        let beats = self.beats.range((member, 0)..=(member, u32::MAX));
        beats.map(|(_, beat)| beat.at_ms).max()
    }

    /// Whether another core of this member leads `group`, as its beats say.
    fn sibling_leads(&self, group: GroupId) -> bool {
        let me = self.home().raft().id();
        let mut siblings = self.beats.range((me, 0)..=(me, u32::MAX));
        siblings.any(|(_, beat)| beat.leads.contains(&group) && self.is_current(beat))
    }

    /// Why this member must stop, if a group met state it cannot trust.
    pub fn fatal(&self) -> Option<&str> {
        self.groups.get(&self.fatal_group?)?.fatal()
    }

    /// Hands leadership of every group this member leads to another
    /// voter (a graceful stop); the home group's new leader, if it led it.
    pub fn transfer_leadership(&mut self) -> Option<NodeId> {
        let mut home = None;
        self.touch_all();
        for (group, node) in self.groups.iter_mut() {
            let to = node.transfer_leadership();
            if *group == HOME {
                home = to;
            }
        }
        home
    }

    /// Whether this member still leads a group whose transfer is under way.
    pub fn transferring(&self) -> bool {
        self.groups.values().any(|node| node.raft().is_leader() && node.raft().transfer_target().is_some())
    }

    /// A message for `group` from member `from`; a group this member does
    /// not hold drops it (the sender retransmits what matters).
    pub fn step(&mut self, from: NodeId, group: GroupId, message: NodeMessage) {
        if from != self.home().raft().id() {
            self.messages_received += 1;
        }
        self.observe_arrival(group, &message);
        let now_ms = self.now_ms;
        match message {
            NodeMessage::Beat { groups, leads, core, cores } => {
                self.member_cores.insert(from, cores.clamp(1, CORES_MAX));
                self.on_beat((from, core), groups, leads)
            }
            NodeMessage::Proxy { boot, conn, id, seq, setup, commands } => {
                if self.stand_boots.insert(from, boot).is_some_and(|earlier| earlier != boot) {
                    // The member restarted: its earlier connections are gone.
                    let gone: Vec<_> =
                        self.stands.keys().filter(|(member, _, _)| *member == from).copied().collect();
                    for key in gone {
                        self.close_stand(key);
                    }
                }
                self.on_proxy(from, group, (conn, id, seq), setup, commands)
            }
            NodeMessage::ProxyReply { conn, id, reply } => {
                let conn = ConnId(conn.wrapping_sub(self.proxy_conn_base));
                let proxied = self.proxied.remove(&id).filter(|p| p.conn == conn && p.group == group);
                let settles = proxied.as_ref().is_some_and(|p| p.settles);
                self.settle_line(conn, group, from, id, &reply, settles, now_ms);
                if proxied.is_some() {
                    self.on_reply(group, conn, reply, now_ms, Some(id));
                }
            }
            NodeMessage::ProxyClose { conn } => self.close_stand((from, conn, group)),
            message => {
                if let Some(node) = self.node_mut(group) {
                    // A forwarded write is stamped with the leader's clock.
                    node.advance_clock(now_ms);
                    node.step(from, message);
                }
            }
        }
    }

    /// Where `conn`'s commands for `group` may go after `from` answered its
    /// proxy `id` with `reply` (`Line::unsettled`). A `-TIMEOUT` there
    /// means the command may still be applied later (a forward held up on
    /// its way to the leader), and only that member's session of the
    /// connection knows to wait for it (`Node::pump`'s barrier): the
    /// connection's commands for the group keep going there (sim-long seed
    /// 1726 with `--cores 2`: a transaction answered so was applied after
    /// the connection's next read, sent to this member's own replica, had
    /// been answered). An answer that `settles` (`Proxied::settles`) to a
    /// command sent at least as late as the last that timed out there
    /// says that session dealt with them: they may go elsewhere again; so
    /// may they when that member no longer holds the group (nothing else
    /// would ever move them).
    #[allow(clippy::too_many_arguments)]
    fn settle_line(
        &mut self,
        conn: ConnId,
        group: GroupId,
        from: NodeId,
        id: u64,
        reply: &Reply,
        settles: bool,
        now_ms: u64,
    ) {
        let Some(line) = self.lines.get_mut(&conn) else { return };
        let at = line.unsettled.get(&group).copied();
        if is_timeout(reply) {
            let last = match at {
                Some((member, last, _)) if member == from => id.max(last),
                _ => id,
            };
            line.unsettled.insert(group, (from, last, now_ms));
            return;
        }
        let gone = matches!(reply, Reply::Error(e) if e.strip_prefix("TRYAGAIN ").is_some_and(|e| e.starts_with(NO_REPLICA)));
        if at.is_some_and(|(member, last, _)| member == from && id >= last)
            && (settles && !reply.is_error() || gone)
        {
            line.unsettled.remove(&group);
        }
    }

    /// `Proxy` number `id` from `from`: its connection `conn`'s commands for
    /// `group`, run here on the connection standing for that one (opened
    /// on first use), after the connection's `setup` if that changed. A
    /// member that holds no replica of `group` answers `-TRYAGAIN` (the
    /// sender's view of where the group is was out of date), and so does
    /// one that finds a message of the connection missing before this one
    /// (`seq`). Its stand-in goes on, keeping the order of what came
    /// before; a transaction travels whole (MULTI to EXEC, in one
    /// message), so none is left open, and one that watches nothing comes
    /// with an UNWATCH first, for WATCHes whose EXEC was the missing
    /// message.
    fn on_proxy(
        &mut self,
        from: NodeId,
        group: GroupId,
        (conn, id, seq): (u64, u64, u64),
        setup: Vec<Vec<Vec<u8>>>,
        commands: Vec<Vec<Vec<u8>>>,
    ) {
        let now_ms = self.now_ms;
        let refuse = |router: &mut Router, why: String| {
            let reply = Reply::error(format!("TRYAGAIN {why}"));
            router.output.send.push((from, group, NodeMessage::ProxyReply { conn, id, reply }));
        };
        if !self.holds(group) {
            return refuse(self, format!("{NO_REPLICA} of group {}", group.0));
        }
        let key = (from, conn, group);
        let expected = self.stands.get(&key).map_or(0, |stand| stand.next_seq);
        if seq != expected {
            // The same stand-in goes on (its session keeps the order of
            // what the connection sent before: a fresh one would let a
            // read overtake a write still in flight in the old one).
            if !self.stands.contains_key(&key) {
                self.open_stand(key, now_ms);
            }
            let stand = self.stands.get_mut(&key).expect("just made");
            stand.next_seq = seq + 1;
            return refuse(
                self,
                "an earlier command of this connection was lost on its way: sent again".into(),
            );
        }
        if !self.stands.contains_key(&key) {
            self.open_stand(key, now_ms);
        }
        let stand = self.stands.get_mut(&key).expect("just made");
        stand.next_seq = seq + 1;
        let stand_conn = stand.conn;
        let mut run: Vec<(Option<u64>, Vec<Vec<u8>>)> = Vec::new();
        if stand.setup != setup {
            run.extend(setup.iter().cloned().map(|c| (None, c)));
            stand.setup = setup;
        }
        let last = commands.len().saturating_sub(1);
        run.extend(commands.into_iter().enumerate().map(|(i, c)| ((i == last).then_some(id), c)));
        stand.pending.extend(run.iter().map(|(id, _)| *id));
        self.touched.insert(group);
        let Some(node) = self.groups.get_mut(&group) else { return };
        node.advance_clock(now_ms);
        for (_, command) in run {
            node.client(stand_conn, command, now_ms);
        }
    }

    /// Hands `args` straight to `group`'s node here, whatever group its
    /// keys are in, as a member routing with a stale or wrong map of slots
    /// would (the answer is dropped): the simulator's check that a group
    /// refuses what is not its own (`node::slots::foreign_slot`, on arrival
    /// and when applied), which the planted bug `apply-with-stale-map`
    /// breaks.
    pub fn misroute(&mut self, group: GroupId, args: Vec<Vec<u8>>) {
        let now_ms = self.now_ms;
        if let Some(node) = self.node_mut(group) {
            node.advance_clock(now_ms);
            node.client(MISROUTED_CONN, args, now_ms);
        }
    }

    /// Opens the connection standing for `key` (`Stand`).
    fn open_stand(&mut self, key: (NodeId, u64, GroupId), now_ms: u64) -> &mut Stand {
        let conn = ConnId(STAND_CONN_BASE + self.next_stand);
        self.next_stand += 1;
        self.stand_of.insert(conn, key);
        if let Some(node) = self.node_mut(key.2) {
            node.connected(conn, Transport::Plain, now_ms);
        }
        let stand = Stand { conn, setup: Vec::new(), pending: VecDeque::new(), next_seq: 0 };
        self.stands.entry(key).or_insert(stand)
    }

    /// Closes the connection standing for `key`, if open.
    fn close_stand(&mut self, key: (NodeId, u64, GroupId)) {
        if let Some(stand) = self.stands.remove(&key) {
            self.stand_of.remove(&stand.conn);
            if let Some(node) = self.node_mut(key.2) {
                node.disconnected(stand.conn);
            }
        }
    }

    /// A group's reply to a connection standing for another member's: the
    /// answer to its oldest command, sent back unless it was a setup's.
    fn on_stand_reply(&mut self, group: GroupId, conn: ConnId, reply: Reply) {
        let Some(key) = self.stand_of.get(&conn).copied() else { return };
        let Some(stand) = self.stands.get_mut(&key) else { return };
        if let Some(Some(id)) = stand.pending.pop_front() {
            let (from, their_conn, _) = key;
            self.output.send.push((from, group, NodeMessage::ProxyReply { conn: their_conn, id, reply }));
        }
    }

    /// Answers `-TIMEOUT` to commands sent to another member that has not
    /// answered them in time (it may still run them: as with a forwarded
    /// write, the outcome is unknown).
    fn expire_proxied(&mut self, now_ms: u64) {
        let mut expired = Vec::new();
        for (id, proxied) in self.proxied.iter_mut() {
            proxied.ticks = proxied.ticks.saturating_sub(1);
            if proxied.ticks == 0 {
                expired.push((*id, proxied.conn, proxied.group, proxied.member));
            }
        }
        for (id, conn, group, member) in expired {
            self.proxied.remove(&id);
            if let Some(line) = self.lines.get_mut(&conn) {
                // Silent since the first of them that timed out there.
                let (last, since_ms) = match line.unsettled.get(&group) {
                    Some((at, last, since_ms)) if *at == member => (id.max(*last), *since_ms),
                    _ => (id, now_ms),
                };
                line.unsettled.insert(group, (member, last, since_ms));
            }
            let reply = Reply::error("TIMEOUT the member holding the key's group did not answer in time");
            self.on_reply(group, conn, reply, now_ms, Some(id));
        }
    }

    /// Has `group` take a snapshot at its applied index soon
    /// ([`Node::compact_soon`]).
    pub fn compact(&mut self, group: GroupId) {
        if let Some(node) = self.node_mut(group) {
            node.compact_soon();
        }
    }

    /// The process's allocated bytes and `--maxmemory`, for every group of
    /// this core (`Node::set_memory`).
    pub fn set_memory(&mut self, used: u64, limit: u64) {
        for node in self.groups.values_mut() {
            node.set_memory(used, limit);
        }
    }

    pub fn persisted(&mut self, group: GroupId, through: Lsn) {
        if let Some(node) = self.node_mut(group) {
            node.persisted(through);
        }
    }

    pub fn connected(&mut self, conn: ConnId, transport: Transport, now_ms: u64) {
        let now_ms = self.clock(now_ms);
        self.touch_all();
        for node in self.groups.values_mut() {
            node.connected(conn, transport, now_ms);
        }
        self.lines.entry(conn).or_default();
    }

    pub fn disconnected(&mut self, conn: ConnId) {
        self.touch_all();
        for node in self.groups.values_mut() {
            node.disconnected(conn);
        }
        if let Some(line) = self.lines.remove(&conn) {
            for (group, member) in line.stands_at.into_keys() {
                let conn = self.proxy_conn_base.wrapping_add(conn.0);
                self.output.send.push((member, group, NodeMessage::ProxyClose { conn }));
            }
        }
        self.proxied.retain(|_, proxied| proxied.conn != conn);
    }

    /// A client command, in the connection's order.
    pub fn client(&mut self, conn: ConnId, args: Vec<Vec<u8>>, now_ms: u64) {
        let now_ms = self.clock(now_ms);
        if !self.lines.contains_key(&conn) {
            self.connected(conn, Transport::Plain, now_ms);
        }
        let line = self.lines.entry(conn).or_default();
        if self.shards > 1 {
            // One shard: the home group answers everything and counts it.
            self.stats.received();
            let name = args.first().map(|a| a.to_ascii_uppercase()).unwrap_or_default();
            line.unanswered.push_back(command_name(&name, &args));
        }
        let seq = line.next_seq;
        line.next_seq += 1;
        line.waiting.push_back((seq, None, args));
        self.start(conn, now_ms);
    }

    /// Where `args` goes (`Refuse` answers it here).
    fn route(&mut self, conn: ConnId, args: &[Vec<u8>]) -> Route {
        if self.shards == 1 {
            return Route::Group(HOME);
        }
        let name = args.first().map(|a| a.to_ascii_uppercase()).unwrap_or_default();
        let sub = args.get(1).map(|a| a.to_ascii_uppercase()).unwrap_or_default();
        let slot_arg = || args.get(2).and_then(|a| kv::parse_integer(a)).and_then(|s| u16::try_from(s).ok());
        let in_multi = self.home().queued_in_multi(conn).is_some();
        let route = match name.as_slice() {
            _ if in_multi => self.route_in_multi(conn, &name, args),
            b"CLUSTER" if matches!(sub.as_slice(), b"COUNTKEYSINSLOT" | b"GETKEYSINSLOT") => {
                match slot_arg().filter(|s| *s < SLOTS) {
                    Some(slot) => Route::Group(self.group_of_slot(slot)),
                    None => Route::Group(HOME), // its error
                }
            }
            b"CLUSTER" => {
                let views = self.shard_views();
                self.home_mut().set_shards(views);
                Route::Group(HOME)
            }
            b"INFO" => {
                let info = RouterInfo {
                    group_lines: self.group_lines(),
                    command_stats: self.stats.clone(),
                    keyspace: self.keyspace(),
                };
                self.home_mut().set_router_info(info);
                Route::Group(HOME)
            }
            b"HELLO" | b"AUTH" | b"SELECT" | b"READONLY" | b"READWRITE" => Route::Every,
            b"CLIENT" if matches!(sub.as_slice(), b"SETNAME" | b"SETINFO") => Route::Every,
            b"DBSIZE" => Route::Merge(Merge::Sum),
            b"KEYS" => Route::Merge(Merge::Concat),
            b"FLUSHALL" | b"FLUSHDB" => Route::Merge(Merge::AllOk),
            b"WATCH" => {
                let keys = args[1..].iter().map(|key| self.group_of_slot(key_slot(key)));
                let groups: BTreeSet<GroupId> = keys.collect();
                let watched = self.lines.get(&conn).and_then(|line| line.watch_group);
                match (groups.len(), groups.first()) {
                    (1, Some(group)) if watched.is_none_or(|w| w == *group) => {
                        self.lines.entry(conn).or_default().watch_group = Some(*group);
                        Route::Group(*group)
                    }
                    (0, _) => Route::Group(HOME), // its arity error
                    _ => Route::Refuse(Reply::error(CROSSSLOT)),
                }
            }
            b"UNWATCH" => {
                // The home group and every group held here get it (`Every`);
                // WATCHes sent elsewhere are dropped there.
                if let Some((group, Some(member))) = self.forget_watch(conn) {
                    self.send_via(
                        conn,
                        None,
                        group,
                        Route::Group(group),
                        Some(member),
                        args.to_vec(),
                        self.now_ms,
                    );
                }
                Route::Every
            }
            // A backup or digest is of one group, named by a slot of it.
            b"CASHE.BACKUP" | b"CASHE.DIGEST" => match kv::backup::slot_argument(args) {
                Ok(Some(slot)) => Route::Group(self.group_of_slot(slot)),
                Ok(None) if self.shards > 1 => Route::Refuse(Reply::error(format!(
                    "ERR the key space is in {} groups: name one by a slot of it ({} SLOT <slot>; \
                     CLUSTER SLOTS lists them)",
                    self.shards,
                    String::from_utf8_lossy(&name)
                ))),
                _ => Route::Group(HOME), // its answer, or its error
            },
            b"SCAN" => self.route_scan(args),
            b"RANDOMKEY" if args.len() == 1 => {
                self.picks += 1;
                Route::Merge(Merge::AnyKey(self.picks))
            }
            _ => match self.key_groups_of(args) {
                KeyGroups::None => Route::Group(HOME),
                KeyGroups::One(group) => {
                    let read = kv::classify(args).ok() == Some(kv::Access::Read);
                    let slot = key_slot(kv::command_keys(args)[0]);
                    self.redirection(conn, group, slot, read)
                        .map_or(Route::Group(group), |moved| Route::Refuse(Reply::error(moved)))
                }
                KeyGroups::Several => self.split(conn, &name, args),
            },
        };
        // A connection that must log in is answered NOAUTH, and one whose
        // user may not run the command NOPERM, by the home group, as Redis
        // checks both before anything about slots (and a split must not
        // run the permitted part of a command that is refused).
        let home = self.groups.get_mut(&HOME).expect("the home group");
        match route {
            Route::Refuse(_) | Route::Split { .. }
                if home.needs_auth(conn, &name, args) || home.acl_denies(conn, &name, args) =>
            {
                Route::Group(HOME)
            }
            other => other,
        }
    }

    /// A command whose keys are in several groups: split per group when
    /// each key stands alone (MGET, DEL, UNLINK, EXISTS), for a
    /// connection that does not route by slot itself; else `-CROSSSLOT`,
    /// as Redis Cluster answers (a cluster client splits by slot itself).
    fn split(&self, conn: ConnId, name: &[u8], args: &[Vec<u8>]) -> Route {
        let kind = match name {
            b"MGET" => SplitKind::Values,
            b"DEL" | b"UNLINK" | b"EXISTS" => SplitKind::Sum,
            _ => return Route::Refuse(Reply::error(CROSSSLOT)),
        };
        if self.home().redirect_policy(conn).0 {
            return Route::Refuse(Reply::error(CROSSSLOT));
        }
        let mut parts: BTreeMap<GroupId, Vec<usize>> = BTreeMap::new();
        for (position, key) in args[1..].iter().enumerate() {
            parts.entry(self.group_of_slot(key_slot(key))).or_default().push(position);
        }
        Route::Split { kind, keys: args.len() - 1, parts: parts.into_iter().collect() }
    }

    /// SCAN over the key groups this member leads, one after the other, as a
    /// Redis Cluster master scans its own slots: the cursor is the group's
    /// number in its top 16 bits and the group's own cursor below.
    fn route_scan(&self, args: &[Vec<u8>]) -> Route {
        let Some(cursor) = args.get(1).and_then(|c| std::str::from_utf8(c).ok()?.parse::<u64>().ok()) else {
            return Route::Group(HOME); // its arity or cursor error
        };
        let led = self.led_key_groups();
        let after = |group: GroupId| led.iter().copied().find(|g| *g > group);
        let group = if cursor == 0 {
            led.first().copied()
        } else {
            Some(GroupId((cursor >> SCAN_GROUP_SHIFT) as u32))
        };
        match group {
            None => Route::Refuse(Reply::Array(Some(vec![Reply::bulk("0"), Reply::Array(Some(Vec::new()))]))),
            Some(group) if self.key_groups().contains(&group) => {
                Route::Scan { group, next: after(group), cursor: cursor & ((1 << SCAN_GROUP_SHIFT) - 1) }
            }
            Some(_) => Route::Refuse(Reply::error("ERR invalid cursor")),
        }
    }

    /// Where a command goes while the connection is in MULTI (several
    /// shards): queued at the home group, which answers QUEUED or its
    /// error, as long as its keys are in the transaction's group (the
    /// watched one, or that of the keys queued so far); else CROSSSLOT,
    /// and EXEC will answer EXECABORT. EXEC and DISCARD are the router's.
    fn route_in_multi(&mut self, conn: ConnId, name: &[u8], args: &[Vec<u8>]) -> Route {
        match name {
            b"EXEC" => return Route::Exec,
            b"DISCARD" => return Route::Discard,
            _ => {}
        }
        let group = match self.key_groups_of(args) {
            KeyGroups::None => return Route::Group(HOME), // no keys, or not a command: the home group's answer
            KeyGroups::Several => {
                self.home_mut().fail_multi(conn);
                return Route::Refuse(Reply::error(CROSSSLOT));
            }
            KeyGroups::One(group) => group,
        };
        match self.transaction_group(conn) {
            Some(Some(other)) if other != group => {
                self.home_mut().fail_multi(conn);
                Route::Refuse(Reply::error(CROSSSLOT))
            }
            _ => Route::Group(HOME),
        }
    }

    /// The one key group of a command's keys, if it has keys all in one.
    fn keys_group(&self, args: &[Vec<u8>]) -> Option<GroupId> {
        match self.key_groups_of(args) {
            KeyGroups::One(group) => Some(group),
            KeyGroups::None | KeyGroups::Several => None,
        }
    }

    /// Where a command's keys are.
    fn key_groups_of(&self, args: &[Vec<u8>]) -> KeyGroups {
        if kv::classify(args).is_err() {
            return KeyGroups::None;
        }
        let keys = kv::command_keys(args);
        let Some(first) = keys.first().map(|key| self.group_of_slot(key_slot(key))) else {
            return KeyGroups::None;
        };
        if keys.iter().all(|key| self.group_of_slot(key_slot(key)) == first) {
            KeyGroups::One(first)
        } else {
            KeyGroups::Several
        }
    }

    /// The group a connection's transaction runs in: `None` when it is not
    /// in MULTI; `Some(None)` while nothing decides it (no watch, no keyed
    /// command queued yet); `Some(Some(g))` else.
    fn transaction_group(&self, conn: ConnId) -> Option<Option<GroupId>> {
        let (queued, _) = self.home().queued_in_multi(conn)?;
        let watched = self.lines.get(&conn).and_then(|line| line.watch_group);
        Some(watched.or_else(|| queued.iter().find_map(|args| self.keys_group(args))))
    }

    /// `-MOVED` for a keyed command of `group` this member does not lead,
    /// on a connection that is redirected (see `slots`); `None` to serve
    /// it (here, or through the group's forwarding).
    fn redirection(&self, conn: ConnId, group: GroupId, slot: u16, read: bool) -> Option<String> {
        let raft = self.groups.get(&group)?.raft();
        let leads = raft.is_leader() && self.holds(group);
        // READONLY reads are served here only from a replica held here.
        let read = read && self.holds(group);
        self.home().moved_unless_served(conn, leads, self.leader_of(group), slot, read)
    }

    /// Starts the connection's waiting commands that may start now.
    fn start(&mut self, conn: ConnId, now_ms: u64) {
        loop {
            let Some(line) = self.lines.get_mut(&conn) else { return };
            let Some((_, decided, args)) = line.waiting.front() else { return };
            if decided.is_none() {
                let args = args.clone();
                let route = self.route(conn, &args);
                let line = self.lines.get_mut(&conn).expect("the line");
                line.waiting.front_mut().expect("a head").1 = Some(route);
                continue;
            }
            let Some((_, Some(route), _)) = line.waiting.front() else { return };
            let via = match route {
                Route::Group(group) => {
                    let group = *group;
                    self.via(conn, group)
                }
                _ => None,
            };
            let line = self.lines.get_mut(&conn).expect("the line");
            let Some((seq, Some(route), _)) = line.waiting.front() else { return };
            let may_start = match route {
                Route::Refuse(_) => true,
                Route::Group(group) => {
                    line.in_flight.iter().all(|f| f.route == Route::Group(*group) && f.via == via)
                }
                Route::Every
                | Route::Merge(_)
                | Route::Exec
                | Route::Discard
                | Route::Scan { .. }
                | Route::Split { .. } => line.in_flight.is_empty(),
            };
            if !may_start {
                return;
            }
            let seq = *seq;
            let (_, route, args) = line.waiting.pop_front().expect("a head");
            let route = route.expect("decided");
            let asked = match &route {
                Route::Refuse(reply) => {
                    line.ready.insert(seq, reply.clone());
                    self.release(conn);
                    continue;
                }
                Route::Exec => {
                    self.start_exec(conn, seq, now_ms);
                    continue;
                }
                Route::Discard => {
                    if let Some((group, via)) = self.forget_watch(conn) {
                        let unwatch = words(&["UNWATCH"]);
                        self.send_via(conn, None, group, Route::Group(group), via, unwatch, now_ms);
                    }
                    self.send(conn, Some(seq), HOME, args, now_ms);
                    continue;
                }
                Route::Group(group) => vec![*group],
                Route::Scan { group, cursor, .. } => {
                    let (group, mut args) = (*group, args);
                    args[1] = cursor.to_string().into_bytes();
                    self.send_routed(conn, Some(seq), group, route.clone(), args, now_ms);
                    continue;
                }
                Route::Split { parts, .. } => {
                    let parts = parts.clone();
                    let flight = InFlight {
                        seq: Some(seq),
                        route: route.clone(),
                        answers: BTreeMap::new(),
                        asked: parts.iter().map(|(group, _)| *group).collect(),
                        via: None,
                        proxies: BTreeMap::new(),
                    };
                    line.in_flight.push_back(flight);
                    for (group, positions) in parts {
                        let mut part = vec![args[0].clone()];
                        part.extend(positions.iter().map(|p| args[1 + p].clone()));
                        let via = self.via(conn, group);
                        self.deliver(conn, group, via, part, now_ms);
                    }
                    continue;
                }
                Route::Every => self.groups.keys().copied().collect(),
                Route::Merge(_) => {
                    // A member that leads no key group asks the home group,
                    // whose store holds no key: the merge of nothing, after
                    // the same NOAUTH and ACL checks.
                    let led = self.led_key_groups();
                    if led.is_empty() {
                        vec![HOME]
                    } else {
                        led
                    }
                }
            };
            if route == Route::Every {
                // Replayed where its commands run for groups held elsewhere.
                let line = self.lines.get_mut(&conn).expect("the line");
                remember_setup(&mut line.setup, &args);
            }
            let merge = matches!(route, Route::Merge(_));
            let line = self.lines.get_mut(&conn).expect("the line");
            let flight = InFlight {
                seq: Some(seq),
                route,
                answers: BTreeMap::new(),
                asked: asked.clone(),
                via,
                proxies: BTreeMap::new(),
            };
            line.in_flight.push_back(flight);
            for group in asked {
                // A merge's groups may be led by another core of this member.
                let via = if merge { self.via(conn, group) } else { via };
                self.deliver(conn, group, via, args.clone(), now_ms);
            }
        }
    }

    /// Sends one command to one group: the client's (`seq`) or the
    /// router's own (`None`, its answer dropped).
    fn send(&mut self, conn: ConnId, seq: Option<u64>, group: GroupId, args: Vec<Vec<u8>>, now_ms: u64) {
        self.send_routed(conn, seq, group, Route::Group(group), args, now_ms);
    }

    /// `send`, the answer finished by `route` (a SCAN's cursor is rewritten).
    fn send_routed(
        &mut self,
        conn: ConnId,
        seq: Option<u64>,
        group: GroupId,
        route: Route,
        args: Vec<Vec<u8>>,
        now_ms: u64,
    ) {
        if !self.lines.contains_key(&conn) {
            return;
        }
        let via = self.via(conn, group);
        self.send_via(conn, seq, group, route, via, args, now_ms);
    }

    /// `send_routed` to `via` (`Router::via`) already chosen.
    #[allow(clippy::too_many_arguments)]
    fn send_via(
        &mut self,
        conn: ConnId,
        seq: Option<u64>,
        group: GroupId,
        route: Route,
        via: Option<NodeId>,
        args: Vec<Vec<u8>>,
        now_ms: u64,
    ) {
        let Some(line) = self.lines.get_mut(&conn) else { return };
        let flight = InFlight {
            seq,
            route,
            answers: BTreeMap::new(),
            asked: vec![group],
            via,
            proxies: BTreeMap::new(),
        };
        line.in_flight.push_back(flight);
        self.deliver(conn, group, via, args, now_ms);
    }

    /// EXEC of a transaction queued at the home group: a doomed one (or one
    /// without keys) is the home group's to answer; else the home group's
    /// queue is dropped (UNWATCH and DISCARD there, answers dropped) and
    /// MULTI, the queued commands and EXEC go to the transaction's group,
    /// whose EXEC answers the client (its WATCHes are in that group too).
    fn start_exec(&mut self, conn: ConnId, seq: u64, now_ms: u64) {
        let exec = words(&["EXEC"]);
        let group = self.transaction_group(conn).flatten();
        let (queued, failed) = match self.home().queued_in_multi(conn) {
            Some((queued, failed)) => (queued.to_vec(), failed),
            None => (Vec::new(), true), // cannot be: EXEC is routed here only in MULTI
        };
        // Where the transaction's WATCHes went, if any, else where it goes.
        let via = group.map(|group| self.via(conn, group));
        let watched = self.forget_watch(conn).is_some();
        match group {
            Some(group) if !failed => {
                self.send(conn, None, HOME, words(&["DISCARD"]), now_ms);
                match via.flatten() {
                    None => {
                        let route = Route::Group(group);
                        self.send_via(conn, None, group, route.clone(), None, words(&["MULTI"]), now_ms);
                        for command in queued {
                            self.send_via(conn, None, group, route.clone(), None, command, now_ms);
                        }
                        self.send_via(conn, Some(seq), group, route, None, exec, now_ms);
                    }
                    Some(member) => {
                        // Whole, in one message: a lost part must not let
                        // the rest run outside the transaction.
                        let Some(line) = self.lines.get_mut(&conn) else { return };
                        let flight = InFlight {
                            seq: Some(seq),
                            route: Route::Group(group),
                            answers: BTreeMap::new(),
                            asked: vec![group],
                            via: Some(member),
                            proxies: BTreeMap::new(),
                        };
                        line.in_flight.push_back(flight);
                        // A transaction that watches nothing first drops
                        // WATCHes the stand-in may still hold: an EXEC
                        // that ended them here was lost on its way (its
                        // client got -TIMEOUT), and they would abort this
                        // one (seed 83 of `make sim-long`'s placed part).
                        let unwatch = (!watched).then(|| words(&["UNWATCH"]));
                        let commands = (unwatch.into_iter())
                            .chain([words(&["MULTI"])])
                            .chain(queued)
                            .chain([exec])
                            .collect();
                        self.proxy(conn, group, member, commands);
                    }
                }
            }
            _ => self.send(conn, Some(seq), HOME, exec, now_ms),
        }
    }

    /// A group's reply: from this member's node of the group, to the
    /// connection's oldest command still waiting for that node; from
    /// another member (`proxy`, its number), to the command it answers.
    fn on_reply(&mut self, group: GroupId, conn: ConnId, reply: Reply, now_ms: u64, proxy: Option<u64>) {
        let Some(line) = self.lines.get_mut(&conn) else { return };
        let waiting = |f: &&mut InFlight| {
            f.asked.contains(&group)
                && !f.answers.contains_key(&group)
                && f.proxies.get(&group).copied() == proxy
        };
        let Some(flight) = line.in_flight.iter_mut().find(waiting) else {
            return;
        };
        flight.answers.insert(group, reply);
        while let Some(head) = line.in_flight.front() {
            if head.answers.len() < head.asked.len() {
                break;
            }
            let done = line.in_flight.pop_front().expect("a head");
            if let Some(seq) = done.seq {
                line.ready.insert(seq, finish(done));
            }
        }
        self.release(conn);
        self.start(conn, now_ms);
    }

    /// Releases the connection's finished replies in sequence order.
    fn release(&mut self, conn: ConnId) {
        let Some(line) = self.lines.get_mut(&conn) else { return };
        while let Some(reply) = line.ready.remove(&line.released) {
            line.released += 1;
            if self.shards > 1 {
                self.stats.replied(line.unanswered.pop_front().flatten(), &reply);
            }
            self.output.replies.push((conn, reply));
        }
    }

    /// Drains every group's output until none has more to say; replies
    /// may start a connection's next commands, whose output is taken too.
    pub fn take_output(&mut self, now_ms: u64) -> RouterOutput {
        let now_ms = self.clock(now_ms);
        loop {
            let (mut replies, mut probed, mut snapshot_starts) = (Vec::new(), Vec::new(), BTreeMap::new());
            let mut touched = std::mem::take(&mut self.touched);
            touched.insert(HOME);
            for (group, node) in self.groups.iter_mut().filter(|(group, _)| touched.contains(group)) {
                let Output { persist, send, replies: answered, snapshot } = node.take_output();
                if self.fatal_group.is_none() && node.fatal().is_some() {
                    self.fatal_group = Some(*group);
                }
                probed.extend(node.take_readiness().into_iter().map(|(n, answer)| (*group, n, answer)));
                let starts = send.iter().filter(|(_, message)| observe::starts_snapshot(message)).count();
                snapshot_starts.insert(*group, starts as u64);
                if !persist.is_empty() {
                    self.output.durable.push((*group, Durable::Records(persist)));
                }
                if let Some(snapshot) = snapshot {
                    self.output.durable.push((*group, Durable::Snapshot(snapshot)));
                }
                self.output.send.extend(send.into_iter().map(|(to, message)| (to, *group, message)));
                replies.extend(answered.into_iter().map(|(conn, reply)| (*group, conn, reply)));
            }
            for group in touched {
                let starts = snapshot_starts.remove(&group).unwrap_or(0);
                self.observe(group, starts);
            }
            for (group, n, answer) in probed {
                self.readiness_answered(group, n, answer);
            }
            if replies.is_empty() {
                // Between this member's cores is not a peer message.
                let me = self.home().raft().id();
                self.messages_sent += self.output.send.iter().filter(|(to, _, _)| *to != me).count() as u64;
                return std::mem::take(&mut self.output);
            }
            for (group, conn, reply) in replies {
                if conn.0 >= STAND_CONN_BASE {
                    self.on_stand_reply(group, conn, reply);
                } else {
                    self.on_reply(group, conn, reply, now_ms, None);
                }
            }
        }
    }
}

/// Keeps `args`, a command that sets a connection up, in `setup`: the last
/// command of each kind (its name, and its subcommand for CLIENT), in the
/// order they came.
fn remember_setup(setup: &mut Vec<Vec<Vec<u8>>>, args: &[Vec<u8>]) {
    let kind = |args: &[Vec<u8>]| {
        let name = args.first().map(|a| a.to_ascii_uppercase()).unwrap_or_default();
        let sub = match name.as_slice() {
            b"CLIENT" => args.get(1).map(|a| a.to_ascii_uppercase()).unwrap_or_default(),
            // READONLY and READWRITE undo each other.
            b"READWRITE" => return b"READONLY".to_vec(),
            _ => Vec::new(),
        };
        [name, sub].concat()
    };
    let this = kind(args);
    setup.retain(|earlier| kind(earlier) != this);
    setup.push(args.to_vec());
}

/// `-TIMEOUT`: the command's outcome is unknown (it may still be applied).
fn is_timeout(reply: &Reply) -> bool {
    matches!(reply, Reply::Error(e) if e.starts_with("TIMEOUT"))
}

fn words(words: &[&str]) -> Vec<Vec<u8>> {
    words.iter().map(|w| w.as_bytes().to_vec()).collect()
}

/// The client's reply to a finished command.
fn finish(flight: InFlight) -> Reply {
    let InFlight { route, mut answers, .. } = flight;
    match route {
        Route::Group(group) => answers.remove(&group).unwrap_or_else(|| Reply::error("ERR no answer")),
        Route::Every => answers.remove(&HOME).unwrap_or_else(|| Reply::error("ERR no answer")),
        // Started as the commands they send, never finished as themselves.
        Route::Exec | Route::Discard => Reply::error("ERR no answer"),
        Route::Scan { group, next, .. } => match answers.remove(&group) {
            Some(Reply::Array(Some(mut parts))) if parts.len() == 2 => {
                let inner = match &parts[0] {
                    Reply::Bulk(Some(cursor)) => {
                        std::str::from_utf8(cursor).ok().and_then(|c| c.parse::<u64>().ok())
                    }
                    _ => None,
                };
                let cursor = match (inner, next) {
                    (Some(0), Some(next)) => u64::from(next.0) << SCAN_GROUP_SHIFT,
                    (Some(0), None) => 0,
                    (Some(inner), _) if inner < 1 << SCAN_GROUP_SHIFT => {
                        (u64::from(group.0) << SCAN_GROUP_SHIFT) | inner
                    }
                    _ => return Reply::error("ERR a group's SCAN cursor is out of range"),
                };
                parts[0] = Reply::bulk(cursor.to_string());
                Reply::Array(Some(parts))
            }
            Some(other) => other,
            None => Reply::error("ERR no answer"),
        },
        Route::Refuse(reply) => reply,
        Route::Split { kind: SplitKind::Sum, .. } => merged(Merge::Sum, answers.into_values().collect()),
        Route::Split { kind: SplitKind::Values, keys, parts } => {
            if let Some(error) = answers.values().find(|a| a.is_error()) {
                return error.clone();
            }
            let mut values = vec![Reply::Bulk(None); keys];
            for (group, positions) in parts {
                let Some(Reply::Array(Some(items))) = answers.remove(&group) else {
                    return Reply::error("ERR a group's MGET answer is not an array");
                };
                for (position, item) in positions.into_iter().zip(items) {
                    values[position] = item;
                }
            }
            Reply::Array(Some(values))
        }
        Route::Merge(merge) => merged(merge, answers.into_values().collect()),
    }
}

/// The groups' answers merged into one (the first error if any).
fn merged(merge: Merge, answers: Vec<Reply>) -> Reply {
    if let Some(error) = answers.iter().find(|a| a.is_error()) {
        return error.clone();
    }
    match merge {
        Merge::Sum => {
            Reply::Integer(answers.iter().map(|a| if let Reply::Integer(n) = a { *n } else { 0 }).sum())
        }
        Merge::Concat => Reply::Array(Some(
            answers
                .into_iter()
                .flat_map(|a| match a {
                    Reply::Array(Some(items)) | Reply::Set(items) => items,
                    _ => Vec::new(),
                })
                .collect(),
        )),
        Merge::AllOk => Reply::ok(),
        Merge::AnyKey(pick) => {
            let keys: Vec<Reply> = answers.into_iter().filter(|a| *a != Reply::Bulk(None)).collect();
            match keys.len() {
                0 => Reply::Bulk(None),
                n => keys[(pick % n as u64) as usize].clone(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::Raft;

    fn router(shards: u32) -> Router {
        let groups = group_ids(shards)
            .into_iter()
            .map(|g| {
                let node =
                    Node::restore(super::super::NodeConfig::new(NodeId(1)), 1, Raft::bootstrap([NodeId(1)]));
                (g, node.unwrap())
            })
            .collect();
        Router::new(shards, groups)
    }

    #[test]
    fn every_slot_is_in_the_range_of_its_group() {
        for shards in [1, 2, 3, 4, 7, 16, 1024] {
            let router = router(shards);
            let mut next = 0u32;
            for group in router.key_groups() {
                let (first, last) = router.slots_of(group);
                assert_eq!(
                    u32::from(first),
                    next,
                    "{shards} shards: group {group:?} starts where the last ended"
                );
                assert!(first <= last);
                for slot in [first, last, first + (last - first) / 2] {
                    assert_eq!(router.group_of_slot(slot), group, "{shards} shards, slot {slot}");
                }
                next = u32::from(last) + 1;
            }
            assert_eq!(next, u32::from(SLOTS), "{shards} shards cover every slot");
        }
    }
}
