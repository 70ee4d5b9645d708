//! MULTI, EXEC, DISCARD, WATCH and UNWATCH, with Redis 7.0's replies and
//! error texts.
//!
//! MULTI starts queueing on the connection: each command is checked as
//! Redis checks it before queueing (a known command, its arity) and answered
//! `+QUEUED`, or with the error, which dooms the transaction (EXEC then
//! answers `-EXECABORT`). EXEC proposes the whole queue as **one log entry**,
//! `CASHE.EXEC <transaction>`, applied atomically on every replica: its
//! reply is the array of the commands' replies (or answers `-EXECABORT` if
//! that entry would be over `COMMAND_BYTES_MAX`). WATCH is a read (ordered
//! like one, see `session`) that records each key's modification version
//! (`kv::watch`); EXEC carries the records in its entry, and applying it
//! runs nothing and answers a null array if any watched key was touched
//! since. The check happens when the entry is applied, so it holds across
//! leader changes and for transactions sent through followers alike.
//!
//! Inside MULTI, the key-space commands, PING, ECHO and UNWATCH are queued; the
//! other server commands (INFO, CONFIG, CLIENT, CLUSTER, ...) answer their
//! state at the node that receives them, which a log entry applied
//! everywhere cannot do, so they are refused with Redis's "Command not
//! allowed inside a transaction" (Redis runs them).

use super::server::{arity_check, on_ping};
use super::session::{Multi, Ticket, Work};
use super::{command_bytes, refuse_internal, ConnId, Node, Requester, COMMAND_BYTES_MAX};
use crate::kv::{classify, Watch};
use crate::protocol::Reply;
use serde::{Deserialize, Serialize};

/// The internal command of an EXEC entry: `[CASHE_EXEC, postcard(Transaction)]`.
pub const CASHE_EXEC: &str = "CASHE.EXEC";

const EXECABORT: &str = "EXECABORT Transaction discarded because of previous errors.";
const NOT_IN_MULTI: &str = "ERR Command not allowed inside a transaction";

/// What an EXEC entry holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Transaction {
    watches: Vec<Watch>,
    commands: Vec<Vec<Vec<u8>>>,
}

/// Commands that act at once even inside MULTI (Redis: EXEC, DISCARD,
/// MULTI, WATCH, QUIT, RESET); everything else is queued.
pub(super) fn runs_inside_multi(name: &[u8]) -> bool {
    [b"EXEC".as_slice(), b"DISCARD", b"MULTI", b"WATCH", b"QUIT"].contains(&name)
}

/// Redis keeps the first record of a key watched twice.
pub(super) fn add_watches(watched: &mut Vec<Watch>, new: Vec<Watch>) {
    for watch in new {
        if !watched.iter().any(|w| w.key == watch.key) {
            watched.push(watch);
        }
    }
}

/// Arity of the transaction commands, in Redis's convention.
fn arity_ok(name: &[u8], count: usize) -> bool {
    match name {
        b"WATCH" => count >= 2,
        _ => count == 1,
    }
}

/// Whether an entry to propose may add data (`kv::may_grow`): for an EXEC
/// entry, whether any of its commands may; for a blocking command's
/// `CASHE.BLOCK node seq command...`, whether its command may (BLMOVE).
pub(super) fn may_grow(args: &[Vec<u8>]) -> bool {
    let name = args.first().map(Vec::as_slice);
    if name == Some(super::CASHE_BLOCK.as_bytes()) {
        return args.get(3..).is_some_and(crate::kv::may_grow);
    }
    if name != Some(CASHE_EXEC.as_bytes()) {
        return crate::kv::may_grow(args);
    }
    match args.get(1).map(|blob| postcard::from_bytes::<Transaction>(blob)) {
        Some(Ok(transaction)) => transaction.commands.iter().any(|command| crate::kv::may_grow(command)),
        _ => false,
    }
}

impl Node {
    /// MULTI, EXEC, DISCARD, WATCH, UNWATCH (`name` upper case). `None`: the
    /// command was queued behind the connection's earlier ones and will be
    /// answered when it runs.
    pub(super) fn transaction_command(
        &mut self,
        ticket: Ticket,
        name: &[u8],
        args: Vec<Vec<u8>>,
    ) -> Option<Reply> {
        let conn = ticket.conn;
        if name == b"EXEC" && !arity_ok(name, args.len()) {
            // Redis's `execCommandAbort`: the transaction (if any) is discarded
            // and the keys unwatched, in order.
            let text =
                "EXECABORT Transaction discarded because of: wrong number of arguments for 'exec' command";
            if let Some(session) = self.sessions.get_mut(&conn) {
                session.multi = None;
            }
            self.enqueue(ticket, Work::Exec(Err(text.into())));
            return None;
        }
        if !arity_ok(name, args.len()) {
            let reply = wrong_arity(name);
            self.doom(conn);
            return Some(reply);
        }
        let stale = self.reads_stale(conn);
        let session = self.sessions.get_mut(&conn).expect("a session for every command");
        let work = match name {
            b"MULTI" if session.multi.is_some() => {
                return Some(Reply::error("ERR MULTI calls can not be nested"))
            }
            b"MULTI" => {
                session.multi = Some(Multi::default());
                return Some(Reply::ok());
            }
            b"WATCH" if session.multi.is_some() => {
                return Some(Reply::error("ERR WATCH inside MULTI is not allowed"));
            }
            b"WATCH" => Work::Watch { keys: args[1..].to_vec(), stale },
            b"EXEC" => match session.multi.take() {
                None => return Some(Reply::error("ERR EXEC without MULTI")),
                Some(multi) if multi.failed => Work::Exec(Err(EXECABORT.into())),
                Some(multi) => Work::Exec(Ok(multi.commands)),
            },
            b"DISCARD" => match session.multi.take() {
                None => return Some(Reply::error("ERR DISCARD without MULTI")),
                Some(_) => Work::Unwatch,
            },
            _ => Work::Unwatch, // UNWATCH
        };
        self.enqueue(ticket, work);
        None
    }

