//! The job sandbox (issue 13), with the real bubblewrap that `scripts/setup.sh` installs:
//! what a sandboxed job can see, write and reach; limits that end a job `failed` naming
//! the limit while the runner goes on; a job's processes dying with it; jobs that require
//! a sandbox running only where there is one; `--sandbox none` and `auto`'s fallback; and
//! `eventide-node sandbox check`.

use std::collections::BTreeMap;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::time::Duration;

use eventide_tests::repo::GitRepo;
use eventide_tests::{cli, free_addr, wait_for_final_jobs, wait_until, Cluster, Options};
use eventide_tests::{job_detail, job_for, job_log, DEADLINE};
use serde_json::Value;

/// A one-node cluster watching `repo` whose runner sandboxes jobs with bubblewrap.
fn sandboxed(repo: &GitRepo, extra: &[&str], secret: bool) -> Cluster {
    let mut options = Options::watching(repo.url());
    options.bootstrap_expect = 1;
    options.extra.extend(["--sandbox", "bwrap"].iter().chain(extra).map(|s| s.to_string()));
    // The runner's TMPDIR, which its jobs do not see: theirs is their private /tmp.
    options.env = vec![("TMPDIR".into(), "/var/tmp".into())];
    if secret {
        options.secret = Some("a sandbox test secret of enough length".into());
    }
    Cluster::start_at(&[free_addr()], vec![Vec::new()], options)
}

/// The `key=value` lines of a probe's log.
fn report(log: &str) -> BTreeMap<String, String> {
    log.lines()
        .filter_map(|line| line.split_once('='))
        .filter(|(key, _)| key.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
        .map(|(key, value)| (key.to_owned(), value.trim().to_owned()))
        .collect()
}

fn quote(path: &Path) -> String {
    format!("'{}'", path.display().to_string().replace('\'', r"'\''"))
}

/// What the probe does, by branch. `params.sh` (written by the test) names the paths.
/// On `holder`, the job keeps a file in its workspace until the main job has looked for
/// it; on `main`, the job tries everything it should not be able to do and prints what
/// happened as `key=value` lines. The script waits on files with a deadline of its own.
const PROBE: &str = r#". ./params.sh
await() { i=0; while [ ! -e "$1" ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i + 1)); done; }
seen() { if "$@" >/dev/null 2>&1; then echo yes; else echo no; fi; }
if [ "$EVENTIDE_BRANCH" = holder ]; then
  echo "only this job may read me" > mine.txt
  echo "$PWD" > "$SHARED/holder.tmp" && mv "$SHARED/holder.tmp" "$SHARED/holder"
  await "$SHARED/looked"
  exit 0
fi
node_env=no
for environ in /proc/[0-9]*/environ; do
  if grep -q EVENTIDE_LOG= "$environ" 2>/dev/null; then node_env=yes; fi
done
echo "node_environ_readable=$node_env"
echo "tmpdir=$TMPDIR"
echo "node_pid_visible=$(seen test -e "/proc/$NODE_PID")"
echo "data_dir_entries=$(ls -A "$DATA_DIR" 2>/dev/null | grep -cv '^work$')"
echo "secret_file_readable=$(seen cat "$SECRET_FILE")"
echo "outside_readable=$(seen cat "$OUTSIDE/outside.txt")"
echo "shared_readable=$(seen cat "$SHARED/given.txt")"
await "$SHARED/holder"
other="$(cat "$SHARED/holder")"
echo "other_workspace_is_another=$(seen test "$other" != "$PWD")"
echo "other_workspace_readable=$(seen cat "$other/mine.txt")"
echo "workspaces_visible=$(ls -A "$DATA_DIR/work" | wc -l)"
touch "$SHARED/looked"
echo "write_usr=$(seen touch /usr/.eventide-t89)"
echo "write_etc=$(seen touch /etc/.eventide-t89)"
echo "write_root=$(seen touch /.eventide-t89)"
echo "write_outside=$(seen touch "$OUTSIDE/written")"
touch "$DATA_DIR/written" 2>/dev/null
echo "write_tmp=$(seen touch "/tmp/$TMP_MARK")"
echo "write_home=$(seen touch "$HOME/.eventide-t89")"
echo "write_workspace=$(seen touch ./written)"
echo "write_shared=$(seen touch "$SHARED/written")"
echo "api_reachable=$(seen bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$0"' "$API_PORT")"
"#;

