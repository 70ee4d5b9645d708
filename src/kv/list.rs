//! Lists: the value type and its commands, following Redis 7.0's
//! `t_list.c` (the order of checks decides which error a bad command gets).
//!
//! A list is a deque of chunks of packed elements, Redis's quicklist idea:
//! each element is its length (LEB128), its bytes, and its length again
//! with the LEB128 bytes reversed, so a chunk reads from either end; a
//! chunk holds up to `CHUNK_BYTES_MAX` bytes (an element longer than that
//! has a chunk of its own). A short element costs its length plus 2 bytes,
//! as in Redis's listpack, and nothing per element besides. Pushes and pops
//! at either end touch one chunk; an index is found by walking the chunks'
//! counts from the nearer end, then the elements of one chunk (Redis's
//! `quicklistIndex` walks its nodes the same way). A chunk that grows past
//! its size by LINSERT or LSET is split in two; after LREM, neighbouring
//! chunks that fit in one are merged. OBJECT ENCODING's name is
//! "quicklist", as Redis 7.0 names every list.
//!
//! A stored list is never empty: the write that removes its last element
//! deletes the key (`Store::check_invariants` checks it).
//!
//! The blocking forms (BLPOP, BRPOP, BLMOVE, BRPOPLPUSH, BLMPOP) answer
//! here as Redis 7.0 answers them inside MULTI: they never block, and
//! answer nil (a null array for BLPOP, BRPOP and BLMPOP, a null bulk for
//! BLMOVE and BRPOPLPUSH) when every list is missing; any other reply
//! (an element, or an error: bad arguments, bad timeout, WRONGTYPE) is
//! final. Their timeout is validated as Redis does, before the keys are
//! looked at but after the other arguments (`parse_timeout`: milliseconds,
//! 0 for ever); a node that blocks on them waits that long and applies
//! the command again, or LPOP/RPOP/LMOVE/LMPOP, once a list has elements.
//!
//! Intentional differences from redis-server 7.0: none known. Timeouts are
//! computed as Redis does on x86-64 (`long double` seconds times 1000,
//! truncated; out of `long long`'s range is "negative"), whatever the
//! architecture.

use super::args::{option_is, parse_i64};
use super::command::{self, KeyPositions, Spec, NO_KEYS, ONE_KEY};
use super::command::{ReadCommand, WriteCommand};
use super::long_double::LongDouble;
use super::strings::{NOT_AN_INTEGER, SYNTAX_ERROR};
use super::Store;
use crate::protocol::Reply;
use std::collections::{vec_deque, VecDeque};
use std::fmt;
use std::hash::{Hash, Hasher};

/// Bytes of packed elements a chunk holds before the next chunk is begun
/// (Redis's default `list-max-listpack-size -2` is 8 KiB nodes; smaller
/// chunks make the memmove of a push at the head cheaper).
const CHUNK_BYTES_MAX: usize = 4096;

/// A list's elements, head first. A stored list is never empty.
#[derive(Clone, Default)]
pub(super) struct List {
    chunks: VecDeque<Chunk>,
    /// Elements in all chunks.
    len: usize,
}

/// Which end of a list: Redis's LEFT (the head) or RIGHT (the tail).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum End {
    Head,
    Tail,
}

impl End {
    /// LEFT or RIGHT, case-insensitive (C string compare); anything else
    /// is a syntax error.
    fn parse(arg: &[u8]) -> Result<End, Reply> {
        if option_is(arg, "left") {
            Ok(End::Head)
        } else if option_is(arg, "right") {
            Ok(End::Tail)
        } else {
            Err(Reply::error(SYNTAX_ERROR))
        }
    }
}

impl List {
    pub(super) fn len(&self) -> usize {
        self.len
    }

