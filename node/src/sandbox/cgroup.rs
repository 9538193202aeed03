//! Per-job control groups: memory, process and CPU limits a job cannot lift, a way to
//! kill every process it started, and the kernel's own word on which limit it hit.
//!
//! The node makes its groups below its own (as `/proc/self/cgroup` names it), so a node
//! needs no more rights than to create groups under its own, and it never touches groups
//! of other nodes. Two layouts exist:
//!
//! - cgroup v2 (one hierarchy): the node's group must let it enable the `memory`, `pids`
//!   and `cpu` controllers for its children. If the node's group holds processes (the
//!   node itself), the kernel refuses that; the node then moves itself into a leaf
//!   `eventide-<node id>/node` first, as a delegated systemd service does.
//!   Job groups are `eventide-<node id>/jobs/group-<n>`.
//! - cgroup v1 (a hierarchy per controller, as on older or hybrid systems): a group per
//!   job, `eventide-<node id>-group-<n>` beside the node's own, in each of the `memory`,
//!   `pids` and `cpu` hierarchies the node may write.
//!
//! A process joins its job's groups itself, between `clone` and `exec`, by writing `0`
//! to each group's `cgroup.procs`, so not one of the job's processes starts outside them.
//!
//! A job's group is kept for a later job with the same limits once the job is over and
//! the group is empty (making and removing one costs the kernel a directory of control
//! files each time). The kernel's counters of limits hit only grow, so a kept group's
//! are read when it is given again, and only a count beyond them is the new job's. A
//! group that still holds a process after the job's are killed is removed, not kept.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use eventide_node::isolation::Limits;
use eventide_node::units::format_size;
use tracing::debug;

/// Where the hierarchies are mounted, as the kernel says.
const MOUNTINFO: &str = "/proc/self/mountinfo";
/// The node's own group in each hierarchy.
const SELF_CGROUP: &str = "/proc/self/cgroup";
/// The CPU period of `cpu.max` / `cpu.cfs_period_us`, in microseconds.
const CPU_PERIOD_US: u64 = 100_000;
/// How many rounds of killing a job's group takes at most (a fork bomb refills it).
const KILL_ROUNDS: usize = 64;
/// Empty job groups kept for later jobs, at most.
const KEPT_MAX: usize = 64;
/// Names of job groups: kept groups serve many jobs, so they are numbered, not named
/// after their first. Older versions named theirs after the job (`job-`); both are
/// removed when the node starts.
const GROUP_PREFIX: &str = "group-";
const OLD_GROUP_PREFIX: &str = "job-";

/// A controller a job's limit needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Controller {
    Memory,
    Pids,
    Cpu,
}

impl Controller {
    const ALL: [Controller; 3] = [Controller::Memory, Controller::Pids, Controller::Cpu];

    fn name(self) -> &'static str {
        match self {
            Controller::Memory => "memory",
            Controller::Pids => "pids",
            Controller::Cpu => "cpu",
        }
    }
}

/// One mounted hierarchy, from a line of `/proc/self/mountinfo`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mount {
    /// The group the mount shows at its mount point (`/` unless in a container).
    pub root: String,
    pub mount_point: PathBuf,
    /// `None` for cgroup v2, else the v1 controllers of the hierarchy.
    pub v1_controllers: Option<Vec<String>>,
}

/// The cgroup mounts in a `/proc/self/mountinfo` text.
pub fn parse_mounts(mountinfo: &str) -> Vec<Mount> {
    let mut mounts = Vec::new();
    for line in mountinfo.lines() {
        let Some((before, after)) = line.split_once(" - ") else { continue };
        let fields: Vec<&str> = before.split(' ').collect();
        let rest: Vec<&str> = after.split(' ').collect();
        let (Some(root), Some(mount_point), Some(fstype)) =
            (fields.get(3), fields.get(4), rest.first())
        else {
            continue;
        };
        let v1_controllers = match *fstype {
            "cgroup2" => None,
            "cgroup" => Some(
                rest.get(2)
                    .map(|options| {
                        options
                            .split(',')
                            .filter(|o| Controller::ALL.iter().any(|c| c.name() == *o))
                            .map(str::to_owned)
                            .collect()
                    })
                    .unwrap_or_default(),
            ),
            _ => continue,
        };
        mounts.push(Mount {
            root: unescape(root),
            mount_point: PathBuf::from(unescape(mount_point)),
            v1_controllers,
        });
    }
    mounts
}

