//! Differential test: the same seeded random command sequences go to a
//! `cashe::kv::Store` and to a real `redis-server` (7.0, started here as a
//! child process on a free port), and every reply is compared byte for
//! byte (`Reply::to_bytes()` against the raw RESP bytes from the server).
//! Phases: random command sequences over a small key space shared by
//! string, bitmap, hash, list, set, sorted set and key commands (one
//! FLUSHALL per seed; each type's generator is in `redis_diff/<type>.rs`,
//! hashes and key commands here), each key's final value read by every
//! type's reads, KEYS with random glob patterns over keys made for them,
//! INCRBYFLOAT on random pairs of numbers, and per type a value past
//! Redis's small encodings (a hash of more than 128 fields, a list of
//! thousands of elements, a set past 512 integers, a sorted set of hundreds
//! of members, a bitmap of hundreds of KB) filled, read, scanned and
//! emptied. Each type module documents what it compares other than byte
//! for byte (random picks, member order). The test prints how many
//! commands it compared; `CASHE_REDIS_DIFF_SEEDS=n` runs more seeds.
//!
//! `redis-server` must be on PATH (`.ci/run` installs Debian's
//! `redis-server` package); without it this test fails, it never skips.
//!
//! Comparisons that are not byte for byte, because Redis's answer depends
//! on its own clock or hash table:
//! - Time: the Store gets the test's wall clock in ms for each command
//!   (taken just before the command goes to the server); the server reads
//!   its own clock. So expiries set relative to now (EX, PX, SETEX, PSETEX,
//!   EXPIRE, PEXPIRE, GETEX EX/PX) differ by the command's latency:
//!   * TTL and EXPIRETIME may differ by 1 s, PTTL and PEXPIRETIME by up to
//!     `CLOCK_TOLERANCE_MS`, when both are >= 0. EXPIRETIME/PEXPIRETIME of
//!     keys whose expiry came from an absolute time (EXAT, PXAT, EXPIREAT,
//!     PEXPIREAT: all after 2100) are compared exactly, as is every -1/-2.
//!   * So that nothing else depends on those few ms, relative durations
//!     are either <= 0 (the key is deleted at once), a whole number of
//!     minutes never used twice in a seed, or values Redis rejects; valid
//!     absolute times are far in the past or after 2100. GT/LT and
//!     "already expired" decisions then agree, and no key expires while a
//!     seed runs.
//!   * SET is never given a past EXAT/PXAT (GETEX and EXPIREAT are): Redis
//!     would store the key already expired and count it in DBSIZE until its
//!     background expiry cycle happens to delete it.
//! - KEYS, HKEYS, HVALS: both arrays are sorted before comparing (Redis
//!   answers in hash table or listpack order, the Store in key or field
//!   order); HGETALL's field-value pairs are sorted likewise, in RESP2's
//!   flat array as in RESP3's map.
//! - SCAN: a valid SCAN is run as a full iteration from cursor 0 on both
//!   sides and the sets of keys returned are compared; cursors themselves
//!   are not (Redis's are hash-table positions). A SCAN that either side
//!   answers with an error (bad cursor, COUNT, option) is compared byte for
//!   byte.
//! - HSCAN: the same as SCAN, comparing the sets of field-value pairs
//!   (Redis answers a small hash whole, cursor 0; the Store walks fields
//!   COUNT at a time).
//! - RANDOMKEY: Redis picks at random; only "nil or not" is compared, and
//!   the key Redis returned must exist in the Store.
//!
//! Intentional differences of the Store, kept out of the generated
//! commands (see `src/kv/mod.rs`):
//! - Error texts that quote an argument (unknown command, EXPIRE's
//!   "Unsupported option") show a non-UTF-8 byte as U+FFFD (replies hold
//!   error texts as `String`) where Redis echoes the raw byte; such errors
//!   are only generated with ASCII arguments.
//! - Command names with a NUL byte are not sent: Redis hashes a name over
//!   its full length but compares names as C strings, so whether `get\0`
//!   finds GET depends on the hash seed each redis-server process draws at
//!   random (found: wrong number of arguments; not found: unknown command).
//! - HAS, CAS and CASHE.EXPIRE are cashe's own and not sent (unit tests in
//!   `src/kv/` cover them).
//! - HRANDFIELD: Redis draws at random; `hrandfield_check` compares the
//!   shape (nil, sizes, pairs in RESP3) and checks that every field Redis
//!   picked exists with its value, and the distinctness rules.
//! - OBJECT ENCODING of a string is compared only right after a SET of it
//!   (cashe derives it from the bytes: see `src/kv/keys.rs`); OBJECT
//!   ENCODING of other keys only when they hold a hash or nothing.
//!   OBJECT IDLETIME (Redis's clock) is not sent.
//! - COPY's DB is sent as 0 or an index out of Redis's 16 databases (cashe
//!   has one; Redis copies to DB 1 to 15).

use cashe::kv::{classify, Access, Store};
use cashe::protocol::{Protocol, Reply};
use cashe::raft::SplitMix64;
use std::collections::BTreeSet;
use std::io::Write;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Seeds per run; `CASHE_REDIS_DIFF_SEEDS=n` runs more.
const SEEDS_DEFAULT: u64 = 16;
const COMMANDS_PER_SEED: usize = 1200;
/// Random KEYS patterns in the glob phase.
const GLOB_PATTERNS: usize = 2000;
/// SET + INCRBYFLOAT pairs in the float phase.
const FLOAT_PAIRS: usize = 2000;
/// Fields of the large hash in the last phase (Redis's listpack holds at
/// most 128).
const BIG_HASH_FIELDS: usize = 300;
/// How far apart the Store's clock and the server's may be for one command.
const CLOCK_TOLERANCE_MS: i64 = 1000;
/// 2100-01-01 in Unix seconds: absolute expiries are at or after it.
const FAR_FUTURE_SECONDS: u64 = 4_102_444_800;

/// The small key space the commands share, so that they interact; it
/// includes the empty key, a key with glob characters and a non-UTF-8 key.
/// String and hash commands draw from the same keys, so each meets keys of
/// the other type (WRONGTYPE).
const KEYS: [&[u8]; 8] = [b"k0", b"k1", b"k2", b"k3", b"key:a", b"key:*", b"", b"\xffk"];

/// The fields hash commands share: few, so that HDEL empties hashes.
const FIELDS: [&[u8]; 6] = [b"f0", b"f1", b"f2", b"", b"f:*", b"\xfff"];

