//! From a push on a forge to a mark on the forge, end to end: repositories served over
//! https by a real git server (nginx + `git http-backend`, a private CA, a token),
//! watched with forge settings whose API is the test forge (GitHub's, GitLab's and
//! Gitea's documented status endpoints); webhook deliveries in each forge's format to
//! any node queue the pushed commit at once (the nodes poll only once a minute), and
//! every job's statuses reach the forge: `pending`, then exactly one final status, also
//! when the forge fails three times first and the leader is killed before it delivered.
//! Bad signatures, unknown repositories, malformed, oversized and replayed deliveries
//! are refused or ignored, and nothing is queued twice.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use eventide_api::{HookDoc, HookResult, JobDoc, RepoDoc};
use eventide_tests::forge::{
    hook_headers, push_payload, send_hook, send_ping, send_push, Answer, Forge, ReceivedStatus,
    TestForge,
};
use eventide_tests::gitserver::{HttpsGitServer, HTTPS_USERNAME};
use eventide_tests::repo::GitRepo;
use eventide_tests::{cli, http, wait_until, Cluster, Options, DEADLINE};

const SECRET: &str = "forge test cluster secret 88";
const HOOK_SECRET: &str = "whsec-5b0f3c-forge-test";
const PUBLIC_URL: &str = "https://ci.example.com";
const ZERO: &str = "0000000000000000000000000000000000000000";

/// The test's world: a cluster, a git server, a forge and the CLI's secret file.
struct World {
    cluster: Cluster,
    server: HttpsGitServer,
    forge: TestForge,
    secret_file: PathBuf,
    _dir: tempfile::TempDir,
}

/// A repository on the git server: its work tree, bare copy and url.
struct Hosted {
    work: GitRepo,
    bare: PathBuf,
    url: String,
}

impl World {
    fn start() -> World {
        let server = HttpsGitServer::start();
        let forge = TestForge::start(server.token());
        let options = Options {
            secret: Some(SECRET.to_owned()),
            extra: vec![
                "--poll-interval".into(),
                "60s".into(),
                "--public-url".into(),
                PUBLIC_URL.into(),
            ],
            ..Options::default()
        };
        let cluster = Cluster::start(3, options);
        cluster.wait_for_agreed_leader();
        let dir = tempfile::tempdir().expect("temp dir");
        let secret_file = dir.path().join("cli.secret");
        std::fs::write(&secret_file, format!("{SECRET}\n")).expect("write secret file");
        let world = World { cluster, server, forge, secret_file, _dir: dir };
        world.secret_set("FORGE_TOKEN", world.server.token());
        // GitLab and Gitea send another user name with a token by default; this server
        // wants its own, which a `USER:TOKEN` value names.
        world.secret_set("SERVER_TOKEN", &format!("{HTTPS_USERNAME}:{}", world.server.token()));
        world.secret_set("HOOK_SECRET", HOOK_SECRET);
        world
    }

    fn addr(&self, index: usize) -> SocketAddr {
        self.cluster.nodes[index].addr
    }

    /// `eventide-node ARGS` against node 1; must succeed.
    fn cli_ok(&self, args: &[&str]) -> String {
        self.cli_ok_at(0, args)
    }

