//! Bitmaps and the rest of the string family: SETBIT, GETBIT, BITCOUNT,
//! BITPOS, BITOP, BITFIELD, BITFIELD_RO and LCS, following Redis 7.0's
//! `bitops.c` and `t_string.c` (the order of checks decides which error a
//! bad command gets). They work on string values; bit 0 is the most
//! significant bit of the first byte.
//!
//! Bit offsets are bounded as Redis bounds them: a bit whose byte would lie
//! at or past `VALUE_BYTES_MAX` (512 MiB, Redis's `proto-max-bulk-len`) is
//! "ERR bit offset is not an integer or out of range".
//!
//! Intentional differences from redis-server 7.0:
//! - A BITFIELD SET or INCRBY reaching past the 512 MiB string limit (an
//!   offset within it, but a field of up to 64 bits running over its end)
//!   is refused with the bit offset error; Redis grows the string up to 8
//!   bytes beyond `proto-max-bulk-len`. No string outgrows
//!   `VALUE_BYTES_MAX` here.
//!
//! Otherwise the replies and error texts are Redis's byte for byte
//! (`tests/redis_diff/bits.rs` compares them), including 7.0's order of
//! checks: BITCOUNT looks its key up before parsing the range (a missing
//! key counts 0 whatever follows), BITPOS parses the bit first.
//! BITFIELD is a write even with GETs only (as in Redis); the GETs alone
//! change nothing and create no key. LCS builds Redis's whole table of
//! `(len1 + 1) * (len2 + 1)` 32-bit cells, refused past 512 MiB as Redis
//! refuses it.

