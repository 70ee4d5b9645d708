//! Log replication (Raft paper §5.3), commitment (§5.4.2), heartbeats,
//! check-quorum (dissertation §6.2) and snapshots (§5 of the dissertation,
//! chunked InstallSnapshot).

use super::message::{AppendResult, ConflictHint, MessageKind};
use super::progress::{Progress, ReplicationState};
use super::read::ReadQueue;
use super::{Entry, IncomingSnapshot, Index, LeaderState, NodeId, Payload, PlantedBug, Raft};
use super::{Record, RoleState, Snapshot, SnapshotMeta, Term};
use std::collections::{BTreeMap, BTreeSet};

impl Raft {
    pub(super) fn become_leader(&mut self) {
        tracing::info!(id = %self.id(), term = %self.term, "became leader");
        let next = self.log.last_index().next();
        let id = self.id();
        let progress: BTreeMap<NodeId, Progress> =
            self.membership().members().filter(|m| *m != id).map(|m| (m, Progress::new(next))).collect();
        self.role = RoleState::Leader(Box::new(LeaderState {
            progress,
            term_start: next,
            heartbeat_elapsed: 0,
            reads: ReadQueue::default(),
            transfer: None,
            settled_rounds: 0,
            quiet: false,
            heard_last_period: BTreeSet::new(),
            append_due: false,
        }));
        self.leader = Some(id);
        self.election_elapsed = 0;
        // §5.4.2 / §8: commit something of our own term before anything older
        // can count as committed, and before serving reads.
        let noop = Entry { term: self.term, index: next, payload: Payload::Noop };
        self.append_to_log([noop]);
        self.broadcast_append();
    }

    pub(super) fn leader_state(&mut self) -> &mut LeaderState {
        match &mut self.role {
            RoleState::Leader(state) => state,
            _ => unreachable!("leader-only path on a non-leader"),
        }
    }

    pub(super) fn tick_leader(&mut self) {
        let heartbeat_ticks = self.config.heartbeat_ticks;
        let lease_ticks = self.config.lease_ticks();
        let state = self.leader_state();
        state.reads.tick(lease_ticks);
        if state.quiet {
            return;
        }
        state.heartbeat_elapsed += 1;
        let heartbeat_due = state.heartbeat_elapsed >= heartbeat_ticks;
        if heartbeat_due {
            state.heartbeat_elapsed = 0;
        }
        self.election_elapsed += 1;
        if self.election_elapsed >= self.config.election_ticks {
            self.election_elapsed = 0;
            let step_down_planted_off = self.config.planted_bug.active(PlantedBug::NoCheckQuorumStepDown);
            if self.config.check_quorum && !self.quorum_recently_active() && !step_down_planted_off {
                tracing::warn!(id = %self.id(), term = %self.term, "lost contact with a quorum; stepping down");
                self.become_follower(self.term, None);
                return;
            }
        }
        self.tick_transfer();
        if heartbeat_due && !self.quiesce_if_settled() {
            // Only a heartbeat that leaves starts a lease round: one that
            // never left would hold up every later read round.
            self.leader_state().reads.start_lease_round_if_idle(lease_ticks);
            self.broadcast_heartbeat();
        }
        self.maybe_promote_learner();
    }

    /// Check-quorum: counts voters heard from since the last check, then
    /// starts a new period.
    fn quorum_recently_active(&mut self) -> bool {
        let id = self.id();
        let membership = self.membership().clone();
        let state = self.leader_state();
        let mut active = usize::from(membership.is_voter(id));
        state.heard_last_period.clear();
        for (peer, progress) in state.progress.iter_mut() {
            if progress.recent_active {
                active += usize::from(membership.is_voter(*peer));
                state.heard_last_period.insert(*peer);
            }
            progress.recent_active = false;
        }
        active >= membership.quorum()
    }

    pub(super) fn broadcast_heartbeat(&mut self) {
        let commit = self.commit;
        let state = self.leader_state();
        let round = state.reads.round();
        let targets: Vec<(NodeId, Index)> =
            state.progress.iter().map(|(id, p)| (*id, p.match_index.min(commit))).collect();
        for (peer, commit) in targets {
            self.send(peer, MessageKind::Heartbeat { commit, read_round: round });
        }
    }

