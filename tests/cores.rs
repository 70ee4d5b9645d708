//! A node with several executors (`--cores`), as a real process: client
//! connections accepted by every executor share one node, each keeps its
//! commands' order and its replies' order (issue 8's rule across
//! executors), and `--max-clients` counts the connections of all
//! executors together.
//!
//! The node runs on 127.0.0.1 on free ports and is killed by PID when the
//! test ends; every wait is bounded.

#[path = "cluster/harness.rs"]
mod harness;

use cashe::protocol::Reply;
use harness::{bulk_text, eventually, field, Client, Server, TempDir, PATIENCE};

const EXECUTORS: usize = 3;
/// Connections opened until every executor has accepted one.
const CONNECTIONS_MAX: usize = 300;
const CONNECTIONS_STEP: usize = 12;
const ROUNDS: i64 = 50;

/// A one-node cluster with `flags` added, answering.
fn node(root: &TempDir, flags: &[&str]) -> Server {
    let mut server = Server::new(root, "raft0");
    server.flags = flags.iter().map(|f| f.to_string()).collect();
    server.start(None);
    eventually("the node to elect itself", || {
        (server.call(&["SET", "ready", "1"]) == Reply::ok()).then_some(())
    });
    server
}

/// INFO's connections accepted per executor; `None` before the shell's
/// first refresh of its counters.
fn accepted_by_executor(client: &mut Client) -> Option<Vec<u64>> {
    let info = bulk_text(&client.call(&["INFO", "stats"]).expect("INFO")).expect("text");
    let counts = field(&info, "executor_connections_received")?;
    Some(counts.split(',').map(|n| n.parse().expect("a count")).collect())
}

#[test]
fn connections_on_every_executor_keep_their_order_through_one_node() {
    let root = TempDir::new("cores-order");
    let server = node(&root, &["--cores", &EXECUTORS.to_string()]);
    // Connections until every executor holds some: the kernel hands each
    // new connection to one of the executors waiting in accept. INFO's
    // counters are refreshed about twice a second: wait for them to count
    // every connection opened so far.
    let mut clients = Vec::new();
    let spread = loop {
        for _ in 0..CONNECTIONS_STEP {
            clients.push(Client::connect(server.client_port).expect("connect"));
        }
        let opened = clients.len() as u64 + 1; // and `server.call`'s
        let counts = eventually("INFO to count every connection", || {
            let counts = accepted_by_executor(clients.last_mut().unwrap())?;
            (counts.iter().sum::<u64>() >= opened).then_some(counts)
        });
        assert_eq!(counts.len(), EXECUTORS, "{counts:?}");
        if counts.iter().all(|c| *c > 0) {
            break counts;
        }
        assert!(clients.len() < CONNECTIONS_MAX, "an executor accepted nothing: {counts:?}");
    };
    println!("{} connections; accepted per executor: {spread:?}", clients.len());
    // A connection's last reply comes once nearly all the connections'
    // commands are done: on a loaded machine (CI beside a simulator run)
    // that took longer than one `PATIENCE`.
    for client in &clients {
        client.stream.set_read_timeout(Some(PATIENCE * 4)).expect("a timeout");
    }

    // Every connection pipelines all its rounds at once, then all read:
    // the node sees the connections' commands interleaved.
    for (i, client) in clients.iter_mut().enumerate() {
        let mut commands = Vec::new();
        for _ in 0..ROUNDS {
            commands.push(vec!["INCR".to_string(), format!("own:{i}")]);
            commands.push(vec!["GET".to_string(), format!("own:{i}")]);
            commands.push(vec!["INCR".to_string(), "shared".to_string()]);
        }
        client.send_all(&commands).expect("send");
    }
    for (i, client) in clients.iter_mut().enumerate() {
        let mut last_shared = 0;
        for round in 1..=ROUNDS {
            assert_eq!(client.read_reply().expect("reply"), Reply::Integer(round), "connection {i}");
            assert_eq!(client.read_reply().expect("reply"), Reply::bulk(round.to_string()), "connection {i}");
            let Reply::Integer(shared) = client.read_reply().expect("reply") else {
                panic!("connection {i}")
            };
            assert!(shared > last_shared, "connection {i}: INCR shared went {last_shared} -> {shared}");
            last_shared = shared;
        }
    }
    let total = clients.len() as i64 * ROUNDS;
    assert_eq!(server.call(&["GET", "shared"]), Reply::bulk(total.to_string()));
}

#[test]
fn max_clients_counts_the_connections_of_every_executor() {
    let root = TempDir::new("cores-max-clients");
    let server = node(&root, &["--cores", &EXECUTORS.to_string(), "--max-clients", "6"]);
    let mut open = Vec::new();
    for _ in 0..6 {
        let mut client = Client::connect(server.client_port).expect("connect");
        assert_eq!(client.call(&["PING"]).expect("a reply"), Reply::Simple("PONG".into()));
        open.push(client);
    }
    let spread = eventually("INFO's counters", || accepted_by_executor(&mut open[0]));
    // Over the limit, on whichever executor it lands: refused. Several
    // attempts, so that more than one executor is likely asked.
    for _ in 0..6 {
        let mut extra = Client::connect(server.client_port).expect("connect");
        let reply = extra.read_reply().expect("a refusal");
        assert_eq!(reply, Reply::error("ERR max number of clients reached"), "accepted so far: {spread:?}");
    }
    drop(open.pop());
    eventually("a closed connection makes room", || {
        let mut client = Client::connect(server.client_port).ok()?;
        (client.call(&["PING"]).ok()? == Reply::Simple("PONG".into())).then_some(())
    });
}
