//! The secrets a job asks for (`[test] secrets` in `.eventide.toml`): which it is given,
//! as environment variables of the same names, and one line for its log for each it is
//! not, naming the secret and why, never a value.
//!
//! The rule of who gets what is the state's
//! ([`State::secret_for_job`](eventide_consensus::State::secret_for_job)); this opens the
//! values allowed with the cluster secret and collects what the job's output must mask.

use eventide_consensus::auth::{Secret, Zeroizing};
use eventide_consensus::state::SecretAccess;
use eventide_consensus::{Job, State};

use super::mask::Mask;
use crate::secrets::Secrets;

/// What a job is given of the secrets it asked for. No `Debug`: it holds values.
#[derive(Default)]
pub struct JobSecrets {
    /// Name and value of each secret given, in the order asked for.
    pub env: Vec<(String, Zeroizing<String>)>,
    /// One line per secret not given, for the top of the job's log.
    pub notes: Vec<String>,
    /// The values given, to mask in the job's output.
    pub mask: Mask,
}

/// The secrets `names` for `job`, as this replica's `state` has them; `job` is `None` when
/// the replica has not seen the job's assignment yet (every secret is withheld then).
/// `secret` is this node's cluster secret, which opens the values.
pub fn for_job(
    state: &State,
    job: Option<&Job>,
    names: &[String],
    secret: Option<&Secret>,
) -> JobSecrets {
    let mut given = JobSecrets::default();
    for name in names {
        match give(state, job, name, secret) {
            Ok(value) => given.env.push((name.clone(), value)),
            Err(why) => given.notes.push(format!("secret {name} {why}")),
        }
    }
    given.mask = Mask::new(given.env.iter().map(|(_, value)| value.as_bytes()));
    given
}

/// The value of secret `name` for `job`, or why the job does not get it.
fn give(
    state: &State,
    job: Option<&Job>,
    name: &str,
    secret: Option<&Secret>,
) -> Result<Zeroizing<String>, String> {
    let Some(job) = job else {
        return Err("withheld: this runner's replica has not caught up with the job yet".into());
    };
    let stored = match state.secret_for_job(job, name) {
        SecretAccess::Allowed(stored) => stored,
        SecretAccess::Unknown => {
            return Err(format!(
                "missing: it is not in the secret store (`eventide-node secret set {name}`)"
            ));
        }
        SecretAccess::OtherBranch { branches } => {
            return Err(format!(
                "withheld: it is only for branches {}, not {}",
                branches.join(","),
                job.branch
            ));
        }
        SecretAccess::UnprovenBranch { branches } => {
            return Err(format!(
                "withheld: it is only for branches {}, and this rerun's commit was never seen on {}",
                branches.join(","),
                job.branch
            ));
        }
    };
    let Some(secret) = secret else {
        return Err("missing: this runner has no cluster secret to open it".into());
    };
    let value = Secrets::open(secret, name, stored)
        .ok_or_else(|| "missing: it does not open under this runner's cluster secret".to_owned())?;
    let text =
        std::str::from_utf8(&value).map_err(|_| "missing: its value is not text".to_owned())?;
    Ok(Zeroizing::new(text.to_owned()))
}

#[cfg(test)]
#[path = "secrets_test.rs"]
mod tests;
