//! Sorted sets: the value type and its commands, following Redis 7.0's
//! `t_zset.c` (the order of checks decides which error a bad command gets).
//!
//! SCAFFOLD: filled in by the sorted set work of issue 14.

use super::command::{KeyPositions, Spec};
use super::key::Key;
use super::Store;
use crate::protocol::Reply;
use std::collections::BTreeMap;

/// A sorted set's members and scores. Scores are never NaN. A stored
/// sorted set is never empty.
#[derive(Clone, Debug, Default)]
pub(super) struct ZSet {
    scores: BTreeMap<Key, f64>,
}

impl PartialEq for ZSet {
    fn eq(&self, other: &ZSet) -> bool {
        self.len() == other.len()
            && self.iter().zip(other.iter()).all(|(a, b)| a.0 == b.0 && a.1.to_bits() == b.1.to_bits())
    }
}

impl Eq for ZSet {}

impl std::hash::Hash for ZSet {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        for (member, score) in self.iter() {
            member.hash(state);
            score.to_bits().hash(state);
        }
    }
}

impl ZSet {
    pub(super) fn len(&self) -> usize {
        self.scores.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.scores.is_empty()
    }

    /// Members and scores in a deterministic order.
    pub(super) fn iter(&self) -> impl ExactSizeIterator<Item = (&[u8], f64)> {
        self.scores.iter().map(|(member, score)| (member.as_bytes(), *score))
    }

    /// Sets a member's score (never NaN); returns whether it is new.
    pub(super) fn insert(&mut self, member: &[u8], score: f64) -> bool {
        self.scores.insert(Key::new(member), score).is_none()
    }

    /// OBJECT ENCODING's answer.
    pub(super) fn encoding(&self) -> &'static str {
        "skiplist"
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Read {}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Write {}

/// The sorted set commands, arities as `COMMAND INFO` reports them on Redis 7.0.
pub(super) const TABLE: &[Spec] = &[];

/// `(first, last, step)` of the key arguments, as Redis 7.0's COMMAND INFO gives them.
pub(super) fn read_keys(command: Read) -> KeyPositions {
    match command {}
}

pub(super) fn write_keys(command: Write) -> KeyPositions {
    match command {}
}

impl Store {
    pub(super) fn zset_read(&self, command: Read, _args: &[Vec<u8>], _now: u64) -> Reply {
        match command {}
    }

    pub(super) fn zset_write(&mut self, command: Write, _name: &str, _args: &[Vec<u8>], _now: u64) -> Reply {
        match command {}
    }
}
