//! Sorted sets: the value type and its commands, following Redis 7.0's
//! `t_zset.c` (the order of checks decides which error a bad command gets;
//! scores are read and printed as `score` explains).
//!
//! A sorted set keeps its entries `(score, member)` in order (scores as C
//! compares them, -0 equal to 0; ties by member bytes) in a list of sorted
//! chunks of at most `CHUNK_MAX` (256) entries (`Chunks`), 32 bytes an
//! entry. Inserts and removals find their chunk by binary search and move
//! at most a chunk; a rank (ZRANK, ZRANGE by index, ZREMRANGEBYRANK) adds
//! up the lengths of the chunks before it: n / 256 additions, about 4000
//! for a million members, so no query walks the members themselves.
//! While small (Redis's listpack: at most 128 members of at most 64 bytes)
//! that is all there is, one chunk, and a member's score is found by a
//! scan; past that, once and for good as in Redis ("skiplist"), a B-tree
//! from member to score joins it (the member stored twice: inline in 24
//! bytes up to 22 bytes, else one allocation each). Per member of a large
//! set: 32 bytes in a chunk (chunks are 70-100 % full) plus about 50 in the
//! B-tree; Redis's skiplist node, dict entry, bucket and sds take 100-130
//! with jemalloc's size classes. `ZSet::check` (tests) asserts the two
//! agree.
//!
//! What the encodings change in Redis, reproduced: the listpack stores a
//! whole score as an integer, so -0 reads back as 0 there (never in the
//! skiplist form), and ZSCAN prints such scores as integers (1e17 as
//! "100000000000000000"); results of ZUNIONSTORE and the like are
//! listpacks when small enough, ZRANGESTORE's start as one unless a rank
//! range is longer than 128 (`zrangeResultBeginStore`).
//!
//! Snapshots record the form (a set in the large form is its own value
//! variant) and `ZSet::restored` takes it back, so a set that became large
//! and shrank back under the limits stays large on a restored replica too:
//! its later replies (ZSCAN's shape, -0 kept or not, lex ranges on mixed
//! scores) are every replica's.
//!
//! Range by lex on a set whose scores differ: Redis's listpack answer
//! comes from a linear scan, which the small form reproduces; its
//! skiplist answer depends on the skiplist's random levels, and the large
//! form answers with a binary search instead (the same answer whenever
//! the scores are equal, the case the commands are defined for).
//!
//! Intentional differences from Redis 7.0:
//! - ZSCAN of a large set walks members in byte order, the cursor being the
//!   first 8 bytes of the next member (as HSCAN's, see `hash`); COUNT is
//!   exact. A small set is answered whole, cursor 0, as Redis does.
//! - ZRANDMEMBER picks differ (it draws from `Store::random`); with a
//!   negative count beyond `RANDOM_REPLY_MAX` it answers "ERR value is out
//!   of range" (Redis would build the whole reply).
//! - BZPOPMIN, BZPOPMAX and BZMPOP never block: they answer as inside
//!   MULTI (a nil array when every key is empty), after checking the
//!   timeout as Redis does.
//! - ZUNION, ZINTER and ZDIFF read plain sets through `Set::iter` (a
//!   lookup set is built per plain set input).

use super::args::{c_string, option_is, parse_cursor, parse_i64};
use super::command::{self, KeyPositions, Spec, NO_KEYS, ONE_KEY};
use super::hash::{cursor_of, resume_at};
use super::key::Key;
use super::keys::{ScanOptions, INVALID_CURSOR};
use super::long_double::LongDouble;
use super::score::{format_score, parse_score, parse_score_bound};
use super::set::Set;
use super::strings::{NOT_AN_INTEGER, NOT_A_FLOAT, SYNTAX_ERROR};
use super::{Store, Value, WRONG_TYPE};
use crate::protocol::Reply;
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;

/// Redis's `zset-max-listpack-entries` default.
const LISTPACK_ENTRIES_MAX: usize = 128;
/// Redis's `zset-max-listpack-value` default.
const LISTPACK_VALUE_BYTES_MAX: usize = 64;
/// Entries per chunk of the ordered list; a fuller chunk splits in two.
const CHUNK_MAX: usize = 256;
/// The largest reply ZRANDMEMBER with a negative count builds.
const RANDOM_REPLY_MAX: u64 = 1 << 24;
const NAN_SCORE: &str = "ERR resulting score is not a number (NaN)";
const NOT_A_RANGE: &str = "ERR min or max is not a float";
const NOT_A_LEX_RANGE: &str = "ERR min or max not valid string range item";

/// One member and its score.
#[derive(Clone, Debug)]
struct Entry {
    score: f64,
    member: Key,
}

/// Sorted set order: by score (-0 equals 0, as in C), then member bytes.
fn compare(score: f64, member: &[u8], other_score: f64, other_member: &[u8]) -> Ordering {
    score.partial_cmp(&other_score).expect("scores are never NaN").then_with(|| member.cmp(other_member))
}

impl Entry {
    fn before(&self, score: f64, member: &[u8]) -> bool {
        compare(self.score, &self.member, score, member) == Ordering::Less
    }
}

// ---- the ordered list of entries ----

/// Entries in order, in sorted chunks of 1 to `CHUNK_MAX` entries.
#[derive(Clone, Debug, Default)]
struct Chunks {
    chunks: Vec<Vec<Entry>>,
    len: usize,
}

impl Chunks {
    fn iter(&self) -> impl DoubleEndedIterator<Item = &Entry> {
        self.chunks.iter().flatten()
    }

    /// Entries `start..end` (clamped to the length).
    fn range(&self, start: usize, end: usize) -> impl DoubleEndedIterator<Item = &Entry> {
        let mut slices = Vec::new();
        let mut offset = 0;
        for chunk in &self.chunks {
            if offset >= end {
                break;
            }
            let low = start.saturating_sub(offset).min(chunk.len());
            let high = end.saturating_sub(offset).min(chunk.len());
            if low < high {
                slices.push(&chunk[low..high]);
            }
            offset += chunk.len();
        }
        slices.into_iter().flatten()
    }

    fn get(&self, index: usize) -> Option<&Entry> {
        self.range(index, index + 1).next()
    }

    /// The index of each chunk's first entry, to look many indexes up
    /// (`get_at`) in log time each instead of a walk each.
    fn chunk_starts(&self) -> Vec<usize> {
        let mut start = 0;
        self.chunks
            .iter()
            .map(|chunk| {
                start += chunk.len();
                start - chunk.len()
            })
            .collect()
    }

    /// `get` with `chunk_starts`'s answer.
    fn get_at(&self, starts: &[usize], index: usize) -> Option<&Entry> {
        let chunk = starts.partition_point(|start| *start <= index).checked_sub(1)?;
        self.chunks[chunk].get(index - starts[chunk])
    }

    /// The number of entries before the first for which `before` is false
    /// (binary search: `before` must hold for a prefix).
    fn partition_point(&self, before: impl Fn(&Entry) -> bool) -> usize {
        let chunk =
            self.chunks.partition_point(|chunk| before(chunk.last().expect("chunks are never empty")));
        let skipped: usize = self.chunks[..chunk].iter().map(Vec::len).sum();
        skipped + self.chunks.get(chunk).map_or(0, |entries| entries.partition_point(&before))
    }

    fn insert(&mut self, entry: Entry) {
        self.len += 1;
        if self.chunks.is_empty() {
            self.chunks.push(vec![entry]);
            return;
        }
        let last = self.chunks.len() - 1;
        let index = self
            .chunks
            .partition_point(|chunk| chunk.last().expect("non-empty").before(entry.score, &entry.member))
            .min(last);
        let chunk = &mut self.chunks[index];
        let at = chunk.partition_point(|other| other.before(entry.score, &entry.member));
        if chunk.len() < CHUNK_MAX {
            chunk.insert(at, entry);
            return;
        }
        // Split a full chunk before it grows: no chunk's capacity passes
        // CHUNK_MAX, and both halves give back what they do not use (a
        // set filled in order keeps its chunks full).
        let mut tail = chunk.split_off(CHUNK_MAX / 2);
        chunk.shrink_to_fit();
        tail.shrink_to_fit();
        if at <= CHUNK_MAX / 2 {
            chunk.insert(at, entry);
        } else {
            tail.insert(at - CHUNK_MAX / 2, entry);
        }
        self.chunks.insert(index + 1, tail);
    }

