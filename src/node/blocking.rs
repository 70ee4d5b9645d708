//! Blocking commands (BLPOP, BRPOP, BLMOVE, BRPOPLPUSH, BLMPOP, BZPOPMIN,
//! BZPOPMAX, BZMPOP) on the node a client is connected to.
//!
//! The wait itself is replicated state (`kv::blocking`): the node proposes
//! `CASHE.BLOCK node seq command...` through the ordinary write path (a
//! follower forwards it), and learns what became of the wait only by
//! applying entries itself: the outcome (an element, an error, or "no
//! longer waiting") is decided by the entry that pops or unblocks, the
//! same on every replica, whichever leader proposed it. So a leader change
//! while a client waits neither loses an element nor pops one twice.
//!
//! The node keeps, for each of its waits, the client's ticket and its
//! deadline by this node's clock. At the deadline, when the connection
//! closes, or when the `CASHE.BLOCK` write's fate is unknown (`-TIMEOUT`),
//! it proposes `CASHE.UNBLOCK node seq`; if a push served the wait first,
//! the client gets the element, otherwise the timeout's nil — but only if
//! the waiter did block (found nothing to pop when its block applied): one
//! whose block never applied never looked, so it blocks again under a new
//! number, as does one whose block's fate was unknown while its time
//! lasts (the unblock made sure the old number will never pop). Waits of a previous run
//! of this node (its clients are gone) are unblocked as soon as it sees
//! them.
//!
//! A node that installs a snapshot skips the entries before it: a wait
//! whose outcome was in them is answered `-TIMEOUT` (it may have popped),
//! as a write of unknown fate is; one whose block may still apply after the
//! snapshot is first sealed by an unblock (so nothing the connection sends
//! later can run before its pop), then answered by that unblock's outcome.

use super::session::Ticket;
use super::{Node, Requester};
use crate::kv::{self, Outcome, WaiterId};
use crate::protocol::Reply;
use crate::raft::{Index, PlantedBug};

/// The internal command that registers a wait: `CASHE.BLOCK node seq command...`.
pub const CASHE_BLOCK: &str = "CASHE.BLOCK";
/// The internal command that ends one: `CASHE.UNBLOCK node seq`.
pub const CASHE_UNBLOCK: &str = "CASHE.UNBLOCK";

/// The answer to a wait whose outcome the node cannot know.
pub const BLOCK_UNKNOWN: &str =
    "TIMEOUT the blocking command may or may not have popped: its outcome was not seen by this node";

/// One of this node's waits.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) struct Wait {
    ticket: Ticket,
    args: Vec<Vec<u8>>,
    /// By this node's clock; `None`: for ever.
    deadline_ms: Option<u64>,
    /// The index of its `CASHE.BLOCK` entry, once a leader said it applied.
    blocked_at: Option<Index>,
    /// An unblock is proposed: `Some(true)` if the command then blocks
    /// again (the block's fate was unknown), `Some(false)` if it ends.
    unblocking: Option<bool>,
    /// The unblock failed to reach the log: propose it again next tick.
    unblock_again: bool,
    /// A snapshot replaced the store before this wait's fate was known
    /// here: an unblock seals it, and if the wait is then not found, what
    /// became of it is unknown (`BLOCK_UNKNOWN`).
    skipped: bool,
}

impl Node {
    /// Starts a blocking command of a connection.
    pub(super) fn start_block(&mut self, ticket: Ticket, args: Vec<Vec<u8>>) {
        let deadline_ms = kv::timeout_ms(&args).map(|ms| self.now_ms.saturating_add(ms));
        let seq = self.take_wait_number();
        let wait = Wait {
            ticket,
            args,
            deadline_ms,
            blocked_at: None,
            unblocking: None,
            unblock_again: false,
            skipped: false,
        };
        self.waits.insert(seq, wait);
        self.propose_block(seq);
    }

    fn take_wait_number(&mut self) -> u64 {
        let seq = self.next_wait;
        self.next_wait = self.next_wait.wrapping_add(1);
        seq
    }

    fn propose_block(&mut self, seq: u64) {
        let Some(wait) = self.waits.get(&seq) else { return };
        let mut entry = vec![CASHE_BLOCK.as_bytes().to_vec(), self.id_bytes(), seq.to_string().into_bytes()];
        entry.extend(wait.args.iter().cloned());
        self.start_write(Requester::Block(seq), entry);
    }

