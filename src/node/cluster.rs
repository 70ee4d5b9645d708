//! Who the members are and where they listen: the replicated directory, and
//! the `CLUSTER` commands that administer it.
//!
//! Raft knows members only by number ([`NodeId`]). The directory maps each
//! number to the member's name (its `--id`) and its peer and client
//! addresses. It is replicated state like the key space: it changes only by
//! applying two internal commands, refused from clients,
//!
//! - `CASHE.MEMBER name raft_addr client_addr [id] [TLS tls_client_addr]`:
//!   record a member. Without `id` (a join) the member gets the next unused
//!   number, or keeps its own if the same name is joining again from the
//!   same peer address (a retried join); with `id`, a running member records
//!   its own addresses. `TLS tls_client_addr` (the keyword exactly `TLS`,
//!   then the address) is the member's TLS client port, written only by a
//!   member that has one. Entries written before TLS have 3 or 4 arguments
//!   and no build ever wrote another count, so the forms cannot be confused:
//!   3 or 4 arguments apply exactly as they always did (a 4th that is not a
//!   number is still refused), 5 (`… TLS addr`) and 6 (`… id TLS addr`) are
//!   the new forms, anything else is malformed. A member without a TLS port
//!   writes the old bytes unchanged.
//! - `CASHE.FORGET name`: the member is to leave; its number is never reused.
//!
//! and it travels in snapshots (node snapshot format 2 holds
//! `tls_client_addr`; format 1, without it, is still read through
//! [`DirectoryFormat1`]).
//!
//! Each member has one or two client addresses: `client_addr` is the plain
//! port's (the TLS port's on a member without a plain one), and
//! `tls_client_addr` the TLS port's. What a client is told depends on how it
//! came: `CLUSTER NODES` on a TLS connection shows each member's TLS address
//! where it has one, on a plain connection the plain one, as Redis answers
//! TLS clients with `tls-port` addresses (the shell says which connections
//! are TLS, [`Transport`]). The directory is the membership the cluster
//! *should* have; the leader reconciles Raft's membership towards it one
//! single-server change at a time (a recorded member not in Raft's
//! membership is added as a learner, and promoted by the core once caught
//! up; a forgotten member still in it is removed). So a join is: the
//! joining node sends `CLUSTER JOIN` to any member, gets back its number and
//! the cluster id once `CASHE.MEMBER` is committed, and starts empty; the
//! leader adds it and streams it the log or a snapshot.

use super::handshake::{self, ClusterSecret};
use super::session::{Ticket, Work};
use super::Node;
use crate::kv::slot::SLOTS;
use crate::protocol::Reply;
use crate::raft::{MembershipChange, NodeId};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

pub const CASHE_MEMBER: &str = "CASHE.MEMBER";

/// The member that bootstraps a new cluster; joins get later numbers.
pub const FOUNDER: NodeId = NodeId(1);
pub const CASHE_FORGET: &str = "CASHE.FORGET";

/// Where a member listens, and what it is called.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct MemberInfo {
    /// The member's `--id`, unique in the cluster.
    pub name: String,
    /// `host:port` of its peer listener.
    pub raft_addr: String,
    /// `host:port` of its client listener: the plain one, or the TLS one
    /// on a member without a plain port.
    pub client_addr: String,
    /// `host:port` of its TLS client listener; `None` without one. The
    /// last field: node snapshot format 2 added it.
    pub tls_client_addr: Option<String>,
}

impl MemberInfo {
    /// The address a client that came over `transport` is told.
    pub fn client_addr_for(&self, transport: Transport) -> &str {
        match (transport, &self.tls_client_addr) {
            (Transport::Tls, Some(tls)) => tls,
            _ => &self.client_addr,
        }
    }
}

/// How a client connection came: the shell says so when it opens
/// ([`Node::connected`]), and the addresses a client is told follow it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Transport {
    #[default]
    Plain,
    Tls,
}

/// The keyword before a TLS client address in `CASHE.MEMBER` and
/// `CLUSTER JOIN`.
const TLS_KEYWORD: &str = "TLS";

/// A member as node snapshot format 1 held it (before TLS addresses).
#[derive(Clone, Debug, Serialize, Deserialize)]
struct MemberInfoFormat1 {
    name: String,
    raft_addr: String,
    client_addr: String,
}

/// The directory as node snapshot format 1 held it; read, never written.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) struct DirectoryFormat1 {
    members: BTreeMap<NodeId, MemberInfoFormat1>,
    removed: BTreeSet<NodeId>,
    last_id: u64,
}

impl From<DirectoryFormat1> for Directory {
    fn from(old: DirectoryFormat1) -> Directory {
        let members = old.members.into_iter().map(|(id, m)| {
            let info = MemberInfo {
                name: m.name,
                raft_addr: m.raft_addr,
                client_addr: m.client_addr,
                tls_client_addr: None,
            };
            (id, info)
        });
        Directory { members: members.collect(), removed: old.removed, last_id: old.last_id }
    }
}

