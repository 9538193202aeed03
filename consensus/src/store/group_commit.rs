//! Group commit: one flush of the database makes several waiting writes durable.
//!
//! A write that must be durable (an append, a vote, a truncation, a purge) is first made
//! in sled and then handed to the flusher, one background task shared by every clone of
//! the log store. The flusher takes every request queued so far, flushes the database
//! once and answers them all, in the order they were queued, with that flush's result.
//! A request is queued only after its write, and the flusher takes its group before it
//! flushes, so the flush covers every write of every request it answers.
//!
//! An append queues its `LogFlushed` callback and returns; the flusher completes it. The
//! other writes queue a barrier and wait for its answer, so they are durable before they
//! return, and every callback queued before them has been completed by then.
//!
//! The flusher needs the Tokio runtime, which [`open`](super::open) does not have, so the
//! first request starts it. It holds the database only while it flushes, and it ends once
//! every clone of the store has been dropped (its queue is then closed), so dropping the
//! store still releases the database. If the flusher cannot run (no runtime, or the
//! runtime that ran it has shut down), a request is flushed and answered in place.

use std::io;
use std::sync::{Arc, Mutex, PoisonError, Weak};

use openraft::storage::LogFlushed;
use tokio::sync::{mpsc, oneshot};
use tracing::debug;

use super::error::StoreError;
use crate::types::TypeConfig;

/// The most requests one flush answers; more wait for the next flush. This only bounds
/// the buffer: the flusher never waits for a group to fill.
const MAX_GROUP: usize = 1024;

/// The handle on the flusher; clones share it.
#[derive(Clone)]
pub(super) struct GroupCommit {
    shared: Arc<Shared>,
}

struct Shared {
    /// A tree of the database. Flushing any tree writes and fsyncs every tree, as they
    /// share one page cache.
    tree: sled::Tree,
    /// The flusher's queue: `None` before the first request, and closed if the runtime
    /// that ran the flusher has shut down (a new flusher is then started).
    queue: Mutex<Option<mpsc::UnboundedSender<Request>>>,
}

/// A write made in sled, waiting to be on disk.
enum Request {
    /// Appended entries: complete the callback.
    Append(LogFlushed<TypeConfig>),
    /// Another write: report to whoever waits.
    Barrier(oneshot::Sender<Result<(), StoreError>>),
}

/// What one flush did, shared by every request of its group.
type Flushed = Result<(), Failure>;

#[derive(Clone)]
enum Failure {
    Flush(sled::Error),
    /// Every clone of the store was dropped while the request waited.
    Closed,
}

impl Failure {
    fn to_store_error(&self) -> StoreError {
        match self {
            Failure::Flush(source) => {
                StoreError::Database { operation: "flush the database", source: source.clone() }
            }
            Failure::Closed => StoreError::ClosedBeforeFlush,
        }
    }

    fn to_io_error(&self) -> io::Error {
        let kind = match self {
            Failure::Flush(sled::Error::Io(error)) => error.kind(),
            _ => io::ErrorKind::Other,
        };
        io::Error::new(kind, self.to_store_error())
    }
}

impl Request {
    fn answer(self, flushed: &Flushed) {
        match self {
            Request::Append(callback) => {
                callback.log_io_completed(flushed.as_ref().map_err(|e| e.to_io_error()).copied())
            }
            Request::Barrier(waiter) => {
                // The waiter only goes away if its caller was cancelled; nothing to tell.
                let _ = waiter.send(flushed.as_ref().map_err(|e| e.to_store_error()).copied());
            }
        }
    }
}

impl GroupCommit {
    /// `tree` is any tree of the database whose writes the flusher makes durable.
    pub(super) fn new(tree: sled::Tree) -> GroupCommit {
        GroupCommit { shared: Arc::new(Shared { tree, queue: Mutex::new(None) }) }
    }

    /// Completes `callback` once everything written so far is on disk. Returns as soon
    /// as the callback is queued.
    pub(super) async fn complete_when_flushed(&self, callback: LogFlushed<TypeConfig>) {
        if let Some(request) = self.enqueue(Request::Append(callback)) {
            let flushed = self.flush_in_place().await;
            request.answer(&flushed);
        }
    }

    /// Returns once everything written so far is on disk, and every callback queued
    /// before has been completed.
    pub(super) async fn flush(&self) -> Result<(), StoreError> {
        let (report, reported) = oneshot::channel();
        let flushed = match self.enqueue(Request::Barrier(report)) {
            None => match reported.await {
                Ok(result) => return result,
                // The flusher was dropped with the barrier queued: its runtime shut down.
                Err(_) => self.flush_in_place().await,
            },
            Some(_) => self.flush_in_place().await,
        };
        flushed.map_err(|e| e.to_store_error())
    }

    async fn flush_in_place(&self) -> Flushed {
        self.shared.tree.flush_async().await.map(drop).map_err(Failure::Flush)
    }

    /// Queues `request` for the flusher, starting one if none is running. Gives the
    /// request back if no flusher can run.
    fn enqueue(&self, mut request: Request) -> Option<Request> {
        let mut queue = self.shared.queue.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(sender) = queue.as_ref() {
            match sender.send(request) {
                Ok(()) => return None,
                Err(mpsc::error::SendError(returned)) => request = returned,
            }
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return Some(request);
        };
        let (sender, receiver) = mpsc::unbounded_channel();
        runtime.spawn(run_flusher(Arc::downgrade(&self.shared), receiver));
        match sender.send(request) {
            Ok(()) => {
                debug!("flusher started");
                *queue = Some(sender);
                None
            }
            Err(mpsc::error::SendError(returned)) => Some(returned),
        }
    }
}

/// The flusher: until the queue closes, takes every queued request, flushes once and
/// answers them in order.
async fn run_flusher(shared: Weak<Shared>, mut queue: mpsc::UnboundedReceiver<Request>) {
    let mut group = Vec::new();
    while queue.recv_many(&mut group, MAX_GROUP).await > 0 {
        let flushed = match shared.upgrade() {
            Some(shared) => shared.tree.flush_async().await.map(drop).map_err(Failure::Flush),
            None => Err(Failure::Closed),
        };
        debug!(group = group.len(), ok = flushed.is_ok(), "group flushed");
        for request in group.drain(..) {
            request.answer(&flushed);
        }
    }
    debug!("flusher stopped");
}
