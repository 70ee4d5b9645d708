//! Client histories on one register (`SET k v` / `GET k`), checked for
//! linearizability **in connection order**: besides real-time order (an
//! operation answered before another was sent takes effect before it), the
//! operations of one connection take effect in the order the connection
//! sent them, whether it waited for each reply or pipelined them.
//!
//! An operation whose outcome is unknown — no answer yet, an error answer
//! (`-TIMEOUT`, `-CLUSTERDOWN`, `-TRYAGAIN`), or the crash of the node
//! holding its connection — may or may not have taken effect. If it did, it
//! took effect after its connection's earlier operations and before its
//! connection's later ones; it precedes nothing in real time (a write that
//! timed out may still be applied after the error reply).
//!
//! Stateright's `LinearizabilityTester` allows one operation in flight per
//! thread, so this is a small search of its own (Wing & Gong, with the
//! failed positions memoised): the model's histories hold a handful of
//! operations. The verdict is kept in the history and recomputed only when
//! an answer arrives (sending an operation or losing its answer adds none
//! of the constraints a violation needs, so a violation never goes away).

use std::collections::HashSet;
use std::fmt;

pub type Value = Option<Vec<u8>>;

/// What a client asked.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Call {
    Write(Vec<u8>),
    Read,
}

/// What it was told.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// No answer, or one that leaves the operation's fate open.
    Unknown,
    Written,
    Read(Value),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Operation {
    call: Call,
    outcome: Outcome,
    /// The operations (as `bit`s) answered before this one was sent.
    after: u64,
}

/// Operations per connection the bit sets have room for.
const CONNECTION_OPERATIONS_MAX: usize = 8;
const CONNECTIONS_MAX: usize = 64 / CONNECTION_OPERATIONS_MAX;

fn bit(connection: usize, seq: usize) -> u64 {
    assert!(connection < CONNECTIONS_MAX && seq < CONNECTION_OPERATIONS_MAX, "history too large");
    1 << (connection * CONNECTION_OPERATIONS_MAX + seq)
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct History {
    /// Each connection's operations, in the order it sent them.
    connections: Vec<Vec<Operation>>,
    /// The operations answered with a known outcome.
    answered: u64,
    /// Whether some order explains every answer so far.
    linearizable: bool,
}

/// A search position: how far each connection's operations are placed
/// (taken or left out), which were taken, and the register's value.
type Position = (Vec<usize>, u64, Value);

impl History {
    pub fn new(connections: usize) -> History {
        assert!(connections <= CONNECTIONS_MAX, "history too large");
        History { connections: vec![Vec::new(); connections], answered: 0, linearizable: true }
    }

    /// `connection` sends `call`; returns its number on the connection.
    pub fn send(&mut self, connection: usize, call: Call) -> usize {
        let operations = &mut self.connections[connection];
        operations.push(Operation { call, outcome: Outcome::Unknown, after: self.answered });
        let seq = operations.len() - 1;
        assert!(seq < CONNECTION_OPERATIONS_MAX, "history too large");
        seq
    }

    /// Operation `seq` of `connection` is answered with a known outcome.
    pub fn answer(&mut self, connection: usize, seq: usize, outcome: Outcome) {
        let operation = &mut self.connections[connection][seq];
        let fits = matches!(
            (&operation.call, &outcome),
            (Call::Write(_), Outcome::Written) | (Call::Read, Outcome::Read(_))
        );
        assert!(fits && operation.outcome == Outcome::Unknown, "answer {outcome:?} to {operation:?}");
        operation.outcome = outcome;
        self.answered |= bit(connection, seq);
        self.linearizable = self.linearizable && self.linearization().is_some();
    }

    pub fn is_linearizable(&self) -> bool {
        self.linearizable
    }

    /// Whether some read returned a value (not nil).
    pub fn read_a_value(&self) -> bool {
        self.operations().any(|op| matches!(&op.outcome, Outcome::Read(Some(_))))
    }

    /// Whether a read of `connection` returned what an earlier write of the
    /// same connection wrote.
    pub fn read_own_write(&self, connection: usize) -> bool {
        let operations = &self.connections[connection];
        operations.iter().enumerate().any(|(k, read)| {
            operations[..k].iter().any(|write| match (&write.call, &read.outcome) {
                (Call::Write(written), Outcome::Read(Some(seen))) => written == seen,
                _ => false,
            })
        })
    }

    fn operations(&self) -> impl Iterator<Item = &Operation> {
        self.connections.iter().flatten()
    }

    /// An order in which the operations that took effect explain every
    /// answer, as (connection, seq) pairs; `None` if there is none.
    pub fn linearization(&self) -> Option<Vec<(usize, usize)>> {
        let mut order = Vec::new();
        let start = (vec![0; self.connections.len()], 0, None);
        self.search(start, &mut order, &mut HashSet::new()).then_some(order)
    }

    fn search(&self, at: Position, order: &mut Vec<(usize, usize)>, failed: &mut HashSet<Position>) -> bool {
        let (next, taken, value) = &at;
        if next.iter().zip(&self.connections).all(|(n, operations)| *n == operations.len()) {
            return true;
        }
        if failed.contains(&at) {
            return false;
        }
        for (connection, operations) in self.connections.iter().enumerate() {
            let seq = next[connection];
            let Some(operation) = operations.get(seq) else { continue };
            let mut moved = next.clone();
            moved[connection] += 1;
            // It takes effect now: everything answered before it was sent did.
            if operation.after & !taken == 0 {
                let effect = match (&operation.call, &operation.outcome) {
                    (Call::Write(v), Outcome::Written | Outcome::Unknown) => Some(Some(v.clone())),
                    (Call::Read, Outcome::Read(seen)) if seen == value => Some(value.clone()),
                    _ => None,
                };
                if let Some(after) = effect {
                    order.push((connection, seq));
                    if self.search((moved.clone(), taken | bit(connection, seq), after), order, failed) {
                        return true;
                    }
                    order.pop();
                }
            }
            // Or it never does: only an operation of unknown outcome may not.
            if operation.outcome == Outcome::Unknown
                && self.search((moved, *taken, value.clone()), order, failed)
            {
                return true;
            }
        }
        failed.insert(at);
        false
    }
}

/// Each connection's operations in the order sent, with their outcomes
/// (`?`: unknown), one connection a line.
impl fmt::Display for History {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = |value: &[u8]| String::from_utf8_lossy(value).into_owned();
        for (connection, operations) in self.connections.iter().enumerate() {
            write!(f, "connection {connection}:")?;
            for operation in operations {
                match &operation.call {
                    Call::Write(value) => write!(f, " SET {} ->", text(value))?,
                    Call::Read => write!(f, " GET ->")?,
                }
                match &operation.outcome {
                    Outcome::Unknown => write!(f, " ?;")?,
                    Outcome::Written => write!(f, " OK;")?,
                    Outcome::Read(None) => write!(f, " nil;")?,
                    Outcome::Read(Some(value)) => write!(f, " {};", text(value))?,
                }
            }
            writeln!(f)?;
        }
        Ok(())
    }
}

