//! The write-ahead log on the simulated disk: crash at every write and sync
//! of a scripted workload, torn tails, corruption, and the fuzz bodies over
//! seeded random and mutated inputs.

use cashe::raft::{
    Entry, HardState, Index, Lsn, Membership, NodeId, Payload, Record, Recovered, Snapshot, SnapshotMeta,
    SplitMix64, Term,
};
use cashe::wal::sim_disk::{block_on, CrashOptions, SimDisk};
use cashe::wal::{fuzz, Layout, OpenError, Wal, WalOptions};
use std::collections::BTreeMap;

fn options() -> WalOptions {
    WalOptions { segment_bytes_max: 400, ..WalOptions::new(1, 7) }
}

fn entry(index: u64, term: u64, text: &str) -> Record {
    Record::Entry(Entry {
        term: Term(term),
        index: Index(index),
        payload: Payload::Command(text.as_bytes().to_vec()),
    })
}

fn hard_state(term: u64, vote: Option<u64>, commit: u64) -> Record {
    Record::HardState(HardState { term: Term(term), vote: vote.map(NodeId), commit: Index(commit) })
}

fn snapshot(index: u64, term: u64, data: &str) -> Snapshot {
    let membership = Membership::with_voters([NodeId(1), NodeId(2), NodeId(3)]);
    Snapshot {
        meta: SnapshotMeta { index: Index(index), term: Term(term), membership },
        data: data.as_bytes().to_vec().into(),
    }
}

/// One step of a scripted workload.
#[derive(Clone, Debug)]
enum Step {
    /// One group commit: each group's records.
    Append(Vec<(u32, Vec<Record>)>),
    /// A compaction snapshot of a group's applied state.
    Compact(u32, Snapshot),
}

/// One group's story: elections, entries across several segments, a
/// conflicting suffix replaced, a compaction that deletes segments, a
/// snapshot installed from a leader, more entries after it. Values carry
/// `tag`, so that two groups' stories differ.
fn story(tag: &str) -> Vec<Step> {
    let one = |records: Vec<Record>| Step::Append(vec![(0, records)]);
    let mut steps = vec![one(vec![hard_state(1, Some(1), 0)])];
    for k in 0..6u64 {
        let batch = (1..=3).map(|j| entry(3 * k + j, 1, &format!("{tag}value-{k}-{j}"))).collect();
        steps.push(one(batch));
    }
    steps.push(one(vec![hard_state(2, None, 12), hard_state(2, Some(3), 12)]));
    steps.push(one(vec![
        Record::Truncate { from: Index(15) },
        entry(15, 2, "new-15"),
        entry(16, 2, "new-16"),
    ]));
    steps.push(Step::Compact(0, snapshot(12, 1, &format!("{tag}state at 12"))));
    steps.push(one(vec![hard_state(3, Some(2), 16), entry(17, 3, "x")]));
    steps.push(one(vec![
        hard_state(4, None, 16),
        Record::Truncate { from: Index(18) },
        Record::Snapshot(snapshot(20, 4, &format!("{tag}leader state at 20"))),
        entry(21, 4, "after snapshot"),
    ]));
    steps.push(one(vec![entry(22, 4, "y"), hard_state(4, Some(1), 22)]));
    steps
}

/// The one-group workload: [`story`] as group 0 of a `Layout::Single` log.
fn workload() -> Vec<Step> {
    story("")
}

/// Steps of `steps` (all of group 0) as group `group`'s.
fn as_group(steps: Vec<Step>, group: u32) -> Vec<Step> {
    let regroup = |parts: Vec<(u32, Vec<Record>)>| parts.into_iter().map(|(_, r)| (group, r)).collect();
    steps
        .into_iter()
        .map(|step| match step {
            Step::Append(parts) => Step::Append(regroup(parts)),
            Step::Compact(_, snapshot) => Step::Compact(group, snapshot),
        })
        .collect()
}

/// Three groups in one log (`Layout::Groups`): group 1's story and group
/// 2's, their appends merged into shared group commits where both have
/// one, so that a crash can cut between two groups' records of one commit;
/// group 2 compacts at another time than group 1; group 3 writes nothing.
fn groups_workload() -> Vec<Step> {
    let first = as_group(story("one:"), 1);
    let second = as_group(story("two:"), 2);
    let mut steps = Vec::new();
    let mut second = second.into_iter().skip(1).peekable();
    steps
        .push(Step::Append(vec![(1, vec![hard_state(1, Some(1), 0)]), (2, vec![hard_state(1, Some(2), 0)])]));
    for step in first.into_iter().skip(1) {
        match (step, second.peek().cloned()) {
            (Step::Append(mut parts), Some(Step::Append(more))) => {
                second.next();
                parts.extend(more);
                steps.push(Step::Append(parts));
            }
            (step, _) => steps.push(step),
        }
    }
    steps.extend(second);
    steps
}

