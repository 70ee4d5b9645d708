//! Hashes: the value type and its commands, following Redis 7.0's
//! `t_hash.c` (the order of checks decides which error a bad command gets).
//!
//! A hash is an ordered map of fields to values in one of two forms, as
//! Redis's two encodings: while small (at most 128 fields, no field or
//! value ever over 64 bytes: Redis's listpack) the pairs are packed in
//! field order in one buffer with a one-byte length before each field and
//! value, two bytes of overhead a pair, and looked up by a scan as Redis
//! scans its listpack; past those limits, for good, a B-tree of fields and
//! values kept inline when short (see `key`). Commands that list fields (HKEYS, HVALS,
//! HGETALL, HSCAN) answer in field order, where Redis answers in its hash
//! table's or listpack's order; `tests/redis_diff.rs` compares them sorted.
//! A stored hash is never empty: the write that removes its last field
//! deletes the key (`Store::check_invariants` checks it).
//!
//! HSCAN's cursor is the first 8 bytes of the next field to visit, read as
//! a big-endian number (zero-padded), and an iteration resumes at the
//! smallest field with that prefix. A field present for a whole iteration
//! is therefore returned (Redis's guarantee), whatever is added or removed
//! meanwhile; fields sharing the 8-byte prefix of the field a call would
//! stop at are returned by that same call, so COUNT is exact except for
//! them. Redis returns a small (listpack) hash whole, cursor 0.
//!
//! OBJECT ENCODING answers the form's name: "listpack" until the hash
//! holds more than 128 fields or is given a field or value over 64 bytes,
//! then "hashtable" for good (Redis never converts back; snapshots keep
//! it). HRANDFIELD draws only from `Store::random`,
//! so replicas draw alike, and lists distinct fields in draw order (Redis:
//! its own order); a negative count is bounded (`RANDOM_PICKS_MAX`), where
//! Redis tries to answer any.

use super::args::{option_is, parse_i64};
use super::key::Key;
use super::keys::{ScanOptions, INVALID_CURSOR};
use super::long_double::LongDouble;
use super::strings::{NOT_AN_INTEGER, NOT_A_FLOAT, SYNTAX_ERROR};
use super::{args::parse_cursor, bulk_or_nil, command, Store};
use crate::protocol::Reply;
use std::collections::BTreeMap;
use std::ops::Bound;

/// Redis's `hash-max-listpack-entries` default: a hash with more fields is
/// in "hashtable" encoding.
const LISTPACK_ENTRIES_MAX: usize = 128;
/// Redis's `hash-max-listpack-value` default: a hash that ever held a
/// longer field or value is in "hashtable" encoding.
const LISTPACK_VALUE_BYTES_MAX: usize = 64;

/// A hash's fields and values.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub(super) struct Hash {
    fields: Fields,
}

/// The two forms of a hash, as Redis's two encodings: `Packed` while Redis
/// would keep a listpack (at most 128 fields, none and no value over 64
/// bytes ever), `Tree` from the moment Redis converts to a hash table, for
/// good (Redis never converts back). Which form a hash is in follows from
/// the commands applied to it, so every replica has the same one; OBJECT
/// ENCODING reads it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Fields {
    /// Pairs in field order, each `[field length][field][value length]
    /// [value]` with one-byte lengths (both are at most 64 bytes): 2 bytes
    /// of overhead a pair, as a listpack, in one allocation. Looked up by a
    /// scan, as Redis scans its listpack.
    Packed {
        bytes: Vec<u8>,
        count: usize,
    },
    Tree(BTreeMap<Key, Key>),
}

impl Default for Fields {
    fn default() -> Fields {
        Fields::Packed { bytes: Vec::new(), count: 0 }
    }
}

/// The pairs of a packed buffer, in order.
struct PackedPairs<'a> {
    bytes: &'a [u8],
    left: usize,
}

impl<'a> Iterator for PackedPairs<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let (&field_len, rest) = self.bytes.split_first()?;
        let (field, rest) = rest.split_at(usize::from(field_len));
        let (&value_len, rest) = rest.split_first().expect("a packed value follows its field");
        let (value, rest) = rest.split_at(usize::from(value_len));
        self.bytes = rest;
        self.left -= 1;
        Some((field, value))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl ExactSizeIterator for PackedPairs<'_> {}