#[test]
fn a_sandboxed_job_sees_and_writes_only_its_workspace_tmp_and_what_it_was_given() {
    let shared = tempfile::tempdir().expect("shared dir");
    // Outside /tmp, which is the job's own: a path of the host the job was not given.
    let outside = tempfile::tempdir_in("/var/tmp").expect("outside dir");
    std::fs::write(shared.path().join("given.txt"), "shared with every job").expect("write");
    std::fs::write(outside.path().join("outside.txt"), "not for jobs").expect("write");
    let repo = GitRepo::new();
    repo.configure("echo OK", "");
    repo.commit("passing, before the node's paths are known");
    let shared_flag = shared.path().display().to_string();
    let cluster = sandboxed(&repo, &["--runner-slots", "2", "--sandbox-bind", &shared_flag], true);
    let node = &cluster.nodes[0];
    wait_for_final_jobs(&cluster, 0, 1, DEADLINE);

    let secret_file = node.data_dir.parent().expect("cluster dir").join("n1.secret");
    assert!(secret_file.is_file(), "the node's secret file exists on the host");
    let tmp_mark = format!("eventide-t89-{}", std::process::id());
    let params = [
        ("NODE_PID", node.pid().expect("pid").to_string()),
        ("DATA_DIR", quote(&node.data_dir)),
        ("SECRET_FILE", quote(&secret_file)),
        ("OUTSIDE", quote(outside.path())),
        ("SHARED", quote(shared.path())),
        ("API_PORT", node.addr.port().to_string()),
        ("TMP_MARK", tmp_mark.clone()),
    ];
    let text: String = params.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
    repo.write("params.sh", &text);
    repo.write("probe.sh", PROBE);
    repo.configure("sh probe.sh", "");
    let probe = repo.commit("the probe with its parameters");
    repo.git(&["checkout", "-q", "-b", "holder"]);
    let holder = repo.commit("a job that holds a file in its workspace");
    repo.git(&["checkout", "-q", "main"]);
    node.notify();
    let jobs = wait_for_final_jobs(&cluster, 0, 3, DEADLINE);
    for commit in [&probe, &holder] {
        let job = job_for(&jobs, commit);
        assert_eq!(job["state"], "passed", "{job:#}\n{}", job_log(node, &job["id"]));
    }
    let log = job_log(node, &job_for(&jobs, &probe)["id"]);
    let seen = report(&log);
    let expected = [
        ("node_environ_readable", "no"),
        ("node_pid_visible", "no"),
        ("tmpdir", "/tmp"),
        ("data_dir_entries", "0"),
        ("secret_file_readable", "no"),
        ("outside_readable", "no"),
        ("shared_readable", "yes"),
        ("other_workspace_is_another", "yes"),
        ("other_workspace_readable", "no"),
        ("workspaces_visible", "1"),
        ("write_usr", "no"),
        ("write_etc", "no"),
        ("write_root", "no"),
        ("write_outside", "no"),
        ("write_tmp", "yes"),
        ("write_home", "yes"),
        ("write_workspace", "yes"),
        ("write_shared", "yes"),
        ("api_reachable", "yes"),
    ];
    for (key, value) in expected {
        assert_eq!(seen.get(key).map(String::as_str), Some(value), "{key}:\n{log}");
    }
    // What the job could not see is there on the host; what it wrote privately is not.
    assert!(std::fs::read_dir(&node.data_dir).expect("data dir").count() > 1, "a full data dir");
    assert!(!outside.path().join("written").exists(), "nothing written outside");
    assert!(!node.data_dir.join("written").exists(), "nothing written to the data dir");
    assert!(!Path::new("/tmp").join(&tmp_mark).exists(), "the job's /tmp is its own");
    assert!(shared.path().join("written").exists(), "a --sandbox-bind path is shared");

    // `network = "none"`: the same job cannot reach the node's API on loopback.
    repo.configure("sh probe.sh", "network = \"none\"\n");
    std::fs::remove_file(shared.path().join("holder")).expect("reset the holder");
    std::fs::write(shared.path().join("holder"), "/nonexistent\n").expect("write");
    let offline = repo.commit("the probe without a network");
    node.notify();
    let jobs = wait_for_final_jobs(&cluster, 0, 4, DEADLINE);
    let job = job_for(&jobs, &offline);
    let log = job_log(node, &job["id"]);
    assert_eq!(job["state"], "passed", "{job:#}\n{log}");
    assert_eq!(report(&log).get("api_reachable").map(String::as_str), Some("no"), "{log}");
}

