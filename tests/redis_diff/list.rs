//! List commands: the generator's random list commands over the shared
//! key space (so they meet strings and hashes: WRONGTYPE), the final state
//! of each key as LRANGE reads it, and a phase with lists of thousands of
//! elements (several of the Store's chunks, several of Redis's quicklist
//! nodes), filled, read, edited and emptied.
//!
//! Everything is compared byte for byte, with one twist for the blocking
//! forms (BLPOP, BRPOP, BLMOVE, BRPOPLPUSH, BLMPOP): redis-server would
//! block on an empty list, so it gets them inside MULTI/EXEC, where Redis
//! 7.0 never blocks, and EXEC's one reply is compared with the Store's
//! reply to the bare command (the Store answers them as inside MULTI). As
//! the runner sends each case's arguments to both sides first, such a case
//! is carried by a harmless `EXISTS <the blocking command...>` (compared
//! too), and `in_multi` then runs the command itself. Blocking commands of
//! a wrong arity are sent bare: Redis refuses them before running them.

use super::{assert_same, now_ms, words, Case, Check, Generator, Runner};

/// Elements the commands share: few, so that LREM, LPOS and LINSERT find
/// them; with the empty string, an integer, glob characters, a NUL and a
/// byte that is not UTF-8.
const ELEMENTS: [&[u8]; 10] = [
    b"a",
    b"b",
    b"c",
    b"",
    b"1",
    b"-1",
    b"x:*",
    b"\xffe",
    b"a\x00b",
    b"a long element, longer than a key's inline bytes",
];

const TIMEOUTS: [&[u8]; 18] = [
    b"0",
    b"0.01",
    b"1",
    b"1.5",
    b"-1",
    b"abc",
    b"inf",
    b"1e300",
    b"-0.001",
    b"",
    b" 1",
    b"0x10",
    b"9.3e15",
    b"-0.0001",
    b"nan",
    b"9223372036854775",
    b"0\x00",
    b"1e-400",
];

/// Keys only list commands draw (besides the shared ones), so that lists
/// live long enough to grow: on the shared keys, strings and hashes
/// mostly win. FLUSHALL clears them with the rest between seeds.
const LIST_KEYS: [&[u8]; 3] = [b"list:a", b"list:b", b"list:c"];

/// The key a list command works on: the shared one drawn, or half of the
/// time a list-only key.
fn list_key(generator: &mut Generator, key: Vec<u8>) -> Vec<u8> {
    if generator.chance(50) {
        generator.pick(&LIST_KEYS).to_vec()
    } else {
        key
    }
}

/// Another key: shared or list-only.
fn other_key(generator: &mut Generator) -> Vec<u8> {
    let key = generator.key();
    list_key(generator, key)
}

fn element(generator: &mut Generator) -> Vec<u8> {
    if generator.chance(85) {
        generator.pick(&ELEMENTS).to_vec()
    } else {
        generator.value()
    }
}

/// An index or count: mostly small and either sign, else an integer text
/// that may be malformed or extreme.
fn index(generator: &mut Generator) -> Vec<u8> {
    if generator.chance(80) {
        (generator.below(14) as i64 - 7).to_string().into_bytes()
    } else {
        generator.integer_text()
    }
}

fn end(generator: &mut Generator) -> Vec<u8> {
    if generator.chance(5) {
        return generator.pick(&[b"up", b"", b"LEFTX", b"left\x00"]).to_vec();
    }
    generator.pick(&[b"LEFT", b"RIGHT", b"left", b"right", b"Left"]).to_vec()
}

/// A destination: often the source itself (a rotation).
fn destination(generator: &mut Generator, key: &[u8]) -> Vec<u8> {
    if generator.chance(30) {
        key.to_vec()
    } else {
        other_key(generator)
    }
}

