//! The router (`src/node/router.rs`): several Raft groups behind one set of
//! connections, on an in-memory cluster of routers (every message
//! delivered, every record durable at once). Keys live in their slot's
//! group on every member, a connection's replies leave in order across
//! groups, keys in two groups get CROSSSLOT, DBSIZE/KEYS/FLUSHALL cover
//! the groups a member leads (all members together: every key once), HELLO
//! reaches every group, a joining member becomes a voter of every group,
//! the groups' leaders spread over the members, a router with one shard
//! is today's node, and a readiness probe (`/ready`) passes only through a
//! ReadIndex round, never while cut off.

#[path = "common/members.rs"]
mod members;
#[path = "common/serving.rs"]
mod serving;

use cashe::kv::slot::key_slot;
use cashe::node::{placement, ConnId, Durable, GroupId, Node, NodeConfig, NodeMessage, Router, HOME};
use cashe::protocol::Reply;
use cashe::raft::{Index, NodeId, PlantedBug, Raft, Term};
use members::{args, info};
use serving::{Requests, PATIENCE_TICKS};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

const TICK_MS: u64 = 10;

struct Cluster {
    routers: Vec<Router>,
    replies: Vec<Vec<(ConnId, Reply)>>,
    network: VecDeque<(NodeId, NodeId, GroupId, NodeMessage)>,
    now_ms: u64,
    /// Members cut off: what they send and what is sent to them is lost.
    cut: BTreeSet<NodeId>,
    /// Members stopped: cut off, and not ticked either.
    stopped: BTreeSet<NodeId>,
    /// `(group, member)`: that group's messages to and from that member
    /// are lost (the member's other groups, and its beats, get through).
    cut_group: BTreeSet<(GroupId, NodeId)>,
    /// `(from, to, group)`: that group's messages from one member to the
    /// other are held up, in order (`held`), until `release`.
    hold: BTreeSet<(NodeId, NodeId, GroupId)>,
    held: VecDeque<(NodeId, NodeId, GroupId, NodeMessage)>,
    /// Messages delivered so far.
    delivered: u64,
}

type Tweak<'a> = &'a dyn Fn(&mut NodeConfig);

/// Member `id`'s node of group `g` of a cluster of `shards` shards; the
/// home group records the member's name and addresses, as the server's
/// does.
/// `tweak` changes the config last (a planted bug, an ACL).
fn group_node(id: NodeId, g: u32, shards: u32, tweak: Tweak, recovered: cashe::raft::Recovered) -> Node {
    let mut config = NodeConfig::new(id);
    config.shards = shards;
    config.raft.election_ticks = 10;
    config.forward_timeout_ticks = 40;
    config.me = Some(info(id.0));
    let mut config = config.for_group(GroupId(g));
    tweak(&mut config);
    Node::restore(config, id.0 * 1000 + u64::from(g), recovered).unwrap()
}

impl Cluster {
    /// `size` members, each holding every group of `shards` shards, all
    /// groups bootstrapped with every member as a voter; returns once
    /// every group has a leader every member knows.
    fn new(size: u64, shards: u32) -> Cluster {
        Cluster::with(size, shards, &|_| {})
    }

    /// `new`, every node's config changed by `tweak`.
    fn with(size: u64, shards: u32, tweak: Tweak) -> Cluster {
        let ids: Vec<NodeId> = (1..=size).map(NodeId).collect();
        let routers = ids
            .iter()
            .map(|id| {
                let groups: BTreeMap<GroupId, Node> = cashe::node::group_ids(shards)
                    .into_iter()
                    .map(|g| (g, group_node(*id, g.0, shards, tweak, Raft::bootstrap(ids.clone()))))
                    .collect();
                Router::new(shards, groups)
            })
            .collect();
        let mut cluster = Cluster {
            routers,
            replies: vec![Vec::new(); size as usize],
            network: VecDeque::new(),
            now_ms: 1_000_000,
            cut: BTreeSet::new(),
            stopped: BTreeSet::new(),
            cut_group: BTreeSet::new(),
            hold: BTreeSet::new(),
            held: VecDeque::new(),
            delivered: 0,
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
            let idle = output.is_empty();
            for (to, group, message) in output.send {
                self.network.push_back((from, to, group, message));
            }
            self.replies[i].extend(output.replies);
            for (group, durable) in output.durable {
                if let Durable::Records(records) = durable {
                    if let Some((last, _)) = records.last() {
                        self.routers[i].persisted(group, *last);
                    }
                }
            }
            if idle {
                return;
            }
        }
    }

    fn deliver_all(&mut self) {
        while let Some((from, to, group, message)) = self.network.pop_front() {
            if self.cut.contains(&from) || self.cut.contains(&to) {
                continue;
            }
            if self.cut_group.contains(&(group, from)) || self.cut_group.contains(&(group, to)) {
                continue;
            }
            if self.hold.contains(&(from, to, group)) {
                self.held.push_back((from, to, group, message));
                continue;
            }
            self.delivered += 1;
            let i = to.0 as usize - 1;
            self.routers[i].step(from, group, message);
            self.turn(i);
        }
    }

    /// Delivers what was held up, in order, before anything sent since.
    fn release(&mut self) {
        self.hold.clear();
        while let Some(message) = self.held.pop_back() {
            self.network.push_front(message);
        }
        self.deliver_all();
    }

    fn tick_all(&mut self) {
        self.now_ms += TICK_MS;
        for i in 0..self.routers.len() {
            if self.stopped.contains(&NodeId(i as u64 + 1)) {
                continue;
            }
            self.routers[i].tick(self.now_ms);
            self.turn(i);
        }
        self.deliver_all();
    }

    /// Joins member `n` through member `via` as the server does: CLUSTER
    /// JOIN at the home group, then a router whose groups start empty.
    fn join(&mut self, via: usize, n: u64, shards: u32) {
        self.join_with(via, n, shards, &|_| {});
    }

    /// `join`, the new member's config changed by `tweak`.
    fn join_with(&mut self, via: usize, n: u64, shards: u32, tweak: Tweak) {
        let me = info(n);
        let join = format!("CLUSTER JOIN {} {} {}", me.name, me.raft_addr, me.client_addr);
        let reply = self.request(via, 1000 + n, &join);
        let Reply::Array(Some(items)) = &reply else { panic!("join: {reply:?}") };
        assert_eq!(items[0], Reply::Integer(n as i64), "numbers are handed out in order: {reply:?}");
        let groups = (0..=shards)
            .map(|g| (GroupId(g), group_node(NodeId(n), g, shards, tweak, Default::default())))
            .collect();
        self.routers.push(Router::new(shards, groups));
        self.replies.push(Vec::new());
    }

