//! The SYN-ACK: what it takes from the SYN, the headers it is written
//! as, and putting it in the frame.
use core::ffi::c_void;

use aya_ebpf::{
    helpers::{bpf_xdp_adjust_tail, bpf_xdp_store_bytes},
    programs::XdpContext,
};
use synguard_common::{IfaceSettings, Reason, Words};

use super::{
    csum::{address_words, fold, word, words},
    headers::{Headers, Offer},
    layout::{ipv4, ipv6, put_be16, put_be32, put_word, tcp},
    options::{
        ClientOptions, OPT_MSS, OPT_MSS_LEN, OPT_NOP, OPT_SACK_PERM, OPT_SACK_PERM_LEN,
        OPT_TIMESTAMP, OPT_TIMESTAMP_LEN, OPT_WSCALE, OPT_WSCALE_LEN, client_options,
        linux_syn_options,
    },
};
use crate::parse::{Family, frame_half, frame_word, ptr_at};

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
    /// The SYN's source and destination ports, as in its header (one
    /// word: the source port's bytes in its low half).
    ports: u32,
    seq: u32,
    pub(super) options: ClientOptions,
    /// The client's address and the server's.
    addrs: Addrs,
}

/// As `Words`: the bytes in memory are the addresses', in network order.
enum Addrs {
    V4 { client: u32, server: u32 },
    V6 { client: Words, server: Words },
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
        let addrs = match h.family {
            Family::V4 => {
                let (client, server) = h.v4_addrs();
                Addrs::V4 { client, server }
            }
            Family::V6 => {
                let (client, server) = h.v6_addrs();
                Addrs::V6 { client, server }
            }
        };
        Syn {
            ports: h.tcp_word(tcp::SOURCE),
            seq: u32::from_be(h.tcp_word(tcp::SEQ)),
            options,
            addrs,
        }
    }
}

/// Writes the SYN-ACK that answers the SYN: addresses and ports swapped,
/// seq = cookie, ack = the client's seq + 1, and the options the kernel's
/// own cookie SYN-ACK would carry. IP options, IPv6 extension headers and
/// any SYN payload are not carried over.
///
/// Every byte of the answer up to its length is written, none zeroed
/// first: a zeroed buffer costs a call to memset, which in BPF loops a
/// byte at a time. The checksum is summed from the values written, not
/// read back from the bytes: each 16-bit word read back cost two byte
/// loads, a shift and an or in BPF.
#[inline(always)]
pub(super) fn build_syn_ack(
    ctx: &XdpContext,
    l3: usize,
    h: Headers,
    cookie: u32,
    offer: Offer,
    config: &IfaceSettings,
    now: u64,
) -> Reason {
    let syn = Syn::read(&h);
    // SAFETY: the frame's own headers (checked) or scratch; the SYN's
    // bytes were all read into `syn` above.
    let out = unsafe { &mut *h.out_tcp };
    let mut sum = write_tcp_fixed(out, &syn, cookie);
    sum += write_mss(out, h.family, config);
    let (tcp_len, options_sum) = write_timestamp_options(out, syn.options, offer, config, now);
    sum += options_sum;
    let doff = ((tcp_len / 4) as u8) << 4;
    out[tcp::DOFF] = doff;
    sum += word(doff, tcp::SYN_ACK);

    let pseudo = match syn.addrs {
        Addrs::V4 { client, server } => {
            // SAFETY: 20 bytes where the answer's IP header goes.
            let ip = unsafe { &mut *(h.out_ip as *mut [u8; ipv4::LEN]) };
            write_ipv4(ip, server, client, tcp_len)
        }
        Addrs::V6 { client, server } => {
            // SAFETY: 40 bytes where the answer's IP header goes.
            let ip = unsafe { &mut *(h.out_ip as *mut [u8; ipv6::LEN]) };
            write_ipv6(ip, &server, &client, tcp_len)
        }
    };
    let tcp_sum = fold(sum + pseudo + IPPROTO_TCP as u32 + tcp_len as u32);
    put_be16(out, tcp::CHECK, !tcp_sum);
    emit(ctx, l3, &h, tcp_len)
}

