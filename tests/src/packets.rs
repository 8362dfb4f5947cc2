//! Frames for tests, built with etherparse rather than by hand. All go from
//! the lab's outside MAC to its target MAC unless said otherwise.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use etherparse::{PacketBuilder, PacketBuilderStep, TcpHeader, TcpOptionElement, VlanId};

use crate::lab::{OUTSIDE_MAC, TARGET_MAC};

/// TCP flags to set on a crafted segment.
#[derive(Clone, Copy, Debug, Default)]
pub struct Flags {
    pub syn: bool,
    pub ack: bool,
    pub fin: bool,
    pub rst: bool,
    pub psh: bool,
}

impl Flags {
    pub const SYN: Flags = Flags {
        syn: true,
        ack: false,
        fin: false,
        rst: false,
        psh: false,
    };
    pub const ACK: Flags = Flags {
        syn: false,
        ack: true,
        fin: false,
        rst: false,
        psh: false,
    };
    pub const SYN_ACK: Flags = Flags {
        syn: true,
        ack: true,
        fin: false,
        rst: false,
        psh: false,
    };
    pub const SYN_FIN: Flags = Flags {
        syn: true,
        ack: false,
        fin: true,
        rst: false,
        psh: false,
    };
    pub const SYN_RST: Flags = Flags {
        syn: true,
        ack: false,
        fin: false,
        rst: true,
        psh: false,
    };
}

/// A TCP segment: addresses, ports, flags, numbers and options.
#[derive(Clone, Debug)]
pub struct Segment {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub sport: u16,
    pub dport: u16,
    pub flags: Flags,
    pub seq: u32,
    pub ack: u32,
    pub window: u16,
    pub options: Vec<TcpOptionElement>,
    pub payload: Vec<u8>,
    /// 802.1Q/802.1ad tags, outermost first.
    pub vlans: Vec<u16>,
}

impl Segment {
    /// A SYN like Linux sends: MSS, SACK permitted, timestamps, window scale.
    pub fn syn(src: IpAddr, dst: IpAddr, sport: u16, dport: u16) -> Segment {
        Segment {
            src,
            dst,
            sport,
            dport,
            flags: Flags::SYN,
            seq: 0x1234_5678,
            ack: 0,
            window: 64240,
            options: vec![
                TcpOptionElement::MaximumSegmentSize(1460),
                TcpOptionElement::SelectiveAcknowledgementPermitted,
                TcpOptionElement::Timestamp(0x0102_0304, 0),
                TcpOptionElement::Noop,
                TcpOptionElement::WindowScale(7),
            ],
            payload: Vec::new(),
            vlans: Vec::new(),
        }
    }

    pub fn flags(mut self, flags: Flags) -> Segment {
        self.flags = flags;
        self
    }

    pub fn vlans(mut self, tags: &[u16]) -> Segment {
        self.vlans = tags.to_vec();
        self
    }

    pub fn options(mut self, options: Vec<TcpOptionElement>) -> Segment {
        self.options = options;
        self
    }

    pub fn numbers(mut self, seq: u32, ack: u32) -> Segment {
        self.seq = seq;
        self.ack = ack;
        self
    }

    pub fn payload(mut self, payload: &[u8]) -> Segment {
        self.payload = payload.to_vec();
        self
    }

    /// The whole Ethernet frame.
    pub fn frame(&self) -> Vec<u8> {
        let mut header = TcpHeader::new(self.sport, self.dport, self.seq, self.window);
        header.syn = self.flags.syn;
        header.fin = self.flags.fin;
        header.rst = self.flags.rst;
        header.psh = self.flags.psh;
        if self.flags.ack {
            header.ack = true;
            header.acknowledgment_number = self.ack;
        }
        header
            .set_options(&self.options)
            .expect("TCP options fit in 40 bytes");
        let mut out = Vec::new();
        with_ip(self.src, self.dst, &self.vlans)
            .tcp_header(header)
            .write_to_vec(&mut out, &self.payload)
            .expect("build TCP frame");
        out
    }
}

