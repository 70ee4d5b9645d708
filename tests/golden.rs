//! The on-disk formats, pinned byte for byte by the files in
//! `tests/golden/data/` (a data directory: `meta`, one WAL segment holding
//! every kind of record, one snapshot file whose data is a node's snapshot
//! in key-value format 4, a hash in it; every later value type and a
//! blocked client are pinned in a key-value snapshot of their own).
//!
//! `tests/golden/kv-format-2/` is the data directory the build before
//! key-value format 3 wrote (its snapshot in key-value format 2),
//! `tests/golden/kv-format-3/` the one the build before key-value format 4
//! and record version 3 wrote, and `tests/golden/node-format-1/` the one
//! the build before node snapshot format 2 and record version 4 wrote.
//! They are read-only fixtures, never regenerated: this build must open
//! them and answer as their requests said.
//!
//! Each file is (a) decoded by this build and compared with the values
//! written out below, and (b) written again from those values by this build
//! and compared byte for byte. The client commands and the snapshot's data
//! in those values are what a node of this build logs and snapshots for the
//! same requests (`a_node_logs_and_snapshots_exactly_the_golden_bytes`), and
//! the directory opens as a node that answers as the requests said.
//!
//! The version tests at the end change one version field of a golden file
//! (checksum recomputed) and check that start-up refuses it by name and
//! changes nothing on disk.
//!
//! A failure here means the bytes of a format changed: reordering or
//! inserting an enum variant or a struct field changes postcard's output.
//! If that was deliberate, bump the version it belongs to and keep reading
//! the old one (docs/wal-format.md, "Versions"), then regenerate the files:
//!
//! ```text
//! CASHE_GOLDEN_WRITE=1 cargo test --release --test golden
//! ```
//!
//! and commit them with the version bump. Never regenerate to make this
//! test pass without a bump: files already on operators' disks would no
//! longer read.

use cashe::frame;
use cashe::kv::Store;
use cashe::node::{ConnId, Node, NodeConfig, Transport};
use cashe::protocol::Reply;
use cashe::raft::{
    Entry, HardState, Index, Lsn, Membership, NodeId, Payload, Raft, Record, Recovered, Snapshot,
    SnapshotMeta, Term,
};
use cashe::wal::disk::Disk;
use cashe::wal::format::{self, GroupRecord, GroupSegmentHeader, Meta, SegmentHeader, WalRecord};
use cashe::wal::sim_disk::{block_on, SimDisk};
use cashe::wal::{Layout, OpenError, Wal, WalOptions};
use std::path::PathBuf;
use std::sync::Once;

const NODE_ID: u64 = 1;
const CLUSTER_ID: u64 = 0x00c0_ffee_cafe_f00d;
/// The node's clock for every request (commands carry it; the key
/// `greeting` expires an hour after it).
const NOW_MS: u64 = 1_700_000_000_000;
/// `NOW_MS` as a postcard varint (7 bits a byte, low first).
const NOW_MS_VARINT: [u8; 6] = [0x80, 0xd0, 0x95, 0xff, 0xbc, 0x31];
/// `NOW_MS + 3_600_000` as a varint: when `greeting` expires.
const EXPIRY_VARINT: [u8; 6] = [0x80, 0xad, 0xf1, 0x80, 0xbd, 0x31];

const META_PATH: &str = "meta";
const SEGMENT_PATH: &str = "wal/00000000000000000001.wal";
const SNAPSHOT_PATH: &str = "snap/00000000000000000005-00000000000000000001.snap";
const FILES: [&str; 3] = [META_PATH, SEGMENT_PATH, SNAPSHOT_PATH];
const WRITE_VARIABLE: &str = "CASHE_GOLDEN_WRITE";

/// The requests, in order; a node logs each as one command entry.
const REQUESTS: [&str; 5] = [
    "SET greeting hello PX 3600000",
    "HSET visitor name ann",
    "RENAME visitor user",
    "SET color red",
    "SET color blue",
];
/// The read-only fixture of the build before key-value format 3.
const KV_FORMAT_2_DIR: &str = "tests/golden/kv-format-2";
/// The read-only fixture of the build before key-value format 4.
const KV_FORMAT_3_DIR: &str = "tests/golden/kv-format-3";
/// The read-only fixture of the build before node snapshot format 2.
const NODE_FORMAT_1_DIR: &str = "tests/golden/node-format-1";

fn args(text: &str) -> Vec<Vec<u8>> {
    text.split(' ').map(|word| word.as_bytes().to_vec()).collect()
}

