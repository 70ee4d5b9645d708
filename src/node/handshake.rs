//! The peer handshake under a cluster secret (`--cluster-secret`): before
//! a node reads a single frame from a peer connection, the peer proves it
//! knows the secret, and the node proves it back. Pure: the shells (the
//! glommio runtime and the simulator) move the bytes and draw the nonces.
//!
//! ```text
//! acceptor → connector   challenge  "CASHE\0C1" | version u32 | nonce_a (32)
//! connector → acceptor   proof      "CASHE\0P1" | version u32 | cluster u64 | from u64
//!                                   | nonce_c (32) | HMAC(secret, "proof" …) (32)
//! acceptor → connector   accept     HMAC(secret, "accept" …) (32)
//! ```
//!
//! Both MACs are HMAC-SHA256 over a label, the wire version, the cluster
//! id, the connector's member number, the number of the member it dials
//! ([`Link`]) and both nonces, so a proof answers one challenge only (the
//! acceptor's nonce is fresh per connection), a proof made for one member
//! cannot be relayed to another by whoever the connector reached (a stale
//! address, say), a proof cannot be reflected as an acceptance (different
//! labels), and the
//! number the connector proved is the only one its `Hello` may name
//! ([`super::wire::receive`]): every message on the connection is that
//! member's. Fixed sizes: the acceptor reads exactly [`PROOF_BYTES`] before
//! it has authenticated anyone, and the connector writes nothing but its
//! proof before it has heard the acceptance.
//!
//! What the secret does not give: privacy or integrity against someone on
//! the path, who can read or rewrite the frames after the handshake (Raft's
//! frames carry only a CRC). Links that cross untrusted networks use TLS
//! (`--tls-*`), which binds every byte to the peer's certificate.

use super::wire::WIRE_VERSION;
use crate::raft::NodeId;
use ring::hmac;

pub const NONCE_BYTES: usize = 32;
const MAC_BYTES: usize = 32;
const CHALLENGE_MAGIC: &[u8; 8] = b"CASHE\0C1";
const PROOF_MAGIC: &[u8; 8] = b"CASHE\0P1";
/// What the acceptor writes first.
pub const CHALLENGE_BYTES: usize = 8 + 4 + NONCE_BYTES;
/// What the connector answers: all the acceptor reads before it trusts it.
pub const PROOF_BYTES: usize = 8 + 4 + 8 + 8 + NONCE_BYTES + MAC_BYTES;
/// The acceptor's proof back.
pub const ACCEPT_BYTES: usize = MAC_BYTES;

/// The shared secret of a cluster's peer links. Its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ClusterSecret(Vec<u8>);

impl ClusterSecret {
    /// An empty secret is refused: it would authenticate anyone.
    pub fn new(secret: &[u8]) -> Result<ClusterSecret, String> {
        if secret.is_empty() {
            return Err("the cluster secret is empty".into());
        }
        Ok(ClusterSecret(secret.to_vec()))
    }

    fn key(&self) -> hmac::Key {
        hmac::Key::new(hmac::HMAC_SHA256, &self.0)
    }

    /// What both MACs cover: a label, the wire version, the cluster, both
    /// ends of the link and both nonces.
    fn message(label: &[u8], version: u32, cluster_id: u64, link: Link, nonces: [&[u8]; 2]) -> Vec<u8> {
        let mut message = Vec::with_capacity(label.len() + 28 + 2 * NONCE_BYTES);
        message.extend_from_slice(label);
        message.extend_from_slice(&version.to_be_bytes());
        message.extend_from_slice(&cluster_id.to_be_bytes());
        message.extend_from_slice(&link.from.0.to_be_bytes());
        message.extend_from_slice(&link.to.0.to_be_bytes());
        message.extend_from_slice(nonces[0]);
        message.extend_from_slice(nonces[1]);
        message
    }

    fn mac(&self, label: &[u8], version: u32, cluster_id: u64, link: Link, nonces: [&[u8]; 2]) -> hmac::Tag {
        hmac::sign(&self.key(), &Self::message(label, version, cluster_id, link, nonces))
    }

