//! Connection and server commands (src/node/server.rs): reply shapes and
//! error texts on a node, and byte-for-byte comparison with a real
//! redis-server 7.0 for the commands whose answers do not depend on the
//! server (PING, ECHO, SELECT, CLIENT names, HELLO errors, arity and
//! subcommand errors, CONFIG GET save) and for every command's arity and
//! key positions in COMMAND INFO.

#[path = "cluster/harness.rs"]
mod harness;
#[path = "common/redis.rs"]
mod redis;

use cashe::kv::{commands, Access};
use cashe::node::{ConnId, MemberInfo, Node, NodeConfig, NodeMessage};
use cashe::protocol::{Protocol, Reply};
use cashe::raft::{NodeId, Raft};
use redis::RedisServer;

const START_MS: u64 = 1_700_000_000_123;

/// Nodes on a perfect network with instant disks.
struct Cluster {
    nodes: Vec<Node>,
    replies: Vec<(NodeId, ConnId, Reply)>,
    now_ms: u64,
}

impl Cluster {
    fn new(size: u64) -> Cluster {
        Cluster::with_members(size, |_| None)
    }

    /// `me(id)`: the name and addresses node `id` records once it leads.
    fn with_members(size: u64, me: impl Fn(u64) -> Option<MemberInfo>) -> Cluster {
        let ids: Vec<NodeId> = (1..=size).map(NodeId).collect();
        let nodes = ids
            .iter()
            .map(|id| {
                let mut config = NodeConfig::new(*id);
                config.raft.election_ticks = 5;
                config.me = me(id.0);
                Node::restore(config, id.0, Raft::bootstrap(ids.clone())).expect("bootstrap")
            })
            .collect();
        Cluster { nodes, replies: Vec::new(), now_ms: START_MS }
    }

    /// A cluster whose node 1 leads, with its first entries applied everywhere.
    fn with_leader(size: u64) -> Cluster {
        Cluster::new(size).elect_node_1()
    }

    fn elect_node_1(mut self) -> Cluster {
        for _ in 0..100 {
            let now = self.now_ms;
            self.node(1).tick(now);
            self.settle();
            if self.node(1).raft().is_leader() {
                return self;
            }
        }
        panic!("node 1 did not become leader");
    }

    fn node(&mut self, id: u64) -> &mut Node {
        &mut self.nodes[id as usize - 1]
    }

    /// Persists, sends and delivers until nothing moves (bounded).
    fn settle(&mut self) {
        for _ in 0..1000 {
            let mut busy = false;
            let mut messages: Vec<(NodeId, NodeId, NodeMessage)> = Vec::new();
            for node in &mut self.nodes {
                let id = node.raft().id();
                let output = node.take_output();
                if let Some((last, _)) = output.persist.last() {
                    node.persisted(*last);
                    busy = true;
                }
                self.replies.extend(output.replies.into_iter().map(|(conn, reply)| (id, conn, reply)));
                messages.extend(output.send.into_iter().map(|(to, message)| (id, to, message)));
            }
            if !busy && messages.is_empty() {
                return;
            }
            for (from, to, message) in messages {
                self.node(to.0).step(from, message);
            }
        }
        panic!("the cluster did not settle");
    }

    /// Sends a command and returns its one reply.
    fn call_args(&mut self, id: u64, conn: u64, args: Vec<Vec<u8>>) -> Reply {
        let now = self.now_ms;
        self.node(id).client(ConnId(conn), args.clone(), now);
        self.settle();
        let position = self.replies.iter().position(|(node, c, _)| *node == NodeId(id) && *c == ConnId(conn));
        let reply = self.replies.remove(position.unwrap_or_else(|| panic!("no reply to {args:?}"))).2;
        assert!(!self.replies.iter().any(|(_, c, _)| *c == ConnId(conn)), "one reply to {args:?}");
        reply
    }

    /// Sends a command written as words separated by single spaces.
    fn call(&mut self, id: u64, conn: u64, text: &str) -> Reply {
        self.call_args(id, conn, words(text))
    }
}

fn words(text: &str) -> Vec<Vec<u8>> {
    text.split(' ').map(|w| w.as_bytes().to_vec()).collect()
}

fn array(items: Vec<Reply>) -> Reply {
    Reply::Array(Some(items))
}

fn bulk_text(reply: &Reply) -> String {
    match reply {
        Reply::Bulk(Some(bytes)) => String::from_utf8(bytes.clone()).expect("UTF-8"),
        other => panic!("not a bulk string: {other:?}"),
    }
}

fn items(reply: &Reply) -> &[Reply] {
    match reply {
        Reply::Array(Some(items)) => items,
        other => panic!("not an array: {other:?}"),
    }
}

/// The value of `field` in an INFO text.
fn info_field(info: &str, field: &str) -> Option<String> {
    info.split("\r\n").find_map(|line| line.strip_prefix(&format!("{field}:")).map(str::to_string))
}

fn error(text: &str) -> Reply {
    Reply::error(text)
}

// ---- compared with redis-server ----

