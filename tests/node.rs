//! The node layer: Raft + KV + requests in flight, on an in-memory cluster.

#[path = "common/members.rs"]
mod members;

use cashe::node::{ConnId, Node, NodeConfig, NodeMessage, CLUSTERDOWN, READ_TIMEOUT, TIMEOUT};
use cashe::protocol::Reply;
use cashe::raft::{Lsn, MessageKind, NodeId, PlantedBug, Raft, Record, Recovered, Term};
use members::{args, info};
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
    config.log_retain_entries = 0;
    config.forward_timeout_ticks = 20;
    config
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

    /// A one-node cluster whose node records its name and addresses, as the
    /// server does.
    fn with_directory(snapshot_entries: u64) -> Cluster {
        let mut config = config(1, snapshot_entries);
        config.me = Some(info(0));
        config.cluster_id = 77;
        let recovered = Raft::bootstrap([NodeId(1)]);
        let node = Node::restore(config, 1, recovered.clone()).unwrap();
        let member = Member { node, unsynced: Vec::new(), durable: recovered, replies: Vec::new() };
        Cluster {
            members: vec![member],
            network: VecDeque::new(),
            isolated: BTreeSet::new(),
            now_ms: 1_000_000,
        }
    }

    /// Joins a new node through `via` as the server does: CLUSTER JOIN,
    /// then start it empty with the number it was given.
    fn join(&mut self, via: NodeId, n: u64) -> NodeId {
        let me = info(n);
        let text = format!("CLUSTER JOIN {} {} {}", me.name, me.raft_addr, me.client_addr);
        let reply = self.request(via, 1000 + n, &text);
        let Reply::Array(Some(items)) = &reply else { panic!("join reply {reply:?}") };
        let (Reply::Integer(id), Reply::Bulk(Some(cluster))) = (&items[0], &items[1]) else {
            panic!("{reply:?}")
        };
        assert_eq!(cluster.as_slice(), b"77");
        let id = NodeId(*id as u64);
        assert_eq!(id.0 as usize, self.members.len() + 1, "numbers are handed out in order");
        let mut config = config(id.0, self.members[0].node.raft().config().election_ticks as u64);
        config.snapshot_entries = 5;
        config.me = Some(me);
        config.cluster_id = 77;
        let node = Node::restore(config, id.0, Recovered::default()).unwrap();
        self.members.push(Member {
            node,
            unsynced: Vec::new(),
            durable: Recovered::default(),
            replies: Vec::new(),
        });
        id
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
    cluster.tick_all(21);
    assert_eq!(
        cluster.take_reply(NodeId(3), 5),
        Some(Reply::error(READ_TIMEOUT)),
        "nor keep its client waiting"
    );
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

#[test]
fn nodes_join_through_any_member_catch_up_become_voters_and_can_be_removed() {
    let mut cluster = Cluster::with_directory(5);
    cluster.elect(NodeId(1));
    cluster.tick_all(2);
    assert_eq!(cluster.at(NodeId(1)).node.directory().members.get(&NodeId(1)), Some(&info(0)));
    for k in 0..12 {
        assert_eq!(cluster.request(NodeId(1), 1, &format!("SET key{k} v{k}")), Reply::ok());
    }
    let two = cluster.join(NodeId(1), 1);
    cluster.tick_all(10);
    assert!(cluster.at(NodeId(1)).node.raft().membership().is_voter(two), "caught up and promoted");
    // A join through a follower is forwarded; a retried join gets the same number.
    let three = cluster.join(NodeId(2), 2);
    cluster.tick_all(10);
    let again = cluster.request(NodeId(2), 9, "CLUSTER JOIN raft2 127.0.0.1:4002 127.0.0.1:3002");
    assert_eq!(again, Reply::Array(Some(vec![Reply::Integer(3), Reply::bulk("77")])));
    let clash = cluster.request(NodeId(2), 9, "CLUSTER JOIN raft2 127.0.0.1:4999 127.0.0.1:3999");
    assert!(matches!(&clash, Reply::Error(e) if e.contains("already exists")), "{clash:?}");
    let membership = cluster.at(NodeId(1)).node.raft().membership().clone();
    assert_eq!(membership.voters.len(), 3, "{membership:?}");
    assert_eq!(cluster.request(three, 2, "GET key11"), Reply::bulk("v11"));
    assert_eq!(cluster.store(three), cluster.store(NodeId(1)));
    let directory = cluster.at(NodeId(1)).node.directory().clone();
    assert_eq!(cluster.at(three).node.directory(), &directory);

    let nodes = cluster.request(three, 3, "CLUSTER NODES");
    let Reply::Bulk(Some(nodes)) = nodes else { panic!() };
    let nodes = String::from_utf8(nodes).unwrap();
    assert_eq!(nodes.lines().count(), 3, "{nodes}");
    assert!(nodes.contains("raft2 127.0.0.1:3002@4002 myself,slave raft0 0 0 "), "{nodes}");

    assert_eq!(cluster.request(three, 4, "CLUSTER REMOVE raft1"), Reply::ok());
    cluster.tick_all(10);
    let membership = cluster.at(NodeId(1)).node.raft().committed_membership().clone();
    assert!(!membership.contains(two), "{membership:?}");
    assert!(cluster.at(two).node.is_removed());
    assert!(!cluster.at(three).node.is_removed());
    assert_eq!(cluster.request(three, 5, "SET after removal"), Reply::ok());
    let unknown = cluster.request(three, 5, "CLUSTER REMOVE nobody");
    assert_eq!(unknown, Reply::error("ERR no member named 'nobody'"));
    let refused = cluster.request(three, 5, "CASHE.MEMBER x y z");
    assert!(matches!(&refused, Reply::Error(e) if e.contains("not by clients")), "{refused:?}");
}

#[test]
fn replies_leave_in_the_order_their_commands_arrived_on_a_connection() {
    let mut cluster = Cluster::new(3, 1_000);
    cluster.elect(NodeId(1));
    // A forwarded write, a linearizable read and an instant reply: ready in
    // the opposite order, released in command order.
    cluster.send(NodeId(2), 4, "SET k v");
    cluster.send(NodeId(2), 4, "GET k");
    cluster.send(NodeId(2), 4, "PING");
    let early = cluster.at(NodeId(2)).node.take_output();
    assert!(early.replies.is_empty(), "PING waits for the write before it: {:?}", early.replies);
    cluster.at(NodeId(2)).node.persisted(Lsn(0));
    for (to, message) in early.send {
        cluster.network.push_back((NodeId(2), to, message));
    }
    cluster.settle();
    let replies: Vec<Reply> = std::iter::from_fn(|| cluster.take_reply(NodeId(2), 4)).collect();
    assert_eq!(replies, vec![Reply::ok(), Reply::bulk("v"), Reply::Simple("PONG".into())]);
}

#[test]
fn a_join_applied_before_the_founder_records_itself_never_takes_number_one() {
    let mut cluster = Cluster::with_directory(1_000);
    cluster.elect(NodeId(1));
    assert!(
        cluster.at(NodeId(1)).node.directory().members.is_empty(),
        "the founder has not recorded itself yet"
    );
    let joined = cluster.join(NodeId(1), 1);
    assert_eq!(joined, NodeId(2));
    cluster.tick_all(10);
    let directory = cluster.at(NodeId(1)).node.directory().clone();
    assert_eq!(directory.members.get(&NodeId(1)), Some(&info(0)));
    assert_eq!(directory.members.get(&NodeId(2)), Some(&info(1)));
    assert!(cluster.at(NodeId(1)).node.raft().membership().is_voter(NodeId(2)));
}

#[test]
fn a_leader_that_leaves_and_is_cut_off_learns_of_its_removal_by_probing() {
    let mut cluster = Cluster::with_directory(1_000);
    cluster.elect(NodeId(1));
    cluster.tick_all(2);
    cluster.join(NodeId(1), 1);
    cluster.tick_all(10);
    cluster.join(NodeId(1), 2);
    cluster.tick_all(10);
    assert_eq!(cluster.at(NodeId(1)).node.raft().membership().voters.len(), 3);
    assert_eq!(cluster.request(NodeId(1), 1, "CLUSTER LEAVE"), Reply::ok());
    // The leader's next tick proposes its own removal; cut it off before
    // the entry leaves, so only its own log says it is out.
    cluster.now_ms += 100;
    let now = cluster.now_ms;
    cluster.at(NodeId(1)).node.tick(now);
    cluster.isolated.insert(NodeId(1));
    cluster.settle();
    assert!(!cluster.at(NodeId(1)).node.raft().membership().contains(NodeId(1)));
    cluster.tick_all(40);
    let survivors = cluster.at(NodeId(2)).node.raft().committed_membership().clone();
    assert!(!survivors.contains(NodeId(1)), "the others removed it: {survivors:?}");
    assert!(!cluster.at(NodeId(1)).node.is_removed(), "cut off, it cannot know yet");
    cluster.isolated.clear();
    cluster.tick_all(40);
    assert!(cluster.at(NodeId(1)).node.is_removed(), "its probe was answered");
}

impl Cluster {
    /// Sends every command in one go (a pipeline), settles, and returns the
    /// connection's replies in the order they left.
    fn pipeline(&mut self, id: NodeId, conn: u64, commands: &[&str]) -> Vec<Reply> {
        for text in commands {
            self.send(id, conn, text);
        }
        self.settle();
        std::iter::from_fn(|| self.take_reply(id, conn)).collect()
    }
}

fn int(n: i64) -> Reply {
    Reply::Integer(n)
}

/// Each connection's pipeline of writes and reads of its own keys, with
/// the answers Redis gives.
fn own_writes_pipeline(n: u64) -> (Vec<String>, Vec<Reply>) {
    let commands = [
        format!("SET k{n} v"),
        format!("GET k{n}"),
        format!("INCR c{n}"),
        format!("GET c{n}"),
        format!("APPEND a{n} xy"),
        format!("STRLEN a{n}"),
        format!("DEL k{n}"),
        format!("GET k{n}"),
        format!("SET k{n} 1"),
        format!("GET k{n}"),
        format!("SET k{n} 2"),
        format!("GET k{n}"),
    ];
    let replies = vec![
        Reply::ok(),
        Reply::bulk("v"),
        int(1),
        Reply::bulk("1"),
        int(2),
        int(2),
        int(1),
        Reply::nil(),
        Reply::ok(),
        Reply::bulk("1"),
        Reply::ok(),
        Reply::bulk("2"),
    ];
    (commands.to_vec(), replies)
}

#[test]
fn pipelined_commands_of_a_connection_take_effect_in_order_on_every_node() {
    let mut cluster = Cluster::new(3, 1_000);
    cluster.elect(NodeId(1));
    for n in 1..=3 {
        let (commands, expected) = own_writes_pipeline(n);
        let commands: Vec<&str> = commands.iter().map(String::as_str).collect();
        assert_eq!(cluster.pipeline(NodeId(n), n, &commands), expected, "pipeline at node {n}");
    }
}

/// A pipelined `SET k v`, `GET k` at the leader, where the leader's
/// heartbeats (and the read rounds they carry) go out and come back before
/// anything else it sent: the connection's replies once all is delivered.
fn set_get_with_heartbeats_first(bug: PlantedBug) -> Vec<Reply> {
    let mut cluster = Cluster::new(3, 1_000);
    for member in &mut cluster.members {
        let id = member.node.raft().id();
        let mut config = config(id.0, 1_000);
        config.raft.planted_bug = bug;
        member.node = Node::restore(config, id.0, member.durable.clone()).unwrap();
    }
    cluster.elect(NodeId(1));
    cluster.send(NodeId(1), 9, "SET k v");
    cluster.send(NodeId(1), 9, "GET k");
    let is_heartbeat = |message: &NodeMessage| matches!(message, NodeMessage::Raft(m) if matches!(m.kind, MessageKind::Heartbeat { .. }));
    for _ in 0..3 {
        let output = cluster.at(NodeId(1)).node.take_output();
        cluster.at(NodeId(1)).replies.extend(output.replies);
        cluster.at(NodeId(1)).unsynced.extend(output.persist);
        let (heartbeats, held): (Vec<_>, Vec<_>) =
            output.send.into_iter().partition(|(_, m)| is_heartbeat(m));
        cluster.network.extend(held.into_iter().map(|(to, m)| (NodeId(1), to, m)));
        for (to, message) in heartbeats {
            cluster.at(to).node.step(NodeId(1), message);
            for (back, message) in cluster.at(to).node.take_output().send {
                cluster.at(back).node.step(to, message);
            }
        }
    }
    cluster.settle();
    std::iter::from_fn(|| cluster.take_reply(NodeId(1), 9)).collect()
}

#[test]
fn a_read_waits_for_its_connections_writes_and_the_planted_bug_does_not() {
    assert_eq!(set_get_with_heartbeats_first(PlantedBug::None), [Reply::ok(), Reply::bulk("v")]);
    assert_eq!(
        set_get_with_heartbeats_first(PlantedBug::ReadSkipsOwnWrites),
        [Reply::ok(), Reply::nil()],
        "the planted bug reads from before the SET"
    );
}

#[test]
fn a_write_after_a_read_waits_for_it_so_the_read_never_sees_a_later_write() {
    let mut cluster = Cluster::new(3, 1_000);
    cluster.elect(NodeId(1));
    for n in 1..=3 {
        let replies =
            cluster.pipeline(NodeId(n), 10 + n, &["SET r 1", "GET r", "SET r 2", "GET r", "INCR r", "GET r"]);
        assert_eq!(
            replies,
            [Reply::ok(), Reply::bulk("1"), Reply::ok(), Reply::bulk("2"), int(3), Reply::bulk("3")]
        );
    }
}

#[test]
fn a_readonly_connection_reads_its_own_writes_at_a_follower() {
    let mut cluster = Cluster::new(3, 1_000);
    cluster.elect(NodeId(1));
    // The follower learns of the commit only after the leader answered: its
    // local read must wait until it applied the write.
    let replies = cluster.pipeline(NodeId(3), 5, &["READONLY", "SET mine v", "GET mine", "INCR n", "GET n"]);
    assert_eq!(replies, [Reply::ok(), Reply::ok(), Reply::bulk("v"), int(1), Reply::bulk("1")]);
}

#[test]
fn transactions_and_watch_keep_connection_order_when_pipelined() {
    let mut cluster = Cluster::new(3, 1_000);
    cluster.elect(NodeId(1));
    let replies =
        cluster.pipeline(NodeId(2), 6, &["SET w 1", "WATCH w", "MULTI", "INCR w", "GET w", "EXEC", "GET w"]);
    let queued = Reply::Simple("QUEUED".into());
    let exec = Reply::Array(Some(vec![int(2), Reply::bulk("2")]));
    assert_eq!(
        replies,
        [Reply::ok(), Reply::ok(), Reply::ok(), queued.clone(), queued.clone(), exec, Reply::bulk("2")]
    );
    // The connection's own write after WATCH touches the key: EXEC aborts.
    let replies =
        cluster.pipeline(NodeId(3), 7, &["WATCH w", "SET w mine", "MULTI", "GET w", "EXEC", "GET w"]);
    assert_eq!(
        replies,
        [Reply::ok(), Reply::ok(), Reply::ok(), queued, Reply::Array(None), Reply::bulk("mine")]
    );
}

#[test]
fn a_forward_meant_for_a_leader_of_an_older_term_is_refused_not_applied() {
    let mut cluster = Cluster::new(3, 1_000);
    cluster.elect(NodeId(1));
    let term = cluster.at(NodeId(1)).node.raft().term();
    let stale = NodeMessage::Forward { id: 1, term: Term(term.0 - 1), now_ms: 0, args: args("SET k stale") };
    cluster.at(NodeId(1)).node.step(NodeId(2), stale);
    let output = cluster.at(NodeId(1)).node.take_output();
    let answered = output.send.iter().any(|(to, m)| {
        *to == NodeId(2) && matches!(m, NodeMessage::ForwardReply { reply: Reply::Error(e), index: None, .. } if e.starts_with("TRYAGAIN"))
    });
    assert!(answered, "{:?}", output.send);
    assert!(output.persist.is_empty(), "nothing proposed");
}

// ---- blocking commands (node/blocking.rs, kv/blocking.rs) ----

fn popped(key: &str, element: &str) -> Reply {
    Reply::Array(Some(vec![Reply::bulk(key), Reply::bulk(element)]))
}

/// The list's length at every node (each read linearizable).
fn lengths(cluster: &mut Cluster, key: &str) -> Vec<Reply> {
    cluster.ids().into_iter().map(|id| cluster.request(id, 900 + id.0, &format!("LLEN {key}"))).collect()
}

#[test]
fn a_blocked_client_at_a_follower_is_served_by_a_push_through_another_node_first_come_first_served() {
    let mut cluster = Cluster::new(3, 1_000);
    cluster.elect(NodeId(1));
    cluster.send(NodeId(2), 1, "BLPOP q 0");
    cluster.settle();
    cluster.send(NodeId(3), 2, "BRPOP other q 0");
    cluster.settle();
    assert_eq!(cluster.take_reply(NodeId(2), 1), None, "blocked");
    assert_eq!(cluster.take_reply(NodeId(3), 2), None, "blocked");
    let info = cluster.request(NodeId(2), 5, "INFO clients");
    let text = match &info {
        Reply::Verbatim { text, .. } | Reply::Bulk(Some(text)) => String::from_utf8_lossy(text).into_owned(),
        other => panic!("INFO answered {other:?}"),
    };
    assert!(text.contains("blocked_clients:1\r\n"), "{text}");
    // One push of three elements serves both, the first to block first.
    assert_eq!(cluster.request(NodeId(1), 3, "RPUSH q a b c"), Reply::Integer(3));
    assert_eq!(cluster.take_reply(NodeId(2), 1), Some(popped("q", "a")));
    assert_eq!(cluster.take_reply(NodeId(3), 2), Some(popped("q", "c")));
    assert_eq!(lengths(&mut cluster, "q"), vec![Reply::Integer(1); 3], "b is left, on every replica");
    // Not blocked when there is something to pop.
    assert_eq!(cluster.request(NodeId(3), 4, "BRPOP q 0"), popped("q", "b"));
}

#[test]
fn a_blocked_client_times_out_with_nil_and_pops_nothing_afterwards() {
    let mut cluster = Cluster::new(3, 1_000);
    cluster.elect(NodeId(1));
    cluster.send(NodeId(2), 1, "BLPOP q 0.5");
    cluster.send(NodeId(2), 1, "GET after");
    cluster.settle();
    assert_eq!(cluster.take_reply(NodeId(2), 1), None);
    cluster.tick_all(3);
    assert_eq!(cluster.take_reply(NodeId(2), 1), None, "not before its timeout");
    cluster.tick_all(4);
    assert_eq!(cluster.take_reply(NodeId(2), 1), Some(Reply::Array(None)), "nil at the timeout");
    assert_eq!(cluster.take_reply(NodeId(2), 1), Some(Reply::nil()), "the next command ran after it");
    assert_eq!(cluster.request(NodeId(1), 2, "LPUSH q x"), Reply::Integer(1));
    assert_eq!(lengths(&mut cluster, "q"), vec![Reply::Integer(1); 3], "nobody waits any more");
    // BLMOVE's nil is a null bulk string.
    cluster.send(NodeId(3), 3, "BLMOVE empty dst LEFT RIGHT 0.2");
    cluster.tick_all(4);
    assert_eq!(cluster.take_reply(NodeId(3), 3), Some(Reply::nil()));
}

#[test]
fn a_wait_survives_a_leader_change_and_gets_exactly_one_element() {
    let mut cluster = Cluster::new(3, 1_000);
    cluster.elect(NodeId(1));
    cluster.send(NodeId(3), 1, "BRPOP q 0");
    cluster.settle();
    cluster.isolated.insert(NodeId(1));
    cluster.tick_all(15);
    let leader = [NodeId(2), NodeId(3)].into_iter().find(|id| cluster.at(*id).node.raft().is_leader());
    let leader = leader.expect("a new leader among the others");
    assert_eq!(cluster.request(leader, 2, "LPUSH q only"), Reply::Integer(1));
    assert_eq!(cluster.take_reply(NodeId(3), 1), Some(popped("q", "only")));
    cluster.isolated.clear();
    cluster.tick_all(10);
    assert_eq!(lengths(&mut cluster, "q"), vec![Reply::Integer(0); 3]);
    let stores: Vec<_> = cluster.ids().into_iter().map(|id| cluster.store(id).clone()).collect();
    assert!(stores.windows(2).all(|w| w[0] == w[1]), "every replica popped the same");
}

#[test]
fn a_closed_connection_stops_waiting_so_a_later_push_stays_in_the_list() {
    let mut cluster = Cluster::new(3, 1_000);
    cluster.elect(NodeId(1));
    cluster.send(NodeId(2), 1, "BLPOP q 0");
    cluster.settle();
    cluster.at(NodeId(2)).node.disconnected(ConnId(1));
    cluster.settle();
    assert_eq!(cluster.request(NodeId(1), 2, "LPUSH q kept"), Reply::Integer(1));
    assert_eq!(lengths(&mut cluster, "q"), vec![Reply::Integer(1); 3]);
}

#[test]
fn waits_of_a_previous_run_of_a_node_are_unblocked_after_it_restarts() {
    let mut cluster = Cluster::new(3, 1_000);
    cluster.elect(NodeId(1));
    cluster.send(NodeId(3), 1, "BLPOP q 0");
    cluster.settle();
    // Node 3 restarts from what it persisted: its client is gone.
    let member = cluster.at(NodeId(3));
    member.node = Node::restore(config(3, 1_000), 33, member.durable.clone()).unwrap();
    member.replies.clear();
    cluster.tick_all(30);
    assert_eq!(cluster.request(NodeId(1), 2, "LPUSH q kept"), Reply::Integer(1));
    assert_eq!(lengths(&mut cluster, "q"), vec![Reply::Integer(1); 3], "no wait of the old run popped it");
}

#[test]
fn inside_multi_a_blocking_pop_answers_at_once() {
    let mut cluster = Cluster::new(3, 1_000);
    cluster.elect(NodeId(1));
    let replies = cluster.pipeline(NodeId(2), 1, &["MULTI", "BLPOP q 0", "EXEC"]);
    let queued = Reply::Simple("QUEUED".into());
    assert_eq!(replies, [Reply::ok(), queued, Reply::Array(Some(vec![Reply::Array(None)]))]);
}

#[test]
fn clients_cannot_send_the_internal_blocking_commands() {
    let mut cluster = Cluster::new(3, 1_000);
    cluster.elect(NodeId(1));
    for text in ["CASHE.BLOCK 1 1 BLPOP q 0", "CASHE.UNBLOCK 1 1"] {
        let reply = cluster.request(NodeId(1), 1, text);
        assert!(
            matches!(&reply, Reply::Error(e) if e.contains("proposed by the nodes")),
            "{text}: {reply:?}"
        );
    }
}