// Each type's commands, final-state reads and large-value phase.
#[path = "redis_diff/bits.rs"]
mod bits;
#[path = "redis_diff/list.rs"]
mod list;
#[path = "redis_diff/set.rs"]
mod set;
#[path = "redis_diff/zset.rs"]
mod zset;

// The redis-server child process and the raw-bytes RESP client are shared
// with tests/server.rs.
#[path = "cluster/harness.rs"]
mod harness;
#[path = "common/redis.rs"]
mod redis;
use redis::{parse as parse_all, RedisClient as Client, RedisServer};

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970").as_millis() as u64
}

// ---- the commands ----

/// How one command's replies are compared.
#[derive(Clone, Copy, Debug)]
enum Check {
    Exact,
    /// KEYS, HKEYS, HVALS: sort both arrays first.
    Sorted,
    /// HGETALL: sort the field-value pairs of both (a flat array in RESP2,
    /// a map in RESP3).
    SortedPairs,
    /// TTL family: tolerance unless negative or (for absolute) far future.
    Clock {
        milliseconds: bool,
        absolute: bool,
    },
    RandomKey,
    /// A valid SCAN: iterate fully on both sides, compare the key sets.
    ScanAll,
    /// A valid HSCAN: the same, comparing the sets of field-value pairs.
    HScanAll,
    /// A comparison of a type's own module (`redis_diff/*.rs`): gets the
    /// Store's reply, shaped for the protocol, and Redis's raw bytes, and
    /// may send more commands to both sides (to bring random choices back
    /// in line, say).
    With(fn(&mut Runner, &Case, Reply, Vec<u8>, &str)),
}

struct Case {
    args: Vec<Vec<u8>>,
    check: Check,
}

struct Generator {
    rng: SplitMix64,
    used_minutes: BTreeSet<u64>,
}

fn words(items: &[&[u8]]) -> Vec<Vec<u8>> {
    items.iter().map(|item| item.to_vec()).collect()
}

impl Generator {
    fn new(seed: u64) -> Generator {
        Generator { rng: SplitMix64::new(seed), used_minutes: BTreeSet::new() }
    }

