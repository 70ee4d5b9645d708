//! The leader's view of one follower's log (dissertation §3.5 and etcd's
//! progress tracking): what is known to match, what to send next, and how
//! much may be in flight.

use super::types::Index;
use std::collections::VecDeque;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ReplicationState {
    /// The match point is unknown: one `Append` at a time, backing off on
    /// each rejection.
    Probe,
    /// The follower accepted the last probe: send appends back to back,
    /// bounded by the in-flight window.
    Replicate,
    /// The entries the follower needs are compacted: stream the snapshot at
    /// `index`, one chunk at a time.
    Snapshot { index: Index, offset: u64 },
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Progress {
    /// Highest index known to be durable and matching on the follower.
    pub match_index: Index,
    /// The next index to send.
    pub next_index: Index,
    pub state: ReplicationState,
    /// In probe state: an append is outstanding, wait for an answer or the
    /// next heartbeat response before sending another.
    pub probe_sent: bool,
    /// In replicate state: the last index of each unacknowledged append.
    pub inflight: VecDeque<Index>,
    /// Heard from since the last check-quorum (§6.2 of the dissertation).
    pub recent_active: bool,
    /// The highest ReadIndex round this follower has answered.
    pub read_round: u64,
}

impl Progress {
    pub fn new(next_index: Index) -> Progress {
        Progress {
            match_index: Index(0),
            next_index,
            state: ReplicationState::Probe,
            probe_sent: false,
            inflight: VecDeque::new(),
            recent_active: false,
            read_round: 0,
        }
    }

    /// Whether the leader must wait before sending another append.
    pub fn is_paused(&self, inflight_max: u32) -> bool {
        match self.state {
            ReplicationState::Probe => self.probe_sent,
            ReplicationState::Replicate => self.inflight.len() >= inflight_max as usize,
            ReplicationState::Snapshot { .. } => true,
        }
    }

    /// Records an append of entries ending at `last` (none if `last` is
    /// `None`: a probe with no entries).
    pub fn on_sent(&mut self, last: Option<Index>) {
        match self.state {
            ReplicationState::Probe => self.probe_sent = true,
            ReplicationState::Replicate => {
                if let Some(last) = last {
                    self.next_index = last.next();
                    self.inflight.push_back(last);
                }
            }
            ReplicationState::Snapshot { .. } => {
                unreachable!("appends are not sent while streaming a snapshot")
            }
        }
    }

    /// The follower holds everything through `index`. Returns whether that is
    /// news.
    pub fn on_accepted(&mut self, index: Index) -> bool {
        let advanced = index > self.match_index;
        if advanced {
            self.match_index = index;
        }
        if self.next_index <= index {
            self.next_index = index.next();
        }
        while self.inflight.front().is_some_and(|last| *last <= index) {
            self.inflight.pop_front();
        }
        self.probe_sent = false;
        if self.state == ReplicationState::Probe {
            self.become_replicate();
        }
        advanced
    }

    /// The follower rejected an append whose `prev_index` was `rejected`;
    /// `hint` is where the follower's log may start to differ. Returns false
    /// for a stale rejection that is ignored.
    pub fn on_rejected(&mut self, rejected: Index, hint: Index) -> bool {
        match self.state {
            ReplicationState::Replicate if rejected <= self.match_index => false,
            ReplicationState::Probe if rejected != self.next_index.prev() => false,
            ReplicationState::Snapshot { .. } => false,
            _ => {
                self.next_index = hint.min(rejected).max(self.match_index.next());
                self.become_probe();
                true
            }
        }
    }

    pub fn become_probe(&mut self) {
        if let ReplicationState::Snapshot { index, .. } = self.state {
            self.next_index = self.next_index.max(index.next());
        }
        self.state = ReplicationState::Probe;
        self.probe_sent = false;
        self.inflight.clear();
    }

    pub fn become_replicate(&mut self) {
        self.state = ReplicationState::Replicate;
        self.next_index = self.match_index.next().max(self.next_index);
        self.inflight.clear();
    }

    pub fn become_snapshot(&mut self, index: Index) {
        self.state = ReplicationState::Snapshot { index, offset: 0 };
        self.probe_sent = false;
        self.inflight.clear();
    }

    /// A heartbeat answer: a lost append must not pause the follower for
    /// ever, so free one slot of the window (or allow one more probe).
    pub fn on_heartbeat_response(&mut self) {
        self.recent_active = true;
        self.probe_sent = false;
        if self.state == ReplicationState::Replicate {
            self.inflight.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_sends_one_append_then_waits() {
        let mut progress = Progress::new(Index(5));
        assert!(!progress.is_paused(4));
        progress.on_sent(Some(Index(7)));
        assert!(progress.is_paused(4));
        assert_eq!(progress.next_index, Index(5), "probe does not advance optimistically");
    }

    #[test]
    fn acceptance_moves_probe_to_replicate_and_pipelines() {
        let mut progress = Progress::new(Index(5));
        progress.on_sent(Some(Index(7)));
        assert!(progress.on_accepted(Index(7)));
        assert_eq!(progress.state, ReplicationState::Replicate);
        progress.on_sent(Some(Index(9)));
        progress.on_sent(Some(Index(11)));
        assert_eq!(progress.next_index, Index(12));
        assert!(progress.is_paused(2), "window of two is full");
        progress.on_accepted(Index(9));
        assert!(!progress.is_paused(2));
    }

    #[test]
    fn rejection_backs_off_to_the_hint_but_never_below_match() {
        let mut progress = Progress::new(Index(10));
        progress.match_index = Index(3);
        assert!(progress.on_rejected(Index(9), Index(2)));
        assert_eq!(progress.next_index, Index(4));
        assert!(!progress.on_rejected(Index(9), Index(2)), "stale: not the outstanding probe");
    }

    #[test]
    fn stale_rejection_in_replicate_is_ignored() {
        let mut progress = Progress::new(Index(1));
        progress.on_accepted(Index(6));
        assert!(!progress.on_rejected(Index(5), Index(1)));
        assert_eq!(progress.state, ReplicationState::Replicate);
    }

    #[test]
    fn heartbeat_response_unblocks_a_full_window() {
        let mut progress = Progress::new(Index(1));
        progress.on_accepted(Index(1));
        progress.on_sent(Some(Index(2)));
        assert!(progress.is_paused(1));
        progress.on_heartbeat_response();
        assert!(!progress.is_paused(1));
    }
}