/// A node's log encoding of each of `REQUESTS` (postcard of the node's
/// `LoggedCommand { now_ms, args }`): the clock as a varint, the argument
/// count, then each argument's length and bytes.
fn commands() -> Vec<Vec<u8>> {
    let logged = |parts: &[&[u8]]| [&NOW_MS_VARINT[..], &parts.concat()].concat();
    vec![
        logged(&[b"\x05", b"\x03SET", b"\x08greeting", b"\x05hello", b"\x02PX", b"\x073600000"]),
        logged(&[b"\x04", b"\x04HSET", b"\x07visitor", b"\x04name", b"\x03ann"]),
        logged(&[b"\x03", b"\x06RENAME", b"\x07visitor", b"\x04user"]),
        logged(&[b"\x03", b"\x03SET", b"\x05color", b"\x03red"]),
        logged(&[b"\x03", b"\x03SET", b"\x05color", b"\x04blue"]),
    ]
}

/// The key-value part of the snapshot, format 4 (src/kv/snapshot.rs):
/// format byte, last sequence 3, version 3, two entries in key order, each
/// key, value (variant 0, a string: its bytes; variant 1, a hash: its
/// field-value pairs), expiry, sequence, modification version —
/// `greeting` = `hello`, expiring, sequence 1, modified at version 1;
/// `user` = {`name`: `ann`}, no expiry, sequence 3 (a renamed key is
/// created anew), modified at version 3 —, one tombstone (`visitor`,
/// renamed away at version 3), tombstone floor 0, no blocked client.
fn key_value_snapshot() -> Vec<u8> {
    let mut bytes = [key_value_snapshot_format_3(), vec![0]].concat();
    bytes[0] = 4;
    bytes
}

/// The same key space in format 3, as `KV_FORMAT_3_DIR` holds it: the
/// format byte 3 and no blocked clients at the end.
fn key_value_snapshot_format_3() -> Vec<u8> {
    [
        &[3u8, 3, 3, 2][..],
        &[8],
        b"greeting",
        &[0, 5],
        b"hello",
        &[1],
        &EXPIRY_VARINT,
        &[1, 1],
        &[4],
        b"user",
        &[1, 1, 4],
        b"name",
        &[3],
        b"ann",
        &[0, 3, 3],
        &[1, 7],
        b"visitor",
        &[3],
        &[0],
    ]
    .concat()
}

/// The key-value snapshot in `KV_FORMAT_2_DIR`, format 2 (no value types):
/// format byte, last sequence 2, version 3, one entry (`greeting` =
/// `hello`, expiring, sequence 1, modified at version 1), one tombstone
/// (`doomed`, deleted at version 3), tombstone floor 0.
fn key_value_snapshot_format_2() -> Vec<u8> {
    [
        &[2u8, 2, 3][..],
        &[1, 8],
        b"greeting",
        &[5],
        b"hello",
        &[1],
        &EXPIRY_VARINT,
        &[1, 1],
        &[1, 6],
        b"doomed",
        &[3],
        &[0],
    ]
    .concat()
}

/// A node's snapshot after the first three requests (applied through index
/// 5): node snapshot format 2, an empty directory (no members recorded,
/// none removed, last id 0), then the key-value snapshot with its length.
/// (A directory with members is pinned in `src/node/mod.rs`'s tests.)
fn snapshot_data() -> Vec<u8> {
    snapshot_data_in_node_format(2)
}

/// The same snapshot as `NODE_FORMAT_1_DIR` holds it: format byte 1 (an
/// empty directory reads the same in both formats).
fn snapshot_data_in_node_format(format: u8) -> Vec<u8> {
    let store = key_value_snapshot();
    [&[format, 0, 0, 0, store.len() as u8][..], &store].concat()
}

fn voters() -> Membership {
    Membership::with_voters([NodeId(NODE_ID)])
}

fn entry(term: u64, index: u64, payload: Payload) -> Entry {
    Entry { term: Term(term), index: Index(index), payload }
}

fn command_entry(term: u64, index: u64, request: usize) -> Entry {
    entry(term, index, Payload::Command(commands()[request].clone()))
}

fn hard_state(term: u64, commit: u64) -> HardState {
    HardState { term: Term(term), vote: Some(NodeId(NODE_ID)), commit: Index(commit) }
}

fn snapshot() -> Snapshot {
    let meta = SnapshotMeta { index: Index(5), term: Term(1), membership: voters() };
    Snapshot { meta, data: snapshot_data().into() }
}

/// What the WAL is asked to persist: an election, the membership, the
/// leader's no-op, the first four requests, then in a new term a snapshot
/// at index 5, the fourth request truncated and replaced by the fifth.
/// Every kind of record, every kind of entry.
fn records() -> Vec<Record> {
    vec![
        Record::HardState(hard_state(1, 0)),
        Record::Entry(entry(1, 1, Payload::Membership(voters()))),
        Record::Entry(entry(1, 2, Payload::Noop)),
        Record::Entry(command_entry(1, 3, 0)),
        Record::Entry(command_entry(1, 4, 1)),
        Record::Entry(command_entry(1, 5, 2)),
        Record::Entry(command_entry(1, 6, 3)),
        Record::HardState(hard_state(2, 5)),
        Record::Truncate { from: Index(6) },
        Record::Snapshot(snapshot()),
        Record::Entry(command_entry(2, 6, 4)),
        Record::HardState(hard_state(2, 6)),
    ]
}

