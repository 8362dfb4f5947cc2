//! Packet tests of the flood defence: SYN-ACKs built in XDP (checked byte by
//! byte), cookie ACKs checked by the kernel's helper, the lists, the SYN
//! sanity checks and the per-source budgets. Each test runs its frames from
//! a namespace of its own with a real listener, so the kernel's socket
//! lookup and cookie helpers see it.
mod common;

use std::net::IpAddr;

use common::{CookieLab, LISTEN_PORT as PORT, Outcome, XDP_DROP, XDP_PASS, XDP_TX, flood_config};
use etherparse::{NetSlice, SlicedPacket, TcpOptionElement, TransportSlice};
use synguard_common::{
    ALIGNED_ARRAY, Budget, FloodMode, FloodState, IfaceSettings, Reason, SourceKey, maps,
};
use synguard_tests::{
    lab::{OUTSIDE_MAC, OUTSIDE_V4, OUTSIDE_V6, TARGET_MAC, TARGET_V4, TARGET_V6},
    packets::{
        Flags, IPV6_DEST_OPTS, IPV6_FRAGMENT, IPV6_HOP_BY_HOP, IPV6_ROUTING, L3, Segment,
        pad_options, push_vlan_tag, with_ipv4_options, with_ipv6_extensions, with_raw_tcp_options,
    },
};

const CLIENT_SEQ: u32 = 0x1234_5678;
const CLIENT_TSVAL: u32 = 0x0102_0304;

fn syn_v4() -> Segment {
    Segment::syn(IpAddr::V4(OUTSIDE_V4), IpAddr::V4(TARGET_V4), 40000, PORT)
}

fn syn_v6() -> Segment {
    Segment::syn(IpAddr::V6(OUTSIDE_V6), IpAddr::V6(TARGET_V6), 40000, PORT)
}

fn assert_reason(outcome: &Outcome, action: u32, reason: Reason) {
    assert_eq!(
        outcome.action,
        action,
        "action; counters moved: {:?}",
        outcome.delta.rows()
    );
    assert_eq!(
        outcome.delta.get(reason).packets,
        1,
        "counted under {}: {:?}",
        reason.name(),
        outcome.delta.rows()
    );
    assert_eq!(
        outcome.delta.total_packets(),
        1,
        "exactly one count: {:?}",
        outcome.delta.rows()
    );
}

/// What a SYN-ACK says, read back with etherparse.
#[derive(Debug)]
struct SynAck {
    seq: u32,
    ack: u32,
    options: Vec<TcpOptionElement>,
    vlans: usize,
}

/// Checks everything about an answer that does not depend on the cookie:
/// MACs, addresses and ports swapped, SYN|ACK, checksums valid.
fn parse_syn_ack(frame: &[u8], v6: bool) -> SynAck {
    let sliced = SlicedPacket::from_ethernet(frame).expect("answer parses");
    let eth = match &sliced.link {
        Some(etherparse::LinkSlice::Ethernet2(eth)) => eth,
        other => panic!("not Ethernet II: {other:?}"),
    };
    assert_eq!(eth.source(), TARGET_MAC, "source MAC is ours");
    assert_eq!(
        eth.destination(),
        OUTSIDE_MAC,
        "destination MAC is the client's"
    );
    let vlans = sliced.vlan_ids().len();
    let Some(TransportSlice::Tcp(tcp)) = &sliced.transport else {
        panic!("answer is not TCP")
    };
    match (&sliced.net, v6) {
        (Some(NetSlice::Ipv4(ip)), false) => {
            let h = ip.header().to_header();
            assert_eq!(h.source, TARGET_V4.octets());
            assert_eq!(h.destination, OUTSIDE_V4.octets());
            assert_eq!(h.time_to_live, 64);
            assert_eq!(
                h.header_checksum,
                h.calc_header_checksum(),
                "IPv4 header checksum"
            );
            assert_eq!(
                tcp.checksum(),
                tcp.to_header()
                    .calc_checksum_ipv4(&h, tcp.payload())
                    .unwrap(),
                "TCP checksum"
            );
        }
        (Some(NetSlice::Ipv6(ip)), true) => {
            let h = ip.header().to_header();
            assert_eq!(h.source, TARGET_V6.octets());
            assert_eq!(h.destination, OUTSIDE_V6.octets());
            assert_eq!(h.hop_limit, 64);
            assert_eq!(
                tcp.checksum(),
                tcp.to_header()
                    .calc_checksum_ipv6(&h, tcp.payload())
                    .unwrap(),
                "TCP checksum"
            );
        }
        (net, _) => panic!("unexpected network layer {net:?}"),
    }
    assert_eq!(
        (tcp.source_port(), tcp.destination_port()),
        (PORT, 40000),
        "ports swapped"
    );
    assert!(
        tcp.syn() && tcp.ack() && !tcp.rst() && !tcp.fin(),
        "SYN|ACK"
    );
    assert!(tcp.payload().is_empty(), "no payload");
    assert_eq!(
        tcp.acknowledgment_number(),
        CLIENT_SEQ.wrapping_add(1),
        "ack = seq + 1"
    );
    SynAck {
        seq: tcp.sequence_number(),
        ack: tcp.acknowledgment_number(),
        options: tcp
            .options_iterator()
            .map(|o| o.expect("well-formed option"))
            .collect(),
        vlans,
    }
}

fn timestamp(options: &[TcpOptionElement]) -> Option<(u32, u32)> {
    options.iter().find_map(|o| match o {
        TcpOptionElement::Timestamp(val, ecr) => Some((*val, *ecr)),
        _ => None,
    })
}

