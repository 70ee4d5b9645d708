//! The server: start-up (the data directory's lock, then the listeners,
//! which no other process may share, then recover, bootstrap or join), and
//! the loop that drives the node (DESIGN §8).
//!
//! Every task (client connections, peer readers, the ticker, the disk) only
//! turns what it saw into [`Event`]s and puts them in one mailbox. The loop
//! takes all queued events at once, feeds them to the node, and performs its
//! output (`turn::drain`): messages to peer queues, replies to connections,
//! records and snapshots to the disk task's queue. The disk task writes
//! everything queued with one durable write (`turn::write`; the files are
//! `O_DSYNC`) and publishes the last durable `Lsn`, which the loop feeds
//! the node as `Event::Persisted` and which releases what waited for it. The loop never waits for an fsync: everything handed out
//! while one runs is the next group commit.

use super::client;
use super::cores::{self, ClientCounters, Connections, ReplyTo};
use super::disk::GlommioDisk;
use super::group_cores::{self, FromCore};
use super::http;
use super::mailbox::Mailbox;
use super::peer::{self, AddressBook, PeerFrame, PeerLink, PeerSecurity};
use super::readings::Readings;
use super::tls::TlsSettings;
use crate::node::handshake::ClusterSecret;
use crate::node::{
    ClusterMode, ConnId, GroupId, MemberInfo, Node, NodeConfig, NodeMessage, Router, Transport, FOUNDER, HOME,
};
use crate::protocol::{Limits, Reply};
use crate::raft::{Lsn, NodeId, PlantedBug};
use crate::turn::{self, DiskJob, LogId, TurnStats};
use crate::wal::{Wal, WalOptions};
use glommio::net::TcpListener;
use hdrhistogram::Histogram;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Events waiting for the loop before producers must wait.
const EVENTS_MAX: usize = 64 * 1024;

/// Records handed to the disk and not yet durable before the loop stops
/// taking new work and waits for the disk (a stalled disk must not turn
/// into unbounded memory).
const DISK_BACKLOG_MAX: u64 = 64 * 1024;

/// Everything the command line decides.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub name: String,
    /// The plain client port; `None` with `--listenaddr ""`.
    pub client_bind: Option<SocketAddr>,
    /// The TLS client port (`--tls-listenaddr`).
    pub tls_client_bind: Option<SocketAddr>,
    /// The operator's HTTP port (`--metrics-addr`): metrics, health, readiness.
    pub metrics_bind: Option<SocketAddr>,
    /// `--maxmemory`: the most bytes the process may have allocated before
    /// leaders refuse writes that may add data (0: no limit).
    pub maxmemory: u64,
    /// The process's allocated bytes, as the binary's allocator counts them.
    pub used_memory: fn() -> u64,
    pub raft_bind: SocketAddr,
    /// `host:port` peers and clients are told to use.
    pub client_advertise: String,
    /// `host:port` TLS clients are told to use; `None` without a TLS port.
    pub tls_client_advertise: Option<String>,
    pub raft_advertise: String,
    /// Client address of a member to join through (empty data dir only).
    pub join_via: Option<String>,
    pub datadir: PathBuf,
    pub tick: Duration,
    pub heartbeat_ticks: u32,
    pub election_ticks: u32,
    /// `--read-lease`: leaders serve reads from a lease (`raft::Config`).
    pub read_lease: bool,
    /// `--clock-drift-percent`: the clock drift bound the lease allows for.
    pub clock_drift_percent: u32,
    pub snapshot_entries: u64,
    pub limits: Limits,
    pub query_bytes_max: usize,
    pub clients_max: usize,
    /// How long to keep retrying a join before giving up.
    pub join_timeout: Duration,
    /// Set by SIGINT/SIGTERM.
    pub stop: Arc<AtomicBool>,
    /// Test builds only: a deliberate defect (src/raft/bugs.rs), inert
    /// without the `planted-bugs` feature.
    pub planted_bug: PlantedBug,
    /// Hands a bound std listener to glommio (see [`AdoptListener`]).
    pub adopt_listener: AdoptListener,
    /// `--requirepass`: the default user's password.
    pub requirepass: Option<crate::node::Password>,
    /// `--cluster-secret`: peers and joining nodes must prove it.
    pub cluster_secret: Option<ClusterSecret>,
    /// `--max-peer-connections`: open connections the Raft port holds.
    pub peer_connections_max: usize,
    /// `--protected-mode`: with no password, only loopback clients.
    pub protected_mode: bool,
    /// `--cluster-mode`: redirect or forward keyed commands for a shard
    /// this node does not lead.
    pub cluster_mode: ClusterMode,
    /// `--cores`: executors in all, the node's and `cores - 1` that serve
    /// client connections (`cores`); at least 1.
    pub cores: usize,
    /// `--pin-cores`: executor k runs on CPU k only.
    pub pin_cores: bool,
    /// `--replicas`: members each key group is on, for a new cluster of
    /// several shards (`None`: `DEFAULT_REPLICAS`; 0: every member).
    pub replicas: Option<u32>,
    /// `--shards`: groups the key space is in, for a new cluster (`None`:
    /// one); a member's directory keeps the count it was made with.
    pub shards: Option<u32>,
    /// TLS (`--tls-*`): the TLS client port's, peer links' (mutual TLS) and
    /// the join's; `None` runs everything plain.
    pub tls: Option<Arc<TlsSettings>>,
    /// `--aclfile`'s users, parsed by the binary at start.
    pub acl: Option<crate::node::Acl>,
    /// `--masteruser`/`--masterauth`: what a joining node sends AUTH with.
    pub join_auth: Option<super::join::JoinAuth>,
}

/// Turns a bound, listening std socket into glommio's listener, taking
/// ownership of it. That is `glommio::net::TcpListener::from_raw_fd`, an
/// `unsafe` call, which this crate cannot make (`#![forbid(unsafe_code)]`
/// in `lib.rs` covers `runtime` too), so the binary supplies it. glommio
/// has no safe constructor but `bind`, whose `SO_REUSEPORT` lets another
/// process share the port (see `listen`).
pub type AdoptListener = fn(std::net::TcpListener) -> TcpListener;

/// How the server ended without an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stopped {
    /// SIGINT or SIGTERM.
    Signal,
    /// This node was removed from the cluster.
    Removed,
}

pub use crate::turn::Input as Event;

/// State the connection tasks of every executor share with the loop.
pub struct Shared {
    /// A client write's time from arrival to reply, in µs.
    pub(super) write_latency_us: Mutex<Histogram<u64>>,
    /// One durable write of any core's disk task, in µs.
    pub(super) wal_write_us: Mutex<Histogram<u64>>,
    /// Executors running (`--cores`), for INFO.
    pub(super) executors: usize,
}

