//! Sets: the edge cases of Redis 7.0's `tests/unit/type/set.tcl` and what
//! is cashe's own (the chunked representation, the encoding names, random
//! picks from `Store::random`, SSCAN's cursor, WATCH, snapshots).
//! `tests/redis_diff/set.rs` checks the replies against a real server.

use super::*;
use crate::kv::tests::{bulk, cmd, int, T0};
use crate::kv::WRONG_TYPE;
use crate::kv::{Store, Value};
use std::collections::BTreeSet as Model;

/// A command at `T0`, with the store's and every set's invariants checked.
fn run(store: &mut Store, words: &[&str]) -> Reply {
    run_at(store, T0, words)
}

fn run_at(store: &mut Store, now: u64, words: &[&str]) -> Reply {
    let reply = crate::kv::tests::run(store, now, words);
    for entry in store.entries.values() {
        if let Value::Set(set) = &entry.value {
            set.check_invariants();
        }
    }
    reply
}

fn array(items: Vec<Reply>) -> Reply {
    Reply::Array(Some(items))
}

fn set_of(items: &[&str]) -> Reply {
    Reply::Set(items.iter().map(|item| bulk(item)).collect())
}

fn wrong_type() -> Reply {
    Reply::error(WRONG_TYPE)
}

fn stored(store: &Store, key: &str) -> Set {
    match store.entries.get(key.as_bytes()).map(|entry| &entry.value) {
        Some(Value::Set(set)) => (**set).clone(),
        other => panic!("{key} holds {other:?}"),
    }
}

fn encoding(store: &Store, key: &str) -> &'static str {
    stored(store, key).encoding()
}

/// The members of a reply (a set or an array of bulk strings), in order.
fn members(reply: &Reply) -> Vec<Vec<u8>> {
    let (Reply::Set(items) | Reply::Array(Some(items))) = reply else {
        panic!("not a collection: {reply:?}");
    };
    items
        .iter()
        .map(|item| match item {
            Reply::Bulk(Some(bytes)) => bytes.clone(),
            other => panic!("not a member: {other:?}"),
        })
        .collect()
}

fn numbers(range: std::ops::Range<i64>) -> Vec<String> {
    range.map(|n| n.to_string()).collect()
}

fn sadd(store: &mut Store, key: &str, members: &[String]) -> Reply {
    let mut words = vec!["SADD", key];
    words.extend(members.iter().map(String::as_str));
    run(store, &words)
}

#[test]
fn sadd_counts_new_members_and_srem_deletes_the_key_with_the_last() {
    let mut store = Store::default();
    assert_eq!(run(&mut store, &["SADD", "s", "a", "b", "a"]), int(2));
    assert_eq!(run(&mut store, &["SADD", "s", "b", "c"]), int(1));
    assert_eq!(run(&mut store, &["SCARD", "s"]), int(3));
    assert_eq!(run(&mut store, &["SMEMBERS", "s"]), set_of(&["a", "b", "c"]));
    assert_eq!(run(&mut store, &["SREM", "s", "a", "x", "a"]), int(1));
    assert_eq!(run(&mut store, &["SREM", "s", "b", "c", "d"]), int(2));
    assert_eq!(run(&mut store, &["EXISTS", "s"]), int(0), "the last SREM deleted the key");
    assert_eq!(run(&mut store, &["SREM", "s", "a"]), int(0));
    assert_eq!(run(&mut store, &["SCARD", "s"]), int(0));
}

