//! Running one job's command safely: a clean environment, its own process group, a
//! timeout, cancellation, and output that is streamed to disk and kept bounded in memory.
//!
//! ```text
//!  sh -c COMMAND ──┬─ stdout ─┐
//!  (own group)     └─ stderr ─┴─> one pipe ──> pump (async read, 64 KiB)
//!                                                │ bounded channel
//!                                                v
//!                      sink (blocking thread): mask ──> log file (up to the cap)
//!                                                  └──> tail (last N bytes)
//! ```
//!
//! The sink masks the job's secret values ([`Mask`]) before anything is kept, so the log
//! file, everyone following it and the tail in the result see `***` only.
//!
//! Whatever way the shell ends (exit, timeout, cancel, a limit), the whole process group
//! is killed, and with it the job's sandbox and cgroup, so nothing the job started
//! outlives it. Under bubblewrap the job has its own PID namespace, which dies with the
//! sandbox however its processes regrouped; the cgroup catches the rest. A process that
//! left the group but still holds the pipe gets a short drain period; then the pipe is
//! closed and reading stops.
//!
//! While the job runs, its limits are watched: the kernel's count of processes it refused
//! or killed for the job's cgroup, and the size of its workspace. A job past one is
//! killed and ends with [`ExecEnd::LimitReached`], the limit named.

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;
use tokio::net::unix::pipe;
use tokio::sync::{mpsc, watch};
use tracing::{debug, warn};

use super::mask::{Mask, MaskStream};
use super::spawn::{self, SpawnSpec};
use crate::sandbox::JobIsolation;

/// The shell that runs the command, by absolute path: the job's environment may have no
/// `PATH`.
const SHELL: &str = "/bin/sh";

/// Size of one read from the output pipe.
const READ_CHUNK: usize = 64 * 1024;

/// Chunks in flight between the pump and the sink; bounds memory and applies backpressure
/// to a job that prints faster than the disk takes it.
const CHUNKS_IN_FLIGHT: usize = 4;

/// How long output is still read after the job's process group is gone. Only a process
/// that escaped the group (e.g. with `setsid`) can hold the pipe open that long.
const DRAIN_DEADLINE: Duration = Duration::from_secs(2);

/// How often the job's cgroup is asked whether it hit a limit.
const LIMIT_CHECK: Duration = Duration::from_millis(200);
/// How often the workspace is measured against its disk limit.
const DISK_CHECK: Duration = Duration::from_secs(1);

/// What to run and where its output goes.
pub struct ExecSpec {
    /// Run as `sh -c <command>`.
    pub command: String,
    /// The checkout; the command's working directory.
    pub workdir: PathBuf,
    /// The complete environment of the job. Nothing of the node's own environment is
    /// passed on, so it must include `PATH` if the command needs one.
    pub env: Vec<(String, String)>,
    pub timeout: Duration,
    /// The job's output file, created (or truncated) and written as output arrives.
    pub log_path: PathBuf,
    /// How many bytes from the end of the output to return in the result.
    pub tail_bytes: usize,
    /// At most this many output bytes go to `log_path`; then one marker line, and no more.
    pub file_cap_bytes: u64,
    /// The sandbox and limits the command runs under (none by default).
    pub isolation: JobIsolation,
    /// Lines written at the top of the log, before the command's output.
    pub preamble: Vec<String>,
}

/// How the job's command ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExecEnd {
    /// The shell exited with this code.
    Exited(i32),
    /// The shell was killed by this signal (not by us).
    Signalled(i32),
    TimedOut,
    Cancelled,
    /// Killed for reaching a limit, named in [`ExecResult::limit_reached`].
    LimitReached,
}

#[derive(Clone, Debug)]
pub struct ExecResult {
    pub end: ExecEnd,
    /// From the start of the shell to its end (or to the kill).
    pub duration: Duration,
    /// The end of the output as lossy UTF-8: at most `tail_bytes` bytes, starting at a
    /// character boundary.
    pub output_tail: String,
    /// All output bytes produced (once masked), including those beyond the file cap.
    pub output_bytes: u64,
    /// Why the output could not be written to `log_path` (a full disk), if it could not;
    /// the job's result cannot be trusted then, and the job ends in `error`.
    pub log_error: Option<String>,
    /// Which limit the job reached (`memory limit 2 GiB reached`), if it reached one.
    pub limit_reached: Option<String>,
}

/// Runs `spec.command` to its end, a timeout, or `cancel` becoming true, keeping its
/// output as it is (see [`execute_masked`]).
pub async fn execute(spec: ExecSpec, cancel: watch::Receiver<bool>) -> io::Result<ExecResult> {
    execute_masked(spec, Mask::default(), cancel).await
}

