//! A running node: opens the data dir, starts Raft, gossip, the HTTP server, the cluster
//! task and the roles, and stops them in order on SIGTERM or Ctrl-C.
//!
//! This module only builds and wires: each role gets exactly the handles it uses (the
//! [`RaftView`], the replica, the [`Writer`], gossip, the metrics), and nothing reaches
//! back up here.
//!
//! ```text
//!   Raft ──> RaftView ─┬─> cluster (+ Raft for membership changes)
//!   replica, Writer ───┼─> observer, dispatcher, statuses, runner, repos (--repo)
//!   gossip, Metrics ───┴─> ApiHandles ──> api::router (a state per route group) ──> server::serve
//! ```

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use eventide_consensus::auth::Signer;
use eventide_consensus::network::{HttpNetwork, LeaderHint, RpcClient, Writer};
use eventide_consensus::store;
use eventide_consensus::types::Raft;
use eventide_consensus::{NodeId, NodeInfo};
use tokio::sync::watch;
use tracing::{info, warn, Instrument};

use crate::api::{self, ApiHandles};
use crate::artifacts::Artifacts;
use crate::cluster::{self, ClusterSettings};
use crate::config::RunConfig;
use crate::dispatcher::Dispatcher;
use crate::gossip::{Gossip, SelfInfo};
use crate::health::{ObserverHealth, ObserverWake, Phase};
use crate::joblog::RunningJobs;
use crate::metrics::{self, Metrics};
use crate::observer::{Observer, ObserverHandles, ObserverSettings};
use crate::raft_view::RaftView;
use crate::runner::{Runner, RunnerHandles, RunnerSettings};
use crate::statuses::{Poster, PosterHandles, PosterSettings};
use crate::{repos, server};

/// How long a write waits for a leader to be elected before it fails.
const WRITE_LEADER_WAIT: Duration = Duration::from_secs(5);

/// Runs a node until SIGTERM or SIGINT.
pub async fn run(config: RunConfig) -> anyhow::Result<()> {
    let data_dir = config.data_dir.clone();
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("--data-dir {}: failed to create", data_dir.display()))?;
    let id = load_or_create_id(&data_dir)?;
    let span = tracing::info_span!("node", node_id = %id);
    run_node(id, config).instrument(span).await
}

async fn run_node(id: NodeId, config: RunConfig) -> anyhow::Result<()> {
    let raft_dir = config.data_dir.join("raft");
    let (log_store, state_machine) = store::open(&raft_dir).map_err(|e| {
        anyhow::anyhow!(
            "--data-dir {}: failed to open the raft store: {e}",
            config.data_dir.display()
        )
    })?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("--listen {}: failed to bind tcp", config.listen))?;
    let raft_config = Arc::new(config.raft.to_config("eventide")?);
    let signer = Signer::new(config.secret.clone());
    let rpc = RpcClient::new(signer.clone()).context("failed to build the http client")?;
    let network = HttpNetwork::with_client(rpc.clone());
    let metrics = Arc::new(Metrics::new());
    metrics.count_rpc_errors(network.errors());
    let raft = Raft::new(id, raft_config, network, log_store, state_machine.clone())
        .await
        .context("failed to start raft")?;
    let view = RaftView::new(raft.clone());
    let gossip = Arc::new(
        Gossip::start(SelfInfo {
            id,
            listen: config.listen,
            advertise: config.advertise,
            name: config.name.clone(),
            slots: config.runner_slots,
            labels: config.labels.iter().cloned().collect(),
            seeds: config.seeds.clone(),
            interval: config.gossip_interval,
            client_interval: config.client_gossip_interval,
            server_eligible: config.server_eligible,
            rpc: rpc.clone(),
        })
        .await?,
    );
    let writer = Writer::new(raft.clone(), WRITE_LEADER_WAIT, signer.clone())
        .context("failed to build the http client")?
        .with_leader_hint(gossip_leader(gossip.clone()));
    let (phase_tx, phase_rx) = watch::channel(Phase::default());
    let wake_observer = Arc::new(ObserverWake::default());
    let observer_health = Arc::new(ObserverHealth::default());
    info!(
        listen = %config.listen,
        advertise = %config.advertise,
        name = %config.name,
        data_dir = %config.data_dir.display(),
        "node started"
    );
    if config.secret.is_some() {
        info!(
            private_api = config.private_api,
            "cluster secret set: internal rpc, gossip and api writes are authenticated (auth: on)"
        );
    } else {
        warn!("NO CLUSTER SECRET: internal rpc, gossip and the api are not authenticated; anyone who can reach this node can join the cluster and run commands (auth: off; set --secret-file)");
    }

    let (stop_tx, mut stop_rx) = watch::channel(false);
    let running = Arc::new(RunningJobs::default());
    let dispatcher =
        Dispatcher::new(view.clone(), state_machine.clone(), writer.clone(), gossip.clone());
    let artifacts = Artifacts::new(
        id,
        config.artifacts,
        &config.data_dir,
        config.min_free_disk,
        gossip.clone(),
        rpc.clone(),
    );
    let api_handles = ApiHandles {
        id,
        name: config.name.clone(),
        advertise: config.advertise,
        secret: config.secret.clone(),
        private_api: config.private_api,
        data_dir: config.data_dir.clone(),
        runner_slots: config.runner_slots,
        raft: view.clone(),
        state_machine: state_machine.clone(),
        writer: writer.clone(),
        gossip: gossip.clone(),
        phase: phase_rx.clone(),
        wake_observer: wake_observer.clone(),
        observer_health: observer_health.clone(),
        metrics: metrics.clone(),
        running: running.clone(),
        artifacts: artifacts.clone(),
    };
    let app = api::router(
        api_handles,
        raft.clone(),
        dispatcher.routes().merge(gossip.admission_routes()).merge(artifacts.routes()),
    )?;
    let stopped = async move {
        let _ = stop_rx.wait_for(|stop| *stop).await;
    };
    let server = tokio::spawn(
        server::serve(listener, app, config.http, metrics.clone(), stopped).in_current_span(),
    );
    let settings = ClusterSettings {
        me: id,
        bootstrap_expect: config.bootstrap_expect as usize,
        voters: config.voters as usize,
        standby: config.standby as usize,
        dead_voter_grace: config.dead_voter_grace,
    };
    let cluster_task = tokio::spawn(
        cluster::run(settings, view.clone(), raft.clone(), gossip.clone(), phase_tx)
            .in_current_span(),
    );
    let repos_task = tokio::spawn(
        repos::add_configured(config.repos.clone(), state_machine.clone(), writer.clone())
            .in_current_span(),
    );
    let observer = Observer::new(
        ObserverSettings { poll_interval: config.poll_interval, data_dir: config.data_dir.clone() },
        ObserverHandles {
            raft: view.clone(),
            state_machine: state_machine.clone(),
            writer: writer.clone(),
            wake: wake_observer,
            health: observer_health,
            secret: config.secret.clone(),
        },
    );
    let observer_task = tokio::spawn(observer.run().in_current_span());
    let dispatcher_task = tokio::spawn(dispatcher.run().in_current_span());
    let poster = Poster::new(
        PosterSettings { public_url: config.public_url.clone() },
        PosterHandles {
            raft: view.clone(),
            state_machine: state_machine.clone(),
            writer: writer.clone(),
            secret: config.secret.clone(),
            metrics: metrics.clone(),
        },
    )?;
    let poster_task = tokio::spawn(poster.run().in_current_span());
    let runner = Runner::new(
        RunnerSettings {
            id,
            slots: config.runner_slots,
            labels: config.labels.clone(),
            data_dir: config.data_dir.clone(),
            mirrors: config.runner_mirrors.clone(),
            min_free_disk: config.min_free_disk,
            sandbox: config.sandbox.clone(),
        },
        RunnerHandles {
            raft: view.clone(),
            state_machine,
            writer,
            gossip: gossip.clone(),
            rpc,
            metrics: metrics.clone(),
            secret: config.secret.clone(),
            running,
            phase: phase_rx.clone(),
            artifacts: artifacts.clone(),
        },
    )?;
    let runner_task = tokio::spawn(runner.run().in_current_span());
    let metrics_task = tokio::spawn(metrics::watch_leader(metrics, view).in_current_span());
    let artifacts_task = tokio::spawn(artifacts.prune_forever().in_current_span());

    wait_for_signal().await;
    info!("shutting down");
    let tasks = [
        cluster_task,
        repos_task,
        observer_task,
        dispatcher_task,
        poster_task,
        runner_task,
        metrics_task,
        artifacts_task,
    ];
    for task in tasks {
        task.abort();
    }
    gossip.leave().await;
    if let Err(error) = raft.shutdown().await {
        warn!(error = %error, "raft did not stop cleanly");
    }
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(5), server).await;
    info!("stopped");
    Ok(())
}

