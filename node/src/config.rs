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

use crate::git::FetchLimits;
use crate::runner::gate::MinFreeDisk;
use crate::server::HttpLimits;
use crate::units::parse_duration;

/// The address a node listens on when none is given.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7800";

/// Flags of `eventide-node run`. Every one may also come from the environment or the
/// `--config` file; none has a clap default, so that the file can fill the gaps.
#[derive(Args, Debug, Default, Clone)]
pub struct RunArgs {
    /// Directory holding everything this node owns: its id, the Raft log and state,
    /// repository mirrors and job workspaces.
    #[arg(long, env = "EVENTIDE_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// TCP (HTTP API, dashboard, Raft) and UDP (gossip) address [default: 127.0.0.1:7800].
    #[arg(long, env = "EVENTIDE_LISTEN", value_name = "HOST:PORT")]
    pub listen: Option<SocketAddr>,
    /// The address other nodes dial [default: --listen].
    #[arg(long, env = "EVENTIDE_ADVERTISE", value_name = "HOST:PORT")]
    pub advertise: Option<SocketAddr>,
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
    /// Free space the data dir's disk must keep for this node's runner to claim jobs: a
    /// size (512MiB, 1GiB) or a percentage of the disk (5%); 0 never pauses [default: 1GiB].
    #[arg(long, env = "EVENTIDE_MIN_FREE_DISK", value_name = "SIZE|PERCENT")]
    pub min_free_disk: Option<String>,
    /// HTTP connections open at once; a quarter is kept for internal RPC, and it is
    /// lowered to half the open-file limit [default: 1024].
    #[arg(long, env = "EVENTIDE_HTTP_MAX_CONNECTIONS", value_name = "N")]
    pub http_max_connections: Option<usize>,
    /// How long a request's head may take to arrive, and a kept-alive connection may stay
    /// idle [default: 10s].
    #[arg(long, env = "EVENTIDE_HTTP_HEADER_TIMEOUT", value_name = "DURATION")]
    pub http_header_timeout: Option<String>,
    /// A TOML file with any of these settings (keys as the flags, with underscores).
    #[arg(long, env = "EVENTIDE_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// A file holding the cluster secret (at least 16 bytes); the secret itself may also
    /// come from EVENTIDE_SECRET. Without one, nothing is authenticated.
    #[arg(long, env = "EVENTIDE_SECRET_FILE", value_name = "FILE")]
    pub secret_file: Option<PathBuf>,
    /// Require the API token for reads of the public API too (needs a secret).
    #[arg(long, env = "EVENTIDE_PRIVATE_API")]
    pub private_api: bool,
    /// The secret from `EVENTIDE_SECRET` (never a flag: flags show in `ps`), taken out of
    /// the environment by [`take_secret_env`] when the process starts.
    #[arg(skip)]
    pub secret_env: Option<String>,
}

/// The `--config` file: the same settings as the flags.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    data_dir: Option<PathBuf>,
    listen: Option<String>,
    advertise: Option<String>,
    #[serde(default)]
    seeds: Vec<String>,
    name: Option<String>,
    bootstrap_expect: Option<u32>,
    voters: Option<u32>,
    dead_voter_grace: Option<String>,
    runner_slots: Option<u32>,
    #[serde(default)]
    labels: Vec<String>,
    #[serde(default)]
    repos: Vec<String>,
    poll_interval: Option<String>,
    fetch_timeout: Option<String>,
    fetch_deadline: Option<String>,
    heartbeat: Option<String>,
    election_timeout: Option<String>,
    gossip_interval: Option<String>,
    secret_file: Option<PathBuf>,
    private_api: Option<bool>,
    min_free_disk: Option<String>,
    http_max_connections: Option<usize>,
    http_header_timeout: Option<String>,
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
    pub dead_voter_grace: Duration,
    pub runner_slots: u32,
    pub labels: BTreeSet<String>,
    pub repos: Vec<String>,
    pub poll_interval: Duration,
    pub fetch: FetchLimits,
    pub raft: RaftTiming,
    pub gossip_interval: Duration,
    /// The cluster secret; `None` runs without authentication (`auth: off`).
    pub secret: Option<Secret>,
    /// Reads of the public API need the token too.
    pub private_api: bool,
    pub min_free_disk: MinFreeDisk,
    pub http: HttpLimits,
}

impl RunConfig {
    /// Merges flags and environment (already in `args`) with the `--config` file.
    pub fn try_from_args(args: RunArgs) -> anyhow::Result<RunConfig> {
        let file = match &args.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        merge(args, file)
    }
}

fn read_file(path: &Path) -> anyhow::Result<FileConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("--config {}: failed to read", path.display()))?;
    toml::from_str(&text)
        .map_err(|e| anyhow::anyhow!("--config {}: {}", path.display(), e.message().trim_end()))
}

