//! A node as the documents show it: its reference, its status, its Raft role and the
//! state of its runner.

use std::fmt;

use serde::de::{self, Deserializer};
use serde::ser::Serializer;
use serde::{Deserialize, Serialize};

/// A node as other documents refer to it.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct NodeRef {
    /// The node id, as a string: a u64 does not fit a JavaScript number.
    pub id: String,
    pub name: String,
    pub addr: String,
}

/// One node of the cluster.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct NodeStatus {
    pub id: String,
    pub name: String,
    pub addr: String,
    /// Alive according to gossip's failure detector.
    pub alive: bool,
    pub raft: RaftRole,
    /// The same as `raft`, as server or client; absent from the answers of versions
    /// before servers and clients, read from `raft` then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<NodeRole>,
    pub slots: u32,
    pub busy: u32,
    pub labels: Vec<String>,
    pub version: String,
    /// Absent from the answers of versions that did not report it.
    #[serde(default)]
    pub runner: RunnerState,
    /// How its runner sandboxes jobs: `bwrap` or `none`; absent for a node without a
    /// runner, or one that has not said (yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<String>,
    /// How its runner limits jobs: `cgroup v2`, `cgroup v1` or `rlimit`; absent as
    /// `sandbox` is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<String>,
}

/// A node's Raft role: `leader`, `voter`, `learner` or `none`. The same names are the
/// values of the gossip key `raft`.
#[derive(
    Serialize, Deserialize, Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash,
)]
#[serde(rename_all = "lowercase")]
pub enum RaftRole {
    Leader,
    Voter,
    Learner,
    /// Not (yet) a member of a Raft cluster.
    #[default]
    None,
}

impl RaftRole {
    pub const ALL: [RaftRole; 4] =
        [RaftRole::Leader, RaftRole::Voter, RaftRole::Learner, RaftRole::None];

    pub fn as_str(self) -> &'static str {
        match self {
            RaftRole::Leader => "leader",
            RaftRole::Voter => "voter",
            RaftRole::Learner => "learner",
            RaftRole::None => "none",
        }
    }

    /// Parses [`RaftRole::as_str`]'s names.
    pub fn try_parse(name: &str) -> Option<RaftRole> {
        RaftRole::ALL.into_iter().find(|role| role.as_str() == name)
    }
}

impl fmt::Display for RaftRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// What a node is to the cluster: a server (`leader`, `voter`, `standby`: the Raft
/// members) or a `client` (gossips, runs jobs and serves the API by asking a server).
/// The same thing as [`RaftRole`], in the words of servers and clients.
#[derive(Serialize, Deserialize, Copy, Clone, Debug, Default, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum NodeRole {
    Leader,
    Voter,
    Standby,
    #[default]
    Client,
}

impl NodeRole {
    pub fn as_str(self) -> &'static str {
        match self {
            NodeRole::Leader => "leader",
            NodeRole::Voter => "voter",
            NodeRole::Standby => "standby",
            NodeRole::Client => "client",
        }
    }
}

impl From<RaftRole> for NodeRole {
    fn from(raft: RaftRole) -> NodeRole {
        match raft {
            RaftRole::Leader => NodeRole::Leader,
            RaftRole::Voter => NodeRole::Voter,
            RaftRole::Learner => NodeRole::Standby,
            RaftRole::None => NodeRole::Client,
        }
    }
}

impl fmt::Display for NodeRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// Whether a node's runner claims jobs. In JSON: `ok`, `off` or `paused (<why>)`, such
/// as `paused (disk: 120 MiB free < 1 GiB)`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub enum RunnerState {
    /// No runner slots: the node runs no jobs.
    Off,
    /// Claims jobs. Also what an answer without the field means, since the versions
    /// that omitted it had no pause.
    #[default]
    Ok,
    /// Has slots but claims no jobs, for `reason`.
    Paused { reason: String },
}

