//! The key space in several Raft groups (`--shards`), as real processes: a
//! 3-node cluster of 16 shards whose `CLUSTER SLOTS` covers every slot with
//! each group's leader, leaders spread over the nodes, redis-py's
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
    let mut cluster = Cluster::start_with("shards", 3, &["--shards", &SHARDS.to_string()]);
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
    }
    // Each node counts the shards it leads, as a Redis Cluster master its
    // slots; together, every key once.
    let count = |cluster: &Cluster| -> i64 {
        let counts = cluster.servers.iter().map(|s| s.call(&["DBSIZE"]));
        counts.map(|c| if let Reply::Integer(n) = c { n } else { panic!("DBSIZE: {c:?}") }).sum()
    };
    eventually("DBSIZE over the nodes counts every key once", || {
        (count(&cluster) == 3 * 8 + 2).then_some(())
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
    eventually("every key counted once after the restart", || (count(&cluster) == 3 * 8 + 2).then_some(()));
}