/// One random list command on `key`.
pub(super) fn case(generator: &mut Generator, key: Vec<u8>) -> Case {
    let key = list_key(generator, key);
    let exact = |args: Vec<Vec<u8>>| Case { args, check: Check::Exact };
    match generator.below(44) {
        0..=6 => {
            let name = generator.pick(&[b"LPUSH", b"RPUSH", b"rpush"]).to_vec();
            let mut args = vec![name, key];
            for _ in 0..generator.rng.range(1, 5) {
                args.push(element(generator));
            }
            exact(args)
        }
        7 => {
            let name = generator.pick(&[b"LPUSHX", b"RPUSHX"]).to_vec();
            exact(vec![name, key, element(generator)])
        }
        8..=11 => {
            let name = generator.pick(&[b"LPOP", b"RPOP"]).to_vec();
            let mut args = vec![name, key];
            match generator.below(10) {
                0..=3 => {}
                4..=7 => args.push(generator.below(5).to_string().into_bytes()),
                8 => args.push(index(generator)),
                _ => args.extend(words(&[b"1", b"2"])),
            }
            exact(args)
        }
        12 => exact(vec![b"LLEN".to_vec(), key]),
        13 | 14 => exact(vec![b"LINDEX".to_vec(), key, index(generator)]),
        15 => exact(vec![b"LSET".to_vec(), key, index(generator), element(generator)]),
        16..=18 => exact(vec![b"LRANGE".to_vec(), key, index(generator), index(generator)]),
        19 => exact(vec![b"LTRIM".to_vec(), key, index(generator), index(generator)]),
        20 | 21 => exact(vec![b"LREM".to_vec(), key, index(generator), element(generator)]),
        22 => {
            let place = generator.pick(&[b"BEFORE", b"AFTER", b"before", b"after", b"middle"]).to_vec();
            exact(vec![b"LINSERT".to_vec(), key, place, element(generator), element(generator)])
        }
        23 | 24 => exact(lpos(generator, key)),
        25 | 26 => {
            let destination = destination(generator, &key);
            exact(vec![b"LMOVE".to_vec(), key, destination, end(generator), end(generator)])
        }
        27 => exact(vec![b"RPOPLPUSH".to_vec(), key.clone(), destination(generator, &key)]),
        28 | 29 => exact(lmpop(generator, b"LMPOP", None, key)),
        30..=35 => blocking_case(generator, key),
        36 => exact(wrong_arity(generator)),
        _ => exact(vec![b"LRANGE".to_vec(), key, b"0".to_vec(), b"-1".to_vec()]),
    }
}

fn lpos(generator: &mut Generator, key: Vec<u8>) -> Vec<Vec<u8>> {
    let mut args = vec![b"LPOS".to_vec(), key, element(generator)];
    for _ in 0..generator.below(4) {
        match generator.below(7) {
            0 | 1 => {
                args.push(generator.pick(&[b"RANK", b"rank"]).to_vec());
                args.push(
                    generator
                        .pick(&[
                            b"1",
                            b"2",
                            b"3",
                            b"-1",
                            b"-2",
                            b"0",
                            b"x",
                            b"-9223372036854775808",
                            b"9223372036854775807",
                        ])
                        .to_vec(),
                );
            }
            2 | 3 => {
                args.push(b"COUNT".to_vec());
                args.push(generator.pick(&[b"0", b"1", b"2", b"-1", b"x"]).to_vec());
            }
            4 | 5 => {
                args.push(b"MAXLEN".to_vec());
                args.push(generator.pick(&[b"0", b"1", b"3", b"-1", b"x"]).to_vec());
            }
            _ => args.push(generator.pick(&[b"FOO", b"COUNT", b"RANK"]).to_vec()),
        }
    }
    args
}

/// LMPOP or BLMPOP (with `timeout`): numkeys, keys (the first `key`),
/// a direction and maybe a COUNT; sometimes malformed.
fn lmpop(generator: &mut Generator, name: &[u8], timeout: Option<Vec<u8>>, key: Vec<u8>) -> Vec<Vec<u8>> {
    let mut args = vec![name.to_vec()];
    args.extend(timeout);
    let mut keys = vec![key];
    keys.extend((0..generator.below(3)).map(|_| other_key(generator)));
    let numkeys = match generator.below(12) {
        0 => generator.pick(&[b"0", b"-1", b"x", b"9223372036854775807"]).to_vec(),
        1 => (keys.len() + 1).to_string().into_bytes(),
        _ => keys.len().to_string().into_bytes(),
    };
    args.push(numkeys);
    args.extend(keys);
    args.push(end(generator));
    match generator.below(8) {
        0..=2 => {}
        3..=5 => args.extend([b"COUNT".to_vec(), generator.rng.range(1, 6).to_string().into_bytes()]),
        6 => args.extend([
            b"count".to_vec(),
            generator.pick(&[b"0", b"-1", b"x", b"9223372036854775807"]).to_vec(),
        ]),
        _ => args.push(generator.pick(&[b"COUNT", b"FOO"]).to_vec()),
    }
    args
}

