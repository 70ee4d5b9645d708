//! Hashes: the edge cases of Redis 7.0's `tests/unit/type/hash.tcl` and
//! what is cashe's own (WATCH, snapshots, HSCAN's cursor, the type rules
//! between strings and hashes). `tests/redis_diff.rs` checks the replies
//! byte for byte against a real server on random commands.

use super::tests::{bulk, cmd, int, T0};
use super::*;
use std::collections::BTreeSet;

/// A command at `T0`, with the store's invariants checked after it.
fn run(store: &mut Store, words: &[&str]) -> Reply {
    super::tests::run(store, T0, words)
}

fn array(items: Vec<Reply>) -> Reply {
    Reply::Array(Some(items))
}

fn wrong_type() -> Reply {
    Reply::error(WRONG_TYPE)
}

#[test]
fn hset_counts_new_fields_and_hmset_answers_ok() {
    let mut store = Store::default();
    assert_eq!(run(&mut store, &["HSET", "h", "a", "1", "b", "2"]), int(2));
    assert_eq!(run(&mut store, &["HSET", "h", "a", "newval", "c", "3"]), int(1), "update and insert");
    assert_eq!(run(&mut store, &["HGET", "h", "a"]), bulk("newval"));
    assert_eq!(run(&mut store, &["HMSET", "h", "d", "4"]), Reply::ok());
    assert_eq!(run(&mut store, &["HLEN", "h"]), int(4));
    assert_eq!(run(&mut store, &["HSET", "h", "a", "1", "b"]), command::wrong_arity("hset"));
    assert_eq!(run(&mut store, &["HMSET", "h", "a", "1", "b"]), command::wrong_arity("hmset"));
    assert_eq!(run(&mut store, &["HLEN", "h"]), int(4), "nothing set by a wrong argument count");
}

#[test]
fn hsetnx_sets_only_a_missing_field() {
    let mut store = Store::default();
    assert_eq!(run(&mut store, &["HSETNX", "h", "f", "foo"]), int(1), "the key is created");
    assert_eq!(run(&mut store, &["HSETNX", "h", "f", "bar"]), int(0));
    assert_eq!(run(&mut store, &["HGET", "h", "f"]), bulk("foo"));
}

#[test]
fn reads_of_missing_keys_and_fields_answer_nil_zero_or_empty() {
    let mut store = Store::default();
    run(&mut store, &["HSET", "h", "a", "1"]);
    for key in ["h", "missing"] {
        assert_eq!(run(&mut store, &["HGET", key, "nope"]), Reply::nil());
        assert_eq!(run(&mut store, &["HMGET", key, "x", "y"]), array(vec![Reply::nil(), Reply::nil()]));
        assert_eq!(run(&mut store, &["HEXISTS", key, "nope"]), int(0));
        assert_eq!(run(&mut store, &["HSTRLEN", key, "nope"]), int(0));
    }
    assert_eq!(run(&mut store, &["HLEN", "missing"]), int(0));
    assert_eq!(run(&mut store, &["HKEYS", "missing"]), array(vec![]));
    assert_eq!(run(&mut store, &["HGETALL", "missing"]), Reply::Map(vec![]), "RESP3: an empty map");
    assert_eq!(run(&mut store, &["HSCAN", "missing", "0"]), array(vec![bulk("0"), array(vec![])]));
}

#[test]
fn hgetall_is_a_map_in_resp3_and_a_flat_array_in_resp2() {
    let mut store = Store::default();
    run(&mut store, &["HSET", "h", "b", "2", "a", "1"]);
    let reply = run(&mut store, &["HGETALL", "h"]);
    assert_eq!(reply, Reply::Map(vec![(bulk("a"), bulk("1")), (bulk("b"), bulk("2"))]), "field order");
    assert_eq!(
        reply.for_protocol(crate::protocol::Protocol::Resp2),
        array(vec![bulk("a"), bulk("1"), bulk("b"), bulk("2")])
    );
    assert_eq!(run(&mut store, &["HKEYS", "h"]), array(vec![bulk("a"), bulk("b")]));
    assert_eq!(run(&mut store, &["HVALS", "h"]), array(vec![bulk("1"), bulk("2")]));
}