/// The leader as gossip shows it, for writes from a node that follows no Raft leader
/// (a client).
fn gossip_leader(gossip: Arc<Gossip>) -> LeaderHint {
    Arc::new(move || {
        let gossip = gossip.clone();
        Box::pin(async move {
            let leader = gossip.leader().await?;
            Some((leader.id, NodeInfo::new(leader.addr.to_string(), leader.name.clone())))
        })
    })
}

async fn wait_for_signal() {
    let mut terminate =
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => signal,
            Err(error) => {
                warn!(error = %error, "cannot listen for SIGTERM; only Ctrl-C stops the node");
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
    tokio::select! {
        _ = terminate.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

/// The node id kept in the data dir, made on first start.
fn load_or_create_id(data_dir: &Path) -> anyhow::Result<NodeId> {
    let path = data_dir.join("node-id");
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let id = text.trim().parse::<u64>().with_context(|| {
                format!("--data-dir: {} does not hold a node id", path.display())
            })?;
            Ok(NodeId(id))
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            // RandomState is seeded from the operating system's randomness.
            let id = loop {
                let mut hasher = RandomState::new().build_hasher();
                hasher.write_u64(std::process::id().into());
                let candidate = hasher.finish();
                if candidate != 0 {
                    break candidate;
                }
            };
            let temporary = data_dir.join("node-id.tmp");
            std::fs::write(&temporary, format!("{id}\n"))
                .and_then(|()| std::fs::rename(&temporary, &path))
                .with_context(|| {
                    format!("--data-dir {}: failed to write the node id", data_dir.display())
                })?;
            Ok(NodeId(id))
        }
        Err(error) => Err(error).with_context(|| {
            format!("--data-dir {}: failed to read the node id", data_dir.display())
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_node_id_is_made_once_and_kept() {
        let dir = tempfile::tempdir().expect("temp dir");
        let first = load_or_create_id(dir.path()).expect("created");
        let second = load_or_create_id(dir.path()).expect("read back");
        assert_eq!(first, second);
        assert_ne!(first, NodeId(0));
        let other = tempfile::tempdir().expect("temp dir");
        assert_ne!(load_or_create_id(other.path()).expect("created"), first);
    }

    #[test]
    fn a_corrupt_id_file_is_an_error_not_a_new_identity() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("node-id"), "garbage").expect("write");
        let error = load_or_create_id(dir.path()).expect_err("refused").to_string();
        assert!(error.contains("node id"), "{error}");
    }
}
