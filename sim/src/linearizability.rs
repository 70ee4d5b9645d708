//! Per-key linearizability of a client history (Wing & Gong's search with
//! Lowe's memoisation, as in porcupine), handling operations of unknown
//! outcome.
//!
//! Each key is checked on its own (linearizability is compositional). An
//! operation has an invocation time and, if its outcome is known, a
//! completion time and a result. One whose outcome is unknown (a `-TIMEOUT`,
//! or a connection lost before the reply) may have taken effect at any
//! moment after its invocation, or never: it is never required, and its
//! result is not compared. The search looks for an order of the operations
//! that (a) respects real time (an operation that completed before another
//! was invoked comes first), (b) contains every completed operation, and (c)
//! replays on a single register to exactly the observed results.

use std::collections::HashSet;
use std::fmt;

/// What a client asked.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Call {
    Set(String),
    Get,
    Incr,
    Cas { expected: String, new: String },
    Del,
}

/// What it got back (only for operations with a known outcome).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    Ok,
    Value(Option<String>),
    Integer(i64),
    /// An error that is the command's own result (e.g. INCR of a non-integer).
    Error(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operation {
    pub client: u64,
    pub node: String,
    pub key: String,
    pub call: Call,
    /// Simulated microseconds.
    pub invoked: u64,
    /// `None`: the outcome is unknown.
    pub completed: Option<(u64, Outcome)>,
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let call = match &self.call {
            Call::Set(v) => format!("SET {} {v}", self.key),
            Call::Get => format!("GET {}", self.key),
            Call::Incr => format!("INCR {}", self.key),
            Call::Cas { expected, new } => format!("CAS {} {expected} {new}", self.key),
            Call::Del => format!("DEL {}", self.key),
        };
        match &self.completed {
            Some((at, outcome)) => write!(
                f,
                "[{:>10} .. {:>10}] client {} at {}: {call} -> {outcome:?}",
                self.invoked, at, self.client, self.node
            ),
            None => write!(
                f,
                "[{:>10} ..  unknown  ] client {} at {}: {call} -> ?",
                self.invoked, self.client, self.node
            ),
        }
    }
}

/// The register every key is: its value, and what each call does to it.
fn step(state: &Option<String>, call: &Call) -> (Outcome, Option<String>) {
    match call {
        Call::Set(value) => (Outcome::Ok, Some(value.clone())),
        Call::Get => (Outcome::Value(state.clone()), state.clone()),
        Call::Incr => match state.as_deref().map(str::parse::<i64>) {
            None => (Outcome::Integer(1), Some("1".into())),
            Some(Ok(n)) => match n.checked_add(1) {
                Some(next) => (Outcome::Integer(next), Some(next.to_string())),
                None => (Outcome::Error("overflow".into()), state.clone()),
            },
            Some(Err(_)) => (Outcome::Error("not an integer".into()), state.clone()),
        },
        Call::Cas { expected, new } => {
            if state.as_deref() == Some(expected.as_str()) {
                (Outcome::Integer(1), Some(new.clone()))
            } else {
                (Outcome::Integer(0), state.clone())
            }
        }
        Call::Del => (Outcome::Integer(i64::from(state.is_some())), None),
    }
}

/// Errors compare by kind only: the register knows "not an integer", Redis
/// says "ERR value is not an integer or out of range".
fn matches(observed: &Outcome, predicted: &Outcome) -> bool {
    match (observed, predicted) {
        (Outcome::Error(_), Outcome::Error(_)) => true,
        _ => observed == predicted,
    }
}

/// Checks one key's operations. On failure, the error explains and lists them.
pub fn check_key(operations: &[Operation]) -> Result<(), String> {
    let mut ops: Vec<&Operation> = operations.iter().collect();
    ops.sort_by_key(|o| (o.invoked, o.client));
    let required = ops.iter().filter(|o| o.completed.is_some()).count();
    let mut search = Search { ops: &ops, seen: HashSet::new(), budget: 2_000_000 };
    let words = ops.len().div_ceil(64);
    match search.dfs(&mut vec![0u64; words], &None, 0, required) {
        Some(true) => Ok(()),
        verdict => {
            let why = if verdict.is_none() { "search budget exhausted" } else { "no linearization exists" };
            let listing: Vec<String> = ops.iter().map(|o| format!("  {o}")).collect();
            let culprit = match shortest_failing_prefix(&ops) {
                Some(n) => {
                    let window: Vec<String> =
                        ops[n.saturating_sub(25)..n].iter().map(|o| format!("  {o}")).collect();
                    format!(
                        "\nthe history invoked up to operation {n} already fails; its last operations:\n{}",
                        window.join("\n")
                    )
                }
                None => String::new(),
            };
            Err(format!(
                "{why} for key {:?}:{culprit}\nall {} operations:\n{}",
                ops[0].key,
                ops.len(),
                listing.join("\n")
            ))
        }
    }
}

/// The fewest leading operations (in invocation order) that already have
/// no linearization: where to look first in a failing history.
fn shortest_failing_prefix(ops: &[&Operation]) -> Option<usize> {
    (1..=ops.len()).find(|n| {
        let prefix = &ops[..*n];
        let required = prefix.iter().filter(|o| o.completed.is_some()).count();
        let mut search = Search { ops: prefix, seen: HashSet::new(), budget: 200_000 };
        search.dfs(&mut vec![0u64; n.div_ceil(64)], &None, 0, required) == Some(false)
    })
}

