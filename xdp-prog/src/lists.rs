//! CIDR lists, shared by every interface's instance: the allowlist and
//! blocklist (checked first, for every protocol) and the martian list
//! (sources no real SYN comes from). LPM tries, longest prefix wins.
use aya_ebpf::{
    macros::map,
    maps::{Array, LpmTrie, lpm_trie::Key},
};
use xdp_common::{list_in_use, sizes};

use crate::parse::{Family, Packet};

/// Sources that skip every other check. Values: expiry (userspace's).
#[map(name = "ALLOW_V4")]
static ALLOW_V4: LpmTrie<[u8; 4], u64> = LpmTrie::with_max_entries(sizes::ALLOWLIST, 0);
#[map(name = "ALLOW_V6")]
static ALLOW_V6: LpmTrie<[u8; 16], u64> = LpmTrie::with_max_entries(sizes::ALLOWLIST, 0);

/// Sources whose every packet is dropped. Values: expiry (userspace's).
#[map(name = "BLOCK_V4")]
static BLOCK_V4: LpmTrie<[u8; 4], u64> = LpmTrie::with_max_entries(sizes::BLOCKLIST, 0);
#[map(name = "BLOCK_V6")]
static BLOCK_V6: LpmTrie<[u8; 16], u64> = LpmTrie::with_max_entries(sizes::BLOCKLIST, 0);

/// SYN sources that cannot be real (net/ipv4/route.c `martian_source`).
#[map(name = "MARTIAN_V4")]
static MARTIAN_V4: LpmTrie<[u8; 4], u64> = LpmTrie::with_max_entries(sizes::MARTIANS, 0);
#[map(name = "MARTIAN_V6")]
static MARTIAN_V6: LpmTrie<[u8; 16], u64> = LpmTrie::with_max_entries(sizes::MARTIANS, 0);

/// Per trie, 0 when userspace knows it is empty: a lookup in an empty trie
/// still costs a helper call, paid by every packet for the usually empty
/// allowlist. Userspace sets a flag before inserting and clears it only
/// after a delete left the trie empty, so it never under-states.
#[map(name = "LIST_IN_USE")]
static LIST_IN_USE: Array<u32> = Array::with_max_entries(list_in_use::COUNT, 0);

/// One list: its two tries and their `LIST_IN_USE` slots.
struct List {
    v4: &'static LpmTrie<[u8; 4], u64>,
    v6: &'static LpmTrie<[u8; 16], u64>,
    v4_slot: u32,
    v6_slot: u32,
}

const ALLOW: List = List {
    v4: &ALLOW_V4,
    v6: &ALLOW_V6,
    v4_slot: list_in_use::ALLOW_V4,
    v6_slot: list_in_use::ALLOW_V6,
};
const BLOCK: List = List {
    v4: &BLOCK_V4,
    v6: &BLOCK_V6,
    v4_slot: list_in_use::BLOCK_V4,
    v6_slot: list_in_use::BLOCK_V6,
};
const MARTIAN: List = List {
    v4: &MARTIAN_V4,
    v6: &MARTIAN_V6,
    v4_slot: list_in_use::MARTIAN_V4,
    v6_slot: list_in_use::MARTIAN_V6,
};

#[inline(always)]
pub fn allowed(packet: &Packet) -> bool {
    listed(&ALLOW, packet)
}

#[inline(always)]
pub fn blocked(packet: &Packet) -> bool {
    listed(&BLOCK, packet)
}

#[inline(always)]
pub fn martian(packet: &Packet) -> bool {
    listed(&MARTIAN, packet)
}

/// False only if the trie is known to be empty (a failed lookup of the
/// flag counts as in use).
#[inline(always)]
fn in_use(slot: u32) -> bool {
    LIST_IN_USE.get(slot).is_none_or(|flag| *flag != 0)
}

#[inline(always)]
fn listed(list: &List, packet: &Packet) -> bool {
    match packet.family {
        Family::V4 => {
            let s = &packet.src;
            in_use(list.v4_slot)
                && list
                    .v4
                    .get(Key::new(32, [s[0], s[1], s[2], s[3]]))
                    .is_some()
        }
        Family::V6 => in_use(list.v6_slot) && list.v6.get(Key::new(128, packet.src)).is_some(),
    }
}
