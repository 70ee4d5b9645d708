//! Set commands: the generator's set commands (on the shared keys, so they
//! meet strings and hashes: WRONGTYPE), the final state of each key as set
//! commands read it, and a phase of sets past Redis's intset limits.
//!
//! Comparisons that are not byte for byte, and why:
//! - SMEMBERS, SINTER, SUNION, SDIFF (and SPOP with a count that pops the
//!   whole set): the members are sorted on both sides before comparing,
//!   the reply's type (RESP3 set, RESP2 array) and length still compared.
//!   Redis answers in intset or hash table order, the Store in byte order.
//! - SPOP: Redis and the Store pick at random, each its own way. Compared:
//!   the reply's type and size, that the members are distinct and were in
//!   the set (the Store's members after the pop plus those it popped).
//!   Then Redis is brought back in line with the Store (SADD of what Redis
//!   popped, SREM of what the Store popped; not counted as compared).
//! - SRANDMEMBER: the reply's type and size, that every member is in the
//!   set, and distinct for a count >= 0. Negative counts stay small here:
//!   Redis builds any count up to 2^63-1 and dies of it (out of memory),
//!   where the Store refuses large ones (see `src/kv/set.rs`).
//! - SSCAN: a valid SSCAN is run as a full iteration from cursor 0 on both
//!   sides and the sets of members compared (the Store's cursor is its
//!   own; Redis answers an intset whole). Errors are compared exactly.
//! - OBJECT ENCODING is not served by the Store; the big phase asserts
//!   Redis's answers at the intset limits, the Store's are unit-tested.

use super::{assert_same, now_ms, parse_all, words, Case, Check, Generator, Runner};
use cashe::protocol::Reply;
use std::collections::BTreeSet;

/// Members the random commands draw from: few, so that sets meet and
/// empty, integers (intset) and not, the empty member, non-UTF-8 bytes.
const MEMBERS: [&[u8]; 14] = [
    b"1",
    b"2",
    b"3",
    b"-7",
    b"10",
    b"9223372036854775807",
    b"a",
    b"b",
    b"c",
    b"",
    b"m:*",
    b"\xffm",
    b"007",
    b"-0",
];

/// Keys only set commands use (besides FLUSHALL), so that sets grow and
/// live long enough for random picks to matter; the shared keys, which
/// strings and hashes also use, give WRONGTYPE.
const SET_KEYS: [&[u8]; 3] = [b"set:0", b"set:1", b"set:\xff"];

/// A set-only key most of the time, else `shared`.
fn set_key(generator: &mut Generator, shared: Vec<u8>) -> Vec<u8> {
    if generator.chance(60) {
        generator.pick(&SET_KEYS).to_vec()
    } else {
        shared
    }
}

fn other_key(generator: &mut Generator) -> Vec<u8> {
    let shared = generator.key();
    set_key(generator, shared)
}

fn other_keys(generator: &mut Generator, min: u64) -> Vec<Vec<u8>> {
    let count = generator.rng.range(min, min + 4);
    (0..count).map(|_| other_key(generator)).collect()
}

fn member(generator: &mut Generator) -> Vec<u8> {
    generator.pick(&MEMBERS).to_vec()
}

fn members(generator: &mut Generator, min: u64) -> Vec<Vec<u8>> {
    let count = generator.rng.range(min, min + 4);
    (0..count).map(|_| member(generator)).collect()
}

fn with(args: Vec<Vec<u8>>, check: fn(&mut Runner, &Case, Reply, Vec<u8>, &str)) -> Case {
    Case { args, check: Check::With(check) }
}

