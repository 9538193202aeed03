//! Membership management on the leader: the Raft group is small. It holds `--voters`
//! voters and `--standby` caught-up learners (the standbys); every other live node is a
//! client, which gossips and runs jobs but is no Raft member. A voter gossip has reported
//! dead for longer than `--dead-voter-grace` is replaced by a standby, a dead standby is
//! removed after the same grace, and the standbys are topped up.
//!
//! The choice of servers is stable: members stay members while they live, and a new one
//! is the live, eligible (`--server-eligible`) non-member with the smallest node id.
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
    /// Remove these learners: dead past the grace period, beyond the standbys wanted, or
    /// no longer eligible. Removed live nodes carry on as clients.
    RemoveLearners {
        ids: BTreeSet<NodeId>,
    },
}

/// How many servers autopilot keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sizes {
    pub voters: usize,
    pub standby: usize,
}

/// Remembers since when each member has been missing from gossip.
#[derive(Debug)]
pub struct Autopilot {
    sizes: Sizes,
    grace: Duration,
    missing_since: BTreeMap<NodeId, Instant>,
}

impl Autopilot {
    pub fn new(sizes: Sizes, grace: Duration) -> Autopilot {
        Autopilot { sizes, grace, missing_since: BTreeMap::new() }
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
        // A member that said it may not be a server is on its way out; one gossip does not
        // know (yet) is given the benefit of the doubt.
        let eligible = |id: &NodeId| alive.get(id).is_none_or(|m| m.server_eligible);
        let learners: BTreeSet<NodeId> =
            membership.nodes.keys().filter(|id| !membership.voters.contains(id)).copied().collect();

        // Voters: keep those not dead nor opted out, fill up with live, caught-up,
        // eligible learners (smallest ids first).
        let mut voters: BTreeSet<NodeId> =
            membership.voters.iter().copied().filter(|id| !dead(id) && eligible(id)).collect();
        let candidates = learners.iter().filter(|id| {
            alive.get(id).is_some_and(|m| m.server_eligible) && membership.caught_up.contains(id)
        });
        for id in candidates {
            if voters.len() >= self.sizes.voters {
                break;
            }
            voters.insert(*id);
        }
        // A voter goes only when the change does not shrink the voter set below what is
        // wanted: removing it without a replacement does not help the quorum.
        let removes = voters.len() < membership.voters.len();
        let adds = voters.iter().any(|id| !membership.voters.contains(id));
        if adds || (removes && voters.len() >= self.sizes.voters) {
            return Some(Change::SetVoters { voters });
        }

        // Top up: enough members that are not dead and eligible for every voter and
        // standby wanted; the newcomer joins as a learner.
        let keeping = membership.nodes.keys().filter(|id| !dead(id) && eligible(id)).count();
        if keeping < self.sizes.voters + self.sizes.standby {
            let newcomer =
                alive.values().find(|m| m.server_eligible && !membership.nodes.contains_key(&m.id));
            if let Some(member) = newcomer {
                let info = NodeInfo::new(member.addr.to_string(), member.name.clone());
                return Some(Change::AddLearner { id: member.id, info });
            }
        }

        // Learners that go: dead past the grace, opted out, and beyond the standbys
        // wanted (the largest ids first, so that the choice stays stable). A voter slot
        // that a dead voter leaves open counts as a standby wanted: the learner the top-up
        // added for it stays while it catches up (removing it would only have the top-up
        // add it again, two membership changes a tick until a learner caught up).
        let mut leaving: BTreeSet<NodeId> =
            learners.iter().filter(|id| dead(id) || !eligible(id)).copied().collect();
        let staying: Vec<NodeId> =
            learners.iter().filter(|id| !leaving.contains(id)).copied().collect();
        let open_voter_slots = self.sizes.voters.saturating_sub(voters.len());
        leaving.extend(staying.iter().skip(self.sizes.standby + open_voter_slots));
        if !leaving.is_empty() {
            return Some(Change::RemoveLearners { ids: leaving });
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

    /// Three voters, two standbys.
    const SIZES: Sizes = Sizes { voters: 3, standby: 2 };

    fn ids(ids: &[u64]) -> BTreeSet<NodeId> {
        ids.iter().map(|&id| NodeId(id)).collect()
    }

    #[test]
    fn a_live_stranger_is_added_as_a_learner() {
        let mut autopilot = Autopilot::new(SIZES, Duration::from_secs(15));
        let members = [member(1, true), member(2, true), member(3, true), member(4, true)];
        let change = autopilot.next_change(&view(&[1, 2, 3], &[]), &members, Instant::now());
        assert_eq!(
            change,
            Some(Change::AddLearner { id: NodeId(4), info: NodeInfo::new("127.0.0.1:7804", "n4") })
        );
    }

    #[test]
    fn learners_are_promoted_up_to_the_wanted_voters() {
        let mut autopilot = Autopilot::new(SIZES, Duration::from_secs(15));
        let members = [member(1, true), member(2, true), member(3, true), member(4, true)];
        let change = autopilot.next_change(&view(&[1], &[2, 3, 4]), &members, Instant::now());
        assert_eq!(change, Some(Change::SetVoters { voters: ids(&[1, 2, 3]) }));
        assert_eq!(autopilot.next_change(&view(&[1, 2, 3], &[4]), &members, Instant::now()), None);
    }

    #[test]
    fn a_learner_still_catching_up_is_not_promoted() {
        let mut autopilot = Autopilot::new(SIZES, Duration::from_secs(15));
        let members = [member(1, true), member(2, true), member(3, true)];
        let mut membership = view(&[1, 2], &[3]);
        membership.caught_up.remove(&NodeId(3));
        assert_eq!(autopilot.next_change(&membership, &members, Instant::now()), None);
    }

    #[test]
    fn a_dead_voter_is_replaced_only_after_the_grace_period() {
        let grace = Duration::from_secs(15);
        let mut autopilot = Autopilot::new(SIZES, grace);
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
        let mut autopilot = Autopilot::new(SIZES, grace);
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
        let mut autopilot = Autopilot::new(SIZES, grace);
        let members = [member(1, true), member(2, true), member(3, false)];
        let membership = view(&[1, 2, 3], &[]);
        let start = Instant::now();
        autopilot.next_change(&membership, &members, start);
        assert_eq!(autopilot.next_change(&membership, &members, start + grace * 2), None);
    }

    #[test]
    fn the_learner_added_for_a_dead_voter_stays_while_it_catches_up() {
        let grace = Duration::from_secs(15);
        let mut autopilot = Autopilot::new(Sizes { voters: 3, standby: 1 }, grace);
        let members =
            [member(1, true), member(2, true), member(3, false), member(4, true), member(5, true)];
        let start = Instant::now();
        // Voter 3 is dead and standby 4 is not caught up yet: a newcomer joins for it.
        let mut membership = view(&[1, 2, 3], &[4]);
        membership.caught_up.remove(&NodeId(4));
        autopilot.next_change(&membership, &members, start);
        let change = autopilot.next_change(&membership, &members, start + grace);
        assert_eq!(
            change,
            Some(Change::AddLearner { id: NodeId(5), info: NodeInfo::new("127.0.0.1:7805", "n5") })
        );
        // Two learners, neither caught up: both stay (one standby plus the open slot).
        let mut membership = view(&[1, 2, 3], &[4, 5]);
        membership.caught_up.retain(|id| id.0 < 4);
        assert_eq!(autopilot.next_change(&membership, &members, start + grace), None);
        // The first to catch up replaces the dead voter, which goes once it is a dead
        // learner; the other learner stays as the one standby.
        membership.caught_up.insert(NodeId(5));
        let change = autopilot.next_change(&membership, &members, start + grace);
        assert_eq!(change, Some(Change::SetVoters { voters: ids(&[1, 2, 5]) }));
        let mut membership = view(&[1, 2, 5], &[3, 4]);
        membership.caught_up.remove(&NodeId(4));
        let change = autopilot.next_change(&membership, &members, start + grace * 2);
        assert_eq!(change, Some(Change::RemoveLearners { ids: ids(&[3]) }));
    }

    #[test]
    fn nothing_happens_while_a_change_is_in_flight() {
        let mut autopilot = Autopilot::new(SIZES, Duration::from_secs(15));
        let members = [member(1, true), member(2, true), member(3, true), member(4, true)];
        let mut membership = view(&[1, 2, 3], &[]);
        membership.changing = true;
        assert_eq!(autopilot.next_change(&membership, &members, Instant::now()), None);
    }

    #[test]
    fn dead_learners_are_forgotten_after_the_grace_period() {
        let grace = Duration::from_secs(15);
        let mut autopilot = Autopilot::new(SIZES, grace);
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
        let mut autopilot = Autopilot::new(SIZES, grace);
        let members = [member(1, true), member(2, true), member(3, false), member(4, true)];
        let membership = view(&[1, 2, 3], &[4]);
        let start = Instant::now();
        autopilot.next_change(&membership, &members, start);
        autopilot.reset();
        assert_eq!(autopilot.next_change(&membership, &members, start + grace), None);
    }

    #[test]
    fn only_the_wanted_standbys_join_and_the_rest_stay_clients() {
        let mut autopilot = Autopilot::new(SIZES, Duration::from_secs(15));
        let members: Vec<Member> = (1..=10).map(|id| member(id, true)).collect();
        let now = Instant::now();
        let first = autopilot.next_change(&view(&[1, 2, 3], &[]), &members, now);
        assert!(matches!(first, Some(Change::AddLearner { id: NodeId(4), .. })), "{first:?}");
        let second = autopilot.next_change(&view(&[1, 2, 3], &[4]), &members, now);
        assert!(matches!(second, Some(Change::AddLearner { id: NodeId(5), .. })), "{second:?}");
        assert_eq!(autopilot.next_change(&view(&[1, 2, 3], &[4, 5]), &members, now), None);
    }

    #[test]
    fn a_newcomer_with_a_smaller_id_does_not_displace_a_server() {
        let mut autopilot = Autopilot::new(SIZES, Duration::from_secs(15));
        let members: Vec<Member> = [1, 2, 3, 4, 6, 7].map(|id| member(id, true)).to_vec();
        assert_eq!(
            autopilot.next_change(&view(&[1, 2, 3], &[6, 7]), &members, Instant::now()),
            None
        );
    }

    #[test]
    fn learners_beyond_the_standbys_become_clients() {
        let mut autopilot = Autopilot::new(SIZES, Duration::from_secs(15));
        let members: Vec<Member> = (1..=7).map(|id| member(id, true)).collect();
        let change =
            autopilot.next_change(&view(&[1, 2, 3], &[4, 5, 6, 7]), &members, Instant::now());
        assert_eq!(change, Some(Change::RemoveLearners { ids: ids(&[6, 7]) }));
        let none = Sizes { voters: 3, standby: 0 };
        let change = Autopilot::new(none, Duration::from_secs(15)).next_change(
            &view(&[1, 2, 3], &[4]),
            &members,
            Instant::now(),
        );
        assert_eq!(change, Some(Change::RemoveLearners { ids: ids(&[4]) }));
    }

    #[test]
    fn a_node_that_may_not_be_a_server_is_never_added() {
        let mut autopilot = Autopilot::new(SIZES, Duration::from_secs(15));
        let mut members: Vec<Member> = (1..=5).map(|id| member(id, true)).collect();
        members[3].server_eligible = false;
        let change = autopilot.next_change(&view(&[1, 2, 3], &[]), &members, Instant::now());
        assert!(matches!(change, Some(Change::AddLearner { id: NodeId(5), .. })), "{change:?}");
        members[4].server_eligible = false;
        assert_eq!(autopilot.next_change(&view(&[1, 2, 3], &[]), &members, Instant::now()), None);
    }

    #[test]
    fn a_standby_that_opts_out_is_replaced_then_removed() {
        let mut autopilot = Autopilot::new(SIZES, Duration::from_secs(15));
        let mut members: Vec<Member> = (1..=6).map(|id| member(id, true)).collect();
        members[3].server_eligible = false;
        let now = Instant::now();
        let change = autopilot.next_change(&view(&[1, 2, 3], &[4, 5]), &members, now);
        assert!(matches!(change, Some(Change::AddLearner { id: NodeId(6), .. })), "{change:?}");
        let change = autopilot.next_change(&view(&[1, 2, 3], &[4, 5, 6]), &members, now);
        assert_eq!(change, Some(Change::RemoveLearners { ids: ids(&[4]) }));
    }

    #[test]
    fn a_voter_that_opts_out_is_replaced_by_a_standby() {
        let mut autopilot = Autopilot::new(SIZES, Duration::from_secs(15));
        let mut members: Vec<Member> = (1..=5).map(|id| member(id, true)).collect();
        members[1].server_eligible = false;
        let change = autopilot.next_change(&view(&[1, 2, 3], &[4, 5]), &members, Instant::now());
        assert_eq!(change, Some(Change::SetVoters { voters: ids(&[1, 3, 4]) }));
    }

    #[test]
    fn a_dead_voter_is_replaced_before_the_standbys_are_topped_up() {
        let grace = Duration::from_secs(15);
        let mut autopilot = Autopilot::new(SIZES, grace);
        let mut members: Vec<Member> = (1..=6).map(|id| member(id, true)).collect();
        members[2].alive = false;
        let membership = view(&[1, 2, 3], &[4, 5]);
        let start = Instant::now();
        assert_eq!(autopilot.next_change(&membership, &members, start), None);
        let change = autopilot.next_change(&membership, &members, start + grace);
        assert_eq!(change, Some(Change::SetVoters { voters: ids(&[1, 2, 4]) }));
        let after = view(&[1, 2, 4], &[5]);
        let change = autopilot.next_change(&after, &members, start + grace);
        assert!(matches!(change, Some(Change::AddLearner { id: NodeId(6), .. })), "{change:?}");
    }
}
