//! Model checking of the node layer: linearizability of client operations.
//!
//! Three `Node`s (Raft + KV + requests in flight) on an in-memory shell, a
//! network holding a set of messages (delivered in any order, or lost),
//! fsyncs completing at any time, crashes keeping only durable records, and
//! two clients. Each client issues, one at a time, `SET k <value>` or
//! `GET k` to any node — followers included, so forwarded writes and
//! follower ReadIndex are exercised. Every invocation and answer goes into
//! stateright's linearizability tester with a register as the reference; an
//! error answer (`-CLUSTERDOWN`, `-TIMEOUT`, `-TRYAGAIN`) leaves the
//! operation in flight for ever — it may or may not have happened — and that
//! client stops.
//!
//! Exhaustive breadth-first to a bounded depth, then seeded nemesis random
//! walks. `CASHE_MODEL_BUG=stale-read` plants a node that serves reads from
//! local state; the run must fail.

mod common;

use cashe::node::{ConnId, Node, NodeConfig, NodeMessage};
use cashe::protocol::Reply;
use cashe::raft::{Lsn, NodeId, PlantedBug, Raft, Record, Recovered, Term};
use common::checking::{self, env_number};
use common::nemesis::{Move, NemesisChooser, NemesisModel};
use stateright::semantics::register::{Register, RegisterOp, RegisterRet};
use stateright::semantics::{ConsistencyTester, LinearizabilityTester};
use stateright::{Checker, HasDiscoveries, Model, Property};
use std::collections::BTreeSet;
use std::time::Instant;

const RUN_SEED: u64 = 0x0BAD_5EED;
type Value = Option<Vec<u8>>;

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
    Set { client: usize, node: NodeId },
    Get { client: usize, node: NodeId },
}

#[derive(Clone, Debug, PartialEq, Hash)]
struct Member {
    node: Node,
    unsynced: Vec<(Lsn, Record)>,
    durable: Recovered,
    boots: u64,
}

#[derive(Clone, Debug, PartialEq, Hash)]
struct Client {
    ops_left: u8,
    /// The node the outstanding request went to.
    waiting: Option<NodeId>,
    /// An error left an operation's fate unknown: no more operations.
    stopped: bool,
}

#[derive(Clone, Debug, PartialEq, Hash)]
struct State {
    members: Vec<Member>,
    network: BTreeSet<Envelope>,
    clients: Vec<Client>,
    tester: LinearizabilityTester<usize, Register<Value>>,
    writes: u8,
    crashes: u8,
    losses: u8,
    reads_served: u8,
}

#[derive(Clone)]
struct NodeModel {
    bug: PlantedBug,
    clients: usize,
    ops_per_client: u8,
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
}

fn at(state: &State, id: NodeId) -> usize {
    state.members.iter().position(|m| m.id() == id).expect("known node")
}

/// One shell turn at `id`: records to unsynced, messages to the network,
/// replies to the clients (and the tester).
fn turn(state: &mut State, id: NodeId) {
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
        if c.waiting != Some(id) {
            continue;
        }
        c.waiting = None;
        let ret = match reply {
            Reply::Simple(_) => Some(RegisterRet::WriteOk),
            Reply::Bulk(value) => Some(RegisterRet::ReadOk(value)),
            _ => None,
        };
        match ret {
            Some(ret) => {
                if matches!(ret, RegisterRet::ReadOk(_)) {
                    state.reads_served += 1;
                }
                // An answer the tester cannot place is a violation it records.
                let _ = state.tester.on_return(client, ret);
            }
            None => c.stopped = true,
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
        let clients = (0..self.clients)
            .map(|_| Client { ops_left: self.ops_per_client, waiting: None, stopped: false })
            .collect();
        vec![State {
            members,
            network: BTreeSet::new(),
            clients,
            tester: LinearizabilityTester::new(Register(None)),
            writes: 0,
            crashes: 0,
            losses: 0,
            reads_served: 0,
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
            if c.waiting.is_none() && !c.stopped && c.ops_left > 0 {
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
                for c in state.clients.iter_mut().filter(|c| c.waiting == Some(id)) {
                    c.waiting = None;
                    c.stopped = true;
                }
                id
            }
            Action::Set { client, node } => {
                state.writes += 1;
                let value = vec![b'a' + state.writes];
                let _ = state.tester.on_invoke(client, RegisterOp::Write(Some(value.clone())));
                let k = at(&state, node);
                state.members[k].node.client(
                    ConnId(client as u64),
                    vec![b"SET".to_vec(), b"k".to_vec(), value],
                    now_ms,
                );
                state.clients[client].waiting = Some(node);
                state.clients[client].ops_left -= 1;
                node
            }
            Action::Get { client, node } => {
                let _ = state.tester.on_invoke(client, RegisterOp::Read);
                let k = at(&state, node);
                state.members[k].node.client(
                    ConnId(client as u64),
                    vec![b"GET".to_vec(), b"k".to_vec()],
                    now_ms,
                );
                state.clients[client].waiting = Some(node);
                state.clients[client].ops_left -= 1;
                node
            }
        };
        turn(&mut state, actor);
        Some(state)
    }

    fn within_boundary(&self, state: &State) -> bool {
        state.members.iter().all(|m| m.node.raft().term() <= self.term_max)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        vec![
            Property::always("linearizable", |_, s: &State| s.tester.serialized_history().is_some()),
            Property::sometimes("a read returns a written value", |_, s: &State| {
                s.tester
                    .serialized_history()
                    .is_some_and(|h| h.iter().any(|(_, ret)| matches!(ret, RegisterRet::ReadOk(Some(_)))))
            }),
        ]
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
            Action::Set { .. } | Action::Get { .. } => Move::Request,
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
    let model =
        NodeModel { bug, clients: 2, ops_per_client: 2, crashes_max: 1, losses_max: 1, term_max: Term(5) };
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
    println!("model_node: {} passed, {} failed", u8::from(ok), u8::from(!ok));
    if !ok {
        std::process::exit(1);
    }
}
