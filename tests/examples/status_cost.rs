//! What a commit status costs the leader, for `scripts/bench/statuses.sh`:
//! `BENCH_JOBS` reruns (default 200) of a repository with a forge and of one without,
//! `BENCH_RUNS` times (default 3), measuring the leader's CPU time and the Raft entries
//! applied per job; prints min / median / max. Run with `EVENTIDE_NODE_BIN` set to the
//! release binary.
//!
//!     cargo run -p eventide-tests --example status_cost

use std::time::Duration;

use eventide_api::RepoDoc;
use eventide_tests::forge::Forge;
use eventide_tests::forge_world::{final_status, World, SECRET};
use eventide_tests::{http, wait_until, DEADLINE};

/// The leader's CPU time (user + system) in milliseconds, from `/proc`.
fn cpu_ms(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("the leader's stat");
    // The fields after the command name, which is in parentheses.
    let fields: Vec<&str> =
        stat.rsplit_once(')').expect("a stat line").1.split_whitespace().collect();
    let ticks: f64 =
        fields[11].parse::<f64>().expect("utime") + fields[12].parse::<f64>().expect("stime");
    // USER_HZ is 100 on Linux.
    ticks * 10.0
}

fn spread(values: &mut [f64]) -> String {
    values.sort_by(f64::total_cmp);
    format!("{:.2} / {:.2} / {:.2}", values[0], values[values.len() / 2], values[values.len() - 1])
}

fn main() {
    let count: usize = std::env::var("BENCH_JOBS").ok().and_then(|v| v.parse().ok()).unwrap_or(200);
    let runs: usize = std::env::var("BENCH_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(3);
    let world = World::start();
    let with = world.host("acme/with.git");
    world.watch(&with, Forge::Github, "FORGE_TOKEN");
    let without = world.host("acme/without.git");
    let ca = world.server.ca_path().display().to_string();
    world.cli_ok(&["repo", "add", &without.url, "--token", "FORGE_TOKEN", "--ca-file", &ca]);
    for hosted in [&with, &without] {
        let head = hosted.work.head();
        wait_until("the first job", DEADLINE, || {
            world.jobs(0).into_iter().find(|j| j.commit == head && j.finished_at.is_some())
        });
    }
    final_status(&world.forge, &with.work.head(), DEADLINE);
    let token =
        eventide_consensus::auth::Secret::try_new(SECRET.as_bytes()).expect("secret").api_token();
    let authorization = format!("Bearer {token}");
    let mut results: Vec<(&str, Vec<f64>, Vec<f64>)> = Vec::new();
    for (label, hosted) in [("with a forge", &with), ("without", &without)] {
        let (mut cpu, mut entries) = (Vec::new(), Vec::new());
        for _ in 0..runs {
            let leader = world.cluster.wait_for_agreed_leader();
            let pid = world.cluster.nodes[leader].pid().expect("the leader's pid");
            let applied = |index: usize| {
                world.cluster.nodes[index].status_doc().expect("status").applied_index
            };
            let posted_before = world.forge.statuses().len();
            let (cpu_before, index_before) = (cpu_ms(pid), applied(leader));
            let jobs_before = world.jobs(leader).len();
            let head = hosted.work.head();
            let body = format!("{{\"commit\": \"{head}\", \"branch\": \"main\"}}");
            for _ in 0..count {
                let (code, answer) = http::request_with(
                    world.addr(leader),
                    "POST",
                    "/api/v1/rerun",
                    &[("Content-Type", "application/json"), ("Authorization", &authorization)],
                    body.as_bytes(),
                )
                .expect("rerun");
                assert_eq!(code, 201, "{answer}");
            }
            wait_until("every rerun final", Duration::from_secs(600), || {
                let jobs = world.jobs(leader);
                (jobs.len() >= jobs_before + count && jobs.iter().all(|j| j.finished_at.is_some()))
                    .then_some(())
            });
            if label == "with a forge" {
                // Three statuses a job: queued, running, final (some replaced before
                // they were posted); wait for the outbox to drain.
                wait_until("the outbox drained", Duration::from_secs(600), || {
                    let repos: Vec<RepoDoc> = serde_json::from_str(
                        &http::get(world.addr(leader), "/api/v1/repos").ok()?.1,
                    )
                    .ok()?;
                    repos.iter().all(|r| r.statuses_waiting == 0).then_some(())
                });
            }
            let (cpu_after, index_after) = (cpu_ms(pid), applied(leader));
            cpu.push((cpu_after - cpu_before) / count as f64);
            entries.push((index_after - index_before) as f64 / count as f64);
            if label == "with a forge" {
                let posted = world.forge.statuses().len() - posted_before;
                println!(
                    "run: {count} jobs, {posted} statuses posted ({:.2} a job)",
                    posted as f64 / count as f64
                );
            }
        }
        results.push((label, cpu, entries));
    }
    println!(
        "machine: {} cores; {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|t| t.lines().find(|l| l.starts_with("model name")).map(|l| l
                .split(':')
                .nth(1)
                .unwrap_or("")
                .trim()
                .to_owned()))
            .unwrap_or_default()
    );
    println!("{count} reruns of `true` per run, {runs} runs, 3 nodes; min / median / max per job:");
    println!("| repository | leader CPU ms | Raft entries applied |");
    println!("| --- | --- | --- |");
    for (label, mut cpu, mut entries) in results {
        println!("| {label} | {} | {} |", spread(&mut cpu), spread(&mut entries));
    }
}
