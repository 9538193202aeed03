//! The largest state the limits allow survives a snapshot in the real sled store and a
//! restart (issue 10).
//!
//! The state is built the only way a cluster can build it, by applying commands, with
//! every limit at its most (the defaults) and every text at its longest: 100 repositories
//! with the longest urls, 1,000 branches each with the longest names and their skipped
//! commits, 100,000 final jobs (the newest 1,000 with a full output tail and failing test
//! names) and 999 queued or running jobs per repository, every job with the most labels
//! and attempts, every job a build of its own (the most builds the jobs allow) with the
//! longest step name, matrix, subject and author, and the most secrets, each with the
//! longest name and value. It is snapshotted into sled and read back by a store opened again on the
//! same directory, which must decode it whole. Its size is checked against
//! [`largest_state_bytes`], which must be an upper bound, and a close one
//! (within 20%: it counts every varint at its longest).

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::time::Instant;

use eventide_consensus::auth::{Sealed, NONCE_BYTES};
use eventide_consensus::codec::{self, STORED_LIMIT};
use eventide_consensus::command::{
    BuildPlan, ObserveBuilds, PlannedJob, MAX_AUTHOR_BYTES, MAX_BY_BYTES, MAX_MATRIX_KEYS,
    MAX_MATRIX_KEY_BYTES, MAX_MATRIX_VALUE_BYTES, MAX_STEP_NAME_BYTES, MAX_SUBJECT_BYTES,
};
use eventide_consensus::state::{
    largest_state_bytes, Cursor, MAX_BRANCH_BYTES, MAX_BRANCH_PATTERNS, MAX_COMMITS_PER_OBSERVE,
    MAX_FAILING_NAMES, MAX_LABELS, MAX_LABEL_BYTES, MAX_MESSAGE_BYTES, MAX_NAME_BYTES,
    MAX_REASON_BYTES, MAX_SEALED_BYTES, MAX_SECRETS, MAX_SECRET_NAME_BYTES, MAX_TEST_NAME_BYTES,
};
use eventide_consensus::store::{self, StateMachineStore};
use eventide_consensus::types::{Entry, LogId};
use eventide_consensus::{
    BuildId, Command, CommitId, JobId, JobStatus, Limits, NodeId, Outcome, QueueCounts, Reply,
    RepoId, Timestamp, Verdict,
};
use openraft::storage::RaftStateMachine;
use openraft::{CommittedLeaderId, EntryPayload, RaftSnapshotBuilder};

/// Entries applied per call, as openraft hands them over in batches.
const CHUNK: usize = 20_000;
/// Large ids and time stamps take the longest varints.
const RUNNER: NodeId = NodeId(u64::MAX - 7);
const EPOCH: u64 = 1_800_000_000_000;

/// Feeds commands to a real state machine store, predicting each reply.
struct Builder {
    state_machine: StateMachineStore,
    entries: Vec<Entry>,
    expected: Vec<Reply>,
    next_index: u64,
    next_job: u64,
    next_build: u64,
    next_commit: u64,
}

impl Builder {
    fn now(&self) -> Timestamp {
        Timestamp(EPOCH + self.next_index)
    }

    fn commit(&mut self) -> CommitId {
        self.next_commit += 1;
        CommitId::try_new(&format!("{:064x}", u64::MAX - self.next_commit)).expect("64 hex digits")
    }

    async fn push(&mut self, command: Command, reply: Reply) {
        self.next_index += 1;
        let log_id = LogId::new(CommittedLeaderId::new(1, NodeId(1)), self.next_index);
        self.entries.push(Entry { log_id, payload: EntryPayload::Normal(command) });
        self.expected.push(reply);
        if self.entries.len() >= CHUNK {
            self.flush().await;
        }
    }

    async fn flush(&mut self) {
        let entries = std::mem::take(&mut self.entries);
        let replies = self.state_machine.apply(entries).await.expect("apply");
        let expected = std::mem::take(&mut self.expected);
        for (reply, expected) in replies.iter().zip(&expected) {
            assert_eq!(reply, expected);
        }
    }