/// Sends each command to a one-node cluster's leader (one connection) and
/// to redis-server (one connection), and compares the RESP bytes; once in
/// RESP2, then again on connections switched to RESP3 with `HELLO 3`.
fn assert_same_as_redis(commands: &[Vec<Vec<u8>>]) {
    let server = RedisServer::start();
    for protocol in [Protocol::Resp2, Protocol::Resp3] {
        let mut redis = server.connect();
        redis.speak(protocol);
        let mut cluster = Cluster::with_leader(1);
        let hello = vec![b"HELLO".to_vec(), protocol.version().to_string().into_bytes()];
        cluster.call_args(1, 1, hello);
        for args in commands {
            let ours = cluster.call_args(1, 1, args.clone()).to_bytes();
            let theirs = redis.call(args);
            assert_eq!(
                String::from_utf8_lossy(&ours),
                String::from_utf8_lossy(&theirs),
                "{protocol:?}: {:?}",
                args.iter().map(|a| String::from_utf8_lossy(a).into_owned()).collect::<Vec<_>>()
            );
        }
    }
}

/// Like `assert_same_as_redis`, with each command on one of several
/// connections (`(connection, command)`), on a three-node cluster whose
/// connections 1 and 3 are on followers (`connection % 3 + 1` is the node),
/// so transactions and WATCH go through forwarding too.
fn assert_same_as_redis_on(script: &[(u64, &str)]) {
    let server = RedisServer::start();
    for protocol in [Protocol::Resp2, Protocol::Resp3] {
        let mut cluster = Cluster::with_leader(3);
        server.connect().call(&words("FLUSHALL"));
        let mut connections = std::collections::BTreeMap::new();
        for (conn, text) in script {
            let node = conn % 3 + 1;
            let redis = connections.entry(*conn).or_insert_with(|| {
                let hello = format!("HELLO {}", protocol.version());
                cluster.call(node, *conn, &hello);
                let mut client = server.connect();
                client.speak(protocol);
                client
            });
            let ours = cluster.call(node, *conn, text).to_bytes();
            let theirs = redis.call(&words(text));
            assert_eq!(
                String::from_utf8_lossy(&ours),
                String::from_utf8_lossy(&theirs),
                "{protocol:?}, connection {conn} at node {node}: {text}"
            );
        }
    }
}

#[test]
fn transactions_answer_like_redis_through_any_node() {
    assert_same_as_redis_on(&[
        (1, "EXEC"),
        (1, "DISCARD"),
        (1, "MULTI"),
        (1, "MULTI"),
        (1, "SET k 1"),
        (1, "INCR k"),
        (1, "GET nosuch"),
        (1, "PING"),
        (1, "ECHO e"),
        (1, "INCR k x"),
        (1, "EXEC"),
        (1, "GET k"),
        (1, "MULTI"),
        (1, "SET k v"),
        (1, "INCR k"),
        (1, "GET k"),
        (1, "EXEC"),
        (1, "MULTI"),
        (1, "NOSUCH a b"),
        (1, "SET k w"),
        (1, "EXEC"),
        (1, "GET k"),
        (1, "MULTI"),
        (1, "SET k z"),
        (1, "DISCARD"),
        (1, "GET k"),
        (1, "MULTI"),
        (1, "EXEC"),
        (1, "MULTI x"),
        (1, "WATCH"),
        (1, "UNWATCH x"),
        (1, "MULTI"),
        (1, "WATCH k"),
        (1, "EXEC x"),
        (1, "EXEC"),
        // WATCH: a write by another connection, on another node, aborts.
        (2, "WATCH k"),
        (3, "SET k other"),
        (2, "MULTI"),
        (2, "SET k mine"),
        (2, "EXEC"),
        (2, "GET k"),
        // ... a write by the same connection before MULTI too; UNWATCH forgets.
        (2, "WATCH k"),
        (2, "SET k again"),
        (2, "MULTI"),
        (2, "GET k"),
        (2, "EXEC"),
        (2, "WATCH k"),
        (1, "SET k x"),
        (2, "UNWATCH"),
        (2, "MULTI"),
        (2, "GET k"),
        (2, "EXEC"),
        // Untouched keys, absent keys, and a key created and deleted.
        (1, "WATCH k absent gone"),
        (3, "SET gone 1"),
        (3, "DEL gone"),
        (1, "MULTI"),
        (1, "GET k"),
        (1, "EXEC"),
        (1, "WATCH k absent"),
        (3, "SET other 1"),
        (3, "GET k"),
        (1, "MULTI"),
        (1, "MGET k absent"),
        (1, "EXEC"),
        // DISCARD unwatches; a failed command inside EXEC does not stop the rest.
        (1, "WATCH k"),
        (1, "MULTI"),
        (1, "DISCARD"),
        (3, "SET k changed"),
        (1, "MULTI"),
        (1, "INCR k"),
        (1, "SET n 1"),
        (1, "INCR n"),
        (1, "EXEC"),
        // An expiry set on a watched key touches it.
        (1, "WATCH n"),
        (3, "EXPIRE n 100"),
        (1, "MULTI"),
        (1, "TTL n"),
        (1, "EXEC"),
    ]);
}

