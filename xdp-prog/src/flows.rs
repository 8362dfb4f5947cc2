//! Connections the socket lookup found established during a flood
//! (`FLOWS`; what that trusts, and for how long: `synguard_common::flows`).
use aya_ebpf::{helpers::bpf_jiffies64, macros::map, maps::Array, programs::XdpContext};
use synguard_common::{FlowSlot, flows};

use crate::parse::{Family, Packet, Tcp, frame_word, frame_words, ptr_at};

#[map(name = "FLOWS")]
static FLOWS: Array<FlowSlot> = Array::with_max_entries(flows::SLOTS, 0);

/// A segment's connection: its slot and tag.
pub struct Flow {
    slot: u32,
    tag: u32,
}

/// Now, in `FlowSlot::seen`'s units (`flows::FRESH_JIFFIES` says why).
#[inline(always)]
fn jiffies() -> u32 {
    // SAFETY: a helper without arguments (inlined as a load).
    unsafe { bpf_jiffies64() as u32 }
}

impl Flow {
    /// The connection of a TCP segment, its addresses and ports read from
    /// the frame.
    #[inline(always)]
    pub fn of(ctx: &XdpContext, packet: &Packet, tcp: &Tcp, seed: u64) -> Option<Flow> {
        let ports: *const u8 = ptr_at::<u32>(ctx, tcp.l4)?.cast();
        // SAFETY: `ptr_at` checked that the bytes are inside the frame.
        unsafe {
            let (dst, v6) = match packet.family {
                Family::V4 => {
                    let d: *const u8 = ptr_at::<u32>(ctx, packet.l3 + 16)?.cast();
                    ([frame_word(d), 0, 0, 0], false)
                }
                Family::V6 => {
                    let d: *const u8 = ptr_at::<[u32; 4]>(ctx, packet.l3 + 24)?.cast();
                    (frame_words(d), true)
                }
            };
            let (slot, tag) = flows::place(&packet.src, &dst, frame_word(ports), v6, seed);
            Some(Flow { slot, tag })
        }
    }

    /// Whether a lookup found this connection established within the
    /// last `flows::FRESH_JIFFIES`.
    #[inline(always)]
    pub fn known(&self) -> bool {
        FLOWS.get(self.slot).is_some_and(|s| {
            s.tag == self.tag && jiffies().wrapping_sub(s.seen) < flows::FRESH_JIFFIES
        })
    }

    /// Remembers that a lookup found the connection established now.
    #[inline(always)]
    pub fn remember(&self) {
        if let Some(slot) = FLOWS.get_ptr_mut(self.slot) {
            // SAFETY: a store into our own map's value, valid for this
            // run; two CPUs storing at once leave one whole slot or the
            // other's (a forgotten connection is only looked up again).
            unsafe {
                *slot = FlowSlot {
                    tag: self.tag,
                    seen: jiffies(),
                }
            };
        }
    }

    /// Forgets the connection (its peer is ending it), if it is the one
    /// remembered in its slot.
    #[inline(always)]
    pub fn forget(&self) {
        if let Some(slot) = FLOWS.get_ptr_mut(self.slot) {
            // SAFETY: as in `remember`.
            unsafe {
                if (*slot).tag == self.tag {
                    (*slot).tag = 0;
                }
            }
        }
    }
}