#[test]
fn hdel_counts_deleted_fields_and_the_last_one_deletes_the_key() {
    let mut store = Store::default();
    run(&mut store, &["HSET", "h", "a", "1", "b", "2", "c", "3"]);
    run(&mut store, &["PEXPIRE", "h", "5000"]);
    assert_eq!(run(&mut store, &["HDEL", "h", "x", "y"]), int(0));
    assert_eq!(run(&mut store, &["HDEL", "h", "a", "a", "c", "f"]), int(2), "a field repeated counts once");
    assert_eq!(run(&mut store, &["HGETALL", "h"]), Reply::Map(vec![(bulk("b"), bulk("2"))]));
    assert_eq!(run(&mut store, &["PTTL", "h"]), int(5000), "hash writes keep the TTL");
    let watch = store.watch(b"h", T0);
    assert_eq!(run(&mut store, &["HDEL", "h", "b", "d", "e"]), int(1));
    assert_eq!(run(&mut store, &["EXISTS", "h"]), int(0), "no empty hash is kept");
    assert_eq!(run(&mut store, &["PTTL", "h"]), int(-2));
    assert!(store.touched(&watch, T0), "the deletion is a modification");
    assert_eq!(run(&mut store, &["HDEL", "h", "b"]), int(0));
}

#[test]
fn hincrby_creates_counts_and_refuses_non_integers_and_overflow() {
    let mut store = Store::default();
    assert_eq!(run(&mut store, &["HINCRBY", "h", "n", "2"]), int(2), "a missing key is created");
    assert_eq!(run(&mut store, &["HINCRBY", "h", "n", "3"]), int(5));
    run(&mut store, &["HSET", "h", "big", "17179869184"]);
    assert_eq!(run(&mut store, &["HINCRBY", "h", "big", "17179869184"]), int(34_359_738_368));
    for spaced in [" 11", "11 "] {
        run(&mut store, &["HSET", "h", "str", spaced]);
        assert_eq!(
            run(&mut store, &["HINCRBY", "h", "str", "1"]),
            Reply::error("ERR hash value is not an integer")
        );
    }
    run(&mut store, &["HSET", "h", "low", "-9223372036854775484"]);
    assert_eq!(run(&mut store, &["HINCRBY", "h", "low", "-1"]), int(-9_223_372_036_854_775_485));
    assert_eq!(
        run(&mut store, &["HINCRBY", "h", "low", "-10000"]),
        Reply::error("ERR increment or decrement would overflow")
    );
    assert_eq!(
        run(&mut store, &["HINCRBY", "h", "n", "x"]),
        Reply::error("ERR value is not an integer or out of range")
    );
    assert_eq!(run(&mut store, &["HGET", "h", "n"]), bulk("5"));
}

#[test]
fn hincrbyfloat_uses_incrbyfloat_arithmetic_and_refuses_nan_and_infinity() {
    let mut store = Store::default();
    assert_eq!(run(&mut store, &["HINCRBYFLOAT", "h", "f", "2.5"]), bulk("2.5"));
    assert_eq!(run(&mut store, &["HINCRBYFLOAT", "h", "f", "3.5"]), bulk("6"));
    run(&mut store, &["HSET", "h", "big", "17179869184"]);
    assert_eq!(run(&mut store, &["HINCRBYFLOAT", "h", "big", "1"]), bulk("17179869185"));
    run(&mut store, &["HSET", "h", "max", "9223372036854775807"]);
    assert_eq!(run(&mut store, &["HINCRBYFLOAT", "h", "max", "1"]), bulk("9223372036854775808"));
    assert_eq!(
        run(&mut store, &["HINCRBYFLOAT", "h", "f", "inf"]),
        Reply::error("ERR value is NaN or Infinity")
    );
    assert_eq!(
        run(&mut store, &["HINCRBYFLOAT", "h", "f", "x"]),
        Reply::error("ERR value is not a valid float")
    );
    for spaced in [" 11", "11 "] {
        run(&mut store, &["HSET", "h", "str", spaced]);
        assert_eq!(
            run(&mut store, &["HINCRBYFLOAT", "h", "str", "1"]),
            Reply::error("ERR hash value is not a float")
        );
    }
    run(&mut store, &["HSET", "h", "huge", "1e4932"]);
    assert_eq!(
        run(&mut store, &["HINCRBYFLOAT", "h", "huge", "1e4932"]),
        Reply::error("ERR increment would produce NaN or Infinity")
    );
}