fn groups_layout() -> Layout {
    Layout::Groups(vec![1, 2, 3])
}

/// The states a prefix of `records` records (and compactions) of the
/// workload describes, per group: what recovery must return.
fn fold(layout: &Layout, steps: &[Step], records: usize) -> BTreeMap<u32, Recovered> {
    let mut states: BTreeMap<u32, Recovered> =
        layout.groups().into_iter().map(|g| (g, Recovered::default())).collect();
    let mut left = records;
    for step in steps {
        match step {
            Step::Append(parts) => {
                for (group, batch) in parts {
                    for record in batch.iter().take(left) {
                        let state = states.get_mut(group).expect("the workload's groups are the layout's");
                        state.apply(record.clone()).expect("the workload is a valid record stream");
                    }
                    left = left.saturating_sub(batch.len());
                }
            }
            Step::Compact(group, snapshot) if left > 0 => {
                states.get_mut(group).expect("a known group").install_snapshot(snapshot.clone());
                left -= 1;
            }
            Step::Compact(..) => {}
        }
        if left == 0 {
            break;
        }
    }
    normalize_all(states)
}

/// Entries the snapshot covers are not part of the comparison.
fn normalize(mut state: Recovered) -> Recovered {
    if let Some(snapshot) = &state.snapshot {
        let index = snapshot.meta.index;
        state.entries.retain(|e| e.index > index);
        state.hard_state.commit = state.hard_state.commit.max(index);
    }
    state
}

fn normalize_all(states: BTreeMap<u32, Recovered>) -> BTreeMap<u32, Recovered> {
    states.into_iter().map(|(group, state)| (group, normalize(state))).collect()
}

/// Runs the workload until the disk fails; returns how many records (and
/// compactions) were acknowledged and how many were attempted.
fn run(disk: &SimDisk, layout: &Layout, steps: &[Step], lying_disk: bool) -> (usize, usize) {
    let Ok((mut wal, recovered)) = block_on(Wal::open_layout(disk.clone(), options(), layout.clone())) else {
        return (0, 0);
    };
    disk.set_sync_lies(lying_disk);
    assert!(recovered.values().all(|r| *r == Recovered::default()));
    let (mut acked, mut attempted, mut lsn) = (0, 0, 0);
    for step in steps {
        let result = match step {
            Step::Append(parts) => {
                let numbered: Vec<(u32, Vec<(Lsn, Record)>)> = parts
                    .iter()
                    .map(|(group, batch)| {
                        let records = batch.iter().map(|r| {
                            lsn += 1;
                            (Lsn(lsn), r.clone())
                        });
                        (*group, records.collect())
                    })
                    .collect();
                let count: usize = parts.iter().map(|(_, batch)| batch.len()).sum();
                attempted += count;
                let parts: Vec<(u32, &[(Lsn, Record)])> =
                    numbered.iter().map(|(g, r)| (*g, r.as_slice())).collect();
                block_on(wal.append_groups(&parts)).map(|_| count)
            }
            Step::Compact(group, snapshot) => {
                attempted += 1;
                block_on(wal.save_group_snapshot(*group, snapshot)).map(|_| 1)
            }
        };
        match result {
            Ok(count) => acked += count,
            Err(_) => break,
        }
    }
    (acked, attempted)
}

/// Crashes the workload at every write and sync, in several ways, and
/// checks each recovery. Returns the number of crash images checked, or the
/// first violation.
fn crash_walk(layout: &Layout, steps: &[Step], lying_disk: bool) -> Result<usize, String> {
    let clean = SimDisk::new();
    run(&clean, layout, steps, false);
    let operations = clean.operations();
    assert!(operations > 30, "the workload should span many writes and syncs, got {operations}");
    let crash_variants = [
        CrashOptions::default(),
        CrashOptions { keep_unsynced_bytes: 5, tear_last_byte: false },
        CrashOptions { keep_unsynced_bytes: 5, tear_last_byte: true },
        CrashOptions { keep_unsynced_bytes: usize::MAX, tear_last_byte: false },
        CrashOptions { keep_unsynced_bytes: usize::MAX, tear_last_byte: true },
    ];
    let mut checked = 0;
    for crash_point in 0..=operations {
        for variant in crash_variants {
            let disk = SimDisk::new();
            disk.fail_after(crash_point);
            let (acked, attempted) = run(&disk, layout, steps, lying_disk);
            let at = format!("crash at operation {crash_point} {variant:?}");
            let (_, recovered) = block_on(Wal::open_layout(disk.crash(variant), options(), layout.clone()))
                .map_err(|e| format!("{at}: recovery failed: {e}"))?;
            let recovered = normalize_all(recovered);
            if !(acked..=attempted).any(|k| fold(layout, steps, k) == recovered) {
                return Err(format!(
                    "{at}: recovered state is no prefix between {acked} and {attempted} records:\n{recovered:#?}"
                ));
            }
            for (group, durable) in fold(layout, steps, acked) {
                let (durable, found) = (durable.hard_state, recovered[&group].hard_state);
                if found.term < durable.term {
                    return Err(format!("{at}: group {group}'s term went back"));
                }
                if found.term == durable.term && durable.vote.is_some() && found.vote != durable.vote {
                    return Err(format!("{at}: group {group}'s vote changed within a term"));
                }
            }
            checked += 1;
        }
    }
    Ok(checked)
}