/// The segment's records after its header: the hard state every segment
/// opens with, then one per persisted record (a snapshot as the marker of
/// its installation).
fn segment_records() -> Vec<WalRecord> {
    let mut expected = vec![WalRecord::HardState(HardState::default())];
    expected.extend(records().iter().map(format::wal_record));
    expected
}

/// What opening the directory recovers.
fn recovered() -> Recovered {
    Recovered {
        hard_state: hard_state(2, 6),
        snapshot: Some(snapshot()),
        entries: vec![command_entry(2, 6, 4)],
    }
}

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/data")
}

/// A golden file's bytes; with `CASHE_GOLDEN_WRITE=1`, all of them are
/// first written anew by this build.
fn golden(path: &str) -> Vec<u8> {
    static WRITE: Once = Once::new();
    if std::env::var(WRITE_VARIABLE).is_ok_and(|value| value == "1") {
        WRITE.call_once(write_golden_files);
    }
    let full = golden_dir().join(path);
    std::fs::read(&full)
        .unwrap_or_else(|e| panic!("{}: {e} (to regenerate, see the top of tests/golden.rs)", full.display()))
}

fn write_golden_files() {
    for (path, bytes) in image(&written()) {
        let full = golden_dir().join(&path);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(&full, bytes).unwrap();
        println!("wrote {}", full.display());
    }
}

/// The data directory this build writes for `records()`, through the WAL
/// itself, as a node's disk task would.
fn written() -> SimDisk {
    let disk = SimDisk::new();
    let options = WalOptions::new(NODE_ID, CLUSTER_ID);
    let (mut wal, recovered) = block_on(Wal::open(disk.clone(), options)).unwrap();
    assert_eq!(recovered, Recovered::default());
    let numbered: Vec<(Lsn, Record)> =
        records().into_iter().enumerate().map(|(k, record)| (Lsn(k as u64 + 1), record)).collect();
    block_on(wal.append(&numbered)).unwrap();
    disk
}

/// Every file of a simulated data directory and its bytes.
fn image(disk: &SimDisk) -> Vec<(String, Vec<u8>)> {
    let mut image = Vec::new();
    for dir in ["", "wal", "snap"] {
        for name in block_on(disk.list(dir)).unwrap() {
            let path = if dir.is_empty() { name } else { format!("{dir}/{name}") };
            image.push((path.clone(), disk.contents(&path).unwrap()));
        }
    }
    image
}

/// The golden data directory on a simulated disk, `change` applied to it.
fn golden_disk(change: impl Fn(&str, Vec<u8>) -> Vec<u8>) -> SimDisk {
    let disk = SimDisk::new();
    for path in FILES {
        disk.put(path, change(path, golden(path)));
    }
    disk
}

fn open(disk: &SimDisk) -> Result<Recovered, OpenError> {
    block_on(Wal::open(disk.clone(), WalOptions::new(NODE_ID, CLUSTER_ID))).map(|(_, recovered)| recovered)
}

/// The frames of a file: (offset, payload).
fn frames(bytes: &[u8]) -> Vec<(usize, Vec<u8>)> {
    let mut frames = Vec::new();
    let mut offset = 0;
    while offset < bytes.len() {
        let (payload, used) = frame::decode(&bytes[offset..]).expect("golden frames are intact");
        frames.push((offset, payload.to_vec()));
        offset += used;
    }
    frames
}

#[test]
fn the_golden_files_decode_to_the_expected_values() {
    let meta = format::decode_meta(&golden(META_PATH)).unwrap();
    let expected_meta =
        Meta { magic: *b"cashemta", format_version: 1, node_id: NODE_ID, cluster_id: CLUSTER_ID };
    assert_eq!(meta, expected_meta);

    let segment = frames(&golden(SEGMENT_PATH));
    let header = format::decode_segment_header(&segment[0].1).unwrap();
    let expected_header = SegmentHeader { magic: *b"cashewal", format_version: 1, first_index: Index(1) };
    assert_eq!(header, expected_header);
    let decoded: Vec<WalRecord> =
        segment[1..].iter().map(|(_, payload)| format::decode_record(payload).unwrap()).collect();
    assert_eq!(decoded, segment_records());
    assert!(segment[1..].iter().all(|(_, payload)| payload[0] == 4), "record version 4");

    let snapshot_file = golden(SNAPSHOT_PATH);
    assert_eq!(format::decode_snapshot(&snapshot_file), Ok(snapshot()));
    let (header_payload, used) = frame::decode(&snapshot_file).unwrap();
    assert_eq!(&snapshot_file[used..], snapshot_data(), "the data follows the header frame unframed");
    assert_eq!(&header_payload[..9], b"cashesnp\x01", "magic, then format version 1");

    assert_eq!(open(&golden_disk(|_, bytes| bytes)).unwrap(), recovered());
}

