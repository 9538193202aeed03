//! The rules: one function per command. Each checks everything first and changes the
//! state only once the command is known to apply, so a refusal changes nothing.

use super::{
    status_description, Attempt, Cursor, ForgeRefusal, Job, JobResult, JobStatus, Limits, Repo,
    RepoSettings, State, StatusUpdate, Trigger, MAX_BRANCH_BYTES, MAX_COMMITS_PER_OBSERVE,
    MAX_FAILING_NAMES, MAX_FORGE_ANSWER_BYTES, MAX_LABELS, MAX_LABEL_BYTES, MAX_MESSAGE_BYTES,
    MAX_NAME_BYTES, MAX_NOTE_BYTES, MAX_OUTBOX, MAX_REASON_BYTES, MAX_TEST_NAME_BYTES,
};
use crate::command::{Command, Observe, Outcome, Refusal, Reply, TestSummary};
use crate::types::{CommitId, JobId, NodeId, RepoId, Timestamp};

impl State {
    /// Applies one command. Deterministic: the reply and the new state depend only on
    /// the current state and the command.
    pub fn apply(&mut self, command: &Command) -> Reply {
        let result = match command {
            Command::AddRepo { url, at } => self.add_repo(url, *at),
            Command::RemoveRepo { repo, at } => self.remove_repo(*repo, *at),
            Command::Observe(observe) => self.observe(observe),
            Command::Assign { job, runner, attempt, at } => {
                self.assign(*job, *runner, *attempt, *at)
            }
            Command::Requeue { job, attempt, reason, at } => {
                self.requeue(*job, *attempt, reason, *at)
            }
            Command::Finish { job, attempt, outcome, at } => {
                self.finish(*job, *attempt, outcome, *at)
            }
            Command::Rerun { repo, branch, commit, labels, at } => {
                self.rerun(*repo, branch, commit, labels, *at)
            }
            Command::Cancel { job, reason, at } => self.cancel(*job, reason, *at),
            Command::SetLimits { limits } => self.set_limits(limits),
            Command::Batch(commands) => Ok(self.apply_batch(commands)),
            Command::SetSecret { name, sealed, at } => self.set_secret(name, sealed, &[], *at),
            Command::RemoveSecret { name, .. } => self.remove_secret(name),
            Command::WatchRepo { url, settings, at } => self.watch_repo(url, settings, *at),
            Command::SetRepoSettings { repo, settings, .. } => {
                self.set_repo_settings(*repo, settings)
            }
            Command::StatusDelivered { id, refused, at } => {
                Ok(self.status_delivered(*id, refused.as_deref(), *at))
            }
            Command::SetRestrictedSecret { name, sealed, branches, at } => {
                self.set_secret(name, sealed, branches, *at)
            }
            Command::ObserveBuilds(observe) => self.observe_builds(observe),
            Command::RerunBuild { repo, branch, plan, by, at } => {
                self.rerun_build(*repo, branch, plan, by.as_deref(), *at)
            }
            Command::CancelBuild { build, reason, at } => self.cancel_build(*build, reason, *at),
            Command::AddArtifacts { job, attempt, artifacts, .. } => {
                self.add_artifacts(*job, *attempt, artifacts)
            }
        };
        result.unwrap_or_else(Reply::Refused)
    }

    /// Each command of a batch applies exactly as its own entry would; a nested batch is
    /// refused on its own, so a batch stays one level deep.
    fn apply_batch(&mut self, commands: &[Command]) -> Reply {
        let replies = commands
            .iter()
            .map(|command| match command {
                Command::Batch(_) => Reply::Refused(Refusal::Invalid {
                    reason: "a batch cannot contain a batch".into(),
                }),
                single => self.apply(single),
            })
            .collect();
        Reply::Batch(replies)
    }

    fn add_repo(&mut self, url: &str, at: Timestamp) -> Result<Reply, Refusal> {
        check_text("repository url", url, MAX_NAME_BYTES)?;
        if let Some(&existing) = self.index.repo_by_url.get(url) {
            return Err(Refusal::DuplicateRepo { existing });
        }
        let limit = self.data.limits.max_repos;
        if self.data.repos.len() >= limit as usize {
            return Err(Refusal::LimitReached {
                what: "no more repositories can be watched".to_owned(),
                limit,
            });
        }
        self.data.last_repo_id += 1;
        let id = RepoId(self.data.last_repo_id);
        self.data.repos.insert(id, Repo { id, url: url.to_owned(), added_at: at });
        self.index.repo_by_url.insert(url.to_owned(), id);
        Ok(Reply::RepoAdded { repo: id })
    }

