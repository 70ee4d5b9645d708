//! The key space in several Raft groups (`--shards`), as real processes: a
//! 3-node cluster of 16 shards whose `CLUSTER SLOTS` covers every slot with
//! each group's leader, leaders spread over the nodes (again after a fourth
//! node joins and after a node leaves, under a 16-client write load that
//! sees no error and loses no write), redis-py's
//! `RedisCluster` (SET, GET, MSET with a hash tag, HSET, SCAN, pipelines),
//! `redis-cli -c` and plain `redis-cli` working through every node, and
//! every group's data surviving a `kill -9` and restart.
//!
//! Processes run on 127.0.0.1 on free ports and are killed by PID when the
//! test ends; every wait is bounded (`eventually`).

#[path = "cluster/harness.rs"]
mod harness;

use cashe::protocol::Reply;
use harness::{bulk_text, eventually, field, redis_cli, Client, Cluster};
use std::collections::BTreeMap;
use std::time::Duration;

const SHARDS: usize = 16;
const TOOL_LIMIT: Duration = Duration::from_secs(120);

/// `CLUSTER SLOTS` through `port`: each range's first and last slot, and
/// its master's client port and name.
fn slot_table(port: u16) -> Option<Vec<(i64, i64, i64, String)>> {
    let Reply::Array(Some(ranges)) = Client::connect(port).ok()?.call(&["CLUSTER", "SLOTS"]).ok()? else {
        return None;
    };
    let mut table = Vec::new();
    for range in ranges {
        let Reply::Array(Some(parts)) = range else { return None };
        let (Reply::Integer(first), Reply::Integer(last)) = (&parts[0], &parts[1]) else { return None };
        let Reply::Array(Some(master)) = &parts[2] else { return None };
        let Reply::Integer(port) = master[1] else { return None };
        let name = bulk_text(&master[2])?;
        if parts.len() != 3 {
            return None; // a master alone: every node is a master to clients
        }
        table.push((*first, *last, port, name));
    }
    table.sort();
    Some(table)
}

/// Whether the ranges cover every slot, each once.
fn covers_every_slot(table: &[(i64, i64, i64, String)]) -> bool {
    let mut next = 0;
    for (first, last, _, _) in table {
        if *first != next {
            return false;
        }
        next = last + 1;
    }
    next == 16384
}