#[test]
fn recovery_after_a_crash_at_every_write_and_sync_is_a_prefix_holding_every_acknowledged_record() {
    let checked =
        crash_walk(&Layout::Single, &workload(), false).unwrap_or_else(|violation| panic!("{violation}"));
    assert!(checked > 150, "only {checked} crash images checked");
    println!("checked {checked} crash images");
}

/// The checker can fail: a disk whose fsync lies loses acknowledged records
/// at a crash, and the walk must notice.
#[test]
fn the_crash_walk_catches_a_disk_that_acknowledges_before_data_is_durable() {
    let violation = crash_walk(&Layout::Single, &workload(), true)
        .expect_err("a lying fsync must lose an acknowledged record");
    assert!(violation.contains("no prefix") || violation.contains("went back"), "{violation}");
}

/// The same for a log shared by groups: every crash image recovers, for
/// every group at once, a prefix of the shared record stream holding every
/// acknowledged record.
#[test]
fn a_shared_group_log_recovers_every_group_to_one_prefix_after_a_crash_at_every_write_and_sync() {
    let steps = groups_workload();
    let checked =
        crash_walk(&groups_layout(), &steps, false).unwrap_or_else(|violation| panic!("{violation}"));
    assert!(checked > 300, "only {checked} crash images checked");
    println!("checked {checked} crash images");
    let violation = crash_walk(&groups_layout(), &steps, true).expect_err("a lying fsync loses a record");
    assert!(violation.contains("no prefix") || violation.contains("went back"), "{violation}");
}

#[test]
fn recovery_of_a_complete_run_returns_the_whole_workload_and_deletes_covered_segments() {
    let steps = workload();
    let disk = SimDisk::new();
    let (acked, _) = run(&disk, &Layout::Single, &steps, false);
    let (wal, recovered) = block_on(Wal::open(disk.clone(), options())).expect("clean reopen");
    assert_eq!(normalize(recovered), fold(&Layout::Single, &steps, acked)[&0]);
    let first_live = wal.segment_names()[0].clone();
    assert_ne!(first_live, format!("{:020}.wal", 1), "segments covered by the snapshot are deleted");
    let snapshots = block_on(cashe::wal::disk::Disk::list(&disk, "snap")).unwrap();
    assert_eq!(snapshots.len(), 2, "the newest snapshot and one older are kept: {snapshots:?}");
}

#[test]
fn a_complete_run_of_the_shared_log_recovers_every_group_and_deletes_segments_every_group_compacted() {
    let steps = groups_workload();
    let disk = SimDisk::new();
    let (acked, attempted) = run(&disk, &groups_layout(), &steps, false);
    assert_eq!(acked, attempted);
    let (wal, recovered) =
        block_on(Wal::open_layout(disk.clone(), options(), groups_layout())).expect("clean reopen");
    assert_eq!(normalize_all(recovered.clone()), fold(&groups_layout(), &steps, acked));
    assert_eq!(recovered[&1].last_index(), Index(22));
    assert_eq!(recovered[&2].snapshot.as_ref().map(|s| s.meta.index), Some(Index(20)));
    assert_eq!(recovered[&3], Recovered::default(), "a group that wrote nothing recovers nothing");
    assert_ne!(
        wal.segment_names()[0],
        format!("{:020}.wal", 1),
        "segments both groups compacted are deleted"
    );
    let mut snapshots = block_on(cashe::wal::disk::Disk::list(&disk, "snap")).unwrap();
    snapshots.sort();
    assert_eq!(
        snapshots,
        [
            "0000000001-00000000000000000012-00000000000000000001.snap",
            "0000000001-00000000000000000020-00000000000000000004.snap",
            "0000000002-00000000000000000012-00000000000000000001.snap",
            "0000000002-00000000000000000020-00000000000000000004.snap",
        ],
        "each group keeps its newest snapshot and one older"
    );
}