    fn propose_unblock(&mut self, seq: u64) {
        let entry = vec![CASHE_UNBLOCK.as_bytes().to_vec(), self.id_bytes(), seq.to_string().into_bytes()];
        self.start_write(Requester::Unblock(seq), entry);
    }

    fn id_bytes(&self) -> Vec<u8> {
        self.raft.id().0.to_string().into_bytes()
    }

    /// Ends a wait: its outcome decides the reply.
    fn unblock(&mut self, seq: u64, block_again: bool) {
        let Some(wait) = self.waits.get_mut(&seq) else { return };
        if wait.unblocking.is_some() {
            wait.unblocking = Some(wait.unblocking == Some(true) && block_again);
            return;
        }
        wait.unblocking = Some(block_again);
        self.propose_unblock(seq);
    }

    /// The write path's answer to a `CASHE.BLOCK` proposal. The outcome
    /// comes from applying entries; an error here is the write's own.
    pub(super) fn on_block_answer(&mut self, seq: u64, reply: Reply, index: Option<Index>) {
        let Some(wait) = self.waits.get_mut(&seq) else { return };
        match reply {
            Reply::Error(e) if e.starts_with("TIMEOUT") => self.unblock(seq, true),
            // Not proposed, or refused before it was (no leader, a leader
            // change, too large): the command did nothing.
            Reply::Error(e) => {
                let ticket = wait.ticket;
                self.waits.remove(&seq);
                self.reply(ticket, Reply::Error(e));
            }
            _ => {
                wait.blocked_at = index;
                self.answer_if_skipped(seq);
            }
        }
    }

    /// The write path's answer to a `CASHE.UNBLOCK` proposal: on an error,
    /// it is proposed again at the next tick.
    pub(super) fn on_unblock_answer(&mut self, seq: u64, reply: &Reply) {
        if let (Some(wait), Reply::Error(_)) = (self.waits.get_mut(&seq), reply) {
            wait.unblock_again = true;
        }
    }

    /// Applies `CASHE.BLOCK` or `CASHE.UNBLOCK` (every replica does).
    pub(super) fn apply_block_command(&mut self, args: &[Vec<u8>], now_ms: u64) -> Reply {
        let number = |i: usize| args.get(i).and_then(|a| std::str::from_utf8(a).ok()?.parse::<u64>().ok());
        let (Some(node), Some(seq)) = (number(1), number(2)) else {
            return Reply::error("ERR malformed blocking entry");
        };
        let id = WaiterId { node, seq };
        if args[0] == CASHE_BLOCK.as_bytes() {
            self.store.block(id, &args[3..], now_ms);
        } else {
            self.store.unblock(id);
        }
        Reply::ok()
    }

    /// After every applied entry: serves the waiters the entry made ready
    /// and answers this node's clients whose outcome is decided.
    pub(super) fn serve_blocked(&mut self, now_ms: u64) {
        self.store.serve_blocked(now_ms);
        let me = self.raft.id().0;
        for (id, outcome) in self.store.take_served() {
            if id.node != me {
                continue;
            }
            let Some(wait) = self.waits.remove(&id.seq) else { continue };
            let reply = match outcome {
                Outcome::Reply(reply) => reply,
                Outcome::Unblocked | Outcome::NotWaiting => {
                    let connected = self.sessions.contains_key(&wait.ticket.conn);
                    let in_time = wait.deadline_ms.is_none_or(|deadline| self.now_ms < deadline);
                    // A nil is the truth only for a waiter that blocked on
                    // empty lists and was never served. One whose block
                    // never applied never looked: it blocks again (and, past
                    // its deadline, is unblocked at the next tick).
                    let planted = self.config.raft.planted_bug.active(PlantedBug::BlockNilUnseen);
                    if matches!(outcome, Outcome::NotWaiting) && wait.skipped && !planted {
                        // Served or unblocked in entries a snapshot skipped,
                        // or never applied: sealed now, but unknown.
                        self.reply(wait.ticket, Reply::error(BLOCK_UNKNOWN));
                        continue;
                    }
                    let again = match outcome {
                        Outcome::NotWaiting if planted => false,
                        Outcome::NotWaiting => connected,
                        _ => connected && in_time && wait.unblocking == Some(true),
                    };
                    if again {
                        let seq = self.take_wait_number();
                        let again = Wait {
                            blocked_at: None,
                            unblocking: None,
                            unblock_again: false,
                            skipped: false,
                            ..wait
                        };
                        self.waits.insert(seq, again);
                        self.propose_block(seq);
                        continue;
                    }
                    if matches!(outcome, Outcome::NotWaiting) && !planted {
                        continue; // the client is gone
                    }
                    kv::timeout_reply(&wait.args)
                }
            };
            self.reply(wait.ticket, reply);
        }
    }

