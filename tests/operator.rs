//! What a careless operator or an oversized command cannot do (issue 13),
//! on real `cashe` processes over 127.0.0.1 (and one rule on the node
//! itself):
//! - a second process on a data directory in use exits at once, naming the
//!   directory and the holder's pid, and changes nothing;
//! - a second process on a client or Raft port in use exits naming the
//!   address, once the port is still taken after start-up's 2 s of retries
//!   (no port is shared, so no connection reaches it);
//! - a command, or a MULTI/EXEC transaction, over the largest command a log
//!   entry holds (`COMMAND_BYTES_MAX`) gets an error, through the leader or
//!   a follower, and the cluster keeps serving;
//! - `--max-query-bytes` over that maximum refuses to start.
//!
//! Every process is killed by PID when its test ends, pass or fail, and
//! every wait is bounded.

#[path = "cluster/harness.rs"]
mod harness;
#[path = "common/members.rs"]
mod members;

use members::settle;

use cashe::node::{ConnId, Node, NodeConfig, NodeMessage, COMMAND_BYTES_MAX};
use cashe::protocol::reply::encode_command;
use cashe::protocol::Reply;
use cashe::raft::{NodeId, Raft, Term};
use harness::{eventually, run_bounded, Client, Cluster, Finished, Server};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// A process refused at start-up exits within this (it touches no network
/// but its own listeners); one still running after it was not refused.
const REFUSAL_WITHIN: Duration = Duration::from_secs(15);

/// Every file under `dir` with its length and modification time.
fn listing(dir: &Path) -> BTreeMap<PathBuf, (u64, SystemTime)> {
    let mut files = BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).expect("list the data directory") {
            let path = entry.expect("a directory entry").path();
            let meta = std::fs::metadata(&path).expect("file metadata");
            if meta.is_dir() {
                pending.push(path);
            } else {
                files.insert(path, (meta.len(), meta.modified().expect("modification time")));
            }
        }
    }
    files
}

fn describe(finished: &Finished) -> String {
    format!("status {:?}\nstderr:\n{}\nstdout:\n{}", finished.status, finished.stderr, finished.stdout)
}

/// A refused start: it exited by itself, with a failure code.
fn assert_refused(finished: &Finished, code: i32) {
    let status =
        finished.status.unwrap_or_else(|| panic!("still running, not refused:\n{}", describe(finished)));
    assert_eq!(status.code(), Some(code), "{}", describe(finished));
}

/// `SET key value` acknowledged through `node`, then read back there
/// (retrying what a leader change or a restart answers).
fn assert_serves(cluster: &Cluster, node: usize, key: &str, value: &str) {
    cluster.set_acknowledged(node, key, value);
    let server = &cluster.servers[node];
    let reply = eventually(&format!("GET {key} at {}", server.name), || match server.call(&["GET", key]) {
        Reply::Error(_) => None,
        reply => Some(reply),
    });
    assert_eq!(reply, Reply::bulk(value), "GET {key} at {}", server.name);
}

#[test]
fn a_second_process_on_a_data_directory_in_use_exits_naming_it_and_the_holders_pid() {
    let mut cluster = Cluster::start("operator-lock", 1);
    assert_serves(&cluster, 0, "before", "the second process");
    let first = &cluster.servers[0];
    let pid = first.pid().expect("running");
    let files_before = listing(&first.datadir);

    // Same data directory, ports of its own.
    let mut second = Server::new(&cluster.root, "second");
    second.datadir = first.datadir.clone();
    let finished = run_bounded(&mut second.command(None), REFUSAL_WITHIN);

    assert_refused(&finished, 1);
    let directory = first.datadir.display().to_string();
    assert!(
        finished.stderr.contains(&format!("data directory {directory} is in use")),
        "{}",
        describe(&finished)
    );
    assert!(finished.stderr.contains(&format!("pid {pid}")), "{}", describe(&finished));
    assert_eq!(listing(&first.datadir), files_before, "the second process changed the data directory");
    assert_eq!(std::fs::read_to_string(first.datadir.join("LOCK")).unwrap().trim(), pid.to_string());
    assert!(cluster.servers[0].is_running(), "the first process stopped:\n{}", cluster.dump_logs());
    assert_serves(&cluster, 0, "after", "the second process");

    // What the first wrote is on its disk, whole: a restart reads it back.
    cluster.servers[0].kill9();
    let starts = cluster.servers[0].log_text().matches("cashe started").count();
    cluster.servers[0].start(None);
    // No reads before it listens, so that a failed start shows as one.
    eventually("the restarted process listening", || {
        let log = cluster.servers[0].log_text();
        assert!(cluster.servers[0].is_running(), "the restart failed:\n{}", cluster.log_tails(20));
        (log.matches("cashe started").count() > starts).then_some(())
    });
    for (key, value) in [("before", "the second process"), ("after", "the second process")] {
        let reply = eventually(&format!("GET {key} after a restart"), || {
            Some(cluster.servers[0].call(&["GET", key])).filter(|reply| !reply.is_error())
        });
        assert_eq!(reply, Reply::bulk(value), "{key} after a restart\n{}", cluster.dump_logs());
    }
}

