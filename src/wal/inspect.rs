//! What `cashe check` and `cashe dump` read out of one log, without
//! changing anything. Pure: the caller reads the files and hands their
//! bytes in.
//!
//! The verdict is start-up's own: the files are put on a [`SimDisk`] and
//! opened with [`Wal::open_layout`], so `check` refuses exactly what a
//! start would refuse and reports exactly what a start would cut (a torn
//! tail, zeros written ahead). Beside it, every segment is read frame by
//! frame and every snapshot decoded, so the report says what each file
//! holds and where its valid bytes end even when the log is refused.

use super::format::{self, WalRecord, META_FILE, SNAP_DIR, WAL_DIR};
use super::sim_disk::{block_on, SimDisk};
use super::{Layout, OpenError, Wal, WalOptions};
use crate::frame;
use crate::raft::{Entry, Index, Payload, Recovered, Term};
use std::collections::BTreeMap;
use std::fmt::{self, Write};

/// One log's files: `meta`, `wal/*` and `snap/*`, paths relative to the
/// log's directory.
#[derive(Clone, Debug, Default)]
pub struct LogFiles {
    pub files: BTreeMap<String, Vec<u8>>,
}

/// A record read back from a segment, and where it starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    pub offset: u64,
    pub group: u32,
    pub record: WalRecord,
}

/// How a segment's frames end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SegmentEnd {
    /// Its last frame ends the file.
    Whole,
    /// Only zeros follow `offset` (space allocated ahead of the writes).
    Zeros(u64),
    /// The frame at `offset` fails its checks or does not decode.
    Bad { offset: u64, detail: String },
}

/// Reads a segment's records in order, up to its end or its first bad
/// frame. The header (the first frame) is checked, not returned.
pub fn scan_segment(layout: &Layout, bytes: &[u8]) -> (Vec<Found>, SegmentEnd) {
    let mut found = Vec::new();
    let mut offset = 0;
    while offset < bytes.len() {
        let bad = |detail: String| SegmentEnd::Bad { offset: offset as u64, detail };
        let (payload, used) = match frame::decode(&bytes[offset..]) {
            Ok(frame) => frame,
            Err(_) if offset > 0 && bytes[offset..].iter().all(|b| *b == 0) => {
                return (found, SegmentEnd::Zeros(offset as u64))
            }
            Err(error) => return (found, bad(error.to_string())),
        };
        let decoded = match (offset, layout) {
            (0, Layout::Single) => format::decode_segment_header(payload).map(|_| None),
            (0, Layout::Groups(_)) => format::decode_group_segment_header(payload).map(|_| None),
            _ => super::recover::decode_record(layout, payload).map(Some),
        };
        match decoded {
            Ok(Some((group, record))) => found.push(Found { offset: offset as u64, group, record }),
            Ok(None) => {}
            Err(error) => return (found, bad(error.to_string())),
        }
        offset += used;
    }
    (found, SegmentEnd::Whole)
}

/// What one segment holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentReport {
    pub file: String,
    pub bytes: u64,
    pub records: u64,
    pub hard_states: u64,
    pub truncations: u64,
    /// Per group: its first and last entry here and the last entry's term.
    pub entries: BTreeMap<u32, (Index, Index, Term)>,
    pub end: SegmentEnd,
}

/// What one snapshot file holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotReport {
    pub file: String,
    pub bytes: u64,
    /// Its group, index, term and state bytes, or why it does not decode.
    pub content: Result<(u32, Index, Term, u64), String>,
}

/// Start-up's verdict on a log: each group's recovered state, or why it
/// refuses the log.
pub type Opened = Result<BTreeMap<u32, Recovered>, OpenError>;

/// Everything `check` says of one log.
#[derive(Debug)]
pub struct LogReport {
    /// Node id, cluster id and format version from `meta`, or why not.
    pub meta: Result<(u64, u64, u32), String>,
    pub segments: Vec<SegmentReport>,
    pub snapshots: Vec<SnapshotReport>,
    pub opened: Opened,
    /// Where a start would cut the last segment back to, when a torn
    /// write ends it (not when only zeros written ahead follow): file,
    /// offset.
    pub torn: Option<(String, u64)>,
}

/// The files of `log`, sorted as the log names them: segments in order,
/// snapshots by group, index and term.
fn listed<K: Ord>(log: &LogFiles, dir: &str, parse: impl Fn(&str) -> Option<K>) -> Vec<(K, String)> {
    let prefix = format!("{dir}/");
    let mut names: Vec<(K, String)> = log
        .files
        .keys()
        .filter_map(|path| path.strip_prefix(&prefix))
        .filter_map(|name| parse(name).map(|key| (key, name.to_string())))
        .collect();
    names.sort_by(|a, b| a.0.cmp(&b.0));
    names
}

fn segment_names(log: &LogFiles) -> Vec<String> {
    listed(log, WAL_DIR, format::parse_segment_name).into_iter().map(|(_, name)| name).collect()
}

