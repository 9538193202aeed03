//! The CLI's side of the HTTP API: requests to any node, answers printed for people
//! (or as JSON with `--json`).
//!
//! - `render`: the tables.

mod render;

use std::time::Duration;

use anyhow::Context;
use clap::Args;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::api::repos::{AddRepo, RepoDoc};
use crate::api::status::StatusDoc;
use crate::api::ErrorBody;
use crate::config::DEFAULT_LISTEN;
use crate::repos::normalize_url;

/// Which node the CLI talks to; any node will do.
#[derive(Args, Debug, Clone)]
pub struct NodeArgs {
    /// Address of any node of the cluster.
    #[arg(long, env = "EVENTIDE_NODE", default_value = DEFAULT_LISTEN, value_name = "HOST:PORT")]
    pub node: String,
}

struct Api {
    base: String,
    node: String,
    http: reqwest::Client,
}

impl Api {
    fn new(args: &NodeArgs) -> anyhow::Result<Api> {
        let node = args.node.trim().trim_start_matches("http://").trim_end_matches('/').to_owned();
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(3))
            .timeout(Duration::from_secs(30))
            .build()
            .context("failed to build the http client")?;
        Ok(Api { base: format!("http://{node}"), node, http })
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

    async fn send<T: DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
    ) -> anyhow::Result<T> {
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
        let bytes = response.bytes().await.context("failed to read the answer")?;
        if !status.is_success() {
            let message = serde_json::from_slice::<ErrorBody>(&bytes)
                .map(|body| body.error)
                .unwrap_or_else(|_| String::from_utf8_lossy(&bytes).trim().to_owned());
            anyhow::bail!("{} ({})", message, status);
        }
        serde_json::from_slice(&bytes).with_context(|| {
            format!("node {} answered something this CLI does not understand", self.node)
        })
    }
}

/// `eventide-node status`.
pub async fn status(node: &NodeArgs, json: bool, watch: bool) -> anyhow::Result<()> {
    let api = Api::new(node)?;
    if !watch {
        let doc: StatusDoc = api.get("/api/v1/status").await?;
        if json {
            println!("{}", serde_json::to_string_pretty(&doc)?);
        } else {
            print!("{}", render::status(&doc));
        }
        return Ok(());
    }
    loop {
        let screen = match api.get::<StatusDoc>("/api/v1/status").await {
            Ok(doc) => render::status(&doc),
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

/// `eventide-node repo add`.
pub async fn repo_add(node: &NodeArgs, url: &str) -> anyhow::Result<()> {
    let api = Api::new(node)?;
    let url = normalize_url(url)?;
    let repo: RepoDoc = api.post("/api/v1/repos", &AddRepo { url }).await?;
    println!("watching repository {} ({})", repo.id, repo.url);
    Ok(())
}

/// `eventide-node repo list`.
pub async fn repo_list(node: &NodeArgs, json: bool) -> anyhow::Result<()> {
    let api = Api::new(node)?;
    let repos: Vec<RepoDoc> = api.get("/api/v1/repos").await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&repos)?);
    } else {
        print!("{}", render::repos(&repos));
    }
    Ok(())
}
