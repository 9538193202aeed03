//! Every git operation of the node, on bare mirrors kept under the data dir.
//!
//! Each function blocks and opens the repository itself: `git2::Repository` is `Send`
//! but not `Sync`, so async code runs one of these per `tokio::task::spawn_blocking`.
//! git2 is built without TLS or ssh: upstreams are local paths, `file://` or `http://`
//! urls.
//!
//! A mirror only ever holds `refs/heads/*` as upstream last had them (fetch prunes), so
//! a deleted upstream branch disappears from [`branch_heads`]; the objects it pointed at
//! stay in the mirror, which lets [`checkout`] still check out older commits.
//!
//! A fetch talks to a server that may never answer, so it is bounded twice (see
//! [`FetchLimits`]): libgit2 gives up on a socket that stays silent for the timeout, and
//! the caller stops waiting at the deadline, whatever the server does. A blocking libgit2
//! call cannot be cancelled, so each fetch runs on a thread of its own; a thread left
//! behind at the deadline ends when libgit2 gives up (or its progress callback sees the
//! deadline), and while it lives no other fetch of that mirror starts.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use eventide_consensus::CommitId;
use git2::build::CheckoutBuilder;
use git2::{
    AutotagOption, BranchType, ErrorCode, FetchOptions, FetchPrune, ObjectType, Oid,
    RemoteCallbacks, Repository, Sort, Tree,
};

/// The largest file [`read_file_at`] returns.
pub const MAX_FILE_BYTES: usize = 1024 * 1024;

/// Upstream's branches, force-updated: a mirror follows force pushes.
const HEADS_REFSPEC: &str = "+refs/heads/*:refs/heads/*";

/// How many characters of the url a mirror's directory name keeps, for people.
const READABLE_SUFFIX_CHARS: usize = 40;

/// git's file mode of a symbolic link.
const SYMLINK_MODE: i32 = 0o120000;

/// How long fetches may take (`--fetch-timeout`, `--fetch-deadline`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FetchLimits {
    /// The longest a server may stay silent: to accept the connection, or between two
    /// reads or writes. libgit2 enforces it on its sockets (http and git transports).
    pub timeout: Duration,
    /// The longest one fetch may take from the call, a wait for an earlier fetch of the
    /// same mirror included: what bounds a server that sends a byte now and then.
    pub deadline: Duration,
}

impl FetchLimits {
    pub const DEFAULT: FetchLimits =
        FetchLimits { timeout: Duration::from_secs(30), deadline: Duration::from_secs(600) };
    /// The longest either may be (libgit2 takes milliseconds as a C `int`).
    pub const MAX: Duration = Duration::from_secs(24 * 3600);

    /// Checks both against each other and the bounds; the message names the flags.
    pub fn try_new(timeout: Duration, deadline: Duration) -> anyhow::Result<FetchLimits> {
        let minimum = Duration::from_millis(10);
        for (flag, value) in [("--fetch-timeout", timeout), ("--fetch-deadline", deadline)] {
            if value < minimum || value > FetchLimits::MAX {
                bail!("{flag} {value:?}: must be between 10ms and 24h");
            }
        }
        if deadline < timeout {
            bail!("--fetch-deadline must not be shorter than --fetch-timeout");
        }
        Ok(FetchLimits { timeout, deadline })
    }
}

/// The deadline of every fetch, in milliseconds ([`set_fetch_limits`]).
static FETCH_DEADLINE_MS: AtomicU64 =
    AtomicU64::new(FetchLimits::DEFAULT.deadline.as_millis() as u64);

/// Applies `limits` to every later fetch of this process. Call once at start, before
/// any git operation: libgit2 keeps its socket timeouts in unsynchronised globals.
pub fn set_fetch_limits(limits: FetchLimits) -> anyhow::Result<()> {
    set_socket_timeout(limits.timeout)?;
    let deadline = u64::try_from(limits.deadline.as_millis()).unwrap_or(u64::MAX);
    FETCH_DEADLINE_MS.store(deadline, Ordering::Relaxed);
    Ok(())
}

fn set_socket_timeout(timeout: Duration) -> anyhow::Result<()> {
    let millis = libc::c_int::try_from(timeout.as_millis().max(1))
        .context("fetch timeout too long for libgit2")?;
    // SAFETY: libgit2 reads these two ints without a lock when it opens a socket. They
    // are written here before this process has run any git operation (at start, or in
    // a test before its first fetch over a socket), so no read races the write.
    unsafe {
        git2::opts::set_server_connect_timeout_in_milliseconds(millis)
            .context("failed to set the git connect timeout")?;
        git2::opts::set_server_timeout_in_milliseconds(millis)
            .context("failed to set the git socket timeout")?;
    }
    Ok(())
}

