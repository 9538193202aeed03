//! The job context protocol, runner to the leader's dispatcher, and the pure rules both
//! sides of it share: what a job is given of the replicated state besides its assignment
//! (its repository's fetch credentials and the secrets its `.eventide.toml` names).
//!
//! A runner on a Raft member reads them from its own replica; a runner whose replica is
//! empty (a node that is not a member) asks the leader: a signed `POST` of
//! [`JobContextRequest`] to [`JOB_CONTEXT_PATH`], answered with a [`JobContext`]. Both
//! decide with the same functions ([`credentials_for`], [`assigned_job`], [`grants_for`],
//! all of them `state` in, sealed values or notes out), so a job is given the same
//! wherever it runs.
//!
//! Values stay sealed: a [`StoredSecret`] is bound to its name and opened only by the
//! runner, with its own cluster secret. Nothing here opens one, and no clear value ever
//! crosses the wire. A refusal is a note for the job's log that names the secret's
//! rule, never its value.
//!
//! ```text
//!  runner ── JobContextRequest { job, attempt, repo_url, secrets } ──> dispatcher (leader)
//!         <── Context { credentials (sealed), grants (sealed or a note) } / NotLeader
//! ```

use eventide_consensus::state::{SecretAccess, StoredSecret};
use eventide_consensus::{ForgeKind, Job, JobId, JobStatus, RepoSettings, State};
use serde::{Deserialize, Serialize};

use crate::repo_config::MAX_JOB_SECRETS;

/// The path of the request (under `/internal/`, so the request is signed).
pub const JOB_CONTEXT_PATH: &str = "/internal/dispatch/job-context";

/// A runner asks for what one attempt of a job it was assigned needs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobContextRequest {
    pub job: JobId,
    pub attempt: u32,
    /// The assignment's repository url, whose settings name the fetch credentials.
    pub repo_url: String,
    /// The secrets the job's configuration asks for, in its order; at most
    /// [`MAX_JOB_SECRETS`] are answered.
    pub secrets: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum JobContextResponse {
    /// Boxed: the credentials make it large, and `NotLeader` is not.
    Context(Box<JobContext>),
    /// Ask the leader instead.
    NotLeader,
}

/// What the job is given, still sealed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobContext {
    /// `None`: no repository has the assignment's url; the job fetches without
    /// credentials.
    pub credentials: Option<Credentials>,
    /// One per secret asked for, in the order asked.
    pub secrets: Vec<SecretGrant>,
}

/// The parts of a repository's settings a fetch needs, with the secrets they name.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credentials {
    pub forge: Option<ForgeKind>,
    pub ca_file: Option<String>,
    pub token: Option<NamedSecret>,
    pub ssh_key: Option<NamedSecret>,
    pub known_hosts: Option<NamedSecret>,
}

/// A secret a repository's settings name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamedSecret {
    pub name: String,
    /// `None`: the secret store has no secret of that name.
    pub stored: Option<StoredSecret>,
}

/// The answer for one secret a job asks for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretGrant {
    pub name: String,
    pub grant: Grant,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Grant {
    /// The job may have it: its sealed value.
    Given(StoredSecret),
    /// Why the job does not get it (`withheld: …` or `missing: …`), for its log.
    Refused { why: String },
}

/// The leader's answer to `request`, decided from its `state`; `NotLeader` unless it
/// leads (a follower's replica may lag behind the assignment).
pub fn answer(is_leader: bool, state: &State, request: &JobContextRequest) -> JobContextResponse {
    if !is_leader {
        return JobContextResponse::NotLeader;
    }
    let job = assigned_job(state, request.job, request.attempt);
    let (answered, beyond) = request.secrets.split_at(request.secrets.len().min(MAX_JOB_SECRETS));
    let mut secrets = grants_for(state, job, answered);
    secrets.extend(refused_all(
        beyond,
        &format!("withheld: a job may ask for at most {MAX_JOB_SECRETS} secrets"),
    ));
    JobContextResponse::Context(Box::new(JobContext {
        credentials: repo_credentials(state, &request.repo_url),
        secrets,
    }))
}

/// The fetch credentials of the repository at `repo_url`; `None` if `state` has no
/// repository there.
pub fn repo_credentials(state: &State, repo_url: &str) -> Option<Credentials> {
    let repo = state.repo_by_url(repo_url)?;
    Some(credentials_for(state, state.repo_settings(repo.id)))
}

/// The fetch credentials `settings` name, with their sealed values from `state`.
pub fn credentials_for(state: &State, settings: &RepoSettings) -> Credentials {
    let named = |name: &Option<String>| {
        name.as_ref()
            .map(|name| NamedSecret { name: name.clone(), stored: state.secret(name).cloned() })
    };
    Credentials {
        forge: settings.forge,
        ca_file: settings.ca_file.clone(),
        token: named(&settings.token),
        ssh_key: named(&settings.ssh_key),
        known_hosts: named(&settings.known_hosts),
    }
}

/// The job as `state` has it once it shows the assignment of `attempt` (that attempt,
/// no longer queued, or a later one); `None` before (a replica behind the assignment).
pub fn assigned_job(state: &State, job: JobId, attempt: u32) -> Option<&Job> {
    state.job(job).filter(|job| {
        job.attempt > attempt || (job.attempt == attempt && job.status != JobStatus::Queued)
    })
}

/// The answer for each of `names` for `job`, by the secret store's rule
/// ([`State::secret_for_job`]); `job` is `None` when the replica deciding has not seen
/// the job's assignment (every secret is withheld then).
pub fn grants_for(state: &State, job: Option<&Job>, names: &[String]) -> Vec<SecretGrant> {
    names
        .iter()
        .map(|name| SecretGrant { name: name.clone(), grant: grant_for(state, job, name) })
        .collect()
}

/// The same refusal for each of `names`.
pub fn refused_all(names: &[String], why: &str) -> Vec<SecretGrant> {
    names
        .iter()
        .map(|name| SecretGrant {
            name: name.clone(),
            grant: Grant::Refused { why: why.to_owned() },
        })
        .collect()
}

fn grant_for(state: &State, job: Option<&Job>, name: &str) -> Grant {
    let Some(job) = job else {
        return refused("withheld: the replica asked has not caught up with the job yet");
    };
    match state.secret_for_job(job, name) {
        SecretAccess::Allowed(stored) => Grant::Given(stored.clone()),
        SecretAccess::Unknown => refused(&format!(
            "missing: it is not in the secret store (`eventide-node secret set {name}`)"
        )),
        SecretAccess::OtherBranch { branches } => refused(&format!(
            "withheld: it is only for branches {}, not {}",
            branches.join(","),
            job.branch
        )),
        SecretAccess::UnprovenBranch { branches } => refused(&format!(
            "withheld: it is only for branches {}, and this rerun's commit was never seen on {}",
            branches.join(","),
            job.branch
        )),
    }
}

fn refused(why: &str) -> Grant {
    Grant::Refused { why: why.to_owned() }
}

#[cfg(test)]
#[path = "context_test.rs"]
mod tests;
