//! Test counts for a job's result, read from the test runner's own output or from the
//! JUnit XML reports a repository asks for (`junit` in `.eventide.toml`).
//!
//! A summary is a convenience on top of the exit code, which alone decides pass or fail,
//! so every parser here is best effort: it recognises what it can and otherwise answers
//! "nothing" (`None`) or a short error, and never panics, whatever bytes a test run
//! printed. Output parsing sees only the tail the runner kept, whose first line may
//! be cut anywhere; the closing lines it needs are at the end, so the tail is enough.
//!
//! ```text
//!   job output (tail) ──> parse_output ──┐
//!   reports/*.xml ──────> parse_junit ───┴─> merge ──> Outcome.summary (replicated)
//! ```

use std::borrow::Cow;

use eventide_consensus::TestSummary;
use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

/// How many failing test names a summary keeps (the first ones): the summary is
/// replicated with the job's result, so its size is bounded.
pub const MAX_FAILING_NAMES: usize = 100;
/// Longest failing test name kept, in characters; longer ones end with `…`.
pub const MAX_NAME_CHARS: usize = 300;
/// Larger JUnit reports are refused rather than parsed.
pub const MAX_JUNIT_BYTES: usize = 16 * 1024 * 1024;

/// Reads the closing lines of Python unittest or pytest from `output`.
///
/// Several runs of the same tool (a command that runs two suites) are added up. When
/// both tools appear, the one whose last closing line comes later wins, since that is
/// the run whose result the job's exit code reflects.
pub fn parse_output(output: &str) -> Option<TestSummary> {
    let mut unittest = Tally::default();
    let mut pytest = Tally::default();
    // Set by unittest's "Ran N tests" line, until its status line ("OK", "FAILED (…)").
    let mut unittest_ran: Option<u32> = None;
    let mut previous_was_rule = false;
    let mut in_pytest_short_summary = false;

    for (index, raw_line) in output.lines().enumerate() {
        let clean = strip_ansi(raw_line);
        let line = clean.trim();
        let is_rule = line.len() >= 20 && line.bytes().all(|b| b == b'=');
        let after_rule = std::mem::replace(&mut previous_was_rule, is_rule);

        if let Some(ran) = unittest_ran {
            if line.is_empty() {
                continue;
            }
            unittest_ran = None;
            if let Some(counts) = unittest_status(line, ran) {
                unittest.close(counts, index);
                continue;
            }
        }
        if let Some(ran) = unittest_ran_line(line) {
            unittest_ran = Some(ran);
        } else if let Some(name) = unittest_failure_header(line).filter(|_| after_rule) {
            unittest.add_name(name);
        } else if let Some(rest) = line.strip_prefix("FAILED ").or(line.strip_prefix("ERROR ")) {
            // Outside the short summary section, only a real node id counts: logs are
            // full of lines starting with "ERROR ".
            let name = pytest_node_id(rest.trim_start());
            if !name.is_empty() && (in_pytest_short_summary || name.contains("::")) {
                pytest.add_name(name);
            }
        } else if line.contains("short test summary info") {
            in_pytest_short_summary = true;
        } else if let Some(counts) = pytest_summary(line) {
            pytest.close(counts, index);
            in_pytest_short_summary = false;
        }
    }

    match (unittest.total, pytest.total) {
        (Some(unittest_total), Some(pytest_total)) => {
            Some(if unittest.last_line > pytest.last_line { unittest_total } else { pytest_total })
        }
        (unittest_total, pytest_total) => unittest_total.or(pytest_total),
    }
}

