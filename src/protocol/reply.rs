//! Replies as values, and their RESP2 encoding.

/// One RESP2 reply.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reply {
    /// `+OK\r\n`
    Simple(String),
    /// `-ERR message\r\n`; the text includes the prefix word (`ERR`, `WRONGTYPE`, …).
    Error(String),
    /// `:42\r\n`
    Integer(i64),
    /// `$3\r\nfoo\r\n`, or `$-1\r\n` for `None`.
    Bulk(Option<Vec<u8>>),
    /// `*2\r\n…`, or `*-1\r\n` for `None`.
    Array(Option<Vec<Reply>>),
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

    /// Appends the RESP2 encoding to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Reply::Simple(text) => line(out, b'+', text.as_bytes()),
            Reply::Error(text) => line(out, b'-', text.as_bytes()),
            Reply::Integer(n) => line(out, b':', n.to_string().as_bytes()),
            Reply::Bulk(None) => out.extend_from_slice(b"$-1\r\n"),
            Reply::Bulk(Some(bytes)) => {
                line(out, b'$', bytes.len().to_string().as_bytes());
                out.extend_from_slice(bytes);
                out.extend_from_slice(b"\r\n");
            }
            Reply::Array(None) => out.extend_from_slice(b"*-1\r\n"),
            Reply::Array(Some(items)) => {
                line(out, b'*', items.len().to_string().as_bytes());
                for item in items {
                    item.encode(out);
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

/// Reads one RESP2 reply from the front of `bytes` (the client side of the
/// protocol: the join handshake, tests, benchmarks). `Ok(None)` means more
/// bytes are needed; otherwise the reply and the bytes it took. Claimed
/// lengths are never allocated ahead of the bytes that hold them.
pub fn decode(bytes: &[u8]) -> Result<Option<(Reply, usize)>, String> {
    decode_at(bytes, 0)
}

fn decode_at(bytes: &[u8], depth: usize) -> Result<Option<(Reply, usize)>, String> {
    if depth > DECODE_DEPTH_MAX {
        return Err("reply nested too deeply".into());
    }
    let Some(end) = bytes.windows(2).position(|w| w == b"\r\n") else { return Ok(None) };
    let (kind, line) = (bytes.first().copied().unwrap_or_default(), &bytes[1..end]);
    let text = || String::from_utf8_lossy(line).into_owned();
    let number = || text().parse::<i64>().map_err(|_| format!("bad number in reply: {:?}", text()));
    let after = end + 2;
    match kind {
        b'+' => Ok(Some((Reply::Simple(text()), after))),
        b'-' => Ok(Some((Reply::Error(text()), after))),
        b':' => Ok(Some((Reply::Integer(number()?), after))),
        b'$' => {
            let length = number()?;
            if length < 0 {
                return Ok(Some((Reply::Bulk(None), after)));
            }
            let length = length as usize;
            match bytes.get(after..after.saturating_add(length).saturating_add(2)) {
                Some(data) if data.ends_with(b"\r\n") => {
                    Ok(Some((Reply::bulk(&data[..length]), after + length + 2)))
                }
                Some(_) => Err("bulk reply not terminated by CRLF".into()),
                None => Ok(None),
            }
        }
        b'*' => {
            let count = number()?;
            if count < 0 {
                return Ok(Some((Reply::Array(None), after)));
            }
            let mut items = Vec::new();
            let mut used = after;
            for _ in 0..count {
                match decode_at(&bytes[used..], depth + 1)? {
                    Some((item, n)) => {
                        items.push(item);
                        used += n;
                    }
                    None => return Ok(None),
                }
            }
            Ok(Some((Reply::Array(Some(items)), used)))
        }
        other => Err(format!("unknown reply type byte {other:#04x}")),
    }
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
}