/// A group that wrote once, long ago, keeps the oldest segment alive while
/// the others write on: `pinning` names it once more than the allowed
/// segments are live, and its snapshot lets the segments go.
#[test]
fn a_group_that_wrote_long_ago_is_named_as_pinning_the_log_until_it_compacts() {
    let disk = SimDisk::new();
    let (mut wal, _) = block_on(Wal::open_layout(disk.clone(), options(), groups_layout())).unwrap();
    let append = |wal: &mut Wal<SimDisk>, group: u32, records: Vec<(Lsn, Record)>| {
        block_on(wal.append_groups(&[(group, records.as_slice())])).unwrap();
    };
    append(&mut wal, 3, vec![(Lsn(1), entry(1, 1, "once"))]);
    for k in 1..=40u64 {
        append(&mut wal, 1, vec![(Lsn(k), entry(k, 1, "group one keeps writing"))]);
    }
    let segments = wal.segment_names().len();
    assert!(segments >= 4, "{segments} segments");
    assert_eq!(wal.pinning(segments), Vec::<u32>::new(), "within the limit");
    assert_eq!(wal.pinning(2), vec![1, 3], "both groups have entries in the oldest segment");
    block_on(wal.save_group_snapshot(1, &snapshot(40, 1, "group one at 40"))).unwrap();
    assert_eq!(wal.segment_names().len(), segments, "group 3's entry keeps the oldest segment");
    assert_eq!(wal.pinning(2), vec![3]);
    block_on(wal.save_group_snapshot(3, &snapshot(1, 1, "group three at 1"))).unwrap();
    assert_eq!(wal.segment_names().len(), 1, "nothing keeps the older segments now");
    assert_eq!(wal.pinning(0), Vec::<u32>::new());
    let (_, recovered) = block_on(Wal::open_layout(disk.clone(), options(), groups_layout())).unwrap();
    assert_eq!(recovered[&1].snapshot.as_ref().map(|s| s.meta.index), Some(Index(40)));
    assert_eq!(recovered[&3].snapshot.as_ref().map(|s| s.meta.index), Some(Index(1)));
}

#[test]
fn a_shared_log_refuses_records_and_snapshots_of_groups_it_does_not_hold() {
    let disk = SimDisk::new();
    let (mut wal, _) = block_on(Wal::open_layout(disk.clone(), options(), groups_layout())).unwrap();
    let records = [(Lsn(1), entry(1, 1, "x"))];
    let error = block_on(wal.append_groups(&[(9, records.as_slice())])).unwrap_err();
    assert!(error.to_string().contains("holds no group 9"), "{error}");
    // Written by a log of groups 1 to 3, opened as one of groups 1 and 2.
    let disk = SimDisk::new();
    let (mut wal, _) = block_on(Wal::open_layout(disk.clone(), options(), groups_layout())).unwrap();
    block_on(wal.append_groups(&[(3, records.as_slice())])).unwrap();
    match block_on(Wal::open_layout(disk.clone(), options(), Layout::Groups(vec![1, 2]))) {
        Err(OpenError::Corrupt(c)) => {
            assert!(c.to_string().contains("group 3, which this node does not have"), "{c}")
        }
        other => panic!("expected corruption, got {:?}", other.map(|_| ())),
    }
    block_on(wal.save_group_snapshot(3, &snapshot(1, 1, "three"))).unwrap();
    match block_on(Wal::open_layout(disk, options(), Layout::Groups(vec![1, 2]))) {
        Err(OpenError::Corrupt(c)) => assert!(c.to_string().contains("snapshot of group 3"), "{c}"),
        other => panic!("expected corruption, got {:?}", other.map(|_| ())),
    }
}