/// Starts a second server sharing one of the first's ports and checks it
/// is refused naming the address, leaves no data directory, and that the
/// first keeps answering every connection.
fn assert_port_in_use_is_refused(label: &str, share: fn(&mut Server, &Server), for_whom: &str) {
    let mut cluster = Cluster::start(label, 1);
    assert_serves(&cluster, 0, "before", "the second process");
    let mut second = Server::new(&cluster.root, "second");
    share(&mut second, &cluster.servers[0]);
    let port = if for_whom == "clients" { second.client_port } else { second.raft_port };

    let finished = run_bounded(&mut second.command(None), REFUSAL_WITHIN);

    assert_refused(&finished, 1);
    let expected = format!("cannot listen for {for_whom} on 127.0.0.1:{port}: Address already in use");
    assert!(finished.stderr.contains(&expected), "{}", describe(&finished));
    assert!(!second.datadir.exists(), "a refused start left {}", second.datadir.display());
    assert!(cluster.servers[0].is_running(), "the first process stopped:\n{}", cluster.dump_logs());
    // Every connection reaches the first process (a shared port would
    // have split them, had the second one kept it).
    let pid = cluster.servers[0].pid().expect("running").to_string();
    let process_id = || {
        let info = harness::bulk_text(&cluster.servers[0].call(&["INFO", "server"]))?;
        harness::field(&info, "process_id")
    };
    // INFO shows the pid from the server's first refresh on.
    eventually("INFO with the process id", process_id);
    for attempt in 0..16 {
        let reply = cluster.servers[0].call(&["INFO", "server"]);
        let info = harness::bulk_text(&reply).unwrap_or_default();
        let answered = harness::field(&info, "process_id");
        assert_eq!(answered, Some(pid.clone()), "connection {attempt}: {reply:?}\n{}", cluster.log_tails(30));
    }
    assert_serves(&cluster, 0, "after", "the second process");
}

#[test]
fn a_second_process_on_a_client_port_in_use_exits_naming_the_address() {
    let share = |second: &mut Server, first: &Server| second.client_port = first.client_port;
    assert_port_in_use_is_refused("operator-client-port", share, "clients");
}

#[test]
fn a_second_process_on_a_raft_port_in_use_exits_naming_the_address() {
    let share = |second: &mut Server, first: &Server| second.raft_port = first.raft_port;
    assert_port_in_use_is_refused("operator-raft-port", share, "peers");
}

#[test]
fn a_node_refuses_to_start_with_max_query_bytes_over_the_command_maximum() {
    let root = harness::TempDir::new("operator-query-bytes");
    let server = Server::new(&root, "raft0");
    let over = COMMAND_BYTES_MAX + 1;

    let finished = run_bounded(server.command(None).arg(format!("--max-query-bytes={over}")), REFUSAL_WITHIN);

    assert_refused(&finished, 2);
    let expected = format!("--max-query-bytes {over} is over the maximum of {COMMAND_BYTES_MAX} bytes");
    assert!(finished.stderr.contains(&expected), "{}", describe(&finished));
    assert!(!server.datadir.exists(), "a refused start created {}", server.datadir.display());
}

