//! Counter slots of blocklist entries: which slot of `ENTRY_DROPS` each
//! entry counts its drops in (docs/design.md#drops-per-blocklist-entry).
//!
//! The tries are the allocation's only record: a slot is taken while an
//! entry's value holds it, and free from the moment that entry leaves the
//! trie (deleted, expired, withdrawn by the fleet), so nothing can leak or
//! drift after a crash. A slot is zeroed on every interface before it is
//! given to an entry, so a reused slot starts from zero.
use std::collections::BTreeSet;

use synguard_common::sizes;

/// Slot 0 is never given: an entry's value holds it when the entry is
/// not counted.
pub const NO_SLOT: u32 = 0;

/// The free and taken slots, as the tries' values say.
#[derive(Debug)]
pub struct Slots {
    taken: BTreeSet<u32>,
    capacity: u32,
}

impl Slots {
    /// The slots `values` hold, out of the data path's `capacity` (slot 0
    /// included); anything out of range is ignored, as the data path
    /// cannot count there.
    pub fn taken(values: impl IntoIterator<Item = u32>, capacity: u32) -> Slots {
        let taken = values
            .into_iter()
            .filter(|&s| s != NO_SLOT && s < capacity)
            .collect();
        Slots { taken, capacity }
    }

    /// As [`Slots::taken`] with `ENTRY_DROPS`' size.
    pub fn of(values: impl IntoIterator<Item = u32>) -> Slots {
        Slots::taken(values, sizes::COUNTED_ENTRIES)
    }

    /// Takes the lowest free slot; None when every one is taken.
    pub fn take(&mut self) -> Option<u32> {
        // The first gap in the taken slots, from 1.
        let mut next = NO_SLOT + 1;
        for &s in &self.taken {
            if s != next {
                break;
            }
            next += 1;
        }
        if next >= self.capacity {
            return None;
        }
        self.taken.insert(next);
        Some(next)
    }

    /// Gives `slot` back (its entry is gone).
    pub fn release(&mut self, slot: u32) {
        self.taken.remove(&slot);
    }

    /// How many slots are taken.
    pub fn len(&self) -> usize {
        self.taken.len()
    }

    pub fn is_empty(&self) -> bool {
        self.taken.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_given_lowest_first_and_never_slot_0() {
        let mut slots = Slots::taken([], 4);
        assert_eq!(slots.take(), Some(1));
        assert_eq!(slots.take(), Some(2));
        assert_eq!(slots.take(), Some(3));
        // Slot 0 means none, so a table of 4 gives 3.
        assert_eq!(slots.take(), None);
        assert_eq!(slots.len(), 3);
    }

    #[test]
    fn a_released_slot_is_given_again() {
        let mut slots = Slots::taken([], 8);
        let (a, b, c) = (slots.take(), slots.take(), slots.take());
        assert_eq!((a, b, c), (Some(1), Some(2), Some(3)));
        slots.release(2);
        assert_eq!(slots.take(), Some(2));
        assert_eq!(slots.take(), Some(4));
    }

    #[test]
    fn what_the_tries_hold_is_taken_and_gaps_are_filled_first() {
        // Values as read back from the tries: entries without a slot (0),
        // one out of range (a larger table before), and a gap at 2.
        let mut slots = Slots::taken([0, 1, 3, 0, 9, 4], 8);
        assert_eq!(slots.len(), 3);
        assert_eq!(slots.take(), Some(2));
        assert_eq!(slots.take(), Some(5));
        assert_eq!(slots.take(), Some(6));
        assert_eq!(slots.take(), Some(7));
        assert_eq!(slots.take(), None);
    }
}
