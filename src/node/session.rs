//! One client connection's state in the node: the order its commands take
//! effect in, the order its replies leave in, and what it set for itself
//! (protocol, READONLY, a transaction being queued, watched keys).
//!
//! # Connection order
//!
//! A connection's commands take effect in the order they were sent, as in
//! Redis, however they are pipelined and whichever node the connection is
//! on. Commands that change nothing ordered (PING, INFO, MULTI, QUEUED, ...)
//! are answered on arrival; the others wait in [`Session::waiting`] and
//! start in arrival order under one rule, by [`Class`]:
//!
//! - a **write** (a key-space write, EXEC) starts once no earlier read of
//!   the connection is unanswered: consecutive writes are proposed (or
//!   forwarded) back to back, so a pipeline of writes shares a group commit,
//!   and the log holds them in connection order;
//! - a **read** (a key-space read, WATCH) starts once no earlier write of
//!   the connection is unanswered; its ReadIndex is then taken after those
//!   writes were applied by the leader, so it sees them. Consecutive reads
//!   start together and share a heartbeat round, but are served in order
//!   (`Session::is_next_read`), so a later read never sees an older state
//!   than an earlier one;
//! - a **barrier** (UNWATCH, DISCARD) starts once everything before it is
//!   answered.
//!
//! A write is answered once applied; a `READONLY` read (served from local
//! state) also waits until this node applied the connection's last write
//! (`Session::written`), so a connection reads its own writes on any node.
//! A write answered `-TIMEOUT` may still be applied later; the next read
//! of its connection first waits for a barrier through the log
//! (`Node::pump`), so even such a write never takes effect after a later
//! command of its connection.
//!
//! # Replies
//!
//! Each command takes a [`Ticket`] (its number on the connection and the
//! protocol in force when it arrived); a reply that is ready early waits in
//! `early` until every earlier one has left. Replies are shaped for the
//! ticket's protocol when they are released.

use super::ConnId;
use crate::kv::Watch;
use crate::protocol::{Protocol, Reply};
use crate::raft::Index;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// One client command's place in its connection's reply order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(super) struct Ticket {
    pub conn: ConnId,
    pub seq: u64,
    /// The protocol the reply is shaped for (the one in force on arrival).
    pub protocol: Protocol,
}

/// What an ordered command needs before it may start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Class {
    Read,
    Write,
    Barrier,
    /// A blocking command (BLPOP...): starts after everything before it is
    /// answered, and nothing after it starts until it is (Redis blocks the
    /// connection).
    Block,
}

/// An ordered command waiting for its turn.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) struct Queued {
    pub ticket: Ticket,
    pub work: Work,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) enum Work {
    /// A key-space read; `stale`: served from local state (READONLY).
    Read { args: Vec<Vec<u8>>, stale: bool },
    /// A key-space write (or a CLUSTER command's internal write).
    Write { args: Vec<Vec<u8>> },
    /// A blocking command outside MULTI: it may wait (`Node::start_block`).
    Block { args: Vec<Vec<u8>> },
    /// WATCH key...: a read of the keys' versions.
    Watch { keys: Vec<Vec<u8>>, stale: bool },
    /// EXEC of the queued commands; `Err`: the EXECABORT error to answer.
    Exec(Result<Vec<Vec<Vec<u8>>>, String>),
    /// UNWATCH or DISCARD: forget the watched keys, answer OK.
    Unwatch,
}

impl Work {
    pub(super) fn class(&self) -> Class {
        match self {
            Work::Read { .. } | Work::Watch { .. } => Class::Read,
            Work::Write { .. } | Work::Exec(_) => Class::Write,
            Work::Unwatch => Class::Barrier,
            Work::Block { .. } => Class::Block,
        }
    }
}