#[test]
fn string_commands_on_a_hash_and_hash_commands_on_a_string_are_wrongtype() {
    let mut store = Store::default();
    run(&mut store, &["HSET", "h", "f", "1"]);
    run(&mut store, &["SET", "s", "1"]);
    for command in [
        &["GET", "h"][..],
        &["GETSET", "h", "v"],
        &["GETDEL", "h"],
        &["GETEX", "h", "PX", "100"],
        &["SET", "h", "v", "GET"],
        &["STRLEN", "h"],
        &["GETRANGE", "h", "0", "1"],
        &["APPEND", "h", "x"],
        &["SETRANGE", "h", "0", ""],
        &["INCR", "h"],
        &["INCRBY", "h", "1"],
        &["DECRBY", "h", "1"],
        &["INCRBYFLOAT", "h", "1"],
        &["CAS", "h", "1", "2"],
        &["HGET", "s", "f"],
        &["HMGET", "s", "f"],
        &["HSET", "s", "f", "v"],
        &["HSETNX", "s", "f", "v"],
        &["HDEL", "s", "f"],
        &["HEXISTS", "s", "f"],
        &["HLEN", "s"],
        &["HSTRLEN", "s", "f"],
        &["HKEYS", "s"],
        &["HVALS", "s"],
        &["HGETALL", "s"],
        &["HINCRBY", "s", "f", "1"],
        &["HINCRBYFLOAT", "s", "f", "1"],
        &["HSCAN", "s", "0"],
    ] {
        assert_eq!(run(&mut store, command), wrong_type(), "{command:?}");
    }
    assert_eq!(run(&mut store, &["HGET", "h", "f"]), bulk("1"), "nothing changed");
    assert_eq!(run(&mut store, &["GET", "s"]), bulk("1"));
    // Argument errors come first where Redis checks them first.
    assert_eq!(
        run(&mut store, &["INCRBY", "h", "x"]),
        Reply::error("ERR value is not an integer or out of range")
    );
    assert_eq!(
        run(&mut store, &["HINCRBY", "s", "f", "x"]),
        Reply::error("ERR value is not an integer or out of range")
    );
    assert_eq!(run(&mut store, &["SETRANGE", "h", "-1", "x"]), Reply::error("ERR offset is out of range"));
    assert_eq!(run(&mut store, &["HSCAN", "s", "x"]), Reply::error("ERR invalid cursor"));
}

#[test]
fn key_commands_work_on_any_type_and_set_overwrites_a_hash() {
    let mut store = Store::default();
    run(&mut store, &["HSET", "h", "f", "1"]);
    run(&mut store, &["SET", "s", "1"]);
    assert_eq!(run(&mut store, &["TYPE", "h"]), Reply::Simple("hash".into()));
    assert_eq!(run(&mut store, &["TYPE", "s"]), Reply::Simple("string".into()));
    assert_eq!(run(&mut store, &["EXISTS", "h", "s"]), int(2));
    assert_eq!(
        run(&mut store, &["MGET", "h", "s"]),
        array(vec![Reply::nil(), bulk("1")]),
        "MGET: nil for a hash"
    );
    assert_eq!(
        run(&mut store, &["SCAN", "0", "TYPE", "HASH"]),
        array(vec![bulk("0"), array(vec![bulk("h")])])
    );
    assert_eq!(run(&mut store, &["SCAN", "0", "TYPE", "list"]), array(vec![bulk("0"), array(vec![])]));
    assert_eq!(run(&mut store, &["EXPIRE", "h", "10"]), int(1));
    assert_eq!(run(&mut store, &["TTL", "h"]), int(10));
    assert_eq!(run(&mut store, &["RENAME", "h", "moved"]), Reply::ok());
    assert_eq!(run(&mut store, &["HGET", "moved", "f"]), bulk("1"));
    assert_eq!(run(&mut store, &["TTL", "moved"]), int(10), "the TTL moves with the hash");
    assert_eq!(run(&mut store, &["SETNX", "moved", "x"]), int(0));
    assert_eq!(run(&mut store, &["MSETNX", "moved", "x", "other", "y"]), int(0));
    assert_eq!(run(&mut store, &["SET", "moved", "x"]), Reply::ok(), "SET overwrites any type");
    assert_eq!(run(&mut store, &["TYPE", "moved"]), Reply::Simple("string".into()));
    assert_eq!(run(&mut store, &["TTL", "moved"]), int(-1));
    run(&mut store, &["HSET", "h2", "f", "1"]);
    assert_eq!(run(&mut store, &["DEL", "h2", "s"]), int(2));
    assert_eq!(run(&mut store, &["DBSIZE"]), int(1));
}

