//! Key groups on several cores of a member (`Router::on_core`): an
//! in-memory cluster whose members each run one router per core (every
//! message delivered, every record durable at once), wired as the server
//! wires its executors: messages a member sends itself go to the core
//! `core_for_message` names, core 0 tells the others the home group's
//! state (`HomeView`) and they report their groups to it (`CoreReport`).
//! Each group runs on one core of each member; leaders spread over members
//! and cores; clients of core 0 reach every group, on any core of any
//! member, with their order, transactions and merges as on one core.

#[path = "common/members.rs"]
mod members;
#[path = "common/serving.rs"]
mod serving;

use cashe::node::{
    core_for_message, core_of, group_ids, ConnId, Durable, GroupId, Node, NodeConfig, NodeMessage, Router,
};
use cashe::protocol::Reply;
use cashe::raft::{NodeId, Raft, Recovered};
use members::{args, info};
use serving::{Requests, PATIENCE_TICKS};
use std::collections::{BTreeMap, VecDeque};

const TICK_MS: u64 = 10;

/// A message on the way: from member and core, to member.
type Sent = (NodeId, u32, NodeId, GroupId, NodeMessage);

struct Cluster {
    /// Per member, its routers by core.
    members: Vec<Vec<Router>>,
    replies: Vec<Vec<(ConnId, Reply)>>,
    network: VecDeque<Sent>,
    now_ms: u64,
    shards: u32,
}

/// Member `id`'s router of `core`; `salt` varies the seeds (elections).
fn router(id: NodeId, (core, cores): (u32, u32), shards: u32, founders: &[NodeId], salt: u64) -> Router {
    let groups = group_ids(shards)
        .into_iter()
        .map(|g| {
            let mut config = NodeConfig::new(id);
            config.shards = shards;
            config.raft.election_ticks = 10;
            config.forward_timeout_ticks = 40;
            config.me = Some(info(id.0));
            let config = config.for_group(g);
            // A group of another core is an empty node here, never run.
            let recovered: Recovered = if core_of(g, cores) == core {
                Raft::bootstrap(founders.to_vec())
            } else {
                Default::default()
            };
            let seed = salt * 1_000_000 + id.0 * 1000 + u64::from(g.0);
            (g, Node::restore(config, seed, recovered).unwrap())
        })
        .collect();
    Router::new(shards, groups).on_core(core, cores)
}

impl Cluster {
    fn new(size: u64, cores: u32, shards: u32, salt: u64) -> Cluster {
        let ids: Vec<NodeId> = (1..=size).map(NodeId).collect();
        let routers =
            |id: &NodeId| (0..cores).map(|core| router(*id, (core, cores), shards, &ids, salt)).collect();
        let members = ids.iter().map(routers).collect();
        Cluster {
            members,
            replies: vec![Vec::new(); size as usize],
            network: VecDeque::new(),
            now_ms: 1_000_000,
            shards,
        }
    }

    fn cores(&self) -> u32 {
        self.members[0].len() as u32
    }

    /// One turn of member `i`'s core `core`: everything it says, durable
    /// at once.
    fn turn(&mut self, i: usize, core: u32) {
        let from = NodeId(i as u64 + 1);
        loop {
            let router = &mut self.members[i][core as usize];
            let output = router.take_output(self.now_ms);
            let idle = output.is_empty();
            for (to, group, message) in output.send {
                self.network.push_back((from, core, to, group, message));
            }
            assert!(core == 0 || output.replies.is_empty(), "only core 0 has clients");
            self.replies[i].extend(output.replies);
            for (group, durable) in output.durable {
                if let Durable::Records(records) = durable {
                    if let Some((last, _)) = records.last() {
                        router.persisted(group, *last);
                    }
                }
            }
            if idle {
                return;
            }
        }
    }

    /// What the server's executors tell each other every turn.
    fn share(&mut self, i: usize) {
        let view = self.members[i][0].home_view();
        for core in 1..self.cores() {
            self.members[i][core as usize].set_home_view(view.clone());
            let report = self.members[i][core as usize].report();
            self.members[i][0].set_report(core, report);
        }
    }

