//! Redis Cluster's key slots: a key's slot is the CRC16 (XMODEM: polynomial
//! 0x1021, initial value 0, no reflection) of the key, or of its hash tag,
//! modulo 16,384. The hash tag is what lies between the first `{` and the
//! first `}` after it, when that is not empty; so `{user1}.name` and
//! `{user1}.mail` share a slot. Groundwork for spreading the key space over
//! several Raft groups (issue 16); nothing routes by slot yet.

/// How many slots the key space has, as in Redis Cluster.
pub const SLOTS: u16 = 16_384;

/// CRC16-CCITT (XMODEM), the checksum Redis Cluster hashes keys with.
pub fn crc16(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &byte in bytes {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 { (crc << 1) ^ 0x1021 } else { crc << 1 };
        }
    }
    crc
}

/// The part of `key` that is hashed: its hash tag if it has a non-empty
/// one, else all of it (Redis's `keyHashSlot`).
pub fn hashed_part(key: &[u8]) -> &[u8] {
    if let Some(open) = key.iter().position(|&b| b == b'{') {
        if let Some(length) = key[open + 1..].iter().position(|&b| b == b'}') {
            if length > 0 {
                return &key[open + 1..open + 1 + length];
            }
        }
    }
    key
}

/// The key group (1 to `shards`) holding `slot` when the key space is in
/// `shards > 1` groups of contiguous slot ranges (`node::router`).
pub fn group_of_slot(slot: u16, shards: u32) -> u32 {
    1 + u32::from(slot) * shards / u32::from(SLOTS)
}

/// The slot of `key`, in `0..SLOTS`.
pub fn key_slot(key: &[u8]) -> u16 {
    crc16(hashed_part(key)) & (SLOTS - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc16_is_xmodem() {
        // The check value of CRC-16/XMODEM, and Redis Cluster's own example.
        assert_eq!(crc16(b"123456789"), 0x31c3);
        assert_eq!(crc16(b""), 0);
    }

    /// Slots Redis 7.0 answers to `CLUSTER KEYSLOT` (its documentation's
    /// examples and a few more taken from a cluster-enabled redis-server).
    #[test]
    fn slots_are_redis_clusters() {
        assert_eq!(key_slot(b"somekey"), 11058);
        assert_eq!(key_slot(b"foo{hash_tag}"), 2515);
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(key_slot(b"bar"), 5061);
        assert_eq!(key_slot(b""), 0);
        assert_eq!(key_slot(b"{user1000}.following"), 3443);
        assert_eq!(key_slot(b"foo{{bar}}zap"), 4015);
    }

    #[test]
    fn hash_tags_follow_redis_rules() {
        assert_eq!(key_slot(b"{user1000}.following"), key_slot(b"{user1000}.followers"));
        assert_eq!(hashed_part(b"{user1000}.following"), b"user1000");
        // The first `{` and the first `}` after it; an empty tag hashes the
        // whole key; no closing brace hashes the whole key.
        assert_eq!(hashed_part(b"foo{{bar}}zap"), b"{bar");
        assert_eq!(hashed_part(b"foo{bar}{zap}"), b"bar");
        assert_eq!(hashed_part(b"foo{}{bar}"), b"foo{}{bar}");
        assert_eq!(hashed_part(b"{bar"), b"{bar");
        assert_eq!(hashed_part(b"}{x}"), b"x");
        for key in [&b"a"[..], b"{", b"}", b"{}", b"\xff\x00{\xfe}"] {
            assert!(key_slot(key) < SLOTS);
        }
    }
}
