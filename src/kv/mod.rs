//! The replicated key-value state machine: an ordered map of byte keys to
//! typed values (`Value`: strings, hashes, lists, sets and sorted sets),
//! each with an optional absolute expiry in ms, and the Redis 7.0 string,
//! bitmap, hash, list, set, sorted set and key commands over it (replies
//! and error texts as redis-server 7.0 gives them, WRONGTYPE included;
//! `tests/redis_diff.rs` compares them byte for byte against a real
//! server), plus the clients blocked by BLPOP and the like (`blocking`).
//!
//! Pure and deterministic: no IO, no clock, no hashing with random seeds.
//! Time is the `now_ms` each call is given — for a logged command, the
//! proposing leader's clock carried in the entry — so every replica
//! computes the same replies and the same state. Keys past their expiry
//! read as absent everywhere; writes that touch such a key drop it first
//! (as Redis's `lookupKeyWrite` does), and the leader reclaims the rest by
//! proposing [`CASHE_EXPIRE`] with keys from [`Store::expired_keys`].
//!
//! Intentional differences from redis-server 7.0:
//! - DBSIZE does not count expired keys awaiting reclamation (Redis counts
//!   them until its expiry cycle happens to delete them).
//! - KEYS answers in key order. SCAN cursors are creation sequence numbers
//!   and COUNT is exact (Redis: hash-table positions, COUNT a hint); the
//!   guarantee is Redis's: a key present for a whole iteration is returned.
//! - RANDOMKEY is a function of `now_ms` and the keys, not a random draw.
//! - Error texts that quote an argument show bytes that are not UTF-8 as
//!   U+FFFD (replies hold error texts as `String`); Redis echoes them raw.
//! - No streams; SCAN TYPE stream (or any other name) matches nothing, as
//!   in Redis 7.0 for a type it has no key of.
//! - Each type module (`list`, `set`, `zset`, `bits`) lists its own
//!   differences (member order of sets, SSCAN/ZSCAN cursors, limits on
//!   huge random counts); `blocking` lists those of blocked clients.
//! - HKEYS, HVALS, HGETALL and HSCAN answer in field order (Redis: hash
//!   table or listpack order). An HSCAN cursor is the first 8 bytes of the
//!   next field (see `hash`), and COUNT is exact but for fields sharing
//!   them; the guarantee is Redis's: a field present for a whole iteration
//!   is returned. Redis answers a small (listpack) hash whole in one call.
//! - HRANDFIELD draws from `Store::random` (the same fields on every
//!   replica at the same time) and answers distinct fields in draw order.
//! - COPY knows one database; OBJECT ENCODING of strings, OBJECT REFCOUNT
//!   and OBJECT IDLETIME differ as `keys` documents.
//! - INCRBYFLOAT is bit-exact with Redis on x86-64 (80-bit `long double`);
//!   Redis on other architectures (e.g. aarch64's 128-bit `long double`)
//!   prints some sums differently.
//! - Reads never reclaim an expired key (Redis deletes on access); nothing
//!   observable changes.
//! - HAS key (EXISTS for one key), CAS key expected new (1 if the value was
//!   `expected` and is now `new`, keeping its TTL; a missing key never
//!   matches, another type is WRONGTYPE) and CASHE.EXPIRE are cashe's own.
//!
//! Layout: `command` (the table, arity and lookup errors), `strings`,
//! `bits`, `hash`, `list`, `set`, `zset` and `keys` (one handler per
//! command; each type module also holds its value type and its command
//! table), `blocking` (blocked clients as state), `snapshot`
//! (versioned postcard encoding), `glob` (KEYS/SCAN patterns), `long_double` and `bignum`
//! (INCRBYFLOAT's x87 arithmetic, which Rust lacks), `args` (Redis's
//! argument parsers). The index invariants are checked by
//! `Store::check_invariants` (tests, and every restore validates its input).

mod args;
pub mod backup;
mod bignum;
mod bits;
mod blocking;
mod command;
mod glob;
mod hash;
mod key;
mod keys;
mod list;
mod long_double;
mod score;
mod sequence;
mod set;
pub mod slot;
mod snapshot;
mod strings;
mod watch;
mod zset;

