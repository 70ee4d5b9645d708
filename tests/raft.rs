//! The unit specification of the Raft core: each test is named for one rule
//! of Raft (paper, dissertation or one of our own contracts) and fails if the
//! core breaks it.
//!
//! `Cluster` wires `Replica`s (the in-memory shell of `tests/common`) to a
//! FIFO network. Nothing happens unless a test says so: messages move on
//! `deliver_*`, records become durable on `sync*`, time passes on `tick*`.
//! A partition (`isolate`) drops every message to or from a node, both when
//! it is sent and when it would be delivered. Every loop is bounded, so a
//! liveness failure is a test failure, never a hang. Tests about what leaves
//! a single node before and after `persisted` drive a bare `Raft` and read
//! `take_output` directly.

mod common;

use cashe::raft::{
    AppendResult, Apply, Config, Entry, HardState, Index, Lsn, MembershipChange, Message, MessageKind,
    NodeId, Payload, PlantedBug, ProposeError, Raft, ReadError, ReadId, ReadState, Record, Recovered, Role,
    SnapshotMeta, Term,
};
use common::Replica;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

const RUN_SEED: u64 = 0x5EED_CA5E;
const ELECTION_TICKS: u32 = 5;
/// Messages, syncs or steps before a helper gives up: far more than any
/// scenario here needs.
const STEPS_MAX: usize = 10_000;
/// Tick rounds `tick_until_leader` allows: many election timeouts.
const ELECTION_ROUNDS_MAX: usize = 20 * ELECTION_TICKS as usize;

fn config(id: NodeId) -> Config {
    Config { heartbeat_ticks: 1, election_ticks: ELECTION_TICKS, ..Config::new(id) }
}

fn command(text: &str) -> Vec<u8> {
    text.as_bytes().to_vec()
}

/// A node's disk after earlier terms: the founding membership of `voters`
/// at index 1 (term 1), then `entries` as `(term, command)` from index 2.
fn history(voters: &[u64], term: u64, commit: u64, entries: &[(u64, &str)]) -> Recovered {
    let mut recovered = Raft::bootstrap(voters.iter().copied().map(NodeId));
    for (entry_term, text) in entries {
        let index = recovered.last_index().next();
        let payload = Payload::Command(command(text));
        recovered.entries.push(Entry { term: Term(*entry_term), index, payload });
    }
    recovered.hard_state = HardState { term: Term(term), vote: None, commit: Index(commit) };
    recovered
}

/// A founding member of a `voters`-node cluster, driven bare.
fn founder(id: u64, voters: u64) -> Raft {
    founder_with(config(NodeId(id)), voters)
}

fn founder_with(config: Config, voters: u64) -> Raft {
    let seed = config.id.0;
    let recovered = Raft::bootstrap((1..=voters).map(NodeId));
    let mut raft = Raft::restore(config, seed, recovered).expect("valid config");
    raft.take_output();
    raft
}

/// Every entry still in the log, in order.
fn entries(raft: &Raft) -> Vec<Entry> {
    let log = raft.log();
    (log.first_index().0..=log.last_index().0)
        .map(|i| log.entry(Index(i)).expect("within the log").clone())
        .collect()
}

/// The commands a replica applied this boot, in order.
fn applied_commands(replica: &Replica) -> Vec<Vec<u8>> {
    replica
        .applied
        .iter()
        .filter_map(|entry| match &entry.payload {
            Payload::Command(bytes) => Some(bytes.clone()),
            _ => None,
        })
        .collect()
}

fn entry_count(message: &Message) -> Option<usize> {
    match &message.kind {
        MessageKind::Append { entries, .. } => Some(entries.len()),
        _ => None,
    }
}

type Envelope = (NodeId, NodeId, Message);
/// What one node hands its shell to send: `(to, message)`.
type Outgoing = Vec<(NodeId, Message)>;

struct Cluster {
    nodes: BTreeMap<NodeId, Replica>,
    /// Messages in flight, delivered in the order sent.
    network: VecDeque<Envelope>,
    /// Every message any node emitted, delivered or not, for counting.
    sent: Vec<Envelope>,
    isolated: BTreeSet<NodeId>,
}

impl Cluster {
    /// `voters` founders with ids 1..=voters and the test config.
    fn new(voters: u64) -> Cluster {
        Cluster::with_config(voters, |config| config)
    }

    fn with_config(voters: u64, tune: impl Fn(Config) -> Config) -> Cluster {
        let ids: Vec<NodeId> = (1..=voters).map(NodeId).collect();
        let founders = Raft::bootstrap(ids.clone());
        Cluster::from_recovered(ids.into_iter().map(|id| (tune(config(id)), founders.clone())))
    }

    fn from_recovered(nodes: impl IntoIterator<Item = (Config, Recovered)>) -> Cluster {
        let mut cluster = Cluster {
            nodes: BTreeMap::new(),
            network: VecDeque::new(),
            sent: Vec::new(),
            isolated: BTreeSet::new(),
        };
        for (config, recovered) in nodes {
            cluster.add(config, recovered);
        }
        cluster
    }

    fn add(&mut self, config: Config, recovered: Recovered) {
        let replica = Replica::new(config, RUN_SEED, recovered);
        self.nodes.insert(replica.id(), replica);
    }

    fn ids(&self) -> Vec<NodeId> {
        self.nodes.keys().copied().collect()
    }

    fn node(&self, id: NodeId) -> &Replica {
        &self.nodes[&id]
    }

    fn raft(&self, id: NodeId) -> &Raft {
        &self.node(id).raft
    }

    fn others(&self, id: NodeId) -> Vec<NodeId> {
        self.ids().into_iter().filter(|other| *other != id).collect()
    }

    /// Feeds node `id` an input through `f`, then sends what it emitted, as
    /// its shell would.
    fn on<T>(&mut self, id: NodeId, f: impl FnOnce(&mut Raft) -> T) -> T {
        let replica = self.nodes.get_mut(&id).expect("known node");
        let result = f(&mut replica.raft);
        let messages = replica.drain();
        self.post(id, messages);
        result
    }

    fn post(&mut self, from: NodeId, messages: Vec<(NodeId, Message)>) {
        for (to, message) in messages {
            self.sent.push((from, to, message.clone()));
            if !self.is_cut(from, to) {
                self.network.push_back((from, to, message));
            }
        }
    }

    fn is_cut(&self, from: NodeId, to: NodeId) -> bool {
        self.isolated.contains(&from) || self.isolated.contains(&to) || !self.nodes.contains_key(&to)
    }

    /// Hands `message` straight to `to`, as if `from` had just sent it.
    fn inject(&mut self, from: NodeId, to: NodeId, message: Message) {
        self.on(to, |raft| raft.step(from, message));
    }

    fn tick(&mut self, id: NodeId) {
        self.on(id, Raft::tick);
    }

    fn tick_all(&mut self) {
        for id in self.ids() {
            self.tick(id);
        }
    }

    /// Ticks only node `id` until `done` holds; returns the ticks it took.
    fn tick_until(&mut self, id: NodeId, done: impl Fn(&Raft) -> bool) -> u32 {
        for ticks in 1..=4 * ELECTION_TICKS {
            self.tick(id);
            if done(self.raft(id)) {
                return ticks;
            }
        }
        panic!("node {id} did not get there within {} ticks", 4 * ELECTION_TICKS);
    }

    /// Ticks every node once and lets the cluster settle, `rounds` times.
    fn tick_rounds(&mut self, rounds: u32) {
        for _ in 0..rounds {
            self.tick_all();
            self.settle();
        }
    }

    /// Delivers the oldest message in flight; false if there is none.
    fn deliver_one(&mut self) -> bool {
        let Some((from, to, message)) = self.network.pop_front() else { return false };
        if !self.is_cut(from, to) {
            self.inject(from, to, message);
        }
        true
    }

    /// Delivers until the network is empty (answers included), no syncs.
    fn deliver_all(&mut self) {
        for _ in 0..STEPS_MAX {
            if !self.deliver_one() {
                return;
            }
        }
        panic!("the network did not drain within {STEPS_MAX} messages");
    }

    /// Node `id`'s fsync completes.
    fn sync(&mut self, id: NodeId) {
        let messages = self.nodes.get_mut(&id).expect("known node").sync();
        self.post(id, messages);
    }

    fn sync_all(&mut self) {
        for id in self.ids() {
            self.sync(id);
        }
    }

    fn crash(&mut self, id: NodeId) {
        self.nodes.get_mut(&id).expect("known node").crash_and_restart(RUN_SEED);
    }

    fn is_quiet(&self) -> bool {
        self.network.is_empty() && self.nodes.values().all(|replica| replica.unsynced.is_empty())
    }

    /// Delivers and syncs until nothing is in flight or unsynced.
    fn settle(&mut self) {
        for _ in 0..STEPS_MAX {
            if self.is_quiet() {
                return;
            }
            self.deliver_all();
            self.sync_all();
        }
        panic!("the cluster did not settle within {STEPS_MAX} rounds");
    }

    /// One message (or, with none in flight, one round of syncs) at a time
    /// until `done` holds; false if the cluster went quiet first.
    fn run_until(&mut self, done: impl Fn(&Cluster) -> bool) -> bool {
        for _ in 0..STEPS_MAX {
            if done(self) {
                return true;
            }
            if !self.deliver_one() {
                if self.is_quiet() {
                    return false;
                }
                self.sync_all();
            }
        }
        false
    }

