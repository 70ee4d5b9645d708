//! Sorted set rules (from Redis 7.0's tests/unit/type/zset.tcl, and the
//! representation's own); `tests/redis_diff/zset.rs` compares replies with
//! a real redis-server byte for byte.

use super::super::tests::{bulk, cmd, int, T0};
use super::*;
use crate::raft::SplitMix64;

/// `tests::run`, then every sorted set's own invariants (`ZSet::check`).
fn run(store: &mut Store, now: u64, words: &[&str]) -> Reply {
    let reply = super::super::tests::run(store, now, words);
    for entry in store.entries.values() {
        if let Value::ZSet(zset) = &entry.value {
            zset.check();
        }
    }
    reply
}

fn array(items: &[&str]) -> Reply {
    Reply::Array(Some(items.iter().map(|item| bulk(item)).collect()))
}

fn pairs(items: &[(&str, &str)]) -> Reply {
    Reply::Pairs(
        items.iter().map(|(member, score)| (bulk(member), Reply::Double(score.to_string()))).collect(),
    )
}

fn error(text: &str) -> Reply {
    Reply::error(text)
}

fn zset_at<'a>(store: &'a Store, key: &str) -> &'a ZSet {
    match store.live(key.as_bytes(), T0).map(|entry| &entry.value) {
        Some(Value::ZSet(zset)) => zset,
        other => panic!("{key} is {other:?}"),
    }
}

#[test]
fn zadd_options_and_their_conflicts() {
    let mut s = Store::default();
    assert_eq!(run(&mut s, T0, &["ZADD", "z", "1", "a", "2", "b"]), int(2));
    assert_eq!(run(&mut s, T0, &["ZADD", "z", "NX", "5", "a", "3", "c"]), int(1));
    assert_eq!(run(&mut s, T0, &["ZSCORE", "z", "a"]), Reply::Double("1".into()));
    assert_eq!(run(&mut s, T0, &["ZADD", "z", "XX", "CH", "5", "a", "9", "nope"]), int(1));
    assert_eq!(run(&mut s, T0, &["ZADD", "z", "GT", "CH", "4", "a", "3", "b"]), int(1));
    assert_eq!(run(&mut s, T0, &["ZADD", "z", "LT", "4", "a"]), int(0));
    assert_eq!(run(&mut s, T0, &["ZSCORE", "z", "a"]), Reply::Double("4".into()));
    assert_eq!(run(&mut s, T0, &["ZADD", "z", "XX", "1", "nope"]), int(0));
    assert_eq!(run(&mut s, T0, &["ZADD", "absent", "XX", "1", "a"]), int(0));
    assert_eq!(run(&mut s, T0, &["EXISTS", "absent"]), int(0));
    assert_eq!(
        run(&mut s, T0, &["ZADD", "z", "NX", "XX", "1", "a"]),
        error("ERR XX and NX options at the same time are not compatible")
    );
    for options in [["GT", "LT"], ["NX", "GT"], ["LT", "NX"]] {
        let mut words = vec!["ZADD", "z"];
        words.extend(options);
        words.extend(["1", "a"]);
        assert_eq!(
            run(&mut s, T0, &words),
            error("ERR GT, LT, and/or NX options at the same time are not compatible")
        );
    }
    assert_eq!(
        run(&mut s, T0, &["ZADD", "z", "INCR", "1", "a", "2", "b"]),
        error("ERR INCR option supports a single increment-element pair")
    );
    assert_eq!(run(&mut s, T0, &["ZADD", "z", "1", "a", "2"]), error("ERR syntax error"));
    assert_eq!(run(&mut s, T0, &["ZADD", "z", "CH", "a"]), error("ERR syntax error"));
    // Scores are all parsed before anything is added.
    assert_eq!(
        run(&mut s, T0, &["ZADD", "z", "1", "x", "nan", "y"]),
        error("ERR value is not a valid float")
    );
    assert_eq!(run(&mut s, T0, &["ZSCORE", "z", "x"]), Reply::Null);
}