impl Shared {
    fn new(executors: usize) -> Shared {
        let histogram = || Mutex::new(Histogram::new_with_bounds(1, 60_000_000, 2).expect("valid bounds"));
        Shared { write_latency_us: histogram(), wal_write_us: histogram(), executors }
    }

    pub fn record_write_latency(&self, latency: Duration) {
        record(&self.write_latency_us, latency);
    }
}

fn record(histogram: &Mutex<Histogram<u64>>, took: Duration) {
    let micros = took.as_micros().min(u128::from(u64::MAX)) as u64;
    if let Ok(mut histogram) = histogram.lock() {
        let _ = histogram.record(micros.max(1));
    }
}

/// Where executor k runs: CPU k with `--pin-cores`, anywhere without.
pub fn placement(k: usize, pin: bool) -> glommio::Placement {
    if pin {
        glommio::Placement::Fixed(k)
    } else {
        glommio::Placement::Unbound
    }
}

/// What a log's disk task shares with the loop.
#[derive(Default)]
struct DiskState {
    /// Per group, the last `Lsn` made durable.
    durable: RefCell<BTreeMap<GroupId, Lsn>>,
    /// What became durable since the loop last looked (it takes them).
    fresh: RefCell<BTreeMap<GroupId, Lsn>>,
    /// Work done, for INFO.
    stats: std::cell::Cell<TurnStats>,
    /// Groups to ask for a snapshot (`turn::Written::compact`).
    compact: RefCell<Vec<GroupId>>,
    /// Why the disk task stopped, if it did.
    failed: RefCell<Option<String>>,
}

impl DiskState {
    fn durable(&self, group: GroupId) -> Lsn {
        self.durable.borrow().get(&group).copied().unwrap_or(Lsn(0))
    }
}

/// Makes the records of a log's groups durable in the order they were
/// handed out and reports progress to the loop; stops at the first error
/// (fail-stop).
async fn disk_task(
    mut wal: Wal<GlommioDisk>,
    jobs: Mailbox<(GroupId, DiskJob)>,
    events: Mailbox<Event>,
    state: Rc<DiskState>,
    shared: Arc<Shared>,
) {
    let mut stats = TurnStats::default();
    loop {
        let batch = jobs.take_all().await;
        let started = Instant::now();
        let result = turn::write(&mut wal, batch, &mut stats).await;
        record(&shared.wal_write_us, started.elapsed());
        match result {
            Ok(written) => {
                state.stats.set(stats);
                if !written.compact.is_empty() {
                    *state.compact.borrow_mut() = written.compact;
                }
                for (group, lsn) in written.durable {
                    // Never wait on the loop (it may be waiting for us, with
                    // a full mailbox): `durable` is what the loop reads; the
                    // event only wakes it, and a full mailbox wakes it anyway.
                    state.durable.borrow_mut().insert(group, lsn);
                    state.fresh.borrow_mut().insert(group, lsn);
                    let _ = events.try_push(Event::Persisted(group, lsn));
                }
            }
            Err(e) => {
                *state.failed.borrow_mut() = Some(e.to_string());
                return;
            }
        }
    }
}

fn wall_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// A seed for what the shell may randomise (election timeouts, the cluster
/// id): time and process id, different on every boot.
pub(crate) fn boot_seed() -> u64 {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0);
    let mut rng = crate::raft::SplitMix64::new(nanos ^ (u64::from(std::process::id()) << 32));
    rng.next_u64()
}

