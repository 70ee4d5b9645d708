//! One replica: the Raft core, the key-value store, and the client requests
//! in flight. Pure and deterministic like the core it wraps.
//!
//! A shell drives a [`Node`] exactly as it drives `raft::Raft` (see the
//! `raft` module docs for the order of persist, send, apply): feed
//! [`Node::tick`], [`Node::step`], [`Node::client`], [`Node::persisted`],
//! then drain [`Node::take_output`] and
//!
//! 1. persist `Output::persist` (one write, one fsync), then `persisted`;
//! 2. send `Output::send` to peers;
//! 3. write each `Output::replies` entry to its connection, in order (each
//!    is already shaped for the connection's protocol: encode it as is);
//! 4. write `Output::snapshot` (compaction) if present.
//!
//! Rules it keeps:
//! - a connection's commands take effect in the order it sent them, and
//!   its replies leave in that order (`session`);
//! - a write is answered only once its entry is committed and applied here;
//!   it carries the leader's `now_ms` (a forwarded write too), so every
//!   replica computes the same result and TTLs follow the leader's clock;
//! - a write at a follower is forwarded to the leader and answered by the
//!   follower when the leader's reply comes back;
//! - a read is linearizable (ReadIndex, on any node) unless the connection
//!   said `READONLY`; then it is served from local state (after the
//!   connection's own writes);
//! - MULTI/EXEC is one log entry; WATCH is checked when it is applied
//!   (`transaction`);
//! - no leader known → `-CLUSTERDOWN`; a write whose fate is unknown (the
//!   leader lost leadership before it committed, or a forwarded write got no
//!   answer in time) → `-TIMEOUT`: it may or may not have happened.
//!
//! `Node::check_invariants` checks the bookkeeping after every output.

use crate::kv::{classify, Access, Store};
use crate::protocol::Reply;
use crate::raft::{
    self, Apply, Config, Index, Lsn, Message, NodeId, Payload, PlantedBug, Raft, ReadError, ReadId, Record,
    Recovered, Snapshot, Term,
};
use serde::{Deserialize, Serialize};
use session::{Queued, Session, Ticket, Work};
use std::collections::{BTreeMap, BTreeSet};

mod acl;
mod acl_categories;
mod blocking;
mod cluster;
pub mod handshake;
pub mod metrics;
pub mod placement;
mod router;
mod server;
mod session;
mod slots;
mod transaction;
pub mod wire;
pub use acl::{Acl, User};
pub use blocking::{BLOCK_UNKNOWN, CASHE_BLOCK, CASHE_UNBLOCK};
pub use cluster::{
    join_answer, join_command, member_command, Directory, JoinAnswer, MemberInfo, Transport, CASHE_FORGET,
    CASHE_MEMBER, FOUNDER,
};
pub use router::{
    core_for_message, core_of, group_ids, CoreReport, Durable, GroupCounters, GroupId, GroupState, HomeView,
    Router, RouterOutput, CORES_MAX, HOME,
};
use server::RouterInfo;
pub use server::{CpuTimes, ShellStats};
pub use slots::ClusterMode;
pub use transaction::CASHE_EXEC;

/// A client connection, numbered by the shell.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ConnId(pub u64);

/// What nodes send each other: Raft traffic and forwarded client writes.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum NodeMessage {
    Raft(Message),
    /// A follower's client write, for the leader of `term` to propose. A
    /// leader of another term refuses it (it was meant for a leader that is
    /// gone): a forward delayed past a leader change must not be applied
    /// after writes the same connection sent later.
    Forward {
        id: u64,
        term: Term,
        /// The forwarding node's clock. The leader stamps the entry with
        /// its own; only the planted bug `follower-stamps-ttl` uses this.
        now_ms: u64,
        #[serde(with = "crate::frame::byte_lists")]
        args: Vec<Vec<u8>>,
    },
    /// The leader's answer to a forwarded write, with the entry's index when
    /// it was applied (the follower's READONLY reads wait for it).
    ForwardReply {
        id: u64,
        reply: Reply,
        index: Option<Index>,
    },
    /// The leader to a node that still talks Raft after its removal was
    /// committed (a removed node is not replicated to, so it never learns
    /// of the entry that removed it).
    Removed,
    /// "Am I still a member?" from a node whose own log no longer lists it
    /// (it may never hear whether its removal committed); a leader answers
    /// `Removed` if it did.
    Probe,
    /// The groups the sender leads quietly, with the term and the commit
    /// index for the receiver (`raft::quiesce`): one per member and beat
    /// period for all of them (naming none if it leads none quietly), sent
    /// and taken by the `Router` in place of each group's heartbeats.
    Beat {
        groups: Vec<(router::GroupId, Term, Index)>,
        /// Every key group the sender leads, with its term, when key groups
        /// are placed on some members only (`placement`): members that do
        /// not hold a group learn its leader from these.
        leads: Vec<(router::GroupId, Term)>,
        /// The sender's core (`router::core_of`) and how many it runs: a
        /// member with several cores beats from each, for the groups on
        /// that core, and receivers keep each core's beats apart.
        core: u32,
        cores: u32,
    },
    /// A client command of the sender's connection `conn`, for the
    /// receiver's replica of the message's group, which the sender does not
    /// hold (`router`, "Groups held elsewhere"): the receiver runs it on a
    /// connection of its own standing for that one, after `setup` (what the
    /// client sent to set its connection up: HELLO, AUTH, SELECT...,
    /// answers dropped) whenever that changed, and answers `ProxyReply`.
    ///
    /// `commands` run in order and only the last one's answer goes back
    /// (a transaction travels whole: MULTI, its commands, EXEC). `seq`
    /// numbers the messages of one connection, group and receiver from 0:
    /// one missing (lost, or the receiver restarted) could have set up
    /// state the next relies on (MULTI, WATCH), so the receiver refuses the
    /// message after a gap and starts the stand-in connection afresh.
    Proxy {
        /// Drawn by the sender at boot: a new one tells the receiver the
        /// sender restarted, and its stand-ins for the sender's earlier
        /// connections are closed.
        boot: u64,
        conn: u64,
        id: u64,
        seq: u64,
        setup: Vec<Vec<Vec<u8>>>,
        commands: Vec<Vec<Vec<u8>>>,
    },
    /// The answer to `Proxy` number `id`.
    ProxyReply {
        conn: u64,
        id: u64,
        reply: Reply,
    },
    /// The sender's connection `conn` closed: its stand-in here closes too.
    ProxyClose {
        conn: u64,
    },
}

/// The command stored in a log entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct LoggedCommand {
    now_ms: u64,
    #[serde(with = "crate::frame::byte_lists")]
    args: Vec<Vec<u8>>,
}

/// An entry's command as `cashe dump` prints it: the leader's clock and
/// the arguments, each quoted with its bytes escaped as redis-cli shows
/// them and cut after 64 bytes.
pub fn describe_logged_command(bytes: &[u8]) -> String {
    const SHOWN_BYTES_MAX: usize = 64;
    let command = match postcard::from_bytes::<LoggedCommand>(bytes) {
        Ok(command) => command,
        Err(e) => return format!("undecodable command of {} bytes: {e}", bytes.len()),
    };
    let mut text = format!("at {} ms:", command.now_ms);
    for arg in &command.args {
        let shown: String = arg[..arg.len().min(SHOWN_BYTES_MAX)]
            .iter()
            .flat_map(|b| std::ascii::escape_default(*b))
            .map(char::from)
            .collect();
        text.push_str(&format!(" \"{shown}\""));
        if arg.len() > SHOWN_BYTES_MAX {
            text.push_str(&format!("...({} bytes)", arg.len()));
        }
    }
    text
}

