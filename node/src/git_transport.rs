//! Fetching from a remote with the git CLI: credentials, limits and clear errors.
//!
//! The transfer runs in a `git fetch` child process rather than in libgit2: git resolves
//! deltas several times faster (see `scripts/bench/fetch.sh`), speaks https and ssh, and
//! a child can be killed at the deadline. Everything else on a mirror stays with git2.
//!
//! ```text
//!   RemoteAuth ──> plan (pure: config pairs, ssh command, files) ──> private dir (0700)
//!        ──> git fetch (clean env, own process group) ──> stderr tail ──> classify
//! ```
//!
//! Secrets never reach argv, which other users of the machine can read: the token goes
//! into an `http.extraHeader` passed through `GIT_CONFIG_COUNT`/`GIT_CONFIG_KEY_n`/
//! `GIT_CONFIG_VALUE_n`, and an ssh key or known_hosts lines into 0600 files of a 0700
//! directory beside the mirror, removed when the fetch ends. The child inherits no
//! `GIT_*`, `SSL_*`, `SSH_AUTH_SOCK` or askpass variable. It reads the node user's and
//! the system's git config (proxies, `safe.directory`), but the fetch's own config comes
//! last and empties the credential helpers and askpass and forces TLS verification, so
//! no helper or prompt runs. Every error is scrubbed of the secrets before it is shown.