#[test]
fn a_syn_in_a_flood_is_answered_with_a_kernel_cookie_carrying_its_options() {
    let mut lab = CookieLab::new(flood_config());
    let outcome = lab.run(&syn_v4().frame());
    assert_reason(&outcome, XDP_TX, Reason::SynAck);
    let answer = parse_syn_ack(&outcome.output, false);
    // The kernel's own layout: MSS, SACK_PERM + TS, NOP + WS.
    let (tsval, tsecr) = timestamp(&answer.options).expect("timestamp option");
    assert_eq!(
        answer.options,
        vec![
            TcpOptionElement::MaximumSegmentSize(1460),
            TcpOptionElement::SelectiveAcknowledgementPermitted,
            TcpOptionElement::Timestamp(tsval, CLIENT_TSVAL),
            TcpOptionElement::Noop,
            TcpOptionElement::WindowScale(10),
        ]
    );
    assert_eq!(tsecr, CLIENT_TSVAL, "echoes the client's timestamp");
    // syncookies.c cookie_init_timestamp: the low 6 bits carry the client's
    // window scale (7) and SACK (bit 4).
    assert_eq!(tsval & 0x3f, 7 | 0x10, "options encoded in the timestamp");
    assert_eq!(
        outcome.output.len(),
        14 + 20 + 40,
        "Ethernet + IPv4 + 40 bytes of TCP"
    );
}

/// The kernel's TCP clock in ms (CLOCK_MONOTONIC: `tcp_clock_ms`), as a
/// timestamp option carries it.
fn tcp_clock_ms() -> u32 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64 * 1000 + ts.tv_nsec as u64 / 1_000_000) as u32
}

#[test]
fn the_answers_timestamp_is_never_ahead_of_the_kernels_tcp_clock() {
    // A TSval ahead of the kernel's would make the client drop the
    // server's later segments as old (PAWS), so the data path's clock must
    // stay behind CLOCK_MONOTONIC; and close behind: at most the 64 ms the
    // low bits take (`cookie_init_timestamp`) plus 100 (three ticks of
    // HZ=100, and ticks that a loaded machine runs late).
    // The low bits hide where in its 64 ms the clock is, except when it
    // crosses into the next 64: SYNs back to back for 200 ms see three
    // such crossings, where a clock two ticks ahead shows. Twice, half a
    // second apart, so a clock that runs at the wrong rate shows too.
    let mut lab = CookieLab::new(flood_config());
    for round in 0..2 {
        if round > 0 {
            std::thread::sleep(std::time::Duration::from_millis(500));
        }
        let started = tcp_clock_ms();
        while tcp_clock_ms().wrapping_sub(started) < 200 {
            let before = tcp_clock_ms();
            let outcome = lab.run(&syn_v4().frame());
            let after = tcp_clock_ms();
            assert_reason(&outcome, XDP_TX, Reason::SynAck);
            let (tsval, _) = timestamp(&parse_syn_ack(&outcome.output, false).options).unwrap();
            let ahead = tsval.wrapping_sub(after) as i32;
            let behind = before.wrapping_sub(tsval) as i32;
            assert!(
                ahead <= 0,
                "round {round}: TSval {tsval} is {ahead} ms ahead of {after}"
            );
            assert!(
                behind <= 64 + 100,
                "round {round}: TSval {tsval} {behind} ms behind {before}"
            );
        }
    }
}

#[test]
fn flood_mode_stays_on_when_a_new_load_finds_the_flood_state_ahead_of_its_clock() {
    // Each load measures its clock's offset, within a tick or two, so the
    // flood state an older load left in the pinned maps can be a few ms in
    // a newer one's future (`synguard attach` again, an upgrade). Flood
    // mode must not end on that, nor the window close early.
    let mut lab = CookieLab::new(IfaceSettings {
        flood_mode: FloodMode::Auto as u32,
        syn_rate_on: 1_000_000,
        syn_rate_off: 500_000,
        flood_hold_ms: 10_000,
        ..flood_config()
    });
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
    let coarse = ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64;
    let ahead = coarse + 10_000_000;
    let left = FloodState {
        window_start_ns: ahead,
        last_over_ns: ahead,
        engaged_ns: coarse - 1_000_000_000,
        last_rate: 2_000_000,
        active: 1,
        ..FloodState::default()
    };
    lab.harness.set_flood_state(left);
    assert_reason(&lab.run(&syn_v4().frame()), XDP_TX, Reason::SynAck);
    let state = lab.harness.flood_state();
    assert_eq!(state.active, 1, "{state:?}");
    assert_eq!(
        state.window_start_ns, ahead,
        "the window closed early: {state:?}"
    );
}

#[test]
fn the_ack_that_completes_a_cookie_handshake_passes_and_a_forged_one_is_dropped() {
    let mut lab = CookieLab::new(flood_config());
    let answer = parse_syn_ack(&lab.run(&syn_v4().frame()).output, false);
    let (tsval, _) = timestamp(&answer.options).unwrap();
    let ack = |cookie_ack: u32| {
        syn_v4()
            .flags(Flags::ACK)
            .numbers(CLIENT_SEQ.wrapping_add(1), cookie_ack)
            .options(vec![
                TcpOptionElement::Noop,
                TcpOptionElement::Noop,
                TcpOptionElement::Timestamp(CLIENT_TSVAL + 1, tsval),
            ])
            .frame()
    };
    assert_eq!(answer.ack, CLIENT_SEQ + 1);
    assert_reason(
        &lab.run(&ack(answer.seq.wrapping_add(1))),
        XDP_PASS,
        Reason::ValidCookie,
    );
    assert_reason(
        &lab.run(&ack(answer.seq.wrapping_add(12345))),
        XDP_DROP,
        Reason::BadCookie,
    );
    assert_reason(&lab.run(&ack(0xdead_beef)), XDP_DROP, Reason::BadCookie);
}

#[test]
fn ipv6_and_vlan_tagged_syns_are_answered_too() {
    let mut lab = CookieLab::new(flood_config());
    let outcome = lab.run(&syn_v6().frame());
    assert_reason(&outcome, XDP_TX, Reason::SynAck);
    let answer = parse_syn_ack(&outcome.output, true);
    assert_eq!(
        answer.options[0],
        TcpOptionElement::MaximumSegmentSize(1440)
    );

    for tags in [&[100][..], &[0], &[100, 200]] {
        let outcome = lab.run(&syn_v4().vlans(tags).frame());
        assert_reason(&outcome, XDP_TX, Reason::SynAck);
        let answer = parse_syn_ack(&outcome.output, false);
        assert_eq!(answer.vlans, tags.len(), "VLAN tags kept for {tags:?}");
    }
    let outcome = lab.run(&syn_v6().vlans(&[7]).frame());
    assert_reason(&outcome, XDP_TX, Reason::SynAck);
    assert_eq!(parse_syn_ack(&outcome.output, true).vlans, 1);
}

