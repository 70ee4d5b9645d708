//! The key space as bytes, for Raft snapshots.
//!
//! Format: one byte [`SNAPSHOT_FORMAT`], then the postcard encoding of
//! `SnapshotV4` — the last creation sequence number, the store's version
//! (write commands applied), every stored key in key order with its typed
//! value (a string's bytes, a hash's fields and values in field order, a
//! list's elements head first, a set's members, a sorted set's members
//! and scores; a hash that Redis would keep in "hashtable" encoding is
//! its own variant, so OBJECT ENCODING survives a restore),
//! its expiry (absolute ms, if any), its creation sequence number (which
//! SCAN cursors are made of, so a restored replica answers SCAN exactly as
//! the others do) and the version of its last modification, then the
//! tombstones of deleted keys and their floor (what WATCH compares, so a
//! restored replica decides an EXEC as the others do), then the blocked
//! clients (BLPOP and the like, see `blocking`) in the order they blocked.
//! Expired keys not yet
//! reclaimed are included: the snapshot is the state, not a view of it.
//! Formats 3 (strings and hashes only, nobody blocked), 2 (values are strings, untyped) and 1 (no versions, no
//! tombstones either: everything restores as modified at version 0) are
//! still read.
//!
//! `restore` trusts nothing: every structural rule is checked and broken
//! input is a `RestoreError`, never a panic.

use super::blocking::{Waiter, WaiterId};
use super::hash::Hash;
use super::list::List;
use super::set::Set;
use super::zset::ZSet;
use super::{Entry, Key, Store, Tombstones, Value, VALUE_BYTES_MAX};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::num::NonZeroU64;

/// The first byte of every snapshot; bumped on any incompatible change.
pub const SNAPSHOT_FORMAT: u8 = 4;
/// Strings and hashes only, and no blocked clients.
const SNAPSHOT_FORMAT_V3: u8 = 3;
/// The format before typed values: every value is a string.
const SNAPSHOT_FORMAT_V2: u8 = 2;
/// The format before WATCH versions; restored with every version 0.
const SNAPSHOT_FORMAT_V1: u8 = 1;

#[derive(Deserialize)]
struct SnapshotV1 {
    last_sequence: u64,
    entries: Vec<SnapshotEntryV1>,
}

#[derive(Deserialize)]
struct SnapshotEntryV1 {
    key: Vec<u8>,
    value: Vec<u8>,
    expire_at_ms: Option<u64>,
    sequence: u64,
}

#[derive(Deserialize)]
struct SnapshotV2 {
    last_sequence: u64,
    version: u64,
    entries: Vec<SnapshotEntryV2>,
    tombstones: Vec<(Vec<u8>, u64)>,
    tombstone_floor: u64,
}

#[derive(Deserialize)]
struct SnapshotEntryV2 {
    key: Vec<u8>,
    value: Vec<u8>,
    expire_at_ms: Option<u64>,
    sequence: u64,
    modified: u64,
}

/// Format 1 as format 2: nothing modified yet, no tombstones.
impl From<SnapshotV1> for SnapshotV2 {
    fn from(v1: SnapshotV1) -> SnapshotV2 {
        let entries = v1.entries.into_iter().map(|e| SnapshotEntryV2 {
            key: e.key,
            value: e.value,
            expire_at_ms: e.expire_at_ms,
            sequence: e.sequence,
            modified: 0,
        });
        SnapshotV2 {
            last_sequence: v1.last_sequence,
            version: 0,
            entries: entries.collect(),
            tombstones: Vec::new(),
            tombstone_floor: 0,
        }
    }
}

/// Format 2 as format 3: every value a string.
impl From<SnapshotV2> for SnapshotV3 {
    fn from(v2: SnapshotV2) -> SnapshotV3 {
        let entries = v2.entries.into_iter().map(|e| SnapshotEntry {
            key: e.key,
            value: SnapshotValue::String(e.value),
            expire_at_ms: e.expire_at_ms,
            sequence: e.sequence,
            modified: e.modified,
        });
        SnapshotV3 {
            last_sequence: v2.last_sequence,
            version: v2.version,
            entries: entries.collect(),
            tombstones: v2.tombstones,
            tombstone_floor: v2.tombstone_floor,
        }
    }
}

