//! TTLs while clocks jump: a workload on keys of their own and a checker
//! that knows what time each node could have had.
//!
//! The contract it checks (docs/architecture.md, "Time"): a write's TTL is
//! stamped with the clock of the leader that proposes it (a write sent to a
//! follower too), so a key set with `PX d` expires at `stamp + d` on every
//! replica; a read reports the key absent once the clock of the node serving
//! it has passed that deadline, or once some leader has logged its deletion
//! (which it does when its own clock passes the deadline). A follower's clock
//! never moves a deadline.
//!
//! The simulator reads every node's clock after each of its turns
//! (`Node::now_ms`) and knows which nodes led, so for
//! each operation it records bounds, not guesses:
//! - `reader`: the clock of the node that served it, between invocation and
//!   completion (a node's clock only moves forward within one boot; a
//!   reboot in between lowers the lower bound to its first clock);
//! - `stamp`: the clock of whichever node could have proposed it (those
//!   leading at invocation or seen leading before completion);
//! - `high_water`: the highest clock any node had by completion (the latest
//!   an active expiry could have been stamped).
//!
//! One client owns these keys and sends one command at a time, so each
//! key's history is sequential and the check needs no search: every result
//! must be possible for some clock values inside the bounds. A write of
//! unknown outcome could still take effect later (a forward held by a
//! paused link), so after one the key is not checked until a known SET
//! sent `UNKNOWN_SETTLE_US` later.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// Keys of the TTL workload: `t0`..`t3`.
pub const TTL_KEYS: u64 = 4;
/// Longest a write of unknown outcome may wait before it takes effect
/// (a held link releases within 1 s; a forward is refused after a leader
/// change).
pub const UNKNOWN_SETTLE_US: u64 = 5_000_000;

/// What the TTL client asked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TtlCall {
    /// `SET key value [PX ms]`.
    Set {
        value: String,
        px: Option<u64>,
    },
    Pexpire(u64),
    Persist,
    Get,
    Pttl,
}

impl TtlCall {
    pub fn writes(&self) -> bool {
        !matches!(self, TtlCall::Get | TtlCall::Pttl)
    }

    /// The command's words.
    pub fn words(&self, key: &str) -> Vec<Vec<u8>> {
        let words: Vec<String> = match self {
            TtlCall::Set { value, px: None } => vec!["SET".into(), key.into(), value.clone()],
            TtlCall::Set { value, px: Some(ms) } => {
                vec!["SET".into(), key.into(), value.clone(), "PX".into(), ms.to_string()]
            }
            TtlCall::Pexpire(ms) => vec!["PEXPIRE".into(), key.into(), ms.to_string()],
            TtlCall::Persist => vec!["PERSIST".into(), key.into()],
            TtlCall::Get => vec!["GET".into(), key.into()],
            TtlCall::Pttl => vec!["PTTL".into(), key.into()],
        };
        words.into_iter().map(String::into_bytes).collect()
    }
}

/// A reply that is the command's own result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TtlOutcome {
    Ok,
    Integer(i64),
    Value(Option<String>),
    /// Anything else: always a violation on these keys.
    Unexpected(String),
}

/// Lower and upper bound of a clock, in the nodes' milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bounds {
    pub low: u64,
    pub high: u64,
}

impl fmt::Display for Bounds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}, {}]", self.low, self.high)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TtlOperation {
    pub key: String,
    pub node: String,
    pub call: TtlCall,
    /// Simulated microseconds.
    pub invoked: u64,
    /// `None`: unknown outcome (writes only; such reads are not recorded).
    pub completed: Option<(u64, TtlOutcome)>,
    pub reader: Bounds,
    pub stamp: Bounds,
    pub high_water: u64,
}

impl fmt::Display for TtlOperation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let words: Vec<String> =
            self.call.words(&self.key).iter().map(|w| String::from_utf8_lossy(w).into_owned()).collect();
        let outcome = match &self.completed {
            Some((at, outcome)) => format!("completed {at}: {outcome:?}"),
            None => "unknown".to_string(),
        };
        write!(
            f,
            "invoked {} at {}: {} -> {outcome}; reader clock {}, stamp {}, highest clock {}",
            self.invoked,
            self.node,
            words.join(" "),
            self.reader,
            self.stamp,
            self.high_water
        )
    }
}

// ----- the clocks, as the simulator saw them ---------------------------------

