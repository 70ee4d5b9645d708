//! `--maxmemory` (issue 18) on a real 3-node cluster, beside a real
//! redis-server with a maxmemory of its own:
//! - writes of 64 KiB values through one node are accepted until the
//!   leader's allocated bytes pass the limit, then refused with Redis's
//!   exact `-OOM` text (compared with redis-server's);
//! - every node then refuses a write that may add data alike (a follower
//!   forwards it, the leader decides), with the same text, and still
//!   serves reads and DEL; INFO memory shows used_memory over maxmemory;
//! - once DELs free the memory, every node accepts writes again.
//!
//! Every process is killed by PID when its test ends, pass or fail, and
//! every wait is bounded.

#[path = "cluster/harness.rs"]
mod harness;

use cashe::protocol::Reply;
use harness::{bulk_text, eventually, field, redis_server, Client, Cluster};

const VALUE_BYTES: usize = 64 << 10;
/// Far more writes than the limit holds: the loop that fills it is bounded.
const WRITES_MAX: usize = 4_000;
const LIMIT: &str = "48mb";

/// Whether a reply leaves a write to retry: its outcome unknown, or no
/// leader for now (a leader change under the load of a loaded machine).
fn retry(reply: &Reply) -> bool {
    matches!(reply, Reply::Error(e) if ["TIMEOUT", "CLUSTERDOWN", "TRYAGAIN"].iter().any(|p| e.starts_with(p)))
}

/// Writes 64 KiB values through `client` until one is refused; the number
/// accepted and the refusal.
fn fill(client: &mut Client) -> (usize, Reply) {
    let value = "x".repeat(VALUE_BYTES);
    let mut retries = 0;
    let mut k = 0;
    while k < WRITES_MAX {
        let reply = client.call(&["SET", &format!("big:{k}"), &value]).expect("SET");
        if retry(&reply) && retries < WRITES_MAX {
            // The same SET again: applied twice or once, the same state.
            retries += 1;
            continue;
        }
        if reply != Reply::ok() {
            return (k, reply);
        }
        k += 1;
    }
    panic!("{WRITES_MAX} writes of {VALUE_BYTES} bytes were all accepted under a limit of {LIMIT}");
}

fn memory_field(client: &mut Client, name: &str) -> u64 {
    let info = bulk_text(&client.call(&["INFO", "memory"]).expect("INFO")).expect("INFO text");
    field(&info, name).and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("no {name} in {info}"))
}

#[test]
fn maxmemory_refuses_writes_alike_on_every_node_until_dels_free_memory() {
    // Redis's own refusal, to compare with.
    let (_redis, redis_port) = redis_server(&["--maxmemory".as_ref(), "4mb".as_ref()]);
    let mut redis = Client::connect(redis_port).expect("connect to redis-server");
    let (_, redis_refusal) = fill(&mut redis);

    let flags = [&format!("--maxmemory={LIMIT}")[..], "--snapshot-entries=256"];
    let cluster = Cluster::start_with("maxmemory", 3, &flags);
    let leader = cluster.leader();
    let follower = cluster.followers()[0];
    let mut client = cluster.servers[follower].client().expect("connect");
    let (accepted, refusal) = fill(&mut client);
    assert!(accepted > 0, "the first write was refused: {refusal:?}");
    assert_eq!(refusal, redis_refusal, "cashe's refusal against redis-server's");
    assert!(matches!(&refusal, Reply::Error(e) if e.starts_with("OOM ")), "{refusal:?}");

    let mut at_leader = cluster.servers[leader].client().expect("connect");
    let limit = memory_field(&mut at_leader, "maxmemory");
    assert_eq!(limit, 48 << 20);
    let used = memory_field(&mut at_leader, "used_memory");
    assert!(used > limit, "refused at used_memory {used}, maxmemory {limit}");

    for (k, server) in cluster.servers.iter().enumerate() {
        let mut client = server.client().expect("connect");
        for write in [&["SET", "small", "1"][..], &["INCR", "counter"], &["RPUSH", "list", "a"]] {
            let reply = client.call(write).expect("a write");
            assert_eq!(reply, redis_refusal, "{write:?} through raft{k}");
        }
        let value = client.call(&["GET", "big:0"]).expect("GET");
        assert!(matches!(&value, Reply::Bulk(Some(v)) if v.len() == VALUE_BYTES), "GET through raft{k}");
    }

    // DEL runs while over the limit and frees the memory (the log's
    // copies of the values go with its compaction).
    for k in 0..accepted {
        let reply = client.call(&["DEL", &format!("big:{k}")]).expect("DEL");
        assert_eq!(reply, Reply::Integer(1), "DEL big:{k}");
    }
    for (k, server) in cluster.servers.iter().enumerate() {
        eventually(&format!("a write through raft{k} after the DELs"), || {
            (server.call(&["SET", "small", &k.to_string()]) == Reply::ok()).then_some(())
        });
    }
    let used = memory_field(&mut at_leader, "used_memory");
    assert!(used < limit, "used_memory {used} after the DELs, maxmemory {limit}");
}
