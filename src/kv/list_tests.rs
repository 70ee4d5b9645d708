//! Lists: the chunked representation against a plain model, and the edge
//! cases of Redis 7.0's `tests/unit/type/list.tcl` and `t_list.c` (replies
//! and errors, the blocking forms as inside MULTI, WATCH, TTLs).
//! `tests/redis_diff.rs` checks the replies byte for byte against a real
//! server on random commands.

use super::super::tests::{bulk, cmd, int, T0};
use super::super::*;
use super::{parse_timeout, End, List, CHUNK_BYTES_MAX};
use crate::protocol::Protocol;
use crate::raft::SplitMix64;
use std::collections::VecDeque;

/// A command at `T0`, with the store's invariants checked after it.
fn run(store: &mut Store, words: &[&str]) -> Reply {
    super::super::tests::run(store, T0, words)
}

fn array(items: Vec<Reply>) -> Reply {
    Reply::Array(Some(items))
}

fn bulks(items: &[&str]) -> Reply {
    array(items.iter().map(|item| bulk(item)).collect())
}

fn error(text: &str) -> Reply {
    Reply::error(text)
}

fn wrong_type() -> Reply {
    error(WRONG_TYPE)
}

/// The store's list at `key`, checked.
fn list_at<'a>(store: &'a Store, key: &str) -> &'a List {
    match store.entries.get(key.as_bytes()).map(|entry| &entry.value) {
        Some(Value::List(list)) => {
            list.check();
            list
        }
        other => panic!("{key} holds {other:?}"),
    }
}

// ---- the representation ----

fn element(rng: &mut SplitMix64) -> Vec<u8> {
    let length = match rng.range(0, 40) {
        0 | 20 => rng.range(100, 300),
        1 => rng.range(CHUNK_BYTES_MAX as u64 - 10, CHUNK_BYTES_MAX as u64 + 300),
        21 => rng.range(2 * CHUNK_BYTES_MAX as u64, 3 * CHUNK_BYTES_MAX as u64),
        2 | 22 => 0,
        _ => rng.range(1, 12),
    };
    let letter = b'a' + rng.range(0, 4) as u8;
    vec![letter; length as usize]
}

#[test]
fn chunked_lists_behave_like_a_deque_under_random_operations() {
    for seed in 0..12 {
        let mut rng = SplitMix64::new(seed);
        let (mut list, mut model) = (List::default(), VecDeque::<Vec<u8>>::new());
        for step in 0..3000 {
            let len = model.len() as u64;
            match rng.range(0, 12) {
                0..=2 => {
                    let element = element(&mut rng);
                    list.push_back(&element);
                    model.push_back(element);
                }
                3 | 4 => {
                    let element = element(&mut rng);
                    list.push(End::Head, &element);
                    model.push_front(element);
                }
                5 => {
                    let end = if rng.range(0, 2) == 0 { End::Head } else { End::Tail };
                    let count = rng.range(0, 40) as usize;
                    let expected: Vec<Vec<u8>> = match end {
                        End::Head => (0..count.min(model.len())).filter_map(|_| model.pop_front()).collect(),
                        End::Tail => (0..count.min(model.len())).filter_map(|_| model.pop_back()).collect(),
                    };
                    assert_eq!(list.pop_many(end, count), expected, "seed {seed} step {step}");
                }
                6 if len > 0 => {
                    let index = rng.range(0, len) as usize;
                    let element = element(&mut rng);
                    list.set(index, &element);
                    model[index] = element;
                }
                7 => {
                    let index = rng.range(0, len + 1) as usize;
                    let element = element(&mut rng);
                    list.insert(index, &element);
                    model.insert(index, element);
                }
                8 => {
                    let target = element(&mut rng);
                    let limit = rng.range(1, 5) as usize;
                    let from_tail = rng.range(0, 2) == 0;
                    let mut removed = 0;
                    let mut kept: VecDeque<Vec<u8>> = VecDeque::new();
                    let ordered: Vec<Vec<u8>> = if from_tail {
                        model.iter().rev().cloned().collect()
                    } else {
                        model.iter().cloned().collect()
                    };
                    for item in ordered {
                        if item == target && removed < limit {
                            removed += 1;
                        } else if from_tail {
                            kept.push_front(item);
                        } else {
                            kept.push_back(item);
                        }
                    }
                    let from = if from_tail { End::Tail } else { End::Head };
                    assert_eq!(
                        list.remove_matching(&target, limit, from),
                        removed,
                        "seed {seed} step {step}"
                    );
                    model = kept;
                }
                9 if len > 0 => {
                    let (head, tail) = (rng.range(0, 3) as usize, rng.range(0, 3) as usize);
                    list.trim(head, tail);
                    for _ in 0..head {
                        model.pop_front();
                    }
                    for _ in 0..tail {
                        model.pop_back();
                    }
                }
                _ if len > 0 => {
                    let index = rng.range(0, len) as usize;
                    assert_eq!(list.get(index), Some(model[index].as_slice()));
                    let from: Vec<&[u8]> = list.iter_from(index).collect();
                    let expected: Vec<&[u8]> = model.iter().skip(index).map(Vec::as_slice).collect();
                    assert_eq!(from, expected, "seed {seed} step {step}");
                }
                _ => {}
            }
            list.check();
            assert_eq!(list.len(), model.len());
            assert!(list.iter().eq(model.iter().map(Vec::as_slice)), "seed {seed} step {step}");
            assert!(list.iter().rev().eq(model.iter().rev().map(Vec::as_slice)), "seed {seed} step {step}");
            assert_eq!(list.get(model.len()), None);
        }
    }
}

