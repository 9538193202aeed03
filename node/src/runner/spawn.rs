//! Starting a job's command without copying the node: the child shares the node's memory
//! (`clone` with `CLONE_VM | CLONE_VFORK`, as `posix_spawn` does) for the few system
//! calls it makes before `execve`, so starting a job costs the same whatever the node's
//! size. `fork`, which a `pre_exec` hook forces, copied the node's page tables for every
//! job, and both processes then took a page fault for each page either wrote: about a
//! quarter of a busy small node's CPU.
//!
//! Between `clone` and `execve` the child joins the job's cgroups, sets its rlimits, makes
//! its own process group, enters the workspace and takes its standard streams. All of it
//! is prepared by the parent first; the child only reads that and calls async-signal-safe
//! functions, allocates nothing, and reports a failure through one shared slot before it
//! exits. The parent's thread is suspended until the child has called `execve` or exited
//! (`CLONE_VFORK`); the node's other threads run on.
//!
//! The child is waited for through a pidfd (Linux 5.3), which the runtime polls: no thread
//! waits for a job, and nothing else in the node reaps it.

use std::ffi::{CString, OsStr, OsString};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::ExitStatus;
use std::sync::atomic::{AtomicI32, Ordering};

use tokio::io::unix::AsyncFd;

use crate::sandbox::Rlimit;

/// The child's stack while it shares the parent's memory: its calls are few and shallow.
const CHILD_STACK_BYTES: usize = 64 * 1024;
/// Below the stack, unmapped: a child running past its stack faults (and dies) instead
/// of writing over the parent's memory.
const GUARD_BYTES: usize = 4096;

/// The child's stack, mapped for one spawn (only the pages it touches take memory).
struct ChildStack {
    base: *mut libc::c_void,
    len: usize,
}

impl ChildStack {
    fn new() -> io::Result<ChildStack> {
        let len = GUARD_BYTES + CHILD_STACK_BYTES;
        // SAFETY: a fresh private anonymous mapping, owned by the returned value.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let stack = ChildStack { base, len };
        // SAFETY: the range is inside the mapping just made.
        let usable = unsafe {
            libc::mprotect(
                base.cast::<u8>().add(GUARD_BYTES).cast(),
                CHILD_STACK_BYTES,
                libc::PROT_READ | libc::PROT_WRITE,
            )
        };
        if usable != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(stack)
    }

    /// The top, where a stack that grows down starts (page-aligned, so 16-byte aligned).
    fn top(&self) -> *mut libc::c_void {
        self.base.cast::<u8>().wrapping_add(self.len).cast()
    }
}

impl Drop for ChildStack {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping `new` made, which nothing uses any more.
        unsafe { libc::munmap(self.base, self.len) };
    }
}

/// What to start.
pub struct SpawnSpec<'a> {
    /// By absolute path: no `PATH` search happens.
    pub program: &'a OsStr,
    /// The arguments after the program's name (`argv[1..]`).
    pub args: &'a [OsString],
    /// The whole environment.
    pub env: &'a [(String, String)],
    pub workdir: &'a Path,
    /// The child's standard output and error; its standard input is `/dev/null`.
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
    /// Files (`cgroup.procs`, `tasks`) the child writes `0` to, joining those groups.
    pub cgroup_joins: &'a [CString],
    pub rlimits: &'a [Rlimit],
}

/// What the child failed at before `execve`, as the parent's error says it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
enum Stage {
    None = 0,
    Cgroup = 1,
    Rlimit = 2,
    ProcessGroup = 3,
    Workdir = 4,
    Streams = 5,
    Exec = 6,
}

impl Stage {
    fn from_code(code: i32) -> Stage {
        match code {
            1 => Stage::Cgroup,
            2 => Stage::Rlimit,
            3 => Stage::ProcessGroup,
            4 => Stage::Workdir,
            5 => Stage::Streams,
            6 => Stage::Exec,
            _ => Stage::None,
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Stage::None => "starting",
            Stage::Cgroup => "joining the job's cgroup",
            Stage::Rlimit => "setting the job's rlimits",
            Stage::ProcessGroup => "making the job's process group",
            Stage::Workdir => "entering the working directory",
            Stage::Streams => "setting up the standard streams",
            Stage::Exec => "executing",
        }
    }
}

