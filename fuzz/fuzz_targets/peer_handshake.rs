#![no_main]
//! What a stranger writes to a node's Raft port under a cluster secret,
//! into `cashe::node::handshake::fuzz_stranger`: it must never panic, and
//! no message may reach the node without the secret (the fuzzer cannot
//! know it). The handshake's unit tests run the same body over seeded
//! mutations of a real transcript in `cargo test`.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    assert_eq!(cashe::node::handshake::fuzz_stranger(data), 0, "a message got through without the secret");
});
