//! The public HTTP API end to end: every endpoint and every error status on a live
//! cluster, and the examples in docs/api.md checked against the live answers.
//!
//! docs/api.md marks each example with `<!-- example: METHOD PATH STATUS -->` before a
//! fenced block. Every marked example must have a live case here and every case an
//! example; the live answer must have the status of the mark and, for JSON, the same
//! keys at every level and the same value types (null matches anything: optional
//! fields). Text examples are checked by kind: `/metrics` must export every metric the
//! example shows, with the same type; a log must be text. Every JSON answer also reads
//! into its `eventide_api` document and writes back unchanged: the server, the CLI and
//! these tests share those types.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

use eventide_api::{
    ArtifactDoc, BuildDoc, BuildState, ErrorBody, JobDetailDoc, JobDoc, JobState, NotifyDoc,
    RepoDoc, StatusDoc, Trigger,
};
use eventide_tests::repo::GitRepo;
use eventide_tests::{
    http, prometheus, wait_for_final_jobs, wait_until, Cluster, Options, DEADLINE,
};
use serde_json::Value;

/// One documented example: its fence language and its text.
struct Example {
    language: String,
    text: String,
}

/// The marked examples of docs/api.md, by `METHOD PATH STATUS`.
fn documented_examples() -> BTreeMap<String, Example> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/api.md");
    let doc = std::fs::read_to_string(path).expect("read docs/api.md");
    let mut examples = BTreeMap::new();
    let mut lines = doc.lines();
    while let Some(line) = lines.next() {
        let Some(key) =
            line.trim().strip_prefix("<!-- example:").and_then(|r| r.strip_suffix("-->"))
        else {
            continue;
        };
        let key = key.trim().to_owned();
        let fence = lines.next().unwrap_or_default();
        let language = fence
            .strip_prefix("```")
            .unwrap_or_else(|| panic!("example {key:?} is not followed by a fenced block"));
        let text: Vec<&str> = lines.by_ref().take_while(|l| !l.starts_with("```")).collect();
        let example = Example { language: language.to_owned(), text: text.join("\n") };
        assert!(examples.insert(key.clone(), example).is_none(), "example {key:?} twice");
    }
    examples
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Checks that `live` has the shape of `documented`: the same keys at every level and the
/// same types, null matching anything; every element of a live array against the first
/// documented element.
fn same_shape(at: &str, documented: &Value, live: &Value) -> Result<(), String> {
    match (documented, live) {
        (Value::Null, _) | (_, Value::Null) => Ok(()),
        (Value::Object(doc), Value::Object(got)) => {
            let doc_keys: BTreeSet<&String> = doc.keys().collect();
            let live_keys: BTreeSet<&String> = got.keys().collect();
            if doc_keys != live_keys {
                return Err(format!("{at}: documented keys {doc_keys:?}, live keys {live_keys:?}"));
            }
            doc.iter()
                .try_for_each(|(key, value)| same_shape(&format!("{at}.{key}"), value, &got[key]))
        }
        (Value::Array(doc), Value::Array(got)) => match doc.first() {
            Some(first) => {
                got.iter().try_for_each(|item| same_shape(&format!("{at}[]"), first, item))
            }
            None => Ok(()),
        },
        _ if kind(documented) == kind(live) => Ok(()),
        _ => Err(format!("{at}: documented {}, live {}", kind(documented), kind(live))),
    }
}

/// One live request for a documented example.
struct Case {
    key: &'static str,
    addr: SocketAddr,
    path: String,
    body: Option<String>,
    /// An `Authorization` header to send.
    authorization: Option<String>,
}

impl Case {
    fn new(key: &'static str, addr: SocketAddr, path: impl Into<String>) -> Case {
        Case { key, addr, path: path.into(), body: None, authorization: None }
    }

    fn authorization(mut self, value: impl Into<String>) -> Case {
        self.authorization = Some(value.into());
        self
    }

    fn body(mut self, body: impl Into<String>) -> Case {
        self.body = Some(body.into());
        self
    }

    fn send(&self) -> (u16, String) {
        let method = self.key.split(' ').next().expect("method");
        let mut headers = vec![("Content-Type", "application/json")];
        if let Some(value) = &self.authorization {
            headers.push(("Authorization", value));
        }
        let body = self.body.as_deref().unwrap_or("");
        let answer = match method {
            "GET" | "POST" => {
                http::request_with(self.addr, method, &self.path, &headers, body.as_bytes())
            }
            other => panic!("no method {other}"),
        };
        answer.unwrap_or_else(|e| panic!("{}: no answer: {e}", self.key))
    }
}

