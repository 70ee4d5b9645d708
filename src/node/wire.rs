//! The peer wire: what one node writes to another on a TCP connection,
//! shared by the production runtime and the simulator.
//!
//! Every frame is the shared frame codec (`u32 length | u32 crc32 |
//! payload`, see `crate::frame`) around a postcard [`PeerFrame`]. The first
//! frame of a connection is `Hello`, naming the cluster and the sender; the
//! receiver closes a connection from another cluster or wire version, and
//! on any frame that fails its checksum or does not decode.

use super::router::{GroupId, HOME};
use super::NodeMessage;
use crate::frame;
use crate::raft::{Config, NodeId};
use serde::{Deserialize, Serialize};

/// 6 since members' TLS client addresses (node snapshot format 2 in
/// snapshot data, record version 4's `CASHE.MEMBER … TLS addr` in
/// entries); 5 since lists, sets, sorted sets, blocked clients (key-value
/// format 4, record version 3) and `Reply::Pairs`. Messages of key groups
/// (`PeerFrame::Group`) and `NodeMessage::Beat` did not change it: they
/// are sent only with several shards, which no build before them ran, so
/// a cluster of one shard speaks version 6 unchanged and can be upgraded a
/// member at a time.
pub const WIRE_VERSION: u32 = 6;

// A command the node accepts fits in an entry that an `Append` carries
// alone (`raft::config` bounds batches and chunks against the frame).
const _: () = assert!(super::COMMAND_BYTES_MAX as u64 <= Config::ENTRY_COMMAND_BYTES_MAX);

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PeerFrame {
    Hello {
        version: u32,
        cluster_id: u64,
        from: NodeId,
        raft_addr: String,
    },
    /// A message of the home group (`router::HOME`), the only group of a
    /// cluster with one shard: these bytes are the same as before groups.
    Message(NodeMessage),
    /// Sent on an idle link, so that the receiver can tell a quiet link from
    /// a dead one (a connection that hears nothing for a while is closed,
    /// and its writer reconnects).
    Keepalive,
    /// A message of another group (a key group, `router`).
    Group {
        group: GroupId,
        message: NodeMessage,
    },
}

impl PeerFrame {
    /// The frame carrying `message` of `group`.
    pub fn message(group: GroupId, message: NodeMessage) -> PeerFrame {
        if group == HOME {
            PeerFrame::Message(message)
        } else {
            PeerFrame::Group { group, message }
        }
    }
}

/// The largest reply a leader sends back to the follower that forwarded
/// its command, bounded by [`reply_bytes_bound`]; a larger one is replaced
/// by [`reply_too_large`]. Room is left for the message around it.
pub const FORWARD_REPLY_BYTES_MAX: usize = frame::FRAME_PAYLOAD_BYTES_MAX as usize - (64 << 10);

/// At least the bytes postcard takes for `reply`: a tag and a varint
/// (at most 10 bytes) for every value, plus its bytes.
pub fn reply_bytes_bound(reply: &crate::protocol::Reply) -> usize {
    use crate::protocol::Reply;
    const HEADER: usize = 11;
    let all = |replies: &[Reply]| replies.iter().map(reply_bytes_bound).fold(0, usize::saturating_add);
    HEADER.saturating_add(match reply {
        Reply::Simple(text) | Reply::Error(text) | Reply::Double(text) | Reply::BigNumber(text) => text.len(),
        Reply::Integer(_) | Reply::Null | Reply::Boolean(_) | Reply::Bulk(None) | Reply::Array(None) => {
            HEADER
        }
        Reply::Bulk(Some(bytes)) => bytes.len(),
        Reply::Array(Some(items)) | Reply::Set(items) | Reply::Push(items) => all(items),
        Reply::Map(pairs) | Reply::Pairs(pairs) => pairs
            .iter()
            .map(|(key, value)| reply_bytes_bound(key).saturating_add(reply_bytes_bound(value)))
            .fold(0, usize::saturating_add),
        Reply::Verbatim { format, text } => HEADER + format.len() + text.len(),
    })
}

