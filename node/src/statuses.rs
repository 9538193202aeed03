//! The leader's poster of commit statuses: it drains the replicated outbox (see
//! `eventide_consensus::state::StatusUpdate`) to the forges.
//!
//! The state enqueues a job's status whenever the job changes, in place of the one still
//! waiting, so the poster only ever sends what the state says now. Each repository's
//! statuses go one at a time, oldest first, so that a job's `pending` never lands after
//! its final status; repositories do not wait for each other. After a post the leader
//! commits `StatusDelivered`; a failover before that makes the next leader post the same
//! status again, which the forge takes as the same mark. A forge that fails (5xx,
//! timeouts, 429, rate limits) is retried after a backoff that honours `Retry-After`; one
//! that refuses (401, 403, 404, 422) has its answer recorded for `status` and `repo
//! list`, and the status is dropped: the job's result is unaffected.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use eventide_consensus::auth::{Secret, Zeroizing};
use eventide_consensus::network::Writer;
use eventide_consensus::state::{RepoSettings, StatusUpdate};
use eventide_consensus::store::StateMachineStore;
use eventide_consensus::{Command, JobStatus, RepoId, State};
use tracing::{debug, info, warn, Instrument};

use crate::forge::status::{self, api_url_for, post, project_of, random_unit};
use crate::forge::{Backoff, PostError, StatusRequest, StatusState};
use crate::raft_view::RaftView;
use crate::remote::split_token;
use crate::secrets::Secrets;
use crate::{clock, metrics::Metrics};

/// The longest the poster sleeps without looking at the outbox (it also wakes on every
/// applied entry).
const IDLE_LOOK: Duration = Duration::from_secs(1);

/// What the poster is configured with.
#[derive(Clone, Debug)]
pub struct PosterSettings {
    /// The dashboard's address for the statuses' links (`--public-url`).
    pub public_url: String,
}

/// The handles the poster uses.
pub struct PosterHandles {
    pub raft: RaftView,
    pub state_machine: StateMachineStore,
    pub writer: Writer,
    /// Opens the token secrets; without a cluster secret there are none.
    pub secret: Option<Secret>,
    pub metrics: Arc<Metrics>,
}

/// One status ready to post: the outbox entry with everything its request needs.
struct Outgoing {
    id: u64,
    repo: RepoId,
    request: StatusRequest,
    token: Zeroizing<Vec<u8>>,
}

/// A status that cannot be posted as the settings are: dropped with this answer.
struct Unpostable {
    id: u64,
    answer: String,
}

/// Each repository's retry state.
#[derive(Debug, Default)]
struct Retry {
    failures: u32,
    not_before: Option<Instant>,
}

/// The poster of this node.
pub struct Poster {
    settings: PosterSettings,
    raft: RaftView,
    state_machine: StateMachineStore,
    writer: Writer,
    secret: Option<Secret>,
    metrics: Arc<Metrics>,
    http: reqwest::Client,
    backoff: Backoff,
    /// Repositories with a post in flight.
    busy: Mutex<BTreeSet<RepoId>>,
    retries: Mutex<BTreeMap<RepoId, Retry>>,
}

impl Poster {
    pub fn new(settings: PosterSettings, handles: PosterHandles) -> anyhow::Result<Arc<Poster>> {
        let PosterHandles { raft, state_machine, writer, secret, metrics } = handles;
        // It follows no redirect: a token header must not reach another host.
        let http = status::client()?;
        Ok(Arc::new(Poster {
            settings,
            raft,
            state_machine,
            writer,
            secret,
            metrics,
            http,
            backoff: Backoff::default(),
            busy: Mutex::default(),
            retries: Mutex::default(),
        }))
    }

    /// Runs forever: on the leader, starts the next post of every repository that has a
    /// status waiting and none in flight, whenever an entry is applied (or every second).
    pub async fn run(self: Arc<Self>) {
        let span = tracing::info_span!("statuses", role = "statuses");
        async move {
            let mut changes = self.raft.changes();
            loop {
                if self.raft.is_leader() {
                    self.start_posts();
                } else {
                    lock(&self.retries).clear();
                    // Only the leader posts: another node waits for a change of Raft
                    // (leadership) instead of looking every second.
                    if !changes.changed().await {
                        return; // Raft has shut down: the node is stopping.
                    }
                    continue;
                }
                let wake = self.next_retry().map_or(IDLE_LOOK, |at| {
                    at.saturating_duration_since(Instant::now()).min(IDLE_LOOK)
                });
                if !changes.changed_before(tokio::time::Instant::now() + wake).await
                    && self.raft.stopped().is_some()
                {
                    return;
                }
            }
        }
        .instrument(span)
        .await
    }

