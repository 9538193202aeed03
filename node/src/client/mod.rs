//! The CLI's side of the HTTP API: requests to any node, answers printed for people
//! (or as JSON with `--json`).
//!
//! - `jobs`: results, logs, reruns, cancel, notify and git hooks.
//! - `artifacts`: a job's artifacts, listed and downloaded.
//! - `repos`: watched repositories and their settings.
//! - `secrets`: the secret store (`secret set`, `list`, `rm`).
//! - `render`: the tables.

pub mod artifacts;
mod jobs;
mod render;
pub mod repos;
pub mod secrets;

pub use jobs::{cancel, hook_install, log, notify, rerun, results, ResultsArgs};

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use serde::de::DeserializeOwned;
use serde::Serialize;

use eventide_api::{ErrorBody, StatusDoc};

use crate::config::{client_secret, DEFAULT_LISTEN};

/// Which node the CLI talks to; any node will do.
#[derive(Args, Debug, Clone)]
pub struct NodeArgs {
    /// Address of any node of the cluster.
    #[arg(long, env = "EVENTIDE_NODE", default_value = DEFAULT_LISTEN, value_name = "HOST:PORT")]
    pub node: String,
    /// The cluster secret, to derive the API token from (or EVENTIDE_SECRET).
    #[arg(long, env = "EVENTIDE_SECRET_FILE", value_name = "FILE")]
    pub secret_file: Option<PathBuf>,
    /// The API token (`eventide-node token`), for a hook that must not hold the secret.
    #[arg(long, env = "EVENTIDE_TOKEN", hide_env_values = true, value_name = "TOKEN")]
    pub token: Option<String>,
}

impl NodeArgs {
    /// Arguments for `node` with the same credentials.
    fn at(&self, node: String) -> NodeArgs {
        NodeArgs { node, ..self.clone() }
    }

    /// The API token to send: `--token`, else derived from the secret, else none.
    fn api_token(&self) -> anyhow::Result<Option<String>> {
        if let Some(token) = self.token.as_ref().map(|t| t.trim()).filter(|t| !t.is_empty()) {
            return Ok(Some(token.to_owned()));
        }
        Ok(client_secret(self.secret_file.as_deref())?.map(|secret| secret.api_token()))
    }
}

struct Api {
    base: String,
    node: String,
    http: reqwest::Client,
    /// Sent as `Authorization: Bearer` on every request when known.
    token: Option<String>,
}

impl Api {
    fn new(args: &NodeArgs) -> anyhow::Result<Api> {
        let node = args.node.trim().trim_start_matches("http://").trim_end_matches('/').to_owned();
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(3))
            .timeout(Duration::from_secs(30))
            .build()
            .context("failed to build the http client")?;
        Ok(Api { base: format!("http://{node}"), node, http, token: args.api_token()? })
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        let request = self.http.get(format!("{}{}", self.base, path));
        self.send(request).await
    }

    async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> anyhow::Result<T> {
        let request = self.http.post(format!("{}{}", self.base, path)).json(body);
        self.send(request).await
    }

    async fn put<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> anyhow::Result<T> {
        let request = self.http.put(format!("{}{}", self.base, path)).json(body);
        self.send(request).await
    }

    async fn send<T: DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
    ) -> anyhow::Result<T> {
        let response = self.respond(request).await?;
        let bytes = response.bytes().await.context("failed to read the answer")?;
        serde_json::from_slice(&bytes).with_context(|| {
            format!("node {} answered something this CLI does not understand", self.node)
        })
    }

    async fn patch<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> anyhow::Result<T> {
        let request = self.http.patch(format!("{}{}", self.base, path)).json(body);
        self.send(request).await
    }

    async fn delete<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        let request = self.http.delete(format!("{}{}", self.base, path));
        self.send(request).await
    }

    /// `GET path` whose body is read as it arrives (logs): no overall timeout.
    async fn stream(&self, path: &str) -> anyhow::Result<reqwest::Response> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(3))
            .build()
            .context("failed to build the http client")?;
        self.respond(http.get(format!("{}{}", self.base, path))).await
    }

    /// Sends a request; a non-2xx answer becomes an error carrying the node's message.
    async fn respond(&self, request: reqwest::RequestBuilder) -> anyhow::Result<reqwest::Response> {
        let request = match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        };
        let response = request.send().await.map_err(|e| {
            let why = if e.is_connect() {
                "connection refused or host unreachable".to_owned()
            } else if e.is_timeout() {
                "timed out".to_owned()
            } else {
                e.to_string()
            };
            anyhow::anyhow!(
                "cannot reach an eventide node at {} ({why}); is it running? (--node or EVENTIDE_NODE)",
                self.node
            )
        })?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let bytes = response.bytes().await.context("failed to read the answer")?;
        let message = serde_json::from_slice::<ErrorBody>(&bytes)
            .map(|body| body.error)
            .unwrap_or_else(|_| String::from_utf8_lossy(&bytes).trim().to_owned());
        if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
            anyhow::bail!(
                "{message} ({status}); pass --secret-file, or set EVENTIDE_SECRET or EVENTIDE_TOKEN"
            )
        }
        anyhow::bail!("{} ({})", message, status)
    }
}

/// `eventide-node status`.
pub async fn status(node: &NodeArgs, json: bool, watch: bool) -> anyhow::Result<()> {
    let api = Api::new(node)?;
    if !watch {
        let doc = with_leader_repo_errors(node, api.get("/api/v1/status").await?).await;
        if json {
            println!("{}", serde_json::to_string_pretty(&doc)?);
        } else {
            print!("{}", render::status(&doc));
        }
        return Ok(());
    }
    loop {
        let screen = match api.get::<StatusDoc>("/api/v1/status").await {
            Ok(doc) => render::status(&with_leader_repo_errors(node, doc).await),
            Err(error) => format!("error: {error:#}\n"),
        };
        // Clear the screen and draw from the top left.
        print!("\x1b[2J\x1b[H{screen}");
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}

/// Repository errors are known to the leader's observer only: when another node answered,
/// take them from the leader (best effort).
async fn with_leader_repo_errors(node: &NodeArgs, mut doc: StatusDoc) -> StatusDoc {
    let Some(leader) = doc.leader.as_ref().filter(|l| l.id != doc.node.id) else { return doc };
    let Ok(api) = Api::new(&node.at(leader.addr.clone())) else { return doc };
    if let Ok(from_leader) = api.get::<StatusDoc>("/api/v1/status").await {
        doc.repos = from_leader.repos;
    }
    doc
}

/// `eventide-node token`: the API token derived from the cluster secret, for hooks and
/// scripts that may mutate without holding the secret.
pub fn token(secret_file: Option<&Path>) -> anyhow::Result<()> {
    let secret = client_secret(secret_file)?
        .context("no cluster secret: pass --secret-file FILE or set EVENTIDE_SECRET")?;
    println!("{}", secret.api_token());
    Ok(())
}
