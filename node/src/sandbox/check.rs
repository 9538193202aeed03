//! `eventide-node sandbox check`: runs a probe job on this machine, isolated exactly as
//! the runner would isolate a job with the same flags, and prints what it could see and
//! do. Nothing joins a cluster; the probe's workspace and data dir are temporary.
//!
//! The probe is a shell script that prints `key=value` lines; [`judge`] compares them
//! with what a sandboxed job should see, so the verdicts are a pure function tested
//! without a sandbox.

use std::fmt::Write as _;
use std::net::TcpListener;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use eventide_node::isolation::{Limits, Network};
use serde::Serialize;
use tokio::sync::watch;

use super::{Isolation, SandboxSettings};
use crate::runner::exec::{self, ExecEnd, ExecSpec};

/// What the probe writes; each line `key=value`. `$1`: a file in the node's data dir,
/// `$2`: the data dir, `$3`: a loopback port that accepts connections outside.
const PROBE: &str = r#"
count=0; for p in /proc/[0-9]*; do count=$((count + 1)); done; echo "processes=$count"
echo "data_dir_entries=$(ls -A "$2" | grep -cv '^work$')"
echo "other_workspaces=$(ls -A "$2/work" | grep -cv '^job-0-1$')"
if cat "$1" >/dev/null 2>&1; then echo "secret_file=readable"; else echo "secret_file=hidden"; fi
if cat /etc/shadow >/dev/null 2>&1; then echo "shadow=readable"; else echo "shadow=hidden"; fi
if [ -n "$HOME" ] && [ -d "$HOME" ]; then echo "home_entries=$(ls -A "$HOME" | wc -l)"; else echo "home_entries=0"; fi
if touch /usr/.eventide-probe 2>/dev/null; then rm -f /usr/.eventide-probe; echo "write_usr=allowed"; else echo "write_usr=refused"; fi
if touch /etc/.eventide-probe 2>/dev/null; then rm -f /etc/.eventide-probe; echo "write_etc=allowed"; else echo "write_etc=refused"; fi
if touch /tmp/.eventide-probe 2>/dev/null; then echo "write_tmp=allowed"; else echo "write_tmp=refused"; fi
if touch ./.eventide-probe 2>/dev/null; then echo "write_workspace=allowed"; else echo "write_workspace=refused"; fi
if command -v bash >/dev/null 2>&1; then
  if bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$0"' "$3" 2>/dev/null; then
    echo "loopback=reached"; else echo "loopback=unreachable"; fi
else echo "loopback=unknown"; fi
"#;

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub name: &'static str,
    /// What the probe saw, in words.
    pub seen: String,
    /// Whether that is what a sandboxed job should see.
    pub ok: bool,
}

#[derive(Debug, Serialize)]
struct Report {
    sandbox: &'static str,
    limits: &'static str,
    network: &'static str,
    max: String,
    /// Why jobs are not sandboxed here, or why limits fall back to rlimits.
    notes: Vec<String>,
    duration_ms: u64,
    checks: Vec<Check>,
    ok: bool,
}

/// The verdicts on the probe's `output` for a job with `network`.
pub fn judge(output: &str, network: Network) -> Vec<Check> {
    let value = |key: &str| -> String {
        output
            .lines()
            .find_map(|line| line.strip_prefix(key).and_then(|rest| rest.strip_prefix('=')))
            .unwrap_or("missing")
            .trim()
            .to_owned()
    };
    let processes: u64 = value("processes").parse().unwrap_or(u64::MAX);
    let mut checks = vec![
        Check {
            name: "processes visible",
            seen: value("processes"),
            // The probe's shell, its init, and what the loop itself forks.
            ok: processes <= 4,
        },
        Check {
            name: "the node's data dir",
            seen: format!("{} entries besides work/", value("data_dir_entries")),
            ok: value("data_dir_entries") == "0",
        },
        Check {
            name: "other jobs' workspaces",
            seen: value("other_workspaces"),
            ok: value("other_workspaces") == "0",
        },
        expect("a file in the data dir", value("secret_file"), "hidden"),
        expect("/etc/shadow", value("shadow"), "hidden"),
        Check {
            name: "the node user's home",
            seen: format!("{} entries", value("home_entries")),
            ok: value("home_entries") == "0",
        },
        expect("write to /usr", value("write_usr"), "refused"),
        expect("write to /etc", value("write_etc"), "refused"),
        expect("write to /tmp (private)", value("write_tmp"), "allowed"),
        expect("write to the workspace", value("write_workspace"), "allowed"),
    ];
    let loopback = value("loopback");
    checks.push(Check {
        name: "the host's loopback",
        ok: match network {
            Network::Host => loopback != "missing",
            Network::None => loopback == "unreachable",
        },
        seen: format!("{loopback} (network {})", network.as_str()),
    });
    checks
}

fn expect(name: &'static str, seen: String, wanted: &str) -> Check {
    let ok = seen == wanted;
    Check { name, seen, ok }
}

