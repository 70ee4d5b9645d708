//! The cluster benchmark: three real `cashe` processes against Redis, in
//! the same run and with the same client code (issue 7).
//!
//! Prints numbers and asserts nothing. In one run it
//! 1. starts three `cashe` release processes on 127.0.0.1 (the first
//!    bootstraps, the others join as the README does; each has its own data
//!    directory and fsyncs for real), a durable `redis-server`
//!    (`appendonly yes`, `appendfsync always`) and an in-memory one, all on
//!    free ports;
//! 2. measures the raw fdatasync latency of the data directory (append 100
//!    bytes + fdatasync, as the WAL and Redis's AOF do) before and after
//!    each one-client SET cell (one per routing mode), the cell it is a
//!    yardstick for;
//! 3. runs each cell — workload SET or GET, 1/16/64/256 closed-loop clients,
//!    64-byte values over 100,000 16-byte keys chosen uniformly — first
//!    against cashe, then against Redis (durable for SET, in-memory for
//!    GET) right after, so the two sides of a ratio are neighbours in time
//!    on a machine whose fsync drifts tenfold within minutes; each cell
//!    once per routing mode of the clients (issue 17): `forward`, spread
//!    round-robin over the three nodes (a follower forwards to the
//!    leader), and `aware`, routing by `CLUSTER SLOTS` and `-MOVED` as
//!    cluster clients do; per cell also the servers' CPU per operation
//!    and cashe's fsyncs and peer messages per operation;
//! 4. failover: SET load at 16 clients, `kill -9` of the leader, the time
//!    from the kill to the first successful write sent after it (median
//!    and max over the trials) and the `-TIMEOUT` replies received after it;
//!    the killed node is restarted between trials;
//! 5. memory: a fresh cluster and a fresh in-memory Redis each load the
//!    same keys (1,000,000 by default, 16-byte keys, 64-byte values, by
//!    pipelined SETs) and report resident bytes per key (`VmRSS` after the
//!    load minus `VmRSS` before it);
//! 6. the data types of issue 14: cells HSET, LPUSH and ZADD (64 clients by
//!    default) on a few hundred keys, against cashe and then durable Redis
//!    as the SET cells are; and memory per element of one 1,000,000-element
//!    hash, set and sorted set (each in a fresh cluster and a fresh
//!    in-memory Redis, loaded by pipelined HSET/SADD/ZADD of 100 elements
//!    each), with Redis's `OBJECT ENCODING` of the key;
//! 7. TLS (issue 15, `benches/cluster/tls.rs`): SET at 64 clients against
//!    the plain cluster and at once against a second cluster with TLS on
//!    clients and peers; the ratio TLS / plain;
//! 8. cores (issue 16, `benches/cluster/cores.rs`): one node of 16 shards at
//!    `--cores 1` and one at `--cores 2` (key groups on both cores), SET
//!    and GET at 64 clients on each in turn,
//!    ops/s and server CPU microseconds per operation;
//! 9. shards (issue 16, `benches/cluster/shards.rs`): idle CPU and peer
//!    messages per second of a member of a three-node cluster holding 16,
//!    then 1,024 shards, once every group is quiet; then SET at 64 clients
//!    on a three-node cluster of 1, then 16 shards: ops/s and fsyncs per
//!    SET.
//!
//! Every client is a glommio task on one client thread (one thread keeps
//! the load generator's CPU share small and the same for both servers): it
//! connects, then sends one command and waits for its reply, over and
//! over. An IO error moves a forwarding client to the next node and makes
//! a cluster-aware one read the slot map again ([`Route`]). Only successful replies
//! completed inside a cell's measured window count towards ops/s and the
//! latency histogram; error replies are counted by kind.
//!
//! Environment (defaults as the issue asks):
//! `CASHE_BENCH_SECONDS` (10) and `CASHE_BENCH_WARMUP_SECONDS` (1) per cell,
//! `CASHE_BENCH_CLIENTS` (`1,16,64,256` for SET and GET, `64` for HSET,
//! LPUSH and ZADD; when set, it is used for all), `CASHE_BENCH_PARTS`
//! (`set,get,hset,lpush,zadd,failover,tls,cores,shards,memory,memory-types`; `memory-types`
//! stands for `memory-hash,memory-set,memory-zset`),
//! `CASHE_BENCH_FAILOVER_TRIALS` (5), `CASHE_BENCH_MEMORY_KEYS` (1000000),
//! `CASHE_BENCH_MEMORY_ELEMENTS` (1000000), `CASHE_BENCH_ROUTING`
//! (`forward,aware`: the routing modes of the SET, GET, HSET, LPUSH and
//! ZADD cells), `CASHE_BENCH_DIR` (`target/bench`),
//! `CASHE_BENCH_KEEP=1` keeps the data directories, `CASHE_BENCH_CASHE_ARGS`
//! adds flags to every cashe process, `CASHE_BENCH_BINARY` runs another
//! cashe binary than this build's (to compare two builds against Redis).
//! Logs stay in `<dir>/cluster-logs`; the table is also written as JSON to
//! `<dir>/cluster.json`.
//!
//! Every process started here is killed by PID when its guard drops, on
//! success, error or panic alike.

use cashe::kv::slot::{key_slot, SLOTS};
use cashe::protocol::reply::{decode, encode_command};
use cashe::protocol::Reply;
use cashe::runtime::tls::Stream;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::LocalExecutorBuilder;
use hdrhistogram::Histogram;
use std::error::Error;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

type BenchResult<T> = Result<T, Box<dyn Error>>;

#[path = "cluster/cores.rs"]
mod cores;
#[path = "cluster/shards.rs"]
mod shards;
#[path = "cluster/tls.rs"]
mod tls;

const KEY_BYTES: usize = 16;
const VALUE_BYTES: usize = 64;
const KEY_SPACE: u64 = 100_000;
/// HSET, LPUSH and ZADD cells: keys written, and the fields or members
/// drawn uniformly for each.
const COLLECTION_KEYS: u64 = 256;
const MEMBER_SPACE: u64 = 100_000;
/// Largest random score of ZADD (uniform in `[0, SCORE_MAX)`).
const SCORE_MAX: f64 = 1e6;
/// Memory per element: elements per HSET/SADD/ZADD when loading, and the
/// commands in flight on each loading connection.
const ELEMENTS_PER_COMMAND: u64 = 100;
const ELEMENT_LOAD_PIPELINE_DEPTH: usize = 16;
/// Getting every node past a snapshot after a collection's load: one-key
/// SETs in steps of this many, at most this many in all (the default
/// `--snapshot-entries` is 100,000, the third member waits a quarter more).
const COMPACTION_WRITES_STEP: u64 = 20_000;
const COMPACTION_WRITES_MAX: u64 = 400_000;
/// Latencies are recorded in microseconds up to one minute.
const LATENCY_US_MAX: u64 = 60_000_000;
/// Longest wait for anything to start, elect, answer or catch up.
const PATIENCE: Duration = Duration::from_secs(60);
/// A client waiting longer than this for one reply reconnects elsewhere.
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);
const FSYNC_PROBE_TIME: Duration = Duration::from_secs(2);
const FSYNC_PROBE_BYTES: usize = 100;
/// The failover scenario's load, and how long it runs before the kill.
const FAILOVER_CLIENTS: usize = 16;
const FAILOVER_LOAD_BEFORE_KILL: Duration = Duration::from_secs(1);
/// A failover trial gives up waiting for a successful write after this.
const FAILOVER_TRIAL_MAX: Duration = Duration::from_secs(20);
/// Pipelined loading: connections, and commands in flight on each.
const LOAD_CONNECTIONS: usize = 8;
const LOAD_PIPELINE_DEPTH: usize = 128;
/// Wait between the end of a memory load and the reading of `VmRSS`.
const MEMORY_SETTLE: Duration = Duration::from_secs(3);
/// Width of the longest bar of an ASCII histogram.
const BAR_WIDTH_MAX: usize = 50;

fn main() -> BenchResult<()> {
    let settings = Settings::from_env()?;
    std::fs::create_dir_all(&settings.dir)?;
    let data = RemovedOnDrop { path: settings.dir.join("cluster-data"), keep: settings.keep };
    let _ = std::fs::remove_dir_all(&data.path);
    let logs = settings.dir.join("cluster-logs");
    let _ = std::fs::remove_dir_all(&logs);
    std::fs::create_dir_all(&data.path)?;
    std::fs::create_dir_all(&logs)?;
    let mut report = Report::new(&settings);

    let cells = ["set", "get", "hset", "lpush", "zadd", "failover", "tls"];
    if cells.iter().any(|part| settings.wants(part)) {
        let mut cluster = Cluster::start(&data.path.join("cluster"), &logs, &settings.cashe_args)?;
        let redis_durable = Redis::start("redis-aof", &data.path, &logs, true)?;
        let redis_memory = Redis::start("redis-memory", &data.path, &logs, false)?;
        if settings.wants("set") {
            run_cells(
                &settings,
                &mut report,
                Workload::Set,
                &settings.clients,
                &cluster,
                redis_durable.as_ref(),
                &data.path,
            )?;
        }
        if settings.wants("get") {
            preload(&cluster.client_addresses())?;
            if let Some(redis) = &redis_memory {
                preload(&[redis.address()])?;
            }
            run_cells(
                &settings,
                &mut report,
                Workload::Get,
                &settings.clients,
                &cluster,
                redis_memory.as_ref(),
                &data.path,
            )?;
        }
        for workload in [Workload::Hset, Workload::Lpush, Workload::Zadd] {
            if settings.wants(&workload.name().to_ascii_lowercase()) {
                run_cells(
                    &settings,
                    &mut report,
                    workload,
                    &settings.collection_clients,
                    &cluster,
                    redis_durable.as_ref(),
                    &data.path,
                )?;
            }
        }
        if settings.wants("failover") {
            report.failover = Some(failover(&mut cluster, settings.failover_trials)?);
        }
        if settings.wants("tls") {
            report.tls = Some(tls::tls_cell(&settings, &cluster, &data.path, &logs)?);
        }
    }
    if settings.wants("cores") {
        report.cores = Some(cores::cores_cell(&settings, &data.path, &logs)?);
    }
    if settings.wants("shards") {
        report.shards = Some(shards::shards_cell(&settings, &data.path, &logs)?);
    }
    if settings.wants("memory") {
        report.memory = Some(memory(&data.path.join("memory"), &logs, &settings)?);
    }
    for collection in [Collection::Hash, Collection::Set, Collection::ZSet] {
        if settings.wants(collection.part()) {
            // A type cashe does not serve yet (or a failed load) costs its
            // row, not the rest of the run's numbers.
            match type_memory(&data.path, &logs, &settings, collection) {
                Ok(memory) => report.type_memory.push(memory),
                Err(e) => eprintln!("{}: not measured: {e}", collection.part()),
            }
        }
    }

    let text = report.text();
    println!("{text}");
    let json_path = settings.dir.join("cluster.json");
    std::fs::write(&json_path, report.json())?;
    println!("written to {}; logs in {}", json_path.display(), logs.display());
    Ok(())
}

// ---- settings ----------------------------------------------------------

struct Settings {
    seconds: f64,
    warmup_seconds: f64,
    /// Client counts of the SET and GET cells.
    clients: Vec<usize>,
    /// Client counts of the HSET, LPUSH and ZADD cells.
    collection_clients: Vec<usize>,
    parts: Vec<String>,
    failover_trials: usize,
    memory_keys: u64,
    memory_elements: u64,
    dir: PathBuf,
    keep: bool,
    cashe_args: Vec<String>,
    /// Routing modes of the SET, GET, HSET, LPUSH and ZADD cells, in order.
    routings: Vec<Routing>,
}

/// How a client picks the node it sends a command to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Routing {
    /// Client *i* talks to node *i mod 3*, whichever it is; a follower
    /// forwards the command to the Raft leader (one more hop).
    Forward,
    /// Cluster-aware, as redis-py's `RedisCluster` and `redis-cli -c`:
    /// `CLUSTER SLOTS`, then each command to its key's slot's master,
    /// following `-MOVED`.
    Aware,
}

impl Routing {
    fn name(self) -> &'static str {
        match self {
            Routing::Forward => "forward",
            Routing::Aware => "aware",
        }
    }

    fn parse(text: &str) -> BenchResult<Routing> {
        match text.trim().to_ascii_lowercase().as_str() {
            "forward" => Ok(Routing::Forward),
            "aware" => Ok(Routing::Aware),
            other => Err(format!("CASHE_BENCH_ROUTING: {other:?} is neither forward nor aware").into()),
        }
    }
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> BenchResult<T>
where
    T::Err: std::fmt::Display,
{
    match std::env::var(name) {
        Ok(text) => text.trim().parse().map_err(|e| format!("{name}={text:?}: {e}").into()),
        Err(_) => Ok(default),
    }
}

