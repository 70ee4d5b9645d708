//! The idle-shards cell (issue 16): what holding many Raft groups costs a
//! member that has nothing to do. For each shard count (`16,1024` by
//! default, `CASHE_BENCH_IDLE_SHARDS`) a fresh three-node cluster is made
//! with `--shards N`, and once every group is quiet on every node (INFO
//! `raft_groups_awake:0`, and the quiet leaders add up to every group) the
//! first node's CPU time (user + system, `/proc/<pid>/stat`) and peer
//! messages (INFO `peer_messages_sent` + `peer_messages_received`) are read
//! over `CASHE_BENCH_IDLE_SECONDS` (20). No client load runs: this is the
//! floor a member pays per group, which quiet groups keep flat.
//!
//! Then the loaded side: for each shard count of `CASHE_BENCH_LOAD_SHARDS`
//! (`1,16`) a fresh three-node cluster takes SET at 64 plain clients spread
//! over its nodes (forwarded to each key's leader), once the leaders have
//! spread; ops/s, p99 and the durable writes (`wal_fsyncs`, summed over
//! the nodes) per SET. With the key groups' records in one shared log, a
//! turn's writes to every group are one durable write, so 16 shards need
//! no more fsyncs per SET than one.

use super::{eventually_within, measure, BenchResult, Cluster, LoadResult, Settings, Workload};
use cashe::protocol::Reply;
use std::path::Path;
use std::time::{Duration, Instant};

/// How long the groups of a fresh cluster may take to spread their leaders
/// and go quiet (1,024 groups start on the founder).
const SETTLE_PATIENCE: Duration = Duration::from_secs(300);

pub(super) struct IdleSide {
    pub(super) shards: u32,
    pub(super) cpu_percent: f64,
    pub(super) messages_per_second: f64,
    pub(super) resident_mib: f64,
    /// Seconds from the first start until every group was quiet.
    pub(super) settle_seconds: f64,
}

pub(super) struct LoadedSide {
    pub(super) shards: u32,
    pub(super) result: LoadResult,
    pub(super) fsyncs_per_op: f64,
}

pub(super) struct ShardsCell {
    pub(super) sides: Vec<IdleSide>,
    pub(super) loaded: Vec<LoadedSide>,
}

/// Clients of the loaded side.
const LOAD_CLIENTS: usize = 64;

/// A number of node `node`'s `INFO stats`.
fn info_u64(cluster: &Cluster, node: usize, key: &str) -> Option<u64> {
    super::info_number(&cluster.nodes[node], "stats", key)
}

fn messages(cluster: &Cluster) -> BenchResult<u64> {
    let sent = info_u64(cluster, 0, "peer_messages_sent").ok_or("no peer_messages_sent in INFO")?;
    let received = info_u64(cluster, 0, "peer_messages_received").ok_or("no peer_messages_received")?;
    Ok(sent + received)
}

/// Every group of every node is quiet.
fn all_quiet(cluster: &Cluster, groups: u64) -> bool {
    let mut led_quietly = 0;
    for node in 0..cluster.nodes.len() {
        match (
            info_u64(cluster, node, "raft_groups_awake"),
            info_u64(cluster, node, "raft_groups_led_quietly"),
        ) {
            (Some(0), Some(quiet)) => led_quietly += quiet,
            _ => return false,
        }
    }
    led_quietly == groups
}

