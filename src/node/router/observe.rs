//! What a member shows an operator of its groups: each group's state
//! (INFO cluster's lines and `/metrics`), counters of what happened to it
//! (elections, leader changes, snapshot transfers), and readiness probes
//! (`/ready`).
//!
//! The counters are observed, not kept by Raft: after each output the
//! router compares a group's term, role and leader with what it saw last,
//! and counts the snapshot chunks that start a transfer as they leave and
//! arrive. An election that starts and is won between two outputs counts
//! once, as it should; a term of its own that a candidate passes through
//! unseen between two outputs is not counted.

use super::{core_of, GroupId, Router};
use crate::node::metrics::{Family, Kind};
use crate::node::{Node, NodeMessage};
use crate::raft::{MessageKind, NodeId, Role};
use std::collections::{BTreeMap, BTreeSet};

/// What happened to one group's replica on this member since it started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GroupCounters {
    /// Elections this replica stood in (it campaigned in a new term).
    pub elections: u64,
    /// Times the leader it knows changed to another member (or to a first one).
    pub leader_changes: u64,
    /// Snapshot transfers it started as leader (first chunks sent).
    pub snapshots_sent: u64,
    /// Snapshot transfers it was sent (first chunks received).
    pub snapshots_received: u64,
    /// The term and leader seen at the last look.
    seen_term: u64,
    seen_leader: Option<NodeId>,
}

/// One group as this member sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupState {
    pub role: Role,
    pub leader: Option<NodeId>,
    pub term: u64,
    pub commit: u64,
    pub applied: u64,
    pub voters: usize,
    pub learners: usize,
    pub keys: usize,
    /// Led quietly (no heartbeats while idle).
    pub quiet: bool,
    /// This member holds a replica of it (`Router::holds`).
    pub replica: bool,
    pub core: u32,
    pub counters: GroupCounters,
}

/// Readiness probes waiting: per probe, the groups still to answer and the
/// first failure.
pub(super) type Probes = BTreeMap<u64, (BTreeSet<GroupId>, Option<String>)>;

impl Router {
    /// `group`'s state, from this router's replica.
    pub(super) fn group_state(&self, group: GroupId, node: &Node) -> GroupState {
        let raft = node.raft();
        let membership = raft.membership();
        GroupState {
            role: raft.role(),
            leader: self.leader_of(group),
            term: raft.term().0,
            commit: raft.commit().0,
            applied: raft.applied().0,
            voters: membership.voters.len(),
            learners: membership.learners.len(),
            keys: node.store().key_counts(self.now_ms).keys,
            quiet: raft.is_quiet(),
            replica: self.holds(group),
            core: core_of(group, self.cores),
            counters: self.counters.get(&group).copied().unwrap_or_default(),
        }
    }

    /// Every group's state: this core's own, and the other cores' as they
    /// last reported them.
    pub(super) fn group_states(&self) -> Vec<(GroupId, GroupState)> {
        let state = |(group, node): (&GroupId, &Node)| {
            let reported = self.reports.get(&core_of(*group, self.cores)).and_then(|r| r.groups.get(group));
            match reported {
                Some((state, _)) if !self.mine(*group) => (*group, state.clone()),
                _ => (*group, self.group_state(*group, node)),
            }
        };
        self.groups.iter().map(state).collect()
    }

    /// A group's INFO cluster line: its role, leader, term, commit and
    /// applied indexes, voters, learners, keys, whether it is quiet here,
    /// whether this member holds a replica of it, and with several cores
    /// the core it runs on.
    pub(super) fn group_line(&self, state: &GroupState) -> String {
        let name = |l: NodeId| match self.home_directory().members.get(&l) {
            Some(info) => info.name.clone(),
            None => format!("node{l}"),
        };
        let leader = state.leader.map_or_else(|| "-".to_string(), name);
        let mut line = format!(
            "role={},leader={leader},term={},commit={},applied={},voters={},learners={},keys={},quiet={},replica={}",
            format!("{:?}", state.role).to_ascii_lowercase(),
            state.term,
            state.commit,
            state.applied,
            state.voters,
            state.learners,
            state.keys,
            u8::from(state.quiet),
            if state.replica { "yes" } else { "no" },
        );
        if self.cores > 1 {
            line.push_str(&format!(",core={}", state.core));
        }
        line
    }