    /// Constant time.
    fn verify(
        &self,
        label: &[u8],
        version: u32,
        cluster_id: u64,
        link: Link,
        nonces: [&[u8]; 2],
        mac: &[u8],
    ) -> bool {
        hmac::verify(&self.key(), &Self::message(label, version, cluster_id, link, nonces), mac).is_ok()
    }
}

impl std::fmt::Debug for ClusterSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClusterSecret(<redacted>)")
    }
}

/// Who dials whom: both MACs cover both ends, so a proof made for one
/// acceptor is no use at another (a member that dials a stranger cannot
/// have its proof relayed to a third node).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Link {
    /// The connector: the member whose messages the link will carry.
    pub from: NodeId,
    /// The acceptor: the member the connector meant to reach.
    pub to: NodeId,
}

/// The acceptor's first bytes on a new peer connection.
pub fn challenge(nonce: &[u8; NONCE_BYTES]) -> [u8; CHALLENGE_BYTES] {
    let mut out = [0u8; CHALLENGE_BYTES];
    out[..8].copy_from_slice(CHALLENGE_MAGIC);
    out[8..12].copy_from_slice(&WIRE_VERSION.to_be_bytes());
    out[12..].copy_from_slice(nonce);
    out
}

/// The connector's side: what to answer, and the acceptance to expect.
pub struct Answer {
    pub proof: [u8; PROOF_BYTES],
    expected: [u8; ACCEPT_BYTES],
}

impl Answer {
    /// Checks the acceptor's proof back (constant time).
    pub fn check_accept(&self, accept: &[u8]) -> Result<(), String> {
        let equal = accept.len() == ACCEPT_BYTES
            && accept.iter().zip(self.expected.iter()).fold(0u8, |d, (a, b)| d | (a ^ b)) == 0;
        if equal {
            Ok(())
        } else {
            Err("the peer did not prove the cluster secret".into())
        }
    }
}

/// The connector answers the challenge of member `link.to` as member
/// `link.from`.
pub fn answer(
    secret: &ClusterSecret,
    challenge: &[u8],
    nonce: &[u8; NONCE_BYTES],
    cluster_id: u64,
    link: Link,
) -> Result<Answer, String> {
    if challenge.len() != CHALLENGE_BYTES || &challenge[..8] != CHALLENGE_MAGIC {
        return Err(
            "the peer sent no cluster-secret challenge (is it started without --cluster-secret?)".into()
        );
    }
    let version = u32::from_be_bytes(challenge[8..12].try_into().expect("4 bytes"));
    if version != WIRE_VERSION {
        return Err(format!("the peer speaks wire version {version}, not {WIRE_VERSION}"));
    }
    let theirs = &challenge[12..];
    let nonces = [theirs, &nonce[..]];
    let mut proof = [0u8; PROOF_BYTES];
    proof[..8].copy_from_slice(PROOF_MAGIC);
    proof[8..12].copy_from_slice(&WIRE_VERSION.to_be_bytes());
    proof[12..20].copy_from_slice(&cluster_id.to_be_bytes());
    proof[20..28].copy_from_slice(&link.from.0.to_be_bytes());
    proof[28..28 + NONCE_BYTES].copy_from_slice(nonce);
    let mac = secret.mac(b"cashe peer proof", WIRE_VERSION, cluster_id, link, nonces);
    proof[28 + NONCE_BYTES..].copy_from_slice(mac.as_ref());
    let mut expected = [0u8; ACCEPT_BYTES];
    expected
        .copy_from_slice(secret.mac(b"cashe peer accept", WIRE_VERSION, cluster_id, link, nonces).as_ref());
    Ok(Answer { proof, expected })
}