/// Heap bytes per element of a list of a million elements made by `element`.
fn bytes_per_element(element: impl Fn(usize) -> String) -> f64 {
    let mut list = List::default();
    let count = 1_000_000;
    for i in 0..count {
        if i % 2 == 0 {
            list.push_back(element(i).as_bytes());
        } else {
            list.push(End::Head, element(i).as_bytes());
        }
    }
    list.check();
    list.heap_bytes() as f64 / count as f64
}

#[test]
fn a_million_short_elements_cost_within_twice_what_redis_quicklist_does() {
    // redis-server 7.0.15, RPUSH of a million elements, used_memory grew by
    // 11.1 bytes an element for "el:000000".."el:999999" and 5.0 for the
    // integers 0..999999 (listpack stores those as integers).
    let strings = bytes_per_element(|i| format!("el:{i:06}"));
    assert!(strings <= 2.0 * 11.1, "{strings:.2} bytes per element");
    let integers = bytes_per_element(|i| i.to_string());
    assert!(integers <= 2.0 * 5.0, "{integers:.2} bytes per element");
}

#[test]
fn a_small_list_costs_one_small_buffer_and_one_chunk_slot() {
    let mut list = List::default();
    for element in ["a", "bb", "ccc"] {
        list.push_back(element.as_bytes());
    }
    assert!(list.heap_bytes() <= 48, "{} heap bytes", list.heap_bytes());
}

#[test]
fn lists_are_equal_and_hash_alike_whatever_their_chunks() {
    use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
    let (mut pushed_back, mut pushed_front) = (List::default(), List::default());
    let elements: Vec<Vec<u8>> = (0..3000).map(|i| format!("element {i}").into_bytes()).collect();
    for element in &elements {
        pushed_back.push_back(element);
    }
    for element in elements.iter().rev() {
        pushed_front.push(End::Head, element);
    }
    pushed_front.set(1500, b"x");
    pushed_front.set(1500, b"element 1500");
    assert_eq!(pushed_back, pushed_front);
    let hasher = BuildHasherDefault::<DefaultHasher>::default();
    assert_eq!(hasher.hash_one(&pushed_back), hasher.hash_one(&pushed_front));
    pushed_front.set(0, b"other");
    assert_ne!(pushed_back, pushed_front);
}

#[test]
fn lengths_past_one_leb128_byte_read_back_from_both_ends() {
    let mut list = List::default();
    for length in [0, 1, 127, 128, 16383, 16384, 70_000] {
        list.push_back(&vec![b'x'; length]);
        list.push(End::Head, &vec![b'y'; length]);
    }
    list.check();
    let lengths: Vec<usize> = list.iter().map(<[u8]>::len).collect();
    assert_eq!(lengths, [70_000, 16384, 16383, 128, 127, 1, 0, 0, 1, 127, 128, 16383, 16384, 70_000]);
    assert_eq!(list.pop(End::Tail).map(|e| e.len()), Some(70_000));
    assert_eq!(list.pop(End::Head).map(|e| e.len()), Some(70_000));
}

#[test]
fn a_snapshot_restores_lists_element_for_element() {
    let mut store = Store::default();
    for i in 0..2000 {
        run(&mut store, &["RPUSH", "big", &format!("{i}"), &"v".repeat(i % 300)]);
    }
    run(&mut store, &["LPUSH", "small", "", "\u{1}", "b"]);
    run(&mut store, &["LINSERT", "big", "AFTER", "1000", "inserted"]);
    let restored = Store::restore(&store.snapshot()).expect("restores");
    assert_eq!(restored, store);
    assert_eq!(list_at(&restored, "big").len(), 4001);
    let range = cmd(&["LRANGE", "big", "990", "1010"]);
    assert_eq!(restored.read(&range, T0), store.read(&range, T0));
}

// ---- the commands ----

