//! Sets: the value type and its commands, following Redis 7.0's `t_set.c`
//! (the order of checks decides which error a bad command gets).
//!
//! A set keeps its members sorted by their bytes, cut into chunks of at
//! most [`CHUNK_MAX`] members (a sorted `Vec` each; a small set is one
//! chunk, so it costs no B-tree node). A member up to 22 bytes long lives
//! inline in its 24-byte `Key`; chunks grow by a quarter when full, so a
//! set of short members costs about 27 bytes a member (a million random
//! 20-byte members; redis-server 7.0 used 72 for the same set). Lookups
//! are two binary searches, an insertion or removal
//! moves at most a chunk, and the member at a given rank (what a random
//! pick needs) is found by walking the chunks' lengths. A stored set is
//! never empty: the write that removes its last member deletes the key.
//!
//! OBJECT ENCODING's name follows Redis's rules (`encoding`): "intset"
//! while every member added was an integer as `string2ll` reads it and
//! there are at most [`INTSET_ENTRIES_MAX`] members, "hashtable" from then
//! on, one way. The name is not part of a set's equality: a snapshot holds
//! members only and a restored set's name is worked out afresh, as a Redis
//! replica loading an RDB file does.
//!
//! SPOP and SRANDMEMBER draw from `Store::random` only (the same on every
//! replica, so SPOP removes the same members everywhere), each distinct
//! pick uniform among the members.
//!
//! Intentional differences from Redis 7.0:
//! - SMEMBERS, SINTER, SUNION, SDIFF, SPOP and SRANDMEMBER with a count
//!   answer in member byte order (Redis: an intset's numeric order or its
//!   hash table's order); SRANDMEMBER with a negative count answers in the
//!   order of its draws.
//! - SSCAN's cursor is the first 8 bytes of the next member to visit, as
//!   HSCAN's (see `hash`); COUNT is exact but for members sharing those
//!   bytes. The guarantee is Redis's: a member present for a whole
//!   iteration is returned. Redis answers an intset whole, cursor 0.
//! - SRANDMEMBER with a negative count (members may repeat) answers at
//!   most [`RANDOM_REPLY_BYTES_MAX`] bytes, counting each member as its
//!   length plus [`RANDOM_MEMBER_COST_BYTES`], and is refused with
//!   [`RANDOM_REPLY_TOO_LARGE`] beyond: Redis builds any count up to
//!   2^63-1 and runs out of memory.

use super::args::{option_is, parse_cursor, parse_i64};
use super::command::{self, KeyPositions, ReadCommand, Spec, WriteCommand, ALL_KEYS, NO_KEYS, ONE_KEY};
use super::hash::{cursor_of, resume_at};
use super::key::Key;
use super::keys::{ScanOptions, INVALID_CURSOR};
use super::strings::{NOT_AN_INTEGER, SYNTAX_ERROR};
use super::{Store, Value, VALUE_BYTES_MAX};
use crate::protocol::Reply;
use crate::raft::SplitMix64;
use std::collections::BTreeSet;

/// Redis's `set-max-intset-entries` default.
pub(super) const INTSET_ENTRIES_MAX: usize = 512;
/// A chunk splits in two when it grows past this many members.
const CHUNK_MAX: usize = 512;
/// A chunk this small merges with a neighbour when they fit in one.
const CHUNK_MIN: usize = CHUNK_MAX / 4;
/// How full a set built at once (STORE, SPOP's rebuild) fills its chunks,
/// leaving room to insert without splitting at once.
const CHUNK_FILL: usize = CHUNK_MAX * 3 / 4;
/// A chunk whose capacity exceeds 1.5 times its length by more than this
/// gives the spare back (down to 1.25 times) after a removal.
const CHUNK_SPARE_MAX: usize = 8;
const _: () = assert!(2 * CHUNK_MIN <= CHUNK_MAX && CHUNK_MIN < CHUNK_FILL && CHUNK_FILL < CHUNK_MAX);
/// SRANDMEMBER with a negative count: the largest reply, in bytes.
pub(super) const RANDOM_REPLY_BYTES_MAX: u64 = VALUE_BYTES_MAX;
/// What each member of such a reply counts besides its bytes: the reply
/// value holding it.
pub(super) const RANDOM_MEMBER_COST_BYTES: u64 = 64;
pub(super) const RANDOM_REPLY_TOO_LARGE: &str =
    "ERR SRANDMEMBER reply too large (more than 536870912 bytes); ask for fewer members";
