//! Integration tests on real `cashe` processes over 127.0.0.1: the README's
//! flags, writes through followers, leader failure and restart, joins and
//! removals, graceful stop, a full restart, hostile clients, and the Redis
//! tools. Ports are free ones picked per test; every process is killed by
//! PID when the test ends, pass or fail.

#[path = "cluster/harness.rs"]
mod harness;

use cashe::protocol::Reply;
use harness::{bulk_text, eventually, field, Client, Cluster, PATIENCE};
use std::io::{Read, Write};
use std::process::Command;
use std::time::{Duration, Instant};

fn followers(cluster: &Cluster) -> Vec<usize> {
    let leader = cluster.leader();
    (0..cluster.servers.len()).filter(|i| *i != leader).collect()
}

/// Every acknowledged key reads back with its value through every listed node.
fn assert_all_present(cluster: &Cluster, nodes: &[usize], acknowledged: &[(String, String)]) {
    for &node in nodes {
        let server = &cluster.servers[node];
        let mut client = eventually(&format!("a connection to {}", server.name), || server.client().ok());
        for (key, value) in acknowledged {
            let reply =
                eventually(&format!("GET {key} at {}", server.name), || match client.call(&["GET", key]) {
                    Ok(Reply::Error(e))
                        if e.starts_with("CLUSTERDOWN")
                            || e.starts_with("TIMEOUT")
                            || e.starts_with("TRYAGAIN") =>
                    {
                        None
                    }
                    Ok(reply) => Some(reply),
                    Err(_) => {
                        client = server.client().ok()?;
                        None
                    }
                });
            assert_eq!(
                reply,
                Reply::bulk(value.as_str()),
                "{key} at {}\n{}",
                server.name,
                cluster.dump_logs()
            );
        }
    }
}

/// Writes `count` keys through the given nodes in turn; returns those acknowledged.
fn write_keys(cluster: &Cluster, through: &[usize], prefix: &str, count: usize) -> Vec<(String, String)> {
    let mut acknowledged = Vec::new();
    for i in 0..count {
        let (key, value) = (format!("{prefix}{i}"), format!("value-{prefix}-{i}"));
        cluster.set_acknowledged(through[i % through.len()], &key, &value);
        acknowledged.push((key, value));
    }
    acknowledged
}

#[test]
fn a_write_through_a_follower_is_read_through_the_other_follower_and_redis_tools_work() {
    let cluster = Cluster::start("followers", 3);
    let followers = followers(&cluster);
    let (a, b) = (&cluster.servers[followers[0]], &cluster.servers[followers[1]]);
    assert_eq!(a.call(&["SET", "k", "v"]), Reply::ok());
    assert_eq!(b.call(&["GET", "k"]), Reply::bulk("v"), "a linearizable read on the other follower");

    // redis-cli: SET/GET/INCR/DEL, as a user would type them.
    let cli = |port: u16, words: &[&str]| {
        let output = Command::new("redis-cli")
            .arg("-p")
            .arg(port.to_string())
            .args(words)
            .output()
            .expect("redis-cli must be installed (.ci/run installs Debian's redis-tools)");
        assert!(output.status.success(), "redis-cli {words:?}: {output:?}");
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    };
    assert_eq!(cli(a.client_port, &["SET", "greeting", "hello world"]), "OK");
    assert_eq!(cli(b.client_port, &["GET", "greeting"]), "hello world");
    assert_eq!(cli(b.client_port, &["INCR", "counter"]), "1");
    assert_eq!(cli(a.client_port, &["INCR", "counter"]), "2");
    assert_eq!(cli(a.client_port, &["DEL", "greeting", "counter"]), "2");
    assert_eq!(cli(b.client_port, &["EXISTS", "greeting"]), "0");

    // redis-benchmark against a follower: every request answered without error.
    let output = Command::new("redis-benchmark")
        .args(["-p", &a.client_port.to_string(), "-t", "set,get", "-n", "10000", "-q"])
        .output()
        .expect("redis-benchmark must be installed (.ci/run installs Debian's redis-tools)");
    let text = String::from_utf8_lossy(&output.stdout).to_string() + &String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "redis-benchmark failed: {text}");
    let summary: Vec<&str> = text.split(['\r', '\n']).filter(|l| l.contains("requests per second")).collect();
    assert_eq!(summary.len(), 2, "one summary line each for SET and GET: {text}");
    assert!(!text.to_lowercase().contains("error"), "{text}");
    println!("redis-benchmark against {}: {}", a.name, summary.join(" | "));
}