#[test]
fn pushes_answer_the_new_length_and_pushx_needs_an_existing_list() {
    let mut store = Store::default();
    assert_eq!(run(&mut store, &["LPUSHX", "l", "a"]), int(0));
    assert_eq!(run(&mut store, &["RPUSHX", "l", "a"]), int(0));
    assert_eq!(run(&mut store, &["EXISTS", "l"]), int(0), "no empty list is created");
    assert_eq!(run(&mut store, &["LPUSH", "l", "a", "b", "c"]), int(3));
    assert_eq!(run(&mut store, &["RPUSH", "l", "d"]), int(4));
    assert_eq!(run(&mut store, &["RPUSHX", "l", "e", "f"]), int(6));
    assert_eq!(run(&mut store, &["LPUSHX", "l", "z"]), int(7));
    assert_eq!(run(&mut store, &["LRANGE", "l", "0", "-1"]), bulks(&["z", "c", "b", "a", "d", "e", "f"]));
    assert_eq!(run(&mut store, &["TYPE", "l"]), Reply::Simple("list".into()));
    run(&mut store, &["SET", "s", "x"]);
    for push in ["LPUSH", "RPUSH", "LPUSHX", "RPUSHX"] {
        assert_eq!(run(&mut store, &[push, "s", "a"]), wrong_type());
    }
}

#[test]
fn pop_with_a_count_answers_an_array_and_nil_differs_between_protocols() {
    let mut store = Store::default();
    run(&mut store, &["RPUSH", "l", "a", "b", "c", "d"]);
    assert_eq!(run(&mut store, &["LPOP", "l"]), bulk("a"));
    assert_eq!(run(&mut store, &["RPOP", "l", "2"]), bulks(&["d", "c"]), "in the order popped");
    assert_eq!(run(&mut store, &["LPOP", "l", "0"]), array(vec![]));
    assert_eq!(run(&mut store, &["LPOP", "l", "10"]), bulks(&["b"]));
    assert_eq!(run(&mut store, &["EXISTS", "l"]), int(0), "the last pop deletes the key");
    let single = run(&mut store, &["LPOP", "l"]);
    let counted = run(&mut store, &["LPOP", "l", "0"]);
    assert_eq!(single.clone().for_protocol(Protocol::Resp2).to_bytes(), b"$-1\r\n");
    assert_eq!(counted.clone().for_protocol(Protocol::Resp2).to_bytes(), b"*-1\r\n");
    assert_eq!(single.for_protocol(Protocol::Resp3).to_bytes(), b"_\r\n");
    assert_eq!(counted.for_protocol(Protocol::Resp3).to_bytes(), b"_\r\n");
    let positive = error("ERR value is out of range, must be positive");
    assert_eq!(run(&mut store, &["LPOP", "l", "-1"]), positive, "checked before the key");
    assert_eq!(run(&mut store, &["RPOP", "l", "abc"]), positive);
    assert_eq!(
        run(&mut store, &["LPOP", "l", "1", "2"]),
        error("ERR wrong number of arguments for 'lpop' command")
    );
    run(&mut store, &["SET", "s", "x"]);
    assert_eq!(run(&mut store, &["LPOP", "s", "0"]), wrong_type(), "WRONGTYPE before count 0");
    assert_eq!(run(&mut store, &["RPOP", "s", "9223372036854775807"]), wrong_type());
}

#[test]
fn lindex_lset_and_lrange_take_negative_indexes() {
    let mut store = Store::default();
    run(&mut store, &["RPUSH", "l", "a", "b", "c"]);
    assert_eq!(run(&mut store, &["LINDEX", "l", "-1"]), bulk("c"));
    assert_eq!(run(&mut store, &["LINDEX", "l", "-3"]), bulk("a"));
    for out in ["-4", "3", "-9223372036854775808", "9223372036854775807"] {
        assert_eq!(run(&mut store, &["LINDEX", "l", out]), Reply::nil());
        assert_eq!(run(&mut store, &["LSET", "l", out, "x"]), error("ERR index out of range"));
    }
    assert_eq!(run(&mut store, &["LINDEX", "l", "x"]), error(strings::NOT_AN_INTEGER));
    assert_eq!(run(&mut store, &["LINDEX", "missing", "x"]), Reply::nil(), "a missing key before the index");
    assert_eq!(run(&mut store, &["LSET", "missing", "x", "v"]), error("ERR no such key"));
    assert_eq!(run(&mut store, &["LSET", "l", "-2", "B"]), Reply::ok());
    assert_eq!(run(&mut store, &["LRANGE", "l", "-100", "100"]), bulks(&["a", "B", "c"]));
    assert_eq!(run(&mut store, &["LRANGE", "l", "1", "-2"]), bulks(&["B"]));
    assert_eq!(run(&mut store, &["LRANGE", "l", "2", "1"]), array(vec![]));
    assert_eq!(run(&mut store, &["LRANGE", "l", "3", "10"]), array(vec![]));
    assert_eq!(run(&mut store, &["LRANGE", "l", "-9223372036854775808", "-3"]), bulks(&["a"]));
    assert_eq!(run(&mut store, &["LRANGE", "missing", "x", "1"]), error(strings::NOT_AN_INTEGER));
    run(&mut store, &["SET", "s", "x"]);
    assert_eq!(run(&mut store, &["LRANGE", "s", "0", "x"]), error(strings::NOT_AN_INTEGER), "indexes first");
    assert_eq!(run(&mut store, &["LRANGE", "s", "0", "1"]), wrong_type());
    assert_eq!(run(&mut store, &["LINDEX", "s", "x"]), wrong_type());
    assert_eq!(run(&mut store, &["LLEN", "s"]), wrong_type());
    assert_eq!(run(&mut store, &["LLEN", "missing"]), int(0));
}

