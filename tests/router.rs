//! The router (`src/node/router.rs`): several Raft groups behind one set of
//! connections, on an in-memory cluster of routers (every message
//! delivered, every record durable at once). Keys live in their slot's
//! group on every member, a connection's replies leave in order across
//! groups, keys in two groups get CROSSSLOT, DBSIZE/KEYS/FLUSHALL cover
//! every group, HELLO reaches every group, and a router with one shard is
//! today's node.

use cashe::kv::slot::key_slot;
use cashe::node::{ConnId, GroupId, Node, NodeConfig, NodeMessage, Router, HOME};
use cashe::protocol::Reply;
use cashe::raft::{NodeId, Raft};
use std::collections::{BTreeMap, VecDeque};

const TICK_MS: u64 = 10;
/// Ticks a request may take before the test gives up on it.
const PATIENCE_TICKS: usize = 500;

struct Cluster {
    routers: Vec<Router>,
    replies: Vec<Vec<(ConnId, Reply)>>,
    network: VecDeque<(NodeId, NodeId, GroupId, NodeMessage)>,
    now_ms: u64,
}

fn args(text: &str) -> Vec<Vec<u8>> {
    text.split(' ').map(|w| w.as_bytes().to_vec()).collect()
}

impl Cluster {
    /// `size` members, each holding every group of `shards` shards, all
    /// groups bootstrapped with every member as a voter; returns once
    /// every group has a leader every member knows.
    fn new(size: u64, shards: u32) -> Cluster {
        let ids: Vec<NodeId> = (1..=size).map(NodeId).collect();
        let group_count = if shards == 1 { 1 } else { shards + 1 };
        let routers = ids
            .iter()
            .map(|id| {
                let groups: BTreeMap<GroupId, Node> = (0..group_count)
                    .map(|g| {
                        let mut config = NodeConfig::new(*id);
                        config.raft.election_ticks = 10;
                        config.forward_timeout_ticks = 40;
                        let seed = id.0 * 1000 + u64::from(g);
                        (GroupId(g), Node::restore(config, seed, Raft::bootstrap(ids.clone())).unwrap())
                    })
                    .collect();
                Router::new(shards, groups)
            })
            .collect();
        let mut cluster = Cluster {
            routers,
            replies: vec![Vec::new(); size as usize],
            network: VecDeque::new(),
            now_ms: 1_000_000,
        };
        for _ in 0..PATIENCE_TICKS {
            if cluster.leaders().values().all(Option::is_some) {
                return cluster;
            }
            cluster.tick_all();
        }
        panic!("not every group elected a leader: {:?}", cluster.leaders());
    }

    /// Each group's leader, if every member names the same one.
    fn leaders(&self) -> BTreeMap<GroupId, Option<NodeId>> {
        let groups = (0..).map(GroupId).take_while(|g| self.routers[0].group(*g).is_some());
        groups
            .map(|g| {
                let named: Vec<Option<NodeId>> =
                    self.routers.iter().map(|r| r.group(g).and_then(|n| n.raft().leader())).collect();
                let agreed = named.iter().all(|l| *l == named[0]);
                (g, if agreed { named[0] } else { None })
            })
            .collect()
    }

    /// One shell turn of member `i`: everything it says, durable at once.
    fn turn(&mut self, i: usize) {
        let from = NodeId(i as u64 + 1);
        loop {
            let output = self.routers[i].take_output(self.now_ms);
            let idle = output.persist.is_empty() && output.send.is_empty() && output.replies.is_empty();
            for (to, group, message) in output.send {
                self.network.push_back((from, to, group, message));
            }
            self.replies[i].extend(output.replies);
            for (group, records) in output.persist {
                if let Some((last, _)) = records.last() {
                    self.routers[i].persisted(group, *last);
                }
            }
            if idle {
                return;
            }
        }
    }

    fn deliver_all(&mut self) {
        while let Some((from, to, group, message)) = self.network.pop_front() {
            let i = to.0 as usize - 1;
            self.routers[i].step(from, group, message);
            self.turn(i);
        }
    }

    fn tick_all(&mut self) {
        self.now_ms += TICK_MS;
        for i in 0..self.routers.len() {
            self.routers[i].tick(self.now_ms);
            self.turn(i);
        }
        self.deliver_all();
    }

    /// Sends `commands` on connection `conn` of member `i` at once (a
    /// pipeline) and returns their replies, in the order they left.
    fn pipeline(&mut self, i: usize, conn: u64, commands: &[&str]) -> Vec<Reply> {
        let conn = ConnId(conn);
        for command in commands {
            self.routers[i].client(conn, args(command), self.now_ms);
        }
        self.turn(i);
        self.deliver_all();
        for _ in 0..PATIENCE_TICKS {
            let got: Vec<Reply> =
                self.replies[i].iter().filter(|(c, _)| *c == conn).map(|(_, r)| r.clone()).collect();
            if got.len() >= commands.len() {
                self.replies[i].retain(|(c, _)| *c != conn);
                assert_eq!(got.len(), commands.len(), "more replies than commands: {got:?}");
                return got;
            }
            self.tick_all();
        }
        panic!("{commands:?} on member {i}: no complete answer");
    }