/// Everything the child reads, prepared before `clone`. Its pointers point into the
/// `CString`s held by [`Prepared`], which outlives the child's use of them.
struct ChildArgs {
    program: *const libc::c_char,
    argv: *const *const libc::c_char,
    envp: *const *const libc::c_char,
    workdir: *const libc::c_char,
    /// Each becomes the child's fd 0, 1 and 2.
    streams: [RawFd; 3],
    /// The highest signal number, whose handlers the child resets.
    last_signal: libc::c_int,
    joins: Vec<*const libc::c_char>,
    rlimits: Vec<(libc::__rlimit_resource_t, libc::rlim_t)>,
    /// Written by the child just before it exits on a failure; read by the parent once
    /// the child has exec'd or exited.
    failed_stage: AtomicI32,
    failed_errno: AtomicI32,
}

/// The strings `ChildArgs` points into.
struct Prepared {
    _program: CString,
    _argv: Vec<CString>,
    _argv_ptrs: Vec<*const libc::c_char>,
    _env: Vec<CString>,
    _env_ptrs: Vec<*const libc::c_char>,
    _workdir: CString,
    args: ChildArgs,
}

fn c_string(bytes: &[u8], what: &str) -> io::Result<CString> {
    CString::new(bytes).map_err(|_| {
        io::Error::new(io::ErrorKind::InvalidInput, format!("{what} contains a NUL byte"))
    })
}

/// Moves `fd` to a number above the standard streams, so that making one stream of the
/// child never overwrites the source of another.
fn above_streams(fd: OwnedFd) -> io::Result<OwnedFd> {
    if fd.as_raw_fd() > 2 {
        return Ok(fd);
    }
    // SAFETY: `fd` is open; F_DUPFD_CLOEXEC returns a new descriptor we then own.
    let moved = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 3) };
    if moved < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `moved` is a fresh descriptor owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(moved) })
}

/// `spec`'s strings and numbers as the child needs them; its streams are `streams`.
fn prepare(spec: &SpawnSpec<'_>, streams: [RawFd; 3]) -> io::Result<Prepared> {
    if !spec.program.as_bytes().starts_with(b"/") {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is not an absolute path", Path::new(spec.program).display()),
        ));
    }
    let program = c_string(spec.program.as_bytes(), "the program")?;
    let mut argv = vec![program.clone()];
    for arg in spec.args {
        argv.push(c_string(arg.as_bytes(), "an argument")?);
    }
    let mut env = Vec::with_capacity(spec.env.len());
    for (name, value) in spec.env {
        if name.is_empty() || name.contains('=') {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("environment variable name {name:?} is invalid"),
            ));
        }
        env.push(c_string(format!("{name}={value}").as_bytes(), "the environment")?);
    }
    let workdir = c_string(spec.workdir.as_os_str().as_bytes(), "the working directory")?;
    let argv_ptrs: Vec<*const libc::c_char> =
        argv.iter().map(|arg| arg.as_ptr()).chain(std::iter::once(std::ptr::null())).collect();
    let env_ptrs: Vec<*const libc::c_char> =
        env.iter().map(|var| var.as_ptr()).chain(std::iter::once(std::ptr::null())).collect();
    let rlimits = spec
        .rlimits
        .iter()
        .map(|limit| match *limit {
            Rlimit::AddressSpace(bytes) => (libc::RLIMIT_AS, bytes),
            Rlimit::Processes(count) => (libc::RLIMIT_NPROC, count),
        })
        .collect();
    let args = ChildArgs {
        program: program.as_ptr(),
        argv: argv_ptrs.as_ptr(),
        envp: env_ptrs.as_ptr(),
        workdir: workdir.as_ptr(),
        streams,
        last_signal: libc::SIGRTMAX(),
        joins: spec.cgroup_joins.iter().map(|path| path.as_ptr()).collect(),
        rlimits,
        failed_stage: AtomicI32::new(Stage::None as i32),
        failed_errno: AtomicI32::new(0),
    };
    Ok(Prepared {
        _program: program,
        _argv: argv,
        _argv_ptrs: argv_ptrs,
        _env: env,
        _env_ptrs: env_ptrs,
        _workdir: workdir,
        args,
    })
}

