//! A runner lost in the middle of a job: the job runs again elsewhere, and a late result
//! from the lost runner is refused, so exactly one final result stands. A runner whose
//! leader is of a version that takes no result with a claim reports its results apart.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use eventide_tests::repo::GitRepo;
use eventide_tests::{free_addr, wait_for_final_jobs, wait_until, Cluster, Options, DEADLINE};
use serde_json::Value;

fn pipeline(repo: &GitRepo) -> Cluster {
    Cluster::start(3, Options::watching(repo.url()))
}

/// Waits until the only job is running; returns its id and its runner's node index.
fn running_job(cluster: &Cluster, observer: usize) -> (u64, usize) {
    cluster.learn_ids();
    let job = wait_until("the job to start running", DEADLINE, || {
        let jobs = cluster.nodes[observer].jobs("")?;
        jobs.into_iter().find(|j| j["state"] == "running")
    });
    let runner = job["runner"].as_str().expect("a running job has a runner");
    let index = cluster.index_by_id(runner).expect("the runner is one of the nodes");
    (job["id"].as_u64().expect("id"), index)
}

fn job_detail(cluster: &Cluster, node: usize, id: u64) -> Option<Value> {
    let (code, body) =
        eventide_tests::http::get(cluster.nodes[node].addr, &format!("/api/v1/jobs/{id}")).ok()?;
    (code == 200).then(|| serde_json::from_str(&body).ok()).flatten()
}

#[test]
fn a_killed_runner_s_job_runs_again_elsewhere_and_passes() {
    let repo = GitRepo::new();
    repo.configure("sleep 3; echo done", "");
    repo.commit("slow test");
    let mut cluster = pipeline(&repo);
    let leader = cluster.wait_for_agreed_leader();
    let (id, runner) = running_job(&cluster, leader);
    let runner_id = cluster.nodes[runner].id().expect("runner answers");

    cluster.kill(runner);
    let survivor = (runner + 1) % 3;
    let job = wait_until("the job to pass on another runner", Duration::from_secs(60), || {
        let job = job_detail(&cluster, survivor, id)?;
        (job["state"] == "passed").then_some(job)
    });
    assert_eq!(job["attempt"], 2, "{job}");
    assert_ne!(job["runner"], runner_id.as_str(), "{job}");
    let attempts = job["attempts"].as_array().expect("attempts");
    assert_eq!(attempts.len(), 2, "{job}");
    assert_eq!(attempts[0]["runner"], runner_id.as_str());
    assert!(attempts[0]["note"].as_str().is_some_and(|n| n.starts_with("requeued")), "{job}");
}

#[test]
fn a_stopped_runner_s_late_result_is_refused() {
    let repo = GitRepo::new();
    repo.configure("sleep 2; echo done", "");
    repo.commit("slow test");
    let cluster = pipeline(&repo);
    let leader = cluster.wait_for_agreed_leader();
    let (id, runner) = running_job(&cluster, leader);
    let runner_id = cluster.nodes[runner].id().expect("runner answers");

    // Freeze the runner's node past its lease: the job's own processes keep running.
    cluster.signal(runner, "STOP");
    let survivor = (runner + 1) % 3;
    let job = wait_until("the job to pass on another runner", Duration::from_secs(60), || {
        let job = job_detail(&cluster, survivor, id)?;
        (job["state"] == "passed" && job["attempt"] == 2).then_some(job)
    });
    assert_ne!(job["runner"], runner_id.as_str(), "{job}");

    // Wake it up: whatever it tries to report for attempt 1 must not change the result.
    cluster.signal(runner, "CONT");
    wait_until("the woken runner to give up its attempt", DEADLINE, || {
        let log = cluster.nodes[runner].log_text();
        (log.contains("result refused")
            || log.contains("result not reported")
            || log.contains("stopping job"))
        .then_some(())
    });
    let after = wait_until("the woken node's replica to catch up", DEADLINE, || {
        job_detail(&cluster, runner, id).filter(|job| job["state"] == "passed")
    });
    let final_job = job_detail(&cluster, survivor, id).expect("survivor answers");
    for job in [&after, &final_job] {
        assert_eq!(job["state"], "passed", "{job}");
        assert_eq!(job["attempt"], 2, "{job}");
        assert_eq!(job["runner"], final_job["runner"], "{job}");
        assert_eq!(job["finished_at"], final_job["finished_at"], "one final result: {job}");
    }
}

/// What a leader of a version before results went with claims answers: its router has no
/// such path.
const COMBINED_PATH: &str = "/internal/dispatch/finish-and-claim";

