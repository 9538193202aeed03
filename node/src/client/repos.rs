//! `repo add`, `repo set`, `repo remove` and `repo list`: watched repositories and their
//! settings from the command line.
//!
//! In these commands `--token` names the secret holding the forge's token (a repository
//! setting); the API token of the CLI itself is `--api-token` or `EVENTIDE_TOKEN` here.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use eventide_api::{
    AddRepo, Forge, RemovedRepoDoc, RepoDoc, RepoPatch, RepoSettingsDoc, SecretDoc, StatusDoc,
};

use super::{render, Api, NodeArgs};
use crate::config::DEFAULT_LISTEN;
use crate::repos::{normalize_url, resolve_argument};
use crate::units::parse_duration;

/// Which node `repo` commands talk to, with the API token under another name than
/// elsewhere (`--token` is a repository setting here).
#[derive(Args, Debug, Clone)]
pub struct RepoNodeArgs {
    /// Address of any node of the cluster.
    #[arg(long, env = "EVENTIDE_NODE", default_value = DEFAULT_LISTEN, value_name = "HOST:PORT")]
    pub node: String,
    /// The cluster secret, to derive the API token from (or EVENTIDE_SECRET).
    #[arg(long, env = "EVENTIDE_SECRET_FILE", value_name = "FILE")]
    pub secret_file: Option<PathBuf>,
    /// The API token (`eventide-node token`).
    #[arg(long, env = "EVENTIDE_TOKEN", hide_env_values = true, value_name = "TOKEN")]
    pub api_token: Option<String>,
}

impl RepoNodeArgs {
    fn node_args(&self) -> NodeArgs {
        NodeArgs {
            node: self.node.clone(),
            secret_file: self.secret_file.clone(),
            token: self.api_token.clone(),
        }
    }
}

/// A repository's settings as flags. In `repo set` a flag left out keeps its value and
/// an empty value (`--token ''`) clears it.
#[derive(Args, Debug, Clone, Default)]
pub struct RepoSettingsArgs {
    /// The forge that hosts it: github, gitlab or gitea (Forgejo is gitea). Enables its
    /// webhook endpoint and commit statuses.
    #[arg(long, value_name = "FORGE")]
    pub forge: Option<String>,
    /// The forge's API root, when not derived from the url (GitHub Enterprise:
    /// https://HOST/api/v3, GitLab: https://HOST/api/v4, Gitea: https://HOST/api/v1).
    #[arg(long, value_name = "URL")]
    pub api_url: Option<String>,
    /// Secret with the forge token: https fetches and commit statuses.
    #[arg(long, value_name = "SECRET")]
    pub token: Option<String>,
    /// Secret with the private key for ssh fetches.
    #[arg(long, value_name = "SECRET")]
    pub ssh_key: Option<String>,
    /// Secret with known_hosts lines for the ssh host (`ssh-keyscan HOST`).
    #[arg(long, value_name = "SECRET")]
    pub known_hosts: Option<String>,
    /// Secret the forge signs its webhooks with.
    #[arg(long, value_name = "SECRET")]
    pub webhook_secret: Option<String>,
    /// A CA bundle trusted for https besides the system's (the same path on every node).
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<String>,
    /// Branch patterns whose commits become jobs, comma-separated: `*` within a path
    /// segment, `**` across, `!` excludes (e.g. 'main,release/*,!release/old').
    #[arg(long, value_name = "PATTERNS")]
    pub branches: Option<String>,
    /// How often the leader polls it (e.g. 30s, 5m); default: the node's --poll-interval.
    #[arg(long, value_name = "DURATION")]
    pub poll_interval: Option<String>,
    /// The context of its commit statuses (default eventide/test).
    #[arg(long, value_name = "TEXT")]
    pub status_context: Option<String>,
}

/// A flag's value: `None` when left out, `Some(None)` when empty (cleared).
fn given(value: &Option<String>) -> Option<Option<String>> {
    value.as_ref().map(|text| Some(text.trim().to_owned()).filter(|text| !text.is_empty()))
}

fn forge_of(text: &str) -> anyhow::Result<Forge> {
    match text.trim().to_ascii_lowercase().as_str() {
        "github" => Ok(Forge::Github),
        "gitlab" => Ok(Forge::Gitlab),
        "gitea" | "forgejo" => Ok(Forge::Gitea),
        _ => anyhow::bail!("--forge {text}: expected github, gitlab or gitea"),
    }
}

fn interval_of(text: &str) -> anyhow::Result<u64> {
    let interval = parse_duration(text)
        .with_context(|| format!("--poll-interval {text}: not a duration (e.g. 30s, 5m)"))?;
    Ok(u64::try_from(interval.as_millis()).unwrap_or(u64::MAX))
}

/// Comma-separated branch patterns as typed (`main, release/*`), each trimmed.
pub(super) fn patterns_of(text: &str) -> Vec<String> {
    text.split(',').map(str::trim).filter(|p| !p.is_empty()).map(str::to_owned).collect()
}

impl RepoSettingsArgs {
    /// The patch `repo set` sends.
    pub fn patch(&self) -> anyhow::Result<RepoPatch> {
        let forge = match given(&self.forge) {
            Some(Some(text)) => Some(Some(forge_of(&text)?)),
            Some(None) => Some(None),
            None => None,
        };
        let poll_interval_ms = match given(&self.poll_interval) {
            Some(Some(text)) => Some(Some(interval_of(&text)?)),
            Some(None) => Some(None),
            None => None,
        };
        Ok(RepoPatch {
            forge,
            api_url: given(&self.api_url),
            token: given(&self.token),
            ssh_key: given(&self.ssh_key),
            known_hosts: given(&self.known_hosts),
            webhook_secret: given(&self.webhook_secret),
            ca_file: given(&self.ca_file).map(|path| path.map(absolute)),
            branches: given(&self.branches).map(|text| text.map(|text| patterns_of(&text))),
            poll_interval_ms,
            status_context: given(&self.status_context),
        })
    }

