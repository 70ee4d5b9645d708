//! Who the members are and where they listen: the replicated directory, and
//! the `CLUSTER` commands that administer it.
//!
//! Raft knows members only by number ([`NodeId`]). The directory maps each
//! number to the member's name (its `--id`) and its peer and client
//! addresses. It is replicated state like the key space: it changes only by
//! applying two internal commands, refused from clients,
//!
//! - `CASHE.MEMBER name raft_addr client_addr [id]`: record a member. Without
//!   `id` (a join) the member gets the next unused number, or keeps its own if
//!   the same name is joining again from the same peer address (a retried
//!   join); with `id`, a running member records its own addresses.
//! - `CASHE.FORGET name`: the member is to leave; its number is never reused.
//!
//! and it travels in snapshots. The directory is the membership the cluster
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
    /// `host:port` of its client listener.
    pub client_addr: String,
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
            (CASHE_MEMBER, [name, raft_addr, client_addr, rest @ ..]) if rest.len() <= 1 => {
                let info = MemberInfo {
                    name: name.clone(),
                    raft_addr: raft_addr.clone(),
                    client_addr: client_addr.clone(),
                };
                let claimed = match rest.first().map(|id| id.parse::<u64>()) {
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
    args
}

/// The `CLUSTER JOIN` command a new node sends to a member; under a
/// cluster secret it ends with the proof that the node knows it.
pub fn join_command(me: &MemberInfo, secret: Option<&ClusterSecret>) -> Vec<Vec<u8>> {
    let fields = join_fields(me);
    let mut args: Vec<Vec<u8>> = [b"CLUSTER".as_slice(), b"JOIN"].iter().map(|w| w.to_vec()).collect();
    args.extend(fields.iter().map(|w| w.to_vec()));
    if let Some(secret) = secret {
        args.push(handshake::join_proof(secret, &fields).into_bytes());
    }
    args
}

fn join_fields(info: &MemberInfo) -> [&[u8]; 3] {
    [info.name.as_bytes(), info.raft_addr.as_bytes(), info.client_addr.as_bytes()]
}

const JOIN_NEEDS_SECRET: &str =
    "ERR this cluster has a cluster secret: start the joining node with the same \
     --cluster-secret";
const JOIN_WRONG_SECRET: &str = "ERR the joining node's cluster secret is not this cluster's";
const JOIN_NO_SECRET: &str = "ERR this cluster has no cluster secret, but the joining node has one";

/// What a reply to `CLUSTER JOIN` means for the joining node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JoinAnswer {
    /// Recorded: start empty as this member of this cluster.
    Joined { id: NodeId, cluster_id: u64 },
    /// Not now (no leader, a leader change, a transfer): ask again.
    Retry(String),
    /// Refused for a reason asking again cannot fix (a name clash).
    Refused(String),
}