#[test]
fn ping_echo_and_select_answer_like_redis() {
    let mut commands: Vec<Vec<Vec<u8>>> = [
        "PING",
        "ping hello",
        "PING a b",
        "ECHO hi",
        "ECHO",
        "ECHO a b",
        "SELECT 0",
        "select x",
        "SELECT 16",
        "SELECT -1",
        "SELECT 99999999999",
        "SELECT +0",
        "SELECT -0",
        "SELECT 00",
        "SELECT",
        "SELECT 0 1",
        "TIME x",
        "ROLE x",
    ]
    .iter()
    .map(|text| words(text))
    .collect();
    commands.push(vec![b"PING".to_vec(), Vec::new()]);
    commands.push(vec![b"ECHO".to_vec(), b"\x00\xff\r\n".to_vec()]);
    commands.push(vec![b"SELECT".to_vec(), b" 0".to_vec()]);
    assert_same_as_redis(&commands);
}

#[test]
fn client_names_and_their_errors_are_redis_texts() {
    let mut commands: Vec<Vec<Vec<u8>>> = [
        "CLIENT GETNAME",
        "CLIENT SETNAME conn-1",
        "client getname",
        "CLIENT SETNAME a~!b",
        "CLIENT GETNAME",
        "CLIENT",
        "CLIENT SETNAME",
        "CLIENT SETNAME a b",
        "CLIENT GETNAME x",
        "CLIENT ID x",
        "CLIENT INFO x",
        "CLIENT NOSUCH",
        "client nosuch x",
        "CLIENT LIST x",
        "CONFIG",
        "CONFIG NOSUCH",
        "CONFIG GET",
        "CONFIG SET a",
        "CONFIG RESETSTAT x",
        "CONFIG GET save",
        "CONFIG GET SAVE",
        "CONFIG GET save SAVE s?ve",
        "CONFIG GET nosuch",
        "COMMAND NOSUCH",
        "COMMAND COUNT x",
        "COMMAND HELP x",
        "COMMAND DOCS nosuch",
    ]
    .iter()
    .map(|text| words(text))
    .collect();
    for bad in [&b"a b"[..], b"a\nb", b"a\x7fb", b"\xc3\xa9"] {
        commands.push(vec![b"CLIENT".to_vec(), b"SETNAME".to_vec(), bad.to_vec()]);
    }
    commands.push(words("CLIENT GETNAME"));
    commands.push(vec![b"CLIENT".to_vec(), b"SETNAME".to_vec(), Vec::new()]);
    commands.push(words("CLIENT GETNAME"));
    commands.push(vec![b"CLIENT".to_vec(), b"x".repeat(200)]);
    assert_same_as_redis(&commands);
}

#[test]
fn hello_errors_are_redis_texts() {
    let mut commands: Vec<Vec<Vec<u8>>> = [
        "HELLO 1",
        "HELLO 4",
        "HELLO x",
        "HELLO -1",
        "HELLO 2 foo",
        "HELLO 2 SETNAME",
        "HELLO 2 AUTH user",
        "HELLO 2 SETNAME ok foo",
        "HELLO SETNAME x",
    ]
    .iter()
    .map(|text| words(text))
    .collect();
    commands.push(vec![b"HELLO".to_vec(), b"2".to_vec(), b"SETNAME".to_vec(), b"a b".to_vec()]);
    assert_same_as_redis(&commands);
}

#[test]
fn hello_3_switches_to_resp3_with_the_fields_redis_gives() {
    let server = RedisServer::start();
    let theirs = redis::parse(&server.connect().call(&words("HELLO 3")));
    let mut cluster = Cluster::with_leader(1);
    let ours = cluster.call(1, 1, "HELLO 3");
    let (Reply::Map(ours), Reply::Map(theirs)) = (&ours, &theirs) else { panic!("{ours:?} / {theirs:?}") };
    let keys = |map: &[(Reply, Reply)]| map.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>();
    assert_eq!(keys(ours), keys(theirs));
    assert_eq!(ours[2], (Reply::bulk("proto"), Reply::Integer(3)));
    // The connection speaks RESP3 now: nulls are `_`, CONFIG GET a map, INFO verbatim text.
    assert_eq!(cluster.call(1, 1, "CLIENT GETNAME"), Reply::Null);
    assert_eq!(
        cluster.call(1, 1, "CONFIG GET save"),
        Reply::Map(vec![(Reply::bulk("save"), Reply::bulk(""))])
    );
    assert!(matches!(cluster.call(1, 1, "INFO server"), Reply::Verbatim { format, .. } if format == "txt"));
    let line = cluster.call(1, 1, "CLIENT INFO");
    assert!(
        matches!(&line, Reply::Verbatim { text, .. } if String::from_utf8_lossy(text).contains(" resp=3"))
    );
    // Other connections are not affected, and HELLO 2 switches back.
    assert_eq!(cluster.call(1, 2, "CLIENT GETNAME"), Reply::nil());
    assert!(matches!(cluster.call(1, 1, "HELLO 2"), Reply::Array(Some(_))));
    assert_eq!(cluster.call(1, 1, "CLIENT GETNAME"), Reply::nil());
}

