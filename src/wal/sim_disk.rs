//! A simulated disk, in memory and deterministic, for tests and `sim/`.
//! It stands in for `runtime::disk::GlommioDisk`.
//!
//! It keeps, per file, the bytes written and the prefix of them that is
//! durable, and per directory the entries whose creation, rename or removal
//! was made durable by `sync_dir`. Faults it may inject:
//! - **crash** ([`SimDisk::crash`]): the directory reverts to its durable
//!   entries; each file keeps its durable bytes plus, as the crash options
//!   say, a prefix of the unsynced bytes (the page cache wrote part of it);
//!   optionally a flipped bit in the unsynced part kept (a torn sector);
//! - **failure after N operations** ([`SimDisk::fail_after`]): every write
//!   or sync from then on returns an IO error, the way a dying disk does;
//! - **corruption** ([`SimDisk::flip_bit`]): damage durable bytes at rest.
//!
//! Futures it returns are always ready; [`block_on`] runs them.

use super::disk::{parent, Disk, DiskFile};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::pin::pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct FileData {
    written: Vec<u8>,
    durable: usize,
}

type FileId = u64;

#[derive(Debug, Default)]
struct State {
    files: BTreeMap<FileId, FileData>,
    /// path -> file, as the running process sees it.
    current: BTreeMap<String, FileId>,
    /// path -> file, as a crash would leave it.
    durable: BTreeMap<String, FileId>,
    directories: Vec<String>,
    next_id: FileId,
    operations: u64,
    fail_after: Option<u64>,
    /// A planted fault for tests of the checkers: `sync` reports success
    /// without making anything durable.
    sync_lies: bool,
}

/// How much of the unsynced data survives a crash.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CrashOptions {
    /// Unsynced bytes kept per file, from the durable end (0 = none).
    pub keep_unsynced_bytes: usize,
    /// Flip one bit in the last unsynced byte kept.
    pub tear_last_byte: bool,
}

/// A shared handle: clones see the same disk.
#[derive(Clone, Debug, Default)]
pub struct SimDisk {
    state: Rc<RefCell<State>>,
}

pub struct SimFile {
    disk: SimDisk,
    id: FileId,
}

fn not_found(path: &str) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, format!("no such file: {path}"))
}

impl SimDisk {
    pub fn new() -> SimDisk {
        SimDisk::default()
    }

    /// Every write and sync after `operations` more of them fails.
    pub fn fail_after(&self, operations: u64) {
        let mut state = self.state.borrow_mut();
        state.fail_after = Some(state.operations + operations);
    }

    /// Makes `sync` lie (a disk or a bug that acknowledges before data is
    /// durable); only for proving that crash checks catch it.
    pub fn set_sync_lies(&self, lies: bool) {
        self.state.borrow_mut().sync_lies = lies;
    }

    /// Writes and syncs performed so far.
    pub fn operations(&self) -> u64 {
        self.state.borrow().operations
    }

    /// Counts one write or sync; fails it if the disk is dead.
    fn operation(&self) -> io::Result<()> {
        let mut state = self.state.borrow_mut();
        if state.fail_after.is_some_and(|limit| state.operations >= limit) {
            return Err(io::Error::other("simulated disk failure"));
        }
        state.operations += 1;
        Ok(())
    }

    /// What a power loss now would leave behind, as a new disk.
    pub fn crash(&self, options: CrashOptions) -> SimDisk {
        let state = self.state.borrow();
        let mut files = BTreeMap::new();
        for id in state.durable.values() {
            let data = &state.files[id];
            let keep = data.durable.saturating_add(options.keep_unsynced_bytes).min(data.written.len());
            let mut bytes = data.written[..keep].to_vec();
            if options.tear_last_byte && keep > data.durable {
                bytes[keep - 1] ^= 0x10;
            }
            files.insert(*id, FileData { durable: bytes.len(), written: bytes });
        }
        let survivor = State {
            files,
            current: state.durable.clone(),
            durable: state.durable.clone(),
            directories: state.directories.clone(),
            next_id: state.next_id,
            operations: 0,
            fail_after: None,
            sync_lies: false,
        };
        SimDisk { state: Rc::new(RefCell::new(survivor)) }
    }