#[test]
fn an_expired_hash_is_absent_and_a_write_starts_a_new_one() {
    let mut store = Store::default();
    run(&mut store, &["HSET", "h", "old", "1"]);
    run(&mut store, &["PEXPIRE", "h", "100"]);
    let later = T0 + 101;
    assert_eq!(store.apply(&cmd(&["HGET", "h", "old"]), later), Reply::nil());
    assert_eq!(store.apply(&cmd(&["HSET", "h", "new", "2"]), later), int(1));
    assert_eq!(store.apply(&cmd(&["HGETALL", "h"]), later), Reply::Map(vec![(bulk("new"), bulk("2"))]));
    assert_eq!(store.apply(&cmd(&["PTTL", "h"]), later), int(-1));
    store.check_invariants();
}

#[test]
fn watch_sees_hash_changes_and_not_failed_or_empty_ones() {
    let mut store = Store::default();
    run(&mut store, &["HSET", "h", "f", "1", "text", "x"]);
    let touched_by = |command: &[&str]| {
        let mut store = store.clone();
        let watch = store.watch(b"h", T0);
        run(&mut store, command);
        store.touched(&watch, T0)
    };
    assert!(touched_by(&["HSET", "h", "f", "1"]), "a set of the same value");
    assert!(touched_by(&["HINCRBY", "h", "f", "1"]));
    assert!(touched_by(&["HDEL", "h", "f"]));
    assert!(touched_by(&["HSETNX", "h", "g", "1"]));
    assert!(!touched_by(&["HSETNX", "h", "f", "2"]), "an HSETNX that did nothing");
    assert!(!touched_by(&["HDEL", "h", "nope"]), "an HDEL that deleted nothing");
    assert!(!touched_by(&["HINCRBY", "h", "text", "1"]), "an HINCRBY that failed");
    assert!(!touched_by(&["HINCRBYFLOAT", "h", "f", "inf"]), "an HINCRBYFLOAT that failed");
    assert!(!touched_by(&["HGETALL", "h"]), "a read");
    assert!(!touched_by(&["GET", "h"]), "a WRONGTYPE error");
}

#[test]
fn hashes_survive_a_snapshot_round_trip() {
    let mut store = Store::default();
    run(&mut store, &["HSET", "h", "b", "2", "a", "1", "", "empty field", "long", &"v".repeat(100)]);
    run(&mut store, &["HSET", "binary\0key", "\u{1}", "\u{2}"]);
    run(&mut store, &["PEXPIRE", "h", "5000"]);
    run(&mut store, &["SET", "s", "v"]);
    let bytes = store.snapshot();
    let restored = Store::restore(&bytes).expect("restores");
    assert_eq!(restored, store);
    assert_eq!(restored.snapshot(), bytes);
    assert_eq!(restored.read(&cmd(&["HLEN", "h"]), T0), int(4));
    assert_eq!(restored.read(&cmd(&["PTTL", "h"]), T0), int(5000));
}

/// One HSCAN iteration from cursor 0 with `count`, deleting and adding
/// fields between calls; every field seen.
fn hscan_all(store: &mut Store, count: usize, churn: bool) -> BTreeSet<Vec<u8>> {
    let mut seen = BTreeSet::new();
    let mut cursor = "0".to_string();
    for round in 0.. {
        let reply = run(store, &["HSCAN", "h", &cursor, "COUNT", &count.to_string()]);
        let Reply::Array(Some(parts)) = reply else { panic!("HSCAN answers an array") };
        let (Reply::Bulk(Some(next)), Reply::Array(Some(items))) = (&parts[0], &parts[1]) else {
            panic!("HSCAN answers a cursor and fields")
        };
        for pair in items.chunks(2) {
            let Reply::Bulk(Some(field)) = &pair[0] else { panic!("fields are bulk strings") };
            seen.insert(field.clone());
        }
        if churn {
            run(store, &["HDEL", "h", &format!("field:{round:02}"), &format!("field:{:02}", 49 - round)]);
            run(store, &["HSET", "h", &format!("new:{round}"), "v"]);
        }
        cursor = String::from_utf8(next.clone()).expect("a number");
        if cursor == "0" {
            break;
        }
        assert!(round < 100, "HSCAN ends");
    }
    seen
}