/// The child, from `clone` to `execve`. It shares the parent's memory: it reads `args`,
/// writes only the failure slot, and calls nothing that allocates or locks.
extern "C" fn child_main(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the `ChildArgs` the parent passed to `clone`; the parent's thread
    // is suspended, holding it alive, until this process execs or exits.
    let args = unsafe { &*arg.cast::<ChildArgs>() };
    let fail = |stage: Stage| -> ! {
        // SAFETY: reads this thread's errno, set by the call that just failed.
        let errno = unsafe { *libc::__errno_location() };
        args.failed_errno.store(errno, Ordering::Relaxed);
        args.failed_stage.store(stage as i32, Ordering::Relaxed);
        // SAFETY: `_exit` ends this process without running the parent's exit handlers.
        unsafe { libc::_exit(127) }
    };
    // SAFETY (for every call below): each is async-signal-safe, and reads only memory
    // prepared before `clone` or on this stack.
    unsafe {
        // The parent's handlers must not run here, on its memory: a caught signal takes
        // its default action from now on (exec would reset it anyway), and an ignored
        // SIGPIPE is the node's own choice, not the job's.
        for signal in 1..=args.last_signal {
            let mut action: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(signal, std::ptr::null(), &mut action) != 0 {
                continue;
            }
            let caught =
                action.sa_sigaction != libc::SIG_DFL && action.sa_sigaction != libc::SIG_IGN;
            if caught || (signal == libc::SIGPIPE && action.sa_sigaction == libc::SIG_IGN) {
                let mut default: libc::sigaction = std::mem::zeroed();
                default.sa_sigaction = libc::SIG_DFL;
                libc::sigaction(signal, &default, std::ptr::null_mut());
            }
        }
        for &path in &args.joins {
            let fd = libc::open(path, libc::O_WRONLY | libc::O_CLOEXEC);
            if fd < 0 {
                fail(Stage::Cgroup);
            }
            let written = libc::write(fd, b"0".as_ptr().cast(), 1);
            if written != 1 {
                fail(Stage::Cgroup);
            }
            libc::close(fd);
        }
        for &(resource, value) in &args.rlimits {
            let limit = libc::rlimit { rlim_cur: value, rlim_max: value };
            if libc::setrlimit(resource, &limit) != 0 {
                fail(Stage::Rlimit);
            }
        }
        if libc::setpgid(0, 0) != 0 {
            fail(Stage::ProcessGroup);
        }
        if libc::chdir(args.workdir) != 0 {
            fail(Stage::Workdir);
        }
        for (target, &source) in args.streams.iter().enumerate() {
            // The sources are above 2 (see `above_streams`): dup2 never meets itself.
            if libc::dup2(source, target as RawFd) < 0 {
                fail(Stage::Streams);
            }
        }
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut none);
        libc::pthread_sigmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
        libc::execve(args.program, args.argv, args.envp);
    }
    fail(Stage::Exec)
}

/// Starts `spec`: the child is in its own process group, in the job's cgroups, under its
/// rlimits. An error names what failed (`entering the working directory: No such file or
/// directory`).
pub fn spawn(mut spec: SpawnSpec<'_>) -> io::Result<Child> {
    let null = std::fs::File::open("/dev/null")?;
    let stdin = above_streams(OwnedFd::from(null))?;
    spec.stdout = above_streams(spec.stdout)?;
    spec.stderr = above_streams(spec.stderr)?;
    let streams = [stdin.as_raw_fd(), spec.stdout.as_raw_fd(), spec.stderr.as_raw_fd()];
    let mut prepared = prepare(&spec, streams)?;
    let stack = ChildStack::new()?;
    let top = stack.top();
    let args: *mut ChildArgs = &mut prepared.args;
    // SAFETY: every signal is blocked on this thread while the child shares its memory,
    // so no handler of the parent runs in the child before it resets them; the old mask
    // is restored right after.
    let pid = unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
        // SAFETY: `child_main` only reads `args` and the stack is its own; CLONE_VFORK
        // keeps `prepared` and `stack` alive (this thread waits) until it is done.
        let pid = libc::clone(
            child_main,
            top,
            libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
            args.cast(),
        );
        let error = io::Error::last_os_error();
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
        if pid < 0 {
            return Err(error);
        }
        pid
    };
    // The child has its copies of the streams (or is gone): ours must close, or the
    // output pipe never reaches its end.
    drop((stack, stdin, spec));
    let stage = Stage::from_code(prepared.args.failed_stage.load(Ordering::Relaxed));
    if stage != Stage::None {
        let errno = prepared.args.failed_errno.load(Ordering::Relaxed);
        reap_blocking(pid);
        let error = io::Error::from_raw_os_error(errno);
        return Err(io::Error::new(error.kind(), format!("{}: {error}", stage.describe())));
    }
    let pidfd = match rustix::process::Pid::from_raw(pid)
        .ok_or_else(|| io::Error::other("clone returned pid 0"))
        .and_then(|id| {
            rustix::process::pidfd_open(id, rustix::process::PidfdFlags::empty())
                .map_err(io::Error::from)
        }) {
        Ok(fd) => fd,
        Err(error) => {
            // SAFETY: kill only sends a signal, to the child just started.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            reap_blocking(pid);
            return Err(io::Error::new(
                error.kind(),
                format!("cannot watch the job's process (a pidfd needs Linux 5.3): {error}"),
            ));
        }
    };
    // SAFETY: the pidfd is owned by the AsyncFd from now on and closed only by its drop.
    let registered =
        unsafe { AsyncFd::register_with_interest(pidfd, tokio::io::Interest::READABLE) };
    match registered {
        Ok(pidfd) => Ok(Child { pid, pidfd: Some(pidfd), status: None }),
        Err(error) => {
            // SAFETY: kill only sends a signal, to the child just started.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            reap_blocking(pid);
            Err(error.into())
        }
    }
}

