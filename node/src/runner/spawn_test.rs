use std::fs::File;
use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::*;

/// How long a test waits for a condition before failing.
const PATIENCE: Duration = Duration::from_secs(10);

/// A pipe: the end to read and the end the child writes to.
fn pipe() -> (File, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills the two descriptors, which are then owned here.
    let result = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    assert_eq!(result, 0, "pipe2: {}", io::Error::last_os_error());
    // SAFETY: both are fresh descriptors nobody else owns.
    unsafe { (File::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

struct Started {
    child: Child,
    output: File,
}

impl Started {
    /// Everything the child wrote, once it closed its streams.
    fn output(&mut self) -> String {
        let mut text = String::new();
        self.output.read_to_string(&mut text).expect("read the output");
        text
    }
}

/// Starts `sh -c script` in `workdir` with `env`, joining `joins`, under `rlimits`.
fn start(
    script: &str,
    workdir: &Path,
    env: &[(String, String)],
    joins: &[CString],
    rlimits: &[Rlimit],
) -> io::Result<Started> {
    let args: Vec<OsString> = vec!["-c".into(), script.into()];
    start_program("/bin/sh", &args, workdir, env, joins, rlimits)
}

fn start_program(
    program: &str,
    args: &[OsString],
    workdir: &Path,
    env: &[(String, String)],
    joins: &[CString],
    rlimits: &[Rlimit],
) -> io::Result<Started> {
    let (output, writer) = pipe();
    let stderr = writer.try_clone().expect("dup");
    let child = spawn(SpawnSpec {
        program: OsStr::new(program),
        args,
        env,
        workdir,
        stdout: writer,
        stderr,
        cgroup_joins: joins,
        rlimits,
    })?;
    Ok(Started { child, output })
}

fn path_env() -> Vec<(String, String)> {
    vec![("PATH".to_owned(), std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into()))]
}

/// Whether `pid` is gone: ended and reaped.
fn reaped(pid: libc::pid_t) -> bool {
    // SAFETY: signal 0 sends nothing; it only asks whether the process exists.
    let result = unsafe { libc::kill(pid, 0) };
    result != 0 && io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
}

/// The `Name:` line of `/proc/PID/status` of a process, as the job sees itself.
fn status_field(text: &str, name: &str) -> String {
    text.lines()
        .find_map(|line| line.strip_prefix(&format!("{name}:")))
        .map(|value| value.trim().to_owned())
        .unwrap_or_else(|| panic!("no {name} in {text}"))
}

#[tokio::test]
async fn runs_the_program_with_exactly_its_arguments_environment_and_directory() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut env = path_env();
    env.push(("ONLY_THIS".to_owned(), "a value with spaces = and more".to_owned()));
    let script = "echo \"$0|$ONLY_THIS|$(pwd)\"; env | grep -v '^PWD=' | sort; exit 7";
    let mut started = start(script, dir.path(), &env, &[], &[]).expect("spawn");
    let status =
        tokio::time::timeout(PATIENCE, started.child.wait()).await.expect("ends").expect("waited");
    assert_eq!(status.code(), Some(7));
    let output = started.output();
    let mut lines = output.lines();
    let first = lines.next().expect("a first line");
    let workdir = dir.path().canonicalize().expect("canonical");
    assert_eq!(first, format!("/bin/sh|a value with spaces = and more|{}", workdir.display()));
    let rest: Vec<&str> = lines.filter(|line| !line.starts_with("SHLVL=")).collect();
    assert_eq!(rest, vec![format!("ONLY_THIS={}", env[1].1), format!("PATH={}", env[0].1)]);
    // Waiting again gives the same status.
    assert_eq!(started.child.wait().await.expect("again").code(), Some(7));
}

#[tokio::test]
async fn the_child_leads_its_own_group_with_default_signals_and_none_blocked() {
    let dir = tempfile::tempdir().expect("temp dir");
    // The test process ignores SIGPIPE, as every Rust program does.
    let script = "echo $$; ps -o pgid= -p $$; cat /proc/self/status";
    let mut started = start(script, dir.path(), &path_env(), &[], &[]).expect("spawn");
    let pid = started.child.id();
    let status = started.child.wait().await.expect("waited");
    assert!(status.success(), "{status:?}");
    let output = started.output();
    let mut lines = output.lines();
    assert_eq!(lines.next().map(str::trim), Some(pid.to_string().as_str()));
    assert_eq!(lines.next().map(str::trim), Some(pid.to_string().as_str()), "its own group");
    // `cat`'s own status: what the shell left it, which is what the shell was given.
    let proc_status: String = lines.collect::<Vec<_>>().join("\n");
    let ignored = u64::from_str_radix(&status_field(&proc_status, "SigIgn"), 16).expect("hex");
    assert_eq!(ignored & (1 << (libc::SIGPIPE - 1)), 0, "SIGPIPE is not ignored");
    assert_eq!(status_field(&proc_status, "SigBlk"), "0000000000000000", "nothing blocked");
}

#[tokio::test]
async fn the_callers_signal_mask_is_left_as_it_was() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mask = || {
        // SAFETY: reads this thread's mask into a set on the stack.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::pthread_sigmask(libc::SIG_SETMASK, std::ptr::null(), &mut set);
            (1..=libc::SIGRTMAX())
                .filter(|&signal| libc::sigismember(&set, signal) == 1)
                .collect::<Vec<_>>()
        }
    };
    let before = mask();
    let mut started = start("true", dir.path(), &path_env(), &[], &[]).expect("spawn");
    assert_eq!(mask(), before);
    started.child.wait().await.expect("waited");
}

