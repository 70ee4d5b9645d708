//! The bytes of every file storage writes (described in
//! docs/wal-format.md). Pure: encoding and decoding only, no IO.

use crate::frame;
use crate::raft::{Entry, HardState, Index, Record, Snapshot, SnapshotMeta, Term};
use serde::{Deserialize, Serialize};
use std::fmt;

pub const META_MAGIC: [u8; 8] = *b"cashemta";
pub const SEGMENT_MAGIC: [u8; 8] = *b"cashewal";
pub const SNAPSHOT_MAGIC: [u8; 8] = *b"cashesnp";
/// The header magic of a segment of a log shared by several groups.
pub const GROUP_SEGMENT_MAGIC: [u8; 8] = *b"cashegrp";
/// Version of the meta, segment-header and snapshot-header formats; bumped
/// on any change to their bytes (docs/wal-format.md, "Versions").
pub const FORMAT_VERSION: u32 = 1;
/// The `format_version` values this build reads.
pub const FORMAT_VERSIONS_READ: &[u32] = &[FORMAT_VERSION];
/// `meta`'s `format_version` in a data directory whose key groups share one
/// log under `groups/` (a cluster of several shards): a build before the
/// shared log would look for one log per group, find none and start the
/// groups empty, so it must be refused at `meta`. Directories of one shard
/// keep version 1.
pub const META_FORMAT_VERSION_GROUPS: u32 = 2;
/// The `format_version` values of `meta` this build reads.
pub const META_FORMAT_VERSIONS_READ: &[u32] = &[FORMAT_VERSION, META_FORMAT_VERSION_GROUPS];
/// The first byte of every record payload; bumped on any change to the
/// bytes of [`WalRecord`] or of anything it holds, and when entries may
/// hold commands an older build does not know (it would apply them as
/// unknown commands and diverge). Version 2: hash commands (the bytes are
/// version 1's). Version 3: list, set, sorted set and bitmap commands,
/// COPY, and the blocking commands' `CASHE.BLOCK`/`CASHE.UNBLOCK` (the
/// bytes are version 1's). Version 4: `CASHE.MEMBER`'s forms with a TLS
/// client address (`… [id] TLS addr`), which an older build would refuse
/// as malformed and so leave the member out of its directory (the bytes
/// are version 1's).
pub const RECORD_VERSION: u8 = 4;
/// The record versions this build reads.
pub const RECORD_VERSIONS_READ: &[u32] = &[1, 2, 3, RECORD_VERSION as u32];

pub const META_FILE: &str = "meta";
pub const WAL_DIR: &str = "wal";
pub const SNAP_DIR: &str = "snap";

/// `meta`: who this data directory belongs to. Written once.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    pub magic: [u8; 8],
    pub format_version: u32,
    pub node_id: u64,
    pub cluster_id: u64,
}

/// The first frame of every segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentHeader {
    pub magic: [u8; 8],
    pub format_version: u32,
    /// One past the last entry index written before this segment.
    pub first_index: Index,
}

/// The first frame of every segment of a log shared by several groups.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupSegmentHeader {
    pub magic: [u8; 8],
    pub format_version: u32,
    /// The segment's number: one more than the segment before it (1 for
    /// the first); it must equal the file name.
    pub sequence: u64,
}

/// The first frame of a snapshot file; `data_bytes` raw bytes follow.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotHeader {
    pub magic: [u8; 8],
    pub format_version: u32,
    pub meta: SnapshotMeta,
    pub data_bytes: u64,
    pub data_crc: u32,
}

/// What a WAL record frame holds. A snapshot received from the leader lives
/// in its own file; the log only marks where it was installed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum WalRecord {
    HardState(HardState),
    Entry(Entry),
    Truncate { from: Index },
    SnapshotInstalled { index: Index, term: Term },
}

/// A record of a log shared by several groups: the group's number, then
/// the record as a one-group log holds it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupRecord {
    pub group: u32,
    pub record: WalRecord,
}

/// The first two fields of `Meta`, `SegmentHeader` and `SnapshotHeader`:
/// decoded (and checked) before the rest, so a file of another version is
/// reported as such even if the rest of its layout changed.
#[derive(Deserialize)]
struct Versioned {
    magic: [u8; 8],
    format_version: u32,
}

/// Why bytes are not a valid file of ours (positioned by the caller).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FormatError {
    Frame(frame::FrameError),
    /// The frame is intact but its payload does not decode.
    Payload(String),
    BadMagic,
    /// Intact, but written in a version this build does not read (by a
    /// newer build, or an old one no longer supported): not damage.
    UnsupportedVersion {
        found: u32,
        reads: &'static [u32],
    },
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FormatError::Frame(e) => write!(f, "{e}"),
            FormatError::Payload(e) => write!(f, "undecodable payload: {e}"),
            FormatError::BadMagic => write!(f, "bad magic number"),
            FormatError::UnsupportedVersion { found, reads } => {
                write!(f, "format version {found}, and this build reads only version {}", versions(reads))
            }
        }
    }
}

