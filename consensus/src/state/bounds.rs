//! The largest state the limits allow, in encoded bytes.
//!
//! Every collection in [`Data`](super::Data) is bounded, by a [`Limits`] field or by a
//! per-item constant, so the encoded state is too. [`largest_state_bytes`] adds up the
//! most each part can take in the codec's encoding (bincode's standard configuration:
//! integers as varints of at most 9 bytes, lengths as u64 varints, enum tags as u32
//! varints), counting every item at its largest. It is an upper bound, not an estimate:
//! a test builds the largest state and checks it stays below.
//!
//! The count of each kind of item:
//!
//! - repositories: `max_repos`; cursors: `max_branches_per_repo` per repository, each with
//!   at most [`Cursor::RECENT_SKIPPED`] skipped commits;
//! - jobs queued or running: an observation applies only while the repository has fewer
//!   than `max_queue_per_repo`, and queues at most [`MAX_COMMITS_PER_OBSERVE`], so a
//!   repository has at most `max_queue_per_repo - 1 + MAX_COMMITS_PER_OBSERVE`;
//! - final jobs: `retained_jobs`, of which `retained_outputs` keep their output tail and
//!   failing test names;
//! - attempts per job: `max_attempts` (an attempt starts only at the current attempt
//!   number, which only a requeue below `max_attempts` raises);
//! - secrets: [`MAX_SECRETS`], each at most [`MAX_SEALED_BYTES`] sealed and restricted to
//!   at most [`MAX_BRANCH_PATTERNS`] branch patterns;
//! - forge data: settings and a refusal per repository, [`MAX_OUTBOX`] statuses;
//! - builds: every job has at most one step record and makes at most one build (a build
//!   has at least one job and is forgotten with its last), so both count per job;
//!   artifacts: [`MAX_ARTIFACTS`] in all.
//!
//! The default limits are also the most [`Limits::problem`] accepts, so
//! `largest_state_bytes(&Limits::default())` bounds every state, whatever limits were set
//! on the way.

use super::forge::{
    MAX_API_URL_BYTES, MAX_BRANCH_PATTERNS, MAX_CONTEXT_BYTES, MAX_DESCRIPTION_BYTES,
    MAX_FORGE_ANSWER_BYTES, MAX_OUTBOX, MAX_PATH_BYTES,
};
use super::pipeline::{MAX_ARTIFACTS, MAX_ARTIFACT_HOLDERS, MAX_ARTIFACT_NAME_BYTES};
use super::MAX_REASON_BYTES;
use super::{
    Cursor, Limits, MAX_BRANCH_BYTES, MAX_COMMITS_PER_OBSERVE, MAX_FAILING_NAMES, MAX_LABELS,
    MAX_LABEL_BYTES, MAX_MESSAGE_BYTES, MAX_NAME_BYTES, MAX_NOTE_BYTES, MAX_SEALED_BYTES,
    MAX_SECRETS, MAX_SECRET_NAME_BYTES, MAX_TEST_NAME_BYTES,
};
use crate::auth::NONCE_BYTES;
use crate::command::{
    MAX_AUTHOR_BYTES, MAX_BY_BYTES, MAX_JOBS_PER_BUILD, MAX_MATRIX_KEYS, MAX_MATRIX_KEY_BYTES,
    MAX_MATRIX_VALUE_BYTES, MAX_STEP_NAME_BYTES, MAX_SUBJECT_BYTES,
};

/// A u64 (ids, time stamps, counts) as a varint.
const U64: u64 = 9;
/// A u32 or i32 as a varint.
const U32: u64 = 5;
/// The length in front of a string, a list or a map.
const LEN: u64 = U64;
/// An enum's variant.
const TAG: u64 = U32;
/// The `Some`/`None` byte of an `Option`.
const OPTION: u64 = 1;
const BOOL: u64 = 1;
/// A job's index in its build: below [`MAX_JOBS_PER_BUILD`], so one varint byte.
const JOB_INDEX: u64 = 1;
const _: () = assert!(MAX_JOBS_PER_BUILD < 251, "a job index is one varint byte");
/// A commit id: a string of 40 or 64 hex digits.
const COMMIT: u64 = LEN + 64;

const fn text(max_bytes: usize) -> u64 {
    LEN + max_bytes as u64
}

