//! Hostile input end to end: garbage datagrams on the gossip port and malformed bodies on
//! every POST endpoint of a live cluster. Every bad request gets a 4xx answer (a 413 for
//! a body over the limit), is logged, and the cluster keeps testing commits.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use eventide_tests::http::post_raw;
use eventide_tests::repo::GitRepo;
use eventide_tests::{wait_for_final_jobs, wait_until, Cluster, Node, Options, DEADLINE};

const CODEC: &str = "application/x-eventide-codec";
const JSON: &str = "application/json";
/// Internal bodies: the codec's message limit; public bodies: 1 MiB.
const INTERNAL_LIMIT: usize = 8 * 1024 * 1024;
const PUBLIC_LIMIT: usize = 1024 * 1024;

/// A small deterministic generator (xorshift64*), so that a failure can be replayed.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

/// Receives a few real gossip datagrams: every node also gossips to `trap`, a seed that
/// never answers.
fn capture_gossip(trap: &UdpSocket) -> Vec<Vec<u8>> {
    trap.set_read_timeout(Some(Duration::from_millis(200))).expect("timeout");
    let mut samples = Vec::new();
    let mut buffer = vec![0u8; 65_536];
    let deadline = Instant::now() + Duration::from_secs(10);
    while samples.len() < 16 && Instant::now() < deadline {
        if let Ok((len, _)) = trap.recv_from(&mut buffer) {
            samples.push(buffer[..len].to_vec());
        }
    }
    samples
}

fn send_garbage_datagrams(to: SocketAddr, samples: &[Vec<u8>], random: &mut Random) {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
    for n in 0..10_000 {
        let datagram = if samples.is_empty() || n % 3 == 0 {
            let len = random.below(2049);
            random.bytes(len)
        } else {
            let mut packet = samples[random.below(samples.len())].clone();
            if n % 2 == 0 {
                packet.truncate(random.below(packet.len() + 1));
            } else {
                for _ in 0..=random.below(8) {
                    let bit = random.below(packet.len().max(1) * 8);
                    if let Some(byte) = packet.get_mut(bit / 8) {
                        *byte ^= 1 << (bit % 8);
                    }
                }
            }
            packet
        };
        // A full socket buffer drops datagrams, as the network would.
        let _ = socket.send_to(&datagram, to);
    }
}

/// Posts `body` and returns the status; a dropped connection fails the test.
fn post(node: &Node, path: &str, content_type: &str, body: &[u8]) -> u16 {
    let (status, text) = post_raw(node.addr, path, content_type, body)
        .unwrap_or_else(|e| panic!("{} {path}: no answer to {} bytes: {e}", node.name, body.len()));
    assert!(status < 500, "{} {path}: {status} for bad input: {text}", node.name);
    status
}

fn assert_refused(node: &Node, path: &str, content_type: &str, body: &[u8], what: &str) {
    let status = post(node, path, content_type, body);
    assert!((400..500).contains(&status), "{} {path} answered {status} to {what}", node.name);
}

fn hostile_bodies(random: &mut Random) -> Vec<(&'static str, &'static str, Vec<u8>)> {
    let mut garbage = random.bytes(300);
    garbage[0] = 0xab; // not a format version
    let mut truncated = vec![1u8, 0, 20];
    truncated.extend_from_slice(b"file:///");
    let mut oversized_prefix = vec![1u8, 0, 0xfd];
    oversized_prefix.extend_from_slice(&(1u64 << 60).to_le_bytes());
    vec![
        ("garbage", CODEC, garbage.clone()),
        ("garbage as json", JSON, garbage),
        ("truncated bincode", CODEC, truncated),
        ("a length prefix of 2^60", CODEC, oversized_prefix),
        ("a wrong version byte", CODEC, vec![9, 0, 3, b'a', b'b', b'c', 1]),
        ("empty", CODEC, Vec::new()),
        ("bad json", JSON, b"{\"url\": ".to_vec()),
        ("json of the wrong shape", JSON, b"[1, 2, 3]".to_vec()),
        ("json as text/plain", "text/plain", b"{\"url\": \"/tmp/x\"}".to_vec()),
        ("no content type", "", b"{}".to_vec()),
    ]
}

