//! INFO on a real `cashe` node, compared with a real redis-server 7.0: for
//! the same arguments, the same section titles in the same order (Redis
//! 7.0's `genRedisInfoString`, as its tests/unit/info-command.tcl checks
//! it), and the fields those tests look for. The in-memory node's INFO
//! texts are checked in detail in tests/server.rs.

#[path = "cluster/harness.rs"]
mod harness;
#[path = "common/redis.rs"]
mod redis;

use cashe::protocol::Reply;
use harness::{bulk_text, eventually, Client, Cluster};
use redis::{RedisClient, RedisServer};

/// The `# Title` lines of an INFO text, in order.
fn titles(info: &str) -> Vec<String> {
    info.lines().filter_map(|line| line.strip_prefix("# ")).map(|t| t.trim_end().to_string()).collect()
}

fn cashe_info(client: &mut Client, args: &[&str]) -> String {
    let command: Vec<&str> = std::iter::once("INFO").chain(args.iter().copied()).collect();
    let reply = client.call(&command).expect("INFO on cashe");
    bulk_text(&reply).unwrap_or_else(|| panic!("INFO {args:?} on cashe: {reply:?}"))
}

fn redis_info(client: &mut RedisClient, args: &[&str]) -> String {
    let command: Vec<Vec<u8>> = std::iter::once("INFO").chain(args.iter().copied()).map(Into::into).collect();
    match redis::parse(&client.call(&command)) {
        Reply::Bulk(Some(bytes)) => String::from_utf8(bytes).expect("UTF-8"),
        other => panic!("INFO {args:?} on redis-server: {other:?}"),
    }
}

/// Argument lists of INFO: none, the special words, several names, names in
/// any case and order, repeated, unknown, and mixed with special words.
const ARGUMENTS: &[&[&str]] = &[
    &[],
    &["default"],
    &["all"],
    &["everything"],
    &["server", "clients"],
    &["garbage"],
    &["sentinel"],
    &["cpu", "all"],
    &["cpu", "default"],
    &["cpu", "sentinel"],
    &["SERVER"],
    &["Clients", "server", "CLIENTS"],
    &["keyspace", "cpu"],
    &["memory"],
    &["persistence", "stats", "replication"],
    &["commandstats"],
    &["errorstats"],
    &["latencystats"],
    &["modules"],
    &["module_list"],
    &["cluster"],
    &["default", "commandstats"],
    &["everything", "garbage"],
    &["keyspace", "garbage"],
];

#[test]
fn info_gives_the_sections_redis_7_gives_for_the_same_arguments() {
    let cluster = Cluster::start("info-sections", 1);
    let mut ours = cluster.servers[0].client().expect("connect to cashe");
    let server = RedisServer::start();
    let mut theirs = server.connect();
    for args in ARGUMENTS {
        let (cashe, redis) = (cashe_info(&mut ours, args), redis_info(&mut theirs, args));
        assert_eq!(titles(&cashe), titles(&redis), "INFO {args:?}\ncashe:\n{cashe}\nredis:\n{redis}");
        if titles(&redis).is_empty() {
            assert_eq!(cashe, "", "INFO {args:?}: an empty reply, as Redis");
        }
    }
}

/// tests/unit/info-command.tcl (7.0), on a running node: `used_cpu_user`
/// and `used_memory` (the allocator's count of allocated bytes) in the default
/// sections, `rejected_calls` (commandstats) only in `all`, `everything`
/// or by name, and nothing of Sentinel.
#[test]
fn info_has_the_fields_redis_7_tests_look_for() {
    let cluster = Cluster::start("info-fields", 1);
    let mut client = cluster.servers[0].client().expect("connect to cashe");
    // The shell reads the process's memory and CPU time every half second.
    eventually("the shell's first readings", || {
        cashe_info(&mut client, &["cpu"]).contains("used_cpu_user:").then_some(())
    });
    for args in [&[][..], &["all"], &["default"], &["everything"]] {
        let info = cashe_info(&mut client, args);
        assert!(info.contains("redis_version:"), "INFO {args:?}: {info}");
        assert!(info.contains("used_cpu_user:"), "INFO {args:?}: {info}");
        assert!(info.contains("used_memory:"), "INFO {args:?}: {info}");
        assert!(info.contains("used_memory_rss:"), "INFO {args:?}: {info}");
        assert!(info.contains("maxmemory_policy:noeviction"), "INFO {args:?}: {info}");
        assert!(info.contains("cluster_enabled:1"), "INFO {args:?}: {info}");
        assert!(!info.contains("sentinel_tilt"), "INFO {args:?}: {info}");
        let detailed = args == ["all"] || args == ["everything"];
        assert_eq!(info.contains("rejected_calls="), detailed, "INFO {args:?}: {info}");
    }
    let cpu = cashe_info(&mut client, &["cpu"]);
    assert!(!cpu.contains("master_repl_offset") && !cpu.contains("cluster_enabled"), "{cpu}");
    let commandstats = cashe_info(&mut client, &["commandstats"]);
    assert!(commandstats.contains("cmdstat_info:calls="), "{commandstats}");
    assert!(
        !commandstats.contains("used_cpu_user") && !commandstats.contains("used_memory"),
        "{commandstats}"
    );
    let several = cashe_info(&mut client, &["cpu", "all"]);
    assert!(several.contains("used_cpu_user:") && several.contains("master_repl_offset:"), "{several}");
    assert_eq!(several.matches("used_cpu_user:").count(), 1, "{several}");
    let rss: u64 = harness::field(&cashe_info(&mut client, &["memory"]), "used_memory_rss")
        .and_then(|v| v.parse().ok())
        .expect("used_memory_rss is a number");
    assert!(rss > 1 << 20, "a running node holds more than 1 MiB: {rss}");
    let used: u64 = harness::field(&cashe_info(&mut client, &["memory"]), "used_memory")
        .and_then(|v| v.parse().ok())
        .expect("used_memory is a number");
    assert!(used > 1 << 20 && used < rss * 4, "used_memory {used}, used_memory_rss {rss}");
}
