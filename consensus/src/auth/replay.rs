//! The bounded memory of signatures seen recently, which refuses a request replayed
//! within the time window.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

/// Signatures seen, each kept until the time after which its request is stale anyway.
///
/// Bounded: past `capacity` the oldest entries are forgotten first. Only requests
/// whose signature checked out are remembered, so only a secret holder can fill it.
pub struct ReplayGuard {
    capacity: usize,
    inner: Mutex<Seen>,
}

#[derive(Default)]
struct Seen {
    expiry: HashMap<[u8; 32], u64>,
    /// Insertion order, for eviction.
    order: VecDeque<([u8; 32], u64)>,
}

impl ReplayGuard {
    pub fn new(capacity: usize) -> ReplayGuard {
        ReplayGuard { capacity: capacity.max(1), inner: Mutex::new(Seen::default()) }
    }

    /// Records `signature` until `expires_ms`; false if it was already recorded and has
    /// not expired at `now_ms`.
    pub fn first_sighting(&self, signature: [u8; 32], expires_ms: u64, now_ms: u64) -> bool {
        // A poisoned lock only means a panic elsewhere; the maps stay consistent.
        let mut seen = self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        while let Some(&(oldest, expires)) = seen.order.front() {
            if expires > now_ms && seen.order.len() < self.capacity {
                break;
            }
            seen.order.pop_front();
            if seen.expiry.get(&oldest) == Some(&expires) {
                seen.expiry.remove(&oldest);
            }
        }
        if seen.expiry.get(&signature).is_some_and(|&expires| expires > now_ms) {
            return false;
        }
        seen.expiry.insert(signature, expires_ms);
        seen.order.push_back((signature, expires_ms));
        true
    }

    /// How many signatures are remembered.
    pub fn len(&self) -> usize {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner).expiry.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_is_refused_until_it_expires() {
        let guard = ReplayGuard::new(8);
        assert!(guard.first_sighting([1; 32], 100, 0));
        assert!(!guard.first_sighting([1; 32], 100, 50));
        assert!(guard.first_sighting([2; 32], 100, 50));
        // Expired entries are forgotten.
        assert!(guard.first_sighting([3; 32], 300, 200));
        assert_eq!(guard.len(), 1);
    }

    #[test]
    fn the_cache_stays_bounded() {
        let guard = ReplayGuard::new(4);
        for n in 0..100u8 {
            assert!(guard.first_sighting([n; 32], 1_000, 0));
            assert!(guard.len() <= 4);
        }
        // The newest are still refused.
        assert!(!guard.first_sighting([99; 32], 1_000, 0));
    }
}