    /// One observation of `branch`, one build of one job per commit; returns the new jobs.
    async fn observe(
        &mut self,
        repo: RepoId,
        branch: &str,
        expected_head: Option<CommitId>,
        count: usize,
        skipped: usize,
    ) -> (CommitId, Vec<JobId>) {
        let builds: Vec<BuildPlan> = (0..count).map(|_| largest_plan(self.commit())).collect();
        let skipped = (0..skipped).map(|_| self.commit()).collect();
        let new_head = builds.last().map(|c| c.commit.clone()).expect("at least one commit");
        let jobs: Vec<JobId> = (0..count as u64).map(|n| JobId(self.next_job + 1 + n)).collect();
        let build_ids = (0..count as u64).map(|n| BuildId(self.next_build + 1 + n)).collect();
        self.next_job += count as u64;
        self.next_build += count as u64;
        let observe = ObserveBuilds {
            repo,
            branch: branch.to_owned(),
            expected_head,
            new_head: new_head.clone(),
            builds,
            skipped,
            by: Some("b".repeat(MAX_BY_BYTES)),
            at: self.now(),
        };
        let reply = Reply::BuildsObserved { builds: build_ids, jobs: jobs.clone() };
        self.push(Command::ObserveBuilds(observe), reply).await;
        (new_head, jobs)
    }

    /// Runs every attempt but the last, each lost with the longest reason, then starts
    /// the last one.
    async fn run_to_last_attempt(&mut self, job: JobId, attempts: u32) {
        for attempt in 1..=attempts {
            let at = self.now();
            let assign = Command::Assign { job, runner: RUNNER, attempt, at };
            self.push(assign, Reply::Assigned { job, attempt }).await;
            if attempt < attempts {
                let reason = "r".repeat(MAX_REASON_BYTES);
                let requeue = Command::Requeue { job, attempt, reason, at: self.now() };
                self.push(requeue, Reply::Requeued { job, attempt: attempt + 1 }).await;
            }
        }
    }

    async fn finish(&mut self, job: JobId, attempt: u32, outcome: Outcome) {
        let command = Command::Finish { job, attempt, outcome, at: self.now() };
        self.push(command, Reply::Finished { job, status: JobStatus::Failed }).await;
    }
}

/// A build of one job with every text at its longest.
fn largest_plan(commit: CommitId) -> BuildPlan {
    let concurrency = Some(commit.as_str()[64 - MAX_LABEL_BYTES..].to_owned());
    let matrix = (0..MAX_MATRIX_KEYS)
        .map(|n| {
            let key = format!("k{n}{}", "k".repeat(MAX_MATRIX_KEY_BYTES - 2));
            (key, "v".repeat(MAX_MATRIX_VALUE_BYTES))
        })
        .collect();
    BuildPlan {
        commit,
        subject: "s".repeat(MAX_SUBJECT_BYTES),
        author: "a".repeat(MAX_AUTHOR_BYTES),
        jobs: vec![PlannedJob {
            step: "p".repeat(MAX_STEP_NAME_BYTES),
            matrix,
            needs: Vec::new(),
            labels: labels(),
            // A group of its own, so that every job may run at once.
            concurrency,
        }],
        cancel_superseded: false,
    }
}

fn labels() -> Vec<String> {
    (0..MAX_LABELS).map(|n| format!("{n}{}", "l".repeat(MAX_LABEL_BYTES - 1))).collect()
}

fn branch(n: u32) -> String {
    let name = format!("b{n}-");
    format!("{name}{}", "x".repeat(MAX_BRANCH_BYTES - name.len()))
}

/// A failed run; `full` with the longest output tail and failing test names, as only
/// the newest final jobs keep them.
fn outcome(limits: &Limits, full: bool) -> Outcome {
    let failing = (0..MAX_FAILING_NAMES)
        .map(|n| format!("test_{n}_{}", "t".repeat(MAX_TEST_NAME_BYTES)))
        .collect();
    Outcome {
        verdict: Verdict::Failed,
        exit_code: Some(i32::MIN),
        duration_ms: u64::MAX,
        output_tail: if full {
            "o".repeat(limits.output_tail_bytes as usize + 10)
        } else {
            String::new()
        },
        summary: Some(eventide_consensus::command::TestSummary {
            passed: u32::MAX,
            failed: u32::MAX,
            skipped: u32::MAX,
            failing: if full { failing } else { Vec::new() },
        }),
        message: Some("m".repeat(MAX_MESSAGE_BYTES + 10)),
    }
}