/// SPOP's and SRANDMEMBER's count out of range (Redis's exact texts).
const COUNT_NOT_POSITIVE: &str = "ERR value is out of range, must be positive";
const COUNT_OUT_OF_RANGE: &str =
    "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807";
/// Redis's SPOP_MOVE_STRATEGY_MUL: a SPOP leaving at most 1/5 of the
/// count in the set builds a new set of what stays (a fresh encoding).
const SPOP_MOVE_STRATEGY_MUL: usize = 5;

/// OBJECT ENCODING's answer for a set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Encoding {
    IntSet,
    HashTable,
}

/// A set's members, in byte order (see the module docs).
#[derive(Clone, Debug)]
pub(super) struct Set {
    /// Sorted, strictly increasing across chunks; no chunk is empty or
    /// longer than `CHUNK_MAX`.
    chunks: Vec<Vec<Key>>,
    len: usize,
    encoding: Encoding,
}

impl Default for Set {
    /// An empty set, "intset" until a member says otherwise (Redis's
    /// `setTypeCreate`, `createIntsetObject`).
    fn default() -> Set {
        Set { chunks: Vec::new(), len: 0, encoding: Encoding::IntSet }
    }
}

/// Members only: the encoding is a representation (see the module docs).
impl PartialEq for Set {
    fn eq(&self, other: &Set) -> bool {
        self.len == other.len && self.iter().eq(other.iter())
    }
}

impl Eq for Set {}

impl std::hash::Hash for Set {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.len.hash(state);
        for member in self.iter() {
            member.hash(state);
        }
    }
}

/// Members in byte order, with their exact count (the snapshot writer
/// needs the length up front).
pub(super) struct Members<'a> {
    inner: std::iter::Flatten<std::slice::Iter<'a, Vec<Key>>>,
    remaining: usize,
}

impl<'a> Iterator for Members<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let member = self.inner.next()?;
        self.remaining -= 1;
        Some(member.as_bytes())
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl ExactSizeIterator for Members<'_> {}

impl Set {
    pub(super) fn len(&self) -> usize {
        self.len
    }