#[test]
fn arity_and_key_positions_in_command_info_are_redis_values() {
    let server = RedisServer::start();
    let mut redis = server.connect();
    let mut cluster = Cluster::with_leader(1);
    let listing = cluster.call(1, 1, "COMMAND");
    let mut described = Vec::new();
    for info in items(&listing) {
        described.push(info.clone());
        described.extend(items(&items(info)[9]).iter().cloned());
    }
    let mut unknown_to_redis = Vec::new();
    for info in &described {
        let fields = items(info);
        let name = bulk_text(&fields[0]);
        let theirs =
            redis::parse(&redis.call(&[b"COMMAND".to_vec(), b"INFO".to_vec(), name.clone().into_bytes()]));
        match &items(&theirs)[0] {
            Reply::Bulk(None) => unknown_to_redis.push(name),
            Reply::Array(Some(theirs)) => {
                let positions = |f: &[Reply]| (f[1].clone(), f[3].clone(), f[4].clone(), f[5].clone());
                assert_eq!(positions(fields), positions(theirs), "{name}: arity, first, last, step");
            }
            other => panic!("{name}: {other:?}"),
        }
    }
    assert_eq!(
        unknown_to_redis,
        ["client|setinfo", "has", "cashe.backup", "cashe.digest", "cas"],
        "cashe's own, or newer than Redis 7.0"
    );
}

// ---- the node alone ----

#[test]
fn ping_echo_quit_and_time() {
    let mut cluster = Cluster::with_leader(1);
    assert_eq!(cluster.call(1, 1, "ping"), Reply::Simple("PONG".into()));
    assert_eq!(cluster.call(1, 1, "PING hi"), Reply::bulk("hi"));
    assert_eq!(cluster.call(1, 1, "ECHO x"), Reply::bulk("x"));
    assert_eq!(cluster.call(1, 1, "QUIT"), Reply::ok());
    assert_eq!(cluster.call(1, 1, "TIME"), array(vec![Reply::bulk("1700000000"), Reply::bulk("123000")]));
}

#[test]
fn select_accepts_only_database_zero() {
    let mut cluster = Cluster::with_leader(1);
    assert_eq!(cluster.call(1, 1, "SELECT 0"), Reply::ok());
    assert_eq!(cluster.call(1, 1, "SELECT 1"), error("ERR DB index is out of range"));
    assert_eq!(cluster.call(1, 1, "SELECT one"), error("ERR value is not an integer or out of range"));
}

#[test]
fn key_space_commands_still_reach_the_store() {
    let mut cluster = Cluster::with_leader(1);
    assert_eq!(cluster.call(1, 1, "SET k v"), Reply::ok());
    assert_eq!(cluster.call(1, 1, "GET k"), Reply::bulk("v"));
    assert_eq!(cluster.call(1, 1, "READONLY"), Reply::ok());
    assert_eq!(
        cluster.call(1, 1, "NOSUCH a"),
        error("ERR unknown command 'NOSUCH', with args beginning with: 'a' ")
    );
}

#[test]
fn info_has_redis_layout_and_every_section() {
    let mut cluster = Cluster::with_leader(1);
    cluster.node(1).shell_stats.server = vec![("tcp_port".into(), "6379".into())];
    cluster.node(1).shell_stats.stats = vec![("wal_fsyncs".into(), "42".into())];
    let info = bulk_text(&cluster.call(1, 1, "INFO"));
    let titles: Vec<&str> = info.split("\r\n").filter(|line| line.starts_with('#')).collect();
    assert_eq!(
        titles,
        [
            "# Server",
            "# Clients",
            "# Memory",
            "# Persistence",
            "# Stats",
            "# Replication",
            "# CPU",
            "# Modules",
            "# Errorstats",
            "# Cluster",
            "# Keyspace"
        ]
    );
    assert!(info.starts_with("# Server\r\nredis_version:7.0.0\r\nredis_mode:cluster\r\n"), "{info}");
    assert!(info.contains("\r\n\r\n# Clients\r\n"), "sections are separated by a blank line");
    assert!(info.ends_with("# Keyspace\r\n"), "an empty key space has no db0 line: {info}");
    assert_eq!(info_field(&info, "cashe_version").as_deref(), Some(env!("CARGO_PKG_VERSION")));
    assert_eq!(info_field(&info, "tcp_port").as_deref(), Some("6379"));
    assert_eq!(info_field(&info, "wal_fsyncs").as_deref(), Some("42"));
    assert_eq!(info_field(&info, "aof_enabled").as_deref(), Some("1"));
    assert_eq!(info_field(&info, "loading").as_deref(), Some("0"));
    // Counters move with every INFO; the rest is the same for `default`.
    let without_counters = |text: &str| {
        let counter = |l: &&str| l.starts_with("total_") || l.starts_with("cmdstat_");
        text.lines().filter(|l| !counter(l)).collect::<Vec<_>>().join("\n")
    };
    for default in ["INFO default", "INFO DEFAULT", "INFO nosuch default"] {
        let other = bulk_text(&cluster.call(1, 1, default));
        assert_eq!(without_counters(&other), without_counters(&info), "{default}");
    }
    let all = bulk_text(&cluster.call(1, 1, "INFO all"));
    for same in ["INFO ALL", "INFO everything", "INFO server all", "INFO default commandstats latencystats"] {
        let other = bulk_text(&cluster.call(1, 1, same));
        assert_eq!(without_counters(&other), without_counters(&all), "{same}");
    }
}

