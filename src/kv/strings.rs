//! The string commands, following Redis 7.0's `t_string.c` step by step
//! (the order of checks decides which error a bad command gets).

use super::args::{option_is, parse_i64};
use super::long_double::LongDouble;
use super::{bulk_or_nil, command, Entry, Store, Value, VALUE_BYTES_MAX, WRONG_TYPE};
use crate::protocol::Reply;

pub(super) const SYNTAX_ERROR: &str = "ERR syntax error";
pub(super) const NOT_AN_INTEGER: &str = "ERR value is not an integer or out of range";
pub(super) const NOT_A_FLOAT: &str = "ERR value is not a valid float";
const TOO_LARGE: &str = "ERR string exceeds maximum allowed size (proto-max-bulk-len)";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Unit {
    Seconds,
    Milliseconds,
}

/// The `EX|PX|EXAT|PXAT <n>` of SET, SETEX, PSETEX and GETEX.
#[derive(Clone, Copy, Debug)]
struct ExpireArg<'a> {
    text: &'a [u8],
    unit: Unit,
    /// EX and PX count from now; EXAT and PXAT are Unix times.
    relative: bool,
}

/// The flags of `parseExtendedStringArgumentsOrReply`.
#[derive(Clone, Copy, Debug, Default)]
struct StringOptions<'a> {
    nx: bool,
    xx: bool,
    get: bool,
    keep_ttl: bool,
    persist: bool,
    ex: bool,
    px: bool,
    exat: bool,
    pxat: bool,
    expire: Option<ExpireArg<'a>>,
}

pub(super) fn invalid_expire(name: &str) -> Reply {
    Reply::Error(format!("ERR invalid expire time in '{name}' command"))
}

/// Parses SET's options (`for_set`) or GETEX's, with Redis's exact
/// compatibility conditions: e.g. `EX 1 EX 2` is accepted (the last wins)
/// but `EX 1 PX 2` is a syntax error.
fn parse_options(args: &[Vec<u8>], for_set: bool) -> Result<StringOptions<'_>, Reply> {
    let mut options = StringOptions::default();
    let mut j = if for_set { 3 } else { 2 };
    while j < args.len() {
        let option = args[j].as_slice();
        let next = args.get(j + 1).map(Vec::as_slice);
        let o = options;
        // No KEEPTTL or PERSIST yet: an expiry option may follow.
        let ttl_free = !o.keep_ttl && !o.persist;
        if option_is(option, "nx") && !o.xx && for_set {
            options.nx = true;
        } else if option_is(option, "xx") && !o.nx && for_set {
            options.xx = true;
        } else if option_is(option, "get") && for_set {
            options.get = true;
        } else if option_is(option, "keepttl")
            && !o.persist
            && !o.ex
            && !o.exat
            && !o.px
            && !o.pxat
            && for_set
        {
            options.keep_ttl = true;
        } else if option_is(option, "persist")
            && !for_set
            && !o.ex
            && !o.exat
            && !o.px
            && !o.pxat
            && !o.keep_ttl
        {
            options.persist = true;
        } else if let Some(text) =
            next.filter(|_| option_is(option, "ex") && ttl_free && !o.exat && !o.px && !o.pxat)
        {
            options.ex = true;
            options.expire = Some(ExpireArg { text, unit: Unit::Seconds, relative: true });
            j += 1;
        } else if let Some(text) =
            next.filter(|_| option_is(option, "px") && ttl_free && !o.ex && !o.exat && !o.pxat)
        {
            options.px = true;
            options.expire = Some(ExpireArg { text, unit: Unit::Milliseconds, relative: true });
            j += 1;
        } else if let Some(text) =
            next.filter(|_| option_is(option, "exat") && ttl_free && !o.ex && !o.px && !o.pxat)
        {
            options.exat = true;
            options.expire = Some(ExpireArg { text, unit: Unit::Seconds, relative: false });
            j += 1;
        } else if let Some(text) =
            next.filter(|_| option_is(option, "pxat") && ttl_free && !o.ex && !o.exat && !o.px)
        {
            options.pxat = true;
            options.expire = Some(ExpireArg { text, unit: Unit::Milliseconds, relative: false });
            j += 1;
        } else {
            return Err(Reply::error(SYNTAX_ERROR));
        }
        j += 1;
    }
    Ok(options)
}