/// Ethernet (with VLAN tags) and an IP header, ready for the transport layer.
fn with_ip(src: IpAddr, dst: IpAddr, vlans: &[u16]) -> PacketBuilderStep<etherparse::IpHeaders> {
    let eth = PacketBuilder::ethernet2(OUTSIDE_MAC, TARGET_MAC);
    let vid = |v: u16| VlanId::try_new(v).expect("VLAN id < 4096");
    match (src, dst, vlans) {
        (IpAddr::V4(s), IpAddr::V4(d), []) => eth.ipv4(s.octets(), d.octets(), 64),
        (IpAddr::V4(s), IpAddr::V4(d), [one]) => {
            eth.single_vlan(vid(*one)).ipv4(s.octets(), d.octets(), 64)
        }
        (IpAddr::V4(s), IpAddr::V4(d), [outer, inner]) => eth
            .double_vlan(vid(*outer), vid(*inner))
            .ipv4(s.octets(), d.octets(), 64),
        (IpAddr::V6(s), IpAddr::V6(d), []) => eth.ipv6(s.octets(), d.octets(), 64),
        (IpAddr::V6(s), IpAddr::V6(d), [one]) => {
            eth.single_vlan(vid(*one)).ipv6(s.octets(), d.octets(), 64)
        }
        (IpAddr::V6(s), IpAddr::V6(d), [outer, inner]) => eth
            .double_vlan(vid(*outer), vid(*inner))
            .ipv6(s.octets(), d.octets(), 64),
        _ => panic!("mixed address families or more than two VLAN tags"),
    }
}

/// A UDP datagram.
pub fn udp(src: IpAddr, dst: IpAddr, sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    with_ip(src, dst, &[])
        .udp(sport, dport)
        .write_to_vec(&mut out, payload)
        .expect("build UDP frame");
    out
}

/// An ICMP echo request (ICMPv6 for IPv6 addresses).
pub fn ping(src: IpAddr, dst: IpAddr) -> Vec<u8> {
    let mut out = Vec::new();
    let step = with_ip(src, dst, &[]);
    let built = if src.is_ipv4() {
        step.icmpv4_echo_request(7, 1)
            .write_to_vec(&mut out, b"synguard")
    } else {
        step.icmpv6_echo_request(7, 1)
            .write_to_vec(&mut out, b"synguard")
    };
    built.expect("build ICMP frame");
    out
}

/// An IPv6 neighbour solicitation for `target` (ICMPv6 type 135).
pub fn neighbour_solicitation(src: Ipv6Addr, target: Ipv6Addr) -> Vec<u8> {
    // Sent to the solicited-node multicast group of the target.
    let t = target.octets();
    let group = Ipv6Addr::new(
        0xff02,
        0,
        0,
        0,
        0,
        1,
        0xff00 | u16::from(t[13]),
        u16::from_be_bytes([t[14], t[15]]),
    );
    let mut out = Vec::new();
    let mut body = t.to_vec();
    body.extend_from_slice(&[1, 1]); // source link-layer address option
    body.extend_from_slice(&OUTSIDE_MAC);
    PacketBuilder::ethernet2(OUTSIDE_MAC, [0x33, 0x33, 0xff, t[13], t[14], t[15]])
        .ipv6(src.octets(), group.octets(), 255)
        .icmpv6_raw(135, 0, [0; 4])
        .write_to_vec(&mut out, &body)
        .expect("build ND frame");
    out
}

/// A broadcast ARP request: who has `target`? tell `sender`.
pub fn arp_request(sender: Ipv4Addr, target: Ipv4Addr) -> Vec<u8> {
    let mut out = Vec::with_capacity(42);
    out.extend_from_slice(&[0xff; 6]);
    out.extend_from_slice(&OUTSIDE_MAC);
    out.extend_from_slice(&0x0806u16.to_be_bytes());
    // htype Ethernet, ptype IPv4, hlen 6, plen 4, op request (RFC 826)
    out.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
    out.extend_from_slice(&OUTSIDE_MAC);
    out.extend_from_slice(&sender.octets());
    out.extend_from_slice(&[0; 6]);
    out.extend_from_slice(&target.octets());
    out
}

