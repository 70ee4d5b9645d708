//! The generic key commands (Redis 7.0's `db.c`, `expire.c` and
//! `object.c`'s OBJECT), plus cashe's HAS and the internal CASHE.EXPIRE.
//!
//! Intentional differences from redis-server 7.0 (one database, no access
//! tracking, no string object encodings of its own):
//! - COPY's `DB n` accepts only 0, the one database: any other index is
//!   "ERR DB index is out of range", as Redis answers for an index past its
//!   `databases` (Redis's default has 16, so DB 1 to 15 copy there).
//! - OBJECT ENCODING of a string is derived from its bytes, as Redis
//!   chooses when a command stores a value it was sent (SET, MSET, GETSET,
//!   APPEND creating a key...): "int" for a `string2ll` integer of at most
//!   20 bytes, "embstr" up to 44 bytes, "raw" beyond. Redis also answers
//!   "raw" for a short string changed in place (APPEND to an existing key,
//!   SETRANGE, SETBIT, BITFIELD writes, BITOP's destination) and "embstr"
//!   for an integer INCRBYFLOAT wrote; cashe keeps no such history.
//!   Hashes answer "listpack" or "hashtable" as Redis does (see `hash`).
//! - OBJECT REFCOUNT answers 2147483647 for strings Redis would share
//!   (integers 0 to 9999 by the rule above), else 1.
//! - OBJECT IDLETIME is refused (cashe tracks no access times: reads change
//!   no state); OBJECT FREQ answers Redis's error for its default policy
//!   (no LFU). Both answer nil for a missing key first, as Redis does.

use super::args::{c_string, lossy, option_is, parse_cursor, parse_i64};
use super::glob::string_match;
use super::strings::{invalid_expire, now_i64, Unit, NOT_AN_INTEGER, SYNTAX_ERROR};
use super::{Store, Value};
use crate::protocol::Reply;

/// What an EXPIRE-family time counts from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ExpireBase {
    /// EXPIRE, PEXPIRE: relative to now.
    Now,
    /// EXPIREAT, PEXPIREAT: a Unix time.
    Epoch,
}

/// SCAN's COUNT when none is given.
const SCAN_COUNT_DEFAULT: u64 = 10;
pub(super) const INVALID_CURSOR: &str = "ERR invalid cursor";

/// The options of SCAN and HSCAN (`scanGenericCommand`).
#[derive(Clone, Copy, Debug)]
pub(super) struct ScanOptions<'a> {
    pub(super) count: u64,
    /// `None` for no MATCH, or MATCH `*`.
    pattern: Option<&'a [u8]>,
    /// SCAN's TYPE (HSCAN has none).
    type_name: Option<&'a [u8]>,
}

impl<'a> ScanOptions<'a> {
    /// Parses `[MATCH pattern] [COUNT n] [TYPE name]` (TYPE only if
    /// `with_type`), in any order, the last of each winning.
    pub(super) fn parse(options: &'a [Vec<u8>], with_type: bool) -> Result<ScanOptions<'a>, Reply> {
        let mut parsed = ScanOptions { count: SCAN_COUNT_DEFAULT, pattern: None, type_name: None };
        for pair in options.chunks(2) {
            let value = pair.get(1).map(Vec::as_slice);
            match value {
                Some(value) if option_is(&pair[0], "count") => match parse_i64(value) {
                    None => return Err(Reply::error(NOT_AN_INTEGER)),
                    Some(n) if n < 1 => return Err(Reply::error(SYNTAX_ERROR)),
                    Some(n) => parsed.count = n as u64,
                },
                Some(value) if option_is(&pair[0], "match") => {
                    parsed.pattern = Some(value).filter(|pattern| *pattern != b"*");
                }
                Some(value) if with_type && option_is(&pair[0], "type") => parsed.type_name = Some(value),
                _ => return Err(Reply::error(SYNTAX_ERROR)),
            }
        }
        Ok(parsed)
    }

    /// Whether `name` (a key, or a field) matches MATCH.
    pub(super) fn matches(&self, name: &[u8]) -> bool {
        self.pattern.is_none_or(|pattern| string_match(pattern, name))
    }
}

impl Store {
    pub(super) fn on_exists(&self, args: &[Vec<u8>], now: u64) -> Reply {
        Reply::Integer(args[1..].iter().filter(|key| self.live(key, now).is_some()).count() as i64)
    }