/// Counts the `<testcase>` elements of a JUnit XML report (a `<testsuites>` or a single
/// `<testsuite>` root): failed with a `<failure>` or `<error>` child, skipped with a
/// `<skipped>` child, passed otherwise. Failing names are `classname.name`. The reader
/// expands no entity a DOCTYPE defines, so a report cannot pull in other files.
pub fn parse_junit(xml: &str) -> Result<TestSummary, String> {
    if xml.len() > MAX_JUNIT_BYTES {
        return Err(format!(
            "junit report too large: {} bytes, limit {MAX_JUNIT_BYTES}",
            xml.len()
        ));
    }
    let mut reader = Reader::from_str(xml);
    let mut summary = TestSummary::default();
    let mut depth = 0usize;
    let mut saw_root = false;
    let mut case: Option<OpenCase> = None;

    loop {
        let event = reader.read_event().map_err(|err| {
            format!("malformed junit xml at byte {}: {err}", reader.error_position())
        })?;
        match event {
            Event::Start(element) => {
                open_element(&element, depth, &mut saw_root, &mut case)?;
                depth += 1;
            }
            Event::Empty(element) => {
                open_element(&element, depth, &mut saw_root, &mut case)?;
                if case.as_ref().is_some_and(|open| open.depth == depth) {
                    close_case(&mut case, &mut summary);
                }
            }
            Event::End(_) => {
                depth = depth.saturating_sub(1);
                if case.as_ref().is_some_and(|open| open.depth == depth) {
                    close_case(&mut case, &mut summary);
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if depth > 0 {
        return Err("malformed junit xml: ends before its closing tags".to_owned());
    }
    if !saw_root {
        return Err("not a junit report: no <testsuites> or <testsuite> element".to_owned());
    }
    Ok(summary)
}

/// Adds `other`'s counts to `into` and appends its failing names, within the limits.
pub fn merge(into: &mut TestSummary, other: TestSummary) {
    into.passed = into.passed.saturating_add(other.passed);
    into.failed = into.failed.saturating_add(other.failed);
    into.skipped = into.skipped.saturating_add(other.skipped);
    for name in other.failing {
        push_name(&mut into.failing, &name);
    }
    // `into` may come from elsewhere with more names than the limit.
    into.failing.truncate(MAX_FAILING_NAMES);
    for name in &mut into.failing {
        if name.chars().nth(MAX_NAME_CHARS).is_some() {
            *name = bounded_name(name);
        }
    }
}

/// One tool's runs in an output: the sum of the runs that closed, and the failing names
/// seen since the last closing line (they belong to the next one).
#[derive(Default)]
struct Tally {
    total: Option<TestSummary>,
    pending_names: Vec<String>,
    last_line: usize,
}

impl Tally {
    fn add_name(&mut self, name: &str) {
        push_name(&mut self.pending_names, name);
    }

    fn close(&mut self, mut counts: TestSummary, line: usize) {
        counts.failing = std::mem::take(&mut self.pending_names);
        match &mut self.total {
            Some(total) => merge(total, counts),
            None => self.total = Some(counts),
        }
        self.last_line = line;
    }
}

/// `Ran 5 tests in 0.003s` → 5.
fn unittest_ran_line(line: &str) -> Option<u32> {
    let rest = line.strip_prefix("Ran ")?;
    let (count, rest) = rest.split_once(' ')?;
    let duration = rest.strip_prefix("tests in ").or(rest.strip_prefix("test in "))?;
    count.parse().ok().filter(|_| is_seconds(duration))
}

/// unittest's status line after "Ran N tests": `OK`, `OK (skipped=2)`,
/// `FAILED (failures=1, errors=2, skipped=1)` or, since Python 3.12, `NO TESTS RAN`.
/// Expected failures count as passed; unexpected successes fail the run, so as failed.
fn unittest_status(line: &str, ran: u32) -> Option<TestSummary> {
    if line == "NO TESTS RAN" {
        return Some(TestSummary::default());
    }
    let details = line.strip_prefix("OK").or(line.strip_prefix("FAILED"))?.trim();
    let (mut failed, mut skipped) = (0u32, 0u32);
    if !details.is_empty() {
        let inner = details.strip_prefix('(')?.strip_suffix(')')?;
        for part in inner.split(',') {
            let (key, value) = part.split_once('=')?;
            let value: u32 = value.trim().parse().ok()?;
            match key.trim() {
                "failures" | "errors" | "unexpected successes" => {
                    failed = failed.saturating_add(value)
                }
                "skipped" => skipped = skipped.saturating_add(value),
                _ => {}
            }
        }
    }
    let passed = ran.saturating_sub(failed).saturating_sub(skipped);
    Some(TestSummary { passed, failed, skipped, failing: Vec::new() })
}

/// `FAIL: test_x (pkg.module.Case.test_x)` or `ERROR: …` → the name as shown.
fn unittest_failure_header(line: &str) -> Option<&str> {
    let name = line.strip_prefix("FAIL:").or(line.strip_prefix("ERROR:"))?.trim();
    (!name.is_empty()).then_some(name)
}

/// pytest's closing line, with or without `=` padding:
/// `3 passed, 1 failed, 2 skipped in 0.12s` or `no tests ran in 0.01s`.
/// Errors count as failed, xfailed as skipped (as pytest's JUnit report has them) and
/// xpassed as passed; words from plugins are ignored but must look like `N word`.
fn pytest_summary(line: &str) -> Option<TestSummary> {
    let inner = line.trim_matches('=').trim();
    let (counts, duration) = inner.rsplit_once(" in ")?;
    let duration = duration.split(' ').next().unwrap_or_default();
    if !is_seconds(duration) {
        return None;
    }
    let mut summary = TestSummary::default();
    let mut recognised = false;
    for part in counts.split(',') {
        let part = part.trim();
        if part == "no tests ran" {
            recognised = true;
            continue;
        }
        let (number, word) = part.split_once(' ')?;
        let number: u32 = number.parse().ok()?;
        let field = match word {
            "passed" | "xpassed" => Some(&mut summary.passed),
            "failed" | "error" | "errors" => Some(&mut summary.failed),
            "skipped" | "xfailed" => Some(&mut summary.skipped),
            "deselected" | "warning" | "warnings" | "rerun" => {
                recognised = true;
                None
            }
            _ => None,
        };
        if let Some(field) = field {
            *field = field.saturating_add(number);
            recognised = true;
        }
    }
    recognised.then_some(summary)
}

/// The node id at the start of a short-summary line, `tests/test_a.py::test_b[x - y]`,
/// without the ` - message` after it; brackets hold parameters, which may contain ` - `.
fn pytest_node_id(rest: &str) -> &str {
    let mut depth = 0usize;
    for (index, c) in rest.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth = depth.saturating_sub(1),
            ' ' if depth == 0 && rest[index..].starts_with(" - ") => return rest[..index].trim(),
            _ => {}
        }
    }
    rest.trim()
}

/// `0.003s`, `12s`: a test run's duration as unittest and pytest print it.
fn is_seconds(text: &str) -> bool {
    text.strip_suffix('s').is_some_and(|number| {
        number.starts_with(|c: char| c.is_ascii_digit())
            && number.chars().all(|c| c.is_ascii_digit() || c == '.')
    })
}

/// Removes terminal colour and other escape sequences (pytest colours its summary).
fn strip_ansi(line: &str) -> Cow<'_, str> {
    if !line.contains('\x1b') {
        return Cow::Borrowed(line);
    }
    let mut clean = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\x1b' {
            clean.push(c);
            continue;
        }
        match chars.next() {
            // Control sequence: parameters, then one final character in '@'..='~'.
            Some('[') => {
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
            // Operating system command (e.g. a hyperlink): up to BEL or ESC '\'.
            Some(']') => {
                while let Some(c) = chars.next() {
                    if c == '\x07' || (c == '\x1b' && chars.next_if_eq(&'\\').is_some()) {
                        break;
                    }
                }
            }
            _ => {}
        }
    }
    Cow::Owned(clean)
}

