//! Real `cashe` processes on 127.0.0.1 for `tests/cluster.rs` and
//! `tests/clients.rs`: free ports, one data directory each under a per-test
//! temporary directory, every process killed by PID when its handle drops,
//! a small blocking RESP client (which also returns each reply's raw bytes,
//! for byte-for-byte comparisons), and other programs run under a deadline.
//! Every wait is bounded by a deadline.
// Each test file that includes this module uses a different part of it.
#![allow(dead_code)]

use cashe::protocol::reply::{decode, encode_command};
use cashe::protocol::Reply;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Long enough for elections and catch-up on a loaded 2-core machine.
pub const PATIENCE: Duration = Duration::from_secs(30);

#[path = "../common/ports.rs"]
mod ports;
pub use ports::free_port;

/// A directory removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(label: &str) -> TempDir {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("cashe-{label}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create a temporary directory");
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One `cashe` process (or the place for one).
pub struct Server {
    pub name: String,
    pub client_port: u16,
    pub raft_port: u16,
    pub datadir: PathBuf,
    pub log: PathBuf,
    /// Flags added to every start (`Server::command`).
    pub flags: Vec<String>,
    child: Option<Child>,
}

impl Server {
    pub fn new(root: &TempDir, name: &str) -> Server {
        Server {
            name: name.to_string(),
            client_port: free_port(),
            raft_port: free_port(),
            datadir: root.0.join(name),
            log: root.0.join(format!("{name}.log")),
            flags: Vec::new(),
            child: None,
        }
    }