/// An HTTP proxy in front of a node that answers [`COMBINED_PATH`] with 404, as an older
/// leader does, and passes every other request on; it counts both.
struct OlderLeader {
    addr: SocketAddr,
    refused: Arc<AtomicUsize>,
    claims: Arc<AtomicUsize>,
}

impl OlderLeader {
    fn in_front_of(node: SocketAddr) -> OlderLeader {
        let server = tiny_http::Server::http("127.0.0.1:0").expect("bind the proxy");
        let addr = server.server_addr().to_ip().expect("an IP address");
        let (refused, claims) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let counts = (refused.clone(), claims.clone());
        std::thread::spawn(move || {
            let client = reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("a client");
            for request in server.incoming_requests() {
                let (client, (refused, claims)) = (client.clone(), counts.clone());
                // Claims are held for seconds: one thread each.
                std::thread::spawn(move || pass_on(request, node, &client, &refused, &claims));
            }
        });
        OlderLeader { addr, refused, claims }
    }
}

fn pass_on(
    mut request: tiny_http::Request,
    node: SocketAddr,
    client: &reqwest::blocking::Client,
    refused: &AtomicUsize,
    claims: &AtomicUsize,
) {
    let path = request.url().to_owned();
    if path == COMBINED_PATH {
        refused.fetch_add(1, Ordering::SeqCst);
        let _ = request.respond(tiny_http::Response::empty(404));
        return;
    }
    if path == "/internal/dispatch/claim" {
        claims.fetch_add(1, Ordering::SeqCst);
    }
    let mut body = Vec::new();
    if request.as_reader().read_to_end(&mut body).is_err() {
        return;
    }
    let method = reqwest::Method::from_bytes(request.method().as_str().as_bytes()).expect("method");
    let mut forwarded = client.request(method, format!("http://{node}{path}")).body(body);
    for header in request.headers() {
        let name = header.field.as_str().as_str();
        if !["host", "content-length", "connection", "transfer-encoding"]
            .contains(&name.to_ascii_lowercase().as_str())
        {
            forwarded = forwarded.header(name, header.value.as_str());
        }
    }
    let Ok(answer) = forwarded.send() else {
        let _ = request.respond(tiny_http::Response::empty(502));
        return;
    };
    let status = answer.status().as_u16();
    let content_type = answer.headers().get("content-type").cloned();
    let bytes = answer.bytes().unwrap_or_default().to_vec();
    let mut response = tiny_http::Response::from_data(bytes).with_status_code(status);
    if let Some(value) = content_type {
        let header = tiny_http::Header::from_bytes("content-type", value.as_bytes());
        response.add_header(header.expect("a header"));
    }
    let _ = request.respond(response);
}

#[test]
fn a_leader_that_takes_no_result_with_a_claim_gets_results_apart() {
    let repo = GitRepo::new();
    repo.configure("echo OK", "");
    let first = repo.commit("first");
    // One node, the leader and the runner: its runner finds its leader at the address it
    // advertises, which is the proxy's.
    let addr = free_addr();
    let older = OlderLeader::in_front_of(addr);
    let mut options = Options::watching(repo.url());
    options.bootstrap_expect = 1;
    options.extra.extend(["--advertise".to_owned(), older.addr.to_string()]);
    let cluster = Cluster::start_at(&[addr], vec![Vec::new()], options);
    let jobs = wait_for_final_jobs(&cluster, 0, 1, DEADLINE);
    let job = eventide_tests::job_for(&jobs, &first);
    assert_eq!(job["state"], "passed", "{job:#}");
    assert_eq!(older.refused.load(Ordering::SeqCst), 1, "the combined request was tried once");

    // The next result goes apart at once, and is recorded once.
    let second = repo.commit("second");
    cluster.nodes[0].notify();
    let jobs = wait_for_final_jobs(&cluster, 0, 2, DEADLINE);
    for commit in [&first, &second] {
        let job = eventide_tests::job_for(&jobs, commit);
        let detail = job_detail(&cluster, 0, job["id"].as_u64().expect("id")).expect("detail");
        assert_eq!(detail["state"], "passed", "{detail:#}");
        assert_eq!(detail["attempts"].as_array().map(Vec::len), Some(1), "{detail:#}");
    }
    assert_eq!(older.refused.load(Ordering::SeqCst), 1, "not asked again within a minute");
    assert!(older.claims.load(Ordering::SeqCst) >= 2, "claims went by the claim path");
    let log = cluster.nodes[0].log_text();
    assert!(log.contains("reporting results apart"), "the runner says why");
    assert!(!log.contains("result refused"), "no result was refused");
}