#[test]
fn ltrim_keeps_the_window_and_deletes_an_emptied_list() {
    let mut store = Store::default();
    run(&mut store, &["RPUSH", "l", "1", "2", "3", "4", "5"]);
    assert_eq!(run(&mut store, &["LTRIM", "l", "1", "-2"]), Reply::ok());
    assert_eq!(run(&mut store, &["LRANGE", "l", "0", "-1"]), bulks(&["2", "3", "4"]));
    assert_eq!(run(&mut store, &["LTRIM", "l", "-100", "100"]), Reply::ok());
    assert_eq!(run(&mut store, &["LLEN", "l"]), int(3));
    let watch = store.watch(b"l", T0);
    run(&mut store, &["LTRIM", "l", "0", "-1"]);
    assert!(store.touched(&watch, T0), "Redis signals LTRIM as a modification even if it keeps all");
    assert_eq!(run(&mut store, &["LTRIM", "l", "2", "1"]), Reply::ok());
    assert_eq!(run(&mut store, &["EXISTS", "l"]), int(0));
    assert_eq!(run(&mut store, &["LTRIM", "l", "0", "x"]), error(strings::NOT_AN_INTEGER));
    assert_eq!(run(&mut store, &["LTRIM", "missing", "0", "1"]), Reply::ok());
}

#[test]
fn lrem_removes_from_the_head_the_tail_or_everywhere() {
    let mut store = Store::default();
    let fill = ["RPUSH", "l", "a", "b", "a", "c", "a"];
    run(&mut store, &fill);
    assert_eq!(run(&mut store, &["LREM", "l", "-2", "a"]), int(2));
    assert_eq!(run(&mut store, &["LRANGE", "l", "0", "-1"]), bulks(&["a", "b", "c"]));
    run(&mut store, &fill[..4]);
    assert_eq!(run(&mut store, &["LREM", "l", "1", "a"]), int(1));
    assert_eq!(run(&mut store, &["LRANGE", "l", "0", "-1"]), bulks(&["b", "c", "a", "b"]));
    assert_eq!(run(&mut store, &["LREM", "l", "0", "b"]), int(2));
    let watch = store.watch(b"l", T0);
    assert_eq!(run(&mut store, &["LREM", "l", "0", "zz"]), int(0));
    assert!(!store.touched(&watch, T0), "removing nothing is no modification");
    assert_eq!(run(&mut store, &["LREM", "l", "-9223372036854775808", "c"]), int(1));
    assert_eq!(run(&mut store, &["LREM", "l", "5", "a"]), int(1));
    assert_eq!(run(&mut store, &["EXISTS", "l"]), int(0));
    assert_eq!(run(&mut store, &["LREM", "l", "x", "a"]), error(strings::NOT_AN_INTEGER), "count before key");
}

#[test]
fn linsert_finds_the_first_pivot_from_the_head() {
    let mut store = Store::default();
    run(&mut store, &["RPUSH", "l", "a", "b", "a"]);
    assert_eq!(run(&mut store, &["LINSERT", "l", "before", "a", "x"]), int(4));
    assert_eq!(run(&mut store, &["LINSERT", "l", "AFTER", "a", "y"]), int(5));
    assert_eq!(run(&mut store, &["LINSERT", "l", "after", "a\u{0}", "z"]), int(-1));
    assert_eq!(run(&mut store, &["LRANGE", "l", "0", "-1"]), bulks(&["x", "a", "y", "b", "a"]));
    assert_eq!(run(&mut store, &["LINSERT", "missing", "before", "a", "x"]), int(0));
    assert_eq!(run(&mut store, &["LINSERT", "l", "middle", "a", "x"]), error(strings::SYNTAX_ERROR));
    assert_eq!(run(&mut store, &["LINSERT", "l", "after\u{0}x", "b", "c"]), int(6), "C string compare");
    run(&mut store, &["SET", "s", "x"]);
    assert_eq!(run(&mut store, &["LINSERT", "s", "bad", "a", "x"]), error(strings::SYNTAX_ERROR));
    assert_eq!(run(&mut store, &["LINSERT", "s", "before", "a", "x"]), wrong_type());
}

