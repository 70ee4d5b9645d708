//! Replies as values, and their RESP2 and RESP3 encodings.
//!
//! The core builds replies in their richest shape: RESP3's maps, sets,
//! doubles, booleans and verbatim strings where Redis 7.0 sends them, and
//! RESP2's two nulls (`$-1` and `*-1`) where Redis sends those. A
//! connection speaks one [`Protocol`] at a time (`HELLO 2`/`HELLO 3`), and
//! [`Reply::for_protocol`] turns a reply into the shape Redis gives that
//! protocol: for RESP2 a map becomes a flat array, a double a bulk string,
//! a boolean an integer, a verbatim string a bulk string; for RESP3 both
//! nulls become `_`. [`Reply::encode`] then writes each variant in its own
//! syntax, so a RESP2 connection never sees a RESP3 type.

use serde::{Deserialize, Serialize};

/// The protocol a connection speaks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Protocol {
    #[default]
    Resp2,
    Resp3,
}

impl Protocol {
    /// The number `HELLO` takes and answers with.
    pub fn version(self) -> i64 {
        match self {
            Protocol::Resp2 => 2,
            Protocol::Resp3 => 3,
        }
    }
}

/// One reply. Serializable: a leader's answer to a forwarded command travels
/// to the follower that forwarded it in this shape.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Reply {
    /// `+OK\r\n`
    Simple(String),
    /// `-ERR message\r\n`; the text includes the prefix word (`ERR`, `WRONGTYPE`, …).
    Error(String),
    /// `:42\r\n`
    Integer(i64),
    /// `$3\r\nfoo\r\n`, or `$-1\r\n` for `None` (RESP3: `_\r\n`).
    Bulk(#[serde(with = "crate::frame::optional_bytes")] Option<Vec<u8>>),
    /// `*2\r\n…`, or `*-1\r\n` for `None` (RESP3: `_\r\n`).
    Array(Option<Vec<Reply>>),
    /// RESP3's null `_\r\n` (RESP2: `$-1\r\n`).
    Null,
    /// RESP3 `,1.5\r\n`, holding Redis's text for the number (`%.17g`,
    /// `inf`, `-inf`); RESP2: a bulk string of the same text.
    Double(String),
    /// RESP3 `#t\r\n`; RESP2: `:1` or `:0`.
    Boolean(bool),
    /// RESP3 `%n\r\n` and n key/value pairs; RESP2: a flat array.
    Map(Vec<(Reply, Reply)>),
    /// RESP3 `~n\r\n`; RESP2: an array.
    Set(Vec<Reply>),
    /// RESP3 `=n\r\ntxt:…\r\n` (a three-letter format, a colon, the text);
    /// RESP2: a bulk string of the text.
    Verbatim { format: String, text: Vec<u8> },
    /// RESP3 `(123…\r\n`; RESP2: a bulk string.
    BigNumber(String),
    /// RESP3 `>n\r\n` (out-of-band data; nothing sends one yet); RESP2: an array.
    Push(Vec<Reply>),
    /// Pairs as Redis 7.0 answers ZRANGE WITHSCORES or HRANDFIELD
    /// WITHVALUES: RESP3 an array of two-element arrays, RESP2 one flat array.
    Pairs(Vec<(Reply, Reply)>),
}

impl Reply {
    pub fn ok() -> Reply {
        Reply::Simple("OK".into())
    }

    pub fn nil() -> Reply {
        Reply::Bulk(None)
    }

    pub fn bulk(bytes: impl Into<Vec<u8>>) -> Reply {
        Reply::Bulk(Some(bytes.into()))
    }

    pub fn error(text: impl Into<String>) -> Reply {
        Reply::Error(text.into())
    }

    /// A verbatim text reply (`txt`), as INFO and CLIENT INFO answer.
    pub fn text(text: impl Into<Vec<u8>>) -> Reply {
        Reply::Verbatim { format: "txt".into(), text: text.into() }
    }

    pub fn is_error(&self) -> bool {
        matches!(self, Reply::Error(_))
    }

    /// The reply as Redis 7.0 gives it to a connection speaking `protocol`
    /// (see the module docs).
    pub fn for_protocol(self, protocol: Protocol) -> Reply {
        match protocol {
            Protocol::Resp2 => self.into_resp2(),
            Protocol::Resp3 => self.into_resp3(),
        }
    }