/// mountinfo writes space, tab, newline and backslash as octal escapes.
fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('\\') {
        out.push_str(&rest[..at]);
        let code = rest.get(at + 1..at + 4).and_then(|d| u8::from_str_radix(d, 8).ok());
        match code {
            Some(byte) => {
                out.push(char::from(byte));
                rest = &rest[at + 4..];
            }
            None => {
                out.push('\\');
                rest = &rest[at + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The node's group per hierarchy, from `/proc/self/cgroup`: (controllers, path); the
/// v2 line has no controllers.
pub fn parse_self(text: &str) -> Vec<(Vec<String>, String)> {
    text.lines()
        .filter_map(|line| {
            let mut parts = line.splitn(3, ':');
            let _id = parts.next()?;
            let controllers = parts.next()?;
            let path = parts.next()?;
            let controllers = controllers
                .split(',')
                .filter(|c| !c.is_empty())
                .map(str::to_owned)
                .collect::<Vec<_>>();
            Some((controllers, path.to_owned()))
        })
        .collect()
}

/// The directory of group `path` in a hierarchy mounted as `mount`; `None` if the mount
/// does not show it (a container that sees only part of the tree).
fn dir_of(mount: &Mount, path: &str) -> Option<PathBuf> {
    let root = mount.root.trim_end_matches('/');
    let relative = path.strip_prefix(root)?;
    if !(relative.is_empty() || relative.starts_with('/')) {
        return None;
    }
    Some(mount.mount_point.join(relative.trim_start_matches('/')))
}

/// The counter `key` of a flat-keyed file such as `memory.events` or `pids.events`.
pub fn counter(text: &str, key: &str) -> u64 {
    text.lines()
        .filter_map(|line| line.split_once(' '))
        .find(|(name, _)| *name == key)
        .and_then(|(_, value)| value.trim().parse().ok())
        .unwrap_or(0)
}

/// How this node makes job groups.
#[derive(Clone, Debug)]
pub struct Cgroups {
    layout: Layout,
    /// Empty groups of ended jobs, for the next job with the same limits.
    kept: Arc<Kept>,
}

#[derive(Debug, Default)]
struct Kept {
    groups: Mutex<Vec<JobCgroup>>,
    /// The number of the next group made.
    next: AtomicU64,
}

impl Kept {
    fn take(&self, limits: &Limits) -> Option<JobCgroup> {
        let mut groups = self.groups.lock().unwrap_or_else(PoisonError::into_inner);
        let at = groups.iter().rposition(|group| group.limits == *limits)?;
        Some(groups.swap_remove(at))
    }

    /// Keeps `group`; gives it back if as many are kept as may be.
    fn put(&self, group: JobCgroup) -> Option<JobCgroup> {
        let mut groups = self.groups.lock().unwrap_or_else(PoisonError::into_inner);
        if groups.len() >= KEPT_MAX {
            return Some(group);
        }
        groups.push(group);
        None
    }
}

#[derive(Clone, Debug)]
enum Layout {
    /// The directory under which job groups are made, with these controllers enabled.
    V2 { parent: PathBuf, controllers: Vec<Controller> },
    /// Per controller, the node's own group, in which job groups are made with names
    /// starting with `prefix`.
    V1 { parents: Vec<(Controller, PathBuf)>, prefix: String },
}

impl Cgroups {
    /// Finds and prepares the groups of node `node_tag`; the reason if this node cannot
    /// make job groups with any limiting controller. Groups left by an earlier run of the
    /// node are emptied (their processes killed) and removed.
    pub fn detect(node_tag: &str) -> Result<Cgroups, String> {
        let mountinfo =
            std::fs::read_to_string(MOUNTINFO).map_err(|e| format!("{MOUNTINFO}: {e}"))?;
        let own =
            std::fs::read_to_string(SELF_CGROUP).map_err(|e| format!("{SELF_CGROUP}: {e}"))?;
        let mounts = parse_mounts(&mountinfo);
        let own = parse_self(&own);
        let mut reasons = Vec::new();
        let v1 = Self::detect_v1(&mounts, &own, node_tag);
        // A hierarchy per controller means the v2 one (if any) has none of them.
        match v1 {
            Ok(Some(cgroups)) => return Ok(cgroups),
            Ok(None) => {}
            Err(reason) => reasons.push(reason),
        }
        match Self::detect_v2(&mounts, &own, node_tag) {
            Ok(cgroups) => return Ok(cgroups),
            Err(reason) => reasons.push(reason),
        }
        Err(reasons.join("; "))
    }

    fn detect_v1(
        mounts: &[Mount],
        own: &[(Vec<String>, String)],
        node_tag: &str,
    ) -> Result<Option<Cgroups>, String> {
        let mut parents = Vec::new();
        let mut problems = Vec::new();
        let prefix = format!("eventide-{node_tag}-");
        for controller in Controller::ALL {
            let name = controller.name();
            let Some(mount) = mounts
                .iter()
                .find(|m| m.v1_controllers.as_ref().is_some_and(|c| c.iter().any(|c| c == name)))
            else {
                continue;
            };
            let Some((_, path)) = own.iter().find(|(c, _)| c.iter().any(|c| c == name)) else {
                continue;
            };
            let Some(dir) = dir_of(mount, path) else { continue };
            // Creating a group is the only test of the right to.
            let probe = dir.join(format!("{prefix}probe"));
            let _ = std::fs::remove_dir(&probe);
            match std::fs::create_dir(&probe) {
                Ok(()) => {
                    let _ = std::fs::remove_dir(&probe);
                    clear_stale(&dir, &format!("{prefix}{OLD_GROUP_PREFIX}"));
                    clear_stale(&dir, &format!("{prefix}{GROUP_PREFIX}"));
                    parents.push((controller, dir));
                }
                Err(error) => problems.push(format!("cannot create {}: {error}", probe.display())),
            }
        }
        if parents.is_empty() {
            return match problems.is_empty() {
                true => Ok(None),
                false => Err(format!("cgroup v1: {}", problems.join(", "))),
            };
        }
        Ok(Some(Cgroups { layout: Layout::V1 { parents, prefix }, kept: Arc::default() }))
    }

    fn detect_v2(
        mounts: &[Mount],
        own: &[(Vec<String>, String)],
        node_tag: &str,
    ) -> Result<Cgroups, String> {
        let mount = mounts
            .iter()
            .find(|m| m.v1_controllers.is_none())
            .ok_or("no cgroup v2 hierarchy is mounted")?;
        let (_, path) =
            own.iter().find(|(c, _)| c.is_empty()).ok_or("the node is in no cgroup v2 group")?;
        let base = dir_of(mount, path).ok_or("the node's cgroup v2 group is not visible")?;
        let available = std::fs::read_to_string(base.join("cgroup.controllers"))
            .map_err(|e| format!("cgroup v2: {}: {e}", base.display()))?;
        let controllers: Vec<Controller> = Controller::ALL
            .into_iter()
            .filter(|c| available.split_whitespace().any(|a| a == c.name()))
            .collect();
        if controllers.is_empty() {
            return Err(format!(
                "cgroup v2: the node's group {} offers none of memory, pids, cpu",
                base.display()
            ));
        }
        let enable: String =
            controllers.iter().map(|c| format!("+{}", c.name())).collect::<Vec<_>>().join(" ");
        let node_dir = base.join(format!("eventide-{node_tag}"));
        let jobs = node_dir.join("jobs");
        let v2_error = |what: &str, error: io::Error| format!("cgroup v2: {what}: {error}");
        std::fs::create_dir_all(&node_dir).map_err(|e| v2_error("create", e))?;
        if std::fs::write(base.join("cgroup.subtree_control"), &enable).is_err() {
            // The node's group holds processes: move this process into a leaf of its
            // own, then enable the controllers for the group's children.
            let leaf = node_dir.join("node");
            std::fs::create_dir_all(&leaf).map_err(|e| v2_error("create", e))?;
            std::fs::write(leaf.join("cgroup.procs"), "0")
                .map_err(|e| v2_error("move the node into its own group", e))?;
            std::fs::write(base.join("cgroup.subtree_control"), &enable)
                .map_err(|e| v2_error("enable controllers", e))?;
        }
        std::fs::write(node_dir.join("cgroup.subtree_control"), &enable)
            .map_err(|e| v2_error("enable controllers", e))?;
        std::fs::create_dir_all(&jobs).map_err(|e| v2_error("create", e))?;
        std::fs::write(jobs.join("cgroup.subtree_control"), &enable)
            .map_err(|e| v2_error("enable controllers", e))?;
        clear_stale(&jobs, OLD_GROUP_PREFIX);
        clear_stale(&jobs, GROUP_PREFIX);
        Ok(Cgroups { layout: Layout::V2 { parent: jobs, controllers }, kept: Arc::default() })
    }

    /// `cgroup v2` or `cgroup v1`, for `status`.
    pub fn name(&self) -> &'static str {
        match self.layout {
            Layout::V2 { .. } => "cgroup v2",
            Layout::V1 { .. } => "cgroup v1",
        }
    }

    /// Whether a limit of this controller can be enforced.
    pub fn has(&self, controller: Controller) -> bool {
        match &self.layout {
            Layout::V2 { controllers, .. } => controllers.contains(&controller),
            Layout::V1 { parents, .. } => parents.iter().any(|(c, _)| *c == controller),
        }
    }

    /// The groups of a job with `limits`: a kept group with those limits, else new ones
    /// with `limits` written into them.
    pub fn create(&self, limits: &Limits) -> io::Result<JobCgroup> {
        if let Some(mut job) = self.kept.take(limits) {
            job.baseline = job.counters();
            return Ok(job);
        }
        let name = format!("{GROUP_PREFIX}{}", self.kept.next.fetch_add(1, Ordering::Relaxed));
        let mut job = JobCgroup {
            v2: false,
            dirs: Vec::new(),
            join: Vec::new(),
            limits: *limits,
            baseline: Vec::new(),
            kept: Some(self.kept.clone()),
        };
        match &self.layout {
            Layout::V2 { parent, controllers } => {
                job.v2 = true;
                let dir = parent.join(name);
                make_dir(&dir)?;
                job.add(&dir)?;
                if let (Some(memory), true) =
                    (limits.memory, controllers.contains(&Controller::Memory))
                {
                    write(&dir, "memory.max", &memory.to_string())?;
                    // Swap would let a job go past its memory; absent without swap.
                    let _ = std::fs::write(dir.join("memory.swap.max"), "0");
                }
                if let (Some(pids), true) = (limits.pids, controllers.contains(&Controller::Pids)) {
                    write(&dir, "pids.max", &pids.to_string())?;
                }
                if let (Some(cpus), true) =
                    (limits.cpus_milli, controllers.contains(&Controller::Cpu))
                {
                    write(&dir, "cpu.max", &format!("{} {CPU_PERIOD_US}", quota_us(cpus)))?;
                }
            }
            Layout::V1 { parents, prefix } => {
                // A hierarchy per limit the job has; without any, one group (the first
                // hierarchy's) is enough to find and kill every process of the job, and
                // each group is a directory to make, join, search and remove per job.
                let limited = |controller: &Controller| match controller {
                    Controller::Memory => limits.memory.is_some(),
                    Controller::Pids => limits.pids.is_some(),
                    Controller::Cpu => limits.cpus_milli.is_some(),
                };
                let mut chosen: Vec<&(Controller, PathBuf)> =
                    parents.iter().filter(|(controller, _)| limited(controller)).collect();
                if chosen.is_empty() {
                    chosen.extend(parents.first());
                }
                for (controller, parent) in chosen {
                    let dir = parent.join(format!("{prefix}{name}"));
                    make_dir(&dir)?;
                    job.add(&dir)?;
                    match controller {
                        Controller::Memory => {
                            if let Some(memory) = limits.memory {
                                write(&dir, "memory.limit_in_bytes", &memory.to_string())?;
                                if dir.join("memory.memsw.limit_in_bytes").exists() {
                                    write(
                                        &dir,
                                        "memory.memsw.limit_in_bytes",
                                        &memory.to_string(),
                                    )?;
                                }
                            }
                        }
                        Controller::Pids => {
                            if let Some(pids) = limits.pids {
                                write(&dir, "pids.max", &pids.to_string())?;
                            }
                        }
                        Controller::Cpu => {
                            if let Some(cpus) = limits.cpus_milli {
                                write(&dir, "cpu.cfs_period_us", &CPU_PERIOD_US.to_string())?;
                                write(&dir, "cpu.cfs_quota_us", &quota_us(cpus).to_string())?;
                            }
                        }
                    }
                }
            }
        }
        Ok(job)
    }
}

fn quota_us(cpus_milli: u32) -> u64 {
    (u64::from(cpus_milli) * CPU_PERIOD_US / 1000).max(1000)
}

fn make_dir(dir: &Path) -> io::Result<()> {
    match std::fs::create_dir(dir) {
        Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {
            kill_members(dir, false);
            Ok(())
        }
        other => other,
    }
}

fn write(dir: &Path, file: &str, value: &str) -> io::Result<()> {
    std::fs::write(dir.join(file), value).map_err(|error| {
        io::Error::new(error.kind(), format!("failed to set {}/{file}: {error}", dir.display()))
    })
}

/// Kills the processes of every group under `parent` whose name starts with `prefix`
/// (jobs of an earlier run of this node) and removes the groups.
fn clear_stale(parent: &Path, prefix: &str) {
    let Ok(entries) = std::fs::read_dir(parent) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        let is_job = entry.file_name().to_str().is_some_and(|n| n.starts_with(prefix));
        if is_job && path.is_dir() {
            kill_members(&path, path.join("cgroup.kill").exists());
            if std::fs::remove_dir(&path).is_ok() {
                debug!(group = %path.display(), "removed a job group of an earlier run");
            }
        }
    }
}

/// Kills every process in the group at `dir`, in rounds until it is empty (a process may
/// fork while the others are being killed).
fn kill_members(dir: &Path, v2: bool) {
    if v2 && std::fs::write(dir.join("cgroup.kill"), "1").is_ok() {
        return;
    }
    for _ in 0..KILL_ROUNDS {
        let Ok(text) = std::fs::read_to_string(dir.join("cgroup.procs")) else { return };
        let pids: Vec<libc::pid_t> = text.lines().filter_map(|l| l.trim().parse().ok()).collect();
        if pids.is_empty() {
            return;
        }
        for pid in pids {
            if pid > 1 {
                // SAFETY: kill only sends a signal; the pid was read from the job's own
                // group, whose processes are the job's.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
    }
}

/// The groups of one job. Their processes are killed and the groups kept or removed by
/// [`JobCgroup::release`], or (best effort) removed on drop.
#[derive(Debug)]
pub struct JobCgroup {
    v2: bool,
    dirs: Vec<PathBuf>,
    /// `<dir>/cgroup.procs` of each group, for the job's first process to join.
    join: Vec<CString>,
    limits: Limits,
    /// Per group, the limit counters as the job found them (none: all zero).
    baseline: Vec<Counters>,
    /// Where the group is kept when the job is over.
    kept: Option<Arc<Kept>>,
}

/// The kernel's counts of a group's limits hit: processes killed for memory, processes
/// refused for the process limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Counters {
    oom_kills: u64,
    pids_refused: u64,
}

impl JobCgroup {
    fn add(&mut self, dir: &Path) -> io::Result<()> {
        let procs = dir.join("cgroup.procs");
        let path = CString::new(procs.as_os_str().as_bytes())
            .map_err(|_| io::Error::other("cgroup path holds a nul byte"))?;
        self.dirs.push(dir.to_owned());
        self.join.push(path);
        Ok(())
    }

    /// The `cgroup.procs` files a process writes `0` to, to join the job's groups.
    pub fn join_paths(&self) -> &[CString] {
        &self.join
    }

    /// The counters of each group, as the kernel has them now.
    fn counters(&self) -> Vec<Counters> {
        self.dirs.iter().map(|dir| self.counters_of(dir)).collect()
    }

    fn counters_of(&self, dir: &Path) -> Counters {
        // Only the limits the job has are read: this runs while every job runs and after it.
        let read = |file: &str| std::fs::read_to_string(dir.join(file)).ok();
        let mut counters = Counters::default();
        if self.limits.memory.is_some() {
            let events = if self.v2 { "memory.events" } else { "memory.oom_control" };
            counters.oom_kills = read(events).map_or(0, |text| counter(&text, "oom_kill"));
        }
        if self.limits.pids.is_some() {
            counters.pids_refused = read("pids.events").map_or(0, |text| counter(&text, "max"));
        }
        counters
    }

    /// The limit the job reached, as its result says it: `memory limit 2 GiB reached`
    /// when the kernel killed one of its processes for memory, `process limit 64 reached`
    /// when it refused one a new process (counted since the job was given the group).
    pub fn reached(&self) -> Option<String> {
        for (at, dir) in self.dirs.iter().enumerate() {
            let before = self.baseline.get(at).copied().unwrap_or_default();
            let now = self.counters_of(dir);
            if let (Some(memory), true) = (self.limits.memory, now.oom_kills > before.oom_kills) {
                return Some(format!("memory limit {} reached", format_size(memory)));
            }
            if let (Some(pids), true) = (self.limits.pids, now.pids_refused > before.pids_refused) {
                return Some(format!("process limit {pids} reached"));
            }
        }
        None
    }

    /// Whether no process is left in any of the groups.
    fn is_empty(&self) -> bool {
        self.dirs.iter().all(|dir| {
            std::fs::read_to_string(dir.join("cgroup.procs"))
                .is_ok_and(|text| text.trim().is_empty())
        })
    }

    /// Kills what is left of the job; keeps the groups for a later job with the same
    /// limits if they are empty at once, else removes them (see [`JobCgroup::remove`]).
    pub fn release(mut self) {
        self.kill_all();
        if let Some(kept) = self.kept.clone() {
            if self.is_empty() {
                match kept.put(self) {
                    None => return,
                    Some(back) => self = back,
                }
            }
        }
        self.remove();
    }

    /// Kills every process of the job, wherever it moved in its process tree.
    pub fn kill_all(&self) {
        for dir in &self.dirs {
            kill_members(dir, self.v2);
        }
    }

    /// Kills what is left and removes the groups; retried for a moment, since the
    /// kernel removes a group only once its last process is gone.
    pub fn remove(mut self) {
        for _ in 0..100 {
            self.kill_all();
            self.dirs.retain(|dir| {
                std::fs::remove_dir(dir).is_err_and(|e| e.kind() != io::ErrorKind::NotFound)
            });
            if self.dirs.is_empty() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        for dir in &self.dirs {
            debug!(group = %dir.display(), "failed to remove a job group");
        }
        self.dirs.clear();
    }
}

impl Drop for JobCgroup {
    fn drop(&mut self) {
        for dir in &self.dirs {
            kill_members(dir, self.v2);
            let _ = std::fs::remove_dir(dir);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 /docker/abc /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
42 23 0:39 / /mnt/with\\040space rw - ext4 /dev/vdb rw
";

    /// A v1 layout of plain directories under `root`, one per controller.
    fn fake_v1(root: &Path) -> (Cgroups, Vec<(Controller, PathBuf)>) {
        let parents: Vec<(Controller, PathBuf)> =
            [Controller::Memory, Controller::Pids, Controller::Cpu]
                .into_iter()
                .map(|controller| {
                    let dir = root.join(format!("{controller:?}"));
                    std::fs::create_dir(&dir).expect("mkdir");
                    (controller, dir)
                })
                .collect();
        let layout = Layout::V1 { parents: parents.clone(), prefix: "t-".into() };
        (Cgroups { layout, kept: Arc::default() }, parents)
    }

    #[test]
    fn a_v1_job_gets_a_group_per_limit_it_has_and_one_without_any() {
        let root = tempfile::tempdir().expect("temp dir");
        let (cgroups, parents) = fake_v1(root.path());
        let mut made = Vec::new();
        let mut groups = |limits: Limits| -> Vec<PathBuf> {
            let job = cgroups.create(&limits).expect("created");
            let dirs = job.dirs.clone();
            assert_eq!(job.join_paths().len(), dirs.len(), "one join per group");
            made.push(job);
            dirs
        };
        let unlimited = groups(Limits::default());
        assert_eq!(unlimited, vec![parents[0].1.join("t-group-0")], "one group, to kill by");
        let pids = groups(Limits { pids: Some(64), ..Limits::default() });
        assert_eq!(pids, vec![parents[1].1.join("t-group-1")]);
        let written = std::fs::read_to_string(parents[1].1.join("t-group-1/pids.max"));
        assert_eq!(written.expect("set"), "64");
        let both =
            groups(Limits { memory: Some(1 << 30), cpus_milli: Some(1500), ..Limits::default() });
        assert_eq!(both, vec![parents[0].1.join("t-group-2"), parents[2].1.join("t-group-2")]);
        for job in made {
            // Plain directories with files in them: nothing to remove, nothing kept.
            job.dirs.iter().for_each(|dir| drop(std::fs::remove_dir_all(dir)));
            drop(job);
        }
    }

    #[test]
    fn an_empty_group_is_kept_for_the_next_job_with_its_limits_which_sees_only_its_own_counts() {
        let root = tempfile::tempdir().expect("temp dir");
        let (cgroups, parents) = fake_v1(root.path());
        let limits = Limits { pids: Some(40), ..Limits::default() };
        let events = parents[1].1.join("t-group-0/pids.events");
        let first = cgroups.create(&limits).expect("created");
        std::fs::write(first.dirs[0].join("cgroup.procs"), "").expect("an empty group");
        assert_eq!(first.reached(), None, "no count yet");
        std::fs::write(&events, "max 2\n").expect("two processes refused");
        assert_eq!(first.reached().as_deref(), Some("process limit 40 reached"));
        first.release();
        assert_eq!(cgroups.kept.groups.lock().expect("lock").len(), 1, "kept");

        // The next job with those limits gets the same group, and none of its counts.
        let second = cgroups.create(&limits).expect("given again");
        assert_eq!(second.dirs, vec![parents[1].1.join("t-group-0")]);
        assert_eq!(second.reached(), None, "the first job's refusals are not the second's");
        std::fs::write(&events, "max 3\n").expect("one more refused");
        assert_eq!(second.reached().as_deref(), Some("process limit 40 reached"));
        // Other limits get a group of their own.
        let other = cgroups.create(&Limits { pids: Some(41), ..Limits::default() }).expect("new");
        assert_eq!(other.dirs, vec![parents[1].1.join("t-group-1")]);
        std::fs::write(other.dirs[0].join("cgroup.procs"), "").expect("empty");
        second.release();
        other.release();
        assert_eq!(cgroups.kept.groups.lock().expect("lock").len(), 2);
        let again = cgroups.create(&Limits { pids: Some(41), ..Limits::default() }).expect("kept");
        assert_eq!(again.dirs, vec![parents[1].1.join("t-group-1")]);
    }

    #[test]
    fn only_a_group_without_processes_is_empty() {
        let root = tempfile::tempdir().expect("temp dir");
        let (cgroups, _) = fake_v1(root.path());
        let job = cgroups.create(&Limits::default()).expect("created");
        assert!(!job.is_empty(), "a group whose members cannot be read is not known empty");
        std::fs::write(job.dirs[0].join("cgroup.procs"), "4242\n").expect("a member");
        assert!(!job.is_empty());
        std::fs::write(job.dirs[0].join("cgroup.procs"), "\n").expect("none");
        assert!(job.is_empty());
        std::fs::remove_dir_all(&job.dirs[0]).expect("cleaned");
    }

    #[test]
    fn cgroup_mounts_are_found_with_their_controllers() {
        let mounts = parse_mounts(HYBRID);
        assert_eq!(mounts.len(), 5, "{mounts:?}");
        assert_eq!(mounts[0].v1_controllers.as_deref(), Some(&["cpu".to_owned()][..]));
        assert_eq!(mounts[2].root, "/docker/abc");
        assert_eq!(mounts[3].v1_controllers.as_deref(), Some(&[][..]), "name=systemd: none");
        assert_eq!(mounts[4].v1_controllers, None);
        assert_eq!(mounts[4].mount_point, PathBuf::from("/sys/fs/cgroup/unified"));
        assert_eq!(unescape("/mnt/with\\040space"), "/mnt/with space");
    }

    #[test]
    fn the_nodes_own_group_is_found_below_the_mount_root() {
        let own = parse_self("4:memory:/process_api/xyz\n2:cpu,cpuacct:/\n0::/user.slice\n");
        assert_eq!(own[0], (vec!["memory".to_owned()], "/process_api/xyz".to_owned()));
        assert_eq!(own[1].0, vec!["cpu".to_owned(), "cpuacct".to_owned()]);
        assert_eq!(own[2], (vec![], "/user.slice".to_owned()));
        let mount = |root: &str| Mount {
            root: root.into(),
            mount_point: "/sys/fs/cgroup/pids".into(),
            v1_controllers: Some(vec!["pids".into()]),
        };
        assert_eq!(dir_of(&mount("/"), "/a/b"), Some("/sys/fs/cgroup/pids/a/b".into()));
        assert_eq!(
            dir_of(&mount("/docker/abc"), "/docker/abc"),
            Some("/sys/fs/cgroup/pids".into())
        );
        assert_eq!(
            dir_of(&mount("/docker/abc"), "/docker/abc/x"),
            Some("/sys/fs/cgroup/pids/x".into())
        );
        assert_eq!(dir_of(&mount("/docker/abc"), "/docker/abcd"), None);
        assert_eq!(dir_of(&mount("/docker/abc"), "/other"), None);
    }

    #[test]
    fn counters_are_read_from_flat_keyed_files() {
        let events = "low 0\nhigh 0\nmax 12\noom 1\noom_kill 1\noom_group_kill 0\n";
        assert_eq!(counter(events, "oom_kill"), 1);
        assert_eq!(counter(events, "max"), 12);
        assert_eq!(counter(events, "missing"), 0);
        assert_eq!(counter("oom_kill_disable 0\nunder_oom 0\noom_kill 3\n", "oom_kill"), 3);
        assert_eq!(quota_us(1500), 150_000);
        assert_eq!(quota_us(1), 1000, "the kernel's smallest quota");
    }
}