/// Checks one live answer against its example; returns the live JSON (or Null for text).
fn check(case: &Case, example: &Example) -> Value {
    let (code, body) = case.send();
    let status: u16 = case.key.rsplit(' ').next().and_then(|s| s.parse().ok()).expect("status");
    assert_eq!(code, status, "{} ({}): {body}", case.key, case.path);
    match example.language.as_str() {
        "json" => {
            let documented: Value = serde_json::from_str(&example.text)
                .unwrap_or_else(|e| panic!("example {} is not JSON: {e}", case.key));
            let live: Value = serde_json::from_str(&body)
                .unwrap_or_else(|e| panic!("{}: answer is not JSON: {e}: {body}", case.key));
            if let Err(difference) = same_shape("$", &documented, &live) {
                panic!("{}: the example does not match the answer: {difference}\n{body}", case.key);
            }
            live
        }
        "text" if case.path == "/metrics" => {
            let live = prometheus::parse(&body).expect("live metrics parse");
            let documented = prometheus::parse(&example.text).expect("documented metrics parse");
            for (name, family) in &documented.families {
                let found = live.families.get(name).map(|f| f.kind.as_str());
                assert_eq!(found, Some(family.kind.as_str()), "{name} as documented");
            }
            Value::Null
        }
        "text" => {
            assert!(!body.trim().is_empty() && !body.starts_with('{'), "{}: {body}", case.key);
            Value::Null
        }
        other => panic!("example {} has an unknown language {other:?}", case.key),
    }
}

/// Reads `live` as a `$doc` and checks that it writes back the same JSON.
macro_rules! assert_typed {
    ($doc:ty, $key:expr, $live:expr) => {{
        let doc: $doc = serde_json::from_value($live.clone())
            .unwrap_or_else(|e| panic!("{}: not a {}: {e}: {}", $key, stringify!($doc), $live));
        let written = serde_json::to_value(&doc).expect("serialisable");
        assert_eq!(&written, $live, "{}: {} loses or changes a field", $key, stringify!($doc));
        doc
    }};
}

/// Checks that a JSON answer is its typed document.
fn check_typed(key: &str, live: &Value) {
    match key {
        "GET /api/v1/status 200" => {
            assert_typed!(StatusDoc, key, live);
        }
        "GET /api/v1/repos 200" => {
            assert_typed!(Vec<RepoDoc>, key, live);
        }
        "POST /api/v1/repos 201" => {
            assert_typed!(RepoDoc, key, live);
        }
        "GET /api/v1/jobs 200" => {
            assert_typed!(Vec<JobDoc>, key, live);
        }
        "GET /api/v1/jobs/{id} 200" => {
            assert_typed!(JobDetailDoc, key, live);
        }
        "POST /api/v1/jobs/{id}/cancel 200" | "POST /api/v1/rerun 201" => {
            assert_typed!(JobDoc, key, live);
        }
        "POST /api/v1/notify 202" => {
            assert_typed!(NotifyDoc, key, live);
        }
        "GET /api/v1/builds 200" => {
            assert_typed!(Vec<BuildDoc>, key, live);
        }
        "GET /api/v1/jobs/{id}/artifacts 200" => {
            assert_typed!(Vec<ArtifactDoc>, key, live);
        }
        _ if live.is_null() => {}
        _ => {
            assert_typed!(ErrorBody, key, live);
        }
    }
}

fn job_on(addr: SocketAddr, id: u64) -> Option<Value> {
    let (code, body) = http::get(addr, &format!("/api/v1/jobs/{id}")).ok()?;
    (code == 200).then(|| serde_json::from_str(&body).ok()).flatten()
}

