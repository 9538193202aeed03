//! Job secrets end to end (issue 13): a secret restricted to `main` is in the environment
//! of a job on `main` and masked as `***` in its live log, its stored log and the output
//! tail of its result, also when the job prints it in two halves with a pause between;
//! a job on a feature branch, and a rerun of the feature commit that names `main`, run
//! without it and say so at the top of their logs. The value reaches no node's log.

use std::net::SocketAddr;
use std::path::Path;

use eventide_api::SecretDoc;
use eventide_tests::repo::GitRepo;
use eventide_tests::{cli, http, is_final, wait_until, Cluster, Options, DEADLINE};
use serde_json::Value;

const SECRET: &str = "the cluster secret of test 91, long enough";
/// Distinctive, so that finding it anywhere means a leak; `-` lets the job split it.
const VALUE: &str = "pypi-AgEIcHlwaS5vcmc-t91-5e0c1d9a";
/// What the job prints of the value's first half alone: never masked, never a leak.
const FIRST_HALF: &str = "pypi";

/// Prints the token whole and in two halves, then waits for the gate file, so that the
/// test reads the live log while the job still runs.
const JOB: &str = r#"if [ -n "${PYPI_TOKEN+set}" ]; then
  echo "token length ${#PYPI_TOKEN}"
  echo "whole: $PYPI_TOKEN"
  printf 'halves: %s' "${PYPI_TOKEN%%-*}"; sleep 0.3; printf -- '-%s\n' "${PYPI_TOKEN#*-}"
else
  echo "no token"
fi
echo waiting
while [ ! -e "$GATE" ]; do sleep 0.05; done
echo done
"#;

