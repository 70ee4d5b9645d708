//! Leader election (Raft paper §5.2, §5.4.1) with pre-vote (dissertation
//! §9.6) and leader leases from check-quorum (§6.2): a follower that heard
//! from its leader within the minimum election timeout ignores campaigns, so
//! a partitioned node rejoining cannot depose a healthy leader.

use super::message::MessageKind;
use super::{Index, PlantedBug};
use super::{Lsn, Message, NodeId, Raft, Role, RoleState, Term};
use std::collections::BTreeMap;

impl Raft {
    pub(super) fn tick_election(&mut self) {
        self.election_elapsed += 1;
        if self.election_elapsed >= self.randomized_election_ticks && self.can_campaign() {
            self.pre_campaign();
        }
    }

    /// A node that is the only voter of its membership campaigns at once
    /// when it is restored (bootstrap or restart) instead of after an
    /// election timeout. The timeout leaves a live leader time to be heard
    /// from, and pre-vote (§9.6) spares other voters a disruptive term; with
    /// no other voter in its membership there is neither anyone to hear
    /// from nor anyone to disrupt, and no vote to ask for. It still leads only once its own
    /// vote is durable (`on_self_vote_persisted`). Timeouts play no part in
    /// safety (§5.6), so campaigning early changes only when it leads.
    pub(super) fn campaign_if_sole_voter(&mut self) {
        if self.can_campaign() && self.other_voters().is_empty() {
            self.campaign(false);
        }
    }

    /// Only voters stand for election; learners and removed nodes wait.
    fn can_campaign(&self) -> bool {
        self.membership().is_voter(self.id()) && self.pending_restore.is_none()
    }

    /// Whether a live leader holds this node's lease: it votes for no one
    /// else (bar a transfer's `TimeoutNow` campaign).
    ///
    /// With read leases the rule is the time since the node last heard from
    /// a leader (`lease_elapsed`), whatever happened since: a message of a
    /// newer term from a candidate or a rejecting peer clears `leader`, and
    /// a restart clears everything, but the leader the node answered may be
    /// serving reads from the lease it granted. A node that started less
    /// than an election timeout ago counts as having heard one. Without
    /// them, the lease is check-quorum's: a known leader heard within the
    /// election timeout.
    pub(super) fn in_lease(&self) -> bool {
        let election_ticks = self.config.election_ticks;
        match (self.config.check_quorum, self.config.read_lease) {
            (false, _) => false,
            (true, true) => self.is_leader() || self.lease_elapsed < election_ticks,
            (true, false) => self.leader.is_some() && self.election_elapsed < election_ticks,
        }
    }

    /// A message from a higher term. Returns whether to go on and dispatch it.
    pub(super) fn on_newer_term(&mut self, from: NodeId, message: &Message) -> bool {
        match &message.kind {
            // Pre-votes never change the receiver's term (§9.6).
            MessageKind::PreVote { .. } => !self.in_lease(),
            MessageKind::PreVoteResponse { granted: true } => true,
            MessageKind::Vote { transfer: false, .. } if self.in_lease() => false,
            kind => {
                let leader = kind.is_from_leader().then_some(from);
                self.become_follower(message.term, leader);
                true
            }
        }
    }

    /// A message from an older term. A stale leader learns our term from the
    /// answer and steps down; a stale pre-candidate learns it is behind.
    pub(super) fn on_stale_message(&mut self, from: NodeId, message: &Message) {
        match message.kind {
            MessageKind::Append { .. } | MessageKind::Heartbeat { .. } => {
                self.send(from, MessageKind::HeartbeatResponse { read_round: 0 })
            }
            MessageKind::PreVote { .. } => self.send(from, MessageKind::PreVoteResponse { granted: false }),
            _ => {}
        }
    }

    pub(super) fn pre_campaign(&mut self) {
        if !self.config.pre_vote {
            self.campaign(false);
            return;
        }
        tracing::debug!(id = %self.id(), term = %self.term, "pre-campaign");
        self.role = RoleState::PreCandidate { votes: BTreeMap::from([(self.id(), true)]) };
        self.leader = None;
        self.reset_election_timer();
        let kind =
            MessageKind::PreVote { last_index: self.log.last_index(), last_term: self.log.last_term() };
        let term = self.term.next();
        for peer in self.other_voters() {
            self.output.send.push((peer, Message { term, kind: kind.clone() }));
        }
        self.tally_votes();
    }

