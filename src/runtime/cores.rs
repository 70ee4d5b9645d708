//! More than one executor (`--cores N`): executor 0 runs the node, its WAL
//! and its peer links, as a one-core server does; executors 1 to N-1 serve
//! client connections. Each accepts on the same listening sockets (the
//! kernel hands every new connection to one of the executors waiting in
//! accept), reads, parses and answers its connections, and hands their
//! commands to executor 0, whose node keeps every connection's order and
//! session as before, then takes the replies back. Executors share no
//! state but the accept counters and the write-latency histogram (atomics
//! and a lock, `ClientCounters` and `server::Shared`); everything else
//! crosses by glommio's shared channels, single-producer single-consumer
//! and bounded:
//!
//! - executor k → 0: batches of its connections' events (`Opened`,
//!   `Client`, `Closed`), in the order its connections produced them, so a
//!   connection's commands reach the node in the order sent;
//! - executor 0 → k: batches of `(connection, reply)`, in the order the
//!   node released them, which is each connection's command order.
//!
//! A relay task at each end gathers what queued up while the previous batch
//! was in flight, so a busy executor crosses once per batch, not per
//! command. Back-pressure is the one-core server's: a connection waits for
//! room in its executor's event mailbox, and a relay for room in its channel.

use super::mailbox::Mailbox;
use super::server::Event;
use crate::node::ConnId;
use crate::protocol::Reply;
use glommio::channels::shared_channel::{
    self, ConnectedReceiver, ConnectedSender, SharedReceiver, SharedSender,
};
use glommio::{GlommioError, ResourceType};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

/// Batches in flight on one channel before its relay waits.
const CHANNEL_BATCHES: usize = 256;

/// How long a relay waits on its channel before it looks again by itself.
/// glommio's shared channels lose a wake-up now and then under load (seen
/// here: a connection on a client executor waited 30 s for its reply on a
/// machine with every CPU busy; glommio's issues #261 and #273 are of the
/// kind), so no relay relies on being woken: it also looks every few
/// milliseconds, which bounds the delay a lost wake-up causes.
const RELAY_RECHECK: Duration = Duration::from_millis(2);

/// Where the node's reply for a connection goes.
pub enum ReplyTo {
    /// A connection of this executor: its own mailbox.
    Local(Mailbox<Reply>),
    /// A connection of another executor: that executor's outgoing batch.
    Remote(Mailbox<(ConnId, Reply)>),
}

impl ReplyTo {
    /// Queues `reply`; never full (a connection waits for every reply it
    /// is owed, and an executor's batches for every connection's).
    pub fn push(&self, conn: ConnId, reply: Reply) {
        let _ = match self {
            ReplyTo::Local(mailbox) => mailbox.try_push(reply).map_err(drop),
            ReplyTo::Remote(mailbox) => mailbox.try_push((conn, reply)).map_err(drop),
        };
    }
}

/// The connections an executor answers, by number.
pub type Connections = Rc<RefCell<BTreeMap<ConnId, ReplyTo>>>;

/// The accept loops' counters, shared by every executor.
pub struct ClientCounters {
    /// Connections accepted (INFO's total_connections_received).
    pub received: AtomicU64,
    /// Connections accepted by each executor (INFO's
    /// executor_connections_received): how the kernel spreads them.
    pub by_executor: Vec<AtomicU64>,
    /// Connections refused for `--max-clients` (INFO's rejected_connections).
    pub rejected: AtomicU64,
    /// The last connection number handed out: numbers are unique across
    /// executors and ports.
    pub last_conn: AtomicU64,
    /// Connections open now, on every executor (checked against
    /// `--max-clients`).
    pub open: AtomicUsize,
}

impl ClientCounters {
    pub fn new(executors: usize) -> ClientCounters {
        ClientCounters {
            received: AtomicU64::new(0),
            by_executor: (0..executors).map(|_| AtomicU64::new(0)).collect(),
            rejected: AtomicU64::new(0),
            last_conn: AtomicU64::new(0),
            open: AtomicUsize::new(0),
        }
    }

