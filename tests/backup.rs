//! `cashe backup` and `cashe restore` (issue 18) on real clusters, through
//! the binary as an operator runs them:
//! - a 100,000-key data set (strings, hashes, lists, sets, sorted sets,
//!   TTLs) backed up through a follower restores to a new one-node cluster
//!   whose `CASHE.DIGEST` (read with redis-cli and with redis-py) is the
//!   source's, and which a new node joins;
//! - a backup taken while one connection writes `w:0`, `w:1`, ... one
//!   after the other is a consistent prefix: the restore holds exactly
//!   `w:0` to `w:m-1`, with m at least the writes acknowledged before the
//!   backup started and at most those sent before it ended;
//! - a cluster of 4 shards is backed up group by group (4 parts) and
//!   restores to the union: the XOR of its groups' digests;
//! - a damaged backup file is refused, and leaves no data directory.
//!
//! Every process is killed by PID when its test ends, pass or fail, and
//! every wait is bounded.

#[path = "cluster/harness.rs"]
mod harness;

use cashe::protocol::Reply;
use harness::{
    bulk_text, eventually, field, redis_cli, run_bounded, Client, Cluster, Finished, Server, TempDir,
};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

const KEYS: usize = 100_000;
const BATCH: usize = 500;

fn cashe(args: &[&str]) -> Finished {
    let mut command = Command::new(env!("CARGO_BIN_EXE_cashe"));
    command.args(args);
    run_bounded(&mut command, Duration::from_secs(300))
}

fn succeeded(finished: &Finished, what: &str) {
    assert!(
        finished.status.is_some_and(|s| s.success()),
        "{what}: {:?}\nstdout: {}\nstderr: {}",
        finished.status,
        finished.stdout,
        finished.stderr
    );
}

