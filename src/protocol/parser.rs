//! Incremental parsing of client requests: RESP2 multibulk
//! (`*2\r\n$3\r\nGET\r\n$1\r\nk\r\n`) and inline commands (`GET k\r\n`), read
//! the way Redis 7.0 reads them (`networking.c`: `processMultibulkBuffer`,
//! `processInlineBuffer`; `sds.c`: `sdssplitargs`), with its error texts.
//!
//! Pure: bytes in, commands out; no IO, and no input makes it panic. Memory is
//! bounded by [`Limits`]: every claimed length is checked before anything is
//! read, and nothing is allocated by a claimed size, only for bytes that
//! have arrived.
//!
//! The contract, for a connection that appends what it reads to a buffer:
//! 1. Call [`Parser::parse`] with the buffer's unconsumed bytes.
//! 2. Drop `consumed` bytes from the front of the buffer, whatever the
//!    variant: complete arguments and skipped bytes move into the parser's
//!    own state, so a command arriving over many reads is not rescanned.
//! 3. [`Parsed::Command`]: run it and go to 1. [`Parsed::Rejected`]: reply
//!    with [`Rejection::reply`] and go to 1. [`Parsed::Incomplete`]: read
//!    more bytes, then go to 1. [`Parsed::Failed`]: send
//!    [`ProtocolError::reply`] and close the connection.
//!
//! After `Incomplete` the unconsumed bytes are at most
//! `max(inline_bytes_max, value_bytes_max) + 1`, so the connection's buffer
//! stays bounded too. `fuzz::resp_parse` checks these invariants, and that
//! feeding the same bytes in pieces gives the same results as feeding them
//! whole.

use std::fmt;

use super::Reply;

/// Redis refuses a multibulk count above `INT_MAX`, whatever its other limits.
const MULTIBULK_COUNT_MAX: i64 = i32::MAX as i64;

/// Redis's `LONG_STR_SIZE`: `string2ll` refuses anything this long or longer.
const NUMBER_BYTES_LIMIT: usize = 21;

/// The default longest bulk argument: 32 MiB. Redis's `proto-max-bulk-len`
/// defaults to 512 MiB, but a cashe command must fit in one log entry
/// (`node::COMMAND_BYTES_MAX`, 64 MiB less 64 KiB, which also bounds the
/// `--max-query-bytes` a connection may hold): a value of this size, its key
/// and the command around it always fit, with room to spare for a second
/// argument. The binary asserts the relation at compile time.
pub const VALUE_BYTES_DEFAULT: usize = 32 << 20;

/// Bounds on what one request may claim; each is a command-line flag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Longest bulk string argument, in bytes. A longer claimed length is a
    /// protocol error that closes the connection, as Redis treats
    /// `proto-max-bulk-len` (`-ERR Protocol error: invalid bulk length`).
    /// Nothing is allocated by the claim: the bytes wait in the caller's
    /// buffer until the whole argument has arrived.
    pub value_bytes_max: usize,
    /// Longest key, in bytes. Carried for the command layer, which knows
    /// which arguments are keys; the parser does not enforce it.
    pub key_bytes_max: usize,
    /// Most arguments in one command, the command name included. A command
    /// with more is skipped whole and rejected; the connection stays usable.
    pub arguments_max: usize,
    /// Longest inline command line, and longest `*count` or `$length` line,
    /// in bytes without the line ending (Redis's `PROTO_INLINE_MAX_SIZE`).
    pub inline_bytes_max: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            value_bytes_max: VALUE_BYTES_DEFAULT,
            key_bytes_max: 64 * 1024,
            arguments_max: 1024 * 1024,
            inline_bytes_max: 64 * 1024,
        }
    }
}

/// What one call to [`Parser::parse`] found. Every variant but `Failed`
/// says how many bytes from the front of the buffer the caller must drop.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Parsed {
    /// A whole command: at least one argument, the first being its name.
    Command { arguments: Vec<Vec<u8>>, consumed: usize },
    /// No whole command yet: call again with the unconsumed bytes and more.
    Incomplete { consumed: usize },
    /// A command over a limit, skipped whole: reply with the rejection's
    /// error and keep reading.
    Rejected { rejection: Rejection, consumed: usize },
    /// The stream cannot be read on: reply with the error, then close. The
    /// parser returns the same error from then on.
    Failed { error: ProtocolError },
}