#[test]
fn zadd_incr_and_zincrby_answer_the_new_score_or_nil() {
    let mut s = Store::default();
    assert_eq!(run(&mut s, T0, &["ZADD", "z", "INCR", "1.5", "a"]), Reply::Double("1.5".into()));
    assert_eq!(run(&mut s, T0, &["ZINCRBY", "z", "0.1", "a"]), Reply::Double("1.6000000000000001".into()));
    assert_eq!(run(&mut s, T0, &["ZADD", "z", "NX", "INCR", "1", "a"]), Reply::Null);
    assert_eq!(run(&mut s, T0, &["ZADD", "z", "XX", "INCR", "1", "b"]), Reply::Null);
    assert_eq!(run(&mut s, T0, &["ZADD", "z", "GT", "INCR", "-1", "a"]), Reply::Null);
    assert_eq!(run(&mut s, T0, &["ZINCRBY", "z", "inf", "a"]), Reply::Double("inf".into()));
    assert_eq!(
        run(&mut s, T0, &["ZINCRBY", "z", "-inf", "a"]),
        error("ERR resulting score is not a number (NaN)")
    );
    assert_eq!(run(&mut s, T0, &["ZSCORE", "z", "a"]), Reply::Double("inf".into()));
    // ZINCRBY's increment goes through ZADD's option parsing, as in Redis.
    assert_eq!(run(&mut s, T0, &["ZINCRBY", "z", "nx", "a"]), error("ERR syntax error"));
}

#[test]
fn the_small_form_stores_minus_zero_as_zero_the_large_keeps_it_on_equal_updates() {
    let mut s = Store::default();
    assert_eq!(run(&mut s, T0, &["ZADD", "z", "INCR", "-0", "a"]), Reply::Double("-0".into()));
    assert_eq!(run(&mut s, T0, &["ZSCORE", "z", "a"]), Reply::Double("0".into()));
    run(&mut s, T0, &["ZADD", "z", "1", &"L".repeat(65)]);
    run(&mut s, T0, &["ZADD", "z", "-0", "b"]);
    assert_eq!(run(&mut s, T0, &["ZADD", "z", "CH", "0", "b"]), int(0));
    assert_eq!(run(&mut s, T0, &["ZSCORE", "z", "b"]), Reply::Double("-0".into()));
    assert_eq!(run(&mut s, T0, &["ZINCRBY", "z", "0", "b"]), Reply::Double("0".into()));
    assert_eq!(run(&mut s, T0, &["ZSCORE", "z", "b"]), Reply::Double("-0".into()));
}

#[test]
fn ties_order_by_member_bytes_and_ranks_count_from_either_end() {
    let mut s = Store::default();
    run(&mut s, T0, &["ZADD", "z", "1", "b", "1", "a", "0", "z", "-inf", "m", "inf", "n"]);
    assert_eq!(run(&mut s, T0, &["ZRANGE", "z", "0", "-1"]), array(&["m", "z", "a", "b", "n"]));
    assert_eq!(run(&mut s, T0, &["ZRANK", "z", "a"]), int(2));
    assert_eq!(run(&mut s, T0, &["ZREVRANK", "z", "a"]), int(2));
    assert_eq!(run(&mut s, T0, &["ZREVRANK", "z", "n"]), int(0));
    assert_eq!(run(&mut s, T0, &["ZRANK", "z", "nope"]), Reply::Null);
    assert_eq!(run(&mut s, T0, &["ZRANK", "absent", "a"]), Reply::Null);
    assert_eq!(run(&mut s, T0, &["ZREVRANGE", "z", "-2", "100"]), array(&["z", "m"]));
    assert_eq!(run(&mut s, T0, &["ZRANGE", "z", "3", "1"]), array(&[]));
    assert_eq!(run(&mut s, T0, &["ZRANGE", "z", "-100", "0", "WITHSCORES"]), pairs(&[("m", "-inf")]));
}

