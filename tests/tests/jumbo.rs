//! End-to-end: an interface with a jumbo MTU. synguard's programs are
//! loaded with `xdp.frags`, so they attach in native mode on a veth at MTU
//! 9000 (the kernel refuses a program without it there) and see frames
//! that arrive in several buffers: data of established connections passes
//! whole (the IP length is checked against the whole frame, not its first
//! buffer), and SYNs are still answered from XDP in a flood.
use std::{
    net::{IpAddr, SocketAddr},
    time::Duration,
};

use synguard_tests::{
    lab::{Lab, TARGET_V4, TARGET_V6},
    require_root,
    synguard::Synguard,
    traffic::{EchoServer, echo_once, run_clients},
};

const MTU: &str = "9000";

#[test]
fn a_jumbo_mtu_veth_attaches_native_and_carries_large_frames() {
    require_root();
    let lab = Lab::new().expect("build the lab");
    lab.outside
        .ip(&["link", "set", "dev", &lab.outside_if, "mtu", MTU])
        .unwrap();
    lab.target
        .ip(&["link", "set", "dev", &lab.target_if, "mtu", MTU])
        .unwrap();
    // Cookies forced and timestamps without offsets: the cookie path
    // answers without a real flood, with options.
    lab.target
        .set_sysctl("net.ipv4.tcp_syncookies", "2")
        .unwrap();
    lab.target
        .set_sysctl("net.ipv4.tcp_timestamps", "2")
        .unwrap();
    let synguard = Synguard::new(lab.target.name());
    let out = synguard
        .run(&lab.target, &["attach", &lab.target_if, "--mode", "native"])
        .expect("native attach at MTU 9000");
    assert!(out.contains("native"), "{out}");
    let count = |verdict: &str, reason: &str| {
        synguard
            .settled_count(&lab.target, &lab.target_if, verdict, reason)
            .unwrap()
    };

    let payload: Vec<u8> = (0..256 * 1024).map(|i| (i % 251) as u8).collect();
    for ip in [IpAddr::V4(TARGET_V4), IpAddr::V6(TARGET_V6)] {
        let addr = SocketAddr::new(ip, 8080);
        let _server = EchoServer::start(&lab.target, addr).unwrap();
        echo_once(&lab.outside, addr, &payload, Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("256 KiB echoed over {addr} at MTU {MTU}: {e:#}"));
    }
    assert_eq!(
        count("drop", "malformed"),
        0,
        "no jumbo frame taken as malformed"
    );

    // In a flood: SYNs answered from XDP, the connections carry jumbo data.
    synguard
        .run(
            &lab.target,
            &["attach", &lab.target_if, "--flood", "always"],
        )
        .unwrap();
    let addr = SocketAddr::new(IpAddr::V4(TARGET_V4), 8081);
    let _server = EchoServer::start(&lab.target, addr).unwrap();
    let report = run_clients(
        &lab.outside,
        addr,
        5,
        Duration::ZERO,
        Duration::from_secs(5),
    );
    assert_eq!(report.succeeded, 5, "{:?}", report.errors);
    echo_once(&lab.outside, addr, &payload, Duration::from_secs(10)).unwrap();
    assert!(count("tx", "syn_ack") >= 6, "SYNs answered from XDP");
    assert_eq!(count("drop", "malformed"), 0);
}
