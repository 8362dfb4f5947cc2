//! Packet tests: in a flood, a SYN is answered from XDP only when the
//! kernel itself would answer it (`synguard_common::host`): a frame for the
//! host's MAC, on a VLAN it has a device for, to a destination local to
//! its namespace. Anything else goes to the kernel untouched, counted as
//! `not_local`, which forwards or discards it. The listener in the lab's
//! namespace is a wildcard one, as on a router: the socket lookup alone
//! would find it for any destination.
mod common;

use std::{net::IpAddr, thread::sleep, time::Duration};

use common::{
    CookieLab, LISTEN_PORT as PORT, Outcome, VLAN_MAC, XDP_DROP, XDP_PASS, XDP_TX, flood_config,
    target_host,
};
use ipnet::Ipv4Net;
use synguard::host::Identity;
use synguard_common::Reason;
use synguard_tests::{
    lab::{OUTSIDE_V4, OUTSIDE_V6, TARGET_MAC, TARGET_V4, TARGET_V6},
    packets::{IPV6_FRAGMENT, Segment, push_vlan_tag, with_ipv6_extensions},
};

const OTHER_MAC: [u8; 6] = [0x02, 0x00, 0x5e, 0x00, 0x00, 0x99];

fn syn_to(dst: IpAddr) -> Segment {
    let src = if dst.is_ipv4() {
        IpAddr::V4(OUTSIDE_V4)
    } else {
        IpAddr::V6(OUTSIDE_V6)
    };
    Segment::syn(src, dst, 40000, PORT)
}

fn with_dst_mac(mut frame: Vec<u8>, mac: [u8; 6]) -> Vec<u8> {
    frame[..6].copy_from_slice(&mac);
    frame
}

fn v4(a: [u8; 4]) -> IpAddr {
    IpAddr::V4(a.into())
}

fn v6(s: &str) -> IpAddr {
    IpAddr::V6(s.parse().unwrap())
}

/// Passed untouched, counted once as `not_local`.
fn assert_not_ours(name: &str, frame: &[u8], outcome: &Outcome) {
    assert_eq!(
        (outcome.action, outcome.delta.get(Reason::NotLocal).packets),
        (XDP_PASS, 1),
        "{name}: counters moved {:?}",
        outcome.delta.rows()
    );
    assert_eq!(outcome.delta.total_packets(), 1, "{name}");
    assert_eq!(outcome.output, frame, "{name}: the frame untouched");
}

fn assert_answered(name: &str, outcome: &Outcome) {
    assert_eq!(
        (outcome.action, outcome.delta.get(Reason::SynAck).packets),
        (XDP_TX, 1),
        "{name}: counters moved {:?}",
        outcome.delta.rows()
    );
}

