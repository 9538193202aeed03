//! The CI pipeline end to end: commits become jobs, runners run them, results can be read
//! from any node.

use std::time::Duration;

use eventide_tests::repo::GitRepo;
use eventide_tests::{http, is_final, job_for, wait_for_final_jobs, wait_until};
use eventide_tests::{Cluster, Options, DEADLINE};
use serde_json::Value;

fn pipeline(repo: &GitRepo, nodes: usize) -> Cluster {
    Cluster::start(nodes, Options::watching(repo.url()))
}

#[test]
fn passing_failing_and_misconfigured_commits_get_their_results() {
    let repo = GitRepo::new();
    repo.configure("echo Ran 1 test; echo OK", "");
    let passing = repo.commit("passing");
    let cluster = pipeline(&repo, 3);
    let leader = cluster.wait_for_agreed_leader();
    let jobs = wait_for_final_jobs(&cluster, leader, 1, DEADLINE);
    let job = job_for(&jobs, &passing);
    assert_eq!(job["state"], "passed", "{job}");
    assert_eq!(job["exit_code"], 0);
    assert_eq!(job["attempt"], 1);
    assert_eq!(job["branch"], "main");
    let (_, detail) =
        http::get(cluster.nodes[leader].addr, &format!("/api/v1/jobs/{}", job["id"])).expect("get");
    let detail: Value = serde_json::from_str(&detail).expect("json");
    assert!(detail["output_tail"].as_str().is_some_and(|t| t.contains("OK")), "{detail}");

    repo.configure("echo FAILED; exit 3", "");
    let failing = repo.commit("failing");
    cluster.nodes[0].notify();
    let jobs = wait_for_final_jobs(&cluster, leader, 2, DEADLINE);
    let job = job_for(&jobs, &failing);
    assert_eq!(job["state"], "failed", "{job}");
    assert_eq!(job["exit_code"], 3);

    std::fs::remove_file(repo.path().join(".eventide.toml")).expect("remove config");
    let unconfigured = repo.commit("no configuration, no tests/");
    cluster.nodes[1].notify();
    let jobs = wait_for_final_jobs(&cluster, leader, 3, DEADLINE);
    let job = job_for(&jobs, &unconfigured);
    assert_eq!(job["state"], "error", "{job}");
    assert!(job["message"].as_str().is_some_and(|m| m.contains(".eventide.toml")), "{job}");

    // The same results from every node.
    for node in &cluster.nodes {
        let jobs = wait_until("every replica to have the results", DEADLINE, || {
            node.jobs("").filter(|jobs| jobs.len() == 3 && jobs.iter().all(is_final))
        });
        assert_eq!(job_for(&jobs, &unconfigured)["state"], "error");
    }
}

#[test]
fn a_hanging_test_times_out_and_leaves_no_process() {
    let repo = GitRepo::new();
    let pids = tempfile::tempdir().expect("temp dir");
    let pid_file = pids.path().join("pids");
    repo.configure(
        &format!("sleep 300 & echo $! >> {0}; echo $$ >> {0}; sleep 300", pid_file.display()),
        "timeout = \"1s\"\n",
    );
    let commit = repo.commit("hangs");
    // Without a sandbox: the pids the job writes are the host's, and the process group
    // is what ends them (the sandbox's own kill is tested in t89_sandbox).
    let mut options = Options::watching(repo.url());
    options.extra.extend(["--sandbox".into(), "none".into()]);
    let cluster = Cluster::start(3, options);
    let leader = cluster.wait_for_agreed_leader();
    let jobs = wait_for_final_jobs(&cluster, leader, 1, DEADLINE);
    let job = job_for(&jobs, &commit);
    assert_eq!(job["state"], "timed_out", "{job}");
    let recorded = std::fs::read_to_string(&pid_file).expect("the job wrote its pids");
    for pid in recorded.split_whitespace() {
        wait_until(
            &format!("process {pid} of the job to be gone"),
            Duration::from_secs(10),
            || (!std::path::Path::new(&format!("/proc/{pid}")).exists()).then_some(()),
        );
    }
}

#[test]
fn a_flood_of_output_keeps_only_the_tail_and_bounded_memory() {
    let repo = GitRepo::new();
    // About 100 MB of output, then a last line that must be in the tail.
    repo.configure("head -c 100000000 /dev/zero | tr '\\\\0' 'x'; echo; echo the-very-end", "");
    let commit = repo.commit("floods");
    let cluster = pipeline(&repo, 3);
    let leader = cluster.wait_for_agreed_leader();
    let jobs = wait_for_final_jobs(&cluster, leader, 1, Duration::from_secs(120));
    let job = job_for(&jobs, &commit);
    assert_eq!(job["state"], "passed", "{job}");
    let (_, detail) =
        http::get(cluster.nodes[leader].addr, &format!("/api/v1/jobs/{}", job["id"])).expect("get");
    let detail: Value = serde_json::from_str(&detail).expect("json");
    let tail = detail["output_tail"].as_str().expect("tail");
    assert!(tail.len() <= 64 * 1024, "tail of {} bytes", tail.len());
    assert!(tail.trim_end().ends_with("the-very-end"));
    for node in &cluster.nodes {
        let pid = node.pid().expect("running");
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
        let rss_kib: u64 = status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .expect("VmRSS");
        assert!(rss_kib < 256 * 1024, "{} uses {rss_kib} KiB", node.name);
    }
}