#[test]
fn killing_the_leader_loses_no_acknowledged_write_and_the_node_catches_up_after_restart() {
    let mut cluster = Cluster::start("kill", 3);
    let everyone = [0, 1, 2];
    let mut acknowledged = write_keys(&cluster, &everyone, "before", 30);
    let old = cluster.leader();
    cluster.servers[old].kill9();
    let killed_at = Instant::now();
    let survivors: Vec<usize> = everyone.iter().copied().filter(|i| *i != old).collect();
    acknowledged.extend(write_keys(&cluster, &survivors, "during", 30));
    println!("first 30 writes after kill -9 of the leader took {:?}", killed_at.elapsed());
    let new = cluster.leader();
    assert_ne!(new, old, "a new leader was elected");

    cluster.servers[old].start(None);
    acknowledged.extend(write_keys(&cluster, &everyone, "after", 30));
    // The restarted node serves the same data (linearizable reads through it).
    assert_all_present(&cluster, &everyone, &acknowledged);
    let leader_commit =
        field(&bulk_text(&cluster.servers[new].call(&["CLUSTER", "INFO"])).unwrap(), "cluster_commit_index")
            .unwrap()
            .parse::<u64>()
            .unwrap();
    eventually("the restarted node applies the leader's log", || {
        let info = bulk_text(&cluster.servers[old].call(&["INFO", "replication"]))?;
        let applied: u64 = field(&info, "raft_applied_index")?.parse().ok()?;
        (applied >= leader_commit).then_some(())
    });
}

#[test]
fn a_fourth_node_joins_with_all_data_and_a_removed_node_leaves_a_working_cluster() {
    let mut cluster = Cluster::start("membership", 3);
    let acknowledged = write_keys(&cluster, &[0, 1, 2], "k", 40);
    let fourth = cluster.add();
    cluster.wait_for_voters(4);
    assert_all_present(&cluster, &[fourth], &acknowledged);
    let nodes = bulk_text(&cluster.servers[fourth].call(&["CLUSTER", "NODES"])).unwrap();
    assert_eq!(nodes.lines().count(), 4, "{nodes}");

    // Remove a follower that is not the new node; it stops by itself.
    let leader = cluster.leader();
    let gone = (0..3).find(|i| *i != leader).unwrap();
    let name = cluster.servers[gone].name.clone();
    assert_eq!(cluster.servers[fourth].call(&["CLUSTER", "REMOVE", &name]), Reply::ok());
    let server = &mut cluster.servers[gone];
    eventually(&format!("{name} exits after its removal"), || (!server.is_running()).then_some(()));
    server.kill9(); // reaps it
    cluster.wait_for_voters(3);
    let rest: Vec<usize> = (0..4).filter(|i| *i != gone).collect();
    let more = write_keys(&cluster, &rest, "later", 20);
    assert_all_present(&cluster, &rest, &more);

    // A node can also leave by itself.
    let leaver = *rest.iter().find(|i| **i != cluster.leader()).unwrap();
    assert_eq!(cluster.servers[leaver].call(&["CLUSTER", "LEAVE"]), Reply::ok());
    let server = &mut cluster.servers[leaver];
    eventually("the leaving node exits", || (!server.is_running()).then_some(()));
    server.kill9();
    cluster.wait_for_voters(2);
    let last: Vec<usize> = rest.iter().copied().filter(|i| *i != leaver).collect();
    assert_all_present(&cluster, &last, &more);
}

