//! The client tick: when a node moves to a slower chitchat instance, and that peers
//! see one live node throughout the move. And the leader a client looks up before each
//! claim and write: kept between looks, never past a change gossip brings.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use eventide_consensus::auth::Signer;
use eventide_consensus::network::RpcClient;
use eventide_consensus::NodeId;

use super::keys::Servers;
use super::{wanted_tick, Gossip, Member, RaftRole, SelfInfo, SLOW_AFTER};

const FAST: Duration = Duration::from_millis(50);
const SLOW: Duration = Duration::from_millis(250);

#[test]
fn a_client_ticks_slowly_only_once_it_has_settled() {
    let start = Instant::now();
    let mut since = None;
    let at = |secs: u64| start + Duration::from_secs(secs);
    assert_eq!(wanted_tick(false, &mut since, at(0), FAST, SLOW), FAST);
    assert_eq!(since, None);
    assert_eq!(wanted_tick(true, &mut since, at(1), FAST, SLOW), FAST, "just became a client");
    assert_eq!(since, Some(at(1)));
    assert_eq!(wanted_tick(true, &mut since, at(1) + SLOW_AFTER / 2, FAST, SLOW), FAST);
    assert_eq!(wanted_tick(true, &mut since, at(1) + SLOW_AFTER, FAST, SLOW), SLOW, "settled");
    assert_eq!(wanted_tick(true, &mut since, at(100), FAST, SLOW), SLOW);
    // Promoted: back to the full pace at once, and the wait starts over afterwards.
    assert_eq!(wanted_tick(false, &mut since, at(101), FAST, SLOW), FAST);
    assert_eq!(since, None);
    assert_eq!(wanted_tick(true, &mut since, at(102), FAST, SLOW), FAST);
    assert_eq!(wanted_tick(true, &mut since, at(102) + SLOW_AFTER, FAST, SLOW), SLOW);
}

#[test]
fn a_clock_that_goes_back_does_not_settle_a_client() {
    let start = Instant::now() + Duration::from_secs(60);
    let mut since = Some(start);
    assert_eq!(wanted_tick(true, &mut since, start - Duration::from_secs(30), FAST, SLOW), FAST);
}

/// A loopback address with a UDP port free a moment ago.
fn free_addr() -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("a free port");
    socket.local_addr().expect("its address")
}

async fn start(id: u64, listen: SocketAddr, seed: Option<SocketAddr>) -> Gossip {
    Gossip::start(SelfInfo {
        id: NodeId(id),
        listen,
        advertise: listen,
        name: format!("n{id}"),
        slots: 1,
        labels: Vec::new(),
        seeds: seed.map(|s| s.to_string()).into_iter().collect(),
        interval: FAST,
        client_interval: SLOW,
        server_eligible: true,
        rpc: RpcClient::new(Signer::new(None)).expect("an http client"),
    })
    .await
    .expect("gossip starts")
}

/// `of`'s view of node `id`.
async fn view(of: &Gossip, id: u64) -> Option<Member> {
    of.members().await.into_iter().find(|m| m.id == NodeId(id))
}

async fn until<T>(what: &str, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(found) = check().await {
            return found;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_changing_its_tick_stays_one_live_node_to_its_peers() {
    let (addr_a, addr_b) = (free_addr(), free_addr());
    let a = start(1, addr_a, None).await;
    let b = start(2, addr_b, Some(addr_a)).await;
    let before = until("each to see the other alive", async || {
        let seen_by_a = view(&a, 2).await.filter(|m| m.alive)?;
        view(&b, 1).await.filter(|m| m.alive)?;
        Some(seen_by_a)
    })
    .await;

    // A heartbeat well above what a new instance reaches in the seconds watched below.
    until("b's heartbeat to pass 200", async || {
        let own =
            b.instance.read().await.handle.with_chitchat(|c| c.self_node_state().heartbeat()).await;
        (u64::from(own) >= 200).then_some(())
    })
    .await;

    b.retick(SLOW).await;
    assert_eq!(b.tick_interval().await, SLOW);
    // What b knew comes along: a is alive to b at once, not after a few of its rounds.
    let carried = view(&b, 1).await.expect("b still knows a");
    assert!(carried.alive, "a dead to b right after the change: {carried:?}");
    assert_eq!(carried.addr, addr_a);

    // a sees the same node alive throughout, and b's later keys still reach it.
    b.set_isolation("bwrap", "cgroup v2").await;
    let watch_until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < watch_until {
        let seen = view(&a, 2).await.expect("a still knows b");
        assert!(seen.alive, "b dead to a after its tick changed: {seen:?}");
        assert_eq!(seen.generation, before.generation, "b seen as a new incarnation");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    until("b's new keys at a", async || {
        view(&a, 2).await.filter(|m| m.sandbox.as_deref() == Some("bwrap"))
    })
    .await;
    until("a alive to b's new instance by its own reckoning", async || {
        let heard = b.instance.read().await.handle.with_chitchat(|c| c.live_nodes().count()).await;
        (heard == 2).then_some(())
    })
    .await;

    // And back to the full pace, as a client promoted to server does.
    b.retick(FAST).await;
    assert_eq!(b.tick_interval().await, FAST);
    b.set_isolation("none", "rlimit").await;
    until("b's keys after the second change at a", async || {
        view(&a, 2).await.filter(|m| m.alive && m.sandbox.as_deref() == Some("none"))
    })
    .await;
    assert!(view(&b, 1).await.is_some_and(|m| m.alive));
    assert_eq!(a.members().await.len(), 2, "one entry per node");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leader_looked_up_follows_every_change_gossip_brings() {
    let (addr_a, addr_b) = (free_addr(), free_addr());
    let a = start(1, addr_a, None).await;
    let b = start(2, addr_b, Some(addr_a)).await;
    until("each to see the other alive", async || {
        view(&a, 2).await.filter(|m| m.alive)?;
        view(&b, 1).await.filter(|m| m.alive)
    })
    .await;
    assert_eq!(a.leader().await, None);
    let servers = |term| Some(Servers { term, ids: vec![NodeId(1), NodeId(2)] });

    b.set_raft_role(RaftRole::Leader, servers(1)).await;
    let leader = until("a to see b lead", async || a.leader().await).await;
    assert_eq!(leader.id, NodeId(2));
    // The moment a's members show b following, a's leader is gone too: the answer kept
    // from before is not used past the change.
    b.set_raft_role(RaftRole::Voter, None).await;
    until("a to see b follow", async || view(&a, 2).await.filter(|m| m.raft == RaftRole::Voter))
        .await;
    assert_eq!(a.leader().await, None, "a kept b as leader after gossip said otherwise");
    // Its own change, at once.
    a.set_raft_role(RaftRole::Leader, servers(2)).await;
    assert_eq!(a.leader().await.map(|m| m.id), Some(NodeId(1)));
}
