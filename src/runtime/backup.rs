//! `cashe backup` and `cashe restore` (issue 18).
//!
//! **Backup** talks to one member over the client protocol. `CLUSTER
//! SLOTS` says how the key space is split; for each slot range (each
//! group) it sends `CASHE.BACKUP SLOT <first>`, which the member routes to
//! the group (its own replica, or one elsewhere) and which the group
//! answers as a linearizable read: its state at one log index. The bytes
//! stream into `FILE.tmp` with a progress line on stderr, their CRC-32 is
//! checked against the one the group sent, and the file (each part with
//! its CRC, the whole with one more: `kv::backup`) is synced and renamed to
//! `FILE`, so a file of that name is always whole. A cluster of one shard
//! is backed up at one log index. One of several shards is backed up at
//! one index per group, taken one after the other: each group's part is a
//! consistent prefix of that group's writes, but not of the whole
//! cluster's (a write to a group backed up earlier may be missing while a
//! later write to a group backed up after it is there).
//!
//! **Restore** reads the file (every CRC checked), merges the groups'
//! stores into one (`Store::merged`), and writes a new data directory: a
//! one-node, one-shard cluster whose home log starts with a snapshot of
//! that store. The node started on it leads at once, records itself in the
//! directory as a bootstrapped founder does, and others join as usual.
//!
//! Blocking `std::net` and `std::fs`: these are command-line tools, not
//! the server.

