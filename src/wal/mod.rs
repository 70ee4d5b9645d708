//! Storage: the write-ahead log and snapshots of one node (DESIGN §5; the
//! byte layout is in docs/wal-format.md).
//!
//! ```text
//! <data-dir>/meta                      node id, cluster id, format version
//! <data-dir>/wal/<first-index>.wal     segments of framed records
//! <data-dir>/snap/<index>-<term>.snap  the newest snapshot and at most one older
//! ```
//!
//! [`Wal::append`] is group commit: every record of one loop turn goes out
//! with one write and one fdatasync. [`Wal::open`] recovers, truncating a
//! torn tail and refusing anything else that is damaged, and refusing a
//! file or record of a format version this build does not read without
//! changing anything on disk. A failed write or sync, or a record too large
//! for a frame (refused before any of its append is written), is fatal: the
//! `Wal` refuses every later call and the process must stop and recover
//! from disk. All IO goes through the [`disk::Disk`] trait;
//! the format and recovery logic ([`format`], [`recover`]) are pure.

pub mod disk;
pub mod format;
pub mod fuzz;
pub mod inspect;
pub mod recover;
pub mod sim_disk;

use crate::frame::FrameTooLarge;
use crate::raft::{HardState, Index, Lsn, Record, Recovered, Snapshot, Term};
use disk::{Disk, DiskFile};
use format::{WalRecord, META_FILE, SNAP_DIR, WAL_DIR};
use std::collections::BTreeMap;
use std::fmt;
use std::io;

pub const SEGMENT_BYTES_MAX_DEFAULT: u64 = 64 << 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WalOptions {
    pub node_id: u64,
    pub cluster_id: u64,
    /// A segment is closed and a new one started past this size.
    pub segment_bytes_max: u64,
    /// The `format_version` a new `meta` is written with
    /// (`format::FORMAT_VERSION`, or `format::META_FORMAT_VERSION_GROUPS`
    /// for the home group of a cluster whose key groups share a log).
    pub meta_version: u32,
}

impl WalOptions {
    pub fn new(node_id: u64, cluster_id: u64) -> WalOptions {
        WalOptions {
            node_id,
            cluster_id,
            segment_bytes_max: SEGMENT_BYTES_MAX_DEFAULT,
            meta_version: format::FORMAT_VERSION,
        }
    }
}

/// How a log is laid out on disk (docs/wal-format.md).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Layout {
    /// One Raft group: records as the core hands them out, segments named
    /// by their first index, snapshots by index and term. The home group's
    /// log, and so the whole log of a cluster of one shard.
    Single,
    /// Several Raft groups, numbered, in one log: each record tagged with
    /// its group, so one write and one sync make a turn's records of every
    /// group durable; segments named by sequence number, snapshots by
    /// group, index and term.
    Groups(Vec<u32>),
}

impl Layout {
    /// The groups the log holds (group 0 alone for `Single`).
    pub fn groups(&self) -> Vec<u32> {
        match self {
            Layout::Single => vec![0],
            Layout::Groups(groups) => groups.clone(),
        }
    }
}

/// Why a data directory could not be opened. Nothing was changed on disk
/// except, for a torn tail, its truncation (never for `UnsupportedVersion`:
/// versions are checked before anything is cut).
#[derive(Debug)]
#[non_exhaustive]
pub enum OpenError {
    Io {
        path: String,
        source: io::Error,
    },
    /// Damage that is not a torn tail: refuse to start.
    Corrupt(recover::Corruption),
    /// Intact, but in a format version this build does not read.
    UnsupportedVersion(recover::UnsupportedFile),
    /// The directory belongs to another node or cluster.
    WrongOwner {
        expected: (u64, u64),
        found: (u64, u64),
    },
    /// Segments or snapshots exist but `meta` does not.
    MetaMissing,
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpenError::Io { path, source } => write!(f, "{path}: {source}"),
            OpenError::Corrupt(c) => write!(f, "corrupt data, refusing to start: {c}"),
            OpenError::UnsupportedVersion(u) => write!(f, "refusing to start, nothing changed on disk: {u}"),
            OpenError::WrongOwner { expected, found } => write!(
                f,
                "data directory belongs to node {} of cluster {}, not node {} of cluster {}",
                found.0, found.1, expected.0, expected.1
            ),
            OpenError::MetaMissing => write!(f, "{META_FILE} is missing but log files exist"),
        }
    }
}