/// `getExpireMillisecondsOrReply`: the absolute expiry in ms, or the error.
fn expire_at_ms(arg: ExpireArg<'_>, now: u64, name: &str) -> Result<i64, Reply> {
    let mut ms = parse_i64(arg.text).ok_or_else(|| Reply::error(NOT_AN_INTEGER))?;
    if ms <= 0 || (arg.unit == Unit::Seconds && ms > i64::MAX / 1000) {
        return Err(invalid_expire(name));
    }
    if arg.unit == Unit::Seconds {
        ms *= 1000;
    }
    if arg.relative {
        // C's signed overflow wraps on the hardware Redis runs on; a wrapped
        // sum is negative and rejected just below, as in Redis.
        ms = ms.wrapping_add(now_i64(now));
    }
    if ms <= 0 {
        return Err(invalid_expire(name));
    }
    Ok(ms)
}

pub(super) fn now_i64(now: u64) -> i64 {
    i64::try_from(now).unwrap_or(i64::MAX)
}

/// `checkStringLength`: may a string of `size + append` bytes exist?
fn check_length(size: u64, append: u64) -> Result<(), Reply> {
    match size.checked_add(append) {
        Some(total) if total <= VALUE_BYTES_MAX => Ok(()),
        _ => Err(Reply::error(TOO_LARGE)),
    }
}

impl Store {
    /// The live string at `key`: `Ok(None)` if absent, WRONGTYPE if the
    /// key holds another type (Redis's `checkType`).
    pub(super) fn live_string(&self, key: &[u8], now: u64) -> Result<Option<&Vec<u8>>, Reply> {
        match self.live(key, now).map(|entry| &entry.value) {
            None => Ok(None),
            Some(Value::String(bytes)) => Ok(Some(bytes)),
            Some(_) => Err(Reply::error(WRONG_TYPE)),
        }
    }

    /// Redis's `lookupKeyWrite` and `checkType` for a string in one
    /// search of the key space: drops the key if it has expired, then the
    /// length of its string if it exists, or WRONGTYPE.
    fn string_length_for_write(&mut self, key: &[u8], now: u64) -> Result<Option<usize>, Reply> {
        match self.entries.get(key) {
            None => Ok(None),
            Some(entry) if entry.is_expired(now) => {
                self.reclaim(key);
                Ok(None)
            }
            Some(Entry { value: Value::String(bytes), .. }) => Ok(Some(bytes.len())),
            Some(_) => Err(Reply::error(WRONG_TYPE)),
        }
    }

    /// A copy of the live string at `key`, or WRONGTYPE.
    fn live_value(&self, key: &[u8], now: u64) -> Result<Option<Vec<u8>>, Reply> {
        self.live_string(key, now).map(|value| value.cloned())
    }

    pub(super) fn on_get(&self, args: &[Vec<u8>], now: u64) -> Reply {
        self.live_value(&args[1], now).map_or_else(|wrong_type| wrong_type, bulk_or_nil)
    }

    /// A key of another type reads as nil, as in Redis.
    pub(super) fn on_mget(&self, args: &[Vec<u8>], now: u64) -> Reply {
        let value = |key: &Vec<u8>| bulk_or_nil(self.live_value(key, now).ok().flatten());
        Reply::Array(Some(args[1..].iter().map(value).collect()))
    }

    pub(super) fn on_strlen(&self, args: &[Vec<u8>], now: u64) -> Reply {
        match self.live_string(&args[1], now) {
            Ok(value) => Reply::Integer(value.map_or(0, |value| value.len() as i64)),
            Err(wrong_type) => wrong_type,
        }
    }