use super::args::{option_is, parse_i64};
use super::command::{KeyPositions, ReadCommand, Spec, WriteCommand, ONE_KEY};
use super::strings::{NOT_AN_INTEGER, SYNTAX_ERROR};
use super::{command, Store, Value, VALUE_BYTES_MAX};
use crate::protocol::Reply;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Read {
    GetBit,
    BitCount,
    BitPos,
    BitFieldRo,
    Lcs,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Write {
    SetBit,
    BitOp,
    BitField,
}

const fn read(name: &'static str, arity: i32, command: Read) -> Spec {
    command::read(name, arity, ReadCommand::Bitmaps(command))
}

const fn write(name: &'static str, arity: i32, command: Write) -> Spec {
    command::write(name, arity, WriteCommand::Bitmaps(command))
}

/// The bitmap and LCS commands, arities as `COMMAND INFO` reports them on Redis 7.0.
pub(super) const TABLE: &[Spec] = &[
    write("setbit", 4, Write::SetBit),
    read("getbit", 3, Read::GetBit),
    read("bitcount", -2, Read::BitCount),
    read("bitpos", -3, Read::BitPos),
    write("bitop", -4, Write::BitOp),
    write("bitfield", -2, Write::BitField),
    read("bitfield_ro", -2, Read::BitFieldRo),
    read("lcs", -3, Read::Lcs),
];

/// `(first, last, step)` of the key arguments, as Redis 7.0's COMMAND INFO gives them.
pub(super) fn read_keys(command: Read) -> KeyPositions {
    match command {
        Read::Lcs => (1, 2, 1),
        Read::GetBit | Read::BitCount | Read::BitPos | Read::BitFieldRo => ONE_KEY,
    }
}

pub(super) fn write_keys(command: Write) -> KeyPositions {
    match command {
        Write::BitOp => (2, -1, 1),
        Write::SetBit | Write::BitField => ONE_KEY,
    }
}

const BIT_OFFSET_ERROR: &str = "ERR bit offset is not an integer or out of range";
const BIT_VALUE_ERROR: &str = "ERR bit is not an integer or out of range";
const BITFIELD_TYPE_ERROR: &str =
    "ERR Invalid bitfield type. Use something like i16 u8. Note that u64 is not supported but i64 is.";

/// `getBitOffsetFromArgument`: a bit offset whose byte lies below
/// `VALUE_BYTES_MAX`. With `field_bits` (BITFIELD), `#n` means `n * bits`
/// (multiplied as C does: wrapping, and a wrapped product is negative or
/// in range like any other).
fn parse_bit_offset(arg: &[u8], field_bits: Option<u32>) -> Result<u64, Reply> {
    let hashed = field_bits.filter(|_| arg.first() == Some(&b'#'));
    let text = if hashed.is_some() { &arg[1..] } else { arg };
    let mut offset = parse_i64(text).ok_or_else(|| Reply::error(BIT_OFFSET_ERROR))?;
    if let Some(bits) = hashed {
        offset = offset.wrapping_mul(i64::from(bits));
    }
    if offset < 0 || (offset as u64 >> 3) >= VALUE_BYTES_MAX {
        return Err(Reply::error(BIT_OFFSET_ERROR));
    }
    Ok(offset as u64)
}

/// The bit at `offset` (0 past the end).
fn bit_at(bytes: &[u8], offset: u64) -> u8 {
    let byte = (offset >> 3) as usize;
    bytes.get(byte).map_or(0, |value| (value >> (7 - (offset & 7))) & 1)
}

fn set_bit(bytes: &mut [u8], offset: u64, on: bool) {
    let byte = (offset >> 3) as usize;
    let mask = 1u8 << (7 - (offset & 7));
    if on {
        bytes[byte] |= mask;
    } else {
        bytes[byte] &= !mask;
    }
}

/// Set bits among bits `first..=last` (both within `bytes`).
fn count_bits(bytes: &[u8], first: u64, last: u64) -> u64 {
    let (first_byte, last_byte) = ((first >> 3) as usize, (last >> 3) as usize);
    let whole: u64 = bytes[first_byte..=last_byte].iter().map(|b| u64::from(b.count_ones())).sum();
    // The bits of the edge bytes outside the range.
    let before = bytes[first_byte] & !(0xffu8 >> (first & 7));
    let after = bytes[last_byte] & (0x7fu8 >> (last & 7));
    whole - u64::from(before.count_ones()) - u64::from(after.count_ones())
}

/// The first bit equal to `bit` among bits `first..=last` (within `bytes`).
fn find_bit(bytes: &[u8], first: u64, last: u64, bit: u8) -> Option<u64> {
    let skip = if bit == 1 { 0x00 } else { 0xff };
    let mut offset = first;
    while offset <= last {
        if offset & 7 == 0 && offset + 7 <= last && bytes[(offset >> 3) as usize] == skip {
            offset += 8;
            continue;
        }
        if bit_at(bytes, offset) == bit {
            return Some(offset);
        }
        offset += 1;
    }
    None
}

/// BITCOUNT's and BITPOS's `start end [BYTE|BIT]` as bit offsets `first..=last`
/// within a string of `length` bytes, or `None` for an empty range. Redis
/// clamps negative indexes to the start and ends past the string to its end.
fn bit_range(length: u64, start: i64, end: i64, in_bits: bool) -> Option<(u64, u64)> {
    let total = if in_bits { length * 8 } else { length } as i64;
    let from_end = |index: i64| if index < 0 { (total + index).max(0) } else { index };
    let (start, end) = (from_end(start), from_end(end).min(total - 1));
    if start > end {
        return None;
    }
    let (start, end) = (start as u64, end as u64);
    Some(if in_bits { (start, end) } else { (start * 8, end * 8 + 7) })
}

/// BITCOUNT's and BITPOS's BYTE|BIT argument.
fn parse_unit(arg: &[u8]) -> Result<bool, Reply> {
    if option_is(arg, "bit") {
        Ok(true)
    } else if option_is(arg, "byte") {
        Ok(false)
    } else {
        Err(Reply::error(SYNTAX_ERROR))
    }
}

fn parse_integer(arg: &[u8]) -> Result<i64, Reply> {
    parse_i64(arg).ok_or_else(|| Reply::error(NOT_AN_INTEGER))
}

/// A BITOP operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BitOp {
    And,
    Or,
    Xor,
    Not,
}

/// What BITFIELD does when a value does not fit its field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Overflow {
    Wrap,
    Saturate,
    Fail,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FieldOp {
    Get,
    Set,
    IncrBy,
}

/// One BITFIELD subcommand, parsed.
#[derive(Clone, Copy, Debug)]
struct Field {
    op: FieldOp,
    signed: bool,
    bits: u32,
    offset: u64,
    value: i64,
    overflow: Overflow,
}