    pub(super) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Elements from head to tail (`rev()` for tail to head).
    pub(super) fn iter(&self) -> Iter<'_> {
        Iter { inner: self.chunks.iter().flat_map(Chunk::iter as ChunkIterFn), remaining: self.len }
    }

    /// Elements from `index` (< len) to the tail.
    fn iter_from(&self, index: usize) -> impl Iterator<Item = &[u8]> {
        let (chunk_index, within) = self.locate(index);
        let chunk = &self.chunks[chunk_index];
        let first = chunk.iter_from(chunk.offset_of(within));
        first.chain(self.chunks.range(chunk_index + 1..).flat_map(Chunk::iter as ChunkIterFn))
    }

    pub(super) fn push_back(&mut self, element: &[u8]) {
        let size = encoded_size(element.len());
        match self.chunks.back_mut() {
            Some(last) if last.bytes.len() + size <= CHUNK_BYTES_MAX => last.append(element),
            _ => self.add_chunk(End::Tail, element),
        }
        self.len += 1;
    }

    fn push_front(&mut self, element: &[u8]) {
        let size = encoded_size(element.len());
        match self.chunks.front_mut() {
            Some(first) if first.bytes.len() + size <= CHUNK_BYTES_MAX => first.insert_at(0, element),
            _ => self.add_chunk(End::Head, element),
        }
        self.len += 1;
    }

    /// Begins a chunk at `end` holding `element`. The first chunk is
    /// allocated alone: most lists are small.
    fn add_chunk(&mut self, end: End, element: &[u8]) {
        let mut chunk = Chunk::default();
        chunk.append(element);
        if self.chunks.capacity() == 0 {
            self.chunks.reserve_exact(1);
        }
        match end {
            End::Head => self.chunks.push_front(chunk),
            End::Tail => self.chunks.push_back(chunk),
        }
    }

    fn push(&mut self, end: End, element: &[u8]) {
        match end {
            End::Head => self.push_front(element),
            End::Tail => self.push_back(element),
        }
    }

    /// Removes and returns the element at `end`.
    fn pop(&mut self, end: End) -> Option<Vec<u8>> {
        let element = match end {
            End::Head => self.iter().next()?.to_vec(),
            End::Tail => self.iter().next_back()?.to_vec(),
        };
        self.remove_at_end(end, 1);
        Some(element)
    }

    /// Removes up to `count` elements from `end`; returns them in the
    /// order they were removed.
    fn pop_many(&mut self, end: End, count: usize) -> Vec<Vec<u8>> {
        let count = count.min(self.len);
        let popped: Vec<Vec<u8>> = match end {
            End::Head => self.iter().take(count).map(<[u8]>::to_vec).collect(),
            End::Tail => self.iter().rev().take(count).map(<[u8]>::to_vec).collect(),
        };
        self.remove_at_end(end, count);
        popped
    }

    /// Drops `count` (<= len) elements at `end`: whole chunks, then part
    /// of one.
    fn remove_at_end(&mut self, end: End, count: usize) {
        assert!(count <= self.len, "removing {count} of {} elements", self.len);
        let mut left = count;
        while left > 0 {
            let chunk = match end {
                End::Head => self.chunks.front_mut(),
                End::Tail => self.chunks.back_mut(),
            }
            .expect("elements left, so chunks left");
            if chunk.count <= left {
                left -= chunk.count;
                match end {
                    End::Head => self.chunks.pop_front(),
                    End::Tail => self.chunks.pop_back(),
                };
                continue;
            }
            match end {
                End::Head => {
                    let offset = chunk.offset_of(left);
                    chunk.bytes.drain(..offset);
                }
                End::Tail => {
                    let offset = chunk.offset_of(chunk.count - left);
                    chunk.bytes.truncate(offset);
                }
            }
            chunk.count -= left;
            chunk.shrink_if_sparse();
            left = 0;
        }
        self.len -= count;
    }

    /// Drops `head` elements at the head and `tail` at the tail (LTRIM).
    fn trim(&mut self, head: usize, tail: usize) {
        self.remove_at_end(End::Head, head.min(self.len));
        self.remove_at_end(End::Tail, tail.min(self.len));
    }

    /// The chunk holding element `index` (< len) and the element's index
    /// in it, walking from the nearer end.
    fn locate(&self, index: usize) -> (usize, usize) {
        assert!(index < self.len, "index {index} of {} elements", self.len);
        if index < self.len / 2 {
            let mut within = index;
            for (chunk_index, chunk) in self.chunks.iter().enumerate() {
                if within < chunk.count {
                    return (chunk_index, within);
                }
                within -= chunk.count;
            }
        } else {
            let mut from_tail = self.len - index;
            for (chunk_index, chunk) in self.chunks.iter().enumerate().rev() {
                if from_tail <= chunk.count {
                    return (chunk_index, chunk.count - from_tail);
                }
                from_tail -= chunk.count;
            }
        }
        unreachable!("chunk counts add up to len")
    }

    fn get(&self, index: usize) -> Option<&[u8]> {
        if index >= self.len {
            return None;
        }
        let (chunk_index, within) = self.locate(index);
        let chunk = &self.chunks[chunk_index];
        chunk.iter_from(chunk.offset_of(within)).next()
    }

    /// Replaces element `index` (< len).
    fn set(&mut self, index: usize, element: &[u8]) {
        let (chunk_index, within) = self.locate(index);
        let chunk = &mut self.chunks[chunk_index];
        let start = chunk.offset_of(within);
        let end = chunk.end_of(start);
        chunk.bytes.splice(start..end, encode(element));
        self.split_if_oversized(chunk_index);
    }

    /// Inserts `element` so that it becomes element `index` (<= len).
    fn insert(&mut self, index: usize, element: &[u8]) {
        if index == 0 {
            return self.push_front(element);
        }
        if index == self.len {
            return self.push_back(element);
        }
        let (chunk_index, within) = self.locate(index);
        let chunk = &mut self.chunks[chunk_index];
        let offset = chunk.offset_of(within);
        chunk.insert_at(offset, element);
        self.len += 1;
        self.split_if_oversized(chunk_index);
    }

    /// Splits a chunk past `CHUNK_BYTES_MAX` that holds more than one
    /// element at the element boundary nearest its middle, and the halves
    /// again until each fits or holds one element.
    fn split_if_oversized(&mut self, chunk_index: usize) {
        let chunk = &mut self.chunks[chunk_index];
        if chunk.bytes.len() <= CHUNK_BYTES_MAX || chunk.count < 2 {
            return;
        }
        let (mut offset, mut first_count) = (0, 0);
        while first_count < chunk.count - 1 && (first_count == 0 || offset < chunk.bytes.len() / 2) {
            offset = chunk.end_of(offset);
            first_count += 1;
        }
        let second = Chunk { bytes: chunk.bytes.split_off(offset), count: chunk.count - first_count };
        chunk.count = first_count;
        chunk.bytes.shrink_to_fit();
        self.chunks.insert(chunk_index + 1, second);
        self.split_if_oversized(chunk_index + 1);
        self.split_if_oversized(chunk_index);
    }

    /// Removes up to `limit` elements equal to `element`, the first ones
    /// seen from `from`; returns how many.
    fn remove_matching(&mut self, element: &[u8], limit: usize, from: End) -> usize {
        let mut removed = 0;
        let chunk_count = self.chunks.len();
        for step in 0..chunk_count {
            if removed == limit {
                break;
            }
            let chunk_index = match from {
                End::Head => step,
                End::Tail => chunk_count - 1 - step,
            };
            removed += self.chunks[chunk_index].remove_matching(element, limit - removed, from);
        }
        if removed > 0 {
            self.len -= removed;
            self.chunks.retain(|chunk| chunk.count > 0);
            self.merge_small_chunks();
        }
        removed
    }

    /// Merges each chunk into the one before it when both fit in one.
    fn merge_small_chunks(&mut self) {
        let mut merged: VecDeque<Chunk> = VecDeque::with_capacity(self.chunks.len());
        for chunk in self.chunks.drain(..) {
            if let Some(last) = merged.back_mut() {
                if last.bytes.len() + chunk.bytes.len() <= CHUNK_BYTES_MAX {
                    last.bytes.extend_from_slice(&chunk.bytes);
                    last.count += chunk.count;
                    continue;
                }
            }
            merged.push_back(chunk);
        }
        self.chunks = merged;
    }

    /// OBJECT ENCODING's answer.
    pub(super) fn encoding(&self) -> &'static str {
        "quicklist"
    }

    /// Panics unless every chunk is non-empty, its count is the number of
    /// elements packed in it, it fits in `CHUNK_BYTES_MAX` unless it holds
    /// one element, and the counts add up to `len`.
    #[cfg(test)]
    pub(super) fn check(&self) {
        let mut total = 0;
        for chunk in &self.chunks {
            assert!(chunk.count > 0, "an empty chunk");
            assert_eq!(chunk.iter().count(), chunk.count, "chunk count");
            assert_eq!(chunk.iter().rev().count(), chunk.count, "chunk count read backwards");
            assert!(chunk.count == 1 || chunk.bytes.len() <= CHUNK_BYTES_MAX, "an oversized chunk");
            total += chunk.count;
        }
        assert_eq!(total, self.len, "chunk counts add up to len");
    }

    /// Heap bytes held: chunk buffers and the deque of chunks.
    #[cfg(test)]
    pub(super) fn heap_bytes(&self) -> usize {
        let buffers: usize = self.chunks.iter().map(|chunk| chunk.bytes.capacity()).sum();
        buffers + self.chunks.capacity() * std::mem::size_of::<Chunk>()
    }
}

