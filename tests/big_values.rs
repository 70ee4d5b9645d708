//! Large values end to end on three real `cashe` processes (issue 14): a
//! value of the default `--max-value-bytes` (32 MiB, `VALUE_BYTES_DEFAULT`)
//! and one of 16 MiB, written through a follower, are forwarded, logged,
//! replicated and applied, and read back identical from every node; one
//! byte over the limit is refused with Redis's protocol error for a bulk
//! over `proto-max-bulk-len`, and that connection closes as Redis closes
//! it, while the others are served.
//!
//! The nodes run with `--election-ticks 500` (5 s): a 32 MiB write is
//! copied some fifteen times on its way (parse, forward, log, WAL, one
//! append per follower, apply), each copy into fresh memory, by one loop
//! per node. On the shared test machine (a debug build, memory zeroed at
//! a few hundred MB/s) that keeps a loop busy for longer than the default
//! 300 ms election timeout, and the leader changes before the write
//! commits (the client then gets `-TIMEOUT`, as it should). What is tested
//! here is the path, not the speed.

#[path = "cluster/harness.rs"]
mod harness;

use cashe::protocol::parser::VALUE_BYTES_DEFAULT;
use cashe::protocol::reply::encode_command;
use cashe::protocol::Reply;
use harness::{bulk_text, eventually, field, ChildGuard, Client, Server, TempDir};
use std::io::Write;
use std::process::Stdio;
use std::time::{Duration, Instant};

const ELECTION_TICKS: &str = "--election-ticks=500";

/// Three nodes as the README starts them, each killed by PID when dropped.
struct Nodes {
    servers: Vec<Server>,
    _children: Vec<ChildGuard>,
    _root: TempDir,
}

impl Nodes {
    fn start(label: &str) -> Nodes {
        let root = TempDir::new(label);
        let servers: Vec<Server> = (0..3).map(|k| Server::new(&root, &format!("raft{k}"))).collect();
        let mut children = Vec::new();
        for (k, server) in servers.iter().enumerate() {
            let join = (k > 0).then_some(servers[0].client_port);
            let log = std::fs::File::create(&server.log).expect("create the log");
            let child = server
                .command(join)
                .arg(ELECTION_TICKS)
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("clone the log"))
                .stderr(log)
                .spawn()
                .expect("spawn cashe");
            children.push(ChildGuard(child));
            if k == 0 {
                eventually("the first node leads", || nodes_leader(&servers[..1]));
            }
        }
        let nodes = Nodes { servers, _children: children, _root: root };
        eventually("three voters", || {
            let info = bulk_text(&nodes.servers[nodes.leader()].call(&["CLUSTER", "INFO"]))?;
            (field(&info, "cluster_voters")? == "3" && field(&info, "cluster_learners")? == "0").then_some(())
        });
        nodes
    }

    fn leader(&self) -> usize {
        eventually("an agreed leader", || nodes_leader(&self.servers))
    }

    fn follower(&self) -> usize {
        (self.leader() + 1) % self.servers.len()
    }

    fn logs(&self) -> String {
        let tail = |text: String| {
            text.lines().rev().take(20).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n")
        };
        self.servers.iter().map(|s| format!("==== {}\n{}\n", s.name, tail(s.log_text()))).collect()
    }
}

/// The node every listed node names as leader.
fn nodes_leader(servers: &[Server]) -> Option<usize> {
    let mut named = None;
    for server in servers {
        let info = bulk_text(&server.call(&["CLUSTER", "INFO"]))?;
        let leader = field(&info, "cluster_leader").filter(|l| l != "-")?;
        if named.get_or_insert(leader.clone()) != &leader {
            return None;
        }
    }
    let name = named?;
    servers.iter().position(|s| s.name == name)
}

