//! The node layer: Raft + KV + requests in flight, on an in-memory cluster.

use cashe::node::{ConnId, Node, NodeConfig, NodeMessage, CLUSTERDOWN, TIMEOUT};
use cashe::protocol::Reply;
use cashe::raft::{Lsn, NodeId, Raft, Record, Recovered};
use std::collections::{BTreeSet, VecDeque};

struct Member {
    node: Node,
    unsynced: Vec<(Lsn, Record)>,
    durable: Recovered,
    replies: Vec<(ConnId, Reply)>,
}

struct Cluster {
    members: Vec<Member>,
    network: VecDeque<(NodeId, NodeId, NodeMessage)>,
    isolated: BTreeSet<NodeId>,
    now_ms: u64,
}

fn config(id: u64, snapshot_entries: u64) -> NodeConfig {
    let mut config = NodeConfig::new(NodeId(id));
    config.raft.election_ticks = 5;
    config.snapshot_entries = snapshot_entries;
    config.forward_timeout_ticks = 20;
    config
}

fn args(text: &str) -> Vec<Vec<u8>> {
    text.split(' ').map(|w| w.as_bytes().to_vec()).collect()
}

impl Cluster {
    fn new(size: u64, snapshot_entries: u64) -> Cluster {
        let ids: Vec<NodeId> = (1..=size).map(NodeId).collect();
        let members = ids
            .iter()
            .map(|id| {
                let recovered = Raft::bootstrap(ids.clone());
                let node = Node::restore(config(id.0, snapshot_entries), id.0, recovered.clone()).unwrap();
                Member { node, unsynced: Vec::new(), durable: recovered, replies: Vec::new() }
            })
            .collect();
        Cluster { members, network: VecDeque::new(), isolated: BTreeSet::new(), now_ms: 1_000_000 }
    }

    fn at(&mut self, id: NodeId) -> &mut Member {
        &mut self.members[id.0 as usize - 1]
    }

    fn store(&self, id: NodeId) -> &cashe::kv::Store {
        self.members[id.0 as usize - 1].node.store()
    }

    /// One shell turn for `id`: drain, persist+fsync, send.
    fn turn(&mut self, id: NodeId) {
        let output = self.at(id).node.take_output();
        let member = self.at(id);
        member.unsynced.extend(output.persist);
        member.replies.extend(output.replies);
        if let Some(snapshot) = output.snapshot {
            member.durable.install_snapshot(snapshot);
        }
        for (to, message) in output.send {
            if !self.isolated.contains(&id) && !self.isolated.contains(&to) {
                self.network.push_back((id, to, message));
            }
        }
        let member = self.at(id);
        if let Some((last, _)) = member.unsynced.last().cloned() {
            for (_, record) in member.unsynced.drain(..) {
                member.durable.apply(record).unwrap();
            }
            member.node.persisted(last);
        }
    }

    fn ids(&self) -> Vec<NodeId> {
        self.members.iter().map(|m| m.node.raft().id()).collect()
    }

    /// Delivers and syncs until two rounds of turns change nothing (bounded):
    /// a `persisted` call's effects surface only in the next turn.
    fn settle(&mut self) {
        let mut quiet_rounds = 0;
        for _ in 0..10_000 {
            let replies_before: usize = self.members.iter().map(|m| m.replies.len()).sum();
            for id in self.ids() {
                self.turn(id);
            }
            let replies_after: usize = self.members.iter().map(|m| m.replies.len()).sum();
            let Some((from, to, message)) = self.network.pop_front() else {
                let quiet =
                    replies_before == replies_after && self.members.iter().all(|m| m.unsynced.is_empty());
                quiet_rounds = if quiet { quiet_rounds + 1 } else { 0 };
                if quiet_rounds >= 2 {
                    return;
                }
                continue;
            };
            quiet_rounds = 0;
            if !self.isolated.contains(&from) && !self.isolated.contains(&to) {
                self.at(to).node.step(from, message);
            }
        }
        panic!("cluster did not settle");
    }

    fn tick_all(&mut self, rounds: usize) {
        for _ in 0..rounds {
            self.now_ms += 100;
            let now = self.now_ms;
            for id in self.ids() {
                self.at(id).node.tick(now);
            }
            self.settle();
        }
    }

    fn elect(&mut self, id: NodeId) {
        for _ in 0..50 {
            let now = self.now_ms;
            self.at(id).node.tick(now);
            self.settle();
            if self.at(id).node.raft().is_leader() {
                return;
            }
        }
        panic!("{id:?} did not become leader");
    }

    fn send(&mut self, id: NodeId, conn: u64, text: &str) {
        let now = self.now_ms;
        self.at(id).node.client(ConnId(conn), args(text), now);
    }

    /// Sends a command and settles; returns the one reply it got.
    fn request(&mut self, id: NodeId, conn: u64, text: &str) -> Reply {
        self.send(id, conn, text);
        self.settle();
        self.take_reply(id, conn).unwrap_or_else(|| panic!("no reply to {text} at {id:?}"))
    }

