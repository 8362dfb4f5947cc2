//! Where the fields the answer writes lie in their headers, taken from
//! network-types' header structs rather than written as bare numbers.
use core::mem::offset_of;

use network_types::{
    ip::{Ipv4Hdr, Ipv6Hdr},
    tcp::TcpHdr,
};

/// The TCP header (RFC 9293 3.1).
pub(super) mod tcp {
    use super::*;

    pub const SOURCE: usize = offset_of!(TcpHdr, source);
    pub const DEST: usize = offset_of!(TcpHdr, dest);
    // The answer writes both ports in one store.
    const _: () = assert!(DEST == SOURCE + 2);
    pub const SEQ: usize = offset_of!(TcpHdr, seq);
    pub const ACK: usize = offset_of!(TcpHdr, ack_seq);
    /// The data offset, in the high nibble.
    pub const DOFF: usize = offset_of!(TcpHdr, _bitfield_1);
    pub const FLAGS: usize = DOFF + 1;
    pub const WINDOW: usize = offset_of!(TcpHdr, window);
    pub const CHECK: usize = offset_of!(TcpHdr, check);
    pub const URGENT: usize = offset_of!(TcpHdr, urg_ptr);
    /// Where the options begin.
    pub const OPTIONS: usize = TcpHdr::LEN;
    /// The flags byte of a SYN-ACK.
    pub const SYN_ACK: u8 = 0x12;
}

/// The IPv4 header (RFC 791 3.1), without options.
pub(super) mod ipv4 {
    use super::*;

    pub const VERSION_IHL: usize = offset_of!(Ipv4Hdr, vihl);
    pub const TOS: usize = offset_of!(Ipv4Hdr, tos);
    pub const TOTAL_LEN: usize = offset_of!(Ipv4Hdr, tot_len);
    pub const ID: usize = offset_of!(Ipv4Hdr, id);
    pub const FRAGMENT: usize = offset_of!(Ipv4Hdr, frags);
    pub const TTL: usize = offset_of!(Ipv4Hdr, ttl);
    pub const PROTOCOL: usize = offset_of!(Ipv4Hdr, proto);
    pub const CHECK: usize = offset_of!(Ipv4Hdr, check);
    pub const SRC: usize = offset_of!(Ipv4Hdr, src_addr);
    pub const DST: usize = offset_of!(Ipv4Hdr, dst_addr);
    pub const LEN: usize = Ipv4Hdr::LEN;
    // The answer writes these fields in pairs, one 16-bit store each.
    const _: () = assert!(TOS == VERSION_IHL + 1 && PROTOCOL == TTL + 1);
    /// Version 4, a header of five 32-bit words.
    pub const V4_NO_OPTIONS: u8 = 0x45;
    /// The fragment field's high byte: don't fragment, offset 0.
    pub const DONT_FRAGMENT: u8 = 0x40;
}

/// The IPv6 fixed header (RFC 8200 3).
pub(super) mod ipv6 {
    use super::*;

    /// Version, traffic class, flow label.
    pub const VCF: usize = offset_of!(Ipv6Hdr, vcf);
    pub const PAYLOAD_LEN: usize = offset_of!(Ipv6Hdr, payload_len);
    pub const NEXT_HEADER: usize = offset_of!(Ipv6Hdr, next_hdr);
    pub const HOP_LIMIT: usize = offset_of!(Ipv6Hdr, hop_limit);
    pub const SRC: usize = offset_of!(Ipv6Hdr, src_addr);
    pub const DST: usize = offset_of!(Ipv6Hdr, dst_addr);
    pub const LEN: usize = Ipv6Hdr::LEN;
    /// Version 6, traffic class and flow label 0.
    pub const V6_PLAIN: u32 = 0x6000_0000;
}

/// Writes a word (`synguard_common::Words`: its bytes in memory order)
/// into `buf` at `at`, in one store where `buf` is the frame or scratch
/// (see `crate::parse::frame_word` on alignment).
#[inline(always)]
pub(super) fn put_word<const N: usize>(buf: &mut [u8; N], at: usize, word: u32) {
    assert!(at + 4 <= N);
    // SAFETY: in bounds (above; constant offsets, so the check folds).
    unsafe { *(buf.as_mut_ptr().add(at) as *mut u32) = word };
}

/// Writes a 16-bit value in network order into `buf` at `at`, in one
/// store (as `put_word`).
#[inline(always)]
pub(super) fn put_be16<const N: usize>(buf: &mut [u8; N], at: usize, value: u16) {
    assert!(at + 2 <= N);
    // SAFETY: in bounds (above; constant offsets, so the check folds).
    unsafe { *(buf.as_mut_ptr().add(at) as *mut u16) = value.to_be() };
}

/// Writes a 32-bit value in network order into `buf` at `at`, in one
/// store (as `put_word`).
#[inline(always)]
pub(super) fn put_be32<const N: usize>(buf: &mut [u8; N], at: usize, value: u32) {
    put_word(buf, at, value.to_be());
}
