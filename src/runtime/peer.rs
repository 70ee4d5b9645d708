//! The peer wire and peer connections.
//!
//! Each node opens one outbound TCP connection to every peer it has
//! something to say to and only writes on it; it only reads on the
//! connections peers opened to it. Every frame is the shared frame codec
//! (`u32 length | u32 crc32 | payload`) around a postcard [`PeerFrame`]; the
//! first frame of a connection is a `Hello` naming the cluster and the
//! sender, and a connection from another cluster or wire version is closed.
//! A lost connection loses the messages queued on it: Raft retransmits.

use super::mailbox::Mailbox;
use super::server::Event;
use crate::frame;
use crate::node::NodeMessage;
use crate::raft::NodeId;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

pub const WIRE_VERSION: u32 = 1;
/// Bytes written to a peer socket in one go (many small messages batch).
const WRITE_BATCH_BYTES: usize = 1 << 20;
/// Messages queued for one peer before new ones are dropped.
pub const PEER_QUEUE_MAX: usize = 4096;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
const BACKOFF_MIN: Duration = Duration::from_millis(20);
const BACKOFF_MAX: Duration = Duration::from_secs(1);

#[derive(Debug, Serialize, Deserialize)]
pub enum PeerFrame {
    Hello { version: u32, cluster_id: u64, from: NodeId, raft_addr: String },
    Message(NodeMessage),
}

/// Appends `frame` to `out`; a message too large for one frame is dropped
/// (returns false) rather than sent: the sender's Raft retries in smaller
/// pieces or the request times out.
pub fn encode(frame: &PeerFrame, out: &mut Vec<u8>) -> bool {
    let payload = postcard::to_stdvec(frame).expect("in-memory encoding cannot fail");
    if payload.len() > frame::FRAME_PAYLOAD_BYTES_MAX as usize {
        tracing::warn!(bytes = payload.len(), "dropping a peer message larger than one frame");
        return false;
    }
    frame::encode(&payload, out);
    true
}

/// Where each peer's Raft listener is: from the replicated directory, and
/// from the `Hello` of peers that connected to us (a node that just joined
/// must answer the leader before its directory is replicated).
#[derive(Default)]
pub struct AddressBook {
    pub directory: BTreeMap<NodeId, String>,
    pub learned: BTreeMap<NodeId, String>,
}

impl AddressBook {
    fn get(&self, id: NodeId) -> Option<String> {
        self.directory.get(&id).or_else(|| self.learned.get(&id)).cloned()
    }
}

/// The outbound link to one peer: a queue and the task that drains it.
pub struct PeerLink {
    pub queue: Mailbox<NodeMessage>,
    pub dropped: u64,
}

impl PeerLink {
    pub fn start(to: NodeId, book: Rc<RefCell<AddressBook>>, hello: Vec<u8>) -> PeerLink {
        let queue = Mailbox::new(PEER_QUEUE_MAX);
        glommio::spawn_local(outbound(to, queue.clone(), book, hello)).detach();
        PeerLink { queue, dropped: 0 }
    }

    pub fn send(&mut self, message: NodeMessage) {
        if self.queue.try_push(message).is_err() {
            self.dropped += 1;
        }
    }
}

async fn outbound(to: NodeId, queue: Mailbox<NodeMessage>, book: Rc<RefCell<AddressBook>>, hello: Vec<u8>) {
    let mut backoff = BACKOFF_MIN;
    let mut failures = 0u64;
    loop {
        let address = book.borrow().get(to);
        let connected = match &address {
            Some(address) => TcpStream::connect_timeout(address.as_str(), CONNECT_TIMEOUT).await,
            None => Err(glommio::GlommioError::IoError(std::io::Error::other("address unknown"))),
        };
        let mut stream = match connected {
            Ok(stream) => stream,
            Err(e) => {
                failures += 1;
                if failures == 1 || failures.is_power_of_two() {
                    tracing::debug!(peer = %to, address = ?address, error = %e, failures, "cannot reach peer; retrying");
                }
                queue.clear();
                glommio::timer::sleep(backoff).await;
                backoff = (backoff * 2).min(BACKOFF_MAX);
                continue;
            }
        };
        if failures > 0 {
            tracing::info!(peer = %to, address = ?address, "connected to peer");
        }
        failures = 0;
        backoff = BACKOFF_MIN;
        let _ = stream.set_nodelay(true);
        if stream.write_all(&hello).await.is_err() {
            continue;
        }
        let mut buffer = Vec::new();
        loop {
            let messages = queue.take_all().await;
            buffer.clear();
            let mut sent = 0;
            for message in messages {
                encode(&PeerFrame::Message(message), &mut buffer);
                sent += 1;
                if buffer.len() >= WRITE_BATCH_BYTES {
                    if stream.write_all(&buffer).await.is_err() {
                        break;
                    }
                    buffer.clear();
                }
            }
            if sent == 0 || stream.write_all(&buffer).await.is_err() {
                tracing::debug!(peer = %to, "peer connection lost; reconnecting");
                break;
            }
        }
    }
}

/// Reads frames from a peer that connected to us and hands its messages
/// to the server loop. Closes on any bad frame.
pub async fn inbound(
    mut stream: TcpStream,
    events: Mailbox<Event>,
    cluster_id: u64,
    book: Rc<RefCell<AddressBook>>,
) {
    let remote = stream.peer_addr().map(|a| a.to_string()).unwrap_or_default();
    let mut buffer = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    let mut from: Option<NodeId> = None;
    loop {
        let read = match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        buffer.extend_from_slice(&chunk[..read]);
        let mut used = 0;
        loop {
            let (payload, size) = match frame::decode(&buffer[used..]) {
                Ok(decoded) => decoded,
                Err(frame::FrameError::Incomplete { .. }) => break,
                Err(e) => {
                    tracing::warn!(%remote, error = %e, "bad frame from a peer; closing the connection");
                    return;
                }
            };
            used += size;
            let decoded: Result<PeerFrame, _> = postcard::from_bytes(payload);
            match (decoded, from) {
                (Ok(PeerFrame::Hello { version, cluster_id: theirs, from: id, raft_addr }), None) => {
                    if version != WIRE_VERSION || theirs != cluster_id {
                        tracing::warn!(%remote, version, cluster = theirs, "peer of another cluster or wire version; closing");
                        return;
                    }
                    book.borrow_mut().learned.insert(id, raft_addr);
                    from = Some(id);
                }
                (Ok(PeerFrame::Message(message)), Some(id)) => {
                    events.push(Event::Peer { from: id, message }).await
                }
                (Ok(_), _) => {
                    tracing::warn!(%remote, "peer broke the handshake order; closing");
                    return;
                }
                (Err(e), _) => {
                    tracing::warn!(%remote, error = %e, "undecodable peer message; closing");
                    return;
                }
            }
        }
        buffer.drain(..used);
    }
}