    pub(super) fn on_has(&self, args: &[Vec<u8>], now: u64) -> Reply {
        Reply::Integer(i64::from(self.live(&args[1], now).is_some()))
    }

    pub(super) fn on_type(&self, args: &[Vec<u8>], now: u64) -> Reply {
        let name = self.live(&args[1], now).map_or("none", |entry| entry.value.type_name());
        Reply::Simple(name.into())
    }

    /// TTL, PTTL, EXPIRETIME, PEXPIRETIME: -2 for no key, -1 for no TTL;
    /// seconds are rounded to the nearest (`(ms + 500) / 1000`).
    pub(super) fn on_ttl(&self, args: &[Vec<u8>], now: u64, milliseconds: bool, absolute: bool) -> Reply {
        let Some(entry) = self.live(&args[1], now) else {
            return Reply::Integer(-2);
        };
        let Some(at) = entry.expire_at_ms() else {
            return Reply::Integer(-1);
        };
        let at = at as i64;
        let ttl = if absolute { at } else { at - now_i64(now) }.max(0);
        // Redis computes ttl + 500 in `long long`; at i64::MAX that
        // overflows, and the compiled code behaves like wider arithmetic.
        Reply::Integer(if milliseconds { ttl } else { ((i128::from(ttl) + 500) / 1000) as i64 })
    }

    pub(super) fn on_keys(&self, args: &[Vec<u8>], now: u64) -> Reply {
        let pattern = args[1].as_slice();
        let all = pattern == b"*";
        let keys = self
            .entries
            .iter()
            .filter(|(key, entry)| !entry.is_expired(now) && (all || string_match(pattern, key)))
            .map(|(key, _)| Reply::bulk(key.to_vec()))
            .collect();
        Reply::Array(Some(keys))
    }

    /// SCAN cursor [MATCH pattern] [COUNT n] [TYPE name]. The cursor is a
    /// creation sequence number: each call visits COUNT keys in creation
    /// order from there and answers the next sequence number, or 0 at the
    /// end. Keys present for a whole iteration are returned exactly once;
    /// keys created meanwhile may or may not be.
    pub(super) fn on_scan(&self, args: &[Vec<u8>], now: u64) -> Reply {
        let Some(cursor) = parse_cursor(&args[1]) else {
            return Reply::error(INVALID_CURSOR);
        };
        let options = match ScanOptions::parse(&args[2..], true) {
            Ok(options) => options,
            Err(reply) => return reply,
        };
        let mut next_cursor = 0;
        let mut keys = Vec::new();
        for (visited, (sequence, key)) in self.by_sequence.range_from(cursor).enumerate() {
            if visited as u64 == options.count {
                next_cursor = sequence;
                break;
            }
            let Some(entry) = self.live(key, now) else { continue };
            // Redis compares type names with strcasecmp.
            let matches_type = options.type_name.is_none_or(|name| option_is(name, entry.value.type_name()));
            if options.matches(key) && matches_type {
                keys.push(Reply::bulk(key.to_vec()));
            }
        }
        Reply::Array(Some(vec![Reply::bulk(next_cursor.to_string()), Reply::Array(Some(keys))]))
    }

    /// A live key chosen by a hash of `now_ms` over the keys in key order:
    /// random enough for clients, identical on every replica.
    pub(super) fn on_randomkey(&self, now: u64) -> Reply {
        let live = || self.entries.iter().filter(|(_, entry)| !entry.is_expired(now));
        let count = live().count() as u64;
        if count == 0 {
            return Reply::nil();
        }
        let index = mix64(now) % count;
        match live().nth(index as usize) {
            Some((key, _)) => Reply::bulk(key.to_vec()),
            None => Reply::nil(),
        }
    }

