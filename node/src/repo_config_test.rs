use super::*;
use crate::isolation::{Limits, Network};

fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn full_file_parses() {
    let text = r#"
[test]
command = "python3 -m unittest discover -s tests -v"
timeout = "10m"
env = { PYTHONDONTWRITEBYTECODE = "1", _LEVEL2 = "" }
labels = ["linux", "x86_64", "gpu:a100", "py3.11"]
junit = ["reports/*.xml", "target/surefire-reports/TEST-*.xml"]
secrets = ["PYPI_TOKEN"]
sandbox = "bwrap"
network = "none"
memory = "2GiB"
pids = 256
cpus = 1.5
disk = "10GiB"
"#;
    let expected = RepoConfig {
        command: "python3 -m unittest discover -s tests -v".to_owned(),
        timeout: Duration::from_secs(600),
        env: env(&[("PYTHONDONTWRITEBYTECODE", "1"), ("_LEVEL2", "")]),
        labels: strings(&["linux", "x86_64", "gpu:a100", "py3.11"]),
        junit: strings(&["reports/*.xml", "target/surefire-reports/TEST-*.xml"]),
        secrets: strings(&["PYPI_TOKEN"]),
        require_sandbox: true,
        network: Network::None,
        limits: Limits {
            memory: Some(2 << 30),
            pids: Some(256),
            cpus_milli: Some(1500),
            disk: Some(10 << 30),
        },
        source: ConfigSource::File,
    };
    assert_eq!(parse(text), Ok(expected));
}

#[test]
fn optional_keys_take_defaults() {
    let config = parse("[test]\ncommand = \"cargo test\"\n").expect("valid file");
    assert_eq!(config.command, "cargo test");
    assert_eq!(config.timeout, DEFAULT_TIMEOUT);
    assert!(config.env.is_empty());
    assert!(config.labels.is_empty());
    assert!(config.junit.is_empty());
    assert!(config.secrets.is_empty());
    assert!(!config.require_sandbox);
    assert_eq!((config.network, config.limits), (Network::Host, Limits::default()));
    assert_eq!(config.source, ConfigSource::File);
}

#[test]
fn timeouts_within_limits_parse() {
    let cases = [
        ("500ms", Duration::from_millis(500)),
        ("30s", Duration::from_secs(30)),
        ("90", Duration::from_secs(90)),
        ("1.5h", Duration::from_secs(5400)),
        ("24h", MAX_TIMEOUT),
    ];
    for (timeout, expected) in cases {
        let text = format!("[test]\ncommand = \"make\"\ntimeout = \"{timeout}\"\n");
        assert_eq!(parse(&text).map(|c| c.timeout), Ok(expected), "timeout {timeout}");
    }
}

