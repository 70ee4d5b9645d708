//! A real partition (issue 13): three `cashe` processes, each in its own
//! network namespace, with two links each. The *peer* link joins the node
//! to a bridge in a hub namespace and carries Raft traffic (and the joins);
//! the *client* link is a veth pair to the test's namespace, where the
//! clients run. Cutting the leader takes its peer link down: it loses its
//! followers while its clients stay connected to it.
//!
//! While three client threads (one connection per node) send SET and GET to
//! short-lived register keys and INCR to one counter, the test cuts the
//! leader off and asserts that
//! (a) the old leader stops claiming leadership (ROLE) within ten election
//!     timeouts, and from then on answers every read and write with an
//!     error, never a value or OK (check-quorum step-down, dissertation
//!     §6.2; `CASHE_MODEL_BUG=no-check-quorum-step-down` must fail here);
//! (b) the majority elects a leader and acknowledges writes and reads;
//! (c) after healing, every node converges, and the whole history, with a
//!     final read of every key through every node, is linearizable in
//!     connection order (tests/common/history.rs, per key; an error or a lost
//!     connection leaves an operation's outcome unknown), so no acknowledged
//!     write is lost; the counter ends between its acknowledged and its
//!     attempted increments, and acknowledged increments return distinct,
//!     real-time ordered values.
//!
//! It needs root (`ip netns`), so it is `#[ignore]`d in `make test` and run
//! by `make partition`; as another user it fails and says why. Every name
//! carries the test's pid, namespaces a dead run left behind are removed
//! first, processes are killed by pid and namespaces deleted on drop (panic
//! or not), and every wait is bounded.

#[path = "cluster/harness.rs"]
mod harness;
#[allow(dead_code)]
#[path = "common/history.rs"]
mod history;

use cashe::protocol::Reply;
use cashe::raft::SplitMix64;
use harness::{field, run_bounded, Client, TempDir, PATIENCE};
use history::{Call, History, Outcome};
use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const NODES: usize = 3;
const TICK_MS: u64 = 10;
const HEARTBEAT_TICKS: u32 = 2;
const ELECTION_TICKS: u32 = 30;
/// (a): the cut-off leader must stop claiming leadership within this many
/// election timeouts (check-quorum steps down within two).
const STEP_DOWN_ELECTION_TIMEOUTS_MAX: u32 = 10;
/// Traffic on a healthy cluster before the cut.
const WARM_UP: Duration = Duration::from_secs(2);
/// How long the partition lasts once the majority has a leader.
const CUT_AFTER_NEW_LEADER: Duration = Duration::from_secs(3);
/// Traffic after the healed cluster has converged.
const AFTER_HEAL: Duration = Duration::from_secs(2);
/// Register keys live for one window: every connection that sends in a
/// window uses the window's keys, so each key's history stays within the
/// checker's limits (8 connections, 8 operations each).
const WINDOW: Duration = Duration::from_millis(200);
const WINDOW_KEYS: u64 = 2;
const KEY_OPERATIONS_MAX: usize = 8;
/// A client gives up waiting for one reply after this (an unknown outcome).
const OPERATION_TIMEOUT: Duration = Duration::from_secs(5);
/// Client threads stop by this time even if the test never tells them.
const WORKLOAD_MAX: Duration = Duration::from_secs(180);
const COUNTER: &str = "counter";
const CLIENT_PORT: u16 = 3000;
const RAFT_PORT: u16 = 4000;
/// Root-side interface names are `cp<pid>c<n>`; namespaces `cashe-p<pid>-*`.
const NAMESPACE_PREFIX: &str = "cashe-p";

fn election_timeout() -> Duration {
    Duration::from_millis(TICK_MS * u64::from(ELECTION_TICKS))
}

// ----- the network ----------------------------------------------------------