    fn below(&mut self, n: u64) -> u64 {
        self.rng.range(0, n)
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    fn pick<'a>(&mut self, items: &[&'a [u8]]) -> &'a [u8] {
        items[self.below(items.len() as u64) as usize]
    }

    fn key(&mut self) -> Vec<u8> {
        self.pick(&KEYS).to_vec()
    }

    fn field(&mut self) -> Vec<u8> {
        self.pick(&FIELDS).to_vec()
    }

    fn fields(&mut self, min: u64) -> Vec<Vec<u8>> {
        let count = self.rng.range(min, min + 4);
        (0..count).map(|_| self.field()).collect()
    }

    fn keys(&mut self, min: u64) -> Vec<Vec<u8>> {
        let count = self.rng.range(min, min + 4);
        (0..count).map(|_| self.key()).collect()
    }

    fn integer_text(&mut self) -> Vec<u8> {
        const SPECIAL: [&[u8]; 16] = [
            b"0",
            b"1",
            b"-1",
            b"9223372036854775807",
            b"-9223372036854775808",
            b"9223372036854775806",
            b"-9223372036854775807",
            b"9223372036854775808",
            b"1.5",
            b" 1",
            b"1 ",
            b"abc",
            b"",
            b"-0",
            b"+5",
            b"007",
        ];
        if self.chance(60) {
            (self.below(400) as i64 - 200).to_string().into_bytes()
        } else {
            self.pick(&SPECIAL).to_vec()
        }
    }

    fn float_text(&mut self) -> Vec<u8> {
        const SPECIAL: [&[u8]; 36] = [
            b"inf",
            b"-inf",
            b"nan",
            b"1e400",
            b"-1e400",
            b"1e-4940",
            b"1e5000",
            b"1e-4960",
            b"1e-4951",
            b"-3.6e-4951",
            b"0x1p-16445",
            b"0x1p-16446",
            b"0x1.8p-16446",
            b"0x1.fffffffffffffffep16383",
            b"0x1p16384",
            b"1.18973149535723176502e4932",
            b"1.18973149535723176509e4932",
            b"18446744073709551617",
            b"18446744073709551619",
            b"0x1p-3",
            b"0x1.8p3",
            b"0X.8",
            b" 1",
            b"1 ",
            b"",
            b"+1",
            b"007",
            b"1.",
            b".5",
            b"-0",
            b"3.0e3",
            b"5.0e-2",
            b"0.1",
            b"0.000003814697265625",
            b"1.7976931348623157e308",
            b"0.1000000000000000055511151231257827021181583404541015625",
        ];
        let sign = if self.chance(30) { "-" } else { "" };
        match self.below(8) {
            0 | 1 => self.pick(&SPECIAL).to_vec(),
            2 => format!("{sign}{}.{}", self.below(1000), self.below(100_000)).into_bytes(),
            3 => format!("{sign}{}e{}", self.below(100_000), self.below(60) as i64 - 30).into_bytes(),
            4 => {
                let value = f64::from_bits(self.rng.next_u64() >> 2);
                format!("{sign}{value:e}").into_bytes()
            }
            5 => {
                format!("{sign}0.{:0>width$}", self.below(1000), width = self.below(25) as usize).into_bytes()
            }
            6 => {
                // Many digits, a point anywhere, any exponent in range.
                let digits: String =
                    (0..self.rng.range(1, 45)).map(|_| (b'0' + self.below(10) as u8) as char).collect();
                let point = self.below(digits.len() as u64 + 1) as usize;
                let exponent = self.below(9900) as i64 - 4950;
                format!("{sign}{}.{}e{exponent}", &digits[..point], &digits[point..]).into_bytes()
            }
            _ => self.integer_text(),
        }
    }

    fn value(&mut self) -> Vec<u8> {
        match self.below(8) {
            0 | 1 => self.integer_text(),
            2 | 3 => self.float_text(),
            4 => self.pick(&[b"", b"a", b"hello", b"foo bar", b"\x00\x01\xff", b"key:*"]).to_vec(),
            5 => (0..self.below(20)).map(|_| b'a' + self.below(26) as u8).collect(),
            6 => vec![b'x'; 100 + self.below(200) as usize],
            _ => (self.below(1000) as i64 - 500).to_string().into_bytes(),
        }
    }

    /// A whole number of minutes not used before in this seed.
    fn fresh_minutes(&mut self) -> u64 {
        loop {
            let minutes = self.rng.range(1, 5000);
            if self.used_minutes.insert(minutes) {
                return minutes;
            }
        }
    }

    /// A malformed or out-of-range time. Relative times get only values
    /// Redis rejects: a valid relative expiry beyond 2100 would be compared
    /// exactly (as if absolute) despite the clock skew.
    fn bad_time(&mut self, seconds: bool, relative: bool) -> Vec<u8> {
        if self.chance(50) {
            return self.pick(&[b"abc", b"", b"1.5", b" 5", b"9223372036854775808"]).to_vec();
        }
        match (relative, seconds) {
            (true, true) => self.pick(&[b"9223372036854775", b"9223372036854776"]).to_vec(),
            (true, false) => b"9223372036854775807".to_vec(),
            (false, _) => self
                .pick(&[
                    b"9223372036854775",
                    b"9223372036854776",
                    b"9223372036854775807",
                    b"-9223372036854775808",
                ])
                .to_vec(),
        }
    }

    /// A relative duration: past/zero (when `past` is allowed), fresh
    /// minutes, or malformed.
    fn relative_time(&mut self, seconds: bool, past: bool) -> Vec<u8> {
        match self.below(10) {
            0 | 1 => self.bad_time(seconds, true),
            2 | 3 => self.pick(&[b"0", b"-1", b"-100", b"-9223372036854775"]).to_vec(),
            _ if !past && self.chance(10) => self.pick(&[b"0", b"-5"]).to_vec(),
            _ => {
                let minutes = self.fresh_minutes();
                (if seconds { minutes * 60 } else { minutes * 60_000 }).to_string().into_bytes()
            }
        }
    }

    /// An absolute time: far future (2100 and later), far past (only if
    /// `past`), or malformed.
    fn absolute_time(&mut self, seconds: bool, past: bool) -> Vec<u8> {
        let unit = if seconds { 1 } else { 1000 };
        match self.below(10) {
            0 | 1 => self.bad_time(seconds, false),
            2 | 3 if past => (self.rng.range(1, 1_000_000_000) * unit).to_string().into_bytes(),
            4 if !seconds => b"9223372036854775807".to_vec(),
            4 => b"9223372036854775".to_vec(),
            _ => ((FAR_FUTURE_SECONDS + self.below(100_000_000)) * unit + self.below(unit))
                .to_string()
                .into_bytes(),
        }
    }

    fn pattern(&mut self) -> Vec<u8> {
        const PATTERNS: [&[u8]; 20] = [
            b"*", b"k*", b"k?", b"k[0-2]", b"k[^0-2]", b"*a*", b"key:\\*", b"[k", b"[]", b"k[3-0]", b"\\k*",
            b"", b"**", b"?", b"k\\", b"*:*", b"key:[*]", b"[^k]*", b"*\xff*", b"k[\\]]",
        ];
        if self.chance(75) {
            return self.pick(&PATTERNS).to_vec();
        }
        let alphabet = b"k0123:*?[]^-\\ab";
        (0..self.rng.range(1, 7)).map(|_| alphabet[self.below(alphabet.len() as u64) as usize]).collect()
    }

    fn set_options(&mut self, args: &mut Vec<Vec<u8>>) {
        for _ in 0..self.below(4) {
            match self.below(12) {
                0 => args.push(self.pick(&[b"NX", b"nx"]).to_vec()),
                1 => args.push(self.pick(&[b"XX", b"Xx"]).to_vec()),
                2 => args.push(b"GET".to_vec()),
                3 => args.push(self.pick(&[b"KEEPTTL", b"keepttl"]).to_vec()),
                4 | 5 => {
                    let seconds = self.chance(50);
                    args.push(if seconds { b"EX".to_vec() } else { b"PX".to_vec() });
                    args.push(self.relative_time(seconds, false));
                }
                6 | 7 => {
                    let seconds = self.chance(50);
                    args.push(if seconds { b"EXAT".to_vec() } else { b"PXAT".to_vec() });
                    args.push(self.absolute_time(seconds, false));
                }
                8 => args.push(self.pick(&[b"EX", b"PX", b"PERSIST", b"FOO", b"nx\x00"]).to_vec()),
                _ => {}
            }
        }
    }

    fn getex_options(&mut self, args: &mut Vec<Vec<u8>>) {
        for _ in 0..self.below(3) {
            match self.below(8) {
                0 | 1 => {
                    let seconds = self.chance(50);
                    args.push(if seconds { b"EX".to_vec() } else { b"PX".to_vec() });
                    args.push(self.relative_time(seconds, false));
                }
                2 | 3 => {
                    let seconds = self.chance(50);
                    args.push(if seconds { b"EXAT".to_vec() } else { b"PXAT".to_vec() });
                    args.push(self.absolute_time(seconds, true));
                }
                4 | 5 => args.push(self.pick(&[b"PERSIST", b"persist"]).to_vec()),
                _ => args.push(self.pick(&[b"NX", b"GET", b"KEEPTTL", b"EX", b"bogus"]).to_vec()),
            }
        }
    }

    fn expire_case(&mut self) -> Vec<Vec<u8>> {
        let (name, seconds, absolute): (&[u8], bool, bool) = match self.below(4) {
            0 => (b"EXPIRE", true, false),
            1 => (b"PEXPIRE", false, false),
            2 => (b"EXPIREAT", true, true),
            _ => (b"PEXPIREAT", false, true),
        };
        let time =
            if absolute { self.absolute_time(seconds, true) } else { self.relative_time(seconds, true) };
        let mut args = vec![name.to_vec(), self.key(), time];
        for _ in 0..self.below(3) {
            args.push(self.pick(&[b"NX", b"XX", b"GT", b"LT", b"gt", b"lt", b"nx", b"foo"]).to_vec());
        }
        args
    }

    fn scan_case(&mut self) -> Case {
        let mut args = vec![b"SCAN".to_vec(), b"0".to_vec()];
        let invalid = self.chance(20);
        if invalid {
            args[1] = self.pick(&[b"abc", b" 1", b"1 ", b"+", b"18446744073709551616", b"0"]).to_vec();
        }
        for _ in 0..self.below(3) {
            match self.below(4) {
                0 => {
                    args.push(b"MATCH".to_vec());
                    args.push(self.pattern());
                }
                1 => {
                    args.push(b"COUNT".to_vec());
                    let count = if invalid {
                        self.integer_text()
                    } else {
                        self.rng.range(1, 20).to_string().into_bytes()
                    };
                    args.push(count);
                }
                2 => {
                    args.push(b"TYPE".to_vec());
                    args.push(self.pick(&[b"string", b"STRING", b"hash", b"none"]).to_vec());
                }
                _ if invalid => args.push(self.pick(&[b"COUNT", b"MATCH", b"foo"]).to_vec()),
                _ => {}
            }
        }
        Case { args, check: Check::ScanAll }
    }

    fn hscan_case(&mut self, key: Vec<u8>) -> Case {
        let mut args = vec![b"HSCAN".to_vec(), key, b"0".to_vec()];
        let invalid = self.chance(20);
        if invalid {
            args[2] = self.pick(&[b"abc", b" 1", b"1 ", b"+", b"18446744073709551616", b"0"]).to_vec();
        }
        for _ in 0..self.below(3) {
            match self.below(4) {
                0 => {
                    args.push(b"MATCH".to_vec());
                    args.push(self.pick(&[b"*", b"f*", b"f[01]", b"*:*", b"", b"?"]).to_vec());
                }
                1 => {
                    args.push(b"COUNT".to_vec());
                    let count = if invalid {
                        self.integer_text()
                    } else {
                        self.rng.range(1, 5).to_string().into_bytes()
                    };
                    args.push(count);
                }
                2 if invalid => args.extend(words(&[b"TYPE", b"hash"])),
                _ if invalid => args.push(self.pick(&[b"COUNT", b"MATCH", b"foo"]).to_vec()),
                _ => {}
            }
        }
        Case { args, check: Check::HScanAll }
    }

    /// Hash commands, on keys that may hold strings.
    fn hash_case(&mut self, key: Vec<u8>) -> Case {
        let exact = |args: Vec<Vec<u8>>| Case { args, check: Check::Exact };
        match self.below(20) {
            0..=4 => {
                let mut args = vec![self.pick(&[b"HSET", b"HMSET", b"hset"]).to_vec(), key];
                for _ in 0..self.rng.range(1, 4) {
                    args.push(self.field());
                    args.push(self.value());
                }
                if self.chance(8) {
                    args.push(self.field());
                }
                exact(args)
            }
            5 => exact(vec![b"HSETNX".to_vec(), key, self.field(), self.value()]),
            6 | 7 => exact(vec![b"HGET".to_vec(), key, self.field()]),
            8 => {
                let mut args = vec![b"HMGET".to_vec(), key];
                args.extend(self.fields(1));
                exact(args)
            }
            9 | 10 => {
                let mut args = vec![b"HDEL".to_vec(), key];
                args.extend(self.fields(1));
                exact(args)
            }
            11 => {
                let name = self.pick(&[b"HEXISTS", b"HSTRLEN"]).to_vec();
                exact(vec![name, key, self.field()])
            }
            12 => exact(vec![b"HLEN".to_vec(), key]),
            13 => exact(vec![b"HINCRBY".to_vec(), key, self.field(), self.integer_text()]),
            14 => exact(vec![b"HINCRBYFLOAT".to_vec(), key, self.field(), self.float_text()]),
            15 => {
                let name = self.pick(&[b"HKEYS", b"HVALS"]).to_vec();
                Case { args: vec![name, key], check: Check::Sorted }
            }
            16 => Case { args: vec![b"HGETALL".to_vec(), key], check: Check::SortedPairs },
            18 => self.hrandfield_case(key),
            _ => self.hscan_case(key),
        }
    }

    /// HRANDFIELD key [count [WITHVALUES]]: small counts of either sign;
    /// a count Redis would take as billions of draws only where it is
    /// refused first (with WITHVALUES, beyond +-LONG_MAX/2).
    fn hrandfield_case(&mut self, key: Vec<u8>) -> Case {
        let mut args = vec![b"HRANDFIELD".to_vec(), key];
        let check = Check::With(hrandfield_check);
        if self.chance(25) {
            return Case { args, check };
        }
        let with_values = self.chance(50);
        let count = match self.below(10) {
            0 if with_values => self
                .pick(&[b"-9223372036854775808", b"9223372036854775807", b"-4611686018427387904"])
                .to_vec(),
            0 => self.pick(&[b"abc", b"", b"1.5", b"9223372036854775807", b"-0"]).to_vec(),
            1 => b"0".to_vec(),
            _ => (self.below(21) as i64 - 10).to_string().into_bytes(),
        };
        args.push(count);
        if with_values {
            args.push(self.pick(&[b"WITHVALUES", b"withvalues", b"WITHVALUES", b"values"]).to_vec());
            if self.chance(5) {
                args.push(b"WITHVALUES".to_vec());
            }
        }
        Case { args, check }
    }

    /// TYPE, COPY and OBJECT on any key.
    fn key_case(&mut self, key: Vec<u8>) -> Case {
        let exact = |args: Vec<Vec<u8>>| Case { args, check: Check::Exact };
        match self.below(8) {
            0..=2 => exact(vec![b"TYPE".to_vec(), key]),
            3 | 4 => {
                let mut args = vec![b"COPY".to_vec(), key, self.key()];
                for _ in 0..self.below(3) {
                    match self.below(6) {
                        0 | 1 => args.push(self.pick(&[b"REPLACE", b"replace"]).to_vec()),
                        2 | 3 => args.extend([b"DB".to_vec(), b"0".to_vec()]),
                        4 => {
                            let db: &[u8] =
                                self.pick(&[b"16", b"-1", b"abc", b"99999999999", b"2147483648", b""]);
                            args.extend([b"db".to_vec(), db.to_vec()]);
                        }
                        _ => args.push(self.pick(&[b"DB", b"foo"]).to_vec()),
                    }
                }
                exact(args)
            }
            5 => Case {
                args: vec![b"OBJECT".to_vec(), b"ENCODING".to_vec(), key],
                check: Check::With(object_check),
            },
            6 => Case {
                args: vec![b"SET".to_vec(), key, self.value()],
                check: Check::With(set_then_encoding_check),
            },
            _ => {
                let mut args = vec![b"OBJECT".to_vec()];
                let sub: &[u8] =
                    self.pick(&[b"HELP", b"help", b"FREQ", b"REFCOUNT", b"encoding", b"foo", b"Enc"]);
                args.push(sub.to_vec());
                for _ in 0..self.below(3) {
                    args.push(key.clone());
                }
                Case { args, check: Check::With(object_check) }
            }
        }
    }

    fn unknown_or_arity_case(&mut self) -> Vec<Vec<u8>> {
        if self.chance(50) {
            let mut args = vec![self.pick(&[b"NOSUCHCMD", b"gett", b"SETT", b"xyz", b"GEt"]).to_vec()];
            for _ in 0..self.below(6) {
                let length = if self.chance(10) { 100 } else { self.below(8) };
                args.push((0..length).map(|_| b'a' + self.below(26) as u8).collect());
            }
            return args;
        }
        // (name, arity): the argument count drawn is always a wrong one.
        const ARITIES: [(&[u8], i64); 22] = [
            (b"HSET", -4),
            (b"hmset", -4),
            (b"HGET", 3),
            (b"HDEL", -3),
            (b"HSCAN", -3),
            (b"HINCRBYFLOAT", 4),
            (b"GET", 2),
            (b"SET", -3),
            (b"getrange", 4),
            (b"SETEX", 4),
            (b"MSET", -3),
            (b"MSETNX", -3),
            (b"incrby", 3),
            (b"TTL", 2),
            (b"KEYS", 2),
            (b"DBSIZE", 1),
            (b"RANDOMKEY", 1),
            (b"RENAME", 3),
            (b"EXPIRE", -3),
            (b"SCAN", -2),
            (b"DEL", -2),
            (b"substr", 4),
        ];
        let (name, arity) = ARITIES[self.below(ARITIES.len() as u64) as usize];
        let count = loop {
            let count = self.below(6) as i64;
            let argc = count + 1;
            if (arity > 0 && argc != arity) || argc < -arity {
                break count;
            }
        };
        let mut args = vec![name.to_vec()];
        // ASCII only: these may end up quoted in an error text (see the
        // module docs on non-UTF-8 bytes in errors).
        args.extend((0..count).map(|_| self.pick(&KEYS[..6]).to_vec()));
        args
    }

    fn next_case(&mut self) -> Case {
        let key = self.key();
        let exact = |args: Vec<Vec<u8>>| Case { args, check: Check::Exact };
        match self.below(64) {
            0..=3 => {
                let mut args = vec![b"SET".to_vec(), key, self.value()];
                self.set_options(&mut args);
                exact(args)
            }
            4 | 5 => exact(vec![b"GET".to_vec(), key]),
            6 => exact(vec![b"SETNX".to_vec(), key, self.value()]),
            7 => {
                let seconds = self.chance(50);
                let name = if seconds { b"SETEX".to_vec() } else { b"PSETEX".to_vec() };
                exact(vec![name, key, self.relative_time(seconds, false), self.value()])
            }
            8 => exact(vec![b"GETSET".to_vec(), key, self.value()]),
            9 | 10 => {
                let mut args = vec![b"GETEX".to_vec(), key];
                self.getex_options(&mut args);
                exact(args)
            }
            11 => exact(vec![b"GETDEL".to_vec(), key]),
            12 => {
                let mut args = vec![b"MGET".to_vec()];
                args.extend(self.keys(1));
                exact(args)
            }
            13 | 14 => {
                let name = if self.chance(50) { b"MSET".to_vec() } else { b"MSETNX".to_vec() };
                let mut args = vec![name];
                for _ in 0..self.rng.range(1, 4) {
                    args.push(self.key());
                    args.push(self.value());
                }
                if self.chance(10) {
                    args.push(self.key());
                }
                exact(args)
            }
            15 | 16 => exact(vec![self.pick(&[b"INCR", b"DECR", b"incr"]).to_vec(), key]),
            17 | 18 => {
                let name = self.pick(&[b"INCRBY", b"DECRBY"]).to_vec();
                exact(vec![name, key, self.integer_text()])
            }
            19..=21 => exact(vec![b"INCRBYFLOAT".to_vec(), key, self.float_text()]),
            22 => exact(vec![b"APPEND".to_vec(), key, self.value()]),
            23 => exact(vec![b"STRLEN".to_vec(), key]),
            24 => {
                let name = self.pick(&[b"GETRANGE", b"SUBSTR"]).to_vec();
                let mut index = || -> Vec<u8> {
                    if self.chance(85) {
                        (self.below(30) as i64 - 15).to_string().into_bytes()
                    } else {
                        self.integer_text()
                    }
                };
                let (start, end) = (index(), index());
                exact(vec![name, key, start, end])
            }
            25 => {
                let offset = match self.below(10) {
                    0 => self.pick(&[b"-1", b"536870912", b"9223372036854775807", b"abc"]).to_vec(),
                    _ => self.below(40).to_string().into_bytes(),
                };
                let patch = if self.chance(15) { Vec::new() } else { self.value() };
                exact(vec![b"SETRANGE".to_vec(), key, offset, patch])
            }
            26 | 27 => {
                let mut args = vec![self.pick(&[b"DEL", b"UNLINK"]).to_vec()];
                args.extend(self.keys(1));
                exact(args)
            }
            28 => {
                let mut args = vec![b"EXISTS".to_vec()];
                args.extend(self.keys(1));
                exact(args)
            }
            29 => self.key_case(key),
            30 => {
                let name = self.pick(&[b"RENAME", b"RENAMENX"]).to_vec();
                exact(vec![name, key, self.key()])
            }
            31..=35 => exact(self.expire_case()),
            36..=38 => {
                let (name, milliseconds, absolute) = match self.below(4) {
                    0 => (b"TTL".to_vec(), false, false),
                    1 => (b"PTTL".to_vec(), true, false),
                    2 => (b"EXPIRETIME".to_vec(), false, true),
                    _ => (b"PEXPIRETIME".to_vec(), true, true),
                };
                Case { args: vec![name, key], check: Check::Clock { milliseconds, absolute } }
            }
            39 => exact(vec![b"PERSIST".to_vec(), key]),
            40 => self.scan_case(),
            41 => Case { args: vec![b"KEYS".to_vec(), self.pattern()], check: Check::Sorted },
            42 => Case { args: vec![b"RANDOMKEY".to_vec()], check: Check::RandomKey },
            43 => exact(vec![b"DBSIZE".to_vec()]),
            44 if self.chance(15) => {
                let mut args = vec![self.pick(&[b"FLUSHDB", b"FLUSHALL"]).to_vec()];
                if self.chance(50) {
                    args.push(self.pick(&[b"ASYNC", b"sync", b"now"]).to_vec());
                }
                exact(args)
            }
            44 | 45 => exact(self.unknown_or_arity_case()),
            46 | 47 => exact(vec![b"GET".to_vec(), key]),
            48..=50 => self.hash_case(key),
            51..=54 => list::case(self, key),
            55..=57 => set::case(self, key),
            58..=61 => zset::case(self, key),
            _ => bits::case(self, key),
        }
    }
}