    fn request(&mut self, i: usize, conn: u64, command: &str) -> Reply {
        self.pipeline(i, conn, &[command]).remove(0)
    }

    /// The groups whose store on member `i` holds `key`.
    fn holders(&self, i: usize, key: &str) -> Vec<GroupId> {
        let groups = (0..).map(GroupId).take_while(|g| self.routers[i].group(*g).is_some());
        groups
            .filter(|g| {
                let store = self.routers[i].group(*g).unwrap().store();
                store.read(&args(&format!("EXISTS {key}")), self.now_ms) == Reply::Integer(1)
            })
            .collect()
    }
}

fn bulk(text: &str) -> Reply {
    Reply::bulk(text.as_bytes().to_vec())
}

#[test]
fn keys_live_in_their_slots_group_on_every_member_and_leaders_spread() {
    let mut cluster = Cluster::new(3, 4);
    let leaders = cluster.leaders();
    println!("group leaders: {leaders:?}");
    let keys: Vec<String> = (0..40).map(|i| format!("key:{i}")).collect();
    let sets: Vec<String> = keys.iter().map(|k| format!("SET {k} v-{k}")).collect();
    let gets: Vec<String> = keys.iter().map(|k| format!("GET {k}")).collect();
    let commands: Vec<&str> = sets.iter().chain(&gets).map(String::as_str).collect();
    // Through a member that leads some groups and follows others.
    let replies = cluster.pipeline(1, 1, &commands);
    for (i, key) in keys.iter().enumerate() {
        assert_eq!(replies[i], Reply::ok(), "SET {key}");
        assert_eq!(replies[keys.len() + i], bulk(&format!("v-{key}")), "GET {key}");
    }
    cluster.tick_all();
    let router = &cluster.routers[0];
    let mut used = std::collections::BTreeSet::new();
    for key in &keys {
        let group = router.group_of_slot(key_slot(key.as_bytes()));
        used.insert(group);
        for member in 0..3 {
            assert_eq!(cluster.holders(member, key), [group], "{key} on member {member}");
        }
    }
    assert_eq!(used.len(), 4, "40 keys fall in every one of the 4 key groups");
    assert!(cluster.holders(0, "key:0").iter().all(|g| *g != HOME), "the home group holds no keys");
}

#[test]
fn replies_leave_in_order_across_groups_and_follow_the_groups_effects() {
    let mut cluster = Cluster::new(3, 4);
    // a and b (and c) in different groups.
    let group = |key: &str| cluster.routers[0].group_of_slot(key_slot(key.as_bytes()));
    let (a, b) = ("a", (0..).map(|i| format!("b{i}")).find(|k| group(k) != group("a")).unwrap());
    let commands = [
        "SET a 1".to_string(),
        format!("SET {b} 2"),
        "INCR a".to_string(),
        format!("GET {b}"),
        "GET a".to_string(),
        format!("APPEND {b} x"),
        "PING".to_string(),
        format!("MSET a 1 {b} 1"),
        format!("GET {b}"),
        "INCR a".to_string(),
    ];
    let commands: Vec<&str> = commands.iter().map(String::as_str).collect();
    for member in 0..3 {
        let replies = cluster.pipeline(member, 10 + member as u64, &commands);
        let expected_a = 2; // SET a 1, then INCR
        assert_eq!(
            replies,
            [
                Reply::ok(),
                Reply::ok(),
                Reply::Integer(expected_a),
                bulk("2"),
                bulk(&expected_a.to_string()),
                Reply::Integer(2),
                Reply::Simple("PONG".into()),
                Reply::error("CROSSSLOT Keys in request don't hash to the same slot"),
                bulk("2x"),
                Reply::Integer(expected_a + 1),
            ],
            "through member {member} ({a} and {b} in different groups)"
        );
    }
}

