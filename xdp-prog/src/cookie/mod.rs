//! SYN cookies answered from XDP, made and checked by the kernel's own
//! helpers with the kernel's own secret, so the listener accepts the ACK as
//! if it had sent the SYN-ACK itself.
//!
//! Why the socket-bound helpers (bpf_skc_lookup_tcp + bpf_tcp_gen_syncookie)
//! at least once a second per port, and the raw ones only in between: the
//! kernel accepts a cookie ACK only within two minutes of an overflow
//! recorded on that listener (include/net/tcp.h
//! `tcp_synq_no_recent_overflow`). bpf_tcp_gen_syncookie records one
//! (net/ipv4/tcp_ipv4.c `tcp_v4_get_syncookie` calls `tcp_synq_overflow`);
//! the raw helpers do not, so with them alone handshakes fail two minutes
//! into a flood. The helper also hands out a cookie only when the kernel
//! would use one (listen queue full, or net.ipv4.tcp_syncookies=2);
//! otherwise the SYN goes to the kernel, which answers it with full options
//! and retransmits. The raw helpers compute the same cookie (the same
//! secret, MSS table and inputs) without the socket lookup, a hash walk
//! that is most of a SYN's cost (see `answer_syn`).

mod ack;
mod csum;
mod headers;
mod layout;
mod listener;
mod options;
mod synack;

pub use ack::check_ack;

use aya_ebpf::{
    macros::map,
    maps::{PerCpuArray, ProgramArray},
    programs::XdpContext,
};
use synguard_common::{IfaceSettings, Reason, listeners};

use self::{
    headers::{Headers, Offer},
    listener::cached_listener,
    synack::build_syn_ack,
};
use crate::{
    host,
    parse::{Family, Packet, Tcp},
    sources,
};

/// A copy of a TCP header: 60 bytes at most, with room so that a length the
/// verifier can only bound by a mask still fits.
const HEADER_COPY: usize = 80;

/// Working memory for the cookie path, per CPU: the headers it reads and
/// the answer it builds are too large for the 512-byte BPF stack.
#[repr(C)]
pub struct Scratch {
    /// The IP header of the segment: IPv4's with its options (checksummed,
    /// not answered), IPv6's fixed header (extension headers not copied).
    ip: [u8; IPV4_MAX],
    /// The TCP header of the segment, options included.
    tcp: [u8; HEADER_COPY],
    /// The answer's IP header, ending where `out_tcp` begins (IPv4's in
    /// bytes 20..40), so that both go back into the frame in one helper
    /// call.
    out_ip: [u8; IP_END],
    /// The answer's TCP header.
    out_tcp: [u8; 40],
    /// The SYN, as `hand_over` passes it to `synguard_syn`.
    syn: HandedSyn,
}

/// What the parse found about a SYN the cookie path is to answer.
#[repr(C)]
struct HandedSyn {
    l3: u32,
    l4: u32,
    header_len: u32,
    v6: u32,
    /// The frame's VLAN chain (`synguard_common::host::vlan_key`).
    vlan: u32,
    /// Non-zero: the source is a recent peer (`crate::sources`), found
    /// by the data path, whose hash of the source its budget check has
    /// just made.
    peer: u32,
    now: u64,
}

impl HandedSyn {
    #[inline(always)]
    fn family(&self) -> Family {
        if self.v6 != 0 { Family::V6 } else { Family::V4 }
    }
}

/// Where the answer's IP header ends and its TCP header begins.
const IP_END: usize = 40;
/// The longest IPv4 header, options included.
const IPV4_MAX: usize = 60;

#[map(name = "SCRATCH")]
static SCRATCH: PerCpuArray<Scratch> = PerCpuArray::with_max_entries(1, 0);

/// The cookie path's program (`synguard_syn`), at index 0: the data path
/// hands it the SYNs it answers with a tail call (`hand_over`), so that
/// the verifier checks it once, as a program of its own with a stack of
/// its own, not again for every state the parse reaches it in.
#[map(name = "TAIL")]
static TAIL: ProgramArray = ProgramArray::with_max_entries(1, 0);

