//! Group commit on the proposer side: commands written at the same time on one node
//! are proposed together as one [`Command::Batch`] entry.
//!
//! openraft flushes the log once per entry it appends, so a leader proposing one
//! command per entry spends its time in `fsync`. The [`Proposer`] keeps at most
//! [`MAX_IN_FLIGHT`] entries in flight; whatever arrives while they are being committed
//! waits and goes out together in the next entry. A lone writer gets its own entry at
//! once, so batching adds no latency when there is nothing to batch.
//!
//! ```text
//!  write(c1) ─┐                      ┌─> Raft entry [c1]          ─> reply 1
//!  write(c2) ─┼─> channel ─> batcher ┼─> Raft entry Batch[c2,c3]  ─> replies 2, 3
//!  write(c3) ─┘     (waits for a     │
//!                    free slot)      └─ at most MAX_IN_FLIGHT entries at a time
//! ```
//!
//! openraft answers a proposal only when its entry commits or is overwritten by another
//! leader's, and a leader cut off with a minority and then removed from the group sees
//! neither: it hears from no one again. So every proposal is bounded by the proposer's
//! commit timeout; past it the writer is told the write may or may not have happened,
//! and its slot is free for the next entry.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, Semaphore};
use tracing::{trace, warn};

use crate::command::{Command, Reply};
use crate::types::{NodeId, NodeInfo, Raft};

/// Entries one proposer keeps in flight at once.
pub const MAX_IN_FLIGHT: usize = 4;
/// Commands per batch entry, at most.
pub const MAX_BATCH_COMMANDS: usize = 512;
/// Estimated bytes per batch entry, at most: well under the codec's message limit, so
/// that an entry always fits one append RPC.
pub const MAX_BATCH_BYTES: usize = 1024 * 1024;

/// Commands waiting for the batcher, at most; writers beyond it wait to enqueue.
const QUEUE_CAPACITY: usize = 4096;
/// How long the proposer of forwarded writes waits for an entry to commit: as long as
/// the forwarding node waits for the answer.
pub const COMMIT_TIMEOUT: Duration = Duration::from_secs(10);

/// What the local Raft node made of a write.
#[derive(Clone, Debug)]
pub(super) enum Local {
    Applied(Reply),
    /// This node is not the leader; the leader is known.
    Forward(NodeId, NodeInfo),
    NoLeader,
    Failed(String),
    /// Proposed, but not committed within this many milliseconds.
    NotCommitted {
        waited_ms: u64,
    },
}

struct Pending {
    command: Command,
    answer: oneshot::Sender<Local>,
}

/// Proposes commands through the local Raft node, batching concurrent ones. Cheap to
/// clone; the batcher task ends when the last clone is dropped.
#[derive(Clone)]
pub struct Proposer {
    queue: mpsc::Sender<Pending>,
}

impl Proposer {
    /// Starts the batcher on the current tokio runtime; an entry not committed within
    /// `commit_timeout` fails its writers (it may still commit later).
    pub fn new(raft: Raft, commit_timeout: Duration) -> Proposer {
        let (queue, receiver) = mpsc::channel(QUEUE_CAPACITY);
        tokio::spawn(run_batcher(raft, commit_timeout, receiver));
        Proposer { queue }
    }

    /// Proposes `command` on this node and waits for it to be applied (or refused by
    /// Raft, e.g. because this node is not the leader). A batch that holds a batch is
    /// refused here: no node could decode that entry.
    pub(super) async fn propose(&self, command: Command) -> Local {
        if let Command::Batch(commands) = &command {
            if commands.iter().any(|c| matches!(c, Command::Batch(_))) {
                return Local::Failed("a batch cannot contain a batch".into());
            }
        }
        let (answer, answered) = oneshot::channel();
        if self.queue.send(Pending { command, answer }).await.is_err() {
            return Local::Failed("the proposer has stopped".into());
        }
        answered.await.unwrap_or_else(|_| Local::Failed("the proposer has stopped".into()))
    }
}

async fn run_batcher(raft: Raft, commit_timeout: Duration, mut receiver: mpsc::Receiver<Pending>) {
    let slots = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let mut carried: Option<Pending> = None;
    loop {
        let first = match carried.take() {
            Some(pending) => pending,
            None => match receiver.recv().await {
                Some(pending) => pending,
                None => return,
            },
        };
        // Waiting for a slot is what lets concurrent writes pile up into one entry.
        let Ok(slot) = slots.clone().acquire_owned().await else { return };
        // A batch written as such is an entry of its own: batches never nest.
        let alone = matches!(first.command, Command::Batch(_));
        let mut batch = vec![first];
        let mut bytes = batch[0].command.approximate_size();
        while !alone && batch.len() < MAX_BATCH_COMMANDS {
            let Ok(next) = receiver.try_recv() else { break };
            let size = next.command.approximate_size();
            if bytes + size > MAX_BATCH_BYTES || matches!(next.command, Command::Batch(_)) {
                carried = Some(next);
                break;
            }
            bytes += size;
            batch.push(next);
        }
        let raft = raft.clone();
        tokio::spawn(async move {
            commit(&raft, commit_timeout, batch).await;
            drop(slot);
        });
    }
}

/// Commits one entry for `batch` and answers each writer.
async fn commit(raft: &Raft, timeout: Duration, mut batch: Vec<Pending>) {
    if batch.len() == 1 {
        let Pending { command, answer } = batch.remove(0);
        let _ = answer.send(write_local(raft, timeout, command).await);
        return;
    }
    trace!(commands = batch.len(), "proposing a batch");
    let (commands, answers): (Vec<Command>, Vec<oneshot::Sender<Local>>) =
        batch.into_iter().map(|p| (p.command, p.answer)).unzip();
    let count = commands.len();
    match write_local(raft, timeout, Command::Batch(commands)).await {
        Local::Applied(Reply::Batch(replies)) if replies.len() == count => {
            for (answer, reply) in answers.into_iter().zip(replies) {
                let _ = answer.send(Local::Applied(reply));
            }
        }
        Local::Applied(other) => {
            warn!(reply = ?other, commands = count, "a batch got a reply that is not one per command");
            for answer in answers {
                let _ = answer.send(Local::Failed("the batch got a malformed reply".into()));
            }
        }
        not_applied => {
            for answer in answers {
                let _ = answer.send(not_applied.clone());
            }
        }
    }
}

/// Proposes one entry on the local node, waiting at most `timeout` for it to commit.
async fn write_local(raft: &Raft, timeout: Duration, command: Command) -> Local {
    let Ok(written) = tokio::time::timeout(timeout, raft.client_write(command)).await else {
        let waited_ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        warn!(waited_ms, "a proposed entry did not commit in time");
        return Local::NotCommitted { waited_ms };
    };
    match written {
        Ok(response) => Local::Applied(response.data),
        Err(error) => match error.forward_to_leader() {
            Some(forward) => match (forward.leader_id, forward.leader_node.clone()) {
                (Some(id), Some(node)) => Local::Forward(id, node),
                _ => Local::NoLeader,
            },
            None => Local::Failed(error.to_string()),
        },
    }
}
