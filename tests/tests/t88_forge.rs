//! From a push on a forge to a mark on the forge, end to end: repositories served over
//! https by a real git server (nginx + `git http-backend`, a private CA, a token),
//! watched with forge settings whose API is the test forge (GitHub's, GitLab's and
//! Gitea's documented status endpoints); webhook deliveries in each forge's format to
//! any node queue the pushed commit at once (the nodes poll only once a minute), and
//! every job's statuses reach the forge: `pending`, then exactly one final status, also
//! when the forge fails three times first and the leader is killed before it delivered.
//! Bad signatures, unknown repositories, malformed, oversized and replayed deliveries
//! are refused or ignored, and nothing is queued twice.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use eventide_api::{HookDoc, HookResult, JobDoc, RepoDoc};
use eventide_tests::forge::{
    hook_headers, push_payload, send_hook, send_ping, send_push, Answer, Forge, ReceivedStatus,
};
use eventide_tests::forge_world::{
    accepted_for, final_status, is_final_state, World, HOOK_SECRET, PUBLIC_URL,
};
use eventide_tests::{http, wait_until, DEADLINE};

const ZERO: &str = "0000000000000000000000000000000000000000";

fn job_of(world: &World, commit: &str, deadline: Duration) -> JobDoc {
    wait_until(&format!("a job of {commit}"), deadline, || {
        world.jobs(0).into_iter().find(|job| job.commit == commit)
    })
}

/// POSTs a raw delivery to a node's hook endpoint, returning the status and body.
fn deliver(
    addr: SocketAddr,
    forge: Forge,
    headers: &[(String, String)],
    body: &[u8],
) -> (u16, String) {
    let path = format!("/api/v1/hooks/{}", forge.as_str());
    let pairs: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    http::request_with(addr, "POST", &path, &pairs, body).expect("deliver")
}

#[test]
fn pushes_reach_the_cluster_by_webhook_and_statuses_reach_the_forge() {
    let world = World::start();
    let github = world.host("acme/app.git");
    let repo = world.watch(&github, Forge::Github, "FORGE_TOKEN");
    assert_eq!(repo.settings.token.as_deref(), Some("FORGE_TOKEN"));
    let first = github.work.head();

    // The first round (at start) queues the head; its statuses go pending, then success,
    // with the job's page as the link and the test counts as the description.
    let done = final_status(&world.forge, &first, DEADLINE);
    assert_eq!((done.forge, done.project.as_str()), (Forge::Github, "acme/app"));
    assert_eq!(done.state, "success");
    assert_eq!(done.context, "eventide/test");
    let job = job_of(&world, &first, DEADLINE);
    assert_eq!(done.target_url.as_deref(), Some(&*format!("{PUBLIC_URL}/#/job/{}", job.id)));
    let accepted = world.forge.statuses();
    assert_eq!(accepted_for(&accepted, &first)[0].state, "pending");
    assert!(world.forge.rejected().is_empty(), "{:?}", world.forge.rejected());

    // A push, delivered to a node that may not be the leader, is queued at once (the
    // next poll is a minute away) and tested.
    let second = github.push("second");
    let code = send_push(
        Forge::Github,
        &world.hook_url(1, Forge::Github),
        HOOK_SECRET,
        &github.url,
        "main",
        &first,
        &second,
        "delivery-2",
    );
    assert_eq!(code, 202);
    assert_eq!(final_status(&world.forge, &second, DEADLINE).state, "success");

    // The same delivery again, to another node: remembered there or harmless, never a
    // second job.
    let body = push_payload(Forge::Github, &github.url, "main", &first, &second);
    let headers = hook_headers(Forge::Github, "push", HOOK_SECRET, &body, "delivery-2");
    let (code, answer) = deliver(world.addr(1), Forge::Github, &headers, &body);
    assert_eq!(code, 200, "{answer}");
    let doc: HookDoc = serde_json::from_str(&answer).expect("a hook doc");
    assert_eq!(doc.result, HookResult::Repeated);
    assert_eq!(deliver(world.addr(2), Forge::Github, &headers, &body).0, 202);

    // Hostile deliveries change nothing: a bad signature, an unknown repository, a
    // malformed or oversized body, a form-encoded one, an unknown forge.
    let forged = hook_headers(Forge::Github, "push", "not the secret", &body, "delivery-x");
    assert_eq!(deliver(world.addr(0), Forge::Github, &forged, &body).0, 401);
    let mut unsigned = headers.clone();
    unsigned.retain(|(name, _)| name != "X-Hub-Signature-256");
    assert_eq!(deliver(world.addr(0), Forge::Github, &unsigned, &body).0, 401);
    let elsewhere =
        push_payload(Forge::Github, "https://github.com/other/repo.git", "main", ZERO, &second);
    let signed = hook_headers(Forge::Github, "push", HOOK_SECRET, &elsewhere, "delivery-y");
    assert_eq!(deliver(world.addr(0), Forge::Github, &signed, &elsewhere).0, 404);
    let garbage = b"{\"ref\": [unterminated".to_vec();
    let signed = hook_headers(Forge::Github, "push", HOOK_SECRET, &garbage, "delivery-z");
    assert_eq!(deliver(world.addr(0), Forge::Github, &signed, &garbage).0, 400);
    let huge = vec![b' '; 2 * 1024 * 1024];
    let signed = hook_headers(Forge::Github, "push", HOOK_SECRET, &huge, "delivery-h");
    assert_eq!(deliver(world.addr(0), Forge::Github, &signed, &huge).0, 413);
    let form = b"payload=%7B%7D".to_vec();
    let signed = hook_headers(Forge::Github, "push", HOOK_SECRET, &form, "delivery-f");
    assert_eq!(deliver(world.addr(0), Forge::Github, &signed, &form).0, 400);
    assert_eq!(
        send_hook(&format!("http://{}/api/v1/hooks/bitbucket", world.addr(0)), &headers, &body),
        404
    );
    // A ping answers 200 once signed right.
    assert_eq!(
        send_ping(&world.hook_url(2, Forge::Github), HOOK_SECRET, &github.url, "ping-1"),
        200
    );

    // Two commits in all, one job each.
    let jobs = world.jobs(0);
    assert_eq!(jobs.len(), 2, "{jobs:#?}");
    let status = world.cluster.nodes[0].status_doc().expect("status");
    assert_eq!(status.repos[0].forge_error, None);
}