/// Checks one log of `layout` the way a start would open it, and says
/// what each of its files holds.
pub fn check(layout: &Layout, log: &LogFiles) -> LogReport {
    let meta = match log.files.get(META_FILE) {
        None => Err("missing".to_string()),
        Some(bytes) => format::decode_meta(bytes)
            .map(|m| (m.node_id, m.cluster_id, m.format_version))
            .map_err(|e| e.to_string()),
    };
    let segment_names = segment_names(log);
    let mut segments = Vec::new();
    for name in &segment_names {
        let bytes = &log.files[&format!("{WAL_DIR}/{name}")];
        let (found, end) = scan_segment(layout, bytes);
        let mut report = SegmentReport {
            file: format!("{WAL_DIR}/{name}"),
            bytes: bytes.len() as u64,
            records: found.len() as u64,
            hard_states: 0,
            truncations: 0,
            entries: BTreeMap::new(),
            end,
        };
        for record in found {
            match record.record {
                WalRecord::Entry(entry) => {
                    let span =
                        report.entries.entry(record.group).or_insert((entry.index, entry.index, entry.term));
                    (span.1, span.2) = (entry.index, entry.term);
                }
                WalRecord::HardState(_) => report.hard_states += 1,
                WalRecord::Truncate { .. } => report.truncations += 1,
                WalRecord::SnapshotInstalled { .. } => {}
            }
        }
        segments.push(report);
    }
    let snapshot_group = |name: &str| match layout {
        Layout::Single => format::parse_snapshot_name(name).map(|_| 0),
        Layout::Groups(_) => format::parse_group_snapshot_name(name).map(|(group, _, _)| group),
    };
    let snapshots = listed(log, SNAP_DIR, snapshot_group)
        .into_iter()
        .map(|(group, name)| {
            let bytes = &log.files[&format!("{SNAP_DIR}/{name}")];
            let content = format::decode_snapshot(bytes)
                .map(|s| (group, s.meta.index, s.meta.term, s.data.len() as u64))
                .map_err(|(offset, e)| format!("at offset {offset}: {e}"));
            SnapshotReport { file: format!("{SNAP_DIR}/{name}"), bytes: bytes.len() as u64, content }
        })
        .collect();
    let (opened, cut) = open(layout, log, meta.as_ref().ok().copied());
    let zeros = segments.last().is_some_and(|s| matches!(s.end, SegmentEnd::Zeros(_)));
    let torn = cut.filter(|_| !zeros);
    LogReport { meta, segments, snapshots, opened, torn }
}

/// Opens a copy of the log in memory as a start would, and says what the
/// start cut from the end of its last segment.
fn open(layout: &Layout, log: &LogFiles, meta: Option<(u64, u64, u32)>) -> (Opened, Option<(String, u64)>) {
    let disk = SimDisk::new();
    for (path, bytes) in &log.files {
        disk.put(path, bytes.clone());
    }
    let (node_id, cluster_id, _) = meta.unwrap_or_default();
    let options = WalOptions::new(node_id, cluster_id);
    let opened = block_on(Wal::open_layout(disk.clone(), options, layout.clone())).map(|(_, groups)| groups);
    let cut = segment_names(log).last().and_then(|name| {
        let path = format!("{WAL_DIR}/{name}");
        let before = log.files[&path].len() as u64;
        let after = disk.contents(&path).map_or(0, |bytes| bytes.len() as u64);
        (opened.is_ok() && after < before).then_some((path, after))
    });
    (opened, cut)
}

/// How a client command logged in an entry reads, for `dump`: supplied by
/// the node layer, which owns the entry's encoding.
pub type DescribeCommand<'a> = &'a dyn Fn(&[u8]) -> String;

/// One line per record of every segment of the log, in order: file (under
/// `dir`, the log's directory with its slash, or "") and offset, group, and what the record says. A bad frame ends its
/// segment's lines with what is wrong with it. Each segment's lines go to
/// `emit` as one string.
pub fn dump(
    layout: &Layout,
    log: &LogFiles,
    dir: &str,
    describe: DescribeCommand,
    emit: &mut dyn FnMut(String),
) {
    for name in segment_names(log) {
        let path = format!("{WAL_DIR}/{name}");
        let (found, end) = scan_segment(layout, &log.files[&path]);
        let file = format!("{dir}{path}");
        let mut out = String::new();
        for record in found {
            let _ = write!(out, "{file}@{} group {}: ", record.offset, record.group);
            let _ = match &record.record {
                WalRecord::HardState(h) => {
                    let vote = h.vote.map_or("none".to_string(), |v| v.0.to_string());
                    writeln!(out, "hard state term {} vote {vote} commit {}", h.term, h.commit)
                }
                WalRecord::Entry(entry) => writeln!(out, "{}", EntryText(entry, describe)),
                WalRecord::Truncate { from } => writeln!(out, "truncate from {from}"),
                WalRecord::SnapshotInstalled { index, term } => {
                    writeln!(out, "snapshot installed at index {index} term {term}")
                }
            };
        }
        let _ = match end {
            SegmentEnd::Whole => Ok(()),
            SegmentEnd::Zeros(offset) => writeln!(out, "{file}@{offset}: zeros to the end"),
            SegmentEnd::Bad { offset, detail } => writeln!(out, "{file}@{offset}: BAD FRAME: {detail}"),
        };
        emit(out);
    }
}

struct EntryText<'a>(&'a Entry, DescribeCommand<'a>);

impl fmt::Display for EntryText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let EntryText(entry, describe) = self;
        write!(f, "entry {} term {}: ", entry.index, entry.term)?;
        match &entry.payload {
            Payload::Noop => write!(f, "no-op"),
            Payload::Command(bytes) => write!(f, "{}", describe(bytes)),
            Payload::Membership(membership) => write!(f, "membership {membership:?}"),
        }
    }
}
