//! One validated configuration for `eventide-node run`, from flags, `EVENTIDE_*`
//! environment variables and an optional TOML file, in that order of precedence.
//!
//! clap reads flags and the environment; the file fills in what neither set; defaults
//! fill in the rest. Every problem is reported as one line naming the flag.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;
use eventide_consensus::auth::Secret;
use eventide_consensus::RaftTiming;
use serde::Deserialize;

use eventide_node::isolation::{self, Limits, Network, RESERVED_LABEL_PREFIX};

use crate::artifacts::ArtifactSettings;
use crate::git::FetchLimits;
use crate::sandbox::{SandboxMode, SandboxSettings};
use crate::server::HttpLimits;
use crate::units::{parse_duration, parse_size, MinFreeDisk};

/// The address a node listens on when none is given.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7800";

/// The settings of `eventide-node run`, as one layer of optional values: clap fills one
/// from flags and the environment, serde another from the `--config` file (keys as the
/// fields), and [`RunArgs::or`] puts the first over the second. None has a default here,
/// so that a lower layer can fill the gaps; [`RunConfig::try_from`] supplies defaults.
#[derive(Args, Deserialize, Debug, Default, Clone)]
#[serde(default, deny_unknown_fields)]
pub struct RunArgs {
    /// Directory holding everything this node owns: its id, the Raft log and state,
    /// repository mirrors and job workspaces.
    #[arg(long, env = "EVENTIDE_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// TCP (HTTP API, dashboard, Raft) and UDP (gossip) address [default: 127.0.0.1:7800].
    #[arg(long, env = "EVENTIDE_LISTEN", value_name = "HOST:PORT", value_parser = socket_addr)]
    pub listen: Option<String>,
    /// The address other nodes dial [default: --listen].
    #[arg(long, env = "EVENTIDE_ADVERTISE", value_name = "HOST:PORT", value_parser = socket_addr)]
    pub advertise: Option<String>,
    /// A gossip seed, usually another node's --listen address (repeatable).
    #[arg(long = "seed", env = "EVENTIDE_SEEDS", value_name = "HOST:PORT", value_delimiter = ',')]
    pub seeds: Vec<String>,
    /// A name for people [default: the host name and port].
    #[arg(long, env = "EVENTIDE_NAME")]
    pub name: Option<String>,
    /// How many nodes must be up before a new cluster is formed [default: 3].
    #[arg(long, env = "EVENTIDE_BOOTSTRAP_EXPECT", value_name = "N")]
    pub bootstrap_expect: Option<u32>,
    /// How many Raft voters to keep: 1, 3, 5 or 7 [default: --bootstrap-expect].
    #[arg(long, env = "EVENTIDE_VOTERS", value_name = "N")]
    pub voters: Option<u32>,
    /// Caught-up Raft learners kept ready to replace a dead voter, 0 to 7 [default: 2].
    /// Every node beyond the voters and standbys is a client.
    #[arg(long, env = "EVENTIDE_STANDBY", value_name = "N")]
    pub standby: Option<u32>,
    /// Whether this node may become a Raft server (voter or standby) [default: true].
    #[arg(long, env = "EVENTIDE_SERVER_ELIGIBLE", value_name = "BOOL")]
    pub server_eligible: Option<bool>,
    /// How long a voter may be dead before another node replaces it [default: 15s].
    #[arg(long, env = "EVENTIDE_DEAD_VOTER_GRACE", value_name = "DURATION")]
    pub dead_voter_grace: Option<String>,
    /// Jobs this node runs at once; 0 makes it a pure coordinator [default: 1].
    #[arg(long, env = "EVENTIDE_RUNNER_SLOTS", value_name = "N")]
    pub runner_slots: Option<u32>,
    /// Labels this node's runner offers, comma-separated.
    #[arg(long, env = "EVENTIDE_LABELS", value_name = "A,B", value_delimiter = ',')]
    pub labels: Vec<String>,
    /// A repository to watch: a path or file:// / http:// url (repeatable).
    #[arg(long = "repo", env = "EVENTIDE_REPOS", value_name = "URL|PATH", value_delimiter = ',')]
    pub repos: Vec<String>,
    /// How often the observer polls repositories [default: 1s].
    #[arg(long, env = "EVENTIDE_POLL_INTERVAL", value_name = "DURATION")]
    pub poll_interval: Option<String>,
    /// The longest a repository's server may stay silent during a fetch: to accept the
    /// connection, or between two reads [default: 30s].
    #[arg(long, env = "EVENTIDE_FETCH_TIMEOUT", value_name = "DURATION")]
    pub fetch_timeout: Option<String>,
    /// The longest one fetch may take, however the server behaves [default: 10m].
    #[arg(long, env = "EVENTIDE_FETCH_DEADLINE", value_name = "DURATION")]
    pub fetch_deadline: Option<String>,
    /// Raft heartbeat interval [default: 50ms].
    #[arg(long, env = "EVENTIDE_HEARTBEAT", value_name = "DURATION")]
    pub heartbeat: Option<String>,
    /// Raft election timeout range [default: 120ms-240ms].
    #[arg(long, env = "EVENTIDE_ELECTION_TIMEOUT", value_name = "MIN-MAX")]
    pub election_timeout: Option<String>,
    /// Gossip round interval [default: 200ms].
    #[arg(long, env = "EVENTIDE_GOSSIP_INTERVAL", value_name = "DURATION")]
    pub gossip_interval: Option<String>,
    /// How often a client (a node that is not a Raft member) starts gossip rounds of its
    /// own; it still answers every peer's round [default: 1s].
    #[arg(long, env = "EVENTIDE_CLIENT_GOSSIP_INTERVAL", value_name = "DURATION")]
    pub client_gossip_interval: Option<String>,
    /// Free space the data dir's disk must keep for this node's runner to claim jobs: a
    /// size (512MiB, 1GiB) or a percentage of the disk (5%); 0 never pauses [default: 1GiB].
    #[arg(long, env = "EVENTIDE_MIN_FREE_DISK", value_name = "SIZE|PERCENT")]
    pub min_free_disk: Option<String>,
    /// Where the runner keeps its mirrors of the repositories it checks jobs out of
    /// [default: <data-dir>/runner-mirrors]. Nodes on one machine may share one
    /// directory: a fetch locks the mirror, so one node fetches a new commit and the
    /// others check it out from what that fetch brought.
    #[arg(long, env = "EVENTIDE_RUNNER_MIRRORS", value_name = "DIR")]
    pub runner_mirrors: Option<PathBuf>,
    /// How jobs are sandboxed: auto (bubblewrap where it works, else none with a
    /// warning), bwrap (refuse to start without it) or none [default: auto].
    #[arg(long, env = "EVENTIDE_SANDBOX", value_name = "auto|bwrap|none")]
    pub sandbox: Option<String>,
    /// A host path every job sees read-only at the same path, such as a toolchain in
    /// /opt (repeatable).
    #[arg(
        long = "sandbox-ro-bind",
        env = "EVENTIDE_SANDBOX_RO_BIND",
        value_name = "PATH",
        value_delimiter = ','
    )]
    pub sandbox_ro_bind: Vec<PathBuf>,
    /// A host path every job sees read-write at the same path, such as a shared cache
    /// (repeatable).
    #[arg(
        long = "sandbox-bind",
        env = "EVENTIDE_SANDBOX_BIND",
        value_name = "PATH",
        value_delimiter = ','
    )]
    pub sandbox_bind: Vec<PathBuf>,
    /// The network of this runner's jobs: host, or none (only a loopback of their own,
    /// whatever a job asks) [default: host].
    #[arg(long, env = "EVENTIDE_JOB_NETWORK", value_name = "host|none")]
    pub job_network: Option<String>,
    /// The most memory one job may use (2GiB); a job asks for less with `memory`.
    #[arg(long, env = "EVENTIDE_JOB_MEMORY", value_name = "SIZE")]
    pub job_memory: Option<String>,
    /// The most processes one job may have at once; a job asks for fewer with `pids`.
    #[arg(long, env = "EVENTIDE_JOB_PIDS", value_name = "N")]
    pub job_pids: Option<u32>,
    /// The most CPUs one job may use (1.5); a job asks for fewer with `cpus`.
    #[arg(long, env = "EVENTIDE_JOB_CPUS", value_name = "CPUS")]
    pub job_cpus: Option<f64>,
    /// The most disk one job's workspace may take (10GiB); a job asks for less with
    /// `disk`.
    #[arg(long, env = "EVENTIDE_JOB_DISK", value_name = "SIZE")]
    pub job_disk: Option<String>,
    /// HTTP connections open at once; a quarter is kept for internal RPC, and it is
    /// lowered to half the open-file limit [default: 1024].
    #[arg(long, env = "EVENTIDE_HTTP_MAX_CONNECTIONS", value_name = "N")]
    pub http_max_connections: Option<usize>,
    /// How long a request's head may take to arrive, and a kept-alive connection may stay
    /// idle [default: 10s].
    #[arg(long, env = "EVENTIDE_HTTP_HEADER_TIMEOUT", value_name = "DURATION")]
    pub http_header_timeout: Option<String>,
    /// Nodes that keep a copy of each artifact of a build step, the producing runner
    /// included, 1 to 4 [default: 2].
    #[arg(long, env = "EVENTIDE_ARTIFACT_COPIES", value_name = "N")]
    pub artifact_copies: Option<u32>,
    /// The largest file a step may store as an artifact [default: 100MiB].
    #[arg(long, env = "EVENTIDE_ARTIFACT_MAX_FILE", value_name = "SIZE")]
    pub artifact_max_file: Option<String>,
    /// The most bytes of artifacts one build may store [default: 1GiB].
    #[arg(long, env = "EVENTIDE_ARTIFACT_MAX_BUILD", value_name = "SIZE")]
    pub artifact_max_build: Option<String>,
    /// How long a node keeps an artifact file [default: 7d].
    #[arg(long, env = "EVENTIDE_ARTIFACT_RETENTION", value_name = "DURATION")]
    pub artifact_retention: Option<String>,
    /// A TOML file with any of these settings (keys as the flags, with underscores).
    #[arg(long, env = "EVENTIDE_CONFIG", value_name = "FILE")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// A file holding the cluster secret (at least 16 bytes); the secret itself may also
    /// come from EVENTIDE_SECRET. Without one, nothing is authenticated.
    #[arg(long, env = "EVENTIDE_SECRET_FILE", value_name = "FILE")]
    pub secret_file: Option<PathBuf>,
    /// The dashboard's address as people reach it (a load balancer's, say), for the links
    /// of commit statuses on forges; give every node the same [default: http://ADVERTISE].
    #[arg(long, env = "EVENTIDE_PUBLIC_URL", value_name = "URL")]
    pub public_url: Option<String>,
    /// Require the API token for reads of the public API too (needs a secret).
    #[arg(long, env = "EVENTIDE_PRIVATE_API")]
    pub private_api: bool,
    /// The secret from `EVENTIDE_SECRET` (never a flag: flags show in `ps`), taken out of
    /// the environment by [`take_secret_env`] when the process starts.
    #[arg(skip)]
    #[serde(skip)]
    pub secret_env: Option<String>,
}

