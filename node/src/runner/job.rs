//! One job on this node: prepare the checkout, run the command, and its result; the
//! result is reported with the slot's next claim, or by `report` through the write path.

use std::path::{Path, PathBuf};
use std::time::Duration;

use eventide_consensus::network::WriteError;
use eventide_consensus::state::job_name;
use eventide_consensus::{Command, CommitId, JobId, Outcome, Reply, Verdict};
use eventide_node::protocol::dispatch::{Assignment, Finished, StepAssignment};
use tokio::sync::watch;
use tracing::{info, warn};

use super::context::{self, FetchAuth};
use super::exec::{self, ExecEnd, ExecSpec};
use super::workspace::{self, Refusal};
use super::{reports, Runner};
use crate::clock;
use crate::git;
use crate::joblog::{log_path, logs_dir};
use crate::pipeline_config;
use crate::repo_config::{self, RepoConfig, CONFIG_FILE};

/// Output kept in the replicated result (the state machine caps it again).
pub const TAIL_BYTES: usize = 64 * 1024;
/// Output kept on this node's disk per job.
pub const LOG_FILE_CAP: u64 = 16 * 1024 * 1024;
/// Largest `.eventide.toml` read, as the observer reads it from the mirror.
const CONFIG_MAX_BYTES: u64 = git::MAX_FILE_BYTES as u64;
/// Job logs kept on disk, at least; older ones are deleted.
const LOGS_KEPT: usize = 200;
/// The log directory is read (every log's time looked up) once every this many jobs
/// rather than after each: a node keeps between `LOGS_KEPT` and `LOGS_KEPT` +
/// `PRUNE_EVERY` logs, and a busy runner does not stat 200 files a job.
const PRUNE_EVERY: u64 = 25;

/// Runs one assignment to its end; its result to report, `None` if it was cancelled.
pub async fn run(
    runner: &Runner,
    assignment: Assignment,
    step: Option<StepAssignment>,
    cancel: watch::Receiver<bool>,
) -> Option<Outcome> {
    let data_dir = runner.settings.data_dir.clone();
    let started = std::time::Instant::now();
    let log = log_path(&data_dir, assignment.job, assignment.attempt);
    let workspace =
        data_dir.join("work").join(format!("job-{}-{}", assignment.job, assignment.attempt));

    // A commit the runner's mirror already holds needs no fetch and so no credentials: a
    // client asks the leader for them only when it must fetch.
    let mirrors = &runner.settings.mirrors;
    let prepared = match prepare(&data_dir, mirrors, &assignment, step.as_ref(), &workspace, None)
        .await
    {
        Ok(None) => {
            let (job, attempt) = (assignment.job, assignment.attempt);
            info!(job_id = %job, attempt, commit = %assignment.commit, "fetching the commit into the runner's mirror");
            let auth = context::fetch_auth(runner, &assignment).await;
            prepare(&data_dir, mirrors, &assignment, step.as_ref(), &workspace, Some(auth)).await
        }
        done => done,
    };
    let missing = || format!("commit {} is missing from the runner's mirror", assignment.commit);
    let outcome = match prepared.and_then(|prepared| prepared.ok_or_else(missing)) {
        Err(message) => {
            let (job, attempt) = (assignment.job, assignment.attempt);
            warn!(job_id = %job, attempt, error = %message, "job could not run");
            let _ = std::fs::write(&log, format!("eventide: {message}\n"));
            Some(error_outcome(message, started.elapsed()))
        }
        Ok(prepared) => {
            let inputs = match &step {
                Some(step) if !step.inputs.is_empty() => {
                    runner.artifacts.fetch_inputs(&workspace, &step.inputs).await
                }
                _ => Ok(Vec::new()),
            };
            match inputs {
                Err(message) => {
                    let (job, attempt) = (assignment.job, assignment.attempt);
                    warn!(job_id = %job, attempt, error = %message, "job inputs unavailable");
                    let _ = std::fs::write(&log, format!("eventide: {message}\n"));
                    Some(error_outcome(message, started.elapsed()))
                }
                Ok(notes) => {
                    runner.metrics.claim_to_start(started.elapsed());
                    let run = (step.as_ref(), &prepared, notes);
                    let outcome = execute(runner, &assignment, run, &workspace, &log, cancel).await;
                    match outcome {
                        Some(outcome) if outcome.verdict == Verdict::Passed => {
                            let build_bytes = step.as_ref().map_or(0, |s| s.build_artifact_bytes);
                            let patterns = &prepared.artifacts;
                            Some(
                                store_artifacts(
                                    runner,
                                    &assignment,
                                    &workspace,
                                    &log,
                                    patterns,
                                    build_bytes,
                                    outcome,
                                )
                                .await,
                            )
                        }
                        other => other,
                    }
                }
            }
        }
    };
    // Tidying up waits for nothing: the slot reports the result and takes the next job
    // meanwhile (workspaces are per attempt, so the next job never meets this one's
    // directory).
    let ended = runner.jobs_ended.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let prune = ended.is_multiple_of(PRUNE_EVERY);
    drop(tokio::task::spawn_blocking(move || {
        let _ = std::fs::remove_dir_all(workspace);
        if prune {
            prune_logs(&logs_dir(&data_dir), LOGS_KEPT);
        }
    }));
    outcome
}

