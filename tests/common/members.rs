//! Helpers of the in-memory cluster tests (`tests/node.rs`,
//! `tests/router.rs`, `tests/operator.rs`).
#![allow(dead_code)]

use cashe::node::{MemberInfo, Node, Output};

/// Member `n`'s name and addresses, as its server would record them.
pub fn info(n: u64) -> MemberInfo {
    MemberInfo {
        name: format!("raft{n}"),
        raft_addr: format!("127.0.0.1:{}", 4000 + n),
        client_addr: format!("127.0.0.1:{}", 3000 + n),
        tls_client_addr: None,
    }
}

/// A command's arguments: `text` split at spaces.
pub fn args(text: &str) -> Vec<Vec<u8>> {
    text.split(' ').map(|w| w.as_bytes().to_vec()).collect()
}

/// Hands every record `node` wants persisted back as durable, until it is
/// idle; returns what it sent and replied on the way.
pub fn settle(node: &mut Node) -> Output {
    let mut all = Output::default();
    for _ in 0..100 {
        let output = node.take_output();
        if output == Output::default() {
            break;
        }
        if let Some((lsn, _)) = output.persist.last() {
            node.persisted(*lsn);
        }
        all.send.extend(output.send);
        all.replies.extend(output.replies);
    }
    all
}
