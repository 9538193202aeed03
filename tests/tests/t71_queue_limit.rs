//! The queue per repository is bounded (issue 10): a flood of reruns ends in 429 with a
//! clear JSON error (and a clear CLI message) once a repository has its limit of jobs
//! queued or running, and a commit pushed meanwhile is not lost: its observation is
//! refused, the repository's error says why, and the commit is queued as soon as there is
//! room, without waiting for the next poll.

use eventide_tests::http::post;
use eventide_tests::repo::GitRepo;
use eventide_tests::{cli, wait_until, Cluster, Options, DEADLINE};
use serde_json::Value;

/// `max_queue_per_repo`'s default.
const QUEUE_LIMIT: usize = 500;

#[test]
fn a_full_queue_refuses_reruns_with_429_and_loses_no_pushed_commit() {
    let repo = GitRepo::new();
    repo.configure("true", "");
    let first = repo.commit("first");
    // No runner anywhere: every job stays queued. No poll within the test either: the
    // first round comes with the leader, the others with a notify or with room.
    let extra = vec![
        "--repo".into(),
        repo.url(),
        "--poll-interval".into(),
        "1h".into(),
        "--runner-slots".into(),
        "0".into(),
    ];
    let cluster = Cluster::start(1, Options { bootstrap_expect: 1, extra, ..Options::default() });
    let node = &cluster.nodes[0];
    wait_until("the first commit's job", DEADLINE, || (node.jobs("")?.len() == 1).then_some(()));

    let rerun = format!(r#"{{"commit": "{first}"}}"#);
    for n in 1..QUEUE_LIMIT {
        let (code, body) = post(node.addr, "/api/v1/rerun", &rerun).expect("rerun answered");
        assert_eq!(code, 201, "rerun {n}: {body}");
    }
    let (code, body) = post(node.addr, "/api/v1/rerun", &rerun).expect("rerun answered");
    assert_eq!(code, 429, "{body}");
    let error: Value = serde_json::from_str(&body).expect("a JSON error");
    let message = error["error"].as_str().expect("an error message");
    assert!(
        message.contains("already has 500 jobs queued or running")
            && message.contains("try again once some have finished"),
        "{message}"
    );
    let output = cli(&["rerun", &first[..12], "--node", &node.addr.to_string()]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("failed to rerun {}", &first[..12]))
            && stderr.contains("already has 500 jobs queued or running")
            && stderr.contains("429"),
        "{stderr}"
    );

    // A push while the queue is full: refused, said so, the cursor stays.
    let pushed = repo.commit("pushed while full");
    node.notify();
    wait_until("the observer to report the full queue", DEADLINE, || {
        let status = node.status()?;
        let error = status["repos"][0]["error"].as_str()?.to_owned();
        error.contains("already has 500 jobs queued or running").then_some(())
    });
    let jobs = node.jobs("").expect("jobs");
    assert_eq!(jobs.len(), QUEUE_LIMIT);
    assert!(jobs.iter().all(|job| job["commit"] != pushed.as_str()));

    // Room again: the pushed commit is queued, once, and the error clears, with no
    // notify and no poll (the next is an hour away).
    let (code, body) = post(node.addr, "/api/v1/jobs/2/cancel", "").expect("cancel answered");
    assert_eq!(code, 200, "{body}");
    wait_until("the pushed commit's job", DEADLINE, || {
        let jobs = node.jobs(&format!("commit={pushed}"))?;
        (jobs.len() == 1 && jobs[0]["trigger"] == "push").then_some(())
    });
    wait_until("the repository's error to clear", DEADLINE, || {
        node.status()?["repos"][0]["error"].is_null().then_some(())
    });
    let log = node.log_text();
    assert!(log.contains("rerun refused"), "no log line for the refused rerun");
    assert!(log.contains("cannot observe repository"), "no log line for the refused push");
}