/// Lists are equal when their elements are, however they are chunked.
impl PartialEq for List {
    fn eq(&self, other: &List) -> bool {
        self.len == other.len && self.iter().eq(other.iter())
    }
}

impl Eq for List {}

impl Hash for List {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.len.hash(state);
        for element in self.iter() {
            element.hash(state);
        }
    }
}

impl fmt::Debug for List {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter().map(String::from_utf8_lossy)).finish()
    }
}

type ChunkIterFn = for<'a> fn(&'a Chunk) -> ChunkIter<'a>;

/// A list's elements in order, either way.
pub(super) struct Iter<'a> {
    inner: std::iter::FlatMap<vec_deque::Iter<'a, Chunk>, ChunkIter<'a>, ChunkIterFn>,
    remaining: usize,
}

impl<'a> Iterator for Iter<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let element = self.inner.next()?;
        self.remaining -= 1;
        Some(element)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl DoubleEndedIterator for Iter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        let element = self.inner.next_back()?;
        self.remaining -= 1;
        Some(element)
    }
}

impl ExactSizeIterator for Iter<'_> {}

/// Packed elements: each is `length` (LEB128), the bytes, and `length`
/// again with its LEB128 bytes in reverse order, so that the chunk reads
/// from its end as from its start.
#[derive(Clone, Default)]
struct Chunk {
    bytes: Vec<u8>,
    count: usize,
}

impl Chunk {
    fn iter(&self) -> ChunkIter<'_> {
        self.iter_from(0)
    }

    /// From the element starting at byte `offset` to the chunk's end.
    fn iter_from(&self, offset: usize) -> ChunkIter<'_> {
        ChunkIter { spans: Spans { bytes: &self.bytes, front: offset, back: self.bytes.len() } }
    }

    /// Where element `index` (<= count; count: the end) starts, walking
    /// from the nearer end.
    fn offset_of(&self, index: usize) -> usize {
        if index <= self.count / 2 {
            (0..index).fold(0, |offset, _| self.end_of(offset))
        } else {
            (index..self.count).fold(self.bytes.len(), |end, _| start_before(&self.bytes, end))
        }
    }

    /// Where the element starting at `offset` ends.
    fn end_of(&self, offset: usize) -> usize {
        let (length, header) = read_length(&self.bytes, offset);
        offset + 2 * header + length
    }

    fn append(&mut self, element: &[u8]) {
        let (length, header) = length_bytes(element.len());
        self.bytes.extend_from_slice(&length[..header]);
        self.bytes.extend_from_slice(element);
        self.bytes.extend(length[..header].iter().rev());
        self.count += 1;
    }

    fn insert_at(&mut self, offset: usize, element: &[u8]) {
        self.bytes.splice(offset..offset, encode(element));
        self.count += 1;
    }

    /// Removes up to `limit` elements equal to `element`, the first ones
    /// seen from `from`; returns how many.
    fn remove_matching(&mut self, element: &[u8], limit: usize, from: End) -> usize {
        let mut all = Spans { bytes: &self.bytes, front: 0, back: self.bytes.len() };
        let mut removed = Vec::new();
        while removed.len() < limit {
            let span = match from {
                End::Head => all.next(),
                End::Tail => all.next_back(),
            };
            let Some(span) = span else { break };
            if span.element(&self.bytes) == element {
                removed.push(span);
            }
        }
        if removed.is_empty() {
            return 0;
        }
        if from == End::Tail {
            removed.reverse();
        }
        let removed_bytes: usize = removed.iter().map(|span| span.end - span.start).sum();
        let mut kept = Vec::with_capacity(self.bytes.len() - removed_bytes);
        let mut at = 0;
        for span in &removed {
            kept.extend_from_slice(&self.bytes[at..span.start]);
            at = span.end;
        }
        kept.extend_from_slice(&self.bytes[at..]);
        self.bytes = kept;
        self.count -= removed.len();
        removed.len()
    }

    /// Gives back memory after removals left the buffer mostly unused.
    fn shrink_if_sparse(&mut self) {
        if self.bytes.capacity() > 2 * self.bytes.len() + 64 {
            self.bytes.shrink_to_fit();
        }
    }
}

