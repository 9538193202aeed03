//! `/metrics` on every node: well-formed Prometheus text, every documented metric, and
//! values that move when jobs run, peers fail and leaders change.

use std::net::SocketAddr;

use eventide_tests::prometheus::{self, Exposition};
use eventide_tests::repo::GitRepo;
use eventide_tests::{http, wait_for_final_jobs, wait_until, Cluster, Options, DEADLINE};

/// Every metric family a node exports (the table in README.md and docs/api.md).
const FAMILIES: [(&str, &str); 19] = [
    ("eventide_jobs", "gauge"),
    ("eventide_queue_depth", "gauge"),
    ("eventide_claim_to_start_seconds", "histogram"),
    ("eventide_commit_to_result_seconds", "histogram"),
    ("eventide_job_duration_seconds", "histogram"),
    ("eventide_raft_term", "gauge"),
    ("eventide_raft_is_leader", "gauge"),
    ("eventide_raft_applied_index", "gauge"),
    ("eventide_raft_leader_changes_total", "counter"),
    ("eventide_gossip_nodes", "gauge"),
    ("eventide_gossip_rounds_total", "counter"),
    ("eventide_gossip_tick_seconds", "gauge"),
    ("eventide_internal_rpc_errors_total", "counter"),
    ("eventide_http_refused_connections_total", "counter"),
    ("eventide_runner_slots", "gauge"),
    ("eventide_runner_busy_slots", "gauge"),
    ("eventide_forge_statuses_total", "counter"),
    ("eventide_forge_status_post_seconds", "histogram"),
    ("eventide_webhook_deliveries_total", "counter"),
];

fn scrape(addr: SocketAddr) -> Exposition {
    let (code, text) = http::get(addr, "/metrics").expect("node answers /metrics");
    assert_eq!(code, 200, "{text}");
    prometheus::parse(&text).unwrap_or_else(|error| panic!("bad exposition: {error}\n{text}"))
}

fn value(metrics: &Exposition, name: &str, labels: &[(&str, &str)]) -> f64 {
    metrics.value(name, labels).unwrap_or_else(|| panic!("no sample {name}{labels:?}"))
}

/// The sum of one sample over every running node.
fn cluster_sum(cluster: &Cluster, name: &str, labels: &[(&str, &str)]) -> f64 {
    cluster.running().map(|i| value(&scrape(cluster.nodes[i].addr), name, labels)).sum()
}

#[test]
fn every_node_exports_every_metric_and_they_move_when_a_job_runs() {
    let repo = GitRepo::new();
    repo.configure("echo Ran 1 test; echo OK", "");
    repo.commit("first");
    let cluster = Cluster::start(3, Options::watching(repo.url()));
    let leader = cluster.wait_for_agreed_leader();
    for index in 0..3 {
        wait_for_final_jobs(&cluster, index, 1, DEADLINE);
    }
    // The first job's result reaches the runner's metrics once its write is answered.
    wait_until("the first job in the duration histogram", DEADLINE, || {
        (cluster_sum(&cluster, "eventide_job_duration_seconds_count", &[]) == 1.0).then_some(())
    });

    wait_until("every node alive by gossip and one leader by metrics", DEADLINE, || {
        let alive = cluster_sum(&cluster, "eventide_gossip_nodes", &[("state", "alive")]);
        let leaders = cluster_sum(&cluster, "eventide_raft_is_leader", &[]);
        (alive == 9.0 && leaders == 1.0).then_some(())
    });

    let before: Vec<Exposition> = cluster.nodes.iter().map(|n| scrape(n.addr)).collect();
    for metrics in &before {
        for (name, kind) in FAMILIES {
            let family = metrics.families.get(name).unwrap_or_else(|| panic!("{name} missing"));
            assert_eq!(family.kind, kind, "{name}");
            assert!(family.help.as_deref().is_some_and(|h| !h.is_empty()), "{name} has no help");
        }
        assert_eq!(value(metrics, "eventide_jobs", &[("state", "passed")]), 1.0);
        assert_eq!(value(metrics, "eventide_queue_depth", &[]), 0.0);
        assert!(value(metrics, "eventide_raft_term", &[]) >= 1.0);
        assert!(value(metrics, "eventide_raft_applied_index", &[]) >= 1.0);
        assert!(value(metrics, "eventide_raft_leader_changes_total", &[]) >= 1.0);
        assert_eq!(value(metrics, "eventide_runner_slots", &[]), 1.0);
    }
    let applied = value(&before[leader], "eventide_raft_applied_index", &[]);

    repo.configure("echo FAILED; exit 1", "");
    repo.commit("second");
    cluster.nodes[leader].notify();
    for index in 0..3 {
        wait_for_final_jobs(&cluster, index, 2, DEADLINE);
    }
    wait_until("the second job in the duration histogram", DEADLINE, || {
        (cluster_sum(&cluster, "eventide_job_duration_seconds_count", &[]) == 2.0).then_some(())
    });
    for node in &cluster.nodes {
        let metrics = scrape(node.addr);
        assert_eq!(value(&metrics, "eventide_jobs", &[("state", "failed")]), 1.0);
        assert_eq!(value(&metrics, "eventide_jobs", &[("state", "passed")]), 1.0);
    }
    assert_eq!(cluster_sum(&cluster, "eventide_commit_to_result_seconds_count", &[]), 2.0);
    // A job requeued after a lost lease is claimed twice, so at least once per job.
    assert!(cluster_sum(&cluster, "eventide_claim_to_start_seconds_count", &[]) >= 2.0);
    let after = scrape(cluster.nodes[leader].addr);
    assert!(value(&after, "eventide_raft_applied_index", &[]) > applied);
}