use crate::kv::backup::{self as format, BACKUP_REPLY_TAG};
use crate::kv::Store;
use crate::protocol::reply::encode_command;
use crate::protocol::Reply;
use crate::raft::{Index, Membership, Snapshot, SnapshotMeta, Term};
use std::io::{BufRead, BufReader, IsTerminal, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long one reply may take to start: a group serializes its whole
/// store before the first byte.
const REPLY_WAIT: Duration = Duration::from_secs(300);
/// Small replies (AUTH, CLUSTER SLOTS) are at most this long.
const SMALL_REPLY_BYTES_MAX: usize = 16 << 20;

pub struct BackupOptions {
    pub from: String,
    pub out: PathBuf,
    pub user: Option<String>,
    pub password: Option<String>,
}

/// What a backup wrote.
pub struct BackupSummary {
    pub parts: usize,
    pub keys: u64,
    pub bytes: u64,
    pub crc: u32,
}

struct Connection {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Connection {
    fn open(address: &str) -> Result<Connection, String> {
        let full = if address.starts_with(':') { format!("127.0.0.1{address}") } else { address.to_string() };
        let socket = full
            .to_socket_addrs()
            .map_err(|e| format!("{address}: {e}"))?
            .next()
            .ok_or_else(|| format!("{address}: no address"))?;
        let stream = TcpStream::connect_timeout(&socket, Duration::from_secs(10))
            .map_err(|e| format!("connecting to {address}: {e}"))?;
        stream.set_read_timeout(Some(REPLY_WAIT)).map_err(|e| e.to_string())?;
        let writer = stream.try_clone().map_err(|e| e.to_string())?;
        Ok(Connection { reader: BufReader::with_capacity(1 << 20, stream), writer })
    }

    fn send(&mut self, args: &[&str]) -> Result<(), String> {
        let mut out = Vec::new();
        encode_command(args, &mut out);
        self.writer.write_all(&out).map_err(|e| format!("sending {}: {e}", args[0]))
    }

    /// A small reply, whole.
    fn call(&mut self, args: &[&str]) -> Result<Reply, String> {
        self.send(args)?;
        super::join::read_reply(&mut self.reader, SMALL_REPLY_BYTES_MAX, "")
            .map_err(|e| format!("{}: {e}", args[0]))
    }

    /// One RESP line, without its CRLF.
    fn line(&mut self) -> Result<String, String> {
        let mut line = Vec::new();
        self.reader.read_until(b'\n', &mut line).map_err(|e| format!("reading the backup: {e}"))?;
        if !line.ends_with(b"\r\n") {
            return Err("the connection closed in the middle of the backup".into());
        }
        line.truncate(line.len() - 2);
        String::from_utf8(line).map_err(|_| "a reply line that is not text".to_string())
    }

    fn integer(&mut self, what: &str) -> Result<i64, String> {
        let line = self.line()?;
        line.strip_prefix(':')
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| format!("{what}: not an integer: {line}"))
    }
}

/// The slot ranges of the cluster's groups, from `CLUSTER SLOTS`.
fn slot_ranges(connection: &mut Connection) -> Result<Vec<(u16, u16)>, String> {
    let reply = connection.call(&["CLUSTER", "SLOTS"])?;
    if let Reply::Error(e) = &reply {
        let hint =
            if e.starts_with("NOAUTH") { " (give --password, and --user for an ACL user)" } else { "" };
        return Err(format!("CLUSTER SLOTS: {e}{hint}"));
    }
    let Reply::Array(Some(ranges)) = reply else {
        return Err(format!("CLUSTER SLOTS answered {reply:?}"));
    };
    let mut out = Vec::new();
    for range in ranges {
        let bounds = match &range {
            Reply::Array(Some(items)) => match (items.first(), items.get(1)) {
                (Some(Reply::Integer(first)), Some(Reply::Integer(last))) => {
                    u16::try_from(*first).ok().zip(u16::try_from(*last).ok())
                }
                _ => None,
            },
            _ => None,
        };
        out.push(bounds.ok_or_else(|| format!("CLUSTER SLOTS: a range that is not one: {range:?}"))?);
    }
    out.sort_unstable();
    if out.is_empty() {
        return Err("CLUSTER SLOTS lists no slots".into());
    }
    Ok(out)
}

/// Progress of one part on stderr: redrawn in place on a terminal, a line
/// every few seconds otherwise.
struct Progress {
    label: String,
    total: u64,
    started: Instant,
    shown: Instant,
    terminal: bool,
}

impl Progress {
    fn show(&mut self, done: u64, last: bool) {
        let every = if self.terminal { Duration::from_millis(200) } else { Duration::from_secs(5) };
        if !last && self.shown.elapsed() < every {
            return;
        }
        self.shown = Instant::now();
        let mib = |b: u64| b as f64 / (1 << 20) as f64;
        let percent = if self.total == 0 { 100.0 } else { done as f64 * 100.0 / self.total as f64 };
        let rate = mib(done) / self.started.elapsed().as_secs_f64().max(1e-3);
        let text = format!(
            "backup: {}: {:.1} of {:.1} MiB ({percent:.0}%), {rate:.1} MiB/s",
            self.label,
            mib(done),
            mib(self.total)
        );
        if self.terminal {
            eprint!("\r{text}{}", if last { "\n" } else { "" });
        } else {
            eprintln!("{text}");
        }
    }
}

/// Takes a backup; see the module's documentation.
pub fn backup(options: &BackupOptions) -> Result<BackupSummary, String> {
    let mut connection = Connection::open(&options.from)?;
    if let Some(password) = &options.password {
        let mut args = vec!["AUTH"];
        if let Some(user) = &options.user {
            args.push(user);
        }
        args.push(password);
        if let Reply::Error(e) = connection.call(&args)? {
            return Err(format!("AUTH: {e}"));
        }
    }
    let ranges = slot_ranges(&mut connection)?;
    let tmp = options.out.with_extension("tmp");
    let file = std::fs::File::create(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
    let result = write_parts(&mut connection, &ranges, file, &tmp);
    let (file, summary) = match result {
        Ok(done) => done,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
    };
    file.sync_all().map_err(|e| format!("{}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, &options.out).map_err(|e| format!("{}: {e}", options.out.display()))?;
    sync_parent(&options.out)?;
    Ok(summary)
}

fn write_parts(
    connection: &mut Connection,
    ranges: &[(u16, u16)],
    file: std::fs::File,
    path: &Path,
) -> Result<(std::fs::File, BackupSummary), String> {
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
    let mut whole = crc32fast::Hasher::new();
    let mut emit = |out: &mut std::io::BufWriter<std::fs::File>, bytes: &[u8]| {
        whole.update(bytes);
        out.write_all(bytes).map_err(|e| format!("{}: {e}", path.display()))
    };
    emit(&mut out, &format::encode_header(ranges.len() as u32))?;
    let mut summary = BackupSummary { parts: ranges.len(), keys: 0, bytes: 0, crc: 0 };
    for &(first, last) in ranges {
        let label = format!("slots {first}-{last}");
        eprintln!("backup: {label}: waiting for the group's snapshot");
        connection.send(&["CASHE.BACKUP", "SLOT", &first.to_string()])?;
        let head = connection.line()?;
        if let Some(error) = head.strip_prefix('-') {
            return Err(format!("{label}: {error}"));
        }
        if head != "*5" {
            return Err(format!("{label}: not a backup reply: {head}"));
        }
        let tag = connection.line()?;
        let tag_value = connection.line()?;
        if tag != format!("${}", BACKUP_REPLY_TAG.len()) || tag_value != BACKUP_REPLY_TAG {
            return Err(format!("{label}: not a backup reply: {tag} {tag_value}"));
        }
        let version = connection.integer("the version")? as u64;
        let keys = connection.integer("the key count")? as u64;
        let crc = connection.integer("the CRC")? as u32;
        let length = connection.line()?;
        let length: u64 = length
            .strip_prefix('$')
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| format!("{label}: not a length: {length}"))?;
        emit(&mut out, &format::encode_part_header((first, last), version, length, crc))?;
        let now = Instant::now();
        let terminal = std::io::stderr().is_terminal();
        let mut progress =
            Progress { label: label.clone(), total: length, started: now, shown: now, terminal };
        let mut part = crc32fast::Hasher::new();
        let mut done = 0u64;
        let mut chunk = vec![0u8; 1 << 20];
        while done < length {
            let want = chunk.len().min((length - done) as usize);
            let n = connection.reader.read(&mut chunk[..want]).map_err(|e| format!("{label}: {e}"))?;
            if n == 0 {
                return Err(format!("{label}: the connection closed after {done} of {length} bytes"));
            }
            part.update(&chunk[..n]);
            emit(&mut out, &chunk[..n])?;
            done += n as u64;
            progress.show(done, false);
        }
        progress.show(done, true);
        let mut end = [0u8; 2];
        connection.reader.read_exact(&mut end).map_err(|e| format!("{label}: {e}"))?;
        if part.finalize() != crc || &end != b"\r\n" {
            return Err(format!("{label}: the bytes received do not match the group's CRC"));
        }
        eprintln!("backup: {label}: {keys} keys at version {version}, CRC {crc:08x}");
        summary.keys += keys;
        summary.bytes += length;
    }
    let crc = whole.clone().finalize();
    out.write_all(&crc.to_le_bytes()).map_err(|e| format!("{}: {e}", path.display()))?;
    summary.crc = crc;
    let file = out.into_inner().map_err(|e| format!("{}: {e}", path.display()))?;
    Ok((file, summary))
}

fn sync_parent(path: &Path) -> Result<(), String> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::File::open(parent).and_then(|d| d.sync_all()).map_err(|e| format!("{}: {e}", parent.display()))
}

/// What a restore wrote.
pub struct RestoreSummary {
    pub parts: usize,
    pub keys: usize,
    /// `Store::digest` of the restored key space, as `CASHE.DIGEST`
    /// answers on the cluster started from it (at the same time: an
    /// expiry may pass in between).
    pub digest: String,
}

/// Reads a backup file into one store (every CRC and every snapshot rule
/// checked).
pub fn read_backup(path: &Path) -> Result<(usize, Store), String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let parts = format::decode(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    let count = parts.len();
    let stores = parts
        .into_iter()
        .map(|part| {
            Store::restore(&part.data)
                .map_err(|e| format!("{}: slots {}-{}: {e}", path.display(), part.slots.0, part.slots.1))
        })
        .collect::<Result<Vec<Store>, String>>()?;
    let store = Store::merged(stores).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok((count, store))
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// Restores a backup into a new data directory; see the module's
/// documentation. The directory must not exist, or be empty.
pub fn restore(input: &Path, datadir: &Path) -> Result<RestoreSummary, String> {
    let (parts, store) = read_backup(input)?;
    let keys = store.stored_keys();
    let digest = format::hex(&store.digest(now_ms()));
    let empty = match std::fs::read_dir(datadir) {
        Ok(mut entries) => entries.next().is_none(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
        Err(e) => return Err(format!("{}: {e}", datadir.display())),
    };
    if !empty {
        return Err(format!("{}: not empty; a restore makes a new data directory", datadir.display()));
    }
    std::fs::create_dir_all(datadir).map_err(|e| format!("{}: {e}", datadir.display()))?;
    let data = crate::node::restored_snapshot_data(&store);
    drop(store);
    let written = write_directory(datadir.to_path_buf(), data);
    if written.is_err() {
        // Nothing of it may be taken for a data directory.
        let _ = std::fs::remove_dir_all(datadir);
    }
    written?;
    Ok(RestoreSummary { parts, keys, digest })
}

/// A one-shard cluster's data directory, founded as a start would found
/// it, then its home log compacted to a snapshot holding `data` at index 1
/// (the founding membership's entry).
fn write_directory(datadir: PathBuf, data: Vec<u8>) -> Result<(), String> {
    use super::server::{boot_seed, write_durably, write_layout, Layout, CORES_FILE};
    write_layout(&datadir, Layout { shards: 1, replicas: 0 })?;
    write_durably(&datadir, CORES_FILE, "1\n")?;
    let cluster_id = boot_seed();
    glommio::LocalExecutorBuilder::default()
        .name("cashe-restore")
        .io_memory(1 << 20)
        .spawn(move || async move {
            let disk = |subdir: &str| super::disk::GlommioDisk::new(datadir.join(subdir));
            let options = crate::wal::WalOptions::new(crate::node::FOUNDER.0, cluster_id);
            let mut logs =
                crate::turn::open_logs(disk, options, crate::node::FOUNDER, false, 1, (0, 1)).await?;
            if !logs.bootstrapped {
                return Err("the data directory was not new".to_string());
            }
            let (_, wal) = logs.wals.first_mut().ok_or("no home log")?;
            let meta = SnapshotMeta {
                index: Index(1),
                term: Term(1),
                membership: Membership::with_voters([crate::node::FOUNDER]),
            };
            let snapshot = Snapshot { meta, data: Arc::new(data) };
            wal.save_snapshot(&snapshot).await.map_err(|e| format!("writing the snapshot: {e}"))
        })
        .map_err(|e| format!("starting an executor: {e}"))?
        .join()
        .map_err(|e| format!("the restore's executor: {e}"))?
}
