//! Which members hold a key group's replicas (issue 16's placement).
//!
//! A key group's replicas are `replicas` of the cluster's members (every
//! member when `replicas` is 0 or the cluster has no more), chosen by
//! rendezvous hashing: each member scores each group with a seeded hash of
//! the pair, and a group lives on its highest-scoring members. It is a
//! pure function of the home group's directory, so every member computes
//! the same placement from the same directory without a map of its own to
//! keep, and a member joining or leaving moves only the replicas it gains
//! or loses (about `replicas / members` of each member's groups), never
//! reshuffles the rest.
//!
//! A group's leader moves the group's Raft membership towards its target
//! one single-server change at a time (`Node::membership_change_towards`):
//! a member newly placed joins as a learner, the core promotes it once it
//! holds the committed log, and only when every target member votes is a
//! member placed elsewhere removed, so a group never has fewer voters than
//! its target while it moves. A leader placed elsewhere hands leadership
//! to a target voter first; its successor removes it.

use super::router::GroupId;
use super::Directory;
use crate::raft::{NodeId, SplitMix64};
use std::collections::BTreeSet;

/// The members a key group of the cluster whose members are
/// `directory`'s lives on: the `replicas` highest-scoring (all with 0).
pub fn replicas_of(group: GroupId, directory: &Directory, replicas: u32) -> BTreeSet<NodeId> {
    let live = directory.members.keys().copied().filter(|m| !directory.removed.contains(m));
    let mut scored: Vec<(u64, NodeId)> = live.map(|member| (score(group, member), member)).collect();
    if replicas == 0 || scored.len() <= replicas as usize {
        return scored.into_iter().map(|(_, member)| member).collect();
    }
    // Highest score first; the member number breaks a tie.
    scored.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    scored.into_iter().take(replicas as usize).map(|(_, member)| member).collect()
}

/// The rendezvous score of `member` for `group`: fixed for the pair, so
/// placement never changes with anything but the members.
fn score(group: GroupId, member: NodeId) -> u64 {
    let mut rng = SplitMix64::new((u64::from(group.0) << 32) ^ member.0 ^ 0x706c_6163_6500_0000);
    rng.next_u64();
    rng.next_u64()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::MemberInfo;

    fn directory(members: impl IntoIterator<Item = u64>) -> Directory {
        let mut directory = Directory::default();
        for id in members {
            let info = MemberInfo {
                name: format!("raft{id}"),
                raft_addr: String::new(),
                client_addr: String::new(),
                tls_client_addr: None,
            };
            directory.members.insert(NodeId(id), info);
            directory.last_id = directory.last_id.max(id);
        }
        directory
    }

    fn groups() -> impl Iterator<Item = GroupId> {
        (1..=64).map(GroupId)
    }

    #[test]
    fn every_member_holds_every_group_with_replicas_zero_or_too_few_members() {
        let three = directory(1..=3);
        for group in groups() {
            assert_eq!(replicas_of(group, &three, 0).len(), 3);
            assert_eq!(replicas_of(group, &three, 3).len(), 3);
            assert_eq!(replicas_of(group, &three, 5).len(), 3);
        }
    }

    #[test]
    fn a_joining_member_takes_only_replicas_it_gains_and_a_fair_share() {
        let (before, after) = (directory(1..=4), directory(1..=5));
        let mut held = 0;
        for group in groups() {
            let (old, new) = (replicas_of(group, &before, 3), replicas_of(group, &after, 3));
            assert_eq!((old.len(), new.len()), (3, 3));
            // Whatever changed, it changed to the new member.
            let gone: Vec<&NodeId> = old.difference(&new).collect();
            let came: Vec<&NodeId> = new.difference(&old).collect();
            assert!(came.iter().all(|m| **m == NodeId(5)), "{group:?}: {old:?} -> {new:?}");
            assert_eq!(gone.len(), came.len(), "{group:?}");
            held += usize::from(new.contains(&NodeId(5)));
        }
        // 64 groups × 3 replicas over 5 members: 38.4 each on average.
        assert!((25..=52).contains(&held), "the new member holds {held} of 64 groups");
    }

    #[test]
    fn a_removed_member_holds_nothing_and_its_replicas_go_elsewhere() {
        let mut directory = directory(1..=4);
        let before: Vec<BTreeSet<NodeId>> = groups().map(|g| replicas_of(g, &directory, 3)).collect();
        directory.removed.insert(NodeId(2));
        for (group, old) in groups().zip(before) {
            let new = replicas_of(group, &directory, 3);
            assert!(!new.contains(&NodeId(2)));
            assert_eq!(new.len(), 3);
            let kept: BTreeSet<NodeId> = old.iter().copied().filter(|m| *m != NodeId(2)).collect();
            assert!(kept.is_subset(&new), "{group:?}: only member 2's replica moves");
        }
    }
}