fn fetch_deadline() -> Duration {
    Duration::from_millis(FETCH_DEADLINE_MS.load(Ordering::Relaxed))
}

/// The bare mirror directory of `url` under `root`: a stable hash of the url (the same
/// on every release and machine), then the url's last path segment for people.
pub fn mirror_path(root: &Path, url: &str) -> PathBuf {
    root.join(format!("{:016x}-{}", fnv1a_64(url.as_bytes()), readable_suffix(url)))
}

/// Brings the mirror up to date with upstream's branches, creating it if missing.
/// Branches deleted upstream are deleted in the mirror. An error after the fetch
/// deadline (see [`FetchLimits`]) at the latest.
pub fn fetch_mirror(mirror: &Path, url: &str) -> anyhow::Result<()> {
    fetch_within(mirror, url, fetch_deadline(), |_| false)
}

/// Every branch of the mirror with its head. Branch names that are not UTF-8 cannot be
/// named in a command and are left out.
pub fn branch_heads(mirror: &Path) -> anyhow::Result<BTreeMap<String, CommitId>> {
    let repository = open_mirror(mirror)?;
    let context = || format!("failed to list branches of {}", mirror.display());
    let mut heads = BTreeMap::new();
    for entry in repository.branches(Some(BranchType::Local)).with_context(context)? {
        let (branch, _) = entry.with_context(context)?;
        let Some(name) = branch.name().with_context(context)? else { continue };
        // A symbolic branch has no target of its own; its target branch is listed.
        let Some(target) = branch.get().target() else { continue };
        heads.insert(name.to_owned(), commit_id(target)?);
    }
    Ok(heads)
}

/// The commits reachable from `head` and from none of `hide`, oldest first (topological
/// order, ties by commit time). Ids in `hide` that the mirror does not have are ignored.
pub fn new_commits(
    mirror: &Path,
    head: &CommitId,
    hide: &[CommitId],
) -> anyhow::Result<Vec<CommitId>> {
    let repository = open_mirror(mirror)?;
    let context = || format!("failed to list the commits of {head}");
    let mut walk = repository.revwalk().with_context(context)?;
    walk.set_sorting(Sort::TOPOLOGICAL | Sort::TIME | Sort::REVERSE).with_context(context)?;
    walk.push(oid_of(head)?).with_context(|| format!("commit {head} not found in the mirror"))?;
    for hidden in hide {
        let Ok(oid) = Oid::from_str(hidden.as_str()) else { continue };
        if repository.find_commit(oid).is_ok() {
            walk.hide(oid).with_context(context)?;
        }
    }
    walk.map(|oid| oid.with_context(context).and_then(commit_id)).collect()
}

/// The text of the file at `path` in `commit`; `None` if there is no such file (or the
/// path names a directory or a submodule). An error if the file is a symbolic link, is
/// larger than [`MAX_FILE_BYTES`] or is not UTF-8.
pub fn read_file_at(
    mirror: &Path,
    commit: &CommitId,
    path: &str,
) -> anyhow::Result<Option<String>> {
    let repository = open_mirror(mirror)?;
    let tree = commit_tree(&repository, commit)?;
    let Some(entry) = tree_entry(&tree, commit, path)? else { return Ok(None) };
    if entry.kind() != Some(ObjectType::Blob) {
        return Ok(None);
    }
    if entry.filemode() == SYMLINK_MODE {
        bail!("{path} at {commit} is a symbolic link, not a file");
    }
    let context = || format!("failed to read {path} at {commit}");
    let (size, _) =
        repository.odb().with_context(context)?.read_header(entry.id()).with_context(context)?;
    if size > MAX_FILE_BYTES {
        bail!("{path} at {commit} is {size} bytes, more than {MAX_FILE_BYTES}");
    }
    let blob = repository.find_blob(entry.id()).with_context(context)?;
    let text = std::str::from_utf8(blob.content())
        .with_context(|| format!("{path} at {commit} is not UTF-8"))?;
    Ok(Some(text.to_owned()))
}

/// Makes sure the mirror has `commit`, fetching from `url` (and creating the mirror) if
/// it does not yet. A fetch that waited for another one of the same mirror is skipped if
/// that one brought the commit.
pub fn ensure_commit(mirror: &Path, url: &str, commit: &CommitId) -> anyhow::Result<()> {
    if has_commit(mirror, commit) {
        return Ok(());
    }
    let wanted = commit.clone();
    fetch_within(mirror, url, fetch_deadline(), move |mirror| has_commit(mirror, &wanted))?;
    if !has_commit(mirror, commit) {
        bail!("commit {commit} not found in {url}");
    }
    Ok(())
}