/// Sends `commands` pipelined until each is answered without an error,
/// sending again those refused for now (a new cluster of several shards
/// moves leaders at first: `-TRYAGAIN`); any other error fails the test.
/// The checks compare digests and key counts, so a command of unknown
/// outcome (`-TIMEOUT`) may take effect twice.
fn pipeline(client: &mut Client, mut commands: Vec<Vec<String>>) {
    for _ in 0..200 {
        client.send_all(&commands).expect("send");
        let mut again = Vec::new();
        for command in commands {
            match client.read_reply().expect("reply") {
                Reply::Error(e)
                    if ["TRYAGAIN", "TIMEOUT", "CLUSTERDOWN"].iter().any(|p| e.starts_with(p)) =>
                {
                    again.push(command)
                }
                Reply::Error(e) => panic!("{command:?} -> {e}"),
                _ => {}
            }
        }
        if again.is_empty() {
            return;
        }
        commands = again;
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{} commands still refused after 200 rounds", commands.len());
}

/// `count` string keys `k:<i>` (SETs pipelined, so that the keys may be
/// in any group), and a thousand keys of the other types, some with a TTL.
fn load(client: &mut Client, count: usize) {
    let words = |text: String| text.split(' ').map(str::to_string).collect::<Vec<_>>();
    for start in (0..count).step_by(BATCH) {
        let commands = (start..(start + BATCH).min(count))
            .map(|i| words(format!("SET k:{i} value-{i}-{}", "x".repeat(i % 40))))
            .collect();
        pipeline(client, commands);
    }
    let mut commands = Vec::new();
    for i in 0..200 {
        commands.push(words(format!("HSET h:{i} f1 {i} f2 two")));
        commands.push(words(format!("RPUSH l:{i} a b {i}")));
        commands.push(words(format!("SADD s:{i} m1 m2 {i}")));
        commands.push(words(format!("ZADD z:{i} 1 one {i} two")));
        commands.push(words(format!("SET t:{i} {i} EX 100000")));
    }
    pipeline(client, commands);
}

fn digest_via_cli(port: u16, args: &[&str]) -> String {
    let mut all = vec!["CASHE.DIGEST"];
    all.extend_from_slice(args);
    let digest = redis_cli(port, &all);
    assert_eq!(digest.len(), 64, "CASHE.DIGEST {args:?}: {digest}");
    digest
}

fn dbsize(server: &Server) -> i64 {
    match server.call(&["DBSIZE"]) {
        Reply::Integer(n) => n,
        other => panic!("DBSIZE: {other:?}"),
    }
}

/// Restores `backup` into a new directory of `root` and starts a node on
/// it; waits until it leads.
fn restore_and_start(root: &TempDir, backup: &Path, name: &str) -> Server {
    let mut server = Server::new(root, name);
    let restored = cashe(&[
        "restore",
        "--in",
        &backup.display().to_string(),
        "--datadir",
        &server.datadir.display().to_string(),
        "--id",
        name,
    ]);
    succeeded(&restored, "cashe restore");
    assert!(restored.stdout.contains("holds a one-node cluster"), "{}", restored.stdout);
    server.start(None);
    eventually(&format!("{name} leads"), || {
        let info = bulk_text(&server.call(&["CLUSTER", "INFO"]))?;
        (field(&info, "cluster_leader")? == name).then_some(())
    });
    server
}

fn backup(port: u16, out: &Path) -> Finished {
    let finished =
        cashe(&["backup", "--from", &format!("127.0.0.1:{port}"), "--out", &out.display().to_string()]);
    succeeded(&finished, "cashe backup");
    assert!(finished.stderr.contains("(100%)"), "no progress shown: {}", finished.stderr);
    finished
}

#[test]
fn a_backup_restores_to_the_same_digest_and_is_a_consistent_prefix_under_writes() {
    let cluster = Cluster::start("backup", 3);
    let leader = cluster.leader();
    let follower = cluster.followers()[0];
    let mut client = cluster.servers[leader].client().expect("connect");
    load(&mut client, KEYS);
    let loaded = dbsize(&cluster.servers[leader]);
    assert_eq!(loaded, (KEYS + 1000) as i64);
    // Every node agrees (reads are linearizable through any of them).
    let source = digest_via_cli(cluster.servers[leader].client_port, &[]);
    for server in &cluster.servers {
        assert_eq!(digest_via_cli(server.client_port, &[]), source, "{}'s digest", server.name);
    }

    let file = cluster.root.0.join("full.bak");
    let done = backup(cluster.servers[follower].client_port, &file);
    assert!(done.stdout.contains(&format!("1 part(s), {loaded} keys")), "{}", done.stdout);
    let mut restored = restore_and_start(&cluster.root, &file, "restored");
    assert_eq!(dbsize(&restored), loaded);
    assert_eq!(
        digest_via_cli(restored.client_port, &[]),
        source,
        "the restore's digest against the source's"
    );
    let args = [restored.client_port.to_string()];
    let seen = harness::run_python("redis_py_digest.py", &args, Duration::from_secs(60), "the restore");
    assert_eq!(seen.trim(), format!("digest {source} keys {loaded}"), "through redis-py");
    // The restored cluster takes writes, and a new node joins it.
    assert_eq!(restored.call(&["SET", "after", "restore"]), Reply::ok());
    let mut joiner = Server::new(&cluster.root, "joiner");
    joiner.start(Some(restored.client_port));
    let expected = digest_via_cli(restored.client_port, &[]);
    eventually("the joiner holds the restored data", || {
        let digest = bulk_text(&joiner.call(&["CASHE.DIGEST"]))?;
        (digest == expected).then_some(())
    });
    joiner.kill9();
    restored.kill9();

    // Under a write load: one connection writes w:0, w:1, ... in order.
    let stop = Arc::new(AtomicBool::new(false));
    let acknowledged = Arc::new(AtomicUsize::new(0));
    let writer = {
        let (stop, acknowledged) = (stop.clone(), acknowledged.clone());
        let port = cluster.servers[leader].client_port;
        std::thread::spawn(move || {
            let mut client = Client::connect(port).expect("connect");
            let mut i = 0;
            let mut attempts = 0;
            while !stop.load(Ordering::SeqCst) && attempts < 1_000_000 {
                attempts += 1;
                let reply = client.call(&["SET", &format!("w:{i}"), &i.to_string()]).expect("SET");
                // A refused or timed-out SET is sent again: the same value.
                if reply == Reply::ok() {
                    i += 1;
                    acknowledged.store(i, Ordering::SeqCst);
                }
            }
            i
        })
    };
    eventually("500 writes acknowledged", || (acknowledged.load(Ordering::SeqCst) >= 500).then_some(()));
    let before = acknowledged.load(Ordering::SeqCst);
    let file = cluster.root.0.join("under-load.bak");
    backup(cluster.servers[follower].client_port, &file);
    // Sent before the backup ended: at most the acknowledged ones and the
    // one in flight.
    let sent_by_end = acknowledged.load(Ordering::SeqCst) + 1;
    eventually("more writes after the backup", || {
        (acknowledged.load(Ordering::SeqCst) >= sent_by_end + 200).then_some(())
    });
    stop.store(true, Ordering::SeqCst);
    let written = writer.join().expect("writer");
    let restored = restore_and_start(&cluster.root, &file, "prefix");
    let m = (dbsize(&restored) - loaded) as usize;
    assert!(
        m >= before && m <= sent_by_end,
        "{m} writes in the backup: not within [{before}, {sent_by_end}]"
    );
    assert!(m < written, "the backup holds every write of the load ({m} of {written})");
    let mut client = restored.client().expect("connect");
    for start in (0..=m).step_by(BATCH) {
        let keys: Vec<String> = (start..(start + BATCH).min(m + 1)).map(|i| format!("w:{i}")).collect();
        let mut args = vec!["MGET"];
        args.extend(keys.iter().map(String::as_str));
        let Reply::Array(Some(values)) = client.call(&args).expect("MGET") else { panic!("MGET") };
        for (i, value) in (start..).zip(values) {
            let expected = if i < m { Reply::bulk(i.to_string()) } else { Reply::Bulk(None) };
            assert_eq!(value, expected, "w:{i} in a backup of the first {m} writes");
        }
    }
}

#[test]
fn a_sharded_cluster_is_backed_up_group_by_group_and_restores_to_their_union() {
    let cluster = Cluster::start_with("backup-shards", 3, &["--shards=4"]);
    let leader = cluster.leader();
    let port = cluster.servers[leader].client_port;
    // Keys are written through whichever node; plain clients are forwarded.
    let mut client = cluster.servers[leader].client().expect("connect");
    load(&mut client, 20_000);
    // A digest without a slot names no group.
    let refused = cluster.servers[leader].call(&["CASHE.DIGEST"]);
    assert!(matches!(&refused, Reply::Error(e) if e.contains("4 groups")), "{refused:?}");
    // The cluster's digest: the XOR of its groups'.
    let Reply::Array(Some(ranges)) = cluster.servers[leader].call(&["CLUSTER", "SLOTS"]) else {
        panic!("CLUSTER SLOTS")
    };
    assert_eq!(ranges.len(), 4, "{ranges:?}");
    let mut union = [0u8; 32];
    for range in &ranges {
        let Reply::Array(Some(items)) = range else { panic!("{range:?}") };
        let Reply::Integer(first) = items[0] else { panic!("{range:?}") };
        let digest = digest_via_cli(port, &["SLOT", &first.to_string()]);
        for (u, byte) in union.iter_mut().zip((0..64).step_by(2).map(|i| &digest[i..i + 2])) {
            *u ^= u8::from_str_radix(byte, 16).expect("hex");
        }
    }
    let union: String = union.iter().map(|b| format!("{b:02x}")).collect();

    let file = cluster.root.0.join("shards.bak");
    let done = backup(port, &file);
    assert!(done.stdout.contains("4 part(s), 21000 keys"), "{}", done.stdout);
    let restored = restore_and_start(&cluster.root, &file, "restored");
    assert_eq!(dbsize(&restored), 21_000);
    assert_eq!(digest_via_cli(restored.client_port, &[]), union);

    // A damaged file is refused and leaves nothing behind.
    let mut bytes = std::fs::read(&file).expect("read");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 1;
    let damaged = cluster.root.0.join("damaged.bak");
    std::fs::write(&damaged, bytes).expect("write");
    let target = cluster.root.0.join("from-damaged");
    let refused = cashe(&[
        "restore",
        "--in",
        &damaged.display().to_string(),
        "--datadir",
        &target.display().to_string(),
        "--id",
        "x",
    ]);
    assert_eq!(refused.status.and_then(|s| s.code()), Some(2), "{}", refused.stderr);
    assert!(refused.stderr.contains("does not match its CRC"), "{}", refused.stderr);
    assert!(!target.exists(), "a refused restore left {}", target.display());
}
