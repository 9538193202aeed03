//! A hostile checkout (issue 10): a `.eventide.toml` that is a link out of the checkout or
//! to `/dev/zero`, JUnit reports that are a FIFO, links and a linked directory, and a job
//! that reads the node's `/proc/<pid>/environ` for the cluster secret. Each ends in a
//! clear result that names the file, the node stays small and alive, and the next commit
//! still passes.

use std::os::unix::fs::symlink;
use std::process::Command;

use eventide_tests::repo::GitRepo;
use eventide_tests::{free_addr, job_detail, job_for, job_log, wait_for_final_jobs};
use eventide_tests::{Cluster, Node, Options, DEADLINE};
use serde_json::Value;

const PASSING: &str = "echo Ran 1 test; echo; echo OK";
/// Address space a node may use: far more than it needs, far less than the machine has,
/// so that a runner that reads `/dev/zero` fails this test instead of the machine.
const ADDRESS_SPACE_LIMIT: &str = "--as=4294967296";
/// Peak resident memory a node may reach in these tests.
const PEAK_RSS_LIMIT_KIB: u64 = 512 * 1024;

/// A one-node cluster watching `repo`, started by `launcher` (a command before the
/// binary, possibly empty) under the address space limit.
fn one_node(repo: &GitRepo, launcher: Vec<String>, env: Vec<(String, String)>) -> Cluster {
    let mut options = Options::watching(repo.url());
    options.bootstrap_expect = 1;
    options.env = env;
    let mut command: Vec<String> = vec!["prlimit".into(), ADDRESS_SPACE_LIMIT.into(), "--".into()];
    command.extend(launcher);
    Cluster::start_at(&[free_addr()], vec![command], options)
}

/// A one-node cluster watching `repo`, whose one commit passed.
fn start(repo: &GitRepo) -> Cluster {
    let cluster = one_node(repo, Vec::new(), Vec::new());
    let jobs = wait_for_final_jobs(&cluster, 0, 1, DEADLINE);
    assert_eq!(jobs[0]["state"], "passed", "the first commit passes: {jobs:#?}");
    cluster
}

/// Removes `.eventide.toml` (a link must not be written through).
fn remove_config(repo: &GitRepo) {
    std::fs::remove_file(repo.path().join(".eventide.toml")).expect("remove .eventide.toml");
}

/// Commits `message` as the work tree is, then a passing commit; waits for both results
/// and returns the first one's job, in full. The node is still small and alive.
fn hostile_then_passing(cluster: &Cluster, repo: &GitRepo, message: &str) -> Value {
    let node = &cluster.nodes[0];
    let count = node.jobs("").expect("jobs").len() + 2;
    let hostile = repo.commit(message);
    remove_config(repo);
    repo.configure(PASSING, "");
    let passing = repo.commit("passing again");
    let jobs = wait_for_final_jobs(cluster, 0, count, DEADLINE);
    assert_eq!(job_for(&jobs, &passing)["state"], "passed", "the next commit passes: {jobs:#?}");
    let peak = peak_rss_kib(node);
    assert!(peak < PEAK_RSS_LIMIT_KIB, "{} reached {peak} KiB", node.name);
    assert!(!node.log_text().contains("panicked"), "{} panicked", node.name);
    job_detail(node, &job_for(&jobs, &hostile)["id"])
}

/// A line of `/proc/<pid>/status` of a running node, e.g. `VmHWM` or `Uid`.
fn proc_status(node: &Node, key: &str) -> String {
    let pid = node.pid().expect("the node runs");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let line = status.lines().find(|l| l.starts_with(&format!("{key}:"))).expect("the key");
    line[key.len() + 1..].trim().to_owned()
}

fn peak_rss_kib(node: &Node) -> u64 {
    let peak = proc_status(node, "VmHWM");
    peak.split_whitespace().next().and_then(|kib| kib.parse().ok()).expect("VmHWM in kB")
}

