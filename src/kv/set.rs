//! Sets: the value type and its commands, following Redis 7.0's `t_set.c`
//! (the order of checks decides which error a bad command gets).
//!
//! SCAFFOLD: filled in by the set work of issue 14. SPOP and SRANDMEMBER
//! draw from `Store::random` (the same on every replica).

use super::command::{KeyPositions, Spec};
use super::key::Key;
use super::Store;
use crate::protocol::Reply;
use std::collections::BTreeSet;

/// A set's members. A stored set is never empty.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub(super) struct Set {
    members: BTreeSet<Key>,
}

impl Set {
    pub(super) fn len(&self) -> usize {
        self.members.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Members in a deterministic order.
    pub(super) fn iter(&self) -> impl ExactSizeIterator<Item = &[u8]> {
        self.members.iter().map(Key::as_bytes)
    }

    /// Adds a member; returns whether it is new.
    pub(super) fn insert(&mut self, member: &[u8]) -> bool {
        self.members.insert(Key::new(member))
    }

    /// OBJECT ENCODING's answer.
    pub(super) fn encoding(&self) -> &'static str {
        "hashtable"
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Read {}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Write {}

/// The set commands, arities as `COMMAND INFO` reports them on Redis 7.0.
pub(super) const TABLE: &[Spec] = &[];

/// `(first, last, step)` of the key arguments, as Redis 7.0's COMMAND INFO gives them.
pub(super) fn read_keys(command: Read) -> KeyPositions {
    match command {}
}

pub(super) fn write_keys(command: Write) -> KeyPositions {
    match command {}
}

impl Store {
    pub(super) fn set_read(&self, command: Read, _args: &[Vec<u8>], _now: u64) -> Reply {
        match command {}
    }

    pub(super) fn set_write(&mut self, command: Write, _name: &str, _args: &[Vec<u8>], _now: u64) -> Reply {
        match command {}
    }
}
