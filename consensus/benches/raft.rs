//! Raft throughput and commit latency: 3 nodes in this process, each with a real sled
//! store, talking HTTP over loopback. Proposers write `Finish` commands (the largest
//! command a busy cluster commits, here with a 4 KiB output tail) through the leader's
//! `Writer`, as the node does: concurrent writes are batched into shared entries.
//!
//! Run with `scripts/bench/raft.sh` (or `cargo bench -p eventide-consensus --bench raft`).
//! Environment: `BENCH_COMMANDS` (per configuration, default 20000),
//! `BENCH_PROPOSERS` (comma-separated, default "1,64").

use std::sync::Arc;
use std::time::{Duration, Instant};

use eventide_consensus::auth::Signer;
use eventide_consensus::network::Writer;
use eventide_consensus::state::MAX_COMMITS_PER_OBSERVE;
use eventide_consensus::testing::{commit_for_test, start_cluster_for_test};
use eventide_consensus::{
    Command, JobId, Limits, NodeId, Observe, ObservedCommit, Outcome, RaftTiming, Reply, Timestamp,
    Verdict,
};

const OUTPUT_TAIL_BYTES: usize = 4 * 1024;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() {
    let commands: u64 = env_or("BENCH_COMMANDS", 20_000);
    let proposers: Vec<usize> = std::env::var("BENCH_PROPOSERS")
        .unwrap_or_else(|_| "1,64".into())
        .split(',')
        .filter_map(|p| p.trim().parse().ok())
        .collect();
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    runtime.block_on(run(commands, &proposers));
}

async fn run(commands: u64, proposers: &[usize]) {
    println!("machine: {}", machine());
    let config = Arc::new(RaftTiming::default().to_config("bench").expect("valid timing"));
    let (nodes, leader_id) = start_cluster_for_test(3, config).await;
    let leader = nodes.iter().find(|n| n.id == leader_id).expect("leader is a member");
    let raft = leader.raft.clone();
    let writer =
        Writer::new(raft.clone(), Duration::from_secs(10), Signer::new(None)).expect("http client");

    let total = commands * proposers.len() as u64;
    let first_job = prepare_running_jobs(&writer, leader_id, total).await;
    println!(
        "3 nodes, sled stores, HTTP on loopback; Finish commands with a {} KiB output tail",
        OUTPUT_TAIL_BYTES / 1024
    );
    println!(
        "{:>10} {:>9} {:>12} {:>8} {:>10} {:>10} {:>10} {:>10}",
        "proposers", "commands", "commands/s", "entries", "min ms", "median ms", "p99 ms", "max ms"
    );
    let mut next_job = first_job;
    for &concurrency in proposers {
        let jobs: Vec<u64> = (next_job..next_job + commands).collect();
        next_job += commands;
        let first_index = leader.last_applied_index();
        let started = Instant::now();
        let mut latencies = propose_finishes(&writer, jobs, concurrency).await;
        let elapsed = started.elapsed();
        latencies.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q).round() as usize];
        println!(
            "{:>10} {:>9} {:>12.0} {:>8} {:>10.2} {:>10.2} {:>10.2} {:>10.2}",
            concurrency,
            commands,
            commands as f64 / elapsed.as_secs_f64(),
            leader.last_applied_index() - first_index,
            ms(latencies[0]),
            ms(at(0.5)),
            ms(at(0.99)),
            ms(latencies[latencies.len() - 1]),
        );
    }
    for node in nodes {
        node.kill().await;
    }
}

/// Queues and assigns `count` jobs, so that each can take one `Finish`; returns the
/// first job id. A repository holds at most a full queue of them, so they are spread
/// over as many repositories as that takes.
async fn prepare_running_jobs(writer: &Writer, runner: NodeId, count: u64) -> u64 {
    let limits = Limits::default();
    let per_repo = u64::from(limits.max_queue_per_repo).min(MAX_COMMITS_PER_OBSERVE as u64);
    let most = per_repo * u64::from(limits.max_repos);
    assert!(count <= most, "at most {most} commands in all (repositories x their queue)");
    let mut observed = 0;
    let mut first = None;
    while observed < count {
        let url = format!("file:///srv/bench-{}.git", observed / per_repo);
        let Reply::RepoAdded { repo } =
            write(writer, Command::AddRepo { url, at: Timestamp(0) }).await
        else {
            panic!("repository not added");
        };
        let batch = per_repo.min(count - observed);
        let commits: Vec<ObservedCommit> = (observed + 1..=observed + batch)
            .map(|n| ObservedCommit { commit: commit_for_test(n), labels: Vec::new() })
            .collect();
        let observe = Observe {
            repo,
            branch: "main".into(),
            expected_head: None,
            new_head: commit_for_test(observed + batch),
            commits,
            skipped: Vec::new(),
            at: Timestamp(1),
        };
        let Reply::Observed { jobs } = write(writer, Command::Observe(observe)).await else {
            panic!("commits not observed");
        };
        first.get_or_insert(jobs[0].0);
        observed += batch;
    }
    let first = first.expect("at least one job");
    let assigns: Vec<u64> = (first..first + count).collect();
    let mut tasks = tokio::task::JoinSet::new();
    for chunk in assigns.chunks(assigns.len().div_ceil(64)) {
        let writer = writer.clone();
        let chunk = chunk.to_vec();
        tasks.spawn(async move {
            for job in chunk {
                let command =
                    Command::Assign { job: JobId(job), runner, attempt: 1, at: Timestamp(2) };
                write(&writer, command).await;
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("assign task");
    }
    first
}

/// Sends one `Finish` per job from `concurrency` proposers; returns each commit latency.
async fn propose_finishes(writer: &Writer, jobs: Vec<u64>, concurrency: usize) -> Vec<Duration> {
    let tail: String = "test_example (tests.test_app.AppTest) ... ok\n"
        .chars()
        .cycle()
        .take(OUTPUT_TAIL_BYTES)
        .collect();
    let queue = Arc::new(std::sync::Mutex::new(jobs));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let writer = writer.clone();
        let queue = queue.clone();
        let tail = tail.clone();
        tasks.spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let Some(job) = queue.lock().expect("queue lock").pop() else { break };
                let outcome = Outcome {
                    verdict: Verdict::Passed,
                    exit_code: Some(0),
                    duration_ms: 1234,
                    output_tail: tail.clone(),
                    summary: None,
                    message: None,
                };
                let command =
                    Command::Finish { job: JobId(job), attempt: 1, outcome, at: Timestamp(3) };
                let started = Instant::now();
                write(&writer, command).await;
                latencies.push(started.elapsed());
            }
            latencies
        });
    }
    let mut all = Vec::new();
    while let Some(done) = tasks.join_next().await {
        all.extend(done.expect("proposer task"));
    }
    all
}

async fn write(writer: &Writer, command: Command) -> Reply {
    let reply = writer.write(command).await.expect("write through the leader");
    assert!(reply.refusal().is_none(), "refused: {reply:?}");
    reply
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|line| line.starts_with("model name"))
                .and_then(|line| line.split(':').nth(1))
                .map(|model| model.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown cpu".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("MemTotal"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|kb| kb.parse::<u64>().ok()))
        })
        .map_or_else(|| "unknown memory".into(), |kb| format!("{} GiB", kb / 1024 / 1024));
    format!("{cores} cores ({cpu}), {memory}, {}", std::env::consts::OS)
}