#[test]
fn syns_not_for_this_host_go_to_the_kernel_untouched() {
    let mut lab = CookieLab::new(flood_config());
    let target = syn_to(IpAddr::V4(TARGET_V4)).frame();
    let target6 = syn_to(IpAddr::V6(TARGET_V6)).frame();
    let q = |frame: &[u8], vid: u16| push_vlan_tag(frame, 0x8100, vid);
    let ad = |frame: &[u8], vid: u16| push_vlan_tag(frame, 0x88a8, vid);
    for (name, frame) in [
        (
            "another host's MAC",
            with_dst_mac(target.clone(), OTHER_MAC),
        ),
        (
            "another host's MAC, IPv6",
            with_dst_mac(target6.clone(), OTHER_MAC),
        ),
        (
            "a VLAN device's MAC, untagged",
            with_dst_mac(target.clone(), VLAN_MAC),
        ),
        // A router's forwarded traffic: our MAC, another host's address.
        ("an address not local", syn_to(v4([198, 18, 1, 2])).frame()),
        (
            "an IPv6 address not local",
            syn_to(v6("2001:2:0:1::2")).frame(),
        ),
        // 198.18.0.2/24's broadcast: a broadcast route, not a local one.
        (
            "the subnet's broadcast",
            syn_to(v4([198, 18, 0, 255])).frame(),
        ),
        ("a VLAN without a device", q(&target, 300)),
        ("802.1ad where the device is 802.1Q", ad(&target, 7)),
        ("two tags where the host has one", q(&q(&target, 9), 7)),
        (
            "a VLAN with another host's MAC",
            with_dst_mac(q(&target, 7), OTHER_MAC),
        ),
    ] {
        let outcome = lab.run(&frame);
        assert_not_ours(name, &frame, &outcome);
    }
    // The host's own: answered, untagged, on its VLANs (for its own MAC or
    // the VLAN device's), behind a priority tag.
    for (name, frame) in [
        ("the host's address", target.clone()),
        ("the host's IPv6 address", target6.clone()),
        ("VLAN 7", q(&target, 7)),
        (
            "VLAN 7 to its device's MAC",
            with_dst_mac(q(&target, 7), VLAN_MAC),
        ),
        ("a priority tag", q(&target, 0)),
        (
            "VLAN 100.200",
            syn_to(IpAddr::V4(TARGET_V4)).vlans(&[100, 200]).frame(),
        ),
    ] {
        assert_answered(name, &lab.run(&frame));
    }
}

#[test]
fn the_cheap_way_answers_no_more_than_the_full_way() {
    // Once the full way has found port 80 of 198.18.0.2 local, the next
    // SYNs there take the cheap way: a SYN to another address on that port
    // must still be looked at, and a frame for another MAC never answered.
    let mut lab = CookieLab::new(flood_config());
    let target = syn_to(IpAddr::V4(TARGET_V4)).frame();
    assert_answered("first", &lab.run(&target));
    assert_answered("cached", &lab.run(&target));
    let forwarded = syn_to(v4([198, 18, 1, 2])).frame();
    assert_not_ours("another address", &forwarded, &lab.run(&forwarded));
    let other_mac = with_dst_mac(target.clone(), OTHER_MAC);
    assert_not_ours("another MAC", &other_mac, &lab.run(&other_mac));
    assert_answered("ours again", &lab.run(&target));
}

#[test]
fn an_address_added_or_removed_takes_effect_within_a_second() {
    let mut lab = CookieLab::new(flood_config());
    let added = syn_to(v4([198, 18, 7, 7])).frame();
    assert_not_ours("before", &added, &lab.run(&added));
    let mut host = target_host();
    host.local_v4
        .insert(Ipv4Net::new([198, 18, 7, 7].into(), 32).unwrap());
    lab.harness.set_host(&host);
    assert_answered("added", &lab.run(&added));

    // Removed: the full way sees it at once; the cheap way may serve the
    // port and address it found local for up to a second.
    lab.harness.set_host(&target_host());
    sleep(Duration::from_millis(1100));
    assert_not_ours("removed", &added, &lab.run(&added));

    // A host with no address answers nothing.
    lab.harness.set_host(&Identity {
        mac: TARGET_MAC,
        ..Default::default()
    });
    sleep(Duration::from_millis(1100));
    let target = syn_to(IpAddr::V4(TARGET_V4)).frame();
    assert_not_ours("no address", &target, &lab.run(&target));
}