#[test]
fn a_syn_is_answered_alike_in_place_and_from_a_copy() {
    // An untagged SYN with Linux's options and no payload is answered where
    // it lies; a VLAN tag sends the same SYN through the copy to scratch.
    let mut lab = CookieLab::new(flood_config());
    for v6 in [false, true] {
        let syn = if v6 { syn_v6() } else { syn_v4() };
        let in_place = lab.run(&syn.clone().frame());
        let copied = lab.run(&syn.vlans(&[100]).frame());
        assert_reason(&in_place, XDP_TX, Reason::SynAck);
        assert_reason(&copied, XDP_TX, Reason::SynAck);
        let (a, b) = (
            parse_syn_ack(&in_place.output, v6),
            parse_syn_ack(&copied.output, v6),
        );
        assert_eq!(b.vlans, 1);
        // Byte for byte past L2, but for the TCP checksum and the
        // timestamp's clock (coarse milliseconds, which may have ticked
        // between the two runs); its low 6 bits, the options, compared.
        let (a_l3, b_l3) = (&in_place.output[14..], &copied.output[18..]);
        assert_eq!(a_l3.len(), b_l3.len(), "as long (v6: {v6})");
        let tcp = if v6 { 40 } else { 20 };
        let (ts_a, ts_b) = (
            timestamp(&a.options).unwrap(),
            timestamp(&b.options).unwrap(),
        );
        assert_eq!(ts_a.0 & 0x3f, ts_b.0 & 0x3f, "options in the timestamp");
        assert_eq!(ts_a.1, ts_b.1, "the client's timestamp echoed");
        for (i, (x, y)) in a_l3.iter().zip(b_l3).enumerate() {
            let clock = (tcp + 16..tcp + 18).contains(&i) || (tcp + 28..tcp + 32).contains(&i);
            assert!(
                clock || x == y,
                "byte {i} of the answer (v6: {v6}): {x:#x} vs {y:#x}"
            );
        }
        assert_eq!(a.seq, b.seq, "the same cookie");
    }
}

#[test]
fn without_the_cookie_program_a_syn_goes_to_the_kernel() {
    // The data path hands SYNs to the cookie path's program with a tail
    // call; should that program be missing, the kernel gets the SYN.
    let mut lab = CookieLab::new(flood_config());
    lab.harness.clear_tail();
    let outcome = lab.run(&syn_v4().frame());
    assert_reason(&outcome, XDP_PASS, Reason::CookieFallback);
    assert_eq!(outcome.output, syn_v4().frame(), "the SYN untouched");
}

#[test]
fn without_timestamp_cookies_or_client_options_only_the_mss_is_offered() {
    // tcp_timestamps=1 would corrupt options decoded from an XDP timestamp,
    // so with ts_cookies off the answer carries the MSS only.
    let mut lab = CookieLab::new(IfaceSettings {
        ts_cookies: 0,
        ..flood_config()
    });
    let outcome = lab.run(&syn_v4().frame());
    assert_reason(&outcome, XDP_TX, Reason::SynAck);
    let answer = parse_syn_ack(&outcome.output, false);
    assert_eq!(
        answer.options,
        vec![TcpOptionElement::MaximumSegmentSize(1460)]
    );
    assert_eq!(
        outcome.output.len(),
        14 + 20 + 24,
        "the frame shrank to the answer"
    );

    // A SYN without options grows by the 4-byte MSS option.
    let mut lab = CookieLab::new(flood_config());
    let bare = syn_v4().options(vec![]).frame();
    let outcome = lab.run(&bare);
    assert_reason(&outcome, XDP_TX, Reason::SynAck);
    let answer = parse_syn_ack(&outcome.output, false);
    assert_eq!(
        answer.options,
        vec![TcpOptionElement::MaximumSegmentSize(1460)]
    );
    assert_eq!(outcome.output.len(), bare.len() + 4);
}