#[test]
fn a_lost_leader_shows_in_terms_leader_changes_errors_and_gossip() {
    let mut cluster = Cluster::start(3, Options::default());
    let old = cluster.wait_for_agreed_leader();
    let term = value(&scrape(cluster.nodes[old].addr), "eventide_raft_term", &[]);
    let survivors: Vec<usize> = (0..3).filter(|&i| i != old).collect();
    let changes: Vec<f64> = survivors
        .iter()
        .map(|&i| value(&scrape(cluster.nodes[i].addr), "eventide_raft_leader_changes_total", &[]))
        .collect();
    cluster.kill(old);
    let new = cluster.wait_for_agreed_leader();

    wait_until("one leader among the survivors by metrics", DEADLINE, || {
        (cluster_sum(&cluster, "eventide_raft_is_leader", &[]) == 1.0).then_some(())
    });
    for (&index, before) in survivors.iter().zip(changes) {
        let metrics = scrape(cluster.nodes[index].addr);
        assert!(value(&metrics, "eventide_raft_term", &[]) > term);
        assert!(value(&metrics, "eventide_raft_leader_changes_total", &[]) > before);
    }
    // The new leader keeps trying to reach the old one, and gossip reports it dead.
    wait_until("failed appends to the dead node and a dead node in gossip", DEADLINE, || {
        let metrics = scrape(cluster.nodes[new].addr);
        let errors = value(&metrics, "eventide_internal_rpc_errors_total", &[("rpc", "append")]);
        let dead = value(&metrics, "eventide_gossip_nodes", &[("state", "dead")]);
        (errors > 0.0 && dead == 1.0).then_some(())
    });
}

/// The metric names in the first column of the metrics tables of a document.
fn documented_families(relative: &str) -> std::collections::BTreeSet<String> {
    let path = format!("{}/../{relative}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    text.lines()
        .filter(|line| line.starts_with("| `eventide_"))
        .filter_map(|line| line.split('|').nth(1))
        .flat_map(|cell| cell.split('`').skip(1).step_by(2).map(str::to_owned).collect::<Vec<_>>())
        .map(|name| name.split('{').next().unwrap_or_default().to_owned())
        .collect()
}

#[test]
fn the_documented_metrics_are_the_exported_ones() {
    let exported: std::collections::BTreeSet<String> =
        FAMILIES.iter().map(|(name, _)| (*name).to_owned()).collect();
    for document in ["README.md", "docs/api.md"] {
        assert_eq!(documented_families(document), exported, "the metrics table of {document}");
    }
}
