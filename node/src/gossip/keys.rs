//! The keys a node publishes by gossip, written and read in one place: [`NodeKeys`]
//! holds one field per key, [`NodeKeys::to_pairs`] writes every key and
//! [`NodeKeys::parse`] reads them back, so no key is read that is not also written.
//!
//! Key names and value formats are part of the wire: nodes of different versions gossip
//! together during a rolling upgrade.

use std::net::SocketAddr;

use eventide_api::RaftRole;
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
/// Runner labels, comma-separated.
pub const KEY_LABELS: &str = "labels";
/// The `eventide-node` version.
pub const KEY_VERSION: &str = "version";
/// Why this node's runner does not claim jobs (`disk: 120 MiB free < 1 GiB`), or empty
/// while it does.
pub const KEY_RUNNER_PAUSED: &str = "runner_paused";
/// How the node's runner sandboxes jobs: `bwrap` or `none`; empty without a runner or
/// from older versions.
pub const KEY_SANDBOX: &str = "sandbox";
/// How the node's runner limits jobs: `cgroup v2`, `cgroup v1` or `rlimit`; empty as for
/// [`KEY_SANDBOX`].
pub const KEY_LIMITS: &str = "limits";
/// `true` once a node is shutting down cleanly, so peers stop counting on it before the
/// failure detector notices; `false` (or absent, from older versions) before.
pub const KEY_LEAVING: &str = "leaving";

/// `false` when the node was started with `--server-eligible false`: autopilot never
/// makes it a Raft member. `true`, or absent from older versions, otherwise.
pub const KEY_SERVER_ELIGIBLE: &str = "server_eligible";
/// Published by the leader only: its term and the Raft members (servers) of its
/// configuration, `TERM:ID,ID,...`; empty on every other node. A node that is not in the
/// newest leader's list is a client, whatever its own (possibly stale) replica says.
pub const KEY_SERVERS: &str = "servers";

/// A leader's list of servers, as [`KEY_SERVERS`] carries it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Servers {
    pub term: u64,
    pub ids: Vec<NodeId>,
}

impl Servers {
    fn to_value(&self) -> String {
        let ids: Vec<String> = self.ids.iter().map(|id| id.to_string()).collect();
        format!("{}:{}", self.term, ids.join(","))
    }

    /// `None` for an empty or garbled value.
    fn try_parse(value: &str) -> Option<Servers> {
        let (term, ids) = value.split_once(':')?;
        let term = term.parse().ok()?;
        let ids = ids
            .split(',')
            .filter(|id| !id.is_empty())
            .map(|id| id.parse().map(NodeId))
            .collect::<Result<Vec<NodeId>, _>>()
            .ok()?;
        Some(Servers { term, ids })
    }
}

/// What a node says about itself by gossip, one field per key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeKeys {
    pub api: SocketAddr,
    pub name: String,
    pub raft: RaftRole,
    pub slots: u32,
    /// In the order the node was given them.
    pub labels: Vec<String>,
    pub version: String,
    /// Why its runner does not claim jobs; `None` while it does.
    pub runner_paused: Option<String>,
    /// [`KEY_SANDBOX`]'s value; `None` while unknown.
    pub sandbox: Option<String>,
    /// [`KEY_LIMITS`]'s value; `None` while unknown.
    pub limits: Option<String>,
    pub leaving: bool,
    pub server_eligible: bool,
    /// Set on the leader only.
    pub servers: Option<Servers>,
}

impl NodeKeys {
    /// Every key with its value, as published.
    pub fn to_pairs(&self) -> Vec<(&'static str, String)> {
        let mut pairs = vec![
            (KEY_API, self.api.to_string()),
            (KEY_NAME, self.name.clone()),
            (KEY_RAFT, self.raft.as_str().to_owned()),
            (KEY_SLOTS, self.slots.to_string()),
            (KEY_LABELS, self.labels.join(",")),
            (KEY_VERSION, self.version.clone()),
            (KEY_RUNNER_PAUSED, self.runner_paused.clone().unwrap_or_default()),
            (KEY_LEAVING, self.leaving.to_string()),
            (KEY_SERVER_ELIGIBLE, self.server_eligible.to_string()),
            (KEY_SERVERS, self.servers.as_ref().map(Servers::to_value).unwrap_or_default()),
        ];
        // Published once known, and only then: a node without a sandbox gossips the same
        // keys as versions before it.
        if let Some(sandbox) = &self.sandbox {
            pairs.push((KEY_SANDBOX, sandbox.clone()));
        }
        if let Some(limits) = &self.limits {
            pairs.push((KEY_LIMITS, limits.clone()));
        }
        pairs
    }

