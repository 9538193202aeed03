//! Where a job attempt's output lives on the node that ran it: the runner writes it
//! there, and the log API serves it from there.

use std::path::{Path, PathBuf};

use eventide_consensus::JobId;

/// The directory of job logs under the data dir.
pub fn logs_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("logs")
}

/// The output file of `attempt` of `job` on this node.
pub fn log_path(data_dir: &Path, job: JobId, attempt: u32) -> PathBuf {
    logs_dir(data_dir).join(format!("job-{job}-{attempt}.log"))
}