/// Runs `ip` with `args`; panics with its stderr if it fails.
fn ip(args: &[&str]) {
    let finished = run_bounded(Command::new("ip").args(args), Duration::from_secs(10));
    let ok = finished.status.is_some_and(|s| s.success());
    assert!(ok, "ip {} failed: {}{}", args.join(" "), finished.stdout, finished.stderr);
}

/// The same, for clean-up: failures are reported, not raised.
fn ip_quietly(args: &[&str]) -> String {
    let finished = run_bounded(Command::new("ip").args(args), Duration::from_secs(10));
    if !finished.status.is_some_and(|s| s.success()) {
        eprintln!("partition: clean-up `ip {}` failed: {}", args.join(" "), finished.stderr.trim());
    }
    finished.stdout
}

/// Fails (never skips) unless this process can create network namespaces.
fn require_root() {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let euid =
        field(&status.replace('\t', " "), "Uid").and_then(|ids| ids.split(' ').nth(1).map(String::from));
    assert_eq!(
        euid.as_deref(),
        Some("0"),
        "tests/partition.rs needs root to create network namespaces (`ip netns`); run `make partition` as root"
    );
    ip(&["netns", "list"]);
}

/// Whether `pid` names a process that no longer runs.
fn is_dead(pid: &str) -> bool {
    !pid.is_empty()
        && pid.bytes().all(|b| b.is_ascii_digit())
        && !std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// What an earlier run whose process is gone left behind: the processes in
/// its namespaces are killed by pid (a crashed run cannot kill its
/// children), its namespaces and data directory deleted, and its root-side
/// links deleted by name (a deleted namespace the kernel still holds, for
/// its orphaned sockets, keeps them and their routes for a while).
fn remove_dead_runs() {
    for line in ip_quietly(&["netns", "list"]).lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        let Some(rest) = name.strip_prefix(NAMESPACE_PREFIX) else { continue };
        let pid = rest.split('-').next().unwrap_or("");
        if !is_dead(pid) {
            continue;
        }
        for process in ip_quietly(&["netns", "pids", name]).split_whitespace() {
            let _ = Command::new("kill").args(["-9", process]).status();
        }
        eprintln!("partition: removing namespace {name} left by dead run {pid}");
        ip_quietly(&["netns", "del", name]);
        let directory = std::env::temp_dir().join(format!("cashe-partition-{pid}-0"));
        let _ = std::fs::remove_dir_all(directory);
    }
    for line in ip_quietly(&["-brief", "link"]).lines() {
        let name = line.split(['@', ' ']).next().unwrap_or("");
        let Some((pid, _)) = name.strip_prefix("cp").and_then(|rest| rest.split_once('c')) else { continue };
        if is_dead(pid) {
            eprintln!("partition: removing link {name} left by dead run {pid}");
            ip_quietly(&["link", "del", name]);
        }
    }
}

/// Node `n` lives in namespace `<tag>-n<n>` with interfaces `peer`
/// (198.19.0.n+1/24, bridged in `<tag>-hub`) and `client` (198.18.b+n.2/24,
/// whose other end `cp<pid>c<n>` is 198.18.b+n.1 here). 198.18.0.0/15 is
/// reserved for network tests (RFC 2544); `b` follows the pid, so two runs
/// at once use different subnets.
struct Network {
    tag: String,
    pid: u32,
    subnet_base: u8,
    namespaces: Vec<String>,
    /// The root-side ends of the client links.
    links: Vec<String>,
}

impl Network {
    fn create() -> Network {
        let pid = std::process::id();
        let tag = format!("{NAMESPACE_PREFIX}{pid}");
        let subnet_base = u8::try_from(4 * (pid % 60)).expect("below 240");
        let mut network = Network { tag, pid, subnet_base, namespaces: Vec::new(), links: Vec::new() };
        let hub = network.hub();
        network.add_namespace(&hub);
        ip(&["-n", &hub, "link", "add", "bridge", "type", "bridge"]);
        ip(&["-n", &hub, "link", "set", "bridge", "up"]);
        for node in 0..NODES {
            network.add_node(node);
        }
        network
    }