#[test]
fn lpos_ranks_counts_and_maxlen_as_in_list_tcl() {
    let mut store = Store::default();
    run(&mut store, &["RPUSH", "l", "a", "b", "c", "1", "2", "3", "c", "c"]);
    let lpos = |store: &mut Store, options: &[&str]| {
        let mut words = vec!["LPOS", "l"];
        words.extend_from_slice(options);
        run(store, &words)
    };
    let ints = |values: &[i64]| array(values.iter().map(|v| int(*v)).collect());
    assert_eq!(lpos(&mut store, &["c"]), int(2));
    assert_eq!(lpos(&mut store, &["c", "RANK", "2"]), int(6));
    assert_eq!(lpos(&mut store, &["c", "RANK", "-1"]), int(7));
    assert_eq!(lpos(&mut store, &["c", "RANK", "-2"]), int(6));
    assert_eq!(lpos(&mut store, &["c", "COUNT", "0"]), ints(&[2, 6, 7]));
    assert_eq!(lpos(&mut store, &["c", "COUNT", "2", "RANK", "-1"]), ints(&[7, 6]));
    assert_eq!(lpos(&mut store, &["c", "COUNT", "0", "MAXLEN", "7"]), ints(&[2, 6]));
    assert_eq!(lpos(&mut store, &["c", "RANK", "-1", "MAXLEN", "2"]), int(7));
    assert_eq!(lpos(&mut store, &["c", "RANK", "-1", "MAXLEN", "1"]), int(7));
    assert_eq!(lpos(&mut store, &["c", "RANK", "4"]), Reply::nil());
    assert_eq!(lpos(&mut store, &["x", "COUNT", "1"]), array(vec![]));
    assert_eq!(lpos(&mut store, &["c", "RANK", "-9223372036854775808"]), int(7));
    assert_eq!(lpos(&mut store, &["c", "RANK", "-9223372036854775808", "COUNT", "1"]), ints(&[7, 6, 2]));
    assert_eq!(lpos(&mut store, &["c", "count", "1", "COUNT", "2"]), ints(&[2, 6]), "the last COUNT wins");
    let rank_zero =
        "ERR RANK can't be zero: use 1 to start from the first match, 2 from the second ... or use \
                     negative to start from the end of the list";
    assert_eq!(lpos(&mut store, &["c", "RANK", "0"]), error(rank_zero));
    assert_eq!(lpos(&mut store, &["c", "RANK", "x"]), error(strings::NOT_AN_INTEGER));
    assert_eq!(lpos(&mut store, &["c", "COUNT", "-1"]), error("ERR COUNT can't be negative"));
    assert_eq!(lpos(&mut store, &["c", "MAXLEN", "x"]), error("ERR MAXLEN can't be negative"));
    assert_eq!(lpos(&mut store, &["c", "COUNT"]), error(strings::SYNTAX_ERROR));
    assert_eq!(run(&mut store, &["LPOS", "missing", "c"]), Reply::nil());
    assert_eq!(run(&mut store, &["LPOS", "missing", "c", "COUNT", "0"]), array(vec![]));
    run(&mut store, &["SET", "s", "x"]);
    assert_eq!(run(&mut store, &["LPOS", "s", "c", "RANK", "0"]), error(rank_zero), "options before the key");
    assert_eq!(run(&mut store, &["LPOS", "s", "c"]), wrong_type());
}