#[test]
fn this_build_writes_the_golden_files_byte_for_byte() {
    let golden_files: Vec<(String, Vec<u8>)> =
        FILES.iter().map(|path| (path.to_string(), golden(path))).collect();
    let mut expected = golden_files.clone();
    expected.sort();
    let mut written = image(&written());
    written.sort();
    let names = |files: &[(String, Vec<u8>)]| files.iter().map(|(name, _)| name.clone()).collect::<Vec<_>>();
    assert_eq!(names(&written), names(&expected), "the files a data directory holds");
    for ((path, written), (_, golden)) in written.iter().zip(&expected) {
        assert!(
            written == golden,
            "{path}: this build writes {written:02x?}\nthe golden file holds {golden:02x?}"
        );
    }

    // The same bytes from the encoders alone.
    assert_eq!(format::encode_meta(NODE_ID, CLUSTER_ID, format::FORMAT_VERSION), golden_files[0].1);
    let mut segment = Vec::new();
    format::encode_segment_header(Index(1), &mut segment);
    for record in segment_records() {
        format::encode_record(&record, &mut segment).unwrap();
    }
    assert_eq!(segment, golden_files[1].1);
    assert_eq!(format::encode_snapshot(&snapshot()).unwrap(), golden_files[2].1);
}

#[test]
fn the_golden_files_stay_small() {
    for path in FILES {
        let bytes = golden(path).len();
        assert!(bytes > 0 && bytes < 4 << 10, "{path}: {bytes} bytes");
    }
}

/// The commands and the snapshot data above are not made up: they are
/// what a node of this build logs and snapshots for `REQUESTS`.
#[test]
fn a_node_logs_and_snapshots_exactly_the_golden_bytes() {
    let mut node = leading_node();
    let (commands_logged, snapshot_made) = run(&mut node);
    assert_eq!(commands_logged, commands());
    assert_eq!(snapshot_made, snapshot_data());
}

#[test]
fn the_golden_directory_restores_a_node_that_answers_as_the_requests_said() {
    let recovered = open(&golden_disk(|_, bytes| bytes)).unwrap();
    answers_as_the_golden_requests_said(recovered);
}

#[test]
fn the_key_value_snapshot_format_4_restores_and_is_written_again_byte_for_byte() {
    let store = Store::restore(&key_value_snapshot()).unwrap();
    assert_eq!(store.read(&args("GET greeting"), NOW_MS), Reply::bulk("hello"));
    assert_eq!(store.read(&args("TYPE user"), NOW_MS), Reply::Simple("hash".into()));
    assert_eq!(
        store.read(&args("HGETALL user"), NOW_MS),
        Reply::Map(vec![(Reply::bulk("name"), Reply::bulk("ann"))])
    );
    assert_eq!(store.read(&args("EXISTS visitor"), NOW_MS), Reply::Integer(0));
    assert_eq!(store.snapshot(), key_value_snapshot());
}

/// Format 3 (before lists, sets, sorted sets and blocked clients) is no
/// longer written but still read, and written again as format 4.
#[test]
fn the_key_value_snapshot_format_3_still_restores_and_is_written_as_format_4() {
    let store = Store::restore(&key_value_snapshot_format_3()).unwrap();
    assert_eq!(store.read(&args("HGET user name"), NOW_MS), Reply::bulk("ann"));
    assert_eq!(store.snapshot(), key_value_snapshot());
}

/// Format 2 (before typed values) is no longer written but still read,
/// and written again as format 4: each value gains its variant byte 0.
#[test]
fn the_key_value_snapshot_format_2_still_restores() {
    let store = Store::restore(&key_value_snapshot_format_2()).unwrap();
    assert_eq!(store.read(&args("GET greeting"), NOW_MS), Reply::bulk("hello"));
    assert_eq!(store.read(&args("EXISTS doomed"), NOW_MS), Reply::Integer(0));
    let format_4 = [
        &[4u8, 2, 3, 1, 8][..],
        b"greeting",
        &[0, 5],
        b"hello",
        &[1],
        &EXPIRY_VARINT,
        &[1, 1, 1, 6],
        b"doomed",
        &[3, 0, 0],
    ]
    .concat();
    assert_eq!(store.snapshot(), format_4);
}

/// The files of a read-only fixture directory on a simulated disk.
fn fixture_disk(dir: &str) -> SimDisk {
    let fixture = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(dir);
    let disk = SimDisk::new();
    for path in FILES {
        disk.put(path, std::fs::read(fixture.join(path)).unwrap());
    }
    disk
}

