//! The rules of builds: queueing a plan, moving waiting jobs on when the jobs they need
//! end, cancelling a build, superseding older builds, concurrency groups and artifacts.
//! Like every rule, each checks first and changes the state only once it applies.

use super::apply::{check_text, head_of, invalid};
use super::pipeline::{
    artifact_problem, plan_problem, shown_text, Artifact, Build, BuildStatus, JobStep,
    MAX_ARTIFACTS, MAX_ARTIFACTS_PER_JOB,
};
use super::{
    JobResult, JobStatus, State, Trigger, MAX_BRANCH_BYTES, MAX_COMMITS_PER_OBSERVE,
    MAX_REASON_BYTES,
};
use crate::command::{
    BuildPlan, ObserveBuilds, Refusal, Reply, MAX_AUTHOR_BYTES, MAX_BY_BYTES, MAX_JOBS_PER_OBSERVE,
    MAX_SUBJECT_BYTES,
};
use crate::types::{BuildId, JobId, RepoId, Timestamp};

impl State {
    pub(super) fn observe_builds(&mut self, observe: &ObserveBuilds) -> Result<Reply, Refusal> {
        let ObserveBuilds { repo, branch, expected_head, new_head, builds, skipped, by, at } =
            observe;
        if builds.len() > MAX_COMMITS_PER_OBSERVE {
            return Err(invalid(format!(
                "{} commits in one observation, at most {MAX_COMMITS_PER_OBSERVE}",
                builds.len()
            )));
        }
        let jobs: usize = builds.iter().map(|plan| plan.jobs.len().max(1)).sum();
        if jobs > MAX_JOBS_PER_OBSERVE {
            return Err(invalid(format!(
                "{jobs} jobs in one observation, at most {MAX_JOBS_PER_OBSERVE}"
            )));
        }
        self.check_observation(*repo, branch, expected_head.as_ref(), !builds.is_empty())?;
        self.move_cursor(*repo, branch, new_head, skipped, *at);
        let mut build_ids = Vec::with_capacity(builds.len());
        let mut job_ids = Vec::with_capacity(jobs);
        for plan in builds {
            let (build, jobs) =
                self.create_build(*repo, branch, plan, Trigger::Push, by.as_deref(), *at);
            build_ids.push(build);
            job_ids.extend(jobs);
        }
        if let (Some(&newest), Some(plan)) = (build_ids.last(), builds.last()) {
            if plan.cancel_superseded {
                let reason = format!("superseded by {}", short(plan.commit.as_str()));
                self.cancel_superseded(*repo, branch, newest, &reason, *at);
            }
        }
        Ok(Reply::BuildsObserved { builds: build_ids, jobs: job_ids })
    }

    pub(super) fn rerun_build(
        &mut self,
        repo: RepoId,
        branch: &str,
        plan: &BuildPlan,
        by: Option<&str>,
        at: Timestamp,
    ) -> Result<Reply, Refusal> {
        if !self.data.repos.contains_key(&repo) {
            return Err(Refusal::UnknownRepo { repo });
        }
        check_text("branch", branch, MAX_BRANCH_BYTES)?;
        if let Some(problem) = plan_problem(plan) {
            return Err(invalid(problem));
        }
        self.check_queue(repo)?;
        let (build, jobs) = self.create_build(repo, branch, plan, Trigger::Rerun, by, at);
        Ok(Reply::BuildQueued { build, jobs })
    }

    pub(super) fn cancel_build(
        &mut self,
        build: BuildId,
        reason: &str,
        at: Timestamp,
    ) -> Result<Reply, Refusal> {
        let record =
            self.data.pipeline.builds.get(&build).ok_or(Refusal::UnknownBuild { build })?;
        if record.status.is_final() {
            return Ok(Reply::BuildCancelled { build, jobs: Vec::new() });
        }
        let reason = head_of(reason, MAX_REASON_BYTES).to_owned();
        let jobs = self.end_build(build, &reason, at);
        self.enforce_retention();
        Ok(Reply::BuildCancelled { build, jobs })
    }

    pub(super) fn add_artifacts(
        &mut self,
        job: JobId,
        attempt: u32,
        artifacts: &[Artifact],
    ) -> Result<Reply, Refusal> {
        let record = self.job_for_update(job, attempt)?;
        if record.status != JobStatus::Running {
            return Err(Refusal::NotRunning { job, status: record.status });
        }
        let step = self
            .data
            .pipeline
            .steps
            .get(&job)
            .ok_or_else(|| invalid(format!("job {job} belongs to no build")))?;
        if let Some(problem) = artifacts.iter().find_map(artifact_problem) {
            return Err(invalid(problem));
        }
        let mut kept = step.artifacts.clone();
        for artifact in artifacts {
            kept.retain(|old| old.name != artifact.name);
            kept.push(artifact.clone());
        }
        if kept.len() > MAX_ARTIFACTS_PER_JOB {
            return Err(invalid(format!(
                "{} artifacts for job {job}, at most {MAX_ARTIFACTS_PER_JOB}",
                kept.len()
            )));
        }
        let count = kept.len();
        let others = self.index.artifacts - step.artifacts.len();
        if others + count > MAX_ARTIFACTS {
            self.forget_old_artifacts(MAX_ARTIFACTS - count);
        }
        let others = self.index.artifacts
            - self.data.pipeline.steps.get(&job).map_or(0, |s| s.artifacts.len());
        if others + count > MAX_ARTIFACTS {
            return Err(invalid(format!(
                "the cluster indexes {MAX_ARTIFACTS} artifacts of jobs not final yet, the most it may"
            )));
        }
        self.set_artifacts(job, kept);
        Ok(Reply::ArtifactsAdded { job, count: count as u32 })
    }

