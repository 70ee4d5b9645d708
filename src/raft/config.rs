//! Tuning of one Raft node. Every limit is named with its unit last and
//! checked by `Config::validate` before a node starts.
//!
//! The size bounds (`Config::APPEND_BYTES_MAX` and the others below) make
//! every message the core builds fit in one peer frame by construction: an
//! `Append` carries entries of at most `append_bytes_max` bytes together, or
//! one entry alone; an entry's command is at most `ENTRY_COMMAND_BYTES_MAX`
//! (the node layer's `COMMAND_BYTES_MAX` is asserted below it in
//! `node::wire`); a snapshot chunk is at most `snapshot_chunk_bytes_max`
//! bytes. Their relations to `FRAME_PAYLOAD_BYTES_MAX` are asserted at
//! compile time at the end of this file, and `node::wire`'s tests encode
//! the largest of each.

use super::bugs::PlantedBug;
use super::types::NodeId;
use crate::frame::FRAME_PAYLOAD_BYTES_MAX;
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
    /// Entries in one `Append`; at most `Config::APPEND_ENTRIES_MAX`.
    pub append_entries_max: u32,
    /// Bytes of entries in one `Append` (`Entry::size_bytes`, an upper
    /// bound of their encoding); at most `Config::APPEND_BYTES_MAX`. An
    /// entry larger than this is sent alone: at least one is always sent.
    pub append_bytes_max: u64,
    /// Unacknowledged `Append` messages per follower in replicate state.
    pub inflight_appends_max: u32,
    /// Bytes of snapshot data in one `InstallSnapshot` chunk; at most
    /// `Config::SNAPSHOT_CHUNK_BYTES_MAX`.
    pub snapshot_chunk_bytes_max: u64,
    /// The leader promotes a learner to voter once it has caught up.
    pub auto_promote_learners: bool,
    /// A leader whose group has nothing in flight stops its heartbeats
    /// (`quiesce`); its followers must then be kept in their term by the
    /// shell's beats (`Raft::on_quiet_beat`), or they campaign.
    pub quiesce: bool,
    /// A leader whose heartbeat round a quorum answered serves reads at
    /// once, without a round of its own, for `lease_ticks` after that
    /// round started (a leader lease, dissertation §6.4.1). Needs
    /// `check_quorum`: the lease is the one the followers grant.
    pub read_lease: bool,
    /// The bound on how far any node's clock (its tick rate) may run fast
    /// or slow, in percent of the nominal rate. The lease is shortened so
    /// that a leader whose clock runs slow at the bound still gives it up
    /// before a follower whose clock runs fast at the bound can vote for
    /// another candidate.
    pub clock_drift_percent: u32,
    /// Test-only deliberate defects that prove the checkers can fail.
    pub planted_bug: PlantedBug,
}

/// The widest varint postcard writes for a `u64` (or a length).
const VARINT_BYTES_MAX: u64 = 10;

impl Config {
    /// The largest `append_bytes_max` a config may set.
    pub const APPEND_BYTES_MAX: u64 = 32 << 20;
    /// The largest `append_entries_max` a config may set.
    pub const APPEND_ENTRIES_MAX: u32 = 1 << 16;
    /// The largest `snapshot_chunk_bytes_max` a config may set.
    pub const SNAPSHOT_CHUNK_BYTES_MAX: u64 = 16 << 20;

    /// What the shell's wire puts around a Raft message: the tags of its
    /// peer frame and node message (`node::wire` tests that it is enough).
    pub const ENVELOPE_BYTES_MAX: u64 = 16;
    /// An `Append` around its entries: the envelope, the message's term and
    /// kind tag, `prev_index`, `prev_term`, the entry count and `commit`.
    pub const APPEND_HEADER_BYTES_MAX: u64 = Self::ENVELOPE_BYTES_MAX + 1 + 5 * VARINT_BYTES_MAX;
    /// An entry around its command: term, index, payload tag and the
    /// command's length (`Entry::size_bytes` counts this much).
    pub const ENTRY_HEADER_BYTES_MAX: u64 = 1 + 3 * VARINT_BYTES_MAX;
    /// The largest command an entry may carry: one `Append` holding it
    /// alone fits in a frame. The node layer's limit is below it.
    pub const ENTRY_COMMAND_BYTES_MAX: u64 =
        FRAME_PAYLOAD_BYTES_MAX as u64 - Self::APPEND_HEADER_BYTES_MAX - Self::ENTRY_HEADER_BYTES_MAX;

