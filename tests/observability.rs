//! What an operator watches (issue 18), on real nodes: the HTTP port
//! (`--metrics-addr`) and the logs (`--log-format json`).
//! - `/metrics` parses with the Prometheus project's own text-format
//!   parser (prometheus_client, `tests/py/prometheus_parse.py`), has a
//!   sample per group for the Raft families (one node of 4 shards on 2
//!   cores, so groups of both cores), and its counters move with a load
//!   by exactly what the load did;
//! - `/health` is 200, an unknown path 404, a POST 405;
//! - `/ready` is 200 on every node of a healthy 3-node cluster; 503 on a
//!   node cut off from the leader (it was down while the others took
//!   writes, and restarts while they are paused: it knows no leader and
//!   has not applied the cluster's commit index); 200 again once the
//!   others resume and it has caught up;
//! - `--log-format json`: every line a node logs is a JSON object (parsed
//!   by Python's json module) with a timestamp, level, target and fields.
//!
//! Every process is killed by PID when its test ends (a paused one too:
//! SIGKILL ends a stopped process), and every wait is bounded.

#[path = "cluster/harness.rs"]
mod harness;

use harness::{
    bulk_text, eventually, field, free_port, run_bounded, venv_python, Client, Cluster, Server, TempDir,
    PATIENCE,
};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

const WRITES: usize = 200;
const READS: usize = 50;

/// One HTTP request to `127.0.0.1:port`: the status code and the body.
fn http(port: u16, method: &str, path: &str) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(stream, "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response.split(' ').nth(1).and_then(|code| code.parse().ok()).unwrap_or(0);
    let body = response.split_once("\r\n\r\n").map(|(_, body)| body.to_string()).unwrap_or_default();
    Ok((status, body))
}

/// What the parser made of a scrape: family types, and sample values by
/// `name{labels}` (labels as the parser's sorted JSON).
struct Scrape {
    families: BTreeMap<String, String>,
    samples: BTreeMap<String, f64>,
}

impl Scrape {
    fn value(&self, name: &str, labels: &str) -> f64 {
        let key = format!("{name} {labels}");
        *self.samples.get(&key).unwrap_or_else(|| panic!("no sample {key} in {:?}", self.samples.keys()))
    }
}

/// Scrapes `/metrics` and parses it with prometheus_client's parser.
fn scrape(port: u16) -> Scrape {
    let (status, text) = http(port, "GET", "/metrics").expect("GET /metrics");
    assert_eq!(status, 200, "GET /metrics: {text}");
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/py/prometheus_parse.py");
    let input = std::env::temp_dir().join(format!("cashe-scrape-{}-{port}.txt", std::process::id()));
    std::fs::write(&input, &text).expect("write the scrape");
    let mut command = Command::new(venv_python());
    command.arg(&script).arg(&input);
    let finished = run_bounded(&mut command, PATIENCE);
    let _ = std::fs::remove_file(&input);
    assert!(
        finished.status.is_some_and(|s| s.success()),
        "the Prometheus parser refused /metrics: {}\n--- the text\n{text}",
        finished.stderr
    );
    let (mut families, mut samples) = (BTreeMap::new(), BTreeMap::new());
    for line in finished.stdout.lines() {
        if let Some(rest) = line.strip_prefix("family ") {
            let (name, kind) = rest.split_once(' ').expect("family NAME TYPE");
            families.insert(name.to_string(), kind.to_string());
        } else if let Some(rest) = line.strip_prefix("sample ") {
            let (key, value) = rest.rsplit_once(' ').expect("sample NAME LABELS VALUE");
            samples.insert(key.to_string(), value.parse().expect("a number"));
        }
    }
    Scrape { families, samples }
}

