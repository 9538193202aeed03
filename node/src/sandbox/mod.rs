//! Isolation of jobs from the node and from each other: the sandbox (bubblewrap) and the
//! resource limits (cgroups, else rlimits), resolved once when the runner starts and
//! applied to each job.
//!
//! - `bwrap`: the bubblewrap command line of a job (pure) and the host layout it uses.
//! - `cgroup`: per-job control groups (v2 or v1): limits, killing, which limit was hit.
//! - `check`: `eventide-node sandbox check`, a probe job run locally.
//!
//! ```text
//!  start: --sandbox auto|bwrap|none ──> find + probe bwrap ──> Isolation (logged, gossiped)
//!         cgroups writable? ──> cgroup v2 | cgroup v1 | rlimits
//!  job:   Isolation::prepare(limits within --job-*, network) ──> JobIsolation
//!         exec: [bwrap ARGS --] sh -c COMMAND, joined to the job's cgroups before exec
//! ```

pub mod bwrap;
pub mod cgroup;
pub mod check;

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::bail;
use eventide_node::isolation::{Limits, Network};
use tracing::{info, warn};

use self::bwrap::{HostLayout, Plan};
use self::cgroup::{Cgroups, Controller, JobCgroup};

/// How long the probe job at start may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// `--sandbox`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SandboxMode {
    /// bubblewrap if it is installed and works here, else none (with a warning).
    #[default]
    Auto,
    Bwrap,
    None,
}

impl SandboxMode {
    pub fn parse(text: &str) -> Option<SandboxMode> {
        match text {
            "auto" => Some(SandboxMode::Auto),
            "bwrap" => Some(SandboxMode::Bwrap),
            "none" => Some(SandboxMode::None),
            _ => None,
        }
    }
}

/// What the runner was configured with (flags `--sandbox*`, `--job-*`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SandboxSettings {
    pub mode: SandboxMode,
    /// Paths every job sees read-only at the same path (`--sandbox-ro-bind`).
    pub read_only: Vec<PathBuf>,
    /// Paths every job sees read-write at the same path (`--sandbox-bind`).
    pub read_write: Vec<PathBuf>,
    /// `--job-network`: `none` takes the network from every job.
    pub network: Network,
    /// `--job-memory`, `--job-pids`, `--job-cpus`, `--job-disk`: the most a job gets.
    pub max: Limits,
}

/// A resource limit set on a job's first process before it runs the command, where no
/// cgroup can hold the limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rlimit {
    /// `RLIMIT_AS`: address space, a rough stand-in for memory.
    AddressSpace(u64),
    /// `RLIMIT_NPROC`: processes of the runner's user (not enforced for root).
    Processes(u64),
}

/// The runner's isolation, as resolved at start.
pub struct Isolation {
    settings: SandboxSettings,
    /// The bubblewrap program and the host's layout, if jobs run under it.
    bwrap: Option<(PathBuf, HostLayout)>,
    cgroups: Option<Cgroups>,
    /// Why jobs are not sandboxed, or why limits fall back to rlimits.
    notes: Vec<String>,
}

/// How one job runs: its wrapper command, its groups and limits.
#[derive(Debug, Default)]
pub struct JobIsolation {
    /// `bwrap ARGS --`, put before `sh -c COMMAND`; empty for no sandbox.
    pub wrapper: Vec<OsString>,
    pub cgroup: Option<JobCgroup>,
    pub rlimits: Vec<Rlimit>,
    /// The limits in force (the job's within the runner's maximum).
    pub limits: Limits,
    pub network: Network,
    /// Said at the top of the job's log: limits that could not be enforced here.
    pub notes: Vec<String>,
}