    /// Reads the keys through `get`. Gossip is not trusted to be well formed: a missing
    /// or garbled value falls back to a safe default (the gossip address for `api`, the
    /// node id for `name`, `none`, zero, empty, not paused, not leaving).
    pub fn parse(
        get: &dyn Fn(&str) -> Option<String>,
        node_id: &str,
        gossip_addr: SocketAddr,
    ) -> NodeKeys {
        let number = |key: &str| get(key).and_then(|v| v.parse().ok()).unwrap_or(0);
        NodeKeys {
            api: get(KEY_API).and_then(|v| v.parse().ok()).unwrap_or(gossip_addr),
            name: get(KEY_NAME).unwrap_or_else(|| node_id.to_owned()),
            raft: get(KEY_RAFT).and_then(|v| RaftRole::try_parse(&v)).unwrap_or(RaftRole::None),
            slots: number(KEY_SLOTS),
            labels: get(KEY_LABELS)
                .map(|v| v.split(',').filter(|l| !l.is_empty()).map(str::to_owned).collect())
                .unwrap_or_default(),
            version: get(KEY_VERSION).unwrap_or_default(),
            runner_paused: get(KEY_RUNNER_PAUSED).filter(|v| !v.is_empty()),
            sandbox: get(KEY_SANDBOX).filter(|v| !v.is_empty()),
            limits: get(KEY_LIMITS).filter(|v| !v.is_empty()),
            leaving: get(KEY_LEAVING).is_some_and(|v| v == "true"),
            server_eligible: get(KEY_SERVER_ELIGIBLE).is_none_or(|v| v != "false"),
            servers: get(KEY_SERVERS).and_then(|v| Servers::try_parse(&v)),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn sample() -> NodeKeys {
        NodeKeys {
            api: "127.0.0.1:7801".parse().expect("addr"),
            name: "alpha".into(),
            raft: RaftRole::Learner,
            slots: 2,
            labels: vec!["x86".into(), "linux".into()],
            version: "0.1.0".into(),
            runner_paused: Some("disk: 120 MiB free < 1 GiB".into()),
            sandbox: Some("bwrap".into()),
            limits: Some("cgroup v2".into()),
            leaving: false,
            server_eligible: true,
            servers: Some(Servers { term: 4, ids: vec![NodeId(3), NodeId(12)] }),
        }
    }

    fn parse(pairs: &[(&str, String)]) -> NodeKeys {
        let values: BTreeMap<String, String> =
            pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
        let get = move |key: &str| values.get(key).cloned();
        NodeKeys::parse(&get, "9", "127.0.0.1:7800".parse().expect("addr"))
    }

    #[test]
    fn every_published_key_reads_back() {
        for keys in [
            sample(),
            NodeKeys {
                runner_paused: None,
                leaving: true,
                labels: vec![],
                sandbox: None,
                limits: None,
                server_eligible: false,
                servers: None,
                ..sample()
            },
        ] {
            assert_eq!(parse(&keys.to_pairs()), keys);
        }
    }

    #[test]
    fn values_keep_their_wire_format() {
        let pairs = sample().to_pairs();
        let value = |key: &str| pairs.iter().find(|(k, _)| *k == key).map(|(_, v)| v.as_str());
        assert_eq!(value(KEY_API), Some("127.0.0.1:7801"));
        assert_eq!(value(KEY_RAFT), Some("learner"));
        assert_eq!(value(KEY_LABELS), Some("x86,linux"));
        assert_eq!(value(KEY_RUNNER_PAUSED), Some("disk: 120 MiB free < 1 GiB"));
        assert_eq!(value(KEY_LEAVING), Some("false"));
        assert_eq!((value(KEY_SANDBOX), value(KEY_LIMITS)), (Some("bwrap"), Some("cgroup v2")));
        let running = NodeKeys { runner_paused: None, leaving: true, ..sample() }.to_pairs();
        assert!(running.contains(&(KEY_RUNNER_PAUSED, String::new())));
        assert!(running.contains(&(KEY_LEAVING, "true".to_owned())));
        assert_eq!(value(KEY_SERVER_ELIGIBLE), Some("true"));
        assert_eq!(value(KEY_SERVERS), Some("4:3,12"));
        assert_eq!(pairs.len(), 12, "one pair per key");
        // Changed by every job: `status` reads it from the replica instead.
        assert!(pairs.iter().all(|(key, _)| *key != "busy"), "busy is not gossiped");
    }

    #[test]
    fn missing_or_garbage_values_fall_back_safely() {
        let keys = parse(&[(KEY_SLOTS, "many".into()), (KEY_RAFT, "king".into())]);
        assert_eq!(keys.slots, 0);
        assert_eq!(keys.raft, RaftRole::None);
        assert_eq!(keys.name, "9");
        assert_eq!(keys.api.port(), 7800);
        assert_eq!((keys.runner_paused, keys.leaving), (None, false));
        assert!(keys.server_eligible, "absent from older versions: eligible");
        for garbage in ["", "x:1", "4:1,y", "4"] {
            assert_eq!(parse(&[(KEY_SERVERS, garbage.into())]).servers, None, "{garbage}");
        }
        assert_eq!(
            parse(&[(KEY_SERVERS, "7:".into())]).servers,
            Some(Servers { term: 7, ids: vec![] })
        );
    }
}
