//! A work queue on a real 3-node cluster while its leader is killed twice:
//! a producer LPUSHes numbered elements through one node, consumers BRPOP
//! through the others, and every element must be consumed exactly once,
//! each consumer getting its elements in the order they were pushed.
//!
//! The producer makes each push exactly-once over retries with WATCH: it
//! reads a counter (`produced`), and pushes element i with the counter's
//! increment in one MULTI/EXEC only while the counter still reads i - 1. A
//! retry after an unknown outcome on a live connection goes through that
//! connection (the node settles the earlier write first); after its node
//! died, through another node, a moment later.
//!
//! Consumers keep off the node about to be killed (a killed node's blocked
//! clients lose what is popped for them in flight, as with Redis): before
//! each kill the test names the node, each consumer finishes its current
//! BRPOP (1 s timeout) elsewhere, and only then is the node killed with
//! SIGKILL. Blocked clients on the other nodes wait through the election:
//! their waits are replicated, so the new leader serves them.
//!
//! Every process is killed by PID when the test ends, and every wait is
//! bounded.

#[path = "cluster/harness.rs"]
mod harness;

use cashe::protocol::Reply;
use harness::{Client, Cluster};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const ELEMENTS: usize = 400;
const CONSUMERS: usize = 3;
const QUEUE: &str = "queue";
const COUNTER: &str = "produced";
/// The whole test gives up after this.
const DEADLINE: Duration = Duration::from_secs(240);

struct Shared {
    ports: Vec<u16>,
    /// The node consumers must leave (about to be killed).
    avoid: Mutex<Option<usize>>,
    /// The node each consumer is blocked on, if any.
    on: Mutex<Vec<Option<usize>>>,
    /// Elements each consumer received, in order.
    consumed: Mutex<Vec<Vec<usize>>>,
    total: AtomicUsize,
    stop: AtomicBool,
    /// What went wrong in a thread.
    failures: Mutex<Vec<String>>,
    started: Instant,
}

impl Shared {
    fn fail(&self, text: String) {
        self.failures.lock().unwrap().push(text);
    }

    fn late(&self) -> bool {
        self.stop.load(Ordering::SeqCst) || self.started.elapsed() > DEADLINE
    }
}

fn words(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| a.to_string()).collect()
}

fn connect(shared: &Shared, node: usize) -> Option<Client> {
    let client = Client::connect(shared.ports[node]).ok()?;
    client.stream.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    Some(client)
}

/// The counter's value through `client`, retrying refusals; `None` if the
/// connection failed.
fn read_counter(shared: &Shared, client: &mut Client) -> Option<usize> {
    while !shared.late() {
        match client.call(&["GET", COUNTER]).ok()? {
            Reply::Bulk(None) => return Some(0),
            Reply::Bulk(Some(n)) => return String::from_utf8_lossy(&n).parse().ok(),
            _ => std::thread::sleep(Duration::from_millis(100)),
        }
    }
    None
}

/// Pushes element `i` exactly once (see the module docs); false if the
/// test stopped first.
fn push_once(shared: &Shared, node: &mut usize, client: &mut Option<Client>, i: usize) -> bool {
    while !shared.late() {
        let Some(conn) = client.as_mut() else {
            // Its node is gone: another, a moment later.
            *node = (*node + 1) % shared.ports.len();
            std::thread::sleep(Duration::from_millis(500));
            *client = connect(shared, *node);
            continue;
        };
        let attempt = (|| -> std::io::Result<bool> {
            if conn.call(&["WATCH", COUNTER])? != Reply::ok() {
                return Ok(false);
            }
            let Some(count) = read_counter(shared, conn) else { return Ok(false) };
            if count >= i {
                assert_eq!(count, i, "the counter ran ahead of the producer");
                conn.call(&["UNWATCH"])?;
                return Ok(true);
            }
            assert_eq!(count, i - 1, "the counter fell behind the producer");
            let element = i.to_string();
            let commands = [
                words(&["MULTI"]),
                words(&["INCR", COUNTER]),
                words(&["LPUSH", QUEUE, &element]),
                words(&["EXEC"]),
            ];
            conn.send_all(&commands)?;
            let replies: Vec<Reply> = (0..4).map(|_| conn.read_reply()).collect::<Result<_, _>>()?;
            Ok(matches!(&replies[3], Reply::Array(Some(r)) if r.first() == Some(&Reply::Integer(i as i64))))
        })();
        match attempt {
            Ok(true) => return true,
            Ok(false) => std::thread::sleep(Duration::from_millis(20)),
            Err(_) => *client = None,
        }
    }
    false
}

fn producer(shared: Arc<Shared>) {
    let mut node = 0;
    let mut client = connect(&shared, node);
    for i in 1..=ELEMENTS {
        // Not `late()` after a push: the last element may be consumed, and
        // the test stopped, before this thread looks (a loaded machine).
        if !push_once(&shared, &mut node, &mut client, i) {
            return shared.fail(format!("the producer stopped at element {i}"));
        }
        std::thread::sleep(Duration::from_millis(8));
    }
}

