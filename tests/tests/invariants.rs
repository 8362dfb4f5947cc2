//! Randomized invariants of the data path. 50,000 generated and mutated
//! frames go through BPF_PROG_TEST_RUN with flood mode on (budgets off),
//! beside a real listener, and on every one the rules that must hold
//! whatever arrives are checked:
//!
//! 1. exactly one packet is counted, with the frame's length, under a
//!    reason whose verdict is the action taken, and never `internal`; a
//!    frame the program does not answer leaves it untouched;
//! 2. ARP and IPv6 neighbour discovery are never dropped (within the
//!    parser's documented bounds of 2 VLAN tags and 8 extension headers,
//!    and unless the source is blocklisted: every protocol from a
//!    blocklisted source is dropped);
//! 3. a SYN the kernel would answer with a SYN-ACK never reaches it in
//!    flood mode unless its source is allowlisted: it is answered from XDP
//!    (or dropped, blocklisted or past the parser's bounds); nor does a
//!    first fragment that could carry one;
//! 4. what leaves with XDP_TX is a well-formed SYN-ACK to the sender, with
//!    valid checksums, answering a SYN addressed to this host alone (not
//!    to a multicast or broadcast MAC or IP address, nor to another host's
//!    MAC, a VLAN the host has no device for, or a destination that is not
//!    local) whose IPv4 header checksum is right.
//!
//! "What the kernel would answer" is modelled here after the receive path
//! (net/core/dev.c VLAN handling, ip_rcv_core, ipv6_rcv and its extension
//! header handlers, tcp_v4_rcv/tcp_v6_rcv, tcp_rcv_state_process), on the
//! frame's own bytes. Where the model is coarse (IPv4 option contents,
//! martian sources, which test frames do not meet on loopback anyway) it
//! errs towards "the kernel would take it", which makes the checks stricter.
//!
//! Each run draws a new seed from the clock and prints it;
//! `SYNGUARD_SEED=<n>` replays a run, `SYNGUARD_CASES=<n>` changes how many
//! frames it makes.
mod common;

use std::{
    collections::BTreeMap,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

use common::{CookieLab, LISTEN_PORT, Outcome, VLAN_MAC, XDP_DROP, XDP_PASS, XDP_TX, flood_config};
use etherparse::TcpOptionElement;
use synguard_common::{Reason, Verdict};
use synguard_tests::{
    lab::{OUTSIDE_MAC, OUTSIDE_V4, OUTSIDE_V6, TARGET_MAC, TARGET_V4, TARGET_V6},
    packets::{
        self, IPV6_AUTH, IPV6_DEST_OPTS, IPV6_FRAGMENT, IPV6_HOP_BY_HOP, IPV6_ROUTING, IpLayers,
        L3, Layers, Rng, Segment, fix_checksums, layers, pad_options, push_vlan_tag, tcp_checksum,
        with_ipv4_options, with_ipv6_extensions, with_raw_tcp_options,
    },
};

const DEFAULT_CASES: usize = 50_000;
const ALLOWED_V4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 77);
const ALLOWED_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 0x77);
/// Blocklisted: 198.19.66.0/24 and 2001:2:0:6666::/64.
const BLOCKED_V4: [u8; 3] = [198, 19, 66];
const BLOCKED_V6: [u8; 8] = [0x20, 0x01, 0, 2, 0, 0, 0x66, 0x66];

/// Random choices, from the lab library's deterministic generator.
struct Gen(Rng);

impl Gen {
    fn below(&mut self, n: usize) -> usize {
        (self.0.next_u64() % n as u64) as usize
    }

    fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }

    fn u16(&mut self) -> u16 {
        self.0.next_u64() as u16
    }

    fn u32(&mut self) -> u32 {
        self.0.next_u64() as u32
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.0.next_u64() as u8).collect()
    }

    fn pick<T: Clone>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())].clone()
    }
}