/// `getBitfieldTypeFromArgument`: `i1`..`i64` or `u1`..`u63` (the digits
/// read as a C string).
fn parse_field_type(arg: &[u8]) -> Result<(bool, u32), Reply> {
    let error = || Reply::error(BITFIELD_TYPE_ERROR);
    let signed = match arg.first() {
        Some(b'i') => true,
        Some(b'u') => false,
        _ => return Err(error()),
    };
    let bits = parse_i64(super::args::c_string(&arg[1..])).ok_or_else(error)?;
    if bits < 1 || (signed && bits > 64) || (!signed && bits > 63) {
        return Err(error());
    }
    Ok((signed, bits as u32))
}

/// Parses BITFIELD's subcommands (`bitfieldGeneric`'s loop).
fn parse_fields(args: &[Vec<u8>]) -> Result<Vec<Field>, Reply> {
    let mut fields = Vec::new();
    let mut overflow = Overflow::Wrap;
    let mut j = 2;
    while j < args.len() {
        let remaining = args.len() - j - 1;
        let name = args[j].as_slice();
        let op = if option_is(name, "get") && remaining >= 2 {
            FieldOp::Get
        } else if option_is(name, "set") && remaining >= 3 {
            FieldOp::Set
        } else if option_is(name, "incrby") && remaining >= 3 {
            FieldOp::IncrBy
        } else if option_is(name, "overflow") && remaining >= 1 {
            let kind = args[j + 1].as_slice();
            overflow = if option_is(kind, "wrap") {
                Overflow::Wrap
            } else if option_is(kind, "sat") {
                Overflow::Saturate
            } else if option_is(kind, "fail") {
                Overflow::Fail
            } else {
                return Err(Reply::error("ERR Invalid OVERFLOW type specified"));
            };
            j += 2;
            continue;
        } else {
            return Err(Reply::error(SYNTAX_ERROR));
        };
        let (signed, bits) = parse_field_type(&args[j + 1])?;
        let offset = parse_bit_offset(&args[j + 2], Some(bits))?;
        let value = if op == FieldOp::Get { 0 } else { parse_integer(&args[j + 3])? };
        fields.push(Field { op, signed, bits, offset, value, overflow });
        j += if op == FieldOp::Get { 3 } else { 4 };
    }
    Ok(fields)
}

/// The `bits`-bit unsigned field at bit `offset` (zeros past the end).
fn get_unsigned(bytes: &[u8], offset: u64, bits: u32) -> u64 {
    (0..u64::from(bits)).fold(0, |value, i| (value << 1) | u64::from(bit_at(bytes, offset + i)))
}

fn get_signed(bytes: &[u8], offset: u64, bits: u32) -> i64 {
    let value = get_unsigned(bytes, offset, bits);
    // Sign-extend from the field's top bit.
    let shift = 64 - bits;
    ((value << shift) as i64) >> shift
}

/// Writes the low `bits` bits of `value` at bit `offset` (within `bytes`).
fn set_field(bytes: &mut [u8], offset: u64, bits: u32, value: u64) {
    for i in 0..u64::from(bits) {
        let on = (value >> (u64::from(bits) - 1 - i)) & 1 == 1;
        set_bit(bytes, offset + i, on);
    }
}

/// `checkUnsignedBitfieldOverflow`: `None` if `value + increment` fits in
/// `bits` bits, else the value to store instead (wrapped or saturated;
/// unused for FAIL).
fn unsigned_overflow(value: u64, increment: i64, bits: u32, overflow: Overflow) -> Option<u64> {
    let max = (1u64 << bits) - 1;
    let max_increment = max.wrapping_sub(value) as i64;
    let min_increment = value.wrapping_neg() as i64;
    let wrapped = value.wrapping_add(increment as u64) & max;
    if value > max || (increment > 0 && increment > max_increment) {
        Some(if overflow == Overflow::Saturate { max } else { wrapped })
    } else if increment < 0 && increment < min_increment {
        Some(if overflow == Overflow::Saturate { 0 } else { wrapped })
    } else {
        None
    }
}