    fn watch_repo(
        &mut self,
        url: &str,
        settings: &RepoSettings,
        at: Timestamp,
    ) -> Result<Reply, Refusal> {
        if let Some(problem) = settings.problem() {
            return Err(invalid(problem));
        }
        let reply = self.add_repo(url, at)?;
        if let Reply::RepoAdded { repo } = reply {
            self.store_settings(repo, settings);
        }
        Ok(reply)
    }

    fn set_repo_settings(
        &mut self,
        repo: RepoId,
        settings: &RepoSettings,
    ) -> Result<Reply, Refusal> {
        if !self.data.repos.contains_key(&repo) {
            return Err(Refusal::UnknownRepo { repo });
        }
        if let Some(problem) = settings.problem() {
            return Err(invalid(problem));
        }
        self.store_settings(repo, settings);
        if settings.forge.is_none() {
            self.drop_statuses_of(repo);
            self.data.forge.refusals.remove(&repo);
        }
        Ok(Reply::RepoSettingsSet { repo })
    }

    fn store_settings(&mut self, repo: RepoId, settings: &RepoSettings) {
        if *settings == RepoSettings::default() {
            self.data.forge.settings.remove(&repo);
        } else {
            self.data.forge.settings.insert(repo, settings.clone());
        }
    }

    /// Takes status `id` out of the outbox; a refusal is kept for the repository until
    /// one of its statuses is delivered.
    fn status_delivered(&mut self, id: u64, refused: Option<&str>, at: Timestamp) -> Reply {
        let Some(update) = self.data.forge.outbox.remove(&id) else {
            return Reply::StatusDelivered { id, current: false };
        };
        self.index.status_by_job.remove(&update.job);
        match refused {
            Some(answer) => {
                let answer = head_of(answer, MAX_FORGE_ANSWER_BYTES).to_owned();
                self.data.forge.refusals.insert(update.repo, ForgeRefusal { at, answer });
            }
            None => {
                self.data.forge.refusals.remove(&update.repo);
            }
        }
        Reply::StatusDelivered { id, current: true }
    }

    fn remove_repo(&mut self, repo: RepoId, at: Timestamp) -> Result<Reply, Refusal> {
        if !self.data.repos.contains_key(&repo) {
            return Err(Refusal::UnknownRepo { repo });
        }
        // Its jobs end cancelled without statuses: nothing will post them.
        self.data.forge.settings.remove(&repo);
        self.data.forge.refusals.remove(&repo);
        self.drop_statuses_of(repo);
        let removed = self.data.repos.remove(&repo).ok_or(Refusal::UnknownRepo { repo })?;
        self.index.repo_by_url.remove(&removed.url);
        self.data.cursors.remove(&repo);
        let open: Vec<JobId> = self
            .data
            .jobs
            .values()
            .filter(|job| job.repo == repo && !job.status.is_final())
            .map(|job| job.id)
            .collect();
        for &job in &open {
            // A job waiting for one cancelled before it may have been skipped since.
            if self.data.jobs.get(&job).is_none_or(|job| job.status.is_final()) {
                continue;
            }
            if self.data.jobs.get(&job).is_some_and(|job| job.status == JobStatus::Running) {
                self.end_attempt(job, at, Some("cancelled: repository removed".to_owned()));
            }
            self.end_job(job, JobStatus::Cancelled, cancelled_result("repository removed", at));
        }
        Ok(Reply::RepoRemoved { repo, cancelled: open })
    }

    /// Moves the cursor and queues one job per commit. Refused, with the cursor left where
    /// it was, when the repository's queue is full: the observer offers the same commits
    /// again on its next round, so none is lost. A commit whose labels break the bounds
    /// gets a job that ends in `error` at once, saying why, rather than stalling the
    /// branch on an observation that could never apply.
    fn observe(&mut self, observe: &Observe) -> Result<Reply, Refusal> {
        let Observe { repo, branch, expected_head, new_head, commits, skipped, at } = observe;
        if commits.len() > MAX_COMMITS_PER_OBSERVE {
            return Err(invalid(format!(
                "{} commits in one observation, at most {MAX_COMMITS_PER_OBSERVE}",
                commits.len()
            )));
        }
        self.check_observation(*repo, branch, expected_head.as_ref(), !commits.is_empty())?;
        self.move_cursor(*repo, branch, new_head, skipped, *at);

        let jobs = commits
            .iter()
            .map(|observed| match labels_problem(&observed.labels) {
                None => self.queue_job(
                    *repo,
                    branch,
                    &observed.commit,
                    &observed.labels,
                    Trigger::Push,
                    *at,
                ),
                Some(problem) => {
                    let id =
                        self.queue_job(*repo, branch, &observed.commit, &[], Trigger::Push, *at);
                    let message = format!("not run: its runner labels are refused: {problem}");
                    self.end_job(id, JobStatus::Error, |_: &Job| {
                        JobResult::message_only(message, *at)
                    });
                    id
                }
            })
            .collect();
        Ok(Reply::Observed { jobs })
    }

