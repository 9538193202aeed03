//! Every git operation of the node, on bare mirrors kept under the data dir.
//!
//! Each function blocks and opens the repository itself: `git2::Repository` is `Send`
//! but not `Sync`, so async code runs one of these per `tokio::task::spawn_blocking`.
//! Fetches run the git CLI ([`transport`]: https with a token, ssh with a key, local
//! paths, `file://`, `http://`); reading a mirror (branches, history, files, checkout)
//! stays with git2.
//!
//! A mirror only ever holds `refs/heads/*` as upstream last had them (fetch prunes), so
//! a deleted upstream branch disappears from [`branch_heads`]; the objects it pointed at
//! stay in the mirror, which lets [`checkout`] still check out older commits.
//!
//! A fetch talks to a server that may never answer, so it is bounded twice (see
//! [`FetchLimits`]): git gives up on a server that stays silent for the timeout, and the
//! fetch's process group is killed at the deadline, whatever the server does. One fetch
//! of a mirror runs at a time; the others wait for it, within their own deadline. The
//! wait holds across processes too (an exclusive `flock` of `<mirror>.lock`), so nodes on
//! one machine may share a mirrors directory (`--runner-mirrors`): one fetches, the others
//! find the commit it brought and fetch nothing.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use eventide_consensus::CommitId;
use git2::build::CheckoutBuilder;
use git2::{BranchType, ErrorCode, ObjectType, Oid, Repository, Sort, Tree};

#[path = "git_transport.rs"]
pub mod transport;

pub use transport::{RemoteAuth, DEFAULT_TOKEN_USERNAME};

/// The largest file [`read_file_at`] returns.
pub const MAX_FILE_BYTES: usize = 1024 * 1024;

/// How many characters of the url a mirror's directory name keeps, for people.
const READABLE_SUFFIX_CHARS: usize = 40;

/// git's file mode of a symbolic link.
const SYMLINK_MODE: i32 = 0o120000;

/// How long fetches may take (`--fetch-timeout`, `--fetch-deadline`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FetchLimits {
    /// The longest a server may stay silent: to accept the connection, or between two
    /// reads or writes. git enforces it, rounded up to whole seconds: curl's low-speed
    /// limit for http(s), ssh's connect timeout and keepalives for ssh. `git://` and
    /// local paths are bounded by the deadline alone.
    pub timeout: Duration,
    /// The longest one fetch may take from the call, a wait for an earlier fetch of the
    /// same mirror included: what bounds a server that sends a byte now and then.
    pub deadline: Duration,
}