impl Settings {
    fn from_env() -> BenchResult<Settings> {
        let list = |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.to_string());
        let counts = |text: String| {
            text.split(',')
                .map(|c| c.trim().parse::<usize>().map_err(|e| format!("CASHE_BENCH_CLIENTS: {e}")))
                .collect::<Result<Vec<_>, _>>()
        };
        let clients = counts(list("CASHE_BENCH_CLIENTS", "1,16,64,256"))?;
        // The data types' cells run at 64 clients unless told otherwise.
        let collection_clients = counts(list("CASHE_BENCH_CLIENTS", "64"))?;
        let mut parts: Vec<String> = list(
            "CASHE_BENCH_PARTS",
            "set,get,hset,lpush,zadd,failover,tls,cores,shards,memory,memory-types",
        )
        .split(',')
        .map(|p| p.trim().to_ascii_lowercase())
        .collect();
        if parts.iter().any(|p| p == "memory-types") {
            parts.extend(["memory-hash", "memory-set", "memory-zset"].map(String::from));
        }
        let cashe_args = list("CASHE_BENCH_CASHE_ARGS", "").split_whitespace().map(String::from).collect();
        let routings = list("CASHE_BENCH_ROUTING", "forward,aware")
            .split(',')
            .map(Routing::parse)
            .collect::<Result<_, _>>()?;
        Ok(Settings {
            seconds: env_or("CASHE_BENCH_SECONDS", 10.0)?,
            warmup_seconds: env_or("CASHE_BENCH_WARMUP_SECONDS", 1.0)?,
            clients,
            collection_clients,
            parts,
            failover_trials: env_or("CASHE_BENCH_FAILOVER_TRIALS", 5)?,
            memory_keys: env_or("CASHE_BENCH_MEMORY_KEYS", 1_000_000)?,
            memory_elements: env_or("CASHE_BENCH_MEMORY_ELEMENTS", 1_000_000)?,
            dir: PathBuf::from(list("CASHE_BENCH_DIR", "target/bench")),
            keep: std::env::var_os("CASHE_BENCH_KEEP").is_some_and(|v| v != "0"),
            cashe_args,
            routings,
        })
    }

    fn wants(&self, part: &str) -> bool {
        self.parts.iter().any(|p| p == part)
    }
}

/// A directory removed when dropped (unless asked to keep it).
struct RemovedOnDrop {
    path: PathBuf,
    keep: bool,
}

impl Drop for RemovedOnDrop {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

// ---- processes ---------------------------------------------------------

#[path = "../tests/common/ports.rs"]
mod ports;
use ports::free_port;
#[path = "../tests/common/process.rs"]
mod process;
use process::{eventually_within, field, Process};

/// Waits until `attempt` returns `Some`, for at most [`PATIENCE`].
fn eventually<T>(what: &str, attempt: impl FnMut() -> Option<T>) -> BenchResult<T> {
    eventually_within(what, PATIENCE, attempt)
}

struct CasheNode {
    name: String,
    client_port: u16,
    raft_port: u16,
    datadir: PathBuf,
    log: PathBuf,
    process: Option<Process>,
}

impl CasheNode {
    fn start(&mut self, join: Option<u16>, extra_args: &[String]) -> BenchResult<()> {
        // CASHE_BENCH_BINARY runs another build (an A/B comparison of a change).
        let binary =
            std::env::var_os("CASHE_BENCH_BINARY").unwrap_or_else(|| env!("CARGO_BIN_EXE_cashe").into());
        let mut command = Command::new(binary);
        command
            .arg(format!("--id={}", self.name))
            .arg(format!("--listenaddr=127.0.0.1:{}", self.client_port))
            .arg(format!("--raftaddr=127.0.0.1:{}", self.raft_port))
            .arg(format!("--datadir={}", self.datadir.display()))
            .args(extra_args);
        if let Some(port) = join {
            command.arg(format!("--leaderaddr=127.0.0.1:{port}"));
        }
        self.process = Some(Process::spawn(&mut command, &self.log)?);
        Ok(())
    }

    fn address(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.client_port))
    }

    fn call(&self, args: &[&str]) -> Option<Reply> {
        Connection::open(self.address()).ok()?.call(args).ok()
    }

    fn info_field(&self, section: &str, key: &str) -> Option<String> {
        match self.call(&[section, "INFO"])? {
            Reply::Bulk(Some(text)) => field(&String::from_utf8_lossy(&text), key),
            _ => None,
        }
    }
}

/// Three cashe processes started as the README starts them.
struct Cluster {
    nodes: Vec<CasheNode>,
    extra_args: Vec<String>,
}

impl Cluster {
    fn start(dir: &Path, logs: &Path, extra_args: &[String]) -> BenchResult<Cluster> {
        std::fs::create_dir_all(dir)?;
        let mut nodes = Vec::new();
        for n in 0..3 {
            let name = format!("raft{n}");
            nodes.push(CasheNode {
                client_port: free_port(),
                raft_port: free_port(),
                datadir: dir.join(&name),
                log: logs
                    .join(format!("{}-{name}.log", dir.file_name().and_then(|n| n.to_str()).unwrap_or(""))),
                name,
                process: None,
            });
        }
        let mut cluster = Cluster { nodes, extra_args: extra_args.to_vec() };
        cluster.nodes[0].start(None, extra_args)?;
        eventually("the first node to answer", || {
            (cluster.nodes[0].call(&["PING"])?.is_simple()).then_some(())
        })?;
        let via = cluster.nodes[0].client_port;
        for node in &mut cluster.nodes[1..] {
            node.start(Some(via), extra_args)?;
        }
        cluster.wait_for_voters(3)?;
        Ok(cluster)
    }

    fn client_addresses(&self) -> Vec<SocketAddr> {
        self.nodes.iter().map(CasheNode::address).collect()
    }

    /// The index of the node every running node names as leader.
    fn leader(&mut self) -> BenchResult<usize> {
        eventually("an agreed leader", || {
            let mut named: Option<String> = None;
            for node in self.nodes.iter().filter(|n| n.process.is_some()) {
                let leader = node.info_field("CLUSTER", "cluster_leader").filter(|l| l != "-")?;
                if named.get_or_insert_with(|| leader.clone()) != &leader {
                    return None;
                }
            }
            let name = named?;
            self.nodes.iter().position(|n| n.name == name && n.process.is_some())
        })
    }

    fn wait_for_voters(&mut self, voters: usize) -> BenchResult<()> {
        eventually(&format!("{voters} voters and no learner"), || {
            let leader = self.leader().ok()?;
            let size: usize = self.nodes[leader].info_field("CLUSTER", "cluster_voters")?.parse().ok()?;
            let learners: usize =
                self.nodes[leader].info_field("CLUSTER", "cluster_learners")?.parse().ok()?;
            (size == voters && learners == 0).then_some(())
        })
    }

    fn kill(&mut self, node: usize) {
        self.nodes[node].process = None;
    }

    /// Restarts a killed node from its data directory and waits until it
    /// takes writes again.
    fn restart(&mut self, node: usize) -> BenchResult<()> {
        let extra = self.extra_args.clone();
        self.nodes[node].start(None, &extra)?;
        self.wait_for_voters(3)?;
        let target = &self.nodes[node];
        eventually("a write through the restarted node", || {
            (target.call(&["SET", "bench:restarted", "1"])? == Reply::ok()).then_some(())
        })
    }

    fn pids(&self) -> Vec<(String, u32)> {
        self.nodes.iter().filter_map(|n| n.process.as_ref().map(|p| (n.name.clone(), p.pid()))).collect()
    }
}

trait ReplyExt {
    fn is_simple(&self) -> bool;
}

impl ReplyExt for Reply {
    fn is_simple(&self) -> bool {
        matches!(self, Reply::Simple(_))
    }
}

struct Redis {
    port: u16,
    process: Process,
}

impl Redis {
    /// Starts `redis-server` on a free port in its own directory; `None`
    /// (with a note) if it is not installed.
    fn start(name: &str, data: &Path, logs: &Path, durable: bool) -> BenchResult<Option<Redis>> {
        let installed =
            Command::new("redis-server").arg("--version").output().is_ok_and(|o| o.status.success());
        if !installed {
            eprintln!("redis-server is not installed: no Redis cells (make bench installs it)");
            return Ok(None);
        }
        let dir = data.join(name);
        std::fs::create_dir_all(&dir)?;
        let port = free_port();
        let mut command = Command::new("redis-server");
        command
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", ""])
            .args(["--daemonize", "no", "--protected-mode", "no", "--maxclients", "10000"])
            .arg("--dir")
            .arg(std::path::absolute(&dir)?);
        if durable {
            command.args(["--appendonly", "yes", "--appendfsync", "always"]);
        } else {
            command.args(["--appendonly", "no"]);
        }
        let process = Process::spawn(&mut command, &logs.join(format!("{name}.log")))?;
        let redis = Redis { port, process };
        let address = redis.address();
        eventually(&format!("{name} to answer"), || {
            Connection::open(address).ok()?.call(&["PING"]).ok()?.is_simple().then_some(())
        })?;
        Ok(Some(redis))
    }

    fn address(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }
}

// ---- a blocking connection for setup, loading and probes ---------------

struct Connection {
    stream: TcpStream,
    buffer: Vec<u8>,
}

impl Connection {
    fn open(address: SocketAddr) -> std::io::Result<Connection> {
        let stream = TcpStream::connect_timeout(&address, Duration::from_secs(2))?;
        stream.set_read_timeout(Some(PATIENCE))?;
        stream.set_nodelay(true)?;
        Ok(Connection { stream, buffer: Vec::new() })
    }

    fn call(&mut self, args: &[&str]) -> std::io::Result<Reply> {
        let mut request = Vec::new();
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        encode_command(&args, &mut request);
        self.stream.write_all(&request)?;
        self.read_reply()
    }

    fn read_reply(&mut self) -> std::io::Result<Reply> {
        let mut chunk = [0u8; 64 * 1024];
        loop {
            match decode(&self.buffer) {
                Ok(Some((reply, used))) => {
                    self.buffer.drain(..used);
                    return Ok(reply);
                }
                Ok(None) => {}
                Err(e) => return Err(std::io::Error::other(e)),
            }
            let read = self.stream.read(&mut chunk)?;
            if read == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            self.buffer.extend_from_slice(&chunk[..read]);
        }
    }
}

/// The `n`th key: 16 bytes, `key:` and 12 digits.
fn key(n: u64) -> [u8; KEY_BYTES] {
    let mut key = [0u8; KEY_BYTES];
    let text = format!("key:{n:012}");
    key.copy_from_slice(text.as_bytes());
    key
}

fn value(n: u64) -> [u8; VALUE_BYTES] {
    let mut value = [b'v'; VALUE_BYTES];
    let text = format!("{n:016}");
    value[..16].copy_from_slice(text.as_bytes());
    value
}

/// `prefix` and `n` with leading zeros, [`KEY_BYTES`] bytes in all: the
/// keys of the data types' cells (`hset:00000000042`), fields
/// (`field:0000000042`) and members (`member:000000042`).
fn name(prefix: &str, n: u64) -> Vec<u8> {
    format!("{prefix}{n:0width$}", width = KEY_BYTES.saturating_sub(prefix.len())).into_bytes()
}

/// A score drawn from `random`: uniform in `[0, SCORE_MAX)`, written as
/// Rust's shortest round-trip decimal (which Redis and cashe parse exactly).
fn score(random: u64) -> Vec<u8> {
    let unit = (random >> 11) as f64 / (1u64 << 53) as f64;
    format!("{}", unit * SCORE_MAX).into_bytes()
}

/// What a pipelined load writes: command `n` of it, and which replies
/// acknowledge a command.
#[derive(Clone, Copy, Debug)]
enum LoadKind {
    /// Command `n` is `SET key(n) value(n)`.
    Strings,
    /// Command `n` adds elements `n * ELEMENTS_PER_COMMAND ..` (at most
    /// `elements` in all) to the collection's one key.
    Elements { collection: Collection, elements: u64 },
    /// Command `n` is `SET bench:compaction n`: one key rewritten.
    Scratch,
}

impl LoadKind {
    fn encode(self, n: u64, out: &mut Vec<u8>) {
        match self {
            LoadKind::Strings => encode_command(&[&b"SET"[..], &key(n), &value(n)], out),
            LoadKind::Scratch => {
                encode_command(&[&b"SET"[..], b"bench:compaction", n.to_string().as_bytes()], out)
            }
            LoadKind::Elements { collection, elements } => {
                let first = n * ELEMENTS_PER_COMMAND;
                let end = (first + ELEMENTS_PER_COMMAND).min(elements);
                let mut args: Vec<Vec<u8>> = vec![collection.add_command().into(), collection.key().into()];
                for element in first..end {
                    args.extend(collection.element(element));
                }
                let args: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
                encode_command(&args, out);
            }
        }
    }

    /// How many commands load it.
    fn commands(self, count: u64) -> u64 {
        match self {
            LoadKind::Strings | LoadKind::Scratch => count,
            LoadKind::Elements { elements, .. } => elements.div_ceil(ELEMENTS_PER_COMMAND),
        }
    }

    fn acknowledged(self, reply: &Reply) -> bool {
        match self {
            LoadKind::Strings | LoadKind::Scratch => *reply == Reply::ok(),
            // The number of new elements: 0 when a retried command had
            // been applied after all.
            LoadKind::Elements { .. } => matches!(reply, Reply::Integer(_)),
        }
    }

    fn pipeline_depth(self) -> usize {
        match self {
            LoadKind::Strings | LoadKind::Scratch => LOAD_PIPELINE_DEPTH,
            LoadKind::Elements { .. } => ELEMENT_LOAD_PIPELINE_DEPTH,
        }
    }
}

/// SETs keys `0..count` through `addresses` with pipelined connections
/// (`LOAD_CONNECTIONS` of them, round-robin over the addresses); any
/// error reply is retried until every key is acknowledged.
fn load_keys(addresses: &[SocketAddr], count: u64) -> BenchResult<Duration> {
    load(addresses, LoadKind::Strings, count)
}

