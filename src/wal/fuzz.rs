//! Fuzz target bodies: each takes arbitrary bytes and must not panic. The
//! cargo-fuzz targets in `fuzz/` call them, and `tests/wal.rs` runs them
//! over seeded random and mutated inputs so CI covers them without a
//! fuzzer. Each returns whether the input decoded, for coverage checks.

use super::{format, recover};
use crate::frame;

/// Splits the input into frames until one fails.
pub fn frame_decode(data: &[u8]) -> bool {
    let mut offset = 0;
    let mut any = false;
    while let Ok((payload, used)) = frame::decode(&data[offset..]) {
        assert!(!payload.is_empty() && used == payload.len() + frame::FRAME_HEADER_BYTES);
        offset += used;
        any = true;
    }
    any
}

/// Recovers a log from the input taken as one (last) segment, and as an
/// older segment followed by an empty last one.
pub fn wal_recover(data: &[u8]) -> bool {
    let name = format::segment_name(crate::raft::Index(1));
    let single = recover::replay(None, &[(name.clone(), data.to_vec())]);
    let older = recover::replay(
        None,
        &[(name, data.to_vec()), (format::segment_name(crate::raft::Index(u64::MAX)), vec![])],
    );
    single.is_ok() || older.is_ok()
}

/// Decodes the input as a snapshot file.
pub fn snapshot_decode(data: &[u8]) -> bool {
    format::decode_snapshot(data).is_ok()
}