/// Reads `meta` if the data directory has one: `(node id, cluster id)`.
fn read_meta(datadir: &std::path::Path) -> Result<Option<(u64, u64)>, String> {
    let path = datadir.join(crate::wal::format::META_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => {
            let meta = crate::wal::format::decode_meta(&bytes)
                .map_err(|e| format!("{}: {e}; refusing to start", path.display()))?;
            Ok(Some((meta.node_id, meta.cluster_id)))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

/// How long start-up keeps trying a port in use before it gives up. A
/// process killed with SIGKILL leaves its listening sockets open for a few
/// milliseconds after it is reaped (io_uring tears its pending accepts down
/// asynchronously; 5-10 ms measured, more under load), so an immediate
/// restart must wait for them; a port held by a live process is still an
/// error within this.
const LISTEN_RETRY: Duration = Duration::from_secs(2);

/// A listener on `address` that no other socket may share. glommio's own
/// `TcpListener::bind` sets `SO_REUSEPORT`, with which a second process
/// binds the same port and the kernel splits connections between the two;
/// std's bind sets only `SO_REUSEADDR` (rebinding over old connections in
/// TIME_WAIT), so a port in use is an error naming the address.
async fn listen(address: SocketAddr, for_whom: &str) -> Result<std::net::TcpListener, String> {
    let started = Instant::now();
    loop {
        match std::net::TcpListener::bind(address) {
            Ok(listener) => return Ok(listener),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && started.elapsed() < LISTEN_RETRY => {
                glommio::timer::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => return Err(format!("cannot listen for {for_whom} on {address}: {e}")),
        }
    }
}

/// Runs one node until a signal or its removal; an error for anything that
/// stops it otherwise (bad data directory, failed disk, join refused).
pub async fn serve(config: ServerConfig) -> Result<Stopped, String> {
    let me = MemberInfo {
        name: config.name.clone(),
        raft_addr: config.raft_advertise.clone(),
        client_addr: config.client_advertise.clone(),
        tls_client_addr: config.tls_client_advertise.clone(),
    };
    // Before anything reads or writes the data directory: the lock (one
    // process per directory), then both listeners (a port in use is an
    // error, never a port shared with another process). A failure here
    // leaves the directory as it was.
    let created = !config.datadir.exists();
    std::fs::create_dir_all(&config.datadir).map_err(|e| format!("{}: {e}", config.datadir.display()))?;
    let lock = super::lock::lock_datadir(&config.datadir)?;
    let listeners = async {
        let plain = match config.client_bind {
            Some(address) => Some(listen(address, "clients").await?),
            None => None,
        };
        let tls = match config.tls_client_bind {
            Some(address) => Some(listen(address, "TLS clients").await?),
            None => None,
        };
        let metrics = match config.metrics_bind {
            Some(address) => Some(listen(address, "metrics").await?),
            None => None,
        };
        Ok::<_, String>((plain, tls, metrics, listen(config.raft_bind, "peers").await?))
    }
    .await;
    let (client_listener, tls_client_listener, metrics_listener, raft_listener) = match listeners {
        Ok(listeners) => listeners,
        Err(e) if created => {
            lock.remove_new_directory(&config.datadir);
            return Err(e);
        }
        Err(e) => return Err(e),
    };
    // Held until `serve` returns, that is for the life of the process.
    let _lock = lock;
    let fresh = read_meta(&config.datadir)?.is_none();
    let (id, cluster_id, joining, layout) = match read_meta(&config.datadir)? {
        Some((id, cluster)) => {
            if config.join_via.is_some() {
                tracing::info!("the data directory already belongs to a member; --leaderaddr is ignored");
            }
            let layout = read_layout(&config.datadir)?;
            if config.shards.is_some_and(|asked| asked != layout.shards) {
                tracing::warn!(
                    shards = layout.shards,
                    "the cluster's shard count is fixed when it is made; --shards is ignored"
                );
            }
            if config.replicas.is_some_and(|asked| asked != layout.replicas) {
                tracing::warn!(
                    replicas = layout.replicas,
                    "the cluster's replica count is fixed when it is made; --replicas is ignored"
                );
            }
            (NodeId(id), cluster, false, layout)
        }
        None => match &config.join_via {
            Some(via) => {
                let (id, cluster, layout) = super::join::join(
                    via,
                    &me,
                    config.cluster_secret.as_ref(),
                    config.join_auth.as_ref(),
                    config.join_timeout,
                    &config.stop,
                    config.tls.as_deref(),
                )?;
                write_layout(&config.datadir, layout)?;
                (id, cluster, true, layout)
            }
            None => {
                let shards = config.shards.unwrap_or(1);
                let replicas = if shards == 1 { 0 } else { config.replicas.unwrap_or(DEFAULT_REPLICAS) };
                let layout = Layout { shards, replicas };
                write_layout(&config.datadir, layout)?;
                (FOUNDER, boot_seed(), false, layout)
            }
        },
    };
    let Layout { shards, replicas } = layout;
    let group_cores = group_cores(&config, shards, fresh)?;
    let disk = |subdir: &str| GlommioDisk::new(config.datadir.join(subdir));
    let options = WalOptions::new(id.0, cluster_id);
    let logs = turn::open_logs(disk, options, id, joining, shards, (0, group_cores)).await?;
    let (wals, recovered_groups) = (logs.wals, logs.recovered);
    if logs.bootstrapped {
        tracing::info!(cluster = format!("{cluster_id:016x}"), shards, "bootstrapped a new cluster");
    }
    let recovered_index = recovered_groups[&HOME].last_index();
    let mut node_config = NodeConfig::new(id);
    node_config.raft.heartbeat_ticks = config.heartbeat_ticks;
    node_config.raft.election_ticks = config.election_ticks;
    node_config.raft.read_lease = config.read_lease;
    node_config.raft.clock_drift_percent = config.clock_drift_percent;
    node_config.raft.planted_bug = config.planted_bug;
    node_config.snapshot_entries = config.snapshot_entries;
    node_config.log_retain_entries = config.snapshot_entries / 2;
    node_config.cluster_id = cluster_id;
    node_config.me = Some(me.clone());
    node_config.requirepass = config.requirepass.clone();
    node_config.cluster_secret = config.cluster_secret.clone();
    node_config.acl = config.acl.clone();
    node_config.cluster_mode = config.cluster_mode;
    // A forwarded write (or a read) waiting at a leader that died is only
    // answered by this timeout: after a kill -9 of the leader every client
    // writing through a follower waits for it, so it bounds the failover
    // time clients see. Two election timeouts: long enough for a new leader
    // to be elected and commit, short enough to fail over within a second.
    node_config.forward_timeout_ticks = config.election_ticks * 2;
    node_config.shards = shards;
    node_config.replicas = replicas;
    let mut router = core_router(&node_config, shards, (0, group_cores), recovered_groups)?;
    let setting = |k: &str, v: String| (k.to_string(), v);
    router.home_mut().shell_stats.config = vec![
        setting("maxclients", config.clients_max.to_string()),
        setting("proto-max-bulk-len", config.limits.value_bytes_max.to_string()),
        setting("client-query-buffer-limit", config.query_bytes_max.to_string()),
        setting("port", config.client_bind.map_or(0, |a| a.port()).to_string()),
        setting("tls-port", config.tls_client_bind.map_or(0, |a| a.port()).to_string()),
        setting(
            "bind",
            config.client_bind.or(config.tls_client_bind).map(|a| a.ip().to_string()).unwrap_or_default(),
        ),
        setting("dir", config.datadir.display().to_string()),
        setting("maxmemory", config.maxmemory.to_string()),
    ];

    tracing::info!(
        id = %config.name,
        node = id.0,
        cluster = format!("{cluster_id:016x}"),
        listen = %config.client_bind.map_or("off".into(), |a| a.to_string()),
        tls_listen = %config.tls_client_bind.map_or("off".into(), |a| a.to_string()),
        raft = %config.raft_bind,
        tls = config.tls.is_some(),
        datadir = %config.datadir.display(),
        shards,
        recovered_index = recovered_index.0,
        "cashe started"
    );

    let events: Mailbox<Event> = Mailbox::new(EVENTS_MAX);
    let book = Rc::new(RefCell::new(AddressBook::default()));
    // Executors: `--cores`, and at least one per core of key groups.
    let executors = config.cores.max(group_cores as usize);
    let shared = Arc::new(Shared::new(executors));
    let connections: Connections = Rc::default();
    let counters = Arc::new(ClientCounters::new(executors));

    let security = Rc::new(PeerSecurity { cluster_id, id, secret: config.cluster_secret.clone() });
    glommio::spawn_local(accept_peers(
        (config.adopt_listener)(raft_listener),
        events.clone(),
        security.clone(),
        book.clone(),
        config.tls.clone(),
        config.peer_connections_max,
    ))
    .detach();
    let client_listeners = [(client_listener, None), (tls_client_listener, config.tls.clone())];
    let client_listeners: Vec<_> =
        client_listeners.into_iter().filter_map(|(listener, tls)| Some((listener?, tls))).collect();
    let outgoing = group_cores::Outgoing {
        cores: if group_cores > 1 {
            (0..group_cores).map(|_| Mailbox::new(usize::MAX)).collect()
        } else {
            Vec::new()
        },
    };
    let mut core_ends = Vec::new();
    for k in 1..executors {
        let groups = if (k as u32) < group_cores {
            let (on_node, on_core) = group_cores::channels();
            core_ends.push((k as u32, on_node));
            let recovered = BTreeMap::new();
            Some(GroupCore {
                ends: on_core,
                start: CoreStart {
                    core: k as u32,
                    cores: group_cores,
                    node_config: node_config.clone(),
                    recovered,
                    id,
                    cluster_id,
                    joining,
                    shards,
                },
            })
        } else {
            None
        };
        let (on_node, on_helper) = cores::channels();
        let mut listeners = Vec::new();
        for (listener, tls) in &client_listeners {
            let listener = listener.try_clone().map_err(|e| format!("cannot share the client port: {e}"))?;
            listeners.push((listener, tls.clone()));
        }
        let (config, counters, shared) = (config.clone(), counters.clone(), shared.clone());
        glommio::LocalExecutorBuilder::new(placement(k, config.pin_cores))
            .name(&format!("cashe-{k}"))
            .spawn(move || client_executor(k, on_helper, listeners, config, counters, shared, groups))
            .map_err(|e| format!("cannot start executor {k}: {e}"))?;
        glommio::spawn_local(cores::serve_helper_on_node(on_node, events.clone(), connections.clone()))
            .detach();
    }
    spawn_acceptors(0, client_listeners, &events, &connections, &shared, &counters, &config);
    glommio::spawn_local(ticker(events.clone(), config.tick)).detach();
    let asks = Rc::new(http::Asks::default());
    if let Some(listener) = metrics_listener {
        glommio::spawn_local(http::serve((config.adopt_listener)(listener), asks.clone())).detach();
    }
    // Readiness probes asked and not answered yet, by number.
    let mut probes: BTreeMap<u64, Mailbox<Result<(), String>>> = BTreeMap::new();
    let mut next_probe = 0u64;

    let mut hello = Vec::new();
    let frame = PeerFrame::Hello {
        version: peer::WIRE_VERSION,
        cluster_id,
        from: id,
        raft_addr: me.raft_addr.clone(),
    };
    peer::encode_or_drop(&frame, &mut hello);
    let links = Rc::new(RefCell::new(Links {
        links: BTreeMap::new(),
        book: book.clone(),
        hello,
        tls: config.tls.clone(),
        security: security.clone(),
    }));
    let started = Instant::now();
    let mut stopping: Option<u64> = None;
    let mut ticks = 0u64;
    let mut clock = TickClock::new(config.tick);
    let mut refreshed_at = None;
    let mut stats = TurnStats::default();
    let mut disks = Disks::start(wals, &events, &shared);
    // The other cores of key groups, their reports and how they end.
    let from_cores = Rc::new(FromCores::default());
    for (core, ends) in core_ends {
        let (links, events, outgoing, from_cores) =
            (links.clone(), events.clone(), outgoing.clone(), from_cores.clone());
        let mailbox = outgoing.cores[core as usize].clone();
        let received = move |batch: Vec<FromCore>| {
            for item in batch {
                match item {
                    FromCore::Send(to, group, message) if to == id => {
                        let local = |from, group, message| {
                            let _ = events.try_push(Event::Peer { from, group, message });
                        };
                        outgoing.dispatch(id, Some(core), group, message, local);
                    }
                    FromCore::Send(to, group, message) => links.borrow_mut().send(to, group, message),
                    FromCore::Report(report, stats) => {
                        _ = from_cores.reports.borrow_mut().insert(core, (report, stats))
                    }
                    FromCore::Failed(why) => {
                        *from_cores.failed.borrow_mut() = Some(format!("core {core}: {why}"))
                    }
                    FromCore::Stopped => from_cores.stopped.set(from_cores.stopped.get() + 1),
                }
            }
        };
        glommio::spawn_local(group_cores::serve_core_on_node(ends, mailbox, received)).detach();
    }
    let mut home_view = None;
    loop {
        disks.check().await?;
        if let Some(why) = from_cores.failed.borrow_mut().take() {
            return Err(format!("stopping: {why}"));
        }
        let mut batch = events.take_all().await;
        disks.take_durable(&mut batch, &mut router);
        for (core, (report, _)) in from_cores.reports.borrow().iter() {
            router.set_report(*core, report.clone());
        }
        router.set_memory((config.used_memory)(), config.maxmemory);
        let now = wall_ms();
        ticks += clock.feed_due(&mut router, now);
        for event in batch {
            match event {
                Event::Closed(conn) => _ = connections.borrow_mut().remove(&conn),
                // Only a wake-up: the ticks due were fed above.
                Event::Tick => continue,
                // A message from another member, for the groups of another
                // core too (a message of this member's own was dispatched
                // where it was sent).
                Event::Peer { from, group, message } if from != id && group_cores > 1 => {
                    let local = |from, group, message| {
                        turn::feed(&mut router, Event::Peer { from, group, message }, now)
                    };
                    outgoing.dispatch(from, None, group, message, local);
                    continue;
                }
                _ => {}
            }
            turn::feed(&mut router, event, now);
        }
        for ask in asks.take() {
            match ask {
                http::Ask::Health(answer) => _ = answer.try_push(()),
                http::Ask::Ready(answer) => {
                    router.probe_readiness(next_probe);
                    probes.insert(next_probe, answer);
                    next_probe += 1;
                }
                http::Ask::Metrics(answer) => {
                    let disk = disk_totals(&disks, &stats, &from_cores);
                    let readings = Readings::read(&links.borrow().links, &counters, disk, &shared, started);
                    let mut families = router.metrics();
                    families.extend(readings.families());
                    let _ = answer.try_push(crate::node::metrics::render(&families));
                }
            }
        }
        if group_cores > 1 {
            let view = router.home_view();
            if home_view.as_ref() != Some(&view) {
                outgoing.home(&view);
                home_view = Some(view);
            }
        }
        // Perform the output until the router has nothing more to say.
        let send = |to: NodeId, group: GroupId, message: NodeMessage| {
            if to == id {
                let local = |from, group, message| {
                    let _ = events.try_push(Event::Peer { from, group, message });
                };
                outgoing.dispatch(id, Some(0), group, message, local);
            } else {
                links.borrow_mut().send(to, group, message);
            }
        };
        let reply = |conn: ConnId, reply: Reply| {
            if let Some(to) = connections.borrow().get(&conn) {
                to.push(conn, reply);
            }
        };
        turn::drain(&mut router, now, send, reply, |group, job| disks.hand_out(group, job), &mut stats);
        for (n, answer) in router.take_readiness() {
            if let Some(to) = probes.remove(&n) {
                let _ = to.try_push(answer);
            }
        }
        if let Some(reason) = router.fatal() {
            return Err(format!("stopping: {reason}"));
        }
        if router.is_removed() {
            tracing::info!("this node was removed from the cluster; stopping");
            return Ok(Stopped::Removed);
        }
        // Once per 50 ticks, not on every loop round of that tick: it
        // reads files in /proc.
        if ticks.is_multiple_of(50) && refreshed_at != Some(ticks) {
            refreshed_at = Some(ticks);
            let disk = disk_totals(&disks, &stats, &from_cores);
            let readings = Readings::read(&links.borrow().links, &counters, disk, &shared, started);
            refresh(&mut router, &book, &readings);
        }
        if config.stop.load(Ordering::Relaxed) {
            let ticks_now = ticks;
            let deadline = *stopping.get_or_insert_with(|| {
                match router.transfer_leadership() {
                    Some(to) => {
                        tracing::info!(to = %router.home().member_name(to), "stopping: handing over leadership")
                    }
                    None => tracing::info!("stopping"),
                }
                ticks_now + u64::from(config.election_ticks) * 2
            });
            if !router.transferring() || ticks >= deadline {
                // Nothing waiting for the disk was acknowledged, but a clean
                // stop leaves the log as complete as it can.
                disks.wait_idle(config.tick * config.election_ticks).await;
                // The other cores stop by themselves, as clean: wait for them
                // as long.
                let limit = config.tick * config.election_ticks * 3;
                let waited = Instant::now();
                while from_cores.stopped.get() + 1 < group_cores as usize && waited.elapsed() < limit {
                    glommio::timer::sleep(config.tick).await;
                }
                tracing::info!(leader = router.home().raft().is_leader(), "stopped");
                return Ok(Stopped::Signal);
            }
        }
    }
}

/// Every log's disk work, of every core, with executor 0's loop's rounds.
fn disk_totals(disks: &Disks, stats: &TurnStats, from_cores: &FromCores) -> TurnStats {
    let mut total = disks.stats();
    total.rounds = stats.rounds;
    for (_, core) in from_cores.reports.borrow().values() {
        total.add(core);
    }
    total
}

/// What the other cores of key groups told executor 0.
#[derive(Default)]
struct FromCores {
    /// Each core's last report and disk counters.
    reports: RefCell<BTreeMap<u32, (crate::node::CoreReport, TurnStats)>>,
    /// Why one failed, if one did.
    failed: RefCell<Option<String>>,
    /// Cores that finished a clean stop.
    stopped: std::cell::Cell<usize>,
}

/// The peer links of executor 0, shared by its loop and the relays of the
/// other cores (what their routers send).
struct Links {
    links: BTreeMap<NodeId, PeerLink>,
    book: Rc<RefCell<AddressBook>>,
    hello: Vec<u8>,
    tls: Option<Arc<TlsSettings>>,
    security: Rc<PeerSecurity>,
}

impl Links {
    fn send(&mut self, to: NodeId, group: GroupId, message: NodeMessage) {
        let (book, hello, tls, security) = (&self.book, &self.hello, &self.tls, &self.security);
        let link = self.links.entry(to).or_insert_with(|| {
            PeerLink::start(to, book.clone(), hello.clone(), tls.clone(), security.clone())
        });
        link.send(group, message);
    }
}

/// An executor's logs, each with its disk task.
struct Disks {
    disks: BTreeMap<LogId, LogDisk>,
}

impl Disks {
    fn start(wals: Vec<(LogId, Wal<GlommioDisk>)>, events: &Mailbox<Event>, shared: &Arc<Shared>) -> Disks {
        let mut disks = BTreeMap::new();
        for (log, wal) in wals {
            let disk =
                LogDisk { jobs: Mailbox::new(usize::MAX), state: Rc::default(), handed_out: BTreeMap::new() };
            let task = disk_task(wal, disk.jobs.clone(), events.clone(), disk.state.clone(), shared.clone());
            glommio::spawn_local(task).detach();
            disks.insert(log, disk);
        }
        Disks { disks }
    }

    /// Waits while a disk is too far behind; a disk's failure.
    async fn check(&self) -> Result<(), String> {
        for disk in self.disks.values() {
            let backlog = disk.backlog();
            if backlog > DISK_BACKLOG_MAX {
                tracing::warn!(backlog, "the disk is behind; waiting for it");
                wait_for_disk(disk, Duration::MAX).await;
            }
            if let Some(e) = disk.state.failed.borrow_mut().take() {
                return Err(format!("stopping: {e}"));
            }
        }
        Ok(())
    }

    /// What the disks made durable since the last turn, whether or not
    /// their wake-up events fit, into `batch`; the groups they ask to
    /// compact, to `router`.
    fn take_durable(&self, batch: &mut Vec<Event>, router: &mut Router) {
        for disk in self.disks.values() {
            for (group, durable) in disk.state.fresh.take() {
                batch.push(Event::Persisted(group, durable));
            }
            for group in disk.state.compact.take() {
                router.compact(group);
            }
        }
    }

    /// Hands `group`'s job to its log's disk task.
    fn hand_out(&mut self, group: GroupId, job: DiskJob) {
        let Some(disk) = self.disks.get_mut(&LogId::of(group)) else { return };
        if let DiskJob::Append(records) = &job {
            if let Some((last, _)) = records.last() {
                disk.handed_out.insert(group, *last);
            }
        }
        let _ = disk.jobs.try_push((group, job));
    }

    /// The disks' work so far.
    fn stats(&self) -> TurnStats {
        let mut stats = TurnStats::default();
        for disk in self.disks.values() {
            stats.add(&disk.state.stats.get());
        }
        stats
    }

    /// Waits until everything handed out is durable, for at most `limit`.
    async fn wait_idle(&self, limit: Duration) {
        for disk in self.disks.values() {
            wait_for_disk(disk, limit).await;
        }
    }
}

/// One log's disk: its task, the jobs handed to it, and per group the last
/// record handed out.
struct LogDisk {
    jobs: Mailbox<(GroupId, DiskJob)>,
    state: Rc<DiskState>,
    handed_out: BTreeMap<GroupId, Lsn>,
}

impl LogDisk {
    /// Records handed out and not yet durable, in the group furthest behind.
    fn backlog(&self) -> u64 {
        let behind = |(group, lsn): (&GroupId, &Lsn)| lsn.0.saturating_sub(self.state.durable(*group).0);
        self.handed_out.iter().map(behind).max().unwrap_or(0)
    }
}

/// How a cluster's key space is laid out, fixed when it is made: the
/// groups it is in, and on how many members each key group is (0: every
/// member; `node::placement`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    pub shards: u32,
    pub replicas: u32,
}

/// Members each key group is on in a new cluster of several shards
/// (`--replicas`).
pub const DEFAULT_REPLICAS: u32 = 3;

/// The file holding the cluster's layout (`Layout`): the shard count, and
/// after it the replica count when not every member holds every group;
/// written once when the data directory becomes a member's (before its
/// `meta`).
const SHARDS_FILE: &str = "shards";

/// The layout a member's data directory was made with: one shard for a
/// directory made before shards (no file), every member holding every
/// group for one made before placement (no replica count).
pub fn read_layout(datadir: &std::path::Path) -> Result<Layout, String> {
    let path = datadir.join(SHARDS_FILE);
    let parse = |text: &str| -> Option<Layout> {
        let mut words = text.split_whitespace().map(str::parse::<u32>);
        let shards = words.next()?.ok().filter(|n| *n >= 1)?;
        let replicas = match words.next() {
            None => 0,
            Some(replicas) => replicas.ok()?,
        };
        words.next().is_none().then_some(Layout { shards, replicas })
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => parse(&text).ok_or_else(|| format!("{}: not a shard count: {text:?}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Layout { shards: 1, replicas: 0 }),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

/// Writes the layout durably (`write_durably`).
pub(crate) fn write_layout(datadir: &std::path::Path, layout: Layout) -> Result<(), String> {
    let text = match layout {
        Layout { shards, replicas: 0 } => format!("{shards}\n"),
        Layout { shards, replicas } => format!("{shards} {replicas}\n"),
    };
    write_durably(datadir, SHARDS_FILE, &text)
}

/// Writes `text` to the file `name` of the data directory durably (a
/// temporary file, synced, renamed, the directory synced).
pub(crate) fn write_durably(datadir: &std::path::Path, name: &str, text: &str) -> Result<(), String> {
    use std::io::Write;
    let path = datadir.join(name);
    let temporary = datadir.join(format!("{name}.tmp"));
    let write = || -> std::io::Result<()> {
        let mut file = std::fs::File::create(&temporary)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&temporary, &path)?;
        std::fs::File::open(datadir)?.sync_all()
    };
    write().map_err(|e| format!("{}: {e}", path.display()))
}

/// Refreshes what the loop shares with others: peer addresses from the
/// directory, and the counters INFO prints.
fn refresh(router: &mut Router, book: &Rc<RefCell<AddressBook>>, readings: &Readings) {
    let (sent, received) = router.message_counts();
    let (awake, quiet) = router.activity();
    let groups = router.groups().count();
    let node = router.home_mut();
    let directory: BTreeMap<NodeId, String> =
        node.directory().members.iter().map(|(id, info)| (*id, info.raft_addr.clone())).collect();
    book.borrow_mut().directory = directory;
    book.borrow_mut().names = node.member_names();
    let pair = |k: &str, v: String| (k.to_string(), v);
    let r = readings;
    node.shell_stats.server = vec![
        pair("process_id", std::process::id().to_string()),
        pair("uptime_in_seconds", r.uptime.as_secs().to_string()),
        pair("executors", r.executors.to_string()),
    ];
    node.shell_stats.rss_bytes = r.rss_bytes;
    node.shell_stats.system_memory_bytes = r.system_memory_bytes;
    node.shell_stats.cpu = r.cpu;
    let latency = &r.write_latency_us;
    node.shell_stats.stats = vec![
        pair("total_connections_received", r.connections_received.to_string()),
        pair("rejected_connections", r.connections_rejected.to_string()),
        pair(
            "executor_connections_received",
            r.by_executor.iter().map(u64::to_string).collect::<Vec<_>>().join(","),
        ),
        pair("loop_rounds", r.disk.rounds.to_string()),
        pair("wal_fsyncs", r.disk.fsyncs.to_string()),
        pair("wal_records", r.disk.records.to_string()),
        pair("wal_records_per_fsync", format!("{:.2}", r.disk.records as f64 / r.disk.fsyncs.max(1) as f64)),
        pair("snapshots_saved", r.disk.snapshots.to_string()),
        pair("peer_messages_sent", sent.to_string()),
        pair("peer_messages_received", received.to_string()),
        pair("raft_groups", groups.to_string()),
        pair("raft_groups_awake", awake.to_string()),
        pair("raft_groups_led_quietly", quiet.to_string()),
        pair("peer_messages_dropped", r.peer_messages_dropped.to_string()),
        pair("write_latency_samples", latency.len().to_string()),
        pair("write_latency_p50_us", latency.value_at_quantile(0.5).to_string()),
        pair("write_latency_p99_us", latency.value_at_quantile(0.99).to_string()),
        pair("write_latency_p999_us", latency.value_at_quantile(0.999).to_string()),
        pair("write_latency_max_us", latency.max().to_string()),
    ];
}

/// Waits until the disk made everything handed out durable, failed, or
/// `limit` passed.
async fn wait_for_disk(disk: &LogDisk, limit: Duration) {
    let started = Instant::now();
    while disk.backlog() > 0 && disk.state.failed.borrow().is_none() && started.elapsed() < limit {
        glommio::timer::sleep(Duration::from_micros(200)).await;
    }
}

/// The ticks the core is owed: as many as whole tick lengths have passed
/// on the monotonic clock since the loop started. A loop turn feeds them
/// before anything else, so however late a turn runs, or however many
/// wake-ups the ticker's full mailbox dropped, a node's tick count is never
/// more than the current turn behind real time: the bound the read lease
/// counts on (`raft::Config::lease_ticks`). The ticker only wakes the loop.
struct TickClock {
    started: Instant,
    tick: Duration,
    fed: u64,
}

impl TickClock {
    fn new(tick: Duration) -> TickClock {
        TickClock { started: Instant::now(), tick, fed: 0 }
    }

    /// Feeds `router` the ticks due since the last call; returns how many.
    fn feed_due(&mut self, router: &mut Router, now_ms: u64) -> u64 {
        let elapsed = (self.started.elapsed().as_nanos() / self.tick.as_nanos().max(1)) as u64;
        let due = elapsed.saturating_sub(self.fed);
        self.fed += due;
        for _ in 0..due {
            turn::feed(router, Event::Tick, now_ms);
        }
        due
    }
}

async fn ticker(events: Mailbox<Event>, tick: Duration) {
    let mut next = Instant::now() + tick;
    loop {
        let now = Instant::now();
        if next > now {
            glommio::timer::sleep(next - now).await;
        }
        next += tick;
        // A late loop gets its ticks late, never piled up unboundedly.
        if events.try_push(Event::Tick).is_err() {
            next = Instant::now() + tick;
        }
    }
}

/// Accepts peer connections, at most `open_max` open at once (a peer
/// keeps one; more is a reconnect in progress or someone who is not a
/// peer): the rest are closed at once, and logged (sparingly).
async fn accept_peers(
    listener: TcpListener,
    events: Mailbox<Event>,
    security: Rc<PeerSecurity>,
    book: Rc<RefCell<AddressBook>>,
    tls: Option<Arc<TlsSettings>>,
    open_max: usize,
) {
    let open = Rc::new(std::cell::Cell::new(0usize));
    let mut refused = 0u64;
    loop {
        match listener.accept().await {
            Ok(stream) if open.get() >= open_max => {
                refused += 1;
                if refused.is_power_of_two() {
                    let remote = stream.peer_addr().map(|a| a.to_string()).unwrap_or_default();
                    tracing::warn!(%remote, open = open.get(), refused, "refused a peer connection: too many open");
                }
                drop(stream);
            }
            Ok(stream) => {
                open.set(open.get() + 1);
                let (open, events, security, book) =
                    (open.clone(), events.clone(), security.clone(), book.clone());
                let tls = tls.clone();
                glommio::spawn_local(async move {
                    peer::inbound(stream, tls, events, security, book).await;
                    open.set(open.get() - 1);
                })
                .detach();
            }
            Err(e) => {
                tracing::warn!(error = %e, "accepting a peer connection failed");
                glommio::timer::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// Redis's protected-mode refusal (its first three sentences word for
/// word), with cashe's ways out.
const PROTECTED_MODE_DENIED: &str = "-DENIED Redis is running in protected mode because protected mode is \
    enabled and no password is set for the default user. In this mode connections are only accepted from \
    the loopback interface. If you want to connect from external computers to cashe you may adopt one of \
    the following solutions: 1) Set a password for the default user with --requirepass (or give users \
    with --aclfile) and restart. 2) Restart with '--protected-mode no', but MAKE SURE the node is not \
    publicly accessible from the internet if you do so. NOTE: You only need to do one of the above things \
    in order for the node to start accepting connections from the outside.\r\n";

/// Whether the default user takes any password (Redis's `nopass`): no
/// --requirepass, and no password for it in --aclfile.
fn default_user_is_open(config: &ServerConfig) -> bool {
    match &config.acl {
        Some(acl) => acl.user(b"default").is_none_or(|user| user.is_nopass()),
        None => config.requirepass.is_none(),
    }
}

/// Whether a new connection must log in before anything else (Redis's
/// `authRequired`): the default user has a password or is off.
fn auth_required(config: &ServerConfig) -> bool {
    match &config.acl {
        Some(acl) => acl.user(b"default").is_none_or(|user| !user.is_nopass() || !user.is_enabled()),
        None => config.requirepass.is_some(),
    }
}

/// Whether a client connects from 127.0.0.1 or ::1, the addresses
/// Redis's protected mode lets in (other 127.x.y.z addresses are not).
fn is_loopback(stream: &glommio::net::TcpStream) -> bool {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    match stream.peer_addr().map(|a| a.ip()) {
        Ok(IpAddr::V4(ip)) => ip == Ipv4Addr::LOCALHOST,
        Ok(IpAddr::V6(ip)) => ip == Ipv6Addr::LOCALHOST || ip.to_ipv4_mapped() == Some(Ipv4Addr::LOCALHOST),
        Err(_) => false,
    }
}

/// Writes a refusal to a plain client and closes its connection (a TLS
/// client is closed without it: it could not read it before a handshake).
fn refuse(stream: glommio::net::TcpStream, refusal: &'static [u8], plain: bool) {
    glommio::spawn_local(async move {
        use futures_lite::AsyncWriteExt;
        let mut stream = stream;
        if plain {
            let _ = stream.write_all(refusal).await;
        }
        let _ = stream.close().await;
    })
    .detach();
}

/// Serves one client port, plain (`tls` is `None`) or TLS, on this
/// executor (number `executor`): its connections' events go to `events`,
/// and the replies the node releases for them arrive through
/// `connections`.
#[allow(clippy::too_many_arguments)]
async fn accept_clients(
    executor: usize,
    listener: TcpListener,
    tls: Option<Arc<TlsSettings>>,
    events: Mailbox<Event>,
    connections: Connections,
    shared: Arc<Shared>,
    counters: Arc<ClientCounters>,
    config: ServerConfig,
) {
    loop {
        let stream = match listener.accept().await {
            Ok(stream) => stream,
            Err(e) => {
                tracing::warn!(error = %e, "accepting a client connection failed");
                glommio::timer::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        counters.accepted(executor);
        if counters.open.load(Ordering::Relaxed) >= config.clients_max {
            counters.rejected.fetch_add(1, Ordering::Relaxed);
            refuse(stream, b"-ERR max number of clients reached\r\n", tls.is_none());
            continue;
        }
        if config.protected_mode && default_user_is_open(&config) && !is_loopback(&stream) {
            refuse(stream, PROTECTED_MODE_DENIED.as_bytes(), tls.is_none());
            continue;
        }
        let conn = counters.next_conn();
        counters.open.fetch_add(1, Ordering::Relaxed);
        let replies = Mailbox::new(usize::MAX);
        connections.borrow_mut().insert(conn, ReplyTo::Local(replies.clone()));
        let transport = if tls.is_some() { Transport::Tls } else { Transport::Plain };
        events.push(Event::Opened(conn, transport)).await;
        let serve = client::serve(
            stream,
            tls.clone(),
            config.tls.is_some(),
            conn,
            events.clone(),
            replies,
            shared.clone(),
            config.limits,
            config.query_bytes_max,
            auth_required(&config),
        );
        let (connections, counters) = (connections.clone(), counters.clone());
        glommio::spawn_local(async move {
            serve.await;
            connections.borrow_mut().remove(&conn);
            counters.open.fetch_sub(1, Ordering::Relaxed);
        })
        .detach();
    }
}

/// An acceptor task per client listener on executor `executor`.
fn spawn_acceptors(
    executor: usize,
    listeners: Vec<(std::net::TcpListener, Option<Arc<TlsSettings>>)>,
    events: &Mailbox<Event>,
    connections: &Connections,
    shared: &Arc<Shared>,
    counters: &Arc<ClientCounters>,
    config: &ServerConfig,
) {
    for (listener, tls) in listeners {
        let (events, connections, shared) = (events.clone(), connections.clone(), shared.clone());
        let listener = (config.adopt_listener)(listener);
        glommio::spawn_local(accept_clients(
            executor,
            listener,
            tls,
            events,
            connections,
            shared,
            counters.clone(),
            config.clone(),
        ))
        .detach();
    }
}

/// A client executor (`cores`): accepts on its copies of the client
/// listeners and serves those connections, their commands answered by the
/// node on executor 0. Runs until executor 0 is gone.
async fn client_executor(
    executor: usize,
    ends: cores::HelperEnds,
    listeners: Vec<(std::net::TcpListener, Option<Arc<TlsSettings>>)>,
    config: ServerConfig,
    counters: Arc<ClientCounters>,
    shared: Arc<Shared>,
    groups: Option<GroupCore>,
) {
    if let Some(groups) = groups {
        glommio::spawn_local(group_core(groups, config.clone(), shared.clone())).detach();
    }
    let events: Mailbox<Event> = Mailbox::new(EVENTS_MAX);
    let connections: Connections = Rc::default();
    spawn_acceptors(executor, listeners, &events, &connections, &shared, &counters, &config);
    cores::serve_node_on_helper(ends, events, connections).await;
}

/// What a core of key groups other than 0 starts from: its ends of the
/// channels to executor 0, and what its loop starts from.
struct GroupCore {
    ends: group_cores::CoreEnds,
    start: CoreStart,
}

/// What the loop of a core of key groups starts from.
struct CoreStart {
    core: u32,
    cores: u32,
    node_config: NodeConfig,
    recovered: BTreeMap<GroupId, crate::raft::Recovered>,
    id: NodeId,
    cluster_id: u64,
    joining: bool,
    shards: u32,
}

/// Runs core `setup.start.core`'s key groups until the member stops; tells
/// executor 0 how it ended.
async fn group_core(setup: GroupCore, config: ServerConfig, shared: Arc<Shared>) {
    let GroupCore { ends, start } = setup;
    let outgoing: Mailbox<FromCore> = Mailbox::new(usize::MAX);
    let events: Mailbox<Event> = Mailbox::new(EVENTS_MAX);
    let home = Rc::new(RefCell::new(None));
    // The channels first: executor 0 must hear of a core that fails before
    // its loop runs (a log it cannot open), or the member would go on
    // without these groups.
    glommio::spawn_local(group_cores::serve_node_on_core(
        ends,
        outgoing.clone(),
        events.clone(),
        home.clone(),
    ))
    .detach();
    let end = match run_group_core(start, &config, &shared, (outgoing.clone(), events, home)).await {
        Ok(()) => FromCore::Stopped,
        Err(why) => {
            tracing::error!(%why, "a core of key groups stopped");
            FromCore::Failed(why)
        }
    };
    let _ = outgoing.try_push(end);
    // The relay sends it; the process ends with executor 0.
    loop {
        glommio::timer::sleep(Duration::from_secs(3600)).await;
    }
}

/// The loop of a core of key groups: executor 0's, for its groups alone,
/// with its own log, and executor 0 in place of peer links and clients.
async fn run_group_core(
    start: CoreStart,
    config: &ServerConfig,
    shared: &Arc<Shared>,
    (outgoing, events, home): (Mailbox<FromCore>, Mailbox<Event>, Rc<RefCell<Option<crate::node::HomeView>>>),
) -> Result<(), String> {
    let CoreStart { core, cores, node_config, mut recovered, id, cluster_id, joining, shards } = start;
    let disk = |subdir: &str| GlommioDisk::new(config.datadir.join(subdir));
    let options = WalOptions::new(id.0, cluster_id);
    let logs = turn::open_logs(disk, options, id, joining, shards, (core, cores)).await?;
    recovered.extend(logs.recovered);
    let mut router = core_router(&node_config, shards, (core, cores), recovered)?;
    glommio::spawn_local(ticker(events.clone(), config.tick)).detach();
    let mut disks = Disks::start(logs.wals, &events, shared);
    let (mut ticks, mut stats, mut stopping, mut reported_at) = (0u64, TurnStats::default(), None, None);
    let mut clock = TickClock::new(config.tick);
    tracing::info!(
        core,
        groups = router.groups().filter(|(g, _)| router.mine(*g)).count(),
        "a core of key groups started"
    );
    loop {
        disks.check().await?;
        let mut batch = events.take_all().await;
        disks.take_durable(&mut batch, &mut router);
        if let Some(view) = home.borrow_mut().take() {
            router.set_home_view(view);
        }
        router.set_memory((config.used_memory)(), config.maxmemory);
        let now = wall_ms();
        ticks += clock.feed_due(&mut router, now);
        for event in batch.into_iter().filter(|event| !matches!(event, Event::Tick)) {
            turn::feed(&mut router, event, now);
        }
        let send = |to: NodeId, group: GroupId, message: NodeMessage| {
            let _ = outgoing.try_push(FromCore::Send(to, group, message));
        };
        turn::drain(&mut router, now, send, |_, _| {}, |group, job| disks.hand_out(group, job), &mut stats);
        if let Some(reason) = router.fatal() {
            return Err(reason.to_string());
        }
        if ticks.is_multiple_of(50) && reported_at != Some(ticks) {
            reported_at = Some(ticks);
            let mut disk_stats = disks.stats();
            disk_stats.rounds = stats.rounds;
            let _ = outgoing.try_push(FromCore::Report(router.report(), disk_stats));
        }
        if config.stop.load(Ordering::Relaxed) {
            let ticks_now = ticks;
            let deadline = *stopping.get_or_insert_with(|| {
                router.transfer_leadership();
                ticks_now + u64::from(config.election_ticks) * 2
            });
            if !router.transferring() || ticks >= deadline {
                disks.wait_idle(config.tick * config.election_ticks).await;
                return Ok(());
            }
        }
    }
}

/// The router of core `core` of `cores`: its groups from what their logs
/// recovered, every other group an empty node it never runs.
fn core_router(
    node_config: &NodeConfig,
    shards: u32,
    (core, cores): (u32, u32),
    mut recovered: BTreeMap<GroupId, crate::raft::Recovered>,
) -> Result<Router, String> {
    let mut nodes = BTreeMap::new();
    for group in crate::node::group_ids(shards) {
        let recovered = recovered.remove(&group).unwrap_or_default();
        let node = Node::restore(node_config.for_group(group), boot_seed(), recovered)
            .map_err(|e| format!("group {}: {e}", group.0))?;
        nodes.insert(group, node);
    }
    Ok(Router::new(shards, nodes).on_core(core, cores))
}

/// The file holding how many cores the member's key groups are on (fixed
/// when its data directory is made: each core's groups are in that core's
/// log).
pub(crate) const CORES_FILE: &str = "cores";

/// The cores a data directory's key groups are on (1 without the file:
/// made before groups ran on several cores).
pub fn read_group_cores(datadir: &std::path::Path) -> Result<u32, String> {
    let path = datadir.join(CORES_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => text
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=crate::node::CORES_MAX).contains(n))
            .ok_or_else(|| format!("{}: not a core count: {text:?}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(1),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

/// The cores the member's key groups are on: `--cores` for a new data
/// directory of several shards (written to `cores`), else what the
/// directory says (1 without the file: made before groups ran on several
/// cores).
fn group_cores(config: &ServerConfig, shards: u32, fresh: bool) -> Result<u32, String> {
    if fresh {
        let cores = if shards > 1 { (config.cores as u32).clamp(1, crate::node::CORES_MAX) } else { 1 };
        write_durably(&config.datadir, CORES_FILE, &format!("{cores}\n"))?;
        return Ok(cores);
    }
    let cores = read_group_cores(&config.datadir)?;
    if shards > 1 && cores as usize != config.cores {
        tracing::warn!(
            cores,
            "the key groups stay on the cores they were on when the data directory was made; --cores sets the executors serving clients"
        );
    }
    Ok(cores)
}