#[test]
fn reads_of_a_missing_key_answer_empty_zero_or_nil() {
    let mut store = Store::default();
    assert_eq!(run(&mut store, &["SMEMBERS", "none"]), Reply::Set(vec![]), "RESP3: an empty set");
    assert_eq!(run(&mut store, &["SISMEMBER", "none", "a"]), int(0));
    assert_eq!(run(&mut store, &["SMISMEMBER", "none", "a", "b"]), array(vec![int(0), int(0)]));
    assert_eq!(run(&mut store, &["SRANDMEMBER", "none"]), Reply::nil());
    assert_eq!(run(&mut store, &["SRANDMEMBER", "none", "3"]), array(vec![]), "an array, not a set");
    assert_eq!(run(&mut store, &["SPOP", "none"]), Reply::nil());
    assert_eq!(run(&mut store, &["SPOP", "none", "3"]), Reply::Set(vec![]));
    assert_eq!(run(&mut store, &["SINTER", "none", "none2"]), Reply::Set(vec![]));
    assert_eq!(run(&mut store, &["SUNION", "none"]), Reply::Set(vec![]));
    assert_eq!(run(&mut store, &["SDIFF", "none"]), Reply::Set(vec![]));
    assert_eq!(run(&mut store, &["SINTERCARD", "1", "none"]), int(0));
    assert_eq!(run(&mut store, &["SSCAN", "none", "0", "COUNT", "x"]), array(vec![bulk("0"), array(vec![])]));
    assert_eq!(run(&mut store, &["SMOVE", "none", "d", "a"]), int(0));
    assert_eq!(store.stored_keys(), 0);
}

#[test]
fn smismember_answers_each_member_in_order() {
    let mut store = Store::default();
    run(&mut store, &["SADD", "s", "a", "b", "1"]);
    assert_eq!(
        run(&mut store, &["SMISMEMBER", "s", "b", "x", "1", "a"]),
        array(vec![int(1), int(0), int(1), int(1)])
    );
    assert_eq!(run(&mut store, &["SISMEMBER", "s", "01"]), int(0), "members are bytes, not numbers");
}

#[test]
fn every_set_command_on_another_type_is_wrongtype_and_changes_nothing() {
    let mut store = Store::default();
    run(&mut store, &["SET", "str", "v"]);
    run(&mut store, &["SADD", "s", "a"]);
    let commands: [&[&str]; 20] = [
        &["SADD", "str", "a"],
        &["SREM", "str", "a"],
        &["SISMEMBER", "str", "a"],
        &["SMISMEMBER", "str", "a"],
        &["SMEMBERS", "str"],
        &["SCARD", "str"],
        &["SPOP", "str"],
        &["SPOP", "str", "0"],
        &["SRANDMEMBER", "str"],
        &["SRANDMEMBER", "str", "-3"],
        &["SINTER", "none", "str"],
        &["SINTERCARD", "2", "none", "str"],
        &["SUNION", "s", "str"],
        &["SDIFF", "none", "str"],
        &["SINTERSTORE", "s", "none", "str"],
        &["SUNIONSTORE", "s", "str"],
        &["SDIFFSTORE", "s", "s", "str"],
        &["SSCAN", "str", "0"],
        &["SMOVE", "str", "s", "a"],
        &["SMOVE", "s", "str", "a"],
    ];
    for command in commands {
        assert_eq!(run(&mut store, command), wrong_type(), "{command:?}");
    }
    assert_eq!(run(&mut store, &["GET", "str"]), bulk("v"));
    assert_eq!(run(&mut store, &["SMEMBERS", "s"]), set_of(&["a"]));
    assert_eq!(run(&mut store, &["GET", "s"]), wrong_type());
    assert_eq!(run(&mut store, &["HGET", "s", "a"]), wrong_type());
    assert_eq!(run(&mut store, &["TYPE", "s"]), Reply::Simple("set".into()));
}

#[test]
fn a_set_is_an_intset_while_all_its_members_are_integers_and_at_most_512() {
    let mut store = Store::default();
    sadd(&mut store, "s", &numbers(0..512));
    assert_eq!(encoding(&store, "s"), "intset");
    sadd(&mut store, "s", &numbers(0..10));
    assert_eq!(encoding(&store, "s"), "intset", "nothing new added");
    sadd(&mut store, "s", &numbers(512..513));
    assert_eq!(encoding(&store, "s"), "hashtable", "the 513th member");
    sadd(&mut store, "t", &["9223372036854775807".into(), "-9223372036854775808".into()]);
    assert_eq!(encoding(&store, "t"), "intset");
    for not_an_integer in ["9223372036854775808", "-0", "01", "+1", " 1", "1.0", "", "a"] {
        let key = format!("u{not_an_integer}");
        run(&mut store, &["SADD", &key, "1", "2"]);
        assert_eq!(encoding(&store, &key), "intset");
        run(&mut store, &["SADD", &key, not_an_integer]);
        assert_eq!(encoding(&store, &key), "hashtable", "{not_an_integer:?}");
    }
}

