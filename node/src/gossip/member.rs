//! The keys a node publishes by gossip, and the typed view of a peer built from them.
//!
//! Keys and their allowed values are defined here and nowhere else; everything else
//! reads them through [`Member`].

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

use eventide_consensus::NodeId;

/// The advertised `HOST:PORT` (HTTP API, Raft RPC; gossip uses the same port over UDP).
pub const KEY_API: &str = "api";
/// A human name.
pub const KEY_NAME: &str = "name";
/// The node's own view of its Raft role: one of [`RaftRole`]'s names.
pub const KEY_RAFT: &str = "raft";
/// Runner slots (jobs the node runs at once).
pub const KEY_SLOTS: &str = "slots";
/// Jobs running now.
pub const KEY_BUSY: &str = "busy";
/// Runner labels, comma-separated.
pub const KEY_LABELS: &str = "labels";
/// Set once the node belongs to a formed Raft cluster.
pub const KEY_CLUSTER: &str = "cluster";
/// The `eventide-node` version.
pub const KEY_VERSION: &str = "version";
/// Why this node's runner does not claim jobs (`disk: 120 MiB free < 1 GiB`), or empty
/// while it does.
pub const KEY_RUNNER_PAUSED: &str = "runner_paused";
/// Set to `true` by a node that is shutting down cleanly, so peers stop counting on it
/// before the failure detector notices.
pub const KEY_LEAVING: &str = "leaving";

/// A node's Raft role as it reports it.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum RaftRole {
    Leader,
    Voter,
    Learner,
    /// Not (yet) a member of a Raft cluster.
    None,
}

impl RaftRole {
    pub fn as_str(self) -> &'static str {
        match self {
            RaftRole::Leader => "leader",
            RaftRole::Voter => "voter",
            RaftRole::Learner => "learner",
            RaftRole::None => "none",
        }
    }

    pub fn parse(text: &str) -> RaftRole {
        match text {
            "leader" => RaftRole::Leader,
            "voter" => RaftRole::Voter,
            "learner" => RaftRole::Learner,
            _ => RaftRole::None,
        }
    }
}

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
    pub busy: u32,
    pub labels: BTreeSet<String>,
    pub cluster: Option<String>,
    pub version: String,
    /// Why its runner does not claim jobs, if it is paused.
    pub runner_paused: Option<String>,
    /// Alive by the failure detector and not leaving.
    pub alive: bool,
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
        let get = sighting.values;
        let number = |key: &str| get(key).and_then(|v| v.parse().ok()).unwrap_or(0);
        let leaving = get(KEY_LEAVING).is_some_and(|v| v == "true");
        Some(Member {
            id,
            generation: sighting.generation,
            addr: get(KEY_API).and_then(|v| v.parse().ok()).unwrap_or(sighting.gossip_addr),
            name: get(KEY_NAME).unwrap_or_else(|| sighting.node_id.to_owned()),
            raft: get(KEY_RAFT).map_or(RaftRole::None, |v| RaftRole::parse(&v)),
            slots: number(KEY_SLOTS),
            busy: number(KEY_BUSY),
            labels: get(KEY_LABELS)
                .map(|v| v.split(',').filter(|l| !l.is_empty()).map(str::to_owned).collect())
                .unwrap_or_default(),
            cluster: get(KEY_CLUSTER).filter(|v| !v.is_empty()),
            version: get(KEY_VERSION).unwrap_or_default(),
            runner_paused: get(KEY_RUNNER_PAUSED).filter(|v| !v.is_empty()),
            alive: sighting.alive && !leaving,
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

#[cfg(test)]
mod tests {
    use super::*;

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
                (KEY_BUSY, "1"),
                (KEY_LABELS, "linux,x86"),
                (KEY_CLUSTER, "c1"),
                (KEY_VERSION, "0.1.0"),
            ],
        )
        .expect("numeric id");
        assert_eq!(member.id, NodeId(42));
        assert_eq!(member.addr.port(), 7801);
        assert_eq!(member.name, "alpha");
        assert_eq!(member.raft, RaftRole::Leader);
        assert_eq!((member.slots, member.busy), (2, 1));
        assert_eq!(member.labels.len(), 2);
        assert_eq!(member.cluster.as_deref(), Some("c1"));
        assert!(member.alive);
    }

    #[test]
    fn missing_or_garbage_values_fall_back_safely() {
        let member = sighting_member("9", 1, true, &[(KEY_SLOTS, "many"), (KEY_RAFT, "king")])
            .expect("numeric id");
        assert_eq!(member.slots, 0);
        assert_eq!(member.raft, RaftRole::None);
        assert_eq!(member.name, "9");
        assert_eq!(member.addr.port(), 7800);
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