fn source(g: &mut Gen, v6: bool) -> IpAddr {
    let r = g.0.next_u64();
    let b = r.to_be_bytes();
    if v6 {
        IpAddr::V6(match g.below(7) {
            0 | 1 => OUTSIDE_V6,
            2 => ALLOWED_V6,
            3 => {
                let mut a = [0u8; 16];
                a[..8].copy_from_slice(&BLOCKED_V6);
                a[8..].copy_from_slice(&b);
                a.into()
            }
            4 => Ipv6Addr::new(0x2001, 2, 0, 0xff00 | u16::from(b[0]), 0, 0, r as u16, 1),
            5 => g.pick(&[
                Ipv6Addr::LOCALHOST,
                Ipv6Addr::UNSPECIFIED,
                Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1),
                Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1),
            ]),
            _ => u128::from(r).wrapping_mul(0x9e37_79b9_7f4a_7c15).into(),
        })
    } else {
        IpAddr::V4(match g.below(7) {
            0 | 1 => OUTSIDE_V4,
            2 => ALLOWED_V4,
            3 => Ipv4Addr::new(BLOCKED_V4[0], BLOCKED_V4[1], BLOCKED_V4[2], b[0]),
            4 => Ipv4Addr::new(198, 19, b[0], b[1]),
            5 => g.pick(&[
                Ipv4Addr::new(127, 0, 0, 5),
                Ipv4Addr::new(0, 1, 2, 3),
                Ipv4Addr::new(224, 0, 0, 1),
                Ipv4Addr::BROADCAST,
            ]),
            _ => Ipv4Addr::from(r as u32),
        })
    }
}

fn destination(g: &mut Gen, v6: bool) -> IpAddr {
    match (v6, g.below(8)) {
        (false, 0) => {
            let random = Ipv4Addr::from(g.u32());
            IpAddr::V4(g.pick(&[
                Ipv4Addr::new(224, 0, 0, 1),
                Ipv4Addr::new(198, 18, 0, 255),
                Ipv4Addr::BROADCAST,
                random,
            ]))
        }
        (true, 0) => IpAddr::V6(g.pick(&[
            Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1),
            Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 9),
        ])),
        (false, _) => IpAddr::V4(TARGET_V4),
        (true, _) => IpAddr::V6(TARGET_V6),
    }
}

/// A TCP segment of any kind, mostly SYNs to the listener, with options
/// well-formed or not, maybe a payload, maybe a strange data offset.
fn tcp(g: &mut Gen) -> Vec<u8> {
    let v6 = g.one_in(2);
    let (src, dst) = (source(g, v6), destination(g, v6));
    let dport = if g.below(10) < 8 {
        LISTEN_PORT
    } else {
        g.u16()
    };
    let mut segment = Segment::syn(src, dst, g.u16(), dport).numbers(g.u32(), g.u32());
    if g.one_in(4) {
        let n = 1 + g.below(200);
        segment = segment.payload(&g.bytes(n));
    }
    let mut raw_options = None;
    match g.below(5) {
        0 | 1 => {} // Linux's SYN options
        2 => segment = segment.options(vec![]),
        3 => {
            let mut options = Vec::new();
            let mut room = 40;
            for _ in 0..g.below(8) {
                let option = match g.below(5) {
                    0 => TcpOptionElement::MaximumSegmentSize(g.u16()),
                    1 => TcpOptionElement::WindowScale(g.below(20) as u8),
                    2 => TcpOptionElement::SelectiveAcknowledgementPermitted,
                    3 => TcpOptionElement::Timestamp(g.u32(), g.u32()),
                    _ => TcpOptionElement::Noop,
                };
                let size = match option {
                    TcpOptionElement::MaximumSegmentSize(_) => 4,
                    TcpOptionElement::WindowScale(_) => 3,
                    TcpOptionElement::SelectiveAcknowledgementPermitted => 2,
                    TcpOptionElement::Timestamp(..) => 10,
                    _ => 1,
                };
                if size > room {
                    break;
                }
                room -= size;
                options.push(option);
            }
            segment = segment.options(options);
        }
        _ => {
            segment = segment.options(vec![]);
            // Silly lengths (0, 1), options running past the header, or noise.
            let mut raw = match g.below(4) {
                0 => vec![2, 4, 5, 0xb4, g.pick(&[3, 8, 4]), g.below(2) as u8],
                1 => vec![1, 1, 8, 10, 1, 2, 3, 4, 0, 0, 0, 0, 3, 30],
                2 => vec![4, 2, 8, 10, 1, 2, 3, 4, 0, 0, 0, 0, 1, 3, 3, 7],
                _ => Vec::new(),
            };
            let noise = g.below(41 - raw.len());
            raw.extend(g.bytes(noise));
            raw_options = Some(raw);
        }
    }
    let mut frame = segment.frame();
    if let Some(raw) = raw_options {
        frame = with_raw_tcp_options(&frame, &raw);
    }
    let l4 = L3 + if v6 { 40 } else { 20 };
    frame[l4 + 13] = match g.below(10) {
        0..=4 => 0x02,                                 // SYN
        5 => 0x12,                                     // SYN|ACK
        6 => 0x10 | (g.below(2) as u8) << 3,           // ACK, maybe PSH
        7 => g.pick(&[0x03, 0x06, 0x07]),              // SYN with FIN or RST
        8 => 0x02 | g.pick(&[0x08, 0x20, 0x40, 0x80]), // SYN with PSH, URG, ECE, CWR
        _ => g.u16() as u8,
    };
    if g.one_in(12) {
        frame[l4 + 12] = (g.below(16) as u8) << 4;
    }
    fix_checksums(&mut frame);
    frame
}

