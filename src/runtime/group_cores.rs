//! Key groups on several executors (`--cores N` with several shards): a
//! member's key groups are spread over its first cores (`node::core_of`),
//! each executor running a router of its own core (`Router::on_core`) with
//! its own shared log (`groups/` for core 0, `groups-<k>/` for core k) and
//! its own group commit. Executor 0 also runs the home group, the client
//! connections' routers and every peer link; the others run nothing but
//! their groups, and talk to executor 0 over a pair of glommio shared
//! channels (single producer, single consumer, bounded), in batches:
//!
//! - executor 0 → k ([`ToCore`]): the peer messages for core k's groups
//!   (those of other members, and those executor 0's or another core's
//!   router sends this member itself, `node::core_for_message`), and the
//!   home group's state whenever it changes (`HomeView`);
//! - executor k → 0 ([`FromCore`]): what core k's router sends, to a peer
//!   link or to this member's own cores, and every 50 ticks a report of
//!   its groups for INFO, with its disk's counters.
//!
//! Nothing else is shared: a command of a client for a group of core k
//! travels as a `Proxy` from executor 0's router to the member itself, and
//! its answer comes back as a `ProxyReply`, exactly as between members, so
//! a connection's order, its transactions and its WATCHes hold across
//! cores by the rules that make them hold across members.

use super::cores::{receive, relay_batches};
use super::mailbox::Mailbox;
use super::server::Event;
use crate::node::{core_for_message, CoreReport, GroupId, HomeView, NodeMessage};
use crate::raft::NodeId;
use crate::turn::TurnStats;
use glommio::channels::shared_channel::{self, SharedReceiver, SharedSender};

/// Batches in flight on one channel before its relay waits.
const CHANNEL_BATCHES: usize = 1024;

/// From executor 0 to a core of key groups.
#[derive(Debug)]
pub enum ToCore {
    /// A peer message (from another member, or from this one) for the core.
    Peer(NodeId, GroupId, NodeMessage),
    /// The home group's state, when it changed.
    Home(HomeView),
}

/// From a core of key groups to executor 0.
#[derive(Debug)]
pub enum FromCore {
    /// A message the core's router sends (to this member too).
    Send(NodeId, GroupId, NodeMessage),
    /// The core's groups for INFO, and its disk's work.
    Report(CoreReport, TurnStats),
    /// The core stopped: it cannot go on (a failed disk, a group that met
    /// state it cannot trust). The member stops.
    Failed(String),
    /// The core finished a clean stop (its leaders handed over, its disk
    /// idle).
    Stopped,
}

/// Executor 0's ends of a core's channels.
pub struct NodeEnds {
    pub to_core: SharedSender<Vec<ToCore>>,
    pub from_core: SharedReceiver<Vec<FromCore>>,
}

/// A core's ends, moved to its executor.
pub struct CoreEnds {
    pub from_node: SharedReceiver<Vec<ToCore>>,
    pub to_node: SharedSender<Vec<FromCore>>,
}

/// A pair of channels between executor 0 and a core of key groups.
pub fn channels() -> (NodeEnds, CoreEnds) {
    let (to_core, from_node) = shared_channel::new_bounded(CHANNEL_BATCHES);
    let (to_node, from_core) = shared_channel::new_bounded(CHANNEL_BATCHES);
    (NodeEnds { to_core, from_core }, CoreEnds { from_node, to_node })
}

/// On executor 0: what goes to each core (index: the core; core 0's is
/// never used), batched by relays.
#[derive(Clone, Default)]
pub struct Outgoing {
    pub cores: Vec<Mailbox<ToCore>>,
}

impl Outgoing {
    /// Cores in all (1 when the groups are all on executor 0).
    pub fn count(&self) -> u32 {
        (self.cores.len() as u32).max(1)
    }

    /// Hands a message sent to this member, for `group`, to the core(s)
    /// that take it (`core_for_message`), but not back to `from_core`: the
    /// ones for core 0 go to `local` (executor 0's loop).
    pub fn dispatch(
        &self,
        from: NodeId,
        from_core: Option<u32>,
        group: GroupId,
        message: NodeMessage,
        mut local: impl FnMut(NodeId, GroupId, NodeMessage),
    ) {
        match core_for_message(group, &message, self.count()) {
            Some(0) => local(from, group, message),
            Some(core) => self.push(core, ToCore::Peer(from, group, message)),
            None => {
                for core in 1..self.count() {
                    if Some(core) != from_core {
                        self.push(core, ToCore::Peer(from, group, message.clone()));
                    }
                }
                if from_core != Some(0) {
                    local(from, group, message);
                }
            }
        }
    }

    /// Queues `item` for `core` (never full: the relay takes everything).
    pub fn push(&self, core: u32, item: ToCore) {
        if let Some(mailbox) = self.cores.get(core as usize) {
            let _ = mailbox.try_push(item);
        }
    }

    /// The home group's state to every other core.
    pub fn home(&self, view: &HomeView) {
        for core in 1..self.count() {
            self.push(core, ToCore::Home(view.clone()));
        }
    }
}

/// On executor 0: relays executor 0's batches for core `core` to it, and
/// hands what comes back to `received`, batch by batch. Returns when the
/// core is gone.
pub async fn serve_core_on_node(
    ends: NodeEnds,
    outgoing: Mailbox<ToCore>,
    mut received: impl FnMut(Vec<FromCore>),
) {
    let to_core = ends.to_core.connect().await;
    let from_core = ends.from_core.connect().await;
    glommio::spawn_local(relay_batches(outgoing, to_core)).detach();
    while let Some(batch) = receive(&from_core).await {
        received(batch);
    }
}

/// On a core's executor: relays its batches to executor 0, and hands what
/// comes from there to `events` (peer messages) and `home` (the home
/// group's state). Returns when executor 0 is gone.
pub async fn serve_node_on_core(
    ends: CoreEnds,
    outgoing: Mailbox<FromCore>,
    events: Mailbox<Event>,
    home: std::rc::Rc<std::cell::RefCell<Option<HomeView>>>,
) {
    let from_node = ends.from_node.connect().await;
    let to_node = ends.to_node.connect().await;
    glommio::spawn_local(relay_batches(outgoing, to_node)).detach();
    while let Some(batch) = receive(&from_node).await {
        for item in batch {
            match item {
                ToCore::Peer(from, group, message) => events.push(Event::Peer { from, group, message }).await,
                ToCore::Home(view) => *home.borrow_mut() = Some(view),
            }
        }
    }
}