#[test]
fn the_hashtable_encoding_is_for_good_but_a_stored_result_starts_afresh() {
    let mut store = Store::default();
    run(&mut store, &["SADD", "s", "1", "2", "a"]);
    assert_eq!(encoding(&store, "s"), "hashtable");
    run(&mut store, &["SREM", "s", "a"]);
    assert_eq!(encoding(&store, "s"), "hashtable", "removing the non-integer converts nothing back");
    run(&mut store, &["SUNIONSTORE", "d", "s"]);
    assert_eq!(encoding(&store, "d"), "intset");
    run(&mut store, &["SMOVE", "s", "m", "1"]);
    assert_eq!(encoding(&store, "m"), "intset", "SMOVE creates the destination for its member");
    run(&mut store, &["SMOVE", "s", "n", "x"]);
    assert_eq!(run(&mut store, &["EXISTS", "n"]), int(0), "nothing to move");
    sadd(&mut store, "big", &numbers(0..600));
    run(&mut store, &["SINTERSTORE", "small", "big", "d"]);
    assert_eq!(encoding(&store, "small"), "intset");
    assert_eq!(run(&mut store, &["SMEMBERS", "small"]), set_of(&["1", "2"]));
}

#[test]
fn a_spop_that_keeps_little_rebuilds_the_set_as_redis_does() {
    let mut store = Store::default();
    run(&mut store, &["SADD", "s", "1", "2", "3", "4", "5", "6", "7", "8", "9", "a"]);
    run(&mut store, &["SREM", "s", "a"]);
    assert_eq!(encoding(&store, "s"), "hashtable");
    run(&mut store, &["SPOP", "s", "1"]);
    assert_eq!(encoding(&store, "s"), "hashtable", "8 left, 8 * 5 > 1: members popped one by one");
    run(&mut store, &["SPOP", "s", "7"]);
    assert_eq!(encoding(&store, "s"), "intset", "1 left, 1 * 5 <= 7: a new set of what stays");
    assert_eq!(run(&mut store, &["SCARD", "s"]), int(1));
}

#[test]
fn spop_removes_what_it_answers_and_deletes_the_emptied_key() {
    let mut store = Store::default();
    sadd(&mut store, "s", &numbers(0..20));
    let mut left: Model<Vec<u8>> = numbers(0..20).into_iter().map(String::into_bytes).collect();
    let Reply::Bulk(Some(one)) = run(&mut store, &["SPOP", "s"]) else { panic!("a member") };
    assert!(left.remove(&one));
    for count in ["3", "10"] {
        let popped = run(&mut store, &["SPOP", "s", count]);
        assert!(matches!(popped, Reply::Set(_)), "SPOP with a count answers a set");
        let popped = members(&popped);
        assert_eq!(popped.len(), count.parse::<usize>().unwrap());
        for member in popped {
            assert!(left.remove(&member), "{member:?} popped once, from the set");
        }
        assert_eq!(members(&run(&mut store, &["SMEMBERS", "s"])), left.iter().cloned().collect::<Vec<_>>());
    }
    assert_eq!(run(&mut store, &["SPOP", "s", "0"]), Reply::Set(vec![]));
    assert_eq!(members(&run(&mut store, &["SPOP", "s", "100"])), left.into_iter().collect::<Vec<_>>());
    assert_eq!(run(&mut store, &["EXISTS", "s"]), int(0));
    run(&mut store, &["SADD", "t", "only"]);
    assert_eq!(run(&mut store, &["SPOP", "t"]), bulk("only"));
    assert_eq!(run(&mut store, &["EXISTS", "t"]), int(0));
}

