//! The Raft consensus core: a deterministic state machine with no IO.
//!
//! It owns the log in memory and decides everything Raft decides; the shell
//! (production runtime, simulator or model checker) moves bytes. The shell
//! feeds it inputs — [`Raft::tick`], [`Raft::step`], [`Raft::propose`],
//! [`Raft::read_index`], [`Raft::persisted`] — and after each batch of inputs
//! drains [`Raft::take_output`] and does, in this order:
//!
//! 1. **Persist** `Output::persist` in `Lsn` order with one write and one
//!    fsync, then call `persisted(last lsn)`. This may run concurrently with
//!    steps 2–4.
//! 2. **Send** `Output::send`. Everything there may leave at once: the core
//!    holds back every message that promises durability (a granted vote, an
//!    append or snapshot acknowledgement) until `persisted` covers the records
//!    it depends on, and a leader counts itself towards a commit quorum only
//!    for entries reported persisted.
//! 3. **Apply** `Output::apply` to the state machine, in order.
//! 4. **Answer reads** in `Output::reads` once the state machine has applied
//!    the read index, and write `Output::snapshot` (a compaction snapshot)
//!    when there is one.
//!
//! It may not touch a socket, file, clock, thread or global random number
//! generator: time is `tick()`, randomness is the node's seeded
//! [`SplitMix64`]. Invariants are asserted where state changes
//! (`check_invariants`), and checked across nodes by `tests/model.rs`.
//! Rules are split by concern: `election` (pre-vote, votes, leases),
//! `replication` (appends, commit, snapshots), `read` (ReadIndex) and
//! `membership` (configuration changes, leader transfer).

mod bugs;
mod config;
mod election;
mod log;
mod membership;
pub mod memory;
mod message;
mod progress;
mod quiesce;
mod read;
mod replication;
mod rng;
mod types;

pub use bugs::PlantedBug;
pub use config::{Config, ConfigError};
pub use log::RaftLog;
pub use membership::TransferError;
pub use message::{AppendResult, ConflictHint, Message, MessageKind};
pub use progress::{Progress, ReplicationState};
pub use read::{ReadError, ReadState};
pub use rng::SplitMix64;
pub use types::{
    Entry, HardState, Index, Lsn, Membership, MembershipChange, MembershipError, NodeId, Payload, ReadId,
    Record, Recovered, RecoveryError, Snapshot, SnapshotMeta, Term,
};

use progress::Progress as PeerProgress;
use read::ReadQueue;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;

/// What the shell must do after feeding inputs; see the module docs for the
/// order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Output {
    /// Records to append and fsync, in `Lsn` order.
    pub persist: Vec<(Lsn, Record)>,
    /// Messages that may leave now.
    pub send: Vec<(NodeId, Message)>,
    /// Committed (and locally durable) entries and installed snapshots, in
    /// log order, to apply to the state machine.
    pub apply: Vec<Apply>,
    /// Outcomes of `read_index` requests.
    pub reads: Vec<ReadState>,
    /// A compaction snapshot to write durably (temporary file, fsync,
    /// rename, fsync the directory).
    pub snapshot: Option<Snapshot>,
}

impl Output {
    pub fn is_empty(&self) -> bool {
        self.persist.is_empty()
            && self.send.is_empty()
            && self.apply.is_empty()
            && self.reads.is_empty()
            && self.snapshot.is_none()
    }
}

/// One step of the state machine's history.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Apply {
    Entry(Entry),
    /// Replace the state machine's state with this snapshot.
    Snapshot(Snapshot),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    Follower,
    PreCandidate,
    Candidate,
    Leader,
}

/// Why a proposal was refused. Nothing was appended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProposeError {
    /// Only the leader appends; `leader` is the last one this node heard of.
    NotLeader {
        leader: Option<NodeId>,
    },
    /// A leadership transfer is in progress (§3.10: stop accepting requests).
    TransferInProgress,
    /// A membership change waits for the leader's first commit of its term.
    LeaderNotReady,
    /// A membership change is appended but not yet committed.
    ChangeInProgress,
    Membership(MembershipError),
}