#[test]
fn syn_options_are_read_as_the_kernel_reads_them_up_to_a_bad_one() {
    // net/ipv4/tcp_input.c tcp_parse_options stops at an option of length
    // 0 or 1 ("silly options") and at one running past the header; what
    // came before counts. The kernel answers such SYNs, and so does XDP,
    // with the options it read.
    let mut lab = CookieLab::new(flood_config());
    let bare = syn_v4().options(vec![]).frame();
    let ts = CLIENT_TSVAL.to_be_bytes();
    let answer = |lab: &mut CookieLab, options: &[u8]| {
        let outcome = lab.run(&with_raw_tcp_options(&bare, options));
        assert_reason(&outcome, XDP_TX, Reason::SynAck);
        parse_syn_ack(&outcome.output, false).options
    };

    // MSS, then a length of 0: nothing after it is read, so no timestamp
    // to carry options in.
    let options = answer(&mut lab, &[2, 4, 5, 0xb4, 8, 0, 0, 0, 1, 1, 1, 1]);
    assert_eq!(options, vec![TcpOptionElement::MaximumSegmentSize(1460)]);

    // Timestamps, then SACK-permitted with a length of 1: timestamps read,
    // SACK not, and no window scale offered.
    let mut raw = vec![1, 1, 8, 10];
    raw.extend_from_slice(&ts);
    raw.extend_from_slice(&[0, 0, 0, 0, 4, 1]);
    let options = answer(&mut lab, &raw);
    let (tsval, _) = timestamp(&options).expect("timestamp option");
    assert_eq!(
        options,
        vec![
            TcpOptionElement::MaximumSegmentSize(1460),
            TcpOptionElement::Noop,
            TcpOptionElement::Noop,
            TcpOptionElement::Timestamp(tsval, CLIENT_TSVAL),
        ]
    );
    assert_eq!(tsval & 0x3f, 0xf, "no window scale (0xf), no SACK");

    // SACK-permitted and timestamps, then a window scale whose length (10)
    // runs past the header: SACK and timestamps read, the scale not.
    let mut raw = vec![2, 4, 5, 0xb4, 4, 2, 8, 10];
    raw.extend_from_slice(&ts);
    raw.extend_from_slice(&[0, 0, 0, 0, 3, 10, 7, 0]);
    let options = answer(&mut lab, &raw);
    let (tsval, _) = timestamp(&options).expect("timestamp option");
    assert_eq!(
        options,
        vec![
            TcpOptionElement::MaximumSegmentSize(1460),
            TcpOptionElement::SelectiveAcknowledgementPermitted,
            TcpOptionElement::Timestamp(tsval, CLIENT_TSVAL),
        ]
    );
    assert_eq!(tsval & 0x3f, 0xf | 0x10, "no window scale, SACK");

    // Linux's own layout (MSS, SACK-permitted, timestamps, NOP, window
    // scale), which the program reads without its option loop: a scale
    // above 14 counts as 14, as in the kernel.
    let linux = |scale_len: u8, scale: u8| {
        let mut raw = vec![2, 4, 5, 0xb4, 4, 2, 8, 10];
        raw.extend_from_slice(&ts);
        raw.extend_from_slice(&[0, 0, 0, 0, 1, 3, scale_len, scale]);
        raw
    };
    let options = answer(&mut lab, &linux(3, 15));
    let (tsval, _) = timestamp(&options).expect("timestamp option");
    assert_eq!(tsval & 0x3f, 14 | 0x10, "window scale 14, SACK");
    assert!(
        options.contains(&TcpOptionElement::WindowScale(10)),
        "{options:?}"
    );
    // The same bytes with a window scale whose length runs past the header
    // (or is silly) are read option by option: SACK and timestamps count,
    // the scale not.
    for scale_len in [4, 1] {
        let options = answer(&mut lab, &linux(scale_len, 7));
        let (tsval, _) = timestamp(&options).expect("timestamp option");
        assert_eq!(
            tsval & 0x3f,
            0xf | 0x10,
            "length {scale_len}: no window scale, SACK"
        );
    }
}

#[test]
fn the_answer_leaves_out_payload_ip_options_and_extension_headers() {
    let mut lab = CookieLab::new(flood_config());
    // A SYN's data is not acknowledged (tcp_rcv_state_process) and not
    // echoed; IP options and IPv6 extension headers are not carried over.
    let with_payload = syn_v4().payload(&[0xab; 100]).frame();
    let with_ip_options = with_ipv4_options(&syn_v4().frame(), &[1, 1, 1, 0]);
    for (name, frame) in [("payload", with_payload), ("IPv4 options", with_ip_options)] {
        let outcome = lab.run(&frame);
        assert_reason(&outcome, XDP_TX, Reason::SynAck);
        parse_syn_ack(&outcome.output, false);
        assert_eq!(outcome.output.len(), L3 + 20 + 40, "{name}");
    }
    let syn6 = syn_v6().frame();
    let atomic_fragment = (IPV6_FRAGMENT, vec![0, 0, 0, 0, 0, 1]);
    let routing = (IPV6_ROUTING, vec![0, 0, 0, 0, 0, 0]);
    for chain in [
        vec![atomic_fragment.clone()],
        vec![
            (IPV6_HOP_BY_HOP, pad_options(6)),
            routing,
            atomic_fragment,
            (IPV6_DEST_OPTS, pad_options(14)),
        ],
    ] {
        let outcome = lab.run(&with_ipv6_extensions(&syn6, &chain));
        assert_reason(&outcome, XDP_TX, Reason::SynAck);
        parse_syn_ack(&outcome.output, true);
        assert_eq!(
            outcome.output.len(),
            L3 + 40 + 40,
            "{} extension headers",
            chain.len()
        );
    }
}

/// ip_rcv_core drops an IPv4 header whose checksum is wrong, so in a flood
/// its SYN is dropped as malformed, not answered: in the frame form, from
/// the copy (a VLAN tag), and with options, which the sum covers.
#[test]
fn a_syn_whose_ipv4_header_checksum_is_wrong_is_dropped_not_answered() {
    let mut lab = CookieLab::new(flood_config());
    let plain = syn_v4().frame();
    let tagged = push_vlan_tag(&plain, 0x8100, 7);
    let with_options = with_ipv4_options(&plain, &[1, 1, 1, 0]);
    for (name, frame, l3) in [
        ("plain", plain, L3),
        ("VLAN-tagged", tagged, L3 + 4),
        ("with options", with_options, L3),
    ] {
        let outcome = lab.run(&frame);
        assert_reason(&outcome, XDP_TX, Reason::SynAck);
        let mut bad_checksum = frame.clone();
        bad_checksum[l3 + 11] ^= 0x40;
        let mut bad_header = frame.clone();
        // The last byte of the header: an option's, or the destination's.
        let ihl = usize::from(frame[l3] & 0x0f) * 4;
        bad_header[l3 + ihl - 1] ^= 0x01;
        for (what, corrupt) in [("checksum", bad_checksum), ("header", bad_header)] {
            let outcome = lab.run(&corrupt);
            assert_reason(&outcome, XDP_DROP, Reason::Malformed);
            assert_eq!(outcome.output, corrupt, "{name}, {what}: left untouched");
        }
    }
}