fn message_of(job: &Value) -> &str {
    job["message"].as_str().unwrap_or_default()
}

#[test]
fn a_config_linked_out_of_the_checkout_is_refused_naming_the_file() {
    let outside = tempfile::tempdir().expect("temp dir");
    let outside_config = outside.path().join("outside.toml");
    std::fs::write(&outside_config, "[test]\ncommand = \"echo OUTSIDE-CONFIG-WAS-READ\"\n")
        .expect("write");
    let repo = GitRepo::new();
    repo.configure(PASSING, "");
    repo.commit("passing");
    let cluster = start(&repo);

    remove_config(&repo);
    symlink(&outside_config, repo.path().join(".eventide.toml")).expect("link");
    let job = hostile_then_passing(&cluster, &repo, "a config linked out of the checkout");
    assert_eq!(job["state"], "error", "{job}");
    let message = message_of(&job);
    assert!(message.starts_with(".eventide.toml is a symbolic link"), "{job}");
    assert!(!job.to_string().contains("OUTSIDE-CONFIG-WAS-READ"), "the outside file ran: {job}");
    let log = cluster.nodes[0].log_text();
    assert!(log.contains("job could not run") && log.contains(message), "the node logs it");
}

#[test]
fn a_config_linked_to_dev_zero_is_refused_at_once_with_little_memory() {
    let repo = GitRepo::new();
    repo.configure(PASSING, "");
    repo.commit("passing");
    let cluster = start(&repo);

    remove_config(&repo);
    symlink("/dev/zero", repo.path().join(".eventide.toml")).expect("link");
    let job = hostile_then_passing(&cluster, &repo, "a config linked to /dev/zero");
    assert_eq!(job["state"], "error", "{job}");
    assert!(message_of(&job).starts_with(".eventide.toml is a symbolic link"), "{job}");
    let duration = job["duration_ms"].as_u64().expect("a duration");
    assert!(duration < 10_000, "refused at once, not after {duration} ms");
}

#[test]
fn reports_that_are_a_fifo_links_or_in_a_linked_directory_are_skipped_by_name() {
    let outside = tempfile::tempdir().expect("temp dir");
    let cases: String = (0..7).map(|n| format!("<testcase name=\"outside{n}\"/>")).collect();
    std::fs::write(outside.path().join("outside.xml"), format!("<testsuite>{cases}</testsuite>"))
        .expect("write");
    let repo = GitRepo::new();
    repo.configure(PASSING, "");
    repo.commit("passing");
    let cluster = start(&repo);

    let command = format!(
        "mkdir -p reports && \
         printf '<testsuite><testcase name=\"inside\"/></testsuite>' > reports/good.xml && \
         mkfifo reports/fifo.xml && ln -s /etc/passwd reports/passwd.xml && \
         ln -s /dev/zero reports/zero.xml && ln -s {} reports/linked && echo reports written",
        outside.path().display()
    );
    remove_config(&repo);
    repo.configure(&command, "junit = [\"reports/**/*.xml\"]\n");
    let job = hostile_then_passing(&cluster, &repo, "hostile junit reports");
    assert_eq!(job["state"], "passed", "the verdict is the command's: {job}");
    assert_eq!(job["summary"]["passed"], 1, "only reports/good.xml is read: {job}");
    let message = message_of(&job);
    for skipped in [
        "reports/fifo.xml is a fifo, not a regular file",
        "reports/passwd.xml is a symbolic link",
        "reports/zero.xml is a symbolic link",
    ] {
        assert!(message.contains(skipped), "the message names {skipped:?}: {job}");
    }
    let log = job_log(&cluster.nodes[0], &job["id"]);
    assert!(log.contains("eventide: junit report reports/fifo.xml is a fifo"), "{log}");
    assert!(cluster.nodes[0].log_text().contains("junit report skipped"), "the node logs it");
}