    fn hub(&self) -> String {
        format!("{}-hub", self.tag)
    }

    fn namespace(&self, node: usize) -> String {
        format!("{}-n{node}", self.tag)
    }

    fn add_namespace(&mut self, name: &str) {
        ip(&["netns", "add", name]);
        self.namespaces.push(name.to_string());
        ip(&["-n", name, "link", "set", "lo", "up"]);
    }

    fn add_node(&mut self, node: usize) {
        let (namespace, hub) = (self.namespace(node), self.hub());
        self.add_namespace(&namespace);
        let hub_end = format!("port{node}");
        ip(&[
            "-n", &namespace, "link", "add", "peer", "type", "veth", "peer", "name", &hub_end, "netns", &hub,
        ]);
        ip(&["-n", &hub, "link", "set", &hub_end, "master", "bridge", "up"]);
        ip(&["-n", &namespace, "addr", "add", &format!("{}/24", peer_address(node)), "dev", "peer"]);
        ip(&["-n", &namespace, "link", "set", "peer", "up"]);
        let root_end = format!("cp{}c{node}", self.pid);
        ip(&["link", "add", &root_end, "type", "veth", "peer", "name", "client", "netns", &namespace]);
        self.links.push(root_end.clone());
        ip(&["addr", "add", &format!("{}/24", self.client_gateway(node)), "dev", &root_end]);
        ip(&["link", "set", &root_end, "up"]);
        let client = format!("{}/24", self.client_address(node).ip());
        ip(&["-n", &namespace, "addr", "add", &client, "dev", "client"]);
        ip(&["-n", &namespace, "link", "set", "client", "up"]);
    }

    fn client_gateway(&self, node: usize) -> Ipv4Addr {
        Ipv4Addr::new(198, 18, self.subnet_base + node as u8, 1)
    }

    fn client_address(&self, node: usize) -> SocketAddr {
        SocketAddr::V4(SocketAddrV4::new(
            Ipv4Addr::new(198, 18, self.subnet_base + node as u8, 2),
            CLIENT_PORT,
        ))
    }

    /// Node `node` loses its peers; its clients keep their connections.
    fn cut(&self, node: usize) {
        ip(&["-n", &self.namespace(node), "link", "set", "peer", "down"]);
    }

    fn heal(&self, node: usize) {
        ip(&["-n", &self.namespace(node), "link", "set", "peer", "up"]);
    }
}

fn peer_address(node: usize) -> Ipv4Addr {
    Ipv4Addr::new(198, 19, 0, node as u8 + 1)
}

impl Drop for Network {
    /// Deleting a namespace deletes the veths in it and their other ends,
    /// once the kernel lets it go; the root-side ends go first, by name.
    fn drop(&mut self) {
        for link in &self.links {
            ip_quietly(&["link", "del", link]);
        }
        for namespace in self.namespaces.iter().rev() {
            ip_quietly(&["netns", "del", namespace]);
        }
    }
}

// ----- the nodes ------------------------------------------------------------

/// One `cashe` process in its namespace (`ip netns exec` execs it, so the
/// child's pid is the node's), killed by pid when dropped.
struct Node {
    name: String,
    client: SocketAddr,
    log: std::path::PathBuf,
    child: Child,
}

