//! Redis Cluster's view of a cashe cluster: which node serves which hash
//! slot, the `CLUSTER` commands that tell clients so, and the `-MOVED`
//! redirections a cluster-aware client is given.
//!
//! The key space is Redis Cluster's 16,384 slots ([`crate::kv::slot`]).
//! Today one Raft group holds them all: it is one shard, whose master is
//! the group's leader and whose replicas are its other voters
//! ([`Node::shards`], the one place that decides it). Every answer here
//! comes from that list, so `CLUSTER SLOTS`, `SHARDS` and `NODES` name the
//! leader this node knows, and name nothing while it knows none.
//!
//! **Routing.** A node that does not lead a key's shard either forwards the
//! command to the leader (as it always has: plain clients see no
//! difference) or answers `-MOVED slot host:port`, the leader's client
//! address for the connection's transport. It redirects when it runs with
//! `--cluster-mode redirect`, or when the connection has shown that it
//! routes by slot itself: it asked for the topology (`CLUSTER SLOTS`,
//! `SHARDS` or `NODES`, the commands cluster clients discover with). A
//! `READONLY` connection's reads are served from this node's own state, as
//! Redis's replicas serve them, and its writes are redirected if the
//! connection routes by slot, else forwarded: `READONLY` alone is cashe's
//! switch to fast local reads for any client, as it was before cashe spoke
//! Redis Cluster (cluster clients send it only on connections they read
//! from). Commands without keys (PING, DBSIZE, SCAN, FLUSHALL) are never
//! redirected. As in Redis's `processCommand`, the check comes after
//! the ACL's and before MULTI queues a command, so a redirected command
//! inside MULTI makes EXEC answer `-EXECABORT`.
//!
//! `CLUSTER COUNTKEYSINSLOT` and `GETKEYSINSLOT` read this node's own state,
//! like Redis's: they are for operators, not linearizable reads.

use super::{ConnId, Node, Transport, CLUSTERDOWN};
use crate::kv::slot::{group_of_slot, key_slot, SLOTS};
use crate::kv::{self, Access};
use crate::protocol::Reply;
use crate::raft::NodeId;
use std::collections::BTreeSet;

/// What a node does with a keyed command for a shard it does not lead
/// (`--cluster-mode`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ClusterMode {
    /// Redirect connections that route by slot themselves, forward the rest.
    #[default]
    Forward,
    /// Redirect every connection.
    Redirect,
}

/// A shard as clients are told of it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Shard {
    /// Inclusive slot ranges, ascending.
    pub slots: Vec<(u16, u16)>,
    pub master: NodeId,
    /// The other voters, in member order.
    pub replicas: Vec<NodeId>,
}

/// The router's view of the key space in several groups, which it hands the
/// home group's node for `CLUSTER` and `INFO` ([`Node::set_shards`]).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ShardViews {
    pub shards: Vec<Shard>,
    /// The members whose beats the router heard within an election
    /// timeout (`CLUSTER SHARDS`' health, `CLUSTER NODES`' link state).
    pub answering: BTreeSet<NodeId>,
}

const INVALID_SLOT: &str = "ERR Invalid slot";
const INVALID_SLOT_OR_COUNT: &str = "ERR Invalid slot or number of keys";
const NOT_AN_INTEGER: &str = "ERR value is not an integer or out of range";

/// `host:port` split as Redis gives them: the host without IPv6 brackets,
/// the port a number (0 if it is not one).
fn host_port(addr: &str) -> (&str, i64) {
    let (host, port) = addr.rsplit_once(':').unwrap_or((addr, ""));
    let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    (host, port.parse().unwrap_or(0))
}

fn slot_number(arg: &[u8]) -> Result<i64, Reply> {
    kv::parse_integer(arg).ok_or_else(|| Reply::error(NOT_AN_INTEGER))
}

impl Node {
    /// The shards clients are told of: the router's, when it holds the key
    /// space in several groups ([`Node::set_shards`]); else one holding
    /// every slot, mastered by the leader this node knows; none while it
    /// knows no leader.
    pub(super) fn shards(&self) -> Vec<Shard> {
        if let Some(views) = &self.shard_views {
            return views.shards.clone();
        }
        let Some(master) = self.raft.leader() else { return Vec::new() };
        let voters = self.raft.membership().voters.iter().copied();
        let replicas = voters.filter(|v| *v != master).collect();
        vec![Shard { slots: vec![(0, SLOTS - 1)], master, replicas }]
    }

    /// The home group's view of the key space's groups, from the router
    /// (`router`): what `CLUSTER SLOTS`, `SHARDS`, `NODES` and `INFO` tell.
    pub(super) fn set_shards(&mut self, views: ShardViews) {
        self.shard_views = Some(views);
    }