#[test]
fn invalid_files_are_refused_with_the_key_named() {
    let cases: &[(&str, &str)] = &[
        ("", "invalid .eventide.toml: missing [test] table"),
        ("[test]\ntimeout = \"1m\"\n", "invalid .eventide.toml: [test] command is missing"),
        ("[test]\ncommand = \"\"\n", "invalid .eventide.toml: [test] command must not be empty"),
        ("[test]\ncommand = \"  \"\n", "invalid .eventide.toml: [test] command must not be empty"),
        (
            "[test]\ncommand = \"a\\u0000b\"\n",
            "invalid .eventide.toml: [test] command must not contain a nul character",
        ),
        (
            "[test]\ncommand = \"make\"\ntimeout = \"soon\"\n",
            "invalid .eventide.toml: [test] timeout \"soon\": expected a duration such as 10m",
        ),
        (
            "[test]\ncommand = \"make\"\ntimeout = \"0s\"\n",
            "invalid .eventide.toml: [test] timeout \"0s\": must be more than zero",
        ),
        (
            "[test]\ncommand = \"make\"\ntimeout = \"25h\"\n",
            "invalid .eventide.toml: [test] timeout \"25h\": must be at most 24h",
        ),
        (
            "[test]\ncommand = \"make\"\nenv = { \"1ST\" = \"x\" }\n",
            "invalid .eventide.toml: [test] env \"1ST\": \
             names are letters, digits and _, not starting with a digit",
        ),
        (
            "[test]\ncommand = \"make\"\nenv = { \"A-B\" = \"x\" }\n",
            "invalid .eventide.toml: [test] env \"A-B\": \
             names are letters, digits and _, not starting with a digit",
        ),
        (
            "[test]\ncommand = \"make\"\nenv = { \"\" = \"x\" }\n",
            "invalid .eventide.toml: [test] env \"\": \
             names are letters, digits and _, not starting with a digit",
        ),
        (
            "[test]\ncommand = \"make\"\nenv = { EVENTIDE_SECRET = \"x\" }\n",
            "invalid .eventide.toml: [test] env \"EVENTIDE_SECRET\": \
             names starting with EVENTIDE_ are reserved",
        ),
        (
            "[test]\ncommand = \"make\"\nlabels = [\"linux\", \"big box\"]\n",
            "invalid .eventide.toml: [test] labels \"big box\": \
             labels are letters, digits and - _ . :",
        ),
        (
            "[test]\ncommand = \"make\"\nlabels = [\"sandbox:bwrap\"]\n",
            "invalid .eventide.toml: [test] labels \"sandbox:bwrap\": labels starting with \
             sandbox: are reserved; require a sandbox with sandbox = \"bwrap\"",
        ),
        (
            "[test]\ncommand = \"make\"\nsandbox = \"docker\"\n",
            "invalid .eventide.toml: [test] sandbox \"docker\": expected \"bwrap\" \
             (or \"any\", the default)",
        ),
        (
            "[test]\ncommand = \"make\"\nnetwork = \"off\"\n",
            "invalid .eventide.toml: [test] network \"off\": expected \"host\" or \"none\"",
        ),
        (
            "[test]\ncommand = \"make\"\nmemory = \"0\"\n",
            "invalid .eventide.toml: [test] memory \"0\": expected a size such as 2GiB",
        ),
        (
            "[test]\ncommand = \"make\"\npids = -1\n",
            "invalid .eventide.toml: [test] pids -1: expected a number from 1 to 4194304",
        ),
        (
            "[test]\ncommand = \"make\"\ncpus = \"many\"\n",
            "invalid .eventide.toml: [test] cpus many: expected a number of CPUs such as 2 or 1.5",
        ),
        (
            "[test]\ncommand = \"make\"\nsecrets = [\"1X\"]\n",
            "invalid .eventide.toml: [test] secrets \"1X\": a secret name has letters, digits \
             and '_' only and does not start with a digit",
        ),
        (
            "[test]\ncommand = \"make\"\nsecrets = [\"EVENTIDE_X\"]\n",
            "invalid .eventide.toml: [test] secrets \"EVENTIDE_X\": names starting with \
             EVENTIDE_ are reserved",
        ),
        (
            "[test]\ncommand = \"make\"\nsecrets = [\"A\"]\nenv = { A = \"1\" }\n",
            "invalid .eventide.toml: [test] secrets \"A\": also set in [test] env; keep one",
        ),
        (
            "[test]\ncommand = \"make\"\nsecrets = [\"A\", \"A\"]\n",
            "invalid .eventide.toml: [test] secrets \"A\": listed twice",
        ),
        (
            "[test]\ncommand = \"make\"\nlabels = [\"\"]\n",
            "invalid .eventide.toml: [test] labels \"\": labels are letters, digits and - _ . :",
        ),
        (
            "[test]\ncommand = \"make\"\njunit = [\"/etc/passwd\"]\n",
            "invalid .eventide.toml: [test] junit \"/etc/passwd\": must be relative to the checkout",
        ),
        (
            "[test]\ncommand = \"make\"\njunit = [\"reports/../../x.xml\"]\n",
            "invalid .eventide.toml: [test] junit \"reports/../../x.xml\": must not contain ..",
        ),
        (
            "[test]\ncommand = \"make\"\njunit = [\"..\"]\n",
            "invalid .eventide.toml: [test] junit \"..\": must not contain ..",
        ),
        (
            "[test]\ncommand = \"make\"\njunit = [\"\"]\n",
            "invalid .eventide.toml: [test] junit \"\": must not be empty",
        ),
    ];
    for (text, expected) in cases {
        let err = parse(text).expect_err(text);
        assert_eq!(err.to_string(), *expected, "file {text:?}");
    }
}

#[test]
fn toml_errors_keep_the_key_and_a_line_number() {
    let cases: &[(&str, &[&str])] = &[
        ("[test]\ncomand = \"make\"\n", &["invalid .eventide.toml: line 2:", "`comand`"]),
        ("[tests]\ncommand = \"make\"\n", &["invalid .eventide.toml: line 1:", "`tests`"]),
        ("[test]\ncommand = \"make\"\ntimeout = 600\n", &["line 3:", "string"]),
        ("[test]\ncommand = \"make\"\nlabels = \"linux\"\n", &["line 3:"]),
        ("[test\ncommand = \"make\"\n", &["invalid .eventide.toml: line 1:"]),
    ];
    for (text, fragments) in cases {
        let message = parse(text).expect_err(text).to_string();
        assert!(!message.contains('\n'), "one line: {message:?}");
        for fragment in *fragments {
            assert!(message.contains(fragment), "{message:?} should contain {fragment:?}");
        }
    }
}

