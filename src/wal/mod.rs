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
pub mod recover;
pub mod sim_disk;

use crate::frame::FrameTooLarge;
use crate::raft::{HardState, Index, Lsn, Record, Recovered, Snapshot, Term};
use disk::{Disk, DiskFile};
use format::{WalRecord, META_FILE, SNAP_DIR, WAL_DIR};
use std::fmt;
use std::io;

pub const SEGMENT_BYTES_MAX_DEFAULT: u64 = 64 << 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WalOptions {
    pub node_id: u64,
    pub cluster_id: u64,
    /// A segment is closed and a new one started past this size.
    pub segment_bytes_max: u64,
}

impl WalOptions {
    pub fn new(node_id: u64, cluster_id: u64) -> WalOptions {
        WalOptions { node_id, cluster_id, segment_bytes_max: SEGMENT_BYTES_MAX_DEFAULT }
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

pub struct Wal<D: Disk> {
    disk: D,
    options: WalOptions,
    file: D::File,
    /// `(first index, file name)` of every live segment, oldest first.
    segments: Vec<(Index, String)>,
    /// `(index, term)` of every snapshot file, oldest first.
    snapshots: Vec<(Index, Term)>,
    last_index: Index,
    hard_state: HardState,
    failed: bool,
}

impl<D: Disk> Wal<D> {
    /// Opens (or creates) a data directory and recovers what it holds.
    pub async fn open(disk: D, options: WalOptions) -> Result<(Wal<D>, Recovered), OpenError> {
        at(WAL_DIR, disk.create_dir_all(WAL_DIR).await)?;
        at(SNAP_DIR, disk.create_dir_all(SNAP_DIR).await)?;
        let segment_names = list_parsed(&disk, WAL_DIR, format::parse_segment_name).await?;
        let snapshot_names = list_parsed(&disk, SNAP_DIR, format::parse_snapshot_name).await?;
        let fresh = segment_names.is_empty() && snapshot_names.is_empty();
        check_meta(&disk, options, fresh).await?;

        let snapshot = match snapshot_names.last() {
            Some(((index, term), _)) => Some(read_snapshot(&disk, *index, *term).await?),
            None => None,
        };
        let mut segments = Vec::new();
        for (_, name) in &segment_names {
            let path = join(WAL_DIR, name);
            segments.push((name.clone(), at(&path, disk.read(&path).await)?));
        }
        let replayed = recover::replay(snapshot, &segments)?;
        // Only now, with every file read and its version known to this
        // build, does anything on disk change.
        remove_temporary_files(&disk).await?;
        let mut segment_list = segment_names;
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
                let path = join(WAL_DIR, &segment_list[k].1);
                tracing::debug!(file = %path, offset = end, "cutting the end of the log back to its last record");
                at(&path, disk.truncate(&path, end).await)?;
            }
        }
        let recovered = replayed.recovered;
        let last_index = recovered.last_index();
        let (file, segments) = match segment_list.last() {
            Some((_, name)) => {
                let path = join(WAL_DIR, name);
                (at(&path, disk.open_log(&path).await)?, segment_list)
            }
            None => {
                let (first, file) = create_segment(&disk, last_index.next(), recovered.hard_state)
                    .await
                    .map_err(|e| match e {
                        WalError::Io { path, source } => OpenError::Io { path, source },
                        _ => unreachable!("a new segment fails only by its IO"),
                    })?;
                (file, vec![(first, format::segment_name(first))])
            }
        };
        let snapshots = snapshot_names.into_iter().map(|(key, _)| key).collect();
        let wal = Wal {
            disk,
            options,
            file,
            segments,
            snapshots,
            last_index,
            hard_state: recovered.hard_state,
            failed: false,
        };
        Ok((wal, recovered))
    }

    /// Group commit: makes `records` durable with one write and one
    /// fdatasync (plus, for a snapshot received from the leader, the
    /// snapshot file's own write, fsync, rename and directory sync).
    /// Returns the last `Lsn` now durable.
    pub async fn append(&mut self, records: &[(Lsn, Record)]) -> Result<Option<Lsn>, WalError> {
        if self.failed {
            return Err(WalError::Failed);
        }
        let result = self.append_records(records).await;
        if result.is_err() {
            self.failed = true;
        }
        result?;
        Ok(records.last().map(|(lsn, _)| *lsn))
    }

    async fn append_records(&mut self, records: &[(Lsn, Record)]) -> Result<(), WalError> {
        // Everything is encoded before anything is written: a record too
        // large for a frame refuses the whole append, leaving the disk as
        // it was (the node must not take anything of it as durable).
        let mut buffer = Vec::new();
        let mut snapshots = Vec::new();
        for (lsn, record) in records {
            let too_large = |source| WalError::RecordTooLarge { lsn: *lsn, source };
            if let Record::Snapshot(snapshot) = record {
                let header = format::encode_snapshot_header(snapshot).map_err(too_large)?;
                snapshots.push((buffer.len(), snapshot, header));
            }
            format::encode_record(&format::wal_record(record), &mut buffer).map_err(too_large)?;
        }
        let (mut written, mut installed) = (0, None);
        for (offset, snapshot, header) in snapshots {
            // Everything before the snapshot is durable before it.
            self.write_and_sync(&buffer[written..offset]).await?;
            written = offset;
            self.write_snapshot_file(snapshot, &header).await?;
            installed = Some(snapshot.meta.index);
        }
        self.write_and_sync(&buffer[written..]).await?;
        for (_, record) in records {
            self.track(record);
        }
        if self.file.len() >= self.options.segment_bytes_max {
            self.roll().await?;
        }
        if let Some(index) = installed {
            self.delete_covered_segments(index).await?;
        }
        Ok(())
    }

