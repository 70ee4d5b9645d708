//! Joining a cluster: before a new node opens its data directory it asks a
//! member (any member; followers forward) to record it, with `CLUSTER JOIN
//! name raft_addr client_addr [TLS tls_client_addr] [proof]` over the
//! ordinary client protocol, and learns its number and the cluster id from
//! the reply. The leader then adds it as a learner and streams it the
//! state.
//!
//! With TLS configured the join speaks TLS, so `--leaderaddr` must name a
//! member's TLS client port: this node presents its own certificate and
//! accepts only a member's certificate from the CA (a node with a
//! certificate from another CA is refused at the handshake).
//!
//! When the cluster requires authentication, the new node first sends
//! `AUTH [user] password` on the same connection, from `--masteruser` and
//! `--masterauth` (Redis's names for a replica's credentials), and the
//! user must be allowed `CLUSTER JOIN` (`@admin`). A refused AUTH or a
//! NOPERM stops the join at once: retrying cannot fix a credential.
//!
//! Blocking `std::net` on purpose: nothing else runs on the executor yet.
//! Retried until it succeeds, the time is up, a signal arrives, or the
//! cluster refuses for a reason retrying cannot fix (a name clash).

use crate::node::handshake::ClusterSecret;
use crate::node::{join_answer, join_command, JoinAnswer, MemberInfo, Password};
use crate::protocol::reply::{decode, encode_command};
use crate::protocol::Reply;
use crate::raft::NodeId;
use crate::runtime::server::Layout;
use crate::runtime::tls::TlsSettings;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
const RETRY_PAUSE: Duration = Duration::from_millis(500);
/// AUTH and CLUSTER JOIN answer in a few bytes; whatever sends more is
/// not a member.
const REPLY_BYTES_MAX: usize = 1 << 20;

/// What a joining node authenticates with (`--masteruser`, `--masterauth`).
#[derive(Clone, Debug)]
pub struct JoinAuth {
    /// `None`: the default user (`AUTH password`).
    pub user: Option<String>,
    pub password: Password,
}

pub fn join(
    via: &str,
    me: &MemberInfo,
    secret: Option<&ClusterSecret>,
    auth: Option<&JoinAuth>,
    timeout: Duration,
    stop: &AtomicBool,
    tls: Option<&TlsSettings>,
) -> Result<(NodeId, u64, Layout), String> {
    let deadline = Instant::now() + timeout;
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        match attempt(via, me, secret, auth, tls).map(|reply| join_answer(&reply)) {
            Ok(JoinAnswer::Joined { id, cluster_id, shards, replicas }) => {
                tracing::info!(
                    via,
                    node = id.0,
                    cluster = format!("{cluster_id:016x}"),
                    shards,
                    replicas,
                    "joined the cluster"
                );
                return Ok((id, cluster_id, Layout { shards, replicas }));
            }
            Ok(JoinAnswer::Retry(e)) => {
                tracing::info!(via, attempts, reply = %e, "join not accepted yet; retrying")
            }
            Ok(JoinAnswer::Refused(e)) => return Err(format!("join through {via} refused: {e}")),
            Err(e) => {
                tracing::info!(via, attempts, error = %e, "cannot reach the member to join through; retrying")
            }
        }
        if Instant::now() + RETRY_PAUSE > deadline {
            return Err(format!("could not join through {via} within {timeout:?} ({attempts} attempts)"));
        }
        if stop.load(Ordering::Relaxed) {
            return Err("stopped by a signal while joining".into());
        }
        std::thread::sleep(RETRY_PAUSE);
    }
}

/// One connection (TLS when configured): AUTH if configured (its error,
/// if any, is the answer), then CLUSTER JOIN.
fn attempt(
    via: &str,
    me: &MemberInfo,
    secret: Option<&ClusterSecret>,
    auth: Option<&JoinAuth>,
    tls: Option<&TlsSettings>,
) -> Result<Reply, String> {
    let address = via
        .to_socket_addrs()
        .map_err(|e| format!("{via}: {e}"))?
        .next()
        .ok_or_else(|| format!("{via}: no address"))?;
    let tcp = TcpStream::connect_timeout(&address, ATTEMPT_TIMEOUT).map_err(|e| e.to_string())?;
    tcp.set_read_timeout(Some(ATTEMPT_TIMEOUT)).map_err(|e| e.to_string())?;
    tcp.set_write_timeout(Some(ATTEMPT_TIMEOUT)).map_err(|e| e.to_string())?;
    let mut stream: Box<dyn ReadWrite> = match tls {
        None => Box::new(tcp),
        Some(tls) => {
            let connection =
                rustls::ClientConnection::new(tls.join_config(), TlsSettings::join_server_name())
                    .map_err(|e| format!("TLS: {e}"))?;
            Box::new(rustls::StreamOwned::new(connection, tcp))
        }
    };
    if let Some(auth) = auth {
        let mut command = vec![b"AUTH".to_vec()];
        command.extend(auth.user.as_ref().map(|user| user.as_bytes().to_vec()));
        command.push(auth.password.expose().to_vec());
        let reply = call(&mut *stream, &command)?;
        if matches!(reply, Reply::Error(_)) {
            return Ok(reply);
        }
    }
    call(&mut *stream, &join_command(me, secret))
}

/// Sends one command and reads its reply.
fn call(stream: &mut dyn ReadWrite, command: &[Vec<u8>]) -> Result<Reply, String> {
    let mut request = Vec::new();
    encode_command(command, &mut request);
    stream.write_all(&request).and_then(|()| stream.flush()).map_err(|e| e.to_string())?;
    read_reply(stream, REPLY_BYTES_MAX, ": not a cashe member")
}

/// Reads one reply of at most `bytes_max` bytes (a longer one is an error
/// ending with `over`), for a client that sends one command at a time
/// (nothing after the reply is kept): the join, and `cashe backup`'s
/// small requests.
pub(crate) fn read_reply(
    stream: &mut (impl Read + ?Sized),
    bytes_max: usize,
    over: &str,
) -> Result<Reply, String> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some((reply, _)) = decode(&buffer)? {
            return Ok(reply);
        }
        if buffer.len() > bytes_max {
            return Err(format!("a reply of over {bytes_max} bytes{over}"));
        }
        let read = stream.read(&mut chunk).map_err(|e| e.to_string())?;
        if read == 0 {
            return Err("connection closed before the reply".into());
        }
        buffer.extend_from_slice(&chunk[..read]);
    }
}

/// A plain or TLS connection.
trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}