#[test]
fn zrange_options_and_their_errors() {
    let mut s = Store::default();
    run(&mut s, T0, &["ZADD", "z", "1", "a", "2", "b", "3", "c", "4", "d"]);
    assert_eq!(run(&mut s, T0, &["ZRANGE", "z", "(1", "3", "BYSCORE"]), array(&["b", "c"]));
    assert_eq!(
        run(&mut s, T0, &["ZRANGE", "z", "3", "(1", "BYSCORE", "REV", "WITHSCORES"]),
        pairs(&[("c", "3"), ("b", "2")])
    );
    assert_eq!(
        run(&mut s, T0, &["ZRANGE", "z", "-inf", "+inf", "BYSCORE", "LIMIT", "1", "2"]),
        array(&["b", "c"])
    );
    assert_eq!(run(&mut s, T0, &["ZRANGE", "z", "-inf", "+inf", "BYSCORE", "LIMIT", "-1", "2"]), array(&[]));
    assert_eq!(
        run(&mut s, T0, &["ZRANGE", "z", "-inf", "+inf", "BYSCORE", "LIMIT", "2", "-5"]),
        array(&["c", "d"])
    );
    assert_eq!(run(&mut s, T0, &["ZRANGE", "z", "[b", "+", "BYLEX", "LIMIT", "0", "1"]), array(&["b"]));
    assert_eq!(run(&mut s, T0, &["ZRANGEBYLEX", "z", "-", "(c"]), array(&["a", "b"]));
    assert_eq!(run(&mut s, T0, &["ZREVRANGEBYLEX", "z", "+", "(b"]), array(&["d", "c"]));
    assert_eq!(
        run(&mut s, T0, &["ZREVRANGEBYSCORE", "z", "+inf", "3", "WITHSCORES"]),
        pairs(&[("d", "4"), ("c", "3")])
    );
    assert_eq!(
        run(&mut s, T0, &["ZRANGE", "z", "0", "1", "LIMIT", "0", "1"]),
        error("ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX")
    );
    assert_eq!(
        run(&mut s, T0, &["ZRANGE", "z", "-", "+", "BYLEX", "WITHSCORES"]),
        error("ERR syntax error, WITHSCORES not supported in combination with BYLEX")
    );
    assert_eq!(run(&mut s, T0, &["ZRANGEBYSCORE", "z", "0", "1", "REV"]), error("ERR syntax error"));
    assert_eq!(run(&mut s, T0, &["ZRANGE", "z", "0", "1", "BYSCORE", "BYLEX"]), error("ERR syntax error"));
    assert_eq!(
        run(&mut s, T0, &["ZRANGE", "z", "x", "1"]),
        error("ERR value is not an integer or out of range")
    );
    assert_eq!(
        run(&mut s, T0, &["ZRANGE", "z", "x", "1", "BYSCORE"]),
        error("ERR min or max is not a float")
    );
    assert_eq!(
        run(&mut s, T0, &["ZRANGE", "z", "a", "+", "BYLEX"]),
        error("ERR min or max not valid string range item")
    );
    assert_eq!(run(&mut s, T0, &["ZCOUNT", "z", "(1", "+inf"]), int(3));
    assert_eq!(run(&mut s, T0, &["ZLEXCOUNT", "z", "[b", "[c"]), int(2));
}

