//! Recognising a webhook delivery seen before, by the forge's delivery id: a bounded
//! memory, so that no number of deliveries makes it grow.

use std::collections::{HashSet, VecDeque};
use std::fmt;

use eventide_consensus::ForgeKind;

/// How many delivery ids [`DeliveryIds`] keeps by default.
pub const DELIVERY_MEMORY: usize = 4096;

/// A bounded memory of the delivery ids seen last, so that a redelivered webhook is
/// recognised. Holds at most `capacity` ids; the oldest is forgotten first. Lookups
/// and insertions are O(1).
pub struct DeliveryIds {
    capacity: usize,
    seen: HashSet<(ForgeKind, String)>,
    order: VecDeque<(ForgeKind, String)>,
}

impl DeliveryIds {
    /// A memory of the last `capacity` ids (at least one).
    pub fn new(capacity: usize) -> DeliveryIds {
        let capacity = capacity.max(1);
        DeliveryIds { capacity, seen: HashSet::new(), order: VecDeque::new() }
    }

    /// Records `id` of `forge`; true if it was not among the ids remembered (the
    /// delivery is new), false for a repeat.
    pub fn first_sighting(&mut self, forge: ForgeKind, id: &str) -> bool {
        let key = (forge, id.to_owned());
        if self.seen.contains(&key) {
            return false;
        }
        if self.order.len() == self.capacity {
            if let Some(oldest) = self.order.pop_front() {
                self.seen.remove(&oldest);
            }
        }
        self.seen.insert(key.clone());
        self.order.push_back(key);
        debug_assert_eq!(self.seen.len(), self.order.len());
        true
    }

    /// True if `id` of `forge` is remembered.
    pub fn contains(&self, forge: ForgeKind, id: &str) -> bool {
        self.seen.contains(&(forge, id.to_owned()))
    }

    /// How many ids are remembered.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// True when no id is remembered.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

impl Default for DeliveryIds {
    fn default() -> Self {
        DeliveryIds::new(DELIVERY_MEMORY)
    }
}

impl fmt::Debug for DeliveryIds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeliveryIds")
            .field("capacity", &self.capacity)
            .field("len", &self.order.len())
            .finish()
    }
}
