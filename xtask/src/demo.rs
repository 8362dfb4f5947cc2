//! `cargo xtask demo`: synguard at work in a namespace lab. It builds the
//! binary, makes an outside and a target namespace joined by a veth pair,
//! attaches synguard to the target's interface, serves TCP there, runs real
//! clients before and during a short, bounded spoofed SYN flood, prints what
//! synguard counted, and tears everything down (also on failure: Drop guards).
use std::{
    net::{IpAddr, SocketAddr},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use synguard_tests::{
    lab::{Lab, OUTSIDE_V4, TARGET_V4},
    packets::{self, L3, Segment},
    synguard::Synguard,
    traffic::{self, ClientReport, EchoServer, RawSender},
};

use crate::is_root;

const SERVICE_PORT: u16 = 80;
const LEGIT_CONNECTIONS: u32 = 50;
/// Upper bounds of the flood: whichever is reached first ends it.
const FLOOD_DURATION: Duration = Duration::from_secs(5);
const FLOOD_MAX_PACKETS: u64 = 2_000_000;

pub fn run() -> Result<()> {
    crate::setup::run()?;
    if !is_root() {
        bail!(
            "cargo xtask demo needs root: it creates network namespaces and attaches XDP; run it as root"
        );
    }
    let bin = crate::build_release()?;

    let lab = Lab::new().context("building the namespace lab")?;
    let synguard = Synguard::with_binary(bin, lab.target.name());
    println!("== lab");
    println!(
        "   outside namespace {} ({OUTSIDE_V4}, interface {})",
        lab.outside.name(),
        lab.outside_if
    );
    println!(
        "   target  namespace {} ({TARGET_V4}, interface {})",
        lab.target.name(),
        lab.target_if
    );
    print!(
        "== {}",
        synguard.run(&lab.target, &["attach", &lab.target_if, "--mode", "native"])?
    );

    let service = SocketAddr::new(IpAddr::V4(TARGET_V4), SERVICE_PORT);
    let _server = EchoServer::start(&lab.target, service)?;
    println!("== TCP echo service listening on {service} in the target namespace");

    let before = clients(&lab, service);
    report("legitimate clients, no flood", &before);
    let netstat_before = lab.target.netstat()?;

    let frames = packets::spoofed_syns(4096, IpAddr::V4(TARGET_V4), SERVICE_PORT, 0x5eed);
    let tx = RawSender::open(&lab.outside, &lab.outside_if)?;
    // A few malformed frames too, to show a drop: IPv4 headers cut short.
    let runt = Segment::syn(
        IpAddr::V4(OUTSIDE_V4),
        IpAddr::V4(TARGET_V4),
        40000,
        SERVICE_PORT,
    )
    .frame();
    for _ in 0..10 {
        tx.send(&runt[..L3 + 12])?;
    }
    println!(
        "== spoofed SYN flood: random sources in 198.19.0.0/16 -> {service}, at most {}s or {FLOOD_MAX_PACKETS} packets",
        FLOOD_DURATION.as_secs()
    );
    let ((sent, secs), during) = thread::scope(|s| {
        let flood = s.spawn(|| {
            let started = Instant::now();
            let sent = traffic::flood(&tx, &frames, FLOOD_DURATION, FLOOD_MAX_PACKETS);
            (sent, started.elapsed().as_secs_f64())
        });
        // Let the flood get going, then connect while it runs.
        thread::sleep(Duration::from_millis(200));
        let during = clients(&lab, service);
        (flood.join().expect("flood thread"), during)
    });
    println!(
        "   sent {sent} spoofed SYNs in {secs:.1}s ({:.0} packets/s)",
        sent as f64 / secs
    );
    report("legitimate clients during the flood", &during);

    println!("== synguard's counters (synguard stats)");
    print!("{}", synguard.run(&lab.target, &["stats"])?);
    let netstat = lab.target.netstat()?;
    println!("== the target kernel, growth of its TCP counters since the flood began");
    for (key, meaning) in [
        ("TcpExtListenOverflows", "accept queue overflows"),
        ("TcpExtListenDrops", "SYNs the listener dropped"),
        (
            "TcpExtSyncookiesSent",
            "cookies the kernel sent itself (SYNs before flood mode engaged)",
        ),
        ("TcpExtSyncookiesRecv", "cookie handshakes completed"),
        ("TcpExtSyncookiesFailed", "bad cookies that reached it"),
    ] {
        let grew =
            netstat.get(key).copied().unwrap_or(0) - netstat_before.get(key).copied().unwrap_or(0);
        println!("   {key:<24} +{grew:<9} {meaning}");
    }
    println!(
        "   spoofed SYNs: dropped over their source's budget (drop rate) or answered from XDP (tx syn_ack);"
    );
    println!(
        "   real clients: their cookie ACKs validated (pass valid_cookie) and accepted by the kernel"
    );
    println!("== tearing the lab down");
    drop(synguard);
    drop(lab);
    println!("   done: namespaces, veth pair and pins removed");
    Ok(())
}

fn clients(lab: &Lab, service: SocketAddr) -> ClientReport {
    traffic::run_clients(
        &lab.outside,
        service,
        LEGIT_CONNECTIONS,
        Duration::from_millis(20),
        Duration::from_secs(3),
    )
}

fn report(what: &str, r: &ClientReport) {
    let ms =
        |d: Option<Duration>| d.map_or("-".into(), |d| format!("{:.2} ms", d.as_secs_f64() * 1e3));
    println!(
        "== {what}: {}/{} connected and echoed ({:.1}%), connect p50 {} p99 {}",
        r.succeeded,
        r.attempted,
        100.0 * r.success_ratio(),
        ms(r.connect_quantile(0.5)),
        ms(r.connect_quantile(0.99)),
    );
    if let Some(first) = r.errors.first() {
        println!("   first failure: {first}");
    }
}
