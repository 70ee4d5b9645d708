//! Clients blocked by BLPOP, BRPOP, BLMOVE, BRPOPLPUSH, BLMPOP, BZPOPMIN,
//! BZPOPMAX and BZMPOP, as replicated state.
//!
//! A blocking command that finds nothing to pop does not wait inside the
//! store: the store answers it as Redis does inside MULTI (nil at once).
//! Blocking is the node's: it proposes `CASHE.BLOCK node seq command...`,
//! and when that entry applies ([`Store::block`]) the command runs; if it
//! found nothing, the waiter `(node, seq)` joins the queue of every key it
//! names, in log order. After every applied entry the node calls
//! [`Store::serve_blocked`]: each key with waiters that now holds a list
//! (or a sorted set, for the BZ forms) serves them first come, first
//! served, by running the command's non-blocking form on that key (LPOP,
//! RPOP, LMOVE, LMPOP, ZPOPMIN, ZPOPMAX, ZMPOP) — a logged write on every
//! replica alike, so every replica pops the same element for the same
//! waiter. `CASHE.UNBLOCK node seq` ([`Store::unblock`]) ends a wait (the
//! client's timeout as its node's clock saw it, a closed connection, a
//! wait of a previous run of the node).
//!
//! What happens to a waiter is an [`Outcome`] the store lists until the
//! node takes it ([`Store::take_served`]); only the waiter's own node acts
//! on it. An outcome is decided by the entry that applies it, so a leader
//! change while a client waits neither loses an element nor pops one twice.
//!
//! Differences from Redis 7.0: keys that became ready in one entry (say, a
//! transaction pushing to two keys) are served in key order, where Redis
//! serves them in the order they were signalled; a BLMOVE waiter whose
//! destination holds another type stays blocked and the next waiter is
//! served (Redis pushes the element back and leaves that client blocked,
//! the same outcome).

use super::key::Key;
use super::{Store, Value};
use crate::protocol::Reply;
use std::collections::{BTreeMap, BTreeSet};

/// Who waits: the node the client is connected to and the node's number
/// for the wait (unique per run of the node).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WaiterId {
    pub node: u64,
    pub seq: u64,
}

/// What became of a waiter.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The command ran: its reply (an element, or an error).
    Reply(Reply),
    /// The wait ended without an element (`CASHE.UNBLOCK`): the waiter had
    /// found nothing to pop when it blocked, and nothing since.
    Unblocked,
    /// A `CASHE.UNBLOCK` for a waiter that does not wait: it was served
    /// before, or its `CASHE.BLOCK` never applied (then it never ran).
    NotWaiting,
}

/// One blocked command.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) struct Waiter {
    pub(super) id: WaiterId,
    /// The blocking command as the client sent it.
    pub(super) args: Vec<Vec<u8>>,
}

/// The blocked commands, by the order they blocked in (the store's version
/// when their `CASHE.BLOCK` applied: unique, increasing).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub(super) struct Waiters {
    by_order: BTreeMap<u64, Waiter>,
    by_id: BTreeMap<WaiterId, u64>,
    /// For each key, the orders of the waiters it names.
    by_key: BTreeMap<Key, BTreeSet<u64>>,
    /// Outcomes not yet taken by the node (not state: drained after every entry).
    served: Vec<(WaiterId, Outcome)>,
}

/// The kind of value a blocking command pops from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pops {
    List,
    SortedSet,
}

/// Whether `args` names a blocking command.
pub fn is_blocking(args: &[Vec<u8>]) -> bool {
    args.first().is_some_and(|name| blocking_name(name).is_some())
}

fn blocking_name(name: &[u8]) -> Option<&'static str> {
    const NAMES: [&str; 8] =
        ["blpop", "brpop", "blmove", "brpoplpush", "blmpop", "bzpopmin", "bzpopmax", "bzmpop"];
    NAMES.into_iter().find(|n| name.eq_ignore_ascii_case(n.as_bytes()))
}

/// The timeout of a blocking command in ms, as its node counts it: `None`
/// for 0 (wait for ever) or a timeout the store will refuse (the command
/// then answers its error when it applies, never waiting).
pub fn timeout_ms(args: &[Vec<u8>]) -> Option<u64> {
    let name = blocking_name(args.first()?)?;
    let position = match name {
        "blmove" => 5,
        "brpoplpush" => 3,
        "blmpop" | "bzmpop" => 1,
        _ => args.len().checked_sub(1)?,
    };
    let text = std::str::from_utf8(args.get(position)?).ok()?;
    let seconds: f64 = text.trim().parse().ok()?;
    if !seconds.is_finite() || seconds <= 0.0 {
        return None;
    }
    // Redis rounds up to whole ms; over a century is as good as for ever.
    let ms = (seconds * 1000.0).ceil();
    (ms < 3.2e12).then_some(ms as u64)
}

/// The reply of a blocking command whose wait ended without an element:
/// nil in its shape (a null array, or a null bulk for the MOVE forms).
pub fn timeout_reply(args: &[Vec<u8>]) -> Reply {
    match args.first().and_then(|name| blocking_name(name)) {
        Some("blmove" | "brpoplpush") => Reply::Bulk(None),
        _ => Reply::Array(None),
    }
}

