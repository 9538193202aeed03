//! The secret store: sealed values by name, and the rules of `SetSecret`,
//! `SetRestrictedSecret` and `RemoveSecret`, and of which job may be given which secret.
//!
//! The state machine only stores what the proposer sealed (see
//! [`Sealer`](crate::auth::Sealer)); it never sees a clear value and cannot open one. The
//! rules here are pure: a name must match `^[A-Za-z_][A-Za-z0-9_]{0,63}$`, a sealed value
//! may hold at most [`MAX_SECRET_VALUE_BYTES`] of clear text, and the store keeps at most
//! [`MAX_SECRETS`] names. A secret may be restricted to branch patterns (as a
//! repository's branch filter is): a job gets it only if the job's branch passes them,
//! and a rerun's branch counts only where the state saw the commit on that branch.

use serde::{Deserialize, Serialize};

use super::forge::{branch_matches, branch_patterns_problem};
use super::{Job, State, Trigger};
use crate::auth::{Sealed, SEAL_OVERHEAD};
use crate::command::{Refusal, Reply};
use crate::types::Timestamp;

/// The most secrets the store keeps.
pub const MAX_SECRETS: usize = 256;
/// The longest secret name.
pub const MAX_SECRET_NAME_BYTES: usize = 64;
/// The most clear-text bytes one secret may hold.
pub const MAX_SECRET_VALUE_BYTES: usize = 64 * 1024;
/// The largest sealed value accepted: the clear text and the tag.
pub const MAX_SEALED_BYTES: usize = MAX_SECRET_VALUE_BYTES + SEAL_OVERHEAD;

/// One secret as the state keeps it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredSecret {
    pub sealed: Sealed,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// What may be said of a secret without its value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretInfo {
    pub name: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// The branch patterns of the jobs that may be given it; empty: every branch.
    pub branches: Vec<String>,
}

