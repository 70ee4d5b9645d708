//! Sorted set commands: the generator's cases, the final state of each key
//! (ZRANGE 0 -1 WITHSCORES), a run of sorted set commands only, and a
//! phase of large sorted sets (skiplist encoding in Redis).
//!
//! Compared otherwise than byte for byte:
//! - ZRANDMEMBER (`Check::With`): Redis draws at random; the counts must
//!   agree, every member Redis picked must be in the Store's set with the
//!   score Redis gave, and a positive count's picks must be distinct.
//! - ZSCAN: as HSCAN, a full iteration's member-score pairs (Redis answers
//!   a small set whole; the Store's cursor over a large set differs).
//! - BZPOPMIN, BZPOPMAX, BZMPOP: sent with a timeout of 10 ms (or an
//!   invalid one), so Redis answers a nil array for empty keys as the
//!   Store does at once (as inside MULTI).
//! - Range by lex (ZRANGEBYLEX, ZLEXCOUNT, ZREMRANGEBYLEX, ZRANGE BYLEX...)
//!   on a set whose scores differ is only defined for Redis's listpack;
//!   when Redis's answer differs and its key is a skiplist, it is not
//!   compared (see `src/kv/zset.rs`).
//! - Plain sets as ZUNION/ZINTER/ZDIFF inputs: SADD is generated only once
//!   the Store serves it (the set commands are written on another branch;
//!   unit tests cover plain set inputs meanwhile).

use super::{parse_all, words, Case, Check, Generator, Reply, Runner};

/// The members the commands share: few, so that ZREM empties sets.
const MEMBERS: [&[u8]; 8] = [b"a", b"b", b"c", b"d", b"", b"m:*", b"\xffz", b"aa"];

impl Generator {
    fn member(&mut self) -> Vec<u8> {
        if self.chance(2) {
            // Past the listpack's 64 bytes: converts the set to a skiplist.
            return vec![b'L'; 65 + self.below(3) as usize];
        }
        self.pick(&MEMBERS).to_vec()
    }

    fn score_text(&mut self) -> Vec<u8> {
        const SPECIAL: [&[u8]; 16] = [
            b"inf",
            b"-inf",
            b"+inf",
            b"1e300",
            b"-1e300",
            b"1e-300",
            b"-0",
            b"0",
            b"0.1",
            b"1.5",
            b"-2.5",
            b"4503599627370497",
            b"1e17",
            b"0x10",
            b"nan",
            b"abc",
        ];
        match self.below(10) {
            0..=4 => (self.below(9) as i64 - 3).to_string().into_bytes(),
            5..=7 => self.pick(&SPECIAL).to_vec(),
            8 => format!("{}.{}", self.below(10) as i64 - 5, self.below(1000)).into_bytes(),
            _ => self.float_text(),
        }
    }

    fn score_bound(&mut self) -> Vec<u8> {
        const SPECIAL: [&[u8]; 12] = [
            b"-inf", b"+inf", b"inf", b"(inf", b"(-inf", b"abc", b"", b"(", b"1e400", b" 1", b"(1.5", b"nan",
        ];
        if self.chance(20) {
            return self.pick(&SPECIAL).to_vec();
        }
        let open = if self.chance(30) { "(" } else { "" };
        format!("{open}{}", self.below(9) as i64 - 3).into_bytes()
    }

    fn lex_bound(&mut self) -> Vec<u8> {
        const SPECIAL: [&[u8]; 9] = [b"-", b"+", b"[", b"(", b"a", b"", b"+x", b"[\xff", b"(m:"];
        if self.chance(30) {
            return self.pick(&SPECIAL).to_vec();
        }
        let open: &[u8] = if self.chance(50) { b"[" } else { b"(" };
        [open, &self.member()].concat()
    }

    fn index_text(&mut self) -> Vec<u8> {
        if self.chance(90) {
            (self.below(14) as i64 - 7).to_string().into_bytes()
        } else {
            self.integer_text()
        }
    }

