//! Backups (issue 18): what a group answers to `CASHE.BACKUP` and
//! `CASHE.DIGEST`, and the backup file that `cashe backup` writes and
//! `cashe restore` reads (the format is in docs/wal-format.md, "Backup
//! files").
//!
//! Both commands are reads: the node serves them as it serves GET, after a
//! ReadIndex round once the group has applied the leader's commit index,
//! so each answer is the group's state at one log index, linearizable.
//! `SLOT n` names the group by one of its slots (the router routes on it;
//! here it is only checked).

use super::slot::SLOTS;
use super::Store;
use crate::protocol::Reply;

/// The first item of a `CASHE.BACKUP` reply, so that a tool knows what it
/// got.
pub const BACKUP_REPLY_TAG: &str = "cashe-backup";

/// `[SLOT n]`, or an error to answer.
pub fn slot_argument(args: &[Vec<u8>]) -> Result<Option<u16>, Reply> {
    match args {
        [_] => Ok(None),
        [_, word, slot] if word.eq_ignore_ascii_case(b"SLOT") => std::str::from_utf8(slot)
            .ok()
            .and_then(|s| s.parse::<u16>().ok())
            .filter(|s| *s < SLOTS)
            .map(Some)
            .ok_or_else(|| Reply::error("ERR Invalid or out of range slot")),
        _ => Err(Reply::error("ERR syntax error")),
    }
}

/// `CASHE.BACKUP`: `[tag, version, keys, crc32, snapshot]` — the store's
/// version (write commands applied), its key count, the CRC-32 of the
/// snapshot bytes, and the bytes (`Store::snapshot`, which `Store::restore`
/// reads).
pub(super) fn on_backup(store: &Store, args: &[Vec<u8>]) -> Reply {
    if let Err(reply) = slot_argument(args) {
        return reply;
    }
    let bytes = store.snapshot();
    let crc = crc32fast::hash(&bytes);
    Reply::Array(Some(vec![
        Reply::bulk(BACKUP_REPLY_TAG),
        Reply::Integer(store.version as i64),
        Reply::Integer(store.entries.len() as i64),
        Reply::Integer(i64::from(crc)),
        Reply::bulk(bytes),
    ]))
}

/// `CASHE.DIGEST`: `Store::digest` as 64 hexadecimal digits.
pub(super) fn on_digest(store: &Store, args: &[Vec<u8>], now: u64) -> Reply {
    if let Err(reply) = slot_argument(args) {
        return reply;
    }
    Reply::bulk(hex(&store.digest(now)))
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The magic at the start of a backup file.
pub const BACKUP_MAGIC: &[u8; 8] = b"cashebak";
/// The backup file format this build writes and reads.
pub const BACKUP_FORMAT: u32 = 1;

/// One group's snapshot in a backup file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackupPart {
    /// The slots of the group, first and last.
    pub slots: (u16, u16),
    /// The store's version when it was taken.
    pub version: u64,
    /// `Store::snapshot` bytes.
    pub data: Vec<u8>,
}

/// The header of a backup file: magic, format, part count (little-endian).
pub fn encode_header(parts: u32) -> Vec<u8> {
    let mut out = BACKUP_MAGIC.to_vec();
    out.extend_from_slice(&BACKUP_FORMAT.to_le_bytes());
    out.extend_from_slice(&parts.to_le_bytes());
    out
}

