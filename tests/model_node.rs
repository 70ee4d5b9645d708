//! Model checking of the node layer: linearizability of client operations,
//! in connection order.
//!
//! Three `Node`s (Raft + KV + requests in flight) on an in-memory shell, a
//! network holding a set of messages (delivered in any order, or lost),
//! fsyncs completing at any time, crashes keeping only durable records, and
//! two clients, each its own connection (`ConnId`):
//!
//! - one sends `SET k <value>` or `GET k`, one at a time, each to any node
//!   — followers included, so forwarded writes and follower ReadIndex are
//!   exercised; an error answer (`-CLUSTERDOWN`, `-TIMEOUT`, `-TRYAGAIN`)
//!   stops it;
//! - one **pipelines** `GET k`, `SET k <value>`, `GET k` to one node (the
//!   node it picks for the first): each command is sent whenever the model
//!   says, whether or not the earlier ones were answered, so a write waiting
//!   for an earlier read and a read waiting for an earlier write both occur.
//!   It carries on after an error answer.
//!
//! Each connection's replies come in command order. Every command and answer
//! goes into a `common::history::History`, checked against a register: some
//! order of the operations must explain every answer, respecting real time
//! (an operation answered before another was sent comes first) and
//! **connection order** (a precedence edge between consecutive operations of
//! one connection, pipelined or not). An operation whose outcome is unknown
//! (an error answer, or a crash of the node holding its connection, which
//! ends the connection) may or may not have taken effect; if it did, it took
//! effect after its connection's earlier operations and before its later
//! ones. Stateright's own `LinearizabilityTester` allows one operation in
//! flight per thread, hence the history's own small search.
//!
//! Exhaustive breadth-first to a bounded depth, then seeded nemesis random
//! walks. The run must fail with `CASHE_MODEL_BUG=stale-read` (a node serves
//! reads from local state) and with `CASHE_MODEL_BUG=read-skips-own-writes`
//! (a read starts without waiting for its connection's earlier writes: the
//! pipelined `SET`, `GET` reads from before the `SET`).

mod common;

use cashe::node::{ConnId, Node, NodeConfig, NodeMessage};
use cashe::protocol::Reply;
use cashe::raft::{Lsn, NodeId, PlantedBug, Raft, Record, Recovered, Term};
use common::checking::{self, env_number};
use common::history::{self, Call, History, Outcome};
use common::nemesis::{Move, NemesisChooser, NemesisModel};
use stateright::{Checker, HasDiscoveries, Model, Property};
use std::collections::BTreeSet;
use std::time::Instant;

const RUN_SEED: u64 = 0x0BAD_5EED;

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct Envelope {
    from: NodeId,
    to: NodeId,
    message: NodeMessage,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Action {
    Deliver(Envelope),
    Lose(Envelope),
    Timeout(NodeId),
    Sync(NodeId),
    Crash(NodeId),
    Set {
        client: usize,
        node: NodeId,
    },
    Get {
        client: usize,
        node: NodeId,
    },
    /// The pipelining client sends its next command, replies or not.
    Pipeline {
        client: usize,
        node: NodeId,
        command: Command,
    },
}

/// A command of the pipelining client's script.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Command {
    Set,
    Get,
}

#[derive(Clone, Debug, PartialEq, Hash)]
struct Member {
    node: Node,
    unsynced: Vec<(Lsn, Record)>,
    durable: Recovered,
    boots: u64,
}

/// A client's progress; client n is connection `ConnId(n)`.
#[derive(Clone, Debug, PartialEq, Hash)]
struct Client {
    sent: u8,
    answered: u8,
    /// The node holding the connection while commands are in flight (the
    /// pipelining client's for good: one connection is one node).
    node: Option<NodeId>,
    /// No more commands: a one-at-a-time client's operation got an error
    /// answer, or the node holding the connection crashed.
    stopped: bool,
}

#[derive(Clone, Debug, PartialEq, Hash)]
struct State {
    members: Vec<Member>,
    network: BTreeSet<Envelope>,
    clients: Vec<Client>,
    history: History,
    writes: u8,
    crashes: u8,
    losses: u8,
}

#[derive(Clone)]
struct NodeModel {
    bug: PlantedBug,
    /// Clients sending one command at a time, SET or GET, each to any node.
    clients: usize,
    ops_per_client: u8,
    /// The script of one more client, which sends it to one node without
    /// waiting for replies (empty: no such client).
    pipeline: Vec<Command>,
    crashes_max: u8,
    losses_max: u8,
    term_max: Term,
}

fn node_config(id: NodeId, bug: PlantedBug) -> NodeConfig {
    let mut config = NodeConfig::new(id);
    config.raft.election_ticks = 2;
    config.raft.append_entries_max = 1;
    config.raft.planted_bug = bug;
    config.forward_timeout_ticks = 4;
    config.expiry_ticks = u32::MAX;
    config
}

impl Member {
    fn id(&self) -> NodeId {
        self.node.raft().id()
    }
}

impl NodeModel {
    fn ids(&self) -> Vec<NodeId> {
        (1..=3).map(NodeId).collect()
    }