    fn track(&mut self, record: &Record) {
        match record {
            Record::HardState(hard_state) => self.hard_state = *hard_state,
            Record::Entry(entry) => self.last_index = entry.index,
            Record::Truncate { from } => self.last_index = self.last_index.min(from.prev()),
            Record::Snapshot(snapshot) => self.last_index = self.last_index.max(snapshot.meta.index),
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
        Ok(())
    }

    fn segment_path(&self) -> String {
        join(WAL_DIR, &self.segments.last().expect("always one segment").1)
    }

    /// Closes the current segment and starts the next, which opens with the
    /// hard state so deleting older segments never loses it.
    async fn roll(&mut self) -> Result<(), WalError> {
        let (first, file) = create_segment(&self.disk, self.last_index.next(), self.hard_state).await?;
        self.file = file;
        self.segments.push((first, format::segment_name(first)));
        Ok(())
    }

    /// Stores a compaction snapshot durably, then deletes the segments it
    /// wholly covers and every snapshot but it and the one before.
    pub async fn save_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), WalError> {
        if self.failed {
            return Err(WalError::Failed);
        }
        let result = self.save_snapshot_inner(snapshot).await;
        if result.is_err() {
            self.failed = true;
        }
        result
    }

    async fn save_snapshot_inner(&mut self, snapshot: &Snapshot) -> Result<(), WalError> {
        let index = snapshot.meta.index;
        let header = format::encode_snapshot_header(snapshot)
            .map_err(|source| WalError::SnapshotTooLarge { index, source })?;
        self.write_snapshot_file(snapshot, &header).await?;
        self.delete_covered_segments(snapshot.meta.index).await
    }

    /// Deletes the oldest segments whose every entry is at or before
    /// `index` (a durable snapshot holds them); the current one stays.
    async fn delete_covered_segments(&mut self, index: Index) -> Result<(), WalError> {
        let covered = self.segments.windows(2).take_while(|w| w[1].0.prev() <= index).count();
        if covered > 0 {
            for (_, name) in self.segments.drain(..covered) {
                let path = join(WAL_DIR, &name);
                self.disk.remove(&path).await.map_err(|source| WalError::Io { path, source })?;
            }
            sync_dir(&self.disk, WAL_DIR).await?;
        }
        Ok(())
    }

    /// Snapshot file (`header`, then the data): temporary name, fsync,
    /// rename, directory fsync; then drops all but the newest two.
    async fn write_snapshot_file(&mut self, snapshot: &Snapshot, header: &[u8]) -> Result<(), WalError> {
        let (index, term) = (snapshot.meta.index, snapshot.meta.term);
        if self.snapshots.last().is_some_and(|(i, _)| *i >= index) {
            return Ok(());
        }
        let name = format::snapshot_name(index, term);
        let path = join(SNAP_DIR, &name);
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
        self.snapshots.push((index, term));
        if self.snapshots.len() > 2 {
            let old: Vec<(Index, Term)> = self.snapshots.drain(..self.snapshots.len() - 2).collect();
            for (index, term) in old {
                let path = join(SNAP_DIR, &format::snapshot_name(index, term));
                self.disk.remove(&path).await.map_err(io(&path))?;
            }
            sync_dir(&self.disk, SNAP_DIR).await?;
        }
        Ok(())
    }

    /// The live segment files, oldest first (for tests and tooling).
    pub fn segment_names(&self) -> Vec<String> {
        self.segments.iter().map(|(_, name)| name.clone()).collect()
    }
}

async fn sync_dir<D: Disk>(disk: &D, dir: &str) -> Result<(), WalError> {
    disk.sync_dir(dir).await.map_err(|source| WalError::Io { path: dir.to_string(), source })
}

async fn create_segment<D: Disk>(
    disk: &D,
    first: Index,
    hard_state: HardState,
) -> Result<(Index, D::File), WalError> {
    let path = join(WAL_DIR, &format::segment_name(first));
    let io = |source| WalError::Io { path: path.clone(), source };
    let mut file = disk.open_log(&path).await.map_err(io)?;
    let mut bytes = Vec::new();
    format::encode_segment_header(first, &mut bytes);
    format::encode_record(&WalRecord::HardState(hard_state), &mut bytes)
        .expect("a hard state record is a few dozen bytes");
    file.append(&bytes).await.map_err(io)?;
    file.sync().await.map_err(io)?;
    sync_dir(disk, WAL_DIR).await?;
    Ok((first, file))
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
            at(&temporary, file.append(&format::encode_meta(options.node_id, options.cluster_id)).await)?;
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

async fn read_snapshot<D: Disk>(disk: &D, index: Index, term: Term) -> Result<Snapshot, OpenError> {
    let path = join(SNAP_DIR, &format::snapshot_name(index, term));
    let bytes = at(&path, disk.read(&path).await)?;
    let snapshot =
        format::decode_snapshot(&bytes).map_err(|(offset, e)| recover::refusal(&path, offset, e))?;
    if (snapshot.meta.index, snapshot.meta.term) != (index, term) {
        let detail = format!("holds index {} term {}", snapshot.meta.index, snapshot.meta.term);
        return Err(OpenError::Corrupt(recover::Corruption { file: path, offset: 0, detail }));
    }
    Ok(snapshot)
}
