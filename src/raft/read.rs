//! Linearizable reads by ReadIndex (dissertation §6.4): the leader notes
//! its commit index, proves it still leads with one heartbeat round answered
//! by a quorum, and then the read may be served once the state machine has
//! applied that index. Every read that arrives before a round starts shares
//! it: a round starts at most once per `take_output`, so a busy loop turn
//! pays one round for all its reads. Followers ask the leader for an index
//! and serve locally.
//!
//! At most one round is in flight: reads that arrive while one is out wait
//! for the next, which starts once a quorum answered the current one. Under
//! load that is one round per round trip however many turns the loop runs;
//! a lost heartbeat is made good by the periodic heartbeat, which carries
//! the current round too.
//!
//! With `Config::read_lease` every periodic heartbeat starts a round too,
//! and a round a quorum answered gives the leader a lease of
//! `Config::lease_ticks` counted from the round's start: while it holds one
//! it answers reads at once with its commit index (§6.4.1). The followers
//! that answered will not vote for anyone else for an election timeout
//! after they heard the round (`Raft::in_lease`), and the lease is shorter
//! than that by the clocks' drift bound. Three things end a lease early: a
//! `TimeoutNow` (the target's campaign overrides the followers' leases; no
//! lease for the rest of the term), a membership change the leader appends
//! and the leader going quiet (rounds started before either grant none).

use super::message::MessageKind;
use super::{Index, NodeId, PlantedBug, Raft, ReadId, RoleState};
use std::collections::VecDeque;

/// The outcome of one `read_index` request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ReadState {
    pub read: ReadId,
    /// Serve the read once the state machine has applied this index.
    pub result: Result<Index, ReadError>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ReadError {
    /// No leader is known to ask.
    NoLeader,
    /// Leadership changed before the read was confirmed; retry.
    LeadershipLost,
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::NoLeader => write!(f, "no leader known"),
            ReadError::LeadershipLost => write!(f, "leadership changed during the read"),
        }
    }
}

/// Who asked: this node's own client, or a follower on behalf of its client.
type Requester = Option<NodeId>;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct PendingRead {
    read: ReadId,
    from: Requester,
    index: Index,
    round: u64,
}

/// The leader's reads in flight.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub(super) struct ReadQueue {
    /// The last heartbeat round started.
    round: u64,
    /// The last round a quorum answered.
    confirmed: u64,
    /// Reads wait for a round that has not started yet.
    round_needed: bool,
    /// Reads waiting for their round's quorum, in round order.
    waiting: VecDeque<PendingRead>,
    /// Reads that arrived before this term's first commit (§6.4 step 1).
    before_term_commit: Vec<(ReadId, Requester)>,
    /// Ticks since the newest round started, up to the lease's length.
    round_age: u32,
    /// Ticks the read lease has left; none when 0.
    lease_left: u32,
    /// Rounds before this one grant no lease: they started before a
    /// membership change, or a `TimeoutNow` was sent (`u64::MAX`).
    lease_from_round: u64,
}

impl ReadQueue {
    pub(super) fn round(&self) -> u64 {
        self.round
    }

    /// No read waits for anything.
    pub(super) fn is_idle(&self) -> bool {
        !self.round_needed && self.waiting.is_empty() && self.before_term_commit.is_empty()
    }

    /// Whether the leader holds a read lease now.
    pub(super) fn has_lease(&self) -> bool {
        self.lease_left > 0
    }

    fn start_round(&mut self) {
        self.round += 1;
        self.round_age = 0;
    }

    /// One tick of the leader's clock.
    pub(super) fn tick(&mut self, lease_ticks: u32) {
        self.round_age = (self.round_age + 1).min(lease_ticks);
        self.lease_left = self.lease_left.saturating_sub(1);
    }

    /// A periodic heartbeat is due: with leases on, it carries a new round
    /// when none is in flight, so the lease is renewed every heartbeat.
    pub(super) fn start_lease_round_if_idle(&mut self, lease_ticks: u32) {
        if lease_ticks > 0 && self.confirmed >= self.round {
            self.start_round();
        }
    }

    /// Ends the current lease; rounds started so far grant no new one.
    /// `for_the_term` ends them for the rest of the term.
    pub(super) fn void_lease(&mut self, for_the_term: bool) {
        self.lease_left = 0;
        self.lease_from_round =
            if for_the_term { u64::MAX } else { self.lease_from_round.max(self.round + 1) };
    }
}