    pub(super) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Members in byte order.
    pub(super) fn iter(&self) -> Members<'_> {
        Members { inner: self.chunks.iter().flatten(), remaining: self.len }
    }

    /// OBJECT ENCODING's answer.
    pub(super) fn encoding(&self) -> &'static str {
        match self.encoding {
            Encoding::IntSet => "intset",
            Encoding::HashTable => "hashtable",
        }
    }

    /// A set of `members`, given in strictly increasing order, encoded as
    /// Redis encodes a set it builds member by member.
    fn from_sorted<'a>(members: impl IntoIterator<Item = &'a [u8]>) -> Set {
        let mut set = Set::default();
        let mut chunk: Vec<Key> = Vec::new();
        for member in members {
            if chunk.len() == CHUNK_FILL {
                chunk.shrink_to_fit();
                set.chunks.push(std::mem::take(&mut chunk));
            }
            set.len += 1;
            set.note_added(member);
            chunk.push(Key::new(member));
        }
        if !chunk.is_empty() {
            chunk.shrink_to_fit();
            set.chunks.push(chunk);
        }
        set
    }

    /// Redis's `setTypeAdd` conversion: a member that is no integer, or
    /// one too many, turns an intset into a hash table for good.
    fn note_added(&mut self, member: &[u8]) {
        if self.encoding == Encoding::IntSet && (self.len > INTSET_ENTRIES_MAX || parse_i64(member).is_none())
        {
            self.encoding = Encoding::HashTable;
        }
    }

    /// The chunk where `member` is or would go, and its position there.
    fn locate(&self, member: &[u8]) -> (usize, Result<usize, usize>) {
        let after = self.chunks.partition_point(|chunk| chunk[chunk.len() - 1].as_bytes() < member);
        let index = after.min(self.chunks.len().saturating_sub(1));
        match self.chunks.get(index) {
            None => (0, Err(0)),
            Some(chunk) => (index, chunk.binary_search_by(|key| key.as_bytes().cmp(member))),
        }
    }

    pub(super) fn contains(&self, member: &[u8]) -> bool {
        self.locate(member).1.is_ok()
    }

    /// Adds a member; returns whether it is new.
    pub(super) fn insert(&mut self, member: &[u8]) -> bool {
        let (index, Err(position)) = self.locate(member) else {
            return false;
        };
        if self.chunks.is_empty() {
            self.chunks.push(Vec::with_capacity(1));
        }
        let chunk = &mut self.chunks[index];
        if chunk.len() == chunk.capacity() {
            // A quarter more, not double: spare capacity is memory per member.
            chunk.reserve_exact((chunk.len() / 4).max(4));
        }
        chunk.insert(position, Key::new(member));
        if chunk.len() > CHUNK_MAX {
            let right = chunk.split_off(chunk.len() / 2);
            chunk.shrink_to_fit();
            self.chunks.insert(index + 1, right);
        }
        self.len += 1;
        self.note_added(member);
        true
    }

    /// Removes a member; returns whether it was there.
    pub(super) fn remove(&mut self, member: &[u8]) -> bool {
        let (index, Ok(position)) = self.locate(member) else {
            return false;
        };
        self.chunks[index].remove(position);
        self.len -= 1;
        self.tidy(index);
        true
    }

    /// After a removal from chunk `index`: drops it if empty, merges it
    /// with a neighbour if both fit in one, gives back spare capacity.
    fn tidy(&mut self, index: usize) {
        if self.chunks[index].is_empty() {
            self.chunks.remove(index);
            return;
        }
        let mut index = index;
        if self.chunks[index].len() < CHUNK_MIN && self.chunks.len() > 1 {
            let left = if index + 1 < self.chunks.len() { index } else { index - 1 };
            if self.chunks[left].len() + self.chunks[left + 1].len() <= CHUNK_MAX {
                let mut right = self.chunks.remove(left + 1);
                self.chunks[left].reserve_exact(right.len());
                self.chunks[left].append(&mut right);
                index = left;
            }
        }
        let chunk = &mut self.chunks[index];
        if chunk.capacity() > chunk.len() + chunk.len() / 2 + CHUNK_SPARE_MAX {
            chunk.shrink_to(chunk.len() + chunk.len() / 4);
        }
    }

    /// The members at `indexes` (ranks below `len`, in non-decreasing
    /// order: a rank may repeat), in that order.
    fn members_at(&self, indexes: &[usize]) -> Vec<&[u8]> {
        let mut found = Vec::with_capacity(indexes.len());
        let mut chunks = self.chunks.iter();
        let (mut chunk, mut base): (&[Key], usize) = (&[], 0);
        for &index in indexes {
            while index >= base + chunk.len() {
                base += chunk.len();
                chunk = chunks.next().expect("rank below the set's length");
            }
            found.push(chunk[index - base].as_bytes());
        }
        found
    }

    /// Members from `start` on, in byte order.
    fn range_from<'a>(&'a self, start: &[u8]) -> impl Iterator<Item = &'a [u8]> + 'a {
        let (index, position) = self.locate(start);
        let position = position.unwrap_or_else(|insert_at| insert_at);
        let first = self.chunks.get(index).map_or(&[][..], |chunk| &chunk[position..]);
        let rest = self.chunks.get(index + 1..).unwrap_or(&[]);
        first.iter().chain(rest.iter().flatten()).map(Key::as_bytes)
    }

    /// Panics if the chunks are out of order, empty, too long, or the
    /// length or encoding disagree with them (a bug, never input). Tests
    /// call it after every command (`Store::check_invariants` knows no
    /// set internals).
    #[cfg(test)]
    pub(super) fn check_invariants(&self) {
        let mut count = 0;
        let mut previous: Option<&[u8]> = None;
        for chunk in &self.chunks {
            assert!(!chunk.is_empty() && chunk.len() <= CHUNK_MAX, "chunk of {} members", chunk.len());
            for member in chunk {
                assert!(previous < Some(member.as_bytes()), "members out of order");
                previous = Some(member.as_bytes());
                count += 1;
            }
        }
        assert_eq!(count, self.len, "set length");
        if self.encoding == Encoding::IntSet {
            assert!(self.len <= INTSET_ENTRIES_MAX, "an intset of {} members", self.len);
            assert!(self.iter().all(|member| parse_i64(member).is_some()), "a non-integer in an intset");
        }
    }
}

