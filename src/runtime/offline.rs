//! `cashe check` and `cashe dump`: a data directory read offline, while no
//! node runs on it, and never changed. The reading is here; what the
//! bytes mean is `wal::inspect` (pure).
//!
//! A data directory holds one log per executor of key groups plus the
//! home group's (docs/wal-format.md): the top level (group 0; every key
//! of a cluster of one shard), and with several shards `groups/` for the
//! key groups of core 0 and `groups-<k>/` for those of core k.

use crate::node::{core_of, describe_logged_command, group_ids, HOME};
use crate::runtime::server::{read_group_cores, read_layout};
use crate::turn::LogId;
use crate::wal::format::{META_FILE, SNAP_DIR, WAL_DIR};
use crate::wal::inspect::{self, LogFiles, LogReport, SegmentEnd};
use crate::wal::{Layout, OpenError};
use std::fmt::Write;
use std::path::{Path, PathBuf};

/// One log of a data directory: where it is and which groups it holds.
struct LogPlace {
    /// Under the data directory ("" for the top level).
    subdir: String,
    layout: Layout,
}

impl LogPlace {
    fn name(&self) -> &str {
        if self.subdir.is_empty() {
            "."
        } else {
            &self.subdir
        }
    }
}

/// The logs a data directory holds, from its `shards` and `cores` files.
fn logs_of(datadir: &Path) -> Result<(u32, u32, Vec<LogPlace>), String> {
    let shards = read_layout(datadir)?.shards;
    let cores = read_group_cores(datadir)?;
    let mut logs = vec![LogPlace { subdir: LogId::Home.subdir(0), layout: Layout::Single }];
    if shards > 1 {
        for core in 0..cores {
            let groups: Vec<u32> = group_ids(shards)
                .into_iter()
                .filter(|g| *g != HOME && core_of(*g, cores) == core)
                .map(|g| g.0)
                .collect();
            if !groups.is_empty() {
                logs.push(LogPlace { subdir: LogId::Keys.subdir(core), layout: Layout::Groups(groups) });
            }
        }
    }
    Ok((shards, cores, logs))
}

/// Reads a log's `meta`, `wal/*` and `snap/*` files. `None` when the
/// log's directory does not exist.
fn read_log(dir: &Path) -> Result<Option<LogFiles>, String> {
    let fail = |path: &Path, e: std::io::Error| format!("{}: {e}", path.display());
    if !dir.is_dir() {
        return Ok(None);
    }
    let mut log = LogFiles::default();
    let meta = dir.join(META_FILE);
    match std::fs::read(&meta) {
        Ok(bytes) => {
            log.files.insert(META_FILE.to_string(), bytes);
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(fail(&meta, e)),
    }
    for sub in [WAL_DIR, SNAP_DIR] {
        let path = dir.join(sub);
        let entries = match std::fs::read_dir(&path) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(fail(&path, e)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| fail(&path, e))?;
            let file = entry.path();
            if !file.is_file() {
                continue;
            }
            let bytes = std::fs::read(&file).map_err(|e| fail(&file, e))?;
            log.files.insert(format!("{sub}/{}", entry.file_name().to_string_lossy()), bytes);
        }
    }
    Ok(Some(log))
}

/// What `check` found: the report to print, and whether every log would
/// open.
pub struct Checked {
    pub text: String,
    pub sound: bool,
}

/// `cashe check --datadir DIR`.
pub fn check(datadir: &Path) -> Result<Checked, String> {
    let (shards, cores, logs) = logs_of(datadir)?;
    let mut text = String::new();
    let _ = writeln!(
        text,
        "data directory {}: {shards} shard(s), key groups on {cores} core(s), {} log(s)",
        datadir.display(),
        logs.len()
    );
    let mut refused = Vec::new();
    let (mut segments, mut snapshots, mut records) = (0, 0, 0);
    for place in &logs {
        let dir: PathBuf = datadir.join(&place.subdir);
        let groups = place.layout.groups().iter().map(u32::to_string).collect::<Vec<_>>().join(" ");
        let _ = writeln!(text, "log {} (group(s) {groups}):", place.name());
        let Some(files) = read_log(&dir)? else {
            let _ = writeln!(
                text,
                "  MISSING: {} does not exist; a start would begin these groups empty",
                dir.display()
            );
            refused.push(format!("{}: missing", place.name()));
            continue;
        };
        let report = inspect::check(&place.layout, &files);
        write_report(&mut text, &report);
        segments += report.segments.len();
        snapshots += report.snapshots.len();
        records += report.segments.iter().map(|s| s.records).sum::<u64>();
        if let Err(e) = &report.opened {
            refused.push(format!("{}: {e}", place.name()));
        }
    }
    let sound = refused.is_empty();
    if sound {
        let _ = writeln!(
            text,
            "check: ok: {} log(s), {segments} segment(s), {snapshots} snapshot(s), {records} record(s)",
            logs.len()
        );
    } else {
        let _ = writeln!(
            text,
            "check: DAMAGED: a start would refuse {} of {} log(s):",
            refused.len(),
            logs.len()
        );
        for line in refused {
            let _ = writeln!(text, "  {line}");
        }
    }
    Ok(Checked { text, sound })
}