/// A data directory of the build before node snapshot format 2 and record
/// version 4 opens (its records are version 3, its snapshot's data node
/// format 1), and a node restored from it answers as its requests said.
#[test]
fn the_data_directory_with_a_node_format_1_snapshot_and_version_3_records_still_opens() {
    let disk = fixture_disk(NODE_FORMAT_1_DIR);
    let snapshot_file = disk.contents(SNAPSHOT_PATH).unwrap();
    assert!(
        snapshot_file.ends_with(&snapshot_data_in_node_format(1)),
        "the fixture's snapshot is node format 1"
    );
    let segment = frames(&disk.contents(SEGMENT_PATH).unwrap());
    assert!(segment[1..].iter().all(|(_, payload)| payload[0] == 3), "the fixture's records are version 3");
    let recovered = open(&disk).unwrap();
    answers_as_the_golden_requests_said(recovered);
}

/// A data directory of the build before key-value format 4 and record
/// version 3 opens, and a node restored from it answers as its requests said.
#[test]
fn the_data_directory_with_a_key_value_format_3_snapshot_and_version_2_records_still_opens() {
    let disk = fixture_disk(KV_FORMAT_3_DIR);
    let snapshot_file = disk.contents(SNAPSHOT_PATH).unwrap();
    assert!(
        snapshot_file.ends_with(&key_value_snapshot_format_3()),
        "the fixture's snapshot holds key-value format 3"
    );
    let recovered = open(&disk).unwrap();
    let mut node = Node::restore(config(), 1, recovered).unwrap();
    settle(&mut node, &mut Vec::new(), &mut None);
    assert_eq!(read(&node, "GET greeting"), Reply::bulk("hello"));
    assert_eq!(read(&node, "HGET user name"), Reply::bulk("ann"));
    assert_eq!(read(&node, "EXISTS visitor"), Reply::Integer(0));
    assert_eq!(read(&node, "GET color"), Reply::bulk("blue"), "the entry after the snapshot is applied");
}

/// A data directory of the build before format 3 opens, and a node
/// restored from it answers as its requests said.
#[test]
fn the_data_directory_with_a_key_value_format_2_snapshot_still_opens() {
    let disk = fixture_disk(KV_FORMAT_2_DIR);
    let snapshot_file = disk.contents(SNAPSHOT_PATH).unwrap();
    assert!(
        snapshot_file.ends_with(&key_value_snapshot_format_2()),
        "the fixture's snapshot holds key-value format 2"
    );
    let recovered = open(&disk).unwrap();
    let mut node = Node::restore(config(), 1, recovered).unwrap();
    settle(&mut node, &mut Vec::new(), &mut None);
    assert_eq!(read(&node, "GET greeting"), Reply::bulk("hello"));
    assert_eq!(read(&node, "PTTL greeting"), Reply::Integer(3_600_000));
    assert_eq!(read(&node, "GET doomed"), Reply::nil());
    assert_eq!(read(&node, "GET color"), Reply::bulk("blue"), "the entry after the snapshot is applied");
}

/// Format 1 (before WATCH versions and tombstones) is no longer written
/// but still read: format byte, last sequence, entries (key, value, expiry,
/// sequence).
#[test]
fn the_key_value_snapshot_format_1_still_restores() {
    let format_1 = [&[1u8, 1, 1, 8][..], b"greeting", &[5], b"hello", &[1], &EXPIRY_VARINT, &[1]].concat();
    let store = Store::restore(&format_1).unwrap();
    assert_eq!(store.read(&args("GET greeting"), NOW_MS), Reply::bulk("hello"));
    assert_eq!(store.read(&args("PTTL greeting"), NOW_MS), Reply::Integer(3_600_000));
    assert_eq!(store.snapshot()[0], 4, "written again as format 4");
}

#[test]
fn a_key_value_snapshot_of_an_unknown_format_is_refused_naming_the_formats_read() {
    let mut bytes = key_value_snapshot();
    bytes[0] = 5;
    let error = Store::restore(&bytes).unwrap_err().to_string();
    assert!(error.contains("format 5") && error.contains("1, 2, 3 or 4"), "{error}");
}

// ----- versions: refused by name, and nothing on disk changes -------------

/// `bytes` with the byte at `index` of the payload of the frame at
/// `offset` made `value`, the frame's checksum recomputed: an intact file
/// of another version.
fn with_payload_byte(bytes: &[u8], offset: usize, index: usize, value: u8) -> Vec<u8> {
    let (payload, used) = frame::decode(&bytes[offset..]).unwrap();
    let mut payload = payload.to_vec();
    payload[index] = value;
    let mut out = bytes[..offset].to_vec();
    frame::encode(&payload, &mut out).unwrap();
    out.extend_from_slice(&bytes[offset + used..]);
    out
}

