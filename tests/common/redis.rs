//! A real `redis-server` (7.0) for tests that compare cashe's replies with
//! Redis's byte for byte: a child process on a free port, killed by PID when
//! dropped, and a minimal RESP client that returns each reply's raw bytes.
//!
//! `redis-server` must be on PATH (`.ci/run` installs Debian's
//! `redis-server` package); without it the tests using this fail, never skip.
#![allow(dead_code)]

use cashe::protocol::Reply;
use std::io::{BufRead, BufReader, Read, Write};
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

    /// Reads exactly one complete RESP2 reply, parsing only its framing.
    fn read_reply(&mut self, raw: &mut Vec<u8>) {
        let start = raw.len();
        let read = self.reader.read_until(b'\n', raw).expect("read from redis-server");
        assert!(read >= 3 && raw.ends_with(b"\r\n"), "truncated reply line: {:?}", &raw[start..]);
        let count: i64 = match raw[start] {
            b'+' | b'-' | b':' => return,
            b'$' | b'*' => String::from_utf8_lossy(&raw[start + 1..raw.len() - 2]).parse().expect("length"),
            other => panic!("unexpected reply type byte {other:?}"),
        };
        if raw[start] == b'$' {
            if count >= 0 {
                let mut body = vec![0; count as usize + 2];
                self.reader.read_exact(&mut body).expect("read bulk body");
                raw.extend_from_slice(&body);
            }
            return;
        }
        for _ in 0..count.max(0) {
            self.read_reply(raw);
        }
    }
}

/// Parses one complete RESP2 reply (as `call` returns it) into a `Reply`.
pub fn parse(raw: &[u8]) -> Reply {
    let mut at = 0;
    let reply = parse_at(raw, &mut at);
    assert_eq!(at, raw.len(), "exactly one reply");
    reply
}

fn parse_at(raw: &[u8], at: &mut usize) -> Reply {
    let end = *at + raw[*at..].windows(2).position(|w| w == b"\r\n").expect("CRLF");
    let line = String::from_utf8_lossy(&raw[*at + 1..end]).into_owned();
    let kind = raw[*at];
    *at = end + 2;
    match kind {
        b'+' => Reply::Simple(line),
        b'-' => Reply::Error(line),
        b':' => Reply::Integer(line.parse().expect("integer")),
        b'$' => match line.parse::<i64>().expect("bulk length") {
            -1 => Reply::nil(),
            length => {
                let body = raw[*at..*at + length as usize].to_vec();
                *at += length as usize + 2;
                Reply::bulk(body)
            }
        },
        b'*' => match line.parse::<i64>().expect("array length") {
            -1 => Reply::Array(None),
            count => Reply::Array(Some((0..count).map(|_| parse_at(raw, at)).collect())),
        },
        other => panic!("unexpected reply type byte {other:?}"),
    }
}