    /// Flips one bit of `path` at `offset` (durable damage).
    pub fn flip_bit(&self, path: &str, offset: usize) {
        let mut state = self.state.borrow_mut();
        let id = state.current[path];
        state.files.get_mut(&id).expect("file exists").written[offset] ^= 0x01;
    }

    /// The bytes of `path` as the process sees them (for tests).
    pub fn contents(&self, path: &str) -> Option<Vec<u8>> {
        let state = self.state.borrow();
        state.current.get(path).map(|id| state.files[id].written.clone())
    }

    /// Replaces the bytes of `path`, durably (for tests building damage).
    pub fn put(&self, path: &str, bytes: Vec<u8>) {
        let mut state = self.state.borrow_mut();
        let id = state.next_id;
        state.next_id += 1;
        state.files.insert(id, FileData { durable: bytes.len(), written: bytes });
        state.current.insert(path.to_string(), id);
        state.durable.insert(path.to_string(), id);
    }
}

impl Disk for SimDisk {
    type File = SimFile;

    async fn create_dir_all(&self, dir: &str) -> io::Result<()> {
        let mut state = self.state.borrow_mut();
        if !state.directories.iter().any(|d| d == dir) {
            state.directories.push(dir.to_string());
        }
        Ok(())
    }

    async fn open_append(&self, path: &str) -> io::Result<SimFile> {
        let mut state = self.state.borrow_mut();
        let id = match state.current.get(path) {
            Some(id) => *id,
            None => {
                let id = state.next_id;
                state.next_id += 1;
                state.files.insert(id, FileData::default());
                state.current.insert(path.to_string(), id);
                id
            }
        };
        Ok(SimFile { disk: self.clone(), id })
    }

    async fn read(&self, path: &str) -> io::Result<Vec<u8>> {
        self.contents(path).ok_or_else(|| not_found(path))
    }

    async fn list(&self, dir: &str) -> io::Result<Vec<String>> {
        let state = self.state.borrow();
        let names = state.current.keys().filter(|p| parent(p) == dir);
        Ok(names.map(|p| p[p.rfind('/').map_or(0, |i| i + 1)..].to_string()).collect())
    }

    async fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        let mut state = self.state.borrow_mut();
        let id = state.current.remove(from).ok_or_else(|| not_found(from))?;
        state.current.insert(to.to_string(), id);
        Ok(())
    }

    async fn remove(&self, path: &str) -> io::Result<()> {
        let mut state = self.state.borrow_mut();
        state.current.remove(path).map(|_| ()).ok_or_else(|| not_found(path))
    }

    async fn truncate(&self, path: &str, len: u64) -> io::Result<()> {
        self.operation()?;
        let mut state = self.state.borrow_mut();
        let id = *state.current.get(path).ok_or_else(|| not_found(path))?;
        let file = state.files.get_mut(&id).expect("file exists");
        file.written.truncate(len as usize);
        file.durable = file.written.len();
        Ok(())
    }

    async fn sync_dir(&self, dir: &str) -> io::Result<()> {
        self.operation()?;
        let mut state = self.state.borrow_mut();
        let in_dir = |p: &String| parent(p) == dir;
        state.durable.retain(|p, _| !in_dir(p));
        let synced: Vec<(String, FileId)> =
            state.current.iter().filter(|(p, _)| in_dir(p)).map(|(p, id)| (p.clone(), *id)).collect();
        state.durable.extend(synced);
        Ok(())
    }
}

impl DiskFile for SimFile {
    async fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.disk.operation()?;
        let mut state = self.disk.state.borrow_mut();
        state.files.get_mut(&self.id).expect("file exists").written.extend_from_slice(bytes);
        Ok(())
    }

    async fn sync(&mut self) -> io::Result<()> {
        self.disk.operation()?;
        let mut state = self.disk.state.borrow_mut();
        if state.sync_lies {
            return Ok(());
        }
        let file = state.files.get_mut(&self.id).expect("file exists");
        file.durable = file.written.len();
        Ok(())
    }

    fn len(&self) -> u64 {
        self.disk.state.borrow().files[&self.id].written.len() as u64
    }
}

/// Runs a future that never waits (every `SimDisk` future is ready at once).
pub fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut context = Context::from_waker(Waker::noop());
    match future.as_mut().poll(&mut context) {
        Poll::Ready(value) => value,
        Poll::Pending => panic!("a simulated-disk future waited; block_on cannot drive it"),
    }
}