fn consumer(shared: Arc<Shared>, number: usize) {
    let nodes = shared.ports.len();
    let mut node = 1 + number % (nodes - 1);
    let mut client: Option<Client> = None;
    while shared.total.load(Ordering::SeqCst) < ELEMENTS && !shared.late() {
        if client.is_none() {
            node = (node + 1) % nodes;
            client = connect(&shared, node);
            if client.is_none() {
                std::thread::sleep(Duration::from_millis(100));
            }
            continue;
        }
        // Claimed before the check, so the test never kills a node it
        // just saw free while this consumer is about to block there.
        shared.on.lock().unwrap()[number] = Some(node);
        if *shared.avoid.lock().unwrap() == Some(node) {
            shared.on.lock().unwrap()[number] = None;
            client = None;
            continue;
        }
        let reply = client.as_mut().expect("connected").call(&["BRPOP", QUEUE, "1"]);
        shared.on.lock().unwrap()[number] = None;
        match reply {
            Ok(Reply::Array(Some(items))) if items.len() == 2 => {
                let element = match &items[1] {
                    Reply::Bulk(Some(bytes)) => String::from_utf8_lossy(bytes).parse::<usize>().ok(),
                    _ => None,
                };
                match element {
                    Some(element) => {
                        shared.consumed.lock().unwrap()[number].push(element);
                        shared.total.fetch_add(1, Ordering::SeqCst);
                    }
                    None => shared.fail(format!("consumer {number}: unexpected BRPOP reply {items:?}")),
                }
            }
            Ok(Reply::Array(None) | Reply::Null) => {}
            // No leader for a moment: nothing was popped.
            Ok(Reply::Error(e)) if e.starts_with("CLUSTERDOWN") || e.starts_with("TRYAGAIN") => {
                std::thread::sleep(Duration::from_millis(100));
            }
            Ok(other) => shared.fail(format!("consumer {number} at node {node}: BRPOP answered {other:?}")),
            Err(e) => {
                shared
                    .fail(format!("consumer {number}: connection to node {node} failed while blocked: {e}"));
                client = None;
            }
        }
    }
}

/// Waits until `consumed` elements were consumed (bounded).
fn wait_for_consumed(shared: &Shared, consumed: usize) {
    while shared.total.load(Ordering::SeqCst) < consumed && !shared.late() {
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Kills the leader once no consumer is blocked on it, waits for a new
/// leader, restarts the old one.
fn kill_leader(cluster: &mut Cluster, shared: &Shared) -> String {
    let leader = cluster.leader();
    *shared.avoid.lock().unwrap() = Some(leader);
    while shared.on.lock().unwrap().contains(&Some(leader)) && !shared.late() {
        std::thread::sleep(Duration::from_millis(10));
    }
    let name = cluster.servers[leader].name.clone();
    cluster.servers[leader].kill9();
    let new = cluster.leader();
    assert_ne!(new, leader, "a new leader");
    cluster.servers[leader].start(None);
    *shared.avoid.lock().unwrap() = None;
    format!("{name} (then {} led)", cluster.servers[new].name)
}

#[test]
fn a_queue_through_two_leader_kills_delivers_every_element_once_in_order() {
    let mut cluster = Cluster::start("blocking", 3);
    let shared = Arc::new(Shared {
        ports: cluster.servers.iter().map(|s| s.client_port).collect(),
        avoid: Mutex::new(None),
        on: Mutex::new(vec![None; CONSUMERS]),
        consumed: Mutex::new(vec![Vec::new(); CONSUMERS]),
        total: AtomicUsize::new(0),
        stop: AtomicBool::new(false),
        failures: Mutex::new(Vec::new()),
        started: Instant::now(),
    });
    let mut threads = Vec::new();
    for number in 0..CONSUMERS {
        let shared = shared.clone();
        threads.push(std::thread::spawn(move || consumer(shared, number)));
    }
    let producing = {
        let shared = shared.clone();
        std::thread::spawn(move || producer(shared))
    };
    wait_for_consumed(&shared, ELEMENTS / 4);
    let first = kill_leader(&mut cluster, &shared);
    wait_for_consumed(&shared, ELEMENTS / 2);
    let second = kill_leader(&mut cluster, &shared);
    wait_for_consumed(&shared, ELEMENTS);
    shared.stop.store(true, Ordering::SeqCst);
    producing.join().expect("the producer panicked");
    for thread in threads {
        thread.join().expect("a consumer panicked");
    }

    let failures = shared.failures.lock().unwrap().clone();
    assert!(failures.is_empty(), "{failures:#?}\n{}", cluster.log_tails(30));
    let consumed = shared.consumed.lock().unwrap().clone();
    for (number, elements) in consumed.iter().enumerate() {
        assert!(
            elements.windows(2).all(|w| w[0] < w[1]),
            "consumer {number} got elements out of order: {elements:?}"
        );
    }
    let mut all: Vec<usize> = consumed.iter().flatten().copied().collect();
    all.sort_unstable();
    let expected: Vec<usize> = (1..=ELEMENTS).collect();
    assert_eq!(all, expected, "every element consumed exactly once");
    let remaining = cluster.servers[cluster.leader()].call(&["LLEN", QUEUE]);
    assert_eq!(remaining, Reply::Integer(0), "nothing left in the queue");
    let per: Vec<usize> = consumed.iter().map(Vec::len).collect();
    println!(
        "blocking: {ELEMENTS} elements pushed through one node and consumed by {CONSUMERS} BRPOP clients \
         (per consumer {per:?}) exactly once and in order, while {first} and then {second} were killed \
         as leader, in {:.1} s",
        shared.started.elapsed().as_secs_f64()
    );
}
