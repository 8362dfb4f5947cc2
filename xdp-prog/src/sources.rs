//! What the data path keeps per source address (`synguard_common::sources`):
//! the hosts' SYN budgets (used by `crate::flood`) and recent peers,
//! source addresses the kernel has a connection with, or had one with a
//! minute ago, so that in a flood their SYNs get the full socket lookup.
//! Both in one cache line per source: a SYN in a flood reads one random
//! line for the two.
use aya_ebpf::{macros::map, maps::Array};
use synguard_common::{
    ALIGNED_ARRAY, BudgetSlot, SourceSet, Words,
    sources::{self, GENERATION_SHIFT},
};

use crate::parse::{Family, Packet};

#[map(name = "SOURCES")]
static SOURCES: Array<SourceSet> = Array::with_max_entries(sources::SETS, ALIGNED_ARRAY);

/// The generation a peer word holds, in its top byte.
const GENERATION: u64 = 0xff << 56;

/// A source address's set, its host bucket's tag, its peer bit.
#[inline(always)]
fn place(src: &Words, family: Family, seed: u64) -> Option<(*mut SourceSet, u32, u64)> {
    let (set, tag, bit) = sources::place(src, family == Family::V6, seed);
    Some((SOURCES.get_ptr_mut(set)?, tag, bit))
}

/// The two slots where the source's host bucket may be, and its tag.
#[inline(always)]
pub fn host_slots(packet: &Packet, seed: u64) -> Option<(*mut [BudgetSlot; 2], u32)> {
    let (set, tag, _) = place(&packet.src, packet.family, seed)?;
    // SAFETY: a pointer into our own map's value, valid for this run.
    Some((unsafe { &raw mut (*set).hosts }, tag))
}

/// Notes that the packet's source is a peer, as of `now`: one store at
/// most, none if it was already noted in this generation. A word of an
/// older generation is started afresh.
#[inline(always)]
pub fn mark_peer(packet: &Packet, seed: u64, now: u64) {
    let Some((set, _, bit)) = place(&packet.src, packet.family, seed) else {
        return;
    };
    let generation = now >> GENERATION_SHIFT;
    let tag = (generation & 0xff) << 56;
    // SAFETY: valid for this run. Two CPUs writing a word at once may
    // lose a bit: a peer's SYN then takes the cheap path, as it would
    // have before it was a peer.
    unsafe {
        let word = &raw mut (*set).peers[(generation & 1) as usize];
        let seen = *word;
        if seen & GENERATION != tag {
            *word = tag | bit;
        } else if seen & bit == 0 {
            *word = seen | bit;
        }
    }
}

/// Whether the packet's source was noted as a peer in this generation or
/// the last (or may have been: its slot is shared, or the map could not
/// be read).
#[inline(always)]
pub fn recent_peer(src: &Words, family: Family, seed: u64, now: u64) -> bool {
    let Some((set, _, bit)) = place(src, family, seed) else {
        return true;
    };
    let generation = now >> GENERATION_SHIFT;
    // SAFETY: as in `mark_peer`.
    let [even, odd] = unsafe { (*set).peers };
    let (this, last) = if generation & 1 == 0 {
        (even, odd)
    } else {
        (odd, even)
    };
    let holds = |word: u64, generation: u64| {
        word & GENERATION == (generation & 0xff) << 56 && word & bit != 0
    };
    holds(this, generation) || holds(last, generation.wrapping_sub(1))
}
