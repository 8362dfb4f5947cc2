//! The SYN-ACK: what it takes from the SYN, the headers it is written
//! as, and putting it in the frame.
use core::{ffi::c_void, mem::MaybeUninit};

use aya_ebpf::{
    helpers::{bpf_xdp_adjust_tail, bpf_xdp_store_bytes},
    programs::XdpContext,
};
use xdp_common::{Config, Reason};

use super::{
    csum::{address_words, fold, word, words},
    headers::{Headers, Offer},
    options::{
        ClientOptions, OPT_MSS, OPT_NOP, OPT_SACK_PERM, OPT_TIMESTAMP, OPT_WSCALE, client_options,
        linux_syn_options,
    },
};
use crate::parse::{Family, ptr_at};

const IPPROTO_TCP: u8 = 6;
/// net/ipv4/syncookies.c: the low 6 bits of a cookie timestamp carry the
/// options (window scale, SACK, ECN).
const TS_OPT_WSCALE_MASK: u32 = 0xf;
const TS_OPT_SACK: u32 = 1 << 4;
const TSBITS: u32 = 6;
const DEFAULT_MSS_V4: u16 = 1460;
const DEFAULT_MSS_V6: u16 = 1440;
const SYN_ACK_TTL: u8 = 64;
/// The SYN-ACK's window; SYN segments are never scaled (RFC 7323 2.2).
const SYN_ACK_WINDOW: u16 = 65535;

/// What the answer takes from the SYN, read before any of it is written
/// (the frame form writes the answer over the SYN).
pub(super) struct Syn {
    /// The SYN's source and destination ports, as in its header.
    ports: [u8; 4],
    seq: u32,
    pub(super) options: ClientOptions,
    /// The client's address and the server's.
    addrs: Addrs,
}

enum Addrs {
    V4 { client: [u8; 4], server: [u8; 4] },
    V6 { client: [u8; 16], server: [u8; 16] },
}

impl Syn {
    #[inline(always)]
    pub(super) fn read(h: &Headers) -> Syn {
        let th = h.tcp();
        let options = match linux_syn_options(th, h.tcp_len) {
            Some(options) => options,
            // (The frame form has Linux's options: `Headers::in_frame`.)
            None => client_options(h.tcp_len),
        };
        let ip = h.ip();
        // Not zeroed arrays filled in: zeroing costs a call to memset.
        let addrs = match h.family {
            Family::V4 => {
                let (client, server) = h.v4_addrs();
                Addrs::V4 { client, server }
            }
            Family::V6 => {
                let mut client = MaybeUninit::<[u8; 16]>::uninit();
                let mut server = MaybeUninit::<[u8; 16]>::uninit();
                // SAFETY: every byte of both is written before they are read.
                unsafe {
                    (*client.as_mut_ptr()).copy_from_slice(&ip[8..24]);
                    (*server.as_mut_ptr()).copy_from_slice(&ip[24..40]);
                    Addrs::V6 {
                        client: client.assume_init(),
                        server: server.assume_init(),
                    }
                }
            }
        };
        Syn {
            ports: [th[0], th[1], th[2], th[3]],
            seq: u32::from_be_bytes([th[4], th[5], th[6], th[7]]),
            options,
            addrs,
        }
    }
}

