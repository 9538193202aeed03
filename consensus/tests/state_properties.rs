//! Properties of the CI state machine over random command sequences.
//!
//! Commands are drawn from a small universe (a few repositories, branches, commits,
//! runners and labels) and bound to the state just before they apply: a job or
//! repository is picked among those that exist, or is any small id, and an attempt is the
//! current one or any small number. So a sequence mixes commands that apply with many
//! that are refused (unknown ids, stale attempts, moved cursors, final jobs, bad input),
//! and `SetLimits` sometimes shrinks retention to a handful of jobs.

use std::collections::{BTreeMap, BTreeSet};

use eventide_consensus::codec;
use eventide_consensus::state::JobResult;
use eventide_consensus::testing::commit_for_test;
use eventide_consensus::{
    Command, CommitId, JobFilter, JobId, JobStatus, Limits, NodeId, Observe, ObservedCommit,
    Outcome, Refusal, Reply, RepoId, State, Timestamp, Verdict,
};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

const URLS: [&str; 4] = ["file:///srv/a.git", "file:///srv/b.git", "https://example.org/c.git", ""];
const BRANCHES: [&str; 4] = ["main", "dev", "release/1.0", "bad\u{7}name"];
const LABELS: [&str; 3] = ["gpu", "linux", ""];
/// Characters of 1, 2, 3 and 4 bytes, so output tails are cut inside characters.
const OUTPUT_CHARS: [char; 4] = ['a', 'é', '€', '🦀'];
const RUNNERS: u64 = 3;
const COMMITS: u8 = 10;

/// A distinct, well-formed commit id per `n`; commits are numbered with `u8` here.
fn commit(n: u8) -> CommitId {
    commit_for_test(n.into())
}

/// An id chosen among those that exist, or any small one.
#[derive(Clone, Copy, Debug)]
enum Pick {
    /// The n-th (modulo) existing repository, or job of any status.
    Existing(usize),
    /// The n-th (modulo) job in a status the command applies to (queued for `Assign`,
    /// running for `Requeue` and `Finish`, either for `Cancel`); for repositories, as
    /// `Existing`.
    Fitting(usize),
    Raw(u64),
}

#[derive(Clone, Copy, Debug)]
enum AttemptPick {
    Current,
    Raw(u32),
}

#[derive(Clone, Copy, Debug)]
enum HeadPick {
    Current,
    Raw(Option<u8>),
}

/// A command before it is bound to a state.
#[derive(Clone, Debug)]
enum Step {
    AddRepo {
        url: usize,
    },
    RemoveRepo {
        repo: Pick,
    },
    Observe {
        repo: Pick,
        branch: usize,
        head: HeadPick,
        new_head: u8,
        commits: Vec<(u8, Vec<usize>)>,
        skipped: Vec<u8>,
    },
    Assign {
        job: Pick,
        runner: u64,
        attempt: AttemptPick,
    },
    Requeue {
        job: Pick,
        attempt: AttemptPick,
    },
    Finish {
        job: Pick,
        attempt: AttemptPick,
        verdict: Verdict,
        output_chars: usize,
        output_char: usize,
    },
    Rerun {
        repo: Pick,
        branch: usize,
        commit: u8,
        labels: Vec<usize>,
    },
    Cancel {
        job: Pick,
    },
    SetLimits {
        limits: Limits,
    },
}

fn pick() -> impl Strategy<Value = Pick> {
    prop_oneof![
        3 => any::<usize>().prop_map(Pick::Existing),
        8 => any::<usize>().prop_map(Pick::Fitting),
        1 => (0u64..40).prop_map(Pick::Raw),
    ]
}

fn attempt_pick() -> impl Strategy<Value = AttemptPick> {
    prop_oneof![5 => Just(AttemptPick::Current), 1 => (0u32..5).prop_map(AttemptPick::Raw)]
}

fn head_pick() -> impl Strategy<Value = HeadPick> {
    prop_oneof![
        5 => Just(HeadPick::Current),
        1 => proptest::option::of(0..COMMITS).prop_map(HeadPick::Raw),
    ]
}