    fn count_text(&mut self) -> Vec<u8> {
        if self.chance(85) {
            (self.below(6) as i64 - 1).to_string().into_bytes()
        } else {
            self.pick(&[b"abc", b"-5", b"9223372036854775807", b"0", b"100"]).to_vec()
        }
    }

    fn timeout(&mut self) -> Vec<u8> {
        if self.chance(85) {
            b"0.01".to_vec()
        } else {
            self.pick(&[b"-1", b"abc", b"inf", b"-0.002", b"1e300", b""]).to_vec()
        }
    }

    /// ZRANGE's options after min and max.
    fn range_options(&mut self, args: &mut Vec<Vec<u8>>, store: bool) {
        let options: [&[u8]; 7] =
            [b"WITHSCORES", b"REV", b"BYSCORE", b"BYLEX", b"LIMIT", b"withscores", b"rev"];
        for _ in 0..self.below(4) {
            let option = self.pick(&options);
            if store && option.eq_ignore_ascii_case(b"withscores") && self.chance(80) {
                continue;
            }
            args.push(option.to_vec());
            if option == b"LIMIT" && self.chance(95) {
                args.push(self.index_text());
                args.push(self.index_text());
            }
        }
    }

    /// Weights, AGGREGATE, WITHSCORES, LIMIT for the set algebra.
    fn algebra_options(&mut self, args: &mut Vec<Vec<u8>>, keys: usize) {
        for _ in 0..self.below(3) {
            match self.below(5) {
                0 | 1 => {
                    args.push(b"WEIGHTS".to_vec());
                    for _ in 0..keys {
                        let weight = match self.below(8) {
                            0 => self.score_text(),
                            1 => b"0".to_vec(),
                            _ => (self.below(5) as i64 - 2).to_string().into_bytes(),
                        };
                        args.push(weight);
                    }
                }
                2 => {
                    args.push(b"AGGREGATE".to_vec());
                    args.push(self.pick(&[b"SUM", b"min", b"MAX", b"avg"]).to_vec());
                }
                3 => args.push(b"WITHSCORES".to_vec()),
                _ => {
                    args.push(b"LIMIT".to_vec());
                    args.push(self.count_text());
                }
            }
        }
    }
}

/// Reads that pick by range and whose answer depends on lex order.
fn lex_case(args: Vec<Vec<u8>>) -> Case {
    Case { args, check: Check::With(compare_lex) }
}