/// Where one packed element lies in its chunk.
#[derive(Clone, Copy, Debug)]
struct Span {
    start: usize,
    /// Bytes of each of its two lengths.
    header: usize,
    length: usize,
    end: usize,
}

impl Span {
    fn element<'a>(&self, bytes: &'a [u8]) -> &'a [u8] {
        &bytes[self.start + self.header..][..self.length]
    }
}

/// The spans of a chunk's elements between two byte offsets, either way.
struct Spans<'a> {
    bytes: &'a [u8],
    front: usize,
    back: usize,
}

impl Iterator for Spans<'_> {
    type Item = Span;

    fn next(&mut self) -> Option<Span> {
        if self.front >= self.back {
            return None;
        }
        let (length, header) = read_length(self.bytes, self.front);
        let span = Span { start: self.front, header, length, end: self.front + 2 * header + length };
        self.front = span.end;
        Some(span)
    }
}

impl DoubleEndedIterator for Spans<'_> {
    fn next_back(&mut self) -> Option<Span> {
        if self.front >= self.back {
            return None;
        }
        let (length, header) = read_length_backwards(self.bytes, self.back);
        let span = Span { start: self.back - 2 * header - length, header, length, end: self.back };
        self.back = span.start;
        Some(span)
    }
}

/// The elements of a chunk between two byte offsets, either way.
struct ChunkIter<'a> {
    spans: Spans<'a>,
}

impl<'a> Iterator for ChunkIter<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        self.spans.next().map(|span| span.element(self.spans.bytes))
    }
}

impl DoubleEndedIterator for ChunkIter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.spans.next_back().map(|span| span.element(self.spans.bytes))
    }
}

/// `length` in LEB128 (7 bits a byte, low first, high bit: more follow).
fn length_bytes(length: usize) -> ([u8; 10], usize) {
    let (mut bytes, mut used, mut rest) = ([0u8; 10], 0, length as u64);
    loop {
        let low = (rest & 0x7f) as u8;
        rest >>= 7;
        if rest == 0 {
            bytes[used] = low;
            return (bytes, used + 1);
        }
        bytes[used] = low | 0x80;
        used += 1;
    }
}

/// Bytes an element of `length` bytes takes in a chunk.
fn encoded_size(length: usize) -> usize {
    length + 2 * length_bytes(length).1
}

fn encode(element: &[u8]) -> Vec<u8> {
    let mut chunk = Chunk { bytes: Vec::with_capacity(encoded_size(element.len())), count: 0 };
    chunk.append(element);
    chunk.bytes
}

/// The length starting at `offset` and the bytes it takes.
fn read_length(bytes: &[u8], offset: usize) -> (usize, usize) {
    let (mut length, mut used) = (0u64, 0);
    loop {
        let byte = bytes[offset + used];
        length |= u64::from(byte & 0x7f) << (7 * used);
        used += 1;
        if byte & 0x80 == 0 {
            return (length as usize, used);
        }
    }
}

/// The length ending just before `end` (written reversed) and the bytes it takes.
fn read_length_backwards(bytes: &[u8], end: usize) -> (usize, usize) {
    let (mut length, mut used) = (0u64, 0);
    loop {
        let byte = bytes[end - 1 - used];
        length |= u64::from(byte & 0x7f) << (7 * used);
        used += 1;
        if byte & 0x80 == 0 {
            return (length as usize, used);
        }
    }
}

/// Where the element ending at `end` starts.
fn start_before(bytes: &[u8], end: usize) -> usize {
    let (length, header) = read_length_backwards(bytes, end);
    end - 2 * header - length
}

// ---- the commands ----

/// Named after Redis's commands (so all four begin with L).
#[allow(clippy::enum_variant_names)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Read {
    LLen,
    LIndex,
    LRange,
    LPos,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Write {
    LPush,
    RPush,
    LPushX,
    RPushX,
    LPop,
    RPop,
    LSet,
    LTrim,
    LRem,
    LInsert,
    LMove,
    RPopLPush,
    LMPop,
    BLPop,
    BRPop,
    BLMove,
    BRPopLPush,
    BLMPop,
}

const fn read(name: &'static str, arity: i32, command: Read) -> Spec {
    command::read(name, arity, ReadCommand::Lists(command))
}

const fn write(name: &'static str, arity: i32, command: Write) -> Spec {
    command::write(name, arity, WriteCommand::Lists(command))
}

/// The list commands, arities as `COMMAND INFO` reports them on Redis 7.0.
pub(super) const TABLE: &[Spec] = &[
    read("llen", 2, Read::LLen),
    read("lindex", 3, Read::LIndex),
    read("lrange", 4, Read::LRange),
    read("lpos", -3, Read::LPos),
    write("lpush", -3, Write::LPush),
    write("rpush", -3, Write::RPush),
    write("lpushx", -3, Write::LPushX),
    write("rpushx", -3, Write::RPushX),
    write("lpop", -2, Write::LPop),
    write("rpop", -2, Write::RPop),
    write("lset", 4, Write::LSet),
    write("ltrim", 4, Write::LTrim),
    write("lrem", 4, Write::LRem),
    write("linsert", 5, Write::LInsert),
    write("lmove", 5, Write::LMove),
    write("rpoplpush", 3, Write::RPopLPush),
    write("lmpop", -4, Write::LMPop),
    write("blpop", -3, Write::BLPop),
    write("brpop", -3, Write::BRPop),
    write("blmove", 6, Write::BLMove),
    write("brpoplpush", 4, Write::BRPopLPush),
    write("blmpop", -5, Write::BLMPop),
];

