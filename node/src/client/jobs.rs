//! `results`, `log`, `rerun`, `cancel`, `notify` and `hook install`.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;

use eventide_api::{
    BuildDoc, JobDetailDoc, JobDoc, JobState, NotifyDoc, RerunRequest, StatusDoc, MAX_LIMIT,
};

use super::{render, Api, NodeArgs};

/// Filters of `eventide-node results`.
#[derive(clap::Args, Debug, Clone)]
pub struct ResultsArgs {
    #[command(flatten)]
    pub node: NodeArgs,
    /// Only jobs of this branch.
    #[arg(long)]
    pub branch: Option<String>,
    /// Only jobs of this commit (a prefix is enough).
    #[arg(long)]
    pub commit: Option<String>,
    /// Only jobs in this state (queued, running, passed, failed, timed_out, error, cancelled).
    #[arg(long)]
    pub state: Option<String>,
    /// At most this many jobs, newest first (fetched page by page, so any number works).
    #[arg(
        long,
        default_value_t = 20,
        conflicts_with = "all",
        value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..)
    )]
    pub limit: usize,
    /// Every job the cluster keeps, newest first.
    #[arg(long)]
    pub all: bool,
    /// Print one JSON array instead of a table.
    #[arg(long, conflicts_with = "follow")]
    pub json: bool,
    /// Keep printing results as they land, until interrupted.
    #[arg(long)]
    pub follow: bool,
    /// List builds (one per push or rerun of a commit) with their jobs instead of jobs;
    /// with `--json`, an array of builds. `--state` then takes a build's state (queued,
    /// running, passed, failed, error, cancelled).
    #[arg(long, conflicts_with = "follow")]
    pub builds: bool,
}

fn query(args: &ResultsArgs, limit: usize, before: Option<u64>) -> String {
    let what = if args.builds { "builds" } else { "jobs" };
    let mut query = format!("/api/v1/{what}?limit={limit}");
    if let Some(before) = before {
        query.push_str(&format!("&before={before}"));
    }
    for (key, value) in [("branch", &args.branch), ("commit", &args.commit), ("state", &args.state)]
    {
        if let Some(value) = value {
            query.push_str(&format!("&{key}={}", encode(value)));
        }
    }
    query
}

/// Percent-encodes a query value.
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Node names by id, for showing runners.
pub(super) async fn node_names(api: &Api) -> BTreeMap<String, String> {
    match api.get::<StatusDoc>("/api/v1/status").await {
        Ok(status) => status.nodes.into_iter().map(|n| (n.id, n.name)).collect(),
        Err(_) => BTreeMap::new(),
    }
}

/// The size of the next page when `have` jobs of `wanted` (`None`: all) are fetched;
/// `None` when no page is left to ask for.
fn next_page(wanted: Option<usize>, have: usize) -> Option<usize> {
    let left = wanted.map_or(usize::MAX, |wanted| wanted.saturating_sub(have));
    (left > 0).then(|| left.min(MAX_LIMIT))
}

/// Builds newest first, `wanted` at most (`None`: all), page by page as for jobs.
async fn list_builds(
    api: &Api,
    args: &ResultsArgs,
    wanted: Option<usize>,
) -> anyhow::Result<Vec<BuildDoc>> {
    let mut builds: Vec<BuildDoc> = Vec::new();
    while let Some(size) = next_page(wanted, builds.len()) {
        let before = builds.last().map(|build| build.id);
        let page: Vec<BuildDoc> = api.get(&query(args, size, before)).await?;
        let last_page = page.len() < size;
        builds.extend(page);
        if last_page {
            break;
        }
    }
    Ok(builds)
}

/// Jobs newest first, `wanted` at most (`None`: all), a page of at most the API's limit
/// at a time, each page starting below the last job of the one before.
async fn list_jobs(
    api: &Api,
    args: &ResultsArgs,
    wanted: Option<usize>,
) -> anyhow::Result<Vec<JobDoc>> {
    let mut jobs: Vec<JobDoc> = Vec::new();
    while let Some(size) = next_page(wanted, jobs.len()) {
        let before = jobs.last().map(|job| job.id);
        let page: Vec<JobDoc> = api.get(&query(args, size, before)).await?;
        let last_page = page.len() < size;
        jobs.extend(page);
        if last_page {
            break;
        }
    }
    Ok(jobs)
}