/// One node's clock as fed to it.
#[derive(Clone, Debug, Default)]
struct NodeClock {
    /// The node's clock now (0 until first fed after a boot).
    now: u64,
    leading: bool,
    /// Last time (simulated µs) a turn ended with this node leading.
    led_at: Option<u64>,
    /// Boots: (simulated µs, its first clock once fed).
    boots: Vec<(u64, Option<u64>)>,
}

/// Every node's clock and leadership, updated after each of its turns.
#[derive(Clone, Debug, Default)]
pub struct Clocks {
    nodes: BTreeMap<String, NodeClock>,
    high_water: u64,
}

/// What `Clocks` looked like when an operation was invoked.
#[derive(Clone, Debug)]
pub struct ClockSnapshot {
    at: u64,
    now: BTreeMap<String, u64>,
    leading: BTreeSet<String>,
}

impl Clocks {
    /// A node (re)starts: its clock starts over at its next feed.
    pub fn booted(&mut self, node: &str, at: u64) {
        let clock = self.nodes.entry(node.to_string()).or_default();
        clock.now = 0;
        clock.leading = false;
        clock.boots.push((at, None));
    }

    /// A node stopped (crash or removal): it leads no more.
    pub fn stopped(&mut self, node: &str) {
        if let Some(clock) = self.nodes.get_mut(node) {
            clock.leading = false;
        }
    }

    /// After a turn: `now` is the node's own clock (`Node::now_ms`, 0
    /// until it is first given one after a boot).
    pub fn turn(&mut self, node: &str, now: u64, leading: bool, at: u64) {
        let clock = self.nodes.entry(node.to_string()).or_default();
        if now > 0 {
            clock.now = now;
            if let Some((_, first @ None)) = clock.boots.last_mut() {
                *first = Some(now);
            }
        }
        clock.leading = leading;
        if leading {
            clock.led_at = Some(at);
        }
        self.high_water = self.high_water.max(clock.now);
    }

    pub fn snapshot(&self, at: u64) -> ClockSnapshot {
        ClockSnapshot {
            at,
            now: self.nodes.iter().map(|(name, clock)| (name.clone(), clock.now)).collect(),
            leading: self.nodes.iter().filter(|(_, c)| c.leading).map(|(name, _)| name.clone()).collect(),
        }
    }

    /// The bounds of `node`'s clock over [`before.at`, now].
    fn node_bounds(&self, before: &ClockSnapshot, node: &str) -> Option<Bounds> {
        let clock = self.nodes.get(node)?;
        let mut low = before.now.get(node).copied().filter(|now| *now > 0);
        for (_, first) in clock.boots.iter().filter(|(booted, _)| *booted >= before.at) {
            if let Some(first) = first {
                low = Some(low.map_or(*first, |low| low.min(*first)));
            }
        }
        Some(Bounds { low: low.unwrap_or(0), high: clock.now.max(low.unwrap_or(0)) })
    }

    /// Bounds for an operation invoked at `before` and completed now on
    /// `node` (`None`: on any node, as when the member the client reached
    /// runs the command at another that holds the key's group):
    /// (reader, stamp, high water).
    pub fn bounds(&self, before: &ClockSnapshot, node: Option<&str>) -> (Bounds, Bounds, u64) {
        let unknown = Bounds { low: 0, high: self.high_water };
        let reader = match node {
            Some(node) => self.node_bounds(before, node).unwrap_or(unknown),
            None => {
                let all: Vec<Bounds> =
                    self.nodes.keys().filter_map(|name| self.node_bounds(before, name)).collect();
                match (all.iter().map(|b| b.low).min(), all.iter().map(|b| b.high).max()) {
                    (Some(low), Some(high)) => Bounds { low, high },
                    _ => unknown,
                }
            }
        };
        let candidates = self.nodes.iter().filter(|(name, clock)| {
            before.leading.contains(*name) || clock.led_at.is_some_and(|at| at >= before.at)
        });
        let stamps: Vec<Bounds> = candidates.filter_map(|(name, _)| self.node_bounds(before, name)).collect();
        let stamp = match (stamps.iter().map(|b| b.low).min(), stamps.iter().map(|b| b.high).max()) {
            (Some(low), Some(high)) => Bounds { low, high },
            _ => unknown,
        };
        (reader, stamp, self.high_water)
    }
}

// ----- the checker ------------------------------------------------------------

/// A key as far as the checker knows.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Register {
    Absent,
    /// Its value, and the bounds of its deadline if it has a TTL.
    Present {
        value: String,
        deadline: Option<Bounds>,
    },
}