    /// Removes the entry of `member`, whose score is `score`.
    fn remove(&mut self, score: f64, member: &[u8]) {
        let index =
            self.chunks.partition_point(|chunk| chunk.last().expect("non-empty").before(score, member));
        let chunk = &mut self.chunks[index];
        let at = chunk.partition_point(|other| other.before(score, member));
        assert!(chunk[at].member.as_bytes() == member, "removing a member that is not there");
        chunk.remove(at);
        self.len -= 1;
        if chunk.is_empty() {
            self.chunks.remove(index);
        } else if chunk.len() < CHUNK_MAX / 4
            && self
                .chunks
                .get(index + 1)
                .is_some_and(|next| next.len() + self.chunks[index].len() <= CHUNK_MAX)
        {
            let next = self.chunks.remove(index + 1);
            self.chunks[index].extend(next);
        }
    }

    /// Removes entries `start..end` and returns them.
    fn drain(&mut self, start: usize, end: usize) -> Vec<Entry> {
        let mut removed = Vec::new();
        let mut offset = 0;
        for chunk in &mut self.chunks {
            if offset >= end {
                break;
            }
            let length = chunk.len();
            let low = start.saturating_sub(offset).min(length);
            let high = end.saturating_sub(offset).min(length);
            removed.extend(chunk.drain(low..high));
            offset += length;
        }
        self.chunks.retain(|chunk| !chunk.is_empty());
        self.len -= removed.len();
        removed
    }
}

// ---- the value type ----

/// A sorted set's members and scores. Scores are never NaN. A stored
/// sorted set is never empty.
#[derive(Clone, Debug, Default)]
pub(super) struct ZSet {
    order: Chunks,
    /// Member to score, once past the listpack limits (Redis's "skiplist"
    /// encoding); `None` while small.
    index: Option<BTreeMap<Key, f64>>,
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

/// What one ZADD pair did (Redis's `ZADD_OUT_*` flags).
#[derive(Clone, Copy, Debug, Default)]
struct AddOutcome {
    added: bool,
    updated: bool,
    /// Not a no-op: INCR answers `score` only then.
    processed: bool,
    score: f64,
}

/// ZADD's options.
#[derive(Clone, Copy, Debug, Default)]
struct AddFlags {
    nx: bool,
    xx: bool,
    gt: bool,
    lt: bool,
    ch: bool,
    incr: bool,
}

impl ZSet {
    pub(super) fn len(&self) -> usize {
        self.order.len
    }

    pub(super) fn is_empty(&self) -> bool {
        self.order.len == 0
    }

    /// Members and scores in order (by score, then member).
    pub(super) fn iter(&self) -> impl ExactSizeIterator<Item = (&[u8], f64)> {
        ExactIter {
            inner: self.order.iter().map(|entry| (entry.member.as_bytes(), entry.score)),
            left: self.len(),
        }
    }

    /// Sets a member's score (never NaN); returns whether it is new. What
    /// a snapshot is restored with: a -0 makes the set a large one first,
    /// as only that form holds -0 (see the module docs on snapshots).
    pub(super) fn insert(&mut self, member: &[u8], score: f64) -> bool {
        assert!(!score.is_nan(), "a NaN score");
        if self.index.is_none() && score.to_bits() == (-0.0f64).to_bits() {
            self.convert();
        }
        match self.score(member) {
            Some(current) if current.to_bits() == score.to_bits() => false,
            Some(current) => {
                self.update(member, current, score);
                false
            }
            None => {
                self.add_new(member, score);
                true
            }
        }
    }

    /// An empty set to restore a snapshot into, in the form `encoding`
    /// (what `encoding` answered when the snapshot was taken).
    pub(super) fn restored(encoding: &str) -> ZSet {
        ZSet { order: Chunks::default(), index: (encoding == "skiplist").then(BTreeMap::new) }
    }

    /// OBJECT ENCODING's answer.
    pub(super) fn encoding(&self) -> &'static str {
        if self.index.is_some() {
            "skiplist"
        } else {
            "listpack"
        }
    }

    /// Panics unless the chunks are sorted, within bounds and counted
    /// right, and the member index (if any) agrees with them bit for bit.
    #[cfg(test)]
    fn check(&self) {
        assert_eq!(self.order.len, self.order.chunks.iter().map(Vec::len).sum::<usize>(), "length");
        for chunk in &self.order.chunks {
            assert!(!chunk.is_empty() && chunk.capacity() <= CHUNK_MAX, "chunk of {}", chunk.len());
        }
        let entries: Vec<&Entry> = self.order.iter().collect();
        for pair in entries.windows(2) {
            assert!(pair[0].before(pair[1].score, &pair[1].member), "order");
        }
        assert!(entries.iter().all(|entry| !entry.score.is_nan()), "NaN score");
        match &self.index {
            None => {
                assert!(self.len() <= LISTPACK_ENTRIES_MAX, "listpack length");
                assert!(entries.iter().all(|entry| entry.member.len() <= LISTPACK_VALUE_BYTES_MAX), "member");
                assert!(entries.iter().all(|entry| entry.score.to_bits() != (-0.0f64).to_bits()), "-0");
            }
            Some(index) => {
                assert_eq!(index.len(), self.len(), "index length");
                for entry in entries {
                    let score = index.get(entry.member.as_bytes()).expect("indexed");
                    assert_eq!(score.to_bits(), entry.score.to_bits(), "index score");
                }
            }
        }
    }

    fn score(&self, member: &[u8]) -> Option<f64> {
        match &self.index {
            Some(index) => index.get(member).copied(),
            None => {
                self.order.iter().find(|entry| entry.member.as_bytes() == member).map(|entry| entry.score)
            }
        }
    }

    /// Adds a member that is not there, converting to the large form first
    /// if it would break the listpack limits (as `zsetAdd` does).
    fn add_new(&mut self, member: &[u8], score: f64) {
        if self.index.is_none()
            && (self.len() + 1 > LISTPACK_ENTRIES_MAX || member.len() > LISTPACK_VALUE_BYTES_MAX)
        {
            self.convert();
        }
        let score = self.stored(score);
        if let Some(index) = &mut self.index {
            index.insert(Key::new(member), score);
        }
        self.order.insert(Entry { score, member: Key::new(member) });
    }

    /// Turns the small form into the large one (once and for good).
    fn convert(&mut self) {
        if self.index.is_none() {
            self.index = Some(self.order.iter().map(|entry| (entry.member.clone(), entry.score)).collect());
        }
    }

    /// A score as this form stores it: Redis's listpack stores a score
    /// that is a whole number as an integer, so -0 reads back as 0.
    fn stored(&self, score: f64) -> f64 {
        if self.index.is_none() && score == 0.0 {
            0.0
        } else {
            score
        }
    }

    /// An empty set in the form Redis gives a computed result of `length`
    /// members whose longest has `longest_bytes` (ZUNIONSTORE's
    /// `zsetConvertToListpackIfNeeded`).
    fn for_result(length: usize, longest_bytes: usize) -> ZSet {
        let large = length > LISTPACK_ENTRIES_MAX || longest_bytes > LISTPACK_VALUE_BYTES_MAX;
        ZSet { order: Chunks::default(), index: large.then(BTreeMap::new) }
    }

    /// A computed result from its entries in order.
    fn from_sorted(entries: &[(&[u8], f64)]) -> ZSet {
        let longest = entries.iter().map(|(member, _)| member.len()).max().unwrap_or(0);
        let mut result = ZSet::for_result(entries.len(), longest);
        for (member, score) in entries {
            result.add_new(member, *score);
        }
        result
    }

    fn update(&mut self, member: &[u8], current: f64, score: f64) {
        let score = self.stored(score);
        self.order.remove(current, member);
        self.order.insert(Entry { score, member: Key::new(member) });
        if let Some(index) = &mut self.index {
            index.insert(Key::new(member), score);
        }
    }

    fn remove(&mut self, member: &[u8]) -> Option<f64> {
        let score = self.score(member)?;
        self.order.remove(score, member);
        if let Some(index) = &mut self.index {
            index.remove(member);
        }
        Some(score)
    }

    /// Removes entries `start..end` of the order.
    fn remove_range(&mut self, start: usize, end: usize) -> Vec<Entry> {
        let removed = self.order.drain(start, end);
        if let Some(index) = &mut self.index {
            for entry in &removed {
                index.remove(entry.member.as_bytes());
            }
        }
        removed
    }

    /// 0-based rank from the lowest score.
    fn rank(&self, member: &[u8]) -> Option<usize> {
        let score = self.score(member)?;
        Some(self.order.partition_point(|entry| entry.before(score, member)))
    }

    /// `zsetAdd`: one pair of ZADD. `Err` when INCR makes a NaN.
    fn add(&mut self, score: f64, member: &[u8], flags: AddFlags) -> Result<AddOutcome, ()> {
        let nop = AddOutcome::default();
        let Some(current) = self.score(member) else {
            if flags.xx {
                return Ok(nop);
            }
            self.add_new(member, score);
            return Ok(AddOutcome { added: true, updated: false, processed: true, score });
        };
        if flags.nx {
            return Ok(nop);
        }
        let score = if flags.incr { score + current } else { score };
        if score.is_nan() {
            return Err(());
        }
        if (flags.lt && score >= current) || (flags.gt && score <= current) {
            return Ok(nop);
        }
        // -0 and 0 are equal: the stored score keeps its sign then.
        let updated = score != current;
        if updated {
            self.update(member, current, score);
        }
        Ok(AddOutcome { added: false, updated, processed: true, score })
    }