    /// Refuses an observation of `branch` that does not start from its cursor, would
    /// observe a branch past the limit, or would queue jobs into a full queue.
    pub(super) fn check_observation(
        &self,
        repo: RepoId,
        branch: &str,
        expected_head: Option<&CommitId>,
        queues_jobs: bool,
    ) -> Result<(), Refusal> {
        if !self.data.repos.contains_key(&repo) {
            return Err(Refusal::UnknownRepo { repo });
        }
        check_text("branch", branch, MAX_BRANCH_BYTES)?;
        let repo = &repo;
        let branches = self.data.cursors.get(repo);
        let actual = branches.and_then(|branches| branches.get(branch));
        let actual_head = actual.map(|cursor| cursor.head.clone());
        if actual_head.as_ref() != expected_head {
            return Err(Refusal::CursorMoved {
                expected: expected_head.cloned(),
                actual: actual_head,
            });
        }
        let limits = &self.data.limits;
        let branch_count = branches.map_or(0, |branches| branches.len());
        if actual.is_none() && branch_count >= limits.max_branches_per_repo as usize {
            return Err(Refusal::LimitReached {
                what: format!("no more branches of repository {repo} can be observed"),
                limit: limits.max_branches_per_repo,
            });
        }
        if queues_jobs {
            self.check_queue(*repo)?;
        }
        Ok(())
    }

    /// Moves `branch`'s cursor to `new_head`, counting the commits the observer skipped.
    pub(super) fn move_cursor(
        &mut self,
        repo: RepoId,
        branch: &str,
        new_head: &CommitId,
        skipped: &[CommitId],
        at: Timestamp,
    ) {
        let actual = self.data.cursors.get(&repo).and_then(|branches| branches.get(branch));
        let (skipped_total, mut recent_skipped) = actual
            .map(|cursor| (cursor.skipped_total, cursor.recent_skipped.clone()))
            .unwrap_or_default();
        let keep = skipped.len().min(Cursor::RECENT_SKIPPED);
        recent_skipped.extend(skipped[skipped.len() - keep..].iter().cloned());
        let overflow = recent_skipped.len().saturating_sub(Cursor::RECENT_SKIPPED);
        recent_skipped.drain(..overflow);
        let cursor = Cursor {
            head: new_head.clone(),
            updated_at: at,
            skipped_total: skipped_total.saturating_add(skipped.len() as u64),
            recent_skipped,
        };
        self.data.cursors.entry(repo).or_default().insert(branch.to_owned(), cursor);
    }

    fn assign(
        &mut self,
        id: JobId,
        runner: NodeId,
        attempt: u32,
        at: Timestamp,
    ) -> Result<Reply, Refusal> {
        let job = self.job_for_update(id, attempt)?;
        if job.status != JobStatus::Queued {
            return Err(Refusal::NotQueued { job: id, status: job.status });
        }
        self.check_group(id)?;
        self.update_job(id, |job| {
            job.status = JobStatus::Running;
            job.runner = Some(runner);
            job.started_at = Some(at);
            job.attempts.push(Attempt {
                attempt,
                runner,
                started_at: at,
                ended_at: None,
                note: None,
            });
        });
        Ok(Reply::Assigned { job: id, attempt })
    }

