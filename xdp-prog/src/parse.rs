//! Header parsing with strict bounds. Each step checks the bytes it reads
//! against the end of the frame and against the lengths the headers claim,
//! and either hands the next step an offset or settles the packet's fate with
//! a [`Reason`]. The rules follow what the kernel itself would do with the
//! packet (net/ipv4/ip_input.c `ip_rcv_core`, net/ipv4/tcp_ipv4.c
//! `tcp_v4_rcv`), so a packet the kernel would discard is dropped here, and
//! nothing that could carry a SYN is passed without being looked at.
use core::mem::size_of;

use aya_ebpf::{helpers::bpf_xdp_get_buff_len, programs::XdpContext};
use network_types::{
    eth::{EthHdr, EtherType},
    ip::{Ipv4Hdr, Ipv6Hdr},
    tcp::TcpHdr,
    vlan::VlanHdr,
};
use synguard_common::{
    Reason, Words, host,
    limits::{MAX_IPV6_EXT_HEADERS, MAX_VLAN_TAGS},
};

const IPPROTO_TCP: u8 = 6;
// IPv6 extension headers (RFC 8200 section 4, IANA "IPv6 Extension Header Types").
const IPV6_HOP_BY_HOP: u8 = 0;
const IPV6_ROUTING: u8 = 43;
const IPV6_FRAGMENT: u8 = 44;
const IPV6_AUTH: u8 = 51;
const IPV6_DEST_OPTS: u8 = 60;
const IPV6_MOBILITY: u8 = 135;
const IPV6_HIP: u8 = 139;
const IPV6_SHIM6: u8 = 140;

const IPV4_MORE_FRAGMENTS: u16 = 0x2000;
const IPV4_OFFSET_MASK: u16 = 0x1fff;

/// IP version of a parsed packet.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
}

/// The TCP flags byte (RFC 9293 section 3.1).
#[derive(Clone, Copy)]
pub struct TcpFlags(pub u8);

impl TcpFlags {
    const FIN: u8 = 0x01;
    const SYN: u8 = 0x02;
    const RST: u8 = 0x04;
    const ACK: u8 = 0x10;

    /// A connection request: SYN without ACK.
    #[inline(always)]
    pub fn is_syn(self) -> bool {
        self.0 & (Self::SYN | Self::ACK) == Self::SYN
    }

    /// SYN together with FIN or RST: no real stack sends it.
    #[inline(always)]
    pub fn is_bad_syn(self) -> bool {
        self.0 & Self::SYN != 0 && self.0 & (Self::FIN | Self::RST) != 0
    }

    /// The end of the sender's data.
    #[inline(always)]
    pub fn is_fin(self) -> bool {
        self.0 & Self::FIN != 0
    }

    /// A reset.
    #[inline(always)]
    pub fn is_rst(self) -> bool {
        self.0 & Self::RST != 0
    }

    /// An ACK that could complete a handshake: ACK without SYN or RST.
    #[inline(always)]
    pub fn is_handshake_ack(self) -> bool {
        self.0 & (Self::SYN | Self::RST | Self::ACK) == Self::ACK
    }
}

/// An IP packet whose headers are inside the frame.
pub struct Packet {
    pub family: Family,
    /// Offset of the IP header from the start of the frame.
    pub l3: usize,
    /// The source address, as words read from the frame (IPv4's in the
    /// first word, the others zero).
    pub src: Words,
    /// Addressed to one host: neither the destination MAC nor the
    /// destination IP is a group address (multicast, broadcast; IPv4's
    /// 240/4 too). A subnet's broadcast address takes the routing table to
    /// recognise, which the parser has not got.
    pub unicast: bool,
    /// The frame's VLAN chain (`synguard_common::host::vlan_key`); 0 untagged.
    pub vlan: u32,
    pub l4: L4,
}

/// What the parser found above IP.
pub enum L4 {
    Tcp(Tcp),
    /// Not a TCP segment to look into (another protocol, a fragment), with
    /// the reason it gets.
    Other(Reason),
}

/// A TCP segment whose header (options included) is inside the frame.
#[derive(Clone, Copy)]
pub struct Tcp {
    /// Offset of the TCP header from the start of the frame.
    pub l4: usize,
    /// The header length, options included (data offset * 4).
    pub header_len: usize,
    pub flags: TcpFlags,
    /// The destination port.
    pub dport: u16,
}

/// Returns a pointer to a `T` at `offset` if all of it lies inside the frame.
#[inline(always)]
pub fn ptr_at<T>(ctx: &XdpContext, offset: usize) -> Option<*const T> {
    let start = ctx.data();
    if start + offset + size_of::<T>() > ctx.data_end() {
        return None;
    }
    Some((start + offset) as *const T)
}

