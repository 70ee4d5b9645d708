//! A real `redis-server` (7.0) for tests that compare cashe's replies with
//! Redis's byte for byte: a child process on a free port, killed by PID when
//! dropped, and a minimal RESP client that returns each reply's raw bytes.
//!
//! `redis-server` must be on PATH (`.ci/run` installs Debian's
//! `redis-server` package); without it the tests using this fail, never skip.
#![allow(dead_code)]

use crate::harness::free_port;
use cashe::protocol::Reply;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// How long the server may take to answer its first PING.
const STARTUP_POLLS: u32 = 200;
const STARTUP_POLL_INTERVAL: Duration = Duration::from_millis(25);
const START_ATTEMPTS: u32 = 3;

pub struct RedisServer {
    child: Child,
    pub port: u16,
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl RedisServer {
    /// Starts `redis-server` without persistence, listening on 127.0.0.1.
    pub fn start() -> RedisServer {
        let binary = find_on_path("redis-server").unwrap_or_else(|| {
            panic!(
                "redis-server is not on PATH: this test compares with Redis 7.0 \
                 (`.ci/run` installs it with `apt-get install -y redis-server`)"
            )
        });
        // The free port can be taken between probing and binding it: retry.
        for _ in 0..START_ATTEMPTS {
            let port = free_port();
            let child = Command::new(&binary)
                .args([
                    "--port",
                    &port.to_string(),
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--bind",
                    "127.0.0.1",
                ])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
            let mut server = RedisServer { child, port };
            if server.wait_for_ping() {
                return server;
            }
        }
        panic!("redis-server ({}) did not start in {START_ATTEMPTS} attempts", binary.display());
    }

    /// A new connection to the server.
    pub fn connect(&self) -> RedisClient {
        let stream = TcpStream::connect(("127.0.0.1", self.port)).expect("connect to redis-server");
        RedisClient::new(stream)
    }

    /// Whether our child answers on its port; false if it exited (port
    /// taken). Another test's process may hold the port we probed (a cashe
    /// node answers PING too, its Raft port resets the connection), so the
    /// answer must come from this child: `INFO server` names its pid.
    fn wait_for_ping(&mut self) -> bool {
        let expected = format!("process_id:{}\r\n", self.child.id());
        for _ in 0..STARTUP_POLLS {
            if self.child.try_wait().expect("poll redis-server").is_some() {
                return false;
            }
            if let Ok(stream) = TcpStream::connect(("127.0.0.1", self.port)) {
                let mut client = RedisClient::new(stream);
                match client.try_call(&[b"INFO".to_vec(), b"server".to_vec()]) {
                    Ok(info) if contains(&info, expected.as_bytes()) => return true,
                    // Someone else's listener: ours cannot bind, so it exits.
                    Ok(_) | Err(_) => {}
                }
            }
            std::thread::sleep(STARTUP_POLL_INTERVAL);
        }
        panic!("redis-server did not answer on port {}", self.port);
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|window| window == needle)
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths).map(|dir| dir.join(name)).find(|path| path.is_file())
}

pub struct RedisClient {
    reader: BufReader<TcpStream>,
}

impl RedisClient {
    fn new(stream: TcpStream) -> RedisClient {
        stream.set_read_timeout(Some(Duration::from_secs(10))).expect("read timeout");
        stream.set_nodelay(true).expect("nodelay");
        RedisClient { reader: BufReader::new(stream) }
    }

    /// Sends one command as a RESP array; returns the raw bytes of the reply.
    pub fn call(&mut self, args: &[Vec<u8>]) -> Vec<u8> {
        self.try_call(args).unwrap_or_else(|e| panic!("redis-server: {e}"))
    }

    /// `call`, with I/O errors and malformed replies returned, not panicked.
    fn try_call(&mut self, args: &[Vec<u8>]) -> Result<Vec<u8>, String> {
        let mut request = Vec::new();
        cashe::protocol::reply::encode_command(args, &mut request);
        self.reader.get_mut().write_all(&request).map_err(|e| format!("write: {e}"))?;
        let mut raw = Vec::new();
        self.read_reply(&mut raw)?;
        Ok(raw)
    }

    /// Switches the connection to RESP3 (`HELLO 3`) or back (`HELLO 2`).
    pub fn speak(&mut self, protocol: cashe::protocol::Protocol) {
        let version = protocol.version().to_string().into_bytes();
        let reply = parse(&self.call(&[b"HELLO".to_vec(), version]));
        assert!(!matches!(reply, Reply::Error(_)), "HELLO: {reply:?}");
    }

    /// Reads exactly one complete reply (RESP2 or RESP3) into `raw`.
    fn read_reply(&mut self, raw: &mut Vec<u8>) -> Result<(), String> {
        loop {
            match cashe::protocol::reply::decode(raw) {
                Ok(Some((_, used))) if used == raw.len() => return Ok(()),
                Ok(Some(_)) => return Err("more than one reply".to_string()),
                Ok(None) => {}
                Err(e) => return Err(format!("malformed reply: {e:?}")),
            }
            let buffered = self.reader.fill_buf().map_err(|e| format!("read: {e}"))?;
            if buffered.is_empty() {
                return Err("connection closed".to_string());
            }
            raw.extend_from_slice(buffered);
            let n = buffered.len();
            self.reader.consume(n);
        }
    }
}

/// Parses one complete reply (as `call` returns it) into a `Reply`.
pub fn parse(raw: &[u8]) -> Reply {
    let (reply, used) = cashe::protocol::reply::decode(raw).expect("well-formed").expect("complete");
    assert_eq!(used, raw.len(), "exactly one reply");
    reply
}