impl std::error::Error for OpenError {}

impl From<recover::ReplayError> for OpenError {
    fn from(error: recover::ReplayError) -> OpenError {
        match error {
            recover::ReplayError::Corrupt(c) => OpenError::Corrupt(c),
            recover::ReplayError::UnsupportedVersion(u) => OpenError::UnsupportedVersion(u),
        }
    }
}

/// A write or sync failed, or a record was too large to write. Fatal: the
/// WAL refuses everything afterwards.
#[derive(Debug)]
#[non_exhaustive]
pub enum WalError {
    Io {
        path: String,
        source: io::Error,
    },
    /// The record `lsn` does not fit in a frame: nothing of its append was
    /// written (the records before it in the batch are not durable either).
    RecordTooLarge {
        lsn: Lsn,
        source: FrameTooLarge,
    },
    /// The header of the snapshot at `index` does not fit in a frame
    /// (a membership of millions): the snapshot was not written.
    SnapshotTooLarge {
        index: Index,
        source: FrameTooLarge,
    },
    /// An earlier write or sync failed; the process must stop.
    Failed,
    /// A record of a group the log does not hold: a bug in the caller.
    UnknownGroup(u32),
}

impl fmt::Display for WalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WalError::Io { path, source } => write!(f, "write-ahead log {path}: {source}"),
            WalError::RecordTooLarge { lsn, source } => {
                write!(f, "write-ahead log refused record {lsn}, nothing of its append was written: {source}")
            }
            WalError::SnapshotTooLarge { index, source } => {
                write!(f, "write-ahead log refused the snapshot at index {index}: {source}")
            }
            WalError::Failed => write!(f, "write-ahead log failed earlier; the process must restart"),
            WalError::UnknownGroup(group) => write!(f, "write-ahead log holds no group {group}"),
        }
    }
}

impl std::error::Error for WalError {}

fn at<T>(path: &str, result: io::Result<T>) -> Result<T, OpenError> {
    result.map_err(|source| OpenError::Io { path: path.to_string(), source })
}

fn join(dir: &str, name: &str) -> String {
    format!("{dir}/{name}")
}

/// One segment file of the log.
#[derive(Clone, Debug)]
struct Segment {
    /// Its first index (`Layout::Single`) or sequence number: the name's.
    key: u64,
    name: String,
    /// Each group's last entry in it (`recover::note_entries`): once every
    /// one is at or before its group's newest durable snapshot, the
    /// segment holds nothing recovery needs.
    entries: BTreeMap<u32, Index>,
}

/// What the writer keeps of one group.
#[derive(Clone, Debug, Default)]
struct Group {
    last_index: Index,
    hard_state: HardState,
    /// `(index, term)` of its snapshot files, oldest first.
    snapshots: Vec<(Index, Term)>,
}

impl Group {
    /// What its newest durable snapshot covers.
    fn snapshot_index(&self) -> Index {
        self.snapshots.last().map_or(Index(0), |(index, _)| *index)
    }
}

pub struct Wal<D: Disk> {
    disk: D,
    options: WalOptions,
    layout: Layout,
    file: D::File,
    /// Every live segment, oldest first.
    segments: Vec<Segment>,
    groups: BTreeMap<u32, Group>,
    failed: bool,
    /// Bytes written to segments since the log was opened.
    bytes_written: u64,
}

impl<D: Disk> Wal<D> {
    /// Opens (or creates) the log of one group and recovers what it holds.
    pub async fn open(disk: D, options: WalOptions) -> Result<(Wal<D>, Recovered), OpenError> {
        let (wal, mut recovered) = Wal::open_layout(disk, options, Layout::Single).await?;
        Ok((wal, recovered.remove(&0).unwrap_or_default()))
    }