/// `(first, last, step)` of the key arguments, as Redis 7.0's COMMAND INFO gives them.
pub(super) fn read_keys(command: Read) -> KeyPositions {
    match command {
        Read::LLen | Read::LIndex | Read::LRange | Read::LPos => ONE_KEY,
    }
}

pub(super) fn write_keys(command: Write) -> KeyPositions {
    match command {
        Write::LPush
        | Write::RPush
        | Write::LPushX
        | Write::RPushX
        | Write::LPop
        | Write::RPop
        | Write::LSet
        | Write::LTrim
        | Write::LRem
        | Write::LInsert => ONE_KEY,
        Write::LMove | Write::RPopLPush | Write::BLMove | Write::BRPopLPush => (1, 2, 1),
        // The keys before the timeout.
        Write::BLPop | Write::BRPop => (1, -2, 1),
        // Their keys follow a count ("movablekeys"): none in the legacy triple.
        Write::LMPop | Write::BLMPop => NO_KEYS,
    }
}

const OUT_OF_RANGE_MUST_BE_POSITIVE: &str = "ERR value is out of range, must be positive";
const NO_SUCH_KEY: &str = "ERR no such key";
const INDEX_OUT_OF_RANGE: &str = "ERR index out of range";
const RANK_ZERO: &str = "ERR RANK can't be zero: use 1 to start from the first match, 2 from the second ... \
                         or use negative to start from the end of the list";
const COUNT_NEGATIVE: &str = "ERR COUNT can't be negative";
const MAXLEN_NEGATIVE: &str = "ERR MAXLEN can't be negative";
const NUMKEYS_NOT_POSITIVE: &str = "ERR numkeys should be greater than 0";
const COUNT_NOT_POSITIVE: &str = "ERR count should be greater than 0";
const TIMEOUT_NOT_A_FLOAT: &str = "ERR timeout is not a float or out of range";
const TIMEOUT_NEGATIVE: &str = "ERR timeout is negative";

/// A blocking command's timeout in milliseconds (0: wait for ever), as
/// Redis 7.0's `getTimeoutFromObjectOrReply` reads seconds: a `long
/// double` (`string2ld`), times 1000 in `long double`, truncated to `long
/// long` (x87: a value out of its range becomes `LLONG_MIN`), and refused
/// if negative. So "-0.0001" is 0 (wait for ever) and "1e300" is negative.
pub(crate) fn parse_timeout(arg: &[u8]) -> Result<u64, Reply> {
    let Some(seconds) = LongDouble::parse(arg) else {
        return Err(Reply::error(TIMEOUT_NOT_A_FLOAT));
    };
    u64::try_from(milliseconds_truncated(seconds)).map_err(|_| Reply::error(TIMEOUT_NEGATIVE))
}

/// `(long long)(seconds * 1000.0L)` on x86-64: the product rounded to 64
/// significant bits (to nearest, ties to even), truncated toward zero;
/// infinities and values out of range become `i64::MIN`.
fn milliseconds_truncated(seconds: LongDouble) -> i64 {
    let LongDouble::Finite { negative, mantissa, exponent } = seconds else {
        return i64::MIN;
    };
    let mut significand = u128::from(mantissa) * 1000;
    let mut exponent = i64::from(exponent);
    let bits = 128 - significand.leading_zeros();
    if bits > 64 {
        let shift = bits - 64;
        let dropped = significand & ((1u128 << shift) - 1);
        let half = 1u128 << (shift - 1);
        significand >>= shift;
        exponent += i64::from(shift);
        if dropped > half || (dropped == half && significand & 1 == 1) {
            significand += 1;
            if significand == 1u128 << 64 {
                significand >>= 1;
                exponent += 1;
            }
        }
    }
    let magnitude = if exponent >= 0 {
        if exponent >= 64 || significand.leading_zeros() < 64 + exponent as u32 {
            return i64::MIN;
        }
        significand << exponent
    } else if exponent <= -128 {
        0
    } else {
        significand >> (-exponent)
    };
    if negative {
        0i64.checked_sub_unsigned(u64::try_from(magnitude).unwrap_or(u64::MAX)).unwrap_or(i64::MIN)
    } else {
        i64::try_from(magnitude).unwrap_or(i64::MIN)
    }
}

/// LRANGE's and LTRIM's window: the first and last index, inclusive, or
/// `None` when it holds nothing (`start < 0` counts from the end).
fn window(start: i64, end: i64, len: usize) -> Option<(usize, usize)> {
    let len = len as i64;
    let start = if start < 0 { (len + start).max(0) } else { start };
    let end = if end < 0 { len + end } else { end };
    if start > end || start >= len {
        return None;
    }
    Some((start as usize, end.min(len - 1) as usize))
}

/// LINDEX's and LSET's index (negative counts from the tail), if in range.
fn position(index: i64, len: usize) -> Option<usize> {
    let index = if index < 0 { len as i64 + index } else { index };
    usize::try_from(index).ok().filter(|index| *index < len)
}

fn bulks(elements: Vec<Vec<u8>>) -> Reply {
    Reply::Array(Some(elements.into_iter().map(Reply::bulk).collect()))
}