#[derive(Deserialize)]
struct SnapshotV3 {
    last_sequence: u64,
    version: u64,
    entries: Vec<SnapshotEntry>,
    tombstones: Vec<(Vec<u8>, u64)>,
    tombstone_floor: u64,
}

/// Format 3 and the blocked clients (`blocking`), oldest first.
#[derive(Deserialize)]
struct SnapshotV4 {
    last_sequence: u64,
    version: u64,
    entries: Vec<SnapshotEntry>,
    tombstones: Vec<(Vec<u8>, u64)>,
    tombstone_floor: u64,
    waiters: Vec<SnapshotWaiter>,
}

/// A blocked command: the order it blocked in (the store's version then),
/// who waits, and the command.
#[derive(Serialize, Deserialize)]
struct SnapshotWaiter {
    order: u64,
    node: u64,
    seq: u64,
    args: Vec<Vec<u8>>,
}

/// Format 3 as format 4: nobody blocked (format 3 had no blocking commands).
impl From<SnapshotV3> for SnapshotV4 {
    fn from(v3: SnapshotV3) -> SnapshotV4 {
        SnapshotV4 {
            last_sequence: v3.last_sequence,
            version: v3.version,
            entries: v3.entries,
            tombstones: v3.tombstones,
            tombstone_floor: v3.tombstone_floor,
            waiters: Vec::new(),
        }
    }
}

#[derive(Deserialize)]
struct SnapshotEntry {
    #[serde(with = "crate::frame::bytes")]
    key: Vec<u8>,
    value: SnapshotValue,
    expire_at_ms: Option<u64>,
    sequence: u64,
    modified: u64,
}

/// A value: the variant's index (varint), then its contents. New types
/// are added at the end (an older build refuses the format byte first).
#[derive(Deserialize)]
enum SnapshotValue {
    String(#[serde(with = "crate::frame::bytes")] Vec<u8>),
    /// Fields and values, fields strictly increasing, at least one.
    Hash(Vec<(Vec<u8>, Vec<u8>)>),
    /// Elements head first, at least one.
    List(Vec<Vec<u8>>),
    /// Members, no two alike, at least one.
    Set(Vec<Vec<u8>>),
    /// Members and scores (never NaN), no two members alike, at least one.
    ZSet(Vec<(Vec<u8>, f64)>),
    /// A hash in Redis's "hashtable" encoding (OBJECT ENCODING), which it
    /// keeps after shrinking back: `Hash`'s contents.
    HashTable(Vec<(Vec<u8>, Vec<u8>)>),
    /// A sorted set in its large form ("skiplist"), as `ZSet`: one way in
    /// Redis, and it decides how some replies print (ZSCAN, -0).
    ZSetSkiplist(Vec<(Vec<u8>, f64)>),
}

/// `SnapshotV4` borrowing from the store, so writing a snapshot does not
/// copy every key and value first (serde encodes `&[u8]` and `Vec<u8>` the
/// same way), nor list the entries in a vector of its own: they are
/// encoded straight from the map.
#[derive(Serialize)]
struct SnapshotV4Ref<'a> {
    last_sequence: u64,
    version: u64,
    entries: EntriesRef<'a>,
    tombstones: TombstonesRef<'a>,
    tombstone_floor: u64,
    waiters: Vec<SnapshotWaiter>,
}

struct TombstonesRef<'a>(&'a Tombstones);

impl Serialize for TombstonesRef<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(|(key, version)| (key.as_bytes(), version)))
    }
}

/// The map's entries as a sequence (of known length, as postcard needs).
struct EntriesRef<'a>(&'a BTreeMap<Key, Entry>);