    /// Opens (or creates) a log of `layout` and recovers each group's state.
    pub async fn open_layout(
        disk: D,
        options: WalOptions,
        layout: Layout,
    ) -> Result<(Wal<D>, BTreeMap<u32, Recovered>), OpenError> {
        at(WAL_DIR, disk.create_dir_all(WAL_DIR).await)?;
        at(SNAP_DIR, disk.create_dir_all(SNAP_DIR).await)?;
        let segment_names = list_parsed(&disk, WAL_DIR, format::parse_segment_name).await?;
        let snapshot_names = list_snapshots(&disk, &layout).await?;
        let fresh = segment_names.is_empty() && snapshot_names.is_empty();
        check_meta(&disk, options, fresh).await?;

        let mut groups: BTreeMap<u32, Group> =
            layout.groups().into_iter().map(|g| (g, Group::default())).collect();
        for ((group, index, term), name) in &snapshot_names {
            let Some(state) = groups.get_mut(group) else {
                let detail = format!("a snapshot of group {group}, which this node does not have");
                let file = join(SNAP_DIR, name);
                return Err(OpenError::Corrupt(recover::Corruption { file, offset: 0, detail }));
            };
            state.snapshots.push((*index, *term));
        }
        let mut snapshots = BTreeMap::new();
        for (group, state) in &groups {
            if let Some((index, term)) = state.snapshots.last() {
                let path = join(SNAP_DIR, &snapshot_name(&layout, *group, *index, *term));
                snapshots.insert(*group, read_snapshot(&disk, &path, *index, *term).await?);
            }
        }
        let mut segments = Vec::new();
        for (_, name) in &segment_names {
            let path = join(WAL_DIR, name);
            segments.push((name.clone(), at(&path, disk.read(&path).await)?));
        }
        let replayed = recover::replay_layout(&layout, snapshots, &segments)?;
        // Only now, with every file read and its version known to this
        // build, does anything on disk change.
        remove_temporary_files(&disk).await?;
        let mut segment_list: Vec<Segment> = segment_names
            .into_iter()
            .zip(replayed.entries)
            .map(|((key, name), entries)| Segment { key: key.0, name, entries })
            .collect();
        check_sequence(&layout, &segment_list, &groups)?;
        if let Some(torn) = &replayed.torn_tail {
            if !torn.zeros {
                tracing::warn!(file = %torn.file, offset = torn.offset, "truncating a torn write at the end of the log");
            }
            if torn.offset == 0 {
                // Not even a header: a crash while rolling. The segment
                // before is last again.
                at(&torn.file, disk.remove(&torn.file).await)?;
                at(WAL_DIR, disk.sync_dir(WAL_DIR).await)?;
                segment_list.pop();
            }
        }
        // Appends go right after the last segment's records: cut whatever
        // follows them (a torn write, or zeros written ahead).
        if let Some(k) = segment_list.len().checked_sub(1) {
            let (end, length) = (replayed.ends[k], segments[k].1.len() as u64);
            if end < length {
                let path = join(WAL_DIR, &segment_list[k].name);
                tracing::debug!(file = %path, offset = end, "cutting the end of the log back to its last record");
                at(&path, disk.truncate(&path, end).await)?;
            }
        }
        for (group, recovered) in &replayed.recovered {
            let state = groups.get_mut(group).expect("replay recovers the layout's groups");
            state.last_index = recovered.last_index();
            state.hard_state = recovered.hard_state;
        }
        let file = match segment_list.last() {
            Some(segment) => {
                let path = join(WAL_DIR, &segment.name);
                at(&path, disk.open_log(&path).await)?
            }
            None => {
                let key = next_segment_key(&layout, &groups, None).expect("the first segment has a name");
                let (segment, file) =
                    create_segment(&disk, &layout, key, &groups).await.map_err(|e| match e {
                        WalError::Io { path, source } => OpenError::Io { path, source },
                        _ => unreachable!("a new segment fails only by its IO"),
                    })?;
                segment_list.push(segment);
                file
            }
        };
        let wal = Wal {
            disk,
            options,
            layout,
            file,
            segments: segment_list,
            groups,
            failed: false,
            bytes_written: 0,
        };
        Ok((wal, replayed.recovered))
    }