#[test]
fn removing_the_last_member_deletes_the_key() {
    let mut s = Store::default();
    run(&mut s, T0, &["ZADD", "z", "1", "a", "2", "b", "3", "c"]);
    assert_eq!(
        run(&mut s, T0, &["ZPOPMIN", "z"]),
        Reply::Array(Some(vec![bulk("a"), Reply::Double("1".into())]))
    );
    assert_eq!(run(&mut s, T0, &["ZPOPMAX", "z", "1"]), pairs(&[("c", "3")]));
    assert_eq!(run(&mut s, T0, &["ZREM", "z", "x", "b", "b"]), int(1));
    assert_eq!(run(&mut s, T0, &["EXISTS", "z"]), int(0));
    run(&mut s, T0, &["ZADD", "z", "1", "a", "2", "b", "3", "c"]);
    assert_eq!(run(&mut s, T0, &["ZREMRANGEBYSCORE", "z", "(1", "2"]), int(1));
    assert_eq!(run(&mut s, T0, &["ZREMRANGEBYLEX", "z", "[c", "+"]), int(1));
    assert_eq!(run(&mut s, T0, &["ZREMRANGEBYRANK", "z", "0", "-1"]), int(1));
    assert_eq!(run(&mut s, T0, &["EXISTS", "z"]), int(0));
    assert_eq!(run(&mut s, T0, &["ZPOPMIN", "z", "0"]), Reply::Array(Some(Vec::new())));
    assert_eq!(
        run(&mut s, T0, &["ZPOPMIN", "z", "-1"]),
        error("ERR value is out of range, must be positive")
    );
}

#[test]
fn zmpop_and_the_blocking_pops_never_block() {
    let mut s = Store::default();
    run(&mut s, T0, &["SET", "str", "x"]);
    run(&mut s, T0, &["ZADD", "z", "1", "a", "2", "b"]);
    let popped = run(&mut s, T0, &["ZMPOP", "2", "absent", "z", "MAX", "COUNT", "5"]);
    let pair =
        |member: &str, score: &str| Reply::Array(Some(vec![bulk(member), Reply::Double(score.into())]));
    assert_eq!(
        popped,
        Reply::Array(Some(vec![bulk("z"), Reply::Array(Some(vec![pair("b", "2"), pair("a", "1")]))]))
    );
    assert_eq!(run(&mut s, T0, &["ZMPOP", "1", "z", "MIN"]), Reply::Array(None));
    assert_eq!(run(&mut s, T0, &["ZMPOP", "0", "z", "MIN"]), error("ERR numkeys should be greater than 0"));
    assert_eq!(
        run(&mut s, T0, &["ZMPOP", "1", "z", "MIN", "COUNT", "0"]),
        error("ERR count should be greater than 0")
    );
    assert_eq!(run(&mut s, T0, &["ZMPOP", "2", "z", "MIN"]), error("ERR syntax error"));
    assert_eq!(run(&mut s, T0, &["BZPOPMIN", "z", "0"]), Reply::Array(None));
    assert_eq!(run(&mut s, T0, &["BZPOPMIN", "str", "0"]), error(WRONG_TYPE));
    assert_eq!(run(&mut s, T0, &["BZPOPMAX", "z", "-1"]), error("ERR timeout is negative"));
    assert_eq!(run(&mut s, T0, &["BZPOPMAX", "z", "inf"]), error("ERR timeout is negative"));
    assert_eq!(
        run(&mut s, T0, &["BZPOPMAX", "z", "abc"]),
        error("ERR timeout is not a float or out of range")
    );
    // -0.001 as a long double times 1000 truncates to 0, as on x86-64.
    assert_eq!(run(&mut s, T0, &["BZPOPMAX", "z", "-0.001"]), Reply::Array(None));
    run(&mut s, T0, &["ZADD", "z", "1", "a"]);
    let popped = run(&mut s, T0, &["BZPOPMAX", "absent", "z", "0.5"]);
    assert_eq!(popped, Reply::Array(Some(vec![bulk("z"), bulk("a"), Reply::Double("1".into())])));
    assert_eq!(
        run(&mut s, T0, &["BZMPOP", "abc", "1", "z", "MIN"]),
        error("ERR timeout is not a float or out of range")
    );
    assert_eq!(run(&mut s, T0, &["BZMPOP", "0", "1", "z", "MIN"]), Reply::Array(None));
}

