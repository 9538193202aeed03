//! The typed view of a peer, built from the keys it publishes ([`NodeKeys`]).

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

use eventide_api::{RaftRole, RunnerState};
use eventide_consensus::NodeId;

use super::keys::{NodeKeys, Servers};

/// A peer as gossip describes it (self included).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub id: NodeId,
    /// Start time of the incarnation this view comes from; a restart gets a higher one.
    pub generation: u64,
    pub addr: SocketAddr,
    pub name: String,
    pub raft: RaftRole,
    pub slots: u32,
    pub labels: BTreeSet<String>,
    pub version: String,
    /// Paused for the reason it published, else off without slots, else ok.
    pub runner: RunnerState,
    /// How its runner sandboxes and limits jobs (`bwrap`, `cgroup v1`), once it said.
    pub sandbox: Option<String>,
    pub limits: Option<String>,
    /// Alive by the failure detector and not leaving.
    pub alive: bool,
    /// May become a Raft server (`--server-eligible`).
    pub server_eligible: bool,
    /// The leader's term and servers, published by a leader only.
    pub servers: Option<Servers>,
}

/// What one chitchat node state says, before de-duplication.
pub struct Sighting<'a> {
    pub node_id: &'a str,
    pub generation: u64,
    pub gossip_addr: SocketAddr,
    pub alive: bool,
    pub values: &'a dyn Fn(&str) -> Option<String>,
}

impl Member {
    /// Builds a member from one sighting; `None` if the node id is not an Eventide id.
    pub fn try_from_sighting(sighting: &Sighting<'_>) -> Option<Member> {
        let id = NodeId(sighting.node_id.parse().ok()?);
        let keys = NodeKeys::parse(sighting.values, sighting.node_id, sighting.gossip_addr);
        Some(Member {
            id,
            generation: sighting.generation,
            addr: keys.api,
            name: keys.name,
            raft: keys.raft,
            slots: keys.slots,
            labels: keys.labels.into_iter().collect(),
            version: keys.version,
            runner: RunnerState::new(keys.slots, keys.runner_paused),
            sandbox: keys.sandbox,
            limits: keys.limits,
            alive: sighting.alive && !keys.leaving,
            server_eligible: keys.server_eligible,
            servers: keys.servers,
        })
    }
}

/// One entry per node id: the newest generation wins, since a restarted node leaves its
/// old incarnation behind in gossip for a while.
///
/// A live incarnation wins over a dead one whatever their generations: gossip is
/// unauthenticated without a cluster secret, and one damaged or forged datagram can
/// announce a higher generation of a real node that then never sends a heartbeat. Were
/// the newest always taken, that single datagram would make a healthy node look dead
/// (its jobs requeued, its Raft seat given away).
pub fn newest_generations(members: impl IntoIterator<Item = Member>) -> Vec<Member> {
    let mut newest: BTreeMap<NodeId, Member> = BTreeMap::new();
    for member in members {
        match newest.get(&member.id) {
            Some(known) if (known.alive, known.generation) >= (member.alive, member.generation) => {
            }
            _ => {
                newest.insert(member.id, member);
            }
        }
    }
    newest.into_values().collect()
}

/// A live or dead member with plain keys, for other modules' tests.
#[cfg(test)]
pub(crate) fn member_for_test(id: u64, alive: bool) -> Member {
    Member {
        id: NodeId(id),
        generation: 1,
        addr: format!("127.0.0.1:{}", 7800 + id).parse().expect("addr"),
        name: format!("n{id}"),
        raft: RaftRole::None,
        slots: 1,
        labels: BTreeSet::new(),
        version: String::new(),
        runner: RunnerState::Ok,
        sandbox: None,
        limits: None,
        alive,
        server_eligible: true,
        servers: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gossip::keys::{
        KEY_API, KEY_LABELS, KEY_LEAVING, KEY_NAME, KEY_RAFT, KEY_RUNNER_PAUSED, KEY_SLOTS,
        KEY_VERSION,
    };

    fn sighting_member(
        id: &str,
        generation: u64,
        alive: bool,
        pairs: &[(&str, &str)],
    ) -> Option<Member> {
        let values: BTreeMap<String, String> =
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let get = move |key: &str| values.get(key).cloned();
        Member::try_from_sighting(&Sighting {
            node_id: id,
            generation,
            gossip_addr: "127.0.0.1:7800".parse().expect("addr"),
            alive,
            values: &get,
        })
    }

    #[test]
    fn members_are_read_from_their_keys() {
        let member = sighting_member(
            "42",
            7,
            true,
            &[
                (KEY_API, "127.0.0.1:7801"),
                (KEY_NAME, "alpha"),
                (KEY_RAFT, "leader"),
                (KEY_SLOTS, "2"),
                (KEY_LABELS, "linux,x86"),
                (KEY_VERSION, "0.1.0"),
            ],
        )
        .expect("numeric id");
        assert_eq!(member.id, NodeId(42));
        assert_eq!(member.addr.port(), 7801);
        assert_eq!(member.name, "alpha");
        assert_eq!(member.raft, RaftRole::Leader);
        assert_eq!(member.slots, 2);
        assert_eq!(member.labels.len(), 2);
        assert_eq!(member.runner, RunnerState::Ok);
        assert!(member.alive);
    }

    #[test]
    fn the_runner_state_comes_from_slots_and_pause() {
        let runner =
            |pairs: &[(&str, &str)]| sighting_member("1", 1, true, pairs).expect("id").runner;
        assert_eq!(runner(&[]), RunnerState::Off);
        assert_eq!(runner(&[(KEY_SLOTS, "1"), (KEY_RUNNER_PAUSED, "")]), RunnerState::Ok);
        let paused = RunnerState::Paused { reason: "disk: low".into() };
        assert_eq!(runner(&[(KEY_SLOTS, "1"), (KEY_RUNNER_PAUSED, "disk: low")]), paused);
    }

    #[test]
    fn a_node_id_that_is_not_a_number_is_no_member() {
        assert!(sighting_member("not-a-number", 1, true, &[]).is_none());
    }

    #[test]
    fn a_leaving_node_is_not_alive() {
        let member = sighting_member("3", 1, true, &[(KEY_LEAVING, "true")]).expect("numeric id");
        assert!(!member.alive);
    }

    #[test]
    fn the_newest_generation_of_a_node_wins() {
        let old = sighting_member("5", 100, false, &[(KEY_NAME, "old")]).expect("id");
        let new = sighting_member("5", 200, true, &[(KEY_NAME, "new")]).expect("id");
        let other = sighting_member("6", 1, true, &[]).expect("id");
        let members = newest_generations([new.clone(), old.clone(), other.clone()]);
        assert_eq!(members, vec![new.clone(), other.clone()]);
        assert_eq!(newest_generations([old, new.clone()]), vec![new]);
    }

    #[test]
    fn a_forged_newer_generation_that_never_beats_does_not_hide_the_live_node() {
        let real = sighting_member("5", 100, true, &[(KEY_NAME, "real")]).expect("id");
        let forged = sighting_member("5", 9_000, false, &[(KEY_NAME, "forged")]).expect("id");
        assert_eq!(newest_generations([real.clone(), forged.clone()]), vec![real.clone()]);
        assert_eq!(newest_generations([forged.clone(), real.clone()]), vec![real]);
        // With no live incarnation, the newest one speaks for the node.
        let dead = sighting_member("5", 100, false, &[]).expect("id");
        assert_eq!(newest_generations([dead, forged.clone()]), vec![forged]);
    }
}