/// The 32-bit word at `p` in the frame, in one load, its bytes in memory
/// order (an address's, for `Words`).
///
/// A plain load, not `read_unaligned`: that one LLVM's BPF backend splits
/// into four byte loads, shifts and ors. The frame's words are not all
/// 4-byte aligned (an IPv4 source sits 26 bytes into an untagged frame),
/// which the hardware does not mind where the kernel lets a program load
/// them: the verifier checks a packet load's alignment only where the
/// architecture has no efficient unaligned access, and there it counts
/// NET_IP_ALIGN's 2 bytes, which put IP headers on a 4-byte boundary
/// (kernel/bpf/verifier.c `check_pkt_ptr_alignment`). Stack accesses are
/// always checked: words are kept in variables of their own type, which
/// the compiler aligns.
///
/// # Safety
/// The 4 bytes at `p` must lie inside the frame.
#[inline(always)]
pub unsafe fn frame_word(p: *const u8) -> u32 {
    // SAFETY: in bounds (the caller's check); on alignment, above.
    unsafe { *(p as *const u32) }
}

/// The 16-bit word at `p` in the frame, in one load, its bytes in memory
/// order (as `frame_word`).
///
/// # Safety
/// The 2 bytes at `p` must lie inside the frame.
#[inline(always)]
pub unsafe fn frame_half(p: *const u8) -> u16 {
    // SAFETY: as in `frame_word`.
    unsafe { *(p as *const u16) }
}

/// The 16 bytes of an IPv6 address at `p` in the frame, as `Words`.
///
/// # Safety
/// As `frame_word`, for 16 bytes.
#[inline(always)]
pub unsafe fn frame_words(p: *const u8) -> Words {
    // SAFETY: the caller's.
    unsafe {
        [
            frame_word(p),
            frame_word(p.add(4)),
            frame_word(p.add(8)),
            frame_word(p.add(12)),
        ]
    }
}

/// Bytes of the frame's first buffer from `offset` to its end (0 past
/// the end): all of it, but for a multi-buffer frame.
#[inline(always)]
fn bytes_from(ctx: &XdpContext, offset: usize) -> usize {
    (ctx.data_end() - ctx.data()).saturating_sub(offset)
}

/// Whether the frame holds `len` bytes from `offset`, the buffers after
/// the first included: the program is loaded with `xdp.frags`, so a jumbo
/// frame (MTU 9000 on veth, a NIC with header split) may reach it in
/// several buffers, of which `data_end` bounds the first alone. The
/// helper (`bpf_xdp_get_buff_len`) is called only for a packet longer
/// than the first buffer. Headers are read from the first buffer only:
/// a frame whose headers run past it is `malformed` to the parser.
#[inline(always)]
fn frame_holds(ctx: &XdpContext, offset: usize, len: usize) -> bool {
    if len <= bytes_from(ctx, offset) {
        return true;
    }
    // SAFETY: the helper reads the XDP context it is handed.
    let whole = unsafe { bpf_xdp_get_buff_len(ctx.ctx) } as usize;
    len <= whole.saturating_sub(offset)
}

/// Walks Ethernet, VLAN tags and IP down to TCP. `Err` carries the reason
/// for frames settled before their source address counts: not IP,
/// malformed, a header chain past the parser's bounds.
#[inline(always)]
pub fn parse(ctx: &XdpContext) -> Result<Packet, Reason> {
    let eth: *const EthHdr = ptr_at(ctx, 0).ok_or(Reason::Malformed)?;
    // SAFETY: `ptr_at` checked that the header lies inside the frame.
    let (mut ether_type, mac_unicast) = unsafe { ((*eth).ether_type, (*eth).dst_addr[0] & 1 == 0) };
    let mut offset = EthHdr::LEN;
    let mut vlan = 0;
    for _ in 0..MAX_VLAN_TAGS {
        if !is_vlan(ether_type) {
            break;
        }
        let tag: *const VlanHdr = ptr_at(ctx, offset).ok_or(Reason::Malformed)?;
        // SAFETY: as above.
        let tci = unsafe { (*tag).tci };
        let vid = u16::from_be_bytes([tci[0] & 0x0f, tci[1]]);
        vlan = host::vlan_key(vlan, ether_type == EtherType::Ieee8021ad as u16, vid);
        // SAFETY: as above.
        ether_type = unsafe { (*tag).ether_type };
        offset += VlanHdr::LEN;
    }
    if is_vlan(ether_type) {
        return Err(Reason::HeaderChain);
    }
    let mut packet = if ether_type == EtherType::Ipv4 as u16 {
        parse_ipv4(ctx, offset)
    } else if ether_type == EtherType::Ipv6 as u16 {
        parse_ipv6(ctx, offset)
    } else {
        Err(Reason::NonIp)
    }?;
    packet.unicast &= mac_unicast;
    packet.vlan = vlan;
    Ok(packet)
}