/// One random set command on `key`.
pub(super) fn case(generator: &mut Generator, key: Vec<u8>) -> Case {
    let exact = |args: Vec<Vec<u8>>| Case { args, check: Check::Exact };
    let key = set_key(generator, key);
    match generator.below(26) {
        0..=3 => {
            let mut args = vec![generator.pick(&[b"SADD", b"sadd"]).to_vec(), key];
            args.extend(members(generator, 1));
            exact(args)
        }
        4 | 5 => {
            let mut args = vec![b"SREM".to_vec(), key];
            args.extend(members(generator, 1));
            exact(args)
        }
        6 => exact(vec![b"SISMEMBER".to_vec(), key, member(generator)]),
        7 => {
            let mut args = vec![b"SMISMEMBER".to_vec(), key];
            args.extend(members(generator, 1));
            exact(args)
        }
        8 => with(vec![b"SMEMBERS".to_vec(), key], check_sorted),
        9 => exact(vec![b"SCARD".to_vec(), key]),
        10..=12 => spop_case(generator, key),
        13..=15 => srandmember_case(generator, key),
        16 => exact(vec![b"SMOVE".to_vec(), key, other_key(generator), member(generator)]),
        17 | 18 => {
            let name = generator.pick(&[b"SINTER", b"SUNION", b"SDIFF"]).to_vec();
            let mut args = vec![name, key];
            args.extend(other_keys(generator, 0));
            with(args, check_sorted)
        }
        19 | 20 => {
            let name = generator.pick(&[b"SINTERSTORE", b"SUNIONSTORE", b"SDIFFSTORE"]).to_vec();
            let mut args = vec![name, other_key(generator), key];
            args.extend(other_keys(generator, 0));
            exact(args)
        }
        21 => exact(sintercard_args(generator, key)),
        22 => sscan_case(generator, key),
        _ => exact(bad_arguments(generator, key)),
    }
}

fn spop_case(generator: &mut Generator, key: Vec<u8>) -> Case {
    let mut args = vec![b"SPOP".to_vec(), key];
    match generator.below(10) {
        0..=2 => {}
        3..=6 => args.push(generator.below(5).to_string().into_bytes()),
        7 => args.push(generator.pick(&[b"100", b"9223372036854775807"]).to_vec()),
        8 => args.push(generator.pick(&[b"-1", b"abc", b"", b"1.5", b"9223372036854775808", b"+1"]).to_vec()),
        _ => args.extend(words(&[b"1", b"2"])),
    }
    with(args, check_spop)
}

fn srandmember_case(generator: &mut Generator, key: Vec<u8>) -> Case {
    let mut args = vec![b"SRANDMEMBER".to_vec(), key];
    match generator.below(10) {
        0 | 1 => {}
        2..=6 => args.push((generator.below(20) as i64 - 8).to_string().into_bytes()),
        7 => args.push(generator.pick(&[b"100", b"9223372036854775807", b"-9223372036854775808"]).to_vec()),
        8 => args.push(generator.pick(&[b"abc", b"", b"1.5", b"9223372036854775808", b"+1", b"-0"]).to_vec()),
        _ => args.extend(words(&[b"1", b"2"])),
    }
    with(args, check_srandmember)
}

/// SINTERCARD, sometimes with a LIMIT, sometimes malformed.
fn sintercard_args(generator: &mut Generator, key: Vec<u8>) -> Vec<Vec<u8>> {
    let mut keys = vec![key];
    keys.extend(other_keys(generator, 0));
    let mut numkeys = keys.len().to_string().into_bytes();
    if generator.chance(20) {
        numkeys = generator.pick(&[b"0", b"-1", b"abc", b"", b"9", b"9223372036854775808", b"1"]).to_vec();
    }
    let mut args = vec![b"SINTERCARD".to_vec(), numkeys];
    args.extend(keys);
    for _ in 0..generator.below(3) {
        match generator.below(6) {
            0..=2 => {
                args.push(generator.pick(&[b"LIMIT", b"limit"]).to_vec());
                args.push(generator.below(4).to_string().into_bytes());
            }
            3 => args.push(b"LIMIT".to_vec()),
            4 => args.extend(words(&[b"LIMIT", generator.pick(&[b"-1", b"x", b"1.5", b""])])),
            _ => args.push(b"foo".to_vec()),
        }
    }
    args
}