/// Node tuning beyond Raft's.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct NodeConfig {
    pub raft: Config,
    /// A forwarded write without an answer after this many ticks gets `-TIMEOUT`.
    pub forward_timeout_ticks: u32,
    /// The leader proposes deletion of expired keys every this many ticks.
    pub expiry_ticks: u32,
    /// At most this many keys per expiry batch.
    pub expiry_batch_keys_max: usize,
    /// Compact the log once this many entries are applied past the
    /// snapshot (staggered by member number, see `compaction_threshold`).
    pub snapshot_entries: u64,
    /// Entries up to the snapshot kept in memory for followers a little
    /// behind (`Raft::compact`).
    pub log_retain_entries: u64,
    /// The cluster this node belongs to (from the data directory's `meta`).
    pub cluster_id: u64,
    /// This node's own name and addresses; when set, a leader records them
    /// in the directory. `None` in tests that need no directory.
    pub me: Option<MemberInfo>,
    /// The default user's password (`--requirepass`): with one, a
    /// connection must AUTH (or HELLO … AUTH) before anything else.
    pub requirepass: Option<Password>,
    /// The peer links' shared secret (`--cluster-secret`): with one, a
    /// `CLUSTER JOIN` must carry its proof (the links themselves are
    /// checked by the shells, see `handshake`).
    pub cluster_secret: Option<handshake::ClusterSecret>,
    /// The users of `--aclfile` (`acl`); `None`: only the default user,
    /// with `requirepass` as its password. Not both.
    pub acl: Option<Acl>,
    /// Whether keyed commands for a shard this node does not lead are
    /// redirected (`-MOVED`) or forwarded (`--cluster-mode`, see `slots`).
    pub cluster_mode: ClusterMode,
    /// Groups the key space is in (`router`), fixed when the cluster is
    /// made; the home group tells joining members (`CLUSTER JOIN`'s reply).
    pub shards: u32,
    /// Members each key group is placed on (`placement`; 0: every member).
    pub replicas: u32,
    /// The group this node is of (`router::GroupId`; 0, the home group,
    /// with one shard). With several shards a node serves and applies only
    /// commands whose keys are in its group's slots (`slots::foreign_slot`).
    pub group: u32,
}

impl NodeConfig {
    /// The config of this member's node of `group`, from the member's: a
    /// key group knows its number (its slots, `slots::foreign_slot`),
    /// keeps no directory of its own and never redirects (the router does
    /// both with the home group's).
    pub fn for_group(&self, group: GroupId) -> NodeConfig {
        let mut config = self.clone();
        config.group = group.0;
        if group != HOME {
            config.me = None;
            config.cluster_mode = ClusterMode::Forward;
        }
        config
    }
}

/// A password: compared, never shown (its `Debug` is redacted, so no log
/// line or panic message can hold it).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Password(Vec<u8>);

impl Password {
    pub fn new(bytes: impl Into<Vec<u8>>) -> Password {
        Password(bytes.into())
    }

    /// The password itself, for hashing it (`acl`); never to be shown.
    pub(crate) fn expose(&self) -> &[u8] {
        &self.0
    }

