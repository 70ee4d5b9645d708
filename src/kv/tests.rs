//! The state machine's rules. Byte-exact Redis compatibility of replies is
//! checked against a real server by `tests/redis_diff.rs`; these tests pin
//! what is cashe's own: determinism, expiry reclamation, snapshots, HAS/CAS.

use super::*;
use crate::raft::SplitMix64;

pub(super) const T0: u64 = 1_700_000_000_000;

pub(super) fn cmd(words: &[&str]) -> Vec<Vec<u8>> {
    words.iter().map(|word| word.as_bytes().to_vec()).collect()
}

pub(super) fn run(store: &mut Store, now: u64, words: &[&str]) -> Reply {
    let reply = store.apply(&cmd(words), now);
    store.check_invariants();
    reply
}

pub(super) fn int(n: i64) -> Reply {
    Reply::Integer(n)
}

pub(super) fn bulk(text: &str) -> Reply {
    Reply::bulk(text)
}

/// A random workload over a few keys, with expiries that pass during it.
fn random_commands(seed: u64, count: usize) -> Vec<(u64, Vec<Vec<u8>>)> {
    let mut rng = SplitMix64::new(seed);
    let mut now = T0;
    let mut commands = Vec::new();
    for _ in 0..count {
        now += rng.range(0, 40);
        let key = format!("k{}", rng.range(0, 6));
        let other = format!("k{}", rng.range(0, 6));
        let n = rng.range(0, 200).to_string();
        let words: Vec<String> = match rng.range(0, 15) {
            0 => vec!["SET".into(), key, n.clone(), "PX".into(), n],
            1 => vec!["SET".into(), key, n],
            2 => vec!["PEXPIRE".into(), key, n],
            3 => vec!["INCRBYFLOAT".into(), key, "1.5".into()],
            4 => vec!["APPEND".into(), key, n],
            5 => vec!["RENAME".into(), key, other],
            6 => vec!["DEL".into(), key],
            7 => vec!["GETEX".into(), key, "PX".into(), n],
            8 => vec!["INCR".into(), key],
            9 => vec!["SCAN".into(), "0".into(), "COUNT".into(), "3".into()],
            10 => vec!["DBSIZE".into()],
            11 => vec!["HSET".into(), key, format!("f{}", rng.range(0, 3)), n],
            12 => vec!["HDEL".into(), key, format!("f{}", rng.range(0, 3))],
            13 => vec!["HINCRBYFLOAT".into(), key, "f0".into(), "2.5".into()],
            _ => vec![CASHE_EXPIRE.into(), key, other],
        };
        commands.push((now, words.into_iter().map(String::into_bytes).collect()));
    }
    commands
}

#[test]
fn same_commands_at_same_times_give_identical_stores_and_replies() {
    for seed in 0..20 {
        let (mut a, mut b) = (Store::default(), Store::default());
        for (now, args) in random_commands(seed, 400) {
            assert_eq!(a.apply(&args, now), b.apply(&args, now), "seed {seed}");
        }
        a.check_invariants();
        assert_eq!(a, b, "seed {seed}");
        assert_eq!(a.snapshot(), b.snapshot());
    }
}

#[test]
fn reads_answer_the_same_through_read_and_apply() {
    let mut store = Store::default();
    for (now, args) in random_commands(7, 300) {
        if classify(&args) == Ok(Access::Read) {
            let before = store.clone();
            assert_eq!(store.read(&args, now), store.apply(&args, now));
            assert_eq!(store, before, "a read changed the store");
        } else {
            store.apply(&args, now);
        }
    }
}