impl Isolation {
    /// Resolves `settings` on this machine: finds and probes bubblewrap on `path` (the
    /// node's `PATH`) and the cgroups of node `node_tag`. An error only for `--sandbox
    /// bwrap` when bubblewrap does not work; `auto` falls back to none with a warning.
    pub fn resolve(
        settings: SandboxSettings,
        node_tag: &str,
        path: Option<&OsStr>,
        scratch: &Path,
    ) -> anyhow::Result<Isolation> {
        let mut notes = Vec::new();
        let bwrap = match settings.mode {
            SandboxMode::None => None,
            mode => match find_program("bwrap", path)
                .ok_or_else(|| "bubblewrap (bwrap) is not installed or not on PATH".to_owned())
            {
                Ok(program) => {
                    let layout = HostLayout::discover();
                    match probe(&program, &layout, &settings, scratch) {
                        Ok(()) => Some((program, layout)),
                        Err(reason) if mode == SandboxMode::Bwrap => {
                            bail!("--sandbox bwrap: {reason}")
                        }
                        Err(reason) => {
                            notes.push(reason);
                            None
                        }
                    }
                }
                Err(reason) if mode == SandboxMode::Bwrap => {
                    bail!("--sandbox bwrap: {reason}; install it (apt-get install bubblewrap)")
                }
                Err(reason) => {
                    notes.push(reason);
                    None
                }
            },
        };
        if bwrap.is_none() && settings.network == Network::None {
            bail!("--job-network none needs the bubblewrap sandbox: {}", notes.join("; "));
        }
        if bwrap.is_none() && settings.mode == SandboxMode::Auto {
            warn!(
                reason = %notes.join("; "),
                "jobs run without a sandbox: they can read the node's files and see its processes; \
                 install bubblewrap or pass --sandbox none to silence this"
            );
        }
        let cgroups = match Cgroups::detect(node_tag) {
            Ok(cgroups) => Some(cgroups),
            Err(reason) => {
                let message = format!("job limits fall back to rlimits: {reason}");
                if settings.max.is_unlimited() {
                    info!(reason = %reason, "job limits fall back to rlimits");
                } else {
                    warn!(reason = %reason, "job limits fall back to rlimits");
                }
                notes.push(message);
                None
            }
        };
        let isolation = Isolation { settings, bwrap, cgroups, notes };
        info!(
            sandbox = isolation.sandbox_name(),
            limits = isolation.limits_name(),
            network = isolation.settings.network.as_str(),
            max = %isolation.settings.max,
            "job isolation"
        );
        Ok(isolation)
    }

    /// The isolation of a node without a runner: nothing is probed.
    pub fn disabled(settings: SandboxSettings) -> Isolation {
        Isolation { settings, bwrap: None, cgroups: None, notes: Vec::new() }
    }

    /// `bwrap` or `none`, as `status` shows it.
    pub fn sandbox_name(&self) -> &'static str {
        if self.bwrap.is_some() {
            "bwrap"
        } else {
            "none"
        }
    }

    /// `cgroup v2`, `cgroup v1` or `rlimit`.
    pub fn limits_name(&self) -> &'static str {
        self.cgroups.as_ref().map_or("rlimit", Cgroups::name)
    }

    pub fn has_bwrap(&self) -> bool {
        self.bwrap.is_some()
    }

    /// Why there is no sandbox or cgroup here, if there is not.
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// The isolation of one job in `workspace`, which asks for `network` and `limits`.
    pub fn prepare(
        &self,
        workspace: &Path,
        home: Option<&Path>,
        network: Network,
        limits: Limits,
    ) -> std::io::Result<JobIsolation> {
        let limits = limits.within(self.settings.max);
        let network = Network::effective(network, self.settings.network);
        let mut job = JobIsolation { limits, network, ..JobIsolation::default() };
        if let Some((program, layout)) = &self.bwrap {
            let plan = Plan {
                layout,
                workspace,
                home,
                network,
                read_only: &self.settings.read_only,
                read_write: &self.settings.read_write,
            };
            job.wrapper.push(program.clone().into_os_string());
            job.wrapper.extend(bwrap::arguments(&plan));
        } else if network == Network::None {
            // Without a sandbox there is no network namespace to take the network away
            // with; running the job anyway would break the promise.
            return Err(std::io::Error::other(
                "network = \"none\" needs the bubblewrap sandbox, which this runner does not have",
            ));
        }
        let cgroup_limits = Limits { disk: None, ..limits };
        match &self.cgroups {
            Some(cgroups) if !cgroup_limits.is_unlimited() => {
                job.cgroup = Some(cgroups.create(&cgroup_limits)?);
                if limits.cpus_milli.is_some() && !cgroups.has(Controller::Cpu) {
                    job.notes.push("cpus limit not enforced: no cpu controller here".into());
                }
                if limits.pids.is_some() && !cgroups.has(Controller::Pids) {
                    job.notes.push("pids limit not enforced: no pids controller here".into());
                }
                if limits.memory.is_some() && !cgroups.has(Controller::Memory) {
                    job.notes.push("memory limit not enforced: no memory controller here".into());
                }
            }
            Some(cgroups) => {
                // Still a group, so that every process of the job can be killed.
                job.cgroup = Some(cgroups.create(&cgroup_limits)?);
            }
            None => {
                if let Some(memory) = limits.memory {
                    job.rlimits.push(Rlimit::AddressSpace(memory));
                }
                if let Some(pids) = limits.pids {
                    job.rlimits.push(Rlimit::Processes(u64::from(pids)));
                }
                if limits.cpus_milli.is_some() {
                    job.notes.push("cpus limit not enforced: no cgroups here".into());
                }
            }
        }
        Ok(job)
    }
}