/// A `<testcase>` whose end has not been read yet.
struct OpenCase {
    depth: usize,
    name: String,
    classname: String,
    failed: bool,
    skipped: bool,
}

fn open_element(
    element: &BytesStart<'_>,
    depth: usize,
    saw_root: &mut bool,
    case: &mut Option<OpenCase>,
) -> Result<(), String> {
    let local_name = element.local_name();
    let tag = local_name.as_ref();
    if depth == 0 {
        if tag != b"testsuites" && tag != b"testsuite" {
            let tag = String::from_utf8_lossy(tag);
            return Err(format!("not a junit report: root element is <{tag}>"));
        }
        *saw_root = true;
        return Ok(());
    }
    match case {
        None if tag == b"testcase" => {
            let (mut name, mut classname) = (String::new(), String::new());
            for attribute in element.attributes() {
                let attribute = attribute.map_err(|err| format!("malformed junit xml: {err}"))?;
                let value = || {
                    attribute
                        .unescape_value()
                        .map(Cow::into_owned)
                        .unwrap_or_else(|_| String::from_utf8_lossy(&attribute.value).into_owned())
                };
                match attribute.key.local_name().as_ref() {
                    b"name" => name = value(),
                    b"classname" => classname = value(),
                    _ => {}
                }
            }
            *case = Some(OpenCase { depth, name, classname, failed: false, skipped: false });
        }
        Some(open) if depth == open.depth + 1 => match tag {
            b"failure" | b"error" => open.failed = true,
            b"skipped" => open.skipped = true,
            _ => {}
        },
        _ => {}
    }
    Ok(())
}

fn close_case(case: &mut Option<OpenCase>, summary: &mut TestSummary) {
    let Some(open) = case.take() else { return };
    if open.failed {
        summary.failed = summary.failed.saturating_add(1);
        if summary.failing.len() < MAX_FAILING_NAMES {
            let name = match (open.classname.is_empty(), open.name.is_empty()) {
                (false, false) => format!("{}.{}", open.classname, open.name),
                (true, false) => open.name,
                (false, true) => open.classname,
                (true, true) => "(unnamed test)".to_owned(),
            };
            push_name(&mut summary.failing, &name);
        }
    } else if open.skipped {
        summary.skipped = summary.skipped.saturating_add(1);
    } else {
        summary.passed = summary.passed.saturating_add(1);
    }
}

/// Appends `name`, shortened, unless the list is full.
fn push_name(names: &mut Vec<String>, name: &str) {
    if names.len() < MAX_FAILING_NAMES {
        names.push(bounded_name(name));
    }
}

fn bounded_name(name: &str) -> String {
    match name.char_indices().nth(MAX_NAME_CHARS - 1) {
        // More than MAX_NAME_CHARS characters: keep room for the ellipsis.
        Some((cut, _)) if name[cut..].chars().nth(1).is_some() => format!("{}…", &name[..cut]),
        _ => name.to_owned(),
    }
}

#[cfg(test)]
#[path = "summary_junit_test.rs"]
mod junit_tests;
#[cfg(test)]
#[path = "summary_test.rs"]
mod tests;