    pub(super) fn on_dbsize(&self, now: u64) -> Reply {
        let expired = self.expiries.range(..(now, 0)).count();
        Reply::Integer((self.entries.len() - expired) as i64)
    }

    /// DEL and UNLINK: how many live keys were deleted.
    pub(super) fn on_del(&mut self, args: &[Vec<u8>], now: u64) -> Reply {
        let mut deleted = 0;
        for key in &args[1..] {
            if self.expire_if_needed(key, now) && self.remove(key).is_some() {
                deleted += 1;
            }
        }
        Reply::Integer(deleted)
    }

    /// RENAME and RENAMENX: the value and its TTL move to the new name.
    pub(super) fn on_rename(&mut self, args: &[Vec<u8>], now: u64, only_if_new: bool) -> Reply {
        let (from, to) = (args[1].as_slice(), args[2].as_slice());
        if !self.expire_if_needed(from, now) {
            return Reply::error("ERR no such key");
        }
        let done = if only_if_new { Reply::Integer(1) } else { Reply::ok() };
        if from == to {
            return if only_if_new { Reply::Integer(0) } else { done };
        }
        if self.expire_if_needed(to, now) {
            if only_if_new {
                return Reply::Integer(0);
            }
            self.remove(to);
        }
        if let Some(entry) = self.remove(from) {
            let expire_at_ms = entry.expire_at_ms();
            // A renamed key is a modification of both names.
            self.put(to, entry.value, false);
            self.set_expiry(to, expire_at_ms);
        }
        done
    }

    /// EXPIRE, PEXPIRE, EXPIREAT, PEXPIREAT key n [NX|XX|GT|LT]
    /// (`expireGenericCommand`). A time not in the future deletes the key.
    pub(super) fn on_expire(
        &mut self,
        args: &[Vec<u8>],
        now: u64,
        base: ExpireBase,
        unit: Unit,
        name: &str,
    ) -> Reply {
        let flags = match parse_expire_flags(&args[3..]) {
            Ok(flags) => flags,
            Err(reply) => return reply,
        };
        let Some(mut when) = parse_i64(&args[2]) else {
            return Reply::error(NOT_AN_INTEGER);
        };
        if unit == Unit::Seconds {
            if !(i64::MIN / 1000..=i64::MAX / 1000).contains(&when) {
                return invalid_expire(name);
            }
            when *= 1000;
        }
        let base_ms = match base {
            ExpireBase::Now => now_i64(now),
            ExpireBase::Epoch => 0,
        };
        if when > i64::MAX - base_ms {
            return invalid_expire(name);
        }
        when += base_ms;
        let key = args[1].as_slice();
        if !self.expire_if_needed(key, now) {
            return Reply::Integer(0);
        }
        let current = self.entries.get(key).and_then(|entry| entry.expire_at_ms()).map(|at| at as i64);
        let refused = (flags.nx && current.is_some())
            || (flags.xx && current.is_none())
            || (flags.gt && current.is_none_or(|current| when <= current))
            || (flags.lt && current.is_some_and(|current| when >= current));
        if refused {
            return Reply::Integer(0);
        }
        if when <= now_i64(now) {
            self.remove(key);
        } else {
            self.set_expiry(key, Some(when as u64));
        }
        Reply::Integer(1)
    }

    pub(super) fn on_persist(&mut self, args: &[Vec<u8>], now: u64) -> Reply {
        let removed = self.expire_if_needed(&args[1], now) && self.set_expiry(&args[1], None);
        Reply::Integer(i64::from(removed))
    }