    /// Members a snapshot chunk's header has room for. The core does not
    /// enforce it (members join one at a time, each started by an
    /// operator); a membership beyond it could make a chunk over a frame,
    /// which the wire then refuses to send.
    pub const MEMBERS_MAX: u64 = 100_000;
    /// A membership's bytes: two set lengths and a node id per member.
    pub const MEMBERSHIP_BYTES_MAX: u64 = (2 + Self::MEMBERS_MAX) * VARINT_BYTES_MAX;
    /// An `InstallSnapshot` around its data: the envelope, term and kind
    /// tag, the snapshot's index, term and membership, `total_bytes`,
    /// `offset` and the data's length.
    pub const SNAPSHOT_CHUNK_HEADER_BYTES_MAX: u64 =
        Self::ENVELOPE_BYTES_MAX + 1 + 6 * VARINT_BYTES_MAX + Self::MEMBERSHIP_BYTES_MAX;

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
            quiesce: false,
            read_lease: false,
            clock_drift_percent: 10,
            planted_bug: PlantedBug::None,
        }
    }

    /// Ticks of the leader's own clock a lease lasts from the start of the
    /// heartbeat round that granted it; 0 when leases are off.
    ///
    /// A follower that answered the round heard it after the round began
    /// and votes for no one until `election_ticks` of its own ticks have
    /// passed since. If each tick of any clock lasts between `1 - d` and
    /// `1 + d` nominal ticks of real time (d the drift bound), the first
    /// vote comes at least `(election_ticks - 1) * (1 - d)` after the round
    /// began (the first of its ticks can come at once), and the leader's
    /// `L`-th tick at most `L * (1 + d)` after it. So a lease of
    /// `L <= (election_ticks - 1) * (1 - d) / (1 + d)` ticks ends before
    /// any vote; one tick less covers a shell that reads the clock at the
    /// start of a loop turn and serves reads up to one tick later.
    pub fn lease_ticks(&self) -> u32 {
        if !self.read_lease {
            return 0;
        }
        let drift = if self.planted_bug.active(PlantedBug::LeaseIgnoresDrift) {
            0
        } else {
            u64::from(self.clock_drift_percent)
        };
        let span = u64::from(self.election_ticks.saturating_sub(1)) * (100 - drift.min(99)) / (100 + drift);
        span.saturating_sub(1) as u32
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let rule = |ok: bool, what: &'static str| if ok { Ok(()) } else { Err(ConfigError(what)) };
        rule(self.heartbeat_ticks >= 1, "heartbeat_ticks must be at least 1")?;
        rule(self.election_ticks > self.heartbeat_ticks, "election_ticks must exceed heartbeat_ticks")?;
        rule(self.election_ticks <= 1 << 20, "election_ticks must be at most 2^20")?;
        rule(self.append_entries_max >= 1, "append_entries_max must be at least 1")?;
        rule(self.append_entries_max <= Self::APPEND_ENTRIES_MAX, "append_entries_max must be at most 2^16")?;
        rule(self.append_bytes_max >= 1, "append_bytes_max must be at least 1")?;
        rule(self.append_bytes_max <= Self::APPEND_BYTES_MAX, "append_bytes_max must be at most 32 MiB")?;
        rule(self.inflight_appends_max >= 1, "inflight_appends_max must be at least 1")?;
        rule(self.snapshot_chunk_bytes_max >= 1, "snapshot_chunk_bytes_max must be at least 1")?;
        let chunk_ok = self.snapshot_chunk_bytes_max <= Self::SNAPSHOT_CHUNK_BYTES_MAX;
        rule(chunk_ok, "snapshot_chunk_bytes_max must be at most 16 MiB")?;
        rule(self.clock_drift_percent < 100, "clock_drift_percent must be below 100")?;
        rule(!self.read_lease || self.check_quorum, "read_lease needs check_quorum (the followers' lease)")?;
        let lease_ok = !self.read_lease || self.lease_ticks() >= 1;
        rule(
            lease_ok,
            "read_lease needs election_ticks long enough for a lease of a tick under the clock drift",
        )
    }
}

