//! What a node is to the cluster, and which nodes serve clients, as gossip tells it.
//! Pure: gossip's members and this node's own Raft reading in, a role or servers out.
//!
//! A node's replica can outlive its membership: a learner removed while it was down
//! still finds itself a learner on restart, and the leader no longer talks to it. The
//! newest leader publishes its servers by gossip ([`Servers`]); a node missing from that
//! list is a client, whatever its replica says.

use std::collections::HashMap;

use eventide_consensus::NodeId;

use super::{Member, RaftRole, Servers};

/// This node's role: its own Raft role, unless the newest leader gossip knows of does
/// not count it among its servers (then `None`: a client).
///
/// The leader's term is not weighed against a follower's: a member cut off from the
/// others raises its own term with every election it starts, and it is exactly such a
/// node, removed while away, that must not answer from its stale replica. Taking a
/// server for a client costs a forwarded request; the reverse would serve old state.
///
/// A leader's `term` is the one it won, so a leader in gossip with a higher term has
/// deposed it: openraft does not step a leader down that hears from nobody, and one cut
/// off and then removed from the group hears from nobody for good. It is a client until
/// Raft says what it is.
pub fn effective_role(me: NodeId, own: RaftRole, term: u64, members: &[Member]) -> RaftRole {
    if own == RaftRole::None {
        return own;
    }
    let newest = newest_leader(members.iter().filter(|m| m.id != me));
    match (own, newest) {
        (RaftRole::Leader, Some((_, servers))) if servers.term > term => RaftRole::None,
        (RaftRole::Leader, _) => RaftRole::Leader,
        (_, Some((_, servers))) if !servers.ids.contains(&me) => RaftRole::None,
        _ => own,
    }
}

/// The live leader with the highest term that gossip shows, with its servers.
pub fn newest_leader<'a>(
    members: impl IntoIterator<Item = &'a Member>,
) -> Option<(&'a Member, &'a Servers)> {
    members
        .into_iter()
        .filter(|m| m.alive && m.raft == RaftRole::Leader)
        .filter_map(|m| m.servers.as_ref().map(|servers| (m, servers)))
        .max_by_key(|(m, servers)| (servers.term, m.id))
}

/// The leader [`newest_leader`] picks from the newest generation of every node among
/// `sightings` (every sighting gossip holds, with whether it is alive now), as
/// `newest_leader(&newest_generations(..))` would, but by reference: an older generation
/// that still says it leads does not count once a newer one of the same node is seen.
pub fn leader_among<'a>(sightings: &[(&'a Member, bool)]) -> Option<&'a Member> {
    let mut newest: HashMap<NodeId, (&Member, bool)> = HashMap::new();
    for &(member, alive) in sightings {
        match newest.get(&member.id) {
            Some(&(known, known_alive))
                if (known_alive, known.generation) >= (alive, member.generation) => {}
            _ => {
                newest.insert(member.id, (member, alive));
            }
        }
    }
    let live = newest.into_values().filter(|&(_, alive)| alive).map(|(member, _)| member);
    newest_leader(live).map(|(leader, _)| leader)
}