#[test]
fn a_second_ipv6_fragment_header_is_malformed() {
    // The kernel discards a packet with two Fragment headers; an atomic
    // one (offset 0, M clear) first must not clear what a first fragment
    // behind it says, nor the other way round.
    let mut lab = CookieLab::new(flood_config());
    let syn = syn_to(IpAddr::V6(TARGET_V6)).frame();
    // The body after next-header and reserved: offset and flags, id.
    let atomic = vec![0u8, 0, 0, 0, 0, 1];
    let first = vec![0u8, 1, 0, 0, 0, 2];
    for (name, headers) in [
        (
            "atomic, then atomic",
            vec![
                (IPV6_FRAGMENT, atomic.clone()),
                (IPV6_FRAGMENT, atomic.clone()),
            ],
        ),
        (
            "atomic, then a first fragment",
            vec![
                (IPV6_FRAGMENT, atomic.clone()),
                (IPV6_FRAGMENT, first.clone()),
            ],
        ),
        (
            "a first fragment, then atomic",
            vec![
                (IPV6_FRAGMENT, first.clone()),
                (IPV6_FRAGMENT, atomic.clone()),
            ],
        ),
    ] {
        let frame = with_ipv6_extensions(&syn, &headers);
        let outcome = lab.run(&frame);
        assert_eq!(
            (outcome.action, outcome.delta.get(Reason::Malformed).packets),
            (XDP_DROP, 1),
            "{name}: {:?}",
            outcome.delta.rows()
        );
    }
    // One atomic Fragment header: a whole SYN, answered.
    let frame = with_ipv6_extensions(&syn, &[(IPV6_FRAGMENT, atomic)]);
    assert_answered("one atomic fragment", &lab.run(&frame));
}

#[test]
fn an_ack_for_a_forwarded_connection_is_not_judged_as_a_cookie() {
    // The socket lookup finds the wildcard listener for an ACK to any
    // destination: one of a connection the host forwards must pass, not be
    // dropped as a forged cookie.
    let mut lab = CookieLab::new(flood_config());
    let ack = |dst: IpAddr| {
        syn_to(dst)
            .flags(synguard_tests::packets::Flags::ACK)
            .numbers(0x1234_5678, 0x0bad_cafe)
            .options(vec![])
            .frame()
    };
    let forwarded = ack(v4([198, 18, 1, 2]));
    assert_not_ours("forwarded", &forwarded, &lab.run(&forwarded));
    let forwarded6 = ack(v6("2001:2:0:1::2"));
    assert_not_ours("forwarded, IPv6", &forwarded6, &lab.run(&forwarded6));
    let other_mac = with_dst_mac(ack(IpAddr::V4(TARGET_V4)), OTHER_MAC);
    assert_not_ours("another MAC", &other_mac, &lab.run(&other_mac));
    // Ours, with a forged cookie: dropped.
    let outcome = lab.run(&ack(IpAddr::V4(TARGET_V4)));
    assert_eq!(
        (outcome.action, outcome.delta.get(Reason::BadCookie).packets),
        (XDP_DROP, 1)
    );
}

#[test]
fn addresses_beyond_the_inline_ones_and_anyip_ranges_come_from_the_tries() {
    // `HOST` holds four IPv4 and two IPv6 host addresses inline; more, and
    // ranges (AnyIP: `ip route add local 198.18.64.0/24 dev lo`), are
    // looked up in the tries.
    let mut lab = CookieLab::new(flood_config());
    let mut host = target_host();
    for last in 10..16 {
        host.local_v4
            .insert(Ipv4Net::new([198, 18, 0, last].into(), 32).unwrap());
    }
    host.local_v4
        .insert(Ipv4Net::new([198, 18, 64, 0].into(), 24).unwrap());
    for last in 10..13u16 {
        let addr = std::net::Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, last);
        host.local_v6.insert(ipnet::Ipv6Net::from(addr));
    }
    lab.harness.set_host(&host);
    for (name, dst) in [
        ("the first inline", IpAddr::V4(TARGET_V4)),
        ("the last of six /32s", v4([198, 18, 0, 15])),
        ("inside the AnyIP range", v4([198, 18, 64, 9])),
        ("the last IPv6 address", v6("2001:2::c")),
    ] {
        assert_answered(name, &lab.run(&syn_to(dst).frame()));
    }
    for (name, dst) in [
        ("beside the six /32s", v4([198, 18, 0, 16])),
        ("beside the AnyIP range", v4([198, 18, 65, 9])),
        ("beside the IPv6 addresses", v6("2001:2::d")),
    ] {
        let frame = syn_to(dst).frame();
        assert_not_ours(name, &frame, &lab.run(&frame));
    }
}