/// `checkSignedBitfieldOverflow`, likewise.
fn signed_overflow(value: i64, increment: i64, bits: u32, overflow: Overflow) -> Option<i64> {
    let max = if bits == 64 { i64::MAX } else { (1i64 << (bits - 1)) - 1 };
    let min = -max - 1;
    let max_increment = (max as u64).wrapping_sub(value as u64) as i64;
    let min_increment = min.wrapping_sub(value);
    let wrapped = || {
        let sum = (value as u64).wrapping_add(increment as u64);
        if bits == 64 {
            return sum as i64;
        }
        let shift = 64 - bits;
        ((sum << shift) as i64) >> shift
    };
    let above = value > max
        || (bits != 64 && increment > max_increment)
        || (value >= 0 && increment > 0 && increment > max_increment);
    let below = value < min
        || (bits != 64 && increment < min_increment)
        || (value < 0 && increment < 0 && increment < min_increment);
    if above {
        Some(if overflow == Overflow::Saturate { max } else { wrapped() })
    } else if below {
        Some(if overflow == Overflow::Saturate { min } else { wrapped() })
    } else {
        None
    }
}

/// Runs one SET or INCRBY on `bytes` (long enough); its reply.
fn write_field(bytes: &mut [u8], field: &Field) -> Reply {
    let Field { op, bits, offset, value, overflow, .. } = *field;
    if field.signed {
        let old = get_signed(bytes, offset, bits);
        let (checked, increment) = if op == FieldOp::IncrBy { (old, value) } else { (value, 0) };
        let limited = signed_overflow(checked, increment, bits, overflow);
        let new = limited.unwrap_or_else(|| checked.wrapping_add(increment));
        if limited.is_some() && overflow == Overflow::Fail {
            return Reply::nil();
        }
        set_field(bytes, offset, bits, new as u64);
        Reply::Integer(if op == FieldOp::IncrBy { new } else { old })
    } else {
        let old = get_unsigned(bytes, offset, bits);
        let (checked, increment) = if op == FieldOp::IncrBy { (old, value) } else { (value as u64, 0) };
        let limited = unsigned_overflow(checked, increment, bits, overflow);
        let new = limited.unwrap_or_else(|| checked.wrapping_add(increment as u64));
        if limited.is_some() && overflow == Overflow::Fail {
            return Reply::nil();
        }
        set_field(bytes, offset, bits, new);
        Reply::Integer(if op == FieldOp::IncrBy { new as i64 } else { old as i64 })
    }
}

fn read_field(bytes: &[u8], field: &Field) -> Reply {
    if field.signed {
        Reply::Integer(get_signed(bytes, field.offset, field.bits))
    } else {
        Reply::Integer(get_unsigned(bytes, field.offset, field.bits) as i64)
    }
}

/// The LCS table's size limit, Redis's `proto-max-bulk-len` in bytes of
/// `u32` cells.
const LCS_TABLE_BYTES_MAX: u64 = VALUE_BYTES_MAX;

/// LCS's options.
#[derive(Clone, Copy, Debug, Default)]
struct LcsOptions {
    length_only: bool,
    indexes: bool,
    with_match_length: bool,
    min_match_length: u64,
}

fn parse_lcs_options(args: &[Vec<u8>]) -> Result<LcsOptions, Reply> {
    let mut options = LcsOptions::default();
    let mut j = 3;
    while j < args.len() {
        let option = args[j].as_slice();
        if option_is(option, "idx") {
            options.indexes = true;
        } else if option_is(option, "len") {
            options.length_only = true;
        } else if option_is(option, "withmatchlen") {
            options.with_match_length = true;
        } else if option_is(option, "minmatchlen") && j + 1 < args.len() {
            options.min_match_length = parse_integer(&args[j + 1])?.max(0) as u64;
            j += 1;
        } else {
            return Err(Reply::error(SYNTAX_ERROR));
        }
        j += 1;
    }
    if options.indexes && options.length_only {
        return Err(Reply::error("ERR If you want both the length and indexes, please just use IDX."));
    }
    Ok(options)
}