/// A group's uncommitted suffix in an old segment, truncated by its next
/// leader in a later one: the truncation lowers the group's mark in every
/// segment, so the old segment goes once the other groups compact, instead
/// of holding the log forever (found in review).
#[test]
fn a_truncated_suffix_in_an_old_segment_does_not_hold_the_log() {
    let disk = SimDisk::new();
    let (mut wal, _) = block_on(Wal::open_layout(disk.clone(), options(), groups_layout())).unwrap();
    let append = |wal: &mut Wal<SimDisk>, group: u32, records: Vec<(Lsn, Record)>| {
        block_on(wal.append_groups(&[(group, records.as_slice())])).unwrap();
    };
    for k in 1..=5u64 {
        append(&mut wal, 3, vec![(Lsn(k), entry(k, 1, "group three, 3 to 5 never committed"))]);
    }
    let first = wal.segment_names()[0].clone();
    for k in 1..=20u64 {
        append(&mut wal, 1, vec![(Lsn(k), entry(k, 1, "group one keeps writing"))]);
    }
    append(&mut wal, 3, vec![(Lsn(6), Record::Truncate { from: Index(3) }), (Lsn(7), entry(3, 2, "no-op"))]);
    block_on(wal.save_group_snapshot(3, &snapshot(3, 2, "group three at 3"))).unwrap();
    for k in 21..=60u64 {
        append(&mut wal, 1, vec![(Lsn(k), entry(k, 1, "group one keeps writing"))]);
    }
    block_on(wal.save_group_snapshot(1, &snapshot(60, 1, "group one at 60"))).unwrap();
    assert_ne!(wal.segment_names()[0], first, "the old segment is deleted");
    assert_eq!(wal.segment_names().len(), 1);
    let (_, recovered) = block_on(Wal::open_layout(disk, options(), groups_layout())).unwrap();
    assert_eq!(recovered[&3].last_index(), Index(3));
    assert_eq!(recovered[&1].last_index(), Index(60));
}

/// One-group log: a truncation below the current segment's first index in
/// the append that fills it. The next segment's name is still above the
/// current one's (it was the first index to come, lower here: the roll
/// reopened or preceded a live segment, and a snapshot then deleted
/// acknowledged entries; found in review).
#[test]
fn a_roll_after_truncating_below_the_segment_start_names_a_new_segment_after_it() {
    for below in [1, 2] {
        let disk = SimDisk::new();
        let (mut wal, _) = block_on(Wal::open(disk.clone(), options())).unwrap();
        let mut lsn = 0;
        let mut append = |wal: &mut Wal<SimDisk>, records: Vec<Record>| {
            let numbered: Vec<(Lsn, Record)> = records
                .into_iter()
                .map(|r| {
                    lsn += 1;
                    (Lsn(lsn), r)
                })
                .collect();
            block_on(wal.append(&numbered)).unwrap();
        };
        let mut k = 1;
        while wal.segment_names().len() < 2 {
            append(&mut wal, vec![entry(k, 1, "x")]);
            k += 1;
        }
        // The current segment starts at k.
        append(&mut wal, vec![entry(k, 1, "y"), entry(k + 1, 1, "y")]);
        let from = k - below;
        append(&mut wal, vec![Record::Truncate { from: Index(from) }, entry(from, 2, &"z".repeat(400))]);
        let names = wal.segment_names();
        let mut sorted = names.clone();
        sorted.dedup();
        sorted.sort();
        assert_eq!(names, sorted, "segment names rise, each once");
        for j in from + 1..from + 21 {
            append(&mut wal, vec![entry(j, 2, "acknowledged")]);
        }
        block_on(wal.save_snapshot(&snapshot(from - 1, 1, "state"))).unwrap();
        let (_, recovered) = block_on(Wal::open(disk.clone(), options())).expect("reopens");
        assert_eq!(recovered.last_index(), Index(from + 20), "truncated {below} below the segment's start");
        assert!(recovered.entries.iter().all(|e| e.index < Index(from) || e.term == Term(2)));
    }
}

/// A missing segment in the middle of a shared log is corruption, named:
/// a group whose entries were in it would lose them without a word. A gap
/// before which every segment is covered (a deletion a crash cut short)
/// is not.
#[test]
fn a_missing_segment_of_a_shared_log_refuses_start_up_unless_the_ones_before_it_are_covered() {
    let disk = SimDisk::new();
    let (mut wal, _) = block_on(Wal::open_layout(disk.clone(), options(), groups_layout())).unwrap();
    // Group 2 writes until the log rolls, then group 3, then group 1: the
    // second segment alone holds group 3's entries, so losing it shows as
    // no gap in any group's entries.
    let mut next = BTreeMap::from([(1u32, 1u64), (2, 1), (3, 1)]);
    for (group, segments) in [(2u32, 2usize), (3, 3), (1, 4)] {
        while wal.segment_names().len() < segments {
            let k = next[&group];
            next.insert(group, k + 1);
            let records = [(Lsn(k), entry(k, 1, "an entry to fill segments"))];
            block_on(wal.append_groups(&[(group, records.as_slice())])).unwrap();
        }
    }
    let names = wal.segment_names();
    drop(wal);
    let missing = format!("wal/{}", names[1]);
    let image = disk.contents(&missing).unwrap();
    block_on(cashe::wal::disk::Disk::remove(&disk, &missing)).unwrap();
    match block_on(Wal::open_layout(disk.clone(), options(), groups_layout())) {
        Err(OpenError::Corrupt(c)) => {
            assert!(c.to_string().contains(&format!("{} before it is missing", names[1])), "{c}")
        }
        other => panic!("expected corruption, got {:?}", other.map(|(_, r)| r)),
    }
    disk.put(&missing, image);
    // Covered: every group's snapshot holds everything, and a crash left
    // the first segment while the removals after it reached the disk.
    let (mut wal, _) = block_on(Wal::open_layout(disk.clone(), options(), groups_layout())).unwrap();
    let first = format!("wal/{}", names[0]);
    let kept = disk.contents(&first).unwrap();
    for (group, k) in &next {
        let at = k - 1;
        block_on(wal.save_group_snapshot(*group, &snapshot(at, 1, "all of it"))).unwrap();
    }
    assert_eq!(wal.segment_names().len(), 1, "{:?}", wal.segment_names());
    drop(wal);
    disk.put(&first, kept);
    let (_, recovered) = block_on(Wal::open_layout(disk, options(), groups_layout())).expect("a covered gap");
    assert_eq!(recovered[&3].last_index(), Index(next[&3] - 1));
}