#[test]
fn metrics_parse_and_their_counters_follow_the_load() {
    let metrics_port = free_port();
    let flag = format!("--metrics-addr=127.0.0.1:{metrics_port}");
    let cluster = Cluster::start_with("metrics", 1, &["--shards=4", "--cores=2", &flag]);
    // Every group, of both cores (core 1's as its last report says), has
    // its Raft samples, and this member leads each.
    let leads_every_group = |scrape: &Scrape| {
        (0..=4).all(|group| {
            let labels = format!("{{\"group\": \"{group}\"}}");
            scrape.value("cashe_raft_is_leader", &labels) == 1.0
                && scrape.value("cashe_raft_term", &labels) >= 1.0
        })
    };
    let before = eventually("every group's leader in /metrics", || {
        let scrape = scrape(metrics_port);
        leads_every_group(&scrape).then_some(scrape)
    });
    // The parser names a counter's family without `_total`.
    let expected = [
        ("cashe_commands", "counter"),
        ("cashe_errors", "counter"),
        ("cashe_raft_term", "gauge"),
        ("cashe_raft_is_leader", "gauge"),
        ("cashe_raft_commit_index", "gauge"),
        ("cashe_raft_applied_index", "gauge"),
        ("cashe_raft_elections", "counter"),
        ("cashe_raft_leader_changes", "counter"),
        ("cashe_raft_snapshots_sent", "counter"),
        ("cashe_wal_fsyncs", "counter"),
        ("cashe_wal_bytes", "counter"),
        ("cashe_write_latency_seconds", "histogram"),
        ("cashe_wal_write_duration_seconds", "histogram"),
        ("cashe_connected_clients", "gauge"),
        ("cashe_resident_memory_bytes", "gauge"),
        ("cashe_cpu_seconds", "counter"),
    ];
    for (name, kind) in expected {
        // Families without samples yet (no error so far) are left out.
        if name == "cashe_errors" {
            continue;
        }
        assert_eq!(
            before.families.get(name).map(String::as_str),
            Some(kind),
            "{name} in {:?}",
            before.families
        );
    }

    let mut client = Client::connect(cluster.servers[0].client_port).expect("connect");
    for k in 0..WRITES {
        let reply = client.call(&["SET", &format!("key:{k}"), "v"]).expect("SET");
        assert_eq!(reply, cashe::protocol::Reply::ok());
    }
    for k in 0..READS {
        client.call(&["GET", &format!("key:{k}")]).expect("GET");
    }
    let error = client.call(&["GET"]).expect("GET without a key");
    assert!(matches!(error, cashe::protocol::Reply::Error(_)), "{error:?}");
    // Core 1's groups are as its last report says (twice a second), with
    // its disk's counters.
    let applied = |scrape: &Scrape| {
        (1..=4)
            .map(|g| scrape.value("cashe_raft_applied_index", &format!("{{\"group\": \"{g}\"}}")))
            .sum::<f64>()
    };
    let after = eventually("one entry per SET in the key groups", || {
        let after = scrape(metrics_port);
        (applied(&after) - applied(&before) == WRITES as f64).then_some(after)
    });

    let set = "{\"command\": \"set\"}";
    let get = "{\"command\": \"get\"}";
    let calls = |scrape: &Scrape, labels: &str| {
        scrape.samples.get(&format!("cashe_commands_total {labels}")).copied().unwrap_or(0.0)
    };
    assert_eq!(calls(&after, set) - calls(&before, set), WRITES as f64);
    assert_eq!(calls(&after, get) - calls(&before, get), READS as f64);
    assert_eq!(after.value("cashe_errors_total", "{\"code\": \"ERR\"}"), 1.0);
    assert_eq!(after.value("cashe_keys", "{}"), WRITES as f64);
    let count = "cashe_write_latency_seconds_count";
    assert_eq!(after.value(count, "{}") - before.value(count, "{}"), WRITES as f64);
    let inf = "{\"le\": \"+Inf\"}";
    assert_eq!(after.value("cashe_write_latency_seconds_bucket", inf), after.value(count, "{}"));
    // Each write is made durable before its reply: at least one fsync per
    // write here, one client writing one at a time.
    let fsyncs = after.value("cashe_wal_fsyncs_total", "{}") - before.value("cashe_wal_fsyncs_total", "{}");
    assert!(fsyncs >= WRITES as f64, "{fsyncs} fsyncs for {WRITES} writes");
    let bytes = after.value("cashe_wal_bytes_total", "{}") - before.value("cashe_wal_bytes_total", "{}");
    assert!(bytes >= (WRITES * "key:000".len()) as f64, "{bytes} bytes logged for {WRITES} writes");
    let wal_writes = after.value("cashe_wal_write_duration_seconds_count", "{}");
    assert!(wal_writes >= fsyncs, "{wal_writes} timed durable writes, {fsyncs} fsyncs");
    assert_eq!(after.value("cashe_connected_clients", "{}"), 1.0);

    assert_eq!(http(metrics_port, "GET", "/health").expect("GET /health"), (200, "ok\n".to_string()));
    assert_eq!(http(metrics_port, "GET", "/nothing").expect("GET /nothing").0, 404);
    assert_eq!(http(metrics_port, "POST", "/metrics").expect("POST /metrics").0, 405);
    assert_eq!(http(metrics_port, "HEAD", "/ready").expect("HEAD /ready"), (200, String::new()));
}

