//! Model checking of the real Raft core with stateright.
//!
//! The model is a cluster of `Replica`s (the real `Raft` behind the
//! in-memory shell of `tests/common`) and a network holding a *set* of
//! messages in flight. Its actions are every nondeterministic choice a real
//! cluster faces:
//!
//! - deliver a message (and forget it), deliver it but keep a copy (a
//!   duplicate), or lose it — so the network reorders, duplicates and loses;
//! - a node's timer fires (ticks until it does something: a pre-vote, a
//!   campaign, a heartbeat round); or, in the scenario with read leases,
//!   real time passes and each node's clock ticks at a rate of its own
//!   within the drift bound (`Clocks`);
//! - a node's fsync completes (its unsynced records become durable);
//! - a node crashes and restarts, keeping only its durable records;
//! - a leader proposes a command, any node starts a linearizable read, a
//!   leader proposes adding the joining node (second configuration).
//!
//! Properties are checked in every reachable state: election safety, log
//! matching, leader completeness, state-machine safety, commit index
//! monotonic (per boot, and on disk), a durable vote never changes within a
//! term, and every ReadIndex covers everything committed before the read
//! began. `sometimes` properties show that progress really happens.
//!
//! The search is breadth-first to a bounded depth (`CASHE_MODEL_DEPTH`),
//! so any counterexample is a shortest one. `CASHE_MODEL_BUG=<name>` plants
//! one of the core's test-only bugs; the run must then fail.
//!
//! Bounds: three configurations are explored in turn (see `scenarios`),
//! the one with read leases and drifting clocks first;
//! each prints its unique state count and time.

mod common;

use cashe::raft::{
    Config, Entry, Index, MembershipChange, Message, NodeId, Payload, PlantedBug, Raft, ReadId, Role, Term,
};
use common::checking::{self, env_number};
use common::nemesis::{Move, NemesisChooser, NemesisModel};
use common::Replica;
use stateright::{Checker, HasDiscoveries, Model, Property};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

