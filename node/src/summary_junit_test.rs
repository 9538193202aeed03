//! JUnit XML reports (pytest and Maven Surefire) and merging.

use super::tests::{summary, XorShift};
use super::*;

/// `pytest --junitxml=reports/junit.xml` (pytest 8 and 9 write the same; line breaks added).
const PYTEST_JUNIT: &str = r#"<?xml version="1.0" encoding="utf-8"?><testsuites name="pytest tests"><testsuite name="pytest" errors="1" failures="2" skipped="2" tests="8" time="0.114" timestamp="2026-01-28T05:56:41.583084+00:00" hostname="ci-1">
<testcase classname="tests.test_calc.TestCalc" name="test_add" time="0.001" />
<testcase classname="tests.test_calc.TestCalc" name="test_div" time="0.001"><failure message="AssertionError: 0.5 != 0">self = &lt;test_calc.TestCalc testMethod=test_div&gt;

&gt;       self.assertEqual(1 / 2, 0)
E       AssertionError: 0.5 != 0

tests/test_calc.py:8: AssertionError</failure></testcase>
<testcase classname="tests.test_calc.TestCalc" name="test_skip" time="0.000"><skipped type="pytest.skip" message="not ready">/tmp/sample/tests/test_calc.py:11: not ready</skipped></testcase>
<testcase classname="tests.test_calc.TestCalc" name="test_xf" time="0.001"><skipped type="pytest.xfail" message="" /></testcase>
<testcase classname="tests.test_py" name="test_ok" time="0.000" />
<testcase classname="tests.test_py" name="test_param[a - b]" time="0.002"><failure message="AssertionError: assert 'a - b' == 'c'&#10;  #x1B[0m#x1B[91m- c">x = 'a - b'
E   AssertionError: assert 'a - b' == 'c'</failure></testcase>
<testcase classname="tests.test_py" name="test_param[c]" time="0.000" />
<testcase classname="tests.test_py" name="test_fixture" time="0.000"><error message="failed on setup with &quot;ValueError: fixture - broke&quot;">@pytest.fixture
    def broken():
&gt;       raise ValueError("fixture - broke")</error></testcase>
</testsuite></testsuites>"#;

/// Maven Surefire's `target/surefire-reports/TEST-*.xml`, with a flaky test that passed
/// on rerun and one that failed every rerun.
const SUREFIRE_JUNIT: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<testsuite xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:noNamespaceSchemaLocation="https://maven.apache.org/surefire/maven-surefire-plugin/xsd/surefire-test-report-3.0.xsd" version="3.0" name="com.example.CalculatorTest" time="0.052" tests="6" errors="1" skipped="1" failures="2">
  <properties>
    <property name="java.version" value="17.0.10"/>
    <property name="failure" value="not a test"/>
  </properties>
  <testcase name="addsNumbers" classname="com.example.CalculatorTest" time="0.004"/>
  <testcase name="dividesByZero" classname="com.example.CalculatorTest" time="0.002">
    <error message="/ by zero" type="java.lang.ArithmeticException"><![CDATA[java.lang.ArithmeticException: / by zero
	at com.example.CalculatorTest.dividesByZero(CalculatorTest.java:21)
]]></error>
  </testcase>
  <testcase name="roundsHalfUp" classname="com.example.CalculatorTest" time="0.001">
    <failure message="expected: &lt;3&gt; but was: &lt;2&gt;" type="org.opentest4j.AssertionFailedError"><![CDATA[org.opentest4j.AssertionFailedError: expected: <3> but was: <2>]]></failure>
    <system-out><![CDATA[rounding 2.5
]]></system-out>
  </testcase>
  <testcase name="parsesLocale" classname="com.example.CalculatorTest" time="0">
    <skipped message="not on CI"/>
  </testcase>
  <testcase name="usesNetwork" classname="com.example.CalculatorTest" time="0.010">
    <flakyFailure message="timeout" type="java.net.SocketTimeoutException">
      <stackTrace><![CDATA[java.net.SocketTimeoutException: timeout]]></stackTrace>
    </flakyFailure>
  </testcase>
  <testcase name="alwaysBroken" classname="com.example.CalculatorTest" time="0.003">
    <failure message="boom" type="java.lang.IllegalStateException"><![CDATA[boom]]></failure>
    <rerunFailure message="boom" type="java.lang.IllegalStateException">
      <stackTrace><![CDATA[boom]]></stackTrace>
    </rerunFailure>
  </testcase>
</testsuite>
"#;

#[test]
fn junit_reports_parse() {
    let cases: &[(&str, TestSummary)] = &[
        (
            PYTEST_JUNIT,
            summary(
                3,
                3,
                2,
                &[
                    "tests.test_calc.TestCalc.test_div",
                    "tests.test_py.test_param[a - b]",
                    "tests.test_py.test_fixture",
                ],
            ),
        ),
        (
            SUREFIRE_JUNIT,
            summary(
                2,
                3,
                1,
                &[
                    "com.example.CalculatorTest.dividesByZero",
                    "com.example.CalculatorTest.roundsHalfUp",
                    "com.example.CalculatorTest.alwaysBroken",
                ],
            ),
        ),
        ("<testsuites/>", summary(0, 0, 0, &[])),
        ("<testsuite name=\"empty\" tests=\"0\"></testsuite>", summary(0, 0, 0, &[])),
        (
            "<testsuite><testcase name=\"lonely\"><failure/></testcase>\
             <testcase classname=\"Only.Class\"><error/></testcase>\
             <testcase><failure/><skipped/></testcase></testsuite>",
            summary(0, 3, 0, &["lonely", "Only.Class", "(unnamed test)"]),
        ),
        (
            "<testsuites><testsuite><testsuite name=\"nested\">\
             <testcase classname=\"a&amp;b\" name=\"t&lt;1&gt;\"><failure/></testcase>\
             </testsuite></testsuite></testsuites>",
            summary(0, 1, 0, &["a&b.t<1>"]),
        ),
        // A <failure> deeper than a direct child is output, not a verdict.
        (
            "<testsuite><testcase name=\"t\"><system-out><failure/></system-out></testcase></testsuite>",
            summary(1, 0, 0, &[]),
        ),
    ];
    for (xml, expected) in cases {
        assert_eq!(parse_junit(xml).as_ref(), Ok(expected), "xml:\n{xml}");
    }
}