impl Parsed {
    /// Bytes the caller must drop from the front of its buffer.
    pub fn consumed(&self) -> usize {
        match self {
            Parsed::Command { consumed, .. }
            | Parsed::Incomplete { consumed }
            | Parsed::Rejected { consumed, .. } => *consumed,
            Parsed::Failed { .. } => 0,
        }
    }
}

/// A malformed request, or a claim the parser cannot skip safely; the
/// connection must close. Texts are Redis 7.0's where it has one.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProtocolError {
    /// `*count` is not a number or is above `INT_MAX`.
    InvalidMultibulkLength,
    /// `$length` is not a number, is negative, or is above `value_bytes_max`.
    InvalidBulkLength,
    /// A multibulk argument did not start with `$`.
    ExpectedDollar { got: u8 },
    /// The bytes after a bulk argument were not `\r\n`. Redis skips them
    /// unchecked; we refuse, since it means the framing is lost.
    BulkNotTerminated,
    /// An inline line, or one of its words, is over the limits.
    TooBigInlineRequest,
    /// An inline line has an unterminated quote, or a closing quote
    /// followed by something other than a space.
    UnbalancedQuotes,
    /// A `*count` line is longer than `inline_bytes_max`.
    TooBigMultibulkCount,
    /// A `$length` line is longer than `inline_bytes_max`.
    TooBigBulkCount,
    /// Before authentication, a `*count` over [`UNAUTHENTICATED_ARGUMENTS_MAX`].
    UnauthenticatedMultibulkLength,
    /// Before authentication, a `$length` over [`UNAUTHENTICATED_BULK_BYTES_MAX`].
    UnauthenticatedBulkLength,
}

/// Most arguments a command may have before its connection authenticated
/// (Redis 7.0's limit for connections that must AUTH).
pub const UNAUTHENTICATED_ARGUMENTS_MAX: i64 = 10;
/// Longest argument before authentication (Redis 7.0's limit).
pub const UNAUTHENTICATED_BULK_BYTES_MAX: usize = 16384;

impl ProtocolError {
    /// The `-ERR Protocol error: ...` reply to send before closing.
    pub fn reply(&self) -> Reply {
        Reply::error(format!("ERR {self}"))
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            ProtocolError::InvalidMultibulkLength => "invalid multibulk length",
            ProtocolError::InvalidBulkLength => "invalid bulk length",
            ProtocolError::ExpectedDollar { got } => {
                // Redis prints the raw byte; a `char` keeps the text UTF-8.
                return write!(formatter, "Protocol error: expected '$', got '{}'", char::from(*got));
            }
            ProtocolError::BulkNotTerminated => "expected CRLF after bulk argument",
            ProtocolError::TooBigInlineRequest => "too big inline request",
            ProtocolError::UnbalancedQuotes => "unbalanced quotes in request",
            ProtocolError::TooBigMultibulkCount => "too big mbulk count string",
            ProtocolError::TooBigBulkCount => "too big bulk count string",
            ProtocolError::UnauthenticatedMultibulkLength => "unauthenticated multibulk length",
            ProtocolError::UnauthenticatedBulkLength => "unauthenticated bulk length",
        };
        write!(formatter, "Protocol error: {text}")
    }
}

/// A command over a limit that the parser skipped exactly; the connection
/// stays usable.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rejection {
    /// More arguments than `arguments_max`. Redis has no such limit.
    TooManyArguments { limit: usize },
}

impl Rejection {
    /// The `-ERR ...` reply to send for the skipped command.
    pub fn reply(&self) -> Reply {
        Reply::error(format!("ERR {self}"))
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rejection::TooManyArguments { limit } => {
                write!(formatter, "too many arguments in request (limit is {limit})")
            }
        }
    }
}

/// One request of a connection, in arrival order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// A whole command for the node (arguments, the name first).
    Command(Vec<Vec<u8>>),
    /// Answered by the protocol layer itself (a rejected or malformed request).
    Answered(Reply),
}

/// Everything whole in a connection's buffer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Requests {
    pub items: Vec<Request>,
    /// Close the connection once these are answered: after `QUIT`, a
    /// protocol error, or a query buffer over its limit.
    pub close: bool,
}

/// Reads requests from a byte stream one command at a time; see the module
/// docs for the calling contract.
#[derive(Debug)]
pub struct Parser {
    limits: Limits,
    state: State,
    /// The connection must authenticate and has not yet: commands have
    /// Redis's small limits, and [`Parser::take_requests`] takes one at a
    /// time, so that an AUTH is answered before the next is parsed.
    unauthenticated: bool,
}