/// A layer's value that a lower layer may fill in when this one is unset.
trait Layered {
    fn or(self, lower: Self) -> Self;
}

impl<T> Layered for Option<T> {
    fn or(self, lower: Self) -> Self {
        Option::or(self, lower)
    }
}

/// A list is set when it has an element: lists are replaced, never concatenated.
impl<T> Layered for Vec<T> {
    fn or(self, lower: Self) -> Self {
        if self.is_empty() {
            lower
        } else {
            self
        }
    }
}

/// A switch is set when it is on.
impl Layered for bool {
    fn or(self, lower: Self) -> Self {
        self || lower
    }
}

/// Builds a layer taking each listed field from `$upper`, else from `$lower`.
macro_rules! layer_or {
    ($upper:ident, $lower:ident, $($field:ident),* $(,)?) => {
        RunArgs { $($field: Layered::or($upper.$field, $lower.$field)),* }
    };
}

impl RunArgs {
    /// This layer over `lower`: every setting this one leaves unset comes from `lower`.
    ///
    /// `EVENTIDE_SECRET` belongs to the environment layer, above any file, so a secret
    /// in `self` (either from `--secret-file` or from the environment) hides the file's
    /// `secret_file`.
    pub fn or(self, mut lower: RunArgs) -> RunArgs {
        if self.secret_env.is_some() {
            lower.secret_file = None;
        }
        layer_or!(
            self,
            lower,
            data_dir,
            listen,
            advertise,
            seeds,
            name,
            bootstrap_expect,
            voters,
            standby,
            server_eligible,
            dead_voter_grace,
            runner_slots,
            labels,
            repos,
            poll_interval,
            fetch_timeout,
            fetch_deadline,
            heartbeat,
            election_timeout,
            gossip_interval,
            client_gossip_interval,
            min_free_disk,
            runner_mirrors,
            sandbox,
            sandbox_ro_bind,
            sandbox_bind,
            job_network,
            job_memory,
            job_pids,
            job_cpus,
            job_disk,
            http_max_connections,
            http_header_timeout,
            artifact_copies,
            artifact_max_file,
            artifact_max_build,
            artifact_retention,
            config,
            secret_file,
            public_url,
            private_api,
            secret_env,
        )
    }
}