/// What a follower's client gets instead of a reply too large for the
/// peer wire: the command ran, only its answer cannot travel.
pub fn reply_too_large(bytes: usize) -> crate::protocol::Reply {
    crate::protocol::Reply::error(format!(
        "ERR the command ran, but its reply of about {bytes} bytes is over the {FORWARD_REPLY_BYTES_MAX} \
         bytes a follower can relay; send it to the leader for the reply"
    ))
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

/// The largest first frame (the `Hello`) a reader buffers: before a peer
/// has said who it is, it gets no room for anything bigger.
pub const HELLO_FRAME_BYTES_MAX: usize = 4 << 10;

/// Reads one frame from the front of `bytes`: `Ok(None)` when more bytes
/// are needed, else the frame and the bytes it took. An error means the
/// connection must be closed. `from` is the connection's state
/// ([`receive`]): before the `Hello`, a frame over
/// [`HELLO_FRAME_BYTES_MAX`] is an error, not something to wait for.
pub fn decode(bytes: &[u8], from: Option<NodeId>) -> Result<Option<(PeerFrame, usize)>, String> {
    match frame::decode(bytes) {
        Err(frame::FrameError::Incomplete { needed }) if from.is_none() && needed > HELLO_FRAME_BYTES_MAX => {
            Err(format!("a first frame of {needed} bytes, over the {HELLO_FRAME_BYTES_MAX} a Hello may take"))
        }
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
        group: GroupId,
        message: NodeMessage,
    },
    /// Nothing to deliver; the link is alive.
    Keepalive,
}

/// Checks a frame against the connection's handshake state (`from`, set
/// by the first `Hello`); an error means close the connection. `proven`
/// is the member the connection authenticated as (by the cluster secret,
/// see `handshake`, or by its certificate): its `Hello` must name it.
pub fn receive(
    frame: PeerFrame,
    from: Option<NodeId>,
    cluster_id: u64,
    proven: Option<NodeId>,
) -> Result<Received, String> {
    match (frame, from) {
        (PeerFrame::Hello { version, cluster_id: theirs, from, raft_addr }, None) => {
            if version != WIRE_VERSION || theirs != cluster_id {
                return Err(format!("peer of cluster {theirs:016x}, wire version {version}: not ours"));
            }
            if proven.is_some_and(|proven| proven != from) {
                return Err(format!("a Hello from member {} on a link authenticated as another", from.0));
            }
            Ok(Received::Hello { from, raft_addr })
        }
        (PeerFrame::Message(message), Some(from)) => Ok(Received::Message { from, group: HOME, message }),
        (PeerFrame::Group { group, message }, Some(from)) => Ok(Received::Message { from, group, message }),
        (PeerFrame::Keepalive, Some(_)) => Ok(Received::Keepalive),
        (PeerFrame::Hello { .. }, Some(_)) => Err("a second Hello on one connection".into()),
        (PeerFrame::Message(_) | PeerFrame::Group { .. } | PeerFrame::Keepalive, None) => {
            Err("a message before the Hello".into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::FRAME_PAYLOAD_BYTES_MAX;
    use crate::raft::{
        Entry, Index, Membership, MembershipChange, Message, MessageKind, Payload, Raft, RaftLog, Recovered,
        SnapshotMeta, Term,
    };

    #[test]
    fn the_reply_bound_is_never_below_the_encoding() {
        use crate::protocol::Reply;
        let long = "x".repeat(300);
        let leaves = vec![
            Reply::ok(),
            Reply::error(long.clone()),
            Reply::Integer(i64::MIN),
            Reply::nil(),
            Reply::bulk(vec![7; 70_000]),
            Reply::Array(None),
            Reply::Null,
            Reply::Double("-inf".into()),
            Reply::Boolean(true),
            Reply::text(long.clone()),
            Reply::BigNumber(long),
        ];
        let mut replies = leaves.clone();
        replies.push(Reply::Array(Some(leaves.clone())));
        replies.push(Reply::Set(leaves.clone()));
        replies.push(Reply::Push(vec![Reply::Array(Some(leaves.clone()))]));
        replies.push(Reply::Map(leaves.iter().cloned().zip(leaves.iter().cloned().rev()).collect()));
        for reply in replies {
            let message = NodeMessage::ForwardReply { id: u64::MAX, reply: reply.clone(), index: None };
            let encoded = postcard::to_stdvec(&PeerFrame::Message(message)).unwrap().len();
            // The message around the reply: two tags, the id and the index.
            assert!(reply_bytes_bound(&reply) + 32 >= encoded, "{reply:?}");
        }
        assert!(FORWARD_REPLY_BYTES_MAX + 32 <= FRAME_PAYLOAD_BYTES_MAX as usize);
    }

    fn raft_frame(kind: MessageKind) -> PeerFrame {
        PeerFrame::Message(NodeMessage::Raft(Message { term: Term(u64::MAX), kind }))
    }

    /// Every varint of the message at its widest: the worst case for sizes.
    fn append(entries: Vec<Entry>) -> PeerFrame {
        let (prev_index, prev_term, commit) = (Index(u64::MAX), Term(u64::MAX), Index(u64::MAX));
        raft_frame(MessageKind::Append { prev_index, prev_term, entries, commit })
    }

    fn membership(members: u64) -> Membership {
        let voters = (0..members.min(5)).map(|k| NodeId(u64::MAX - k));
        let mut membership = Membership::with_voters(voters);
        membership.learners = (5..members).map(|k| NodeId(u64::MAX - k)).collect();
        membership
    }

    /// A log far along (every index and term a 10-byte varint) holding
    /// entries of the given payloads.
    fn log_of(payloads: Vec<Payload>) -> RaftLog {
        let start = Index(u64::MAX - 1000);
        let mut log = RaftLog::new(start, Term(u64::MAX));
        for (k, payload) in payloads.into_iter().enumerate() {
            log.append(Entry { term: Term(u64::MAX), index: Index(start.0 + 1 + k as u64), payload });
        }
        log
    }

    #[test]
    fn an_entry_size_bounds_its_encoding() {
        let entries = [
            Payload::Noop,
            Payload::Command(vec![]),
            Payload::Command(vec![1; 300]),
            Payload::Membership(membership(1)),
            Payload::Membership(membership(40)),
        ];
        for payload in entries {
            let entry = Entry { term: Term(u64::MAX), index: Index(u64::MAX), payload };
            let encoded = postcard::to_stdvec(&entry).unwrap().len() as u64;
            assert!(encoded <= entry.size_bytes(), "{encoded} > {} for {entry:?}", entry.size_bytes());
        }
    }

    /// The core batches with `RaftLog::slice` under the config's limits:
    /// at their largest, with entries of the largest command and batches
    /// filled near the byte limit, every `Append` fits in one frame.
    #[test]
    fn the_largest_append_the_core_can_batch_fits_one_frame() {
        let largest = Config::ENTRY_COMMAND_BYTES_MAX as usize;
        let mut payloads = vec![Payload::Command(vec![1; largest])];
        payloads.extend((0..24).map(|_| Payload::Command(vec![2; 3 << 20])));
        payloads.push(Payload::Membership(membership(1000)));
        payloads.push(Payload::Command(vec![3; largest]));
        let log = log_of(payloads);
        let (first, last) = (log.first_index(), log.last_index());
        let mut biggest = 0;
        for from in [first, first.next(), Index(first.0 + 13), Index(last.0 - 1), last] {
            let entries = log.slice(from, Config::APPEND_ENTRIES_MAX, Config::APPEND_BYTES_MAX);
            assert!(!entries.is_empty(), "a batch holds at least one entry");
            let entry_bytes: u64 = entries.iter().map(Entry::size_bytes).sum();
            assert!(entries.len() == 1 || entry_bytes <= Config::APPEND_BYTES_MAX);
            let mut out = Vec::new();
            encode(&append(entries), &mut out).expect("every batch fits in a frame");
            let payload = (out.len() - frame::FRAME_HEADER_BYTES) as u64;
            assert!(payload <= Config::APPEND_HEADER_BYTES_MAX + entry_bytes, "headers over their bound");
            biggest = biggest.max(payload);
        }
        assert!(biggest > FRAME_PAYLOAD_BYTES_MAX as u64 - (1 << 10), "the largest entry was tried");
    }

    /// The check above can fail: past the config's bounds, a batch of two
    /// of the largest entries is over a frame, and the wire refuses it.
    #[test]
    fn a_batch_past_the_config_bounds_is_refused_by_the_wire() {
        let largest = Config::ENTRY_COMMAND_BYTES_MAX as usize;
        let log = log_of(vec![Payload::Command(vec![1; largest]), Payload::Command(vec![2; 8])]);
        let entries = log.slice(log.first_index(), 2, 2 * u64::from(FRAME_PAYLOAD_BYTES_MAX));
        assert_eq!(entries.len(), 2);
        let mut out = b"kept".to_vec();
        let error = encode(&append(entries), &mut out).expect_err("over a frame");
        assert!(error.payload_bytes > u64::from(FRAME_PAYLOAD_BYTES_MAX));
        assert_eq!(out, b"kept");
    }

    /// Runs `nodes` (node `k` has id `k + 1`) until none has anything to
    /// do: everything persisted at once, every message through the wire
    /// encoder and decoder; a snapshot the core wants again is `state`.
    /// Returns the largest frame.
    fn deliver(nodes: &mut [Raft], state: &[u8]) -> usize {
        let mut largest = 0;
        for _ in 0..10_000 {
            let mut quiet = true;
            for k in 0..nodes.len() {
                if nodes[k].wants_snapshot() {
                    let applied = nodes[k].applied();
                    nodes[k].compact(applied, state.to_vec(), 0);
                }
                let output = nodes[k].take_output();
                if let Some(&(lsn, _)) = output.persist.last() {
                    nodes[k].persisted(lsn);
                    quiet = false;
                }
                for (to, message) in output.send {
                    quiet = false;
                    let mut out = Vec::new();
                    let frame = PeerFrame::Message(NodeMessage::Raft(message));
                    encode(&frame, &mut out).expect("every message the core builds fits in a frame");
                    largest = largest.max(out.len());
                    let Ok(Some((PeerFrame::Message(NodeMessage::Raft(message)), _))) =
                        decode(&out, Some(NodeId(1)))
                    else {
                        panic!("a frame that does not decode");
                    };
                    nodes[to.0 as usize - 1].step(NodeId(k as u64 + 1), message);
                }
            }
            if quiet {
                return largest;
            }
        }
        panic!("the nodes never went quiet");
    }

    /// The core itself, at the largest config: a leader replicating entries
    /// of the largest command and batches filling the byte limit to a
    /// learner, then a snapshot in chunks to a learner that joins after
    /// compaction. Every message goes through the wire.
    #[test]
    fn every_message_of_a_leader_at_the_largest_config_fits_one_frame() {
        let config = |id| Config {
            append_bytes_max: Config::APPEND_BYTES_MAX,
            append_entries_max: Config::APPEND_ENTRIES_MAX,
            snapshot_chunk_bytes_max: Config::SNAPSHOT_CHUNK_BYTES_MAX,
            ..Config::new(NodeId(id))
        };
        let mut founding = Raft::bootstrap([NodeId(1)]);
        let Payload::Membership(membership) = &mut founding.entries[0].payload else { unreachable!() };
        membership.learners.insert(NodeId(2));
        let mut nodes = vec![
            Raft::restore(config(1), 1, founding.clone()).unwrap(),
            Raft::restore(config(2), 2, founding).unwrap(),
        ];
        let state = vec![9; 40 << 20];
        deliver(&mut nodes, &state);
        assert!(nodes[0].is_leader(), "the sole voter leads");

        let largest_command = Config::ENTRY_COMMAND_BYTES_MAX as usize;
        nodes[0].propose(vec![1; largest_command]).unwrap();
        nodes[0].propose_batch(vec![vec![2; 3 << 20]; 24]).unwrap();
        nodes[0].propose(vec![3; largest_command]).unwrap();
        let largest = deliver(&mut nodes, &state);
        assert_eq!(nodes[1].log().last_index(), nodes[0].log().last_index(), "the learner has everything");
        assert!(largest > largest_command, "an append of the largest entry was sent");

        let applied = nodes[0].applied();
        nodes[0].compact(applied, state.clone(), 0);
        nodes.push(Raft::restore(config(3), 3, Recovered::default()).unwrap());
        nodes[0].propose_membership_change(MembershipChange::AddLearner(NodeId(3))).unwrap();
        let largest = deliver(&mut nodes, &state);
        assert!(nodes[2].snapshot_index() >= applied, "the new learner got a snapshot");
        assert_eq!(nodes[2].log().last_index(), nodes[0].log().last_index());
        assert!(largest > Config::SNAPSHOT_CHUNK_BYTES_MAX as usize, "a full chunk was sent");
    }

    #[test]
    fn the_largest_snapshot_chunk_fits_one_frame() {
        let meta = SnapshotMeta {
            index: Index(u64::MAX),
            term: Term(u64::MAX),
            membership: membership(Config::MEMBERS_MAX),
        };
        let data = vec![7; Config::SNAPSHOT_CHUNK_BYTES_MAX as usize];
        let kind = MessageKind::InstallSnapshot { meta, total_bytes: u64::MAX, offset: u64::MAX, data };
        let mut out = Vec::new();
        encode(&raft_frame(kind), &mut out).expect("a chunk fits in a frame");
        let payload = (out.len() - frame::FRAME_HEADER_BYTES) as u64;
        assert!(payload <= Config::SNAPSHOT_CHUNK_HEADER_BYTES_MAX + Config::SNAPSHOT_CHUNK_BYTES_MAX);
    }

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
        let (first, used) = decode(&bytes, None).unwrap().unwrap();
        assert_eq!(first, hello);
        assert_eq!(decode(&bytes[..used - 1], None), Ok(None));
        let (second, _) = decode(&bytes[used..], Some(NodeId(2))).unwrap().unwrap();
        assert_eq!(second, message);
        assert_eq!(
            receive(hello.clone(), None, 7, None),
            Ok(Received::Hello { from: NodeId(2), raft_addr: "a:1".into() })
        );
        assert_eq!(
            receive(hello.clone(), None, 7, Some(NodeId(2))),
            Ok(Received::Hello { from: NodeId(2), raft_addr: "a:1".into() })
        );
        assert!(receive(hello.clone(), None, 7, Some(NodeId(3))).is_err(), "not the member proven");
        assert!(receive(hello.clone(), None, 8, None).is_err(), "another cluster");
        assert!(receive(hello, Some(NodeId(2)), 7, None).is_err(), "a second hello");
        assert!(receive(message.clone(), None, 7, None).is_err(), "no hello yet");
        assert_eq!(
            receive(message, Some(NodeId(2)), 7, None),
            Ok(Received::Message { from: NodeId(2), group: HOME, message: NodeMessage::Removed })
        );
        let mut corrupt = bytes.clone();
        corrupt[10] ^= 1;
        assert!(decode(&corrupt, None).is_err());
        // Another group's message travels with its group; the home group's
        // in the frame of before groups.
        let grouped = PeerFrame::message(GroupId(3), NodeMessage::Removed);
        let mut bytes = Vec::new();
        encode(&grouped, &mut bytes).unwrap();
        let (decoded, _) = decode(&bytes, Some(NodeId(2))).unwrap().unwrap();
        assert_eq!(
            receive(decoded, Some(NodeId(2)), 7, None),
            Ok(Received::Message { from: NodeId(2), group: GroupId(3), message: NodeMessage::Removed })
        );
        assert_eq!(PeerFrame::message(HOME, NodeMessage::Removed), PeerFrame::Message(NodeMessage::Removed));
        assert!(receive(grouped, None, 7, None).is_err(), "no hello yet");
    }

    /// Before the `Hello`, a reader waits for no frame bigger than a Hello;
    /// after it, for frames up to the frame limit.
    #[test]
    fn a_big_first_frame_is_refused_before_it_arrives() {
        let big = PeerFrame::Message(NodeMessage::Raft(crate::raft::Message {
            term: Term(1),
            kind: MessageKind::Append {
                prev_index: Index(0),
                prev_term: Term(0),
                entries: vec![Entry {
                    term: Term(1),
                    index: Index(1),
                    payload: Payload::Command(vec![0; 5000]),
                }],
                commit: Index(0),
            },
        }));
        let mut bytes = Vec::new();
        encode(&big, &mut bytes).unwrap();
        let header = &bytes[..frame::FRAME_HEADER_BYTES];
        assert!(decode(header, None).unwrap_err().contains("over the 4096 a Hello may take"));
        assert_eq!(decode(header, Some(NodeId(1))), Ok(None));
    }
}