#[test]
fn a_bare_ack_without_a_cookie_is_dropped_at_a_listener_and_passed_elsewhere() {
    let mut lab = CookieLab::new(flood_config());
    let bare_ack = |dport: u16| {
        Segment::syn(IpAddr::V4(OUTSIDE_V4), IpAddr::V4(TARGET_V4), 40000, dport)
            .flags(Flags::ACK)
            .numbers(CLIENT_SEQ, 0)
            .options(vec![])
            .frame()
    };
    assert_reason(&lab.run(&bare_ack(PORT)), XDP_DROP, Reason::BadCookie);
    // No listener: no cookie to check; the kernel answers with a RST.
    assert_reason(&lab.run(&bare_ack(81)), XDP_PASS, Reason::Tcp);
    // Not a handshake ACK: RST|ACK and SYN|ACK are not checked.
    let rst_ack = Segment::syn(IpAddr::V4(OUTSIDE_V4), IpAddr::V4(TARGET_V4), 40000, PORT)
        .flags(Flags {
            rst: true,
            ..Flags::ACK
        })
        .options(vec![])
        .frame();
    assert_reason(&lab.run(&rst_ack), XDP_PASS, Reason::Tcp);
}

#[test]
fn syns_to_group_addresses_are_left_to_the_kernel_never_answered() {
    // RFC 1122 4.2.3.10: a SYN to a broadcast or multicast address is
    // silently discarded, which the kernel does. An answer from XDP would
    // come from that group address, from every host on the link.
    let mut lab = CookieLab::new(flood_config());
    let v4 = |a: [u8; 4]| IpAddr::V4(a.into());
    let to = |dst: IpAddr, mac: [u8; 6]| {
        let source = if dst.is_ipv4() {
            IpAddr::V4(OUTSIDE_V4)
        } else {
            IpAddr::V6(OUTSIDE_V6)
        };
        let mut frame = Segment::syn(source, dst, 40000, PORT).frame();
        frame[..6].copy_from_slice(&mac);
        frame
    };
    let all_nodes = IpAddr::V6(std::net::Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1));
    for (name, frame) in [
        (
            "IPv4 multicast",
            to(v4([224, 0, 0, 1]), [1, 0, 0x5e, 0, 0, 1]),
        ),
        ("IPv4 broadcast", to(v4([255; 4]), [0xff; 6])),
        ("IPv4 class E", to(v4([240, 0, 0, 1]), TARGET_MAC)),
        ("IPv6 multicast", to(all_nodes, [0x33, 0x33, 0, 0, 0, 1])),
        ("broadcast MAC", to(IpAddr::V4(TARGET_V4), [0xff; 6])),
        (
            "multicast MAC",
            to(IpAddr::V6(TARGET_V6), [0x33, 0x33, 0, 0, 0, 2]),
        ),
    ] {
        let outcome = lab.run(&frame);
        assert_eq!(
            outcome.action,
            XDP_PASS,
            "{name}: {:?}",
            outcome.delta.rows()
        );
        assert_eq!(outcome.delta.get(Reason::NotLocal).packets, 1, "{name}");
        assert_eq!(outcome.output, frame, "{name}: untouched");
    }
    // The same SYN to our own unicast addresses is answered.
    assert_reason(
        &lab.run(&to(IpAddr::V4(TARGET_V4), TARGET_MAC)),
        XDP_TX,
        Reason::SynAck,
    );
}

#[test]
fn syn_policy_in_a_flood_drops_no_listener_and_bad_flags_and_passes_when_off() {
    let mut lab = CookieLab::new(flood_config());
    let no_listener =
        Segment::syn(IpAddr::V4(OUTSIDE_V4), IpAddr::V4(TARGET_V4), 40000, 81).frame();
    assert_reason(&lab.run(&no_listener), XDP_DROP, Reason::NoListener);
    assert_reason(
        &lab.run(&syn_v4().flags(Flags::SYN_FIN).frame()),
        XDP_DROP,
        Reason::BadFlags,
    );
    assert_reason(
        &lab.run(&syn_v4().flags(Flags::SYN_RST).frame()),
        XDP_DROP,
        Reason::BadFlags,
    );
    // Data and ACKs of flows pass; a SYN-ACK (our own outgoing connection's
    // answer) is not a SYN.
    assert_reason(
        &lab.run(&syn_v4().flags(Flags::SYN_ACK).frame()),
        XDP_PASS,
        Reason::Tcp,
    );

    lab.harness.set_config(IfaceSettings {
        flood_mode: FloodMode::Off as u32,
        ..flood_config()
    });
    assert_reason(&lab.run(&syn_v4().frame()), XDP_PASS, Reason::Syn);
    assert_reason(&lab.run(&no_listener), XDP_PASS, Reason::Syn);
}

#[test]
fn blocklist_drops_every_protocol_and_allowlist_skips_every_check() {
    let mut lab = CookieLab::new(flood_config());
    lab.harness.list_add("BLOCK", "198.18.0.0/24");
    lab.harness.list_add("BLOCK", "2001:2::/64");
    let udp =
        synguard_tests::packets::udp(IpAddr::V4(OUTSIDE_V4), IpAddr::V4(TARGET_V4), 1, 2, b"x");
    assert_reason(&lab.run(&udp), XDP_DROP, Reason::Blocklist);
    assert_reason(&lab.run(&syn_v4().frame()), XDP_DROP, Reason::Blocklist);
    assert_reason(&lab.run(&syn_v6().frame()), XDP_DROP, Reason::Blocklist);
    // A more specific allow entry wins: allowlisted sources skip the
    // blocklist and the flood defence alike.
    lab.harness.list_add("ALLOW", "198.18.0.1/32");
    assert_reason(&lab.run(&syn_v4().frame()), XDP_PASS, Reason::Allowlist);
    assert_reason(&lab.run(&udp), XDP_PASS, Reason::Allowlist);
}