/// clap's parser for an address flag: refused as a `SocketAddr` would be, kept as
/// text so that flags and the file share one field type.
fn socket_addr(text: &str) -> Result<String, std::net::AddrParseError> {
    text.parse::<SocketAddr>().map(|_| text.to_owned())
}

/// Everything a running node needs to know, validated.
#[derive(Clone, Debug, PartialEq)]
pub struct RunConfig {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    pub advertise: SocketAddr,
    pub seeds: Vec<String>,
    pub name: String,
    pub bootstrap_expect: u32,
    pub voters: u32,
    /// Standby learners autopilot keeps besides the voters.
    pub standby: u32,
    /// Whether autopilot may make this node a server.
    pub server_eligible: bool,
    pub dead_voter_grace: Duration,
    pub runner_slots: u32,
    pub labels: BTreeSet<String>,
    pub repos: Vec<String>,
    pub poll_interval: Duration,
    pub fetch: FetchLimits,
    pub raft: RaftTiming,
    pub gossip_interval: Duration,
    /// How often a client starts gossip rounds (at least `gossip_interval`).
    pub client_gossip_interval: Duration,
    /// The cluster secret; `None` runs without authentication (`auth: off`).
    pub secret: Option<Secret>,
    /// Reads of the public API need the token too.
    pub private_api: bool,
    /// Where people reach the dashboard: `http(s)://host[:port]`, no trailing slash.
    pub public_url: String,
    pub min_free_disk: MinFreeDisk,
    /// The runner's repository mirrors (`--runner-mirrors`).
    pub runner_mirrors: PathBuf,
    pub sandbox: SandboxSettings,
    pub http: HttpLimits,
    pub artifacts: ArtifactSettings,
}

impl RunConfig {
    /// Flags and environment (already in `args`) over the `--config` file, validated.
    pub fn try_from_args(args: RunArgs) -> anyhow::Result<RunConfig> {
        let file = match &args.config {
            Some(path) => read_file(path)?,
            None => RunArgs::default(),
        };
        RunConfig::try_from(args.or(file))
    }
}

fn read_file(path: &Path) -> anyhow::Result<RunArgs> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("--config {}: failed to read", path.display()))?;
    toml::from_str(&text)
        .map_err(|e| anyhow::anyhow!("--config {}: {}", path.display(), e.message().trim_end()))
}

impl TryFrom<RunArgs> for RunConfig {
    type Error = anyhow::Error;

    /// Checks every setting of the merged layer in turn and fills in the defaults; the
    /// first problem is the error, naming its flag.
    fn try_from(layer: RunArgs) -> anyhow::Result<RunConfig> {
        let data_dir = layer
            .data_dir
            .clone()
            .context("--data-dir is required (or EVENTIDE_DATA_DIR, or data_dir in --config)")?;
        let runner_mirrors =
            layer.runner_mirrors.clone().unwrap_or_else(|| data_dir.join("runner-mirrors"));
        if runner_mirrors.as_os_str().is_empty() {
            bail!("--runner-mirrors: expected a directory");
        }
        let sandbox = sandbox(&SandboxArgs::of(&layer), &data_dir)?;
        refuse_shared("the runner's mirrors", &runner_mirrors, &SandboxArgs::of(&layer))?;
        let listen = match layer.listen {
            Some(text) => parse_addr("listen", &text)?,
            None => DEFAULT_LISTEN.parse().expect("the default address parses"),
        };
        let advertise = advertise(layer.advertise, listen)?;
        for seed in &layer.seeds {
            check_host_port("seed", seed)?;
        }
        let bootstrap_expect = bootstrap_expect(layer.bootstrap_expect)?;
        let voters = voters(layer.voters, bootstrap_expect)?;
        let standby = standby(layer.standby)?;
        let server_eligible = layer.server_eligible.unwrap_or(true);
        let name = name(layer.name, listen)?;
        let runner_slots = runner_slots(layer.runner_slots)?;
        let labels = labels(layer.labels)?;
        let dead_voter_grace =
            duration("dead-voter-grace", layer.dead_voter_grace, Duration::from_secs(15))?;
        let poll_interval = duration("poll-interval", layer.poll_interval, Duration::from_secs(1))?;
        let fetch = FetchLimits::try_new(
            duration("fetch-timeout", layer.fetch_timeout, FetchLimits::DEFAULT.timeout)?,
            duration("fetch-deadline", layer.fetch_deadline, FetchLimits::DEFAULT.deadline)?,
        )?;
        let gossip_interval = gossip_interval(layer.gossip_interval)?;
        let client_gossip_interval =
            client_gossip_interval(layer.client_gossip_interval, gossip_interval)?;
        let raft = raft(layer.heartbeat, layer.election_timeout)?;
        let secret = match (layer.secret_file, layer.secret_env) {
            (Some(path), _) => Some(read_secret_file(&path)?),
            (None, Some(text)) => Some(secret_from_env(&text)?),
            (None, None) => None,
        };
        let private_api = layer.private_api;
        if private_api && secret.is_none() {
            bail!("--private-api needs a cluster secret (--secret-file or EVENTIDE_SECRET)");
        }
        let public_url = public_url(layer.public_url, advertise)?;
        let min_free_disk = min_free_disk(layer.min_free_disk)?;
        let http = HttpLimits {
            max_connections: http_max_connections(layer.http_max_connections)?,
            header_timeout: http_header_timeout(layer.http_header_timeout)?,
        };
        let artifacts = artifact_settings(
            layer.artifact_copies,
            layer.artifact_max_file,
            layer.artifact_max_build,
            layer.artifact_retention,
        )?;
        Ok(RunConfig {
            data_dir,
            listen,
            advertise,
            seeds: layer.seeds,
            name,
            bootstrap_expect,
            voters,
            standby,
            server_eligible,
            dead_voter_grace,
            runner_slots,
            labels,
            repos: layer.repos,
            poll_interval,
            fetch,
            raft,
            gossip_interval,
            client_gossip_interval,
            secret,
            private_api,
            public_url,
            min_free_disk,
            runner_mirrors,
            sandbox,
            http,
            artifacts,
        })
    }
}