fn side(shards: u32, settings: &Settings, data: &Path, logs: &Path, seconds: f64) -> BenchResult<IdleSide> {
    let started = Instant::now();
    let mut args = settings.cashe_args.clone();
    args.push(format!("--shards={shards}"));
    let cluster = Cluster::start(&data.join(format!("idle-{shards}")), logs, &args)?;
    let groups = u64::from(shards) + 1;
    // Quiet on three looks in a row, a second apart (INFO is refreshed
    // every 50 ticks).
    let mut quiet_looks = 0;
    eventually_within(
        &format!("the {groups} groups of {shards} shards to go quiet"),
        SETTLE_PATIENCE,
        || {
            quiet_looks = if all_quiet(&cluster, groups) { quiet_looks + 1 } else { 0 };
            std::thread::sleep(Duration::from_millis(1000));
            (quiet_looks >= 3).then_some(())
        },
    )?;
    let settle_seconds = started.elapsed().as_secs_f64();
    let pid = cluster.nodes[0].process.as_ref().ok_or("node 0 is not running")?.pid();
    let (cpu_before, messages_before, at) =
        (super::process::cpu_seconds(pid)?, messages(&cluster)?, Instant::now());
    std::thread::sleep(Duration::from_secs_f64(seconds));
    let (cpu_after, messages_after) = (super::process::cpu_seconds(pid)?, messages(&cluster)?);
    let wall = at.elapsed().as_secs_f64();
    let resident = cluster.nodes[0].process.as_ref().map(|p| p.resident_bytes()).transpose()?.unwrap_or(0);
    Ok(IdleSide {
        shards,
        cpu_percent: (cpu_after - cpu_before) * 100.0 / wall,
        messages_per_second: messages_after.saturating_sub(messages_before) as f64 / wall,
        resident_mib: resident as f64 / f64::from(1 << 20),
        settle_seconds,
    })
}

pub(super) fn shards_cell(settings: &Settings, data: &Path, logs: &Path) -> BenchResult<ShardsCell> {
    let counts = shard_counts("CASHE_BENCH_IDLE_SHARDS", "16,1024")?;
    let seconds: f64 = super::env_or("CASHE_BENCH_IDLE_SECONDS", 20.0)?;
    let mut sides = Vec::new();
    for shards in counts {
        sides.push(side(shards, settings, data, logs, seconds)?);
    }
    let mut loaded = Vec::new();
    for shards in shard_counts("CASHE_BENCH_LOAD_SHARDS", "1,16")? {
        loaded.push(loaded_side(shards, settings, data, logs)?);
    }
    Ok(ShardsCell { sides, loaded })
}

fn shard_counts(variable: &str, default: &str) -> BenchResult<Vec<u32>> {
    let counts = std::env::var(variable).unwrap_or_else(|_| default.to_string());
    counts
        .split(',')
        .map(|c| c.trim().parse::<u32>().map_err(|e| format!("{variable}: {e}").into()))
        .collect()
}

/// Durable writes so far, over every node.
fn fsyncs(cluster: &Cluster) -> BenchResult<u64> {
    (0..cluster.nodes.len())
        .map(|node| info_u64(cluster, node, "wal_fsyncs").ok_or("no wal_fsyncs".into()))
        .sum()
}

/// How many key groups each node leads (INFO cluster's group lines).
fn led(cluster: &Cluster) -> Option<Vec<usize>> {
    let lines = |node: &super::CasheNode| match node.call(&["INFO", "cluster"])? {
        Reply::Bulk(Some(text)) => Some(String::from_utf8_lossy(&text).matches("role=leader").count()),
        _ => None,
    };
    cluster.nodes.iter().map(lines).collect()
}

fn loaded_side(shards: u32, settings: &Settings, data: &Path, logs: &Path) -> BenchResult<LoadedSide> {
    let mut args = settings.cashe_args.clone();
    args.push(format!("--shards={shards}"));
    let cluster = Cluster::start(&data.join(format!("loaded-{shards}")), logs, &args)?;
    if shards > 1 {
        // Every node leads its share, so that all three lead writes.
        let share = (shards as usize + 1) / 3;
        eventually_within(&format!("the leaders of {shards} shards to spread"), SETTLE_PATIENCE, || {
            std::thread::sleep(Duration::from_millis(500));
            led(&cluster).filter(|counts| counts.iter().all(|n| *n >= share)).map(|_| ())
        })?;
    }
    let before = fsyncs(&cluster)?;
    let result = measure(cluster.client_addresses(), LOAD_CLIENTS, Workload::Set, settings)?;
    // INFO's WAL counts are refreshed every 50 ticks.
    std::thread::sleep(Duration::from_millis(1500));
    let after = fsyncs(&cluster)?;
    let ops = (result.ops_per_second() * (settings.seconds + settings.warmup_seconds)).max(1.0);
    let fsyncs_per_op = after.saturating_sub(before) as f64 / ops;
    Ok(LoadedSide { shards, result, fsyncs_per_op })
}
