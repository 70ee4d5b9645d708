//! Seeded chaos for the Raft core: a whole cluster in one thread, every
//! decision drawn from the run's seed, so any failure replays exactly.
//!
//! This first simulator drives `cashe::raft` through the in-memory shell
//! (`cashe::raft::memory::Replica`) over a simulated network. (The turmoil
//! shell with real sockets and the node layer comes later; see
//! docs/architecture.md.)
//!
//! Faults it may inject, all from the seed:
//! - partitions in phases: none, one node isolated, or one link cut;
//! - message loss (5%), duplication (2%), delay and reordering (0–8 steps);
//! - crash + restart of a node, losing every record not yet fsynced;
//! - fsyncs completing at arbitrary times relative to everything else.
//!
//! Checks, after every step: at most one leader per term; every index is
//! applied with the same entry by every node in every boot; commit never
//! goes back within a boot. After the chaos the network heals and a new
//! command must commit and be applied everywhere (progress).

use cashe::raft::memory::Replica;
use cashe::raft::{Config, Entry, Index, Message, NodeId, PlantedBug, Raft, SplitMix64, Term};
use std::collections::BTreeMap;

pub struct Options {
    pub nodes: u64,
    pub chaos_steps: u64,
    pub heal_steps: u64,
    pub bug: PlantedBug,
}

impl Default for Options {
    fn default() -> Options {
        Options { nodes: 3, chaos_steps: 4000, heal_steps: 3000, bug: PlantedBug::None }
    }
}

/// What one run did: a digest of its event trace, and its size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Report {
    pub digest: u64,
    pub steps: u64,
    pub commits: u64,
    pub crashes: u64,
}

#[derive(Debug, Clone)]
pub struct Failure {
    pub step: u64,
    pub what: String,
    /// The last events before the failure.
    pub trace: Vec<String>,
}

struct Flight {
    due: u64,
    from: NodeId,
    to: NodeId,
    message: Message,
}

enum Partition {
    None,
    Isolate(NodeId),
    Cut(NodeId, NodeId),
}

struct Sim {
    seed: u64,
    rng: SplitMix64,
    step: u64,
    replicas: Vec<Replica>,
    network: Vec<Flight>,
    partition: Partition,
    phase_end: u64,
    faults: bool,
    leaders: BTreeMap<Term, NodeId>,
    applied: BTreeMap<Index, Entry>,
    proposals: u64,
    crashes: u64,
    digest: u64,
    trace: Vec<String>,
}

const TRACE_KEEP: usize = 200;

impl Sim {
    fn new(seed: u64, options: &Options) -> Sim {
        let ids: Vec<NodeId> = (1..=options.nodes).map(NodeId).collect();
        let replicas = ids
            .iter()
            .map(|id| {
                let config = Config { election_ticks: 10, planted_bug: options.bug, ..Config::new(*id) };
                Replica::new(config, seed, Raft::bootstrap(ids.clone()))
            })
            .collect();
        Sim {
            seed,
            rng: SplitMix64::new(seed),
            step: 0,
            replicas,
            network: Vec::new(),
            partition: Partition::None,
            phase_end: 0,
            faults: true,
            leaders: BTreeMap::new(),
            applied: BTreeMap::new(),
            proposals: 0,
            crashes: 0,
            digest: 0xcbf2_9ce4_8422_2325,
            trace: Vec::new(),
        }
    }

    fn event(&mut self, text: String) {
        for byte in text.as_bytes().iter().chain(b"\n") {
            self.digest = (self.digest ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3);
        }
        if self.trace.len() == TRACE_KEEP {
            self.trace.remove(0);
        }
        self.trace.push(format!("{:>6} {text}", self.step));
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.rng.range(0, 100) < percent
    }

    fn pick_node(&mut self) -> usize {
        self.rng.range(0, self.replicas.len() as u64) as usize
    }

    fn connected(&self, a: NodeId, b: NodeId) -> bool {
        match self.partition {
            Partition::None => true,
            Partition::Isolate(x) => a != x && b != x,
            Partition::Cut(x, y) => !((a, b) == (x, y) || (a, b) == (y, x)),
        }
    }

    fn send(&mut self, from: NodeId, outgoing: Vec<(NodeId, Message)>) {
        for (to, message) in outgoing {
            if self.faults && self.chance(5) {
                continue;
            }
            let copies = if self.faults && self.chance(2) { 2 } else { 1 };
            for _ in 0..copies {
                let delay = if self.faults { self.rng.range(0, 9) } else { self.rng.range(0, 2) };
                let due = self.step + delay;
                self.network.push(Flight { due, from, to, message: message.clone() });
            }
        }
    }

    fn next_phase(&mut self) {
        let ids: Vec<NodeId> = self.replicas.iter().map(|r| r.id()).collect();
        self.partition = match self.rng.range(0, 4) {
            0 | 1 => Partition::None,
            2 => Partition::Isolate(ids[self.pick_node()]),
            _ => {
                let (a, b) = (self.pick_node(), self.pick_node());
                if a == b {
                    Partition::None
                } else {
                    Partition::Cut(ids[a], ids[b])
                }
            }
        };
        self.phase_end = self.step + self.rng.range(50, 400);
        let text = match self.partition {
            Partition::None => "partition none".to_string(),
            Partition::Isolate(x) => format!("partition isolate {x}"),
            Partition::Cut(x, y) => format!("partition cut {x}-{y}"),
        };
        self.event(text);
    }

