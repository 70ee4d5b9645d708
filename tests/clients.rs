//! Clients the way applications use them, on a real 3-node cluster, each
//! test run against redis-server in the same test and required to agree:
//!
//! - connections on every node pipelining many rounds of dependent commands
//!   (a write, then a read of it) in single socket writes, half of them in
//!   RESP3: every reply equal byte for byte to Redis's and to the expected
//!   answer (connection order, through forwarding), on nodes running three
//!   executors (`--cores 3`);
//! - redis-py with its defaults (RESP3, MULTI/EXEC pipelines, WATCH
//!   transactions, hashes, lists with a BRPOP served by another node's
//!   push, sets, sorted sets, bitmaps, COPY, OBJECT ENCODING) against a
//!   follower, `tests/py/redis_py_clients.py`;
//! - concurrent WATCH/MULTI/EXEC increments of one key from every node:
//!   no increment lost or doubled.
//!
//! Processes run on 127.0.0.1 on free ports and are killed by PID when the
//! test ends, pass or fail; every loop has a count and a time bound.

#[path = "cluster/harness.rs"]
mod harness;
#[path = "common/redis.rs"]
mod redis;

use cashe::protocol::Reply;
use harness::{venv_python, Client, Cluster};
use std::time::{Duration, Instant};

/// How much of each node's log a failure shows.
const LOG_LINES: usize = 40;

/// The replies of one connection, each as the exact bytes received.
type Transcript = Vec<Vec<u8>>;

/// Errors after which cashe did nothing, or (for `-TIMEOUT`) may have.
fn is_cluster_condition(reply: &Reply) -> bool {
    matches!(reply, Reply::Error(e) if ["CLUSTERDOWN", "TIMEOUT", "TRYAGAIN"].iter().any(|p| e.starts_with(p)))
}

fn show(bytes: &[u8]) -> String {
    format!("{:?}", String::from_utf8_lossy(bytes))
}

// ---------------------------------------------------------------------------
// 1. Pipelining

const PIPELINE_CONNECTIONS_PER_NODE: usize = 4;
const PIPELINE_NODES: usize = 3;
const PIPELINE_ROUNDS: usize = 100;
const PIPELINE_ROUNDS_PER_WRITE: usize = 25;

/// One connection's pipelined commands and Redis's answer to each.
struct Script {
    resp3: bool,
    commands: Vec<Vec<String>>,
    expected: Transcript,
}

/// Connection `id`'s script: rounds of a write followed by a read of it on
/// keys of its own, each round's answers depending on the previous rounds.
/// Even connections speak RESP2, odd ones switch to RESP3 first (the HELLO
/// itself is checked apart: its reply names the server).
fn pipeline_script(id: usize) -> Script {
    let resp3 = id % 2 == 1;
    let nil: &[u8] = if resp3 { b"_\r\n" } else { b"$-1\r\n" };
    let (k, c, a) = (format!("pipe:{id}:k"), format!("pipe:{id}:c"), format!("pipe:{id}:a"));
    let bulk = |text: &str| format!("${}\r\n{text}\r\n", text.len()).into_bytes();
    let integer = |n: usize| format!(":{n}\r\n").into_bytes();
    let mut script = Script { resp3, commands: Vec::new(), expected: Vec::new() };
    let mut push = |command: &[&str], expected: Vec<u8>| {
        script.commands.push(command.iter().map(|s| s.to_string()).collect());
        script.expected.push(expected);
    };
    for round in 1..=PIPELINE_ROUNDS {
        let value = format!("v{id}-{round}");
        push(&["SET", &k, &value], b"+OK\r\n".to_vec());
        push(&["GET", &k], bulk(&value));
        push(&["INCR", &c], integer(round));
        push(&["GET", &c], bulk(&round.to_string()));
        push(&["APPEND", &a, "x"], integer(round));
        push(&["STRLEN", &a], integer(round));
        push(&["DEL", &k], integer(1));
        push(&["GET", &k], nil.to_vec());
    }
    script
}