fn sscan_case(generator: &mut Generator, key: Vec<u8>) -> Case {
    let mut args = vec![b"SSCAN".to_vec(), key, b"0".to_vec()];
    let invalid = generator.chance(20);
    if invalid {
        args[2] = generator.pick(&[b"abc", b" 1", b"1 ", b"+", b"18446744073709551616", b"0"]).to_vec();
    }
    for _ in 0..generator.below(3) {
        match generator.below(4) {
            0 => {
                args.push(b"MATCH".to_vec());
                args.push(generator.pick(&[b"*", b"1*", b"[ab]", b"*:*", b"", b"?"]).to_vec());
            }
            1 => {
                args.push(b"COUNT".to_vec());
                let count = if invalid {
                    generator.integer_text()
                } else {
                    generator.rng.range(1, 5).to_string().into_bytes()
                };
                args.push(count);
            }
            2 if invalid => args.extend(words(&[b"TYPE", b"set"])),
            _ if invalid => args.push(generator.pick(&[b"COUNT", b"MATCH", b"foo"]).to_vec()),
            _ => {}
        }
    }
    with(args, check_sscan)
}

/// Wrong argument counts (Redis's arity check, which comes before any
/// look at the key).
fn bad_arguments(generator: &mut Generator, key: Vec<u8>) -> Vec<Vec<u8>> {
    /// A name and an argument count (with the name) its arity refuses.
    const WRONG_COUNTS: [(&[u8], usize); 14] = [
        (b"SADD", 2),
        (b"SREM", 2),
        (b"SISMEMBER", 4),
        (b"SMISMEMBER", 2),
        (b"SMEMBERS", 3),
        (b"SCARD", 1),
        (b"SMOVE", 3),
        (b"SINTERCARD", 2),
        (b"SSCAN", 2),
        (b"SPOP", 1),
        (b"SRANDMEMBER", 1),
        (b"SINTER", 1),
        (b"SDIFFSTORE", 2),
        (b"sunionstore", 2),
    ];
    let (name, count) = WRONG_COUNTS[generator.below(WRONG_COUNTS.len() as u64) as usize];
    let mut args = vec![name.to_vec()];
    if count > 1 {
        args.push(key);
    }
    args.extend((2..count).map(|_| b"x".to_vec()));
    args
}

/// Reads that show `key`'s whole value, run after each seed; with the
/// first shared key, the set-only keys' too.
pub(super) fn final_state(key: &[u8]) -> Vec<Case> {
    let mut keys = vec![key];
    if key == super::KEYS[0] {
        keys.extend(SET_KEYS);
    }
    let reads = |key: &[u8]| {
        [
            Case { args: words(&[b"SCARD", key]), check: Check::Exact },
            with(words(&[b"SMEMBERS", key]), check_sorted),
        ]
    };
    keys.into_iter().flat_map(reads).collect()
}

// ---- comparisons ----

/// A reply's members if it is a set or an array of bulk strings.
fn member_list(reply: &Reply) -> Option<Vec<Vec<u8>>> {
    let (Reply::Set(items) | Reply::Array(Some(items))) = reply else {
        return None;
    };
    items
        .iter()
        .map(|item| match item {
            Reply::Bulk(Some(bytes)) => Some(bytes.clone()),
            _ => None,
        })
        .collect()
}

/// The reply with its members sorted, its type kept.
fn sorted(reply: Reply) -> Reply {
    match reply {
        Reply::Set(mut items) => {
            items.sort();
            Reply::Set(items)
        }
        Reply::Array(Some(mut items)) => {
            items.sort();
            Reply::Array(Some(items))
        }
        other => other,
    }
}

/// Both replies, the Store's through its own bytes (so both are parsed alike).
fn both(ours: &Reply, raw: &[u8]) -> (Reply, Reply) {
    (parse_all(&ours.to_bytes()), parse_all(raw))
}

fn check_sorted(_runner: &mut Runner, _case: &Case, ours: Reply, raw: Vec<u8>, context: &str) {
    let (ours, theirs) = both(&ours, &raw);
    assert_eq!(sorted(ours), sorted(theirs), "{context}");
}

/// The Store's members of `key` now.
fn store_members(runner: &mut Runner, key: &[u8]) -> BTreeSet<Vec<u8>> {
    let reply = runner.store.read(&words(&[b"SMEMBERS", key]), now_ms());
    member_list(&reply).expect("SMEMBERS of a set").into_iter().collect()
}