impl Register {
    /// Whether a node whose clock is at least `clock_low` can see it.
    fn may_be_present(&self, clock_low: u64) -> bool {
        match self {
            Register::Absent => false,
            Register::Present { deadline: None, .. } => true,
            Register::Present { deadline: Some(deadline), .. } => clock_low < deadline.high,
        }
    }

    /// Whether it can be gone: expired on the node that looked, or deleted
    /// by a leader, no clock of either past `high_water`.
    fn may_be_absent(&self, high_water: u64) -> bool {
        match self {
            Register::Absent => true,
            Register::Present { deadline: None, .. } => false,
            Register::Present { deadline: Some(deadline), .. } => high_water >= deadline.low,
        }
    }
}

fn deadline(stamp: Bounds, ms: u64) -> Bounds {
    Bounds { low: stamp.low + ms, high: stamp.high + ms }
}

/// The register after `op`, or why its result is impossible.
fn step(register: &Register, op: &TtlOperation, outcome: &TtlOutcome) -> Result<Register, String> {
    let present = register.may_be_present(op.reader.low);
    let absent = register.may_be_absent(op.high_water);
    // A write decides existence at its stamp, on the proposing leader.
    let present_at_stamp = register.may_be_present(op.stamp.low);
    let impossible = || Err(format!("{outcome:?} is impossible for a key that is {register:?}"));
    match (&op.call, outcome) {
        (TtlCall::Set { value, px }, TtlOutcome::Ok) => {
            Ok(Register::Present { value: value.clone(), deadline: px.map(|ms| deadline(op.stamp, ms)) })
        }
        (TtlCall::Get, TtlOutcome::Value(Some(seen))) => match register {
            Register::Present { value, .. } if value == seen && present => Ok(register.clone()),
            _ => impossible(),
        },
        (TtlCall::Get, TtlOutcome::Value(None)) | (TtlCall::Pttl, TtlOutcome::Integer(-2)) if absent => {
            Ok(register.clone())
        }
        (TtlCall::Pttl, TtlOutcome::Integer(-1)) => match register {
            Register::Present { deadline: None, .. } => Ok(register.clone()),
            _ => impossible(),
        },
        (TtlCall::Pttl, TtlOutcome::Integer(left)) if *left >= 0 => match register {
            // deadline − reader clock, each within its bounds (±1 ms of rounding).
            Register::Present { deadline: Some(deadline), .. }
                if present
                    && *left as u64 + op.reader.high + 1 >= deadline.low
                    && *left as u64 + op.reader.low <= deadline.high + 1 =>
            {
                Ok(register.clone())
            }
            _ => impossible(),
        },
        (TtlCall::Pexpire(ms), TtlOutcome::Integer(1)) if present_at_stamp => match register {
            Register::Present { value, .. } => {
                Ok(Register::Present { value: value.clone(), deadline: Some(deadline(op.stamp, *ms)) })
            }
            Register::Absent => impossible(),
        },
        (TtlCall::Pexpire(_), TtlOutcome::Integer(0)) if absent => Ok(Register::Absent),
        (TtlCall::Persist, TtlOutcome::Integer(1)) if present_at_stamp => match register {
            Register::Present { value, deadline: Some(_) } => {
                Ok(Register::Present { value: value.clone(), deadline: None })
            }
            _ => impossible(),
        },
        (TtlCall::Persist, TtlOutcome::Integer(0)) => match register {
            Register::Present { deadline: None, .. } | Register::Absent => Ok(register.clone()),
            Register::Present { deadline: Some(_), .. } if absent => Ok(Register::Absent),
            _ => impossible(),
        },
        _ => impossible(),
    }
}

/// Checks every TTL key's history; on failure says which operation broke
/// it and lists the key's operations.
pub fn check(history: &[TtlOperation]) -> Result<(), String> {
    let keys: BTreeSet<&str> = history.iter().map(|op| op.key.as_str()).collect();
    for key in keys {
        let ops: Vec<&TtlOperation> = history.iter().filter(|op| op.key == key).collect();
        if let Err((at, why)) = check_key(&ops) {
            let listing: Vec<String> = ops.iter().map(|op| format!("  {op}")).collect();
            return Err(format!(
                "TTL of key {key:?} broken by operation {at} ({}): {why}\nall {} operations:\n{}",
                ops[at],
                ops.len(),
                listing.join("\n")
            ));
        }
    }
    Ok(())
}

