//! The peer wire and peer connections.
//!
//! Each node opens one outbound TCP connection to every peer it has
//! something to say to and only writes on it; it only reads on the
//! connections peers opened to it. Every frame is the shared frame codec
//! (`u32 length | u32 crc32 | payload`) around a postcard [`PeerFrame`]; the
//! first frame of a connection is a `Hello` naming the cluster and the
//! sender, and a connection from another cluster or wire version is closed.
//! A lost connection loses the messages queued on it: Raft retransmits.
//!
//! With TLS configured both directions are mutual TLS, and the certificate
//! is bound to the member id (see `super::tls`). Under a cluster secret
//! (`--cluster-secret`) every connection then goes through the
//! challenge-response of `node::handshake` before any frame: the acceptor
//! reads exactly one fixed-size proof from a stranger, within
//! [`HANDSHAKE_TIMEOUT`], and the `Hello` must name the member proven.
//! Refusals are logged with the remote address (sparingly: the first,
//! then every power of two).

use super::mailbox::Mailbox;
use super::server::Event;
use super::tls::{self, Stream, TlsSettings};
use super::Sparse;
use crate::node::handshake::{self, ClusterSecret, Link, NONCE_BYTES};
use crate::node::wire::{self, Received};
use crate::node::{GroupId, NodeMessage};
use crate::raft::NodeId;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

pub use crate::node::wire::{encode_or_drop, PeerFrame, WIRE_VERSION};

/// Bytes written to a peer socket in one go (many small messages batch).
const WRITE_BATCH_BYTES: usize = 1 << 20;
/// Messages queued for one peer before new ones are dropped.
pub const PEER_QUEUE_MAX: usize = 4096;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
const BACKOFF_MIN: Duration = Duration::from_millis(20);
const BACKOFF_MAX: Duration = Duration::from_secs(1);
/// A peer that has not finished the handshake by then is dropped.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(2);

/// What a node proves to its peers and checks of them.
pub struct PeerSecurity {
    pub cluster_id: u64,
    /// This node's member number, which its proofs name.
    pub id: NodeId,
    pub secret: Option<ClusterSecret>,
}

fn nonce() -> [u8; NONCE_BYTES] {
    use ring::rand::SecureRandom;
    let mut nonce = [0u8; NONCE_BYTES];
    ring::rand::SystemRandom::new().fill(&mut nonce).expect("the system's random source works");
    nonce
}

thread_local! {
    static REFUSED: Sparse = const { Sparse::new() };
}

/// Logs a refused peer connection: the first, then every power of two.
pub(super) fn log_refused(remote: &str, reason: &str) {
    if let Some(refused) = REFUSED.with(Sparse::hit) {
        tracing::warn!(%remote, reason, refused, "refused a peer connection");
    }
}

/// Runs a handshake half within [`HANDSHAKE_TIMEOUT`] in all (the
/// sockets' read timeouts only bound each read: a stranger trickling one
/// byte at a time would otherwise hold a connection slot for minutes).
async fn within_handshake_time<T>(
    half: impl std::future::Future<Output = Result<T, String>>,
) -> Result<T, String> {
    let late = async {
        glommio::timer::sleep(HANDSHAKE_TIMEOUT).await;
        Err(format!("the cluster-secret handshake took over {HANDSHAKE_TIMEOUT:?}"))
    };
    futures_lite::future::or(half, late).await
}

/// The connector's half of the handshake; `Err` closes the connection.
async fn prove(stream: &mut Stream, security: &PeerSecurity, to: NodeId) -> Result<(), String> {
    let Some(secret) = &security.secret else { return Ok(()) };
    let _ = stream.tcp().set_read_timeout(Some(HANDSHAKE_TIMEOUT));
    let mut challenge = [0u8; handshake::CHALLENGE_BYTES];
    stream.read_exact(&mut challenge).await.map_err(|e| {
        format!("no cluster-secret challenge from the peer ({e}); is it started without --cluster-secret?")
    })?;
    let answer =
        handshake::answer(secret, &challenge, &nonce(), security.cluster_id, Link { from: security.id, to })?;
    stream.write_all(&answer.proof).await.map_err(|e| e.to_string())?;
    stream.flush().await.map_err(|e| e.to_string())?;
    let mut accept = [0u8; handshake::ACCEPT_BYTES];
    stream.read_exact(&mut accept).await.map_err(|e| format!("the peer refused our proof ({e})"))?;
    answer.check_accept(&accept)
}

