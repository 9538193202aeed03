//! Helpers for tests and benchmarks (feature `testsuite`): real Raft nodes with their
//! own sled store in a temp dir, serving Raft RPC over HTTP on a loopback port, all in
//! one process.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tempfile::TempDir;
use tokio::task::JoinHandle;

use crate::auth::Signer;
use crate::network::{raft_routes, HttpNetwork};
use crate::store::{self, StateMachineStore};
use crate::types::Raft;
use crate::{codec, CommitId, NodeId, NodeInfo};

/// How long the `wait_*` helpers wait before they panic.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// One Raft node in this process. Dropping it leaks nothing but its task; call
/// [`LocalNode::kill`] to stop it as a crash would.
pub struct LocalNode {
    pub id: NodeId,
    pub addr: String,
    pub raft: Raft,
    pub state_machine: StateMachineStore,
    server: JoinHandle<()>,
    _dir: TempDir,
}

impl LocalNode {
    /// Starts a node with an empty store on a free loopback port.
    pub async fn start_for_test(id: u64, config: Arc<openraft::Config>) -> LocalNode {
        let dir = tempfile::tempdir().expect("temp dir");
        let (log_store, state_machine) = store::open(dir.path()).expect("open store");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr").to_string();
        let network = HttpNetwork::new(Signer::new(None)).expect("http client");
        let raft = Raft::new(NodeId(id), config, network, log_store, state_machine.clone())
            .await
            .expect("start raft");
        let app = raft_routes(raft.clone());
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("serve");
        });
        LocalNode { id: NodeId(id), addr, raft, state_machine, server, _dir: dir }
    }

    pub fn info(&self) -> NodeInfo {
        NodeInfo::new(self.addr.clone(), format!("node-{}", self.id))
    }

    /// The encoded CI state: equal bytes mean identical replicas.
    pub fn state_bytes(&self) -> Vec<u8> {
        self.state_machine.read(|state| codec::encode(state).expect("state encodes"))
    }

    /// Stops serving and stops Raft, as a crash would look to the others.
    pub async fn kill(self) {
        self.server.abort();
        self.raft.shutdown().await.expect("shutdown raft");
    }

    /// Waits until this node knows a leader other than `not`.
    pub async fn wait_for_leader(&self, not: Option<NodeId>) -> NodeId {
        let metrics = self
            .raft
            .wait(Some(DEADLINE))
            .metrics(
                |m| m.current_leader.is_some_and(|leader| Some(leader) != not),
                "a leader is known",
            )
            .await
            .expect("a leader within the deadline");
        metrics.current_leader.expect("checked by the predicate")
    }

    pub async fn wait_applied(&self, index: u64) {
        self.raft
            .wait(Some(DEADLINE))
            .applied_index_at_least(Some(index), "caught up")
            .await
            .expect("applied within the deadline");
    }

    /// The index of the last entry this node applied.
    pub fn last_applied_index(&self) -> u64 {
        self.raft.metrics().borrow().last_applied.map_or(0, |id| id.index)
    }
}

/// Starts `count` nodes (ids 1..=count), forms a cluster of all of them and waits for
/// a leader; returns the nodes and the leader's id.
pub async fn start_cluster_for_test(
    count: u64,
    config: Arc<openraft::Config>,
) -> (Vec<LocalNode>, NodeId) {
    let mut nodes = Vec::new();
    for id in 1..=count {
        nodes.push(LocalNode::start_for_test(id, config.clone()).await);
    }
    let members: BTreeMap<NodeId, NodeInfo> = nodes.iter().map(|n| (n.id, n.info())).collect();
    nodes[0].raft.initialize(members).await.expect("initialize");
    let leader = nodes[0].wait_for_leader(None).await;
    (nodes, leader)
}

/// A distinct, valid commit id for each `n`.
pub fn commit_for_test(n: u64) -> CommitId {
    CommitId::try_new(&format!("{n:040x}")).expect("40 hex digits")
}

/// The files of a fuzz regression corpus directory, sorted by name: `(name, bytes,
/// refused)`, where `refused` marks the `malformed-*` inputs a decoder must refuse.
pub fn fuzz_corpus_for_test(dir: &std::path::Path) -> Vec<(String, Vec<u8>, bool)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{} holds no inputs", dir.display());
    files
        .into_iter()
        .map(|path| {
            let name = path.file_name().expect("a file name").to_string_lossy().into_owned();
            let bytes = std::fs::read(&path).expect("readable");
            let refused = name.starts_with("malformed-");
            (name, bytes, refused)
        })
        .collect()
}