    /// The reachable leader of the newest term among reachable nodes.
    fn leader(&self) -> Option<NodeId> {
        let reachable = || self.nodes.values().filter(|r| !self.isolated.contains(&r.id()));
        let term = reachable().map(|r| r.raft.term()).max()?;
        reachable().find(|r| r.raft.is_leader() && r.raft.term() == term).map(Replica::id)
    }

    /// Lets time pass on every node until a leader is elected and has
    /// committed its no-op.
    fn tick_until_leader(&mut self) -> NodeId {
        for _ in 0..ELECTION_ROUNDS_MAX {
            self.tick_all();
            self.settle();
            if let Some(leader) = self.leader() {
                return leader;
            }
        }
        panic!("no leader within {ELECTION_ROUNDS_MAX} rounds");
    }

    fn propose(&mut self, id: NodeId, text: &str) -> (Index, Term) {
        self.on(id, |raft| raft.propose(command(text))).expect("the leader accepts proposals")
    }

    fn isolate(&mut self, id: NodeId) {
        self.isolated.insert(id);
    }

    fn heal(&mut self) {
        self.isolated.clear();
    }

    fn mark(&self) -> usize {
        self.sent.len()
    }

    /// Messages from `from` to `to` sent since `mark`.
    fn sent_since(&self, mark: usize, from: NodeId, to: NodeId) -> Vec<&Message> {
        self.sent[mark..].iter().filter(|(f, t, _)| *f == from && *t == to).map(|(_, _, m)| m).collect()
    }
}

// ----- election (Raft paper §5.2, §5.4.1; dissertation §9.6, §6.2) -------

#[test]
fn follower_that_times_out_pre_votes_then_campaigns_and_wins() {
    let mut cluster = Cluster::new(3);
    let first = NodeId(1);

    cluster.tick_until(first, |raft| raft.role() != Role::Follower);
    assert_eq!(cluster.raft(first).role(), Role::PreCandidate);
    assert_eq!(cluster.raft(first).term(), Term(1), "a pre-candidate stays in its term");
    let pre_votes = cluster
        .network
        .iter()
        .filter(|(_, _, m)| m.term == Term(2) && matches!(m.kind, MessageKind::PreVote { .. }))
        .count();
    assert_eq!(pre_votes, 2, "it asks both peers about term 2");

    cluster.deliver_all();
    assert_eq!(cluster.raft(first).role(), Role::Candidate);
    assert_eq!(cluster.raft(first).term(), Term(2));
    assert_eq!(cluster.raft(first).vote(), Some(first));

    cluster.sync_all();
    cluster.deliver_all();
    assert!(cluster.raft(first).is_leader());
    assert_eq!(cluster.leader(), Some(first));
    for peer in cluster.others(first) {
        assert_eq!(cluster.raft(peer).vote(), Some(first), "node {peer} voted for the winner");
    }
}

#[test]
fn new_leader_appends_a_noop_of_its_own_term() {
    let mut cluster = Cluster::new(3);

    let leader = cluster.tick_until_leader();

    let raft = cluster.raft(leader);
    let last = raft.log().entry(raft.log().last_index()).expect("non-empty log");
    assert_eq!(last.payload, Payload::Noop);
    assert_eq!(last.term, raft.term());
    assert_eq!(raft.commit(), last.index, "the no-op commits the leader's term");
}

#[test]
fn election_timeouts_are_randomized_per_node_from_the_seed() {
    let timeouts = || {
        let mut cluster = Cluster::new(5);
        cluster.ids().into_iter().map(|id| cluster.tick_until(id, |r| r.role() != Role::Follower)).collect()
    };

    let first: Vec<u32> = timeouts();
    let again: Vec<u32> = timeouts();

    for ticks in &first {
        assert!((ELECTION_TICKS..2 * ELECTION_TICKS).contains(ticks), "timeout {ticks} outside [T, 2T)");
    }
    let distinct: BTreeSet<u32> = first.iter().copied().collect();
    assert!(distinct.len() > 1, "every node drew the same timeout: {first:?}");
    assert_eq!(first, again, "the same seeds draw the same timeouts");
}

#[test]
fn pre_vote_does_not_change_the_receivers_term_or_vote() {
    let mut cluster = Cluster::new(3);
    cluster.tick_until(NodeId(1), |raft| raft.role() == Role::PreCandidate);

    cluster.deliver_one();
    cluster.deliver_one();

    for peer in [NodeId(2), NodeId(3)] {
        assert_eq!(cluster.raft(peer).term(), Term(1));
        assert_eq!(cluster.raft(peer).vote(), None);
        assert!(cluster.node(peer).unsynced.is_empty(), "node {peer} persisted nothing");
    }
    let grants: Vec<&Message> = cluster.network.iter().map(|(_, _, m)| m).collect();
    let granted = Message { term: Term(2), kind: MessageKind::PreVoteResponse { granted: true } };
    assert_eq!(grants, vec![&granted, &granted]);
}

#[test]
fn vote_is_refused_to_a_candidate_whose_log_is_behind() {
    // Without pre-vote and leases, only the log comparison of §5.4.1 stands
    // between the stale node and leadership.
    let tune = |id| Config { pre_vote: false, check_quorum: false, ..config(NodeId(id)) };
    let complete = history(&[1, 2, 3], 2, 2, &[(2, "a"), (2, "b")]);
    let stale = history(&[1, 2, 3], 2, 2, &[(2, "a")]);
    let mut cluster =
        Cluster::from_recovered([(tune(1), complete.clone()), (tune(2), complete), (tune(3), stale)]);
    let behind = NodeId(3);

    for _ in 0..4 * ELECTION_TICKS {
        cluster.tick(behind);
        cluster.settle();
        assert!(!cluster.raft(behind).is_leader(), "a stale log won an election");
    }

    assert!(cluster.raft(behind).term() > Term(2), "the stale node did campaign");
    for voter in [NodeId(1), NodeId(2)] {
        assert_ne!(cluster.raft(voter).vote(), Some(behind), "node {voter} voted for a stale log");
    }
    let leader = cluster.tick_until_leader();
    assert_ne!(leader, behind);
}

#[test]
fn leader_steps_down_after_an_election_timeout_without_a_quorum() {
    let mut cluster = Cluster::new(3);
    let leader = cluster.tick_until_leader();
    let term = cluster.raft(leader).term();
    cluster.tick_rounds(3 * ELECTION_TICKS);
    assert!(cluster.raft(leader).is_leader(), "a leader with a quorum keeps leading");

    cluster.isolate(leader);
    cluster.tick(leader);
    assert!(cluster.raft(leader).is_leader(), "one silent tick is not an election timeout");
    let ticks = cluster.tick_until(leader, |raft| !raft.is_leader());

    assert!(ticks < 2 * ELECTION_TICKS, "stepped down only after {ticks} more ticks");
    assert_eq!(cluster.raft(leader).role(), Role::Follower);
    assert_eq!(cluster.raft(leader).leader(), None);
    assert_eq!(cluster.raft(leader).term(), term, "stepping down does not start a term");
}

#[test]
fn a_leader_counts_an_answering_follower_as_heard_at_every_tick_and_a_silent_one_not() {
    let mut cluster = Cluster::new(3);
    let leader = cluster.tick_until_leader();
    cluster.tick_rounds(ELECTION_TICKS);
    let followers: Vec<NodeId> = cluster.ids().into_iter().filter(|id| *id != leader).collect();
    // A new check-quorum period starts every election timeout; the
    // followers answered in the last one, so they stay heard throughout
    // (CLUSTER SHARDS' health must not blink "failed").
    for tick in 0..3 * ELECTION_TICKS {
        cluster.tick(leader);
        for follower in &followers {
            let heard = cluster.raft(leader).heard_recently(*follower);
            assert_eq!(heard, Some(true), "follower {follower} at tick {tick}");
        }
        cluster.settle();
    }
    let silent = followers[0];
    cluster.isolate(silent);
    for _ in 0..3 * ELECTION_TICKS {
        cluster.tick(leader);
        cluster.settle();
    }
    assert!(cluster.raft(leader).is_leader(), "one follower still answers");
    assert_eq!(cluster.raft(leader).heard_recently(silent), Some(false), "the cut-off follower");
    assert_eq!(cluster.raft(leader).heard_recently(followers[1]), Some(true), "the answering one");
    assert_eq!(cluster.raft(silent).heard_recently(leader), None, "a follower tracks nobody");
}

#[test]
fn check_quorum_step_down_catches_the_planted_no_check_quorum_step_down_bug() {
    let mut cluster =
        Cluster::with_config(3, |c| Config { planted_bug: PlantedBug::NoCheckQuorumStepDown, ..c });
    let leader = cluster.tick_until_leader();

    cluster.isolate(leader);
    for _ in 0..4 * ELECTION_TICKS {
        cluster.tick(leader);
    }

    assert!(cluster.raft(leader).is_leader(), "the scenario no longer exercises the rule");
}

