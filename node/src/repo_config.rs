//! The per-repository job configuration: `.eventide.toml` at the tested commit.
//!
//! The file travels with the code it tests, so a commit that changes how tests run
//! is tested the new way. The runner reads it after checkout and turns every problem
//! into a job `error` whose message is the [`ConfigError`] text, so the messages here
//! are written for the repository's author: they name the key and say what is expected.
//! The dispatcher only needs the labels, through [`labels_of`].

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::Deserialize;

use crate::isolation::{self, Limits, Network, RESERVED_LABEL_PREFIX, SANDBOX_LABEL};
use crate::units::parse_duration;

/// Where the configuration lives, relative to the checkout's root.
pub const CONFIG_FILE: &str = ".eventide.toml";

/// Timeout when the file gives none (see "Limits" in the design).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// A job that needs longer is almost certainly stuck; a day bounds how long a slot is lost.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(24 * 60 * 60);
/// Most labels a job may require, and the longest label: the replicated state's limits,
/// so that a configuration breaking them is a configuration error, not a refused job.
pub use eventide_consensus::state::{MAX_LABELS, MAX_LABEL_BYTES};
pub const MAX_JUNIT_PATTERNS: usize = 16;
/// Most secrets one job may ask for.
pub const MAX_JOB_SECRETS: usize = 32;
/// The runner passes its own variables with this prefix; a repository may not fake them.
pub const RESERVED_ENV_PREFIX: &str = "EVENTIDE_";
/// What a repository without `.eventide.toml` but with `tests/` runs, as the first
/// prototype did.
pub const DEFAULT_PYTHON_COMMAND: &str = "python3 -m unittest discover -s tests -v";

/// How to test one commit.
#[derive(Debug, Clone, PartialEq)]
pub struct RepoConfig {
    /// Run by `sh -c` in the checkout.
    pub command: String,
    pub timeout: Duration,
    /// Added to the runner's environment for the job.
    pub env: BTreeMap<String, String>,
    /// A runner must offer every one of these to be given the job.
    pub labels: Vec<String>,
    /// Glob patterns, relative to the checkout, of JUnit XML reports to read after the run.
    pub junit: Vec<String>,
    /// Names in the cluster's secret store, given to the job as environment variables of
    /// the same name when the secret allows the job's branch.
    pub secrets: Vec<String>,
    /// The job runs only on a runner whose sandbox is bubblewrap (`sandbox = "bwrap"`).
    pub require_sandbox: bool,
    pub network: Network,
    /// What the job asks for; the runner caps it with its own maximum.
    pub limits: Limits,
    pub source: ConfigSource,
}

/// Whether the configuration was written by the repository or assumed for it, so that
/// job views can say "defaulted to Python unittest".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigSource {
    File,
    DefaultPythonUnittest,
}

/// Why a commit has no usable configuration. Its `Display` is the user-facing message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    message: String,
}

impl ConfigError {
    /// Prefixes `detail` so that every message says which file is at fault.
    pub(crate) fn invalid(detail: impl fmt::Display) -> Self {
        ConfigError { message: format!("invalid {CONFIG_FILE}: {detail}") }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.message)
    }
}

impl std::error::Error for ConfigError {}

/// The file as written; strict so that a typo (`comand`, `[tests]`) is an error rather
/// than a silently ignored key.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileTable {
    test: Option<TestTable>,
}

/// The keys of one job, in `[test]` and in each `[[step]]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TestTable {
    command: Option<String>,
    timeout: Option<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    labels: Vec<String>,
    #[serde(default)]
    junit: Vec<String>,
    #[serde(default)]
    secrets: Vec<String>,
    sandbox: Option<String>,
    network: Option<String>,
    memory: Option<String>,
    pids: Option<i64>,
    cpus: Option<toml::Value>,
    disk: Option<String>,
}

/// Parses and validates the text of `.eventide.toml`.
pub fn parse(text: &str) -> Result<RepoConfig, ConfigError> {
    let file: FileTable = toml::from_str(text).map_err(|err| toml_error(text, &err))?;
    let test = file.test.ok_or_else(|| ConfigError::invalid("missing [test] table"))?;
    job_from_table("[test]", test)
}

