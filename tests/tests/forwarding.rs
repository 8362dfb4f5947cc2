//! End-to-end: synguard on a node that forwards. The lab's target is a
//! router (ip_forward=1) with a host behind it in a third namespace, and a
//! wildcard listener of its own on the port the host behind serves. With
//! flood mode forced on, SYNs for the host behind must be forwarded to it
//! (the kernel's choice), not answered by the router from XDP; SYNs for
//! the router itself still are. And the daemon follows addresses added and
//! removed while it runs.
use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    time::{Duration, Instant},
};

use synguard_tests::{
    lab::{Lab, OUTSIDE_V4, TARGET_V4, TARGET_V6},
    netns::{Netns, run_quiet, unique_prefix},
    packets::Segment,
    require_root,
    synguard::Synguard,
    traffic::{EchoServer, RawSender, run_clients},
};

const PORT: u16 = 8080;
const ROUTER_BEHIND_V4: Ipv4Addr = Ipv4Addr::new(198, 18, 10, 1);
const BEHIND_V4: Ipv4Addr = Ipv4Addr::new(198, 18, 10, 2);
const ROUTER_BEHIND_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0x10, 0, 0, 0, 1);
const BEHIND_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0x10, 0, 0, 0, 2);

/// The lab with the target as a router and a host behind it.
struct Routed {
    // Field order is drop order: detach, then the namespaces.
    synguard: Synguard,
    behind: Netns,
    lab: Lab,
}

impl Routed {
    fn new() -> Routed {
        require_root();
        let lab = Lab::new().expect("build the lab");
        let behind = Netns::create(&format!("{}-bh", unique_prefix())).expect("netns");
        let (router_if, behind_if) = (format!("{}r", lab.target_if), format!("{}b", lab.target_if));
        run_quiet(std::process::Command::new("ip").args([
            "link",
            "add",
            &router_if,
            "netns",
            lab.target.name(),
            "type",
            "veth",
            "peer",
            "name",
            &behind_if,
            "netns",
            behind.name(),
        ]))
        .expect("veth to the host behind");
        let t = &lab.target;
        t.ip(&[
            "addr",
            "add",
            &format!("{ROUTER_BEHIND_V4}/24"),
            "dev",
            &router_if,
        ])
        .unwrap();
        t.ip(&[
            "addr",
            "add",
            &format!("{ROUTER_BEHIND_V6}/64"),
            "dev",
            &router_if,
            "nodad",
        ])
        .unwrap();
        t.ip(&["link", "set", &router_if, "up"]).unwrap();
        t.set_sysctl("net.ipv4.ip_forward", "1").unwrap();
        t.set_sysctl("net.ipv6.conf.all.forwarding", "1").unwrap();
        // Cookies forced on the router: its listener would hand out one for
        // any SYN the data path asked it for.
        t.set_sysctl("net.ipv4.tcp_syncookies", "2").unwrap();
        let b = &behind;
        b.ip(&["addr", "add", &format!("{BEHIND_V4}/24"), "dev", &behind_if])
            .unwrap();
        b.ip(&[
            "addr",
            "add",
            &format!("{BEHIND_V6}/64"),
            "dev",
            &behind_if,
            "nodad",
        ])
        .unwrap();
        b.ip(&["link", "set", &behind_if, "up"]).unwrap();
        b.ip(&[
            "route",
            "add",
            "default",
            "via",
            &ROUTER_BEHIND_V4.to_string(),
        ])
        .unwrap();
        b.ip(&[
            "-6",
            "route",
            "add",
            "default",
            "via",
            &ROUTER_BEHIND_V6.to_string(),
        ])
        .unwrap();
        let o = &lab.outside;
        o.ip(&[
            "route",
            "add",
            "198.18.10.0/24",
            "via",
            &TARGET_V4.to_string(),
        ])
        .unwrap();
        o.ip(&[
            "-6",
            "route",
            "add",
            "2001:2:0:10::/64",
            "via",
            &TARGET_V6.to_string(),
        ])
        .unwrap();
        let synguard = Synguard::new(lab.target.name());
        Routed {
            synguard,
            behind,
            lab,
        }
    }

    fn count(&self, verdict: &str, reason: &str) -> u64 {
        self.synguard
            .settled_count(&self.lab.target, &self.lab.target_if, verdict, reason)
            .expect("synguard stats")
    }
}