/// What a job runs, read from its commit's configuration.
struct Prepared {
    config: RepoConfig,
    /// The step's artifact patterns (none for the one-step form).
    artifacts: Vec<String>,
}

/// Fetches the commit into this node's mirror, checks it out into a fresh workspace and
/// reads its configuration: the step and matrix cell `step` names, or the one-step form
/// for a job of no build. An error is the message the job's `error` result shows.
async fn prepare(
    data_dir: &Path,
    mirrors: &Path,
    assignment: &Assignment,
    step: Option<&StepAssignment>,
    workspace: &Path,
    auth: Option<FetchAuth>,
) -> Result<Option<Prepared>, String> {
    let step = step.map(|step| (step.step.clone(), step.matrix.clone()));
    let (auth, unknown_because) = match auth {
        Some(FetchAuth { auth, unknown_because }) => {
            let auth = auth.transpose().map_err(|e| format!("{e:#}"))?.unwrap_or_default();
            (Some(auth), unknown_because)
        }
        None => (None, None),
    };
    let mirror = git::mirror_path(mirrors, &assignment.repo_url);
    let url = assignment.repo_url.clone();
    let commit: CommitId = assignment.commit.clone();
    let workspace = workspace.to_owned();
    let logs = logs_dir(data_dir);
    let result = tokio::task::spawn_blocking(move || -> Result<Option<Prepared>, String> {
        std::fs::create_dir_all(&logs).map_err(|e| format!("failed to create the log dir: {e}"))?;
        if workspace.exists() {
            std::fs::remove_dir_all(&workspace)
                .map_err(|e| format!("failed to clear the workspace: {e}"))?;
        }
        std::fs::create_dir_all(&workspace)
            .map_err(|e| format!("failed to create the workspace: {e}"))?;
        let opened = match &auth {
            // Without credentials, only a mirror that has the commit will do.
            None => match git::mirror_with_commit(&mirror, &commit) {
                Some(opened) => opened,
                None => return Ok(None),
            },
            Some(auth) => git::ensure_commit(&mirror, &url, auth, &commit).map_err(|e| {
                match &unknown_because {
                    Some(because) => format!("{e:#} (fetched without credentials: {because})"),
                    None => format!("{e:#}"),
                }
            })?,
        };
        opened.checkout(&commit, &workspace).map_err(|e| format!("checkout failed: {e:#}"))?;
        drop(opened);
        let file = read_config(&workspace)?;
        let has_tests = workspace.join("tests").is_dir();
        let Some((name, matrix)) = step else {
            let config = repo_config::resolve(file.as_deref(), has_tests).map_err(|e| e.to_string())?;
            return Ok(Some(Prepared { config, artifacts: Vec::new() }));
        };
        let pipeline =
            pipeline_config::resolve(file.as_deref(), has_tests).map_err(|e| e.to_string())?;
        let config = pipeline_config::job_config(&pipeline, &name, &matrix).ok_or_else(|| {
            let job = job_name(&name, &matrix);
            format!("{CONFIG_FILE} at this commit has no step {job:?} (it changed since the build was planned?)")
        })?;
        let artifacts = pipeline
            .steps
            .iter()
            .find(|candidate| candidate.name == name)
            .map(|found| found.artifacts.clone())
            .unwrap_or_default();
        Ok(Some(Prepared { config, artifacts }))
    })
    .await;
    result.unwrap_or_else(|e| Err(format!("job preparation failed: {e}")))
}

