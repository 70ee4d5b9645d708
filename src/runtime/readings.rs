//! What the shell measures that the node cannot: the disk's work and
//! write times, client latencies, connections, memory and CPU. Read at
//! once into [`Readings`], which INFO (`server::refresh`) and `/metrics`
//! (`Readings::families`) both show.

use super::cores::ClientCounters;
use super::peer::PeerLink;
use super::server::Shared;
use crate::node::metrics::{Family, Kind};
use crate::node::CpuTimes;
use crate::raft::NodeId;
use crate::turn::TurnStats;
use hdrhistogram::Histogram;
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Upper bounds of the latency histograms' buckets, in seconds.
const BUCKETS_SECONDS: [f64; 16] =
    [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

pub struct Readings {
    pub uptime: Duration,
    pub executors: usize,
    pub connections_received: u64,
    pub connections_rejected: u64,
    pub by_executor: Vec<u64>,
    /// Every log's disk work, of every core; `rounds` is executor 0's loop's.
    pub disk: TurnStats,
    pub peer_messages_dropped: u64,
    /// A client write's time from its command's arrival to its reply, in µs.
    pub write_latency_us: Histogram<u64>,
    /// One durable write of the disk tasks (a group commit), in µs.
    pub wal_write_us: Histogram<u64>,
    pub rss_bytes: Option<u64>,
    pub system_memory_bytes: Option<u64>,
    pub cpu: Option<CpuTimes>,
}

impl Readings {
    /// Reads everything now (`/proc` files on Linux).
    pub fn read(
        links: &BTreeMap<NodeId, PeerLink>,
        counters: &ClientCounters,
        disk: TurnStats,
        shared: &Shared,
        started: Instant,
    ) -> Readings {
        Readings {
            uptime: started.elapsed(),
            executors: shared.executors,
            connections_received: counters.received.load(Ordering::Relaxed),
            connections_rejected: counters.rejected.load(Ordering::Relaxed),
            by_executor: counters.by_executor.iter().map(|count| count.load(Ordering::Relaxed)).collect(),
            disk,
            peer_messages_dropped: links.values().map(|l| l.dropped).sum(),
            write_latency_us: copy(&shared.write_latency_us),
            wal_write_us: copy(&shared.wal_write_us),
            rss_bytes: resident_bytes(),
            system_memory_bytes: system_memory_bytes(),
            cpu: cpu_times(),
        }
    }

    /// The shell's metric families (`node::metrics`).
    pub fn families(&self) -> Vec<Family> {
        let counter = |name, help, value: u64| Family::single(name, Kind::Counter, help, value as f64);
        let gauge = |name, help, value: f64| Family::single(name, Kind::Gauge, help, value);
        let mut families = vec![
            gauge("cashe_uptime_seconds", "Time since the process started.", self.uptime.as_secs_f64()),
            gauge(
                "cashe_executors",
                "Executors (threads) the process runs (--cores).",
                self.executors as f64,
            ),
            counter(
                "cashe_connections_received_total",
                "Client connections accepted.",
                self.connections_received,
            ),
            counter(
                "cashe_connections_rejected_total",
                "Client connections refused for --max-clients.",
                self.connections_rejected,
            ),
            counter("cashe_loop_rounds_total", "Rounds of output of the server loop.", self.disk.rounds),
            counter(
                "cashe_wal_fsyncs_total",
                "Durable writes to the logs (group commits).",
                self.disk.fsyncs,
            ),
            counter("cashe_wal_records_total", "Records written to the logs.", self.disk.records),
            counter("cashe_wal_bytes_total", "Bytes written to the logs' segments.", self.disk.bytes),
            counter("cashe_snapshots_saved_total", "Snapshots written to disk.", self.disk.snapshots),
            counter(
                "cashe_peer_messages_dropped_total",
                "Messages to other members dropped (a link's queue full or its connection down).",
                self.peer_messages_dropped,
            ),
        ];
        let mut latency = Family::new(
            "cashe_write_latency_seconds",
            Kind::Histogram,
            "A client write's time from its arrival to its reply (replicated and durable).",
        );
        histogram(&mut latency, &self.write_latency_us);
        let mut wal = Family::new(
            "cashe_wal_write_duration_seconds",
            Kind::Histogram,
            "One durable write of a log (a group commit: write and O_DSYNC).",
        );
        histogram(&mut wal, &self.wal_write_us);
        families.extend([latency, wal]);
        if let Some(rss) = self.rss_bytes {
            families.push(gauge(
                "cashe_resident_memory_bytes",
                "The process's resident set size.",
                rss as f64,
            ));
        }
        if let Some(cpu) = self.cpu {
            let mut family =
                Family::new("cashe_cpu_seconds_total", Kind::Counter, "CPU time the process used.");
            family.add(&[("mode", "user")], cpu.user_us as f64 / 1e6);
            family.add(&[("mode", "system")], cpu.system_us as f64 / 1e6);
            families.push(family);
        }
        families
    }
}

/// A histogram of microseconds as Prometheus buckets of seconds. The sum
/// is the mean times the count: hdrhistogram keeps values to 2
/// significant digits, so it is that close.
fn histogram(family: &mut Family, us: &Histogram<u64>) {
    let buckets: Vec<(f64, u64)> =
        BUCKETS_SECONDS.iter().map(|bound| (*bound, us.count_between(0, (bound * 1e6) as u64))).collect();
    let sum = us.mean() * us.len() as f64 / 1e6;
    family.add_histogram(&[], &buckets, sum, us.len());
}

fn copy(histogram: &Mutex<Histogram<u64>>) -> Histogram<u64> {
    match histogram.lock() {
        Ok(histogram) => histogram.clone(),
        Err(poisoned) => poisoned.into_inner().clone(),
    }
}

/// The process's resident set size (`VmRSS` in `/proc/self/status`), on Linux.
fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    kibibytes_field(&status, "VmRSS:")
}