    /// Sends whatever each follower is ready to receive.
    pub(super) fn broadcast_append(&mut self) {
        let peers: Vec<NodeId> = self.leader_state().progress.keys().copied().collect();
        for peer in peers {
            self.send_appends(peer);
        }
    }

    /// Fills `peer`'s pipeline: in replicate state as many appends as the
    /// window allows, in probe state one (possibly empty) probe.
    pub(super) fn send_appends(&mut self, peer: NodeId) {
        let window = self.config.inflight_appends_max;
        for _ in 0..window {
            if !self.send_append(peer) {
                break;
            }
        }
    }

    /// Sends one append to `peer` if it is not paused and there is something
    /// to say. Returns whether a message was sent.
    fn send_append(&mut self, peer: NodeId) -> bool {
        let (count_max, bytes_max, window) =
            (self.config.append_entries_max, self.config.append_bytes_max, self.config.inflight_appends_max);
        let commit = self.commit;
        let last_index = self.log.last_index();
        let Some(progress) = self.leader_state().progress.get(&peer) else { return false };
        if progress.is_paused(window) {
            return false;
        }
        let probing = progress.state == ReplicationState::Probe;
        let next = progress.next_index;
        if !probing && next > last_index {
            return false;
        }
        let prev_index = next.prev();
        let Some(prev_term) = self.log.term(prev_index) else {
            self.start_snapshot(peer);
            return true;
        };
        let entries = self.log.slice(next, count_max, bytes_max);
        let last = entries.last().map(|e| e.index);
        let progress = self.leader_state().progress.get_mut(&peer).expect("checked above");
        progress.on_sent(last);
        self.send(peer, MessageKind::Append { prev_index, prev_term, entries, commit });
        true
    }

    /// The leader's own append path: entries of the current term.
    pub(super) fn append_as_leader(&mut self, payloads: Vec<Payload>) -> (Index, Term) {
        let first = self.log.last_index().next();
        let term = self.term;
        let entries: Vec<Entry> = payloads
            .into_iter()
            .enumerate()
            .map(|(k, payload)| Entry { term, index: Index(first.0 + k as u64), payload })
            .collect();
        self.append_to_log(entries);
        // A quiet leader wakes for its new entries now, not when
        // `take_output` sends them.
        self.wake();
        self.leader_state().append_due = true;
        (self.log.last_index(), term)
    }

    pub(super) fn on_append(
        &mut self,
        from: NodeId,
        prev_index: Index,
        prev_term: Term,
        entries: Vec<Entry>,
        commit: Index,
    ) {
        self.follow(from);
        if !self.is_leader_message_acceptable() {
            return;
        }
        if prev_index < self.commit {
            // Everything through our commit index matches any leader's log
            // (leader completeness); tell the leader where we stand.
            let match_index = self.commit;
            self.send_durable(from, MessageKind::AppendResponse(AppendResult::Accepted { match_index }));
            return;
        }
        if !self.log.matches(prev_index, prev_term) {
            let last_index = self.log.last_index();
            let conflict = (prev_index <= last_index).then(|| ConflictHint {
                term: self.log.term(prev_index).expect("within the log"),
                first_index: self.log.first_index_of_term_at(prev_index),
            });
            let result = AppendResult::Rejected { rejected: prev_index, last_index, conflict };
            self.send(from, MessageKind::AppendResponse(result));
            return;
        }
        let last_new = Index(prev_index.0 + entries.len() as u64);
        let mut fresh = Vec::new();
        for entry in entries {
            match self.log.term(entry.index) {
                Some(term) if term == entry.term && fresh.is_empty() => {}
                Some(_) if fresh.is_empty() => {
                    self.truncate_log(entry.index);
                    fresh.push(entry);
                }
                _ => fresh.push(entry),
            }
        }
        self.append_to_log(fresh);
        self.advance_follower_commit(commit.min(last_new));
        self.send_durable(
            from,
            MessageKind::AppendResponse(AppendResult::Accepted { match_index: last_new }),
        );
    }

    /// A follower whose snapshot is still being made durable cannot take
    /// entries after it yet; the leader will retry.
    fn is_leader_message_acceptable(&self) -> bool {
        self.pending_restore.is_none()
    }

    pub(super) fn advance_follower_commit(&mut self, commit: Index) {
        if commit > self.commit {
            self.commit = commit;
            self.apply_committed();
        }
    }

