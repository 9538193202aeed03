//! Prometheus metrics of this node, served at `/metrics` in the Prometheus text format.
//!
//! One registry per node, built by `node.rs` and handed as an `Arc<Metrics>` to whoever
//! updates it. Counters and histograms are updated where things happen, one line at each
//! place; gauges are read from the local replica, Raft and gossip when `/metrics` is
//! scraped ([`snapshot`], then [`Metrics::render`]).
//!
//! A job's latencies (`commit_to_result`, `job_duration`) are observed once in the whole
//! cluster: by the runner whose result the cluster accepted. Sum them over every node for
//! the cluster's figures; jobs that end without a runner's result (cancelled, given up
//! after lost runners) are not observed.
//!
//! ```text
//!  runner ── claim_to_start / job_reported ─┐
//!  http server ── http_connection_refused ──┤
//!  consensus RpcClient ── RpcErrors ────────┼─> Metrics ── render <── snapshot <── /metrics
//!  watch_leader (RaftView) ─────────────────┘                 (replica, RaftView, gossip)
//! ```

use std::sync::atomic::AtomicU64;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use eventide_consensus::network::RpcErrors;
use eventide_consensus::store::StateMachineStore;
use eventide_consensus::{JobFilter, JobStatus, NodeId, Timestamp};
use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::gossip::{Gossip, RaftRole, RoundCounts};
use crate::raft_view::RaftView;

/// The prefix of every metric name.
const PREFIX: &str = "eventide";

/// Bucket bounds (seconds) for the time from a claim to the command's start.
const CLAIM_BUCKETS: [f64; 12] =
    [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];
/// Bucket bounds (seconds) for job durations and commit-to-result latencies.
const JOB_BUCKETS: [f64; 14] =
    [0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0];

