//! Artifacts: files a job of a build stores for the jobs after it, kept inside the
//! cluster on runners' disks and indexed in the replicated state.
//!
//! - `store`: this node's content-addressed files, checked, with retention.
//! - `collect`: the files a step's patterns match in its workspace, within the limits.
//!
//! ```text
//!   runner: job passed ── collect ──> store ── PutChunk ──> copy on another node
//!                      ── AddArtifacts { holders } ──> leader ── replicated index
//!   runner of a job that needs it: inputs ── ReadRequest ──> a holder ──> workspace
//!   API (any node): GET /api/v1/jobs/{id}/artifacts/{name} ── a holder ──> client
//! ```
//!
//! A copy goes to the live node that ranks first for the artifact's hash among all but
//! the producer (rendezvous hashing, so the same content goes to the same node), the
//! next one if that fails. Every transfer is checked against the SHA-256 the content is
//! named by, on the side that assembles it.

mod collect;
mod store;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::extract::State;
use axum::routing::post;
use axum::{Extension, Router};
use eventide_consensus::network::{Codec, CodecReply, RpcClient, RpcService};
use eventide_consensus::state::Artifact;
use eventide_consensus::{JobId, NodeId};
use eventide_node::protocol::artifacts::{
    is_sha256_hex, PutChunk, PutResponse, ReadRequest, ReadResponse, CHUNK_BYTES, PUT_PATH,
    READ_PATH,
};
use eventide_node::units::{format_size, MinFreeDisk};
use tracing::{debug, info, warn};

pub use self::collect::collect;
use self::collect::Collected;
pub use self::store::{Keep, Store};
use crate::gossip::Gossip;
use crate::runner::gate::disk_space;

/// How long one chunk may take to cross.
const CHUNK_TIMEOUT: Duration = Duration::from_secs(30);
/// How often old artifact files are looked for.
const PRUNE_INTERVAL: Duration = Duration::from_secs(600);

/// Limits and copies (`--artifact-*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArtifactSettings {
    /// Nodes that keep each artifact, the producer included (1 to 4).
    pub copies: usize,
    /// The largest file a step may store.
    pub max_file: u64,
    /// The most bytes of artifacts one build may store.
    pub max_build: u64,
    /// How long a node keeps an artifact file.
    pub retention: Duration,
}

impl ArtifactSettings {
    pub const DEFAULT: ArtifactSettings = ArtifactSettings {
        copies: 2,
        max_file: 100 * 1024 * 1024,
        max_build: 1024 * 1024 * 1024,
        retention: Duration::from_secs(7 * 24 * 3600),
    };
    /// The most files one step may store (the state's bound).
    pub const MAX_FILES: usize = eventide_consensus::state::MAX_ARTIFACTS_PER_JOB;
}

/// This node's side of artifacts.
pub struct Artifacts {
    me: NodeId,
    settings: ArtifactSettings,
    store: Store,
    data_dir: PathBuf,
    min_free_disk: MinFreeDisk,
    gossip: Arc<Gossip>,
    rpc: RpcClient,
}

impl Artifacts {
    pub fn new(
        me: NodeId,
        settings: ArtifactSettings,
        data_dir: &Path,
        min_free_disk: MinFreeDisk,
        gossip: Arc<Gossip>,
        rpc: RpcClient,
    ) -> Arc<Artifacts> {
        Arc::new(Artifacts {
            me,
            settings,
            store: Store::new(data_dir),
            data_dir: data_dir.to_owned(),
            min_free_disk,
            gossip,
            rpc,
        })
    }

    /// The internal routes other nodes copy artifacts through.
    pub fn routes(self: &Arc<Self>) -> Router {
        Router::new()
            .route(PUT_PATH, post(put_chunk))
            .route(READ_PATH, post(read_chunk))
            .layer(Extension(RpcService("artifacts")))
            .with_state(self.clone())
    }

    /// Deletes artifact files older than the retention, now and then.
    pub async fn prune_forever(self: Arc<Self>) {
        loop {
            let (store, retention) = (self.store.clone(), self.settings.retention);
            let removed =
                tokio::task::spawn_blocking(move || store.prune(retention, SystemTime::now()))
                    .await
                    .unwrap_or(0);
            if removed > 0 {
                info!(removed, "old artifact files deleted");
            }
            tokio::time::sleep(PRUNE_INTERVAL).await;
        }
    }

