//! Deliberate defects that exist only to prove the checkers can fail.
//!
//! Each bug is a rule of Raft switched off. The switch is a field of
//! `Config`, so the core never reads the environment; the model checker and
//! the simulator set it from `CASHE_MODEL_BUG`. Without the `planted-bugs`
//! cargo feature (which only tests enable, through the crate's dev-dependency
//! on itself) `PlantedBug::active` is a constant `false` and every planted
//! branch compiles away: the release binary cannot reach one.

use std::fmt;
use std::str::FromStr;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PlantedBug {
    #[default]
    None,
    /// Commit an entry of an older term by counting replicas (Raft paper
    /// Figure 8, §5.4.2).
    CommitOldTerm,
    /// Grant a second vote in one term.
    VoteTwice,
    /// Send a granted vote before the vote is durable.
    VoteBeforePersist,
    /// Serve a ReadIndex without the heartbeat round that confirms
    /// leadership (dissertation §6.4).
    NoCheckQuorumRead,
    /// The node layer serves a linearizable read from local state, without
    /// ReadIndex, on any node (a follower or a deposed leader can be stale).
    StaleRead,
    /// The shell reports records persisted before it writes and fsyncs
    /// them, so writes are acknowledged before they are durable (a crash of
    /// a majority then loses acknowledged writes). Planted in `turn`.
    AckBeforeFsync,
    /// The node starts a connection's read without waiting for the
    /// connection's earlier writes, so a pipelined `SET k v`, `GET k` can
    /// read the value from before the SET. Planted in `node::session`.
    ReadSkipsOwnWrites,
    /// A leader proposes a forwarded write with the forwarding node's clock
    /// (`now_ms` in the forward), so TTLs set through a follower follow
    /// that follower's clock. Planted in `node::on_forward`.
    FollowerStampsTtl,
    /// A leader that has not heard from a majority within an election
    /// timeout keeps leading (no check-quorum step-down, dissertation
    /// §6.2): a leader cut off from its followers goes on taking requests.
    NoCheckQuorumStepDown,
    /// Each replica draws SPOP's random members with a generator of its
    /// own instead of the one every replica shares (`kv::Store::random`),
    /// so replicas of one set pop different members. Planted in `node`.
    SpopLocalRandom,
    /// A blocking command whose wait ends answers the timeout's nil even
    /// when its `CASHE.BLOCK` never applied (lost with a leader), so it
    /// never looked at the list: nil on a list that was never empty.
    /// Planted in `node::blocking`.
    BlockNilUnseen,
    /// A leader goes quiet once a quorum holds its log, not every member:
    /// a follower that was behind stays behind while the group is idle.
    /// Planted in `raft::quiesce`.
    QuiesceLaggingFollower,
    /// A leader promotes a learner to voter as soon as it is a learner,
    /// without waiting for it to catch up: a member joining (or a replica
    /// moving to a new member) counts towards the quorum holding nothing,
    /// so one more member down stalls the group. Planted in
    /// `raft::membership`.
    MoveWithoutCatchUp,
    /// A key group takes and applies commands of keys outside its slots
    /// (`node::slots::foreign_slot` finds none), so a command a member
    /// routed with a stale or wrong map of slots lands in the wrong group,
    /// two groups then serving one slot. Planted in `node::slots`.
    ApplyWithStaleMap,
    /// The read lease is computed as if clocks never drifted
    /// (`Config::lease_ticks` with a drift bound of 0): a leader whose
    /// clock runs slow keeps serving reads from its lease after a follower
    /// whose clock runs fast has voted in a new leader. Planted in
    /// `raft::config`.
    LeaseIgnoresDrift,
}

impl PlantedBug {
    pub const ALL: [PlantedBug; 15] = [
        PlantedBug::CommitOldTerm,
        PlantedBug::VoteTwice,
        PlantedBug::VoteBeforePersist,
        PlantedBug::NoCheckQuorumRead,
        PlantedBug::StaleRead,
        PlantedBug::AckBeforeFsync,
        PlantedBug::ReadSkipsOwnWrites,
        PlantedBug::FollowerStampsTtl,
        PlantedBug::NoCheckQuorumStepDown,
        PlantedBug::SpopLocalRandom,
        PlantedBug::BlockNilUnseen,
        PlantedBug::QuiesceLaggingFollower,
        PlantedBug::MoveWithoutCatchUp,
        PlantedBug::ApplyWithStaleMap,
        PlantedBug::LeaseIgnoresDrift,
    ];

    pub fn name(self) -> &'static str {
        match self {
            PlantedBug::None => "none",
            PlantedBug::CommitOldTerm => "commit-old-term",
            PlantedBug::VoteTwice => "vote-twice",
            PlantedBug::VoteBeforePersist => "vote-before-persist",
            PlantedBug::NoCheckQuorumRead => "no-check-quorum-read",
            PlantedBug::StaleRead => "stale-read",
            PlantedBug::AckBeforeFsync => "ack-before-fsync",
            PlantedBug::ReadSkipsOwnWrites => "read-skips-own-writes",
            PlantedBug::FollowerStampsTtl => "follower-stamps-ttl",
            PlantedBug::NoCheckQuorumStepDown => "no-check-quorum-step-down",
            PlantedBug::SpopLocalRandom => "spop-local-random",
            PlantedBug::BlockNilUnseen => "block-nil-unseen",
            PlantedBug::QuiesceLaggingFollower => "quiesce-lagging-follower",
            PlantedBug::MoveWithoutCatchUp => "move-without-catch-up",
            PlantedBug::ApplyWithStaleMap => "apply-with-stale-map",
            PlantedBug::LeaseIgnoresDrift => "lease-ignores-drift",
        }
    }

    /// Whether `bug` is planted in this configuration.
    #[inline]
    pub fn active(self, bug: PlantedBug) -> bool {
        cfg!(feature = "planted-bugs") && self == bug && bug != PlantedBug::None
    }
}

impl fmt::Display for PlantedBug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for PlantedBug {
    type Err = String;

    fn from_str(s: &str) -> Result<PlantedBug, String> {
        std::iter::once(PlantedBug::None)
            .chain(PlantedBug::ALL)
            .find(|bug| bug.name() == s)
            .ok_or_else(|| format!("unknown planted bug {s:?}"))
    }
}
