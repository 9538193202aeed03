//! A runner whose disk is below `--min-free-disk` claims nothing, says why in `status`
//! and its log, and leaves the queue to runners that have room.

use eventide_api::{JobState, RunnerState};
use eventide_tests::repo::GitRepo;
use eventide_tests::{wait_for_final_jobs, wait_until, Cluster, Options, DEADLINE};

#[test]
fn a_runner_below_its_disk_watermark_leaves_jobs_to_others() {
    let repo = GitRepo::new();
    repo.configure("echo Ran 1 test; echo OK", "");
    let commit = repo.commit("first");
    // n1 is the only runner, and no disk has 1000 TiB free; n2 and n3 coordinate only.
    let options = Options {
        per_node: vec![
            vec!["--min-free-disk".into(), "1000TiB".into()],
            vec!["--runner-slots".into(), "0".into()],
            vec!["--runner-slots".into(), "0".into()],
        ],
        ..Options::watching(repo.url())
    };
    let mut cluster = Cluster::start(3, options);
    let leader = cluster.wait_for_agreed_leader();

    // Every node's status says why n1's runner is paused, and the job waits.
    let reason = wait_until("n1's runner reported as paused", DEADLINE, || {
        let status = cluster.nodes[leader].status_doc()?;
        match &status.nodes.iter().find(|n| n.name == "n1")?.runner {
            RunnerState::Paused { reason } => Some(reason.clone()),
            RunnerState::Ok | RunnerState::Off => None,
        }
    });
    assert!(reason.contains("disk:") && reason.contains("< 1000 TiB"), "{reason}");
    let queued = wait_until("the commit's job to be queued", DEADLINE, || {
        let jobs = cluster.nodes[leader].job_docs("")?;
        (jobs.len() == 1).then(|| jobs[0].clone())
    });
    assert_eq!(queued.commit, commit.as_str());
    assert_eq!(queued.state, JobState::Queued, "nobody may run it: {queued:?}");
    let log = cluster.nodes[0].log_text();
    assert!(log.contains("runner paused: not claiming jobs"), "n1 logs the pause");
    assert_eq!(log.matches("runner paused").count(), 1, "logged once, not per claim");

    // A runner with room takes the job; n1 never ran it.
    let n4 = cluster.add_with(&["--min-free-disk", "1MiB"]);
    let n4_id = wait_until("n4's id", DEADLINE, || cluster.nodes[n4].id());
    let jobs = wait_for_final_jobs(&cluster, leader, 1, DEADLINE * 2);
    assert_eq!(jobs[0]["state"], "passed", "{}", jobs[0]);
    assert_eq!(jobs[0]["runner"], n4_id.as_str(), "only n4 has room: {}", jobs[0]);
    assert_eq!(jobs[0]["attempt"], 1, "{}", jobs[0]);
}