    /// The pipelining client's index, if there is one.
    fn pipelining(&self) -> Option<usize> {
        (!self.pipeline.is_empty()).then_some(self.clients)
    }

    /// `client` sends `command` to `node`, on its connection there.
    fn send(&self, state: &mut State, client: usize, node: NodeId, command: Command, now_ms: u64) {
        let args = match command {
            Command::Set => {
                state.writes += 1;
                let value = vec![b'a' + state.writes];
                state.history.send(client, Call::Write(value.clone()));
                vec![b"SET".to_vec(), b"k".to_vec(), value]
            }
            Command::Get => {
                state.history.send(client, Call::Read);
                vec![b"GET".to_vec(), b"k".to_vec()]
            }
        };
        let k = at(state, node);
        state.members[k].node.client(ConnId(client as u64), args, now_ms);
        let c = &mut state.clients[client];
        c.sent += 1;
        c.node = Some(node);
    }
}

fn at(state: &State, id: NodeId) -> usize {
    state.members.iter().position(|m| m.id() == id).expect("known node")
}

/// One shell turn at `id`: records to unsynced, messages to the network,
/// replies to the clients (and the history). A connection's replies come in
/// the order of its commands.
fn turn(state: &mut State, id: NodeId, pipelining: Option<usize>) {
    let k = at(state, id);
    let output = state.members[k].node.take_output();
    state.members[k].unsynced.extend(output.persist);
    if let Some(snapshot) = output.snapshot {
        state.members[k].durable.install_snapshot(snapshot);
    }
    for (to, message) in output.send {
        state.network.insert(Envelope { from: id, to, message });
    }
    for (conn, reply) in output.replies {
        let client = conn.0 as usize;
        let Some(c) = state.clients.get_mut(client) else { continue };
        assert!(c.node == Some(id) && c.answered < c.sent, "a reply nobody waits for: {conn:?} {reply:?}");
        let seq = usize::from(c.answered);
        c.answered += 1;
        let outcome = match reply {
            Reply::Simple(_) => Some(Outcome::Written),
            Reply::Bulk(value) => Some(Outcome::Read(value)),
            _ => None,
        };
        match outcome {
            Some(outcome) => state.history.answer(client, seq, outcome),
            // The fate is unknown; a pipelining client carries on with its
            // script (it may have sent it all already).
            None if Some(client) != pipelining => c.stopped = true,
            None => {}
        }
        if c.answered == c.sent && Some(client) != pipelining {
            c.node = None;
        }
    }
}

impl Model for NodeModel {
    type State = State;
    type Action = Action;

    fn init_states(&self) -> Vec<State> {
        let ids = self.ids();
        let members = ids
            .iter()
            .map(|id| {
                let recovered = Raft::bootstrap(ids.clone());
                let node = Node::restore(node_config(*id, self.bug), RUN_SEED ^ id.0, recovered.clone())
                    .expect("valid config");
                Member { node, unsynced: Vec::new(), durable: recovered, boots: 0 }
            })
            .collect();
        let connections = self.clients + usize::from(self.pipelining().is_some());
        let clients =
            (0..connections).map(|_| Client { sent: 0, answered: 0, node: None, stopped: false }).collect();
        vec![State {
            members,
            network: BTreeSet::new(),
            clients,
            history: History::new(connections),
            writes: 0,
            crashes: 0,
            losses: 0,
        }]
    }

    fn actions(&self, state: &State, actions: &mut Vec<Action>) {
        for envelope in &state.network {
            actions.push(Action::Deliver(envelope.clone()));
            if state.losses < self.losses_max {
                actions.push(Action::Lose(envelope.clone()));
            }
        }
        for member in &state.members {
            let id = member.id();
            actions.push(Action::Timeout(id));
            if !member.unsynced.is_empty() {
                actions.push(Action::Sync(id));
            }
            if state.crashes < self.crashes_max {
                actions.push(Action::Crash(id));
            }
        }
        for (client, c) in state.clients.iter().enumerate() {
            if c.stopped {
                continue;
            }
            if Some(client) == self.pipelining() {
                if usize::from(c.sent) < self.pipeline.len() {
                    let nodes = c.node.map_or_else(|| self.ids(), |node| vec![node]);
                    let command = self.pipeline[usize::from(c.sent)];
                    actions.extend(nodes.into_iter().map(|node| Action::Pipeline { client, node, command }));
                }
            } else if c.answered == c.sent && c.sent < self.ops_per_client {
                for id in self.ids() {
                    actions.push(Action::Set { client, node: id });
                    actions.push(Action::Get { client, node: id });
                }
            }
        }
    }