impl fmt::Display for ProposeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProposeError::NotLeader { leader: Some(id) } => write!(f, "not the leader; node {id} is"),
            ProposeError::NotLeader { leader: None } => write!(f, "not the leader; no leader known"),
            ProposeError::TransferInProgress => write!(f, "leadership transfer in progress"),
            ProposeError::LeaderNotReady => write!(f, "leader has not committed an entry of its term yet"),
            ProposeError::ChangeInProgress => write!(f, "another membership change is in progress"),
            ProposeError::Membership(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for ProposeError {}

/// Role-specific state; what a role does not have, it cannot touch.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum RoleState {
    Follower,
    PreCandidate {
        votes: BTreeMap<NodeId, bool>,
    },
    /// `self_vote` is the `Lsn` of the hard state holding our own vote; it
    /// counts only once durable.
    Candidate {
        votes: BTreeMap<NodeId, bool>,
        self_vote: Option<Lsn>,
    },
    Leader(Box<LeaderState>),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct LeaderState {
    progress: BTreeMap<NodeId, PeerProgress>,
    /// Index of this term's no-op; reads and membership changes wait until
    /// it commits.
    term_start: Index,
    heartbeat_elapsed: u32,
    reads: ReadQueue,
    transfer: Option<Transfer>,
    /// Heartbeat rounds in a row that found the group settled (`settled`).
    settled_rounds: u32,
    /// Quiet (`Config::quiesce`): no heartbeats and no check-quorum until
    /// the leader next sends or hears a message.
    quiet: bool,
    /// The peers heard from in the check-quorum period before the current
    /// one: with the current period's `recent_active`, whether a peer
    /// answered within the last one or two election timeouts
    /// (`Raft::heard_recently`), which does not blink false when a new
    /// period starts.
    heard_last_period: BTreeSet<NodeId>,
    /// Entries were appended since the last `take_output`: they go to the
    /// followers then, all of a turn's proposals in one `Append` each.
    append_due: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Transfer {
    to: NodeId,
    elapsed: u32,
    timeout_now_sent: bool,
}

/// A snapshot being received in chunks.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct IncomingSnapshot {
    meta: SnapshotMeta,
    total_bytes: u64,
    data: Vec<u8>,
}

/// One Raft node.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Raft {
    config: Config,
    term: Term,
    vote: Option<NodeId>,
    leader: Option<NodeId>,
    role: RoleState,
    log: RaftLog,
    commit: Index,
    applied: Index,
    /// Highest log index known durable locally.
    durable_index: Index,
    /// Membership entries still in the log, oldest first; the first one is
    /// the snapshot's membership. The last one is in force (§4.1).
    memberships: Vec<(Index, Membership)>,
    rng: SplitMix64,
    /// Ticks since the last leader contact (follower), since the election
    /// started (candidates), or since the last quorum check (leader).
    election_elapsed: u32,
    randomized_election_ticks: u32,
    /// With read leases: ticks since this node last heard from a leader
    /// (`follow`), up to `election_ticks`. Nothing else resets it, not a
    /// new term nor a new boot, which starts it at 0 (`in_lease`).
    lease_elapsed: u32,
    /// The newest snapshot, while a follower that fell behind compaction
    /// is being sent it; released otherwise (it is the size of the whole
    /// key space, and the disk holds it).
    snapshot: Option<Snapshot>,
    /// The index of the newest snapshot, held or released.
    snapshot_index: Index,
    /// A follower needs a snapshot and none is held: the state machine is
    /// asked for one (`wants_snapshot`, answered with `compact`).
    snapshot_wanted: bool,
    incoming_snapshot: Option<IncomingSnapshot>,
    /// Installed snapshot to hand to the state machine once durable.
    pending_restore: Option<(Lsn, Snapshot)>,
    next_lsn: Lsn,
    persisted_lsn: Lsn,
    /// `(lsn, index)`: once `lsn` is durable, the log is durable through `index`.
    pending_durable: VecDeque<(Lsn, Index)>,
    /// Messages waiting for `persisted` to reach their `Lsn`.
    held: VecDeque<(Lsn, NodeId, Message)>,
    /// The hard state most recently handed out for persistence.
    saved_hard_state: HardState,
    output: Output,
}

impl Raft {
    /// The recovered state of a brand-new cluster whose first members are
    /// `voters`: one membership entry at index 1, term 1, committed. Every
    /// founding member starts from the same value.
    pub fn bootstrap(voters: impl IntoIterator<Item = NodeId>) -> Recovered {
        let membership = Membership::with_voters(voters);
        Recovered {
            hard_state: HardState { term: Term(1), vote: None, commit: Index(1) },
            snapshot: None,
            entries: vec![Entry { term: Term(1), index: Index(1), payload: Payload::Membership(membership) }],
        }
    }

