//! Lists: the value type and its commands, following Redis 7.0's
//! `t_list.c` (the order of checks decides which error a bad command gets).
//!
//! SCAFFOLD: the type and the command table are filled in by the list work
//! of issue 14; the blocking forms (BLPOP, BRPOP, BLMOVE, BRPOPLPUSH,
//! BLMPOP) answer here as they do inside MULTI (never blocking), and
//! `blocking` makes them wait on a node.

use super::command::{KeyPositions, Spec};
use super::key::Key;
use super::Store;
use crate::protocol::Reply;
use std::collections::VecDeque;

/// A list's elements, head first. A stored list is never empty.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub(super) struct List {
    items: VecDeque<Key>,
}

impl List {
    pub(super) fn len(&self) -> usize {
        self.items.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Elements from head to tail.
    pub(super) fn iter(&self) -> impl ExactSizeIterator<Item = &[u8]> {
        self.items.iter().map(Key::as_bytes)
    }

    pub(super) fn push_back(&mut self, element: &[u8]) {
        self.items.push_back(Key::new(element));
    }

    /// OBJECT ENCODING's answer.
    pub(super) fn encoding(&self) -> &'static str {
        "quicklist"
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Read {}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Write {}

/// The list commands, arities as `COMMAND INFO` reports them on Redis 7.0.
pub(super) const TABLE: &[Spec] = &[];

/// `(first, last, step)` of the key arguments, as Redis 7.0's COMMAND INFO gives them.
pub(super) fn read_keys(command: Read) -> KeyPositions {
    match command {}
}

pub(super) fn write_keys(command: Write) -> KeyPositions {
    match command {}
}

impl Store {
    pub(super) fn list_read(&self, command: Read, _args: &[Vec<u8>], _now: u64) -> Reply {
        match command {}
    }

    pub(super) fn list_write(&mut self, command: Write, _name: &str, _args: &[Vec<u8>], _now: u64) -> Reply {
        match command {}
    }
}
