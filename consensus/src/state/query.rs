//! Read-only views of the state for the dispatcher, the API and the CLI.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::{
    Artifact, Build, BuildStatus, Cursor, ForgeRefusal, Job, JobStatus, JobStep, Limits, Repo,
    RepoSettings, State, StatusUpdate,
};
use crate::types::{BuildId, JobId, NodeId, RepoId};

/// Which jobs to list, newest first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JobFilter {
    pub repo: Option<RepoId>,
    pub branch: Option<String>,
    /// A full commit id or a prefix of one (at least 4 hex digits are sensible).
    pub commit: Option<String>,
    pub status: Option<JobStatus>,
    /// Only jobs with a smaller id (the page after a previous one).
    pub before: Option<JobId>,
    /// At most this many jobs; `None` means all.
    pub limit: Option<usize>,
}

impl JobFilter {
    fn matches(&self, job: &Job) -> bool {
        self.repo.is_none_or(|repo| job.repo == repo)
            && self.branch.as_deref().is_none_or(|branch| job.branch == branch)
            && self
                .commit
                .as_deref()
                .is_none_or(|commit| job.commit.as_str().starts_with(&commit.to_ascii_lowercase()))
            && self.status.is_none_or(|status| job.status == status)
    }
}

/// Which builds to list, newest first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BuildFilter {
    pub repo: Option<RepoId>,
    pub branch: Option<String>,
    /// A full commit id or a prefix of one.
    pub commit: Option<String>,
    pub status: Option<BuildStatus>,
    /// Only builds with a smaller id (the page after a previous one).
    pub before: Option<BuildId>,
    /// At most this many builds; `None` means all.
    pub limit: Option<usize>,
}

impl BuildFilter {
    fn matches(&self, build: &Build) -> bool {
        self.repo.is_none_or(|repo| build.repo == repo)
            && self.branch.as_deref().is_none_or(|branch| build.branch == branch)
            && self.commit.as_deref().is_none_or(|commit| {
                build.commit.as_str().starts_with(&commit.to_ascii_lowercase())
            })
            && self.status.is_none_or(|status| build.status == status)
    }
}

/// How many jobs are in each phase.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueCounts {
    pub queued: u64,
    pub running: u64,
    pub finished: u64,
}

/// The settings of a repository that has none of its own.
static NO_SETTINGS: RepoSettings = RepoSettings {
    forge: None,
    api_url: None,
    token: None,
    ssh_key: None,
    known_hosts: None,
    webhook_secret: None,
    ca_file: None,
    branches: Vec::new(),
    poll_interval_ms: None,
    status_context: None,
};

impl State {
    /// A repository's settings (the defaults for one without, or not watched).
    pub fn repo_settings(&self, repo: RepoId) -> &RepoSettings {
        self.data.forge.settings.get(&repo).unwrap_or(&NO_SETTINGS)
    }