/// The members of a SPOP or SRANDMEMBER reply (one bulk string or many).
fn picked(reply: &Reply) -> Option<Vec<Vec<u8>>> {
    match reply {
        Reply::Bulk(Some(member)) => Some(vec![member.clone()]),
        other => member_list(other),
    }
}

fn distinct(members: &[Vec<u8>]) -> bool {
    members.iter().collect::<BTreeSet<_>>().len() == members.len()
}

/// The same kind of reply (variant) and size on both sides.
fn same_shape(ours: &Reply, theirs: &Reply) -> bool {
    std::mem::discriminant(ours) == std::mem::discriminant(theirs)
        && picked(ours).map(|members| members.len()) == picked(theirs).map(|members| members.len())
}

fn check_spop(runner: &mut Runner, case: &Case, ours: Reply, raw: Vec<u8>, context: &str) {
    if ours.to_bytes() == raw {
        return;
    }
    let (ours, theirs) = both(&ours, &raw);
    let (Some(popped), Some(their_popped)) = (picked(&ours), picked(&theirs)) else {
        return assert_same(&ours.to_bytes(), &raw, context);
    };
    assert!(same_shape(&ours, &theirs), "{context}: cashe {ours:?}, redis {theirs:?}");
    assert!(distinct(&popped) && distinct(&their_popped), "{context}: members popped twice");
    let key = &case.args[1];
    let left = store_members(runner, key);
    assert!(popped.iter().all(|member| !left.contains(member)), "{context}: cashe kept what it popped");
    let before: BTreeSet<Vec<u8>> = left.iter().cloned().chain(popped.iter().cloned()).collect();
    for member in &their_popped {
        assert!(before.contains(member), "{context}: redis popped {member:?}, not in the set");
    }
    // Redis gets back what it popped and loses what the Store popped.
    if popped.iter().collect::<BTreeSet<_>>() != their_popped.iter().collect::<BTreeSet<_>>() {
        let mut sadd = vec![b"SADD".to_vec(), key.clone()];
        sadd.extend(their_popped);
        runner.redis.call(&sadd);
        let mut srem = vec![b"SREM".to_vec(), key.clone()];
        srem.extend(popped);
        runner.redis.call(&srem);
    }
}

fn check_srandmember(runner: &mut Runner, case: &Case, ours: Reply, raw: Vec<u8>, context: &str) {
    if ours.to_bytes() == raw {
        return;
    }
    let (ours, theirs) = both(&ours, &raw);
    let (Some(mine), Some(their_picks)) = (picked(&ours), picked(&theirs)) else {
        return assert_same(&ours.to_bytes(), &raw, context);
    };
    assert!(same_shape(&ours, &theirs), "{context}: cashe {ours:?}, redis {theirs:?}");
    let set = store_members(runner, &case.args[1]);
    for member in mine.iter().chain(&their_picks) {
        assert!(set.contains(member), "{context}: {member:?} is not in the set");
    }
    let repeats_allowed = case.args.get(2).is_some_and(|count| count.starts_with(b"-"));
    if !repeats_allowed {
        assert!(distinct(&mine) && distinct(&their_picks), "{context}: a member picked twice");
    }
}

fn check_sscan(runner: &mut Runner, case: &Case, ours: Reply, raw: Vec<u8>, context: &str) {
    let ours = ours.to_bytes();
    if ours.first() == Some(&b'-') || raw.first() == Some(&b'-') {
        return assert_same(&ours, &raw, context);
    }
    let theirs = sscan_all(runner, &case.args, true, raw);
    let mine = sscan_all(runner, &case.args, false, ours);
    assert_eq!(mine, theirs, "{context}: SSCAN iteration member sets");
}