    /// Rebuilds a node from what its shell recovered. The caller restores
    /// its state machine from `recovered.snapshot`; entries after it are
    /// handed out again through `Output::apply` up to the commit index.
    /// `seed` should differ per node and per boot. A node that is the only
    /// voter of its membership starts campaigning here: the first output
    /// holds its vote, and it leads once `persisted` covers that.
    pub fn restore(config: Config, seed: u64, recovered: Recovered) -> Result<Raft, ConfigError> {
        config.validate()?;
        let (mut log, mut memberships, snapshot_index) = match &recovered.snapshot {
            Some(snapshot) => (
                RaftLog::new(snapshot.meta.index, snapshot.meta.term),
                vec![(snapshot.meta.index, snapshot.meta.membership.clone())],
                snapshot.meta.index,
            ),
            None => (RaftLog::default(), vec![(Index(0), Membership::default())], Index(0)),
        };
        for entry in recovered.entries {
            if entry.index <= snapshot_index {
                continue;
            }
            if let Payload::Membership(m) = &entry.payload {
                memberships.push((entry.index, m.clone()));
            }
            log.append(entry);
        }
        let hard_state = recovered.hard_state;
        let commit = hard_state.commit.max(snapshot_index).min(log.last_index());
        let mut raft = Raft {
            term: hard_state.term,
            vote: hard_state.vote,
            leader: None,
            role: RoleState::Follower,
            commit,
            applied: snapshot_index,
            durable_index: log.last_index(),
            log,
            memberships,
            rng: SplitMix64::new(seed),
            election_elapsed: 0,
            randomized_election_ticks: config.election_ticks,
            lease_elapsed: 0,
            snapshot_index,
            snapshot: recovered.snapshot,
            snapshot_wanted: false,
            incoming_snapshot: None,
            pending_restore: None,
            next_lsn: Lsn(1),
            persisted_lsn: Lsn(0),
            pending_durable: VecDeque::new(),
            held: VecDeque::new(),
            saved_hard_state: hard_state,
            output: Output::default(),
            config,
        };
        raft.reset_election_timer();
        raft.apply_committed();
        raft.campaign_if_sole_voter();
        raft.check_invariants();
        Ok(raft)
    }

    // ----- inputs -------------------------------------------------------

    /// One logical clock tick.
    pub fn tick(&mut self) {
        if self.config.read_lease {
            self.lease_elapsed = (self.lease_elapsed + 1).min(self.config.election_ticks);
        }
        if self.is_leader() {
            self.tick_leader();
        } else {
            self.tick_election();
        }
        self.check_invariants();
    }

    /// A message from peer `from`.
    pub fn step(&mut self, from: NodeId, message: Message) {
        if from == self.id() {
            return;
        }
        if let Err(why) = message::validate(&message) {
            tracing::warn!(%from, why, "dropping malformed raft message");
            return;
        }
        if message.term > self.term && !self.on_newer_term(from, &message) {
            return;
        }
        if message.term < self.term {
            self.on_stale_message(from, &message);
            return;
        }
        self.dispatch(from, message);
        self.check_invariants();
    }

    fn dispatch(&mut self, from: NodeId, message: Message) {
        self.wake();
        let term = message.term;
        match message.kind {
            MessageKind::PreVote { last_index, last_term } => {
                self.on_pre_vote(from, term, last_index, last_term)
            }
            MessageKind::PreVoteResponse { granted } => self.on_pre_vote_response(from, term, granted),
            MessageKind::Vote { last_index, last_term, transfer } => {
                self.on_vote(from, last_index, last_term, transfer)
            }
            MessageKind::VoteResponse { granted } => self.on_vote_response(from, granted),
            MessageKind::Append { prev_index, prev_term, entries, commit } => {
                self.on_append(from, prev_index, prev_term, entries, commit)
            }
            MessageKind::AppendResponse(result) => self.on_append_response(from, result),
            MessageKind::Heartbeat { commit, read_round } => self.on_heartbeat(from, commit, read_round),
            MessageKind::HeartbeatResponse { read_round } => self.on_heartbeat_response(from, read_round),
            MessageKind::InstallSnapshot { meta, total_bytes, offset, data } => {
                self.on_install_snapshot(from, meta, total_bytes, offset, data)
            }
            MessageKind::InstallSnapshotResponse { index, next_offset } => {
                self.on_install_snapshot_response(from, index, next_offset)
            }
            MessageKind::TimeoutNow => self.on_timeout_now(from),
            MessageKind::ReadIndexRequest { read } => self.on_read_index_request(from, read),
            MessageKind::ReadIndexResponse { read, index } => self.on_read_index_response(read, index),
        }
    }