#[test]
fn expired_keys_read_as_absent_everywhere() {
    let mut store = Store::default();
    run(&mut store, T0, &["SET", "gone", "v", "PX", "100"]);
    run(&mut store, T0, &["SET", "kept", "v"]);
    let later = T0 + 101;
    assert_eq!(store.read(&cmd(&["GET", "gone"]), T0 + 100), bulk("v"), "alive up to its expiry ms");
    assert_eq!(store.read(&cmd(&["GET", "gone"]), later), Reply::nil());
    assert_eq!(store.read(&cmd(&["EXISTS", "gone", "kept"]), later), int(1));
    assert_eq!(store.read(&cmd(&["HAS", "gone"]), later), int(0));
    assert_eq!(store.read(&cmd(&["TYPE", "gone"]), later), Reply::Simple("none".into()));
    assert_eq!(store.read(&cmd(&["TTL", "gone"]), later), int(-2));
    assert_eq!(store.read(&cmd(&["STRLEN", "gone"]), later), int(0));
    assert_eq!(store.read(&cmd(&["DBSIZE"]), later), int(1));
    assert_eq!(store.read(&cmd(&["KEYS", "*"]), later), Reply::Array(Some(vec![bulk("kept")])));
    let scan = Reply::Array(Some(vec![bulk("0"), Reply::Array(Some(vec![bulk("kept")]))]));
    assert_eq!(store.read(&cmd(&["SCAN", "0"]), later), scan);
    for now in later..later + 50 {
        assert_eq!(store.read(&cmd(&["RANDOMKEY"]), now), bulk("kept"));
    }
    assert_eq!(
        store.read(&cmd(&["MGET", "gone", "kept"]), later),
        Reply::Array(Some(vec![Reply::nil(), bulk("v")]))
    );
    assert_eq!(store.stored_keys(), 2, "reads reclaim nothing");
}

#[test]
fn expired_keys_lists_keys_past_expiry_in_key_order_up_to_max() {
    let mut store = Store::default();
    for (key, ms) in [("d", "10"), ("a", "30"), ("c", "10"), ("b", "1000")] {
        run(&mut store, T0, &["SET", key, "v", "PX", ms]);
    }
    run(&mut store, T0, &["SET", "e", "v"]);
    assert!(store.expired_keys(T0 + 10, 10).is_empty(), "a key expires after its expiry ms");
    assert_eq!(store.expired_keys(T0 + 31, 10), vec![b"a".to_vec(), b"c".to_vec(), b"d".to_vec()]);
    assert_eq!(store.expired_keys(T0 + 31, 2), vec![b"a".to_vec(), b"c".to_vec()]);
}

#[test]
fn cashe_expire_deletes_listed_keys_only_if_expired_at_the_entry_time() {
    let mut store = Store::default();
    run(&mut store, T0, &["SET", "a", "v", "PX", "10"]);
    run(&mut store, T0, &["SET", "b", "v", "PX", "100"]);
    run(&mut store, T0, &["SET", "c", "v"]);
    let listed = store.expired_keys(T0 + 50, 100);
    assert_eq!(listed, vec![b"a".to_vec()]);
    let reply = run(&mut store, T0 + 50, &[CASHE_EXPIRE, "a", "b", "c", "missing", "a"]);
    assert_eq!(reply, int(1));
    assert_eq!(store.stored_keys(), 2);
    assert!(store.expired_keys(T0 + 50, 100).is_empty());
}

#[test]
fn cashe_expire_keeps_a_key_set_again_after_the_leader_listed_it() {
    let mut store = Store::default();
    run(&mut store, T0, &["SET", "session", "old", "PX", "10"]);
    let listed = store.expired_keys(T0 + 20, 100);
    assert_eq!(listed, vec![b"session".to_vec()]);
    // Committed between the listing and the reclaiming entry.
    run(&mut store, T0 + 25, &["SET", "session", "new"]);
    let mut reclaim = vec![CASHE_EXPIRE.as_bytes().to_vec()];
    reclaim.extend(listed);
    assert_eq!(store.apply(&reclaim, T0 + 30), int(0));
    assert_eq!(store.read(&cmd(&["GET", "session"]), T0 + 30), bulk("new"));
}

#[test]
fn snapshot_round_trip_restores_an_identical_store() {
    let mut store = Store::default();
    for (now, args) in random_commands(3, 500) {
        store.apply(&args, now);
    }
    run(&mut store, T0, &["SET", "binary\0key", "\u{1}\u{2}", "PXAT", "9223372036854775807"]);
    let bytes = store.snapshot();
    assert_eq!(bytes[0], SNAPSHOT_FORMAT);
    let restored = Store::restore(&bytes).expect("a snapshot restores");
    assert_eq!(restored, store);
    assert_eq!(restored.snapshot(), bytes);
    let scan = cmd(&["SCAN", "0", "COUNT", "2"]);
    assert_eq!(restored.read(&scan, T0), store.read(&scan, T0), "SCAN cursors survive a restore");
    assert_eq!(Store::restore(&Store::default().snapshot()), Ok(Store::default()));
}

