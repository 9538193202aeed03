//! Hostile internal RPC end to end (issue 10): bodies that decode into something no
//! correct peer sends, and a relayed gossip admission handshake.
//!
//! - Without a secret, a `Batch` nested a million levels deep (2 MB) posted to
//!   `/internal/raft/write`, or carried by an append-entries entry, is refused with 400
//!   instead of overflowing the stack; so are Raft RPCs with a term of `u64::MAX`, log
//!   indexes near `u64::MAX`, entries that do not follow `prev_log_id`, snapshot
//!   chunks far beyond what was sent, and final snapshot chunks under the leader's vote
//!   whose snapshot does not decode (the store failed to install it, which stopped Raft
//!   on the node for good). The nodes stay up, every node's Raft keeps applying, and the
//!   cluster keeps testing commits.
//! - With a secret, an outsider that captures a node's own signed admission request and
//!   relays it (back to that node, or to another node) gets no proof to answer with: the
//!   request is bound to the address it was sent to, so the outsider is not admitted.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use eventide_consensus::codec;
use eventide_consensus::network::{APPEND_PATH, SNAPSHOT_PATH, VOTE_PATH, WRITE_PATH};
use eventide_consensus::types::{
    AppendEntriesRequest, Entry, EntryPayload, InstallSnapshotRequest, LogId, SnapshotMeta, Vote,
    VoteRequest,
};
use eventide_consensus::{Command, NodeId};
use eventide_tests::http::post_raw;
use eventide_tests::repo::GitRepo;
use eventide_tests::{wait_for_final_jobs, wait_until, Cluster, Node, Options, DEADLINE};
use serde_json::Value;

const CODEC: &str = "application/x-eventide-codec";
const SECRET: &str = "a cluster secret for the relay test";

/// The codec bytes of a `Command::Batch` nested `levels` deep: per level the variant
/// index of `Batch` (9) and a length of 1, innermost an empty batch.
fn nested_batch(levels: usize) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(1 + 2 * levels + 2);
    bytes.push(codec::FORMAT_V1);
    for _ in 0..levels {
        bytes.extend_from_slice(&[9, 1]);
    }
    bytes.extend_from_slice(&[9, 0]);
    bytes
}

/// A node id no node of the cluster has.
const STRANGER: NodeId = NodeId(0x5eed_0000_0000_0076);

fn log_id(term: u64, index: u64) -> LogId {
    LogId::new(*Vote::new_committed(term, STRANGER).leader_id(), index)
}

fn append(vote: Vote, prev_log_id: Option<LogId>, entries: Vec<Entry>) -> AppendEntriesRequest {
    AppendEntriesRequest { vote, prev_log_id, entries, leader_commit: None }
}

fn entry(log_id: LogId, command: Command) -> Entry {
    Entry { log_id, payload: EntryPayload::Normal(command) }
}

fn snapshot_chunk(vote: Vote, offset: u64, data: &[u8]) -> InstallSnapshotRequest {
    let meta = SnapshotMeta { snapshot_id: "t76-hostile".into(), ..SnapshotMeta::default() };
    InstallSnapshotRequest { vote, meta, offset, data: data.to_vec(), done: false }
}

/// The final chunk of snapshot `id`, whose data is no snapshot.
fn forged_final_chunk(vote: Vote, id: &str, offset: u64) -> InstallSnapshotRequest {
    let meta = SnapshotMeta { snapshot_id: id.into(), ..SnapshotMeta::default() };
    InstallSnapshotRequest { vote, meta, offset, data: b"not a snapshot".to_vec(), done: true }
}

fn applied_index(node: &Node) -> Option<u64> {
    node.status()?["applied_index"].as_u64()
}

/// Posts a codec body; the node must answer (a dropped connection is a dead node).
fn post(node: &Node, path: &str, body: &[u8]) -> (u16, String) {
    let answer = post_raw(node.addr, path, CODEC, body);
    answer
        .unwrap_or_else(|e| panic!("{} {path}: no answer to {} bytes: {e}", node.name, body.len()))
}

fn assert_400(node: &Node, path: &str, body: &[u8], what: &str) {
    let (status, text) = post(node, path, body);
    assert_eq!(status, 400, "{} {path} answered {status} to {what}: {text}", node.name);
}

/// The leader's vote as its followers hold it: (term, leader id), committed.
fn leader_vote(cluster: &Cluster, leader: usize) -> Vote {
    let status = cluster.nodes[leader].status().expect("the leader answers");
    let term = status["term"].as_u64().expect("a term");
    let id = status["node"]["id"].as_str().and_then(|id| id.parse().ok()).expect("an id");
    Vote::new_committed(term, NodeId(id))
}