impl RunnerState {
    /// The state of a runner with `slots` slots, paused for `paused` if given; a pause
    /// is reported even with no slots, since it says what is wrong with the node.
    pub fn new(slots: u32, paused: Option<String>) -> RunnerState {
        match (slots, paused) {
            (_, Some(reason)) => RunnerState::Paused { reason },
            (0, None) => RunnerState::Off,
            (_, None) => RunnerState::Ok,
        }
    }

    /// Parses [`RunnerState`]'s `Display` text.
    pub fn try_parse(text: &str) -> Option<RunnerState> {
        match text {
            "off" => Some(RunnerState::Off),
            "ok" => Some(RunnerState::Ok),
            _ => {
                let reason = text.strip_prefix("paused (")?.strip_suffix(')')?;
                Some(RunnerState::Paused { reason: reason.to_owned() })
            }
        }
    }
}

impl fmt::Display for RunnerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunnerState::Off => f.write_str("off"),
            RunnerState::Ok => f.write_str("ok"),
            RunnerState::Paused { reason } => write!(f, "paused ({reason})"),
        }
    }
}

impl Serialize for RunnerState {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for RunnerState {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<RunnerState, D::Error> {
        let text = String::deserialize(deserializer)?;
        RunnerState::try_parse(&text).ok_or_else(|| {
            de::Error::invalid_value(
                de::Unexpected::Str(&text),
                &"\"ok\", \"off\" or \"paused (<why>)\"",
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json<T: Serialize>(value: &T) -> String {
        serde_json::to_string(value).expect("serialisable")
    }

    #[test]
    fn raft_roles_are_their_lowercase_names() {
        let cases = [
            (RaftRole::Leader, "leader"),
            (RaftRole::Voter, "voter"),
            (RaftRole::Learner, "learner"),
            (RaftRole::None, "none"),
        ];
        for (role, name) in cases {
            assert_eq!(json(&role), format!("\"{name}\""));
            assert_eq!(role.as_str(), name);
            assert_eq!(role.to_string(), name);
            assert_eq!(RaftRole::try_parse(name), Some(role));
            assert_eq!(serde_json::from_str::<RaftRole>(&json(&role)).expect("parses"), role);
        }
        assert_eq!(RaftRole::try_parse("king"), None);
    }

    #[test]
    fn runner_states_are_the_strings_of_the_status_document() {
        let disk = "disk: 120 MiB free < 1 GiB";
        let cases = [
            (RunnerState::Off, "off".to_owned()),
            (RunnerState::Ok, "ok".to_owned()),
            (RunnerState::Paused { reason: disk.into() }, format!("paused ({disk})")),
            // A reason may itself hold parentheses.
            (
                RunnerState::Paused { reason: "raft (stopped)".into() },
                "paused (raft (stopped))".into(),
            ),
            (RunnerState::Paused { reason: String::new() }, "paused ()".into()),
        ];
        for (state, text) in cases {
            assert_eq!(json(&state), json(&text));
            assert_eq!(state.to_string(), text);
            assert_eq!(serde_json::from_str::<RunnerState>(&json(&text)).expect("parses"), state);
        }
        for bad in ["", "paused", "paused disk", "on", "OK"] {
            assert!(serde_json::from_str::<RunnerState>(&json(&bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_runner_state_follows_slots_and_pause() {
        assert_eq!(RunnerState::new(0, None), RunnerState::Off);
        assert_eq!(RunnerState::new(2, None), RunnerState::Ok);
        let paused = RunnerState::Paused { reason: "disk".into() };
        assert_eq!(RunnerState::new(2, Some("disk".into())), paused);
        assert_eq!(RunnerState::new(0, Some("disk".into())), paused);
    }

    #[test]
    fn a_node_without_a_runner_field_reads_as_ok() {
        let text = r#"{"id":"1","name":"n1","addr":"127.0.0.1:7801","alive":true,
            "raft":"voter","slots":1,"busy":0,"labels":[],"version":"0.1.0"}"#;
        let node: NodeStatus = serde_json::from_str(text).expect("parses");
        assert_eq!(node.runner, RunnerState::Ok);
    }
}
