//! `--requirepass` on a real `cashe` node, against a real `redis-server
//! --requirepass` in the same test: every reply of the same script, on
//! fresh connections, byte for byte (HELLO's map is compared by shape: it
//! names each server's own version and connection id). Both processes are
//! killed by PID when the test ends, and every wait is bounded.

#[path = "cluster/harness.rs"]
mod harness;

use cashe::protocol::Reply;
use harness::{eventually, free_port, redis_server, run_script, ChildGuard, Client, Server, TempDir};
use std::process::{Command, Stdio};

const PASSWORD: &str = "s3cret";

/// Each step: the commands sent on one fresh connection, in order.
const SCRIPT: &[&[&str]] = &[
    &["GET k", "SET k v", "PING", "MULTI", "FOO", "GET", "HELLO 3", "QUIT"],
    &["AUTH wrong", "AUTH default wrong", "AUTH nobody s3cret", "AUTH a b c", "GET k"],
    &["AUTH s3cret", "SET k v", "GET k", "PING"],
    &["AUTH default s3cret", "GET k", "DEL k"],
    &["HELLO 2 AUTH default wrong", "GET k"],
];

fn cashe_with_password(root: &TempDir) -> (ChildGuard, u16) {
    let server = Server::new(root, "raft0");
    let log = std::fs::File::create(&server.log).expect("log file");
    let child = server
        .command(None)
        .arg(format!("--requirepass={PASSWORD}"))
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("spawn cashe");
    let guard = ChildGuard(child);
    let port = server.client_port;
    eventually("cashe elected and serving", || {
        let mut client = Client::connect(port).ok()?;
        (client.call(&["AUTH", PASSWORD]).ok()? == Reply::ok()).then_some(())?;
        (client.call(&["SET", "ready", "1"]).ok()? == Reply::ok()).then_some(())
    });
    (guard, port)
}

#[test]
fn requirepass_answers_every_step_as_redis_does() {
    let root = TempDir::new("auth");
    let (_cashe, cashe_port) = cashe_with_password(&root);
    let (_redis, redis_port) = redis_server(&["--requirepass".as_ref(), PASSWORD.as_ref()]);
    let ours = run_script(SCRIPT, cashe_port);
    let theirs = run_script(SCRIPT, redis_port);
    let commands: Vec<&str> = SCRIPT.iter().flat_map(|step| step.iter().copied()).collect();
    for ((command, a), b) in commands.iter().zip(&ours).zip(&theirs) {
        let show = |bytes: &[u8]| String::from_utf8_lossy(bytes).escape_debug().to_string();
        assert_eq!(show(a), show(b), "{command}: cashe (left) and redis-server (right)");
    }
    assert_eq!(ours.len(), commands.len());
    // The password never shows: not in INFO, CLIENT LIST or CONFIG GET.
    let mut client = Client::connect(cashe_port).unwrap();
    assert_eq!(client.call(&["AUTH", PASSWORD]).unwrap(), Reply::ok());
    for command in [&["INFO", "everything"][..], &["CLIENT", "LIST"], &["CONFIG", "GET", "*"]] {
        let (_, raw) = {
            client.send(command).unwrap();
            client.read_reply_raw().unwrap()
        };
        assert!(!String::from_utf8_lossy(&raw).contains(PASSWORD), "{command:?} shows the password");
    }
    let (_, info) = {
        client.send(&["INFO", "stats"]).unwrap();
        client.read_reply_raw().unwrap()
    };
    let info = String::from_utf8_lossy(&info).into_owned();
    assert!(info.contains("acl_access_denied_auth:4\r\n"), "failed AUTHs counted: {info}");
}

#[test]
fn hello_auth_authenticates_and_switches_protocol_in_one_command() {
    let root = TempDir::new("auth-hello");
    let (_cashe, port) = cashe_with_password(&root);
    let mut client = Client::connect(port).unwrap();
    let reply = client.call(&["HELLO", "3", "AUTH", "default", PASSWORD]).unwrap();
    assert!(matches!(reply, Reply::Map(_)), "{reply:?}");
    assert_eq!(client.call(&["GET", "ready"]).unwrap(), Reply::bulk("1"));
}

