//! The ACK check: during a flood, an ACK that reaches a listener must
//! carry a valid cookie.
use synguard_common::{IfaceSettings, Reason};

use aya_ebpf::programs::XdpContext;

use super::headers::Headers;
use crate::{
    flows::Flow,
    parse::{Packet, Tcp},
    sources,
};

/// During a flood: an ACK that reaches a listener (no established or
/// half-open socket took it) must carry a valid cookie. A valid one, and
/// any segment the lookup finds a socket other than a listener for, make
/// its source a recent peer. A connection the lookup found established
/// is remembered for a second (`flows`), and its segments pass meanwhile
/// without the lookup.
///
/// The cookie is checked first, with the raw helper (no socket): a valid
/// one passes whatever socket takes it, so it needs no lookup. The
/// socket-bound helper computes the same check after the listener's
/// recent-overflow test, which the kernel makes again when the ACK reaches
/// it; so a cookie the raw helper refuses, the listener would too.
#[inline(always)]
pub fn check_ack(ctx: &XdpContext, packet: &Packet, tcp: &Tcp, config: &IfaceSettings) -> Reason {
    let flow = Flow::of(ctx, packet, tcp, config.hash_seed);
    if let Some(flow) = &flow
        && flow.known()
    {
        if tcp.flags.is_fin() {
            flow.forget();
            sources::mark_peer(packet, config.hash_seed, crate::flood::now());
        }
        return Reason::Tcp;
    }
    // The clock only past the remembered connections (a helper call).
    let now = crate::flood::now();
    let Some(mut h) = Headers::of_ack(ctx, packet.family, packet.l3 as u32, tcp.l4 as u32) else {
        return Reason::Internal;
    };
    if h.raw_cookie_valid() {
        sources::mark_peer(packet, config.hash_seed, now);
        return Reason::ValidCookie;
    }
    let Some(socket) = h.lookup(ctx) else {
        return Reason::Tcp;
    };
    if !socket.is_listener() {
        // Established, TIME_WAIT, or a request socket the kernel made: the
        // kernel holds the 4-tuple, so its source is a peer, whose SYN
        // reusing it is the kernel's to judge (a challenge ACK where the
        // connection is established). Reached a few times a second per
        // connection at most (`flows`), so a connection that is active in
        // a flood keeps its source a recent peer.
        let established = socket.is_established();
        drop(socket);
        sources::mark_peer(packet, config.hash_seed, now);
        if established
            && !tcp.flags.is_fin()
            && let Some(flow) = &flow
        {
            flow.remember();
        }
        return Reason::Tcp;
    }
    drop(socket);
    if h.ack_for_us(ctx, packet.vlan) {
        Reason::BadCookie
    } else {
        // The lookup finds a wildcard listener whatever the destination: an
        // ACK of a connection this host forwards (or one for another MAC,
        // or a VLAN it has no device for) is not ours to judge. Asked only
        // of ACKs whose cookie failed: a valid one is passed either way.
        Reason::NotLocal
    }
}