#[test]
fn sixteen_shards_on_three_nodes_serve_cluster_clients_and_plain_ones_through_every_node() {
    // Two executors a node, as the cluster: client connections on
    // either, the home group on executor 0 and the key groups on both.
    let mut cluster = Cluster::start_with("shards", 3, &["--shards", &SHARDS.to_string(), "--cores", "2"]);
    // Every node's CLUSTER SLOTS covers every slot, in one range per
    // shard, and the leaders spread until each node leads its share.
    let table = eventually("16 shards covering every slot, leaders spread", || {
        let tables: Vec<_> =
            cluster.servers.iter().map(|s| slot_table(s.client_port)).collect::<Option<_>>()?;
        let first: &Vec<_> = &tables[0];
        let agreed = tables.iter().all(|t| t == first);
        let mut led: BTreeMap<&str, usize> = BTreeMap::new();
        for (_, _, _, name) in first {
            *led.entry(name.as_str()).or_default() += 1;
        }
        let spread = led.len() == 3 && led.values().all(|n| (5..=6).contains(n));
        (agreed && first.len() == SHARDS && covers_every_slot(first) && spread).then(|| first.clone())
    });
    println!("slot ranges and their leaders:");
    for (first, last, port, name) in &table {
        println!("  {first:>5}-{last:<5} {name} (:{port})");
    }
    // ... and over both executors of every node: each node's INFO cluster
    // has a line per group, with the core it runs on.
    let per_core = eventually("leaders spread over every node's two cores", || {
        let mut led: BTreeMap<(String, String), usize> = BTreeMap::new();
        for server in &cluster.servers {
            let info = bulk_text(&server.call(&["INFO", "cluster"]))?;
            for core in ["0", "1"] {
                led.insert((server.name.clone(), core.to_string()), 0);
            }
            for line in info.lines().filter(|l| l.starts_with("group") && !l.starts_with("group0:")) {
                let fields: BTreeMap<&str, &str> =
                    line.split_once(':')?.1.split(',').filter_map(|kv| kv.split_once('=')).collect();
                if fields.get("role") == Some(&"leader") {
                    *led.get_mut(&(server.name.clone(), fields.get("core")?.to_string()))? += 1;
                }
            }
        }
        (led.values().sum::<usize>() == SHARDS && led.values().all(|n| (2..=3).contains(n))).then_some(led)
    });
    println!("key groups led per node and core:");
    for ((name, core), led) in &per_core {
        println!("  {name} core {core}: {led}");
    }
    for server in &cluster.servers {
        assert!(
            server.datadir.join("groups-1/wal").is_dir(),
            "{}: no log of core 1",
            server.datadir.display()
        );
    }
    let info = bulk_text(&cluster.servers[0].call(&["CLUSTER", "INFO"])).unwrap();
    assert_eq!(field(&info, "cluster_size").as_deref(), Some("16"), "{info}");
    assert_eq!(field(&info, "cluster_slots_ok").as_deref(), Some("16384"), "{info}");

    // redis-py's RedisCluster from every node: the script run against a
    // Redis Cluster in tests/redis_cluster.rs (SCAN included: scan_iter asks
    // every master, each scanning the groups it leads).
    for server in &cluster.servers {
        let transcript = harness::run_python(
            "redis_py_cluster.py",
            &[server.client_port.to_string(), SHARDS.to_string()],
            TOOL_LIMIT,
            &server.name,
        );
        assert!(transcript.contains("pipeline: [True, 2, b'2']"), "{transcript}");
        assert!(transcript.contains("plain delete across groups: 12"), "{transcript}");
    }
    // redis-cli with and without -c, through every node.
    for (i, server) in cluster.servers.iter().enumerate() {
        let port = server.client_port;
        for n in 0..8 {
            let key = format!("cli:{i}:{n}");
            assert_eq!(redis_cli(port, &["-c", "SET", &key, "v"]), "OK");
            assert_eq!(redis_cli(port, &["-c", "GET", &key]), "v");
            assert_eq!(redis_cli(port, &["SET", &key, "w"]), "OK", "plain redis-cli through {}", server.name);
            assert_eq!(redis_cli(port, &["GET", &key]), "w");
        }
        assert_eq!(redis_cli(port, &["MSET", "{tag}a", "1", "{tag}b", "2"]), "OK");
        let cross = redis_cli(port, &["MSET", "a", "1", "b", "2"]);
        assert!(cross.starts_with("CROSSSLOT"), "{cross}");
        // MGET and DEL over several groups are split for a plain client.
        let keys: Vec<String> = (0..8).map(|n| format!("cli:{i}:{n}")).collect();
        let mut mget = vec!["MGET"];
        mget.extend(keys.iter().map(String::as_str));
        assert_eq!(redis_cli(port, &mget), ["w"; 8].join("\n"), "plain MGET through {}", server.name);
    }
    // Each node counts the shards it leads, as a Redis Cluster master its
    // slots; together, every key once.
    // A leader handed over while DBSIZE runs answers TRYAGAIN: ask again.
    let count = |cluster: &Cluster| -> Option<i64> {
        let counts = cluster.servers.iter().map(|s| s.call(&["DBSIZE"]));
        counts
            .map(|c| match c {
                Reply::Integer(n) => Some(n),
                c if retriable(&c) => None,
                c => panic!("DBSIZE: {c:?}"),
            })
            .sum()
    };
    eventually("DBSIZE over the nodes counts every key once", || {
        (count(&cluster)? == 3 * 8 + 2).then_some(())
    });

    // Every group's log is on disk: a node killed and restarted serves
    // every key again.
    let victim = 1;
    cluster.servers[victim].kill9();
    cluster.servers[victim].start(None);
    let port = cluster.servers[victim].client_port;
    eventually("the restarted node serves every key", || {
        let mut client = Client::connect(port).ok()?;
        (0..3)
            .all(|i| {
                (0..8).all(|n| client.call(&["GET", &format!("cli:{i}:{n}")]).ok() == Some(Reply::bulk("w")))
            })
            .then_some(())
    });
    eventually("every key counted once after the restart", || (count(&cluster)? == 3 * 8 + 2).then_some(()));

    // All three killed at once: every group comes back from the disks
    // alone, out of each member's one shared log of key groups.
    for server in &mut cluster.servers {
        let datadir = &server.datadir;
        assert!(datadir.join("groups/wal").is_dir(), "{}: no shared log", datadir.display());
        assert!(!datadir.join("groups/1").exists(), "{}: a log of one group", datadir.display());
        server.kill9();
    }
    for server in &mut cluster.servers {
        server.start(None);
    }
    let port = cluster.servers[0].client_port;
    eventually("every key back after the whole cluster restarted", || {
        let mut client = Client::connect(port).ok()?;
        let all = (0..3).all(|i| {
            (0..8).all(|n| client.call(&["GET", &format!("cli:{i}:{n}")]).ok() == Some(Reply::bulk("w")))
        });
        let tagged = client.call(&["MGET", "{tag}a", "{tag}b"]).ok()
            == Some(Reply::Array(Some(vec![Reply::bulk("1"), Reply::bulk("2")])));
        (all && tagged).then_some(())
    });
}