#[test]
fn the_small_form_converts_once_past_listpack_limits() {
    let mut s = Store::default();
    for i in 0..128 {
        run(&mut s, T0, &["ZADD", "z", &i.to_string(), &format!("m{i}")]);
    }
    assert_eq!(zset_at(&s, "z").encoding(), "listpack");
    run(&mut s, T0, &["ZADD", "z", "1", "one more"]);
    assert_eq!(zset_at(&s, "z").encoding(), "skiplist");
    run(&mut s, T0, &["ZREMRANGEBYRANK", "z", "1", "-1"]);
    assert_eq!(zset_at(&s, "z").encoding(), "skiplist", "no way back, as in Redis");
    zset_at(&s, "z").check();
    run(&mut s, T0, &["ZADD", "long", "1", &"x".repeat(65)]);
    assert_eq!(zset_at(&s, "long").encoding(), "skiplist");
    run(&mut s, T0, &["ZADD", "short", "1", &"x".repeat(64)]);
    assert_eq!(zset_at(&s, "short").encoding(), "listpack");
}

#[test]
fn the_chunked_order_agrees_with_a_model_through_splits_and_merges() {
    let mut rng = SplitMix64::new(7);
    let mut zset = ZSet::default();
    let mut model: BTreeMap<Vec<u8>, f64> = BTreeMap::new();
    for step in 0..20_000 {
        let member = format!("m{}", rng.range(0, 3000)).into_bytes();
        if rng.range(0, 3) == 0 {
            assert_eq!(zset.remove(&member), model.remove(&member), "step {step}");
        } else {
            let score = rng.range(0, 50) as f64 - 25.0;
            assert_eq!(zset.insert(&member, score), model.insert(member, score).is_none());
        }
        if step % 1000 == 0 {
            zset.check();
        }
    }
    let mut expected: Vec<(&[u8], f64)> = model.iter().map(|(m, s)| (m.as_slice(), *s)).collect();
    expected.sort_by(|a, b| compare(a.1, a.0, b.1, b.0));
    let actual: Vec<(&[u8], f64)> = zset.iter().collect();
    assert_eq!(actual, expected);
    assert_eq!(zset.iter().len(), expected.len());
    for (rank, (member, _)) in expected.iter().enumerate().step_by(37) {
        assert_eq!(zset.rank(member), Some(rank));
        assert_eq!(zset.order.get(rank).map(|entry| entry.member.as_bytes()), Some(*member));
    }
    assert!(zset.order.chunks.iter().all(|chunk| !chunk.is_empty() && chunk.capacity() <= CHUNK_MAX));
    let removed = zset.remove_range(10, 500);
    zset.check();
    assert_eq!(removed.len(), 490);
    assert_eq!(zset.len(), expected.len() - 490);
    assert!(zset.iter().map(|(member, _)| zset.score(member)).all(|score| score.is_some()));
}

