//! An in-memory shell for the Raft core: what a production shell does with
//! `Output`, minus the IO. Shared by the unit specification
//! (`tests/raft.rs`), the model checker (`tests/model.rs`) and the simulator
//! (`sim/`), so all three drive the core the same way.
//!
//! Records go to an unsynced buffer until `sync` makes them durable (and
//! calls `persisted`), messages are handed to the caller, applied entries are
//! recorded. `crash_and_restart` keeps only the durable records, exactly like
//! a disk that lost its page cache. Pure and deterministic like the core.

use super::{
    Apply, Config, Entry, Index, Lsn, Message, NodeId, Raft, ReadState, Record, Recovered, Snapshot,
};

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Replica {
    pub raft: Raft,
    /// Handed out but not yet fsynced.
    pub unsynced: Vec<(Lsn, Record)>,
    /// What survives a crash.
    pub durable: Recovered,
    pub boots: u64,
    /// Entries this boot applied, starting after the restored snapshot.
    pub applied: Vec<Entry>,
    /// Snapshots applied through `Output::apply` this boot.
    pub restored: Vec<Snapshot>,
    pub reads: Vec<ReadState>,
}

/// The seed for a node's generator: differs per node and per boot.
pub fn node_seed(run_seed: u64, id: NodeId, boots: u64) -> u64 {
    run_seed ^ id.0.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ boots.wrapping_mul(0xD1B5_4A32_D192_ED03)
}

impl Replica {
    pub fn new(config: Config, run_seed: u64, recovered: Recovered) -> Replica {
        let seed = node_seed(run_seed, config.id, 0);
        let raft = Raft::restore(config, seed, recovered.clone()).expect("valid config");
        let mut replica = Replica {
            raft,
            unsynced: Vec::new(),
            durable: recovered,
            boots: 0,
            applied: Vec::new(),
            restored: Vec::new(),
            reads: Vec::new(),
        };
        replica.drain();
        replica
    }

    pub fn id(&self) -> NodeId {
        self.raft.id()
    }

    /// Takes the core's output: records to the unsynced buffer, applied
    /// entries and reads to their logs, snapshots to the durable state (a
    /// compaction snapshot is written synchronously here). Returns the
    /// messages to send.
    pub fn drain(&mut self) -> Vec<(NodeId, Message)> {
        let output = self.raft.take_output();
        self.unsynced.extend(output.persist);
        for apply in output.apply {
            match apply {
                Apply::Entry(entry) => self.applied.push(entry),
                Apply::Snapshot(snapshot) => self.restored.push(snapshot),
            }
        }
        self.reads.extend(output.reads);
        if let Some(snapshot) = output.snapshot {
            self.durable.install_snapshot(snapshot);
        }
        let mut send = output.send;
        // The core released its snapshot and a follower needs it: hand it
        // back from the disk, as a state machine would make it again.
        if self.raft.wants_snapshot() {
            if let Some(snapshot) = self.durable.snapshot.clone() {
                self.raft.compact(snapshot.meta.index, snapshot.data.to_vec(), 0);
                send.extend(self.drain());
            }
        }
        send
    }

    /// fsync: every unsynced record becomes durable, then `persisted`.
    pub fn sync(&mut self) -> Vec<(NodeId, Message)> {
        let Some((last, _)) = self.unsynced.last().cloned() else { return Vec::new() };
        for (_, record) in self.unsynced.drain(..) {
            self.durable.apply(record).expect("the core hands out a consistent record stream");
        }
        self.raft.persisted(last);
        self.drain()
    }

    /// Loses everything not durable and restarts from disk.
    pub fn crash_and_restart(&mut self, run_seed: u64) {
        self.boots += 1;
        let config = self.raft.config().clone();
        let seed = node_seed(run_seed, config.id, self.boots);
        self.raft = Raft::restore(config, seed, self.durable.clone()).expect("valid config");
        self.unsynced.clear();
        self.applied.clear();
        self.restored.clear();
        self.reads.clear();
        self.drain();
    }

    /// The index of the last applied entry this boot.
    pub fn applied_index(&self) -> Index {
        self.raft.applied()
    }
}