/// A data directory with two full segments and a partial third.
fn written_disk() -> (SimDisk, Vec<String>) {
    let disk = SimDisk::new();
    let (mut wal, _) = block_on(Wal::open(disk.clone(), options())).unwrap();
    for k in 1..=20u64 {
        block_on(wal.append(&[(Lsn(k), entry(k, 1, "some value to fill segments"))])).unwrap();
    }
    let names = wal.segment_names();
    assert!(names.len() >= 3, "expected several segments, got {names:?}");
    (disk, names)
}

/// Appends `tail` to the file at `path`; returns what it held before.
fn extend_file(disk: &SimDisk, path: &str, tail: &[u8]) -> Vec<u8> {
    let before = disk.contents(path).unwrap();
    disk.put(path, [before.as_slice(), tail].concat());
    before
}

/// Appends entry 21 through `wal`, reopens, and checks that it is read back
/// after the 20 written before.
fn append_after_the_records_and_reopen(mut wal: Wal<SimDisk>, disk: &SimDisk) {
    block_on(wal.append(&[(Lsn(1), entry(21, 3, "after"))])).unwrap();
    let (_, recovered) = block_on(Wal::open(disk.clone(), options())).expect("reopens after the append");
    assert_eq!(recovered.last_index(), Index(21), "appends continue where the records ended");
}

fn open_error(disk: SimDisk) -> String {
    let options = WalOptions { segment_bytes_max: 1 << 20, ..options() };
    match block_on(Wal::open(disk, options)) {
        Ok(_) => panic!("opened damaged data"),
        Err(OpenError::Corrupt(corruption)) => corruption.to_string(),
        Err(other) => panic!("expected corruption, got {other}"),
    }
}

#[test]
fn torn_tail_is_truncated_and_the_log_reopens_without_it() {
    let (disk, names) = written_disk();
    let last = format!("wal/{}", names.last().unwrap());
    let valid = extend_file(&disk, &last, &[0x2a, 0, 0, 0, 1, 2, 3]); // half a frame
    let (_, recovered) = block_on(Wal::open(disk.clone(), options())).expect("a torn tail is not corruption");
    assert_eq!(recovered.last_index(), Index(20));
    assert_eq!(disk.contents(&last).unwrap(), valid, "the torn bytes are cut off");
}

/// Space a disk zero-filled ahead of the writes (`Disk::open_log`) ends a
/// segment: in the last one it is cut, in an older one recovery goes on
/// to the next segment.
#[test]
fn zeros_after_the_last_frame_end_a_segment_and_are_cut_from_the_last() {
    let (disk, names) = written_disk();
    let valid: Vec<Vec<u8>> =
        names.iter().map(|name| extend_file(&disk, &format!("wal/{name}"), &[0; 5000])).collect();
    let last = format!("wal/{}", names.last().unwrap());
    let (wal, recovered) = block_on(Wal::open(disk.clone(), options())).expect("zeros are not corruption");
    assert_eq!(recovered.last_index(), Index(20), "every segment's records, across the zeros");
    assert_eq!(&disk.contents(&last).unwrap(), valid.last().unwrap(), "the last segment's zeros are cut");
    append_after_the_records_and_reopen(wal, &disk);
}