/// The machine's memory (`MemTotal` in `/proc/meminfo`), on Linux.
fn system_memory_bytes() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    kibibytes_field(&meminfo, "MemTotal:")
}

/// A `Name:   1234 kB` line's value in bytes.
fn kibibytes_field(text: &str, name: &str) -> Option<u64> {
    let line = text.lines().find_map(|line| line.strip_prefix(name))?;
    let kib: u64 = line.trim().strip_suffix("kB")?.trim().parse().ok()?;
    kib.checked_mul(1024)
}

/// CPU time of the process and of this thread (the one running the node),
/// from `/proc/self/stat` and `/proc/thread-self/stat`, on Linux. Their
/// `utime` and `stime` are in clock ticks of `USER_HZ`, which is 100 on
/// every architecture Linux reports to user space in; reading
/// `sysconf(_SC_CLK_TCK)` would take an `unsafe` call this crate forbids.
fn cpu_times() -> Option<CpuTimes> {
    const TICK_US: u64 = 10_000;
    /// Fields 14 and 15 (`utime`, `stime`), counted after the `)` that ends
    /// the command name (which may hold spaces).
    fn user_system_ticks(path: &str) -> Option<(u64, u64)> {
        let stat = std::fs::read_to_string(path).ok()?;
        let mut fields = stat.get(stat.rfind(')')? + 1..)?.split_whitespace().skip(11);
        Some((fields.next()?.parse().ok()?, fields.next()?.parse().ok()?))
    }
    let (user, system) = user_system_ticks("/proc/self/stat")?;
    let (thread_user, thread_system) = user_system_ticks("/proc/thread-self/stat")?;
    Some(CpuTimes {
        user_us: user.saturating_mul(TICK_US),
        system_us: system.saturating_mul(TICK_US),
        main_thread_user_us: thread_user.saturating_mul(TICK_US),
        main_thread_system_us: thread_system.saturating_mul(TICK_US),
    })
}