#[test]
fn a_final_status_survives_a_failing_forge_and_a_dead_leader_and_a_refusal_is_shown() {
    let mut world = World::start();
    let gitlab = world.host("group/sub/project.git");
    world.watch(&gitlab, Forge::Gitlab, "SERVER_TOKEN");
    let first = gitlab.work.head();
    let done = final_status(&world.forge, &first, DEADLINE);
    assert_eq!(
        (done.forge, done.project.as_str(), done.state.as_str()),
        (Forge::Gitlab, "group/sub/project", "success")
    );
    assert!(accepted_for(&world.forge.statuses(), &first).iter().any(|s| s.state == "running"));

    // The forge fails its next three posts; the leader dies once it has seen them fail
    // (the job is final by then: its status waits in the outbox).
    world.forge.script(vec![Answer::server_error(); 3]);
    let second = gitlab.push("second");
    let code = send_push(
        Forge::Gitlab,
        &world.hook_url(2, Forge::Gitlab),
        HOOK_SECRET,
        &gitlab.url,
        "main",
        &first,
        &second,
        "gitlab-delivery-2",
    );
    assert_eq!(code, 202);
    world.forge.wait_for("three failed posts", DEADLINE, |received| {
        (received.iter().filter(|s| s.answered == 500).count() >= 3).then_some(())
    });
    let job = job_of(&world, &second, DEADLINE);
    wait_until("the job's result", DEADLINE, || {
        world.jobs(0).into_iter().find(|j| j.id == job.id && j.finished_at.is_some())
    });
    let leader = world.cluster.wait_for_agreed_leader();
    world.cluster.kill(leader);
    let last = final_status(&world.forge, &second, DEADLINE);
    assert_eq!(last.state, "success", "the job passed; a failing forge does not change that");

    // A forge that refuses (here: an API url it does not serve) is shown with its
    // answer, on any node; the job's result is untouched.
    let alive = world.cluster.running().next().expect("a live node");
    let wrong = format!("{}/nowhere", world.forge.api_url(Forge::Gitlab));
    world.cli_ok_at(alive, &["repo", "set", &gitlab.url, "--api-url", &wrong]);
    world.cli_ok_at(alive, &["rerun", &first, "--branch", "main"]);
    let refused = wait_until("the forge's refusal in repo list", DEADLINE, || {
        let (code, body) = http::get(world.cluster.nodes[alive].addr, "/api/v1/repos").ok()?;
        let repos: Vec<RepoDoc> = (code == 200).then(|| serde_json::from_str(&body).ok())??;
        repos.into_iter().find_map(|repo| repo.forge_error)
    });
    assert!(refused.contains("404"), "{refused}");
    assert!(!refused.contains(world.server.token()), "{refused}");
    let status = world.cluster.nodes[alive].status_doc().expect("status");
    assert!(status.repos[0].forge_error.as_deref().is_some_and(|e| e.contains("404")));
    let rerun = wait_until("the rerun's result", DEADLINE, || {
        let jobs = world.cluster.nodes[alive].job_docs("?limit=1000")?;
        jobs.into_iter().find(|job| {
            job.commit == first
                && job.trigger == eventide_api::Trigger::Rerun
                && job.finished_at.is_some()
        })
    });
    assert_eq!(rerun.state, eventide_api::JobState::Passed);
    let table = world.cli_ok_at(alive, &["repo", "list"]);
    assert!(
        table.contains("gitlab") && table.contains("forge refused a status: HTTP 404"),
        "{table}"
    );
}

