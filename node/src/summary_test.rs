//! Output parsing: unittest and pytest closing lines, tails and mangled input.

use super::*;

pub(super) fn summary(passed: u32, failed: u32, skipped: u32, failing: &[&str]) -> TestSummary {
    TestSummary {
        passed,
        failed,
        skipped,
        failing: failing.iter().map(|s| (*s).to_owned()).collect(),
    }
}

/// `python3 -m unittest discover -s tests -v` on Python 3.11.
const UNITTEST_VERBOSE: &str = "\
test_add (test_calc.TestCalc.test_add) ... ok
test_div (test_calc.TestCalc.test_div) ... FAIL
test_err (test_calc.TestCalc.test_err) ... ERROR
test_skip (test_calc.TestCalc.test_skip) ... skipped 'not ready'
test_xf (test_calc.TestCalc.test_xf) ... expected failure

======================================================================
ERROR: test_err (test_calc.TestCalc.test_err)
----------------------------------------------------------------------
Traceback (most recent call last):
  File \"/tmp/sample/tests/test_calc.py\", line 9, in test_err
    raise RuntimeError(\"boom\")
RuntimeError: boom

======================================================================
FAIL: test_div (test_calc.TestCalc.test_div)
----------------------------------------------------------------------
Traceback (most recent call last):
  File \"/tmp/sample/tests/test_calc.py\", line 7, in test_div
    self.assertEqual(1 / 2, 0)
AssertionError: 0.5 != 0

----------------------------------------------------------------------
Ran 5 tests in 0.001s

FAILED (failures=1, errors=1, skipped=1, expected failures=1)
";

/// A module that fails to import, as unittest discovery reports it (Python 3.11).
const UNITTEST_IMPORT_ERROR: &str = "\
test_calc (unittest.loader._FailedTest.test_calc) ... ERROR

======================================================================
ERROR: test_calc (unittest.loader._FailedTest.test_calc)
----------------------------------------------------------------------
ImportError: Failed to import test module: test_calc
Traceback (most recent call last):
  File \"/usr/lib/python3.11/unittest/loader.py\", line 419, in _find_test_path
    module = self._get_module_from_name(name)
ModuleNotFoundError: No module named 'requests'


----------------------------------------------------------------------
Ran 1 test in 0.000s

FAILED (errors=1)
";

/// `pytest --color=yes` (pytest 8/9 write the same closing lines).
const PYTEST_COLOUR: &str = concat!(
    "tests/test_py.py \x1b[32m.\x1b[0m\x1b[31mF\x1b[0m\x1b[31mF\x1b[0m\x1b[32m.\x1b[0m\x1b[31mE\x1b[0m\x1b[31m      [100%]\x1b[0m\n",
    "-- Docs: https://docs.pytest.org/en/stable/how-to/capture-warnings.html\n",
    "\x1b[36m\x1b[1m=========================== short test summary info ============================\x1b[0m\n",
    "\x1b[31mFAILED\x1b[0m tests/test_calc.py::\x1b[1mTestCalc::test_div\x1b[0m - AssertionError: 0.5 != 0\n",
    "\x1b[31mFAILED\x1b[0m tests/test_calc.py::\x1b[1mTestCalc::test_err\x1b[0m - RuntimeError: boom\n",
    "\x1b[31mFAILED\x1b[0m tests/test_py.py::\x1b[1mtest_bad\x1b[0m - assert 1 == 2\n",
    "\x1b[31mFAILED\x1b[0m tests/test_py.py::\x1b[1mtest_param[a - b]\x1b[0m - AssertionError: assert 'a - b' == 'c'\n",
    "\x1b[31mERROR\x1b[0m tests/test_py.py::\x1b[1mtest_fixture\x1b[0m - ValueError: fixture - broke\n",
    "\x1b[31m==== \x1b[31m\x1b[1m4 failed\x1b[0m, \x1b[32m4 passed\x1b[0m, \x1b[33m2 skipped\x1b[0m, \x1b[33m2 xfailed\x1b[0m, \x1b[33m1 warning\x1b[0m, \x1b[31m\x1b[1m1 error\x1b[0m\x1b[31m in 0.20s\x1b[0m\x1b[31m =====\x1b[0m\n",
);

/// `pytest -rA` without colour: passes and skips are listed too, and only failures
/// and errors are names of failing tests.
const PYTEST_RA: &str = "\
==================================== PASSES ====================================
=========================== short test summary info ============================
PASSED tests/test_calc.py::TestCalc::test_add
PASSED tests/test_py.py::test_ok
SKIPPED [1] tests/test_calc.py:10: not ready
XFAIL tests/test_py.py::test_xfail
ERROR tests/test_py.py::test_fixture - ValueError: fixture - broke
FAILED tests/test_calc.py::TestCalc::test_div - AssertionError: 0.5 != 0
FAILED tests/test_py.py::test_param[a - b] - AssertionError: assert 'a - b' =...
==== 4 failed, 4 passed, 2 skipped, 2 xfailed, 1 warning, 1 error in 0.10s =====
";

/// A collection error stops pytest before any test runs.
const PYTEST_COLLECTION_ERROR: &str = "\
E   ModuleNotFoundError: No module named 'nope'
=========================== short test summary info ============================
ERROR tests/test_broken.py
!!!!!!!!!!!!!!!!!!!! Interrupted: 1 error during collection !!!!!!!!!!!!!!!!!!!!
=============================== 1 error in 0.21s ===============================
";

/// Test names are not always ASCII.
const UNITTEST_UNICODE: &str = "\
тест_сумма (проверки.Тесты.тест_сумма) ... FAIL

======================================================================
FAIL: тест_сумма (проверки.Тесты.тест_сумма)
----------------------------------------------------------------------
AssertionError: 'naïve 🎉' != 'naive'

----------------------------------------------------------------------
Ran 3 tests in 0.010s

FAILED (failures=1)
";

#[test]
fn unittest_outputs_parse() {
    let cases: &[(&str, Option<TestSummary>)] = &[
        (
            UNITTEST_VERBOSE,
            Some(summary(
                2,
                2,
                1,
                &[
                    "test_err (test_calc.TestCalc.test_err)",
                    "test_div (test_calc.TestCalc.test_div)",
                ],
            )),
        ),
        (
            UNITTEST_IMPORT_ERROR,
            Some(summary(0, 1, 0, &["test_calc (unittest.loader._FailedTest.test_calc)"])),
        ),
        (UNITTEST_UNICODE, Some(summary(2, 1, 0, &["тест_сумма (проверки.Тесты.тест_сумма)"]))),
        ("......\n------\nRan 6 tests in 0.004s\n\nOK\n", Some(summary(6, 0, 0, &[]))),
        ("Ran 5 tests in 0.003s\n\nOK (skipped=2)\n", Some(summary(3, 0, 2, &[]))),
        ("Ran 1 test in 0.000s\r\n\r\nOK\r\n", Some(summary(1, 0, 0, &[]))),
        ("Ran 0 tests in 0.000s\n\nOK\n", Some(summary(0, 0, 0, &[]))),
        ("Ran 0 tests in 0.000s\n\nNO TESTS RAN\n", Some(summary(0, 0, 0, &[]))),
        (
            "Ran 9 tests in 1.250s\n\nFAILED (failures=1, errors=2, skipped=1)\n",
            Some(summary(5, 3, 1, &[])),
        ),
        ("Ran 2 tests in 0.1s\n\nFAILED (unexpected successes=1)\n", Some(summary(1, 1, 0, &[]))),
        // Subtest failures are counted one by one and may outnumber the tests.
        ("Ran 1 test in 0.1s\n\nFAILED (failures=3)\n", Some(summary(0, 3, 0, &[]))),
        // A run killed before its status line has no summary.
        ("test_a (m.C.test_a) ... ok\nRan 1 test in 0.1s\n", None),
        ("Ran 1 test in 0.1s\n\nsomething else\n", None),
        ("Ran many tests in 0.1s\n\nOK\n", None),
        // A "FAIL:" line counts only under unittest's rule of `=`.
        ("FAIL: not a header\nRan 1 test in 0.1s\n\nOK\n", Some(summary(1, 0, 0, &[]))),
    ];
    for (output, expected) in cases {
        assert_eq!(parse_output(output), *expected, "output:\n{output}");
    }
}

#[test]
fn pytest_outputs_parse() {
    let colour_names = [
        "tests/test_calc.py::TestCalc::test_div",
        "tests/test_calc.py::TestCalc::test_err",
        "tests/test_py.py::test_bad",
        "tests/test_py.py::test_param[a - b]",
        "tests/test_py.py::test_fixture",
    ];
    let ra_names = [
        "tests/test_py.py::test_fixture",
        "tests/test_calc.py::TestCalc::test_div",
        "tests/test_py.py::test_param[a - b]",
    ];
    let cases: &[(&str, Option<TestSummary>)] = &[
        (PYTEST_COLOUR, Some(summary(4, 5, 4, &colour_names))),
        (PYTEST_RA, Some(summary(4, 5, 4, &ra_names))),
        (PYTEST_COLLECTION_ERROR, Some(summary(0, 1, 0, &["tests/test_broken.py"]))),
        (
            "========== 3 passed, 1 failed, 2 skipped in 0.12s ==========\n",
            Some(summary(3, 1, 2, &[])),
        ),
        (
            "1 failed, 3 passed, 1 error, 1 xfailed, 1 warning in 1.2s\n",
            Some(summary(3, 2, 1, &[])),
        ),
        (
            "============================ no tests ran in 0.01s =============================\n",
            Some(summary(0, 0, 0, &[])),
        ),
        ("no tests ran, 2 warnings in 0.01s\n", Some(summary(0, 0, 0, &[]))),
        (
            "================== 1 failed, 2 passed, 10 deselected in 0.07s ==================\n",
            Some(summary(2, 1, 0, &[])),
        ),
        ("=== 2 passed, 1 xpassed in 65.43s (0:01:05) ===\n", Some(summary(3, 0, 0, &[]))),
        // A plugin's word is ignored when the line is otherwise pytest's.
        ("=== 2 passed, 1 rerun, 3 flaked in 1.00s ===\n", Some(summary(2, 0, 0, &[]))),
        (
            "FAILED tests/test_a.py::test_b - AssertionError: x\n1 failed, 1 passed in 0.07s\n",
            Some(summary(1, 1, 0, &["tests/test_a.py::test_b"])),
        ),
        // Not pytest's closing line.
        ("Downloaded 3 packages in 2s\n", None),
        ("3 passed in total\n", None),
        ("=== test session starts ===\n", None),
        ("3 frobnicated in 0.1s\n", None),
    ];
    for (output, expected) in cases {
        assert_eq!(parse_output(output), *expected, "output:\n{output}");
    }
}

#[test]
fn log_lines_are_not_failing_tests() {
    let output = "\
ERROR root: connection refused
FAILED to connect to the database
=== short test summary info ===
FAILED tests/test_db.py::test_connect - OSError
=== 1 failed in 0.50s ===
";
    assert_eq!(parse_output(output), Some(summary(0, 1, 0, &["tests/test_db.py::test_connect"])));
}

#[test]
fn the_last_tool_to_close_wins_and_runs_of_one_tool_add_up() {
    let unittest = "Ran 4 tests in 0.1s\n\nOK (skipped=1)\n";
    let pytest = "=== 1 failed, 2 passed in 0.50s ===\n";
    let cases: &[(String, TestSummary)] = &[
        (format!("{unittest}{pytest}"), summary(2, 1, 0, &[])),
        (format!("{pytest}{unittest}"), summary(3, 0, 1, &[])),
        (format!("{unittest}{unittest}"), summary(6, 0, 2, &[])),
        (
            format!("{UNITTEST_IMPORT_ERROR}{UNITTEST_UNICODE}"),
            summary(
                2,
                2,
                0,
                &[
                    "test_calc (unittest.loader._FailedTest.test_calc)",
                    "тест_сумма (проверки.Тесты.тест_сумма)",
                ],
            ),
        ),
        (format!("{pytest}{pytest}{unittest}{pytest}"), summary(6, 3, 0, &[])),
    ];
    for (output, expected) in cases {
        assert_eq!(parse_output(output).as_ref(), Some(expected), "output:\n{output}");
    }
}

#[test]
fn unrecognised_output_has_no_summary() {
    for output in ["", "\n\n", "hello\nworld\n", "make: *** [test] Error 1\n", "OK\n", "FAILED\n"] {
        assert_eq!(parse_output(output), None, "output {output:?}");
    }
}

#[test]
fn failing_names_are_capped_and_shortened() {
    let long = "x".repeat(MAX_NAME_CHARS + 50);
    let mut output = String::new();
    for i in 0..150 {
        output.push_str(&format!("{}\nFAIL: test_{i} (m.C.test_{i})\n", "=".repeat(70)));
    }
    output.push_str(&format!("{}\nERROR: {long}\n", "=".repeat(70)));
    output.push_str("Ran 200 tests in 1.0s\n\nFAILED (failures=150, errors=1)\n");
    let parsed = parse_output(&output).expect("summary");
    assert_eq!((parsed.passed, parsed.failed, parsed.skipped), (49, 151, 0));
    assert_eq!(parsed.failing.len(), MAX_FAILING_NAMES);
    assert_eq!(parsed.failing[99], "test_99 (m.C.test_99)");

    let output =
        format!("{}\nFAIL: {long}\nRan 1 test in 0.1s\n\nFAILED (failures=1)\n", "=".repeat(70));
    let name = &parse_output(&output).expect("summary").failing[0];
    assert_eq!(name.chars().count(), MAX_NAME_CHARS);
    assert!(name.ends_with('…'));
    let exact = "é".repeat(MAX_NAME_CHARS);
    assert_eq!(bounded_name(&exact), exact);
}

#[test]
fn any_tail_of_an_output_keeps_the_counts() {
    // The closing lines start at the marker; any cut before it keeps them whole.
    for (output, marker, expected) in [
        (UNITTEST_VERBOSE, "Ran 5", summary(2, 2, 1, &[])),
        (UNITTEST_UNICODE, "Ran 3", summary(2, 1, 0, &[])),
        (PYTEST_COLOUR, "\x1b[31m==== ", summary(4, 5, 4, &[])),
        (PYTEST_RA, "==== 4 failed", summary(4, 5, 4, &[])),
    ] {
        let closing_start = output.rfind(marker).expect("marker in sample");
        for cut in (0..=closing_start).filter(|&cut| output.is_char_boundary(cut)) {
            let parsed = parse_output(&output[cut..]).expect("closing lines are kept");
            assert_eq!(
                (parsed.passed, parsed.failed, parsed.skipped),
                (expected.passed, expected.failed, expected.skipped),
                "cut at {cut}"
            );
        }
    }
}

/// Tiny deterministic generator, so that the fuzz-like tests need no dependency.
pub(super) struct XorShift(pub(super) u64);

impl XorShift {
    pub(super) fn next(&mut self) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 16) as usize
    }
}