    /// Inside MULTI: queue the command, or refuse it and doom the transaction.
    /// The commands this connection has queued since MULTI, and whether
    /// one failed to queue; `None` outside MULTI (for the router, which
    /// queues a transaction at the home group and runs it in its keys').
    pub(super) fn queued_in_multi(&self, conn: ConnId) -> Option<(&[Vec<Vec<u8>>], bool)> {
        let multi = self.sessions.get(&conn)?.multi.as_ref()?;
        Some((&multi.commands, multi.failed))
    }

    /// Dooms the connection's transaction: EXEC will answer EXECABORT.
    pub(super) fn fail_multi(&mut self, conn: ConnId) {
        if let Some(multi) = self.sessions.get_mut(&conn).and_then(|s| s.multi.as_mut()) {
            multi.failed = true;
        }
    }

    pub(super) fn queue_in_multi(&mut self, conn: ConnId, name: &[u8], args: Vec<Vec<u8>>) -> Reply {
        let checked = if let Some(refusal) = refuse_internal(name) {
            Err(refusal)
        } else if let Some(arity) = arity_check(name, args.len()) {
            arity.and_then(|()| match name {
                b"PING" | b"ECHO" => Ok(()),
                _ => Err(Reply::error(NOT_IN_MULTI)),
            })
        } else if name == b"UNWATCH" {
            if args.len() == 1 {
                Ok(())
            } else {
                Err(wrong_arity(name))
            }
        } else {
            classify(&args).map(|_| ())
        };
        let Some(multi) = self.sessions.get_mut(&conn).and_then(|s| s.multi.as_mut()) else {
            return Reply::error("ERR internal: queueing outside MULTI");
        };
        match checked {
            Ok(()) => {
                multi.commands.push(args);
                Reply::Simple("QUEUED".into())
            }
            Err(reply) => {
                multi.failed = true;
                reply
            }
        }
    }

    /// A command failed to queue: EXEC will answer EXECABORT.
    fn doom(&mut self, conn: ConnId) {
        if let Some(multi) = self.sessions.get_mut(&conn).and_then(|s| s.multi.as_mut()) {
            multi.failed = true;
        }
    }

    /// EXEC's turn came: propose the queue with the connection's watches
    /// (or answer EXECABORT); either way the connection watches nothing now.
    pub(super) fn start_exec(&mut self, ticket: Ticket, queued: Result<Vec<Vec<Vec<u8>>>, String>) {
        let watches =
            self.sessions.get_mut(&ticket.conn).map(|s| std::mem::take(&mut s.watches)).unwrap_or_default();
        match queued {
            Err(abort) => self.reply(ticket, Reply::Error(abort)),
            Ok(commands) => {
                let transaction = Transaction { watches, commands };
                let blob = postcard::to_stdvec(&transaction).expect("in-memory encoding cannot fail");
                let entry = vec![CASHE_EXEC.as_bytes().to_vec(), blob];
                // Every queued command fit; all of them together may not.
                let bytes = command_bytes(&entry);
                if bytes > COMMAND_BYTES_MAX {
                    let text = format!(
                        "EXECABORT Transaction discarded because of: transaction of {bytes} bytes \
                         is over the maximum of {COMMAND_BYTES_MAX} bytes"
                    );
                    return self.reply(ticket, Reply::Error(text));
                }
                self.start_write(Requester::Local(ticket), entry);
            }
        }
    }

    /// Applies an EXEC entry: a null array if a watched key was touched,
    /// else every command in order, their replies in an array.
    pub(super) fn apply_transaction(&mut self, args: &[Vec<u8>], now_ms: u64) -> Reply {
        let transaction = match args.get(1).map(|blob| postcard::from_bytes::<Transaction>(blob)) {
            Some(Ok(transaction)) => transaction,
            _ => return Reply::error("ERR undecodable transaction entry"),
        };
        if transaction.watches.iter().any(|watch| self.store.touched(watch, now_ms)) {
            return Reply::Array(None);
        }
        let replies = transaction.commands.iter().map(|command| {
            let name = command.first().map(|n| n.to_ascii_uppercase()).unwrap_or_default();
            match name.as_slice() {
                b"PING" => on_ping(command),
                b"ECHO" => Reply::bulk(command[1].clone()),
                // Its watches were taken by this EXEC already.
                b"UNWATCH" => Reply::ok(),
                _ => self.apply_to_store(command, now_ms),
            }
        });
        Reply::Array(Some(replies.collect()))
    }
}

fn wrong_arity(name: &[u8]) -> Reply {
    let name = String::from_utf8_lossy(name).to_lowercase();
    Reply::Error(format!("ERR wrong number of arguments for '{name}' command"))
}