#[test]
fn a_network_over_budget_drops_without_spending_its_hosts_budgets() {
    let mut lab = CookieLab::new(IfaceSettings {
        budget_v4_host: Budget { rate: 1, burst: 2 },
        budget_v4_net: Budget { rate: 1, burst: 3 },
        ..flood_config()
    });
    let host = |last: u8| IpAddr::V4(std::net::Ipv4Addr::new(198, 18, 0, last));
    let syn = |last: u8, seq: u32| {
        Segment::syn(host(last), IpAddr::V4(TARGET_V4), 1, PORT)
            .numbers(seq, 0)
            .frame()
    };
    let key = |prefix_len: u32, last: u8| {
        let mut addr = [0; 16];
        addr[..4].copy_from_slice(&[198, 18, 0, last]);
        SourceKey { prefix_len, addr }
    };
    // .1 spends its own burst of 2. Its third SYN is over its own budget
    // (the /24 has a token left): dropped and recorded as the host, and
    // the /24 keeps its token, which .9 then spends.
    assert_reason(&lab.run(&syn(1, 1)), XDP_TX, Reason::SynAck);
    assert_reason(&lab.run(&syn(1, 2)), XDP_TX, Reason::SynAck);
    assert_reason(&lab.run(&syn(1, 3)), XDP_DROP, Reason::Rate);
    assert_eq!(lab.harness.over_budget(key(32, 1)), Some(1));
    assert_reason(&lab.run(&syn(9, 4)), XDP_TX, Reason::SynAck);
    // The /24 is out: .9 (a token left) and a new host .10 are dropped
    // and the /24 recorded (the first drop at once, later ones counted in
    // its slot and added within the second); .9 keeps its token, .10 gets
    // no bucket.
    assert_reason(&lab.run(&syn(9, 5)), XDP_DROP, Reason::Rate);
    assert_reason(&lab.run(&syn(10, 6)), XDP_DROP, Reason::Rate);
    // Drops recorded, and drops still counted in the prefix's slot.
    let accounted = |lab: &CookieLab, key: SourceKey| {
        let recorded = lab.harness.over_budget(key).unwrap_or(0);
        let pending = lab.harness.budget(key).map_or(0, |b| u64::from(b.dropped));
        (recorded, pending)
    };
    let (recorded, pending) = accounted(&lab, key(24, 0));
    assert!(recorded >= 1, "the first drop is recorded at once");
    assert_eq!(recorded + pending, 2);
    let left = lab.harness.budget(key(32, 9)).expect(".9 has a bucket");
    assert!(left.milli_tokens >= 1000, "{left:?}");
    assert_eq!(lab.harness.budget(key(32, 10)), None);
    assert_eq!(
        accounted(&lab, key(32, 1)),
        (1, 0),
        "drops of the /24 are not the host's"
    );
    // A second on (the /24 has refilled one token), the next drop adds
    // what its slot counted meanwhile.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    assert_reason(&lab.run(&syn(11, 7)), XDP_TX, Reason::SynAck);
    assert_reason(&lab.run(&syn(12, 8)), XDP_DROP, Reason::Rate);
    assert_eq!(accounted(&lab, key(24, 0)), (3, 0));
}

#[test]
fn a_list_trie_is_skipped_only_while_its_flag_says_it_is_empty() {
    // The flag is what lets every packet skip an empty trie; this is why
    // userspace sets it before inserting and never clears it early. IPv4
    // sources go to the tries only while no index is live (a list change
    // under way), or where the index says so.
    let mut lab = CookieLab::new(flood_config());
    lab.harness.list_add("BLOCK", "198.18.0.0/24");
    let udp =
        synguard_tests::packets::udp(IpAddr::V4(OUTSIDE_V4), IpAddr::V4(TARGET_V4), 1, 2, b"x");
    assert_reason(&lab.run(&udp), XDP_DROP, Reason::Blocklist);
    let live = lab
        .harness
        .list_slot(synguard_common::list_in_use::INDEX_V4);
    assert_ne!(live, 0, "a list change leaves an index live");
    lab.harness.set_list_slot("INDEX_V4", 0);
    assert_reason(&lab.run(&udp), XDP_DROP, Reason::Blocklist);
    lab.harness.set_list_slot("BLOCK_V4", 0);
    assert_reason(&lab.run(&udp), XDP_PASS, Reason::NonTcp);
    lab.harness.set_list_slot("BLOCK_V4", 1);
    assert_reason(&lab.run(&udp), XDP_DROP, Reason::Blocklist);
    // The IPv6 trie's flag does not cover IPv4 sources.
    lab.harness.set_list_slot("BLOCK_V6", 0);
    assert_reason(&lab.run(&udp), XDP_DROP, Reason::Blocklist);
    // With the index live again, the trie's flag no longer matters for
    // IPv4: the index has the entry.
    lab.harness.set_list_slot("BLOCK_V4", 0);
    lab.harness.set_list_slot("INDEX_V4", live);
    assert_reason(&lab.run(&udp), XDP_DROP, Reason::Blocklist);
}

#[test]
fn martian_sources_are_dropped_only_for_syns_and_never_on_loopback() {
    // Test frames run on the namespace's loopback, where 127/8 is the host
    // itself: the martian check must not fire there.
    let mut lab = CookieLab::new(IfaceSettings {
        flood_mode: FloodMode::Off as u32,
        ..flood_config()
    });
    lab.harness.list_add("MARTIAN", "198.18.0.0/24");
    assert_reason(&lab.run(&syn_v4().frame()), XDP_PASS, Reason::Syn);
}

/// The data path's arrays laid out to fit cache lines start on a page: a
/// SYN in a spoofed flood then reads one line of each table's random set,
/// and one of a port's listener slot or the flood state, not two.
#[test]
fn the_data_paths_line_sized_arrays_start_on_a_page() {
    let lab = CookieLab::new(flood_config());
    for name in [
        maps::BUDGETS,
        maps::SOURCES,
        maps::LISTENERS,
        maps::FLOOD,
        maps::CONFIG,
        maps::LIST_IN_USE,
    ] {
        let flags = lab.harness.map_flags(name);
        assert_ne!(
            flags & ALIGNED_ARRAY,
            0,
            "{name} was created without BPF_F_MMAPABLE (flags {flags:#x})"
        );
    }
}

