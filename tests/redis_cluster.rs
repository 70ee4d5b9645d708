//! Redis Cluster's protocol on a real 3-node cashe cluster, compared in the
//! same test with a real Redis Cluster of the same shape (one master holding
//! every slot, two replicas):
//!
//! - `CLUSTER SLOTS`, `SHARDS` (RESP2 and RESP3) and `NODES` through every
//!   node, node ids, ports and offsets masked, equal to Redis's, with the
//!   Raft leader as the master;
//! - `CLUSTER KEYSLOT`, `COUNTKEYSINSLOT`, `GETKEYSINSLOT`, `COMMAND
//!   GETKEYS` and their errors byte for byte;
//! - redirections: a connection that routes by slot (it asked `CLUSTER
//!   SLOTS`, `SHARDS` or `NODES`) is answered `-MOVED slot leader` by a
//!   follower, inside MULTI too, as by a Redis replica; a plain connection
//!   is forwarded, a `READONLY` one too (cashe's fast-read switch);
//! - redis-py's `RedisCluster` through every node, its transcript equal to
//!   the one against Redis; `redis-cli -c` and plain `redis-cli` through
//!   every node; with `--cluster-mode redirect` plain clients get `-MOVED`
//!   and `redis-cli -c` follows it.
//!
//! Processes run on 127.0.0.1 on free ports and are killed by PID when the
//! test ends; every wait is bounded (`eventually`).

#[path = "cluster/harness.rs"]
mod harness;

use cashe::protocol::{reply, Reply};
use harness::{
    bulk_text, eventually, free_port, redis_cli, redis_server, ChildGuard, Client, Cluster, TempDir,
};
use std::collections::BTreeMap;
use std::time::Duration;

const TOOL_LIMIT: Duration = Duration::from_secs(120);

/// A Redis Cluster of one master holding every slot and two replicas,
/// each node's answers settled (replicas synced and online).
struct RedisCluster {
    _nodes: Vec<ChildGuard>,
    _dir: TempDir,
    ports: Vec<u16>,
}

impl RedisCluster {
    fn start() -> RedisCluster {
        let dir = TempDir::new("redis-cluster");
        let mut nodes = Vec::new();
        let mut ports = Vec::new();
        let mut buses = Vec::new();
        for i in 0..3 {
            let config = dir.0.join(format!("nodes-{i}.conf"));
            let bus = free_port().to_string();
            // A replica's full sync writes an RDB file: into the temporary
            // directory, not the working one.
            let args = ["--cluster-enabled", "yes", "--cluster-port", &bus, "--dir"];
            let mut args: Vec<&std::ffi::OsStr> = args.iter().map(std::ffi::OsStr::new).collect();
            args.extend([dir.0.as_os_str(), "--cluster-config-file".as_ref(), config.as_os_str()]);
            let (guard, port) = redis_server(&args);
            nodes.push(guard);
            ports.push(port);
            buses.push(bus);
        }
        let call =
            |port: u16, args: &[&str]| Client::connect(port).expect("connect").call(args).expect("reply");
        assert_eq!(call(ports[0], &["CLUSTER", "ADDSLOTSRANGE", "0", "16383"]), Reply::ok());
        for port in &ports[1..] {
            let meet = ["CLUSTER", "MEET", "127.0.0.1", &ports[0].to_string(), &buses[0]];
            assert_eq!(call(*port, &meet), Reply::ok());
        }
        let master = bulk_text(&call(ports[0], &["CLUSTER", "MYID"])).expect("an id");
        for port in &ports[1..] {
            eventually("the replica knows the master", || {
                (call(*port, &["CLUSTER", "REPLICATE", &master]) == Reply::ok()).then_some(())
            });
        }
        for port in &ports {
            eventually("every Redis node sees two online replicas", || {
                let unmasked = Masks { names: BTreeMap::new(), ports: BTreeMap::new() };
                let shards = unmasked.render(&call(*port, &["CLUSTER", "SHARDS"]));
                let nodes = bulk_text(&call(*port, &["CLUSTER", "NODES"]))?;
                let online = shards.matches("online").count() == 3;
                let info = bulk_text(&call(*port, &["CLUSTER", "INFO"]))?;
                (online && nodes.lines().count() == 3 && info.contains("cluster_state:ok")).then_some(())
            });
        }
        RedisCluster { _nodes: nodes, _dir: dir, ports }
    }
}