    /// Group commit: makes `records` durable with one write and one
    /// fdatasync (plus, for a snapshot received from the leader, the
    /// snapshot file's own write, fsync, rename and directory sync).
    /// Returns the last `Lsn` now durable. For a log of one group.
    pub async fn append(&mut self, records: &[(Lsn, Record)]) -> Result<Option<Lsn>, WalError> {
        self.append_groups(&[(0, records)]).await?;
        Ok(records.last().map(|(lsn, _)| *lsn))
    }

    /// Group commit over groups: makes every group's `records` durable with
    /// one write and one fdatasync (a snapshot received from a leader
    /// splits it, as in [`Wal::append`]).
    pub async fn append_groups(&mut self, parts: &[(u32, &[(Lsn, Record)])]) -> Result<(), WalError> {
        if self.failed {
            return Err(WalError::Failed);
        }
        let result = self.append_records(parts).await;
        if result.is_err() {
            self.failed = true;
        }
        result
    }

    async fn append_records(&mut self, parts: &[(u32, &[(Lsn, Record)])]) -> Result<(), WalError> {
        // Everything is encoded before anything is written: a record too
        // large for a frame refuses the whole append, leaving the disk as
        // it was (the node must not take anything of it as durable).
        let mut buffer = Vec::new();
        let mut snapshots = Vec::new();
        for (group, records) in parts {
            if !self.groups.contains_key(group) {
                return Err(WalError::UnknownGroup(*group));
            }
            for (lsn, record) in records.iter() {
                let too_large = |source| WalError::RecordTooLarge { lsn: *lsn, source };
                if let Record::Snapshot(snapshot) = record {
                    let header = format::encode_snapshot_header(snapshot).map_err(too_large)?;
                    snapshots.push((buffer.len(), *group, snapshot, header));
                }
                let record = format::wal_record(record);
                match self.layout {
                    Layout::Single => format::encode_record(&record, &mut buffer),
                    Layout::Groups(_) => format::encode_group_record(
                        &format::GroupRecord { group: *group, record },
                        &mut buffer,
                    ),
                }
                .map_err(too_large)?;
            }
        }
        let (mut written, mut installed) = (0, false);
        for (offset, group, snapshot, header) in snapshots {
            // Everything before the snapshot is durable before it.
            self.write_and_sync(&buffer[written..offset]).await?;
            written = offset;
            self.write_snapshot_file(group, snapshot, &header).await?;
            installed = true;
        }
        self.write_and_sync(&buffer[written..]).await?;
        for (group, records) in parts {
            for (_, record) in records.iter() {
                self.track(*group, record);
            }
        }
        if self.file.len() >= self.options.segment_bytes_max {
            self.roll().await?;
        }
        if installed {
            self.delete_covered_segments().await?;
        }
        Ok(())
    }

    fn track(&mut self, group: u32, record: &Record) {
        let state = self.groups.get_mut(&group).expect("appends check their groups");
        match record {
            Record::HardState(hard_state) => state.hard_state = *hard_state,
            Record::Entry(entry) => {
                state.last_index = entry.index;
                let entries = &mut self.segments.last_mut().expect("always one segment").entries;
                recover::note_entry(entries, group, entry.index);
            }
            Record::Truncate { from } => {
                state.last_index = state.last_index.min(from.prev());
                recover::note_truncate(self.segments.iter_mut().map(|s| &mut s.entries), group, *from);
            }
            Record::Snapshot(snapshot) => state.last_index = state.last_index.max(snapshot.meta.index),
        }
    }

    async fn write_and_sync(&mut self, bytes: &[u8]) -> Result<(), WalError> {
        if bytes.is_empty() {
            return Ok(());
        }
        let path = self.segment_path();
        let io = |source| WalError::Io { path: path.clone(), source };
        self.file.append(bytes).await.map_err(io)?;
        self.file.sync().await.map_err(io)?;
        self.bytes_written += bytes.len() as u64;
        Ok(())
    }

    /// Bytes written to segments since the log was opened (records and
    /// their frames; not snapshot files).
    pub fn bytes_written(&self) -> u64 {
        self.bytes_written
    }

    fn segment_path(&self) -> String {
        join(WAL_DIR, &self.segments.last().expect("always one segment").name)
    }