#[test]
fn follower_within_its_leader_lease_ignores_a_higher_term_vote_unless_transferring() {
    let mut cluster = Cluster::new(3);
    let leader = cluster.tick_until_leader();
    let [follower, candidate] = cluster.others(leader)[..] else { unreachable!() };
    let term = cluster.raft(follower).term();
    let vote = cluster.raft(follower).vote();
    let last_index = Index(cluster.raft(leader).log().last_index().0 + 10);
    let campaign = |transfer| Message {
        term: term.next(),
        kind: MessageKind::Vote { last_index, last_term: term, transfer },
    };

    let mark = cluster.mark();
    cluster.inject(candidate, follower, campaign(false));

    assert_eq!(cluster.raft(follower).term(), term);
    assert_eq!(cluster.raft(follower).vote(), vote);
    assert_eq!(cluster.raft(follower).leader(), Some(leader));
    assert!(cluster.sent_since(mark, follower, candidate).is_empty(), "no answer at all");

    cluster.inject(candidate, follower, campaign(true));
    cluster.sync(follower);

    assert_eq!(cluster.raft(follower).term(), term.next(), "a transfer campaign overrides the lease");
    let granted = Message { term: term.next(), kind: MessageKind::VoteResponse { granted: true } };
    assert_eq!(cluster.sent_since(mark, follower, candidate), vec![&granted]);
}

#[test]
fn partitioned_node_rejoining_does_not_disrupt_the_leader() {
    let mut cluster = Cluster::new(3);
    let leader = cluster.tick_until_leader();
    let term = cluster.raft(leader).term();
    let partitioned = cluster.others(leader)[0];

    cluster.isolate(partitioned);
    cluster.tick_rounds(6 * ELECTION_TICKS);
    assert_eq!(cluster.raft(partitioned).term(), term, "pre-vote kept the lonely node's term");
    assert_ne!(cluster.raft(partitioned).role(), Role::Candidate);

    cluster.heal();
    cluster.tick_rounds(3 * ELECTION_TICKS);

    assert_eq!(cluster.leader(), Some(leader));
    for id in cluster.ids() {
        assert_eq!(cluster.raft(id).term(), term, "node {id} changed term");
    }
    assert_eq!(cluster.raft(partitioned).leader(), Some(leader));
}

// ----- a sole voter leads at once ----------------------------------------

/// A one-voter cluster that led from the start and added node 2 as a
/// learner, which has caught up; returns `(voter, learner)`.
fn one_voter_and_a_caught_up_learner(cluster: &mut Cluster, learner_config: Config) -> (NodeId, NodeId) {
    let (voter, learner) = (NodeId(1), learner_config.id);
    cluster.settle();
    assert!(cluster.raft(voter).is_leader());
    cluster.add(learner_config, Recovered::default());
    assert_eq!(cluster.raft(learner).role(), Role::Follower, "a node with no membership yet campaigned");
    assert!(cluster.node(learner).unsynced.is_empty());
    let change = MembershipChange::AddLearner(learner);
    cluster.on(voter, |raft| raft.propose_membership_change(change)).expect("change accepted");
    cluster.settle();
    assert!(cluster.raft(voter).is_leader(), "adding a learner leaves the voter leading");
    assert_eq!(entries(cluster.raft(learner)), entries(cluster.raft(voter)));
    (voter, learner)
}

#[test]
fn a_sole_voter_leads_without_waiting_for_an_election_timeout() {
    let only = NodeId(1);
    let mut raft = Raft::restore(config(only), 1, Raft::bootstrap([only])).expect("valid config");

    let output = raft.take_output();
    assert_eq!(raft.role(), Role::Candidate, "it campaigns as it starts, before any tick");
    let vote = HardState { term: Term(2), vote: Some(only), commit: Index(1) };
    assert_eq!(output.persist, vec![(Lsn(1), Record::HardState(vote))]);
    assert!(output.send.is_empty(), "there is nobody to ask: {:?}", output.send);
    let refused = raft.propose(command("early"));
    assert_eq!(refused, Err(ProposeError::NotLeader { leader: None }), "led on a vote not yet durable");

    raft.persisted(Lsn(1));
    assert!(raft.is_leader(), "the durable vote of the only voter is a quorum");
    assert_eq!(raft.term(), Term(2));
    let noop = raft.take_output().persist.last().expect("the no-op is handed out").0;
    raft.persisted(noop);
    let (index, _) = raft.propose(command("x")).expect("the leader accepts proposals");
    let written = raft.take_output().persist.last().expect("the entry is handed out").0;
    assert!(raft.commit() < index, "committed before its fsync");
    raft.persisted(written);

    assert_eq!(raft.commit(), index);
    let applied = raft.take_output().apply;
    assert!(applied.iter().any(|a| matches!(a, Apply::Entry(e) if e.index == index)), "{applied:?}");
}

#[test]
fn a_restarted_sole_voter_leads_again_without_waiting_for_an_election_timeout() {
    let mut cluster = Cluster::new(1);
    let only = NodeId(1);
    cluster.settle();
    cluster.propose(only, "a");
    cluster.settle();
    let term = cluster.raft(only).term();

    cluster.crash(only);

    let restarted = cluster.node(only);
    assert_eq!(restarted.raft.role(), Role::Candidate, "it campaigns as it restarts, before any tick");
    assert_eq!(restarted.raft.term(), term.next());
    let vote = HardState { term: term.next(), vote: Some(only), commit: restarted.raft.commit() };
    assert_eq!(restarted.unsynced, vec![(Lsn(1), Record::HardState(vote))]);
    cluster.sync(only);
    assert!(cluster.raft(only).is_leader());
    let (index, _) = cluster.propose(only, "b");
    cluster.sync(only);
    assert_eq!(cluster.raft(only).commit(), index);
    assert_eq!(applied_commands(cluster.node(only)), vec![command("a"), command("b")]);
}

#[test]
fn a_voter_with_other_voters_campaigns_only_after_an_election_timeout() {
    let mut cluster = Cluster::new(3);

    cluster.settle();

    assert!(cluster.sent.is_empty(), "a founder spoke before any tick: {:?}", cluster.sent);
    for id in cluster.ids() {
        assert_eq!(cluster.raft(id).role(), Role::Follower, "node {id} campaigned at once");
        assert_eq!(cluster.raft(id).term(), Term(1));
    }
    let leader = cluster.tick_until_leader();
    cluster.propose(leader, "a");
    cluster.settle();
    let mark = cluster.mark();
    for id in cluster.ids() {
        cluster.crash(id);
    }
    cluster.settle();
    assert_eq!(cluster.leader(), None, "a restarted cluster of three led before any tick");
    assert_eq!(cluster.mark(), mark, "a restarted node spoke before any tick");
    for id in cluster.ids() {
        assert_eq!(cluster.raft(id).role(), Role::Follower, "node {id} campaigned at once");
    }
    cluster.tick_until_leader();
}

#[test]
fn a_learner_of_a_one_voter_cluster_never_campaigns_even_on_restart() {
    let no_promotion = |config| Config { auto_promote_learners: false, ..config };
    let mut cluster = Cluster::with_config(1, no_promotion);
    let (voter, learner) = one_voter_and_a_caught_up_learner(&mut cluster, no_promotion(config(NodeId(2))));
    let term = cluster.raft(voter).term();

    cluster.crash(learner);
    assert_eq!(cluster.raft(learner).role(), Role::Follower);
    assert!(cluster.node(learner).unsynced.is_empty(), "the restarted learner campaigned");
    cluster.isolate(voter);
    cluster.tick_rounds(4 * ELECTION_TICKS);
    assert_eq!(cluster.raft(learner).term(), term, "a learner stood for election");
    assert_eq!(cluster.raft(learner).role(), Role::Follower);

    cluster.heal();
    cluster.crash(voter);
    assert_eq!(cluster.raft(voter).role(), Role::Candidate, "a sole voter with a learner campaigns at once");
    cluster.settle();
    assert!(cluster.raft(voter).is_leader());
    assert_eq!(cluster.raft(learner).leader(), Some(voter));
}

#[test]
fn a_voter_restarted_after_its_learner_was_promoted_waits_for_an_election_timeout() {
    let mut cluster = Cluster::new(1);
    let (voter, promoted) = one_voter_and_a_caught_up_learner(&mut cluster, config(NodeId(2)));
    for _ in 0..ELECTION_TICKS {
        cluster.tick(voter);
        cluster.settle();
    }
    assert!(cluster.raft(voter).committed_membership().is_voter(promoted), "never promoted");
    assert!(cluster.raft(voter).is_leader());

    cluster.crash(voter);

    assert_eq!(cluster.raft(voter).role(), Role::Follower, "one of two voters campaigned at once");
    assert!(cluster.node(voter).unsynced.is_empty());
    cluster.tick_until_leader();
}

// ----- durability: promises leave only once durable ----------------------

/// A fresh node 2 of three receives node 1's campaign for term 2; returns
/// what it sends before the vote is durable, and after.
fn vote_answers_before_and_after_persist(bug: PlantedBug) -> (Outgoing, Outgoing) {
    let mut voter = founder_with(Config { planted_bug: bug, ..config(NodeId(2)) }, 3);
    let vote = MessageKind::Vote { last_index: Index(1), last_term: Term(1), transfer: false };

    voter.step(NodeId(1), Message { term: Term(2), kind: vote });
    let output = voter.take_output();
    let vote_record = Record::HardState(HardState { term: Term(2), vote: Some(NodeId(1)), commit: Index(1) });
    assert!(output.persist.iter().any(|(_, record)| *record == vote_record), "{:?}", output.persist);

    let (last, _) = output.persist.last().expect("records handed out");
    voter.persisted(*last);
    (output.send, voter.take_output().send)
}