pub async fn results(args: ResultsArgs) -> anyhow::Result<()> {
    let api = Api::new(&args.node)?;
    let wanted = (!args.all).then_some(args.limit);
    if args.builds {
        let builds = list_builds(&api, &args, wanted).await?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&builds)?);
        } else {
            print!("{}", render::builds(&builds, &node_names(&api).await));
        }
        return Ok(());
    }
    let jobs = list_jobs(&api, &args, wanted).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&jobs)?);
        return Ok(());
    }
    let names = node_names(&api).await;
    if !args.follow {
        print!("{}", render::jobs(&jobs, &names));
        return Ok(());
    }
    // Follow: the current list oldest first, then every job that becomes final.
    let mut shown: BTreeSet<u64> = BTreeSet::new();
    println!("{}", render::jobs_header());
    for job in jobs.iter().rev() {
        println!("{}", render::job_row(job, &names));
        if job.finished_at.is_some() {
            shown.insert(job.id);
        }
    }
    let mut names = names;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
        let Ok(jobs) = api.get::<Vec<JobDoc>>(&query(&args, 200, None)).await else { continue };
        let landed: Vec<&JobDoc> = jobs
            .iter()
            .rev()
            .filter(|j| j.finished_at.is_some() && !shown.contains(&j.id))
            .collect();
        for job in landed {
            if job.runner.as_ref().is_some_and(|r| !names.contains_key(r)) {
                names = node_names(&api).await;
            }
            println!("{}", render::job_row(job, &names));
            shown.insert(job.id);
        }
        std::io::stdout().flush()?;
    }
}

pub async fn log(node: &NodeArgs, job: u64, follow: bool) -> anyhow::Result<()> {
    let api = Api::new(node)?;
    let path = format!("/api/v1/jobs/{job}/log?follow={follow}");
    let mut response = api.stream(&path).await?;
    let mut stdout = std::io::stdout();
    while let Some(chunk) = response.chunk().await.context("the log stream broke off")? {
        stdout.write_all(&chunk)?;
        stdout.flush()?;
    }
    let detail: JobDetailDoc = api.get(&format!("/api/v1/jobs/{job}")).await?;
    eprintln!("{}", render::job_summary_line(&detail.job));
    Ok(())
}

/// `user@host` of the person running the command, shown with the build it queues.
fn who_asks() -> Option<String> {
    let user = std::env::var("USER").ok().filter(|user| !user.is_empty())?;
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let host = host.trim();
    Some(if host.is_empty() { user } else { format!("{user}@{host}") })
}

pub async fn rerun(
    node: &NodeArgs,
    commit: &str,
    branch: Option<String>,
    wait: bool,
) -> anyhow::Result<()> {
    let api = Api::new(node)?;
    let request = RerunRequest { commit: commit.to_owned(), branch, by: who_asks() };
    let job: JobDoc = api
        .post("/api/v1/rerun", &request)
        .await
        .with_context(|| format!("failed to rerun {commit}"))?;
    println!("queued job {} (rerun of {} on {})", job.id, short(&job.commit), job.branch);
    if !wait {
        return Ok(());
    }
    let mut last_state = job.state;
    let deadline = std::time::Instant::now() + Duration::from_secs(6 * 3600);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
        let detail: JobDetailDoc = api.get(&format!("/api/v1/jobs/{}", job.id)).await?;
        if detail.job.state != last_state {
            println!("job {}: {}", job.id, detail.job.state);
            last_state = detail.job.state;
        }
        if detail.job.finished_at.is_some() {
            println!("{}", render::job_summary_line(&detail.job));
            return match detail.job.state {
                JobState::Passed => Ok(()),
                other => anyhow::bail!("job {} ended {}", job.id, other),
            };
        }
        anyhow::ensure!(std::time::Instant::now() < deadline, "gave up waiting for job {}", job.id);
    }
}

pub async fn cancel(node: &NodeArgs, job: u64) -> anyhow::Result<()> {
    let api = Api::new(node)?;
    let doc: JobDoc = api.post(&format!("/api/v1/jobs/{job}/cancel"), &()).await?;
    println!("job {} cancelled", doc.id);
    Ok(())
}