/// `MSET` of 100-byte keys and values whose arguments, as the query buffer
/// counts them (data bytes only), stay under `--max-query-bytes` at its
/// default (and maximum), `COMMAND_BYTES_MAX`, while its log entry, with a
/// length before each argument, is over it.
fn oversized_mset() -> Vec<Vec<u8>> {
    let pairs = (COMMAND_BYTES_MAX - (64 << 10)) / 200;
    let mut args = Vec::with_capacity(1 + 2 * pairs);
    args.push(b"MSET".to_vec());
    for i in 0..pairs {
        args.push(format!("{i:0>100}").into_bytes());
        args.push(vec![b'v'; 100]);
    }
    let data: usize = args.iter().map(Vec::len).sum();
    let logged = cashe::node::command_bytes(&args);
    assert!(data < COMMAND_BYTES_MAX && logged > COMMAND_BYTES_MAX, "data {data}, logged {logged}");
    args
}

fn send_raw(client: &mut Client, commands: &[Vec<Vec<u8>>]) {
    let mut request = Vec::new();
    for command in commands {
        encode_command(command, &mut request);
    }
    client.stream.write_all(&request).expect("send");
}

fn assert_over_the_maximum(reply: &Reply, prefix: &str, via: &str) {
    let Reply::Error(text) = reply else { panic!("{via}: {reply:?} instead of an error") };
    assert!(text.starts_with(prefix), "{via}: {text}");
    assert!(text.contains(&format!("over the maximum of {COMMAND_BYTES_MAX} bytes")), "{via}: {text}");
}

#[test]
fn a_command_or_transaction_over_the_entry_limit_is_refused_and_the_cluster_keeps_serving() {
    let mut cluster = Cluster::start("operator-size", 3);
    let leader = cluster.leader();
    let follower = cluster.followers()[0];
    let mset = oversized_mset();
    let value = vec![b'x'; 1 << 20];
    let count = COMMAND_BYTES_MAX / value.len() + 2;
    let mut transaction = vec![vec![b"MULTI".to_vec()]];
    transaction
        .extend((0..count).map(|i| vec![b"SET".to_vec(), format!("t{i}").into_bytes(), value.clone()]));
    transaction.push(vec![b"EXEC".to_vec()]);

    for node in [leader, follower] {
        let via = cluster.servers[node].name.clone();
        let mut client = cluster.servers[node].client().expect("connect");

        send_raw(&mut client, std::slice::from_ref(&mset));
        assert_over_the_maximum(&client.read_reply().expect("a reply to MSET"), "ERR command of", &via);
        // The connection stays open and served (a leader may change
        // while tens of MiB are parsed on a loaded machine: PING does not
        // care).
        assert_eq!(client.call(&["PING"]).expect("PING"), Reply::Simple("PONG".into()), "{via}");

        send_raw(&mut client, &transaction);
        assert_eq!(client.read_reply().expect("MULTI"), Reply::ok());
        for i in 0..count {
            let reply = client.read_reply().expect("a queued SET");
            assert_eq!(reply, Reply::Simple("QUEUED".into()), "SET {i} via {via}");
        }
        let exec = client.read_reply().expect("a reply to EXEC");
        assert_over_the_maximum(&exec, "EXECABORT Transaction discarded because of: transaction of", &via);
        assert_eq!(client.call(&["PING"]).expect("PING"), Reply::Simple("PONG".into()), "{via}");
        let first_key = String::from_utf8(mset[1].clone()).expect("ASCII");
        let exists = eventually("EXISTS answered", || match client.call(&["EXISTS", &first_key, "t0"]) {
            Ok(Reply::Integer(n)) => Some(n),
            _ => None,
        });
        assert_eq!(exists, 0, "nothing of either was applied, via {via}");
    }
    let stopped: Vec<String> =
        cluster.servers.iter_mut().filter_map(|s| (!s.is_running()).then(|| s.name.clone())).collect();
    assert!(stopped.is_empty(), "{stopped:?} stopped:\n{}", cluster.log_tails(40));
    for node in 0..cluster.servers.len() {
        assert_serves(&cluster, node, &format!("after-{node}"), "still serving");
    }
}

