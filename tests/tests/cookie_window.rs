//! The cookie path past the kernel's two-minute window. The kernel accepts
//! a cookie ACK only within two minutes of an overflow recorded on the
//! listener (include/net/tcp.h `tcp_synq_no_recent_overflow`,
//! `TCP_SYNCOOKIE_VALID`). synguard answers SYNs itself, so the kernel never
//! records one of its own; the design relies on `bpf_tcp_gen_syncookie`
//! recording one each time it issues a cookie. This test checks that the
//! kernel still accepts XDP's cookies more than two minutes after the last
//! one, and that the window it relies on had really closed in between.
//!
//! It sleeps for most of its 2 minutes, alone in its own test binary so
//! that nothing else runs beside it.
use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    thread,
    time::{Duration, Instant},
};

use synguard_tests::{
    lab::{Lab, TARGET_V4, TARGET_V6},
    netns::Netns,
    packets::{Flags, Segment},
    require_root,
    synguard::Synguard,
    traffic::{self, EchoServer, RawSender, TcpInfo},
};

const PORT: u16 = 80;
/// Clients per address family and round.
const CLIENTS: u32 = 3;
/// Longer than the kernel's window (TCP_SYNCOOKIE_VALID: 2 minutes).
const PAST_THE_WINDOW: Duration = Duration::from_secs(125);
/// Allowlisted sources of the probe ACKs, which therefore reach the kernel.
const PROBE_V4: Ipv4Addr = Ipv4Addr::new(198, 19, 255, 1);
const PROBE_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0xffff, 0, 0, 0, 1);

fn counter(ns: &Netns, key: &str) -> u64 {
    ns.netstat().unwrap().get(key).copied().unwrap_or(0)
}

#[test]
fn cookie_handshakes_succeed_past_the_kernels_two_minute_window() {
    require_root();
    let lab = Lab::new().expect("lab");
    let synguard = Synguard::new(lab.target.name());
    // Forced cookies: the helper issues one for every SYN, with no flood
    // needed to fill the listener's queue. Timestamps without offsets, so
    // cookies carry the options.
    lab.target
        .set_sysctl("net.ipv4.tcp_syncookies", "2")
        .unwrap();
    lab.target
        .set_sysctl("net.ipv4.tcp_timestamps", "2")
        .unwrap();
    synguard
        .run(
            &lab.target,
            &[
                "attach",
                &lab.target_if,
                "--mode",
                "native",
                "--flood",
                "always",
            ],
        )
        .expect("attach");
    let engaged = Instant::now();
    for probe in [PROBE_V4.to_string(), PROBE_V6.to_string()] {
        synguard.run(&lab.target, &["allow", &probe]).unwrap();
    }
    let services = [
        SocketAddr::new(IpAddr::V4(TARGET_V4), PORT),
        SocketAddr::new(IpAddr::V6(TARGET_V6), PORT),
    ];
    let servers: Vec<EchoServer> = services
        .iter()
        .map(|&addr| EchoServer::start(&lab.target, addr).unwrap())
        .collect();
    let tx = RawSender::open(&lab.outside, &lab.outside_if).unwrap();
    let count = |verdict: &str, reason: &str| {
        synguard
            .settled_count(&lab.target, &lab.target_if, verdict, reason)
            .unwrap()
    };
    let kernel_cookies_sent = counter(&lab.target, "TcpExtSyncookiesSent");

    // Real clients through the cookie path: each SYN answered from XDP,
    // each ACK validated in XDP and accepted by the kernel as a cookie.
    let round = |when: &str| {
        let syn_acks = count("tx", "syn_ack");
        let valid = count("pass", "valid_cookie");
        let passed_syns = count("pass", "syn");
        let received = counter(&lab.target, "TcpExtSyncookiesRecv");
        for &service in &services {
            let report = traffic::run_clients(
                &lab.outside,
                service,
                CLIENTS,
                Duration::ZERO,
                Duration::from_secs(5),
            );
            assert_eq!(
                report.succeeded, CLIENTS,
                "{when}: clients of {service}: {:?}",
                report.errors
            );
        }
        let clients = u64::from(CLIENTS) * services.len() as u64;
        let received = counter(&lab.target, "TcpExtSyncookiesRecv") - received;
        println!(
            "{when} ({:?} after flood mode engaged): {clients} clients connected; XDP answered {} SYNs and validated {} cookie ACKs; the kernel accepted {received} cookies",
            engaged.elapsed(),
            count("tx", "syn_ack") - syn_acks,
            count("pass", "valid_cookie") - valid,
        );
        assert_eq!(
            count("pass", "syn"),
            passed_syns,
            "{when}: no SYN went to the kernel"
        );
        assert!(
            count("tx", "syn_ack") - syn_acks >= clients,
            "{when}: SYN-ACKs from XDP"
        );
        assert!(
            count("pass", "valid_cookie") - valid >= clients,
            "{when}: cookie ACKs validated in XDP"
        );
        assert_eq!(
            received, clients,
            "{when}: the kernel accepted each client's cookie"
        );
    };
    // A forged ACK from an allowlisted source reaches the listener. The
    // kernel checks it as a cookie (and counts it failed) only while an
    // overflow is recent: that shows whether the window is open.
    let window_open = || {
        let failed = counter(&lab.target, "TcpExtSyncookiesFailed");
        let allowed = count("pass", "allowlist");
        for (probe, service) in [IpAddr::V4(PROBE_V4), IpAddr::V6(PROBE_V6)]
            .into_iter()
            .zip(services)
        {
            let ack = Segment::syn(probe, service.ip(), 40000, PORT)
                .flags(Flags::ACK)
                .numbers(1, 0xdead_beef)
                .options(vec![])
                .frame();
            tx.send(&ack).unwrap();
        }
        assert_eq!(count("pass", "allowlist") - allowed, 2, "probes passed");
        match counter(&lab.target, "TcpExtSyncookiesFailed") - failed {
            0 => false,
            2 => true,
            n => panic!("{n} failed cookies for 2 probes"),
        }
    };

    round("first round");
    let last_cookie = Instant::now();
    assert!(window_open(), "the first round's cookies opened the window");

    thread::sleep(PAST_THE_WINDOW.saturating_sub(last_cookie.elapsed()));
    assert!(
        !window_open(),
        "{PAST_THE_WINDOW:?} after the last cookie, the window has closed"
    );
    round("second round");
    assert!(window_open(), "the second round's cookies opened it again");

    assert_eq!(
        counter(&lab.target, "TcpExtSyncookiesSent"),
        kernel_cookies_sent,
        "the kernel never sent a cookie itself: every overflow it recorded came from XDP's helper"
    );
    let all = TcpInfo::TIMESTAMPS | TcpInfo::SACK | TcpInfo::WSCALE;
    for server in &servers {
        for info in server.accepted() {
            assert_eq!(info.options & all, all, "options survived: {info:?}");
        }
    }
}