/// Runs the command; `None` if it was cancelled (no result to report).
async fn execute(
    runner: &Runner,
    assignment: &Assignment,
    (step, prepared, notes): (Option<&StepAssignment>, &Prepared, Vec<String>),
    workspace: &Path,
    log: &Path,
    cancel: watch::Receiver<bool>,
) -> Option<Outcome> {
    let config = &prepared.config;
    let secrets = context::secrets_for(runner, assignment, &config.secrets).await;
    let mut env = job_env(assignment, step, config, workspace);
    for (name, value) in &secrets.env {
        env.retain(|(key, _)| key != name);
        env.push((name.clone(), value.as_str().to_owned()));
    }
    let home = env.iter().find(|(name, _)| name == "HOME").map(|(_, home)| PathBuf::from(home));
    let isolation =
        match runner.isolation.prepare(workspace, home.as_deref(), config.network, config.limits) {
            Ok(isolation) => isolation,
            Err(error) => {
                let message = format!("failed to set up the job's sandbox: {error}");
                let _ = std::fs::write(log, format!("eventide: {message}\n"));
                return Some(error_outcome(message, Duration::ZERO));
            }
        };
    if !isolation.wrapper.is_empty() && !config.env.contains_key("TMPDIR") {
        // The runner's TMPDIR is not inside the sandbox; its private /tmp is.
        env.retain(|(key, _)| key != "TMPDIR");
        env.push(("TMPDIR".to_owned(), "/tmp".to_owned()));
    }
    let mut preamble = isolation.notes.clone();
    if !isolation.limits.is_unlimited() {
        preamble.push(format!("limits: {}", isolation.limits));
    }
    if isolation.network == eventide_node::isolation::Network::None {
        preamble.push("network: none".to_owned());
    }
    preamble.extend(secrets.notes.iter().cloned());
    preamble.extend(notes);
    let mask = secrets.mask.clone();
    drop(secrets);
    let spec = ExecSpec {
        command: config.command.clone(),
        workdir: workspace.to_owned(),
        env,
        timeout: config.timeout,
        log_path: log.to_owned(),
        tail_bytes: TAIL_BYTES,
        file_cap_bytes: LOG_FILE_CAP,
        isolation,
        preamble,
    };
    let result = match exec::execute_masked(spec, mask.clone(), cancel).await {
        Ok(result) => result,
        Err(error) => {
            return Some(error_outcome(
                format!("failed to start the command: {error}"),
                Duration::ZERO,
            ));
        }
    };
    let (verdict, exit_code, message) =
        judge(result.end, result.log_error, result.limit_reached, config.timeout)?;
    tracing::debug!(job_id = %assignment.job, output_bytes = result.output_bytes, "command ended");
    let job = assignment.job;
    let (tail, patterns) = (result.output_tail.clone(), config.junit.clone());
    let (workspace, log, reports_mask) = (workspace.to_owned(), log.to_owned(), mask.clone());
    // The reports are the job's own files: reading them may block, so not on this worker.
    let found = tokio::task::spawn_blocking(move || {
        let found = reports::read(job, &tail, &patterns, &workspace, &reports_mask);
        if let Some(note) = reports::skipped_message(&found.skipped) {
            append_to_log(&log, &found.skipped);
            return (found.summary, Some(note));
        }
        (found.summary, None)
    })
    .await;
    let (summary, note) = found.unwrap_or_else(|error| {
        warn!(job_id = %job, error = %error, "failed to read the test reports");
        (None, Some(format!("failed to read the test reports: {error}")))
    });
    let message = match (message, note) {
        (Some(message), Some(note)) => Some(format!("{message}; {note}")),
        (message, note) => message.or(note),
    };
    // The output and the reports are masked already; the message quotes them.
    Some(Outcome {
        verdict,
        exit_code,
        duration_ms: u64::try_from(result.duration.as_millis()).unwrap_or(u64::MAX),
        output_tail: result.output_tail,
        summary,
        message: message.map(|message| mask.text(&message)),
    })
}

