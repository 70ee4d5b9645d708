#![no_main]
//! Arbitrary bytes into `cashe::kv::snapshot_decode` (a state-machine
//! snapshot); it must never panic. The kv unit tests run it too.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    cashe::kv::snapshot_decode(data);
});