/// The replicated directory of members.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Directory {
    pub members: BTreeMap<NodeId, MemberInfo>,
    /// Members that left or were removed; their numbers are never reused.
    pub removed: BTreeSet<NodeId>,
    /// The highest number handed out so far.
    pub last_id: u64,
}

impl Directory {
    pub fn by_name(&self, name: &str) -> Option<NodeId> {
        self.members.iter().find(|(_, info)| info.name == name).map(|(id, _)| *id)
    }

    /// Applies `CASHE.MEMBER` or `CASHE.FORGET` (arguments without the
    /// command name); the reply goes to whoever proposed it.
    pub(super) fn apply(&mut self, command: &str, args: &[Vec<u8>], cluster_id: u64) -> Reply {
        let text: Vec<String> = args.iter().map(|a| String::from_utf8_lossy(a).into_owned()).collect();
        match (command, text.as_slice()) {
            (CASHE_MEMBER, [name, raft_addr, client_addr, rest @ ..]) if rest.len() <= 3 => {
                // See the module docs: [id] then [TLS addr].
                let (id, tls_client_addr) = match rest {
                    [] => (None, None),
                    [id] => (Some(id), None),
                    [keyword, tls] if keyword == TLS_KEYWORD => (None, Some(tls)),
                    [id, keyword, tls] if keyword == TLS_KEYWORD => (Some(id), Some(tls)),
                    _ => return Reply::error(format!("ERR malformed {command} entry")),
                };
                let info = MemberInfo {
                    name: name.clone(),
                    raft_addr: raft_addr.clone(),
                    client_addr: client_addr.clone(),
                    tls_client_addr: tls_client_addr.cloned(),
                };
                let claimed = match id.map(|id| id.parse::<u64>()) {
                    None => None,
                    Some(Ok(id)) => Some(NodeId(id)),
                    Some(Err(_)) => return Reply::error("ERR member id is not a number"),
                };
                self.record(info, claimed, cluster_id)
            }
            (CASHE_FORGET, [name]) => match self.by_name(name) {
                Some(id) => {
                    self.members.remove(&id);
                    self.removed.insert(id);
                    Reply::ok()
                }
                None => Reply::error(format!("ERR no member named '{name}'")),
            },
            _ => Reply::error(format!("ERR malformed {command} entry")),
        }
    }

    fn record(&mut self, info: MemberInfo, claimed: Option<NodeId>, cluster_id: u64) -> Reply {
        let existing = self.by_name(&info.name);
        let id = match (claimed, existing) {
            (Some(id), Some(other)) if other != id => {
                return Reply::error(format!("ERR the name '{}' belongs to member {other}", info.name));
            }
            (Some(id), _) if self.removed.contains(&id) => {
                return Reply::error(format!("ERR member {id} was removed from the cluster"));
            }
            (Some(id), _) => id,
            (None, Some(other)) => {
                if self.members[&other].raft_addr != info.raft_addr {
                    return Reply::error(format!(
                        "ERR a member named '{}' already exists at {}; pick another --id or CLUSTER REMOVE it first",
                        info.name, self.members[&other].raft_addr
                    ));
                }
                other
            }
            // Number 1 is the founding member's, even before it has
            // recorded itself (a join may be applied first).
            (None, None) => NodeId(self.last_id.max(FOUNDER.0) + 1),
        };
        self.last_id = self.last_id.max(id.0);
        self.members.insert(id, info);
        Reply::Array(Some(vec![Reply::Integer(id.0 as i64), Reply::bulk(cluster_id.to_string())]))
    }
}

/// `CASHE.MEMBER` arguments for a member recording itself or joining.
pub fn member_command(info: &MemberInfo, id: Option<NodeId>) -> Vec<Vec<u8>> {
    let mut args = vec![
        CASHE_MEMBER.as_bytes().to_vec(),
        info.name.as_bytes().to_vec(),
        info.raft_addr.as_bytes().to_vec(),
        info.client_addr.as_bytes().to_vec(),
    ];
    if let Some(id) = id {
        args.push(id.0.to_string().into_bytes());
    }
    if let Some(tls) = &info.tls_client_addr {
        args.push(TLS_KEYWORD.as_bytes().to_vec());
        args.push(tls.as_bytes().to_vec());
    }
    args
}

