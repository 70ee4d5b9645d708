//! The cores cell (issue 16): what a second executor gives one node. A
//! one-node cluster of [`CORES_SHARDS`] shards started with `--cores 1`
//! and another with `--cores 2` (each its own process and data directory,
//! both running throughout; with two cores the second node's key groups
//! are on both executors, each with its own log);
//! SET at 64 clients on the first, then at once on the second, then GET
//! likewise (both preloaded with the same keys). Besides ops/s and
//! latency, each side's server CPU time per operation: the process's user
//! and system time (`/proc/<pid>/stat`, all threads) over the load, warm-up
//! included, divided by the operations at the measured rate over the same
//! span.
//! The load generator runs on the same machine and takes its own share of
//! the CPUs, the same for both sides.

use super::{measure, BenchResult, CasheNode, LoadResult, ReplyExt, Settings, Workload};
use std::path::Path;
use std::time::Instant;

/// Clients of the cores cell.
pub(super) const CORES_CLIENTS: usize = 64;

/// Shards of the cores cell's nodes (unless `CASHE_BENCH_CASHE_ARGS` names
/// `--shards`): groups on both cores need several.
pub(super) const CORES_SHARDS: u32 = 16;

/// One side of the cell: a workload against one node.
pub(super) struct CoresSide {
    pub(super) cores: usize,
    pub(super) result: LoadResult,
    /// Server CPU seconds over the load, and operations over the same span.
    pub(super) cpu_seconds: f64,
    pub(super) wall_seconds: f64,
}

impl CoresSide {
    /// Server CPU microseconds per operation.
    pub(super) fn cpu_us_per_op(&self) -> f64 {
        // Operations in the CPU span: the measured rate over the whole span.
        let ops = self.result.ops_per_second() * self.wall_seconds;
        self.cpu_seconds * 1e6 / ops.max(1.0)
    }
}

pub(super) struct CoresCell {
    /// `(workload, [--cores 1, --cores 2])`.
    pub(super) rows: Vec<(Workload, [CoresSide; 2])>,
}

fn start_node(dir: &Path, logs: &Path, name: &str, cores: usize, extra: &[String]) -> BenchResult<CasheNode> {
    let mut node = CasheNode {
        name: name.to_string(),
        client_port: super::free_port(),
        raft_port: super::free_port(),
        datadir: dir.join(name),
        log: logs.join(format!("{name}.log")),
        process: None,
    };
    let mut args = extra.to_vec();
    args.push(format!("--cores={cores}"));
    node.start(None, &args)?;
    super::eventually("a one-node cluster to elect itself", || {
        (node.call(&["SET", "ready", "1"])?.is_simple()).then_some(())
    })?;
    Ok(node)
}

fn side(node: &CasheNode, cores: usize, workload: Workload, settings: &Settings) -> BenchResult<CoresSide> {
    let pid = node.process.as_ref().ok_or("the node is not running")?.pid();
    let (cpu_before, started) = (super::process::cpu_seconds(pid)?, Instant::now());
    let result = measure(vec![node.address()], CORES_CLIENTS, workload, settings)?;
    let (cpu_seconds, wall_seconds) =
        (super::process::cpu_seconds(pid)? - cpu_before, started.elapsed().as_secs_f64());
    Ok(CoresSide { cores, result, cpu_seconds, wall_seconds })
}

/// SET and GET at [`CORES_CLIENTS`] on one node at `--cores 1` and `2`.
pub(super) fn cores_cell(settings: &Settings, data: &Path, logs: &Path) -> BenchResult<CoresCell> {
    let dir = data.join("cores");
    std::fs::create_dir_all(&dir)?;
    let mut args = settings.cashe_args.clone();
    if !args.iter().any(|a| a.starts_with("--shards")) {
        args.push(format!("--shards={CORES_SHARDS}"));
    }
    let one = start_node(&dir, logs, "cores1", 1, &args)?;
    let two = start_node(&dir, logs, "cores2", 2, &args)?;
    let mut rows = Vec::new();
    for workload in [Workload::Set, Workload::Get] {
        if workload == Workload::Get {
            super::preload(&[one.address()])?;
            super::preload(&[two.address()])?;
        }
        let first = side(&one, 1, workload, settings)?;
        let second = side(&two, 2, workload, settings)?;
        rows.push((workload, [first, second]));
    }
    Ok(CoresCell { rows })
}
