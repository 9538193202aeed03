//! Reading files of a job's workspace. The repository wrote them, and the job's own
//! processes may have replaced them since, so nothing in there is trusted: only regular
//! files inside the workspace are read, never through a symbolic link (the file itself
//! or any directory on the way), never a FIFO, device or socket, and never past a size
//! limit that is checked before reading.
//!
//! Each path is opened one component at a time, relative to the directory opened before
//! and with `O_NOFOLLOW`, so a link swapped in while the runner looks is refused too; the
//! file is opened `O_NONBLOCK` and checked on the opened handle. Searches ([`find`]) list
//! directories the same way and never descend into a linked one.
//!
//! Every function here blocks on the file system: call it on the blocking pool, never on
//! an async worker.

use std::ffi::OsStr;
use std::fmt;
use std::io::{self, Read};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{AtFlags, Dir, FileType, Mode, OFlags, Stat, CWD};

/// Directories deeper than this below the workspace are not searched.
pub const MAX_SEARCH_DEPTH: usize = 32;
/// Entries a search looks at before it gives up (a workspace with a huge tree).
pub const MAX_SEARCH_ENTRIES: usize = 100_000;

/// Why a file of the workspace was not read. Its `Display` follows the file's name:
/// "reports/a.xml is a fifo, not a regular file".
#[derive(Debug)]
pub enum Refusal {
    Missing,
    /// The path is absolute or climbs out with `..`.
    Outside,
    SymbolicLink,
    /// This directory on the way (relative to the workspace) is a symbolic link.
    LinkedDirectory(PathBuf),
    /// A directory, FIFO, socket or device; the kind is named.
    NotRegular(&'static str),
    TooLarge {
        size: u64,
        limit: u64,
    },
    Io(io::Error),
}

impl fmt::Display for Refusal {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Missing => write!(formatter, "does not exist"),
            Refusal::Outside => write!(formatter, "is outside the workspace"),
            Refusal::SymbolicLink => {
                write!(
                    formatter,
                    "is a symbolic link (only regular files of the checkout are read)"
                )
            }
            Refusal::LinkedDirectory(dir) => write!(
                formatter,
                "is under {}, a symbolic link (only regular files of the checkout are read)",
                dir.display()
            ),
            Refusal::NotRegular(kind) => write!(formatter, "is a {kind}, not a regular file"),
            Refusal::TooLarge { size, limit } => {
                write!(formatter, "is {size} bytes, more than the limit of {limit}")
            }
            Refusal::Io(error) => write!(formatter, "could not be read: {error}"),
        }
    }
}

impl From<rustix::io::Errno> for Refusal {
    fn from(errno: rustix::io::Errno) -> Self {
        if errno == rustix::io::Errno::NOENT {
            Refusal::Missing
        } else {
            Refusal::Io(errno.into())
        }
    }
}

/// The bytes of the regular file at `relative` (below `root`), at most `limit` of them.
pub fn read(root: &Path, relative: &Path, limit: u64) -> Result<Vec<u8>, Refusal> {
    let (file, size) = open(root, relative, limit)?;
    let mut bytes = Vec::with_capacity(usize::try_from(size.min(limit)).unwrap_or(0));
    file.take(limit.saturating_add(1)).read_to_end(&mut bytes).map_err(Refusal::Io)?;
    let read = bytes.len() as u64;
    if read > limit {
        // It grew while it was read.
        return Err(Refusal::TooLarge { size: read, limit });
    }
    Ok(bytes)
}

/// The regular file at `relative` (below `root`), opened for reading, and its size when
/// opened (at most `limit`). A reader must still stop at `limit`: the file may grow.
pub fn open(root: &Path, relative: &Path, limit: u64) -> Result<(std::fs::File, u64), Refusal> {
    let parts = normal_components(relative)?;
    let Some((name, directories)) = parts.split_last() else {
        return Err(Refusal::NotRegular("directory"));
    };
    let mut directory = open_root(root)?;
    let mut walked = PathBuf::new();
    for part in directories {
        walked.push(part);
        directory = open_directory(&directory, part, &walked)?;
    }

    // Look before opening: opening a device can have effects of its own.
    let seen = rustix::fs::statat(&directory, *name, AtFlags::SYMLINK_NOFOLLOW)?;
    check_regular(&seen, limit)?;
    let flags =
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
    let fd = rustix::fs::openat(&directory, *name, flags, Mode::empty()).map_err(|errno| {
        if errno == rustix::io::Errno::LOOP {
            Refusal::SymbolicLink
        } else {
            Refusal::from(errno)
        }
    })?;
    // What was opened is what counts: the name may have been replaced in between.
    let opened = rustix::fs::fstat(&fd)?;
    check_regular(&opened, limit)?;
    Ok((std::fs::File::from(fd), u64::try_from(opened.st_size).unwrap_or(0)))
}