/// One random sorted set command on `key`.
pub(super) fn case(generator: &mut Generator, key: Vec<u8>) -> Case {
    let g = generator;
    let exact = |args: Vec<Vec<u8>>| Case { args, check: Check::Exact };
    match g.below(40) {
        0..=5 => {
            let mut args = vec![b"ZADD".to_vec(), key];
            if g.chance(40) {
                let options: [&[u8]; 7] = [b"NX", b"XX", b"GT", b"LT", b"CH", b"INCR", b"ch"];
                for _ in 0..g.rng.range(1, 3) {
                    args.push(g.pick(&options).to_vec());
                }
            }
            for _ in 0..g.rng.range(1, 4) {
                args.push(g.score_text());
                args.push(g.member());
            }
            if g.chance(3) {
                args.pop();
            }
            exact(args)
        }
        6 | 7 => exact(vec![b"ZINCRBY".to_vec(), key, g.score_text(), g.member()]),
        8 | 9 => {
            let mut args = vec![b"ZREM".to_vec(), key];
            args.extend((0..g.rng.range(1, 4)).map(|_| g.member()));
            exact(args)
        }
        10 => exact(vec![b"ZCARD".to_vec(), key]),
        11 => exact(vec![b"ZCOUNT".to_vec(), key, g.score_bound(), g.score_bound()]),
        12 => lex_case(vec![b"ZLEXCOUNT".to_vec(), key, g.lex_bound(), g.lex_bound()]),
        13 => exact(vec![b"ZSCORE".to_vec(), key, g.member()]),
        14 => {
            let mut args = vec![b"ZMSCORE".to_vec(), key];
            args.extend((0..g.rng.range(1, 4)).map(|_| g.member()));
            exact(args)
        }
        15 => exact(vec![g.pick(&[b"ZRANK", b"ZREVRANK"]).to_vec(), key, g.member()]),
        16..=18 => {
            let mut args = vec![b"ZRANGE".to_vec(), key];
            let by = g.below(3);
            let (min, max) = match by {
                0 => (g.index_text(), g.index_text()),
                1 => (g.score_bound(), g.score_bound()),
                _ => (g.lex_bound(), g.lex_bound()),
            };
            args.extend([min, max]);
            if by == 1 {
                args.push(b"BYSCORE".to_vec());
            } else if by == 2 {
                args.push(b"BYLEX".to_vec());
            }
            g.range_options(&mut args, false);
            lex_case(args)
        }
        19 => {
            let mut args = vec![b"ZRANGESTORE".to_vec(), g.key(), key];
            args.extend([g.index_text(), g.index_text()]);
            if g.chance(50) {
                args[3] = g.score_bound();
                args[4] = g.score_bound();
                args.push(b"BYSCORE".to_vec());
            }
            g.range_options(&mut args, true);
            lex_case(args)
        }
        20 => {
            let name = g.pick(&[b"ZRANGEBYSCORE", b"ZREVRANGEBYSCORE"]).to_vec();
            let mut args = vec![name, key, g.score_bound(), g.score_bound()];
            g.range_options(&mut args, false);
            exact(args)
        }
        21 => {
            let name = g.pick(&[b"ZRANGEBYLEX", b"ZREVRANGEBYLEX"]).to_vec();
            let mut args = vec![name, key, g.lex_bound(), g.lex_bound()];
            g.range_options(&mut args, false);
            lex_case(args)
        }
        22 => {
            let mut args = vec![b"ZREVRANGE".to_vec(), key, g.index_text(), g.index_text()];
            g.range_options(&mut args, false);
            exact(args)
        }
        23 => exact(vec![b"ZREMRANGEBYRANK".to_vec(), key, g.index_text(), g.index_text()]),
        24 => exact(vec![b"ZREMRANGEBYSCORE".to_vec(), key, g.score_bound(), g.score_bound()]),
        25 => lex_case(vec![b"ZREMRANGEBYLEX".to_vec(), key, g.lex_bound(), g.lex_bound()]),
        26 | 27 => {
            let mut args = vec![g.pick(&[b"ZPOPMIN", b"ZPOPMAX"]).to_vec(), key];
            if g.chance(50) {
                args.push(g.count_text());
            }
            if g.chance(3) {
                args.push(b"1".to_vec());
            }
            exact(args)
        }
        28 => {
            let keys = g.keys(1);
            let mut args = vec![b"ZMPOP".to_vec(), keys.len().to_string().into_bytes()];
            if g.chance(5) {
                args[1] = g.pick(&[b"0", b"-1", b"abc", b"9"]).to_vec();
            }
            args.extend(keys);
            args.push(g.pick(&[b"MIN", b"max", b"MID"]).to_vec());
            if g.chance(50) {
                args.push(b"COUNT".to_vec());
                args.push(g.count_text());
            }
            exact(args)
        }
        29 => {
            let mut args = vec![g.pick(&[b"BZPOPMIN", b"BZPOPMAX"]).to_vec()];
            args.extend(g.keys(1));
            args.push(g.timeout());
            exact(args)
        }
        30 => {
            let keys = g.keys(1);
            let mut args = vec![b"BZMPOP".to_vec(), g.timeout(), keys.len().to_string().into_bytes()];
            args.extend(keys);
            args.push(g.pick(&[b"MIN", b"MAX", b"min"]).to_vec());
            if g.chance(50) {
                args.push(b"COUNT".to_vec());
                args.push(g.count_text());
            }
            exact(args)
        }
        31..=33 => {
            let names: [&[u8]; 7] = [
                b"ZUNION",
                b"ZINTER",
                b"ZDIFF",
                b"ZUNIONSTORE",
                b"ZINTERSTORE",
                b"ZDIFFSTORE",
                b"ZINTERCARD",
            ];
            let name = g.pick(&names).to_vec();
            let mut args = vec![name.clone()];
            if name.ends_with(b"STORE") {
                args.push(g.key());
            }
            let keys = g.keys(1);
            let count = keys.len();
            args.push(count.to_string().into_bytes());
            if g.chance(4) {
                args.last_mut().expect("numkeys").clone_from(&g.pick(&[b"0", b"-1", b"x", b"7"]).to_vec());
            }
            args.extend(keys);
            g.algebra_options(&mut args, count);
            exact(args)
        }
        34 | 35 => {
            let mut args = vec![b"ZRANDMEMBER".to_vec(), key];
            if g.chance(80) {
                args.push(g.count_text());
                if g.chance(50) {
                    args.push(g.pick(&[b"WITHSCORES", b"withscores", b"WITHSCORE"]).to_vec());
                }
            }
            Case { args, check: Check::With(compare_random) }
        }
        36 => {
            let mut args = vec![b"ZSCAN".to_vec(), key, b"0".to_vec()];
            if g.chance(40) {
                args.extend(words(&[b"MATCH", g.pick(&[b"*", b"a*", b"m:\\*", b"?"])]));
            }
            if g.chance(40) {
                args.extend([b"COUNT".to_vec(), g.count_text()]);
            }
            if g.chance(5) {
                args[2] = b"x".to_vec();
            }
            Case { args, check: Check::HScanAll }
        }
        37 if super::classify(&words(&[b"SADD", b"k", b"m"])).is_ok() => {
            // Plain sets as ZUNION/ZINTER/ZDIFF inputs, once SADD is served.
            exact(vec![b"SADD".to_vec(), key, g.member(), g.member()])
        }
        _ => exact(vec![b"ZADD".to_vec(), key, g.score_text(), g.member()]),
    }
}

