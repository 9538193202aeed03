//! A runner lost in the middle of a job: the job runs again elsewhere, and a late result
//! from the lost runner is refused, so exactly one final result stands.

use std::time::Duration;

use eventide_tests::repo::GitRepo;
use eventide_tests::{wait_until, Cluster, Options, DEADLINE};
use serde_json::Value;

fn pipeline(repo: &GitRepo) -> Cluster {
    Cluster::start(3, Options::watching(repo.url()))
}

/// Waits until the only job is running; returns its id and its runner's node index.
fn running_job(cluster: &Cluster, observer: usize) -> (u64, usize) {
    cluster.learn_ids();
    let job = wait_until("the job to start running", DEADLINE, || {
        let jobs = cluster.nodes[observer].jobs("")?;
        jobs.into_iter().find(|j| j["state"] == "running")
    });
    let runner = job["runner"].as_str().expect("a running job has a runner");
    let index = cluster.index_by_id(runner).expect("the runner is one of the nodes");
    (job["id"].as_u64().expect("id"), index)
}

fn job_detail(cluster: &Cluster, node: usize, id: u64) -> Option<Value> {
    let (code, body) =
        eventide_tests::http::get(cluster.nodes[node].addr, &format!("/api/v1/jobs/{id}")).ok()?;
    (code == 200).then(|| serde_json::from_str(&body).ok()).flatten()
}

#[test]
fn a_killed_runner_s_job_runs_again_elsewhere_and_passes() {
    let repo = GitRepo::new();
    repo.configure("sleep 3; echo done", "");
    repo.commit("slow test");
    let mut cluster = pipeline(&repo);
    let leader = cluster.wait_for_agreed_leader();
    let (id, runner) = running_job(&cluster, leader);
    let runner_id = cluster.nodes[runner].id().expect("runner answers");

    cluster.kill(runner);
    let survivor = (runner + 1) % 3;
    let job = wait_until("the job to pass on another runner", Duration::from_secs(60), || {
        let job = job_detail(&cluster, survivor, id)?;
        (job["state"] == "passed").then_some(job)
    });
    assert_eq!(job["attempt"], 2, "{job}");
    assert_ne!(job["runner"], runner_id.as_str(), "{job}");
    let attempts = job["attempts"].as_array().expect("attempts");
    assert_eq!(attempts.len(), 2, "{job}");
    assert_eq!(attempts[0]["runner"], runner_id.as_str());
    assert!(attempts[0]["note"].as_str().is_some_and(|n| n.starts_with("requeued")), "{job}");
}

#[test]
fn a_stopped_runner_s_late_result_is_refused() {
    let repo = GitRepo::new();
    repo.configure("sleep 2; echo done", "");
    repo.commit("slow test");
    let cluster = pipeline(&repo);
    let leader = cluster.wait_for_agreed_leader();
    let (id, runner) = running_job(&cluster, leader);
    let runner_id = cluster.nodes[runner].id().expect("runner answers");

    // Freeze the runner's node past its lease: the job's own processes keep running.
    cluster.signal(runner, "STOP");
    let survivor = (runner + 1) % 3;
    let job = wait_until("the job to pass on another runner", Duration::from_secs(60), || {
        let job = job_detail(&cluster, survivor, id)?;
        (job["state"] == "passed" && job["attempt"] == 2).then_some(job)
    });
    assert_ne!(job["runner"], runner_id.as_str(), "{job}");

    // Wake it up: whatever it tries to report for attempt 1 must not change the result.
    cluster.signal(runner, "CONT");
    wait_until("the woken runner to give up its attempt", DEADLINE, || {
        let log = cluster.nodes[runner].log_text();
        (log.contains("result refused")
            || log.contains("result not reported")
            || log.contains("stopping job"))
        .then_some(())
    });
    let after = wait_until("the woken node's replica to catch up", DEADLINE, || {
        job_detail(&cluster, runner, id).filter(|job| job["state"] == "passed")
    });
    let final_job = job_detail(&cluster, survivor, id).expect("survivor answers");
    for job in [&after, &final_job] {
        assert_eq!(job["state"], "passed", "{job}");
        assert_eq!(job["attempt"], 2, "{job}");
        assert_eq!(job["runner"], final_job["runner"], "{job}");
        assert_eq!(job["finished_at"], final_job["finished_at"], "one final result: {job}");
    }
}