fn branch() -> impl Strategy<Value = usize> {
    prop_oneof![8 => 0usize..3, 1 => Just(3usize)]
}

fn label_picks() -> impl Strategy<Value = Vec<usize>> {
    proptest::collection::vec(prop_oneof![40 => 0usize..2, 1 => Just(2usize)], 0..3)
}

fn verdict() -> impl Strategy<Value = Verdict> {
    prop_oneof![
        Just(Verdict::Passed),
        Just(Verdict::Failed),
        Just(Verdict::TimedOut),
        Just(Verdict::Error),
    ]
}

/// Mostly usable limits with tiny retention and queues; sometimes invalid ones.
fn limits() -> impl Strategy<Value = Limits> {
    let capacity = |most: u32| prop_oneof![Just(0u32), 1u32..4, Just(most), Just(most + 1)];
    (
        (0u32..4, prop_oneof![Just(1000u32), Just(1024), Just(4096)], 0u32..5, 0u32..7),
        (capacity(500), capacity(100), capacity(1000)),
    )
        .prop_map(
            |(
                (max_attempts, output_tail_bytes, retained_outputs, retained_jobs),
                (max_queue_per_repo, max_repos, max_branches_per_repo),
            )| Limits {
                max_attempts,
                output_tail_bytes,
                retained_outputs,
                retained_jobs,
                max_queue_per_repo,
                max_repos,
                max_branches_per_repo,
            },
        )
}

fn step() -> impl Strategy<Value = Step> {
    let observed = proptest::collection::vec((0..COMMITS, label_picks()), 0..4);
    let skipped = proptest::collection::vec(0..COMMITS, 0..3);
    prop_oneof![
        2 => (0usize..URLS.len()).prop_map(|url| Step::AddRepo { url }),
        1 => pick().prop_map(|repo| Step::RemoveRepo { repo }),
        6 => (pick(), branch(), head_pick(), 0..COMMITS, observed, skipped).prop_map(
            |(repo, branch, head, new_head, commits, skipped)| Step::Observe {
                repo,
                branch,
                head,
                new_head,
                commits,
                skipped,
            },
        ),
        8 => (pick(), 1..=RUNNERS, attempt_pick())
            .prop_map(|(job, runner, attempt)| Step::Assign { job, runner, attempt }),
        3 => (pick(), attempt_pick()).prop_map(|(job, attempt)| Step::Requeue { job, attempt }),
        5 => (pick(), attempt_pick(), verdict(), 0usize..1500, 0..OUTPUT_CHARS.len()).prop_map(
            |(job, attempt, verdict, output_chars, output_char)| Step::Finish {
                job,
                attempt,
                verdict,
                output_chars,
                output_char,
            },
        ),
        2 => (pick(), branch(), 0..COMMITS, label_picks()).prop_map(
            |(repo, branch, commit, labels)| Step::Rerun { repo, branch, commit, labels },
        ),
        2 => pick().prop_map(|job| Step::Cancel { job }),
        1 => limits().prop_map(|limits| Step::SetLimits { limits }),
    ]
}

/// Sequences start by watching a repository, so that most of them get somewhere.
fn steps() -> impl Strategy<Value = Vec<Step>> {
    proptest::collection::vec(step(), 1..60).prop_map(|mut steps| {
        steps.insert(0, Step::AddRepo { url: 0 });
        steps
    })
}

fn all_jobs(state: &State) -> Vec<&eventide_consensus::Job> {
    state.jobs(&JobFilter::default())
}

fn pick_repo(state: &State, pick: Pick) -> RepoId {
    let repos: Vec<RepoId> = state.repos().map(|repo| repo.id).collect();
    match pick {
        Pick::Existing(n) | Pick::Fitting(n) if !repos.is_empty() => repos[n % repos.len()],
        Pick::Existing(n) | Pick::Fitting(n) => RepoId(n as u64 % 4),
        Pick::Raw(id) => RepoId(id % 8),
    }
}

