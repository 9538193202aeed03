//! An in-process cluster of real Raft nodes, each with its own sled store, talking HTTP on
//! loopback: election, replication, failover, and a late learner caught up by snapshot.

use std::sync::Arc;

use eventide_consensus::auth::Signer;
use eventide_consensus::network::Writer;
use eventide_consensus::testing::{
    commit_for_test as commit, start_cluster_for_test, LocalNode, DEADLINE,
};
use eventide_consensus::types::Raft;
use eventide_consensus::{
    Command, JobId, NodeId, Observe, ObservedCommit, Outcome, RaftTiming, Reply, RepoId, Timestamp,
    Verdict,
};

fn test_config() -> Arc<openraft::Config> {
    let timing = RaftTiming { snapshot_every: 50, ..RaftTiming::default() };
    let mut config = timing.to_config("cluster-test").expect("valid timing");
    // Keep no log behind a snapshot, so that a late learner can only catch up by one.
    config.max_in_snapshot_log_to_keep = 0;
    config.purge_batch_size = 1;
    Arc::new(config)
}

async fn write(raft: &Raft, command: Command) -> Reply {
    let response = raft.client_write(command).await.expect("write through the leader");
    assert!(response.data.refusal().is_none(), "refused: {:?}", response.data);
    response.data
}