    fn take_reply(&mut self, id: NodeId, conn: u64) -> Option<Reply> {
        let replies = &mut self.at(id).replies;
        let position = replies.iter().position(|(c, _)| *c == ConnId(conn))?;
        Some(replies.remove(position).1)
    }
}

#[test]
fn a_write_at_the_leader_is_answered_once_applied_and_read_linearizably_on_a_follower() {
    let mut cluster = Cluster::new(3, 1_000);
    cluster.elect(NodeId(1));
    assert_eq!(cluster.request(NodeId(1), 1, "SET k v"), Reply::ok());
    assert_eq!(cluster.request(NodeId(3), 2, "GET k"), Reply::bulk("v"));
}

#[test]
fn a_write_at_a_follower_is_forwarded_and_answered_by_the_follower() {
    let mut cluster = Cluster::new(3, 1_000);
    cluster.elect(NodeId(1));
    assert_eq!(cluster.request(NodeId(2), 7, "INCR n"), Reply::Integer(1));
    assert_eq!(cluster.request(NodeId(3), 8, "INCR n"), Reply::Integer(2));
    assert_eq!(cluster.request(NodeId(1), 9, "GET n"), Reply::bulk("2"));
}

#[test]
fn without_a_known_leader_writes_and_reads_get_clusterdown() {
    let mut cluster = Cluster::new(3, 1_000);
    assert_eq!(cluster.request(NodeId(2), 1, "SET k v"), Reply::error(CLUSTERDOWN));
    assert_eq!(cluster.request(NodeId(2), 1, "GET k"), Reply::error(CLUSTERDOWN));
}

#[test]
fn a_write_pending_when_leadership_is_lost_gets_timeout() {
    let mut cluster = Cluster::new(3, 1_000);
    cluster.elect(NodeId(1));
    cluster.isolated.insert(NodeId(1));
    cluster.send(NodeId(1), 1, "SET k lost");
    cluster.settle();
    assert!(cluster.take_reply(NodeId(1), 1).is_none(), "not committed: no answer yet");
    cluster.tick_all(12); // check-quorum makes the isolated leader step down
    assert!(!cluster.at(NodeId(1)).node.raft().is_leader());
    assert_eq!(cluster.take_reply(NodeId(1), 1), Some(Reply::error(TIMEOUT)));
}

#[test]
fn readonly_connections_read_local_state_and_readwrite_restores_linearizable_reads() {
    let mut cluster = Cluster::new(3, 1_000);
    cluster.elect(NodeId(1));
    assert_eq!(cluster.request(NodeId(1), 1, "SET k old"), Reply::ok());
    cluster.isolated.insert(NodeId(3));
    assert_eq!(cluster.request(NodeId(1), 1, "SET k new"), Reply::ok());
    assert_eq!(cluster.request(NodeId(3), 5, "READONLY"), Reply::ok());
    assert_eq!(cluster.request(NodeId(3), 5, "GET k"), Reply::bulk("old"), "a stale local read");
    assert_eq!(cluster.request(NodeId(3), 5, "READWRITE"), Reply::ok());
    cluster.send(NodeId(3), 5, "GET k");
    cluster.settle();
    assert_eq!(cluster.take_reply(NodeId(3), 5), None, "a cut-off follower cannot serve a linearizable read");
}

#[test]
fn expired_keys_are_reclaimed_by_the_leader_on_every_replica() {
    let mut cluster = Cluster::new(3, 1_000);
    cluster.elect(NodeId(1));
    assert_eq!(cluster.request(NodeId(1), 1, "SET gone v PX 150"), Reply::ok());
    assert_eq!(cluster.request(NodeId(1), 1, "SET kept v"), Reply::ok());
    cluster.tick_all(20);
    for id in cluster.ids() {
        assert_eq!(
            cluster.store(id).expired_keys(u64::MAX, 10),
            Vec::<Vec<u8>>::new(),
            "{id:?}: expired keys were deleted"
        );
        assert_eq!(cluster.store(id), cluster.store(NodeId(1)), "replicas agree");
    }
    assert_eq!(cluster.request(NodeId(2), 2, "DBSIZE"), Reply::Integer(1));
}

#[test]
fn a_follower_behind_compaction_catches_up_from_a_snapshot_with_the_same_store() {
    let mut cluster = Cluster::new(3, 5);
    cluster.elect(NodeId(1));
    cluster.isolated.insert(NodeId(3));
    for k in 0..20 {
        assert_eq!(cluster.request(NodeId(1), 1, &format!("SET key{k} value{k}")), Reply::ok());
    }
    assert!(cluster.at(NodeId(1)).node.raft().log().snapshot_index().0 > 5, "the leader compacted");
    cluster.isolated.clear();
    cluster.tick_all(5);
    assert_eq!(cluster.store(NodeId(3)), cluster.store(NodeId(1)));
    assert_eq!(cluster.request(NodeId(3), 2, "GET key19"), Reply::bulk("value19"));
}