    /// GETRANGE and SUBSTR; index arithmetic wraps like Redis's mixed
    /// `size_t`/`long long` C.
    pub(super) fn on_getrange(&self, args: &[Vec<u8>], now: u64) -> Reply {
        let Some(mut start) = parse_i64(&args[2]) else {
            return Reply::error(NOT_AN_INTEGER);
        };
        let Some(mut end) = parse_i64(&args[3]) else {
            return Reply::error(NOT_AN_INTEGER);
        };
        let value = match self.live_string(&args[1], now) {
            Ok(Some(value)) => value,
            Ok(None) => return Reply::bulk(Vec::new()),
            Err(wrong_type) => return wrong_type,
        };
        if start < 0 && end < 0 && start > end {
            return Reply::bulk(Vec::new());
        }
        let length = value.len() as i64;
        if start < 0 {
            start = length.wrapping_add(start);
        }
        if end < 0 {
            end = length.wrapping_add(end);
        }
        start = start.max(0);
        end = end.max(0);
        if end >= length {
            end = length - 1;
        }
        if start > end || length == 0 {
            return Reply::bulk(Vec::new());
        }
        Reply::bulk(value[start as usize..=end as usize].to_vec())
    }

    /// SET key value [NX|XX] [GET] [EX|PX|EXAT|PXAT n|KEEPTTL]
    pub(super) fn on_set(&mut self, args: &[Vec<u8>], now: u64) -> Reply {
        let options = match parse_options(args, true) {
            Ok(options) => options,
            Err(reply) => return reply,
        };
        self.set_generic(&options, &args[1], &args[2], now, "set", Reply::ok(), Reply::nil())
    }

    pub(super) fn on_setnx(&mut self, args: &[Vec<u8>], now: u64) -> Reply {
        let options = StringOptions { nx: true, ..StringOptions::default() };
        self.set_generic(&options, &args[1], &args[2], now, "setnx", Reply::Integer(1), Reply::Integer(0))
    }

    /// SETEX and PSETEX.
    pub(super) fn on_setex(&mut self, args: &[Vec<u8>], now: u64, unit: Unit, name: &str) -> Reply {
        let expire = ExpireArg { text: &args[2], unit, relative: true };
        let options = StringOptions { expire: Some(expire), ..StringOptions::default() };
        self.set_generic(&options, &args[1], &args[3], now, name, Reply::ok(), Reply::nil())
    }

    /// `setGenericCommand`.
    #[allow(clippy::too_many_arguments)]
    fn set_generic(
        &mut self,
        options: &StringOptions<'_>,
        key: &[u8],
        value: &[u8],
        now: u64,
        name: &str,
        ok_reply: Reply,
        abort_reply: Reply,
    ) -> Reply {
        let expire_at = match options.expire.map(|arg| expire_at_ms(arg, now, name)).transpose() {
            Ok(at) => at,
            Err(reply) => return reply,
        };
        let old = match options.get.then(|| self.live_value(key, now)).transpose() {
            Ok(old) => old,
            Err(wrong_type) => return wrong_type,
        };
        let found = self.expire_if_needed(key, now);
        if (options.nx && found) || (options.xx && !found) {
            return match old {
                Some(old) => bulk_or_nil(old),
                None => abort_reply,
            };
        }
        self.put(key, Value::String(value.to_vec()), options.keep_ttl);
        if let Some(at) = expire_at {
            self.set_expiry(key, Some(at as u64));
        }
        match old {
            Some(old) => bulk_or_nil(old),
            None => ok_reply,
        }
    }

    pub(super) fn on_getset(&mut self, args: &[Vec<u8>], now: u64) -> Reply {
        let old = match self.live_value(&args[1], now) {
            Ok(old) => old,
            Err(wrong_type) => return wrong_type,
        };
        self.expire_if_needed(&args[1], now);
        self.put(&args[1], Value::String(args[2].clone()), false);
        bulk_or_nil(old)
    }