/// Runs `spec.command` to its end, a timeout, or `cancel` becoming true, with every value
/// of `mask` replaced by `***` in the output it keeps (the preamble is the runner's own
/// and is not masked).
///
/// An error means the command could not be started or waited for (missing working
/// directory, unwritable log file); the process group is killed in that case too, and
/// also if the returned future is dropped.
pub async fn execute_masked(
    mut spec: ExecSpec,
    mask: Mask,
    mut cancel: watch::Receiver<bool>,
) -> io::Result<ExecResult> {
    let mut log_file = File::create(&spec.log_path).map_err(|error| {
        io::Error::new(
            error.kind(),
            format!("failed to create job log {}: {error}", spec.log_path.display()),
        )
    })?;
    let preamble: String = spec.preamble.iter().map(|line| format!("eventide: {line}\n")).collect();
    if !preamble.is_empty() {
        log_file.write_all(preamble.as_bytes())?;
    }
    let mut isolation = std::mem::take(&mut spec.isolation);
    // Both ends are close-on-exec; the child gets only its dup'ed write end. The write end
    // is blocking for the child, the read end non-blocking for us. (`std::io::pipe` would
    // do the same but is newer than the workspace's minimum Rust version.)
    let (pipe_writer, output) = pipe::pipe()?;
    let pipe_writer = pipe_writer.into_blocking_fd()?;
    let stderr_writer = pipe_writer.try_clone()?;

    let (program, mut args) = match isolation.wrapper.split_first() {
        Some((program, wrapper_args)) => {
            let mut args = wrapper_args.to_vec();
            args.push(SHELL.into());
            (program.clone(), args)
        }
        None => (SHELL.into(), Vec::new()),
    };
    args.push("-c".into());
    args.push(spec.command.clone().into());
    let mut env = spec.env.clone();
    if !isolation.wrapper.is_empty() {
        // The host's temp dir is not in the sandbox; its own /tmp is.
        for (name, value) in &mut env {
            if name == "TMPDIR" {
                *value = "/tmp".to_owned();
            }
        }
    }
    let joins: Vec<std::ffi::CString> =
        isolation.cgroup.as_ref().map(|c| c.join_paths().to_vec()).unwrap_or_default();
    let started = Instant::now();
    let spawned = spawn::spawn(SpawnSpec {
        program: &program,
        args: &args,
        env: &env,
        workdir: &spec.workdir,
        stdout: pipe_writer,
        stderr: stderr_writer,
        cgroup_joins: &joins,
        rlimits: &isolation.rlimits,
    });
    let mut child = spawned.map_err(|error| {
        io::Error::new(
            error.kind(),
            format!("failed to start job command in {}: {error}", spec.workdir.display()),
        )
    })?;
    let pgid = child.id();
    let mut group = ProcessGroup { pgid, armed: true };
    debug!(
        pgid,
        workdir = %spec.workdir.display(),
        log = %spec.log_path.display(),
        "job process started"
    );

    let (chunks, chunks_received) = mpsc::channel(CHUNKS_IN_FLIGHT);
    let sink = OutputSink::new(log_file, spec.file_cap_bytes, spec.tail_bytes).masked(mask);
    let sink = tokio::task::spawn_blocking(move || sink.consume(chunks_received));
    // Boxed so that it can be dropped (closing the pipe) before this function returns.
    let mut pump = Box::pin(pump_output(output, chunks));
    let mut pump_done = false;

    let deadline = tokio::time::sleep(spec.timeout);
    tokio::pin!(deadline);
    let watched = isolation.cgroup.is_some() || isolation.limits.disk.is_some();
    let mut checks = tokio::time::interval(LIMIT_CHECK);
    checks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_disk_check = Instant::now();
    let mut limit_reached = None;
    let end = loop {
        tokio::select! {
            status = child.wait() => break end_of(status?),
            () = &mut deadline => break ExecEnd::TimedOut,
            () = cancelled(&mut cancel) => break ExecEnd::Cancelled,
            () = &mut pump, if !pump_done => pump_done = true,
            _ = checks.tick(), if watched => {
                let disk_due = last_disk_check.elapsed() >= DISK_CHECK;
                if disk_due {
                    last_disk_check = Instant::now();
                }
                if let Some(reason) = reached(&isolation, &spec.workdir, disk_due).await {
                    limit_reached = Some(reason);
                    break ExecEnd::LimitReached;
                }
            }
        }
    };
    let duration = started.elapsed();
    // A process killed by the kernel for memory may have ended the shell first.
    let end = match (end, isolation.cgroup.as_ref().and_then(|c| c.reached())) {
        (ExecEnd::Exited(_) | ExecEnd::Signalled(_), Some(reason)) => {
            limit_reached = Some(reason);
            ExecEnd::LimitReached
        }
        (end, _) => end,
    };
    if matches!(end, ExecEnd::TimedOut | ExecEnd::Cancelled | ExecEnd::LimitReached) {
        group.kill();
        if let Some(cgroup) = &isolation.cgroup {
            cgroup.kill_all();
        }
        // Also by pid, in case the shell moved itself out of its group; an error only
        // means it is already gone.
        let _ = child.start_kill();
        child.wait().await?;
    }
    // Background processes the job left behind die with it.
    group.kill_last();
    if let Some(cgroup) = isolation.cgroup.take() {
        cgroup.kill_all();
        drop(tokio::task::spawn_blocking(move || cgroup.release()));
    }

    if !pump_done && tokio::time::timeout(DRAIN_DEADLINE, &mut pump).await.is_err() {
        debug!(pgid, "job output still open after its process group ended; closing it");
    }
    drop(pump);
    let sink =
        sink.await.map_err(|error| io::Error::other(format!("job output sink failed: {error}")))?;
    let output_bytes = sink.total;
    let output_tail = sink.tail.text(output_bytes);
    let log_error = sink.write_error;
    debug!(
        pgid,
        end = ?end,
        duration_ms = duration.as_millis() as u64,
        output_bytes,
        "job process ended"
    );
    Ok(ExecResult { end, duration, output_tail, output_bytes, log_error, limit_reached })
}