/// Writes the SYN-ACK that answers the SYN: addresses and ports swapped,
/// seq = cookie, ack = the client's seq + 1, and the options the kernel's
/// own cookie SYN-ACK would carry. IP options, IPv6 extension headers and
/// any SYN payload are not carried over.
#[inline(always)]
pub(super) fn build_syn_ack(
    ctx: &XdpContext,
    l3: usize,
    h: Headers,
    cookie: u32,
    offer: Offer,
    config: &Config,
    now: u64,
) -> Reason {
    let family = h.family;
    let syn = Syn::read(&h);
    let client = syn.options;

    // Timestamps carry the options through the handshake (syncookies.c
    // `cookie_init_timestamp`); without them the cookie holds the MSS only.
    let use_ts = offer.ts_cookies != 0 && client.timestamps();
    let sack = use_ts && client.sack() && offer.sack != 0;
    let client_wscale = client.wscale();
    let wscale = use_ts && offer.window_scaling != 0 && client_wscale.is_some();

    // Every byte of the answer up to its length is written below, none
    // zeroed first: a zeroed buffer costs a call to memset, which in BPF
    // loops a byte at a time.
    // SAFETY: the frame's own headers (checked) or scratch; the SYN's
    // bytes were all read into `syn` above.
    let out = unsafe { &mut *h.out_tcp };
    // The checksum is summed from the values written, not read back from
    // the bytes: each 16-bit word read back cost two byte loads, a shift
    // and an or in BPF.
    let ack = syn.seq.wrapping_add(1);
    let mut sum = words(u32::from_be_bytes([
        syn.ports[2],
        syn.ports[3],
        syn.ports[0],
        syn.ports[1],
    ])) + words(cookie)
        + words(ack)
        + SYN_ACK_WINDOW as u32;
    out[0..2].copy_from_slice(&syn.ports[2..4]);
    out[2..4].copy_from_slice(&syn.ports[0..2]);
    out[4..8].copy_from_slice(&cookie.to_be_bytes());
    out[8..12].copy_from_slice(&ack.to_be_bytes());
    out[13] = 0x12; // SYN | ACK
    out[14..16].copy_from_slice(&SYN_ACK_WINDOW.to_be_bytes());
    // The checksum, 0 while it is computed, and the urgent pointer.
    out[16..18].copy_from_slice(&0u16.to_be_bytes());
    out[18..20].copy_from_slice(&0u16.to_be_bytes());
    let mss = match family {
        Family::V4 if config.mss_v4 != 0 => config.mss_v4,
        Family::V4 => DEFAULT_MSS_V4,
        Family::V6 if config.mss_v6 != 0 => config.mss_v6,
        Family::V6 => DEFAULT_MSS_V6,
    };
    out[20] = OPT_MSS;
    out[21] = 4;
    out[22..24].copy_from_slice(&mss.to_be_bytes());
    sum += word(OPT_MSS, 4) + mss as u32;
    let mut tcp_len = 24usize;
    if use_ts {
        let mut options = match client_wscale {
            Some(shift) if wscale => shift as u32,
            _ => TS_OPT_WSCALE_MASK,
        };
        if sack {
            options |= TS_OPT_SACK;
        }
        // The kernel's TCP clock is CLOCK_MONOTONIC (tcp_clock_ns); `now`
        // is the same clock as of the last tick, so never ahead of it.
        let now_ms = now / 1_000_000;
        let mut ts = ((now_ms >> TSBITS) << TSBITS) | options as u64;
        // Keep TSval <= the clock, as cookie_init_timestamp does.
        if ts > now_ms {
            ts -= 1 << TSBITS;
        }
        if sack {
            out[24..26].copy_from_slice(&[OPT_SACK_PERM, 2]);
            sum += word(OPT_SACK_PERM, 2);
        } else {
            out[24..26].copy_from_slice(&[OPT_NOP, OPT_NOP]);
            sum += word(OPT_NOP, OPT_NOP);
        }
        out[26..28].copy_from_slice(&[OPT_TIMESTAMP, 10]);
        out[28..32].copy_from_slice(&(ts as u32).to_be_bytes());
        out[32..36].copy_from_slice(&(client.tsval as u32).to_be_bytes());
        sum += word(OPT_TIMESTAMP, 10) + words(ts as u32) + words(client.tsval as u32);
        tcp_len = 36;
        if wscale {
            out[36..40].copy_from_slice(&[OPT_NOP, OPT_WSCALE, 3, config.wscale]);
            sum += word(OPT_NOP, OPT_WSCALE) + word(3, config.wscale);
            tcp_len = 40;
        }
    }
    let doff = ((tcp_len / 4) as u8) << 4;
    out[12] = doff;
    sum += word(doff, 0x12);

    let pseudo = match syn.addrs {
        Addrs::V4 { client, server } => {
            // SAFETY: 20 bytes where the answer's IP header goes.
            let ip = unsafe { &mut *(h.out_ip as *mut [u8; 20]) };
            ip[0] = 0x45;
            ip[1] = 0; // DSCP, ECN
            ip[2..4].copy_from_slice(&((20 + tcp_len) as u16).to_be_bytes());
            ip[4..6].copy_from_slice(&0u16.to_be_bytes()); // identification
            ip[6] = 0x40; // don't fragment, offset 0
            ip[7] = 0;
            ip[8] = SYN_ACK_TTL;
            ip[9] = IPPROTO_TCP;
            ip[10..12].copy_from_slice(&0u16.to_be_bytes()); // checksum, below
            ip[12..16].copy_from_slice(&server);
            ip[16..20].copy_from_slice(&client);
            let addrs = words(u32::from_be_bytes(server)) + words(u32::from_be_bytes(client));
            let ip_sum = fold(
                word(0x45, 0)
                    + (20 + tcp_len) as u32
                    + word(0x40, 0)
                    + word(SYN_ACK_TTL, IPPROTO_TCP)
                    + addrs,
            );
            ip[10..12].copy_from_slice(&(!ip_sum).to_be_bytes());
            addrs
        }
        Addrs::V6 { client, server } => {
            // SAFETY: 40 bytes where the answer's IP header goes.
            let ip = unsafe { &mut *(h.out_ip as *mut [u8; 40]) };
            // Version 6, traffic class and flow label 0.
            ip[0..4].copy_from_slice(&0x6000_0000u32.to_be_bytes());
            ip[4..6].copy_from_slice(&(tcp_len as u16).to_be_bytes());
            ip[6] = IPPROTO_TCP;
            ip[7] = SYN_ACK_TTL;
            ip[8..24].copy_from_slice(&server);
            ip[24..40].copy_from_slice(&client);
            // RFC 8200 8.1: the pseudo-header holds both addresses.
            address_words(&server) + address_words(&client)
        }
    };
    let tcp_sum = fold(sum + pseudo + IPPROTO_TCP as u32 + tcp_len as u32);
    out[16..18].copy_from_slice(&(!tcp_sum).to_be_bytes());
    emit(ctx, l3, &h, tcp_len)
}