#[tokio::test]
async fn joins_every_group_file_and_sets_the_rlimits_before_the_command_runs() {
    let dir = tempfile::tempdir().expect("temp dir");
    // Regular files stand in for cgroup.procs: the child writes "0" (itself) to each.
    let joins: Vec<PathBuf> = (0..2).map(|n| dir.path().join(format!("procs-{n}"))).collect();
    for join in &joins {
        std::fs::write(join, "").expect("create");
    }
    let paths: Vec<CString> =
        joins.iter().map(|p| CString::new(p.as_os_str().as_bytes()).expect("path")).collect();
    let limits = [Rlimit::Processes(4321), Rlimit::AddressSpace(3 << 30)];
    let script = "exec cat /proc/self/limits";
    let mut started = start(script, dir.path(), &path_env(), &paths, &limits).expect("spawn");
    assert!(started.child.wait().await.expect("waited").success());
    let output = started.output();
    let limit = |name: &str| -> Vec<String> {
        let line = output.lines().find(|line| line.starts_with(name)).expect("a limit");
        line[name.len()..].split_whitespace().take(2).map(str::to_owned).collect()
    };
    assert_eq!(limit("Max processes"), ["4321", "4321"], "{output}");
    let bytes = (3u64 << 30).to_string();
    assert_eq!(limit("Max address space"), [bytes.as_str(), bytes.as_str()], "{output}");
    for join in &joins {
        assert_eq!(std::fs::read_to_string(join).expect("read"), "0");
    }
}

#[tokio::test]
async fn each_failure_before_exec_is_an_error_that_names_its_step() {
    let dir = tempfile::tempdir().expect("temp dir");
    let env = path_env();
    let missing = dir.path().join("missing");
    let error = start("true", &missing, &env, &[], &[]).err().expect("no workdir");
    assert_eq!(error.kind(), io::ErrorKind::NotFound);
    assert!(error.to_string().starts_with("entering the working directory: "), "{error}");

    let group = CString::new(missing.join("cgroup.procs").as_os_str().as_bytes()).expect("path");
    let error = start("true", dir.path(), &env, &[group], &[]).err().expect("no group");
    assert!(error.to_string().starts_with("joining the job's cgroup: "), "{error}");

    let error = start_program("/nonexistent/program", &[], dir.path(), &env, &[], &[])
        .err()
        .expect("no program");
    assert_eq!(error.kind(), io::ErrorKind::NotFound);
    assert!(error.to_string().starts_with("executing: "), "{error}");

    let error =
        start_program("sh", &[], dir.path(), &env, &[], &[]).err().expect("a relative program");
    assert_eq!(error.kind(), io::ErrorKind::InvalidInput);

    let bad_env = vec![("A=B".to_owned(), "c".to_owned())];
    let error = start("true", dir.path(), &bad_env, &[], &[]).err().expect("a bad name");
    assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
}

#[tokio::test]
async fn a_killed_child_reports_the_signal() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut started = start("exec sleep 30", dir.path(), &path_env(), &[], &[]).expect("spawn");
    started.child.start_kill().expect("kill");
    let status =
        tokio::time::timeout(PATIENCE, started.child.wait()).await.expect("ends").expect("waited");
    assert_eq!(status.signal(), Some(libc::SIGKILL));
    started.child.start_kill().expect("killing a reaped child is a no-op");
}

#[tokio::test]
async fn a_child_dropped_before_it_ended_is_killed_and_reaped() {
    let dir = tempfile::tempdir().expect("temp dir");
    let started = start("exec sleep 30", dir.path(), &path_env(), &[], &[]).expect("spawn");
    let pid = started.child.id();
    drop(started);
    let deadline = Instant::now() + PATIENCE;
    while !reaped(pid) {
        assert!(Instant::now() < deadline, "child {pid} still there");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_children_started_at_once_each_run_their_own_command() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..64 {
        let workdir = dir.path().to_owned();
        tasks.spawn(async move {
            let env = vec![("N".to_owned(), n.to_string())];
            let script = format!("echo {n} $N");
            let mut started = start(&script, &workdir, &env, &[], &[]).expect("spawn");
            let status = started.child.wait().await.expect("waited");
            (n, status.code(), started.output())
        });
    }
    let mut seen = 0;
    while let Some(joined) = tasks.join_next().await {
        let (n, code, output) = joined.expect("task");
        assert_eq!(code, Some(0));
        assert_eq!(output, format!("{n} {n}\n"));
        seen += 1;
    }
    assert_eq!(seen, 64);
}