/// `.eventide.toml` lines and a command, each of which a limit ends.
const OVER_THE_LIMITS: [(&str, &str, &str); 3] = [
    (
        "pids = 40\n",
        "i=0; while [ $i -lt 300 ]; do sleep 20 & i=$((i + 1)); done; wait",
        "process limit 40 reached",
    ),
    (
        "memory = \"64MiB\"\n",
        "perl -e '$x = \"x\" x (512 * 1024 * 1024); sleep 20'",
        "memory limit 64 MiB reached",
    ),
    (
        "disk = \"8MiB\"\n",
        "head -c 50000000 /dev/zero > big.bin; sleep 20",
        "disk limit 8 MiB reached",
    ),
];

/// The marker of the processes the timed-out job leaves behind.
const LINGERING: &str = "987.654";

#[test]
fn a_job_over_a_limit_fails_naming_it_and_its_processes_die_with_it() {
    let repo = GitRepo::new();
    repo.configure("echo OK", "");
    repo.commit("passing");
    let cluster = sandboxed(&repo, &["--job-memory", "1GiB"], false);
    let node = &cluster.nodes[0];
    wait_for_final_jobs(&cluster, 0, 1, DEADLINE);
    let limits = node.status().expect("status")["nodes"][0]["limits"].clone();
    assert!(limits.as_str().is_some_and(|l| l.starts_with("cgroup")), "limits: {limits}");

    let mut commits = Vec::new();
    for (extra, command, _) in OVER_THE_LIMITS {
        repo.configure(command, extra);
        commits.push(repo.commit(extra));
    }
    // A job that times out, leaving processes in a new session and in the background.
    let linger = format!("(setsid sleep {LINGERING} &); sleep {LINGERING} & sleep {LINGERING}");
    repo.configure(&linger, "timeout = \"2s\"\n");
    let timed_out = repo.commit("a job that leaves processes behind");
    repo.configure("echo still OK", "");
    let after = repo.commit("passing after all that");
    // The process limit's group may be given again: the refusals counted before are not
    // this job's.
    repo.configure("echo within the limit", OVER_THE_LIMITS[0].0);
    let within = repo.commit("passing with the process limit that was hit before");
    node.notify();
    let jobs = wait_for_final_jobs(&cluster, 0, 7, Duration::from_secs(90));

    for (commit, (_, _, limit)) in commits.iter().zip(OVER_THE_LIMITS) {
        let job = job_detail(node, &job_for(&jobs, commit)["id"]);
        let message = job["message"].as_str().unwrap_or_default();
        assert_eq!(job["state"], "failed", "{job:#}");
        assert!(message.contains(limit), "{limit:?} in {message:?}: {job:#}");
    }
    let job = job_for(&jobs, &timed_out);
    assert_eq!(job["state"], "timed_out", "{job:#}");
    wait_until("no process of the timed-out job on the host", Duration::from_secs(10), || {
        (!host_processes().iter().any(|cmdline| cmdline.contains(LINGERING))).then_some(())
    });
    let job = job_for(&jobs, &after);
    assert_eq!(job["state"], "passed", "the runner goes on: {job:#}");
    let job = job_detail(node, &job_for(&jobs, &within)["id"]);
    assert_eq!(job["state"], "passed", "no limit of an earlier job is this one's: {job:#}");
    assert!(!node.log_text().contains("panicked"));
}

/// The command line of every process on the host.
fn host_processes() -> Vec<String> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().bytes().all(|b| b.is_ascii_digit()))
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|bytes| String::from_utf8_lossy(&bytes).replace('\0', " "))
        .collect()
}

