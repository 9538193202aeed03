//! Tests of `[[step]]` parsing, validation and planning.

use super::*;

const EXAMPLE: &str = r#"
[pipeline]
cancel_superseded = true

[[step]]
name = "build"
command = "python3 -m build"
artifacts = ["dist/*.whl"]

[[step]]
name = "test"
depends_on = ["build"]
matrix = { python = ["3.11", "3.12"] }
command = "pip install dist/*.whl && python$MATRIX_PYTHON -m pytest"
labels = ["linux"]
timeout = "20m"
concurrency = "deploy"
"#;

fn error(text: &str) -> String {
    parse(text).expect_err("refused").to_string()
}

fn step(name: &str, rest: &str) -> String {
    format!("[[step]]\nname = \"{name}\"\ncommand = \"true\"\n{rest}\n")
}

/// Each job's name and needs.
fn shape(config: &PipelineConfig) -> Vec<(String, Vec<u16>)> {
    plan(config).into_iter().map(|job| (job.name, job.needs)).collect()
}

#[test]
fn the_example_parses_and_plans_a_job_per_step_and_cell() {
    let config = parse(EXAMPLE).expect("valid");
    assert!(config.cancel_superseded);
    assert_eq!(config.steps.len(), 2);
    assert_eq!(config.steps[0].artifacts, ["dist/*.whl"]);
    let test = &config.steps[1];
    assert_eq!(test.matrix, [("python".to_owned(), vec!["3.11".to_owned(), "3.12".to_owned()])]);
    assert_eq!(test.job.timeout, std::time::Duration::from_secs(20 * 60));
    assert_eq!(test.concurrency.as_deref(), Some("deploy"));
    let jobs = plan(&config);
    let names: Vec<&str> = jobs.iter().map(|job| job.name.as_str()).collect();
    assert_eq!(names, ["build", "test (python=3.11)", "test (python=3.12)"]);
    let needs: Vec<&[u16]> = jobs.iter().map(|job| job.needs.as_slice()).collect();
    assert_eq!(needs, [&[][..], &[0][..], &[0][..]]);
    assert_eq!(jobs[1].labels, ["linux"]);
    assert_eq!(jobs[1].matrix, [("python".to_owned(), "3.11".to_owned())]);
    assert_eq!(jobs[2].concurrency.as_deref(), Some("deploy"));
    assert!(jobs[0].labels.is_empty());
}

#[test]
fn a_step_comes_after_its_dependencies_whatever_the_file_order() {
    let text = [
        step("deploy", "depends_on = [\"test\", \"lint\"]"),
        step(
            "test",
            "depends_on = [\"build\"]\nmatrix = { os = [\"a\", \"b\"], py = [\"1\", \"2\"] }",
        ),
        step("build", ""),
        step("lint", ""),
    ]
    .concat();
    let config = parse(&text).expect("valid");
    assert_eq!(
        shape(&config),
        [
            ("build".to_owned(), vec![]),
            ("test (os=a, py=1)".to_owned(), vec![0]),
            ("test (os=a, py=2)".to_owned(), vec![0]),
            ("test (os=b, py=1)".to_owned(), vec![0]),
            ("test (os=b, py=2)".to_owned(), vec![0]),
            ("lint".to_owned(), vec![]),
            ("deploy".to_owned(), vec![1, 2, 3, 4, 5]),
        ]
    );
}

#[test]
fn a_diamond_needs_both_sides() {
    let text = [
        step("a", ""),
        step("b", "depends_on = [\"a\"]"),
        step("c", "depends_on = [\"a\"]"),
        step("d", "depends_on = [\"b\", \"c\"]"),
    ]
    .concat();
    let config = parse(&text).expect("valid");
    let expected = [("a", vec![]), ("b", vec![0]), ("c", vec![0]), ("d", vec![1, 2])];
    let expected: Vec<(String, Vec<u16>)> =
        expected.into_iter().map(|(name, needs)| (name.to_owned(), needs)).collect();
    assert_eq!(shape(&config), expected);
}

#[test]
fn the_test_form_is_one_step_named_test_with_the_same_configuration() {
    let text = "[test]\ncommand = \"make check\"\nlabels = [\"linux\"]\nnetwork = \"none\"\n";
    let config = parse(text).expect("valid");
    assert_eq!(config.steps.len(), 1);
    assert_eq!(config.steps[0].name, TEST_STEP);
    assert_eq!(config.steps[0].job, repo_config::parse(text).expect("valid"));
    assert!(!config.cancel_superseded);
    let jobs = plan(&config);
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].labels, repo_config::labels_of(Some(text)), "the sandbox label too");
}

#[test]
fn job_config_adds_the_matrix_values_and_refuses_an_unknown_step_or_cell() {
    let config = parse(EXAMPLE).expect("valid");
    let cell = vec![("python".to_owned(), "3.12".to_owned())];
    let job = job_config(&config, "test", &cell).expect("the cell exists");
    assert_eq!(job.env.get("MATRIX_PYTHON").map(String::as_str), Some("3.12"));
    assert!(job_config(&config, "build", &[]).expect("no matrix").env.is_empty());
    assert_eq!(job_config(&config, "deploy", &[]), None);
    assert_eq!(job_config(&config, "test", &[]), None, "the cell is missing");
    let other = vec![("python".to_owned(), "2.7".to_owned())];
    assert_eq!(job_config(&config, "test", &other), None);
}