use std::ffi::OsString;
use std::fmt;
use std::fs::{DirBuilder, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use eventide_consensus::auth::Zeroizing;

/// Upstream's branches, force-updated: a mirror follows force pushes.
const HEADS_REFSPEC: &str = "+refs/heads/*:refs/heads/*";

/// How much of git's stderr an error keeps (its end, where git says what failed).
pub(crate) const STDERR_TAIL_BYTES: usize = 4096;

/// The user name sent with a token when the caller names none (GitHub's; GitLab takes
/// `oauth2`, most other forges any name).
pub const DEFAULT_TOKEN_USERNAME: &str = "x-access-token";

/// What replaces a secret in any text shown.
const REDACTED: &str = "[redacted]";

/// The system CA bundles that `--ca-file` adds to, first found wins (Debian, Fedora,
/// openSUSE, Alpine and BSD layouts).
const SYSTEM_CA_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

/// The variables of the node's environment a fetch keeps: where programs are, the
/// home directory (ssh reads `~/.ssh`), and proxies.
const KEPT_ENVIRONMENT: &[&str] = &[
    "PATH",
    "HOME",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "ALL_PROXY",
    "all_proxy",
];

/// How to authenticate to a remote; values already opened from the secret store.
#[derive(Default)]
pub struct RemoteAuth {
    /// https: HTTP basic auth with this user name and `token` as the password
    /// ([`DEFAULT_TOKEN_USERNAME`] if `None`).
    pub username: Option<String>,
    /// https: the password of HTTP basic auth (a forge's access token).
    pub token: Option<Zeroizing<Vec<u8>>>,
    /// ssh: a private key (OpenSSH or PEM text).
    pub ssh_key: Option<Zeroizing<Vec<u8>>>,
    /// ssh: known_hosts lines trusted on top of the user's and the system's files.
    pub known_hosts: Option<Zeroizing<Vec<u8>>>,
    /// https: a CA bundle trusted besides the system's.
    pub ca_file: Option<PathBuf>,
}

impl fmt::Debug for RemoteAuth {
    /// Says which values are set, never what they are.
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let set = |value: bool| if value { "set" } else { "none" };
        formatter
            .debug_struct("RemoteAuth")
            .field("username", &self.username)
            .field("token", &set(self.token.is_some()))
            .field("ssh_key", &set(self.ssh_key.is_some()))
            .field("known_hosts", &set(self.known_hosts.is_some()))
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

/// Where a url points, as far as credentials and messages care.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Remote {
    /// `http://` (`secure` false) or `https://`.
    Http { host: String, secure: bool },
    /// `ssh://` or scp-like `user@host:path`; `port` 22 unless the url says otherwise.
    Ssh { host: String, port: u16 },
    /// A local path, `file://`, `git://` or anything else git knows.
    Other,
}

impl Remote {
    /// The kind of `url` (as [`crate::repos::normalize_url`] writes it).
    pub(crate) fn of(url: &str) -> Remote {
        let lower = url.to_ascii_lowercase();
        if lower.starts_with("http://") || lower.starts_with("https://") {
            let host = url::Url::parse(url)
                .ok()
                .and_then(|parsed| parsed.host_str().map(str::to_owned))
                .unwrap_or_default();
            return Remote::Http { host, secure: lower.starts_with("https://") };
        }
        if lower.starts_with("ssh://") || lower.starts_with("git+ssh://") {
            let parsed = url::Url::parse(url).ok();
            let host = parsed
                .as_ref()
                .and_then(|parsed| parsed.host_str().map(str::to_owned))
                .unwrap_or_default();
            let port = parsed.and_then(|parsed| parsed.port()).unwrap_or(22);
            return Remote::Ssh { host, port };
        }
        if let Some((host, _)) = scp_like(url) {
            return Remote::Ssh { host: host.to_owned(), port: 22 };
        }
        Remote::Other
    }

    fn host(&self) -> &str {
        match self {
            Remote::Http { host, .. } | Remote::Ssh { host, .. } => host,
            Remote::Other => "the remote",
        }
    }
}

/// The host and path of an scp-like url (`[user@]host:path`): no `://`, and a `:` before
/// any `/`, as git reads it. The user part is dropped.
pub(crate) fn scp_like(url: &str) -> Option<(&str, &str)> {
    if url.contains("://") || url.starts_with('/') {
        return None;
    }
    let colon = url.find(':')?;
    if url[..colon].contains('/') {
        return None;
    }
    let (authority, path) = (&url[..colon], &url[colon + 1..]);
    let host = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    Some((host, path))
}

/// One file the fetch writes into its private directory.
pub(crate) struct PrivateFile {
    pub(crate) name: &'static str,
    pub(crate) contents: Zeroizing<Vec<u8>>,
}

/// Everything a fetch passes to git besides the url, computed without I/O.
#[derive(Default)]
pub(crate) struct Plan {
    /// `GIT_CONFIG_KEY_n`/`GIT_CONFIG_VALUE_n` pairs, in order.
    pub(crate) config: Vec<(String, Zeroizing<String>)>,
    /// `GIT_SSH_COMMAND`, for ssh remotes.
    pub(crate) ssh_command: Option<String>,
    /// Files to write into the private directory before git starts.
    pub(crate) files: Vec<PrivateFile>,
    /// Texts that must never be shown: the token and the header built from it.
    pub(crate) secrets: Vec<Zeroizing<String>>,
}

/// What the fetch of `url` passes to git. `private_dir` is where the files of
/// [`Plan::files`] will be; `system_ca` the bundle `ca_contents` is added to;
/// `timeout` how long the server may stay silent.
pub(crate) fn plan(
    url: &str,
    auth: &RemoteAuth,
    private_dir: &Path,
    system_ca: Option<Vec<u8>>,
    ca_contents: Option<Vec<u8>>,
    timeout: Duration,
) -> anyhow::Result<Plan> {
    let remote = Remote::of(url);
    let mut plan = Plan::default();
    let mut set = |key: &str, value: &str| {
        plan.config.push((key.to_owned(), Zeroizing::new(value.to_owned())));
    };
    // No credential helper, prompt or askpass may run; TLS is always verified.
    set("credential.helper", "");
    set("core.askPass", "");
    set("http.sslVerify", "true");
    // A server that sends less than a byte a second for the timeout is given up on.
    let seconds = timeout.as_secs_f64().ceil().max(1.0) as u64;
    set("http.lowSpeedLimit", "1");
    set("http.lowSpeedTime", &seconds.to_string());
    // Maintenance after a fetch runs inside it, bounded by the deadline, not detached.
    set("gc.autoDetach", "false");
    set("maintenance.autoDetach", "false");

    let wants_http = auth.token.is_some() || auth.ca_file.is_some() || auth.username.is_some();
    let wants_ssh = auth.ssh_key.is_some() || auth.known_hosts.is_some();
    match &remote {
        Remote::Http { secure, .. } => {
            if wants_ssh {
                bail!("an ssh key or known_hosts is set but {url} is not an ssh url");
            }
            if auth.token.is_some() && !secure {
                bail!("refusing to send the token over plain http: use an https url");
            }
        }
        Remote::Ssh { .. } => {
            if wants_http {
                bail!("a token or CA file is set but {url} is not an https url");
            }
        }
        Remote::Other => {
            if wants_http || wants_ssh {
                bail!("credentials are set but {url} is neither an https nor an ssh url");
            }
        }
    }

    if let Some(token) = &auth.token {
        let token = std::str::from_utf8(token).context("the token is not UTF-8 text")?.trim();
        if token.is_empty() {
            bail!("the token is empty");
        }
        if token.chars().any(char::is_control) {
            bail!("the token contains control characters");
        }
        let username = auth.username.as_deref().unwrap_or(DEFAULT_TOKEN_USERNAME);
        if username.is_empty() || username.contains(':') || username.chars().any(char::is_control) {
            bail!(
                "the user name for the token must be non-empty, without ':' or control characters"
            );
        }
        let pair = Zeroizing::new(format!("{username}:{token}"));
        let encoded = Zeroizing::new(data_encoding::BASE64.encode(pair.as_bytes()));
        let header = Zeroizing::new(format!("Authorization: Basic {}", encoded.as_str()));
        plan.config
            .push(("http.extraHeader".to_owned(), Zeroizing::new(header.as_str().to_owned())));
        plan.secrets.push(Zeroizing::new(token.to_owned()));
        plan.secrets.push(encoded);
        plan.secrets.push(header);
    }

    if let Some(extra) = ca_contents {
        let mut bundle = Zeroizing::new(system_ca.unwrap_or_default());
        if !bundle.is_empty() && !bundle.ends_with(b"\n") {
            bundle.push(b'\n');
        }
        bundle.extend_from_slice(&extra);
        let path = private_dir.join("ca.pem");
        plan.config.push((
            "http.sslCAInfo".to_owned(),
            Zeroizing::new(path.to_string_lossy().into_owned()),
        ));
        plan.files.push(PrivateFile { name: "ca.pem", contents: bundle });
    }

    if matches!(remote, Remote::Ssh { .. }) {
        plan.ssh_command = Some(ssh_command(auth, private_dir, seconds));
        if let Some(key) = &auth.ssh_key {
            plan.files.push(PrivateFile { name: "key", contents: with_newline(key) });
        }
        if let Some(lines) = &auth.known_hosts {
            plan.files.push(PrivateFile { name: "known_hosts", contents: with_newline(lines) });
        }
    }
    Ok(plan)
}

/// The `GIT_SSH_COMMAND` (a shell command line) for `auth`: only the given key (if one
/// is), no prompt, only known host keys, and the timeout on connecting and on silence.
fn ssh_command(auth: &RemoteAuth, private_dir: &Path, timeout_seconds: u64) -> String {
    let mut known = Vec::new();
    if auth.known_hosts.is_some() {
        known.push(format!("\"{}\"", private_dir.join("known_hosts").display()));
    }
    known.extend(["~/.ssh/known_hosts".to_owned(), "/etc/ssh/ssh_known_hosts".to_owned()]);
    let mut words = vec!["ssh".to_owned()];
    if auth.ssh_key.is_some() {
        words.extend(["-i".to_owned(), shell_quote(&private_dir.join("key").to_string_lossy())]);
        words.extend(["-o".to_owned(), "IdentitiesOnly=yes".to_owned()]);
    }
    let options = [
        "BatchMode=yes".to_owned(),
        "StrictHostKeyChecking=yes".to_owned(),
        "UpdateHostKeys=no".to_owned(),
        "LogLevel=ERROR".to_owned(),
        format!("UserKnownHostsFile={}", known.join(" ")),
        format!("ConnectTimeout={timeout_seconds}"),
        format!("ServerAliveInterval={timeout_seconds}"),
        "ServerAliveCountMax=1".to_owned(),
    ];
    for option in options {
        words.extend(["-o".to_owned(), shell_quote(&option)]);
    }
    words.join(" ")
}

/// `text` in single quotes for a POSIX shell.
fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// A copy of `bytes` ending in a newline (ssh refuses a key file without one).
fn with_newline(bytes: &[u8]) -> Zeroizing<Vec<u8>> {
    let mut copy = Zeroizing::new(bytes.to_vec());
    if !copy.ends_with(b"\n") {
        copy.push(b'\n');
    }
    copy
}

/// `text` with every secret replaced, and any `Authorization:` header value hidden.
pub(crate) fn scrub(text: &str, secrets: &[Zeroizing<String>]) -> String {
    let mut scrubbed = text.to_owned();
    for secret in secrets.iter().filter(|secret| !secret.is_empty()) {
        scrubbed = scrubbed.replace(secret.as_str(), REDACTED);
    }
    scrubbed
        .lines()
        .map(|line| match line.to_ascii_lowercase().find("authorization:") {
            Some(at) => format!("{}authorization: {REDACTED}", &line[..at]),
            None => line.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The last [`STDERR_TAIL_BYTES`] of `bytes`, from a line start, as text.
pub(crate) fn tail(bytes: &[u8]) -> String {
    if bytes.len() <= STDERR_TAIL_BYTES {
        return String::from_utf8_lossy(bytes).into_owned();
    }
    let end = &bytes[bytes.len() - STDERR_TAIL_BYTES..];
    let from_line = end.iter().position(|&byte| byte == b'\n').map_or(end, |at| &end[at + 1..]);
    String::from_utf8_lossy(from_line).into_owned()
}

/// What a failed fetch's (scrubbed) stderr means, in words that say what to do; `None`
/// if it is none of the known failures.
pub(crate) fn classify(stderr: &str, url: &str, timeout: Duration) -> Option<String> {
    let remote = Remote::of(url);
    let host = remote.host();
    let has = |needle: &str| stderr.contains(needle);
    if let Remote::Ssh { port, .. } = &remote {
        if has("REMOTE HOST IDENTIFICATION HAS CHANGED") {
            return Some(format!(
                "host key of {host}:{port} does not match the known one: if the server's key \
                 really changed, replace its known_hosts line"
            ));
        }
        if has("Host key verification failed") || has("host key is known for") {
            return Some(format!(
                "host key of {host}:{port} is not known: add it with \
                 `ssh-keyscan -p {port} {host} | eventide-node secret set NAME` and \
                 `eventide-node repo set URL --known-hosts NAME`, or to ~/.ssh/known_hosts \
                 on every node"
            ));
        }
        if has("Permission denied (") || has("Load key") {
            return Some(format!(
                "ssh key refused by {host}: {}",
                last_line_with(stderr, &["Permission denied", "Load key",])
            ));
        }
    }
    if has("detected dubious ownership") {
        return Some(format!(
            "the repository at {url} belongs to another user: git refuses it unless the \
             node user's git config trusts it (git config --global --add safe.directory PATH)"
        ));
    }
    if has("returned error: 401")
        || has("could not read Username")
        || has("could not read Password")
        || has("Authentication failed for")
    {
        return Some(format!("authentication to {host} failed (HTTP 401): check the token"));
    }
    if has("returned error: 403") {
        return Some(format!(
            "authentication to {host} failed (HTTP 403): check the token and what it may read"
        ));
    }
    if has("certificate verification failed")
        || has("SSL certificate problem")
        || has("server certificate")
        || has("self-signed certificate")
        || has("unable to get local issuer certificate")
    {
        return Some(format!(
            "the certificate of {host} was not trusted: give the CA that signed it with \
             --ca-file (or add it to the system's CA store)"
        ));
    }
    if has("returned error: 404")
        || has("Repository not found")
        || has("does not appear to be a git repository")
    {
        return Some(format!("repository not found at {host}: check the url and the credentials"));
    }
    if has("Operation too slow")
        || has("timed out")
        || has("Timeout, server")
        || has("Connection timed out")
    {
        return Some(format!("the server {host} sent nothing for {timeout:?}: timed out"));
    }
    if has("Could not resolve host") || has("Could not resolve hostname") {
        return Some(format!("could not resolve host {host}"));
    }
    if has("Connection refused") || has("Failed to connect") {
        return Some(format!("could not connect to {host}: connection refused"));
    }
    None
}

/// The last line of `text` containing one of `needles`, trimmed.
fn last_line_with<'t>(text: &'t str, needles: &[&str]) -> &'t str {
    text.lines()
        .rev()
        .find(|line| needles.iter().any(|needle| line.contains(needle)))
        .map(str::trim)
        .unwrap_or_default()
}

/// A 0700 directory for a fetch's secret files, removed when dropped (on error too).
pub(crate) struct PrivateDir {
    path: PathBuf,
}

impl PrivateDir {
    /// Creates `path` afresh (a leftover of a crashed fetch is removed first).
    pub(crate) fn create(path: PathBuf) -> anyhow::Result<PrivateDir> {
        if path.exists() {
            std::fs::remove_dir_all(&path)
                .with_context(|| format!("failed to remove the old {}", path.display()))?;
        }
        DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .with_context(|| format!("failed to create {}", path.display()))?;
        Ok(PrivateDir { path })
    }

    pub(crate) fn write(&self, file: &PrivateFile) -> anyhow::Result<()> {
        let path = self.path.join(file.name);
        let mut handle = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("failed to create {}", path.display()))?;
        handle
            .write_all(&file.contents)
            .with_context(|| format!("failed to write {}", path.display()))
    }
}

impl Drop for PrivateDir {
    fn drop(&mut self) {
        if let Err(error) = std::fs::remove_dir_all(&self.path) {
            let path = self.path.display();
            tracing::warn!(error = %error, path = %path, "failed to remove a fetch's key directory");
        }
    }
}

/// The private directory of the mirror's fetches: beside it, in the node's data dir.
pub(crate) fn private_dir_of(mirror: &Path) -> PathBuf {
    let mut name = mirror.file_name().unwrap_or_default().to_os_string();
    name.push(".credentials");
    mirror.with_file_name(name)
}

/// Runs `git fetch` of `url` into the existing bare `mirror`, killing it (and whatever
/// it started) at `give_up`, the end of the caller's `deadline`. `timeout` bounds a
/// silent server.
pub(crate) fn fetch(
    mirror: &Path,
    url: &str,
    auth: &RemoteAuth,
    timeout: Duration,
    deadline: Duration,
    give_up: Instant,
) -> anyhow::Result<()> {
    let ca_contents = match &auth.ca_file {
        Some(path) => Some(std::fs::read(path).with_context(|| {
            format!("failed to read the CA file {} (--ca-file)", path.display())
        })?),
        None => None,
    };
    let system_ca = ca_contents
        .as_ref()
        .and_then(|_| SYSTEM_CA_BUNDLES.iter().find_map(|path| std::fs::read(path).ok()));
    let private_path = private_dir_of(mirror);
    let plan = plan(url, auth, &private_path, system_ca, ca_contents, timeout)?;
    let _private = if plan.files.is_empty() {
        None
    } else {
        let dir = PrivateDir::create(private_path)?;
        for file in &plan.files {
            dir.write(file)?;
        }
        Some(dir)
    };

    let mut command = Command::new("git");
    command
        .arg("--git-dir")
        .arg(mirror)
        .args(["fetch", "--quiet", "--prune", "--no-tags", "--no-write-fetch-head"])
        .args(["--no-recurse-submodules", "--", url, HEADS_REFSPEC])
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0);
    for (name, value) in child_environment(&plan, |name| std::env::var_os(name)) {
        command.env(name, value);
    }

    let (status, stderr) = run_until(command, give_up)
        .with_context(|| format!("failed to fetch {url}: could not run git (is it installed?)"))?;
    let Some(status) = status else {
        bail!("failed to fetch {url}: no result within the fetch deadline of {deadline:?}");
    };
    if status.success() {
        return Ok(());
    }
    let stderr = scrub(&tail(&stderr), &plan.secrets);
    let reason = classify(&stderr, url, timeout).unwrap_or_else(|| {
        let lines: Vec<&str> = stderr.lines().filter(|line| !line.trim().is_empty()).collect();
        let text = lines[lines.len().saturating_sub(4)..].join("; ");
        format!("git fetch {status}: {}", if text.is_empty() { "no message" } else { &text })
    });
    Err(anyhow!(reason)).context(format!("failed to fetch {url}"))
}

