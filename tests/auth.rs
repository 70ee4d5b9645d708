//! `--requirepass` on a real `cashe` node, against a real `redis-server
//! --requirepass` in the same test: every reply of the same script, on
//! fresh connections, byte for byte (HELLO's map is compared by shape: it
//! names each server's own version and connection id). Both processes are
//! killed by PID when the test ends, and every wait is bounded.

#[path = "cluster/harness.rs"]
mod harness;

use cashe::protocol::Reply;
use harness::{eventually, free_port, ChildGuard, Client, Server, TempDir};
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

fn words(text: &str) -> Vec<&str> {
    text.split(' ').collect()
}

/// The replies of every step of the script on `port`, raw.
fn run_script(port: u16) -> Vec<Vec<u8>> {
    let mut raw = Vec::new();
    for step in SCRIPT {
        let mut client = Client::connect(port).expect("connect");
        for command in *step {
            client.send(&words(command)).expect("send");
            let (_, bytes) = client.read_reply_raw().expect("a reply");
            raw.push(bytes);
        }
    }
    raw
}

fn redis_with_password() -> (ChildGuard, u16) {
    let port = free_port();
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .args(["--requirepass", PASSWORD])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server is on PATH (make deps)");
    let guard = ChildGuard(child);
    eventually("redis-server listening", || Client::connect(port).ok().map(|_| ()));
    (guard, port)
}

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
    let (_redis, redis_port) = redis_with_password();
    let ours = run_script(cashe_port);
    let theirs = run_script(redis_port);
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
