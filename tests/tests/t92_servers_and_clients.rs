//! Servers and clients: in a cluster of fifteen, only three voters and two standbys are
//! Raft members; every other node is a client that runs jobs and answers the whole API
//! by asking a server. Killing the leader, then a voter, promotes the standbys; killing
//! a client's runner mid-job runs the job again on another client; a node started with
//! `--server-eligible false` never becomes a member. Once on loopback, once with every
//! node in a network namespace of its own (root only, as the chaos test).

use std::collections::BTreeMap;
use std::net::{SocketAddr, SocketAddrV4};
use std::time::Duration;

use eventide_tests::netns::Network;
use eventide_tests::repo::GitRepo;
use eventide_tests::{cli, http, prometheus, wait_until, Cluster, Options, DEADLINE};
use serde_json::Value;

/// Nodes with no runner (servers or clients, as autopilot decides).
const PLAIN: usize = 13;
/// Then two clients that run every job: they may not be servers.
const RUNNERS: [usize; 2] = [13, 14];

/// Each node's role by id, as `status` on `node` shows it, if it has a leader.
fn roles(cluster: &Cluster, node: usize) -> Option<BTreeMap<String, String>> {
    let status = cluster.nodes[node].status()?;
    status["leader"].as_object()?;
    let nodes = status["nodes"].as_array()?;
    Some(
        nodes
            .iter()
            .filter(|n| n["alive"] == true)
            .map(|n| {
                (
                    n["id"].as_str().unwrap_or("").to_owned(),
                    n["role"].as_str().unwrap_or("").to_owned(),
                )
            })
            .collect(),
    )
}

/// Prints `shape` when it differs from the last one printed (seen on failure).
fn note(last: &mut Option<BTreeMap<String, String>>, shape: &BTreeMap<String, String>) {
    if last.as_ref() != Some(shape) {
        eprintln!("roles: {shape:?}");
        *last = Some(shape.clone());
    }
}

fn count(roles: &BTreeMap<String, String>, role: &str) -> usize {
    roles.values().filter(|r| *r == role).count()
}

/// The settled shape: one leader, two voters, two standbys, the rest clients, the two
/// runner nodes among the clients.
fn settled(roles: &BTreeMap<String, String>, alive: usize, runner_ids: &[String]) -> bool {
    roles.len() == alive
        && count(roles, "leader") == 1
        && count(roles, "voter") == 2
        && count(roles, "standby") == 2
        && count(roles, "client") == alive - 5
        && runner_ids.iter().all(|id| roles.get(id).is_some_and(|r| r == "client"))
}

fn assert_runners_are_clients(roles: &BTreeMap<String, String>, runner_ids: &[String]) {
    for id in runner_ids {
        if let Some(role) = roles.get(id) {
            assert_eq!(role, "client", "a node with --server-eligible false became a {role}");
        }
    }
    let servers = roles.len() - count(roles, "client");
    assert!(servers <= 5, "more live servers than 3 voters and 2 standbys: {roles:?}");
}

#[test]
fn fifteen_nodes_have_five_servers_and_clients_that_serve_the_whole_api() {
    servers_and_clients(|options| Cluster::start(PLAIN + RUNNERS.len(), options));
}

/// The same with each node in its own network namespace, at its own address on a
/// bridge: nothing relies on every node sharing 127.0.0.1. Needs root, as the chaos test.
#[test]
fn fifteen_nodes_in_their_own_network_namespaces_do_the_same() {
    let network = Network::create(PLAIN + RUNNERS.len());
    let addrs: Vec<SocketAddr> = network
        .hosts
        .iter()
        .map(|host| SocketAddr::V4(SocketAddrV4::new(host.addr, 7800)))
        .collect();
    let launchers = (0..addrs.len()).map(|i| network.launcher(i)).collect();
    servers_and_clients(|options| Cluster::start_at(&addrs, launchers, options));
}

