//! The command table: every command the key space serves, its arity in
//! Redis's convention (`n`: exactly n arguments counting the name; `-n`: at
//! least n) and whether it only reads. Lookup is case-insensitive and
//! binary-exact, and its errors are Redis 7.0's texts.

use super::args::{c_string, lossy};
use crate::protocol::Reply;

/// Whether a command only reads the key space (and may be served by
/// ReadIndex or a stale local read) or must go through the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Access {
    Read,
    Write,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ReadCommand {
    Get,
    MGet,
    StrLen,
    GetRange,
    Exists,
    Has,
    Type,
    Ttl,
    PTtl,
    ExpireTime,
    PExpireTime,
    Scan,
    Keys,
    RandomKey,
    DbSize,
    /// CASHE.BACKUP [SLOT n]: the store's snapshot (`kv::backup`).
    Backup,
    /// CASHE.DIGEST [SLOT n]: `Store::digest` in hexadecimal.
    Digest,
    HGet,
    HMGet,
    HExists,
    HLen,
    HStrLen,
    HKeys,
    HVals,
    HGetAll,
    HScan,
    HRandField,
    Object,
    Lists(super::list::Read),
    Sets(super::set::Read),
    SortedSets(super::zset::Read),
    Bitmaps(super::bits::Read),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum WriteCommand {
    Set,
    SetNx,
    SetEx,
    PSetEx,
    GetSet,
    GetEx,
    GetDel,
    MSet,
    MSetNx,
    Incr,
    IncrBy,
    IncrByFloat,
    Decr,
    DecrBy,
    Append,
    SetRange,
    Cas,
    Del,
    Rename,
    RenameNx,
    Expire,
    PExpire,
    ExpireAt,
    PExpireAt,
    Persist,
    Flush,
    CasheExpire,
    HSet,
    HSetNx,
    HDel,
    HIncrBy,
    HIncrByFloat,
    Copy,
    Lists(super::list::Write),
    Sets(super::set::Write),
    SortedSets(super::zset::Write),
    Bitmaps(super::bits::Write),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    Read(ReadCommand),
    Write(WriteCommand),
}

/// One row of the table. `name` is Redis's lower-case full name, used in
/// its error texts.
#[derive(Clone, Copy, Debug)]
pub(super) struct Spec {
    pub(super) name: &'static str,
    pub(super) arity: i32,
    pub(super) kind: Kind,
}

impl Spec {
    pub(super) fn access(&self) -> Access {
        match self.kind {
            Kind::Read(_) => Access::Read,
            Kind::Write(_) => Access::Write,
        }
    }
}

pub(super) const fn read(name: &'static str, arity: i32, command: ReadCommand) -> Spec {
    Spec { name, arity, kind: Kind::Read(command) }
}

pub(super) const fn write(name: &'static str, arity: i32, command: WriteCommand) -> Spec {
    Spec { name, arity, kind: Kind::Write(command) }
}

/// `(first, last, step)` of a command's key arguments, as Redis 7.0's
/// COMMAND INFO gives them (last < 0 counts from the end).
pub(super) type KeyPositions = (i32, i32, i32);
/// No key argument.
pub(super) const NO_KEYS: KeyPositions = (0, 0, 0);
/// One key, the first argument.
pub(super) const ONE_KEY: KeyPositions = (1, 1, 1);
/// Every argument is a key.
pub(super) const ALL_KEYS: KeyPositions = (1, -1, 1);

/// The tables searched by name: the string, hash and key commands here,
/// then each type's own.
fn tables() -> [&'static [Spec]; 5] {
    [TABLE, super::list::TABLE, super::set::TABLE, super::zset::TABLE, super::bits::TABLE]
}

/// The internal command the leader proposes to reclaim expired keys:
/// `[CASHE_EXPIRE, key...]` (names are case-insensitive).
pub const CASHE_EXPIRE: &str = "CASHE.EXPIRE";

/// Arities as `COMMAND INFO` reports them on Redis 7.0.
const TABLE: &[Spec] = &[
    read("get", 2, ReadCommand::Get),
    read("mget", -2, ReadCommand::MGet),
    read("strlen", 2, ReadCommand::StrLen),
    read("getrange", 4, ReadCommand::GetRange),
    read("substr", 4, ReadCommand::GetRange),
    read("exists", -2, ReadCommand::Exists),
    read("has", 2, ReadCommand::Has),
    read("type", 2, ReadCommand::Type),
    read("ttl", 2, ReadCommand::Ttl),
    read("pttl", 2, ReadCommand::PTtl),
    read("expiretime", 2, ReadCommand::ExpireTime),
    read("pexpiretime", 2, ReadCommand::PExpireTime),
    read("scan", -2, ReadCommand::Scan),
    read("keys", 2, ReadCommand::Keys),
    read("randomkey", 1, ReadCommand::RandomKey),
    read("dbsize", 1, ReadCommand::DbSize),
    read("cashe.backup", -1, ReadCommand::Backup),
    read("cashe.digest", -1, ReadCommand::Digest),
    write("set", -3, WriteCommand::Set),
    write("setnx", 3, WriteCommand::SetNx),
    write("setex", 4, WriteCommand::SetEx),
    write("psetex", 4, WriteCommand::PSetEx),
    write("getset", 3, WriteCommand::GetSet),
    write("getex", -2, WriteCommand::GetEx),
    write("getdel", 2, WriteCommand::GetDel),
    write("mset", -3, WriteCommand::MSet),
    write("msetnx", -3, WriteCommand::MSetNx),
    write("incr", 2, WriteCommand::Incr),
    write("incrby", 3, WriteCommand::IncrBy),
    write("incrbyfloat", 3, WriteCommand::IncrByFloat),
    write("decr", 2, WriteCommand::Decr),
    write("decrby", 3, WriteCommand::DecrBy),
    write("append", 3, WriteCommand::Append),
    write("setrange", 4, WriteCommand::SetRange),
    write("cas", 4, WriteCommand::Cas),
    write("del", -2, WriteCommand::Del),
    write("unlink", -2, WriteCommand::Del),
    write("rename", 3, WriteCommand::Rename),
    write("renamenx", 3, WriteCommand::RenameNx),
    write("expire", -3, WriteCommand::Expire),
    write("pexpire", -3, WriteCommand::PExpire),
    write("expireat", -3, WriteCommand::ExpireAt),
    write("pexpireat", -3, WriteCommand::PExpireAt),
    write("persist", 2, WriteCommand::Persist),
    write("flushdb", -1, WriteCommand::Flush),
    write("flushall", -1, WriteCommand::Flush),
    write("cashe.expire", -1, WriteCommand::CasheExpire),
    write("copy", -3, WriteCommand::Copy),
    read("object", -2, ReadCommand::Object),
    read("hget", 3, ReadCommand::HGet),
    read("hmget", -3, ReadCommand::HMGet),
    read("hexists", 3, ReadCommand::HExists),
    read("hlen", 2, ReadCommand::HLen),
    read("hstrlen", 3, ReadCommand::HStrLen),
    read("hkeys", 2, ReadCommand::HKeys),
    read("hvals", 2, ReadCommand::HVals),
    read("hgetall", 2, ReadCommand::HGetAll),
    read("hscan", -3, ReadCommand::HScan),
    read("hrandfield", -2, ReadCommand::HRandField),
    write("hset", -4, WriteCommand::HSet),
    write("hmset", -4, WriteCommand::HSet),
    write("hsetnx", 4, WriteCommand::HSetNx),
    write("hdel", -3, WriteCommand::HDel),
    write("hincrby", 4, WriteCommand::HIncrBy),
    write("hincrbyfloat", 4, WriteCommand::HIncrByFloat),
];

/// One row of the table as `COMMAND INFO` describes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CommandInfo {
    /// Lower case, as Redis names it.
    pub name: &'static str,
    /// Redis's convention: `n` exactly n arguments counting the name, `-n` at least n.
    pub arity: i32,
    pub access: Access,
    /// The first key argument, 0 when the command takes no key.
    pub first_key: i32,
    /// The last key argument; negative counts from the end (-1: the last argument).
    pub last_key: i32,
    /// The distance between key arguments (MSET: 2).
    pub key_step: i32,
}

