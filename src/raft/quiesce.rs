//! Quiet groups (issue 16): a leader with nothing to do stops its
//! heartbeats, so a member holding many idle groups sends and wakes for
//! nothing per group.
//!
//! **When.** With `Config::quiesce`, a leader at a heartbeat finds the group
//! *settled* when every entry is committed, every follower and learner is
//! known to hold the whole log (`match_index` at the last index, replicate
//! state), no read, transfer or membership change is under way. After
//! `QUIESCE_ROUNDS` settled heartbeats in a row (the last of which told the
//! followers the final commit index) it goes quiet: no heartbeats, no
//! check-quorum.
//!
//! **Waking.** A quiet leader wakes the moment it sends or receives a
//! message of its term: a proposal's appends, a read's heartbeat round, a
//! transfer, a follower's request. Its check-quorum starts a fresh period.
//!
//! **Followers** are kept from campaigning by the shell, not by heartbeats:
//! the member of a quiet leader tells every other member, in one message per
//! member and beat period for all its quiet groups (`Router`'s beat), which
//! groups it leads quietly, at which term and commit index; each is taken
//! as the heartbeat it replaces (`on_quiet_beat`: the follower hears from
//! its leader and learns the commit index, `min(match, commit)` as a
//! heartbeat carries) without an answer. A leader that crashes, is cut off,
//! or stops leading stops naming its groups, and their followers' election
//! timers run out as they do today. The model checker runs the core with
//! `quiesce` off; the simulator runs it on, with several shards. Safety is not
//! touched: a beat carries only what a heartbeat does.
//!
//! A group with a follower that is behind (down, cut off) does not settle,
//! and keeps its heartbeats; one whose follower goes down after holding
//! the whole log may go quiet, as it would stay safe and available with a
//! heartbeat that goes unanswered.

use super::progress::ReplicationState;
use super::{Index, NodeId, PlantedBug, Raft, RoleState, Term};

/// Settled heartbeats in a row before a leader goes quiet: the first may
/// have gone out before the last commit index was known to the followers.
const QUIESCE_ROUNDS: u32 = 2;

impl Raft {
    /// At a heartbeat: counts a settled round, and goes quiet after enough.
    /// Returns whether the leader is now quiet (the heartbeat is not sent).
    pub(super) fn quiesce_if_settled(&mut self) -> bool {
        if !self.config.quiesce {
            return false;
        }
        let settled = self.settled();
        let state = self.leader_state();
        state.settled_rounds = if settled { state.settled_rounds + 1 } else { 0 };
        if state.settled_rounds > QUIESCE_ROUNDS {
            state.quiet = true;
            // A quiet leader's group may be ticked rarely (the router's
            // dormant groups), so its lease would outlive its ticks: it
            // gives it up, and its reads take a round, which wakes it.
            state.reads.void_lease(false);
            // What check-quorum would learn goes stale while quiet: none of
            // it is trusted (the first check after waking counts only the
            // followers heard since, and the router's balancer asks its own
            // record of who was heard).
            for progress in state.progress.values_mut() {
                progress.recent_active = false;
            }
            state.heard_last_period.clear();
            tracing::debug!(id = %self.id(), term = %self.term, "quiet");
        }
        self.is_quiet()
    }

    /// Whether the group has nothing in flight (module docs).
    fn settled(&self) -> bool {
        let last = self.log.last_index();
        let RoleState::Leader(state) = &self.role else { return false };
        if self.commit != last || state.transfer.is_some() || !state.reads.is_idle() {
            return false;
        }
        if self.committed_membership() != self.membership() {
            return false;
        }
        let holds_all = |p: &super::Progress| p.match_index == last && p.state == ReplicationState::Replicate;
        if self.config.planted_bug.active(PlantedBug::QuiesceLaggingFollower) {
            // The planted bug: a quorum holding the log is taken as enough.
            let holding =
                state.progress.iter().filter(|(id, p)| self.membership().is_voter(**id) && holds_all(p));
            return holding.count() + 1 >= self.membership().quorum();
        }
        state.progress.values().all(holds_all)
    }

    /// A quiet leader takes up its heartbeats again.
    pub(super) fn wake(&mut self) {
        if let RoleState::Leader(state) = &mut self.role {
            if state.quiet {
                state.quiet = false;
                state.settled_rounds = 0;
                state.heartbeat_elapsed = 0;
                self.election_elapsed = 0;
            }
        }
    }

    /// The shell's check-quorum for a quiet leader, which runs none of its
    /// own: its member has heard from fewer than a quorum of the voters
    /// within an election timeout (the router's beats), so it steps down as
    /// check-quorum would have. A leader left quiet when it was cut off, or
    /// removed while cut off (nobody beats to a removed member, and a newer
    /// leader does not replicate to it), would otherwise lead forever in its
    /// own eyes, its member's beats keeping the followers it still reaches
    /// from electing anew. Returns whether it stepped down.
    pub fn step_down_quiet(&mut self) -> bool {
        if !self.is_quiet() || self.config.planted_bug.active(PlantedBug::NoCheckQuorumStepDown) {
            return false;
        }
        tracing::warn!(id = %self.id(), term = %self.term, "quiet, and no quorum heard; stepping down");
        self.become_follower(self.term, None);
        self.check_invariants();
        true
    }

    /// Whether this node leads quietly.
    pub fn is_quiet(&self) -> bool {
        matches!(&self.role, RoleState::Leader(state) if state.quiet)
    }

    /// What a quiet leader's member tells member `to` in its beat: the
    /// term, and the commit index as far as `to` is known to hold the log
    /// (as a heartbeat says); `None` unless quiet and `to` is a member.
    pub fn quiet_beat(&self, to: NodeId) -> Option<(Term, Index)> {
        let RoleState::Leader(state) = &self.role else { return None };
        let progress = state.progress.get(&to).filter(|_| state.quiet)?;
        Some((self.term, progress.match_index.min(self.commit)))
    }

    /// A beat from member `from`: it leads this group quietly at `term`,
    /// with `commit`. Taken as that leader's heartbeat (it resets the
    /// election timer and carries the commit index), without an answer. A
    /// beat of another term is ignored: an older one is stale, and a newer
    /// leader is met through its own messages.
    pub fn on_quiet_beat(&mut self, from: NodeId, term: Term, commit: Index) {
        if term != self.term || from == self.id() || self.is_leader() {
            return;
        }
        self.follow(from);
        // The leader sends min(match, commit), so this never passes our log.
        self.advance_follower_commit(commit.min(self.log.last_index()));
        self.check_invariants();
    }
}