/// The first executable `name` on `path`.
pub fn find_program(name: &str, path: Option<&OsStr>) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = path?;
    std::env::split_paths(path).map(|dir| dir.join(name)).find(|candidate| {
        std::fs::metadata(candidate)
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    })
}

/// Runs `sh -c 'exit 0'` under bubblewrap as a job would run, in a scratch workspace.
fn probe(
    program: &Path,
    layout: &HostLayout,
    settings: &SandboxSettings,
    scratch: &Path,
) -> Result<(), String> {
    let workspace = scratch.join("sandbox-probe");
    let _ = std::fs::remove_dir_all(&workspace);
    std::fs::create_dir_all(&workspace)
        .map_err(|e| format!("failed to create {}: {e}", workspace.display()))?;
    let plan = Plan {
        layout,
        workspace: &workspace,
        home: None,
        network: settings.network,
        read_only: &settings.read_only,
        read_write: &settings.read_write,
    };
    let result = run_probe(program, &plan);
    let _ = std::fs::remove_dir_all(&workspace);
    result
}

fn run_probe(program: &Path, plan: &Plan<'_>) -> Result<(), String> {
    let mut child = std::process::Command::new(program)
        .args(bwrap::arguments(plan))
        .args(["/bin/sh", "-c", "exit 0"])
        .env_clear()
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("failed to run {}: {e}", program.display()))?;
    let deadline = Instant::now() + PROBE_TIMEOUT;
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => {
                let mut stderr = String::new();
                if let Some(mut pipe) = child.stderr.take() {
                    let _ = std::io::Read::read_to_string(&mut pipe, &mut stderr);
                }
                let stderr = stderr.trim();
                return Err(format!(
                    "bubblewrap does not work here ({status}): {}",
                    if stderr.is_empty() { "no message" } else { stderr }
                ));
            }
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("bubblewrap did not finish in {}s", PROBE_TIMEOUT.as_secs()));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(error) => return Err(format!("failed to wait for bubblewrap: {error}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse() {
        assert_eq!(SandboxMode::parse("auto"), Some(SandboxMode::Auto));
        assert_eq!(SandboxMode::parse("bwrap"), Some(SandboxMode::Bwrap));
        assert_eq!(SandboxMode::parse("none"), Some(SandboxMode::None));
        assert_eq!(SandboxMode::parse("docker"), None);
    }

    #[test]
    fn programs_are_found_on_the_path_only_if_executable() {
        let dir = tempfile::tempdir().expect("temp dir");
        let plain = dir.path().join("bwrap");
        std::fs::write(&plain, "#!/bin/sh\n").expect("write");
        let path = std::env::join_paths([dir.path()]).expect("path");
        assert_eq!(find_program("bwrap", Some(&path)), None, "not executable");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&plain, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        assert_eq!(find_program("bwrap", Some(&path)), Some(plain));
        assert_eq!(find_program("bwrap", None), None);
    }
}