fn digest(bytes: &[u8]) -> u64 {
    let mut hasher = DefaultHasher::new();
    bytes.hash(&mut hasher);
    hasher.finish()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_largest_state_the_limits_allow_round_trips_through_a_snapshot() {
    let started = Instant::now();
    let dir = tempfile::TempDir::new().expect("temp dir");
    let limits = Limits::default();
    let (log_store, state_machine) = store::open(dir.path()).expect("open");
    let mut builder = Builder {
        state_machine,
        entries: Vec::new(),
        expected: Vec::new(),
        next_index: 0,
        next_job: 0,
        next_build: 0,
        next_commit: 0,
    };
    builder.push(Command::SetLimits { limits: limits.clone() }, Reply::LimitsSet).await;

    let final_per_repo = limits.retained_jobs / limits.max_repos;
    assert_eq!(final_per_repo, limits.max_branches_per_repo, "one final job per branch");
    // Branches are observed in rounds that leave room in the queue.
    let round = limits.max_queue_per_repo / 2;
    for r in 0..limits.max_repos {
        let repo = RepoId(u64::from(r) + 1);
        let url = format!("file:///{r}/");
        let url = format!("{url}{}", "u".repeat(MAX_NAME_BYTES - url.len()));
        let at = builder.now();
        builder.push(Command::AddRepo { url, at }, Reply::RepoAdded { repo }).await;
        let full = r + 1 == limits.max_repos;
        let mut heads = Vec::new();
        for first in (0..limits.max_branches_per_repo).step_by(round as usize) {
            let mut jobs = Vec::new();
            for b in first..first + round {
                let (head, new) =
                    builder.observe(repo, &branch(b), None, 1, Cursor::RECENT_SKIPPED).await;
                heads.push(head);
                jobs.extend(new);
            }
            for job in jobs {
                builder.run_to_last_attempt(job, limits.max_attempts).await;
                builder.finish(job, limits.max_attempts, outcome(&limits, full)).await;
            }
        }
        // The fullest queue: its limit less one, then one more observation at its most.
        let queue = limits.max_queue_per_repo as usize;
        let (_, mut open) =
            builder.observe(repo, &branch(0), Some(heads[0].clone()), queue - 1, 0).await;
        let (_, more) = builder
            .observe(repo, &branch(1), Some(heads[1].clone()), MAX_COMMITS_PER_OBSERVE, 0)
            .await;
        open.extend(more);
        for job in open {
            builder.run_to_last_attempt(job, limits.max_attempts).await;
        }
    }
    for n in 0..MAX_SECRETS {
        let name = format!("S{n:0>width$}", width = MAX_SECRET_NAME_BYTES - 1);
        let sealed =
            Sealed { nonce: [0xff; NONCE_BYTES], ciphertext: vec![0xa5; MAX_SEALED_BYTES] };
        let at = builder.now();
        let reply = Reply::SecretSet { name: name.clone(), created_at: at, updated_at: at };
        let branches = (0..MAX_BRANCH_PATTERNS)
            .map(|p| format!("!{p:0>width$}", width = MAX_BRANCH_BYTES))
            .collect();
        builder.push(Command::SetRestrictedSecret { name, sealed, branches, at }, reply).await;
    }
    builder.flush().await;
    let built = started.elapsed();

    let mut state_machine = builder.state_machine;
    let open = u64::from(limits.max_repos)
        * (u64::from(limits.max_queue_per_repo) - 1 + MAX_COMMITS_PER_OBSERVE as u64);
    let counts =
        QueueCounts { queued: 0, running: open, finished: u64::from(limits.retained_jobs) };
    assert_eq!(state_machine.read(|state| state.queue_counts()), counts);
    let state_digest = state_machine.read(|state| digest(&codec::encode(state).expect("encodes")));

    let snapshot =
        state_machine.get_snapshot_builder().await.build_snapshot().await.expect("snapshot");
    let snapshot_bytes = snapshot.snapshot.get_ref().len() as u64;
    drop(snapshot);
    let bound = largest_state_bytes(&limits);
    eprintln!(
        "built {} entries in {built:?}; snapshot {snapshot_bytes} bytes, bound {bound}, stored limit {STORED_LIMIT}",
        builder.next_index
    );
    // The snapshot adds a format byte, the last log id and an empty membership.
    assert!(snapshot_bytes <= bound + 64, "the bound is too low: {snapshot_bytes} > {bound}");
    assert!(
        snapshot_bytes * 10 >= bound * 8,
        "the bound is loose: {snapshot_bytes} < 80% of {bound}"
    );
    assert!(snapshot_bytes < STORED_LIMIT as u64);

    drop((log_store, state_machine));
    let reopened = {
        let deadline = Instant::now() + std::time::Duration::from_secs(10);
        loop {
            match store::open(dir.path()) {
                Ok(halves) => break halves,
                Err(error) if Instant::now() > deadline => panic!("reopen: {error}"),
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
            }
        }
    };
    let (_log_store, state_machine) = reopened;
    assert_eq!(state_machine.read(|state| state.queue_counts()), counts);
    assert_eq!(state_machine.read(|state| state.secrets().len()), MAX_SECRETS);
    let reread = state_machine.read(|state| digest(&codec::encode(state).expect("encodes")));
    assert_eq!(reread, state_digest, "the state read back differs");
    eprintln!("round trip done in {:?}", started.elapsed());
}
