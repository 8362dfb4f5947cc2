//! End-to-end tests of `synguard run`, the service: it applies its config
//! (sysctls, lists, interfaces) in the target namespace, serves /metrics
//! that a real HTTP scrape reads, reloads on SIGHUP (and refuses a broken
//! file), survives kill -9 with protection in place, and on a clean stop
//! detaches and restores the sysctls.
use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use synguard_tests::{
    http,
    lab::{Lab, TARGET_V4},
    netns::{Netns, unique_prefix},
    packets, require_root,
    synguard::{Daemon, Synguard},
    traffic::{self, EchoServer, RawSender},
};

const METRICS: &str = "127.0.0.1:9720";
const STARTUP: Duration = Duration::from_secs(60);

/// A directory for one test's config files, removed on drop.
struct ConfigDir(PathBuf);

impl ConfigDir {
    fn new() -> ConfigDir {
        let dir = std::env::temp_dir().join(format!("synguard-config-{}", unique_prefix()));
        std::fs::create_dir_all(&dir).unwrap();
        ConfigDir(dir)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }
}

impl Drop for ConfigDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A config protecting the lab's target interface, with `lists` as its
/// [lists] table body.
fn config(lab: &Lab, lists: &str) -> String {
    format!(
        r#"
[[interface]]
name = "{iface}"
mode = "native"

[lists]
{lists}

[metrics]
listen = "{METRICS}"
"#,
        iface = lab.target_if
    )
}

fn metrics_addr() -> SocketAddr {
    METRICS.parse().unwrap()
}

/// Waits for `/healthz` in `ns` to answer 200.
fn wait_healthy(ns: &Netns, daemon: &mut Daemon) {
    daemon
        .wait_healthy(ns, metrics_addr(), STARTUP)
        .unwrap_or_else(|e| panic!("{e:#}"));
}

fn scrape(ns: &Netns) -> String {
    let (status, body) = http::get(ns, metrics_addr(), "/metrics").expect("scrape /metrics");
    assert_eq!(status, 200, "{body}");
    body
}

fn blocklist_drops(body: &str, iface: &str) -> u64 {
    http::sample(
        body,
        "synguard_packets_total",
        &format!(r#"device="{iface}",verdict="drop",reason="blocklist""#),
    )
    .unwrap_or_else(|e| panic!("{e}:\n{body}")) as u64
}

/// Every metric the shipped Grafana dashboard queries is one the daemon
/// serves: with a sample now, or declared (`# TYPE`) and empty for now,
/// like the top prefixes over budget outside a flood.
fn dashboard_uses_only_exported_metrics(body: &str) {
    let dashboard = include_str!("../../packaging/grafana/synguard.json");
    let mut exported: Vec<String> = body
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_string)
        .collect();
    for line in body.lines() {
        if let Some(name) = line
            .strip_prefix("# TYPE ")
            .and_then(|l| l.split(' ').next())
        {
            exported.push(name.to_string());
            exported.push(format!("{name}_total"));
        }
    }
    let mut rest = dashboard;
    while let Some(at) = rest.find("synguard_") {
        let name: String = rest[at..]
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || *c == '_')
            .collect();
        assert!(
            exported.contains(&name),
            "the dashboard queries {name}, which /metrics does not serve"
        );
        rest = &rest[at + name.len()..];
    }
}

fn listed(synguard: &Synguard, ns: &Netns) -> String {
    synguard.run(ns, &["list", "blocked"]).unwrap()
}