    fn into_resp2(self) -> Reply {
        let all = |items: Vec<Reply>| items.into_iter().map(Reply::into_resp2).collect();
        match self {
            Reply::Null => Reply::Bulk(None),
            Reply::Double(text) | Reply::BigNumber(text) => Reply::Bulk(Some(text.into_bytes())),
            Reply::Boolean(b) => Reply::Integer(i64::from(b)),
            Reply::Map(pairs) | Reply::Pairs(pairs) => Reply::Array(Some(
                pairs.into_iter().flat_map(|(k, v)| [k.into_resp2(), v.into_resp2()]).collect(),
            )),
            Reply::Set(items) | Reply::Push(items) | Reply::Array(Some(items)) => {
                Reply::Array(Some(all(items)))
            }
            Reply::Verbatim { text, .. } => Reply::Bulk(Some(text)),
            other @ (Reply::Simple(_)
            | Reply::Error(_)
            | Reply::Integer(_)
            | Reply::Bulk(_)
            | Reply::Array(None)) => other,
        }
    }

    fn into_resp3(self) -> Reply {
        let all = |items: Vec<Reply>| items.into_iter().map(Reply::into_resp3).collect();
        match self {
            Reply::Bulk(None) | Reply::Array(None) => Reply::Null,
            Reply::Array(Some(items)) => Reply::Array(Some(all(items))),
            Reply::Set(items) => Reply::Set(all(items)),
            Reply::Push(items) => Reply::Push(all(items)),
            Reply::Map(pairs) => {
                Reply::Map(pairs.into_iter().map(|(k, v)| (k.into_resp3(), v.into_resp3())).collect())
            }
            Reply::Pairs(pairs) => Reply::Array(Some(
                pairs
                    .into_iter()
                    .map(|(k, v)| Reply::Array(Some(vec![k.into_resp3(), v.into_resp3()])))
                    .collect(),
            )),
            other => other,
        }
    }

    /// Appends the encoding of this value to `out`: RESP2's syntax for
    /// RESP2's types, RESP3's for the others (call [`Reply::for_protocol`]
    /// first to answer a connection).
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Reply::Simple(text) => line(out, b'+', text.as_bytes()),
            Reply::Error(text) => line(out, b'-', text.as_bytes()),
            Reply::Integer(n) => line(out, b':', n.to_string().as_bytes()),
            Reply::Bulk(None) => out.extend_from_slice(b"$-1\r\n"),
            Reply::Bulk(Some(bytes)) => blob(out, b'$', bytes),
            Reply::Array(None) => out.extend_from_slice(b"*-1\r\n"),
            Reply::Array(Some(items)) => aggregate(out, b'*', items),
            Reply::Null => out.extend_from_slice(b"_\r\n"),
            Reply::Double(text) => line(out, b',', text.as_bytes()),
            Reply::Boolean(b) => out.extend_from_slice(if *b { b"#t\r\n" } else { b"#f\r\n" }),
            Reply::Map(pairs) => {
                line(out, b'%', pairs.len().to_string().as_bytes());
                for (key, value) in pairs {
                    key.encode(out);
                    value.encode(out);
                }
            }
            Reply::Set(items) => aggregate(out, b'~', items),
            Reply::Verbatim { format, text } => {
                let mut body = Vec::with_capacity(format.len() + 1 + text.len());
                body.extend_from_slice(format.as_bytes());
                body.push(b':');
                body.extend_from_slice(text);
                blob(out, b'=', &body);
            }
            Reply::BigNumber(text) => line(out, b'(', text.as_bytes()),
            Reply::Push(items) => aggregate(out, b'>', items),
            // Shaped by `for_protocol` before it reaches a connection; as is,
            // RESP3's shape.
            Reply::Pairs(pairs) => {
                line(out, b'*', pairs.len().to_string().as_bytes());
                for (first, second) in pairs {
                    out.extend_from_slice(b"*2\r\n");
                    first.encode(out);
                    second.encode(out);
                }
            }
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }
}

fn blob(out: &mut Vec<u8>, prefix: u8, bytes: &[u8]) {
    line(out, prefix, bytes.len().to_string().as_bytes());
    out.extend_from_slice(bytes);
    out.extend_from_slice(b"\r\n");
}

fn aggregate(out: &mut Vec<u8>, prefix: u8, items: &[Reply]) {
    line(out, prefix, items.len().to_string().as_bytes());
    for item in items {
        item.encode(out);
    }
}