    /// The shell made every record through `through` durable.
    pub fn persisted(&mut self, through: Lsn) {
        assert!(through < self.next_lsn, "persisted {through:?} was never handed out");
        if through <= self.persisted_lsn {
            return;
        }
        self.persisted_lsn = through;
        while let Some(&(lsn, index)) = self.pending_durable.front() {
            if lsn > through {
                break;
            }
            self.durable_index = index;
            self.pending_durable.pop_front();
        }
        while self.held.front().is_some_and(|(lsn, _, _)| *lsn <= through) {
            let (_, to, message) = self.held.pop_front().expect("front exists");
            self.output.send.push((to, message));
        }
        if self.pending_restore.as_ref().is_some_and(|(lsn, _)| *lsn <= through) {
            let (_, snapshot) = self.pending_restore.take().expect("checked");
            self.applied = self.applied.max(snapshot.meta.index);
            self.output.apply.push(Apply::Snapshot(snapshot));
        }
        self.on_self_vote_persisted(through);
        if self.is_leader() {
            self.maybe_commit();
        }
        self.apply_committed();
        self.check_invariants();
    }

    /// Drains what the shell must do; see the module docs.
    pub fn take_output(&mut self) -> Output {
        if self.is_leader() {
            if std::mem::take(&mut self.leader_state().append_due) {
                self.broadcast_append();
            }
            self.start_read_round_if_needed();
        }
        merge_acknowledgements(&mut self.output.send);
        self.release_snapshot_if_unused();
        self.save_hard_state();
        std::mem::take(&mut self.output)
    }

    // ----- queries ------------------------------------------------------

    pub fn id(&self) -> NodeId {
        self.config.id
    }
    pub fn config(&self) -> &Config {
        &self.config
    }
    pub fn term(&self) -> Term {
        self.term
    }
    pub fn vote(&self) -> Option<NodeId> {
        self.vote
    }
    pub fn leader(&self) -> Option<NodeId> {
        self.leader
    }
    pub fn role(&self) -> Role {
        match self.role {
            RoleState::Follower => Role::Follower,
            RoleState::PreCandidate { .. } => Role::PreCandidate,
            RoleState::Candidate { .. } => Role::Candidate,
            RoleState::Leader(_) => Role::Leader,
        }
    }
    pub fn is_leader(&self) -> bool {
        matches!(self.role, RoleState::Leader(_))
    }
    pub fn log(&self) -> &RaftLog {
        &self.log
    }
    /// Whether this node leads and holds a read lease (`Config::read_lease`).
    pub fn holds_read_lease(&self) -> bool {
        matches!(&self.role, RoleState::Leader(state) if state.reads.has_lease())
    }
    pub fn commit(&self) -> Index {
        self.commit
    }
    pub fn applied(&self) -> Index {
        self.applied
    }
    pub fn durable_index(&self) -> Index {
        self.durable_index
    }
    /// The membership in force: the newest one in the log.
    pub fn membership(&self) -> &Membership {
        &self.memberships.last().expect("always at least one membership").1
    }
    /// The index of the entry that set the newest membership (0 for the
    /// bootstrap or a snapshot's).
    pub fn membership_index(&self) -> Index {
        self.memberships.last().expect("always at least one membership").0
    }
    /// The newest membership that is committed.
    pub fn committed_membership(&self) -> &Membership {
        let (_, m) =
            self.memberships.iter().rev().find(|(i, _)| *i <= self.commit).unwrap_or(&self.memberships[0]);
        m
    }
    /// The leader's view of each follower; empty on other nodes.
    pub fn progress(&self) -> BTreeMap<NodeId, Progress> {
        match &self.role {
            RoleState::Leader(leader) => leader.progress.clone(),
            _ => BTreeMap::new(),
        }
    }
    /// As a leader, whether `peer` answered within the last one or two
    /// election timeouts (none while quiet: a quiet leader stops
    /// listening); `None` if this node is not a leader or does not
    /// replicate to `peer`.
    pub fn heard_recently(&self, peer: NodeId) -> Option<bool> {
        let RoleState::Leader(state) = &self.role else { return None };
        let progress = state.progress.get(&peer)?;
        Some(progress.recent_active || state.heard_last_period.contains(&peer))
    }
    pub fn hard_state(&self) -> HardState {
        HardState { term: self.term, vote: self.vote, commit: self.commit }
    }
    /// The newest snapshot, if it is held (see `wants_snapshot`).
    pub fn snapshot(&self) -> Option<&Snapshot> {
        self.snapshot.as_ref()
    }