    fn requeue(
        &mut self,
        id: JobId,
        attempt: u32,
        reason: &str,
        at: Timestamp,
    ) -> Result<Reply, Refusal> {
        let job = self.job_for_update(id, attempt)?;
        if job.status != JobStatus::Running {
            return Err(Refusal::NotRunning { job: id, status: job.status });
        }
        let reason = head_of(reason, MAX_REASON_BYTES);
        let note = format!("requeued: {reason}");
        let max_attempts = self.data.limits.max_attempts;
        if attempt >= max_attempts {
            let message = format!("runner lost on attempt {attempt} of {max_attempts}: {reason}");
            self.end_attempt(id, at, Some(note));
            self.end_job(id, JobStatus::Error, |job: &Job| JobResult {
                exit_code: None,
                duration_ms: job.started_at.map_or(0, |started| at.millis_since(started)),
                output_tail: String::new(),
                output_pruned: false,
                summary: None,
                message: Some(message),
                finished_at: at,
            });
            return Ok(Reply::GaveUp { job: id, attempts: attempt });
        }
        self.end_attempt(id, at, Some(note));
        // The next attempt stores its own artifacts.
        self.set_artifacts(id, Vec::new());
        self.update_job(id, |job| {
            job.status = JobStatus::Queued;
            job.attempt = attempt + 1;
            job.runner = None;
            job.started_at = None;
        });
        Ok(Reply::Requeued { job: id, attempt: attempt + 1 })
    }

    fn finish(
        &mut self,
        id: JobId,
        attempt: u32,
        outcome: &Outcome,
        at: Timestamp,
    ) -> Result<Reply, Refusal> {
        let job = self.job_for_update(id, attempt)?;
        if job.status != JobStatus::Running {
            return Err(Refusal::NotRunning { job: id, status: job.status });
        }
        let status = outcome.verdict.status();
        let tail_limit = self.data.limits.output_tail_bytes as usize;
        self.end_attempt(id, at, None);
        self.end_job(id, status, |_: &Job| JobResult {
            exit_code: outcome.exit_code,
            duration_ms: outcome.duration_ms,
            output_tail: tail_of(&outcome.output_tail, tail_limit).to_owned(),
            output_pruned: false,
            summary: outcome.summary.as_ref().map(capped_summary),
            message: outcome.message.as_deref().map(|m| head_of(m, MAX_MESSAGE_BYTES).to_owned()),
            finished_at: at,
        });
        Ok(Reply::Finished { job: id, status })
    }

    fn rerun(
        &mut self,
        repo: RepoId,
        branch: &str,
        commit: &CommitId,
        labels: &[String],
        at: Timestamp,
    ) -> Result<Reply, Refusal> {
        if !self.data.repos.contains_key(&repo) {
            return Err(Refusal::UnknownRepo { repo });
        }
        check_text("branch", branch, MAX_BRANCH_BYTES)?;
        if let Some(problem) = labels_problem(labels) {
            return Err(invalid(problem));
        }
        self.check_queue(repo)?;
        let job = self.queue_job(repo, branch, commit, labels, Trigger::Rerun, at);
        Ok(Reply::RerunQueued { job })
    }

    fn cancel(&mut self, id: JobId, reason: &str, at: Timestamp) -> Result<Reply, Refusal> {
        let reason = head_of(reason, MAX_REASON_BYTES);
        let job = self.data.jobs.get(&id).ok_or(Refusal::UnknownJob { job: id })?;
        if job.status.is_final() {
            return Err(Refusal::AlreadyFinal { job: id, status: job.status });
        }
        if job.status == JobStatus::Running {
            self.end_attempt(id, at, Some(format!("cancelled: {reason}")));
        }
        self.end_job(id, JobStatus::Cancelled, cancelled_result(reason, at));
        Ok(Reply::Cancelled { job: id })
    }

    fn set_limits(&mut self, limits: &Limits) -> Result<Reply, Refusal> {
        if let Some(problem) = limits.problem() {
            return Err(invalid(problem));
        }
        self.data.limits = limits.clone();
        self.enforce_retention();
        Ok(Reply::LimitsSet)
    }

    // ---- helpers: every change to a job goes through these, so the indexes follow ----

    /// Refuses more jobs for a repository whose queue is full.
    pub(super) fn check_queue(&self, repo: RepoId) -> Result<(), Refusal> {
        let limit = self.data.limits.max_queue_per_repo;
        if self.open_jobs(repo) >= limit {
            return Err(Refusal::QueueFull { repo, limit });
        }
        Ok(())
    }

    /// The job, if `attempt` is its current one and it is not final.
    pub(super) fn job_for_update(&self, id: JobId, attempt: u32) -> Result<&Job, Refusal> {
        let job = self.data.jobs.get(&id).ok_or(Refusal::UnknownJob { job: id })?;
        if job.status.is_final() {
            return Err(Refusal::AlreadyFinal { job: id, status: job.status });
        }
        if job.attempt != attempt {
            return Err(Refusal::StaleAttempt { job: id, current: job.attempt, got: attempt });
        }
        Ok(job)
    }

