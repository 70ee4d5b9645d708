//! Single-server membership changes (dissertation §4.1, §4.2) and leader
//! transfer (§3.10).
//!
//! A change is one entry holding the complete new membership; every node
//! uses the newest membership in its log, committed or not. The leader
//! proposes a change only after committing an entry of its own term (the
//! fix for the single-server bug reported on raft-dev in 2015) and only
//! when no other change is uncommitted. A joining node enters as a learner
//! and is promoted by the leader once it has caught up. A leader removed by
//! a change keeps leading until the change commits, not counting itself,
//! then steps down.

use super::message::MessageKind;
use super::progress::Progress;
use super::{
    Index, MembershipChange, NodeId, Payload, PlantedBug, ProposeError, Raft, RoleState, Term, Transfer,
};

/// Why a leadership transfer cannot start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TransferError {
    NotLeader,
    NotAVoter(NodeId),
    AlreadyLeader,
}

impl std::fmt::Display for TransferError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TransferError::NotLeader => write!(f, "not the leader"),
            TransferError::NotAVoter(id) => write!(f, "node {id} is not a voter"),
            TransferError::AlreadyLeader => write!(f, "already the leader"),
        }
    }
}

impl std::error::Error for TransferError {}

impl Raft {
    /// Appends a command. Returns where it landed: it is committed once an
    /// entry with this index *and term* is applied (a different term there
    /// means it was lost with a leadership change).
    pub fn propose(&mut self, command: Vec<u8>) -> Result<(Index, Term), ProposeError> {
        self.check_can_propose()?;
        Ok(self.append_as_leader(vec![Payload::Command(command)]))
    }

    /// Appends several commands as consecutive entries with one broadcast.
    pub fn propose_batch(&mut self, commands: Vec<Vec<u8>>) -> Result<(Index, Term), ProposeError> {
        self.check_can_propose()?;
        Ok(self.append_as_leader(commands.into_iter().map(Payload::Command).collect()))
    }

    fn check_can_propose(&mut self) -> Result<(), ProposeError> {
        let leader = self.leader;
        let RoleState::Leader(state) = &self.role else { return Err(ProposeError::NotLeader { leader }) };
        if state.transfer.is_some() {
            return Err(ProposeError::TransferInProgress);
        }
        Ok(())
    }

    /// Proposes one membership change.
    pub fn propose_membership_change(
        &mut self,
        change: MembershipChange,
    ) -> Result<(Index, Term), ProposeError> {
        self.check_can_propose()?;
        let term_start = self.leader_state().term_start;
        if self.commit < term_start {
            return Err(ProposeError::LeaderNotReady);
        }
        let pending = self.memberships.last().expect("never empty").0;
        if pending > self.commit {
            return Err(ProposeError::ChangeInProgress);
        }
        let next = self.membership().apply(change).map_err(ProposeError::Membership)?;
        tracing::info!(id = %self.id(), ?change, "proposing membership change");
        // Quorums of the new membership were not asked for the lease.
        self.leader_state().reads.void_lease(false);
        Ok(self.append_as_leader(vec![Payload::Membership(next)]))
    }

    /// Keeps the leader's progress map in step with the membership in force.
    pub(super) fn on_membership_maybe_changed(&mut self) {
        let id = self.id();
        let membership = self.membership().clone();
        let next = self.log.last_index().next();
        let RoleState::Leader(state) = &mut self.role else { return };
        state.progress.retain(|peer, _| membership.contains(*peer));
        for member in membership.members().filter(|m| *m != id) {
            state.progress.entry(member).or_insert_with(|| Progress::new(next));
        }
    }

    /// A leader removed by a committed change steps down (§4.2.2).
    pub(super) fn step_down_if_removed(&mut self) -> bool {
        let removed =
            !self.committed_membership().is_voter(self.id()) && !self.membership().is_voter(self.id());
        if removed {
            tracing::info!(id = %self.id(), "removed from the cluster; stepping down");
            self.become_follower(self.term, None);
        }
        removed
    }

    /// Promotes one learner that has caught up with the commit index.
    pub(super) fn maybe_promote_learner(&mut self) {
        if !self.config.auto_promote_learners {
            return;
        }
        let commit = self.commit;
        let learners = self.membership().learners.clone();
        let RoleState::Leader(state) = &self.role else { return };
        let skip_catch_up = self.config.planted_bug.active(PlantedBug::MoveWithoutCatchUp);
        let ready = learners.into_iter().find(|l| {
            skip_catch_up
                || state.progress.get(l).is_some_and(|p| p.match_index >= commit && p.match_index > Index(0))
        });
        if let Some(learner) = ready {
            // Refusals (change in progress, leader not ready) are retried on
            // a later tick.
            let _ = self.propose_membership_change(MembershipChange::Promote(learner));
        }
    }

    /// Starts handing leadership to `to` (§3.10): bring it up to date, then
    /// tell it to campaign. Proposals are refused meanwhile; the transfer is
    /// abandoned after an election timeout.
    pub fn transfer_leadership(&mut self, to: NodeId) -> Result<(), TransferError> {
        if !self.is_leader() {
            return Err(TransferError::NotLeader);
        }
        if to == self.id() {
            return Err(TransferError::AlreadyLeader);
        }
        if !self.membership().is_voter(to) {
            return Err(TransferError::NotAVoter(to));
        }
        tracing::info!(id = %self.id(), %to, "transferring leadership");
        self.leader_state().transfer = Some(Transfer { to, elapsed: 0, timeout_now_sent: false });
        self.on_transfer_target_progress(to);
        if let Some(transfer) = self.leader_state().transfer {
            if !transfer.timeout_now_sent {
                self.send_appends(to);
            }
        }
        Ok(())
    }

    /// The transfer target's log may have caught up: send `TimeoutNow`.
    pub(super) fn on_transfer_target_progress(&mut self, peer: NodeId) {
        let last_index = self.log.last_index();
        let RoleState::Leader(state) = &mut self.role else { return };
        let Some(transfer) = &mut state.transfer else { return };
        let caught_up = state.progress.get(&peer).is_some_and(|p| p.match_index >= last_index);
        if transfer.to == peer && caught_up && !transfer.timeout_now_sent {
            transfer.timeout_now_sent = true;
            // The target's campaign overrides the followers' leases.
            state.reads.void_lease(true);
            self.send(peer, MessageKind::TimeoutNow);
        }
    }

    pub(super) fn tick_transfer(&mut self) {
        let election_ticks = self.config.election_ticks;
        let state = self.leader_state();
        let Some(transfer) = &mut state.transfer else { return };
        transfer.elapsed += 1;
        if transfer.elapsed >= election_ticks {
            tracing::warn!(to = %transfer.to, "leadership transfer timed out");
            state.transfer = None;
        }
    }

    /// The leadership transfer in progress, if any.
    pub fn transfer_target(&self) -> Option<NodeId> {
        match &self.role {
            RoleState::Leader(state) => state.transfer.map(|t| t.to),
            _ => None,
        }
    }
}