impl Serialize for EntriesRef<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(|(key, entry)| SnapshotEntryRef {
            key: key.as_bytes(),
            value: ValueRef::of(&entry.value),
            expire_at_ms: entry.expire_at_ms(),
            sequence: entry.sequence,
            modified: entry.modified,
        }))
    }
}

#[derive(Serialize)]
struct SnapshotEntryRef<'a> {
    // Byte strings are written whole, not byte by byte (the same bytes).
    #[serde(with = "crate::frame::bytes")]
    key: &'a [u8],
    value: ValueRef<'a>,
    expire_at_ms: Option<u64>,
    sequence: u64,
    modified: u64,
}

/// `SnapshotValue` borrowing from the store (same variants, same order).
#[derive(Serialize)]
enum ValueRef<'a> {
    String(#[serde(with = "crate::frame::bytes")] &'a [u8]),
    Hash(FieldsRef<'a>),
    List(ElementsRef<'a>),
    Set(MembersRef<'a>),
    ZSet(ScoresRef<'a>),
    HashTable(FieldsRef<'a>),
    ZSetSkiplist(ScoresRef<'a>),
}

impl ValueRef<'_> {
    fn of(value: &Value) -> ValueRef<'_> {
        match value {
            Value::String(bytes) => ValueRef::String(bytes),
            Value::Hash(hash) if hash.encoding() == "hashtable" => ValueRef::HashTable(FieldsRef(hash)),
            Value::Hash(hash) => ValueRef::Hash(FieldsRef(hash)),
            Value::List(list) => ValueRef::List(ElementsRef(list)),
            Value::Set(set) => ValueRef::Set(MembersRef(set)),
            Value::ZSet(zset) if zset.encoding() == "skiplist" => ValueRef::ZSetSkiplist(ScoresRef(zset)),
            Value::ZSet(zset) => ValueRef::ZSet(ScoresRef(zset)),
        }
    }
}

struct FieldsRef<'a>(&'a Hash);
struct ElementsRef<'a>(&'a List);
struct MembersRef<'a>(&'a Set);
struct ScoresRef<'a>(&'a ZSet);

impl Serialize for FieldsRef<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter())
    }
}

impl Serialize for ElementsRef<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter())
    }
}

impl Serialize for MembersRef<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter())
    }
}

impl Serialize for ScoresRef<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter())
    }
}

/// At most this many bytes encode `value` (varints of at most 10 bytes).
fn value_bytes_max(value: &Value) -> usize {
    match value {
        Value::String(bytes) => bytes.len() + 11,
        Value::Hash(hash) => {
            hash.iter().map(|(field, value)| field.len() + value.len() + 20).sum::<usize>() + 11
        }
        Value::List(list) => list.iter().map(|element| element.len() + 10).sum::<usize>() + 11,
        Value::Set(set) => set.iter().map(|member| member.len() + 10).sum::<usize>() + 11,
        Value::ZSet(zset) => zset.iter().map(|(member, _)| member.len() + 18).sum::<usize>() + 11,
    }
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
    /// A hash with no field, or fields not strictly increasing: the index
    /// of its key.
    BadHash(usize),
    /// An empty list, set or sorted set, a repeated member or a NaN
    /// score: the type's name and the index of its key.
    BadCollection(&'static str, usize),
    /// A blocked command that is not one, or whose order or waiter repeats
    /// or is after the store's version: its order.
    BadWaiter(u64),
    /// A modification or tombstone version after the store's version, a
    /// tombstone below its floor, out of order, or for a stored key.
    BadVersion(u64),
}

impl fmt::Display for RestoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RestoreError::Empty => write!(f, "empty key-value snapshot"),
            RestoreError::UnsupportedFormat(format) => {
                write!(
                    f,
                    "unsupported key-value snapshot format {format} (this build reads \
                     {SNAPSHOT_FORMAT_V1}, {SNAPSHOT_FORMAT_V2}, {SNAPSHOT_FORMAT_V3} or {SNAPSHOT_FORMAT})"
                )
            }
            RestoreError::Undecodable(e) => write!(f, "undecodable key-value snapshot: {e}"),
            RestoreError::TrailingBytes(n) => write!(f, "{n} unexpected bytes after the key-value snapshot"),
            RestoreError::KeysOutOfOrder(i) => write!(f, "key-value snapshot key #{i} is out of order"),
            RestoreError::BadSequence(s) => write!(f, "key-value snapshot has a bad sequence number {s}"),
            RestoreError::BadExpiry(at) => write!(f, "key-value snapshot has a bad expiry {at}"),
            RestoreError::ValueTooLarge(n) => write!(f, "key-value snapshot value of {n} bytes is too large"),
            RestoreError::BadHash(i) => write!(f, "key-value snapshot key #{i} is a malformed hash"),
            RestoreError::BadCollection(kind, i) => {
                write!(f, "key-value snapshot key #{i} is a malformed {kind}")
            }
            RestoreError::BadWaiter(order) => {
                write!(f, "key-value snapshot has a malformed blocked command (order {order})")
            }
            RestoreError::BadVersion(v) => write!(f, "key-value snapshot has a bad version {v}"),
        }
    }
}

