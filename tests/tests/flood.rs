//! End to end under a spoofed SYN flood: real clients keep connecting
//! through synguard while a bounded flood from random sources hits the
//! same interface, and the target kernel never feels it.
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
    traffic::{self, EchoServer, RawSender, TcpInfo},
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
    // timestamp only without per-connection offsets (see the README).
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
    let rmem_max: u64 = ns.sysctl("net.core.rmem_max").unwrap().parse().unwrap();
    xdp_daemon::settings::window_scale(rmem.max(rmem_max))
}

#[test]
fn ipv4_clients_connect_through_a_spoofed_syn_flood() {
    flood_keeps_real_clients_connecting(IpAddr::V4(TARGET_V4));
}

#[test]
fn ipv6_clients_connect_through_a_spoofed_syn_flood() {
    flood_keeps_real_clients_connecting(IpAddr::V6(TARGET_V6));
}