    /// `eventide-node ARGS` against node `index`; must succeed.
    fn cli_ok_at(&self, index: usize, args: &[&str]) -> String {
        let node = self.addr(index).to_string();
        let file = self.secret_file.display().to_string();
        let mut all = args.to_vec();
        all.extend_from_slice(&["--node", &node, "--secret-file", &file]);
        let output = cli(&all);
        assert!(output.status.success(), "{args:?}: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    fn secret_set(&self, name: &str, value: &str) {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("value");
        std::fs::write(&file, value).expect("write value");
        self.cli_ok(&["secret", "set", name, "--from-file", &file.display().to_string()]);
    }

    /// A repository `owner/name.git` with a passing `.eventide.toml`, on the server.
    fn host(&self, path: &str) -> Hosted {
        let work = GitRepo::new();
        work.configure("true", "");
        // Its own content: two repositories made in the same second would otherwise
        // have the same first commit.
        work.write("NAME", path);
        work.commit("first");
        let bare = work.path().with_extension("bare.git");
        let output = Command::new("git")
            .args(["clone", "--quiet", "--bare"])
            .arg(work.path())
            .arg(&bare)
            .output()
            .expect("git clone --bare");
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        let url = self.server.serve(path, &bare);
        Hosted { work, bare, url }
    }

    /// Watches `hosted` as a repository of `forge` whose API is the test forge.
    fn watch(&self, hosted: &Hosted, forge: Forge, token: &str) -> RepoDoc {
        let api = self.forge.api_url(forge);
        let ca = self.server.ca_path().display().to_string();
        self.cli_ok(&[
            "repo",
            "add",
            &hosted.url,
            "--forge",
            forge.as_str(),
            "--api-url",
            &api,
            "--token",
            token,
            "--webhook-secret",
            "HOOK_SECRET",
            "--ca-file",
            &ca,
        ]);
        let repos: Vec<RepoDoc> =
            serde_json::from_str(&self.cli_ok(&["repo", "list", "--json"])).expect("repo list");
        repos.into_iter().find(|repo| repo.url == hosted.url).expect("the repository is listed")
    }

    fn jobs(&self, index: usize) -> Vec<JobDoc> {
        self.cluster.nodes[index].job_docs("?limit=1000").unwrap_or_default()
    }

    fn hook_url(&self, index: usize, forge: Forge) -> String {
        format!("http://{}/api/v1/hooks/{}", self.addr(index), forge.as_str())
    }
}

impl Drop for World {
    /// On a failure, what the nodes logged and what the forge saw.
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.cluster.dump_logs();
            eprintln!("forge received: {:#?}", self.forge.received());
            eprintln!("forge rejected: {:#?}", self.forge.rejected());
            eprintln!("git server log: {}", self.server.log());
        }
    }
}

impl Hosted {
    /// Commits on `main` and pushes to the server's copy; returns the commit.
    fn push(&self, message: &str) -> String {
        self.work.write("change.txt", message);
        let commit = self.work.commit(message);
        self.work.git(&["push", "--quiet", &self.bare.display().to_string(), "main"]);
        commit
    }
}

/// The statuses the forge accepted (201) for `sha`, in order.
fn accepted_for<'a>(statuses: &'a [ReceivedStatus], sha: &str) -> Vec<&'a ReceivedStatus> {
    statuses.iter().filter(|s| s.sha == sha && s.answered == 201).collect()
}

fn is_final_state(state: &str) -> bool {
    !matches!(state, "pending" | "running")
}

/// Waits for the final status of `sha` on the forge; checks that it is the only final
/// one and that no `pending` was accepted after it.
fn final_status(forge: &TestForge, sha: &str, deadline: Duration) -> ReceivedStatus {
    let last = forge.wait_for(&format!("a final status of {sha}"), deadline, |received| {
        accepted_for(received, sha)
            .last()
            .filter(|s| is_final_state(&s.state))
            .map(|s| (*s).clone())
    });
    let received = forge.received();
    let accepted = accepted_for(&received, sha);
    let finals: Vec<_> = accepted.iter().filter(|s| is_final_state(&s.state)).collect();
    assert_eq!(finals.len(), 1, "exactly one final status of {sha}: {accepted:#?}");
    assert!(
        is_final_state(&accepted.last().expect("some").state),
        "nothing accepted after the final status of {sha}: {accepted:#?}"
    );
    last
}

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

impl Hosted {
    /// Commits on the current branch `branch` and pushes it; returns the commit.
    fn push_branch(&self, branch: &str, message: &str) -> String {
        self.work.write("change.txt", message);
        let commit = self.work.commit(message);
        self.work.git(&["push", "--quiet", &self.bare.display().to_string(), branch]);
        commit
    }
}

/// The leader's CPU time (user + system) in milliseconds, from `/proc`.
fn cpu_ms(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("the leader's stat");
    // The fields after the command name, which is in parentheses.
    let fields: Vec<&str> =
        stat.rsplit_once(')').expect("a stat line").1.split_whitespace().collect();
    let ticks: f64 =
        fields[11].parse::<f64>().expect("utime") + fields[12].parse::<f64>().expect("stime");
    // USER_HZ is 100 on Linux.
    ticks * 10.0
}

fn spread(values: &mut [f64]) -> String {
    values.sort_by(f64::total_cmp);
    format!("{:.2} / {:.2} / {:.2}", values[0], values[values.len() / 2], values[values.len() - 1])
}