    /// Closes the current segment and starts the next, which opens with
    /// every group's hard state so deleting older segments never loses it.
    async fn roll(&mut self) -> Result<(), WalError> {
        let key = next_segment_key(&self.layout, &self.groups, self.segments.last())?;
        let (segment, file) = create_segment(&self.disk, &self.layout, key, &self.groups).await?;
        self.file = file;
        self.segments.push(segment);
        Ok(())
    }

    /// Stores a compaction snapshot of the one group durably, then deletes
    /// the segments no longer needed and every snapshot but it and the one
    /// before.
    pub async fn save_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), WalError> {
        self.save_group_snapshot(0, snapshot).await
    }

    /// [`Wal::save_snapshot`] for group `group`.
    pub async fn save_group_snapshot(&mut self, group: u32, snapshot: &Snapshot) -> Result<(), WalError> {
        if self.failed {
            return Err(WalError::Failed);
        }
        let result = self.save_snapshot_inner(group, snapshot).await;
        if result.is_err() {
            self.failed = true;
        }
        result
    }

    async fn save_snapshot_inner(&mut self, group: u32, snapshot: &Snapshot) -> Result<(), WalError> {
        if !self.groups.contains_key(&group) {
            return Err(WalError::UnknownGroup(group));
        }
        let index = snapshot.meta.index;
        let header = format::encode_snapshot_header(snapshot)
            .map_err(|source| WalError::SnapshotTooLarge { index, source })?;
        self.write_snapshot_file(group, snapshot, &header).await?;
        self.delete_covered_segments().await
    }

    /// Deletes the oldest segments all of whose entries are at or before
    /// their group's newest durable snapshot; the current one stays.
    async fn delete_covered_segments(&mut self) -> Result<(), WalError> {
        let live = self.segments.len() - 1;
        let covered = self.segments[..live].iter().take_while(|s| self.covered(s)).count();
        if covered > 0 {
            for segment in self.segments.drain(..covered) {
                let path = join(WAL_DIR, &segment.name);
                self.disk.remove(&path).await.map_err(|source| WalError::Io { path, source })?;
            }
            sync_dir(&self.disk, WAL_DIR).await?;
        }
        Ok(())
    }

    fn covered(&self, segment: &Segment) -> bool {
        covered(segment, &self.groups)
    }

    /// The groups whose entries alone keep the oldest segment, once more
    /// than `segments_max` segments are live. In a log of several groups a
    /// group that took few writes long ago compacts rarely; the caller has
    /// it take a snapshot now, so that the log does not grow without end
    /// behind it.
    pub fn pinning(&self, segments_max: usize) -> Vec<u32> {
        match self.segments.first() {
            Some(oldest) if self.segments.len() > segments_max.max(1) => oldest
                .entries
                .iter()
                .filter(|(group, last)| **last > self.groups[group].snapshot_index())
                .map(|(group, _)| *group)
                .collect(),
            _ => Vec::new(),
        }
    }

    /// Snapshot file (`header`, then the data): temporary name, fsync,
    /// rename, directory fsync; then drops all of the group's but the
    /// newest two.
    async fn write_snapshot_file(
        &mut self,
        group: u32,
        snapshot: &Snapshot,
        header: &[u8],
    ) -> Result<(), WalError> {
        let (index, term) = (snapshot.meta.index, snapshot.meta.term);
        let state = self.groups.get_mut(&group).expect("callers check their groups");
        if state.snapshots.last().is_some_and(|(i, _)| *i >= index) {
            return Ok(());
        }
        let path = join(SNAP_DIR, &snapshot_name(&self.layout, group, index, term));
        let temporary = format!("{path}.tmp");
        let io = |path: &str| {
            let path = path.to_string();
            move |source| WalError::Io { path, source }
        };
        let mut file = self.disk.open_append(&temporary).await.map_err(io(&temporary))?;
        file.append(header).await.map_err(io(&temporary))?;
        file.append(&snapshot.data).await.map_err(io(&temporary))?;
        file.sync().await.map_err(io(&temporary))?;
        self.disk.rename(&temporary, &path).await.map_err(io(&path))?;
        sync_dir(&self.disk, SNAP_DIR).await?;
        state.snapshots.push((index, term));
        if state.snapshots.len() > 2 {
            let old: Vec<(Index, Term)> = state.snapshots.drain(..state.snapshots.len() - 2).collect();
            for (index, term) in old {
                let path = join(SNAP_DIR, &snapshot_name(&self.layout, group, index, term));
                self.disk.remove(&path).await.map_err(io(&path))?;
            }
            sync_dir(&self.disk, SNAP_DIR).await?;
        }
        Ok(())
    }

    /// The live segment files, oldest first (for tests and tooling).
    pub fn segment_names(&self) -> Vec<String> {
        self.segments.iter().map(|segment| segment.name.clone()).collect()
    }
}