/// The `CLUSTER JOIN name raft_addr client_addr [TLS tls_client_addr]
/// [proof]` command a new node sends to a member; under a cluster secret
/// it ends with the proof that the node knows it, made over every field
/// it carries ([`join_fields`]). A node without a TLS port sends the form
/// older builds take.
pub fn join_command(me: &MemberInfo, secret: Option<&ClusterSecret>) -> Vec<Vec<u8>> {
    let mut args: Vec<Vec<u8>> = [b"CLUSTER".as_slice(), b"JOIN"].iter().map(|w| w.to_vec()).collect();
    args.extend([&me.name, &me.raft_addr, &me.client_addr].iter().map(|w| w.as_bytes().to_vec()));
    if let Some(tls) = &me.tls_client_addr {
        args.push(TLS_KEYWORD.as_bytes().to_vec());
        args.push(tls.as_bytes().to_vec());
    }
    if let Some(secret) = secret {
        args.push(handshake::join_proof(secret, &join_fields(me)).into_bytes());
    }
    args
}

/// What a join's proof covers: the name and the three addresses, or two
/// without a TLS port (the fields a join of an older build proved, so its
/// proofs still check). The proof length-prefixes each field, so the two
/// shapes cannot prove each other.
fn join_fields(info: &MemberInfo) -> Vec<&[u8]> {
    let mut fields = vec![info.name.as_bytes(), info.raft_addr.as_bytes(), info.client_addr.as_bytes()];
    fields.extend(info.tls_client_addr.as_ref().map(|tls| tls.as_bytes()));
    fields
}

/// `CLUSTER JOIN`'s arguments after the three addresses: `[TLS addr]
/// [proof]` (the keyword in any case, as Redis's keywords; a proof is hex
/// and never reads `TLS`). `None` for any other shape.
fn join_extras(extras: &[Vec<u8>]) -> Option<(Option<String>, Option<&Vec<u8>>)> {
    let is_tls = |word: &Vec<u8>| word.eq_ignore_ascii_case(TLS_KEYWORD.as_bytes());
    let text = |word: &Vec<u8>| String::from_utf8_lossy(word).into_owned();
    match extras {
        [] => Some((None, None)),
        [keyword, tls] if is_tls(keyword) => Some((Some(text(tls)), None)),
        [keyword, tls, proof] if is_tls(keyword) => Some((Some(text(tls)), Some(proof))),
        [proof] if !is_tls(proof) => Some((None, Some(proof))),
        _ => None,
    }
}

const JOIN_NEEDS_SECRET: &str =
    "ERR this cluster has a cluster secret: start the joining node with the same \
     --cluster-secret";
const JOIN_WRONG_SECRET: &str = "ERR the joining node's cluster secret is not this cluster's";
const JOIN_NO_SECRET: &str = "ERR this cluster has no cluster secret, but the joining node has one";

/// What a reply to `CLUSTER JOIN` means for the joining node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JoinAnswer {
    /// Recorded: start empty as this member of this cluster, whose key
    /// space is in `shards` groups (1 when the reply does not say: a
    /// cluster of one shard answers as before shards).
    Joined { id: NodeId, cluster_id: u64, shards: u32, replicas: u32 },
    /// Not now (no leader, a leader change, a transfer): ask again.
    Retry(String),
    /// Refused for a reason asking again cannot fix (a name clash).
    Refused(String),
}

pub fn join_answer(reply: &Reply) -> JoinAnswer {
    match reply {
        Reply::Array(Some(items)) => match items.as_slice() {
            [Reply::Integer(id), Reply::Bulk(Some(cluster)), layout @ ..] if *id > 0 && layout.len() <= 2 => {
                let number = |n: &i64| u32::try_from(*n).ok();
                let layout = match layout {
                    [] => Some((1, 0)),
                    [Reply::Integer(s)] => number(s).filter(|s| *s >= 1).map(|s| (s, 0)),
                    [Reply::Integer(s), Reply::Integer(r)] => number(s).filter(|s| *s >= 1).zip(number(r)),
                    _ => None,
                };
                match (String::from_utf8_lossy(cluster).parse::<u64>(), layout) {
                    (Ok(cluster_id), Some((shards, replicas))) => {
                        JoinAnswer::Joined { id: NodeId(*id as u64), cluster_id, shards, replicas }
                    }
                    _ => JoinAnswer::Refused(format!(
                        "bad cluster id or shard count in the join reply {reply:?}"
                    )),
                }
            }
            _ => JoinAnswer::Refused(format!("unexpected join reply {reply:?}")),
        },
        Reply::Error(e) if ["CLUSTERDOWN", "TIMEOUT", "TRYAGAIN"].iter().any(|p| e.starts_with(p)) => {
            JoinAnswer::Retry(e.clone())
        }
        Reply::Error(e) => JoinAnswer::Refused(e.clone()),
        other => JoinAnswer::Refused(format!("unexpected join reply {other:?}")),
    }
}

impl Node {
    pub fn directory(&self) -> &Directory {
        &self.directory
    }

    /// True once this node knows its removal is committed (from its own
    /// log, or told by the leader): the shell should stop it.
    pub fn is_removed(&self) -> bool {
        let id = self.raft.id();
        self.removed_notice
            || (self.directory.removed.contains(&id) && !self.raft.committed_membership().contains(id))
    }