type Labels = [(&'static str, String); 1];

fn label(name: &'static str, value: &str) -> Labels {
    [(name, value.to_owned())]
}

/// Every metric of the node.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    jobs: Family<Labels, Gauge>,
    queue_depth: Gauge,
    claim_to_start: Histogram,
    commit_to_result: Histogram,
    job_duration: Histogram,
    raft_term: Gauge,
    raft_is_leader: Gauge,
    raft_applied_index: Gauge,
    raft_leader_changes: Counter,
    gossip_nodes: Family<Labels, Gauge>,
    gossip_rounds: Family<Labels, Counter>,
    gossip_tick: Gauge<f64, AtomicU64>,
    rpc_errors: Family<Labels, Counter>,
    http_refused: Family<Labels, Counter>,
    runner_slots: Gauge,
    runner_busy_slots: Gauge,
    forge_statuses: Family<Labels, Counter>,
    forge_status_post: Histogram,
    webhook_deliveries: Family<Labels, Counter>,
    /// The internal RPC failure counts, copied into `rpc_errors` at each scrape.
    raft_errors: OnceLock<RpcErrors>,
    /// One scrape at a time: a scrape sets gauges, then encodes them.
    scrape: Mutex<()>,
}

/// What a scrape reads from the node: the gauges' values and the Raft transport's failures.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Jobs in the local replica, by state.
    pub jobs: Vec<(JobStatus, u64)>,
    pub term: u64,
    pub is_leader: bool,
    pub applied_index: u64,
    pub alive_nodes: u64,
    pub dead_nodes: u64,
    /// This node's own gossip rounds: started, and held back at the client pace.
    pub gossip_rounds: RoundCounts,
    /// How often this node's gossip ticks now.
    pub gossip_tick: Duration,
    pub slots: u32,
    pub busy_slots: u32,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix(PREFIX);
        let metrics = Metrics {
            jobs: Family::default(),
            queue_depth: Gauge::default(),
            claim_to_start: Histogram::new(CLAIM_BUCKETS),
            commit_to_result: Histogram::new(JOB_BUCKETS),
            job_duration: Histogram::new(JOB_BUCKETS),
            raft_term: Gauge::default(),
            raft_is_leader: Gauge::default(),
            raft_applied_index: Gauge::default(),
            raft_leader_changes: Counter::default(),
            gossip_nodes: Family::default(),
            gossip_rounds: Family::default(),
            gossip_tick: Gauge::default(),
            rpc_errors: Family::default(),
            http_refused: Family::default(),
            runner_slots: Gauge::default(),
            runner_busy_slots: Gauge::default(),
            forge_statuses: Family::default(),
            forge_status_post: Histogram::new(CLAIM_BUCKETS),
            webhook_deliveries: Family::default(),
            raft_errors: OnceLock::new(),
            scrape: Mutex::new(()),
            registry: Registry::default(),
        };
        let m = &metrics;
        // name, metric, help: one line each.
        macro_rules! register {
            ($($name:literal, $metric:expr, $help:literal;)*) => {
                $(registry.register($name, $help, $metric.clone());)*
            };
        }
        register! {
            "jobs", m.jobs, "Jobs in this node's replica, by state";
            "queue_depth", m.queue_depth, "Jobs waiting for a runner";
            "claim_to_start_seconds", m.claim_to_start,
                "Time on this node's runner from a claimed job to the start of its command";
            "commit_to_result_seconds", m.commit_to_result,
                "Time from a job's creation to its result, observed by the runner that reported it";
            "job_duration_seconds", m.job_duration,
                "Run time of jobs whose result this node's runner reported";
            "raft_term", m.raft_term, "The current Raft term";
            "raft_is_leader", m.raft_is_leader, "1 if this node is the Raft leader, else 0";
            "raft_applied_index", m.raft_applied_index, "The last Raft log index this node applied";
            "raft_leader_changes", m.raft_leader_changes, "Times this node learned of a new leader";
            "gossip_nodes", m.gossip_nodes, "Nodes known by gossip, by state (alive or dead)";
            "gossip_rounds", m.gossip_rounds,
                "Gossip rounds this node opened, by outcome (started, or held at the client pace)";
            "gossip_tick_seconds", m.gossip_tick,
                "How often this node's gossip ticks: --gossip-interval, or --client-gossip-interval on a settled client";
            "internal_rpc_errors", m.rpc_errors, "Failed internal RPCs sent by this node, by RPC";
            "http_refused_connections", m.http_refused,
                "HTTP connections answered 503 and closed, by reason (full, reserved)";
            "runner_slots", m.runner_slots, "Runner slots of this node";
            "runner_busy_slots", m.runner_busy_slots, "Runner slots of this node running a job";
            "forge_statuses", m.forge_statuses,
                "Commit status posts to forges by this node, by result (posted, retry, refused)";
            "forge_status_post_seconds", m.forge_status_post,
                "Time a forge took to answer a commit status post";
            "webhook_deliveries", m.webhook_deliveries,
                "Forge webhook deliveries to this node, by result (accepted, repeated, ignored, refused)";
        }
        for result in ["posted", "retry", "refused"] {
            let _ = metrics.forge_statuses.get_or_create(&label("result", result));
        }
        for result in ["accepted", "repeated", "ignored", "refused"] {
            let _ = metrics.webhook_deliveries.get_or_create(&label("result", result));
        }
        // Both reasons are exported from the start, so that a scrape shows them at 0.
        for reason in ["full", "reserved"] {
            let _ = metrics.http_refused.get_or_create(&label("reason", reason));
        }
        Metrics { registry, ..metrics }
    }

    /// A runner's job reached the start of its command `elapsed` after it was claimed.
    pub fn claim_to_start(&self, elapsed: Duration) {
        self.claim_to_start.observe(elapsed.as_secs_f64());
    }

    /// The cluster accepted this node's result of a job created at `created_at` (if the
    /// replica still has it), finished at `finished_at` after running `duration_ms`.
    pub fn job_reported(
        &self,
        created_at: Option<Timestamp>,
        finished_at: Timestamp,
        duration_ms: u64,
    ) {
        if let Some(created_at) = created_at {
            self.commit_to_result.observe(seconds(finished_at.millis_since(created_at)));
        }
        self.job_duration.observe(seconds(duration_ms));
    }

    /// A commit status post to a forge ended with `result` (`posted`, `retry`,
    /// `refused`) after `elapsed`.
    pub fn forge_status_posted(&self, result: &str, elapsed: Duration) {
        self.forge_statuses.get_or_create(&label("result", result)).inc();
        self.forge_status_post.observe(elapsed.as_secs_f64());
    }

    /// A webhook delivery was `accepted` (a round asked for), `repeated` (a delivery id
    /// seen before), `ignored` (a ping, a tag, another event) or `refused` (401, 404,
    /// 400, 413).
    pub fn webhook_delivered(&self, result: &str) {
        self.webhook_deliveries.get_or_create(&label("result", result)).inc();
    }

    /// An HTTP connection was refused: `full` (the cap is reached) or `reserved` (a
    /// public request in the share kept for internal RPC).
    pub fn http_connection_refused(&self, reason: &str) {
        self.http_refused.get_or_create(&label("reason", reason)).inc();
    }

    /// Reports these internal RPC failures (append, vote, snapshot, claim, …) as
    /// `internal_rpc_errors`. The first counts given are kept.
    pub fn count_rpc_errors(&self, errors: RpcErrors) {
        let _ = self.raft_errors.set(errors);
    }

    /// The Prometheus text of every metric, with the gauges set from `snapshot`.
    pub fn render(&self, snapshot: &Snapshot) -> Result<String, std::fmt::Error> {
        let _one_scrape = self.scrape.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for (status, count) in &snapshot.jobs {
            self.jobs.get_or_create(&label("state", status.as_str())).set(gauge(*count));
            if *status == JobStatus::Queued {
                self.queue_depth.set(gauge(*count));
            }
        }
        self.raft_term.set(gauge(snapshot.term));
        self.raft_is_leader.set(i64::from(snapshot.is_leader));
        self.raft_applied_index.set(gauge(snapshot.applied_index));
        self.gossip_nodes.get_or_create(&label("state", "alive")).set(gauge(snapshot.alive_nodes));
        self.gossip_nodes.get_or_create(&label("state", "dead")).set(gauge(snapshot.dead_nodes));
        let rounds = snapshot.gossip_rounds;
        for (outcome, total) in [("started", rounds.started), ("held", rounds.held)] {
            // Only this copy moves these counters, so the difference is exact.
            let counter = self.gossip_rounds.get_or_create(&label("outcome", outcome));
            counter.inc_by(total.saturating_sub(counter.get()));
        }
        self.gossip_tick.set(snapshot.gossip_tick.as_secs_f64());
        self.runner_slots.set(i64::from(snapshot.slots));
        self.runner_busy_slots.set(i64::from(snapshot.busy_slots));
        if let Some(errors) = self.raft_errors.get() {
            for (rpc, total) in errors.counts() {
                // Only this copy moves these counters, so the difference is exact.
                let counter = self.rpc_errors.get_or_create(&label("rpc", &rpc));
                counter.inc_by(total.saturating_sub(counter.get()));
            }
        }
        let mut text = String::new();
        prometheus_text::encode(&mut text, &self.registry)?;
        Ok(text)
    }
}

