//! The Raft port under `--cluster-secret`, on real processes: frames
//! forged by someone who knows the cluster id but not the secret change
//! nothing (the same frames do change a node without a secret, so the test
//! can see a forgery land), the refusal is logged, and only a node started
//! with the same secret can join. Every wait is bounded and every process
//! is killed by PID when the test ends.

#[path = "cluster/harness.rs"]
mod harness;

use cashe::node::wire::{self, PeerFrame};
use cashe::node::NodeMessage;
use cashe::protocol::Reply;
use cashe::raft::{Index, Message, MessageKind, NodeId, Term};
use harness::{bulk_text, eventually, field, ChildGuard, Client, Server, TempDir};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

const SECRET: &str = "correct horse battery staple";

fn spawn(server: &Server, join: Option<u16>, secret: Option<&str>) -> ChildGuard {
    let log = std::fs::OpenOptions::new().create(true).append(true).open(&server.log).expect("log file");
    let mut command = server.command(join);
    if let Some(secret) = secret {
        command.env("CASHE_CLUSTER_SECRET", secret);
    }
    let child = command.stdout(log.try_clone().expect("log")).stderr(log).spawn().expect("spawn cashe");
    ChildGuard(child)
}

fn serving(server: &Server) {
    eventually("the node elected and serving", || {
        (server.call(&["SET", "ready", "1"]) == Reply::ok()).then_some(())
    });
}

fn info_field(server: &Server, section: &str, name: &str) -> String {
    let text = bulk_text(&server.call(&["INFO", section])).expect("INFO text");
    field(&text, name).unwrap_or_else(|| panic!("no {name} in INFO {section}"))
}

fn cluster_id(server: &Server) -> u64 {
    let text = bulk_text(&server.call(&["CLUSTER", "INFO"])).expect("CLUSTER INFO text");
    u64::from_str_radix(&field(&text, "cluster_id").expect("cluster_id"), 16).expect("hex id")
}

/// What a forger who knows the cluster id sends: a `Hello` as member 9, a
/// forwarded `SET forged yes` in the current term, and a heartbeat from a
/// far later term (which would depose the leader).
fn forged_frames(cluster_id: u64, term: u64) -> Vec<u8> {
    let mut bytes = Vec::new();
    let frames = [
        PeerFrame::Hello {
            version: wire::WIRE_VERSION,
            cluster_id,
            from: NodeId(9),
            raft_addr: "127.0.0.1:1".into(),
        },
        PeerFrame::Message(NodeMessage::Forward {
            id: 1,
            term: Term(term),
            now_ms: 0,
            args: vec![b"SET".to_vec(), b"forged".to_vec(), b"yes".to_vec()],
        }),
        PeerFrame::Message(NodeMessage::Raft(Message {
            term: Term(term + 100),
            kind: MessageKind::Heartbeat { commit: Index(0), read_round: 0 },
        })),
    ];
    for frame in &frames {
        wire::encode(frame, &mut bytes).expect("small frames");
    }
    bytes
}

/// Sends the forged frames to the Raft port and reads until the node
/// closes the connection or 3 seconds pass; returns what it wrote back.
fn forge(server: &Server) -> Vec<u8> {
    let term: u64 = info_field(server, "replication", "raft_term").parse().expect("a term");
    let frames = forged_frames(cluster_id(server), term);
    let mut stream = TcpStream::connect(("127.0.0.1", server.raft_port)).expect("connect to the Raft port");
    stream.set_read_timeout(Some(Duration::from_millis(200))).expect("timeout");
    let _ = stream.write_all(&frames);
    let mut answered = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut chunk = [0u8; 256];
    while Instant::now() < deadline {
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => answered.extend_from_slice(&chunk[..n]),
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut => {
            }
            Err(_) => break,
        }
    }
    answered
}

/// The forged `SET` is applied within a few seconds, or never.
fn forged_key_after_a_while(server: &Server) -> Reply {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let reply = server.call(&["GET", "forged"]);
        if reply != Reply::nil() || Instant::now() > deadline {
            return reply;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn forged_peer_frames_change_nothing_under_a_cluster_secret() {
    let root = TempDir::new("peer-auth-forged");
    let guarded = Server::new(&root, "guarded");
    let _guarded_process = spawn(&guarded, None, Some(SECRET));
    serving(&guarded);
    let term_before = info_field(&guarded, "replication", "raft_term");
    let answered = forge(&guarded);
    assert_eq!(forged_key_after_a_while(&guarded), Reply::nil(), "a forged write was applied");
    assert_eq!(info_field(&guarded, "replication", "raft_term"), term_before, "a forged term was taken");
    // The node spoke first (its challenge), and nothing else.
    assert_eq!(answered.len(), cashe::node::handshake::CHALLENGE_BYTES, "{answered:?}");
    assert!(
        guarded.log_text().contains("refused a peer connection"),
        "no refusal logged:\n{}",
        guarded.log_text()
    );

    // The same frames against a node without a secret: the forgery lands.
    let open = Server::new(&root, "open");
    let _open_process = spawn(&open, None, None);
    serving(&open);
    forge(&open);
    assert_eq!(forged_key_after_a_while(&open), Reply::bulk("yes"), "the control forgery did not land");
}

#[test]
fn only_a_node_with_the_cluster_secret_joins() {
    let root = TempDir::new("peer-auth-join");
    let founder = Server::new(&root, "raft0");
    let _founder = spawn(&founder, None, Some(SECRET));
    serving(&founder);

    for (name, secret, refusal) in [
        ("nosecret", None, "has a cluster secret"),
        ("wrongsecret", Some("another secret"), "is not this cluster's"),
    ] {
        let stranger = Server::new(&root, name);
        let mut process = spawn(&stranger, Some(founder.client_port), secret);
        let deadline = Instant::now() + Duration::from_secs(20);
        let status = loop {
            if let Some(status) = process.0.try_wait().expect("poll") {
                break status;
            }
            assert!(Instant::now() < deadline, "{name} neither joined nor gave up:\n{}", stranger.log_text());
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(!status.success(), "{name} started");
        assert!(stranger.log_text().contains(refusal), "{name}'s log:\n{}", stranger.log_text());
    }
    let nodes = bulk_text(&founder.call(&["CLUSTER", "NODES"])).expect("CLUSTER NODES");
    assert_eq!(nodes.lines().count(), 1, "a stranger became a member:\n{nodes}");

    let member = Server::new(&root, "raft1");
    let _member = spawn(&member, Some(founder.client_port), Some(SECRET));
    eventually("the new member serves what the founder wrote", || {
        let mut client = Client::connect(member.client_port).ok()?;
        (client.call(&["GET", "ready"]).ok()? == Reply::bulk("1")).then_some(())
    });
    let nodes = bulk_text(&founder.call(&["CLUSTER", "NODES"])).expect("CLUSTER NODES");
    assert_eq!(nodes.lines().count(), 2, "{nodes}");
}