/// A frame that is not TCP: ARP, neighbour discovery, ICMP, UDP, other IP
/// protocols, other EtherTypes; unicast, multicast or broadcast.
fn other(g: &mut Gen) -> Vec<u8> {
    let mut frame = match g.below(8) {
        0 => {
            let mut arp = packets::arp_request(OUTSIDE_V4, TARGET_V4);
            if g.one_in(2) {
                // A reply, to us.
                arp[..6].copy_from_slice(&TARGET_MAC);
                arp[21] = 2;
            }
            arp
        }
        1 | 2 => neighbour_discovery(g),
        3 => {
            let v6 = g.one_in(2);
            packets::ping(source(g, v6), destination(g, v6))
        }
        4 => {
            let v6 = g.one_in(2);
            let n = g.below(64);
            let payload = g.bytes(n);
            packets::udp(
                source(g, v6),
                destination(g, v6),
                g.u16(),
                g.u16(),
                &payload,
            )
        }
        5 => {
            // Another IP protocol (GRE, SCTP, ESP, ...) or a raw number.
            let v6 = g.one_in(2);
            let mut f = packets::udp(source(g, v6), destination(g, v6), 1, 2, &g.bytes(16));
            let random = g.u16() as u8;
            let protocol = g.pick(&[47, 132, 50, 4, 41, random]);
            if v6 {
                f[L3 + 6] = protocol;
            } else {
                packets::patch_ipv4(&mut f, |ip| ip[9] = protocol);
            }
            f
        }
        _ => {
            let mut f = [TARGET_MAC, OUTSIDE_MAC].concat();
            let random = g.u16();
            f.extend_from_slice(
                &g.pick(&[0x88ccu16, 0x88b5, 0x8906, 0x0842, random])
                    .to_be_bytes(),
            );
            let n = g.below(100);
            f.extend(g.bytes(n));
            f
        }
    };
    match g.below(6) {
        0 => frame[..6].copy_from_slice(&[0xff; 6]),
        1 => frame[..6].copy_from_slice(&[0x01, 0x00, 0x5e, 0, 0, 1]),
        2 => frame[..6].copy_from_slice(&[0x33, 0x33, 0, 0, 0, 1]),
        _ => {}
    }
    frame
}

/// A router or neighbour solicitation or advertisement, or a redirect
/// (ICMPv6 133-137), with hop limit 255 as RFC 4861 requires.
fn neighbour_discovery(g: &mut Gen) -> Vec<u8> {
    if g.one_in(2) {
        return packets::neighbour_solicitation(
            g.pick(&[OUTSIDE_V6, Ipv6Addr::UNSPECIFIED]),
            TARGET_V6,
        );
    }
    let kind = 133 + g.below(5) as u8;
    let body_len = g.pick(&[0, 8, 16, 24]);
    let mut out = Vec::new();
    etherparse::PacketBuilder::ethernet2(
        OUTSIDE_MAC,
        g.pick(&[TARGET_MAC, [0x33, 0x33, 0, 0, 0, 1]]),
    )
    .ipv6(
        g.pick(&[OUTSIDE_V6, Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1)])
            .octets(),
        g.pick(&[TARGET_V6, Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1)])
            .octets(),
        255,
    )
    .icmpv6_raw(kind, 0, [0; 4])
    .write_to_vec(&mut out, &g.bytes(body_len))
    .expect("build an ND frame");
    out
}