/// `count` distinct ranks below `len`, increasing, uniform (Floyd's
/// sampling; for more than half of the set, the ranks left out are drawn).
fn distinct_ranks(random: &mut SplitMix64, len: usize, count: usize) -> Vec<usize> {
    assert!(count <= len, "{count} distinct ranks of {len}");
    let drawn = count.min(len - count);
    let mut chosen = BTreeSet::new();
    for bound in len - drawn..len {
        let rank = random.range(0, bound as u64 + 1) as usize;
        if !chosen.insert(rank) {
            chosen.insert(bound);
        }
    }
    if drawn == count {
        chosen.into_iter().collect()
    } else {
        (0..len).filter(|rank| !chosen.contains(rank)).collect()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Read {
    IsMember,
    MIsMember,
    Members,
    Card,
    RandMember,
    Inter,
    InterCard,
    Union,
    Diff,
    Scan,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Write {
    Add,
    Rem,
    Move,
    Pop,
    InterStore,
    UnionStore,
    DiffStore,
}

const fn read(name: &'static str, arity: i32, command: Read) -> Spec {
    command::read(name, arity, ReadCommand::Sets(command))
}

const fn write(name: &'static str, arity: i32, command: Write) -> Spec {
    command::write(name, arity, WriteCommand::Sets(command))
}

/// The set commands, arities as `COMMAND INFO` reports them on Redis 7.0.
pub(super) const TABLE: &[Spec] = &[
    read("sismember", 3, Read::IsMember),
    read("smismember", -3, Read::MIsMember),
    read("smembers", 2, Read::Members),
    read("scard", 2, Read::Card),
    read("srandmember", -2, Read::RandMember),
    read("sinter", -2, Read::Inter),
    read("sintercard", -3, Read::InterCard),
    read("sunion", -2, Read::Union),
    read("sdiff", -2, Read::Diff),
    read("sscan", -3, Read::Scan),
    write("sadd", -3, Write::Add),
    write("srem", -3, Write::Rem),
    write("smove", 4, Write::Move),
    write("spop", -2, Write::Pop),
    write("sinterstore", -3, Write::InterStore),
    write("sunionstore", -3, Write::UnionStore),
    write("sdiffstore", -3, Write::DiffStore),
];

/// `(first, last, step)` of the key arguments, as Redis 7.0's COMMAND INFO gives them.
pub(super) fn read_keys(command: Read) -> KeyPositions {
    match command {
        Read::IsMember | Read::MIsMember | Read::Members | Read::Card | Read::RandMember | Read::Scan => {
            ONE_KEY
        }
        Read::Inter | Read::Union | Read::Diff => ALL_KEYS,
        // Its keys follow a count: "movablekeys", 0 0 0.
        Read::InterCard => NO_KEYS,
    }
}

pub(super) fn write_keys(command: Write) -> KeyPositions {
    match command {
        Write::Add | Write::Rem | Write::Pop => ONE_KEY,
        Write::Move => (1, 2, 1),
        Write::InterStore | Write::UnionStore | Write::DiffStore => ALL_KEYS,
    }
}

/// SINTER, SUNION, SDIFF and their STORE forms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Algebra {
    Inter,
    Union,
    Diff,
}

/// The members of `sets` combined by `algebra`, in byte order; an absent
/// key (`None`) is an empty set.
fn combine<'a>(algebra: Algebra, sets: &[Option<&'a Set>]) -> Vec<&'a [u8]> {
    match algebra {
        Algebra::Inter => {
            let Some(sets) = sets.iter().copied().collect::<Option<Vec<&Set>>>() else {
                return Vec::new();
            };
            common_members(&sets).collect()
        }
        Algebra::Union => {
            let mut members: Vec<&[u8]> = sets.iter().flatten().flat_map(|set| set.iter()).collect();
            members.sort_unstable();
            members.dedup();
            members
        }
        Algebra::Diff => {
            let Some(first) = sets[0] else {
                return Vec::new();
            };
            let others: Vec<&Set> = sets[1..].iter().flatten().copied().collect();
            first.iter().filter(|member| !others.iter().any(|set| set.contains(member))).collect()
        }
    }
}