/// The most bytes the encoding of a state under `limits` can take.
pub fn largest_state_bytes(limits: &Limits) -> u64 {
    let repos = u64::from(limits.max_repos);
    let branches = repos * u64::from(limits.max_branches_per_repo);
    let open_jobs = repos
        * (u64::from(limits.max_queue_per_repo).saturating_sub(1) + MAX_COMMITS_PER_OBSERVE as u64);
    let final_jobs = u64::from(limits.retained_jobs);
    let outputs = u64::from(limits.retained_outputs);

    let repo = U64 + U64 + text(MAX_NAME_BYTES) + U64;
    let cursor =
        text(MAX_BRANCH_BYTES) + COMMIT + U64 + U64 + LEN + Cursor::RECENT_SKIPPED as u64 * COMMIT;
    let attempt = U32 + U64 + U64 + (OPTION + U64) + (OPTION + text(MAX_NOTE_BYTES));
    let open_job = U64 // its key in the job map
        + U64
        + U64
        + text(MAX_BRANCH_BYTES)
        + COMMIT
        + TAG
        + LEN
        + MAX_LABELS as u64 * text(MAX_LABEL_BYTES)
        + TAG
        + U32
        + U64
        + (OPTION + U64)
        + (OPTION + U64)
        + LEN
        + u64::from(limits.max_attempts) * attempt
        + OPTION;
    // A result without output and failing names, as retention leaves it.
    let result = (OPTION + U32)
        + U64
        + LEN
        + BOOL
        + (OPTION + 3 * U32 + LEN)
        + (OPTION + text(MAX_MESSAGE_BYTES))
        + U64;
    let final_job = open_job + result + U64; // and its place in `finished`
    let output = u64::from(limits.output_tail_bytes)
        + MAX_FAILING_NAMES as u64 * text(MAX_TEST_NAME_BYTES)
        + U64; // its place in `outputs_kept`

    // Its name (the map key), the nonce (a fixed array), the ciphertext, two time stamps.
    let secret =
        text(MAX_SECRET_NAME_BYTES) + NONCE_BYTES as u64 + text(MAX_SEALED_BYTES) + 2 * U64;
    // Its name again (the key of the branches map) and its branch patterns.
    let restriction =
        text(MAX_SECRET_NAME_BYTES) + LEN + MAX_BRANCH_PATTERNS as u64 * text(MAX_BRANCH_BYTES + 1);

    // Forge, api url, four secret names, CA file, branch patterns (`!` and a branch name),
    // poll interval, context.
    let settings = (OPTION + TAG)
        + (OPTION + text(MAX_API_URL_BYTES))
        + 4 * (OPTION + text(MAX_SECRET_NAME_BYTES))
        + (OPTION + text(MAX_PATH_BYTES))
        + LEN
        + MAX_BRANCH_PATTERNS as u64 * text(MAX_BRANCH_BYTES + 1)
        + (OPTION + U64)
        + (OPTION + text(MAX_CONTEXT_BYTES));
    let status = U64 + U64 + U64 + COMMIT + TAG + text(MAX_DESCRIPTION_BYTES) + U64;
    let refusal = U64 + U64 + text(MAX_FORGE_ANSWER_BYTES);
    let forge = repos * (U64 + settings + refusal) + MAX_OUTBOX as u64 * status;

    // The step record of a job: its key, build, step, matrix, needs, group, artifacts.
    let step = U64
        + U64
        + text(MAX_STEP_NAME_BYTES)
        + LEN
        + MAX_MATRIX_KEYS as u64 * (text(MAX_MATRIX_KEY_BYTES) + text(MAX_MATRIX_VALUE_BYTES))
        + LEN
        // A build's jobs need each other at most once a pair in one direction (each
        // only jobs before it): on average at most half of the others.
        + (MAX_JOBS_PER_BUILD as u64 - 1).div_ceil(2) * JOB_INDEX
        + (OPTION + text(MAX_LABEL_BYTES))
        + LEN;
    // A build (its key, id, repository, branch, commit, trigger, by, subject, author,
    // creation, jobs, status, end, cancel reason), counted once per job, and the job's
    // entry in its list.
    let build = U64
        + U64
        + U64
        + text(MAX_BRANCH_BYTES)
        + COMMIT
        + TAG
        + (OPTION + text(MAX_BY_BYTES))
        + text(MAX_SUBJECT_BYTES)
        + text(MAX_AUTHOR_BYTES)
        + U64
        + LEN
        + TAG
        + (OPTION + U64)
        + (OPTION + text(MAX_REASON_BYTES))
        + U64;
    let artifact =
        text(MAX_ARTIFACT_NAME_BYTES) + text(64) + U64 + LEN + MAX_ARTIFACT_HOLDERS as u64 * U64;
    let pipeline =
        U64 + 2 * LEN + (open_jobs + final_jobs) * (step + build) + MAX_ARTIFACTS as u64 * artifact;

    let fixed = 7 * U32 + 3 * U64 + 10 * LEN;
    fixed
        + repos * (U64 + repo + U64 + LEN) // in the repository map and the cursor map
        + branches * cursor
        + open_jobs * open_job
        + final_jobs * final_job
        + outputs * output
        + MAX_SECRETS as u64 * (secret + restriction)
        + forge
        + pipeline
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::STORED_LIMIT;

    #[test]
    fn the_largest_state_fits_what_a_node_reads_back_from_disk() {
        let largest = largest_state_bytes(&Limits::default());
        // Room is left for the snapshot's own fields (log id, membership) and for growth.
        assert!(
            largest < STORED_LIMIT as u64 / 2,
            "the limits allow a state of {largest} bytes, the stored limit is {STORED_LIMIT}"
        );
    }

    #[test]
    fn lower_limits_allow_a_smaller_state() {
        let most = Limits::default();
        let largest = largest_state_bytes(&most);
        let lowered = [
            Limits { max_attempts: 1, ..most.clone() },
            Limits { output_tail_bytes: 1024, ..most.clone() },
            Limits { retained_outputs: 0, ..most.clone() },
            Limits { retained_jobs: 1_000, retained_outputs: 1_000, ..most.clone() },
            Limits { max_queue_per_repo: 1, ..most.clone() },
            Limits { max_repos: 1, ..most.clone() },
            Limits { max_branches_per_repo: 1, ..most.clone() },
        ];
        for limits in lowered {
            assert!(largest_state_bytes(&limits) < largest, "{limits:?}");
        }
    }
}
