//! Seeded chaos on turmoil: real `cashe::node::Router`s (one `Node` per
//! Raft group: one group, or the home group and `Options::shards` key
//! groups) on simulated hosts,
//! talking over turmoil's TCP with the real peer wire and the real RESP
//! protocol, storing through the real WAL on the simulated disk, while a
//! nemesis injects faults and clients record a history that is checked for
//! linearizability. Everything is single-threaded and drawn from the run's
//! seed (turmoil's own randomness included), so a seed replays exactly.
//!
//! # Fault model (all decisions from the seed)
//! During the chaos phase, every 200–1,200 ms of simulated time the nemesis
//! picks one of:
//! - **partitions**: isolate one node (a minority), isolate the current
//!   leader, a bridge (cut one link, the third node sees both sides), an
//!   asymmetric cut (one direction only); or repair every link;
//! - **message faults** at the peer shell: drop (0–20%) and duplicate
//!   (0–10%, Raft messages only: the transport never resends, so a
//!   forwarded client write is delivered at most once) peer messages, and
//!   latency spikes (turmoil's maximum message
//!   latency raised to 10–80 ms);
//! - **crash + restart** of one node: its software stops mid-whatever, its
//!   disk keeps the fsynced bytes and maybe a prefix of the unsynced ones,
//!   possibly with a torn last byte; it restarts 100–1,500 ms later;
//! - **power loss**: every node crashes at once the same way (the case where
//!   only fsynced data can save an acknowledged write);
//! - **pause**: every link of one node held for 100–1,000 ms, then released
//!   (the node sees a burst of late messages, as after a long GC pause);
//! - **leader churn**: for 1–3 s, every 5–60 ms, repair everything and
//!   isolate whoever leads now, and half the time cut a newly elected
//!   leader off at once, losing its first messages (many short terms with
//!   entries left on minorities: the ground of the Figure 8 scenario);
//! - **clock**: one node's wall clock jumps by −2 s to +5 s (the jumps add
//!   up; a node's clock never runs backwards within one boot, it stands
//!   still until real time catches up), while TTLs are set and read;
//! - **membership**: once per run a fourth node joins through a random
//!   member; later one node (never the founder) is removed with
//!   `CLUSTER REMOVE`, both while faults continue.
//!
//! Every peer link authenticates with the cluster secret
//! (`node::handshake`, nonces from the seed) before its first frame, and
//! the joining node proves the secret in its `CLUSTER JOIN`, as with
//! `--cluster-secret` in production; partitions and crashes land inside
//! handshakes too.
//!
//! Each fsync takes 0.2–8 ms of simulated time (one in twenty 20–60 ms), so
//! crashes land inside them.
//! When the chaos phase ends every fault is repaired and crashed nodes
//! restart; clients keep going for a while, then each key is read through
//! every live member. Safety must hold throughout; progress is required
//! after healing (the final reads must be answered).
//!
//! # Workload
//! Four clients, each keeping one connection per member, send to random
//! live members: pipelines of 1–4 commands (SET, GET, INCR, CAS, DEL; half
//! the time all on one key, so a read right behind its connection's own
//! write is common), MULTI/EXEC transactions of 1–3 commands on one key,
//! and WATCH-protected increments of one counter (`WATCHED_COUNTER`:
//! WATCH and GET pipelined, then MULTI, SET, EXEC, retried on a nil EXEC).
//! One more client owns the keys `t0`..`t3` and sends one command at a time:
//! SET with and without PX, PEXPIRE, PERSIST, GET and PTTL (`ttl`).
//!
//! # Checks
//! - linearizability of every key's history (`linearizability`), with
//!   connection order (operations of one connection take effect in the
//!   order sent), `-TIMEOUT` and lost connections as unknown outcomes; the
//!   final reads make a lost acknowledged write a violation;
//! - TTLs follow the proposing leader's clock: every result on the `t` keys
//!   must be possible for clocks inside the bounds the simulator saw
//!   (`ttl::check`);
//! - the watched counter ends at exactly the number of EXECs that ran
//!   (between those known to have run and those plus the unknown ones);
//! - at most one leader per term (observed after every turn of every node);
//! - every index committed anywhere holds the same entry everywhere;
//! - after healing, all live members have applied the same index and hold
//!   equal key spaces;
//! - with several shards, a leader is quiet only while every member of its
//!   term holds its whole log, and once idle every group goes quiet
//!   (`raft::quiesce`).

use crate::linearizability::{self, Call, Operation, Outcome};
use crate::trace::Trace;
use crate::ttl::{self, TtlCall, TtlOperation, TtlOutcome};
use cashe::node::handshake::{self, ClusterSecret, Link};
use cashe::node::wire::{self, PeerFrame, Received};
use cashe::node::{
    core_for_message, core_of, join_answer, join_command, ConnId, GroupId, JoinAnswer, MemberInfo, Node,
    NodeConfig, NodeMessage, Router, Transport, FOUNDER, HOME,
};
use cashe::protocol::reply::{decode, encode_command};
use cashe::protocol::{Limits, Parser, Reply, Request};
use cashe::raft::{Index, NodeId, PlantedBug, SplitMix64, Term};
use cashe::turn::{self, DiskJob, LogId, TurnStats};
use cashe::wal::disk::{Disk, DiskFile};
use cashe::wal::sim_disk::{CrashOptions, SimDisk, SimFile};
use cashe::wal::WalOptions;
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::rc::Rc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use turmoil::net::{TcpListener, TcpStream};

const CLUSTER_ID: u64 = 0xca5e;
/// Every simulated node's `--cluster-secret`.
const CLUSTER_SECRET: &[u8] = b"simulated cluster secret";
const EPOCH_MS: u64 = 1_700_000_000_000;
const CLIENT_PORT: u16 = 3000;
const RAFT_PORT: u16 = 4000;
/// A tick's nominal length by default (`Options::tick_ms`); each boot's
/// clock runs at a rate of its own (`Options::clock_drift_percent`).
pub const TICK_MS: u64 = 10;
/// The clock drift every simulated node's `raft::Config` allows for: its
/// read lease is `raft::Config::lease_ticks` at this bound.
pub const LEASE_DRIFT_BOUND_PERCENT: u32 = 10;
/// The host whose node founds the cluster (member `FOUNDER`).
const FOUNDER_HOST: &str = "n1";
/// The server's default `--max-query-bytes`.
const QUERY_BYTES_MAX: usize = 64 << 20;

#[derive(Clone, Debug)]
pub struct Options {
    pub nodes: usize,
    pub clients: u64,
    pub keys: usize,
    /// Simulated milliseconds of faults.
    pub chaos_ms: u64,
    /// Simulated milliseconds of fault-free load after healing.
    pub calm_ms: u64,
    pub membership: bool,
    pub bug: PlantedBug,
    /// Groups the key space is in (`--shards`): 1 runs everything in the
    /// home group, more puts the keys in groups of their own, every member
    /// a replica of each, the key groups' records in one shared log on the
    /// member's disk (beside the home group's own).
    pub shards: u32,
    /// Members each key group is placed on (`--replicas`, 0: every member):
    /// with 3 and the fourth member joining, groups move to it.
    pub replicas: u32,
    /// Cores each member runs its key groups on (`--cores`): a router per
    /// core, each with its own shared log, talking through the member
    /// itself as the server's executors do (`runtime/group_cores.rs`).
    pub cores: u32,
    /// Leaders serve reads from leases (`raft::Config::read_lease`), which
    /// allow for a drift of `LEASE_DRIFT_BOUND_PERCENT`.
    pub read_lease: bool,
    /// How far each node's clock really runs fast or slow: every boot
    /// draws a tick length within this many percent of `TICK_MS` (whole
    /// milliseconds, the simulation's step). Within the lease's bound by
    /// default; above it, leases can serve stale reads and the checker
    /// must say so.
    pub clock_drift_percent: u32,
    /// A tick's nominal length in milliseconds (`TICK_MS`). Longer ticks
    /// make leases and election timeouts long beside the network's and
    /// the disk's delays.
    pub tick_ms: u64,
    /// Clients besides `clients` that only read (one GET at a time, on any
    /// node): a client that writes through a node cut off waits out its
    /// write's timeout, a reader never does, so readers keep asking a
    /// deposed leader while writers get through elsewhere.
    pub readers: u64,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            nodes: 3,
            clients: 4,
            keys: 16,
            chaos_ms: 12_000,
            calm_ms: 3_000,
            membership: true,
            bug: PlantedBug::None,
            shards: 1,
            cores: 1,
            replicas: 0,
            read_lease: true,
            clock_drift_percent: LEASE_DRIFT_BOUND_PERCENT,
            tick_ms: TICK_MS,
            readers: 0,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    pub digest: u64,
    pub operations: usize,
    pub unknown: usize,
    /// Operations on the TTL keys (checked by `ttl::check`).
    pub ttl_operations: usize,
    pub faults: u64,
    pub crashes: u64,
    pub simulated_ms: u64,
}

#[derive(Clone, Debug)]
pub struct Failure {
    pub what: String,
    pub trace: Vec<String>,
}

/// State shared by the hosts, the clients and the nemesis of one run.
struct Shared {
    trace: Trace,
    history: Vec<Operation>,
    /// Per group: who led each term, and what each committed index holds.
    leaders: BTreeMap<(GroupId, Term), String>,
    committed: BTreeMap<(GroupId, Index), (Term, u64)>,
    violations: Vec<String>,
    disks: BTreeMap<String, SimDisk>,
    boots: BTreeMap<String, u64>,
    /// Each running member's routers.
    nodes: BTreeMap<String, Rc<RefCell<Member>>>,
    shards: u32,
    cores: u32,
    replicas: u32,
    read_lease: bool,
    clock_drift_percent: u32,
    tick_ms: u64,
    /// Each running node's term and whether it leads, published before its
    /// turn's output leaves (so the nemesis can cut a new leader off before
    /// its first messages arrive).
    roles: BTreeMap<String, (Term, bool)>,
    skew_ms: BTreeMap<String, i64>,
    /// Every node's clock and leadership, for the TTL checker's bounds.
    clocks: ttl::Clocks,
    ttl_history: Vec<TtlOperation>,
    drop_percent: u64,
    /// Whether the nemesis has healed everything (the run's last phase).
    healed: bool,
    duplicate_percent: u64,
    /// Per leader and group, its term and commit index when it last
    /// finished a turn (`promoted_only_when_caught_up`).
    leader_commits: BTreeMap<(String, GroupId), (Term, Index)>,
    /// Promotions looked at: `(group, term, index of the membership entry)`.
    promotions_seen: BTreeSet<(GroupId, Term, Index)>,
    /// Each group's voters as its leaders last committed them (traced when
    /// they change: joins, removals, replicas moving).
    voters: BTreeMap<GroupId, BTreeSet<NodeId>>,
    /// Hosts started so far, and those removed from the cluster.
    members: Vec<String>,
    removed: BTreeSet<String>,
    /// The host the admin set out to remove (its removal may be applied
    /// before the admin hears of it).
    removing: Option<String>,
    /// Why the last operation left no trace in the history.
    last_refusal: String,
    seed: u64,
    bug: PlantedBug,
}

type SharedRef = Rc<RefCell<Shared>>;

fn sim_ms() -> u64 {
    turmoil::sim_elapsed().unwrap_or_default().as_millis() as u64
}

fn sim_us() -> u64 {
    turmoil::sim_elapsed().unwrap_or_default().as_micros() as u64
}

fn host_seed(seed: u64, name: &str, boot: u64) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325u64 ^ seed;
    for byte in name.bytes() {
        hash = (hash ^ u64::from(byte)).wrapping_mul(0x100_0000_01b3);
    }
    SplitMix64::new(hash ^ (boot << 40)).next_u64()
}

fn below(rng: &mut SplitMix64, n: u64) -> u64 {
    rng.next_u64() % n.max(1)
}

// ----- the disk, with fsync latency ------------------------------------

