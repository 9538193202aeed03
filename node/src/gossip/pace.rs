//! How often this node starts gossip rounds of its own.
//!
//! Every chitchat message carries a digest naming every node, and each node starts a
//! round with three peers every `--gossip-interval`; so a cluster's gossip costs grow
//! with its size squared, and on a hundred nodes that is most of what an idle cluster
//! does. Servers keep the full pace (they carry the roles and the servers list that
//! clients need quickly); a client starts a round only every `--client-gossip-interval`.
//! It still answers every round a peer starts with it, so its heartbeat and keys keep
//! reaching the cluster at the peers' pace, and it hears news as fast as before.
//!
//! chitchat fixes its round interval when it starts, and a node's role changes while it
//! runs, so the pace is applied where chitchat's messages leave: the socket drops the
//! opening `Syn` messages of rounds that come too soon. Replies (`SynAck`, `Ack`) always
//! go out.
//!
//! That still leaves chitchat's tick (its walk over every member) running five times a
//! second; a client that has kept its role for a while moves to a chitchat instance that
//! ticks at the client pace ([`super::Gossip::set_client_pace`]), and this filter then
//! lets every round out.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use chitchat::{ChitchatEnvelope, ChitchatMessage};

use super::filter::Filter;

/// The pace of this node's own rounds: every round, or (as a client) one every
/// `client_interval`.
pub struct Pace {
    interval: Duration,
    client_interval: Duration,
    client: AtomicBool,
    rounds: Mutex<Rounds>,
    /// Rounds started, and rounds held back at the client pace, since the node started.
    started: AtomicU64,
    held: AtomicU64,
}

/// How many of this node's own gossip rounds went out and how many were held back.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RoundCounts {
    pub started: u64,
    pub held: u64,
}

impl Pace {
    pub fn new(interval: Duration, client_interval: Duration) -> Arc<Pace> {
        Arc::new(Pace {
            interval,
            client_interval,
            client: AtomicBool::new(false),
            rounds: Mutex::new(Rounds::default()),
            started: AtomicU64::new(0),
            held: AtomicU64::new(0),
        })
    }

    /// `--gossip-interval`: how often a server's chitchat ticks.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    pub fn counts(&self) -> RoundCounts {
        RoundCounts {
            started: self.started.load(Ordering::Relaxed),
            held: self.held.load(Ordering::Relaxed),
        }
    }

    /// Slows this node's rounds down to the client pace (`true`) or back to every round.
    pub fn set_client(&self, client: bool) {
        self.client.store(client, Ordering::Relaxed);
    }

    /// Whether a `Syn` sent now goes out.
    fn lets_syn_out(&self, now: Instant) -> bool {
        let every = self.client.load(Ordering::Relaxed).then_some(self.client_interval);
        let mut rounds = self.rounds.lock().unwrap_or_else(PoisonError::into_inner);
        let (out, opened) = rounds.syn(now, self.interval, every);
        if opened {
            let counter = if out { &self.started } else { &self.held };
            counter.fetch_add(1, Ordering::Relaxed);
        }
        out
    }
}

/// The rounds seen so far: a round is the burst of `Syn`s chitchat sends at each tick.
#[derive(Debug, Default)]
struct Rounds {
    /// When the current round's first `Syn` was sent, and whether the round goes out.
    current: Option<(Instant, bool)>,
    /// When the last round that went out started.
    last_out: Option<Instant>,
}

impl Rounds {
    /// Decides for a `Syn` at `now`, chitchat ticking every `interval`: a `Syn` within
    /// half an interval of the round's first belongs to that round and shares its fate;
    /// a later one opens a round, which goes out when `every` is `None` or at least
    /// `every` (less half an interval, for a late tick) has passed since the last one out.
    /// Returns whether it goes out, and whether it opened a round.
    fn syn(&mut self, now: Instant, interval: Duration, every: Option<Duration>) -> (bool, bool) {
        let slack = interval / 2;
        if let Some((start, out)) = self.current {
            if now.saturating_duration_since(start) < slack {
                return (out, false);
            }
        }
        let out = match (every, self.last_out) {
            (None, _) | (_, None) => true,
            (Some(every), Some(last)) => {
                now.saturating_duration_since(last) >= every.saturating_sub(slack)
            }
        };
        self.current = Some((now, out));
        if out {
            self.last_out = Some(now);
        }
        (out, true)
    }
}