    /// The index of the newest snapshot, held or not (0: none yet).
    pub fn snapshot_index(&self) -> Index {
        self.snapshot_index
    }

    /// Whether a follower waits for a snapshot the core no longer holds:
    /// the shell should `compact` at the applied index (which, at the
    /// newest snapshot's own index, just hands the data back).
    /// Not while the state machine is behind the newest snapshot (one
    /// installed from the old leader still being written): it asks once it
    /// has applied that far.
    pub fn wants_snapshot(&self) -> bool {
        self.snapshot_wanted
            && self.snapshot.is_none()
            && self.is_leader()
            && self.applied >= self.snapshot_index
    }

    // ----- role transitions --------------------------------------------

    fn become_follower(&mut self, term: Term, leader: Option<NodeId>) {
        assert!(term >= self.term, "terms never go back");
        if let RoleState::Leader(state) = std::mem::replace(&mut self.role, RoleState::Follower) {
            self.fail_pending_reads(state.reads);
        }
        if term > self.term {
            self.term = term;
            self.vote = None;
            self.save_hard_state();
        }
        self.leader = leader;
        self.reset_election_timer();
    }

    /// Follow `leader`, which just proved it leads the current term.
    fn follow(&mut self, leader: NodeId) {
        if self.is_leader() {
            // Two leaders in one term: election safety is broken. Refuse the
            // message and leave the evidence to the checkers.
            self.invariant(false, "a second leader in this term");
            return;
        }
        if self.role() != Role::Follower || self.leader != Some(leader) {
            self.become_follower(self.term, Some(leader));
        }
        self.election_elapsed = 0;
        self.lease_elapsed = 0;
    }

    fn reset_election_timer(&mut self) {
        self.election_elapsed = 0;
        let low = u64::from(self.config.election_ticks);
        self.randomized_election_ticks = self.rng.range(low, 2 * low) as u32;
    }

    // ----- persistence and sending -------------------------------------

    fn persist(&mut self, record: Record) -> Lsn {
        let lsn = self.next_lsn;
        self.next_lsn = Lsn(lsn.0 + 1);
        self.output.persist.push((lsn, record));
        lsn
    }

    /// Hands out the hard state if it changed; returns the `Lsn` that makes
    /// the current hard state durable.
    ///
    /// A change of the commit index alone rides along with other records
    /// and is never the only record of an output: nothing waits for the
    /// commit index to be durable (a restart that recovers an older one
    /// re-applies less and learns the rest from the leader, whose noop
    /// commits it again), so it must not cost an fsync of its own (etcd's
    /// `MustSync`). Term and vote always go out at once.
    fn save_hard_state(&mut self) -> Lsn {
        let current = self.hard_state();
        let saved = self.saved_hard_state;
        let commit_only = current.term == saved.term && current.vote == saved.vote;
        if current != saved && !(commit_only && self.output.persist.is_empty()) {
            self.saved_hard_state = current;
            return self.persist(Record::HardState(current));
        }
        Lsn(self.next_lsn.0 - 1)
    }

    fn send(&mut self, to: NodeId, kind: MessageKind) {
        self.wake();
        let message = Message { term: self.term, kind };
        self.output.send.push((to, message));
    }

    /// Sends a message that promises durability of everything handed out
    /// so far; it waits in `held` until `persisted` covers it.
    fn send_durable(&mut self, to: NodeId, kind: MessageKind) {
        let needed = Lsn(self.next_lsn.0 - 1);
        if needed <= self.persisted_lsn {
            self.send(to, kind);
        } else {
            let message = Message { term: self.term, kind };
            self.held.push_back((needed, to, message));
        }
    }