/// Fifteen nodes, thirteen without a runner and two clients that run every job, started
/// by `start`: roles, a client's answers, a killed client runner, a killed leader and
/// voter, and a commit tested after all that.
fn servers_and_clients(start: impl FnOnce(Options) -> Cluster) {
    let repo = GitRepo::new();
    repo.configure("echo started; sleep 3; echo done", "");
    let first = repo.commit("slow test");
    let mut options = Options::watching(repo.url());
    options.extra.extend(["--dead-voter-grace".into(), "2s".into()]);
    options.per_node = vec![vec!["--runner-slots".into(), "0".into()]; PLAIN];
    for _ in RUNNERS {
        options.per_node.push(vec!["--server-eligible".into(), "false".into()]);
    }
    let mut cluster = start(options);
    cluster.learn_ids();
    // The nodes were just spawned: a runner answers once it listens.
    let runner_ids: Vec<String> = RUNNERS
        .iter()
        .map(|&i| wait_until("the runner's id", DEADLINE, || cluster.nodes[i].id()))
        .collect();

    // Every node, client or server, settles on the same five servers.
    let leader = cluster.wait_for_agreed_leader();
    let shape = wait_until("3 voters, 2 standbys and 10 clients", Duration::from_secs(60), || {
        let shapes: Vec<BTreeMap<String, String>> =
            cluster.running().map(|i| roles(&cluster, i)).collect::<Option<_>>()?;
        let first = shapes.first()?.clone();
        for shape in &shapes {
            assert_runners_are_clients(shape, &runner_ids);
        }
        (shapes.iter().all(|s| *s == first) && settled(&first, 15, &runner_ids)).then_some(first)
    });
    let client = RUNNERS[0];

    // A client answers from a server and says which.
    let status = cluster.nodes[client].status().expect("a client answers status");
    assert_eq!(status["node"]["id"], runner_ids[0].as_str());
    let served_by = status["served_by"]["id"].as_str().expect("served_by").to_owned();
    assert_ne!(shape[&served_by], "client", "status served by a client: {status}");
    let (code, headers, _) = http::get_with_headers(cluster.nodes[client].addr, "/api/v1/jobs")
        .expect("a client answers jobs");
    assert_eq!(code, 200);
    let served = headers.iter().find(|(name, _)| name == "x-eventide-served-by").map(|(_, v)| v);
    let served = served.expect("the answer names its server");
    assert_ne!(shape[served.as_str()], "client", "jobs served by a client");
    let (code, page) = http::get(cluster.nodes[client].addr, "/").expect("dashboard");
    assert_eq!(code, 200);
    assert!(page.contains("<html") || page.contains("<!doctype"), "{page}");

    // The job runs on a client runner; killing it mid-job runs it on the other client.
    let job = wait_until("the first job to run on a client", DEADLINE, || {
        let jobs = cluster.nodes[leader].jobs("")?;
        jobs.into_iter().find(|j| j["commit"] == first.as_str() && j["state"] == "running")
    });
    let id = job["id"].as_u64().expect("id");
    let victim = cluster.index_of(job["runner"].as_str().expect("runner")).expect("runner runs");
    assert!(RUNNERS.contains(&victim), "the job ran on a node without runner slots");
    let other = RUNNERS.into_iter().find(|&r| r != victim).expect("the other runner");
    let log = wait_until("the running job's log through a client", DEADLINE, || {
        let (code, text) =
            http::get(cluster.nodes[other].addr, &format!("/api/v1/jobs/{id}/log")).ok()?;
        (code == 200 && text.contains("started")).then_some(text)
    });
    assert!(log.contains("started"), "{log}");
    // A node's busy count is the replica's (not gossiped): its running job, through a client.
    let runner_of = job["runner"].as_str().expect("runner").to_owned();
    wait_until("the runner's busy count through the other client", DEADLINE, || {
        let doc = cluster.nodes[other].status()?;
        let busy = |id: &str| {
            let nodes = doc["nodes"].as_array()?;
            nodes.iter().find(|n| n["id"] == id).map(|n| n["busy"].as_u64())
        };
        let idle = runner_ids.iter().find(|id| **id != runner_of).expect("the other runner");
        (busy(&runner_of)?? == 1 && busy(idle)?? == 0).then_some(())
    });
    cluster.kill(victim);
    let job = wait_until("the job to pass on the other client", Duration::from_secs(60), || {
        let (code, body) =
            http::get(cluster.nodes[other].addr, &format!("/api/v1/jobs/{id}")).ok()?;
        let job: Value = serde_json::from_str(&body).ok()?;
        (code == 200 && job["state"] == "passed").then_some(job)
    });
    assert_eq!(job["attempt"], 2, "{job}");
    let survivor =
        vec![runner_ids[RUNNERS.iter().position(|&r| r == other).expect("index")].clone()];
    assert_eq!(job["runner"], survivor[0].as_str());
    let (code, log) =
        http::get(cluster.nodes[other].addr, &format!("/api/v1/jobs/{id}/log")).expect("log");
    assert_eq!(code, 200);
    assert!(log.contains("done"), "the finished log through a client: {log}");
    let node = cluster.nodes[other].addr.to_string();
    let results = cli(&["results", "--node", &node, "--json"]);
    assert!(results.status.success(), "{}", String::from_utf8_lossy(&results.stderr));
    let results: Vec<Value> = serde_json::from_slice(&results.stdout).expect("results --json");
    assert!(results.iter().any(|j| j["id"] == id && j["state"] == "passed"), "{results:?}");
    let printed = cli(&["log", &id.to_string(), "--node", &node]);
    assert!(String::from_utf8_lossy(&printed.stdout).contains("done"), "log through a client");
    let status = cli(&["status", "--node", &node]);
    let status = String::from_utf8_lossy(&status.stdout).into_owned();
    assert!(status.contains("is a client") && status.contains("2 standby"), "{status}");

    // A client starts its own gossip rounds at the client pace (one every 2 s, where a
    // server starts one every 200 ms tick); once settled, its gossip ticks at that pace
    // too, in a new chitchat instance that peers keep seeing as the same live node.
    let rounds = |index: usize| gossip_rounds(&cluster, index);
    wait_until("the client's gossip to tick every 2 s", DEADLINE, || {
        rounds(other).filter(|&(_, _, tick)| tick == 2.0)
    });
    let before = (rounds(other).expect("client rounds"), rounds(leader).expect("leader rounds"));
    let after = wait_until("25 rounds of the leader", DEADLINE, || {
        let leader_now = rounds(leader).filter(|now| now.0 >= before.1 .0 + 25.0)?;
        Some((rounds(other)?, leader_now))
    });
    let client_started = after.0 .0 - before.0 .0;
    let leader_started = after.1 .0 - before.1 .0;
    assert!(
        client_started * 3.0 <= leader_started,
        "the client started {client_started} rounds while the leader started {leader_started}"
    );
    assert_eq!(after.1 .1, 0.0, "the leader held back rounds: {:?}", after.1);
    assert_eq!(after.1 .2, 0.2, "the leader's gossip ticks every {} s", after.1 .2);
    // Every server still sees the client alive, in one incarnation.
    wait_until("every server to see the client alive", DEADLINE, || {
        let status = cluster.nodes[leader].status()?;
        let nodes = status["nodes"].as_array()?;
        let entries: Vec<_> = nodes.iter().filter(|n| n["id"] == survivor[0].as_str()).collect();
        (entries.len() == 1 && entries[0]["alive"] == true).then_some(())
    });

    // Kill the leader: a voter takes over and a standby replaces the dead voter; then
    // kill a voter: the other standby replaces it. Clients keep answering throughout.
    let leader_id = cluster.nodes[leader].id().expect("leader answers");
    let standbys: Vec<String> =
        shape.iter().filter(|(_, r)| *r == "standby").map(|(id, _)| id.clone()).collect();
    cluster.kill(leader);
    let mut last = None;
    let after = wait_until("a new leader and a standby promoted", Duration::from_secs(60), || {
        let shape = roles(&cluster, other)?;
        note(&mut last, &shape);
        assert_runners_are_clients(&shape, &survivor);
        let promoted =
            standbys.iter().any(|id| shape.get(id).is_some_and(|r| r == "voter" || r == "leader"));
        (!shape.contains_key(&leader_id) && promoted && settled(&shape, 13, &survivor))
            .then_some(shape)
    });
    let voter_id =
        after.iter().find(|(_, r)| *r == "voter").map(|(id, _)| id.clone()).expect("a voter");
    cluster.kill(cluster.index_of(&voter_id).expect("the voter runs"));
    let last_shape = wait_until("the dead voter replaced", Duration::from_secs(60), || {
        let shape = roles(&cluster, other)?;
        note(&mut last, &shape);
        assert_runners_are_clients(&shape, &survivor);
        (!shape.contains_key(&voter_id) && settled(&shape, 12, &survivor)).then_some(shape)
    });
    // The standbys autopilot added were clients until now: their gossip ticks at the
    // servers' pace again.
    for (id, _) in last_shape.iter().filter(|(_, r)| *r == "standby") {
        let index = cluster.index_of(id).expect("the standby runs");
        wait_until("a new standby's gossip to tick every 200 ms", DEADLINE, || {
            gossip_rounds(&cluster, index).filter(|&(_, _, tick)| tick == 0.2)
        });
    }

    // The cluster still tests commits, and a client still reads the results.
    let second = repo.commit("after two servers died");
    cluster.nodes[other].notify();
    wait_until("the new commit to pass, read from a client", Duration::from_secs(60), || {
        let jobs = cluster.nodes[other].jobs("")?;
        jobs.into_iter().find(|j| j["commit"] == second.as_str() && j["state"] == "passed")
    });
}

/// A node's gossip rounds (started, held at the client pace) and how often it ticks.
fn gossip_rounds(cluster: &Cluster, index: usize) -> Option<(f64, f64, f64)> {
    let (code, text) = http::get(cluster.nodes[index].addr, "/metrics").ok()?;
    let metrics = prometheus::parse(&text).ok().filter(|_| code == 200)?;
    let count = |outcome| metrics.value("eventide_gossip_rounds_total", &[("outcome", outcome)]);
    let tick = metrics.value("eventide_gossip_tick_seconds", &[])?;
    Some((count("started")?, count("held")?, tick))
}