/// During a flood: answer a SYN with a SYN-ACK carrying a kernel cookie.
///
/// The full way looks up the socket and asks the socket-bound helper for
/// the cookie, which renews the listener's overflow stamp and gives out a
/// cookie only when the kernel would. Its answer is remembered per port
/// and address for a second (`LISTENERS`), and meanwhile SYNs to that
/// port are dropped if no socket was there, or get their cookie from the
/// raw helper, unless they come from a recent peer (`crate::sources`): for
/// those the lookup may find a connection the kernel still holds.
#[inline(always)]
fn answer_syn(ctx: &XdpContext, syn: &HandedSyn, config: &IfaceSettings) -> Reason {
    // The family is decided once, and each arm is a copy of the path with
    // it constant. With one path, the compiler tests the family again at
    // every difference and reuses stack slots between the arms; Linux 6.1's
    // verifier does not carry the first test's outcome to the later ones
    // (the family is spilled to the stack without an ID:
    // kernel/bpf/verifier.c `find_equal_scalars`), walks mixed V4/V6 paths
    // that cannot happen, and rejects one that treats a V6 arm's stack
    // pointer as V4 address bytes ("bitwise operator &= on pointer").
    match syn.family() {
        Family::V4 => answer_syn_as(ctx, syn, Family::V4, config),
        Family::V6 => answer_syn_as(ctx, syn, Family::V6, config),
    }
}

#[inline(always)]
fn answer_syn_as(
    ctx: &XdpContext,
    syn: &HandedSyn,
    family: Family,
    config: &IfaceSettings,
) -> Reason {
    let now = syn.now;
    if !host::frame_for_us(ctx, syn.vlan) {
        return Reason::NotLocal;
    }
    let offer = Offer::of(config);
    let Some(mut h) = Headers::of_syn(ctx, syn, family, offer) else {
        return Reason::Internal;
    };
    if h.family == Family::V4 && !h.ipv4_header_ok(syn.l4.wrapping_sub(syn.l3)) {
        return Reason::Malformed;
    }
    // The answer is built and sized in the frame's first buffer: a SYN
    // whose packet runs past it (a multi-buffer frame: data in a jumbo
    // SYN, a NIC's header split) goes to the kernel.
    if !h.in_first_buffer(ctx, syn.l3) {
        return Reason::CookieFallback;
    }
    let t = h.tcp();
    let dport = u16::from_be_bytes([t[2], t[3]]);
    let cheap = match cached_listener(dport, &h, now) {
        Some(listeners::NONE) => return Reason::NoListener,
        Some(_) if syn.peer == 0 => Some(h.raw_cookie()).filter(|&generated| generated >= 0),
        _ => None,
    };
    let generated = match cheap {
        Some(generated) => generated,
        // The full way, for a destination found local: a fresh slot in
        // `LISTENERS` is one (`remember_listener` follows this check).
        None if !h.local_destination() => return Reason::NotLocal,
        None => match h.socket_cookie(ctx, dport, now) {
            Ok(generated) => generated,
            Err(reason) => return reason,
        },
    };
    // Dry-run: everything decided, the SYN passed to the kernel as it
    // came (`counters::settle` counts it as the answer it would get).
    if config.dry_run != 0 {
        return Reason::SynAck;
    }
    build_syn_ack(
        ctx,
        syn.l3 as usize,
        h,
        generated as u32,
        offer,
        config,
        now,
    )
}

/// Hands a SYN to the cookie path's program (`synguard_syn`), with what
/// the parse found, and ends this program there. If that program is not
/// in `TAIL` (a broken load), the SYN goes to the kernel, which answers
/// it with a cookie of its own: `cookie_fallback`.
#[inline(always)]
pub fn hand_over(
    ctx: &XdpContext,
    packet: &Packet,
    tcp: &Tcp,
    config: &IfaceSettings,
    now: u64,
) -> Reason {
    let Some(scratch) = SCRATCH.get_ptr_mut(0) else {
        return Reason::Internal;
    };
    let peer = sources::recent_peer(&packet.src, packet.family, config.hash_seed, now);
    // SAFETY: this CPU's scratch slot, used by one program run at a time
    // (the tail call runs on the same CPU, in the same run).
    unsafe {
        (*scratch).syn = HandedSyn {
            l3: packet.l3 as u32,
            l4: tcp.l4 as u32,
            header_len: tcp.header_len as u32,
            v6: (packet.family == Family::V6) as u32,
            vlan: packet.vlan,
            peer: peer as u32,
            now,
        };
        TAIL.tail_call(ctx, 0);
    }
    crate::events::synguard_log_cookie_program_missing(now);
    Reason::CookieFallback
}

/// The cookie path's program's side of `hand_over`: the SYN it was
/// handed, answered.
#[inline(always)]
pub fn answer_handed(ctx: &XdpContext) -> Reason {
    let (Some(scratch), Some(config)) = (SCRATCH.get_ptr(0), crate::flood::config()) else {
        return Reason::Internal;
    };
    // SAFETY: this CPU's scratch slot, written by `hand_over` in this run.
    answer_syn(ctx, unsafe { &(*scratch).syn }, config)
}