#[derive(Debug)]
enum State {
    /// Between commands: the next byte starts a multibulk (`*`) or an inline line.
    Idle,
    /// Inside a multibulk within the limits, collecting its arguments.
    Multibulk(Multibulk),
    /// Inside a multibulk over `arguments_max`, discarding its arguments as
    /// they arrive so that the next command can be read.
    Skipping(Skipping),
    /// A protocol error was returned; it is returned again on every call.
    Failed(ProtocolError),
}

#[derive(Debug)]
struct Multibulk {
    arguments: Vec<Vec<u8>>,
    /// Arguments still to come, the current one included.
    remaining: usize,
    /// The current argument's length, once its `$length` line is consumed.
    bulk_bytes: Option<usize>,
    /// Sum of the lengths in `arguments`.
    held_bytes: usize,
    /// Parsed before the connection authenticated: Redis's small limits.
    unauthenticated: bool,
}

#[derive(Debug)]
struct Skipping {
    rejection: Rejection,
    /// Arguments still to come, the current one included.
    remaining: usize,
    /// Data bytes of the current argument not yet skipped, once its
    /// `$length` line is consumed; its `\r\n` follows them.
    bulk_bytes_left: Option<usize>,
}

/// One step of the parse loop.
enum Step {
    /// Bytes moved into the parser's state or were skipped; keep going.
    Advanced(usize),
    /// More bytes are needed.
    Wait,
    Command(Vec<Vec<u8>>, usize),
    Rejected(Rejection, usize),
}

impl Parser {
    pub fn new(limits: Limits) -> Parser {
        Parser { limits, state: State::Idle, unauthenticated: false }
    }