impl Node {
    fn start(network: &Network, root: &TempDir, node: usize) -> Node {
        let name = format!("raft{node}");
        let log_path = root.0.join(format!("{name}.log"));
        let log = std::fs::File::create(&log_path).expect("create the node's log");
        let client = network.client_address(node);
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", &network.namespace(node), env!("CARGO_BIN_EXE_cashe")])
            .args(["--id", &name, "--listenaddr", &format!("0.0.0.0:{CLIENT_PORT}")])
            .args(["--raftaddr", &format!("{}:{RAFT_PORT}", peer_address(node))])
            .args(["--advertise-client", &client.to_string()])
            .args(["--datadir", &root.0.join(&name).display().to_string()])
            .args(["--tick-ms", &TICK_MS.to_string(), "--heartbeat-ticks", &HEARTBEAT_TICKS.to_string()])
            .args(["--election-ticks", &ELECTION_TICKS.to_string(), "--log-level", "info"])
            // Clients and joins come from other namespaces' addresses, not
            // 127.0.0.1, and the test sets no password.
            .args(["--protected-mode", "no"]);
        if node > 0 {
            // Joins go over the peer network: node 0 listens for clients on
            // every interface of its namespace.
            command.args(["--leaderaddr", &format!("{}:{CLIENT_PORT}", peer_address(0))]);
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the log"))
            .stderr(log)
            .spawn()
            .expect("start cashe through ip netns exec");
        Node { name, client, log: log_path, child }
    }

    fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        format!(
            "==== {} (last {lines} lines)\n{}\n",
            self.name,
            all[all.len().saturating_sub(lines)..].join("\n")
        )
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One command on a fresh connection, answered within a second.
fn ask(address: SocketAddr, args: &[&str]) -> Option<Reply> {
    let mut client = Client::connect_to(address, Duration::from_secs(1)).ok()?;
    client.stream.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
    client.call(args).ok()
}

fn is_master(address: SocketAddr) -> Option<bool> {
    match ask(address, &["ROLE"])? {
        Reply::Array(Some(parts)) => Some(parts.first() == Some(&Reply::bulk("master"))),
        _ => None,
    }
}

/// The leader every node names in CLUSTER INFO, once the cluster has
/// `NODES` voters.
fn agreed_leader(nodes: &[Node]) -> Option<String> {
    let mut named = BTreeSet::new();
    for node in nodes {
        let info = match ask(node.client, &["CLUSTER", "INFO"])? {
            Reply::Bulk(Some(bytes)) => String::from_utf8_lossy(&bytes).into_owned(),
            _ => return None,
        };
        let voters: usize = field(&info, "cluster_voters")?.parse().ok()?;
        let learners: usize = field(&info, "cluster_learners")?.parse().ok()?;
        if voters != NODES || learners != 0 {
            return None;
        }
        named.insert(field(&info, "cluster_leader").filter(|l| l != "-")?);
    }
    (named.len() == 1).then(|| named.pop_first().expect("one name"))
}

/// Polls `attempt` every 20 ms until it returns `Some` or `limit` passes.
fn within<T>(limit: Duration, mut attempt: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = attempt() {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

// ----- the clients ----------------------------------------------------------

#[derive(Clone, Debug)]
enum Operation {
    Set(String, String),
    Get(String),
    Increment,
}

#[derive(Clone, Debug, PartialEq)]
enum Answer {
    Written,
    Read(Option<Vec<u8>>),
    Counted(i64),
    /// An error reply: the outcome is unknown (`-TIMEOUT`), or the
    /// operation was not applied (`-CLUSTERDOWN`); either way no value.
    Refused(String),
    /// No reply (the connection broke or timed out): the outcome is unknown.
    Lost(String),
}

#[derive(Clone, Debug)]
struct Record {
    node: usize,
    /// Unique per TCP connection.
    connection: usize,
    operation: Operation,
    sent: Instant,
    answered: Instant,
    answer: Answer,
}

impl Record {
    fn key(&self) -> &str {
        match &self.operation {
            Operation::Set(key, _) | Operation::Get(key) => key,
            Operation::Increment => COUNTER,
        }
    }

    fn succeeded(&self) -> bool {
        !matches!(self.answer, Answer::Refused(_) | Answer::Lost(_))
    }
}

static NEXT_CONNECTION: AtomicUsize = AtomicUsize::new(0);

/// Sends `operation` and classifies the reply; an IO error closes `client`.
fn perform(node: usize, client: &mut Option<(usize, Client)>, operation: Operation) -> Record {
    let (connection, stream) = client.as_mut().expect("connected");
    let connection = *connection;
    let args: Vec<&str> = match &operation {
        Operation::Set(key, value) => vec!["SET", key, value],
        Operation::Get(key) => vec!["GET", key],
        Operation::Increment => vec!["INCR", COUNTER],
    };
    let sent = Instant::now();
    let reply = stream.call(&args);
    let answered = Instant::now();
    let answer = match (&operation, reply) {
        (_, Err(e)) => Answer::Lost(e.to_string()),
        (_, Ok(Reply::Error(e))) => Answer::Refused(e),
        (Operation::Set(..), Ok(reply)) if reply == Reply::ok() => Answer::Written,
        (Operation::Get(_), Ok(Reply::Bulk(value))) => Answer::Read(value),
        (Operation::Get(_), Ok(Reply::Null)) => Answer::Read(None),
        (Operation::Increment, Ok(Reply::Integer(n))) => Answer::Counted(n),
        (operation, Ok(reply)) => panic!("{args:?} ({operation:?}) answered {reply:?}"),
    };
    if matches!(answer, Answer::Lost(_)) {
        *client = None;
    }
    Record { node, connection, operation, sent, answered, answer }
}

fn connect(address: SocketAddr) -> Option<(usize, Client)> {
    let client = Client::connect_to(address, Duration::from_secs(1)).ok()?;
    client.stream.set_read_timeout(Some(OPERATION_TIMEOUT)).ok()?;
    Some((NEXT_CONNECTION.fetch_add(1, Ordering::Relaxed), client))
}

/// One client thread's loop against `node`: a SET or GET on a key of the
/// current window (at most `KEY_OPERATIONS_MAX` per key), or an INCR. A
/// lost connection is replaced only in the next window, so a key never
/// sees two connections of one thread.
fn run_client(node: usize, address: SocketAddr, start: Instant, stop: Arc<AtomicBool>) -> Vec<Record> {
    let mut random = SplitMix64::new(u64::from(std::process::id()) << 8 | node as u64);
    let mut records = Vec::new();
    let mut client: Option<(usize, Client)> = None;
    let mut broken_in = None;
    let mut sent_on: BTreeMap<(u64, u64), usize> = BTreeMap::new();
    let window_of = |at: Instant| (at - start).as_millis() as u64 / WINDOW.as_millis() as u64;
    let next_window = |window: u64| start + WINDOW * (window as u32 + 1);
    while !stop.load(Ordering::Relaxed) && start.elapsed() < WORKLOAD_MAX {
        let window = window_of(Instant::now());
        if client.is_none() && broken_in != Some(window) {
            client = connect(address);
        }
        if client.is_none() {
            broken_in = Some(window);
            std::thread::sleep(next_window(window).saturating_duration_since(Instant::now()));
            continue;
        }
        let open: Vec<u64> = (0..WINDOW_KEYS)
            .filter(|k| sent_on.get(&(window, *k)).copied().unwrap_or(0) < KEY_OPERATIONS_MAX)
            .collect();
        let choice = random.range(0, 5);
        let operation = if choice == 0 {
            Operation::Increment
        } else if open.is_empty() {
            std::thread::sleep(next_window(window).saturating_duration_since(Instant::now()));
            continue;
        } else {
            let slot = open[random.range(0, open.len() as u64) as usize];
            *sent_on.entry((window, slot)).or_default() += 1;
            let key = format!("register-{window}-{slot}");
            if choice % 2 == 1 {
                Operation::Set(key, format!("{node}-{}", records.len()))
            } else {
                Operation::Get(key)
            }
        };
        records.push(perform(node, &mut client, operation));
        if client.is_none() {
            broken_in = Some(window);
        }
    }
    records
}

/// The client threads; dropping this stops and joins them (each stops
/// within one operation's timeout), panic or not.
struct Clients {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<Vec<Record>>>,
}

impl Clients {
    fn start(nodes: &[Node], start: Instant) -> Clients {
        let stop = Arc::new(AtomicBool::new(false));
        let threads = nodes
            .iter()
            .enumerate()
            .map(|(index, node)| {
                let (address, stop) = (node.client, stop.clone());
                std::thread::spawn(move || run_client(index, address, start, stop))
            })
            .collect();
        Clients { stop, threads }
    }

    fn finish(mut self) -> Vec<Record> {
        self.stop.store(true, Ordering::Relaxed);
        let threads = std::mem::take(&mut self.threads);
        threads.into_iter().flat_map(|t| t.join().expect("a client thread panicked")).collect()
    }
}

impl Drop for Clients {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// After healing: `GET key` for every key through every node, each node on
/// a connection of its own; an error is retried (a failed read changes
/// nothing, so it is left out of the history).
fn read_everything(nodes: &[Node], keys: &BTreeSet<String>) -> Vec<Record> {
    let mut records = Vec::new();
    for (index, node) in nodes.iter().enumerate() {
        let mut client = None;
        for key in keys {
            let read = within(PATIENCE, || {
                if client.is_none() {
                    client = connect(node.client);
                }
                client.as_ref()?;
                let record = perform(index, &mut client, Operation::Get(key.clone()));
                record.succeeded().then_some(record)
            });
            let read = read
                .unwrap_or_else(|| panic!("final GET {key} through {} failed for {PATIENCE:?}", node.name));
            records.push(read);
        }
    }
    records
}

// ----- the checks -----------------------------------------------------------

/// The history of one register key, rebuilt in real time: each operation
/// sent when it was sent, answered when it was answered (failures never).
fn register_history(records: &[&Record]) -> History {
    let connections: BTreeSet<usize> = records.iter().map(|r| r.connection).collect();
    let slot = |connection: usize| connections.iter().position(|c| *c == connection).expect("known");
    let mut events: Vec<(Instant, bool, usize)> = Vec::new();
    for (index, record) in records.iter().enumerate() {
        events.push((record.sent, false, index));
        if record.succeeded() {
            events.push((record.answered, true, index));
        }
    }
    // At equal instants a send goes first: it then follows fewer answers.
    events.sort();
    let mut history = History::new(connections.len());
    let mut seqs = vec![0; records.len()];
    for (_, is_answer, index) in events {
        let record = records[index];
        let connection = slot(record.connection);
        match (&record.operation, &record.answer, is_answer) {
            (Operation::Set(_, value), _, false) => {
                seqs[index] = history.send(connection, Call::Write(value.clone().into_bytes()))
            }
            (Operation::Get(_), _, false) => seqs[index] = history.send(connection, Call::Read),
            (_, Answer::Written, true) => history.answer(connection, seqs[index], Outcome::Written),
            (_, Answer::Read(value), true) => {
                history.answer(connection, seqs[index], Outcome::Read(value.clone()))
            }
            (operation, answer, _) => panic!("{operation:?} answered {answer:?} in a register history"),
        }
    }
    history
}

/// Every register key's history is linearizable in connection order.
fn check_registers(records: &[Record], nodes: &[Node], start: Instant, times: &Timeline) -> usize {
    let mut by_key: BTreeMap<&str, Vec<&Record>> = BTreeMap::new();
    for record in records.iter().filter(|r| r.key() != COUNTER) {
        by_key.entry(record.key()).or_default().push(record);
    }
    for (key, records) in &by_key {
        let history = register_history(records);
        if !history.is_linearizable() {
            // The history numbers connections in the order of their ids.
            let connections: BTreeMap<usize, &str> =
                records.iter().map(|r| (r.connection, nodes[r.node].name.as_str())).collect();
            let on: Vec<&str> = connections.into_values().collect();
            panic!(
                "the history of {key} is not linearizable; its connections 0, 1, ... are on {on:?} (the last \
                 {NODES} are the final reads); register-<n>-* keys are written from {WINDOW:?} * n after the \
                 start, the cut came {:?} and healing {:?} after the start:\n{history}",
                times.cut - start,
                times.healed - start
            );
        }
    }
    by_key.len()
}

/// INCR: acknowledged increments return distinct values, in real-time
/// order, and the final value (the same through every node) lies between
/// the acknowledged and the attempted increments.
fn check_counter(records: &[Record], finals: &[Record]) -> i64 {
    let increments: Vec<&Record> =
        records.iter().filter(|r| matches!(r.operation, Operation::Increment)).collect();
    let counted: Vec<(i64, &Record)> = increments
        .iter()
        .filter_map(|r| match r.answer {
            Answer::Counted(n) => Some((n, *r)),
            _ => None,
        })
        .collect();
    let distinct: BTreeSet<i64> = counted.iter().map(|(n, _)| *n).collect();
    assert_eq!(distinct.len(), counted.len(), "two acknowledged INCRs returned the same value");
    for (earlier, first) in &counted {
        for (later, second) in &counted {
            assert!(
                !(first.answered < second.sent && earlier >= later),
                "INCR answered {earlier} before another INCR was sent, which then answered {later}"
            );
        }
    }
    let values: BTreeSet<Option<Vec<u8>>> = finals
        .iter()
        .filter(|r| r.key() == COUNTER)
        .map(|r| match &r.answer {
            Answer::Read(value) => value.clone(),
            answer => panic!("final read of {COUNTER}: {answer:?}"),
        })
        .collect();
    assert_eq!(values.len(), 1, "the nodes disagree on {COUNTER}: {values:?}");
    let text = values.into_iter().next().flatten().map(|v| String::from_utf8_lossy(&v).into_owned());
    let value: i64 = text.as_deref().unwrap_or("0").parse().expect("the counter is a number");
    let (acknowledged, attempted) = (counted.len() as i64, increments.len() as i64);
    assert!(
        acknowledged <= value && value <= attempted,
        "{COUNTER} ended at {value}, outside [{acknowledged} acknowledged, {attempted} attempted]: acknowledged \
         increments were lost or phantom ones applied"
    );
    value
}

// ----- the test -------------------------------------------------------------

/// The phases' instants, for the checks and the report.
struct Timeline {
    cut: Instant,
    stepped_down: Instant,
    new_leader: Instant,
    healed: Instant,
}

/// (a) and (b), on what the clients saw during the partition.
/// Returns how the old leader refused (by the error's first word) and how
/// many operations the majority acknowledged.
fn check_partition(
    records: &[Record],
    old: usize,
    times: &Timeline,
    nodes: &[Node],
) -> (BTreeMap<String, usize>, usize) {
    let during = |r: &&Record, from: Instant| r.sent >= from && r.answered < times.healed;
    let isolated: Vec<&Record> =
        records.iter().filter(|r| r.node == old && during(r, times.stepped_down)).collect();
    assert!(
        !isolated.is_empty(),
        "no operation reached the cut-off {} after it stepped down",
        nodes[old].name
    );
    let mut refusals: BTreeMap<String, usize> = BTreeMap::new();
    for record in &isolated {
        let (Answer::Refused(text) | Answer::Lost(text)) = &record.answer else {
            panic!(
                "the cut-off {} answered {:?} with {:?} after it stepped down: only an error is linearizable there",
                nodes[old].name, record.operation, record.answer
            )
        };
        *refusals.entry(text.split(' ').next().unwrap_or("").to_string()).or_default() += 1;
    }
    let majority: Vec<&Record> =
        records.iter().filter(|r| r.node != old && during(r, times.new_leader)).collect();
    let writes = majority.iter().filter(|r| matches!(r.answer, Answer::Written | Answer::Counted(_))).count();
    let reads = majority.iter().filter(|r| matches!(r.answer, Answer::Read(_))).count();
    assert!(
        writes > 0 && reads > 0,
        "the majority acknowledged {writes} writes and {reads} reads during the cut"
    );
    (refusals, writes + reads)
}

/// Cuts `old` off, returns the phases' instants; (a)'s step-down bound is
/// checked here, as it happens.
fn partition(network: &Network, nodes: &[Node], old: usize) -> Timeline {
    let cut = Instant::now();
    network.cut(old);
    let bound = election_timeout() * STEP_DOWN_ELECTION_TIMEOUTS_MAX;
    let stepped_down = within(bound, || (is_master(nodes[old].client) == Some(false)).then(Instant::now));
    let stepped_down = stepped_down.unwrap_or_else(|| {
        panic!(
            "{} still answers ROLE master {bound:?} ({STEP_DOWN_ELECTION_TIMEOUTS_MAX} election timeouts) after \
             it was cut off from its followers: a leader without a quorum must step down (check-quorum, \
             dissertation §6.2)\n{}",
            nodes[old].name,
            nodes[old].log_tail(15)
        )
    });
    eprintln!("partition: {} stepped down {:?} after the cut", nodes[old].name, stepped_down - cut);
    let others: Vec<usize> = (0..NODES).filter(|n| *n != old).collect();
    let new_leader = within(PATIENCE, || others.iter().find(|n| is_master(nodes[**n].client) == Some(true)));
    let new_leader = new_leader.unwrap_or_else(|| panic!("the majority elected no leader in {PATIENCE:?}"));
    let elected = Instant::now();
    eprintln!("partition: {} leads the majority {:?} after the cut", nodes[*new_leader].name, elected - cut);
    std::thread::sleep(CUT_AFTER_NEW_LEADER);
    let healed = Instant::now();
    network.heal(old);
    Timeline { cut, stepped_down, new_leader: elected, healed }
}

#[test]
#[ignore = "needs root for network namespaces: run by `make partition`"]
fn cut_off_leader_steps_down_and_the_majority_serves_without_losing_writes() {
    history::check_examples();
    require_root();
    remove_dead_runs();
    let bug = std::env::var("CASHE_MODEL_BUG").unwrap_or_else(|_| "none".into());
    eprintln!("partition: nodes run with CASHE_MODEL_BUG={bug}");
    let root = TempDir::new("partition");
    let network = Network::create();
    let mut nodes = vec![Node::start(&network, &root, 0)];
    within(PATIENCE, || is_master(nodes[0].client).filter(|m| *m)).expect("raft0 leads its one-node cluster");
    for node in 1..NODES {
        nodes.push(Node::start(&network, &root, node));
    }
    let tails = |nodes: &[Node]| nodes.iter().map(|n| n.log_tail(10)).collect::<String>();
    let leader = within(PATIENCE, || agreed_leader(&nodes));
    let leader = leader.unwrap_or_else(|| panic!("no agreed leader of {NODES} voters\n{}", tails(&nodes)));
    let old = nodes.iter().position(|n| n.name == leader).expect("a node's name");

    let start = Instant::now();
    let clients = Clients::start(&nodes, start);
    std::thread::sleep(WARM_UP);
    let times = partition(&network, &nodes, old);
    let converged = within(PATIENCE, || agreed_leader(&nodes));
    assert!(converged.is_some(), "no agreed leader {PATIENCE:?} after healing\n{}", tails(&nodes));
    eprintln!("partition: healed, {converged:?} leads; converged {:?} after healing", times.healed.elapsed());
    std::thread::sleep(AFTER_HEAL);
    let mut records = clients.finish();

    let (isolated, majority) = check_partition(&records, old, &times, &nodes);
    let keys: BTreeSet<String> = records.iter().map(|r| r.key().to_string()).collect();
    let finals = read_everything(&nodes, &keys);
    let counter = check_counter(&records, &finals);
    records.extend(finals);
    let registers = check_registers(&records, &nodes, start, &times);
    let unknown = records.iter().filter(|r| !r.succeeded()).count();
    eprintln!(
        "partition: {} operations ({unknown} of unknown outcome), {registers} register histories linearizable, \
         counter {counter}; the cut-off leader refused {isolated:?} after stepping down, the majority served \
         {majority}; cut {:?} after the start, lasted {:?}",
        records.len(),
        times.cut - start,
        times.healed - times.cut
    );
}
