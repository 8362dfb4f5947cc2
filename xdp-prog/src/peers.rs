//! Recent peers (`xdp_common::peers`): source addresses the kernel has a
//! connection with, or had one with a minute ago, so that in a flood their
//! SYNs get the full socket lookup.
use aya_ebpf::{macros::map, maps::Array};
use xdp_common::{
    PeerWords,
    peers::{self, GENERATION_SHIFT},
};

use crate::parse::Packet;

#[map(name = "PEERS")]
static PEERS: Array<PeerWords> = Array::with_max_entries(peers::ENTRIES, 0);

/// The generation a word holds, in its top byte.
const GENERATION: u64 = 0xff << 56;

/// Notes that the packet's source is a peer, as of `now`: one store at
/// most, none if it was already noted in this generation. A word of an
/// older generation is started afresh.
#[inline(always)]
pub fn mark(packet: &Packet, seed: u64, now: u64) {
    let (entry, pair, bit) = peers::place(&packet.src, seed);
    let Some(words) = PEERS.get_ptr_mut(entry) else {
        return;
    };
    let generation = now >> GENERATION_SHIFT;
    let tag = (generation & 0xff) << 56;
    // SAFETY: valid for this run. Two CPUs writing a word at once may
    // lose a bit: a peer's SYN then takes the cheap path, as it would
    // have before it was a peer.
    unsafe {
        let word = &raw mut (*words).0[pair][(generation & 1) as usize];
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
pub fn recent(packet: &Packet, seed: u64, now: u64) -> bool {
    let (entry, pair, bit) = peers::place(&packet.src, seed);
    let Some(words) = PEERS.get(entry) else {
        return true;
    };
    let generation = now >> GENERATION_SHIFT;
    let [even, odd] = words.0[pair];
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