/// Observes `count` commits after `after` on main and runs each to a verdict.
async fn push_and_test(raft: &Raft, repo: RepoId, runner: NodeId, after: u64, count: u64) {
    let commits: Vec<ObservedCommit> = (after + 1..=after + count)
        .map(|n| ObservedCommit { commit: commit(n), labels: Vec::new() })
        .collect();
    let observe = Observe {
        repo,
        branch: "main".into(),
        expected_head: (after > 0).then(|| commit(after)),
        new_head: commit(after + count),
        commits,
        skipped: Vec::new(),
        at: Timestamp(after),
    };
    let Reply::Observed { jobs } = write(raft, Command::Observe(observe)).await else {
        panic!("observe must queue jobs");
    };
    for job in jobs {
        write(raft, Command::Assign { job, runner, attempt: 1, at: Timestamp(1) }).await;
        let outcome = Outcome {
            verdict: if job.0 % 3 == 0 { Verdict::Failed } else { Verdict::Passed },
            exit_code: Some(0),
            duration_ms: 10,
            output_tail: format!("Ran 1 test for job {job}\nOK\n"),
            summary: None,
            message: None,
        };
        write(raft, Command::Finish { job, attempt: 1, outcome, at: Timestamp(2) }).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_replicate_fail_over_and_catch_up_a_learner() {
    let config = test_config();
    let (mut nodes, leader_id) = start_cluster_for_test(3, config.clone()).await;

    // Replicate through the first leader.
    let leader = nodes.iter().find(|n| n.id == leader_id).expect("leader is a member");
    let reply = write(
        &leader.raft,
        Command::AddRepo { url: "file:///srv/app.git".into(), at: Timestamp(0) },
    )
    .await;
    let Reply::RepoAdded { repo } = reply else { panic!("unexpected reply {reply:?}") };
    push_and_test(&leader.raft, repo, leader_id, 0, 10).await;

    // A late result from a stale attempt is refused by every replica alike.
    let stale = leader
        .raft
        .client_write(Command::Requeue {
            job: JobId(1),
            attempt: 1,
            reason: "late".into(),
            at: Timestamp(3),
        })
        .await
        .expect("committed even though refused");
    assert!(stale.data.refusal().is_some(), "a final job cannot be requeued");

    let applied = leader.raft.metrics().borrow().last_applied.expect("applied").index;
    for node in &nodes {
        node.wait_applied(applied).await;
    }
    let reference = nodes[0].state_bytes();
    for node in &nodes {
        assert_eq!(node.state_bytes(), reference, "replica {} differs", node.id);
    }

    // Kill the leader: the survivors elect another and keep accepting writes.
    let position = nodes.iter().position(|n| n.id == leader_id).expect("leader is a member");
    nodes.remove(position).kill().await;
    let new_leader_id = nodes[0].wait_for_leader(Some(leader_id)).await;
    assert_ne!(new_leader_id, leader_id);
    let new_leader = nodes.iter().find(|n| n.id == new_leader_id).expect("survivor leads");
    push_and_test(&new_leader.raft, repo, new_leader_id, 10, 30).await;
    assert_eq!(
        new_leader.state_machine.read(|s| s.queue_counts().finished),
        40,
        "every job of both leaders is final exactly once"
    );

    // Snapshot and purge the log, so that a new learner can only catch up by snapshot.
    new_leader.raft.trigger().snapshot().await.expect("trigger snapshot");
    let snapshot = new_leader
        .raft
        .wait(Some(DEADLINE))
        .metrics(|m| m.snapshot.is_some() && m.purged.is_some(), "snapshot taken and log purged")
        .await
        .expect("snapshot within the deadline");
    assert!(snapshot.purged.is_some());

    let learner = LocalNode::start_for_test(4, config.clone()).await;
    new_leader.raft.add_learner(learner.id, learner.info(), true).await.expect("add learner");
    let applied = new_leader.raft.metrics().borrow().last_applied.expect("applied").index;
    learner.wait_applied(applied).await;
    let learner_metrics = learner.raft.metrics().borrow().clone();
    assert!(learner_metrics.snapshot.is_some(), "the learner installed a snapshot");
    let reference = new_leader.state_bytes();
    for node in nodes.iter().chain([&learner]) {
        node.wait_applied(applied).await;
        assert_eq!(node.state_bytes(), reference, "replica {} differs", node.id);
    }

    learner.kill().await;
    for node in nodes {
        node.kill().await;
    }
}

/// Concurrent writes through a `Writer` share log entries (group commit), and each
/// writer still gets exactly its own reply, on the leader and through a follower.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_share_entries_and_each_gets_its_own_reply() {
    const WRITERS: u64 = 64;
    let (nodes, leader_id) = start_cluster_for_test(3, test_config()).await;
    let leader = nodes.iter().find(|n| n.id == leader_id).expect("leader is a member");
    let follower = nodes.iter().find(|n| n.id != leader_id).expect("a follower");
    let Reply::RepoAdded { repo } =
        write(&leader.raft, Command::AddRepo { url: "file:///srv/a.git".into(), at: Timestamp(0) })
            .await
    else {
        panic!("repository not added");
    };
    let observe = Observe {
        repo,
        branch: "main".into(),
        expected_head: None,
        new_head: commit(2 * WRITERS),
        commits: (1..=2 * WRITERS)
            .map(|n| ObservedCommit { commit: commit(n), labels: Vec::new() })
            .collect(),
        skipped: Vec::new(),
        at: Timestamp(1),
    };
    write(&leader.raft, Command::Observe(observe)).await;

    for (node, first_job) in [(leader, 1), (follower, 1 + WRITERS)] {
        let writer =
            Writer::new(node.raft.clone(), DEADLINE, Signer::new(None)).expect("http client");
        let before = leader.last_applied_index();
        let mut tasks = tokio::task::JoinSet::new();
        for job in first_job..first_job + WRITERS {
            let writer = writer.clone();
            tasks.spawn(async move {
                let command = Command::Assign {
                    job: JobId(job),
                    runner: NodeId(9),
                    attempt: 1,
                    at: Timestamp(2),
                };
                (job, writer.write(command).await)
            });
        }
        while let Some(done) = tasks.join_next().await {
            let (job, reply) = done.expect("writer task");
            assert_eq!(reply, Ok(Reply::Assigned { job: JobId(job), attempt: 1 }), "job {job}");
        }
        let entries = leader.last_applied_index() - before;
        assert!(
            entries < WRITERS,
            "{WRITERS} concurrent writes through node {} took {entries} entries: not batched",
            node.id
        );
    }
    for node in nodes {
        node.kill().await;
    }
}

/// A learner removed from the membership hears from no one, so its Raft keeps naming the
/// leader it knew; once leadership has moved on, that node answers "not the leader"
/// naming the new one, and a write through the removed learner's `Writer` follows the
/// name instead of asking the old leader again until its deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_through_a_stale_node_follows_the_leader_named_by_the_old_one() {
    let config = test_config();
    let (nodes, leader_id) = start_cluster_for_test(3, config.clone()).await;
    let leader = nodes.iter().find(|n| n.id == leader_id).expect("leader is a member");
    write(&leader.raft, Command::AddRepo { url: "file:///srv/a.git".into(), at: Timestamp(0) })
        .await;
    let learner = LocalNode::start_for_test(4, config).await;
    leader.raft.add_learner(learner.id, learner.info(), true).await.expect("add learner");
    learner.wait_for_leader(None).await;
    leader
        .raft
        .change_membership(
            openraft::ChangeMembers::RemoveNodes([learner.id].into_iter().collect()),
            false,
        )
        .await
        .expect("remove the learner");

    // Another voter takes over; the old leader follows it and knows it. An election
    // it triggers can be won back by the old leader (the third voter may refuse its vote
    // while it still hears the leader), so it is triggered again until it is won.
    let next = nodes.iter().find(|n| n.id != leader_id).expect("another voter");
    let started = std::time::Instant::now();
    let new_leader = loop {
        assert!(started.elapsed() < DEADLINE, "no other voter won an election");
        next.raft.trigger().elect().await.expect("trigger an election");
        let moved = leader
            .raft
            .wait(Some(std::time::Duration::from_secs(2)))
            .metrics(|m| m.current_leader.is_some_and(|id| id != leader_id), "leadership moved")
            .await;
        if let Ok(metrics) = moved {
            break metrics.current_leader.expect("checked by the predicate");
        }
    };
    assert_ne!(new_leader, leader_id);
    let stale = learner.raft.metrics().borrow().current_leader;
    assert_eq!(stale, Some(leader_id), "the removed learner still names the old leader");

    let writer = Writer::new(learner.raft.clone(), DEADLINE, Signer::new(None)).expect("client");
    let started = std::time::Instant::now();
    let reply =
        writer.write(Command::AddRepo { url: "file:///srv/b.git".into(), at: Timestamp(1) }).await;
    assert!(matches!(reply, Ok(Reply::RepoAdded { .. })), "{reply:?}");
    assert!(started.elapsed() < DEADLINE / 2, "the write waited {:?}", started.elapsed());

    learner.kill().await;
    for node in nodes {
        node.kill().await;
    }
}

