//! Requests through the members of an in-memory cluster of routers
//! (`tests/router.rs`, `tests/router_cores.rs`), and the walk both make
//! over every key through a member.

use cashe::node::ConnId;
use cashe::protocol::Reply;

/// A cluster whose member `i` takes commands on connection `conn`.
pub trait Requests {
    /// Hands `commands` of `conn` to member `i` at once and delivers what
    /// that sets off.
    fn send(&mut self, i: usize, conn: ConnId, commands: &[&str]);

    /// The replies member `i` released so far, not yet taken.
    fn replies(&mut self, i: usize) -> &mut Vec<(ConnId, Reply)>;

    /// One tick of every member, and every message delivered.
    fn tick_all(&mut self);

    /// Sends `commands` on connection `conn` of member `i` at once (a
    /// pipeline) and returns their replies, in the order they left, within
    /// `PATIENCE_TICKS`.
    fn pipeline(&mut self, i: usize, conn: u64, commands: &[&str]) -> Vec<Reply> {
        let conn = ConnId(conn);
        self.send(i, conn, commands);
        for _ in 0..PATIENCE_TICKS {
            let replies = self.replies(i);
            let got: Vec<Reply> =
                replies.iter().filter(|(c, _)| *c == conn).map(|(_, r)| r.clone()).collect();
            if got.len() >= commands.len() {
                replies.retain(|(c, _)| *c != conn);
                assert_eq!(got.len(), commands.len(), "more replies than commands: {got:?}");
                return got;
            }
            self.tick_all();
        }
        panic!("{commands:?} on member {i}: no complete answer");
    }

    fn request(&mut self, i: usize, conn: u64, command: &str) -> Reply {
        self.pipeline(i, conn, &[command]).remove(0)
    }
}

/// Ticks a request may take before a test gives up on it.
pub const PATIENCE_TICKS: usize = 1000;

/// Through member `i`: SET then GET each key (value `key@i`, connection
/// 10), then APPEND `+` to every key in one pipeline (connection 11),
/// whose replies must leave in order, whatever group, member or core each
/// key's group is at.
pub fn write_every_key_through(cluster: &mut impl Requests, i: usize, keys: &[String]) {
    for key in keys {
        let value = format!("{key}@{i}");
        assert_eq!(cluster.request(i, 10, &format!("SET {key} {value}")), Reply::ok(), "SET {key} via {i}");
        let got = cluster.request(i, 10, &format!("GET {key}"));
        assert_eq!(got, Reply::bulk(value.into_bytes()), "GET {key} via {i}");
    }
    let pipeline: Vec<String> = keys.iter().map(|k| format!("APPEND {k} +")).collect();
    let pipeline: Vec<&str> = pipeline.iter().map(String::as_str).collect();
    let lengths = cluster.pipeline(i, 11, &pipeline);
    for (key, length) in keys.iter().zip(lengths) {
        assert_eq!(length, Reply::Integer(format!("{key}@{i}+").len() as i64), "APPEND {key} via {i}");
    }
}