#[test]
fn garbage_datagrams_and_malformed_bodies_are_refused_and_the_cluster_keeps_working() {
    let repo = GitRepo::new();
    repo.configure("echo Ran 1 test; echo OK", "");
    repo.commit("first");
    let trap = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let mut options = Options::watching(repo.url());
    options.extra.extend(["--seed".into(), trap.local_addr().expect("addr").to_string()]);
    let cluster = Cluster::start(3, options);
    let leader = cluster.wait_for_agreed_leader();
    wait_for_final_jobs(&cluster, leader, 1, DEADLINE);
    let mut random = Random(0x5eed_1234_abcd_0001);
    let ids: Vec<String> =
        cluster.nodes.iter().map(|node| wait_until("a node id", DEADLINE, || node.id())).collect();

    // Gossip: 10,000 datagrams of noise and damaged real packets to n1. A damaged packet
    // can describe nodes that do not exist (gossip is unauthenticated without a cluster
    // secret, and only ever a hint); the real ones must stay alive.
    let samples = capture_gossip(&trap);
    assert!(!samples.is_empty(), "the nodes gossip to every seed");
    send_garbage_datagrams(cluster.nodes[0].addr, &samples, &mut random);
    wait_until("n1 to see the three nodes alive after the noise", DEADLINE, || {
        let status = cluster.nodes[0].status()?;
        let alive: Vec<&str> = status["nodes"]
            .as_array()?
            .iter()
            .filter(|n| n["alive"] == true)
            .filter_map(|n| n["id"].as_str())
            .collect();
        ids.iter().all(|id| alive.contains(&id.as_str())).then_some(())
    });

    // HTTP: every POST endpoint of every node.
    let internal = [
        "/internal/raft/append",
        "/internal/raft/vote",
        "/internal/raft/snapshot",
        "/internal/raft/write",
        "/internal/dispatch/claim",
        "/internal/dispatch/finish-and-claim",
        "/internal/dispatch/renew",
    ];
    let public_json = ["/api/v1/repos", "/api/v1/rerun"];
    for node in &cluster.nodes {
        for (what, content_type, body) in hostile_bodies(&mut random) {
            for path in internal {
                let status = post(node, path, content_type, &body);
                assert_eq!(status, 400, "{} {path} answered {status} to {what}", node.name);
            }
            for path in public_json {
                assert_refused(node, path, content_type, &body, what);
            }
            // These take no body: whatever is sent is ignored, never a 5xx.
            assert_refused(node, "/api/v1/jobs/999999/cancel", content_type, &body, what);
            assert_refused(node, "/api/v1/jobs/not-a-number/cancel", content_type, &body, what);
            post(node, "/api/v1/notify", content_type, &body);
        }
        let huge = vec![b'x'; INTERNAL_LIMIT + 2];
        for path in internal {
            let status = post(node, path, CODEC, &huge);
            assert_eq!(status, 413, "{} {path}: {status} for a body over the limit", node.name);
        }
        let big = vec![b' '; PUBLIC_LIMIT + 2];
        for path in public_json {
            let status = post(node, path, JSON, &big);
            assert_eq!(status, 413, "{} {path}: {status} for a body over the limit", node.name);
        }
    }

    // Every refusal left a line, and nothing panicked.
    for node in &cluster.nodes {
        let log = node.log_text();
        for line in [
            "refused malformed raft rpc",
            "refused malformed dispatcher rpc",
            "refused malformed request",
        ] {
            assert!(log.contains(line), "{} logs {line:?}", node.name);
        }
        assert!(!log.contains("panicked"), "{} panicked", node.name);
        assert!(node.status().is_some(), "{} still answers", node.name);
    }

    // The cluster still tests commits: one new commit, exactly one passed result.
    let second = repo.commit("second");
    cluster.nodes[leader].notify();
    let jobs = wait_for_final_jobs(&cluster, leader, 2, DEADLINE);
    let results: Vec<_> = jobs.iter().filter(|j| j["commit"] == second.as_str()).collect();
    assert_eq!(results.len(), 1, "one job for the new commit: {jobs:#?}");
    assert_eq!(results[0]["state"], "passed", "{}", results[0]);
}