/// LCS of `a` and `b` with Redis's dynamic programming table, walked back
/// from the end as `lcsCommand` does (the ranges come out last first).
fn lcs(a: &[u8], b: &[u8], options: LcsOptions) -> Reply {
    let (a_length, b_length) = (a.len(), b.len());
    let cells = (a_length as u64 + 1) * (b_length as u64 + 1);
    if cells * 4 > LCS_TABLE_BYTES_MAX {
        return Reply::error("ERR Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len");
    }
    let width = b_length + 1;
    let mut table = vec![0u32; cells as usize];
    for i in 1..=a_length {
        for j in 1..=b_length {
            table[i * width + j] = if a[i - 1] == b[j - 1] {
                table[(i - 1) * width + j - 1] + 1
            } else {
                table[(i - 1) * width + j].max(table[i * width + j - 1])
            };
        }
    }
    let length = table[a_length * width + b_length];
    if options.length_only {
        return Reply::Integer(i64::from(length));
    }
    let mut common = vec![0u8; length as usize];
    let mut matches = Vec::new();
    // The range being extended backwards: (a start, a end, b start, b end).
    let mut range: Option<(usize, usize, usize, usize)> = None;
    let (mut i, mut j, mut index) = (a_length, b_length, length as usize);
    while i > 0 && j > 0 {
        let mut emit = false;
        if a[i - 1] == b[j - 1] {
            common[index - 1] = a[i - 1];
            range = Some(match range {
                None => (i - 1, i - 1, j - 1, j - 1),
                // Always contiguous: a match follows a match diagonally.
                Some((_, a_end, _, b_end)) => (i - 1, a_end, j - 1, b_end),
            });
            if i == 1 || j == 1 {
                emit = true;
            }
            index -= 1;
            i -= 1;
            j -= 1;
        } else {
            if table[(i - 1) * width + j] > table[i * width + j - 1] {
                i -= 1;
            } else {
                j -= 1;
            }
            emit = range.is_some();
        }
        if let Some((a_start, a_end, b_start, b_end)) = range.filter(|_| emit) {
            let match_length = (a_end - a_start + 1) as u64;
            if options.min_match_length == 0 || match_length >= options.min_match_length {
                let pair = |start: usize, end: usize| {
                    Reply::Array(Some(vec![Reply::Integer(start as i64), Reply::Integer(end as i64)]))
                };
                let mut item = vec![pair(a_start, a_end), pair(b_start, b_end)];
                if options.with_match_length {
                    item.push(Reply::Integer(match_length as i64));
                }
                matches.push(Reply::Array(Some(item)));
            }
            range = None;
        }
    }
    if options.indexes {
        return Reply::Map(vec![
            (Reply::bulk("matches"), Reply::Array(Some(matches))),
            (Reply::bulk("len"), Reply::Integer(i64::from(length))),
        ]);
    }
    Reply::bulk(common)
}

impl Store {
    pub(super) fn bits_read(&self, command: Read, args: &[Vec<u8>], now: u64) -> Reply {
        let result = match command {
            Read::GetBit => self.on_getbit(args, now),
            Read::BitCount => self.on_bitcount(args, now),
            Read::BitPos => self.on_bitpos(args, now),
            Read::BitFieldRo => self.on_bitfield_ro(args, now),
            Read::Lcs => self.on_lcs(args, now),
        };
        result.unwrap_or_else(|error| error)
    }

    pub(super) fn bits_write(&mut self, command: Write, _name: &str, args: &[Vec<u8>], now: u64) -> Reply {
        let result = match command {
            Write::SetBit => self.on_setbit(args, now),
            Write::BitOp => self.on_bitop(args, now),
            Write::BitField => self.on_bitfield(args, now),
        };
        result.unwrap_or_else(|error| error)
    }

    /// The live string at `key` for a write, grown with zero bytes to hold
    /// byte `last_byte` (created if absent, Redis's
    /// `lookupStringForBitCommand`); WRONGTYPE for another type. A
    /// modification (WATCH). `last_byte < VALUE_BYTES_MAX`.
    fn bits_for_write(&mut self, key: &[u8], last_byte: u64, now: u64) -> Result<&mut Vec<u8>, Reply> {
        assert!(last_byte < VALUE_BYTES_MAX, "bit offsets are bounded when parsed");
        self.expire_if_needed(key, now);
        let length = last_byte as usize + 1;
        if self.live_string(key, now)?.is_none() {
            self.put(key, Value::String(vec![0; length]), false);
        }
        let bytes = self.string_mut(key).expect("a string, checked above");
        if bytes.len() < length {
            bytes.resize(length, 0);
        }
        Ok(bytes)
    }