    fn next_state(&self, last: &State, action: Action) -> Option<State> {
        let mut state = last.clone();
        let now_ms = 1_000;
        let actor = match action {
            Action::Deliver(envelope) => {
                state.network.remove(&envelope);
                let k = at(&state, envelope.to);
                state.members[k].node.step(envelope.from, envelope.message);
                envelope.to
            }
            Action::Lose(envelope) => {
                state.losses += 1;
                state.network.remove(&envelope);
                return Some(state);
            }
            Action::Timeout(id) => {
                let k = at(&state, id);
                let before = (state.members[k].node.raft().role(), state.members[k].node.raft().term());
                for _ in 0..8 {
                    state.members[k].node.tick(now_ms);
                    let raft = state.members[k].node.raft();
                    if (raft.role(), raft.term()) != before || raft.is_leader() {
                        break;
                    }
                }
                id
            }
            Action::Sync(id) => {
                let k = at(&state, id);
                let member = &mut state.members[k];
                let (last, _) = member.unsynced.last().cloned().expect("enabled only with unsynced records");
                for (_, record) in member.unsynced.drain(..) {
                    member.durable.apply(record).expect("consistent record stream");
                }
                member.node.persisted(last);
                id
            }
            Action::Crash(id) => {
                state.crashes += 1;
                let k = at(&state, id);
                let member = &mut state.members[k];
                member.boots += 1;
                let seed = RUN_SEED ^ id.0 ^ (member.boots << 32);
                member.node =
                    Node::restore(node_config(id, self.bug), seed, member.durable.clone()).expect("recovers");
                member.unsynced.clear();
                // Its connections are gone, with the fate of what was in flight.
                for c in state.clients.iter_mut().filter(|c| c.node == Some(id)) {
                    c.stopped = true;
                }
                id
            }
            Action::Set { client, node } => {
                self.send(&mut state, client, node, Command::Set, now_ms);
                node
            }
            Action::Get { client, node } => {
                self.send(&mut state, client, node, Command::Get, now_ms);
                node
            }
            Action::Pipeline { client, node, command } => {
                self.send(&mut state, client, node, command, now_ms);
                node
            }
        };
        turn(&mut state, actor, self.pipelining());
        Some(state)
    }

    fn within_boundary(&self, state: &State) -> bool {
        state.members.iter().all(|m| m.node.raft().term() <= self.term_max)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        let mut properties = vec![
            Property::always("linearizable", |_, s: &State| s.history.is_linearizable()),
            Property::sometimes("a read returns a written value", |_, s: &State| {
                s.history.is_linearizable() && s.history.read_a_value()
            }),
        ];
        if self.pipelining().is_some() {
            properties.push(Property::sometimes(
                "a pipelined GET reads its connection's SET",
                |m: &NodeModel, s: &State| {
                    let client = m.pipelining().expect("a pipelining client");
                    s.history.is_linearizable() && s.history.read_own_write(client)
                },
            ));
        }
        properties
    }
}

impl NemesisModel for NodeModel {
    fn nodes(state: &State) -> Vec<NodeId> {
        state.members.iter().map(|m| m.id()).collect()
    }

    fn classify(action: &Action) -> Move {
        match action {
            Action::Deliver(e) => Move::Deliver { from: e.from, to: e.to },
            Action::Sync(_) => Move::Sync,
            Action::Timeout(_) => Move::Timeout,
            Action::Set { .. } | Action::Get { .. } | Action::Pipeline { .. } => Move::Request,
            Action::Crash(_) | Action::Lose(_) => Move::Fault,
        }
    }
}

fn main() {
    let bug = checking::planted_bug();
    let depth = env_number("CASHE_MODEL_DEPTH", 8);
    let walk_states = env_number("CASHE_MODEL_WALK_STATES", 3_000_000);
    let walk_depth = env_number("CASHE_MODEL_WALK_DEPTH", 100);
    let threads = env_number("CASHE_MODEL_THREADS", 2);
    history::check_examples();
    let model = NodeModel {
        bug,
        clients: 1,
        ops_per_client: 2,
        pipeline: vec![Command::Get, Command::Set, Command::Get],
        crashes_max: 1,
        losses_max: 1,
        term_max: Term(5),
    };
    let started = Instant::now();
    let bfs = model
        .clone()
        .checker()
        .threads(threads)
        .target_max_depth(depth)
        .finish_when(HasDiscoveries::AnyFailures)
        .spawn_bfs()
        .join();
    println!(
        "model_node bug={bug} exhaustive to depth {depth}: {} unique states, {:.1}s",
        bfs.unique_state_count(),
        started.elapsed().as_secs_f64()
    );
    let started = Instant::now();
    let walks = model
        .checker()
        .threads(threads)
        .target_max_depth(walk_depth)
        .target_state_count(walk_states)
        .finish_when(HasDiscoveries::AnyFailures)
        .spawn_simulation(RUN_SEED, NemesisChooser)
        .join();
    println!(
        "model_node bug={bug} random walks to depth {walk_depth}: {} states visited, {:.1}s",
        walks.state_count(),
        started.elapsed().as_secs_f64()
    );
    let ok = checking::report(&bfs, &walks);
    if let Some(path) = bfs.discovery("linearizable").or_else(|| walks.discovery("linearizable")) {
        println!("  the history it ends with:");
        for line in path.last_state().history.to_string().lines() {
            println!("    {line}");
        }
    }
    println!("model_node: {} passed, {} failed", u8::from(ok), u8::from(!ok));
    if !ok {
        std::process::exit(1);
    }
}