/// The content type of [`Metrics::render`]'s text.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

fn seconds(millis: u64) -> f64 {
    Duration::from_millis(millis).as_secs_f64()
}

fn gauge(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// Reads the gauges' values: job counts from the replica, Raft's term, role and applied
/// index, gossip's members (`me`, with its `slots`, counts as alive).
pub async fn snapshot(
    state_machine: &StateMachineStore,
    raft: &RaftView,
    gossip: &Gossip,
    me: NodeId,
    slots: u32,
) -> Snapshot {
    let raft = raft.status();
    let jobs = state_machine.read(|state| {
        let mut counts: Vec<(JobStatus, u64)> =
            JobStatus::ALL.into_iter().map(|status| (status, 0)).collect();
        for job in state.jobs(&JobFilter::default()) {
            if let Some(entry) = counts.iter_mut().find(|(status, _)| *status == job.status) {
                entry.1 += 1;
            }
        }
        counts
    });
    let members = gossip.members().await;
    let alive = members.iter().filter(|m| m.alive || m.id == me).count() as u64;
    let busy = gossip.busy();
    Snapshot {
        jobs,
        term: raft.term,
        is_leader: raft.role == RaftRole::Leader,
        applied_index: raft.applied_index,
        alive_nodes: alive,
        dead_nodes: members.len() as u64 - alive,
        gossip_rounds: gossip.round_counts(),
        gossip_tick: gossip.tick_interval().await,
        slots,
        busy_slots: busy,
    }
}

/// Counts the leaders this node learns of; runs until the process stops.
pub async fn watch_leader(metrics: std::sync::Arc<Metrics>, raft: RaftView) {
    let mut changes = raft.changes();
    let mut known = None;
    loop {
        let leader = changes.latest().leader;
        if leader.is_some() && leader != known {
            metrics.raft_leader_changes.inc();
            known = leader;
        }
        if !changes.changed().await {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(text: &str, name: &str) -> Option<f64> {
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse::<f64>().ok())
    }

    fn snapshot() -> Snapshot {
        Snapshot {
            jobs: JobStatus::ALL.into_iter().zip(1..).collect(),
            term: 7,
            is_leader: true,
            applied_index: 42,
            alive_nodes: 2,
            dead_nodes: 1,
            gossip_tick: Duration::from_millis(200),
            gossip_rounds: RoundCounts { started: 5, held: 20 },
            slots: 4,
            busy_slots: 3,
        }
    }

    #[test]
    fn gauges_show_the_snapshot() {
        let metrics = Metrics::new();
        let text = metrics.render(&snapshot()).expect("rendered");
        assert_eq!(sample(&text, "eventide_jobs{state=\"queued\"}"), Some(1.0), "{text}");
        assert_eq!(sample(&text, "eventide_jobs{state=\"cancelled\"}"), Some(7.0), "{text}");
        assert_eq!(sample(&text, "eventide_queue_depth"), Some(1.0));
        assert_eq!(sample(&text, "eventide_raft_term"), Some(7.0));
        assert_eq!(sample(&text, "eventide_raft_is_leader"), Some(1.0));
        assert_eq!(sample(&text, "eventide_raft_applied_index"), Some(42.0));
        assert_eq!(sample(&text, "eventide_gossip_nodes{state=\"dead\"}"), Some(1.0));
        assert_eq!(sample(&text, "eventide_gossip_rounds_total{outcome=\"held\"}"), Some(20.0));
        assert_eq!(sample(&text, "eventide_gossip_tick_seconds"), Some(0.2));
        assert_eq!(sample(&text, "eventide_runner_slots"), Some(4.0));
        assert_eq!(sample(&text, "eventide_runner_busy_slots"), Some(3.0));
        assert!(text.contains("# TYPE eventide_raft_leader_changes_total counter"), "{text}");
        // A later scrape's counters move by the difference only.
        let later = Snapshot { gossip_rounds: RoundCounts { started: 6, held: 24 }, ..snapshot() };
        let text_later = metrics.render(&later).expect("rendered");
        assert_eq!(
            sample(&text_later, "eventide_gossip_rounds_total{outcome=\"started\"}"),
            Some(6.0)
        );
        assert!(text.contains("# TYPE eventide_job_duration_seconds histogram"), "{text}");
    }

    #[test]
    fn results_fill_both_latency_histograms() {
        let metrics = Metrics::new();
        metrics.job_reported(Some(Timestamp(1_000)), Timestamp(4_000), 1_500);
        metrics.job_reported(None, Timestamp(9_000), 200);
        let text = metrics.render(&Snapshot::default()).expect("rendered");
        assert_eq!(sample(&text, "eventide_commit_to_result_seconds_count"), Some(1.0), "{text}");
        assert_eq!(sample(&text, "eventide_commit_to_result_seconds_sum"), Some(3.0));
        assert_eq!(sample(&text, "eventide_job_duration_seconds_count"), Some(2.0));
        assert_eq!(sample(&text, "eventide_job_duration_seconds_sum"), Some(1.7));
        assert_eq!(
            sample(&text, "eventide_job_duration_seconds_bucket{le=\"0.25\"}"),
            Some(1.0),
            "{text}"
        );
        assert_eq!(sample(&text, "eventide_job_duration_seconds_bucket{le=\"+Inf\"}"), Some(2.0));
        metrics.claim_to_start(Duration::from_millis(30));
        let text = metrics.render(&Snapshot::default()).expect("rendered");
        assert_eq!(sample(&text, "eventide_claim_to_start_seconds_count"), Some(1.0));
    }

    #[test]
    fn refused_http_connections_are_counted_by_reason() {
        let metrics = Metrics::new();
        for reason in ["full", "full", "reserved"] {
            metrics.http_connection_refused(reason);
        }
        let text = metrics.render(&Snapshot::default()).expect("rendered");
        let refused = |reason: &str| {
            sample(
                &text,
                &format!("eventide_http_refused_connections_total{{reason=\"{reason}\"}}"),
            )
        };
        assert_eq!((refused("full"), refused("reserved")), (Some(2.0), Some(1.0)), "{text}");
    }

    #[tokio::test]
    async fn raft_transport_errors_are_counted_once() {
        use eventide_consensus::network::HttpNetwork;
        use eventide_consensus::types::{Vote, VoteRequest};
        use eventide_consensus::{NodeId, NodeInfo};
        use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};

        let metrics = Metrics::new();
        let mut network =
            HttpNetwork::new(eventide_consensus::auth::Signer::new(None)).expect("http client");
        metrics.count_rpc_errors(network.errors());
        network.errors().record("/internal/dispatch/claim");
        // Nothing listens on port 1 of loopback: the vote is refused in transport.
        let mut peer = network.new_client(NodeId(2), &NodeInfo::new("127.0.0.1:1", "gone")).await;
        let request = VoteRequest::new(Vote::new(1, NodeId(1)), None);
        let option = RPCOption::new(Duration::from_secs(1));
        assert!(peer.vote(request, option).await.is_err());
        for _ in 0..2 {
            let text = metrics.render(&Snapshot::default()).expect("rendered");
            let errors = |rpc: &str| {
                sample(&text, &format!("eventide_internal_rpc_errors_total{{rpc=\"{rpc}\"}}"))
            };
            assert_eq!(errors("vote"), Some(1.0), "{text}");
            assert_eq!(errors("append"), Some(0.0), "{text}");
            assert_eq!(errors("claim"), Some(1.0), "{text}");
        }
    }
}
