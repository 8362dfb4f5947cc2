//! CIDR lists, shared by every interface's instance: the allowlist and
//! blocklist (checked first, for every protocol) and the martian list
//! (sources no real SYN comes from). LPM tries, longest prefix wins.
use aya_ebpf::{
    macros::map,
    maps::{LpmTrie, lpm_trie::Key},
};
use xdp_common::sizes;

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

#[inline(always)]
pub fn allowed(packet: &Packet) -> bool {
    listed(&ALLOW_V4, &ALLOW_V6, packet)
}

#[inline(always)]
pub fn blocked(packet: &Packet) -> bool {
    listed(&BLOCK_V4, &BLOCK_V6, packet)
}

#[inline(always)]
pub fn martian(packet: &Packet) -> bool {
    listed(&MARTIAN_V4, &MARTIAN_V6, packet)
}

#[inline(always)]
fn listed(v4: &LpmTrie<[u8; 4], u64>, v6: &LpmTrie<[u8; 16], u64>, packet: &Packet) -> bool {
    match packet.family {
        Family::V4 => {
            let s = &packet.src;
            v4.get(Key::new(32, [s[0], s[1], s[2], s[3]])).is_some()
        }
        Family::V6 => v6.get(Key::new(128, packet.src)).is_some(),
    }
}