#[test]
fn granted_vote_is_sent_only_after_it_is_persisted() {
    let (before, after) = vote_answers_before_and_after_persist(PlantedBug::None);

    assert!(before.is_empty(), "a grant left before the vote was durable: {before:?}");
    let granted = Message { term: Term(2), kind: MessageKind::VoteResponse { granted: true } };
    assert_eq!(after, vec![(NodeId(1), granted)]);
}

#[test]
fn durable_vote_check_catches_the_planted_vote_before_persist_bug() {
    let (before, _) = vote_answers_before_and_after_persist(PlantedBug::VoteBeforePersist);

    assert_eq!(before.len(), 1, "the scenario no longer exercises the rule");
}

/// Node 3 of three hears node 1's and then node 2's campaign for term 2,
/// both with logs as complete as its own; returns whom it voted for and
/// its answer to node 2.
fn second_campaign_in_one_term(bug: PlantedBug) -> (Option<NodeId>, Outgoing) {
    let mut voter = founder_with(Config { planted_bug: bug, ..config(NodeId(3)) }, 3);
    let vote = MessageKind::Vote { last_index: Index(1), last_term: Term(1), transfer: false };
    voter.step(NodeId(1), Message { term: Term(2), kind: vote.clone() });
    let output = voter.take_output();
    voter.persisted(output.persist.last().expect("the vote is handed out").0);
    voter.take_output();

    voter.step(NodeId(2), Message { term: Term(2), kind: vote });
    let output = voter.take_output();
    if let Some((last, _)) = output.persist.last() {
        voter.persisted(*last);
    }
    let mut answers = output.send;
    answers.extend(voter.take_output().send);
    (voter.vote(), answers)
}

#[test]
fn voter_grants_at_most_one_vote_per_term() {
    let (vote, answers) = second_campaign_in_one_term(PlantedBug::None);

    assert_eq!(vote, Some(NodeId(1)));
    let refused = Message { term: Term(2), kind: MessageKind::VoteResponse { granted: false } };
    assert_eq!(answers, vec![(NodeId(2), refused)]);
}

#[test]
fn one_vote_per_term_check_catches_the_planted_vote_twice_bug() {
    let (vote, _) = second_campaign_in_one_term(PlantedBug::VoteTwice);

    assert_eq!(vote, Some(NodeId(2)), "the scenario no longer exercises the rule");
}

#[test]
fn accepted_append_is_sent_only_after_its_entries_are_persisted() {
    let mut follower = founder(2, 3);
    let entry = Entry { term: Term(2), index: Index(2), payload: Payload::Noop };
    let append = MessageKind::Append {
        prev_index: Index(1),
        prev_term: Term(1),
        entries: vec![entry.clone()],
        commit: Index(1),
    };

    follower.step(NodeId(1), Message { term: Term(2), kind: append });
    let output = follower.take_output();

    assert!(output.persist.iter().any(|(_, record)| *record == Record::Entry(entry.clone())));
    assert!(output.send.is_empty(), "an ack left before the entry was durable: {:?}", output.send);
    assert_eq!(follower.durable_index(), Index(1));

    let (last, _) = output.persist.last().expect("records handed out");
    follower.persisted(*last);
    let output = follower.take_output();

    let accepted = AppendResult::Accepted { match_index: Index(2) };
    let message = Message { term: Term(2), kind: MessageKind::AppendResponse(accepted) };
    assert_eq!(output.send, vec![(NodeId(1), message)]);
}

#[test]
fn candidate_becomes_leader_only_once_its_own_vote_is_persisted() {
    let mut cluster = Cluster::new(1);
    let only = NodeId(1);

    cluster.tick_until(only, |raft| raft.role() == Role::Candidate);
    assert!(!cluster.raft(only).is_leader(), "a single voter won on an unsynced vote");

    cluster.sync(only);

    assert!(cluster.raft(only).is_leader());
    assert_eq!(cluster.raft(only).term(), Term(2));
}

#[test]
fn leader_counts_itself_towards_commit_only_for_persisted_entries() {
    let mut cluster = Cluster::new(3);
    let leader = cluster.tick_until_leader();
    let [follower, absent] = cluster.others(leader)[..] else { unreachable!() };
    cluster.isolate(absent);

    let (index, _) = cluster.propose(leader, "x");
    cluster.deliver_all();
    cluster.sync(follower);
    cluster.deliver_all();

    assert_eq!(cluster.raft(leader).progress()[&follower].match_index, index);
    assert!(cluster.raft(leader).durable_index() < index);
    assert!(cluster.raft(leader).commit() < index, "committed with the leader's copy not durable");

    cluster.sync(leader);

    assert_eq!(cluster.raft(leader).commit(), index);
}

// ----- replication (Raft paper §5.3, §5.4.2) ------------------------------

/// Figure 8 by hand: node 1 holds `x` at index 3 from term 2, never
/// committed; it wins term 3 with node 2's vote (node 3 is cut off) and
/// sends one entry per append, so node 2 acknowledges index 3 before it
/// has the term-3 no-op at index 4. Returns the leader's commit index right
/// after that acknowledgement, and once everything is delivered.
fn commit_after_old_term_entry_reaches_a_majority(bug: PlantedBug) -> (Index, Index) {
    let tune = |id| Config { append_entries_max: 1, planted_bug: bug, ..config(NodeId(id)) };
    let voters = [1, 2, 3];
    let mut cluster = Cluster::from_recovered([
        (tune(1), history(&voters, 2, 2, &[(2, "a"), (2, "x")])),
        (tune(2), history(&voters, 2, 2, &[(2, "a")])),
        (tune(3), history(&voters, 2, 2, &[(2, "a")])),
    ]);
    let leader = NodeId(1);
    cluster.isolate(NodeId(3));
    cluster.tick_until(leader, |raft| raft.role() == Role::PreCandidate);
    assert!(cluster.run_until(|c| c.raft(leader).is_leader()));
    assert_eq!(cluster.raft(leader).term(), Term(3));
    cluster.sync(leader);

    cluster.deliver_all();
    cluster.sync(NodeId(2));
    cluster.deliver_all();
    assert_eq!(cluster.raft(leader).progress()[&NodeId(2)].match_index, Index(3));
    assert_eq!(cluster.raft(leader).durable_index(), Index(4));
    let early = cluster.raft(leader).commit();

    cluster.settle();
    (early, cluster.raft(leader).commit())
}

#[test]
fn leader_commits_an_older_term_entry_only_through_an_entry_of_its_own_term() {
    let (early, late) = commit_after_old_term_entry_reaches_a_majority(PlantedBug::None);

    assert_eq!(early, Index(2), "counted replicas of a term-2 entry in term 3");
    assert_eq!(late, Index(4), "the term-3 no-op commits both");
}

#[test]
fn figure_8_scenario_catches_the_planted_commit_old_term_bug() {
    let (early, _) = commit_after_old_term_entry_reaches_a_majority(PlantedBug::CommitOldTerm);

    assert_eq!(early, Index(3), "the scenario no longer exercises the rule");
}

#[test]
fn conflicting_follower_suffix_is_truncated_and_replaced() {
    let voters = [1, 2, 3];
    let newer = history(&voters, 3, 2, &[(2, "a"), (3, "c")]);
    let mut cluster = Cluster::from_recovered([
        (config(NodeId(1)), newer.clone()),
        (config(NodeId(2)), history(&voters, 2, 2, &[(2, "a"), (2, "b3"), (2, "b4")])),
        (config(NodeId(3)), newer),
    ]);
    let (leader, follower) = (NodeId(1), NodeId(2));

    cluster.tick_until(leader, |raft| raft.role() == Role::PreCandidate);
    cluster.settle();

    assert!(cluster.raft(leader).is_leader());
    let expected = entries(cluster.raft(leader));
    assert_eq!(expected.len(), 4, "membership, a, c and the term-4 no-op");
    assert_eq!(entries(cluster.raft(follower)), expected);
    assert_eq!(cluster.node(follower).durable.entries, expected, "the truncation is durable");
    let applied = applied_commands(cluster.node(follower));
    assert!(!applied.contains(&command("b3")) && !applied.contains(&command("b4")));
}

#[test]
fn conflict_hint_skips_back_a_whole_term_in_one_round_trip() {
    let voters = [1, 2, 3];
    let mut newer = vec![(2, "a")];
    newer.extend([(3, "c"); 6]);
    let mut older = vec![(2, "a")];
    older.extend([(2, "b"); 6]);
    let mut cluster = Cluster::from_recovered([
        (config(NodeId(1)), history(&voters, 3, 2, &newer)),
        (config(NodeId(2)), history(&voters, 2, 2, &older)),
        (config(NodeId(3)), history(&voters, 3, 2, &newer)),
    ]);
    let (leader, follower) = (NodeId(1), NodeId(2));
    cluster.isolate(NodeId(3));

    cluster.tick_until(leader, |raft| raft.role() == Role::PreCandidate);
    cluster.settle();

    assert!(cluster.raft(leader).is_leader());
    let rejections = cluster
        .sent_since(0, follower, leader)
        .into_iter()
        .filter(|m| matches!(m.kind, MessageKind::AppendResponse(AppendResult::Rejected { .. })))
        .count();
    assert_eq!(rejections, 1, "six term-2 entries should cost one rejection, not six");
    assert_eq!(entries(cluster.raft(follower)), entries(cluster.raft(leader)));
}