#[test]
fn restore_of_garbage_bytes_is_an_error_not_a_panic() {
    assert_eq!(Store::restore(&[]), Err(RestoreError::Empty));
    assert_eq!(
        Store::restore(&[SNAPSHOT_FORMAT + 1, 0]),
        Err(RestoreError::UnsupportedFormat(SNAPSHOT_FORMAT + 1))
    );
    assert!(matches!(Store::restore(&[SNAPSHOT_FORMAT, 0xFF]), Err(RestoreError::Undecodable(_))));
    let mut store = Store::default();
    for (now, args) in random_commands(5, 200) {
        store.apply(&args, now);
    }
    let valid = store.snapshot();
    let mut trailing = valid.clone();
    trailing.push(0);
    assert_eq!(Store::restore(&trailing), Err(RestoreError::TrailingBytes(1)));
    let mut rng = SplitMix64::new(11);
    for _ in 0..3000 {
        let mut bytes = valid.clone();
        match rng.range(0, 3) {
            0 => bytes.truncate(rng.range(0, valid.len() as u64) as usize),
            1 => {
                let at = rng.range(0, valid.len() as u64) as usize;
                bytes[at] ^= 1 << rng.range(0, 8);
            }
            _ => {
                let length = rng.range(0, 64);
                bytes = std::iter::once(SNAPSHOT_FORMAT)
                    .chain((0..length).map(|_| rng.next_u64() as u8))
                    .collect();
            }
        }
        snapshot_decode(&bytes);
    }
}

#[test]
fn restore_rejects_snapshots_that_break_the_store_rules() {
    let mut store = Store::default();
    run(&mut store, T0, &["SET", "a", "1"]);
    run(&mut store, T0, &["SET", "b", "2"]);
    let valid = store.snapshot();
    // Layout: format, last_sequence (2), version (2), entry count (2),
    // then "a": key length 1, 'a', value tag 0 (a string), value length
    // 1, '1', expiry None, sequence 1, modified at version 1; then "b"; no
    // tombstones, floor 0, no blocked clients.
    assert_eq!(&valid[..12], &[SNAPSHOT_FORMAT, 2, 2, 2, 1, b'a', 0, 1, b'1', 0, 1, 1]);
    assert_eq!(&valid[20..], &[0, 0, 0]);
    // A blocked client: order, node, seq, then the command's arguments.
    let waiter = |order: u8, command: &[&[u8]]| -> Vec<u8> {
        let mut bytes = [&valid[..22], &[1, order, 7, 9, command.len() as u8]].concat();
        for arg in command {
            bytes.push(arg.len() as u8);
            bytes.extend_from_slice(arg);
        }
        bytes
    };
    let restored = Store::restore(&waiter(2, &[b"BLPOP", b"q", b"0"])).expect("a valid waiter");
    assert!(restored.is_waiting(super::WaiterId { node: 7, seq: 9 }));
    assert_eq!(Store::restore(&waiter(2, &[b"GET", b"q"])), Err(RestoreError::BadWaiter(2)));
    assert_eq!(
        Store::restore(&waiter(3, &[b"BLPOP", b"q", b"0"])),
        Err(RestoreError::BadWaiter(3)),
        "after the version"
    );
    let mut duplicate_sequence = valid.clone();
    duplicate_sequence[18] = 1;
    assert_eq!(Store::restore(&duplicate_sequence), Err(RestoreError::BadSequence(1)));
    let mut out_of_order = valid.clone();
    out_of_order[5] = b'c';
    assert_eq!(Store::restore(&out_of_order), Err(RestoreError::KeysOutOfOrder(1)));
    let mut zero_expiry = valid.clone();
    zero_expiry.splice(9..10, [1, 0]);
    assert_eq!(Store::restore(&zero_expiry), Err(RestoreError::BadExpiry(0)));
    let mut modified_later = valid.clone();
    modified_later[11] = 9;
    assert_eq!(Store::restore(&modified_later), Err(RestoreError::BadVersion(9)));
    let mut tombstone_of_a_stored_key = valid.clone();
    tombstone_of_a_stored_key.splice(20..21, [1, 1, b'a', 1]);
    assert_eq!(Store::restore(&tombstone_of_a_stored_key), Err(RestoreError::BadVersion(1)));
    // "b" as a hash (tag 1): fields must be strictly increasing, at least one.
    let hash = |pairs: &[&[u8]]| -> Vec<u8> {
        let mut bytes = [&valid[..12], &[1, b'b', 1, pairs.len() as u8 / 2]].concat();
        for part in pairs {
            bytes.push(part.len() as u8);
            bytes.extend_from_slice(part);
        }
        [&bytes[..], &[0, 2, 2, 0, 0, 0]].concat()
    };
    assert!(Store::restore(&hash(&[b"f", b"v", b"g", b"w"])).is_ok());
    assert_eq!(Store::restore(&hash(&[])), Err(RestoreError::BadHash(1)));
    assert_eq!(Store::restore(&hash(&[b"g", b"v", b"f", b"w"])), Err(RestoreError::BadHash(1)));
    assert_eq!(Store::restore(&hash(&[b"f", b"v", b"f", b"w"])), Err(RestoreError::BadHash(1)));
}