/// The sandbox settings of flags and environment over the `--config` file, for `sandbox
/// check`; the data dir, if given, only serves to refuse shared paths that hold it.
pub fn sandbox_settings(args: RunArgs) -> anyhow::Result<SandboxSettings> {
    let file = match &args.config {
        Some(path) => read_file(path)?,
        None => RunArgs::default(),
    };
    let layer = args.or(file);
    let data_dir = layer.data_dir.clone().unwrap_or_else(std::env::temp_dir);
    sandbox(&SandboxArgs::of(&layer), &data_dir)
}

/// The sandbox's part of a layer.
struct SandboxArgs<'a> {
    sandbox: Option<&'a str>,
    sandbox_ro_bind: &'a [PathBuf],
    sandbox_bind: &'a [PathBuf],
    job_network: Option<&'a str>,
    job_memory: &'a Option<String>,
    job_pids: Option<u32>,
    job_cpus: Option<f64>,
    job_disk: &'a Option<String>,
}

impl<'a> SandboxArgs<'a> {
    fn of(layer: &'a RunArgs) -> SandboxArgs<'a> {
        SandboxArgs {
            sandbox: layer.sandbox.as_deref(),
            sandbox_ro_bind: &layer.sandbox_ro_bind,
            sandbox_bind: &layer.sandbox_bind,
            job_network: layer.job_network.as_deref(),
            job_memory: &layer.job_memory,
            job_pids: layer.job_pids,
            job_cpus: layer.job_cpus,
            job_disk: &layer.job_disk,
        }
    }
}

/// An error if a path shared with every job (`--sandbox-ro-bind`, `--sandbox-bind`) holds
/// `private`, which `what` names.
fn refuse_shared(what: &str, private: &Path, layer: &SandboxArgs<'_>) -> anyhow::Result<()> {
    for (flag, paths) in
        [("sandbox-ro-bind", layer.sandbox_ro_bind), ("sandbox-bind", layer.sandbox_bind)]
    {
        for path in paths {
            let held = private.canonicalize().unwrap_or_else(|_| private.to_owned());
            let shared = path.canonicalize().unwrap_or_else(|_| path.clone());
            if held.starts_with(&shared) || private.starts_with(path) {
                bail!("--{flag} {}: would show jobs {what} {}", path.display(), private.display());
            }
        }
    }
    Ok(())
}

/// `--sandbox*` and `--job-*`. Shared paths must be absolute, exist, and not hold the
/// node's data dir (its secrets and other jobs' workspaces).
fn sandbox(layer: &SandboxArgs<'_>, data_dir: &Path) -> anyhow::Result<SandboxSettings> {
    let mode = match layer.sandbox {
        None => SandboxMode::Auto,
        Some(text) => SandboxMode::parse(text)
            .with_context(|| format!("--sandbox {text:?}: expected auto, bwrap or none"))?,
    };
    for (flag, paths) in
        [("sandbox-ro-bind", layer.sandbox_ro_bind), ("sandbox-bind", layer.sandbox_bind)]
    {
        for path in paths {
            if !path.is_absolute() {
                bail!("--{flag} {}: must be an absolute path", path.display());
            }
            if !path.exists() {
                bail!("--{flag} {}: no such file or directory", path.display());
            }
        }
    }
    refuse_shared("the node's data dir", data_dir, layer)?;
    let network = match layer.job_network {
        None => Network::Host,
        Some(text) => Network::parse(text)
            .with_context(|| format!("--job-network {text:?}: expected host or none"))?,
    };
    let size = |flag: &str, value: &Option<String>| -> anyhow::Result<Option<u64>> {
        value
            .as_deref()
            .map(|text| {
                isolation::parse_limit_size(text)
                    .with_context(|| format!("--{flag} {text:?}: expected a size such as 2GiB"))
            })
            .transpose()
    };
    let pids = layer
        .job_pids
        .map(|pids| {
            isolation::parse_pids(&pids.to_string()).with_context(|| {
                format!("--job-pids {pids}: expected a number from 1 to {}", isolation::MAX_PIDS)
            })
        })
        .transpose()?;
    let cpus_milli = layer
        .job_cpus
        .map(|cpus| {
            isolation::parse_cpus(&cpus.to_string()).with_context(|| {
                format!("--job-cpus {cpus}: expected a number of CPUs such as 2 or 1.5")
            })
        })
        .transpose()?;
    Ok(SandboxSettings {
        mode,
        read_only: layer.sandbox_ro_bind.to_vec(),
        read_write: layer.sandbox_bind.to_vec(),
        network,
        max: Limits {
            memory: size("job-memory", layer.job_memory)?,
            pids,
            cpus_milli,
            disk: size("job-disk", layer.job_disk)?,
        },
    })
}

fn public_url(value: Option<String>, advertise: SocketAddr) -> anyhow::Result<String> {
    let Some(text) = value else { return Ok(format!("http://{advertise}")) };
    let text = text.trim().trim_end_matches('/');
    let url = url::Url::parse(text)
        .map_err(|e| anyhow::anyhow!("--public-url {text}: not a url ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        bail!("--public-url {text}: must be an http:// or https:// url with a host");
    }
    if !url.username().is_empty() || url.password().is_some() {
        // Not echoed: it holds a password.
        bail!("--public-url must not hold credentials (statuses show it to everyone)");
    }
    Ok(text.to_owned())
}

fn advertise(value: Option<String>, listen: SocketAddr) -> anyhow::Result<SocketAddr> {
    let advertise = match value {
        Some(text) => parse_addr("advertise", &text)?,
        None if listen.ip().is_unspecified() => {
            bail!("--advertise is required when --listen is a wildcard address ({listen})")
        }
        None => listen,
    };
    if advertise.ip().is_unspecified() || advertise.port() == 0 {
        bail!("--advertise {advertise}: other nodes cannot dial this address");
    }
    Ok(advertise)
}

fn bootstrap_expect(value: Option<u32>) -> anyhow::Result<u32> {
    let bootstrap_expect = value.unwrap_or(3);
    if !(1..=64).contains(&bootstrap_expect) {
        bail!("--bootstrap-expect {bootstrap_expect}: must be between 1 and 64");
    }
    Ok(bootstrap_expect)
}

fn standby(value: Option<u32>) -> anyhow::Result<u32> {
    let standby = value.unwrap_or(2);
    if standby > 7 {
        bail!("--standby {standby}: must be between 0 and 7");
    }
    Ok(standby)
}

fn voters(value: Option<u32>, bootstrap_expect: u32) -> anyhow::Result<u32> {
    let voters = value.unwrap_or(bootstrap_expect.min(7));
    if ![1, 3, 5, 7].contains(&voters) {
        bail!("--voters {voters}: must be 1, 3, 5 or 7");
    }
    Ok(voters)
}

fn name(value: Option<String>, listen: SocketAddr) -> anyhow::Result<String> {
    let name = value.unwrap_or_else(|| default_name(listen));
    if name.is_empty() || name.len() > 64 || name.chars().any(char::is_control) {
        bail!("--name {name:?}: must be 1 to 64 printable characters");
    }
    Ok(name)
}

fn runner_slots(value: Option<u32>) -> anyhow::Result<u32> {
    let runner_slots = value.unwrap_or(1);
    if runner_slots > 256 {
        bail!("--runner-slots {runner_slots}: at most 256");
    }
    Ok(runner_slots)
}

fn labels(value: Vec<String>) -> anyhow::Result<BTreeSet<String>> {
    let labels: BTreeSet<String> =
        value.into_iter().map(|l| l.trim().to_owned()).filter(|l| !l.is_empty()).collect();
    if let Some(bad) =
        labels.iter().find(|l| !l.chars().all(|c| c.is_alphanumeric() || "-_.:".contains(c)))
    {
        bail!("--labels {bad:?}: labels are letters, digits and - _ . :");
    }
    if let Some(reserved) = labels.iter().find(|l| l.starts_with(RESERVED_LABEL_PREFIX)) {
        bail!(
            "--labels {reserved:?}: labels starting with {RESERVED_LABEL_PREFIX} are set by the \
             runner itself (see --sandbox)"
        );
    }
    Ok(labels)
}

fn duration(flag: &str, value: Option<String>, default: Duration) -> anyhow::Result<Duration> {
    value.map_or(Ok(default), |text| parse_duration_flag(flag, &text))
}

fn gossip_interval(value: Option<String>) -> anyhow::Result<Duration> {
    let gossip_interval = duration("gossip-interval", value, Duration::from_millis(200))?;
    if gossip_interval < Duration::from_millis(10) || gossip_interval > Duration::from_secs(10) {
        bail!("--gossip-interval: must be between 10ms and 10s");
    }
    Ok(gossip_interval)
}

/// A settled client's own rounds: every 2 s. At 100 nodes every chitchat message carries
/// a digest naming all of them, and clients' rounds are most of the cluster's; a client
/// still answers every round a peer starts (so its heartbeat moves on at the peers'
/// pace), and a dead runner's jobs are requeued by its lease within 5 s in any case.
const DEFAULT_CLIENT_GOSSIP_INTERVAL: Duration = Duration::from_secs(2);

fn client_gossip_interval(value: Option<String>, gossip: Duration) -> anyhow::Result<Duration> {
    let default = DEFAULT_CLIENT_GOSSIP_INTERVAL.max(gossip);
    let interval = duration("client-gossip-interval", value, default)?;
    if interval < gossip || interval > Duration::from_secs(60) {
        bail!("--client-gossip-interval: must be between --gossip-interval ({gossip:?}) and 60s");
    }
    Ok(interval)
}

fn raft(heartbeat: Option<String>, election_timeout: Option<String>) -> anyhow::Result<RaftTiming> {
    let mut raft = RaftTiming::default();
    if let Some(text) = heartbeat {
        raft.heartbeat = parse_duration_flag("heartbeat", &text)?;
    }
    if let Some(text) = election_timeout {
        let (min, max) = text.split_once('-').with_context(|| {
            format!("--election-timeout {text:?}: expected MIN-MAX, e.g. 120ms-240ms")
        })?;
        raft.election_min = parse_duration_flag("election-timeout", min)?;
        raft.election_max = parse_duration_flag("election-timeout", max)?;
    }
    raft.to_config("eventide")
        .map_err(|e| anyhow::anyhow!("--heartbeat/--election-timeout: {e}"))?;
    Ok(raft)
}

fn min_free_disk(value: Option<String>) -> anyhow::Result<MinFreeDisk> {
    match value {
        None => Ok(MinFreeDisk::DEFAULT),
        Some(text) => MinFreeDisk::parse(&text).with_context(|| {
            format!("--min-free-disk {text:?}: expected a size such as 512MiB or 1GiB, or a percentage such as 5%")
        }),
    }
}

fn artifact_settings(
    copies: Option<u32>,
    max_file: Option<String>,
    max_build: Option<String>,
    retention: Option<String>,
) -> anyhow::Result<ArtifactSettings> {
    let default = ArtifactSettings::DEFAULT;
    let copies = copies.map_or(default.copies, |copies| copies as usize);
    if !(1..=eventide_consensus::state::MAX_ARTIFACT_HOLDERS).contains(&copies) {
        bail!("--artifact-copies {copies}: must be between 1 and 4");
    }
    let size = |flag: &str, value: Option<String>, default: u64| -> anyhow::Result<u64> {
        let Some(text) = value else { return Ok(default) };
        match parse_size(&text) {
            Some(size) if size > 0 => Ok(size),
            _ => bail!("--{flag} {text:?}: expected a size such as 100MiB or 1GiB"),
        }
    };
    let max_file = size("artifact-max-file", max_file, default.max_file)?;
    let max_build = size("artifact-max-build", max_build, default.max_build)?;
    let retention = duration("artifact-retention", retention, default.retention)?;
    if retention.is_zero() {
        bail!("--artifact-retention: must be more than zero");
    }
    Ok(ArtifactSettings { copies, max_file, max_build, retention })
}

fn http_max_connections(value: Option<usize>) -> anyhow::Result<usize> {
    let max_connections = value.unwrap_or(HttpLimits::DEFAULT_MAX_CONNECTIONS);
    if !(HttpLimits::MIN_MAX_CONNECTIONS..=1_000_000).contains(&max_connections) {
        bail!(
            "--http-max-connections {max_connections}: must be between {} and 1000000",
            HttpLimits::MIN_MAX_CONNECTIONS
        );
    }
    Ok(max_connections)
}

fn http_header_timeout(value: Option<String>) -> anyhow::Result<Duration> {
    let header_timeout =
        duration("http-header-timeout", value, HttpLimits::DEFAULT_HEADER_TIMEOUT)?;
    if header_timeout < Duration::from_secs(1) || header_timeout > Duration::from_secs(600) {
        bail!("--http-header-timeout: must be between 1s and 10m");
    }
    Ok(header_timeout)
}

/// The variable that may hold the cluster secret itself.
pub const SECRET_ENV: &str = "EVENTIDE_SECRET";

/// Takes `EVENTIDE_SECRET` out of this process's environment and returns it, so that no
/// child process can inherit it. Call it before any thread starts: changing the
/// environment races with threads that read it. The kernel still shows the environment
/// the process started with in `/proc/<pid>/environ`, which is why the node also makes
/// itself non-dumpable.
pub fn take_secret_env() -> Option<String> {
    let secret = std::env::var(SECRET_ENV).ok();
    std::env::remove_var(SECRET_ENV);
    secret
}

/// Reads the cluster secret from `path`; every problem names `--secret-file`.
pub fn read_secret_file(path: &Path) -> anyhow::Result<Secret> {
    let bytes = std::fs::read(path)
        .map_err(|e| anyhow::anyhow!("--secret-file {}: failed to read: {e}", path.display()))?;
    Secret::try_new(&bytes).map_err(|e| anyhow::anyhow!("--secret-file {}: {e}", path.display()))
}

fn secret_from_env(text: &str) -> anyhow::Result<Secret> {
    Secret::try_new(text.as_bytes()).map_err(|e| anyhow::anyhow!("{SECRET_ENV}: {e}"))
}

/// The secret a CLI command uses: `--secret-file`, else `EVENTIDE_SECRET`, else none.
pub fn client_secret(secret_file: Option<&Path>) -> anyhow::Result<Option<Secret>> {
    if let Some(path) = secret_file {
        return read_secret_file(path).map(Some);
    }
    match std::env::var(SECRET_ENV) {
        Ok(text) => secret_from_env(&text).map(Some),
        Err(_) => Ok(None),
    }
}

fn default_name(listen: SocketAddr) -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "node".to_owned());
    format!("{host}:{}", listen.port())
}