/// Lex ranges: byte for byte unless Redis's key is a skiplist (or was,
/// and the command deleted it; see the module docs); the key the command
/// may have changed is then made the same on both sides (`resync`).
fn compare_lex(runner: &mut Runner, case: &Case, ours: Reply, raw: Vec<u8>, context: &str) {
    let store = case.args[0].eq_ignore_ascii_case(b"ZRANGESTORE");
    let source = if store { &case.args[2] } else { &case.args[1] };
    // The key a write changed: equal counts may hide different members.
    let changed = if store {
        Some(&case.args[1])
    } else if case.args[0].eq_ignore_ascii_case(b"ZREMRANGEBYLEX") {
        Some(source)
    } else {
        None
    };
    let whole = |key: &[u8]| words(&[b"ZRANGE", key, b"0", b"-1", b"WITHSCORES"]);
    let mut mine = ours.to_bytes();
    let mut theirs = raw;
    if mine == theirs {
        let Some(key) = changed else { return };
        mine = runner.store.read(&whole(key), super::now_ms()).for_protocol(runner.protocol).to_bytes();
        theirs = runner.redis.call(&whole(key));
        if mine == theirs {
            return;
        }
    }
    let encoding = runner.redis.call(&[b"OBJECT".to_vec(), b"ENCODING".to_vec(), source.clone()]);
    let skiplist = encoding.windows(8).any(|window| window == b"skiplist");
    let deleted = matches!(parse_all(&encoding), Reply::Bulk(None) | Reply::Null);
    if skiplist || deleted {
        resync(runner, changed.unwrap_or(source));
        return;
    }
    super::assert_same(&mine, &theirs, context);
}