/// What precedes a part's data: first and last slot, version, length and
/// CRC-32 of the data (`length` and `crc` given, so that a tool writes
/// the header before the data it streams).
pub fn encode_part_header(slots: (u16, u16), version: u64, length: u64, crc: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(28);
    out.extend_from_slice(&u32::from(slots.0).to_le_bytes());
    out.extend_from_slice(&u32::from(slots.1).to_le_bytes());
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(&length.to_le_bytes());
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// A whole backup file in memory: the format's reference for the tests
/// (`cashe backup` streams the same bytes).
#[cfg(test)]
pub fn encode(parts: &[BackupPart]) -> Vec<u8> {
    let mut out = encode_header(parts.len() as u32);
    for part in parts {
        let crc = crc32fast::hash(&part.data);
        out.extend_from_slice(&encode_part_header(part.slots, part.version, part.data.len() as u64, crc));
        out.extend_from_slice(&part.data);
    }
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Reads a backup file, checking its magic, format, every part's CRC and
/// the whole file's; an error says what is wrong and where.
pub fn decode(bytes: &[u8]) -> Result<Vec<BackupPart>, String> {
    let body_len = bytes.len().checked_sub(4).ok_or("shorter than a backup file's header")?;
    let (body, trailer) = bytes.split_at(body_len);
    let mut at = 0usize;
    let mut take = |n: usize, what: &str| -> Result<&[u8], String> {
        let end = at.checked_add(n).filter(|end| *end <= body.len());
        let end = end.ok_or_else(|| format!("cut short in {what} at byte {at} (of {})", bytes.len()))?;
        let slice = &body[at..end];
        at = end;
        Ok(slice)
    };
    let u32_of = |b: &[u8]| u32::from_le_bytes(b.try_into().expect("4 bytes"));
    let u64_of = |b: &[u8]| u64::from_le_bytes(b.try_into().expect("8 bytes"));
    if take(8, "the magic")? != BACKUP_MAGIC {
        return Err("not a cashe backup file (no `cashebak` magic)".into());
    }
    let format = u32_of(take(4, "the format")?);
    if format != BACKUP_FORMAT {
        return Err(format!("backup file format {format}; this build reads {BACKUP_FORMAT}"));
    }
    let count = u32_of(take(4, "the part count")?);
    let mut parts = Vec::new();
    for part in 0..count {
        let first = u32_of(take(4, "a part header")?);
        let last = u32_of(take(4, "a part header")?);
        let version = u64_of(take(8, "a part header")?);
        let len = u64_of(take(8, "a part header")?);
        let crc = u32_of(take(4, "a part header")?);
        let len = usize::try_from(len).map_err(|_| format!("part {part}: length {len}"))?;
        let data = take(len, "a part's data")?;
        if crc32fast::hash(data) != crc {
            return Err(format!("part {part} (slots {first}-{last}): its data does not match its CRC"));
        }
        let slot = |s: u32| u16::try_from(s).ok().filter(|s| *s < SLOTS);
        let (Some(first), Some(last)) = (slot(first), slot(last)) else {
            return Err(format!("part {part}: slots {first}-{last} out of range"));
        };
        parts.push(BackupPart { slots: (first, last), version, data: data.to_vec() });
    }
    if at != body.len() {
        return Err(format!("{} bytes after the last part", body.len() - at));
    }
    if crc32fast::hash(body) != u32_of(trailer) {
        return Err("the file does not match its CRC (the last 4 bytes)".into());
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(pairs: &[(&str, &str)]) -> Store {
        let mut store = Store::default();
        for (k, v) in pairs {
            let args: Vec<Vec<u8>> = vec![b"SET".to_vec(), k.as_bytes().to_vec(), v.as_bytes().to_vec()];
            store.apply(&args, 1);
        }
        store
    }

    #[test]
    fn digests_follow_contents_not_history_and_xor_over_disjoint_stores() {
        let a = store(&[("a", "1"), ("b", "2")]);
        let mut churned = store(&[("b", "x"), ("a", "1"), ("c", "3")]);
        churned.apply(&[b"DEL".to_vec(), b"c".to_vec()], 1);
        churned.apply(&[b"SET".to_vec(), b"b".to_vec(), b"2".to_vec()], 1);
        assert_eq!(a.digest(1), churned.digest(1), "same contents, other history");
        assert_ne!(a.digest(1), store(&[("a", "1"), ("b", "3")]).digest(1), "a value differs");
        assert_ne!(a.digest(1), store(&[("a", "1")]).digest(1), "a key is missing");
        assert_eq!(Store::default().digest(1), [0; 32]);
        let (left, right) = (store(&[("a", "1")]), store(&[("b", "2")]));
        let xor: Vec<u8> = left.digest(1).iter().zip(right.digest(1)).map(|(l, r)| l ^ r).collect();
        assert_eq!(xor, a.digest(1));
        let mut expiring = store(&[("a", "1"), ("b", "2")]);
        expiring.apply(&[b"PEXPIREAT".to_vec(), b"b".to_vec(), b"100".to_vec()], 1);
        assert_ne!(expiring.digest(1), a.digest(1), "an expiry is part of the contents");
        assert_eq!(expiring.digest(100), store(&[("a", "1")]).digest(100), "an expired key is not");
    }

    #[test]
    fn merged_parts_keep_every_key_and_refuse_a_shared_one() {
        let whole = store(&[("a", "1"), ("b", "2"), ("c", "3")]);
        let merged = Store::merged(vec![store(&[("b", "2")]), store(&[("c", "3"), ("a", "1")])]).unwrap();
        assert_eq!(merged.digest(1), whole.digest(1));
        assert_eq!(merged.on_dbsize(1), Reply::Integer(3));
        let restored = Store::restore(&merged.snapshot()).unwrap();
        assert_eq!(restored.digest(1), whole.digest(1));
        assert!(Store::merged(vec![store(&[("a", "1")]), store(&[("a", "2")])]).is_err());
    }

    #[test]
    fn a_backup_file_round_trips_and_every_damaged_byte_is_refused() {
        let parts = vec![
            BackupPart { slots: (0, 8191), version: 7, data: store(&[("a", "1")]).snapshot() },
            BackupPart { slots: (8192, 16383), version: 9, data: store(&[("b", "2")]).snapshot() },
        ];
        let bytes = encode(&parts);
        assert_eq!(decode(&bytes).unwrap(), parts);
        for at in 0..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[at] ^= 0x10;
            assert!(decode(&damaged).is_err(), "a flipped bit at byte {at} was not noticed");
        }
        for len in 0..bytes.len() {
            assert!(decode(&bytes[..len]).is_err(), "a file cut at {len} bytes was read");
        }
    }

    #[test]
    fn the_commands_check_their_slot_argument() {
        let store = store(&[("a", "1")]);
        let args = |text: &str| text.split(' ').map(|w| w.as_bytes().to_vec()).collect::<Vec<_>>();
        assert!(matches!(on_digest(&store, &args("CASHE.DIGEST SLOT 16384"), 1), Reply::Error(_)));
        assert!(matches!(on_digest(&store, &args("CASHE.DIGEST SLOTS 1"), 1), Reply::Error(_)));
        assert_eq!(
            on_digest(&store, &args("CASHE.DIGEST SLOT 5"), 1),
            on_digest(&store, &args("CASHE.DIGEST"), 1)
        );
        let Reply::Array(Some(items)) = on_backup(&store, &args("CASHE.BACKUP")) else {
            panic!("not an array")
        };
        let Reply::Bulk(Some(data)) = &items[4] else { panic!("no data") };
        assert_eq!(items[3], Reply::Integer(i64::from(crc32fast::hash(data))));
        assert_eq!(Store::restore(data).unwrap().digest(1), store.digest(1));
    }
}