/// "1", "1 or 2", "1, 2 or 3".
pub fn versions(reads: &[u32]) -> String {
    let names: Vec<String> = reads.iter().map(u32::to_string).collect();
    match names.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        _ => names.concat(),
    }
}

fn to_bytes<T: Serialize>(value: &T) -> Vec<u8> {
    postcard::to_stdvec(value).expect("in-memory postcard encoding cannot fail")
}

fn from_bytes<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, FormatError> {
    postcard::from_bytes(bytes).map_err(|e| FormatError::Payload(e.to_string()))
}

/// Checks the magic and version at the start of `payload` before anything
/// else of it is decoded.
fn check_version(payload: &[u8], expected: [u8; 8], reads: &'static [u32]) -> Result<(), FormatError> {
    let (prefix, _): (Versioned, _) =
        postcard::take_from_bytes(payload).map_err(|e| FormatError::Payload(e.to_string()))?;
    if prefix.magic != expected {
        return Err(FormatError::BadMagic);
    }
    if !reads.contains(&prefix.format_version) {
        return Err(FormatError::UnsupportedVersion { found: prefix.format_version, reads });
    }
    Ok(())
}

/// The whole `meta` file, in `format_version` (`FORMAT_VERSION`, or
/// `META_FORMAT_VERSION_GROUPS` for a directory with a shared group log).
/// Small and fixed-size: cannot exceed a frame.
pub fn encode_meta(node_id: u64, cluster_id: u64, format_version: u32) -> Vec<u8> {
    let meta = Meta { magic: META_MAGIC, format_version, node_id, cluster_id };
    let mut out = Vec::new();
    frame::encode(&to_bytes(&meta), &mut out).expect("a meta payload is a few dozen bytes");
    out
}

pub fn decode_meta(bytes: &[u8]) -> Result<Meta, FormatError> {
    let (payload, _) = frame::decode(bytes).map_err(FormatError::Frame)?;
    check_version(payload, META_MAGIC, META_FORMAT_VERSIONS_READ)?;
    from_bytes(payload)
}

/// Small and fixed-size: cannot exceed a frame.
pub fn encode_segment_header(first_index: Index, out: &mut Vec<u8>) {
    let header = SegmentHeader { magic: SEGMENT_MAGIC, format_version: FORMAT_VERSION, first_index };
    frame::encode(&to_bytes(&header), out).expect("a segment header is a few dozen bytes");
}

pub fn decode_segment_header(payload: &[u8]) -> Result<SegmentHeader, FormatError> {
    check_version(payload, SEGMENT_MAGIC, FORMAT_VERSIONS_READ)?;
    from_bytes(payload)
}

/// Small and fixed-size: cannot exceed a frame.
pub fn encode_group_segment_header(sequence: u64, out: &mut Vec<u8>) {
    let header = GroupSegmentHeader { magic: GROUP_SEGMENT_MAGIC, format_version: FORMAT_VERSION, sequence };
    frame::encode(&to_bytes(&header), out).expect("a segment header is a few dozen bytes");
}

pub fn decode_group_segment_header(payload: &[u8]) -> Result<GroupSegmentHeader, FormatError> {
    check_version(payload, GROUP_SEGMENT_MAGIC, FORMAT_VERSIONS_READ)?;
    from_bytes(payload)
}

/// Appends one record frame to `out`; a record too large for a frame is an
/// error and leaves `out` as it was.
pub fn encode_record(record: &WalRecord, out: &mut Vec<u8>) -> Result<(), frame::FrameTooLarge> {
    encode_versioned(record, out)
}

pub fn decode_record(payload: &[u8]) -> Result<WalRecord, FormatError> {
    decode_versioned(payload)
}

/// [`encode_record`] for a log shared by several groups.
pub fn encode_group_record(record: &GroupRecord, out: &mut Vec<u8>) -> Result<(), frame::FrameTooLarge> {
    encode_versioned(record, out)
}

pub fn decode_group_record(payload: &[u8]) -> Result<GroupRecord, FormatError> {
    decode_versioned(payload)
}

/// A record frame: the record version byte, then the record.
fn encode_versioned<T: Serialize>(record: &T, out: &mut Vec<u8>) -> Result<(), frame::FrameTooLarge> {
    let payload =
        postcard::to_extend(record, vec![RECORD_VERSION]).expect("in-memory postcard encoding cannot fail");
    frame::encode(&payload, out)
}

