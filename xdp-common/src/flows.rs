//! Where the data path remembers, per interface, connections its socket
//! lookup found established during a flood (`FLOWS`, an array of
//! [`FlowSlot`] indexed by a keyed hash of the 4-tuple): so that the
//! segments of a connection the kernel holds pay for that lookup a few
//! times a second, not each. In a flood every ACK must be looked up, because one
//! that only a listener takes must carry a valid cookie; a remembered
//! connection's segments pass without it, as they would after the lookup.
//!
//! What that trusts: for at most [`FRESH_JIFFIES`] after a lookup, a
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
/// How long a lookup's finding is trusted, in jiffies (kernel ticks,
/// `bpf_jiffies64`): a second at HZ=100, the fewest ticks a second that
/// x86's and arm64's Kconfig offer, and less at more (0.4 s at Debian's
/// 250). The data path reads jiffies, not a clock in ns, to know whether
/// a remembered connection is fresh: the verifier inlines
/// `bpf_jiffies64` as one load on 64-bit JITs (kernel/bpf/verifier.c
/// `do_misc_fixups`), where `bpf_ktime_get_coarse_ns` is a helper call
/// that was a quarter of a remembered segment's cost in flood mode. A
/// shorter trust only means a lookup a few times a second per
/// connection, instead of once.
pub const FRESH_JIFFIES: u32 = 100;

/// A 4-tuple's slot and tag (never 0, which marks an empty slot): the
/// source and destination addresses ([`Words`](crate::Words)) and both
/// ports, as they are in the segment. The ports are folded into the
/// destination, this host's address, which a forger cannot choose: two
/// tuples of the same destination collide only by the seed. An IPv4
/// tuple is then one 64-bit word, mixed once; an IPv6 one four. Only
/// the data path places flows: userspace need not agree.
#[inline(always)]
pub fn place(
    src: &crate::Words,
    dst: &crate::Words,
    ports: u32,
    v6: bool,
    seed: u64,
) -> (u32, u32) {
    let h = if v6 {
        let mut h = crate::mix(seed ^ crate::pair(src[0], src[1]));
        h = crate::mix(h ^ crate::pair(src[2], src[3]));
        h = crate::mix(h ^ crate::pair(dst[0] ^ ports, dst[1]));
        crate::mix(h ^ crate::pair(dst[2], dst[3]))
    } else {
        crate::mix(seed ^ crate::pair(src[0], dst[0] ^ ports))
    };
    ((h >> 32) as u32 % SLOTS, h as u32 | 1)
}

/// A connection the data path's socket lookup found established.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct FlowSlot {
    /// The 4-tuple's tag ([`place`]); 0: empty.
    pub tag: u32,
    /// When: jiffies, their low 32 bits.
    pub seen: u32,
}