fn parse_addr(flag: &str, text: &str) -> anyhow::Result<SocketAddr> {
    text.trim()
        .parse()
        .map_err(|_| anyhow::anyhow!("--{flag} {text:?}: expected IP:PORT, e.g. 127.0.0.1:7800"))
}

fn check_host_port(flag: &str, text: &str) -> anyhow::Result<()> {
    let valid = text
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0));
    if !valid {
        bail!("--{flag} {text:?}: expected HOST:PORT with a port from 1 to 65535");
    }
    Ok(())
}

fn parse_duration_flag(flag: &str, text: &str) -> anyhow::Result<Duration> {
    parse_duration(text).ok_or_else(|| {
        anyhow::anyhow!("--{flag} {text:?}: expected a duration such as 500ms, 2s, 10m or 1h")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Flags and environment over a file, validated.
    fn merge(flags: RunArgs, file: RunArgs) -> anyhow::Result<RunConfig> {
        RunConfig::try_from(flags.or(file))
    }

    fn args(data_dir: &str) -> RunArgs {
        RunArgs { data_dir: Some(data_dir.into()), ..RunArgs::default() }
    }

    #[test]
    fn defaults_fill_what_is_not_given() {
        let config = merge(args("/tmp/a"), RunArgs::default()).expect("valid");
        assert_eq!(config.listen, DEFAULT_LISTEN.parse().expect("parses"));
        assert_eq!(config.advertise, config.listen);
        assert_eq!(config.bootstrap_expect, 3);
        assert_eq!(config.voters, 3);
        assert_eq!((config.standby, config.server_eligible), (2, true));
        assert_eq!(config.runner_slots, 1);
        assert_eq!(config.dead_voter_grace, Duration::from_secs(15));
        assert_eq!(config.poll_interval, Duration::from_secs(1));
        assert_eq!(config.gossip_interval, Duration::from_millis(200));
        assert_eq!(config.client_gossip_interval, Duration::from_secs(2));
        assert_eq!(config.raft, RaftTiming::default());
        assert_eq!(config.min_free_disk, MinFreeDisk::DEFAULT);
        assert_eq!(config.http, HttpLimits::default());
        assert_eq!(config.fetch, FetchLimits::DEFAULT);
        assert_eq!(config.public_url, format!("http://{}", config.advertise));
        assert_eq!(config.runner_mirrors, PathBuf::from("/tmp/a/runner-mirrors"));
    }

    #[test]
    fn runner_mirrors_may_be_shared_but_not_with_jobs() {
        let shared = RunArgs { runner_mirrors: Some("/srv/mirrors".into()), ..args("/d") };
        let config = merge(shared.clone(), RunArgs::default()).expect("valid");
        assert_eq!(config.runner_mirrors, PathBuf::from("/srv/mirrors"));
        let from_file = merge(args("/d"), shared.clone()).expect("valid");
        assert_eq!(from_file.runner_mirrors, PathBuf::from("/srv/mirrors"), "from the file");
        // A directory every job sees must not hold them.
        let dir = tempfile::tempdir().expect("temp dir");
        let mirrors = dir.path().join("mirrors");
        std::fs::create_dir_all(&mirrors).expect("mkdir");
        for bind in [dir.path().to_owned(), mirrors.clone()] {
            let exposed = RunArgs {
                runner_mirrors: Some(mirrors.clone()),
                sandbox_ro_bind: vec![bind.clone()],
                ..args("/d")
            };
            let error = merge(exposed, RunArgs::default()).expect_err("refused").to_string();
            assert_eq!(
                error,
                format!(
                    "--sandbox-ro-bind {}: would show jobs the runner's mirrors {}",
                    bind.display(),
                    mirrors.display()
                )
            );
        }
    }

    #[test]
    fn the_public_url_is_an_http_url_without_credentials() {
        let with = |url: &str| RunArgs { public_url: Some(url.into()), ..args("/d") };
        let config = RunConfig::try_from(with("https://ci.example.com/")).expect("valid");
        assert_eq!(config.public_url, "https://ci.example.com");
        for bad in ["ci.example.com", "ftp://ci.example.com", "https://u:p@ci.example.com"] {
            let error = RunConfig::try_from(with(bad)).expect_err(bad).to_string();
            assert!(error.contains("--public-url"), "{error}");
            assert!(!error.contains(":p@"), "the password is not echoed: {error}");
        }
    }

    #[test]
    fn flags_win_over_the_file() {
        let file: RunArgs = toml::from_str(
            "listen = \"127.0.0.1:9000\"\nname = \"from-file\"\nvoters = 5\nlabels = [\"linux\"]\n",
        )
        .expect("valid toml");
        let mut flags = args("/tmp/a");
        flags.name = Some("from-flag".into());
        let config = merge(flags, file).expect("valid");
        assert_eq!(config.listen.port(), 9000);
        assert_eq!(config.name, "from-flag");
        assert_eq!(config.voters, 5);
        assert!(config.labels.contains("linux"));
    }

    #[test]
    fn bad_values_name_their_flag() {
        let cases: Vec<(RunArgs, &str)> = vec![
            (RunArgs::default(), "--data-dir"),
            (RunArgs { bootstrap_expect: Some(0), ..args("/d") }, "--bootstrap-expect"),
            (RunArgs { voters: Some(2), ..args("/d") }, "--voters"),
            (RunArgs { standby: Some(8), ..args("/d") }, "--standby"),
            (RunArgs { seeds: vec!["nohost".into()], ..args("/d") }, "--seed"),
            (RunArgs { seeds: vec!["h:70000".into()], ..args("/d") }, "--seed"),
            (RunArgs { poll_interval: Some("soon".into()), ..args("/d") }, "--poll-interval"),
            (
                RunArgs { election_timeout: Some("300ms".into()), ..args("/d") },
                "--election-timeout",
            ),
            (RunArgs { heartbeat: Some("1s".into()), ..args("/d") }, "--heartbeat"),
            (RunArgs { labels: vec!["a b".into()], ..args("/d") }, "--labels"),
            (RunArgs { min_free_disk: Some("lots".into()), ..args("/d") }, "--min-free-disk"),
            (RunArgs { sandbox: Some("docker".into()), ..args("/d") }, "--sandbox"),
            (RunArgs { sandbox_bind: vec!["relative".into()], ..args("/d") }, "--sandbox-bind"),
            (RunArgs { sandbox_ro_bind: vec!["/".into()], ..args("/d") }, "--sandbox-ro-bind"),
            (RunArgs { job_network: Some("off".into()), ..args("/d") }, "--job-network"),
            (RunArgs { job_memory: Some("lots".into()), ..args("/d") }, "--job-memory"),
            (RunArgs { job_pids: Some(0), ..args("/d") }, "--job-pids"),
            (RunArgs { labels: vec!["sandbox:bwrap".into()], ..args("/d") }, "--labels"),
            (RunArgs { http_max_connections: Some(4), ..args("/d") }, "--http-max-connections"),
            (
                RunArgs { http_header_timeout: Some("10ms".into()), ..args("/d") },
                "--http-header-timeout",
            ),
            (
                RunArgs { http_header_timeout: Some("later".into()), ..args("/d") },
                "--http-header-timeout",
            ),
            (RunArgs { fetch_timeout: Some("0s".into()), ..args("/d") }, "--fetch-timeout"),
            (RunArgs { fetch_deadline: Some("5s".into()), ..args("/d") }, "--fetch-deadline"),
            (
                RunArgs { listen: Some("0.0.0.0:7800".parse().expect("addr")), ..args("/d") },
                "--advertise",
            ),
        ];
        for (args, flag) in cases {
            let error = merge(args, RunArgs::default()).expect_err("must be refused").to_string();
            assert!(error.contains(flag), "{error:?} should name {flag}");
        }
    }

    #[test]
    fn the_secret_comes_from_the_flag_the_environment_or_the_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("secret");
        std::fs::write(&path, "0123456789abcdef-from-file\n").expect("write");
        let expected = Secret::try_new(b"0123456789abcdef-from-file").expect("valid");
        let from_flag =
            merge(RunArgs { secret_file: Some(path.clone()), ..args("/d") }, RunArgs::default())
                .expect("valid");
        assert_eq!(from_flag.secret.as_ref(), Some(&expected));
        let from_file =
            merge(args("/d"), RunArgs { secret_file: Some(path), ..RunArgs::default() })
                .expect("valid");
        assert_eq!(from_file.secret.as_ref(), Some(&expected));
        let from_env = merge(
            RunArgs { secret_env: Some("0123456789abcdef-env".into()), ..args("/d") },
            RunArgs::default(),
        )
        .expect("valid");
        assert!(from_env.secret.is_some());
        assert!(merge(args("/d"), RunArgs::default()).expect("valid").secret.is_none());
    }

    #[test]
    fn bad_secrets_are_refused_naming_the_flag() {
        let dir = tempfile::tempdir().expect("temp dir");
        let short = dir.path().join("short");
        let empty = dir.path().join("empty");
        std::fs::write(&short, "abc\n").expect("write");
        std::fs::write(&empty, "").expect("write");
        for path in [short, empty, dir.path().join("missing")] {
            let error = merge(
                RunArgs { secret_file: Some(path.clone()), ..args("/d") },
                RunArgs::default(),
            )
            .expect_err("refused")
            .to_string();
            assert!(error.starts_with("--secret-file"), "{error}");
            assert!(!error.contains('\n'), "one line: {error}");
        }
        let error = merge(RunArgs { private_api: true, ..args("/d") }, RunArgs::default())
            .expect_err("refused")
            .to_string();
        assert!(error.contains("--private-api"), "{error}");
    }

    #[test]
    fn unknown_file_keys_are_refused() {
        assert!(toml::from_str::<RunArgs>("lisen = \"1.2.3.4:5\"").is_err());
        // Flag spellings, and the settings that never come from a file, are no keys.
        for text in ["seed = [\"a:1\"]", "repo = [\"/r\"]", "config = \"/c\"", "secret_env = \"s\""]
        {
            assert!(toml::from_str::<RunArgs>(text).is_err(), "{text} must be refused");
        }
        assert!(toml::from_str::<RunArgs>("labels = \"linux\"").is_err(), "labels are a list");
    }

    #[test]
    fn every_file_key_is_read() {
        let file: RunArgs = toml::from_str(
            "data_dir = \"/f\"\nlisten = \" 127.0.0.1:9000\"\nadvertise = \"10.0.0.1:9000\"\n\
             seeds = [\"a:1\"]\nname = \"f\"\nbootstrap_expect = 5\nvoters = 5\n\
             dead_voter_grace = \"20s\"\nrunner_slots = 2\nlabels = [\"linux\"]\n\
             repos = [\"/r\"]\npoll_interval = \"2s\"\nfetch_timeout = \"5s\"\n\
             fetch_deadline = \"1m\"\nheartbeat = \"60ms\"\nelection_timeout = \"200ms-400ms\"\n\
             gossip_interval = \"300ms\"\nclient_gossip_interval = \"2s\"\nsecret_file = \"/s\"\nprivate_api = true\n\
             min_free_disk = \"5%\"\nhttp_max_connections = 2048\nhttp_header_timeout = \"20s\"\n\
             public_url = \"https://ci.example.com\"\n",
        )
        .expect("valid toml");
        let secret_file = file.secret_file.clone();
        let config =
            merge(RunArgs { secret_env: Some("0123456789abcdef".into()), ..args("/d") }, file)
                .expect("valid");
        assert_eq!(secret_file, Some(PathBuf::from("/s")));
        assert_eq!(config.data_dir, PathBuf::from("/d"));
        assert_eq!(config.listen, "127.0.0.1:9000".parse().expect("addr"));
        assert_eq!(config.advertise, "10.0.0.1:9000".parse().expect("addr"));
        assert_eq!(config.seeds, ["a:1"]);
        assert_eq!(config.name, "f");
        assert_eq!((config.bootstrap_expect, config.voters, config.runner_slots), (5, 5, 2));
        assert_eq!(config.dead_voter_grace, Duration::from_secs(20));
        assert_eq!(config.labels, BTreeSet::from(["linux".to_owned()]));
        assert_eq!(config.repos, ["/r"]);
        assert_eq!(config.poll_interval, Duration::from_secs(2));
        assert_eq!(config.fetch.timeout, Duration::from_secs(5));
        assert_eq!(config.fetch.deadline, Duration::from_secs(60));
        assert_eq!(config.raft.heartbeat, Duration::from_millis(60));
        assert_eq!(config.raft.election_max, Duration::from_millis(400));
        assert_eq!(config.gossip_interval, Duration::from_millis(300));
        assert_eq!(config.client_gossip_interval, Duration::from_secs(2));
        assert!(config.private_api);
        assert_ne!(config.min_free_disk, MinFreeDisk::DEFAULT);
        assert_eq!(config.http.max_connections, 2048);
        assert_eq!(config.http.header_timeout, Duration::from_secs(20));
        assert_eq!(config.public_url, "https://ci.example.com");
    }

    #[test]
    fn each_flag_wins_over_its_file_key_alone() {
        let file: RunArgs = toml::from_str(
            "data_dir = \"/f\"\nseeds = [\"f:1\"]\nlabels = [\"file\"]\nrepos = [\"/file\"]\n\
             runner_slots = 4\npoll_interval = \"3s\"\nhttp_max_connections = 2048\n\
             http_header_timeout = \"20s\"\nadvertise = \"10.0.0.1:1\"\n",
        )
        .expect("valid toml");
        let flags = RunArgs {
            seeds: vec!["a:1".into()],
            labels: vec!["flag".into()],
            poll_interval: Some("5s".into()),
            http_max_connections: Some(512),
            ..args("/d")
        };
        let config = merge(flags, file.clone()).expect("valid");
        assert_eq!(config.data_dir, PathBuf::from("/d"));
        assert_eq!(config.seeds, ["a:1"], "a list from the flags replaces the file's");
        assert_eq!(config.labels, BTreeSet::from(["flag".to_owned()]));
        assert_eq!(config.repos, ["/file"]);
        assert_eq!(config.runner_slots, 4);
        assert_eq!(config.poll_interval, Duration::from_secs(5));
        assert_eq!(config.http.max_connections, 512);
        assert_eq!(config.http.header_timeout, Duration::from_secs(20));
        assert_eq!(config.advertise, "10.0.0.1:1".parse().expect("addr"));
        // The file's data_dir counts when no flag names one.
        let config = merge(RunArgs::default(), file).expect("valid");
        assert_eq!(config.data_dir, PathBuf::from("/f"));
    }

    #[test]
    fn a_bad_file_value_under_a_flag_is_not_checked() {
        let file: RunArgs =
            toml::from_str("listen = \"nowhere\"\nvoters = 2\nheartbeat = \"soon\"\n")
                .expect("valid toml");
        let error = merge(args("/d"), file.clone()).expect_err("refused").to_string();
        assert!(error.contains("--listen"), "{error}");
        let flags = RunArgs {
            listen: Some("127.0.0.1:7801".into()),
            voters: Some(1),
            heartbeat: Some("50ms".into()),
            ..args("/d")
        };
        assert_eq!(merge(flags, file).expect("valid").voters, 1);
    }

    #[test]
    fn the_environment_secret_hides_the_files_secret_file() {
        let file =
            RunArgs { secret_file: Some("/nonexistent/secret".into()), ..RunArgs::default() };
        let error = merge(args("/d"), file.clone()).expect_err("refused").to_string();
        assert!(error.starts_with("--secret-file"), "{error}");
        let expected = Secret::try_new(b"0123456789abcdef-env").expect("valid");
        let from_env =
            merge(RunArgs { secret_env: Some("0123456789abcdef-env".into()), ..args("/d") }, file)
                .expect("valid");
        assert_eq!(from_env.secret.as_ref(), Some(&expected));
    }

    #[test]
    fn private_api_from_the_file_or_the_flag() {
        let secret = || RunArgs { secret_env: Some("0123456789abcdef".into()), ..args("/d") };
        let on = RunArgs { private_api: true, ..RunArgs::default() };
        assert!(merge(secret(), on.clone()).expect("valid").private_api);
        assert!(
            merge(RunArgs { private_api: true, ..secret() }, RunArgs::default())
                .expect("valid")
                .private_api
        );
        assert!(!merge(secret(), RunArgs::default()).expect("valid").private_api);
        let error = merge(args("/d"), on).expect_err("refused").to_string();
        assert!(error.contains("--private-api"), "{error}");
    }
}