impl Store {
    /// Pops up to `count` elements of the (non-empty) list at `key`,
    /// deleting the key if that empties it.
    fn pop_from(&mut self, key: &[u8], end: End, count: usize) -> Vec<Vec<u8>> {
        let list = self.mut_as::<List>(key);
        let popped = list.pop_many(end, count);
        if list.is_empty() {
            self.remove(key);
        }
        popped
    }

    pub(super) fn list_read(&self, command: Read, args: &[Vec<u8>], now: u64) -> Reply {
        match command {
            Read::LLen => self.on_llen(args, now),
            Read::LIndex => self.on_lindex(args, now),
            Read::LRange => self.on_lrange(args, now),
            Read::LPos => self.on_lpos(args, now),
        }
    }

    pub(super) fn list_write(&mut self, command: Write, name: &str, args: &[Vec<u8>], now: u64) -> Reply {
        match command {
            Write::LPush => self.on_push(args, now, End::Head, false),
            Write::RPush => self.on_push(args, now, End::Tail, false),
            Write::LPushX => self.on_push(args, now, End::Head, true),
            Write::RPushX => self.on_push(args, now, End::Tail, true),
            Write::LPop => self.on_pop(args, now, End::Head, name),
            Write::RPop => self.on_pop(args, now, End::Tail, name),
            Write::LSet => self.on_lset(args, now),
            Write::LTrim => self.on_ltrim(args, now),
            Write::LRem => self.on_lrem(args, now),
            Write::LInsert => self.on_linsert(args, now),
            Write::LMove => self.on_lmove(args, now, None),
            Write::RPopLPush => self.move_element(&args[1], &args[2], End::Tail, End::Head, now),
            Write::LMPop => self.on_lmpop(args, now, 1, None),
            Write::BLPop => self.on_blocking_pop(args, now, End::Head),
            Write::BRPop => self.on_blocking_pop(args, now, End::Tail),
            Write::BLMove => self.on_lmove(args, now, Some(5)),
            Write::BRPopLPush => self.on_brpoplpush(args, now),
            Write::BLMPop => self.on_lmpop(args, now, 2, Some(1)),
        }
    }

    fn on_llen(&self, args: &[Vec<u8>], now: u64) -> Reply {
        match self.live_as::<List>(&args[1], now) {
            Ok(list) => Reply::Integer(list.map_or(0, |list| list.len() as i64)),
            Err(wrong_type) => wrong_type,
        }
    }

    /// LINDEX: a missing key is nil before the index is parsed.
    fn on_lindex(&self, args: &[Vec<u8>], now: u64) -> Reply {
        let list = match self.live_as::<List>(&args[1], now) {
            Ok(Some(list)) => list,
            Ok(None) => return Reply::Bulk(None),
            Err(wrong_type) => return wrong_type,
        };
        let Some(index) = parse_i64(&args[2]) else {
            return Reply::error(NOT_AN_INTEGER);
        };
        Reply::Bulk(position(index, list.len()).and_then(|index| list.get(index)).map(<[u8]>::to_vec))
    }

    /// LRANGE: the indexes are parsed before the key is looked up.
    fn on_lrange(&self, args: &[Vec<u8>], now: u64) -> Reply {
        let (Some(start), Some(end)) = (parse_i64(&args[2]), parse_i64(&args[3])) else {
            return Reply::error(NOT_AN_INTEGER);
        };
        let list = match self.live_as::<List>(&args[1], now) {
            Ok(Some(list)) => list,
            Ok(None) => return Reply::Array(Some(Vec::new())),
            Err(wrong_type) => return wrong_type,
        };
        let Some((first, last)) = window(start, end, list.len()) else {
            return Reply::Array(Some(Vec::new()));
        };
        let elements = list.iter_from(first).take(last - first + 1);
        Reply::Array(Some(elements.map(|element| Reply::bulk(element.to_vec())).collect()))
    }

    /// LPOS key element [RANK rank] [COUNT count] [MAXLEN len]: options are
    /// parsed before the key is looked up. RANK -9223372036854775808
    /// behaves as C computes it (its negation overflows to itself: every
    /// match from the tail qualifies, and COUNT never stops the search).
    fn on_lpos(&self, args: &[Vec<u8>], now: u64) -> Reply {
        let (mut rank, mut count, mut maxlen): (i64, Option<i64>, i64) = (1, None, 0);
        let mut at = 3;
        while at < args.len() {
            let more = at + 1 < args.len();
            let option = &args[at];
            if option_is(option, "RANK") && more {
                at += 1;
                match parse_i64(&args[at]) {
                    None => return Reply::error(NOT_AN_INTEGER),
                    Some(0) => return Reply::error(RANK_ZERO),
                    Some(value) => rank = value,
                }
            } else if option_is(option, "COUNT") && more {
                at += 1;
                match parse_i64(&args[at]) {
                    Some(value) if value >= 0 => count = Some(value),
                    _ => return Reply::error(COUNT_NEGATIVE),
                }
            } else if option_is(option, "MAXLEN") && more {
                at += 1;
                match parse_i64(&args[at]) {
                    Some(value) if value >= 0 => maxlen = value,
                    _ => return Reply::error(MAXLEN_NEGATIVE),
                }
            } else {
                return Reply::error(SYNTAX_ERROR);
            }
            at += 1;
        }
        let from_tail = rank < 0;
        let rank = if from_tail { rank.wrapping_neg() } else { rank };
        let list = match self.live_as::<List>(&args[1], now) {
            Ok(Some(list)) => list,
            Ok(None) if count.is_some() => return Reply::Array(Some(Vec::new())),
            Ok(None) => return Reply::Bulk(None),
            Err(wrong_type) => return wrong_type,
        };
        let elements: Box<dyn Iterator<Item = &[u8]>> =
            if from_tail { Box::new(list.iter().rev()) } else { Box::new(list.iter()) };
        let (mut matches, mut found): (i64, Vec<Reply>) = (0, Vec::new());
        for (seen, element) in elements.enumerate() {
            if maxlen != 0 && seen as i64 >= maxlen {
                break;
            }
            if element != args[2].as_slice() {
                continue;
            }
            matches += 1;
            if matches < rank {
                continue;
            }
            let index = if from_tail { list.len() - 1 - seen } else { seen };
            found.push(Reply::Integer(index as i64));
            match count {
                None => break,
                Some(count) if count != 0 && matches.wrapping_sub(rank).wrapping_add(1) >= count => break,
                Some(_) => {}
            }
        }
        match count {
            Some(_) => Reply::Array(Some(found)),
            None => found.pop().unwrap_or(Reply::Bulk(None)),
        }
    }