    /// Each tick: waits past their deadline, unblocks to propose again,
    /// and now and then the waits of a previous run of this node.
    pub(super) fn tick_waits(&mut self) {
        let now = self.now_ms;
        let due: Vec<u64> = self
            .waits
            .iter()
            .filter(|(_, w)| w.unblocking.is_none() && w.deadline_ms.is_some_and(|d| now >= d))
            .map(|(seq, _)| *seq)
            .collect();
        for seq in due {
            self.unblock(seq, false);
        }
        let again: Vec<u64> =
            self.waits.iter().filter(|(_, w)| w.unblock_again).map(|(seq, _)| *seq).collect();
        for seq in again {
            if let Some(wait) = self.waits.get_mut(&seq) {
                wait.unblock_again = false;
            }
            self.propose_unblock(seq);
        }
        let period = u64::from(self.config.raft.election_ticks).max(1) * 4;
        if self.ticks.is_multiple_of(period) {
            let me = self.raft.id().0;
            let stale: Vec<u64> = self
                .store
                .waiters_of(me)
                .map(|id| id.seq)
                .filter(|seq| !self.waits.contains_key(seq))
                .collect();
            for seq in stale {
                self.propose_unblock(seq);
            }
        }
    }

    /// The connections with a blocking command waiting (INFO's blocked_clients).
    pub(super) fn waiting_connections(&self) -> impl Iterator<Item = super::ConnId> + '_ {
        self.waits.values().filter(|w| self.sessions.contains_key(&w.ticket.conn)).map(|w| w.ticket.conn)
    }

    /// The connection closed: its wait ends (a push must not pop for it).
    pub(super) fn disconnect_waits(&mut self, conn: super::ConnId) {
        let mine: Vec<u64> =
            self.waits.iter().filter(|(_, w)| w.ticket.conn == conn).map(|(seq, _)| *seq).collect();
        for seq in mine {
            self.unblock(seq, false);
        }
    }

    /// After a snapshot up to `index` replaced the store, for each wait the
    /// store does not hold: if its block applied at or below `index`, its
    /// outcome was in the skipped entries (sealed, unknown here): answered
    /// `-TIMEOUT` at once. Otherwise its block may still apply after the
    /// snapshot, so the connection must not go on yet: an unblock seals it,
    /// and its outcome decides (an element served meanwhile is delivered; a
    /// wait that is not found is answered `-TIMEOUT`).
    pub(super) fn after_snapshot_waits(&mut self, index: Index) {
        let me = self.raft.id().0;
        let missing: Vec<(u64, bool)> = self
            .waits
            .iter()
            .filter(|(seq, _)| !self.store.is_waiting(WaiterId { node: me, seq: **seq }))
            .map(|(seq, wait)| (*seq, wait.blocked_at.is_some_and(|at| at <= index)))
            .collect();
        for (seq, sealed) in missing {
            if sealed {
                self.answer_unknown(seq);
                continue;
            }
            if let Some(wait) = self.waits.get_mut(&seq) {
                wait.skipped = true;
                // Found waiting (nothing popped yet): it blocks again.
                wait.unblocking = Some(true);
            }
            self.propose_unblock(seq);
        }
    }

    /// A leader says the wait's block applied at `index`: if this node has
    /// applied it too and the store does not hold the wait, its outcome was
    /// in entries a snapshot skipped (applied entries deliver outcomes).
    fn answer_if_skipped(&mut self, seq: u64) {
        let Some(index) = self.waits.get(&seq).and_then(|wait| wait.blocked_at) else { return };
        let id = WaiterId { node: self.raft.id().0, seq };
        if index <= self.applied && !self.store.is_waiting(id) {
            self.answer_unknown(seq);
        }
    }

    fn answer_unknown(&mut self, seq: u64) {
        if let Some(wait) = self.waits.remove(&seq) {
            self.reply(wait.ticket, Reply::error(BLOCK_UNKNOWN));
        }
    }
}