    pub(super) fn on_heartbeat(&mut self, from: NodeId, commit: Index, read_round: u64) {
        self.follow(from);
        // The leader sends min(match, commit), so this never passes our log.
        self.advance_follower_commit(commit.min(self.log.last_index()));
        self.send(from, MessageKind::HeartbeatResponse { read_round });
    }

    pub(super) fn on_append_response(&mut self, from: NodeId, result: AppendResult) {
        let last_index = self.log.last_index();
        let RoleState::Leader(state) = &mut self.role else { return };
        let Some(progress) = state.progress.get_mut(&from) else { return };
        progress.recent_active = true;
        match result {
            AppendResult::Accepted { match_index } => {
                let match_index = match_index.min(last_index);
                if progress.on_accepted(match_index) {
                    self.maybe_commit();
                }
                self.on_transfer_target_progress(from);
            }
            AppendResult::Rejected { rejected, last_index, conflict } => {
                let hint = match conflict {
                    Some(hint) => hint.first_index.min(last_index.next()),
                    None => last_index.next(),
                };
                if !progress.on_rejected(rejected, hint) {
                    return;
                }
            }
        }
        if self.is_leader() {
            self.send_appends(from);
        }
    }

    pub(super) fn on_heartbeat_response(&mut self, from: NodeId, read_round: u64) {
        let last_index = self.log.last_index();
        let RoleState::Leader(state) = &mut self.role else { return };
        let Some(progress) = state.progress.get_mut(&from) else { return };
        progress.on_heartbeat_response();
        progress.read_round = progress.read_round.max(read_round);
        let behind = progress.match_index < last_index;
        let all_sent = progress.next_index > last_index;
        match progress.state {
            ReplicationState::Snapshot { .. } => self.send_snapshot_chunk(from),
            // Everything was sent but not all acknowledged: the appends may
            // have been lost. An empty append at our last entry finds out —
            // the follower acknowledges it once durable, or rejects it and
            // the rejection sends us back to probing (§5.3: retry until the
            // follower has every entry).
            ReplicationState::Replicate if behind && all_sent => {
                let kind = MessageKind::Append {
                    prev_index: last_index,
                    prev_term: self.log.last_term(),
                    entries: vec![],
                    commit: self.commit,
                };
                self.send(from, kind);
            }
            _ if behind => self.send_appends(from),
            _ => {}
        }
        self.confirm_reads();
    }

    /// Commits the highest index stored durably on a quorum of voters, if
    /// it is of the current term (§5.4.2: never count replicas of an older
    /// term's entry). The leader counts itself only for durable entries.
    pub(super) fn maybe_commit(&mut self) {
        let id = self.id();
        let durable = self.durable_index;
        let membership = self.membership().clone();
        let RoleState::Leader(state) = &self.role else { return };
        let mut matched: Vec<Index> =
            membership
                .voters
                .iter()
                .map(|v| {
                    if *v == id {
                        durable
                    } else {
                        state.progress.get(v).map_or(Index(0), |p| p.match_index)
                    }
                })
                .collect();
        matched.sort_unstable_by(|a, b| b.cmp(a));
        let candidate = matched[membership.quorum() - 1];
        if candidate <= self.commit {
            return;
        }
        let current_term = self.log.term(candidate) == Some(self.term);
        if !current_term && !self.config.planted_bug.active(PlantedBug::CommitOldTerm) {
            return;
        }
        self.commit = candidate;
        self.apply_committed();
        self.on_leader_commit_advanced();
    }

    fn on_leader_commit_advanced(&mut self) {
        self.release_reads_waiting_for_term_commit();
        if self.step_down_if_removed() {
            return;
        }
        // Followers learn the new commit index without waiting for a heartbeat.
        let commit = self.commit;
        let last_index = self.log.last_index();
        let last_term = self.log.last_term();
        let state = self.leader_state();
        let up_to_date: Vec<NodeId> = state
            .progress
            .iter()
            .filter(|(_, p)| p.state == ReplicationState::Replicate && p.next_index > last_index)
            .map(|(id, _)| *id)
            .collect();
        for peer in up_to_date {
            let kind =
                MessageKind::Append { prev_index: last_index, prev_term: last_term, entries: vec![], commit };
            self.send(peer, kind);
        }
    }

    // ----- snapshots ----------------------------------------------------

