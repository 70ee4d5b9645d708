//! The key space as bytes, for Raft snapshots.
//!
//! Format: one byte [`SNAPSHOT_FORMAT`], then the postcard encoding of
//! `SnapshotV1` — the last creation sequence number, and every stored key
//! in key order with its value, its expiry (absolute ms, if any) and its
//! creation sequence number (which SCAN cursors are made of, so a restored
//! replica answers SCAN exactly as the others do). Expired keys not yet
//! reclaimed are included: the snapshot is the state, not a view of it.
//!
//! `restore` trusts nothing: every structural rule is checked and broken
//! input is a `RestoreError`, never a panic.

use super::{Entry, Key, Store, VALUE_BYTES_MAX};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::num::NonZeroU64;

/// The first byte of every snapshot; bumped on any incompatible change.
pub const SNAPSHOT_FORMAT: u8 = 1;

#[derive(Deserialize)]
struct SnapshotV1 {
    last_sequence: u64,
    entries: Vec<SnapshotEntry>,
}

#[derive(Deserialize)]
struct SnapshotEntry {
    key: Vec<u8>,
    value: Vec<u8>,
    expire_at_ms: Option<u64>,
    sequence: u64,
}

/// `SnapshotV1` borrowing from the store, so writing a snapshot does not
/// copy every key and value first (serde encodes `&[u8]` and `Vec<u8>` the
/// same way), nor list the entries in a vector of its own: they are
/// encoded straight from the map.
#[derive(Serialize)]
struct SnapshotV1Ref<'a> {
    last_sequence: u64,
    entries: EntriesRef<'a>,
}

/// The map's entries as a sequence (of known length, as postcard needs).
struct EntriesRef<'a>(&'a BTreeMap<Key, Entry>);

impl Serialize for EntriesRef<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(|(key, entry)| SnapshotEntryRef {
            key: key.as_bytes(),
            value: &entry.value,
            expire_at_ms: entry.expire_at_ms(),
            sequence: entry.sequence,
        }))
    }
}

#[derive(Serialize)]
struct SnapshotEntryRef<'a> {
    key: &'a [u8],
    value: &'a [u8],
    expire_at_ms: Option<u64>,
    sequence: u64,
}

/// Why bytes are not a snapshot this version can restore.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RestoreError {
    Empty,
    UnsupportedFormat(u8),
    /// The postcard payload does not decode.
    Undecodable(String),
    TrailingBytes(usize),
    /// Keys must be strictly increasing; the index of the first that is not.
    KeysOutOfOrder(usize),
    /// A sequence number that is zero, above the last one, or repeated.
    BadSequence(u64),
    /// An expiry outside `1..=i64::MAX` ms.
    BadExpiry(u64),
    ValueTooLarge(usize),
}

impl fmt::Display for RestoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RestoreError::Empty => write!(f, "empty key-value snapshot"),
            RestoreError::UnsupportedFormat(format) => {
                write!(
                    f,
                    "unsupported key-value snapshot format {format} (this build reads {SNAPSHOT_FORMAT})"
                )
            }
            RestoreError::Undecodable(e) => write!(f, "undecodable key-value snapshot: {e}"),
            RestoreError::TrailingBytes(n) => write!(f, "{n} unexpected bytes after the key-value snapshot"),
            RestoreError::KeysOutOfOrder(i) => write!(f, "key-value snapshot key #{i} is out of order"),
            RestoreError::BadSequence(s) => write!(f, "key-value snapshot has a bad sequence number {s}"),
            RestoreError::BadExpiry(at) => write!(f, "key-value snapshot has a bad expiry {at}"),
            RestoreError::ValueTooLarge(n) => write!(f, "key-value snapshot value of {n} bytes is too large"),
        }
    }
}

impl std::error::Error for RestoreError {}

impl Store {
    pub fn snapshot(&self) -> Vec<u8> {
        let body = SnapshotV1Ref { last_sequence: self.last_sequence, entries: EntriesRef(&self.entries) };
        // At most this many bytes (varints: 2 length prefixes, an expiry
        // and a sequence of at most 10 bytes each, plus the option tag), so
        // the buffer never grows by copying a large prefix of itself.
        let bytes_max: usize =
            self.entries.iter().map(|(key, entry)| key.len() + entry.value.len() + 41).sum::<usize>() + 21;
        let mut bytes = Vec::with_capacity(bytes_max);
        bytes.push(SNAPSHOT_FORMAT);
        // Serializing plain structs into a Vec cannot fail.
        postcard::to_extend(&body, bytes).expect("postcard encodes a key-value snapshot")
    }

    pub fn restore(bytes: &[u8]) -> Result<Store, RestoreError> {
        let (&format, payload) = bytes.split_first().ok_or(RestoreError::Empty)?;
        if format != SNAPSHOT_FORMAT {
            return Err(RestoreError::UnsupportedFormat(format));
        }
        let (body, rest): (SnapshotV1, &[u8]) =
            postcard::take_from_bytes(payload).map_err(|e| RestoreError::Undecodable(e.to_string()))?;
        if !rest.is_empty() {
            return Err(RestoreError::TrailingBytes(rest.len()));
        }
        let mut store = Store { last_sequence: body.last_sequence, ..Store::default() };
        let mut previous: Option<&[u8]> = None;
        for (index, entry) in body.entries.iter().enumerate() {
            if previous.is_some_and(|previous| previous >= entry.key.as_slice()) {
                return Err(RestoreError::KeysOutOfOrder(index));
            }
            previous = Some(&entry.key);
        }
        let mut by_sequence = BTreeMap::new();
        for entry in body.entries {
            let sequence = entry.sequence;
            if sequence == 0 || sequence > body.last_sequence || by_sequence.contains_key(&sequence) {
                return Err(RestoreError::BadSequence(sequence));
            }
            if let Some(at) = entry.expire_at_ms.filter(|at| *at == 0 || *at > i64::MAX as u64) {
                return Err(RestoreError::BadExpiry(at));
            }
            if entry.value.len() as u64 > VALUE_BYTES_MAX {
                return Err(RestoreError::ValueTooLarge(entry.value.len()));
            }
            by_sequence.insert(sequence, Key::new(&entry.key));
            if let Some(at) = entry.expire_at_ms {
                store.expiries.insert((at, sequence));
            }
            store.entries.insert(
                Key::new(&entry.key),
                Entry { value: entry.value, expiry: entry.expire_at_ms.and_then(NonZeroU64::new), sequence },
            );
        }
        for (sequence, key) in by_sequence {
            store.by_sequence.push(sequence, key);
        }
        store.check_invariants();
        Ok(store)
    }
}

/// Fuzz target body: restores arbitrary bytes and must not panic; what
/// restores must survive its own snapshot round trip unchanged (postcard
/// accepts some non-canonical varints, so the bytes themselves may differ).
/// Returns whether the input restored.
pub fn snapshot_decode(data: &[u8]) -> bool {
    match Store::restore(data) {
        Ok(store) => {
            assert_eq!(
                Store::restore(&store.snapshot()).as_ref(),
                Ok(&store),
                "snapshot round trip changed the store"
            );
            true
        }
        Err(_) => false,
    }
}