/// A crash while rolling to a new segment: the new file holds only the
/// zeros written ahead of its header, the one before ends in zeros too.
/// Start-up drops the new file and cuts the zeros of the one before, so
/// appends land right after its records and the next start-up reads them.
#[test]
fn a_crash_while_rolling_leaves_a_log_that_appends_after_the_last_record() {
    let (disk, names) = written_disk();
    let previous = format!("wal/{}", names.last().unwrap());
    let records = extend_file(&disk, &previous, &[0; 5000]);
    let rolled = format!("wal/{}", cashe::wal::format::segment_name(Index(21)));
    disk.put(&rolled, vec![0u8; 5000]);

    let (wal, recovered) = block_on(Wal::open(disk.clone(), options())).expect("a crash while rolling");
    assert_eq!(recovered.last_index(), Index(20));
    assert!(disk.contents(&rolled).is_none(), "the segment without a header is gone");
    assert_eq!(disk.contents(&previous).unwrap(), records, "the zeros after the records are cut");
    append_after_the_records_and_reopen(wal, &disk);
}

#[test]
fn a_torn_write_into_zeroed_space_is_a_torn_tail_and_zeros_before_a_frame_are_not() {
    let (disk, names) = written_disk();
    let last = format!("wal/{}", names.last().unwrap());
    let clean = extend_file(&disk, &last, &[&[0x2a, 0, 0, 0, 1, 2, 3][..], &[0; 3000]].concat());
    let (_, recovered) =
        block_on(Wal::open(disk.clone(), options())).expect("a torn write before zeros is cut");
    assert_eq!(recovered.last_index(), Index(20));
    assert_eq!(disk.contents(&last).unwrap(), clean);

    // Zeros, then an intact frame: not preallocated space but damage.
    let (_, first_frame) = cashe::frame::decode(&clean).unwrap();
    disk.put(&last, clean.clone());
    extend_file(&disk, &last, &[&[0; 64][..], &clean[..first_frame]].concat());
    let message = open_error(disk);
    assert!(message.contains(&last) && message.contains(&format!("offset {}", clean.len())), "{message}");
}

#[test]
fn a_bad_frame_followed_by_a_good_one_refuses_start_up_with_file_and_offset() {
    let disk = SimDisk::new();
    let one_segment = WalOptions { segment_bytes_max: 1 << 20, ..options() };
    let (mut wal, _) = block_on(Wal::open(disk.clone(), one_segment)).unwrap();
    for k in 1..=5u64 {
        block_on(wal.append(&[(Lsn(k), entry(k, 1, "value"))])).unwrap();
    }
    let last = format!("wal/{}", wal.segment_names()[0]);
    let bytes = disk.contents(&last).unwrap();
    let (_, header) = cashe::frame::decode(&bytes).unwrap();
    let (_, hard_state) = cashe::frame::decode(&bytes[header..]).unwrap();
    let third = header + hard_state;
    disk.flip_bit(&last, third + 10); // inside the first entry; four intact frames follow
    let message = open_error(disk);
    assert!(message.contains(&last) && message.contains(&format!("offset {third}")), "{message}");
}

#[test]
fn damage_in_an_older_segment_refuses_start_up_with_file_and_offset() {
    let (disk, names) = written_disk();
    let older = format!("wal/{}", names[0]);
    let length = disk.contents(&older).unwrap().len();
    disk.flip_bit(&older, length - 1); // the last byte of its last frame
    let message = open_error(disk);
    assert!(message.contains(&older) && message.contains("offset"), "{message}");
}

#[test]
fn a_snapshot_failing_its_checksum_refuses_start_up_with_file_and_offset() {
    let disk = SimDisk::new();
    let (mut wal, _) = block_on(Wal::open(disk.clone(), options())).unwrap();
    block_on(wal.append(&[(Lsn(1), entry(1, 1, "a")), (Lsn(2), hard_state(1, None, 1))])).unwrap();
    block_on(wal.save_snapshot(&snapshot(1, 1, "the state machine at index 1"))).unwrap();
    let path = "snap/00000000000000000001-00000000000000000001.snap";
    let length = disk.contents(path).unwrap().len();
    disk.flip_bit(path, length - 3);
    let message = open_error(disk);
    assert!(message.contains(path) && message.contains("checksum"), "{message}");
}

#[test]
fn a_data_directory_of_another_node_is_refused() {
    let (disk, _) = written_disk();
    let other = WalOptions { node_id: 2, ..options() };
    assert!(matches!(block_on(Wal::open(disk, other)), Err(OpenError::WrongOwner { .. })));
}

#[test]
fn after_a_failed_sync_the_wal_refuses_everything() {
    let disk = SimDisk::new();
    let (mut wal, _) = block_on(Wal::open(disk.clone(), options())).unwrap();
    disk.fail_after(1); // the write succeeds, the fsync fails
    assert!(block_on(wal.append(&[(Lsn(1), entry(1, 1, "a"))])).is_err());
    disk.fail_after(1000);
    let again = block_on(wal.append(&[(Lsn(2), entry(2, 1, "b"))]));
    assert!(matches!(again, Err(cashe::wal::WalError::Failed)), "{again:?}");
}