/// Sends the commands of `kind` (`kind.commands(count)` of them) through
/// `addresses` as [`load_keys`] does.
fn load(addresses: &[SocketAddr], kind: LoadKind, count: u64) -> BenchResult<Duration> {
    let count = kind.commands(count);
    let started = Instant::now();
    let threads: Vec<_> = (0..LOAD_CONNECTIONS)
        .map(|t| {
            let address = addresses[t % addresses.len()];
            std::thread::spawn(move || -> Result<(), String> {
                let mut pending: Vec<u64> = (t as u64..count).step_by(LOAD_CONNECTIONS).collect();
                let deadline = Instant::now() + PATIENCE * 10;
                while !pending.is_empty() {
                    if Instant::now() > deadline {
                        return Err(format!(
                            "loading through {address}: {} commands never acknowledged",
                            pending.len()
                        ));
                    }
                    pending = load_once(address, kind, &pending)
                        .map_err(|e| format!("loading through {address}: {e}"))?;
                }
                Ok(())
            })
        })
        .collect();
    for thread in threads {
        thread.join().map_err(|_| "a loading thread panicked")??;
    }
    Ok(started.elapsed())
}

/// One pass over commands `numbers` in pipelined windows; returns the
/// commands to retry.
fn load_once(address: SocketAddr, kind: LoadKind, numbers: &[u64]) -> std::io::Result<Vec<u64>> {
    let mut connection = Connection::open(address)?;
    let mut retry = Vec::new();
    let mut request = Vec::new();
    for window in numbers.chunks(kind.pipeline_depth()) {
        request.clear();
        for n in window {
            kind.encode(*n, &mut request);
        }
        connection.stream.write_all(&request)?;
        for n in window {
            match connection.read_reply()? {
                reply if kind.acknowledged(&reply) => {}
                // Retried: the cluster is electing, or the write's fate is
                // unknown (every load command may be applied twice).
                Reply::Error(text)
                    if ["TIMEOUT", "CLUSTERDOWN", "TRYAGAIN"].iter().any(|e| text.starts_with(e)) =>
                {
                    retry.push(*n)
                }
                // An unknown command or a wrong type would fail for ever.
                reply => return Err(std::io::Error::other(format!("unexpected reply {reply:?}"))),
            }
        }
    }
    if !retry.is_empty() {
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(retry)
}

/// Loads the GET cells' key space.
fn preload(addresses: &[SocketAddr]) -> BenchResult<()> {
    let took = load_keys(addresses, KEY_SPACE)?;
    eprintln!("preloaded {KEY_SPACE} keys through {addresses:?} in {:.1} s", took.as_secs_f64());
    Ok(())
}

// ---- the raw fdatasync probe -------------------------------------------

#[derive(Clone, Copy, Debug)]
struct FsyncProbe {
    p50_us: u64,
    p99_us: u64,
    per_second: f64,
}

/// Appends 100 bytes + fdatasync to a new file in `dir`, for
/// [`FSYNC_PROBE_TIME`]: what one WAL or AOF write costs on this disk now.
fn probe_fdatasync(dir: &Path) -> BenchResult<FsyncProbe> {
    let path = dir.join("fdatasync-probe");
    let mut file = std::fs::OpenOptions::new().create(true).truncate(true).write(true).open(&path)?;
    let mut latency_us = Histogram::<u64>::new_with_bounds(1, LATENCY_US_MAX, 3)?;
    let payload = [0u8; FSYNC_PROBE_BYTES];
    let started = Instant::now();
    while started.elapsed() < FSYNC_PROBE_TIME {
        let began = Instant::now();
        file.write_all(&payload)?;
        file.sync_data()?;
        latency_us.saturating_record(began.elapsed().as_micros() as u64);
    }
    let probe = FsyncProbe {
        p50_us: latency_us.value_at_quantile(0.5),
        p99_us: latency_us.value_at_quantile(0.99),
        per_second: latency_us.len() as f64 / started.elapsed().as_secs_f64(),
    };
    drop(file);
    std::fs::remove_file(&path)?;
    Ok(probe)
}

// ---- the load generator ------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Workload {
    Set,
    Get,
    /// `HSET key field value` on [`COLLECTION_KEYS`] keys, fields from
    /// [`MEMBER_SPACE`].
    Hset,
    /// `LPUSH key value` on [`COLLECTION_KEYS`] keys; the lists only grow
    /// (by a few hundred thousand 64-byte elements in a cell at most).
    Lpush,
    /// `ZADD key score member` on [`COLLECTION_KEYS`] keys, members from
    /// [`MEMBER_SPACE`], random scores.
    Zadd,
}

impl Workload {
    fn name(self) -> &'static str {
        match self {
            Workload::Set => "SET",
            Workload::Get => "GET",
            Workload::Hset => "HSET",
            Workload::Lpush => "LPUSH",
            Workload::Zadd => "ZADD",
        }
    }

    /// Appends one command of the workload, its key, field, member and
    /// score drawn from `random`, to `out`; returns the key's slot.
    fn encode(self, random: &mut u64, value: &[u8], out: &mut Vec<u8>) -> u16 {
        let mut draw = || {
            *random = split_mix(*random);
            *random
        };
        match self {
            Workload::Set => {
                let key = key(draw() % KEY_SPACE);
                encode_command(&[&b"SET"[..], &key, value], out);
                key_slot(&key)
            }
            Workload::Get => {
                let key = key(draw() % KEY_SPACE);
                encode_command(&[&b"GET"[..], &key], out);
                key_slot(&key)
            }
            Workload::Hset => {
                let key = name("hset:", draw() % COLLECTION_KEYS);
                let field = name("field:", draw() % MEMBER_SPACE);
                encode_command(&[&b"HSET"[..], &key, &field, value], out);
                key_slot(&key)
            }
            Workload::Lpush => {
                let key = name("lpush:", draw() % COLLECTION_KEYS);
                encode_command(&[&b"LPUSH"[..], &key, value], out);
                key_slot(&key)
            }
            Workload::Zadd => {
                let key = name("zadd:", draw() % COLLECTION_KEYS);
                let member = name("member:", draw() % MEMBER_SPACE);
                encode_command(&[&b"ZADD"[..], &key, &score(draw()), &member], out);
                key_slot(&key)
            }
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Success,
    Timeout,
    ClusterDown,
    TryAgain,
    OtherError,
    /// The connection failed; the client moves to the next node.
    Io,
}

/// Error replies and lost connections, by kind.
#[derive(Clone, Copy, Debug, Default)]
struct Errors {
    timeout: u64,
    cluster_down: u64,
    try_again: u64,
    other: u64,
    io: u64,
}

impl Errors {
    fn count(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Success => {}
            Outcome::Timeout => self.timeout += 1,
            Outcome::ClusterDown => self.cluster_down += 1,
            Outcome::TryAgain => self.try_again += 1,
            Outcome::OtherError => self.other += 1,
            Outcome::Io => self.io += 1,
        }
    }

    fn add(&mut self, other: &Errors) {
        self.timeout += other.timeout;
        self.cluster_down += other.cluster_down;
        self.try_again += other.try_again;
        self.other += other.other;
        self.io += other.io;
    }

    fn total(&self) -> u64 {
        self.timeout + self.cluster_down + self.try_again + self.other + self.io
    }
}

/// One operation, for the failover scenario's timeline.
#[derive(Clone, Copy, Debug)]
struct OpEvent {
    sent: Instant,
    done: Instant,
    outcome: Outcome,
}

struct LoadSpec {
    /// The nodes: forwarding clients spread over them, cluster-aware
    /// clients ask them for the slot map.
    addresses: Vec<SocketAddr>,
    clients: usize,
    workload: Workload,
    routing: Routing,
    warmup: Duration,
    /// `None`: until stopped.
    duration: Option<Duration>,
    keep_events: bool,
    /// Clients speak TLS with this configuration (the TLS cell).
    tls: Option<Arc<rustls::ClientConfig>>,
}

/// What the clients of one load saw, merged.
struct LoadResult {
    latency_us: Histogram<u64>,
    /// Successful operations completed inside the measured window.
    ops: u64,
    /// Successful operations of the whole load, warm-up included (what
    /// the servers' CPU time over the load is divided by).
    ops_total: u64,
    seconds: f64,
    errors: Errors,
    /// `-MOVED` replies followed by operations completed inside the
    /// measured window (cluster-aware clients; not errors).
    redirects: u64,
    events: Vec<OpEvent>,
}

impl LoadResult {
    fn ops_per_second(&self) -> f64 {
        self.ops as f64 / self.seconds.max(1e-9)
    }

    fn quantile_us(&self, q: f64) -> u64 {
        self.latency_us.value_at_quantile(q)
    }
}

/// A running load; [`Load::finish`] waits for its end (or stops it).
struct Load {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Result<LoadResult, String>>,
}

impl Load {
    fn start(spec: LoadSpec) -> BenchResult<Load> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new().name("bench-clients".into()).spawn(move || {
            LocalExecutorBuilder::default()
                .name("bench-clients")
                // Sockets only; keep the registered buffer small (DESIGN §10).
                .io_memory(1 << 20)
                .spawn(move || run_clients(spec, flag))
                .map_err(|e| e.to_string())?
                .join()
                .map_err(|e| e.to_string())?
        })?;
        Ok(Load { stop, thread })
    }

    fn stop(self) -> BenchResult<LoadResult> {
        self.stop.store(true, Ordering::Relaxed);
        self.finish()
    }

    fn finish(self) -> BenchResult<LoadResult> {
        Ok(self.thread.join().map_err(|_| "the client thread panicked")??)
    }
}

/// Shared by the client tasks of one load.
struct Shared {
    spec: LoadSpec,
    stop: Arc<AtomicBool>,
    /// Successes completed in `[measure_from, measure_until)` are counted.
    measure_from: Instant,
    measure_until: Option<Instant>,
}

impl Shared {
    fn over(&self) -> bool {
        self.stop.load(Ordering::Relaxed) || self.measure_until.is_some_and(|until| Instant::now() >= until)
    }
}

/// Per-client results.
struct ClientResult {
    latency_us: Histogram<u64>,
    ops: u64,
    ops_total: u64,
    errors: Errors,
    redirects: u64,
    events: Vec<OpEvent>,
}

async fn run_clients(spec: LoadSpec, stop: Arc<AtomicBool>) -> Result<LoadResult, String> {
    // Connect every client first: connection set-up is not measured.
    let mut routes = Vec::new();
    for client in 0..spec.clients {
        let mut route = Route::new(&spec, client);
        route.prepare(None).await;
        routes.push(route);
    }
    let started = Instant::now();
    let measure_from = started + spec.warmup;
    let measure_until = spec.duration.map(|d| measure_from + d);
    let shared = Rc::new(Shared { spec, stop, measure_from, measure_until });
    let tasks: Vec<_> = routes
        .into_iter()
        .enumerate()
        .map(|(client, route)| glommio::spawn_local(client_loop(shared.clone(), client, route)))
        .collect();
    let mut result = LoadResult {
        latency_us: Histogram::new_with_bounds(1, LATENCY_US_MAX, 3).map_err(|e| e.to_string())?,
        ops: 0,
        ops_total: 0,
        seconds: 0.0,
        errors: Errors::default(),
        redirects: 0,
        events: Vec::new(),
    };
    for task in tasks {
        let client = task.await?;
        result.latency_us.add(&client.latency_us).map_err(|e| e.to_string())?;
        result.ops += client.ops;
        result.ops_total += client.ops_total;
        result.errors.add(&client.errors);
        result.redirects += client.redirects;
        result.events.extend(client.events);
    }
    let until = shared.measure_until.unwrap_or_else(Instant::now);
    result.seconds = until.saturating_duration_since(shared.measure_from).as_secs_f64();
    result.events.sort_by_key(|e| e.done);
    Ok(result)
}

async fn connect(address: SocketAddr, tls: Option<&Arc<rustls::ClientConfig>>) -> std::io::Result<Stream> {
    let stream = glommio::net::TcpStream::connect_timeout(address, Duration::from_secs(1)).await?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(REPLY_TIMEOUT))?;
    let Some(config) = tls else { return Ok(Stream::Plain(stream)) };
    let name = rustls::pki_types::ServerName::try_from("localhost").map_err(std::io::Error::other)?;
    let connected = futures_rustls::TlsConnector::from(config.clone()).connect(name, stream).await?;
    Ok(Stream::Connected(Box::new(connected)))
}