    /// COPY source destination [DB 0] [REPLACE] (`copyCommand`): the value
    /// and its TTL, to a destination that is absent or replaced.
    pub(super) fn on_copy(&mut self, args: &[Vec<u8>], now: u64) -> Reply {
        let mut replace = false;
        let mut j = 3;
        while j < args.len() {
            if option_is(&args[j], "replace") {
                replace = true;
            } else if option_is(&args[j], "db") && j + 1 < args.len() {
                match parse_i64(&args[j + 1]) {
                    None => return Reply::error(NOT_AN_INTEGER),
                    Some(db) if i32::try_from(db).is_err() => {
                        return Reply::error(
                            "ERR value is out of range, value must between -2147483648 and 2147483647",
                        )
                    }
                    Some(0) => {}
                    Some(_) => return Reply::error("ERR DB index is out of range"),
                }
                j += 1;
            } else {
                return Reply::error(SYNTAX_ERROR);
            }
            j += 1;
        }
        let (from, to) = (args[1].as_slice(), args[2].as_slice());
        if from == to {
            return Reply::error("ERR source and destination objects are the same");
        }
        if !self.expire_if_needed(from, now) {
            return Reply::Integer(0);
        }
        let entry = self.entries.get(from).expect("checked above");
        let (value, expire_at_ms) = (entry.value.clone(), entry.expire_at_ms());
        if self.expire_if_needed(to, now) {
            if !replace {
                return Reply::Integer(0);
            }
            self.remove(to);
        }
        self.put(to, value, false);
        self.set_expiry(to, expire_at_ms);
        Reply::Integer(1)
    }

    /// OBJECT ENCODING|FREQ|IDLETIME|REFCOUNT key, OBJECT HELP (see the
    /// module docs). A container command: the subcommand is looked up, then
    /// its own arity checked, as Redis's `processCommand` does.
    pub(super) fn on_object(&self, args: &[Vec<u8>], now: u64) -> Reply {
        const SUBCOMMANDS: [(&str, usize); 5] =
            [("help", 2), ("encoding", 3), ("freq", 3), ("idletime", 3), ("refcount", 3)];
        let Some(&(name, arity)) =
            SUBCOMMANDS.iter().find(|(name, _)| args[1].eq_ignore_ascii_case(name.as_bytes()))
        else {
            let shown = c_string(&args[1]);
            let shown = lossy(&shown[..shown.len().min(128)]);
            return Reply::Error(format!("ERR unknown subcommand '{shown}'. Try OBJECT HELP."));
        };
        if args.len() != arity {
            return Reply::Error(format!("ERR wrong number of arguments for 'object|{name}' command"));
        }
        if name == "help" {
            return Reply::Array(Some(
                OBJECT_HELP.iter().map(|line| Reply::Simple((*line).into())).collect(),
            ));
        }
        let Some(entry) = self.live(&args[2], now) else {
            return Reply::nil();
        };
        match name {
            "encoding" => Reply::bulk(encoding(&entry.value)),
            "refcount" => Reply::Integer(refcount(&entry.value)),
            "freq" => Reply::error(
                "ERR An LFU maxmemory policy is not selected, access frequency not tracked. Please note that \
                 when switching between policies at runtime LRU and LFU data will take some time to adjust.",
            ),
            _ => Reply::error("ERR OBJECT IDLETIME is not supported: cashe does not track access times"),
        }
    }

    /// FLUSHDB and FLUSHALL [ASYNC|SYNC] (one database: the same thing).
    pub(super) fn on_flush(&mut self, args: &[Vec<u8>]) -> Reply {
        let valid = args.len() == 1
            || (args.len() == 2 && (option_is(&args[1], "sync") || option_is(&args[1], "async")));
        if !valid {
            return Reply::error(SYNTAX_ERROR);
        }
        self.clear();
        Reply::ok()
    }

