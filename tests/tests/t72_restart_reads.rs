//! Reads never go back in time across full restarts (issue 10).
//!
//! Again and again: a commit is tested, and the moment a node reports its job final every
//! node is killed with SIGKILL and restarted on the same data dir. Everything each node
//! answers is recorded, and no later answer of that node may be older: a job it reported
//! final stays final with the same state, and the number of jobs it lists never shrinks.
//! Each restarted node is read as soon as its API answers, before the cluster has elected
//! a leader, which is when a node that lost its committed index would answer from an
//! older state.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use eventide_tests::repo::GitRepo;
use eventide_tests::{Cluster, Node, Options};
use serde_json::Value;

/// Full restarts of the whole cluster.
const RESTARTS: usize = 30;
/// The whole test, on a busy 2-core machine.
const TEST_DEADLINE: Duration = Duration::from_secs(240);
/// One commit's job, from the commit to a final state on some node.
const JOB_DEADLINE: Duration = Duration::from_secs(45);
/// A restarted node's API, from the restart to its first answer.
const START_DEADLINE: Duration = Duration::from_secs(30);
const FAST_POLL: Duration = Duration::from_millis(5);

/// What one node has answered so far.
#[derive(Default)]
struct Seen {
    /// Jobs the node reported final, with that final state.
    finals: BTreeMap<u64, String>,
    /// The most jobs it listed at once.
    count: usize,
}

impl Seen {
    /// Checks one answer against everything the node answered before, then records it.
    fn record(&mut self, node: &str, moment: &str, jobs: &[Value]) -> Result<(), String> {
        let states: BTreeMap<u64, &str> = jobs
            .iter()
            .map(|job| (job["id"].as_u64().expect("job id"), job["state"].as_str().expect("state")))
            .collect();
        if jobs.len() < self.count {
            return Err(format!(
                "{node} {moment}: lists {} jobs after listing {}",
                jobs.len(),
                self.count
            ));
        }
        for (id, before) in &self.finals {
            let now = states.get(id).copied();
            if now != Some(before.as_str()) {
                return Err(format!(
                    "{node} {moment}: job {id} is {} after it was reported {before}",
                    now.unwrap_or("missing")
                ));
            }
        }
        self.count = jobs.len();
        for job in jobs.iter().filter(|job| eventide_tests::is_final(job)) {
            let state = job["state"].as_str().expect("state").to_owned();
            self.finals.insert(job["id"].as_u64().expect("job id"), state);
        }
        Ok(())
    }
}

/// The node's job list, asked once (`None` if it does not answer).
fn jobs(node: &Node) -> Option<Vec<Value>> {
    node.jobs("")
}

/// Polls every node until one lists `count` jobs, all final; checks and records every
/// answer, adding what went back in time to `violations`.
fn wait_until_tested(
    cluster: &Cluster,
    seen: &mut [Seen],
    count: usize,
    violations: &mut Vec<String>,
) {
    let start = Instant::now();
    loop {
        for (index, node) in cluster.nodes.iter().enumerate() {
            let Some(listed) = jobs(node) else { continue };
            if let Err(violation) = seen[index].record(&node.name, "while testing", &listed) {
                violations.push(violation);
            }
            if listed.len() >= count && listed.iter().all(eventide_tests::is_final) {
                return;
            }
        }
        assert!(start.elapsed() < JOB_DEADLINE, "timed out waiting for {count} final jobs");
        std::thread::sleep(FAST_POLL);
    }
}

/// Reads every restarted node as soon as its API answers (one thread per node, so that
/// no node is read late); checks and records the answers.
fn read_at_start(cluster: &Cluster, seen: &mut [Seen], violations: &mut Vec<String>) {
    let first_answers: Vec<Vec<Value>> = std::thread::scope(|scope| {
        let readers: Vec<_> = cluster
            .nodes
            .iter()
            .map(|node| {
                scope.spawn(move || {
                    let start = Instant::now();
                    loop {
                        if let Some(listed) = jobs(node) {
                            return listed;
                        }
                        assert!(start.elapsed() < START_DEADLINE, "{} never answered", node.name);
                        std::thread::sleep(FAST_POLL);
                    }
                })
            })
            .collect();
        readers.into_iter().map(|reader| reader.join().expect("reader thread")).collect()
    });
    for ((node, seen), listed) in cluster.nodes.iter().zip(seen.iter_mut()).zip(first_answers) {
        if let Err(violation) = seen.record(&node.name, "right after the restart", &listed) {
            violations.push(violation);
        }
    }
}

#[test]
fn no_node_answers_an_older_state_after_a_full_restart() {
    let started = Instant::now();
    let repo = GitRepo::new();
    repo.configure("true", "");
    repo.commit("first");
    let extra = vec!["--repo".into(), repo.url(), "--poll-interval".into(), "50ms".into()];
    let mut cluster = Cluster::start(3, Options { extra, ..Options::default() });
    let mut seen: Vec<Seen> = (0..3).map(|_| Seen::default()).collect();

    let mut violations = Vec::new();
    let mut restarts_back_in_time = 0;
    for restart in 0..RESTARTS {
        assert!(
            started.elapsed() < TEST_DEADLINE,
            "only {restart} restarts within {TEST_DEADLINE:?}"
        );
        let before = violations.len();
        if restart > 0 {
            repo.commit(&format!("commit {restart}"));
        }
        wait_until_tested(&cluster, &mut seen, restart + 1, &mut violations);
        // At once: the newest result was just applied, and its commit index is fresh.
        for index in 0..3 {
            cluster.kill(index);
        }
        for index in 0..3 {
            cluster.restart(index);
        }
        read_at_start(&cluster, &mut seen, &mut violations);
        if violations.len() > before {
            restarts_back_in_time += 1;
        }
    }
    wait_until_tested(&cluster, &mut seen, RESTARTS, &mut violations);
    assert!(
        violations.is_empty(),
        "{restarts_back_in_time} of {RESTARTS} restarts went back in time; {} stale answers, the first:\n{}",
        violations.len(),
        violations[..violations.len().min(20)].join("\n")
    );
}
