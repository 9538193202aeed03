//! Pipelines end to end (issue 15): `[[step]]`s become the jobs of a build, run on the
//! runners their labels pick, pass artifacts from one node to another, skip after a
//! failure, fan out over a matrix, and an older build is superseded with its processes
//! killed. Every node runs without a sandbox, so that the jobs' files and processes are
//! the host's and the test can look at them.

use std::net::SocketAddr;

use eventide_api::{BuildDoc, BuildState, JobState};
use eventide_tests::repo::GitRepo;
use eventide_tests::{cli, http, wait_until, Cluster, Options, DEADLINE};

/// Nodes watching `repo`, without a sandbox, node `i` with the flags `per_node[i]`.
fn cluster(repo: &GitRepo, per_node: &[&[&str]]) -> Cluster {
    let mut options = Options::watching(repo.url());
    options.extra.extend(["--sandbox".into(), "none".into()]);
    options.per_node =
        per_node.iter().map(|flags| flags.iter().map(|f| f.to_string()).collect()).collect();
    Cluster::start(per_node.len(), options)
}

fn builds(addr: SocketAddr) -> Option<Vec<BuildDoc>> {
    let (status, body) = http::get(addr, "/api/v1/builds?limit=100").ok()?;
    (status == 200).then(|| serde_json::from_str(&body).expect("builds parse"))
}

/// The build of `commit` once `done` holds for it, as `addr` answers.
fn wait_build(
    addr: SocketAddr,
    commit: &str,
    what: &str,
    done: impl Fn(&BuildDoc) -> bool,
) -> BuildDoc {
    wait_until(what, DEADLINE, || {
        builds(addr)?.into_iter().find(|build| build.commit == commit && done(build))
    })
}

fn final_build(addr: SocketAddr, commit: &str) -> BuildDoc {
    wait_build(addr, commit, "the build to end", |build| build.state.is_final())
}