#[test]
fn nested_batches_and_implausible_raft_rpcs_are_refused_and_the_cluster_keeps_working() {
    let repo = GitRepo::new();
    repo.configure("echo Ran 1 test; echo OK", "");
    repo.commit("first");
    let cluster = Cluster::start(3, Options::watching(repo.url()));
    let leader = cluster.wait_for_agreed_leader();
    wait_for_final_jobs(&cluster, leader, 1, DEADLINE);
    let follower = &cluster.nodes[(leader + 1) % 3];

    // A million levels of Batch (2 MB, under the 8 MiB body limit) to the write route
    // of the leader and of a follower: refused while decoding.
    let deep = nested_batch(1_000_000);
    assert!(deep.len() < 8 * 1024 * 1024);
    let shallow = codec::encode(&Command::Batch(vec![Command::Batch(Vec::new())])).expect("encode");
    assert_eq!(shallow, nested_batch(1), "the hand-made encoding is the codec's");
    for node in [&cluster.nodes[leader], follower] {
        assert_400(node, WRITE_PATH, &deep, "a batch nested a million levels deep");
        assert_400(node, WRITE_PATH, &shallow, "a batch inside a batch");
    }
    // The same inside an append-entries entry. The encoding of a request whose only
    // entry is an empty batch ends with the batch (variant 9, length 0) and an absent
    // `leader_commit` (0); the deep batch takes the empty one's place.
    let stale = Vote::new_committed(1, STRANGER);
    let carrier = append(stale, None, vec![entry(log_id(1, 0), Command::Batch(Vec::new()))]);
    let mut deep_append = codec::encode(&carrier).expect("encode");
    assert_eq!(deep_append[deep_append.len() - 3..], [9, 0, 0]);
    deep_append.truncate(deep_append.len() - 3);
    deep_append.extend_from_slice(&nested_batch(1_000_000)[1..]);
    deep_append.push(0);
    assert_400(follower, APPEND_PATH, &deep_append, "an entry nested a million levels deep");

    // Terms and indexes no correct peer sends.
    let overflow = Vote::new_committed(u64::MAX, STRANGER);
    let body =
        codec::encode(&VoteRequest::new(Vote::new(u64::MAX, STRANGER), None)).expect("encode");
    assert_400(follower, VOTE_PATH, &body, "a vote for term u64::MAX");
    let body = codec::encode(&append(overflow, None, Vec::new())).expect("encode");
    assert_400(follower, APPEND_PATH, &body, "an append at term u64::MAX");
    let body =
        codec::encode(&append(stale, Some(log_id(1, u64::MAX)), Vec::new())).expect("encode");
    assert_400(follower, APPEND_PATH, &body, "a previous log index of u64::MAX");
    let gap = vec![entry(log_id(1, 7), Command::Batch(Vec::new()))];
    let body = codec::encode(&append(stale, Some(log_id(1, 3)), gap)).expect("encode");
    assert_400(follower, APPEND_PATH, &body, "an entry that does not follow prev_log_id");

    // Snapshot chunks: a first chunk under the leader's own vote is taken (as the start
    // of a stream nobody finishes); one at 2^40 made the node try to allocate 1 TiB.
    let vote = leader_vote(&cluster, leader);
    let body = codec::encode(&snapshot_chunk(vote, 0, b"x")).expect("encode");
    let (status, text) = post(follower, SNAPSHOT_PATH, &body);
    assert_eq!(status, 200, "a first snapshot chunk: {text}");
    for (offset, what) in [
        (1u64 << 40, "a snapshot chunk at 2^40"),
        (u64::MAX - 1, "a snapshot chunk whose end overflows"),
        (512 << 20, "a snapshot chunk 512 MiB past what was sent"),
    ] {
        let body = codec::encode(&snapshot_chunk(vote, offset, b"xy")).expect("encode");
        assert_400(follower, SNAPSHOT_PATH, &body, what);
    }
    // A final chunk whose snapshot does not decode, alone or ending the stream taken
    // above: the store failed to install it, and Raft stopped on the follower for good.
    for (request, what) in [
        (forged_final_chunk(vote, "t76-forged", 0), "a final chunk of garbage"),
        (forged_final_chunk(vote, "t76-hostile", 1), "a stream ended with garbage"),
    ] {
        let body = codec::encode(&request).expect("encode");
        assert_400(follower, SNAPSHOT_PATH, &body, what);
    }

    // Every refusal left a line; every node is up and the cluster still tests commits.
    let log = follower.log_text();
    for line in ["refused malformed raft rpc", "refused implausible raft rpc"] {
        assert!(log.contains(line), "{} logs {line:?}", follower.name);
    }
    for node in &cluster.nodes {
        assert!(!node.log_text().contains("panicked"), "{} panicked", node.name);
        assert!(node.status().is_some(), "{} still answers", node.name);
    }
    let second = repo.commit("second");
    let leader = cluster.wait_for_agreed_leader();
    cluster.nodes[leader].notify();
    let jobs = wait_for_final_jobs(&cluster, leader, 2, DEADLINE);
    let results: Vec<&Value> = jobs.iter().filter(|j| j["commit"] == second.as_str()).collect();
    assert_eq!(results.len(), 1, "one job for the new commit: {jobs:#?}");
    assert_eq!(results[0]["state"], "passed", "{}", results[0]);
    // Raft runs on every node: each applies what the leader has applied by now.
    let applied = applied_index(&cluster.nodes[leader]).expect("the leader answers");
    for node in &cluster.nodes {
        wait_until(&format!("{} to apply index {applied}", node.name), DEADLINE, || {
            applied_index(node).filter(|&index| index >= applied)
        });
    }
}