pub use blocking::{is_blocking, timeout_ms, timeout_reply, Outcome, WaiterId};
pub use command::{command_keys, commands, Access, CommandInfo, CASHE_EXPIRE};
pub(crate) use glob::string_match;
pub use snapshot::{snapshot_decode, RestoreError, SNAPSHOT_FORMAT};
pub use watch::{Watch, TOMBSTONE_BYTES_MAX};

use crate::protocol::Reply;
use command::{Kind, ReadCommand, WriteCommand};
use hash::Hash;
use key::Key;
use list::List;
use sequence::SequenceIndex;
use set::Set;
use std::collections::{BTreeMap, BTreeSet};
use std::num::NonZeroU64;
use watch::Tombstones;
use zset::ZSet;

/// Redis's `proto-max-bulk-len` default: no string may grow beyond it.
pub const VALUE_BYTES_MAX: u64 = 512 * 1024 * 1024;

/// The key space.
///
/// Besides the map itself, two indexes: every key's creation sequence
/// number (SCAN cursors walk keys in creation order, so a key present for
/// a whole iteration is returned even if others are deleted meanwhile; see
/// `sequence` for its layout) and the keys with a TTL ordered by expiry
/// (DBSIZE and `expired_keys` need not visit every key).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Store {
    entries: BTreeMap<Key, Entry>,
    by_sequence: SequenceIndex,
    /// `(expire_at_ms, sequence)` of every key with a TTL.
    expiries: BTreeSet<(u64, u64)>,
    /// The sequence number of the last key created; never reused.
    last_sequence: u64,
    /// Write commands applied so far; what WATCH compares (`watch`).
    version: u64,
    /// Keys deleted by commands, with the version of their deletion.
    tombstones: Tombstones,
    /// Clients blocked by BLPOP and the like, in the order they blocked.
    waiters: blocking::Waiters,
    /// Zero but for the planted bug `spop-local-random`.
    replica_salt: ReplicaSalt,
}

/// What the planted bug `spop-local-random` mixes into every random draw of
/// a write: a value of each replica's own, so replicas draw apart. Not
/// state (not in snapshots, equality or hashes).
#[derive(Clone, Copy, Debug, Default)]
struct ReplicaSalt(u64);

impl PartialEq for ReplicaSalt {
    fn eq(&self, _: &ReplicaSalt) -> bool {
        true
    }
}

impl Eq for ReplicaSalt {}

impl std::hash::Hash for ReplicaSalt {
    fn hash<H: std::hash::Hasher>(&self, _: &mut H) {}
}

/// Redis's reply to a command on a key of another type.
const WRONG_TYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";

/// A key's value, one variant per Redis type (lists, sets and sorted sets
/// will join them). Collections are boxed so that a value takes the 24
/// bytes of the string it usually is: the string path pays a tag check and
/// nothing else.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Value {
    String(Vec<u8>),
    Hash(Box<Hash>),
    List(Box<List>),
    Set(Box<Set>),
    ZSet(Box<ZSet>),
}

const _: () = assert!(std::mem::size_of::<Value>() == 24);

/// A collection type a `Value` may hold: the store's typed accessors
/// (`live_as`, `for_write_as`, `mut_as`) find it through these.
trait Collection: Sized {
    fn of(value: &Value) -> Option<&Self>;
    fn of_mut(value: &mut Value) -> Option<&mut Self>;
    /// A value holding an empty one.
    fn empty_value() -> Value;
}

macro_rules! collection {
    ($type:ty, $variant:ident) => {
        impl Collection for $type {
            fn of(value: &Value) -> Option<&Self> {
                match value {
                    Value::$variant(collection) => Some(collection),
                    _ => None,
                }
            }

            fn of_mut(value: &mut Value) -> Option<&mut Self> {
                match value {
                    Value::$variant(collection) => Some(collection),
                    _ => None,
                }
            }

            fn empty_value() -> Value {
                Value::$variant(Box::default())
            }
        }
    };
}