/// What a client connecting from `source` (a loopback address other than
/// 127.0.0.1, which Redis's protected mode treats as remote) reads after
/// sending PING: everything until the server closes, or 2 seconds.
fn ping_from(source: &str, port: u16) -> String {
    let python = std::env::var("CASHE_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = r#"
import socket, sys
s = socket.socket()
s.bind((sys.argv[1], 0))
s.connect(("127.0.0.1", int(sys.argv[2])))
s.settimeout(2)
s.sendall(b"PING\r\n")
data = b""
try:
    while not data.endswith(b"\r\n"):
        d = s.recv(65536)
        if not d:
            break
        data += d
except socket.timeout:
    pass
sys.stdout.write(data.decode())
"#;
    let mut command = Command::new(python);
    command.args(["-c", script, source, &port.to_string()]);
    let finished = harness::run_bounded(&mut command, std::time::Duration::from_secs(10));
    assert!(finished.status.is_some_and(|s| s.success()), "the client script failed: {}", finished.stderr);
    finished.stdout
}

/// The part of Redis's -DENIED text cashe keeps word for word (the rest
/// names cashe's flags instead of CONFIG SET).
fn denied_head(text: &str) -> &str {
    let end = text.find("loopback interface.").map_or(text.len(), |at| at + "loopback interface.".len());
    &text[..end]
}

#[test]
fn protected_mode_refuses_remote_clients_without_a_password_as_redis_does() {
    let root = TempDir::new("protected");
    let redis_port = free_port();
    let _redis = ChildGuard(
        Command::new("redis-server")
            .args(["--port", &redis_port.to_string(), "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is on PATH (make deps)"),
    );
    eventually("redis-server listening", || Client::connect(redis_port).ok().map(|_| ()));
    let mut open = Server::new(&root, "open");
    open.start(None);
    eventually("cashe serving", || (open.call(&["SET", "ready", "1"]) == Reply::ok()).then_some(()));

    let theirs = ping_from("127.0.0.2", redis_port);
    let ours = ping_from("127.0.0.2", open.client_port);
    assert!(theirs.starts_with("-DENIED"), "redis-server: {theirs}");
    assert_eq!(denied_head(&ours), denied_head(&theirs), "cashe (left) and redis-server (right)");
    assert!(ours.contains("--protected-mode no") && ours.ends_with("\r\n"), "{ours}");
    assert_eq!(ping_from("127.0.0.1", open.client_port), "+PONG\r\n");

    // Protected mode off, or a password set: remote clients are served
    // (with a password, they must AUTH like everyone else).
    let unprotected = Server::new(&root, "unprotected");
    let _unprotected = ChildGuard(
        unprotected
            .command(None)
            .arg("--protected-mode=no")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn cashe"),
    );
    eventually("cashe serving", || (unprotected.call(&["SET", "ready", "1"]) == Reply::ok()).then_some(()));
    assert_eq!(ping_from("127.0.0.2", unprotected.client_port), "+PONG\r\n");
    let (_guarded, guarded_port) = cashe_with_password(&root);
    assert_eq!(ping_from("127.0.0.2", guarded_port), "-NOAUTH Authentication required.\r\n");
}

/// Writes `bytes` on a fresh connection and reads until the server closes
/// it or 2 seconds pass.
fn raw_exchange(port: u16, bytes: &[u8]) -> Vec<u8> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream.set_read_timeout(Some(std::time::Duration::from_millis(200))).expect("timeout");
    stream.write_all(bytes).expect("write");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    let mut answer = Vec::new();
    let mut chunk = [0u8; 65536];
    while std::time::Instant::now() < deadline {
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(_) => break,
        }
    }
    answer
}

fn command_bytes(words: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    cashe::protocol::reply::encode_command(words, &mut out);
    out
}

/// Before AUTH, Redis 7 allows 10 arguments of 16 KiB: a stranger cannot
/// make a node hold big commands. An AUTH pipelined with big commands is
/// answered first, so they pass. Compared byte for byte with redis-server.
#[test]
fn unauthenticated_connections_get_redis_small_limits() {
    let root = TempDir::new("auth-limits");
    let (_cashe, cashe_port) = cashe_with_password(&root);
    let (_redis, redis_port) = redis_server(&["--requirepass".as_ref(), PASSWORD.as_ref()]);
    let big = vec![b'x'; 20_000];
    let mut pipelined = command_bytes(&[b"AUTH", PASSWORD.as_bytes()]);
    pipelined.extend(command_bytes(&[b"SET", b"big", &big]));
    pipelined.extend(command_bytes(&[b"STRLEN", b"big"]));
    let eleven: Vec<&[u8]> = std::iter::repeat_n(&b"a"[..], 11).collect();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("11 arguments", command_bytes(&eleven)),
        ("a 16385-byte argument", b"*2\r\n$3\r\nGET\r\n$16385\r\n".to_vec()),
        ("a 16384-byte password", command_bytes(&[b"AUTH", &[b'p'; 16384]])),
        ("AUTH pipelined with a 20000-byte SET", pipelined),
    ];
    for (what, bytes) in &cases {
        let ours = String::from_utf8_lossy(&raw_exchange(cashe_port, bytes)).into_owned();
        let theirs = String::from_utf8_lossy(&raw_exchange(redis_port, bytes)).into_owned();
        assert_eq!(ours, theirs, "{what}: cashe (left), redis-server (right)");
    }
    let ours = String::from_utf8_lossy(&raw_exchange(cashe_port, &cases[0].1)).into_owned();
    assert_eq!(ours, "-ERR Protocol error: unauthenticated multibulk length\r\n");
    let ours = String::from_utf8_lossy(&raw_exchange(cashe_port, &cases[3].1)).into_owned();
    assert_eq!(ours, "+OK\r\n+OK\r\n:20000\r\n");
}