/// Gives `key` the Store's sorted set on both sides, in skiplist encoding
/// on both (a member past 64 bytes added and removed).
fn resync(runner: &mut Runner, key: &[u8]) {
    let now = super::now_ms();
    let read = vec![b"ZRANGE".to_vec(), key.to_vec(), b"0".to_vec(), b"-1".to_vec(), b"WITHSCORES".to_vec()];
    let pairs = match runner.store.read(&read, now) {
        Reply::Pairs(pairs) => pairs,
        _ => Vec::new(),
    };
    let long = vec![b'L'; 70];
    let mut zadd = vec![b"ZADD".to_vec(), key.to_vec(), b"0".to_vec(), long.clone()];
    for (member, score) in pairs {
        let (Reply::Bulk(Some(member)), Reply::Double(score)) = (member, score) else { continue };
        zadd.push(score.into_bytes());
        zadd.push(member);
    }
    let zrem = vec![b"ZREM".to_vec(), key.to_vec(), long];
    for args in [vec![b"DEL".to_vec(), key.to_vec()], zadd, zrem] {
        runner.redis.call(&args);
        runner.store.apply(&args, now);
    }
}

/// The members (and scores) of a ZRANDMEMBER reply, flat.
fn flat(reply: Reply) -> Option<Vec<Reply>> {
    match reply {
        Reply::Array(Some(items)) => Some(
            items
                .into_iter()
                .flat_map(|item| match item {
                    Reply::Array(Some(pair)) => pair,
                    other => vec![other],
                })
                .collect(),
        ),
        Reply::Pairs(pairs) => Some(pairs.into_iter().flat_map(|(a, b)| [a, b]).collect()),
        _ => None,
    }
}

fn compare_random(runner: &mut Runner, case: &Case, ours: Reply, raw: Vec<u8>, context: &str) {
    let theirs = parse_all(&raw);
    let with_scores = case.args.len() == 4;
    let (Some(mine), Some(picked)) = (flat(ours.clone()), flat(theirs.clone())) else {
        // Errors, nil, or a single member: the same shape; a member must exist.
        match (&ours, &theirs) {
            (Reply::Bulk(Some(_)), Reply::Bulk(Some(member))) => {
                let args = vec![b"ZSCORE".to_vec(), case.args[1].clone(), member.clone()];
                let score = runner.store.read(&args, super::now_ms());
                assert!(
                    !matches!(score, Reply::Null | Reply::Bulk(None)),
                    "{context}: redis picked {member:?}"
                );
            }
            _ => super::assert_same(&ours.to_bytes(), &raw, context),
        }
        return;
    };
    assert_eq!(mine.len(), picked.len(), "{context}: counts");
    let step = if with_scores { 2 } else { 1 };
    let mut seen = std::collections::BTreeSet::new();
    for item in picked.chunks(step) {
        let Reply::Bulk(Some(member)) = &item[0] else { panic!("{context}: member {:?}", item[0]) };
        let args = vec![b"ZSCORE".to_vec(), case.args[1].clone(), member.clone()];
        let score = runner.store.read(&args, super::now_ms());
        let Reply::Double(score) = score else {
            panic!("{context}: redis picked {member:?}, not in the Store")
        };
        if with_scores {
            let theirs = match &item[1] {
                Reply::Bulk(Some(text)) => String::from_utf8_lossy(text).into_owned(),
                Reply::Double(text) => text.clone(),
                other => panic!("{context}: score {other:?}"),
            };
            assert_eq!(score, theirs, "{context}: score of {member:?}");
        }
        seen.insert(member.clone());
    }
    let positive = case.args.get(2).is_some_and(|count| !count.starts_with(b"-"));
    if positive {
        assert_eq!(seen.len(), picked.len() / step, "{context}: distinct picks");
    }
}

/// Reads that show `key`'s whole value, run after each seed.
pub(super) fn final_state(key: &[u8]) -> Vec<Case> {
    vec![
        Case { args: words(&[b"ZRANGE", key, b"0", b"-1", b"WITHSCORES"]), check: Check::Exact },
        Case { args: words(&[b"ZCARD", key]), check: Check::Exact },
    ]
}

/// Sorted set commands only, on the shared keys: more of them than the
/// mixed phase sends, so sets grow and meet each other more.
const ZSET_ONLY_CASES: usize = 4000;
/// ZADD, ZSCORE, ZCOUNT... rounds with random float texts.
const FLOAT_SCORES: usize = 1500;