/// The client port of the node a cluster's `CLUSTER SLOTS` names master.
fn master_port(port: u16) -> u16 {
    let slots = Client::connect(port).expect("connect").call(&["CLUSTER", "SLOTS"]).expect("reply");
    let Reply::Array(Some(ranges)) = slots else { panic!("CLUSTER SLOTS: {slots:?}") };
    let [Reply::Array(Some(range))] = ranges.as_slice() else { panic!("one range: {ranges:?}") };
    let Reply::Array(Some(master)) = &range[2] else { panic!("{range:?}") };
    let Reply::Integer(port) = master[1] else { panic!("{master:?}") };
    u16::try_from(port).expect("a port")
}

/// A reply rendered with what differs between clusters masked: node ids
/// and ports as MASTER/REPLICA (and their ports), replication offsets.
struct Masks {
    names: BTreeMap<String, &'static str>,
    ports: BTreeMap<i64, &'static str>,
}

impl Masks {
    /// From `CLUSTER NODES` through `port`: each line's id, client port and
    /// bus port, named by role.
    fn of(port: u16) -> Masks {
        let nodes =
            bulk_text(&Client::connect(port).expect("connect").call(&["CLUSTER", "NODES"]).expect("reply"))
                .expect("CLUSTER NODES text");
        let mut masks = Masks { names: BTreeMap::new(), ports: BTreeMap::new() };
        for line in nodes.lines() {
            let fields: Vec<&str> = line.split(' ').collect();
            let master = fields[2].contains("master");
            masks.names.insert(fields[0].to_string(), if master { "MASTER" } else { "REPLICA" });
            let (client, bus) = fields[1].split_once('@').expect("addr@bus");
            let client: i64 = client.rsplit(':').next().unwrap().parse().unwrap();
            masks.ports.insert(client, if master { "MASTER-PORT" } else { "REPLICA-PORT" });
            let bus: i64 = bus.split(',').next().unwrap().parse().unwrap();
            masks.ports.insert(bus, "BUS-PORT");
        }
        masks
    }

    fn render(&self, reply: &Reply) -> String {
        match reply {
            Reply::Integer(i) => self.ports.get(i).map_or_else(|| format!(":{i}"), |p| p.to_string()),
            Reply::Bulk(Some(b)) => {
                let text = String::from_utf8_lossy(b).into_owned();
                self.names.get(&text).map_or_else(|| format!("${text}"), |n| n.to_string())
            }
            Reply::Array(Some(items)) => {
                let mut items: Vec<String> = items.iter().map(|r| self.render(r)).collect();
                // RESP2's flat form of a map.
                for i in 1..items.len() {
                    if items[i - 1] == "$replication-offset" {
                        items[i] = "OFFSET".into();
                    }
                }
                // Replicas (arrays or maps of their own) come in no
                // particular order.
                let replicas = items.iter().position(|i| i.contains("REPLICA")).unwrap_or(items.len());
                if items[replicas..].iter().all(|i| i.starts_with('[') || i.starts_with('{')) {
                    items[replicas..].sort();
                }
                format!("[{}]", items.join(" "))
            }
            Reply::Map(pairs) => {
                let pairs = pairs.iter().map(|(k, v)| match k {
                    Reply::Bulk(Some(key)) if key == b"replication-offset" => {
                        "replication-offset=OFFSET".into()
                    }
                    _ => format!("{}={}", self.render(k), self.render(v)),
                });
                format!("{{{}}}", pairs.collect::<Vec<_>>().join(" "))
            }
            other => format!("{other:?}"),
        }
    }

