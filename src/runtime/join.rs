//! Joining a cluster: before a new node opens its data directory it asks a
//! member (any member; followers forward) to record it, with
//! `CLUSTER JOIN name raft_addr client_addr` over the ordinary client
//! protocol, and learns its number and the cluster id from the reply. The
//! leader then adds it as a learner and streams it the state.
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

use crate::node::{join_answer, join_command, JoinAnswer, MemberInfo, Password};
use crate::protocol::reply::{decode, encode_command};
use crate::protocol::Reply;
use crate::raft::NodeId;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
const RETRY_PAUSE: Duration = Duration::from_millis(500);

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
    auth: Option<&JoinAuth>,
    timeout: Duration,
    stop: &AtomicBool,
) -> Result<(NodeId, u64), String> {
    let deadline = Instant::now() + timeout;
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        match attempt(via, me, auth).map(|reply| join_answer(&reply)) {
            Ok(JoinAnswer::Joined { id, cluster_id }) => {
                tracing::info!(
                    via,
                    node = id.0,
                    cluster = format!("{cluster_id:016x}"),
                    "joined the cluster"
                );
                return Ok((id, cluster_id));
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

/// One connection: AUTH if configured (its error, if any, is the answer),
/// then CLUSTER JOIN.
fn attempt(via: &str, me: &MemberInfo, auth: Option<&JoinAuth>) -> Result<Reply, String> {
    let address = via
        .to_socket_addrs()
        .map_err(|e| format!("{via}: {e}"))?
        .next()
        .ok_or_else(|| format!("{via}: no address"))?;
    let mut stream = TcpStream::connect_timeout(&address, ATTEMPT_TIMEOUT).map_err(|e| e.to_string())?;
    stream.set_read_timeout(Some(ATTEMPT_TIMEOUT)).map_err(|e| e.to_string())?;
    if let Some(auth) = auth {
        let mut command = vec![b"AUTH".to_vec()];
        command.extend(auth.user.as_ref().map(|user| user.as_bytes().to_vec()));
        command.push(auth.password.expose().to_vec());
        let reply = call(&mut stream, &command)?;
        if matches!(reply, Reply::Error(_)) {
            return Ok(reply);
        }
    }
    call(&mut stream, &join_command(me))
}

/// Sends one command and reads its reply.
fn call(stream: &mut TcpStream, command: &[Vec<u8>]) -> Result<Reply, String> {
    let mut request = Vec::new();
    encode_command(command, &mut request);
    stream.write_all(&request).map_err(|e| e.to_string())?;
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some((reply, _)) = decode(&buffer)? {
            return Ok(reply);
        }
        let read = stream.read(&mut chunk).map_err(|e| e.to_string())?;
        if read == 0 {
            return Err("connection closed before the reply".into());
        }
        buffer.extend_from_slice(&chunk[..read]);
    }
}