/// Offset of the IP header in an untagged Ethernet frame.
pub const L3: usize = 14;

/// Rewrites bytes of the IPv4 header in `frame` and fixes its checksum.
pub fn patch_ipv4(frame: &mut [u8], patch: impl FnOnce(&mut [u8])) {
    let ihl = usize::from(frame[L3] & 0x0f) * 4;
    patch(&mut frame[L3..]);
    let ihl_after = usize::from(frame[L3] & 0x0f) * 4;
    let len = ihl.max(ihl_after).min(frame.len() - L3);
    frame[L3 + 10] = 0;
    frame[L3 + 11] = 0;
    let sum = ones_complement_sum(&frame[L3..L3 + len]);
    frame[L3 + 10..L3 + 12].copy_from_slice(&(!sum).to_be_bytes());
}

/// Sets the IPv4 fragment field of an untagged frame (the MF flag and the
/// offset in 8-byte units), keeping its header checksum valid.
pub fn fragment_v4(frame: &[u8], more: bool, offset: u16) -> Vec<u8> {
    let mut out = frame.to_vec();
    patch_ipv4(&mut out, |ip| {
        let field = if more { 0x2000 } else { 0 } | offset;
        ip[6..8].copy_from_slice(&field.to_be_bytes());
    });
    out
}

/// Inserts IPv4 options after the fixed header of an untagged frame, with
/// the header length, total length and header checksum to match.
pub fn with_ipv4_options(frame: &[u8], options: &[u8]) -> Vec<u8> {
    assert_eq!(options.len() % 4, 0, "IPv4 options fill 32-bit words");
    let mut out = frame[..L3 + 20].to_vec();
    out.extend_from_slice(options);
    out.extend_from_slice(&frame[L3 + 20..]);
    patch_ipv4(&mut out, |ip| {
        ip[0] = 0x40 | (5 + options.len() / 4) as u8;
        let total = u16::from_be_bytes([ip[2], ip[3]]) + options.len() as u16;
        ip[2..4].copy_from_slice(&total.to_be_bytes());
    });
    out
}

/// Inserts IPv6 extension headers (type, and the body after the 2-byte
/// next-header/length prefix) between the fixed header and the upper layer
/// of an untagged frame, with the payload length to match.
pub fn with_ipv6_extensions(frame: &[u8], headers: &[(u8, Vec<u8>)]) -> Vec<u8> {
    let fixed = L3 + 40;
    let mut chain = Vec::new();
    let upper = frame[L3 + 6];
    for (i, (kind, body)) in headers.iter().enumerate() {
        let next = headers.get(i + 1).map(|(t, _)| *t).unwrap_or(upper);
        let len = 2 + body.len();
        assert_eq!(len % 8, 0, "extension headers are multiples of 8 bytes");
        chain.push(next);
        // Fragment headers have a reserved byte where others have a length,
        // which AH counts in 4-byte units less 2 (RFC 4302), others in 8-byte
        // units less 1.
        chain.push(match *kind {
            IPV6_FRAGMENT => 0,
            IPV6_AUTH => (len / 4 - 2) as u8,
            _ => (len / 8 - 1) as u8,
        });
        chain.extend_from_slice(body);
    }
    let mut out = frame[..fixed].to_vec();
    if let Some((first, _)) = headers.first() {
        out[L3 + 6] = *first;
    }
    let payload = u16::from_be_bytes([out[L3 + 4], out[L3 + 5]]) + chain.len() as u16;
    out[L3 + 4..L3 + 6].copy_from_slice(&payload.to_be_bytes());
    out.extend_from_slice(&chain);
    out.extend_from_slice(&frame[fixed..]);
    out
}

