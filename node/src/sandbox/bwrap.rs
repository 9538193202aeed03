//! The bubblewrap command line of a job: what of the host the job sees, and how.
//!
//! [`HostLayout::discover`] reads once, at start, which system directories the host has
//! and which are symlinks (`/bin -> usr/bin` on merged-/usr systems); [`arguments`] is
//! pure: the same layout and plan give the same command line, so its rules are tested
//! without running anything.
//!
//! The job gets a new root (a tmpfs bubblewrap makes) holding only: the system
//! directories read-only, the parts of `/etc` a toolchain reads ([`ETC_ENTRIES`]),
//! read-only, a `/proc` of its own PID namespace, a minimal `/dev`, private tmpfs at
//! `/tmp` and at the node user's home, the paths the runner was told to share, and its
//! workspace read-write at the same path as on the host; everything else of the new
//! root is read-only. All capabilities are dropped
//! (a root node would otherwise hand them on), the job gets a new session (no terminal to
//! inject keystrokes into), and it dies with the runner.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use eventide_node::isolation::Network;

/// The host's top-level system directories a job may use, read-only.
const SYSTEM_DIRS: [&str; 7] = ["/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"];

/// What of `/etc` a job sees: name resolution, TLS roots, users, the dynamic linker,
/// time zones and Debian's alternatives (`/usr/bin/python3` may point through them).
/// Not there: `shadow`, `ssh/`, `sudoers`, machine ids and anything else.
pub const ETC_ENTRIES: [&str; 24] = [
    "alternatives",
    "ca-certificates",
    "ca-certificates.conf",
    "crypto-policies",
    "gai.conf",
    "group",
    "host.conf",
    "hostname",
    "hosts",
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "localtime",
    "mime.types",
    "nsswitch.conf",
    "os-release",
    "passwd",
    "pki",
    "protocols",
    "resolv.conf",
    "services",
    "ssl",
    "timezone",
    "gitconfig",
];

/// A top-level system path as the host has it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SystemPath {
    Dir(PathBuf),
    /// A symlink, recreated as one: `/bin -> usr/bin`.
    Symlink {
        path: PathBuf,
        target: PathBuf,
    },
}

/// The host's system paths, read once.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostLayout {
    pub system: Vec<SystemPath>,
    /// Entries of [`ETC_ENTRIES`] the host has, as absolute paths.
    pub etc: Vec<PathBuf>,
}

impl HostLayout {
    pub fn discover() -> HostLayout {
        let mut system = Vec::new();
        for dir in SYSTEM_DIRS {
            let path = Path::new(dir);
            let Ok(metadata) = std::fs::symlink_metadata(path) else { continue };
            if metadata.file_type().is_symlink() {
                if let Ok(target) = std::fs::read_link(path) {
                    system.push(SystemPath::Symlink { path: path.to_owned(), target });
                }
            } else if metadata.is_dir() {
                system.push(SystemPath::Dir(path.to_owned()));
            }
        }
        let etc = ETC_ENTRIES
            .iter()
            .map(|name| Path::new("/etc").join(name))
            .filter(|path| path.exists())
            .collect();
        HostLayout { system, etc }
    }
}

/// What one job gets.
#[derive(Clone, Debug)]
pub struct Plan<'a> {
    pub layout: &'a HostLayout,
    /// Bound read-write at the same path, and the working directory.
    pub workspace: &'a Path,
    /// The node user's home, replaced by an empty tmpfs (its keys and configuration stay
    /// out of reach) so that tools that write to `$HOME` still work.
    pub home: Option<&'a Path>,
    pub network: Network,
    /// `--sandbox-ro-bind` paths, read-only at the same path.
    pub read_only: &'a [PathBuf],
    /// `--sandbox-bind` paths, read-write at the same path.
    pub read_write: &'a [PathBuf],
}

