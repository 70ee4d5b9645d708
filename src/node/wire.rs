//! The peer wire: what one node writes to another on a TCP connection,
//! shared by the production runtime and the simulator.
//!
//! Every frame is the shared frame codec (`u32 length | u32 crc32 |
//! payload`, see `crate::frame`) around a postcard [`PeerFrame`]. The first
//! frame of a connection is `Hello`, naming the cluster and the sender; the
//! receiver closes a connection from another cluster or wire version, and
//! on any frame that fails its checksum or does not decode.

use super::NodeMessage;
use crate::frame;
use crate::raft::NodeId;
use serde::{Deserialize, Serialize};

pub const WIRE_VERSION: u32 = 3;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PeerFrame {
    Hello {
        version: u32,
        cluster_id: u64,
        from: NodeId,
        raft_addr: String,
    },
    Message(NodeMessage),
    /// Sent on an idle link, so that the receiver can tell a quiet link from
    /// a dead one (a connection that hears nothing for a while is closed,
    /// and its writer reconnects).
    Keepalive,
}

/// A link with nothing to send writes a `Keepalive` this often.
pub const KEEPALIVE_MS: u64 = 200;
/// A reader that hears nothing for this long closes the connection.
pub const IDLE_CLOSE_MS: u64 = 2_000;

/// Appends `frame` to `out`. A message too large for one frame is an
/// error and nothing is written: the caller drops it (a Raft message never
/// is one, by the bounds in `raft::config`; a forward or its reply can be,
/// and the request it carried times out).
pub fn encode(frame: &PeerFrame, out: &mut Vec<u8>) -> Result<(), frame::FrameTooLarge> {
    let payload = postcard::to_stdvec(frame).expect("in-memory encoding cannot fail");
    frame::encode(&payload, out)
}

/// [`encode`] for the shells' peer writers: a frame too large is logged
/// and dropped, as the writer has no one to hand the error to.
pub fn encode_or_drop(frame: &PeerFrame, out: &mut Vec<u8>) {
    if let Err(error) = encode(frame, out) {
        tracing::warn!(%error, "dropping a peer message larger than one frame");
    }
}

/// Reads one frame from the front of `bytes`: `Ok(None)` when more bytes
/// are needed, else the frame and the bytes it took. An error means the
/// connection must be closed.
pub fn decode(bytes: &[u8]) -> Result<Option<(PeerFrame, usize)>, String> {
    match frame::decode(bytes) {
        Ok((payload, used)) => match postcard::from_bytes(payload) {
            Ok(frame) => Ok(Some((frame, used))),
            Err(e) => Err(format!("undecodable peer frame: {e}")),
        },
        Err(frame::FrameError::Incomplete { .. }) => Ok(None),
        Err(e) => Err(format!("bad peer frame: {e}")),
    }
}

/// What a peer reader does with each decoded frame.
#[derive(Debug, PartialEq, Eq)]
pub enum Received {
    /// A valid `Hello`: messages on this connection come from `from`.
    Hello {
        from: NodeId,
        raft_addr: String,
    },
    Message {
        from: NodeId,
        message: NodeMessage,
    },
    /// Nothing to deliver; the link is alive.
    Keepalive,
}

/// Checks a frame against the connection's handshake state (`from`, set
/// by the first `Hello`); an error means close the connection.
pub fn receive(frame: PeerFrame, from: Option<NodeId>, cluster_id: u64) -> Result<Received, String> {
    match (frame, from) {
        (PeerFrame::Hello { version, cluster_id: theirs, from, raft_addr }, None) => {
            if version != WIRE_VERSION || theirs != cluster_id {
                return Err(format!("peer of cluster {theirs:016x}, wire version {version}: not ours"));
            }
            Ok(Received::Hello { from, raft_addr })
        }
        (PeerFrame::Message(message), Some(from)) => Ok(Received::Message { from, message }),
        (PeerFrame::Keepalive, Some(_)) => Ok(Received::Keepalive),
        (PeerFrame::Hello { .. }, Some(_)) => Err("a second Hello on one connection".into()),
        (PeerFrame::Message(_) | PeerFrame::Keepalive, None) => Err("a message before the Hello".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_the_handshake_is_enforced() {
        let hello = PeerFrame::Hello {
            version: WIRE_VERSION,
            cluster_id: 7,
            from: NodeId(2),
            raft_addr: "a:1".into(),
        };
        let message = PeerFrame::Message(NodeMessage::Removed);
        let mut bytes = Vec::new();
        encode(&hello, &mut bytes).unwrap();
        encode(&message, &mut bytes).unwrap();
        let (first, used) = decode(&bytes).unwrap().unwrap();
        assert_eq!(first, hello);
        assert_eq!(decode(&bytes[..used - 1]), Ok(None));
        let (second, _) = decode(&bytes[used..]).unwrap().unwrap();
        assert_eq!(second, message);
        assert_eq!(
            receive(hello.clone(), None, 7),
            Ok(Received::Hello { from: NodeId(2), raft_addr: "a:1".into() })
        );
        assert!(receive(hello.clone(), None, 8).is_err(), "another cluster");
        assert!(receive(hello, Some(NodeId(2)), 7).is_err(), "a second hello");
        assert!(receive(message.clone(), None, 7).is_err(), "no hello yet");
        assert_eq!(
            receive(message, Some(NodeId(2)), 7),
            Ok(Received::Message { from: NodeId(2), message: NodeMessage::Removed })
        );
        let mut corrupt = bytes.clone();
        corrupt[10] ^= 1;
        assert!(decode(&corrupt).is_err());
    }
}