/// IPv6 extension header types (RFC 8200 section 4).
pub const IPV6_HOP_BY_HOP: u8 = 0;
pub const IPV6_ROUTING: u8 = 43;
pub const IPV6_FRAGMENT: u8 = 44;
pub const IPV6_DEST_OPTS: u8 = 60;
pub const IPV6_AUTH: u8 = 51;
/// The IPv6 extension headers that can precede an upper-layer header, as
/// IANA lists them (ESP aside, which encrypts what follows): hop-by-hop,
/// routing, fragment, AH, destination options, mobility, HIP, shim6.
pub const IPV6_EXTENSIONS: [u8; 8] = [0, 43, 44, 51, 60, 135, 139, 140];

/// The body of a hop-by-hop or destination options header `n` bytes long
/// (after its 2-byte prefix): one PadN option filling it.
pub fn pad_options(n: usize) -> Vec<u8> {
    let mut body = vec![1, (n - 2) as u8];
    body.resize(n, 0);
    body
}

/// Inserts a VLAN tag as the outermost one: `tpid` (0x8100 for 802.1Q,
/// 0x88a8 for 802.1ad) and the tag control information `tci` (its low 12
/// bits are the VLAN id).
pub fn push_vlan_tag(frame: &[u8], tpid: u16, tci: u16) -> Vec<u8> {
    let mut out = frame[..12].to_vec();
    out.extend_from_slice(&tpid.to_be_bytes());
    out.extend_from_slice(&tci.to_be_bytes());
    out.extend_from_slice(&frame[12..]);
    out
}

/// Puts `options` (raw bytes, any content, padded with zeros to a 32-bit
/// boundary) into the TCP header of an untagged frame whose TCP header has
/// none, then sets the data offset and IP lengths and fixes the checksums.
/// For options a well-behaved builder refuses to write: a length of 0 or
/// 1, or one running past the header.
pub fn with_raw_tcp_options(frame: &[u8], options: &[u8]) -> Vec<u8> {
    let mut options = options.to_vec();
    options.resize(options.len().div_ceil(4) * 4, 0);
    assert!(options.len() <= 40, "TCP options fit in 40 bytes");
    let v6 = frame[L3] >> 4 == 6;
    let l4 = L3
        + if v6 {
            40
        } else {
            usize::from(frame[L3] & 0x0f) * 4
        };
    assert_eq!(
        frame[l4 + 12] >> 4,
        5,
        "the frame's TCP header has no options yet"
    );
    let mut out = frame[..l4 + 20].to_vec();
    out.extend_from_slice(&options);
    out.extend_from_slice(&frame[l4 + 20..]);
    out[l4 + 12] = ((5 + options.len() / 4) as u8) << 4 | (out[l4 + 12] & 0x0f);
    let grow = |at: usize, out: &mut Vec<u8>| {
        let len = u16::from_be_bytes([out[at], out[at + 1]]) + options.len() as u16;
        out[at..at + 2].copy_from_slice(&len.to_be_bytes());
    };
    grow(if v6 { L3 + 4 } else { L3 + 2 }, &mut out);
    fix_checksums(&mut out);
    out
}