    fn deliver_all(&mut self) {
        while let Some((from, from_core, to, group, message)) = self.network.pop_front() {
            let i = to.0 as usize - 1;
            let cores: Vec<u32> = match core_for_message(group, &message, self.cores()) {
                Some(core) => vec![core],
                None => (0..self.cores()).filter(|c| from != to || *c != from_core).collect(),
            };
            for core in cores {
                self.members[i][core as usize].step(from, group, message.clone());
                self.turn(i, core);
            }
        }
    }

    fn tick_all(&mut self) {
        self.now_ms += TICK_MS;
        for i in 0..self.members.len() {
            self.share(i);
            for core in 0..self.cores() {
                self.members[i][core as usize].tick(self.now_ms);
                self.turn(i, core);
            }
        }
        self.deliver_all();
    }

    /// Per group, the leader each member's router of the group's core
    /// names, if they agree.
    fn leaders(&self) -> BTreeMap<GroupId, Option<NodeId>> {
        group_ids(self.shards)
            .into_iter()
            .map(|g| {
                let core = core_of(g, self.cores()) as usize;
                let named: Vec<_> =
                    self.members.iter().map(|m| m[core].group(g).unwrap().raft().leader()).collect();
                (g, if named.iter().all(|l| *l == named[0]) { named[0] } else { None })
            })
            .collect()
    }

    /// Key groups led by each member's core.
    fn led_per_core(&self) -> BTreeMap<(NodeId, u32), usize> {
        let mut led = BTreeMap::new();
        for (i, member) in self.members.iter().enumerate() {
            for (core, router) in member.iter().enumerate() {
                let count = router
                    .groups()
                    .filter(|(g, node)| g.0 > 0 && router.mine(*g) && node.raft().is_leader())
                    .count();
                led.insert((NodeId(i as u64 + 1), core as u32), count);
            }
        }
        led
    }
}