    /// LPUSH, RPUSH and, with `only_existing`, LPUSHX and RPUSHX.
    fn on_push(&mut self, args: &[Vec<u8>], now: u64, end: End, only_existing: bool) -> Reply {
        match self.for_write_as::<List>(&args[1], now) {
            Err(wrong_type) => return wrong_type,
            Ok(None) if only_existing => return Reply::Integer(0),
            Ok(_) => {}
        }
        let list = self.mut_as::<List>(&args[1]);
        for element in &args[2..] {
            list.push(end, element);
        }
        Reply::Integer(list.len() as i64)
    }

    /// LPOP and RPOP key [count]: one element as a bulk, or with a count
    /// an array (nil, a null array in RESP2, for a missing key; empty for
    /// count 0).
    fn on_pop(&mut self, args: &[Vec<u8>], now: u64, end: End, name: &str) -> Reply {
        if args.len() > 3 {
            return command::wrong_arity(name);
        }
        let count = match args.get(2).map(|text| parse_i64(text)) {
            None => None,
            Some(Some(count)) if count >= 0 => Some(usize::try_from(count).unwrap_or(usize::MAX)),
            Some(_) => return Reply::error(OUT_OF_RANGE_MUST_BE_POSITIVE),
        };
        match self.for_write_as::<List>(&args[1], now) {
            Err(wrong_type) => return wrong_type,
            Ok(None) if count.is_some() => return Reply::Array(None),
            Ok(None) => return Reply::Bulk(None),
            Ok(Some(_)) => {}
        }
        match count {
            Some(0) => Reply::Array(Some(Vec::new())),
            Some(count) => bulks(self.pop_from(&args[1], end, count)),
            None => Reply::Bulk(self.pop_from(&args[1], end, 1).pop()),
        }
    }

    /// LSET: a missing key is an error before the index is parsed.
    fn on_lset(&mut self, args: &[Vec<u8>], now: u64) -> Reply {
        let length = match self.for_write_as::<List>(&args[1], now) {
            Ok(Some(list)) => list.len(),
            Ok(None) => return Reply::error(NO_SUCH_KEY),
            Err(wrong_type) => return wrong_type,
        };
        let Some(index) = parse_i64(&args[2]) else {
            return Reply::error(NOT_AN_INTEGER);
        };
        let Some(index) = position(index, length) else {
            return Reply::error(INDEX_OUT_OF_RANGE);
        };
        self.mut_as::<List>(&args[1]).set(index, &args[3]);
        Reply::ok()
    }

    /// LTRIM: a modification (WATCH) of an existing list even if nothing
    /// is trimmed, as in Redis; trimming everything deletes the key.
    fn on_ltrim(&mut self, args: &[Vec<u8>], now: u64) -> Reply {
        let (Some(start), Some(end)) = (parse_i64(&args[2]), parse_i64(&args[3])) else {
            return Reply::error(NOT_AN_INTEGER);
        };
        let length = match self.for_write_as::<List>(&args[1], now) {
            Ok(Some(list)) => list.len(),
            Ok(None) => return Reply::ok(),
            Err(wrong_type) => return wrong_type,
        };
        let (head, tail) = match window(start, end, length) {
            None => (length, 0),
            Some((first, last)) => (first, length - 1 - last),
        };
        let list = self.mut_as::<List>(&args[1]);
        list.trim(head, tail);
        if list.is_empty() {
            self.remove(&args[1]);
        }
        Reply::ok()
    }

    /// LREM key count element: count > 0 from the head, < 0 from the tail,
    /// 0 all. Removing nothing is no modification (WATCH).
    fn on_lrem(&mut self, args: &[Vec<u8>], now: u64) -> Reply {
        let Some(count) = parse_i64(&args[2]) else {
            return Reply::error(NOT_AN_INTEGER);
        };
        match self.for_write_as::<List>(&args[1], now) {
            Ok(Some(list)) if list.iter().any(|element| element == args[3].as_slice()) => {}
            Ok(_) => return Reply::Integer(0),
            Err(wrong_type) => return wrong_type,
        }
        let from = if count < 0 { End::Tail } else { End::Head };
        let limit = match count.unsigned_abs() {
            0 => usize::MAX,
            limit => usize::try_from(limit).unwrap_or(usize::MAX),
        };
        let list = self.mut_as::<List>(&args[1]);
        let removed = list.remove_matching(&args[3], limit, from);
        if list.is_empty() {
            self.remove(&args[1]);
        }
        Reply::Integer(removed as i64)
    }

