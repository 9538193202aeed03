//! The secrets a job asks for (`[test] secrets` in `.eventide.toml`): which it is given,
//! as environment variables of the same names, and one line for its log for each it is
//! not, naming the secret and why, never a value.
//!
//! Who gets what is decided on sealed values, from a replica's state, by
//! [`protocol::context`](eventide_node::protocol::context) (this node's own replica, or
//! the leader's, asked over RPC); this opens the values given with the cluster secret
//! and collects what the job's output must mask.

use eventide_consensus::auth::{Secret, Zeroizing};
use eventide_consensus::{Job, State};
use eventide_node::protocol::context::{grants_for, Grant, SecretGrant};

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
    open(&grants_for(state, job, names), secret)
}

/// Opens the secrets `grants` give with `secret`, this node's cluster secret; a value
/// that does not open (or is not text) is a note, as a refusal is.
pub fn open(grants: &[SecretGrant], secret: Option<&Secret>) -> JobSecrets {
    let mut given = JobSecrets::default();
    for SecretGrant { name, grant } in grants {
        match open_one(name, grant, secret) {
            Ok(value) => given.env.push((name.clone(), value)),
            Err(why) => given.notes.push(format!("secret {name} {why}")),
        }
    }
    given.mask = Mask::new(given.env.iter().map(|(_, value)| value.as_bytes()));
    given
}

/// The value of secret `name`, or why the job does not get it.
fn open_one(
    name: &str,
    grant: &Grant,
    secret: Option<&Secret>,
) -> Result<Zeroizing<String>, String> {
    let stored = match grant {
        Grant::Given(stored) => stored,
        Grant::Refused { why } => return Err(why.clone()),
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