/// Bytes that are not all alike, so a value cut, shifted or mixed with
/// another does not read back equal.
fn value_of(bytes: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    (0..bytes)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

fn send(client: &mut Client, args: &[&[u8]]) {
    let mut request = Vec::new();
    encode_command(args, &mut request);
    client.stream.write_all(&request).expect("send");
}

fn is_retryable(error: &str) -> bool {
    ["TIMEOUT", "CLUSTERDOWN", "TRYAGAIN"].iter().any(|prefix| error.starts_with(prefix))
}

/// How long a large SET may take to be acknowledged, retries included:
/// tens of MiB through three loaded debug-build processes take seconds.
const LARGE_WRITE_PATIENCE: Duration = Duration::from_secs(120);

/// `SET key value` through node `via` until acknowledged (SET is
/// idempotent, so a `-TIMEOUT` may be retried).
fn set_acknowledged(nodes: &Nodes, via: usize, key: &[u8], value: &[u8]) {
    let deadline = Instant::now() + LARGE_WRITE_PATIENCE;
    let mut attempts = Vec::new();
    while Instant::now() < deadline {
        let started = Instant::now();
        let outcome = nodes.servers[via].client().and_then(|mut client| {
            send(&mut client, &[b"SET", key, value]);
            client.read_reply()
        });
        match outcome {
            Ok(reply) if reply == Reply::ok() => return,
            Ok(Reply::Error(e)) if is_retryable(&e) => {
                attempts.push(format!("{e} after {:?}", started.elapsed()))
            }
            Ok(other) => panic!("SET of {} bytes: {other:?}\n{}", value.len(), nodes.logs()),
            Err(e) => attempts.push(format!("{e} after {:?}", started.elapsed())),
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("SET of {} bytes never acknowledged: {attempts:#?}\n{}", value.len(), nodes.logs());
}

#[test]
fn values_of_16_mib_and_of_the_default_maximum_go_through_a_follower_and_read_back_from_every_node() {
    let nodes = Nodes::start("big-values");
    let follower = nodes.follower();
    let largest = value_of(VALUE_BYTES_DEFAULT, 14);
    let sixteen = value_of(16 << 20, 16);
    set_acknowledged(&nodes, follower, b"largest", &largest);
    set_acknowledged(&nodes, follower, b"sixteen", &sixteen);

    for server in &nodes.servers {
        for (key, expected) in [("largest", &largest), ("sixteen", &sixteen)] {
            let reply = eventually(&format!("GET {key} at {}", server.name), || {
                match server.client().ok()?.call(&["GET", key]).ok()? {
                    Reply::Error(e) if is_retryable(&e) => None,
                    reply => Some(reply),
                }
            });
            let Reply::Bulk(Some(bytes)) = reply else { panic!("GET {key} at {}: {reply:?}", server.name) };
            assert_eq!(bytes.len(), expected.len(), "GET {key} at {}", server.name);
            assert!(bytes == *expected, "GET {key} at {}: the bytes differ", server.name);
        }
    }
    // A write whose reply is the value comes back from the leader whole.
    let server = &nodes.servers[nodes.follower()];
    let taken = eventually("GETDEL through a follower", || {
        match server.client().ok()?.call(&["GETDEL", "sixteen"]).ok()? {
            Reply::Error(e) if is_retryable(&e) => None,
            reply => Some(reply),
        }
    });
    assert!(taken == Reply::Bulk(Some(sixteen)), "GETDEL gives the 16 MiB value");
    assert_eq!(server.call(&["EXISTS", "sixteen"]), Reply::Integer(0));
}

#[test]
fn a_value_over_the_default_maximum_is_a_protocol_error_and_others_are_served() {
    let nodes = Nodes::start("big-values-over");
    let server = &nodes.servers[nodes.follower()];
    let mut good = server.client().expect("connect");
    assert_eq!(good.call(&["SET", "k", "v"]).expect("SET"), Reply::ok());

    // Refused at its length line, before any of the value is sent.
    let mut over = server.client().expect("connect");
    let header = format!("*3\r\n$3\r\nSET\r\n$4\r\nhuge\r\n${}\r\n", VALUE_BYTES_DEFAULT + 1);
    over.stream.write_all(header.as_bytes()).expect("send");
    assert_eq!(over.read_reply().expect("an error"), Reply::error("ERR Protocol error: invalid bulk length"));
    assert!(over.read_reply().is_err(), "closed after a protocol error, as Redis closes it");

    assert_eq!(good.call(&["GET", "k"]).expect("GET"), Reply::bulk("v"));
    assert_eq!(good.call(&["EXISTS", "huge"]).expect("EXISTS"), Reply::Integer(0));
    let limit = good.call(&["CONFIG", "GET", "proto-max-bulk-len"]).expect("CONFIG GET");
    let expected = VALUE_BYTES_DEFAULT.to_string();
    let pair = vec![Reply::bulk("proto-max-bulk-len"), Reply::bulk(expected.as_str())];
    assert_eq!(limit, Reply::Array(Some(pair)));
}
