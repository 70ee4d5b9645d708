//! The servers the benchmarks start as child processes, and what `/proc`
//! and `INFO` say about them. Shared by `benches/cluster.rs` and
//! `benches/floor.rs`, which each use part of it.
#![allow(dead_code)]

use std::error::Error;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

type Result<T> = std::result::Result<T, Box<dyn Error>>;

/// How often [`eventually_within`] tries again.
const RETRY_INTERVAL: Duration = Duration::from_millis(50);

/// Linux reports CPU time in clock ticks of USER_HZ, 100 on every platform
/// it runs on.
const TICKS_PER_SECOND: f64 = 100.0;

/// A child process, killed (SIGKILL, by its PID) and reaped when dropped.
pub struct Process {
    child: Child,
}

impl Process {
    /// Starts `command` with its output appended to `log`.
    pub fn spawn(command: &mut Command, log: &Path) -> Result<Process> {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(log)?;
        let child = command.stdin(Stdio::null()).stdout(log.try_clone()?).stderr(log).spawn()?;
        Ok(Process { child })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its exit status if it has ended (reaped then), without waiting.
    pub fn try_wait(&mut self) -> Result<Option<ExitStatus>> {
        Ok(self.child.try_wait()?)
    }

    /// `VmRSS` from `/proc/<pid>/status`, in bytes.
    pub fn resident_bytes(&self) -> Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))?;
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).ok_or("no VmRSS line")?;
        let kib: u64 = line.split_whitespace().nth(1).ok_or("empty VmRSS line")?.parse()?;
        Ok(kib * 1024)
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// User + system CPU seconds of process `pid`, all its threads.
pub fn cpu_seconds(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces) in parentheses.
    let rest = stat.rsplit_once(')').ok_or("no command name in stat")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 here.
    let ticks: u64 = fields.get(11).ok_or("short stat")?.parse::<u64>()?
        + fields.get(12).ok_or("short stat")?.parse::<u64>()?;
    Ok(ticks as f64 / TICKS_PER_SECOND)
}

/// A field of a `key:value` INFO-style text.
pub fn field(text: &str, key: &str) -> Option<String> {
    text.lines().find_map(|line| line.strip_prefix(&format!("{key}:")).map(|v| v.trim().to_string()))
}

/// Waits until `attempt` returns `Some`, for at most `patience`.
pub fn eventually_within<T>(
    what: &str,
    patience: Duration,
    mut attempt: impl FnMut() -> Option<T>,
) -> Result<T> {
    let deadline = Instant::now() + patience;
    loop {
        if let Some(value) = attempt() {
            return Ok(value);
        }
        if Instant::now() > deadline {
            return Err(format!("gave up after {patience:?} waiting for {what}").into());
        }
        std::thread::sleep(RETRY_INTERVAL);
    }
}