/// The simulated disk with an fsync that takes simulated time, so a crash
/// can land between a write and its sync.
#[derive(Clone)]
struct SlowDisk {
    inner: SimDisk,
    rng: Rc<RefCell<SplitMix64>>,
    /// Where this log's files are on the member's disk: "" for the home
    /// group's log, `groups` for the key groups' shared log (as in
    /// production, `turn::LogId::subdir`).
    prefix: String,
}

impl SlowDisk {
    fn at(&self, path: &str) -> String {
        match (self.prefix.as_str(), path) {
            ("", path) => path.to_string(),
            (prefix, "") => prefix.to_string(),
            (prefix, path) => format!("{prefix}/{path}"),
        }
    }
}

struct SlowFile {
    inner: SimFile,
    rng: Rc<RefCell<SplitMix64>>,
}

impl Disk for SlowDisk {
    type File = SlowFile;
    async fn create_dir_all(&self, dir: &str) -> io::Result<()> {
        self.inner.create_dir_all(&self.at(dir)).await
    }
    async fn open_append(&self, path: &str) -> io::Result<SlowFile> {
        Ok(SlowFile { inner: self.inner.open_append(&self.at(path)).await?, rng: self.rng.clone() })
    }
    async fn read(&self, path: &str) -> io::Result<Vec<u8>> {
        self.inner.read(&self.at(path)).await
    }
    async fn list(&self, dir: &str) -> io::Result<Vec<String>> {
        self.inner.list(&self.at(dir)).await
    }
    async fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        self.inner.rename(&self.at(from), &self.at(to)).await
    }
    async fn remove(&self, path: &str) -> io::Result<()> {
        self.inner.remove(&self.at(path)).await
    }
    async fn truncate(&self, path: &str, len: u64) -> io::Result<()> {
        self.inner.truncate(&self.at(path), len).await
    }
    async fn sync_dir(&self, dir: &str) -> io::Result<()> {
        self.inner.sync_dir(&self.at(dir)).await
    }
}

impl DiskFile for SlowFile {
    async fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.inner.append(bytes).await
    }
    async fn sync(&mut self) -> io::Result<()> {
        // 0.2-8 ms, and one in twenty 20-60 ms: a disk under load.
        let micros = {
            let mut rng = self.rng.borrow_mut();
            if below(&mut rng, 20) == 0 {
                20_000 + below(&mut rng, 40_000)
            } else {
                200 + below(&mut rng, 7_800)
            }
        };
        tokio::time::sleep(Duration::from_micros(micros)).await;
        self.inner.sync().await
    }
    fn len(&self) -> u64 {
        self.inner.len()
    }
}

// ----- a node host -------------------------------------------------------

use cashe::turn::Input as Event;

type Book = Rc<RefCell<BTreeMap<NodeId, String>>>;

fn member_info(name: &str) -> MemberInfo {
    MemberInfo {
        name: name.to_string(),
        raft_addr: format!("{name}:{RAFT_PORT}"),
        client_addr: format!("{name}:{CLIENT_PORT}"),
        tls_client_addr: None,
    }
}

/// A member's routers, one per core (`Router::on_core`): each group is run
/// by its core's, and the checks look at that one.
pub struct Member {
    routers: Vec<Router>,
}

impl Member {
    fn cores(&self) -> u32 {
        self.routers.len() as u32
    }

    /// The router running `group`.
    fn of(&self, group: GroupId) -> &Router {
        &self.routers[core_of(group, self.cores()) as usize]
    }

    fn of_mut(&mut self, group: GroupId) -> &mut Router {
        let core = core_of(group, self.cores()) as usize;
        &mut self.routers[core]
    }

    fn group(&self, group: GroupId) -> Option<&Node> {
        self.of(group).group(group)
    }

    /// Every group, each from the router that runs it.
    fn groups(&self) -> impl Iterator<Item = (GroupId, &Node)> {
        let groups = self.routers[0].groups().map(|(group, _)| group);
        groups.filter_map(move |group| Some((group, self.group(group)?)))
    }

    fn home(&self) -> &Node {
        self.routers[0].home()
    }

    fn holds(&self, group: GroupId) -> bool {
        self.of(group).holds(group)
    }

    fn now_ms(&self) -> u64 {
        self.routers.iter().map(Router::now_ms).max().unwrap_or(0)
    }

    fn fatal(&self) -> Option<&str> {
        self.routers.iter().find_map(Router::fatal)
    }
}

// The host owns its node; the `RefCell` only lets the nemesis and the
// checks look at it between simulation steps (they use `try_borrow` and
// skip a node that is mid-turn). A turn no longer awaits the disk, so the
// borrow is never held across an await.
async fn node_host(name: String, shared: SharedRef) -> turmoil::Result {
    let (disk, boot, seed, bug) = {
        let mut s = shared.borrow_mut();
        let boot = s.boots.entry(name.clone()).and_modify(|b| *b += 1).or_insert(1);
        let boot = *boot;
        (s.disks.entry(name.clone()).or_default().clone(), boot, host_seed(s.seed, &name, boot), s.bug)
    };
    let mut rng = SplitMix64::new(seed);
    let me = member_info(&name);
    let meta = match disk.read(cashe::wal::format::META_FILE).await {
        Ok(bytes) => Some(cashe::wal::format::decode_meta(&bytes).map_err(|e| e.to_string())?),
        Err(_) => None,
    };
    let (id, joining) = match meta {
        Some(meta) => (NodeId(meta.node_id), false),
        None if name == FOUNDER_HOST => (FOUNDER, false),
        None => match join(&shared, &me, &mut rng).await {
            Some(id) => (id, true),
            None => return Ok(()),
        },
    };
    let (shards, replicas, cores) = (shared.borrow().shards, shared.borrow().replicas, shared.borrow().cores);
    let fsync_rng = Rc::new(RefCell::new(SplitMix64::new(rng.next_u64())));
    let slow =
        |prefix: &str| SlowDisk { inner: disk.clone(), rng: fsync_rng.clone(), prefix: prefix.to_string() };
    // Per run: small segments in some, so that logs roll, delete what
    // snapshots cover and ask pinning groups to compact under chaos.
    let mut options = WalOptions::new(id.0, CLUSTER_ID);
    let mut run_rng = SplitMix64::new(host_seed(shared.borrow().seed, "config", 0));
    options.segment_bytes_max =
        [4 << 10, 32 << 10, options.segment_bytes_max][below(&mut run_rng, 3) as usize];
    // Each core's logs (`groups-<k>/` beside `groups/`, as in the server).
    let mut wals = Vec::new();
    let mut recovered = Vec::new();
    for core in 0..cores {
        let logs = turn::open_logs(&slow, options, id, joining, shards, (core, cores))
            .await
            .map_err(|e| format!("{name}: {e}"))?;
        wals.extend(logs.wals.into_iter().map(|(log, wal)| ((core, log), wal)));
        recovered.push(logs.recovered);
    }
    let mut config = NodeConfig::new(id);
    config.raft.election_ticks = 10;
    config.raft.heartbeat_ticks = 2;
    config.raft.read_lease = shared.borrow().read_lease;
    config.raft.clock_drift_percent = LEASE_DRIFT_BOUND_PERCENT;
    // Per run (not per boot): small appends split a new leader's catch-up
    // from its no-op, which is where committing an old term's entry by
    // counting replicas (Figure 8) shows.
    config.raft.append_entries_max = [1, 2, 8, 1024][below(&mut run_rng, 4) as usize];
    config.raft.inflight_appends_max = [1, 4, 64][below(&mut run_rng, 3) as usize];
    config.raft.planted_bug = bug;
    config.snapshot_entries = 64;
    config.log_retain_entries = [0, 16, 64][below(&mut run_rng, 3) as usize];
    config.forward_timeout_ticks = 40;
    config.cluster_id = CLUSTER_ID;
    config.cluster_secret = Some(secret());
    config.me = Some(me.clone());
    config.shards = shards;
    config.replicas = replicas;
    let mut routers = Vec::new();
    for (core, mut recovered) in recovered.into_iter().enumerate() {
        let mut nodes = BTreeMap::new();
        for group in cashe::node::group_ids(shards) {
            // A group of another core is an empty node here, never run.
            let recovered = recovered.remove(&group).unwrap_or_default();
            let node = Node::restore(config.for_group(group), rng.next_u64(), recovered)
                .map_err(|e| format!("{name}: {e}"))?;
            nodes.insert(group, node);
        }
        routers.push(Router::new(shards, nodes).on_core(core as u32, cores));
    }
    let node = Rc::new(RefCell::new(Member { routers }));
    shared.borrow_mut().nodes.insert(name.clone(), node.clone());
    shared.borrow_mut().clocks.booted(&name, sim_us());
    shared.borrow_mut().trace.event(format!("{name} boots as node {id} (boot {boot})"));

    let (events, mut inbox) = mpsc::unbounded_channel::<Event>();
    let book: Book = Rc::default();
    let connections: Rc<RefCell<BTreeMap<ConnId, mpsc::UnboundedSender<Reply>>>> = Rc::default();
    let peers = TcpListener::bind(("0.0.0.0", RAFT_PORT)).await?;
    let clients = TcpListener::bind(("0.0.0.0", CLIENT_PORT)).await?;
    let security =
        Rc::new(Security { id, nonces: RefCell::new(SplitMix64::new(rng.next_u64())), secret: secret() });
    tokio::task::spawn_local(accept_peers(peers, events.clone(), book.clone(), security.clone()));
    tokio::task::spawn_local(accept_clients(clients, events.clone(), connections.clone()));

    let mut hello = Vec::new();
    wire::encode_or_drop(
        &PeerFrame::Hello {
            version: wire::WIRE_VERSION,
            cluster_id: CLUSTER_ID,
            from: id,
            raft_addr: me.raft_addr,
        },
        &mut hello,
    );
    let mut links: BTreeMap<NodeId, mpsc::Sender<(GroupId, NodeMessage)>> = BTreeMap::new();
    // This boot's clock: a tick length within the drift of the nominal one,
    // the slowest or the fastest in two boots of three (the edges are
    // where a lease is tight).
    let nominal_ms = shared.borrow().tick_ms;
    let drift_ms = nominal_ms * u64::from(shared.borrow().clock_drift_percent.min(90)) / 100;
    let tick_ms = match below(&mut rng, 3) {
        0 => nominal_ms - drift_ms,
        1 => nominal_ms + drift_ms,
        _ => nominal_ms - drift_ms + below(&mut rng, 2 * drift_ms + 1),
    };
    let tick = Duration::from_millis(tick_ms);
    shared.borrow_mut().trace.event(format!("{name}: a tick lasts {} ms this boot", tick.as_millis()));
    let mut ticker = tokio::time::interval(tick);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut stats = TurnStats::default();
    // The disk runs beside the loop, as in the server: the loop hands it
    // jobs and goes on; it reports what became durable as `Persisted`.
    // Each log has a disk task of its own, as in the server.
    let mut disk_jobs: BTreeMap<(u32, LogId), mpsc::UnboundedSender<(GroupId, DiskJob)>> = BTreeMap::new();
    let disk_failed: Rc<RefCell<Option<String>>> = Rc::default();
    let compact: Rc<RefCell<BTreeSet<GroupId>>> = Rc::default();
    for (log, mut wal) in wals {
        let (jobs, mut disk_queue) = mpsc::unbounded_channel::<(GroupId, DiskJob)>();
        disk_jobs.insert(log, jobs);
        let (events, failed, compact) = (events.clone(), disk_failed.clone(), compact.clone());
        tokio::task::spawn_local(async move {
            let mut stats = TurnStats::default();
            while let Some(job) = disk_queue.recv().await {
                let mut batch = vec![job];
                while let Ok(job) = disk_queue.try_recv() {
                    batch.push(job);
                }
                match turn::write(&mut wal, batch, &mut stats).await {
                    Ok(written) => {
                        compact.borrow_mut().extend(written.compact);
                        for (group, lsn) in written.durable {
                            _ = events.send(Event::Persisted(group, lsn));
                        }
                    }
                    Err(e) => {
                        *failed.borrow_mut() = Some(e.to_string());
                        return;
                    }
                }
            }
        });
    }
    // Ticks of this member, for its misrouted commands (`MISROUTE_TICKS`).
    let mut ticks = 0u64;
    // Messages this member's cores send each other, delivered within the
    // turn: (core, from, group, message).
    let local: RefCell<std::collections::VecDeque<(u32, NodeId, GroupId, NodeMessage)>> = RefCell::default();
    loop {
        if let Some(e) = disk_failed.borrow_mut().take() {
            return Err(format!("{name}: {e}").into());
        }
        let mut batch = Vec::new();
        let mut tick = false;
        tokio::select! {
            biased;
            _ = ticker.tick() => {
                tick = true;
                batch.push(Event::Tick);
            }
            event = inbox.recv() => batch.extend(event),
        }
        while let Ok(event) = inbox.try_recv() {
            batch.push(event);
        }
        let now = now_ms(&shared, &name);
        let mut member = node.borrow_mut();
        for event in batch {
            match event {
                Event::Closed(conn) => {
                    connections.borrow_mut().remove(&conn);
                    turn::feed(&mut member.routers[0], Event::Closed(conn), now);
                }
                Event::Tick => {
                    for router in &mut member.routers {
                        turn::feed(router, Event::Tick, now);
                    }
                }
                Event::Persisted(group, lsn) => {
                    turn::feed(member.of_mut(group), Event::Persisted(group, lsn), now)
                }
                Event::Peer { from, group, message } => match core_for_message(group, &message, cores) {
                    Some(core) => turn::feed(
                        &mut member.routers[core as usize],
                        Event::Peer { from, group, message },
                        now,
                    ),
                    None => {
                        for router in &mut member.routers {
                            turn::feed(router, Event::Peer { from, group, message: message.clone() }, now);
                        }
                    }
                },
                event => turn::feed(&mut member.routers[0], event, now),
            }
        }
        if tick {
            ticks += 1;
            if shards > 1 && ticks.is_multiple_of(MISROUTE_TICKS) {
                misroute(&mut member, ticks / MISROUTE_TICKS, shards);
            }
        }
        if cores > 1 {
            // What the server's executors tell each other.
            let view = member.routers[0].home_view();
            for core in 1..cores {
                member.routers[core as usize].set_home_view(view.clone());
                let report = member.routers[core as usize].report();
                member.routers[0].set_report(core, report);
            }
        }
        let role = (member.home().raft().term(), member.home().raft().is_leader());
        shared.borrow_mut().roles.insert(name.clone(), role);
        // The TTL checker bounds stamps by the clocks of the nodes that could
        // stamp: with several groups, a node leading any key group may (the
        // key's own group is not tracked: a looser bound, still a sound one).
        let stamps = if shards == 1 {
            role.1
        } else {
            member.groups().any(|(group, n)| group != HOME && n.raft().is_leader())
        };
        shared.borrow_mut().clocks.turn(&name, member.now_ms(), stamps, sim_us());
        if tick {
            let directory =
                member.home().directory().members.iter().map(|(id, m)| (*id, m.raft_addr.clone()));
            book.borrow_mut().extend(directory);
        }
        let (drop_percent, duplicate_percent) = {
            let s = shared.borrow();
            (s.drop_percent, s.duplicate_percent)
        };
        for group in compact.take() {
            member.of_mut(group).compact(group);
        }
        // Every core's output, until none has more to say (a message one
        // core sends another is taken in this turn).
        loop {
            for core in 0..cores {
                let send = |to: NodeId, group: GroupId, message: NodeMessage| {
                    if to == id {
                        let mut local = local.borrow_mut();
                        match core_for_message(group, &message, cores) {
                            Some(target) => local.push_back((target, id, group, message)),
                            None => {
                                for target in (0..cores).filter(|c| *c != core) {
                                    local.push_back((target, id, group, message.clone()));
                                }
                            }
                        }
                        return;
                    }
                    if below(&mut rng, 100) < drop_percent {
                        return;
                    }
                    let link = links.entry(to).or_insert_with(|| {
                        let (sender, receiver) = mpsc::channel(4096);
                        tokio::task::spawn_local(outbound(
                            to,
                            receiver,
                            book.clone(),
                            hello.clone(),
                            security.clone(),
                        ));
                        sender
                    });
                    // Only Raft traffic is duplicated: it is built for at-least-once
                    // delivery, while the transport (TCP, never resending) delivers
                    // a forwarded write at most once, and a duplicate would apply it twice.
                    if matches!(message, NodeMessage::Raft(_)) && below(&mut rng, 100) < duplicate_percent {
                        let _ = link.try_send((group, message.clone()));
                    }
                    let _ = link.try_send((group, message));
                };
                let reply = |conn: ConnId, reply: Reply| {
                    if let Some(sender) = connections.borrow().get(&conn) {
                        let _ = sender.send(reply);
                    }
                };
                let to_disk = |group: GroupId, job: DiskJob| {
                    if let Some(jobs) = disk_jobs.get(&(core, LogId::of(group))) {
                        let _ = jobs.send((group, job));
                    }
                };
                turn::drain(&mut member.routers[core as usize], now, send, reply, to_disk, &mut stats);
            }
            let delivered = std::mem::take(&mut *local.borrow_mut());
            if delivered.is_empty() {
                break;
            }
            for (core, from, group, message) in delivered {
                turn::feed(&mut member.routers[core as usize], Event::Peer { from, group, message }, now);
            }
        }
        for (group, _) in member.groups() {
            observe(&shared, &name, &member, group);
        }
        if member.routers[0].is_removed() {
            shared.borrow_mut().trace.event(format!("{name} learns it was removed and stops"));
            shared.borrow_mut().nodes.remove(&name);
            shared.borrow_mut().roles.remove(&name);
            shared.borrow_mut().clocks.stopped(&name);
            return Ok(());
        }
        if let Some(reason) = member.fatal() {
            return Err(format!("{name}: {reason}").into());
        }
    }
}