    /// Whether the connection still has to authenticate (see the field).
    pub fn set_unauthenticated(&mut self, unauthenticated: bool) {
        self.unauthenticated = unauthenticated;
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Takes every whole request from the front of `buffer` (what a shell
    /// read from a connection), stopping after `QUIT` or a protocol error.
    /// If what stays buffered, plus a partial command held here, passes
    /// `query_bytes_max`, the client gets an error and the connection closes.
    pub fn take_requests(&mut self, buffer: &mut Vec<u8>, query_bytes_max: usize) -> Requests {
        let mut requests = Requests::default();
        let mut used = 0;
        while !requests.close {
            match self.parse(&buffer[used..]) {
                Parsed::Command { arguments, consumed } => {
                    used += consumed;
                    requests.close = arguments[0].eq_ignore_ascii_case(b"QUIT");
                    requests.items.push(Request::Command(arguments));
                    if self.unauthenticated {
                        break;
                    }
                }
                Parsed::Incomplete { consumed } => {
                    used += consumed;
                    break;
                }
                Parsed::Rejected { rejection, consumed } => {
                    used += consumed;
                    requests.items.push(Request::Answered(rejection.reply()));
                }
                Parsed::Failed { error } => {
                    requests.items.push(Request::Answered(error.reply()));
                    requests.close = true;
                }
            }
        }
        buffer.drain(..used);
        if !requests.close && buffer.len() + self.held_bytes() > query_bytes_max {
            let text = format!("ERR query buffer over {query_bytes_max} bytes; closing the connection");
            requests.items.push(Request::Answered(Reply::error(text)));
            requests.close = true;
        }
        requests
    }

    /// Bytes of a partial command held in the parser (arguments already
    /// consumed from the caller's buffer); for a per-connection memory bound.
    pub fn held_bytes(&self) -> usize {
        match &self.state {
            State::Multibulk(multibulk) => multibulk.held_bytes,
            State::Idle | State::Skipping(_) | State::Failed(_) => 0,
        }
    }

    /// Reads from `buffer`, the caller's unconsumed bytes, up to the end of
    /// the next command, or until more bytes are needed. Empty commands
    /// (blank inline lines, `*0`, `*-1`) are skipped, as Redis does.
    pub fn parse(&mut self, buffer: &[u8]) -> Parsed {
        let mut consumed = 0;
        loop {
            let step = match self.step(&buffer[consumed..]) {
                Ok(step) => step,
                Err(error) => {
                    self.state = State::Failed(error.clone());
                    return Parsed::Failed { error };
                }
            };
            match step {
                Step::Advanced(used) => {
                    assert!(used > 0, "a step that advances consumes bytes");
                    consumed += used;
                }
                Step::Wait => return Parsed::Incomplete { consumed },
                Step::Command(arguments, used) => {
                    assert!(!arguments.is_empty() && arguments.len() <= self.limits.arguments_max);
                    self.state = State::Idle;
                    return Parsed::Command { arguments, consumed: consumed + used };
                }
                Step::Rejected(rejection, used) => {
                    self.state = State::Idle;
                    return Parsed::Rejected { rejection, consumed: consumed + used };
                }
            }
            assert!(consumed <= buffer.len());
        }
    }

    fn step(&mut self, input: &[u8]) -> Result<Step, ProtocolError> {
        match &mut self.state {
            State::Idle => match input.first() {
                None => Ok(Step::Wait),
                Some(b'*') => self.on_multibulk_count(input),
                Some(_) => on_inline(input, &self.limits),
            },
            State::Multibulk(multibulk) => on_multibulk_argument(multibulk, input, &self.limits),
            State::Skipping(skipping) => on_skipped_argument(skipping, input, &self.limits),
            State::Failed(error) => Err(error.clone()),
        }
    }

    /// Reads `*count\r\n` and enters the multibulk, or skips it if empty.
    fn on_multibulk_count(&mut self, input: &[u8]) -> Result<Step, ProtocolError> {
        let Some(line) =
            count_line(input, self.limits.inline_bytes_max, ProtocolError::TooBigMultibulkCount)?
        else {
            return Ok(Step::Wait);
        };
        let count = line
            .number()
            .filter(|count| *count <= MULTIBULK_COUNT_MAX)
            .ok_or(ProtocolError::InvalidMultibulkLength)?;
        if self.unauthenticated && count > UNAUTHENTICATED_ARGUMENTS_MAX {
            return Err(ProtocolError::UnauthenticatedMultibulkLength);
        }
        // Redis reads `*0` and `*-1` (any count ≤ 0) as no command at all.
        let Ok(remaining @ 1..) = usize::try_from(count) else {
            return Ok(Step::Advanced(line.used));
        };
        self.state = if remaining > self.limits.arguments_max {
            let rejection = Rejection::TooManyArguments { limit: self.limits.arguments_max };
            State::Skipping(Skipping { rejection, remaining, bulk_bytes_left: None })
        } else {
            // Grown as arguments arrive: the count is only a claim.
            State::Multibulk(Multibulk {
                arguments: Vec::new(),
                remaining,
                bulk_bytes: None,
                held_bytes: 0,
                unauthenticated: self.unauthenticated,
            })
        };
        Ok(Step::Advanced(line.used))
    }
}

/// Reads one inline line, ended by `\n` or `\r\n`, and splits it into words.
/// A complete line is all or nothing: nothing is consumed until it is whole.
fn on_inline(input: &[u8], limits: &Limits) -> Result<Step, ProtocolError> {
    let bytes_max = limits.inline_bytes_max;
    // Enough to find the end of the longest allowed line and its `\r\n`.
    let window = &input[..input.len().min(bytes_max.saturating_add(2))];
    let Some(newline) = window.iter().position(|byte| *byte == b'\n') else {
        // A trailing `\r` may be the start of the line ending, so it is not
        // counted: the verdict must not depend on where the reads split.
        let pending = input.len() - usize::from(input.last() == Some(&b'\r'));
        return if pending > bytes_max { Err(ProtocolError::TooBigInlineRequest) } else { Ok(Step::Wait) };
    };
    let end = if newline > 0 && input[newline - 1] == b'\r' { newline - 1 } else { newline };
    if end > bytes_max {
        return Err(ProtocolError::TooBigInlineRequest);
    }
    let arguments = split_arguments(&input[..end]).ok_or(ProtocolError::UnbalancedQuotes)?;
    let used = newline + 1;
    if arguments.is_empty() {
        return Ok(Step::Advanced(used));
    }
    if arguments.iter().any(|argument| argument.len() > limits.value_bytes_max) {
        return Err(ProtocolError::TooBigInlineRequest);
    }
    if arguments.len() > limits.arguments_max {
        return Ok(Step::Rejected(Rejection::TooManyArguments { limit: limits.arguments_max }, used));
    }
    Ok(Step::Command(arguments, used))
}

/// Reads the next `$length\r\n` line, or the argument's data once its
/// length is known. The data waits in the caller's buffer until it and its
/// `\r\n` have all arrived, so no buffer is sized by a claimed length.
fn on_multibulk_argument(
    multibulk: &mut Multibulk,
    input: &[u8],
    limits: &Limits,
) -> Result<Step, ProtocolError> {
    let Some(bulk_bytes) = multibulk.bulk_bytes else {
        return Ok(match bulk_length_line(input, limits)? {
            None => Step::Wait,
            Some((length, _)) if multibulk.unauthenticated && length > UNAUTHENTICATED_BULK_BYTES_MAX => {
                return Err(ProtocolError::UnauthenticatedBulkLength);
            }
            Some((length, used)) => {
                multibulk.bulk_bytes = Some(length);
                Step::Advanced(used)
            }
        });
    };
    let Some(framed) = input.get(..bulk_bytes.saturating_add(2)) else {
        return Ok(Step::Wait);
    };
    let (data, ending) = framed.split_at(bulk_bytes);
    if ending != b"\r\n" {
        return Err(ProtocolError::BulkNotTerminated);
    }
    multibulk.arguments.push(data.to_vec());
    multibulk.held_bytes += bulk_bytes;
    multibulk.bulk_bytes = None;
    multibulk.remaining -= 1;
    if multibulk.remaining == 0 {
        Ok(Step::Command(std::mem::take(&mut multibulk.arguments), framed.len()))
    } else {
        Ok(Step::Advanced(framed.len()))
    }
}

/// Like [`on_multibulk_argument`], with the same checks on each argument,
/// but the data is dropped as it arrives instead of waiting to be whole.
fn on_skipped_argument(
    skipping: &mut Skipping,
    input: &[u8],
    limits: &Limits,
) -> Result<Step, ProtocolError> {
    match skipping.bulk_bytes_left {
        None => Ok(match bulk_length_line(input, limits)? {
            None => Step::Wait,
            Some((length, used)) => {
                skipping.bulk_bytes_left = Some(length);
                Step::Advanced(used)
            }
        }),
        Some(0) => {
            let Some(ending) = input.get(..2) else {
                return Ok(Step::Wait);
            };
            if ending != b"\r\n" {
                return Err(ProtocolError::BulkNotTerminated);
            }
            skipping.bulk_bytes_left = None;
            skipping.remaining -= 1;
            if skipping.remaining == 0 {
                Ok(Step::Rejected(skipping.rejection.clone(), 2))
            } else {
                Ok(Step::Advanced(2))
            }
        }
        Some(left) => {
            let skipped = left.min(input.len());
            if skipped == 0 {
                return Ok(Step::Wait);
            }
            skipping.bulk_bytes_left = Some(left - skipped);
            Ok(Step::Advanced(skipped))
        }
    }
}

/// Reads `$length\r\n`: the length and the line's size with its ending, or
/// `None` until the line is whole. Checks in Redis's order: line size, `$`,
/// then the number.
fn bulk_length_line(input: &[u8], limits: &Limits) -> Result<Option<(usize, usize)>, ProtocolError> {
    let Some(line) = count_line(input, limits.inline_bytes_max, ProtocolError::TooBigBulkCount)? else {
        return Ok(None);
    };
    if input[0] != b'$' {
        return Err(ProtocolError::ExpectedDollar { got: input[0] });
    }
    let length = line
        .number()
        .and_then(|length| usize::try_from(length).ok())
        .filter(|length| *length <= limits.value_bytes_max)
        .ok_or(ProtocolError::InvalidBulkLength)?;
    Ok(Some((length, line.used)))
}

/// A `*count` or `$length` line: a type byte, digits, `\r\n`.
struct CountLine<'a> {
    /// The line up to its `\r`, type byte included (empty if the line is
    /// only `\r\n`, which the `$` check catches).
    text: &'a [u8],
    /// Whether the byte after `\r` was `\n`.
    terminated: bool,
    /// The line's size with its ending.
    used: usize,
}

impl CountLine<'_> {
    /// The number after the type byte, if the line is well formed.
    fn number(&self) -> Option<i64> {
        if !self.terminated {
            return None;
        }
        parse_number(self.text.get(1..)?)
    }
}