/// The acceptor's half: the member the peer proved to be (`None` without
/// a secret: the `Hello` says who it is).
async fn challenge(stream: &mut Stream, security: &PeerSecurity) -> Result<Option<NodeId>, String> {
    let Some(secret) = &security.secret else { return Ok(None) };
    let _ = stream.tcp().set_read_timeout(Some(HANDSHAKE_TIMEOUT));
    let _ = stream.tcp().set_write_timeout(Some(HANDSHAKE_TIMEOUT));
    let nonce = nonce();
    stream.write_all(&handshake::challenge(&nonce)).await.map_err(|e| e.to_string())?;
    stream.flush().await.map_err(|e| e.to_string())?;
    let mut proof = [0u8; handshake::PROOF_BYTES];
    stream.read_exact(&mut proof).await.map_err(|e| format!("no cluster-secret proof ({e})"))?;
    let (from, accept) = handshake::check_proof(secret, &nonce, &proof, security.cluster_id, security.id)?;
    stream.write_all(&accept).await.map_err(|e| e.to_string())?;
    stream.flush().await.map_err(|e| e.to_string())?;
    Ok(Some(from))
}

/// Where each peer's Raft listener is: from the replicated directory, and
/// from the `Hello` of peers that connected to us (a node that just joined
/// must answer the leader before its directory is replicated).
#[derive(Default)]
pub struct AddressBook {
    pub directory: BTreeMap<NodeId, String>,
    pub learned: BTreeMap<NodeId, String>,
    /// Member names from the directory, which peer certificates must carry.
    pub names: BTreeMap<NodeId, String>,
}

impl AddressBook {
    fn get(&self, id: NodeId) -> Option<String> {
        self.directory.get(&id).or_else(|| self.learned.get(&id)).cloned()
    }
}

/// The outbound link to one peer: a queue and the task that drains it.
pub struct PeerLink {
    pub queue: Mailbox<(GroupId, NodeMessage)>,
    pub dropped: u64,
}

impl PeerLink {
    pub fn start(
        to: NodeId,
        book: Rc<RefCell<AddressBook>>,
        hello: Vec<u8>,
        tls: Option<Arc<TlsSettings>>,
        security: Rc<PeerSecurity>,
    ) -> PeerLink {
        let queue = Mailbox::new(PEER_QUEUE_MAX);
        glommio::spawn_local(outbound(to, queue.clone(), book, hello, tls, security)).detach();
        PeerLink { queue, dropped: 0 }
    }

    pub fn send(&mut self, group: GroupId, message: NodeMessage) {
        if self.queue.try_push((group, message)).is_err() {
            self.dropped += 1;
        }
    }
}