impl std::error::Error for RestoreError {}

impl Store {
    pub fn snapshot(&self) -> Vec<u8> {
        let waiters = self.waiter_list().map(|(order, waiter)| SnapshotWaiter {
            order,
            node: waiter.id.node,
            seq: waiter.id.seq,
            args: waiter.args.clone(),
        });
        let body = SnapshotV4Ref {
            last_sequence: self.last_sequence,
            version: self.version,
            entries: EntriesRef(&self.entries),
            tombstones: TombstonesRef(&self.tombstones),
            tombstone_floor: self.tombstones.floor,
            waiters: waiters.collect(),
        };
        // At most this many bytes (varints of at most 10 bytes: a length
        // prefix, an expiry, a sequence and a version, plus the option tag,
        // and the value's), so the buffer never grows by copying a large
        // prefix of itself.
        let entry_bytes: usize =
            self.entries.iter().map(|(key, entry)| key.len() + value_bytes_max(&entry.value) + 41).sum();
        let tombstone_bytes: usize = self.tombstones.iter().map(|(key, _)| key.len() + 20).sum();
        let waiter_bytes: usize =
            body.waiters.iter().map(|w| 40 + w.args.iter().map(|a| a.len() + 10).sum::<usize>()).sum();
        let bytes_max = entry_bytes + tombstone_bytes + waiter_bytes + 61;
        let mut bytes = Vec::with_capacity(bytes_max);
        bytes.push(SNAPSHOT_FORMAT);
        // Serializing plain structs into a Vec cannot fail.
        postcard::to_extend(&body, bytes).expect("postcard encodes a key-value snapshot")
    }