/// Runs the script on a new connection to `port`: HELLO 3 if it speaks
/// RESP3, then all commands in writes of many rounds each, sent back to back
/// before any reply is read; returns every reply's bytes.
fn run_pipeline(port: u16, script: &Script) -> Transcript {
    let mut client = Client::connect(port).unwrap_or_else(|e| panic!("connect to {port}: {e}"));
    if script.resp3 {
        let hello = client.call(&["HELLO", "3"]).expect("HELLO 3");
        let proto = match &hello {
            Reply::Map(fields) => {
                fields.iter().find(|(k, _)| *k == Reply::bulk("proto")).map(|(_, v)| v.clone())
            }
            _ => None,
        };
        assert_eq!(proto, Some(Reply::Integer(3)), "HELLO 3 on port {port} answered {hello:?}");
    }
    let per_write = PIPELINE_ROUNDS_PER_WRITE * script.commands.len() / PIPELINE_ROUNDS;
    for chunk in script.commands.chunks(per_write) {
        client.send_all(chunk).unwrap_or_else(|e| panic!("write to {port}: {e}"));
    }
    (0..script.commands.len())
        .map(|n| match client.read_reply_raw() {
            Ok((_, raw)) => raw,
            Err(e) => panic!("reply {n} of {} from port {port}: {e}", script.commands.len()),
        })
        .collect()
}

/// Every script on its own connection, all at once; `ports[i]` is where
/// script `i` connects.
fn run_pipelines(ports: &[u16], scripts: &[Script]) -> (Vec<Transcript>, Duration) {
    let started = Instant::now();
    let transcripts = std::thread::scope(|scope| {
        let running: Vec<_> = ports
            .iter()
            .zip(scripts)
            .map(|(&port, script)| scope.spawn(move || run_pipeline(port, script)))
            .collect();
        running.into_iter().map(|t| t.join().expect("a pipelining connection panicked")).collect()
    });
    (transcripts, started.elapsed())
}

#[test]
fn pipelined_commands_on_every_node_answer_byte_for_byte_as_redis_does() {
    // Three executors a node: most connections are served by an executor
    // other than the node's, their commands and replies crossing between.
    let cluster = Cluster::start_with("pipelines", PIPELINE_NODES, &["--cores", "3"]);
    let redis = redis::RedisServer::start();
    let connections = PIPELINE_NODES * PIPELINE_CONNECTIONS_PER_NODE;
    let scripts: Vec<Script> = (0..connections).map(pipeline_script).collect();
    let nodes: Vec<usize> = (0..connections).map(|i| i % PIPELINE_NODES).collect();
    let cashe_ports: Vec<u16> = nodes.iter().map(|&n| cluster.servers[n].client_port).collect();
    let (cashe, cashe_time) = run_pipelines(&cashe_ports, &scripts);
    let (redis_replies, redis_time) = run_pipelines(&vec![redis.port; connections], &scripts);

    let leader = cluster.leader();
    let (mut compared, mut wrong, mut disagreements, mut redis_wrong) = (0, 0, 0, 0);
    let mut failures = Vec::new();
    for (id, script) in scripts.iter().enumerate() {
        for (n, command) in script.commands.iter().enumerate() {
            let (expected, ours, theirs) = (&script.expected[n], &cashe[id][n], &redis_replies[id][n]);
            compared += 1;
            wrong += usize::from(ours != expected);
            disagreements += usize::from(ours != theirs);
            redis_wrong += usize::from(theirs != expected);
            if (ours != expected || ours != theirs) && failures.len() < 20 {
                let server = &cluster.servers[nodes[id]];
                failures.push(format!(
                    "connection {id} on {} ({}, {}), command {n} {command:?}: expected {}, cashe {}, redis {}",
                    server.name,
                    if nodes[id] == leader { "leader" } else { "follower" },
                    if script.resp3 { "RESP3" } else { "RESP2" },
                    show(expected),
                    show(ours),
                    show(theirs),
                ));
            }
        }
    }
    println!(
        "pipelining: {connections} connections ({PIPELINE_CONNECTIONS_PER_NODE} per node, half RESP3), \
         {} commands each in writes of {PIPELINE_ROUNDS_PER_WRITE} rounds, {compared} replies compared \
         byte for byte with redis-server: {wrong} wrong answers from cashe, {disagreements} disagreements \
         with redis-server, {redis_wrong} wrong answers from redis-server; cashe took {cashe_time:?}, \
         redis-server {redis_time:?}",
        scripts[0].commands.len(),
    );
    assert_eq!(
        redis_wrong,
        0,
        "the expected answers are Redis's own; the test is wrong:\n{}",
        failures.join("\n")
    );
    assert!(
        wrong == 0 && disagreements == 0,
        "{wrong} wrong answers (first {}):\n{}\n{}",
        failures.len(),
        failures.join("\n"),
        cluster.log_tails(LOG_LINES),
    );
}

