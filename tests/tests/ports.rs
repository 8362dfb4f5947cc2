//! Guarded ports: in a flood, SYNs to the ports the operator guards are
//! answered from XDP; SYNs to other listening ports go to the kernel, and
//! SYNs to ports with no listener are dropped either way.
mod common;

use std::net::{IpAddr, TcpListener};

use common::{Harness, XDP_DROP, XDP_PASS, XDP_TX};
use synguard_common::{FloodMode, IfaceSettings, PortSet, Reason};
use synguard_tests::{
    lab::{OUTSIDE_V4, TARGET_V4},
    netns::{Netns, unique_prefix},
    packets::Segment,
};

#[test]
fn only_guarded_ports_are_answered_from_xdp_in_a_flood() {
    let mut harness = Harness::new();
    let ns = Netns::create(&format!("{}-pt", unique_prefix())).unwrap();
    ns.set_sysctl("net.ipv4.tcp_syncookies", "2").unwrap();
    let _web = ns.run(|| TcpListener::bind(("0.0.0.0", 443))).unwrap();
    let _ssh = ns.run(|| TcpListener::bind(("0.0.0.0", 22))).unwrap();
    // Guard 443 only: every other port is unguarded.
    let mut unguarded = PortSet::default();
    for port in 0..=u16::MAX {
        if port != 443 {
            unguarded.insert(port);
        }
    }
    harness.set_config(IfaceSettings {
        flood_mode: FloodMode::Always as u32,
        mss_v4: 1460,
        mss_v6: 1440,
        unguarded_ports: unguarded,
        ..IfaceSettings::default()
    });
    let syn =
        |port| Segment::syn(IpAddr::V4(OUTSIDE_V4), IpAddr::V4(TARGET_V4), 40000, port).frame();
    for (port, action, reason) in [
        (443, XDP_TX, Reason::SynAck),
        (22, XDP_PASS, Reason::Syn),
        (8080, XDP_PASS, Reason::Syn),
    ] {
        let outcome = harness.run_in(&ns, &syn(port));
        assert_eq!(
            outcome.action,
            action,
            "port {port}: {:?}",
            outcome.delta.rows()
        );
        assert_eq!(outcome.delta.get(reason).packets, 1, "port {port}");
        assert_eq!(outcome.delta.total_packets(), 1, "port {port}");
    }

    // With every port guarded (the default), a port without a listener is
    // dropped in a flood.
    harness.set_config(IfaceSettings {
        flood_mode: FloodMode::Always as u32,
        mss_v4: 1460,
        mss_v6: 1440,
        ..IfaceSettings::default()
    });
    let outcome = harness.run_in(&ns, &syn(8080));
    assert_eq!(outcome.action, XDP_DROP);
    assert_eq!(outcome.delta.get(Reason::NoListener).packets, 1);
    let outcome = harness.run_in(&ns, &syn(22));
    assert_eq!(outcome.action, XDP_TX);
}
