//! Packet tests: each fixture is a frame, run once through the loaded XDP
//! program with BPF_PROG_TEST_RUN, with the verdict, the counter that moved
//! and the output bytes checked (in the manner of Katran's fixtures).
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

mod common;

use common::Harness;
use synguard_common::Reason;
use synguard_tests::{
    lab::{OUTSIDE_MAC, OUTSIDE_V4, OUTSIDE_V6, TARGET_V4, TARGET_V6},
    packets::{
        self, Flags, L3, Segment, fragment_v4, pad_options, push_vlan_tag, with_ipv4_options,
        with_ipv6_extensions,
    },
};

fn v4(src: Ipv4Addr) -> IpAddr {
    IpAddr::V4(src)
}

fn syn_v4() -> Segment {
    Segment::syn(v4(OUTSIDE_V4), v4(TARGET_V4), 40000, 80)
}

fn syn_v6() -> Segment {
    Segment::syn(IpAddr::V6(OUTSIDE_V6), IpAddr::V6(TARGET_V6), 40000, 80)
}

/// `frame` sent to another destination MAC (broadcast, multicast).
fn to_mac(mut frame: Vec<u8>, mac: [u8; 6]) -> Vec<u8> {
    frame[..6].copy_from_slice(&mac);
    frame
}

/// A frame of another EtherType, 46 bytes of payload (the Ethernet minimum).
fn non_ip(ether_type: u16, destination: [u8; 6]) -> Vec<u8> {
    let mut frame = destination.to_vec();
    frame.extend_from_slice(&OUTSIDE_MAC);
    frame.extend_from_slice(&ether_type.to_be_bytes());
    frame.extend_from_slice(&[0x5a; 46]);
    frame
}

/// An IPv6 router advertisement (ICMPv6 134) from a link-local address to
/// all nodes.
fn router_advertisement() -> Vec<u8> {
    let mut frame = Vec::new();
    etherparse::PacketBuilder::ethernet2(OUTSIDE_MAC, [0x33, 0x33, 0, 0, 0, 1])
        .ipv6(
            Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1).octets(),
            Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1).octets(),
            255,
        )
        .icmpv6_raw(134, 0, [64, 0, 0x07, 0x08])
        .write_to_vec(&mut frame, &[0; 8])
        .expect("build a router advertisement");
    frame
}