async fn outbound(
    to: NodeId,
    queue: Mailbox<(GroupId, NodeMessage)>,
    book: Rc<RefCell<AddressBook>>,
    hello: Vec<u8>,
    tls: Option<Arc<TlsSettings>>,
    security: Rc<PeerSecurity>,
) {
    let mut backoff = BACKOFF_MIN;
    let mut failures = 0u64;
    loop {
        let address = book.borrow().get(to);
        let connected = match &address {
            Some(address) => TcpStream::connect_timeout(address.as_str(), CONNECT_TIMEOUT).await,
            None => Err(glommio::GlommioError::IoError(std::io::Error::other("address unknown"))),
        };
        let tcp = match connected {
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
        let _ = tcp.set_nodelay(true);
        // A peer that stops reading must not hold this link forever.
        let _ = tcp.set_write_timeout(Some(Duration::from_millis(wire::IDLE_CLOSE_MS)));
        let names = book.borrow().names.clone();
        let connected = match tls::connect_peer(tcp, tls.as_deref(), to, &names).await {
            Ok(mut stream) => within_handshake_time(prove(&mut stream, &security, to)).await.map(|()| stream),
            Err(e) => Err(e),
        };
        let mut stream = match connected {
            Ok(stream) => stream,
            Err(e) => {
                // Backs off as an unreachable peer does, not from the start.
                failures += 1;
                if failures == 1 || failures.is_power_of_two() {
                    tracing::warn!(peer = %to, error = %e, failures, "refused to link to a peer; retrying");
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
        if stream.write_all(&hello).await.is_err() || stream.flush().await.is_err() {
            continue;
        }
        let mut buffer = Vec::new();
        let keepalive = Duration::from_millis(wire::KEEPALIVE_MS);
        loop {
            let next = async { Some(queue.take_all().await) };
            let idle = async {
                glommio::timer::sleep(keepalive).await;
                None
            };
            buffer.clear();
            match futures_lite::future::or(next, idle).await {
                Some(messages) => {
                    for (group, message) in messages {
                        encode_or_drop(&PeerFrame::message(group, message), &mut buffer);
                    }
                }
                None => {
                    encode_or_drop(&PeerFrame::Keepalive, &mut buffer);
                }
            }
            let mut written = Ok(());
            for piece in buffer.chunks(WRITE_BATCH_BYTES) {
                written = stream.write_all(piece).await;
                if written.is_err() {
                    break;
                }
            }
            if written.is_ok() {
                written = stream.flush().await;
            }
            if written.is_err() {
                tracing::debug!(peer = %to, "peer connection lost; reconnecting");
                break;
            }
        }
    }
}

/// Reads frames from a peer that connected to us and hands its messages
/// to the server loop. Closes on any bad frame.
pub async fn inbound(
    tcp: TcpStream,
    tls: Option<Arc<TlsSettings>>,
    events: Mailbox<Event>,
    security: Rc<PeerSecurity>,
    book: Rc<RefCell<AddressBook>>,
) {
    let remote = tcp.peer_addr().map(|a| a.to_string()).unwrap_or_default();
    let Some((mut stream, mut identity)) = tls::accept_peer(tcp, tls.as_deref()).await else {
        return;
    };
    let proven = match within_handshake_time(challenge(&mut stream, &security)).await {
        Ok(proven) => proven,
        Err(e) => return log_refused(&remote, &e),
    };
    let cluster_id = security.cluster_id;
    let mut buffer = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    let mut from: Option<NodeId> = None;
    // A link that hears nothing, not even a keepalive, is dead or stalled:
    // closing it makes its writer reconnect.
    let _ = stream.tcp().set_read_timeout(Some(Duration::from_millis(wire::IDLE_CLOSE_MS)));
    loop {
        let read = match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        buffer.extend_from_slice(&chunk[..read]);
        let mut used = 0;
        loop {
            let frame = match wire::decode(&buffer[used..], from) {
                Ok(Some((frame, size))) => {
                    used += size;
                    frame
                }
                Ok(None) => break,
                Err(e) if from.is_none() => return log_refused(&remote, &e),
                Err(e) => {
                    tracing::warn!(%remote, error = %e, "closing a peer connection");
                    return;
                }
            };
            let received = wire::receive(frame, from, cluster_id, proven);
            // With TLS, the certificate must name the member it speaks for.
            let claimed = match &received {
                Ok(Received::Hello { from, .. } | Received::Message { from, .. }) => Some(*from),
                _ => None,
            };
            if let (Some(identity), Some(claimed)) = (identity.as_mut(), claimed) {
                if let Err(e) = identity.admit(claimed, &book.borrow().names) {
                    tracing::warn!(%remote, error = %e, "closing a peer connection");
                    return;
                }
            }
            match received {
                Ok(Received::Hello { from: id, raft_addr }) => {
                    book.borrow_mut().learned.insert(id, raft_addr);
                    from = Some(id);
                }
                Ok(Received::Message { from, group, message }) => {
                    events.push(Event::Peer { from, group, message }).await
                }
                Ok(Received::Keepalive) => {}
                Err(e) if from.is_none() => return log_refused(&remote, &e),
                Err(e) => {
                    tracing::warn!(%remote, error = %e, "closing a peer connection");
                    return;
                }
            }
        }
        buffer.drain(..used);
    }
}