/// A transaction being queued (between MULTI and EXEC/DISCARD).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub(super) struct Multi {
    pub commands: Vec<Vec<Vec<u8>>>,
    /// A command failed to queue: EXEC answers EXECABORT.
    pub failed: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub(super) struct Session {
    pub protocol: Protocol,
    pub readonly: bool,
    /// The client routes by slot itself (it asked for the topology): it is
    /// redirected rather than forwarded (`slots`).
    pub routes_by_slot: bool,
    /// Tickets handed out, and replies released.
    next_seq: u64,
    released: u64,
    /// Replies ready before an earlier one, by ticket number.
    early: BTreeMap<u64, Reply>,
    /// Ordered commands that have not started, in arrival order.
    pub waiting: VecDeque<Queued>,
    /// Started reads not answered yet, in the order they started.
    reads: VecDeque<u64>,
    /// Started writes not answered yet.
    writes: BTreeSet<u64>,
    /// The started blocking command not answered yet.
    blocked: Option<u64>,
    /// The highest log index of this connection's applied writes.
    pub written: Index,
    /// A write of this connection was answered `-TIMEOUT`: it may still be
    /// applied; the next read waits for a barrier (`Node::pump`).
    pub uncertain: bool,
    /// That barrier is in flight; the first waiting command is its read.
    pub barrier: bool,
    pub multi: Option<Multi>,
    /// Keys watched by WATCH, as it saw them; taken by EXEC.
    pub watches: Vec<Watch>,
}

/// Ordered commands queued on one connection before it must wait (the
/// client pipelines more than this many commands ahead of its replies).
pub(super) const WAITING_MAX: usize = 1 << 20;

impl Session {
    pub(super) fn ticket(&mut self, conn: ConnId) -> Ticket {
        let ticket = Ticket { conn, seq: self.next_seq, protocol: self.protocol };
        self.next_seq += 1;
        ticket
    }

    /// Whether the first waiting command may start now. `reads_skip_writes`
    /// is the planted bug `read-skips-own-writes`.
    pub(super) fn head_may_start(&self, reads_skip_writes: bool) -> bool {
        let Some(head) = self.waiting.front() else { return false };
        if self.blocked.is_some() {
            return false;
        }
        match head.work.class() {
            Class::Write => self.reads.is_empty(),
            Class::Read => self.writes.is_empty() || reads_skip_writes,
            Class::Barrier | Class::Block => self.reads.is_empty() && self.writes.is_empty(),
        }
    }

    pub(super) fn started(&mut self, seq: u64, class: Class) {
        match class {
            Class::Read => self.reads.push_back(seq),
            Class::Write => _ = self.writes.insert(seq),
            Class::Block => self.blocked = Some(seq),
            Class::Barrier => {}
        }
    }

    /// Whether `seq` is the oldest unanswered read: reads are served in order.
    pub(super) fn is_next_read(&self, seq: u64) -> bool {
        self.reads.front() == Some(&seq)
    }

    /// The command `ticket` is answered with `reply`: it no longer holds
    /// back later ones. Returns the replies that may leave now, in order.
    pub(super) fn answer(&mut self, ticket: Ticket, reply: Reply) -> Vec<Reply> {
        self.writes.remove(&ticket.seq);
        self.reads.retain(|seq| *seq != ticket.seq);
        if self.blocked == Some(ticket.seq) {
            self.blocked = None;
        }
        let reply = reply.for_protocol(ticket.protocol);
        assert!(ticket.seq >= self.released && ticket.seq < self.next_seq, "a ticket answered twice");
        if ticket.seq != self.released {
            let previous = self.early.insert(ticket.seq, reply);
            assert!(previous.is_none(), "a ticket answered twice");
            return Vec::new();
        }
        let mut out = vec![reply];
        self.released += 1;
        while let Some(reply) = self.early.remove(&self.released) {
            out.push(reply);
            self.released += 1;
        }
        out
    }

    /// Checks the session's own bookkeeping (a bug, never input).
    pub(super) fn check_invariants(&self) {
        assert!(self.released <= self.next_seq, "more replies than commands");
        assert!(self.early.keys().all(|seq| *seq > self.released && *seq < self.next_seq), "early replies");
        let started = self.reads.iter().chain(&self.writes).chain(&self.blocked);
        assert!(started.clone().all(|seq| *seq >= self.released && *seq < self.next_seq), "started commands");
        let waiting = self.waiting.iter().map(|q| q.ticket.seq);
        assert!(waiting.clone().zip(waiting.skip(1)).all(|(a, b)| a < b), "waiting out of order");
        if let Some(head) = self.waiting.front() {
            assert!(
                started.clone().all(|seq| *seq < head.ticket.seq),
                "a command started before an earlier one"
            );
        }
    }
}
