//! Helpers of the in-memory cluster tests (`tests/node.rs`,
//! `tests/router.rs`).
#![allow(dead_code)]

use cashe::node::MemberInfo;

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