/// IPv4 options or fragmentation, IPv6 extension headers, Ethernet padding.
fn network_layer(g: &mut Gen, mut frame: Vec<u8>) -> Vec<u8> {
    let l = layers(&frame);
    let Some(ip) = l.ip else { return frame };
    if !ip.v6 {
        if g.one_in(6) {
            let words = 1 + g.below(10);
            let options = if g.one_in(2) {
                let mut o = vec![1; words * 4 - 1];
                o.push(0);
                o
            } else {
                g.bytes(words * 4)
            };
            frame = with_ipv4_options(&frame, &options);
        }
        if g.one_in(6) {
            let (more, offset) = match g.below(4) {
                0 => (true, 0),
                1 => (g.one_in(2), 1),
                2 => (g.one_in(2), 1 + g.below(0x1fff) as u16),
                _ => (false, 0),
            };
            frame = packets::fragment_v4(&frame, more, offset);
            if more && offset == 0 && g.one_in(3) {
                // RFC 1858 tiny fragment: 8 bytes of the upper layer.
                let ihl = usize::from(frame[L3] & 0x0f) * 4;
                frame.truncate(L3 + ihl + 8);
                packets::patch_ipv4(&mut frame, |h| {
                    h[2..4].copy_from_slice(&((ihl + 8) as u16).to_be_bytes())
                });
            }
        }
    } else if g.one_in(2) {
        // Mostly chains the kernel walks (see kernel_walks_extensions),
        // some it does not, some longer than the parser's bound.
        let count = 1 + g.below(10);
        let headers: Vec<(u8, Vec<u8>)> = (0..count)
            .map(|i| match g.below(20) {
                0..=5 if i == 0 => (IPV6_HOP_BY_HOP, pad_options(6 + 8 * g.below(2))),
                0 => (IPV6_HOP_BY_HOP, pad_options(6)),
                1..=7 => (IPV6_DEST_OPTS, pad_options(6 + 8 * g.below(3))),
                8..=11 => {
                    let segments_left = if g.one_in(5) { 1 + g.below(3) as u8 } else { 0 };
                    let kind = g.pick(&[0, 0, 2, 3, 4, 253]);
                    let mut body = vec![kind, segments_left, 0, 0, 0, 0];
                    body.extend(vec![0; 8 * g.below(3)]);
                    (IPV6_ROUTING, body)
                }
                12..=17 => {
                    let (more, offset) = match g.below(4) {
                        0 | 1 => (false, 0),
                        2 => (true, 0),
                        _ => (g.one_in(2), 1 + g.below(0x1fff) as u16),
                    };
                    let field = offset << 3 | u16::from(more);
                    let mut body = field.to_be_bytes().to_vec();
                    body.extend(g.bytes(4));
                    (IPV6_FRAGMENT, body)
                }
                _ => (IPV6_AUTH, vec![0; 14]),
            })
            .collect();
        frame = with_ipv6_extensions(&frame, &headers);
    }
    if g.one_in(6) {
        let n = 1 + g.below(30);
        let padding = if g.one_in(2) { vec![0; n] } else { g.bytes(n) };
        frame.extend(padding);
    }
    frame
}