/// Where a field is, or would go, in a packed buffer: its pair's offset,
/// the offset past it, and whether it is there.
fn packed_find(bytes: &[u8], field: &[u8]) -> (usize, usize, bool) {
    let mut at = 0;
    while at < bytes.len() {
        let field_len = usize::from(bytes[at]);
        let here = &bytes[at + 1..at + 1 + field_len];
        let value_len = usize::from(bytes[at + 1 + field_len]);
        let end = at + 2 + field_len + value_len;
        match here.cmp(field) {
            std::cmp::Ordering::Less => at = end,
            std::cmp::Ordering::Equal => return (at, end, true),
            std::cmp::Ordering::Greater => return (at, at, false),
        }
    }
    (at, at, false)
}

fn packed_pair(field: &[u8], value: &[u8]) -> Vec<u8> {
    let mut pair = Vec::with_capacity(field.len() + value.len() + 2);
    pair.push(field.len() as u8);
    pair.extend_from_slice(field);
    pair.push(value.len() as u8);
    pair.extend_from_slice(value);
    pair
}

impl Hash {
    pub(super) fn get(&self, field: &[u8]) -> Option<&[u8]> {
        match &self.fields {
            Fields::Packed { bytes, .. } => {
                let (at, end, found) = packed_find(bytes, field);
                found.then(|| &bytes[at + 2 + field.len()..end])
            }
            Fields::Tree(tree) => tree.get(field).map(Key::as_bytes),
        }
    }

    /// Sets a field; returns whether it is new.
    /// Redis converts at the same points: before setting a long field or
    /// value (`hashTypeTryConversion`, `hashTypeSet`), after adding the
    /// field past 128.
    pub(super) fn insert(&mut self, field: &[u8], value: &[u8]) -> bool {
        if field.len() > LISTPACK_VALUE_BYTES_MAX || value.len() > LISTPACK_VALUE_BYTES_MAX {
            self.convert_to_hashtable();
        }
        let added = match &mut self.fields {
            Fields::Packed { bytes, count } => {
                let (at, end, found) = packed_find(bytes, field);
                bytes.splice(at..end, packed_pair(field, value));
                *count += usize::from(!found);
                !found
            }
            Fields::Tree(tree) => {
                if let Some(old) = tree.get_mut(field) {
                    *old = Key::new(value);
                    return false;
                }
                tree.insert(Key::new(field), Key::new(value));
                true
            }
        };
        if self.len() > LISTPACK_ENTRIES_MAX {
            self.convert_to_hashtable();
        }
        added
    }

    /// Turns the hash into its "hashtable" form, for good (also what a
    /// snapshot restores for a hash that was in that form).
    pub(super) fn convert_to_hashtable(&mut self) {
        if let Fields::Packed { .. } = &self.fields {
            let tree = self.iter().map(|(field, value)| (Key::new(field), Key::new(value))).collect();
            self.fields = Fields::Tree(tree);
        }
    }