/// One key's sequential history, in invocation order.
fn check_key(ops: &[&TtlOperation]) -> Result<(), (usize, String)> {
    // `None`: unknown since a write of unknown outcome, until a known SET
    // sent after the settle time.
    let mut register = Some(Register::Absent);
    let mut unknown_until = 0;
    for (at, op) in ops.iter().enumerate() {
        let Some((_, outcome)) = &op.completed else {
            register = None;
            unknown_until = op.invoked + UNKNOWN_SETTLE_US;
            continue;
        };
        if let TtlOutcome::Unexpected(text) = outcome {
            return Err((at, format!("unexpected reply {text}")));
        }
        register = match register {
            Some(known) => Some(step(&known, op, outcome).map_err(|why| (at, why))?),
            None if matches!(op.call, TtlCall::Set { .. }) && op.invoked >= unknown_until => {
                Some(step(&Register::Absent, op, outcome).map_err(|why| (at, why))?)
            }
            None => None,
        };
    }
    Ok(())
}

// ----- its own test -------------------------------------------------------

fn op(call: TtlCall, outcome: Option<TtlOutcome>, reader: (u64, u64), stamp: (u64, u64)) -> TtlOperation {
    TtlOperation {
        key: "t0".into(),
        node: "n1".into(),
        call,
        invoked: reader.0 * 1000,
        completed: outcome.map(|o| (reader.1 * 1000, o)),
        reader: Bounds { low: reader.0, high: reader.1 },
        stamp: Bounds { low: stamp.0, high: stamp.1 },
        high_water: reader.1.max(stamp.1),
    }
}

fn set_px(ms: u64, at: (u64, u64)) -> TtlOperation {
    op(TtlCall::Set { value: "v".into(), px: Some(ms) }, Some(TtlOutcome::Ok), at, at)
}

fn get(seen: Option<&str>, at: (u64, u64)) -> TtlOperation {
    op(TtlCall::Get, Some(TtlOutcome::Value(seen.map(String::from))), at, at)
}

fn pttl(left: i64, at: (u64, u64)) -> TtlOperation {
    op(TtlCall::Pttl, Some(TtlOutcome::Integer(left)), at, at)
}

/// The checker's rules, each with a history that keeps it and one that
/// breaks it; panics if it judges any wrongly.
pub fn self_check() {
    let cases: Vec<(&str, Vec<TtlOperation>, bool)> = vec![
        ("a key is there before its deadline", vec![set_px(1000, (0, 10)), get(Some("v"), (500, 510))], true),
        (
            "a key gone before its deadline is caught",
            vec![set_px(1000, (0, 10)), get(None, (500, 510))],
            false,
        ),
        ("a key is gone after its deadline", vec![set_px(1000, (0, 10)), get(None, (1020, 1030))], true),
        (
            "a key still there after its deadline is caught (a later stamp than the leader's clock)",
            vec![set_px(1000, (0, 10)), get(Some("v"), (1020, 1030))],
            false,
        ),
        (
            "either is possible while the deadline is uncertain",
            vec![set_px(1000, (0, 10)), get(None, (1005, 1006))],
            true,
        ),
        (
            "PTTL is the deadline less the reader's clock",
            vec![set_px(1000, (0, 10)), pttl(700, (300, 305))],
            true,
        ),
        ("a PTTL beyond the deadline is caught", vec![set_px(1000, (0, 10)), pttl(900, (300, 305))], false),
        (
            "PERSIST keeps the key for good",
            vec![
                set_px(1000, (0, 10)),
                op(TtlCall::Persist, Some(TtlOutcome::Integer(1)), (100, 110), (100, 110)),
                get(Some("v"), (5000, 5010)),
                pttl(-1, (5000, 5010)),
            ],
            true,
        ),
        (
            "PEXPIRE of a missing key is caught if it answers 1",
            vec![op(TtlCall::Pexpire(100), Some(TtlOutcome::Integer(1)), (0, 10), (0, 10))],
            false,
        ),
        (
            "after an unknown write nothing is checked",
            vec![
                set_px(1000, (0, 10)),
                op(TtlCall::Persist, None, (100, 110), (100, 110)),
                get(Some("v"), (5000, 5010)),
            ],
            true,
        ),
        (
            "a known SET sent after the settle time is checked again",
            vec![
                set_px(1000, (0, 10)),
                op(TtlCall::Persist, None, (100, 110), (100, 110)),
                set_px(1000, (6000, 6010)),
                get(Some("v"), (7100, 7110)),
            ],
            false,
        ),
    ];
    for (name, history, holds) in cases {
        let verdict = check(&history);
        assert_eq!(verdict.is_ok(), holds, "TTL checker self-check \"{name}\": {verdict:?}");
    }
}
