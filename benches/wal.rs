//! WAL group commit against the raw fdatasync rate of the same directory.
//!
//! Prints numbers and asserts nothing (DESIGN §9). In one glommio executor
//! and a fresh directory, for batches of 1, 16 and 256 records of 100-byte
//! payloads, it measures in turn:
//! 1. the raw rate: append 100 bytes and make them durable on a plain file,
//!    through `GlommioDisk` (an `O_DSYNC` write, the same operation the WAL
//!    uses), as often as it can;
//! 2. records/s and fsyncs/s through `Wal::append` (one write and one
//!    fdatasync per batch), and the ratio of that fsync rate to the raw one.
//!
//! The raw rate is measured again right before each WAL cell rather than
//! once: on a shared VM the fsync rate drifts by a factor of two within
//! seconds, and a ratio is only meaningful against a neighbour in time.
//!
//! Each cell runs for `CASHE_BENCH_SECONDS` (default 2) or a fixed count,
//! whichever ends first. The directory is a new one under `CASHE_BENCH_DIR`
//! (default `./target/bench-wal`) and is removed at the end; the table is
//! also written as JSON to `target/bench/wal.json`.

use cashe::raft::{Entry, Index, Lsn, Payload, Record, Term};
use cashe::runtime::disk::GlommioDisk;
use cashe::wal::disk::{Disk, DiskFile};
use cashe::wal::{Wal, WalOptions};
use glommio::LocalExecutorBuilder;
use hdrhistogram::Histogram;
use std::error::Error;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const PAYLOAD_BYTES: usize = 100;
const BATCH_SIZES: [usize; 3] = [1, 16, 256];
/// A cell stops after this many fsyncs even if its time is not up.
const FSYNCS_PER_CELL_MAX: u64 = 1_000_000;
/// Latencies are recorded in microseconds up to one minute.
const LATENCY_US_MAX: u64 = 60_000_000;
const JSON_PATH: &str = "target/bench/wal.json";

type BenchResult<T> = Result<T, Box<dyn Error>>;

/// One cell: `fsyncs` timed operations carrying `records` records.
struct Measurement {
    records: u64,
    fsyncs: u64,
    seconds: f64,
    latency_us: Histogram<u64>,
}

struct Row {
    batch_size: usize,
    raw: Measurement,
    wal: Measurement,
}

impl Measurement {
    fn new() -> BenchResult<Measurement> {
        let latency_us = Histogram::new_with_bounds(1, LATENCY_US_MAX, 3)?;
        Ok(Measurement { records: 0, fsyncs: 0, seconds: 0.0, latency_us })
    }

    fn records_per_second(&self) -> f64 {
        self.records as f64 / self.seconds
    }

    fn fsyncs_per_second(&self) -> f64 {
        self.fsyncs as f64 / self.seconds
    }

    fn p50_us(&self) -> u64 {
        self.latency_us.value_at_quantile(0.5)
    }

    fn p99_us(&self) -> u64 {
        self.latency_us.value_at_quantile(0.99)
    }
}

impl Row {
    /// WAL fsyncs/s ÷ raw fdatasync/s.
    fn ratio(&self) -> f64 {
        self.wal.fsyncs_per_second() / self.raw.fsyncs_per_second()
    }
}