#[test]
fn appends_in_flight_to_a_silent_follower_are_bounded_by_the_window() {
    let window = 2;
    let mut cluster =
        Cluster::with_config(3, |c| Config { inflight_appends_max: window, append_entries_max: 1, ..c });
    let leader = cluster.tick_until_leader();
    let [answering, silent] = cluster.others(leader)[..] else { unreachable!() };
    cluster.isolate(silent);
    let mark = cluster.mark();

    for k in 0..10 {
        cluster.propose(leader, &format!("command {k}"));
        cluster.settle();
    }

    let carrying = |to| {
        let sent = cluster.sent_since(mark, leader, to);
        sent.into_iter().filter(|m| entry_count(m).is_some_and(|n| n > 0)).count()
    };
    assert_eq!(carrying(silent), window as usize);
    assert_eq!(carrying(answering), 10, "an answering follower is not held back");
}

#[test]
fn appends_carry_at_most_append_entries_max_entries() {
    let batch = 3;
    let mut cluster = Cluster::with_config(3, |c| Config { append_entries_max: batch, ..c });
    let lagging = NodeId(3);
    cluster.isolate(lagging);
    let leader = cluster.tick_until_leader();
    for k in 0..10 {
        cluster.propose(leader, &format!("command {k}"));
    }
    cluster.settle();

    cluster.heal();
    let mark = cluster.mark();
    cluster.tick(leader);
    cluster.settle();

    let sizes: Vec<usize> =
        cluster.sent_since(mark, leader, lagging).into_iter().filter_map(entry_count).collect();
    assert!(sizes.iter().all(|n| *n <= batch as usize), "batch over the limit: {sizes:?}");
    assert!(sizes.iter().filter(|n| **n == batch as usize).count() >= 3, "not batched: {sizes:?}");
    assert_eq!(entries(cluster.raft(lagging)), entries(cluster.raft(leader)));
}

#[test]
fn leader_resends_lost_appends_until_the_follower_has_them() {
    // §5.3: "the leader retries AppendEntries RPCs indefinitely until all
    // followers eventually store all log entries".
    let mut cluster = Cluster::new(3);
    let leader = cluster.tick_until_leader();
    let follower = cluster.others(leader)[0];
    cluster.isolate(follower);
    let (index, _) = cluster.propose(leader, "x");
    cluster.settle();

    cluster.heal();
    cluster.tick_rounds(3 * ELECTION_TICKS);

    assert_eq!(cluster.raft(follower).log().last_index(), index, "the lost append was never resent");
    assert_eq!(cluster.raft(follower).commit(), index);
}

// ----- proposals -----------------------------------------------------------

#[test]
fn proposal_on_a_follower_is_refused_with_the_leader_hint() {
    let mut cluster = Cluster::new(3);
    let refused = cluster.on(NodeId(1), |raft| raft.propose(command("early")));
    assert_eq!(refused, Err(ProposeError::NotLeader { leader: None }));

    let leader = cluster.tick_until_leader();
    let follower = cluster.others(leader)[0];
    let last = cluster.raft(follower).log().last_index();
    let refused = cluster.on(follower, |raft| raft.propose(command("x")));

    assert_eq!(refused, Err(ProposeError::NotLeader { leader: Some(leader) }));
    assert_eq!(cluster.raft(follower).log().last_index(), last, "nothing was appended");
}

#[test]
fn committed_proposals_are_applied_on_every_node_in_the_same_order() {
    let mut cluster = Cluster::new(3);
    let leader = cluster.tick_until_leader();

    let mut landed = vec![cluster.propose(leader, "a"), cluster.propose(leader, "b")];
    landed.push(cluster.on(leader, |r| r.propose_batch(vec![command("c"), command("d")])).expect("leader"));
    cluster.deliver_all();
    landed.push(cluster.propose(leader, "e"));
    cluster.settle();

    let expected: Vec<Vec<u8>> = ["a", "b", "c", "d", "e"].into_iter().map(command).collect();
    let reference = cluster.node(leader).applied.clone();
    for id in cluster.ids() {
        assert_eq!(applied_commands(cluster.node(id)), expected, "node {id}");
        assert_eq!(cluster.node(id).applied, reference, "node {id} applied a different history");
    }
    for (index, term) in landed {
        let entry = reference.iter().find(|e| e.index == index).expect("applied");
        assert_eq!(entry.term, term, "the entry at {index} is the one proposed");
    }
}

// ----- ReadIndex (dissertation §6.4) -------------------------------------

/// A leader of three is asked for a read; returns its answers before any
/// heartbeat is delivered, and after the round, with the commit index.
fn leader_read_answers(bug: PlantedBug) -> (Vec<ReadState>, Vec<ReadState>, Index) {
    let mut cluster = Cluster::with_config(3, |c| Config { planted_bug: bug, ..c });
    let leader = cluster.tick_until_leader();
    let commit = cluster.raft(leader).commit();

    cluster.on(leader, |raft| raft.read_index(ReadId(1)));
    let before = cluster.node(leader).reads.clone();
    if before.is_empty() {
        let heartbeats = cluster
            .network
            .iter()
            .filter(|(_, _, m)| matches!(m.kind, MessageKind::Heartbeat { .. }))
            .count();
        assert_eq!(heartbeats, 2, "the read starts a heartbeat round");
    }
    cluster.deliver_all();
    (before, cluster.node(leader).reads.clone(), commit)
}

#[test]
fn leader_read_is_answered_only_after_a_quorum_acknowledges_a_heartbeat_round() {
    let (before, after, commit) = leader_read_answers(PlantedBug::None);

    assert!(before.is_empty(), "answered before any heartbeat was acknowledged: {before:?}");
    assert_eq!(after, vec![ReadState { read: ReadId(1), result: Ok(commit) }]);
}

#[test]
fn read_quorum_check_catches_the_planted_no_check_quorum_read_bug() {
    let (before, _, _) = leader_read_answers(PlantedBug::NoCheckQuorumRead);

    assert_eq!(before.len(), 1, "the scenario no longer exercises the rule");
}

// ----- read leases (dissertation §6.4.1) -----------------------------------

/// Read leases on, with a drift bound that tolerates one clock ticking
/// twice as fast as another: at 6 election ticks (6 - 1) * 66 / 134 = 2.46,
/// a lease of 1 tick.
fn lease_config(bug: PlantedBug, election_ticks: u32) -> impl Fn(Config) -> Config {
    move |c| Config { election_ticks, read_lease: true, clock_drift_percent: 34, planted_bug: bug, ..c }
}

/// A leader whose round was just answered, with the ticks of its lease.
fn leased_cluster(bug: PlantedBug) -> (Cluster, NodeId) {
    leased_cluster_tuned(bug, 6, |c| c)
}

fn leased_cluster_tuned(
    bug: PlantedBug,
    election_ticks: u32,
    tune: impl Fn(Config) -> Config,
) -> (Cluster, NodeId) {
    let lease = lease_config(bug, election_ticks);
    let mut cluster = Cluster::with_config(3, move |c| tune(lease(c)));
    let leader = cluster.tick_until_leader();
    // One heartbeat round, answered by both followers.
    cluster.tick(leader);
    cluster.settle();
    assert!(cluster.raft(leader).holds_read_lease(), "an answered round grants a lease");
    (cluster, leader)
}

#[test]
fn a_leader_holding_a_lease_answers_reads_at_once_and_runs_a_round_once_it_lapsed() {
    let (mut cluster, leader) = leased_cluster(PlantedBug::None);
    let commit = cluster.raft(leader).commit();
    let mark = cluster.mark();
    cluster.on(leader, |raft| raft.read_index(ReadId(1)));
    assert_eq!(cluster.node(leader).reads, vec![ReadState { read: ReadId(1), result: Ok(commit) }]);
    let follower = cluster.others(leader)[0];
    assert!(cluster.sent_since(mark, leader, follower).is_empty(), "a lease read sends nothing");

    // Cut off: the lease's one tick passes and no round renews it.
    cluster.isolate(leader);
    cluster.tick(leader);
    assert!(!cluster.raft(leader).holds_read_lease());
    cluster.on(leader, |raft| raft.read_index(ReadId(2)));
    assert_eq!(
        cluster.node(leader).reads.len(),
        1,
        "read 2 waits for a round: {:?}",
        cluster.node(leader).reads
    );
}

#[test]
fn a_turns_proposals_go_to_each_follower_in_one_append() {
    let mut cluster = Cluster::new(3);
    let leader = cluster.tick_until_leader();
    let follower = cluster.others(leader)[0];
    let mark = cluster.mark();
    cluster.on(leader, |raft| {
        for k in 0..5 {
            raft.propose(command(&format!("c{k}"))).expect("the leader accepts proposals");
        }
    });
    let appends: Vec<Option<usize>> =
        cluster.sent_since(mark, leader, follower).into_iter().map(entry_count).collect();
    assert_eq!(appends, vec![Some(5)], "one Append holding the turn's five entries");
}

#[test]
fn a_leader_gives_up_its_lease_when_it_sends_timeout_now() {
    let (mut cluster, leader) = leased_cluster(PlantedBug::None);
    let target = cluster.others(leader)[0];
    cluster.on(leader, |raft| raft.transfer_leadership(target)).expect("a voter is a valid target");
    assert!(
        !cluster.raft(leader).holds_read_lease(),
        "the target's campaign overrides the followers' leases"
    );
}