/// Appends a command as a RESP2 array of bulk strings (the client side:
/// the join handshake, the simulator's clients, tests, benchmarks).
pub fn encode_command<A: AsRef<[u8]>>(args: &[A], out: &mut Vec<u8>) {
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for arg in args {
        let arg = arg.as_ref();
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
}

/// Deepest array nesting `decode` accepts.
const DECODE_DEPTH_MAX: usize = 32;

/// Reads one reply, RESP2 or RESP3, from the front of `bytes` (the client
/// side of the protocol: the join handshake, the simulator, tests,
/// benchmarks). `Ok(None)` means more bytes are needed; otherwise the reply
/// and the bytes it took. Claimed lengths are never allocated ahead of the
/// bytes that hold them. A RESP3 attribute (`|`) is skipped: the reply is
/// the value that follows it.
pub fn decode(bytes: &[u8]) -> Result<Option<(Reply, usize)>, String> {
    decode_at(bytes, 0)
}

fn decode_at(bytes: &[u8], depth: usize) -> Result<Option<(Reply, usize)>, String> {
    if depth > DECODE_DEPTH_MAX {
        return Err("reply nested too deeply".into());
    }
    let Some(end) = bytes.windows(2).position(|w| w == b"\r\n") else { return Ok(None) };
    // An empty line (`\r\n` where a type byte belongs) is no reply.
    let (Some(&kind), Some(line)) = (bytes.first(), bytes.get(1..end)) else {
        return Err("an empty line where a reply belongs".into());
    };
    let text = || String::from_utf8_lossy(line).into_owned();
    let number = || text().parse::<i64>().map_err(|_| format!("bad number in reply: {:?}", text()));
    let after = end + 2;
    let done = |reply: Reply| Ok(Some((reply, after)));
    match kind {
        b'+' => done(Reply::Simple(text())),
        b'-' => done(Reply::Error(text())),
        b':' => done(Reply::Integer(number()?)),
        b'_' => done(Reply::Null),
        b',' => done(Reply::Double(text())),
        b'(' => done(Reply::BigNumber(text())),
        b'#' => match line {
            b"t" => done(Reply::Boolean(true)),
            b"f" => done(Reply::Boolean(false)),
            _ => Err(format!("bad boolean in reply: {:?}", text())),
        },
        b'$' | b'=' | b'!' => {
            let length = number()?;
            if length < 0 {
                return done(Reply::Bulk(None));
            }
            let length = length as usize;
            let data = match bytes.get(after..after.saturating_add(length).saturating_add(2)) {
                Some(data) if data.ends_with(b"\r\n") => &data[..length],
                Some(_) => return Err("bulk reply not terminated by CRLF".into()),
                None => return Ok(None),
            };
            let used = after + length + 2;
            let reply = match kind {
                b'$' => Reply::bulk(data),
                b'!' => Reply::Error(String::from_utf8_lossy(data).into_owned()),
                _ => match data {
                    [a, b, c, b':', text @ ..] => Reply::Verbatim {
                        format: String::from_utf8_lossy(&[*a, *b, *c]).into_owned(),
                        text: text.to_vec(),
                    },
                    _ => return Err("verbatim string without a format".into()),
                },
            };
            Ok(Some((reply, used)))
        }
        b'*' | b'~' | b'>' | b'%' | b'|' => {
            let count = number()?;
            if count < 0 {
                return done(Reply::Array(None));
            }
            let elements = if matches!(kind, b'%' | b'|') { count.saturating_mul(2) } else { count };
            let mut items = Vec::new();
            let mut used = after;
            for _ in 0..elements {
                match decode_at(&bytes[used..], depth + 1)? {
                    Some((item, n)) => {
                        items.push(item);
                        used += n;
                    }
                    None => return Ok(None),
                }
            }
            let reply = match kind {
                b'*' => Reply::Array(Some(items)),
                b'~' => Reply::Set(items),
                b'>' => Reply::Push(items),
                b'%' => Reply::Map(pairs(items)),
                _ => {
                    return Ok(decode_at(&bytes[used..], depth + 1)?.map(|(reply, n)| (reply, used + n)));
                }
            };
            Ok(Some((reply, used)))
        }
        other => Err(format!("unknown reply type byte {other:#04x}")),
    }
}

fn pairs(items: Vec<Reply>) -> Vec<(Reply, Reply)> {
    let mut items = items.into_iter();
    let mut pairs = Vec::with_capacity(items.len() / 2);
    while let (Some(key), Some(value)) = (items.next(), items.next()) {
        pairs.push((key, value));
    }
    pairs
}

/// Simple strings and errors cannot hold CR or LF; they are replaced by
/// spaces so a reply never breaks the framing.
fn line(out: &mut Vec<u8>, prefix: u8, text: &[u8]) {
    out.push(prefix);
    out.extend(text.iter().map(|b| if *b == b'\r' || *b == b'\n' { b' ' } else { *b }));
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_encode_as_resp2() {
        let reply = Reply::Array(Some(vec![
            Reply::ok(),
            Reply::error("ERR no\r\nway"),
            Reply::Integer(-3),
            Reply::bulk("ab"),
            Reply::nil(),
            Reply::Array(None),
        ]));
        assert_eq!(reply.to_bytes(), b"*6\r\n+OK\r\n-ERR no  way\r\n:-3\r\n$2\r\nab\r\n$-1\r\n*-1\r\n");
    }

    #[test]
    fn decode_reads_back_what_encode_wrote_and_waits_for_missing_bytes() {
        let reply = Reply::Array(Some(vec![
            Reply::ok(),
            Reply::error("ERR no"),
            Reply::Integer(-3),
            Reply::bulk("a\r\nb"),
            Reply::nil(),
            Reply::Array(Some(vec![Reply::Array(None)])),
        ]));
        let bytes = reply.to_bytes();
        assert_eq!(decode(&bytes), Ok(Some((reply, bytes.len()))));
        let mut command = Vec::new();
        encode_command(&["SET", "k", ""], &mut command);
        assert_eq!(command, b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n");
        for cut in 0..bytes.len() {
            assert_eq!(decode(&bytes[..cut]), Ok(None), "cut at {cut}");
        }
        assert!(decode(b"$3\r\nabcde").is_err());
        assert!(decode(b"?\r\n").is_err());
        assert_eq!(decode(b"$99999999999\r\n"), Ok(None), "no allocation of a claimed length");
    }

    /// Whatever a hostile server answers, decoding gives an error or a
    /// reply, never a panic (an empty line once sliced `bytes[1..0]`).
    #[test]
    fn hostile_replies_never_panic_the_decoder() {
        assert!(decode(b"\r\n").is_err());
        assert!(decode(b"*1\r\n\r\n").is_err());
        assert!(decode(b"*2\r\n+OK\r\n\r\n").is_err());
        let mut rng = crate::raft::SplitMix64::new(7);
        let alphabet = b"\r\n+-:$*%~>_,#(=!|0123456789x";
        for _ in 0..20_000 {
            let length = (rng.next_u64() % 24) as usize;
            let bytes: Vec<u8> =
                (0..length).map(|_| alphabet[(rng.next_u64() % alphabet.len() as u64) as usize]).collect();
            let _ = decode(&bytes);
        }
    }

    #[test]
    fn resp3_types_encode_and_decode_back() {
        let reply = Reply::Array(Some(vec![
            Reply::Null,
            Reply::Double("1.5".into()),
            Reply::Double("-inf".into()),
            Reply::Boolean(true),
            Reply::Boolean(false),
            Reply::Map(vec![(Reply::bulk("k"), Reply::Integer(1)), (Reply::bulk("m"), Reply::Null)]),
            Reply::Set(vec![Reply::Simple("readonly".into())]),
            Reply::text("a:b\r\n"),
            Reply::BigNumber("12345678901234567890".into()),
            Reply::Push(vec![Reply::bulk("message")]),
        ]));
        let bytes = reply.to_bytes();
        assert_eq!(
            bytes,
            b"*10\r\n_\r\n,1.5\r\n,-inf\r\n#t\r\n#f\r\n%2\r\n$1\r\nk\r\n:1\r\n$1\r\nm\r\n_\r\n\
              ~1\r\n+readonly\r\n=9\r\ntxt:a:b\r\n\r\n(12345678901234567890\r\n>1\r\n$7\r\nmessage\r\n"
        );
        assert_eq!(decode(&bytes), Ok(Some((reply, bytes.len()))));
        for cut in 0..bytes.len() {
            assert_eq!(decode(&bytes[..cut]), Ok(None), "cut at {cut}");
        }
        let with_attribute = b"|1\r\n+key\r\n+value\r\n:7\r\n";
        assert_eq!(decode(with_attribute), Ok(Some((Reply::Integer(7), with_attribute.len()))));
    }

    #[test]
    fn each_protocol_gets_the_shapes_redis_gives_it() {
        let rich = Reply::Array(Some(vec![
            Reply::nil(),
            Reply::Array(None),
            Reply::Null,
            Reply::Double("2.5".into()),
            Reply::Boolean(true),
            Reply::Map(vec![(Reply::bulk("proto"), Reply::Integer(3))]),
            Reply::Set(vec![Reply::bulk("x")]),
            Reply::text("# Server"),
        ]));
        let resp2 = rich.clone().for_protocol(Protocol::Resp2);
        assert_eq!(
            resp2,
            Reply::Array(Some(vec![
                Reply::nil(),
                Reply::Array(None),
                Reply::nil(),
                Reply::bulk("2.5"),
                Reply::Integer(1),
                Reply::Array(Some(vec![Reply::bulk("proto"), Reply::Integer(3)])),
                Reply::Array(Some(vec![Reply::bulk("x")])),
                Reply::bulk("# Server"),
            ]))
        );
        let resp3 = rich.for_protocol(Protocol::Resp3);
        let Reply::Array(Some(items)) = &resp3 else { panic!("an array stays an array") };
        assert_eq!(&items[..3], &[Reply::Null, Reply::Null, Reply::Null]);
        assert_eq!(items[5], Reply::Map(vec![(Reply::bulk("proto"), Reply::Integer(3))]));
    }
}