/// The members all `sets` have, in byte order: those of the smallest
/// that the others have (a key given twice is one set).
fn common_members<'a>(sets: &[&'a Set]) -> impl Iterator<Item = &'a [u8]> + 'a {
    let smallest = sets.iter().copied().min_by_key(|set| set.len()).expect("at least one key");
    let others: Vec<&Set> = sets.iter().copied().filter(|set| !std::ptr::eq(*set, smallest)).collect();
    smallest.iter().filter(move |member| others.iter().all(|set| set.contains(member)))
}

fn bulk(member: &[u8]) -> Reply {
    Reply::bulk(member.to_vec())
}

fn set_reply<'a>(members: impl IntoIterator<Item = &'a [u8]>) -> Reply {
    Reply::Set(members.into_iter().map(bulk).collect())
}

fn array_reply<'a>(members: impl IntoIterator<Item = &'a [u8]>) -> Reply {
    Reply::Array(Some(members.into_iter().map(bulk).collect()))
}

impl Store {
    pub(super) fn set_read(&self, command: Read, args: &[Vec<u8>], now: u64) -> Reply {
        match command {
            Read::IsMember => self.on_sismember(args, now),
            Read::MIsMember => self.on_smismember(args, now),
            Read::Members => self.on_algebra(&args[1..], now, Algebra::Inter),
            Read::Card => self.on_scard(args, now),
            Read::RandMember => self.on_srandmember(args, now),
            Read::Inter => self.on_algebra(&args[1..], now, Algebra::Inter),
            Read::InterCard => self.on_sintercard(args, now),
            Read::Union => self.on_algebra(&args[1..], now, Algebra::Union),
            Read::Diff => self.on_algebra(&args[1..], now, Algebra::Diff),
            Read::Scan => self.on_sscan(args, now),
        }
    }

    pub(super) fn set_write(&mut self, command: Write, _name: &str, args: &[Vec<u8>], now: u64) -> Reply {
        match command {
            Write::Add => self.on_sadd(args, now),
            Write::Rem => self.on_srem(args, now),
            Write::Move => self.on_smove(args, now),
            Write::Pop => self.on_spop(args, now),
            Write::InterStore => self.on_algebra_store(args, now, Algebra::Inter),
            Write::UnionStore => self.on_algebra_store(args, now, Algebra::Union),
            Write::DiffStore => self.on_algebra_store(args, now, Algebra::Diff),
        }
    }

    /// Deletes `key` if its set is now empty.
    fn remove_if_empty_set(&mut self, key: &[u8]) {
        if matches!(self.entries.get(key).map(|entry| &entry.value), Some(Value::Set(set)) if set.is_empty())
        {
            self.remove(key);
        }
    }

    fn on_sismember(&self, args: &[Vec<u8>], now: u64) -> Reply {
        match self.live_as::<Set>(&args[1], now) {
            Ok(set) => Reply::Integer(i64::from(set.is_some_and(|set| set.contains(&args[2])))),
            Err(wrong_type) => wrong_type,
        }
    }

    /// SMISMEMBER: an absent key is an empty set (zeros, no error).
    fn on_smismember(&self, args: &[Vec<u8>], now: u64) -> Reply {
        let set = match self.live_as::<Set>(&args[1], now) {
            Ok(set) => set,
            Err(wrong_type) => return wrong_type,
        };
        let answer =
            |member: &Vec<u8>| Reply::Integer(i64::from(set.is_some_and(|set| set.contains(member))));
        Reply::Array(Some(args[2..].iter().map(answer).collect()))
    }