fn write_report(text: &mut String, report: &LogReport) {
    let _ = match &report.meta {
        Ok((node, cluster, version)) => {
            writeln!(text, "  {META_FILE}: node {node} of cluster {cluster:#x}, format version {version}")
        }
        Err(e) => writeln!(text, "  {META_FILE}: {e}"),
    };
    for segment in &report.segments {
        let end = match &segment.end {
            SegmentEnd::Whole => format!("valid to its end ({})", segment.bytes),
            SegmentEnd::Zeros(offset) => format!("valid to offset {offset}, zeros after"),
            SegmentEnd::Bad { offset, detail } => {
                format!("valid to offset {offset}; BAD FRAME at {offset}: {detail}")
            }
        };
        let _ = writeln!(
            text,
            "  {}: {} bytes, {} record(s) ({} hard state(s), {} truncation(s)), {end}",
            segment.file, segment.bytes, segment.records, segment.hard_states, segment.truncations
        );
        for (group, (first, last, term)) in &segment.entries {
            let _ = writeln!(text, "    group {group}: entries {first} to {last}, the last of term {term}");
        }
    }
    for snapshot in &report.snapshots {
        let _ = match &snapshot.content {
            Ok((group, index, term, state)) => writeln!(
                text,
                "  {}: group {group} at index {index} term {term}, {state} bytes of state",
                snapshot.file
            ),
            Err(e) => writeln!(text, "  {}: {} bytes, UNREADABLE {e}", snapshot.file, snapshot.bytes),
        };
    }
    match &report.opened {
        Ok(groups) => {
            for (group, state) in groups {
                let base = state
                    .snapshot
                    .as_ref()
                    .map_or("no snapshot".to_string(), |s| format!("snapshot at {}", s.meta.index));
                let h = &state.hard_state;
                let vote = h.vote.map_or("none".to_string(), |v| v.0.to_string());
                let _ = writeln!(
                    text,
                    "  opens: group {group}: {base}, {} entries to index {}, term {} vote {vote} commit {}",
                    state.entries.len(),
                    state.last_index(),
                    h.term,
                    h.commit
                );
            }
            if let Some((file, offset)) = &report.torn {
                let _ = writeln!(
                    text,
                    "  a start cuts {file} back to offset {offset}: its last write is torn, as a crash in the middle of a write leaves it"
                );
            }
        }
        Err(OpenError::Corrupt(c)) => {
            let _ = writeln!(text, "  REFUSED: damaged: {} at offset {}: {}", c.file, c.offset, c.detail);
        }
        Err(e) => {
            let _ = writeln!(text, "  REFUSED: {e}");
        }
    }
}

/// `cashe dump --datadir DIR`: every log's records, segment by segment,
/// to `emit`.
pub fn dump(datadir: &Path, emit: &mut dyn FnMut(String)) -> Result<(), String> {
    let (_, _, logs) = logs_of(datadir)?;
    for place in &logs {
        let dir = datadir.join(&place.subdir);
        let Some(files) = read_log(&dir)? else {
            emit(format!("log {}: missing\n", place.name()));
            continue;
        };
        emit(format!("log {}:\n", place.name()));
        let describe = |bytes: &[u8]| describe_logged_command(bytes);
        let prefix = if place.subdir.is_empty() { String::new() } else { format!("{}/", place.subdir) };
        inspect::dump(&place.layout, &files, &prefix, &describe, emit);
    }
    Ok(())
}
