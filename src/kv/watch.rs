//! What WATCH needs from the key space: when each key was last modified.
//!
//! The store counts the write commands it applies ([`Store::version`]);
//! every key remembers the count at which it was last modified, and a key
//! deleted by a command leaves a tombstone with that count. `WATCH key`,
//! served at a linearizable point, records `(key, version, live)`; an
//! `EXEC` entry carries those records, and when it is applied the
//! transaction runs only if no watched key was touched since: not modified
//! after the recorded version, and, if it was live then, not expired since
//! (Redis 7.0's `isWatchedKeyExpired`). Everything here is replicated state
//! changed only by applying entries, so every replica decides an EXEC the
//! same way, across leader changes.
//!
//! What counts as a modification follows Redis's `signalModifiedKey`: a
//! value set or changed, a TTL set or removed, a deletion by a command. The
//! reclamation of an already expired key (`CASHE.EXPIRE`, or a write that
//! drops an expired key first) is not one: the key was already gone.
//!
//! Tombstones are bounded ([`TOMBSTONE_BYTES_MAX`]); the oldest are dropped
//! and their versions raise a floor that stands for every absent key without
//! a tombstone, as does a FLUSHALL. A WATCH older than the floor on a key
//! that is absent may therefore abort an EXEC that Redis would run (the
//! client retries); it never lets one run that Redis would abort.

use super::{Key, Store};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Key bytes (plus a fixed cost per key) kept in tombstones.
pub const TOMBSTONE_BYTES_MAX: usize = 8 << 20;
const TOMBSTONE_OVERHEAD_BYTES: usize = 64;

/// One watched key as WATCH saw it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Watch {
    pub key: Vec<u8>,
    /// The store's version when the WATCH was served.
    pub version: u64,
    /// Whether the key existed (and had not expired) then.
    pub live: bool,
}

/// Deleted keys and the version of their deletion.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub(super) struct Tombstones {
    by_key: BTreeMap<Key, u64>,
    by_version: BTreeSet<(u64, Key)>,
    bytes: usize,
    /// Every absent key without a tombstone was last modified at or before this.
    pub(super) floor: u64,
}

impl Tombstones {
    pub(super) fn record(&mut self, key: &[u8], version: u64) {
        self.forget(key);
        self.by_key.insert(Key::new(key), version);
        self.by_version.insert((version, Key::new(key)));
        self.bytes += key.len() + TOMBSTONE_OVERHEAD_BYTES;
        while self.bytes > TOMBSTONE_BYTES_MAX {
            let Some((oldest, key)) = self.by_version.pop_first() else { break };
            self.by_key.remove(key.as_bytes());
            self.bytes -= key.len() + TOMBSTONE_OVERHEAD_BYTES;
            self.floor = self.floor.max(oldest);
        }
    }

    /// The key exists again: its entry holds its version now.
    pub(super) fn forget(&mut self, key: &[u8]) {
        if let Some(version) = self.by_key.remove(key) {
            self.by_version.remove(&(version, Key::new(key)));
            self.bytes -= key.len() + TOMBSTONE_OVERHEAD_BYTES;
        }
    }

    /// When an absent key was last modified, as far as is known.
    pub(super) fn modified(&self, key: &[u8]) -> u64 {
        self.by_key.get(key).copied().unwrap_or(self.floor).max(self.floor)
    }

    /// Every key is gone (FLUSHALL): all of them count as modified now.
    pub(super) fn clear_all(&mut self, version: u64) {
        *self = Tombstones { floor: version, ..Tombstones::default() };
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = (&Key, u64)> {
        self.by_key.iter().map(|(key, version)| (key, *version))
    }
}

impl Store {
    /// Write commands applied so far (the unit of [`Watch::version`]).
    pub fn version(&self) -> u64 {
        self.version
    }

    /// What WATCH records for `key` at `now_ms`.
    pub fn watch(&self, key: &[u8], now_ms: u64) -> Watch {
        Watch { key: key.to_vec(), version: self.version, live: self.live(key, now_ms).is_some() }
    }

    /// Whether `watch`'s key was touched since it was recorded, judged at
    /// `now_ms` (the EXEC entry's time).
    pub fn touched(&self, watch: &Watch, now_ms: u64) -> bool {
        let modified = match self.entries.get(watch.key.as_slice()) {
            Some(entry) => entry.modified,
            None => self.tombstones.modified(&watch.key),
        };
        modified > watch.version || (watch.live && self.live(&watch.key, now_ms).is_none())
    }
}