/// Runs the probe with `settings` and prints the report; an error if the probe could
/// not run or saw more than a sandboxed job should.
pub async fn run(settings: SandboxSettings, json: bool) -> anyhow::Result<()> {
    let scratch = Scratch::create()?;
    let data_dir = scratch.path().join("data");
    let workspace = data_dir.join("work").join("job-0-1");
    std::fs::create_dir_all(&workspace).context("failed to create the probe's workspace")?;
    let secret_file = data_dir.join("secret");
    std::fs::write(&secret_file, "not a real secret").context("failed to write a probe file")?;
    std::fs::create_dir_all(data_dir.join("work").join("job-9-1"))
        .context("failed to create a second workspace")?;
    let listener = TcpListener::bind("127.0.0.1:0").context("failed to listen on loopback")?;
    let port = listener.local_addr()?.port();

    let tag = format!("check-{}", std::process::id());
    let resolved = {
        let data_dir = data_dir.clone();
        let path = std::env::var_os("PATH");
        tokio::task::spawn_blocking(move || {
            Isolation::resolve(settings, &tag, path.as_deref(), &data_dir)
        })
        .await??
    };
    let home = std::env::var_os("HOME").map(std::path::PathBuf::from);
    let network = resolved.settings.network;
    let isolation = resolved
        .prepare(&workspace, home.as_deref(), network, Limits::default())
        .context("failed to set up the probe's sandbox")?;
    let mut env = vec![("PATH".to_owned(), "/usr/local/bin:/usr/bin:/bin".to_owned())];
    if let Some(home) = &home {
        env.push(("HOME".to_owned(), home.display().to_string()));
    }
    let command = format!("set -- {} {} {port}\n{PROBE}", quote(&secret_file), quote(&data_dir));
    let spec = ExecSpec {
        command,
        workdir: workspace.clone(),
        env,
        timeout: Duration::from_secs(30),
        log_path: scratch.path().join("probe.log"),
        tail_bytes: 16 * 1024,
        file_cap_bytes: 64 * 1024,
        isolation,
        preamble: Vec::new(),
    };
    let (_cancel, never) = watch::channel(false);
    let result = exec::execute(spec, never).await.context("failed to run the probe")?;
    drop(listener);
    if result.end != ExecEnd::Exited(0) {
        anyhow::bail!(
            "the probe did not run to its end ({:?}): {}",
            result.end,
            result.output_tail
        );
    }
    let checks = judge(&result.output_tail, network);
    let ok = checks.iter().all(|check| check.ok);
    let report = Report {
        sandbox: resolved.sandbox_name(),
        limits: resolved.limits_name(),
        network: network.as_str(),
        max: resolved.settings.max.to_string(),
        notes: resolved.notes().to_vec(),
        duration_ms: u64::try_from(result.duration.as_millis()).unwrap_or(u64::MAX),
        checks,
        ok,
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", render(&report));
    }
    if !ok {
        anyhow::bail!("a job here sees more than a sandboxed job should (see above)");
    }
    Ok(())
}

fn render(report: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "sandbox: {}, limits: {}, network: {}, most a job gets: {}",
        report.sandbox, report.limits, report.network, report.max
    );
    for note in &report.notes {
        let _ = writeln!(out, "note: {note}");
    }
    let _ = writeln!(out, "probe job ran in {} ms and saw:", report.duration_ms);
    for check in &report.checks {
        let verdict = if check.ok { "ok" } else { "EXPOSED" };
        let _ = writeln!(out, "  {:<26} {:<34} {verdict}", check.name, check.seen);
    }
    out
}

/// A temporary directory, removed on drop.
struct Scratch(std::path::PathBuf);

impl Scratch {
    fn create() -> anyhow::Result<Scratch> {
        let path =
            std::env::temp_dir().join(format!("eventide-sandbox-check-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path)
            .with_context(|| format!("failed to create {}", path.display()))?;
        Ok(Scratch(path))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn quote(path: &Path) -> String {
    format!("'{}'", path.display().to_string().replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SANDBOXED: &str =
        "processes=3\ndata_dir_entries=0\nother_workspaces=0\nsecret_file=hidden\nshadow=hidden\n\
        home_entries=0\nwrite_usr=refused\nwrite_etc=refused\nwrite_tmp=allowed\n\
        write_workspace=allowed\nloopback=unreachable\n";

    #[test]
    fn a_sandboxed_probe_passes_every_check() {
        let checks = judge(SANDBOXED, Network::None);
        assert!(checks.iter().all(|c| c.ok), "{checks:#?}");
        let host = judge(&SANDBOXED.replace("unreachable", "reached"), Network::Host);
        assert!(host.iter().all(|c| c.ok), "{host:#?}");
    }

    #[test]
    fn what_an_unsandboxed_job_sees_is_reported_exposed() {
        let open = "processes=211\ndata_dir_entries=2\nother_workspaces=1\nsecret_file=readable\nshadow=readable\n\
            home_entries=14\nwrite_usr=allowed\nwrite_etc=allowed\nwrite_tmp=allowed\n\
            write_workspace=allowed\nloopback=reached\n";
        let exposed: Vec<&str> =
            judge(open, Network::None).iter().filter(|c| !c.ok).map(|c| c.name).collect();
        assert_eq!(
            exposed,
            [
                "processes visible",
                "the node's data dir",
                "other jobs' workspaces",
                "a file in the data dir",
                "/etc/shadow",
                "the node user's home",
                "write to /usr",
                "write to /etc",
                "the host's loopback",
            ]
        );
        assert!(judge("", Network::Host).iter().any(|c| c.seen == "missing"), "missing keys");
    }
}