/// Every command of the table, in table order, for COMMAND, COMMAND INFO
/// and COMMAND COUNT. It includes [`CASHE_EXPIRE`], which clients may not send.
pub fn commands() -> impl Iterator<Item = CommandInfo> {
    tables().into_iter().flatten().map(|spec| {
        let (first_key, last_key, key_step) = spec.key_positions();
        CommandInfo {
            name: spec.name,
            arity: spec.arity,
            access: spec.access(),
            first_key,
            last_key,
            key_step,
        }
    })
}

impl Spec {
    /// `(first, last, step)` of the key arguments, as Redis 7.0's COMMAND
    /// INFO gives them. Exhaustive, so a new command must say where its keys are.
    fn key_positions(&self) -> KeyPositions {
        const NONE: KeyPositions = NO_KEYS;
        const ONE: KeyPositions = ONE_KEY;
        const ALL: KeyPositions = ALL_KEYS;
        match self.kind {
            Kind::Read(ReadCommand::Lists(command)) => super::list::read_keys(command),
            Kind::Read(ReadCommand::Sets(command)) => super::set::read_keys(command),
            Kind::Read(ReadCommand::SortedSets(command)) => super::zset::read_keys(command),
            Kind::Read(ReadCommand::Bitmaps(command)) => super::bits::read_keys(command),
            Kind::Write(WriteCommand::Lists(command)) => super::list::write_keys(command),
            Kind::Write(WriteCommand::Sets(command)) => super::set::write_keys(command),
            Kind::Write(WriteCommand::SortedSets(command)) => super::zset::write_keys(command),
            Kind::Write(WriteCommand::Bitmaps(command)) => super::bits::write_keys(command),
            Kind::Read(command) => match command {
                ReadCommand::Get
                | ReadCommand::StrLen
                | ReadCommand::GetRange
                | ReadCommand::Has
                | ReadCommand::Type
                | ReadCommand::Ttl
                | ReadCommand::PTtl
                | ReadCommand::ExpireTime
                | ReadCommand::PExpireTime
                | ReadCommand::HGet
                | ReadCommand::HMGet
                | ReadCommand::HExists
                | ReadCommand::HLen
                | ReadCommand::HStrLen
                | ReadCommand::HKeys
                | ReadCommand::HVals
                | ReadCommand::HGetAll
                | ReadCommand::HScan
                | ReadCommand::HRandField => ONE,
                ReadCommand::MGet | ReadCommand::Exists => ALL,
                ReadCommand::Scan
                | ReadCommand::Keys
                | ReadCommand::RandomKey
                | ReadCommand::DbSize
                | ReadCommand::Backup
                | ReadCommand::Digest
                | ReadCommand::Object => NONE,
                ReadCommand::Lists(_)
                | ReadCommand::Sets(_)
                | ReadCommand::SortedSets(_)
                | ReadCommand::Bitmaps(_) => {
                    unreachable!("matched above")
                }
            },
            Kind::Write(command) => match command {
                WriteCommand::Set
                | WriteCommand::SetNx
                | WriteCommand::SetEx
                | WriteCommand::PSetEx
                | WriteCommand::GetSet
                | WriteCommand::GetEx
                | WriteCommand::GetDel
                | WriteCommand::Incr
                | WriteCommand::IncrBy
                | WriteCommand::IncrByFloat
                | WriteCommand::Decr
                | WriteCommand::DecrBy
                | WriteCommand::Append
                | WriteCommand::SetRange
                | WriteCommand::Cas
                | WriteCommand::Expire
                | WriteCommand::PExpire
                | WriteCommand::ExpireAt
                | WriteCommand::PExpireAt
                | WriteCommand::Persist
                | WriteCommand::HSet
                | WriteCommand::HSetNx
                | WriteCommand::HDel
                | WriteCommand::HIncrBy
                | WriteCommand::HIncrByFloat => ONE,
                WriteCommand::MSet | WriteCommand::MSetNx => (1, -1, 2),
                WriteCommand::Rename | WriteCommand::RenameNx | WriteCommand::Copy => (1, 2, 1),
                WriteCommand::Del | WriteCommand::CasheExpire => ALL,
                WriteCommand::Flush => NONE,
                WriteCommand::Lists(_)
                | WriteCommand::Sets(_)
                | WriteCommand::SortedSets(_)
                | WriteCommand::Bitmaps(_) => {
                    unreachable!("matched above")
                }
            },
        }
    }
}