/// 0 to 3 VLAN tags, 802.1Q or 802.1ad, VLAN id 0 (priority tags) or not.
fn vlan_tags(g: &mut Gen, mut frame: Vec<u8>) -> Vec<u8> {
    let tags = match g.below(20) {
        0..=11 => 0,
        12..=15 => 1,
        16..=18 => 2,
        _ => 3,
    };
    for _ in 0..tags {
        // The host's VLAN ids often, so frames reach its VLAN devices.
        let vid = if g.one_in(2) {
            0
        } else if g.one_in(2) {
            g.pick(&[7, 100, 200])
        } else {
            1 + g.below(4095) as u16
        };
        let pcp = (g.below(8) as u16) << 13;
        frame = push_vlan_tag(&frame, g.pick(&[0x8100, 0x88a8]), pcp | vid);
    }
    frame
}

/// Truncation and flipped header bytes, checksums then fixed or not.
fn mutate(g: &mut Gen, mut frame: Vec<u8>) -> Vec<u8> {
    if g.one_in(3) {
        let len = 14 + g.below(frame.len() - 13);
        frame.truncate(len);
    } else {
        for _ in 0..1 + g.below(4) {
            let at = g.below(frame.len().min(14 + 8 + 60 + 60));
            frame[at] = if g.one_in(2) {
                frame[at] ^ (1 << g.below(8))
            } else {
                g.u16() as u8
            };
        }
    }
    if g.one_in(2) {
        fix_checksums(&mut frame);
    }
    frame
}

fn frame(g: &mut Gen) -> Vec<u8> {
    let frame = if g.below(10) < 7 { tcp(g) } else { other(g) };
    let frame = network_layer(g, frame);
    let mut frame = vlan_tags(g, frame);
    if g.one_in(10) {
        // Another host's MAC, a VLAN device's, a group's.
        let mac = g.pick(&[
            [0x02, 0, 0x5e, 0, 0, 0x99],
            VLAN_MAC,
            [0x33, 0x33, 0, 0, 0, 2],
        ]);
        frame[..6].copy_from_slice(&mac);
    }
    if g.below(10) < 4 {
        mutate(g, frame)
    } else {
        frame
    }
}

/// The kernel's view of a frame, as far as the invariants need it.
#[derive(Debug, PartialEq, Eq)]
enum KernelView {
    Arp,
    NeighbourDiscovery,
    /// A SYN to the listener the kernel would answer with a SYN-ACK.
    Syn,
    /// A first TCP fragment whose header is a SYN's, or too short to tell:
    /// reassembled, it could be a SYN the kernel answers.
    FragmentThatCouldBeSyn,
    Other,
}

/// Within the parser's documented bounds (synguard_common::limits).
fn within_bounds(l: &Layers) -> bool {
    l.vlans.len() <= synguard_common::limits::MAX_VLAN_TAGS
        && l.ip
            .as_ref()
            .is_none_or(|ip| ip.extensions.len() <= synguard_common::limits::MAX_IPV6_EXT_HEADERS)
}

/// The kernel strips priority tags (VLAN id 0), hands a frame tagged for
/// a VLAN device it has to that device, and drops any other tagged frame
/// (net/core/dev.c __netif_receive_skb_core, vlan_do_receive). The host
/// (`common::target_host`) has 802.1Q VLANs 7 and 100, and 802.1Q 200
/// in 802.1ad 100.
fn kernel_takes_tags(l: &Layers) -> bool {
    let chain: Vec<(u16, u16)> = l
        .vlans
        .iter()
        .copied()
        .filter(|&(_, vid)| vid != 0)
        .collect();
    matches!(
        chain[..],
        [] | [(0x8100, 7)] | [(0x8100, 100)] | [(0x88a8, 100), (0x8100, 200)]
    )
}

/// For this host: its MAC (or, on one of its VLANs, the VLAN device's),
/// a VLAN chain it has devices for, one of its addresses.
fn for_this_host(frame: &[u8], l: &Layers, ip: &IpLayers) -> bool {
    let tagged = l.vlans.iter().any(|&(_, vid)| vid != 0);
    (frame[..6] == TARGET_MAC || (tagged && frame[..6] == VLAN_MAC))
        && kernel_takes_tags(l)
        && if ip.v6 {
            ip.dst == TARGET_V6.octets()
        } else {
            ip.dst[..4] == TARGET_V4.octets()
        }
}