#[test]
fn lmove_checks_the_destination_type_before_popping_and_rotates_one_list() {
    let mut store = Store::default();
    run(&mut store, &["RPUSH", "l", "a", "b", "c"]);
    run(&mut store, &["SET", "s", "x"]);
    assert_eq!(run(&mut store, &["LMOVE", "l", "s", "LEFT", "RIGHT"]), wrong_type());
    assert_eq!(run(&mut store, &["RPOPLPUSH", "l", "s"]), wrong_type());
    assert_eq!(run(&mut store, &["LLEN", "l"]), int(3), "nothing popped");
    assert_eq!(run(&mut store, &["LMOVE", "missing", "s", "LEFT", "RIGHT"]), Reply::nil(), "source first");
    assert_eq!(run(&mut store, &["LMOVE", "s", "l", "LEFT", "RIGHT"]), wrong_type());
    assert_eq!(run(&mut store, &["LMOVE", "l", "l", "up", "RIGHT"]), error(strings::SYNTAX_ERROR));
    run(&mut store, &["PEXPIRE", "l", "5000"]);
    assert_eq!(run(&mut store, &["LMOVE", "l", "l", "LEFT", "RIGHT"]), bulk("a"));
    assert_eq!(run(&mut store, &["RPOPLPUSH", "l", "l"]), bulk("a"));
    assert_eq!(run(&mut store, &["LRANGE", "l", "0", "-1"]), bulks(&["a", "b", "c"]));
    assert_eq!(run(&mut store, &["PTTL", "l"]), int(5000), "a rotation keeps the TTL");
    assert_eq!(run(&mut store, &["LMOVE", "l", "m", "right", "left"]), bulk("c"));
    assert_eq!(run(&mut store, &["RPOPLPUSH", "l", "m"]), bulk("b"));
    assert_eq!(run(&mut store, &["LMOVE", "l", "m", "LEFT", "RIGHT"]), bulk("a"));
    assert_eq!(run(&mut store, &["EXISTS", "l"]), int(0), "the emptied source is deleted");
    assert_eq!(run(&mut store, &["LRANGE", "m", "0", "-1"]), bulks(&["b", "c", "a"]));
    run(&mut store, &["RPUSH", "one", "x"]);
    assert_eq!(run(&mut store, &["LMOVE", "one", "one", "LEFT", "LEFT"]), bulk("x"));
    assert_eq!(run(&mut store, &["LRANGE", "one", "0", "-1"]), bulks(&["x"]));
}

#[test]
fn lmpop_pops_from_the_first_non_empty_list_and_validates_in_redis_order() {
    let mut store = Store::default();
    run(&mut store, &["RPUSH", "b", "1", "2", "3"]);
    run(&mut store, &["SET", "s", "x"]);
    let popped = |key: &str, items: &[&str]| array(vec![bulk(key), bulks(items)]);
    assert_eq!(run(&mut store, &["LMPOP", "2", "a", "b", "LEFT"]), popped("b", &["1"]));
    assert_eq!(run(&mut store, &["LMPOP", "2", "b", "s", "right", "COUNT", "10"]), popped("b", &["3", "2"]));
    assert_eq!(run(&mut store, &["EXISTS", "b"]), int(0));
    assert_eq!(run(&mut store, &["LMPOP", "2", "a", "b", "LEFT"]), Reply::Array(None));
    assert_eq!(run(&mut store, &["LMPOP", "2", "a", "s", "LEFT"]), wrong_type());
    let numkeys = error("ERR numkeys should be greater than 0");
    let count = error("ERR count should be greater than 0");
    let syntax = error(strings::SYNTAX_ERROR);
    assert_eq!(run(&mut store, &["LMPOP", "0", "a", "LEFT"]), numkeys);
    assert_eq!(run(&mut store, &["LMPOP", "x", "a", "LEFT"]), numkeys);
    assert_eq!(run(&mut store, &["LMPOP", "9223372036854775807", "a", "LEFT"]), syntax);
    assert_eq!(run(&mut store, &["LMPOP", "2", "a", "LEFT"]), syntax);
    assert_eq!(run(&mut store, &["LMPOP", "1", "a", "up"]), syntax);
    assert_eq!(run(&mut store, &["LMPOP", "1", "a", "LEFT", "COUNT", "0"]), count);
    assert_eq!(run(&mut store, &["LMPOP", "1", "a", "LEFT", "COUNT", "1", "COUNT", "1"]), syntax);
    assert_eq!(run(&mut store, &["LMPOP", "1", "a", "LEFT", "COUNT"]), syntax);
}

