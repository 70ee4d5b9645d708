//! `cashe check` and `cashe dump` on the data directory of a real node
//! (issue 18), stopped first: one node of 4 shards with its key groups on
//! 2 cores, so the directory has all three kinds of log (the home group's
//! at the top, `groups/`, `groups-1/`).
//! - `check` says ok on a clean directory, and changes no byte of it;
//! - `dump` prints the client's writes as they were logged;
//! - a byte damaged inside a segment: `check` exits 1 naming the log, the
//!   segment and the offset of the damaged frame, and a start refuses the
//!   directory at the same place;
//! - a torn last write: `check` says a start cuts it back to the end of
//!   the last whole frame, and a start does, keeping every key.
//!
//! Every process is killed by PID when its test ends, pass or fail, and
//! every wait is bounded.

#[path = "cluster/harness.rs"]
mod harness;

use cashe::protocol::Reply;
use harness::{eventually, run_bounded, Cluster, Finished, PATIENCE};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

const KEYS: usize = 40;

/// A stopped one-node cluster of 4 shards on 2 cores, holding `KEYS` keys.
fn stopped_node_with_keys(label: &str) -> Cluster {
    let mut cluster = Cluster::start_with(label, 1, &["--shards=4", "--cores=2"]);
    for k in 0..KEYS {
        cluster.set_acknowledged(0, &format!("key:{k}"), &format!("value:{k}"));
    }
    let status = cluster.servers[0].signal("TERM");
    assert!(status.success(), "the node did not stop cleanly: {status:?}\n{}", cluster.dump_logs());
    cluster
}

fn tool(name: &str, datadir: &Path) -> Finished {
    let mut command = Command::new(env!("CARGO_BIN_EXE_cashe"));
    command.arg(name).arg("--datadir").arg(datadir);
    run_bounded(&mut command, PATIENCE)
}

fn exit_code(finished: &Finished) -> Option<i32> {
    finished.status.and_then(|s| s.code())
}

/// Every file under `dir` and its bytes.
fn files_under(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).expect("read the data directory") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                pending.push(path);
            } else {
                let bytes = std::fs::read(&path).expect("read a file");
                files.insert(path, bytes);
            }
        }
    }
    files
}

/// The dump's line of the logged `SET key value`: (file, offset).
fn logged_set(dump: &str, key: &str, value: &str) -> (String, u64) {
    let wanted = format!("\"{key}\" \"{value}\"");
    let line = dump
        .lines()
        .find(|line| line.ends_with(&wanted))
        .unwrap_or_else(|| panic!("the dump shows no {wanted}:\n{dump}"));
    let (place, _) = line.split_once(' ').expect("a dump line starts with file@offset");
    let (file, offset) = place.split_once('@').expect("file@offset");
    (file.to_string(), offset.parse().expect("an offset"))
}