#[test]
fn a_job_that_requires_a_sandbox_runs_only_where_there_is_one() {
    let repo = GitRepo::new();
    repo.configure("echo OK", "sandbox = \"bwrap\"\n");
    let mut required = vec![repo.commit("first")];
    let mut options = Options::watching(repo.url());
    options.per_node = vec![
        vec!["--sandbox".into(), "bwrap".into()],
        vec!["--sandbox".into(), "none".into(), "--labels".into(), "plain".into()],
        vec!["--runner-slots".into(), "0".into()],
    ];
    let cluster = Cluster::start(3, options);
    let leader = cluster.wait_for_agreed_leader();
    let sandboxed_id = cluster.nodes[0].id().expect("id");
    // The first observation of a repository queues only its head: let it see the first
    // commit before the next ones land, or the first would never get a job.
    wait_until("the first commit queued", DEADLINE, || {
        let jobs = cluster.nodes[leader].jobs("")?;
        jobs.iter().any(|job| job["commit"] == required[0].as_str()).then_some(())
    });
    for message in ["second", "third"] {
        required.push(repo.commit(message));
    }
    // An unsandboxed job, for the plain runner only: it sees the host's processes.
    let node_pid = cluster.nodes[1].pid().expect("pid");
    repo.configure(&format!("test -r /proc/{node_pid}/environ"), "labels = [\"plain\"]\n");
    let plain = repo.commit("unsandboxed");
    cluster.nodes[leader].notify();
    let jobs = wait_for_final_jobs(&cluster, leader, 4, DEADLINE);
    for commit in &required {
        let job = job_for(&jobs, commit);
        assert_eq!(job["state"], "passed", "{job:#}");
        assert_eq!(job["runner"], sandboxed_id.as_str(), "only the bwrap runner: {job:#}");
        assert!(job["labels"].to_string().contains("sandbox:bwrap"), "{job:#}");
    }
    let job = job_for(&jobs, &plain);
    assert_eq!(job["state"], "passed", "--sandbox none runs jobs on the host: {job:#}");

    let status = cluster.nodes[leader].status().expect("status");
    let by_name = |name: &str| -> Value {
        let nodes = status["nodes"].as_array().expect("nodes");
        nodes.iter().find(|n| n["name"] == name).cloned().expect("node")
    };
    assert_eq!(by_name("n1")["sandbox"], "bwrap", "{status:#}");
    assert!(by_name("n2").get("sandbox").is_none(), "{status:#}");
    let text = cli(&["status", "--node", &cluster.nodes[leader].addr.to_string()]);
    let text = String::from_utf8_lossy(&text.stdout).into_owned();
    assert!(text.contains("sandbox: bwrap on 1 runner, none on 1 runner;"), "{text}");
}

/// A directory with only `git` and `sh` in it, for a PATH without bubblewrap.
fn path_without_bwrap(dir: &Path) -> PathBuf {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).expect("mkdir");
    for program in ["git", "sh"] {
        let found = std::env::var_os("PATH")
            .iter()
            .flat_map(std::env::split_paths)
            .map(|d| d.join(program))
            .find(|p| p.is_file())
            .unwrap_or_else(|| panic!("{program} on PATH"));
        symlink(found, bin.join(program)).expect("symlink");
    }
    bin
}

#[test]
fn auto_falls_back_to_no_sandbox_with_a_warning_where_bwrap_is_missing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let bin = path_without_bwrap(dir.path());
    let repo = GitRepo::new();
    repo.configure("echo OK", "");
    repo.commit("passing");
    let mut options = Options::watching(repo.url());
    options.bootstrap_expect = 1;
    options.extra.extend(["--sandbox".into(), "auto".into()]);
    options.env = vec![("PATH".into(), bin.display().to_string())];
    let cluster = Cluster::start_at(&[free_addr()], vec![Vec::new()], options);
    let jobs = wait_for_final_jobs(&cluster, 0, 1, DEADLINE);
    assert_eq!(jobs[0]["state"], "passed", "{jobs:#?}");
    let log = cluster.nodes[0].log_text();
    assert!(
        log.lines().any(|l| l.contains("WARN")
            && l.contains("bwrap")
            && l.contains("not installed or not on PATH")),
        "a warning that names the missing bwrap:\n{log}"
    );
    let status = cluster.nodes[0].status().expect("status");
    assert!(status["nodes"][0].get("sandbox").is_none(), "{status:#}");

    // `--sandbox bwrap` refuses to start without it.
    let data = dir.path().join("data");
    let output = std::process::Command::new(eventide_tests::binary())
        .args(["run", "--data-dir", &data.display().to_string(), "--sandbox", "bwrap"])
        .args(["--listen", &free_addr().to_string(), "--bootstrap-expect", "1"])
        .env("PATH", &bin)
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "refused: {stderr}");
    assert!(stderr.contains("--sandbox bwrap") && stderr.contains("bwrap"), "{stderr}");
}

#[test]
fn sandbox_check_runs_a_probe_and_says_what_it_saw() {
    let output = cli(&["sandbox", "check", "--sandbox", "bwrap", "--json"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    let report: Value = serde_json::from_str(&stdout).expect("json report");
    assert_eq!(report["sandbox"], "bwrap", "{report:#}");
    assert_eq!(report["ok"], true, "{report:#}");
    let checks = report["checks"].as_array().expect("checks");
    assert!(checks.len() >= 10 && checks.iter().all(|c| c["ok"] == true), "{report:#}");

    let output = cli(&["sandbox", "check", "--sandbox", "bwrap", "--job-network", "none"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("unreachable (network none)"), "{stdout}");

    // Without a sandbox, the probe sees the data dir's file and says so, failing.
    let output = cli(&["sandbox", "check", "--sandbox", "none"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stdout}");
    assert!(stdout.contains("readable"), "{stdout}");
    assert!(stderr.contains("sees more than a sandboxed job should"), "{stderr}");
}