    /// Ticks until every group of every member has `voters` voters.
    fn wait_for_voters(&mut self, voters: usize) {
        for _ in 0..PATIENCE_TICKS {
            let all = self.routers.iter().all(|router| {
                router.groups().all(|(_, node)| node.raft().committed_membership().voters.len() == voters)
            });
            if all {
                return;
            }
            self.tick_all();
        }
        panic!("not every group has {voters} voters");
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

impl serving::Requests for Cluster {
    fn send(&mut self, i: usize, conn: ConnId, commands: &[&str]) {
        for command in commands {
            self.routers[i].client(conn, args(command), self.now_ms);
        }
        self.turn(i);
        self.deliver_all();
    }

    fn replies(&mut self, i: usize) -> &mut Vec<(ConnId, Reply)> {
        &mut self.replies[i]
    }

    fn tick_all(&mut self) {
        Cluster::tick_all(self);
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
    assert_eq!(cluster.request(0, 1, &format!("RENAME a {other}")), crossslot);
    assert_eq!(cluster.request(0, 1, "MSET {t}a 1 {t}b 2"), Reply::ok());
    let keys: Vec<String> = (0..20).map(|i| format!("many:{i}")).collect();
    for key in &keys {
        assert_eq!(cluster.request(2, 2, &format!("SET {key} x")), Reply::ok());
    }
    // Each member answers for the groups it leads; together, every key once.
    let total: i64 = (0..3)
        .map(|m| match cluster.request(m, 3, "DBSIZE") {
            Reply::Integer(n) => n,
            other => panic!("DBSIZE: {other:?}"),
        })
        .sum();
    assert_eq!(total, 22);
    let mut listed: Vec<Vec<u8>> = Vec::new();
    for member in 0..3 {
        let Reply::Array(Some(keys)) = cluster.request(member, 3, "KEYS many:*") else { panic!("KEYS") };
        listed.extend(keys.into_iter().map(|k| if let Reply::Bulk(Some(k)) = k { k } else { panic!() }));
    }
    listed.sort();
    let mut expected: Vec<Vec<u8>> = keys.iter().map(|k| k.as_bytes().to_vec()).collect();
    expected.sort();
    assert_eq!(listed, expected);
    for member in 0..3 {
        assert_eq!(cluster.request(member, 4, "FLUSHALL"), Reply::ok());
    }
    for member in 0..3 {
        assert_eq!(cluster.request(member, 4, "DBSIZE"), Reply::Integer(0));
    }
    assert_eq!(cluster.request(0, 5, "RANDOMKEY"), Reply::Bulk(None), "no key left anywhere");
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

#[test]
fn cluster_slots_names_each_groups_leader_and_followers_redirect_routing_clients() {
    let mut cluster = Cluster::new(3, 4);
    for _ in 0..20 {
        cluster.tick_all(); // the members record their addresses
    }
    let Reply::Array(Some(ranges)) = cluster.request(0, 1, "CLUSTER SLOTS") else { panic!("CLUSTER SLOTS") };
    let mut covered = Vec::new();
    for range in &ranges {
        let Reply::Array(Some(parts)) = range else { panic!("{range:?}") };
        let (Reply::Integer(first), Reply::Integer(last)) = (&parts[0], &parts[1]) else {
            panic!("{parts:?}")
        };
        covered.push((*first, *last));
        assert_eq!(parts.len(), 2 + 1, "a master alone (every member masters some groups): {parts:?}");
    }
    covered.sort();
    assert_eq!(covered, [(0, 4095), (4096, 8191), (8192, 12287), (12288, 16383)]);
    let info = cluster.request(0, 1, "CLUSTER INFO");
    let Reply::Bulk(Some(info)) = info else { panic!("{info:?}") };
    let info = String::from_utf8(info).unwrap();
    assert!(info.contains("cluster_slots_ok:16384") && info.contains("cluster_size:4"), "{info}");

    // On a connection that asked for the topology, a member that does not
    // lead a key's group answers MOVED with its leader's address.
    // (A key of a group the home group's leader leads: the only member
    // these bootstrapped members' directory records, as only a leader
    // records itself and no member joined through CLUSTER JOIN.)
    let home_leader = cluster.leaders()[&HOME].unwrap();
    let key = (0..)
        .map(|n| format!("routed{n}"))
        .find(|key| {
            let group = cluster.routers[0].group_of_slot(key_slot(key.as_bytes()));
            cluster.leaders()[&group] == Some(home_leader)
        })
        .unwrap();
    let key = key.as_str();
    let leader = home_leader;
    let follower = (0..3).find(|i| NodeId(*i as u64 + 1) != leader).unwrap();
    let replies = cluster.pipeline(follower, 2, &["CLUSTER SHARDS", &format!("SET {key} 1")]);
    let slot = key_slot(key.as_bytes());
    assert_eq!(replies[1], Reply::error(format!("MOVED {slot} 127.0.0.1:{}", 3000 + leader.0)));
    // A plain connection is forwarded.
    assert_eq!(cluster.request(follower, 3, &format!("SET {key} 2")), Reply::ok());
    assert_eq!(cluster.request(follower, 3, &format!("CLUSTER COUNTKEYSINSLOT {slot}")), Reply::Integer(1));
}

#[test]
fn joining_members_become_voters_of_every_group_with_its_keys() {
    // One member founds every group; the others join through it, as the
    // README starts a cluster, and the key groups follow the home group's
    // members.
    let shards = 4;
    let mut cluster = Cluster::new(1, shards);
    let keys: Vec<String> = (0..20).map(|i| format!("before:{i}")).collect();
    for key in &keys {
        assert_eq!(cluster.request(0, 1, &format!("SET {key} v")), Reply::ok());
    }
    for n in 2..=4 {
        cluster.join(0, n, shards);
        cluster.wait_for_voters(n as usize);
    }
    for member in 1..4 {
        for key in &keys {
            assert_eq!(cluster.holders(member, key).len(), 1, "{key} on member {member}");
            assert_eq!(cluster.request(member, 3, &format!("GET {key}")), bulk("v"));
        }
    }
    println!("group leaders with four members: {:?}", cluster.leaders());
}

#[test]
fn leaders_of_the_key_groups_spread_over_the_members() {
    // Founded by one member, every group starts led by it; once the
    // others join, leaders move until each member leads its share.
    let shards = 6;
    let mut cluster = Cluster::new(1, shards);
    for n in 2..=3 {
        cluster.join(0, n, shards);
        cluster.wait_for_voters(n as usize);
    }
    let led = |cluster: &Cluster| -> BTreeMap<NodeId, usize> {
        let mut led = BTreeMap::new();
        for (group, leader) in cluster.leaders() {
            if let (true, Some(leader)) = (group != HOME, leader) {
                *led.entry(leader).or_default() += 1;
            }
        }
        led
    };
    for _ in 0..4 * PATIENCE_TICKS {
        let now = led(&cluster);
        if now.len() == 3 && now.values().all(|count| *count == 2) {
            println!("key groups led per member: {now:?}");
            // And the keys are still served through every member.
            for member in 0..3 {
                assert_eq!(cluster.request(member, 5, &format!("SET spread:{member} x")), Reply::ok());
            }
            return;
        }
        cluster.tick_all();
    }
    panic!("leaders did not spread: {:?}", led(&cluster));
}

/// Whether every key group's leader's committed membership is its
/// placement (`placement::replicas_of` over the home group's directory,
/// as member 1 knows it), all voters.
fn placed(cluster: &Cluster, replicas: u32) -> bool {
    let directory = cluster.routers[0].group(HOME).unwrap().directory();
    let groups = (1..).map(GroupId).take_while(|g| cluster.routers[0].group(*g).is_some());
    groups.collect::<Vec<_>>().into_iter().all(|g| {
        let target = placement::replicas_of(g, directory, replicas);
        let leader = cluster.routers.iter().filter_map(|r| r.group(g)).find(|n| n.raft().is_leader());
        leader.is_some_and(|node| {
            let membership = node.raft().committed_membership();
            membership.voters == target
                && membership.learners.is_empty()
                && target.contains(&node.raft().id())
        })
    })
}

#[test]
fn with_three_replicas_a_fourth_member_takes_the_groups_placed_on_it_and_their_keys() {
    let (shards, replicas) = (8, 3);
    let three: Tweak = &|config| config.replicas = replicas;
    let mut cluster = Cluster::with(1, shards, three);
    let keys: Vec<String> = (0..40).map(|i| format!("placed:{i}")).collect();
    for key in &keys {
        assert_eq!(cluster.request(0, 1, &format!("SET {key} v")), Reply::ok());
    }
    for n in 2..=4 {
        cluster.join_with(0, n, shards, three);
    }
    let mut ticks = 0;
    while !placed(&cluster, replicas) {
        assert!(ticks < 8 * PATIENCE_TICKS, "the key groups did not reach their placement");
        cluster.tick_all();
        ticks += 1;
    }
    let directory = cluster.routers[0].group(HOME).unwrap().directory().clone();
    assert_eq!(directory.members.len(), 4);
    let mut held_by_4 = 0;
    for g in (1..=shards).map(GroupId) {
        let target = placement::replicas_of(g, &directory, replicas);
        assert_eq!(target.len(), 3, "{g:?}");
        held_by_4 += usize::from(target.contains(&NodeId(4)));
    }
    assert!(held_by_4 >= 1, "member 4 holds none of the {shards} groups");
    // Every key on each of its group's three replicas, served through
    // each (a replica moved off keeps its copy for now: not looked at).
    for key in &keys {
        let g = cluster.routers[0].group_of_slot(key_slot(key.as_bytes()));
        for member in placement::replicas_of(g, &directory, replicas) {
            let i = member.0 as usize - 1;
            assert!(cluster.holders(i, key).contains(&g), "{key} ({g:?}) on member {member}");
            assert_eq!(cluster.request(i, 3, &format!("GET {key}")), bulk("v"));
        }
    }
    println!("member 4 holds {held_by_4} of {shards} key groups after {ticks} ticks");
}

/// A cluster of four members, key groups on three each
/// (`NodeConfig::replicas`), placed.
fn placed_cluster(shards: u32) -> Cluster {
    let three: Tweak = &|config| config.replicas = 3;
    let mut cluster = Cluster::with(1, shards, three);
    for n in 2..=4 {
        cluster.join_with(0, n, shards, three);
    }
    for _ in 0..8 * PATIENCE_TICKS {
        if placed(&cluster, 3) {
            return cluster;
        }
        cluster.tick_all();
    }
    panic!("the key groups did not reach their placement");
}

/// `placed_cluster(8)` once every member has heard every leader's beat,
/// the first of the keys `key(0)`, `key(1)`, ... whose group member 1 does
/// not hold, and that group.
fn placed_cluster_and_a_key_held_elsewhere(key: impl Fn(u64) -> String) -> (Cluster, String, GroupId) {
    let mut cluster = placed_cluster(8);
    for _ in 0..20 {
        cluster.tick_all();
    }
    let group_of = |key: &str| cluster.routers[0].group_of_slot(key_slot(key.as_bytes()));
    let key = (0..).map(key).find(|k| !cluster.routers[0].holds(group_of(k))).expect("a key");
    let group = group_of(&key);
    (cluster, key, group)
}

#[test]
fn every_member_serves_every_key_including_groups_it_does_not_hold() {
    let shards = 8;
    let mut cluster = placed_cluster(shards);
    let held = |cluster: &Cluster, i: usize| -> usize {
        (1..=shards).filter(|g| cluster.routers[i].holds(GroupId(*g))).count()
    };
    for i in 0..4 {
        assert!(held(&cluster, i) < shards as usize, "member {} holds every group", i + 1);
    }
    // Let every member hear every leader's beat.
    for _ in 0..20 {
        cluster.tick_all();
    }
    let keys: Vec<String> = (0..24).map(|k| format!("k{k}")).collect();
    for i in 0..4 {
        serving::write_every_key_through(&mut cluster, i, &keys);
        let mget = format!("MGET {}", keys.join(" "));
        let Reply::Array(Some(values)) = cluster.request(i, 12, &mget) else { panic!("MGET via {i}") };
        assert_eq!(values.len(), keys.len());
        // A transaction with WATCH in a group, through every member.
        let replies = cluster.pipeline(i, 13, &["WATCH {t}a", "MULTI", "INCR {t}a", "INCR {t}b", "EXEC"]);
        assert_eq!(replies[4], Reply::Array(Some(vec![Reply::Integer(i as i64 + 1); 2])), "EXEC via {i}");
        // CLUSTER SLOTS names a master for every slot.
        let Reply::Array(Some(ranges)) = cluster.request(i, 14, "CLUSTER SLOTS") else { panic!() };
        assert_eq!(ranges.len(), shards as usize, "CLUSTER SLOTS via {i}: {ranges:?}");
    }
}

/// Member 1 writes a key of a group it does not hold through connection
/// 50 while the group's leader is cut off: the write times out there, and
/// the connection's next writes of the group wait for that member (it may
/// still run the first) until it has been silent long enough for nothing
/// it was sent to arrive any more; it stopped, so they then go to the
/// group's new leader. Returns the replies of the attempts after the
/// first, in order.
fn writes_after_a_timeout_at_a_member_that_stopped() -> Vec<Reply> {
    let (mut cluster, key, group) = placed_cluster_and_a_key_held_elsewhere(|k| format!("p{k}"));
    let holder = cluster.routers.iter().find(|r| r.holds(group)).expect("a member holds it");
    let leader = holder.group(group).unwrap().raft().leader().expect("a leader");
    cluster.cut.insert(leader);
    let first = cluster.request(0, 50, &format!("SET {key} a"));
    assert!(matches!(&first, Reply::Error(e) if e.starts_with("TIMEOUT")), "{first:?}");
    cluster.stopped.insert(leader);
    let mut replies = Vec::new();
    for attempt in 0..20 {
        let reply = cluster.request(0, 50, &format!("SET {key} b{attempt}"));
        replies.push(reply.clone());
        if reply == Reply::ok() {
            break;
        }
    }
    replies
}

#[test]
fn after_a_proxied_write_times_out_the_connection_waits_for_that_member_then_moves_on_once_it_is_silent() {
    let replies = writes_after_a_timeout_at_a_member_that_stopped();
    let (last, waited) = replies.split_last().expect("an attempt");
    assert_eq!(*last, Reply::ok(), "the writes reach the new leader in the end: {replies:?}");
    // 2 * forward timeout (80 ticks, 0.8 s) per attempt that timed out:
    // the silence (4 s) takes several.
    assert!(waited.len() >= 3, "the writes waited for the silent member first: {replies:?}");
    assert!(waited.iter().all(|r| matches!(r, Reply::Error(e) if e.starts_with("TIMEOUT"))), "{replies:?}");
}

/// A connection of member 1 watches a key of a group it does not hold (the
/// WATCH runs at a stand-in elsewhere), and the message with its
/// transaction's EXEC is lost: the client gets -TIMEOUT, and the WATCH
/// is over for it, as an EXEC always ends them. The key changes; the
/// connection's next transaction, which watches nothing, must run, not be
/// aborted by the stand-in's leftover WATCH (`make sim-long` seed 83).
#[test]
fn a_transaction_after_an_exec_lost_on_its_way_is_not_aborted_by_that_execs_watch() {
    let (mut cluster, key, group) = placed_cluster_and_a_key_held_elsewhere(|k| format!("{{w{k}}}a"));
    let watched = cluster.pipeline(0, 60, &[&format!("WATCH {key}"), &format!("GET {key}")]);
    assert_eq!(watched, [Reply::ok(), Reply::Bulk(None)]);
    cluster.cut_group.insert((group, NodeId(1)));
    let lost = cluster.pipeline(0, 60, &["MULTI", &format!("SET {key} 1"), "EXEC"]);
    assert!(matches!(&lost[2], Reply::Error(e) if e.starts_with("TIMEOUT")), "{lost:?}");
    cluster.cut_group.clear();
    assert_eq!(cluster.request(1, 61, &format!("SET {key} 2")), Reply::ok());
    let mut last = Vec::new();
    for _ in 0..5 {
        last = cluster.pipeline(0, 60, &["MULTI", &format!("SET {key} 3"), "EXEC"]);
        // The first try finds the lost message missing: -TRYAGAIN.
        if !matches!(&last[2], Reply::Error(e) if e.starts_with("TRYAGAIN")) {
            break;
        }
    }
    assert_eq!(last[2], Reply::Array(Some(vec![Reply::ok()])), "{last:?}");
    assert_eq!(cluster.request(2, 62, &format!("GET {key}")), bulk("3"));
}

/// A connection of member 1 writes a key of a group it does not hold at a
/// stand-in on a follower (a WATCH pins it there), whose forward to the
/// leader is held up on its way: the follower answers `-TIMEOUT`, and the
/// forward is still to arrive. The connection's next read must not be
/// answered before it (elsewhere, say at the leader): it goes to the same
/// stand-in, which sends a barrier behind the forward first
/// (`make sim-long` seed 1726 with `--cores 2`).
#[test]
fn a_read_after_a_write_that_timed_out_at_a_stand_in_is_answered_after_that_write() {
    let (mut cluster, key, group) = placed_cluster_and_a_key_held_elsewhere(|k| format!("u{k}"));
    let leader = |cluster: &Cluster| {
        let nodes = cluster.routers.iter().filter(|r| r.holds(group)).filter_map(|r| r.group(group));
        let leading = nodes.filter(|node| node.raft().is_leader()).max_by_key(|node| node.raft().term());
        leading.map(|node| node.raft().id()).expect("a leader")
    };
    let follower = leader(&cluster);
    assert_eq!(cluster.request(0, 80, &format!("WATCH {key}")), Reply::ok());
    // The stand-in's member hands the group's leadership on.
    cluster.routers[follower.0 as usize - 1].transfer_leadership();
    for _ in 0..PATIENCE_TICKS {
        if leader(&cluster) != follower {
            break;
        }
        cluster.tick_all();
    }
    let new_leader = leader(&cluster);
    assert_ne!(new_leader, follower);
    cluster.hold.insert((follower, new_leader, group));
    let set = cluster.request(0, 80, &format!("SET {key} a"));
    assert!(matches!(&set, Reply::Error(e) if e.starts_with("TIMEOUT")), "{set:?}");
    assert_eq!(cluster.request(0, 80, "UNWATCH"), Reply::ok());
    cluster.send(0, ConnId(80), &[&format!("GET {key}")]);
    for _ in 0..20 {
        cluster.tick_all();
    }
    cluster.release();
    let mut read = None;
    for _ in 0..PATIENCE_TICKS {
        if let Some((_, reply)) = cluster.replies[0].iter().find(|(c, _)| *c == ConnId(80)) {
            read = Some(reply.clone());
            break;
        }
        cluster.tick_all();
    }
    assert_eq!(leader(&cluster), new_leader, "the held forward reached the leader it was meant for");
    assert_eq!(
        cluster.request(1, 81, &format!("GET {key}")),
        bulk("a"),
        "the write that timed out was applied"
    );
    assert_eq!(read, Some(bulk("a")), "the read was answered before the write it followed took effect");
}

#[test]
fn stand_ins_close_with_their_connection_and_when_their_member_restarts() {
    let shards = 8;
    let mut cluster = placed_cluster(shards);
    for _ in 0..20 {
        cluster.tick_all();
    }
    let stands = |cluster: &Cluster| cluster.routers.iter().map(Router::stand_ins).sum::<usize>();
    // Member 1's connection 40 writes keys of every group: those it does
    // not hold run on stand-ins elsewhere.
    for k in 0..24 {
        assert_eq!(cluster.request(0, 40, &format!("SET s{k} v")), Reply::ok());
    }
    let open = stands(&cluster);
    assert!(open > 0, "member 1 holds every group");
    cluster.routers[0].disconnected(ConnId(40));
    cluster.turn(0);
    cluster.deliver_all();
    assert_eq!(stands(&cluster), 0, "closing the connection closes its stand-ins");
    // A member's proxies name its boot: at the first one of a new boot,
    // the stand-ins of its earlier connections close (it restarted).
    let (from, to) = (NodeId(1), 1);
    let held =
        (1..=shards).map(GroupId).find(|g| cluster.routers[to].holds(*g)).expect("member 2 holds a group");
    let proxy = |boot: u64, conn: u64| NodeMessage::Proxy {
        boot,
        conn,
        id: conn,
        seq: 0,
        setup: Vec::new(),
        commands: vec![args("GET s0")],
    };
    cluster.routers[to].step(from, held, proxy(7, 1));
    cluster.routers[to].step(from, held, proxy(7, 2));
    assert_eq!(cluster.routers[to].stand_ins(), 2);
    cluster.routers[to].step(from, held, proxy(8, 1));
    assert_eq!(cluster.routers[to].stand_ins(), 1, "the earlier boot's stand-ins closed, the new one open");
}

#[test]
fn transactions_run_in_their_keys_group_and_watch_holds_across_members() {
    let mut cluster = Cluster::new(3, 4);
    let group = |key: &str| cluster.routers[0].group_of_slot(key_slot(key.as_bytes()));
    let other = (0..).map(|i| format!("o{i}")).find(|k| group(k) != group("{t}a")).unwrap();
    let t_group = group("{t}a");
    let replies = cluster.pipeline(1, 1, &["MULTI", "SET {t}a 1", "INCR {t}a", "GET {t}a", "EXEC"]);
    assert_eq!(replies[0], Reply::ok());
    assert_eq!(
        &replies[1..4],
        [Reply::Simple("QUEUED".into()), Reply::Simple("QUEUED".into()), Reply::Simple("QUEUED".into())]
    );
    assert_eq!(replies[4], Reply::Array(Some(vec![Reply::ok(), Reply::Integer(2), bulk("2")])));
    assert_eq!(cluster.holders(1, "{t}a"), [t_group], "run in the key's group, not at home");

    // A key of another group dooms it.
    let replies =
        cluster.pipeline(0, 2, &["MULTI", "SET {t}a 5", &format!("SET {other} 5"), "EXEC", "GET {t}a"]);
    assert_eq!(replies[2], Reply::error("CROSSSLOT Keys in request don't hash to the same slot"));
    assert!(matches!(&replies[3], Reply::Error(e) if e.starts_with("EXECABORT")), "{:?}", replies[3]);
    assert_eq!(replies[4], bulk("2"), "nothing of the doomed transaction ran");
    // So does one command whose own keys are in two groups.
    let replies = cluster.pipeline(0, 2, &["MULTI", &format!("MSET {{t}}a 6 {other} 6"), "EXEC", "GET {t}a"]);
    assert_eq!(replies[1], Reply::error("CROSSSLOT Keys in request don't hash to the same slot"));
    assert!(matches!(&replies[2], Reply::Error(e) if e.starts_with("EXECABORT")), "{:?}", replies[2]);
    assert_eq!(replies[3], bulk("2"), "nothing of the doomed transaction ran");
    for i in 0..3 {
        assert!(cluster.holders(i, &other).is_empty(), "{other} was written nowhere");
    }

    // WATCH in the key's group: a write through another member in between
    // aborts the EXEC; without one it runs.
    assert_eq!(cluster.pipeline(2, 3, &["WATCH {t}a", "GET {t}a"])[1], bulk("2"));
    assert_eq!(cluster.request(0, 4, "SET {t}a 10"), Reply::ok());
    let replies = cluster.pipeline(2, 3, &["MULTI", "SET {t}a 3", "EXEC"]);
    assert_eq!(replies[2], Reply::Array(None), "the watched key changed: EXEC answers nil");
    let replies = cluster.pipeline(2, 3, &["WATCH {t}a", "MULTI", "SET {t}a 3", "EXEC", "GET {t}a"]);
    assert_eq!(replies[3], Reply::Array(Some(vec![Reply::ok()])));
    assert_eq!(replies[4], bulk("3"));
    // DISCARD drops the watch too.
    let replies = cluster.pipeline(2, 3, &["WATCH {t}a", "MULTI", "DISCARD"]);
    assert_eq!(replies[2], Reply::ok());
    assert_eq!(cluster.request(0, 4, "SET {t}a 11"), Reply::ok());
    let replies = cluster.pipeline(2, 3, &["MULTI", "INCR {t}a", "EXEC"]);
    assert_eq!(replies[2], Reply::Array(Some(vec![Reply::Integer(12)])));
    // A transaction without keys runs at home.
    let replies = cluster.pipeline(1, 5, &["MULTI", "PING", "ECHO hi", "EXEC"]);
    assert_eq!(replies[3], Reply::Array(Some(vec![Reply::Simple("PONG".into()), bulk("hi")])));
    // Errors as Redis gives them.
    assert_eq!(cluster.request(1, 6, "EXEC"), Reply::error("ERR EXEC without MULTI"));
    let replies = cluster.pipeline(1, 6, &["MULTI", "SET {t}a", "EXEC"]);
    assert!(matches!(&replies[2], Reply::Error(e) if e.starts_with("EXECABORT")), "{:?}", replies[2]);
}

#[test]
fn scan_through_every_member_covers_every_key_once() {
    let mut cluster = Cluster::new(3, 4);
    let keys: Vec<String> = (0..30).map(|i| format!("scan:{i}")).collect();
    for key in &keys {
        assert_eq!(cluster.request(0, 1, &format!("SET {key} x")), Reply::ok());
    }
    // As a cluster client scans: every master in turn, each over the
    // groups it leads, five keys at a time.
    let mut seen = Vec::new();
    for member in 0..3 {
        let mut cursor = "0".to_string();
        for round in 0.. {
            assert!(round < 100, "member {member}'s SCAN does not end");
            let reply = cluster.request(member, 2, &format!("SCAN {cursor} COUNT 5"));
            let Reply::Array(Some(parts)) = reply else { panic!("SCAN: {reply:?}") };
            let (Reply::Bulk(Some(next)), Reply::Array(Some(batch))) = (&parts[0], &parts[1]) else {
                panic!("{parts:?}")
            };
            seen.extend(batch.iter().map(|k| {
                if let Reply::Bulk(Some(k)) = k {
                    String::from_utf8(k.clone()).unwrap()
                } else {
                    panic!()
                }
            }));
            cursor = String::from_utf8(next.clone()).unwrap();
            if cursor == "0" {
                break;
            }
        }
    }
    seen.sort();
    let mut expected = keys.clone();
    expected.sort();
    assert_eq!(seen, expected, "every key once over the members' scans");
    assert_eq!(cluster.request(0, 3, "SCAN 999999999999999999"), Reply::error("ERR invalid cursor"));
}

/// Ticks long enough for every idle group to go quiet.
const SETTLE_TICKS: usize = 200;

/// Lets the cluster tick long enough for its idle groups to go quiet.
fn settle(cluster: &mut Cluster) {
    for _ in 0..SETTLE_TICKS {
        cluster.tick_all();
    }
}

/// Messages delivered over `ticks` ticks of an idle cluster.
fn idle_messages(cluster: &mut Cluster, ticks: usize) -> u64 {
    let before = cluster.delivered;
    for _ in 0..ticks {
        cluster.tick_all();
    }
    cluster.delivered - before
}

/// Every group of every member is quiet: its leader is, and no member
/// ticks it.
fn all_quiet(cluster: &Cluster) -> bool {
    let groups = cluster.routers[0].groups().count();
    let led_quietly: usize = cluster.routers.iter().map(|r| r.activity().1).sum();
    let awake: usize = cluster.routers.iter().map(|r| r.activity().0).sum();
    led_quietly == groups && awake == 0
}

#[test]
fn idle_groups_go_quiet_and_an_idle_member_sends_as_much_for_64_groups_as_for_4() {
    let mut counts = Vec::new();
    for shards in [4, 64] {
        let mut cluster = Cluster::new(3, shards);
        cluster.request(0, 1, "SET a 1");
        // Quiet for two of the balancer's looks in a row (it hands over one
        // group per look: spreading 64 takes a while).
        let mut quiet_ticks = 0;
        for _ in 0..10_000 {
            quiet_ticks = if all_quiet(&cluster) { quiet_ticks + 1 } else { 0 };
            if quiet_ticks == 100 {
                break;
            }
            cluster.tick_all();
        }
        assert_eq!(quiet_ticks, 100, "{shards} shards: not every group went quiet");
        let messages = idle_messages(&mut cluster, 300);
        assert!(messages > 0, "members that say nothing cannot tell a crash from quiet");
        counts.push(messages);
    }
    // One beat per member pair and beat period, however many groups.
    assert_eq!(counts[0], counts[1], "messages of an idle cluster, 4 shards then 64");
}

#[test]
fn a_write_wakes_its_quiet_group_every_member_applies_it_and_the_group_quiets_again() {
    let mut cluster = Cluster::new(3, 4);
    settle(&mut cluster);
    assert!(all_quiet(&cluster));
    for (i, key) in ["x", "y", "z"].iter().enumerate() {
        assert_eq!(cluster.request(i, 1, &format!("SET {key} {i}")), Reply::ok());
    }
    assert!(!all_quiet(&cluster), "a group that took a write is awake");
    settle(&mut cluster);
    assert!(all_quiet(&cluster), "the groups went quiet again");
    for i in 0..3 {
        for key in ["x", "y", "z"] {
            assert_eq!(cluster.holders(i, key).len(), 1, "member {i} applied {key}");
        }
    }
}

#[test]
fn when_a_member_stops_the_quiet_groups_it_led_elect_new_leaders() {
    let mut cluster = Cluster::new(3, 8);
    settle(&mut cluster);
    assert!(all_quiet(&cluster));
    let gone = NodeId(1);
    let led: Vec<GroupId> =
        cluster.leaders().into_iter().filter(|(_, l)| *l == Some(gone)).map(|(g, _)| g).collect();
    assert!(!led.is_empty(), "member 1 leads some groups");
    cluster.cut.insert(gone);
    cluster.stopped.insert(gone);
    for _ in 0..PATIENCE_TICKS {
        cluster.tick_all();
        let elected = led.iter().all(|g| {
            (1..3).all(|i| cluster.routers[i].group(*g).unwrap().raft().leader().is_some_and(|l| l != gone))
        });
        if elected {
            assert_eq!(cluster.request(1, 1, "SET after 1"), Reply::ok());
            return;
        }
    }
    panic!("the groups member 1 led quietly elected no new leader after it stopped");
}

/// Each member's link state in `CLUSTER NODES` through member `i`:
/// `(name, "connected" | "disconnected")`.
fn link_states(cluster: &mut Cluster, i: usize) -> Vec<(String, String)> {
    let reply = cluster.request(i, 77, "CLUSTER NODES");
    let Reply::Bulk(Some(text)) = &reply else { panic!("CLUSTER NODES: {reply:?}") };
    let text = String::from_utf8_lossy(text).into_owned();
    let line = |line: &str| {
        let fields: Vec<&str> = line.split(' ').collect();
        (fields[0].to_string(), fields[7].to_string())
    };
    text.lines().map(line).collect()
}

#[test]
fn cluster_nodes_shows_members_connected_while_the_groups_are_quiet_and_a_stopped_one_disconnected() {
    let mut cluster = Cluster::new(3, 8);
    settle(&mut cluster);
    assert!(all_quiet(&cluster), "the home group is quiet too: its leader no longer hears its followers");
    for i in 0..3 {
        let states = link_states(&mut cluster, i);
        assert_eq!(states.len(), 3, "{states:?}");
        assert!(states.iter().all(|(_, state)| state == "connected"), "through member {i}: {states:?}");
    }
    let gone = NodeId(3);
    cluster.cut.insert(gone);
    cluster.stopped.insert(gone);
    for _ in 0..SETTLE_TICKS {
        cluster.tick_all();
    }
    let gone_name = cluster.routers[0].group(HOME).unwrap().member_name(gone);
    for i in 0..2 {
        let states = link_states(&mut cluster, i);
        for (name, state) in &states {
            let expected = if *name == gone_name { "disconnected" } else { "connected" };
            assert_eq!(state, expected, "{name} through member {i}: {states:?}");
        }
    }
}

/// Loses member 3's messages of a key's group (its beats get through),
/// writes the key, heals and lets the cluster go quiet: whether member 3
/// then holds the key.
fn cut_off_member_holds_a_write_once_quiet(bug: PlantedBug) -> bool {
    let mut cluster = Cluster::with(3, 2, &|config| config.raft.planted_bug = bug);
    // The key's group led by member 1 or 2, written through member 1.
    cluster.request(0, 1, "SET k 0");
    // Leaders settled (no transfer of the balancer's under way).
    settle(&mut cluster);
    let group = GroupId(1 + u32::from(key_slot(b"k")) * 2 / 16384);
    let leader = cluster.leaders()[&group].expect("a leader");
    let lagging = NodeId(if leader == NodeId(3) { 2 } else { 3 });
    cluster.cut_group.insert((group, lagging));
    assert_eq!(cluster.request(0, 1, "SET k 1"), Reply::ok());
    settle(&mut cluster);
    cluster.cut_group.clear();
    settle(&mut cluster);
    assert!(all_quiet(&cluster), "every group went quiet after healing");
    let store = cluster.routers[lagging.0 as usize - 1].group(group).unwrap().store();
    store.read(&args("GET k"), cluster.now_ms) == bulk("1")
}

/// Hands `SET` of a key of group 2 straight to group 1 at each member
/// (`Router::misroute`, as a member with a wrong map of slots would): the
/// members whose group 1 then holds the key.
fn members_holding_a_misrouted_key(bug: PlantedBug) -> usize {
    let mut cluster = Cluster::with(3, 2, &|config| config.raft.planted_bug = bug);
    let key = (0..).map(|k| format!("m{k}")).find(|k| key_slot(k.as_bytes()) >= 8192).unwrap();
    for i in 0..3 {
        cluster.routers[i].misroute(GroupId(1), args(&format!("SET {key} wrong")));
        cluster.turn(i);
        cluster.deliver_all();
    }
    settle(&mut cluster);
    let holds = |router: &Router| router.group(GroupId(1)).unwrap().store().stored_keys() > 0;
    cluster.routers.iter().filter(|router| holds(router)).count()
}

#[test]
fn a_command_routed_to_a_group_without_its_key_is_refused_and_the_planted_bug_is_caught() {
    assert_eq!(members_holding_a_misrouted_key(PlantedBug::None), 0);
    assert_eq!(members_holding_a_misrouted_key(PlantedBug::ApplyWithStaleMap), 3);
}

#[test]
fn a_group_goes_quiet_only_once_every_member_holds_its_log() {
    assert!(
        cut_off_member_holds_a_write_once_quiet(PlantedBug::None),
        "the member cut off during a write holds it once the group is quiet"
    );
    // The check catches a leader that goes quiet with a quorum holding its
    // log: the member that was cut off stays behind.
    assert!(!cut_off_member_holds_a_write_once_quiet(PlantedBug::QuiesceLaggingFollower));
}

#[test]
fn mget_del_and_exists_over_several_groups_are_split_and_put_back_together() {
    let mut cluster = Cluster::new(3, 4);
    let group = |cluster: &Cluster, key: &str| cluster.routers[0].group_of_slot(key_slot(key.as_bytes()));
    // Keys in at least three groups, one missing.
    let keys: Vec<String> = (0..12).map(|i| format!("split{i}")).collect();
    let groups: BTreeSet<GroupId> = keys.iter().map(|k| group(&cluster, k)).collect();
    assert!(groups.len() >= 3, "the keys are spread: {groups:?}");
    for (i, key) in keys.iter().enumerate().skip(1) {
        assert_eq!(cluster.request(i % 3, 1, &format!("SET {key} v{i}")), Reply::ok());
    }
    let mget = format!("MGET {}", keys.join(" "));
    for member in 0..3 {
        let Reply::Array(Some(values)) = cluster.request(member, 2, &mget) else { panic!("MGET") };
        let expected: Vec<Reply> = (0..keys.len())
            .map(|i| if i == 0 { Reply::Bulk(None) } else { bulk(&format!("v{i}")) })
            .collect();
        assert_eq!(values, expected, "MGET through member {member}: every value at its key's place");
    }
    // A key named twice counts twice, as in Redis.
    let exists = format!("EXISTS {} {} {}", keys[1], keys.join(" "), keys[1]);
    assert_eq!(cluster.request(0, 2, &exists), Reply::Integer(keys.len() as i64 - 1 + 2));
    let del = format!("DEL {}", keys[..6].join(" "));
    assert_eq!(cluster.request(1, 2, &del), Reply::Integer(5));
    assert_eq!(
        cluster.request(2, 2, &exists),
        Reply::Integer(keys.len() as i64 - 6),
        "the deleted ones are gone"
    );
    // What cannot be split is refused; so is a split for a connection that
    // routes by slot itself (as Redis Cluster answers).
    let crossslot = Reply::error("CROSSSLOT Keys in request don't hash to the same slot");
    assert_eq!(cluster.request(0, 3, &format!("MSET {} 1 {} 2", keys[6], keys[7])), crossslot);
    let replies = cluster.pipeline(0, 4, &["CLUSTER SLOTS", &mget]);
    assert_eq!(replies[1], crossslot);
    // RANDOMKEY answers one of the keys of the groups a member leads (nil
    // if they hold none), taking the groups in turn.
    let mut seen = BTreeSet::new();
    for _ in 0..40 {
        for member in 0..3 {
            match cluster.request(member, 5, "RANDOMKEY") {
                Reply::Bulk(Some(key)) => _ = seen.insert(group(&cluster, &String::from_utf8(key).unwrap())),
                // A member whose groups hold no key.
                Reply::Bulk(None) => {}
                other => panic!("RANDOMKEY: {other:?}"),
            }
        }
    }
    let left: BTreeSet<GroupId> = keys[6..].iter().map(|k| group(&cluster, k)).collect();
    assert_eq!(seen, left, "RANDOMKEY came up with a key of every group that has one");
    cluster.request(0, 6, &format!("DEL {}", keys.join(" ")));
    assert_eq!(cluster.request(1, 6, "RANDOMKEY"), Reply::Bulk(None));
}

/// 50 ticks of a lone node, every record durable at once: what it said.
fn drive(node: &mut Node, now_ms: &mut u64) -> cashe::node::Output {
    let mut said = members::settle(node);
    for _ in 0..50 {
        *now_ms += TICK_MS;
        node.tick(*now_ms);
        let output = members::settle(node);
        said.replies.extend(output.replies);
        said.send.extend(output.send);
    }
    said
}

#[test]
fn a_group_serves_and_applies_only_the_keys_of_its_slots() {
    // A key group's node on its own, given commands the router would never
    // send it: keys of another group are refused, inside MULTI too.
    let mut node = group_node(NodeId(1), 1, 4, &|_| {}, Raft::bootstrap([NodeId(1)]));
    let mut now_ms = 1_000_000;
    let mut replies = Vec::new();
    drive(&mut node, &mut now_ms);
    assert!(node.raft().is_leader());
    let mine = (0..).map(|i| format!("k{i}")).find(|k| key_slot(k.as_bytes()) < 4096).unwrap();
    let theirs = (0..).map(|i| format!("k{i}")).find(|k| key_slot(k.as_bytes()) >= 4096).unwrap();
    for command in [
        format!("SET {mine} 1"),
        format!("SET {theirs} 1"),
        format!("GET {theirs}"),
        "MULTI".into(),
        format!("SET {theirs} 2"),
        "EXEC".into(),
        format!("GET {mine}"),
    ] {
        node.client(ConnId(1), args(&command), now_ms);
        replies.extend(drive(&mut node, &mut now_ms).replies.into_iter().map(|(_, reply)| reply));
    }
    let slot = key_slot(theirs.as_bytes());
    let refused = Reply::error(format!(
        "ERR slot {slot} is not in the slots of group 1: not served here (a routing error)"
    ));
    assert_eq!(replies[0], Reply::ok());
    assert_eq!(replies[1], refused);
    assert_eq!(replies[2], refused);
    assert_eq!(replies[4], refused);
    assert!(matches!(&replies[5], Reply::Error(e) if e.starts_with("EXECABORT")), "{:?}", replies[5]);
    assert_eq!(replies[6], bulk("1"));
    assert_eq!(node.store().read(&args(&format!("EXISTS {theirs}")), now_ms), Reply::Integer(0));

    // A write that reaches the log anyway (forwarded by a member, which
    // checks nothing) is refused where it is applied, on every replica.
    let term = node.raft().term();
    let forward = NodeMessage::Forward { id: 7, term, now_ms, args: args(&format!("SET {theirs} 3")) };
    node.step(NodeId(2), forward);
    let answer = drive(&mut node, &mut now_ms).send.into_iter().find_map(|(_, message)| match message {
        NodeMessage::ForwardReply { reply, index, .. } => Some((reply, index)),
        _ => None,
    });
    let (reply, index) = answer.expect("the forward was answered");
    assert!(index.is_some(), "the write was logged and applied: {reply:?}");
    assert_eq!(reply, refused);
    assert_eq!(node.store().read(&args(&format!("EXISTS {theirs}")), now_ms), Reply::Integer(0));
}

#[test]
fn a_beat_naming_a_group_this_member_does_not_hold_is_dropped() {
    let mut cluster = Cluster::new(3, 4);
    let beat = NodeMessage::Beat {
        groups: vec![(GroupId(99), Term(1), Index(1)), (GroupId(1), Term(1), Index(1))],
        leads: Vec::new(),
        core: 0,
        cores: 1,
    };
    cluster.routers[0].step(NodeId(2), HOME, beat);
    settle(&mut cluster);
    assert!(all_quiet(&cluster), "the cluster goes on as before");
    assert_eq!(cluster.request(0, 1, "SET after 1"), Reply::ok());
}

#[test]
fn info_cluster_lists_every_group_of_the_member() {
    let mut cluster = Cluster::new(3, 4);
    settle(&mut cluster);
    let Reply::Bulk(Some(text)) = cluster.request(0, 1, "INFO cluster") else { panic!("INFO") };
    let text = String::from_utf8(text).unwrap();
    let field =
        |name: &str| text.lines().find_map(|l| l.strip_prefix(&format!("{name}:"))).map(str::to_string);
    assert!(field("group5").is_none(), "four shards and home: {text}");
    for g in 0..5 {
        let line = field(&format!("group{g}")).unwrap_or_else(|| panic!("group{g} in {text}"));
        let quiet = cluster.routers[0].group(GroupId(g)).unwrap().raft().is_quiet();
        assert!(line.ends_with(&format!(",quiet={},replica=yes", u8::from(quiet))), "{line}");
        assert!(line.contains("voters=3,learners=0"), "{line}");
        let role = if cluster.routers[0].group(GroupId(g)).unwrap().raft().is_leader() {
            "leader"
        } else {
            "follower"
        };
        assert!(line.starts_with(&format!("role={role},")), "{line}");
    }
}

#[test]
fn permissions_are_checked_before_the_router_refuses_or_splits() {
    let acl = "user default on nopass ~* +@all\nuser limited on nopass ~mine* +@all\n";
    let acl = cashe::node::Acl::parse(acl, "users.acl").unwrap();
    let mut cluster = Cluster::with(3, 4, &|config| config.acl = Some(acl.clone()));
    let group = |cluster: &Cluster, key: &str| cluster.routers[0].group_of_slot(key_slot(key.as_bytes()));
    let mine = "mine0";
    let theirs =
        (0..).map(|i| format!("theirs{i}")).find(|k| group(&cluster, k) != group(&cluster, mine)).unwrap();
    assert_eq!(cluster.request(0, 1, &format!("SET {theirs} 1")), Reply::ok());
    assert_eq!(cluster.request(0, 2, "AUTH limited x"), Reply::ok());
    let noperm =
        Reply::error("NOPERM this user has no permissions to access one of the keys used as arguments");
    // Redis answers NOPERM before CROSSSLOT, and nothing of a split runs
    // when part of it is refused.
    assert_eq!(cluster.request(0, 2, &format!("MSET {mine} 1 {theirs} 2")), noperm);
    assert_eq!(cluster.request(0, 2, &format!("DEL {mine} {theirs}")), noperm);
    assert_eq!(cluster.request(1, 3, &format!("GET {theirs}")), bulk("1"), "the DEL ran nowhere");
    assert_eq!(cluster.request(0, 2, &format!("SET {mine} 1")), Reply::ok());
}

/// INFO's command counts (commandstats, errorstats, total commands and
/// error replies) are what the member's clients sent and got, and its
/// keyspace the keys it holds, with several shards as with one: the same
/// script on a connection of a one-shard and of a four-shard cluster gives
/// the same counts. (With several shards the
/// groups' nodes each answer part of it, and also what the router sends on
/// its own behalf: HELLO to every group, the parts of a split MGET, a
/// transaction replayed in its group.)
#[test]
fn info_counts_commands_and_keys_with_several_shards_as_with_one() {
    let script = [
        "SET a 1",
        "GET a",
        "MGET a b c d e f",
        "EXISTS a b c d",
        "DEL a b c d",
        "HELLO 3",
        "INCR a",
        "INCR a x",
        "GET",
        "LPUSH a x",
        "NOSUCHCOMMAND x",
        "MULTI",
        "SET {t}a 1",
        "INCR {t}a",
        "EXEC",
        "WATCH w",
        "UNWATCH",
        "CLIENT SETNAME counted",
        "HSET h f v",
        "DBSIZE",
        "PING",
        "HELLO 2",
        "SET e 1 PX 100000",
    ];
    let counts = |shards: u32| {
        let mut cluster = Cluster::new(3, shards);
        settle(&mut cluster);
        for command in script {
            cluster.request(0, 7, command);
        }
        let Reply::Bulk(Some(text)) = cluster.request(0, 7, "INFO commandstats errorstats stats keyspace")
        else {
            panic!("INFO")
        };
        let text = String::from_utf8(text).unwrap();
        let counted = ["cmdstat_", "errorstat_", "total_commands_processed:", "total_error_replies:", "db0:"];
        let lines: Vec<String> =
            text.lines().filter(|l| counted.iter().any(|c| l.starts_with(c))).map(str::to_string).collect();
        lines
    };
    let one = counts(1);
    assert!(one.iter().any(|l| l.starts_with("cmdstat_set:calls=2,")), "{one:#?}");
    assert!(one.iter().any(|l| l == "db0:keys=4,expires=1,avg_ttl=0"), "{one:#?}");
    assert!(one.iter().any(|l| l.starts_with("cmdstat_exec:calls=1,")), "{one:#?}");
    assert!(one.iter().any(|l| l == "errorstat_WRONGTYPE:count=1"), "{one:#?}");
    assert_eq!(counts(4), one);
}

/// A command refused for keys in several groups is a rejected call, as
/// Redis 7 counts its cluster redirections (MOVED and CROSSSLOT: the
/// command never ran), not a failed one.
#[test]
fn crossslot_is_counted_as_a_rejected_call() {
    let mut cluster = Cluster::new(3, 4);
    settle(&mut cluster);
    let group = |cluster: &Cluster, key: &str| cluster.routers[0].group_of_slot(key_slot(key.as_bytes()));
    let other = (0..).map(|i| format!("k{i}")).find(|k| group(&cluster, k) != group(&cluster, "a")).unwrap();
    let reply = cluster.request(0, 7, &format!("MSET a 1 {other} 2"));
    assert!(matches!(&reply, Reply::Error(e) if e.starts_with("CROSSSLOT")), "{reply:?}");
    let Reply::Bulk(Some(text)) = cluster.request(0, 7, "INFO commandstats") else { panic!("INFO") };
    let text = String::from_utf8(text).unwrap();
    assert!(text.contains("cmdstat_mset:calls=0,rejected_calls=1,failed_calls=0"), "{text}");
}

/// Ticks the cluster until member `i` answers readiness probe `n`, for at
/// most `ticks` ticks.
fn readiness(cluster: &mut Cluster, i: usize, n: u64, ticks: usize) -> Option<Result<(), String>> {
    for _ in 0..ticks {
        let answers = cluster.routers[i].take_readiness();
        assert!(answers.iter().all(|(m, _)| *m == n), "an answer to a probe never asked: {answers:?}");
        if let Some((_, answer)) = answers.into_iter().next() {
            return Some(answer);
        }
        cluster.tick_all();
    }
    None
}

#[test]
fn a_readiness_probe_passes_only_after_a_read_index_round_and_fails_cut_off() {
    let mut cluster = Cluster::new(3, 4);
    let leader = cluster.leaders()[&HOME].expect("a leader");
    let i = (0..3).find(|k| NodeId(*k as u64 + 1) != leader).expect("a follower");
    // Asked of a follower, it needs the leaders' answers: nothing before
    // a message is delivered.
    cluster.routers[i].probe_readiness(1);
    cluster.turn(i);
    assert_eq!(cluster.routers[i].take_readiness(), Vec::new(), "answered without a ReadIndex round");
    assert_eq!(readiness(&mut cluster, i, 1, PATIENCE_TICKS), Some(Ok(())));
    // Cut off: the round never completes, and the probe fails (the read's
    // timeout, or no leader known), never passes.
    let me = NodeId(i as u64 + 1);
    cluster.cut.insert(me);
    cluster.routers[i].probe_readiness(2);
    cluster.turn(i);
    let answer = readiness(&mut cluster, i, 2, PATIENCE_TICKS).expect("the probe is answered in time");
    assert!(answer.is_err(), "a cut-off member passed its probe: {answer:?}");
    // Healed: it passes again once it knows a leader (probes asked before
    // that fail, as a read would).
    cluster.cut.remove(&me);
    let mut last = None;
    for n in 3..3 + PATIENCE_TICKS as u64 {
        cluster.routers[i].probe_readiness(n);
        cluster.turn(i);
        last = readiness(&mut cluster, i, n, PATIENCE_TICKS);
        if last == Some(Ok(())) {
            break;
        }
        cluster.tick_all();
    }
    assert_eq!(last, Some(Ok(())), "the healed member never passed its probe");
    // What /metrics shows of the groups: a sample per group, this member
    // leading none of them as a follower of the home group at least.
    let text = cashe::node::metrics::render(&cluster.routers[i].metrics());
    for g in 0..=4 {
        assert!(text.contains(&format!("cashe_raft_term{{group=\"{g}\"}} ")), "group {g}:\n{text}");
    }
    assert!(text.contains("cashe_raft_is_leader{group=\"0\"} 0\n"), "{text}");
}