#[test]
fn a_format_1_snapshot_still_restores_with_every_version_zero() {
    let v1 = [1, 2, 2, 1, b'a', 1, b'1', 0, 1, 1, b'b', 1, b'2', 0, 2];
    let store = Store::restore(&v1).expect("format 1 restores");
    assert_eq!(
        store.read(&cmd(&["MGET", "a", "b"]), T0),
        Reply::Array(Some(vec![Reply::bulk("1"), Reply::bulk("2")]))
    );
    assert_eq!(store.version(), 0);
    assert!(!store.touched(&store.watch(b"a", T0), T0));
}

#[test]
fn watch_sees_every_modification_redis_signals_and_nothing_else() {
    let mut store = Store::default();
    run(&mut store, T0, &["SET", "k", "v"]);
    run(&mut store, T0, &["SET", "ttl", "v", "PX", "100"]);
    let watched = |store: &Store, key: &str| store.watch(key.as_bytes(), T0);
    let touched_by = |command: &[&str]| {
        let mut store = store.clone();
        let watches = ["k", "ttl", "absent"].map(|key| watched(&store, key));
        run(&mut store, T0, command);
        watches.iter().map(|w| store.touched(w, T0)).collect::<Vec<bool>>()
    };
    assert_eq!(touched_by(&["SET", "k", "v"]), [true, false, false], "a SET of the same value");
    assert_eq!(touched_by(&["SETNX", "k", "w"]), [false, false, false], "a SETNX that did nothing");
    assert_eq!(touched_by(&["CAS", "k", "nope", "w"]), [false, false, false], "a CAS that failed");
    assert_eq!(touched_by(&["CAS", "k", "v", "w"]), [true, false, false]);
    assert_eq!(touched_by(&["INCR", "k"]), [false, false, false], "an INCR that failed");
    assert_eq!(touched_by(&["PERSIST", "k"]), [false, false, false], "no TTL to remove");
    assert_eq!(touched_by(&["PERSIST", "ttl"]), [false, true, false]);
    assert_eq!(touched_by(&["DEL", "k", "absent"]), [true, false, false]);
    assert_eq!(touched_by(&["SET", "absent", "1"]), [false, false, true]);
    assert_eq!(touched_by(&["RENAME", "k", "absent"]), [true, false, true]);
    assert_eq!(touched_by(&["GET", "k"]), [false, false, false], "a read");
    assert_eq!(touched_by(&["FLUSHALL"]), [true, true, true], "a flush touches every key");
    // A key that expires after WATCH is touched; one already expired at
    // WATCH is not touched by its reclamation.
    let mut later = store.clone();
    let live_then = later.watch(b"ttl", T0);
    let expired_then = later.watch(b"ttl", T0 + 200);
    later.apply(&cmd(&["CASHE.EXPIRE", "ttl"]), T0 + 200);
    assert!(later.touched(&live_then, T0 + 200));
    assert!(!later.touched(&expired_then, T0 + 200));
    // Created and deleted again after WATCH: a tombstone remembers.
    let mut again = store.clone();
    let absent = again.watch(b"new", T0);
    run(&mut again, T0, &["SET", "new", "1"]);
    run(&mut again, T0, &["DEL", "new"]);
    assert!(again.touched(&absent, T0));
    // The versions survive a snapshot.
    let restored = Store::restore(&again.snapshot()).expect("restores");
    assert!(restored.touched(&absent, T0));
    assert!(!restored.touched(&restored.watch(b"k", T0), T0));
}