    /// The state machine's state at `index` (already applied) is `data`:
    /// hand the snapshot to the shell and compact the log, keeping the
    /// `retain` entries up to `index` in memory. A follower a little behind
    /// (a pipelined window in flight, a pause to write its own snapshot)
    /// then still gets entries from the log instead of the whole snapshot.
    pub fn compact(&mut self, index: Index, data: Vec<u8>, retain: u64) {
        assert!(index <= self.applied, "snapshot at {index} beyond applied {}", self.applied);
        let again = index == self.snapshot_index && self.snapshot.is_none();
        if index <= self.snapshot_index && !again {
            return;
        }
        let term = self.log.term(index).expect("applied entries are in the log");
        let membership = self.membership_at(index);
        let snapshot = Snapshot { meta: SnapshotMeta { index, term, membership }, data: data.into() };
        self.snapshot_wanted = false;
        if again {
            // The released newest snapshot, made again for a follower; the
            // disk already has it.
            self.snapshot = Some(snapshot);
            self.send_waiting_snapshots();
            return;
        }
        self.snapshot_index = index;
        let point = Index(index.0.saturating_sub(retain));
        if point > self.log.snapshot_index() {
            self.log.compact_to(point);
            let keep_from = self.memberships.iter().rposition(|(i, _)| *i <= point).unwrap_or(0);
            self.memberships.drain(..keep_from);
            self.memberships[0].0 = self.memberships[0].0.max(point);
        }
        self.snapshot = Some(snapshot.clone());
        self.output.snapshot = Some(snapshot);
        self.send_waiting_snapshots();
    }

    /// Starts (or restarts, with the newest snapshot) every follower that
    /// waits for a snapshot.
    fn send_waiting_snapshots(&mut self) {
        for peer in self.peers_in_snapshot_state() {
            self.send_snapshot_chunk(peer);
        }
    }

    /// The followers being sent a snapshot (or waiting for one); none
    /// unless this node leads.
    fn peers_in_snapshot_state(&self) -> Vec<NodeId> {
        let RoleState::Leader(state) = &self.role else { return Vec::new() };
        let in_snapshot =
            |(_, p): &(&NodeId, &Progress)| matches!(p.state, ReplicationState::Snapshot { .. });
        state.progress.iter().filter(in_snapshot).map(|(id, _)| *id).collect()
    }

    /// Drops the held snapshot once no follower is being sent it.
    pub(super) fn release_snapshot_if_unused(&mut self) {
        if self.peers_in_snapshot_state().is_empty() {
            self.snapshot = None;
        }
        if !self.is_leader() {
            self.snapshot_wanted = false;
        }
    }

    fn membership_at(&self, index: Index) -> super::Membership {
        let (_, m) = self.memberships.iter().rev().find(|(i, _)| *i <= index).unwrap_or(&self.memberships[0]);
        m.clone()
    }

    fn start_snapshot(&mut self, peer: NodeId) {
        let index = self.snapshot_index;
        tracing::info!(id = %self.id(), %peer, %index, "follower needs a snapshot");
        if self.snapshot.is_none() {
            // Released: the state machine makes it again before the next
            // output (`wants_snapshot`); until then the follower waits.
            self.snapshot_wanted = true;
        }
        if let Some(progress) = self.leader_state().progress.get_mut(&peer) {
            progress.become_snapshot(index);
        }
        self.send_snapshot_chunk(peer);
    }

    fn send_snapshot_chunk(&mut self, peer: NodeId) {
        let chunk_max = self.config.snapshot_chunk_bytes_max;
        let Some(newest) = self.snapshot.as_ref().map(|s| s.meta.index) else { return };
        let Some(progress) = self.leader_state().progress.get_mut(&peer) else { return };
        let ReplicationState::Snapshot { index, offset } = progress.state else { return };
        if index != newest {
            // A newer snapshot replaced the one being sent: start over.
            progress.become_snapshot(newest);
            return self.send_snapshot_chunk(peer);
        }
        // Copy only this chunk (and the metadata), never the whole snapshot.
        let snapshot = self.snapshot.as_ref().expect("checked above");
        let total_bytes = snapshot.data.len() as u64;
        let start = offset.min(total_bytes);
        let end = (start + chunk_max).min(total_bytes);
        let data = snapshot.data[start as usize..end as usize].to_vec();
        let meta = snapshot.meta.clone();
        let kind = MessageKind::InstallSnapshot { meta, total_bytes, offset: start, data };
        self.send(peer, kind);
    }