    fn deliver_one(&mut self) {
        let due: Vec<usize> = (0..self.network.len()).filter(|k| self.network[*k].due <= self.step).collect();
        if due.is_empty() {
            return;
        }
        let k = due[self.rng.range(0, due.len() as u64) as usize];
        let flight = self.network.swap_remove(k);
        if !self.connected(flight.from, flight.to) {
            self.event(format!("drop {}->{} {:?}", flight.from, flight.to, flight.message.kind));
            return;
        }
        self.event(format!(
            "deliver {}->{} t{} {:?}",
            flight.from, flight.to, flight.message.term, flight.message.kind
        ));
        let at = self.index_of(flight.to);
        self.replicas[at].raft.step(flight.from, flight.message);
        let out = self.replicas[at].drain();
        self.send(flight.to, out);
    }

    fn index_of(&self, id: NodeId) -> usize {
        self.replicas.iter().position(|r| r.id() == id).expect("known node")
    }

    fn act(&mut self) {
        let roll = self.rng.range(0, 100);
        let at = self.pick_node();
        let id = self.replicas[at].id();
        match roll {
            0..=49 => self.deliver_one(),
            50..=69 => {
                self.event(format!("tick {id}"));
                self.replicas[at].raft.tick();
                let out = self.replicas[at].drain();
                self.send(id, out);
            }
            70..=89 => {
                self.event(format!("sync {id}"));
                let out = self.replicas[at].sync();
                self.send(id, out);
            }
            90..=97 => self.propose(at),
            _ if self.faults => {
                self.crashes += 1;
                self.event(format!("crash {id}"));
                self.replicas[at].crash_and_restart(self.seed);
            }
            _ => {}
        }
    }

    fn propose(&mut self, at: usize) {
        if !self.replicas[at].raft.is_leader() {
            return;
        }
        let command = self.proposals.to_le_bytes().to_vec();
        self.proposals += 1;
        let id = self.replicas[at].id();
        if let Ok((index, term)) = self.replicas[at].raft.propose(command) {
            self.event(format!("propose {id} -> {index}@{term}"));
            let out = self.replicas[at].drain();
            self.send(id, out);
        }
    }

    fn check(&mut self, commits_before: &[(u64, Index)]) -> Result<(), String> {
        for (k, replica) in self.replicas.iter_mut().enumerate() {
            let raft = &replica.raft;
            if raft.is_leader() {
                let leader = *self.leaders.entry(raft.term()).or_insert(raft.id());
                if leader != raft.id() {
                    return Err(format!("two leaders in term {}: {leader} and {}", raft.term(), raft.id()));
                }
            }
            let (boots, commit) = commits_before[k];
            if boots == replica.boots && raft.commit() < commit {
                return Err(format!(
                    "node {} commit went back from {commit} to {}",
                    raft.id(),
                    raft.commit()
                ));
            }
            for entry in replica.applied.drain(..) {
                let agreed = self.applied.entry(entry.index).or_insert_with(|| entry.clone());
                if *agreed != entry {
                    return Err(format!(
                        "state machine safety: index {} applied as {:?} and as {:?}",
                        entry.index, agreed, entry
                    ));
                }
            }
        }
        Ok(())
    }

    fn run(&mut self, options: &Options) -> Result<(), String> {
        let total = options.chaos_steps + options.heal_steps;
        let mut progress_target: Option<Index> = None;
        while self.step < total {
            if self.step == options.chaos_steps {
                self.faults = false;
                self.partition = Partition::None;
                self.phase_end = u64::MAX;
                self.event("heal".to_string());
            }
            if self.faults && self.step >= self.phase_end {
                self.next_phase();
            }
            let before: Vec<(u64, Index)> =
                self.replicas.iter().map(|r| (r.boots, r.raft.commit())).collect();
            self.act();
            self.check(&before)?;
            if !self.faults && progress_target.is_none() {
                if let Some(at) = self.replicas.iter().position(|r| r.raft.is_leader()) {
                    let command = b"after-heal".to_vec();
                    if let Ok((index, _)) = self.replicas[at].raft.propose(command) {
                        progress_target = Some(index);
                        let id = self.replicas[at].id();
                        let out = self.replicas[at].drain();
                        self.send(id, out);
                    }
                }
            }
            self.step += 1;
            if let Some(target) = progress_target {
                if self.replicas.iter().all(|r| r.raft.applied() >= target) {
                    return Ok(());
                }
            }
        }
        Err(format!(
            "no progress: {} steps after healing, a command proposed then is not applied everywhere (applied: {:?})",
            options.heal_steps,
            self.replicas.iter().map(|r| r.raft.applied()).collect::<Vec<_>>()
        ))
    }
}

/// Runs one seed. The same seed and options always give the same report.
pub fn run(seed: u64, options: &Options) -> Result<Report, Failure> {
    let mut sim = Sim::new(seed, options);
    match sim.run(options) {
        Ok(()) => Ok(Report {
            digest: sim.digest,
            steps: sim.step,
            commits: sim.applied.len() as u64,
            crashes: sim.crashes,
        }),
        Err(what) => Err(Failure { step: sim.step, what, trace: sim.trace }),
    }
}