/// openraft keeps a leader that lost its quorum leading, and answers its proposals only
/// once they commit or another leader overwrites them: for a leader cut off and then
/// removed from the group, never. A write through such a node gives up at the writer's
/// deadline, and so do more writes than the proposer keeps in flight: no entry holds its
/// slot for good, and the node can still write once it leads a quorum again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_on_a_leader_without_its_quorum_fail_at_their_deadline() {
    use eventide_consensus::network::{WriteError, MAX_IN_FLIGHT};
    use std::time::{Duration, Instant};

    let (mut nodes, leader_id) = start_cluster_for_test(3, test_config()).await;
    let at = nodes.iter().position(|n| n.id == leader_id).expect("leader is a member");
    let leader = nodes.remove(at);
    write(&leader.raft, Command::AddRepo { url: "file:///srv/a.git".into(), at: Timestamp(0) })
        .await;
    for node in nodes {
        node.kill().await;
    }

    let wait = Duration::from_millis(500);
    let writer = Writer::new(leader.raft.clone(), wait, Signer::new(None)).expect("http client");
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..2 * MAX_IN_FLIGHT {
        let writer = writer.clone();
        tasks.spawn(async move {
            let url = format!("file:///srv/cut-off-{n}.git");
            writer.write(Command::AddRepo { url, at: Timestamp(1) }).await
        });
    }
    let replies = tokio::time::timeout(DEADLINE, async {
        let mut replies = Vec::new();
        while let Some(reply) = tasks.join_next().await {
            replies.push(reply.expect("writer task"));
        }
        replies
    })
    .await
    .expect("writes on a leader without its quorum must give up, not wait for good");
    for reply in &replies {
        assert!(matches!(reply, Err(WriteError::NotCommitted { waited_ms: 500 })), "{reply:?}");
    }
    // Every slot was given back: one more write is proposed, and gives up in time too.
    let late = tokio::time::timeout(
        DEADLINE,
        writer.write(Command::AddRepo { url: "file:///srv/late.git".into(), at: Timestamp(2) }),
    )
    .await
    .expect("a write after the timed-out ones is proposed and bounded as well");
    assert!(matches!(late, Err(WriteError::NotCommitted { .. })), "{late:?}");
    assert!(started.elapsed() < DEADLINE / 2, "the writes took {:?}", started.elapsed());
    assert!(leader.raft.metrics().borrow().state.is_leader(), "the node still leads its term");
    leader.kill().await;
}