impl serving::Requests for Cluster {
    fn send(&mut self, i: usize, conn: ConnId, commands: &[&str]) {
        for command in commands {
            self.members[i][0].client(conn, args(command), self.now_ms);
        }
        self.turn(i, 0);
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

fn info_field(info: &Reply, group: u32) -> String {
    let Reply::Bulk(Some(text)) = info else { panic!("INFO: {info:?}") };
    let text = String::from_utf8_lossy(text);
    let prefix = format!("group{group}:");
    text.lines().find_map(|line| line.strip_prefix(&prefix).map(str::to_string)).unwrap_or_default()
}

/// A cluster of 3 members with 2 cores and 16 shards whose groups all
/// elected, and whose leaders spread evenly: 2 or 3 per member and core, 5
/// or 6 per member.
fn spread_cluster(salt: u64) -> Cluster {
    let (cores, shards) = (2, 16);
    let mut cluster = Cluster::new(3, cores, shards, salt);
    // Every group elects, on its own core of each member.
    let mut elected = false;
    for _ in 0..PATIENCE_TICKS {
        cluster.tick_all();
        if cluster.leaders().values().all(Option::is_some) {
            elected = true;
            break;
        }
    }
    assert!(elected, "not every group has a leader: {:?}", cluster.leaders());
    // A group is run by its core alone: the others hold an empty node.
    for member in &cluster.members {
        for (core, router) in member.iter().enumerate() {
            for (g, node) in router.groups() {
                let runs = core_of(g, cores) == core as u32;
                assert_eq!(node.raft().term().0 > 0, runs, "group {} on core {core}", g.0);
            }
        }
    }
    // Leaders spread over every member's every core (16 over 6 cores: 2
    // or 3 each) and over the members (5 or 6 each).
    let even = |spread: &BTreeMap<(NodeId, u32), usize>| {
        let mut totals: BTreeMap<NodeId, usize> = BTreeMap::new();
        for ((member, _), n) in spread {
            *totals.entry(*member).or_default() += n;
        }
        spread.values().all(|n| (2..=3).contains(n)) && totals.values().all(|n| (5..=6).contains(n))
    };
    let mut spread = BTreeMap::new();
    for _ in 0..PATIENCE_TICKS {
        cluster.tick_all();
        spread = cluster.led_per_core();
        if even(&spread) {
            break;
        }
    }
    assert!(even(&spread), "salt {salt}: leaders per member and core: {spread:?}");
    assert_eq!(spread.values().sum::<usize>(), 16, "{spread:?}");
    cluster
}

#[test]
fn leaders_even_out_over_members_and_cores_whatever_the_first_elections() {
    for salt in 1..=8 {
        spread_cluster(salt);
    }
}

#[test]
fn groups_run_on_every_core_leaders_spread_over_members_and_cores_and_every_key_is_served() {
    let (size, cores, shards) = (3, 2, 16);
    let mut cluster = spread_cluster(0);

    // Every key through every member, whatever core its group runs on.
    let keys: Vec<String> = (0..40).map(|k| format!("key{k}")).collect();
    for i in 0..size as usize {
        serving::write_every_key_through(&mut cluster, i, &keys);
        let mget = format!("MGET {}", keys.join(" "));
        let expected: Vec<Reply> = keys.iter().map(|k| bulk(&format!("{k}@{i}+"))).collect();
        assert_eq!(cluster.request(i, 12, &mget), Reply::Array(Some(expected)), "MGET via {i}");
        // A transaction with WATCH, in a group of either core.
        for tag in ["t", "u", "v", "w"] {
            let (a, b) = (format!("{{{tag}}}a"), format!("{{{tag}}}b"));
            let commands = [
                format!("WATCH {a}"),
                "MULTI".into(),
                format!("INCR {a}"),
                format!("INCR {b}"),
                "EXEC".into(),
            ];
            let commands: Vec<&str> = commands.iter().map(String::as_str).collect();
            let replies = cluster.pipeline(i, 13, &commands);
            assert_eq!(
                replies[4],
                Reply::Array(Some(vec![Reply::Integer(i as i64 + 1); 2])),
                "EXEC {tag} via {i}"
            );
        }
        // A WATCHed key written by another client in between: EXEC fails.
        assert_eq!(cluster.request(i, 14, "WATCH {t}a"), Reply::ok());
        assert_eq!(cluster.request((i + 1) % size as usize, 15, "SET {t}a 0"), Reply::ok());
        let replies = cluster.pipeline(i, 14, &["MULTI", "SET {t}a x", "EXEC"]);
        assert_eq!(replies[2], Reply::Array(None), "EXEC after a watched write via {i}");
        assert_eq!(cluster.request(i, 16, &format!("SET {{t}}a {}", i + 1)), Reply::ok());
    }
    // DBSIZE through each member counts the groups it leads, on all its
    // cores: together every key once (40, and {t}a {t}b ... {w}b).
    let mut total = 0;
    for i in 0..size as usize {
        let Reply::Integer(n) = cluster.request(i, 20, "DBSIZE") else { panic!("DBSIZE") };
        total += n;
    }
    assert_eq!(total, 48, "DBSIZE over the members");
    // Core 0's INFO shows every group, each with its core, from the core's
    // report for the groups of other cores.
    for _ in 0..5 {
        cluster.tick_all();
    }
    let info = cluster.request(0, 21, "INFO cluster");
    for g in 1..=shards {
        let line = info_field(&info, g);
        assert!(line.contains(&format!(",core={}", core_of(GroupId(g), cores))), "group {g}: {line}");
        assert!(line.contains("replica=yes") && line.contains("term="), "group {g}: {line}");
        assert!(!line.contains("leader=-"), "group {g}: {line}");
    }
    let keyspace = cluster.request(0, 22, "INFO keyspace");
    let Reply::Bulk(Some(text)) = keyspace else { panic!() };
    assert!(String::from_utf8_lossy(&text).contains("db0:keys=48,"), "{}", String::from_utf8_lossy(&text));
}