/// Keys for the glob phase: bytes on both sides of the signed-char
/// boundary, class and escape characters, prefixes of one another.
const GLOB_KEYS: [&[u8]; 24] = [
    b"a", b"b", b"z", b"ab", b"abc", b"abd", b"a*c", b"a?c", b"a[c", b"a]c", b"a\\c", b"a-c", b"^", b"-",
    b"]", b"[", b"\\", b"\x7f", b"\x80", b"\xff", b"a\xe9", b"A", b"Z", b"0",
];

/// A random pattern over the characters that mean something to the glob
/// matcher, plus bytes of both signs.
fn glob_pattern(rng: &mut SplitMix64) -> Vec<u8> {
    const ALPHABET: &[u8] = b"abcz*?[]^-\\A0\x7f\x80\xff\xe9";
    (0..rng.range(0, 9)).map(|_| ALPHABET[rng.range(0, ALPHABET.len() as u64) as usize]).collect()
}

// ---- running and comparing ----

struct Runner {
    store: Store,
    redis: Client,
    /// Both sides' connection speaks it: the Store's replies are shaped
    /// for it as the node shapes them.
    protocol: Protocol,
    compared: usize,
}

impl Runner {
    /// The Store's reply at the wall clock's now; reads go through `read`.
    fn store_call(&mut self, args: &[Vec<u8>], now: u64) -> Reply {
        let reply = match classify(args) {
            Ok(Access::Read) => {
                let reply = self.store.read(args, now);
                assert_eq!(reply, self.store.apply(args, now), "read and apply agree on {}", show(args));
                reply
            }
            _ => self.store.apply(args, now),
        };
        reply.for_protocol(self.protocol)
    }