/// One closed-loop client: one command, wait for its reply, again.
async fn client_loop(shared: Rc<Shared>, client: usize, mut route: Route) -> Result<ClientResult, String> {
    let spec = &shared.spec;
    let mut result = ClientResult {
        latency_us: Histogram::new_with_bounds(1, LATENCY_US_MAX, 3).map_err(|e| e.to_string())?,
        ops: 0,
        ops_total: 0,
        errors: Errors::default(),
        redirects: 0,
        events: Vec::new(),
    };
    let mut random = (client as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let mut request = Vec::with_capacity(128);
    let value = value(0);
    while !shared.over() {
        request.clear();
        let slot = spec.workload.encode(&mut random, &value, &mut request);
        if !route.prepare(Some(slot)).await {
            // Nowhere to send it (no connection, no slot map): nothing sent.
            glommio::timer::sleep(Duration::from_millis(5)).await;
            continue;
        }
        let sent = Instant::now();
        let (outcome, redirects) = route.send(spec.workload, &request, slot).await;
        let done = Instant::now();
        let measured = done >= shared.measure_from && shared.measure_until.is_none_or(|until| done < until);
        if measured && outcome == Outcome::Success {
            result.ops += 1;
            result.latency_us.saturating_record(done.duration_since(sent).as_micros() as u64);
        } else if measured {
            result.errors.count(outcome);
        }
        if measured {
            result.redirects += redirects;
        }
        if outcome == Outcome::Success {
            result.ops_total += 1;
        }
        if spec.keep_events {
            result.events.push(OpEvent { sent, done, outcome });
        }
    }
    Ok(result)
}

/// `CLUSTER SLOTS` as RESP.
const CLUSTER_SLOTS_REQUEST: &[u8] = b"*2\r\n$7\r\nCLUSTER\r\n$5\r\nSLOTS\r\n";
/// `-MOVED` replies one command follows at most (redis-py and redis-cli
/// follow 5 and 16); one more is an error of the command.
const REDIRECTS_MAX: u64 = 5;
/// A slot no slot map has named a master for.
const NO_MASTER: u8 = u8::MAX;

/// Where one client's commands go, and what it does when a node fails it.
///
/// Forwarding: every command to one node, the next one after a failed
/// connection. Cluster-aware: each command to the master its slot map
/// names for the key's slot. The map comes from `CLUSTER SLOTS`, asked on
/// every connection the client opens (cashe redirects a connection that
/// asked for the topology rather than forwarding its commands, as a
/// cluster client expects); a `-MOVED` makes the client ask the node it
/// names and retry there; a lost connection or a `-TIMEOUT`,
/// `-CLUSTERDOWN` or `-TRYAGAIN` makes it ask again, before its next
/// command, the nodes in turn (one pass).
struct Route {
    routing: Routing,
    /// The cluster's nodes: talked to in turn (forwarding), asked for the
    /// slot map in turn (cluster-aware).
    seeds: Vec<SocketAddr>,
    /// The seed talked to, or asked first.
    seed: usize,
    tls: Option<Arc<rustls::ClientConfig>>,
    /// Open connections, at most one per node.
    connections: Vec<(SocketAddr, Stream)>,
    /// Cluster-aware: each slot's master, an index into `masters`, or
    /// [`NO_MASTER`].
    slot_master: Vec<u8>,
    masters: Vec<SocketAddr>,
    /// Cluster-aware: the map is to be read again before the next command.
    stale: bool,
    buffer: Vec<u8>,
    chunk: Vec<u8>,
}

impl Route {
    fn new(spec: &LoadSpec, client: usize) -> Route {
        let aware = spec.routing == Routing::Aware;
        Route {
            routing: spec.routing,
            seeds: spec.addresses.clone(),
            seed: client % spec.addresses.len(),
            tls: spec.tls.clone(),
            connections: Vec::new(),
            slot_master: if aware { vec![NO_MASTER; usize::from(SLOTS)] } else { Vec::new() },
            masters: Vec::new(),
            stale: aware,
            buffer: Vec::with_capacity(4096),
            chunk: vec![0u8; 16 * 1024],
        }
    }

    /// Where a command of `slot` goes, if anywhere.
    fn address_of(&self, slot: u16) -> Option<SocketAddr> {
        match self.routing {
            Routing::Forward => Some(self.seeds[self.seed]),
            Routing::Aware => self.masters.get(usize::from(self.slot_master[usize::from(slot)])).copied(),
        }
    }

    /// Gets ready for a command of `slot` (`None`: before the first, any
    /// slot): reads the slot map again if it is stale, and connects to
    /// where the command goes. False if there is nowhere to send it.
    async fn prepare(&mut self, slot: Option<u16>) -> bool {
        if self.routing == Routing::Aware && self.stale {
            self.refresh().await;
        }
        match slot {
            Some(slot) => match self.address_of(slot) {
                Some(address) => self.open(address).await.is_ok(),
                None => false,
            },
            None => {
                let targets = match self.routing {
                    Routing::Forward => vec![self.seeds[self.seed]],
                    Routing::Aware => self.masters.clone(),
                };
                for address in targets {
                    let _ = self.open(address).await;
                }
                true
            }
        }
    }

    /// Sends one command of `slot` and reads its reply, following up to
    /// [`REDIRECTS_MAX`] `-MOVED` (cluster-aware); returns the outcome and
    /// the redirections followed.
    async fn send(&mut self, workload: Workload, request: &[u8], slot: u16) -> (Outcome, u64) {
        let mut redirects = 0;
        let Some(mut address) = self.address_of(slot) else { return (Outcome::Io, 0) };
        loop {
            let Ok(index) = self.open(address).await else { return (Outcome::Io, redirects) };
            let stream = &mut self.connections[index].1;
            let reply = match exchange(stream, request, &mut self.buffer, &mut self.chunk).await {
                Ok(reply) => reply,
                Err(_) => {
                    self.lost(address);
                    return (Outcome::Io, redirects);
                }
            };
            let moved = match self.routing {
                Routing::Aware => moved_to(&reply, address),
                Routing::Forward => None,
            };
            if let Some(to) = moved.filter(|_| redirects < REDIRECTS_MAX) {
                redirects += 1;
                self.follow(slot, to).await;
                address = to;
                continue;
            }
            let outcome = classify(&reply, workload);
            let failed = matches!(outcome, Outcome::Timeout | Outcome::ClusterDown | Outcome::TryAgain);
            if self.routing == Routing::Aware && (failed || moved.is_some()) {
                self.stale = true;
            }
            return (outcome, redirects);
        }
    }

    /// The connection to `address`, opened if there is none (and, for a
    /// cluster-aware client, asked for the slot map at once).
    async fn open(&mut self, address: SocketAddr) -> std::io::Result<usize> {
        if let Some(index) = self.connections.iter().position(|(a, _)| *a == address) {
            return Ok(index);
        }
        match connect(address, self.tls.as_ref()).await {
            Ok(stream) => self.connections.push((address, stream)),
            Err(e) => {
                self.lost(address);
                return Err(e);
            }
        }
        let index = self.connections.len() - 1;
        if self.routing == Routing::Aware {
            self.read_slots(index).await?;
        }
        Ok(index)
    }

    /// Sends `CLUSTER SLOTS` on connection `index` and adopts the map if
    /// it names masters; whether it did.
    async fn read_slots(&mut self, index: usize) -> std::io::Result<bool> {
        let (address, stream) = &mut self.connections[index];
        let address = *address;
        match exchange(stream, CLUSTER_SLOTS_REQUEST, &mut self.buffer, &mut self.chunk).await {
            Ok(reply) => Ok(self.adopt(&reply, address)),
            Err(e) => {
                self.lost(address);
                Err(e)
            }
        }
    }

    /// Asks `address` for the slot map; whether it named masters.
    async fn ask_slots(&mut self, address: SocketAddr) -> bool {
        self.stale = true;
        let Ok(index) = self.open(address).await else { return false };
        // A new connection has just read (and adopted) it.
        !self.stale || self.read_slots(index).await.unwrap_or(false)
    }

    /// Reads the slot map from the first node, in turn from the seed,
    /// that names masters; one pass (the map stays stale if none did).
    async fn refresh(&mut self) {
        for k in 0..self.seeds.len() {
            let seed = (self.seed + k) % self.seeds.len();
            if self.ask_slots(self.seeds[seed]).await {
                self.seed = seed;
                return;
            }
        }
    }

    /// After `-MOVED slot to`: the map as `to` tells it, and `slot` at
    /// `to` whatever the map says (the redirection is the newer word).
    async fn follow(&mut self, slot: u16, to: SocketAddr) {
        self.ask_slots(to).await;
        self.point(slot, slot, to);
    }

    /// Slots `start..=end` have master `address`.
    fn point(&mut self, start: u16, end: u16, address: SocketAddr) {
        let index = match self.masters.iter().position(|a| *a == address) {
            Some(index) => index,
            None => {
                self.masters.push(address);
                self.masters.len() - 1
            }
        };
        let index = u8::try_from(index).ok().filter(|i| *i != NO_MASTER).expect("fewer than 255 masters");
        self.slot_master[usize::from(start)..=usize::from(end)].fill(index);
    }

    /// Takes the map of a `CLUSTER SLOTS` reply from `from` if it names
    /// masters (a node that knows no leader names none); whether it did.
    fn adopt(&mut self, reply: &Reply, from: SocketAddr) -> bool {
        let ranges = match slot_ranges(reply, from) {
            Some(ranges) if !ranges.is_empty() => ranges,
            _ => return false,
        };
        self.masters.clear();
        self.slot_master.fill(NO_MASTER);
        for (start, end, master) in ranges {
            self.point(start, end, master);
        }
        self.stale = false;
        true
    }

    /// The connection to `address` failed: closed; a forwarding client
    /// moves to the next node, a cluster-aware one reads the map again.
    fn lost(&mut self, address: SocketAddr) {
        self.connections.retain(|(a, _)| *a != address);
        self.buffer.clear();
        match self.routing {
            Routing::Forward if self.seeds[self.seed] == address => {
                self.seed = (self.seed + 1) % self.seeds.len();
            }
            Routing::Forward => {}
            Routing::Aware => self.stale = true,
        }
    }
}

/// A node's `host:port` (an empty host, as Redis may answer, is the host
/// of `from`, the node that answered).
fn endpoint(host: &str, port: &str, from: SocketAddr) -> Option<SocketAddr> {
    let port: u16 = port.parse().ok()?;
    let ip = if host.is_empty() { from.ip() } else { host.parse().ok()? };
    Some(SocketAddr::new(ip, port))
}

/// The slot ranges and masters of a `CLUSTER SLOTS` reply from `from`.
fn slot_ranges(reply: &Reply, from: SocketAddr) -> Option<Vec<(u16, u16, SocketAddr)>> {
    let Reply::Array(Some(ranges)) = reply else { return None };
    ranges
        .iter()
        .map(|range| {
            let Reply::Array(Some(entry)) = range else { return None };
            let (Reply::Integer(start), Reply::Integer(end), Reply::Array(Some(master))) =
                (entry.first()?, entry.get(1)?, entry.get(2)?)
            else {
                return None;
            };
            let (Reply::Bulk(Some(host)), Reply::Integer(port)) = (master.first()?, master.get(1)?) else {
                return None;
            };
            let address = endpoint(std::str::from_utf8(host).ok()?, &port.to_string(), from)?;
            let (start, end) = (u16::try_from(*start).ok()?, u16::try_from(*end).ok()?);
            (start <= end && end < SLOTS).then_some((start, end, address))
        })
        .collect()
}

/// The node a `-MOVED slot host:port` reply from `from` names.
fn moved_to(reply: &Reply, from: SocketAddr) -> Option<SocketAddr> {
    let Reply::Error(text) = reply else { return None };
    let (host, port) = text.strip_prefix("MOVED ")?.split_whitespace().nth(1)?.rsplit_once(':')?;
    endpoint(host, port, from)
}

fn split_mix(state: u64) -> u64 {
    let mut z = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Sends one request and reads one reply.
async fn exchange(
    stream: &mut Stream,
    request: &[u8],
    buffer: &mut Vec<u8>,
    chunk: &mut [u8],
) -> std::io::Result<Reply> {
    stream.write_all(request).await?;
    stream.flush().await?;
    loop {
        match decode(buffer) {
            Ok(Some((reply, used))) => {
                buffer.drain(..used);
                return Ok(reply);
            }
            Ok(None) => {}
            Err(e) => return Err(std::io::Error::other(e)),
        }
        let read = stream.read(chunk).await?;
        if read == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buffer.extend_from_slice(&chunk[..read]);
    }
}

fn classify(reply: &Reply, workload: Workload) -> Outcome {
    match (reply, workload) {
        (Reply::Simple(text), Workload::Set) if text == "OK" => Outcome::Success,
        (Reply::Bulk(_), Workload::Get) => Outcome::Success,
        // HSET: fields added; LPUSH: the list's length; ZADD: members added.
        (Reply::Integer(_), Workload::Hset | Workload::Lpush | Workload::Zadd) => Outcome::Success,
        (Reply::Error(text), _) if text.starts_with("TIMEOUT") => Outcome::Timeout,
        (Reply::Error(text), _) if text.starts_with("CLUSTERDOWN") => Outcome::ClusterDown,
        (Reply::Error(text), _) if text.starts_with("TRYAGAIN") => Outcome::TryAgain,
        _ => Outcome::OtherError,
    }
}

// ---- cells -------------------------------------------------------------

struct Cell {
    workload: Workload,
    clients: usize,
    /// How the cashe side's clients route (the Redis side is one server).
    routing: Routing,
    cashe: LoadResult,
    redis: Option<LoadResult>,
    /// HSET, LPUSH and ZADD cells: raw fdatasync before the cashe half,
    /// between the halves and after the Redis half, so a ratio can be
    /// read against the disk's drift during the cell.
    fsync: Vec<FsyncProbe>,
    /// The one-client SET cells: raw fdatasync right before and right
    /// after the cashe half, the yardstick of its latency.
    fsync_around: Option<(FsyncProbe, FsyncProbe)>,
    /// What the cashe nodes spent over the cashe half (`None` if a node's
    /// INFO lacked a counter, as an older `CASHE_BENCH_BINARY`'s may).
    cashe_spent: Option<Spent>,
    /// redis-server's CPU seconds over the Redis half.
    redis_cpu_seconds: Option<f64>,
}

impl Workload {
    /// Cells that get their own fdatasync probes (the data types).
    fn probed(self) -> bool {
        matches!(self, Workload::Hset | Workload::Lpush | Workload::Zadd)
    }
}

/// What the three cashe nodes spent over one load, warm-up included: CPU
/// (user + system, all threads, `/proc/<pid>/stat`) and the counters of
/// `INFO stats`, each summed over the nodes.
#[derive(Clone, Copy, Debug, Default)]
struct Spent {
    cpu_seconds: f64,
    wal_fsyncs: u64,
    wal_records: u64,
    peer_messages_sent: u64,
}

impl Spent {
    /// The nodes' totals now.
    fn read(cluster: &Cluster) -> Option<Spent> {
        let mut spent = Spent::default();
        for node in &cluster.nodes {
            let pid = node.process.as_ref()?.pid();
            spent.cpu_seconds += process::cpu_seconds(pid).ok()?;
            let Reply::Bulk(Some(text)) = node.call(&["INFO", "stats"])? else { return None };
            let text = String::from_utf8_lossy(&text);
            let number = |key: &str| field(&text, key)?.parse::<u64>().ok();
            spent.wal_fsyncs += number("wal_fsyncs")?;
            spent.wal_records += number("wal_records")?;
            spent.peer_messages_sent += number("peer_messages_sent")?;
        }
        Some(spent)
    }

    fn since(self, before: Spent) -> Spent {
        Spent {
            cpu_seconds: self.cpu_seconds - before.cpu_seconds,
            wal_fsyncs: self.wal_fsyncs.saturating_sub(before.wal_fsyncs),
            wal_records: self.wal_records.saturating_sub(before.wal_records),
            peer_messages_sent: self.peer_messages_sent.saturating_sub(before.peer_messages_sent),
        }
    }
}

impl Cell {
    /// The cashe nodes' CPU microseconds per successful operation, all
    /// three summed (the load's whole span over its every success).
    fn cashe_cpu_us_per_op(&self) -> Option<f64> {
        Some(self.cashe_spent?.cpu_seconds * 1e6 / self.cashe.ops_total.max(1) as f64)
    }

    fn redis_cpu_us_per_op(&self) -> Option<f64> {
        Some(self.redis_cpu_seconds? * 1e6 / self.redis.as_ref()?.ops_total.max(1) as f64)
    }

    /// A cashe counter summed over the nodes, per successful operation.
    fn per_op(&self, counter: impl Fn(&Spent) -> u64) -> Option<f64> {
        Some(counter(&self.cashe_spent?) as f64 / self.cashe.ops_total.max(1) as f64)
    }

    fn records_per_fsync(&self) -> Option<f64> {
        let spent = self.cashe_spent.filter(|s| s.wal_fsyncs > 0)?;
        Some(spent.wal_records as f64 / spent.wal_fsyncs as f64)
    }
}

fn measure(
    addresses: Vec<SocketAddr>,
    clients: usize,
    workload: Workload,
    settings: &Settings,
) -> BenchResult<LoadResult> {
    measure_with(addresses, clients, workload, settings, None)
}

/// [`measure`], over TLS when `tls` is given.
fn measure_with(
    addresses: Vec<SocketAddr>,
    clients: usize,
    workload: Workload,
    settings: &Settings,
    tls: Option<Arc<rustls::ClientConfig>>,
) -> BenchResult<LoadResult> {
    measure_routed(addresses, clients, workload, Routing::Forward, settings, tls)
}

/// [`measure_with`], the clients routing as `routing` says.
fn measure_routed(
    addresses: Vec<SocketAddr>,
    clients: usize,
    workload: Workload,
    routing: Routing,
    settings: &Settings,
    tls: Option<Arc<rustls::ClientConfig>>,
) -> BenchResult<LoadResult> {
    let spec = LoadSpec {
        addresses,
        clients,
        workload,
        routing,
        warmup: Duration::from_secs_f64(settings.warmup_seconds),
        duration: Some(Duration::from_secs_f64(settings.seconds)),
        keep_events: false,
        tls,
    };
    Load::start(spec)?.finish()
}

/// The cells of `workload`: per client count, per routing mode, the cashe
/// half and at once the same load against `redis`.
fn run_cells(
    settings: &Settings,
    report: &mut Report,
    workload: Workload,
    client_counts: &[usize],
    cluster: &Cluster,
    redis: Option<&Redis>,
    data: &Path,
) -> BenchResult<()> {
    for &clients in client_counts {
        for &routing in &settings.routings {
            let cell = run_cell(settings, workload, clients, routing, cluster, redis, data)?;
            eprintln!("{}", cell_line(&cell));
            report.cells.push(cell);
        }
    }
    Ok(())
}

fn run_cell(
    settings: &Settings,
    workload: Workload,
    clients: usize,
    routing: Routing,
    cluster: &Cluster,
    redis: Option<&Redis>,
    data: &Path,
) -> BenchResult<Cell> {
    let mut fsync = Vec::new();
    let fsync_before =
        (workload == Workload::Set && clients == 1).then(|| probe_fdatasync(data)).transpose()?;
    if workload.probed() {
        fsync.push(probe_fdatasync(data)?);
    }
    let spent_before = Spent::read(cluster);
    let cashe = measure_routed(cluster.client_addresses(), clients, workload, routing, settings, None)?;
    let cashe_spent = spent_before.zip(Spent::read(cluster)).map(|(before, after)| after.since(before));
    let fsync_around = match fsync_before {
        Some(before) => Some((before, probe_fdatasync(data)?)),
        None => None,
    };
    if workload.probed() && redis.is_some() {
        fsync.push(probe_fdatasync(data)?);
    }
    let (redis, redis_cpu_seconds) = match redis {
        Some(server) => {
            let cpu_before = process::cpu_seconds(server.process.pid())?;
            let result = measure(vec![server.address()], clients, workload, settings)?;
            (Some(result), Some(process::cpu_seconds(server.process.pid())? - cpu_before))
        }
        None => (None, None),
    };
    if workload.probed() {
        fsync.push(probe_fdatasync(data)?);
    }
    Ok(Cell { workload, clients, routing, cashe, redis, fsync, fsync_around, cashe_spent, redis_cpu_seconds })
}

// ---- failover ----------------------------------------------------------

struct Trial {
    /// From the kill to the first successful write sent after it.
    recovery: Option<Duration>,
    timeouts: u64,
    other_errors: Errors,
}

struct FailoverResult {
    trials: Vec<Trial>,
}

fn failover(cluster: &mut Cluster, trials: usize) -> BenchResult<FailoverResult> {
    let mut result = FailoverResult { trials: Vec::new() };
    for trial in 0..trials {
        let spec = LoadSpec {
            addresses: cluster.client_addresses(),
            clients: FAILOVER_CLIENTS,
            workload: Workload::Set,
            warmup: Duration::ZERO,
            duration: None,
            routing: Routing::Forward,
            keep_events: true,
            tls: None,
        };
        let load = Load::start(spec)?;
        std::thread::sleep(FAILOVER_LOAD_BEFORE_KILL);
        let leader = cluster.leader()?;
        cluster.kill(leader);
        let killed_at = Instant::now();
        let deadline = killed_at + FAILOVER_TRIAL_MAX;
        // Keep the load on for a second past the first success, so
        // -TIMEOUTs of writes stuck at the time of the kill are counted.
        while Instant::now() < deadline && Instant::now() < killed_at + Duration::from_secs(3) {
            std::thread::sleep(Duration::from_millis(100));
        }
        let loaded = load.stop()?;
        let after: Vec<&OpEvent> = loaded.events.iter().filter(|e| e.done >= killed_at).collect();
        let recovery = after
            .iter()
            .filter(|e| e.outcome == Outcome::Success && e.sent >= killed_at)
            .map(|e| e.done.duration_since(killed_at))
            .min();
        let mut errors = Errors::default();
        for event in &after {
            errors.count(event.outcome);
        }
        let recovery_text = recovery.map_or("none".into(), |d| format!("{:.0} ms", d.as_secs_f64() * 1e3));
        eprintln!(
            "failover trial {}: killed {}, first write after {recovery_text}, -TIMEOUT {}",
            trial + 1,
            cluster.nodes[leader].name,
            errors.timeout
        );
        result.trials.push(Trial { recovery, timeouts: errors.timeout, other_errors: errors });
        cluster.restart(leader)?;
    }
    Ok(result)
}

// ---- memory ------------------------------------------------------------

struct MemoryResult {
    keys: u64,
    /// `(name, bytes per key)` of each cashe node.
    cashe: Vec<(String, f64)>,
    redis: Option<f64>,
    load_seconds: f64,
}

fn memory(dir: &Path, logs: &Path, settings: &Settings) -> BenchResult<MemoryResult> {
    let keys = settings.memory_keys;
    let mut cluster = Cluster::start(dir, logs, &settings.cashe_args)?;
    let redis = Redis::start("redis-memory-load", dir, logs, false)?;
    let rss = |pid: &Process| pid.resident_bytes();
    let mut cashe_before = Vec::new();
    for node in &cluster.nodes {
        cashe_before.push(rss(node.process.as_ref().ok_or("not running")?)?);
    }
    let redis_before = redis.as_ref().map(|r| rss(&r.process)).transpose()?;
    let took = load_keys(&cluster.client_addresses(), keys)?;
    // Every node has applied the load once a linearizable DBSIZE says so.
    let wanted = keys as i64;
    for node in &cluster.nodes {
        eventually("every key applied", || {
            (node.call(&["DBSIZE"])? == Reply::Integer(wanted)).then_some(())
        })?;
    }
    let _ = cluster.leader()?;
    // Resident memory settles once the load's transient buffers (a
    // compaction snapshot being encoded, batches in flight) are returned;
    // both servers get the same settling time before they are measured.
    std::thread::sleep(MEMORY_SETTLE);
    let mut per_key = Vec::new();
    for (node, before) in cluster.nodes.iter().zip(cashe_before) {
        let after = rss(node.process.as_ref().ok_or("not running")?)?;
        per_key.push((node.name.clone(), after.saturating_sub(before) as f64 / keys as f64));
    }
    let redis_per_key = match (&redis, redis_before) {
        (Some(redis), Some(before)) => {
            load_keys(&[redis.address()], keys)?;
            std::thread::sleep(MEMORY_SETTLE);
            Some(rss(&redis.process)?.saturating_sub(before) as f64 / keys as f64)
        }
        _ => None,
    };
    eprintln!("memory: pids {:?}", cluster.pids());
    Ok(MemoryResult { keys, cashe: per_key, redis: redis_per_key, load_seconds: took.as_secs_f64() })
}

// ---- memory per element of the data types ------------------------------

/// A collection type of the memory-per-element part.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Collection {
    Hash,
    Set,
    ZSet,
}

impl Collection {
    /// The `CASHE_BENCH_PARTS` name.
    fn part(self) -> &'static str {
        match self {
            Collection::Hash => "memory-hash",
            Collection::Set => "memory-set",
            Collection::ZSet => "memory-zset",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Collection::Hash => "hash",
            Collection::Set => "set",
            Collection::ZSet => "zset",
        }
    }

    /// The one key loaded (16 bytes).
    fn key(self) -> &'static str {
        match self {
            Collection::Hash => "memory:hash:0000",
            Collection::Set => "memory:set:00000",
            Collection::ZSet => "memory:zset:0000",
        }
    }

    fn add_command(self) -> &'static str {
        match self {
            Collection::Hash => "HSET",
            Collection::Set => "SADD",
            Collection::ZSet => "ZADD",
        }
    }

    fn length_command(self) -> &'static str {
        match self {
            Collection::Hash => "HLEN",
            Collection::Set => "SCARD",
            Collection::ZSet => "ZCARD",
        }
    }

    /// The arguments adding element `n`: a 16-byte field and a 64-byte
    /// value, a 16-byte member, or a random score and a 16-byte member.
    fn element(self, n: u64) -> Vec<Vec<u8>> {
        match self {
            Collection::Hash => vec![name("field:", n), value(n).to_vec()],
            Collection::Set => vec![name("member:", n)],
            Collection::ZSet => vec![score(split_mix(n)), name("member:", n)],
        }
    }
}