fn main() -> BenchResult<()> {
    let seconds: f64 = match std::env::var("CASHE_BENCH_SECONDS") {
        Ok(value) => value.parse().map_err(|e| format!("CASHE_BENCH_SECONDS={value:?}: {e}"))?,
        Err(_) => 2.0,
    };
    let cell_time = Duration::from_secs_f64(seconds);
    let base =
        std::env::var_os("CASHE_BENCH_DIR").map_or_else(|| PathBuf::from("target/bench-wal"), PathBuf::from);
    let dir = base.join(format!("run-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;

    let executor_dir = dir.clone();
    let outcome = LocalExecutorBuilder::default()
        .name("bench-wal")
        // Storage IO here uses buffered files, not registered buffers; keep
        // the registration small (DESIGN §10).
        .io_memory(1 << 20)
        .spawn(move || async move { measure(&executor_dir, cell_time).await.map_err(|e| e.to_string()) })?
        .join();
    let removed = std::fs::remove_dir_all(&dir);
    let rows = outcome??;
    removed?;

    print_table(&dir, seconds, &rows);
    std::fs::create_dir_all(Path::new(JSON_PATH).parent().expect("has a parent"))?;
    std::fs::write(JSON_PATH, to_json(&dir, seconds, &rows))?;
    println!("written to {JSON_PATH}");
    Ok(())
}

async fn measure(dir: &Path, cell_time: Duration) -> BenchResult<Vec<Row>> {
    let mut rows = Vec::new();
    for batch_size in BATCH_SIZES {
        let cell_dir = dir.join(format!("batch-{batch_size}"));
        let raw = raw_fdatasync(&GlommioDisk::new(&cell_dir), cell_time).await?;
        let wal = group_commit(GlommioDisk::new(cell_dir.join("data")), batch_size, cell_time).await?;
        rows.push(Row { batch_size, raw, wal });
    }
    Ok(rows)
}

/// Append 100 bytes durably (`GlommioDisk`: one `O_DSYNC` write) to a
/// plain file, until time is up.
async fn raw_fdatasync(disk: &GlommioDisk, cell_time: Duration) -> BenchResult<Measurement> {
    disk.create_dir_all("").await?;
    let mut file = disk.open_append("raw.dat").await?;
    let payload = [0u8; PAYLOAD_BYTES];
    let mut measurement = Measurement::new()?;
    let start = Instant::now();
    while start.elapsed() < cell_time && measurement.fsyncs < FSYNCS_PER_CELL_MAX {
        let began = Instant::now();
        file.append(&payload).await?;
        file.sync().await?;
        measurement.latency_us.saturating_record(began.elapsed().as_micros() as u64);
        measurement.fsyncs += 1;
    }
    measurement.seconds = start.elapsed().as_secs_f64();
    measurement.records = measurement.fsyncs;
    file.close().await?;
    Ok(measurement)
}

/// Group commits of `batch_size` entries each through a fresh WAL.
async fn group_commit(disk: GlommioDisk, batch_size: usize, cell_time: Duration) -> BenchResult<Measurement> {
    let (mut wal, _) = Wal::open(disk, WalOptions::new(1, 1)).await?;
    let mut measurement = Measurement::new()?;
    let mut batch = Vec::with_capacity(batch_size);
    let start = Instant::now();
    while start.elapsed() < cell_time && measurement.fsyncs < FSYNCS_PER_CELL_MAX {
        let first = measurement.records + 1;
        batch.clear();
        batch.extend((first..first + batch_size as u64).map(entry));
        let began = Instant::now();
        wal.append(&batch).await?;
        measurement.latency_us.saturating_record(began.elapsed().as_micros() as u64);
        measurement.records += batch_size as u64;
        measurement.fsyncs += 1;
    }
    measurement.seconds = start.elapsed().as_secs_f64();
    Ok(measurement)
}

/// The `number`th record of a run: entry `number` at `Lsn` `number`.
fn entry(number: u64) -> (Lsn, Record) {
    let payload = Payload::Command(vec![0u8; PAYLOAD_BYTES]);
    (Lsn(number), Record::Entry(Entry { term: Term(1), index: Index(number), payload }))
}

fn print_table(dir: &Path, seconds: f64, rows: &[Row]) {
    println!("WAL group commit in {} ({seconds} s per cell, {PAYLOAD_BYTES}-byte payloads)", dir.display());
    println!(
        "{:>10} | {:>12} | {:>10} | {:>15} | {:>6} | {:>20} | {:>12} | {:>12}",
        "batch size",
        "records/s",
        "fsyncs/s",
        "raw fdatasync/s",
        "ratio",
        "p50 batch latency µs",
        "raw p50 µs",
        "raw p99 µs"
    );
    for row in rows {
        println!(
            "{:>10} | {:>12.0} | {:>10.0} | {:>15.0} | {:>6.2} | {:>20} | {:>12} | {:>12}",
            row.batch_size,
            row.wal.records_per_second(),
            row.wal.fsyncs_per_second(),
            row.raw.fsyncs_per_second(),
            row.ratio(),
            row.wal.p50_us(),
            row.raw.p50_us(),
            row.raw.p99_us()
        );
    }
}

fn to_json(dir: &Path, seconds: f64, rows: &[Row]) -> String {
    let mut json = String::new();
    let _ = writeln!(json, "{{\n  \"dir\": {},", json_string(&dir.display().to_string()));
    let _ = writeln!(json, "  \"seconds_per_cell\": {seconds},\n  \"payload_bytes\": {PAYLOAD_BYTES},");
    json.push_str("  \"rows\": [\n");
    for (i, row) in rows.iter().enumerate() {
        let separator = if i + 1 < rows.len() { "," } else { "" };
        let _ = writeln!(
            json,
            "    {{\"batch_size\": {}, \"records_per_second\": {:.1}, \"fsyncs_per_second\": {:.1}, \
             \"raw_fdatasync_per_second\": {:.1}, \"ratio\": {:.4}, \"p50_batch_latency_us\": {}, \
             \"p99_batch_latency_us\": {}, \"raw_p50_us\": {}, \"raw_p99_us\": {}}}{separator}",
            row.batch_size,
            row.wal.records_per_second(),
            row.wal.fsyncs_per_second(),
            row.raw.fsyncs_per_second(),
            row.ratio(),
            row.wal.p50_us(),
            row.wal.p99_us(),
            row.raw.p50_us(),
            row.raw.p99_us()
        );
    }
    json.push_str("  ]\n}\n");
    json
}

/// `text` as a JSON string literal.
fn json_string(text: &str) -> String {
    let mut quoted = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(quoted, "\\u{:04x}", u32::from(c));
            }
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}