#[test]
fn gitea_pushes_outside_the_branch_filter_are_ignored() {
    let world = World::start();
    let gitea = world.host("team/tool.git");
    world.watch(&gitea, Forge::Gitea, "SERVER_TOKEN");
    let first = gitea.work.head();
    assert_eq!(final_status(&world.forge, &first, DEADLINE).state, "success");
    world.cli_ok(&["repo", "set", &gitea.url, "--branches", "main,release/*"]);

    // A branch the filter leaves out: the delivery is taken, nothing is queued.
    gitea.work.git(&["checkout", "-q", "-b", "wip/idea"]);
    let wip = gitea.push_branch("wip/idea", "wip");
    let code = send_push(
        Forge::Gitea,
        &world.hook_url(0, Forge::Gitea),
        HOOK_SECRET,
        &gitea.url,
        "wip/idea",
        ZERO,
        &wip,
        "gitea-1",
    );
    assert_eq!(code, 202);
    // A release branch (from main) is tested.
    gitea.work.git(&["checkout", "-q", "main"]);
    gitea.work.git(&["checkout", "-q", "-b", "release/1.0"]);
    let release = gitea.push_branch("release/1.0", "release");
    let code = send_push(
        Forge::Gitea,
        &world.hook_url(1, Forge::Gitea),
        HOOK_SECRET,
        &gitea.url,
        "release/1.0",
        ZERO,
        &release,
        "gitea-2",
    );
    assert_eq!(code, 202);
    let done = final_status(&world.forge, &release, DEADLINE);
    assert_eq!((done.forge, done.project.as_str()), (Forge::Gitea, "team/tool"));
    let jobs = world.jobs(0);
    assert!(jobs.iter().all(|job| job.branch != "wip/idea"), "{jobs:#?}");
    assert!(accepted_for(&world.forge.received(), &wip).is_empty());
}

/// Each job of a pipeline posts its own statuses, under a context of its own: a failing
/// matrix cell is `failure` on its context alone, the step after it, skipped, is `error`
/// with the reason, and the one-step context is not posted at all.
#[test]
fn each_job_of_a_pipeline_posts_its_own_status() {
    let world = World::start();
    let github = world.host("acme/pipeline.git");
    github.work.write(
        ".eventide.toml",
        "[[step]]\nname = \"build\"\ncommand = \"true\"\n\n\
         [[step]]\nname = \"test\"\ndepends_on = [\"build\"]\n\
         matrix = { python = [\"3.11\", \"3.12\"] }\n\
         command = \"[ $MATRIX_PYTHON = 3.11 ]\"\n\n\
         [[step]]\nname = \"deploy\"\ndepends_on = [\"test\"]\ncommand = \"true\"\n",
    );
    let commit = github.push("a pipeline");
    world.watch(&github, Forge::Github, "FORGE_TOKEN");
    let expected: BTreeMap<String, String> = [
        ("eventide/build", "success"),
        ("eventide/test (python=3.11)", "success"),
        ("eventide/test (python=3.12)", "failure"),
        ("eventide/deploy", "error"),
    ]
    .into_iter()
    .map(|(context, state)| (context.to_owned(), state.to_owned()))
    .collect();
    let last = world.forge.wait_for("a final status of every job", DEADLINE, |received| {
        let mut last: BTreeMap<String, ReceivedStatus> = BTreeMap::new();
        for status in accepted_for(received, &commit) {
            last.insert(status.context.clone(), status.clone());
        }
        expected
            .keys()
            .all(|context| last.get(context).is_some_and(|s| is_final_state(&s.state)))
            .then_some(last)
    });
    let states: BTreeMap<String, String> =
        last.iter().map(|(context, status)| (context.clone(), status.state.clone())).collect();
    assert_eq!(states, expected, "one context per job, nothing else: {last:#?}");
    let deploy = &last["eventide/deploy"];
    assert!(
        deploy.description.as_deref().is_some_and(|d| d.contains("test (python=3.12) failed")),
        "{deploy:?}"
    );
    let received = world.forge.received();
    for context in expected.keys() {
        let finals = accepted_for(&received, &commit)
            .into_iter()
            .filter(|s| &s.context == context && is_final_state(&s.state))
            .count();
        assert_eq!(finals, 1, "exactly one final status for {context}");
    }
}