    /// The statuses waiting to be posted, oldest first, with their outbox ids.
    pub fn status_outbox(&self) -> impl Iterator<Item = (u64, &StatusUpdate)> + '_ {
        self.data.forge.outbox.iter().map(|(&id, update)| (id, update))
    }

    /// How many of a repository's statuses wait to be posted.
    pub fn statuses_waiting(&self, repo: RepoId) -> usize {
        self.data.forge.outbox.values().filter(|update| update.repo == repo).count()
    }

    /// The forge's last refusal of a repository's status, until one is delivered again.
    pub fn forge_refusal(&self, repo: RepoId) -> Option<&ForgeRefusal> {
        self.data.forge.refusals.get(&repo)
    }

    pub fn limits(&self) -> &Limits {
        &self.data.limits
    }

    pub fn job(&self, id: JobId) -> Option<&Job> {
        self.data.jobs.get(&id)
    }

    /// The id the most recently created job got (0 before the first job).
    pub fn last_job_id(&self) -> JobId {
        JobId(self.data.last_job_id)
    }

    /// Jobs matching `filter`, newest (highest id) first.
    pub fn jobs(&self, filter: &JobFilter) -> Vec<&Job> {
        let limit = filter.limit.unwrap_or(usize::MAX);
        let upper = filter.before.unwrap_or(JobId(u64::MAX));
        let full_commit = filter.commit.as_deref().and_then(|c| crate::CommitId::try_new(c).ok());
        // Narrow the candidates with an index where one applies, then filter.
        let candidates: Box<dyn Iterator<Item = JobId> + '_> = if let Some(commit) = &full_commit {
            let ids = self.index.by_commit.get(commit);
            Box::new(ids.into_iter().flat_map(|ids| ids.range(..upper).rev().copied()))
        } else if filter.status == Some(JobStatus::Queued) {
            Box::new(self.index.queued.range(..upper).rev().copied())
        } else {
            Box::new(self.data.jobs.range(..upper).rev().map(|(id, _)| *id))
        };
        candidates
            .filter_map(|id| self.data.jobs.get(&id))
            .filter(|job| filter.matches(job))
            .take(limit)
            .collect()
    }

    /// How many jobs of `repo` are queued or running (what `max_queue_per_repo` bounds).
    pub fn open_jobs(&self, repo: RepoId) -> u32 {
        self.index.open_by_repo.get(&repo).copied().unwrap_or(0)
    }

    pub fn queue_counts(&self) -> QueueCounts {
        let queued = self.index.queued.len() as u64;
        let running = self.index.running.values().map(|ids| ids.len() as u64).sum();
        QueueCounts { queued, running, finished: self.data.finished.len() as u64 }
    }

    /// Jobs running on `runner`, oldest first.
    pub fn running_on(&self, runner: NodeId) -> Vec<&Job> {
        let ids = self.index.running.get(&runner);
        ids.into_iter().flatten().filter_map(|id| self.data.jobs.get(id)).collect()
    }

    /// How many jobs run on `runner`.
    pub fn running_count(&self, runner: NodeId) -> usize {
        self.index.running.get(&runner).map_or(0, |ids| ids.len())
    }

    /// Every running job, oldest first (the dispatcher's lease table after a failover).
    pub fn running_jobs(&self) -> Vec<&Job> {
        let mut jobs: Vec<&Job> =
            self.index.running.values().flatten().filter_map(|id| self.data.jobs.get(id)).collect();
        jobs.sort_by_key(|job| job.id);
        jobs
    }

    /// The oldest queued job a runner with `runner_labels` may take.
    pub fn next_claimable<'a>(&'a self, runner_labels: &'a BTreeSet<String>) -> Option<&'a Job> {
        self.claimable(runner_labels).next()
    }

    pub fn build(&self, id: BuildId) -> Option<&Build> {
        self.data.pipeline.builds.get(&id)
    }

    /// Builds matching `filter`, newest (highest id) first.
    pub fn builds(&self, filter: &BuildFilter) -> Vec<&Build> {
        let upper = filter.before.unwrap_or(BuildId(u64::MAX));
        self.data
            .pipeline
            .builds
            .range(..upper)
            .rev()
            .map(|(_, build)| build)
            .filter(|build| filter.matches(build))
            .take(filter.limit.unwrap_or(usize::MAX))
            .collect()
    }

    /// What a job of a build is; `None` for a job of no build.
    pub fn step_of(&self, job: JobId) -> Option<&JobStep> {
        self.data.pipeline.steps.get(&job)
    }

    /// The artifacts of the jobs `job` needs, directly or through the jobs it needs, with
    /// the job that made each, in plan order: what its runner puts into its workspace
    /// before it starts. Of two artifacts with the same name, the later job's wins.
    pub fn inputs_of(&self, job: JobId) -> Vec<(JobId, &Artifact)> {
        let mut needed: BTreeSet<JobId> = BTreeSet::new();
        let mut frontier = self.needs_of(job);
        while let Some(next) = frontier.pop() {
            if needed.insert(next) {
                frontier.extend(self.needs_of(next));
            }
        }
        let mut inputs: Vec<(JobId, &Artifact)> = Vec::new();
        for need in needed {
            let Some(step) = self.data.pipeline.steps.get(&need) else { continue };
            for artifact in &step.artifacts {
                inputs.retain(|(_, kept)| kept.name != artifact.name);
                inputs.push((need, artifact));
            }
        }
        inputs
    }

    /// The jobs `job` waits for (none for a job of no build).
    pub fn needs_of(&self, job: JobId) -> Vec<JobId> {
        let Some(step) = self.data.pipeline.steps.get(&job) else { return Vec::new() };
        let Some(build) = self.data.pipeline.builds.get(&step.build) else { return Vec::new() };
        step.needs.iter().filter_map(|&need| build.jobs.get(usize::from(need)).copied()).collect()
    }

    /// The running job of a concurrency group, if one runs.
    pub fn group_running(&self, group: &str) -> Option<JobId> {
        self.running_in_group(group)
    }

    /// The queued jobs a runner with `runner_labels` may take, oldest first.
    pub fn claimable<'a>(
        &'a self,
        runner_labels: &'a BTreeSet<String>,
    ) -> impl Iterator<Item = &'a Job> + 'a {
        // A queued job of a concurrency group with a running job waits.
        self.index
            .queued
            .iter()
            .filter_map(|id| self.data.jobs.get(id))
            .filter(|job| job.runnable_with(runner_labels))
            .filter(move |job| {
                let group =
                    self.data.pipeline.steps.get(&job.id).and_then(|s| s.concurrency.as_deref());
                group.is_none_or(|group| !self.index.groups_running.contains_key(group))
            })
    }

    pub fn repos(&self) -> impl Iterator<Item = &Repo> {
        self.data.repos.values()
    }

    pub fn repo(&self, id: RepoId) -> Option<&Repo> {
        self.data.repos.get(&id)
    }

    pub fn repo_by_url(&self, url: &str) -> Option<&Repo> {
        self.index.repo_by_url.get(url).and_then(|id| self.data.repos.get(id))
    }

    pub fn cursor(&self, repo: RepoId, branch: &str) -> Option<&Cursor> {
        self.data.cursors.get(&repo).and_then(|branches| branches.get(branch))
    }

    /// Every observed branch of `repo` with its cursor, by branch name.
    pub fn cursors(&self, repo: RepoId) -> impl Iterator<Item = (&str, &Cursor)> {
        self.data.cursors.get(&repo).into_iter().flatten().map(|(name, c)| (name.as_str(), c))
    }
}