/// Finds a count line as Redis does: up to the first `\r`, which must be
/// followed by one more byte (Redis skips that byte unchecked; we require
/// `\n`, reported through [`CountLine::number`]). A line longer than
/// `bytes_max`, ended or not, is the `too_big` error, so the verdict does not
/// depend on where the reads split.
fn count_line(
    input: &[u8],
    bytes_max: usize,
    too_big: ProtocolError,
) -> Result<Option<CountLine<'_>>, ProtocolError> {
    let window = &input[..input.len().min(bytes_max.saturating_add(1))];
    let carriage_return = window.iter().position(|byte| *byte == b'\r');
    if carriage_return.unwrap_or(input.len()) > bytes_max {
        return Err(too_big);
    }
    match carriage_return {
        Some(end) if end + 1 < input.len() => {
            Ok(Some(CountLine { text: &input[..end], terminated: input[end + 1] == b'\n', used: end + 2 }))
        }
        _ => Ok(None),
    }
}

/// Parses a decimal the way Redis's `string2ll` does: an optional `-`, no
/// `+`, no spaces, no leading zeros (`0` alone is fine, `-0` is not), under
/// 21 bytes, within `i64`.
fn parse_number(text: &[u8]) -> Option<i64> {
    if text.is_empty() || text.len() >= NUMBER_BYTES_LIMIT {
        return None;
    }
    if text == b"0" {
        return Some(0);
    }
    let (negative, digits) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, text),
    };
    if !matches!(digits.first(), Some(b'1'..=b'9')) || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let magnitude = digits
        .iter()
        .try_fold(0u64, |value, digit| value.checked_mul(10)?.checked_add(u64::from(digit - b'0')))?;
    let signed = if negative { -i128::from(magnitude) } else { i128::from(magnitude) };
    i64::try_from(signed).ok()
}

