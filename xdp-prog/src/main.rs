//! synguard's XDP program. It reads top to bottom: parse the headers
//! ([`parse`]), apply the lists ([`lists`]), defend against SYN floods
//! ([`flood`], [`cookie`]), count ([`counters`]), act.
#![no_std]
#![no_main]

mod capture;
mod cookie;
mod counters;
mod events;
mod flood;
mod flows;
mod host;
mod lists;
mod parse;
mod sources;

use aya_ebpf::{macros::xdp, programs::XdpContext};
use parse::{L4, Packet, Tcp};
use synguard_common::Reason;

/// The loopback interface's index in every network namespace.
const LOOPBACK_IFINDEX: usize = 1;

/// The entry point attached to each protected interface. Both programs
/// are loaded with `xdp.frags` (BPF_F_XDP_HAS_FRAGS): without it the
/// kernel refuses native XDP on an interface whose MTU needs more than
/// one buffer a frame (jumbo frames on veth, virtio_net, most NICs).
#[xdp(frags)]
pub fn synguard(ctx: XdpContext) -> u32 {
    // Counted as received, before a SYN is rewritten into its answer.
    let len = ctx.data_end() - ctx.data();
    let reason = verdict(&ctx);
    counters::settle(&ctx, reason, len)
}

/// The cookie path: a program of its own, which `synguard` hands the SYNs
/// it answers in a flood with a tail call (`cookie::hand_over`).
#[xdp(frags)]
pub fn synguard_syn(ctx: XdpContext) -> u32 {
    let len = ctx.data_end() - ctx.data();
    let reason = cookie::answer_handed(&ctx);
    counters::settle(&ctx, reason, len)
}

/// Why this packet gets the verdict it gets.
#[inline(always)]
fn verdict(ctx: &XdpContext) -> Reason {
    let packet = match parse::parse(ctx) {
        Ok(packet) => packet,
        Err(settled) => return settled,
    };
    let len = ctx.data_end() - ctx.data();
    let listed = lists::lookup(&packet, len);
    if listed.allowed() {
        return Reason::Allowlist;
    }
    if listed.blocked() {
        listed.count_block_drop(&packet, len);
        return Reason::Blocklist;
    }
    let tcp = match packet.l4 {
        L4::Tcp(tcp) => tcp,
        L4::Other(reason) => return reason,
    };
    let Some(config) = flood::config() else {
        return Reason::Internal;
    };
    if tcp.flags.is_syn() {
        syn(ctx, &packet, &listed, &tcp, config)
    } else if tcp.flags.is_handshake_ack() && flood::active(config) {
        cookie::check_ack(ctx, &packet, &tcp, config)
    } else {
        // A connection closing: its source stays a recent peer through
        // the TIME_WAIT that may follow.
        if tcp.flags.is_fin() {
            sources::mark_peer(&packet, config.hash_seed, flood::now());
        }
        // A connection reset: not to be trusted as established any more.
        if tcp.flags.is_rst()
            && flood::active(config)
            && let Some(flow) = flows::Flow::of(ctx, &packet, &tcp, config.hash_seed)
        {
            flow.forget();
        }
        Reason::Tcp
    }
}

/// A connection request: sanity checks, then the flood defence.
#[inline(always)]
fn syn(
    ctx: &XdpContext,
    packet: &Packet,
    listed: &lists::Listed,
    tcp: &Tcp,
    config: &synguard_common::IfaceSettings,
) -> Reason {
    if tcp.flags.is_bad_syn() {
        return Reason::BadFlags;
    }
    // On loopback, 127/8 and ::1 are the host talking to itself.
    if ctx.ingress_ifindex() != LOOPBACK_IFINDEX && listed.martian(packet) {
        return Reason::Martian;
    }
    // One clock read for the whole SYN: detection, budgets, the answer's
    // timestamp (each read is a helper call and a TSC read).
    let now = flood::now();
    if !flood::on_syn(config, now) || config.unguarded_ports.contains(tcp.dport) {
        return Reason::Syn;
    }
    if !flood::within_budget(packet, config, now) {
        return Reason::Rate;
    }
    // RFC 1122 4.2.3.10: a SYN to a broadcast or multicast address is
    // silently discarded. The kernel does (tcp_v4_rcv drops frames not for
    // this host, tcp_v{4,6}_conn_request SYNs to group addresses); an answer
    // from here would come from a group address, from every host that got
    // the SYN. The kernel gets it, and discards it. (The cookie path checks
    // the rest of what makes a SYN ours: `host`.)
    if !packet.unicast {
        return Reason::NotLocal;
    }
    cookie::hand_over(ctx, packet, tcp, config, now)
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