#[test]
fn check_finds_a_clean_directory_sound_and_names_the_segment_and_offset_of_a_damaged_byte() {
    let cluster = stopped_node_with_keys("offline-damage");
    let datadir = cluster.servers[0].datadir.clone();
    let before = files_under(&datadir);

    let checked = tool("check", &datadir);
    assert_eq!(
        exit_code(&checked),
        Some(0),
        "check of a clean directory:\n{}{}",
        checked.stdout,
        checked.stderr
    );
    for expected in [
        "log . (group(s) 0)",
        "log groups (group(s) 1 3)",
        "log groups-1 (group(s) 2 4)",
        "check: ok: 3 log(s)",
    ] {
        assert!(checked.stdout.contains(expected), "check's report lacks {expected:?}:\n{}", checked.stdout);
    }
    for group in 0..=4 {
        assert!(
            checked.stdout.contains(&format!("opens: group {group}: ")),
            "group {group}:\n{}",
            checked.stdout
        );
    }
    assert_eq!(files_under(&datadir), before, "check changed the data directory");

    let dumped = tool("dump", &datadir);
    assert_eq!(exit_code(&dumped), Some(0), "dump:\n{}", dumped.stderr);
    for k in 0..KEYS {
        logged_set(&dumped.stdout, &format!("key:{k}"), &format!("value:{k}"));
    }
    assert_eq!(files_under(&datadir), before, "dump changed the data directory");

    // Damage one byte inside the frame of an early write of a key group:
    // frames follow it, so it is not a torn tail but damage.
    let (file, offset) = logged_set(&dumped.stdout, "key:1", "value:1");
    let (log, segment) = file.split_once('/').expect("a key group's log is in a subdirectory");
    let path = datadir.join(&file);
    let mut bytes = std::fs::read(&path).expect("read the segment");
    bytes[offset as usize + 12] ^= 0x20;
    std::fs::write(&path, &bytes).expect("write the damaged segment");

    let checked = tool("check", &datadir);
    assert_eq!(
        exit_code(&checked),
        Some(1),
        "check of a damaged directory:\n{}{}",
        checked.stdout,
        checked.stderr
    );
    let named = format!("REFUSED: damaged: {segment} at offset {offset}:");
    assert!(checked.stdout.contains(&named), "check does not say {named:?}:\n{}", checked.stdout);
    assert!(
        checked.stdout.contains(&format!("check: DAMAGED: a start would refuse 1 of 3 log(s):\n  {log}: ")),
        "check's verdict:\n{}",
        checked.stdout
    );
    assert!(
        checked.stdout.contains(&format!("valid to offset {offset}; BAD FRAME at {offset}")),
        "check does not show where the segment's valid frames end:\n{}",
        checked.stdout
    );

    // A start refuses it at the same place.
    let server = &cluster.servers[0];
    let started = run_bounded(&mut server.command(None), PATIENCE);
    assert_eq!(exit_code(&started), Some(1), "a start on the damaged directory:\n{}", started.stderr);
    assert!(
        started.stderr.contains(&format!("{segment} at offset {offset}")),
        "the start names another place than check:\n{}",
        started.stderr
    );
}

#[test]
fn check_says_a_start_cuts_a_torn_last_write_and_the_start_keeps_every_key() {
    let mut cluster = stopped_node_with_keys("offline-torn");
    let datadir = cluster.servers[0].datadir.clone();
    let path = datadir.join("wal/00000000000000000001.wal");
    let clean = tool("check", &datadir);
    assert_eq!(exit_code(&clean), Some(0), "check of a clean directory:\n{}", clean.stdout);
    // The home group's log: where its last frame ends.
    let end: u64 = clean
        .stdout
        .lines()
        .find_map(|line| line.strip_prefix("  wal/00000000000000000001.wal: "))
        .and_then(|rest| rest.split("valid to offset ").nth(1))
        .and_then(|rest| rest.split(',').next())
        .and_then(|offset| offset.parse().ok())
        .unwrap_or_else(|| panic!("no valid end for the home group's segment:\n{}", clean.stdout));

    // Half a frame after the last one, over the zeros written ahead.
    let mut bytes = std::fs::read(&path).expect("read the segment");
    let torn = [40u8, 0, 0, 0, 0xde, 0xad, 0xbe, 0xef, 1, 2, 3];
    bytes.resize(bytes.len().max(end as usize + torn.len()), 0);
    bytes[end as usize..end as usize + torn.len()].copy_from_slice(&torn);
    std::fs::write(&path, &bytes).expect("write the torn segment");

    let checked = tool("check", &datadir);
    assert_eq!(exit_code(&checked), Some(0), "a torn tail is what a start cuts:\n{}", checked.stdout);
    let cut =
        format!("a start cuts wal/00000000000000000001.wal back to offset {end}: its last write is torn");
    assert!(checked.stdout.contains(&cut), "check does not say {cut:?}:\n{}", checked.stdout);
    assert_eq!(std::fs::read(&path).expect("read the segment"), bytes, "check cut the torn write itself");

    cluster.servers[0].start(None);
    let server = &cluster.servers[0];
    for k in 0..KEYS {
        let key = format!("key:{k}");
        let value = format!("value:{k}");
        eventually(&format!("GET {key} after the restart"), || {
            (server.call(&["GET", &key]) == Reply::Bulk(Some(value.clone().into_bytes()))).then_some(())
        });
    }
}

#[test]
fn check_of_a_directory_that_is_not_a_nodes_exits_2() {
    let root = harness::TempDir::new("offline-none");
    std::fs::write(root.0.join("shards"), "many\n").expect("write a bad shards file");
    let checked = tool("check", &root.0);
    assert_eq!(exit_code(&checked), Some(2), "check:\n{}{}", checked.stdout, checked.stderr);
    assert!(checked.stderr.contains("not a shard count"), "check's error:\n{}", checked.stderr);
}
