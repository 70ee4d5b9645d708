//! Rebuilding the core's durable state from the bytes of a data directory.
//! Pure: the writer reads the files and hands their bytes in.
//!
//! Rules (DESIGN §5): a frame that fails its checks at the very end of the
//! last segment, with no valid frame after it, is a torn write — recovery
//! stops there and reports where to truncate. Zeros from a frame boundary
//! to the end of a segment are space the disk allocated ahead of the writes
//! (`Disk::open_log`): the segment ends there (in the last segment, the
//! zeros are cut like a torn tail). No frame is all zeros: an empty frame
//! is invalid. A lost suffix of an older segment would still show, as a gap
//! before the next segment's first entry. Any other damage is
//! corruption and names the file and offset: a bad frame followed by a good
//! one, damage in an older segment, an intact frame that does not decode, a
//! record that does not fit the log.
//!
//! A frame that is intact but holds a format version this build does not
//! read (a segment header's `format_version`, a record's version byte) is
//! neither damage nor a torn tail: it is [`ReplayError::UnsupportedVersion`],
//! naming the file, the version found and the versions read, and nothing is
//! cut. Only a frame that fails its checks can be a torn tail.

use super::format::{self, FormatError, WalRecord};
use super::Layout;
use crate::frame;
use crate::raft::{Index, Record, Recovered, Snapshot};
use std::collections::BTreeMap;
use std::fmt;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Corruption {
    pub file: String,
    pub offset: u64,
    pub detail: String,
}

impl fmt::Display for Corruption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at offset {}: {}", self.file, self.offset, self.detail)
    }
}

/// An intact file or record in a format version this build does not read:
/// written by a newer build (or an older one no longer supported).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnsupportedFile {
    pub file: String,
    pub offset: u64,
    pub found: u32,
    pub reads: &'static [u32],
}

impl fmt::Display for UnsupportedFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let reads = format::versions(self.reads);
        write!(
            f,
            "{} at offset {} is in format version {}, and this build reads only version {reads}; \
             run a build that reads it (docs/wal-format.md, \"Versions\")",
            self.file, self.offset, self.found
        )
    }
}

/// Why recovery refuses a data directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReplayError {
    Corrupt(Corruption),
    UnsupportedVersion(UnsupportedFile),
}

impl fmt::Display for ReplayError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReplayError::Corrupt(c) => write!(f, "{c}"),
            ReplayError::UnsupportedVersion(u) => write!(f, "{u}"),
        }
    }
}

/// A format error at `offset` of `file`: an unsupported version as such,
/// anything else as corruption.
pub fn refusal(file: &str, offset: u64, error: FormatError) -> ReplayError {
    let file = file.to_string();
    match error {
        FormatError::UnsupportedVersion { found, reads } => {
            ReplayError::UnsupportedVersion(UnsupportedFile { file, offset, found, reads })
        }
        other => ReplayError::Corrupt(Corruption { file, offset, detail: other.to_string() }),
    }
}

/// Where the last segment's valid data ends, when a torn write (or the
/// zeros of space allocated ahead) follows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TornTail {
    pub file: String,
    pub offset: u64,
    /// Only zeros follow: preallocated space, not a torn write.
    pub zeros: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Replayed {
    /// Each group's state (the one group of a `Layout::Single` log is
    /// group 0).
    pub recovered: BTreeMap<u32, Recovered>,
    pub torn_tail: Option<TornTail>,
    /// Per segment, in order: the offset where its records end (before a
    /// torn tail or zeros; the length if neither follows).
    pub ends: Vec<u64>,
    /// Per segment, in order: each group's last entry in it
    /// ([`note_entry`]), which decides when it may be deleted.
    pub entries: Vec<BTreeMap<u32, Index>>,
}

/// Replays a log of one group: `segments` (name and bytes, in order) on top
/// of `snapshot`, the newest durable snapshot.
pub fn replay(snapshot: Option<Snapshot>, segments: &[(String, Vec<u8>)]) -> Result<Replayed, ReplayError> {
    replay_layout(&Layout::Single, snapshot.map(|s| (0, s)).into_iter().collect(), segments)
}

