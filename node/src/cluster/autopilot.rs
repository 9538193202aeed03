//! Membership management on the leader: every live node becomes a learner, live
//! learners are promoted until there are `--voters` voters, and a voter gossip has
//! reported dead for longer than `--dead-voter-grace` is replaced.
//!
//! Pure: the Raft membership and gossip's view go in with the current time, a list of
//! membership changes comes out. One change at a time; the driver performs it and asks
//! again.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use eventide_consensus::{NodeId, NodeInfo};

use crate::gossip::Member;

/// The leader's view of Raft membership.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MembershipView {
    pub voters: BTreeSet<NodeId>,
    /// Every member (voters and learners) with its address.
    pub nodes: BTreeMap<NodeId, NodeInfo>,
    /// True while a joint configuration is being committed.
    pub changing: bool,
    /// Members whose replicated log is close enough to the leader's to vote.
    pub caught_up: BTreeSet<NodeId>,
}

/// A membership change for the driver to perform.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    AddLearner {
        id: NodeId,
        info: NodeInfo,
    },
    /// Make exactly these the voters; voters left out are removed from the cluster.
    SetVoters {
        voters: BTreeSet<NodeId>,
    },
    /// Forget learners that have been dead past the grace period.
    RemoveLearners {
        ids: BTreeSet<NodeId>,
    },
}

/// Remembers since when each member has been missing from gossip.
#[derive(Debug)]
pub struct Autopilot {
    voters_wanted: usize,
    grace: Duration,
    missing_since: BTreeMap<NodeId, Instant>,
}

impl Autopilot {
    pub fn new(voters_wanted: usize, grace: Duration) -> Autopilot {
        Autopilot { voters_wanted, grace, missing_since: BTreeMap::new() }
    }

    /// Forgets what it saw, e.g. when this node stops being leader: a new leader gives
    /// every member a full grace period again.
    pub fn reset(&mut self) {
        self.missing_since.clear();
    }