/// C's `isspace` in the "C" locale, which `sdssplitargs` skips between words.
fn is_space(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

/// Splits an inline line into words as Redis's `sdssplitargs` does (and as
/// redis-cli quotes them); `None` for unbalanced quotes. One difference:
/// a NUL byte is an ordinary byte here, where C strings end at it.
fn split_arguments(line: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut words = Vec::new();
    let mut at = 0;
    loop {
        while line.get(at).is_some_and(|byte| is_space(*byte)) {
            at += 1;
        }
        if at == line.len() {
            return Some(words);
        }
        let (word, next) = split_word(line, at)?;
        assert!(next > at, "each word consumes bytes");
        words.push(word);
        at = next;
    }
}

#[derive(Clone, Copy)]
enum Quote {
    None,
    Double,
    Single,
}

/// Reads the word starting at `at`; returns it and where reading stops.
/// Quotes may start mid-word (`a"b c"` is `ab c`), but a closing quote must
/// be followed by a space or the end of the line.
fn split_word(line: &[u8], mut at: usize) -> Option<(Vec<u8>, usize)> {
    let mut word = Vec::new();
    let mut quote = Quote::None;
    loop {
        let byte = line.get(at).copied();
        let next = line.get(at + 1).copied();
        match (quote, byte) {
            (Quote::None, None | Some(b' ' | b'\n' | b'\r' | b'\t')) => return Some((word, at)),
            (Quote::None, Some(b'"')) => quote = Quote::Double,
            (Quote::None, Some(b'\'')) => quote = Quote::Single,
            (Quote::Double | Quote::Single, None) => return None,
            (Quote::Double, Some(b'\\')) if next == Some(b'x') => {
                let high = line.get(at + 2).copied().and_then(hex_digit);
                let low = line.get(at + 3).copied().and_then(hex_digit);
                match (high, low) {
                    (Some(high), Some(low)) => {
                        word.push(high * 16 + low);
                        at += 3;
                    }
                    // Not `\xHH`: the `x` stands for itself, as any other
                    // escaped byte without a meaning does.
                    _ => {
                        word.push(b'x');
                        at += 1;
                    }
                }
            }
            (Quote::Double, Some(b'\\')) if next.is_some() => {
                word.push(unescape(next?));
                at += 1;
            }
            (Quote::Single, Some(b'\\')) if next == Some(b'\'') => {
                word.push(b'\'');
                at += 1;
            }
            (Quote::Double, Some(b'"')) | (Quote::Single, Some(b'\'')) => {
                if next.is_some_and(|next| !is_space(next)) {
                    return None;
                }
                return Some((word, at + 1));
            }
            (_, Some(byte)) => word.push(byte),
        }
        at += 1;
    }
}

fn unescape(byte: u8) -> u8 {
    match byte {
        b'n' => b'\n',
        b'r' => b'\r',
        b't' => b'\t',
        b'b' => 0x08,
        b'a' => 0x07,
        other => other,
    }
}

fn hex_digit(byte: u8) -> Option<u8> {
    char::from(byte).to_digit(16).map(|digit| digit as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &str) -> Option<Vec<String>> {
        split_arguments(line.as_bytes())
            .map(|words| words.into_iter().map(|word| String::from_utf8_lossy(&word).into_owned()).collect())
    }

    #[test]
    fn numbers_parse_as_redis_string2ll() {
        assert_eq!(parse_number(b"0"), Some(0));
        assert_eq!(parse_number(b"-1"), Some(-1));
        assert_eq!(parse_number(b"1048576"), Some(1048576));
        assert_eq!(parse_number(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_number(b"-9223372036854775808"), Some(i64::MIN));
        for refused in [
            "",
            "-",
            "-0",
            "00",
            "01",
            "+1",
            " 1",
            "1 ",
            "1a",
            "9223372036854775808",
            "123456789012345678901",
        ] {
            assert_eq!(parse_number(refused.as_bytes()), None, "{refused:?}");
        }
    }

    #[test]
    fn words_split_as_redis_sdssplitargs() {
        assert_eq!(words("  set  a\tb  "), Some(vec!["set".into(), "a".into(), "b".into()]));
        assert_eq!(words("a\x0bb"), Some(vec!["a\x0bb".into()]), "vertical tab joins inside a word");
        assert_eq!(words("\x0c a"), Some(vec!["a".into()]), "but is skipped between words");
        assert_eq!(words(r#"a"b c"d"#), None);
        assert_eq!(words(r#"a"b c" d"#), Some(vec!["ab c".into(), "d".into()]));
        assert_eq!(words(r#""\x41\x4g\q""#), Some(vec!["Ax4gq".into()]));
        assert_eq!(words(r#"'it\'s \n'"#), Some(vec!["it's \\n".into()]));
        assert_eq!(words(r#""\"#), None);
        assert_eq!(words(r#""""#), Some(vec![String::new()]));
        assert_eq!(words(""), Some(vec![]));
    }

    /// A client that claims the largest value and sends a little of it
    /// costs what it sent: the claimed length is remembered, nothing is
    /// sized by it, and the bytes wait in the caller's buffer.
    #[test]
    fn a_claimed_length_allocates_nothing_before_its_bytes_arrive() {
        let mut parser = Parser::new(Limits::default());
        let header = format!("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n${VALUE_BYTES_DEFAULT}\r\n");
        let mut input = header.clone().into_bytes();
        input.extend_from_slice(b"abc");
        assert_eq!(parser.parse(&input), Parsed::Incomplete { consumed: header.len() });
        assert_eq!(parser.held_bytes(), 4, "SET and k, nothing of the claim");
        let State::Multibulk(multibulk) = &parser.state else { panic!("inside the multibulk") };
        assert!(multibulk.arguments.capacity() <= 4, "grown by arguments that arrived");
        assert_eq!(multibulk.bulk_bytes, Some(VALUE_BYTES_DEFAULT));
        // The whole value, once it has all arrived, is one argument.
        let mut rest = vec![b'v'; VALUE_BYTES_DEFAULT];
        rest.extend_from_slice(b"\r\n");
        let Parsed::Command { arguments, consumed } = parser.parse(&rest) else { panic!("a command") };
        assert_eq!((arguments[2].len(), consumed), (VALUE_BYTES_DEFAULT, VALUE_BYTES_DEFAULT + 2));
        let over = format!("*1\r\n${}\r\n", VALUE_BYTES_DEFAULT + 1);
        let error = ProtocolError::InvalidBulkLength;
        assert_eq!(Parser::new(Limits::default()).parse(over.as_bytes()), Parsed::Failed { error });
    }

    #[test]
    fn count_lines_refuse_a_missing_line_feed() {
        let limits = Limits::default();
        assert_eq!(bulk_length_line(b"$3\rx", &limits), Err(ProtocolError::InvalidBulkLength));
        assert_eq!(bulk_length_line(b"$3\r", &limits), Ok(None));
        assert_eq!(bulk_length_line(b"\r\n", &limits), Err(ProtocolError::ExpectedDollar { got: b'\r' }));
    }
}