/// Whether `voter` granted `candidate` a vote since `mark`.
fn granted_since(cluster: &Cluster, mark: usize, voter: NodeId, candidate: NodeId) -> bool {
    cluster
        .sent_since(mark, voter, candidate)
        .iter()
        .any(|m| matches!(m.kind, MessageKind::VoteResponse { granted: true }))
}

#[test]
fn a_follower_in_its_lease_refuses_votes_after_a_newer_term_cleared_its_leader() {
    let (mut cluster, leader) = leased_cluster(PlantedBug::None);
    let [a, b] = cluster.others(leader)[..] else { panic!("two followers") };
    cluster.isolate(leader);
    let term = cluster.raft(a).term();
    // A rejection from a peer of a newer term: `a` takes the term and
    // forgets its leader, but it answered the leader's round just now.
    let rejection = Message { term: term.next(), kind: MessageKind::PreVoteResponse { granted: false } };
    cluster.inject(b, a, rejection);
    assert_eq!(cluster.raft(a).leader(), None);
    let mark = cluster.mark();
    for vote_term in [term.next(), term.next().next()] {
        let (last_index, last_term) = (cluster.raft(b).log().last_index(), cluster.raft(b).log().last_term());
        let kind = MessageKind::Vote { last_index, last_term, transfer: false };
        cluster.inject(b, a, Message { term: vote_term, kind });
    }
    cluster.settle();
    assert!(!granted_since(&cluster, mark, a, b), "a vote granted within the lease");
    // Once an election timeout has passed without a leader, it votes.
    for _ in 0..6 {
        cluster.tick(a);
    }
    let mark = cluster.mark();
    let (last_index, last_term) = (cluster.raft(b).log().last_index(), cluster.raft(b).log().last_term());
    let kind = MessageKind::Vote { last_index, last_term, transfer: false };
    let vote_term = cluster.raft(a).term().next();
    cluster.inject(b, a, Message { term: vote_term, kind });
    cluster.settle();
    assert!(granted_since(&cluster, mark, a, b), "no vote after the lease");
}

#[test]
fn a_quiet_leader_gives_up_its_lease_and_a_read_then_wakes_it() {
    // A lease of 5 ticks: (14 - 1) * 66 / 134 = 6.4, less one.
    let (mut cluster, leader) = leased_cluster_tuned(PlantedBug::None, 14, |c| Config { quiesce: true, ..c });
    // Settled heartbeats until quiet: the moment it is, it holds no lease
    // (its group may be ticked rarely from then on).
    for _ in 0..8 {
        if cluster.raft(leader).is_quiet() {
            break;
        }
        cluster.tick(leader);
        cluster.settle();
    }
    assert!(cluster.raft(leader).is_quiet(), "the idle group went quiet");
    assert!(!cluster.raft(leader).holds_read_lease(), "a quiet leader keeps no lease");
    let commit = cluster.raft(leader).commit();
    cluster.on(leader, |raft| raft.read_index(ReadId(9)));
    cluster.settle();
    assert_eq!(cluster.node(leader).reads, vec![ReadState { read: ReadId(9), result: Ok(commit) }]);
}

#[test]
fn a_restarted_follower_refuses_votes_for_an_election_timeout() {
    let (mut cluster, leader) = leased_cluster(PlantedBug::None);
    let [a, b] = cluster.others(leader)[..] else { panic!("two followers") };
    cluster.isolate(leader);
    cluster.crash(a);
    // `b` campaigns as soon as its own lease allows; `a`, just restarted,
    // may have answered the leader's round right before it crashed.
    cluster.tick_until(b, |raft| raft.role() != Role::Follower);
    cluster.settle();
    assert!(!cluster.raft(b).is_leader(), "a restarted node voted within its boot lease");
}

/// The leader's round is answered; then it is cut off, its clock ticks
/// once every 2 units of real time while the followers' tick every unit
/// (a drift within the 34 % bound), and the followers elect a leader that
/// commits. Returns what the old leader answers a read with, and the new
/// commit index.
fn read_at_a_deposed_leader_with_a_slow_clock(
    bug: PlantedBug,
    election_ticks: u32,
) -> (Vec<ReadState>, Index) {
    let (mut cluster, old) = leased_cluster_tuned(bug, election_ticks, |c| c);
    let [a, b] = cluster.others(old)[..] else { panic!("two followers") };
    cluster.isolate(old);
    let mut units = 0;
    while ![a, b]
        .iter()
        .any(|f| cluster.raft(*f).is_leader() && cluster.raft(*f).commit() > cluster.raft(old).commit())
    {
        units += 1;
        assert!(units < 8 * election_ticks, "no new leader within {} units", 8 * election_ticks);
        cluster.tick(a);
        cluster.tick(b);
        if units % 2 == 0 {
            cluster.tick(old);
        }
        cluster.settle();
    }
    let new = if cluster.raft(a).is_leader() { a } else { b };
    let new_commit = cluster.raft(new).commit();
    cluster.on(old, |raft| raft.read_index(ReadId(7)));
    (cluster.node(old).reads.clone(), new_commit)
}

/// Election timeouts the drift scenario runs at: the new leader's own
/// randomized timeout decides whether it wins while a lease computed
/// without the drift still runs, so several are tried.
const DRIFT_ELECTION_TICKS: std::ops::RangeInclusive<u32> = 6..=14;

/// Runs of the drift scenario in which the deposed leader answered a read
/// with an index older than the new leader's commit.
fn stale_lease_reads(bug: PlantedBug) -> Vec<u32> {
    DRIFT_ELECTION_TICKS
        .filter(|ticks| {
            let (reads, new_commit) = read_at_a_deposed_leader_with_a_slow_clock(bug, *ticks);
            reads.iter().any(|r| r.result.is_ok_and(|index| index < new_commit))
        })
        .collect()
}

#[test]
fn a_lease_ends_before_a_follower_with_a_fast_clock_can_vote_for_another_leader() {
    assert_eq!(stale_lease_reads(PlantedBug::None), Vec::<u32>::new());
}

#[test]
fn the_lease_rule_catches_the_planted_lease_ignores_drift_bug() {
    let stale = stale_lease_reads(PlantedBug::LeaseIgnoresDrift);
    assert!(
        !stale.is_empty(),
        "the scenario no longer exercises the rule at any of {DRIFT_ELECTION_TICKS:?}"
    );
    println!("stale lease reads at election ticks {stale:?}");
}

#[test]
fn reads_in_the_same_turn_share_one_heartbeat_round() {
    let mut cluster = Cluster::new(3);
    let leader = cluster.tick_until_leader();
    let commit = cluster.raft(leader).commit();
    let mark = cluster.mark();

    cluster.on(leader, |raft| {
        for read in 1..=10 {
            raft.read_index(ReadId(read));
        }
    });
    cluster.deliver_all();

    let heartbeats = cluster.sent[mark..]
        .iter()
        .filter(|(from, _, m)| *from == leader && matches!(m.kind, MessageKind::Heartbeat { .. }))
        .count();
    assert_eq!(heartbeats, 2, "one round, one heartbeat per follower");
    let answered: Vec<ReadState> =
        (1..=10).map(|read| ReadState { read: ReadId(read), result: Ok(commit) }).collect();
    assert_eq!(cluster.node(leader).reads, answered);
}

/// Reads of later turns wait while a round is in flight and share the next
/// one, which starts as soon as a quorum answers the first.
#[test]
fn reads_arriving_while_a_round_is_in_flight_share_the_next_round() {
    let mut cluster = Cluster::new(3);
    let leader = cluster.tick_until_leader();
    let commit = cluster.raft(leader).commit();
    let mark = cluster.mark();
    let heartbeats = |cluster: &Cluster| {
        cluster.sent[mark..]
            .iter()
            .filter(|(from, _, m)| *from == leader && matches!(m.kind, MessageKind::Heartbeat { .. }))
            .count()
    };

    cluster.on(leader, |raft| raft.read_index(ReadId(1)));
    for read in 2..=5 {
        cluster.on(leader, |raft| raft.read_index(ReadId(read)));
    }
    assert_eq!(heartbeats(&cluster), 2, "one round in flight, whatever the number of turns");
    assert!(cluster.node(leader).reads.is_empty());

    cluster.deliver_all();
    assert_eq!(heartbeats(&cluster), 4, "the second round starts once the first is answered");
    let answered: Vec<ReadState> =
        (1..=5).map(|read| ReadState { read: ReadId(read), result: Ok(commit) }).collect();
    assert_eq!(cluster.node(leader).reads, answered);
}

#[test]
fn follower_read_is_forwarded_to_the_leader_and_answered_with_an_index() {
    let mut cluster = Cluster::new(3);
    let leader = cluster.tick_until_leader();
    let follower = cluster.others(leader)[0];
    let mark = cluster.mark();

    cluster.on(follower, |raft| raft.read_index(ReadId(7)));
    cluster.settle();

    let forwarded = cluster
        .sent_since(mark, follower, leader)
        .into_iter()
        .filter(|m| matches!(m.kind, MessageKind::ReadIndexRequest { read: ReadId(7) }))
        .count();
    assert_eq!(forwarded, 1, "the follower asks the leader once");
    let commit = cluster.raft(leader).commit();
    assert_eq!(cluster.node(follower).reads, vec![ReadState { read: ReadId(7), result: Ok(commit) }]);
}

