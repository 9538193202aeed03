//! The secret store: sealed values by name, and the rules of `SetSecret` and
//! `RemoveSecret`.
//!
//! The state machine only stores what the proposer sealed (see
//! [`Sealer`](crate::auth::Sealer)); it never sees a clear value and cannot open one. The
//! rules here are pure: a name must match `^[A-Za-z_][A-Za-z0-9_]{0,63}$`, a sealed value
//! may hold at most [`MAX_SECRET_VALUE_BYTES`] of clear text, and the store keeps at most
//! [`MAX_SECRETS`] names.

use serde::{Deserialize, Serialize};

use super::State;
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
    pub(super) fn set_secret(
        &mut self,
        name: &str,
        sealed: &Sealed,
        at: Timestamp,
    ) -> Result<Reply, Refusal> {
        if let Some(reason) = secret_name_problem(name) {
            return Err(Refusal::Invalid { reason });
        }
        if let Some(reason) = sealed_size_problem(sealed.ciphertext.len()) {
            return Err(Refusal::Invalid { reason });
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
        Ok(Reply::SecretSet { name: name.to_owned(), created_at, updated_at: at })
    }

    pub(super) fn remove_secret(&mut self, name: &str) -> Result<Reply, Refusal> {
        self.data
            .secrets
            .remove(name)
            .ok_or_else(|| Refusal::UnknownSecret { name: name.to_owned() })?;
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
            })
            .collect()
    }

    /// One secret, still sealed.
    pub fn secret(&self, name: &str) -> Option<&StoredSecret> {
        self.data.secrets.get(name)
    }
}
