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
    /// Branch patterns of the jobs that get it (`main`, `release/*`); empty: every branch.
    #[serde(default)]
    pub branches: Vec<String>,
}

/// The body of `PUT /api/v1/secrets/{name}`. Its `Debug` never shows the value.
#[derive(Serialize, Deserialize, Clone, PartialEq, Eq)]
pub struct SetSecret {
    pub value: String,
    /// Branch patterns of the jobs that get it; left out or empty: every branch (a
    /// restriction set before is cleared).
    #[serde(default)]
    pub branches: Vec<String>,
}

impl fmt::Debug for SetSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SetSecret")
            .field("value", &format_args!("<redacted>"))
            .field("branches", &self.branches)
            .finish()
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
        let body = SetSecret { value: "do-not-print".into(), branches: vec!["main".into()] };
        assert_eq!(format!("{body:?}"), r#"SetSecret { value: <redacted>, branches: ["main"] }"#);
    }
}