fn pick_job(state: &State, pick: Pick, fits: fn(JobStatus) -> bool) -> JobId {
    let jobs = all_jobs(state);
    let fitting: Vec<JobId> =
        jobs.iter().filter(|job| fits(job.status)).map(|job| job.id).collect();
    match pick {
        Pick::Fitting(n) if !fitting.is_empty() => fitting[n % fitting.len()],
        Pick::Existing(n) | Pick::Fitting(n) if !jobs.is_empty() => jobs[n % jobs.len()].id,
        Pick::Existing(n) | Pick::Fitting(n) => JobId(n as u64 % 4),
        Pick::Raw(id) => JobId(id),
    }
}

fn is_queued(status: JobStatus) -> bool {
    status == JobStatus::Queued
}

fn is_running(status: JobStatus) -> bool {
    status == JobStatus::Running
}

fn is_open(status: JobStatus) -> bool {
    !status.is_final()
}

fn pick_attempt(state: &State, job: JobId, pick: AttemptPick) -> u32 {
    match pick {
        AttemptPick::Current => state.job(job).map_or(1, |job| job.attempt),
        AttemptPick::Raw(attempt) => attempt,
    }
}

fn labels(picks: &[usize]) -> Vec<String> {
    picks.iter().map(|&n| LABELS[n].to_owned()).collect()
}

/// Turns a step into the command a proposer would send given `state`; `index` sets the
/// proposer's time stamp.
fn bind(step: &Step, state: &State, index: usize) -> Command {
    let at = Timestamp(1_000 + 10 * index as u64);
    match step {
        Step::AddRepo { url } => Command::AddRepo { url: URLS[*url].to_owned(), at },
        Step::RemoveRepo { repo } => Command::RemoveRepo { repo: pick_repo(state, *repo), at },
        Step::Observe { repo, branch, head, new_head, commits, skipped } => {
            let repo = pick_repo(state, *repo);
            let branch = BRANCHES[*branch];
            let expected_head = match head {
                HeadPick::Current => state.cursor(repo, branch).map(|cursor| cursor.head.clone()),
                HeadPick::Raw(head) => head.map(commit),
            };
            Command::Observe(Observe {
                repo,
                branch: branch.to_owned(),
                expected_head,
                new_head: commit(*new_head),
                commits: commits
                    .iter()
                    .map(|(n, picks)| ObservedCommit { commit: commit(*n), labels: labels(picks) })
                    .collect(),
                skipped: skipped.iter().copied().map(commit).collect(),
                at,
            })
        }
        Step::Assign { job, runner, attempt } => {
            let job = pick_job(state, *job, is_queued);
            let attempt = pick_attempt(state, job, *attempt);
            Command::Assign { job, runner: NodeId(*runner), attempt, at }
        }
        Step::Requeue { job, attempt } => {
            let job = pick_job(state, *job, is_running);
            let attempt = pick_attempt(state, job, *attempt);
            Command::Requeue { job, attempt, reason: "lease expired".to_owned(), at }
        }
        Step::Finish { job, attempt, verdict, output_chars, output_char } => {
            let job = pick_job(state, *job, is_running);
            let attempt = pick_attempt(state, job, *attempt);
            let output: String = std::iter::repeat_n(OUTPUT_CHARS[*output_char], *output_chars)
                .chain("\ndone".chars())
                .collect();
            let outcome = Outcome {
                verdict: *verdict,
                exit_code: Some(*output_chars as i32 % 3),
                duration_ms: *output_chars as u64,
                output_tail: output,
                summary: None,
                message: None,
            };
            Command::Finish { job, attempt, outcome, at }
        }
        Step::Rerun { repo, branch, commit: n, labels: picks } => Command::Rerun {
            repo: pick_repo(state, *repo),
            branch: BRANCHES[*branch].to_owned(),
            commit: commit(*n),
            labels: labels(picks),
            at,
        },
        Step::Cancel { job } => Command::Cancel {
            job: pick_job(state, *job, is_open),
            reason: "by user".to_owned(),
            at,
        },
        Step::SetLimits { limits } => Command::SetLimits { limits: limits.clone() },
    }
}

fn encoded(state: &State) -> Vec<u8> {
    codec::encode(state).expect("a state always encodes")
}