    /// OBJECT ENCODING's answer.
    pub(super) fn encoding(&self) -> &'static str {
        match self.fields {
            Fields::Packed { .. } => "listpack",
            Fields::Tree(_) => "hashtable",
        }
    }

    /// Removes a field; returns whether it was there.
    pub(super) fn remove(&mut self, field: &[u8]) -> bool {
        match &mut self.fields {
            Fields::Packed { bytes, count } => {
                let (at, end, found) = packed_find(bytes, field);
                if found {
                    bytes.drain(at..end);
                    *count -= 1;
                    if bytes.capacity() > 2 * bytes.len() + 64 {
                        bytes.shrink_to_fit();
                    }
                }
                found
            }
            Fields::Tree(tree) => tree.remove(field).is_some(),
        }
    }

    pub(super) fn len(&self) -> usize {
        match &self.fields {
            Fields::Packed { count, .. } => *count,
            Fields::Tree(tree) => tree.len(),
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The packed form's buffer length, `None` once a tree (tests).
    #[cfg(test)]
    pub(super) fn packed_bytes(&self) -> Option<usize> {
        match &self.fields {
            Fields::Packed { bytes, .. } => Some(bytes.len()),
            Fields::Tree(_) => None,
        }
    }

    /// Fields and values in field order.
    pub(super) fn iter(&self) -> impl ExactSizeIterator<Item = (&[u8], &[u8])> {
        let (packed, tree) = match &self.fields {
            Fields::Packed { bytes, count } => (Some(PackedPairs { bytes, left: *count }), None),
            Fields::Tree(tree) => (None, Some(tree.iter().map(|(f, v)| (f.as_bytes(), v.as_bytes())))),
        };
        Either { packed, tree }
    }

    /// Fields from `start` on, in field order.
    fn range_from<'a>(&'a self, start: &'a [u8]) -> Box<dyn Iterator<Item = (&'a [u8], &'a [u8])> + 'a> {
        match &self.fields {
            Fields::Packed { .. } => Box::new(self.iter().skip_while(move |(field, _)| *field < start)),
            Fields::Tree(tree) => {
                let range = (Bound::Included(start), Bound::Unbounded);
                Box::new(
                    tree.range::<[u8], _>(range).map(|(field, value)| (field.as_bytes(), value.as_bytes())),
                )
            }
        }
    }
}

/// One of two iterators of the same items (a hash's two forms).
struct Either<A, B> {
    packed: Option<A>,
    tree: Option<B>,
}

impl<'a, A, B> Iterator for Either<A, B>
where
    A: Iterator<Item = (&'a [u8], &'a [u8])>,
    B: Iterator<Item = (&'a [u8], &'a [u8])>,
{
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        match (&mut self.packed, &mut self.tree) {
            (Some(packed), _) => packed.next(),
            (None, Some(tree)) => tree.next(),
            (None, None) => None,
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match (&self.packed, &self.tree) {
            (Some(packed), _) => packed.size_hint(),
            (None, Some(tree)) => tree.size_hint(),
            (None, None) => (0, Some(0)),
        }
    }
}

impl<'a, A, B> ExactSizeIterator for Either<A, B>
where
    A: ExactSizeIterator<Item = (&'a [u8], &'a [u8])>,
    B: ExactSizeIterator<Item = (&'a [u8], &'a [u8])>,
{
}

/// The most fields HRANDFIELD draws for a negative count, and the most
/// bytes such a draw may answer (counting each draw as the largest field
/// and value): the reply is built whole, so it is bounded; a larger count
/// is "ERR value is out of range". Redis has no bound: it answers
/// -9223372036854775807 by filling its output buffer until memory runs out.
const RANDOM_PICKS_MAX: u64 = 1 << 24;
const RANDOM_REPLY_BYTES_MAX: u64 = super::VALUE_BYTES_MAX;

/// Indexes into `size` entries for a random draw of `count` (HRANDFIELD,
/// and the like): `count` distinct ones (all of them, in order, when
/// `count >= size`), or `-count` with repetition. `size > 0`, and a
/// negative count is bounded by the caller.
pub(super) fn random_picks(
    rng: &mut crate::raft::SplitMix64,
    size: usize,
    count: i64,
) -> impl Iterator<Item = usize> {
    let picks: Vec<usize> = if count < 0 {
        (0..count.unsigned_abs()).map(|_| rng.range(0, size as u64) as usize).collect()
    } else if count as u64 >= size as u64 {
        (0..size).collect()
    } else {
        // The first `count` steps of a Fisher-Yates shuffle.
        let mut indexes: Vec<usize> = (0..size).collect();
        for i in 0..count as usize {
            let j = rng.range(i as u64, size as u64) as usize;
            indexes.swap(i, j);
        }
        indexes.truncate(count as usize);
        indexes
    };
    picks.into_iter()
}

/// What HKEYS, HVALS and HGETALL list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Parts {
    Fields,
    Values,
    Both,
}

/// HSCAN's cursor for a field (and SSCAN's for a member, ZSCAN's for a
/// large sorted set's): its first 8 bytes, big-endian, zero-padded. Never
/// decreases along byte order.
pub(super) fn cursor_of(field: &[u8]) -> u64 {
    let mut bytes = [0u8; 8];
    let prefix = field.len().min(8);
    bytes[..prefix].copy_from_slice(&field[..prefix]);
    u64::from_be_bytes(bytes)
}

/// The smallest field whose cursor is `cursor`: every field before it has
/// a smaller cursor. Cursor 0 is the empty field, the start.
pub(super) fn resume_at(cursor: u64) -> Vec<u8> {
    let length = 8 - (cursor.trailing_zeros() / 8) as usize;
    cursor.to_be_bytes()[..length].to_vec()
}