#[test]
fn spop_and_srandmember_check_their_arguments_before_the_key() {
    let mut store = Store::default();
    run(&mut store, &["SET", "str", "v"]);
    let not_positive = Reply::error("ERR value is out of range, must be positive");
    for key in ["none", "str"] {
        assert_eq!(run(&mut store, &["SPOP", key, "-1"]), not_positive);
        assert_eq!(run(&mut store, &["SPOP", key, "abc"]), not_positive);
        assert_eq!(run(&mut store, &["SPOP", key, "9223372036854775808"]), not_positive);
        assert_eq!(run(&mut store, &["SPOP", key, "1", "2"]), Reply::error("ERR syntax error"));
        assert_eq!(run(&mut store, &["SRANDMEMBER", key, "1", "2"]), Reply::error("ERR syntax error"));
        assert_eq!(
            run(&mut store, &["SRANDMEMBER", key, "1.5"]),
            Reply::error("ERR value is not an integer or out of range")
        );
        assert_eq!(
            run(&mut store, &["SRANDMEMBER", key, "-9223372036854775808"]),
            Reply::error(
                "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807"
            )
        );
    }
}

#[test]
fn srandmember_distinct_or_repeated_picks_all_from_the_set() {
    let mut store = Store::default();
    sadd(&mut store, "s", &numbers(0..10));
    let all: Model<Vec<u8>> = numbers(0..10).into_iter().map(String::into_bytes).collect();
    let before = store.clone();
    for count in [1, 3, 9] {
        let picks = members(&run(&mut store, &["SRANDMEMBER", "s", &count.to_string()]));
        let distinct: Model<Vec<u8>> = picks.iter().cloned().collect();
        assert_eq!((picks.len(), distinct.len()), (count, count));
        assert!(distinct.is_subset(&all));
    }
    assert_eq!(members(&run(&mut store, &["SRANDMEMBER", "s", "10"])).len(), 10);
    assert_eq!(members(&run(&mut store, &["SRANDMEMBER", "s", "9223372036854775807"])).len(), 10);
    let repeats = members(&run(&mut store, &["SRANDMEMBER", "s", "-100"]));
    assert_eq!(repeats.len(), 100);
    assert!(repeats.iter().all(|member| all.contains(member)));
    assert!(repeats.iter().collect::<Model<_>>().len() < 100, "members repeat");
    assert_eq!(run(&mut store, &["SRANDMEMBER", "s", "0"]), array(vec![]));
    let Reply::Bulk(Some(one)) = run(&mut store, &["SRANDMEMBER", "s"]) else { panic!("a member") };
    assert!(all.contains(&one));
    assert_eq!(store.entries, before.entries, "SRANDMEMBER changes nothing");
}

#[test]
fn srandmember_with_a_huge_negative_count_is_refused_not_built() {
    let mut store = Store::default();
    run(&mut store, &["SADD", "s", "x"]);
    let too_large = Reply::error(RANDOM_REPLY_TOO_LARGE);
    assert!(RANDOM_REPLY_TOO_LARGE.contains(&RANDOM_REPLY_BYTES_MAX.to_string()));
    assert_eq!(run(&mut store, &["SRANDMEMBER", "s", "-9223372036854775807"]), too_large);
    let most = RANDOM_REPLY_BYTES_MAX / RANDOM_MEMBER_COST_BYTES;
    assert_eq!(run(&mut store, &["SRANDMEMBER", "s", &format!("-{}", most + 1)]), too_large);
    // Long members reach the limit sooner: counted as they are drawn.
    let long = "m".repeat(1 << 20);
    run(&mut store, &["SADD", "long", &long]);
    assert_eq!(run(&mut store, &["SRANDMEMBER", "long", "-600"]), too_large);
    assert_eq!(members(&run(&mut store, &["SRANDMEMBER", "long", "-3"])).len(), 3);
}

#[test]
fn random_picks_are_the_same_for_the_same_time_and_version() {
    let mut store = Store::default();
    sadd(&mut store, "s", &numbers(0..1000));
    let (mut a, mut b) = (store.clone(), store.clone());
    for now in [T0, T0 + 1, T0 + 7] {
        for command in
            [&["SPOP", "s", "5"][..], &["SPOP", "s"], &["SRANDMEMBER", "s", "-4"], &["SRANDMEMBER", "s", "3"]]
        {
            assert_eq!(run_at(&mut a, now, command), run_at(&mut b, now, command), "{command:?}");
        }
    }
    assert_eq!(a, b);
    let picks: Model<Reply> =
        (0..10).map(|i| run_at(&mut store.clone(), T0 + i, &["SRANDMEMBER", "s", "5"])).collect();
    assert!(picks.len() > 5, "other times draw other members");
}