    /// The settings `repo add` sends.
    pub fn settings(&self) -> anyhow::Result<RepoSettingsDoc> {
        Ok(self.patch()?.apply(&RepoSettingsDoc::default()))
    }
}

/// A CA path as typed, made absolute against the CLI's working directory.
fn absolute(path: String) -> String {
    let given = Path::new(&path);
    if given.is_absolute() {
        return path;
    }
    std::env::current_dir().map_or(path.clone(), |cwd| cwd.join(given).display().to_string())
}

/// A repository argument of `repo add` or `repo remove`: a relative path is taken from
/// the working directory of the CLI, which is what the person typing it means.
fn repo_url(argument: &str) -> anyhow::Result<String> {
    let cwd = std::env::current_dir().context("failed to read the working directory")?;
    resolve_argument(argument, &cwd)
}

/// `eventide-node repo add`.
pub async fn add(
    node: &RepoNodeArgs,
    argument: &str,
    flags: &RepoSettingsArgs,
) -> anyhow::Result<()> {
    let api = Api::new(&node.node_args())?;
    let url = repo_url(argument)?;
    if url.starts_with('/') && !Path::new(&url).exists() {
        anyhow::bail!("repository {url} does not exist");
    }
    let settings = flags.settings()?;
    let repo: RepoDoc = api.post("/api/v1/repos", &AddRepo { url, settings }).await?;
    println!("watching repository {} ({})", repo.id, repo.url);
    warn_missing_secrets(&api, &repo.settings).await;
    Ok(())
}

/// `eventide-node repo set`.
pub async fn set(
    node: &RepoNodeArgs,
    argument: &str,
    flags: &RepoSettingsArgs,
) -> anyhow::Result<()> {
    let api = Api::new(&node.node_args())?;
    let patch = flags.patch()?;
    if patch == RepoPatch::default() {
        anyhow::bail!("nothing to change: give a setting, e.g. --branches 'main,release/*'");
    }
    let found = find(&api, argument).await?;
    let repo: RepoDoc = api.patch(&format!("/api/v1/repos/{}", found.id), &patch).await?;
    println!("settings of repository {} ({}) changed", repo.id, repo.url);
    print!("{}", render::repo_settings(&repo.settings));
    warn_missing_secrets(&api, &repo.settings).await;
    Ok(())
}

/// Says which named secrets the store does not hold yet (they may be set later).
async fn warn_missing_secrets(api: &Api, settings: &RepoSettingsDoc) {
    let named =
        [&settings.token, &settings.ssh_key, &settings.known_hosts, &settings.webhook_secret];
    let named: Vec<&str> = named.into_iter().filter_map(|name| name.as_deref()).collect();
    if named.is_empty() {
        return;
    }
    let Ok(stored) = api.get::<Vec<SecretDoc>>("/api/v1/secrets").await else { return };
    for name in named {
        if !stored.iter().any(|secret| secret.name == name) {
            eprintln!(
                "warning: no secret {name} is stored yet; set it with `eventide-node secret set {name}`"
            );
        }
    }
}

/// The watched repository `argument` names: its id, or its url in any spelling `repo
/// add` takes.
async fn find(api: &Api, argument: &str) -> anyhow::Result<RepoDoc> {
    let repos: Vec<RepoDoc> = api.get("/api/v1/repos").await?;
    if let Some(repo) = repos.iter().find(|repo| repo.id == argument.trim()) {
        return Ok(repo.clone());
    }
    let url = repo_url(argument)?;
    let same = |stored: &str| normalize_url(stored).is_ok_and(|canonical| canonical == url);
    repos
        .into_iter()
        .find(|repo| same(&repo.url))
        .with_context(|| format!("no watched repository is {url} (see eventide-node repo list)"))
}

/// `eventide-node repo remove`: by id, or by url in any spelling `repo add` takes.
pub async fn remove(node: &RepoNodeArgs, argument: &str) -> anyhow::Result<()> {
    let api = Api::new(&node.node_args())?;
    let found = find(&api, argument).await?;
    let removed: RemovedRepoDoc = api.delete(&format!("/api/v1/repos/{}", found.id)).await?;
    let cancelled = match removed.cancelled.len() {
        0 => String::new(),
        1 => "; 1 job cancelled".to_owned(),
        n => format!("; {n} jobs cancelled"),
    };
    println!("stopped watching repository {} ({}){cancelled}", removed.id, found.url);
    Ok(())
}

/// `eventide-node repo list`. Fetch times and errors are the leader observer's: when
/// another node answered, they are taken from the leader (best effort).
pub async fn list(node: &RepoNodeArgs, json: bool) -> anyhow::Result<()> {
    let args = node.node_args();
    let api = Api::new(&args)?;
    let mut repos: Vec<RepoDoc> = api.get("/api/v1/repos").await?;
    if let Ok(status) = api.get::<StatusDoc>("/api/v1/status").await {
        if let Some(leader) = status.leader.filter(|leader| leader.id != status.node.id) {
            if let Ok(from_leader) = Api::new(&args.at(leader.addr.clone())) {
                if let Ok(leader_repos) = from_leader.get::<Vec<RepoDoc>>("/api/v1/repos").await {
                    repos = leader_repos;
                }
            }
        }
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&repos)?);
    } else {
        print!("{}", render::repos(&repos, crate::clock::now().0));
    }
    Ok(())
}