/// The acceptor, member `me`, checks a proof against the challenge it
/// sent: the member it proves to be, and the acceptance to write back.
pub fn check_proof(
    secret: &ClusterSecret,
    nonce: &[u8; NONCE_BYTES],
    proof: &[u8],
    cluster_id: u64,
    me: NodeId,
) -> Result<(NodeId, [u8; ACCEPT_BYTES]), String> {
    if proof.len() != PROOF_BYTES || &proof[..8] != PROOF_MAGIC {
        return Err("no cluster-secret proof (is the peer started without --cluster-secret?)".into());
    }
    let field = |at: usize| u64::from_be_bytes(proof[at..at + 8].try_into().expect("8 bytes"));
    let version = u32::from_be_bytes(proof[8..12].try_into().expect("4 bytes"));
    let (theirs, from) = (field(12), NodeId(field(20)));
    if version != WIRE_VERSION || theirs != cluster_id {
        return Err(format!("peer of cluster {theirs:016x}, wire version {version}: not ours"));
    }
    let their_nonce = &proof[28..28 + NONCE_BYTES];
    let nonces = [&nonce[..], their_nonce];
    let link = Link { from, to: me };
    if !secret.verify(b"cashe peer proof", version, cluster_id, link, nonces, &proof[28 + NONCE_BYTES..]) {
        return Err(format!(
            "member {} gave a wrong cluster-secret proof (or one made for a member other than {})",
            from.0, me.0
        ));
    }
    let mut accept = [0u8; ACCEPT_BYTES];
    accept.copy_from_slice(secret.mac(b"cashe peer accept", version, cluster_id, link, nonces).as_ref());
    Ok((from, accept))
}