/// Ticks between two commands a member hands a key group that does not
/// hold their key (`misroute`).
const MISROUTE_TICKS: u64 = 150;

/// As a member routing with a stale map of slots would: `SET` of a key of
/// another group handed straight to key group `1 + round % shards` here
/// (`Router::misroute`). Every group refuses it (`node::slots`), on
/// arrival and when applied; `converged` finds any that landed (planted
/// bug `apply-with-stale-map`). Chosen by the round alone, so it draws
/// nothing from the run's random streams.
fn misroute(member: &mut Member, round: u64, shards: u32) {
    let group = GroupId(1 + (round % u64::from(shards)) as u32);
    let foreign = (0..).map(|k| format!("k{k}")).find(|key| {
        cashe::kv::slot::group_of_slot(cashe::kv::slot::key_slot(key.as_bytes()), shards) != group.0
    });
    let Some(key) = foreign else { return };
    let args = vec![b"SET".to_vec(), key.into_bytes(), format!("misrouted-{round}").into_bytes()];
    member.of_mut(group).misroute(group, args);
}

fn now_ms(shared: &SharedRef, name: &str) -> u64 {
    let skew = shared.borrow().skew_ms.get(name).copied().unwrap_or(0);
    (EPOCH_MS as i64 + sim_ms() as i64 + skew) as u64
}

/// Checks what one node shows after a turn against what others showed.
fn observe(shared: &SharedRef, name: &str, router: &Member, group: GroupId) {
    let Some(node) = router.group(group) else { return };
    let mut s = shared.borrow_mut();
    let raft = node.raft();
    let of_group = if group == HOME { String::new() } else { format!(" of group {}", group.0) };
    if raft.is_leader() {
        let term = raft.term();
        match s.leaders.get(&(group, term)).cloned() {
            None => {
                s.leaders.insert((group, term), name.to_string());
                s.trace.event(format!("{name} leads term {term}{of_group}"));
            }
            Some(first) if first != name => {
                let text = format!("two leaders in term {term}{of_group}: {first} and {name}");
                s.violations.push(text);
            }
            Some(_) => {}
        }
    }
    let log = raft.log();
    let from = log.snapshot_index().next();
    let mut index = from;
    while index <= raft.commit() {
        let Some(entry) = log.entry(index) else { break };
        let digest = entry_digest(entry);
        match s.committed.get(&(group, index)) {
            Some(&(term, seen)) if (term, seen) != (entry.term, digest) => {
                let text = format!(
                    "index {index}{of_group}: {name} committed term {} but term {term} was committed",
                    entry.term
                );
                s.violations.push(text);
            }
            Some(_) => {}
            None => {
                s.committed.insert((group, index), (entry.term, digest));
            }
        }
        index = index.next();
    }
    drop(s);
    only_complete_logs_electable(shared, name, node, group);
    quiet_only_when_every_member_holds_the_log(shared, name, node, group);
    promoted_only_when_caught_up(shared, name, node, group);
}

/// A leader promotes a learner (a member joining, or a replica moving in)
/// to voter only once the learner holds the leader's committed log: at
/// least what the leader had committed at the end of its turn before the
/// promotion (planted bug `move-without-catch-up`). The promoted member
/// is looked at when it is running, in the turn the leader appended the
/// promotion; what the leader saw it acknowledge was durable, so it still
/// holds it (never a false alarm).
fn promoted_only_when_caught_up(shared: &SharedRef, name: &str, node: &Node, group: GroupId) {
    let raft = node.raft();
    if !raft.is_leader() {
        return;
    }
    let term = raft.term();
    let mut s = shared.borrow_mut();
    let voters = &raft.committed_membership().voters;
    if s.voters.get(&group) != Some(voters) {
        s.voters.insert(group, voters.clone());
        let of_group = if group == HOME { String::new() } else { format!(" of group {}", group.0) };
        s.trace.event(format!("{name}: voters{of_group} now {voters:?}"));
    }
    let before = s.leader_commits.insert((name.to_string(), group), (term, raft.commit()));
    // The same term: the same time as leader, with no restart between.
    let Some((_, commit_before)) = before.filter(|(t, _)| *t == term) else { return };
    let (latest, committed, at) = (raft.membership(), raft.committed_membership(), raft.membership_index());
    // Only a change this leader made in this term: a leader elected again
    // carries one it made in an earlier term, against that term's commit
    // index (seed 898 of `make sim-long`'s placed part).
    let made_now = raft.log().term(at) == Some(term);
    if latest == committed
        || !made_now
        || commit_before == Index(0)
        || !s.promotions_seen.insert((group, term, at))
    {
        return;
    }
    let promoted: Vec<NodeId> =
        latest.voters.iter().copied().filter(|v| committed.learners.contains(v)).collect();
    let expected_term = raft.log().term(commit_before);
    let mut behind = Vec::new();
    for (other, router) in s.nodes.iter().filter(|(other, _)| other.as_str() != name) {
        let Ok(router) = router.try_borrow() else { continue };
        let Some(learner) = router.group(group).map(Node::raft) else { continue };
        if !promoted.contains(&learner.id()) {
            continue;
        }
        let holds = learner.snapshot_index() >= commit_before
            || match expected_term {
                Some(t) => learner.log().term(commit_before) == Some(t),
                None => learner.log().last_index() >= commit_before,
            };
        if !holds {
            behind.push((other.clone(), learner.log().last_index()));
        }
    }
    for (other, last) in behind {
        let of_group = if group == HOME { String::new() } else { format!(" of group {}", group.0) };
        let text = format!(
            "{name} promoted {other} to voter{of_group} at index {at} (term {term}), but {other} holds \
             entries only through {last}, not the committed {commit_before}"
        );
        s.violations.push(text);
    }
}