#[inline(always)]
fn is_vlan(ether_type: u16) -> bool {
    ether_type == EtherType::Ieee8021q as u16 || ether_type == EtherType::Ieee8021ad as u16
}

#[inline(always)]
fn parse_ipv4(ctx: &XdpContext, l3: usize) -> Result<Packet, Reason> {
    let ip: *const Ipv4Hdr = ptr_at(ctx, l3).ok_or(Reason::Malformed)?;
    // SAFETY: `ptr_at` checked that the fixed header lies inside the frame.
    let (vihl, total_len, frag, proto, src, daddr) = unsafe {
        (
            (*ip).vihl,
            u16::from_be_bytes((*ip).tot_len) as usize,
            u16::from_be_bytes((*ip).frags),
            (*ip).proto,
            frame_word((&raw const (*ip).src_addr).cast()),
            (*ip).dst_addr[0],
        )
    };
    let packet = |l4| Packet {
        family: Family::V4,
        l3,
        src: [src, 0, 0, 0],
        // 224/4 multicast, 240/4 reserved and 255.255.255.255.
        unicast: daddr < 224,
        vlan: 0,
        l4,
    };
    let header_len = ((vihl & 0x0f) as usize) * 4;
    // ip_rcv_core: version 4, ihl >= 5, tot_len covers the header and fits
    // in the frame (Ethernet padding after tot_len is allowed).
    if vihl >> 4 != 4
        || header_len < size_of::<Ipv4Hdr>()
        || total_len < header_len
        || !frame_holds(ctx, l3, total_len)
    {
        return Err(Reason::Malformed);
    }
    if proto != IPPROTO_TCP {
        return Ok(packet(L4::Other(Reason::NonTcp)));
    }
    let fragment_offset = frag & IPV4_OFFSET_MASK;
    if fragment_offset != 0 {
        // A TCP fragment at offset 8 can rewrite the first fragment's flags
        // (RFC 1858 section 3.2, overlapping fragments): never legitimate.
        return Ok(packet(L4::Other(if fragment_offset == 1 {
            Reason::FragmentDrop
        } else {
            Reason::Fragment
        })));
    }
    let first_fragment = frag & IPV4_MORE_FRAGMENTS != 0;
    let l4 = parse_tcp(ctx, l3 + header_len, total_len - header_len, first_fragment)?;
    Ok(packet(l4))
}

#[inline(always)]
fn parse_ipv6(ctx: &XdpContext, l3: usize) -> Result<Packet, Reason> {
    let ip: *const Ipv6Hdr = ptr_at(ctx, l3).ok_or(Reason::Malformed)?;
    // SAFETY: `ptr_at` checked that the fixed header lies inside the frame.
    let (version, payload_len, mut next, src, multicast) = unsafe {
        (
            (*ip).vcf[0] >> 4,
            u16::from_be_bytes((*ip).payload_len) as usize,
            (*ip).next_hdr,
            frame_words((&raw const (*ip).src_addr).cast()),
            (*ip).dst_addr[0] == 0xff,
        )
    };
    let packet = |l4| Packet {
        family: Family::V6,
        l3,
        src,
        unicast: !multicast,
        vlan: 0,
        l4,
    };
    let mut l4 = l3 + size_of::<Ipv6Hdr>();
    if version != 6 || !frame_holds(ctx, l4, payload_len) {
        return Err(Reason::Malformed);
    }
    let mut remaining = payload_len;
    let mut first_fragment = false;
    let mut seen_fragment = false;
    for _ in 0..MAX_IPV6_EXT_HEADERS {
        let ext: *const [u8; 8] = match next {
            IPV6_HOP_BY_HOP | IPV6_ROUTING | IPV6_FRAGMENT | IPV6_AUTH | IPV6_DEST_OPTS
            | IPV6_MOBILITY | IPV6_HIP | IPV6_SHIM6 => ptr_at(ctx, l4).ok_or(Reason::Malformed)?,
            _ => break,
        };
        // SAFETY: `ptr_at` checked the 8 bytes every extension header has.
        let ext = unsafe { *ext };
        let len = match next {
            IPV6_FRAGMENT => {
                // One Fragment header a packet: the kernel discards a
                // second (net/ipv6/reassembly.c `ipv6_frag_rcv` on a
                // packet already IP6SKB_FRAGMENTED).
                if seen_fragment {
                    return Err(Reason::Malformed);
                }
                seen_fragment = true;
                let offset_flags = u16::from_be_bytes([ext[2], ext[3]]);
                if offset_flags >> 3 != 0 {
                    return Ok(packet(L4::Other(Reason::Fragment)));
                }
                // An atomic fragment (offset 0, M clear) is a whole packet.
                first_fragment = offset_flags & 1 != 0;
                8
            }
            // RFC 4302: the AH length is in 4-octet units, minus 2.
            IPV6_AUTH => (ext[1] as usize + 2) * 4,
            _ => (ext[1] as usize + 1) * 8,
        };
        if len > remaining {
            return Err(Reason::Malformed);
        }
        next = ext[0];
        remaining -= len;
        l4 += len;
    }
    if is_ipv6_extension(next) {
        return Err(Reason::HeaderChain);
    }
    if next != IPPROTO_TCP {
        return Ok(packet(L4::Other(Reason::NonTcp)));
    }
    let l4 = parse_tcp(ctx, l4, remaining, first_fragment)?;
    Ok(packet(l4))
}