    /// Looks at `group` after its output was taken (see the module docs);
    /// that output started `snapshot_starts` snapshot transfers.
    pub(super) fn observe(&mut self, group: GroupId, snapshot_starts: u64) {
        let Some(node) = self.groups.get(&group) else { return };
        let raft = node.raft();
        let (term, role, leader) = (raft.term().0, raft.role(), raft.leader());
        let counters = self.counters.entry(group).or_default();
        if term > counters.seen_term && matches!(role, Role::Candidate | Role::Leader) {
            counters.elections += 1;
        }
        if leader.is_some() && leader != counters.seen_leader {
            counters.leader_changes += 1;
            counters.seen_leader = leader;
        }
        counters.seen_term = term;
        counters.snapshots_sent += snapshot_starts;
    }

    /// A message for `group` arrived (`Router::step`).
    pub(super) fn observe_arrival(&mut self, group: GroupId, message: &NodeMessage) {
        if starts_snapshot(message) {
            self.counters.entry(group).or_default().snapshots_received += 1;
        }
    }

    /// Starts readiness probe `n` in every group of this core this member
    /// holds a replica of (`Node::probe_readiness`); its answer comes from
    /// `take_readiness` once every one has answered.
    pub fn probe_readiness(&mut self, n: u64) {
        let groups: BTreeSet<GroupId> =
            self.groups.keys().copied().filter(|g| self.mine(*g) && self.holds(*g)).collect();
        for group in &groups {
            if let Some(node) = self.node_mut(*group) {
                node.probe_readiness(n);
            }
        }
        self.probes.insert(n, (groups, None));
    }

    /// A group answered probe `n`.
    pub(super) fn readiness_answered(&mut self, group: GroupId, n: u64, answer: Result<(), String>) {
        let Some((waiting, failed)) = self.probes.get_mut(&n) else { return };
        waiting.remove(&group);
        if let (Err(why), None) = (answer, &failed) {
            *failed = Some(format!("group {}: {why}", group.0));
        }
        if waiting.is_empty() {
            let (_, failed) = self.probes.remove(&n).expect("found above");
            let answer = match failed {
                Some(why) => Err(why),
                None => self.reported_groups_ready(),
            };
            self.probes_done.push((n, answer));
        }
    }

    /// The probes answered since the last call: ready, or why not. A
    /// member is ready when every group of this core it holds a replica
    /// of has passed its probe, and every group of its other cores it
    /// holds a replica of knew a leader and had applied its commit index
    /// at that core's last report.
    pub fn take_readiness(&mut self) -> Vec<(u64, Result<(), String>)> {
        std::mem::take(&mut self.probes_done)
    }

    fn reported_groups_ready(&self) -> Result<(), String> {
        for report in self.reports.values() {
            for (group, (state, _)) in &report.groups {
                if !state.replica {
                    continue;
                }
                if state.leader.is_none() {
                    return Err(format!("group {}: no leader known", group.0));
                }
                if state.applied < state.commit {
                    return Err(format!(
                        "group {}: applied index {} is behind commit index {}",
                        group.0, state.applied, state.commit
                    ));
                }
            }
        }
        Ok(())
    }