    /// Removes and returns the lowest (or highest) entry.
    fn pop(&mut self, highest: bool) -> Option<(Vec<u8>, f64)> {
        let index = if highest { self.len().checked_sub(1)? } else { 0 };
        let entry = self.remove_range(index, index + 1).pop()?;
        Some((entry.member.to_vec(), entry.score))
    }

    /// Index of the first entry with a score above the range's minimum.
    fn first_in_score_range(&self, range: &ScoreRange) -> Option<usize> {
        let index = self.order.partition_point(|entry| !range.above_min(entry.score));
        self.order.get(index).filter(|entry| range.below_max(entry.score)).map(|_| index)
    }

    /// Index of the last entry with a score below the range's maximum.
    fn last_in_score_range(&self, range: &ScoreRange) -> Option<usize> {
        let index = self.order.partition_point(|entry| range.below_max(entry.score)).checked_sub(1)?;
        self.order.get(index).filter(|entry| range.above_min(entry.score)).map(|_| index)
    }

    /// `zzlIsInLexRange`: the last entry is above the minimum and the first
    /// below the maximum.
    fn may_have_lex_range(&self, range: &LexRange) -> bool {
        match (self.order.iter().next(), self.order.iter().next_back()) {
            (Some(first), Some(last)) => range.above_min(&last.member) && range.below_max(&first.member),
            _ => false,
        }
    }

    /// `zzlFirstInLexRange`: the first entry above the minimum, if it is
    /// below the maximum (a scan in the small form, see the module docs).
    fn first_in_lex_range(&self, range: &LexRange) -> Option<usize> {
        if !self.may_have_lex_range(range) {
            return None;
        }
        let index = match self.index {
            None => self.order.iter().position(|entry| range.above_min(&entry.member))?,
            Some(_) => self.order.partition_point(|entry| !range.above_min(&entry.member)),
        };
        self.order.get(index).filter(|entry| range.below_max(&entry.member)).map(|_| index)
    }

    /// `zzlLastInLexRange`: the last entry below the maximum, if it is
    /// above the minimum.
    fn last_in_lex_range(&self, range: &LexRange) -> Option<usize> {
        if !self.may_have_lex_range(range) {
            return None;
        }
        let index = match self.index {
            None => {
                self.len() - 1 - self.order.iter().rev().position(|entry| range.below_max(&entry.member))?
            }
            Some(_) => self.order.partition_point(|entry| range.below_max(&entry.member)).checked_sub(1)?,
        };
        self.order.get(index).filter(|entry| range.above_min(&entry.member)).map(|_| index)
    }

    /// The entries of a range walk: from `start` forward (or backward if
    /// `reverse`), `offset` skipped, then while `in_range`, at most `limit`
    /// (negative: no limit). A negative offset yields nothing, as Redis's
    /// `while (ln && offset--)` does.
    fn walk<'a: 'f, 'f>(
        &'a self,
        start: Option<usize>,
        reverse: bool,
        offset: i64,
        limit: i64,
        in_range: impl Fn(&Entry) -> bool + 'f,
    ) -> Box<dyn Iterator<Item = &'a Entry> + 'f> {
        let Some(start) = start.filter(|_| offset >= 0) else {
            return Box::new(std::iter::empty());
        };
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let offset = usize::try_from(offset).unwrap_or(usize::MAX);
        if reverse {
            Box::new(
                self.order
                    .range(0, start + 1)
                    .rev()
                    .skip(offset)
                    .take_while(move |e| in_range(e))
                    .take(limit),
            )
        } else {
            Box::new(
                self.order.range(start, self.len()).skip(offset).take_while(move |e| in_range(e)).take(limit),
            )
        }
    }

    /// Entries in a score range, in order.
    fn score_range(&self, range: &ScoreRange, reverse: bool, offset: i64, limit: i64) -> Vec<&Entry> {
        if reverse {
            let start = self.last_in_score_range(range);
            self.walk(start, true, offset, limit, |entry| range.above_min(entry.score)).collect()
        } else {
            let start = self.first_in_score_range(range);
            self.walk(start, false, offset, limit, |entry| range.below_max(entry.score)).collect()
        }
    }

    /// Entries in a lex range, in order.
    fn lex_range(&self, range: &LexRange, reverse: bool, offset: i64, limit: i64) -> Vec<&Entry> {
        if reverse {
            let start = self.last_in_lex_range(range);
            self.walk(start, true, offset, limit, |entry| range.above_min(&entry.member)).collect()
        } else {
            let start = self.first_in_lex_range(range);
            self.walk(start, false, offset, limit, |entry| range.below_max(&entry.member)).collect()
        }
    }

    /// Redis's index sanitizing of ZRANGE and ZREMRANGEBYRANK: `start..=end`
    /// as a range of indexes from the lowest, or `None` if empty.
    fn rank_range(&self, start: i64, end: i64) -> Option<(usize, usize)> {
        let length = self.len() as i64;
        let start = if start < 0 { length + start } else { start }.max(0);
        let end = if end < 0 { length + end } else { end };
        if start > end || start >= length {
            return None;
        }
        Some((start as usize, end.min(length - 1) as usize))
    }

    /// Members from `member` on, in member order (ZSCAN of the large form).
    fn members_from<'a>(&'a self, member: &'a [u8]) -> impl Iterator<Item = (&'a [u8], f64)> + 'a {
        let range = (Bound::Included(member), Bound::Unbounded);
        self.index.iter().flat_map(move |index| {
            index.range::<[u8], _>(range).map(|(member, score)| (member.as_bytes(), *score))
        })
    }
}

/// An iterator that knows its length (`Chunks::iter` flattens chunks).
struct ExactIter<I> {
    inner: I,
    left: usize,
}

impl<I: Iterator> Iterator for ExactIter<I> {
    type Item = I::Item;

    fn next(&mut self) -> Option<I::Item> {
        let item = self.inner.next()?;
        self.left -= 1;
        Some(item)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl<I: Iterator> ExactSizeIterator for ExactIter<I> {}

// ---- ranges ----

/// A score interval (`zrangespec`).
#[derive(Clone, Copy, Debug)]
struct ScoreRange {
    min: f64,
    min_exclusive: bool,
    max: f64,
    max_exclusive: bool,
}

impl ScoreRange {
    /// `zslParseRange`.
    fn parse(min: &[u8], max: &[u8]) -> Result<ScoreRange, Reply> {
        match (parse_score_bound(min), parse_score_bound(max)) {
            (Some((min, min_exclusive)), Some((max, max_exclusive))) => {
                Ok(ScoreRange { min, min_exclusive, max, max_exclusive })
            }
            _ => Err(Reply::error(NOT_A_RANGE)),
        }
    }

    fn above_min(&self, score: f64) -> bool {
        if self.min_exclusive {
            score > self.min
        } else {
            score >= self.min
        }
    }

    fn below_max(&self, score: f64) -> bool {
        if self.max_exclusive {
            score < self.max
        } else {
            score <= self.max
        }
    }
}

/// One end of a lex interval: "-" and "+" are below and above every member.
#[derive(Clone, Debug)]
enum LexBound {
    Lowest,
    Highest,
    Inclusive(Vec<u8>),
    Exclusive(Vec<u8>),
}

impl LexBound {
    /// `zslParseLexRangeItem`.
    fn parse(arg: &[u8]) -> Option<LexBound> {
        match arg.first() {
            Some(b'+') if c_string(arg).len() == 1 => Some(LexBound::Highest),
            Some(b'-') if c_string(arg).len() == 1 => Some(LexBound::Lowest),
            Some(b'(') => Some(LexBound::Exclusive(arg[1..].to_vec())),
            Some(b'[') => Some(LexBound::Inclusive(arg[1..].to_vec())),
            _ => None,
        }
    }
}

#[derive(Clone, Debug)]
struct LexRange {
    min: LexBound,
    max: LexBound,
}

impl LexRange {
    fn parse(min: &[u8], max: &[u8]) -> Result<LexRange, Reply> {
        match (LexBound::parse(min), LexBound::parse(max)) {
            (Some(min), Some(max)) => Ok(LexRange { min, max }),
            _ => Err(Reply::error(NOT_A_LEX_RANGE)),
        }
    }

    fn above_min(&self, member: &[u8]) -> bool {
        match &self.min {
            LexBound::Lowest => true,
            LexBound::Highest => false,
            LexBound::Inclusive(bound) => member >= bound.as_slice(),
            LexBound::Exclusive(bound) => member > bound.as_slice(),
        }
    }

    fn below_max(&self, member: &[u8]) -> bool {
        match &self.max {
            LexBound::Lowest => false,
            LexBound::Highest => true,
            LexBound::Inclusive(bound) => member <= bound.as_slice(),
            LexBound::Exclusive(bound) => member < bound.as_slice(),
        }
    }
}

// ---- replies and argument parsing ----

fn double(score: f64) -> Reply {
    Reply::Double(format_score(score))
}

/// Members, or member-score pairs (RESP3: an array of pairs).
fn members_reply<'a>(entries: impl Iterator<Item = (&'a [u8], f64)>, with_scores: bool) -> Reply {
    if with_scores {
        Reply::Pairs(entries.map(|(member, score)| (Reply::bulk(member.to_vec()), double(score))).collect())
    } else {
        Reply::Array(Some(entries.map(|(member, _)| Reply::bulk(member.to_vec())).collect()))
    }
}

