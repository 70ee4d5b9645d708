//! Plain data of the Raft core: identifiers, log entries, membership, the
//! durable records the core hands to the shell, and what the shell hands back
//! after a restart. Everything here is written to disk or to the wire, so every
//! number is a fixed-width newtype and every type is `Ord` (stateright needs it).

use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;

macro_rules! newtype_u64 {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub struct $name(pub u64);

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}{}", stringify!($name), self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }
    };
}

newtype_u64!(
    /// A Raft term (§5.1 of the Raft paper).
    Term
);
newtype_u64!(
    /// A position in the replicated log; the first entry has index 1.
    Index
);
newtype_u64!(
    /// A cluster member's identity, stable for the member's lifetime.
    NodeId
);
newtype_u64!(
    /// Log sequence number of a record handed to the shell for persistence.
    /// Numbered per boot from 1; the shell persists records in `Lsn` order.
    Lsn
);
newtype_u64!(
    /// A caller-chosen identifier for one linearizable read request.
    ReadId
);

impl Term {
    pub fn next(self) -> Term {
        Term(self.0 + 1)
    }
}

impl Index {
    pub fn next(self) -> Index {
        Index(self.0 + 1)
    }
    /// The previous index; index 0 (the empty log) has no predecessor.
    pub fn prev(self) -> Index {
        Index(self.0.saturating_sub(1))
    }
}

/// Who votes and who only follows. A node may be in at most one of the sets.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Membership {
    pub voters: BTreeSet<NodeId>,
    pub learners: BTreeSet<NodeId>,
}

impl Membership {
    pub fn with_voters(voters: impl IntoIterator<Item = NodeId>) -> Membership {
        Membership { voters: voters.into_iter().collect(), learners: BTreeSet::new() }
    }

    pub fn is_voter(&self, id: NodeId) -> bool {
        self.voters.contains(&id)
    }

    pub fn contains(&self, id: NodeId) -> bool {
        self.voters.contains(&id) || self.learners.contains(&id)
    }

    /// Every member, voters then learners, in id order within each set.
    pub fn members(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.voters.iter().chain(self.learners.iter()).copied()
    }

    /// Votes needed for a majority of the voters.
    pub fn quorum(&self) -> usize {
        self.voters.len() / 2 + 1
    }

    /// The membership after `change`, or why the change is not allowed.
    /// Single-server changes only (dissertation §4.1): each change adds,
    /// promotes or removes exactly one node.
    pub fn apply(&self, change: MembershipChange) -> Result<Membership, MembershipError> {
        let mut next = self.clone();
        match change {
            MembershipChange::AddLearner(id) => {
                if self.contains(id) {
                    return Err(MembershipError::AlreadyMember(id));
                }
                next.learners.insert(id);
            }
            MembershipChange::Promote(id) => {
                if !next.learners.remove(&id) {
                    return Err(MembershipError::NotALearner(id));
                }
                next.voters.insert(id);
            }
            MembershipChange::Remove(id) => {
                if !next.voters.remove(&id) && !next.learners.remove(&id) {
                    return Err(MembershipError::NotAMember(id));
                }
                if next.voters.is_empty() {
                    return Err(MembershipError::LastVoter(id));
                }
            }
        }
        Ok(next)
    }
}

/// One single-server membership change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum MembershipChange {
    /// A new node starts receiving the log without a vote.
    AddLearner(NodeId),
    /// A caught-up learner becomes a voter.
    Promote(NodeId),
    /// A voter or learner leaves the cluster.
    Remove(NodeId),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum MembershipError {
    AlreadyMember(NodeId),
    NotALearner(NodeId),
    NotAMember(NodeId),
    LastVoter(NodeId),
}

impl fmt::Display for MembershipError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MembershipError::AlreadyMember(id) => write!(f, "node {id} is already a member"),
            MembershipError::NotALearner(id) => write!(f, "node {id} is not a learner"),
            MembershipError::NotAMember(id) => write!(f, "node {id} is not a member"),
            MembershipError::LastVoter(id) => {
                write!(f, "removing node {id} would leave no voter")
            }
        }
    }
}