/// Opens the golden directory with one version changed to `version`, one
/// this build does not read (`reads` are those it does); returns the
/// refusal, after checking that nothing on disk changed.
fn open_with_version(
    file: &str,
    frame_offset: usize,
    version_at: usize,
    version: u8,
    reads: &[u32],
) -> String {
    let disk = golden_disk(|path, bytes| {
        if path == file {
            with_payload_byte(&bytes, frame_offset, version_at, version)
        } else {
            bytes
        }
    });
    // An interrupted snapshot write's leftover, which a start-up that
    // goes ahead removes: this one must not.
    disk.put("snap/00000000000000000009-00000000000000000002.snap.tmp", b"interrupted".to_vec());
    let before = image(&disk);
    let result = open(&disk);
    assert_eq!(image(&disk), before, "nothing on disk changed");
    match result {
        Err(OpenError::UnsupportedVersion(unsupported)) => {
            assert_eq!((unsupported.file.as_str(), unsupported.found), (file, u32::from(version)));
            assert_eq!(unsupported.reads, reads);
            let message = OpenError::UnsupportedVersion(unsupported).to_string();
            println!("{message}");
            message
        }
        other => panic!("expected an unsupported version, got {other:?}"),
    }
}

/// A header's format version this build does not read.
fn open_with_version_2(file: &str, frame_offset: usize, version_at: usize) -> String {
    open_with_version(file, frame_offset, version_at, 2, &[1])
}

/// The magic is 8 bytes, the version (a varint, one byte below 128) next.
const HEADER_VERSION_AT: usize = 8;

/// `meta` is read in versions 1 and 2 (2: a directory whose key groups
/// share one log), so 3 is the first it does not read.
#[test]
fn a_meta_of_an_unknown_version_refuses_start_up_by_name_and_changes_nothing() {
    let message = open_with_version(META_PATH, 0, HEADER_VERSION_AT, 3, &[1, 2]);
    assert!(message.contains("meta at offset 0 is in format version 3"), "{message}");
    assert!(message.contains("reads only version 1 or 2"), "{message}");
}

#[test]
fn a_segment_header_of_an_unknown_version_refuses_start_up_by_name_and_changes_nothing() {
    let message = open_with_version_2(SEGMENT_PATH, 0, HEADER_VERSION_AT);
    assert!(message.contains(&format!("{SEGMENT_PATH} at offset 0 is in format version 2")), "{message}");
}

/// The most dangerous place: the last record of the last segment, where a
/// damaged frame would be a torn tail and cut. An intact frame of another
/// version is not damage: it is refused and kept.
#[test]
fn the_last_record_of_an_unknown_version_is_refused_not_truncated() {
    let (last, _) = *frames(&golden(SEGMENT_PATH)).last().unwrap();
    let message = open_with_version(SEGMENT_PATH, last, 0, 5, &[1, 2, 3, 4]);
    assert!(
        message.contains(&format!("{SEGMENT_PATH} at offset {last} is in format version 5")),
        "{message}"
    );
}

#[test]
fn a_snapshot_of_an_unknown_version_refuses_start_up_by_name_and_changes_nothing() {
    let message = open_with_version_2(SNAPSHOT_PATH, 0, HEADER_VERSION_AT);
    assert!(message.contains(&format!("{SNAPSHOT_PATH} at offset 0 is in format version 2")), "{message}");
}

/// The "nothing changed" check above can fail: the same last record, damaged
/// instead of versioned, is a torn tail and is cut.
#[test]
fn a_damaged_last_record_is_a_torn_tail_and_is_cut() {
    let (last, _) = *frames(&golden(SEGMENT_PATH)).last().unwrap();
    let disk = golden_disk(|path, mut bytes| {
        if path == SEGMENT_PATH {
            bytes[last + frame::FRAME_HEADER_BYTES] ^= 1;
        }
        bytes
    });
    let recovered = open(&disk).expect("a torn tail is not fatal");
    assert_eq!(recovered.hard_state, hard_state(2, 5), "the last hard state was cut");
    assert_eq!(disk.contents(SEGMENT_PATH).unwrap().len(), last, "cut at the damaged frame");
}

// ----- a node of this build, for the commands and the snapshot -----------

fn config() -> NodeConfig {
    let mut config = NodeConfig::new(NodeId(NODE_ID));
    config.cluster_id = CLUSTER_ID;
    config.snapshot_entries = 5;
    config.log_retain_entries = 0;
    config
}

/// A one-node cluster of this build, leading.
fn leading_node() -> Node {
    let mut node = Node::restore(config(), 1, Raft::bootstrap([NodeId(NODE_ID)])).unwrap();
    for _ in 0..50 {
        if node.raft().is_leader() {
            break;
        }
        node.tick(NOW_MS);
        settle(&mut node, &mut Vec::new(), &mut None);
    }
    assert!(node.raft().is_leader(), "a one-node cluster elects itself");
    node
}