    /// CASHE.EXPIRE key...: deletes each listed key that has expired at the
    /// entry's time; a key set again since the leader listed it survives.
    pub(super) fn on_cashe_expire(&mut self, args: &[Vec<u8>], now: u64) -> Reply {
        let mut deleted = 0;
        for key in &args[1..] {
            if self.entries.get(key.as_slice()).is_some_and(|entry| entry.is_expired(now)) {
                self.reclaim(key);
                deleted += 1;
            }
        }
        Reply::Integer(deleted)
    }
}

#[derive(Clone, Copy, Debug, Default)]
struct ExpireFlags {
    nx: bool,
    xx: bool,
    gt: bool,
    lt: bool,
}

/// `parseExtendedExpireArgumentsOrReply`.
fn parse_expire_flags(options: &[Vec<u8>]) -> Result<ExpireFlags, Reply> {
    let mut flags = ExpireFlags::default();
    for option in options {
        if option_is(option, "nx") {
            flags.nx = true;
        } else if option_is(option, "xx") {
            flags.xx = true;
        } else if option_is(option, "gt") {
            flags.gt = true;
        } else if option_is(option, "lt") {
            flags.lt = true;
        } else {
            // Redis trims trailing CR/LF from formatted error texts.
            let shown = lossy(c_string(option));
            let shown = shown.trim_end_matches(['\r', '\n']);
            return Err(Reply::Error(format!("ERR Unsupported option {shown}")));
        }
    }
    if flags.nx && (flags.xx || flags.gt || flags.lt) {
        return Err(Reply::error("ERR NX and XX, GT or LT options at the same time are not compatible"));
    }
    if flags.gt && flags.lt {
        return Err(Reply::error("ERR GT and LT options at the same time are not compatible"));
    }
    Ok(flags)
}

/// OBJECT HELP's lines, as Redis 7.0 prints them.
const OBJECT_HELP: [&str; 15] = [
    "OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "ENCODING <key>",
    "    Return the kind of internal representation used in order to store the value",
    "    associated with a <key>.",
    "FREQ <key>",
    "    Return the access frequency index of the <key>. The returned integer is",
    "    proportional to the logarithm of the recent access frequency of the key.",
    "IDLETIME <key>",
    "    Return the idle time of the <key>, that is the approximated number of",
    "    seconds elapsed since the last access to the key.",
    "REFCOUNT <key>",
    "    Return the number of references of the value associated with the specified",
    "    <key>.",
    "HELP",
    "    Prints this help.",
];

/// OBJECT ENCODING's answer (see the module docs for strings).
fn encoding(value: &Value) -> &'static str {
    match value {
        Value::String(bytes) if bytes.len() <= 20 && parse_i64(bytes).is_some() => "int",
        Value::String(bytes) if bytes.len() <= 44 => "embstr",
        Value::String(_) => "raw",
        Value::Hash(hash) => hash.encoding(),
        Value::List(list) => list.encoding(),
        Value::Set(set) => set.encoding(),
        Value::ZSet(zset) => zset.encoding(),
    }
}

/// OBJECT REFCOUNT's answer: Redis shares the integers 0 to 9999 it stores
/// (`OBJ_SHARED_INTEGERS`) with a refcount of `OBJ_SHARED_REFCOUNT`.
fn refcount(value: &Value) -> i64 {
    const SHARED_INTEGERS: i64 = 10_000;
    const SHARED_REFCOUNT: i64 = i32::MAX as i64;
    match value {
        Value::String(bytes) if encoding(value) == "int" => match parse_i64(bytes) {
            Some(n) if (0..SHARED_INTEGERS).contains(&n) => SHARED_REFCOUNT,
            _ => 1,
        },
        _ => 1,
    }
}