    /// Replaces a job's artifacts, keeping the count in step.
    pub(super) fn set_artifacts(&mut self, job: JobId, artifacts: Vec<Artifact>) {
        if let Some(step) = self.data.pipeline.steps.get_mut(&job) {
            self.index.artifacts = self.index.artifacts - step.artifacts.len() + artifacts.len();
            step.artifacts = artifacts;
        }
    }

    /// Forgets the artifacts of the oldest final jobs until at most `room` are indexed.
    fn forget_old_artifacts(&mut self, room: usize) {
        let mut index = 0;
        while self.index.artifacts > room && index < self.data.finished.len() {
            let job = self.data.finished[index];
            index += 1;
            if self.data.pipeline.steps.get(&job).is_some_and(|s| !s.artifacts.is_empty()) {
                self.set_artifacts(job, Vec::new());
            }
        }
    }

    /// Refuses to start `job` while another job of its concurrency group runs.
    pub(super) fn check_group(&self, job: JobId) -> Result<(), Refusal> {
        let Some(group) = self.data.pipeline.steps.get(&job).and_then(|s| s.concurrency.as_ref())
        else {
            return Ok(());
        };
        match self.running_in_group(group) {
            Some(running) if running != job => {
                Err(Refusal::GroupBusy { group: group.clone(), running })
            }
            _ => Ok(()),
        }
    }

    /// A running job of concurrency group `group`, if one runs.
    pub(super) fn running_in_group(&self, group: &str) -> Option<JobId> {
        self.index.groups_running.get(group).and_then(|jobs| jobs.first().copied())
    }

    /// Records that job `id` of `group` started (`running`) or stopped running.
    pub(super) fn track_group(&mut self, group: String, id: JobId, running: bool) {
        if running {
            self.index.groups_running.entry(group).or_default().insert(id);
        } else if let Some(jobs) = self.index.groups_running.get_mut(&group) {
            jobs.remove(&id);
            if jobs.is_empty() {
                self.index.groups_running.remove(&group);
            }
        }
    }

    /// Queues `plan` as a new build; a plan out of bounds becomes a build of one job that
    /// ends in `error` at once.
    fn create_build(
        &mut self,
        repo: RepoId,
        branch: &str,
        plan: &BuildPlan,
        trigger: Trigger,
        by: Option<&str>,
        at: Timestamp,
    ) -> (BuildId, Vec<JobId>) {
        self.data.pipeline.last_build_id += 1;
        let build = BuildId(self.data.pipeline.last_build_id);
        let record = Build {
            id: build,
            repo,
            branch: branch.to_owned(),
            commit: plan.commit.clone(),
            trigger,
            by: by.map(|by| shown_text(by, MAX_BY_BYTES)),
            subject: shown_text(&plan.subject, MAX_SUBJECT_BYTES),
            author: shown_text(&plan.author, MAX_AUTHOR_BYTES),
            created_at: at,
            jobs: Vec::new(),
            status: BuildStatus::Queued,
            finished_at: None,
            cancelled: None,
        };
        self.data.pipeline.builds.insert(build, record);
        self.index.open_builds.insert(build);
        let problem = plan_problem(plan);
        let mut jobs: Vec<JobId> = Vec::with_capacity(plan.jobs.len().max(1));
        if problem.is_some() {
            let id = self.new_job(repo, branch, &plan.commit, &[], trigger, JobStatus::Queued, at);
            self.data.pipeline.steps.insert(
                id,
                JobStep {
                    build,
                    step: "test".to_owned(),
                    matrix: Vec::new(),
                    needs: Vec::new(),
                    concurrency: None,
                    artifacts: Vec::new(),
                },
            );
            jobs.push(id);
        } else {
            for planned in &plan.jobs {
                let status =
                    if planned.needs.is_empty() { JobStatus::Queued } else { JobStatus::Waiting };
                let id =
                    self.new_job(repo, branch, &plan.commit, &planned.labels, trigger, status, at);
                self.data.pipeline.steps.insert(
                    id,
                    JobStep {
                        build,
                        step: planned.step.clone(),
                        matrix: planned.matrix.clone(),
                        needs: planned.needs.clone(),
                        concurrency: planned.concurrency.clone(),
                        artifacts: Vec::new(),
                    },
                );
                jobs.push(id);
            }
        }
        if let Some(record) = self.data.pipeline.builds.get_mut(&build) {
            record.jobs = jobs.clone();
        }
        if let Some(problem) = problem {
            let message = format!("not run: its build plan is refused: {problem}");
            self.end_job(jobs[0], JobStatus::Error, |_| JobResult::message_only(message, at));
        }
        self.refresh_build(build);
        (build, jobs)
    }