struct TypeMemory {
    collection: Collection,
    elements: u64,
    /// The node that led when the load was applied.
    leader: String,
    /// `(name, bytes per element)` of each cashe node right after the load
    /// (and the settle): the load's Raft log entries are still in memory.
    loaded: Vec<(String, f64)>,
    /// The same once every node has taken a snapshot past the load (the
    /// log compacted away), or `None` if that did not happen.
    compacted: Option<Vec<(String, f64)>>,
    /// The one-key SETs written to get every node past a snapshot.
    compaction_writes: u64,
    redis: Option<f64>,
    /// `OBJECT ENCODING` of the key: Redis's, and cashe's (`None` when it
    /// does not answer one).
    redis_encoding: Option<String>,
    cashe_encoding: Option<String>,
    load_seconds: f64,
}

impl TypeMemory {
    fn leader_bytes(&self, nodes: &[(String, f64)]) -> f64 {
        nodes.iter().find(|(n, _)| *n == self.leader).map_or(f64::NAN, |(_, b)| *b)
    }
}

fn max_bytes(nodes: &[(String, f64)]) -> f64 {
    nodes.iter().map(|(_, b)| *b).fold(0.0, f64::max)
}

fn object_encoding(address: SocketAddr, key: &str) -> Option<String> {
    match Connection::open(address).ok()?.call(&["OBJECT", "ENCODING", key]).ok()? {
        Reply::Bulk(Some(text)) => Some(String::from_utf8_lossy(&text).into_owned()),
        _ => None,
    }
}

/// A number of `INFO <section>` of a node.
fn info_number(node: &CasheNode, section: &str, key: &str) -> Option<u64> {
    match node.call(&["INFO", section])? {
        Reply::Bulk(Some(text)) => field(&String::from_utf8_lossy(&text), key)?.parse().ok(),
        _ => None,
    }
}