impl FetchLimits {
    pub const DEFAULT: FetchLimits =
        FetchLimits { timeout: Duration::from_secs(30), deadline: Duration::from_secs(600) };
    /// The longest either may be.
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

/// The limits of every fetch, in milliseconds ([`set_fetch_limits`]).
static FETCH_TIMEOUT_MS: AtomicU64 =
    AtomicU64::new(FetchLimits::DEFAULT.timeout.as_millis() as u64);
static FETCH_DEADLINE_MS: AtomicU64 =
    AtomicU64::new(FetchLimits::DEFAULT.deadline.as_millis() as u64);

/// Applies `limits` to every later fetch of this process (call once at start).
pub fn set_fetch_limits(limits: FetchLimits) -> anyhow::Result<()> {
    let millis = |value: Duration| u64::try_from(value.as_millis()).unwrap_or(u64::MAX);
    FETCH_TIMEOUT_MS.store(millis(limits.timeout), Ordering::Relaxed);
    FETCH_DEADLINE_MS.store(millis(limits.deadline), Ordering::Relaxed);
    Ok(())
}

fn fetch_limits() -> FetchLimits {
    FetchLimits {
        timeout: Duration::from_millis(FETCH_TIMEOUT_MS.load(Ordering::Relaxed)),
        deadline: Duration::from_millis(FETCH_DEADLINE_MS.load(Ordering::Relaxed)),
    }
}

/// The bare mirror directory of `url` under `root`: a stable hash of the url (the same
/// on every release and machine), then the url's last path segment for people.
pub fn mirror_path(root: &Path, url: &str) -> PathBuf {
    root.join(format!("{:016x}-{}", fnv1a_64(url.as_bytes()), readable_suffix(url)))
}

/// Brings the mirror up to date with upstream's branches, creating it if missing,
/// authenticating with `auth`. Branches deleted upstream are deleted in the mirror;
/// tags are not fetched. An error after the fetch deadline (see [`FetchLimits`]) at the
/// latest; its message never contains a secret of `auth`.
pub fn fetch_mirror(mirror: &Path, url: &str, auth: &RemoteAuth) -> anyhow::Result<()> {
    fetch_within(mirror, url, auth, fetch_limits(), |_| false)
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

/// A mirror opened once for many reads: opening a repository reads its configuration
/// and its packs' indexes, which costs more than reading one small file from it (the
/// observer reads two things of each of up to a thousand new commits a round).
pub struct Mirror {
    /// `None` only while being dropped.
    repository: Option<Repository>,
    /// Where the opened repository goes back to when dropped, if it came from there.
    kept: Option<Keep>,
}

impl std::fmt::Debug for Mirror {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let path = self.repository.as_ref().map(Repository::path);
        f.debug_struct("Mirror").field("path", &path).finish()
    }
}

impl Drop for Mirror {
    fn drop(&mut self) {
        if let (Some(repository), Some(keep)) = (self.repository.take(), self.kept.take()) {
            keep_opened(keep, repository);
        }
    }
}

/// A mirror opened for a job, to be kept for the next one once this one is done.
struct Keep {
    mirror: PathBuf,
    /// Jobs it served, this one included.
    uses: u32,
}

/// An opened mirror waiting for its next job.
struct Opened {
    repository: Repository,
    uses: u32,
    since: Instant,
}

/// A mirror is opened again after this many jobs: what libgit2 caches of the objects it
/// read stays small, and nothing it learnt of the mirror's files grows old.
const OPENED_USES: u32 = 64;
/// Opened mirrors kept per mirror: one per job running at once is all that is used.
const OPENED_PER_MIRROR: usize = 8;
/// An opened mirror no job took for this long is closed (a removed repository's mirror
/// would otherwise keep its deleted files open).
const OPENED_IDLE: Duration = Duration::from_secs(60);

/// The mirrors runners opened, by path. Opening one reads its configuration and lists
/// its packs: a tenth of a busy runner's CPU when every job opened its mirror anew.
fn opened_mirrors() -> &'static Mutex<HashMap<PathBuf, Vec<Opened>>> {
    static OPENED: OnceLock<Mutex<HashMap<PathBuf, Vec<Opened>>>> = OnceLock::new();
    OPENED.get_or_init(Mutex::default)
}

/// An opened `mirror` a job left, if there is one; closes those idle for too long.
fn take_opened(mirror: &Path) -> Option<Opened> {
    let mut opened = lock(opened_mirrors());
    let now = Instant::now();
    opened.retain(|_, kept| {
        kept.retain(|entry| now.saturating_duration_since(entry.since) < OPENED_IDLE);
        !kept.is_empty()
    });
    opened.get_mut(mirror)?.pop()
}

fn keep_opened(keep: Keep, repository: Repository) {
    if keep.uses >= OPENED_USES {
        return;
    }
    let mut opened = lock(opened_mirrors());
    let kept = opened.entry(keep.mirror).or_default();
    if kept.len() < OPENED_PER_MIRROR {
        kept.push(Opened { repository, uses: keep.uses, since: Instant::now() });
    }
}

impl Mirror {
    pub fn open(mirror: &Path) -> anyhow::Result<Mirror> {
        Ok(Mirror { repository: Some(open_mirror(mirror)?), kept: None })
    }

    fn repository(&self) -> &Repository {
        // Taken out only by `drop`.
        self.repository.as_ref().expect("a mirror's repository is there until it is dropped")
    }

    /// The text of the file at `path` in `commit`; `None` if there is no such file (or
    /// the path names a directory or a submodule). An error if the file is a symbolic
    /// link, is larger than [`MAX_FILE_BYTES`] or is not UTF-8.
    pub fn read_file_at(&self, commit: &CommitId, path: &str) -> anyhow::Result<Option<String>> {
        let repository = self.repository();
        let tree = commit_tree(repository, commit)?;
        let Some(entry) = tree_entry(&tree, commit, path)? else { return Ok(None) };
        if entry.kind() != Some(ObjectType::Blob) {
            return Ok(None);
        }
        if entry.filemode() == SYMLINK_MODE {
            bail!("{path} at {commit} is a symbolic link, not a file");
        }
        let context = || format!("failed to read {path} at {commit}");
        let (size, _) = repository
            .odb()
            .with_context(context)?
            .read_header(entry.id())
            .with_context(context)?;
        if size > MAX_FILE_BYTES {
            bail!("{path} at {commit} is {size} bytes, more than {MAX_FILE_BYTES}");
        }
        let blob = repository.find_blob(entry.id()).with_context(context)?;
        let text = std::str::from_utf8(blob.content())
            .with_context(|| format!("{path} at {commit} is not UTF-8"))?;
        Ok(Some(text.to_owned()))
    }