#[test]
fn spop_draws_from_the_store_random_so_a_replica_salt_pops_other_members() {
    let mut store = Store::default();
    sadd(&mut store, "s", &numbers(0..1000));
    let (mut honest, mut salted) = (store.clone(), store);
    salted.plant_replica_random(0x5eed);
    let pops = |store: &mut Store| (run(store, &["SPOP", "s"]), run(store, &["SPOP", "s", "5"]));
    assert_ne!(pops(&mut honest), pops(&mut salted), "the planted spop-local-random shows in SPOP");
    assert_ne!(honest, salted, "and the replicas' sets diverge");
}

#[test]
fn smove_checks_the_source_first_and_moves_one_member() {
    let mut store = Store::default();
    run(&mut store, &["SET", "str", "v"]);
    run(&mut store, &["SADD", "src", "a", "b"]);
    run(&mut store, &["SADD", "dst", "b", "c"]);
    assert_eq!(run(&mut store, &["SMOVE", "none", "str", "a"]), int(0), "an absent source answers first");
    assert_eq!(run(&mut store, &["SMOVE", "src", "str", "x"]), wrong_type(), "even if the member is absent");
    assert_eq!(run(&mut store, &["SMOVE", "src", "src", "a"]), int(1));
    assert_eq!(run(&mut store, &["SMOVE", "src", "src", "x"]), int(0));
    assert_eq!(run(&mut store, &["SMOVE", "src", "dst", "x"]), int(0));
    assert_eq!(run(&mut store, &["SMOVE", "src", "dst", "a"]), int(1));
    assert_eq!(run(&mut store, &["SMEMBERS", "dst"]), set_of(&["a", "b", "c"]));
    assert_eq!(run(&mut store, &["SMOVE", "src", "dst", "b"]), int(1), "already in the destination");
    assert_eq!(run(&mut store, &["EXISTS", "src"]), int(0), "the emptied source is deleted");
    assert_eq!(run(&mut store, &["SMOVE", "dst", "new", "c"]), int(1));
    assert_eq!(run(&mut store, &["SMEMBERS", "new"]), set_of(&["c"]));
    assert_eq!(run(&mut store, &["SMEMBERS", "dst"]), set_of(&["a", "b"]));
}

#[test]
fn set_algebra_treats_a_missing_key_as_empty() {
    let mut store = Store::default();
    run(&mut store, &["SADD", "a", "1", "2", "3", "x"]);
    run(&mut store, &["SADD", "b", "2", "3", "4"]);
    run(&mut store, &["SADD", "c", "3", "x", "5"]);
    assert_eq!(run(&mut store, &["SINTER", "a", "b", "c"]), set_of(&["3"]));
    assert_eq!(run(&mut store, &["SINTER", "a", "a"]), set_of(&["1", "2", "3", "x"]));
    assert_eq!(run(&mut store, &["SINTER", "a", "none"]), Reply::Set(vec![]));
    assert_eq!(run(&mut store, &["SUNION", "a", "none", "c"]), set_of(&["1", "2", "3", "5", "x"]));
    assert_eq!(run(&mut store, &["SDIFF", "a", "b", "none"]), set_of(&["1", "x"]));
    assert_eq!(run(&mut store, &["SDIFF", "a", "a"]), Reply::Set(vec![]));
    assert_eq!(run(&mut store, &["SDIFF", "none", "a"]), Reply::Set(vec![]));
    assert_eq!(run(&mut store, &["SINTERCARD", "3", "a", "b", "c"]), int(1));
    assert_eq!(run(&mut store, &["SINTERCARD", "1", "a", "LIMIT", "2"]), int(2));
    assert_eq!(run(&mut store, &["SINTERCARD", "1", "a", "limit", "0"]), int(4), "LIMIT 0 is no limit");
    assert_eq!(
        run(&mut store, &["SINTERCARD", "1", "a", "LIMIT", "1", "LIMIT", "3"]),
        int(3),
        "the last wins"
    );
}