/// The checker's own specification, on hand-written histories: run before
/// any search relies on it.
pub fn check_examples() {
    let set = |v: &str| Call::Write(v.as_bytes().to_vec());
    let got = |v: Option<&str>| Outcome::Read(v.map(|v| v.as_bytes().to_vec()));

    // A pipelined SET a; GET on one connection: the GET must see a.
    let mut pipelined = History::new(1);
    pipelined.send(0, set("a"));
    pipelined.send(0, Call::Read);
    pipelined.answer(0, 0, Outcome::Written);
    let mut own = pipelined.clone();
    own.answer(0, 1, got(Some("a")));
    assert!(own.is_linearizable() && own.read_own_write(0));
    pipelined.answer(0, 1, got(None));
    assert!(!pipelined.is_linearizable(), "a read before its connection's earlier write");

    // The same two operations on two connections, in flight together: either order.
    let mut concurrent = History::new(2);
    concurrent.send(0, set("a"));
    concurrent.send(1, Call::Read);
    concurrent.answer(0, 0, Outcome::Written);
    concurrent.answer(1, 0, got(None));
    assert_eq!(concurrent.linearization(), Some(vec![(1, 0), (0, 0)]));

    // Real time: a read sent after a write was answered sees it.
    let mut sequential = History::new(2);
    sequential.send(0, set("a"));
    sequential.answer(0, 0, Outcome::Written);
    sequential.send(1, Call::Read);
    sequential.answer(1, 0, got(None));
    assert!(!sequential.is_linearizable(), "a read after a write's answer");

    // A write of unknown outcome may have happened, even much later...
    let mut unknown = History::new(2);
    unknown.send(0, set("a"));
    unknown.send(1, Call::Read);
    unknown.answer(1, 0, got(None));
    unknown.send(1, Call::Read);
    unknown.answer(1, 1, got(Some("a")));
    assert_eq!(unknown.linearization(), Some(vec![(1, 0), (0, 0), (1, 1)]));

    // ...or not at all...
    let mut dropped = History::new(2);
    dropped.send(0, set("a"));
    dropped.send(0, Call::Read);
    dropped.answer(0, 1, got(None));
    assert_eq!(dropped.linearization(), Some(vec![(0, 1)]));

    // ...but not after its connection's later operations.
    let mut reordered = dropped.clone();
    reordered.send(1, Call::Read);
    reordered.answer(1, 0, got(Some("a")));
    assert!(!reordered.is_linearizable(), "an unknown write took effect after its connection's read");
}
