//! One Redis client connection.
//!
//! Read what is there, parse every whole command in it, hand them to the
//! server loop in order, wait for their replies (the node releases them in
//! command order), write all replies in one go, repeat. Pipelined commands
//! thus share a loop turn and an fsync. Limits: the parser's (value, key,
//! argument count, inline length) and a cap on the bytes one connection may
//! hold unparsed; over it the client gets an error and is closed. On the
//! TLS port the connection is first a TLS handshake (`super::tls`); a
//! client that fails it is closed without a word.

use super::mailbox::Mailbox;
use super::server::{Event, Shared};
use super::tls::{self, TlsSettings};
use crate::node::ConnId;
use crate::protocol::{Limits, Parser, Reply, Request};
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

const READ_CHUNK_BYTES: usize = 64 * 1024;
/// A connection's buffers shrink back to this once a large command or
/// reply (up to tens of MiB) has gone through, so an idle connection does
/// not keep the memory of its largest value.
const RETAINED_BYTES_MAX: usize = 1 << 20;

enum Slot {
    /// The node answers; `write` marks commands whose latency is recorded,
    /// `logs_in` an AUTH or HELLO (its success authenticates the connection).
    Node { write: bool, logs_in: bool },
    /// Answered here (a rejected or malformed request).
    Local(Reply),
}

#[allow(clippy::too_many_arguments)]
pub async fn serve(
    tcp: TcpStream,
    tls: Option<Arc<TlsSettings>>,
    tls_configured: bool,
    conn: ConnId,
    events: Mailbox<Event>,
    replies: Mailbox<Reply>,
    shared: Arc<Shared>,
    limits: Limits,
    query_bytes_max: usize,
    auth_required: bool,
) {
    let _ = tcp.set_nodelay(true);
    let Some(mut stream) = tls::accept_client(tcp, tls.as_deref()).await else {
        events.push(Event::Closed(conn)).await;
        return;
    };
    let certificate = stream.peer_names();
    let mut parser = Parser::new(limits);
    // Until it logs in, a connection that must gets Redis's small limits
    // and its commands are taken one at a time (an AUTH pipelined with
    // what follows is answered before the rest is parsed, as in Redis).
    let mut authenticated = !auth_required;
    parser.set_unauthenticated(!authenticated);
    let mut buffer: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; READ_CHUNK_BYTES];
    let mut out = Vec::new();
    let mut early: VecDeque<Reply> = VecDeque::new();
    // Whole commands may wait in `buffer` (taken one at a time).
    let mut parse_first = false;
    'connection: loop {
        if !parse_first {
            let read = match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            buffer.extend_from_slice(&chunk[..read]);
        }
        let requests = parser.take_requests(&mut buffer, query_bytes_max);
        parse_first = !authenticated && !requests.items.is_empty() && !buffer.is_empty();
        let close = requests.close;
        let mut slots = Vec::with_capacity(requests.items.len());
        for request in requests.items {
            match request {
                Request::Command(arguments) => {
                    if let Some(refused) =
                        tls::refuse_join(&arguments, tls_configured, tls.as_deref(), certificate.as_ref())
                    {
                        slots.push(Slot::Local(refused));
                        continue;
                    }
                    let write = matches!(crate::kv::classify(&arguments), Ok(crate::kv::Access::Write));
                    let logs_in = !authenticated
                        && (arguments[0].eq_ignore_ascii_case(b"AUTH")
                            || arguments[0].eq_ignore_ascii_case(b"HELLO"));
                    events.push(Event::Client { conn, args: arguments }).await;
                    slots.push(Slot::Node { write, logs_in });
                }
                Request::Answered(reply) => slots.push(Slot::Local(reply)),
            }
        }
        let started = Instant::now();
        for slot in slots {
            match slot {
                Slot::Local(reply) => reply.encode(&mut out),
                Slot::Node { write, logs_in } => {
                    while early.is_empty() {
                        early.extend(replies.take_all().await);
                    }
                    let reply = early.pop_front().expect("waited for it");
                    if write {
                        shared.record_write_latency(started.elapsed());
                    }
                    if logs_in && !matches!(reply, Reply::Error(_)) {
                        authenticated = true;
                        parser.set_unauthenticated(false);
                    }
                    reply.encode(&mut out);
                }
            }
        }
        if stream.write_all(&out).await.is_err() || stream.flush().await.is_err() {
            break 'connection;
        }
        out.clear();
        if out.capacity() > RETAINED_BYTES_MAX {
            out = Vec::new();
        }
        if buffer.capacity() > RETAINED_BYTES_MAX && buffer.len() < RETAINED_BYTES_MAX {
            buffer.shrink_to(READ_CHUNK_BYTES.max(buffer.len()));
        }
        if close {
            break;
        }
    }
    let _ = stream.close().await;
    events.push(Event::Closed(conn)).await;
}