#[test]
fn read_without_a_known_leader_fails_with_no_leader() {
    let mut cluster = Cluster::new(3);

    cluster.on(NodeId(1), |raft| raft.read_index(ReadId(1)));

    let failed = ReadState { read: ReadId(1), result: Err(ReadError::NoLeader) };
    assert_eq!(cluster.node(NodeId(1)).reads, vec![failed]);
}

#[test]
fn reads_before_the_leaders_noop_commits_wait_for_it() {
    let mut cluster = Cluster::new(3);
    let leader = NodeId(1);
    cluster.tick_until(leader, |raft| raft.role() == Role::PreCandidate);
    assert!(cluster.run_until(|c| c.raft(leader).is_leader()));
    let noop = cluster.raft(leader).log().last_index();
    assert!(cluster.raft(leader).commit() < noop);

    cluster.on(leader, |raft| raft.read_index(ReadId(1)));
    cluster.deliver_all();
    assert!(cluster.node(leader).reads.is_empty(), "answered with a commit index from an older term");

    cluster.settle();

    let reads = &cluster.node(leader).reads;
    assert_eq!(reads.len(), 1);
    let index = reads[0].result.expect("the read succeeds");
    assert!(index >= noop, "read index {index} misses the no-op at {noop}");
}

#[test]
fn pending_reads_fail_with_leadership_lost_when_the_leader_steps_down() {
    let mut cluster = Cluster::new(3);
    let leader = cluster.tick_until_leader();
    cluster.isolate(leader);

    cluster.on(leader, |raft| raft.read_index(ReadId(1)));
    cluster.deliver_all();
    assert!(cluster.node(leader).reads.is_empty(), "answered without a quorum");
    cluster.tick_until(leader, |raft| !raft.is_leader());

    let failed = ReadState { read: ReadId(1), result: Err(ReadError::LeadershipLost) };
    assert_eq!(cluster.node(leader).reads, vec![failed]);
}

// ----- leader transfer (dissertation §3.10) ------------------------------

#[test]
fn leadership_transfer_elects_the_target_in_the_next_term_without_a_timeout() {
    let mut cluster = Cluster::new(3);
    let leader = cluster.tick_until_leader();
    let term = cluster.raft(leader).term();
    let target = cluster.others(leader)[1];

    cluster.on(leader, |raft| raft.transfer_leadership(target)).expect("a voter can take over");
    cluster.settle();

    assert_eq!(cluster.leader(), Some(target));
    assert_eq!(cluster.raft(target).term(), term.next());
    assert_eq!(cluster.raft(leader).role(), Role::Follower);
    assert_eq!(cluster.raft(leader).leader(), Some(target));
}

#[test]
fn proposals_are_refused_while_a_transfer_is_in_progress() {
    let mut cluster = Cluster::new(3);
    let leader = cluster.tick_until_leader();
    let target = cluster.others(leader)[0];
    cluster.isolate(target);

    cluster.on(leader, |raft| raft.transfer_leadership(target)).expect("a voter can take over");

    assert_eq!(cluster.raft(leader).transfer_target(), Some(target));
    let refused = cluster.on(leader, |raft| raft.propose(command("x")));
    assert_eq!(refused, Err(ProposeError::TransferInProgress));

    for _ in 0..ELECTION_TICKS {
        cluster.tick(leader);
        cluster.settle();
    }
    assert!(cluster.raft(leader).is_leader());
    assert_eq!(cluster.raft(leader).transfer_target(), None, "the transfer is abandoned after a timeout");
    assert!(cluster.on(leader, |raft| raft.propose(command("x"))).is_ok());
}

// ----- membership (dissertation §4.1–§4.2) -------------------------------

/// A 3-voter cluster with three commands committed adds node 4, cut off,
/// as a learner and ticks for two election timeouts; returns the cluster,
/// its leader, and whether node 4 became a voter meanwhile.
fn learner_cut_off_while_added(bug: PlantedBug) -> (Cluster, NodeId, bool) {
    let mut cluster = Cluster::with_config(3, |c| Config { planted_bug: bug, ..c });
    let leader = cluster.tick_until_leader();
    for text in ["a", "b", "c"] {
        cluster.propose(leader, text);
    }
    cluster.settle();
    let joiner = NodeId(4);
    cluster.add(config(joiner), Recovered::default());
    cluster.isolate(joiner);

    let change = MembershipChange::AddLearner(joiner);
    cluster.on(leader, |raft| raft.propose_membership_change(change)).expect("change accepted");
    cluster.settle();
    for _ in 0..2 * ELECTION_TICKS {
        cluster.tick(leader);
        cluster.settle();
    }
    let membership = cluster.raft(leader).membership().clone();
    assert!(membership.contains(joiner), "{membership:?}");
    (cluster, leader, membership.is_voter(joiner))
}

#[test]
fn promotion_check_catches_the_planted_move_without_catch_up_bug() {
    let (_, _, promoted) = learner_cut_off_while_added(PlantedBug::MoveWithoutCatchUp);
    assert!(promoted, "the scenario no longer exercises the rule");
}

#[test]
fn learner_receives_the_log_and_is_promoted_once_caught_up() {
    let (mut cluster, leader, promoted) = learner_cut_off_while_added(PlantedBug::None);
    assert!(!promoted, "promoted before catching up");
    let joiner = NodeId(4);

    cluster.heal();
    for _ in 0..3 * ELECTION_TICKS {
        cluster.tick_rounds(1);
        if cluster.raft(leader).committed_membership().is_voter(joiner) {
            break;
        }
    }

    assert!(cluster.raft(leader).committed_membership().is_voter(joiner), "never promoted");
    assert!(cluster.raft(joiner).membership().is_voter(joiner));
    assert_eq!(entries(cluster.raft(joiner)), entries(cluster.raft(leader)));
    let expected: Vec<Vec<u8>> = ["a", "b", "c"].into_iter().map(command).collect();
    assert_eq!(applied_commands(cluster.node(joiner)), expected);
}

#[test]
fn second_membership_change_is_refused_while_one_is_uncommitted() {
    let mut cluster = Cluster::new(3);
    let leader = cluster.tick_until_leader();
    let first = MembershipChange::AddLearner(NodeId(4));
    let second = MembershipChange::AddLearner(NodeId(5));

    cluster.on(leader, |raft| raft.propose_membership_change(first)).expect("first change accepted");
    let refused = cluster.on(leader, |raft| raft.propose_membership_change(second));
    assert_eq!(refused, Err(ProposeError::ChangeInProgress));

    cluster.settle();

    assert!(cluster.on(leader, |raft| raft.propose_membership_change(second)).is_ok());
}

#[test]
fn membership_change_is_refused_before_the_leader_commits_its_noop() {
    let mut cluster = Cluster::new(3);
    let leader = NodeId(1);
    cluster.tick_until(leader, |raft| raft.role() == Role::PreCandidate);
    assert!(cluster.run_until(|c| c.raft(leader).is_leader()));
    let change = MembershipChange::AddLearner(NodeId(4));

    let refused = cluster.on(leader, |raft| raft.propose_membership_change(change));
    assert_eq!(refused, Err(ProposeError::LeaderNotReady));

    cluster.settle();

    assert!(cluster.on(leader, |raft| raft.propose_membership_change(change)).is_ok());
}

#[test]
fn removing_a_follower_leaves_a_working_two_node_cluster() {
    let mut cluster = Cluster::new(3);
    let leader = cluster.tick_until_leader();
    let [staying, leaving] = cluster.others(leader)[..] else { unreachable!() };

    let change = MembershipChange::Remove(leaving);
    cluster.on(leader, |raft| raft.propose_membership_change(change)).expect("change accepted");
    cluster.settle();
    let voters: BTreeSet<NodeId> = [leader, staying].into();
    assert_eq!(cluster.raft(leader).committed_membership().voters, voters);

    cluster.isolate(leaving);
    let (index, _) = cluster.propose(leader, "after");
    cluster.settle();
    cluster.tick_rounds(3 * ELECTION_TICKS);

    assert_eq!(cluster.leader(), Some(leader), "the two remaining nodes keep a quorum");
    assert!(cluster.raft(leader).commit() >= index);
    assert_eq!(applied_commands(cluster.node(staying)).last(), Some(&command("after")));
}

#[test]
fn removed_leader_steps_down_once_the_change_commits_and_the_rest_elect_a_new_leader() {
    let mut cluster = Cluster::new(3);
    let leader = cluster.tick_until_leader();

    let change = MembershipChange::Remove(leader);
    let (index, _) = cluster.on(leader, |raft| raft.propose_membership_change(change)).expect("accepted");
    assert!(cluster.raft(leader).is_leader(), "it leads until the change commits");
    cluster.settle();

    assert!(cluster.raft(leader).commit() >= index);
    assert!(!cluster.raft(leader).is_leader());
    let successor = cluster.tick_until_leader();
    assert_ne!(successor, leader);
    assert!(!cluster.raft(successor).membership().contains(leader));
    let (index, _) = cluster.propose(successor, "after");
    cluster.settle();
    assert!(cluster.raft(successor).commit() >= index, "the remaining two commit on their own");
}

// ----- snapshots (dissertation chapter 5) --------------------------------