    fn run(&mut self, seed: u64, step: usize, case: &Case) {
        let now = now_ms();
        let ours = self.store_call(&case.args, now);
        let raw = self.redis.call(&case.args);
        let context = || format!("seed {seed} step {step}: {}", show(&case.args));
        match case.check {
            Check::Exact => assert_same(&ours.to_bytes(), &raw, &context()),
            Check::Sorted => {
                assert_eq!(sorted(ours), sorted(parse_all(&raw)), "{}", context());
            }
            Check::SortedPairs => {
                assert_eq!(sorted_pairs(ours), sorted_pairs(parse_all(&raw)), "{}", context());
            }
            Check::Clock { milliseconds, absolute } => {
                let (Reply::Integer(a), Reply::Integer(b)) = (&ours, parse_all(&raw)) else {
                    return assert_same(&ours.to_bytes(), &raw, &context());
                };
                let far_future = (FAR_FUTURE_SECONDS * if milliseconds { 1000 } else { 1 }) as i64;
                let tolerance = if milliseconds { CLOCK_TOLERANCE_MS } else { 1 };
                if *a < 0 || b < 0 || (absolute && *a >= far_future) {
                    assert_same(&ours.to_bytes(), &raw, &context());
                } else {
                    assert!((a - b).abs() <= tolerance, "{}: cashe {a}, redis {b}", context());
                }
            }
            Check::RandomKey => match (&ours, parse_all(&raw)) {
                (Reply::Bulk(None), Reply::Bulk(None)) | (Reply::Null, Reply::Null) => {}
                (Reply::Bulk(Some(_)), Reply::Bulk(Some(key))) => {
                    let exists = self.store.read(&[b"EXISTS".to_vec(), key.clone()], now);
                    assert_eq!(exists, Reply::Integer(1), "{}: redis picked {key:?}", context());
                }
                (ours, theirs) => panic!("{}: cashe {ours:?}, redis {theirs:?}", context()),
            },
            Check::ScanAll => {
                if matches!(ours, Reply::Error(_)) || raw.first() == Some(&b'-') {
                    return assert_same(&ours.to_bytes(), &raw, &context());
                }
                let theirs = self.scan_all(&case.args, true, raw, 1);
                let mine = self.scan_all(&case.args, false, ours.to_bytes(), 1);
                assert_eq!(mine, theirs, "{}: SCAN iteration key sets", context());
            }
            Check::With(check) => check(self, case, ours, raw, &context()),
            Check::HScanAll => {
                if matches!(ours, Reply::Error(_)) || raw.first() == Some(&b'-') {
                    return assert_same(&ours.to_bytes(), &raw, &context());
                }
                let theirs = self.scan_all(&case.args, true, raw, 2);
                let mine = self.scan_all(&case.args, false, ours.to_bytes(), 2);
                assert_eq!(mine, theirs, "{}: HSCAN iteration field-value sets", context());
            }
        }
        self.compared += 1;
    }