/// Continues an SSCAN iteration begun with `first` (raw reply) until the
/// cursor is 0; the members seen.
fn sscan_all(runner: &mut Runner, args: &[Vec<u8>], on_redis: bool, first: Vec<u8>) -> BTreeSet<Vec<u8>> {
    let mut seen = BTreeSet::new();
    let mut raw = first;
    for _ in 0..100_000 {
        let Reply::Array(Some(parts)) = parse_all(&raw) else {
            panic!("malformed SSCAN reply {raw:?}");
        };
        let (Reply::Bulk(Some(cursor)), Some(batch)) = (&parts[0], member_list(&parts[1])) else {
            panic!("malformed SSCAN reply {parts:?}");
        };
        seen.extend(batch);
        if cursor == b"0" {
            return seen;
        }
        let mut next = args.to_vec();
        next[2] = cursor.clone();
        raw = if on_redis { runner.redis.call(&next) } else { runner.store_call(&next, now_ms()).to_bytes() };
    }
    panic!("SSCAN did not finish within 100000 calls");
}

// ---- the big phase ----

/// Integers in the intset phase: one past Redis's 512.
const BIG_INTEGERS: usize = 600;
/// Text members of the hashtable set.
const BIG_TEXTS: usize = 300;

/// Pins the model of Redis's encodings that `src/kv/set.rs` follows (the
/// Store does not serve OBJECT; its encodings are unit-tested).
fn assert_redis_encoding(runner: &mut Runner, key: &[u8], expected: &str, context: &str) {
    let encoding = runner.redis.call(&words(&[b"OBJECT", b"ENCODING", key]));
    let expected = format!("${}\r\n{expected}\r\n", expected.len());
    assert_same(&encoding, expected.as_bytes(), &format!("redis's encoding after {context}"));
}

/// The text set's members: short, long (up to 160 bytes, past the
/// Store's inline 22) and some integers the integer set has too.
fn big_text(i: usize) -> Vec<u8> {
    match i % 3 {
        0 => format!("member:{i}").into_bytes(),
        1 => format!("{}:{i}", "long".repeat(i % 40)).into_bytes(),
        _ => (i as i64 * 7 - 2000).to_string().into_bytes(),
    }
}

/// Sets past Redis's intset limits: an integer set grown past 512 members
/// (intset to hashtable), a text set with long members, algebra between
/// them and a small set, SSCAN with small COUNTs, random picks, and both
/// emptied (by SREM one by one, and by a SPOP of everything).
pub(super) fn big(runner: &mut Runner, seed: u64) {
    let mut step = 0;
    let mut run = |runner: &mut Runner, args: Vec<Vec<u8>>, check: Check| {
        step += 1;
        runner.run(seed, step, &Case { args, check });
    };
    let exact = Check::Exact;
    let (ints, texts, small, dest) = (&b"set:int"[..], &b"set:text"[..], &b"set:small"[..], &b"set:dest"[..]);
    for batch in (0..BIG_INTEGERS).collect::<Vec<_>>().chunks(7) {
        let mut args = words(&[b"SADD", ints]);
        args.extend(batch.iter().map(|i| (*i as i64 * 7 - 2000).to_string().into_bytes()));
        run(runner, args, exact);
        let len = batch[batch.len() - 1] + 1;
        if len == 511 || len == 518 {
            let expected = if len <= 512 { "intset" } else { "hashtable" };
            assert_redis_encoding(runner, ints, expected, &format!("{len} integers"));
        }
    }
    for i in 0..BIG_TEXTS {
        run(runner, vec![b"SADD".to_vec(), texts.to_vec(), big_text(i)], exact);
    }
    // An intset turned hashtable by one member that is no integer, and
    // staying so when it goes.
    let mut args = words(&[b"SADD", small, b"-2000", b"-1993", b"5", b"-1986"]);
    args.extend(words(&[b"9223372036854775807", b"-9223372036854775808"]));
    run(runner, args, exact);
    assert_redis_encoding(runner, small, "intset", "six integers");
    run(runner, words(&[b"SADD", small, b"x", b"5"]), exact);
    assert_redis_encoding(runner, small, "hashtable", "a member that is no integer");
    run(runner, words(&[b"SREM", small, b"x"]), exact);
    assert_redis_encoding(runner, small, "hashtable", "the non-integer removed");
    run(runner, words(&[b"SADD", small, b"x", b"member:0"]), exact);
    for key in [ints, texts, small] {
        run(runner, words(&[b"SCARD", key]), exact);
        run(runner, words(&[b"SMEMBERS", key]), Check::With(check_sorted));
        run(runner, words(&[b"SMISMEMBER", key, b"-2000", b"member:3", b"5", b"nope"]), exact);
        for count in [&b"1"[..], b"10", b"1000"] {
            run(runner, words(&[b"SSCAN", key, b"0", b"COUNT", count]), Check::With(check_sscan));
        }
        run(
            runner,
            words(&[b"SSCAN", key, b"0", b"MATCH", b"*1*", b"COUNT", b"5"]),
            Check::With(check_sscan),
        );
        for count in [&b"3"[..], b"5", b"7", b"40", b"-7", b"1000", b"-1000"] {
            run(runner, words(&[b"SRANDMEMBER", key, count]), Check::With(check_srandmember));
        }
    }
    algebra(&mut |args, check| run(runner, args, check), [ints, texts, small, dest]);
    pops_and_emptying(&mut |args, check| run(runner, args, check), [ints, texts, small]);
}