/// A single-voter node that has become leader.
fn leader_alone() -> Node {
    let mut config = NodeConfig::new(NodeId(1));
    config.raft.election_ticks = 5;
    let mut node = Node::restore(config, 1, Raft::bootstrap([NodeId(1)])).expect("restore");
    for tick in 0..100 {
        if node.raft().is_leader() {
            return node;
        }
        node.tick(1_000 + tick);
        let output = node.take_output();
        if let Some((lsn, _)) = output.persist.last() {
            node.persisted(*lsn);
        }
    }
    panic!("a single voter did not become leader");
}

#[test]
fn a_leader_answers_an_oversized_forward_with_the_error_and_proposes_nothing() {
    let mut leader = leader_alone();
    let _ = leader.take_output();
    let last_index = leader.raft().log().last_index();
    let term: Term = leader.raft().term();
    let args = vec![b"SET".to_vec(), b"k".to_vec(), vec![b'v'; COMMAND_BYTES_MAX]];

    leader.step(NodeId(2), NodeMessage::Forward { id: 7, term, now_ms: 2_000, args });
    leader.client(ConnId(1), vec![b"SET".to_vec(), b"k".to_vec(), b"small".to_vec()], 2_000);

    let output = leader.take_output();
    let answers: Vec<_> = output
        .send
        .iter()
        .filter_map(|(to, message)| match message {
            NodeMessage::ForwardReply { id, reply, index } => Some((*to, *id, reply.clone(), *index)),
            _ => None,
        })
        .collect();
    assert_eq!(answers.len(), 1, "one answer to the forward: {answers:?}");
    let (to, id, reply, index) = answers[0].clone();
    assert_eq!((to, id, index), (NodeId(2), 7, None));
    assert_over_the_maximum(&reply, "ERR command of", "a forward");
    // Only the small SET was proposed after it.
    assert_eq!(leader.raft().log().last_index().0, last_index.0 + 1, "the oversized forward was proposed");
}

#[test]
fn a_reply_too_large_for_the_peer_wire_reaches_the_follower_as_an_error_saying_the_command_ran() {
    let mut leader = leader_alone();
    let _ = settle(&mut leader);
    // Built by two APPENDs, each under the command limit: 80 MiB in all.
    let half = vec![b'v'; 40 << 20];
    for _ in 0..2 {
        leader.client(ConnId(1), vec![b"APPEND".to_vec(), b"big".to_vec(), half.clone()], 2_000);
        let _ = settle(&mut leader);
    }
    let term: Term = leader.raft().term();
    let args = vec![b"GETDEL".to_vec(), b"big".to_vec()];
    leader.step(NodeId(2), NodeMessage::Forward { id: 9, term, now_ms: 2_000, args });
    let output = settle(&mut leader);

    let answers: Vec<&Reply> = output
        .send
        .iter()
        .filter_map(|(_, message)| match message {
            NodeMessage::ForwardReply { id: 9, reply, .. } => Some(reply),
            _ => None,
        })
        .collect();
    assert_eq!(answers.len(), 1, "one answer to the forward");
    match answers[0] {
        Reply::Error(text) => assert!(text.starts_with("ERR the command ran, but its reply"), "{text}"),
        other => panic!("a reply of 80 MiB cannot cross the wire; got {:?}", std::mem::discriminant(other)),
    }
    let mut encoded = Vec::new();
    let message = NodeMessage::ForwardReply { id: 9, reply: answers[0].clone(), index: None };
    cashe::node::wire::encode(&cashe::node::wire::PeerFrame::Message(message), &mut encoded)
        .expect("the answer fits one frame");
    leader.client(ConnId(1), vec![b"EXISTS".to_vec(), b"big".to_vec()], 2_000);
    let output = settle(&mut leader);
    assert!(
        output.replies.iter().any(|(_, reply)| *reply == Reply::Integer(0)),
        "GETDEL ran: {:?}",
        output.replies
    );
}