/// Writes the TCP header's fixed fields but the data offset, the
/// checksum 0 while it is computed; returns their sum.
#[inline(always)]
fn write_tcp_fixed(out: &mut [u8; 40], syn: &Syn, cookie: u32) -> u32 {
    let ack = syn.seq.wrapping_add(1);
    // The answer's ports are the SYN's, swapped: the word's halves.
    let ports = syn.ports.rotate_left(16);
    let sum = words(ports.swap_bytes()) + words(cookie) + words(ack) + SYN_ACK_WINDOW as u32;
    put_word(out, tcp::SOURCE, ports);
    put_be32(out, tcp::SEQ, cookie);
    put_be32(out, tcp::ACK, ack);
    out[tcp::FLAGS] = tcp::SYN_ACK;
    put_be16(out, tcp::WINDOW, SYN_ACK_WINDOW);
    put_be16(out, tcp::CHECK, 0);
    put_be16(out, tcp::URGENT, 0);
    sum
}

/// Where the MSS option goes, and where the options after it begin.
const MSS_AT: usize = tcp::OPTIONS;
const TS_BLOCK_AT: usize = MSS_AT + OPT_MSS_LEN as usize;
/// SACK permitted (or two NOPs), then the timestamps, then NOP and the
/// window scale.
const TIMESTAMP_AT: usize = TS_BLOCK_AT + 2;
const WSCALE_AT: usize = TIMESTAMP_AT + OPT_TIMESTAMP_LEN as usize;
const WSCALE_END: usize = WSCALE_AT + 1 + OPT_WSCALE_LEN as usize;

/// Writes the MSS option, the configured MSS or the default; returns its
/// sum.
#[inline(always)]
fn write_mss(out: &mut [u8; 40], family: Family, config: &IfaceSettings) -> u32 {
    let mss = match family {
        Family::V4 if config.mss_v4 != 0 => config.mss_v4,
        Family::V4 => DEFAULT_MSS_V4,
        Family::V6 if config.mss_v6 != 0 => config.mss_v6,
        Family::V6 => DEFAULT_MSS_V6,
    };
    put_be16(out, MSS_AT, word(OPT_MSS, OPT_MSS_LEN) as u16);
    put_be16(out, MSS_AT + 2, mss);
    word(OPT_MSS, OPT_MSS_LEN) + mss as u32
}

/// Writes the options after the MSS: with timestamps, SACK permitted (or
/// two NOPs), the timestamps, and the window scale if both sides offer
/// it; without, none. Returns the TCP header's length and their sum.
#[inline(always)]
fn write_timestamp_options(
    out: &mut [u8; 40],
    client: ClientOptions,
    offer: Offer,
    config: &IfaceSettings,
    now: u64,
) -> (usize, u32) {
    // Timestamps carry the options through the handshake (syncookies.c
    // `cookie_init_timestamp`); without them the cookie holds the MSS only.
    let use_ts = offer.ts_cookies != 0 && client.timestamps();
    let sack = use_ts && client.sack() && offer.sack != 0;
    let client_wscale = client.wscale();
    let wscale = use_ts && offer.window_scaling != 0 && client_wscale.is_some();
    if !use_ts {
        return (TS_BLOCK_AT, 0);
    }
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
    let mut sum;
    if sack {
        put_be16(
            out,
            TS_BLOCK_AT,
            word(OPT_SACK_PERM, OPT_SACK_PERM_LEN) as u16,
        );
        sum = word(OPT_SACK_PERM, OPT_SACK_PERM_LEN);
    } else {
        put_be16(out, TS_BLOCK_AT, word(OPT_NOP, OPT_NOP) as u16);
        sum = word(OPT_NOP, OPT_NOP);
    }
    put_be16(
        out,
        TIMESTAMP_AT,
        word(OPT_TIMESTAMP, OPT_TIMESTAMP_LEN) as u16,
    );
    put_be32(out, TIMESTAMP_AT + 2, ts as u32);
    put_be32(out, TIMESTAMP_AT + 6, client.tsval as u32);
    sum += word(OPT_TIMESTAMP, OPT_TIMESTAMP_LEN) + words(ts as u32) + words(client.tsval as u32);
    if !wscale {
        return (WSCALE_AT, sum);
    }
    put_be32(
        out,
        WSCALE_AT,
        word(OPT_NOP, OPT_WSCALE) << 16 | word(OPT_WSCALE_LEN, config.wscale),
    );
    sum += word(OPT_NOP, OPT_WSCALE) + word(OPT_WSCALE_LEN, config.wscale);
    (WSCALE_END, sum)
}

