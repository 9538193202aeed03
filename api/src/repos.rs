//! `GET|POST /api/v1/repos` and `DELETE /api/v1/repos/{id}`.

use serde::{Deserialize, Serialize};

/// A watched repository. The fields after `added_at` are newer: a document without
/// them reads with their defaults.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct RepoDoc {
    pub id: String,
    pub url: String,
    /// Milliseconds since the Unix epoch.
    pub added_at: u64,
    #[serde(default)]
    pub settings: RepoSettingsDoc,
    /// When the leader's observer last fetched it without an error (milliseconds since
    /// the Unix epoch); `null` on other nodes and before the first fetch.
    #[serde(default)]
    pub last_fetch_at: Option<u64>,
    /// The observer's latest error (on the leader).
    #[serde(default)]
    pub error: Option<String>,
    /// The forge's last refusal of a commit status, until one is delivered again.
    #[serde(default)]
    pub forge_error: Option<String>,
    /// Commit statuses waiting to be posted to the forge.
    #[serde(default)]
    pub statuses_waiting: u64,
}

/// A forge Eventide posts statuses to and takes webhooks from. Forgejo is `gitea`.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Forge {
    Github,
    Gitlab,
    Gitea,
}

/// A repository's settings. Secrets are named, never sent: their values are in the
/// secret store (`PUT /api/v1/secrets/{name}`).
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
pub struct RepoSettingsDoc {
    #[serde(default)]
    pub forge: Option<Forge>,
    /// The forge's API root; `null`: derived from the url.
    #[serde(default)]
    pub api_url: Option<String>,
    /// Secret with the token for https fetches and the status API.
    #[serde(default)]
    pub token: Option<String>,
    /// Secret with the private key for ssh fetches.
    #[serde(default)]
    pub ssh_key: Option<String>,
    /// Secret with `known_hosts` lines trusted for the ssh host.
    #[serde(default)]
    pub known_hosts: Option<String>,
    /// Secret the forge signs its webhooks with.
    #[serde(default)]
    pub webhook_secret: Option<String>,
    /// A CA bundle (a path on every node) trusted for https besides the system's.
    #[serde(default)]
    pub ca_file: Option<String>,
    /// Branch patterns whose commits become jobs; empty: every branch.
    #[serde(default)]
    pub branches: Vec<String>,
    /// How often the leader polls it; `null`: the node's `--poll-interval`.
    #[serde(default)]
    pub poll_interval_ms: Option<u64>,
    /// The context of its commit statuses; `null`: `eventide/test`.
    #[serde(default)]
    pub status_context: Option<String>,
}

/// The body of `POST /api/v1/repos`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct AddRepo {
    pub url: String,
    /// Absent: the defaults.
    #[serde(default, skip_serializing_if = "is_default")]
    pub settings: RepoSettingsDoc,
}

fn is_default(settings: &RepoSettingsDoc) -> bool {
    *settings == RepoSettingsDoc::default()
}

/// The body of `PATCH /api/v1/repos/{id}`: a field that is absent stays as it is, `null`
/// clears it, a value replaces it.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
pub struct RepoPatch {
    #[serde(default, skip_serializing_if = "Option::is_none", with = "present")]
    pub forge: Option<Option<Forge>>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "present")]
    pub api_url: Option<Option<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "present")]
    pub token: Option<Option<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "present")]
    pub ssh_key: Option<Option<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "present")]
    pub known_hosts: Option<Option<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "present")]
    pub webhook_secret: Option<Option<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "present")]
    pub ca_file: Option<Option<String>>,
    /// `[]` or `null`: every branch.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "present")]
    pub branches: Option<Option<Vec<String>>>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "present")]
    pub poll_interval_ms: Option<Option<u64>>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "present")]
    pub status_context: Option<Option<String>>,
}

impl RepoPatch {
    /// `settings` with this patch applied.
    pub fn apply(&self, settings: &RepoSettingsDoc) -> RepoSettingsDoc {
        fn pick<T: Clone>(patch: &Option<Option<T>>, current: &Option<T>) -> Option<T> {
            match patch {
                Some(value) => value.clone(),
                None => current.clone(),
            }
        }
        RepoSettingsDoc {
            forge: pick(&self.forge, &settings.forge),
            api_url: pick(&self.api_url, &settings.api_url),
            token: pick(&self.token, &settings.token),
            ssh_key: pick(&self.ssh_key, &settings.ssh_key),
            known_hosts: pick(&self.known_hosts, &settings.known_hosts),
            webhook_secret: pick(&self.webhook_secret, &settings.webhook_secret),
            ca_file: pick(&self.ca_file, &settings.ca_file),
            branches: match &self.branches {
                Some(branches) => branches.clone().unwrap_or_default(),
                None => settings.branches.clone(),
            },
            poll_interval_ms: pick(&self.poll_interval_ms, &settings.poll_interval_ms),
            status_context: pick(&self.status_context, &settings.status_context),
        }
    }
}

/// A field of [`RepoPatch`]: present (`Some`, its value possibly `null`) or absent.
mod present {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer, T: Serialize>(
        value: &Option<Option<T>>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        // Absent fields are skipped before this is called.
        value.as_ref().and_then(Option::as_ref).serialize(serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
        deserializer: D,
    ) -> Result<Option<Option<T>>, D::Error> {
        Option::<T>::deserialize(deserializer).map(Some)
    }
}

/// The answer of `DELETE /api/v1/repos/{id}`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct RemovedRepoDoc {
    pub id: String,
    pub url: String,
    /// The jobs of the repository that were queued or running, now cancelled.
    pub cancelled: Vec<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_patch_keeps_what_it_leaves_out_clears_nulls_and_sets_values() {
        let current = RepoSettingsDoc {
            forge: Some(Forge::Github),
            token: Some("GH".into()),
            branches: vec!["main".into()],
            ..RepoSettingsDoc::default()
        };
        let patch: RepoPatch =
            serde_json::from_str(r#"{"token": null, "webhook_secret": "HOOK", "branches": []}"#)
                .expect("parses");
        let patched = patch.apply(&current);
        assert_eq!(patched.forge, Some(Forge::Github));
        assert_eq!(patched.token, None);
        assert_eq!(patched.webhook_secret.as_deref(), Some("HOOK"));
        assert!(patched.branches.is_empty());
        let text = serde_json::to_string(&patch).expect("serialisable");
        assert_eq!(text, r#"{"token":null,"webhook_secret":"HOOK","branches":[]}"#);
        assert_eq!(serde_json::from_str::<RepoPatch>(&text).expect("parses"), patch);
    }

    #[test]
    fn an_older_repository_document_reads_with_the_defaults() {
        let old = r#"{"id": "1", "url": "/srv/git/app", "added_at": 5}"#;
        let doc: RepoDoc = serde_json::from_str(old).expect("parses");
        assert_eq!(doc.settings, RepoSettingsDoc::default());
        assert_eq!((doc.last_fetch_at, doc.statuses_waiting), (None, 0));
    }
}