/// One HTTP/1.1 request as a server reads it.
struct Captured {
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn read_request(stream: &mut TcpStream) -> Captured {
    stream.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    let mut data = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break at;
        }
        let n = stream.read(&mut chunk).expect("read the request");
        assert!(n > 0, "the connection closed before the request's head");
        data.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&data[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let path = lines.next().and_then(|l| l.split_whitespace().nth(1)).expect("a path").to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(name, _)| name == "content-length")
        .and_then(|(_, value)| value.parse().ok())
        .expect("a content length");
    let mut body = data[head_end + 4..].to_vec();
    while body.len() < length {
        let n = stream.read(&mut chunk).expect("read the body");
        assert!(n > 0, "the connection closed inside the body");
        body.extend_from_slice(&chunk[..n]);
    }
    Captured { path, headers, body }
}

/// Sends `request` as it was captured (signature headers included) to `addr`; returns
/// the status and the raw body of the answer.
fn relay(addr: SocketAddr, request: &Captured) -> (u16, Vec<u8>) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    let mut head =
        format!("POST {} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n", request.path);
    for (name, value) in &request.headers {
        if name.starts_with("x-eventide-") || name == "content-type" {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", request.body.len()));
    stream.write_all(head.as_bytes()).expect("write the head");
    stream.write_all(&request.body).expect("write the body");
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let head_end = response.windows(4).position(|w| w == b"\r\n\r\n").expect("an answer");
    let head = String::from_utf8_lossy(&response[..head_end]);
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).expect("a status");
    (status, response[head_end + 4..].to_vec())
}

fn answer(stream: &mut TcpStream, status: u16, body: &[u8]) {
    let head = format!(
        "HTTP/1.1 {status} Relayed\r\nContent-Type: {CODEC}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(body);
}

/// The smallest well-formed chitchat datagram (magic number 45139, protocol version 0,
/// message `BadCluster`): only datagrams that parse reach the admission gate.
const CHITCHAT_BAD_CLUSTER: [u8; 4] = [0x53, 0xb0, 0, 3];

/// A TCP listener and a UDP socket on one loopback port, as a node has.
fn hostile_peer() -> (TcpListener, UdpSocket) {
    for _ in 0..100 {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind tcp");
        let addr = listener.local_addr().expect("addr");
        if let Ok(socket) = UdpSocket::bind(addr) {
            return (listener, socket);
        }
    }
    panic!("no loopback port free for both tcp and udp");
}

#[test]
fn a_relayed_admission_handshake_does_not_admit_an_outsider() {
    let options = Options { secret: Some(SECRET.to_owned()), ..Options::default() };
    let cluster = Cluster::start(3, options);
    cluster.wait_for_agreed_leader();
    let (target, other) = (&cluster.nodes[0], &cluster.nodes[1]);

    // The outsider's datagram makes the target ask it, over TCP, to prove the secret.
    let (listener, socket) = hostile_peer();
    let outsider = listener.local_addr().expect("addr");
    listener.set_nonblocking(true).expect("nonblocking");
    socket.send_to(&CHITCHAT_BAD_CLUSTER, target.addr).expect("send a datagram");
    let (mut asked, _) =
        wait_until("the target's admission handshake", DEADLINE, || listener.accept().ok());
    asked.set_nonblocking(false).expect("blocking");
    let request = read_request(&mut asked);

    // The outsider cannot answer the challenge; it relays the target's own signed request
    // back to the target and to another node, and passes an answer on.
    let (to_target, proof) = relay(target.addr, &request);
    let (to_other, _) = relay(other.addr, &request);
    answer(&mut asked, to_target, &proof);
    drop(asked);

    // The target tells how its handshake with the outsider ended.
    let peer = format!("peer={outsider}");
    let outcome = wait_until("the handshake's outcome in the target's log", DEADLINE, || {
        target.log_text().lines().filter(|line| line.contains(&peer)).find_map(|line| {
            if line.contains("proved the cluster secret") {
                Some(true)
            } else if line.contains("failed the admission handshake") {
                Some(false)
            } else {
                None
            }
        })
    });
    assert!(!outcome, "{} admitted the outsider {outsider}", target.name);
    assert!((400..500).contains(&to_target), "the relay to the target was answered {to_target}");
    assert!((400..500).contains(&to_other), "the relay to another node was answered {to_other}");
    for node in [target, other] {
        assert!(
            node.log_text().contains("refused a relayed admission request"),
            "{} logs it",
            node.name
        );
    }

    // The nodes of the cluster still admit each other: all three alive in gossip.
    let deadline = Instant::now() + DEADLINE;
    wait_until("three live nodes", deadline - Instant::now(), || {
        let status = target.status()?;
        let alive = status["nodes"].as_array()?.iter().filter(|n| n["alive"] == true).count();
        (alive == 3).then_some(())
    });
}
