#![no_main]
//! Arbitrary bytes into `cashe::wal::fuzz::wal_recover`; it must never panic.
//! `tests/wal.rs` runs the same body over seeded inputs in `cargo test`.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    cashe::wal::fuzz::wal_recover(data);
});