/// Writes one small key over and over until every node has taken a
/// snapshot at or past the last index of its log now, so the loaded
/// collection lives in the key-value store only; returns the writes made.
fn compact_past_load(cluster: &Cluster) -> BenchResult<u64> {
    let mut target = 0;
    for node in &cluster.nodes {
        target = target.max(info_number(node, "persistence", "raft_last_index").ok_or("no raft_last_index")?);
    }
    let mut written = 0;
    loop {
        let done = cluster.nodes.iter().all(|node| {
            info_number(node, "persistence", "raft_snapshot_index").is_some_and(|index| index >= target)
        });
        if done {
            return Ok(written);
        }
        if written >= COMPACTION_WRITES_MAX {
            return Err(
                format!("no snapshot past index {target} on every node after {written} writes").into()
            );
        }
        load(&cluster.client_addresses(), LoadKind::Scratch, COMPACTION_WRITES_STEP)?;
        written += COMPACTION_WRITES_STEP;
        // Writing a snapshot of a large collection takes a moment.
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Resident bytes per element of each node: (`VmRSS` now − `before`) / `elements`.
fn bytes_per_element(cluster: &Cluster, before: &[u64], elements: u64) -> BenchResult<Vec<(String, f64)>> {
    let mut nodes = Vec::new();
    for (node, before) in cluster.nodes.iter().zip(before) {
        let after = node.process.as_ref().ok_or("not running")?.resident_bytes()?;
        nodes.push((node.name.clone(), after.saturating_sub(*before) as f64 / elements as f64));
    }
    Ok(nodes)
}

/// A fresh cluster and a fresh in-memory Redis each load one collection
/// of `settings.memory_elements` elements; resident bytes per element
/// (`VmRSS` after the load minus before it), as [`memory`] measures keys;
/// for cashe, also once the load's log entries are compacted away.
fn type_memory(
    data: &Path,
    logs: &Path,
    settings: &Settings,
    collection: Collection,
) -> BenchResult<TypeMemory> {
    let elements = settings.memory_elements;
    let kind = LoadKind::Elements { collection, elements };
    let dir = data.join(collection.part());
    let mut cluster = Cluster::start(&dir, logs, &settings.cashe_args)?;
    let redis = Redis::start(&format!("redis-{}", collection.part()), &dir, logs, false)?;
    let mut cashe_before = Vec::new();
    for node in &cluster.nodes {
        cashe_before.push(node.process.as_ref().ok_or("not running")?.resident_bytes()?);
    }
    let redis_before = redis.as_ref().map(|r| r.process.resident_bytes()).transpose()?;
    let took = load(&cluster.client_addresses(), kind, elements)?;
    let wanted = Reply::Integer(elements as i64);
    for node in &cluster.nodes {
        eventually(&format!("{} elements applied on {}", elements, node.name), || {
            (node.call(&[collection.length_command(), collection.key()])? == wanted).then_some(())
        })?;
    }
    let leader = cluster.leader()?;
    let leader = cluster.nodes[leader].name.clone();
    std::thread::sleep(MEMORY_SETTLE);
    let loaded = bytes_per_element(&cluster, &cashe_before, elements)?;
    let cashe_encoding = object_encoding(cluster.nodes[0].address(), collection.key());
    let (compacted, compaction_writes) = match compact_past_load(&cluster) {
        Ok(writes) => {
            std::thread::sleep(MEMORY_SETTLE);
            (Some(bytes_per_element(&cluster, &cashe_before, elements)?), writes)
        }
        Err(e) => {
            eprintln!("{}: {e}", collection.part());
            (None, 0)
        }
    };
    let (redis_per_element, redis_encoding) = match (&redis, redis_before) {
        (Some(redis), Some(before)) => {
            load(&[redis.address()], kind, elements)?;
            std::thread::sleep(MEMORY_SETTLE);
            let after = redis.process.resident_bytes()?;
            (
                Some(after.saturating_sub(before) as f64 / elements as f64),
                object_encoding(redis.address(), collection.key()),
            )
        }
        _ => (None, None),
    };
    let result = TypeMemory {
        collection,
        elements,
        leader,
        loaded,
        compacted,
        compaction_writes,
        redis: redis_per_element,
        redis_encoding,
        cashe_encoding,
        load_seconds: took.as_secs_f64(),
    };
    eprintln!("{TYPE_MEMORY_HEADER}{}", type_memory_line(&result));
    drop(cluster);
    drop(redis);
    // Each type's cluster writes its own log and snapshots; free the disk.
    if !settings.keep {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(result)
}

const TYPE_MEMORY_HEADER: &str = concat!(
    "                 |  cashe loaded   | cashe compacted |        |  encoding: cashe, redis  |   cashe max / redis   |\n",
    "type    elements |  leader     max |  leader     max |  redis |                          |   loaded   compacted  | ",
    "cashe load, each node loaded / compacted\n",
);

/// One row under [`TYPE_MEMORY_HEADER`]: bytes per element of the node
/// that led and of the largest node (loaded, then compacted), Redis's,
/// and the ratios of the largest node's to Redis's.
fn type_memory_line(memory: &TypeMemory) -> String {
    let dash = |width: usize| format!("{:>width$}", "-");
    let compacted = memory.compacted.as_deref();
    let ratio = |nodes: Option<&[(String, f64)]>| match (nodes, memory.redis) {
        (Some(nodes), Some(redis)) => format!("{:>8.2}", max_bytes(nodes) / redis.max(1e-9)),
        _ => dash(8),
    };
    let pair = |nodes: Option<&[(String, f64)]>| match nodes {
        Some(nodes) => format!("{:>7.0} {:>7.0}", memory.leader_bytes(nodes), max_bytes(nodes)),
        None => format!("{} {}", dash(7), dash(7)),
    };
    let each: Vec<String> = memory
        .loaded
        .iter()
        .map(|(name, loaded)| {
            let after = compacted
                .and_then(|nodes| nodes.iter().find(|(n, _)| n == name))
                .map_or("-".into(), |(_, b)| format!("{b:.0}"));
            format!("{name} {loaded:.0}/{after}")
        })
        .collect();
    format!(
        "{:<5} {:>10} | {} | {} | {} | {:<24} | {}    {} | {:>5.1} s, {}",
        memory.collection.name(),
        memory.elements,
        pair(Some(&memory.loaded)),
        pair(compacted),
        memory.redis.map_or(dash(6), |b| format!("{b:>6.0}")),
        format!(
            "{}, {}",
            memory.cashe_encoding.as_deref().unwrap_or("-"),
            memory.redis_encoding.as_deref().unwrap_or("-")
        ),
        ratio(Some(&memory.loaded)),
        ratio(compacted),
        memory.load_seconds,
        each.join(", ")
    )
}

// ---- the report --------------------------------------------------------

struct Report {
    seconds: f64,
    warmup_seconds: f64,
    cells: Vec<Cell>,
    failover: Option<FailoverResult>,
    tls: Option<tls::TlsCell>,
    cores: Option<cores::CoresCell>,
    shards: Option<shards::ShardsCell>,
    memory: Option<MemoryResult>,
    /// Memory per element of a hash, a set and a sorted set (issue 14).
    type_memory: Vec<TypeMemory>,
}

fn cell_line(cell: &Cell) -> String {
    let mut line = format!("{:<5} {:>4} {:<7} | ", cell.workload.name(), cell.clients, cell.routing.name());
    side(&mut line, &cell.cashe);
    line.push_str(" | ");
    match &cell.redis {
        Some(redis) => {
            side(&mut line, redis);
            let _ = write!(
                line,
                " | {:>5.2} {:>5.2} {:>5.2}",
                cell.cashe.ops_per_second() / redis.ops_per_second().max(1e-9),
                ratio(cell.cashe.quantile_us(0.5), redis.quantile_us(0.5)),
                ratio(cell.cashe.quantile_us(0.99), redis.quantile_us(0.99)),
            );
        }
        None => line.push_str("(no redis-server)"),
    }
    line
}

fn ratio(a: u64, b: u64) -> f64 {
    a as f64 / (b.max(1)) as f64
}

fn side(line: &mut String, result: &LoadResult) {
    let ms = |us: u64| us as f64 / 1000.0;
    let _ = write!(
        line,
        "{:>8.0} {:>6.2} {:>6.2} {:>6.2} {:>7.2} {:>7.2} {:>5}",
        result.ops_per_second(),
        ms(result.quantile_us(0.5)),
        ms(result.quantile_us(0.9)),
        ms(result.quantile_us(0.99)),
        ms(result.quantile_us(0.999)),
        ms(result.latency_us.max()),
        result.errors.total()
    );
}

/// A log-scale ASCII histogram: one line per half power of two of
/// microseconds (bands of ×1.41), so a p50 shows where in an octave it sits.
fn ascii_histogram(histogram: &Histogram<u64>) -> String {
    let mut buckets: Vec<(u64, u64)> = Vec::new();
    for step in histogram.iter_log(1, std::f64::consts::SQRT_2) {
        buckets.push((step.value_iterated_to(), step.count_since_last_iteration()));
    }
    let first = buckets.iter().position(|(_, c)| *c > 0).unwrap_or(0);
    let last = buckets.iter().rposition(|(_, c)| *c > 0).unwrap_or(0);
    let peak = buckets.iter().map(|(_, c)| *c).max().unwrap_or(0).max(1);
    let total = histogram.len().max(1);
    let mut text = String::new();
    for (upper, count) in &buckets[first..=last.max(first)] {
        let width = (*count as f64 / peak as f64 * BAR_WIDTH_MAX as f64).ceil() as usize;
        let _ = writeln!(
            text,
            "      ≤{:>9.3} ms {:>6.2}% {}",
            *upper as f64 / 1000.0,
            *count as f64 * 100.0 / total as f64,
            "#".repeat(width)
        );
    }
    text
}

impl Report {
    fn new(settings: &Settings) -> Report {
        Report {
            seconds: settings.seconds,
            warmup_seconds: settings.warmup_seconds,
            cells: Vec::new(),
            failover: None,
            tls: None,
            cores: None,
            shards: None,
            memory: None,
            type_memory: Vec::new(),
        }
    }

    fn cell(&self, workload: Workload, clients: usize, routing: Routing) -> Option<&Cell> {
        self.cells.iter().find(|c| c.workload == workload && c.clients == clients && c.routing == routing)
    }

    /// The mean of the fdatasync p50s right before and after the
    /// one-client SET cell of `routing`.
    fn fsync_p50_us(&self, routing: Routing) -> Option<f64> {
        let (before, after) = self.cell(Workload::Set, 1, routing)?.fsync_around?;
        Some((before.p50_us + after.p50_us) as f64 / 2.0)
    }

    fn text(&self) -> String {
        let mut text = String::new();
        let _ = writeln!(
            text,
            "\ncashe cluster benchmark: 3 cashe nodes vs redis-server on 127.0.0.1, {VALUE_BYTES}-byte values \
             over {KEY_SPACE} {KEY_BYTES}-byte keys, {} s warm-up + {} s per cell, closed-loop clients \
             spread over the nodes",
            self.warmup_seconds, self.seconds
        );
        let _ = writeln!(text, "SET, HSET, LPUSH and ZADD against redis-server --appendonly yes --appendfsync always; GET against in-memory redis-server; latencies in ms; err = error replies + lost connections");
        let _ = writeln!(text, "HSET/LPUSH/ZADD: {COLLECTION_KEYS} keys, fields and members of {KEY_BYTES} bytes from {MEMBER_SPACE}, ZADD scores uniform in [0, {SCORE_MAX})");
        let _ = writeln!(text, "routing: forward = client i talks to node i mod 3, a follower forwards to the leader; aware = CLUSTER SLOTS, each command to its slot's master, -MOVED followed (the Redis side is one server either way)");
        for cell in self.cells.iter().filter(|c| c.fsync_around.is_some()) {
            let Some((before, after)) = cell.fsync_around else { continue };
            let _ = writeln!(
                text,
                "raw fdatasync of the data directory (100-byte appends): p50 {:.3} ms before / {:.3} ms after the 1-client SET cell, {} (p99 {:.3} / {:.3} ms, {:.0} / {:.0} per s)",
                before.p50_us as f64 / 1e3,
                after.p50_us as f64 / 1e3,
                cell.routing.name(),
                before.p99_us as f64 / 1e3,
                after.p99_us as f64 / 1e3,
                before.per_second,
                after.per_second
            );
        }
        let _ = writeln!(
            text,
            "\n{:<5} {:>4} {:<7} | {:>8} {:>6} {:>6} {:>6} {:>7} {:>7} {:>5} | {:>8} {:>6} {:>6} {:>6} {:>7} {:>7} {:>5} | {:>5} {:>5} {:>5}",
            "", "", "", "cashe", "", "", "", "", "", "", "redis", "", "", "", "", "", "", "cashe/redis", "", ""
        );
        let _ = writeln!(
            text,
            "{:<5} {:>4} {:<7} | {:>8} {:>6} {:>6} {:>6} {:>7} {:>7} {:>5} | {:>8} {:>6} {:>6} {:>6} {:>7} {:>7} {:>5} | {:>5} {:>5} {:>5}",
            "op", "cli", "routing", "ops/s", "p50", "p90", "p99", "p99.9", "max", "err", "ops/s", "p50", "p90", "p99", "p99.9", "max", "err", "ops", "p50", "p99"
        );
        for cell in &self.cells {
            let _ = writeln!(text, "{}", cell_line(cell));
        }
        for cell in self.cells.iter().filter(|c| !c.fsync.is_empty()) {
            let p50: Vec<String> =
                cell.fsync.iter().map(|p| format!("{:.3}", p.p50_us as f64 / 1e3)).collect();
            let _ = writeln!(
                text,
                "raw fdatasync p50 around {} {} {} (before cashe / between / after redis): {} ms",
                cell.workload.name(),
                cell.clients,
                cell.routing.name(),
                p50.join(" / ")
            );
        }
        text.push_str(&self.cost_text());
        text.push_str(&self.histograms());
        text.push_str(&self.failover_text());
        text.push_str(&self.tls_text());
        text.push_str(&self.cores_text());
        text.push_str(&self.shards_text());
        text.push_str(&self.memory_text());
        text.push_str(&self.type_memory_text());
        text.push_str(&self.goals());
        text
    }

    fn histograms(&self) -> String {
        let mut text =
            String::from("\nlatency histograms (share of successful operations per latency band)\n");
        for cell in &self.cells {
            let (name, clients, routing) = (cell.workload.name(), cell.clients, cell.routing.name());
            let _ = writeln!(text, "  {name} {clients} clients, cashe ({routing}):");
            text.push_str(&ascii_histogram(&cell.cashe.latency_us));
            if let Some(redis) = &cell.redis {
                let _ = writeln!(text, "  {name} {clients} clients, redis (next to cashe {routing}):");
                text.push_str(&ascii_histogram(&redis.latency_us));
            }
        }
        text
    }

    fn failover_median_max(&self) -> Option<(Duration, Duration, usize)> {
        let failover = self.failover.as_ref()?;
        let mut times: Vec<Duration> = failover.trials.iter().filter_map(|t| t.recovery).collect();
        times.sort();
        let median = *times.get(times.len() / 2)?;
        Some((median, *times.last()?, times.len()))
    }

    fn failover_text(&self) -> String {
        let Some(failover) = &self.failover else { return String::new() };
        let timeouts: u64 = failover.trials.iter().map(|t| t.timeouts).sum();
        let mut text = String::new();
        let each: Vec<String> = failover
            .trials
            .iter()
            .map(|t| t.recovery.map_or("none".into(), |d| format!("{:.0}", d.as_secs_f64() * 1e3)))
            .collect();
        let (median, max) = match self.failover_median_max() {
            Some((median, max, _)) => (
                format!("{:.0} ms", median.as_secs_f64() * 1e3),
                format!("{:.0} ms", max.as_secs_f64() * 1e3),
            ),
            None => ("none".into(), "none".into()),
        };
        let mut other = Errors::default();
        for trial in &failover.trials {
            other.add(&trial.other_errors);
        }
        let _ = writeln!(
            text,
            "\nfailover (SET, {FAILOVER_CLIENTS} clients, kill -9 of the leader, {} trials): first successful write after the kill: median {median}, max {max} (each: {} ms); -TIMEOUT replies: {timeouts} (also -CLUSTERDOWN {}, -TRYAGAIN {}, other {}, lost connections {})",
            failover.trials.len(),
            each.join(", "),
            other.cluster_down,
            other.try_again,
            other.other,
            other.io
        );
        text
    }

    fn tls_text(&self) -> String {
        let Some(cell) = &self.tls else { return String::new() };
        let (plain, tls) = (&cell.plain, &cell.tls);
        let ms = |us: u64| us as f64 / 1e3;
        format!(
            "\nTLS (SET, {} clients; the plain cluster, then at once a cluster with TLS on clients and peers): \
             ops/s plain {:.0}, TLS {:.0}, ratio TLS/plain {:.2}; p50 {:.2} -> {:.2} ms, p99 {:.2} -> {:.2} ms; \
             errors {} / {}\n",
            tls::TLS_CLIENTS,
            plain.ops_per_second(),
            tls.ops_per_second(),
            tls.ops_per_second() / plain.ops_per_second().max(1e-9),
            ms(plain.quantile_us(0.5)),
            ms(tls.quantile_us(0.5)),
            ms(plain.quantile_us(0.99)),
            ms(tls.quantile_us(0.99)),
            plain.errors.total(),
            tls.errors.total(),
        )
    }

    fn cores_text(&self) -> String {
        let Some(cell) = &self.cores else { return String::new() };
        let mut text = format!(
            "\ncores (one node of {} shards unless CASHE_BENCH_CASHE_ARGS says, {} clients; --cores 1, then at once --cores 2 \
             (its key groups on both cores); CPU: the server process's user + system time per operation):\n",
            cores::CORES_SHARDS,
            cores::CORES_CLIENTS
        );
        for (workload, [one, two]) in &cell.rows {
            let _ = writeln!(
                text,
                "  {:<4} --cores {}: {:>8.0} ops/s, p99 {:>6.2} ms, {:>5.1} µs CPU/op | --cores {}: {:>8.0} ops/s, \
                 p99 {:>6.2} ms, {:>5.1} µs CPU/op | ratio ops/s {:.2}, CPU/op {:.2}; errors {} / {}",
                workload.name(),
                one.cores,
                one.result.ops_per_second(),
                one.result.quantile_us(0.99) as f64 / 1e3,
                one.cpu_us_per_op(),
                two.cores,
                two.result.ops_per_second(),
                two.result.quantile_us(0.99) as f64 / 1e3,
                two.cpu_us_per_op(),
                two.result.ops_per_second() / one.result.ops_per_second().max(1e-9),
                two.cpu_us_per_op() / one.cpu_us_per_op().max(1e-9),
                one.result.errors.total(),
                two.result.errors.total(),
            );
        }
        text
    }

    fn shards_text(&self) -> String {
        let Some(cell) = &self.shards else { return String::new() };
        let mut text = String::from(
            "\nidle shards (three nodes, no load, every group quiet; the first node's CPU and peer messages):\n",
        );
        for side in &cell.sides {
            let _ = writeln!(
                text,
                "  {:>5} shards: {:>6.2}% of a CPU, {:>7.1} messages/s, {:>7.1} MiB resident; quiet {:.0} s after start",
                side.shards, side.cpu_percent, side.messages_per_second, side.resident_mib, side.settle_seconds
            );
        }
        if let (Some(first), Some(last)) = (cell.sides.first(), cell.sides.last()) {
            let _ = writeln!(
                text,
                "  ratio {} / {} shards: CPU {:.2}, messages {:.2}",
                last.shards,
                first.shards,
                last.cpu_percent / first.cpu_percent.max(1e-9),
                last.messages_per_second / first.messages_per_second.max(1e-9)
            );
        }
        text.push_str(
            "loaded shards (three nodes, SET at 64 plain clients over all of them; fsyncs of every node):\n",
        );
        for side in &cell.loaded {
            let _ = writeln!(
                text,
                "  {:>5} shards: {:>8.0} ops/s, p99 {:>6.2} ms, {:.3} fsyncs per SET, errors {}",
                side.shards,
                side.result.ops_per_second(),
                side.result.quantile_us(0.99) as f64 / 1000.0,
                side.fsyncs_per_op,
                side.result.errors.total()
            );
        }
        if let (Some(first), Some(last)) = (cell.loaded.first(), cell.loaded.last()) {
            let _ = writeln!(
                text,
                "  ratio {} / {} shards: ops/s {:.2}, fsyncs per SET {:.2}",
                last.shards,
                first.shards,
                last.result.ops_per_second() / first.result.ops_per_second().max(1e-9),
                last.fsyncs_per_op / first.fsyncs_per_op.max(1e-9)
            );
        }
        text
    }

    fn memory_text(&self) -> String {
        let Some(memory) = &self.memory else { return String::new() };
        let nodes: Vec<String> = memory.cashe.iter().map(|(name, b)| format!("{name} {b:.0}")).collect();
        let redis = memory.redis.map_or("(no redis-server)".into(), |b| format!("{b:.0}"));
        format!(
            "\nmemory ({} keys of {KEY_BYTES} bytes, {VALUE_BYTES}-byte values, loaded by pipelined SET in {:.1} s): resident bytes per key: cashe {}; redis {redis}\n",
            memory.keys,
            memory.load_seconds,
            nodes.join(", ")
        )
    }

    fn type_memory_text(&self) -> String {
        if self.type_memory.is_empty() {
            return String::new();
        }
        let mut text = format!(
            "\nmemory per element (one collection per fresh cluster and fresh in-memory redis-server, loaded by \
             pipelined HSET/SADD/ZADD of {ELEMENTS_PER_COMMAND} elements; {KEY_BYTES}-byte fields and members, \
             {VALUE_BYTES}-byte hash values, random double scores): resident bytes per element of the node that \
             led, of the largest node, and of Redis; cashe right after the load (its Raft log entries still in \
             memory) and once every node has taken a snapshot past it (by rewriting one other key); \
             encoding = OBJECT ENCODING of the key\n{TYPE_MEMORY_HEADER}"
        );
        for memory in &self.type_memory {
            let _ = writeln!(text, "{}", type_memory_line(memory));
        }
        text
    }

    /// The issue's goals, each with its measured ratio, judged on the
    /// forwarding clients (issue 7 predates cluster-aware ones).
    fn goals(&self) -> String {
        let mut text = String::from("\ngoals (issue 7, forward):\n");
        let mut goal = |name: &str, verdict: Option<(bool, String)>| {
            let _ = match verdict {
                Some((held, detail)) => {
                    writeln!(text, "  [{}] {name}: {detail}", if held { "met" } else { "NOT met" })
                }
                None => writeln!(text, "  [not measured] {name}"),
            };
        };
        let pair = |w, c| {
            let cell = self.cell(w, c, Routing::Forward)?;
            Some((&cell.cashe, cell.redis.as_ref()?))
        };
        goal(
            "SET 64 clients: ops/s >= 1.0 x durable Redis, p99 <= 2 x Redis's",
            pair(Workload::Set, 64).map(|(c, r)| {
                let ops = c.ops_per_second() / r.ops_per_second().max(1e-9);
                let p99 = ratio(c.quantile_us(0.99), r.quantile_us(0.99));
                (ops >= 1.0 && p99 <= 2.0, format!("ops ratio {ops:.2}, p99 ratio {p99:.2}"))
            }),
        );
        goal(
            "GET 64 clients (linearizable): ops/s >= 0.7 x in-memory Redis",
            pair(Workload::Get, 64).map(|(c, r)| {
                let ops = c.ops_per_second() / r.ops_per_second().max(1e-9);
                (ops >= 0.7, format!("ops ratio {ops:.2}"))
            }),
        );
        let single = self.cell(Workload::Set, 1, Routing::Forward).map(|c| c.cashe.quantile_us(0.5));
        goal(
            "SET 1 client: p50 <= 2 x fdatasync p50 + 0.3 ms",
            single.zip(self.fsync_p50_us(Routing::Forward)).map(|(p50, fsync)| {
                let bound = 2.0 * fsync + 300.0;
                (
                    p50 as f64 <= bound,
                    format!(
                        "p50 {:.3} ms, bound {:.3} ms (fdatasync p50 {:.3} ms)",
                        p50 as f64 / 1e3,
                        bound / 1e3,
                        fsync / 1e3
                    ),
                )
            }),
        );
        goal(
            "failover: median time to the first successful write <= 1 s",
            self.failover_median_max().map(|(median, _, _)| {
                (median <= Duration::from_secs(1), format!("median {:.0} ms", median.as_secs_f64() * 1e3))
            }),
        );
        goal(
            "memory: <= 2 x Redis's resident bytes per key",
            self.memory.as_ref().and_then(|m| {
                let worst = m.cashe.iter().map(|(_, b)| *b).fold(0.0, f64::max);
                let redis = m.redis?;
                Some((
                    worst <= 2.0 * redis,
                    format!(
                        "worst node {worst:.0} vs redis {redis:.0} bytes/key: {:.2}x",
                        worst / redis.max(1e-9)
                    ),
                ))
            }),
        );
        text.push_str(&self.type_goals());
        text.push_str(&self.performance_goals_text());
        text
    }

    /// Issue 17's goals, judged on the cluster-aware clients: each goal's
    /// name and, if measured, its verdict.
    fn performance_goals(&self) -> Vec<(&'static str, Option<Verdict>)> {
        let aware = |workload, clients| self.cell(workload, clients, Routing::Aware);
        let ops_ratio = |cell: &Cell| {
            let redis = cell.redis.as_ref()?;
            Some(cell.cashe.ops_per_second() / redis.ops_per_second().max(1e-9))
        };
        let p99_ratio =
            |cell: &Cell| Some(ratio(cell.cashe.quantile_us(0.99), cell.redis.as_ref()?.quantile_us(0.99)));
        let set = aware(Workload::Set, 64);
        let done =
            set.and_then(ops_ratio).map(|ops| Verdict::new(ops >= 0.8, ops, format!("ops ratio {ops:.2}")));
        let full = set.and_then(|cell| Some((ops_ratio(cell)?, p99_ratio(cell)?))).map(|(ops, p99)| {
            Verdict::new(ops >= 1.0 && p99 <= 2.0, ops, format!("ops ratio {ops:.2}, p99 ratio {p99:.2}"))
        });
        let get = aware(Workload::Get, 64)
            .and_then(ops_ratio)
            .map(|ops| Verdict::new(ops >= 0.7, ops, format!("ops ratio {ops:.2}")));
        let latency = aware(Workload::Set, 1).zip(self.fsync_p50_us(Routing::Aware)).map(|(cell, fsync)| {
            let (p50, bound) = (cell.cashe.quantile_us(0.5) as f64, 2.0 * fsync + 300.0);
            let detail = format!(
                "p50 {:.3} ms, bound {:.3} ms (fdatasync p50 {:.3} ms): p50 / bound {:.2}",
                p50 / 1e3,
                bound / 1e3,
                fsync / 1e3,
                p50 / bound
            );
            Verdict::new(p50 <= bound, p50 / bound, detail)
        });
        let cpu = set.and_then(|cell| Some((cell.cashe_cpu_us_per_op()?, cell.redis_cpu_us_per_op()?))).map(
            |(cashe, redis)| {
                let times = cashe / redis.max(1e-9);
                Verdict::new(
                    times <= 3.0,
                    times,
                    format!("cashe {cashe:.1} µs, redis {redis:.1} µs per SET: {times:.2}x"),
                )
            },
        );
        vec![
            ("SET 64 clients, aware: ops/s >= 0.8 x durable Redis (the issue's done bar)", done),
            ("SET 64 clients, aware: ops/s >= 1.0 x durable Redis, p99 <= 2 x Redis's (the full goal)", full),
            ("GET 64 clients, aware (linearizable): ops/s >= 0.7 x in-memory Redis", get),
            ("SET 1 client, aware: p50 <= 2 x fdatasync p50 + 0.3 ms", latency),
            ("SET 64 clients, aware: CPU per SET of the three nodes <= 3 x Redis's per durable SET", cpu),
        ]
    }

    fn performance_goals_text(&self) -> String {
        let goals = self.performance_goals();
        let mut text = String::from("goals (issue 17, aware):\n");
        for (name, verdict) in goals {
            let _ = match verdict {
                Some(verdict) => writeln!(
                    text,
                    "  [{}] {name}: {}",
                    if verdict.held { "met" } else { "NOT met" },
                    verdict.detail
                ),
                None => writeln!(text, "  [not measured] {name}"),
            };
        }
        for routing in [Routing::Forward, Routing::Aware] {
            let Some(cell) = self.cell(Workload::Set, 64, routing) else { continue };
            let (Some(fsyncs), Some(messages), Some(records)) = (
                cell.per_op(|s| s.wal_fsyncs),
                cell.per_op(|s| s.peer_messages_sent),
                cell.records_per_fsync(),
            ) else {
                continue;
            };
            let _ = writeln!(
                text,
                "  [measured] SET 64 clients, {}: {fsyncs:.3} fsyncs per SET ({records:.1} WAL records per fsync), \
                 {messages:.2} peer messages sent per SET (all kinds; INFO counts no AppendEntries or entries apart)",
                routing.name()
            );
        }
        text
    }

    /// What the servers spent per operation in each cell.
    fn cost_text(&self) -> String {
        if self.cells.is_empty() {
            return String::new();
        }
        let mut text = String::from(
            "\nserver cost per successful operation, over each half's whole load (warm-up included): CPU = user + \
             system (/proc/<pid>/stat) of the three cashe nodes summed, of redis-server; cashe's INFO stats \
             counters summed over the nodes; MOVED = redirections followed in the measured window\n",
        );
        let number = |value: Option<f64>, decimals: usize| {
            value.map_or("-".to_string(), |v| format!("{v:.decimals$}"))
        };
        for cell in &self.cells {
            let cashe = cell.cashe_cpu_us_per_op();
            let redis = cell.redis_cpu_us_per_op();
            let _ = writeln!(
                text,
                "  {:<5} {:>4} {:<7} | CPU µs/op cashe {:>6}, redis {:>6}, ratio {:>5} | per op: {} fsyncs, {} peer messages; \
                 {} WAL records per fsync | MOVED {}",
                cell.workload.name(),
                cell.clients,
                cell.routing.name(),
                number(cashe, 1),
                number(redis, 1),
                number(cashe.zip(redis).map(|(c, r)| c / r.max(1e-9)), 2),
                number(cell.per_op(|s| s.wal_fsyncs), 3),
                number(cell.per_op(|s| s.peer_messages_sent), 2),
                number(cell.records_per_fsync(), 1),
                cell.cashe.redirects
            );
        }
        text
    }

    /// Issue 14's data types: the ratios of the HSET, LPUSH and ZADD cells
    /// (the issue sets no bound on them) and the memory goal per type.
    fn type_goals(&self) -> String {
        let workloads = [Workload::Hset, Workload::Lpush, Workload::Zadd];
        let cells: Vec<&Cell> = self.cells.iter().filter(|c| workloads.contains(&c.workload)).collect();
        if cells.is_empty() && self.type_memory.is_empty() {
            return String::new();
        }
        let mut text = String::from("goals (issue 14):\n");
        for cell in cells {
            let Some(redis) = &cell.redis else { continue };
            let ops = cell.cashe.ops_per_second() / redis.ops_per_second().max(1e-9);
            let p99 = ratio(cell.cashe.quantile_us(0.99), redis.quantile_us(0.99));
            let _ = writeln!(
                text,
                "  [measured] {} {} clients, {}, against durable Redis: ops ratio {ops:.2}, p99 ratio {p99:.2}",
                cell.workload.name(),
                cell.clients,
                cell.routing.name()
            );
        }
        for memory in &self.type_memory {
            let name = format!(
                "memory: a {}-element {}: <= 2 x Redis's resident bytes per element",
                memory.elements,
                memory.collection.name()
            );
            // Judged right after the load, as the per-key memory line is;
            // the compacted state is shown too.
            let worst = max_bytes(&memory.loaded);
            let compacted =
                memory.compacted.as_deref().map_or("not reached".into(), |n| format!("{:.0}", max_bytes(n)));
            let _ = match memory.redis {
                Some(redis) => {
                    writeln!(
                        text,
                        "  [{}] {name}: worst node {worst:.0} right after the load (compacted: {compacted}) vs redis {redis:.0} bytes/element ({}): {:.2}x",
                        if worst <= 2.0 * redis { "met" } else { "NOT met" },
                        memory.redis_encoding.as_deref().unwrap_or("-"),
                        worst / redis.max(1e-9)
                    )
                }
                None => writeln!(text, "  [not measured] {name}"),
            };
        }
        text
    }

    fn json(&self) -> String {
        let mut json = String::from("{\n");
        let _ = writeln!(
            json,
            "  \"seconds_per_cell\": {},\n  \"warmup_seconds\": {},",
            self.seconds, self.warmup_seconds
        );
        let _ = writeln!(
            json,
            "  \"key_bytes\": {KEY_BYTES},\n  \"value_bytes\": {VALUE_BYTES},\n  \"keys\": {KEY_SPACE},"
        );
        // The forwarding mode's yardstick where it ran (as before the modes).
        let yardstick = [Routing::Forward, Routing::Aware]
            .iter()
            .find_map(|routing| self.cell(Workload::Set, 1, *routing)?.fsync_around);
        if let Some((before, after)) = yardstick {
            let _ = writeln!(
                json,
                "  \"fdatasync\": {{\"p50_us_before\": {}, \"p50_us_after\": {}, \"p99_us_before\": {}, \"p99_us_after\": {}}},",
                before.p50_us, after.p50_us, before.p99_us, after.p99_us
            );
        }
        json.push_str("  \"cells\": [\n");
        for (i, cell) in self.cells.iter().enumerate() {
            let separator = if i + 1 < self.cells.len() { "," } else { "" };
            let redis = cell.redis.as_ref().map_or("null".into(), side_json);
            let fsync: Vec<String> = cell.fsync.iter().map(|p| p.p50_us.to_string()).collect();
            let around = cell.fsync_around.map_or("null".into(), |(before, after)| {
                format!("{{\"p50_us_before\": {}, \"p50_us_after\": {}}}", before.p50_us, after.p50_us)
            });
            let number = |value: Option<f64>| value.map_or("null".into(), |v| format!("{v:.4}"));
            let _ = writeln!(
                json,
                "    {{\"workload\": \"{}\", \"clients\": {}, \"routing\": \"{}\", \"cashe\": {}, \"redis\": {redis}, \
                 \"fdatasync_p50_us\": [{}], \"fdatasync_around\": {around}, \"cashe_cpu_us_per_op\": {}, \
                 \"redis_cpu_us_per_op\": {}, \"fsyncs_per_op\": {}, \"wal_records_per_fsync\": {}, \
                 \"peer_messages_per_op\": {}}}{separator}",
                cell.workload.name(),
                cell.clients,
                cell.routing.name(),
                side_json(&cell.cashe),
                fsync.join(", "),
                number(cell.cashe_cpu_us_per_op()),
                number(cell.redis_cpu_us_per_op()),
                number(cell.per_op(|s| s.wal_fsyncs)),
                number(cell.records_per_fsync()),
                number(cell.per_op(|s| s.peer_messages_sent)),
            );
        }
        json.push_str("  ],\n");
        let goals: Vec<String> = self
            .performance_goals()
            .iter()
            .map(|(name, verdict)| match verdict {
                Some(Verdict { held, ratio, .. }) => {
                    format!("{{\"goal\": \"{name}\", \"held\": {held}, \"ratio\": {ratio:.4}}}")
                }
                None => format!("{{\"goal\": \"{name}\", \"held\": null, \"ratio\": null}}"),
            })
            .collect();
        let _ = writeln!(json, "  \"goals_issue_17\": [{}],", goals.join(", "));
        if let Some(cell) = &self.tls {
            let _ = writeln!(
                json,
                "  \"tls\": {{\"clients\": {}, \"plain\": {}, \"tls\": {}}},",
                tls::TLS_CLIENTS,
                side_json(&cell.plain),
                side_json(&cell.tls)
            );
        }
        if let Some(cell) = &self.shards {
            let sides: Vec<String> = cell
                .sides
                .iter()
                .map(|side| {
                    format!(
                        "{{\"shards\": {}, \"cpu_percent\": {:.3}, \"messages_per_second\": {:.1}, \"resident_mib\": {:.1}}}",
                        side.shards, side.cpu_percent, side.messages_per_second, side.resident_mib
                    )
                })
                .collect();
            let _ = writeln!(json, "  \"idle_shards\": [{}],", sides.join(", "));
            let loaded: Vec<String> = cell
                .loaded
                .iter()
                .map(|side| {
                    format!(
                        "{{\"shards\": {}, \"fsyncs_per_op\": {:.4}, \"set\": {}}}",
                        side.shards,
                        side.fsyncs_per_op,
                        side_json(&side.result)
                    )
                })
                .collect();
            let _ = writeln!(json, "  \"loaded_shards\": [{}],", loaded.join(", "));
        }
        if let Some(cell) = &self.cores {
            let rows: Vec<String> = cell
                .rows
                .iter()
                .flat_map(|(workload, sides)| sides.iter().map(move |side| (workload, side)))
                .map(|(workload, side)| {
                    format!(
                        "{{\"workload\": \"{}\", \"cores\": {}, \"cpu_us_per_op\": {:.2}, \"load\": {}}}",
                        workload.name(),
                        side.cores,
                        side.cpu_us_per_op(),
                        side_json(&side.result)
                    )
                })
                .collect();
            let _ = writeln!(
                json,
                "  \"cores\": {{\"clients\": {}, \"rows\": [{}]}},",
                cores::CORES_CLIENTS,
                rows.join(", ")
            );
        }
        match &self.failover {
            Some(failover) => {
                let trials: Vec<String> = failover
                    .trials
                    .iter()
                    .map(|t| {
                        let ms =
                            t.recovery.map_or("null".into(), |d| format!("{:.1}", d.as_secs_f64() * 1e3));
                        format!("{{\"first_write_ms\": {ms}, \"timeouts\": {}}}", t.timeouts)
                    })
                    .collect();
                let _ = writeln!(json, "  \"failover\": [{}],", trials.join(", "));
            }
            None => json.push_str("  \"failover\": null,\n"),
        }
        match &self.memory {
            Some(memory) => {
                let nodes: Vec<String> =
                    memory.cashe.iter().map(|(n, b)| format!("\"{n}\": {b:.1}")).collect();
                let redis = memory.redis.map_or("null".into(), |b| format!("{b:.1}"));
                let _ = writeln!(
                    json,
                    "  \"memory\": {{\"keys\": {}, \"cashe_bytes_per_key\": {{{}}}, \"redis_bytes_per_key\": {redis}}},",
                    memory.keys,
                    nodes.join(", ")
                );
            }
            None => json.push_str("  \"memory\": null,\n"),
        }
        let types: Vec<String> = self
            .type_memory
            .iter()
            .map(|m| {
                let nodes = |nodes: &[(String, f64)]| {
                    let each: Vec<String> = nodes.iter().map(|(n, b)| format!("\"{n}\": {b:.1}")).collect();
                    format!("{{{}}}", each.join(", "))
                };
                let text = |t: &Option<String>| t.as_ref().map_or("null".into(), |t| format!("\"{t}\""));
                format!(
                    "    {{\"type\": \"{}\", \"elements\": {}, \"cashe_bytes_per_element_loaded\": {}, \
                     \"cashe_bytes_per_element_compacted\": {}, \"compaction_writes\": {}, \"cashe_leader\": \"{}\", \
                     \"cashe_encoding\": {}, \"redis_bytes_per_element\": {}, \"redis_encoding\": {}, \"cashe_load_seconds\": {:.1}}}",
                    m.collection.name(),
                    m.elements,
                    nodes(&m.loaded),
                    m.compacted.as_deref().map_or("null".into(), nodes),
                    m.compaction_writes,
                    m.leader,
                    text(&m.cashe_encoding),
                    m.redis.map_or("null".into(), |b| format!("{b:.1}")),
                    text(&m.redis_encoding),
                    m.load_seconds
                )
            })
            .collect();
        if types.is_empty() {
            json.push_str("  \"memory_per_element\": []\n");
        } else {
            let _ = writeln!(json, "  \"memory_per_element\": [\n{}\n  ]", types.join(",\n"));
        }
        json.push_str("}\n");
        json
    }
}

/// A goal's verdict: whether it holds, the ratio it judges, and the
/// numbers behind it.
struct Verdict {
    held: bool,
    ratio: f64,
    detail: String,
}

impl Verdict {
    fn new(held: bool, ratio: f64, detail: String) -> Verdict {
        Verdict { held, ratio, detail }
    }
}

fn side_json(result: &LoadResult) -> String {
    format!(
        "{{\"ops_per_second\": {:.1}, \"p50_us\": {}, \"p90_us\": {}, \"p99_us\": {}, \"p999_us\": {}, \"max_us\": {}, \
         \"timeouts\": {}, \"cluster_down\": {}, \"try_again\": {}, \"other_errors\": {}, \"lost_connections\": {}, \
         \"redirects\": {}, \"ops_total\": {}}}",
        result.ops_per_second(),
        result.quantile_us(0.5),
        result.quantile_us(0.9),
        result.quantile_us(0.99),
        result.quantile_us(0.999),
        result.latency_us.max(),
        result.errors.timeout,
        result.errors.cluster_down,
        result.errors.try_again,
        result.errors.other,
        result.errors.io,
        result.redirects,
        result.ops_total
    )
}