#[test]
fn blocking_forms_answer_at_once_as_inside_multi() {
    let mut store = Store::default();
    run(&mut store, &["RPUSH", "b", "1", "2", "3"]);
    run(&mut store, &["SET", "s", "x"]);
    assert_eq!(run(&mut store, &["BLPOP", "a", "b", "0"]), bulks(&["b", "1"]));
    assert_eq!(
        run(&mut store, &["BRPOP", "b", "s", "0.5"]),
        bulks(&["b", "3"]),
        "keys after it are not read"
    );
    assert_eq!(run(&mut store, &["BLPOP", "a", "s", "0"]), wrong_type());
    assert_eq!(
        run(&mut store, &["BLMPOP", "0", "1", "b", "LEFT", "COUNT", "5"]),
        array(vec![bulk("b"), bulks(&["2"])])
    );
    let empty = Reply::Array(None);
    assert_eq!(run(&mut store, &["BLPOP", "a", "b", "0"]), empty);
    assert_eq!(run(&mut store, &["BLMPOP", "1", "2", "a", "b", "RIGHT"]), empty);
    assert_eq!(run(&mut store, &["BLMOVE", "a", "s", "LEFT", "LEFT", "0"]), Reply::nil(), "a null bulk");
    assert_eq!(run(&mut store, &["BRPOPLPUSH", "a", "b", "0"]), Reply::nil());
    run(&mut store, &["RPUSH", "a", "x"]);
    assert_eq!(run(&mut store, &["BLMOVE", "a", "s", "LEFT", "LEFT", "0"]), wrong_type());
    assert_eq!(run(&mut store, &["BRPOPLPUSH", "a", "b", "0"]), bulk("x"));
    assert_eq!(run(&mut store, &["LRANGE", "b", "0", "-1"]), bulks(&["x"]));
    // The order of checks: directions, then the timeout, then the keys.
    let not_float = error("ERR timeout is not a float or out of range");
    let negative = error("ERR timeout is negative");
    assert_eq!(run(&mut store, &["BLMOVE", "s", "b", "up", "LEFT", "x"]), error(strings::SYNTAX_ERROR));
    assert_eq!(run(&mut store, &["BLMOVE", "s", "b", "LEFT", "LEFT", "x"]), not_float);
    assert_eq!(run(&mut store, &["BLPOP", "s", "-1"]), negative);
    assert_eq!(run(&mut store, &["BLMPOP", "-1", "1", "s", "up"]), error(strings::SYNTAX_ERROR));
    assert_eq!(
        run(&mut store, &["BLMPOP", "-1", "0", "s", "LEFT"]),
        error("ERR numkeys should be greater than 0")
    );
    assert_eq!(run(&mut store, &["BLMPOP", "-1", "1", "s", "LEFT"]), negative);
    assert_eq!(run(&mut store, &["BRPOPLPUSH", "s", "b", "inf"]), negative);
}

#[test]
fn timeouts_are_seconds_truncated_to_milliseconds_as_x87_computes_them() {
    let ms = |text: &str| parse_timeout(text.as_bytes()).map_err(|_| ());
    assert_eq!(ms("0"), Ok(0));
    assert_eq!(ms("1.5"), Ok(1500));
    assert_eq!(ms("0x10"), Ok(16_000));
    assert_eq!(ms("0.0009"), Ok(0), "truncated: waits for ever");
    assert_eq!(ms("-0.0009"), Ok(0));
    assert_eq!(ms("-0.001"), Ok(0), "0.001L is below 0.001, times 1000 below 1");
    assert_eq!(ms("0.002"), Ok(1), "2 * 0.001L, as far below");
    assert_eq!(ms("0.25"), Ok(250));
    assert_eq!(ms("1e-400"), Ok(0));
    assert_eq!(ms("9223372036854775"), Ok(9_223_372_036_854_775_000));
    assert!(ms("9.2233720368547758e15").is_ok(), "just below 2^63 ms");
    for negative in ["-1", "-0.002", "inf", "-inf", "1e300", "1e16", "9.3e15", "-9.3e15"] {
        assert_eq!(parse_timeout(negative.as_bytes()), Err(error("ERR timeout is negative")), "{negative}");
    }
    for bad in ["", "abc", " 1", "1 ", "nan", "1e99999"] {
        assert_eq!(
            parse_timeout(bad.as_bytes()),
            Err(error("ERR timeout is not a float or out of range")),
            "{bad:?}"
        );
    }
}

#[test]
fn writes_to_an_expired_list_start_a_new_one() {
    let mut store = Store::default();
    run(&mut store, &["RPUSH", "l", "old"]);
    run(&mut store, &["PEXPIRE", "l", "10"]);
    let later = T0 + 11;
    assert_eq!(super::super::tests::run(&mut store, later, &["LLEN", "l"]), int(0));
    assert_eq!(super::super::tests::run(&mut store, later, &["LPUSHX", "l", "x"]), int(0));
    assert_eq!(super::super::tests::run(&mut store, later, &["RPUSH", "l", "new"]), int(1));
    assert_eq!(super::super::tests::run(&mut store, later, &["PTTL", "l"]), int(-1));
    assert_eq!(super::super::tests::run(&mut store, later, &["LRANGE", "l", "0", "-1"]), bulks(&["new"]));
}