/// Creates (or truncates) the regular file at `relative` below `root` for writing, with
/// the directories on the way: none of them, nor the file, may be a symbolic link, so
/// what a checkout put there cannot redirect the write outside the workspace.
pub fn create(root: &Path, relative: &Path) -> Result<std::fs::File, Refusal> {
    let parts = normal_components(relative)?;
    let Some((name, directories)) = parts.split_last() else {
        return Err(Refusal::NotRegular("directory"));
    };
    let mut directory = open_root(root)?;
    let mut walked = PathBuf::new();
    for part in directories {
        walked.push(part);
        match rustix::fs::mkdirat(&directory, *part, Mode::from_raw_mode(0o755)) {
            Ok(()) | Err(rustix::io::Errno::EXIST) => {}
            Err(errno) => return Err(Refusal::Io(errno.into())),
        }
        directory = open_directory(&directory, part, &walked)?;
    }
    let flags = OFlags::WRONLY
        | OFlags::CREATE
        | OFlags::TRUNC
        | OFlags::NOFOLLOW
        | OFlags::NONBLOCK
        | OFlags::NOCTTY
        | OFlags::CLOEXEC;
    let fd = rustix::fs::openat(&directory, *name, flags, Mode::from_raw_mode(0o644)).map_err(
        |errno| {
            if errno == rustix::io::Errno::LOOP {
                Refusal::SymbolicLink
            } else {
                Refusal::from(errno)
            }
        },
    )?;
    let opened = rustix::fs::fstat(&fd)?;
    check_regular(&opened, u64::MAX)?;
    Ok(std::fs::File::from(fd))
}

/// What a search found.
#[derive(Debug, Default)]
pub struct Found {
    /// Regular files that match, relative to the workspace, in name order.
    pub files: Vec<PathBuf>,
    /// Entries that match but are not regular files (links, FIFOs, devices, sockets).
    pub refused: Vec<(PathBuf, Refusal)>,
    /// The search stopped after [`MAX_SEARCH_ENTRIES`] entries, before it saw everything.
    pub truncated: bool,
}

/// The entries of the workspace that the glob `pattern` (relative to the workspace, `*`
/// within a name, `**` for any number of directories) matches. Symbolic links are never
/// followed, and only directories that can hold a match are listed.
pub fn find(root: &Path, pattern: &str) -> Result<Found, Refusal> {
    find_within(root, pattern, MAX_SEARCH_DEPTH, MAX_SEARCH_ENTRIES)
}

fn find_within(
    root: &Path,
    pattern: &str,
    max_depth: usize,
    max_entries: usize,
) -> Result<Found, Refusal> {
    let matcher = Matcher::new(pattern)?;
    let directory = open_root(root)?;
    let mut search =
        Search { matcher, found: Found::default(), entries: 0, max_depth, max_entries };
    search.walk(directory, &mut PathBuf::new(), 0);
    Ok(search.found)
}

/// The components of a path inside the workspace; `Outside` for anything else.
fn normal_components(relative: &Path) -> Result<Vec<&OsStr>, Refusal> {
    relative
        .components()
        .filter(|component| *component != Component::CurDir)
        .map(|component| match component {
            Component::Normal(name) => Ok(name),
            _ => Err(Refusal::Outside),
        })
        .collect()
}

fn open_root(root: &Path) -> Result<OwnedFd, Refusal> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    rustix::fs::openat(CWD, root, flags, Mode::empty()).map_err(|errno| {
        Refusal::Io(io::Error::new(
            io::Error::from(errno).kind(),
            format!("failed to open the workspace {}: {errno}", root.display()),
        ))
    })
}

/// Opens the directory `name` in `parent`, refusing a link; `walked` names it in errors.
fn open_directory(parent: &OwnedFd, name: &OsStr, walked: &Path) -> Result<OwnedFd, Refusal> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    rustix::fs::openat(parent, name, flags, Mode::empty()).map_err(|errno| {
        use rustix::io::Errno;
        if errno != Errno::LOOP && errno != Errno::NOTDIR {
            return Refusal::from(errno);
        }
        match rustix::fs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(stat) if FileType::from_raw_mode(stat.st_mode) == FileType::Symlink => {
                Refusal::LinkedDirectory(walked.to_owned())
            }
            // Not a directory: the file below it cannot exist.
            _ => Refusal::Missing,
        }
    })
}

fn check_regular(stat: &Stat, limit: u64) -> Result<(), Refusal> {
    match FileType::from_raw_mode(stat.st_mode) {
        FileType::RegularFile => {}
        FileType::Symlink => return Err(Refusal::SymbolicLink),
        other => return Err(Refusal::NotRegular(kind_name(other))),
    }
    let size = u64::try_from(stat.st_size).unwrap_or(0);
    if size > limit {
        return Err(Refusal::TooLarge { size, limit });
    }
    Ok(())
}