/// Where a frame's layers start, walking VLAN tags, IPv4 options and IPv6
/// extension headers ([`IPV6_EXTENSIONS`]) as far as the frame and the
/// headers' own lengths allow.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Layers {
    /// VLAN tags: (TPID, VLAN id), outermost first.
    pub vlans: Vec<(u16, u16)>,
    /// The EtherType after the tags, if the frame holds it.
    pub ether_type: Option<u16>,
    /// Offset of the IP header (after the tags).
    pub l3: usize,
    /// For IP packets whose headers are whole.
    pub ip: Option<IpLayers>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IpLayers {
    pub v6: bool,
    /// Source and destination (IPv4 in the first 4 bytes).
    pub src: [u8; 16],
    pub dst: [u8; 16],
    /// The upper-layer protocol, and where its header starts.
    pub protocol: u8,
    pub l4: usize,
    /// Bytes from `l4` to the end of the packet as its IP header tells it
    /// (Ethernet padding excluded; possibly past the end of a truncated frame).
    pub upper_len: usize,
    /// IPv6 extension headers walked, in order: (type, offset in the frame).
    pub extensions: Vec<(u8, usize)>,
    /// IPv4 fragment field or IPv6 fragment header (the first that is not
    /// atomic): (more fragments, offset in 8-byte units), if the packet is
    /// a fragment (an IPv6 atomic fragment, offset 0 and M clear, is not).
    /// The walk stops at the fragment header of a later fragment (then the
    /// protocol is 44, fragment).
    pub fragment: Option<(bool, u16)>,
    /// The lengths in the IP header agree with each other and the frame
    /// (IPv4: total length covers the header and fits; IPv6: the payload
    /// fits). Ethernet padding after the packet is allowed.
    pub lengths_ok: bool,
    /// IPv4 header checksum valid (always true for IPv6, which has none).
    pub header_checksum_ok: bool,
    /// IPv4 TTL or IPv6 hop limit.
    pub hop_limit: u8,
}

/// Walks `frame` (see [`Layers`]). Extension headers are walked up to 16.
pub fn layers(frame: &[u8]) -> Layers {
    let mut out = Layers::default();
    let be16 = |at: usize| -> Option<u16> {
        Some(u16::from_be_bytes([*frame.get(at)?, *frame.get(at + 1)?]))
    };
    let mut at = 12;
    loop {
        let Some(ether_type) = be16(at) else {
            return out;
        };
        if ether_type != 0x8100 && ether_type != 0x88a8 {
            out.ether_type = Some(ether_type);
            out.l3 = at + 2;
            break;
        }
        let Some(tci) = be16(at + 2) else {
            return out;
        };
        out.vlans.push((ether_type, tci & 0x0fff));
        at += 4;
    }
    let l3 = out.l3;
    let ip = &frame[l3.min(frame.len())..];
    out.ip = match out.ether_type {
        Some(0x0800) if ip.len() >= 20 && ip[0] >> 4 == 4 => {
            let ihl = usize::from(ip[0] & 0x0f) * 4;
            let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
            let field = u16::from_be_bytes([ip[6], ip[7]]);
            let (more, offset) = (field & 0x2000 != 0, field & 0x1fff);
            let mut src = [0; 16];
            let mut dst = [0; 16];
            src[..4].copy_from_slice(&ip[12..16]);
            dst[..4].copy_from_slice(&ip[16..20]);
            (ihl >= 20 && ihl <= ip.len()).then(|| IpLayers {
                v6: false,
                src,
                dst,
                protocol: ip[9],
                l4: l3 + ihl,
                upper_len: total.saturating_sub(ihl),
                extensions: Vec::new(),
                fragment: (more || offset != 0).then_some((more, offset)),
                lengths_ok: total >= ihl && total <= ip.len(),
                header_checksum_ok: ones_complement_sum(&ip[..ihl]) == 0xffff,
                hop_limit: ip[8],
            })
        }
        Some(0x86dd) if ip.len() >= 40 && ip[0] >> 4 == 6 => {
            let payload = usize::from(u16::from_be_bytes([ip[4], ip[5]]));
            let mut remaining = payload;
            let mut next = ip[6];
            let mut l4 = l3 + 40;
            let mut extensions = Vec::new();
            let mut fragment = None;
            while extensions.len() < 16 && IPV6_EXTENSIONS.contains(&next) && l4 + 8 <= frame.len()
            {
                let len = match next {
                    IPV6_FRAGMENT => {
                        let field = u16::from_be_bytes([frame[l4 + 2], frame[l4 + 3]]);
                        let (more, offset) = (field & 1 != 0, field >> 3);
                        // The first real fragment header says what the
                        // packet is.
                        if (more || offset != 0) && fragment.is_none() {
                            fragment = Some((more, offset));
                        }
                        if offset != 0 {
                            // What follows a later fragment's header
                            // (nested in a first fragment or not) is data.
                            break;
                        }
                        8
                    }
                    IPV6_AUTH => (usize::from(frame[l4 + 1]) + 2) * 4,
                    _ => (usize::from(frame[l4 + 1]) + 1) * 8,
                };
                if len > remaining {
                    break;
                }
                extensions.push((next, l4));
                next = frame[l4];
                remaining -= len;
                l4 += len;
            }
            Some(IpLayers {
                v6: true,
                src: ip[8..24].try_into().unwrap(),
                dst: ip[24..40].try_into().unwrap(),
                protocol: next,
                l4,
                upper_len: remaining,
                extensions,
                fragment,
                lengths_ok: 40 + payload <= ip.len(),
                header_checksum_ok: true,
                hop_limit: ip[7],
            })
        }
        _ => None,
    };
    out
}