const RUN_SEED: u64 = 0x00C0_FFEE;

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct Envelope {
    from: NodeId,
    to: NodeId,
    message: Message,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Action {
    Deliver(Envelope),
    Duplicate(Envelope),
    Lose(Envelope),
    Timeout(NodeId),
    /// One tick of a node's clock (scenarios with `Clocks`).
    Tick(NodeId),
    /// One unit of real time passes (scenarios with `Clocks`).
    Elapse,
    Sync(NodeId),
    Crash(NodeId),
    Propose(NodeId),
    Read(NodeId),
    Join(NodeId),
}

/// Bounds of one exploration.
#[derive(Clone, Debug)]
struct RaftModel {
    name: &'static str,
    voters: u64,
    /// A node outside the initial configuration that a leader adds.
    joiner: Option<NodeId>,
    proposals_max: u8,
    reads_max: u8,
    crashes_max: u8,
    losses_max: u8,
    duplicates_max: u8,
    /// States with a higher term are not explored further.
    term_max: Term,
    /// Unique states the exhaustive phase found at the default depth, less
    /// a margin: a change that shrinks the search fails the run.
    pinned_states_min: usize,
    config: Config,
    /// Real time and drifting clocks instead of the `Timeout` action.
    clocks: Option<Clocks>,
}

/// Bounded clock drift: real time passes in units (`Action::Elapse`), and
/// a node's consecutive ticks are between `tick_min` and `tick_max` units
/// apart, so every clock runs at its own, changing rate within the bound.
/// With `tick_min = 1` and `tick_max = 2` a tick lasts 1.5 units ± 1/3:
/// a drift bound of 33 %.
#[derive(Clone, Copy, Debug)]
struct Clocks {
    tick_min: u8,
    tick_max: u8,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct State {
    replicas: Vec<Replica>,
    network: BTreeSet<Envelope>,
    proposals: u8,
    reads: u8,
    crashes: u8,
    losses: u8,
    duplicates: u8,
    joined: bool,
    // History the properties need.
    leaders: BTreeMap<Term, NodeId>,
    applied: BTreeMap<Index, Entry>,
    /// Every index known committed: its entry's term and the earliest term
    /// in which a node learned it was committed.
    committed: BTreeMap<Index, (Term, Term)>,
    read_floors: BTreeMap<ReadId, Index>,
    reads_served: u8,
    /// Reads a leader answered at once, from its lease.
    lease_reads: u8,
    /// Units of real time since each replica's last tick (`Clocks`).
    since_tick: Vec<u8>,
    clocked: bool,
    violations: BTreeSet<&'static str>,
}

impl RaftModel {
    fn ids(&self) -> Vec<NodeId> {
        let mut ids: Vec<NodeId> = (1..=self.voters).map(NodeId).collect();
        ids.extend(self.joiner);
        ids
    }

    fn replica(&self, state: &State, id: NodeId) -> usize {
        state.replicas.iter().position(|r| r.id() == id).expect("known node")
    }
}

impl Model for RaftModel {
    type State = State;
    type Action = Action;

    fn init_states(&self) -> Vec<State> {
        let founders: Vec<NodeId> = (1..=self.voters).map(NodeId).collect();
        let replicas = self
            .ids()
            .into_iter()
            .map(|id| {
                let recovered = if founders.contains(&id) {
                    Raft::bootstrap(founders.clone())
                } else {
                    Default::default()
                };
                Replica::new(Config { id, ..self.config.clone() }, RUN_SEED, recovered)
            })
            .collect();
        vec![State {
            replicas,
            network: BTreeSet::new(),
            proposals: 0,
            reads: 0,
            crashes: 0,
            losses: 0,
            duplicates: 0,
            joined: false,
            leaders: BTreeMap::new(),
            applied: BTreeMap::new(),
            committed: BTreeMap::new(),
            read_floors: BTreeMap::new(),
            reads_served: 0,
            lease_reads: 0,
            since_tick: vec![0; self.ids().len()],
            clocked: self.clocks.is_some(),
            violations: BTreeSet::new(),
        }]
    }

    fn actions(&self, state: &State, actions: &mut Vec<Action>) {
        for envelope in &state.network {
            actions.push(Action::Deliver(envelope.clone()));
            if state.duplicates < self.duplicates_max {
                actions.push(Action::Duplicate(envelope.clone()));
            }
            if state.losses < self.losses_max {
                actions.push(Action::Lose(envelope.clone()));
            }
        }
        if let Some(clocks) = self.clocks {
            if state.since_tick.iter().all(|since| *since < clocks.tick_max) {
                actions.push(Action::Elapse);
            }
        }
        for (at, replica) in state.replicas.iter().enumerate() {
            let id = replica.id();
            let leader = replica.raft.is_leader();
            // A timer that can fire: voters campaign, leaders heartbeat;
            // learners and removed nodes have no timer that does anything.
            let timer = replica.raft.is_leader() || replica.raft.membership().is_voter(id);
            match self.clocks {
                None if timer => actions.push(Action::Timeout(id)),
                Some(clocks) if state.since_tick[at] >= clocks.tick_min => actions.push(Action::Tick(id)),
                _ => {}
            }
            if !replica.unsynced.is_empty() {
                actions.push(Action::Sync(id));
            }
            if state.crashes < self.crashes_max {
                actions.push(Action::Crash(id));
            }
            if leader && state.proposals < self.proposals_max {
                actions.push(Action::Propose(id));
            }
            // With clocks, reads go to leaders only: a walk spends its few
            // reads where leases are (a deposed leader's among them).
            let reader = self.clocks.is_none() || leader;
            if state.reads < self.reads_max && reader {
                actions.push(Action::Read(id));
            }
            if leader && self.joiner.is_some() && !state.joined {
                actions.push(Action::Join(id));
            }
        }
    }

    fn next_state(&self, last: &State, action: Action) -> Option<State> {
        let mut state = last.clone();
        let mut sent = Vec::new();
        let actor = match &action {
            Action::Deliver(e) | Action::Duplicate(e) | Action::Lose(e) => e.to,
            Action::Elapse => NodeId(0),
            Action::Timeout(id)
            | Action::Tick(id)
            | Action::Sync(id)
            | Action::Crash(id)
            | Action::Propose(id)
            | Action::Read(id)
            | Action::Join(id) => *id,
        };
        match action {
            Action::Deliver(envelope) | Action::Duplicate(envelope) | Action::Lose(envelope)
                if !state.network.contains(&envelope) =>
            {
                unreachable!("action on a message not in flight: {envelope:?}")
            }
            Action::Deliver(envelope) => {
                state.network.remove(&envelope);
                sent = deliver(self, &mut state, envelope);
            }
            Action::Duplicate(envelope) => {
                state.duplicates += 1;
                sent = deliver(self, &mut state, envelope);
            }
            Action::Lose(envelope) => {
                state.losses += 1;
                state.network.remove(&envelope);
            }
            Action::Timeout(id) => {
                let at = self.replica(&state, id);
                let ticks_max = 4 * self.config.election_ticks;
                let replica = &mut state.replicas[at];
                let before = (replica.raft.role(), replica.raft.term());
                for _ in 0..ticks_max {
                    replica.raft.tick();
                    sent = replica.drain();
                    if !sent.is_empty() || (replica.raft.role(), replica.raft.term()) != before {
                        break;
                    }
                }
            }
            Action::Tick(id) => {
                let at = self.replica(&state, id);
                state.since_tick[at] = 0;
                state.replicas[at].raft.tick();
                sent = state.replicas[at].drain();
            }
            Action::Elapse => state.since_tick.iter_mut().for_each(|since| *since += 1),
            Action::Sync(id) => {
                let at = self.replica(&state, id);
                sent = state.replicas[at].sync();
            }
            Action::Crash(id) => {
                state.crashes += 1;
                let at = self.replica(&state, id);
                state.replicas[at].crash_and_restart(RUN_SEED);
                state.since_tick[at] = 0;
            }
            Action::Propose(id) => {
                let at = self.replica(&state, id);
                let command = vec![state.proposals];
                state.proposals += 1;
                state.replicas[at].raft.propose(command).expect("leaders accept proposals in the model");
                sent = state.replicas[at].drain();
            }
            Action::Read(id) => {
                let floor = state.replicas.iter().map(|r| r.raft.commit()).max().unwrap_or_default();
                let read = ReadId(u64::from(state.reads));
                state.reads += 1;
                state.read_floors.insert(read, floor);
                let at = self.replica(&state, id);
                state.replicas[at].raft.read_index(read);
                sent = state.replicas[at].drain();
                let replica = &state.replicas[at];
                let answered = replica.reads.iter().any(|r| r.read == read && r.result.is_ok());
                if answered && replica.raft.holds_read_lease() {
                    state.lease_reads += 1;
                }
            }
            Action::Join(id) => {
                let joiner = self.joiner.expect("join only with a joiner");
                let at = self.replica(&state, id);
                // Refused until the leader's no-op commits: then nothing changes.
                let change = MembershipChange::AddLearner(joiner);
                state.joined = state.replicas[at].raft.propose_membership_change(change).is_ok();
                sent = state.replicas[at].drain();
            }
        }
        for (to, message) in sent {
            state.network.insert(Envelope { from: actor, to, message });
        }
        record_history(last, &mut state);
        Some(state)
    }

    fn within_boundary(&self, state: &State) -> bool {
        state.replicas.iter().all(|r| r.raft.term() <= self.term_max)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        let mut properties = vec![
            Property::always("election safety", |_, s: &State| !s.violations.contains("election safety")),
            Property::always("log matching", |_, s: &State| log_matching(s)),
            Property::always("leader completeness", |_, s: &State| leader_completeness(s)),
            Property::always("only complete logs are electable", |_, s: &State| {
                only_complete_logs_electable(s)
            }),
            Property::always("state machine safety", |_, s: &State| {
                !s.violations.contains("state machine safety")
            }),
            Property::always("commit monotonic", |_, s: &State| !s.violations.contains("commit monotonic")),
            Property::always("durable hard state monotonic", |_, s: &State| {
                !s.violations.contains("durable hard state monotonic")
            }),
            Property::always("reads linearizable", |_, s: &State| {
                !s.violations.contains("reads linearizable")
            }),
        ];
        if self.proposals_max > 0 {
            properties.push(Property::sometimes("a command is committed", |_, s: &State| {
                s.applied.values().any(|e| matches!(e.payload, Payload::Command(_)))
            }));
        }
        if self.reads_max > 0 {
            properties.push(Property::sometimes("a read is served", |_, s: &State| s.reads_served > 0));
        }
        if self.config.read_lease {
            properties
                .push(Property::sometimes("a read is served from a lease", |_, s: &State| s.lease_reads > 0));
        }
        if self.joiner.is_some() {
            properties.push(Property::sometimes(
                "a membership change completes",
                |m: &RaftModel, s: &State| {
                    m.joiner
                        .is_some_and(|j| s.replicas.iter().any(|r| r.raft.committed_membership().is_voter(j)))
                },
            ));
        }
        properties
    }
}

fn deliver(model: &RaftModel, state: &mut State, envelope: Envelope) -> Vec<(NodeId, Message)> {
    let at = model.replica(state, envelope.to);
    let replica = &mut state.replicas[at];
    replica.raft.step(envelope.from, envelope.message);
    replica.drain()
}

/// Folds what happened in this step into the history the properties check.
fn record_history(last: &State, state: &mut State) {
    for (before, replica) in last.replicas.iter().zip(state.replicas.iter_mut()) {
        let raft = &replica.raft;
        if raft.is_leader() {
            let leader = *state.leaders.entry(raft.term()).or_insert(raft.id());
            if leader != raft.id() {
                state.violations.insert("election safety");
            }
        }
        let mut index = before.raft.commit().next();
        while index <= raft.commit() {
            if let Some(entry_term) = raft.log().term(index) {
                let known = state.committed.entry(index).or_insert((entry_term, raft.term()));
                known.1 = known.1.min(raft.term());
            }
            index = index.next();
        }
        let same_boot = before.boots == replica.boots;
        if same_boot && raft.commit() < before.raft.commit() {
            state.violations.insert("commit monotonic");
        }
        let (old, new) = (before.durable.hard_state, replica.durable.hard_state);
        if new.term < old.term
            || new.commit < old.commit
            || (new.term == old.term && old.vote.is_some() && new.vote != old.vote)
        {
            state.violations.insert("durable hard state monotonic");
        }
        for entry in replica.applied.drain(..) {
            let agreed = state.applied.entry(entry.index).or_insert_with(|| entry.clone());
            if *agreed != entry {
                state.violations.insert("state machine safety");
            }
        }
        for read in replica.reads.drain(..) {
            if let Ok(index) = read.result {
                state.reads_served += 1;
                if index < state.read_floors[&read.read] {
                    state.violations.insert("reads linearizable");
                }
            }
        }
    }
}

/// §5.3: two logs holding an entry with the same index and term are
/// identical up to it.
fn log_matching(state: &State) -> bool {
    for a in &state.replicas {
        for b in &state.replicas {
            let (la, lb) = (a.raft.log(), b.raft.log());
            let last = la.last_index().min(lb.last_index());
            let mut index = last;
            let mut matched = false;
            while index > Index(0) {
                match (la.term(index), lb.term(index)) {
                    (Some(x), Some(y)) if matched && x != y => return false,
                    (Some(x), Some(y)) if x == y => matched = true,
                    _ => {}
                }
                index = index.prev();
            }
        }
    }
    true
}

/// §5.4: if an entry is committed in a term, the leaders of all later terms
/// hold it.
fn leader_completeness(state: &State) -> bool {
    state.replicas.iter().filter(|r| r.raft.role() == Role::Leader).all(|leader| {
        let log = leader.raft.log();
        state.committed.iter().all(|(index, (entry_term, commit_term))| {
            leader.raft.term() <= *commit_term
                || *index <= log.snapshot_index()
                || log.term(*index) == Some(*entry_term)
        })
    })
}

/// Leader completeness strengthened from actual leaders to potential ones:
/// a node missing a committed entry can never collect a quorum of voters
/// whose durable logs it is at least as up-to-date as (§5.4.3's argument).
/// It fails the moment an entry is committed unsafely, long before a
/// leader that lacks it is actually elected (the Figure 8 scenario).
fn only_complete_logs_electable(state: &State) -> bool {
    state.replicas.iter().all(|candidate| {
        let log = candidate.raft.log();
        let membership = candidate.raft.membership();
        let missing = state
            .committed
            .iter()
            .any(|(index, (term, _))| *index > log.snapshot_index() && log.term(*index) != Some(*term));
        if !missing || !membership.is_voter(candidate.id()) {
            return true;
        }
        let would_grant = state
            .replicas
            .iter()
            .filter(|voter| membership.is_voter(voter.id()))
            .filter(|voter| {
                let durable = &voter.durable;
                let last_term = durable
                    .entries
                    .last()
                    .map(|e| e.term)
                    .unwrap_or_else(|| durable.snapshot.as_ref().map_or(Term(0), |s| s.meta.term));
                (log.last_term(), log.last_index()) >= (last_term, durable.last_index())
            })
            .count();
        would_grant < membership.quorum()
    })
}

fn model_config(bug: PlantedBug) -> Config {
    Config {
        heartbeat_ticks: 1,
        election_ticks: 2,
        append_entries_max: 1,
        inflight_appends_max: 2,
        planted_bug: bug,
        ..Config::new(NodeId(0))
    }
}

fn scenarios(bug: PlantedBug) -> Vec<RaftModel> {
    let config = model_config(bug);
    let base = RaftModel {
        name: "3 voters: elections, 2 commands, 1 read, 1 crash, lossy network",
        voters: 3,
        joiner: None,
        proposals_max: 2,
        reads_max: 1,
        crashes_max: 1,
        losses_max: 1,
        duplicates_max: 1,
        term_max: Term(6),
        pinned_states_min: 800_000,
        config: config.clone(),
        clocks: None,
    };
    vec![
        RaftModel {
            name: "3 voters, read leases, clocks drifting within a 34 % bound: 1 command, 24 reads, 1 crash",
            proposals_max: 1,
            // Walks take them one at a time as they go: enough to have
            // one left when a lease is stale.
            reads_max: 24,
            losses_max: 0,
            duplicates_max: 0,
            term_max: Term(4),
            pinned_states_min: 600,
            // A lease of 3 ticks: (10 - 1) * 66 / 134 = 4.4, less one.
            config: Config { election_ticks: 10, read_lease: true, clock_drift_percent: 34, ..config },
            clocks: Some(Clocks { tick_min: 1, tick_max: 2 }),
            ..base.clone()
        },
        base.clone(),
        RaftModel {
            name: "3 voters + a joining learner: add, catch up, promote; 1 command, 1 read, 1 crash, 1 loss",
            joiner: Some(NodeId(4)),
            proposals_max: 1,
            duplicates_max: 0,
            term_max: Term(5),
            pinned_states_min: 250_000,
            ..base
        },
    ]
}

/// Random walks for the depth exhaustive search cannot reach.
impl NemesisModel for RaftModel {
    fn nodes(state: &State) -> Vec<NodeId> {
        state.replicas.iter().map(|r| r.id()).collect()
    }

    fn classify(action: &Action) -> Move {
        match action {
            Action::Deliver(e) => Move::Deliver { from: e.from, to: e.to },
            Action::Duplicate(e) => Move::Duplicate { from: e.from, to: e.to },
            Action::Sync(_) => Move::Sync,
            Action::Timeout(_) => Move::Timeout,
            Action::Tick(node) => Move::Tick { node: *node },
            Action::Elapse => Move::Elapse,
            Action::Propose(_) | Action::Read(_) | Action::Join(_) => Move::Request,
            Action::Crash(_) | Action::Lose(_) => Move::Fault,
        }
    }

    /// With clocks, a node cut off long enough for the others to elect a
    /// leader by the ticks of their own clocks.
    fn phase_steps(state: &State) -> (u64, u64) {
        if state.clocked {
            (8, 64)
        } else {
            (4, 24)
        }
    }
}

fn main() {
    let bug = checking::planted_bug();
    const DEFAULT_DEPTH: usize = 9;
    let depth = env_number("CASHE_MODEL_DEPTH", DEFAULT_DEPTH);
    let walk_states = env_number("CASHE_MODEL_WALK_STATES", 15_000_000);
    let walk_depth = env_number("CASHE_MODEL_WALK_DEPTH", 80);
    let threads = env_number("CASHE_MODEL_THREADS", 2);
    let mut failed = 0;
    let mut passed = 0;
    // `CASHE_MODEL_SCENARIO=<words>`: only the scenarios whose name holds them.
    let only = std::env::var("CASHE_MODEL_SCENARIO").unwrap_or_default();
    for model in scenarios(bug).into_iter().filter(|m| m.name.contains(only.as_str())) {
        let name = model.name;
        let started = Instant::now();
        let checker = model
            .clone()
            .checker()
            .threads(threads)
            .target_max_depth(depth)
            .finish_when(HasDiscoveries::AnyFailures)
            .spawn_bfs()
            .join();
        println!(
            "model [{name}] bug={bug} exhaustive to depth {depth}: {} unique states ({} total), max depth {}, {:.1}s",
            checker.unique_state_count(),
            checker.state_count(),
            checker.max_depth(),
            started.elapsed().as_secs_f64()
        );
        let started = Instant::now();
        // Real time in single ticks takes a walk longer to get anywhere.
        let walk_depth = if model.clocks.is_some() { walk_depth * 3 } else { walk_depth };
        let walks = model
            .checker()
            .threads(threads)
            .target_max_depth(walk_depth)
            .target_state_count(walk_states)
            .finish_when(HasDiscoveries::AnyFailures)
            .spawn_simulation(RUN_SEED, NemesisChooser)
            .join();
        println!(
            "model [{name}] bug={bug} random walks to depth {walk_depth}: {} states visited, max depth {}, {:.1}s",
            walks.state_count(),
            walks.max_depth(),
            started.elapsed().as_secs_f64()
        );
        let mut ok = true;
        let pinned = checker.model().pinned_states_min;
        if depth == DEFAULT_DEPTH && bug == PlantedBug::None && checker.unique_state_count() < pinned {
            println!("  the search shrank: fewer than the {pinned} unique states pinned for this scenario");
            ok = false;
        }
        ok &= checking::report(&checker, &walks);
        if ok {
            passed += 1
        } else {
            failed += 1;
            if bug != PlantedBug::None {
                break; // The planted bug is caught; the other scenarios add nothing.
            }
        }
    }
    println!("model: {passed} passed, {failed} failed");
    if failed > 0 {
        std::process::exit(1);
    }
}