    /// Starts an election in a new term. The candidate's own vote counts only
    /// once its hard state is durable (`on_self_vote_persisted`).
    pub(super) fn campaign(&mut self, transfer: bool) {
        self.term = self.term.next();
        self.vote = Some(self.id());
        self.leader = None;
        tracing::debug!(id = %self.id(), term = %self.term, transfer, "campaign");
        let lsn = self.save_hard_state();
        self.role = RoleState::Candidate { votes: BTreeMap::new(), self_vote: Some(lsn) };
        self.reset_election_timer();
        let kind = MessageKind::Vote {
            last_index: self.log.last_index(),
            last_term: self.log.last_term(),
            transfer,
        };
        for peer in self.other_voters() {
            self.send(peer, kind.clone());
        }
    }

    pub(super) fn on_self_vote_persisted(&mut self, through: Lsn) {
        let id = self.id();
        if let RoleState::Candidate { votes, self_vote } = &mut self.role {
            if self_vote.is_some_and(|lsn| lsn <= through) {
                *self_vote = None;
                votes.insert(id, true);
                self.tally_votes();
            }
        }
    }

    fn other_voters(&self) -> Vec<NodeId> {
        let id = self.id();
        self.membership().voters.iter().copied().filter(|v| *v != id).collect()
    }

    pub(super) fn on_pre_vote(&mut self, from: NodeId, term: Term, last_index: Index, last_term: Term) {
        let granted = term > self.term && self.log.is_up_to_date(last_index, last_term);
        let reply_term = if granted { term } else { self.term };
        let message = Message { term: reply_term, kind: MessageKind::PreVoteResponse { granted } };
        self.output.send.push((from, message));
    }

    pub(super) fn on_pre_vote_response(&mut self, from: NodeId, term: Term, granted: bool) {
        let expected = if granted { self.term.next() } else { self.term };
        if let RoleState::PreCandidate { votes } = &mut self.role {
            if term == expected {
                votes.insert(from, granted);
                self.tally_votes();
            }
        }
    }

    /// Grants at most one vote per term, to a candidate whose log is at least
    /// as up-to-date (§5.2, §5.4.1). The grant leaves only once durable.
    /// With read leases, a node in its lease refuses a vote of its own term
    /// too (`in_lease`), unless it is a transfer's.
    pub(super) fn on_vote(&mut self, from: NodeId, last_index: Index, last_term: Term, transfer: bool) {
        let leased = self.config.read_lease && !transfer && self.in_lease();
        let free = self.vote == Some(from) || (self.vote.is_none() && self.leader.is_none() && !leased);
        let may_vote = free || self.config.planted_bug.active(PlantedBug::VoteTwice);
        let granted = may_vote && self.log.is_up_to_date(last_index, last_term);
        if !granted {
            self.send(from, MessageKind::VoteResponse { granted: false });
            return;
        }
        self.vote = Some(from);
        self.election_elapsed = 0;
        self.save_hard_state();
        if self.config.planted_bug.active(PlantedBug::VoteBeforePersist) {
            self.send(from, MessageKind::VoteResponse { granted: true });
        } else {
            self.send_durable(from, MessageKind::VoteResponse { granted: true });
        }
    }

    pub(super) fn on_vote_response(&mut self, from: NodeId, granted: bool) {
        if let RoleState::Candidate { votes, .. } = &mut self.role {
            votes.insert(from, granted);
            self.tally_votes();
        }
    }

    /// Wins, loses, or keeps waiting, counting only current voters.
    fn tally_votes(&mut self) {
        let membership = self.membership();
        let votes = match &self.role {
            RoleState::PreCandidate { votes } | RoleState::Candidate { votes, .. } => votes,
            _ => return,
        };
        let count =
            |want: bool| votes.iter().filter(|(id, g)| **g == want && membership.is_voter(**id)).count();
        let (granted, rejected) = (count(true), count(false));
        let quorum = membership.quorum();
        let voters = membership.voters.len();
        if granted >= quorum {
            match self.role() {
                Role::PreCandidate => self.campaign(false),
                Role::Candidate => self.become_leader(),
                _ => unreachable!("only candidates count votes"),
            }
        } else if rejected > voters - quorum {
            self.become_follower(self.term, None);
        }
    }

    /// Leadership transfer (§3.10): campaign at once, overriding leases.
    pub(super) fn on_timeout_now(&mut self, from: NodeId) {
        if self.can_campaign() {
            tracing::info!(id = %self.id(), %from, "leadership transferred to us");
            self.campaign(true);
        }
    }
}