/// `getLongFromObjectOrReply` with Redis's message, or `message`.
fn parse_long(arg: &[u8], message: Option<&str>) -> Result<i64, Reply> {
    parse_i64(arg)
        .ok_or_else(|| Reply::error(message.map_or(NOT_AN_INTEGER.to_string(), |m| format!("ERR {m}"))))
}

/// `getRangeLongFromObjectOrReply` with a message for both failures.
fn parse_long_at_least(arg: &[u8], min: i64, message: &str) -> Result<i64, Reply> {
    match parse_i64(arg) {
        Some(value) if value >= min => Ok(value),
        _ => Err(Reply::error(format!("ERR {message}"))),
    }
}

/// `getTimeoutFromObjectOrReply` in seconds: a `long double`, times 1000
/// (rounded to its 64-bit significand), converted to `long long` as
/// x86-64 does (toward zero; out of range: the minimum, so "negative").
fn check_timeout(arg: &[u8]) -> Result<(), Reply> {
    let negative_error = || Err(Reply::error("ERR timeout is negative"));
    let (negative, mantissa, exponent) = match LongDouble::parse(arg) {
        None | Some(LongDouble::NotANumber) => {
            return Err(Reply::error("ERR timeout is not a float or out of range"))
        }
        Some(LongDouble::Infinite { .. }) => return negative_error(),
        Some(LongDouble::Finite { negative, mantissa, exponent }) => (negative, mantissa, exponent),
    };
    let mut product = u128::from(mantissa) * 1000;
    let mut exponent = i64::from(exponent);
    let bits = 128 - product.leading_zeros() as i64;
    if bits > 64 {
        let shift = (bits - 64) as u32;
        let (quotient, remainder, half) =
            (product >> shift, product & ((1 << shift) - 1), 1u128 << (shift - 1));
        product = quotient + u128::from(remainder > half || (remainder == half && quotient & 1 == 1));
        exponent += i64::from(shift);
    }
    let milliseconds = if product == 0 {
        0
    } else if exponent >= 0 {
        if 128 - product.leading_zeros() as i64 + exponent > 63 {
            return negative_error();
        }
        product << exponent
    } else if exponent <= -128 {
        0
    } else {
        product >> -exponent
    };
    if milliseconds >= 1 << 63 || (negative && milliseconds >= 1) {
        return negative_error();
    }
    Ok(())
}

/// A score as Redis's listpack holds it, which ZSCAN answers as is: a
/// whole number within +-2^62 as an integer (`double2ll`), else `%.17g`.
fn listpack_score_text(score: f64) -> String {
    const LIMIT: f64 = 4_611_686_018_427_387_904.0;
    if (-LIMIT..=LIMIT).contains(&score) && score.trunc() == score {
        (score as i64).to_string()
    } else {
        format_score(score)
    }
}

// ---- the command table ----

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Read {
    Card,
    Count,
    LexCount,
    Score,
    MScore,
    Rank,
    RevRank,
    Range,
    RangeByScore,
    RevRangeByScore,
    RangeByLex,
    RevRangeByLex,
    RevRange,
    Union,
    Inter,
    Diff,
    InterCard,
    RandMember,
    Scan,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Write {
    Add,
    IncrBy,
    Rem,
    RangeStore,
    RemRangeByRank,
    RemRangeByScore,
    RemRangeByLex,
    PopMin,
    PopMax,
    MPop,
    BPopMin,
    BPopMax,
    BMPop,
    UnionStore,
    InterStore,
    DiffStore,
}

const fn read(name: &'static str, arity: i32, command: Read) -> Spec {
    command::read(name, arity, command::ReadCommand::SortedSets(command))
}

const fn write(name: &'static str, arity: i32, command: Write) -> Spec {
    command::write(name, arity, command::WriteCommand::SortedSets(command))
}

/// The sorted set commands, arities as `COMMAND INFO` reports them on Redis 7.0.
pub(super) const TABLE: &[Spec] = &[
    write("zadd", -4, Write::Add),
    write("zincrby", 4, Write::IncrBy),
    write("zrem", -3, Write::Rem),
    read("zcard", 2, Read::Card),
    read("zcount", 4, Read::Count),
    read("zlexcount", 4, Read::LexCount),
    read("zscore", 3, Read::Score),
    read("zmscore", -3, Read::MScore),
    read("zrank", 3, Read::Rank),
    read("zrevrank", 3, Read::RevRank),
    read("zrange", -4, Read::Range),
    write("zrangestore", -5, Write::RangeStore),
    read("zrangebyscore", -4, Read::RangeByScore),
    read("zrevrangebyscore", -4, Read::RevRangeByScore),
    read("zrangebylex", -4, Read::RangeByLex),
    read("zrevrangebylex", -4, Read::RevRangeByLex),
    read("zrevrange", -4, Read::RevRange),
    write("zremrangebyrank", 4, Write::RemRangeByRank),
    write("zremrangebyscore", 4, Write::RemRangeByScore),
    write("zremrangebylex", 4, Write::RemRangeByLex),
    write("zpopmin", -2, Write::PopMin),
    write("zpopmax", -2, Write::PopMax),
    write("zmpop", -4, Write::MPop),
    write("bzpopmin", -3, Write::BPopMin),
    write("bzpopmax", -3, Write::BPopMax),
    write("bzmpop", -5, Write::BMPop),
    read("zunion", -3, Read::Union),
    read("zinter", -3, Read::Inter),
    read("zdiff", -3, Read::Diff),
    write("zunionstore", -4, Write::UnionStore),
    write("zinterstore", -4, Write::InterStore),
    write("zdiffstore", -4, Write::DiffStore),
    read("zintercard", -3, Read::InterCard),
    read("zrandmember", -2, Read::RandMember),
    read("zscan", -3, Read::Scan),
];

/// `(first, last, step)` of the key arguments, as Redis 7.0's COMMAND INFO gives them.
pub(super) fn read_keys(command: Read) -> KeyPositions {
    match command {
        Read::Union | Read::Inter | Read::Diff | Read::InterCard => NO_KEYS,
        _ => ONE_KEY,
    }
}

pub(super) fn write_keys(command: Write) -> KeyPositions {
    match command {
        Write::RangeStore => (1, 2, 1),
        Write::MPop | Write::BMPop => NO_KEYS,
        Write::BPopMin | Write::BPopMax => (1, -2, 1),
        _ => ONE_KEY,
    }
}

/// How ZRANGE's arguments select entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RangeKind {
    /// ZRANGE and ZRANGESTORE: chosen by BYSCORE or BYLEX, else by rank.
    Auto,
    Rank,
    Score,
    Lex,
}

/// What the set algebra computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Algebra {
    Union,
    Inter,
    Diff,
}

/// What a set algebra command answers: the members, the count stored,
/// or the cardinality (ZINTERCARD).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Output {
    Reply,
    Store,
    Cardinality,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Aggregate {
    Sum,
    Min,
    Max,
}

impl Aggregate {
    /// `zunionInterAggregate`: a NaN sum is 0.
    fn apply(self, target: f64, value: f64) -> f64 {
        match self {
            Aggregate::Sum => {
                let sum = target + value;
                if sum.is_nan() {
                    0.0
                } else {
                    sum
                }
            }
            Aggregate::Min => {
                if value < target {
                    value
                } else {
                    target
                }
            }
            Aggregate::Max => {
                if value > target {
                    value
                } else {
                    target
                }
            }
        }
    }
}