#[test]
fn a_bad_glob_is_refused() {
    let err = parse("[test]\ncommand = \"make\"\njunit = [\"reports/[a.xml\"]\n").expect_err("bad");
    assert!(err
        .to_string()
        .starts_with("invalid .eventide.toml: [test] junit \"reports/[a.xml\": "));
}

#[test]
fn list_limits_are_enforced() {
    let labels: Vec<String> = (0..=MAX_LABELS).map(|i| format!("\"l{i}\"")).collect();
    let text = format!("[test]\ncommand = \"make\"\nlabels = [{}]\n", labels.join(", "));
    assert_eq!(
        parse(&text).map_err(|e| e.to_string()),
        Err(format!("invalid .eventide.toml: [test] labels: at most {MAX_LABELS} allowed"))
    );
    let text = format!("[test]\ncommand = \"make\"\nlabels = [{}]\n", labels[1..].join(", "));
    assert_eq!(parse(&text).map(|c| c.labels.len()), Ok(MAX_LABELS));
    let long = "l".repeat(MAX_LABEL_BYTES + 1);
    let text = format!("[test]\ncommand = \"make\"\nlabels = [\"{long}\"]\n");
    assert_eq!(
        parse(&text).map_err(|e| e.to_string()),
        Err(format!(
            "invalid .eventide.toml: [test] labels \"{long}\": at most {MAX_LABEL_BYTES} bytes"
        ))
    );
    let longest = "l".repeat(MAX_LABEL_BYTES);
    let text = format!("[test]\ncommand = \"make\"\nlabels = [\"{longest}\"]\n");
    assert_eq!(parse(&text).map(|c| c.labels), Ok(vec![longest]));

    let patterns: Vec<String> =
        (0..=MAX_JUNIT_PATTERNS).map(|i| format!("\"r{i}/*.xml\"")).collect();
    let text = format!("[test]\ncommand = \"make\"\njunit = [{}]\n", patterns.join(", "));
    assert_eq!(
        parse(&text).map_err(|e| e.to_string()),
        Err("invalid .eventide.toml: [test] junit: at most 16 patterns allowed".to_owned())
    );
    let text = format!("[test]\ncommand = \"make\"\njunit = [{}]\n", patterns[1..].join(", "));
    assert_eq!(parse(&text).map(|c| c.junit.len()), Ok(MAX_JUNIT_PATTERNS));
}

#[test]
fn resolve_chooses_file_then_default_then_error() {
    let file = "[test]\ncommand = \"make test\"\n";
    let from_file = resolve(Some(file), true).expect("file wins");
    assert_eq!((from_file.command.as_str(), from_file.source), ("make test", ConfigSource::File));
    assert_eq!(resolve(Some(file), false).map(|c| c.source), Ok(ConfigSource::File));
    assert!(resolve(Some("[test]\n"), true).is_err(), "a broken file does not fall back");

    let default = resolve(None, true).expect("tests/ present");
    let expected = RepoConfig {
        command: "python3 -m unittest discover -s tests -v".to_owned(),
        timeout: Duration::from_secs(30 * 60),
        env: env(&[("PYTHONDONTWRITEBYTECODE", "1")]),
        labels: Vec::new(),
        junit: Vec::new(),
        secrets: Vec::new(),
        require_sandbox: false,
        network: Network::Host,
        limits: Limits::default(),
        source: ConfigSource::DefaultPythonUnittest,
    };
    assert_eq!(default, expected);

    let err = resolve(None, false).expect_err("nothing to run");
    assert_eq!(
        err.to_string(),
        "no .eventide.toml at this commit and no tests/ directory: \
         add .eventide.toml with [test] command = \"...\""
    );
}

#[test]
fn labels_of_is_empty_unless_the_file_is_valid() {
    let cases: &[(Option<&str>, &[&str])] = &[
        (None, &[]),
        (Some("not toml ["), &[]),
        (Some("[test]\ncommand = \"\"\nlabels = [\"linux\"]\n"), &[]),
        (Some("[test]\ncommand = \"make\"\n"), &[]),
        (
            Some("[test]\ncommand = \"make\"\nlabels = [\"linux\", \"arm64\"]\n"),
            &["linux", "arm64"],
        ),
        (
            Some("[test]\ncommand = \"make\"\nlabels = [\"linux\"]\nsandbox = \"bwrap\"\n"),
            &["linux", "sandbox:bwrap"],
        ),
    ];
    for (file, expected) in cases {
        assert_eq!(labels_of(*file), strings(expected), "file {file:?}");
    }
}