#[test]
fn hscan_returns_every_field_present_throughout_despite_changes() {
    let mut store = Store::default();
    for i in 0..50 {
        run(&mut store, &["HSET", "h", &format!("field:{i:02}"), "v"]);
    }
    // Fields sharing their first 8 bytes come in the same call.
    for i in 0..30 {
        run(&mut store, &["HSET", "h", &format!("zzzzzzzz{i}"), "v"]);
    }
    let all = hscan_all(&mut store.clone(), 7, false);
    assert_eq!(all.len(), 80);
    let seen = hscan_all(&mut store, 7, true);
    for i in 10..40 {
        let field = format!("field:{i:02}").into_bytes();
        assert!(seen.contains(&field), "{i} was present throughout");
    }
    assert!((0..30).all(|i| seen.contains(format!("zzzzzzzz{i}").as_bytes())));
}

#[test]
fn hscan_matches_fields_and_checks_its_options_like_scan() {
    let mut store = Store::default();
    run(&mut store, &["HSET", "h", "a1", "x", "b1", "y", "a2", "z"]);
    assert_eq!(
        run(&mut store, &["HSCAN", "h", "0", "MATCH", "a*"]),
        array(vec![bulk("0"), array(vec![bulk("a1"), bulk("x"), bulk("a2"), bulk("z")])])
    );
    assert_eq!(run(&mut store, &["HSCAN", "h", "0", "COUNT", "0"]), Reply::error("ERR syntax error"));
    assert_eq!(run(&mut store, &["HSCAN", "h", "0", "TYPE", "hash"]), Reply::error("ERR syntax error"));
    assert_eq!(run(&mut store, &["HSCAN", "h", "0", "COUNT"]), Reply::error("ERR syntax error"));
    assert_eq!(
        run(&mut store, &["HSCAN", "missing", "0", "COUNT", "x"]),
        array(vec![bulk("0"), array(vec![])]),
        "a missing key answers before the options are read, as in Redis"
    );
}

/// The packed form against a plain map under random sets and deletes:
/// the same fields, values and order after every step, the packed form
/// until Redis would convert (129 fields, or a field or value over 64
/// bytes), the tree from then on, whatever is deleted later.
#[test]
fn the_packed_form_agrees_with_a_map_and_turns_into_a_tree_where_redis_converts() {
    use crate::raft::SplitMix64;
    use std::collections::BTreeMap;
    let mut rng = SplitMix64::new(7);
    for round in 0..40 {
        let mut hash = hash::Hash::default();
        let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        let mut converted = false;
        let long_values = round % 4 == 0;
        for _ in 0..600 {
            let field = format!("f{}", rng.range(0, 160)).into_bytes();
            if rng.range(0, 3) == 0 {
                assert_eq!(hash.remove(&field), model.remove(&field).is_some());
            } else {
                let length =
                    if long_values && rng.range(0, 50) == 0 { 65 } else { rng.range(0, 12) as usize };
                let value = vec![b'a' + rng.range(0, 26) as u8; length];
                converted |= length > 64;
                assert_eq!(hash.insert(&field, &value), model.insert(field.clone(), value).is_none());
            }
            converted |= model.len() > 128;
            assert_eq!(hash.len(), model.len());
            assert!(hash.iter().eq(model.iter().map(|(f, v)| (f.as_slice(), v.as_slice()))));
            assert_eq!(hash.get(&field), model.get(&field).map(Vec::as_slice));
            assert_eq!(hash.encoding(), if converted { "hashtable" } else { "listpack" });
            if let Some(bytes) = hash.packed_bytes() {
                let expected: usize = model.iter().map(|(f, v)| f.len() + v.len() + 2).sum();
                assert_eq!(bytes, expected, "two bytes of overhead a pair");
            }
        }
    }
}