#[test]
fn keys_of_two_groups_are_refused_and_keyless_key_commands_cover_every_group() {
    let mut cluster = Cluster::new(3, 4);
    let group = |key: &str| cluster.routers[0].group_of_slot(key_slot(key.as_bytes()));
    let other = (0..).map(|i| format!("k{i}")).find(|k| group(k) != group("a")).unwrap();
    let crossslot = Reply::error("CROSSSLOT Keys in request don't hash to the same slot");
    assert_eq!(cluster.request(0, 1, &format!("MSET a 1 {other} 2")), crossslot);
    assert_eq!(cluster.request(0, 1, &format!("DEL a {other}")), crossslot);
    assert_eq!(cluster.request(0, 1, "MSET {t}a 1 {t}b 2"), Reply::ok());
    let keys: Vec<String> = (0..20).map(|i| format!("many:{i}")).collect();
    for key in &keys {
        assert_eq!(cluster.request(2, 2, &format!("SET {key} x")), Reply::ok());
    }
    assert_eq!(cluster.request(1, 3, "DBSIZE"), Reply::Integer(22));
    let Reply::Array(Some(listed)) = cluster.request(1, 3, "KEYS many:*") else { panic!("KEYS") };
    let mut listed: Vec<Vec<u8>> =
        listed.into_iter().map(|k| if let Reply::Bulk(Some(k)) = k { k } else { panic!() }).collect();
    listed.sort();
    let mut expected: Vec<Vec<u8>> = keys.iter().map(|k| k.as_bytes().to_vec()).collect();
    expected.sort();
    assert_eq!(listed, expected);
    assert_eq!(cluster.request(0, 4, "FLUSHALL"), Reply::ok());
    assert_eq!(cluster.request(2, 4, "DBSIZE"), Reply::Integer(0));
    let refused = cluster.request(0, 5, "MULTI");
    assert!(matches!(&refused, Reply::Error(e) if e.contains("not supported yet")), "{refused:?}");
}

#[test]
fn hello_reaches_every_group() {
    let mut cluster = Cluster::new(3, 4);
    let replies = cluster.pipeline(
        0,
        7,
        &["HELLO 3", "HSET h f v", "HGETALL h", "CLIENT SETNAME me", "CLIENT GETNAME"],
    );
    assert!(matches!(replies[0], Reply::Map(_)), "HELLO 3: {:?}", replies[0]);
    assert_eq!(replies[1], Reply::Integer(1));
    assert_eq!(replies[2], Reply::Map(vec![(bulk("f"), bulk("v"))]), "HGETALL in RESP3 from h's group");
    assert_eq!(replies[3], Reply::ok());
    assert_eq!(replies[4], bulk("me"));
}

#[test]
fn a_router_with_one_shard_is_todays_node() {
    let mut cluster = Cluster::new(3, 1);
    let replies =
        cluster.pipeline(1, 1, &["MULTI", "SET a 1", "MSET b 2 c 3", "INCR a", "EXEC", "DBSIZE", "SCAN 0"]);
    assert_eq!(replies[0], Reply::ok());
    assert_eq!(replies[4], Reply::Array(Some(vec![Reply::ok(), Reply::ok(), Reply::Integer(2)])));
    assert_eq!(replies[5], Reply::Integer(3));
    assert!(matches!(&replies[6], Reply::Array(Some(parts)) if parts.len() == 2), "{:?}", replies[6]);
    assert!(["a", "b", "c"].iter().all(|k| cluster.holders(1, k) == [HOME]));
}

#[test]
fn a_connections_writes_to_different_groups_take_effect_in_the_order_sent() {
    let mut cluster = Cluster::new(3, 4);
    // A chain of keys, each in another group than the one before.
    let group = |key: &str| cluster.routers[0].group_of_slot(key_slot(key.as_bytes()));
    let mut chain: Vec<String> = vec!["chain:0".into()];
    for i in 1.. {
        let key = format!("chain:{i}");
        if group(&key) != group(chain.last().unwrap()) {
            chain.push(key);
        }
        if chain.len() == 30 {
            break;
        }
    }
    let member = 1;
    let conn = ConnId(99);
    for key in &chain {
        cluster.routers[member].client(conn, args(&format!("SET {key} 1")), cluster.now_ms);
    }
    // Message by message: on the member serving the connection, a key of
    // the chain is never written before the key sent before it.
    let exists = |cluster: &Cluster, key: &str| !cluster.holders(member, key).is_empty();
    for _ in 0..PATIENCE_TICKS {
        cluster.turn(member);
        while let Some((from, to, group, message)) = cluster.network.pop_front() {
            let i = to.0 as usize - 1;
            cluster.routers[i].step(from, group, message);
            cluster.turn(i);
            for pair in chain.windows(2) {
                assert!(
                    !exists(&cluster, &pair[1]) || exists(&cluster, &pair[0]),
                    "{} was written before {}",
                    pair[1],
                    pair[0]
                );
            }
        }
        if chain.iter().all(|key| exists(&cluster, key)) {
            let replies = cluster.replies[member].iter().filter(|(c, _)| *c == conn).count();
            assert_eq!(replies, chain.len());
            return;
        }
        cluster.tick_all();
    }
    panic!("the chain was not written");
}