/// Redis 7.0's tests/unit/info-command.tcl, on a node.
#[test]
fn info_sections_are_chosen_as_redis_7_chooses_them() {
    let mut cluster = Cluster::with_leader(1);
    let titles = |cluster: &mut Cluster, command: &str| -> Vec<String> {
        let info = bulk_text(&cluster.call(1, 1, command));
        info.split("\r\n").filter_map(|l| l.strip_prefix("# ")).map(str::to_string).collect()
    };
    let default = titles(&mut cluster, "INFO");
    assert!(default.iter().any(|t| t == "Server") && default.iter().any(|t| t == "Errorstats"));
    assert!(!default.iter().any(|t| t == "Commandstats" || t == "Latencystats"), "{default:?}");
    let all = titles(&mut cluster, "INFO all");
    assert!(all.iter().any(|t| t == "Commandstats") && all.iter().any(|t| t == "Latencystats"));
    assert_eq!(titles(&mut cluster, "INFO everything"), all, "no module sections: as `all`");
    assert!(all.iter().any(|t| t == "Modules"));
    assert_eq!(titles(&mut cluster, "INFO server clients"), ["Server", "Clients"]);
    assert_eq!(
        titles(&mut cluster, "INFO Clients SERVER clients"),
        ["Server", "Clients"],
        "Redis's order, once"
    );
    assert_eq!(titles(&mut cluster, "INFO keyspace cpu"), ["CPU", "Keyspace"]);
    assert_eq!(titles(&mut cluster, "INFO module_list"), ["Modules"]);
    assert_eq!(titles(&mut cluster, "INFO commandstats"), ["Commandstats"]);
    assert_eq!(cluster.call(1, 1, "INFO garbage"), Reply::bulk(""));
    assert_eq!(cluster.call(1, 1, "INFO sentinel"), Reply::bulk(""));
    assert_eq!(cluster.call(1, 1, "INFO cluster"), Reply::bulk("# Cluster\r\ncluster_enabled:1\r\n"));
    assert_eq!(cluster.call(1, 1, "INFO modules"), Reply::bulk("# Modules\r\n"));
    assert_eq!(cluster.call(1, 1, "INFO latencystats"), Reply::bulk("# Latencystats\r\n"));
    let memory = bulk_text(&cluster.call(1, 1, "INFO memory"));
    assert_eq!(memory, "# Memory\r\nmaxmemory:0\r\nmaxmemory_human:0B\r\nmaxmemory_policy:noeviction\r\n");
    assert_eq!(cluster.call(1, 1, "INFO cpu"), Reply::bulk("# CPU\r\n"), "no shell readings: no fields");
}

#[test]
fn info_memory_and_cpu_show_the_shell_readings() {
    let mut cluster = Cluster::with_leader(1);
    let stats = &mut cluster.node(1).shell_stats;
    stats.rss_bytes = Some(12_464_128);
    stats.system_memory_bytes = Some(25_276_194_816);
    stats.cpu = Some(cashe::node::CpuTimes {
        user_us: 1_230_000,
        system_us: 40_000,
        main_thread_user_us: 1_000_000,
        main_thread_system_us: 0,
    });
    let memory = bulk_text(&cluster.call(1, 1, "INFO memory"));
    assert!(
        memory.starts_with(
            "# Memory\r\nused_memory_rss:12464128\r\nused_memory_rss_human:11.89M\r\n\
             total_system_memory:25276194816\r\ntotal_system_memory_human:23.54G\r\nmaxmemory:0\r\n"
        ),
        "{memory}"
    );
    assert_eq!(
        bulk_text(&cluster.call(1, 1, "INFO cpu")),
        "# CPU\r\nused_cpu_sys:0.040000\r\nused_cpu_user:1.230000\r\nused_cpu_sys_children:0.000000\r\n\
         used_cpu_user_children:0.000000\r\nused_cpu_sys_main_thread:0.000000\r\n\
         used_cpu_user_main_thread:1.000000\r\n"
    );
}

#[test]
fn commandstats_and_errorstats_count_what_the_node_answered() {
    let mut cluster = Cluster::with_leader(3);
    assert_eq!(cluster.call(1, 1, "SET a b"), Reply::ok());
    assert_eq!(cluster.call(2, 2, "SET c d"), Reply::ok(), "through a follower: counted where it was asked");
    assert!(matches!(cluster.call(1, 1, "GET"), Reply::Error(_)));
    assert!(matches!(cluster.call(1, 1, "NOSUCH"), Reply::Error(_)));
    assert!(matches!(cluster.call(1, 1, "INCR a"), Reply::Error(_)));
    assert_eq!(
        cluster.call(1, 1, "CONFIG GET maxmemory"),
        array(vec![Reply::bulk("maxmemory"), Reply::bulk("0")])
    );
    assert_eq!(cluster.call(1, 1, "MULTI"), Reply::ok());
    assert_eq!(cluster.call(1, 1, "INCR a"), Reply::Simple("QUEUED".into()));
    assert!(matches!(cluster.call(1, 1, "EXEC"), Reply::Array(Some(_))));
    let stats = bulk_text(&cluster.call(1, 1, "INFO commandstats"));
    assert_eq!(
        stats,
        "# Commandstats\r\n\
         cmdstat_config|get:calls=1,rejected_calls=0,failed_calls=0\r\n\
         cmdstat_exec:calls=1,rejected_calls=0,failed_calls=0\r\n\
         cmdstat_get:calls=0,rejected_calls=1,failed_calls=0\r\n\
         cmdstat_incr:calls=1,rejected_calls=0,failed_calls=1\r\n\
         cmdstat_multi:calls=1,rejected_calls=0,failed_calls=0\r\n\
         cmdstat_set:calls=1,rejected_calls=0,failed_calls=0\r\n"
    );
    // GET's arity, NOSUCH, INCR's "not an integer", and INCR's again inside EXEC.
    assert_eq!(
        bulk_text(&cluster.call(1, 1, "INFO errorstats")),
        "# Errorstats\r\nerrorstat_ERR:count=4\r\n"
    );
    let info = bulk_text(&cluster.call(1, 1, "INFO stats"));
    assert_eq!(info_field(&info, "total_error_replies").as_deref(), Some("4"));
    let follower = bulk_text(&cluster.call(2, 2, "INFO commandstats"));
    assert!(follower.contains("cmdstat_set:calls=1,"), "{follower}");
    assert!(!follower.contains("cmdstat_info"), "as Redis, an INFO counts once answered: {follower}");
    let again = bulk_text(&cluster.call(2, 2, "INFO commandstats"));
    assert!(again.contains("cmdstat_info:calls=1,"), "{again}");
}