    /// Appends entries to the local log and hands them out for persistence.
    fn append_to_log(&mut self, entries: impl IntoIterator<Item = Entry>) {
        let mut last = None;
        for entry in entries {
            if let Payload::Membership(m) = &entry.payload {
                self.memberships.push((entry.index, m.clone()));
            }
            self.log.append(entry.clone());
            last = Some((self.persist(Record::Entry(entry.clone())), entry.index));
        }
        if let Some(effect) = last {
            self.pending_durable.push_back(effect);
            self.on_membership_maybe_changed();
        }
    }

    /// Drops the log suffix from `from` on, in memory and on disk.
    fn truncate_log(&mut self, from: Index) {
        self.invariant(from > self.commit, "truncating a committed entry");
        self.log.truncate_from(from);
        self.persist(Record::Truncate { from });
        let last = from.prev();
        self.durable_index = self.durable_index.min(last);
        for (_, index) in self.pending_durable.iter_mut() {
            *index = (*index).min(last);
        }
        self.memberships.retain(|(index, _)| *index < from || *index == Index(0));
        if self.memberships.is_empty() {
            self.memberships.push((Index(0), Membership::default()));
        }
        self.on_membership_maybe_changed();
    }

    /// Hands out committed, locally durable entries for applying.
    fn apply_committed(&mut self) {
        if self.pending_restore.is_some() {
            return;
        }
        let limit = self.commit.min(self.durable_index);
        while self.applied < limit {
            let index = self.applied.next();
            let entry = self.log.entry(index).expect("committed entries are in the log").clone();
            self.output.apply.push(Apply::Entry(entry));
            self.applied = index;
        }
    }

    // ----- invariants ---------------------------------------------------

    /// Asserts `condition`, except under a planted bug, where the core is
    /// expected to break its own rules and the checkers must find out.
    fn invariant(&self, condition: bool, what: &str) {
        if !condition && self.config.planted_bug == PlantedBug::None {
            panic!("raft invariant violated on node {}: {what}", self.id());
        }
    }

    fn check_invariants(&self) {
        self.invariant(self.applied <= self.commit, "applied beyond commit");
        self.invariant(self.commit <= self.log.last_index(), "commit beyond the log");
        self.invariant(self.durable_index <= self.log.last_index(), "durable beyond the log");
        self.invariant(self.log.snapshot_index() <= self.commit, "snapshot beyond commit");
        self.invariant(self.log.snapshot_index() <= self.snapshot_index, "log compacted past the snapshot");
        if self.is_leader() {
            self.invariant(self.leader == Some(self.id()), "leader does not know itself");
            self.invariant(self.vote == Some(self.id()), "leader did not vote for itself");
        }
    }
}

/// Folds a turn's `Accepted` answers to one leader into the last of them,
/// with the highest match index: each acknowledges everything up to its
/// index, so the highest says all the others say (the leader frees its
/// in-flight appends up to it, `Progress::on_accepted`).
fn merge_acknowledgements(send: &mut Vec<(NodeId, Message)>) {
    let accepted = |message: &Message| match message.kind {
        MessageKind::AppendResponse(message::AppendResult::Accepted { match_index }) => Some(match_index),
        _ => None,
    };
    if send.iter().filter(|(_, m)| accepted(m).is_some()).count() < 2 {
        return;
    }
    // The highest index acknowledged to each (leader, term), and where
    // its last answer is: that one is kept, carrying the highest.
    let mut highest: BTreeMap<(NodeId, Term), (Index, usize)> = BTreeMap::new();
    for (at, (to, message)) in send.iter().enumerate() {
        if let Some(index) = accepted(message) {
            let entry = highest.entry((*to, message.term)).or_insert((index, at));
            *entry = (entry.0.max(index), at);
        }
    }
    let mut at = 0;
    send.retain_mut(|(to, message)| {
        at += 1;
        if accepted(message).is_none() {
            return true;
        }
        let (match_index, last) = highest[&(*to, message.term)];
        let result = message::AppendResult::Accepted { match_index };
        message.kind = MessageKind::AppendResponse(result);
        last == at - 1
    });
}