    /// Whether a keyed command of this connection for a shard this member
    /// does not lead is redirected rather than forwarded, and whether its
    /// reads are served locally (`READONLY`): for the router.
    pub(super) fn redirect_policy(&self, conn: ConnId) -> (bool, bool) {
        let session = self.sessions.get(&conn);
        let redirect =
            self.config.cluster_mode == ClusterMode::Redirect || session.is_some_and(|s| s.routes_by_slot);
        (redirect, session.is_some_and(|s| s.readonly))
    }

    /// `MOVED slot address` naming `leader`'s client address for this
    /// connection, or `CLUSTERDOWN` without one.
    pub(super) fn moved(&self, conn: ConnId, slot: u16, leader: Option<NodeId>) -> String {
        let transport = self.clients.transport_of(conn);
        match leader.and_then(|leader| self.directory.members.get(&leader)) {
            Some(leader) => format!("MOVED {slot} {}", leader.client_addr_for(transport)),
            None => CLUSTERDOWN.to_string(),
        }
    }

    /// The slot of the first key of `args` that is not in this group's
    /// slots, with several shards (the home group holds no key): a command
    /// routed to the wrong group is refused, never served or applied here.
    /// Every replica of a group has the same shards and group number, so
    /// they refuse the same entries.
    pub(super) fn foreign_slot(&self, args: &[Vec<u8>]) -> Option<u16> {
        let (shards, group) = (self.config.shards, self.config.group);
        let expiry = args.first().is_some_and(|name| name.eq_ignore_ascii_case(kv::CASHE_EXPIRE.as_bytes()));
        // The leader's own expiry of its own store's keys: a key written
        // where it should not have been (before this check existed) must
        // still be able to expire.
        if shards <= 1 || expiry || kv::classify(args).is_err() {
            return None;
        }
        if self.config.raft.planted_bug.active(crate::raft::PlantedBug::ApplyWithStaleMap) {
            return None;
        }
        let keys = kv::command_keys(args);
        keys.iter().map(|key| key_slot(key)).find(|slot| group == 0 || group_of_slot(*slot, shards) != group)
    }

    /// `foreign_slot`'s refusal for a client's command (inside MULTI it
    /// dooms the transaction, as the router's `-CROSSSLOT` does), but for
    /// the commands a transaction queues at the home group.
    pub(super) fn foreign_keys(&mut self, conn: ConnId, name: &[u8], args: &[Vec<u8>]) -> Option<Reply> {
        let in_multi = self.sessions.get(&conn).is_some_and(|session| session.multi.is_some());
        if in_multi && self.config.group == 0 {
            // The router queues a transaction at the home group and runs it
            // in its keys' group at EXEC: queued here, never applied here.
            return None;
        }
        let slot = self.foreign_slot(args)?;
        Some(self.reject(conn, name, foreign_slot_error(slot, self.config.group)))
    }

    /// Applies a command to the store, unless its keys are not this
    /// group's (`foreign_slot`): then nothing happens, on every replica.
    pub(super) fn apply_to_store(&mut self, args: &[Vec<u8>], now_ms: u64) -> Reply {
        match self.foreign_slot(args) {
            Some(slot) => Reply::Error(foreign_slot_error(slot, self.config.group)),
            None => self.store.apply(args, now_ms),
        }
    }

    /// Marks a connection as routing by slot itself (it asked for the
    /// topology): from now on it is redirected.
    pub(super) fn routes_by_slot(&mut self, conn: ConnId) {
        if let Some(session) = self.sessions.get_mut(&conn) {
            session.routes_by_slot = true;
        }
    }

    /// `-MOVED` (or `-CLUSTERDOWN` without a known leader) for a keyed
    /// command this node should not serve for this connection; `None` to
    /// go on. `name` is upper case.
    pub(super) fn redirection(&mut self, conn: ConnId, name: &[u8], args: &[Vec<u8>]) -> Option<Reply> {
        // Most commands stop here, before they are classified.
        if self.raft.is_leader() || !self.redirect_policy(conn).0 {
            return None;
        }
        // Only commands that will run: unknown ones and wrong arities get
        // their own errors.
        let access = match kv::classify(args) {
            Ok(access) => access,
            Err(_) if name == b"WATCH" => Access::Read,
            Err(_) => return None,
        };
        let first = *kv::command_keys(args).first()?;
        let (leads, leader) = (self.raft.is_leader(), self.raft.leader());
        let text = self.moved_unless_served(conn, leads, leader, key_slot(first), access == Access::Read)?;
        Some(self.reject(conn, name, text))
    }

