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
