//! Where a job attempt's output lives on the node that ran it: the runner writes it
//! there, and the log API serves it from there.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use eventide_consensus::JobId;

/// The directory of job logs under the data dir.
pub fn logs_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("logs")
}

/// The output file of `attempt` of `job` on this node.
pub fn log_path(data_dir: &Path, job: JobId, attempt: u32) -> PathBuf {
    logs_dir(data_dir).join(format!("job-{job}-{attempt}.log"))
}

/// The job attempts this node's runner is running now: their log files are still being
/// written, so a follower of one keeps reading. The runner's own record, which a client
/// (whose replica is empty) has as well as a server.
#[derive(Debug, Default)]
pub struct RunningJobs(Mutex<BTreeSet<(JobId, u32)>>);

impl RunningJobs {
    pub fn start(&self, job: JobId, attempt: u32) {
        self.lock().insert((job, attempt));
    }

    pub fn end(&self, job: JobId, attempt: u32) {
        self.lock().remove(&(job, attempt));
    }

    pub fn contains(&self, job: JobId, attempt: u32) -> bool {
        self.lock().contains(&(job, attempt))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeSet<(JobId, u32)>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
