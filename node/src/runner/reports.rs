//! A job's test counts: from the tail of its output and from the JUnit reports its
//! configuration names. Reports are files the test run itself wrote, so they are read
//! like every file of the workspace ([`workspace`]): a report that is a link, a FIFO, a
//! device or too large is skipped, and the job keeps its verdict with a message that
//! names the file. Blocks on the file system: run it on the blocking pool.
//!
//! A report's path and content are the job's to choose, so the job's secret values are
//! masked in what is kept or logged of them (failing test names, skipped paths).

use std::path::{Path, PathBuf};

use eventide_consensus::{JobId, TestSummary};
use tracing::warn;

use super::mask::Mask;
use super::workspace;
use crate::summary;

/// Reports read per job, over all its patterns.
pub const MAX_REPORTS: usize = 64;
/// Bytes of reports read per job; the reports after that are skipped.
pub const MAX_TOTAL_BYTES: u64 = 64 * 1024 * 1024;
/// Skipped reports the job's message names one by one; the rest are counted.
const NAMED_IN_MESSAGE: usize = 5;

/// The counts found, and one line per report that was not used.
#[derive(Debug, Default)]
pub struct Reports {
    pub summary: Option<TestSummary>,
    /// "reports/a.xml is a fifo, not a regular file"; also logged.
    pub skipped: Vec<String>,
}

/// Reads the counts of the output `tail` (masked already) and of the reports matching
/// `patterns` in `workspace`, with `mask`'s values masked.
pub fn read(job: JobId, tail: &str, patterns: &[String], workspace: &Path, mask: &Mask) -> Reports {
    let mut reports =
        read_within(job, tail, patterns, workspace, mask, MAX_REPORTS, MAX_TOTAL_BYTES);
    if let Some(summary) = reports.summary.as_mut() {
        for name in &mut summary.failing {
            *name = mask.text(name);
        }
    }
    reports
}

fn read_within(
    job: JobId,
    tail: &str,
    patterns: &[String],
    workspace: &Path,
    mask: &Mask,
    max_reports: usize,
    max_total_bytes: u64,
) -> Reports {
    let mut reports = Reports { summary: summary::parse_output(tail), skipped: Vec::new() };
    let skip = |reports: &mut Reports, path: &Path, reason: String| {
        let path = mask.text(&path.display().to_string());
        warn!(job_id = %job, path = %path, reason = %reason, "junit report skipped");
        reports.skipped.push(format!("{path} {reason}"));
    };
    let mut files: Vec<PathBuf> = Vec::new();
    for pattern in patterns {
        match workspace::find(workspace, pattern) {
            Ok(found) => {
                for (path, refusal) in found.refused {
                    skip(&mut reports, &path, refusal.to_string());
                }
                if found.truncated {
                    skip(
                        &mut reports,
                        Path::new(pattern),
                        format!(
                            "matched in part: the search stopped after {} entries",
                            workspace::MAX_SEARCH_ENTRIES
                        ),
                    );
                }
                files.extend(found.files);
            }
            Err(refusal) => skip(&mut reports, Path::new(pattern), refusal.to_string()),
        }
    }
    files.sort();
    files.dedup();
    if files.len() > max_reports {
        let over = files.split_off(max_reports);
        skip(
            &mut reports,
            &over[0],
            format!("and {} more reports not read: at most {max_reports} per job", over.len() - 1),
        );
    }

    let mut budget = max_total_bytes;
    for path in files {
        let limit = budget.min(summary::MAX_JUNIT_BYTES as u64);
        let bytes = match workspace::read(workspace, &path, limit) {
            Ok(bytes) => bytes,
            Err(workspace::Refusal::TooLarge { size, .. })
                if limit < summary::MAX_JUNIT_BYTES as u64 =>
            {
                skip(
                    &mut reports,
                    &path,
                    format!("is {size} bytes, past the {max_total_bytes} bytes read per job"),
                );
                continue;
            }
            Err(refusal) => {
                skip(&mut reports, &path, refusal.to_string());
                continue;
            }
        };
        budget -= bytes.len() as u64;
        let parsed =
            std::str::from_utf8(&bytes).map_err(|_| "is not UTF-8".to_owned()).and_then(|xml| {
                summary::parse_junit(xml).map_err(|error| format!("is not used: {error}"))
            });
        match parsed {
            Ok(report) => {
                summary::merge(reports.summary.get_or_insert_with(TestSummary::default), report)
            }
            Err(reason) => skip(&mut reports, &path, reason),
        }
    }
    reports
}