#[test]
fn a_source_over_its_syn_budget_is_dropped_and_recorded() {
    let mut lab = CookieLab::new(IfaceSettings {
        budget_v4_host: Budget { rate: 1, burst: 2 },
        ..flood_config()
    });
    for attempt in 0..2 {
        let outcome = lab.run(&syn_v4().numbers(attempt, 0).frame());
        assert_reason(&outcome, XDP_TX, Reason::SynAck);
    }
    assert_reason(
        &lab.run(&syn_v4().numbers(9, 0).frame()),
        XDP_DROP,
        Reason::Rate,
    );
    // Another source has its own budget.
    let other = Segment::syn(
        IpAddr::V4(std::net::Ipv4Addr::new(198, 18, 0, 9)),
        IpAddr::V4(TARGET_V4),
        1,
        PORT,
    );
    assert_reason(&lab.run(&other.frame()), XDP_TX, Reason::SynAck);
}

#[test]
fn new_hosts_of_an_ipv6_network_over_its_budget_are_dropped() {
    let spent = Budget { rate: 1, burst: 1 };
    let mut lab = CookieLab::new(IfaceSettings {
        budget_v6_host: spent,
        budget_v6_net: spent,
        ..flood_config()
    });
    let host = |last: u16| {
        Segment::syn(
            IpAddr::V6(std::net::Ipv6Addr::new(0x2001, 2, 0, 0xff00, 0, 0, 7, last)),
            IpAddr::V6(TARGET_V6),
            1,
            PORT,
        )
        .frame()
    };
    // The first SYN spends the host's and the /64's only token.
    assert_reason(&lab.run(&host(1)), XDP_TX, Reason::SynAck);
    assert_reason(&lab.run(&host(1)), XDP_DROP, Reason::Rate);
    // (Within well under a second: the /64 refills 1 SYN a second.)
    for last in 2..50 {
        assert_reason(&lab.run(&host(last)), XDP_DROP, Reason::Rate);
    }
}

#[test]
fn a_ports_listener_is_looked_up_once_a_second_and_remembered_meanwhile() {
    // The kernel's cookies change with its minute counter
    // (tcp_cookie_time), so the two cookies compared below, made 2.2 s
    // apart, differ when a minute turns between them: then the run is
    // made once more (a minute cannot turn twice within seconds).
    let (cached, full) = listener_remembered_then_looked_up();
    let (cached, full) = if cached == full {
        (cached, full)
    } else {
        listener_remembered_then_looked_up()
    };
    // The raw helper and the socket-bound one give the same cookie for
    // the same SYN (the same secret and MSS table, within a minute).
    assert_eq!(cached, full);
}

/// What the full look finds (listener or none) is used for a second:
/// observed by closing and opening a listener between SYNs. Returns the
/// cookies of one SYN answered from the cache (raw helper) and by the full
/// way (socket-bound helper).
fn listener_remembered_then_looked_up() -> (u32, u32) {
    const OTHER: u16 = 8080;
    let mut lab = CookieLab::new(flood_config());
    let from = |last: u8| {
        Segment::syn(
            IpAddr::V4(std::net::Ipv4Addr::new(198, 18, 0, last)),
            IpAddr::V4(TARGET_V4),
            40000,
            OTHER,
        )
        .frame()
    };
    let second = std::time::Duration::from_millis(1100);
    let listener = lab
        .ns
        .run(|| std::net::TcpListener::bind(("::", OTHER)))
        .unwrap();
    assert_reason(&lab.run(&from(10)), XDP_TX, Reason::SynAck);
    drop(listener);
    // Remembered: a cookie without a lookup, though nothing listens now
    // (its ACK would find no socket, and the kernel would reset it).
    let cached = lab.run(&from(11));
    assert_reason(&cached, XDP_TX, Reason::SynAck);
    std::thread::sleep(second);
    assert_reason(&lab.run(&from(12)), XDP_DROP, Reason::NoListener);
    let listener = lab
        .ns
        .run(|| std::net::TcpListener::bind(("::", OTHER)))
        .unwrap();
    // No listener is remembered too, for a second.
    assert_reason(&lab.run(&from(13)), XDP_DROP, Reason::NoListener);
    std::thread::sleep(second);
    let full = lab.run(&from(11));
    assert_reason(&full, XDP_TX, Reason::SynAck);
    drop(listener);
    let seq = |o: &Outcome| {
        let tcp = SlicedPacket::from_ethernet(&o.output).unwrap();
        let Some(TransportSlice::Tcp(tcp)) = tcp.transport else {
            panic!("not TCP")
        };
        tcp.sequence_number()
    };
    (seq(&cached), seq(&full))
}

/// A TCP connection inside a lab's namespace, over loopback.
struct Connection {
    listener: std::net::TcpListener,
    client: std::net::TcpStream,
    server_side: std::net::TcpStream,
}

/// A lab in flood mode with `TARGET_V4` on its loopback and a client
/// connected to a listener on `port` there. The connection's segments
/// never cross XDP; the tests hand copies of them to the program.
fn lab_with_connection(port: u16) -> (CookieLab, Connection) {
    let lab = CookieLab::new(flood_config());
    lab.ns
        .ip(&["addr", "add", &format!("{TARGET_V4}/32"), "dev", "lo"])
        .unwrap();
    let connection = lab.ns.run(|| {
        let listener = std::net::TcpListener::bind((TARGET_V4, port)).unwrap();
        let client = std::net::TcpStream::connect((TARGET_V4, port)).unwrap();
        let (server_side, _) = listener.accept().unwrap();
        Connection {
            listener,
            client,
            server_side,
        }
    });
    (lab, connection)
}