/// Writes the files of `commit` into `dest`, which must be missing or empty. Neither the
/// mirror's HEAD nor an index is touched, so checkouts may run while the mirror fetches.
pub fn checkout(mirror: &Path, commit: &CommitId, dest: &Path) -> anyhow::Result<()> {
    let repository = open_mirror(mirror)?;
    let found = repository
        .find_commit(oid_of(commit)?)
        .with_context(|| format!("commit {commit} not found in the mirror"))?;
    std::fs::create_dir_all(dest)
        .with_context(|| format!("failed to create checkout directory {}", dest.display()))?;
    let mut entries = std::fs::read_dir(dest)
        .with_context(|| format!("failed to read checkout directory {}", dest.display()))?;
    if entries.next().is_some() {
        bail!("checkout directory {} is not empty", dest.display());
    }
    let mut options = CheckoutBuilder::new();
    options.force().target_dir(dest).update_index(false);
    repository
        .checkout_tree(found.as_object(), Some(&mut options))
        .with_context(|| format!("failed to check out {commit} into {}", dest.display()))
}

/// One mirror's fetches, shared by every thread of the process.
#[derive(Default)]
struct MirrorFetches {
    /// Held by the thread that fetches: two fetches racing on one mirror fail on git's
    /// ref lock files.
    running: Mutex<()>,
    /// When the caller of the fetch that holds `running` stopped (or stops) waiting for
    /// it; `None` while no fetch runs.
    holder_deadline: Mutex<Option<Instant>>,
}

fn mirror_fetches(mirror: &Path) -> Arc<MirrorFetches> {
    static FETCHES: OnceLock<Mutex<HashMap<PathBuf, Arc<MirrorFetches>>>> = OnceLock::new();
    let mut fetches =
        FETCHES.get_or_init(Default::default).lock().unwrap_or_else(PoisonError::into_inner);
    fetches.entry(mirror.to_path_buf()).or_default().clone()
}

/// Fetches `url` into `mirror` on a thread of its own and waits for it at most
/// `deadline`. The thread first waits for any other fetch of the mirror, then skips the
/// fetch if `done(mirror)` holds by then, or if its caller has already given up. While
/// a fetch left behind by its caller still runs, no other starts: the call fails at once.
fn fetch_within(
    mirror: &Path,
    url: &str,
    deadline: Duration,
    done: impl FnOnce(&Path) -> bool + Send + 'static,
) -> anyhow::Result<()> {
    let fetches = mirror_fetches(mirror);
    let started = Instant::now();
    if let Some(stuck) = *lock(&fetches.holder_deadline) {
        if stuck <= started {
            let late = Duration::from_secs(started.saturating_duration_since(stuck).as_secs());
            bail!(
                "failed to fetch {url}: an earlier fetch is still stuck {late:?} past its deadline"
            );
        }
    }
    let give_up = started + deadline;
    let (sender, receiver) = mpsc::sync_channel(1);
    let (thread_mirror, thread_url) = (mirror.to_path_buf(), url.to_owned());
    let span = tracing::Span::current();
    std::thread::Builder::new()
        .name("git-fetch".to_owned())
        .spawn(move || {
            let _entered = span.enter();
            let _running = lock(&fetches.running);
            let result = if Instant::now() >= give_up {
                Err(anyhow::anyhow!("failed to fetch {thread_url}: gave up before it started"))
            } else if done(&thread_mirror) {
                Ok(())
            } else {
                let _holding = Holding::start(&fetches, give_up);
                fetch_now(&thread_mirror, &thread_url, give_up)
            };
            // The caller may have stopped listening; then the result is dropped.
            let _ = sender.send(result);
        })
        .with_context(|| format!("failed to start a thread to fetch {url}"))?;
    match receiver.recv_timeout(deadline) {
        Ok(result) => result,
        Err(RecvTimeoutError::Timeout) => {
            bail!("failed to fetch {url}: no result within the fetch deadline of {deadline:?}")
        }
        Err(RecvTimeoutError::Disconnected) => bail!("failed to fetch {url}: the fetch crashed"),
    }
}

/// Sets [`MirrorFetches::holder_deadline`] while it lives (a panicking fetch included).
struct Holding<'a>(&'a MirrorFetches);

impl<'a> Holding<'a> {
    fn start(fetches: &'a MirrorFetches, give_up: Instant) -> Holding<'a> {
        *lock(&fetches.holder_deadline) = Some(give_up);
        Holding(fetches)
    }
}

impl Drop for Holding<'_> {
    fn drop(&mut self) {
        *lock(&self.0.holder_deadline) = None;
    }
}