    /// LINSERT key BEFORE|AFTER pivot element: the new length, -1 if the
    /// pivot is not found (no modification), 0 for a missing key.
    fn on_linsert(&mut self, args: &[Vec<u8>], now: u64) -> Reply {
        let after = if option_is(&args[2], "after") {
            true
        } else if option_is(&args[2], "before") {
            false
        } else {
            return Reply::error(SYNTAX_ERROR);
        };
        let pivot = match self.for_write_as::<List>(&args[1], now) {
            Ok(Some(list)) => list.iter().position(|element| element == args[3].as_slice()),
            Ok(None) => return Reply::Integer(0),
            Err(wrong_type) => return wrong_type,
        };
        let Some(pivot) = pivot else {
            return Reply::Integer(-1);
        };
        let list = self.mut_as::<List>(&args[1]);
        list.insert(pivot + usize::from(after), &args[4]);
        Reply::Integer(list.len() as i64)
    }

    /// LMOVE source destination LEFT|RIGHT LEFT|RIGHT, and BLMOVE with its
    /// timeout at `timeout_at` (checked after the directions).
    fn on_lmove(&mut self, args: &[Vec<u8>], now: u64, timeout_at: Option<usize>) -> Reply {
        let ends = End::parse(&args[3]).and_then(|from| Ok((from, End::parse(&args[4])?)));
        let (from, to) = match ends {
            Ok(ends) => ends,
            Err(syntax) => return syntax,
        };
        if let Some(Err(reply)) = timeout_at.map(|at| parse_timeout(&args[at])) {
            return reply;
        }
        self.move_element(&args[1], &args[2], from, to, now)
    }

    fn on_brpoplpush(&mut self, args: &[Vec<u8>], now: u64) -> Reply {
        if let Err(reply) = parse_timeout(&args[3]) {
            return reply;
        }
        self.move_element(&args[1], &args[2], End::Tail, End::Head, now)
    }

    /// Redis's `lmoveGenericCommand`: nil for a missing source (whatever
    /// the destination holds); a destination of another type is WRONGTYPE
    /// before anything is popped. The same key rotates its list (keeping
    /// its TTL).
    fn move_element(&mut self, source: &[u8], destination: &[u8], from: End, to: End, now: u64) -> Reply {
        match self.for_write_as::<List>(source, now) {
            Ok(Some(_)) => {}
            Ok(None) => return Reply::Bulk(None),
            Err(wrong_type) => return wrong_type,
        }
        if let Err(wrong_type) = self.for_write_as::<List>(destination, now) {
            return wrong_type;
        }
        let element = if source == destination {
            let list = self.mut_as::<List>(source);
            let element = list.pop(from).expect("a stored list is not empty");
            list.push(to, &element);
            element
        } else {
            let element = self.pop_from(source, from, 1).pop().expect("a stored list is not empty");
            self.mut_as::<List>(destination).push(to, &element);
            element
        };
        Reply::bulk(element)
    }

    /// LMPOP numkeys key... LEFT|RIGHT [COUNT count], and BLMPOP (numkeys
    /// at 2, its timeout at 1, checked after the other arguments).
    fn on_lmpop(
        &mut self,
        args: &[Vec<u8>],
        now: u64,
        numkeys_at: usize,
        timeout_at: Option<usize>,
    ) -> Reply {
        let numkeys = match parse_i64(&args[numkeys_at]) {
            Some(numkeys) if numkeys >= 1 => numkeys as u64,
            _ => return Reply::error(NUMKEYS_NOT_POSITIVE),
        };
        let end_at = numkeys_at as u64 + 1 + numkeys;
        if end_at >= args.len() as u64 {
            return Reply::error(SYNTAX_ERROR);
        }
        let end_at = end_at as usize;
        let end = match End::parse(&args[end_at]) {
            Ok(end) => end,
            Err(syntax) => return syntax,
        };
        let mut count = None;
        let mut at = end_at + 1;
        while at < args.len() {
            if count.is_none() && option_is(&args[at], "COUNT") && at + 1 < args.len() {
                at += 1;
                match parse_i64(&args[at]) {
                    Some(value) if value >= 1 => count = Some(usize::try_from(value).unwrap_or(usize::MAX)),
                    _ => return Reply::error(COUNT_NOT_POSITIVE),
                }
            } else {
                return Reply::error(SYNTAX_ERROR);
            }
            at += 1;
        }
        if let Some(Err(reply)) = timeout_at.map(|at| parse_timeout(&args[at])) {
            return reply;
        }
        self.pop_first_non_empty(&args[numkeys_at + 1..end_at], end, Some(count.unwrap_or(1)), now)
    }

    /// BLPOP and BRPOP key... timeout: the timeout is checked first.
    fn on_blocking_pop(&mut self, args: &[Vec<u8>], now: u64, end: End) -> Reply {
        let last = args.len() - 1;
        if let Err(reply) = parse_timeout(&args[last]) {
            return reply;
        }
        self.pop_first_non_empty(&args[1..last], end, None, now)
    }

    /// Pops from the first key holding a list: `[key, element]` (BLPOP,
    /// BRPOP: `count` None) or `[key, [elements...]]` (LMPOP, BLMPOP); a
    /// key of another type before it is WRONGTYPE, and keys after it are
    /// not looked at. A null array if every key is missing.
    fn pop_first_non_empty(&mut self, keys: &[Vec<u8>], end: End, count: Option<usize>, now: u64) -> Reply {
        for key in keys {
            match self.for_write_as::<List>(key, now) {
                Ok(Some(_)) => {}
                Ok(None) => continue,
                Err(wrong_type) => return wrong_type,
            }
            let mut popped = self.pop_from(key, end, count.unwrap_or(1));
            let popped = match count {
                Some(_) => bulks(popped),
                None => Reply::bulk(popped.pop().expect("a stored list is not empty")),
            };
            return Reply::Array(Some(vec![Reply::bulk(key.clone()), popped]));
        }
        Reply::Array(None)
    }
}

#[cfg(test)]
#[path = "list_tests.rs"]
mod tests;