/// Makes everything the node asks durable at once, until it asks nothing;
/// collects the commands it logged and the snapshot it made.
fn settle(node: &mut Node, commands: &mut Vec<Vec<u8>>, snapshot: &mut Option<Vec<u8>>) {
    for _ in 0..100 {
        let output = node.take_output();
        if let Some(made) = output.snapshot {
            *snapshot = Some(made.data.to_vec());
        }
        let Some(&(last, _)) = output.persist.last() else { return };
        for (_, record) in output.persist {
            if let Record::Entry(Entry { payload: Payload::Command(bytes), .. }) = record {
                commands.push(bytes);
            }
        }
        node.persisted(last);
    }
    panic!("the node never settled");
}

/// Sends `REQUESTS` one at a time; returns the commands logged and the
/// snapshot made once the third was applied.
fn run(node: &mut Node) -> (Vec<Vec<u8>>, Vec<u8>) {
    let (mut commands, mut snapshot) = (Vec::new(), None);
    node.connected(ConnId(1), Transport::Plain, NOW_MS);
    for (k, request) in REQUESTS.iter().enumerate() {
        node.client(ConnId(1), args(request), NOW_MS);
        settle(node, &mut commands, &mut snapshot);
        assert_eq!(snapshot.is_some(), k >= 2, "the snapshot comes at index 5, after request {k}");
    }
    (commands, snapshot.expect("a snapshot"))
}

fn read(node: &Node, request: &str) -> Reply {
    node.store().read(&args(request), NOW_MS)
}

/// Key-value format 4's later value variants and its blocked clients,
/// pinned byte for byte: a list (variant 2: elements head first), a set
/// (3: members), a sorted set (4: member and score, an f64 as 8 bytes
/// little-endian), a hash past Redis's listpack limits (5: the same pairs
/// as a hash, kept apart so the one-way encoding survives a snapshot), a
/// sorted set in its large form (6: as 4; it grew past the limits and
/// shrank back), then after the tombstones (none) and their floor (0), one
/// blocked client: its order (the store's version when it blocked, 8),
/// node 7, wait 9 and the command `BLPOP q 0`.
fn key_value_snapshot_of_every_type() -> Vec<u8> {
    let long = [b'v'; 65];
    [
        &[4u8, 5, 8, 5][..],
        &[1, b'h', 5, 1, 1, b'f', 65],
        &long,
        &[0, 4, 4],
        &[1, b'l', 2, 2, 1, b'a', 1, b'b', 0, 1, 1],
        &[1, b's', 3, 1, 1, b'x', 0, 2, 2],
        &[1, b'y', 6, 1, 1, b'n'],
        &1.0f64.to_le_bytes(),
        &[0, 5, 7],
        &[1, b'z', 4, 1, 1, b'm'],
        &1.5f64.to_le_bytes(),
        &[0, 3, 3],
        &[0, 0],
        &[1, 8, 7, 9, 3, 5],
        b"BLPOP",
        &[1, b'q', 1, b'0'],
    ]
    .concat()
}

#[test]
fn every_value_type_and_a_blocked_client_snapshot_to_the_pinned_bytes_and_back() {
    let mut store = Store::default();
    let long = "v".repeat(65);
    let requests = [
        "RPUSH l a b".to_string(),
        "SADD s x".into(),
        "ZADD z 1.5 m".into(),
        format!("HSET h f {long}"),
        "ZADD y 1 n".into(),
        format!("ZADD y 2 {long}"),
        format!("ZREM y {long}"),
    ];
    for request in &requests {
        store.apply(&args(request), NOW_MS);
    }
    store.block(cashe::kv::WaiterId { node: 7, seq: 9 }, &args("BLPOP q 0"), NOW_MS);
    assert!(store.take_served().is_empty(), "BLPOP q 0 on no list blocks");
    assert_eq!(store.snapshot(), key_value_snapshot_of_every_type());
    let restored = Store::restore(&key_value_snapshot_of_every_type()).unwrap();
    assert_eq!(restored, store);
    assert_eq!(restored.read(&args("OBJECT ENCODING h"), NOW_MS), Reply::bulk("hashtable"));
    assert_eq!(restored.read(&args("OBJECT ENCODING y"), NOW_MS), Reply::bulk("skiplist"));
    assert_eq!(restored.read(&args("OBJECT ENCODING z"), NOW_MS), Reply::bulk("listpack"));
    assert_eq!(restored.read(&args("ZSCORE z m"), NOW_MS), Reply::Double("1.5".into()));
    assert_eq!(
        restored.read(&args("LRANGE l 0 -1"), NOW_MS),
        Reply::Array(Some(vec![Reply::bulk("a"), Reply::bulk("b")]))
    );
    assert!(restored.is_waiting(cashe::kv::WaiterId { node: 7, seq: 9 }));
}