pub async fn notify(node: &NodeArgs) -> anyhow::Result<()> {
    let api = Api::new(node)?;
    let doc: NotifyDoc = api.post("/api/v1/notify", &()).await?;
    println!("observer on {} notified", doc.observer);
    Ok(())
}

fn short(commit: &str) -> &str {
    &commit[..commit.len().min(8)]
}

const HOOK_MARKER: &str = "# eventide-node hook";

/// Where git runs hooks for `repo`: `.git/hooks` of a work tree, `hooks` of a bare one.
fn hooks_dir(repo: &Path) -> anyhow::Result<PathBuf> {
    let dot_git = repo.join(".git");
    if dot_git.is_dir() {
        return Ok(dot_git.join("hooks"));
    }
    if repo.join("HEAD").is_file() && repo.join("objects").is_dir() {
        return Ok(repo.join("hooks"));
    }
    anyhow::bail!("{} is not a git repository", repo.display())
}

/// `eventide-node hook install REPO`: post-commit and post-receive hooks that call
/// `notify`, so a commit is observed at once instead of at the next poll.
pub fn hook_install(node: &NodeArgs, repo: &Path) -> anyhow::Result<()> {
    let hooks = hooks_dir(repo)?;
    std::fs::create_dir_all(&hooks)
        .with_context(|| format!("failed to create {}", hooks.display()))?;
    let binary = std::env::current_exe().context("failed to find this binary")?;
    // With a cluster secret, the hook reads the same file (or EVENTIDE_TOKEN from the
    // environment git runs it in); the token itself is never written into the hook.
    let secret = node
        .secret_file
        .as_ref()
        .map(|path| format!(" --secret-file \"{}\"", path.display()))
        .unwrap_or_default();
    let script = format!(
        "#!/bin/sh\n{HOOK_MARKER}: starts an Eventide observer round at once\n\"{}\" notify --node \"{}\"{secret} >/dev/null 2>&1 &\nexit 0\n",
        binary.display(),
        node.node
    );
    for name in ["post-commit", "post-receive"] {
        let path = hooks.join(name);
        if let Ok(existing) = std::fs::read_to_string(&path) {
            if !existing.contains(HOOK_MARKER) {
                anyhow::bail!(
                    "{} exists and is not Eventide's; add this line to it: \"{}\" notify --node \"{}\" &",
                    path.display(),
                    binary.display(),
                    node.node
                );
            }
        }
        std::fs::write(&path, &script)
            .with_context(|| format!("failed to write {}", path.display()))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
                .with_context(|| format!("failed to make {} executable", path.display()))?;
        }
        println!("installed {}", path.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_cover_the_limit_in_steps_of_the_api_limit() {
        let cases = [
            (Some(20), 0, Some(20)),
            (Some(5000), 0, Some(1000)),
            (Some(5000), 4000, Some(1000)),
            (Some(5000), 4500, Some(500)),
            (Some(5000), 5000, None),
            (Some(1), 3, None),
            (None, 0, Some(1000)),
            (None, 123_000, Some(1000)),
        ];
        for (wanted, have, expected) in cases {
            assert_eq!(next_page(wanted, have), expected, "{wanted:?} wanted, {have} fetched");
        }
    }

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(encode("feature/x y"), "feature%2Fx%20y");
        assert_eq!(encode("main"), "main");
    }

    #[test]
    fn hooks_go_where_git_runs_them_and_never_replace_foreign_ones() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir_all(dir.path().join(".git/hooks")).expect("mkdir");
        let node = NodeArgs { node: "127.0.0.1:7801".into(), secret_file: None, token: None };
        hook_install(&node, dir.path()).expect("installed");
        let hook =
            std::fs::read_to_string(dir.path().join(".git/hooks/post-commit")).expect("hook");
        assert!(hook.contains("notify --node \"127.0.0.1:7801\""));
        // Installing again replaces our own hook.
        hook_install(&node, dir.path()).expect("reinstalled");
        std::fs::write(dir.path().join(".git/hooks/post-receive"), "#!/bin/sh\necho mine\n")
            .expect("write");
        let error = hook_install(&node, dir.path()).expect_err("foreign hook kept").to_string();
        assert!(error.contains("not Eventide's"), "{error}");
        let other = tempfile::tempdir().expect("temp dir");
        assert!(hook_install(&node, other.path()).is_err());
    }
}