#[test]
fn no_slice_or_mangling_of_an_output_panics() {
    let samples = [
        UNITTEST_VERBOSE,
        UNITTEST_IMPORT_ERROR,
        UNITTEST_UNICODE,
        PYTEST_COLOUR,
        PYTEST_RA,
        PYTEST_COLLECTION_ERROR,
    ];
    for sample in samples {
        for cut in (0..=sample.len()).filter(|&cut| sample.is_char_boundary(cut)) {
            parse_output(&sample[cut..]);
            parse_output(&sample[..cut]);
        }
        // Cutting bytes anywhere, as a tail read from a file would, then decoding lossily.
        for cut in 0..=sample.len() {
            parse_output(&String::from_utf8_lossy(&sample.as_bytes()[cut..]));
        }
    }
    let rule = "=".repeat(70);
    let fragments = [
        "Ran ",
        "1",
        "99999999999",
        " tests in ",
        "0.1s",
        "test in ",
        "\n",
        "\r",
        " ",
        "OK",
        " (",
        ")",
        "FAILED",
        "failures=",
        "skipped=",
        "=",
        ",",
        "ERROR",
        "FAIL:",
        " - ",
        "[",
        "]",
        "::",
        "\x1b",
        "\x1b[",
        "\x1b]",
        "31m",
        "\x07",
        "\\",
        " in ",
        "passed",
        "no tests ran",
        "short test summary info",
        "é",
        "🎉",
        "\u{0}",
        &rule,
        "NO TESTS RAN",
    ];
    let mut random = XorShift(0x5eed_1234_abcd_ef01);
    for _ in 0..20_000 {
        let length = random.next() % 40;
        let text: String =
            (0..length).map(|_| fragments[random.next() % fragments.len()]).collect();
        parse_output(&text);
    }
}
