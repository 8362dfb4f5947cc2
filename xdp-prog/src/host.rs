//! Whether a SYN is this host's to answer: the kernel answers only a
//! segment in a frame for one of its MACs, on a VLAN it has a device for,
//! to a destination local to its namespace (the rules are in
//! `synguard_common::host`). Anything else it forwards or discards, so the
//! cookie path must not answer it: on a router or a bridge host an answer
//! would break every forwarded connection, and make the host a reflector
//! for any source address on the link.
//!
//! The MAC (and VLAN) check runs for every SYN the cookie path would
//! answer: a comparison with `HOST`, one array load the verifier inlines.
//! The destination check runs only on the full way, as the cheap way
//! serves only a port and address the full way found local less than a
//! second ago (`LISTENERS`), and for ACKs whose cookie failed: a few
//! comparisons with the addresses `HOST` holds inline, and a trie lookup
//! only where the namespace has more.
use aya_ebpf::{
    macros::map,
    maps::{Array, HashMap, LpmTrie, lpm_trie::Key},
    programs::XdpContext,
};
use synguard_common::{ALIGNED_ARRAY, HostLink, HostSelf, Words, bytes_of, host};

use crate::parse::{frame_half, frame_word, ptr_at};

/// The interface's own MAC and the first local addresses, at index 0.
#[map(name = "HOST")]
static HOST: Array<HostSelf> = Array::with_max_entries(1, ALIGNED_ARRAY);

/// The host's VLAN devices on the interface, by `host::vlan_key`.
#[map(name = "VLANS")]
static VLANS: HashMap<u32, HostLink> = HashMap::with_max_entries(host::MAX_VLANS, 0);

/// Destinations local to the interface's namespace.
#[map(name = "LOCAL_V4")]
static LOCAL_V4: LpmTrie<[u8; 4], u8> = LpmTrie::with_max_entries(host::MAX_LOCAL_V4, 0);
#[map(name = "LOCAL_V6")]
static LOCAL_V6: LpmTrie<[u8; 16], u8> = LpmTrie::with_max_entries(host::MAX_LOCAL_V6, 0);

/// Whether the frame is for this host: its destination MAC is the
/// interface's, or, on a VLAN, the VLAN device's; and every VLAN tag
/// (priority tags aside) names a VLAN device the host has there.
#[inline(always)]
pub fn frame_for_us(ctx: &XdpContext, vlan: u32) -> bool {
    let (Some(dst), Some(own)) = (ptr_at::<[u8; 6]>(ctx, 0), HOST.get(0)) else {
        return false;
    };
    // SAFETY: `ptr_at` checked that the six bytes lie inside the frame.
    let dst = unsafe { mac_words(dst as *const u8) };
    // SAFETY: `mac` starts a map value (the kernel aligns them to 8).
    let own_mac = unsafe { mac_words(own.mac.as_ptr()) };
    if vlan == 0 {
        return dst == own_mac;
    }
    // SAFETY: a lookup in our own map; the value is valid for this run.
    match unsafe { VLANS.get(&vlan) } {
        // SAFETY: as for `own.mac`.
        Some(device) => dst == own_mac || dst == unsafe { mac_words(device.mac.as_ptr()) },
        None => false,
    }
}

/// A MAC address as a word and a half, in two loads: compared as arrays,
/// six bytes were each loaded, shifted and ored into one value.
///
/// # Safety
/// The 6 bytes at `p` must be readable (the frame, checked, or a map's).
#[inline(always)]
unsafe fn mac_words(p: *const u8) -> (u32, u16) {
    // SAFETY: the caller's; on alignment, `frame_word`.
    unsafe { (frame_word(p), frame_half(p.add(4))) }
}

/// Whether an IPv4 destination (its bytes as one word, `Words`) is local
/// to the namespace.
#[inline(always)]
pub fn local_v4(addr: u32) -> bool {
    let Some(own) = HOST.get(0) else {
        return false;
    };
    let n = own.n_v4 as usize;
    for i in 0..host::INLINE_V4 {
        if i < n && own.v4[i] == addr {
            return true;
        }
    }
    own.more_v4 != 0 && LOCAL_V4.get(Key::new(32, addr.to_le_bytes())).is_some()
}

/// Whether an IPv6 destination is local to the namespace.
#[inline(always)]
pub fn local_v6(addr: Words) -> bool {
    let Some(own) = HOST.get(0) else {
        return false;
    };
    let n = own.n_v6 as usize;
    for i in 0..host::INLINE_V6 {
        if i < n && own.v6[i] == addr {
            return true;
        }
    }
    own.more_v6 != 0 && LOCAL_V6.get(Key::new(128, bytes_of(&addr))).is_some()
}
