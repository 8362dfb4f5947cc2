//! `cargo xtask demo`: synguard at work in a namespace lab. It builds the
//! binary, makes an outside and a target namespace joined by a veth pair,
//! runs the service (`synguard run` with a config protecting the target's
//! interface) in the target namespace, serves TCP there, runs real clients
//! before and during a short, bounded spoofed SYN flood, prints what synguard
//! counted and what a Prometheus scrape of it shows, stops the service (which
//! detaches and restores the sysctls), and tears everything down (also on
//! failure: Drop guards).
use std::{
    net::{IpAddr, SocketAddr},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use synguard_tests::{
    http,
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
    let config = std::env::temp_dir().join(format!("synguard-demo-{}.toml", lab.target.name()));
    std::fs::write(
        &config,
        format!(
            "# The demo's config: protect the target's interface, block one\n\
             # documentation range, serve metrics on the namespace's loopback.\n\
             [[interface]]\nname = \"{}\"\nmode = \"native\"\n\n\
             [lists]\nblock = [\"198.18.99.0/24\"]\n\n\
             [metrics]\nlisten = \"{METRICS}\"\n",
            lab.target_if
        ),
    )?;
    let _config_file = RemoveOnDrop(config.clone());
    println!(
        "== synguard run --config {} (in the target namespace)",
        config.display()
    );
    let mut daemon = synguard.daemon(&lab.target, &config)?;
    daemon.wait_healthy(&lab.target, METRICS.parse()?, Duration::from_secs(60))?;
    for line in daemon.log().lines() {
        println!("   {}", strip_timestamp(line));
    }

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
    println!("== a Prometheus scrape of http://{METRICS}/metrics (a selection)");
    let (_, body) = http::get(&lab.target, METRICS.parse()?, "/metrics")?;
    for line in body.lines().filter(|l| {
        !l.starts_with('#')
            && (l.starts_with("synguard_flood_active")
                || l.starts_with("synguard_syn_acks_sent")
                || l.starts_with("synguard_cookie_acks")
                || l.starts_with("synguard_kernel_listen")
                || l.starts_with("synguard_kernel_syncookies")
                || l.starts_with("synguard_list_entries"))
    }) {
        println!("   {line}");
    }
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
    println!("== stopping the service (SIGTERM)");
    let seen = daemon.log().len();
    daemon.signal(libc::SIGTERM);
    let status = daemon
        .wait(Duration::from_secs(30))
        .context("synguard run did not stop")?;
    for line in daemon.log()[seen..].lines() {
        println!("   {}", strip_timestamp(line));
    }
    if !status.success() {
        bail!("synguard run exited with {status}");
    }
    println!("== tearing the lab down");
    drop(daemon);
    drop(synguard);
    drop(lab);
    println!("   done: namespaces, veth pair and pins removed");
    Ok(())
}

/// Where the demo's service serves /metrics, in the target namespace.
const METRICS: &str = "127.0.0.1:9720";

/// A log line without its timestamp, for a readable demo.
fn strip_timestamp(line: &str) -> &str {
    match line.split_once("Z ") {
        Some((stamp, rest)) if stamp.len() < 40 => rest.trim_start(),
        _ => line,
    }
}

struct RemoveOnDrop(std::path::PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
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