#[test]
fn sigterm_on_the_leader_hands_over_leadership_and_a_full_restart_keeps_every_write() {
    let mut cluster = Cluster::start("restart", 3);
    let mut acknowledged = write_keys(&cluster, &[0, 1, 2], "x", 30);
    let old = cluster.leader();
    let status = cluster.servers[old].signal("TERM");
    assert!(status.success(), "graceful exit: {status:?}");
    let log = cluster.servers[old].log_text();
    assert!(log.contains("handing over leadership"), "{log}");
    let transferred = log.lines().find(|l| l.contains("handing over leadership")).unwrap().to_string();
    let new = cluster.leader();
    assert!(transferred.contains(&format!("to={}", cluster.servers[new].name)), "{transferred}");
    cluster.servers[old].start(None);
    acknowledged.extend(write_keys(&cluster, &[0, 1, 2], "y", 30));

    // Every node down hard at once, then all back: nothing acknowledged is lost.
    for server in cluster.servers.iter_mut() {
        server.kill9();
    }
    for server in cluster.servers.iter_mut() {
        server.start(Some(1)); // a repeated --leaderaddr is harmless on restart
    }
    assert_all_present(&cluster, &[0, 1, 2], &acknowledged);
    let log = cluster.servers[0].log_text();
    assert!(log.contains("--leaderaddr is ignored"), "{log}");
}

#[test]
fn hostile_clients_get_errors_or_are_closed_while_others_are_served() {
    let cluster = Cluster::start("hostile", 1);
    let server = &cluster.servers[0];
    let mut good = server.client().unwrap();
    assert_eq!(good.call(&["SET", "k", "v"]).unwrap(), Reply::ok());

    // A bulk length of 2^40: refused without allocating it, then closed.
    let mut huge = server.client().unwrap();
    huge.stream.write_all(b"*2\r\n$3\r\nGET\r\n$1099511627776\r\n").unwrap();
    assert_eq!(huge.read_reply().unwrap(), Reply::error("ERR Protocol error: invalid bulk length"));
    assert!(huge.read_reply().is_err(), "closed after a protocol error");

    // Random bytes: an error reply and/or a closed connection, never a hang.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    for round in 0..20 {
        let mut noise = server.client().unwrap();
        noise.stream.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let bytes: Vec<u8> = (0..4096)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        let _ = noise.stream.write_all(&bytes);
        let _ = noise.stream.write_all(b"\r\n");
        let mut sink = Vec::new();
        let _ = noise.stream.read_to_end(&mut sink);
        assert_eq!(good.call(&["GET", "k"]).unwrap(), Reply::bulk("v"), "round {round}");
    }

    // Half a command, then gone.
    for _ in 0..20 {
        let mut half = server.client().unwrap();
        half.stream.write_all(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nva").unwrap();
    }
    // An inline line that never ends is cut off at the limit.
    let mut endless = server.client().unwrap();
    let _ = endless.stream.write_all(&vec![b'a'; 200 * 1024]);
    assert_eq!(endless.read_reply().unwrap(), Reply::error("ERR Protocol error: too big inline request"));

    // A thousand idle connections do not stop anyone.
    let idle: Vec<Client> = (0..1000).map(|_| server.client().unwrap()).collect();
    assert_eq!(good.call(&["SET", "k", "w"]).unwrap(), Reply::ok());
    let mut fresh = server.client().unwrap();
    assert_eq!(fresh.call(&["GET", "k"]).unwrap(), Reply::bulk("w"));
    let info = bulk_text(&fresh.call(&["INFO", "clients"]).unwrap()).unwrap();
    let connected: usize = field(&info, "connected_clients").unwrap().parse().unwrap();
    assert!(connected >= 1000, "{info}");
    drop(idle);
    assert!(PATIENCE > Duration::ZERO);
}