/// The jobs a reply says it made final.
fn ended_by(reply: &Reply) -> Vec<JobId> {
    match reply {
        Reply::Finished { job, .. } | Reply::GaveUp { job, .. } | Reply::Cancelled { job } => {
            vec![*job]
        }
        Reply::RepoRemoved { cancelled, .. } => cancelled.clone(),
        _ => Vec::new(),
    }
}

/// A result with its output taken out, to compare results across output pruning.
fn without_output(result: &JobResult) -> JobResult {
    JobResult { output_tail: String::new(), output_pruned: false, ..result.clone() }
}

/// Everything the rest of the system reads from the indexes, for comparing two states.
fn index_views(state: &State) -> impl PartialEq + std::fmt::Debug {
    let label_sets: [&[&str]; 4] = [&[], &["gpu"], &["linux"], &["gpu", "linux"]];
    let claimable: Vec<Option<JobId>> = label_sets
        .iter()
        .map(|names| {
            let set: BTreeSet<String> = names.iter().map(|name| (*name).to_owned()).collect();
            state.next_claimable(&set).map(|job| job.id)
        })
        .collect();
    let running: Vec<JobId> = state.running_jobs().iter().map(|job| job.id).collect();
    let per_runner: Vec<Vec<JobId>> = (1..=RUNNERS)
        .map(|runner| state.running_on(NodeId(runner)).iter().map(|job| job.id).collect())
        .collect();
    let queued = JobFilter { status: Some(JobStatus::Queued), ..JobFilter::default() };
    let queued: Vec<JobId> = state.jobs(&queued).iter().map(|job| job.id).collect();
    let by_commit: Vec<Vec<JobId>> = (0..COMMITS)
        .map(|n| {
            let filter = JobFilter { commit: Some(commit(n).to_string()), ..JobFilter::default() };
            state.jobs(&filter).iter().map(|job| job.id).collect()
        })
        .collect();
    let urls: Vec<Option<RepoId>> =
        URLS.iter().map(|url| state.repo_by_url(url).map(|repo| repo.id)).collect();
    (state.queue_counts(), claimable, running, per_runner, queued, by_commit, urls)
}

/// The indexed queries agree with a plain scan of every job.
fn check_indexes_match_jobs(state: &State) -> Result<(), TestCaseError> {
    let jobs = all_jobs(state);
    let count =
        |wanted: fn(JobStatus) -> bool| jobs.iter().filter(|job| wanted(job.status)).count() as u64;
    let counts = state.queue_counts();
    prop_assert_eq!(counts.queued, count(|status| status == JobStatus::Queued));
    prop_assert_eq!(counts.running, count(|status| status == JobStatus::Running));
    prop_assert_eq!(counts.finished, count(JobStatus::is_final));
    let mut running: Vec<JobId> =
        jobs.iter().filter(|job| job.status == JobStatus::Running).map(|job| job.id).collect();
    running.sort();
    let indexed: Vec<JobId> = state.running_jobs().iter().map(|job| job.id).collect();
    prop_assert_eq!(indexed, running);
    let every_label: BTreeSet<String> = LABELS.iter().map(|label| (*label).to_owned()).collect();
    let oldest_queued = jobs.iter().rev().find(|job| job.status == JobStatus::Queued);
    prop_assert_eq!(
        state.next_claimable(&every_label).map(|job| job.id),
        oldest_queued.map(|job| job.id)
    );
    Ok(())
}

fn config() -> ProptestConfig {
    ProptestConfig::with_cases(256)
}