#[test]
fn sintercard_checks_numkeys_then_options_then_types() {
    let mut store = Store::default();
    run(&mut store, &["SET", "str", "v"]);
    let numkeys = Reply::error("ERR numkeys should be greater than 0");
    for bad in ["0", "-1", "abc", "9223372036854775808", ""] {
        assert_eq!(run(&mut store, &["SINTERCARD", bad, "str"]), numkeys, "{bad:?}");
    }
    assert_eq!(
        run(&mut store, &["SINTERCARD", "2", "str"]),
        Reply::error("ERR Number of keys can't be greater than number of args")
    );
    let negative = Reply::error("ERR LIMIT can't be negative");
    assert_eq!(run(&mut store, &["SINTERCARD", "1", "str", "LIMIT", "-1"]), negative);
    assert_eq!(run(&mut store, &["SINTERCARD", "1", "str", "LIMIT", "x"]), negative);
    assert_eq!(run(&mut store, &["SINTERCARD", "1", "str", "LIMIT"]), Reply::error("ERR syntax error"));
    assert_eq!(run(&mut store, &["SINTERCARD", "1", "str", "foo", "1"]), Reply::error("ERR syntax error"));
    assert_eq!(run(&mut store, &["SINTERCARD", "1", "str", "LIMIT", "1"]), wrong_type());
}

#[test]
fn a_store_overwrites_any_destination_and_an_empty_result_deletes_it() {
    let mut store = Store::default();
    run(&mut store, &["SADD", "a", "1", "2"]);
    run(&mut store, &["SADD", "b", "2", "3"]);
    run(&mut store, &["SET", "dest", "string"]);
    run(&mut store, &["PEXPIRE", "dest", "5000"]);
    assert_eq!(run(&mut store, &["SUNIONSTORE", "dest", "a", "b"]), int(3));
    assert_eq!(run(&mut store, &["TYPE", "dest"]), Reply::Simple("set".into()));
    assert_eq!(run(&mut store, &["PTTL", "dest"]), int(-1), "the TTL goes with the old value");
    assert_eq!(run(&mut store, &["SINTERSTORE", "dest", "a", "b"]), int(1));
    assert_eq!(run(&mut store, &["SMEMBERS", "dest"]), set_of(&["2"]));
    assert_eq!(run(&mut store, &["SDIFFSTORE", "a", "a", "b"]), int(1), "a source may be the destination");
    assert_eq!(run(&mut store, &["SMEMBERS", "a"]), set_of(&["1"]));
    assert_eq!(run(&mut store, &["SINTERSTORE", "dest", "a", "b"]), int(0));
    assert_eq!(run(&mut store, &["EXISTS", "dest"]), int(0), "an empty result deletes the destination");
    run(&mut store, &["SET", "dest", "string"]);
    assert_eq!(run(&mut store, &["SDIFFSTORE", "dest", "none"]), int(0));
    assert_eq!(run(&mut store, &["EXISTS", "dest"]), int(0), "of any type");
    assert_eq!(run(&mut store, &["SINTERSTORE", "dest", "a", "str"]), int(0));
}

#[test]
fn an_expired_set_is_absent_and_a_write_starts_a_new_one() {
    let mut store = Store::default();
    run(&mut store, &["SADD", "s", "a", "b"]);
    run(&mut store, &["PEXPIRE", "s", "10"]);
    let later = T0 + 11;
    assert_eq!(run_at(&mut store, later, &["SCARD", "s"]), int(0));
    assert_eq!(run_at(&mut store, later, &["SMOVE", "s", "d", "a"]), int(0));
    assert_eq!(run_at(&mut store, later, &["SADD", "s", "c"]), int(1));
    assert_eq!(run_at(&mut store, later, &["SMEMBERS", "s"]), set_of(&["c"]));
    assert_eq!(run_at(&mut store, later, &["PTTL", "s"]), int(-1));
}