#[test]
fn failed_or_empty_writes_are_no_modification_and_pops_are() {
    let mut store = Store::default();
    run(&mut store, &["RPUSH", "l", "a", "b"]);
    run(&mut store, &["SET", "s", "x"]);
    let touched_by = |words: &[&str]| {
        let mut store = store.clone();
        let watch = store.watch(b"l", T0);
        run(&mut store, words);
        store.touched(&watch, T0)
    };
    assert!(!touched_by(&["LINSERT", "l", "BEFORE", "zz", "x"]));
    assert!(!touched_by(&["LSET", "l", "5", "x"]));
    assert!(!touched_by(&["LPOP", "l", "0"]));
    assert!(!touched_by(&["LMOVE", "l", "s", "LEFT", "LEFT"]), "WRONGTYPE: nothing popped");
    assert!(!touched_by(&["LRANGE", "l", "0", "-1"]));
    assert!(touched_by(&["LPOP", "l"]));
    assert!(touched_by(&["LSET", "l", "0", "a"]));
    assert!(touched_by(&["RPOPLPUSH", "l", "other"]));
    assert!(touched_by(&["BLMPOP", "0", "1", "l", "LEFT", "COUNT", "2"]), "emptied and deleted");
}

#[test]
fn command_info_gives_redis_key_positions() {
    let positions = |name: &str| {
        let info = commands().find(|info| info.name == name).expect(name);
        (info.arity, info.first_key, info.last_key, info.key_step, info.access)
    };
    assert_eq!(positions("blpop"), (-3, 1, -2, 1, Access::Write));
    assert_eq!(positions("brpop"), (-3, 1, -2, 1, Access::Write));
    assert_eq!(positions("blmove"), (6, 1, 2, 1, Access::Write));
    assert_eq!(positions("brpoplpush"), (4, 1, 2, 1, Access::Write));
    assert_eq!(positions("blmpop"), (-5, 0, 0, 0, Access::Write));
    assert_eq!(positions("lmpop"), (-4, 0, 0, 0, Access::Write));
    assert_eq!(positions("lmove"), (5, 1, 2, 1, Access::Write));
    assert_eq!(positions("rpoplpush"), (3, 1, 2, 1, Access::Write));
    assert_eq!(positions("lrange"), (4, 1, 1, 1, Access::Read));
    assert_eq!(positions("lpos"), (-3, 1, 1, 1, Access::Read));
    assert_eq!(positions("lpop"), (-2, 1, 1, 1, Access::Write));
    assert_eq!(positions("linsert"), (5, 1, 1, 1, Access::Write));
}

/// Random list commands over a few keys, strings among them.
fn random_list_commands(seed: u64, count: usize) -> Vec<Vec<Vec<u8>>> {
    let mut rng = SplitMix64::new(seed);
    let mut commands = Vec::new();
    for _ in 0..count {
        let key = format!("l{}", rng.range(0, 3));
        let other = format!("l{}", rng.range(0, 4));
        let element = format!("{}", rng.range(0, 6)).repeat(rng.range(1, 900) as usize);
        let index = (rng.range(0, 40) as i64 - 20).to_string();
        let words: Vec<String> = match rng.range(0, 14) {
            0..=3 => {
                let name = if rng.range(0, 2) == 0 { "LPUSH" } else { "RPUSH" };
                let mut words = vec![name.into(), key];
                words.extend((0..rng.range(1, 8)).map(|i| format!("{element}{i}")));
                words
            }
            4 => vec!["LPOP".into(), key, rng.range(0, 5).to_string()],
            5 => vec!["RPOP".into(), key],
            6 => vec!["LSET".into(), key, index, element],
            7 => vec!["LINSERT".into(), key, "BEFORE".into(), element.clone(), element],
            8 => vec!["LREM".into(), key, index, element],
            9 => vec!["LTRIM".into(), key, index, "-1".into()],
            10 => vec!["LMOVE".into(), key, other, "LEFT".into(), "RIGHT".into()],
            11 => vec![
                "BLMPOP".into(),
                "0".into(),
                "2".into(),
                key,
                other,
                "RIGHT".into(),
                "COUNT".into(),
                "3".into(),
            ],
            12 => vec!["SET".into(), other, element],
            _ => vec!["DEL".into(), other],
        };
        commands.push(words.into_iter().map(String::into_bytes).collect());
    }
    commands
}

#[test]
fn random_list_commands_keep_chunks_valid_and_replay_identically_from_snapshots() {
    for seed in 0..6 {
        let (mut store, mut replica) = (Store::default(), Store::default());
        for (step, args) in random_list_commands(seed, 1500).into_iter().enumerate() {
            let reply = store.apply(&args, T0);
            assert_eq!(reply, replica.apply(&args, T0), "seed {seed} step {step}");
            store.check_invariants();
            if step % 100 == 0 {
                for key in ["l0", "l1", "l2", "l3"] {
                    if let Some(Value::List(list)) =
                        store.entries.get(key.as_bytes()).map(|entry| &entry.value)
                    {
                        list.check();
                    }
                }
                replica = Store::restore(&store.snapshot()).expect("restores");
                assert_eq!(replica, store, "seed {seed} step {step}");
            }
        }
    }
}