    /// Continues a SCAN (`group` 1: keys) or HSCAN (`group` 2: field-value
    /// pairs) iteration begun with `first` (raw reply) until the cursor is
    /// 0; the set of keys or pairs seen, or the error.
    fn scan_all(
        &mut self,
        args: &[Vec<u8>],
        on_redis: bool,
        first: Vec<u8>,
        group: usize,
    ) -> Result<BTreeSet<Vec<Vec<u8>>>, Reply> {
        let mut keys = BTreeSet::new();
        let mut raw = first;
        for _ in 0..10_000 {
            let Reply::Array(Some(parts)) = parse_all(&raw) else {
                return Err(parse_all(&raw));
            };
            let (Reply::Bulk(Some(cursor)), Reply::Array(Some(batch))) = (&parts[0], &parts[1]) else {
                panic!("malformed SCAN reply {parts:?}");
            };
            for items in batch.chunks(group) {
                let item = items.iter().map(|item| match item {
                    Reply::Bulk(Some(bytes)) => bytes.clone(),
                    other => panic!("malformed SCAN item {other:?}"),
                });
                keys.insert(item.collect());
            }
            if cursor == b"0" {
                return Ok(keys);
            }
            let mut next = args.to_vec();
            // The cursor follows the name, and HSCAN's key.
            next[group] = cursor.clone();
            raw = if on_redis { self.redis.call(&next) } else { self.store_call(&next, now_ms()).to_bytes() };
        }
        panic!("SCAN did not finish within 10000 calls");
    }
}

fn assert_same(ours: &[u8], theirs: &[u8], context: &str) {
    assert!(
        ours == theirs,
        "{context}\n  cashe: {}\n  redis: {}",
        String::from_utf8_lossy(ours).escape_debug(),
        String::from_utf8_lossy(theirs).escape_debug()
    );
}