/// `kill -SIGNAL pid`.
fn signal(server: &Server, signal: &str) {
    let pid = server.pid().expect("running").to_string();
    let status = Command::new("kill").arg(format!("-{signal}")).arg(pid).status().expect("run kill");
    assert!(status.success(), "kill -{signal} {}", server.name);
}

/// `/ready`'s status code (0 when it does not answer).
fn ready(port: u16) -> u16 {
    http(port, "GET", "/ready").map(|(status, _)| status).unwrap_or(0)
}

/// A node's applied index of the home group, from its INFO.
fn applied_index(server: &Server) -> Option<u64> {
    let info = bulk_text(&server.call(&["INFO", "replication"]))?;
    field(&info, "raft_applied_index")?.parse().ok()
}

#[test]
fn ready_is_503_while_cut_off_from_the_leader_and_200_once_caught_up() {
    let root = TempDir::new("ready");
    let mut servers = Vec::new();
    let mut metrics_ports = Vec::new();
    for k in 0..3 {
        let mut server = Server::new(&root, &format!("raft{k}"));
        let port = free_port();
        server.flags = vec![format!("--metrics-addr=127.0.0.1:{port}")];
        let via = servers.first().map(|s: &Server| s.client_port);
        server.start(via);
        servers.push(server);
        metrics_ports.push(port);
    }
    let mut cluster = Cluster { servers, root, flags: Vec::new() };
    cluster.wait_for_voters(3);
    for (k, port) in metrics_ports.iter().enumerate() {
        eventually(&format!("raft{k} ready"), || (ready(*port) == 200).then_some(()));
    }

    // A follower misses writes while it is down (killed, so that nothing
    // for it waits in a socket buffer).
    let leader = cluster.leader();
    let cut = cluster.followers()[0];
    let others: Vec<usize> = (0..3).filter(|k| *k != cut).collect();
    cluster.servers[cut].kill9();
    for k in 0..100 {
        cluster.set_acknowledged(leader, &format!("key:{k}"), "v");
    }
    let committed = applied_index(&cluster.servers[leader]).expect("the leader's applied index");
    // It restarts while the others are paused: cut off from any leader, behind.
    for k in &others {
        signal(&cluster.servers[*k], "STOP");
    }
    cluster.servers[cut].start(None);
    let port = metrics_ports[cut];
    eventually("the cut-off node to say it is not ready", || (ready(port) == 503).then_some(()));
    let behind = applied_index(&cluster.servers[cut]).expect("INFO of the cut-off node");
    assert!(behind < committed, "the cut-off node applied {behind}, the cluster had committed {committed}");
    let (status, why) = http(port, "GET", "/ready").expect("GET /ready");
    assert_eq!(status, 503, "{why}");
    assert!(why.starts_with("not ready: "), "{why}");

    for k in &others {
        signal(&cluster.servers[*k], "CONT");
    }
    eventually("the node to be ready after catching up", || (ready(port) == 200).then_some(()));
    let caught_up = applied_index(&cluster.servers[cut]).expect("INFO of the caught-up node");
    assert!(caught_up >= committed, "ready at applied index {caught_up}, below the commit index {committed}");
    for port in &metrics_ports {
        assert_eq!(ready(*port), 200);
    }
}

#[test]
fn json_logs_are_one_object_per_line() {
    let mut cluster = Cluster::start_with("json-logs", 1, &["--log-format=json"]);
    cluster.set_acknowledged(0, "key", "value");
    let status = cluster.servers[0].signal("TERM");
    assert!(status.success(), "{status:?}");
    let log = cluster.servers[0].log.clone();
    let check = "import json, sys\n\
        events = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]\n\
        for event in events:\n    assert {'timestamp', 'level', 'target', 'fields'} <= event.keys(), event\n\
        print(len(events))\n\
        for event in events:\n    print(event['level'], json.dumps(event['fields'], sort_keys=True))\n";
    let mut command = Command::new(venv_python());
    command.arg("-c").arg(check).arg(&log);
    let finished = run_bounded(&mut command, PATIENCE);
    assert!(
        finished.status.is_some_and(|s| s.success()),
        "a log line is not a JSON event: {}\n--- the log\n{}",
        finished.stderr,
        cluster.servers[0].log_text()
    );
    let events: usize = finished.stdout.lines().next().and_then(|n| n.parse().ok()).expect("a count");
    assert!(events >= 3, "{}", finished.stdout);
    assert!(
        finished.stdout.lines().any(|l| l.starts_with("INFO ")
            && l.contains("\"message\": \"cashe started\"")
            && l.contains("\"id\": \"raft0\"")),
        "{}",
        finished.stdout
    );
}