/// The limit the job reached, if it did: its cgroup's, or (when `disk_due`) its
/// workspace's size.
async fn reached(
    isolation: &JobIsolation,
    workdir: &std::path::Path,
    disk_due: bool,
) -> Option<String> {
    if let Some(reason) = isolation.cgroup.as_ref().and_then(|c| c.reached()) {
        return Some(reason);
    }
    let limit = isolation.limits.disk.filter(|_| disk_due)?;
    let workdir = workdir.to_owned();
    let used = tokio::task::spawn_blocking(move || disk_usage(&workdir, limit)).await.ok()?;
    (used > limit).then(|| format!("disk limit {} reached", crate::units::format_size(limit)))
}

/// The bytes the files under `dir` take on disk, without following symlinks; stops
/// counting once past `stop_after`.
pub fn disk_usage(dir: &std::path::Path, stop_after: u64) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut used = 0u64;
    let mut pending = vec![dir.to_owned()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let Ok(metadata) = entry.metadata() else { continue };
            used = used.saturating_add(metadata.blocks().saturating_mul(512));
            if metadata.is_dir() {
                pending.push(entry.path());
            }
            if used > stop_after {
                return used;
            }
        }
    }
    used
}

fn end_of(status: ExitStatus) -> ExecEnd {
    match (status.code(), status.signal()) {
        (Some(code), _) => ExecEnd::Exited(code),
        (None, Some(signal)) => ExecEnd::Signalled(signal),
        // `wait` reports only terminated processes, which have one or the other.
        (None, None) => ExecEnd::Exited(-1),
    }
}