    pub fn restore(bytes: &[u8]) -> Result<Store, RestoreError> {
        let (&format, payload) = bytes.split_first().ok_or(RestoreError::Empty)?;
        let body = match format {
            SNAPSHOT_FORMAT => decode::<SnapshotV4>(payload)?,
            SNAPSHOT_FORMAT_V3 => decode::<SnapshotV3>(payload)?.into(),
            SNAPSHOT_FORMAT_V2 => SnapshotV3::from(decode::<SnapshotV2>(payload)?).into(),
            SNAPSHOT_FORMAT_V1 => SnapshotV3::from(SnapshotV2::from(decode::<SnapshotV1>(payload)?)).into(),
            other => return Err(RestoreError::UnsupportedFormat(other)),
        };
        let mut store =
            Store { last_sequence: body.last_sequence, version: body.version, ..Store::default() };
        let mut previous: Option<&[u8]> = None;
        for (index, entry) in body.entries.iter().enumerate() {
            if previous.is_some_and(|previous| previous >= entry.key.as_slice()) {
                return Err(RestoreError::KeysOutOfOrder(index));
            }
            previous = Some(&entry.key);
        }
        let mut by_sequence = BTreeMap::new();
        for (index, entry) in body.entries.into_iter().enumerate() {
            let sequence = entry.sequence;
            if sequence == 0 || sequence > body.last_sequence || by_sequence.contains_key(&sequence) {
                return Err(RestoreError::BadSequence(sequence));
            }
            if let Some(at) = entry.expire_at_ms.filter(|at| *at == 0 || *at > i64::MAX as u64) {
                return Err(RestoreError::BadExpiry(at));
            }
            if entry.modified > body.version {
                return Err(RestoreError::BadVersion(entry.modified));
            }
            by_sequence.insert(sequence, Key::new(&entry.key));
            if let Some(at) = entry.expire_at_ms {
                store.expiries.insert((at, sequence));
            }
            let expiry = entry.expire_at_ms.and_then(NonZeroU64::new);
            let value = restore_value(entry.value, index)?;
            let restored = Entry { value, expiry, sequence, modified: entry.modified };
            store.entries.insert(Key::new(&entry.key), restored);
        }
        for (sequence, key) in by_sequence {
            store.by_sequence.push(sequence, key);
        }
        if body.tombstone_floor > body.version {
            return Err(RestoreError::BadVersion(body.tombstone_floor));
        }
        store.tombstones.floor = body.tombstone_floor;
        let mut previous: Option<&[u8]> = None;
        for (key, version) in &body.tombstones {
            let out_of_range = *version > body.version || *version < body.tombstone_floor;
            let misplaced =
                previous.is_some_and(|p| p >= key.as_slice()) || store.entries.contains_key(key.as_slice());
            if out_of_range || misplaced {
                return Err(RestoreError::BadVersion(*version));
            }
            previous = Some(key);
            store.tombstones.record(key, *version);
        }
        for waiter in body.waiters {
            let id = WaiterId { node: waiter.node, seq: waiter.seq };
            if !store.restore_waiter(waiter.order, Waiter { id, args: waiter.args }) {
                return Err(RestoreError::BadWaiter(waiter.order));
            }
        }
        store.check_invariants();
        Ok(store)
    }
}

/// What `Store::digest` hashes of one key.
#[derive(Serialize)]
struct DigestedRef<'a> {
    #[serde(with = "crate::frame::bytes")]
    key: &'a [u8],
    value: ValueRef<'a>,
    expire_at_ms: Option<u64>,
}

impl Store {
    /// A digest of the contents as clients see them at `now_ms`, for
    /// comparing two stores (a backup's source and its restore, two
    /// replicas): every key not expired, its typed value (with the
    /// encoding OBJECT ENCODING reports) and its expiry, and nothing else
    /// (not the creation sequence numbers, versions, tombstones or blocked
    /// clients, which a restore starts afresh). Each key's record is hashed
    /// with SHA-256 and the hashes are XORed, so the digest does not depend
    /// on order, and the digests of disjoint stores (the groups of a
    /// sharded cluster) XOR to that of their union. All zeros: no key.
    pub fn digest(&self, now_ms: u64) -> [u8; 32] {
        let mut total = [0u8; 32];
        let mut record = Vec::new();
        for (key, entry) in &self.entries {
            let expire_at_ms = entry.expire_at_ms();
            if expire_at_ms.is_some_and(|at| at <= now_ms) {
                continue;
            }
            record.clear();
            let digested =
                DigestedRef { key: key.as_bytes(), value: ValueRef::of(&entry.value), expire_at_ms };
            record = postcard::to_extend(&digested, std::mem::take(&mut record)).expect("in-memory encoding");
            let hash = ring::digest::digest(&ring::digest::SHA256, &record);
            for (t, h) in total.iter_mut().zip(hash.as_ref()) {
                *t ^= h;
            }
        }
        total
    }