#[test]
fn every_fixture_gets_its_verdict_and_counter() {
    let mut harness = Harness::new();
    let syn4 = syn_v4().frame();
    let syn6 = syn_v6().frame();
    let hbh = (0u8, pad_options(6));
    let dest_opts = (60u8, pad_options(6));
    let atomic_fragment = (44u8, vec![0, 0, 0, 0, 0, 1]);
    let later_fragment = (44u8, vec![0x01, 0x00, 0, 0, 0, 2]); // offset 32
    let first_fragment = (44u8, vec![0x00, 0x01, 0, 0, 0, 3]); // offset 0, M set
    let routing = (43u8, vec![0, 0, 0, 0, 0, 0]); // type 0, no segments left
    let bare = syn_v4().options(vec![]).frame();

    let fixtures: Vec<(&str, Vec<u8>, Reason)> = vec![
        // Not TCP: passed untouched.
        (
            "ARP request",
            packets::arp_request(OUTSIDE_V4, TARGET_V4),
            Reason::NonIp,
        ),
        (
            "ICMP echo",
            packets::ping(v4(OUTSIDE_V4), v4(TARGET_V4)),
            Reason::NonTcp,
        ),
        (
            "ICMPv6 echo",
            packets::ping(IpAddr::V6(OUTSIDE_V6), IpAddr::V6(TARGET_V6)),
            Reason::NonTcp,
        ),
        (
            "IPv6 neighbour solicitation",
            packets::neighbour_solicitation(OUTSIDE_V6, TARGET_V6),
            Reason::NonTcp,
        ),
        (
            "IPv6 router advertisement to all nodes",
            router_advertisement(),
            Reason::NonTcp,
        ),
        (
            "UDP",
            packets::udp(v4(OUTSIDE_V4), v4(TARGET_V4), 5353, 53, b"q"),
            Reason::NonTcp,
        ),
        (
            "UDP over IPv6",
            packets::udp(
                IpAddr::V6(OUTSIDE_V6),
                IpAddr::V6(TARGET_V6),
                5353,
                53,
                b"q",
            ),
            Reason::NonTcp,
        ),
        (
            "LLDP",
            non_ip(0x88cc, [0x01, 0x80, 0xc2, 0, 0, 0x0e]),
            Reason::NonIp,
        ),
        (
            "an unknown EtherType, broadcast",
            non_ip(0x88b5, [0xff; 6]),
            Reason::NonIp,
        ),
        (
            "UDP to the subnet broadcast address",
            to_mac(
                packets::udp(
                    v4(OUTSIDE_V4),
                    v4(Ipv4Addr::new(198, 18, 0, 255)),
                    68,
                    67,
                    b"q",
                ),
                [0xff; 6],
            ),
            Reason::NonTcp,
        ),
        (
            "UDP to an IPv4 multicast group (mDNS)",
            to_mac(
                packets::udp(
                    v4(OUTSIDE_V4),
                    v4(Ipv4Addr::new(224, 0, 0, 251)),
                    5353,
                    5353,
                    b"q",
                ),
                [0x01, 0x00, 0x5e, 0, 0, 0xfb],
            ),
            Reason::NonTcp,
        ),
        (
            "ICMPv6 echo to all nodes (ff02::1)",
            to_mac(
                packets::ping(
                    IpAddr::V6(OUTSIDE_V6),
                    IpAddr::V6(Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1)),
                ),
                [0x33, 0x33, 0, 0, 0, 1],
            ),
            Reason::NonTcp,
        ),
        // TCP.
        ("SYN", syn4.clone(), Reason::Syn),
        ("SYN over IPv6", syn6.clone(), Reason::Syn),
        (
            "ACK",
            syn_v4()
                .flags(Flags::ACK)
                .numbers(1, 2)
                .options(vec![])
                .frame(),
            Reason::Tcp,
        ),
        (
            "SYN-ACK",
            syn_v4().flags(Flags::SYN_ACK).frame(),
            Reason::Tcp,
        ),
        (
            "SYN with payload",
            syn_v4().payload(&[0xab; 100]).frame(),
            Reason::Syn,
        ),
        // TCP options the kernel stops reading at (tcp_parse_options): the
        // SYN is still a SYN.
        (
            "SYN with an option of length 0",
            packets::with_raw_tcp_options(&bare, &[2, 4, 5, 0xb4, 8, 0]),
            Reason::Syn,
        ),
        (
            "SYN with an option of length 1",
            packets::with_raw_tcp_options(&bare, &[1, 1, 4, 1]),
            Reason::Syn,
        ),
        (
            "SYN with an option running past the header",
            packets::with_raw_tcp_options(&bare, &[2, 4, 5, 0xb4, 3, 10, 7, 0]),
            Reason::Syn,
        ),
        // Never sent by a real stack, whether or not there is a flood.
        (
            "SYN+FIN",
            syn_v4().flags(Flags::SYN_FIN).frame(),
            Reason::BadFlags,
        ),
        (
            "SYN+RST",
            syn_v4().flags(Flags::SYN_RST).frame(),
            Reason::BadFlags,
        ),
        (
            "SYN with Ethernet padding",
            [syn4.clone(), vec![0; 6]].concat(),
            Reason::Syn,
        ),
        (
            "SYN with IPv4 options",
            with_ipv4_options(&syn4, &[1, 1, 1, 0]),
            Reason::Syn,
        ),
        // VLAN tags: parsed, never a way around the checks.
        ("802.1Q SYN", syn_v4().vlans(&[100]).frame(), Reason::Syn),
        (
            "802.1Q priority tag (VID 0) SYN",
            syn_v4().vlans(&[0]).frame(),
            Reason::Syn,
        ),
        ("QinQ SYN", syn_v4().vlans(&[100, 200]).frame(), Reason::Syn),
        (
            "802.1Q SYN over IPv6",
            syn_v6().vlans(&[100]).frame(),
            Reason::Syn,
        ),
        (
            "three VLAN tags",
            push_vlan_tag(&syn_v4().vlans(&[100, 200]).frame(), 0x88a8, 7),
            Reason::HeaderChain,
        ),
        // Truncated and inconsistent headers.
        (
            "Ethernet header only",
            syn4[..L3].to_vec(),
            Reason::Malformed,
        ),
        (
            "truncated VLAN tag",
            syn_v4().vlans(&[100]).frame()[..16].to_vec(),
            Reason::Malformed,
        ),
        (
            "truncated IPv4 header",
            syn4[..L3 + 10].to_vec(),
            Reason::Malformed,
        ),
        (
            "truncated IPv6 header",
            syn6[..L3 + 30].to_vec(),
            Reason::Malformed,
        ),
        (
            "IPv4 total length past the frame",
            syn4[..syn4.len() - 4].to_vec(),
            Reason::Malformed,
        ),
        (
            "truncated TCP header (IPv6)",
            {
                let mut f = syn6[..L3 + 40 + 10].to_vec();
                f[L3 + 4..L3 + 6].copy_from_slice(&10u16.to_be_bytes());
                f
            },
            Reason::Malformed,
        ),
        (
            "truncated TCP header (IPv4)",
            {
                let mut f = syn4[..L3 + 20 + 10].to_vec();
                packets::patch_ipv4(&mut f, |ip| ip[2..4].copy_from_slice(&30u16.to_be_bytes()));
                f
            },
            Reason::Malformed,
        ),
        (
            "IPv4 IHL 4",
            {
                let mut f = syn4.clone();
                packets::patch_ipv4(&mut f, |ip| ip[0] = 0x44);
                f
            },
            Reason::Malformed,
        ),
        (
            "IPv4 version 5",
            {
                let mut f = syn4.clone();
                packets::patch_ipv4(&mut f, |ip| ip[0] = 0x55);
                f
            },
            Reason::Malformed,
        ),
        (
            "IPv4 total length below IHL",
            {
                let mut f = syn4.clone();
                packets::patch_ipv4(&mut f, |ip| ip[2..4].copy_from_slice(&16u16.to_be_bytes()));
                f
            },
            Reason::Malformed,
        ),
        (
            "TCP data offset 4",
            {
                let mut f = syn4.clone();
                f[L3 + 20 + 12] = 0x40;
                f
            },
            Reason::Malformed,
        ),
        (
            "TCP data offset past the segment",
            {
                let mut f = syn_v4().options(vec![]).frame();
                f[L3 + 20 + 12] = 0xf0;
                f
            },
            Reason::Malformed,
        ),
        // IPv4 fragments.
        (
            "later IPv4 fragment",
            fragment_v4(&syn4, false, 100),
            Reason::Fragment,
        ),
        (
            "IPv4 fragment at offset 8 (RFC 1858 overlap)",
            fragment_v4(&syn4, true, 1),
            Reason::FragmentDrop,
        ),
        (
            "first IPv4 fragment carrying a SYN",
            fragment_v4(&syn4, true, 0),
            Reason::FragmentDrop,
        ),
        (
            "first IPv4 fragment with 8 bytes of TCP",
            {
                let mut f = fragment_v4(&syn4, true, 0)[..L3 + 28].to_vec();
                packets::patch_ipv4(&mut f, |ip| ip[2..4].copy_from_slice(&28u16.to_be_bytes()));
                f
            },
            Reason::FragmentDrop,
        ),
        (
            "first IPv4 fragment of an ACK",
            fragment_v4(
                &syn_v4()
                    .flags(Flags::ACK)
                    .options(vec![])
                    .payload(&[1; 64])
                    .frame(),
                true,
                0,
            ),
            Reason::Fragment,
        ),
        // IPv6 extension headers: walked to the TCP header.
        (
            "IPv6 hop-by-hop SYN",
            with_ipv6_extensions(&syn6, std::slice::from_ref(&hbh)),
            Reason::Syn,
        ),
        (
            "IPv6 hop-by-hop + destination options SYN",
            with_ipv6_extensions(&syn6, &[hbh.clone(), dest_opts.clone()]),
            Reason::Syn,
        ),
        (
            "IPv6 routing header (no segments left) SYN",
            with_ipv6_extensions(&syn6, std::slice::from_ref(&routing)),
            Reason::Syn,
        ),
        (
            "IPv6 hop-by-hop, routing, fragment (atomic), destination options SYN",
            with_ipv6_extensions(
                &syn6,
                &[
                    hbh.clone(),
                    routing.clone(),
                    atomic_fragment.clone(),
                    dest_opts.clone(),
                ],
            ),
            Reason::Syn,
        ),
        (
            "IPv6 atomic fragment SYN",
            with_ipv6_extensions(&syn6, &[atomic_fragment]),
            Reason::Syn,
        ),
        (
            "IPv6 later fragment",
            with_ipv6_extensions(&syn6, &[later_fragment]),
            Reason::Fragment,
        ),
        (
            "IPv6 first fragment carrying a SYN",
            with_ipv6_extensions(&syn6, &[first_fragment]),
            Reason::FragmentDrop,
        ),
        (
            "IPv6 chain at the parser's bound",
            with_ipv6_extensions(&syn6, &vec![dest_opts.clone(); 8]),
            Reason::Syn,
        ),
        (
            "IPv6 chain past the parser's bound",
            with_ipv6_extensions(&syn6, &vec![dest_opts.clone(); 9]),
            Reason::HeaderChain,
        ),
        (
            "IPv6 extension header past the payload",
            {
                let mut f = with_ipv6_extensions(&syn6, &[hbh]);
                f[L3 + 4..L3 + 6].copy_from_slice(&4u16.to_be_bytes());
                f
            },
            Reason::Malformed,
        ),
    ];

    let mut problems = Vec::new();
    for (name, frame, reason) in &fixtures {
        problems.extend(harness.check(name, frame, *reason));
    }
    assert!(
        problems.is_empty(),
        "{} of {} fixtures failed:\n{}",
        problems.len(),
        fixtures.len(),
        problems.join("\n")
    );
}

#[test]
fn counters_add_up_over_many_runs() {
    let mut harness = Harness::new();
    let frame = syn_v6().vlans(&[42]).frame();
    let before = harness.counters();
    for _ in 0..1000 {
        assert_eq!(harness.run(&frame).action, 2);
    }
    let delta = harness.counters().since(&before);
    assert_eq!(delta.get(Reason::Syn).packets, 1000);
    assert_eq!(delta.get(Reason::Syn).bytes, 1000 * frame.len() as u64);
    assert_eq!(delta.total_packets(), 1000);
}