/// An input of the set algebra: a sorted set, or a plain set (score 1).
enum Source<'a> {
    Missing,
    Sorted(&'a ZSet),
    Plain(BTreeSet<&'a [u8]>),
}

impl Source<'_> {
    fn len(&self) -> usize {
        match self {
            Source::Missing => 0,
            Source::Sorted(zset) => zset.len(),
            Source::Plain(members) => members.len(),
        }
    }

    fn score(&self, member: &[u8]) -> Option<f64> {
        match self {
            Source::Missing => None,
            Source::Sorted(zset) => zset.score(member),
            Source::Plain(members) => members.contains(member).then_some(1.0),
        }
    }

    fn entries(&self) -> Box<dyn Iterator<Item = (&[u8], f64)> + '_> {
        match self {
            Source::Missing => Box::new(std::iter::empty()),
            Source::Sorted(zset) => Box::new(zset.iter()),
            Source::Plain(members) => Box::new(members.iter().map(|member| (*member, 1.0))),
        }
    }
}

/// A parsed ZUNION/ZINTER/ZDIFF (and their STORE forms, ZINTERCARD).
struct AlgebraRequest<'a> {
    sources: Vec<(Source<'a>, f64)>,
    aggregate: Aggregate,
    with_scores: bool,
    limit: u64,
}

/// A parsed ZRANGE family command.
struct RangeRequest {
    kind: RangeKind,
    reverse: bool,
    with_scores: bool,
    offset: i64,
    limit: i64,
    rank: (i64, i64),
    score: Option<ScoreRange>,
    lex: Option<LexRange>,
}

impl Store {
    pub(super) fn zset_read(&self, command: Read, args: &[Vec<u8>], now: u64) -> Reply {
        match command {
            Read::Card => self.on_zcard(args, now),
            Read::Count => self.on_zcount(args, now),
            Read::LexCount => self.on_zlexcount(args, now),
            Read::Score => self.on_zscore(args, now),
            Read::MScore => self.on_zmscore(args, now),
            Read::Rank => self.on_zrank(args, now, false),
            Read::RevRank => self.on_zrank(args, now, true),
            Read::Range => self.on_zrange(args, now, RangeKind::Auto, None),
            Read::RangeByScore => self.on_zrange(args, now, RangeKind::Score, Some(false)),
            Read::RevRangeByScore => self.on_zrange(args, now, RangeKind::Score, Some(true)),
            Read::RangeByLex => self.on_zrange(args, now, RangeKind::Lex, Some(false)),
            Read::RevRangeByLex => self.on_zrange(args, now, RangeKind::Lex, Some(true)),
            Read::RevRange => self.on_zrange(args, now, RangeKind::Rank, Some(true)),
            Read::Union => self.on_zalgebra(args, now, Algebra::Union, "zunion"),
            Read::Inter => self.on_zalgebra(args, now, Algebra::Inter, "zinter"),
            Read::Diff => self.on_zalgebra(args, now, Algebra::Diff, "zdiff"),
            Read::InterCard => self.on_zintercard(args, now),
            Read::RandMember => self.on_zrandmember(args, now),
            Read::Scan => self.on_zscan(args, now),
        }
    }

    pub(super) fn zset_write(&mut self, command: Write, name: &str, args: &[Vec<u8>], now: u64) -> Reply {
        match command {
            Write::Add => self.on_zadd(args, now, false),
            Write::IncrBy => self.on_zadd(args, now, true),
            Write::Rem => self.on_zrem(args, now),
            Write::RangeStore => self.on_zrangestore(args, now),
            Write::RemRangeByRank => self.on_zremrange(args, now, RangeKind::Rank),
            Write::RemRangeByScore => self.on_zremrange(args, now, RangeKind::Score),
            Write::RemRangeByLex => self.on_zremrange(args, now, RangeKind::Lex),
            Write::PopMin => self.on_zpop(args, now, false),
            Write::PopMax => self.on_zpop(args, now, true),
            Write::MPop => self.on_zmpop(args, now, 1, false),
            Write::BPopMin => self.on_bzpop(args, now, false),
            Write::BPopMax => self.on_bzpop(args, now, true),
            Write::BMPop => self.on_zmpop(args, now, 2, true),
            Write::UnionStore => self.on_zalgebra_store(args, now, Algebra::Union, name),
            Write::InterStore => self.on_zalgebra_store(args, now, Algebra::Inter, name),
            Write::DiffStore => self.on_zalgebra_store(args, now, Algebra::Diff, name),
        }
    }

    // ---- accessors ----

    /// The sorted set at `key` to change, without counting it as a
    /// modification (WATCH): callers call `touch_zset` if they changed it.
    /// Only after `for_write_as` answered `Ok(Some(_))`.
    fn zset_entry(&mut self, key: &[u8]) -> &mut ZSet {
        match self.entries.get_mut(key).map(|entry| &mut entry.value) {
            Some(Value::ZSet(zset)) => zset,
            _ => panic!("zset_entry on a key that is not a sorted set"),
        }
    }

    /// Counts a change of the sorted set at `key` (WATCH), deleting the key
    /// if the change emptied it.
    fn touch_zset(&mut self, key: &[u8]) {
        if self.zset_entry(key).is_empty() {
            self.remove(key);
        } else {
            self.value_mut(key);
        }
    }

    /// Stores `zset` at `key` as SET would (dropping any TTL), or deletes
    /// the key if it is empty: the end of every *STORE command.
    fn store_zset(&mut self, key: &[u8], zset: ZSet, now: u64) -> Reply {
        let length = zset.len() as i64;
        if zset.is_empty() {
            self.remove(key);
        } else {
            self.expire_if_needed(key, now);
            self.put(key, Value::ZSet(Box::new(zset)), false);
        }
        Reply::Integer(length)
    }

    // ---- reads ----

    fn on_zcard(&self, args: &[Vec<u8>], now: u64) -> Reply {
        match self.live_as::<ZSet>(&args[1], now) {
            Ok(zset) => Reply::Integer(zset.map_or(0, |zset| zset.len() as i64)),
            Err(wrong_type) => wrong_type,
        }
    }

    fn on_zscore(&self, args: &[Vec<u8>], now: u64) -> Reply {
        match self.live_as::<ZSet>(&args[1], now) {
            Ok(zset) => zset.and_then(|zset| zset.score(&args[2])).map_or(Reply::Null, double),
            Err(wrong_type) => wrong_type,
        }
    }

    fn on_zmscore(&self, args: &[Vec<u8>], now: u64) -> Reply {
        let zset = match self.live_as::<ZSet>(&args[1], now) {
            Ok(zset) => zset,
            Err(wrong_type) => return wrong_type,
        };
        let score = |member: &Vec<u8>| zset.and_then(|zset| zset.score(member)).map_or(Reply::Null, double);
        Reply::Array(Some(args[2..].iter().map(score).collect()))
    }

    fn on_zrank(&self, args: &[Vec<u8>], now: u64, reverse: bool) -> Reply {
        let zset = match self.live_as::<ZSet>(&args[1], now) {
            Ok(Some(zset)) => zset,
            Ok(None) => return Reply::Null,
            Err(wrong_type) => return wrong_type,
        };
        match zset.rank(&args[2]) {
            Some(rank) if reverse => Reply::Integer((zset.len() - 1 - rank) as i64),
            Some(rank) => Reply::Integer(rank as i64),
            None => Reply::Null,
        }
    }

    fn on_zcount(&self, args: &[Vec<u8>], now: u64) -> Reply {
        let range = match ScoreRange::parse(&args[2], &args[3]) {
            Ok(range) => range,
            Err(reply) => return reply,
        };
        match self.live_as::<ZSet>(&args[1], now) {
            Ok(zset) => {
                Reply::Integer(zset.map_or(0, |zset| zset.score_range(&range, false, 0, -1).len() as i64))
            }
            Err(wrong_type) => wrong_type,
        }
    }

    fn on_zlexcount(&self, args: &[Vec<u8>], now: u64) -> Reply {
        let range = match LexRange::parse(&args[2], &args[3]) {
            Ok(range) => range,
            Err(reply) => return reply,
        };
        match self.live_as::<ZSet>(&args[1], now) {
            Ok(zset) => {
                Reply::Integer(zset.map_or(0, |zset| zset.lex_range(&range, false, 0, -1).len() as i64))
            }
            Err(wrong_type) => wrong_type,
        }
    }