/// Every file of the simulated data directory and its bytes.
fn disk_image(disk: &SimDisk) -> Vec<(String, Vec<u8>)> {
    let mut image = Vec::new();
    for dir in ["", "wal", "snap"] {
        for name in block_on(cashe::wal::disk::Disk::list(disk, dir)).unwrap() {
            let path = if dir.is_empty() { name } else { format!("{dir}/{name}") };
            if let Some(bytes) = disk.contents(&path) {
                image.push((path, bytes));
            }
        }
    }
    image
}

/// The node layer refuses commands this large before they reach Raft; the
/// WAL must not trust that: the append fails as an error naming the record,
/// nothing of its batch is written (so nothing of it is acknowledged), and
/// the WAL is failed from then on.
#[test]
fn an_append_holding_a_record_over_the_frame_maximum_fails_and_writes_nothing_of_its_batch() {
    let disk = SimDisk::new();
    let (mut wal, _) = block_on(Wal::open(disk.clone(), options())).unwrap();
    block_on(wal.append(&[(Lsn(1), hard_state(1, Some(1), 0)), (Lsn(2), entry(1, 1, "before"))])).unwrap();
    let before = disk_image(&disk);
    let huge = Record::Entry(Entry {
        term: Term(1),
        index: Index(3),
        payload: Payload::Command(vec![b'x'; cashe::frame::FRAME_PAYLOAD_BYTES_MAX as usize]),
    });

    let result = block_on(wal.append(&[(Lsn(3), entry(2, 1, "same batch")), (Lsn(4), huge)]));

    let error = result.expect_err("an over-size record cannot be appended");
    assert!(matches!(error, cashe::wal::WalError::RecordTooLarge { lsn: Lsn(4), .. }), "{error:?}");
    let text = error.to_string();
    assert!(text.contains("record 4") && text.contains("67108864"), "{text}");
    assert_eq!(disk_image(&disk), before, "nothing of the refused batch reached the disk");
    let again = block_on(wal.append(&[(Lsn(5), entry(2, 1, "later"))]));
    assert!(matches!(again, Err(cashe::wal::WalError::Failed)), "{again:?}");
    let (_, recovered) = block_on(Wal::open(disk.clone(), options())).unwrap();
    assert_eq!(recovered.last_index(), Index(1), "only what was acknowledged before");
}

/// Seeded random bytes, and mutations of valid files, through every fuzz
/// body: none may panic, and the valid inputs must decode.
#[test]
fn fuzz_bodies_survive_random_and_mutated_inputs() {
    let (disk, names) = written_disk();
    let segment = disk.contents(&format!("wal/{}", names[0])).unwrap();
    let snapshot_file = cashe::wal::format::encode_snapshot(&snapshot(5, 2, "some state")).unwrap();
    assert!(fuzz::frame_decode(&segment));
    assert!(fuzz::wal_recover(&segment));
    assert!(fuzz::snapshot_decode(&snapshot_file));
    let mut rng = SplitMix64::new(0x5eed);
    for round in 0..3000 {
        let random: Vec<u8> = (0..rng.range(0, 300)).map(|_| rng.next_u64() as u8).collect();
        let mut mutated = if round % 2 == 0 { segment.clone() } else { snapshot_file.clone() };
        for _ in 0..rng.range(1, 4) {
            let at = rng.range(0, mutated.len() as u64) as usize;
            match rng.range(0, 3) {
                0 => mutated[at] ^= 1 << rng.range(0, 8),
                1 => mutated.truncate(at),
                _ => mutated.insert(at, rng.next_u64() as u8),
            }
            if mutated.is_empty() {
                break;
            }
        }
        for input in [&random, &mutated] {
            fuzz::frame_decode(input);
            fuzz::wal_recover(input);
            fuzz::snapshot_decode(input);
        }
    }
}

/// A first start that crashed while writing `meta` leaves `meta.tmp`; the
/// next first start writes a whole new one.
#[test]
fn a_first_start_after_a_crash_while_writing_meta_writes_it_anew() {
    let disk = SimDisk::new();
    disk.put("meta.tmp", b"half a meta".to_vec());
    block_on(Wal::open(disk.clone(), options())).expect("a fresh directory opens");
    let meta = cashe::wal::format::decode_meta(&disk.contents("meta").unwrap()).unwrap();
    assert_eq!((meta.node_id, meta.cluster_id), (1, 7));
    assert_eq!(disk.contents("meta.tmp"), None);
}