/// The key arguments of a command (its name first), as Redis's key specs
/// find them: the kv table's `(first, last, step)`, and the keys after a
/// count (`numkeys`) that the legacy triple cannot describe. Used by the
/// ACL's key checks, `COMMAND GETKEYS` and slot routing.
pub fn command_keys(args: &[Vec<u8>]) -> Vec<&[u8]> {
    let Some(name) = args.first() else { return Vec::new() };
    let name = String::from_utf8_lossy(name).to_ascii_lowercase();
    let counted = |count_at: usize| -> Vec<&[u8]> {
        let count = args.get(count_at).and_then(|c| super::parse_integer(c)).unwrap_or(0);
        let count = usize::try_from(count).unwrap_or(0);
        let start = count_at + 1;
        let end = start.saturating_add(count).min(args.len());
        args.get(start..end).unwrap_or_default().iter().map(Vec::as_slice).collect()
    };
    match name.as_str() {
        "watch" => return args[1..].iter().map(Vec::as_slice).collect(),
        "object" if args.len() >= 3 => return vec![&args[2]],
        "zunion" | "zinter" | "zdiff" | "zintercard" | "sintercard" | "lmpop" | "zmpop" => return counted(1),
        "blmpop" | "bzmpop" => return counted(2),
        "zunionstore" | "zinterstore" | "zdiffstore" => {
            let mut keys = vec![args[1].as_slice()];
            keys.extend(counted(2));
            return keys;
        }
        _ => {}
    }
    let Some(info) = commands().find(|info| info.name == name) else { return Vec::new() };
    if info.first_key <= 0 || info.key_step <= 0 {
        return Vec::new();
    }
    let count = args.len() as i64;
    let last = if info.last_key < 0 { count + i64::from(info.last_key) } else { i64::from(info.last_key) };
    let last = last.min(count - 1);
    (i64::from(info.first_key)..=last)
        .step_by(info.key_step as usize)
        .filter_map(|k| args.get(usize::try_from(k).ok()?).map(Vec::as_slice))
        .collect()
}