    fn on_scard(&self, args: &[Vec<u8>], now: u64) -> Reply {
        match self.live_as::<Set>(&args[1], now) {
            Ok(set) => Reply::Integer(set.map_or(0, |set| set.len() as i64)),
            Err(wrong_type) => wrong_type,
        }
    }

    /// The sets at `keys` for SINTER and company: every key is checked
    /// for its type, absent ones included (Redis 7.0 goes on past them).
    fn sources(&self, keys: &[Vec<u8>], now: u64) -> Result<Vec<Option<&Set>>, Reply> {
        keys.iter().map(|key| self.live_as::<Set>(key, now)).collect()
    }

    /// SMEMBERS, SINTER, SUNION, SDIFF: a set (RESP3 `~`).
    fn on_algebra(&self, keys: &[Vec<u8>], now: u64, algebra: Algebra) -> Reply {
        match self.sources(keys, now) {
            Ok(sets) => set_reply(combine(algebra, &sets)),
            Err(wrong_type) => wrong_type,
        }
    }

    /// SINTERSTORE, SUNIONSTORE, SDIFFSTORE destination key...: the
    /// destination, of any type, is overwritten (its TTL dropped), or
    /// deleted if the result is empty.
    fn on_algebra_store(&mut self, args: &[Vec<u8>], now: u64, algebra: Algebra) -> Reply {
        let result = match self.sources(&args[2..], now) {
            Ok(sets) => Set::from_sorted(combine(algebra, &sets)),
            Err(wrong_type) => return wrong_type,
        };
        let destination = args[1].as_slice();
        self.expire_if_needed(destination, now);
        if result.is_empty() {
            self.remove(destination);
            return Reply::Integer(0);
        }
        let len = result.len() as i64;
        self.put(destination, Value::Set(Box::new(result)), false);
        Reply::Integer(len)
    }

    /// SINTERCARD numkeys key... [LIMIT limit]: LIMIT 0 is no limit.
    fn on_sintercard(&self, args: &[Vec<u8>], now: u64) -> Reply {
        let key_count = match parse_i64(&args[1]) {
            Some(count) if count >= 1 => count,
            _ => return Reply::error("ERR numkeys should be greater than 0"),
        };
        if key_count > args.len() as i64 - 2 {
            return Reply::error("ERR Number of keys can't be greater than number of args");
        }
        let keys_end = 2 + key_count as usize;
        let mut limit = 0;
        let mut options = args[keys_end..].iter();
        while let Some(option) = options.next() {
            match options.as_slice().first() {
                Some(value) if option_is(option, "limit") => match parse_i64(value) {
                    Some(value) if value >= 0 => limit = value as u64,
                    _ => return Reply::error("ERR LIMIT can't be negative"),
                },
                _ => return Reply::error(SYNTAX_ERROR),
            }
            options.next();
        }
        let sets = match self.sources(&args[2..keys_end], now) {
            Ok(sets) => sets,
            Err(wrong_type) => return wrong_type,
        };
        let Some(sets) = sets.into_iter().collect::<Option<Vec<&Set>>>() else {
            return Reply::Integer(0);
        };
        let common = common_members(&sets);
        let count = if limit == 0 { common.count() } else { common.take(limit as usize).count() };
        Reply::Integer(count as i64)
    }