    /// The leader's work each tick: record itself if the directory does not
    /// hold its current addresses, then move Raft's membership one step
    /// towards the directory. Refusals (a change already in flight, the
    /// leader not ready yet) are retried on a later tick.
    pub(super) fn reconcile_membership(&mut self) {
        if !self.raft.is_leader() {
            return;
        }
        let id = self.raft.id();
        if let Some(me) = &self.config.me {
            if self.self_record_at.is_some_and(|at| self.raft.applied() >= at) {
                self.self_record_at = None;
            }
            if self.directory.members.get(&id) != Some(me)
                && !self.directory.removed.contains(&id)
                && self.self_record_at.is_none()
            {
                let args = member_command(me, Some(id));
                self.self_record_at = self.propose_internal(args);
            }
        }
        let directory = std::mem::take(&mut self.directory);
        self.step_membership_towards(&directory, &Node::every_member(&directory));
        self.directory = directory;
    }

    /// A key group's leader's work each tick (`router`): move its Raft
    /// membership one step towards `target`, the members the group is
    /// placed on (`placement`) by `directory`, the home group's (a key
    /// group keeps no directory of its own).
    pub(super) fn follow_membership(&mut self, directory: &Directory, target: &BTreeSet<NodeId>) {
        if !self.raft.is_leader() {
            return;
        }
        // A leader the directory removed, or placed elsewhere, hands the
        // group over first (its successor then removes it), rather than
        // removing itself and leaving the group without a leader for an
        // election timeout; one placed elsewhere waits until every target
        // member votes.
        if self.must_hand_over(directory, target) {
            if self.raft.transfer_target().is_none() {
                let _ = self.transfer_leadership_among(|v| target.contains(&v) || target.is_empty());
            }
            return;
        }
        self.step_membership_towards(directory, target);
    }

    /// Whether this leader must hand its group over before the membership
    /// moves on: the directory removed it, or placed the group elsewhere
    /// and every target member votes.
    pub(super) fn must_hand_over(&self, directory: &Directory, target: &BTreeSet<NodeId>) -> bool {
        let me = self.raft.id();
        let membership = self.raft.membership();
        let removed = directory.removed.contains(&me) && membership.contains(me);
        let moved_off = directory.members.contains_key(&me)
            && !target.contains(&me)
            && membership.learners.is_empty()
            && target.iter().all(|m| membership.is_voter(*m));
        self.raft.is_leader() && (removed || moved_off)
    }

    /// One single-server change towards `target` (`membership_change_towards`).
    /// Refusals (a change in flight, a leader not ready) are retried on a
    /// later tick.
    fn step_membership_towards(&mut self, directory: &Directory, target: &BTreeSet<NodeId>) {
        if let Some(change) = self.membership_change_towards(directory, target) {
            let _ = self.raft.propose_membership_change(change);
        }
    }

    /// The next single-server change that would bring the Raft membership
    /// closer to `target` (members of `directory`), if it differs: a
    /// removed member out first, else a target member missing from Raft in
    /// as a learner (the core promotes it once caught up), else a learner
    /// placed elsewhere out, else, once every target member votes, a voter
    /// placed elsewhere out (never this leader: it hands over first, see
    /// `follow_membership`). A member Raft holds that the directory does not
    /// know (a founder not yet recorded) is left alone.
    pub(super) fn membership_change_towards(
        &self,
        directory: &Directory,
        target: &BTreeSet<NodeId>,
    ) -> Option<MembershipChange> {
        let membership = self.raft.membership();
        if let Some(gone) = membership.members().find(|m| directory.removed.contains(m)) {
            return Some(MembershipChange::Remove(gone));
        }
        if let Some(missing) = target.iter().find(|m| !membership.contains(**m)) {
            return Some(MembershipChange::AddLearner(*missing));
        }
        let placed_elsewhere = |m: &NodeId| directory.members.contains_key(m) && !target.contains(m);
        if let Some(learner) = membership.learners.iter().find(|m| placed_elsewhere(m)) {
            return Some(MembershipChange::Remove(*learner));
        }
        if !membership.learners.is_empty() || !target.iter().all(|m| membership.is_voter(*m)) {
            return None;
        }
        let me = self.raft.id();
        membership
            .voters
            .iter()
            .find(|m| placed_elsewhere(m) && **m != me)
            .map(|m| MembershipChange::Remove(*m))
    }

    /// The members the home group's membership moves towards: every member
    /// of the directory (the home group is on every member).
    pub(super) fn every_member(directory: &Directory) -> BTreeSet<NodeId> {
        directory.members.keys().copied().filter(|m| !directory.removed.contains(m)).collect()
    }