    /// `CLUSTER NODES` lines without the timing fields (ping sent, pong
    /// received, epoch), masked, sorted.
    fn render_nodes(&self, text: &str) -> Vec<String> {
        let mut lines: Vec<String> = text
            .lines()
            .map(|line| {
                let fields: Vec<&str> = line.split(' ').collect();
                let (client, bus) = fields[1].split_once('@').unwrap();
                let (host, client) = client.rsplit_once(':').unwrap();
                let port = |p: &str| self.ports[&p.parse::<i64>().unwrap()];
                let name = |n: &str| self.names.get(n).map_or(n.to_string(), |m| m.to_string());
                let mut kept = vec![name(fields[0]), format!("{host}:{}@{}", port(client), port(bus))];
                kept.extend([fields[2].to_string(), name(fields[3]), fields[7].to_string()]);
                kept.extend(fields[8..].iter().map(|s| s.to_string()));
                kept.join(" ")
            })
            .collect();
        lines.sort();
        lines
    }
}

/// One command's reply on a connection that first sent `setup`.
fn ask(port: u16, setup: &[&[&str]], command: &[&str]) -> Reply {
    let mut client = Client::connect(port).expect("connect");
    for args in setup {
        client.call(args).expect("a reply");
    }
    client.call(command).expect("a reply")
}

#[test]
fn cluster_topology_answers_as_redis_clusters_do_through_every_node() {
    let cashe = Cluster::start("redis-cluster-topology", 3);
    let redis = RedisCluster::start();
    let leader = cashe.servers[cashe.leader()].client_port;
    let redis_master = master_port(redis.ports[0]);
    let redis_replica = *redis.ports.iter().find(|p| **p != redis_master).unwrap();
    let redis_masks = Masks::of(redis_master);
    for (i, server) in cashe.servers.iter().enumerate() {
        let port = server.client_port;
        // Compared with the Redis node of the same role.
        let redis_port = if port == leader { redis_master } else { redis_replica };
        assert_eq!(master_port(port), leader, "CLUSTER SLOTS through {} names the leader", server.name);
        let ours = Masks::of(port);
        for (label, setup, command) in [
            ("SLOTS", &[][..], &["CLUSTER", "SLOTS"][..]),
            ("SLOTS over RESP3", &[&["HELLO", "3"][..]][..], &["CLUSTER", "SLOTS"][..]),
            ("SHARDS", &[], &["CLUSTER", "SHARDS"]),
            ("SHARDS over RESP3", &[&["HELLO", "3"][..]], &["CLUSTER", "SHARDS"]),
        ] {
            let mine = ours.render(&ask(port, setup, command));
            let theirs = redis_masks.render(&ask(redis_port, setup, command));
            assert_eq!(mine, theirs, "CLUSTER {label} through {}: cashe (left), Redis (right)", server.name);
            if i == 0 {
                println!("CLUSTER {label}, masked: {mine}");
            }
        }
        let nodes = |port: u16| bulk_text(&ask(port, &[], &["CLUSTER", "NODES"])).expect("text");
        let mine = ours.render_nodes(&nodes(port));
        let theirs = redis_masks.render_nodes(&nodes(redis_port));
        assert_eq!(mine, theirs, "CLUSTER NODES through {}", server.name);
        let info = bulk_text(&ask(port, &[], &["CLUSTER", "INFO"])).expect("text");
        for line in
            ["cluster_state:ok", "cluster_slots_assigned:16384", "cluster_slots_ok:16384", "cluster_size:1"]
        {
            assert!(info.contains(line), "CLUSTER INFO through {} lacks {line}: {info}", server.name);
        }
    }
}

/// Sends the same commands to a cashe node and a Redis node, each step on a
/// fresh connection, and requires the same bytes.
fn same_bytes(cashe: u16, redis: u16, steps: &[&[&str]]) {
    let ours = harness::run_script(steps, cashe);
    let theirs = harness::run_script(steps, redis);
    let commands = steps.iter().flat_map(|s| s.iter());
    for ((command, mine), theirs) in commands.zip(&ours).zip(&theirs) {
        assert_eq!(
            String::from_utf8_lossy(mine),
            String::from_utf8_lossy(theirs),
            "{command}: cashe (left), Redis (right)"
        );
    }
}