/// Sorted sets past Redis's listpack limits: filled, read by every kind of
/// range, ranked, scanned, combined, then emptied. Before them, a run of
/// sorted set commands only (`ZSET_ONLY_CASES`).
pub(super) fn big(runner: &mut Runner, seed: u64) {
    const MEMBERS: usize = 300;
    let mut generator = Generator::new(seed + 1000);
    for step in 0..ZSET_ONLY_CASES {
        let key = generator.key();
        let case = case(&mut generator, key);
        runner.run(seed + 1000, step, &case);
    }
    for key in super::KEYS {
        for case in final_state(key) {
            runner.run(seed + 1000, ZSET_ONLY_CASES, &case);
        }
    }
    // Scores and bounds as every kind of float text: strtod's reading,
    // its range errors, %.17g printing.
    for step in 0..FLOAT_SCORES {
        let score = generator.float_text();
        let bound = [if generator.chance(30) { &b"("[..] } else { b"" }, &generator.float_text()].concat();
        for args in [
            vec![b"ZADD".to_vec(), b"fz".to_vec(), score.clone(), b"m".to_vec()],
            words(&[b"ZSCORE", b"fz", b"m"]),
            vec![b"ZCOUNT".to_vec(), b"fz".to_vec(), bound.clone(), b"+inf".to_vec()],
            vec![b"ZINCRBY".to_vec(), b"fz".to_vec(), generator.float_text(), b"m".to_vec()],
            vec![
                b"ZUNION".to_vec(),
                b"1".to_vec(),
                b"fz".to_vec(),
                b"WEIGHTS".to_vec(),
                score,
                b"WITHSCORES".to_vec(),
            ],
            vec![b"ZRANGEBYSCORE".to_vec(), b"fz".to_vec(), b"-inf".to_vec(), bound, b"WITHSCORES".to_vec()],
        ] {
            runner.run(seed + 2000, step, &Case { args, check: Check::Exact });
        }
    }
    let mut generator = Generator::new(seed);
    let g = &mut generator;
    let exact = |args: Vec<Vec<u8>>| Case { args, check: Check::Exact };
    let member = |i: u64| format!("member:{i}").into_bytes();
    let mut step = 0;
    let mut run = |runner: &mut Runner, case: Case| {
        step += 1;
        runner.run(seed, step, &case);
    };
    for i in 0..MEMBERS as u64 {
        let score = match g.below(4) {
            0 => g.below(20).to_string(),
            1 => format!("{}.{}", g.below(100) as i64 - 50, g.below(1000)),
            2 => g.pick(&[b"inf", b"-inf", b"1e300", b"-0", b"1e-300"]).iter().map(|b| *b as char).collect(),
            _ => (g.below(1000) as i64 - 500).to_string(),
        };
        run(runner, exact(vec![b"ZADD".to_vec(), b"bigz".to_vec(), score.into_bytes(), member(i)]));
        // A set of equal scores for the lex ranges.
        run(runner, exact(vec![b"ZADD".to_vec(), b"lexz".to_vec(), b"0".to_vec(), member(i)]));
    }
    run(runner, exact(words(&[b"ZRANGE", b"bigz", b"0", b"-1", b"WITHSCORES"])));
    for _ in 0..300 {
        let case = match g.below(12) {
            0 => exact(vec![
                b"ZRANGE".to_vec(),
                b"bigz".to_vec(),
                g.index_text(),
                g.index_text(),
                b"WITHSCORES".to_vec(),
            ]),
            1 => {
                let start = (g.below(700) as i64 - 350).to_string().into_bytes();
                let end = (g.below(700) as i64 - 350).to_string().into_bytes();
                exact(vec![b"ZREVRANGE".to_vec(), b"bigz".to_vec(), start, end])
            }
            2 => {
                let min = g.score_bound();
                let max = g.score_bound();
                let mut args =
                    vec![b"ZRANGEBYSCORE".to_vec(), b"bigz".to_vec(), min, max, b"WITHSCORES".to_vec()];
                if g.chance(50) {
                    args.extend([b"LIMIT".to_vec(), g.below(50).to_string().into_bytes(), g.index_text()]);
                }
                exact(args)
            }
            3 => exact(vec![b"ZCOUNT".to_vec(), b"bigz".to_vec(), g.score_bound(), g.score_bound()]),
            4 => exact(vec![
                g.pick(&[b"ZRANK", b"ZREVRANK", b"ZSCORE"]).to_vec(),
                b"bigz".to_vec(),
                member(g.below(320)),
            ]),
            5 => {
                let lex = |g: &mut Generator| {
                    let open = if g.chance(50) { "[" } else { "(" };
                    format!("{open}member:{}", g.below(320)).into_bytes()
                };
                let mut args = vec![b"ZRANGE".to_vec(), b"lexz".to_vec(), lex(g), lex(g), b"BYLEX".to_vec()];
                if g.chance(50) {
                    args.swap(2, 3);
                    args.push(b"REV".to_vec());
                }
                if g.chance(50) {
                    args.extend([b"LIMIT".to_vec(), g.below(20).to_string().into_bytes(), g.index_text()]);
                }
                exact(args)
            }
            6 => exact(vec![
                b"ZLEXCOUNT".to_vec(),
                b"lexz".to_vec(),
                b"-".to_vec(),
                format!("(member:{}", g.below(320)).into_bytes(),
            ]),
            7 => Case { args: words(&[b"ZSCAN", b"bigz", b"0", b"COUNT", b"7"]), check: Check::HScanAll },
            8 => exact(words(&[b"ZUNIONSTORE", b"uz", b"2", b"bigz", b"lexz", b"WEIGHTS", b"2", b"0.5"])),
            9 => exact(words(&[b"ZINTER", b"2", b"bigz", b"uz", b"AGGREGATE", b"MAX", b"WITHSCORES"])),
            10 => exact(vec![b"ZREM".to_vec(), b"bigz".to_vec(), member(g.below(320))]),
            _ => exact(vec![b"ZINCRBY".to_vec(), b"bigz".to_vec(), g.score_text(), member(g.below(320))]),
        };
        run(runner, case);
    }
    run(runner, exact(words(&[b"ZRANGE", b"uz", b"0", b"-1", b"WITHSCORES"])));
    // ZRANGESTORE's destination: large at once for a long rank range, else
    // a listpack converted after 128 entries (-0 kept or not).
    for range in [
        &[&b"0"[..], b"-1"][..],
        &[b"-inf", b"+inf", b"BYSCORE"],
        &[b"10", b"100"],
        &[b"(-1", b"1", b"BYSCORE"],
    ] {
        let mut args = words(&[b"ZRANGESTORE", b"rz", b"bigz"]);
        args.extend(words(range));
        run(runner, exact(args));
        run(runner, exact(words(&[b"ZRANGE", b"rz", b"0", b"-1", b"WITHSCORES"])));
        run(runner, Case { args: words(&[b"ZSCAN", b"rz", b"0"]), check: Check::HScanAll });
    }
    run(runner, exact(words(&[b"ZREMRANGEBYRANK", b"bigz", b"10", b"40"])));
    run(runner, exact(words(&[b"ZREMRANGEBYSCORE", b"bigz", b"(0", b"100"])));
    run(runner, exact(words(&[b"ZREMRANGEBYLEX", b"lexz", b"[member:1", b"(member:2"])));
    run(runner, exact(words(&[b"ZPOPMIN", b"bigz", b"5"])));
    run(runner, exact(words(&[b"ZPOPMAX", b"bigz", b"5"])));
    run(runner, exact(words(&[b"ZMPOP", b"2", b"nokey", b"lexz", b"MAX", b"COUNT", b"100"])));
    for _ in 0..MEMBERS {
        run(runner, exact(words(&[b"ZPOPMIN", b"bigz"])));
        run(runner, exact(words(&[b"ZPOPMAX", b"lexz"])));
    }
    run(runner, exact(words(&[b"EXISTS", b"bigz", b"lexz"])));
    run(runner, exact(words(&[b"DEL", b"uz", b"rz"])));
}