/// What an entry carries.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Payload {
    /// Appended by every new leader so it can commit an entry of its own term
    /// (Raft paper §5.4.2, §8).
    Noop,
    /// An opaque state-machine command.
    Command(#[serde(with = "crate::frame::bytes")] Vec<u8>),
    /// The complete membership from this entry on; it takes effect when
    /// appended, not when committed (dissertation §4.1).
    Membership(Membership),
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Entry {
    pub term: Term,
    pub index: Index,
    pub payload: Payload,
}

impl Entry {
    /// Bytes the entry occupies in a message, for batching limits: an
    /// upper bound of its encoding (every varint at its widest, 10 bytes),
    /// so a batch within `append_bytes_max` is within it on the wire too.
    pub fn size_bytes(&self) -> u64 {
        let header = super::Config::ENTRY_HEADER_BYTES_MAX;
        match &self.payload {
            Payload::Noop => header,
            Payload::Command(bytes) => header + bytes.len() as u64,
            // The header counts one length; a membership has two, then ids.
            Payload::Membership(m) => header + 10 * (1 + m.voters.len() + m.learners.len()) as u64,
        }
    }
}

/// The part of a node's state that must survive a restart besides the log
/// (Raft paper Figure 2, plus the commit index as of the last record
/// written, so a restart re-applies what it can without waiting for a
/// leader; the core never writes a hard state only to move the commit).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct HardState {
    pub term: Term,
    pub vote: Option<NodeId>,
    pub commit: Index,
}

/// Where a snapshot sits in the log, and the membership in force there.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SnapshotMeta {
    pub index: Index,
    pub term: Term,
    pub membership: Membership,
}

/// The state machine's state at `meta.index`, opaque to Raft. The data is
/// shared, not copied, between the core (which sends it to followers), the
/// disk that stores it and the state machine that restores from it: a
/// snapshot is the size of the whole key space.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Snapshot {
    pub meta: SnapshotMeta,
    pub data: Arc<Vec<u8>>,
}

/// One durable change the core asks the shell to make, in `Lsn` order.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Record {
    /// Replace the hard state.
    HardState(HardState),
    /// Append one entry; its index is one past the current last index.
    Entry(Entry),
    /// Drop every entry at `from` and after (a conflicting suffix, §5.3).
    Truncate { from: Index },
    /// A snapshot received from the leader replaces the log up to its index;
    /// entries after it stay (the core truncates them first if they conflict).
    Snapshot(Snapshot),
}

/// What the shell recovered from disk, from which the core is rebuilt.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Recovered {
    pub hard_state: HardState,
    pub snapshot: Option<Snapshot>,
    /// Entries after the snapshot, contiguous.
    pub entries: Vec<Entry>,
}

/// Why recovered records do not describe a log.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RecoveryError {
    /// An entry does not follow the previous one.
    Gap { expected: Index, found: Index },
    /// A truncation points past the end of the log or into the snapshot.
    BadTruncate { from: Index, last: Index },
}

impl fmt::Display for RecoveryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecoveryError::Gap { expected, found } => {
                write!(f, "log gap: expected entry {expected}, found {found}")
            }
            RecoveryError::BadTruncate { from, last } => {
                write!(f, "truncation from {from} outside the log ending at {last}")
            }
        }
    }
}

impl std::error::Error for RecoveryError {}

impl Recovered {
    /// The index of the last entry (or of the snapshot when there is none).
    pub fn last_index(&self) -> Index {
        match (self.entries.last(), &self.snapshot) {
            (Some(entry), _) => entry.index,
            (None, Some(snapshot)) => snapshot.meta.index,
            (None, None) => Index(0),
        }
    }

    /// Replays one record on top of what was recovered so far. Recovery of
    /// a WAL, and the model checker's crash model, both rebuild state this way.
    pub fn apply(&mut self, record: Record) -> Result<(), RecoveryError> {
        match record {
            Record::HardState(hard_state) => self.hard_state = hard_state,
            Record::Entry(entry) => {
                let expected = self.last_index().next();
                if entry.index != expected {
                    return Err(RecoveryError::Gap { expected, found: entry.index });
                }
                self.entries.push(entry);
            }
            Record::Truncate { from } => {
                let first = self.snapshot.as_ref().map_or(Index(0), |s| s.meta.index).next();
                let last = self.last_index();
                if from < first || from > last.next() {
                    return Err(RecoveryError::BadTruncate { from, last });
                }
                self.entries.retain(|e| e.index < from);
            }
            Record::Snapshot(snapshot) => self.install_snapshot(snapshot),
        }
        Ok(())
    }

    /// A durable snapshot replaces the entries it covers.
    pub fn install_snapshot(&mut self, snapshot: Snapshot) {
        let index = snapshot.meta.index;
        if self.snapshot.as_ref().is_some_and(|s| s.meta.index >= index) {
            return;
        }
        let term = snapshot.meta.term;
        let matches = self.entries.iter().any(|e| e.index == index && e.term == term);
        if matches || self.entries.first().is_some_and(|e| e.index > index) {
            self.entries.retain(|e| e.index > index);
        } else {
            self.entries.clear();
        }
        if self.hard_state.commit < index {
            self.hard_state.commit = index;
        }
        self.snapshot = Some(snapshot);
    }
}