    /// What this member knows of itself and its groups, as metric families
    /// (the shell adds its own).
    pub fn metrics(&self) -> Vec<Family> {
        let mut families =
            if self.shards > 1 { self.stats.families() } else { self.home().own_command_stats().families() };
        let gauge = |name, help, value: usize| Family::single(name, Kind::Gauge, help, value as f64);
        let counter = |name, help, value: u64| Family::single(name, Kind::Counter, help, value as f64);
        families.push(gauge(
            "cashe_connected_clients",
            "Client connections open.",
            self.home().client_count(),
        ));
        let keys = self.keyspace();
        families.push(gauge(
            "cashe_keys",
            "Keys held in the key groups this member holds a replica of.",
            keys.keys,
        ));
        families.push(gauge("cashe_keys_expiring", "Of those keys, the ones with a TTL.", keys.expires));
        let (sent, received) = self.message_counts();
        families.push(counter(
            "cashe_peer_messages_sent_total",
            "Raft and routing messages sent to other members.",
            sent,
        ));
        families.push(counter(
            "cashe_peer_messages_received_total",
            "Raft and routing messages received from other members.",
            received,
        ));
        let (awake, quiet) = self.activity();
        families.push(gauge(
            "cashe_raft_groups_awake",
            "Groups ticked on every tick (the others are dormant).",
            awake,
        ));
        families.push(gauge(
            "cashe_raft_groups_led_quietly",
            "Groups this member leads without heartbeats.",
            quiet,
        ));
        families.extend(group_families(&self.group_states()));
        families
    }
}

/// The per-group families, labelled `group`.
fn group_families(states: &[(GroupId, GroupState)]) -> Vec<Family> {
    type Field = fn(&GroupState) -> f64;
    let fields: [(&'static str, Kind, &'static str, Field); 15] = [
        ("cashe_raft_term", Kind::Gauge, "The group's current Raft term here.", |s| s.term as f64),
        ("cashe_raft_is_leader", Kind::Gauge, "1 if this member leads the group.", |s| {
            f64::from(u8::from(s.role == Role::Leader))
        }),
        ("cashe_raft_leader_known", Kind::Gauge, "1 if this member knows the group's leader.", |s| {
            f64::from(u8::from(s.leader.is_some()))
        }),
        ("cashe_raft_commit_index", Kind::Gauge, "The group's commit index as this member knows it.", |s| {
            s.commit as f64
        }),
        ("cashe_raft_applied_index", Kind::Gauge, "The last index applied to this member's replica.", |s| {
            s.applied as f64
        }),
        ("cashe_raft_voters", Kind::Gauge, "Voters in the group's membership.", |s| s.voters as f64),
        ("cashe_raft_learners", Kind::Gauge, "Learners in the group's membership.", |s| s.learners as f64),
        ("cashe_raft_replica", Kind::Gauge, "1 if this member holds a replica of the group.", |s| {
            f64::from(u8::from(s.replica))
        }),
        ("cashe_raft_quiet", Kind::Gauge, "1 if the group is led quietly (idle, no heartbeats).", |s| {
            f64::from(u8::from(s.quiet))
        }),
        ("cashe_raft_core", Kind::Gauge, "The executor the group runs on.", |s| f64::from(s.core)),
        ("cashe_group_keys", Kind::Gauge, "Keys in this member's copy of the group.", |s| s.keys as f64),
        ("cashe_raft_elections_total", Kind::Counter, "Elections this replica stood in.", |s| {
            s.counters.elections as f64
        }),
        (
            "cashe_raft_leader_changes_total",
            Kind::Counter,
            "Times the leader this replica knows changed.",
            |s| s.counters.leader_changes as f64,
        ),
        (
            "cashe_raft_snapshots_sent_total",
            Kind::Counter,
            "Snapshot transfers this replica started as leader.",
            |s| s.counters.snapshots_sent as f64,
        ),
        (
            "cashe_raft_snapshots_received_total",
            Kind::Counter,
            "Snapshot transfers sent to this replica.",
            |s| s.counters.snapshots_received as f64,
        ),
    ];
    fields
        .iter()
        .map(|(name, kind, help, value)| {
            let mut family = Family::new(name, *kind, help);
            for (group, state) in states {
                family.add(&[("group", &group.0.to_string())], value(state));
            }
            family
        })
        .collect()
}

/// The first chunk of a snapshot transfer.
pub(super) fn starts_snapshot(message: &NodeMessage) -> bool {
    matches!(message, NodeMessage::Raft(m) if matches!(m.kind, MessageKind::InstallSnapshot { offset: 0, .. }))
}