/// A data directory of the layout before the shared log (one log per key
/// group, `groups/<k>/`) is refused by name at start-up, and nothing in it
/// is changed: this build would not find the groups' logs.
#[test]
fn a_data_directory_with_one_log_per_key_group_is_refused_at_start_up() {
    let root = harness::TempDir::new("shards-old-layout");
    let server = harness::Server::new(&root, "raft0");
    std::fs::create_dir_all(server.datadir.join("groups/1/wal")).unwrap();
    std::fs::write(server.datadir.join("shards"), "4\n").unwrap();
    std::fs::write(server.datadir.join("groups/1/wal/00000000000000000001.wal"), b"old").unwrap();
    // The home group's meta and group 1's, as the build before wrote them.
    let meta = cashe::wal::format::encode_meta(1, 7, cashe::wal::format::FORMAT_VERSION);
    std::fs::write(server.datadir.join("meta"), &meta).unwrap();
    std::fs::write(server.datadir.join("groups/1/meta"), &meta).unwrap();
    let mut command = server.command(None);
    let finished = harness::run_bounded(&mut command, Duration::from_secs(30));
    assert!(finished.status.is_some_and(|s| !s.success()), "started: {}{}", finished.stdout, finished.stderr);
    let output = finished.stdout + &finished.stderr;
    assert!(output.contains("groups/1/meta: a log of one key group"), "{output}");
    assert_eq!(std::fs::read(server.datadir.join("groups/1/wal/00000000000000000001.wal")).unwrap(), b"old");
    assert_eq!(std::fs::read(server.datadir.join("meta")).unwrap(), meta, "meta unchanged");
    assert!(!server.datadir.join("wal").exists(), "nothing written: {output}");
}

/// What the write load saw.
#[derive(Debug, Default)]
struct LoadTally {
    acknowledged: u64,
    /// Replies a client retries: nothing happened, or a SET of unknown
    /// fate (SET is idempotent, so retrying it is safe).
    retried: u64,
    /// Anything else: must stay zero.
    errors: Vec<String>,
    /// The last value each key was acknowledged with.
    last: BTreeMap<String, u64>,
}

/// A retriable answer: no leader now, a transfer, or a write of unknown fate.
fn retriable(reply: &Reply) -> bool {
    matches!(reply, Reply::Error(e) if ["CLUSTERDOWN", "TRYAGAIN", "TIMEOUT"].iter().any(|p| e.starts_with(p)))
}

/// One client of the load: SETs its keys with growing values through the
/// nodes in `ports` (moving on when one goes away), retrying each until it
/// is acknowledged, until `stop`.
fn write_load(
    client: usize,
    ports: Vec<u16>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> LoadTally {
    use std::sync::atomic::Ordering;
    let mut tally = LoadTally::default();
    let mut target = client % ports.len();
    let mut connection: Option<Client> = None;
    let mut value = 0u64;
    while !stop.load(Ordering::Relaxed) {
        value += 1;
        let key = format!("load:{client}:{}", value % 20);
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            if std::time::Instant::now() > deadline {
                tally.errors.push(format!("SET {key} {value} not acknowledged in 20 s"));
                break;
            }
            if connection.is_none() {
                target = (target + 1) % ports.len();
                connection = Client::connect(ports[target]).ok();
                if connection.is_none() {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                }
            }
            match connection.as_mut().unwrap().call(&["SET", &key, &value.to_string()]) {
                Ok(Reply::Simple(ok)) if ok == "OK" => {
                    tally.acknowledged += 1;
                    tally.last.insert(key.clone(), value);
                    break;
                }
                Ok(reply) if retriable(&reply) => {
                    tally.retried += 1;
                    std::thread::sleep(Duration::from_millis(10));
                }
                Ok(other) => {
                    tally.errors.push(format!("SET {key} {value}: {other:?}"));
                    break;
                }
                // The node went away (it left): another one.
                Err(_) => connection = None,
            }
        }
    }
    tally
}

/// Key groups led per node name, from `CLUSTER SLOTS` through `port`.
fn led_per_node(port: u16) -> Option<BTreeMap<String, usize>> {
    let mut led = BTreeMap::new();
    for (_, _, _, name) in slot_table(port)? {
        *led.entry(name).or_default() += 1;
    }
    Some(led)
}