// Every message the core builds fits in one frame (module docs).
const _: () =
    assert!(Config::APPEND_HEADER_BYTES_MAX + Config::APPEND_BYTES_MAX <= FRAME_PAYLOAD_BYTES_MAX as u64);
const _: () = assert!(
    Config::APPEND_HEADER_BYTES_MAX + Config::ENTRY_HEADER_BYTES_MAX + Config::ENTRY_COMMAND_BYTES_MAX
        <= FRAME_PAYLOAD_BYTES_MAX as u64
);
const _: () = assert!(
    Config::SNAPSHOT_CHUNK_HEADER_BYTES_MAX + Config::SNAPSHOT_CHUNK_BYTES_MAX
        <= FRAME_PAYLOAD_BYTES_MAX as u64
);
// A batch of several entries never needs more room than one entry alone
// has, and an entry of tens of MiB stays possible.
const _: () =
    assert!(Config::APPEND_BYTES_MAX <= Config::ENTRY_HEADER_BYTES_MAX + Config::ENTRY_COMMAND_BYTES_MAX);
const _: () = assert!(Config::ENTRY_COMMAND_BYTES_MAX >= 32 << 20);
// The stated messages' strings above name these values.
const _: () = assert!(Config::APPEND_ENTRIES_MAX == 1 << 16);
const _: () = assert!(Config::APPEND_BYTES_MAX == 32 << 20 && Config::SNAPSHOT_CHUNK_BYTES_MAX == 16 << 20);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConfigError(pub &'static str);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid raft config: {}", self.0)
    }
}

impl std::error::Error for ConfigError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_valid_and_sizes_past_the_frame_bounds_are_refused() {
        let config = Config::new(NodeId(1));
        assert_eq!(config.validate(), Ok(()));
        let over = [
            Config { append_bytes_max: Config::APPEND_BYTES_MAX + 1, ..config.clone() },
            Config { append_entries_max: Config::APPEND_ENTRIES_MAX + 1, ..config.clone() },
            Config { snapshot_chunk_bytes_max: Config::SNAPSHOT_CHUNK_BYTES_MAX + 1, ..config.clone() },
        ];
        for config in over {
            assert!(config.validate().is_err(), "{config:?}");
        }
        let largest = Config {
            append_bytes_max: Config::APPEND_BYTES_MAX,
            append_entries_max: Config::APPEND_ENTRIES_MAX,
            snapshot_chunk_bytes_max: Config::SNAPSHOT_CHUNK_BYTES_MAX,
            ..config
        };
        assert_eq!(largest.validate(), Ok(()));
    }

    #[test]
    fn the_lease_shrinks_with_the_drift_bound_and_is_refused_when_no_tick_is_left() {
        let config = Config { election_ticks: 30, read_lease: true, ..Config::new(NodeId(1)) };
        // 29 * 90 / 110 = 23.7: 23 ticks, less one for the shell's turn.
        assert_eq!(config.lease_ticks(), 22);
        assert_eq!(Config { clock_drift_percent: 0, ..config.clone() }.lease_ticks(), 28);
        assert_eq!(Config { clock_drift_percent: 50, ..config.clone() }.lease_ticks(), 8);
        assert_eq!(Config { read_lease: false, ..config.clone() }.lease_ticks(), 0);
        let short = Config { election_ticks: 2, heartbeat_ticks: 1, ..config.clone() };
        assert!(short.validate().is_err());
        assert!(Config { clock_drift_percent: 100, ..config.clone() }.validate().is_err());
        assert!(Config { check_quorum: false, ..config }.validate().is_err());
    }
}