/// Puts the answer in the frame and swaps the MACs (constant offsets, no
/// helper). The frame form's answer is there already, as long as the
/// SYN. A copy's is written back in one helper call, after the frame is
/// resized to L2 + IP + TCP; the resize comes first: if the driver cannot,
/// nothing has been touched yet and the SYN goes to the kernel instead.
#[inline(always)]
fn emit(ctx: &XdpContext, l3: usize, h: &Headers, tcp_len: usize) -> Reason {
    let ip_len = h.family.ip_len();
    let old_len = ctx.data_end() - ctx.data();
    let new_len = l3 + ip_len + tcp_len;
    if h.in_frame {
        // `Headers::of_syn` took this form only for answers as long.
        if new_len != old_len {
            return Reason::Internal;
        }
    } else {
        let delta = new_len as i32 - old_len as i32;
        // SAFETY: plain helper calls on our context and scratch memory.
        if delta != 0 && unsafe { bpf_xdp_adjust_tail(ctx.ctx, delta) } != 0 {
            return Reason::CookieFallback;
        }
        let tcp_len = tcp_len.min(40);
        // SAFETY: `out_ip + ip_len` is `out_tcp` (`Headers::copy`).
        let stored = unsafe {
            bpf_xdp_store_bytes(
                ctx.ctx,
                l3 as u32,
                h.out_ip as *mut c_void,
                (ip_len + tcp_len) as u32,
            )
        };
        if stored != 0 {
            return Reason::Internal;
        }
    }
    // The resize moved the frame's end: `ptr_at` checks against the new one.
    let Some(macs) = ptr_at::<[u8; 12]>(ctx, 0) else {
        return Reason::Internal;
    };
    let macs = macs as *mut [u8; 12];
    // SAFETY: `ptr_at` checked that the 12 bytes lie inside the frame.
    unsafe {
        let m = *macs;
        *macs = [
            m[6], m[7], m[8], m[9], m[10], m[11], m[0], m[1], m[2], m[3], m[4], m[5],
        ];
    }
    Reason::SynAck
}