// ---------------------------------------------------------------------------
// 2. redis-py

const PYTHON_LIMIT: Duration = Duration::from_secs(120);

/// `tests/py/redis_py_clients.py` against `ports`; its transcript.
fn run_redis_py(against: &str, ports: &[u16]) -> String {
    let ports: Vec<String> = ports.iter().map(u16::to_string).collect();
    harness::run_python("redis_py_clients.py", &ports, PYTHON_LIMIT, against)
}

#[test]
fn redis_py_with_its_defaults_works_through_a_follower_as_against_redis() {
    venv_python(); // a missing venv fails before the cluster starts
    let cluster = Cluster::start("redis-py", 3);
    let followers = cluster.followers();
    let (follower, other) = (&cluster.servers[followers[0]], &cluster.servers[followers[1]]);
    let ours = run_redis_py(
        &format!("cashe follower {}", follower.name),
        &[follower.client_port, other.client_port],
    );
    let redis = redis::RedisServer::start();
    let theirs = run_redis_py("redis-server", &[redis.port, redis.port]);
    println!("--- redis-py transcript against a cashe follower\n{ours}");
    assert_eq!(ours, theirs, "redis-py's transcript: cashe (left) differs from redis-server (right)");
}

// ---------------------------------------------------------------------------
// 3. Concurrent WATCH/MULTI/EXEC increments

const WATCH_CONNECTIONS_PER_NODE: usize = 2;
const WATCH_INCREMENTS: usize = 50;
const WATCH_ATTEMPTS_MAX: usize = 100 * WATCH_INCREMENTS;
const WATCH_LIMIT: Duration = Duration::from_secs(120);
const WATCH_RETRY_PAUSE: Duration = Duration::from_millis(50);

/// What the optimistic increments of one connection (or all) came to.
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    /// EXEC answered with the SET's `+OK`.
    committed: usize,
    /// EXEC answered nil: the watched key changed since WATCH.
    aborted: usize,
    /// A cluster error before EXEC, or on EXEC saying nothing happened.
    retried: usize,
    /// EXEC answered `-TIMEOUT`: the increment may or may not have happened.
    unknown: usize,
}

impl Tally {
    fn add(self, other: Tally) -> Tally {
        Tally {
            committed: self.committed + other.committed,
            aborted: self.aborted + other.aborted,
            retried: self.retried + other.retried,
            unknown: self.unknown + other.unknown,
        }
    }
}

/// `WATCH key; GET key` then `MULTI; SET key value+1; EXEC`, each pair in
/// one write, until `WATCH_INCREMENTS` EXECs committed.
fn increment_optimistically(port: u16, key: &str, resp3: bool) -> Tally {
    let mut client = Client::connect(port).unwrap_or_else(|e| panic!("connect to {port}: {e}"));
    let nil: &[u8] = if resp3 { b"_\r\n" } else { b"*-1\r\n" };
    if resp3 {
        assert!(matches!(client.call(&["HELLO", "3"]), Ok(Reply::Map(_))), "HELLO 3 on {port}");
    }
    let read = |client: &mut Client, what: &str| {
        client.read_reply_raw().unwrap_or_else(|e| panic!("{what} on port {port}: {e}"))
    };
    let started = Instant::now();
    let mut tally = Tally::default();
    for attempt in 0.. {
        if tally.committed == WATCH_INCREMENTS {
            break;
        }
        assert!(
            attempt < WATCH_ATTEMPTS_MAX && started.elapsed() < WATCH_LIMIT,
            "port {port}: {tally:?} after {attempt} attempts in {:?}",
            started.elapsed()
        );
        let words = |w: &[&str]| w.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        client.send_all(&[words(&["WATCH", key]), words(&["GET", key])]).expect("send WATCH, GET");
        let (watch, _) = read(&mut client, "WATCH");
        let (get, get_raw) = read(&mut client, "GET");
        if is_cluster_condition(&watch) || is_cluster_condition(&get) {
            assert_eq!(client.call(&["UNWATCH"]).expect("UNWATCH"), Reply::ok());
            tally.retried += 1;
            std::thread::sleep(WATCH_RETRY_PAUSE);
            continue;
        }
        assert_eq!(watch, Reply::ok(), "WATCH {key} on port {port}");
        let value: u64 = match &get {
            Reply::Bulk(Some(bytes)) => String::from_utf8_lossy(bytes).parse().expect("a counter"),
            Reply::Bulk(None) | Reply::Null => 0,
            _ => panic!("GET {key} on port {port}: {}", show(&get_raw)),
        };
        let next = (value + 1).to_string();
        client
            .send_all(&[words(&["MULTI"]), words(&["SET", key, &next]), words(&["EXEC"])])
            .expect("send MULTI, SET, EXEC");
        let (multi, _) = read(&mut client, "MULTI");
        let (queued, _) = read(&mut client, "SET");
        let (exec, exec_raw) = read(&mut client, "EXEC");
        assert_eq!((multi, queued), (Reply::ok(), Reply::Simple("QUEUED".into())), "MULTI, SET on {port}");
        match exec {
            _ if exec_raw == b"*1\r\n+OK\r\n" => tally.committed += 1,
            _ if exec_raw == nil => tally.aborted += 1,
            Reply::Error(e) if e.starts_with("TIMEOUT") => tally.unknown += 1,
            Reply::Error(e) if e.starts_with("CLUSTERDOWN") || e.starts_with("TRYAGAIN") => {
                tally.retried += 1;
                std::thread::sleep(WATCH_RETRY_PAUSE);
            }
            _ => panic!(
                "EXEC of SET {key} {next} on port {port} ({}): expected {} or {}, got {}",
                if resp3 { "RESP3" } else { "RESP2" },
                show(b"*1\r\n+OK\r\n"),
                show(nil),
                show(&exec_raw)
            ),
        }
    }
    tally
}