#[test]
fn a_syn_from_a_recent_peer_gets_the_full_lookup() {
    // The server closed a connection first, so it holds TIME_WAIT for
    // the 4-tuple. A SYN reusing it is the kernel's to judge (it may
    // reopen the connection): synguard must not answer it from XDP. It
    // knows to look because the client's FIN came through XDP.
    let (
        mut lab,
        Connection {
            listener,
            client,
            server_side,
        },
    ) = lab_with_connection(8081);
    drop(listener);
    let client_port = client.local_addr().unwrap().port();
    drop(server_side); // the server's FIN first: TIME_WAIT on its side
    std::thread::sleep(std::time::Duration::from_millis(50));
    drop(client);
    std::thread::sleep(std::time::Duration::from_millis(50));
    // A listener on 8081 again, as a server that restarted would have.
    let _listener = lab
        .ns
        .run(|| std::net::TcpListener::bind((TARGET_V4, 8081)))
        .unwrap();
    let syn = Segment::syn(
        IpAddr::V4(TARGET_V4),
        IpAddr::V4(TARGET_V4),
        client_port,
        8081,
    )
    .numbers(0x4000_0000, 0)
    .frame();
    // Prime the port's listener entry from another source, so that only
    // the peer check stands between the SYN and a cached cookie.
    let other = Segment::syn(IpAddr::V4(OUTSIDE_V4), IpAddr::V4(TARGET_V4), 40000, 8081).frame();
    assert_reason(&lab.run(&other), XDP_TX, Reason::SynAck);
    // Not a peer yet: the cheap path answers it (what the peer check is
    // for).
    assert_reason(&lab.run(&syn), XDP_TX, Reason::SynAck);
    // The client's FIN (flood mode: checked against the sockets, found
    // in TIME_WAIT) makes it a peer.
    let fin = Segment::syn(
        IpAddr::V4(TARGET_V4),
        IpAddr::V4(TARGET_V4),
        client_port,
        8081,
    )
    .flags(Flags {
        fin: true,
        ..Flags::ACK
    })
    .numbers(0x3000_0000, 0)
    .options(vec![])
    .frame();
    assert_reason(&lab.run(&fin), XDP_PASS, Reason::Tcp);
    assert_reason(&lab.run(&syn), XDP_PASS, Reason::Syn);
}

#[test]
fn a_syn_reusing_a_connection_active_in_the_flood_goes_to_the_kernel() {
    // A client whose connection the server still holds (one made before
    // the flood, still sending) reuses its 4-tuple in a SYN, as a client
    // that rebooted does. The kernel answers that SYN with a challenge
    // ACK (RFC 5961), which lets the client reset the old connection; a
    // cookie SYN-ACK instead leaves both ends in different connections.
    // The connection's segment in the flood, found established by the
    // lookup, makes its source a peer, so the SYN takes the full way.
    // The listener and the server's end stay open to the end.
    let (
        mut lab,
        Connection {
            listener: _listener,
            client,
            server_side: _server_side,
        },
    ) = lab_with_connection(8083);
    let client_port = client.local_addr().unwrap().port();
    let from_client = || {
        Segment::syn(
            IpAddr::V4(TARGET_V4),
            IpAddr::V4(TARGET_V4),
            client_port,
            8083,
        )
    };
    let syn = from_client().numbers(0x4000_0000, 0).frame();
    // Prime the port's listener entry from another source, so that only
    // the peer check stands between the SYN and a cached cookie.
    let other = Segment::syn(IpAddr::V4(OUTSIDE_V4), IpAddr::V4(TARGET_V4), 40000, 8083).frame();
    assert_reason(&lab.run(&other), XDP_TX, Reason::SynAck);
    // Not a peer yet (nothing of the connection has crossed XDP): the
    // cheap path answers, which is what the peer check is there to stop.
    assert_reason(&lab.run(&syn), XDP_TX, Reason::SynAck);
    let data = from_client()
        .flags(Flags {
            psh: true,
            ..Flags::ACK
        })
        .numbers(0x5000_0000, 0x6000_0000)
        .options(vec![])
        .payload(b"GET / HTTP/1.1\r\n\r\n")
        .frame();
    assert_reason(&lab.run(&data), XDP_PASS, Reason::Tcp);
    // The lookup found the connection: the SYN is the kernel's.
    assert_reason(&lab.run(&syn), XDP_PASS, Reason::Syn);
    drop(client);
}

#[test]
fn an_established_connection_is_looked_up_once_then_remembered_until_its_peer_resets() {
    // In a flood every ACK is looked up, to find the ones only a listener
    // takes. A connection found established is remembered (for a second)
    // and its segments pass without the lookup: seen here because they
    // still pass after the server aborted it, when the lookup would find
    // the listener and drop them as forged cookies. The peer's RST
    // forgets it at once.
    let (
        mut lab,
        Connection {
            listener,
            client,
            server_side,
        },
    ) = lab_with_connection(8082);
    let client_port = client.local_addr().unwrap().port();
    let segment = |flags: Flags| {
        Segment::syn(
            IpAddr::V4(TARGET_V4),
            IpAddr::V4(TARGET_V4),
            client_port,
            8082,
        )
        .flags(flags)
        .numbers(0x5000_0000, 0x6000_0000)
        .options(vec![])
    };
    let data = segment(Flags {
        psh: true,
        ..Flags::ACK
    })
    .payload(b"GET / HTTP/1.1\r\n\r\n")
    .frame();
    assert_reason(&lab.run(&data), XDP_PASS, Reason::Tcp);
    // The server aborts (SO_LINGER 0: a RST, and both sockets are gone).
    abort(&server_side);
    drop(server_side);
    drop(client);
    std::thread::sleep(std::time::Duration::from_millis(50));
    assert_reason(&lab.run(&data), XDP_PASS, Reason::Tcp);
    // The peer's RST: forgotten; the lookup now finds the listener alone.
    let rst = segment(Flags {
        rst: true,
        ..Flags::ACK
    })
    .frame();
    assert_reason(&lab.run(&rst), XDP_PASS, Reason::Tcp);
    assert_reason(&lab.run(&data), XDP_DROP, Reason::BadCookie);
    drop(listener);
}

/// Makes closing `stream` send a RST and free the socket at once.
fn abort(stream: &std::net::TcpStream) {
    use std::os::fd::AsRawFd;
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket and a `linger` of the size passed.
    let rc = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&raw const linger).cast(),
            size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "SO_LINGER: {}", std::io::Error::last_os_error());
}