impl Store {
    pub(super) fn on_hget(&self, args: &[Vec<u8>], now: u64) -> Reply {
        match self.live_as::<Hash>(&args[1], now) {
            Ok(hash) => bulk_or_nil(hash.and_then(|hash| hash.get(&args[2])).map(<[u8]>::to_vec)),
            Err(wrong_type) => wrong_type,
        }
    }

    pub(super) fn on_hmget(&self, args: &[Vec<u8>], now: u64) -> Reply {
        let hash = match self.live_as::<Hash>(&args[1], now) {
            Ok(hash) => hash,
            Err(wrong_type) => return wrong_type,
        };
        let value = |field: &Vec<u8>| bulk_or_nil(hash.and_then(|hash| hash.get(field)).map(<[u8]>::to_vec));
        Reply::Array(Some(args[2..].iter().map(value).collect()))
    }

    pub(super) fn on_hexists(&self, args: &[Vec<u8>], now: u64) -> Reply {
        match self.live_as::<Hash>(&args[1], now) {
            Ok(hash) => Reply::Integer(i64::from(hash.is_some_and(|hash| hash.get(&args[2]).is_some()))),
            Err(wrong_type) => wrong_type,
        }
    }

    pub(super) fn on_hlen(&self, args: &[Vec<u8>], now: u64) -> Reply {
        match self.live_as::<Hash>(&args[1], now) {
            Ok(hash) => Reply::Integer(hash.map_or(0, |hash| hash.len() as i64)),
            Err(wrong_type) => wrong_type,
        }
    }

    pub(super) fn on_hstrlen(&self, args: &[Vec<u8>], now: u64) -> Reply {
        match self.live_as::<Hash>(&args[1], now) {
            Ok(hash) => {
                Reply::Integer(hash.and_then(|hash| hash.get(&args[2])).map_or(0, |v| v.len() as i64))
            }
            Err(wrong_type) => wrong_type,
        }
    }

    /// HKEYS, HVALS, HGETALL (a map in RESP3, a flat array in RESP2).
    pub(super) fn on_hgetall(&self, args: &[Vec<u8>], now: u64, parts: Parts) -> Reply {
        let hash = match self.live_as::<Hash>(&args[1], now) {
            Ok(hash) => hash,
            Err(wrong_type) => return wrong_type,
        };
        let pairs = hash.into_iter().flat_map(Hash::iter);
        let bulk = |bytes: &[u8]| Reply::bulk(bytes.to_vec());
        match parts {
            Parts::Fields => Reply::Array(Some(pairs.map(|(field, _)| bulk(field)).collect())),
            Parts::Values => Reply::Array(Some(pairs.map(|(_, value)| bulk(value)).collect())),
            Parts::Both => Reply::Map(pairs.map(|(field, value)| (bulk(field), bulk(value))).collect()),
        }
    }

    /// HSCAN key cursor [MATCH pattern] [COUNT n] (see the module docs).
    pub(super) fn on_hscan(&self, args: &[Vec<u8>], now: u64) -> Reply {
        let Some(cursor) = parse_cursor(&args[2]) else {
            return Reply::error(INVALID_CURSOR);
        };
        let scan_reply = |next: u64, items: Vec<Reply>| {
            Reply::Array(Some(vec![Reply::bulk(next.to_string()), Reply::Array(Some(items))]))
        };
        let hash = match self.live_as::<Hash>(&args[1], now) {
            Ok(Some(hash)) => hash,
            Ok(None) => return scan_reply(0, Vec::new()),
            Err(wrong_type) => return wrong_type,
        };
        let options = match ScanOptions::parse(&args[3..], false) {
            Ok(options) => options,
            Err(reply) => return reply,
        };
        let (mut items, mut next, mut visited, mut last) = (Vec::new(), 0, 0, None);
        for (field, value) in hash.range_from(&resume_at(cursor)) {
            let here = cursor_of(field);
            // Stop only between cursors, and never at cursor 0 (the end).
            if visited >= options.count && last != Some(here) && here != 0 {
                next = here;
                break;
            }
            visited += 1;
            last = Some(here);
            if options.matches(field) {
                items.push(Reply::bulk(field.to_vec()));
                items.push(Reply::bulk(value.to_vec()));
            }
        }
        scan_reply(next, items)
    }