#[test]
fn watch_sees_set_changes_and_not_failed_or_empty_ones() {
    let mut store = Store::default();
    run(&mut store, &["SADD", "s", "a", "b"]);
    run(&mut store, &["SADD", "d", "a"]);
    let touched_by = |key: &str, command: &[&str]| {
        let mut store = store.clone();
        let watch = store.watch(key.as_bytes(), T0);
        run(&mut store, command);
        store.touched(&watch, T0)
    };
    assert!(touched_by("s", &["SADD", "s", "c"]));
    assert!(!touched_by("s", &["SADD", "s", "a", "b"]), "nothing added");
    assert!(touched_by("s", &["SREM", "s", "a"]));
    assert!(!touched_by("s", &["SREM", "s", "x"]), "nothing removed");
    assert!(touched_by("s", &["SPOP", "s"]));
    assert!(!touched_by("s", &["SPOP", "s", "0"]));
    assert!(touched_by("s", &["SMOVE", "s", "d", "a"]), "the source");
    assert!(!touched_by("d", &["SMOVE", "s", "d", "a"]), "a destination that had the member");
    assert!(touched_by("d", &["SMOVE", "s", "d", "b"]));
    assert!(touched_by("d", &["SUNIONSTORE", "d", "d"]), "a store, even of the same members");
    assert!(!touched_by("x", &["SINTERSTORE", "x", "none"]), "an empty result, no destination");
    assert!(!touched_by("s", &["SRANDMEMBER", "s", "2"]), "a read");
}

#[test]
fn sets_survive_a_snapshot_round_trip() {
    let mut store = Store::default();
    run(&mut store, &["SADD", "ints", "3", "-1", "7"]);
    run(&mut store, &["SADD", "text", "b", "", "\u{1}", &"long".repeat(20)]);
    sadd(&mut store, "big", &numbers(0..2000));
    run(&mut store, &["PEXPIRE", "text", "5000"]);
    let bytes = store.snapshot();
    let restored = Store::restore(&bytes).expect("restores");
    restored.check_invariants();
    assert_eq!(restored, store);
    assert_eq!(restored.snapshot(), bytes);
    assert_eq!(encoding(&restored, "ints"), "intset");
    assert_eq!(encoding(&restored, "text"), "hashtable");
    assert_eq!(encoding(&restored, "big"), "hashtable");
    assert_eq!(restored.read(&cmd(&["SCARD", "big"]), T0), int(2000));
    assert_eq!(restored.read(&cmd(&["PTTL", "text"]), T0), int(5000));
}

/// One SSCAN iteration of `key` from cursor 0 with `count`, running
/// `between` after each call; every member seen.
fn sscan_all(store: &mut Store, count: usize, between: &mut dyn FnMut(&mut Store, usize)) -> Model<Vec<u8>> {
    let mut seen = Model::new();
    let mut cursor = "0".to_string();
    for round in 0.. {
        let reply = run(store, &["SSCAN", "s", &cursor, "COUNT", &count.to_string()]);
        let Reply::Array(Some(parts)) = reply else { panic!("SSCAN answers an array") };
        let Reply::Bulk(Some(next)) = &parts[0] else { panic!("a cursor") };
        seen.extend(members(&parts[1]));
        between(store, round);
        cursor = String::from_utf8(next.clone()).expect("a number");
        if cursor == "0" {
            return seen;
        }
        assert!(round < 10_000, "SSCAN ends");
    }
    unreachable!()
}

#[test]
fn sscan_returns_every_member_present_throughout_despite_changes() {
    let mut store = Store::default();
    sadd(&mut store, "s", &(0..3000).map(|i| format!("member:{i:04}")).collect::<Vec<_>>());
    // Members sharing their first 8 bytes come in the same call.
    sadd(&mut store, "s", &(0..30).map(|i| format!("zzzzzzzz{i}")).collect::<Vec<_>>());
    let all = sscan_all(&mut store.clone(), 7, &mut |_, _| {});
    assert_eq!(all.len(), 3030);
    let churn = &mut |store: &mut Store, round: usize| {
        run(
            store,
            &["SREM", "s", &format!("member:{:04}", round * 3), &format!("member:{:04}", 2999 - round)],
        );
        run(store, &["SADD", "s", &format!("new:{round}"), &format!("aaa{round}")]);
    };
    let seen = sscan_all(&mut store, 10, churn);
    for i in 1000..2000 {
        assert!(seen.contains(format!("member:{i:04}").as_bytes()), "{i} was present throughout");
    }
    assert!((0..30).all(|i| seen.contains(format!("zzzzzzzz{i}").as_bytes())));
}