    /// SETBIT key offset 0|1: the bit's previous value.
    fn on_setbit(&mut self, args: &[Vec<u8>], now: u64) -> Result<Reply, Reply> {
        let offset = parse_bit_offset(&args[2], None)?;
        let on = match parse_i64(&args[3]) {
            Some(on @ (0 | 1)) => on == 1,
            _ => return Err(Reply::error(BIT_VALUE_ERROR)),
        };
        let bytes = self.bits_for_write(&args[1], offset >> 3, now)?;
        let previous = bit_at(bytes, offset);
        set_bit(bytes, offset, on);
        Ok(Reply::Integer(i64::from(previous)))
    }

    fn on_getbit(&self, args: &[Vec<u8>], now: u64) -> Result<Reply, Reply> {
        let offset = parse_bit_offset(&args[2], None)?;
        let bytes = self.live_string(&args[1], now)?;
        Ok(Reply::Integer(bytes.map_or(0, |bytes| i64::from(bit_at(bytes, offset)))))
    }

    /// BITCOUNT key [start end [BYTE|BIT]]. Redis 7.0 looks the key up
    /// before parsing the range: a missing key counts 0 whatever follows.
    fn on_bitcount(&self, args: &[Vec<u8>], now: u64) -> Result<Reply, Reply> {
        let Some(bytes) = self.live_string(&args[1], now)? else {
            return Ok(Reply::Integer(0));
        };
        let length = bytes.len() as u64;
        let range = match args.len() {
            2 => bit_range(length, 0, -1, false),
            4 | 5 => {
                let start = parse_integer(&args[2])?;
                let end = parse_integer(&args[3])?;
                // Before the unit is parsed, as in Redis 7.0.
                if start < 0 && end < 0 && start > end {
                    return Ok(Reply::Integer(0));
                }
                let in_bits = match args.get(4) {
                    Some(unit) => parse_unit(unit)?,
                    None => false,
                };
                bit_range(length, start, end, in_bits)
            }
            _ => return Err(Reply::error(SYNTAX_ERROR)),
        };
        let count = range.map_or(0, |(first, last)| count_bits(bytes, first, last));
        Ok(Reply::Integer(count as i64))
    }

    /// BITPOS key bit [start [end [BYTE|BIT]]]. With no end given, the
    /// string counts as followed by zero bits: looking for a 0 in all ones
    /// answers the bit just past the end; with an end, -1.
    fn on_bitpos(&self, args: &[Vec<u8>], now: u64) -> Result<Reply, Reply> {
        let bit = match parse_integer(&args[2])? {
            bit @ (0 | 1) => bit as u8,
            _ => return Err(Reply::error("ERR The bit argument must be 1 or 0.")),
        };
        let Some(bytes) = self.live_string(&args[1], now)? else {
            return Ok(Reply::Integer(if bit == 1 { -1 } else { 0 }));
        };
        let length = bytes.len() as u64;
        let (range, end_given) = match args.len() {
            3 => (bit_range(length, 0, -1, false), false),
            4..=6 => {
                let start = parse_integer(&args[3])?;
                let in_bits = match args.get(5) {
                    Some(unit) => parse_unit(unit)?,
                    None => false,
                };
                match args.get(4) {
                    Some(end) => (bit_range(length, start, parse_integer(end)?, in_bits), true),
                    None => (bit_range(length, start, -1, false), false),
                }
            }
            _ => return Err(Reply::error(SYNTAX_ERROR)),
        };
        let Some((first, last)) = range else {
            return Ok(Reply::Integer(-1));
        };
        let position = match find_bit(bytes, first, last, bit) {
            Some(position) => position as i64,
            None if bit == 0 && !end_given => (last + 1) as i64,
            None => -1,
        };
        Ok(Reply::Integer(position))
    }