#[test]
fn info_answers_only_the_sections_named_in_any_case() {
    let mut cluster = Cluster::with_leader(1);
    assert_eq!(cluster.call(1, 1, "INFO KEYSPACE"), Reply::bulk("# Keyspace\r\n"));
    let two = bulk_text(&cluster.call(1, 1, "INFO clients nosuch Keyspace"));
    assert!(two.starts_with("# Clients\r\nconnected_clients:1\r\n"), "{two}");
    assert!(two.ends_with("\r\n\r\n# Keyspace\r\n"), "{two}");
    assert_eq!(cluster.call(1, 1, "INFO nosuch"), Reply::bulk(""));
}

#[test]
fn info_keyspace_counts_live_keys_and_keys_with_a_ttl() {
    let mut cluster = Cluster::with_leader(1);
    assert_eq!(cluster.call(1, 1, "SET a 1"), Reply::ok());
    assert_eq!(cluster.call(1, 1, "SET b 2 PX 1000"), Reply::ok());
    assert_eq!(
        cluster.call(1, 1, "INFO keyspace"),
        Reply::bulk("# Keyspace\r\ndb0:keys=2,expires=1,avg_ttl=0\r\n")
    );
    cluster.now_ms += 1001;
    assert_eq!(
        cluster.call(1, 1, "INFO keyspace"),
        Reply::bulk("# Keyspace\r\ndb0:keys=1,expires=0,avg_ttl=0\r\n")
    );
}

#[test]
fn info_counts_connections_until_they_close_and_every_command() {
    let mut cluster = Cluster::with_leader(1);
    for conn in 1..=3 {
        assert_eq!(cluster.call(1, conn, "PING"), Reply::Simple("PONG".into()));
    }
    cluster.node(1).disconnected(ConnId(2));
    let info = bulk_text(&cluster.call(1, 1, "INFO"));
    assert_eq!(info_field(&info, "connected_clients").as_deref(), Some("2"));
    assert_eq!(info_field(&info, "total_connections_received").as_deref(), Some("3"));
    assert_eq!(info_field(&info, "total_commands_processed").as_deref(), Some("4"), "this INFO included");
}

#[test]
fn a_shell_counter_replaces_the_node_field_of_the_same_name() {
    let mut cluster = Cluster::with_leader(1);
    cluster.node(1).shell_stats.stats =
        vec![("total_connections_received".into(), "99".into()), ("wal_fsyncs".into(), "7".into())];
    let info = bulk_text(&cluster.call(1, 1, "INFO stats"));
    assert_eq!(info.matches("total_connections_received:").count(), 1, "{info}");
    assert_eq!(info_field(&info, "total_connections_received").as_deref(), Some("99"));
    assert!(info.ends_with("wal_fsyncs:7\r\n"), "{info}");
}

#[test]
fn info_replication_on_the_leader_lists_members_with_match_indexes() {
    let mut cluster = Cluster::with_leader(3);
    let info = bulk_text(&cluster.call(1, 1, "INFO replication"));
    let applied = cluster.node(1).raft().applied().0;
    assert_eq!(info_field(&info, "role").as_deref(), Some("master"));
    assert_eq!(info_field(&info, "connected_slaves").as_deref(), Some("2"));
    assert_eq!(info_field(&info, "raft_id").as_deref(), Some("1"));
    assert_eq!(info_field(&info, "raft_leader").as_deref(), Some("node1"));
    assert_eq!(info_field(&info, "raft_applied_index"), Some(applied.to_string()));
    assert_eq!(
        info_field(&info, "member0"),
        Some(format!("name=node1,id=1,role=voter,match_index={applied}"))
    );
    assert_eq!(
        info_field(&info, "member2"),
        Some(format!("name=node3,id=3,role=voter,match_index={applied}"))
    );
}

#[test]
fn info_replication_on_a_follower_names_the_leader() {
    let mut cluster = Cluster::with_leader(3);
    let info = bulk_text(&cluster.call(2, 1, "INFO replication"));
    assert_eq!(info_field(&info, "role").as_deref(), Some("slave"));
    assert_eq!(info_field(&info, "master_host").as_deref(), Some("node1"), "no address known yet");
    assert_eq!(info_field(&info, "master_link_status").as_deref(), Some("up"));
    assert_eq!(info_field(&info, "raft_leader").as_deref(), Some("node1"));
    assert_eq!(info_field(&info, "member1").as_deref(), Some("name=node2,id=2,role=voter"));
    let mut alone = Cluster::new(3);
    let info = bulk_text(&alone.call(2, 1, "INFO replication"));
    assert_eq!(info_field(&info, "master_link_status").as_deref(), Some("down"));
    assert_eq!(info_field(&info, "raft_leader").as_deref(), Some(""));
}

