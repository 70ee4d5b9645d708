//! Connection and server commands that never touch the key space: PING,
//! ECHO, QUIT, SELECT, INFO, ROLE, TIME, COMMAND, CONFIG GET, CLIENT and
//! HELLO. Answered at once by the node that received them.

use super::{ConnId, Node};
use crate::protocol::Reply;
use std::collections::BTreeMap;

/// Counters the shell keeps (the core cannot see fsyncs or wall-clock
/// latencies); the shell refreshes them and INFO prints them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct ShellStats {
    /// `(field, value)` pairs for INFO's `stats` section, in order.
    pub stats: Vec<(String, String)>,
    /// `(field, value)` pairs for INFO's `server` section, in order.
    pub server: Vec<(String, String)>,
}

/// Per-connection state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub(super) struct Clients {
    names: BTreeMap<ConnId, Vec<u8>>,
}

impl Clients {
    pub(super) fn disconnected(&mut self, conn: ConnId) {
        self.names.remove(&conn);
    }
}

impl Node {
    /// Answers a connection or server command; `None` for anything else.
    /// `name` is the command name upper-cased.
    pub(super) fn server_command(&mut self, _conn: ConnId, name: &[u8], _args: &[Vec<u8>]) -> Option<Reply> {
        match name {
            b"PING" => Some(Reply::Simple("PONG".into())),
            _ => None,
        }
    }
}