    /// GETEX key [EX|PX|EXAT|PXAT n|PERSIST]
    pub(super) fn on_getex(&mut self, args: &[Vec<u8>], now: u64) -> Reply {
        let options = match parse_options(args, false) {
            Ok(options) => options,
            Err(reply) => return reply,
        };
        let key = args[1].as_slice();
        if !self.expire_if_needed(key, now) {
            return Reply::nil();
        }
        let value = match self.live_value(key, now) {
            Ok(value) => value,
            Err(wrong_type) => return wrong_type,
        };
        // Validated only once the key is known to exist, as in Redis.
        let expire_at = match options.expire.map(|arg| expire_at_ms(arg, now, "getex")).transpose() {
            Ok(at) => at,
            Err(reply) => return reply,
        };
        match expire_at {
            Some(at) if (options.exat || options.pxat) && at <= now_i64(now) => {
                self.remove(key);
            }
            Some(at) => {
                self.set_expiry(key, Some(at as u64));
            }
            None if options.persist => {
                self.set_expiry(key, None);
            }
            None => {}
        }
        bulk_or_nil(value)
    }

    pub(super) fn on_getdel(&mut self, args: &[Vec<u8>], now: u64) -> Reply {
        match self.string_length_for_write(&args[1], now) {
            Ok(Some(_)) => {}
            Ok(None) => return Reply::nil(),
            Err(wrong_type) => return wrong_type,
        }
        match self.remove(&args[1]).map(|entry| entry.value) {
            Some(Value::String(value)) => Reply::bulk(value),
            _ => Reply::nil(),
        }
    }

    pub(super) fn on_mset(&mut self, args: &[Vec<u8>], now: u64, name: &str) -> Reply {
        if args.len().is_multiple_of(2) {
            return command::wrong_arity(name);
        }
        for pair in args[1..].chunks(2) {
            self.expire_if_needed(&pair[0], now);
            self.put(&pair[0], Value::String(pair[1].clone()), false);
        }
        Reply::ok()
    }

    pub(super) fn on_msetnx(&mut self, args: &[Vec<u8>], now: u64, name: &str) -> Reply {
        if args.len().is_multiple_of(2) {
            return command::wrong_arity(name);
        }
        for pair in args[1..].chunks(2) {
            if self.expire_if_needed(&pair[0], now) {
                return Reply::Integer(0);
            }
        }
        for pair in args[1..].chunks(2) {
            self.put(&pair[0], Value::String(pair[1].clone()), false);
        }
        Reply::Integer(1)
    }

    pub(super) fn on_incrby(&mut self, args: &[Vec<u8>], now: u64) -> Reply {
        match parse_i64(&args[2]) {
            Some(increment) => self.on_incr_by(args, now, increment),
            None => Reply::error(NOT_AN_INTEGER),
        }
    }

    pub(super) fn on_decrby(&mut self, args: &[Vec<u8>], now: u64) -> Reply {
        match parse_i64(&args[2]) {
            Some(i64::MIN) => Reply::error("ERR decrement would overflow"),
            Some(decrement) => self.on_incr_by(args, now, -decrement),
            None => Reply::error(NOT_AN_INTEGER),
        }
    }

    /// `incrDecrCommand`: INCR, DECR, INCRBY, DECRBY. Keeps the TTL.
    pub(super) fn on_incr_by(&mut self, args: &[Vec<u8>], now: u64, increment: i64) -> Reply {
        let key = args[1].as_slice();
        let current = if self.expire_if_needed(key, now) {
            match self.live_string(key, now) {
                Ok(value) => match value.and_then(|value| parse_i64(value)) {
                    Some(value) => value,
                    None => return Reply::error(NOT_AN_INTEGER),
                },
                Err(wrong_type) => return wrong_type,
            }
        } else {
            0
        };
        let Some(value) = current.checked_add(increment) else {
            return Reply::error("ERR increment or decrement would overflow");
        };
        self.put(key, Value::String(value.to_string().into_bytes()), true);
        Reply::Integer(value)
    }

