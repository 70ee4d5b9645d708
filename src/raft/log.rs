//! The in-memory Raft log: a snapshot point followed by contiguous entries.
//! It mirrors what the shell has persisted plus what it is persisting; the
//! core rebuilds it from `Recovered` after a restart.

use super::types::{Entry, Index, Term};
use std::collections::VecDeque;

#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RaftLog {
    /// Everything at or before this index is compacted into the snapshot.
    snapshot_index: Index,
    snapshot_term: Term,
    /// `entries[k].index == snapshot_index + 1 + k`.
    entries: VecDeque<Entry>,
}

impl RaftLog {
    pub fn new(snapshot_index: Index, snapshot_term: Term) -> RaftLog {
        RaftLog { snapshot_index, snapshot_term, entries: VecDeque::new() }
    }

    pub fn snapshot_index(&self) -> Index {
        self.snapshot_index
    }

    pub fn first_index(&self) -> Index {
        self.snapshot_index.next()
    }

    pub fn last_index(&self) -> Index {
        self.entries.back().map_or(self.snapshot_index, |e| e.index)
    }

    pub fn last_term(&self) -> Term {
        self.entries.back().map_or(self.snapshot_term, |e| e.term)
    }

    /// The term at `index`, if the log still knows it.
    pub fn term(&self, index: Index) -> Option<Term> {
        if index == self.snapshot_index {
            return Some(self.snapshot_term);
        }
        self.entry(index).map(|e| e.term)
    }

    pub fn entry(&self, index: Index) -> Option<&Entry> {
        let offset = index.0.checked_sub(self.first_index().0)?;
        self.entries.get(usize::try_from(offset).ok()?)
    }

    /// Whether the log holds an entry with this index and term (§5.3 log
    /// matching).
    pub fn matches(&self, index: Index, term: Term) -> bool {
        self.term(index) == Some(term)
    }

    /// Whether a log ending at `(last_index, last_term)` is at least as
    /// up-to-date as this one (Raft paper §5.4.1).
    pub fn is_up_to_date(&self, last_index: Index, last_term: Term) -> bool {
        (last_term, last_index) >= (self.last_term(), self.last_index())
    }

    /// The first index holding the same term as `index` (which must be in
    /// the log and not compacted); the conflict hint for a rejection.
    pub fn first_index_of_term_at(&self, index: Index) -> Index {
        let term = self.term(index).expect("index within the log");
        let mut first = index;
        while first > self.first_index() && self.term(first.prev()) == Some(term) {
            first = first.prev();
        }
        first
    }

    /// The last index in the log whose term is at most `term`, not below the
    /// snapshot.
    pub fn last_index_with_term_at_most(&self, term: Term, below_or_at: Index) -> Index {
        let mut index = below_or_at.min(self.last_index());
        while index > self.snapshot_index && self.term(index).is_some_and(|t| t > term) {
            index = index.prev();
        }
        index
    }

    /// Entries from `from`, at most `count_max` of them and about
    /// `bytes_max` bytes (at least one entry if any exists).
    pub fn slice(&self, from: Index, count_max: u32, bytes_max: u64) -> Vec<Entry> {
        let mut out = Vec::new();
        let mut bytes = 0u64;
        let mut index = from;
        while let Some(entry) = self.entry(index) {
            if out.len() as u64 >= u64::from(count_max) {
                break;
            }
            bytes += entry.size_bytes();
            if !out.is_empty() && bytes > bytes_max {
                break;
            }
            out.push(entry.clone());
            index = index.next();
        }
        out
    }

    pub fn append(&mut self, entry: Entry) {
        assert_eq!(entry.index, self.last_index().next(), "log append must be contiguous");
        assert!(entry.term >= self.last_term(), "log terms must not decrease");
        self.entries.push_back(entry);
    }

    /// Drops every entry at `from` and after.
    pub fn truncate_from(&mut self, from: Index) {
        assert!(from > self.snapshot_index, "cannot truncate into the snapshot");
        let keep = (from.0 - self.first_index().0) as usize;
        self.entries.truncate(keep);
    }

    /// Drops every entry at or before `index` (which must be in the log).
    pub fn compact_to(&mut self, index: Index) {
        let term = self.term(index).expect("compaction point within the log");
        let drop = (index.0 - self.snapshot_index.0) as usize;
        self.entries.drain(..drop.min(self.entries.len()));
        self.snapshot_index = index;
        self.snapshot_term = term;
    }

    /// Replaces the whole log with a snapshot point; keeps the suffix after
    /// it if the log already holds the snapshot's last entry (§7).
    pub fn restore(&mut self, index: Index, term: Term) {
        if self.matches(index, term) && index >= self.snapshot_index {
            self.compact_to(index);
        } else {
            *self = RaftLog::new(index, term);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::types::Payload;

    fn log_with_terms(terms: &[u64]) -> RaftLog {
        let mut log = RaftLog::default();
        for (k, t) in terms.iter().enumerate() {
            log.append(Entry { term: Term(*t), index: Index(k as u64 + 1), payload: Payload::Noop });
        }
        log
    }

    #[test]
    fn terms_and_matching_follow_the_entries() {
        let log = log_with_terms(&[1, 1, 2]);
        assert_eq!(log.last_index(), Index(3));
        assert_eq!(log.last_term(), Term(2));
        assert_eq!(log.term(Index(0)), Some(Term(0)));
        assert_eq!(log.term(Index(4)), None);
        assert!(log.matches(Index(2), Term(1)));
        assert!(!log.matches(Index(3), Term(1)));
    }

    #[test]
    fn up_to_date_compares_last_term_then_length() {
        let log = log_with_terms(&[1, 2]);
        assert!(log.is_up_to_date(Index(1), Term(3)));
        assert!(log.is_up_to_date(Index(2), Term(2)));
        assert!(!log.is_up_to_date(Index(1), Term(2)));
        assert!(!log.is_up_to_date(Index(9), Term(1)));
    }

    #[test]
    fn conflict_hint_is_first_index_of_the_term() {
        let log = log_with_terms(&[1, 2, 2, 2, 3]);
        assert_eq!(log.first_index_of_term_at(Index(4)), Index(2));
        assert_eq!(log.first_index_of_term_at(Index(1)), Index(1));
        assert_eq!(log.last_index_with_term_at_most(Term(2), Index(5)), Index(4));
        assert_eq!(log.last_index_with_term_at_most(Term(0), Index(5)), Index(0));
    }

    #[test]
    fn slice_respects_count_and_bytes_but_sends_at_least_one() {
        let log = log_with_terms(&[1, 1, 1, 1]);
        assert_eq!(log.slice(Index(2), 2, 1 << 20).len(), 2);
        assert_eq!(log.slice(Index(1), 10, 1).len(), 1);
        assert_eq!(log.slice(Index(5), 10, 1 << 20).len(), 0);
    }

    #[test]
    fn compaction_and_truncation_keep_indexes_consistent() {
        let mut log = log_with_terms(&[1, 1, 2, 2]);
        log.compact_to(Index(2));
        assert_eq!(log.first_index(), Index(3));
        assert_eq!(log.term(Index(2)), Some(Term(1)));
        assert_eq!(log.term(Index(1)), None);
        log.truncate_from(Index(4));
        assert_eq!(log.last_index(), Index(3));
        log.restore(Index(3), Term(2));
        assert_eq!((log.snapshot_index(), log.last_index()), (Index(3), Index(3)));
        log.restore(Index(9), Term(5));
        assert_eq!((log.last_index(), log.last_term()), (Index(9), Term(5)));
    }
}