fn merge(args: RunArgs, file: FileConfig) -> anyhow::Result<RunConfig> {
    let data_dir = args
        .data_dir
        .or(file.data_dir)
        .context("--data-dir is required (or EVENTIDE_DATA_DIR, or data_dir in --config)")?;
    let listen = match (args.listen, file.listen) {
        (Some(listen), _) => listen,
        (None, Some(text)) => parse_addr("listen", &text)?,
        (None, None) => DEFAULT_LISTEN.parse().expect("the default address parses"),
    };
    let advertise = match (args.advertise, file.advertise) {
        (Some(addr), _) => addr,
        (None, Some(text)) => parse_addr("advertise", &text)?,
        (None, None) if listen.ip().is_unspecified() => {
            bail!("--advertise is required when --listen is a wildcard address ({listen})")
        }
        (None, None) => listen,
    };
    if advertise.ip().is_unspecified() || advertise.port() == 0 {
        bail!("--advertise {advertise}: other nodes cannot dial this address");
    }
    let seeds = if args.seeds.is_empty() { file.seeds } else { args.seeds };
    for seed in &seeds {
        check_host_port("seed", seed)?;
    }
    let bootstrap_expect = args.bootstrap_expect.or(file.bootstrap_expect).unwrap_or(3);
    if !(1..=64).contains(&bootstrap_expect) {
        bail!("--bootstrap-expect {bootstrap_expect}: must be between 1 and 64");
    }
    let voters = args.voters.or(file.voters).unwrap_or(bootstrap_expect.min(7));
    if ![1, 3, 5, 7].contains(&voters) {
        bail!("--voters {voters}: must be 1, 3, 5 or 7");
    }
    let name = args.name.or(file.name).unwrap_or_else(|| default_name(listen));
    if name.is_empty() || name.len() > 64 || name.chars().any(char::is_control) {
        bail!("--name {name:?}: must be 1 to 64 printable characters");
    }
    let runner_slots = args.runner_slots.or(file.runner_slots).unwrap_or(1);
    if runner_slots > 256 {
        bail!("--runner-slots {runner_slots}: at most 256");
    }
    let labels = if args.labels.is_empty() { file.labels } else { args.labels };
    let labels: BTreeSet<String> =
        labels.into_iter().map(|l| l.trim().to_owned()).filter(|l| !l.is_empty()).collect();
    if let Some(bad) =
        labels.iter().find(|l| !l.chars().all(|c| c.is_alphanumeric() || "-_.:".contains(c)))
    {
        bail!("--labels {bad:?}: labels are letters, digits and - _ . :");
    }
    let repos = if args.repos.is_empty() { file.repos } else { args.repos };

    let duration = |flag: &str, flag_value: Option<String>, file_value: Option<String>, default| {
        flag_value.or(file_value).map_or(Ok(default), |text| parse_duration_flag(flag, &text))
    };
    let dead_voter_grace = duration(
        "dead-voter-grace",
        args.dead_voter_grace,
        file.dead_voter_grace,
        Duration::from_secs(15),
    )?;
    let poll_interval =
        duration("poll-interval", args.poll_interval, file.poll_interval, Duration::from_secs(1))?;
    let fetch = FetchLimits::try_new(
        duration(
            "fetch-timeout",
            args.fetch_timeout,
            file.fetch_timeout,
            FetchLimits::DEFAULT.timeout,
        )?,
        duration(
            "fetch-deadline",
            args.fetch_deadline,
            file.fetch_deadline,
            FetchLimits::DEFAULT.deadline,
        )?,
    )?;
    let gossip_interval = duration(
        "gossip-interval",
        args.gossip_interval,
        file.gossip_interval,
        Duration::from_millis(200),
    )?;
    if gossip_interval < Duration::from_millis(10) || gossip_interval > Duration::from_secs(10) {
        bail!("--gossip-interval: must be between 10ms and 10s");
    }
    let mut raft = RaftTiming::default();
    if let Some(text) = args.heartbeat.or(file.heartbeat) {
        raft.heartbeat = parse_duration_flag("heartbeat", &text)?;
    }
    if let Some(text) = args.election_timeout.or(file.election_timeout) {
        let (min, max) = text.split_once('-').with_context(|| {
            format!("--election-timeout {text:?}: expected MIN-MAX, e.g. 120ms-240ms")
        })?;
        raft.election_min = parse_duration_flag("election-timeout", min)?;
        raft.election_max = parse_duration_flag("election-timeout", max)?;
    }
    raft.to_config("eventide")
        .map_err(|e| anyhow::anyhow!("--heartbeat/--election-timeout: {e}"))?;
    let secret = match (args.secret_file, args.secret_env, file.secret_file) {
        (Some(path), _, _) => Some(read_secret_file(&path)?),
        (None, Some(text), _) => Some(secret_from_env(&text)?),
        (None, None, Some(path)) => Some(read_secret_file(&path)?),
        (None, None, None) => None,
    };
    let private_api = args.private_api || file.private_api.unwrap_or(false);
    if private_api && secret.is_none() {
        bail!("--private-api needs a cluster secret (--secret-file or EVENTIDE_SECRET)");
    }
    let min_free_disk = match args.min_free_disk.or(file.min_free_disk) {
        None => MinFreeDisk::DEFAULT,
        Some(text) => MinFreeDisk::parse(&text).with_context(|| {
            format!("--min-free-disk {text:?}: expected a size such as 512MiB or 1GiB, or a percentage such as 5%")
        })?,
    };
    let http = http_limits(
        args.http_max_connections,
        file.http_max_connections,
        args.http_header_timeout,
        file.http_header_timeout,
    )?;

    Ok(RunConfig {
        data_dir,
        listen,
        advertise,
        seeds,
        name,
        bootstrap_expect,
        voters,
        dead_voter_grace,
        runner_slots,
        labels,
        repos,
        poll_interval,
        fetch,
        raft,
        gossip_interval,
        secret,
        private_api,
        min_free_disk,
        http,
    })
}