    /// Parses the options and the range of a ZRANGE family command whose
    /// source key is `args[source]` (`zrangeGenericCommand`, steps 1 and 2).
    fn parse_range(
        args: &[Vec<u8>],
        source: usize,
        store: bool,
        kind: RangeKind,
        direction: Option<bool>,
    ) -> Result<RangeRequest, Reply> {
        let mut request = RangeRequest {
            kind,
            reverse: direction.unwrap_or(false),
            with_scores: false,
            offset: 0,
            limit: -1,
            rank: (0, 0),
            score: None,
            lex: None,
        };
        let mut reverse_given = direction.is_some();
        let mut at = source + 3;
        while at < args.len() {
            let option = &args[at];
            let left = args.len() - at - 1;
            if !store && option_is(option, "withscores") {
                request.with_scores = true;
            } else if option_is(option, "limit") && left >= 2 {
                request.offset = parse_long(&args[at + 1], None)?;
                request.limit = parse_long(&args[at + 2], None)?;
                at += 2;
            } else if !reverse_given && option_is(option, "rev") {
                request.reverse = true;
                reverse_given = true;
            } else if request.kind == RangeKind::Auto && option_is(option, "bylex") {
                request.kind = RangeKind::Lex;
            } else if request.kind == RangeKind::Auto && option_is(option, "byscore") {
                request.kind = RangeKind::Score;
            } else {
                return Err(Reply::error(SYNTAX_ERROR));
            }
            at += 1;
        }
        if request.kind == RangeKind::Auto {
            request.kind = RangeKind::Rank;
        }
        if request.kind == RangeKind::Rank && request.limit != -1 {
            return Err(Reply::error(
                "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX",
            ));
        }
        if request.with_scores && request.kind == RangeKind::Lex {
            return Err(Reply::error("ERR syntax error, WITHSCORES not supported in combination with BYLEX"));
        }
        let (mut min, mut max) = (&args[source + 1], &args[source + 2]);
        if request.reverse && request.kind != RangeKind::Rank {
            std::mem::swap(&mut min, &mut max);
        }
        match request.kind {
            RangeKind::Auto | RangeKind::Rank => {
                request.rank = (parse_long(min, None)?, parse_long(max, None)?)
            }
            RangeKind::Score => request.score = Some(ScoreRange::parse(min, max)?),
            RangeKind::Lex => request.lex = Some(LexRange::parse(min, max)?),
        }
        Ok(request)
    }