    /// Collects the files `patterns` match in `workspace`, stores them and copies each to
    /// the other nodes asked for; the records for `AddArtifacts`, and notes for the job's
    /// log. An error is the job's error message.
    pub async fn publish(
        &self,
        workspace: &Path,
        patterns: &[String],
        build_bytes_before: u64,
    ) -> Result<(Vec<Artifact>, Vec<String>), String> {
        if patterns.is_empty() {
            return Ok((Vec::new(), Vec::new()));
        }
        self.check_disk()?;
        let (workspace, patterns, store, settings) =
            (workspace.to_owned(), patterns.to_vec(), self.store.clone(), self.settings);
        let collected = tokio::task::spawn_blocking(move || {
            collect(&workspace, &patterns, &settings, build_bytes_before, &store)
        })
        .await
        .map_err(|error| format!("failed to collect the artifacts: {error}"))??;
        let Collected { files, mut notes } = collected;
        let mut artifacts = Vec::with_capacity(files.len());
        for (name, sha256, size) in files {
            let mut holders = vec![self.me];
            if self.settings.copies > 1 {
                let copied = self.copy(&sha256, size, self.settings.copies - 1).await;
                if copied.len() + 1 < self.settings.copies {
                    notes.push(format!(
                        "artifact {name}: {} of {} copies made (not enough live nodes answered)",
                        copied.len() + 1,
                        self.settings.copies
                    ));
                }
                holders.extend(copied);
            }
            artifacts.push(Artifact { name, sha256, size, holders });
        }
        Ok((artifacts, notes))
    }

    /// Puts `inputs` into `workspace` at their names, from this node's store or a
    /// holder's; notes for the job's log. An error is the job's error message.
    pub async fn fetch_inputs(
        &self,
        workspace: &Path,
        inputs: &[(JobId, Artifact)],
    ) -> Result<Vec<String>, String> {
        let mut notes = Vec::new();
        for (from, artifact) in inputs {
            let local = self
                .ensure_local(artifact)
                .await
                .map_err(|error| format!("artifact {} of job {from}: {error}", artifact.name))?;
            let (workspace, name) = (workspace.to_owned(), artifact.name.clone());
            tokio::task::spawn_blocking(move || collect::place(&local, &workspace, &name))
                .await
                .map_err(|error| format!("failed to place an artifact: {error}"))??;
            notes.push(format!(
                "artifact {} ({}) of job {from} put in the workspace",
                artifact.name,
                format_size(artifact.size)
            ));
        }
        Ok(notes)
    }

    /// The local file of `artifact`, fetched from a holder first if this node has none.
    pub async fn ensure_local(&self, artifact: &Artifact) -> Result<PathBuf, String> {
        if let Some(path) = self.store.path(&artifact.sha256) {
            return Ok(path);
        }
        self.check_disk()?;
        let members = self.gossip.members().await;
        let mut tried = Vec::new();
        for holder in &artifact.holders {
            let Some(member) = members.iter().find(|m| m.id == *holder && m.alive) else {
                tried.push(format!("{holder}: not alive"));
                continue;
            };
            let addr = member.addr.to_string();
            match self.fetch_from(&addr, &artifact.sha256, artifact.size).await {
                Ok(path) => return Ok(path),
                Err(error) => {
                    warn!(peer = %addr, sha256 = %artifact.sha256, error = %error, "artifact fetch failed");
                    tried.push(format!("{} ({addr}): {error}", member.name));
                }
            }
        }
        Err(format!("no holder could give it: {}", tried.join("; ")))
    }

    /// Reads `sha256` from the node at `addr` into this node's store, checked.
    async fn fetch_from(&self, addr: &str, sha256: &str, size: u64) -> Result<PathBuf, String> {
        let mut offset = 0u64;
        loop {
            let request = ReadRequest { sha256: sha256.to_owned(), offset };
            let response: ReadResponse = self
                .rpc
                .call(addr, READ_PATH, &request, CHUNK_TIMEOUT)
                .await
                .map_err(|error| error.to_string())?;
            let (total, data) = match response {
                ReadResponse::Missing => return Err("it holds no copy".to_owned()),
                ReadResponse::Data { size, data } => (size, data),
            };
            if total != size {
                return Err(format!("its copy is {total} bytes, not {size}"));
            }
            if data.is_empty() && offset < size {
                return Err("its copy ended early".to_owned());
            }
            let store = self.store.clone();
            let sha = sha256.to_owned();
            let next = tokio::task::spawn_blocking(move || {
                store.put_chunk(&sha, size, offset, &data, Keep::Cache)
            })
            .await
            .map_err(|error| error.to_string())?
            .map_err(|error| error.to_string())?;
            match next {
                None => break,
                Some(next) if next > offset => offset = next,
                Some(_) => return Err("the copy does not advance".to_owned()),
            }
        }
        self.store.path(sha256).ok_or_else(|| "the copy was not kept".to_owned())
    }

    /// Copies `sha256` to up to `wanted` other live nodes; the ones that stored it.
    async fn copy(&self, sha256: &str, size: u64, wanted: usize) -> Vec<NodeId> {
        let members = self.gossip.members().await;
        let mut candidates: Vec<(u64, NodeId, String)> = members
            .iter()
            .filter(|member| member.alive && member.id != self.me)
            .map(|member| (rank(sha256, member.id), member.id, member.addr.to_string()))
            .collect();
        candidates.sort();
        let mut stored = Vec::new();
        for (_, id, addr) in candidates {
            if stored.len() == wanted {
                break;
            }
            match self.put_to(&addr, sha256, size).await {
                Ok(()) => {
                    debug!(peer = %addr, sha256, "artifact copied");
                    stored.push(id);
                }
                Err(error) => warn!(peer = %addr, sha256, error = %error, "artifact copy failed"),
            }
        }
        stored
    }