collection!(Hash, Hash);
collection!(List, List);
collection!(Set, Set);
collection!(ZSet, ZSet);

impl Value {
    /// TYPE's answer, and SCAN TYPE's name.
    fn type_name(&self) -> &'static str {
        match self {
            Value::String(_) => "string",
            Value::Hash(_) => "hash",
            Value::List(_) => "list",
            Value::Set(_) => "set",
            Value::ZSet(_) => "zset",
        }
    }

    /// Whether it is a collection with nothing in it: never stored (the
    /// write that removes the last element deletes the key).
    fn is_empty_collection(&self) -> bool {
        match self {
            Value::String(_) => false,
            Value::Hash(hash) => hash.is_empty(),
            Value::List(list) => list.is_empty(),
            Value::Set(set) => set.is_empty(),
            Value::ZSet(zset) => zset.is_empty(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Entry {
    value: Value,
    /// Absolute Unix time in ms; the key is gone once `now_ms` is past it.
    /// Always in `1..=i64::MAX` (Redis keeps expiries as positive `long
    /// long`); non-zero, so the option costs no extra word per key.
    expiry: Option<NonZeroU64>,
    sequence: u64,
    /// The store's version when the key was last modified (WATCH).
    modified: u64,
}

impl Entry {
    fn is_expired(&self, now_ms: u64) -> bool {
        self.expire_at_ms().is_some_and(|at| now_ms > at)
    }

    /// Absolute Unix time in ms; the key is gone once `now_ms` is past it.
    fn expire_at_ms(&self) -> Option<u64> {
        self.expiry.map(NonZeroU64::get)
    }
}

/// Redis's `string2ll` (what SELECT and HELLO parse their numbers with):
/// optional '-', no '+', no leading zeros, no spaces, within i64.
pub(crate) fn parse_integer(text: &[u8]) -> Option<i64> {
    args::parse_i64(text)
}

/// The key space as INFO's keyspace section counts it at one instant.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct KeyCounts {
    /// Keys not expired (what DBSIZE answers).
    pub keys: usize,
    /// Those of them with a TTL.
    pub expires: usize,
}

/// Which commands may run, and whether they need the log: by name
/// (case-insensitive), after Redis's arity check. Errors are the reply
/// Redis 7.0 gives for an unknown command or a wrong argument count.
pub fn classify(args: &[Vec<u8>]) -> Result<Access, Reply> {
    command::lookup(args).map(|spec| spec.access())
}

/// Commands that may add data, by Redis's lower-case name: those Redis 7.0
/// flags `denyoom` (and cashe's CAS), which a leader over `--maxmemory`
/// refuses. Commands that only remove, rename, expire or move data
/// (DEL, LPOP, RENAME, SMOVE, GETEX, ...) still run, so memory can be freed.
const MAY_GROW: [&str; 44] = [
    "set",
    "setnx",
    "setex",
    "psetex",
    "getset",
    "mset",
    "msetnx",
    "incr",
    "incrby",
    "incrbyfloat",
    "decr",
    "decrby",
    "append",
    "setrange",
    "cas",
    "copy",
    "setbit",
    "bitop",
    "bitfield",
    "hset",
    "hmset",
    "hsetnx",
    "hincrby",
    "hincrbyfloat",
    "lpush",
    "rpush",
    "lpushx",
    "rpushx",
    "lset",
    "linsert",
    "lmove",
    "rpoplpush",
    "blmove",
    "brpoplpush",
    "sadd",
    "sinterstore",
    "sunionstore",
    "sdiffstore",
    "zadd",
    "zincrby",
    "zrangestore",
    "zunionstore",
    "zinterstore",
    "zdiffstore",
];

/// Whether `args` is a command that may add data (`MAY_GROW`); an unknown
/// command or a wrong argument count is not (it fails anyway).
pub fn may_grow(args: &[Vec<u8>]) -> bool {
    command::lookup(args).is_ok_and(|spec| MAY_GROW.contains(&spec.name))
}

impl Store {
    /// Executes any command at time `now_ms` (the proposing leader's clock).
    pub fn apply(&mut self, args: &[Vec<u8>], now_ms: u64) -> Reply {
        let spec = match command::lookup(args) {
            Ok(spec) => spec,
            Err(reply) => return reply,
        };
        match spec.kind {
            Kind::Read(command) => self.execute_read(command, args, now_ms),
            Kind::Write(command) => {
                self.version += 1;
                self.execute_write(command, spec.name, args, now_ms)
            }
        }
    }

    /// Executes a read-only command without changing anything; a write
    /// command is answered with an error (nothing panics).
    pub fn read(&self, args: &[Vec<u8>], now_ms: u64) -> Reply {
        match command::lookup(args) {
            Err(reply) => reply,
            Ok(spec) => match spec.kind {
                Kind::Read(command) => self.execute_read(command, args, now_ms),
                Kind::Write(_) => {
                    Reply::Error(format!("ERR '{}' writes and cannot be served as a read", spec.name))
                }
            },
        }
    }

    fn execute_read(&self, command: ReadCommand, args: &[Vec<u8>], now: u64) -> Reply {
        match command {
            ReadCommand::Get => self.on_get(args, now),
            ReadCommand::MGet => self.on_mget(args, now),
            ReadCommand::StrLen => self.on_strlen(args, now),
            ReadCommand::GetRange => self.on_getrange(args, now),
            ReadCommand::Exists => self.on_exists(args, now),
            ReadCommand::Has => self.on_has(args, now),
            ReadCommand::Type => self.on_type(args, now),
            ReadCommand::Ttl => self.on_ttl(args, now, false, false),
            ReadCommand::PTtl => self.on_ttl(args, now, true, false),
            ReadCommand::ExpireTime => self.on_ttl(args, now, false, true),
            ReadCommand::PExpireTime => self.on_ttl(args, now, true, true),
            ReadCommand::Scan => self.on_scan(args, now),
            ReadCommand::Keys => self.on_keys(args, now),
            ReadCommand::RandomKey => self.on_randomkey(now),
            ReadCommand::DbSize => self.on_dbsize(now),
            ReadCommand::Backup => backup::on_backup(self, args),
            ReadCommand::Digest => backup::on_digest(self, args, now),
            ReadCommand::HGet => self.on_hget(args, now),
            ReadCommand::HMGet => self.on_hmget(args, now),
            ReadCommand::HExists => self.on_hexists(args, now),
            ReadCommand::HLen => self.on_hlen(args, now),
            ReadCommand::HStrLen => self.on_hstrlen(args, now),
            ReadCommand::HKeys => self.on_hgetall(args, now, hash::Parts::Fields),
            ReadCommand::HVals => self.on_hgetall(args, now, hash::Parts::Values),
            ReadCommand::HGetAll => self.on_hgetall(args, now, hash::Parts::Both),
            ReadCommand::HScan => self.on_hscan(args, now),
            ReadCommand::HRandField => self.on_hrandfield(args, now),
            ReadCommand::Object => self.on_object(args, now),
            ReadCommand::Lists(command) => self.list_read(command, args, now),
            ReadCommand::Sets(command) => self.set_read(command, args, now),
            ReadCommand::SortedSets(command) => self.zset_read(command, args, now),
            ReadCommand::Bitmaps(command) => self.bits_read(command, args, now),
        }
    }

    fn execute_write(&mut self, command: WriteCommand, name: &str, args: &[Vec<u8>], now: u64) -> Reply {
        match command {
            WriteCommand::Set => self.on_set(args, now),
            WriteCommand::SetNx => self.on_setnx(args, now),
            WriteCommand::SetEx => self.on_setex(args, now, strings::Unit::Seconds, name),
            WriteCommand::PSetEx => self.on_setex(args, now, strings::Unit::Milliseconds, name),
            WriteCommand::GetSet => self.on_getset(args, now),
            WriteCommand::GetEx => self.on_getex(args, now),
            WriteCommand::GetDel => self.on_getdel(args, now),
            WriteCommand::MSet => self.on_mset(args, now, name),
            WriteCommand::MSetNx => self.on_msetnx(args, now, name),
            WriteCommand::Incr => self.on_incr_by(args, now, 1),
            WriteCommand::Decr => self.on_incr_by(args, now, -1),
            WriteCommand::IncrBy => self.on_incrby(args, now),
            WriteCommand::DecrBy => self.on_decrby(args, now),
            WriteCommand::IncrByFloat => self.on_incrbyfloat(args, now),
            WriteCommand::Append => self.on_append(args, now),
            WriteCommand::SetRange => self.on_setrange(args, now),
            WriteCommand::Cas => self.on_cas(args, now),
            WriteCommand::Del => self.on_del(args, now),
            WriteCommand::Rename => self.on_rename(args, now, false),
            WriteCommand::RenameNx => self.on_rename(args, now, true),
            WriteCommand::Expire => {
                self.on_expire(args, now, keys::ExpireBase::Now, strings::Unit::Seconds, name)
            }
            WriteCommand::PExpire => {
                self.on_expire(args, now, keys::ExpireBase::Now, strings::Unit::Milliseconds, name)
            }
            WriteCommand::ExpireAt => {
                self.on_expire(args, now, keys::ExpireBase::Epoch, strings::Unit::Seconds, name)
            }
            WriteCommand::PExpireAt => {
                self.on_expire(args, now, keys::ExpireBase::Epoch, strings::Unit::Milliseconds, name)
            }
            WriteCommand::Persist => self.on_persist(args, now),
            WriteCommand::Flush => self.on_flush(args),
            WriteCommand::CasheExpire => self.on_cashe_expire(args, now),
            WriteCommand::HSet => self.on_hset(args, now, name),
            WriteCommand::HSetNx => self.on_hsetnx(args, now),
            WriteCommand::HDel => self.on_hdel(args, now),
            WriteCommand::HIncrBy => self.on_hincrby(args, now),
            WriteCommand::HIncrByFloat => self.on_hincrbyfloat(args, now),
            WriteCommand::Copy => self.on_copy(args, now),
            WriteCommand::Lists(command) => self.list_write(command, name, args, now),
            WriteCommand::Sets(command) => self.set_write(command, name, args, now),
            WriteCommand::SortedSets(command) => self.zset_write(command, name, args, now),
            WriteCommand::Bitmaps(command) => self.bits_write(command, name, args, now),
        }
    }

    /// A random generator for the read or write being served at `now`: a
    /// function of the time (for a write, the leader's clock in its entry)
    /// and the store's version, so every replica that applies an entry
    /// draws the same numbers, and SPOP removes the same members
    /// everywhere. Reads (SRANDMEMBER, HRANDFIELD, ZRANDMEMBER, RANDOMKEY)
    /// draw alike on every replica at the same time.
    fn random(&self, now: u64) -> crate::raft::SplitMix64 {
        let seed = now.rotate_left(32) ^ self.version.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        crate::raft::SplitMix64::new(seed ^ self.replica_salt.0)
    }

    /// Plants `spop-local-random`: every later random draw of a write mixes
    /// in `salt`, a value of this replica's own. Only the planted-bug
    /// checks call it.
    pub fn plant_replica_random(&mut self, salt: u64) {
        self.replica_salt = ReplicaSalt(salt);
    }

    /// When the next key with a TTL expires, if any has one.
    pub fn next_expiry_ms(&self) -> Option<u64> {
        self.expiries.first().map(|(at_ms, _)| *at_ms)
    }

    /// Keys whose expiry has passed at `now_ms` but which are still stored,
    /// in key order, at most `max`: what the leader proposes to delete with
    /// `[CASHE.EXPIRE, key...]`.
    pub fn expired_keys(&self, now_ms: u64, max: usize) -> Vec<Vec<u8>> {
        let mut keys: Vec<&Key> = self
            .expiries
            .range(..(now_ms, 0))
            .map(|(_, sequence)| self.by_sequence.get(*sequence).expect("indexed"))
            .collect();
        keys.sort_unstable();
        keys.into_iter().take(max).map(|key| key.to_vec()).collect()
    }

    /// The keys alive at `now_ms` whose slot is `slot`, in key order
    /// (`CLUSTER GETKEYSINSLOT` and `COUNTKEYSINSLOT`). It walks every key:
    /// the store keeps no index by slot.
    pub fn keys_in_slot(&self, slot: u16, now_ms: u64) -> impl Iterator<Item = &[u8]> {
        let live = self
            .entries
            .iter()
            .filter(move |(key, entry)| !entry.is_expired(now_ms) && slot::key_slot(key) == slot);
        live.map(|(key, _)| &key[..])
    }

    /// Keys alive at `now_ms`, and how many of them have a TTL.
    pub fn key_counts(&self, now_ms: u64) -> KeyCounts {
        let expired = self.expiries.range(..(now_ms, 0)).count();
        KeyCounts { keys: self.entries.len() - expired, expires: self.expiries.len() - expired }
    }

    /// Number of stored keys, expired or not (what a snapshot holds).
    pub fn stored_keys(&self) -> usize {
        self.entries.len()
    }

    /// Every stored key, expired or not, in key order.
    pub fn every_key(&self) -> impl Iterator<Item = &[u8]> {
        self.entries.keys().map(|key| &key[..])
    }

    // ---- primitives: the only code that touches the indexes ----

    /// The entry if the key exists and has not expired at `now`.
    fn live(&self, key: &[u8], now: u64) -> Option<&Entry> {
        self.entries.get(key).filter(|entry| !entry.is_expired(now))
    }

    /// Drops the key if it has expired; returns whether it (still) exists.
    /// Redis's `lookupKeyWrite`. Not a modification (WATCH): the key was
    /// already gone.
    fn expire_if_needed(&mut self, key: &[u8], now: u64) -> bool {
        match self.entries.get(key) {
            None => false,
            Some(entry) if entry.is_expired(now) => {
                self.reclaim(key);
                false
            }
            Some(_) => true,
        }
    }

    /// Sets the value of a key, creating it (without TTL) if absent; an
    /// existing key keeps its TTL only if `keep_ttl`. Call after
    /// `expire_if_needed`, so an expired key is re-created, not revived.
    fn put(&mut self, key: &[u8], value: Value, keep_ttl: bool) {
        let version = self.version;
        if let Some(entry) = self.entries.get_mut(key) {
            entry.value = value;
            entry.modified = version;
            // One search of the key space per write: the TTL is dropped
            // here rather than through `set_expiry`, which would search again.
            if let Some(at) = entry.expiry.take_if(|_| !keep_ttl) {
                self.expiries.remove(&(at.get(), entry.sequence));
            }
            return;
        }
        self.last_sequence += 1;
        let sequence = self.last_sequence;
        self.by_sequence.push(sequence, Key::new(key));
        self.entries.insert(Key::new(key), Entry { value, expiry: None, sequence, modified: version });
        self.tombstones.forget(key);
    }

    /// Sets or clears the TTL of an existing key; returns whether it had one.
    fn set_expiry(&mut self, key: &[u8], expire_at_ms: Option<u64>) -> bool {
        let Some(entry) = self.entries.get_mut(key) else {
            return false;
        };
        let expiry = expire_at_ms.map(|at| NonZeroU64::new(at).expect("expiry 0 outside Redis's range"));
        let previous = std::mem::replace(&mut entry.expiry, expiry).map(NonZeroU64::get);
        if expiry.is_some() || previous.is_some() {
            entry.modified = self.version;
        }
        if let Some(at) = previous {
            self.expiries.remove(&(at, entry.sequence));
        }
        if let Some(at) = expire_at_ms {
            assert!(at >= 1 && at <= i64::MAX as u64, "expiry {at} outside Redis's range");
            self.expiries.insert((at, entry.sequence));
        }
        previous.is_some()
    }

    /// The value, to change it: counts as a modification (WATCH).
    fn value_mut(&mut self, key: &[u8]) -> Option<&mut Value> {
        let version = self.version;
        self.entries.get_mut(key).map(|entry| {
            entry.modified = version;
            &mut entry.value
        })
    }

    /// The live collection of type `T` at `key`: `Ok(None)` if absent,
    /// WRONGTYPE if the key holds another type.
    fn live_as<T: Collection>(&self, key: &[u8], now: u64) -> Result<Option<&T>, Reply> {
        match self.live(key, now) {
            None => Ok(None),
            Some(entry) => T::of(&entry.value).map(Some).ok_or_else(|| Reply::error(WRONG_TYPE)),
        }
    }

    /// `live_as` for a write (Redis's `lookupKeyWrite`): an expired key is
    /// dropped first.
    fn for_write_as<T: Collection>(&mut self, key: &[u8], now: u64) -> Result<Option<&T>, Reply> {
        self.expire_if_needed(key, now);
        self.live_as(key, now)
    }

    /// The collection at `key` to change, created empty if absent: a
    /// modification (WATCH). Only after `for_write_as` answered `Ok`; the
    /// caller leaves it non-empty or removes the key.
    fn mut_as<T: Collection>(&mut self, key: &[u8]) -> &mut T {
        if !self.entries.contains_key(key) {
            self.put(key, T::empty_value(), false);
        }
        match self.value_mut(key).and_then(T::of_mut) {
            Some(collection) => collection,
            None => panic!("mut_as on a key of another type"),
        }
    }

    /// A string to change in place (APPEND, SETRANGE, CAS): a modification.
    /// `None` if the key is absent or holds another type (callers have
    /// answered WRONGTYPE before).
    fn string_mut(&mut self, key: &[u8]) -> Option<&mut Vec<u8>> {
        match self.value_mut(key) {
            Some(Value::String(bytes)) => Some(bytes),
            _ => None,
        }
    }

    /// Deletes a key by a command: a modification (WATCH), remembered in a
    /// tombstone.
    fn remove(&mut self, key: &[u8]) -> Option<Entry> {
        let entry = self.reclaim(key)?;
        self.tombstones.record(key, self.version);
        Some(entry)
    }

    /// Drops a key that has expired, or is being moved: no tombstone.
    fn reclaim(&mut self, key: &[u8]) -> Option<Entry> {
        let entry = self.entries.remove(key)?;
        self.by_sequence.remove(entry.sequence);
        if let Some(at) = entry.expire_at_ms() {
            self.expiries.remove(&(at, entry.sequence));
        }
        Some(entry)
    }

    fn clear(&mut self) {
        self.entries.clear();
        self.by_sequence.clear();
        self.expiries.clear();
        self.tombstones.clear_all(self.version);
    }

    /// Panics if the indexes disagree with the map (a bug, never input).
    pub fn check_invariants(&self) {
        assert_eq!(self.entries.len(), self.by_sequence.len(), "sequence index size");
        let mut with_ttl = 0;
        for (key, entry) in &self.entries {
            assert!(entry.sequence >= 1 && entry.sequence <= self.last_sequence, "sequence out of range");
            assert!(entry.modified <= self.version, "modified after the store's version");
            assert_eq!(self.by_sequence.get(entry.sequence), Some(key), "sequence index entry");
            assert!(!entry.value.is_empty_collection(), "an empty {} is stored", entry.value.type_name());
            if let Some(at) = entry.expire_at_ms() {
                assert!(self.expiries.contains(&(at, entry.sequence)), "expiry index entry");
                with_ttl += 1;
            }
        }
        assert_eq!(self.expiries.len(), with_ttl, "expiry index size");
        for (key, version) in self.tombstones.iter() {
            assert!(!self.entries.contains_key(key.as_bytes()), "a tombstone for a stored key");
            assert!(version <= self.version && version >= self.tombstones.floor, "tombstone version");
        }
        assert!(self.tombstones.floor <= self.version, "tombstone floor");
        self.check_waiters();
    }
}

/// A bulk reply or nil.
fn bulk_or_nil(value: Option<Vec<u8>>) -> Reply {
    Reply::Bulk(value)
}

#[cfg(test)]
mod hash_tests;
#[cfg(test)]
mod tests;