/// Resolves once `cancel` is true; never if its sender is gone without cancelling.
async fn cancelled(cancel: &mut watch::Receiver<bool>) {
    let outcome = cancel.wait_for(|cancelled| *cancelled).await.map(|_| ());
    if outcome.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Reads the pipe until end of file and hands the bytes to the sink.
async fn pump_output(mut output: pipe::Receiver, chunks: mpsc::Sender<Vec<u8>>) {
    let mut buffer = vec![0; READ_CHUNK];
    loop {
        match output.read(&mut buffer).await {
            Ok(0) => return,
            Ok(read) => {
                if chunks.send(buffer[..read].to_vec()).await.is_err() {
                    return;
                }
            }
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => {
                debug!(error = %error, "failed to read job output");
                return;
            }
        }
    }
}

/// The job's process group; killed on drop unless already killed for the last time.
struct ProcessGroup {
    pgid: libc::pid_t,
    armed: bool,
}

impl ProcessGroup {
    fn kill(&self) {
        // pgid 0 or 1 would signal our own group or every process we may signal.
        if self.pgid <= 1 {
            return;
        }
        // SAFETY: killpg reads and writes no memory of this process; it only sends a
        // signal. `pgid` is the group made for the job's shell (`process_group(0)`), whose
        // id stays reserved while any member of the group lives.
        let result = unsafe { libc::killpg(self.pgid, libc::SIGKILL) };
        if result != 0 {
            let error = io::Error::last_os_error();
            if error.raw_os_error() != Some(libc::ESRCH) {
                debug!(pgid = self.pgid, error = %error, "failed to kill job process group");
            }
        }
    }

    fn kill_last(&mut self) {
        if self.armed {
            self.kill();
            self.armed = false;
        }
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        self.kill_last();
    }
}

/// Where output bytes go once masked: the log file up to its cap, and the tail in memory.
struct OutputSink<W> {
    mask: MaskStream,
    /// `None` once the cap is reached or a write failed.
    file: Option<W>,
    file_cap: u64,
    written: u64,
    /// Whether the last byte written to the file ended a line.
    at_line_start: bool,
    tail: Tail,
    total: u64,
    /// The first error writing or flushing the file.
    write_error: Option<String>,
}

impl<W: Write> OutputSink<W> {
    fn new(file: W, file_cap: u64, tail_bytes: usize) -> Self {
        OutputSink {
            mask: MaskStream::new(Mask::default()),
            file: Some(file),
            file_cap,
            written: 0,
            at_line_start: true,
            tail: Tail::new(tail_bytes),
            total: 0,
            write_error: None,
        }
    }

    fn masked(mut self, mask: Mask) -> Self {
        self.mask = MaskStream::new(mask);
        self
    }

    fn consume(mut self, mut chunks: mpsc::Receiver<Vec<u8>>) -> Self {
        while let Some(chunk) = chunks.blocking_recv() {
            self.accept(&chunk);
        }
        self.finish()
    }

    /// Masks `bytes` and keeps what the mask lets out.
    fn accept(&mut self, bytes: &[u8]) {
        let masked = self.mask.push(bytes);
        self.keep(&masked);
    }

    /// Keeps what the mask held back, and flushes the file.
    fn finish(mut self) -> Self {
        let rest = self.mask.finish();
        self.keep(&rest);
        if let Some(file) = self.file.as_mut() {
            if let Err(error) = file.flush() {
                warn!(error = %error, "failed to flush job log");
                self.write_error.get_or_insert_with(|| error.to_string());
            }
        }
        self
    }

    fn keep(&mut self, bytes: &[u8]) {
        self.total += bytes.len() as u64;
        self.tail.push(bytes);
        let Some(file) = self.file.as_mut() else { return };
        let room = self.file_cap.saturating_sub(self.written);
        let kept = &bytes[..bytes.len().min(usize::try_from(room).unwrap_or(usize::MAX))];
        let mut result = file.write_all(kept);
        self.written += kept.len() as u64;
        if let Some(last) = kept.last() {
            self.at_line_start = *last == b'\n';
        }
        let capped = kept.len() < bytes.len();
        if capped && result.is_ok() {
            let newline = if self.at_line_start { "" } else { "\n" };
            let marker =
                format!("{newline}[eventide: output truncated after {} bytes]\n", self.file_cap);
            result = file.write_all(marker.as_bytes()).and_then(|()| file.flush());
        }
        if let Err(error) = &result {
            warn!(error = %error, "failed to write job log; keeping only the tail");
            self.write_error.get_or_insert_with(|| error.to_string());
        }
        if capped || result.is_err() {
            self.file = None;
        }
    }
}

/// The last `limit` bytes of a stream, in at most `2 * limit` bytes of memory.
struct Tail {
    limit: usize,
    /// The stream's last bytes; only the last `limit` of them count.
    bytes: Vec<u8>,
}

impl Tail {
    fn new(limit: usize) -> Self {
        Tail { limit, bytes: Vec::new() }
    }

    fn push(&mut self, chunk: &[u8]) {
        if chunk.len() >= self.limit {
            self.bytes.clear();
            self.bytes.extend_from_slice(&chunk[chunk.len() - self.limit..]);
            return;
        }
        let bound = 2 * self.limit;
        if self.bytes.len() + chunk.len() > bound {
            // Keep just enough that, with the chunk, exactly `limit` bytes remain.
            let keep = self.limit - chunk.len();
            self.bytes.drain(..self.bytes.len() - keep);
        }
        let needed = self.bytes.len() + chunk.len();
        if needed > self.bytes.capacity() {
            let target = needed.max(2 * self.bytes.capacity()).min(bound);
            self.bytes.reserve_exact(target - self.bytes.len());
        }
        self.bytes.extend_from_slice(chunk);
    }

    fn last(&self) -> &[u8] {
        &self.bytes[self.bytes.len().saturating_sub(self.limit)..]
    }

    /// The tail as text of at most `limit` bytes. When the stream was longer than the
    /// tail, a character cut in half at the start is dropped; invalid bytes become U+FFFD,
    /// and if that makes the text longer than `limit`, its start is cut at a boundary.
    fn text(&self, stream_len: u64) -> String {
        let mut bytes = self.last();
        if stream_len > bytes.len() as u64 {
            let cut_char = bytes.iter().take(3).take_while(|b| (**b & 0xC0) == 0x80).count();
            bytes = &bytes[cut_char..];
        }
        let text = String::from_utf8_lossy(bytes);
        if text.len() <= self.limit {
            return text.into_owned();
        }
        let mut start = text.len() - self.limit;
        while !text.is_char_boundary(start) {
            start += 1;
        }
        text[start..].to_owned()
    }
}

#[cfg(test)]
#[path = "exec_test.rs"]
mod tests;
