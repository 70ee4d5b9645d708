//! The one IO seam of storage: a directory of files, asynchronously.
//!
//! Two implementations: `runtime::disk::GlommioDisk` (production, behind the
//! `server` feature) and [`super::sim_disk::SimDisk`] (deterministic, in
//! memory, separates written from durable bytes; used by tests and `sim/`).
//! Paths are relative to the disk's root and use `/`.
//!
//! Durability contract, as on Linux: bytes appended to a file are durable
//! once `DiskFile::sync` returns; creating, renaming or removing a file is
//! durable once `Disk::sync_dir` on its directory returns. Any error from a
//! write or sync is fatal to the caller (the WAL refuses everything after it).

use std::io;

#[allow(async_fn_in_trait)] // single-threaded executors: no Send bound wanted
pub trait Disk {
    type File: DiskFile;

    /// Creates `dir` and its parents if missing.
    async fn create_dir_all(&self, dir: &str) -> io::Result<()>;
    /// Opens `path` for appending, creating it empty if missing.
    async fn open_append(&self, path: &str) -> io::Result<Self::File>;
    /// Opens a log segment for appending. A disk may allocate space ahead
    /// of the writes, filled with zeros (an overwrite syncs faster than an
    /// append that grows the file); recovery reads zeros after the last
    /// record as the end of the log. By default the same as `open_append`.
    async fn open_log(&self, path: &str) -> io::Result<Self::File> {
        self.open_append(path).await
    }
    /// The whole content of `path`.
    async fn read(&self, path: &str) -> io::Result<Vec<u8>>;
    /// File names (not paths) in `dir`, sorted.
    async fn list(&self, dir: &str) -> io::Result<Vec<String>>;
    async fn rename(&self, from: &str, to: &str) -> io::Result<()>;
    async fn remove(&self, path: &str) -> io::Result<()>;
    /// Cuts `path` to `len` bytes and makes that durable.
    async fn truncate(&self, path: &str, len: u64) -> io::Result<()>;
    /// Makes creations, renames and removals in `dir` durable.
    async fn sync_dir(&self, dir: &str) -> io::Result<()>;
}

#[allow(async_fn_in_trait)]
pub trait DiskFile {
    /// Appends `bytes` at the end of the file (not yet durable, unless the
    /// disk writes through, as the production disk does).
    async fn append(&mut self, bytes: &[u8]) -> io::Result<()>;
    /// fdatasync: everything appended so far is durable.
    async fn sync(&mut self) -> io::Result<()>;
    /// Current length in bytes, including what is not yet durable.
    fn len(&self) -> u64;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The directory part of `path` ("" for a bare name).
pub fn parent(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(dir, _)| dir)
}