/// An IPv6 extension chain the kernel walks to the upper layer: hop-by-hop
/// first only, routing headers with no segments left (and not segment
/// routing, off by default), destination options, fragment headers of
/// atomic fragments only, and one Fragment header at most (net/ipv6/
/// exthdrs.c, reassembly.c `ipv6_frag_rcv` discards a second). AH needs
/// IPsec state; mobility, HIP and shim6 headers have no TCP behind them.
fn kernel_walks_extensions(frame: &[u8], ip: &IpLayers) -> bool {
    let fragment_headers = ip
        .extensions
        .iter()
        .filter(|&&(kind, _)| kind == IPV6_FRAGMENT)
        .count();
    fragment_headers <= 1
        && ip
            .extensions
            .iter()
            .enumerate()
            .all(|(i, &(kind, at))| match kind {
                IPV6_HOP_BY_HOP => i == 0,
                IPV6_ROUTING => frame[at + 3] == 0 && !matches!(frame[at + 2], 3 | 4),
                IPV6_DEST_OPTS | IPV6_FRAGMENT => true,
                _ => false,
            })
        && ip.fragment.is_none()
}

fn kernel_view(frame: &[u8], l: &Layers) -> KernelView {
    if l.ether_type == Some(0x0806) {
        return KernelView::Arp;
    }
    let Some(ip) = &l.ip else {
        return KernelView::Other;
    };
    let upper = |i: usize| frame.get(ip.l4 + i).copied();
    if ip.v6
        && ip.protocol == 58
        && ip.lengths_ok
        && ip.hop_limit == 255
        && kernel_walks_extensions(frame, ip)
        && ip.upper_len >= 4
        && upper(0).is_some_and(|t| (133..=137).contains(&t))
        && upper(1) == Some(0)
    {
        return KernelView::NeighbourDiscovery;
    }
    if ip.protocol != 6 || !ip.lengths_ok || !ip.header_checksum_ok || !for_this_host(frame, l, ip)
    {
        return KernelView::Other;
    }
    if let Some((true, 0)) = ip.fragment {
        let whole_header = ip.upper_len >= 20 && ip.l4 + 20 <= frame.len();
        // Reassembled, it is a SYN the kernel answers if this header says
        // so, or could be one if this fragment is too short to say.
        if !whole_header || upper(13).is_some_and(|flags| flags & 0x17 == 0x02) {
            return KernelView::FragmentThatCouldBeSyn;
        }
        return KernelView::Other;
    }
    if ip.fragment.is_some() || (ip.v6 && !kernel_walks_extensions(frame, ip)) || ip.upper_len < 20
    {
        return KernelView::Other;
    }
    let tcp = &frame[ip.l4..ip.l4 + ip.upper_len];
    let doff = usize::from(tcp[12] >> 4) * 4;
    let flags = tcp[13];
    let dport = u16::from_be_bytes([tcp[2], tcp[3]]);
    let checksum = u16::from_be_bytes([tcp[16], tcp[17]]);
    // tcp_v4_rcv: data offset; tcp_rcv_state_process in LISTEN: SYN without
    // ACK, RST or FIN starts a handshake.
    if doff >= 20
        && doff <= tcp.len()
        && tcp_checksum(frame, ip) == Some(checksum)
        && flags & 0x17 == 0x02
        && dport == LISTEN_PORT
    {
        KernelView::Syn
    } else {
        KernelView::Other
    }
}

fn allowlisted(ip: &IpLayers) -> bool {
    if ip.v6 {
        ip.src == ALLOWED_V6.octets()
    } else {
        ip.src[..4] == ALLOWED_V4.octets()
    }
}

fn blocklisted(ip: &IpLayers) -> bool {
    if ip.v6 {
        ip.src[..8] == BLOCKED_V6
    } else {
        ip.src[..3] == BLOCKED_V4
    }
}

fn action(reason: Reason) -> u32 {
    match reason.verdict() {
        Verdict::Pass => XDP_PASS,
        Verdict::Drop => XDP_DROP,
        Verdict::Tx => XDP_TX,
        Verdict::Aborted => 0,
    }
}