#[test]
fn a_fourth_node_joins_and_a_node_leaves_under_a_write_load_with_no_error_and_no_lost_write() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    const CLIENTS: usize = 16;
    // Two executors a node: the groups a node gains or loses are on
    // either of its cores.
    let mut cluster =
        Cluster::start_with("shards-move", 3, &["--shards", &SHARDS.to_string(), "--cores", "2"]);
    eventually("leaders spread over three nodes", || {
        let led = led_per_node(cluster.servers[0].client_port)?;
        (led.len() == 3 && led.values().all(|n| (5..=6).contains(n))).then_some(())
    });
    let stop = Arc::new(AtomicBool::new(false));
    let ports: Vec<u16> = cluster.servers.iter().map(|s| s.client_port).collect();
    let load: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let (ports, stop) = (ports.clone(), stop.clone());
            std::thread::spawn(move || write_load(client, ports, stop))
        })
        .collect();
    std::thread::sleep(Duration::from_secs(1));

    // A fourth node joins: the groups placed on it move to it (it is added
    // to each, catches up, votes, and the member it replaces leaves the
    // group), and the others hand it groups until it leads its share.
    let fourth = cluster.add();
    cluster.wait_for_voters(4);
    let name = cluster.servers[fourth].name.clone();
    let led = eventually("the new node leads its share of the groups", || {
        let led = led_per_node(cluster.servers[0].client_port)?;
        (led.get(&name).copied().unwrap_or(0) >= 3 && led.values().all(|n| *n <= 5)).then_some(led)
    });
    println!("key groups led per node after the join: {led:?}");
    // Each key group on three of the four (the default --replicas), the
    // new node holding its share: INFO cluster's `replica=` per node.
    let holders = eventually("every key group on three of the four nodes", || {
        let mut holders: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for server in &cluster.servers {
            let Reply::Bulk(Some(info)) = server.call(&["INFO", "cluster"]) else { return None };
            for line in String::from_utf8_lossy(&info).lines() {
                if let (Some((group, _)), true) =
                    (line.split_once(':'), line.split(',').any(|field| field == "replica=yes"))
                {
                    holders.entry(group.to_string()).or_default().push(server.name.clone());
                }
            }
        }
        holders.remove("group0");
        let placed = holders.len() == SHARDS && holders.values().all(|h| h.len() == 3);
        placed.then_some(holders)
    });
    let held = holders.values().filter(|h| h.contains(&name)).count();
    println!("key groups per node after the join: {name} holds {held} of {SHARDS}");
    assert!(held >= 4, "{name} holds {held} of {SHARDS} groups: {holders:?}");

    // A node leaves: it hands over the groups it leads, then stops; the
    // rest lead every group.
    let leaver = 1;
    let leaver_name = cluster.servers[leaver].name.clone();
    assert_eq!(cluster.servers[leaver].call(&["CLUSTER", "LEAVE"]), Reply::ok());
    let server = &mut cluster.servers[leaver];
    eventually("the leaving node exits", || (!server.is_running()).then_some(()));
    server.kill9(); // reaps it
    let live = cluster.servers[0].client_port;
    let led = eventually("the other three lead every group, spread again", || {
        let led = led_per_node(live)?;
        let spread = led.len() == 3 && led.values().all(|n| (5..=6).contains(n));
        (!led.contains_key(&leaver_name) && spread).then_some(led)
    });
    println!("key groups led per node after {leaver_name} left: {led:?}");
    std::thread::sleep(Duration::from_secs(1));

    stop.store(true, Ordering::Relaxed);
    let mut total = LoadTally::default();
    for thread in load {
        let tally = thread.join().expect("a load client");
        total.acknowledged += tally.acknowledged;
        total.retried += tally.retried;
        total.errors.extend(tally.errors);
        total.last.extend(tally.last);
    }
    println!(
        "load: {} SETs acknowledged, {} retried (CLUSTERDOWN, TRYAGAIN, TIMEOUT), {} errors",
        total.acknowledged,
        total.retried,
        total.errors.len()
    );
    assert!(total.errors.is_empty(), "the load saw errors: {:?}", total.errors);
    assert!(total.acknowledged > 0);
    // Every key holds its last acknowledged value, through every live node.
    for server in cluster.servers.iter().filter(|s| s.name != leaver_name) {
        let mut client = Client::connect(server.client_port).expect("connect");
        for (key, value) in &total.last {
            assert_eq!(
                client.call(&["GET", key]).expect("GET"),
                Reply::bulk(value.to_string()),
                "{key} through {}",
                server.name
            );
        }
    }
}