/// SINTER, SUNION, SDIFF, SINTERCARD and the STORE forms between the big
/// sets and the small one.
fn algebra(run: &mut dyn FnMut(Vec<Vec<u8>>, Check), [ints, texts, small, dest]: [&[u8]; 4]) {
    let sorted = Check::With(check_sorted);
    for (first, second) in [(ints, small), (small, ints), (texts, ints), (ints, texts), (texts, small)] {
        for name in [&b"SINTER"[..], b"SUNION", b"SDIFF"] {
            run(words(&[name, first, second]), sorted);
        }
        for name in [&b"SINTERSTORE"[..], b"SUNIONSTORE", b"SDIFFSTORE"] {
            run(words(&[name, dest, first, second]), Check::Exact);
            run(words(&[b"SMEMBERS", dest]), sorted);
        }
        for limit in [&b"0"[..], b"1", b"3", b"100000"] {
            run(words(&[b"SINTERCARD", b"2", first, second, b"LIMIT", limit]), Check::Exact);
        }
    }
    run(words(&[b"SUNION", ints, texts, small, b"set:none"]), sorted);
    run(words(&[b"SDIFF", texts, ints, small]), sorted);
    run(words(&[b"SINTER", ints, texts, small]), sorted);
    run(words(&[b"SDIFFSTORE", dest, small, small]), Check::Exact);
    run(words(&[b"EXISTS", dest]), Check::Exact);
}

/// Random pops (partial: brought back in line; whole: forced), SMOVE, and
/// both big sets emptied.
fn pops_and_emptying(run: &mut dyn FnMut(Vec<Vec<u8>>, Check), [ints, texts, small]: [&[u8]; 3]) {
    let pop = Check::With(check_spop);
    run(words(&[b"SPOP", ints]), pop);
    run(words(&[b"SPOP", ints, b"5"]), pop);
    // Few left for the count: Redis builds a new set of what stays.
    run(words(&[b"SPOP", ints, b"550"]), pop);
    run(words(&[b"SCARD", ints]), Check::Exact);
    run(words(&[b"SMEMBERS", ints]), Check::With(check_sorted));
    run(words(&[b"SPOP", texts, b"3"]), pop);
    for i in (0..BIG_TEXTS).step_by(25) {
        run(
            vec![b"SMOVE".to_vec(), texts.to_vec(), small.to_vec(), format!("member:{i}").into_bytes()],
            Check::Exact,
        );
    }
    run(words(&[b"SMEMBERS", small]), Check::With(check_sorted));
    run(words(&[b"SPOP", ints, b"100000"]), Check::With(check_sorted));
    run(words(&[b"EXISTS", ints]), Check::Exact);
    for i in 0..BIG_TEXTS {
        run(vec![b"SREM".to_vec(), texts.to_vec(), big_text(i), b"absent".to_vec()], Check::Exact);
    }
    run(words(&[b"EXISTS", texts]), Check::Exact);
}