/// Checks one outcome; returns the reason counted, or what went wrong.
fn check(frame: &[u8], outcome: &Outcome) -> Result<Reason, String> {
    // 1. One packet, one reason, the verdict that goes with it.
    let counted: Vec<Reason> = Reason::ALL
        .into_iter()
        .filter(|&r| outcome.delta.get(r).packets > 0)
        .collect();
    let [reason] = counted[..] else {
        return Err(format!("counters moved {:?}", outcome.delta.rows()));
    };
    if outcome.delta.total_packets() != 1 {
        return Err(format!("counters moved {:?}", outcome.delta.rows()));
    }
    if outcome.delta.get(reason).bytes != frame.len() as u64 {
        return Err(format!(
            "{} bytes counted for a {}-byte frame",
            outcome.delta.get(reason).bytes,
            frame.len()
        ));
    }
    if reason == Reason::Internal || outcome.action != action(reason) {
        return Err(format!("action {} under {}", outcome.action, reason.name()));
    }
    if outcome.action != XDP_TX && outcome.output != frame {
        return Err(format!("{} rewrote the frame", reason.name()));
    }

    let l = layers(frame);
    let view = kernel_view(frame, &l);
    let listed = |check: fn(&IpLayers) -> bool| l.ip.as_ref().is_some_and(check);
    match view {
        // 2. ARP and neighbour discovery pass.
        KernelView::Arp | KernelView::NeighbourDiscovery
            if within_bounds(&l) && !listed(blocklisted) && outcome.action == XDP_DROP =>
        {
            return Err(format!("{view:?} dropped as {}", reason.name()));
        }
        // 3. SYNs the kernel would answer are answered here.
        KernelView::Syn => {
            // The parser's bounds come first, then the lists.
            let expected = if !within_bounds(&l) {
                Reason::HeaderChain
            } else if listed(allowlisted) {
                Reason::Allowlist
            } else if listed(blocklisted) {
                Reason::Blocklist
            } else {
                Reason::SynAck
            };
            if reason != expected {
                return Err(format!(
                    "a SYN the kernel would answer: {} (want {})",
                    reason.name(),
                    expected.name()
                ));
            }
        }
        KernelView::FragmentThatCouldBeSyn
            if outcome.action == XDP_PASS && reason != Reason::Allowlist =>
        {
            return Err(format!(
                "a first fragment that could be a SYN passed as {}",
                reason.name()
            ));
        }
        _ => {}
    }
    // 4. The answer.
    if outcome.action == XDP_TX {
        check_syn_ack(frame, &l, &outcome.output)?;
    }
    Ok(reason)
}