    /// HRANDFIELD key [count [WITHVALUES]] (`hrandfieldCommand`): one
    /// field, or `count` distinct fields (the whole hash if it has no
    /// more), or with a negative count that many fields drawn with
    /// repetition. Draws only from `Store::random`, so every replica picks
    /// alike; the fields come in draw order (Redis: its own order).
    pub(super) fn on_hrandfield(&self, args: &[Vec<u8>], now: u64) -> Reply {
        if args.len() == 2 {
            return match self.live_as::<Hash>(&args[1], now) {
                Err(wrong_type) => wrong_type,
                Ok(None) => Reply::nil(),
                Ok(Some(hash)) => {
                    let index = self.random(now).range(0, hash.len() as u64) as usize;
                    let (field, _) = hash.iter().nth(index).expect("index below the length");
                    Reply::bulk(field.to_vec())
                }
            };
        }
        let count = match parse_i64(&args[2]) {
            None => return Reply::error(NOT_AN_INTEGER),
            Some(i64::MIN) => return Reply::error(
                "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807",
            ),
            Some(count) => count,
        };
        let with_values = args.len() == 4;
        if args.len() > 4 || (with_values && !option_is(&args[3], "withvalues")) {
            return Reply::error(SYNTAX_ERROR);
        }
        let out_of_range = || Reply::error("ERR value is out of range");
        if with_values && !(-(i64::MAX / 2)..=i64::MAX / 2).contains(&count) {
            return out_of_range();
        }
        let hash = match self.live_as::<Hash>(&args[1], now) {
            Err(wrong_type) => return wrong_type,
            Ok(None) => return Reply::Array(Some(Vec::new())),
            Ok(Some(hash)) => hash,
        };
        let entries: Vec<(&[u8], &[u8])> = hash.iter().collect();
        if count < 0 {
            let largest = entries.iter().map(|(field, value)| field.len() + value.len()).max().unwrap_or(0);
            let reply_bytes = count.unsigned_abs().saturating_mul(largest as u64);
            if count.unsigned_abs() > RANDOM_PICKS_MAX || reply_bytes > RANDOM_REPLY_BYTES_MAX {
                return out_of_range();
            }
        }
        let picks = random_picks(&mut self.random(now), entries.len(), count);
        let bulk = |bytes: &[u8]| Reply::bulk(bytes.to_vec());
        if with_values {
            Reply::Pairs(picks.map(|i| (bulk(entries[i].0), bulk(entries[i].1))).collect())
        } else {
            Reply::Array(Some(picks.map(|i| bulk(entries[i].0)).collect()))
        }
    }

    /// HSET (the count of new fields) and HMSET (OK).
    pub(super) fn on_hset(&mut self, args: &[Vec<u8>], now: u64, name: &str) -> Reply {
        if !args.len().is_multiple_of(2) {
            return command::wrong_arity(name);
        }
        if let Err(wrong_type) = self.for_write_as::<Hash>(&args[1], now) {
            return wrong_type;
        }
        let hash = self.mut_as::<Hash>(&args[1]);
        let added = args[2..].chunks(2).filter(|pair| hash.insert(&pair[0], &pair[1])).count();
        if name == "hmset" {
            Reply::ok()
        } else {
            Reply::Integer(added as i64)
        }
    }

    pub(super) fn on_hsetnx(&mut self, args: &[Vec<u8>], now: u64) -> Reply {
        match self.for_write_as::<Hash>(&args[1], now) {
            Err(wrong_type) => wrong_type,
            Ok(Some(hash)) if hash.get(&args[2]).is_some() => Reply::Integer(0),
            Ok(_) => {
                self.mut_as::<Hash>(&args[1]).insert(&args[2], &args[3]);
                Reply::Integer(1)
            }
        }
    }

    /// HDEL: removing the last field deletes the key. Deleting nothing is
    /// no modification (WATCH).
    pub(super) fn on_hdel(&mut self, args: &[Vec<u8>], now: u64) -> Reply {
        let key = args[1].as_slice();
        match self.for_write_as::<Hash>(key, now) {
            Err(wrong_type) => return wrong_type,
            Ok(Some(hash)) if args[2..].iter().any(|field| hash.get(field).is_some()) => {}
            Ok(_) => return Reply::Integer(0),
        }
        let hash = self.mut_as::<Hash>(key);
        let deleted = args[2..].iter().filter(|field| hash.remove(field)).count();
        if hash.is_empty() {
            self.remove(key);
        }
        Reply::Integer(deleted as i64)
    }