    /// SSCAN key cursor [MATCH pattern] [COUNT n] (see the module docs).
    fn on_sscan(&self, args: &[Vec<u8>], now: u64) -> Reply {
        let Some(cursor) = parse_cursor(&args[2]) else {
            return Reply::error(INVALID_CURSOR);
        };
        let scan_reply = |next: u64, items: Vec<Reply>| {
            Reply::Array(Some(vec![Reply::bulk(next.to_string()), Reply::Array(Some(items))]))
        };
        let set = match self.live_as::<Set>(&args[1], now) {
            Ok(Some(set)) => set,
            Ok(None) => return scan_reply(0, Vec::new()),
            Err(wrong_type) => return wrong_type,
        };
        let options = match ScanOptions::parse(&args[3..], false) {
            Ok(options) => options,
            Err(reply) => return reply,
        };
        let (mut items, mut next, mut visited, mut last) = (Vec::new(), 0, 0, None);
        for member in set.range_from(&resume_at(cursor)) {
            let here = cursor_of(member);
            // Stop only between cursors, and never at cursor 0 (the end).
            if visited >= options.count && last != Some(here) && here != 0 {
                next = here;
                break;
            }
            visited += 1;
            last = Some(here);
            if options.matches(member) {
                items.push(bulk(member));
            }
        }
        scan_reply(next, items)
    }

    /// SRANDMEMBER key [count]: a count below 0 may repeat members.
    fn on_srandmember(&self, args: &[Vec<u8>], now: u64) -> Reply {
        if args.len() > 3 {
            return Reply::error(SYNTAX_ERROR);
        }
        let count = match args.get(2).map(|count| parse_i64(count)) {
            None => None,
            Some(None) => return Reply::error(NOT_AN_INTEGER),
            Some(Some(i64::MIN)) => return Reply::error(COUNT_OUT_OF_RANGE),
            Some(Some(count)) => Some(count),
        };
        let set = match self.live_as::<Set>(&args[1], now) {
            Ok(set) => set,
            Err(wrong_type) => return wrong_type,
        };
        let mut random = self.random(now);
        let Some(count) = count else {
            let member = set.map(|set| set.members_at(&[random.range(0, set.len() as u64) as usize])[0]);
            return Reply::Bulk(member.map(<[u8]>::to_vec));
        };
        let Some(set) = set.filter(|_| count != 0) else {
            return Reply::Array(Some(Vec::new()));
        };
        if count < 0 {
            return random_repeats(set, count.unsigned_abs(), &mut random);
        }
        let count = usize::try_from(count).unwrap_or(usize::MAX);
        if count >= set.len() {
            return array_reply(set.iter());
        }
        array_reply(set.members_at(&distinct_ranks(&mut random, set.len(), count)))
    }

    /// SPOP key [count]: a count of at least the set's size pops it whole
    /// (and deletes the key).
    fn on_spop(&mut self, args: &[Vec<u8>], now: u64) -> Reply {
        if args.len() > 3 {
            return Reply::error(SYNTAX_ERROR);
        }
        let count = match args.get(2).map(|count| parse_i64(count)) {
            None => None,
            Some(Some(count)) if count >= 0 => Some(count as u64),
            Some(_) => return Reply::error(COUNT_NOT_POSITIVE),
        };
        let key = args[1].as_slice();
        let len = match self.for_write_as::<Set>(key, now) {
            Err(wrong_type) => return wrong_type,
            Ok(None) if count.is_some() => return Reply::Set(Vec::new()),
            Ok(None) => return Reply::nil(),
            Ok(Some(set)) => set.len(),
        };
        let mut random = self.random(now);
        let Some(count) = count else {
            let rank = random.range(0, len as u64) as usize;
            let set = self.mut_as::<Set>(key);
            let member = set.members_at(&[rank])[0].to_vec();
            set.remove(&member);
            self.remove_if_empty_set(key);
            return Reply::bulk(member);
        };
        if count == 0 {
            return Reply::Set(Vec::new());
        }
        if count >= len as u64 {
            let Some(Value::Set(set)) = self.remove(key).map(|entry| entry.value) else {
                panic!("SPOP of a set that is not there");
            };
            return set_reply(set.iter());
        }
        let count = count as usize;
        let ranks = distinct_ranks(&mut random, len, count);
        let set = self.mut_as::<Set>(key);
        let popped: Vec<Vec<u8>> = set.members_at(&ranks).into_iter().map(<[u8]>::to_vec).collect();
        if (len - count) * SPOP_MOVE_STRATEGY_MUL > count {
            for member in &popped {
                set.remove(member);
            }
        } else {
            // Redis builds a new set of the members that stay: its
            // encoding starts afresh.
            let popped_set = Set::from_sorted(popped.iter().map(Vec::as_slice));
            let kept = Set::from_sorted(set.iter().filter(|member| !popped_set.contains(member)));
            *set = kept;
        }
        set_reply(popped.iter().map(Vec::as_slice))
    }