#[test]
fn set_algebra_weights_aggregates_and_plain_sets() {
    let mut s = Store::default();
    run(&mut s, T0, &["ZADD", "a", "1", "x", "2", "y", "inf", "z"]);
    run(&mut s, T0, &["ZADD", "b", "10", "y", "-inf", "z", "5", "w"]);
    let mut plain = Set::default();
    plain.insert(b"x");
    plain.insert(b"w");
    s.put(b"p", Value::Set(Box::new(plain)), false);
    assert_eq!(
        run(&mut s, T0, &["ZUNION", "2", "a", "b", "WITHSCORES"]),
        pairs(&[("z", "0"), ("x", "1"), ("w", "5"), ("y", "12")])
    );
    assert_eq!(run(&mut s, T0, &["ZINTER", "2", "a", "b", "AGGREGATE", "MAX"]), array(&["y", "z"]));
    assert_eq!(
        run(&mut s, T0, &["ZINTER", "2", "a", "p", "WEIGHTS", "0", "3", "WITHSCORES"]),
        pairs(&[("x", "3")])
    );
    assert_eq!(run(&mut s, T0, &["ZDIFF", "2", "a", "p", "WITHSCORES"]), pairs(&[("y", "2"), ("z", "inf")]));
    // inf * 0 is NaN: Redis stores 0.
    assert_eq!(run(&mut s, T0, &["ZUNIONSTORE", "d", "1", "a", "WEIGHTS", "0"]), int(3));
    assert_eq!(run(&mut s, T0, &["ZSCORE", "d", "z"]), Reply::Double("0".into()));
    assert_eq!(run(&mut s, T0, &["ZINTERSTORE", "d", "2", "a", "absent"]), int(0));
    assert_eq!(run(&mut s, T0, &["EXISTS", "d"]), int(0));
    assert_eq!(run(&mut s, T0, &["ZINTERCARD", "2", "a", "b", "LIMIT", "1"]), int(1));
    assert_eq!(
        run(&mut s, T0, &["ZINTERCARD", "1", "a", "LIMIT", "-1"]),
        error("ERR LIMIT can't be negative")
    );
    assert_eq!(
        run(&mut s, T0, &["ZUNION", "0", "a"]),
        error("ERR at least 1 input key is needed for 'zunion' command")
    );
    assert_eq!(run(&mut s, T0, &["ZDIFF", "1", "a", "WEIGHTS", "1"]), error("ERR syntax error"));
    assert_eq!(
        run(&mut s, T0, &["ZUNION", "1", "a", "WEIGHTS", "x"]),
        error("ERR weight value is not a float")
    );
    run(&mut s, T0, &["SET", "str", "v"]);
    assert_eq!(run(&mut s, T0, &["ZUNION", "2", "a", "str", "WEIGHTS", "x"]), error(WRONG_TYPE));
}

#[test]
fn zrandmember_draws_from_the_store_random_only() {
    let mut s = Store::default();
    for i in 0..20 {
        run(&mut s, T0, &["ZADD", "z", &i.to_string(), &format!("m{i}")]);
    }
    let draw = |s: &Store, words: &[&str]| s.read(&cmd(words), T0 + 5);
    assert_eq!(draw(&s, &["ZRANDMEMBER", "z", "5"]), draw(&s, &["ZRANDMEMBER", "z", "5"]));
    let Reply::Array(Some(unique)) = draw(&s, &["ZRANDMEMBER", "z", "15"]) else { panic!() };
    let distinct: BTreeSet<_> = unique.iter().collect();
    assert_eq!(distinct.len(), 15);
    let Reply::Array(Some(repeated)) = draw(&s, &["ZRANDMEMBER", "z", "-50"]) else { panic!() };
    assert_eq!(repeated.len(), 50);
    let Reply::Pairs(all) = draw(&s, &["ZRANDMEMBER", "z", "100", "WITHSCORES"]) else { panic!() };
    assert_eq!(all.len(), 20);
    assert_eq!(draw(&s, &["ZRANDMEMBER", "absent", "3"]), Reply::Array(Some(Vec::new())));
    assert_eq!(draw(&s, &["ZRANDMEMBER", "absent"]), Reply::Null);
    assert_eq!(draw(&s, &["ZRANDMEMBER", "z", "1", "WITHSCORE"]), error("ERR syntax error"));
    assert_eq!(
        draw(&s, &["ZRANDMEMBER", "z", "-4611686018427387904", "WITHSCORES"]),
        error("ERR value is out of range")
    );
}

#[test]
fn zscan_answers_a_small_set_whole_and_walks_a_large_one() {
    let mut s = Store::default();
    run(&mut s, T0, &["ZADD", "small", "2", "b", "1", "a"]);
    let whole = Reply::Array(Some(vec![bulk("0"), array(&["a", "1", "b", "2"])]));
    assert_eq!(run(&mut s, T0, &["ZSCAN", "small", "0"]), whole);
    for i in 0..300 {
        run(&mut s, T0, &["ZADD", "big", &i.to_string(), &format!("member{i:03}")]);
    }
    let mut seen = BTreeSet::new();
    let mut cursor = "0".to_string();
    loop {
        let Reply::Array(Some(parts)) = run(&mut s, T0, &["ZSCAN", "big", &cursor, "COUNT", "7"]) else {
            panic!()
        };
        let (Reply::Bulk(Some(next)), Reply::Array(Some(items))) = (&parts[0], &parts[1]) else { panic!() };
        seen.extend(items.chunks(2).map(|pair| pair[0].clone()));
        cursor = String::from_utf8(next.clone()).unwrap();
        if cursor == "0" {
            break;
        }
    }
    assert_eq!(seen.len(), 300);
}

