//! End-to-end tests in the namespace lab: the real `synguard` binary attached
//! in native mode to a veth, real TCP clients and servers, crafted frames
//! sent from the outside namespace, counters read back through the CLI.
use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    time::Duration,
};

use synguard_tests::{
    lab::{Lab, OUTSIDE_V4, OUTSIDE_V6, TARGET_V4, TARGET_V6},
    packets::{self, Flags, L3, Segment},
    require_root,
    synguard::Synguard,
    traffic::{EchoServer, RawSender, run_clients},
};

/// A lab with synguard attached to the target interface.
struct Protected {
    // Field order is drop order: detach before the namespaces go.
    synguard: Synguard,
    lab: Lab,
}

impl Protected {
    fn new() -> Protected {
        require_root();
        let lab = Lab::new().expect("build the lab");
        let synguard = Synguard::new(lab.target.name());
        let out = synguard
            .run(&lab.target, &["attach", &lab.target_if, "--mode", "native"])
            .expect("synguard attach");
        assert!(out.contains("attached"), "unexpected attach output: {out}");
        Protected { synguard, lab }
    }

    fn count(&self, verdict: &str, reason: &str) -> u64 {
        self.synguard
            .count(&self.lab.target, &self.lab.target_if, verdict, reason)
            .expect("synguard stats")
    }
}

#[test]
fn real_clients_connect_over_ipv4_and_ipv6() {
    let p = Protected::new();
    let v4 = SocketAddr::new(IpAddr::V4(TARGET_V4), 8080);
    let v6 = SocketAddr::new(IpAddr::V6(TARGET_V6), 8080);
    let _s4 = EchoServer::start(&p.lab.target, v4).unwrap();
    let _s6 = EchoServer::start(&p.lab.target, v6).unwrap();
    let syns_before = p.count("pass", "syn");

    for addr in [v4, v6] {
        let report = run_clients(
            &p.lab.outside,
            addr,
            20,
            Duration::ZERO,
            Duration::from_secs(3),
        );
        assert_eq!(
            report.succeeded, 20,
            "connections to {addr}: {:?}",
            report.errors
        );
    }
    assert!(
        p.count("pass", "syn") - syns_before >= 40,
        "every connection's SYN is counted"
    );
    assert!(
        p.count("pass", "tcp") >= 40 * 3,
        "ACKs and data are counted"
    );
    assert_eq!(p.count("drop", "malformed"), 0);
}

#[test]
fn crafted_frames_get_their_verdicts_on_the_wire() {
    let p = Protected::new();
    let tx = RawSender::open(&p.lab.outside, &p.lab.outside_if).unwrap();
    let v4 = |a| IpAddr::V4(a);
    let v6 = |a| IpAddr::V6(a);
    let syn = Segment::syn(v4(OUTSIDE_V4), v4(TARGET_V4), 40001, 9);
    let truncated_ip = syn.frame()[..L3 + 12].to_vec();
    let truncated_tcp = {
        let mut f = syn.clone().options(vec![]).frame();
        f[L3 + 20 + 12] = 0x40; // data offset 4
        f
    };
    let sends: Vec<(Vec<u8>, u32)> = vec![
        (packets::arp_request(OUTSIDE_V4, TARGET_V4), 5),
        (packets::ping(v4(OUTSIDE_V4), v4(TARGET_V4)), 5),
        (packets::ping(v6(OUTSIDE_V6), v6(TARGET_V6)), 5),
        (packets::neighbour_solicitation(OUTSIDE_V6, TARGET_V6), 5),
        (
            packets::udp(v4(OUTSIDE_V4), v4(TARGET_V4), 5353, 9, b"x"),
            5,
        ),
        (syn.clone().vlans(&[100]).frame(), 7),
        (syn.clone().flags(Flags::SYN_ACK).frame(), 3),
        (truncated_ip, 11),
        (truncated_tcp, 13),
    ];
    let before = |v: &str, r: &str| p.count(v, r);
    let (non_ip, non_tcp, syn_count, tcp, malformed) = (
        before("pass", "non_ip"),
        before("pass", "non_tcp"),
        before("pass", "syn"),
        before("pass", "tcp"),
        before("drop", "malformed"),
    );
    for (frame, times) in &sends {
        for _ in 0..*times {
            tx.send(frame).expect("send frame");
        }
    }
    // Frames cross the veth asynchronously; the counters settle quickly.
    std::thread::sleep(Duration::from_millis(300));

    // The link is quiet (fixed neighbours), but the kernels may still speak
    // (e.g. replies to our pings): pass counts are at least what we sent.
    assert!(p.count("pass", "non_ip") - non_ip >= 5);
    assert!(p.count("pass", "non_tcp") - non_tcp >= 20);
    assert!(
        p.count("pass", "syn") - syn_count >= 7,
        "VLAN-tagged SYNs are parsed as SYNs"
    );
    assert!(p.count("pass", "tcp") - tcp >= 3);
    // Nothing else on the link is malformed: exactly what we sent.
    assert_eq!(p.count("drop", "malformed") - malformed, 24);
}