#[test]
fn classify_separates_reads_from_writes_and_reports_redis_errors() {
    assert_eq!(classify(&cmd(&["get", "k"])), Ok(Access::Read));
    assert_eq!(classify(&cmd(&["SCAN", "0"])), Ok(Access::Read));
    assert_eq!(classify(&cmd(&["Has", "k"])), Ok(Access::Read));
    assert_eq!(classify(&cmd(&["GETEX", "k"])), Ok(Access::Write), "GETEX may change the TTL");
    assert_eq!(classify(&cmd(&["cas", "k", "a", "b"])), Ok(Access::Write));
    assert_eq!(classify(&cmd(&["CASHE.EXPIRE"])), Ok(Access::Write));
    assert_eq!(
        classify(&cmd(&["nope", "x"])),
        Err(Reply::error("ERR unknown command 'nope', with args beginning with: 'x' "))
    );
    assert_eq!(
        classify(&cmd(&["CAS", "k"])),
        Err(Reply::error("ERR wrong number of arguments for 'cas' command"))
    );
}

#[test]
fn read_answers_a_write_command_with_an_error() {
    let store = Store::default();
    assert!(matches!(store.read(&cmd(&["SET", "k", "v"]), T0), Reply::Error(_)));
    assert!(matches!(store.read(&cmd(&[]), T0), Reply::Error(_)));
    assert_eq!(store, Store::default());
}

#[test]
fn has_is_exists_for_one_key() {
    let mut store = Store::default();
    assert_eq!(run(&mut store, T0, &["HAS", "k"]), int(0));
    run(&mut store, T0, &["SET", "k", ""]);
    assert_eq!(run(&mut store, T0, &["HAS", "k"]), int(1));
}

#[test]
fn cas_replaces_only_a_matching_value_and_keeps_the_ttl() {
    let mut store = Store::default();
    assert_eq!(run(&mut store, T0, &["CAS", "k", "", "x"]), int(0), "a missing key never matches");
    assert_eq!(run(&mut store, T0, &["HAS", "k"]), int(0));
    run(&mut store, T0, &["SET", "k", "a", "PX", "5000"]);
    assert_eq!(run(&mut store, T0, &["CAS", "k", "b", "c"]), int(0));
    assert_eq!(run(&mut store, T0, &["CAS", "k", "a", "c"]), int(1));
    assert_eq!(run(&mut store, T0, &["GET", "k"]), bulk("c"));
    assert_eq!(run(&mut store, T0, &["PTTL", "k"]), int(5000));
    assert_eq!(run(&mut store, T0 + 5001, &["CAS", "k", "c", "d"]), int(0), "an expired key never matches");
}