    /// BITOP AND|OR|XOR|NOT destination key...: the destination's length;
    /// an empty result deletes the destination. Missing keys are empty
    /// strings (zeros); the destination loses its TTL.
    fn on_bitop(&mut self, args: &[Vec<u8>], now: u64) -> Result<Reply, Reply> {
        let name = args[1].as_slice();
        let op = if option_is(name, "and") {
            BitOp::And
        } else if option_is(name, "or") {
            BitOp::Or
        } else if option_is(name, "xor") {
            BitOp::Xor
        } else if option_is(name, "not") {
            BitOp::Not
        } else {
            return Err(Reply::error(SYNTAX_ERROR));
        };
        if op == BitOp::Not && args.len() != 4 {
            return Err(Reply::error("ERR BITOP NOT must be called with a single source key."));
        }
        let mut sources = Vec::with_capacity(args.len() - 3);
        for key in &args[3..] {
            sources.push(self.live_string(key, now)?.map_or(&[][..], Vec::as_slice));
        }
        let result = bitop(op, &sources);
        let destination = args[2].as_slice();
        let length = result.len() as i64;
        self.expire_if_needed(destination, now);
        if result.is_empty() {
            self.remove(destination);
        } else {
            self.put(destination, Value::String(result), false);
        }
        Ok(Reply::Integer(length))
    }

    /// BITFIELD key [GET type offset | SET type offset value | INCRBY type
    /// offset increment | OVERFLOW WRAP|SAT|FAIL]...
    fn on_bitfield(&mut self, args: &[Vec<u8>], now: u64) -> Result<Reply, Reply> {
        let fields = parse_fields(args)?;
        let writes = fields.iter().filter(|field| field.op != FieldOp::Get);
        let Some(last_bit) = writes.map(|field| field.offset + u64::from(field.bits) - 1).max() else {
            self.expire_if_needed(&args[1], now);
            return self.read_fields(&args[1], &fields, now);
        };
        if last_bit >> 3 >= VALUE_BYTES_MAX {
            return Err(Reply::error(BIT_OFFSET_ERROR));
        }
        let bytes = self.bits_for_write(&args[1], last_bit >> 3, now)?;
        let replies = fields
            .iter()
            .map(|field| match field.op {
                FieldOp::Get => read_field(bytes, field),
                FieldOp::Set | FieldOp::IncrBy => write_field(bytes, field),
            })
            .collect();
        Ok(Reply::Array(Some(replies)))
    }

    /// BITFIELD_RO key [GET type offset]...
    fn on_bitfield_ro(&self, args: &[Vec<u8>], now: u64) -> Result<Reply, Reply> {
        let fields = parse_fields(args)?;
        if fields.iter().any(|field| field.op != FieldOp::Get) {
            return Err(Reply::error("ERR BITFIELD_RO only supports the GET subcommand"));
        }
        self.read_fields(&args[1], &fields, now)
    }

    /// BITFIELD's GETs when nothing is written: a missing key reads zeros.
    fn read_fields(&self, key: &[u8], fields: &[Field], now: u64) -> Result<Reply, Reply> {
        let bytes = self.live_string(key, now)?.map_or(&[][..], Vec::as_slice);
        Ok(Reply::Array(Some(fields.iter().map(|field| read_field(bytes, field)).collect())))
    }

    /// LCS key1 key2 [LEN] [IDX] [MINMATCHLEN len] [WITHMATCHLEN]. Missing
    /// keys are empty strings.
    fn on_lcs(&self, args: &[Vec<u8>], now: u64) -> Result<Reply, Reply> {
        let not_strings = || Reply::error("ERR The specified keys must contain string values");
        let a = self.live_string(&args[1], now).map_err(|_| not_strings())?;
        let b = self.live_string(&args[2], now).map_err(|_| not_strings())?;
        let options = parse_lcs_options(args)?;
        let empty = Vec::new();
        Ok(lcs(a.unwrap_or(&empty), b.unwrap_or(&empty), options))
    }
}

/// BITOP over `sources` (missing keys as empty): as long as the longest,
/// shorter ones read as zero-padded.
fn bitop(op: BitOp, sources: &[&[u8]]) -> Vec<u8> {
    let length = sources.iter().map(|source| source.len()).max().unwrap_or(0);
    let byte = |source: &[u8], i: usize| source.get(i).copied().unwrap_or(0);
    let mut result = Vec::with_capacity(length);
    for i in 0..length {
        let first = byte(sources[0], i);
        let rest = sources[1..].iter().map(|source| byte(source, i));
        result.push(match op {
            BitOp::And => rest.fold(first, |acc, b| acc & b),
            BitOp::Or => rest.fold(first, |acc, b| acc | b),
            BitOp::Xor => rest.fold(first, |acc, b| acc ^ b),
            BitOp::Not => !first,
        });
    }
    result
}

#[cfg(test)]
#[path = "bits_tests.rs"]
mod tests;
