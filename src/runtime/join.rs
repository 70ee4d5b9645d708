//! Joining a cluster: before a new node opens its data directory it asks a
//! member (any member; followers forward) to record it, with
//! `CLUSTER JOIN name raft_addr client_addr` over the ordinary client
//! protocol, and learns its number and the cluster id from the reply. The
//! leader then adds it as a learner and streams it the state.
//!
//! Blocking `std::net` on purpose: nothing else runs on the executor yet.
//! Retried until it succeeds, the time is up, a signal arrives, or the
//! cluster refuses for a reason retrying cannot fix (a name clash).

use crate::node::MemberInfo;
use crate::protocol::reply::decode;
use crate::protocol::Reply;
use crate::raft::NodeId;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
const RETRY_PAUSE: Duration = Duration::from_millis(500);

/// Errors that mean "not now": no leader, a leader change, a busy cluster.
fn retryable(error: &str) -> bool {
    ["CLUSTERDOWN", "TIMEOUT", "TRYAGAIN"].iter().any(|p| error.starts_with(p))
}

pub fn join(
    via: &str,
    me: &MemberInfo,
    timeout: Duration,
    stop: &AtomicBool,
) -> Result<(NodeId, u64), String> {
    let deadline = Instant::now() + timeout;
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        match attempt(via, me) {
            Ok(Reply::Array(Some(items))) => match items.as_slice() {
                [Reply::Integer(id), Reply::Bulk(Some(cluster))] if *id > 0 => {
                    let cluster = String::from_utf8_lossy(cluster)
                        .parse::<u64>()
                        .map_err(|_| format!("join through {via}: bad cluster id in the reply"))?;
                    tracing::info!(via, node = id, cluster = format!("{cluster:016x}"), "joined the cluster");
                    return Ok((NodeId(*id as u64), cluster));
                }
                _ => return Err(format!("join through {via}: unexpected reply {items:?}")),
            },
            Ok(Reply::Error(e)) if retryable(&e) => {
                tracing::info!(via, attempts, reply = %e, "join not accepted yet; retrying")
            }
            Ok(Reply::Error(e)) => return Err(format!("join through {via} refused: {e}")),
            Ok(other) => return Err(format!("join through {via}: unexpected reply {other:?}")),
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

fn attempt(via: &str, me: &MemberInfo) -> Result<Reply, String> {
    let address = via
        .to_socket_addrs()
        .map_err(|e| format!("{via}: {e}"))?
        .next()
        .ok_or_else(|| format!("{via}: no address"))?;
    let mut stream = TcpStream::connect_timeout(&address, ATTEMPT_TIMEOUT).map_err(|e| e.to_string())?;
    stream.set_read_timeout(Some(ATTEMPT_TIMEOUT)).map_err(|e| e.to_string())?;
    let words = ["CLUSTER", "JOIN", me.name.as_str(), me.raft_addr.as_str(), me.client_addr.as_str()];
    let mut request = format!("*{}\r\n", words.len()).into_bytes();
    for word in words {
        request.extend_from_slice(format!("${}\r\n{word}\r\n", word.len()).as_bytes());
    }
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