/// Whether every group's entries in `segment` are at or before the group's
/// newest durable snapshot: recovery needs nothing of it.
fn covered(segment: &Segment, groups: &BTreeMap<u32, Group>) -> bool {
    segment.entries.iter().all(|(group, last)| groups.get(group).is_some_and(|g| *last <= g.snapshot_index()))
}

/// A log of several groups numbers its segments one after the other. A
/// gap is a missing segment, unless every segment before it holds nothing
/// recovery needs (a crash cut a deletion of covered segments short, and
/// the removals reached the disk out of order); recovery refuses it as
/// corruption rather than lose a group's entries without a word.
fn check_sequence(
    layout: &Layout,
    segments: &[Segment],
    groups: &BTreeMap<u32, Group>,
) -> Result<(), OpenError> {
    if *layout == Layout::Single {
        return Ok(());
    }
    for (k, pair) in segments.windows(2).enumerate() {
        let expected = pair[0].key.saturating_add(1);
        if pair[1].key != expected && !segments[..=k].iter().all(|s| covered(s, groups)) {
            let file = join(WAL_DIR, &pair[1].name);
            let detail = format!("segment {} before it is missing", format::segment_name(Index(expected)));
            return Err(OpenError::Corrupt(recover::Corruption { file, offset: 0, detail }));
        }
    }
    Ok(())
}

/// A snapshot file's name in `layout`.
fn snapshot_name(layout: &Layout, group: u32, index: Index, term: Term) -> String {
    match layout {
        Layout::Single => format::snapshot_name(index, term),
        Layout::Groups(_) => format::group_snapshot_name(group, index, term),
    }
}

/// The snapshot files of `layout`'s naming, as `(group, index, term)`,
/// oldest first within each group.
async fn list_snapshots<D: Disk>(
    disk: &D,
    layout: &Layout,
) -> Result<Vec<((u32, Index, Term), String)>, OpenError> {
    match layout {
        Layout::Single => {
            let parse = |name: &str| format::parse_snapshot_name(name).map(|(index, term)| (0, index, term));
            list_parsed(disk, SNAP_DIR, parse).await
        }
        Layout::Groups(_) => list_parsed(disk, SNAP_DIR, format::parse_group_snapshot_name).await,
    }
}

/// The name of the segment after `last`: the first index to come
/// (`Layout::Single`), or the next sequence number; always above `last`'s,
/// so that a roll never reopens a live segment (after a truncation below
/// the current segment's first index, the first index to come is lower).
/// An error only past `u64::MAX` (a file of that name on disk).
fn next_segment_key(
    layout: &Layout,
    groups: &BTreeMap<u32, Group>,
    last: Option<&Segment>,
) -> Result<u64, WalError> {
    let after_last = match last {
        Some(segment) => segment.key.checked_add(1).ok_or_else(|| WalError::Io {
            path: join(WAL_DIR, &segment.name),
            source: io::Error::other("no segment name comes after this one"),
        })?,
        None => 1,
    };
    Ok(match layout {
        Layout::Single => groups.get(&0).map_or(Index(0), |g| g.last_index).next().0.max(after_last),
        Layout::Groups(_) => after_last,
    })
}

async fn sync_dir<D: Disk>(disk: &D, dir: &str) -> Result<(), WalError> {
    disk.sync_dir(dir).await.map_err(|source| WalError::Io { path: dir.to_string(), source })
}