/// Whether a job may be given a secret it asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SecretAccess<'a> {
    /// The secret is for every branch, or for the job's.
    Allowed(&'a StoredSecret),
    /// No secret has this name.
    Unknown,
    /// The secret is only for `branches`, and the job's branch passes none of them.
    OtherBranch { branches: &'a [String] },
    /// The secret is only for `branches`; the job is a rerun naming one of them, but the
    /// state never saw the job's commit on that branch.
    UnprovenBranch { branches: &'a [String] },
}

/// Why `name` cannot name a secret, if it cannot.
pub fn secret_name_problem(name: &str) -> Option<String> {
    let mut chars = name.chars();
    let Some(first) = chars.next() else {
        return Some("a secret name cannot be empty".to_owned());
    };
    if name.len() > MAX_SECRET_NAME_BYTES {
        return Some(format!(
            "a secret name has at most {MAX_SECRET_NAME_BYTES} characters, not {}",
            name.len()
        ));
    }
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    if !(first.is_ascii_alphabetic() || first == '_') || !chars.all(word) {
        return Some(
            "a secret name has letters, digits and '_' only and does not start with a digit"
                .to_owned(),
        );
    }
    None
}

/// Why a sealed value of `len` bytes cannot be stored, if it cannot.
pub fn sealed_size_problem(len: usize) -> Option<String> {
    if len < SEAL_OVERHEAD {
        return Some("a sealed value is shorter than its tag".to_owned());
    }
    if len > MAX_SEALED_BYTES {
        return Some(format!(
            "a secret value has at most {MAX_SECRET_VALUE_BYTES} bytes, not {}",
            len - SEAL_OVERHEAD
        ));
    }
    None
}

impl State {
    /// `branches` empty: for every branch, clearing an earlier restriction.
    pub(super) fn set_secret(
        &mut self,
        name: &str,
        sealed: &Sealed,
        branches: &[String],
        at: Timestamp,
    ) -> Result<Reply, Refusal> {
        if let Some(reason) = secret_name_problem(name) {
            return Err(Refusal::Invalid { reason });
        }
        if let Some(reason) = sealed_size_problem(sealed.ciphertext.len()) {
            return Err(Refusal::Invalid { reason });
        }
        if let Some(problem) = branch_patterns_problem(branches) {
            return Err(Refusal::Invalid { reason: format!("secret branches: {problem}") });
        }
        let secrets = &mut self.data.secrets;
        if !secrets.contains_key(name) && secrets.len() >= MAX_SECRETS {
            return Err(Refusal::LimitReached {
                what: "no more secrets can be stored".to_owned(),
                limit: MAX_SECRETS as u32,
            });
        }
        let created_at = secrets.get(name).map_or(at, |old| old.created_at);
        secrets.insert(
            name.to_owned(),
            StoredSecret { sealed: sealed.clone(), created_at, updated_at: at },
        );
        if branches.is_empty() {
            self.data.secret_branches.remove(name);
        } else {
            self.data.secret_branches.insert(name.to_owned(), branches.to_vec());
        }
        Ok(Reply::SecretSet { name: name.to_owned(), created_at, updated_at: at })
    }

    pub(super) fn remove_secret(&mut self, name: &str) -> Result<Reply, Refusal> {
        self.data
            .secrets
            .remove(name)
            .ok_or_else(|| Refusal::UnknownSecret { name: name.to_owned() })?;
        self.data.secret_branches.remove(name);
        Ok(Reply::SecretRemoved { name: name.to_owned() })
    }

    /// Every secret, by name, without values.
    pub fn secrets(&self) -> Vec<SecretInfo> {
        self.data
            .secrets
            .iter()
            .map(|(name, secret)| SecretInfo {
                name: name.clone(),
                created_at: secret.created_at,
                updated_at: secret.updated_at,
                branches: self.secret_branches(name).to_vec(),
            })
            .collect()
    }

    /// One secret, still sealed.
    pub fn secret(&self, name: &str) -> Option<&StoredSecret> {
        self.data.secrets.get(name)
    }

    /// The branch patterns secret `name` is restricted to; empty: none (every branch).
    pub fn secret_branches(&self, name: &str) -> &[String] {
        self.data.secret_branches.get(name).map_or(&[], Vec::as_slice)
    }

    /// Whether `job` may be given secret `name` (see [`SecretAccess`]).
    pub fn secret_for_job(&self, job: &Job, name: &str) -> SecretAccess<'_> {
        let Some(secret) = self.secret(name) else { return SecretAccess::Unknown };
        let branches = self.secret_branches(name);
        if branches.is_empty() {
            return SecretAccess::Allowed(secret);
        }
        if !branch_matches(branches, &job.branch) {
            return SecretAccess::OtherBranch { branches };
        }
        if self.commit_seen_on_branch(job) {
            SecretAccess::Allowed(secret)
        } else {
            SecretAccess::UnprovenBranch { branches }
        }
    }

    /// Whether the job's commit is known to be on the job's branch: a push job's is (the
    /// observer saw it there); a rerun's is if a push job of the same commit was recorded
    /// on that branch, or the branch's cursor is at the commit or skipped it. Anyone who
    /// may rerun may name any branch, so the branch of a rerun alone proves nothing.
    pub fn commit_seen_on_branch(&self, job: &Job) -> bool {
        if job.trigger == Trigger::Push {
            return true;
        }
        let pushed_there = self.index.by_commit.get(&job.commit).is_some_and(|ids| {
            ids.iter().filter_map(|id| self.data.jobs.get(id)).any(|other| {
                other.trigger == Trigger::Push
                    && other.repo == job.repo
                    && other.branch == job.branch
            })
        });
        let cursor = self.data.cursors.get(&job.repo).and_then(|cursors| cursors.get(&job.branch));
        pushed_there
            || cursor.is_some_and(|cursor| {
                cursor.head == job.commit || cursor.recent_skipped.contains(&job.commit)
            })
    }
}