#[test]
fn slot_commands_getkeys_and_redirections_answer_as_redis_does() {
    let cashe = Cluster::start("redis-cluster-slots", 3);
    let redis = RedisCluster::start();
    let leader = cashe.servers[cashe.leader()].client_port;
    let follower = cashe.servers[cashe.followers()[0]].client_port;
    let redis_master = master_port(redis.ports[0]);
    let redis_replica = *redis.ports.iter().find(|p| **p != redis_master).unwrap();

    same_bytes(
        leader,
        redis_master,
        &[
            &["SET foo 1", "SET {foo}a 1", "SET {foo}b 1", "SET bar 1"],
            &["CLUSTER KEYSLOT foo", "CLUSTER KEYSLOT {user1000}.following", "CLUSTER KEYSLOT foo{}{bar}"],
            &["CLUSTER COUNTKEYSINSLOT 12182", "CLUSTER COUNTKEYSINSLOT 5061", "CLUSTER COUNTKEYSINSLOT 0"],
            &["CLUSTER GETKEYSINSLOT 5061 10", "CLUSTER GETKEYSINSLOT 12182 0"],
            &["CLUSTER COUNTKEYSINSLOT 16384", "CLUSTER COUNTKEYSINSLOT -1", "CLUSTER COUNTKEYSINSLOT x"],
            &["CLUSTER GETKEYSINSLOT 1 -1", "CLUSTER GETKEYSINSLOT 16384 1", "CLUSTER GETKEYSINSLOT x 1"],
            &["CLUSTER KEYSLOT", "CLUSTER COUNTKEYSINSLOT", "CLUSTER GETKEYSINSLOT 1"],
            &[
                "COMMAND GETKEYS SET a b",
                "COMMAND GETKEYS MSET a 1 b 2",
                "COMMAND GETKEYS ZUNIONSTORE d 2 a b",
            ],
            &[
                "COMMAND GETKEYS OBJECT ENCODING k",
                "COMMAND GETKEYS BLMPOP 0 2 a b LEFT",
                "COMMAND GETKEYS GET",
            ],
            &[
                "COMMAND GETKEYS PING x",
                "COMMAND GETKEYS NOSUCH x",
                "COMMAND GETKEYS SET a",
                "COMMAND GETKEYS KEYS *",
            ],
            &["INFO cluster"],
        ],
    );
    // GETKEYSINSLOT's order is the store's (Redis's is its slot index's):
    // compare as sets.
    let keys = |port: u16| {
        let Reply::Array(Some(keys)) = ask(port, &[], &["CLUSTER", "GETKEYSINSLOT", "12182", "10"]) else {
            panic!("GETKEYSINSLOT")
        };
        let mut keys: Vec<String> = keys.iter().filter_map(bulk_text).collect();
        keys.sort();
        keys
    };
    assert_eq!(keys(leader), keys(redis_master));
    assert_eq!(keys(leader), ["foo", "{foo}a", "{foo}b"]);

    // Redirections: masked by the master's address, the same bytes.
    let moved = |port: u16, master: u16, steps: &[&[&str]]| -> Vec<String> {
        let raw = harness::run_script(steps, port);
        raw.iter()
            .map(|r| String::from_utf8_lossy(r).replace(&format!("127.0.0.1:{master}"), "MASTER"))
            .collect()
    };
    let steps: &[&[&str]] = &[
        &["CLUSTER NODES", "READONLY", "GET foo", "SET foo 2", "READWRITE", "GET foo"],
        &["CLUSTER SLOTS", "GET foo", "MGET {foo}a {foo}b", "DBSIZE"],
        &["CLUSTER SHARDS", "READONLY", "MULTI", "GET foo", "SET foo 3", "EXEC", "GET foo"],
    ];
    let ours = moved(follower, leader, steps);
    let theirs = moved(redis_replica, redis_master, steps);
    let ours_text: Vec<String> =
        ours.iter().map(|r| r.lines().next().unwrap_or_default().to_string()).collect();
    let theirs_text: Vec<String> =
        theirs.iter().map(|r| r.lines().next().unwrap_or_default().to_string()).collect();
    // The topology answers' bytes differ (ids, ports); compared above.
    let skip = [0, 6, 10];
    for (i, (mine, theirs)) in ours.iter().zip(&theirs).enumerate().filter(|(i, _)| !skip.contains(i)) {
        assert_eq!(
            mine, theirs,
            "step {i}: cashe (left), Redis (right); all: {ours_text:?} vs {theirs_text:?}"
        );
    }
    assert!(ours[3].starts_with("-MOVED 12182 MASTER"), "{ours_text:?}");
    assert!(ours[7].starts_with("-MOVED 12182 MASTER"), "{ours_text:?}");
    assert!(ours[15].starts_with("-EXECABORT"), "{ours_text:?}");

    // A plain connection through a follower is forwarded, as before, and so
    // is a READONLY one's write (cashe's fast-read switch; Redis redirects).
    assert_eq!(ask(follower, &[], &["SET", "foo", "4"]), Reply::ok());
    assert_eq!(ask(follower, &[], &["GET", "foo"]), Reply::bulk("4"));
    assert_eq!(ask(follower, &[&["READONLY"]], &["SET", "foo", "5"]), Reply::ok());
}