#[test]
fn broken_junit_reports_are_refused() {
    let cases: &[(&str, &str)] = &[
        ("", "not a junit report: no <testsuites> or <testsuite> element"),
        ("<?xml version=\"1.0\"?>\n", "not a junit report: no <testsuites> or <testsuite> element"),
        ("<html><body/></html>", "not a junit report: root element is <html>"),
        ("<testsuite><testcase name=\"a\">", "malformed junit xml: ends before its closing tags"),
        ("<testsuite></testcase>", "malformed junit xml at byte"),
        ("<testsuite><testcase name=\"a\" name=\"b\"/></testsuite>", "malformed junit xml"),
        ("<testsuite><testcase name=\"a/></testsuite>", "malformed junit xml"),
    ];
    for (xml, expected) in cases {
        let err = parse_junit(xml).expect_err(xml);
        assert!(err.starts_with(expected), "{err:?} should start with {expected:?}");
        assert!(!err.contains('\n') && err.len() < 200, "short: {err:?}");
    }
    let huge = format!("<testsuite>{}</testsuite>", " ".repeat(MAX_JUNIT_BYTES));
    assert!(parse_junit(&huge).expect_err("too big").starts_with("junit report too large"));
}

#[test]
fn junit_failing_names_are_capped() {
    let mut xml = String::from("<testsuite>");
    for i in 0..150 {
        xml.push_str(&format!("<testcase classname=\"C\" name=\"t{i}\"><failure/></testcase>"));
    }
    xml.push_str(&format!("<testcase name=\"{}\"><error/></testcase>", "n".repeat(1000)));
    xml.push_str("</testsuite>");
    let parsed = parse_junit(&xml).expect("valid");
    assert_eq!(parsed.failed, 151);
    assert_eq!(parsed.failing.len(), MAX_FAILING_NAMES);
    assert_eq!(parsed.failing.last().map(String::as_str), Some("C.t99"));

    let xml = format!(
        "<testsuite><testcase name=\"{}\"><error/></testcase></testsuite>",
        "n".repeat(1000)
    );
    assert_eq!(parse_junit(&xml).expect("valid").failing[0].chars().count(), MAX_NAME_CHARS);
}

#[test]
fn no_slice_of_a_junit_report_panics() {
    for xml in [PYTEST_JUNIT, SUREFIRE_JUNIT] {
        for cut in (0..=xml.len()).filter(|&cut| xml.is_char_boundary(cut)) {
            let _ = parse_junit(&xml[..cut]);
            let _ = parse_junit(&xml[cut..]);
        }
    }
    let fragments = [
        "<",
        ">",
        "/",
        "</",
        "/>",
        "testsuite",
        "testsuites",
        "testcase",
        "failure",
        "skipped",
        "error",
        " name=\"",
        " classname=\"",
        "\"",
        "&amp;",
        "&bogus;",
        "&#0;",
        "<![CDATA[",
        "]]>",
        "<!--",
        "-->",
        "<?xml?>",
        "<!DOCTYPE x>",
        "é",
        "🎉",
        " ",
        "\n",
        "x:",
    ];
    let mut random = XorShift(0x0123_4567_89ab_cdef);
    for _ in 0..20_000 {
        let length = random.next() % 30;
        let text: String =
            (0..length).map(|_| fragments[random.next() % fragments.len()]).collect();
        let _ = parse_junit(&text);
    }
}

#[test]
fn merge_adds_counts_and_appends_names_within_limits() {
    let mut total = summary(3, 1, 2, &["a"]);
    merge(&mut total, summary(4, 2, 0, &["b", "c"]));
    assert_eq!(total, summary(7, 3, 2, &["a", "b", "c"]));

    let mut total = summary(u32::MAX, 0, 0, &[]);
    merge(&mut total, summary(1, 0, 0, &[]));
    assert_eq!(total.passed, u32::MAX);

    let many: Vec<String> = (0..80).map(|i| format!("t{i}")).collect();
    let mut total = TestSummary { failing: many.clone(), ..TestSummary::default() };
    let mut other = TestSummary { failing: many, ..TestSummary::default() };
    other.failing.insert(0, "y".repeat(MAX_NAME_CHARS * 2));
    merge(&mut total, other);
    assert_eq!(total.failing.len(), MAX_FAILING_NAMES);
    assert_eq!(total.failing[79], "t79");
    assert_eq!(total.failing[80].chars().count(), MAX_NAME_CHARS);
    assert_eq!(total.failing[81], "t0");

    // A list that already breaks the limits is brought back within them.
    let mut oversized = TestSummary {
        failing: (0..150).map(|_| "z".repeat(400)).collect(),
        ..TestSummary::default()
    };
    merge(&mut oversized, TestSummary::default());
    assert_eq!(oversized.failing.len(), MAX_FAILING_NAMES);
    assert!(oversized.failing.iter().all(|name| name.chars().count() == MAX_NAME_CHARS));
}