#[inline(always)]
fn is_ipv6_extension(next: u8) -> bool {
    matches!(
        next,
        IPV6_HOP_BY_HOP
            | IPV6_ROUTING
            | IPV6_FRAGMENT
            | IPV6_AUTH
            | IPV6_DEST_OPTS
            | IPV6_MOBILITY
            | IPV6_HIP
            | IPV6_SHIM6
    )
}

/// Checks the TCP header at `l4`, `segment_len` bytes long by the IP header's
/// account. A first fragment must carry the whole TCP header and no SYN: a
/// fragmented SYN is never sent by a real stack, and one that hides its flags
/// in a later fragment (RFC 1858 tiny fragments) would slip past every check.
#[inline(always)]
fn parse_tcp(
    ctx: &XdpContext,
    l4: usize,
    segment_len: usize,
    first_fragment: bool,
) -> Result<L4, Reason> {
    if first_fragment && segment_len < size_of::<TcpHdr>() {
        return Ok(L4::Other(Reason::FragmentDrop));
    }
    if segment_len < size_of::<TcpHdr>() {
        return Err(Reason::Malformed);
    }
    let tcp: *const TcpHdr = match ptr_at(ctx, l4) {
        Some(tcp) => tcp,
        None if first_fragment => return Ok(L4::Other(Reason::FragmentDrop)),
        None => return Err(Reason::Malformed),
    };
    // SAFETY: `ptr_at` checked that the fixed header lies inside the frame.
    let (doff, flags, dport) = unsafe {
        (
            tcp_header_len(tcp),
            TcpFlags(tcp_flags(tcp)),
            tcp_dport(tcp),
        )
    };
    if doff < size_of::<TcpHdr>() {
        return Err(Reason::Malformed);
    }
    if doff > segment_len || ptr_at::<[u8; 1]>(ctx, l4 + doff - 1).is_none() {
        return if first_fragment {
            Ok(L4::Other(Reason::FragmentDrop))
        } else {
            Err(Reason::Malformed)
        };
    }
    if first_fragment {
        return Ok(L4::Other(if flags.0 & TcpFlags::SYN != 0 {
            Reason::FragmentDrop
        } else {
            Reason::Fragment
        }));
    }
    Ok(L4::Tcp(Tcp {
        l4,
        header_len: doff,
        flags,
        dport,
    }))
}

/// The destination port: bytes 2 and 3 of the TCP header.
#[inline(always)]
fn tcp_dport(tcp: *const TcpHdr) -> u16 {
    // SAFETY: the caller checked that the fixed 20-byte header is in bounds.
    unsafe {
        let p = tcp as *const u8;
        u16::from_be_bytes([*p.add(2), *p.add(3)])
    }
}

/// The header length, options included: the data offset, the high nibble
/// of byte 12 of the TCP header, in 32-bit words.
///
/// Read as one byte and shifted rather than through network-types'
/// bitfield getter `TcpHdr::doff`, which compiles to per-bit sign extension
/// and an OR: the result is bounded in fact, but Linux 6.1's verifier cannot
/// see it, and rejects the packet pointer it is added to ("math between pkt
/// pointer and register with unbounded min value"). A byte shifted right by
/// 4 is known to lie in [0, 15] on every kernel.
#[inline(always)]
fn tcp_header_len(tcp: *const TcpHdr) -> usize {
    // SAFETY: the caller checked that the fixed 20-byte header is in bounds.
    let data_offset = unsafe { *(tcp as *const u8).add(12) } >> 4;
    data_offset as usize * 4
}

/// The flags byte: offset 13 of the TCP header.
#[inline(always)]
fn tcp_flags(tcp: *const TcpHdr) -> u8 {
    // SAFETY: the caller checked that the fixed 20-byte header is in bounds.
    unsafe { *(tcp as *const u8).add(13) }
}