/// Checks every key of a history.
pub fn check(history: &[Operation]) -> Result<(), String> {
    let mut keys: Vec<&str> = history.iter().map(|o| o.key.as_str()).collect();
    keys.sort_unstable();
    keys.dedup();
    for key in keys {
        let ops: Vec<Operation> = history.iter().filter(|o| o.key == key).cloned().collect();
        check_key(&ops)?;
    }
    Ok(())
}

struct Search<'a> {
    ops: &'a [&'a Operation],
    seen: HashSet<(Vec<u64>, Option<String>)>,
    budget: u64,
}

impl Search<'_> {
    /// `Some(true)`: a linearization exists; `Some(false)`: none; `None`:
    /// out of budget.
    fn dfs(
        &mut self,
        done: &mut Vec<u64>,
        state: &Option<String>,
        found: usize,
        required: usize,
    ) -> Option<bool> {
        if found == required {
            return Some(true);
        }
        if self.budget == 0 {
            return None;
        }
        self.budget -= 1;
        let is_done = |done: &[u64], i: usize| done[i / 64] & (1 << (i % 64)) != 0;
        // Everything pending must come before the earliest completion among
        // the pending completed operations.
        let deadline = (0..self.ops.len())
            .filter(|i| !is_done(done, *i))
            .filter_map(|i| self.ops[i].completed.as_ref().map(|(at, _)| *at))
            .min()
            .unwrap_or(u64::MAX);
        for i in 0..self.ops.len() {
            let op = self.ops[i];
            if op.invoked > deadline {
                break; // sorted by invocation: no later one is eligible either
            }
            if is_done(done, i) {
                continue;
            }
            let (predicted, next) = step(state, &op.call);
            if let Some((_, observed)) = &op.completed {
                if !matches(observed, &predicted) {
                    continue;
                }
            }
            done[i / 64] |= 1 << (i % 64);
            let fresh = self.seen.insert((done.clone(), next.clone()));
            if fresh {
                let counted = found + usize::from(op.completed.is_some());
                match self.dfs(done, &next, counted, required) {
                    Some(false) => {}
                    other => {
                        done[i / 64] &= !(1 << (i % 64));
                        return other;
                    }
                }
            }
            done[i / 64] &= !(1 << (i % 64));
        }
        Some(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(client: u64, call: Call, invoked: u64, completed: Option<(u64, Outcome)>) -> Operation {
        Operation { client, node: "n1".into(), key: "k".into(), call, invoked, completed }
    }

    #[test]
    fn concurrent_operations_may_take_effect_in_either_order() {
        let history = [
            op(1, Call::Set("1".into()), 0, Some((10, Outcome::Ok))),
            op(2, Call::Get, 5, Some((8, Outcome::Value(None)))),
            op(3, Call::Incr, 20, Some((30, Outcome::Integer(2)))),
            op(2, Call::Get, 31, Some((40, Outcome::Value(Some("2".into()))))),
        ];
        assert_eq!(check_key(&history), Ok(()));
    }

    #[test]
    fn a_stale_read_after_an_acknowledged_write_is_caught() {
        let history = [
            op(1, Call::Set("1".into()), 0, Some((10, Outcome::Ok))),
            op(2, Call::Get, 11, Some((12, Outcome::Value(None)))),
        ];
        assert!(check_key(&history).is_err());
    }

    #[test]
    fn an_unknown_write_may_or_may_not_have_happened_but_only_once() {
        let maybe = op(1, Call::Incr, 0, None);
        let happened = [maybe.clone(), op(2, Call::Get, 50, Some((60, Outcome::Value(Some("1".into())))))];
        let not_happened = [maybe.clone(), op(2, Call::Get, 50, Some((60, Outcome::Value(None))))];
        let twice = [maybe, op(2, Call::Get, 50, Some((60, Outcome::Value(Some("2".into())))))];
        assert_eq!(check_key(&happened), Ok(()));
        assert_eq!(check_key(&not_happened), Ok(()));
        assert!(check_key(&twice).is_err());
    }

    #[test]
    fn a_lost_acknowledged_write_is_caught_by_a_later_read() {
        let history = [
            op(1, Call::Set("a".into()), 0, Some((10, Outcome::Ok))),
            op(1, Call::Set("b".into()), 20, Some((30, Outcome::Ok))),
            op(2, Call::Get, 100, Some((110, Outcome::Value(Some("a".into()))))),
        ];
        assert!(check_key(&history).is_err());
    }

    #[test]
    fn cas_del_and_incr_errors_follow_the_register() {
        let history = [
            op(1, Call::Set("x".into()), 0, Some((1, Outcome::Ok))),
            op(1, Call::Incr, 2, Some((3, Outcome::Error("ERR value is not an integer".into())))),
            op(1, Call::Cas { expected: "x".into(), new: "5".into() }, 4, Some((5, Outcome::Integer(1)))),
            op(1, Call::Incr, 6, Some((7, Outcome::Integer(6)))),
            op(1, Call::Del, 8, Some((9, Outcome::Integer(1)))),
            op(1, Call::Del, 10, Some((11, Outcome::Integer(0)))),
        ];
        assert_eq!(check_key(&history), Ok(()));
        let mut wrong = history.to_vec();
        wrong[2].completed = Some((5, Outcome::Integer(0)));
        assert!(check_key(&wrong).is_err());
    }
}