/// Once a job is final its status and result never change (retention may only drop
/// the output tail, and only once), no command ends a job twice, and a job has a
/// result exactly when its status is final. Fencing: an `Assign`, `Requeue` or
/// `Finish` only applies for the job's current attempt.
fn check_one_final_result_per_job(steps: &[Step]) -> Result<(), TestCaseError> {
    let mut state = State::default();
    let mut finals: BTreeMap<JobId, (JobStatus, JobResult)> = BTreeMap::new();
    let mut ended: BTreeSet<JobId> = BTreeSet::new();
    for (index, step) in steps.iter().enumerate() {
        let command = bind(step, &state, index);
        let fenced = match &command {
            Command::Assign { job, attempt, .. }
            | Command::Requeue { job, attempt, .. }
            | Command::Finish { job, attempt, .. } => Some((*job, *attempt)),
            _ => None,
        };
        let current_attempt = fenced.and_then(|(job, _)| state.job(job)).map(|job| job.attempt);
        let reply = state.apply(&command);
        if let (Some((_, attempt)), None) = (fenced, reply.refusal()) {
            prop_assert_eq!(current_attempt, Some(attempt), "{:?} applied: {:?}", command, reply);
        }
        for job in ended_by(&reply) {
            prop_assert!(ended.insert(job), "{:?} ended job {} a second time", command, job);
        }
        // An observation ends at once the jobs whose labels it refuses.
        if let Reply::Observed { jobs } = &reply {
            let at_once =
                jobs.iter().filter(|id| state.job(**id).is_some_and(|j| j.result.is_some()));
            ended.extend(at_once);
        }
        if let (Reply::Finished { job, .. }, Command::Finish { outcome, .. }) = (&reply, &command) {
            let limit = state.limits().output_tail_bytes as usize;
            if let Some(result) = state.job(*job).and_then(|job| job.result.as_ref()) {
                prop_assert!(result.output_pruned || result.output_tail.len() <= limit);
                prop_assert!(outcome.output_tail.ends_with(&result.output_tail));
            }
        }
        for job in all_jobs(&state) {
            prop_assert_eq!(job.result.is_some(), job.status.is_final(), "job {}", job.id);
            let Some(result) = &job.result else { continue };
            prop_assert!(
                ended.contains(&job.id),
                "job {} is final without a reply saying so",
                job.id
            );
            if let Some((status, first)) = finals.get(&job.id) {
                prop_assert_eq!(job.status, *status, "job {} changed status", job.id);
                prop_assert_eq!(without_output(result), without_output(first));
                if result.output_pruned {
                    prop_assert!(result.output_tail.is_empty());
                } else {
                    prop_assert!(!first.output_pruned, "job {} output came back", job.id);
                    prop_assert_eq!(&result.output_tail, &first.output_tail);
                }
            }
            finals.insert(job.id, (job.status, result.clone()));
        }
    }
    Ok(())
}

