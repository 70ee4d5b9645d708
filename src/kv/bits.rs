//! Bitmaps and the rest of the string family: SETBIT, GETBIT, BITCOUNT,
//! BITPOS, BITOP, BITFIELD, BITFIELD_RO and LCS, following Redis 7.0's
//! `bitops.c` and `t_string.c`. They work on string values.
//!
//! SCAFFOLD: filled in by the bitmap work of issue 14.

use super::command::{KeyPositions, Spec};
use super::Store;
use crate::protocol::Reply;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Read {}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Write {}

/// The bitmap and LCS commands, arities as `COMMAND INFO` reports them on Redis 7.0.
pub(super) const TABLE: &[Spec] = &[];

/// `(first, last, step)` of the key arguments, as Redis 7.0's COMMAND INFO gives them.
pub(super) fn read_keys(command: Read) -> KeyPositions {
    match command {}
}

pub(super) fn write_keys(command: Write) -> KeyPositions {
    match command {}
}

impl Store {
    pub(super) fn bits_read(&self, command: Read, _args: &[Vec<u8>], _now: u64) -> Reply {
        match command {}
    }

    pub(super) fn bits_write(&mut self, command: Write, _name: &str, _args: &[Vec<u8>], _now: u64) -> Reply {
        match command {}
    }
}