#[test]
fn every_command_answers_wrongtype_on_a_string() {
    let mut s = Store::default();
    run(&mut s, T0, &["SET", "k", "v"]);
    for words in [
        &["ZADD", "k", "1", "a"][..],
        &["ZINCRBY", "k", "1", "a"],
        &["ZREM", "k", "a"],
        &["ZCARD", "k"],
        &["ZCOUNT", "k", "0", "1"],
        &["ZSCORE", "k", "a"],
        &["ZMSCORE", "k", "a"],
        &["ZRANK", "k", "a"],
        &["ZRANGE", "k", "0", "1"],
        &["ZRANGESTORE", "d", "k", "0", "1"],
        &["ZREMRANGEBYRANK", "k", "0", "1"],
        &["ZPOPMIN", "k"],
        &["ZMPOP", "1", "k", "MIN"],
        &["ZUNION", "1", "k"],
        &["ZRANDMEMBER", "k"],
        &["ZSCAN", "k", "0"],
    ] {
        assert_eq!(run(&mut s, T0, words), error(WRONG_TYPE), "{words:?}");
    }
}

#[test]
fn a_set_filled_in_order_keeps_its_chunks_full() {
    let mut zset = ZSet::default();
    for i in 0..10_000 {
        zset.insert(format!("m{i:05}").as_bytes(), f64::from(i));
    }
    let capacity: usize = zset.order.chunks.iter().map(Vec::capacity).sum();
    assert!(capacity <= zset.len() * 11 / 10, "{capacity} entries' room for {}", zset.len());
    assert_eq!(zset.rank(b"m09999"), Some(9999));
    zset.check();
    assert_eq!(zset.encoding(), "skiplist");
}

#[test]
fn sorted_sets_survive_a_snapshot_round_trip_in_both_forms() {
    let mut s = Store::default();
    run(&mut s, T0, &["ZADD", "small", "1.5", "a", "-inf", "b", "0", "c"]);
    for i in 0..300 {
        run(&mut s, T0, &["ZADD", "big", &format!("{}.25", i % 17), &format!("member:{i}")]);
    }
    run(&mut s, T0, &["ZADD", "big", "-0", "negative zero"]);
    let bytes = s.snapshot();
    let restored = Store::restore(&bytes).expect("a valid snapshot");
    assert_eq!(restored, s);
    assert_eq!(restored.snapshot(), bytes);
    assert_eq!(zset_at(&restored, "big").encoding(), "skiplist");
    assert_eq!(zset_at(&restored, "small").encoding(), "listpack");
    zset_at(&restored, "big").check();
    let read = |store: &Store| store.read(&cmd(&["ZRANGE", "big", "0", "-1", "WITHSCORES"]), T0);
    assert_eq!(read(&restored), read(&s));
    assert_eq!(restored.read(&cmd(&["ZSCORE", "big", "negative zero"]), T0), Reply::Double("-0".into()));
}

#[test]
fn a_set_restored_in_its_recorded_form_answers_as_before() {
    let mut shrunk = ZSet::restored("skiplist");
    shrunk.insert(b"a", 1e17);
    assert_eq!(shrunk.encoding(), "skiplist");
    shrunk.insert(b"z", -0.0);
    assert_eq!(shrunk.score(b"z").map(f64::to_bits), Some((-0.0f64).to_bits()));
    let small = ZSet::restored("listpack");
    assert_eq!(small.encoding(), "listpack");
}