/// Whether the tests run as root (as in CI).
fn running_as_root() -> bool {
    let output = Command::new("id").arg("-u").output().expect("run id");
    String::from_utf8_lossy(&output.stdout).trim() == "0"
}

/// The command that starts the node as an unprivileged user when the tests run as root:
/// root may read any process's environment, so only an unprivileged node, and a job
/// running as the same user, show whether the node hides it. Its data dir is made its
/// own first.
fn as_unprivileged_user() -> Vec<String> {
    if !running_as_root() {
        return Vec::new();
    }
    let script = r#"for arg; do [ "$previous" = --data-dir ] && data_dir=$arg; previous=$arg; done
mkdir -p "$data_dir" && chown 65534:65534 "$data_dir" && chmod 711 "$(dirname "$data_dir")" &&
exec setpriv --reuid=65534 --regid=65534 --clear-groups -- "$0" "$@""#;
    vec!["sh".into(), "-c".into(), script.into()]
}

#[test]
fn a_job_cannot_read_the_node_secret_from_proc() {
    const SECRET: &str = "proc-environ-secret-4f1c2a9d7e";
    let repo = GitRepo::new();
    // A home the unprivileged node can look into, whose git config trusts the
    // repository of another user.
    let home = tempfile::tempdir().expect("temp dir");
    let mut env = vec![("EVENTIDE_SECRET".to_owned(), SECRET.to_owned())];
    if running_as_root() {
        std::fs::write(home.path().join(".gitconfig"), "[safe]\n\tdirectory = *\n")
            .expect("write git config");
        for dir in [repo.path(), home.path()] {
            let open = std::os::unix::fs::PermissionsExt::from_mode(0o755);
            std::fs::set_permissions(dir, open).expect("let the node read it");
        }
        env.push(("HOME".to_owned(), home.path().display().to_string()));
    }
    let command = "echo ppid=$PPID uid=$(id -u); \
                   if tr '\\0' '\\n' < /proc/$PPID/environ; then echo ENVIRON-READ; \
                   else echo ENVIRON-REFUSED; fi; \
                   grep -c EVENTIDE_JOB_ID /proc/self/environ; \
                   tr '\\0' ' ' < /proc/$PPID/cmdline; echo";
    repo.configure(command, "");
    let probe = repo.commit("reads the node's environment");
    let cluster = one_node(&repo, as_unprivileged_user(), env);
    let node = &cluster.nodes[0];
    let jobs = wait_for_final_jobs(&cluster, 0, 1, DEADLINE);
    let job = job_detail(node, &job_for(&jobs, &probe)["id"]);

    let tail = job["output_tail"].as_str().expect("a tail");
    let pid = node.pid().expect("the node runs");
    let uid = proc_status(node, "Uid");
    let uid = uid.split_whitespace().next().expect("real uid");
    assert_ne!(uid, "0", "the node runs unprivileged (root reads any environment)");
    assert!(
        tail.contains(&format!("ppid={pid} uid={uid}\n")),
        "the job is the node's child, same user: {tail}"
    );
    assert!(tail.contains("ENVIRON-REFUSED"), "{tail}");
    assert!(tail.contains("\n1\n"), "the job reads its own environment: {tail}");
    assert!(tail.contains(" run --data-dir "), "the node's command line is no secret: {tail}");
    assert!(!tail.contains(SECRET), "the secret is in the output: {tail}");
    assert!(!job.to_string().contains(SECRET), "the secret is in the result: {job}");
    assert!(!job_log(node, &job["id"]).contains(SECRET), "the secret is in the job log");
    assert!(!node.log_text().contains(SECRET), "the secret is in the node's log");
    assert_eq!(job["state"], "passed", "{job}");

    // The node still tests commits (the observer polls: `notify` would need the token).
    repo.configure(PASSING, "");
    let passing = repo.commit("passing");
    let jobs = wait_for_final_jobs(&cluster, 0, 2, DEADLINE);
    assert_eq!(job_for(&jobs, &passing)["state"], "passed", "{jobs:#?}");
}