/// The key's type on the Store's side.
fn store_type(runner: &Runner, key: &[u8]) -> Reply {
    runner.store.read(&[b"TYPE".to_vec(), key.to_vec()], now_ms())
}

/// OBJECT: compared byte for byte unless it asks for the encoding or the
/// refcount of a string (the Store derives them from the bytes, Redis
/// from the value's history: see `src/kv/keys.rs`), or of a list, set or
/// sorted set (compared by their own modules' phases).
fn object_check(runner: &mut Runner, case: &Case, ours: Reply, raw: Vec<u8>, context: &str) {
    if case.args.len() == 3 {
        let kind = store_type(runner, &case.args[2]);
        let hash_or_none = kind == Reply::Simple("hash".into()) || kind == Reply::Simple("none".into());
        let about_value =
            [&b"encoding"[..], b"refcount"].iter().any(|name| case.args[1].eq_ignore_ascii_case(name));
        if about_value && !hash_or_none && !matches!(ours, Reply::Error(_)) {
            return;
        }
    }
    assert_same(&ours.to_bytes(), &raw, context);
}

/// A plain SET, then OBJECT ENCODING and OBJECT REFCOUNT of what it stored:
/// Redis's encoding of a value just sent is a function of its bytes.
fn set_then_encoding_check(runner: &mut Runner, case: &Case, ours: Reply, raw: Vec<u8>, context: &str) {
    assert_same(&ours.to_bytes(), &raw, context);
    for name in [&b"ENCODING"[..], b"REFCOUNT"] {
        let args = vec![b"OBJECT".to_vec(), name.to_vec(), case.args[1].clone()];
        let ours = runner.store_call(&args, now_ms());
        let raw = runner.redis.call(&args);
        assert_same(&ours.to_bytes(), &raw, &format!("{context}, then {}", show(&args)));
    }
}

/// A field drawn by HRANDFIELD, with its value if WITHVALUES.
type Drawn = (Vec<u8>, Option<Vec<u8>>);

/// A reply's entries: fields, with their values when `with_values` (pairs
/// flat in RESP2, nested in RESP3), and whether they were nested.
fn random_entries(reply: &Reply, with_values: bool) -> (Vec<Drawn>, bool) {
    let Reply::Array(Some(items)) = reply else { panic!("not an array: {reply:?}") };
    let bytes = |item: &Reply| match item {
        Reply::Bulk(Some(bytes)) => bytes.clone(),
        other => panic!("not a bulk string: {other:?}"),
    };
    let nested = matches!(items.first(), Some(Reply::Array(_)));
    let entries = if !with_values {
        items.iter().map(|item| (bytes(item), None)).collect()
    } else if nested {
        let pair = |item: &Reply| match item {
            Reply::Array(Some(pair)) if pair.len() == 2 => (bytes(&pair[0]), Some(bytes(&pair[1]))),
            other => panic!("not a pair: {other:?}"),
        };
        items.iter().map(pair).collect()
    } else {
        items.chunks(2).map(|pair| (bytes(&pair[0]), Some(bytes(&pair[1])))).collect()
    };
    (entries, nested)
}

/// HRANDFIELD: errors, nil and empty replies byte for byte; otherwise the
/// same shape and size on both sides, every field drawn (by either side)
/// present in the hash with its value, distinct fields for a count >= 0,
/// and the whole hash when the count reaches its size. Reads only: both
/// sides stay alike.
fn hrandfield_check(runner: &mut Runner, case: &Case, ours: Reply, raw: Vec<u8>, context: &str) {
    let theirs = parse_all(&raw);
    let is_empty = |reply: &Reply| matches!(reply, Reply::Array(Some(items)) if items.is_empty());
    let plain = |reply: &Reply| !matches!(reply, Reply::Array(Some(_)) | Reply::Bulk(Some(_)));
    if plain(&ours) || plain(&theirs) || is_empty(&ours) || is_empty(&theirs) {
        return assert_same(&ours.to_bytes(), &raw, context);
    }
    let key = case.args[1].clone();
    let hget = |runner: &Runner, field: &[u8]| match runner
        .store
        .read(&[b"HGET".to_vec(), key.clone(), field.to_vec()], now_ms())
    {
        Reply::Bulk(Some(value)) => value,
        other => panic!("{context}: field {field:?} drawn but HGET answers {other:?}"),
    };
    if case.args.len() == 2 {
        let (Reply::Bulk(Some(mine)), Reply::Bulk(Some(field))) = (&ours, &theirs) else {
            return assert_same(&ours.to_bytes(), &raw, context);
        };
        hget(runner, mine);
        hget(runner, field);
        return;
    }
    let with_values = case.args.len() == 4;
    let (mine, mine_nested) = random_entries(&ours, with_values);
    let (drawn, drawn_nested) = random_entries(&theirs, with_values);
    assert_eq!(mine_nested, drawn_nested, "{context}: reply shapes");
    let count: i64 = String::from_utf8_lossy(&case.args[2]).parse().expect("a valid count");
    let Reply::Integer(size) = runner.store.read(&[b"HLEN".to_vec(), key.clone()], now_ms()) else {
        panic!("{context}: HLEN")
    };
    let expected = if count < 0 { count.unsigned_abs() } else { count.min(size) as u64 };
    assert_eq!((mine.len() as u64, drawn.len() as u64), (expected, expected), "{context}: sizes");
    for (field, value) in mine.iter().chain(&drawn) {
        let stored = hget(runner, field);
        if let Some(value) = value {
            assert_eq!(&stored, value, "{context}: the value of {field:?}");
        }
    }
    if count >= 0 {
        let unique = |entries: &[Drawn]| entries.iter().collect::<BTreeSet<_>>().len();
        assert_eq!((unique(&mine), unique(&drawn)), (mine.len(), drawn.len()), "{context}: distinct fields");
    }
    if count >= size {
        let all = |entries: Vec<Drawn>| entries.into_iter().collect::<BTreeSet<_>>();
        assert_eq!(all(mine), all(drawn), "{context}: the whole hash");
    }
}

fn sorted(reply: Reply) -> Reply {
    match reply {
        Reply::Array(Some(mut items)) => {
            items.sort();
            Reply::Array(Some(items))
        }
        other => other,
    }
}

/// A flat array or a map of field-value pairs, its pairs sorted.
fn sorted_pairs(reply: Reply) -> Reply {
    let mut pairs = match reply {
        Reply::Array(Some(items)) => {
            items.chunks(2).map(|pair| (pair[0].clone(), pair[1].clone())).collect::<Vec<_>>()
        }
        Reply::Map(pairs) => pairs,
        other => return other,
    };
    pairs.sort();
    Reply::Map(pairs)
}

