//! `PUT /api/v1/secrets/{name}`, `GET /api/v1/secrets` and `DELETE
//! /api/v1/secrets/{name}`. No document ever carries a stored value back: only the
//! request that sets one holds it.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A stored secret, without its value.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct SecretDoc {
    pub name: String,
    /// Milliseconds since the Unix epoch.
    pub created_at: u64,
    /// Milliseconds since the Unix epoch; the last time the value was set.
    pub updated_at: u64,
}

/// The body of `PUT /api/v1/secrets/{name}`. Its `Debug` never shows the value.
#[derive(Serialize, Deserialize, Clone, PartialEq, Eq)]
pub struct SetSecret {
    pub value: String,
}

impl fmt::Debug for SetSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SetSecret { value: <redacted> }")
    }
}

/// The answer of `DELETE /api/v1/secrets/{name}`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct RemovedSecretDoc {
    pub name: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_shows_no_value() {
        let body = SetSecret { value: "do-not-print".into() };
        assert_eq!(format!("{body:?}"), "SetSecret { value: <redacted> }");
    }
}