fn step_config(steps: &[(&str, &str)]) -> String {
    steps
        .iter()
        .map(|(name, rest)| format!("[[step]]\nname = \"{name}\"\n{rest}\n"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn a_step_on_another_node_uses_the_artifact_of_the_step_before() {
    let repo = GitRepo::new();
    repo.write(
        ".eventide.toml",
        &step_config(&[
            (
                "build",
                "command = \"mkdir -p dist && echo built-$EVENTIDE_COMMIT > dist/out.txt\"\n\
                 artifacts = [\"dist/*.txt\"]\nlabels = [\"builder\"]",
            ),
            (
                "test",
                "depends_on = [\"build\"]\nlabels = [\"tester\"]\n\
                 command = \"grep -q built-$EVENTIDE_COMMIT dist/out.txt && echo checked\"",
            ),
            ("deploy", "depends_on = [\"test\"]\ncommand = \"test -f dist/out.txt\""),
        ]),
    );
    let commit = repo.commit("Add a three-step pipeline");
    let cluster = cluster(&repo, &[&["--labels", "builder"], &["--labels", "tester"], &[]]);
    let addr = cluster.nodes[2].addr;
    let build = final_build(addr, &commit);
    assert_eq!(build.state, BuildState::Passed, "{build:#?}");
    assert_eq!(build.subject, "Add a three-step pipeline");
    let names: Vec<&str> = build.jobs.iter().map(|job| job.name.as_str()).collect();
    assert_eq!(names, ["build", "test", "deploy"]);
    assert_eq!(build.jobs[1].needs, [build.jobs[0].id]);
    assert_eq!(build.jobs[2].needs, [build.jobs[1].id]);
    cluster.learn_ids();
    let node_id = |index: usize| cluster.nodes[index].id().expect("an id");
    assert_eq!(build.jobs[0].runner.as_deref(), Some(node_id(0).as_str()));
    assert_eq!(build.jobs[1].runner.as_deref(), Some(node_id(1).as_str()), "another node");

    let artifact = &build.jobs[0].artifacts[0];
    assert_eq!(artifact.name, "dist/out.txt");
    assert_eq!(artifact.holders.len(), 2, "stored on the runner and copied: {artifact:?}");
    assert_eq!(artifact.holders[0], node_id(0));
    let expected = format!("built-{commit}\n");
    assert_eq!(artifact.size, expected.len() as u64);
    let path = format!("/api/v1/jobs/{}/artifacts/dist/out.txt", build.jobs[0].id);
    for node in &cluster.nodes {
        let (status, body) = http::get(node.addr, &path).expect("get");
        assert_eq!((status, body.as_str()), (200, expected.as_str()), "from {}", node.name);
    }
    let (status, _) =
        http::get(addr, &format!("/api/v1/jobs/{}/artifacts/nope", build.jobs[0].id)).expect("get");
    assert_eq!(status, 404);
    let job_log = eventide_tests::job_log(&cluster.nodes[1], &serde_json::json!(build.jobs[1].id));
    assert!(job_log.contains("artifact dist/out.txt"), "{job_log}");

    // The CLI lists and fetches it from any node.
    let out = tempfile::tempdir().expect("temp dir");
    let target = out.path().join("got.txt");
    let job = build.jobs[0].id.to_string();
    let node = addr.to_string();
    let listed = cli(&["artifact", "list", &job, "--node", &node]);
    assert!(listed.status.success(), "{listed:?}");
    let listing = String::from_utf8_lossy(&listed.stdout);
    assert!(listing.contains("dist/out.txt"), "{listing}");
    // Holders by name: the builder made it, so it holds a copy.
    let builder = &cluster.nodes[0].name;
    assert!(listing.lines().nth(1).is_some_and(|row| row.contains(builder.as_str())), "{listing}");
    let target_text = target.display().to_string();
    let got = cli(&["artifact", "get", &job, "dist/out.txt", "-o", &target_text, "--node", &node]);
    assert!(got.status.success(), "{got:?}");
    assert_eq!(std::fs::read_to_string(&target).expect("written"), expected);
}

#[test]
fn a_failed_step_skips_the_rest_and_a_matrix_runs_on_three_runners_at_once() {
    let repo = GitRepo::new();
    repo.write(
        ".eventide.toml",
        &step_config(&[
            ("build", "command = \"echo broken; exit 4\""),
            ("test", "depends_on = [\"build\"]\ncommand = \"true\""),
            ("deploy", "depends_on = [\"test\"]\ncommand = \"true\""),
        ]),
    );
    let failing = repo.commit("A build that fails");
    let cluster = cluster(&repo, &[&[], &[], &[]]);
    let addr = cluster.nodes[0].addr;
    let build = final_build(addr, &failing);
    assert_eq!(build.state, BuildState::Failed, "{build:#?}");
    let states: Vec<JobState> = build.jobs.iter().map(|job| job.state).collect();
    assert_eq!(states, [JobState::Failed, JobState::Skipped, JobState::Skipped]);
    assert_eq!(build.jobs[1].message.as_deref(), Some("skipped: build failed"));
    assert_eq!(build.jobs[2].runner, None, "a skipped job never ran");

    // Each cell waits (up to a minute) until all three have started: the build passes
    // only if three runners ran them at the same time.
    let rendezvous = tempfile::tempdir().expect("temp dir");
    let dir = rendezvous.path().display();
    repo.write(
        ".eventide.toml",
        &step_config(&[(
            "test",
            &format!(
                "matrix = {{ n = [\"1\", \"2\", \"3\"] }}\ntimeout = \"2m\"\n\
                 command = \"touch {dir}/$MATRIX_N; i=0; while [ $(ls {dir} | wc -l) -lt 3 ]; \
                 do i=$((i+1)); [ $i -gt 600 ] && exit 9; sleep 0.1; done\""
            ),
        )]),
    );
    let matrix = repo.commit("A matrix of three");
    cluster.nodes[1].notify();
    let build = final_build(addr, &matrix);
    assert_eq!(build.state, BuildState::Passed, "{build:#?}");
    let names: Vec<&str> = build.jobs.iter().map(|job| job.name.as_str()).collect();
    assert_eq!(names, ["test (n=1)", "test (n=2)", "test (n=3)"]);
    let runners: std::collections::BTreeSet<_> =
        build.jobs.iter().map(|job| job.runner.clone()).collect();
    assert_eq!(runners.len(), 3, "three runners: {runners:?}");
}

#[test]
fn an_artifact_outlives_the_node_that_made_it() {
    let repo = GitRepo::new();
    repo.write(
        ".eventide.toml",
        &step_config(&[
            (
                "build",
                "command = \"echo kept > out.bin\"\nartifacts = [\"out.bin\"]\nlabels = [\"builder\"]",
            ),
            ("test", "depends_on = [\"build\"]\nlabels = [\"late\"]\ncommand = \"grep -q kept out.bin\""),
        ]),
    );
    let commit = repo.commit("An artifact for a later node");
    // Node 4 makes the artifact and is killed once it is copied; the step that needs it
    // can only run on node 5, started after that.
    let mut cluster = cluster(
        &repo,
        &[
            &["--runner-slots", "0"],
            &["--runner-slots", "0"],
            &["--runner-slots", "0"],
            &["--labels", "builder"],
        ],
    );
    let addr = cluster.nodes[0].addr;
    let waiting = wait_build(addr, &commit, "the build step to pass", |build| {
        build.jobs[0].state == JobState::Passed
    });
    let holders = waiting.jobs[0].artifacts[0].holders.clone();
    assert_eq!(holders.len(), 2, "{holders:?}");
    cluster.learn_ids();
    assert_eq!(Some(holders[0].clone()), cluster.nodes[3].id());
    cluster.kill(3);
    cluster.add_with(&["--labels", "late"]);
    let build = final_build(addr, &commit);
    assert_eq!(build.state, BuildState::Passed, "{build:#?}");
}

#[test]
fn a_newer_commit_cancels_the_superseded_build_and_kills_its_processes() {
    let repo = GitRepo::new();
    let pids = tempfile::tempdir().expect("temp dir");
    let pid_file = pids.path().join("pid");
    repo.write(
        ".eventide.toml",
        &format!(
            "[pipeline]\ncancel_superseded = true\n\n{}",
            step_config(&[(
                "slow",
                &format!("command = \"echo $$ > {}; sleep 300\"", pid_file.display()),
            )])
        ),
    );
    let first = repo.commit("Slow");
    let cluster = cluster(&repo, &[&[], &[], &[]]);
    let addr = cluster.nodes[0].addr;
    wait_build(addr, &first, "the first build to run", |build| build.state == BuildState::Running);
    let pid = wait_until("the job to write its pid", DEADLINE, || {
        std::fs::read_to_string(&pid_file).ok().filter(|text| !text.trim().is_empty())
    });
    repo.write(
        ".eventide.toml",
        "[pipeline]\ncancel_superseded = true\n\n[[step]]\nname = \"quick\"\ncommand = \"true\"\n",
    );
    let second = repo.commit("Quick");
    cluster.nodes[1].notify();
    let superseded = final_build(addr, &first);
    assert_eq!(superseded.state, BuildState::Cancelled, "{superseded:#?}");
    let reason = superseded.cancelled.clone().unwrap_or_default();
    assert_eq!(reason, format!("superseded by {}", &second[..12]));
    assert_eq!(superseded.jobs[0].state, JobState::Cancelled);
    let pid = pid.trim().to_owned();
    wait_until(&format!("process {pid} of the superseded job to be gone"), DEADLINE, || {
        (!std::path::Path::new(&format!("/proc/{pid}")).exists()).then_some(())
    });
    assert_eq!(final_build(addr, &second).state, BuildState::Passed);
}

/// `concurrency = "deploy"`: the three cells of a matrix in one group run one at a time
/// although three runners are free. Each cell holds a lock directory while it runs and
/// fails if another cell holds it; the cells' run times do not overlap either.
#[test]
fn a_concurrency_group_runs_one_job_at_a_time_in_the_cluster() {
    let lock = tempfile::tempdir().expect("temp dir");
    let held = lock.path().join("held");
    let repo = GitRepo::new();
    repo.write(
        ".eventide.toml",
        &step_config(&[(
            "deploy",
            &format!(
                "matrix = {{ region = [\"eu\", \"us\", \"ap\"] }}\nconcurrency = \"deploy\"\n\
                 command = \"mkdir {held} || exit 7; sleep 0.3; rmdir {held}\"",
                held = held.display()
            ),
        )]),
    );
    let commit = repo.commit("Deploy to three regions");
    let cluster = cluster(&repo, &[&[], &[], &[]]);
    let build = final_build(cluster.nodes[0].addr, &commit);
    assert_eq!(build.state, BuildState::Passed, "{build:#?}");
    let mut runs: Vec<(u64, u64)> = build
        .jobs
        .iter()
        .map(|job| (job.started_at.expect("started"), job.finished_at.expect("finished")))
        .collect();
    runs.sort();
    for pair in runs.windows(2) {
        assert!(pair[0].1 <= pair[1].0, "two jobs of the group ran at once: {runs:?}");
    }
}