/// The answer is a SYN-ACK to the sender of `frame`: MACs, addresses and
/// ports swapped, VLAN tags kept, ack = seq + 1, no IP options, extension
/// headers or payload, well-formed options starting with the MSS, valid
/// checksums.
fn check_syn_ack(frame: &[u8], l: &Layers, out: &[u8]) -> Result<(), String> {
    let fail = |what: &str| Err(format!("SYN-ACK: {what}"));
    let Some(ip) = &l.ip else {
        return fail("answers a frame that is not IP");
    };
    // ip_rcv_core drops a header whose checksum is wrong; so does the
    // cookie path (the TCP checksum it cannot check:
    // docs/design.md#why-these-parsing-choices).
    if !ip.header_checksum_ok {
        return fail("answers a SYN whose IPv4 header checksum is wrong");
    }
    let group = frame[0] & 1 != 0
        || if ip.v6 {
            ip.dst[0] == 0xff
        } else {
            ip.dst[0] >= 224
        };
    if group {
        return fail("answers a SYN to a group (multicast or broadcast) address");
    }
    if !for_this_host(frame, l, ip) {
        return fail("answers a SYN not for this host (MAC, VLAN or a destination not local)");
    }
    let o = layers(out);
    let Some(oip) = &o.ip else {
        return fail("not IP");
    };
    if out[..6] != frame[6..12] || out[6..12] != frame[..6] {
        return fail("MACs not swapped");
    }
    if o.vlans != l.vlans || o.ether_type != l.ether_type {
        return fail("VLAN tags or EtherType changed");
    }
    if oip.v6 != ip.v6 || oip.src != ip.dst || oip.dst != ip.src {
        return fail("addresses not swapped");
    }
    if oip.protocol != 6 || !oip.extensions.is_empty() || oip.fragment.is_some() {
        return fail("not a plain TCP packet");
    }
    if !oip.lengths_ok || !oip.header_checksum_ok || oip.hop_limit != 64 {
        return fail("IP header lengths, checksum or TTL");
    }
    if !ip.v6 && oip.l4 - o.l3 != 20 {
        return fail("IPv4 options carried over");
    }
    let th = &out[oip.l4..];
    let doff = usize::from(th[12] >> 4) * 4;
    if th.len() != doff || oip.upper_len != doff || doff < 24 {
        return fail("length: a TCP header with the MSS option and nothing after it");
    }
    let input = &frame[ip.l4..];
    let seq = u32::from_be_bytes([input[4], input[5], input[6], input[7]]);
    let ack = u32::from_be_bytes([th[8], th[9], th[10], th[11]]);
    if th[0..2] != input[2..4] || th[2..4] != input[0..2] {
        return fail("ports not swapped");
    }
    if th[13] != 0x12 || ack != seq.wrapping_add(1) {
        return fail("not SYN|ACK acknowledging seq + 1");
    }
    if tcp_checksum(out, oip) != Some(u16::from_be_bytes([th[16], th[17]])) {
        return fail("TCP checksum");
    }
    if th[20..24] != [2, 4, th[22], th[23]] {
        return fail("first option is not the MSS");
    }
    let mut at = 24;
    while at < doff {
        match th[at] {
            0 => break,
            1 => at += 1,
            _ if at + 1 < doff && th[at + 1] >= 2 && at + usize::from(th[at + 1]) <= doff => {
                at += usize::from(th[at + 1])
            }
            _ => return fail("malformed options"),
        }
    }
    Ok(())
}

fn env_number(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    let value = value.trim();
    match value.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => value.parse().ok(),
    }
}

#[test]
fn random_frames_keep_the_data_path_invariants() {
    let seed = env_number("SYNGUARD_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
    });
    let cases = env_number("SYNGUARD_CASES").map_or(DEFAULT_CASES, |n| n as usize);
    println!("seed {seed:#x}, {cases} frames (replay: SYNGUARD_SEED={seed:#x})");

    let mut lab = CookieLab::new(flood_config());
    lab.harness.list_add("ALLOW", &format!("{ALLOWED_V4}/32"));
    lab.harness.list_add("ALLOW", &format!("{ALLOWED_V6}/128"));
    lab.harness.list_add("BLOCK", "198.19.66.0/24");
    lab.harness.list_add("BLOCK", "2001:2:0:6666::/64");
    let mut g = Gen(Rng::new(seed));
    let CookieLab { harness, ns, .. } = &mut lab;
    let (tally, views) = ns.run(|| {
        let mut tally: BTreeMap<&str, u64> = BTreeMap::new();
        let mut views: BTreeMap<String, u64> = BTreeMap::new();
        for case in 0..cases {
            let frame = frame(&mut g);
            let outcome = harness.run(&frame);
            match check(&frame, &outcome) {
                Ok(reason) => *tally.entry(reason.name()).or_default() += 1,
                Err(problem) => panic!(
                    "seed {seed:#x}, frame {case}: {problem}\n  frame: {}\n  layers: {:?}\n  answer: {}\nreplay: SYNGUARD_SEED={seed:#x} cargo test -p synguard-tests --test invariants",
                    hex(&frame),
                    layers(&frame),
                    hex(&outcome.output),
                ),
            }
            let view = kernel_view(&frame, &layers(&frame));
            *views.entry(format!("{view:?}")).or_default() += 1;
        }
        (tally, views)
    });
    println!("reasons: {tally:?}");
    println!("the kernel's view: {views:?}");
    // The generator reaches every kind of frame the invariants are about.
    for view in ["Arp", "NeighbourDiscovery", "Syn", "FragmentThatCouldBeSyn"] {
        assert!(
            views.get(view).copied().unwrap_or(0) * 200 >= cases as u64,
            "at least 0.5% of the frames are {view}: {views:?}"
        );
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