#[test]
fn attach_and_detach_are_idempotent_and_leave_nothing_behind() {
    let p = Protected::new();
    let again = p
        .synguard
        .run(&p.lab.target, &["attach", &p.lab.target_if])
        .unwrap();
    assert!(again.contains("already attached"), "{again}");
    assert!(p.lab.target_has_xdp(), "program attached");

    let out = p
        .synguard
        .run(&p.lab.target, &["detach", &p.lab.target_if])
        .unwrap();
    assert!(out.contains("detached from"), "{out}");
    assert!(!p.lab.target_has_xdp(), "program detached");
    // The interface's own pins are gone; only the lists every interface
    // shares stay, so an operator's blocklist survives a detach.
    let mut left: Vec<String> = walk(p.synguard.pin_root())
        .into_iter()
        .filter(|p| !p.is_dir())
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    let mut shared: Vec<String> = synguard_common::maps::SHARED
        .iter()
        .map(|s| s.to_string())
        .collect();
    left.sort();
    shared.sort();
    assert_eq!(left, shared, "after detach only the shared lists remain");

    let out = p
        .synguard
        .run(&p.lab.target, &["detach", &p.lab.target_if])
        .unwrap();
    assert!(out.contains("was not attached"), "{out}");

    let missing = p
        .synguard
        .output(&p.lab.target, &["attach", "sgnosuchif"])
        .unwrap();
    assert!(!missing.status.success());
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("no interface named"),
        "{missing:?}"
    );
}

#[test]
fn protection_outlives_the_cli_process() {
    // `attach` exits at once; the pinned link keeps the program attached
    // and counting.
    let p = Protected::new();
    let server = SocketAddr::new(IpAddr::V4(TARGET_V4), 8081);
    let _s = EchoServer::start(&p.lab.target, server).unwrap();
    let report = run_clients(
        &p.lab.outside,
        server,
        5,
        Duration::ZERO,
        Duration::from_secs(3),
    );
    assert_eq!(report.succeeded, 5, "{:?}", report.errors);
    assert!(p.count("pass", "syn") >= 5);
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let path = e.path();
            if path.is_dir() {
                out.extend(walk(&path));
            }
            out.push(path);
        }
    }
    out
}