/// bubblewrap's options for `plan`, up to and including the `--` before the command.
pub fn arguments(plan: &Plan<'_>) -> Vec<OsString> {
    let mut args: Vec<OsString> = Vec::new();
    let mut push = |items: &[&std::ffi::OsStr]| args.extend(items.iter().map(|i| i.to_os_string()));
    push(&[
        "--die-with-parent".as_ref(),
        "--new-session".as_ref(),
        "--cap-drop".as_ref(),
        "ALL".as_ref(),
    ]);
    push(&["--unshare-pid".as_ref(), "--unshare-ipc".as_ref(), "--unshare-uts".as_ref()]);
    push(&["--unshare-cgroup-try".as_ref()]);
    if plan.network == Network::None {
        push(&["--unshare-net".as_ref()]);
    }
    for path in &plan.layout.system {
        match path {
            SystemPath::Dir(dir) => push(&["--ro-bind".as_ref(), dir.as_os_str(), dir.as_os_str()]),
            SystemPath::Symlink { path, target } => {
                push(&["--symlink".as_ref(), target.as_os_str(), path.as_os_str()])
            }
        }
    }
    for entry in &plan.layout.etc {
        push(&["--ro-bind-try".as_ref(), entry.as_os_str(), entry.as_os_str()]);
    }
    push(&["--proc".as_ref(), "/proc".as_ref(), "--dev".as_ref(), "/dev".as_ref()]);
    push(&["--tmpfs".as_ref(), "/tmp".as_ref()]);
    if let Some(home) = plan.home.filter(|home| is_private_home(home)) {
        push(&["--tmpfs".as_ref(), home.as_os_str()]);
    }
    for path in plan.read_only {
        push(&["--ro-bind".as_ref(), path.as_os_str(), path.as_os_str()]);
    }
    for path in plan.read_write {
        push(&["--bind".as_ref(), path.as_os_str(), path.as_os_str()]);
    }
    let workspace = plan.workspace.as_os_str();
    push(&["--bind".as_ref(), workspace, workspace, "--chdir".as_ref(), workspace]);
    // The new root itself (where bubblewrap made the mount points) is read-only too.
    push(&["--remount-ro".as_ref(), "/".as_ref(), "--".as_ref()]);
    args
}

/// A home that may be hidden: absolute and not a system directory (`/`, `/usr`, ...).
fn is_private_home(home: &Path) -> bool {
    let overlaps = |dir: &str| home.starts_with(dir) || Path::new(dir).starts_with(home);
    home.is_absolute()
        && home.parent().is_some()
        && !SYSTEM_DIRS.iter().chain(&["/etc", "/proc", "/dev", "/tmp"]).any(|d| overlaps(d))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout() -> HostLayout {
        HostLayout {
            system: vec![
                SystemPath::Dir("/usr".into()),
                SystemPath::Symlink { path: "/bin".into(), target: "usr/bin".into() },
                SystemPath::Dir("/lib64".into()),
            ],
            etc: vec!["/etc/passwd".into(), "/etc/ssl".into()],
        }
    }

    fn text(args: &[OsString]) -> String {
        args.iter().map(|a| a.to_string_lossy().into_owned()).collect::<Vec<_>>().join(" ")
    }

    #[test]
    fn a_job_sees_the_system_read_only_and_its_workspace_read_write() {
        let layout = layout();
        let plan = Plan {
            layout: &layout,
            workspace: Path::new("/var/lib/eventide/work/job-7-1"),
            home: Some(Path::new("/root")),
            network: Network::Host,
            read_only: &["/opt/toolchains".into()],
            read_write: &["/srv/cache".into()],
        };
        assert_eq!(
            text(&arguments(&plan)),
            "--die-with-parent --new-session --cap-drop ALL --unshare-pid --unshare-ipc \
             --unshare-uts --unshare-cgroup-try --ro-bind /usr /usr --symlink usr/bin /bin \
             --ro-bind /lib64 /lib64 --ro-bind-try /etc/passwd /etc/passwd \
             --ro-bind-try /etc/ssl /etc/ssl --proc /proc --dev /dev --tmpfs /tmp \
             --tmpfs /root --ro-bind /opt/toolchains /opt/toolchains --bind /srv/cache \
             /srv/cache --bind /var/lib/eventide/work/job-7-1 /var/lib/eventide/work/job-7-1 \
             --chdir /var/lib/eventide/work/job-7-1 --remount-ro / --"
        );
    }

    #[test]
    fn network_none_unshares_the_network_and_odd_homes_are_left_alone() {
        let layout = layout();
        let mut plan = Plan {
            layout: &layout,
            workspace: Path::new("/w/job-1-1"),
            home: Some(Path::new("/")),
            network: Network::None,
            read_only: &[],
            read_write: &[],
        };
        let args = text(&arguments(&plan));
        assert!(args.contains("--unshare-net"), "{args}");
        assert!(!args.contains("--tmpfs / "), "{args}");
        for home in ["/usr", "relative", "/usr/local"] {
            plan.home = Some(Path::new(home));
            let args = text(&arguments(&plan));
            assert_eq!(args.matches("--tmpfs").count(), 1, "home {home}: {args}");
        }
        plan.home = Some(Path::new("/home/ci"));
        assert!(text(&arguments(&plan)).contains("--tmpfs /home/ci"));
    }

    #[test]
    fn the_workspace_is_bound_after_the_tmpfs_that_would_hide_it() {
        let layout = layout();
        let plan = Plan {
            layout: &layout,
            workspace: Path::new("/tmp/node-a/work/job-1-1"),
            home: None,
            network: Network::Host,
            read_only: &[],
            read_write: &[],
        };
        let args = text(&arguments(&plan));
        let tmpfs = args.find("--tmpfs /tmp").expect("tmpfs");
        let bind = args.find("--bind /tmp/node-a").expect("bind");
        assert!(tmpfs < bind, "{args}");
    }
}