/// The live servers (Raft members) gossip shows, the newest leader first, then the rest
/// in the order `rank` gives them (smallest first).
pub fn servers(members: &[Member], rank: impl Fn(NodeId) -> u64) -> Vec<&Member> {
    let leader = newest_leader(members).map(|(m, _)| m.id);
    let mut servers: Vec<&Member> = members
        .iter()
        .filter(|m| m.alive && m.raft != RaftRole::None)
        .filter(|m| m.raft != RaftRole::Leader || Some(m.id) == leader)
        .collect();
    servers.sort_by_key(|m| (Some(m.id) != leader, rank(m.id)));
    servers
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gossip::member_for_test as member;

    fn with(id: u64, raft: RaftRole, servers: Option<(u64, &[u64])>) -> Member {
        let mut member = member(id, true);
        member.raft = raft;
        member.servers = servers
            .map(|(term, ids)| Servers { term, ids: ids.iter().map(|&id| NodeId(id)).collect() });
        member
    }

    #[test]
    fn a_member_the_leader_lists_keeps_its_role() {
        let members =
            [with(1, RaftRole::Leader, Some((5, &[1, 2, 3]))), with(2, RaftRole::Voter, None)];
        assert_eq!(effective_role(NodeId(2), RaftRole::Voter, 5, &members), RaftRole::Voter);
        assert_eq!(effective_role(NodeId(3), RaftRole::Learner, 5, &members), RaftRole::Learner);
    }

    #[test]
    fn a_stale_member_the_leader_does_not_list_is_a_client() {
        let members = [with(1, RaftRole::Leader, Some((5, &[1, 2, 3])))];
        assert_eq!(effective_role(NodeId(9), RaftRole::Learner, 5, &members), RaftRole::None);
        // A voter removed while cut off, whose elections raised its term past the
        // leader's, is a client all the same.
        assert_eq!(effective_role(NodeId(9), RaftRole::Voter, 8, &members), RaftRole::None);
    }

    #[test]
    fn without_a_leader_in_gossip_the_own_role_stands() {
        let mut dead = with(1, RaftRole::Leader, Some((5, &[1])));
        dead.alive = false;
        assert_eq!(effective_role(NodeId(9), RaftRole::Learner, 5, &[dead]), RaftRole::Learner);
        assert_eq!(effective_role(NodeId(9), RaftRole::None, 5, &[]), RaftRole::None);
        assert_eq!(effective_role(NodeId(9), RaftRole::Leader, 5, &[]), RaftRole::Leader);
    }

    #[test]
    fn a_leader_a_newer_leader_deposed_is_a_client_until_raft_says_otherwise() {
        // Cut off as leader of term 5, then removed by the leader of term 9: nobody
        // tells its Raft, so gossip must.
        let removed = [with(1, RaftRole::Leader, Some((9, &[1, 2, 4])))];
        assert_eq!(effective_role(NodeId(3), RaftRole::Leader, 5, &removed), RaftRole::None);
        // Still listed, it is as stale until the new leader reaches it.
        let listed = [with(1, RaftRole::Leader, Some((9, &[1, 2, 3])))];
        assert_eq!(effective_role(NodeId(3), RaftRole::Leader, 5, &listed), RaftRole::None);
        // A deposed leader's key that lingers in gossip deposes nobody newer.
        let old = [with(1, RaftRole::Leader, Some((4, &[1, 2])))];
        assert_eq!(effective_role(NodeId(3), RaftRole::Leader, 5, &old), RaftRole::Leader);
        // Its own key does not count against it.
        let own = [with(3, RaftRole::Leader, Some((5, &[3])))];
        assert_eq!(effective_role(NodeId(3), RaftRole::Leader, 5, &own), RaftRole::Leader);
    }

    #[test]
    fn the_newest_leader_wins_over_a_deposed_one() {
        let members = [
            with(1, RaftRole::Leader, Some((4, &[1, 2, 3]))),
            with(2, RaftRole::Leader, Some((5, &[2, 3, 4]))),
            with(3, RaftRole::Voter, None),
            with(4, RaftRole::Learner, None),
            with(5, RaftRole::None, None),
        ];
        assert_eq!(newest_leader(&members).map(|(m, _)| m.id), Some(NodeId(2)));
        let ids: Vec<NodeId> =
            servers(&members, |id| u64::MAX - id.0).iter().map(|m| m.id).collect();
        assert_eq!(ids, vec![NodeId(2), NodeId(4), NodeId(3)]);
    }

    #[test]
    fn the_leader_among_sightings_is_the_one_of_the_newest_generations() {
        let leader = with(1, RaftRole::Leader, Some((5, &[1, 2, 3])));
        let voter = with(2, RaftRole::Voter, None);
        let newer = with(3, RaftRole::Leader, Some((6, &[2, 3, 4])));
        let pick = |sightings: &[(&Member, bool)]| leader_among(sightings).map(|m| m.id);
        assert_eq!(pick(&[(&leader, true), (&voter, true)]), Some(NodeId(1)));
        assert_eq!(pick(&[(&leader, false), (&voter, true)]), None, "a dead leader");
        assert_eq!(pick(&[(&leader, true), (&newer, true)]), Some(NodeId(3)), "newest term");
        // Node 1 restarted (generation 2) and is not the leader any more, while its old
        // generation is still seen alive: the old one's key does not count.
        let mut restarted = with(1, RaftRole::None, None);
        restarted.generation = 2;
        assert_eq!(pick(&[(&leader, true), (&restarted, true)]), None);
        assert_eq!(pick(&[(&restarted, true), (&leader, true)]), None, "in any order");
        // While the new generation is not seen alive yet, the old one still counts.
        assert_eq!(pick(&[(&leader, true), (&restarted, false)]), Some(NodeId(1)));
        // The same answer as the rule over whole members.
        for sightings in [
            vec![(&leader, true), (&restarted, true), (&newer, false)],
            vec![(&leader, true), (&restarted, false), (&newer, true)],
            vec![(&voter, true), (&restarted, true)],
        ] {
            let members = crate::gossip::newest_generations(sightings.iter().map(|&(m, alive)| {
                let mut member = m.clone();
                member.alive = alive;
                member
            }));
            assert_eq!(pick(&sightings), newest_leader(&members).map(|(m, _)| m.id));
        }
    }
}