/// Opening `Syn`s of rounds that come too soon stay in; everything else passes.
impl Filter for Pace {
    fn lets_out(self: &Arc<Self>, _to: SocketAddr, envelope: &ChitchatEnvelope) -> bool {
        let opens_a_round = matches!(envelope.message, ChitchatMessage::Syn { .. });
        !opens_a_round || self.lets_syn_out(Instant::now())
    }

    fn lets_in(self: &Arc<Self>, _from: SocketAddr) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TICK: Duration = Duration::from_millis(200);
    const CLIENT: Option<Duration> = Some(Duration::from_secs(1));

    fn ms(start: Instant, millis: u64) -> Instant {
        start + Duration::from_millis(millis)
    }

    #[test]
    fn a_server_sends_every_round() {
        let start = Instant::now();
        let mut rounds = Rounds::default();
        for tick in 0..10 {
            for peer in 0..3 {
                assert!(rounds.syn(ms(start, tick * 200 + peer), TICK, None).0, "tick {tick}");
            }
        }
    }

    #[test]
    fn a_client_sends_one_whole_round_in_five() {
        let start = Instant::now();
        let mut rounds = Rounds::default();
        let mut out = Vec::new();
        for tick in 0..15 {
            let sent: Vec<bool> = (0..3)
                .map(|peer| rounds.syn(ms(start, tick * 200 + peer * 5), TICK, CLIENT).0)
                .collect();
            assert!(sent.iter().all(|&s| s == sent[0]), "a round goes out whole: {sent:?}");
            out.push(sent[0]);
        }
        let ticks: Vec<usize> =
            out.iter().enumerate().filter(|(_, &o)| o).map(|(t, _)| t).collect();
        assert_eq!(ticks, [0, 5, 10]);
    }

    #[test]
    fn a_late_tick_still_goes_out_near_its_time() {
        let start = Instant::now();
        let mut rounds = Rounds::default();
        assert!(rounds.syn(start, TICK, CLIENT).0);
        // Ticks at 200, 400, 600 and 800 ms are held back; the next comes late at 930 ms
        // on a busy machine and goes out (a second less half a tick has passed).
        for tick in 1..=4 {
            assert!(!rounds.syn(ms(start, tick * 200), TICK, CLIENT).0, "tick {tick}");
        }
        assert!(rounds.syn(ms(start, 930), TICK, CLIENT).0);
        assert!(!rounds.syn(ms(start, 1130), TICK, CLIENT).0);
    }

    #[test]
    fn a_client_promoted_to_server_sends_every_round_again() {
        let start = Instant::now();
        let mut rounds = Rounds::default();
        assert!(rounds.syn(start, TICK, CLIENT).0);
        assert!(!rounds.syn(ms(start, 200), TICK, CLIENT).0);
        assert!(rounds.syn(ms(start, 400), TICK, None).0);
        assert!(rounds.syn(ms(start, 600), TICK, None).0);
    }

    #[test]
    fn the_pace_follows_the_role() {
        let pace = Pace::new(TICK, Duration::from_secs(1));
        let start = Instant::now();
        assert!(pace.lets_syn_out(start));
        pace.set_client(true);
        assert!(!pace.lets_syn_out(ms(start, 200)));
        pace.set_client(false);
        assert!(pace.lets_syn_out(ms(start, 400)));
        assert!(pace.lets_syn_out(ms(start, 401)), "the same round");
        assert_eq!(pace.counts(), RoundCounts { started: 2, held: 1 });
    }
}