#[test]
fn a_missing_or_broken_file_plans_one_job_named_test() {
    for file in [None, Some("not toml ["), Some("[[step]]\nname = \"x\"\n")] {
        let jobs = plan_of(file);
        let shape: Vec<(&str, usize, usize)> =
            jobs.iter().map(|j| (j.name.as_str(), j.needs.len(), j.labels.len())).collect();
        assert_eq!(shape, [("test", 0, 0)], "{file:?}");
    }
    assert_eq!(plan_of(Some(EXAMPLE)).len(), 3);
    let resolved = resolve(None, true).expect("the Python default");
    assert_eq!(resolved.steps[0].job.command, repo_config::DEFAULT_PYTHON_COMMAND);
    assert!(resolve(None, false).is_err());
}

#[test]
fn a_build_of_64_jobs_is_accepted_and_65_refused() {
    let values = |n: usize| (0..n).map(|v| format!("\"{v}\"")).collect::<Vec<_>>().join(", ");
    let at_most = step("t", &format!("matrix = {{ a = [{}], b = [{}] }}", values(8), values(8)));
    assert_eq!(plan(&parse(&at_most).expect("64 jobs")).len(), 64);
    let over = [at_most, step("u", "")].concat();
    assert_eq!(
        error(&over),
        "invalid .eventide.toml: the steps and their matrices make 65 jobs, at most 64"
    );
}

#[test]
fn bad_pipelines_get_messages_that_say_what_to_fix() {
    let both = format!("[test]\ncommand = \"true\"\n{}", step("a", ""));
    let cases: Vec<(String, &str)> = vec![
        (both, "use [test] or [[step]] tables, not both"),
        (
            "[pipeline]\ncancel_superseded = true\n".into(),
            "missing [test] table or [[step]] tables",
        ),
        (
            "[pipeline]\ncancel = true\n[test]\ncommand = \"x\"\n".into(),
            "line 2: unknown field `cancel`, expected `cancel_superseded`",
        ),
        ([step("a", ""), step("a", "")].concat(), "[[step]] \"a\": the name is used twice"),
        ("[[step]]\ncommand = \"true\"\n".into(), "[[step]] 1: name is missing"),
        (step("a b", ""), "[[step]] \"a b\": names are 1 to 64 letters, digits and - _ ."),
        (step("a", "depends_on = [\"a\"]"), "[[step]] \"a\": depends on itself"),
        (
            step("a", "depends_on = [\"zz\"]"),
            "[[step]] \"a\": depends_on \"zz\", which is no step's name",
        ),
        (
            [
                step("a", "depends_on = [\"c\"]"),
                step("b", "depends_on = [\"a\"]"),
                step("c", "depends_on = [\"b\"]"),
            ]
            .concat(),
            "[[step]] dependency cycle: a -> c -> b -> a",
        ),
        (
            step("a", "matrix = { python = [] }"),
            "[[step]] \"a\" matrix python: at least one value is needed",
        ),
        (
            step("a", "matrix = { python = \"3\" }"),
            "[[step]] \"a\" matrix python: expected a list of strings",
        ),
        (
            step("a", "matrix = { py = [\"3 11\"] }"),
            "[[step]] \"a\" matrix py \"3 11\": values are 1 to 32 letters, digits and - _ . +",
        ),
        (
            step("a", "matrix = { py = [\"3\", \"3\"] }"),
            "[[step]] \"a\" matrix py \"3\": listed twice",
        ),
        (
            step(
                "a",
                "matrix = { a = [\"1\"], b = [\"1\"], c = [\"1\"], d = [\"1\"], e = [\"1\"] }",
            ),
            "[[step]] \"a\" matrix: at most 4 keys allowed",
        ),
        (
            step("a", "artifacts = [\"../out\"]"),
            "[[step]] \"a\" artifacts \"../out\": must not contain ..",
        ),
        (
            step("a", "artifacts = [\"/etc/passwd\"]"),
            "[[step]] \"a\" artifacts \"/etc/passwd\": must be relative to the checkout",
        ),
        (step("a", "artifacts = \"dist\""), "[[step]] \"a\" artifacts: expected a list of strings"),
        (
            step("a", "concurrency = \"a b\""),
            "[[step]] \"a\" concurrency \"a b\": a group is 1 to 32 letters, digits and - _ . :",
        ),
        (
            step("a", "timeout = \"soon\""),
            "[[step]] \"a\" timeout \"soon\": expected a duration such as 10m",
        ),
        (step("a", "comand = \"x\""), "[[step]] \"a\": unknown field `comand`"),
        (
            step("a", "matrix = { py = [\"3\"] }\nenv = { MATRIX_PY = \"x\" }"),
            "[[step]] \"a\" env \"MATRIX_PY\": set by its matrix; keep one",
        ),
        ("[[step]]\nname = \"a\"\n".into(), "[[step]] \"a\" command is missing"),
    ];
    for (text, message) in cases {
        let got = error(&text);
        let want = format!("invalid .eventide.toml: {message}");
        assert!(got.starts_with(&want), "for\n{text}\n got: {got}\nwant: {want}");
    }
}