/// `eventide-node ARGS --node ADDR --secret-file F`; must succeed; its stdout.
fn run_cli(addr: SocketAddr, secret_file: &Path, args: &[&str]) -> String {
    let node = addr.to_string();
    let file = secret_file.display().to_string();
    let mut all = args.to_vec();
    all.extend_from_slice(&["--node", &node, "--secret-file", &file]);
    let output = cli(&all);
    assert!(output.status.success(), "{args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn job_of(cluster: &Cluster, commit: &str, trigger: &str) -> Value {
    wait_until(&format!("a {trigger} job of {commit}"), DEADLINE, || {
        let jobs = cluster.nodes[0].jobs("")?;
        jobs.into_iter().find(|job| job["commit"] == commit && job["trigger"] == trigger)
    })
}

fn final_job(cluster: &Cluster, id: &Value) -> Value {
    wait_until(&format!("job {id} to end"), DEADLINE, || {
        let (_, body) = http::get(cluster.nodes[1].addr, &format!("/api/v1/jobs/{id}")).ok()?;
        let job: Value = serde_json::from_str(&body).ok()?;
        is_final(&job).then_some(job)
    })
}

fn log_of(addr: SocketAddr, id: &Value) -> String {
    let (code, log) = http::get(addr, &format!("/api/v1/jobs/{id}/log")).expect("get log");
    assert_eq!(code, 200, "{log}");
    log
}

/// The runner's lines at the top of a log.
fn preamble(log: &str) -> Vec<&str> {
    log.lines().take_while(|line| line.starts_with("eventide: ")).collect()
}

fn assert_masked(what: &str, text: &str) {
    assert!(!text.contains(VALUE) && !text.contains(&VALUE[FIRST_HALF.len()..]), "{what}: {text}");
    assert!(text.contains("whole: ***\n"), "{what}: {text}");
    assert!(text.contains("halves: ***\n"), "{what}: {text}");
    assert!(text.contains(&format!("token length {}\n", VALUE.len())), "{what}: {text}");
}

#[test]
fn a_restricted_secret_reaches_only_jobs_of_its_branch_and_is_masked_everywhere() {
    let dir = tempfile::tempdir().expect("temp dir");
    let gate = dir.path().join("gate");
    let repo = GitRepo::new();
    repo.write("job.sh", JOB);
    let env = format!("env = {{ GATE = \"{}\" }}\n", gate.display());
    repo.configure("sh job.sh", &format!("secrets = [\"PYPI_TOKEN\"]\n{env}"));
    let on_main = repo.commit("asks for the token");

    let options = Options {
        secret: Some(SECRET.to_owned()),
        extra: vec!["--poll-interval".into(), "200ms".into()],
        ..Options::default()
    };
    let cluster = Cluster::start(3, options);
    cluster.wait_for_agreed_leader();
    let secret_file = dir.path().join("cli.secret");
    std::fs::write(&secret_file, SECRET).expect("write the secret file");
    let value_file = dir.path().join("value");
    std::fs::write(&value_file, VALUE).expect("write the value");
    let (first, second, third) =
        (cluster.nodes[0].addr, cluster.nodes[1].addr, cluster.nodes[2].addr);

    // The secret, for main only; listed with its branches, never its value.
    let value_path = value_file.display().to_string();
    let said = run_cli(
        second,
        &secret_file,
        &["secret", "set", "PYPI_TOKEN", "--from-file", &value_path, "--branches", "main"],
    );
    assert_eq!(said.trim(), "stored secret PYPI_TOKEN for jobs of branches main");
    let listed = wait_until("the secret on node 3", DEADLINE, || {
        let text = run_cli(third, &secret_file, &["secret", "list", "--json"]);
        let list: Vec<SecretDoc> = serde_json::from_str(&text).ok()?;
        (list.len() == 1).then_some(list)
    });
    assert_eq!(listed[0].branches, ["main"]);
    let table = run_cli(third, &secret_file, &["secret", "list"]);
    let row = table.lines().find(|line| line.starts_with("PYPI_TOKEN")).expect("a row");
    assert!(
        table.starts_with("NAME") && table.lines().next().is_some_and(|h| h.ends_with("BRANCHES"))
    );
    assert!(row.ends_with("main"), "{table}");

    // The repository is watched only now, so its first job finds the secret stored.
    run_cli(first, &secret_file, &["repo", "add", &repo.url()]);

    // The job on main gets the value; while it waits, its live log shows it masked.
    let job = job_of(&cluster, &on_main, "push");
    let id = job["id"].clone();
    let live = wait_until("the live log to reach the gate", DEADLINE, || {
        let log = log_of(third, &id);
        log.contains("waiting\n").then_some(log)
    });
    assert_masked("live log", &live);
    assert!(preamble(&live).iter().all(|line| !line.contains("secret")), "{live}");
    std::fs::write(&gate, "").expect("open the gate");
    let done = final_job(&cluster, &id);
    assert_eq!(done["state"], "passed", "{done}");
    let tail = done["output_tail"].as_str().expect("an output tail");
    assert_masked("output tail", tail);
    assert!(tail.ends_with("done\n"), "{tail}");
    for addr in [first, second, third] {
        assert_masked("stored log", &log_of(addr, &id));
    }
    let printed = run_cli(first, &secret_file, &["log", &id.to_string()]);
    assert_masked("eventide-node log", &printed);

    // On a feature branch the job runs without it, and its log says why at the top.
    repo.git(&["checkout", "-q", "-b", "feature"]);
    repo.write("feature.txt", "a change");
    let on_feature = repo.commit("a feature");
    let job = job_of(&cluster, &on_feature, "push");
    let done = final_job(&cluster, &job["id"]);
    assert_eq!(done["state"], "passed", "{done}");
    let log = log_of(first, &job["id"]);
    let withheld =
        "eventide: secret PYPI_TOKEN withheld: it is only for branches main, not feature";
    assert!(preamble(&log).contains(&withheld), "{log}");
    assert!(log.contains("no token\n") && !log.contains("whole:"), "{log}");

    // A rerun of the feature commit that names main: main never had it, still withheld.
    let rerun = run_cli(first, &secret_file, &["rerun", &on_feature, "--branch", "main"]);
    assert!(!rerun.contains(VALUE));
    let job = job_of(&cluster, &on_feature, "rerun");
    assert_eq!(job["branch"], "main");
    let done = final_job(&cluster, &job["id"]);
    assert_eq!(done["state"], "passed", "{done}");
    let log = log_of(second, &job["id"]);
    let withheld = "eventide: secret PYPI_TOKEN withheld: it is only for branches main, and this rerun's commit was never seen on main";
    assert!(preamble(&log).contains(&withheld), "{log}");
    assert!(log.contains("no token\n"), "{log}");

    // A rerun of the main commit on main gets it again, masked.
    run_cli(third, &secret_file, &["rerun", &on_main, "--branch", "main"]);
    let job = job_of(&cluster, &on_main, "rerun");
    let done = final_job(&cluster, &job["id"]);
    assert_eq!(done["state"], "passed", "{done}");
    assert_masked("rerun on main", done["output_tail"].as_str().expect("an output tail"));

    // Nothing of the value in any answer or any node's own log.
    let (_, jobs) = http::get(first, "/api/v1/jobs").expect("jobs");
    assert!(!jobs.contains(VALUE));
    for node in &cluster.nodes {
        let text = node.log_text();
        assert!(!text.contains(VALUE), "the value is in the log of {}", node.name);
    }
}

/// A client's replica is empty: its runner asks the leader for the job's secret, sealed,
/// and opens it itself.
#[test]
fn a_client_runner_gets_the_secret_of_its_job_from_the_leader() {
    let dir = tempfile::tempdir().expect("temp dir");
    let gate = dir.path().join("gate");
    std::fs::write(&gate, "").expect("an open gate");
    let repo = GitRepo::new();
    repo.write("job.sh", JOB);
    let env = format!("env = {{ GATE = \"{}\" }}\n", gate.display());
    repo.configure("sh job.sh", &format!("secrets = [\"PYPI_TOKEN\"]\n{env}"));
    let on_main = repo.commit("asks for the token");

    let (cluster, client, client_id) = Cluster::servers_and_a_client_runner(SECRET);
    let secret_file = dir.path().join("cli.secret");
    std::fs::write(&secret_file, SECRET).expect("write the secret file");
    let value_file = dir.path().join("value");
    std::fs::write(&value_file, VALUE).expect("write the value");
    let value_path = value_file.display().to_string();
    let addr = cluster.nodes[client].addr;
    run_cli(addr, &secret_file, &["secret", "set", "PYPI_TOKEN", "--from-file", &value_path]);
    run_cli(addr, &secret_file, &["repo", "add", &repo.url()]);

    let job = job_of(&cluster, &on_main, "push");
    let done = final_job(&cluster, &job["id"]);
    assert_eq!(done["state"], "passed", "{done}");
    assert_eq!(done["runner"], client_id.as_str(), "only the client runs jobs");
    assert_masked("output tail", done["output_tail"].as_str().expect("an output tail"));
    assert_masked("log through the client", &log_of(addr, &job["id"]));
    for node in &cluster.nodes {
        assert!(!node.log_text().contains(VALUE), "the value is in the log of {}", node.name);
    }
}