    /// What a person scans a build for: the first line of `commit`'s message and its
    /// author as `Name <email>` (both lossily decoded; the state machine cuts them to size).
    pub fn commit_info(&self, commit: &CommitId) -> anyhow::Result<(String, String)> {
        let found = self
            .repository()
            .find_commit(oid_of(commit)?)
            .with_context(|| format!("commit {commit} not found in the mirror"))?;
        let message = String::from_utf8_lossy(found.message_bytes());
        let subject = message.lines().find(|line| !line.trim().is_empty()).unwrap_or("").trim();
        let author = found.author();
        let name = String::from_utf8_lossy(author.name_bytes());
        let email = String::from_utf8_lossy(author.email_bytes());
        let author = if email.is_empty() { name.into_owned() } else { format!("{name} <{email}>") };
        Ok((subject.to_owned(), author))
    }

    /// The mirror at `mirror`, opened, if it has `commit`.
    /// The mirror at `mirror`, if it holds `commit`: opened by an earlier job when one
    /// left it (libgit2 looks for new packs when an object is not in those it knows), or
    /// opened now. Dropped, it is kept for the next job.
    fn with_commit(mirror: &Path, commit: &CommitId) -> Option<Mirror> {
        let oid = Oid::from_str(commit.as_str()).ok()?;
        if let Some(opened) = take_opened(mirror) {
            if opened.repository.find_commit(oid).is_ok() {
                let kept = Some(Keep { mirror: mirror.to_owned(), uses: opened.uses + 1 });
                return Some(Mirror { repository: Some(opened.repository), kept });
            }
        }
        let repository = Repository::open_bare(mirror).ok()?;
        repository.find_commit(oid).ok()?;
        let kept = Some(Keep { mirror: mirror.to_owned(), uses: 1 });
        Some(Mirror { repository: Some(repository), kept })
    }

    /// The commits reachable from `head` and from none of `hide`, oldest first
    /// (topological order, ties by commit time). Ids in `hide` that the mirror does not
    /// have are ignored.
    pub fn new_commits(&self, head: &CommitId, hide: &[CommitId]) -> anyhow::Result<Vec<CommitId>> {
        let repository = self.repository();
        let context = || format!("failed to list the commits of {head}");
        let mut walk = repository.revwalk().with_context(context)?;
        walk.set_sorting(Sort::TOPOLOGICAL | Sort::TIME | Sort::REVERSE).with_context(context)?;
        walk.push(oid_of(head)?)
            .with_context(|| format!("commit {head} not found in the mirror"))?;
        for hidden in hide {
            let Ok(oid) = Oid::from_str(hidden.as_str()) else { continue };
            if repository.find_commit(oid).is_ok() {
                walk.hide(oid).with_context(context)?;
            }
        }
        walk.map(|oid| oid.with_context(context).and_then(commit_id)).collect()
    }

    /// Writes the files of `commit` into `dest`, which must be missing or empty. Neither
    /// the mirror's HEAD nor an index is touched, so checkouts may run while the mirror
    /// fetches.
    pub fn checkout(&self, commit: &CommitId, dest: &Path) -> anyhow::Result<()> {
        let repository = self.repository();
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
}

/// The mirror at `mirror` opened, if it already holds `commit` (no fetch needed).
pub fn mirror_with_commit(mirror: &Path, commit: &CommitId) -> Option<Mirror> {
    Mirror::with_commit(mirror, commit)
}

/// Makes sure the mirror has `commit`, fetching from `url` with `auth` (and creating the
/// mirror) if it does not yet, and returns it opened. A fetch that waited for another one
/// of the same mirror is skipped if that one brought the commit.
pub fn ensure_commit(
    mirror: &Path,
    url: &str,
    auth: &RemoteAuth,
    commit: &CommitId,
) -> anyhow::Result<Mirror> {
    if let Some(opened) = Mirror::with_commit(mirror, commit) {
        return Ok(opened);
    }
    fetch_within(mirror, url, auth, fetch_limits(), |mirror| has_commit(mirror, commit))?;
    Mirror::with_commit(mirror, commit)
        .ok_or_else(|| anyhow::anyhow!("commit {commit} not found in {url}"))
}

/// One mirror's fetches, shared by every thread of the process: two fetches racing on
/// one mirror fail on git's ref lock files.
#[derive(Default)]
struct MirrorFetches {
    /// Whether a fetch of the mirror runs.
    busy: Mutex<bool>,
    /// Notified when `busy` turns false.
    freed: Condvar,
}

impl MirrorFetches {
    /// Waits until no other fetch runs, until `give_up` at the latest.
    fn acquire(&self, give_up: Instant) -> Option<Running<'_>> {
        let mut busy = lock(&self.busy);
        while *busy {
            let left = give_up.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            busy = self.freed.wait_timeout(busy, left).unwrap_or_else(PoisonError::into_inner).0;
        }
        *busy = true;
        Some(Running(self))
    }
}