/// What a commit status costs the leader: `BENCH_JOBS` reruns (default 200) of a
/// repository with a forge and of one without, `BENCH_RUNS` times (default 3), measuring
/// the leader's CPU time and Raft entries per job. Run by `scripts/bench/statuses.sh`
/// (with the release binary); prints, asserts nothing about time.
#[test]
#[ignore = "a benchmark: scripts/bench/statuses.sh"]
fn bench_what_a_status_costs_the_leader() {
    let count: usize = std::env::var("BENCH_JOBS").ok().and_then(|v| v.parse().ok()).unwrap_or(200);
    let runs: usize = std::env::var("BENCH_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(3);
    let world = World::start();
    let with = world.host("acme/with.git");
    world.watch(&with, Forge::Github, "FORGE_TOKEN");
    let without = world.host("acme/without.git");
    let ca = world.server.ca_path().display().to_string();
    world.cli_ok(&["repo", "add", &without.url, "--token", "FORGE_TOKEN", "--ca-file", &ca]);
    for hosted in [&with, &without] {
        let head = hosted.work.head();
        wait_until("the first job", DEADLINE, || {
            world.jobs(0).into_iter().find(|j| j.commit == head && j.finished_at.is_some())
        });
    }
    final_status(&world.forge, &with.work.head(), DEADLINE);
    let token =
        eventide_consensus::auth::Secret::try_new(SECRET.as_bytes()).expect("secret").api_token();
    let authorization = format!("Bearer {token}");
    let mut results: Vec<(&str, Vec<f64>, Vec<f64>)> = Vec::new();
    for (label, hosted) in [("with a forge", &with), ("without", &without)] {
        let (mut cpu, mut entries) = (Vec::new(), Vec::new());
        for _ in 0..runs {
            let leader = world.cluster.wait_for_agreed_leader();
            let pid = world.cluster.nodes[leader].pid().expect("the leader's pid");
            let applied = |index: usize| {
                world.cluster.nodes[index].status_doc().expect("status").applied_index
            };
            let posted_before = world.forge.statuses().len();
            let (cpu_before, index_before) = (cpu_ms(pid), applied(leader));
            let jobs_before = world.jobs(leader).len();
            let head = hosted.work.head();
            let body = format!("{{\"commit\": \"{head}\", \"branch\": \"main\"}}");
            for _ in 0..count {
                let (code, answer) = http::request_with(
                    world.addr(leader),
                    "POST",
                    "/api/v1/rerun",
                    &[("Content-Type", "application/json"), ("Authorization", &authorization)],
                    body.as_bytes(),
                )
                .expect("rerun");
                assert_eq!(code, 201, "{answer}");
            }
            wait_until("every rerun final", Duration::from_secs(600), || {
                let jobs = world.jobs(leader);
                (jobs.len() >= jobs_before + count && jobs.iter().all(|j| j.finished_at.is_some()))
                    .then_some(())
            });
            if label == "with a forge" {
                // Three statuses a job: queued, running, final (some replaced before
                // they were posted); wait for the outbox to drain.
                wait_until("the outbox drained", Duration::from_secs(600), || {
                    let repos: Vec<RepoDoc> = serde_json::from_str(
                        &http::get(world.addr(leader), "/api/v1/repos").ok()?.1,
                    )
                    .ok()?;
                    repos.iter().all(|r| r.statuses_waiting == 0).then_some(())
                });
            }
            let (cpu_after, index_after) = (cpu_ms(pid), applied(leader));
            cpu.push((cpu_after - cpu_before) / count as f64);
            entries.push((index_after - index_before) as f64 / count as f64);
            if label == "with a forge" {
                let posted = world.forge.statuses().len() - posted_before;
                println!(
                    "run: {count} jobs, {posted} statuses posted ({:.2} a job)",
                    posted as f64 / count as f64
                );
            }
        }
        results.push((label, cpu, entries));
    }
    println!(
        "machine: {} cores; {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|t| t.lines().find(|l| l.starts_with("model name")).map(|l| l
                .split(':')
                .nth(1)
                .unwrap_or("")
                .trim()
                .to_owned()))
            .unwrap_or_default()
    );
    println!("{count} reruns of `true` per run, {runs} runs, 3 nodes; min / median / max per job:");
    println!("| repository | leader CPU ms | Raft entries applied |");
    println!("| --- | --- | --- |");
    for (label, mut cpu, mut entries) in results {
        println!("| {label} | {} | {} |", spread(&mut cpu), spread(&mut entries));
    }
}