#[test]
fn sscan_matches_members_and_checks_its_options_like_scan() {
    let mut store = Store::default();
    run(&mut store, &["SADD", "s", "a1", "b1", "a2"]);
    assert_eq!(
        run(&mut store, &["SSCAN", "s", "0", "MATCH", "a*"]),
        array(vec![bulk("0"), array(vec![bulk("a1"), bulk("a2")])])
    );
    assert_eq!(run(&mut store, &["SSCAN", "s", "x"]), Reply::error("ERR invalid cursor"));
    assert_eq!(run(&mut store, &["SSCAN", "s", "0", "COUNT", "0"]), Reply::error("ERR syntax error"));
    assert_eq!(run(&mut store, &["SSCAN", "s", "0", "TYPE", "set"]), Reply::error("ERR syntax error"));
    assert_eq!(
        run(&mut store, &["SSCAN", "s", "0", "COUNT", "x"]),
        Reply::error("ERR value is not an integer or out of range")
    );
}

#[test]
fn chunks_split_merge_and_stay_sorted_against_a_model() {
    let mut rng = SplitMix64::new(14);
    let mut set = Set::default();
    let mut model = Model::new();
    for step in 0..40_000 {
        let member = format!("{:x}", rng.range(0, 6000)).into_bytes();
        // Fill first, then mostly remove, so chunks split and then merge.
        let adding = if step < 20_000 { rng.range(0, 10) < 8 } else { rng.range(0, 10) < 3 };
        if adding {
            assert_eq!(set.insert(&member), model.insert(member.clone()));
        } else {
            assert_eq!(set.remove(&member), model.remove(&member));
        }
        if step % 997 == 0 {
            set.check_invariants();
            assert!(set.iter().eq(model.iter().map(Vec::as_slice)));
        }
    }
    set.check_invariants();
    assert_eq!(set.len(), model.len());
    let ranks: Vec<usize> = (0..set.len()).step_by(37).collect();
    let expected: Vec<&[u8]> = model.iter().map(Vec::as_slice).step_by(37).collect();
    assert_eq!(set.members_at(&ranks), expected);
    for member in &model {
        assert!(set.contains(member));
    }
}

#[test]
fn distinct_ranks_are_distinct_increasing_and_cover_both_halves() {
    let mut rng = SplitMix64::new(3);
    for (len, count) in [(10, 0), (10, 3), (10, 7), (10, 10), (1, 1), (1000, 999)] {
        let ranks = distinct_ranks(&mut rng, len, count);
        assert_eq!(ranks.len(), count);
        assert!(ranks.windows(2).all(|pair| pair[0] < pair[1]));
        assert!(ranks.iter().all(|rank| *rank < len));
    }
}

#[test]
fn a_million_short_members_cost_under_twice_redis() {
    // Redis's hash table: a 24-byte dictEntry, the member's sds (16 to 32
    // bytes) and 8 to 16 bytes of bucket array: 50 to 60 bytes a member.
    const REDIS_BYTES_PER_MEMBER: usize = 50;
    let mut rng = SplitMix64::new(1);
    let mut set = Set::default();
    while set.len() < 1_000_000 {
        set.insert(format!("member:{}", rng.range(0, 1 << 40)).as_bytes());
    }
    set.check_invariants();
    let chunk_bytes: usize = set.chunks.iter().map(|chunk| chunk.capacity() * 24 + 24).sum();
    let per_member = chunk_bytes / set.len();
    assert!(per_member < 2 * REDIS_BYTES_PER_MEMBER, "{per_member} bytes a member");
    assert!(per_member <= 36, "{per_member} bytes a member");
}
