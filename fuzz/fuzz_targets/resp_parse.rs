#![no_main]
//! Arbitrary bytes into `cashe::protocol::fuzz::resp_parse`; it must never panic.
//! `tests/protocol.rs` runs the same body over seeded inputs in `cargo test`.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    cashe::protocol::fuzz::resp_parse(data);
});