fn decode_versioned<'a, T: Deserialize<'a>>(payload: &'a [u8]) -> Result<T, FormatError> {
    match payload.split_first() {
        Some((version, rest)) if RECORD_VERSIONS_READ.contains(&u32::from(*version)) => from_bytes(rest),
        Some((version, _)) => {
            Err(FormatError::UnsupportedVersion { found: u32::from(*version), reads: RECORD_VERSIONS_READ })
        }
        None => Err(FormatError::Payload("empty record".into())),
    }
}

/// The WAL form of a core record; `None` for a snapshot, which the writer
/// stores as a file plus a `SnapshotInstalled` marker.
pub fn wal_record(record: &Record) -> WalRecord {
    match record {
        Record::HardState(hard_state) => WalRecord::HardState(*hard_state),
        Record::Entry(entry) => WalRecord::Entry(entry.clone()),
        Record::Truncate { from } => WalRecord::Truncate { from: *from },
        Record::Snapshot(snapshot) => {
            WalRecord::SnapshotInstalled { index: snapshot.meta.index, term: snapshot.meta.term }
        }
    }
}

/// A snapshot file: [`encode_snapshot_header`] followed by the data.
pub fn encode_snapshot(snapshot: &Snapshot) -> Result<Vec<u8>, frame::FrameTooLarge> {
    let mut out = encode_snapshot_header(snapshot)?;
    out.extend_from_slice(&snapshot.data);
    Ok(out)
}

/// The header frame of a snapshot file; the data follows it unframed, so
/// a writer can append it from the snapshot without copying it. Only the
/// membership in it grows: a header over a frame (a membership of millions)
/// is an error.
pub fn encode_snapshot_header(snapshot: &Snapshot) -> Result<Vec<u8>, frame::FrameTooLarge> {
    let header = SnapshotHeader {
        magic: SNAPSHOT_MAGIC,
        format_version: FORMAT_VERSION,
        meta: snapshot.meta.clone(),
        data_bytes: snapshot.data.len() as u64,
        data_crc: crc32fast::hash(&snapshot.data),
    };
    let mut out = Vec::new();
    frame::encode(&to_bytes(&header), &mut out)?;
    Ok(out)
}

/// Decodes a snapshot file; errors carry the byte offset of the damage.
pub fn decode_snapshot(bytes: &[u8]) -> Result<Snapshot, (u64, FormatError)> {
    let (payload, used) = frame::decode(bytes).map_err(|e| (0, FormatError::Frame(e)))?;
    check_version(payload, SNAPSHOT_MAGIC, FORMAT_VERSIONS_READ).map_err(|e| (0, e))?;
    let header: SnapshotHeader = from_bytes(payload).map_err(|e| (0, e))?;
    let data = &bytes[used..];
    if data.len() as u64 != header.data_bytes {
        let detail = format!("{} data bytes, header says {}", data.len(), header.data_bytes);
        return Err((used as u64, FormatError::Payload(detail)));
    }
    if crc32fast::hash(data) != header.data_crc {
        return Err((used as u64, FormatError::Payload("snapshot data checksum mismatch".into())));
    }
    Ok(Snapshot { meta: header.meta, data: data.to_vec().into() })
}

pub fn segment_name(first_index: Index) -> String {
    format!("{:020}.wal", first_index.0)
}

pub fn snapshot_name(index: Index, term: Term) -> String {
    format!("{:020}-{:020}.snap", index.0, term.0)
}

/// A snapshot of group `group` in a log shared by several groups.
pub fn group_snapshot_name(group: u32, index: Index, term: Term) -> String {
    format!("{group:010}-{:020}-{:020}.snap", index.0, term.0)
}

/// The first index named by a segment file name (its sequence number, in
/// a log shared by several groups).
pub fn parse_segment_name(name: &str) -> Option<Index> {
    let digits = name.strip_suffix(".wal")?;
    (digits.len() == 20).then(|| digits.parse().ok().map(Index)).flatten()
}

/// The (index, term) named by a snapshot file name.
pub fn parse_snapshot_name(name: &str) -> Option<(Index, Term)> {
    let (index, term) = name.strip_suffix(".snap")?.split_once('-')?;
    Some((Index(index.parse().ok()?), Term(term.parse().ok()?)))
}

/// The (group, index, term) named by a group snapshot file name.
/// Only the exact widths [`group_snapshot_name`] writes, digits alone: the
/// file is read back under the name made from the numbers.
pub fn parse_group_snapshot_name(name: &str) -> Option<(u32, Index, Term)> {
    let parts: Vec<&str> = name.strip_suffix(".snap")?.split('-').collect();
    let digits = |part: &str, width: usize| part.len() == width && part.bytes().all(|b| b.is_ascii_digit());
    match parts[..] {
        [group, index, term] if digits(group, 10) && digits(index, 20) && digits(term, 20) => {
            Some((group.parse().ok()?, Index(index.parse().ok()?), Term(term.parse().ok()?)))
        }
        _ => None,
    }
}