    fn next_retry(&self) -> Option<Instant> {
        lock(&self.retries).values().filter_map(|retry| retry.not_before).min()
    }

    /// Starts a task per repository that is ready (see [`ready_repos`]).
    fn start_posts(self: &Arc<Self>) {
        let now = Instant::now();
        let (outgoing, unpostable) = {
            let busy = lock(&self.busy);
            let retries = lock(&self.retries);
            let waiting: BTreeMap<RepoId, Instant> = retries
                .iter()
                .filter_map(|(repo, retry)| retry.not_before.map(|at| (*repo, at)))
                .collect();
            self.state_machine.read(|state| {
                let heads = outbox_heads(state);
                let ready = ready_repos(&heads, &busy, &waiting, now);
                let mut outgoing = Vec::new();
                let mut unpostable = Vec::new();
                for (repo, (id, update)) in heads {
                    if !ready.contains(&repo) {
                        continue;
                    }
                    match self.prepare(state, id, update) {
                        Ok(ready) => outgoing.push(ready),
                        Err(problem) => unpostable.push(problem),
                    }
                }
                (outgoing, unpostable)
            })
        };
        for problem in unpostable {
            let repo = self.state_machine.read(|state| {
                state.status_outbox().find(|(id, _)| *id == problem.id).map(|(_, u)| u.repo)
            });
            let Some(repo) = repo else { continue };
            if !lock(&self.busy).insert(repo) {
                continue;
            }
            let poster = self.clone();
            tokio::spawn(
                async move {
                    warn!(repo = %repo, status = problem.id, answer = %problem.answer, "commit status cannot be posted");
                    poster.delivered(problem.id, Some(problem.answer)).await;
                    lock(&poster.busy).remove(&repo);
                }
                .in_current_span(),
            );
        }
        for status in outgoing {
            if !lock(&self.busy).insert(status.repo) {
                continue;
            }
            let poster = self.clone();
            tokio::spawn(
                async move {
                    let repo = status.repo;
                    poster.post_one(status).await;
                    lock(&poster.busy).remove(&repo);
                }
                .in_current_span(),
            );
        }
    }

    /// The request for outbox entry `id`, or why there can be none.
    fn prepare(
        &self,
        state: &State,
        id: u64,
        update: &StatusUpdate,
    ) -> Result<Outgoing, Unpostable> {
        let unpostable = |answer: String| Unpostable { id, answer };
        let settings = state.repo_settings(update.repo);
        let forge = settings.forge.ok_or_else(|| unpostable("no forge set".to_owned()))?;
        let repo = state
            .repo(update.repo)
            .ok_or_else(|| unpostable("the repository is no longer watched".to_owned()))?;
        let Some(token_name) = settings.token.as_deref() else {
            return Err(unpostable(format!(
                "no token: name one with `eventide-node repo set {} --token SECRET`",
                update.repo
            )));
        };
        let secret = self.secret.as_ref().ok_or_else(|| {
            unpostable(
                "no cluster secret, so no token can be opened: start nodes with --secret-file"
                    .to_owned(),
            )
        })?;
        let value = Secrets::reveal(state, secret, token_name).ok_or_else(|| {
            unpostable(format!(
                "the token secret {token_name} is not stored: `eventide-node secret set {token_name}`"
            ))
        })?;
        // A `USER:TOKEN` value names the user for fetches; the API takes the token.
        let (_, token) = split_token(&value);
        let api_url = api_url_for(forge, settings.api_url.as_deref(), &repo.url)
            .map_err(|e| unpostable(format!("{e:#}")))?;
        let project = project_of(forge, &repo.url).map_err(|e| unpostable(format!("{e:#}")))?;
        let request = StatusRequest {
            forge,
            api_url,
            project,
            sha: update.commit.as_str().to_owned(),
            state: state_of(update.status),
            target_url: Some(format!("{}/#/job/{}", self.settings.public_url, update.job.0)),
            context: job_context(state, update.job, settings),
            description: update.description.clone(),
        };
        Ok(Outgoing { id, repo: update.repo, request, token })
    }

