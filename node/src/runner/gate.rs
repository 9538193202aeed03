//! Whether this runner may claim work now: enough free disk in the data dir and a
//! working Raft store. A runner that cannot keep a job's checkout and output, or whose
//! node can no longer record anything, must leave jobs to others rather than fail them.
//!
//! [`decide`] is the pure rule; [`Gate`] remembers the last answer so that a change is
//! logged once per transition (not once per claim) and published by gossip.

use std::io;
use std::path::Path;

use eventide_node::units::{format_size, MinFreeDisk};

/// Free and total bytes of a file system, as statvfs reports them to an unprivileged
/// process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DiskSpace {
    pub free: u64,
    pub total: u64,
}

/// Asks the kernel how much space the file system holding `path` has left.
// The statvfs fields are u64 on 64-bit Linux but narrower elsewhere.
#[allow(clippy::useless_conversion)]
pub fn disk_space(path: &Path) -> io::Result<DiskSpace> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a nul byte"))?;
    let mut stat: libc::statvfs = unsafe {
        // SAFETY: statvfs is plain old data; all zeroes is a valid value to overwrite.
        std::mem::zeroed()
    };
    // SAFETY: `path` is a valid nul-terminated string and `stat` a valid out pointer
    // that outlives the call.
    if unsafe { libc::statvfs(path.as_ptr(), &mut stat) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let fragment = u64::from(stat.f_frsize);
    Ok(DiskSpace {
        free: u64::from(stat.f_bavail).saturating_mul(fragment),
        total: u64::from(stat.f_blocks).saturating_mul(fragment),
    })
}

/// What the node knows when a slot is about to claim.
#[derive(Debug)]
pub struct Conditions<'a> {
    pub disk: Result<DiskSpace, &'a io::Error>,
    pub min_free: MinFreeDisk,
    /// Why Raft stopped on this node (a storage error is fatal to it), if it did.
    pub raft_stopped: Option<&'a str>,
}

/// Why the runner must not claim now, or `None` if it may. A disk whose space cannot be
/// read does not stop the runner (the job will report its own failure to write).
pub fn decide(conditions: &Conditions<'_>) -> Option<String> {
    if let Some(reason) = conditions.raft_stopped {
        return Some(format!("raft stopped: {reason}"));
    }
    let space = conditions.disk.as_ref().ok()?;
    let required = conditions.min_free.required(space.total);
    (space.free < required).then(|| {
        format!(
            "disk: {} free < {}",
            format_size(space.free),
            conditions.min_free.describe(space.total)
        )
    })
}

/// A change of the gate, to log and publish.
#[derive(Debug, PartialEq, Eq)]
pub enum Transition {
    Paused(String),
    /// Still paused, for another reason.
    Changed(String),
    Resumed,
}

/// The last decision; reports only changes.
#[derive(Debug, Default)]
pub struct Gate {
    paused: Option<String>,
}

impl Gate {
    /// Records `decision` and says how it differs from the previous one.
    pub fn update(&mut self, decision: Option<String>) -> Option<Transition> {
        let transition = match (&self.paused, &decision) {
            (None, None) => None,
            (None, Some(reason)) => Some(Transition::Paused(reason.clone())),
            (Some(_), None) => Some(Transition::Resumed),
            // Free space moves all the time; only a new kind of reason is news.
            (Some(old), Some(new)) if kind(old) == kind(new) => None,
            (Some(_), Some(new)) => Some(Transition::Changed(new.clone())),
        };
        self.paused = decision;
        transition
    }

    pub fn paused(&self) -> Option<&str> {
        self.paused.as_deref()
    }
}

fn kind(reason: &str) -> &str {
    reason.split(':').next().unwrap_or(reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;

    fn conditions(free: u64, total: u64, min_free: MinFreeDisk) -> Option<String> {
        decide(&Conditions { disk: Ok(DiskSpace { free, total }), min_free, raft_stopped: None })
    }

    #[test]
    fn claims_stop_below_the_watermark() {
        let min = MinFreeDisk::Bytes(GIB);
        assert_eq!(conditions(2 * GIB, 100 * GIB, min), None);
        assert_eq!(conditions(GIB, 100 * GIB, min), None, "exactly the watermark is enough");
        assert_eq!(
            conditions(120 << 20, 100 * GIB, min).as_deref(),
            Some("disk: 120 MiB free < 1 GiB")
        );
        assert_eq!(conditions(0, 0, MinFreeDisk::Bytes(0)), None, "0 never pauses");
    }

    #[test]
    fn a_percentage_is_of_the_whole_file_system() {
        let min = MinFreeDisk::Percent(10.0);
        assert_eq!(conditions(11 * GIB, 100 * GIB, min), None);
        assert_eq!(
            conditions(5 * GIB, 100 * GIB, min).as_deref(),
            Some("disk: 5 GiB free < 10% (10 GiB)")
        );
    }

    #[test]
    fn an_unreadable_disk_does_not_pause_but_a_stopped_raft_does() {
        let error = io::Error::other("statvfs failed");
        let unreadable =
            Conditions { disk: Err(&error), min_free: MinFreeDisk::Bytes(GIB), raft_stopped: None };
        assert_eq!(decide(&unreadable), None);
        let stopped = Conditions {
            disk: Ok(DiskSpace { free: 10 * GIB, total: 100 * GIB }),
            min_free: MinFreeDisk::Bytes(GIB),
            raft_stopped: Some("storage error: failed to flush the database"),
        };
        assert_eq!(
            decide(&stopped).as_deref(),
            Some("raft stopped: storage error: failed to flush the database")
        );
    }

    #[test]
    fn the_gate_reports_each_transition_once() {
        let mut gate = Gate::default();
        let low = |free: &str| Some(format!("disk: {free} free < 1 GiB"));
        assert_eq!(gate.update(None), None);
        assert_eq!(
            gate.update(low("120 MiB")),
            Some(Transition::Paused(low("120 MiB").expect("set")))
        );
        assert_eq!(gate.update(low("110 MiB")), None, "less space is not a new transition");
        assert_eq!(gate.paused(), low("110 MiB").as_deref(), "but the reason stays current");
        let raft = "raft stopped: storage error".to_owned();
        assert_eq!(gate.update(Some(raft.clone())), Some(Transition::Changed(raft)));
        assert_eq!(gate.update(None), Some(Transition::Resumed));
        assert_eq!(gate.update(None), None);
        assert_eq!(gate.paused(), None);
    }

    #[test]
    fn the_data_dir_has_a_size() {
        let dir = tempfile::tempdir().expect("temp dir");
        let space = disk_space(dir.path()).expect("statvfs");
        assert!(space.total > 0 && space.free <= space.total, "{space:?}");
        assert!(disk_space(&dir.path().join("missing")).is_err());
    }
}