    /// `CLUSTER ...`; `None` when the command is not CLUSTER.
    pub(super) fn cluster_command(&mut self, ticket: Ticket, name: &[u8], args: &[Vec<u8>]) -> Option<Reply> {
        if name != b"CLUSTER" {
            return None;
        }
        let Some(sub) = args.get(1).map(|s| s.to_ascii_uppercase()) else {
            return Some(Reply::error("ERR wrong number of arguments for 'cluster' command"));
        };
        let text = |i: usize| args.get(i).map(|a| String::from_utf8_lossy(a).into_owned());
        if let Some(reply) = self.slots_command(ticket.conn, &sub, args) {
            return Some(reply);
        }
        let reply = match (sub.as_slice(), args.len()) {
            (b"INFO", 2) => Reply::text(self.cluster_info()),
            (b"MYID", 2) => Reply::bulk(self.member_name(self.raft.id())),
            (b"JOIN", 5..=8) => {
                let Some((tls_client_addr, proof)) = join_extras(&args[5..]) else {
                    return Some(Reply::error("ERR syntax error"));
                };
                let info = MemberInfo {
                    name: text(2).unwrap_or_default(),
                    raft_addr: text(3).unwrap_or_default(),
                    client_addr: text(4).unwrap_or_default(),
                    tls_client_addr,
                };
                let proven = match (&self.config.cluster_secret, proof) {
                    (Some(secret), Some(proof)) => {
                        handshake::check_join_proof(secret, &join_fields(&info), proof)
                            .then_some(())
                            .ok_or(JOIN_WRONG_SECRET)
                    }
                    (Some(_), None) => Err(JOIN_NEEDS_SECRET),
                    (None, Some(_)) => Err(JOIN_NO_SECRET),
                    (None, None) => Ok(()),
                };
                if info.name.is_empty() || info.name.contains(char::is_whitespace) {
                    Reply::error("ERR member names must be non-empty and without spaces")
                } else if info.tls_client_addr.as_ref().is_some_and(|tls| tls.is_empty()) {
                    Reply::error("ERR the TLS client address must not be empty")
                } else if let Err(refused) = proven {
                    tracing::warn!(name = %info.name, raft_addr = %info.raft_addr, reason = refused, "refused a join");
                    Reply::error(refused)
                } else {
                    let command = self.claim_join(member_command(&info, None));
                    return self.internal_write(ticket, command);
                }
            }
            (b"LEAVE", 2) => {
                let me = self.member_name(self.raft.id());
                return self.internal_write(ticket, vec![CASHE_FORGET.into(), me.into_bytes()]);
            }
            (b"REMOVE", 3) => {
                let target = args[2].clone();
                return self.internal_write(ticket, vec![CASHE_FORGET.into(), target]);
            }
            (
                b"INFO" | b"NODES" | b"MYID" | b"JOIN" | b"LEAVE" | b"REMOVE" | b"SLOTS" | b"SHARDS" | b"KEYSLOT"
                | b"COUNTKEYSINSLOT" | b"GETKEYSINSLOT",
                _,
            ) => Reply::error(format!(
                "ERR wrong number of arguments for 'cluster|{}' command",
                String::from_utf8_lossy(&sub).to_lowercase()
            )),
            _ => Reply::error(format!(
                "ERR unknown subcommand '{}'. Try CLUSTER INFO, NODES, SLOTS, SHARDS, MYID, KEYSLOT key, \
                 COUNTKEYSINSLOT slot, GETKEYSINSLOT slot count, JOIN name raftaddr clientaddr [TLS tlsaddr] [proof], \
                 LEAVE or REMOVE name.",
                String::from_utf8_lossy(&args[1])
            )),
        };
        Some(reply)
    }

    /// A join (`CASHE.MEMBER` without a number) as the member that took
    /// `CLUSTER JOIN` proposes it: it claims the number its name has at the
    /// same address in this member's directory once its whole log is
    /// applied. A retry of a join that did record the node, taken before a
    /// `CLUSTER REMOVE` of it and applied after (forwarded late, or held
    /// over a leader change), is then refused ("was removed"), where it
    /// would have recorded a new member under the old name that no process
    /// runs: a learner that never catches up, with replicas placed on it.
    /// (A join taken after the removal is a new node's: it gets a new
    /// number. So does a retry taken before the first try was recorded
    /// anywhere and applied after the removal: the gap told in
    /// `docs/architecture.md`, "Members".) Any other command is returned
    /// as it is.
    pub(super) fn claim_join(&self, args: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
        let unclaimed = match args.as_slice() {
            [command, _, _, _] => command == CASHE_MEMBER.as_bytes(),
            [command, _, _, _, keyword, _] => {
                command == CASHE_MEMBER.as_bytes() && keyword == TLS_KEYWORD.as_bytes()
            }
            _ => false,
        };
        if !unclaimed {
            return args;
        }
        let text = |i: usize| String::from_utf8_lossy(&args[i]).into_owned();
        let info = MemberInfo {
            name: text(1),
            raft_addr: text(2),
            client_addr: text(3),
            tls_client_addr: (args.len() == 6).then(|| text(5)),
        };
        let directory = self.directory_through_log();
        let known = directory.by_name(&info.name);
        match known.filter(|id| directory.members[id].raft_addr == info.raft_addr) {
            Some(id) => member_command(&info, Some(id)),
            None => args,
        }
    }