/// The line a job's message gets for its skipped reports, naming the first few.
pub fn skipped_message(skipped: &[String]) -> Option<String> {
    let (first, rest) = skipped.split_at(skipped.len().min(NAMED_IN_MESSAGE));
    if first.is_empty() {
        return None;
    }
    let mut message = format!("junit reports skipped: {}", first.join("; "));
    if !rest.is_empty() {
        message.push_str(&format!("; and {} more (see the log)", rest.len()));
    }
    Some(message)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    const JOB: JobId = JobId(7);

    fn report(cases: usize) -> String {
        let cases: String = (0..cases).map(|n| format!("<testcase name=\"t{n}\"/>")).collect();
        format!("<testsuite>{cases}</testsuite>")
    }

    #[test]
    fn reports_are_counted_and_hostile_ones_skipped_by_name() {
        let dir = tempfile::tempdir().expect("temp dir");
        let reports = dir.path().join("reports");
        std::fs::create_dir(&reports).expect("mkdir");
        std::fs::write(reports.join("a.xml"), report(2)).expect("write");
        std::fs::write(reports.join("broken.xml"), "<testsuite>").expect("write");
        symlink("/dev/zero", reports.join("zero.xml")).expect("link");
        symlink(dir.path().join("reports/a.xml"), reports.join("twice.xml")).expect("link");
        let patterns = vec!["reports/*.xml".to_owned(), "reports/a.xml".to_owned()];
        let found = read(JOB, "", &patterns, dir.path(), &Mask::default());
        let summary = found.summary.expect("counts");
        assert_eq!((summary.passed, summary.failed), (2, 0), "a.xml once, though matched twice");
        assert_eq!(found.skipped.len(), 3, "{:?}", found.skipped);
        assert!(found.skipped[0].starts_with("reports/twice.xml is a symbolic link"));
        assert!(found.skipped[1].starts_with("reports/zero.xml is a symbolic link"));
        assert!(found.skipped[2].starts_with("reports/broken.xml is not used: malformed"));
    }

    #[test]
    fn the_reports_of_a_job_are_bounded() {
        let dir = tempfile::tempdir().expect("temp dir");
        for index in 0..MAX_REPORTS + 3 {
            std::fs::write(dir.path().join(format!("{index:03}.xml")), report(1)).expect("write");
        }
        let found = read(JOB, "", &["*.xml".to_owned()], dir.path(), &Mask::default());
        assert_eq!(found.summary.expect("counts").passed, MAX_REPORTS as u32);
        assert_eq!(found.skipped, ["064.xml and 2 more reports not read: at most 64 per job"]);
    }

    #[test]
    fn the_bytes_read_per_job_are_bounded() {
        let dir = tempfile::tempdir().expect("temp dir");
        let one = report(1);
        for name in ["a.xml", "b.xml", "c.xml"] {
            std::fs::write(dir.path().join(name), &one).expect("write");
        }
        let budget = 2 * one.len() as u64 + 10;
        let none = Mask::default();
        let found = read_within(JOB, "", &["*.xml".to_owned()], dir.path(), &none, 64, budget);
        assert_eq!(found.summary.expect("counts").passed, 2);
        let expected =
            format!("c.xml is {} bytes, past the {budget} bytes read per job", one.len());
        assert_eq!(found.skipped, [expected]);
    }

    #[test]
    fn the_message_names_the_first_skipped_reports() {
        assert_eq!(skipped_message(&[]), None);
        assert_eq!(
            skipped_message(&["a is a fifo, not a regular file".to_owned()]).as_deref(),
            Some("junit reports skipped: a is a fifo, not a regular file")
        );
        let many: Vec<String> = (0..8).map(|n| format!("r{n}.xml is a fifo")).collect();
        let message = skipped_message(&many).expect("a message");
        assert!(message.contains("r4.xml") && !message.contains("r5.xml"), "{message}");
        assert!(message.ends_with("; and 3 more (see the log)"), "{message}");
    }

    #[test]
    fn values_given_to_the_job_are_masked_in_failing_names_and_skipped_paths() {
        let dir = tempfile::tempdir().expect("temp dir");
        let failing = "<testsuite><testcase name=\"t-s3cret\"><failure/></testcase></testsuite>";
        std::fs::write(dir.path().join("a.xml"), failing).expect("write");
        std::fs::write(dir.path().join("s3cret.xml"), "not xml").expect("write");
        let mask = Mask::new([&b"s3cret"[..]]);
        let found = read(JOB, "", &["*.xml".to_owned()], dir.path(), &mask);
        let summary = found.summary.expect("counts");
        assert_eq!(summary.failing, ["t-***"]);
        assert_eq!(found.skipped.len(), 1, "{:?}", found.skipped);
        assert!(found.skipped[0].starts_with("***.xml is not used"), "{:?}", found.skipped);
    }
}
