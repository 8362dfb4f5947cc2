//! Where the data path remembers, per interface, connections its socket
//! lookup found established during a flood (`FLOWS`, an array of
//! [`FlowSlot`] indexed by a keyed hash of the 4-tuple): so that the
//! segments of a connection the kernel holds pay for that lookup once a
//! second, not each. In a flood every ACK must be looked up, because one
//! that only a listener takes must carry a valid cookie; a remembered
//! connection's segments pass without it, as they would after the lookup.
//!
//! What that trusts: for at most [`FRESH_NS`] after a lookup, a
//! segment with the same 4-tuple (and a 32-bit tag of a keyed hash
//! matching) belongs to a socket the kernel holds. A FIN or RST from the
//! peer forgets the connection at once; only one the server ends (an RST
//! it sends) can be remembered for up to that second after its socket has
//! gone, and an ACK forged with that exact 4-tuple in it reaches the
//! listener, whose own cookie check then refuses it. The seed
//! (`IfaceSettings::hash_seed`) is random per interface, so a flood
//! cannot aim its tuples at a remembered slot.

/// Slots (8 bytes each): 1 MiB per interface. Connections that share
/// a slot only take the lookup more often.
pub const SLOTS: u32 = 131_072;
/// How long a lookup's finding is trusted.
pub const FRESH_NS: u64 = 1_000_000_000;
/// `FlowSlot::seen` keeps the data path's clock in units of 2^20 ns
/// (about a millisecond), so that it fits in 32 bits.
pub const CLOCK_SHIFT: u32 = 20;

/// A 4-tuple's slot and tag (never 0, which marks an empty slot): the
/// source and destination addresses (IPv4's in the first four bytes
/// of each) and both ports, as they are in the segment.
#[inline(always)]
pub fn place(src: &[u8; 16], dst: &[u8; 16], ports: u32, seed: u64) -> (u32, u32) {
    let h = crate::hash_address(src, ports as u64, seed);
    let h = crate::hash_address(dst, h, seed);
    ((h >> 32) as u32 % SLOTS, h as u32 | 1)
}

/// A connection the data path's socket lookup found established.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct FlowSlot {
    /// The 4-tuple's tag ([`place`]); 0: empty.
    pub tag: u32,
    /// When, in units of 2^[`CLOCK_SHIFT`] ns of the data path's
    /// clock.
    pub seen: u32,
}