    /// Starts a write of an internal command for a client; its reply comes
    /// when it is applied.
    fn internal_write(&mut self, ticket: Ticket, args: Vec<Vec<u8>>) -> Option<Reply> {
        self.enqueue(ticket, Work::Write { args });
        None
    }

    /// Redis 7.0's fields (without the bus message counters cashe does
    /// not keep; `cluster_size` counts shards with a known master), then
    /// cashe's own: the cluster id, this member's name, the leader, the
    /// voters and learners of the group, its commit index.
    fn cluster_info(&self) -> String {
        let membership = self.raft.committed_membership();
        let leader = self.raft.leader().map(|l| self.member_name(l)).unwrap_or_else(|| "-".into());
        let shards = self.shards();
        let served: u32 = shards.iter().flat_map(|s| &s.slots).map(|(a, b)| u32::from(b - a) + 1).sum();
        let state = if served == u32::from(SLOTS) { "ok" } else { "fail" };
        format!(
            "cluster_state:{state}\r\ncluster_slots_assigned:{SLOTS}\r\ncluster_slots_ok:{served}\r\n\
             cluster_slots_pfail:0\r\ncluster_slots_fail:{}\r\ncluster_known_nodes:{}\r\ncluster_size:{}\r\n\
             cluster_current_epoch:{}\r\ncluster_my_epoch:{}\r\ncluster_id:{:016x}\r\ncluster_my_name:{}\r\n\
             cluster_leader:{leader}\r\ncluster_voters:{}\r\ncluster_learners:{}\r\ncluster_commit_index:{}\r\n",
            u32::from(SLOTS) - served,
            membership.members().count(),
            shards.len(),
            self.raft.term(),
            self.raft.term(),
            self.config.cluster_id,
            self.member_name(self.raft.id()),
            membership.voters.len(),
            membership.learners.len(),
            self.raft.commit(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::{ConnId, NodeConfig};
    use crate::raft::Raft;

    fn words(text: &str) -> Vec<Vec<u8>> {
        text.split(' ').map(|w| w.as_bytes().to_vec()).collect()
    }

    fn member(name: &str, tls: Option<&str>) -> MemberInfo {
        MemberInfo {
            name: name.into(),
            raft_addr: format!("h:4{}", &name[4..]),
            client_addr: format!("h:3{}", &name[4..]),
            tls_client_addr: tls.map(str::to_string),
        }
    }

    /// Applies `CASHE.MEMBER <args>` to `directory`.
    fn apply(directory: &mut Directory, args: &str) -> Reply {
        directory.apply(CASHE_MEMBER, &words(args), 7)
    }

    fn joined(id: u64) -> Reply {
        Reply::Array(Some(vec![Reply::Integer(id as i64), Reply::bulk("7")]))
    }

    /// The 3- and 4-argument forms are the only ones any build wrote before
    /// TLS addresses: they apply as they always did, and a member without
    /// a TLS port still writes exactly them.
    #[test]
    fn the_old_cashe_member_forms_apply_as_before_and_are_still_written() {
        let mut directory = Directory::default();
        assert_eq!(apply(&mut directory, "raft2 h:42 h:32"), joined(2), "a join gets the next number");
        assert_eq!(apply(&mut directory, "raft1 h:41 h:31 1"), joined(1), "a member records itself");
        assert_eq!(apply(&mut directory, "raft1 h:41 h:31 x"), Reply::error("ERR member id is not a number"));
        assert_eq!(
            apply(&mut directory, "raft1 h:41 h:31 TLS"),
            Reply::error("ERR member id is not a number")
        );
        assert_eq!(
            apply(&mut directory, "raft1 h:41 h:31 1 tls h:61"),
            Reply::error("ERR malformed CASHE.MEMBER entry"),
            "the keyword is exact"
        );
        assert_eq!(
            apply(&mut directory, "raft1 h:41 h:31 1 2 3 4"),
            Reply::error("ERR malformed CASHE.MEMBER entry")
        );
        let mut expected = Directory { last_id: 2, ..Directory::default() };
        expected.members.insert(NodeId(1), member("raft1", None));
        expected.members.insert(NodeId(2), member("raft2", None));
        assert_eq!(directory, expected, "refused entries change nothing");

        assert_eq!(
            member_command(&member("raft1", None), Some(NodeId(1))),
            words("CASHE.MEMBER raft1 h:41 h:31 1")
        );
        assert_eq!(member_command(&member("raft2", None), None), words("CASHE.MEMBER raft2 h:42 h:32"));
    }

    #[test]
    fn the_tls_forms_of_cashe_member_record_the_tls_address() {
        let mut directory = Directory::default();
        let tls = member("raft2", Some("h:62"));
        let args = member_command(&tls, None);
        assert_eq!(args, words("CASHE.MEMBER raft2 h:42 h:32 TLS h:62"));
        assert_eq!(directory.apply(CASHE_MEMBER, &args[1..], 7), joined(2));
        let args = member_command(&member("raft1", Some("h:61")), Some(NodeId(1)));
        assert_eq!(args, words("CASHE.MEMBER raft1 h:41 h:31 1 TLS h:61"));
        assert_eq!(directory.apply(CASHE_MEMBER, &args[1..], 7), joined(1));
        assert_eq!(directory.members[&NodeId(2)], tls);
        assert_eq!(directory.members[&NodeId(1)].tls_client_addr.as_deref(), Some("h:61"));
        // A member restarted without its TLS port records that too.
        assert_eq!(apply(&mut directory, "raft1 h:41 h:31 1"), joined(1));
        assert_eq!(directory.members[&NodeId(1)], member("raft1", None));
    }

    #[test]
    fn a_tls_client_is_told_the_tls_address_where_a_member_has_one() {
        let both = member("raft1", Some("h:61"));
        assert_eq!(both.client_addr_for(Transport::Tls), "h:61");
        assert_eq!(both.client_addr_for(Transport::Plain), "h:31");
        let plain = member("raft2", None);
        assert_eq!(plain.client_addr_for(Transport::Tls), "h:32");
    }

    /// A join without a TLS port is the command (and, under a secret, the
    /// proof) older builds send and take; with one, the proof covers it.
    #[test]
    fn joins_carry_the_tls_address_under_the_proof_and_old_joins_still_parse() {
        let secret = ClusterSecret::new(b"s").unwrap();
        let old = member("raft2", None);
        let command = join_command(&old, Some(&secret));
        let proof = handshake::join_proof(&secret, &[b"raft2", b"h:42", b"h:32"]);
        assert_eq!(
            command,
            [words("CLUSTER JOIN raft2 h:42 h:32"), vec![proof.clone().into_bytes()]].concat()
        );
        assert_eq!(join_extras(&command[5..]), Some((None, Some(&proof.clone().into_bytes()))));
        assert_eq!(join_extras(&[]), Some((None, None)));

        let tls = member("raft2", Some("h:62"));
        let command = join_command(&tls, Some(&secret));
        assert_eq!(&command[..7], words("CLUSTER JOIN raft2 h:42 h:32 TLS h:62").as_slice());
        let (address, proof) = join_extras(&command[5..]).unwrap();
        assert_eq!(address.as_deref(), Some("h:62"));
        assert!(handshake::check_join_proof(&secret, &join_fields(&tls), proof.unwrap()));
        assert!(
            !handshake::check_join_proof(&secret, &join_fields(&old), proof.unwrap()),
            "covers the TLS address"
        );
        let moved = member("raft2", Some("h:63"));
        assert!(!handshake::check_join_proof(&secret, &join_fields(&moved), proof.unwrap()));
        assert_eq!(join_extras(&words("tls h:62")), Some((Some("h:62".into()), None)), "any case");
        assert_eq!(join_extras(&words("TLS")), None);
        assert_eq!(join_extras(&words("a b")), None);
    }

    /// A one-node cluster whose member has both ports, leading and
    /// recorded in its directory.
    fn leading(me: MemberInfo) -> Node {
        let mut config = NodeConfig::new(FOUNDER);
        config.me = Some(me);
        let mut node = Node::restore(config, 1, Raft::bootstrap([FOUNDER])).unwrap();
        for now_ms in 0..200 {
            node.tick(now_ms);
            // Everything it asks is durable at once.
            for _ in 0..10 {
                let Some(&(last, _)) = node.take_output().persist.last() else { break };
                node.persisted(last);
            }
            if node.directory().members.get(&FOUNDER) == node.config.me.as_ref() {
                return node;
            }
        }
        panic!("the node never recorded itself: {:?}", node.directory());
    }

    /// The one reply to a command on a new connection over `transport`.
    fn ask(node: &mut Node, conn: ConnId, transport: Transport, command: &str) -> Reply {
        node.connected(conn, transport, 1_000);
        node.client(conn, words(command), 1_000);
        for _ in 0..10 {
            let output = node.take_output();
            if let Some((to, reply)) = output.replies.into_iter().next() {
                assert_eq!(to, conn);
                return reply;
            }
            if let Some(&(last, _)) = output.persist.last() {
                node.persisted(last);
            }
        }
        panic!("{command} got no reply");
    }

    fn text(reply: Reply) -> String {
        match reply {
            Reply::Bulk(Some(text)) | Reply::Verbatim { text, .. } => String::from_utf8_lossy(&text).into(),
            other => panic!("not text: {other:?}"),
        }
    }

    #[test]
    fn cluster_nodes_shows_a_tls_connection_the_tls_address() {
        let mut node = leading(member("raft1", Some("h:61")));
        let tls = text(ask(&mut node, ConnId(1), Transport::Tls, "CLUSTER NODES"));
        assert_eq!(tls, "raft1 h:61@41 myself,master - 0 0 2 connected 0-16383\n");
        let plain = text(ask(&mut node, ConnId(2), Transport::Plain, "CLUSTER NODES"));
        assert_eq!(plain, "raft1 h:31@41 myself,master - 0 0 2 connected 0-16383\n");
    }

    /// A join retried by a node that is being removed: the retry is taken
    /// while the directory still lists the node, and applied after its
    /// removal. It is refused, where it used to record a new member under
    /// the old name that no process would ever run.
    #[test]
    fn a_join_applied_after_its_member_was_removed_is_refused_not_recorded_anew() {
        let mut node = leading(member("raft1", None));
        let join = "CLUSTER JOIN raft2 h:42 h:32";
        let first = ask(&mut node, ConnId(1), Transport::Plain, join);
        assert!(matches!(&first, Reply::Array(Some(items)) if items[0] == Reply::Integer(2)), "{first:?}");
        let unclaimed = member_command(&member("raft2", None), None);
        let retry = node.claim_join(unclaimed.clone());
        assert_eq!(retry, words("CASHE.MEMBER raft2 h:42 h:32 2"));
        assert_eq!(ask(&mut node, ConnId(2), Transport::Plain, "CLUSTER REMOVE raft2"), Reply::ok());
        let mut directory = node.directory().clone();
        assert_eq!(
            directory.apply(CASHE_MEMBER, &retry[1..], 7),
            Reply::error("ERR member 2 was removed from the cluster")
        );
        assert_eq!(&directory, node.directory(), "refused, it changes nothing");
        // Unclaimed, as before, it recorded a member nobody runs.
        assert_eq!(directory.apply(CASHE_MEMBER, &unclaimed[1..], 7), joined(3));
        // A node starting afresh under the name joins as a new member.
        assert_eq!(node.claim_join(unclaimed.clone()), unclaimed);
        let again = ask(&mut node, ConnId(4), Transport::Plain, join);
        assert!(matches!(&again, Reply::Array(Some(items)) if items[0] == Reply::Integer(3)), "{again:?}");
        // The TLS form claims too; a name at another address does not.
        let tls = member_command(&member("raft2", Some("h:62")), None);
        assert_eq!(node.claim_join(tls), words("CASHE.MEMBER raft2 h:42 h:32 3 TLS h:62"));
        let elsewhere = words("CASHE.MEMBER raft2 h:49 h:32");
        assert_eq!(node.claim_join(elsewhere.clone()), elsewhere);
    }

    #[test]
    fn one_shard_serves_every_slot_and_its_keys_are_found_by_slot() {
        let mut node = leading(member("raft1", None));
        let int = |i: i64| Reply::Integer(i);
        let slots = ask(&mut node, ConnId(1), Transport::Plain, "CLUSTER SLOTS");
        // RESP2: the empty metadata map is an empty array.
        let me = Reply::Array(Some(vec![
            Reply::bulk("h"),
            int(31),
            Reply::bulk("raft1"),
            Reply::Array(Some(vec![])),
        ]));
        assert_eq!(slots, Reply::Array(Some(vec![Reply::Array(Some(vec![int(0), int(16383), me]))])));
        assert_eq!(ask(&mut node, ConnId(2), Transport::Plain, "CLUSTER KEYSLOT foo"), int(12182));
        for key in ["foo", "{foo}a", "{foo}b", "bar"] {
            assert_eq!(ask(&mut node, ConnId(3), Transport::Plain, &format!("SET {key} v")), Reply::ok());
        }
        assert_eq!(ask(&mut node, ConnId(4), Transport::Plain, "CLUSTER COUNTKEYSINSLOT 12182"), int(3));
        let keys = ask(&mut node, ConnId(5), Transport::Plain, "CLUSTER GETKEYSINSLOT 12182 2");
        assert_eq!(keys, Reply::Array(Some(vec![Reply::bulk("foo"), Reply::bulk("{foo}a")])));
        let errors = [
            ("CLUSTER COUNTKEYSINSLOT 16384", "ERR Invalid slot"),
            ("CLUSTER COUNTKEYSINSLOT x", "ERR value is not an integer or out of range"),
            ("CLUSTER GETKEYSINSLOT 1 -1", "ERR Invalid slot or number of keys"),
            ("CLUSTER KEYSLOT", "ERR wrong number of arguments for 'cluster|keyslot' command"),
        ];
        for (command, error) in errors {
            assert_eq!(
                ask(&mut node, ConnId(6), Transport::Plain, command),
                Reply::error(error),
                "{command}"
            );
        }
    }
}
