//! The examples of `docs/api.md` read into these types and written back give the same
//! JSON text, byte for byte once the examples' layout whitespace is removed: field
//! names, order and value shapes are the documented ones.

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::{
    ArtifactDoc, BuildDoc, BuildState, ErrorBody, HookDoc, HookResult, JobDetailDoc, JobDoc,
    JobState, NotifyDoc, RaftRole, RemovedRepoDoc, RemovedSecretDoc, RepoDoc, RepoPatch,
    RunnerState, SecretDoc, SetSecret, StatusDoc, Trigger,
};

const API_DOC: &str = include_str!("../../docs/api.md");

/// The first JSON block after `marker` in `docs/api.md`.
fn example(marker: &str) -> &'static str {
    let start = API_DOC.find(marker).unwrap_or_else(|| panic!("docs/api.md has no {marker:?}"));
    let rest = &API_DOC[start..];
    let open = rest.find("```json\n").expect("a json block follows") + "```json\n".len();
    let close = rest[open..].find("```").expect("the block ends");
    &rest[open..open + close]
}

/// `text` without the whitespace outside strings.
fn compact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let (mut in_string, mut escaped) = (false, false);
    for c in text.chars() {
        if in_string {
            out.push(c);
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
        } else if c == '"' {
            in_string = true;
            out.push(c);
        } else if !c.is_whitespace() {
            out.push(c);
        }
    }
    out
}

/// Reads the example after `marker` as a `T` and checks it writes back the same text.
fn round_trip<T: Serialize + DeserializeOwned>(marker: &str) -> T {
    let text = example(marker);
    let doc: T = serde_json::from_str(text)
        .unwrap_or_else(|error| panic!("{marker}: the example does not parse: {error}"));
    let written = serde_json::to_string(&doc).expect("serialisable");
    assert_eq!(written, compact(text), "{marker}");
    doc
}

#[test]
fn the_status_example_is_a_status_doc() {
    let status: StatusDoc = round_trip("<!-- example: GET /api/v1/status 200 -->");
    assert_eq!(status.nodes[0].raft, RaftRole::Voter);
    assert_eq!(status.nodes[0].runner, RunnerState::Ok);
}

#[test]
fn the_job_examples_are_job_docs() {
    let jobs: Vec<JobDoc> = round_trip("<!-- example: GET /api/v1/jobs 200 -->");
    assert_eq!((jobs[0].state, jobs[0].trigger), (JobState::Failed, Trigger::Push));
    let detail: JobDetailDoc = round_trip("<!-- example: GET /api/v1/jobs/{id} 200 -->");
    assert_eq!(detail.job.state, JobState::Passed);
    let cancelled: JobDoc = round_trip("<!-- example: POST /api/v1/jobs/{id}/cancel 200 -->");
    assert_eq!(cancelled.state, JobState::Cancelled);
    let rerun: JobDoc = round_trip("<!-- example: POST /api/v1/rerun 201 -->");
    assert_eq!((rerun.state, rerun.trigger), (JobState::Queued, Trigger::Rerun));
}

#[test]
fn the_build_examples_are_build_docs() {
    let builds: Vec<BuildDoc> = round_trip("<!-- example: GET /api/v1/builds 200 -->");
    assert_eq!(builds[0].state, BuildState::Failed);
    assert_eq!(builds[0].jobs[3].state, JobState::Skipped);
    assert_eq!(builds[0].jobs[3].needs, [11, 12]);
    let artifacts: Vec<ArtifactDoc> =
        round_trip("<!-- example: GET /api/v1/jobs/{id}/artifacts 200 -->");
    assert_eq!(artifacts, builds[0].jobs[0].artifacts);
    round_trip::<ErrorBody>("<!-- example: GET /api/v1/builds 400 -->");
    round_trip::<ErrorBody>("<!-- example: GET /api/v1/builds/{id} 404 -->");
}

#[test]
fn the_repository_examples_are_repo_docs() {
    round_trip::<Vec<RepoDoc>>("<!-- example: GET /api/v1/repos 200 -->");
    round_trip::<RepoDoc>("<!-- example: POST /api/v1/repos 201 -->");
    round_trip::<RemovedRepoDoc>("## `DELETE /api/v1/repos/{id}`");
    let patch: RepoPatch = round_trip("## `PATCH /api/v1/repos/{id}`");
    assert_eq!(patch.api_url, Some(None), "null clears");
    assert_eq!(patch.token, None, "absent keeps");
}

#[test]
fn the_notify_and_error_examples_are_their_docs() {
    round_trip::<NotifyDoc>("<!-- example: POST /api/v1/notify 202 -->");
    let hook: HookDoc = round_trip("## `POST /api/v1/hooks/{forge}`");
    assert_eq!(hook.result, HookResult::Accepted);
    for marker in [
        "## Errors",
        "<!-- example: POST /api/v1/notify 401 -->",
        "<!-- example: GET /api/v1/jobs 400 -->",
        "<!-- example: POST /api/v1/rerun 404 -->",
    ] {
        round_trip::<ErrorBody>(marker);
    }
}

#[test]
fn the_secret_store_examples_are_its_docs() {
    round_trip::<ErrorBody>("## The secret store");
    round_trip::<SetSecret>("### `PUT /api/v1/secrets/{name}`");
    let answer: SecretDoc = round_trip("The secret's answer (`200`)");
    assert!(answer.updated_at > answer.created_at);
    round_trip::<ErrorBody>("A bad name or value is refused");
    let listed: Vec<SecretDoc> = round_trip("### `GET /api/v1/secrets`");
    assert_eq!(listed[1], answer);
    round_trip::<RemovedSecretDoc>("### `DELETE /api/v1/secrets/{name}`");
}

#[test]
fn a_paused_node_reads_and_writes_its_reason() {
    let text = example("<!-- example: GET /api/v1/status 200 -->")
        .replace(r#""runner": "ok""#, r#""runner": "paused (disk: 120 MiB free < 1 GiB)""#);
    let status: StatusDoc = serde_json::from_str(&text).expect("parses");
    let reason = "disk: 120 MiB free < 1 GiB".to_owned();
    assert_eq!(status.nodes[0].runner, RunnerState::Paused { reason });
    assert_eq!(serde_json::to_string(&status).expect("serialisable"), compact(&text));
}