/// The keys a (valid) blocking command waits on, and what it pops.
fn waited_keys(args: &[Vec<u8>]) -> (Vec<&[u8]>, Pops) {
    let name = args.first().and_then(|name| blocking_name(name)).unwrap_or_default();
    let pops = if name.starts_with("bz") { Pops::SortedSet } else { Pops::List };
    let keys: Vec<&[u8]> = match name {
        "blmove" | "brpoplpush" => args.get(1).map(Vec::as_slice).into_iter().collect(),
        "blmpop" | "bzmpop" => {
            let count = args.get(2).and_then(|n| super::args::parse_i64(n)).unwrap_or(0).max(0) as usize;
            args.iter().skip(3).take(count).map(Vec::as_slice).collect()
        }
        _ => args[1..args.len().saturating_sub(1)].iter().map(Vec::as_slice).collect(),
    };
    (keys, pops)
}

/// The non-blocking command that serves a waiter on `key`.
fn unblocked_form(args: &[Vec<u8>], key: &[u8]) -> Vec<Vec<u8>> {
    let word = |w: &str| w.as_bytes().to_vec();
    let name = args.first().and_then(|name| blocking_name(name)).unwrap_or_default();
    match name {
        "blpop" => vec![word("LPOP"), key.to_vec()],
        "brpop" => vec![word("RPOP"), key.to_vec()],
        "bzpopmin" => vec![word("ZPOPMIN"), key.to_vec()],
        "bzpopmax" => vec![word("ZPOPMAX"), key.to_vec()],
        "blmove" => vec![word("LMOVE"), key.to_vec(), args[2].clone(), args[3].clone(), args[4].clone()],
        "brpoplpush" => vec![word("LMOVE"), key.to_vec(), args[2].clone(), word("RIGHT"), word("LEFT")],
        // BLMPOP timeout numkeys key... where [COUNT n]: the options after the keys.
        _ => {
            let count = args.get(2).and_then(|n| super::args::parse_i64(n)).unwrap_or(0).max(0) as usize;
            let mut form =
                vec![word(if name == "blmpop" { "LMPOP" } else { "ZMPOP" }), word("1"), key.to_vec()];
            form.extend(args.iter().skip(3 + count).cloned());
            form
        }
    }
}

/// Whether a reply means "nothing to pop".
fn is_nil(reply: &Reply) -> bool {
    matches!(reply, Reply::Bulk(None) | Reply::Array(None) | Reply::Null)
}

impl Store {
    /// `CASHE.BLOCK`: runs the blocking command `args` for waiter `id`; if
    /// it found nothing to pop, the waiter waits on its keys. Either way
    /// nothing is returned: what the client gets is an [`Outcome`].
    pub fn block(&mut self, id: WaiterId, args: &[Vec<u8>], now: u64) {
        if self.waiters.by_id.contains_key(&id) || !is_blocking(args) {
            let reply =
                Reply::error("ERR CASHE.BLOCK of a waiter that waits already, or of no blocking command");
            return self.waiters.served.push((id, Outcome::Reply(reply)));
        }
        let reply = self.apply(args, now);
        if !is_nil(&reply) {
            return self.waiters.served.push((id, Outcome::Reply(reply)));
        }
        let order = self.version;
        let (keys, _) = waited_keys(args);
        for key in keys {
            self.waiters.by_key.entry(Key::new(key)).or_default().insert(order);
        }
        self.waiters.by_order.insert(order, Waiter { id, args: args.to_vec() });
        self.waiters.by_id.insert(id, order);
    }

    /// `CASHE.UNBLOCK`: the waiter stops waiting (if it still does).
    pub fn unblock(&mut self, id: WaiterId) {
        let outcome = match self.waiters.by_id.get(&id).copied() {
            Some(order) => {
                self.forget_waiter(order);
                Outcome::Unblocked
            }
            None => Outcome::NotWaiting,
        };
        self.waiters.served.push((id, outcome));
    }

    fn forget_waiter(&mut self, order: u64) -> Option<Waiter> {
        let waiter = self.waiters.by_order.remove(&order)?;
        self.waiters.by_id.remove(&waiter.id);
        for key in waited_keys(&waiter.args).0 {
            if let Some(orders) = self.waiters.by_key.get_mut(key) {
                orders.remove(&order);
                if orders.is_empty() {
                    self.waiters.by_key.remove(key);
                }
            }
        }
        Some(waiter)
    }

    /// Serves the waiters of every key that holds something to pop, each
    /// key's waiters in the order they blocked, until no waiter can be
    /// served (a BLMOVE may make another key ready). Called after every
    /// applied entry; costs nothing without waiters.
    pub fn serve_blocked(&mut self, now: u64) {
        loop {
            let mut served_any = false;
            let keys: Vec<Key> = self.waiters.by_key.keys().cloned().collect();
            for key in keys {
                served_any |= self.serve_key(key.as_bytes(), now);
            }
            if !served_any {
                return;
            }
        }
    }