#[test]
fn lists_changed_from_the_cli_act_in_the_data_path_at_once() {
    require_root();
    let lab = Lab::new().expect("build the lab");
    let synguard = Synguard::new(lab.target.name());
    // Before any interface is attached: the lists exist on their own.
    let out = synguard.run(&lab.target, &["block", "198.18.0.1"]).unwrap();
    assert!(
        out.contains("added 198.18.0.1/32 to the blocklist"),
        "{out}"
    );
    synguard
        .run(&lab.target, &["attach", &lab.target_if, "--mode", "native"])
        .unwrap();
    let listed = synguard.run(&lab.target, &["list", "blocked"]).unwrap();
    assert_eq!(listed.trim(), "198.18.0.1/32");

    let tx = RawSender::open(&lab.outside, &lab.outside_if).unwrap();
    let udp = packets::udp(IpAddr::V4(OUTSIDE_V4), IpAddr::V4(TARGET_V4), 5353, 9, b"x");
    let count = |v: &str, r: &str| synguard.count(&lab.target, &lab.target_if, v, r).unwrap();
    for _ in 0..9 {
        tx.send(&udp).unwrap();
    }
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        count("drop", "blocklist"),
        9,
        "every frame from the blocked source dropped"
    );

    let out = synguard
        .run(&lab.target, &["unblock", "198.18.0.1/32"])
        .unwrap();
    assert!(out.contains("removed"), "{out}");
    let non_tcp = count("pass", "non_tcp");
    for _ in 0..9 {
        tx.send(&udp).unwrap();
    }
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        count("drop", "blocklist"),
        9,
        "nothing dropped once unblocked"
    );
    assert!(count("pass", "non_tcp") - non_tcp >= 9);
    let again = synguard
        .run(&lab.target, &["unblock", "198.18.0.1/32"])
        .unwrap();
    assert!(again.contains("nothing to do"), "{again}");
}

#[test]
fn syns_from_martian_sources_are_dropped_on_the_wire_while_real_clients_connect() {
    // Over the veth, not BPF_PROG_TEST_RUN: test frames run on loopback,
    // where 127/8 and ::1 are the host itself and exempt from the check.
    let p = Protected::new();
    let v4 = SocketAddr::new(IpAddr::V4(TARGET_V4), 8082);
    let v6 = SocketAddr::new(IpAddr::V6(TARGET_V6), 8082);
    let _s4 = EchoServer::start(&p.lab.target, v4).unwrap();
    let _s6 = EchoServer::start(&p.lab.target, v6).unwrap();
    let martians: Vec<(IpAddr, SocketAddr)> = [
        Ipv4Addr::new(127, 0, 0, 5),
        Ipv4Addr::new(0, 1, 2, 3),
        Ipv4Addr::new(224, 1, 1, 1),
        Ipv4Addr::new(240, 0, 0, 1),
        Ipv4Addr::BROADCAST,
    ]
    .into_iter()
    .map(|a| (IpAddr::V4(a), v4))
    .chain(
        [
            Ipv6Addr::LOCALHOST,
            Ipv6Addr::UNSPECIFIED,
            Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1),
            Ipv4Addr::new(198, 18, 0, 1).to_ipv6_mapped(),
        ]
        .into_iter()
        .map(|a| (IpAddr::V6(a), v6)),
    )
    .collect();
    let tx = RawSender::open(&p.lab.outside, &p.lab.outside_if).unwrap();
    let martian_before = p.count("drop", "martian");
    let syn_before = p.count("pass", "syn");
    const EACH: u64 = 5;
    for (source, service) in &martians {
        let frame = Segment::syn(*source, service.ip(), 40000, service.port()).frame();
        for _ in 0..EACH {
            tx.send(&frame).expect("send a martian SYN");
        }
    }
    let dropped = p
        .synguard
        .settled_count(&p.lab.target, &p.lab.target_if, "drop", "martian")
        .unwrap()
        - martian_before;
    assert_eq!(
        dropped,
        EACH * martians.len() as u64,
        "every SYN from a martian source dropped and counted, and nothing else"
    );
    assert_eq!(
        p.count("pass", "syn"),
        syn_before,
        "no martian SYN reached the kernel"
    );

    for addr in [v4, v6] {
        let report = run_clients(
            &p.lab.outside,
            addr,
            5,
            Duration::ZERO,
            Duration::from_secs(3),
        );
        assert_eq!(
            report.succeeded, 5,
            "real clients of {addr}: {:?}",
            report.errors
        );
    }
    assert_eq!(
        p.count("drop", "martian") - martian_before,
        dropped,
        "real clients are not martians"
    );
}
