//! Messages between Raft peers. Every message carries the sender's term
//! (for `PreVote`, the term the sender would campaign in); the receiver
//! validates the rest before acting on it (see `Raft::step`).

use super::types::{Entry, Index, ReadId, SnapshotMeta, Term};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Message {
    pub term: Term,
    pub kind: MessageKind,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum MessageKind {
    /// Would you vote for me in `term`? Changes no state at the receiver
    /// (dissertation §9.6).
    PreVote {
        last_index: Index,
        last_term: Term,
    },
    PreVoteResponse {
        granted: bool,
    },
    /// Vote for me in `term`. `transfer` marks a campaign started by
    /// `TimeoutNow`, which may override a follower's leader lease (§3.10).
    Vote {
        last_index: Index,
        last_term: Term,
        transfer: bool,
    },
    /// A granted vote leaves only after the vote is durable.
    VoteResponse {
        granted: bool,
    },
    /// Entries after `(prev_index, prev_term)`, and the leader's commit index.
    Append {
        prev_index: Index,
        prev_term: Term,
        entries: Vec<Entry>,
        commit: Index,
    },
    AppendResponse(AppendResult),
    /// Leader liveness, commit propagation, and a ReadIndex round number.
    Heartbeat {
        commit: Index,
        read_round: u64,
    },
    HeartbeatResponse {
        read_round: u64,
    },
    /// One chunk of the leader's snapshot, `offset` bytes into it.
    InstallSnapshot {
        meta: SnapshotMeta,
        total_bytes: u64,
        offset: u64,
        #[serde(with = "crate::frame::bytes")]
        data: Vec<u8>,
    },
    /// The byte offset the follower expects next for the snapshot at
    /// `index`; `next_offset == total_bytes` means installed and durable.
    InstallSnapshotResponse {
        index: Index,
        next_offset: u64,
    },
    /// Campaign now, skipping pre-vote and leases (leader transfer, §3.10).
    TimeoutNow,
    /// A follower asks the leader for a read index on behalf of its client.
    ReadIndexRequest {
        read: ReadId,
    },
    /// `None` if the receiver could not confirm leadership for the read.
    ReadIndexResponse {
        read: ReadId,
        index: Option<Index>,
    },
}

/// The follower's answer to an `Append`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum AppendResult {
    /// The follower's log matches the leader's through `match_index`, and
    /// those entries are durable (the message is held until they are).
    Accepted { match_index: Index },
    /// The entry at `rejected` (the append's `prev_index`) did not match.
    /// `last_index` and `conflict` let the leader skip back a whole term at a
    /// time (Raft paper §5.3, the optimisation at the end of the section).
    Rejected { rejected: Index, last_index: Index, conflict: Option<ConflictHint> },
}

/// The follower's term at the rejected index and the first index it holds
/// of that term.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ConflictHint {
    pub term: Term,
    pub first_index: Index,
}

impl MessageKind {
    /// Messages only a leader of the message's term sends.
    pub fn is_from_leader(&self) -> bool {
        matches!(
            self,
            MessageKind::Append { .. }
                | MessageKind::Heartbeat { .. }
                | MessageKind::InstallSnapshot { .. }
                | MessageKind::TimeoutNow
        )
    }
}

/// Checks what the type cannot: a message from the wire that fails is
/// dropped before it reaches any handler.
pub fn validate(message: &Message) -> Result<(), &'static str> {
    match &message.kind {
        MessageKind::Append { prev_index, prev_term, entries, .. } => {
            let mut expected = prev_index.next();
            let mut term = *prev_term;
            for entry in entries {
                if entry.index != expected {
                    return Err("append entries are not contiguous after prev_index");
                }
                if entry.term < term || entry.term > message.term {
                    return Err("append entry terms out of order");
                }
                expected = expected.next();
                term = entry.term;
            }
            Ok(())
        }
        MessageKind::InstallSnapshot { meta, total_bytes, offset, data } => {
            let end = offset.checked_add(data.len() as u64).ok_or("snapshot chunk overflows")?;
            if end > *total_bytes {
                return Err("snapshot chunk past the snapshot's end");
            }
            if meta.term > message.term || meta.membership.voters.is_empty() {
                return Err("snapshot meta is not plausible");
            }
            Ok(())
        }
        _ => Ok(()),
    }
}