/// The TCP checksum a segment should carry: over the pseudo-header and the
/// segment as the IP header delimits it, with its own checksum field zero.
/// None if the frame does not hold the whole segment.
pub fn tcp_checksum(frame: &[u8], ip: &IpLayers) -> Option<u16> {
    let end = ip.l4.checked_add(ip.upper_len)?;
    if ip.upper_len < 20 || end > frame.len() {
        return None;
    }
    let mut segment = frame[ip.l4..end].to_vec();
    segment[16] = 0;
    segment[17] = 0;
    let mut pseudo = Vec::new();
    if ip.v6 {
        pseudo.extend_from_slice(&ip.src);
        pseudo.extend_from_slice(&ip.dst);
        pseudo.extend_from_slice(&(ip.upper_len as u32).to_be_bytes());
        pseudo.extend_from_slice(&[0, 0, 0, 6]);
    } else {
        pseudo.extend_from_slice(&ip.src[..4]);
        pseudo.extend_from_slice(&ip.dst[..4]);
        pseudo.extend_from_slice(&[0, 6]);
        pseudo.extend_from_slice(&(ip.upper_len as u16).to_be_bytes());
    }
    // Both parts have even length, so their sums add up.
    let sum = u32::from(ones_complement_sum(&pseudo)) + u32::from(ones_complement_sum(&segment));
    let folded = ((sum & 0xffff) + (sum >> 16)) as u16;
    Some(!folded)
}

/// Recomputes the IPv4 header checksum and the TCP checksum of `frame`
/// wherever its headers let them be computed (a first or whole TCP
/// segment, all of it in the frame), after headers were edited.
pub fn fix_checksums(frame: &mut [u8]) {
    let walked = layers(frame);
    let Some(ip) = walked.ip else { return };
    if !ip.v6 {
        let l3 = walked.l3;
        let ihl = ip.l4 - l3;
        frame[l3 + 10] = 0;
        frame[l3 + 11] = 0;
        let sum = !ones_complement_sum(&frame[l3..l3 + ihl]);
        frame[l3 + 10..l3 + 12].copy_from_slice(&sum.to_be_bytes());
    }
    let first = ip.fragment.is_none_or(|(_, offset)| offset == 0);
    if ip.protocol == 6
        && first
        && let Some(sum) = tcp_checksum(frame, &ip)
    {
        frame[ip.l4 + 16..ip.l4 + 18].copy_from_slice(&sum.to_be_bytes());
    }
}

/// The 16-bit ones' complement sum of RFC 1071.
pub fn ones_complement_sum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for chunk in bytes.chunks(2) {
        let word = u16::from_be_bytes([chunk[0], *chunk.get(1).unwrap_or(&0)]);
        sum += u32::from(word);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// A small deterministic PRNG (xorshift64*), so floods are reproducible and
/// the lab needs no extra dependency.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// A spoofed source for `dst`'s family, from `r`: 198.19.0.0/16, or
/// 2001:2:0:ff00::/56 for IPv6 (both inside the lab's benchmark ranges).
fn spoofed_source(dst: IpAddr, r: u64) -> IpAddr {
    match dst {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::new(198, 19, (r >> 8) as u8, r as u8)),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::new(
            0x2001,
            2,
            0,
            0xff00 | ((r >> 48) as u16 & 0xff),
            (r >> 32) as u16,
            (r >> 16) as u16,
            r as u16,
            1,
        )),
    }
}