/// A blocking command, carried by EXISTS and run inside MULTI on Redis.
fn blocking_case(generator: &mut Generator, key: Vec<u8>) -> Case {
    let timeout = generator.pick(&TIMEOUTS).to_vec();
    let command = match generator.below(5) {
        0 | 1 => {
            let mut args = vec![generator.pick(&[b"BLPOP", b"BRPOP"]).to_vec(), key];
            args.extend((0..generator.below(3)).map(|_| other_key(generator)));
            args.push(timeout);
            args
        }
        2 => {
            let destination = destination(generator, &key);
            vec![b"BLMOVE".to_vec(), key, destination, end(generator), end(generator), timeout]
        }
        3 => {
            let destination = destination(generator, &key);
            vec![b"BRPOPLPUSH".to_vec(), key, destination, timeout]
        }
        _ => lmpop(generator, b"BLMPOP", Some(timeout), key),
    };
    let mut args = vec![b"EXISTS".to_vec()];
    args.extend(command);
    Case { args, check: Check::With(in_multi) }
}

/// Compares the EXISTS carrying a blocking command, then the command: the
/// Store's reply to it against EXEC's one reply on Redis.
fn in_multi(runner: &mut Runner, case: &Case, ours: cashe::protocol::Reply, raw: Vec<u8>, context: &str) {
    assert_same(&ours.to_bytes(), &raw, &format!("{context} (the EXISTS carrying the command)"));
    let command = &case.args[1..];
    let ours = runner.store_call(command, now_ms());
    assert_eq!(runner.redis.call(&words(&[b"MULTI"])), b"+OK\r\n", "{context}");
    assert_eq!(runner.redis.call(command), b"+QUEUED\r\n", "{context}");
    let exec = runner.redis.call(&words(&[b"EXEC"]));
    let Some(theirs) = exec.strip_prefix(b"*1\r\n") else {
        panic!("{context}: EXEC answered {}", String::from_utf8_lossy(&exec));
    };
    assert_same(&ours.to_bytes(), theirs, &format!("{context} (inside MULTI on Redis)"));
    runner.compared += 1;
}

/// A list command with a wrong number of arguments (blocking ones too:
/// Redis refuses them before they could block).
fn wrong_arity(generator: &mut Generator) -> Vec<Vec<u8>> {
    const ARITIES: [(&[u8], i64); 16] = [
        (b"LPUSH", -3),
        (b"RPUSHX", -3),
        (b"LPOP", -2),
        (b"LLEN", 2),
        (b"LINDEX", 3),
        (b"LSET", 4),
        (b"LRANGE", 4),
        (b"LREM", 4),
        (b"LINSERT", 5),
        (b"LPOS", -3),
        (b"LMOVE", 5),
        (b"RPOPLPUSH", 3),
        (b"LMPOP", -4),
        (b"BLPOP", -3),
        (b"BLMOVE", 6),
        (b"BLMPOP", -5),
    ];
    let (name, arity) = ARITIES[generator.below(ARITIES.len() as u64) as usize];
    let count = loop {
        let count = generator.below(7) as i64;
        let argc = count + 1;
        if (arity > 0 && argc != arity) || argc < -arity {
            break count;
        }
    };
    let mut args = vec![name.to_vec()];
    args.extend((0..count).map(|_| generator.key()));
    args
}

/// Reads that show `key`'s whole value, run after each seed; with the
/// first shared key, those of the list-only keys too.
pub(super) fn final_state(key: &[u8]) -> Vec<Case> {
    let mut keys = vec![key];
    if key == super::KEYS[0] {
        keys.extend(LIST_KEYS);
    }
    let read = |name: &[u8], key: &[u8], rest: &[&[u8]]| {
        let mut args = vec![name.to_vec(), key.to_vec()];
        args.extend(rest.iter().map(|arg| arg.to_vec()));
        Case { args, check: Check::Exact }
    };
    keys.into_iter().flat_map(|key| [read(b"LRANGE", key, &[b"0", b"-1"]), read(b"LLEN", key, &[])]).collect()
}

/// Elements of the long lists: repeated ones for LREM, LPOS and LINSERT,
/// a few hundred bytes long, some past a chunk's and a quicklist node's
/// size, and many short ones.
fn big_element(generator: &mut Generator, i: usize) -> Vec<u8> {
    match generator.below(100) {
        0..=9 => format!("dup{}", generator.below(7)).into_bytes(),
        10..=14 => vec![b'x'; 100 + generator.below(300) as usize],
        15 => vec![b'y'; 4000 + generator.below(6000) as usize],
        16..=20 => generator.integer_text(),
        _ => format!("e{i}").into_bytes(),
    }
}