    /// The next membership change, if any.
    pub fn next_change(
        &mut self,
        membership: &MembershipView,
        members: &[Member],
        now: Instant,
    ) -> Option<Change> {
        let alive: BTreeMap<NodeId, &Member> =
            members.iter().filter(|m| m.alive).map(|m| (m.id, m)).collect();
        self.missing_since.retain(|id, _| membership.nodes.contains_key(id));
        for id in membership.nodes.keys() {
            if alive.contains_key(id) {
                self.missing_since.remove(id);
            } else {
                self.missing_since.entry(*id).or_insert(now);
            }
        }
        if membership.changing {
            return None;
        }
        let dead = |id: &NodeId| {
            self.missing_since.get(id).is_some_and(|since| now.duration_since(*since) >= self.grace)
        };

        // Every live node joins, as a learner first.
        if let Some(member) = alive.values().find(|m| !membership.nodes.contains_key(&m.id)) {
            let info = NodeInfo::new(member.addr.to_string(), member.name.clone());
            return Some(Change::AddLearner { id: member.id, info });
        }

        // Voters: keep those not dead, fill up with live, caught-up learners.
        let mut voters: BTreeSet<NodeId> =
            membership.voters.iter().copied().filter(|id| !dead(id)).collect();
        let candidates = membership.nodes.keys().filter(|id| {
            !membership.voters.contains(id)
                && alive.contains_key(id)
                && membership.caught_up.contains(id)
        });
        for id in candidates {
            if voters.len() >= self.voters_wanted {
                break;
            }
            voters.insert(*id);
        }
        // A dead voter goes only when the change does not shrink the voter set below
        // what is wanted: removing it without a replacement does not help the quorum.
        let removes_dead = voters.len() < membership.voters.len();
        let adds = voters.iter().any(|id| !membership.voters.contains(id));
        if adds || (removes_dead && voters.len() >= self.voters_wanted) {
            return Some(Change::SetVoters { voters });
        }

        let dead_learners: BTreeSet<NodeId> = membership
            .nodes
            .keys()
            .filter(|id| !membership.voters.contains(id) && dead(id))
            .copied()
            .collect();
        if !dead_learners.is_empty() {
            return Some(Change::RemoveLearners { ids: dead_learners });
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::bootstrap::tests::member;

    fn view(voters: &[u64], learners: &[u64]) -> MembershipView {
        let nodes = voters
            .iter()
            .chain(learners)
            .map(|&id| (NodeId(id), NodeInfo::new(format!("127.0.0.1:{}", 7800 + id), "")))
            .collect();
        MembershipView {
            voters: voters.iter().map(|&id| NodeId(id)).collect(),
            nodes,
            changing: false,
            caught_up: voters.iter().chain(learners).map(|&id| NodeId(id)).collect(),
        }
    }

    fn ids(ids: &[u64]) -> BTreeSet<NodeId> {
        ids.iter().map(|&id| NodeId(id)).collect()
    }

    #[test]
    fn a_live_stranger_is_added_as_a_learner() {
        let mut autopilot = Autopilot::new(3, Duration::from_secs(15));
        let members = [member(1, true), member(2, true), member(3, true), member(4, true)];
        let change = autopilot.next_change(&view(&[1, 2, 3], &[]), &members, Instant::now());
        assert_eq!(
            change,
            Some(Change::AddLearner { id: NodeId(4), info: NodeInfo::new("127.0.0.1:7804", "n4") })
        );
    }

    #[test]
    fn learners_are_promoted_up_to_the_wanted_voters() {
        let mut autopilot = Autopilot::new(3, Duration::from_secs(15));
        let members = [member(1, true), member(2, true), member(3, true), member(4, true)];
        let change = autopilot.next_change(&view(&[1], &[2, 3, 4]), &members, Instant::now());
        assert_eq!(change, Some(Change::SetVoters { voters: ids(&[1, 2, 3]) }));
        assert_eq!(autopilot.next_change(&view(&[1, 2, 3], &[4]), &members, Instant::now()), None);
    }

    #[test]
    fn a_learner_still_catching_up_is_not_promoted() {
        let mut autopilot = Autopilot::new(3, Duration::from_secs(15));
        let members = [member(1, true), member(2, true), member(3, true)];
        let mut membership = view(&[1, 2], &[3]);
        membership.caught_up.remove(&NodeId(3));
        assert_eq!(autopilot.next_change(&membership, &members, Instant::now()), None);
    }

    #[test]
    fn a_dead_voter_is_replaced_only_after_the_grace_period() {
        let grace = Duration::from_secs(15);
        let mut autopilot = Autopilot::new(3, grace);
        let members = [member(1, true), member(2, true), member(3, false), member(4, true)];
        let membership = view(&[1, 2, 3], &[4]);
        let start = Instant::now();
        assert_eq!(autopilot.next_change(&membership, &members, start), None);
        assert_eq!(autopilot.next_change(&membership, &members, start + grace / 2), None);
        let change = autopilot.next_change(&membership, &members, start + grace);
        assert_eq!(change, Some(Change::SetVoters { voters: ids(&[1, 2, 4]) }));
    }

    #[test]
    fn a_voter_that_comes_back_in_time_is_kept() {
        let grace = Duration::from_secs(15);
        let mut autopilot = Autopilot::new(3, grace);
        let membership = view(&[1, 2, 3], &[4]);
        let start = Instant::now();
        let down = [member(1, true), member(2, true), member(3, false), member(4, true)];
        let up = [member(1, true), member(2, true), member(3, true), member(4, true)];
        autopilot.next_change(&membership, &down, start);
        autopilot.next_change(&membership, &up, start + grace / 2);
        assert_eq!(autopilot.next_change(&membership, &down, start + grace), None);
    }

    #[test]
    fn a_dead_voter_without_replacement_stays() {
        let grace = Duration::from_secs(15);
        let mut autopilot = Autopilot::new(3, grace);
        let members = [member(1, true), member(2, true), member(3, false)];
        let membership = view(&[1, 2, 3], &[]);
        let start = Instant::now();
        autopilot.next_change(&membership, &members, start);
        assert_eq!(autopilot.next_change(&membership, &members, start + grace * 2), None);
    }

    #[test]
    fn nothing_happens_while_a_change_is_in_flight() {
        let mut autopilot = Autopilot::new(3, Duration::from_secs(15));
        let members = [member(1, true), member(2, true), member(3, true), member(4, true)];
        let mut membership = view(&[1, 2, 3], &[]);
        membership.changing = true;
        assert_eq!(autopilot.next_change(&membership, &members, Instant::now()), None);
    }

    #[test]
    fn dead_learners_are_forgotten_after_the_grace_period() {
        let grace = Duration::from_secs(15);
        let mut autopilot = Autopilot::new(3, grace);
        let members = [member(1, true), member(2, true), member(3, true), member(4, false)];
        let membership = view(&[1, 2, 3], &[4]);
        let start = Instant::now();
        assert_eq!(autopilot.next_change(&membership, &members, start), None);
        let change = autopilot.next_change(&membership, &members, start + grace);
        assert_eq!(change, Some(Change::RemoveLearners { ids: ids(&[4]) }));
    }

    #[test]
    fn a_reset_restarts_the_grace_period() {
        let grace = Duration::from_secs(15);
        let mut autopilot = Autopilot::new(3, grace);
        let members = [member(1, true), member(2, true), member(3, false), member(4, true)];
        let membership = view(&[1, 2, 3], &[4]);
        let start = Instant::now();
        autopilot.next_change(&membership, &members, start);
        autopilot.reset();
        assert_eq!(autopilot.next_change(&membership, &members, start + grace), None);
    }
}