/// The whole environment of the `git fetch` child: the few variables of the node's
/// environment (`inherited`) in [`KEPT_ENVIRONMENT`], then the fetch's own: English
/// messages (the errors are classified by their text), no prompt, only the protocols a
/// repository url may name, the config of `plan` and its ssh command.
pub(crate) fn child_environment(
    plan: &Plan,
    inherited: impl Fn(&str) -> Option<OsString>,
) -> Vec<(String, OsString)> {
    let mut environment: Vec<(String, OsString)> = KEPT_ENVIRONMENT
        .iter()
        .filter_map(|name| inherited(name).map(|value| ((*name).to_owned(), value)))
        .collect();
    let mut set = |name: String, value: &str| environment.push((name, OsString::from(value)));
    set("LC_ALL".to_owned(), "C");
    set("GIT_TERMINAL_PROMPT".to_owned(), "0");
    set("GIT_ALLOW_PROTOCOL".to_owned(), "file:git:http:https:ssh");
    set("GIT_CONFIG_COUNT".to_owned(), &plan.config.len().to_string());
    for (index, (key, value)) in plan.config.iter().enumerate() {
        set(format!("GIT_CONFIG_KEY_{index}"), key);
        set(format!("GIT_CONFIG_VALUE_{index}"), value);
    }
    if let Some(ssh) = &plan.ssh_command {
        set("GIT_SSH_COMMAND".to_owned(), ssh);
        set("GIT_SSH_VARIANT".to_owned(), "ssh");
    }
    environment
}

