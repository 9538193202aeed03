//! Opening the secret store's values, for the node's own users of them (forges, jobs).
//!
//! The replicated state holds sealed values only (see
//! [`Sealer`](eventide_consensus::auth::Sealer)); a node that needs a clear value opens
//! it here with the cluster secret, uses it and drops it, which wipes it. Nothing here
//! logs or returns a value in an error.

use eventide_consensus::auth::{Sealer, Secret, Zeroizing};
use eventide_consensus::state::StoredSecret;
use eventide_consensus::State;
use tracing::warn;

/// The secret store as the node reads it.
pub struct Secrets;

impl Secrets {
    /// The clear value of secret `name`, or `None` if there is no such secret or it does
    /// not open under this cluster secret (logged, without the value).
    pub fn reveal(state: &State, secret: &Secret, name: &str) -> Option<Zeroizing<Vec<u8>>> {
        Secrets::open(secret, name, state.secret(name)?)
    }

    /// The clear value of `stored`, the secret `name`, or `None` if it does not open under
    /// this cluster secret (logged, without the value).
    pub fn open(secret: &Secret, name: &str, stored: &StoredSecret) -> Option<Zeroizing<Vec<u8>>> {
        match Sealer::new(secret).open(name, &stored.sealed) {
            Ok(value) => Some(value),
            Err(error) => {
                warn!(name, error = %error, "failed to open a stored secret");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use eventide_consensus::{Command, Timestamp};

    use super::*;

    fn secret(text: &str) -> Secret {
        Secret::try_new(text.as_bytes()).expect("valid secret")
    }

    fn state_with(secret: &Secret, name: &str, value: &[u8]) -> State {
        let sealed = Sealer::new(secret).seal(name, value).expect("seals");
        let mut state = State::default();
        let reply =
            state.apply(&Command::SetSecret { name: name.to_owned(), sealed, at: Timestamp(1) });
        assert!(reply.refusal().is_none(), "{reply:?}");
        state
    }

    #[test]
    fn a_stored_value_is_revealed_with_the_cluster_secret() {
        let cluster = secret("the first cluster secret");
        let state = state_with(&cluster, "DEPLOY_KEY", b"s3cr3t value");
        let value = Secrets::reveal(&state, &cluster, "DEPLOY_KEY").expect("revealed");
        assert_eq!(value.as_slice(), b"s3cr3t value");
    }

    #[test]
    fn an_unknown_name_or_another_cluster_secret_reveals_nothing() {
        let cluster = secret("the first cluster secret");
        let state = state_with(&cluster, "DEPLOY_KEY", b"s3cr3t value");
        assert!(Secrets::reveal(&state, &cluster, "OTHER").is_none());
        let other = secret("the other cluster secret");
        assert!(Secrets::reveal(&state, &other, "DEPLOY_KEY").is_none());
    }
}