impl Raft {
    /// Asks for a linearizable read. The answer comes in `Output::reads`.
    pub fn read_index(&mut self, read: ReadId) {
        match (self.is_leader(), self.leader) {
            (true, _) => self.leader_read(read, None),
            (false, Some(leader)) => self.send(leader, MessageKind::ReadIndexRequest { read }),
            (false, None) => self.answer_read(read, None, Err(super::ReadError::NoLeader)),
        }
    }

    pub(super) fn on_read_index_request(&mut self, from: NodeId, read: ReadId) {
        if self.is_leader() {
            self.leader_read(read, Some(from));
        } else {
            self.send(from, MessageKind::ReadIndexResponse { read, index: None });
        }
    }

    pub(super) fn on_read_index_response(&mut self, read: ReadId, index: Option<Index>) {
        let result = index.ok_or(ReadError::LeadershipLost);
        self.output.reads.push(ReadState { read, result });
    }

    fn leader_read(&mut self, read: ReadId, from: Requester) {
        let commit = self.commit;
        let single_voter = self.membership().voters.len() == 1 && self.membership().is_voter(self.id());
        if self.config.planted_bug.active(PlantedBug::NoCheckQuorumRead) {
            return self.answer_read(read, from, Ok(commit));
        }
        let state = self.leader_state();
        if commit < state.term_start {
            state.reads.before_term_commit.push((read, from));
            return;
        }
        if single_voter || state.reads.has_lease() {
            return self.answer_read(read, from, Ok(commit));
        }
        let round = state.reads.round + 1;
        state.reads.waiting.push_back(PendingRead { read, from, index: commit, round });
        state.reads.round_needed = true;
    }

    fn answer_read(&mut self, read: ReadId, from: Requester, result: Result<Index, ReadError>) {
        match from {
            None => self.output.reads.push(ReadState { read, result }),
            Some(peer) => self.send(peer, MessageKind::ReadIndexResponse { read, index: result.ok() }),
        }
    }

    /// Called once per `take_output`: one heartbeat round for every read
    /// that arrived since the last one.
    pub(super) fn start_read_round_if_needed(&mut self) {
        let state = self.leader_state();
        if !state.reads.round_needed || state.reads.confirmed < state.reads.round {
            return;
        }
        state.reads.round_needed = false;
        state.reads.start_round();
        self.broadcast_heartbeat();
    }

    /// Serves the reads whose round a quorum of voters has answered.
    pub(super) fn confirm_reads(&mut self) {
        let id = self.id();
        let membership = self.membership().clone();
        let lease_ticks = self.config.lease_ticks();
        let RoleState::Leader(state) = &mut self.role else { return };
        let mut rounds: Vec<u64> =
            membership
                .voters
                .iter()
                .map(|v| {
                    if *v == id {
                        state.reads.round
                    } else {
                        state.progress.get(v).map_or(0, |p| p.read_round)
                    }
                })
                .collect();
        rounds.sort_unstable_by(|a, b| b.cmp(a));
        let confirmed = rounds[membership.quorum() - 1];
        state.reads.confirmed = state.reads.confirmed.max(confirmed);
        let reads = &mut state.reads;
        if reads.confirmed == reads.round && reads.round >= reads.lease_from_round.max(1) {
            reads.lease_left = reads.lease_left.max(lease_ticks.saturating_sub(reads.round_age));
        }
        let mut ready = Vec::new();
        while state.reads.waiting.front().is_some_and(|r| r.round <= confirmed) {
            ready.push(state.reads.waiting.pop_front().expect("front exists"));
        }
        for read in ready {
            self.answer_read(read.read, read.from, Ok(read.index));
        }
    }

    /// This term's no-op committed: the commit index is now current, so
    /// reads that arrived earlier can start.
    pub(super) fn release_reads_waiting_for_term_commit(&mut self) {
        let commit = self.commit;
        let state = self.leader_state();
        if commit < state.term_start || state.reads.before_term_commit.is_empty() {
            return;
        }
        let early = std::mem::take(&mut state.reads.before_term_commit);
        for (read, from) in early {
            self.leader_read(read, from);
        }
    }

    /// Leadership ended: every read it had not confirmed fails.
    pub(super) fn fail_pending_reads(&mut self, reads: ReadQueue) {
        let waiting = reads.waiting.into_iter().map(|r| (r.read, r.from));
        for (read, from) in waiting.chain(reads.before_term_commit) {
            self.answer_read(read, from, Err(ReadError::LeadershipLost));
        }
    }
}
