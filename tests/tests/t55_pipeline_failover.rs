//! The pipeline across leader failover and full restarts: no commit skipped, none tested
//! twice, every result kept, every replica the same.

use std::collections::BTreeMap;
use std::time::Duration;

use eventide_tests::repo::GitRepo;
use eventide_tests::{cli, wait_for_final_jobs, wait_until, Cluster, Options, DEADLINE};
use serde_json::Value;

fn pipeline(repo: &GitRepo) -> Cluster {
    Cluster::start(3, Options::watching(repo.url()))
}

/// Jobs per commit, from one node.
fn by_commit(jobs: &[Value]) -> BTreeMap<String, Vec<&Value>> {
    let mut map: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
    for job in jobs {
        map.entry(job["commit"].as_str().expect("commit").to_owned()).or_default().push(job);
    }
    map
}

/// `results --json` from every running node, once they all agree.
fn results_everywhere(cluster: &Cluster, expected: usize) -> String {
    wait_until("every node to print the same results", DEADLINE, || {
        let outputs: Vec<String> = cluster
            .running()
            .map(|i| {
                let addr = cluster.nodes[i].addr.to_string();
                let output = cli(&["results", "--node", &addr, "--json", "--limit", "1000"]);
                String::from_utf8_lossy(&output.stdout).into_owned()
            })
            .collect();
        let first = outputs.first()?.clone();
        let jobs: Vec<Value> = serde_json::from_str(&first).ok()?;
        let idle = jobs.len() == expected && jobs.iter().all(eventide_tests::is_final);
        (idle && outputs.iter().all(|o| *o == first)).then_some(first)
    })
}

#[test]
fn killing_the_leader_during_a_burst_loses_and_repeats_nothing() {
    let repo = GitRepo::new();
    repo.configure("echo ok", "");
    let first = repo.commit("first");
    let mut cluster = pipeline(&repo);
    let leader = cluster.wait_for_agreed_leader();
    wait_for_final_jobs(&cluster, leader, 1, DEADLINE);

    let mut commits = vec![first];
    for i in 0..10 {
        commits.push(repo.commit(&format!("burst {i}")));
    }
    cluster.nodes[leader].notify();
    cluster.kill(leader);
    for i in 10..20 {
        commits.push(repo.commit(&format!("burst {i}")));
    }
    let survivor = (leader + 1) % 3;
    cluster.wait_for_agreed_leader();
    let jobs = wait_for_final_jobs(&cluster, survivor, 21, Duration::from_secs(90));
    let map = by_commit(&jobs);
    assert_eq!(jobs.len(), 21, "{map:#?}");
    for commit in &commits {
        let tested = &map[commit];
        assert_eq!(tested.len(), 1, "{commit} tested {} times", tested.len());
        assert_eq!(tested[0]["state"], "passed", "{}", tested[0]);
    }

    cluster.restart(leader);
    results_everywhere(&cluster, 21);
}

#[test]
fn restarting_every_node_keeps_all_results_and_queues_nothing_again() {
    let repo = GitRepo::new();
    repo.configure("echo ok", "");
    repo.commit("first");
    let mut cluster = pipeline(&repo);
    let leader = cluster.wait_for_agreed_leader();
    wait_for_final_jobs(&cluster, leader, 1, DEADLINE);
    for i in 0..5 {
        repo.commit(&format!("commit {i}"));
    }
    cluster.nodes[leader].notify();
    wait_for_final_jobs(&cluster, leader, 6, DEADLINE);
    let before = results_everywhere(&cluster, 6);

    for index in 0..3 {
        let status = cluster.stop(index);
        assert!(status.success(), "clean stop: {status}");
    }
    for index in 0..3 {
        cluster.restart(index);
    }
    let leader = cluster.wait_for_agreed_leader();
    // A few observer rounds on the restarted cluster queue nothing new.
    for _ in 0..3 {
        cluster.nodes[leader].notify();
    }
    let after = results_everywhere(&cluster, 6);
    assert_eq!(after, before, "results survive a full restart unchanged");
}