    async fn post_one(&self, status: Outgoing) {
        let Outgoing { id, repo, request, token } = status;
        let started = Instant::now();
        let result = post(&self.http, &token, &request).await;
        drop(token);
        let forge = request.forge.as_str();
        self.metrics.forge_status_posted(result_label(&result), started.elapsed());
        match result {
            Ok(()) => {
                debug!(repo = %repo, status = id, forge, sha = %request.sha, state = ?request.state, "commit status posted");
                lock(&self.retries).remove(&repo);
                self.delivered(id, None).await;
            }
            Err(PostError::Refused { status, message }) => {
                let answer = refusal_answer(status, &message);
                warn!(repo = %repo, status = id, forge, answer = %answer, "forge refused a commit status");
                lock(&self.retries).remove(&repo);
                self.delivered(id, Some(answer)).await;
            }
            Err(PostError::Retry { after, reason }) => {
                let mut retries = lock(&self.retries);
                let retry = retries.entry(repo).or_default();
                retry.failures += 1;
                let wait = self.backoff.delay(retry.failures, after, random_unit());
                retry.not_before = Some(Instant::now() + wait);
                info!(repo = %repo, status = id, forge, failures = retry.failures, retry_in_ms = wait.as_millis() as u64, reason = %reason, "commit status not posted, will retry");
            }
        }
    }

    /// Commits that status `id` left the outbox. A failed write (lost leadership, no
    /// quorum) leaves it there: this or the next leader posts it again.
    async fn delivered(&self, id: u64, refused: Option<String>) {
        let command = Command::StatusDelivered { id, refused, at: clock::now() };
        if let Err(error) = self.writer.write(command).await {
            debug!(status = id, error = %error, "delivery of a commit status not committed");
        }
    }
}

/// The oldest waiting status of each repository.
fn outbox_heads(state: &State) -> BTreeMap<RepoId, (u64, &StatusUpdate)> {
    let mut heads = BTreeMap::new();
    for (id, update) in state.status_outbox() {
        heads.entry(update.repo).or_insert((id, update));
    }
    heads
}

/// The repositories whose oldest status may be posted now: not one in flight, and not
/// waiting out a backoff.
fn ready_repos<T>(
    heads: &BTreeMap<RepoId, T>,
    busy: &BTreeSet<RepoId>,
    not_before: &BTreeMap<RepoId, Instant>,
    now: Instant,
) -> BTreeSet<RepoId> {
    heads
        .keys()
        .filter(|repo| !busy.contains(repo))
        .filter(|repo| not_before.get(repo).is_none_or(|at| *at <= now))
        .copied()
        .collect()
}

/// The status context of a job. A one-step `[test]` build keeps the repository's
/// context (`eventide/test` unless `status_context` says otherwise), as before pipelines,
/// so that branch protection rules naming it keep working; a job of a pipeline gets its
/// own, its name after the repository's `status_context` or `eventide`
/// (`eventide/build`, `eventide/test (python=3.11)`), so the forge shows one per job.
fn job_context(state: &State, job: eventide_consensus::JobId, settings: &RepoSettings) -> String {
    let Some(step) = state.step_of(job) else { return settings.context().to_owned() };
    let one_test = state.build(step.build).is_some_and(|build| build.jobs.len() == 1)
        && step.step == "test"
        && step.matrix.is_empty();
    if one_test {
        settings.context().to_owned()
    } else {
        format!("{}/{}", settings.status_context.as_deref().unwrap_or("eventide"), step.name())
    }
}

/// The forge state of a job's status.
fn state_of(status: JobStatus) -> StatusState {
    match status {
        JobStatus::Waiting | JobStatus::Queued => StatusState::Pending,
        JobStatus::Running => StatusState::Running,
        JobStatus::Passed => StatusState::Success,
        JobStatus::Failed | JobStatus::TimedOut => StatusState::Failure,
        // A skipped step did not run: the forge shows it as not passed, with the reason.
        JobStatus::Error | JobStatus::Cancelled | JobStatus::Skipped => StatusState::Error,
    }
}

/// A refusal as `status` and `repo list` show it: `401: Bad credentials`.
fn refusal_answer(status: u16, message: &str) -> String {
    if status == 0 {
        message.to_owned()
    } else {
        format!("HTTP {status}: {message}")
    }
}