fn show(args: &[Vec<u8>]) -> String {
    args.iter().map(|arg| format!("{:?}", String::from_utf8_lossy(arg))).collect::<Vec<_>>().join(" ")
}

#[test]
fn store_replies_match_redis_7_byte_for_byte_in_resp2() {
    compare_with_redis(Protocol::Resp2);
}

#[test]
fn store_replies_match_redis_7_byte_for_byte_in_resp3() {
    compare_with_redis(Protocol::Resp3);
}

fn compare_with_redis(protocol: Protocol) {
    let started = Instant::now();
    let server = RedisServer::start();
    let mut redis = server.connect();
    redis.speak(protocol);
    let mut runner = Runner { store: Store::default(), redis, protocol, compared: 0 };
    let version = runner.redis.call(&words(&[b"INFO", b"server"]));
    let version = String::from_utf8_lossy(&version).into_owned();
    let version =
        version.lines().find(|line| line.starts_with("redis_version:")).unwrap_or("unknown version");
    let seeds =
        std::env::var("CASHE_REDIS_DIFF_SEEDS").ok().and_then(|n| n.parse().ok()).unwrap_or(SEEDS_DEFAULT);
    for seed in 0..seeds {
        for flush in [&b"FLUSHALL"[..], b"FLUSHDB"] {
            runner.run(seed, 0, &Case { args: words(&[flush]), check: Check::Exact });
        }
        let mut generator = Generator::new(seed);
        for step in 1..=COMMANDS_PER_SEED {
            let case = generator.next_case();
            runner.run(seed, step, &case);
        }
        // The final state, key by key.
        for key in KEYS {
            for name in [&b"GET"[..], b"HGETALL", b"PEXPIRETIME"] {
                let args = words(&[name, key]);
                let check = match name {
                    b"GET" => Check::Exact,
                    b"HGETALL" => Check::SortedPairs,
                    _ => Check::Clock { milliseconds: true, absolute: true },
                };
                runner.run(seed, COMMANDS_PER_SEED + 1, &Case { args, check });
            }
            let finals = [
                list::final_state(key),
                set::final_state(key),
                zset::final_state(key),
                bits::final_state(key),
            ];
            for case in finals.into_iter().flatten() {
                runner.run(seed, COMMANDS_PER_SEED + 1, &case);
            }
        }
        runner.store.check_invariants();
    }
    // KEYS with many random patterns over keys made for them.
    runner.run(seeds, 0, &Case { args: words(&[b"FLUSHALL"]), check: Check::Exact });
    let mut mset = words(&[b"MSET"]);
    for key in GLOB_KEYS {
        mset.extend([key.to_vec(), b"v".to_vec()]);
    }
    runner.run(seeds, 0, &Case { args: mset, check: Check::Exact });
    let mut rng = SplitMix64::new(seeds);
    for step in 1..=GLOB_PATTERNS {
        let args = vec![b"KEYS".to_vec(), glob_pattern(&mut rng)];
        runner.run(seeds, step, &Case { args, check: Check::Sorted });
    }
    // INCRBYFLOAT on random pairs of numbers: parsing, x87 rounding, printing.
    let mut generator = Generator::new(seeds + 1);
    for step in 1..=FLOAT_PAIRS {
        let set = vec![b"SET".to_vec(), b"f".to_vec(), generator.float_text()];
        let incr = vec![b"INCRBYFLOAT".to_vec(), b"f".to_vec(), generator.float_text()];
        runner.run(seeds + 1, step, &Case { args: set, check: Check::Exact });
        runner.run(seeds + 1, step, &Case { args: incr, check: Check::Exact });
    }
    big_hashes(&mut runner, seeds + 2);
    list::big(&mut runner, seeds + 3);
    set::big(&mut runner, seeds + 4);
    zset::big(&mut runner, seeds + 5);
    bits::big(&mut runner, seeds + 6);
    // Printed past the test harness's capture, so it shows on success too.
    let _ = writeln!(
        std::io::stderr().lock(),
        "redis_diff: {} commands compared against redis-server ({version}) in {protocol:?}: {seeds} seeds of \
         {COMMANDS_PER_SEED}, {GLOB_PATTERNS} KEYS patterns, {FLOAT_PAIRS} INCRBYFLOAT pairs, a hash of \
         {BIG_HASH_FIELDS} fields, in {:.1} s",
        runner.compared,
        started.elapsed().as_secs_f64()
    );
}

/// A hash past Redis's listpack limits, in hashtable encoding there: filled
/// field by field (some values over 64 bytes), read whole, scanned with
/// small COUNTs, counted up, then emptied field by field so the last HDEL
/// deletes the key.
fn big_hashes(runner: &mut Runner, seed: u64) {
    let mut generator = Generator::new(seed);
    let exact = |args: Vec<Vec<u8>>| Case { args, check: Check::Exact };
    let field = |i: usize| format!("field:{i}").into_bytes();
    for i in 0..BIG_HASH_FIELDS {
        let args = vec![b"HSET".to_vec(), b"big".to_vec(), field(i), generator.value()];
        runner.run(seed, i, &exact(args));
    }
    let whole = |name: &[u8], check| Case { args: words(&[name, b"big"]), check };
    runner.run(seed, 0, &whole(b"HGETALL", Check::SortedPairs));
    runner.run(seed, 0, &whole(b"HKEYS", Check::Sorted));
    runner.run(seed, 0, &whole(b"HLEN", Check::Exact));
    for count in ["1", "10", "1000"] {
        let args = words(&[b"HSCAN", b"big", b"0", b"COUNT", count.as_bytes()]);
        runner.run(seed, 0, &Case { args, check: Check::HScanAll });
    }
    for i in 0..BIG_HASH_FIELDS {
        let args = vec![b"HINCRBY".to_vec(), b"big".to_vec(), field(i), generator.integer_text()];
        runner.run(seed, i, &exact(args));
    }
    for i in 0..BIG_HASH_FIELDS {
        let args = vec![b"HDEL".to_vec(), b"big".to_vec(), field(i), b"absent".to_vec()];
        runner.run(seed, i, &exact(args));
        if i % 50 == 0 {
            runner.run(seed, i, &whole(b"HGETALL", Check::SortedPairs));
        }
    }
    runner.run(seed, 0, &exact(words(&[b"EXISTS", b"big"])));
}