    pub(super) fn on_install_snapshot(
        &mut self,
        from: NodeId,
        meta: SnapshotMeta,
        total_bytes: u64,
        offset: u64,
        data: Vec<u8>,
    ) {
        self.follow(from);
        let index = meta.index;
        if index <= self.commit {
            let kind = MessageKind::InstallSnapshotResponse { index, next_offset: total_bytes };
            self.send_durable(from, kind);
            return;
        }
        let incoming = self.incoming_snapshot.get_or_insert_with(|| IncomingSnapshot {
            meta: meta.clone(),
            total_bytes,
            data: Vec::new(),
        });
        if offset == 0 && (incoming.meta != meta || incoming.total_bytes != total_bytes) {
            *incoming = IncomingSnapshot { meta: meta.clone(), total_bytes, data: Vec::new() };
        }
        let same = incoming.meta == meta && incoming.total_bytes == total_bytes;
        if same && offset == incoming.data.len() as u64 {
            if offset == 0 {
                // Room for the whole snapshot at once rather than doubling
                // (and copying) its way up; a size no allocator grants (from
                // a confused peer) just means growing as it arrives.
                let _ = incoming.data.try_reserve_exact(usize::try_from(total_bytes).unwrap_or(usize::MAX));
            }
            incoming.data.extend_from_slice(&data);
        }
        let received = if same { incoming.data.len() as u64 } else { 0 };
        if !same || received < total_bytes {
            self.send(from, MessageKind::InstallSnapshotResponse { index, next_offset: received });
            return;
        }
        let incoming = self.incoming_snapshot.take().expect("complete");
        self.install_snapshot(Snapshot { meta: incoming.meta, data: incoming.data.into() });
        self.send_durable(from, MessageKind::InstallSnapshotResponse { index, next_offset: total_bytes });
    }

    /// Replaces the log with a snapshot from the leader (§7). The state
    /// machine gets it through `Output::apply` once it is durable.
    fn install_snapshot(&mut self, snapshot: Snapshot) {
        let meta = &snapshot.meta;
        tracing::info!(id = %self.id(), index = %meta.index, term = %meta.term, "installing snapshot");
        // A suffix after the snapshot survives only if the log holds the
        // snapshot's last entry; otherwise it conflicts and must go, on disk
        // too, before the snapshot record (which keeps entries after it).
        let conflicting_from = meta.index.next().max(self.log.first_index());
        if !self.log.matches(meta.index, meta.term) && self.log.last_index() >= conflicting_from {
            self.persist(Record::Truncate { from: conflicting_from });
        }
        let meta = &snapshot.meta;
        self.log.restore(meta.index, meta.term);
        self.memberships.retain(|(i, _)| *i > meta.index);
        self.memberships.insert(0, (meta.index, meta.membership.clone()));
        self.commit = self.commit.max(meta.index);
        self.durable_index = self.durable_index.min(meta.index);
        for (_, index) in self.pending_durable.iter_mut() {
            *index = (*index).min(meta.index);
        }
        let lsn = self.persist(Record::Snapshot(snapshot.clone()));
        self.pending_durable.push_back((lsn, self.log.last_index()));
        self.snapshot_index = self.snapshot_index.max(meta.index);
        self.pending_restore = Some((lsn, snapshot));
        self.on_membership_maybe_changed();
    }

    pub(super) fn on_install_snapshot_response(&mut self, from: NodeId, index: Index, next_offset: u64) {
        let total = self.snapshot.as_ref().map(|s| s.data.len() as u64);
        let RoleState::Leader(state) = &mut self.role else { return };
        let Some(progress) = state.progress.get_mut(&from) else { return };
        progress.recent_active = true;
        let ReplicationState::Snapshot { index: sending, .. } = progress.state else {
            // The follower was already past this snapshot; an acknowledgement
            // of a durable snapshot still tells us where it stands.
            if Some(next_offset) == total {
                progress.on_accepted(index.min(self.log.last_index()));
            }
            return;
        };
        if sending != index {
            return;
        }
        if Some(next_offset) == total {
            progress.match_index = progress.match_index.max(index);
            progress.next_index = index.next();
            progress.become_probe();
            self.maybe_commit();
            if self.is_leader() {
                self.send_appends(from);
            }
        } else {
            progress.state = ReplicationState::Snapshot { index, offset: next_offset };
            self.send_snapshot_chunk(from);
        }
    }
}