    /// The entries a parsed ZRANGE selects, in reply order.
    fn range_entries<'a>(zset: &'a ZSet, request: &RangeRequest) -> Vec<&'a Entry> {
        match request.kind {
            RangeKind::Auto | RangeKind::Rank => {
                let Some((start, end)) = zset.rank_range(request.rank.0, request.rank.1) else {
                    return Vec::new();
                };
                if request.reverse {
                    let length = zset.len();
                    zset.order.range(length - 1 - end, length - start).rev().collect()
                } else {
                    zset.order.range(start, end + 1).collect()
                }
            }
            RangeKind::Score => {
                let range = request.score.as_ref().expect("parsed");
                zset.score_range(range, request.reverse, request.offset, request.limit)
            }
            RangeKind::Lex => {
                let range = request.lex.as_ref().expect("parsed");
                zset.lex_range(range, request.reverse, request.offset, request.limit)
            }
        }
    }

    /// ZRANGE, ZREVRANGE, Z[REV]RANGEBYSCORE, Z[REV]RANGEBYLEX. `direction`:
    /// fixed by the command (`Some(reverse)`) or left to REV.
    fn on_zrange(&self, args: &[Vec<u8>], now: u64, kind: RangeKind, direction: Option<bool>) -> Reply {
        let request = match Store::parse_range(args, 1, false, kind, direction) {
            Ok(request) => request,
            Err(reply) => return reply,
        };
        let zset = match self.live_as::<ZSet>(&args[1], now) {
            Ok(Some(zset)) => zset,
            Ok(None) => return Reply::Array(Some(Vec::new())),
            Err(wrong_type) => return wrong_type,
        };
        let entries = Store::range_entries(zset, &request);
        members_reply(
            entries.into_iter().map(|entry| (entry.member.as_bytes(), entry.score)),
            request.with_scores,
        )
    }

    /// ZRANDMEMBER key [count [WITHSCORES]], drawing from `Store::random`.
    fn on_zrandmember(&self, args: &[Vec<u8>], now: u64) -> Reply {
        let mut rng = self.random(now);
        if args.len() == 2 {
            return match self.live_as::<ZSet>(&args[1], now) {
                Ok(Some(zset)) => {
                    let index = rng.range(0, zset.len() as u64) as usize;
                    Reply::bulk(zset.order.get(index).expect("in range").member.to_vec())
                }
                Ok(None) => Reply::Null,
                Err(wrong_type) => wrong_type,
            };
        }
        let count = match parse_i64(&args[2]) {
            None => return Reply::error(NOT_AN_INTEGER),
            Some(i64::MIN) => return Reply::error(
                "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807",
            ),
            Some(count) => count,
        };
        if args.len() > 4 || (args.len() == 4 && !option_is(&args[3], "withscores")) {
            return Reply::error(SYNTAX_ERROR);
        }
        let with_scores = args.len() == 4;
        if with_scores && !(-(i64::MAX / 2)..=i64::MAX / 2).contains(&count) {
            return Reply::error("ERR value is out of range");
        }
        let zset = match self.live_as::<ZSet>(&args[1], now) {
            Ok(Some(zset)) => zset,
            Ok(None) => return Reply::Array(Some(Vec::new())),
            Err(wrong_type) => return wrong_type,
        };
        let size = zset.len();
        let indexes: Vec<usize> = if count == 0 {
            Vec::new()
        } else if count < 0 || count == 1 {
            let count = count.unsigned_abs();
            if count > RANDOM_REPLY_MAX {
                return Reply::error("ERR value is out of range");
            }
            (0..count).map(|_| rng.range(0, size as u64) as usize).collect()
        } else if count as u64 >= size as u64 {
            (0..size).collect()
        } else {
            distinct_indexes(&mut rng, size, count as usize)
        };
        let starts = zset.order.chunk_starts();
        let entries = indexes.into_iter().map(|index| {
            let entry = zset.order.get_at(&starts, index).expect("in range");
            (entry.member.as_bytes(), entry.score)
        });
        members_reply(entries, with_scores)
    }

    /// ZSCAN key cursor [MATCH pattern] [COUNT n] (see the module docs).
    fn on_zscan(&self, args: &[Vec<u8>], now: u64) -> Reply {
        let Some(cursor) = parse_cursor(&args[2]) else {
            return Reply::error(INVALID_CURSOR);
        };
        let scan_reply = |next: u64, items: Vec<Reply>| {
            Reply::Array(Some(vec![Reply::bulk(next.to_string()), Reply::Array(Some(items))]))
        };
        let zset = match self.live_as::<ZSet>(&args[1], now) {
            Ok(Some(zset)) => zset,
            Ok(None) => return scan_reply(0, Vec::new()),
            Err(wrong_type) => return wrong_type,
        };
        let options = match ScanOptions::parse(&args[3..], false) {
            Ok(options) => options,
            Err(reply) => return reply,
        };
        let mut items = Vec::new();
        let small = zset.index.is_none();
        let mut push = |member: &[u8], score: f64| {
            if options.matches(member) {
                items.push(Reply::bulk(member.to_vec()));
                items.push(Reply::bulk(if small { listpack_score_text(score) } else { format_score(score) }));
            }
        };
        if small {
            zset.iter().for_each(|(member, score)| push(member, score));
            return scan_reply(0, items);
        }
        let (mut next, mut visited, mut last) = (0, 0, None);
        for (member, score) in zset.members_from(&resume_at(cursor)) {
            let here = cursor_of(member);
            // Stop only between cursors, and never at cursor 0 (the end).
            if visited >= options.count && last != Some(here) && here != 0 {
                next = here;
                break;
            }
            visited += 1;
            last = Some(here);
            push(member, score);
        }
        scan_reply(next, items)
    }

    // ---- the set algebra ----

    /// Reads the inputs and options of ZUNION/ZINTER/ZDIFF (`numkeys` at
    /// `args[numkeys_at]`), their STORE forms and ZINTERCARD (`output`),
    /// in `zunionInterDiffGenericCommand`'s order.
    fn parse_algebra<'a>(
        &'a self,
        args: &[Vec<u8>],
        now: u64,
        numkeys_at: usize,
        algebra: Algebra,
        name: &str,
        output: Output,
    ) -> Result<AlgebraRequest<'a>, Reply> {
        let count = parse_long(&args[numkeys_at], None)?;
        if count < 1 {
            return Err(Reply::error(format!("ERR at least 1 input key is needed for '{name}' command")));
        }
        if count > (args.len() - numkeys_at - 1) as i64 {
            return Err(Reply::error(SYNTAX_ERROR));
        }
        let count = count as usize;
        let mut sources = Vec::with_capacity(count);
        for key in &args[numkeys_at + 1..numkeys_at + 1 + count] {
            let source = match self.live(key, now).map(|entry| &entry.value) {
                None => Source::Missing,
                Some(Value::ZSet(zset)) => Source::Sorted(zset),
                Some(Value::Set(set)) => Source::Plain(plain_members(set)),
                Some(_) => return Err(Reply::error(WRONG_TYPE)),
            };
            sources.push((source, 1.0));
        }
        let (store, cardinality) = (output == Output::Store, output == Output::Cardinality);
        let mut request = AlgebraRequest { sources, aggregate: Aggregate::Sum, with_scores: false, limit: 0 };
        let mut at = numkeys_at + 1 + count;
        while at < args.len() {
            let remaining = args.len() - at;
            let option = &args[at];
            let weighable = algebra != Algebra::Diff && !cardinality;
            if weighable && remaining > count && option_is(option, "weights") {
                for (index, weight) in args[at + 1..at + 1 + count].iter().enumerate() {
                    let Some(weight) = parse_score(weight) else {
                        return Err(Reply::error("ERR weight value is not a float"));
                    };
                    request.sources[index].1 = weight;
                }
                at += 1 + count;
            } else if weighable && remaining >= 2 && option_is(option, "aggregate") {
                let value = &args[at + 1];
                request.aggregate = if option_is(value, "sum") {
                    Aggregate::Sum
                } else if option_is(value, "min") {
                    Aggregate::Min
                } else if option_is(value, "max") {
                    Aggregate::Max
                } else {
                    return Err(Reply::error(SYNTAX_ERROR));
                };
                at += 2;
            } else if !store && !cardinality && option_is(option, "withscores") {
                request.with_scores = true;
                at += 1;
            } else if cardinality && remaining >= 2 && option_is(option, "limit") {
                match parse_i64(&args[at + 1]) {
                    Some(limit) if limit >= 0 => request.limit = limit as u64,
                    _ => return Err(Reply::error("ERR LIMIT can't be negative")),
                }
                at += 2;
            } else {
                return Err(Reply::error(SYNTAX_ERROR));
            }
        }
        if algebra != Algebra::Diff {
            // Redis sorts by cardinality (glibc's qsort: a stable merge sort).
            request.sources.sort_by_key(|(source, _)| source.len());
        }
        Ok(request)
    }

    fn on_zalgebra(&self, args: &[Vec<u8>], now: u64, algebra: Algebra, name: &str) -> Reply {
        match self.parse_algebra(args, now, 1, algebra, name, Output::Reply) {
            Ok(request) => {
                let result = compute_algebra(&request, algebra);
                members_reply(result.into_iter(), request.with_scores)
            }
            Err(reply) => reply,
        }
    }

    fn on_zintercard(&self, args: &[Vec<u8>], now: u64) -> Reply {
        let request =
            match self.parse_algebra(args, now, 1, Algebra::Inter, "zintercard", Output::Cardinality) {
                Ok(request) => request,
                Err(reply) => return reply,
            };
        let (first, _) = &request.sources[0];
        let rest = &request.sources[1..];
        let mut found: u64 = 0;
        for (member, _) in first.entries() {
            if rest.iter().all(|(source, _)| source.score(member).is_some()) {
                found += 1;
                if request.limit != 0 && found >= request.limit {
                    break;
                }
            }
        }
        Reply::Integer(found as i64)
    }

    fn on_zalgebra_store(&mut self, args: &[Vec<u8>], now: u64, algebra: Algebra, name: &str) -> Reply {
        let result = match self.parse_algebra(args, now, 2, algebra, name, Output::Store) {
            Ok(request) => ZSet::from_sorted(&compute_algebra(&request, algebra)),
            Err(reply) => return reply,
        };
        self.store_zset(&args[1], result, now)
    }

    // ---- writes ----

    /// ZADD and ZINCRBY (`zaddGenericCommand`; ZINCRBY is ZADD INCR whose
    /// option parsing starts at its increment, as in Redis).
    fn on_zadd(&mut self, args: &[Vec<u8>], now: u64, incr_command: bool) -> Reply {
        let mut flags = AddFlags { incr: incr_command, ..AddFlags::default() };
        let mut at = 2;
        while at < args.len() {
            let option = &args[at];
            match () {
                _ if option_is(option, "nx") => flags.nx = true,
                _ if option_is(option, "xx") => flags.xx = true,
                _ if option_is(option, "ch") => flags.ch = true,
                _ if option_is(option, "incr") => flags.incr = true,
                _ if option_is(option, "gt") => flags.gt = true,
                _ if option_is(option, "lt") => flags.lt = true,
                _ => break,
            }
            at += 1;
        }
        let pairs = &args[at..];
        if pairs.is_empty() || pairs.len() % 2 == 1 {
            return Reply::error(SYNTAX_ERROR);
        }
        if flags.nx && flags.xx {
            return Reply::error("ERR XX and NX options at the same time are not compatible");
        }
        if [flags.gt, flags.lt, flags.nx].iter().filter(|flag| **flag).count() > 1 {
            return Reply::error("ERR GT, LT, and/or NX options at the same time are not compatible");
        }
        if flags.incr && pairs.len() > 2 {
            return Reply::error("ERR INCR option supports a single increment-element pair");
        }
        let mut scores = Vec::with_capacity(pairs.len() / 2);
        for pair in pairs.chunks(2) {
            match parse_score(&pair[0]) {
                Some(score) => scores.push(score),
                None => return Reply::error(NOT_A_FLOAT),
            }
        }
        let key = args[1].as_slice();
        match self.for_write_as::<ZSet>(key, now) {
            Err(wrong_type) => return wrong_type,
            Ok(None) if flags.xx => return if flags.incr { Reply::Null } else { Reply::Integer(0) },
            Ok(None) => self.put(key, Value::ZSet(Box::default()), false),
            Ok(Some(_)) => {}
        }
        let zset = self.zset_entry(key);
        let (mut added, mut updated, mut processed, mut score) = (0, 0, 0, 0.0);
        let mut failed = false;
        for (pair, new_score) in pairs.chunks(2).zip(scores) {
            let Ok(outcome) = zset.add(new_score, &pair[1], flags) else {
                failed = true;
                break;
            };
            added += i64::from(outcome.added);
            updated += i64::from(outcome.updated);
            processed += i64::from(outcome.processed);
            score = outcome.score;
        }
        if added + updated > 0 || zset.is_empty() {
            self.touch_zset(key);
        }
        if failed {
            Reply::error(NAN_SCORE)
        } else if flags.incr {
            if processed > 0 {
                double(score)
            } else {
                Reply::Null
            }
        } else {
            Reply::Integer(if flags.ch { added + updated } else { added })
        }
    }

    fn on_zrem(&mut self, args: &[Vec<u8>], now: u64) -> Reply {
        let key = args[1].as_slice();
        match self.for_write_as::<ZSet>(key, now) {
            Err(wrong_type) => return wrong_type,
            Ok(Some(zset)) if args[2..].iter().any(|member| zset.score(member).is_some()) => {}
            Ok(_) => return Reply::Integer(0),
        }
        let zset = self.zset_entry(key);
        let mut deleted = 0;
        for member in &args[2..] {
            deleted += i64::from(zset.remove(member).is_some());
            if zset.is_empty() {
                break;
            }
        }
        self.touch_zset(key);
        Reply::Integer(deleted)
    }

    /// ZRANGESTORE dst src min max [BYSCORE|BYLEX] [REV] [LIMIT offset count].
    fn on_zrangestore(&mut self, args: &[Vec<u8>], now: u64) -> Reply {
        let request = match Store::parse_range(args, 2, true, RangeKind::Auto, None) {
            Ok(request) => request,
            Err(reply) => return reply,
        };
        let result = match self.live_as::<ZSet>(&args[2], now) {
            Err(wrong_type) => return wrong_type,
            Ok(None) => ZSet::default(),
            Ok(Some(zset)) => {
                // Redis's `zrangeResultBeginStore`: a listpack unless a rank
                // range is known to be longer, converted as entries come.
                let entries = Store::range_entries(zset, &request);
                let large = request.kind == RangeKind::Rank && entries.len() > LISTPACK_ENTRIES_MAX;
                let mut result = ZSet { order: Chunks::default(), index: large.then(BTreeMap::new) };
                for entry in entries {
                    result.add_new(&entry.member, entry.score);
                }
                result
            }
        };
        self.store_zset(&args[1], result, now)
    }

    /// ZREMRANGEBYRANK, ZREMRANGEBYSCORE, ZREMRANGEBYLEX.
    fn on_zremrange(&mut self, args: &[Vec<u8>], now: u64, kind: RangeKind) -> Reply {
        let (mut rank, mut score, mut lex) = ((0, 0), None, None);
        let parsed = match kind {
            RangeKind::Score => ScoreRange::parse(&args[2], &args[3]).map(|range| score = Some(range)),
            RangeKind::Lex => LexRange::parse(&args[2], &args[3]).map(|range| lex = Some(range)),
            _ => parse_long(&args[2], None)
                .and_then(|start| parse_long(&args[3], None).map(|end| rank = (start, end))),
        };
        if let Err(reply) = parsed {
            return reply;
        }
        let key = args[1].as_slice();
        let zset = match self.for_write_as::<ZSet>(key, now) {
            Err(wrong_type) => return wrong_type,
            Ok(None) => return Reply::Integer(0),
            Ok(Some(zset)) => zset,
        };
        let span = match (score, lex) {
            (Some(range), _) => zset.first_in_score_range(&range).map(|start| {
                (start, zset.walk(Some(start), false, 0, -1, |e| range.below_max(e.score)).count())
            }),
            (_, Some(range)) => zset.first_in_lex_range(&range).map(|start| {
                (start, zset.walk(Some(start), false, 0, -1, |e| range.below_max(&e.member)).count())
            }),
            _ => zset.rank_range(rank.0, rank.1).map(|(start, end)| (start, end + 1 - start)),
        };
        let Some((start, count)) = span.filter(|(_, count)| *count > 0) else {
            return Reply::Integer(0);
        };
        self.zset_entry(key).remove_range(start, start + count);
        self.touch_zset(key);
        Reply::Integer(count as i64)
    }

    /// ZPOPMIN/ZPOPMAX key [count].
    fn on_zpop(&mut self, args: &[Vec<u8>], now: u64, highest: bool) -> Reply {
        if args.len() > 3 {
            return Reply::error(SYNTAX_ERROR);
        }
        let count = match args.get(2) {
            None => None,
            Some(arg) => match parse_long_at_least(arg, 0, "value is out of range, must be positive") {
                Ok(count) => Some(count),
                Err(reply) => return reply,
            },
        };
        let key = args[1].as_slice();
        match self.for_write_as::<ZSet>(key, now) {
            Err(wrong_type) => return wrong_type,
            Ok(None) => return Reply::Array(Some(Vec::new())),
            Ok(Some(_)) if count == Some(0) => return Reply::Array(Some(Vec::new())),
            Ok(Some(_)) => {}
        }
        let popped = self.pop_entries(key, highest, count.unwrap_or(1));
        let pairs = popped.into_iter().map(|(member, score)| (Reply::bulk(member), double(score)));
        if count.is_some() {
            Reply::Pairs(pairs.collect())
        } else {
            Reply::Array(Some(pairs.flat_map(|(member, score)| [member, score]).collect()))
        }
    }

    /// Pops up to `count` entries from the (existing) sorted set at `key`.
    fn pop_entries(&mut self, key: &[u8], highest: bool, count: i64) -> Vec<(Vec<u8>, f64)> {
        let zset = self.zset_entry(key);
        let count = usize::try_from(count).unwrap_or(usize::MAX).min(zset.len());
        let popped = (0..count).filter_map(|_| zset.pop(highest)).collect();
        self.touch_zset(key);
        popped
    }

    /// The first of `keys` holding a sorted set, WRONGTYPE for another type
    /// met before it (`genericZpopCommand`'s candidate search).
    fn first_zset_key<'k>(&mut self, keys: &'k [Vec<u8>], now: u64) -> Result<Option<&'k [u8]>, Reply> {
        for key in keys {
            if self.for_write_as::<ZSet>(key, now)?.is_some() {
                return Ok(Some(key));
            }
        }
        Ok(None)
    }

    /// BZPOPMIN/BZPOPMAX key... timeout, as inside MULTI: never blocks.
    fn on_bzpop(&mut self, args: &[Vec<u8>], now: u64, highest: bool) -> Reply {
        if let Err(reply) = check_timeout(&args[args.len() - 1]) {
            return reply;
        }
        let key = match self.first_zset_key(&args[1..args.len() - 1], now) {
            Err(wrong_type) => return wrong_type,
            Ok(None) => return Reply::Array(None),
            Ok(Some(key)) => key,
        };
        let mut reply = vec![Reply::bulk(key.to_vec())];
        for (member, score) in self.pop_entries(key, highest, 1) {
            reply.push(Reply::bulk(member));
            reply.push(double(score));
        }
        Reply::Array(Some(reply))
    }

    /// ZMPOP numkeys key... MIN|MAX [COUNT count] (`numkeys_at` 1) and
    /// BZMPOP timeout numkeys ... (`numkeys_at` 2, never blocking).
    fn on_zmpop(&mut self, args: &[Vec<u8>], now: u64, numkeys_at: usize, blocking: bool) -> Reply {
        let count = match parse_long_at_least(&args[numkeys_at], 1, "numkeys should be greater than 0") {
            Ok(count) => count as u64,
            Err(reply) => return reply,
        };
        let where_at = (numkeys_at as u64).saturating_add(count).saturating_add(1);
        if where_at >= args.len() as u64 {
            return Reply::error(SYNTAX_ERROR);
        }
        let where_at = where_at as usize;
        let highest = if option_is(&args[where_at], "min") {
            false
        } else if option_is(&args[where_at], "max") {
            true
        } else {
            return Reply::error(SYNTAX_ERROR);
        };
        let mut pop_count = None;
        let mut at = where_at + 1;
        while at < args.len() {
            if pop_count.is_none() && option_is(&args[at], "count") && at + 1 < args.len() {
                match parse_long_at_least(&args[at + 1], 1, "count should be greater than 0") {
                    Ok(value) => pop_count = Some(value),
                    Err(reply) => return reply,
                }
                at += 2;
            } else {
                return Reply::error(SYNTAX_ERROR);
            }
        }
        if blocking {
            if let Err(reply) = check_timeout(&args[1]) {
                return reply;
            }
        }
        let key = match self.first_zset_key(&args[numkeys_at + 1..where_at], now) {
            Err(wrong_type) => return wrong_type,
            Ok(None) => return Reply::Array(None),
            Ok(Some(key)) => key,
        };
        let popped = self.pop_entries(key, highest, pop_count.unwrap_or(1));
        let pairs = popped
            .into_iter()
            .map(|(member, score)| Reply::Array(Some(vec![Reply::bulk(member), double(score)])))
            .collect();
        Reply::Array(Some(vec![Reply::bulk(key.to_vec()), Reply::Array(Some(pairs))]))
    }
}

