//! End to end under spoofed floods: real clients keep connecting through
//! synguard while a bounded flood of SYNs from random sources hits the same
//! interface, established connections keep talking through a flood of ACKs
//! carrying forged cookies, and the target kernel feels neither.
use std::{
    net::{IpAddr, SocketAddr},
    sync::Mutex,
    thread,
    time::Duration,
};

use synguard_tests::{
    lab::{Lab, TARGET_V4, TARGET_V6},
    packets, require_root,
    synguard::Synguard,
    traffic::{self, EchoConnection, EchoServer, RawSender, TcpInfo},
};

/// One flood at a time: two on this 2-core machine would measure each other.
static FLOOD: Mutex<()> = Mutex::new(());

const LEGIT: u32 = 200;
const PORT: u16 = 80;

fn flood_keeps_real_clients_connecting(target: IpAddr) {
    require_root();
    let _one_at_a_time = FLOOD.lock().unwrap_or_else(|e| e.into_inner());
    let lab = Lab::new().expect("lab");
    let synguard = Synguard::new(lab.target.name());
    // The kernel decodes window scaling and SACK from an XDP-made cookie
    // timestamp only without per-connection offsets
    // (docs/design.md#the-tcp_timestamps2-trade-off).
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
                "--syn-rate-on",
                "2000",
                "--syn-rate-off",
                "1000",
            ],
        )
        .expect("attach");
    let service = SocketAddr::new(target, PORT);
    let server = EchoServer::start(&lab.target, service).unwrap();
    let before = lab.target.netstat().unwrap();

    let frames = packets::spoofed_syns(8192, target, PORT, 0xf100d);
    let tx = RawSender::open(&lab.outside, &lab.outside_if).unwrap();
    let (sent, report) = thread::scope(|s| {
        // Bounded: at most 20 s, and it outlasts the clients anyway.
        let flood = s.spawn(|| traffic::flood(&tx, &frames, Duration::from_secs(12), 20_000_000));
        thread::sleep(Duration::from_millis(500));
        let report = traffic::run_clients(
            &lab.outside,
            service,
            LEGIT,
            Duration::from_millis(40),
            Duration::from_secs(5),
        );
        (flood.join().unwrap(), report)
    });
    let after = lab.target.netstat().unwrap();
    let delta =
        |key: &str| after.get(key).copied().unwrap_or(0) - before.get(key).copied().unwrap_or(0);
    let count = |verdict: &str, reason: &str| {
        synguard
            .count(&lab.target, &lab.target_if, verdict, reason)
            .unwrap()
    };

    let syn_acks = count("tx", "syn_ack");
    let valid = count("pass", "valid_cookie");
    println!(
        "{target}: sent {sent} spoofed SYNs; legit {}/{} (p50 {:?}, p99 {:?}); synguard: {syn_acks} SYN-ACKs, {} over budget, {valid} valid cookie ACKs; kernel: SyncookiesRecv +{}, ListenOverflows +{}, ListenDrops +{}",
        report.succeeded,
        report.attempted,
        report.connect_quantile(0.5),
        report.connect_quantile(0.99),
        count("drop", "rate"),
        delta("TcpExtSyncookiesRecv"),
        delta("TcpExtListenOverflows"),
        delta("TcpExtListenDrops"),
    );
    assert!(sent > 100_000, "the flood was a flood: {sent} packets");
    assert!(
        report.succeeded * 100 >= LEGIT * 99,
        "at least 99% of {LEGIT} real clients connect and echo: {} did; first errors {:?}",
        report.succeeded,
        report.errors.iter().take(3).collect::<Vec<_>>()
    );
    assert!(syn_acks > 0, "flood mode engaged and XDP answered SYNs");
    assert_eq!(
        delta("TcpExtListenOverflows"),
        0,
        "the accept queue never overflowed"
    );
    assert_eq!(
        delta("TcpExtListenDrops"),
        0,
        "the listener dropped nothing"
    );
    // Cookie handshakes are the real clients' and nobody else's: the kernel
    // accepted as many cookies as there were real clients at most, each one
    // an ACK the data path had validated (a client's ACK and first data can
    // both meet the listener in XDP before the kernel makes the socket, so
    // XDP may count a few more), and no cookie it passed failed.
    let received = delta("TcpExtSyncookiesRecv");
    assert!(
        received > 0,
        "real clients completed handshakes through cookies"
    );
    assert!(
        received <= u64::from(report.succeeded),
        "{received} cookie handshakes for {} clients",
        report.succeeded
    );
    assert!(
        received <= valid,
        "{received} kernel cookie handshakes, {valid} validated in XDP"
    );
    assert_eq!(
        delta("TcpExtSyncookiesFailed"),
        0,
        "no cookie the data path passed failed in the kernel"
    );
    // Cookie connections kept their options: timestamps, SACK, and the
    // window scale the kernel itself chose.
    let accepted = server.accepted();
    assert!(
        accepted.len() as u32 >= report.succeeded,
        "server saw the connections"
    );
    let all = TcpInfo::TIMESTAMPS | TcpInfo::SACK | TcpInfo::WSCALE;
    let client_ws = window_scale_of(&lab.outside);
    let server_ws = window_scale_of(&lab.target);
    for info in &accepted {
        assert_eq!(
            info.options & all,
            all,
            "options survived the cookie handshake: {info:?}"
        );
        assert_eq!(
            info.snd_wscale, client_ws,
            "the client's window scale: {info:?}"
        );
        assert_eq!(
            info.rcv_wscale, server_ws,
            "the server's window scale: {info:?}"
        );
    }
}