pub fn join_answer(reply: &Reply) -> JoinAnswer {
    match reply {
        Reply::Array(Some(items)) => match items.as_slice() {
            [Reply::Integer(id), Reply::Bulk(Some(cluster))] if *id > 0 => {
                match String::from_utf8_lossy(cluster).parse::<u64>() {
                    Ok(cluster_id) => JoinAnswer::Joined { id: NodeId(*id as u64), cluster_id },
                    Err(_) => JoinAnswer::Refused(format!("bad cluster id in the join reply {reply:?}")),
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
        let membership = self.raft.membership();
        let change = if let Some(gone) = membership.members().find(|m| self.directory.removed.contains(m)) {
            Some(MembershipChange::Remove(gone))
        } else {
            self.directory
                .members
                .keys()
                .find(|m| !membership.contains(**m) && !self.directory.removed.contains(m))
                .map(|m| MembershipChange::AddLearner(*m))
        };
        if let Some(change) = change {
            let _ = self.raft.propose_membership_change(change);
        }
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
        let reply = match (sub.as_slice(), args.len()) {
            (b"INFO", 2) => Reply::text(self.cluster_info()),
            (b"NODES", 2) => Reply::text(self.cluster_nodes()),
            (b"MYID", 2) => Reply::bulk(self.member_name(self.raft.id())),
            (b"JOIN", 5 | 6) => {
                let info = MemberInfo {
                    name: text(2).unwrap_or_default(),
                    raft_addr: text(3).unwrap_or_default(),
                    client_addr: text(4).unwrap_or_default(),
                };
                let proof = args.get(5);
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
                } else if let Err(refused) = proven {
                    tracing::warn!(name = %info.name, raft_addr = %info.raft_addr, reason = refused, "refused a join");
                    Reply::error(refused)
                } else {
                    return self.internal_write(ticket, member_command(&info, None));
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
            (b"INFO" | b"NODES" | b"MYID" | b"JOIN" | b"LEAVE" | b"REMOVE", _) => Reply::error(format!(
                "ERR wrong number of arguments for 'cluster|{}' command",
                String::from_utf8_lossy(&sub).to_lowercase()
            )),
            _ => Reply::error(format!(
                "ERR unknown subcommand '{}'. Try CLUSTER INFO, NODES, MYID, JOIN name raftaddr clientaddr [proof], \
                 LEAVE or REMOVE name.",
                String::from_utf8_lossy(&args[1])
            )),
        };
        Some(reply)
    }

    /// Starts a write of an internal command for a client; its reply comes
    /// when it is applied.
    fn internal_write(&mut self, ticket: Ticket, args: Vec<Vec<u8>>) -> Option<Reply> {
        self.enqueue(ticket, Work::Write { args });
        None
    }

    fn cluster_info(&self) -> String {
        let membership = self.raft.committed_membership();
        let leader = self.raft.leader().map(|l| self.member_name(l)).unwrap_or_else(|| "-".into());
        let state = if self.raft.leader().is_some() { "ok" } else { "fail" };
        format!(
            "cluster_state:{state}\r\ncluster_known_nodes:{}\r\ncluster_size:{}\r\ncluster_current_epoch:{}\r\n\
             cluster_my_epoch:{}\r\ncluster_id:{:016x}\r\ncluster_my_name:{}\r\ncluster_leader:{leader}\r\n\
             cluster_learners:{}\r\ncluster_commit_index:{}\r\n",
            membership.members().count(),
            membership.voters.len(),
            self.raft.term(),
            self.raft.term(),
            self.config.cluster_id,
            self.member_name(self.raft.id()),
            membership.learners.len(),
            self.raft.commit(),
        )
    }

    /// One line per member, in number order: `name client_addr@raft_port
    /// flags leader_name match_index term link role`, where `link` is
    /// `connected`/`disconnected` as the leader sees it (`-` on followers).
    fn cluster_nodes(&self) -> String {
        let membership = self.raft.membership();
        let progress = self.raft.progress();
        let me = self.raft.id();
        let leader = self.raft.leader();
        let leader_name = leader.map(|l| self.member_name(l)).unwrap_or_else(|| "-".into());
        let mut out = String::new();
        for id in membership.members() {
            let info = self.directory.members.get(&id);
            let client = info.map(|i| i.client_addr.as_str()).unwrap_or("?");
            let raft_port = info.and_then(|i| i.raft_addr.rsplit(':').next()).unwrap_or("?");
            let mut flags = Vec::new();
            if id == me {
                flags.push("myself");
            }
            flags.push(if Some(id) == leader { "leader" } else { "follower" });
            let role = if membership.is_voter(id) { "voter" } else { "learner" };
            let matched = if id == me {
                self.raft.durable_index().0
            } else {
                progress.get(&id).map(|p| p.match_index.0).unwrap_or(0)
            };
            // Only a leader knows whether a peer answers; "-" elsewhere.
            let link = match progress.get(&id) {
                _ if id == me => "connected",
                Some(p) if p.recent_active => "connected",
                Some(_) => "disconnected",
                None => "-",
            };
            out.push_str(&format!(
                "{} {client}@{raft_port} {} {leader_name} {matched} {} {link} {role}\n",
                self.member_name(id),
                flags.join(","),
                self.raft.term(),
            ));
        }
        out
    }
}