    /// After job `ended` became final: queues the waiting jobs of its build whose needs
    /// all passed and skips those with a need that did not, in plan order, so that a
    /// skip reaches the jobs after it in the same pass.
    pub(super) fn advance_build_of(&mut self, ended: JobId, at: Timestamp) {
        let Some(build) = self.data.pipeline.steps.get(&ended).map(|step| step.build) else {
            return;
        };
        let jobs =
            self.data.pipeline.builds.get(&build).map(|b| b.jobs.clone()).unwrap_or_default();
        for id in jobs {
            if self.data.jobs.get(&id).map(|job| job.status) != Some(JobStatus::Waiting) {
                continue;
            }
            let needs = self.needs_of(id);
            let mut unmet = None;
            let mut open = false;
            for need in &needs {
                match self.data.jobs.get(need).map(|job| job.status) {
                    Some(JobStatus::Passed) => {}
                    Some(status) if !status.is_final() => open = true,
                    status => {
                        let name = self.data.pipeline.steps.get(need).map(JobStep::name);
                        let name = name.unwrap_or_else(|| need.to_string());
                        let how = status.map_or("was forgotten", JobStatus::as_str);
                        unmet.get_or_insert(format!("skipped: {name} {how}"));
                    }
                }
            }
            if let Some(message) = unmet {
                self.make_final(id, JobStatus::Skipped, |_| JobResult::message_only(message, at));
            } else if !open {
                self.update_job(id, |job| job.status = JobStatus::Queued);
            }
        }
        self.refresh_build(build);
    }

    /// Stores the status its jobs give a build, and when it became final.
    pub(super) fn refresh_build(&mut self, build: BuildId) {
        let Some(record) = self.data.pipeline.builds.get(&build) else { return };
        let jobs = || record.jobs.iter().filter_map(|id| self.data.jobs.get(id));
        let status = BuildStatus::of(jobs().map(|job| job.status));
        if status == record.status {
            return;
        }
        // The time its last job ended, so that the stamp depends on the log alone.
        let finished_at = jobs().filter_map(|job| job.result.as_ref()).map(|r| r.finished_at).max();
        if let Some(record) = self.data.pipeline.builds.get_mut(&build) {
            record.status = status;
            if status.is_final() {
                record.finished_at = finished_at;
                self.index.open_builds.remove(&build);
            } else {
                self.index.open_builds.insert(build);
            }
        }
    }

    /// Cancels every open job of `build`; returns them.
    fn end_build(&mut self, build: BuildId, reason: &str, at: Timestamp) -> Vec<JobId> {
        let jobs =
            self.data.pipeline.builds.get(&build).map(|b| b.jobs.clone()).unwrap_or_default();
        if let Some(record) = self.data.pipeline.builds.get_mut(&build) {
            record.cancelled = Some(reason.to_owned());
        }
        let mut ended = Vec::new();
        for id in jobs {
            let Some(status) = self.data.jobs.get(&id).map(|job| job.status) else { continue };
            if status.is_final() {
                continue;
            }
            if status == JobStatus::Running {
                self.end_attempt(id, at, Some(format!("cancelled: {reason}")));
            }
            self.make_final(id, JobStatus::Cancelled, super::apply::cancelled_result(reason, at));
            ended.push(id);
        }
        self.refresh_build(build);
        ended
    }

    /// Cancels the open builds of `branch` of `repo` other than `newest`.
    fn cancel_superseded(
        &mut self,
        repo: RepoId,
        branch: &str,
        newest: BuildId,
        reason: &str,
        at: Timestamp,
    ) {
        let older: Vec<BuildId> = self
            .index
            .open_builds
            .iter()
            .copied()
            .filter(|&id| id != newest)
            .filter(|id| {
                self.data
                    .pipeline
                    .builds
                    .get(id)
                    .is_some_and(|build| build.repo == repo && build.branch == branch)
            })
            .collect();
        for build in older {
            self.end_build(build, reason, at);
        }
        self.enforce_retention();
    }

    /// Forgets the step of a forgotten job, and its build once none of its jobs is kept.
    pub(super) fn forget_step(&mut self, job: JobId) {
        let Some(step) = self.data.pipeline.steps.remove(&job) else { return };
        self.index.artifacts -= step.artifacts.len();
        let forgotten = self
            .data
            .pipeline
            .builds
            .get(&step.build)
            .is_some_and(|build| build.jobs.iter().all(|id| !self.data.jobs.contains_key(id)));
        if forgotten {
            self.data.pipeline.builds.remove(&step.build);
            self.index.open_builds.remove(&step.build);
        }
    }
}

/// The first 12 digits of a commit id, as shown to people.
fn short(commit: &str) -> &str {
    &commit[..commit.len().min(12)]
}