/// One connection per port, all incrementing `key` at once.
fn increment_concurrently(ports: &[u16], key: &str) -> (Tally, Duration) {
    let started = Instant::now();
    let tally = std::thread::scope(|scope| {
        let running: Vec<_> = ports
            .iter()
            .enumerate()
            .map(|(i, &port)| scope.spawn(move || increment_optimistically(port, key, i % 2 == 1)))
            .collect();
        running
            .into_iter()
            .map(|t| t.join().expect("an incrementing connection panicked"))
            .fold(Tally::default(), Tally::add)
    });
    (tally, started.elapsed())
}

fn counter_at(port: u16, key: &str) -> u64 {
    let reply = harness::eventually(&format!("GET {key} on {port}"), || {
        let reply = Client::connect(port).ok()?.call(&["GET", key]).ok()?;
        (!is_cluster_condition(&reply)).then_some(reply)
    });
    match reply {
        Reply::Bulk(Some(bytes)) => String::from_utf8_lossy(&bytes).parse().expect("a counter"),
        other => panic!("GET {key} on {port}: {other:?}"),
    }
}

#[test]
fn concurrent_watch_exec_increments_from_every_node_lose_and_double_nothing() {
    let cluster = Cluster::start("watch", 3);
    let ports: Vec<u16> =
        (0..3 * WATCH_CONNECTIONS_PER_NODE).map(|i| cluster.servers[i % 3].client_port).collect();
    let key = "watched-counter";
    let (tally, took) = increment_concurrently(&ports, key);
    let finals: Vec<u64> = cluster.servers.iter().map(|s| counter_at(s.client_port, key)).collect();
    let expected = (ports.len() * WATCH_INCREMENTS) as u64;
    println!(
        "WATCH/EXEC on cashe: {} connections x {WATCH_INCREMENTS} increments in {took:?}: {} committed, \
         {} aborted by WATCH, {} retried after cluster errors, {} unknown (EXEC answered -TIMEOUT); \
         counter on each node {finals:?}, expected {expected}..={}",
        ports.len(),
        tally.committed,
        tally.aborted,
        tally.retried,
        tally.unknown,
        expected + tally.unknown as u64,
    );
    let (low, high) = (tally.committed as u64, (tally.committed + tally.unknown) as u64);
    for (server, value) in cluster.servers.iter().zip(&finals) {
        assert!(
            (low..=high).contains(value),
            "{key} on {} is {value}, outside {low}..={high}: {tally:?}\n{}",
            server.name,
            cluster.log_tails(LOG_LINES)
        );
    }

    // The same clients against redis-server: the test's own logic, checked.
    let redis = redis::RedisServer::start();
    let (tally, took) = increment_concurrently(&vec![redis.port; ports.len()], key);
    let value = counter_at(redis.port, key);
    println!(
        "WATCH/EXEC on redis-server: {} committed, {} aborted by WATCH in {took:?}; counter {value}",
        tally.committed, tally.aborted
    );
    assert_eq!((value, tally.unknown, tally.retried), (expected, 0, 0), "redis-server: {tally:?}");
}