    /// Whether `attempt` is this password, in time independent of where
    /// they differ.
    pub fn matches(&self, attempt: &[u8]) -> bool {
        let difference = self.0.iter().zip(attempt).fold(0u8, |d, (a, b)| d | (a ^ b));
        self.0.len() == attempt.len() && difference == 0
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

impl NodeConfig {
    pub fn new(id: NodeId) -> NodeConfig {
        NodeConfig {
            raft: Config::new(id),
            forward_timeout_ticks: 50,
            expiry_ticks: 10,
            expiry_batch_keys_max: 256,
            snapshot_entries: 100_000,
            log_retain_entries: 50_000,
            cluster_id: 0,
            me: None,
            requirepass: None,
            cluster_secret: None,
            acl: None,
            cluster_mode: ClusterMode::Forward,
            shards: 1,
            replicas: 0,
            group: 0,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Requester {
    Local(Ticket),
    /// The barrier a connection's read waits for after one of the
    /// connection's writes timed out (`Node::pump`); the read's ticket.
    Barrier(Ticket),
    Remote {
        from: NodeId,
        id: u64,
    },
    /// The `CASHE.BLOCK` of this node's wait number n (`blocking`).
    Block(u64),
    /// The `CASHE.UNBLOCK` of this node's wait number n.
    Unblock(u64),
    /// The shell's readiness probe number n (`Node::probe_readiness`).
    Readiness(u64),
}

/// An internal no-op command: once applied, every write this node forwarded
/// to the same leader before it is settled (`Node::pump`).
pub const CASHE_BARRIER: &str = "CASHE.BARRIER";

/// What a read computes once the state is current enough.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum ReadWhat {
    /// A key-space read command.
    Command(Vec<Vec<u8>>),
    /// WATCH: the keys' versions, kept by the connection for its EXEC.
    Watch(Vec<Vec<u8>>),
    /// A readiness probe: nothing to compute once the index is applied.
    Readiness,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct PendingRead {
    requester: Requester,
    what: ReadWhat,
    now_ms: u64,
    /// Ticks until it is answered `-TIMEOUT` (a read request or its answer
    /// can be lost; the client must not wait forever).
    ticks_left: u32,
}

pub const READ_TIMEOUT: &str = "TIMEOUT the read could not be confirmed with the leader in time; retry";

/// Room in one frame (`crate::frame`) for what surrounds a logged command:
/// the entry's index, term and payload tag in a WAL record; the message
/// around an `Append` carrying the entry alone (`raft::Config` bounds
/// batches, and `node::wire` asserts this limit below the core's
/// `ENTRY_COMMAND_BYTES_MAX`); the id, term and clock of a `Forward`.
/// Those take well under 200 bytes; this is generous on purpose.
pub const COMMAND_HEADROOM_BYTES: usize = 64 << 10;

/// The largest command a node accepts, proposes or forwards, measured as
/// its log encoding ([`command_bytes`]): whatever carries it then fits in
/// one frame, so no disk task or peer link meets a payload it cannot frame.
/// `--max-query-bytes` may not exceed it.
pub const COMMAND_BYTES_MAX: usize = crate::frame::FRAME_PAYLOAD_BYTES_MAX as usize - COMMAND_HEADROOM_BYTES;

const _: () = assert!(COMMAND_HEADROOM_BYTES >= 1 << 10, "headroom for every header around a command");
const _: () =
    assert!(COMMAND_BYTES_MAX + COMMAND_HEADROOM_BYTES <= crate::frame::FRAME_PAYLOAD_BYTES_MAX as usize);
const _: () = assert!(COMMAND_BYTES_MAX >= 32 << 20, "commands of tens of MiB stay possible");

/// The most bytes a command's log encoding (`postcard` of a
/// [`LoggedCommand`]) can take: each argument with its varint length, the
/// argument count's varint, and a timestamp at its widest (10 bytes).
pub fn command_bytes(args: &[Vec<u8>]) -> usize {
    fn varint_bytes(n: usize) -> usize {
        (usize::BITS as usize - n.leading_zeros() as usize).div_ceil(7).max(1)
    }
    let arguments: usize = args.iter().map(|a| varint_bytes(a.len()).saturating_add(a.len())).sum();
    arguments.saturating_add(varint_bytes(args.len())).saturating_add(10)
}

/// The error for a command over [`COMMAND_BYTES_MAX`], if `args` is one.
fn refuse_oversized(args: &[Vec<u8>]) -> Option<Reply> {
    let bytes = command_bytes(args);
    (bytes > COMMAND_BYTES_MAX).then(|| {
        Reply::error(format!("ERR command of {bytes} bytes is over the maximum of {COMMAND_BYTES_MAX} bytes"))
    })
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Output {
    pub persist: Vec<(Lsn, Record)>,
    pub send: Vec<(NodeId, NodeMessage)>,
    pub replies: Vec<(ConnId, Reply)>,
    pub snapshot: Option<Snapshot>,
}

pub const CLUSTERDOWN: &str = "CLUSTERDOWN no leader is known; retry later";
/// Redis's refusal of a write that may add data while over `maxmemory`.
pub const OOM: &str = "OOM command not allowed when used memory > 'maxmemory'.";
pub const TIMEOUT: &str =
    "TIMEOUT the write may or may not have been applied: leadership changed before it committed";
/// A forward that reached a leader of another term than the follower's: not proposed.
pub const STALE_FORWARD: &str = "TRYAGAIN the leader changed before the write arrived; it was not applied";

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Node {
    config: NodeConfig,
    raft: Raft,
    store: Store,
    directory: Directory,
    /// Index of this leader's own `CASHE.MEMBER` entry until it is applied.
    self_record_at: Option<Index>,
    /// A leader said this node was removed.
    removed_notice: bool,
    /// Why this node must stop (state it cannot trust); the shell exits.
    fatal: Option<String>,
    /// The shell asked for a snapshot at the applied index (`compact_soon`).
    compact_asked: bool,
    /// Proposed writes by index, with the term they were proposed in.
    writes: BTreeMap<Index, (Term, Requester)>,
    /// The last index applied to the store. Raft's own `applied` moves when
    /// it hands entries out, before they reach the store: reads must wait
    /// for this one.
    applied: Index,
    /// Reads waiting for their read index.
    reads: BTreeMap<ReadId, PendingRead>,
    /// Reads whose index is known (or READONLY reads waiting for the
    /// connection's writes), waiting to be applied.
    ready_reads: Vec<(Index, PendingRead)>,
    next_read: u64,
    /// Readiness probes answered since the shell last took them (`probe_readiness`).
    readiness_answered: Vec<(u64, Result<(), String>)>,
    /// The process's allocated bytes and `--maxmemory`, as the shell last
    /// said (`set_memory`; 0 and 0 in the simulator and the model).
    memory: (u64, u64),
    /// Writes forwarded to the leader: id -> (who waits, ticks left).
    forwarded: BTreeMap<u64, (Requester, u32)>,
    /// Forward ids start at a random point each boot, so a late answer to a
    /// forward of a previous boot cannot be taken for one of this boot's.
    next_forward: u64,
    /// Every connection that sent a command: order, replies, its settings.
    sessions: BTreeMap<ConnId, Session>,
    /// Connections whose next command may be able to start.
    to_pump: BTreeSet<ConnId>,
    /// Per-connection state of the server commands (CLIENT SETNAME, ...).
    clients: server::Clients,
    /// This node's blocked clients by wait number (`blocking`).
    waits: BTreeMap<u64, blocking::Wait>,
    /// Wait numbers start at a random point each boot, like forward ids:
    /// a wait of a previous run is never taken for one of this run.
    next_wait: u64,
    /// A number drawn at boot, for the router's proxy numbers (`router`,
    /// "Groups held elsewhere"): like forward ids, never those of a
    /// previous run.
    boot_nonce: u64,
    /// Counters only the shell can know (fsyncs, latencies), for INFO.
    pub shell_stats: ShellStats,
    /// The key space's groups as the router sees them (`slots`); `None`
    /// when this node's own group holds every slot.
    shard_views: Option<slots::ShardViews>,
    /// With several shards, what INFO reports of the whole member rather
    /// than of this home group, from the router when it routes an INFO.
    router_info: Option<RouterInfo>,
    now_ms: u64,
    ticks: u64,
    output: Output,
}

impl Node {
    /// Rebuilds a node; the store is restored from the recovered snapshot
    /// and the committed entries after it are re-applied.
    /// With several shards, its group's leader goes quiet when idle
    /// (`raft::quiesce`; the `Router`'s beats stand in for heartbeats).
    pub fn restore(mut config: NodeConfig, seed: u64, recovered: Recovered) -> Result<Node, String> {
        config.raft.quiesce = config.shards > 1;
        let (directory, store) = match &recovered.snapshot {
            Some(snapshot) => decode_snapshot(&snapshot.data)?,
            None => (Directory::default(), Store::default()),
        };
        let applied = recovered.snapshot.as_ref().map_or(Index(0), |snapshot| snapshot.meta.index);
        let raft = Raft::restore(config.raft.clone(), seed, recovered).map_err(|e| e.to_string())?;
        let next_forward = raft::SplitMix64::new(seed ^ 0xf0f0_f0f0).next_u64() >> 1;
        let next_wait = raft::SplitMix64::new(seed ^ 0x0b10_c4ed).next_u64() >> 1;
        let boot_nonce = raft::SplitMix64::new(seed ^ 0x0b00_7000).next_u64();
        let mut node = Node {
            config,
            raft,
            store,
            directory,
            self_record_at: None,
            removed_notice: false,
            fatal: None,
            compact_asked: false,
            writes: BTreeMap::new(),
            applied,
            reads: BTreeMap::new(),
            ready_reads: Vec::new(),
            next_read: 0,
            readiness_answered: Vec::new(),
            memory: (0, 0),
            forwarded: BTreeMap::new(),
            next_forward,
            sessions: BTreeMap::new(),
            to_pump: BTreeSet::new(),
            clients: server::Clients::default(),
            waits: BTreeMap::new(),
            next_wait,
            boot_nonce,
            shell_stats: ShellStats::default(),
            shard_views: None,
            router_info: None,
            now_ms: 0,
            ticks: 0,
            output: Output::default(),
        };
        node.plant_spop_local_random();
        Ok(node)
    }

    /// The planted bug `spop-local-random`: this replica's random draws
    /// for writes get a salt of its own (`kv::Store::plant_replica_random`).
    fn plant_spop_local_random(&mut self) {
        if self.config.raft.planted_bug.active(PlantedBug::SpopLocalRandom) {
            self.store.plant_replica_random(self.raft.id().0.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        }
    }

    /// A number drawn when this node was made (see `boot_nonce`).
    pub(super) fn boot_nonce(&self) -> u64 {
        self.boot_nonce
    }

    pub fn config(&self) -> &NodeConfig {
        &self.config
    }

    /// `Raft::step_down_quiet`, for the router's check-quorum of quiet
    /// leaders.
    pub fn step_down_quiet(&mut self) -> bool {
        self.raft.step_down_quiet()
    }

    pub fn raft(&self) -> &Raft {
        &self.raft
    }

    /// The node's clock: the largest `now_ms` it has been given (0 before
    /// the first). It stamps what this node proposes and judges expiry.
    pub fn now_ms(&self) -> u64 {
        self.now_ms
    }

    /// Moves the clock forward to `now_ms` (never back): the router keeps
    /// one clock for all the groups of a member.
    pub(super) fn advance_clock(&mut self, now_ms: u64) {
        self.now_ms = self.now_ms.max(now_ms);
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// One logical tick, with the shell's wall clock: the leader needs the
    /// time to find expired keys even when no client is talking to it.
    pub fn tick(&mut self, now_ms: u64) {
        self.now_ms = self.now_ms.max(now_ms);
        self.ticks += 1;
        self.raft.tick();
        self.expire_forwards();
        self.tick_waits();
        if self.raft.is_leader() && self.ticks.is_multiple_of(u64::from(self.config.expiry_ticks.max(1))) {
            self.propose_expiry();
        }
        self.reconcile_membership();
        self.probe_if_left_out();
        self.settle();
    }

    /// Whether a tick would find nothing to do here (`Router::tick` leaves
    /// such a group alone): the group is quiet (this node its quiet leader,
    /// or `held` by its quiet leader's beats) and nothing waits for a
    /// tick: no write, read, forward, blocked client, key due to expire,
    /// or (as leader) membership change towards `target` (members of
    /// `directory`, the home group's) or hand-over (a refused one is
    /// retried on a later tick).
    pub fn is_dormant(
        &self,
        held: bool,
        now_ms: u64,
        directory: &Directory,
        target: &BTreeSet<NodeId>,
    ) -> bool {
        let leader = self.raft.is_leader();
        if leader
            && (self.membership_change_towards(directory, target).is_some()
                || self.must_hand_over(directory, target))
        {
            return false;
        }
        let quiet = if leader { self.raft.is_quiet() } else { held };
        let expiry_due = leader && self.store.next_expiry_ms().is_some_and(|at| at <= now_ms);
        quiet
            && !expiry_due
            && self.writes.is_empty()
            && self.reads.is_empty()
            && self.ready_reads.is_empty()
            && self.forwarded.is_empty()
            && self.waits.is_empty()
            && self.self_record_at.is_none()
    }

    /// A beat's line for this group (`NodeMessage::Beat`). Returns whether
    /// it changed more than the election timer (a leader or commit index
    /// learned), so that the output must be taken.
    pub fn on_quiet_beat(&mut self, from: NodeId, term: Term, commit: Index) -> bool {
        let before = (self.raft.leader(), self.raft.commit(), self.raft.role());
        self.raft.on_quiet_beat(from, term, commit);
        self.settle();
        before != (self.raft.leader(), self.raft.commit(), self.raft.role())
    }

    pub fn step(&mut self, from: NodeId, message: NodeMessage) {
        match message {
            NodeMessage::Raft(message) => {
                self.tell_if_removed(from);
                self.raft.step(from, message)
            }
            NodeMessage::Probe => self.tell_if_removed(from),
            // The router's (`Router::step`); it never reaches a node.
            NodeMessage::Beat { .. }
            | NodeMessage::Proxy { .. }
            | NodeMessage::ProxyReply { .. }
            | NodeMessage::ProxyClose { .. } => {}
            NodeMessage::Removed => {
                if !self.raft.membership().contains(self.raft.id())
                    || self.directory.removed.contains(&self.raft.id())
                {
                    self.removed_notice = true;
                }
            }
            NodeMessage::Forward { id, term, now_ms, args } => self.on_forward(from, id, term, now_ms, args),
            NodeMessage::ForwardReply { id, reply, index } => {
                if let Some((requester, _)) = self.forwarded.remove(&id) {
                    self.answer(requester, reply, index);
                }
            }
        }
        self.settle();
    }

    fn tell_if_removed(&mut self, from: NodeId) {
        if self.raft.is_leader()
            && self.directory.removed.contains(&from)
            && !self.raft.committed_membership().contains(from)
        {
            self.output.send.push((from, NodeMessage::Removed));
        }
    }

    /// A node whose own log no longer lists it asks the members now and
    /// then whether its removal committed (it is not replicated to, and as
    /// a non-member it does not campaign, so nobody would tell it).
    fn probe_if_left_out(&mut self) {
        let me = self.raft.id();
        let membership = self.raft.membership();
        let period = u64::from(self.config.raft.election_ticks) * 2;
        if membership.contains(me) || self.removed_notice || !self.ticks.is_multiple_of(period.max(1)) {
            return;
        }
        let members: Vec<NodeId> = membership.members().collect();
        for member in members {
            self.output.send.push((member, NodeMessage::Probe));
        }
    }

    pub fn persisted(&mut self, through: Lsn) {
        self.raft.persisted(through);
    }

    /// A client command (its arguments, the command name first) at the
    /// shell's wall-clock time.
    pub fn client(&mut self, conn: ConnId, args: Vec<Vec<u8>>, now_ms: u64) {
        self.now_ms = self.now_ms.max(now_ms);
        let session = self.sessions.entry(conn).or_default();
        let mut ticket = session.ticket(conn);
        let name = args.first().map(|a| a.to_ascii_uppercase()).unwrap_or_default();
        self.clients.received(conn, &name, &args, self.now_ms);
        if self.needs_auth(conn, &name, &args) {
            let reply = self.reject(conn, &name, server::NOAUTH.to_string());
            return self.reply(ticket, reply);
        }
        if let Some(reply) = self.acl_refusal(conn, &name, &args) {
            return self.reply(ticket, reply);
        }
        if let Some(reply) = self.redirection(conn, &name, &args) {
            return self.reply(ticket, reply);
        }
        if let Some(reply) = self.foreign_keys(conn, &name, &args) {
            return self.reply(ticket, reply);
        }
        let session = self.sessions.entry(conn).or_default();
        if let Some(reply) = refuse_oversized(&args) {
            // As Redis treats a command it refuses inside MULTI: EXEC
            // will answer EXECABORT.
            if let Some(multi) = session.multi.as_mut() {
                multi.failed = true;
            }
            return self.reply(ticket, reply);
        }
        if session.multi.is_some() && !transaction::runs_inside_multi(&name) {
            let reply = self.queue_in_multi(conn, &name, args);
            return self.reply(ticket, reply);
        }
        match name.as_slice() {
            b"READONLY" | b"READWRITE" => {
                session.readonly = name.as_slice() == b"READONLY";
                return self.reply(ticket, Reply::ok());
            }
            b"MULTI" | b"EXEC" | b"DISCARD" | b"WATCH" | b"UNWATCH" => {
                if let Some(reply) = self.transaction_command(ticket, &name, args) {
                    self.reply(ticket, reply);
                }
                return self.settle();
            }
            _ => {}
        }
        if let Some(reply) = self.server_command(conn, &name, &args) {
            // HELLO answers in the protocol it switched to.
            ticket.protocol = self.sessions.get(&conn).map_or(ticket.protocol, |s| s.protocol);
            return self.reply(ticket, reply);
        }
        if let Some(reply) = self.cluster_command(ticket, &name, &args) {
            return self.reply(ticket, reply);
        }
        if name.as_slice() == b"CLUSTER" {
            return self.settle(); // a membership write, answered once applied
        }
        if let Some(reply) = refuse_internal(&name) {
            return self.reply(ticket, reply);
        }
        match classify(&args) {
            Err(reply) => self.reply(ticket, reply),
            Ok(Access::Read) => {
                let stale = self.reads_stale(conn);
                self.enqueue(ticket, Work::Read { args, stale });
            }
            Ok(Access::Write) if crate::kv::is_blocking(&args) => self.enqueue(ticket, Work::Block { args }),
            Ok(Access::Write) => self.enqueue(ticket, Work::Write { args }),
        }
    }

    /// Whether the connection's reads are served from local state.
    fn reads_stale(&self, conn: ConnId) -> bool {
        let planted = self.config.raft.planted_bug.active(PlantedBug::StaleRead);
        planted || self.sessions.get(&conn).is_some_and(|s| s.readonly)
    }

    /// Queues an ordered command behind the connection's earlier ones and
    /// starts whatever may start.
    fn enqueue(&mut self, ticket: Ticket, work: Work) {
        let Some(session) = self.sessions.get_mut(&ticket.conn) else { return };
        session.waiting.push_back(Queued { ticket, work });
        self.to_pump.insert(ticket.conn);
        self.settle();
    }

    /// Starts the commands that may start and serves the reads that are
    /// ready, until nothing more can happen without new input.
    fn settle(&mut self) {
        loop {
            self.serve_ready_reads();
            let Some(conn) = self.to_pump.pop_first() else { return };
            self.pump(conn);
        }
    }

    /// Starts the connection's waiting commands that may start, in order.
    ///
    /// A write answered `-TIMEOUT` may still be in a leader's log, and be
    /// applied after a later command of its connection looked at the state.
    /// So after one, the connection is `uncertain`, and its next read first
    /// sends an internal no-op write, [`CASHE_BARRIER`], down the same path
    /// its writes took: once that is applied, any such write is either
    /// before it in the log, and applied, or gone for good (a forward
    /// reaches the leader in order on its link, and one meant for an older
    /// term is refused). Only then does the read start.
    fn pump(&mut self, conn: ConnId) {
        let skip_writes = self.config.raft.planted_bug.active(PlantedBug::ReadSkipsOwnWrites);
        loop {
            let Some(session) = self.sessions.get_mut(&conn) else { return };
            if !session.head_may_start(skip_writes) || session.barrier {
                return;
            }
            let head = session.waiting.front().expect("a head that may start");
            if session.uncertain && head.work.class() == session::Class::Read {
                session.barrier = true;
                let ticket = head.ticket;
                self.start_write(Requester::Barrier(ticket), vec![CASHE_BARRIER.as_bytes().to_vec()]);
                continue;
            }
            let queued = session.waiting.pop_front().expect("a head that may start");
            session.started(queued.ticket.seq, queued.work.class());
            self.start(queued);
        }
    }

    fn start(&mut self, queued: Queued) {
        let Queued { ticket, work } = queued;
        let requester = Requester::Local(ticket);
        match work {
            Work::Read { args, stale } => self.start_read(requester, ReadWhat::Command(args), stale),
            Work::Watch { keys, stale } => self.start_read(requester, ReadWhat::Watch(keys), stale),
            Work::Write { args } => self.start_write(requester, args),
            Work::Block { args } => self.start_block(ticket, args),
            Work::Exec(queued) => self.start_exec(ticket, queued),
            Work::Unwatch => {
                if let Some(session) = self.sessions.get_mut(&ticket.conn) {
                    session.watches.clear();
                }
                self.reply(ticket, Reply::ok());
            }
        }
    }

    /// A client connected (counted by INFO and CLIENT before it says
    /// anything), over `transport`: the client addresses it is told follow it.
    pub fn connected(&mut self, conn: ConnId, transport: Transport, now_ms: u64) {
        self.now_ms = self.now_ms.max(now_ms);
        self.clients.seen(conn, self.now_ms);
        self.clients.opened_over(conn, transport);
    }

    /// The connection closed: forget its per-connection state. Its commands
    /// in flight still take effect; their replies go nowhere.
    pub fn disconnected(&mut self, conn: ConnId) {
        self.disconnect_waits(conn);
        self.clients.disconnected(conn);
        self.sessions.remove(&conn);
        self.to_pump.remove(&conn);
    }

    /// A member's display name (its `--id`), for INFO, ROLE and CLUSTER.
    pub fn member_name(&self, id: NodeId) -> String {
        match self.directory.members.get(&id) {
            Some(info) => info.name.clone(),
            None => format!("node{id}"),
        }
    }

    /// A member's client address (`host:port`), when known.
    pub fn member_client_addr(&self, id: NodeId) -> Option<String> {
        self.directory.members.get(&id).map(|info| info.client_addr.clone())
    }

    /// Starts handing leadership to the most up-to-date other voter (for a
    /// graceful shutdown). Returns the chosen voter, or `None` when this
    /// node is not a leader or has no other voter.
    pub fn transfer_leadership(&mut self) -> Option<NodeId> {
        self.transfer_leadership_among(|_| true)
    }

    /// `transfer_leadership` to the most up-to-date other voter `allowed`
    /// accepts.
    pub(super) fn transfer_leadership_among(&mut self, allowed: impl Fn(NodeId) -> bool) -> Option<NodeId> {
        let me = self.raft.id();
        let progress = self.raft.progress();
        let target = self
            .raft
            .membership()
            .voters
            .iter()
            .filter(|v| **v != me && allowed(**v))
            .max_by_key(|v| (progress.get(v).map(|p| p.match_index), std::cmp::Reverse(**v)))
            .copied()?;
        self.raft.transfer_leadership(target).ok().map(|_| target)
    }

    /// Starts handing leadership to `to` (the router's leader balancing);
    /// whether the core took it (this node leads and `to` is a voter).
    pub(super) fn transfer_leadership_to(&mut self, to: NodeId) -> bool {
        self.raft.transfer_leadership(to).is_ok()
    }

    /// Why this node must stop, once it has met state it cannot trust (an
    /// undecodable snapshot from the leader). The shell exits with it.
    pub fn fatal(&self) -> Option<&str> {
        self.fatal.as_deref()
    }

    /// Has the node take a snapshot at its applied index at the next
    /// output, if anything was applied since the last one: a log shared by
    /// several groups asks it of a group whose few old entries keep its
    /// oldest segment (`Wal::pinning`).
    pub fn compact_soon(&mut self) {
        self.compact_asked = true;
    }

    /// The shell's reading of the process's allocated bytes, and
    /// `--maxmemory` (0: no limit). While the bytes are over the limit,
    /// this node, as leader, refuses the writes that may add data before
    /// proposing them (`-OOM`, Redis's noeviction): the leader alone
    /// decides, so every replica applies the same entries.
    pub fn set_memory(&mut self, used: u64, limit: u64) {
        self.memory = (used, limit);
    }

    fn over_maxmemory(&self) -> bool {
        let (used, limit) = self.memory;
        limit > 0 && used > limit
    }

    /// Starts readiness probe `n`: a ReadIndex round like a linearizable
    /// read's, which succeeds once a leader has confirmed its leadership
    /// with a quorum after the probe started and this node has applied
    /// the leader's commit index as of then; it fails as such a read
    /// fails (no leader known, a timeout, leadership changed). Its answer
    /// is taken with `take_readiness`.
    pub fn probe_readiness(&mut self, n: u64) {
        self.start_read(Requester::Readiness(n), ReadWhat::Readiness, false);
    }

    /// The probes answered since the last call: `Err` says why one failed.
    pub fn take_readiness(&mut self) -> Vec<(u64, Result<(), String>)> {
        std::mem::take(&mut self.readiness_answered)
    }

    /// Drains what the shell must do. Everything the core produced since
    /// the last call is folded in here, once per shell turn, so the reads
    /// of one turn share one ReadIndex round.
    pub fn take_output(&mut self) -> Output {
        let raft = self.raft.take_output();
        self.absorb_raft(raft);
        if self.maybe_compact() {
            let raft = self.raft.take_output();
            self.absorb_raft(raft);
        }
        self.check_invariants();
        std::mem::take(&mut self.output)
    }

    /// The node's own bookkeeping (a bug if it fails, never input): every
    /// session's order, every forward and read bounded in time.
    pub fn check_invariants(&self) {
        for (conn, session) in &self.sessions {
            session.check_invariants();
            assert!(
                session.waiting.len() <= session::WAITING_MAX,
                "connection {conn:?} queue over its bound"
            );
        }
        let limit = self.config.forward_timeout_ticks;
        assert!(self.forwarded.values().all(|(_, ticks)| *ticks <= limit), "a forward outlives its timeout");
        assert!(self.reads.values().all(|read| read.ticks_left <= limit), "a read outlives its timeout");
        assert!(self.to_pump.is_empty(), "connections left to start after settling");
        assert!(self.applied <= self.raft.applied(), "the store is ahead of what Raft handed out");
    }

    fn start_read(&mut self, requester: Requester, what: ReadWhat, stale: bool) {
        let ticks_left = self.config.forward_timeout_ticks;
        let read = PendingRead { requester, what, now_ms: self.now_ms, ticks_left };
        if stale {
            // Local state, once it holds the connection's own writes.
            let written = match requester {
                Requester::Local(ticket) => self.sessions.get(&ticket.conn).map_or(Index(0), |s| s.written),
                Requester::Barrier(_)
                | Requester::Remote { .. }
                | Requester::Block(_)
                | Requester::Unblock(_)
                | Requester::Readiness(_) => Index(0),
            };
            self.ready_reads.push((written, read));
            return;
        }
        let id = ReadId(self.next_read);
        self.next_read += 1;
        self.reads.insert(id, read);
        self.raft.read_index(id);
    }

    fn start_write(&mut self, requester: Requester, args: Vec<Vec<u8>>) {
        if let Some(reply) = refuse_oversized(&args) {
            return self.answer(requester, reply, None);
        }
        if self.raft.is_leader() {
            return self.propose(requester, args, self.now_ms);
        }
        match self.raft.leader() {
            Some(leader) => {
                let id = self.next_forward;
                self.next_forward = self.next_forward.wrapping_add(1);
                self.forwarded.insert(id, (requester, self.config.forward_timeout_ticks));
                let term = self.raft.term();
                let forward = NodeMessage::Forward { id, term, now_ms: self.now_ms, args };
                self.output.send.push((leader, forward));
            }
            None => self.answer(requester, Reply::error(CLUSTERDOWN), None),
        }
    }

    fn on_forward(&mut self, from: NodeId, id: u64, term: Term, now_ms: u64, args: Vec<Vec<u8>>) {
        let requester = Requester::Remote { from, id };
        if let Some(reply) = refuse_oversized(&args).or_else(|| refuse_forward(from, &args)) {
            // A follower checks before forwarding; this one did not.
            self.answer(requester, reply, None);
        } else if !self.raft.is_leader() {
            self.answer(requester, Reply::error(CLUSTERDOWN), None);
        } else if term != self.raft.term() {
            self.answer(requester, Reply::error(STALE_FORWARD), None);
        } else {
            // The leader's clock stamps every entry (TTLs, expiry): a
            // follower's clock never decides when a key expires.
            let planted = self.config.raft.planted_bug.active(PlantedBug::FollowerStampsTtl);
            self.propose(requester, args, if planted { now_ms } else { self.now_ms });
        }
    }

    fn propose(&mut self, requester: Requester, args: Vec<Vec<u8>>, now_ms: u64) {
        if self.over_maxmemory() && transaction::may_grow(&args) {
            return self.answer(requester, Reply::error(OOM), None);
        }
        let command = LoggedCommand { now_ms, args };
        let bytes = postcard::to_stdvec(&command).expect("in-memory encoding cannot fail");
        assert!(bytes.len() <= COMMAND_BYTES_MAX, "every path to propose refuses oversized commands");
        match self.raft.propose(bytes) {
            Ok((index, term)) => {
                self.writes.insert(index, (term, requester));
            }
            Err(raft::ProposeError::TransferInProgress) => {
                self.answer(requester, Reply::error("TRYAGAIN leadership is being transferred"), None)
            }
            Err(_) => self.answer(requester, Reply::error(CLUSTERDOWN), None),
        }
    }

    /// Proposes a command nobody waits for; returns its index.
    fn propose_internal(&mut self, args: Vec<Vec<u8>>) -> Option<Index> {
        let command = LoggedCommand { now_ms: self.now_ms, args };
        let bytes = postcard::to_stdvec(&command).expect("in-memory encoding cannot fail");
        if bytes.len() > COMMAND_BYTES_MAX {
            return None; // never for the node's own small commands
        }
        self.raft.propose(bytes).ok().map(|(index, _)| index)
    }

    fn propose_expiry(&mut self) {
        let keys = self.store.expired_keys(self.now_ms, self.config.expiry_batch_keys_max);
        if keys.is_empty() {
            return;
        }
        let mut args = vec![b"CASHE.EXPIRE".to_vec()];
        args.extend(keys);
        // Refused while transferring leadership: the next leader will do it.
        let _ = self.propose_internal(args);
    }

    /// Answers a command: a local connection's (with the index of the entry
    /// that applied it, for a write), or a follower's forwarded write.
    fn answer(&mut self, requester: Requester, reply: Reply, index: Option<Index>) {
        match requester {
            Requester::Local(ticket) => {
                if let Some(session) = self.sessions.get_mut(&ticket.conn) {
                    session.written = session.written.max(index.unwrap_or_default());
                    session.uncertain |= matches!(&reply, Reply::Error(e) if e.starts_with("TIMEOUT"));
                }
                self.reply(ticket, reply)
            }
            Requester::Barrier(ticket) => self.on_barrier(ticket, reply, index),
            Requester::Block(seq) => self.on_block_answer(seq, reply, index),
            Requester::Unblock(seq) => self.on_unblock_answer(seq, &reply),
            Requester::Readiness(n) => {
                let answer = match reply {
                    Reply::Error(why) => Err(why),
                    _ => Ok(()),
                };
                self.readiness_answered.push((n, answer));
            }
            Requester::Remote { from, id } => {
                let bytes = wire::reply_bytes_bound(&reply);
                let reply =
                    if bytes > wire::FORWARD_REPLY_BYTES_MAX { wire::reply_too_large(bytes) } else { reply };
                self.output.send.push((from, NodeMessage::ForwardReply { id, reply, index }))
            }
        }
    }

    fn expire_forwards(&mut self) {
        let mut expired = Vec::new();
        for (id, (requester, ticks_left)) in self.forwarded.iter_mut() {
            *ticks_left = ticks_left.saturating_sub(1);
            if *ticks_left == 0 {
                expired.push((*id, *requester));
            }
        }
        for (id, requester) in expired {
            self.forwarded.remove(&id);
            self.answer(requester, Reply::error(TIMEOUT), None);
        }
        let mut expired_reads = Vec::new();
        for (id, read) in self.reads.iter_mut() {
            read.ticks_left = read.ticks_left.saturating_sub(1);
            if read.ticks_left == 0 {
                expired_reads.push(*id);
            }
        }
        for id in expired_reads {
            let read = self.reads.remove(&id).expect("listed");
            self.answer(read.requester, Reply::error(READ_TIMEOUT), None);
        }
        for (_, read) in self.ready_reads.iter_mut() {
            read.ticks_left = read.ticks_left.saturating_sub(1);
        }
        let (late, waiting): (Vec<_>, Vec<_>) =
            std::mem::take(&mut self.ready_reads).into_iter().partition(|(_, read)| read.ticks_left == 0);
        self.ready_reads = waiting;
        for (_, read) in late {
            self.answer(read.requester, Reply::error(READ_TIMEOUT), None);
        }
    }

    /// The barrier in front of `ticket`'s read is answered: applied (the
    /// connection is certain again, and the read may start), or not, and
    /// the read fails with the barrier's error (a read may always be retried).
    fn on_barrier(&mut self, ticket: Ticket, reply: Reply, index: Option<Index>) {
        let Some(session) = self.sessions.get_mut(&ticket.conn) else { return };
        let waiting = session.barrier && session.waiting.front().is_some_and(|head| head.ticket == ticket);
        if !waiting {
            return; // the answer of an earlier connection with the same number
        }
        session.barrier = false;
        self.to_pump.insert(ticket.conn);
        if reply == Reply::ok() && index.is_some() {
            session.uncertain = false;
            session.written = session.written.max(index.unwrap_or_default());
            return;
        }
        session.waiting.pop_front();
        let reply = match reply {
            Reply::Error(e) if e.starts_with("TIMEOUT") => Reply::error(READ_TIMEOUT),
            other => other,
        };
        self.reply(ticket, reply);
    }

    /// Releases `reply` and every reply of the same connection it was
    /// holding back, in command order; the connection may start its next
    /// commands.
    fn reply(&mut self, ticket: Ticket, reply: Reply) {
        let Some(session) = self.sessions.get_mut(&ticket.conn) else { return };
        for reply in session.answer(ticket, reply) {
            self.clients.replied(ticket.conn, &reply);
            self.output.replies.push((ticket.conn, reply));
        }
        self.to_pump.insert(ticket.conn);
    }

    fn absorb_raft(&mut self, raft: raft::Output) {
        self.output.persist.extend(raft.persist);
        self.output.send.extend(raft.send.into_iter().map(|(to, m)| (to, NodeMessage::Raft(m))));
        if raft.snapshot.is_some() {
            self.output.snapshot = raft.snapshot;
        }
        for apply in raft.apply {
            self.on_apply(apply);
        }
        for read in raft.reads {
            self.on_read_state(read);
        }
        if !self.raft.is_leader() {
            self.fail_unknown_writes();
        }
        self.settle();
    }

    fn on_apply(&mut self, apply: Apply) {
        match apply {
            Apply::Snapshot(snapshot) => match decode_snapshot(&snapshot.data) {
                Ok((directory, store)) => {
                    self.directory = directory;
                    self.store = store;
                    self.applied = self.applied.max(snapshot.meta.index);
                    self.plant_spop_local_random();
                    self.after_snapshot_waits(snapshot.meta.index);
                }
                // A snapshot from the leader that does not decode: refuse to
                // run on state we cannot trust.
                Err(e) => {
                    let index = snapshot.meta.index;
                    self.fatal =
                        Some(format!("the snapshot at index {index} from the leader is undecodable: {e}"));
                }
            },
            Apply::Entry(entry) => {
                assert_eq!(entry.index, self.applied.next(), "entries are applied in order, once");
                self.applied = entry.index;
                let reply = match &entry.payload {
                    Payload::Command(bytes) => match postcard::from_bytes::<LoggedCommand>(bytes) {
                        Ok(command) => {
                            let reply = self.apply_command(&command);
                            // Outcomes of waits first: this node's own are
                            // answered before the write that decided them.
                            self.serve_blocked(command.now_ms);
                            Some(reply)
                        }
                        Err(e) => Some(Reply::error(format!("ERR undecodable log entry: {e}"))),
                    },
                    Payload::Noop | Payload::Membership(_) => None,
                };
                if let Some((term, requester)) = self.writes.remove(&entry.index) {
                    if term == entry.term {
                        self.answer(requester, reply.unwrap_or_else(Reply::ok), Some(entry.index));
                    } else {
                        // Another leader's entry took this index: ours was lost.
                        self.answer(requester, Reply::error(TIMEOUT), None);
                    }
                }
            }
        }
    }

    /// Every member's name by number as this node knows them: the
    /// directory, and the joins and removals in its log that it has not
    /// applied yet, applied to a copy in log order (a node back from a
    /// restart has applied little until the leader tells it the commit
    /// index, and the leader may be a member that joined since its last
    /// snapshot). The shell binds peer certificates to these names.
    pub fn member_names(&self) -> BTreeMap<NodeId, String> {
        let directory = self.directory_through_log();
        directory.members.into_iter().map(|(id, info)| (id, info.name)).collect()
    }

    /// The directory once every entry of this node's log is applied: the
    /// applied one, and the joins and removals after it applied to a copy
    /// in log order.
    pub(super) fn directory_through_log(&self) -> Directory {
        let mut directory = self.directory.clone();
        let log = self.raft.log();
        let mut index = self.applied.next();
        while index <= log.last_index() {
            if let Some(Payload::Command(bytes)) = log.entry(index).map(|e| &e.payload) {
                if let Ok(command) = postcard::from_bytes::<LoggedCommand>(bytes) {
                    let name = command.args.first().map(|n| n.as_slice()).unwrap_or_default();
                    for internal in [CASHE_MEMBER, CASHE_FORGET] {
                        if name == internal.as_bytes() {
                            directory.apply(internal, &command.args[1..], self.config.cluster_id);
                        }
                    }
                }
            }
            index = index.next();
        }
        directory
    }

    fn apply_command(&mut self, command: &LoggedCommand) -> Reply {
        let name = command.args.first().map(|n| n.as_slice()).unwrap_or_default();
        for internal in [CASHE_MEMBER, CASHE_FORGET] {
            if name == internal.as_bytes() {
                let mut reply = self.directory.apply(internal, &command.args[1..], self.config.cluster_id);
                // A joining member learns how many groups to start: said
                // only when more than one, so that a cluster of one shard
                // answers as before shards.
                if let (Reply::Array(Some(items)), true) = (&mut reply, self.config.shards > 1) {
                    items.push(Reply::Integer(i64::from(self.config.shards)));
                    // And on how many members each key group is, when not
                    // on every one (a build before placement refuses the
                    // longer reply rather than hold every group).
                    if self.config.replicas > 0 {
                        items.push(Reply::Integer(i64::from(self.config.replicas)));
                    }
                }
                return reply;
            }
        }
        if name == CASHE_EXEC.as_bytes() {
            return self.apply_transaction(&command.args, command.now_ms);
        }
        if name == CASHE_BARRIER.as_bytes() {
            return Reply::ok();
        }
        if name == CASHE_BLOCK.as_bytes() || name == CASHE_UNBLOCK.as_bytes() {
            return self.apply_block_command(&command.args, command.now_ms);
        }
        self.apply_to_store(&command.args, command.now_ms)
    }

    fn on_read_state(&mut self, read: raft::ReadState) {
        let Some(pending) = self.reads.remove(&read.read) else { return };
        match read.result {
            Ok(index) => self.ready_reads.push((index, pending)),
            Err(ReadError::NoLeader) => self.answer(pending.requester, Reply::error(CLUSTERDOWN), None),
            Err(_) => {
                let reply = Reply::error("TRYAGAIN leadership changed during the read");
                self.answer(pending.requester, reply, None)
            }
        }
    }

    /// Serves every read whose index is applied, each connection's reads in
    /// the order they started (an earlier read still waiting holds back the
    /// later ones of its connection).
    fn serve_ready_reads(&mut self) {
        loop {
            let applied = self.applied;
            let next = self.ready_reads.iter().position(|(index, read)| {
                let in_order = match read.requester {
                    Requester::Local(ticket) => {
                        self.sessions.get(&ticket.conn).is_none_or(|s| s.is_next_read(ticket.seq))
                    }
                    Requester::Barrier(_)
                    | Requester::Remote { .. }
                    | Requester::Block(_)
                    | Requester::Unblock(_)
                    | Requester::Readiness(_) => true,
                };
                *index <= applied && in_order
            });
            let Some(next) = next else { return };
            let (_, read) = self.ready_reads.remove(next);
            self.serve(read);
        }
    }

    fn serve(&mut self, read: PendingRead) {
        let now_ms = read.now_ms.max(self.now_ms);
        let reply = match read.what {
            ReadWhat::Command(args) => self.store.read(&args, now_ms),
            ReadWhat::Watch(keys) => {
                let watches: Vec<_> = keys.iter().map(|key| self.store.watch(key, now_ms)).collect();
                if let Requester::Local(ticket) = read.requester {
                    if let Some(session) = self.sessions.get_mut(&ticket.conn) {
                        transaction::add_watches(&mut session.watches, watches);
                    }
                }
                Reply::ok()
            }
            ReadWhat::Readiness => Reply::ok(),
        };
        self.answer(read.requester, reply, None);
    }

    /// Writes proposed while leader that have not committed: with leadership
    /// gone, their fate is unknown.
    fn fail_unknown_writes(&mut self) {
        let applied = self.applied;
        let unknown: Vec<Index> = self.writes.keys().filter(|i| **i > applied).copied().collect();
        for index in unknown {
            let (_, requester) = self.writes.remove(&index).expect("listed");
            self.answer(requester, Reply::error(TIMEOUT), None);
        }
    }

    /// Compacts the log once enough entries are applied past the snapshot,
    /// or makes a snapshot the core asked for. Returns whether it did.
    /// Members apply the same entries, so with one threshold they would all
    /// stop at the same index to encode and write a snapshot; while both
    /// followers write, the leader hears from no quorum, and if that lasts
    /// an election timeout it steps down (`benches/cluster.rs`, SET at 256
    /// clients: half a second of `-CLUSTERDOWN`). Member n compacts every
    /// `snapshot_entries × (1 + ((n − 1) mod 8) / 8)` entries instead.
    fn compaction_threshold(&self) -> u64 {
        let entries = self.config.snapshot_entries;
        let step = entries / 8;
        entries.saturating_add(step.saturating_mul(self.raft.id().0.saturating_sub(1) % 8))
    }

    fn maybe_compact(&mut self) -> bool {
        let applied = self.raft.applied();
        let due = applied.0.saturating_sub(self.raft.snapshot_index().0) >= self.compaction_threshold();
        // The core released its snapshot and a follower needs one: a fresh
        // one at the applied index (the newest one again if nothing was
        // applied since).
        let wanted = self.raft.wants_snapshot();
        let asked = std::mem::take(&mut self.compact_asked) && applied > self.raft.snapshot_index();
        if due || wanted || asked {
            let data = encode_snapshot(&self.directory, &self.store);
            self.raft.compact(applied, data, self.config.log_retain_entries);
        }
        due || wanted
    }
}

/// Commands only the nodes propose: a client sending one gets an error.
fn refuse_internal(name: &[u8]) -> Option<Reply> {
    let internal = [
        crate::kv::CASHE_EXPIRE,
        CASHE_MEMBER,
        CASHE_FORGET,
        CASHE_EXEC,
        CASHE_BARRIER,
        CASHE_BLOCK,
        CASHE_UNBLOCK,
    ];
    internal.iter().any(|c| name == c.as_bytes()).then(|| {
        let text = String::from_utf8_lossy(name);
        Reply::error(format!("ERR {text} is proposed by the nodes themselves, not by clients"))
    })
}

/// What a follower may forward to its leader: a client's write (the
/// follower checked it, and the client's rights), or one of the internal
/// commands a follower proposes for its own clients. Anything else (a
/// read, an unknown command, `CASHE.EXPIRE`, which only a leader proposes,
/// or a wait registered in another node's name) is refused: a peer link
/// is authenticated, but nothing it carries is run unchecked.
fn refuse_forward(from: NodeId, args: &[Vec<u8>]) -> Option<Reply> {
    let name = args.first().map(|a| a.to_ascii_uppercase()).unwrap_or_default();
    let own = || args.get(1).is_some_and(|node| *node == from.0.to_string().into_bytes());
    let allowed = match name.as_slice() {
        n if n == CASHE_BLOCK.as_bytes() || n == CASHE_UNBLOCK.as_bytes() => own(),
        n if [CASHE_MEMBER, CASHE_FORGET, CASHE_EXEC, CASHE_BARRIER].iter().any(|c| n == c.as_bytes()) => {
            true
        }
        n if n.starts_with(b"CASHE.") => false,
        _ => matches!(classify(args), Ok(Access::Write)),
    };
    (!allowed).then(|| {
        Reply::error(format!(
            "ERR node {} forwarded '{}', which a follower never forwards",
            from.0,
            String::from_utf8_lossy(&name)
        ))
    })
}

/// The state machine's snapshot: the directory and the key space.
#[derive(Serialize, Deserialize)]
struct NodeSnapshot {
    format: u32,
    directory: Directory,
    /// `Store::snapshot`, itself versioned.
    store: Vec<u8>,
}

/// What [`NodeSnapshot`] encodes to, from borrowed parts.
#[derive(Serialize)]
struct NodeSnapshotRef<'a> {
    format: u32,
    directory: &'a Directory,
    store: &'a [u8],
}

/// 2 since members' TLS client addresses (`MemberInfo::tls_client_addr`).
const NODE_SNAPSHOT_FORMAT: u32 = 2;
/// The formats this build reads (docs/wal-format.md, "Versions").
const NODE_SNAPSHOT_FORMATS_READ: [u32; 2] = [1, NODE_SNAPSHOT_FORMAT];

/// The home group's snapshot data of a new cluster whose key space is
/// `store` (`cashe restore`): an empty directory, which its founding
/// member fills in when it leads, as after a bootstrap.
pub fn restored_snapshot_data(store: &Store) -> Vec<u8> {
    encode_snapshot(&Directory::default(), store)
}

fn encode_snapshot(directory: &Directory, store: &Store) -> Vec<u8> {
    let store = store.snapshot();
    // Sized up front: the store's bytes are copied once, not regrown.
    let directory_bytes = postcard::experimental::serialized_size(directory).unwrap_or(0);
    let out = Vec::with_capacity(store.len() + directory_bytes + 32);
    let snapshot = NodeSnapshotRef { format: NODE_SNAPSHOT_FORMAT, directory, store: &store };
    postcard::to_extend(&snapshot, out).expect("in-memory encoding cannot fail")
}

fn decode_snapshot(bytes: &[u8]) -> Result<(Directory, Store), String> {
    // The format comes first and is checked first: a later format's layout
    // must be refused by name, not as bytes that do not decode.
    let (format, rest) = postcard::take_from_bytes::<u32>(bytes).map_err(|e| format!("snapshot: {e}"))?;
    let (directory, store) = match format {
        // Format 1, before members had a TLS client address: its fields
        // after the format are the directory as it was, then the store.
        1 => {
            let (directory, store): (cluster::DirectoryFormat1, Vec<u8>) =
                postcard::from_bytes(rest).map_err(|e| format!("snapshot: {e}"))?;
            (directory.into(), store)
        }
        NODE_SNAPSHOT_FORMAT => {
            let snapshot: NodeSnapshot = postcard::from_bytes(bytes).map_err(|e| format!("snapshot: {e}"))?;
            (snapshot.directory, snapshot.store)
        }
        _ => {
            return Err(format!(
                "snapshot: node snapshot format {format}; this build reads {NODE_SNAPSHOT_FORMATS_READ:?}"
            ))
        }
    };
    let store = Store::restore(&store).map_err(|e| format!("snapshot: {e}"))?;
    Ok((directory, store))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_snapshot_of_another_format_is_refused_by_its_format() {
        let bytes = encode_snapshot(&Directory::default(), &Store::default());
        assert!(decode_snapshot(&bytes).is_ok());
        // A later format whose layout this build cannot decode at all.
        let mut later = vec![NODE_SNAPSHOT_FORMAT as u8 + 1];
        later.extend_from_slice(&[0xff; 16]);
        let error = decode_snapshot(&later).map(|_| ()).unwrap_err();
        assert!(error.contains("node snapshot format 3; this build reads [1, 2]"), "{error}");
    }

    fn member(name: &str, port: u16, tls: Option<&str>) -> MemberInfo {
        MemberInfo {
            name: name.into(),
            raft_addr: format!("h:{}", port + 1000),
            client_addr: format!("h:{port}"),
            tls_client_addr: tls.map(str::to_string),
        }
    }

    /// Format 2 writes each member's TLS address after its client address:
    /// an option byte, then the string.
    #[test]
    fn a_node_snapshot_of_format_2_holds_the_tls_addresses_and_reads_back() {
        let mut directory = Directory::default();
        directory.members.insert(NodeId(1), member("a", 3001, None));
        directory.members.insert(NodeId(2), member("b", 3002, Some("h:6002")));
        directory.removed.insert(NodeId(3));
        directory.last_id = 3;
        let store = Store::default();
        let bytes = encode_snapshot(&directory, &store);
        let expected_directory = [
            &[2u8, 2, 1, 1][..],
            b"a",
            &[6],
            b"h:4001",
            &[6],
            b"h:3001",
            &[0, 2, 1],
            b"b",
            &[6],
            b"h:4002",
            &[6],
            b"h:3002",
            &[1, 6],
            b"h:6002",
            &[1, 3, 3],
        ]
        .concat();
        assert!(bytes.starts_with(&expected_directory), "{bytes:02x?}");
        assert_eq!(&bytes[expected_directory.len() + 1..], store.snapshot(), "then the store, length first");
        let (decoded, _) = decode_snapshot(&bytes).unwrap();
        assert_eq!(decoded, directory);
    }

    /// Format 1 (no TLS addresses) is still read: its members come back
    /// with none, and the snapshot is written again as format 2.
    #[test]
    fn a_node_snapshot_of_format_1_still_reads() {
        let store = Store::default().snapshot();
        let format_1 = [
            &[1u8, 2, 1, 1][..],
            b"a",
            &[6],
            b"h:4001",
            &[6],
            b"h:3001",
            &[2, 1],
            b"b",
            &[6],
            b"h:4002",
            &[6],
            b"h:3002",
            &[1, 3, 3, store.len() as u8],
            &store,
        ]
        .concat();
        let (directory, restored) = decode_snapshot(&format_1).unwrap();
        let mut expected = Directory::default();
        expected.members.insert(NodeId(1), member("a", 3001, None));
        expected.members.insert(NodeId(2), member("b", 3002, None));
        expected.removed.insert(NodeId(3));
        expected.last_id = 3;
        assert_eq!(directory, expected);
        let again = encode_snapshot(&directory, &restored);
        assert_eq!(again[0], 2, "written as format 2");
        assert_eq!(decode_snapshot(&again).unwrap().0, expected);
    }

    #[test]
    fn a_leader_runs_only_what_a_follower_forwards() {
        let cmd = |words: &[&str]| words.iter().map(|w| w.as_bytes().to_vec()).collect::<Vec<_>>();
        let from = NodeId(2);
        for allowed in [
            cmd(&["SET", "k", "v"]),
            cmd(&["lpush", "l", "x"]),
            cmd(&["CASHE.BLOCK", "2", "7", "BLPOP", "l", "0"]),
            cmd(&["CASHE.UNBLOCK", "2", "7"]),
            cmd(&["CASHE.MEMBER", "raft3", "h:4003", "h:3003"]),
            cmd(&["CASHE.FORGET", "raft3"]),
            cmd(&["CASHE.BARRIER"]),
            cmd(&["CASHE.EXEC", "blob"]),
        ] {
            assert_eq!(refuse_forward(from, &allowed), None, "{allowed:?}");
        }
        for refused in [
            cmd(&["GET", "k"]),
            cmd(&["NOSUCH", "k"]),
            cmd(&["CASHE.EXPIRE", "k"]),
            cmd(&["CASHE.BLOCK", "3", "7", "BLPOP", "l", "0"]),
            cmd(&["cashe.unblock", "1", "7"]),
            cmd(&["CASHE.NEW"]),
            cmd(&[]),
        ] {
            assert!(refuse_forward(from, &refused).is_some(), "{refused:?}");
        }
    }
}