/// The fetch itself; its progress callbacks abort it once `give_up` has passed (they
/// run while data arrives, so this bounds a slow transfer, not a silent server).
fn fetch_now(mirror: &Path, url: &str, give_up: Instant) -> anyhow::Result<()> {
    let repository = open_or_init(mirror)?;
    let mut remote =
        repository.remote_anonymous(url).with_context(|| format!("failed to fetch {url}"))?;
    let mut callbacks = RemoteCallbacks::new();
    callbacks.transfer_progress(|_| Instant::now() < give_up);
    callbacks.sideband_progress(|_| Instant::now() < give_up);
    let mut options = FetchOptions::new();
    options
        .prune(FetchPrune::On)
        .download_tags(AutotagOption::None)
        .update_fetchhead(false)
        .remote_callbacks(callbacks);
    let result = remote.fetch(&[HEADS_REFSPEC], Some(&mut options), None);
    if result.is_err() && Instant::now() >= give_up {
        bail!("failed to fetch {url}: the fetch deadline passed");
    }
    result.with_context(|| format!("failed to fetch {url}"))
}

/// Locks a mutex whose data a panic cannot leave torn.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn open_mirror(mirror: &Path) -> anyhow::Result<Repository> {
    Repository::open_bare(mirror)
        .with_context(|| format!("failed to open mirror {}", mirror.display()))
}

/// Opens the mirror, or creates it. A directory that is not a repository (left by an
/// interrupted first fetch) is initialized in place.
fn open_or_init(mirror: &Path) -> anyhow::Result<Repository> {
    match Repository::open_bare(mirror) {
        Ok(repository) => return Ok(repository),
        Err(error) if error.code() == ErrorCode::NotFound => {}
        Err(error) => {
            return Err(error)
                .with_context(|| format!("failed to open mirror {}", mirror.display()))
        }
    }
    std::fs::create_dir_all(mirror)
        .with_context(|| format!("failed to create mirror {}", mirror.display()))?;
    Repository::init_bare(mirror)
        .with_context(|| format!("failed to create mirror {}", mirror.display()))
}

fn has_commit(mirror: &Path, commit: &CommitId) -> bool {
    let Ok(repository) = Repository::open_bare(mirror) else { return false };
    let Ok(oid) = Oid::from_str(commit.as_str()) else { return false };
    let found = repository.find_commit(oid).is_ok();
    found
}

fn commit_tree<'r>(repository: &'r Repository, commit: &CommitId) -> anyhow::Result<Tree<'r>> {
    repository
        .find_commit(oid_of(commit)?)
        .and_then(|found| found.tree())
        .with_context(|| format!("commit {commit} not found in the mirror"))
}

/// The entry at `path` (relative to the root, `/`-separated), or `None` if absent.
fn tree_entry(
    tree: &Tree<'_>,
    commit: &CommitId,
    path: &str,
) -> anyhow::Result<Option<git2::TreeEntry<'static>>> {
    let relative = path.trim_matches('/');
    if relative.is_empty() {
        return Ok(None);
    }
    match tree.get_path(Path::new(relative)) {
        Ok(entry) => Ok(Some(entry)),
        Err(error) if error.code() == ErrorCode::NotFound => Ok(None),
        Err(error) => Err(error).with_context(|| format!("failed to look up {path} at {commit}")),
    }
}

fn oid_of(commit: &CommitId) -> anyhow::Result<Oid> {
    Oid::from_str(commit.as_str()).with_context(|| format!("unsupported commit id {commit}"))
}

fn commit_id(oid: Oid) -> anyhow::Result<CommitId> {
    CommitId::try_new(&oid.to_string()).context("git returned an invalid commit id")
}

/// 64-bit FNV-1a: tiny, and unlike std's `DefaultHasher` guaranteed to give the same
/// value on every release, so a mirror keeps its directory across upgrades.
fn fnv1a_64(bytes: &[u8]) -> u64 {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes.iter().fold(OFFSET_BASIS, |hash, &byte| (hash ^ u64::from(byte)).wrapping_mul(PRIME))
}

/// The url's last path segment (without `.git`), restricted to characters that are safe
/// in a file name; `repo` if nothing is left.
fn readable_suffix(url: &str) -> String {
    let trimmed = url.trim_end_matches('/');
    let trimmed = trimmed.strip_suffix(".git").unwrap_or(trimmed);
    let segment = trimmed.rsplit(['/', '\\', ':']).next().unwrap_or_default();
    let safe: Vec<char> = segment
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || "-_.".contains(c) { c } else { '_' })
        .collect();
    let kept: String = safe[safe.len().saturating_sub(READABLE_SUFFIX_CHARS)..].iter().collect();
    let kept = kept.trim_start_matches('.');
    if kept.is_empty() {
        "repo".to_owned()
    } else {
        kept.to_owned()
    }
}

#[cfg(test)]
#[path = "git_test.rs"]
pub(crate) mod tests;