/// SplitMix64's output function: spreads consecutive times over the keys.
fn mix64(value: u64) -> u64 {
    let mut z = value.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::super::tests::{bulk, cmd, int, run, T0};
    use super::*;

    #[test]
    fn copy_copies_the_value_and_its_ttl_and_replaces_only_when_told() {
        let mut store = Store::default();
        run(&mut store, T0, &["SET", "a", "1", "PX", "5000"]);
        assert_eq!(run(&mut store, T0, &["COPY", "a", "b"]), int(1));
        assert_eq!(run(&mut store, T0, &["GET", "b"]), bulk("1"));
        assert_eq!(run(&mut store, T0, &["PTTL", "b"]), int(5000));
        run(&mut store, T0, &["SET", "a", "2"]);
        assert_eq!(run(&mut store, T0, &["COPY", "a", "b"]), int(0), "the destination exists");
        assert_eq!(run(&mut store, T0, &["COPY", "a", "b", "DB", "0", "REPLACE"]), int(1));
        assert_eq!(run(&mut store, T0, &["GET", "b"]), bulk("2"));
        assert_eq!(run(&mut store, T0, &["PTTL", "b"]), int(-1), "the source had no TTL");
        assert_eq!(run(&mut store, T0, &["COPY", "missing", "b", "REPLACE"]), int(0));
        run(&mut store, T0, &["HSET", "h", "f", "v"]);
        assert_eq!(run(&mut store, T0, &["COPY", "h", "b", "REPLACE"]), int(1));
        assert_eq!(run(&mut store, T0, &["HGET", "b", "f"]), bulk("v"));
        run(&mut store, T0, &["HSET", "b", "g", "w"]);
        assert_eq!(run(&mut store, T0, &["HLEN", "h"]), int(1), "the copy is independent");
    }

    #[test]
    fn copy_checks_its_options_before_the_keys() {
        let mut store = Store::default();
        let same = Reply::error("ERR source and destination objects are the same");
        assert_eq!(run(&mut store, T0, &["COPY", "a", "a"]), same);
        assert_eq!(
            run(&mut store, T0, &["COPY", "a", "a", "DB", "1"]),
            Reply::error("ERR DB index is out of range")
        );
        assert_eq!(run(&mut store, T0, &["COPY", "a", "b", "DB", "x"]), Reply::error(NOT_AN_INTEGER));
        let int_range = "ERR value is out of range, value must between -2147483648 and 2147483647";
        assert_eq!(run(&mut store, T0, &["COPY", "a", "b", "DB", "2147483648"]), Reply::error(int_range));
        assert_eq!(run(&mut store, T0, &["COPY", "a", "b", "DB"]), Reply::error(SYNTAX_ERROR));
        assert_eq!(run(&mut store, T0, &["COPY", "a", "b", "NOW"]), Reply::error(SYNTAX_ERROR));
    }

    #[test]
    fn object_answers_encodings_refcounts_and_redis_errors() {
        let mut store = Store::default();
        let object = |store: &Store, words: &[&str]| store.read(&cmd(words), T0);
        run(
            &mut store,
            T0,
            &["MSET", "int", "12345", "small", "7", "text", "hello", "long", &"x".repeat(45)],
        );
        assert_eq!(object(&store, &["OBJECT", "ENCODING", "int"]), bulk("int"));
        assert_eq!(object(&store, &["OBJECT", "encoding", "text"]), bulk("embstr"));
        assert_eq!(object(&store, &["OBJECT", "ENCODING", "long"]), bulk("raw"));
        assert_eq!(object(&store, &["OBJECT", "ENCODING", "missing"]), Reply::nil());
        assert_eq!(object(&store, &["OBJECT", "REFCOUNT", "small"]), int(2_147_483_647), "a shared integer");
        assert_eq!(object(&store, &["OBJECT", "REFCOUNT", "int"]), int(1));
        assert!(object(&store, &["OBJECT", "FREQ", "int"]).is_error());
        assert_eq!(object(&store, &["OBJECT", "FREQ", "missing"]), Reply::nil());
        assert!(object(&store, &["OBJECT", "IDLETIME", "int"]).is_error());
        let unknown = Reply::error("ERR unknown subcommand 'Foo'. Try OBJECT HELP.");
        assert_eq!(object(&store, &["OBJECT", "Foo", "a", "b"]), unknown);
        let arity = Reply::error("ERR wrong number of arguments for 'object|encoding' command");
        assert_eq!(object(&store, &["OBJECT", "ENCODING"]), arity);
        let Reply::Array(Some(help)) = object(&store, &["OBJECT", "HELP"]) else { panic!("help") };
        assert_eq!(help.len(), OBJECT_HELP.len());
    }
}