/// Marks a mirror's fetch as running while it lives (a panicking fetch included).
struct Running<'a>(&'a MirrorFetches);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        *lock(&self.0.busy) = false;
        self.0.freed.notify_one();
    }
}

fn mirror_fetches(mirror: &Path) -> Arc<MirrorFetches> {
    static FETCHES: OnceLock<Mutex<HashMap<PathBuf, Arc<MirrorFetches>>>> = OnceLock::new();
    let mut fetches =
        FETCHES.get_or_init(Default::default).lock().unwrap_or_else(PoisonError::into_inner);
    fetches.entry(mirror.to_path_buf()).or_default().clone()
}

/// Fetches `url` into `mirror` within `limits`: first waits for any other fetch of the
/// mirror, then skips the fetch if `done(mirror)` holds by then. The deadline counts from
/// the call, the wait included.
fn fetch_within(
    mirror: &Path,
    url: &str,
    auth: &RemoteAuth,
    limits: FetchLimits,
    done: impl FnOnce(&Path) -> bool,
) -> anyhow::Result<()> {
    let give_up = Instant::now() + limits.deadline;
    let fetches = mirror_fetches(mirror);
    let Some(_running) = fetches.acquire(give_up) else {
        bail!(
            "failed to fetch {url}: an earlier fetch of the mirror still ran at the fetch \
             deadline of {:?}",
            limits.deadline
        );
    };
    let Some(_locked) = lock_across_processes(mirror, give_up)? else {
        bail!(
            "failed to fetch {url}: another process's fetch of the mirror {} still ran at the \
             fetch deadline of {:?}",
            mirror.display(),
            limits.deadline
        );
    };
    if done(mirror) {
        return Ok(());
    }
    open_or_init(mirror)?;
    transport::fetch(mirror, url, auth, limits.timeout, limits.deadline, give_up)
}

/// The file whose `flock` a fetch of `mirror` holds: beside it, as its credentials are.
fn lock_path_of(mirror: &Path) -> PathBuf {
    let mut name = mirror.file_name().unwrap_or_default().to_os_string();
    name.push(".lock");
    mirror.with_file_name(name)
}

/// Takes the exclusive lock of `mirror` that every process fetching into it takes,
/// waiting for another holder until `give_up` (`None` then). The lock goes with the
/// returned file, closed on drop (a crashed holder's goes with its process); the file is
/// close-on-exec, so no git child keeps it.
fn lock_across_processes(mirror: &Path, give_up: Instant) -> anyhow::Result<Option<std::fs::File>> {
    use rustix::fs::{flock, FlockOperation};
    use std::os::unix::fs::OpenOptionsExt;
    /// The longest pause between two tries: a fetch of a few new commits takes tens of
    /// milliseconds.
    const MAX_PAUSE: Duration = Duration::from_millis(50);
    let path = lock_path_of(mirror);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("failed to create {}", parent.display()))?;
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("failed to open the lock file {}", path.display()))?;
    let mut pause = Duration::from_millis(1);
    loop {
        match flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => return Ok(Some(file)),
            Err(rustix::io::Errno::WOULDBLOCK | rustix::io::Errno::INTR) => {}
            Err(error) => {
                return Err(std::io::Error::from(error))
                    .with_context(|| format!("failed to lock {}", path.display()))
            }
        }
        let now = Instant::now();
        if now >= give_up {
            return Ok(None);
        }
        // flock has no timeout of its own; the holder is another process.
        std::thread::sleep(pause.min(give_up - now));
        pause = (pause * 2).min(MAX_PAUSE);
    }
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