/// Waits for `pid` to end, on this thread (for a child that is ending anyway).
fn reap_blocking(pid: libc::pid_t) -> Option<ExitStatus> {
    loop {
        let mut status = 0;
        // SAFETY: waitpid writes the status to the integer given.
        let reaped = unsafe { libc::waitpid(pid, &mut status, 0) };
        if reaped == pid {
            return Some(ExitStatus::from_raw(status));
        }
        if reaped < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
            continue;
        }
        return None;
    }
}

/// `pid`'s status if it has ended, without waiting.
fn try_reap(pid: libc::pid_t) -> io::Result<Option<ExitStatus>> {
    loop {
        let mut status = 0;
        // SAFETY: waitpid writes the status to the integer given.
        let reaped = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if reaped == pid {
            return Ok(Some(ExitStatus::from_raw(status)));
        }
        if reaped == 0 {
            return Ok(None);
        }
        let error = io::Error::last_os_error();
        if error.raw_os_error() != Some(libc::EINTR) {
            return Err(error);
        }
    }
}

/// Reaps `pid` once its pidfd says it ended.
async fn reap(pid: libc::pid_t, pidfd: AsyncFd<OwnedFd>) {
    loop {
        let Ok(mut ready) = pidfd.readable().await else { return };
        match try_reap(pid) {
            Ok(Some(_)) | Err(_) => return,
            Ok(None) => ready.clear_ready(),
        }
    }
}

/// A started job process. Dropped before it was waited for, it is killed and reaped in
/// the background.
pub struct Child {
    pid: libc::pid_t,
    /// Readable once the process has ended; `None` only while being dropped.
    pidfd: Option<AsyncFd<OwnedFd>>,
    status: Option<ExitStatus>,
}

impl Child {
    pub fn id(&self) -> libc::pid_t {
        self.pid
    }

    /// Waits for the process to end and reaps it; again, returns the same status.
    pub async fn wait(&mut self) -> io::Result<ExitStatus> {
        loop {
            if let Some(status) = self.status {
                return Ok(status);
            }
            let Some(pidfd) = self.pidfd.as_ref() else {
                return Err(io::Error::other("the job's process is no longer watched"));
            };
            let mut ready = pidfd.readable().await?;
            match try_reap(self.pid)? {
                Some(status) => self.status = Some(status),
                None => ready.clear_ready(),
            }
        }
    }

    /// Sends SIGKILL unless the process was reaped already.
    pub fn start_kill(&mut self) -> io::Result<()> {
        if self.status.is_some() {
            return Ok(());
        }
        let Some(pidfd) = self.pidfd.as_ref() else { return Ok(()) };
        // Through the pidfd: the signal cannot reach another process that took the pid.
        let fd = pidfd.get_ref();
        // SAFETY: the pidfd is open for as long as `self` holds it.
        let fd = unsafe { BorrowedFd::borrow_raw(fd.as_raw_fd()) };
        match rustix::process::pidfd_send_signal(fd, rustix::process::Signal::KILL) {
            Ok(()) => Ok(()),
            // Ended already, not yet reaped.
            Err(rustix::io::Errno::SRCH) => Ok(()),
            Err(error) => Err(error.into()),
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if self.status.is_some() {
            return;
        }
        let _ = self.start_kill();
        let Some(pidfd) = self.pidfd.take() else { return };
        let pid = self.pid;
        if let Ok(Some(_)) = try_reap(pid) {
            return;
        }
        // Killed: it ends at once; its status is of no use to anyone now.
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(reap(pid, pidfd));
            }
            Err(_) => {
                drop(pidfd);
                reap_blocking(pid);
            }
        }
    }
}

#[cfg(test)]
#[path = "spawn_test.rs"]
mod tests;