/// Writes the answer's IPv4 header, checksum included; returns the sum
/// of its addresses for the TCP pseudo-header.
#[inline(always)]
fn write_ipv4(ip: &mut [u8; ipv4::LEN], server: u32, client: u32, tcp_len: usize) -> u32 {
    let total_len = (ipv4::LEN + tcp_len) as u16;
    // Version and header length, then DSCP and ECN (0).
    put_be16(ip, ipv4::VERSION_IHL, word(ipv4::V4_NO_OPTIONS, 0) as u16);
    put_be16(ip, ipv4::TOTAL_LEN, total_len);
    put_be16(ip, ipv4::ID, 0);
    put_be16(ip, ipv4::FRAGMENT, word(ipv4::DONT_FRAGMENT, 0) as u16);
    put_be16(ip, ipv4::TTL, word(SYN_ACK_TTL, IPPROTO_TCP) as u16);
    put_be16(ip, ipv4::CHECK, 0); // below
    put_word(ip, ipv4::SRC, server);
    put_word(ip, ipv4::DST, client);
    // The sum is over network-order 16-bit words: the words' bytes swapped.
    let addrs = words(server.swap_bytes()) + words(client.swap_bytes());
    let ip_sum = fold(
        word(ipv4::V4_NO_OPTIONS, 0)
            + total_len as u32
            + word(ipv4::DONT_FRAGMENT, 0)
            + word(SYN_ACK_TTL, IPPROTO_TCP)
            + addrs,
    );
    put_be16(ip, ipv4::CHECK, !ip_sum);
    addrs
}

/// Writes the answer's IPv6 header; returns the sum of its addresses for
/// the TCP pseudo-header (RFC 8200 8.1).
#[inline(always)]
fn write_ipv6(ip: &mut [u8; ipv6::LEN], server: &Words, client: &Words, tcp_len: usize) -> u32 {
    put_be32(ip, ipv6::VCF, ipv6::V6_PLAIN);
    put_be16(ip, ipv6::PAYLOAD_LEN, tcp_len as u16);
    ip[ipv6::NEXT_HEADER] = IPPROTO_TCP;
    ip[ipv6::HOP_LIMIT] = SYN_ACK_TTL;
    for i in 0..4 {
        put_word(ip, ipv6::SRC + 4 * i, server[i]);
        put_word(ip, ipv6::DST + 4 * i, client[i]);
    }
    address_words(server) + address_words(client)
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
    let m = macs as *mut u8;
    // SAFETY: `ptr_at` checked that the 12 bytes lie inside the frame; a
    // word and a half each, as `frame_word` loads them.
    unsafe {
        let (dst, dst_end) = (frame_word(m), frame_half(m.add(4)));
        let (src, src_end) = (frame_word(m.add(6)), frame_half(m.add(10)));
        *(m as *mut u32) = src;
        *(m.add(4) as *mut u16) = src_end;
        *(m.add(6) as *mut u32) = dst;
        *(m.add(10) as *mut u16) = dst_end;
    }
    Reason::SynAck
}
