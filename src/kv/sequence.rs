//! The creation-order index of the key space: sequence number → key, for
//! SCAN cursors and for finding expired keys.
//!
//! Keys are only ever added with a sequence number above every other, so a
//! `BTreeMap<u64, Key>` would grow at its right edge, where std's B-tree
//! splits a full leaf into a 6-key and a 5-key half: the index stayed 55 %
//! full, about 61 bytes per key for a 32-byte pair (benches/cluster.rs
//! memory runs). Here pairs live in blocks of up to [`BLOCK_PAIRS_MAX`]
//! in sequence order; an addition fills the last block before it opens a
//! new one, so the index costs about the pair itself. Removal leaves holes
//! in a block (shrunk once it is mostly empty) and drops empty blocks.
//! Equality and hashing are those of the pairs, not of the block layout.

use super::key::Key;
use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};

const BLOCK_PAIRS_MAX: usize = 64;

#[derive(Clone, Debug, Default)]
pub(super) struct SequenceIndex {
    /// First sequence number a block may hold → its pairs, in order. Every
    /// pair of a block is at or above its key and below the next block's.
    blocks: BTreeMap<u64, Vec<(u64, Key)>>,
    len: usize,
}

impl SequenceIndex {
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// Adds a pair; `sequence` must be above every sequence in the index.
    pub(super) fn push(&mut self, sequence: u64, key: Key) {
        let last = self.blocks.iter_mut().next_back();
        if let Some((_, block)) = last {
            let above = block.last().is_none_or(|(s, _)| *s < sequence);
            assert!(above, "sequence {sequence} is not above every indexed one");
            if block.len() < BLOCK_PAIRS_MAX {
                block.push((sequence, key));
                self.len += 1;
                return;
            }
        }
        let mut block = Vec::with_capacity(BLOCK_PAIRS_MAX);
        block.push((sequence, key));
        self.blocks.insert(sequence, block);
        self.len += 1;
    }

    fn block_of(&self, sequence: u64) -> Option<(u64, &Vec<(u64, Key)>)> {
        self.blocks.range(..=sequence).next_back().map(|(first, block)| (*first, block))
    }

    pub(super) fn get(&self, sequence: u64) -> Option<&Key> {
        let (_, block) = self.block_of(sequence)?;
        let at = block.binary_search_by_key(&sequence, |(s, _)| *s).ok()?;
        Some(&block[at].1)
    }

    pub(super) fn remove(&mut self, sequence: u64) -> Option<Key> {
        let (first, block) = self.blocks.range_mut(..=sequence).next_back()?;
        let first = *first;
        let at = block.binary_search_by_key(&sequence, |(s, _)| *s).ok()?;
        let (_, key) = block.remove(at);
        self.len -= 1;
        if block.is_empty() {
            self.blocks.remove(&first);
        } else if block.len() * 4 <= block.capacity() {
            block.shrink_to_fit();
        }
        Some(key)
    }

    /// Pairs with a sequence at or above `from`, in sequence order.
    pub(super) fn range_from(&self, from: u64) -> impl Iterator<Item = (u64, &Key)> + '_ {
        let start = self.block_of(from).map_or(0, |(first, _)| first);
        self.blocks
            .range(start..)
            .flat_map(|(_, block)| block.iter())
            .skip_while(move |(sequence, _)| *sequence < from)
            .map(|(sequence, key)| (*sequence, key))
    }

    pub(super) fn clear(&mut self) {
        self.blocks.clear();
        self.len = 0;
    }
}

impl PartialEq for SequenceIndex {
    fn eq(&self, other: &SequenceIndex) -> bool {
        self.len == other.len && self.range_from(0).eq(other.range_from(0))
    }
}

impl Eq for SequenceIndex {}

impl Hash for SequenceIndex {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.len.hash(state);
        for pair in self.range_from(0) {
            pair.hash(state);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_index_answers_like_an_ordered_map_through_additions_and_removals() {
        let mut index = SequenceIndex::default();
        let mut model = BTreeMap::new();
        let mut state = 7u64;
        let mut next = 1u64;
        for step in 0..5_000 {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            if state >> 62 != 0 || model.is_empty() {
                let key = Key::new(format!("k{next}").as_bytes());
                index.push(next, key.clone());
                model.insert(next, key);
                next += 1 + (state >> 60) % 3;
            } else {
                let victim = (state >> 20) % next;
                assert_eq!(index.remove(victim), model.remove(&victim), "step {step}");
            }
            assert_eq!(index.len(), model.len());
        }
        for probe in [0, 1, next / 3, next / 2, next - 1, next + 5] {
            assert_eq!(index.get(probe), model.get(&probe));
            let expected: Vec<(u64, &Key)> = model.range(probe..).map(|(s, k)| (*s, k)).collect();
            assert_eq!(index.range_from(probe).collect::<Vec<_>>(), expected, "from {probe}");
        }
    }

    #[test]
    fn equality_ignores_how_pairs_are_split_into_blocks() {
        let mut grown = SequenceIndex::default();
        let mut packed = SequenceIndex::default();
        for sequence in 1..=200 {
            grown.push(sequence, Key::new(&sequence.to_le_bytes()));
        }
        for sequence in 1..=100 {
            grown.remove(sequence);
        }
        for sequence in 101..=200 {
            packed.push(sequence, Key::new(&sequence.to_le_bytes()));
        }
        assert_eq!(grown, packed);
    }
}