/// The proof a joining node adds to `CLUSTER JOIN` under a secret: a MAC
/// of its name and addresses (hex). It has no nonce: someone who saw it
/// and may run `CLUSTER JOIN` can replay it, re-adding that member (same
/// name and addresses) after its removal.
pub fn join_proof(secret: &ClusterSecret, fields: &[&[u8]]) -> String {
    let mut context = hmac::Context::with_key(&secret.key());
    context.update(b"cashe join");
    for field in fields {
        context.update(&(field.len() as u64).to_be_bytes());
        context.update(field);
    }
    context.sign().as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// Checks [`join_proof`] (constant time).
pub fn check_join_proof(secret: &ClusterSecret, fields: &[&[u8]], proof: &[u8]) -> bool {
    let expected = join_proof(secret, fields);
    expected.len() == proof.len()
        && expected.bytes().zip(proof.iter()).fold(0u8, |d, (a, b)| d | (a ^ b.to_ascii_lowercase())) == 0
}

/// The fuzz body (`fuzz/fuzz_targets/peer_handshake.rs`, and seeded in
/// the tests below): `data` is everything a stranger writes to a node's
/// Raft port under the secret [`FUZZ_SECRET`], and the node answers with
/// the challenge of [`FUZZ_NONCE`]. Runs the acceptor's checks as the
/// shells do (the proof, then frames bounded before the `Hello`) and
/// returns how many messages would reach the node; it must never panic,
/// and without the secret it must be 0. The same bytes also go through
/// the connector's side (a challenge and an acceptance from a stranger).
pub fn fuzz_stranger(data: &[u8]) -> usize {
    let secret = ClusterSecret::new(FUZZ_SECRET).expect("not empty");
    if let Ok(answer) =
        answer(&secret, data.get(..CHALLENGE_BYTES).unwrap_or(data), &FUZZ_NONCE, 1, FUZZ_LINK)
    {
        let _ = answer.check_accept(data.get(CHALLENGE_BYTES..).unwrap_or_default());
    }
    delivered(&secret, &FUZZ_NONCE, data, 1)
}

/// The secret [`fuzz_stranger`]'s node has.
pub const FUZZ_SECRET: &[u8] = b"fuzzing secret";
/// [`fuzz_stranger`]'s node is member 1; on the connector's side it
/// dials member 1 as member 3.
const FUZZ_LINK: Link = Link { from: NodeId(3), to: NodeId(1) };
/// The nonce of [`fuzz_stranger`]'s challenge.
pub const FUZZ_NONCE: [u8; NONCE_BYTES] = [7; NONCE_BYTES];

/// Messages an acceptor would hand to its node from `data` (a proof, then
/// frames), stopping where it would close the connection.
fn delivered(secret: &ClusterSecret, nonce: &[u8; NONCE_BYTES], data: &[u8], cluster_id: u64) -> usize {
    let Some(Ok((proven, _))) =
        data.get(..PROOF_BYTES).map(|p| check_proof(secret, nonce, p, cluster_id, FUZZ_LINK.to))
    else {
        return 0;
    };
    let (mut rest, mut from, mut count) = (&data[PROOF_BYTES..], None, 0);
    while let Ok(Some((frame, used))) = super::wire::decode(rest, from) {
        rest = &rest[used..];
        match super::wire::receive(frame, from, cluster_id, Some(proven)) {
            Ok(super::wire::Received::Hello { from: id, .. }) => from = Some(id),
            Ok(super::wire::Received::Message { .. }) => count += 1,
            Ok(super::wire::Received::Keepalive) => {}
            Err(_) => break,
        }
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Member 3 dials member 5.
    const LINK: Link = Link { from: NodeId(3), to: NodeId(5) };
    const ME: NodeId = NodeId(5);

    fn secret(s: &str) -> ClusterSecret {
        ClusterSecret::new(s.as_bytes()).unwrap()
    }

    #[test]
    fn members_with_the_secret_authenticate_each_other() {
        let (a, c) = ([1u8; NONCE_BYTES], [2u8; NONCE_BYTES]);
        let answer = answer(&secret("s3cret"), &challenge(&a), &c, 7, LINK).unwrap();
        let (from, accept) = check_proof(&secret("s3cret"), &a, &answer.proof, 7, ME).unwrap();
        assert_eq!(from, NodeId(3));
        answer.check_accept(&accept).unwrap();
    }

    #[test]
    fn a_wrong_secret_replay_or_tamper_is_refused() {
        let (a, c) = ([1u8; NONCE_BYTES], [2u8; NONCE_BYTES]);
        let good = answer(&secret("s3cret"), &challenge(&a), &c, 7, LINK).unwrap();
        let wrong = answer(&secret("guess"), &challenge(&a), &c, 7, LINK).unwrap();
        assert!(check_proof(&secret("s3cret"), &a, &wrong.proof, 7, ME).is_err(), "wrong secret");
        assert!(check_proof(&secret("s3cret"), &[9u8; NONCE_BYTES], &good.proof, 7, ME).is_err(), "replayed");
        assert!(check_proof(&secret("s3cret"), &a, &good.proof, 8, ME).is_err(), "another cluster");
        // Relayed: the proof member 3 made for member 5, shown to member 6
        // (by whoever member 3 dialled) with member 6's own nonce.
        assert!(check_proof(&secret("s3cret"), &a, &good.proof, 7, NodeId(6)).is_err(), "relayed");
        for at in [10, 21, 30, PROOF_BYTES - 1] {
            let mut tampered = good.proof;
            tampered[at] ^= 1;
            assert!(check_proof(&secret("s3cret"), &a, &tampered, 7, ME).is_err(), "byte {at}");
        }
        assert!(check_proof(&secret("s3cret"), &a, &good.proof[..PROOF_BYTES - 1], 7, ME).is_err());
        // The acceptance of another secret, or the proof reflected back.
        let (_, other) = check_proof(&secret("guess"), &a, &wrong.proof, 7, ME).unwrap();
        assert!(good.check_accept(&other).is_err());
        assert!(good.check_accept(&good.proof[28 + NONCE_BYTES..]).is_err());
        assert!(ClusterSecret::new(b"").is_err());
        assert_eq!(format!("{:?}", secret("s3cret")), "ClusterSecret(<redacted>)");
    }

    #[test]
    fn a_plain_hello_is_not_a_proof_nor_a_challenge() {
        let mut hello = Vec::new();
        super::super::wire::encode_or_drop(
            &super::super::wire::PeerFrame::Hello {
                version: WIRE_VERSION,
                cluster_id: 7,
                from: NodeId(3),
                raft_addr: "x".repeat(100),
            },
            &mut hello,
        );
        let err = check_proof(&secret("s"), &[0; NONCE_BYTES], &hello[..PROOF_BYTES], 7, ME).unwrap_err();
        assert!(err.contains("without --cluster-secret"), "{err}");
        assert!(answer(&secret("s"), &hello[..CHALLENGE_BYTES], &[0; NONCE_BYTES], 7, LINK).is_err());
    }

    #[test]
    fn join_proofs_bind_every_field() {
        let fields: [&[u8]; 3] = [b"raft3", b"h:4003", b"h:3003"];
        let proof = join_proof(&secret("s"), &fields);
        assert!(check_join_proof(&secret("s"), &fields, proof.as_bytes()));
        assert!(check_join_proof(&secret("s"), &fields, proof.to_uppercase().as_bytes()));
        assert!(!check_join_proof(&secret("t"), &fields, proof.as_bytes()));
        assert!(!check_join_proof(&secret("s"), &[b"raft3", b"h:4003", b"h:3004"], proof.as_bytes()));
        assert!(!check_join_proof(&secret("s"), &[b"raft3h:4003", b"", b"h:3003"], proof.as_bytes()));
    }

    /// A stranger's transcript: a proof made with `secret` as member 3, a
    /// `Hello` naming `hello_from`, and two messages.
    fn transcript(secret: &ClusterSecret, hello_from: NodeId) -> Vec<u8> {
        use super::super::wire::{encode, PeerFrame};
        let answer = answer(secret, &challenge(&FUZZ_NONCE), &[3; NONCE_BYTES], 1, FUZZ_LINK).unwrap();
        let mut data = answer.proof.to_vec();
        let hello = PeerFrame::Hello {
            version: WIRE_VERSION,
            cluster_id: 1,
            from: hello_from,
            raft_addr: "a:1".into(),
        };
        encode(&hello, &mut data).unwrap();
        for _ in 0..2 {
            encode(&PeerFrame::Message(super::super::NodeMessage::Probe), &mut data).unwrap();
        }
        data
    }

    /// The fuzz body's property holds on mutations of a real transcript,
    /// and can fail: with the secret, messages do get through.
    #[test]
    fn a_stranger_delivers_nothing_however_it_mutates_a_transcript() {
        let right = ClusterSecret::new(FUZZ_SECRET).unwrap();
        assert_eq!(fuzz_stranger(&transcript(&right, NodeId(3))), 2, "a member's messages get through");
        assert_eq!(fuzz_stranger(&transcript(&right, NodeId(4))), 0, "a Hello naming another member");
        let wrong = transcript(&ClusterSecret::new(b"a guess").unwrap(), NodeId(3));
        let mut rng = crate::raft::SplitMix64::new(15);
        for round in 0..3000 {
            let mut data = if round % 2 == 0 { wrong.clone() } else { transcript(&right, NodeId(3)) };
            let flips = 1 + rng.next_u64() % 4;
            for _ in 0..flips {
                let at = (rng.next_u64() % data.len() as u64) as usize;
                data[at] ^= 1 << (rng.next_u64() % 8);
            }
            let cut = (rng.next_u64() % (data.len() as u64 + 1)) as usize;
            let delivered = fuzz_stranger(&data[..cut]);
            if round % 2 == 0
                || data[..PROOF_BYTES.min(cut)] != transcript(&right, NodeId(3))[..PROOF_BYTES.min(cut)]
            {
                assert_eq!(delivered, 0, "round {round}: a message got through without the secret");
            }
        }
        for len in [0, 1, CHALLENGE_BYTES, PROOF_BYTES, 500] {
            let noise: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
            assert_eq!(fuzz_stranger(&noise), 0);
        }
    }
}
