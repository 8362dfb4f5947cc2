//! Dry-run end to end: an interface attached with `--dry-run` passes what
//! it would drop or answer (real clients from a blocklisted source connect,
//! a spoofed flood reaches the listener) and counts it as `would_drop` and
//! `would_answer`; `synguard arm` then enforces with the same program and
//! link (no reattach), and `disarm` goes back.
use std::{
    net::{IpAddr, SocketAddr},
    time::Duration,
};

use synguard_tests::{
    lab::{Lab, OUTSIDE_V4, TARGET_V4},
    packets, require_root,
    synguard::Synguard,
    traffic::{self, EchoServer, RawSender, run_clients},
};

const PORT: u16 = 80;

/// The XDP program id the kernel reports on the interface, and the id of
/// synguard's pinned link, which `arm` must leave as they are.
fn attachment(lab: &Lab, synguard: &Synguard) -> (u64, u64) {
    let out = lab
        .target
        .command("ip")
        .args(["-d", "-j", "link", "show", "dev", &lab.target_if])
        .output()
        .expect("ip link show");
    let links: serde_json::Value = serde_json::from_slice(&out.stdout).expect("ip -j output");
    let prog = links[0]["xdp"]["prog"]["id"]
        .as_u64()
        .unwrap_or_else(|| panic!("no XDP program on {}: {links}", lab.target_if));
    let pin = std::fs::read_dir(synguard.pin_root())
        .expect("pin root")
        .flatten()
        .map(|v| v.path().join("ifaces").join(&lab.target_if).join("link"))
        .find(|p| p.exists())
        .expect("the pinned link");
    let out = std::process::Command::new("bpftool")
        .args(["-j", "link", "show", "pinned"])
        .arg(&pin)
        .output()
        .expect("bpftool link show");
    let link: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("bpftool output: {e}: {:?}", out));
    assert_eq!(link["prog_id"].as_u64(), Some(prog), "the link holds it");
    (prog, link["id"].as_u64().expect("link id"))
}

#[test]
fn dry_run_passes_and_counts_then_arming_enforces_without_reattach() {
    require_root();
    let lab = Lab::new().expect("build the lab");
    let synguard = Synguard::new(lab.target.name());
    let out = synguard
        .run(
            &lab.target,
            &[
                "attach",
                &lab.target_if,
                "--mode",
                "native",
                "--dry-run",
                "--syn-rate-on",
                "2000",
                "--syn-rate-off",
                "1000",
            ],
        )
        .expect("attach --dry-run");
    assert!(out.contains("dry-run"), "{out}");
    let attached = attachment(&lab, &synguard);
    // The kernel answers every SYN that reaches the listener with a
    // cookie, so its count of cookies sent counts the SYNs it got.
    lab.target
        .set_sysctl("net.ipv4.tcp_syncookies", "2")
        .unwrap();
    let status = synguard.run(&lab.target, &["status"]).unwrap();
    assert!(status.contains("DRY-RUN"), "status says so: {status}");
    let count = |verdict: &str, reason: &str| {
        synguard
            .settled_count(&lab.target, &lab.target_if, verdict, reason)
            .unwrap()
    };

    // The real clients' own address is blocklisted: in dry-run they connect.
    synguard
        .run(&lab.target, &["block", &OUTSIDE_V4.to_string()])
        .unwrap();
    let service = SocketAddr::new(IpAddr::V4(TARGET_V4), PORT);
    let _server = EchoServer::start(&lab.target, service).unwrap();
    let report = run_clients(
        &lab.outside,
        service,
        5,
        Duration::from_millis(10),
        Duration::from_secs(5),
    );
    assert_eq!(report.succeeded, 5, "dry-run passes: {:?}", report.errors);
    let would_block = count("would_drop", "blocklist");
    assert!(
        would_block >= 5 * 3,
        "every client packet counted as a would-be drop: {would_block}"
    );
    assert_eq!(count("drop", "blocklist"), 0, "nothing dropped");

    // A spoofed flood: detection engages, and the SYNs it would answer
    // reach the listener, which answers them itself.
    let before = lab.target.netstat().unwrap();
    let frames = packets::spoofed_syns(8192, IpAddr::V4(TARGET_V4), PORT, 0xd27);
    let tx = RawSender::open(&lab.outside, &lab.outside_if).unwrap();
    let sent = traffic::flood(&tx, &frames, Duration::from_secs(2), 400_000);
    let after = lab.target.netstat().unwrap();
    let delta =
        |key: &str| after.get(key).copied().unwrap_or(0) - before.get(key).copied().unwrap_or(0);
    let would_answer = count("would_answer", "syn_ack");
    println!(
        "dry-run: {sent} spoofed SYNs, {would_answer} would be answered, {} would be over budget; kernel: SyncookiesSent +{}",
        count("would_drop", "rate"),
        delta("TcpExtSyncookiesSent")
    );
    assert!(
        would_answer > 0,
        "flood mode engaged and counted its answers"
    );
    assert_eq!(count("tx", "syn_ack"), 0, "no SYN-ACK written in dry-run");
    // Every SYN counted as would-be answered reached the listener as it
    // came, and the kernel answered it (a few may be lost to its backlog).
    assert!(
        delta("TcpExtSyncookiesSent") * 100 >= would_answer * 95,
        "the flood's SYNs reached the listener, which answered them itself"
    );

    // Arm: a map write; the same program on the same link now drops.
    let out = synguard.run(&lab.target, &["arm", &lab.target_if]).unwrap();
    assert!(out.contains("now enforcing"), "{out}");
    assert_eq!(attachment(&lab, &synguard), attached, "no reattach");
    let report = run_clients(
        &lab.outside,
        service,
        2,
        Duration::from_millis(10),
        Duration::from_secs(1),
    );
    assert_eq!(report.succeeded, 0, "armed, the blocklisted clients fail");
    assert!(
        count("drop", "blocklist") >= 2,
        "and their SYNs are dropped"
    );
    let again = synguard.run(&lab.target, &["arm", &lab.target_if]).unwrap();
    assert!(again.contains("already enforcing"), "{again}");

    // And back, still without a reattach.
    let out = synguard
        .run(&lab.target, &["disarm", &lab.target_if])
        .unwrap();
    assert!(out.contains("now dry-run"), "{out}");
    assert_eq!(attachment(&lab, &synguard), attached, "no reattach");
    let dropped = count("drop", "blocklist");
    let report = run_clients(
        &lab.outside,
        service,
        2,
        Duration::from_millis(10),
        Duration::from_secs(5),
    );
    assert_eq!(report.succeeded, 2, "disarmed, they connect again");
    assert_eq!(count("drop", "blocklist"), dropped);
}

#[test]
fn arming_an_interface_synguard_is_not_attached_to_says_so() {
    require_root();
    let lab = Lab::new().expect("build the lab");
    let synguard = Synguard::new(lab.target.name());
    let out = synguard
        .output(&lab.target, &["arm", &lab.target_if])
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not attached to"), "{err}");
}