/// Every job ever created is still there, or was forgotten by retention: it had
/// become final and was among the oldest (in the order jobs became final) beyond
/// `retained_jobs`. An open job only leaves by a reply that made it final first.
fn check_no_job_is_lost(steps: &[Step]) -> Result<(), TestCaseError> {
    let mut state = State::default();
    // Final jobs in the order they became final, forgotten ones included; the first
    // `forgotten` of them are gone for good (raising the limit brings none back).
    let mut finish_order: Vec<JobId> = Vec::new();
    let mut forgotten = 0;
    for (index, step) in steps.iter().enumerate() {
        let before = state.clone();
        let command = bind(step, &state, index);
        let reply = state.apply(&command);
        let named = ended_by(&reply);

        let created = before.last_job_id().0 + 1..=state.last_job_id().0;
        let mut newly_final = Vec::new();
        for id in created.map(JobId) {
            let job = state.job(id);
            // Queued, or (labels beyond the bounds) ended in error at once, saying why.
            let refused_labels = job.is_some_and(|job| {
                job.status == JobStatus::Error
                    && job.result.as_ref().and_then(|r| r.message.as_deref()).is_some_and(
                        |message| message.starts_with("not run: its runner labels are refused"),
                    )
            });
            if refused_labels {
                finish_order.push(id);
                continue;
            }
            prop_assert_eq!(job.map(|job| job.status), Some(JobStatus::Queued), "new job {}", id);
        }
        for job in all_jobs(&before).into_iter().filter(|job| !job.status.is_final()) {
            let now = state.job(job.id).map(|job| job.status);
            if now.is_some_and(|status| !status.is_final()) {
                continue;
            }
            prop_assert!(
                named.contains(&job.id),
                "{:?} ended or removed open job {} without saying so: {:?}",
                command,
                job.id,
                reply
            );
            let expected = match reply {
                Reply::Finished { status, .. } => status,
                Reply::GaveUp { .. } => JobStatus::Error,
                _ => JobStatus::Cancelled,
            };
            prop_assert!(
                now.is_none_or(|status| status == expected),
                "job {} is {:?}",
                job.id,
                now
            );
            newly_final.push(job.id);
        }
        newly_final.sort();
        finish_order.extend(newly_final);

        let retained = state.limits().retained_jobs as usize;
        forgotten = forgotten.max(finish_order.len().saturating_sub(retained));
        for (position, id) in finish_order.iter().enumerate() {
            let present = state.job(*id);
            if position < forgotten {
                prop_assert!(present.is_none(), "job {} is beyond retained_jobs", id);
            } else {
                let status = present.map(|job| job.status);
                prop_assert!(status.is_some_and(JobStatus::is_final), "final job {} lost", id);
            }
        }
        let finished: BTreeSet<JobId> = finish_order.iter().copied().collect();
        for id in (1..=state.last_job_id().0).map(JobId) {
            if !finished.contains(&id) {
                let status = state.job(id).map(|job| job.status);
                prop_assert!(status.is_some_and(|s| !s.is_final()), "open job {} lost", id);
            }
        }

        // Outputs are pruned oldest first, and at most `retained_outputs` are kept.
        let kept = &finish_order[forgotten..];
        let pruned: Vec<bool> = kept
            .iter()
            .filter_map(|id| state.job(*id)?.result.as_ref().map(|r| r.output_pruned))
            .collect();
        prop_assert!(pruned.windows(2).all(|pair| pair[0] || !pair[1]), "{:?}", pruned);
        let with_output = pruned.iter().filter(|pruned| !**pruned).count();
        prop_assert!(with_output <= state.limits().retained_outputs as usize);
    }
    Ok(())
}

/// The bounds on what the state holds: a command adds open jobs to a repository only
/// while it has fewer than `max_queue_per_repo`, a repository only while fewer than
/// `max_repos` are watched, a branch cursor only while its repository has fewer than
/// `max_branches_per_repo`; and the queue, repository and branch refusals say so.
fn check_capacity_rules(steps: &[Step]) -> Result<(), TestCaseError> {
    let mut state = State::default();
    for (index, step) in steps.iter().enumerate() {
        let command = bind(step, &state, index);
        let before = state.clone();
        let reply = state.apply(&command);
        let limits = before.limits();
        for repo in state.repos().map(|repo| repo.id) {
            if state.open_jobs(repo) > before.open_jobs(repo) {
                prop_assert!(
                    before.open_jobs(repo) < limits.max_queue_per_repo,
                    "{:?} added jobs to the full queue of {}",
                    command,
                    repo
                );
            }
            let branches = state.cursors(repo).count();
            if branches > before.cursors(repo).count() {
                prop_assert!(before.cursors(repo).count() < limits.max_branches_per_repo as usize);
            }
        }
        if state.repos().count() > before.repos().count() {
            prop_assert!(before.repos().count() < limits.max_repos as usize);
        }
        if let Some(Refusal::QueueFull { repo, limit }) = reply.refusal() {
            prop_assert_eq!(*limit, limits.max_queue_per_repo);
            prop_assert!(before.open_jobs(*repo) >= *limit);
        }
    }
    Ok(())
}

/// A refused command leaves the state equal, and its encoding byte-identical.
fn check_refusals_change_nothing(steps: &[Step]) -> Result<(), TestCaseError> {
    let mut state = State::default();
    for (index, step) in steps.iter().enumerate() {
        let command = bind(step, &state, index);
        let before = state.clone();
        let before_bytes = encoded(&state);
        let reply = state.apply(&command);
        if let Reply::Refused(refusal) = &reply {
            prop_assert_eq!(
                &state,
                &before,
                "{:?} refused ({}) but changed the state",
                command,
                refusal
            );
            prop_assert_eq!(encoded(&state), before_bytes);
        }
    }
    Ok(())
}