    /// The command line of this server, in the README's flag style; `join`
    /// is the client port of a member to join through. More flags may be
    /// added (each at most once: clap refuses a repeated flag).
    pub fn command(&self, join: Option<u16>) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_cashe"));
        command
            .arg(format!("--id={}", self.name))
            .arg(format!("--listenaddr=127.0.0.1:{}", self.client_port))
            .arg("--raftaddr")
            .arg(format!("127.0.0.1:{}", self.raft_port))
            .arg(format!("--datadir={}", self.datadir.display()))
            .arg("--log-level=debug");
        if let Some(port) = join {
            command.arg("--leaderaddr").arg(format!(":{port}"));
        }
        command.args(&self.flags);
        command
    }

    /// Starts the process (see [`Server::command`]).
    pub fn start(&mut self, join: Option<u16>) {
        assert!(self.child.is_none(), "{} already running", self.name);
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).expect("open log");
        let child = self
            .command(join)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log"))
            .stderr(log)
            .spawn()
            .expect("spawn cashe");
        self.child = Some(child);
    }

    /// The running process's id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(child) => child.try_wait().expect("poll child").is_none(),
            None => false,
        }
    }

    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends a signal and waits (bounded) for the exit.
    pub fn signal(&mut self, signal: &str) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        let status = Command::new("kill").arg(format!("-{signal}")).arg(child.id().to_string()).status();
        assert!(status.expect("run kill").success());
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = child.try_wait().expect("poll child") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!(
                    "{} did not exit within {PATIENCE:?} of SIG{signal}; log:\n{}",
                    self.name,
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn client(&self) -> std::io::Result<Client> {
        Client::connect(self.client_port)
    }

    /// One command on a fresh connection; an IO error becomes an error reply.
    pub fn call(&self, args: &[&str]) -> Reply {
        match self.client().and_then(|mut c| c.call(args)) {
            Ok(reply) => reply,
            Err(e) => Reply::Error(format!("IO {e}")),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A blocking RESP client.
pub struct Client {
    pub stream: TcpStream,
    buffer: Vec<u8>,
}

impl Client {
    pub fn connect(port: u16) -> std::io::Result<Client> {
        let stream = TcpStream::connect(("127.0.0.1", port))?;
        stream.set_read_timeout(Some(PATIENCE))?;
        stream.set_nodelay(true)?;
        Ok(Client { stream, buffer: Vec::new() })
    }

    /// A client of a node on another address than 127.0.0.1
    /// (tests/partition.rs); gives up connecting after `timeout`.
    pub fn connect_to(address: SocketAddr, timeout: Duration) -> std::io::Result<Client> {
        let stream = TcpStream::connect_timeout(&address, timeout)?;
        stream.set_read_timeout(Some(PATIENCE))?;
        stream.set_nodelay(true)?;
        Ok(Client { stream, buffer: Vec::new() })
    }

    pub fn send(&mut self, args: &[&str]) -> std::io::Result<()> {
        let mut request = Vec::new();
        encode_command(args, &mut request);
        self.stream.write_all(&request)
    }

    pub fn read_reply(&mut self) -> std::io::Result<Reply> {
        self.read_reply_raw().map(|(reply, _)| reply)
    }

    /// One reply, with the exact bytes it came in (RESP2 or RESP3).
    pub fn read_reply_raw(&mut self) -> std::io::Result<(Reply, Vec<u8>)> {
        let mut chunk = [0u8; 16 * 1024];
        loop {
            match decode(&self.buffer) {
                Ok(Some((reply, used))) => {
                    let raw = self.buffer.drain(..used).collect();
                    return Ok((reply, raw));
                }
                Ok(None) => {}
                Err(e) => return Err(std::io::Error::other(e)),
            }
            let read = self.stream.read(&mut chunk)?;
            if read == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            self.buffer.extend_from_slice(&chunk[..read]);
        }
    }

    pub fn call(&mut self, args: &[&str]) -> std::io::Result<Reply> {
        self.send(args)?;
        self.read_reply()
    }

    /// Sends many commands with one socket write (a pipeline).
    pub fn send_all(&mut self, commands: &[Vec<String>]) -> std::io::Result<()> {
        let mut request = Vec::new();
        for command in commands {
            encode_command(command, &mut request);
        }
        self.stream.write_all(&request)
    }
}

/// Kills a child process by PID when dropped, panic or not.
pub struct ChildGuard(pub Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What a program run by [`run_bounded`] did.
pub struct Finished {
    /// `None`: killed at the deadline.
    pub status: Option<ExitStatus>,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `command` to completion or until `limit` has passed, then kills it
/// by PID; stdout and stderr are read by threads so a full pipe never stalls
/// the program.
pub fn run_bounded(command: &mut Command, limit: Duration) -> Finished {
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"));
    let mut guard = ChildGuard(child);
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut pipe) = pipe {
                let mut bytes = Vec::new();
                let _ = pipe.read_to_end(&mut bytes);
                text = String::from_utf8_lossy(&bytes).into_owned();
            }
            text
        })
    };
    let stdout = drain(guard.0.stdout.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let stderr = drain(guard.0.stderr.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = guard.0.try_wait().expect("poll child") {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = guard.0.kill();
            let _ = guard.0.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    drop(guard);
    Finished { status, stdout: stdout.join().unwrap_or_default(), stderr: stderr.join().unwrap_or_default() }
}

/// Retries `attempt` until it returns `Some`, for at most [`PATIENCE`].
pub fn eventually<T>(what: &str, attempt: impl FnMut() -> Option<T>) -> T {
    eventually_showing(what, String::new, attempt)
}

/// `eventually`, with `show()` (a server's log, say) in the message if it
/// gives up.
pub fn eventually_showing<T>(
    what: &str,
    show: impl Fn() -> String,
    mut attempt: impl FnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(value) = attempt() {
            return value;
        }
        assert!(Instant::now() < deadline, "gave up after {PATIENCE:?} waiting for: {what}\n{}", show());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A field of a `key:value` INFO-style text.
pub fn field(text: &str, key: &str) -> Option<String> {
    text.lines().find_map(|line| line.strip_prefix(&format!("{key}:")).map(|v| v.trim().to_string()))
}

pub fn bulk_text(reply: &Reply) -> Option<String> {
    match reply {
        Reply::Bulk(Some(bytes)) => Some(String::from_utf8_lossy(bytes).into_owned()),
        _ => None,
    }
}

/// Servers of one test and their directory.
pub struct Cluster {
    pub servers: Vec<Server>,
    pub root: TempDir,
    /// Flags every node is started with.
    pub flags: Vec<String>,
}

impl Cluster {
    /// `size` nodes started as the README does: the first bootstraps, the
    /// others join through it.
    pub fn start(label: &str, size: usize) -> Cluster {
        Cluster::start_with(label, size, &[])
    }

    /// `start`, each node with `flags` added.
    pub fn start_with(label: &str, size: usize, flags: &[&str]) -> Cluster {
        let root = TempDir::new(label);
        let flags = flags.iter().map(|f| f.to_string()).collect();
        let mut cluster = Cluster { servers: Vec::new(), root, flags };
        cluster.add();
        for _ in 1..size {
            cluster.add();
        }
        cluster.wait_for_voters(size);
        cluster
    }

    /// Starts one more node, joining through the first running one.
    pub fn add(&mut self) -> usize {
        let name = format!("raft{}", self.servers.len());
        let mut server = Server::new(&self.root, &name);
        server.flags = self.flags.clone();
        let via = self.servers.iter().find(|s| s.child.is_some()).map(|s| s.client_port);
        server.start(via);
        self.servers.push(server);
        self.servers.len() - 1
    }

    /// The indexes of the running nodes that are not the leader.
    pub fn followers(&self) -> Vec<usize> {
        let leader = self.leader();
        (0..self.servers.len()).filter(|i| *i != leader && self.servers[*i].child.is_some()).collect()
    }

    /// The index of the node every running node names as leader.
    pub fn leader(&self) -> usize {
        eventually("an agreed leader", || {
            let mut named = None;
            for server in self.servers.iter().filter(|s| s.child.is_some()) {
                let info = bulk_text(&server.call(&["CLUSTER", "INFO"]))?;
                let leader = field(&info, "cluster_leader").filter(|l| l != "-")?;
                if named.get_or_insert(leader.clone()) != &leader {
                    return None;
                }
            }
            let name = named?;
            self.servers.iter().position(|s| s.name == name && s.child.is_some())
        })
    }

    pub fn wait_for_voters(&self, voters: usize) {
        eventually(&format!("{voters} voters"), || {
            let leader = &self.servers[self.leader()];
            let info = bulk_text(&leader.call(&["CLUSTER", "INFO"]))?;
            let size: usize = field(&info, "cluster_voters")?.parse().ok()?;
            let learners: usize = field(&info, "cluster_learners")?.parse().ok()?;
            (size == voters && learners == 0).then_some(())
        })
    }

    /// Writes through `via` until it is acknowledged (retrying `-TIMEOUT`,
    /// `-CLUSTERDOWN`, `-TRYAGAIN` and refused connections).
    pub fn set_acknowledged(&self, via: usize, key: &str, value: &str) {
        eventually(&format!("SET {key} through {}", self.servers[via].name), || {
            (self.servers[via].call(&["SET", key, value]) == Reply::ok()).then_some(())
        })
    }

    /// The last `lines` lines of each node's log, in order.
    pub fn log_tails(&self, lines: usize) -> String {
        let tail = |text: String| {
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        };
        self.servers
            .iter()
            .map(|s| format!("==== {} (last {lines} lines)\n{}\n", s.name, tail(s.log_text())))
            .collect()
    }

    pub fn dump_logs(&self) -> String {
        self.servers.iter().map(|s| format!("==== {}\n{}", s.name, s.log_text())).collect()
    }
}

/// The venv's Python with redis-py (made by `make deps`): `CASHE_PYTHON`,
/// else `target/venv/bin/python`. Missing is a failure, never a skip.
pub fn venv_python() -> PathBuf {
    let fallback = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/venv/bin/python");
    let from_env = std::env::var_os("CASHE_PYTHON").map(PathBuf::from);
    match from_env.into_iter().chain([fallback.clone()]).find(|path| path.is_file()) {
        Some(python) => python,
        None => panic!(
            "no Python with redis-py: CASHE_PYTHON is {:?} and {} does not exist; run `make deps` \
             (it makes the venv and installs redis-py there)",
            std::env::var_os("CASHE_PYTHON"),
            fallback.display()
        ),
    }
}

/// Runs `tests/py/<script>` with the venv's Python and `args`, for at
/// most `limit`; its standard output (the script's transcript). A non-zero
/// exit, or being killed at the limit, fails the test with the transcript
/// and the script's standard error.
pub fn run_python(script: &str, args: &[String], limit: Duration, against: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/py").join(script);
    let started = Instant::now();
    let finished = run_bounded(Command::new(venv_python()).arg(&path).args(args), limit);
    println!("{script} against {against} took {:?}", started.elapsed());
    let status = match finished.status {
        Some(status) if status.success() => return finished.stdout,
        Some(status) => format!("exited with {status}"),
        None => format!("killed after {limit:?}"),
    };
    panic!(
        "{script} against {against}: {status}\n--- transcript\n{}--- stderr\n{}",
        finished.stdout, finished.stderr
    );
}

/// `redis-cli` (plain, on 127.0.0.1) with `args` against `port`; its
/// output, trimmed. A failure to run fails the test.
pub fn redis_cli(port: u16, args: &[&str]) -> String {
    let mut command = Command::new("redis-cli");
    command.args(["-p", &port.to_string()]).args(args);
    let finished = run_bounded(&mut command, Duration::from_secs(120));
    assert!(finished.status.is_some_and(|s| s.success()), "redis-cli {args:?}: {}", finished.stderr);
    finished.stdout.trim().to_string()
}

/// A redis-server on a free loopback port with `args` added (no
/// persistence), listening when this returns; killed when the guard drops.
pub fn redis_server(args: &[&std::ffi::OsStr]) -> (ChildGuard, u16) {
    let port = free_port();
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server is on PATH (make deps)");
    let guard = ChildGuard(child);
    eventually("redis-server listening", || Client::connect(port).ok().map(|_| ()));
    (guard, port)
}

/// The raw replies of every step of `script` on `port`: each step is the
/// commands (words split at spaces) sent on one fresh connection, in order.
pub fn run_script(script: &[&[&str]], port: u16) -> Vec<Vec<u8>> {
    let mut raw = Vec::new();
    for step in script {
        let mut client = Client::connect(port).expect("connect");
        for command in *step {
            let words: Vec<&str> = command.split(' ').collect();
            client.send(&words).expect("send");
            let (_, bytes) = client.read_reply_raw().expect("a reply");
            raw.push(bytes);
        }
    }
    raw
}