/// `tests/py/redis_py_cluster.py` starting from `port`; its transcript.
fn run_redis_py(against: &str, port: u16) -> String {
    harness::run_python("redis_py_cluster.py", &[port.to_string()], TOOL_LIMIT, against)
}

#[test]
fn redis_py_cluster_and_redis_cli_work_through_every_node() {
    let cashe = Cluster::start("redis-cluster-clients", 3);
    let redis = RedisCluster::start();
    let theirs = run_redis_py("Redis", redis.ports[1]);
    for server in &cashe.servers {
        let ours = run_redis_py(&server.name, server.client_port);
        assert_eq!(ours, theirs, "RedisCluster from {}: cashe (left), Redis (right)", server.name);
    }
    println!("--- redis-py RedisCluster transcript\n{theirs}");
    for (i, server) in cashe.servers.iter().enumerate() {
        let port = server.client_port;
        let key = format!("cli:{i}");
        assert_eq!(redis_cli(port, &["-c", "SET", &key, "v"]), "OK");
        assert_eq!(redis_cli(port, &["-c", "GET", &key]), "v");
        assert_eq!(redis_cli(port, &["SET", &key, "w"]), "OK", "plain redis-cli through {}", server.name);
        assert_eq!(redis_cli(port, &["GET", &key]), "w");
    }
}

#[test]
fn with_cluster_mode_redirect_every_client_is_redirected_and_redis_cli_c_follows() {
    let cashe = Cluster::start_with("redis-cluster-redirect", 3, &["--cluster-mode", "redirect"]);
    let leader = cashe.servers[cashe.leader()].client_port;
    let follower = cashe.servers[cashe.followers()[0]].client_port;
    let moved = format!("MOVED 12182 127.0.0.1:{leader}");
    assert_eq!(ask(follower, &[], &["SET", "foo", "1"]), Reply::error(moved.clone()));
    assert_eq!(ask(follower, &[], &["GET", "foo"]), Reply::error(moved.clone()));
    // Keyless commands are still answered (DBSIZE through the leader).
    assert_eq!(ask(follower, &[], &["PING"]), Reply::Simple("PONG".into()));
    assert_eq!(
        redis_cli(follower, &["SET", "foo", "1"]),
        moved,
        "redis-cli without -c shows the redirection"
    );
    assert_eq!(redis_cli(follower, &["-c", "SET", "foo", "2"]), "OK");
    assert_eq!(redis_cli(follower, &["-c", "GET", "foo"]), "2");
    assert_eq!(ask(leader, &[], &["GET", "foo"]), Reply::bulk("2"));
    // A decoded MOVED is an error reply like any other.
    let raw = harness::run_script(&[&["GET foo"]], follower);
    assert!(matches!(reply::decode(&raw[0]), Ok(Some((Reply::Error(e), _))) if e == moved));
}