#[test]
fn a_router_forwards_syns_for_the_host_behind_it_in_forced_flood_mode() {
    let r = Routed::new();
    let wildcard = SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), PORT);
    let _router_listener = EchoServer::start(&r.lab.target, wildcard).unwrap();
    let behind_v4 = SocketAddr::new(IpAddr::V4(BEHIND_V4), PORT);
    let behind_v6 = SocketAddr::new(IpAddr::V6(BEHIND_V6), PORT);
    let server_v4 = EchoServer::start(&r.behind, behind_v4).unwrap();
    let server_v6 = EchoServer::start(&r.behind, behind_v6).unwrap();
    let out = r
        .synguard
        .run(
            &r.lab.target,
            &[
                "attach",
                &r.lab.target_if,
                "--mode",
                "native",
                "--flood",
                "always",
            ],
        )
        .expect("synguard attach");
    assert!(out.contains("attached"), "{out}");

    // status says how the data path runs, for an interface the CLI attached.
    let status = r
        .synguard
        .run(&r.lab.target, &["--json", "status"])
        .unwrap();
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    let iface = &status["interfaces"][0];
    assert_eq!(iface["name"], r.lab.target_if.as_str(), "{status}");
    assert_eq!(iface["flood_policy"], "always", "{iface}");
    assert_eq!(iface["flood_active"], true, "{iface}");
    assert_eq!(iface["mode"], "native", "{iface}");
    // This kernel loads the program, by a trial load, not by its version.
    assert_eq!(status["kernel"]["program_loads"], true, "{status}");
    assert_eq!(status["kernel"]["missing_helpers"], serde_json::json!([]));

    for (addr, server) in [(behind_v4, &server_v4), (behind_v6, &server_v6)] {
        let report = run_clients(
            &r.lab.outside,
            addr,
            10,
            Duration::ZERO,
            Duration::from_secs(5),
        );
        assert_eq!(
            report.succeeded, 10,
            "through the router to {addr}: {:?}",
            report.errors
        );
        assert_eq!(server.accepted().len(), 10, "the host behind took them");
    }
    assert_eq!(
        r.count("tx", "syn_ack"),
        0,
        "the router answered none of them"
    );
    assert!(
        r.count("pass", "not_local") >= 20,
        "each counted as not_local"
    );

    // The router's own address: answered from XDP, the handshake completed
    // with the router's listener.
    let own = SocketAddr::new(IpAddr::V4(TARGET_V4), PORT);
    let report = run_clients(
        &r.lab.outside,
        own,
        5,
        Duration::ZERO,
        Duration::from_secs(5),
    );
    assert_eq!(report.succeeded, 5, "{:?}", report.errors);
    assert!(
        r.count("tx", "syn_ack") >= 5,
        "SYNs to the router's address answered"
    );
}

#[test]
fn the_daemon_follows_addresses_added_and_removed_while_attached() {
    let r = Routed::new();
    let wildcard = SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), PORT);
    let _listener = EchoServer::start(&r.lab.target, wildcard).unwrap();
    let dir = std::env::temp_dir().join(format!("synguard-fwd-{}", unique_prefix()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("synguard.toml");
    std::fs::write(
        &config,
        format!(
            "[[interface]]\nname = \"{}\"\nmode = \"native\"\n\n[flood]\nmode = \"always\"\n",
            r.lab.target_if
        ),
    )
    .unwrap();
    let mut daemon = r.synguard.daemon(&r.lab.target, &config).unwrap();
    let started = Instant::now();
    while !daemon.log().contains("ready:") {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{}",
            daemon.log()
        );
        assert!(daemon.exited().is_none(), "{}", daemon.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    let tx = RawSender::open(&r.lab.outside, &r.lab.outside_if).unwrap();
    let added = Ipv4Addr::new(198, 18, 0, 50);
    let mut sport = 41000;
    let mut send_syn = || {
        sport += 1;
        let frame = Segment::syn(IpAddr::V4(OUTSIDE_V4), IpAddr::V4(added), sport, PORT).frame();
        tx.send(&frame).unwrap();
    };
    // The daemon keeps tcp_syncookies=1, so the kernel hands out cookies
    // only once a listen queue overflows: until then a SYN for this host
    // goes to the kernel (`syn`). Either way, not `not_local`.
    let not_local = || r.count("pass", "not_local");
    let ours = || r.count("pass", "syn") + r.count("tx", "syn_ack");
    // Adds or deletes the address, and leaves the daemon a second to see it.
    let address = |verb: &str| {
        let cidr = format!("{added}/32");
        let args = ["addr", verb, &cidr, "dev", &r.lab.target_if];
        r.lab.target.ip(&args).unwrap();
        std::thread::sleep(Duration::from_secs(1));
    };
    send_syn();
    let (before, ours_before) = (not_local(), ours());
    assert!(before >= 1, "before: not local");

    address("add");
    send_syn();
    assert_eq!(
        (not_local(), ours()),
        (before, ours_before + 1),
        "added: ours within a second; log:\n{}",
        daemon.log()
    );

    address("del");
    send_syn();
    assert_eq!(
        (not_local(), ours()),
        (before + 1, ours_before + 1),
        "removed: not local within a second"
    );
    assert!(
        daemon.log().contains("198.18.0.50/32 local")
            && daemon.log().contains("198.18.0.50/32 no longer local"),
        "the log says what changed: {}",
        daemon.log()
    );
    daemon.signal(libc::SIGTERM);
    assert!(daemon.wait(Duration::from_secs(30)).is_some());
    let _ = std::fs::remove_dir_all(&dir);
}