#[test]
fn the_service_applies_serves_reloads_and_stops_cleanly() {
    require_root();
    let lab = Lab::new().unwrap();
    let synguard = Synguard::new(lab.target.name());
    let dir = ConfigDir::new();
    let t = &lab.target;
    // Values synguard's defaults change, so a restore is visible.
    for (key, value) in [
        ("net.ipv4.tcp_timestamps", "1"),
        ("net.core.somaxconn", "1024"),
        ("net.ipv4.tcp_max_syn_backlog", "512"),
    ] {
        t.set_sysctl(key, value).unwrap();
    }
    dir.write("more.txt", "# from a file\n198.18.6.7  # one host\n");
    let path = dir.write(
        "synguard.toml",
        &config(
            &lab,
            r#"block = ["198.18.5.0/24"]
block_files = ["more.txt"]"#,
        ),
    );
    let mut daemon = synguard.daemon(t, &path).unwrap();
    wait_healthy(t, &mut daemon);
    assert!(lab.target_has_xdp(), "the service attaches the program");

    // Sysctls applied, as read back from /proc/sys in the namespace.
    assert_eq!(t.sysctl("net.ipv4.tcp_timestamps").unwrap(), "2");
    assert_eq!(t.sysctl("net.core.somaxconn").unwrap(), "4096");
    assert_eq!(t.sysctl("net.ipv4.tcp_max_syn_backlog").unwrap(), "4096");
    assert_eq!(t.sysctl("net.ipv4.tcp_syncookies").unwrap(), "1");

    // A real scrape counts exactly the packets this test sent.
    let iface = &lab.target_if;
    let before = blocklist_drops(&scrape(t), iface);
    lab.send_udp_from(Ipv4Addr::new(198, 18, 5, 9), 37);
    lab.send_udp_from(Ipv4Addr::new(198, 18, 6, 7), 23);
    let body = scrape(t);
    assert_eq!(blocklist_drops(&body, iface) - before, 60, "{body}");
    for (name, labels, value) in [
        ("synguard_list_entries", r#"list="block""#, 2.0),
        ("synguard_list_index_ranges_in_tries", "", 0.0),
        (
            "synguard_attached",
            &format!(r#"device="{iface}",mode="native""#),
            1.0,
        ),
        ("synguard_sysctl", r#"name="net.ipv4.tcp_timestamps""#, 2.0),
        (
            "synguard_sysctl_desired",
            r#"name="net.core.somaxconn""#,
            4096.0,
        ),
        ("synguard_build_info", r#"version="0.1.0""#, 1.0),
    ] {
        assert_eq!(
            http::sample(&body, name, labels).unwrap(),
            value,
            "{name}{{{labels}}}"
        );
    }
    for name in [
        "synguard_kernel_listen_overflows_total",
        "synguard_kernel_listen_drops_total",
        "synguard_kernel_syncookies_sent_total",
        "synguard_kernel_syncookies_recv_total",
        "synguard_kernel_syncookies_failed_total",
    ] {
        http::sample(&body, name, "").unwrap();
    }
    http::sample(
        &body,
        "synguard_flood_active",
        &format!(r#"device="{iface}""#),
    )
    .unwrap();
    dashboard_uses_only_exported_metrics(&body);

    // An operator's timed block goes when its time is up; one without a
    // time stays through reloads.
    synguard
        .run(
            t,
            &[
                "block",
                "198.18.8.0/24",
                "--for",
                "2s",
                "--comment",
                "short",
            ],
        )
        .unwrap();
    synguard
        .run(t, &["block", "198.18.9.9", "--comment", "by hand"])
        .unwrap();
    let list = listed(&synguard, t);
    assert!(list.contains("198.18.8.0/24  expires in"), "{list}");
    assert!(list.contains("198.18.5.0/24  [config]"), "{list}");
    assert!(list.contains("198.18.9.9/32  # by hand"), "{list}");
    assert!(
        daemon.wait_for_log("198.18.8.0/24 expired", Duration::from_secs(15)),
        "{}",
        daemon.log()
    );
    assert!(!listed(&synguard, t).contains("198.18.8.0/24"));

    // A broken file on SIGHUP is refused; the running config stays.
    dir.write("synguard.toml", "[flood]\nmode = \"sometimes\"\n");
    daemon.signal(libc::SIGHUP);
    assert!(
        daemon.wait_for_log("reload refused", Duration::from_secs(15)),
        "{}",
        daemon.log()
    );
    assert!(
        daemon.log().contains("synguard.toml:2: key `flood.mode`"),
        "{}",
        daemon.log()
    );
    assert!(
        daemon.exited().is_none(),
        "a bad reload must not stop the daemon"
    );
    let before = blocklist_drops(&scrape(t), iface);
    lab.send_udp_from(Ipv4Addr::new(198, 18, 5, 9), 5);
    assert_eq!(
        blocklist_drops(&scrape(t), iface) - before,
        5,
        "old lists still enforced"
    );

    // A good file on SIGHUP takes effect: config entries follow the file,
    // the operator's entry stays.
    dir.write(
        "synguard.toml",
        &config(&lab, r#"block = ["198.18.7.0/24"]"#),
    );
    daemon.signal(libc::SIGHUP);
    assert!(
        daemon.wait_for_log("reloaded", Duration::from_secs(15)),
        "{}",
        daemon.log()
    );
    let list = listed(&synguard, t);
    assert!(list.contains("198.18.7.0/24"), "{list}");
    assert!(list.contains("198.18.9.9/32"), "{list}");
    assert!(
        !list.contains("198.18.5.0/24") && !list.contains("198.18.6.7"),
        "{list}"
    );
    let before = blocklist_drops(&scrape(t), iface);
    lab.send_udp_from(Ipv4Addr::new(198, 18, 5, 9), 4);
    lab.send_udp_from(Ipv4Addr::new(198, 18, 7, 1), 6);
    assert_eq!(blocklist_drops(&scrape(t), iface) - before, 6);

    // A clean stop detaches and restores what it changed.
    daemon.signal(libc::SIGTERM);
    let status = daemon
        .wait(Duration::from_secs(30))
        .expect("stops on SIGTERM");
    assert!(status.success(), "{status}:\n{}", daemon.log());
    assert!(!lab.target_has_xdp(), "a clean stop detaches");
    assert_eq!(t.sysctl("net.ipv4.tcp_timestamps").unwrap(), "1");
    assert_eq!(t.sysctl("net.core.somaxconn").unwrap(), "1024");
    assert_eq!(t.sysctl("net.ipv4.tcp_max_syn_backlog").unwrap(), "512");
    assert!(!synguard.state_dir().join("daemon.json").exists());
    let status = synguard.run(t, &["status"]).unwrap();
    assert!(status.contains("daemon: not running"), "{status}");
    // The lists stay, and so does the IPv4 index the data path reads.
    assert!(status.contains("IPv4 list index: "), "{status}");
    assert!(!status.contains("full:"), "{status}");
}

#[test]
fn kill_9_leaves_protection_in_place_and_a_new_daemon_adopts_it() {
    require_root();
    let lab = Lab::new().unwrap();
    let synguard = Synguard::new(lab.target.name());
    let dir = ConfigDir::new();
    let t = &lab.target;
    let path = dir.write(
        "synguard.toml",
        &config(&lab, r#"block = ["198.18.5.0/24"]"#),
    );
    let iface = lab.target_if.clone();
    let mut first = synguard.daemon(t, &path).unwrap();
    wait_healthy(t, &mut first);
    lab.send_udp_from(Ipv4Addr::new(198, 18, 5, 1), 10);

    // Killed in the middle of a spoofed SYN flood: the data path goes on
    // answering and dropping, and real clients still connect.
    let server_addr = SocketAddr::new(IpAddr::V4(TARGET_V4), 8080);
    let _server = EchoServer::start(t, server_addr).unwrap();
    let frames = packets::spoofed_syns(4096, IpAddr::V4(TARGET_V4), 8080, 7);
    let sender = RawSender::open(&lab.outside, &lab.outside_if).unwrap();
    let flooding = std::thread::spawn(move || {
        traffic::flood(&sender, &frames, Duration::from_secs(4), 5_000_000)
    });
    std::thread::sleep(Duration::from_millis(500));
    first.signal(libc::SIGKILL);
    first.wait(Duration::from_secs(10)).expect("killed");
    let handled = |synguard: &Synguard| {
        synguard.count(t, &iface, "tx", "syn_ack").unwrap()
            + synguard.count(t, &iface, "drop", "rate").unwrap()
    };
    let at_kill = handled(&synguard);
    let report = traffic::run_clients(
        &lab.outside,
        server_addr,
        20,
        Duration::from_millis(50),
        Duration::from_secs(5),
    );
    let sent = flooding.join().unwrap();
    let after = handled(&synguard);
    eprintln!(
        "flood across the kill: {sent} spoofed SYNs sent, {} handled by XDP after the kill, {}/20 clients",
        after - at_kill,
        report.succeeded
    );
    assert!(after > at_kill, "XDP kept answering and dropping the flood");
    assert!(
        report.succeeded >= 19,
        "clients during the flood: {:?}",
        report.errors
    );
    assert!(lab.target_has_xdp(), "the pinned link outlives the daemon");
    lab.send_udp_from(Ipv4Addr::new(198, 18, 5, 1), 10);
    assert_eq!(
        synguard.count(t, &iface, "drop", "blocklist").unwrap(),
        20,
        "still dropping with no daemon"
    );
    let status = synguard.run(t, &["status"]).unwrap();
    assert!(status.contains("exited without a clean stop"), "{status}");
    assert_eq!(
        t.sysctl("net.ipv4.tcp_timestamps").unwrap(),
        "2",
        "sysctls stay too"
    );

    let mut second = synguard.daemon(t, &path).unwrap();
    wait_healthy(t, &mut second);
    assert!(second.log().contains("adopted"), "{}", second.log());
    lab.send_udp_from(Ipv4Addr::new(198, 18, 5, 1), 10);
    // The counters were adopted with the program: nothing reset, nothing lost.
    assert_eq!(blocklist_drops(&scrape(t), &iface), 30);
    assert!(listed(&synguard, t).contains("198.18.5.0/24"));

    second.signal(libc::SIGTERM);
    assert!(
        second
            .wait(Duration::from_secs(30))
            .is_some_and(|s| s.success())
    );
    assert!(!lab.target_has_xdp());
}

/// Runs synguard in a fresh namespace and returns (exit code, stderr).
fn fails(synguard: &Synguard, ns: &Netns, args: &[&str]) -> (i32, String) {
    let out = synguard.output(ns, args).unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_bad_config_or_cidr_fails_naming_the_problem_and_touches_nothing() {
    require_root();
    let ns = Netns::create(&format!("{}-cfg", unique_prefix())).unwrap();
    let synguard = Synguard::new(ns.name());
    let dir = ConfigDir::new();
    let bad = dir.write(
        "bad.toml",
        "[[interface]]\nname = \"lo\"\n[flood]\nsyn_rate_on = 100\nsyn_rate_off = 500\n",
    );
    let bad = bad.to_str().unwrap();
    for args in [vec!["--config", bad, "run"], vec!["config", "check", bad]] {
        let (code, err) = fails(&synguard, &ns, &args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(
            err.contains("bad.toml:5: key `flood.syn_rate_off`"),
            "{err}"
        );
    }
    dir.write("list.txt", "203.0.113.0/24\n203.0.113.300\n");
    let listed = dir.write("listed.toml", "[lists]\nblock_files = [\"list.txt\"]\n");
    let (code, err) = fails(
        &synguard,
        &ns,
        &["config", "check", listed.to_str().unwrap()],
    );
    assert_eq!(code, 2);
    assert!(
        err.contains("list.txt:2:") && err.contains("not a CIDR"),
        "{err}"
    );

    let (code, err) = fails(&synguard, &ns, &["block", "203.0.113.0/33"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("is not a CIDR"), "{err}");
    let (code, err) = fails(&synguard, &ns, &["block", "203.0.113.7/24"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("did you mean 203.0.113.0/24"), "{err}");

    assert!(
        !synguard.pin_root().exists(),
        "a bad config touches nothing"
    );
    assert!(!Path::new(&synguard.state_dir().join("daemon.json")).exists());
}

/// `ip netns exec` runs its command in a mount namespace of its own, where
/// /sys/fs/bpf is an empty directory of the namespace's sysfs: a bpffs
/// synguard mounted there would go with the command, and the attachment
/// with it, after reporting success. synguard refuses, saying why, and
/// attaches nothing.
#[test]
fn attach_refuses_a_private_mount_namespace_without_bpffs() {
    require_root();
    let ns = Netns::create(&format!("{}-mnt", unique_prefix())).unwrap();
    let synguard = Synguard::new(ns.name());
    let out = Command::new("ip")
        .args(["netns", "exec", ns.name()])
        .arg(synguard.bin())
        .args(["attach", "lo", "--mode", "skb"])
        .env("SYNGUARD_PIN_ROOT", synguard.pin_root())
        .env("SYNGUARD_STATE_DIR", synguard.state_dir())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("not the host's") && err.contains("nsenter --net="),
        "{err}"
    );
    let link = ns
        .command("ip")
        .args(["link", "show", "lo"])
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&link.stdout).contains("xdp"),
        "nothing attached"
    );
}

#[test]
fn sysctl_apply_and_restore_round_trip() {
    require_root();
    let ns = Netns::create(&format!("{}-sys", unique_prefix())).unwrap();
    let synguard = Synguard::new(ns.name());
    let dir = ConfigDir::new();
    let path = dir.write(
        "synguard.toml",
        "[sysctl]\n\"net.ipv4.tcp_fin_timeout\" = 30\n\"net.ipv4.tcp_timestamps\" = \"keep\"\n",
    );
    let path = path.to_str().unwrap();
    ns.set_sysctl("net.ipv4.tcp_fin_timeout", "60").unwrap();
    ns.set_sysctl("net.ipv4.tcp_timestamps", "1").unwrap();
    ns.set_sysctl("net.core.somaxconn", "1000").unwrap();

    let out = synguard
        .run(&ns, &["--config", path, "sysctl", "apply"])
        .unwrap();
    assert!(out.contains("net.ipv4.tcp_fin_timeout: 60 -> 30"), "{out}");
    assert_eq!(ns.sysctl("net.ipv4.tcp_fin_timeout").unwrap(), "30");
    assert_eq!(ns.sysctl("net.core.somaxconn").unwrap(), "4096");
    assert_eq!(
        ns.sysctl("net.ipv4.tcp_timestamps").unwrap(),
        "1",
        "keep means keep"
    );

    // Drift: someone changes a value behind synguard's back.
    ns.set_sysctl("net.core.somaxconn", "128").unwrap();
    let show = synguard
        .run(&ns, &["--config", path, "sysctl", "show"])
        .unwrap();
    let line = show.lines().find(|l| l.contains("somaxconn")).unwrap();
    assert!(line.contains("drift"), "{show}");

    // A second apply keeps the first originals.
    synguard
        .run(&ns, &["--config", path, "sysctl", "apply"])
        .unwrap();
    let out = synguard
        .run(&ns, &["--config", path, "sysctl", "restore"])
        .unwrap();
    assert!(out.contains("restored"), "{out}");
    assert_eq!(ns.sysctl("net.ipv4.tcp_fin_timeout").unwrap(), "60");
    assert_eq!(ns.sysctl("net.core.somaxconn").unwrap(), "1000");
    let out = synguard
        .run(&ns, &["--config", path, "sysctl", "restore"])
        .unwrap();
    assert!(out.contains("nothing to restore"), "{out}");
}

#[test]
fn an_upgrade_carries_the_lists_of_an_older_map_layout_over_once() {
    use std::os::fd::AsFd;

    use aya::maps::{LpmTrie, Map, MapData, lpm_trie::Key};
    use synguard::pins::PinLayout;
    use synguard_common::maps;
    use synguard_tests::rawbpf;
    require_root();
    let lab = Lab::new().unwrap();
    let synguard = Synguard::new(lab.target.name());
    let dir = ConfigDir::new();
    let t = &lab.target;
    // The lists an older synguard left: the pins of layout v13, the last
    // whose tries held the expiry alone (a u64), made here as that
    // synguard made them, and filled the way it filled them.
    let older = PinLayout::of_version(synguard.pin_root(), 13);
    older.prepare().unwrap();
    let net = |s: &str| -> ipnet::IpNet { s.parse().unwrap() };
    let far = synguard::state::unix_now() + 3600;
    for (name, entries) in [
        (
            maps::BLOCK_V4,
            vec![("198.18.5.0/24", 0), ("198.18.6.0/24", 1)],
        ), // 1: expired
        (maps::BLOCK_V6, vec![("2001:2:0:5::/64", far)]),
        (maps::ALLOW_V4, vec![("198.18.0.9/32", 0)]),
    ] {
        let v4 = name.ends_with("V4");
        let trie = rawbpf::create_lpm_trie(if v4 { 4 } else { 16 }, 8, 1024).unwrap();
        let path = older.shared_map(name);
        rawbpf::pin(trie.as_fd(), &path).unwrap();
        for (cidr, expires) in entries {
            let map = Map::LpmTrie(MapData::from_pin(&path).unwrap());
            match net(cidr) {
                ipnet::IpNet::V4(n) => LpmTrie::<_, [u8; 4], u64>::try_from(map)
                    .unwrap()
                    .insert(
                        &Key::new(n.prefix_len().into(), n.addr().octets()),
                        expires,
                        0,
                    )
                    .unwrap(),
                ipnet::IpNet::V6(n) => LpmTrie::<_, [u8; 16], u64>::try_from(map)
                    .unwrap()
                    .insert(
                        &Key::new(n.prefix_len().into(), n.addr().octets()),
                        expires,
                        0,
                    )
                    .unwrap(),
            }
        }
    }
    // The IPv6 entry was shared (`block --share`): from this layout on,
    // its drops are counted per entry.
    let state = synguard::state::StateDir::new(synguard.state_dir());
    let mut meta = synguard::state::ListMeta::default();
    meta.block.insert(
        net("2001:2:0:5::/64"),
        synguard::state::EntryMeta {
            origin: synguard::state::Origin::Cli,
            comment: None,
            share: true,
            upstream: false,
        },
    );
    state.save_list_meta(&meta).unwrap();
    let path = dir.write("synguard.toml", &config(&lab, ""));
    let list = |which: &str| synguard.run(t, &["list", which]).unwrap();

    let mut daemon = synguard.daemon(t, &path).unwrap();
    wait_healthy(t, &mut daemon);
    assert!(
        daemon.wait_for_log("carried over from map layout v13", Duration::from_secs(5)),
        "{}",
        daemon.log()
    );
    let counted = |cidr: &str| {
        let text = synguard.run(t, &["--json", "list", "blocked"]).unwrap();
        let entries: serde_json::Value = serde_json::from_str(&text).unwrap();
        entries
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["cidr"] == cidr && e["counter_slot"].as_u64().is_some_and(|s| s > 0))
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !counted("2001:2:0:5::/64") && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        counted("2001:2:0:5::/64"),
        "the carried-over shared entry is counted: {}",
        daemon.log()
    );
    assert!(!counted("198.18.5.0/24"), "an operator's entry is not");
    let blocked = list("blocked");
    assert!(blocked.contains("198.18.5.0/24"), "{blocked}");
    assert!(blocked.contains("2001:2:0:5::/64"), "{blocked}");
    assert!(!blocked.contains("198.18.6.0/24"), "expired: {blocked}");
    assert!(list("allowed").contains("198.18.0.9/32"));
    // And they act: the carried-over block drops.
    lab.send_udp_from(Ipv4Addr::new(198, 18, 5, 1), 7);
    assert_eq!(
        synguard
            .count(t, &lab.target_if, "drop", "blocklist")
            .unwrap(),
        7
    );
    // Once: an entry removed after the import stays removed across a
    // restart.
    synguard.run(t, &["unblock", "198.18.5.0/24"]).unwrap();
    daemon.signal(libc::SIGTERM);
    assert!(
        daemon
            .wait(Duration::from_secs(30))
            .is_some_and(|s| s.success())
    );
    let mut daemon = synguard.daemon(t, &path).unwrap();
    wait_healthy(t, &mut daemon);
    assert!(!list("blocked").contains("198.18.5.0/24"));
    assert!(!daemon.log().contains("carried over"), "{}", daemon.log());
    daemon.signal(libc::SIGTERM);
    assert!(
        daemon
            .wait(Duration::from_secs(30))
            .is_some_and(|s| s.success())
    );
}

/// The XDP program id the kernel reports on the lab's target interface.
fn xdp_prog_id(lab: &Lab) -> u64 {
    let out = lab
        .target
        .command("ip")
        .args(["-d", "-j", "link", "show", "dev", &lab.target_if])
        .output()
        .expect("ip link show");
    let links: serde_json::Value = serde_json::from_slice(&out.stdout).expect("ip -j output");
    links[0]["xdp"]["prog"]["id"]
        .as_u64()
        .unwrap_or_else(|| panic!("no XDP program on {}: {links}", lab.target_if))
}

#[test]
fn dry_run_in_the_config_counts_would_drops_and_a_reload_arms_in_place() {
    require_root();
    let lab = Lab::new().unwrap();
    let synguard = Synguard::new(lab.target.name());
    let dir = ConfigDir::new();
    let t = &lab.target;
    let iface = &lab.target_if;
    let dry = config(&lab, r#"block = ["198.18.5.0/24"]"#)
        .replace("mode = \"native\"\n", "mode = \"native\"\ndry_run = true\n");
    assert!(dry.contains("dry_run = true"), "{dry}");
    let path = dir.write("synguard.toml", &dry);
    let mut daemon = synguard.daemon(t, &path).unwrap();
    wait_healthy(t, &mut daemon);
    let prog = xdp_prog_id(&lab);
    let would = |body: &str| {
        http::sample(
            body,
            "synguard_packets_total",
            &format!(r#"device="{iface}",verdict="would_drop",reason="blocklist""#),
        )
        .unwrap_or_else(|e| panic!("{e}:\n{body}")) as u64
    };
    lab.send_udp_from(Ipv4Addr::new(198, 18, 5, 9), 7);
    let body = scrape(t);
    assert_eq!(would(&body), 7, "{body}");
    assert_eq!(blocklist_drops(&body, iface), 0, "{body}");

    // Enforcing on reload: the same program, now dropping.
    dir.write(
        "synguard.toml",
        &dry.replace("dry_run = true", "dry_run = false"),
    );
    daemon.signal(libc::SIGHUP);
    assert!(
        daemon.wait_for_log("reloaded", Duration::from_secs(15)),
        "{}",
        daemon.log()
    );
    assert_eq!(xdp_prog_id(&lab), prog, "a reload never reattaches");
    lab.send_udp_from(Ipv4Addr::new(198, 18, 5, 9), 5);
    let body = scrape(t);
    assert_eq!(blocklist_drops(&body, iface), 5, "{body}");
    assert_eq!(would(&body), 7, "{body}");
}

#[test]
fn the_data_paths_events_and_decisions_reach_the_daemons_log() {
    require_root();
    let lab = Lab::new().unwrap();
    let synguard = Synguard::new(lab.target.name());
    let dir = ConfigDir::new();
    let t = &lab.target;
    let iface = lab.target_if.clone();
    let text = format!(
        "log_level = \"debug\"\n{}\n[flood]\nsyn_rate_on = 2000\nsyn_rate_off = 1000\nhold = \"1s\"\n",
        config(&lab, "")
    );
    let path = dir.write("synguard.toml", &text);
    let mut daemon = synguard.daemon(t, &path).unwrap();
    wait_healthy(t, &mut daemon);
    let _server = EchoServer::start(t, SocketAddr::new(IpAddr::V4(TARGET_V4), 80)).unwrap();
    let frames = packets::spoofed_syns(4096, IpAddr::V4(TARGET_V4), 80, 0x109);
    let tx = RawSender::open(&lab.outside, &lab.outside_if).unwrap();
    let sent = traffic::flood(&tx, &frames, Duration::from_secs(2), 200_000);
    assert!(sent > 2_000, "a flood: {sent}");
    for needle in [
        format!("{iface}: flood mode engaged: "),
        format!("{iface}: decision: "),
    ] {
        assert!(
            daemon.wait_for_log(&needle, Duration::from_secs(20)),
            "no {needle:?} in the daemon's log:\n{}",
            daemon.log()
        );
    }
    // Flood mode ends at a SYN once the hold (1 s) has passed without a
    // busy window; the first window after the flood still holds its
    // tail, so a trickle of SYNs for 2 s.
    std::thread::sleep(Duration::from_millis(1500));
    for frame in frames.iter().take(14) {
        tx.send(frame).unwrap();
        std::thread::sleep(Duration::from_millis(150));
    }
    let needle = format!("{iface}: flood mode ended: ");
    assert!(
        daemon.wait_for_log(&needle, Duration::from_secs(20)),
        "no {needle:?} in the daemon's log:\n{}",
        daemon.log()
    );
    // Decisions are sampled (1 in 100) and capped (100 lines a second):
    // a few seconds of flood give at most a few hundred lines.
    let decisions = daemon.log().matches(": decision: ").count();
    assert!(
        (1..=100 * 10).contains(&decisions),
        "{decisions} decisions logged in a few seconds"
    );
}

#[test]
fn a_dry_run_interface_blocks_no_source_over_budget_and_an_armed_one_does() {
    require_root();
    let lab = Lab::new().unwrap();
    let synguard = Synguard::new(lab.target.name());
    let dir = ConfigDir::new();
    let t = &lab.target;
    let text = |dry: bool| {
        format!(
            "{}\n[flood]\nmode = \"always\"\n\n[budgets]\nblock_over_budget_for = \"1m\"\n",
            config(&lab, "")
        )
        .replace(
            "mode = \"native\"\n",
            &format!("mode = \"native\"\ndry_run = {dry}\n"),
        )
    };
    let path = dir.write("synguard.toml", &text(true));
    let mut daemon = synguard.daemon(t, &path).unwrap();
    wait_healthy(t, &mut daemon);
    let _server = EchoServer::start(t, SocketAddr::new(IpAddr::V4(TARGET_V4), 80)).unwrap();
    // One source far over its budget (50 SYN/s, burst 100).
    let source = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 99));
    let frames: Vec<Vec<u8>> = (0..2000u16)
        .map(|i| packets::Segment::syn(source, IpAddr::V4(TARGET_V4), 10000 + i, 80).frame())
        .collect();
    let tx = RawSender::open(&lab.outside, &lab.outside_if).unwrap();
    let over_budget = |synguard: &Synguard| {
        synguard
            .settled_count(t, &lab.target_if, "would_drop", "rate")
            .unwrap()
            + synguard
                .settled_count(t, &lab.target_if, "drop", "rate")
                .unwrap()
    };
    traffic::flood(&tx, &frames, Duration::from_secs(1), 20_000);
    assert!(over_budget(&synguard) > 0, "the source went over budget");
    // The daemon looks once a second; give it three.
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        !listed(&synguard, t).contains("198.18.0.99"),
        "dry-run blocked nothing: {}",
        listed(&synguard, t)
    );
    // The dashboard's top prefixes: the source, with what it had dropped.
    let body = scrape(t);
    let top = http::samples(&body)
        .filter(|s| s.name == "synguard_over_budget_top_dropped")
        .find(|s| {
            s.labels
                .iter()
                .any(|(k, v)| *k == "prefix" && v.starts_with("198.18.0."))
        })
        .map(|s| s.value);
    assert!(
        top.is_some_and(|v| v > 0.0),
        "no top prefix for the source over budget:\n{body}"
    );

    dir.write("synguard.toml", &text(false));
    daemon.signal(libc::SIGHUP);
    assert!(
        daemon.wait_for_log("reloaded", Duration::from_secs(15)),
        "{}",
        daemon.log()
    );
    traffic::flood(&tx, &frames, Duration::from_secs(1), 20_000);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !listed(&synguard, t).contains("198.18.0.99") {
        assert!(
            std::time::Instant::now() < deadline,
            "armed, the source over budget was never blocked: {}\n{}",
            listed(&synguard, t),
            daemon.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