    /// Serves `key`'s waiters while it holds something they pop; returns
    /// whether any was served.
    fn serve_key(&mut self, key: &[u8], now: u64) -> bool {
        let mut served_any = false;
        let mut after = None;
        loop {
            let Some(orders) = self.waiters.by_key.get(key) else { return served_any };
            let next = match after {
                None => orders.first(),
                Some(previous) => orders.range(previous + 1..).next(),
            };
            let Some(order) = next.copied() else { return served_any };
            let waiter = &self.waiters.by_order[&order];
            let pops = waited_keys(&waiter.args).1;
            let ready = matches!(
                (self.live(key, now).map(|entry| &entry.value), pops),
                (Some(Value::List(_)), Pops::List) | (Some(Value::ZSet(_)), Pops::SortedSet)
            );
            if !ready {
                return served_any;
            }
            let form = unblocked_form(&waiter.args, key);
            if !self.destination_takes_a_list(&waiter.args, now) {
                after = Some(order); // BLMOVE to a key of another type: the next waiter
                continue;
            }
            let reply = self.apply(&form, now);
            let reply = match (reply, pops, form[0].as_slice()) {
                // BLPOP, BRPOP: [key, element].
                (Reply::Bulk(Some(element)), Pops::List, b"LPOP" | b"RPOP") => {
                    Reply::Array(Some(vec![Reply::bulk(key.to_vec()), Reply::bulk(element)]))
                }
                // BZPOPMIN, BZPOPMAX: [key, member, score].
                (Reply::Array(Some(mut pair)), Pops::SortedSet, b"ZPOPMIN" | b"ZPOPMAX") => {
                    pair.insert(0, Reply::bulk(key.to_vec()));
                    Reply::Array(Some(pair))
                }
                (Reply::Pairs(mut pairs), Pops::SortedSet, b"ZPOPMIN" | b"ZPOPMAX") if pairs.len() == 1 => {
                    let (member, score) = pairs.remove(0);
                    Reply::Array(Some(vec![Reply::bulk(key.to_vec()), member, score]))
                }
                (other, _, _) => other,
            };
            let waiter = self.forget_waiter(order).expect("listed");
            self.waiters.served.push((waiter.id, Outcome::Reply(reply)));
            served_any = true;
        }
    }

    /// For BLMOVE and BRPOPLPUSH, whether the destination is absent or a
    /// list; true for the other commands.
    fn destination_takes_a_list(&self, args: &[Vec<u8>], now: u64) -> bool {
        match args.first().and_then(|name| blocking_name(name)) {
            Some("blmove" | "brpoplpush") => {
                matches!(self.live(&args[2], now).map(|e| &e.value), None | Some(Value::List(_)))
            }
            _ => true,
        }
    }

    /// The outcomes decided since the last call, in the order they were.
    pub fn take_served(&mut self) -> Vec<(WaiterId, Outcome)> {
        std::mem::take(&mut self.waiters.served)
    }

    /// The waits of `node` the store holds, oldest first.
    pub fn waiters_of(&self, node: u64) -> impl Iterator<Item = WaiterId> + '_ {
        self.waiters.by_order.values().map(|waiter| waiter.id).filter(move |id| id.node == node)
    }

    /// Whether `id` waits.
    pub fn is_waiting(&self, id: WaiterId) -> bool {
        self.waiters.by_id.contains_key(&id)
    }

    /// The waiters in the order they blocked, for snapshots.
    pub(super) fn waiter_list(&self) -> impl ExactSizeIterator<Item = (u64, &Waiter)> {
        self.waiters.by_order.iter().map(|(order, waiter)| (*order, waiter))
    }

    /// Restores one waiter from a snapshot; false if it does not fit (a
    /// repeated order or id, or not a blocking command).
    pub(super) fn restore_waiter(&mut self, order: u64, waiter: Waiter) -> bool {
        let valid = is_blocking(&waiter.args)
            && !self.waiters.by_order.contains_key(&order)
            && !self.waiters.by_id.contains_key(&waiter.id)
            && order <= self.version;
        if !valid {
            return false;
        }
        for key in waited_keys(&waiter.args).0 {
            self.waiters.by_key.entry(Key::new(key)).or_default().insert(order);
        }
        self.waiters.by_id.insert(waiter.id, order);
        self.waiters.by_order.insert(order, waiter);
        true
    }

    /// The waiter indexes agree (tests, and every restore).
    pub(super) fn check_waiters(&self) {
        assert_eq!(self.waiters.by_order.len(), self.waiters.by_id.len(), "waiter index sizes");
        for (order, waiter) in &self.waiters.by_order {
            assert_eq!(self.waiters.by_id.get(&waiter.id), Some(order), "waiter id index");
            for key in waited_keys(&waiter.args).0 {
                assert!(self.waiters.by_key.get(key).is_some_and(|o| o.contains(order)), "waiter key index");
            }
        }
        for orders in self.waiters.by_key.values() {
            assert!(!orders.is_empty() && orders.iter().all(|o| self.waiters.by_order.contains_key(o)));
        }
    }
}