#[test]
fn scan_returns_every_key_present_throughout_despite_deletions() {
    let mut store = Store::default();
    for i in 0..50 {
        run(&mut store, T0, &["SET", &format!("key:{i:02}"), "v"]);
    }
    let mut seen = std::collections::BTreeSet::new();
    let mut cursor = "0".to_string();
    let mut round = 0;
    loop {
        let Reply::Array(Some(parts)) = run(&mut store, T0, &["SCAN", &cursor, "COUNT", "7"]) else {
            panic!("SCAN answers an array");
        };
        let (Reply::Bulk(Some(next)), Reply::Array(Some(keys))) = (&parts[0], &parts[1]) else {
            panic!("SCAN answers a cursor and keys");
        };
        for key in keys {
            let Reply::Bulk(Some(key)) = key else { panic!("keys are bulk strings") };
            assert!(seen.insert(key.clone()), "returned twice: {key:?}");
        }
        // Churn: delete keys from both ends, add new ones.
        run(&mut store, T0, &["DEL", &format!("key:{:02}", round), &format!("key:{:02}", 49 - round)]);
        run(&mut store, T0, &["SET", &format!("new:{round}"), "v"]);
        round += 1;
        cursor = String::from_utf8(next.clone()).unwrap();
        if cursor == "0" {
            break;
        }
    }
    for i in round..50 - round {
        assert!(seen.contains(format!("key:{i:02}").as_bytes()), "key:{i:02} was present throughout");
    }
}

#[test]
fn randomkey_depends_only_on_the_keys_and_the_time() {
    let mut a = Store::default();
    for key in ["a", "b", "c", "d"] {
        run(&mut a, T0, &["SET", key, "v"]);
    }
    let b = Store::restore(&a.snapshot()).unwrap();
    let picks: std::collections::BTreeSet<Reply> =
        (0..64).map(|i| a.read(&cmd(&["RANDOMKEY"]), T0 + i)).collect();
    assert_eq!(picks.len(), 4, "every key gets picked at some time");
    for i in 0..64 {
        assert_eq!(a.read(&cmd(&["RANDOMKEY"]), T0 + i), b.read(&cmd(&["RANDOMKEY"]), T0 + i));
    }
    assert_eq!(Store::default().read(&cmd(&["RANDOMKEY"]), T0), Reply::nil());
}

#[test]
fn strings_past_512_mb_are_refused_before_allocating() {
    let mut store = Store::default();
    let too_big = Reply::error("ERR string exceeds maximum allowed size (proto-max-bulk-len)");
    assert_eq!(run(&mut store, T0, &["SETRANGE", "k", "536870912", "x"]), too_big);
    assert_eq!(run(&mut store, T0, &["SETRANGE", "k", "9223372036854775807", "x"]), too_big);
    assert_eq!(run(&mut store, T0, &["HAS", "k"]), int(0));
    run(&mut store, T0, &["SET", "k", "abc"]);
    assert_eq!(run(&mut store, T0, &["SETRANGE", "k", "536870910", "xyz"]), too_big);
    assert_eq!(run(&mut store, T0, &["GET", "k"]), bulk("abc"));
}

#[test]
fn counters_and_appends_keep_the_ttl_but_set_clears_it() {
    let mut store = Store::default();
    run(&mut store, T0, &["SET", "n", "1", "EX", "100"]);
    for words in [
        &["INCR", "n"][..],
        &["INCRBYFLOAT", "n", "0.5"],
        &["APPEND", "n", "0"],
        &["SETRANGE", "n", "0", "7"],
    ] {
        run(&mut store, T0, words);
        assert_eq!(run(&mut store, T0, &["TTL", "n"]), int(100), "{words:?}");
    }
    assert_eq!(run(&mut store, T0, &["GET", "n"]), bulk("7.50"));
    run(&mut store, T0, &["SET", "n", "1"]);
    assert_eq!(run(&mut store, T0, &["TTL", "n"]), int(-1));
}

#[test]
fn relative_expiries_count_from_the_given_time() {
    let mut store = Store::default();
    run(&mut store, T0, &["SET", "k", "v", "EX", "10"]);
    assert_eq!(run(&mut store, T0 + 2_400, &["TTL", "k"]), int(8), "7.6 s rounds to 8");
    assert_eq!(run(&mut store, T0 + 2_400, &["PEXPIRETIME", "k"]), int((T0 + 10_000) as i64));
    assert_eq!(run(&mut store, T0, &["EXPIRE", "k", "0"]), int(1), "a time not in the future deletes");
    assert_eq!(run(&mut store, T0, &["EXISTS", "k"]), int(0));
}
