//! A real `redis-server` (7.0) for tests that compare cashe's replies with
//! Redis's byte for byte: a child process on a free port, killed by PID when
//! dropped, and a minimal RESP client that returns each reply's raw bytes.
//!
//! `redis-server` must be on PATH (`.ci/run` installs Debian's
//! `redis-server` package); without it the tests using this fail, never skip.
#![allow(dead_code)]

use cashe::protocol::Reply;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
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

    /// Whether the server answers PING; false if it exited (port taken).
    fn wait_for_ping(&mut self) -> bool {
        for _ in 0..STARTUP_POLLS {
            if self.child.try_wait().expect("poll redis-server").is_some() {
                return false;
            }
            if let Ok(stream) = TcpStream::connect(("127.0.0.1", self.port)) {
                if RedisClient::new(stream).call(&[b"PING".to_vec()]) == b"+PONG\r\n" {
                    return true;
                }
            }
            std::thread::sleep(STARTUP_POLL_INTERVAL);
        }
        panic!("redis-server did not answer PING on port {}", self.port);
    }
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths).map(|dir| dir.join(name)).find(|path| path.is_file())
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local address").port()
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
        let mut request = Vec::new();
        cashe::protocol::reply::encode_command(args, &mut request);
        self.reader.get_mut().write_all(&request).expect("write to redis-server");
        let mut raw = Vec::new();
        self.read_reply(&mut raw);
        raw
    }

    /// Switches the connection to RESP3 (`HELLO 3`) or back (`HELLO 2`).
    pub fn speak(&mut self, protocol: cashe::protocol::Protocol) {
        let version = protocol.version().to_string().into_bytes();
        let reply = parse(&self.call(&[b"HELLO".to_vec(), version]));
        assert!(!matches!(reply, Reply::Error(_)), "HELLO: {reply:?}");
    }

    /// Reads exactly one complete reply (RESP2 or RESP3), returning its bytes.
    fn read_reply(&mut self, raw: &mut Vec<u8>) {
        loop {
            if let Some((_, used)) = cashe::protocol::reply::decode(raw).expect("a well-formed reply") {
                assert_eq!(used, raw.len(), "one reply at a time");
                return;
            }
            let buffered = self.reader.fill_buf().expect("read from redis-server");
            assert!(!buffered.is_empty(), "redis-server closed the connection");
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
