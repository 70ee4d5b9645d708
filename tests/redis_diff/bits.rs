//! SCAFFOLD (bits commands, issue 14): the generator's bits commands, the final
//! state of each key as bits commands read it, and a phase of large values.

use super::{Case, Check, Generator, Runner};

/// One random bits command on `key`.
pub(super) fn case(_generator: &mut Generator, key: Vec<u8>) -> Case {
    Case { args: vec![b"TYPE".to_vec(), key], check: Check::Exact }
}

/// Reads that show `key`'s whole value, run after each seed.
pub(super) fn final_state(_key: &[u8]) -> Vec<Case> {
    Vec::new()
}

/// Values past Redis's small encodings, filled, read and emptied.
pub(super) fn big(_runner: &mut Runner, _seed: u64) {}