/// Replicas applying the same log stay byte-identical, and a state decoded from its
/// encoding (a snapshot) equals the original, indexes included, and carries on alike.
fn check_replicas_stay_identical(steps: &[Step]) -> Result<(), TestCaseError> {
    let mut leader = State::default();
    let mut follower = State::default();
    // Restored from the leader's snapshot after every entry, then applies the next one.
    let mut restored = State::default();
    for (index, step) in steps.iter().enumerate() {
        let command = bind(step, &leader, index);
        let reply = leader.apply(&command);
        prop_assert_eq!(&follower.apply(&command), &reply);
        prop_assert_eq!(&restored.apply(&command), &reply);

        let bytes = encoded(&leader);
        prop_assert_eq!(encoded(&follower), bytes.clone());
        prop_assert_eq!(&follower, &leader);
        prop_assert_eq!(&restored, &leader);
        check_indexes_match_jobs(&leader)?;

        let snapshot: State = codec::decode_stored(&bytes).expect("own encoding decodes");
        prop_assert_eq!(&snapshot, &leader);
        prop_assert_eq!(encoded(&snapshot), bytes);
        prop_assert_eq!(index_views(&snapshot), index_views(&leader));
        restored = snapshot;
    }
    Ok(())
}

/// A replica that receives the log's commands grouped into `Batch` entries (cut at
/// `cuts`, with a nested batch slipped into some of them) ends byte-identical to one
/// that applied them one entry each, and answers each command alike; the nested batch
/// alone is refused and changes nothing.
fn check_batches_apply_like_single_entries(
    steps: &[Step],
    cuts: &[usize],
) -> Result<(), TestCaseError> {
    let mut single = State::default();
    let mut commands = Vec::new();
    let mut replies = Vec::new();
    for (index, step) in steps.iter().enumerate() {
        let command = bind(step, &single, index);
        replies.push(single.apply(&command));
        commands.push(command);
    }
    let mut batched = State::default();
    let mut batched_replies = Vec::new();
    let mut rest = &commands[..];
    for (round, &cut) in cuts.iter().cycle().enumerate() {
        if rest.is_empty() {
            break;
        }
        let (batch, tail) = rest.split_at(cut.clamp(1, rest.len()));
        rest = tail;
        let nested = round % 3 == 1;
        let mut entry = batch.to_vec();
        if nested {
            entry.insert(0, Command::Batch(batch.to_vec()));
        }
        let Reply::Batch(mut answers) = batched.apply(&Command::Batch(entry)) else {
            return Err(TestCaseError::fail("a batch must get Reply::Batch"));
        };
        if nested {
            let refusal = answers.remove(0);
            prop_assert!(
                matches!(refusal.refusal(), Some(Refusal::Invalid { .. })),
                "nested batch answered {:?}",
                refusal
            );
        }
        prop_assert_eq!(answers.len(), batch.len());
        batched_replies.extend(answers);
    }
    prop_assert_eq!(batched_replies, replies);
    prop_assert_eq!(encoded(&batched), encoded(&single));
    prop_assert_eq!(index_views(&batched), index_views(&single));
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn batches_apply_like_single_entries(
        steps in steps(),
        cuts in proptest::collection::vec(1usize..8, 1..6),
    ) {
        check_batches_apply_like_single_entries(&steps, &cuts)?;
    }

    #[test]
    fn a_job_has_at_most_one_final_result(steps in steps()) {
        check_one_final_result_per_job(&steps)?;
    }

    #[test]
    fn a_queued_job_is_never_lost(steps in steps()) {
        check_no_job_is_lost(&steps)?;
    }

    #[test]
    fn queues_repositories_and_branches_stay_within_their_limits(steps in steps()) {
        check_capacity_rules(&steps)?;
    }

    #[test]
    fn a_refused_command_changes_nothing(steps in steps()) {
        check_refusals_change_nothing(&steps)?;
    }

    #[test]
    fn replicas_applying_the_same_log_are_byte_identical(steps in steps()) {
        check_replicas_stay_identical(&steps)?;
    }
}
