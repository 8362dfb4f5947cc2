//! The ACK check: during a flood, an ACK that reaches a listener must
//! carry a valid cookie.
use core::ffi::c_void;

use aya_ebpf::{bindings::tcphdr, helpers::bpf_tcp_check_syncookie, programs::XdpContext};
use xdp_common::{IfaceSettings, Reason};

use super::headers::Headers;
use crate::{
    parse::{Packet, Tcp},
    sources,
};

/// During a flood: an ACK that reaches a listener (no established or
/// half-open socket took it) must carry a valid cookie. A valid one, and
/// the FIN of a connection the kernel holds, make its source a recent
/// peer.
#[inline(always)]
pub fn check_ack(ctx: &XdpContext, packet: &Packet, tcp: &Tcp, config: &IfaceSettings) -> Reason {
    let Some(mut h) = Headers::copy(ctx, packet.family, packet.l3 as u32, tcp.l4 as u32, 20) else {
        return Reason::Internal;
    };
    let Some(socket) = h.lookup(ctx) else {
        return Reason::Tcp;
    };
    if !socket.is_listener() {
        // Established, TIME_WAIT, or a request socket the kernel made.
        drop(socket);
        if tcp.flags.is_fin() {
            sources::mark_peer(packet, config.hash_seed, crate::flood::now());
        }
        return Reason::Tcp;
    }
    let ip_len = h.family.ip_len() as u32;
    // SAFETY: the helper reads ip_len bytes of `ip` and 20 of `tcp`.
    let checked = unsafe {
        bpf_tcp_check_syncookie(
            socket.0 as *mut c_void,
            h.ip as *mut c_void,
            ip_len,
            h.tcp as *mut tcphdr,
            20,
        )
    };
    drop(socket);
    if checked == 0 {
        sources::mark_peer(packet, config.hash_seed, crate::flood::now());
        Reason::ValidCookie
    } else if h.ack_for_us(ctx, packet.vlan) {
        Reason::BadCookie
    } else {
        // The lookup finds a wildcard listener whatever the destination: an
        // ACK of a connection this host forwards (or one for another MAC,
        // or a VLAN it has no device for) is not ours to judge. Asked only
        // of ACKs whose cookie failed: a valid one is passed either way.
        Reason::NotLocal
    }
}