/// The window scale a Linux host in `ns` offers (tcp_select_initial_window).
fn window_scale_of(ns: &synguard_tests::netns::Netns) -> u8 {
    let rmem: u64 = ns
        .sysctl("net.ipv4.tcp_rmem")
        .unwrap()
        .split_whitespace()
        .nth(2)
        .unwrap()
        .parse()
        .unwrap();
    // A child namespace has no net.core.rmem_max before about 6.10 (the
    // kernel then uses the global one, whose boot value never raises the
    // scale over tcp_rmem[2]'s: see xdp-daemon settings.rs).
    let rmem_max: u64 = ns
        .sysctl("net.core.rmem_max")
        .map_or(0, |v| v.parse().unwrap());
    synguard::settings::window_scale(rmem.max(rmem_max))
}

#[test]
fn ipv4_clients_connect_through_a_spoofed_syn_flood() {
    flood_keeps_real_clients_connecting(IpAddr::V4(TARGET_V4));
}

#[test]
fn ipv6_clients_connect_through_a_spoofed_syn_flood() {
    flood_keeps_real_clients_connecting(IpAddr::V6(TARGET_V6));
}

/// Connections established before the ACK flood and kept open through it.
const ESTABLISHED: usize = 4;

fn ack_flood_is_dropped_while_established_connections_keep_talking(target: IpAddr) {
    require_root();
    let _one_at_a_time = FLOOD.lock().unwrap_or_else(|e| e.into_inner());
    let lab = Lab::new().expect("lab");
    let synguard = Synguard::new(lab.target.name());
    // Forced cookies: every handshake goes through the cookie path, and each
    // cookie records an overflow on the listener, after which the kernel
    // checks every ACK that reaches the listener as a cookie for two minutes
    // (include/net/tcp.h tcp_synq_no_recent_overflow), counting forged ones
    // in TcpExtSyncookiesFailed. Without a recent overflow the kernel would
    // not look at them, and that counter could not show a leak.
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
    let count = |verdict: &str, reason: &str| {
        synguard
            .settled_count(&lab.target, &lab.target_if, verdict, reason)
            .unwrap()
    };
    let service = SocketAddr::new(target, PORT);
    let _server = EchoServer::start(&lab.target, service).unwrap();
    let timeout = Duration::from_secs(5);
    let mut established: Vec<EchoConnection> = (0..ESTABLISHED)
        .map(|_| EchoConnection::open(&lab.outside, service, timeout).expect("connect"))
        .collect();
    for (i, c) in established.iter_mut().enumerate() {
        c.round_trip(format!("connection {i} before the flood").as_bytes())
            .unwrap_or_else(|e| panic!("connection {i} before the flood: {e:#}"));
    }
    assert!(
        count("pass", "valid_cookie") >= ESTABLISHED as u64,
        "the connections were made through the cookie path"
    );

    let bad_before = count("drop", "bad_cookie");
    let tcp_before = count("pass", "tcp");
    let valid_before = count("pass", "valid_cookie");
    let before = lab.target.netstat().unwrap();
    let frames = packets::spoofed_acks(8192, target, PORT, 0xac4_f100d);
    let tx = RawSender::open(&lab.outside, &lab.outside_if).unwrap();
    let (sent, rounds) = thread::scope(|s| {
        // Bounded: 5 s or 10 M frames, whichever comes first.
        let flood = s.spawn(|| traffic::flood(&tx, &frames, Duration::from_secs(5), 10_000_000));
        let mut rounds = 0u32;
        while !flood.is_finished() {
            for (i, c) in established.iter_mut().enumerate() {
                c.round_trip(format!("connection {i}, round {rounds} of the flood").as_bytes())
                    .unwrap_or_else(|e| panic!("connection {i} during the flood: {e:#}"));
            }
            rounds += 1;
        }
        (flood.join().unwrap(), rounds)
    });
    // The kernel's counters first: whatever it received by now, XDP passed.
    let after = lab.target.netstat().unwrap();
    let bad = count("drop", "bad_cookie") - bad_before;
    let tcp = count("pass", "tcp") - tcp_before;
    // The echo's segments advance both sequence numbers by the same amount,
    // so within the cookie's two minutes they check as valid cookies (the
    // raw check comes first, docs/design.md#established-connections-in-a-flood)
    // and are passed as such.
    let valid = count("pass", "valid_cookie") - valid_before;
    let delta =
        |key: &str| after.get(key).copied().unwrap_or(0) - before.get(key).copied().unwrap_or(0);
    println!(
        "{target}: sent {sent} spoofed ACKs; synguard: {bad} bad_cookie drops, {tcp} tcp and {valid} valid_cookie passes; {rounds} echo rounds on {ESTABLISHED} connections during the flood; kernel: TcpInSegs +{}, SyncookiesFailed +{}, OutRsts +{}",
        delta("TcpInSegs"),
        delta("TcpExtSyncookiesFailed"),
        delta("TcpOutRsts"),
    );
    assert!(sent > 100_000, "the flood was a flood: {sent} packets");
    assert!(
        bad <= sent,
        "{bad} bad cookies counted for {sent} forged ACKs: something else was counted"
    );
    assert!(
        bad * 100 >= sent * 99,
        "{bad} of {sent} forged ACKs counted as bad cookies"
    );
    // Nothing but the connections' own segments reached the kernel: it
    // received no more TCP segments than XDP passed as `tcp` or
    // `valid_cookie`, and failed no cookie (it checks every ACK to the
    // listener as one, see above).
    assert!(
        delta("TcpInSegs") <= tcp + valid,
        "the kernel received {} TCP segments, XDP passed {tcp} as tcp and {valid} as valid_cookie",
        delta("TcpInSegs")
    );
    assert!(
        tcp + valid >= u64::from(rounds),
        "the echo's {rounds} rounds were passed"
    );
    assert_eq!(
        delta("TcpExtSyncookiesFailed"),
        0,
        "no forged cookie reached the kernel"
    );
    assert!(rounds > 0, "the connections talked during the flood");

    // After the flood: the same connections, and new ones through cookies.
    for (i, c) in established.iter_mut().enumerate() {
        c.round_trip(format!("connection {i} after the flood").as_bytes())
            .unwrap_or_else(|e| panic!("connection {i} after the flood: {e:#}"));
    }
    for c in established {
        c.close().expect("orderly close");
    }
    let valid_before = count("pass", "valid_cookie");
    let report = traffic::run_clients(&lab.outside, service, 10, Duration::ZERO, timeout);
    assert_eq!(report.succeeded, 10, "new connections: {:?}", report.errors);
    assert!(
        count("pass", "valid_cookie") - valid_before >= 10,
        "new connections went through the cookie path"
    );

    // The control: with flood mode off, forged ACKs reach the kernel, which
    // counts each as a failed cookie: the counter above would have seen them.
    synguard
        .run(&lab.target, &["attach", &lab.target_if, "--flood", "off"])
        .expect("flood mode off");
    let failed_before = lab.target.netstat().unwrap()["TcpExtSyncookiesFailed"];
    let tcp_before = count("pass", "tcp");
    for frame in frames.iter().take(100) {
        tx.send(frame).unwrap();
    }
    assert_eq!(count("pass", "tcp") - tcp_before, 100);
    let failed = lab.target.netstat().unwrap()["TcpExtSyncookiesFailed"] - failed_before;
    assert_eq!(
        failed, 100,
        "with flood mode off the kernel sees forged cookies"
    );
}

#[test]
fn ipv4_ack_flood_with_forged_cookies_is_dropped_and_connections_keep_talking() {
    ack_flood_is_dropped_while_established_connections_keep_talking(IpAddr::V4(TARGET_V4));
}

#[test]
fn ipv6_ack_flood_with_forged_cookies_is_dropped_and_connections_keep_talking() {
    ack_flood_is_dropped_while_established_connections_keep_talking(IpAddr::V6(TARGET_V6));
}