fn http_limits(
    flag_max: Option<usize>,
    file_max: Option<usize>,
    flag_timeout: Option<String>,
    file_timeout: Option<String>,
) -> anyhow::Result<HttpLimits> {
    let max_connections = flag_max.or(file_max).unwrap_or(HttpLimits::DEFAULT_MAX_CONNECTIONS);
    if !(HttpLimits::MIN_MAX_CONNECTIONS..=1_000_000).contains(&max_connections) {
        bail!(
            "--http-max-connections {max_connections}: must be between {} and 1000000",
            HttpLimits::MIN_MAX_CONNECTIONS
        );
    }
    let header_timeout = match flag_timeout.or(file_timeout) {
        Some(text) => parse_duration_flag("http-header-timeout", &text)?,
        None => HttpLimits::DEFAULT_HEADER_TIMEOUT,
    };
    if header_timeout < Duration::from_secs(1) || header_timeout > Duration::from_secs(600) {
        bail!("--http-header-timeout: must be between 1s and 10m");
    }
    Ok(HttpLimits { max_connections, header_timeout })
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

    fn args(data_dir: &str) -> RunArgs {
        RunArgs { data_dir: Some(data_dir.into()), ..RunArgs::default() }
    }

    #[test]
    fn defaults_fill_what_is_not_given() {
        let config = merge(args("/tmp/a"), FileConfig::default()).expect("valid");
        assert_eq!(config.listen, DEFAULT_LISTEN.parse().expect("parses"));
        assert_eq!(config.advertise, config.listen);
        assert_eq!(config.bootstrap_expect, 3);
        assert_eq!(config.voters, 3);
        assert_eq!(config.runner_slots, 1);
        assert_eq!(config.dead_voter_grace, Duration::from_secs(15));
        assert_eq!(config.poll_interval, Duration::from_secs(1));
        assert_eq!(config.raft, RaftTiming::default());
        assert_eq!(config.min_free_disk, MinFreeDisk::DEFAULT);
        assert_eq!(config.http, HttpLimits::default());
        assert_eq!(config.fetch, FetchLimits::DEFAULT);
    }

    #[test]
    fn flags_win_over_the_file() {
        let file: FileConfig = toml::from_str(
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
            let error =
                merge(args, FileConfig::default()).expect_err("must be refused").to_string();
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
            merge(RunArgs { secret_file: Some(path.clone()), ..args("/d") }, FileConfig::default())
                .expect("valid");
        assert_eq!(from_flag.secret.as_ref(), Some(&expected));
        let from_file =
            merge(args("/d"), FileConfig { secret_file: Some(path), ..FileConfig::default() })
                .expect("valid");
        assert_eq!(from_file.secret.as_ref(), Some(&expected));
        let from_env = merge(
            RunArgs { secret_env: Some("0123456789abcdef-env".into()), ..args("/d") },
            FileConfig::default(),
        )
        .expect("valid");
        assert!(from_env.secret.is_some());
        assert!(merge(args("/d"), FileConfig::default()).expect("valid").secret.is_none());
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
                FileConfig::default(),
            )
            .expect_err("refused")
            .to_string();
            assert!(error.starts_with("--secret-file"), "{error}");
            assert!(!error.contains('\n'), "one line: {error}");
        }
        let error = merge(RunArgs { private_api: true, ..args("/d") }, FileConfig::default())
            .expect_err("refused")
            .to_string();
        assert!(error.contains("--private-api"), "{error}");
    }

    #[test]
    fn unknown_file_keys_are_refused() {
        assert!(toml::from_str::<FileConfig>("lisen = \"1.2.3.4:5\"").is_err());
    }
}