/// Runs `command` (which must pipe stderr and start its own process group) until it
/// exits or `give_up` passes; then its whole group is killed and `None` returned. Also
/// returns the end of what it wrote to stderr.
fn run_until(
    mut command: Command,
    give_up: Instant,
) -> anyhow::Result<(Option<ExitStatus>, Vec<u8>)> {
    let mut child = command.spawn()?;
    drop(command);
    let group = rustix::process::Pid::from_child(&child);
    let mut stderr = child.stderr.take().context("stderr of git is not piped")?;
    let (stderr_sender, stderr_receiver) = mpsc::channel();
    std::thread::Builder::new()
        .name("git-stderr".to_owned())
        .spawn(move || {
            let mut kept = Vec::new();
            let mut buffer = [0u8; 8192];
            while let Ok(read) = stderr.read(&mut buffer) {
                if read == 0 {
                    break;
                }
                kept.extend_from_slice(&buffer[..read]);
                if kept.len() > 2 * STDERR_TAIL_BYTES {
                    kept.drain(..kept.len() - STDERR_TAIL_BYTES);
                }
            }
            let _ = stderr_sender.send(kept);
        })
        .context("failed to start a thread reading git's stderr")?;
    let (exit_sender, exit_receiver) = mpsc::channel();
    std::thread::Builder::new()
        .name("git-wait".to_owned())
        .spawn(move || {
            let _ = exit_sender.send(child.wait());
        })
        .context("failed to start a thread waiting for git")?;
    let remaining = give_up.saturating_duration_since(Instant::now());
    let status = match exit_receiver.recv_timeout(remaining) {
        Ok(status) => Some(status.context("failed to wait for git")?),
        Err(_) => {
            // The group is git and what it started (git-remote-https, ssh); until the
            // waiter has reaped git its process id cannot be reused.
            let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
            let _ = exit_receiver.recv();
            None
        }
    };
    // A straggler that kept stderr open (killed above at the deadline) must not hold
    // the fetch; what it wrote so far is enough.
    let stderr = stderr_receiver.recv_timeout(Duration::from_secs(2)).unwrap_or_default();
    Ok((status, stderr))
}
