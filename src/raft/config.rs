//! Tuning of one Raft node. Every limit is named with its unit last and
//! checked by `Config::validate` before a node starts.

use super::bugs::PlantedBug;
use super::types::NodeId;
use std::fmt;

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Config {
    pub id: NodeId,
    /// A leader sends heartbeats every this many ticks.
    pub heartbeat_ticks: u32,
    /// The election timeout is drawn from `election_ticks..2*election_ticks`
    /// (Raft paper §5.2). It is also the leader lease a follower grants, and
    /// the period of the leader's check-quorum.
    pub election_ticks: u32,
    /// Probe electability before disrupting the cluster (dissertation §9.6).
    pub pre_vote: bool,
    /// A leader that has not heard from a quorum within an election timeout
    /// steps down, and followers ignore votes while their leader is alive.
    pub check_quorum: bool,
    /// Entries in one `Append`.
    pub append_entries_max: u32,
    /// Payload bytes in one `Append` (at least one entry is always sent).
    pub append_bytes_max: u64,
    /// Unacknowledged `Append` messages per follower in replicate state.
    pub inflight_appends_max: u32,
    /// Bytes of snapshot data in one `InstallSnapshot` chunk.
    pub snapshot_chunk_bytes_max: u64,
    /// The leader promotes a learner to voter once it has caught up.
    pub auto_promote_learners: bool,
    /// Test-only deliberate defects that prove the checkers can fail.
    pub planted_bug: PlantedBug,
}

impl Config {
    pub fn new(id: NodeId) -> Config {
        Config {
            id,
            heartbeat_ticks: 1,
            election_ticks: 10,
            pre_vote: true,
            check_quorum: true,
            append_entries_max: 1024,
            append_bytes_max: 1 << 20,
            inflight_appends_max: 64,
            snapshot_chunk_bytes_max: 1 << 20,
            auto_promote_learners: true,
            planted_bug: PlantedBug::None,
        }
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let rule = |ok: bool, what: &'static str| if ok { Ok(()) } else { Err(ConfigError(what)) };
        rule(self.heartbeat_ticks >= 1, "heartbeat_ticks must be at least 1")?;
        rule(self.election_ticks > self.heartbeat_ticks, "election_ticks must exceed heartbeat_ticks")?;
        rule(self.election_ticks <= 1 << 20, "election_ticks must be at most 2^20")?;
        rule(self.append_entries_max >= 1, "append_entries_max must be at least 1")?;
        rule(self.append_bytes_max >= 1, "append_bytes_max must be at least 1")?;
        rule(self.inflight_appends_max >= 1, "inflight_appends_max must be at least 1")?;
        rule(self.snapshot_chunk_bytes_max >= 1, "snapshot_chunk_bytes_max must be at least 1")
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConfigError(pub &'static str);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid raft config: {}", self.0)
    }
}

impl std::error::Error for ConfigError {}