fn kind_name(kind: FileType) -> &'static str {
    match kind {
        FileType::RegularFile => "regular file",
        FileType::Directory => "directory",
        FileType::Symlink => "symbolic link",
        FileType::Fifo => "fifo",
        FileType::Socket => "socket",
        FileType::CharacterDevice => "character device",
        FileType::BlockDevice => "block device",
        FileType::Unknown => "file of unknown type",
    }
}

/// A glob pattern, whole and by component (to know which directories can hold a match).
struct Matcher {
    whole: glob::Pattern,
    parts: Vec<Part>,
}

enum Part {
    /// `**`: any number of directories.
    AnyDepth,
    Name(glob::Pattern),
    /// A component that is no pattern on its own (a class spanning `/`): may match anything.
    Unknown,
}

const MATCH_OPTIONS: glob::MatchOptions = glob::MatchOptions {
    case_sensitive: true,
    require_literal_separator: true,
    require_literal_leading_dot: false,
};

impl Matcher {
    fn new(pattern: &str) -> Result<Matcher, Refusal> {
        let components: Vec<&str> =
            pattern.split('/').filter(|part| !part.is_empty() && *part != ".").collect();
        if pattern.starts_with('/') || components.contains(&"..") {
            return Err(Refusal::Outside);
        }
        let whole = glob::Pattern::new(&components.join("/"))
            .map_err(|error| Refusal::Io(io::Error::new(io::ErrorKind::InvalidInput, error.msg)))?;
        let parts = components
            .iter()
            .map(|part| match *part {
                "**" => Part::AnyDepth,
                part => glob::Pattern::new(part).map_or(Part::Unknown, Part::Name),
            })
            .collect();
        Ok(Matcher { whole, parts })
    }

    fn matches(&self, path: &str) -> bool {
        self.whole.matches_with(path, MATCH_OPTIONS)
    }

    /// Whether a directory at `path` (its components) can hold something that matches.
    fn may_contain(&self, path: &[&str]) -> bool {
        for (index, name) in path.iter().enumerate() {
            match self.parts.get(index) {
                None => return false,
                Some(Part::AnyDepth) => return true,
                Some(Part::Unknown) => {}
                Some(Part::Name(pattern)) => {
                    if !pattern.matches_with(name, MATCH_OPTIONS) {
                        return false;
                    }
                }
            }
        }
        path.len() < self.parts.len()
    }
}

struct Search {
    matcher: Matcher,
    found: Found,
    /// Entries listed so far.
    entries: usize,
    max_depth: usize,
    max_entries: usize,
}

impl Search {
    /// Lists `directory` (at `relative`), records matches and descends where a match can be.
    fn walk(&mut self, directory: OwnedFd, relative: &mut PathBuf, depth: usize) {
        let listing = match Dir::read_from(&directory) {
            Ok(listing) => listing,
            Err(_) => return,
        };
        let mut names: Vec<(Vec<u8>, FileType)> = Vec::new();
        for entry in listing {
            let Ok(entry) = entry else { break };
            let name = entry.file_name().to_bytes();
            if name == b"." || name == b".." {
                continue;
            }
            self.entries += 1;
            if self.entries > self.max_entries {
                self.found.truncated = true;
                return;
            }
            names.push((name.to_vec(), entry.file_type()));
        }
        names.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, mut kind) in names {
            if self.found.truncated {
                return;
            }
            let name = OsStr::from_bytes(&name);
            if kind == FileType::Unknown {
                match rustix::fs::statat(&directory, name, AtFlags::SYMLINK_NOFOLLOW) {
                    Ok(stat) => kind = FileType::from_raw_mode(stat.st_mode),
                    Err(_) => continue,
                }
            }
            relative.push(name);
            // A name that is not UTF-8 matches no pattern (patterns are UTF-8).
            if let Some(path) = relative.to_str() {
                if self.matcher.matches(path) {
                    match kind {
                        FileType::RegularFile => self.found.files.push(relative.clone()),
                        FileType::Directory => {}
                        FileType::Symlink => {
                            self.found.refused.push((relative.clone(), Refusal::SymbolicLink))
                        }
                        other => self
                            .found
                            .refused
                            .push((relative.clone(), Refusal::NotRegular(kind_name(other)))),
                    }
                }
                let components: Vec<&str> = path.split('/').collect();
                if kind == FileType::Directory
                    && depth < self.max_depth
                    && self.matcher.may_contain(&components)
                {
                    let flags =
                        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
                    // A directory swapped for a link since it was listed fails here.
                    if let Ok(child) = rustix::fs::openat(&directory, name, flags, Mode::empty()) {
                        self.walk(child, relative, depth + 1);
                    }
                }
            }
            relative.pop();
        }
    }
}

#[cfg(test)]
#[path = "workspace_test.rs"]
mod tests;