    fn queue_job(
        &mut self,
        repo: RepoId,
        branch: &str,
        commit: &CommitId,
        labels: &[String],
        trigger: Trigger,
        at: Timestamp,
    ) -> JobId {
        self.new_job(repo, branch, commit, labels, trigger, JobStatus::Queued, at)
    }

    /// A new job, `queued` or `waiting`.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new_job(
        &mut self,
        repo: RepoId,
        branch: &str,
        commit: &CommitId,
        labels: &[String],
        trigger: Trigger,
        status: JobStatus,
        at: Timestamp,
    ) -> JobId {
        debug_assert!(matches!(status, JobStatus::Queued | JobStatus::Waiting));
        self.data.last_job_id += 1;
        let id = JobId(self.data.last_job_id);
        let mut labels = labels.to_vec();
        labels.sort();
        labels.dedup();
        let job = Job {
            id,
            repo,
            branch: branch.to_owned(),
            commit: commit.clone(),
            trigger,
            labels,
            status,
            attempt: 1,
            created_at: at,
            runner: None,
            started_at: None,
            attempts: Vec::new(),
            result: None,
        };
        self.index.insert_job(&job);
        self.data.jobs.insert(id, job);
        self.enqueue_status(id);
        id
    }

    /// Puts job `id`'s status in the outbox if its repository has a forge, in place of
    /// the job's status still waiting there; the oldest status goes when the outbox is
    /// full.
    fn enqueue_status(&mut self, id: JobId) {
        let Some(job) = self.data.jobs.get(&id) else { return };
        let has_forge = self
            .data
            .forge
            .settings
            .get(&job.repo)
            .is_some_and(|settings| settings.forge.is_some());
        if !has_forge {
            return;
        }
        let update = StatusUpdate {
            repo: job.repo,
            job: id,
            commit: job.commit.clone(),
            status: job.status,
            description: status_description(job),
            at: job.result.as_ref().map_or_else(
                || job.started_at.unwrap_or(job.created_at),
                |result| result.finished_at,
            ),
        };
        if let Some(old) = self.index.status_by_job.remove(&id) {
            self.data.forge.outbox.remove(&old);
        }
        while self.data.forge.outbox.len() >= MAX_OUTBOX {
            let Some((_, dropped)) = self.data.forge.outbox.pop_first() else { break };
            self.index.status_by_job.remove(&dropped.job);
        }
        self.data.forge.last_status_id += 1;
        let status_id = self.data.forge.last_status_id;
        self.data.forge.outbox.insert(status_id, update);
        self.index.status_by_job.insert(id, status_id);
    }

    fn drop_statuses_of(&mut self, repo: RepoId) {
        let index = &mut self.index;
        self.data.forge.outbox.retain(|_, update| {
            let keep = update.repo != repo;
            if !keep {
                index.status_by_job.remove(&update.job);
            }
            keep
        });
    }

    /// Changes a job, keeping the status indexes in step.
    pub(super) fn update_job(&mut self, id: JobId, change: impl FnOnce(&mut Job)) {
        let Some(job) = self.data.jobs.get_mut(&id) else {
            debug_assert!(false, "update_job on missing job {id}");
            return;
        };
        self.index.untrack_status(job);
        let before = (job.status, job.attempt);
        change(job);
        self.index.track_status(job);
        let (was_running, is_running) =
            (before.0 == JobStatus::Running, job.status == JobStatus::Running);
        let status_changed = job.status != before.0;
        if (job.status, job.attempt) != before {
            self.enqueue_status(id);
        }
        if status_changed {
            if let Some(step) = self.data.pipeline.steps.get(&id) {
                let build = step.build;
                if was_running != is_running {
                    if let Some(group) = step.concurrency.clone() {
                        self.track_group(group, id, is_running);
                    }
                }
                self.refresh_build(build);
            }
        }
    }

    /// Makes a job final with the result `result` builds, moves the jobs of its build
    /// that wait for it on, then applies retention.
    pub(super) fn end_job(
        &mut self,
        id: JobId,
        status: JobStatus,
        result: impl FnOnce(&Job) -> JobResult,
    ) {
        let at = self.make_final(id, status, result);
        self.advance_build_of(id, at);
        self.enforce_retention();
    }

    /// Makes a job final with the result `result` builds; returns its time stamp.
    pub(super) fn make_final(
        &mut self,
        id: JobId,
        status: JobStatus,
        result: impl FnOnce(&Job) -> JobResult,
    ) -> Timestamp {
        debug_assert!(status.is_final());
        let mut at = Timestamp(0);
        self.update_job(id, |job| {
            debug_assert!(job.result.is_none(), "job {id} finished twice");
            let mut result = result(job);
            if let Some(message) = &mut result.message {
                truncate_to(message, MAX_MESSAGE_BYTES);
            }
            at = result.finished_at;
            job.result = Some(result);
            job.status = status;
        });
        self.data.finished.push_back(id);
        self.data.outputs_kept.push_back(id);
        at
    }

    pub(super) fn end_attempt(&mut self, id: JobId, at: Timestamp, mut note: Option<String>) {
        if let Some(note) = &mut note {
            truncate_to(note, MAX_NOTE_BYTES);
        }
        if let Some(attempt) = self.data.jobs.get_mut(&id).and_then(|job| job.attempts.last_mut()) {
            attempt.ended_at = Some(at);
            attempt.note = note;
        }
    }

    /// Drops the output and the failing test names (not their counts) of final jobs
    /// beyond `retained_outputs`, and forgets final jobs beyond `retained_jobs`, oldest
    /// first.
    pub(super) fn enforce_retention(&mut self) {
        let (retained_outputs, retained_jobs) =
            (self.data.limits.retained_outputs as usize, self.data.limits.retained_jobs as usize);
        while self.data.outputs_kept.len() > retained_outputs {
            let Some(id) = self.data.outputs_kept.pop_front() else { break };
            if let Some(result) = self.data.jobs.get_mut(&id).and_then(|job| job.result.as_mut()) {
                result.output_tail = String::new();
                result.output_pruned = true;
                if let Some(summary) = &mut result.summary {
                    summary.failing = Vec::new();
                }
            }
        }
        while self.data.finished.len() > retained_jobs {
            let Some(id) = self.data.finished.pop_front() else { break };
            if let Some(job) = self.data.jobs.remove(&id) {
                self.index.remove_job(&job);
                self.forget_step(id);
            }
        }
    }
}

