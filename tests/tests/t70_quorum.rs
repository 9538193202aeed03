//! Losing a majority: no node claims a leader and no write is accepted; bringing a
//! voter back restores both.

use eventide_tests::{http, wait_until, Cluster, Options, DEADLINE};

fn write(cluster: &Cluster, index: usize, url: &str) -> (u16, String) {
    let body = format!("{{\"url\": \"{url}\"}}");
    http::post(cluster.nodes[index].addr, "/api/v1/repos", &body).expect("node answers")
}

#[test]
fn without_a_quorum_there_is_no_leader_and_no_write() {
    let mut cluster = Cluster::start(3, Options::default());
    let leader = cluster.wait_for_agreed_leader();
    let survivor = (leader + 1) % 3;
    let others: Vec<usize> = (0..3).filter(|&i| i != survivor).collect();
    for &index in &others {
        cluster.kill(index);
    }

    wait_until("the survivor to report no leader", DEADLINE, || {
        let status = cluster.nodes[survivor].status()?;
        status["leader"].is_null().then_some(())
    });
    let (code, body) = write(&cluster, survivor, "/srv/never-written");
    assert_eq!(code, 503, "a write without quorum must be refused: {body}");
    assert!(body.contains("error"), "{body}");
    let output =
        eventide_tests::cli(&["status", "--node", &cluster.nodes[survivor].addr.to_string()]);
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success());
    assert!(text.starts_with("leader:  none"), "{text}");

    cluster.restart(others[0]);
    cluster.wait_for_agreed_leader();
    let dir = tempfile::tempdir().expect("temp dir");
    let url = dir.path().display().to_string();
    let (code, body) = wait_until("a write to succeed again", DEADLINE, || {
        let (code, body) = write(&cluster, survivor, &url);
        (code == 201).then_some((code, body))
    });
    assert_eq!(code, 201, "{body}");
    let (_, repos) = http::get(cluster.nodes[survivor].addr, "/api/v1/repos").expect("get");
    assert!(!repos.contains("never-written"), "{repos}");
}