    /// A connection accepted by `executor`.
    pub fn accepted(&self, executor: usize) {
        self.received.fetch_add(1, Ordering::Relaxed);
        if let Some(count) = self.by_executor.get(executor) {
            count.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn next_conn(&self) -> ConnId {
        ConnId(self.last_conn.fetch_add(1, Ordering::Relaxed) + 1)
    }
}

/// Executor k's ends of its two channels, made on executor 0 and moved to
/// executor k's thread.
pub struct HelperEnds {
    to_node: SharedSender<Vec<Event>>,
    from_node: SharedReceiver<Vec<(ConnId, Reply)>>,
}

/// Executor 0's ends of executor k's channels.
pub struct NodeEnds {
    from_helper: SharedReceiver<Vec<Event>>,
    to_helper: SharedSender<Vec<(ConnId, Reply)>>,
}

/// A pair of channels between executor 0 and a client executor.
pub fn channels() -> (NodeEnds, HelperEnds) {
    let (to_node, from_helper) = shared_channel::new_bounded(CHANNEL_BATCHES);
    let (to_helper, from_node) = shared_channel::new_bounded(CHANNEL_BATCHES);
    (NodeEnds { from_helper, to_helper }, HelperEnds { to_node, from_node })
}

/// On executor 0: relays a client executor's events into the node's
/// mailbox (registering its connections so their replies go back to it),
/// and the node's replies for its connections back to it.
pub async fn serve_helper_on_node(ends: NodeEnds, events: Mailbox<Event>, connections: Connections) {
    let from_helper = ends.from_helper.connect().await;
    let to_helper = ends.to_helper.connect().await;
    let outgoing: Mailbox<(ConnId, Reply)> = Mailbox::new(usize::MAX);
    glommio::spawn_local(relay_batches(outgoing.clone(), to_helper)).detach();
    while let Some(batch) = receive(&from_helper).await {
        for event in batch {
            if let Event::Opened(conn, _) = &event {
                connections.borrow_mut().insert(*conn, ReplyTo::Remote(outgoing.clone()));
            }
            events.push(event).await;
        }
    }
}

/// On a client executor: relays its connections' events to executor 0,
/// and hands each reply that comes back to its connection. Returns when
/// executor 0 is gone.
pub async fn serve_node_on_helper(ends: HelperEnds, events: Mailbox<Event>, connections: Connections) {
    let to_node = ends.to_node.connect().await;
    let from_node = ends.from_node.connect().await;
    glommio::spawn_local(relay_batches(events, to_node)).detach();
    while let Some(batch) = receive(&from_node).await {
        let connections = connections.borrow();
        for (conn, reply) in batch {
            if let Some(to) = connections.get(&conn) {
                to.push(conn, reply);
            }
        }
    }
}

/// The next batch from `receiver`, `None` once the other end is gone;
/// woken by the channel or, failing that, by a look every
/// [`RELAY_RECHECK`] (`recv` only polls the queue: dropping it loses
/// nothing).
pub(super) async fn receive<T: Send + Sized>(receiver: &ConnectedReceiver<T>) -> Option<T> {
    loop {
        let next = async { Some(receiver.recv().await) };
        let recheck = async {
            glommio::timer::sleep(RELAY_RECHECK).await;
            None
        };
        if let Some(received) = futures_lite::future::or(next, recheck).await {
            return received;
        }
    }
}

/// Sends whatever queued up in `mailbox` as one batch, again and again,
/// until the other end is gone. A full channel is retried every
/// [`RELAY_RECHECK`] rather than waited on (see there).
pub(super) async fn relay_batches<T: Send + 'static>(mailbox: Mailbox<T>, sender: ConnectedSender<Vec<T>>) {
    loop {
        let mut batch = mailbox.take_all().await;
        loop {
            match sender.try_send(batch) {
                Ok(()) => break,
                Err(GlommioError::WouldBlock(ResourceType::Channel(back))) => {
                    batch = back;
                    glommio::timer::sleep(RELAY_RECHECK).await;
                }
                Err(_) => return, // the other end is gone
            }
        }
    }
}