    /// The one rule of redirection, for this node's own group and for the
    /// router's groups alike: a keyed command of slot `slot`, of a group
    /// this member leads or not (`leads`, `leader` the group's leader), is
    /// answered `-MOVED` (this text) on a connection that is redirected
    /// unless this member leads the group or it is a read of a `READONLY`
    /// connection; `None` to serve it (here, or through forwarding).
    pub(super) fn moved_unless_served(
        &self,
        conn: ConnId,
        leads: bool,
        leader: Option<NodeId>,
        slot: u16,
        read: bool,
    ) -> Option<String> {
        let (redirect, reads_locally) = self.redirect_policy(conn);
        if !redirect || leads || (read && reads_locally) {
            return None;
        }
        Some(self.moved(conn, slot, leader))
    }

    /// `CLUSTER KEYSLOT`, `COUNTKEYSINSLOT`, `GETKEYSINSLOT`, `SLOTS`,
    /// `SHARDS` and `NODES` (`sub` upper case); `None` for other
    /// subcommands or arities.
    pub(super) fn slots_command(&mut self, conn: ConnId, sub: &[u8], args: &[Vec<u8>]) -> Option<Reply> {
        let transport = self.clients.transport_of(conn);
        let reply = match (sub, args.len()) {
            (b"KEYSLOT", 3) => Reply::Integer(key_slot(&args[2]).into()),
            (b"COUNTKEYSINSLOT", 3) => match slot_number(&args[2]) {
                Err(reply) => reply,
                Ok(slot) => match u16::try_from(slot).ok().filter(|s| *s < SLOTS) {
                    None => Reply::error(INVALID_SLOT),
                    Some(slot) => Reply::Integer(self.store.keys_in_slot(slot, self.now_ms).count() as i64),
                },
            },
            (b"GETKEYSINSLOT", 4) => match (slot_number(&args[2]), slot_number(&args[3])) {
                (Err(reply), _) | (_, Err(reply)) => reply,
                (Ok(slot), Ok(count)) => {
                    match (u16::try_from(slot).ok().filter(|s| *s < SLOTS), usize::try_from(count)) {
                        (Some(slot), Ok(count)) => {
                            let keys = self.store.keys_in_slot(slot, self.now_ms).take(count);
                            Reply::Array(Some(keys.map(Reply::bulk).collect()))
                        }
                        _ => Reply::error(INVALID_SLOT_OR_COUNT),
                    }
                }
            },
            (b"SLOTS", 2) => {
                self.routes_by_slot(conn);
                Reply::Array(Some(self.cluster_slots(transport)))
            }
            (b"SHARDS", 2) => {
                self.routes_by_slot(conn);
                Reply::Array(Some(self.cluster_shards(transport)))
            }
            (b"NODES", 2) => {
                self.routes_by_slot(conn);
                Reply::text(self.cluster_nodes(transport))
            }
            _ => return None,
        };
        Some(reply)
    }

    /// A member's client address for `transport`, split.
    fn client_host_port(&self, id: NodeId, transport: Transport) -> (String, i64) {
        let addr = self.directory.members.get(&id).map_or("", |info| info.client_addr_for(transport));
        let (host, port) = host_port(addr);
        (host.to_string(), port)
    }

    /// `CLUSTER SLOTS`: per slot range, its master's and replicas' `[host,
    /// port, id, {}]` (Redis 7.0's fourth element: no hostname metadata).
    /// With the key space in several groups every member is the master of
    /// some and a replica of others, which clients cannot model (redis-py
    /// gives a node the role it first appears with, and then sends
    /// DBSIZE, KEYS or SCAN to some masters only): the ranges are listed
    /// with their masters alone, so that every member is a master to them.
    fn cluster_slots(&self, transport: Transport) -> Vec<Reply> {
        let node = |id: NodeId| {
            let (host, port) = self.client_host_port(id, transport);
            Reply::Array(Some(vec![
                Reply::bulk(host),
                Reply::Integer(port),
                Reply::bulk(self.member_name(id)),
                Reply::Map(Vec::new()),
            ]))
        };
        let mut ranges = Vec::new();
        let with_replicas = self.shard_views.is_none();
        for shard in self.shards() {
            for (start, end) in &shard.slots {
                let mut entry = vec![Reply::Integer((*start).into()), Reply::Integer((*end).into())];
                let replicas = shard.replicas.iter().copied().filter(|_| with_replicas);
                entry.extend(std::iter::once(shard.master).chain(replicas).map(node));
                ranges.push(Reply::Array(Some(entry)));
            }
        }
        ranges
    }