/// Restores a node from the golden requests' data directory (this build's
/// or an older build's) and reads back what the requests wrote.
fn answers_as_the_golden_requests_said(recovered: Recovered) {
    let mut node = Node::restore(config(), 1, recovered).unwrap();
    settle(&mut node, &mut Vec::new(), &mut None);
    assert_eq!(read(&node, "GET greeting"), Reply::bulk("hello"));
    assert_eq!(read(&node, "PTTL greeting"), Reply::Integer(3_600_000));
    assert_eq!(read(&node, "HGET user name"), Reply::bulk("ann"));
    assert_eq!(read(&node, "EXISTS visitor"), Reply::Integer(0));
    assert_eq!(read(&node, "GET color"), Reply::bulk("blue"), "the entry after the snapshot is applied");
}

// ----- the key groups' shared log ------------------------------------------

/// The shared log of key groups a member of a cluster of several shards
/// writes under `groups/`: pinned by `tests/golden/groups/`, written as
/// the other golden files are (`CASHE_GOLDEN_WRITE=1`).
fn groups_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/groups")
}

/// Group 1 logs `records()` (a snapshot installed from its leader among
/// them), group 2 an election and its first entries, in one group commit.
fn group_parts() -> Vec<(u32, Vec<Record>)> {
    let second = vec![
        Record::HardState(hard_state(1, 0)),
        Record::Entry(entry(1, 1, Payload::Membership(voters()))),
        Record::Entry(entry(1, 2, Payload::Noop)),
        Record::HardState(hard_state(1, 2)),
    ];
    vec![(1, records()), (2, second)]
}

fn groups_options() -> WalOptions {
    WalOptions { meta_version: format::META_FORMAT_VERSION_GROUPS, ..WalOptions::new(NODE_ID, CLUSTER_ID) }
}

fn groups_layout() -> Layout {
    Layout::Groups(vec![1, 2])
}

#[test]
fn the_shared_log_of_key_groups_is_pinned_byte_for_byte_and_recovers_every_group() {
    let disk = SimDisk::new();
    let (mut wal, _) = block_on(Wal::open_layout(disk.clone(), groups_options(), groups_layout())).unwrap();
    let mut lsn = 0;
    let numbered: Vec<(u32, Vec<(Lsn, Record)>)> = group_parts()
        .into_iter()
        .map(|(group, records)| {
            let records = records.into_iter().map(|r| {
                lsn += 1;
                (Lsn(lsn), r)
            });
            (group, records.collect())
        })
        .collect();
    let parts: Vec<(u32, &[(Lsn, Record)])> = numbered.iter().map(|(g, r)| (*g, r.as_slice())).collect();
    block_on(wal.append_groups(&parts)).unwrap();

    let written = image(&disk);
    let paths: Vec<&str> = written.iter().map(|(path, _)| path.as_str()).collect();
    let snapshot_path = "snap/0000000001-00000000000000000005-00000000000000000001.snap";
    assert_eq!(paths, [META_PATH, SEGMENT_PATH, snapshot_path]);
    let rewrite = std::env::var(WRITE_VARIABLE).is_ok_and(|value| value == "1");
    for (path, bytes) in &written {
        let full = groups_dir().join(path);
        if rewrite {
            std::fs::create_dir_all(full.parent().unwrap()).unwrap();
            std::fs::write(&full, bytes).unwrap();
        }
        let golden = std::fs::read(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()));
        assert_eq!(bytes, &golden, "{path} is not what the golden file holds");
    }

    let golden = |path: &str| std::fs::read(groups_dir().join(path)).unwrap();
    let meta = format::decode_meta(&golden(META_PATH)).unwrap();
    assert_eq!(
        meta,
        Meta { magic: *b"cashemta", format_version: 2, node_id: NODE_ID, cluster_id: CLUSTER_ID }
    );
    let segment = frames(&golden(SEGMENT_PATH));
    let header = format::decode_group_segment_header(&segment[0].1).unwrap();
    assert_eq!(header, GroupSegmentHeader { magic: *b"cashegrp", format_version: 1, sequence: 1 });
    let decoded: Vec<GroupRecord> =
        segment[1..].iter().map(|(_, payload)| format::decode_group_record(payload).unwrap()).collect();
    let mut expected: Vec<GroupRecord> =
        [1, 2].map(|group| GroupRecord { group, record: WalRecord::HardState(HardState::default()) }).into();
    for (group, records) in group_parts() {
        expected.extend(records.iter().map(|r| GroupRecord { group, record: format::wal_record(r) }));
    }
    assert_eq!(decoded, expected);
    assert_eq!(format::decode_snapshot(&golden(snapshot_path)).unwrap(), snapshot());

    let disk = SimDisk::new();
    for path in paths {
        disk.put(path, golden(path));
    }
    let (_, groups) = block_on(Wal::open_layout(disk, groups_options(), groups_layout())).unwrap();
    let second = Recovered {
        hard_state: hard_state(1, 2),
        snapshot: None,
        entries: vec![entry(1, 1, Payload::Membership(voters())), entry(1, 2, Payload::Noop)],
    };
    assert_eq!(groups, [(1, recovered()), (2, second)].into());
}
