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
use synguard_common::{ALIGNED_ARRAY, HostLink, HostSelf, host};

use crate::parse::ptr_at;

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
    let dst = unsafe { &*dst };
    if vlan == 0 {
        return *dst == own.mac;
    }
    // SAFETY: a lookup in our own map; the value is valid for this run.
    match unsafe { VLANS.get(&vlan) } {
        Some(device) => *dst == own.mac || *dst == device.mac,
        None => false,
    }
}

/// Whether an IPv4 destination (network order) is local to the namespace.
#[inline(always)]
pub fn local_v4(addr: [u8; 4]) -> bool {
    let Some(own) = HOST.get(0) else {
        return false;
    };
    local(addr, &own.v4, own.n_v4, own.more_v4, &LOCAL_V4)
}

/// Whether an IPv6 destination is local to the namespace.
#[inline(always)]
pub fn local_v6(addr: [u8; 16]) -> bool {
    let Some(own) = HOST.get(0) else {
        return false;
    };
    local(addr, &own.v6, own.n_v6, own.more_v6, &LOCAL_V6)
}

/// Whether `addr` is one of the first `n` of `HOST`'s inline addresses,
/// else, if there are `more`, in the trie.
#[inline(always)]
fn local<const N: usize, const INLINE: usize>(
    addr: [u8; N],
    inline: &[[u8; N]; INLINE],
    n: u8,
    more: u8,
    trie: &LpmTrie<[u8; N], u8>,
) -> bool {
    let n = n as usize;
    for i in 0..INLINE {
        if i < n && inline[i] == addr {
            return true;
        }
    }
    more != 0 && trie.get(Key::new((N * 8) as u32, addr)).is_some()
}