/// Validates one job's table (`[test]`, or a `[[step]]`, named `section` in messages).
pub(crate) fn job_from_table(section: &str, test: TestTable) -> Result<RepoConfig, ConfigError> {
    let command = test
        .command
        .ok_or_else(|| ConfigError::invalid(format!("{section} command is missing")))?;
    if command.trim().is_empty() {
        return Err(ConfigError::invalid(format!("{section} command must not be empty")));
    }
    if command.contains('\0') {
        return Err(ConfigError::invalid(format!(
            "{section} command must not contain a nul character"
        )));
    }

    let timeout = match test.timeout {
        None => DEFAULT_TIMEOUT,
        Some(text) => parse_timeout(section, &text)?,
    };

    for (name, value) in &test.env {
        check_env(section, name, value)?;
    }

    if test.labels.len() > MAX_LABELS {
        return Err(ConfigError::invalid(format!(
            "{section} labels: at most {MAX_LABELS} allowed"
        )));
    }
    for label in &test.labels {
        if label.len() > MAX_LABEL_BYTES {
            return Err(ConfigError::invalid(format!(
                "{section} labels {label:?}: at most {MAX_LABEL_BYTES} bytes"
            )));
        }
        let valid =
            !label.is_empty() && label.chars().all(|c| c.is_alphanumeric() || "-_.:".contains(c));
        if !valid {
            return Err(ConfigError::invalid(format!(
                "{section} labels {label:?}: labels are letters, digits and - _ . :"
            )));
        }
        if label.starts_with(RESERVED_LABEL_PREFIX) {
            return Err(ConfigError::invalid(format!(
                "{section} labels {label:?}: labels starting with {RESERVED_LABEL_PREFIX} are \
                 reserved; require a sandbox with sandbox = \"bwrap\""
            )));
        }
    }

    if test.junit.len() > MAX_JUNIT_PATTERNS {
        return Err(ConfigError::invalid(format!(
            "{section} junit: at most {MAX_JUNIT_PATTERNS} patterns allowed"
        )));
    }
    for pattern in &test.junit {
        check_pattern(section, "junit", pattern)?;
    }
    check_secrets(section, &test.secrets, &test.env)?;
    let require_sandbox = match test.sandbox.as_deref() {
        None | Some("any") => false,
        Some("bwrap") => true,
        Some(other) => {
            return Err(ConfigError::invalid(format!(
                "{section} sandbox {other:?}: expected \"bwrap\" (or \"any\", the default)"
            )))
        }
    };
    let network = match test.network.as_deref() {
        None => Network::Host,
        Some(text) => Network::parse(text).ok_or_else(|| {
            ConfigError::invalid(format!(
                "{section} network {text:?}: expected \"host\" or \"none\""
            ))
        })?,
    };
    let limits = Limits {
        memory: size_key(section, "memory", test.memory.as_deref())?,
        pids: match test.pids {
            None => None,
            Some(pids) => Some(
                u32::try_from(pids)
                    .ok()
                    .and_then(|pids| isolation::parse_pids(&pids.to_string()))
                    .ok_or_else(|| {
                        ConfigError::invalid(format!(
                            "{section} pids {pids}: expected a number from 1 to {}",
                            isolation::MAX_PIDS
                        ))
                    })?,
            ),
        },
        cpus_milli: match &test.cpus {
            None => None,
            Some(value) => {
                let text = match value {
                    toml::Value::Integer(n) => n.to_string(),
                    toml::Value::Float(f) => f.to_string(),
                    toml::Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                Some(isolation::parse_cpus(&text).ok_or_else(|| {
                    ConfigError::invalid(format!(
                        "{section} cpus {text}: expected a number of CPUs such as 2 or 1.5"
                    ))
                })?)
            }
        },
        disk: size_key(section, "disk", test.disk.as_deref())?,
    };

    Ok(RepoConfig {
        command,
        timeout,
        env: test.env,
        labels: test.labels,
        junit: test.junit,
        secrets: test.secrets,
        require_sandbox,
        network,
        limits,
        source: ConfigSource::File,
    })
}

fn size_key(section: &str, key: &str, text: Option<&str>) -> Result<Option<u64>, ConfigError> {
    let Some(text) = text else { return Ok(None) };
    isolation::parse_limit_size(text).map(Some).ok_or_else(|| {
        ConfigError::invalid(format!("{section} {key} {text:?}: expected a size such as 2GiB"))
    })
}

/// Secret names follow the secret store's rule; a name may not also be an `env` key
/// (which value would win is not obvious) or a runner variable.
fn check_secrets(
    section: &str,
    secrets: &[String],
    env: &BTreeMap<String, String>,
) -> Result<(), ConfigError> {
    if secrets.len() > MAX_JOB_SECRETS {
        return Err(ConfigError::invalid(format!(
            "{section} secrets: at most {MAX_JOB_SECRETS} allowed"
        )));
    }
    for (index, name) in secrets.iter().enumerate() {
        if let Some(problem) = eventide_consensus::state::secret_name_problem(name) {
            return Err(ConfigError::invalid(format!("{section} secrets {name:?}: {problem}")));
        }
        if name.starts_with(RESERVED_ENV_PREFIX) {
            return Err(ConfigError::invalid(format!(
                "{section} secrets {name:?}: names starting with {RESERVED_ENV_PREFIX} are reserved"
            )));
        }
        if env.contains_key(name) {
            return Err(ConfigError::invalid(format!(
                "{section} secrets {name:?}: also set in {section} env; keep one"
            )));
        }
        if secrets[..index].contains(name) {
            return Err(ConfigError::invalid(format!("{section} secrets {name:?}: listed twice")));
        }
    }
    Ok(())
}

/// Chooses the configuration of a commit: its file if it has one, else the Python
/// unittest default if it has a `tests/` directory, else an error saying what to add.
pub fn resolve(file: Option<&str>, has_tests_dir: bool) -> Result<RepoConfig, ConfigError> {
    match (file, has_tests_dir) {
        (Some(text), _) => parse(text),
        (None, true) => Ok(default_python_unittest()),
        (None, false) => Err(ConfigError {
            message: format!(
                "no {CONFIG_FILE} at this commit and no tests/ directory: \
                 add {CONFIG_FILE} with [test] command = \"...\""
            ),
        }),
    }
}

/// The labels a job needs, for the dispatcher: the file's own, and [`SANDBOX_LABEL`] if
/// it requires a sandbox or has no network. A missing or broken file needs none: the job then goes to any
/// runner, which reports the error with the full message.
pub fn labels_of(file: Option<&str>) -> Vec<String> {
    let Some(config) = file.and_then(|text| parse(text).ok()) else { return Vec::new() };
    let mut labels = config.labels;
    // A job without network needs the sandbox's network namespace.
    let needs_sandbox = config.require_sandbox || config.network == Network::None;
    if needs_sandbox && labels.len() < MAX_LABELS {
        labels.push(SANDBOX_LABEL.to_owned());
    }
    labels
}

fn default_python_unittest() -> RepoConfig {
    RepoConfig {
        command: DEFAULT_PYTHON_COMMAND.to_owned(),
        timeout: DEFAULT_TIMEOUT,
        env: BTreeMap::from([("PYTHONDONTWRITEBYTECODE".to_owned(), "1".to_owned())]),
        labels: Vec::new(),
        junit: Vec::new(),
        secrets: Vec::new(),
        require_sandbox: false,
        network: Network::Host,
        limits: Limits::default(),
        source: ConfigSource::DefaultPythonUnittest,
    }
}

/// Keeps toml's own message (it names the key: "unknown field `comand`") and replaces
/// its multi-line source excerpt with a line number, which fits in a one-line job error.
pub(crate) fn toml_error(text: &str, err: &toml::de::Error) -> ConfigError {
    let message = err.message().trim();
    match err.span() {
        Some(span) => {
            let start = span.start.min(text.len());
            let line = text.as_bytes()[..start].iter().filter(|&&b| b == b'\n').count() + 1;
            ConfigError::invalid(format!("line {line}: {message}"))
        }
        None => ConfigError::invalid(message),
    }
}

pub(crate) fn parse_timeout(section: &str, text: &str) -> Result<Duration, ConfigError> {
    let timeout = parse_duration(text).ok_or_else(|| {
        ConfigError::invalid(format!("{section} timeout {text:?}: expected a duration such as 10m"))
    })?;
    if timeout.is_zero() {
        return Err(ConfigError::invalid(format!(
            "{section} timeout {text:?}: must be more than zero"
        )));
    }
    if timeout > MAX_TIMEOUT {
        return Err(ConfigError::invalid(format!(
            "{section} timeout {text:?}: must be at most 24h"
        )));
    }
    Ok(timeout)
}

pub(crate) fn check_env(section: &str, name: &str, value: &str) -> Result<(), ConfigError> {
    let mut chars = name.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        return Err(ConfigError::invalid(format!(
            "{section} env {name:?}: names are letters, digits and _, not starting with a digit"
        )));
    }
    if name.starts_with(RESERVED_ENV_PREFIX) {
        return Err(ConfigError::invalid(format!(
            "{section} env {name:?}: names starting with {RESERVED_ENV_PREFIX} are reserved"
        )));
    }
    if value.contains('\0') {
        return Err(ConfigError::invalid(format!(
            "{section} env {name:?}: value must not contain a nul character"
        )));
    }
    Ok(())
}

/// Patterns stay inside the checkout so that a repository cannot make a runner read
/// reports (or anything else) from elsewhere on its disk.
pub(crate) fn check_pattern(section: &str, key: &str, pattern: &str) -> Result<(), ConfigError> {
    let problem = if pattern.trim().is_empty() {
        Some("must not be empty".to_owned())
    } else if pattern.starts_with('/') || pattern.starts_with('\\') {
        Some("must be relative to the checkout".to_owned())
    } else if pattern.split(['/', '\\']).any(|component| component == "..") {
        Some("must not contain ..".to_owned())
    } else if pattern.contains('\0') {
        Some("must not contain a nul character".to_owned())
    } else {
        glob::Pattern::new(pattern).err().map(|err| format!("not a glob pattern: {}", err.msg))
    };
    match problem {
        Some(problem) => {
            Err(ConfigError::invalid(format!("{section} {key} {pattern:?}: {problem}")))
        }
        None => Ok(()),
    }
}

#[cfg(test)]
#[path = "repo_config_test.rs"]
mod tests;