/// Replays a log of `layout` on top of each group's newest durable
/// snapshot. A record of a group the layout does not name is corruption.
///
/// Entries a later truncation of their group removes (dead entries) are
/// skipped rather than applied and then cut: the writer deletes a segment
/// once its group's live entries in it are under the snapshot, so the dead
/// entries before a later segment's dead ones may be gone, and applying
/// those would read as a gap.
pub fn replay_layout(
    layout: &Layout,
    snapshots: BTreeMap<u32, Snapshot>,
    segments: &[(String, Vec<u8>)],
) -> Result<Replayed, ReplayError> {
    let mut snapshots = snapshots;
    let mut recovered: BTreeMap<u32, Recovered> = layout
        .groups()
        .into_iter()
        .map(|group| (group, Recovered { snapshot: snapshots.remove(&group), ..Recovered::default() }))
        .collect();
    let mut torn_tail = None;
    let mut ends = Vec::with_capacity(segments.len());
    let mut decoded = Vec::with_capacity(segments.len());
    for (k, (name, bytes)) in segments.iter().enumerate() {
        let last = k + 1 == segments.len();
        let file = format!("{}/{name}", format::WAL_DIR);
        let (records, end) = decode_segment(layout, &file, name, bytes, last)?;
        ends.push(end);
        if last && end < bytes.len() as u64 {
            let zeros = bytes[end as usize..].iter().all(|b| *b == 0);
            torn_tail = Some(TornTail { file: file.clone(), offset: end, zeros });
        }
        decoded.push((file, records));
    }
    mark_dead_entries(&mut decoded);
    let mut entries = Vec::with_capacity(segments.len());
    for (file, records) in decoded {
        entries.push(BTreeMap::new());
        for record in records {
            let corrupt = |detail: String| {
                ReplayError::Corrupt(Corruption { file: file.clone(), offset: record.offset, detail })
            };
            let group = record.group;
            let Some(state) = recovered.get_mut(&group) else {
                return Err(corrupt(format!("a record of group {group}, which this node does not have")));
            };
            match &record.record {
                WalRecord::Entry(entry) => {
                    let this = entries.last_mut().expect("the segment's marks are pushed first");
                    note_entry(this, group, entry.index);
                }
                WalRecord::Truncate { from } => note_truncate(entries.iter_mut(), group, *from),
                WalRecord::HardState(_) | WalRecord::SnapshotInstalled { .. } => {}
            }
            if !record.dead {
                apply(state, record.record).map_err(corrupt)?;
            }
        }
    }
    for group in recovered.values_mut() {
        if let Some(snapshot) = &group.snapshot {
            let commit = &mut group.hard_state.commit;
            *commit = (*commit).max(snapshot.meta.index);
        }
    }
    Ok(Replayed { recovered, torn_tail, ends, entries })
}

/// A record read back, with where it was.
struct Decoded {
    offset: u64,
    group: u32,
    record: WalRecord,
    /// An entry a later truncation of its group removes.
    dead: bool,
}

/// Marks every entry that a truncation of its group written after it
/// (in any later segment) removes: one at or above the truncation's index.
fn mark_dead_entries(segments: &mut [(String, Vec<Decoded>)]) {
    let mut cut_from: BTreeMap<u32, Index> = BTreeMap::new();
    for record in segments.iter_mut().rev().flat_map(|(_, records)| records.iter_mut().rev()) {
        match &record.record {
            WalRecord::Truncate { from } => {
                let lowest = cut_from.entry(record.group).or_insert(*from);
                *lowest = (*lowest).min(*from);
            }
            WalRecord::Entry(entry) => {
                record.dead = cut_from.get(&record.group).is_some_and(|from| entry.index >= *from);
            }
            WalRecord::HardState(_) | WalRecord::SnapshotInstalled { .. } => {}
        }
    }
}

/// Keeps `entries` (each group's last entry in one segment) up to date:
/// an entry of `group` written to the segment is the group's last there.
/// The writer and recovery both keep it.
pub fn note_entry(entries: &mut BTreeMap<u32, Index>, group: u32, index: Index) {
    entries.insert(group, index);
}

/// [`note_entry`] for a truncation of `group` at `from`, given every live
/// segment's marks: the group's entries at `from` and after are dead
/// wherever they are, so its mark falls to at most `from − 1` in every
/// segment (else a group that truncated an old suffix and went quiet
/// would keep the oldest segment, and every later one, forever).
pub fn note_truncate<'a>(
    segments: impl IntoIterator<Item = &'a mut BTreeMap<u32, Index>>,
    group: u32,
    from: Index,
) {
    for entries in segments {
        if let Some(last) = entries.get_mut(&group) {
            *last = (*last).min(from.prev());
        }
    }
}