    /// How far a member's log is known to reach (`replication-offset`):
    /// this node's own durable index, or the leader's view of a follower.
    fn known_match(&self, id: NodeId) -> u64 {
        if id == self.raft.id() {
            return self.raft.durable_index().0;
        }
        self.raft.progress().get(&id).map_or(0, |p| p.match_index.0)
    }

    /// Whether a member answers, as far as this node knows: with the key
    /// space in several groups, whether the router heard its beats within
    /// an election timeout ([`Node::set_shards`]); else, on the leader,
    /// whether it answered the leader lately (elsewhere every member
    /// counts as answering).
    fn answers(&self, id: NodeId) -> bool {
        if id == self.raft.id() {
            return true;
        }
        match &self.shard_views {
            Some(views) => views.answering.contains(&id),
            None => self.raft.heard_recently(id).unwrap_or(true),
        }
    }

    /// `CLUSTER SHARDS`: per shard, its slot ranges and its nodes, in
    /// Redis 7.0's fields.
    fn cluster_shards(&self, transport: Transport) -> Vec<Reply> {
        let text = |s: &str| Reply::bulk(s.to_string());
        let node = |id: NodeId, role: &str| {
            let (host, port) = self.client_host_port(id, transport);
            let port_name = if transport == Transport::Tls { "tls-port" } else { "port" };
            let health = if self.answers(id) { "online" } else { "failed" };
            let fields = vec![
                (text("id"), Reply::bulk(self.member_name(id))),
                (text(port_name), Reply::Integer(port)),
                (text("ip"), Reply::bulk(host.clone())),
                (text("endpoint"), Reply::bulk(host)),
                (text("role"), text(role)),
                (text("replication-offset"), Reply::Integer(self.known_match(id) as i64)),
                (text("health"), text(health)),
            ];
            Reply::Map(fields)
        };
        let shard = |shard: Shard| {
            let slots = shard.slots.iter().flat_map(|(start, end)| [*start, *end]);
            let slots = slots.map(|s| Reply::Integer(s.into())).collect();
            let replicas = shard.replicas.iter().map(|id| node(*id, "replica"));
            let nodes = std::iter::once(node(shard.master, "master")).chain(replicas).collect();
            Reply::Map(vec![
                (text("slots"), Reply::Array(Some(slots))),
                (text("nodes"), Reply::Array(Some(nodes))),
            ])
        };
        self.shards().into_iter().map(shard).collect()
    }

    /// `CLUSTER NODES` in Redis 7.0's format, one line per member in member
    /// order: `id host:port@peer_port flags master ping_sent pong_received
    /// epoch link slots…`. The id is the member's name; a shard's master
    /// is `master` with its slot ranges, everything else `slave` of the
    /// leader (`-` when none is known); the epoch is the Raft term; pings
    /// are not timed (0).
    pub(super) fn cluster_nodes(&self, transport: Transport) -> String {
        let shards = self.shards();
        let me = self.raft.id();
        let leader = self.raft.leader();
        let leader_name = leader.map_or_else(|| "-".to_string(), |l| self.member_name(l));
        let mut out = String::new();
        for id in self.raft.membership().members() {
            let info = self.directory.members.get(&id);
            let client = info.map_or("", |i| i.client_addr_for(transport));
            let peer_port = info.and_then(|i| i.raft_addr.rsplit(':').next()).unwrap_or("0");
            let mastered: Vec<String> = shards
                .iter()
                .filter(|shard| shard.master == id)
                .flat_map(|shard| &shard.slots)
                .map(|(start, end)| if start == end { format!("{start}") } else { format!("{start}-{end}") })
                .collect();
            let myself = if id == me { "myself," } else { "" };
            let (role, master) =
                if mastered.is_empty() { ("slave", leader_name.as_str()) } else { ("master", "-") };
            let link = if self.answers(id) { "connected" } else { "disconnected" };
            let slots: String = mastered.iter().map(|range| format!(" {range}")).collect();
            out.push_str(&format!(
                "{} {client}@{peer_port} {myself}{role} {master} 0 0 {} {link}{slots}\n",
                self.member_name(id),
                self.raft.term().0,
            ));
        }
        out
    }
}

fn foreign_slot_error(slot: u16, group: u32) -> String {
    format!("ERR slot {slot} is not in the slots of group {group}: not served here (a routing error)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_split_as_redis_gives_them() {
        assert_eq!(host_port("127.0.0.1:3000"), ("127.0.0.1", 3000));
        assert_eq!(host_port("[::1]:3000"), ("::1", 3000));
        assert_eq!(host_port(":3000"), ("", 3000));
        assert_eq!(host_port("nonsense"), ("nonsense", 0));
    }
}