/// A leader goes quiet (`raft::quiesce`) only once every member of its
/// group holds its whole log: a member of its term that lacks its last
/// entry would stay behind while the group is idle (planted bug
/// `quiesce-lagging-follower`). Members of another term are not looked at
/// (a newer leader may have rewritten their logs).
fn quiet_only_when_every_member_holds_the_log(shared: &SharedRef, name: &str, node: &Node, group: GroupId) {
    let raft = node.raft();
    if !raft.is_quiet() {
        return;
    }
    let (last, last_term, term) = (raft.log().last_index(), raft.log().last_term(), raft.term());
    let members: BTreeSet<NodeId> = raft.membership().members().collect();
    let mut s = shared.borrow_mut();
    let mut lagging = Vec::new();
    for (other, router) in s.nodes.iter().filter(|(other, _)| other.as_str() != name) {
        let Ok(router) = router.try_borrow() else { continue };
        let Some(follower) = router.group(group).map(Node::raft) else { continue };
        if !members.contains(&follower.id()) || follower.term() != term {
            continue;
        }
        let holds = follower.snapshot_index() >= last || follower.log().term(last) == Some(last_term);
        if !holds {
            lagging.push(other.clone());
        }
    }
    for other in lagging {
        let of_group = if group == HOME { String::new() } else { format!(" of group {}", group.0) };
        let text =
            format!("{name} leads term {term}{of_group} quietly, but {other} lacks its last entry {last}");
        s.violations.push(text);
    }
}

/// The argument of Raft's §5.4.3 as a check: no node missing a committed
/// entry may be able to collect a majority of voters whose logs it is at
/// least as up-to-date as. Checked over running nodes only (a crashed node
/// cannot vote), and only while they agree on the voters, so it never
/// raises a false alarm; it catches an unsafe commit (Figure 8) the moment
/// it happens rather than when a later election overwrites the entry.
fn only_complete_logs_electable(shared: &SharedRef, name: &str, node: &Node, group: GroupId) {
    let s = shared.borrow();
    let mut committed = s.committed.range((group, Index(0))..=(group, Index(u64::MAX)));
    let Some((&(_, newest), &(term, _))) = committed.next_back() else { return };
    let others: Vec<(String, std::cell::Ref<'_, Node>)> = s
        .nodes
        .iter()
        .filter(|(other, _)| other.as_str() != name)
        .filter_map(|(other, n)| {
            let router = n.try_borrow().ok()?;
            router.group(group)?;
            Some((other.clone(), std::cell::Ref::map(router, |r| r.group(group).expect("checked"))))
        })
        .collect();
    let mut everyone: Vec<(&str, &Node)> = others.iter().map(|(n, node)| (n.as_str(), &**node)).collect();
    everyone.push((name, node));
    let voters = &node.raft().membership().voters;
    if everyone.iter().any(|(_, n)| &n.raft().membership().voters != voters) {
        return;
    }
    let mut found = None;
    for (candidate, n) in &everyone {
        let log = n.raft().log();
        let has = newest <= log.snapshot_index() || log.term(newest) == Some(term);
        if has || !voters.contains(&n.raft().id()) {
            continue;
        }
        let (last_index, last_term) = (log.last_index(), log.last_term());
        let supporters: Vec<&str> = everyone
            .iter()
            .filter(|(_, v)| {
                voters.contains(&v.raft().id()) && v.raft().log().is_up_to_date(last_index, last_term)
            })
            .map(|(voter, _)| *voter)
            .collect();
        if supporters.len() * 2 > voters.len() {
            found = Some(format!(
                "{candidate} lacks committed index {newest} (term {term}) yet {supporters:?} would elect it"
            ));
            break;
        }
    }
    drop(everyone);
    drop(others);
    drop(s);
    if let Some(text) = found {
        shared.borrow_mut().violations.push(text);
    }
}

fn entry_digest(entry: &cashe::raft::Entry) -> u64 {
    let bytes = postcard::to_stdvec(entry).expect("in-memory encoding cannot fail");
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3))
}