    /// SADD: adding nothing new is no modification (WATCH).
    fn on_sadd(&mut self, args: &[Vec<u8>], now: u64) -> Reply {
        let key = args[1].as_slice();
        match self.for_write_as::<Set>(key, now) {
            Err(wrong_type) => return wrong_type,
            Ok(Some(set)) if args[2..].iter().all(|member| set.contains(member)) => return Reply::Integer(0),
            Ok(_) => {}
        }
        let set = self.mut_as::<Set>(key);
        let added = args[2..].iter().filter(|member| set.insert(member)).count();
        Reply::Integer(added as i64)
    }

    /// SREM: removing the last member deletes the key; removing nothing is
    /// no modification (WATCH).
    fn on_srem(&mut self, args: &[Vec<u8>], now: u64) -> Reply {
        let key = args[1].as_slice();
        match self.for_write_as::<Set>(key, now) {
            Err(wrong_type) => return wrong_type,
            Ok(Some(set)) if args[2..].iter().any(|member| set.contains(member)) => {}
            Ok(_) => return Reply::Integer(0),
        }
        let set = self.mut_as::<Set>(key);
        let removed = args[2..].iter().filter(|member| set.remove(member)).count();
        self.remove_if_empty_set(key);
        Reply::Integer(removed as i64)
    }

    /// SMOVE source destination member, in Redis's order of checks: an
    /// absent source answers 0 before the destination's type is looked at.
    /// The destination is modified only if the member is new to it.
    fn on_smove(&mut self, args: &[Vec<u8>], now: u64) -> Reply {
        let (source, destination, member) = (args[1].as_slice(), args[2].as_slice(), args[3].as_slice());
        self.expire_if_needed(source, now);
        self.expire_if_needed(destination, now);
        let in_source = match self.live_as::<Set>(source, now) {
            Err(wrong_type) => return wrong_type,
            Ok(None) => return Reply::Integer(0),
            Ok(Some(set)) => set.contains(member),
        };
        let in_destination = match self.live_as::<Set>(destination, now) {
            Err(wrong_type) => return wrong_type,
            Ok(set) => set.is_some_and(|set| set.contains(member)),
        };
        if source == destination || !in_source {
            return Reply::Integer(i64::from(in_source));
        }
        self.mut_as::<Set>(source).remove(member);
        self.remove_if_empty_set(source);
        if !in_destination {
            self.mut_as::<Set>(destination).insert(member);
        }
        Reply::Integer(1)
    }
}

/// SRANDMEMBER with a negative count: `count` independent picks, in the
/// order drawn, within the reply size limit (see the module docs).
fn random_repeats(set: &Set, count: u64, random: &mut SplitMix64) -> Reply {
    if count > RANDOM_REPLY_BYTES_MAX / RANDOM_MEMBER_COST_BYTES {
        return Reply::error(RANDOM_REPLY_TOO_LARGE);
    }
    let count = count as usize;
    // Ranks drawn, sorted with their place in the reply, so one walk of
    // the chunks finds them all.
    let mut draws: Vec<(usize, usize)> =
        (0..count).map(|place| (random.range(0, set.len() as u64) as usize, place)).collect();
    draws.sort_unstable();
    let ranks: Vec<usize> = draws.iter().map(|(rank, _)| *rank).collect();
    let mut members = vec![&[][..]; count];
    let mut bytes = 0u64;
    for (member, (_, place)) in set.members_at(&ranks).into_iter().zip(&draws) {
        bytes += member.len() as u64 + RANDOM_MEMBER_COST_BYTES;
        if bytes > RANDOM_REPLY_BYTES_MAX {
            return Reply::error(RANDOM_REPLY_TOO_LARGE);
        }
        members[*place] = member;
    }
    array_reply(members)
}

#[cfg(test)]
#[path = "set_tests.rs"]
mod tests;