/// Finds the command named by `args[0]` and checks its arity, as Redis's
/// `processCommand` does before running anything.
pub(super) fn lookup(args: &[Vec<u8>]) -> Result<&'static Spec, Reply> {
    let Some(name) = args.first() else {
        return Err(unknown_command(&[Vec::new()]));
    };
    let found = tables().into_iter().flatten().find(|spec| name.eq_ignore_ascii_case(spec.name.as_bytes()));
    let Some(spec) = found else {
        return Err(unknown_command(args));
    };
    let count = args.len() as i64;
    let arity = i64::from(spec.arity);
    if (arity > 0 && arity != count) || count < -arity {
        return Err(wrong_arity(spec.name));
    }
    Ok(spec)
}

pub(super) fn wrong_arity(name: &str) -> Reply {
    Reply::Error(format!("ERR wrong number of arguments for '{name}' command"))
}

/// `unknown command '%.128s', with args beginning with: ` followed by
/// `'%.*s' ` per argument while fewer than 128 bytes have been listed (C
/// strings: each stops at a NUL byte).
fn unknown_command(args: &[Vec<u8>]) -> Reply {
    const SHOWN_BYTES_MAX: usize = 128;
    let name = c_string(&args[0]);
    let name = &name[..name.len().min(SHOWN_BYTES_MAX)];
    let mut listed = Vec::new();
    for arg in &args[1..] {
        if listed.len() >= SHOWN_BYTES_MAX {
            break;
        }
        let room = SHOWN_BYTES_MAX - listed.len();
        let arg = c_string(arg);
        listed.push(b'\'');
        listed.extend_from_slice(&arg[..arg.len().min(room)]);
        listed.extend_from_slice(b"' ");
    }
    Reply::Error(format!(
        "ERR unknown command '{}', with args beginning with: {}",
        lossy(name),
        lossy(&listed)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(words: &[&str]) -> Vec<Vec<u8>> {
        words.iter().map(|w| w.as_bytes().to_vec()).collect()
    }

    #[test]
    fn unknown_command_lists_its_first_arguments_like_redis() {
        let reply = lookup(&args(&["foo", "a", "b"])).unwrap_err();
        assert_eq!(reply, Reply::error("ERR unknown command 'foo', with args beginning with: 'a' 'b' "));
        let reply = lookup(&args(&["Foo"])).unwrap_err();
        assert_eq!(reply, Reply::error("ERR unknown command 'Foo', with args beginning with: "));
    }

    #[test]
    fn wrong_arity_names_the_command_in_lower_case() {
        assert_eq!(lookup(&args(&["GET"])).unwrap_err(), wrong_arity("get"));
        assert_eq!(lookup(&args(&["set", "k"])).unwrap_err(), wrong_arity("set"));
        assert!(lookup(&args(&["SeT", "k", "v", "EX", "1"])).is_ok());
    }

    #[test]
    fn every_name_is_lower_case_and_unique() {
        let all: Vec<&Spec> = tables().into_iter().flatten().collect();
        for (i, spec) in all.iter().enumerate() {
            assert_eq!(spec.name, spec.name.to_ascii_lowercase());
            assert!(all[i + 1..].iter().all(|other| other.name != spec.name), "{}", spec.name);
        }
    }

    #[test]
    fn keys_are_found_after_counts_and_at_legacy_positions() {
        let keys = |words: &[&str]| -> Vec<String> {
            command_keys(&args(words)).into_iter().map(|k| String::from_utf8_lossy(k).into_owned()).collect()
        };
        assert_eq!(keys(&["MSET", "a", "1", "b", "2"]), ["a", "b"]);
        assert_eq!(keys(&["BLPOP", "a", "b", "0"]), ["a", "b"]);
        assert_eq!(keys(&["ZUNIONSTORE", "d", "2", "a", "b", "WEIGHTS", "1", "2"]), ["d", "a", "b"]);
        assert_eq!(keys(&["BLMPOP", "0", "2", "a", "b", "LEFT"]), ["a", "b"]);
        assert_eq!(keys(&["SINTERCARD", "99", "a"]), ["a"]);
        assert_eq!(keys(&["OBJECT", "ENCODING", "k"]), ["k"]);
        assert_eq!(keys(&["BITOP", "AND", "d", "a"]), ["d", "a"]);
        assert!(keys(&["KEYS", "*"]).is_empty());
    }
}
