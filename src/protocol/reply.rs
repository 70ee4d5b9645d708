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
}
