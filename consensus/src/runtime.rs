//! openraft's async runtime: tokio's, except that the Raft timer does not wake while
//! ticking is switched off.
//!
//! openraft 0.9 runs its timer as a loop that sleeps 1.5 heartbeats (`sleep_until`) and
//! then looks whether ticking is enabled; switched off with `runtime_config().tick(false)`
//! it still wakes 13 times a second at a 50 ms heartbeat. A client of a large cluster has
//! no Raft state and nothing to time, and those wakeups were the largest share of what it
//! did at idle. That loop is openraft's only caller of `sleep_until` (0.9.25), so here
//! `sleep_until` first waits until [`set_ticking`] allows ticks, then sleeps as tokio's.
//! Everything else is tokio's own.
//!
//! The switch is one per process, as a node is: several Rafts in one process (tests)
//! leave it on.

use std::future::Future;
use std::pin::Pin;
use std::sync::LazyLock;
use std::time::Duration;

use openraft::{AsyncRuntime, OptionalSend, TokioInstant, TokioRuntime};
use tokio::sync::watch;

use crate::types::Raft;

/// Whether this process's Raft timer may tick.
static TICKING: LazyLock<watch::Sender<bool>> = LazyLock::new(|| watch::channel(true).0);

/// Switches this node's Raft timer on or off: openraft's own switch, and this runtime's
/// hold on the timer's sleep.
pub fn set_ticking(raft: &Raft, on: bool) {
    if on {
        raft.runtime_config().tick(true);
        hold_timer(false);
    } else {
        hold_timer(true);
        raft.runtime_config().tick(false);
    }
}

fn hold_timer(hold: bool) {
    TICKING.send_replace(!hold);
}

/// Whether the Raft timer may tick now.
pub fn ticking() -> bool {
    *TICKING.borrow()
}

/// tokio, with `sleep_until` held while ticking is off.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct GatedTokio;

type Tokio = TokioRuntime;

impl AsyncRuntime for GatedTokio {
    type JoinError = <Tokio as AsyncRuntime>::JoinError;
    type JoinHandle<T: OptionalSend + 'static> = <Tokio as AsyncRuntime>::JoinHandle<T>;
    type Sleep = Pin<Box<dyn Future<Output = ()> + Send + Sync>>;
    type Instant = TokioInstant;
    type TimeoutError = <Tokio as AsyncRuntime>::TimeoutError;
    type Timeout<R, T: Future<Output = R> + OptionalSend> = <Tokio as AsyncRuntime>::Timeout<R, T>;
    type ThreadLocalRng = <Tokio as AsyncRuntime>::ThreadLocalRng;
    type OneshotSender<T: OptionalSend> = <Tokio as AsyncRuntime>::OneshotSender<T>;
    type OneshotReceiverError = <Tokio as AsyncRuntime>::OneshotReceiverError;
    type OneshotReceiver<T: OptionalSend> = <Tokio as AsyncRuntime>::OneshotReceiver<T>;

    fn spawn<T>(future: T) -> Self::JoinHandle<T::Output>
    where
        T: Future + OptionalSend + 'static,
        T::Output: OptionalSend + 'static,
    {
        Tokio::spawn(future)
    }

    fn sleep(duration: Duration) -> Self::Sleep {
        Box::pin(Tokio::sleep(duration))
    }

    fn sleep_until(deadline: Self::Instant) -> Self::Sleep {
        let mut ticking = TICKING.subscribe();
        Box::pin(async move {
            // Ready at once while ticking is on; the sender is a static, never dropped.
            let _ = ticking.wait_for(|on| *on).await;
            Tokio::sleep_until(deadline).await;
        })
    }

    fn timeout<R, F: Future<Output = R> + OptionalSend>(
        duration: Duration,
        future: F,
    ) -> Self::Timeout<R, F> {
        Tokio::timeout(duration, future)
    }

    fn timeout_at<R, F: Future<Output = R> + OptionalSend>(
        deadline: Self::Instant,
        future: F,
    ) -> Self::Timeout<R, F> {
        Tokio::timeout_at(deadline, future)
    }

    fn is_panic(join_error: &Self::JoinError) -> bool {
        Tokio::is_panic(join_error)
    }

    fn thread_rng() -> Self::ThreadLocalRng {
        Tokio::thread_rng()
    }

    fn oneshot<T>() -> (Self::OneshotSender<T>, Self::OneshotReceiver<T>)
    where
        T: OptionalSend,
    {
        Tokio::oneshot()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_timer_sleeps_only_while_ticking_is_on() {
        let now = TokioInstant::now();
        assert!(ticking());
        GatedTokio::sleep_until(now).await;

        hold_timer(true);
        let mut held = GatedTokio::sleep_until(now);
        let waited = tokio::time::timeout(Duration::from_millis(100), &mut held).await;
        assert!(waited.is_err(), "a timer past its deadline woke while ticking was off");
        // Other sleeps are not held.
        GatedTokio::sleep(Duration::from_millis(1)).await;

        hold_timer(false);
        tokio::time::timeout(Duration::from_secs(5), held)
            .await
            .expect("the held timer wakes once ticking is on again");
        assert!(ticking());
    }
}