/// Lists of thousands of elements: pushed at both ends, read by windows
/// and indexes (negative ones too), edited in the middle, moved between
/// two lists and rotated, trimmed, then popped until the keys are gone.
pub(super) fn big(runner: &mut Runner, seed: u64) {
    const BIG: &[u8] = b"list:big";
    const OTHER: &[u8] = b"list:other";
    let mut generator = Generator::new(seed);
    let exact = |runner: &mut Runner, args: Vec<Vec<u8>>| {
        runner.run(seed, 0, &Case { args, check: Check::Exact });
    };
    let mut pushed = 0;
    while pushed < 4000 {
        let name = if generator.chance(50) { b"RPUSH".to_vec() } else { b"LPUSH".to_vec() };
        let mut args = vec![name, BIG.to_vec()];
        for _ in 0..generator.rng.range(1, 40) {
            args.push(big_element(&mut generator, pushed));
            pushed += 1;
        }
        exact(runner, args);
    }
    let with = |name: &[u8], rest: Vec<Vec<u8>>| {
        let mut args = vec![name.to_vec(), BIG.to_vec()];
        args.extend(rest);
        args
    };
    let number = |n: i64| n.to_string().into_bytes();
    exact(runner, with(b"LLEN", vec![]));
    for _ in 0..60 {
        let start = generator.below(9000) as i64 - 4500;
        let end = start + generator.below(300) as i64;
        exact(runner, with(b"LRANGE", vec![number(start), number(end)]));
    }
    for _ in 0..60 {
        let index = generator.below(9000) as i64 - 4500;
        exact(runner, with(b"LINDEX", vec![number(index)]));
        let value = big_element(&mut generator, 0);
        exact(runner, with(b"LSET", vec![number(-(generator.below(4100) as i64) - 1), value]));
    }
    for _ in 0..30 {
        let place = if generator.chance(50) { b"BEFORE".to_vec() } else { b"AFTER".to_vec() };
        let pivot = format!("dup{}", generator.below(8)).into_bytes();
        exact(runner, with(b"LINSERT", vec![place, pivot, big_element(&mut generator, 0)]));
    }
    for _ in 0..20 {
        let mut args = vec![format!("dup{}", generator.below(8)).into_bytes()];
        for option in [&b"RANK"[..], b"COUNT", b"MAXLEN"] {
            if generator.chance(50) {
                let value = match option {
                    b"RANK" => generator.below(20) as i64 - 10,
                    b"COUNT" => generator.below(30) as i64,
                    _ => generator.below(3000) as i64,
                };
                args.extend([
                    option.to_vec(),
                    number(if value == 0 && option == b"RANK" { 1 } else { value }),
                ]);
            }
        }
        exact(runner, with(b"LPOS", args));
    }
    for count in [2, -3, 0, 5, -1] {
        exact(runner, with(b"LREM", vec![number(count), format!("dup{}", generator.below(7)).into_bytes()]));
    }
    for _ in 0..100 {
        let (from, to) = (end(&mut generator), end(&mut generator));
        let target = if generator.chance(50) { BIG.to_vec() } else { OTHER.to_vec() };
        exact(runner, vec![b"LMOVE".to_vec(), BIG.to_vec(), target, from, to]);
    }
    exact(runner, vec![b"RPOPLPUSH".to_vec(), OTHER.to_vec(), BIG.to_vec()]);
    exact(runner, vec![b"LMPOP".to_vec(), b"2".to_vec(), OTHER.to_vec(), BIG.to_vec(), b"RIGHT".to_vec()]);
    exact(runner, with(b"LTRIM", vec![number(100), number(-100)]));
    exact(runner, with(b"LRANGE", vec![number(0), number(-1)]));
    let carried = |command: Vec<Vec<u8>>| {
        let mut args = vec![b"EXISTS".to_vec()];
        args.extend(command);
        Case { args, check: Check::With(in_multi) }
    };
    runner.run(seed, 0, &carried(words(&[b"BLMPOP", b"0", b"2", OTHER, BIG, b"LEFT", b"COUNT", b"50"])));
    runner.run(seed, 0, &carried(words(&[b"BRPOP", OTHER, BIG, b"0"])));
    runner.run(seed, 0, &carried(words(&[b"BLMOVE", BIG, OTHER, b"RIGHT", b"LEFT", b"0"])));
    while exists(runner, BIG) || exists(runner, OTHER) {
        let name = if generator.chance(50) { b"LPOP".to_vec() } else { b"RPOP".to_vec() };
        let key = if generator.chance(70) { BIG.to_vec() } else { OTHER.to_vec() };
        let count = number(generator.rng.range(1, 300) as i64);
        exact(runner, vec![name, key, count]);
        exact(runner, with(b"LINDEX", vec![number(-1)]));
    }
    exact(runner, words(&[b"EXISTS", BIG, OTHER]));
}

/// Whether `key` exists in the Store (its state is Redis's, as compared).
fn exists(runner: &mut Runner, key: &[u8]) -> bool {
    runner.store.read(&words(&[b"EXISTS", key]), now_ms()) == cashe::protocol::Reply::Integer(1)
}