#[test]
fn role_on_the_leader_lists_followers_with_match_indexes() {
    let mut cluster = Cluster::with_leader(1);
    let applied = cluster.node(1).raft().applied().0 as i64;
    assert_eq!(
        cluster.call(1, 1, "ROLE"),
        array(vec![Reply::bulk("master"), Reply::Integer(applied), array(vec![])])
    );
    let mut cluster = Cluster::with_leader(3);
    let applied = cluster.node(1).raft().applied().0;
    let follower =
        |name: &str| array(vec![Reply::bulk(name), Reply::bulk("0"), Reply::bulk(applied.to_string())]);
    assert_eq!(
        cluster.call(1, 1, "ROLE"),
        array(vec![
            Reply::bulk("master"),
            Reply::Integer(applied as i64),
            array(vec![follower("node2"), follower("node3")])
        ])
    );
}

#[test]
fn role_on_a_follower_says_whether_it_knows_the_leader() {
    let mut cluster = Cluster::with_leader(3);
    let applied = cluster.node(3).raft().applied().0 as i64;
    assert_eq!(
        cluster.call(3, 1, "ROLE"),
        array(vec![
            Reply::bulk("slave"),
            Reply::bulk("node1"),
            Reply::Integer(0),
            Reply::bulk("connected"),
            Reply::Integer(applied)
        ])
    );
    let mut alone = Cluster::new(3);
    let role = alone.call(3, 1, "ROLE");
    assert_eq!(items(&role)[3], Reply::bulk("connect"));
}

#[test]
fn role_and_info_give_the_leader_client_address_once_the_directory_has_it() {
    let alpha = MemberInfo {
        name: "alpha".into(),
        raft_addr: "10.0.0.1:7001".into(),
        client_addr: "10.0.0.1:6001".into(),
        tls_client_addr: None,
    };
    let mut cluster = Cluster::with_members(3, |id| (id == 1).then(|| alpha.clone())).elect_node_1();
    let now = cluster.now_ms;
    cluster.node(1).tick(now); // the leader records its own addresses
    cluster.settle();
    let role = cluster.call(3, 1, "ROLE");
    assert_eq!(
        items(&role)[..4],
        [Reply::bulk("slave"), Reply::bulk("10.0.0.1"), Reply::Integer(6001), Reply::bulk("connected")]
    );
    let info = bulk_text(&cluster.call(3, 1, "INFO replication"));
    assert_eq!(info_field(&info, "master_host").as_deref(), Some("10.0.0.1"));
    assert_eq!(info_field(&info, "master_port").as_deref(), Some("6001"));
    assert_eq!(info_field(&info, "raft_leader").as_deref(), Some("alpha"));
    assert!(info_field(&info, "member0").is_some_and(|line| line.starts_with("name=alpha,id=1,")), "{info}");
}

#[test]
fn command_lists_every_command_with_redis_fields() {
    let mut cluster = Cluster::with_leader(1);
    let listing = cluster.call(1, 1, "COMMAND");
    let names: Vec<String> = items(&listing).iter().map(|info| bulk_text(&items(info)[0])).collect();
    assert_eq!(cluster.call(1, 1, "COMMAND COUNT"), Reply::Integer(names.len() as i64));
    for name in ["ping", "client", "config", "hello", "readonly", "readwrite", "cluster", "get", "set", "del"]
    {
        assert!(names.iter().any(|n| n == name), "{name} listed");
    }
    assert!(!names.iter().any(|n| n == "cashe.expire"), "the internal command is not listed");
    let get = cluster.call(1, 1, "COMMAND INFO GET nosuch");
    let get_info = &items(&get)[0];
    assert_eq!(items(get_info).len(), 10);
    assert_eq!(
        items(get_info)[..6],
        [
            Reply::bulk("get"),
            Reply::Integer(2),
            array(vec![Reply::Simple("readonly".into())]),
            Reply::Integer(1),
            Reply::Integer(1),
            Reply::Integer(1)
        ]
    );
    assert_eq!(items(&get)[1], Reply::nil());
    let setname = cluster.call(1, 1, "COMMAND INFO client|setname");
    assert_eq!(items(&items(&setname)[0])[..2], [Reply::bulk("client|setname"), Reply::Integer(3)]);
    assert_eq!(cluster.call(1, 1, "COMMAND DOCS"), array(vec![]));
    let list = cluster.call(1, 1, "COMMAND LIST");
    assert!(items(&list).contains(&Reply::bulk("config|get")));
}

#[test]
fn the_key_space_listing_has_redis_key_positions() {
    let find = |name: &str| commands().find(|c| c.name == name).unwrap_or_else(|| panic!("{name}"));
    let get = find("get");
    assert_eq!(
        (get.arity, get.access, get.first_key, get.last_key, get.key_step),
        (2, Access::Read, 1, 1, 1)
    );
    let mset = find("mset");
    assert_eq!(
        (mset.arity, mset.access, mset.first_key, mset.last_key, mset.key_step),
        (-3, Access::Write, 1, -1, 2)
    );
    assert_eq!((find("rename").first_key, find("rename").last_key), (1, 2));
    assert_eq!((find("dbsize").first_key, find("dbsize").key_step), (0, 0));
}