/// Stores a passed step's artifacts and records them with the leader before its result:
/// a job that needs them is queued by the result and must find them. A step whose
/// artifacts cannot be stored or recorded ends in `error` saying why.
async fn store_artifacts(
    runner: &Runner,
    assignment: &Assignment,
    workspace: &Path,
    log: &Path,
    patterns: &[String],
    build_bytes: u64,
    outcome: Outcome,
) -> Outcome {
    if patterns.is_empty() {
        return outcome;
    }
    let (job, attempt) = (assignment.job, assignment.attempt);
    let failed = |message: String| {
        warn!(job_id = %job, attempt, error = %message, "artifacts not stored");
        append_lines(log, &[format!("eventide: {message}")]);
        Outcome { verdict: Verdict::Error, message: Some(message), ..outcome.clone() }
    };
    let (artifacts, notes) = match runner.artifacts.publish(workspace, patterns, build_bytes).await
    {
        Ok(published) => published,
        Err(message) => return failed(message),
    };
    let mut lines: Vec<String> = notes.iter().map(|note| format!("eventide: {note}")).collect();
    for artifact in &artifacts {
        let holders: Vec<String> = artifact.holders.iter().map(|h| h.to_string()).collect();
        lines.push(format!(
            "eventide: artifact {} stored ({} bytes, sha256 {}, on {})",
            artifact.name,
            artifact.size,
            &artifact.sha256[..12],
            holders.join(", ")
        ));
    }
    append_lines(log, &lines);
    if artifacts.is_empty() {
        return outcome;
    }
    let mut delay = Duration::from_millis(100);
    loop {
        if runner.silenced(job) {
            return outcome;
        }
        let command =
            Command::AddArtifacts { job, attempt, artifacts: artifacts.clone(), at: clock::now() };
        match runner.writer.write(command).await {
            Ok(Reply::ArtifactsAdded { count, .. }) => {
                info!(job_id = %job, attempt, count, "artifacts recorded");
                return outcome;
            }
            Ok(Reply::Refused(refusal)) => {
                return failed(format!("the artifacts were not recorded: {refusal}"))
            }
            Ok(other) => return failed(format!("unexpected reply to the artifacts: {other:?}")),
            Err(error) => {
                warn!(job_id = %job, attempt, error = %error, "artifacts not recorded yet; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
        }
    }
}

/// Adds lines at the end of the job's log.
fn append_lines(log: &Path, lines: &[String]) {
    if lines.is_empty() {
        return;
    }
    let text: String = lines.iter().map(|line| format!("{line}\n")).collect();
    let appended = std::fs::OpenOptions::new()
        .append(true)
        .open(log)
        .and_then(|mut file| std::io::Write::write_all(&mut file, text.as_bytes()));
    if let Err(error) = appended {
        warn!(log = %log.display(), error = %error, "failed to add notes to the job log");
    }
}

/// The text of the checkout's `.eventide.toml`, `None` if it has none. Anything but a
/// regular file of the checkout, within the size limit, is refused with a message that
/// names the file (the job's error).
fn read_config(workspace: &Path) -> Result<Option<String>, String> {
    match workspace::read(workspace, Path::new(CONFIG_FILE), CONFIG_MAX_BYTES) {
        Ok(bytes) => {
            String::from_utf8(bytes).map(Some).map_err(|_| format!("{CONFIG_FILE} is not UTF-8"))
        }
        Err(Refusal::Missing) => Ok(None),
        Err(refusal) => Err(format!("{CONFIG_FILE} {refusal}")),
    }
}

/// Adds the runner's notes at the end of the job's log, where its reader looks.
fn append_to_log(log: &Path, notes: &[String]) {
    let lines: Vec<String> =
        notes.iter().map(|note| format!("eventide: junit report {note}")).collect();
    append_lines(log, &lines);
}

/// The verdict, exit code and message of a command that ended; `None` if it was
/// cancelled (no result to report). Output that could not be written to the node's disk
/// makes the job an `error` whatever the command did: its log is incomplete.
fn judge(
    end: ExecEnd,
    log_error: Option<String>,
    limit_reached: Option<String>,
    timeout: Duration,
) -> Option<(Verdict, Option<i32>, Option<String>)> {
    let exit_code = match end {
        ExecEnd::Exited(code) => Some(code),
        _ => None,
    };
    if let (Some(error), false) = (&log_error, end == ExecEnd::Cancelled) {
        let message =
            format!("failed to write the job's output on the runner (disk full?): {error}");
        return Some((Verdict::Error, exit_code, Some(message)));
    }
    Some(match end {
        ExecEnd::Exited(0) => (Verdict::Passed, Some(0), None),
        ExecEnd::Exited(code) => (Verdict::Failed, Some(code), None),
        ExecEnd::Signalled(signal) => {
            (Verdict::Failed, None, Some(format!("the command was killed by signal {signal}")))
        }
        ExecEnd::TimedOut => {
            (Verdict::TimedOut, None, Some(format!("timed out after {}s", timeout.as_secs())))
        }
        ExecEnd::LimitReached => (
            Verdict::Failed,
            None,
            Some(limit_reached.unwrap_or_else(|| "a limit was reached".to_owned())),
        ),
        ExecEnd::Cancelled => return None,
    })
}

/// The job's whole environment: a minimal base, the job's identity and its
/// configuration. Nothing of the node's own environment (a cluster secret) reaches it.
fn job_env(
    assignment: &Assignment,
    step: Option<&StepAssignment>,
    config: &RepoConfig,
    workspace: &Path,
) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = Vec::new();
    for key in ["PATH", "HOME", "LANG", "LC_ALL", "TZ", "USER", "TMPDIR"] {
        if let Ok(value) = std::env::var(key) {
            env.push((key.to_owned(), value));
        }
    }
    if !env.iter().any(|(k, _)| k == "PATH") {
        env.push(("PATH".into(), "/usr/local/bin:/usr/bin:/bin".into()));
    }
    env.push(("CI".into(), "true".into()));
    env.push(("EVENTIDE_JOB_ID".into(), assignment.job.to_string()));
    env.push(("EVENTIDE_ATTEMPT".into(), assignment.attempt.to_string()));
    env.push(("EVENTIDE_COMMIT".into(), assignment.commit.to_string()));
    env.push(("EVENTIDE_BRANCH".into(), assignment.branch.clone()));
    env.push(("EVENTIDE_WORKSPACE".into(), workspace.display().to_string()));
    if let Some(step) = step {
        env.push(("EVENTIDE_BUILD_ID".into(), step.build.to_string()));
        env.push(("EVENTIDE_STEP".into(), step.step.clone()));
        env.push(("EVENTIDE_JOB_NAME".into(), job_name(&step.step, &step.matrix)));
    }
    for (key, value) in &config.env {
        env.retain(|(k, _)| k != key);
        env.push((key.clone(), value.clone()));
    }
    env
}

fn error_outcome(message: String, elapsed: Duration) -> Outcome {
    Outcome {
        verdict: Verdict::Error,
        exit_code: None,
        duration_ms: u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
        output_tail: String::new(),
        summary: None,
        message: Some(message),
    }
}

/// Submits `Finish` through the write path until the cluster accepts or refuses it, or
/// the job is silenced.
pub(super) async fn report(runner: &Runner, job: JobId, attempt: u32, outcome: Outcome) {
    let mut delay = Duration::from_millis(100);
    loop {
        if runner.silenced(job) {
            warn!(job_id = %job, attempt, "result not reported: the job was stopped");
            return;
        }
        let finished = Finished { job, attempt, outcome: outcome.clone(), at: clock::now() };
        let command =
            Command::Finish { job, attempt, outcome: finished.outcome.clone(), at: finished.at };
        let reply = runner.writer.write(command).await;
        if answered(runner, &finished, reply) {
            return;
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(2));
    }
}

/// Logs and counts the cluster's answer to a result; false if it is no answer (the
/// result may or may not be recorded, and is to be reported again: a second `Finish` of
/// an attempt is refused, so it is never recorded twice).
pub(super) fn answered(
    runner: &Runner,
    finished: &Finished,
    reply: Result<Reply, WriteError>,
) -> bool {
    let Finished { job, attempt, ref outcome, at } = *finished;
    let verdict = outcome.verdict;
    match reply {
        Ok(Reply::Finished { status, .. }) => {
            info!(job_id = %job, attempt, status = status.as_str(), "job finished");
            let created_at =
                runner.state_machine.read(|state| state.job(job).map(|j| j.created_at));
            runner.metrics.job_reported(created_at, at, outcome.duration_ms);
        }
        Ok(Reply::Refused(eventide_consensus::Refusal::NotRunning { status, .. }))
            if status == verdict.status() =>
        {
            // An earlier report whose answer was lost was recorded.
            info!(job_id = %job, attempt, status = status.as_str(), "job finished (result recorded by an earlier report)");
        }
        Ok(Reply::Refused(refusal)) => {
            warn!(job_id = %job, attempt, verdict = ?verdict, refusal = %refusal, "result refused");
        }
        Ok(other) => {
            warn!(job_id = %job, attempt, reply = ?other, "unexpected reply to a result");
        }
        Err(error) => {
            warn!(job_id = %job, attempt, error = %error, "result not accepted yet; retrying");
            return false;
        }
    }
    true
}

/// Keeps the newest `LOGS_KEPT` job logs.
/// Deletes the oldest files of the log directory `logs` beyond the `keep` newest.
fn prune_logs(logs: &Path, keep: usize) {
    let Ok(entries) = std::fs::read_dir(logs) else { return };
    let mut logs: Vec<(std::time::SystemTime, PathBuf)> = entries
        .flatten()
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .collect();
    if logs.len() <= keep {
        return;
    }
    logs.sort();
    for (_, path) in &logs[..logs.len() - keep] {
        let _ = std::fs::remove_file(path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMEOUT: Duration = Duration::from_secs(60);

    #[test]
    fn pruning_keeps_the_newest_logs() {
        let dir = tempfile::tempdir().expect("temp dir");
        let start = std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        for n in 0..30u64 {
            let path = dir.path().join(format!("job-{n}-1.log"));
            let file = std::fs::File::create(&path).expect("create a log");
            file.set_modified(start + Duration::from_secs(n)).expect("set its time");
        }
        prune_logs(dir.path(), 40);
        assert_eq!(std::fs::read_dir(dir.path()).expect("read").count(), 30, "under the cap");
        prune_logs(dir.path(), 20);
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .expect("read")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        left.sort_by_key(|name| name[4..name.len() - 6].parse::<u64>().expect("a number"));
        let newest: Vec<String> = (10..30).map(|n| format!("job-{n}-1.log")).collect();
        assert_eq!(left, newest);
        prune_logs(&dir.path().join("missing"), 20);
    }

    #[test]
    fn exit_codes_signals_and_timeouts_are_judged() {
        assert_eq!(
            judge(ExecEnd::Exited(0), None, None, TIMEOUT),
            Some((Verdict::Passed, Some(0), None))
        );
        assert_eq!(
            judge(ExecEnd::Exited(3), None, None, TIMEOUT),
            Some((Verdict::Failed, Some(3), None))
        );
        let (verdict, _, message) =
            judge(ExecEnd::TimedOut, None, None, TIMEOUT).expect("a result");
        assert_eq!((verdict, message.as_deref()), (Verdict::TimedOut, Some("timed out after 60s")));
        assert_eq!(judge(ExecEnd::Cancelled, None, None, TIMEOUT), None);
        let memory = Some("memory limit 64 MiB reached".to_owned());
        assert_eq!(
            judge(ExecEnd::LimitReached, None, memory, TIMEOUT),
            Some((Verdict::Failed, None, Some("memory limit 64 MiB reached".to_owned())))
        );
    }

    #[test]
    fn output_lost_to_a_full_disk_is_an_error_even_if_the_tests_passed() {
        let full = Some("No space left on device (os error 28)".to_owned());
        let (verdict, exit_code, message) =
            judge(ExecEnd::Exited(0), full.clone(), None, TIMEOUT).expect("a result");
        assert_eq!((verdict, exit_code), (Verdict::Error, Some(0)));
        let message = message.expect("a message");
        assert!(message.contains("disk full") && message.contains("os error 28"), "{message}");
        assert_eq!(
            judge(ExecEnd::Cancelled, full, None, TIMEOUT),
            None,
            "cancelled reports nothing"
        );
    }
}