/// Reads one segment's records in order. Returns them and the offset
/// where they end: before a torn tail (last segment only) or zeros, else
/// the segment's length.
fn decode_segment(
    layout: &Layout,
    file: &str,
    name: &str,
    bytes: &[u8],
    last: bool,
) -> Result<(Vec<Decoded>, u64), ReplayError> {
    let corrupt = |offset: usize, detail: String| {
        ReplayError::Corrupt(Corruption { file: file.to_string(), offset: offset as u64, detail })
    };
    let refuse = |offset: usize, error: FormatError| refusal(file, offset as u64, error);
    let mut records = Vec::new();
    if bytes.is_empty() {
        // Created, but a crash came before its header was durable.
        return if last { Ok((records, 0)) } else { Err(corrupt(0, "empty segment".into())) };
    }
    let mut offset = 0;
    while offset < bytes.len() {
        let (payload, used) = match frame::decode(&bytes[offset..]) {
            Ok(frame) => frame,
            Err(error) => {
                if offset > 0 && bytes[offset..].iter().all(|b| *b == 0) {
                    return Ok((records, offset as u64));
                }
                if last && !valid_frame_after(bytes, offset) {
                    return Ok((records, offset as u64));
                }
                return Err(corrupt(offset, error.to_string()));
            }
        };
        if offset == 0 {
            check_header(layout, file, payload, name)?;
        } else {
            let (group, record) = decode_record(layout, payload).map_err(|e| refuse(offset, e))?;
            records.push(Decoded { offset: offset as u64, group, record, dead: false });
        }
        offset += used;
    }
    Ok((records, bytes.len() as u64))
}

/// A record frame's payload in a segment of `layout`, with its group (0
/// in a one-group log).
pub(super) fn decode_record(layout: &Layout, payload: &[u8]) -> Result<(u32, WalRecord), FormatError> {
    match layout {
        Layout::Single => format::decode_record(payload).map(|record| (0, record)),
        Layout::Groups(_) => format::decode_group_record(payload).map(|tagged| (tagged.group, tagged.record)),
    }
}

/// Checks a segment's header frame against the layout and the file name.
fn check_header(layout: &Layout, file: &str, payload: &[u8], name: &str) -> Result<(), ReplayError> {
    let named = format::parse_segment_name(name).map(|i| i.0);
    let header = match layout {
        Layout::Single => format::decode_segment_header(payload).map(|h| (h.first_index.0, "first index")),
        Layout::Groups(_) => {
            format::decode_group_segment_header(payload).map(|h| (h.sequence, "sequence number"))
        }
    };
    let (found, what) = header.map_err(|e| refusal(file, 0, e))?;
    if named != Some(found) {
        let detail = format!("header says {what} {found}");
        return Err(ReplayError::Corrupt(Corruption { file: file.to_string(), offset: 0, detail }));
    }
    Ok(())
}

/// Whether any intact frame starts after `offset` (then the damage at
/// `offset` is not a torn tail).
fn valid_frame_after(bytes: &[u8], offset: usize) -> bool {
    (offset + 1..bytes.len()).any(|start| frame::decode(&bytes[start..]).is_ok())
}

/// Applies one record to the state rebuilt so far. Segments may hold records
/// older than the snapshot: entries it covers are skipped and truncations
/// into it clamped.
fn apply(recovered: &mut Recovered, record: WalRecord) -> Result<(), String> {
    let base = recovered.snapshot.as_ref().map_or(Index(0), |s| s.meta.index);
    let result = match record {
        WalRecord::HardState(hard_state) => recovered.apply(Record::HardState(hard_state)),
        WalRecord::Entry(entry) if entry.index <= base => Ok(()),
        WalRecord::Entry(entry) => recovered.apply(Record::Entry(entry)),
        WalRecord::Truncate { from } => {
            let from = from.max(base.next());
            if from > recovered.last_index() {
                Ok(())
            } else {
                recovered.apply(Record::Truncate { from })
            }
        }
        WalRecord::SnapshotInstalled { index, .. } if index > base => {
            return Err(format!("snapshot installed at index {index} is missing from {}", format::SNAP_DIR));
        }
        WalRecord::SnapshotInstalled { .. } => Ok(()),
    };
    result.map_err(|e| e.to_string())
}