/// A plain set's members, to look them up.
fn plain_members(set: &Set) -> BTreeSet<&[u8]> {
    set.iter().collect()
}

/// The result of a parsed set algebra command, as Redis computes it
/// (`zunionInterDiffGenericCommand`): sources in the order parsed (by
/// cardinality but for ZDIFF), weights multiplied in, a NaN product 0; in
/// order (the skiplist Redis replies from: -0 is kept).
fn compute_algebra<'a>(request: &'a AlgebraRequest, algebra: Algebra) -> Vec<(&'a [u8], f64)> {
    let sources = &request.sources;
    let weighted = |score: f64, weight: f64| {
        let value = score * weight;
        if value.is_nan() {
            0.0
        } else {
            value
        }
    };
    let mut entries: Vec<(&[u8], f64)> = Vec::new();
    match algebra {
        Algebra::Inter => {
            let (first, first_weight) = &sources[0];
            for (member, score) in first.entries() {
                let mut total = weighted(score, *first_weight);
                let mut everywhere = true;
                for (source, weight) in &sources[1..] {
                    match source.score(member) {
                        Some(other) => total = request.aggregate.apply(total, other * weight),
                        None => {
                            everywhere = false;
                            break;
                        }
                    }
                }
                if everywhere {
                    entries.push((member, total));
                }
            }
        }
        Algebra::Union => {
            let mut totals: BTreeMap<&[u8], f64> = BTreeMap::new();
            for (source, weight) in sources {
                for (member, score) in source.entries() {
                    let value = weighted(score, *weight);
                    totals
                        .entry(member)
                        .and_modify(|total| *total = request.aggregate.apply(*total, value))
                        .or_insert(value);
                }
            }
            entries.extend(totals);
        }
        Algebra::Diff => {
            let (first, _) = &sources[0];
            for (member, score) in first.entries() {
                if sources[1..].iter().all(|(source, _)| source.score(member).is_none()) {
                    entries.push((member, score));
                }
            }
        }
    }
    entries.sort_by(|a, b| compare(a.1, a.0, b.1, b.0));
    entries
}

/// `count` distinct indexes below `size` (`count < size`), in draw order.
fn distinct_indexes(rng: &mut crate::raft::SplitMix64, size: usize, count: usize) -> Vec<usize> {
    if count * 2 <= size {
        let mut picked = BTreeSet::new();
        let mut indexes = Vec::with_capacity(count);
        while indexes.len() < count {
            let index = rng.range(0, size as u64) as usize;
            if picked.insert(index) {
                indexes.push(index);
            }
        }
        indexes
    } else {
        let mut indexes: Vec<usize> = (0..size).collect();
        for i in 0..count {
            let j = rng.range(i as u64, size as u64) as usize;
            indexes.swap(i, j);
        }
        indexes.truncate(count);
        indexes
    }
}

#[cfg(test)]
#[path = "zset_tests.rs"]
mod tests;