pub(super) fn cancelled_result(reason: &str, at: Timestamp) -> impl FnOnce(&Job) -> JobResult + '_ {
    move |job: &Job| JobResult {
        exit_code: None,
        duration_ms: job.started_at.map_or(0, |started| at.millis_since(started)),
        output_tail: String::new(),
        output_pruned: false,
        summary: None,
        message: Some(format!("cancelled: {reason}")),
        finished_at: at,
    }
}

pub(super) fn invalid(reason: String) -> Refusal {
    Refusal::Invalid { reason }
}

/// Why `text` cannot be a name (`what`) of at most `limit` bytes, if it cannot.
pub(super) fn text_problem(what: &str, text: &str, limit: usize) -> Option<String> {
    if text.is_empty() {
        Some(format!("empty {what}"))
    } else if text.len() > limit {
        Some(format!("{what} longer than {limit} bytes"))
    } else if text.chars().any(char::is_control) {
        Some(format!("{what} contains control characters"))
    } else {
        None
    }
}

pub(super) fn check_text(what: &str, text: &str, limit: usize) -> Result<(), Refusal> {
    text_problem(what, text, limit).map_or(Ok(()), |problem| Err(invalid(problem)))
}

fn labels_problem(labels: &[String]) -> Option<String> {
    if labels.len() > MAX_LABELS {
        return Some(format!("more than {MAX_LABELS} labels"));
    }
    labels.iter().find_map(|label| text_problem("label", label, MAX_LABEL_BYTES))
}

/// Cuts `text` to at most `limit` bytes, on a character boundary.
fn truncate_to(text: &mut String, limit: usize) {
    let kept = head_of(text, limit).len();
    text.truncate(kept);
}

/// The first `limit` bytes of `text`, ending on a character boundary.
pub(crate) fn head_of(text: &str, limit: usize) -> &str {
    if text.len() <= limit {
        return text;
    }
    let mut end = limit;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// A summary within [`MAX_FAILING_NAMES`] names of at most [`MAX_TEST_NAME_BYTES`] bytes.
fn capped_summary(summary: &TestSummary) -> TestSummary {
    TestSummary {
        failing: summary
            .failing
            .iter()
            .take(MAX_FAILING_NAMES)
            .map(|name| head_of(name, MAX_TEST_NAME_BYTES).to_owned())
            .collect(),
        ..summary.clone()
    }
}

/// The last `limit` bytes of `text`, starting on a character boundary.
pub(crate) fn tail_of(text: &str, limit: usize) -> &str {
    if text.len() <= limit {
        return text;
    }
    let mut start = text.len() - limit;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}