    /// INCRBYFLOAT with x87 `long double` arithmetic (see `long_double`).
    /// Keeps the TTL.
    pub(super) fn on_incrbyfloat(&mut self, args: &[Vec<u8>], now: u64) -> Reply {
        let key = args[1].as_slice();
        let current = if self.expire_if_needed(key, now) {
            match self.live_string(key, now) {
                Ok(value) => value.and_then(|value| LongDouble::parse(value)),
                Err(wrong_type) => return wrong_type,
            }
        } else {
            Some(LongDouble::from_i64(0))
        };
        let (Some(current), Some(increment)) = (current, LongDouble::parse(&args[2])) else {
            return Reply::error(NOT_A_FLOAT);
        };
        let sum = current.add(increment);
        if !sum.is_finite() {
            return Reply::error("ERR increment would produce NaN or Infinity");
        }
        let text = sum.format_human();
        self.put(key, Value::String(text.clone()), true);
        Reply::bulk(text)
    }

    /// Keeps the TTL; refuses to grow a string past `VALUE_BYTES_MAX`
    /// before allocating anything.
    pub(super) fn on_append(&mut self, args: &[Vec<u8>], now: u64) -> Reply {
        let key = args[1].as_slice();
        let suffix = &args[2];
        let length = match self.string_length_for_write(key, now) {
            Ok(Some(length)) => length as u64,
            Ok(None) => {
                self.put(key, Value::String(suffix.clone()), false);
                return Reply::Integer(suffix.len() as i64);
            }
            Err(wrong_type) => return wrong_type,
        };
        if let Err(reply) = check_length(length, suffix.len() as u64) {
            return reply;
        }
        let Some(value) = self.string_mut(key) else {
            return Reply::Integer(0);
        };
        value.extend_from_slice(suffix);
        Reply::Integer(value.len() as i64)
    }

    /// SETRANGE key offset value; pads with zero bytes. Keeps the TTL.
    pub(super) fn on_setrange(&mut self, args: &[Vec<u8>], now: u64) -> Reply {
        let key = args[1].as_slice();
        let patch = &args[3];
        let offset = match parse_i64(&args[2]) {
            Some(offset) if offset < 0 => return Reply::error("ERR offset is out of range"),
            Some(offset) => offset as u64,
            None => return Reply::error(NOT_AN_INTEGER),
        };
        let length = match self.string_length_for_write(key, now) {
            Ok(length) => length,
            Err(wrong_type) => return wrong_type,
        };
        let exists = length.is_some();
        if patch.is_empty() {
            return Reply::Integer(length.unwrap_or(0) as i64);
        }
        if let Err(reply) = check_length(offset, patch.len() as u64) {
            return reply;
        }
        if !exists {
            self.put(key, Value::String(Vec::new()), false);
        }
        let Some(value) = self.string_mut(key) else {
            return Reply::Integer(0);
        };
        let offset = offset as usize;
        let end = offset + patch.len();
        if value.len() < end {
            value.resize(end, 0);
        }
        value[offset..end].copy_from_slice(patch);
        Reply::Integer(value.len() as i64)
    }

    /// CAS key expected new: replaces the value (keeping the TTL) only if
    /// the key exists and holds exactly `expected`; WRONGTYPE on another type.
    pub(super) fn on_cas(&mut self, args: &[Vec<u8>], now: u64) -> Reply {
        let key = args[1].as_slice();
        if !self.expire_if_needed(key, now) {
            return Reply::Integer(0);
        }
        match self.live_string(key, now) {
            Ok(Some(value)) if *value == args[2] => {}
            Ok(_) => return Reply::Integer(0),
            Err(wrong_type) => return wrong_type,
        }
        if let Some(value) = self.string_mut(key) {
            *value = args[3].clone();
        }
        Reply::Integer(1)
    }
}