fn result_label(result: &Result<(), PostError>) -> &'static str {
    match result {
        Ok(()) => "posted",
        Err(PostError::Retry { .. }) => "retry",
        Err(PostError::Refused { .. }) => "refused",
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_of_a_pipeline_gets_a_context_of_its_own() {
        use eventide_consensus::command::{BuildPlan, PlannedJob};
        let mut state = State::default();
        state.apply(&Command::AddRepo {
            url: "/srv/app".into(),
            at: eventide_consensus::Timestamp(1),
        });
        let job = |step: &str, matrix: &[(&str, &str)]| PlannedJob {
            step: step.into(),
            matrix: matrix.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
            needs: Vec::new(),
            labels: Vec::new(),
            concurrency: None,
        };
        let rerun = |jobs: Vec<PlannedJob>| Command::RerunBuild {
            repo: RepoId(1),
            branch: "main".into(),
            plan: BuildPlan {
                commit: eventide_consensus::CommitId::try_new(&"ab".repeat(20)).expect("an id"),
                subject: String::new(),
                author: String::new(),
                jobs,
                cancel_superseded: false,
            },
            by: None,
            at: eventide_consensus::Timestamp(2),
        };
        state.apply(&rerun(vec![job("test", &[])]));
        state.apply(&rerun(vec![job("build", &[]), job("test", &[("py", "3.12")])]));
        let default = RepoSettings::default();
        let context = |id: u64| job_context(&state, eventide_consensus::JobId(id), &default);
        assert_eq!(context(1), "eventide/test", "the one-step form keeps the repository's");
        assert_eq!(context(2), "eventide/build");
        assert_eq!(context(3), "eventide/test (py=3.12)");
        assert_eq!(context(99), "eventide/test");
        let named = RepoSettings { status_context: Some("ci".into()), ..RepoSettings::default() };
        assert_eq!(job_context(&state, eventide_consensus::JobId(1), &named), "ci");
        assert_eq!(job_context(&state, eventide_consensus::JobId(2), &named), "ci/build");
    }

    #[test]
    fn a_repository_is_ready_when_idle_and_past_its_backoff() {
        let now = Instant::now();
        let heads: BTreeMap<RepoId, ()> =
            [RepoId(1), RepoId(2), RepoId(3), RepoId(4)].into_iter().map(|r| (r, ())).collect();
        let busy = BTreeSet::from([RepoId(1)]);
        let not_before = BTreeMap::from([
            (RepoId(2), now + Duration::from_secs(5)),
            (RepoId(3), now - Duration::from_secs(1)),
        ]);
        assert_eq!(
            ready_repos(&heads, &busy, &not_before, now),
            BTreeSet::from([RepoId(3), RepoId(4)])
        );
    }

    #[test]
    fn the_oldest_status_of_each_repository_goes_first() {
        use eventide_consensus::{CommitId, ForgeKind, RepoSettings, Timestamp};
        let mut state = State::default();
        let settings = RepoSettings { forge: Some(ForgeKind::Github), ..RepoSettings::default() };
        for url in ["https://github.com/a/b.git", "https://github.com/c/d.git"] {
            let watch = Command::WatchRepo {
                url: url.into(),
                settings: settings.clone(),
                at: Timestamp(1),
            };
            assert!(state.apply(&watch).refusal().is_none());
        }
        for (repo, n) in [(1, "aa"), (2, "bb"), (1, "cc")] {
            let rerun = Command::Rerun {
                repo: RepoId(repo),
                branch: "main".into(),
                commit: CommitId::try_new(&n.repeat(20)).expect("an id"),
                labels: Vec::new(),
                at: Timestamp(2),
            };
            assert!(state.apply(&rerun).refusal().is_none());
        }
        let heads: Vec<(RepoId, u64)> =
            outbox_heads(&state).into_iter().map(|(repo, (id, _))| (repo, id)).collect();
        assert_eq!(heads, vec![(RepoId(1), 1), (RepoId(2), 2)]);
    }

    #[test]
    fn job_states_map_to_forge_states() {
        assert_eq!(state_of(JobStatus::Queued), StatusState::Pending);
        assert_eq!(state_of(JobStatus::Running), StatusState::Running);
        assert_eq!(state_of(JobStatus::Passed), StatusState::Success);
        assert_eq!(state_of(JobStatus::Failed), StatusState::Failure);
        assert_eq!(state_of(JobStatus::TimedOut), StatusState::Failure);
        assert_eq!(state_of(JobStatus::Error), StatusState::Error);
        assert_eq!(state_of(JobStatus::Cancelled), StatusState::Error);
        assert_eq!(refusal_answer(401, "Bad credentials"), "HTTP 401: Bad credentials");
    }
}