/// Elects a leader and has it commit "a", "b" and "c" while one follower
/// is cut off; returns `(leader, the follower cut off)`.
fn commit_abc_with_a_follower_cut_off(cluster: &mut Cluster) -> (NodeId, NodeId) {
    let leader = cluster.tick_until_leader();
    let behind = cluster.others(leader)[0];
    cluster.isolate(behind);
    for text in ["a", "b", "c"] {
        cluster.propose(leader, text);
    }
    cluster.settle();
    (leader, behind)
}

/// Heals the network, has `leader` commit `text` and lets two heartbeat
/// rounds pass; returns the mark of the messages sent since the heal.
fn heal_and_write(cluster: &mut Cluster, leader: NodeId, text: &str) -> usize {
    cluster.heal();
    let mark = cluster.mark();
    cluster.propose(leader, text);
    cluster.settle();
    cluster.tick_rounds(2);
    mark
}

#[test]
fn follower_behind_compaction_installs_a_chunked_snapshot_then_catches_up() {
    let chunk_max = 4;
    let mut cluster = Cluster::with_config(3, |c| Config { snapshot_chunk_bytes_max: chunk_max, ..c });
    let (leader, behind) = commit_abc_with_a_follower_cut_off(&mut cluster);
    let data = command("state-at-c, 23 bytes ok");
    let compacted = cluster.raft(leader).applied();
    cluster.on(leader, |raft| raft.compact(compacted, data.clone(), 0));
    assert_eq!(cluster.raft(leader).log().snapshot_index(), compacted);
    cluster.propose(leader, "d");
    cluster.settle();

    let mark = heal_and_write(&mut cluster, leader, "e");

    let mut chunks: Vec<(u64, Vec<u8>)> = Vec::new();
    for message in cluster.sent_since(mark, leader, behind) {
        if let MessageKind::InstallSnapshot { meta, offset, data: chunk, .. } = &message.kind {
            assert_eq!(meta.index, compacted);
            assert!(chunk.len() as u64 <= chunk_max, "chunk of {} bytes", chunk.len());
            chunks.push((*offset, chunk.clone()));
        }
    }
    chunks.sort();
    chunks.dedup();
    assert_eq!(chunks.len(), data.len().div_ceil(chunk_max as usize));
    let reassembled: Vec<u8> = chunks.into_iter().flat_map(|(_, chunk)| chunk).collect();
    assert_eq!(reassembled, data);
    let restored = &cluster.node(behind).restored;
    assert_eq!(restored.len(), 1, "installed once");
    assert_eq!((restored[0].meta.index, restored[0].data.as_slice()), (compacted, data.as_slice()));
    assert_eq!(cluster.raft(behind).log().last_index(), cluster.raft(leader).log().last_index());
    assert_eq!(cluster.raft(behind).commit(), cluster.raft(leader).commit());
    assert_eq!(applied_commands(cluster.node(behind)), vec![command("d"), command("e")]);
    assert!(cluster.raft(leader).snapshot().is_none(), "the leader holds a snapshot only while sending it");
    assert!(cluster.raft(behind).snapshot().is_none(), "a follower does not keep what it installed");
}

#[test]
fn follower_within_the_retained_entries_catches_up_from_the_log_without_a_snapshot() {
    let mut cluster = Cluster::new(3);
    let (leader, behind) = commit_abc_with_a_follower_cut_off(&mut cluster);
    let compacted = cluster.raft(leader).applied();
    let behind_last = cluster.raft(behind).log().last_index();
    let retain = compacted.0 - behind_last.0;
    cluster.on(leader, |raft| raft.compact(compacted, command("state"), retain));
    assert_eq!(cluster.raft(leader).snapshot_index(), compacted);
    assert_eq!(cluster.raft(leader).log().snapshot_index(), behind_last, "the log keeps {retain} entries");

    let mark = heal_and_write(&mut cluster, leader, "d");

    let snapshots = cluster
        .sent_since(mark, leader, behind)
        .into_iter()
        .filter(|m| matches!(m.kind, MessageKind::InstallSnapshot { .. }))
        .count();
    assert_eq!(snapshots, 0, "sent a snapshot to a follower the log still covers");
    assert!(cluster.node(behind).restored.is_empty());
    let expected = ["a", "b", "c", "d"].map(command).to_vec();
    assert_eq!(applied_commands(cluster.node(behind)), expected);
}

// ----- restart ------------------------------------------------------------

#[test]
fn restarted_node_restores_term_vote_log_and_reapplies_committed_entries() {
    let mut cluster = Cluster::new(3);
    let leader = cluster.tick_until_leader();
    for text in ["a", "b", "c"] {
        cluster.propose(leader, text);
    }
    cluster.settle();
    cluster.tick_rounds(1);
    let follower = cluster.others(leader)[0];
    let before = cluster.raft(follower).clone();
    let applied = cluster.node(follower).applied.clone();
    assert!(before.vote().is_some());

    let durable_commit = cluster.node(follower).durable.hard_state.commit;

    cluster.crash(follower);

    let after = cluster.raft(follower);
    assert_eq!(after.term(), before.term());
    assert_eq!(after.vote(), before.vote());
    assert_eq!(entries(after), entries(&before));
    assert_eq!(after.commit(), durable_commit, "the commit index written last is restored");
    let reapplied = cluster.node(follower).applied.clone();
    assert_eq!(reapplied[..], applied[..reapplied.len()], "what it covers is applied again at once");
    cluster.tick_rounds(1);
    assert_eq!(cluster.raft(follower).commit(), before.commit(), "the leader's heartbeat brings the rest");
    assert_eq!(cluster.node(follower).applied, applied, "committed entries are applied again");
    assert_eq!(applied_commands(cluster.node(follower)), vec![command("a"), command("b"), command("c")]);
}

/// A hard state that only moves the commit index rides along with other
/// records and never costs an fsync of its own; term and vote changes do.
#[test]
fn a_commit_index_change_alone_is_never_written() {
    let mut cluster = Cluster::new(3);
    let leader = cluster.tick_until_leader();
    let (index, _) = cluster.propose(leader, "a");
    cluster.deliver_all();
    cluster.sync_all();
    cluster.deliver_all();
    assert_eq!(cluster.raft(leader).commit(), index, "committed");
    assert!(cluster.node(leader).unsynced.is_empty(), "written: {:?}", cluster.node(leader).unsynced);
    assert!(cluster.node(leader).durable.hard_state.commit < index);

    let (next, _) = cluster.propose(leader, "b");
    let unsynced = &cluster.node(leader).unsynced;
    let hard_states: Vec<_> = unsynced
        .iter()
        .filter_map(|(_, record)| match record {
            Record::HardState(hard_state) => Some(hard_state.commit),
            _ => None,
        })
        .collect();
    assert_eq!(hard_states, vec![index], "the commit rides with entry {next}: {unsynced:?}");
}

#[test]
fn unsynced_entries_are_lost_on_crash_and_were_never_acknowledged() {
    let mut cluster = Cluster::new(3);
    let leader = cluster.tick_until_leader();
    let follower = cluster.others(leader)[0];
    let mark = cluster.mark();

    let (index, _) = cluster.propose(leader, "x");
    cluster.deliver_all();
    assert_eq!(cluster.raft(follower).log().last_index(), index);
    let acks = cluster.sent_since(mark, follower, leader);
    assert!(acks.is_empty(), "acknowledged an unsynced entry: {acks:?}");

    cluster.crash(follower);

    assert!(cluster.raft(follower).log().last_index() < index, "an unsynced entry survived");
    assert!(cluster.raft(leader).progress()[&follower].match_index < index);
}

#[test]
fn unsynced_vote_is_lost_on_crash_and_was_never_granted() {
    let mut cluster = Cluster::new(3);
    let (candidate, voter) = (NodeId(1), NodeId(2));
    let vote = MessageKind::Vote { last_index: Index(1), last_term: Term(1), transfer: false };
    let mark = cluster.mark();

    cluster.inject(candidate, voter, Message { term: Term(2), kind: vote });
    assert_eq!(cluster.raft(voter).vote(), Some(candidate));
    assert!(cluster.sent_since(mark, voter, candidate).is_empty());

    cluster.crash(voter);

    assert_eq!(cluster.raft(voter).hard_state(), HardState { term: Term(1), vote: None, commit: Index(1) });
}

// ----- malformed peer input -----------------------------------------------

#[test]
fn malformed_messages_are_dropped_without_changing_any_state() {
    let entry = |term, index| Entry { term: Term(term), index: Index(index), payload: Payload::Noop };
    let append = |term, entries| Message {
        term: Term(term),
        kind: MessageKind::Append { prev_index: Index(1), prev_term: Term(1), entries, commit: Index(1) },
    };
    let meta =
        SnapshotMeta { index: Index(5), term: Term(1), membership: founder(1, 3).membership().clone() };
    let malformed = [
        append(2, vec![entry(2, 3)]),
        append(2, vec![entry(2, 2), entry(2, 4)]),
        append(2, vec![entry(2, 2), entry(1, 3)]),
        append(2, vec![entry(3, 2)]),
        append(7, vec![entry(7, 9)]),
        Message {
            term: Term(2),
            kind: MessageKind::InstallSnapshot { meta, total_bytes: 4, offset: 2, data: vec![0; 3] },
        },
    ];

    for message in malformed {
        let mut follower = founder(2, 3);
        let before = follower.clone();
        follower.step(NodeId(1), message.clone());
        assert_eq!(follower, before, "acted on {message:?}");
    }
}