#[test]
fn fifty_commits_pushed_at_once_become_fifty_jobs() {
    let repo = GitRepo::new();
    repo.configure("echo ok", "");
    repo.commit("first");
    let cluster = pipeline(&repo, 3);
    let leader = cluster.wait_for_agreed_leader();
    wait_for_final_jobs(&cluster, leader, 1, DEADLINE);
    let commits: Vec<String> = (0..50).map(|i| repo.commit(&format!("commit {i}"))).collect();
    cluster.nodes[leader].notify();
    let jobs = wait_for_final_jobs(&cluster, leader, 51, Duration::from_secs(90));
    assert_eq!(jobs.len(), 51, "one job per commit");
    for commit in &commits {
        assert_eq!(job_for(&jobs, commit)["state"], "passed");
    }
    // Oldest commit first: job ids follow commit order.
    let ids: Vec<u64> =
        commits.iter().map(|c| job_for(&jobs, c)["id"].as_u64().expect("id")).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
}

#[test]
fn a_new_branch_and_a_force_push_queue_only_new_commits() {
    let repo = GitRepo::new();
    repo.configure("echo ok", "");
    let base = repo.commit("base");
    let cluster = pipeline(&repo, 3);
    let leader = cluster.wait_for_agreed_leader();
    wait_for_final_jobs(&cluster, leader, 1, DEADLINE);

    let doomed = repo.commit("will be force-pushed away");
    cluster.nodes[leader].notify();
    wait_for_final_jobs(&cluster, leader, 2, DEADLINE);

    // Force push: main goes back to base and gets a different commit.
    repo.git(&["reset", "-q", "--hard", &base]);
    let replacement = repo.commit("replacement");
    // A new branch from there with two commits of its own.
    repo.git(&["checkout", "-q", "-b", "feature"]);
    let feature1 = repo.commit("feature 1");
    let feature2 = repo.commit("feature 2");
    repo.git(&["checkout", "-q", "main"]);
    cluster.nodes[leader].notify();

    let jobs = wait_for_final_jobs(&cluster, leader, 5, DEADLINE);
    assert_eq!(jobs.len(), 5, "{jobs:#?}");
    assert_eq!(job_for(&jobs, &base)["branch"], "main");
    assert_eq!(job_for(&jobs, &doomed)["branch"], "main");
    assert_eq!(job_for(&jobs, &replacement)["branch"], "main");
    assert_eq!(job_for(&jobs, &feature1)["branch"], "feature");
    assert_eq!(job_for(&jobs, &feature2)["branch"], "feature");
    // Later rounds queue nothing of the above again: the round that sees one more
    // commit on main queues that commit alone.
    let later = repo.commit("later");
    cluster.nodes[leader].notify();
    let jobs = wait_for_final_jobs(&cluster, leader, 6, DEADLINE);
    assert_eq!(jobs.len(), 6, "{jobs:#?}");
    assert_eq!(job_for(&jobs, &later)["branch"], "main");
}

#[test]
fn nodes_sharing_their_mirrors_check_every_commit_out_of_one_mirror() {
    let repo = GitRepo::new();
    // Long enough that every runner holds a job while the others are busy.
    repo.configure("sleep 0.3", "");
    repo.commit("first");
    let shared = tempfile::tempdir().expect("temp dir");
    let mirrors = shared.path().join("mirrors");
    let mut options = Options::watching(repo.url());
    options.extra.extend(["--runner-mirrors".into(), mirrors.display().to_string()]);
    let cluster = Cluster::start(3, options);
    let leader = cluster.wait_for_agreed_leader();
    wait_for_final_jobs(&cluster, leader, 1, DEADLINE);
    let commits: Vec<String> = (0..9).map(|i| repo.commit(&format!("commit {i}"))).collect();
    cluster.nodes[leader].notify();
    let jobs = wait_for_final_jobs(&cluster, leader, 10, DEADLINE);
    for commit in &commits {
        assert_eq!(job_for(&jobs, commit)["state"], "passed", "{jobs:#?}");
    }
    let runners: std::collections::BTreeSet<&str> =
        jobs.iter().filter_map(|job| job["runner"].as_str()).collect();
    assert_eq!(runners.len(), 3, "every runner took jobs: {jobs:#?}");
    // One mirror of the repository, with its lock beside it, and none in a data dir.
    let mut entries: Vec<String> = std::fs::read_dir(&mirrors)
        .expect("the shared mirrors directory")
        .map(|entry| entry.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    entries.sort();
    assert_eq!(entries.len(), 2, "{entries:?}");
    assert_eq!(entries[1], format!("{}.lock", entries[0]), "{entries:?}");
    for node in &cluster.nodes {
        assert!(!node.data_dir.join("runner-mirrors").exists(), "{} has its own", node.name);
    }
}