    /// One store holding every key of `parts` (a backup's groups) with its
    /// value and expiry, for a new cluster: creation sequence numbers are
    /// given afresh in key order, versions start at 0, and there are no
    /// tombstones and no blocked clients (those were clients of the old
    /// cluster, which a new one must never serve). A key in two parts is an
    /// error: the groups of one cluster never share a key.
    pub fn merged(parts: Vec<Store>) -> Result<Store, String> {
        let mut entries: BTreeMap<Key, Entry> = BTreeMap::new();
        for part in parts {
            for (key, entry) in part.entries {
                if entries.contains_key(&key) {
                    return Err(format!("key {:?} is in two parts", String::from_utf8_lossy(key.as_bytes())));
                }
                entries.insert(key, entry);
            }
        }
        let mut store = Store::default();
        for (sequence, (key, mut entry)) in (1..).zip(entries) {
            entry.sequence = sequence;
            entry.modified = 0;
            if let Some(at) = entry.expire_at_ms() {
                store.expiries.insert((at, sequence));
            }
            store.by_sequence.push(sequence, key.clone());
            store.entries.insert(key, entry);
            store.last_sequence = sequence;
        }
        store.check_invariants();
        Ok(store)
    }
}

/// A value as the store holds it, after checking the rules it keeps.
fn restore_value(value: SnapshotValue, index: usize) -> Result<Value, RestoreError> {
    match value {
        SnapshotValue::String(bytes) => {
            check_length(&bytes)?;
            Ok(Value::String(bytes))
        }
        SnapshotValue::HashTable(pairs) => {
            let mut value = restore_value(SnapshotValue::Hash(pairs), index)?;
            if let Value::Hash(hash) = &mut value {
                hash.convert_to_hashtable();
            }
            Ok(value)
        }
        SnapshotValue::Hash(pairs) => {
            let increasing = pairs.windows(2).all(|pair| pair[0].0 < pair[1].0);
            if pairs.is_empty() || !increasing {
                return Err(RestoreError::BadHash(index));
            }
            let mut hash = Hash::default();
            for (field, value) in &pairs {
                check_length(field)?;
                check_length(value)?;
                hash.insert(field, value);
            }
            Ok(Value::Hash(Box::new(hash)))
        }
        SnapshotValue::List(elements) => {
            if elements.is_empty() {
                return Err(RestoreError::BadCollection("list", index));
            }
            let mut list = List::default();
            for element in &elements {
                check_length(element)?;
                list.push_back(element);
            }
            Ok(Value::List(Box::new(list)))
        }
        SnapshotValue::Set(members) => {
            let mut set = Set::default();
            for member in &members {
                check_length(member)?;
                if !set.insert(member) {
                    return Err(RestoreError::BadCollection("set", index));
                }
            }
            if set.is_empty() {
                return Err(RestoreError::BadCollection("set", index));
            }
            Ok(Value::Set(Box::new(set)))
        }
        SnapshotValue::ZSet(scores) => restore_zset(scores, "listpack", index),
        SnapshotValue::ZSetSkiplist(scores) => restore_zset(scores, "skiplist", index),
    }
}

/// A sorted set in the form `encoding` had when the snapshot was taken.
fn restore_zset(scores: Vec<(Vec<u8>, f64)>, encoding: &str, index: usize) -> Result<Value, RestoreError> {
    let mut zset = ZSet::restored(encoding);
    for (member, score) in &scores {
        check_length(member)?;
        if score.is_nan() || !zset.insert(member, *score) {
            return Err(RestoreError::BadCollection("sorted set", index));
        }
    }
    if zset.is_empty() {
        return Err(RestoreError::BadCollection("sorted set", index));
    }
    Ok(Value::ZSet(Box::new(zset)))
}

/// A string, field, element or member within the store's limit.
fn check_length(bytes: &[u8]) -> Result<(), RestoreError> {
    if bytes.len() as u64 > VALUE_BYTES_MAX {
        return Err(RestoreError::ValueTooLarge(bytes.len()));
    }
    Ok(())
}

fn decode<'a, T: Deserialize<'a>>(payload: &'a [u8]) -> Result<T, RestoreError> {
    let (body, rest): (T, &[u8]) =
        postcard::take_from_bytes(payload).map_err(|e| RestoreError::Undecodable(e.to_string()))?;
    if !rest.is_empty() {
        return Err(RestoreError::TrailingBytes(rest.len()));
    }
    Ok(body)
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