/// Joins through random members until one records us. `None` when the
/// cluster refuses because the admin removed us meanwhile (a join whose
/// reply was lost, retried after the removal of what it recorded): the
/// host then stays down, as a removed node does.
async fn join(shared: &SharedRef, me: &MemberInfo, rng: &mut SplitMix64) -> Option<NodeId> {
    loop {
        let members: Vec<String> = {
            let s = shared.borrow();
            s.members.iter().filter(|m| **m != me.name && !s.removed.contains(*m)).cloned().collect()
        };
        if !members.is_empty() {
            let via = &members[below(rng, members.len() as u64) as usize];
            let words = join_command(me, Some(&secret()));
            let words: Vec<&[u8]> = words.iter().map(|w| w.as_slice()).collect();
            if let Ok(reply) = request(via, &words).await {
                match join_answer(&reply) {
                    JoinAnswer::Joined { id, .. } => {
                        shared
                            .borrow_mut()
                            .trace
                            .event(format!("{} joined as node {id} through {via}", me.name));
                        return Some(id);
                    }
                    JoinAnswer::Retry(_) => {}
                    JoinAnswer::Refused(e)
                        if e.contains("was removed from the cluster")
                            && shared.borrow().removing.as_ref() == Some(&me.name) =>
                    {
                        let text = format!("{}'s join is refused, as the admin removed it: {e}", me.name);
                        shared.borrow_mut().trace.event(text);
                        return None;
                    }
                    JoinAnswer::Refused(e) => {
                        shared.borrow_mut().violations.push(format!("{} could not join: {e}", me.name));
                    }
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// One command on a fresh connection, with a timeout.
async fn request(host: &str, words: &[&[u8]]) -> io::Result<Reply> {
    let mut connection = Connection::open(host, 0).await?;
    connection.call(words).await
}

fn secret() -> ClusterSecret {
    ClusterSecret::new(CLUSTER_SECRET).expect("not empty")
}

/// What a node proves to its peers, with nonces drawn from the seed.
struct Security {
    id: NodeId,
    nonces: RefCell<SplitMix64>,
    secret: ClusterSecret,
}

impl Security {
    fn nonce(&self) -> [u8; handshake::NONCE_BYTES] {
        let mut nonce = [0u8; handshake::NONCE_BYTES];
        for chunk in nonce.chunks_mut(8) {
            chunk.copy_from_slice(&self.nonces.borrow_mut().next_u64().to_le_bytes());
        }
        nonce
    }
}

/// Reads exactly `out.len()` bytes within the handshake's time.
async fn read_exact_within(stream: &mut TcpStream, out: &mut [u8]) -> Result<(), String> {
    match tokio::time::timeout(Duration::from_millis(wire::IDLE_CLOSE_MS), stream.read_exact(out)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("handshake timed out".into()),
    }
}

/// The connector's half of the cluster-secret handshake.
async fn prove(stream: &mut TcpStream, security: &Security, to: NodeId) -> Result<(), String> {
    let mut challenge = [0u8; handshake::CHALLENGE_BYTES];
    read_exact_within(stream, &mut challenge).await?;
    let answer = handshake::answer(
        &security.secret,
        &challenge,
        &security.nonce(),
        CLUSTER_ID,
        Link { from: security.id, to },
    )?;
    stream.write_all(&answer.proof).await.map_err(|e| e.to_string())?;
    let mut accept = [0u8; handshake::ACCEPT_BYTES];
    read_exact_within(stream, &mut accept).await?;
    answer.check_accept(&accept)
}

/// The acceptor's half: the member the peer proved to be.
async fn challenge(stream: &mut TcpStream, security: &Security) -> Result<NodeId, String> {
    let nonce = security.nonce();
    stream.write_all(&handshake::challenge(&nonce)).await.map_err(|e| e.to_string())?;
    let mut proof = [0u8; handshake::PROOF_BYTES];
    read_exact_within(stream, &mut proof).await?;
    let (from, accept) = handshake::check_proof(&security.secret, &nonce, &proof, CLUSTER_ID, security.id)?;
    stream.write_all(&accept).await.map_err(|e| e.to_string())?;
    Ok(from)
}

async fn accept_peers(
    listener: TcpListener,
    events: mpsc::UnboundedSender<Event>,
    book: Book,
    security: Rc<Security>,
) {
    while let Ok((stream, _)) = listener.accept().await {
        tokio::task::spawn_local(inbound(stream, events.clone(), book.clone(), security.clone()));
    }
}

async fn inbound(
    mut stream: TcpStream,
    events: mpsc::UnboundedSender<Event>,
    book: Book,
    security: Rc<Security>,
) {
    let Ok(proven) = challenge(&mut stream, &security).await else { return };
    let mut buffer = Vec::new();
    let mut chunk = vec![0u8; 16 * 1024];
    let mut from = None;
    loop {
        let idle = Duration::from_millis(wire::IDLE_CLOSE_MS);
        let read = match tokio::time::timeout(idle, stream.read(&mut chunk)).await {
            Ok(Ok(0) | Err(_)) | Err(_) => return,
            Ok(Ok(n)) => n,
        };
        buffer.extend_from_slice(&chunk[..read]);
        let mut used = 0;
        while let Ok(Some((frame, size))) = wire::decode(&buffer[used..], from) {
            used += size;
            match wire::receive(frame, from, CLUSTER_ID, Some(proven)) {
                Ok(Received::Hello { from: id, raft_addr }) => {
                    book.borrow_mut().entry(id).or_insert(raft_addr);
                    from = Some(id);
                }
                Ok(Received::Message { from, group, message }) => {
                    if events.send(Event::Peer { from, group, message }).is_err() {
                        return;
                    }
                }
                Ok(Received::Keepalive) => {}
                Err(_) => return,
            }
        }
        if wire::decode(&buffer[used..], from).is_err() {
            return;
        }
        buffer.drain(..used);
    }
}

async fn outbound(
    to: NodeId,
    mut queue: mpsc::Receiver<(GroupId, NodeMessage)>,
    book: Book,
    hello: Vec<u8>,
    security: Rc<Security>,
) {
    loop {
        let address = book.borrow().get(&to).cloned();
        let connected = match address {
            Some(address) => {
                tokio::time::timeout(Duration::from_millis(500), TcpStream::connect(address)).await
            }
            None => Ok(Err(io::Error::other("address unknown"))),
        };
        let mut stream = match connected {
            Ok(Ok(stream)) => stream,
            _ => {
                while queue.try_recv().is_ok() {}
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if prove(&mut stream, &security, to).await.is_err() || stream.write_all(&hello).await.is_err() {
            while queue.try_recv().is_ok() {}
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        let mut buffer = Vec::new();
        loop {
            let keepalive = Duration::from_millis(wire::KEEPALIVE_MS);
            buffer.clear();
            match tokio::time::timeout(keepalive, queue.recv()).await {
                Ok(Some((group, first))) => {
                    wire::encode_or_drop(&PeerFrame::message(group, first), &mut buffer)
                }
                Ok(None) => return,
                Err(_) => wire::encode_or_drop(&PeerFrame::Keepalive, &mut buffer),
            };
            while let Ok((group, more)) = queue.try_recv() {
                wire::encode_or_drop(&PeerFrame::message(group, more), &mut buffer);
            }
            let stall = Duration::from_millis(wire::IDLE_CLOSE_MS);
            if !matches!(tokio::time::timeout(stall, stream.write_all(&buffer)).await, Ok(Ok(()))) {
                break;
            }
        }
    }
}

type Connections = Rc<RefCell<BTreeMap<ConnId, mpsc::UnboundedSender<Reply>>>>;

async fn accept_clients(
    listener: TcpListener,
    events: mpsc::UnboundedSender<Event>,
    connections: Connections,
) {
    let mut next = 0;
    while let Ok((stream, _)) = listener.accept().await {
        next += 1;
        let conn = ConnId(next);
        let (sender, replies) = mpsc::unbounded_channel();
        connections.borrow_mut().insert(conn, sender);
        let _ = events.send(Event::Opened(conn, Transport::Plain));
        tokio::task::spawn_local(serve_client(stream, conn, events.clone(), replies));
    }
}

/// The runtime's client loop on turmoil: take every whole request, hand
/// the commands over in order, write all replies in one go.
async fn serve_client(
    mut stream: TcpStream,
    conn: ConnId,
    events: mpsc::UnboundedSender<Event>,
    mut replies: mpsc::UnboundedReceiver<Reply>,
) {
    let mut parser = Parser::new(Limits::default());
    let mut buffer = Vec::new();
    let mut chunk = vec![0u8; 16 * 1024];
    'connection: loop {
        let read = match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        buffer.extend_from_slice(&chunk[..read]);
        let requests = parser.take_requests(&mut buffer, QUERY_BYTES_MAX);
        let mut owed = 0;
        for request in &requests.items {
            if let Request::Command(args) = request {
                if events.send(Event::Client { conn, args: args.clone() }).is_err() {
                    break 'connection;
                }
                owed += 1;
            }
        }
        let mut answers = Vec::with_capacity(owed);
        while answers.len() < owed {
            match replies.recv().await {
                Some(reply) => answers.push(reply),
                None => break 'connection,
            }
        }
        let mut answers = answers.into_iter();
        let mut out = Vec::new();
        for request in requests.items {
            match request {
                Request::Command(_) => answers.next().expect("one reply per command").encode(&mut out),
                Request::Answered(reply) => reply.encode(&mut out),
            }
        }
        if stream.write_all(&out).await.is_err() || requests.close {
            break;
        }
    }
    let _ = events.send(Event::Closed(conn));
}

// ----- clients -------------------------------------------------------------

/// A client-side RESP connection to one host.
struct Connection {
    stream: TcpStream,
    buffer: Vec<u8>,
    /// Unique in the run; what connection order is checked by.
    id: u64,
    /// Commands sent so far: the next one's position.
    sent: u64,
}

impl Connection {
    async fn open(host: &str, id: u64) -> io::Result<Connection> {
        let connect = TcpStream::connect((host, CLIENT_PORT));
        let stream = tokio::time::timeout(Duration::from_millis(500), connect)
            .await
            .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))??;
        Ok(Connection { stream, buffer: Vec::new(), id, sent: 0 })
    }

    /// Sends a command and waits (at most 1 s) for its reply.
    async fn call(&mut self, words: &[&[u8]]) -> io::Result<Reply> {
        let mut replies = self.pipeline(&[words.iter().map(|w| w.to_vec()).collect()]).await;
        replies.pop().expect("one reply or one error")
    }

    /// Sends every command in one write, then reads their replies in order
    /// (at most 1 s each). Stops at the first failure: the last element is
    /// then the error, and the commands after it have no reply.
    async fn pipeline(&mut self, commands: &[Vec<Vec<u8>>]) -> Vec<io::Result<Reply>> {
        let mut request = Vec::new();
        for command in commands {
            encode_command(command, &mut request);
        }
        self.sent += commands.len() as u64;
        if let Err(e) = self.stream.write_all(&request).await {
            return vec![Err(e)];
        }
        let mut replies = Vec::with_capacity(commands.len());
        for _ in commands {
            let reply = tokio::time::timeout(Duration::from_millis(1_000), self.read_reply())
                .await
                .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))
                .and_then(|reply| reply);
            let failed = reply.is_err();
            replies.push(reply);
            if failed {
                break;
            }
        }
        replies
    }

    async fn read_reply(&mut self) -> io::Result<Reply> {
        let mut chunk = [0u8; 4096];
        loop {
            if let Some((reply, used)) = decode(&self.buffer).map_err(io::Error::other)? {
                self.buffer.drain(..used);
                return Ok(reply);
            }
            let read = self.stream.read(&mut chunk).await?;
            if read == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            self.buffer.extend_from_slice(&chunk[..read]);
        }
    }
}

/// What a reply means for the history: `None` = nothing happened (a
/// definite refusal), `Some(None)` = unknown, `Some(Some(outcome))`.
fn classify(call: &Call, reply: &io::Result<Reply>) -> Option<Option<Outcome>> {
    let reads_only = matches!(call, Call::Get | Call::LRange | Call::SMembers | Call::HGetAll | Call::ZRange);
    let reply = match reply {
        Ok(reply) => reply,
        // The request may have reached the node before the connection died.
        Err(_) => return (!reads_only).then_some(None),
    };
    Some(Some(match reply {
        Reply::Error(e) if e.starts_with("CLUSTERDOWN") || e.starts_with("TRYAGAIN") => return None,
        Reply::Error(e) if e.starts_with("TIMEOUT") => return (!reads_only).then_some(None),
        Reply::Array(None) | Reply::Null if matches!(call, Call::WatchedSet { .. }) => Outcome::Aborted,
        Reply::Array(Some(items)) if matches!(call, Call::WatchedSet { .. }) && items == &[Reply::ok()] => {
            Outcome::Ok
        }
        Reply::Array(Some(items)) if matches!(call, Call::Transaction(_)) => {
            let Call::Transaction(calls) = call else { unreachable!("matched") };
            Outcome::Replies(calls.iter().zip(items).map(|(call, reply)| call_outcome(call, reply)).collect())
        }
        other => call_outcome(call, other),
    }))
}

/// What a reply means for `call`, once it has one.
fn call_outcome(call: &Call, reply: &Reply) -> Outcome {
    match (call, reply) {
        (Call::BRPop, reply) => popped(reply),
        (Call::SMembers, Reply::Array(Some(items))) => {
            let mut sorted = items.clone();
            sorted.sort();
            outcome(&Reply::Set(sorted))
        }
        // Field-value or member-score pairs as `a=b` items (HGETALL's sorted).
        (Call::HGetAll | Call::ZRange, Reply::Array(Some(_))) => match outcome(reply) {
            Outcome::Items(flat) if flat.len() % 2 == 0 => {
                let mut pairs: Vec<String> = flat.chunks(2).map(|p| format!("{}={}", p[0], p[1])).collect();
                if *call == Call::HGetAll {
                    pairs.sort();
                }
                Outcome::Items(pairs)
            }
            other => other,
        },
        // BZPOPMIN: [key, member, score] as [member, score].
        (Call::BZPopMin, Reply::Array(Some(items))) if items.len() == 3 => match outcome(reply) {
            Outcome::Items(mut all) => Outcome::Items(all.split_off(1)),
            other => other,
        },
        (Call::BZPopMin, Reply::Array(None) | Reply::Null) => Outcome::Value(None),
        (_, reply) => outcome(reply),
    }
}

/// The element of a BRPOP reply (`[key, element]`), or nil.
fn popped(reply: &Reply) -> Outcome {
    match reply {
        Reply::Array(Some(items)) if items.len() == 2 => match &items[1] {
            Reply::Bulk(Some(element)) => Outcome::Value(Some(String::from_utf8_lossy(element).into_owned())),
            other => Outcome::Error(format!("unexpected BRPOP element {other:?}")),
        },
        Reply::Array(None) | Reply::Null => Outcome::Value(None),
        other => outcome(other),
    }
}

/// A reply that is a command's own result.
fn outcome(reply: &Reply) -> Outcome {
    match reply {
        Reply::Error(e) => Outcome::Error(e.clone()),
        Reply::Simple(s) if s == "OK" => Outcome::Ok,
        Reply::Integer(n) => Outcome::Integer(*n),
        Reply::Bulk(value) => Outcome::Value(value.as_ref().map(|v| String::from_utf8_lossy(v).into_owned())),
        Reply::Null => Outcome::Value(None),
        // LRANGE in order; SMEMBERS (an array, or a RESP3 set) sorted.
        Reply::Array(Some(items)) | Reply::Set(items) => {
            let mut texts = Vec::with_capacity(items.len());
            for item in items {
                match item {
                    Reply::Bulk(Some(bytes)) => texts.push(String::from_utf8_lossy(bytes).into_owned()),
                    other => return Outcome::Error(format!("unexpected item {other:?}")),
                }
            }
            if matches!(reply, Reply::Set(_)) {
                texts.sort();
            }
            Outcome::Items(texts)
        }
        other => Outcome::Error(format!("unexpected reply {other:?}")),
    }
}

fn live_members(shared: &SharedRef) -> Vec<String> {
    let s = shared.borrow();
    s.members.iter().filter(|m| !s.removed.contains(*m)).cloned().collect()
}

/// The key every watched increment (WATCH, GET, MULTI, SET, EXEC) counts on.
pub const WATCHED_COUNTER: &str = "wc";

/// A client's open connections, one per host, and its own state.
struct Client {
    number: u64,
    connections: BTreeMap<String, Connection>,
    opened: u64,
}

/// One client: over and over, on one connection to a random live member, a
/// pipeline of 1–4 commands (half the time all on one key, so a read right
/// behind its connection's own write is common), a MULTI/EXEC transaction
/// on one key, or a WATCH-protected increment of `WATCHED_COUNTER`.
async fn client_host(client: u64, shared: SharedRef, options: Options, stop_at_ms: u64) -> turmoil::Result {
    let seed = host_seed(shared.borrow().seed, &format!("client{client}"), 0);
    let mut rng = SplitMix64::new(seed);
    let mut me = Client { number: client, connections: BTreeMap::new(), opened: 0 };
    let mut sequence = 0u64;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let reader = client > options.clients;
    while sim_ms() < stop_at_ms {
        let members = live_members(&shared);
        let node = members[below(&mut rng, members.len() as u64) as usize].clone();
        if reader {
            let key = format!("k{}", below(&mut rng, options.keys as u64));
            perform(&shared, &mut me, &node, vec![(key, Call::Get)]).await;
            continue;
        }
        let mut call = |rng: &mut SplitMix64| {
            sequence += 1;
            random_call(rng, client, sequence)
        };
        match below(&mut rng, 20) {
            0..=13 => {
                let one_key = below(&mut rng, 2) == 0;
                let first = format!("k{}", below(&mut rng, options.keys as u64));
                let batch: Vec<(String, Call)> = (0..1 + below(&mut rng, 4))
                    .map(|_| {
                        let key = if one_key {
                            first.clone()
                        } else {
                            format!("k{}", below(&mut rng, options.keys as u64))
                        };
                        (key, call(&mut rng))
                    })
                    .collect();
                perform(&shared, &mut me, &node, batch).await;
            }
            14..=16 => {
                let key = format!("k{}", below(&mut rng, options.keys as u64));
                let calls = (0..1 + below(&mut rng, 3)).map(|_| call(&mut rng)).collect();
                perform(&shared, &mut me, &node, vec![(key, Call::Transaction(calls))]).await;
            }
            17..=19 if below(&mut rng, 2) == 0 => {
                // A list, set, hash or sorted set: one to three commands on
                // it, pipelined or (rarely) in one transaction.
                let kind = below(&mut rng, 4);
                let prefix = ["l", "s", "h", "z"][kind as usize];
                let key = format!("{prefix}{}", below(&mut rng, COLLECTION_KEYS));
                let calls: Vec<Call> = (0..1 + below(&mut rng, 3))
                    .map(|_| {
                        sequence += 1;
                        match kind {
                            0 => random_list_call(&mut rng, client, sequence),
                            1 => random_set_call(&mut rng),
                            2 => random_hash_call(&mut rng, client, sequence),
                            _ => random_zset_call(&mut rng),
                        }
                    })
                    .collect();
                let batch = if below(&mut rng, 5) == 0 {
                    vec![(key, Call::Transaction(calls))]
                } else {
                    calls.into_iter().map(|call| (key.clone(), call)).collect()
                };
                perform(&shared, &mut me, &node, batch).await;
            }
            _ => watched_increment(&shared, &mut me, &node).await,
        }
        tokio::time::sleep(Duration::from_millis(below(&mut rng, 20))).await;
    }
    Ok(())
}

fn random_call(rng: &mut SplitMix64, client: u64, sequence: u64) -> Call {
    let value = (client * 1_000_000 + sequence).to_string();
    match below(rng, 10) {
        0..=2 => Call::Set(value),
        3..=5 => Call::Get,
        6 | 7 => Call::Incr,
        8 => Call::Cas { expected: (client * 1_000_000 + sequence - 1).to_string(), new: value },
        _ => Call::Del,
    }
}

/// Lists `l0`.., sets `s0`.., hashes `h0`.. and sorted sets `z0`.. beside
/// the string keys.
const COLLECTION_KEYS: u64 = 2;
/// Members sets draw from: few, so SADD and SREM often meet.
const SET_MEMBERS: u64 = 6;

/// Pushes of unique elements, pops (half of them blocking, with a 200 ms
/// timeout) and whole-list reads.
fn random_list_call(rng: &mut SplitMix64, client: u64, sequence: u64) -> Call {
    match below(rng, 10) {
        0..=3 => Call::LPush((client * 1_000_000 + sequence).to_string()),
        4 | 5 => Call::RPop,
        6 | 7 => Call::BRPop,
        8 => Call::LRange,
        _ => Call::Del,
    }
}

fn random_hash_call(rng: &mut SplitMix64, client: u64, sequence: u64) -> Call {
    let field = format!("f{}", below(rng, SET_MEMBERS));
    match below(rng, 10) {
        0..=3 => Call::HSet(field, (client * 1_000_000 + sequence).to_string()),
        4 => Call::HDel(field),
        5 | 6 => Call::HIncrBy(field),
        7 | 8 => Call::HGetAll,
        _ => Call::Del,
    }
}

/// Integer scores (a small range, so ties are common and order falls back
/// on members), pops (half of them blocking, 200 ms) and whole reads.
fn random_zset_call(rng: &mut SplitMix64) -> Call {
    let member = format!("m{}", below(rng, SET_MEMBERS));
    match below(rng, 12) {
        0..=3 => Call::ZAdd(member, below(rng, 7) as i64 - 3),
        4 => Call::ZIncrBy(member),
        5 => Call::ZRem(member),
        6 | 7 => Call::ZPopMin,
        8 | 9 => Call::BZPopMin,
        10 => Call::ZRange,
        _ => Call::Del,
    }
}

fn random_set_call(rng: &mut SplitMix64) -> Call {
    let member = format!("m{}", below(rng, SET_MEMBERS));
    match below(rng, 10) {
        0..=3 => Call::SAdd(member),
        4 => Call::SRem(member),
        5 | 6 => Call::SPop,
        7 | 8 => Call::SMembers,
        _ => Call::Del,
    }
}

/// The words of a call on `key` (a transaction: MULTI, its commands, EXEC).
fn commands(key: &str, call: &Call) -> Vec<Vec<Vec<u8>>> {
    let words = |w: &[&str]| vec![w.iter().map(|w| w.as_bytes().to_vec()).collect::<Vec<Vec<u8>>>()];
    match call {
        Call::Set(v) => words(&["SET", key, v]),
        Call::Get => words(&["GET", key]),
        Call::Incr => words(&["INCR", key]),
        Call::Cas { expected, new } => words(&["CAS", key, expected, new]),
        Call::Del => words(&["DEL", key]),
        Call::LPush(v) => words(&["LPUSH", key, v]),
        Call::RPop => words(&["RPOP", key]),
        Call::BRPop => words(&["BRPOP", key, "0.2"]),
        Call::LRange => words(&["LRANGE", key, "0", "-1"]),
        Call::SAdd(m) => words(&["SADD", key, m]),
        Call::SRem(m) => words(&["SREM", key, m]),
        Call::SPop => words(&["SPOP", key]),
        Call::SMembers => words(&["SMEMBERS", key]),
        Call::HSet(f, v) => words(&["HSET", key, f, v]),
        Call::HDel(f) => words(&["HDEL", key, f]),
        Call::HIncrBy(f) => words(&["HINCRBY", key, f, "1"]),
        Call::HGetAll => words(&["HGETALL", key]),
        Call::ZAdd(m, score) => words(&["ZADD", key, &score.to_string(), m]),
        Call::ZIncrBy(m) => words(&["ZINCRBY", key, "1", m]),
        Call::ZRem(m) => words(&["ZREM", key, m]),
        Call::ZPopMin => words(&["ZPOPMIN", key]),
        Call::BZPopMin => words(&["BZPOPMIN", key, "0.2"]),
        Call::ZRange => words(&["ZRANGE", key, "0", "-1", "WITHSCORES"]),
        Call::Transaction(calls) => {
            let inner = calls.iter().flat_map(|c| commands(key, c));
            words(&["MULTI"]).into_iter().chain(inner).chain(words(&["EXEC"])).collect()
        }
        Call::WatchedSet { new, .. } => {
            words(&["MULTI"]).into_iter().chain(words(&["SET", key, new])).chain(words(&["EXEC"])).collect()
        }
    }
}

/// Sends `batch` as one pipeline on the client's connection to `node` and
/// records each call in the history; returns their outcomes (`None`: not
/// recorded, or unknown).
async fn perform(
    shared: &SharedRef,
    client: &mut Client,
    node: &str,
    batch: Vec<(String, Call)>,
) -> Vec<Option<Outcome>> {
    let mut connection = match client.connections.remove(node) {
        Some(connection) => connection,
        None => {
            client.opened += 1;
            match Connection::open(node, client.number * 1_000_000 + client.opened).await {
                Ok(connection) => connection,
                // Never sent: nothing happened.
                Err(e) => {
                    shared.borrow_mut().last_refusal = format!("cannot connect to {node}: {e}");
                    return vec![None; batch.len()];
                }
            }
        }
    };
    let per_call: Vec<Vec<Vec<Vec<u8>>>> = batch.iter().map(|(key, call)| commands(key, call)).collect();
    let all: Vec<Vec<Vec<u8>>> = per_call.iter().flatten().cloned().collect();
    let first_position = connection.sent;
    let invoked = sim_us();
    let mut replies = connection.pipeline(&all).await.into_iter();
    let completed = sim_us();
    let broken = replies.len() < all.len() || replies.as_slice().last().is_some_and(|r| r.is_err());
    let mut outcomes = Vec::with_capacity(batch.len());
    let mut position = first_position;
    let lost = || Err(io::Error::from(io::ErrorKind::UnexpectedEof));
    for ((key, call), words) in batch.into_iter().zip(&per_call) {
        // A transaction's outcome is its EXEC's reply; MULTI and QUEUED say nothing.
        let mut reply = lost();
        for _ in words {
            reply = replies.next().unwrap_or_else(lost);
        }
        position += words.len() as u64;
        let refusal = format!("{node} answered {reply:?}");
        let Some(verdict) = classify(&call, &reply) else {
            shared.borrow_mut().last_refusal = refusal;
            outcomes.push(None);
            continue;
        };
        let operation = Operation {
            client: client.number,
            connection: connection.id,
            position: position - 1,
            node: node.to_string(),
            key,
            call,
            invoked,
            completed: verdict.clone().map(|outcome| (completed, outcome)),
        };
        let mut s = shared.borrow_mut();
        s.trace.event(operation.to_string());
        s.history.push(operation);
        outcomes.push(verdict);
    }
    if !broken {
        client.connections.insert(node.to_string(), connection);
    }
    outcomes
}

/// WATCH, GET, then MULTI, SET to one more, EXEC, on one connection;
/// again (at most five times) while EXEC answers nil.
async fn watched_increment(shared: &SharedRef, client: &mut Client, node: &str) {
    let key = WATCHED_COUNTER.to_string();
    for _ in 0..5 {
        // The WATCH has no place in the history; the GET after it does.
        let Some(connection) = client.connections.get_mut(node) else {
            let _ = perform(shared, client, node, vec![(key.clone(), Call::Get)]).await;
            continue;
        };
        let watch = vec![b"WATCH".to_vec(), key.clone().into_bytes()];
        let watched = connection.pipeline(&[watch]).await;
        if !matches!(watched.as_slice(), [Ok(reply)] if *reply == Reply::ok()) {
            client.connections.remove(node);
            return;
        }
        let read = perform(shared, client, node, vec![(key.clone(), Call::Get)]).await;
        let Some(Some(Outcome::Value(current))) = read.first().cloned() else {
            client.connections.remove(node); // leave the connection watching nothing
            return;
        };
        let next = match current.as_deref().map(str::parse::<u64>) {
            None => 1,
            Some(Ok(n)) => n + 1,
            Some(Err(_)) => {
                client.connections.remove(node);
                return;
            }
        };
        let set = Call::WatchedSet { expected: current, new: next.to_string() };
        let done = perform(shared, client, node, vec![(key.clone(), set)]).await;
        if done.first() != Some(&Some(Outcome::Aborted)) {
            return;
        }
    }
}

/// The TTL client: one command at a time on the `t` keys, to a random live
/// member, recording each with the clock bounds the simulator saw.
async fn ttl_client(shared: SharedRef, stop_at_ms: u64) -> turmoil::Result {
    let mut rng = SplitMix64::new(host_seed(shared.borrow().seed, "ttl", 0));
    let mut connections: BTreeMap<String, Connection> = BTreeMap::new();
    let mut opened = 0;
    tokio::time::sleep(Duration::from_millis(300)).await;
    for sequence in 0u64.. {
        tokio::time::sleep(Duration::from_millis(1 + below(&mut rng, 30))).await;
        if sim_ms() >= stop_at_ms {
            break;
        }
        let members = live_members(&shared);
        let node = members[below(&mut rng, members.len() as u64) as usize].clone();
        let key = format!("t{}", below(&mut rng, ttl::TTL_KEYS));
        let ms = 100 + below(&mut rng, 3_000);
        let call = match below(&mut rng, 12) {
            0..=2 => TtlCall::Set { value: sequence.to_string(), px: Some(ms) },
            3 => TtlCall::Set { value: sequence.to_string(), px: None },
            4 => TtlCall::Pexpire(ms),
            5 => TtlCall::Persist,
            6..=8 => TtlCall::Get,
            _ => TtlCall::Pttl,
        };
        let mut connection = match connections.remove(&node) {
            Some(connection) => connection,
            None => {
                opened += 1;
                match Connection::open(&node, 900_000_000 + opened).await {
                    Ok(connection) => connection,
                    Err(_) => continue,
                }
            }
        };
        let before = shared.borrow().clocks.snapshot(sim_us());
        let invoked = sim_us();
        let words = call.words(&key);
        let words: Vec<&[u8]> = words.iter().map(Vec::as_slice).collect();
        let reply = connection.call(&words).await;
        let completed = sim_us();
        let outcome = match &reply {
            Ok(Reply::Error(e)) if e.starts_with("CLUSTERDOWN") || e.starts_with("TRYAGAIN") => None,
            Ok(Reply::Error(e)) if e.starts_with("TIMEOUT") => Some(None),
            Err(_) => Some(None),
            Ok(Reply::Simple(s)) if s == "OK" => Some(Some(TtlOutcome::Ok)),
            Ok(Reply::Integer(n)) => Some(Some(TtlOutcome::Integer(*n))),
            Ok(Reply::Bulk(value)) => {
                Some(Some(TtlOutcome::Value(value.as_ref().map(|v| String::from_utf8_lossy(v).into_owned()))))
            }
            Ok(other) => Some(Some(TtlOutcome::Unexpected(format!("{other:?}")))),
        };
        if reply.is_ok() {
            connections.insert(node.clone(), connection);
        }
        // A refusal did nothing; a read that got no answer tells nothing.
        let Some(outcome) = outcome.filter(|o| o.is_some() || call.writes()) else { continue };
        let mut s = shared.borrow_mut();
        // With key groups on some members only, the member reached may run
        // the command where the key's group is: any member's clock reads.
        let served_at = (s.replicas == 0 || s.shards == 1).then_some(node.as_str());
        let (reader, stamp, high_water) = s.clocks.bounds(&before, served_at);
        let completed = outcome.map(|outcome| (completed, outcome));
        let operation = TtlOperation { key, node, call, invoked, completed, reader, stamp, high_water };
        s.trace.event(operation.to_string());
        s.ttl_history.push(operation);
    }
    Ok(())
}

/// After healing: every key read through every live member (retrying
/// refusals); an unanswered read is a progress failure.
async fn final_reads(shared: SharedRef, keys: usize, deadline_ms: u64) -> turmoil::Result {
    let mut client = Client { number: 0, connections: BTreeMap::new(), opened: 0 };
    let strings =
        (0..keys).map(|k| (format!("k{k}"), Call::Get)).chain([(WATCHED_COUNTER.to_string(), Call::Get)]);
    let lists = (0..COLLECTION_KEYS).map(|k| (format!("l{k}"), Call::LRange));
    let sets = (0..COLLECTION_KEYS).map(|k| (format!("s{k}"), Call::SMembers));
    let hashes = (0..COLLECTION_KEYS).map(|k| (format!("h{k}"), Call::HGetAll));
    let sorted_sets = (0..COLLECTION_KEYS).map(|k| (format!("z{k}"), Call::ZRange));
    for (key, call) in strings.chain(lists).chain(sets).chain(hashes).chain(sorted_sets) {
        for node in live_members(&shared) {
            loop {
                let outcome = perform(&shared, &mut client, &node, vec![(key.clone(), call.clone())]).await;
                if matches!(outcome.first(), Some(Some(Outcome::Value(_) | Outcome::Items(_)))) {
                    break;
                }
                // The admin's CLUSTER REMOVE may land while the reads run
                // (its retries outlast the chaos): a member removed since
                // has left and serves nothing.
                if shared.borrow().removed.contains(&node) {
                    break;
                }
                if sim_ms() > deadline_ms {
                    let last = shared.borrow().last_refusal.clone();
                    let text = format!(
                        "no progress: {} at {node} unanswered after healing (last: {last})",
                        call.show_on(&key)
                    );
                    shared.borrow_mut().violations.push(text);
                    return Ok(());
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    Ok(())
}

/// The admin removing a member during the chaos.
async fn remove_member(shared: SharedRef, target: String, seed: u64) -> turmoil::Result {
    let mut rng = SplitMix64::new(seed);
    for _ in 0..100 {
        let members: Vec<String> = live_members(&shared).into_iter().filter(|m| *m != target).collect();
        let via = members[below(&mut rng, members.len() as u64) as usize].clone();
        if let Ok(reply) = request(&via, &[b"CLUSTER", b"REMOVE", target.as_bytes()]).await {
            // An earlier attempt may have worked without our hearing of it.
            let gone = matches!(&reply, Reply::Error(e) if e.starts_with("ERR no member named"));
            if reply == Reply::ok() || gone {
                shared.borrow_mut().trace.event(format!("{target} removed through {via}"));
                shared.borrow_mut().removed.insert(target.clone());
                return check_removal(shared, target, rng).await;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// The admin looks again once the cluster has healed, as an operator
/// would, every half second for five seconds: a join the removed node
/// retried before it was recorded anywhere may have been applied after its
/// removal and recorded it again under a new number (a known gap,
/// `docs/architecture.md`, "Members"); it is removed again.
async fn check_removal(shared: SharedRef, target: String, mut rng: SplitMix64) -> turmoil::Result {
    for _ in 0..300 {
        if shared.borrow().healed {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let members: Vec<String> = live_members(&shared).into_iter().filter(|m| *m != target).collect();
        let via = members[below(&mut rng, members.len() as u64) as usize].clone();
        if let Ok(Reply::Simple(ok)) = request(&via, &[b"CLUSTER", b"REMOVE", target.as_bytes()]).await {
            if ok == "OK" {
                let text = format!(
                    "{target} was recorded again by a join retried across its removal: removed again"
                );
                shared.borrow_mut().trace.event(text);
            }
        }
    }
    Ok(())
}

// ----- the nemesis and the run -------------------------------------------

pub fn run(seed: u64, options: &Options) -> Result<Report, Failure> {
    let shared = Rc::new(RefCell::new(Shared {
        trace: Trace::default(),
        history: Vec::new(),
        leaders: BTreeMap::new(),
        committed: BTreeMap::new(),
        shards: options.shards.max(1),
        cores: if options.shards > 1 { options.cores.max(1) } else { 1 },
        replicas: options.replicas,
        read_lease: options.read_lease,
        clock_drift_percent: options.clock_drift_percent,
        tick_ms: options.tick_ms.max(1),
        violations: Vec::new(),
        disks: BTreeMap::new(),
        boots: BTreeMap::new(),
        nodes: BTreeMap::new(),
        roles: BTreeMap::new(),
        skew_ms: BTreeMap::new(),
        clocks: ttl::Clocks::default(),
        ttl_history: Vec::new(),
        drop_percent: 0,
        healed: false,
        duplicate_percent: 0,
        leader_commits: BTreeMap::new(),
        promotions_seen: BTreeSet::new(),
        voters: BTreeMap::new(),
        members: Vec::new(),
        removed: BTreeSet::new(),
        removing: None,
        last_refusal: String::new(),
        seed,
        bug: options.bug,
    }));
    let mut rng = SplitMix64::new(seed ^ 0x006e_656d_6573_6973);
    let chaos_start = 1_500;
    let chaos_end = chaos_start + options.chaos_ms;
    let clients_stop = chaos_end + options.calm_ms;
    let final_deadline = clients_stop + 10_000;
    let mut sim = turmoil::Builder::new()
        .simulation_duration(Duration::from_millis(final_deadline + 5_000))
        .tick_duration(Duration::from_millis(1))
        .min_message_latency(Duration::from_micros(100))
        .max_message_latency(Duration::from_millis(2))
        .rng_seed(seed)
        .build();
    let start_host = |sim: &mut turmoil::Sim, name: String| {
        shared.borrow_mut().members.push(name.clone());
        let shared = shared.clone();
        sim.host(name.clone(), move || node_host(name.clone(), shared.clone()));
    };
    let nodes = options.nodes;
    for n in 1..=nodes {
        start_host(&mut sim, format!("n{n}"));
    }
    for client in 1..=options.clients + options.readers {
        let shared = shared.clone();
        let options = options.clone();
        sim.client(format!("client{client}"), client_host(client, shared, options, clients_stop));
    }
    sim.client("ttl", ttl_client(shared.clone(), clients_stop));
    sim.client("final", {
        let shared = shared.clone();
        let keys = options.keys;
        async move {
            tokio::time::sleep(Duration::from_millis(clients_stop)).await;
            final_reads(shared, keys, final_deadline).await
        }
    });

    let mut faults = 0u64;
    let mut crashes = 0u64;
    let mut next_fault = chaos_start + below(&mut rng, 1_000);
    let mut restarts: BTreeMap<String, u64> = BTreeMap::new();
    let mut releases: Vec<(u64, String)> = Vec::new();
    let join_at = chaos_start + options.chaos_ms * 3 / 10 + below(&mut rng, options.chaos_ms / 10);
    let remove_at = chaos_start + options.chaos_ms * 6 / 10 + below(&mut rng, options.chaos_ms / 10);
    let mut joined = !options.membership;
    let mut removal_started = !options.membership;
    let mut healed = false;
    let mut churn_until = 0;
    let mut churned_term = Term(0);
    let mut next_churn = 0;
    let hosts = |shared: &SharedRef| live_members(shared);
    let fail = |shared: &SharedRef, what: String| {
        let s = shared.borrow();
        let mut trace = s.trace.tail();
        trace.extend(node_states(&s));
        Failure { what, trace }
    };
    loop {
        let finished = match sim.step() {
            Ok(finished) => finished,
            Err(e) => return Err(fail(&shared, format!("simulation error: {e}"))),
        };
        let now = sim.elapsed().as_millis() as u64;
        if let Some(violation) = shared.borrow().violations.first() {
            return Err(fail(&shared, violation.clone()));
        }
        if finished {
            break;
        }
        // Restarts and releases that are due.
        for (name, at) in restarts.clone() {
            if now >= at {
                restarts.remove(&name);
                shared.borrow_mut().trace.event(format!("{now}ms: restart {name}"));
                sim.bounce(name.as_str());
            }
        }
        releases.retain(|(at, name)| {
            if now < *at {
                return true;
            }
            for other in hosts(&shared).iter().filter(|o| *o != name) {
                sim.release(name.as_str(), other.as_str());
            }
            false
        });
        if now >= chaos_end && !healed {
            healed = true;
            heal(&mut sim, &shared, &mut restarts);
            shared.borrow_mut().trace.event(format!("{now}ms: heal everything"));
            continue;
        }
        if !healed && now < churn_until {
            // A new leader is cut off at once half the time (its first
            // messages are lost with the link), else at the next churn tick.
            let leader = leader_of(&shared);
            let fresh = leader.as_ref().is_some_and(|(term, _)| *term > churned_term);
            if let Some((term, _)) = &leader {
                churned_term = churned_term.max(*term);
            }
            let now_or_later = (fresh && below(&mut rng, 2) == 0) || now >= next_churn;
            if now_or_later {
                next_churn = now + 5 + below(&mut rng, 55);
                let all = hosts(&shared);
                repair_all(&mut sim, &all);
                if let Some((term, leader)) = leader {
                    isolate(&mut sim, &leader, &all);
                    shared
                        .borrow_mut()
                        .trace
                        .event(format!("{now}ms: churn: isolate {leader}, leader of term {term}"));
                }
            }
        }
        if healed || now < next_fault {
            continue;
        }
        if !joined && now >= join_at {
            joined = true;
            let name = format!("n{}", nodes + 1);
            shared.borrow_mut().trace.event(format!("{now}ms: start {name}, which joins"));
            start_host(&mut sim, name);
        }
        if !removal_started && now >= remove_at {
            removal_started = true;
            let candidates: Vec<String> = hosts(&shared).into_iter().filter(|h| h != FOUNDER_HOST).collect();
            let target = candidates[below(&mut rng, candidates.len() as u64) as usize].clone();
            shared.borrow_mut().trace.event(format!("{now}ms: remove {target}"));
            shared.borrow_mut().removing = Some(target.clone());
            sim.client(format!("admin-{now}"), remove_member(shared.clone(), target, rng.next_u64()));
        }
        next_fault = now + 200 + below(&mut rng, 1_000);
        faults += 1;
        let all = hosts(&shared);
        let pick = |rng: &mut SplitMix64| all[below(rng, all.len() as u64) as usize].clone();
        let action = match below(&mut rng, 15) {
            0 => {
                let victim = pick(&mut rng);
                isolate(&mut sim, &victim, &all);
                format!("isolate {victim}")
            }
            1 => match leader_of(&shared) {
                Some((_, leader)) => {
                    isolate(&mut sim, &leader, &all);
                    format!("isolate the leader {leader}")
                }
                None => "isolate the leader: none known".into(),
            },
            13 | 14 => {
                churn_until = now + 1_000 + below(&mut rng, 2_000);
                "leader churn: isolate each new leader soon after it is elected".into()
            }
            2 => {
                let (a, b) = (pick(&mut rng), pick(&mut rng));
                if a != b {
                    sim.partition(a.as_str(), b.as_str());
                }
                format!("bridge: cut {a} - {b}")
            }
            3 => {
                let (a, b) = (pick(&mut rng), pick(&mut rng));
                if a != b {
                    sim.partition_oneway(a.as_str(), b.as_str());
                }
                format!("asymmetric: cut {a} -> {b}")
            }
            4 | 5 => {
                repair_all(&mut sim, &all);
                "repair every link".into()
            }
            6 => {
                let (loss, duplicate) = (below(&mut rng, 21), below(&mut rng, 11));
                let spike = 10 + below(&mut rng, 70);
                shared.borrow_mut().drop_percent = loss;
                shared.borrow_mut().duplicate_percent = duplicate;
                sim.set_max_message_latency(Duration::from_millis(spike));
                format!("drop {loss}%, duplicate {duplicate}%, latency up to {spike}ms")
            }
            7 | 8 => {
                let victim = pick(&mut rng);
                if restarts.contains_key(&victim) {
                    format!("crash {victim}: already down")
                } else {
                    crashes += 1;
                    crash(&mut sim, &shared, &victim, &mut rng);
                    restarts.insert(victim.clone(), now + 100 + below(&mut rng, 1_400));
                    format!("crash {victim}")
                }
            }
            9 | 10 => {
                crashes += 1;
                let back = now + 100 + below(&mut rng, 1_000);
                for victim in &all {
                    if !restarts.contains_key(victim) {
                        crash(&mut sim, &shared, victim, &mut rng);
                        restarts.insert(victim.clone(), back);
                    }
                }
                "power loss: every node crashes".into()
            }
            11 => {
                let victim = pick(&mut rng);
                for other in all.iter().filter(|o| **o != victim) {
                    sim.hold(victim.as_str(), other.as_str());
                }
                releases.push((now + 100 + below(&mut rng, 900), victim.clone()));
                format!("pause {victim}")
            }
            _ => {
                let victim = pick(&mut rng);
                let jump = below(&mut rng, 7_000) as i64 - 2_000;
                *shared.borrow_mut().skew_ms.entry(victim.clone()).or_default() += jump;
                format!("clock of {victim} jumps {jump}ms")
            }
        };
        shared.borrow_mut().trace.event(format!("{now}ms: {action}"));
    }

    // The leader may still be logging TTL deletions as its clock passes
    // deadlines: let the last of them reach everyone before comparing.
    for _ in 0..SETTLE_STEPS {
        if applied_indexes(&shared).len() <= 1 || sim.step().is_err() {
            break;
        }
    }
    if let Some(violation) = shared.borrow().violations.first() {
        return Err(fail(&shared, violation.clone()));
    }
    let s = shared.borrow();
    if let Err(e) = linearizability::check_settling(&s.history, s.bug == PlantedBug::None) {
        return Err(Failure { what: format!("not linearizable: {e}"), trace: s.trace.tail() });
    }
    if let Err(e) = ttl::check(&s.ttl_history) {
        return Err(Failure {
            what: format!("TTLs do not follow the leader's clock: {e}"),
            trace: s.trace.tail(),
        });
    }
    if let Err(e) = watched_counter_is_exact(&s.history) {
        return Err(Failure { what: e, trace: s.trace.tail() });
    }
    drop(s);
    converged(&shared).map_err(|what| fail(&shared, what))?;
    if shared.borrow().shards > 1 {
        // Idle now: every group goes quiet (its leader stops heartbeats,
        // the members' beats stand in for them).
        let mut quiet = false;
        for _ in 0..QUIET_STEPS {
            quiet = all_groups_quiet(&shared);
            if quiet || sim.step().is_err() {
                break;
            }
        }
        if !quiet {
            let why = loud_groups(&shared);
            return Err(fail(&shared, format!("idle after the run, not every group went quiet: {why}")));
        }
    }
    let s = shared.borrow();
    Ok(Report {
        digest: s.trace.digest(),
        operations: s.history.len(),
        unknown: s.history.iter().filter(|o| o.completed.is_none()).count(),
        ttl_operations: s.ttl_history.len(),
        faults,
        crashes,
        simulated_ms: sim.elapsed().as_millis() as u64,
    })
}

/// Every EXEC of a watched increment that ran added exactly one to
/// `WATCHED_COUNTER`: its final value (as the final reads saw it) is the
/// number that ran, between those known to have run and those plus the
/// ones of unknown outcome.
fn watched_counter_is_exact(history: &[Operation]) -> Result<(), String> {
    let watched = history.iter().filter(|o| matches!(o.call, Call::WatchedSet { .. }));
    let ran = watched.clone().filter(|o| matches!(o.completed, Some((_, Outcome::Ok)))).count();
    let unknown = watched.clone().filter(|o| o.completed.is_none()).count();
    let aborted = watched.filter(|o| matches!(o.completed, Some((_, Outcome::Aborted)))).count();
    let last_read = history.iter().rev().find(|o| o.client == 0 && o.key == WATCHED_COUNTER);
    let value = match last_read.and_then(|o| o.completed.as_ref()) {
        Some((_, Outcome::Value(value))) => value.as_deref().map_or(Ok(0), str::parse::<usize>),
        _ => return Err("the watched counter was not read after healing".into()),
    };
    match value {
        Ok(value) if (ran..=ran + unknown).contains(&value) => Ok(()),
        other => Err(format!(
            "watched counter is {other:?} after {ran} EXECs that ran, {unknown} of unknown outcome, {aborted} aborted"
        )),
    }
}

/// The node that currently believes it leads (the highest term if several).
fn leader_of(shared: &SharedRef) -> Option<(Term, String)> {
    let s = shared.borrow();
    let leaders =
        s.roles.iter().filter(|(_, (_, leads))| *leads).map(|(name, (term, _))| (*term, name.clone()));
    leaders.max()
}

/// Cuts every link between `victim` and the other hosts.
fn isolate(sim: &mut turmoil::Sim, victim: &str, all: &[String]) {
    for other in all.iter().filter(|o| *o != victim) {
        sim.partition(victim, other.as_str());
    }
}

/// One line per running node, for failure reports.
fn node_states(s: &Shared) -> Vec<String> {
    s.nodes
        .iter()
        .map(|(name, node)| match node.try_borrow() {
            Ok(router) => {
                let node = router.home();
                let raft = node.raft();
                let groups: Vec<String> = router
                    .groups()
                    .filter(|(g, _)| *g != HOME)
                    .map(|(g, n)| format!("g{}: {:?} t{} c{} a{}", g.0, n.raft().leader(), n.raft().term(), n.raft().commit(), n.raft().applied()))
                    .collect();
                format!(
                    "state of {name}: node {} {:?} term {} leader {:?} commit {} applied {} membership {:?} removed {:?}; key groups (leader, term, commit, applied): {}",
                    raft.id(),
                    raft.role(),
                    raft.term(),
                    raft.leader(),
                    raft.commit(),
                    raft.applied(),
                    raft.membership(),
                    node.directory().removed,
                    if groups.is_empty() { "none".to_string() } else { groups.join(", ") }
                )
            }
            Err(_) => format!("state of {name}: busy"),
        })
        .collect()
}

fn crash(sim: &mut turmoil::Sim, shared: &SharedRef, victim: &str, rng: &mut SplitMix64) {
    sim.crash(victim);
    let options = CrashOptions {
        keep_unsynced_bytes: [0, 1 + below(rng, 64) as usize, usize::MAX][below(rng, 3) as usize],
        tear_last_byte: below(rng, 4) == 0,
    };
    let mut s = shared.borrow_mut();
    s.nodes.remove(victim);
    s.roles.remove(victim);
    s.clocks.stopped(victim);
    let survivor = s.disks.get(victim).map(|disk| disk.crash(options)).unwrap_or_default();
    s.disks.insert(victim.to_string(), survivor);
}

fn repair_all(sim: &mut turmoil::Sim, hosts: &[String]) {
    for a in hosts {
        for b in hosts.iter().filter(|b| *b != a) {
            sim.repair(a.as_str(), b.as_str());
            sim.release(a.as_str(), b.as_str());
        }
    }
}

fn heal(sim: &mut turmoil::Sim, shared: &SharedRef, restarts: &mut BTreeMap<String, u64>) {
    let hosts: Vec<String> = shared.borrow().members.clone();
    repair_all(sim, &hosts);
    sim.set_max_message_latency(Duration::from_millis(2));
    let mut s = shared.borrow_mut();
    s.drop_percent = 0;
    s.duplicate_percent = 0;
    s.healed = true;
    drop(s);
    for (name, _) in std::mem::take(restarts) {
        sim.bounce(name.as_str());
    }
}

/// Simulated milliseconds the run may go on after its clients finish, for
/// the live members to reach the same applied index.
const SETTLE_STEPS: u32 = 2_000;

/// Simulated milliseconds an idle cluster may take for every group to go
/// quiet (a few heartbeat rounds, and the leaders' spreading).
const QUIET_STEPS: u32 = 5_000;

/// Every group has a quiet leader.
fn all_groups_quiet(shared: &SharedRef) -> bool {
    let s = shared.borrow();
    let mut quiet: BTreeMap<GroupId, bool> = BTreeMap::new();
    // Every host (a name the admin removed may have joined again).
    for node in s.nodes.values() {
        let Ok(router) = node.try_borrow() else { return false };
        for (group, node) in router.groups() {
            *quiet.entry(group).or_default() |= node.raft().is_quiet();
        }
    }
    quiet.values().all(|q| *q)
}

/// The groups without a quiet leader, with what their leaders see.
fn loud_groups(shared: &SharedRef) -> String {
    let s = shared.borrow();
    let mut out = Vec::new();
    for (name, node) in &s.nodes {
        let Ok(router) = node.try_borrow() else { continue };
        for (group, node) in router.groups() {
            let raft = node.raft();
            if !raft.is_leader() {
                out.push(format!(
                    "group {} at {name}: {:?} term {} leader {:?} voters {:?}",
                    group.0,
                    raft.role(),
                    raft.term().0,
                    raft.leader(),
                    raft.membership().voters
                ));
            } else if !raft.is_quiet() {
                let progress: Vec<String> = raft
                    .progress()
                    .iter()
                    .map(|(id, p)| format!("{id}: match {} {:?}", p.match_index.0, p.state))
                    .collect();
                out.push(format!(
                    "group {} led by {name} (removed {}, commit {}, last {}, transfer {:?}, {})",
                    group.0,
                    router.home().directory().removed.len(),
                    raft.commit().0,
                    raft.log().last_index().0,
                    raft.transfer_target(),
                    progress.join(", ")
                ));
            }
        }
    }
    out.join("; ")
}

/// The distinct indexes the live members have applied.
fn applied_indexes(shared: &SharedRef) -> BTreeSet<Vec<Index>> {
    let s = shared.borrow();
    let live = s.nodes.iter().filter(|(name, _)| !s.removed.contains(*name));
    let applied = |router: &Member| router.groups().map(|(_, node)| node.raft().applied()).collect();
    live.filter_map(|(_, node)| node.try_borrow().ok().map(|router| applied(&router))).collect()
}

/// After the final reads: every live member applied the same index and
/// holds the same key space.
fn converged(shared: &SharedRef) -> Result<(), String> {
    let s = shared.borrow();
    // Per group, the first replica seen: every other must equal it (a
    // member that holds no replica of a group, its key groups placed on
    // some members only, is not looked at).
    let mut first: BTreeMap<GroupId, (String, Index, cashe::kv::Store)> = BTreeMap::new();
    for (name, node) in &s.nodes {
        if s.removed.contains(name) {
            continue;
        }
        let router = node.try_borrow().map_err(|_| format!("{name} is busy at the end"))?;
        for (group, node) in router.groups().filter(|(group, _)| router.holds(*group)) {
            let (applied, store) = (node.raft().applied(), node.store());
            // No group holds a key of another's slots (`misroute`).
            if group != HOME {
                let shards = s.shards;
                let of = |key: &[u8]| cashe::kv::slot::group_of_slot(cashe::kv::slot::key_slot(key), shards);
                if let Some(key) = store.every_key().find(|key| of(key) != group.0) {
                    return Err(format!(
                        "group {} at {name} holds {:?}, a key of group {}: two groups serve its slot",
                        group.0,
                        String::from_utf8_lossy(key),
                        of(key)
                    ));
                }
            }
            match first.get(&group) {
                None => _ = first.insert(group, (name.clone(), applied, store.clone())),
                Some((first_name, first_applied, first_store)) if first_store != store => {
                    return Err(format!(
                        "replicas of group {} differ after healing: {first_name} (applied {first_applied}) and {name} (applied {applied})",
                        group.0
                    ));
                }
                Some(_) => {}
            }
        }
    }
    Ok(())
}