/// `count` SYN frames to `dst:dport` from random sources in 198.19.0.0/16
/// (or 2001:2:0:ff00::/56 for an IPv6 `dst`), with random ports and sequence
/// numbers: what a spoofed SYN flood looks like on the wire.
pub fn spoofed_syns(count: usize, dst: IpAddr, dport: u16, seed: u64) -> Vec<Vec<u8>> {
    let mut rng = Rng::new(seed);
    (0..count)
        .map(|_| {
            let r = rng.next_u64();
            let sport = 1024 + (r >> 20) as u16 % 60000;
            Segment::syn(spoofed_source(dst, r), dst, sport, dport)
                .numbers((r >> 32) as u32, 0)
                .frame()
        })
        .collect()
}

/// `count` ACK frames to `dst:dport` from random sources (as
/// [`spoofed_syns`]), ports and sequence numbers, each acknowledging a
/// random number: the third segment of handshakes that never happened,
/// carrying forged SYN cookies. A third are bare ACKs, a third carry a
/// timestamp option as Linux's do, a third carry data (PSH|ACK), as a
/// client's first request after a cookie handshake would.
pub fn spoofed_acks(count: usize, dst: IpAddr, dport: u16, seed: u64) -> Vec<Vec<u8>> {
    let mut rng = Rng::new(seed);
    (0..count)
        .map(|i| {
            let r = rng.next_u64();
            let cookie = rng.next_u64() as u32;
            let sport = 1024 + (r >> 20) as u16 % 60000;
            let ack = Segment::syn(spoofed_source(dst, r), dst, sport, dport)
                .flags(Flags::ACK)
                .numbers((r >> 32) as u32, cookie);
            match i % 3 {
                0 => ack.options(vec![]),
                1 => ack.options(vec![
                    TcpOptionElement::Noop,
                    TcpOptionElement::Noop,
                    TcpOptionElement::Timestamp(r as u32, cookie.rotate_left(7)),
                ]),
                _ => ack
                    .flags(Flags {
                        psh: true,
                        ..Flags::ACK
                    })
                    .options(vec![])
                    .payload(b"GET / HTTP/1.1\r\nHost: synguard\r\n\r\n"),
            }
            .frame()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_syn_has_valid_checksums_and_linux_options() {
        let frame = Segment::syn(
            IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1)),
            IpAddr::V4(Ipv4Addr::new(198, 18, 0, 2)),
            1234,
            80,
        )
        .frame();
        let sliced = etherparse::SlicedPacket::from_ethernet(&frame).unwrap();
        let Some(etherparse::TransportSlice::Tcp(tcp)) = sliced.transport else {
            panic!("not TCP")
        };
        assert!(tcp.syn() && !tcp.ack());
        assert_eq!(
            tcp.data_offset(),
            10,
            "MSS, SACK, TS, NOP, WS: 20 bytes of options"
        );
        // An IPv4 header whose checksum is right sums to 0xffff.
        assert_eq!(ones_complement_sum(&frame[L3..L3 + 20]), 0xffff);
    }

    #[test]
    fn patched_ipv4_header_keeps_a_valid_checksum() {
        let mut frame = Segment::syn(
            IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1)),
            IpAddr::V4(Ipv4Addr::new(198, 18, 0, 2)),
            1234,
            80,
        )
        .frame();
        patch_ipv4(&mut frame, |ip| ip[8] = 3);
        assert_eq!(ones_complement_sum(&frame[L3..L3 + 20]), 0xffff);
    }

    #[test]
    fn raw_tcp_options_and_fixed_checksums_agree_with_etherparse() {
        let syn = Segment::syn(
            IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1)),
            IpAddr::V4(Ipv4Addr::new(198, 18, 0, 2)),
            1234,
            80,
        )
        .options(vec![]);
        // MSS, then an option of length 0: padded to 8 bytes of options.
        let frame = with_raw_tcp_options(&syn.frame(), &[2, 4, 5, 0xb4, 8, 0]);
        let sliced = etherparse::SlicedPacket::from_ethernet(&frame).unwrap();
        let Some(etherparse::NetSlice::Ipv4(ip)) = &sliced.net else {
            panic!("not IPv4")
        };
        let ip = ip.header().to_header();
        let Some(etherparse::TransportSlice::Tcp(tcp)) = sliced.transport else {
            panic!("not TCP")
        };
        assert_eq!(tcp.data_offset(), 7);
        assert_eq!(usize::from(ip.total_len), frame.len() - L3);
        assert_eq!(ip.header_checksum, ip.calc_header_checksum());
        assert_eq!(
            tcp.checksum(),
            tcp.to_header()
                .calc_checksum_ipv4(&ip, tcp.payload())
                .unwrap()
        );
        let walked = layers(&frame);
        let walked_ip = walked.ip.as_ref().unwrap();
        assert_eq!((walked_ip.protocol, walked_ip.l4), (6, L3 + 20));
        assert_eq!(tcp_checksum(&frame, walked_ip), Some(tcp.checksum()));
    }

    #[test]
    fn layers_walk_tags_and_extension_headers_to_tcp() {
        let syn = Segment::syn(
            IpAddr::V6(Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 1)),
            IpAddr::V6(Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 2)),
            1234,
            80,
        )
        .frame();
        let chain = with_ipv6_extensions(
            &syn,
            &[
                (IPV6_HOP_BY_HOP, pad_options(6)),
                (IPV6_FRAGMENT, vec![0, 1, 0, 0, 0, 7]),
                (IPV6_AUTH, vec![0; 14]),
            ],
        );
        let tagged = push_vlan_tag(&push_vlan_tag(&chain, 0x8100, 5), 0x88a8, 0);
        let walked = layers(&tagged);
        assert_eq!(walked.vlans, vec![(0x88a8, 0), (0x8100, 5)]);
        assert_eq!(walked.l3, L3 + 8);
        let ip = walked.ip.unwrap();
        let kinds: Vec<u8> = ip.extensions.iter().map(|(kind, _)| *kind).collect();
        assert_eq!(kinds, [IPV6_HOP_BY_HOP, IPV6_FRAGMENT, IPV6_AUTH]);
        assert_eq!(ip.fragment, Some((true, 0)), "a first fragment");
        assert_eq!((ip.protocol, ip.l4), (6, L3 + 8 + 40 + 8 + 8 + 16));
        assert_eq!(ip.upper_len, syn.len() - L3 - 40);
        assert!(ip.lengths_ok);

        // A later fragment: the walk stops at its header.
        let later = with_ipv6_extensions(&syn, &[(IPV6_FRAGMENT, vec![0, 0x11, 0, 0, 0, 7])]);
        let ip = layers(&later).ip.unwrap();
        assert_eq!(ip.fragment, Some((true, 2)));
        assert_eq!((ip.protocol, ip.l4), (IPV6_FRAGMENT, L3 + 40));
    }

    #[test]
    fn spoofed_sources_stay_in_the_benchmark_ranges() {
        for frame in spoofed_syns(64, IpAddr::V4(Ipv4Addr::new(198, 18, 0, 2)), 80, 1) {
            assert_eq!(frame[L3 + 12..L3 + 14], [198, 19]);
        }
        for frame in spoofed_syns(
            64,
            IpAddr::V6(Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 2)),
            80,
            1,
        ) {
            assert_eq!(frame[L3 + 8..L3 + 12], [0x20, 0x01, 0x00, 0x02]);
        }
    }
}