#[test]
fn config_get_matches_globs_without_case_and_answers_each_parameter_once() {
    let mut cluster = Cluster::with_leader(1);
    let pairs = |items: &[(&str, &str)]| {
        array(items.iter().flat_map(|(n, v)| [Reply::bulk(*n), Reply::bulk(*v)]).collect())
    };
    assert_eq!(cluster.call(1, 1, "CONFIG GET appendonly"), pairs(&[("appendonly", "yes")]));
    assert_eq!(cluster.call(1, 1, "CONFIG GET save"), pairs(&[("save", "")]));
    assert_eq!(
        cluster.call(1, 1, "CONFIG GET APPEND* appendonly"),
        pairs(&[("appendonly", "yes"), ("appendfsync", "always")])
    );
    assert_eq!(
        cluster.call(1, 1, "CONFIG GET max*"),
        pairs(&[("maxmemory", "0"), ("maxmemory-policy", "noeviction"), ("maxclients", "10000")])
    );
    assert_eq!(cluster.call(1, 1, "CONFIG GET databases"), pairs(&[("databases", "1")]));
    cluster.node(1).shell_stats.config =
        vec![("maxclients".into(), "64".into()), ("port".into(), "7000".into())];
    assert_eq!(
        cluster.call(1, 1, "CONFIG GET maxclients port"),
        pairs(&[("maxclients", "64"), ("port", "7000")])
    );
    let info = bulk_text(&cluster.call(1, 1, "INFO clients"));
    assert_eq!(info_field(&info, "maxclients").as_deref(), Some("64"));
}

#[test]
fn config_changes_are_refused() {
    let mut cluster = Cluster::with_leader(1);
    assert_eq!(cluster.call(1, 1, "CONFIG SET save x"), error("ERR CONFIG SET is not supported by cashe"));
    assert_eq!(
        cluster.call(1, 1, "CONFIG RESETSTAT"),
        error("ERR CONFIG RESETSTAT is not supported by cashe")
    );
    assert_eq!(cluster.call(1, 1, "CONFIG REWRITE"), error("ERR CONFIG REWRITE is not supported by cashe"));
}

#[test]
fn client_names_belong_to_their_connection() {
    let mut cluster = Cluster::with_leader(1);
    assert_eq!(cluster.call(1, 7, "CLIENT SETNAME seven"), Reply::ok());
    assert_eq!(cluster.call(1, 8, "CLIENT GETNAME"), Reply::nil());
    assert_eq!(cluster.call(1, 7, "CLIENT GETNAME"), Reply::bulk("seven"));
    assert_eq!(cluster.call(1, 7, "CLIENT ID"), Reply::Integer(7));
    assert_eq!(cluster.call(1, 7, "CLIENT SETINFO LIB-NAME redis-py"), Reply::ok());
    let line = bulk_text(&cluster.call(1, 7, "CLIENT INFO"));
    assert!(line.starts_with("id=7 addr=? "), "{line}");
    assert!(line.contains(" name=seven ") && line.contains(" db=0 ") && line.contains(" resp=2"), "{line}");
    assert!(line.ends_with('\n'));
    let list = bulk_text(&cluster.call(1, 8, "CLIENT LIST"));
    assert_eq!(list.lines().count(), 2, "{list}");
    assert!(list.starts_with("id=7 ") && list.contains("\nid=8 "), "{list}");
    cluster.node(1).disconnected(ConnId(7));
    assert_eq!(cluster.call(1, 7, "CLIENT GETNAME"), Reply::nil(), "a new connection with the same id");
    assert_eq!(cluster.call(1, 7, "CLIENT FOO"), error("ERR unknown subcommand 'FOO'. Try CLIENT HELP."));
}

#[test]
fn hello_2_describes_the_server_and_may_name_the_connection() {
    let mut cluster = Cluster::with_leader(3);
    let expected = |id: i64, role: &str| {
        array(vec![
            Reply::bulk("server"),
            Reply::bulk("redis"),
            Reply::bulk("version"),
            Reply::bulk("7.0.0"),
            Reply::bulk("proto"),
            Reply::Integer(2),
            Reply::bulk("id"),
            Reply::Integer(id),
            Reply::bulk("mode"),
            Reply::bulk("cluster"),
            Reply::bulk("role"),
            Reply::bulk(role),
            Reply::bulk("modules"),
            array(vec![]),
        ])
    };
    assert_eq!(cluster.call(1, 5, "HELLO"), expected(5, "master"));
    assert_eq!(cluster.call(1, 5, "hello 2 setname five"), expected(5, "master"));
    assert_eq!(cluster.call(1, 5, "CLIENT GETNAME"), Reply::bulk("five"));
    assert_eq!(cluster.call(2, 6, "HELLO 2"), expected(6, "replica"));
    assert_eq!(
        cluster.call(1, 5, "HELLO 2 SETNAME other AUTH user pass"),
        error("WRONGPASS invalid username-password pair or user is disabled.")
    );
    assert_eq!(cluster.call(1, 5, "CLIENT GETNAME"), Reply::bulk("five"), "a refused HELLO names nothing");
}