#[test]
fn every_endpoint_and_error_answers_as_documented() {
    let repo = GitRepo::new();
    repo.configure("echo Ran 1 test; echo OK", "");
    let tested = repo.commit("passing");
    // The documented status shows a runner's sandbox, so these runners have one
    // (scripts/setup.sh installs bubblewrap).
    let mut options = Options::watching(repo.url());
    options.extra.extend(["--sandbox".into(), "bwrap".into()]);
    let cluster = Cluster::start(3, options);
    // A node that has not formed a cluster: no leader, ever.
    let lonely = Cluster::start(1, Options::default());
    let lone = lonely.nodes[0].addr;
    // A node with a cluster secret and a private API: every request needs the token.
    let private_options = Options {
        secret: Some("an api test secret of enough length".into()),
        extra: vec!["--private-api".into()],
        ..Options::default()
    };
    let private = Cluster::start(1, private_options);
    let guarded = private.nodes[0].addr;
    wait_until("the private node to answer", DEADLINE, || {
        http::get(guarded, "/api/v1/status").ok().filter(|(code, _)| *code == 401)
    });

    let leader = cluster.wait_for_agreed_leader();
    let follower = (leader + 1) % 3;
    let at = cluster.nodes[follower].addr;
    let passed = wait_for_final_jobs(&cluster, follower, 1, DEADLINE).remove(0);
    let passed_id = passed["id"].as_u64().expect("job id");
    // The log is asked of a node that did not run the job: it is passed to the runner.
    let runner = passed["runner"].as_str().expect("runner").to_owned();
    let not_runner =
        (0..3).find(|&i| cluster.nodes[i].id().as_deref() != Some(&runner)).expect("a node");

    // A two-step pipeline whose first step stores an artifact, for the builds and
    // artifacts endpoints.
    repo.write(
        ".eventide.toml",
        "[[step]]\nname = \"build\"\n\
         command = \"mkdir -p dist && echo wheel > dist/app.whl\"\n\
         artifacts = [\"dist/*.whl\"]\n\n\
         [[step]]\nname = \"test\"\ndepends_on = [\"build\"]\ncommand = \"test -f dist/app.whl\"\n",
    );
    let piped = repo.commit("a pipeline with an artifact");
    cluster.nodes[follower].notify();
    let built = wait_until("the pipeline's build to pass", DEADLINE, || {
        let (code, body) = http::get(at, "/api/v1/builds").ok()?;
        let builds: Vec<BuildDoc> = serde_json::from_str(&body).ok().filter(|_| code == 200)?;
        builds.into_iter().find(|b| b.commit == piped && b.state == BuildState::Passed)
    });
    let stored = built.jobs[0].id;

    repo.configure("sleep 120", "");
    repo.commit("hangs until cancelled");
    cluster.nodes[follower].notify();
    let hanging = wait_until("the hanging job on the follower", DEADLINE, || {
        let jobs = cluster.nodes[follower].jobs("state=running")?;
        jobs.first()?["id"].as_u64()
    });
    let other_repo = GitRepo::new();

    let cases = vec![
        Case::new("GET /api/v1/status 200", at, "/api/v1/status"),
        Case::new("GET /api/v1/repos 200", at, "/api/v1/repos"),
        Case::new("POST /api/v1/repos 201", at, "/api/v1/repos")
            .body(format!("{{\"url\": \"{}\"}}", other_repo.url())),
        Case::new("POST /api/v1/repos 400", at, "/api/v1/repos").body("{\"url\": \" \"}"),
        Case::new("POST /api/v1/repos 409", at, "/api/v1/repos")
            .body(format!("{{\"url\": \"{}\"}}", repo.url())),
        Case::new("POST /api/v1/repos 503", lone, "/api/v1/repos").body("{\"url\": \"/srv/x\"}"),
        Case::new("GET /api/v1/jobs 200", at, "/api/v1/jobs"),
        Case::new("GET /api/v1/jobs 400", at, "/api/v1/jobs?state=done"),
        Case::new("GET /api/v1/jobs/{id} 200", at, format!("/api/v1/jobs/{passed_id}")),
        Case::new("GET /api/v1/jobs/{id} 400", at, "/api/v1/jobs/abc"),
        Case::new("GET /api/v1/jobs/{id} 404", at, "/api/v1/jobs/99"),
        Case::new(
            "GET /api/v1/jobs/{id}/log 200",
            cluster.nodes[not_runner].addr,
            format!("/api/v1/jobs/{passed_id}/log"),
        ),
        Case::new("GET /api/v1/builds 200", at, "/api/v1/builds"),
        Case::new("GET /api/v1/builds 400", at, "/api/v1/builds?state=done"),
        Case::new("GET /api/v1/builds/{id} 404", at, "/api/v1/builds/99"),
        Case::new(
            "GET /api/v1/jobs/{id}/artifacts 200",
            at,
            format!("/api/v1/jobs/{stored}/artifacts"),
        ),
        Case::new("GET /api/v1/jobs/{id}/log 400", at, "/api/v1/jobs/1/log?follow=maybe"),
        Case::new("GET /api/v1/jobs/{id}/log 404", at, "/api/v1/jobs/99/log"),
        Case::new(
            "POST /api/v1/jobs/{id}/cancel 200",
            at,
            format!("/api/v1/jobs/{hanging}/cancel"),
        ),
        Case::new("POST /api/v1/jobs/{id}/cancel 400", at, "/api/v1/jobs/abc/cancel"),
        Case::new("POST /api/v1/jobs/{id}/cancel 404", at, "/api/v1/jobs/99/cancel"),
        Case::new(
            "POST /api/v1/jobs/{id}/cancel 409",
            at,
            format!("/api/v1/jobs/{passed_id}/cancel"),
        ),
        Case::new("POST /api/v1/jobs/{id}/cancel 503", lone, "/api/v1/jobs/1/cancel"),
        Case::new("POST /api/v1/rerun 201", at, "/api/v1/rerun")
            .body(format!("{{\"commit\": \"{}\"}}", &tested[..8])),
        Case::new("POST /api/v1/rerun 400", at, "/api/v1/rerun").body("{\"commit\": \"zz\"}"),
        Case::new("POST /api/v1/rerun 404", at, "/api/v1/rerun").body("{\"commit\": \"abcdef12\"}"),
        Case::new("POST /api/v1/notify 202", at, "/api/v1/notify"),
        Case::new("POST /api/v1/notify 503", lone, "/api/v1/notify"),
        Case::new("GET /metrics 200", at, "/metrics"),
        Case::new("GET /api/v1/unknown 404", at, "/api/v1/unknown"),
        Case::new("POST /api/v1/notify 401", guarded, "/api/v1/notify"),
        Case::new("GET /api/v1/status 403", guarded, "/api/v1/status")
            .authorization("Bearer 0123456789abcdef"),
        Case::new("GET /api/v1/rerun 405", at, "/api/v1/rerun"),
    ];

    let mut examples = documented_examples();
    let tested_keys: BTreeSet<&str> = cases.iter().map(|c| c.key).collect();
    let documented_keys: BTreeSet<&str> = examples.keys().map(String::as_str).collect();
    assert_eq!(documented_keys, tested_keys, "docs/api.md examples and live cases differ");

    let mut answers = BTreeMap::new();
    for case in &cases {
        let example = examples.remove(case.key).expect("example");
        let live = check(case, &example);
        check_typed(case.key, &live);
        answers.insert(case.key, live);
    }

    // Writes through a follower answer with the state after the write, at once.
    let key = "POST /api/v1/jobs/{id}/cancel 200";
    let cancelled = assert_typed!(JobDoc, key, &answers[key]);
    assert_eq!(cancelled.state, JobState::Cancelled, "{cancelled:?}");
    let key = "POST /api/v1/rerun 201";
    let rerun = assert_typed!(JobDoc, key, &answers[key]);
    assert_eq!((rerun.trigger, rerun.commit.as_str()), (Trigger::Rerun, tested.as_str()));
    assert!(job_on(at, rerun.id).is_some(), "the follower shows the job it created");
    let leader_name = cluster.nodes[leader].name.clone();
    let key = "POST /api/v1/notify 202";
    assert_eq!(assert_typed!(NotifyDoc, key, &answers[key]).observer, leader_name);
    let key = "GET /api/v1/jobs 200";
    assert!(assert_typed!(Vec<JobDoc>, key, &answers[key]).len() >= 2);
    let key = "GET /api/v1/jobs/{id}/artifacts 200";
    let artifacts = assert_typed!(Vec<ArtifactDoc>, key, &answers[key]);
    assert_eq!(artifacts.len(), 1, "{artifacts:?}");
    assert_eq!((artifacts[0].name.as_str(), artifacts[0].size), ("dist/app.whl", 6));
    let key = "GET /api/v1/builds 200";
    let builds = assert_typed!(Vec<BuildDoc>, key, &answers[key]);
    assert!(builds.iter().any(|b| b.commit == piped && b.jobs.len() == 2), "{builds:?}");
    let log_case = cases.iter().find(|c| c.key.starts_with("GET /api/v1/jobs/{id}/log 200"));
    let (_, log) = log_case.expect("log case").send();
    assert!(log.contains("OK"), "the log of the passed job: {log:?}");
}