    /// HINCRBY key field increment. Keeps the TTL.
    pub(super) fn on_hincrby(&mut self, args: &[Vec<u8>], now: u64) -> Reply {
        let Some(increment) = parse_i64(&args[3]) else {
            return Reply::error(NOT_AN_INTEGER);
        };
        let current = match self.for_write_as::<Hash>(&args[1], now) {
            Err(wrong_type) => return wrong_type,
            Ok(hash) => match hash.and_then(|hash| hash.get(&args[2])) {
                None => 0,
                Some(text) => match parse_i64(text) {
                    Some(value) => value,
                    None => return Reply::error("ERR hash value is not an integer"),
                },
            },
        };
        let Some(value) = current.checked_add(increment) else {
            return Reply::error("ERR increment or decrement would overflow");
        };
        self.mut_as::<Hash>(&args[1]).insert(&args[2], value.to_string().as_bytes());
        Reply::Integer(value)
    }

    /// HINCRBYFLOAT key field increment, with INCRBYFLOAT's x87 `long
    /// double` arithmetic (see `long_double`). Keeps the TTL.
    pub(super) fn on_hincrbyfloat(&mut self, args: &[Vec<u8>], now: u64) -> Reply {
        let Some(increment) = LongDouble::parse(&args[3]) else {
            return Reply::error(NOT_A_FLOAT);
        };
        if !increment.is_finite() {
            return Reply::error("ERR value is NaN or Infinity");
        }
        let current = match self.for_write_as::<Hash>(&args[1], now) {
            Err(wrong_type) => return wrong_type,
            Ok(hash) => match hash.and_then(|hash| hash.get(&args[2])) {
                None => LongDouble::from_i64(0),
                Some(text) => match LongDouble::parse(text) {
                    Some(value) => value,
                    None => return Reply::error("ERR hash value is not a float"),
                },
            },
        };
        let sum = current.add(increment);
        if !sum.is_finite() {
            return Reply::error("ERR increment would produce NaN or Infinity");
        }
        let text = sum.format_human();
        self.mut_as::<Hash>(&args[1]).insert(&args[2], &text);
        Reply::bulk(text)
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{bulk, cmd, run, T0};
    use super::*;
    use crate::kv::WRONG_TYPE;
    use std::collections::BTreeSet;

    fn hash_of(fields: usize) -> Store {
        let mut store = Store::default();
        for i in 0..fields {
            run(&mut store, T0, &["HSET", "h", &format!("f{i}"), &format!("v{i}")]);
        }
        store
    }

    fn items(reply: Reply) -> Vec<Reply> {
        match reply {
            Reply::Array(Some(items)) => items,
            other => panic!("not an array: {other:?}"),
        }
    }

    #[test]
    fn hrandfield_draws_distinct_fields_for_a_positive_count_and_repeats_for_a_negative_one() {
        let store = hash_of(5);
        let read = |words: &[&str], now: u64| store.read(&cmd(words), now);
        for now in T0..T0 + 20 {
            let fields = items(read(&["HRANDFIELD", "h", "3"], now));
            let distinct: BTreeSet<&Reply> = fields.iter().collect();
            assert_eq!((fields.len(), distinct.len()), (3, 3));
            assert_eq!(items(read(&["HRANDFIELD", "h", "-12"], now)).len(), 12);
            assert_eq!(items(read(&["HRANDFIELD", "h", "100"], now)).len(), 5, "the whole hash");
        }
        let picks: BTreeSet<Reply> = (0..64).map(|i| read(&["HRANDFIELD", "h"], T0 + i)).collect();
        assert_eq!(picks.len(), 5, "every field gets drawn at some time");
        assert_eq!(read(&["HRANDFIELD", "h", "0"], T0), Reply::Array(Some(Vec::new())));
        assert_eq!(read(&["HRANDFIELD", "missing"], T0), Reply::nil());
        assert_eq!(read(&["HRANDFIELD", "missing", "3"], T0), Reply::Array(Some(Vec::new())));
    }

    #[test]
    fn hrandfield_withvalues_answers_pairs_and_checks_its_arguments_first() {
        let store = hash_of(3);
        let read = |words: &[&str]| store.read(&cmd(words), T0);
        let Reply::Pairs(pairs) = read(&["HRANDFIELD", "h", "-4", "WITHVALUES"]) else { panic!("pairs") };
        assert_eq!(pairs.len(), 4);
        for (field, value) in pairs {
            assert_eq!(read(&["HGET", "h", &String::from_utf8(bulk_bytes(field)).unwrap()]), value);
        }
        assert_eq!(read(&["HRANDFIELD", "h", "1", "WITHSCORES"]), Reply::error(SYNTAX_ERROR));
        assert_eq!(read(&["HRANDFIELD", "h", "x"]), Reply::error(NOT_AN_INTEGER));
        let range = Reply::error("ERR value is out of range");
        assert_eq!(read(&["HRANDFIELD", "h", "4611686018427387904", "WITHVALUES"]), range);
        let min = Reply::error(
            "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807",
        );
        assert_eq!(read(&["HRANDFIELD", "missing", "-9223372036854775808"]), min);
        assert_eq!(read(&["HRANDFIELD", "h", "-9223372036854775807"]), range, "cashe bounds the draws");
        assert_eq!(read(&["HRANDFIELD", "h", "-16777217"]), range);
        let mut big = Store::default();
        run(&mut big, T0, &["HSET", "h", "f", &"v".repeat(1000)]);
        let draws = big.read(&cmd(&["HRANDFIELD", "h", "-600000"]), T0);
        assert_eq!(draws, range, "600000 draws of 1001 bytes pass 512 MiB");
        let mut store = store.clone();
        run(&mut store, T0, &["SET", "s", "v"]);
        assert_eq!(store.read(&cmd(&["HRANDFIELD", "s", "1"]), T0), Reply::error(WRONG_TYPE));
    }

    fn bulk_bytes(reply: Reply) -> Vec<u8> {
        match reply {
            Reply::Bulk(Some(bytes)) => bytes,
            other => panic!("not a bulk: {other:?}"),
        }
    }

    #[test]
    fn encoding_turns_hashtable_once_and_stays() {
        let mut store = Store::default();
        let encoding = |store: &Store| store.read(&cmd(&["OBJECT", "ENCODING", "h"]), T0);
        run(&mut store, T0, &["HSET", "h", "f", "v"]);
        assert_eq!(encoding(&store), bulk("listpack"));
        let long = "x".repeat(65);
        run(&mut store, T0, &["HSET", "h", "f", &long]);
        assert_eq!(encoding(&store), bulk("hashtable"));
        run(&mut store, T0, &["HSET", "h", "f", "short"]);
        assert_eq!(encoding(&store), bulk("hashtable"), "never converted back");
        let restored = Store::restore(&store.snapshot()).expect("restores");
        assert_eq!(restored, store, "a snapshot keeps the encoding");
        assert_eq!(encoding(&restored), bulk("hashtable"));
        run(&mut store, T0, &["COPY", "h", "copy"]);
        let copy = store.read(&cmd(&["OBJECT", "ENCODING", "copy"]), T0);
        assert_eq!(copy, bulk("hashtable"), "a copy keeps it");
        run(&mut store, T0, &["DEL", "h"]);
        run(&mut store, T0, &["HINCRBY", "h", &"y".repeat(65), "1"]);
        assert_eq!(encoding(&store), bulk("hashtable"), "HINCRBY converts for a long field");
        let store = hash_of(128);
        assert_eq!(encoding(&store), bulk("listpack"));
        let restored = Store::restore(&store.snapshot()).expect("restores");
        assert_eq!(encoding(&restored), bulk("listpack"));
        let store = hash_of(129);
        assert_eq!(encoding(&store), bulk("hashtable"));
    }

    #[test]
    fn cursors_never_decrease_along_field_order_and_resume_at_the_first_field_of_theirs() {
        let mut fields: Vec<&[u8]> = vec![
            b"",
            b"\0",
            b"a",
            b"a\0",
            b"a\0\0",
            b"a\x01",
            b"ab",
            b"abcdefgh",
            b"abcdefghz",
            b"b",
            b"\xff",
        ];
        fields.sort();
        for pair in fields.windows(2) {
            assert!(cursor_of(pair[0]) <= cursor_of(pair[1]), "{pair:?}");
        }
        for field in &fields {
            let start = resume_at(cursor_of(field));
            assert!(start.as_slice() <= *field, "{field:?}");
            assert_eq!(cursor_of(&start), cursor_of(field));
        }
        assert_eq!(resume_at(0), b"");
        assert_eq!(resume_at(cursor_of(b"a\0")), b"a");
    }
}