/// A new segment named `key`: its header, then every group's hard state.
async fn create_segment<D: Disk>(
    disk: &D,
    layout: &Layout,
    key: u64,
    groups: &BTreeMap<u32, Group>,
) -> Result<(Segment, D::File), WalError> {
    let name = format::segment_name(Index(key));
    let path = join(WAL_DIR, &name);
    let io = |source| WalError::Io { path: path.clone(), source };
    let mut file = disk.open_log(&path).await.map_err(io)?;
    let mut bytes = Vec::new();
    let small = "a hard state record is a few dozen bytes";
    match layout {
        Layout::Single => {
            format::encode_segment_header(Index(key), &mut bytes);
            let hard_state = groups.get(&0).map(|g| g.hard_state).unwrap_or_default();
            format::encode_record(&WalRecord::HardState(hard_state), &mut bytes).expect(small);
        }
        Layout::Groups(_) => {
            format::encode_group_segment_header(key, &mut bytes);
            for (group, state) in groups {
                let record =
                    format::GroupRecord { group: *group, record: WalRecord::HardState(state.hard_state) };
                format::encode_group_record(&record, &mut bytes).expect(small);
            }
        }
    }
    file.append(&bytes).await.map_err(io)?;
    file.sync().await.map_err(io)?;
    sync_dir(disk, WAL_DIR).await?;
    Ok((Segment { key, name, entries: BTreeMap::new() }, file))
}

async fn list_parsed<D: Disk, K: Ord>(
    disk: &D,
    dir: &str,
    parse: fn(&str) -> Option<K>,
) -> Result<Vec<(K, String)>, OpenError> {
    let names = at(dir, disk.list(dir).await)?;
    let mut parsed: Vec<(K, String)> =
        names.into_iter().filter_map(|name| parse(&name).map(|key| (key, name))).collect();
    parsed.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(parsed)
}

async fn check_meta<D: Disk>(disk: &D, options: WalOptions, fresh: bool) -> Result<(), OpenError> {
    let expected = (options.node_id, options.cluster_id);
    match disk.read(META_FILE).await {
        Ok(bytes) => {
            let meta = format::decode_meta(&bytes).map_err(|e| recover::refusal(META_FILE, 0, e))?;
            let found = (meta.node_id, meta.cluster_id);
            if found != expected {
                return Err(OpenError::WrongOwner { expected, found });
            }
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound && fresh => {
            let temporary = format!("{META_FILE}.tmp");
            // A crash during an earlier first start can leave one behind:
            // appending to it would put its bytes before the meta frame.
            match disk.remove(&temporary).await {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return at(&temporary, Err(e)),
                _ => {}
            }
            let mut file = at(&temporary, disk.open_append(&temporary).await)?;
            let meta = format::encode_meta(options.node_id, options.cluster_id, options.meta_version);
            at(&temporary, file.append(&meta).await)?;
            at(&temporary, file.sync().await)?;
            at(META_FILE, disk.rename(&temporary, META_FILE).await)?;
            at("", disk.sync_dir("").await)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(OpenError::MetaMissing),
        Err(source) => Err(OpenError::Io { path: META_FILE.into(), source }),
    }
}

/// Leftovers of a snapshot or meta write that a crash interrupted.
async fn remove_temporary_files<D: Disk>(disk: &D) -> Result<(), OpenError> {
    for dir in [SNAP_DIR, ""] {
        for name in at(dir, disk.list(dir).await)? {
            if name.ends_with(".tmp") {
                let path = if dir.is_empty() { name } else { join(dir, &name) };
                at(&path, disk.remove(&path).await)?;
            }
        }
    }
    Ok(())
}

async fn read_snapshot<D: Disk>(
    disk: &D,
    path: &str,
    index: Index,
    term: Term,
) -> Result<Snapshot, OpenError> {
    let bytes = at(path, disk.read(path).await)?;
    let snapshot =
        format::decode_snapshot(&bytes).map_err(|(offset, e)| recover::refusal(path, offset, e))?;
    if (snapshot.meta.index, snapshot.meta.term) != (index, term) {
        let detail = format!("holds index {} term {}", snapshot.meta.index, snapshot.meta.term);
        return Err(OpenError::Corrupt(recover::Corruption { file: path.to_string(), offset: 0, detail }));
    }
    Ok(snapshot)
}