    async fn put_to(&self, addr: &str, sha256: &str, size: u64) -> Result<(), String> {
        let mut offset = 0u64;
        // Every answer but a restart moves on by a chunk; a receiver that keeps asking
        // for the same bytes is given up on.
        let rounds = 2 * (size / CHUNK_BYTES as u64 + 2);
        for _ in 0..rounds {
            let store = self.store.clone();
            let sha = sha256.to_owned();
            let read = move || store.read_chunk(&sha, offset, CHUNK_BYTES);
            let (_, data) = tokio::task::spawn_blocking(read)
                .await
                .map_err(|error| error.to_string())?
                .map_err(|error| error.to_string())?
                .ok_or_else(|| "this node lost its copy".to_owned())?;
            let request = PutChunk { sha256: sha256.to_owned(), size, offset, data };
            let response: PutResponse = self
                .rpc
                .call(addr, PUT_PATH, &request, CHUNK_TIMEOUT)
                .await
                .map_err(|error| error.to_string())?;
            match response {
                PutResponse::Stored => return Ok(()),
                PutResponse::Continue { offset: next } if next <= size => offset = next,
                PutResponse::Continue { offset: next } => {
                    return Err(format!("it asked for offset {next} of {size} bytes"))
                }
                PutResponse::Refused { reason } => return Err(reason),
            }
        }
        Err("the copy does not advance".to_owned())
    }

    /// Refuses to store more while the disk is below `--min-free-disk`.
    fn check_disk(&self) -> Result<(), String> {
        let space = disk_space(&self.data_dir)
            .map_err(|error| format!("failed to read the free disk space: {error}"))?;
        let required = self.min_free_disk.required(space.total);
        if space.free < required {
            return Err(format!(
                "the runner's disk is full: {} free, less than {} (--min-free-disk)",
                format_size(space.free),
                self.min_free_disk.describe(space.total)
            ));
        }
        Ok(())
    }
}

/// A node's rank for `sha256`: lowest first.
fn rank(sha256: &str, node: NodeId) -> u64 {
    // FNV-1a of the two: stable across versions and machines.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in sha256.as_bytes().iter().chain(&node.0.to_le_bytes()) {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

async fn put_chunk(
    State(artifacts): State<Arc<Artifacts>>,
    Codec(chunk): Codec<PutChunk>,
) -> CodecReply<PutResponse> {
    if !is_sha256_hex(&chunk.sha256) || chunk.data.len() > CHUNK_BYTES {
        return CodecReply(PutResponse::Refused { reason: "a malformed chunk".to_owned() });
    }
    if chunk.size > artifacts.settings.max_file {
        let reason = format!("{} is more than this node's --artifact-max-file", chunk.size);
        return CodecReply(PutResponse::Refused { reason });
    }
    if chunk.offset == 0 {
        if let Err(reason) = artifacts.check_disk() {
            return CodecReply(PutResponse::Refused { reason });
        }
    }
    let store = artifacts.store.clone();
    let PutChunk { sha256, size, offset, data } = chunk;
    let result = tokio::task::spawn_blocking(move || {
        store.put_chunk(&sha256, size, offset, &data, Keep::Holder)
    })
    .await;
    CodecReply(match result {
        Ok(Ok(None)) => PutResponse::Stored,
        Ok(Ok(Some(next))) => PutResponse::Continue { offset: next },
        Ok(Err(error)) => PutResponse::Refused { reason: error.to_string() },
        Err(error) => PutResponse::Refused { reason: error.to_string() },
    })
}

async fn read_chunk(
    State(artifacts): State<Arc<Artifacts>>,
    Codec(request): Codec<ReadRequest>,
) -> CodecReply<ReadResponse> {
    let store = artifacts.store.clone();
    let result = tokio::task::spawn_blocking(move || {
        store.read_chunk(&request.sha256, request.offset, CHUNK_BYTES)
    })
    .await;
    CodecReply(match result {
        Ok(Ok(Some((size, data)))) => ReadResponse::Data { size, data },
        _ => ReadResponse::Missing,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_copy_target_of_an_artifact_is_stable_and_spread() {
        let nodes: Vec<NodeId> = (1..=10).map(NodeId).collect();
        let first = |sha: &str| nodes.iter().min_by_key(|node| rank(sha, **node)).copied();
        let a = "a".repeat(64);
        assert_eq!(first(&a), first(&a), "the same content goes to the same node");
        let targets: std::collections::BTreeSet<Option<NodeId>> =
            (0..50).map(|n| first(&format!("{n:064x}"))).collect();
        assert!(targets.len() >= 5, "contents spread over the nodes: {targets:?}");
    }
}
