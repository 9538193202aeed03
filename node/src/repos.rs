//! Watched repositories: how a user's repository argument becomes the url every node
//! fetches, and registering the `--repo` flags once the node is in a cluster.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use eventide_consensus::{Command, Refusal, Reply};
use tracing::{info, warn};

use crate::clock;
use crate::node::NodeContext;

/// Turns a repository argument into the url stored in the cluster: an existing local
/// path becomes an absolute path (every node on this machine can open it); urls are kept
/// as given.
pub fn normalize_url(argument: &str) -> anyhow::Result<String> {
    let argument = argument.trim();
    if argument.is_empty() {
        anyhow::bail!("empty repository url");
    }
    if argument.contains("://") {
        return Ok(argument.to_owned());
    }
    let path = Path::new(argument);
    let absolute =
        std::fs::canonicalize(path).map_err(|e| anyhow::anyhow!("repository {argument}: {e}"))?;
    Ok(absolute.to_string_lossy().into_owned())
}

/// Adds every `--repo` to the cluster that it does not watch yet. Runs in the
/// background; retries until a leader accepts the writes.
pub async fn add_configured(context: Arc<NodeContext>) {
    let mut urls = Vec::new();
    for argument in &context.config.repos {
        match normalize_url(argument) {
            Ok(url) => urls.push(url),
            Err(error) => warn!(error = %error, "--repo ignored"),
        }
    }
    for url in urls {
        loop {
            if context.state_machine.read(|state| state.repo_by_url(&url).is_some()) {
                break;
            }
            let command = Command::AddRepo { url: url.clone(), at: clock::now() };
            match context.writer.write(command).await {
                Ok(Reply::RepoAdded { repo }) => {
                    info!(repo = %repo, url = %url, "repository added");
                    break;
                }
                Ok(Reply::Refused(Refusal::DuplicateRepo { .. })) => break,
                Ok(other) => {
                    warn!(url = %url, reply = ?other, "repository not added");
                    break;
                }
                Err(error) => {
                    info!(url = %url, error = %error, "waiting for a leader to add the repository");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_paths_become_absolute_and_urls_stay() {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = normalize_url(&dir.path().to_string_lossy()).expect("existing path");
        assert!(Path::new(&url).is_absolute());
        assert_eq!(normalize_url("file:///srv/a.git").expect("url"), "file:///srv/a.git");
        assert!(normalize_url("/does/not/exist/anywhere").is_err());
        assert!(normalize_url("  ").is_err());
    }
}
