//! synguard's XDP program. It reads top to bottom: parse the headers
//! ([`parse`]), decide ([`verdict`]), count ([`counters`]), act.
#![no_std]
#![no_main]

mod counters;
mod parse;

use aya_ebpf::{bindings::xdp_action, macros::xdp, programs::XdpContext};
use xdp_common::{Reason, Verdict};

/// The entry point attached to each protected interface.
#[xdp]
pub fn synguard(ctx: XdpContext) -> u32 {
    let reason = verdict(&ctx);
    counters::count(&ctx, reason);
    match reason.verdict() {
        Verdict::Pass => xdp_action::XDP_PASS,
        Verdict::Drop => xdp_action::XDP_DROP,
        Verdict::Tx => xdp_action::XDP_TX,
        Verdict::Aborted => xdp_action::XDP_ABORTED,
    }
}

/// Why this packet gets the verdict it gets.
#[inline(always)]
fn verdict(ctx: &XdpContext) -> Reason {
    let tcp = match parse::parse(ctx) {
        Ok(tcp) => tcp,
        Err(settled) => return settled,
    };
    if tcp.flags.is_syn() {
        Reason::Syn
    } else {
        Reason::Tcp
    }
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
