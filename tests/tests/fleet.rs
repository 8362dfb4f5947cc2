//! Beyond one node, against real BGP speakers: synguard drives the node's
//! gobgpd, and a second gobgpd in a "router" namespace (the upstream) or a
//! route reflector shows what reached it.
//!
//! - A flood above the node's configured capacity climbs the ladder: the
//!   router gets a FlowSpec rule (TCP, SYN and not ACK, port 80,
//!   rate-limit), then RTBH (65535:666), for an IPv4 and an IPv6 target,
//!   and loses them after the flood and the hold-down.
//! - The guard rails (allowlist, protected prefixes, prefix length, count
//!   cap), `block --upstream`, the reconciliation after a crash, the
//!   withdrawal at a clean stop, and a dry run.
//! - Two nodes share a block through a route reflector: a `--share` on
//!   node A drops on node B, and stops dropping when A unblocks it or the
//!   entry expires on A.
//! - Frames lost before XDP alone (the target veth's rx_dropped, its
//!   XDP ring overflowing) escalate to FlowSpec, the SYN trigger out of
//!   reach and no SYN sent.
//! - A fleet rule counts, on the node that drops, exactly what it
//!   dropped (`list --json`, `/metrics`), a more specific entry inside it
//!   counting its own; a withdrawn rule's counter slot goes to the next
//!   rule from zero.
use std::{
    net::{IpAddr, SocketAddr},
    os::fd::AsFd,
    path::PathBuf,
    sync::Mutex,
    thread,
    time::{Duration, Instant},
};

use serde_json::Value;
use synguard_tests::{
    bench::cpu,
    bgp::{self, Gobgpd, Neighbor},
    http,
    lab::{self, Lab, TARGET_V4},
    netns::{Netns, unique_prefix},
    packets, rawbpf, require_root,
    synguard::{Daemon, Synguard},
    traffic::{self, RawSender},
};

/// One flood at a time: two on this 2-core machine would measure each other.
static FLOOD: Mutex<()> = Mutex::new(());

const METRICS: &str = "127.0.0.1:9720";
const SESSION_UP: Duration = Duration::from_secs(60);
/// RFC 7999 BLACKHOLE, 65535:666, as gobgp's JSON has it.
const BLACKHOLE: u64 = 0xFFFF_029A;
/// The fleet community of these tests, 65001:100.
const FLEET: u64 = 65001 << 16 | 100;

/// A directory for one test's config files, removed on drop.
struct ConfigDir(PathBuf);

impl ConfigDir {
    fn new() -> ConfigDir {
        let dir = std::env::temp_dir().join(format!("synguard-fleet-{}", unique_prefix()));
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

/// A config protecting the lab's target with `[bgp]` driving `speaker`;
/// `extra` goes at the end (more `[bgp...]` tables).
fn config(lab: &Lab, speaker: &Gobgpd, lists: &str, bgp: &str, extra: &str) -> String {
    format!(
        r#"
[[interface]]
name = "{iface}"
mode = "native"

[flood]
ports = [80]
syn_rate_on = 2000
syn_rate_off = 1000

[lists]
{lists}

[metrics]
listen = "{METRICS}"

[bgp]
enabled = true
api = "{api}"
{bgp}
{extra}
"#,
        iface = lab.target_if,
        api = speaker.api()
    )
}

fn start(synguard: &Synguard, ns: &Netns, config: &std::path::Path) -> Daemon {
    let mut daemon = synguard.daemon(ns, config).unwrap();
    daemon
        .wait_healthy(ns, METRICS.parse::<SocketAddr>().unwrap(), SESSION_UP)
        .unwrap_or_else(|e| panic!("{e:#}"));
    daemon
}

fn status(synguard: &Synguard, ns: &Netns) -> Value {
    let text = synguard.run(ns, &["--json", "status"]).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Polls `check` every 100 ms until it returns Some or `timeout` passes.
fn wait_for<T>(timeout: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check() {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// The lab, a router namespace linked to the target, a gobgpd on each side
/// (node AS65001, router AS65000) with IPv4 unicast and FlowSpec, the
/// session up.
struct Upstream {
    node: Gobgpd,
    router: Gobgpd,
    _rtr: Netns,
    lab: Lab,
}

fn upstream() -> Upstream {
    let lab = Lab::new().unwrap();
    let rtr = Netns::create(&format!("{}-rtr", unique_prefix())).unwrap();
    bgp::link(&lab.target, &rtr, "198.18.200").unwrap();
    // IPv6 rides the same (IPv4) session.
    let families = &[
        "ipv4-unicast",
        "ipv4-flowspec",
        "ipv6-unicast",
        "ipv6-flowspec",
    ];
    let router = Gobgpd::start(
        &rtr,
        65000,
        "198.18.200.2",
        &[Neighbor {
            address: "198.18.200.1".into(),
            asn: 65001,
            families,
            passive: true,
            rr_client: false,
        }],
    )
    .unwrap();
    let node = Gobgpd::start(
        &lab.target,
        65001,
        "198.18.200.1",
        &[Neighbor {
            address: "198.18.200.2".into(),
            asn: 65000,
            families,
            passive: false,
            rr_client: false,
        }],
    )
    .unwrap();
    router.wait_established(1, SESSION_UP).unwrap();
    Upstream {
        node,
        router,
        _rtr: rtr,
        lab,
    }
}

/// The router's FlowSpec path for destination `dst`, if it has one.
fn flowspec_to(router: &Gobgpd, dst: &str) -> Option<Value> {
    let family = if dst.contains(':') {
        "ipv6-flowspec"
    } else {
        "ipv4-flowspec"
    };
    router
        .rib(family)
        .into_iter()
        .find(|p| bgp::flowspec_component(p, 1).is_some_and(|c| c["prefix"] == dst))
}

/// The sources of the router's FlowSpec paths.
fn flowspec_sources(router: &Gobgpd) -> Vec<String> {
    let mut out: Vec<String> = router
        .rib("ipv4-flowspec")
        .iter()
        .filter_map(|p| bgp::flowspec_component(p, 2))
        .filter_map(|c| c["prefix"].as_str().map(String::from))
        .collect();
    out.sort();
    out
}

/// The router's unicast path for `prefix` with the BLACKHOLE community.
fn blackhole(router: &Gobgpd, prefix: &str) -> Option<Value> {
    let family = if prefix.contains(':') { "ipv6" } else { "ipv4" };
    router.rib(family).into_iter().find(|p| {
        bgp::prefix(p).as_deref() == Some(prefix) && bgp::communities(p).contains(&BLACKHOLE)
    })
}

#[test]
fn a_flood_the_node_cannot_take_escalates_to_flowspec_then_rtbh_then_withdraws() {
    require_root();
    let _one_at_a_time = FLOOD.lock().unwrap_or_else(|e| e.into_inner());
    let up = upstream();
    let lab = &up.lab;
    let synguard = Synguard::new(lab.target.name());
    let dir = ConfigDir::new();
    // The node "can take" 3000 SYN/s; the flood offers far more.
    let path = dir.write(
        "synguard.toml",
        &config(
            lab,
            &up.node,
            "",
            "",
            r#"
[bgp.escalation]
enabled = true
targets = ["198.18.0.2", "2001:2::2"]
capacity_syn_pps = 3000
sustain = "2s"
action = "rate-limit"
rate_bytes_per_second = 9600
rtbh = true
rtbh_after = "3s"
hold_down = "3s"
"#,
        ),
    );
    let mut daemon = start(&synguard, &lab.target, &path);
    let target = format!("{TARGET_V4}/32");
    assert!(
        flowspec_to(&up.router, &target).is_none() && blackhole(&up.router, &target).is_none(),
        "nothing is announced before the flood"
    );
    // The session negotiated FlowSpec, and status says so.
    let negotiated = wait_for(Duration::from_secs(10), || {
        let s = status(&synguard, &lab.target);
        let families = s["bgp"]["sessions"][0]["flowspec"].clone();
        families
            .as_array()
            .is_some_and(|f| f.iter().any(|x| x == "ipv4-flowspec"))
            .then_some(())
    });
    assert!(
        negotiated.is_some(),
        "status shows ipv4-flowspec negotiated with the router: {}",
        status(&synguard, &lab.target)["bgp"]
    );

    let frames = packets::spoofed_syns(8192, IpAddr::V4(TARGET_V4), 80, 0xf1ee7);
    let tx = RawSender::open(&lab.outside, &lab.outside_if).unwrap();
    let flood_for = Duration::from_secs(12);
    let started = Instant::now();
    let (sent, flowspec, (rtbh, v6)) = thread::scope(|s| {
        let flood = s.spawn(|| traffic::flood(&tx, &frames, flood_for, 50_000_000));
        let flowspec = wait_for(flood_for, || {
            flowspec_to(&up.router, &target).map(|p| (p, started.elapsed()))
        });
        let rtbh = wait_for(flood_for, || {
            blackhole(&up.router, &target).map(|p| (p, started.elapsed()))
        });
        // The IPv6 target climbs with the IPv4 one.
        let v6 = wait_for(Duration::from_secs(2), || {
            flowspec_to(&up.router, "2001:2::2/128").zip(blackhole(&up.router, "2001:2::2/128"))
        });
        (flood.join().unwrap(), flowspec, (rtbh, v6))
    });
    let ended = Instant::now();
    let (rule, flowspec_after) = flowspec.unwrap_or_else(|| {
        panic!(
            "the router got no FlowSpec rule for {target} during the flood; synguard log:\n{}",
            daemon.log()
        )
    });
    // The match: destination, TCP, port 80, SYN set AND ACK clear
    // (op 0x00 value SYN, then op 0xC2 = end|AND|NOT value ACK).
    assert_eq!(
        bgp::flowspec_component(&rule, 3).unwrap(),
        serde_json::json!([{"op": 129, "value": 6}]),
        "protocol == TCP: {rule}"
    );
    assert_eq!(
        bgp::flowspec_component(&rule, 5).unwrap(),
        serde_json::json!([{"op": 129, "value": 80}]),
        "destination port == 80: {rule}"
    );
    assert_eq!(
        bgp::flowspec_component(&rule, 9).unwrap(),
        serde_json::json!([{"op": 0, "value": 2}, {"op": 194, "value": 16}]),
        "tcp-flags SYN and not ACK: {rule}"
    );
    assert_eq!(
        bgp::traffic_rate(&rule),
        Some(9600.0),
        "rate-limit 9600 B/s: {rule}"
    );
    let (_, rtbh_after) = rtbh.unwrap_or_else(|| {
        panic!(
            "the router got no RTBH route for {target}; synguard log:\n{}",
            daemon.log()
        )
    });
    assert!(
        rtbh_after > flowspec_after,
        "RTBH came after FlowSpec had not relieved the node"
    );
    let (v6_rule, _) = v6.unwrap_or_else(|| {
        panic!(
            "the router got no IPv6 FlowSpec and RTBH for 2001:2::2; router:\n{}\nsynguard log:\n{}",
            up.router.log(),
            daemon.log()
        )
    });
    assert_eq!(
        bgp::flowspec_component(&v6_rule, 9).unwrap(),
        serde_json::json!([{"op": 0, "value": 2}, {"op": 194, "value": 16}]),
        "IPv6: tcp-flags SYN and not ACK: {v6_rule}"
    );

    // After the flood and the hold-down, both go.
    let gone = wait_for(Duration::from_secs(30), || {
        let none = |dst: &str| {
            flowspec_to(&up.router, dst).is_none() && blackhole(&up.router, dst).is_none()
        };
        (none(&target) && none("2001:2::2/128")).then(|| ended.elapsed())
    });
    let withdrawn_after = gone.unwrap_or_else(|| {
        panic!(
            "the router still has synguard's routes 30 s after the flood; status {}; log:\n{}",
            status(&synguard, &lab.target),
            daemon.log()
        )
    });
    println!(
        "sent {sent} SYNs; FlowSpec at the router {flowspec_after:?} after the flood began \
         (sustain 2 s), RTBH {rtbh_after:?} (rtbh_after 3 s); both withdrawn {withdrawn_after:?} \
         after it ended (hold-down 3 s)"
    );
    assert!(sent > 100_000, "the flood was a flood: {sent} frames");

    let s = status(&synguard, &lab.target);
    let recent: Vec<String> = s["bgp"]["recent"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            format!(
                "{} {}",
                e["change"].as_str().unwrap(),
                e["what"].as_str().unwrap()
            )
        })
        .collect();
    assert!(
        recent
            .iter()
            .any(|e| e.starts_with("announce flowspec to 198.18.0.2/32"))
            && recent
                .iter()
                .any(|e| e.starts_with("announce rtbh 198.18.0.2/32"))
            && recent
                .iter()
                .any(|e| e.starts_with("withdraw flowspec to 198.18.0.2/32"))
            && recent
                .iter()
                .any(|e| e.starts_with("withdraw rtbh 198.18.0.2/32")),
        "status lists each announcement and withdrawal: {recent:?}"
    );
    let (code, body) = http::get(&lab.target, METRICS.parse().unwrap(), "/metrics").unwrap();
    assert_eq!(code, 200);
    for (kind, change) in [
        ("flowspec", "announce"),
        ("flowspec", "withdraw"),
        ("rtbh", "announce"),
        ("rtbh", "withdraw"),
    ] {
        let n = http::sample(
            &body,
            "synguard_bgp_changes_total",
            &format!(r#"kind="{kind}",change="{change}",dry_run="false""#),
        )
        .unwrap_or_else(|e| panic!("{e}:\n{body}"));
        assert_eq!(n, 2.0, "{kind} {change} counted once per target");
    }
    assert_eq!(
        http::sample(
            &body,
            "synguard_bgp_session_up",
            r#"peer="198.18.200.2",asn="65000""#
        )
        .unwrap(),
        1.0
    );
    let log = daemon.log();
    assert!(log.contains("bgp: escalation local -> flowspec"), "{log}");
    assert!(log.contains("bgp: escalation rtbh -> local"), "{log}");
    daemon.signal(libc::SIGTERM);
    assert!(daemon.wait(Duration::from_secs(20)).is_some());
}

#[test]
fn guard_rails_reconciliation_clean_stop_and_dry_run() {
    require_root();
    let mut up = upstream();
    let lab = &up.lab;
    let t = &lab.target;
    let synguard = Synguard::new(t.name());
    let dir = ConfigDir::new();
    let path = dir.write(
        "synguard.toml",
        &config(
            lab,
            &up.node,
            r#"allow = ["198.19.5.0/25"]"#,
            r#"protected = ["198.19.9.0/24"]
max_announcements = 2
shortest_v4 = 20"#,
            "",
        ),
    );
    let mut daemon = start(&synguard, t, &path);
    for net in [
        "198.19.1.0/24",
        "198.19.2.0/24",
        "198.19.3.0/24",
        "198.19.5.0/24",
        "198.19.9.0/24",
        "198.19.32.0/19",
    ] {
        synguard
            .run(t, &["block", net, "--upstream"])
            .unwrap_or_else(|e| panic!("{e:#}"));
    }
    let want = vec!["198.19.1.0/24".to_string(), "198.19.2.0/24".to_string()];
    let got = wait_for(Duration::from_secs(10), || {
        let s = flowspec_sources(&up.router);
        (s == want).then_some(s)
    });
    assert!(
        got.is_some(),
        "the router has FlowSpec discards for the first two only: {:?}; log:\n{}",
        flowspec_sources(&up.router),
        daemon.log()
    );
    let rule = up.router.rib("ipv4-flowspec").into_iter().next().unwrap();
    assert_eq!(bgp::traffic_rate(&rule), Some(0.0), "discard: {rule}");
    let refused: Vec<String> = status(&synguard, t)["bgp"]["refused"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["why"].as_str().unwrap().to_string())
        .collect();
    for why in [
        "overlaps the allowlisted 198.19.5.0/25",
        "overlaps the protected prefix 198.19.9.0/24",
        "wider than /20",
        "max_announcements (2) reached",
    ] {
        assert!(
            refused.iter().any(|r| r.contains(why)),
            "status names the refusal {why:?}: {refused:?}"
        );
    }
    let text = synguard.run(t, &["status"]).unwrap();
    println!("{text}");
    for line in [
        "announced: flowspec from 198.19.1.0/24 discard",
        "refused: flowspec from 198.19.9.0/24 discard (198.19.9.0/24 overlaps the protected prefix",
        "session 198.18.200.2 AS65000 established, ipv4-flowspec",
    ] {
        assert!(text.contains(line), "status says {line:?}:\n{text}");
    }
    // Still refused a few seconds on: the guard holds on every tick.
    thread::sleep(Duration::from_secs(2));
    assert_eq!(flowspec_sources(&up.router), want);

    // gobgpd crashes and comes back with an empty RIB: synguard, which
    // reads it back every 10 s, announces its routes again.
    let crashed = Instant::now();
    up.node.crash_and_restart(t).unwrap();
    assert!(
        wait_for(Duration::from_secs(15), || flowspec_sources(&up.router)
            .is_empty()
            .then_some(()))
        .is_some(),
        "the router dropped the routes with the session"
    );
    up.router.wait_established(1, SESSION_UP).unwrap();
    let again = wait_for(Duration::from_secs(30), || {
        (flowspec_sources(&up.router) == want).then(|| crashed.elapsed())
    });
    let again = again.unwrap_or_else(|| {
        panic!(
            "after a gobgpd restart the router has {:?}; log:\n{}",
            flowspec_sources(&up.router),
            daemon.log()
        )
    });
    println!("routes back at the router {again:?} after gobgpd crashed and restarted");

    // A crash leaves the rules; the CLI unblocks one meanwhile; the next
    // daemon withdraws it and announces the one that now fits.
    daemon.signal(libc::SIGKILL);
    daemon.wait(Duration::from_secs(10)).expect("killed");
    synguard.run(t, &["unblock", "198.19.1.0/24"]).unwrap();
    assert_eq!(
        flowspec_sources(&up.router),
        want,
        "a crashed daemon's routes stay until a daemon reconciles"
    );
    let started = Instant::now();
    let mut daemon = start(&synguard, t, &path);
    let want = vec!["198.19.2.0/24".to_string(), "198.19.3.0/24".to_string()];
    let reconciled = wait_for(Duration::from_secs(15), || {
        (flowspec_sources(&up.router) == want).then(|| started.elapsed())
    });
    let reconciled = reconciled.unwrap_or_else(|| {
        panic!(
            "after the restart the router has {:?}, not {want:?}; log:\n{}",
            flowspec_sources(&up.router),
            daemon.log()
        )
    });
    println!("reconciled {reconciled:?} after the restart");
    assert!(
        daemon.log().contains("the speaker carries 2 route(s)"),
        "{}",
        daemon.log()
    );

    // A clean stop withdraws everything.
    daemon.signal(libc::SIGTERM);
    daemon.wait(Duration::from_secs(20)).expect("stopped");
    let gone = wait_for(Duration::from_secs(5), || {
        flowspec_sources(&up.router).is_empty().then_some(())
    });
    assert!(
        gone.is_some(),
        "a clean stop withdrew synguard's routes: {:?}",
        flowspec_sources(&up.router)
    );

    // A dry run logs and counts, and announces nothing.
    let dry = dir.write("dry.toml", &config(lab, &up.node, "", "dry_run = true", ""));
    let mut daemon = start(&synguard, t, &dry);
    let said = daemon.wait_for_log(
        "bgp: would announce flowspec from 198.19.2.0/24 discard",
        Duration::from_secs(10),
    );
    assert!(said, "{}", daemon.log());
    thread::sleep(Duration::from_secs(2));
    assert!(
        flowspec_sources(&up.router).is_empty(),
        "a dry run announces nothing"
    );
    let (_, body) = http::get(t, METRICS.parse().unwrap(), "/metrics").unwrap();
    let counted = http::sample(
        &body,
        "synguard_bgp_changes_total",
        r#"kind="upstream",change="announce",dry_run="true""#,
    )
    .unwrap();
    assert!(counted >= 2.0, "{body}");
    daemon.signal(libc::SIGTERM);
    daemon.wait(Duration::from_secs(20)).expect("stopped");
}

/// One fleet node: a lab, its gobgpd (AS65001) peered with the route
/// reflector, and synguard with `[bgp.fleet]`.
struct FleetNode {
    daemon: Daemon,
    synguard: Synguard,
    _speaker: Gobgpd,
    lab: Lab,
    _dir: ConfigDir,
}

/// Two fleet nodes peered with a route reflector, the sessions up; node B
/// has `b_lists` in `[lists]`.
struct Fleet {
    nodes: Vec<FleetNode>,
    rr: Gobgpd,
    _rr_ns: Netns,
}

fn two_nodes(b_lists: &str) -> Fleet {
    require_root();
    let rr_ns = Netns::create(&format!("{}-rr", unique_prefix())).unwrap();
    let labs = [Lab::new().unwrap(), Lab::new().unwrap()];
    let links = ["198.18.201", "198.18.202"];
    for (lab, net) in labs.iter().zip(links) {
        bgp::link(&lab.target, &rr_ns, net).unwrap();
    }
    let clients: Vec<Neighbor> = links
        .iter()
        .map(|net| Neighbor {
            address: format!("{net}.1"),
            asn: 65001,
            families: &["ipv4-unicast"],
            passive: true,
            rr_client: true,
        })
        .collect();
    let rr = Gobgpd::start(&rr_ns, 65001, "198.18.201.2", &clients).unwrap();
    let mut nodes = Vec::new();
    for (i, (lab, net)) in labs.into_iter().zip(links).enumerate() {
        let speaker = Gobgpd::start(
            &lab.target,
            65001,
            &format!("{net}.1"),
            &[Neighbor {
                address: format!("{net}.2"),
                asn: 65001,
                families: &["ipv4-unicast"],
                passive: false,
                rr_client: false,
            }],
        )
        .unwrap();
        let synguard = Synguard::new(lab.target.name());
        let dir = ConfigDir::new();
        let path = dir.write(
            "synguard.toml",
            &config(
                &lab,
                &speaker,
                if i == 1 { b_lists } else { "" },
                "",
                "[bgp.fleet]\nenabled = true\ncommunity = \"65001:100\"\n",
            ),
        );
        let daemon = start(&synguard, &lab.target, &path);
        nodes.push(FleetNode {
            daemon,
            synguard,
            _speaker: speaker,
            lab,
            _dir: dir,
        });
    }
    rr.wait_established(2, SESSION_UP).unwrap();
    Fleet {
        nodes,
        rr,
        _rr_ns: rr_ns,
    }
}

#[test]
fn a_block_shared_on_one_node_drops_on_another_until_withdrawn() {
    // Node B allowlists 198.19.77.0/24: the fleet never blocks it there.
    let fleet = two_nodes(r#"allow = ["198.19.77.0/24"]"#);
    let (rr, nodes) = (&fleet.rr, &fleet.nodes);
    let (a, b) = (&nodes[0], &nodes[1]);
    let (ta, tb) = (&a.lab.target, &b.lab.target);
    let source = "198.19.66.7".parse().unwrap();
    let drops = |n: &FleetNode| {
        n.synguard
            .settled_count(&n.lab.target, &n.lab.target_if, "drop", "blocklist")
            .unwrap()
    };
    b.lab.send_udp_from(source, 10);
    assert_eq!(drops(b), 0, "node B passes 198.19.66.7 before any share");

    let shared = Instant::now();
    a.synguard
        .run(ta, &["block", "198.19.77.0/24", "--share"])
        .unwrap();
    a.synguard
        .run(
            ta,
            &[
                "block",
                "198.19.66.0/24",
                "--share",
                "--comment",
                "seen on A",
            ],
        )
        .unwrap();
    let arrived = wait_for(Duration::from_secs(10), || {
        let listed = b.synguard.run(tb, &["list", "blocked"]).unwrap();
        listed
            .lines()
            .any(|l| l.starts_with("198.19.66.0/24") && l.contains("[fleet]"))
            .then(|| shared.elapsed())
    });
    let arrived = arrived.unwrap_or_else(|| {
        panic!(
            "node B did not install the shared block; B's log:\n{}\nA's log:\n{}",
            b.daemon.log(),
            a.daemon.log()
        )
    });
    let rr_paths = rr.rib("ipv4");
    assert!(
        rr_paths
            .iter()
            .any(|p| bgp::prefix(p).as_deref() == Some("198.19.66.0/24")
                && bgp::communities(p).contains(&FLEET)),
        "the route reflector carries the share with the fleet community: {rr_paths:?}"
    );
    b.lab.send_udp_from(source, 10);
    assert_eq!(drops(b), 10, "node B drops what node A blocked");
    let listed_b = b.synguard.run(tb, &["list", "blocked"]).unwrap();
    assert!(
        !listed_b.contains("198.19.77.0/24"),
        "the fleet never blocks what node B allowlists: {listed_b}"
    );
    assert!(
        b.daemon
            .log()
            .contains("not installed: fleet 198.19.77.0/24"),
        "{}",
        b.daemon.log()
    );
    let listed_a = a.synguard.run(ta, &["list", "blocked"]).unwrap();
    assert!(listed_a.contains("[shared]"), "{listed_a}");

    let unblocked = Instant::now();
    a.synguard.run(ta, &["unblock", "198.19.66.0/24"]).unwrap();
    let removed = wait_for(Duration::from_secs(10), || {
        let listed = b.synguard.run(tb, &["list", "blocked"]).unwrap();
        (!listed.contains("198.19.66.0/24")).then(|| unblocked.elapsed())
    });
    let removed = removed.unwrap_or_else(|| panic!("B kept it; log:\n{}", b.daemon.log()));
    b.lab.send_udp_from(source, 10);
    assert_eq!(drops(b), 10, "node B passes it again once A withdrew it");
    println!(
        "fleet: shared block dropping on B {arrived:?} after `block --share` on A; gone {removed:?} after `unblock`"
    );

    // A shared entry that expires on A leaves B too.
    a.synguard
        .run(ta, &["block", "198.19.88.0/24", "--share", "--for", "3s"])
        .unwrap();
    let on_b = |net: &str| {
        b.synguard
            .run(tb, &["list", "blocked"])
            .unwrap()
            .contains(net)
    };
    assert!(
        wait_for(Duration::from_secs(10), || on_b("198.19.88.0/24")
            .then_some(()))
        .is_some(),
        "B installed the expiring share; log:\n{}",
        b.daemon.log()
    );
    assert!(
        wait_for(Duration::from_secs(15), || (!on_b("198.19.88.0/24"))
            .then_some(()))
        .is_some(),
        "B dropped the share when it expired on A; A's log:\n{}",
        a.daemon.log()
    );
    assert!(
        a.daemon
            .log()
            .contains("bgp: withdraw share 198.19.88.0/24"),
        "{}",
        a.daemon.log()
    );
}

/// Node `n`'s blocklist entry `cidr` as `synguard --json list` shows it.
fn listed_entry(n: &FleetNode, cidr: &str) -> Option<Value> {
    let text = n
        .synguard
        .run(&n.lab.target, &["--json", "list", "blocked"])
        .unwrap();
    let entries: Value = serde_json::from_str(&text).unwrap();
    entries
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["cidr"] == cidr)
        .cloned()
}

/// What `synguard list --json` on node `n` says `cidr` dropped there.
fn entry_dropped(n: &FleetNode, cidr: &str) -> u64 {
    let entry = listed_entry(n, cidr).unwrap_or_else(|| panic!("{cidr} is not listed"));
    entry["dropped"]["packets"]
        .as_u64()
        .unwrap_or_else(|| panic!("{cidr} has no drop count: {entry}"))
}

/// Sends UDP frames from every address of `sources` (198.19.66.x) to
/// node `n`'s target, round-robin, for at most `duration` and `max`
/// frames; returns how many the target's blocklist dropped (the reason
/// counter's growth, once settled) and how many were sent.
fn flood_from(n: &FleetNode, sources: std::ops::Range<u8>, max: u64) -> (u64, u64) {
    let dropped = || {
        n.synguard
            .settled_count(&n.lab.target, &n.lab.target_if, "drop", "blocklist")
            .unwrap()
    };
    let before = dropped();
    let frames: Vec<Vec<u8>> = sources
        .map(|last| {
            let src = IpAddr::from([198, 19, 66, last]);
            packets::udp(src, TARGET_V4.into(), 4000, 9, b"flood")
        })
        .collect();
    let sender = RawSender::open(&n.lab.outside, &n.lab.outside_if).unwrap();
    let sent = traffic::flood(&sender, &frames, Duration::from_secs(2), max);
    (dropped() - before, sent)
}

#[test]
fn a_fleet_rule_counts_exactly_what_it_drops_on_each_node() {
    let _one_flood = FLOOD.lock().unwrap_or_else(|e| e.into_inner());
    let fleet = two_nodes("");
    let (a, b) = (&fleet.nodes[0], &fleet.nodes[1]);
    let (ta, tb) = (&a.lab.target, &b.lab.target);
    let metric = |prefix: &str, origin: &str| {
        let (_, body) = http::get(tb, METRICS.parse().unwrap(), "/metrics").unwrap();
        http::sample(
            &body,
            "synguard_blocklist_entry_dropped_packets_total",
            &format!(
                r#"device="{}",prefix="{prefix}",origin="{origin}""#,
                b.lab.target_if
            ),
        )
        .unwrap_or_else(|e| panic!("{e}:\n{body}")) as u64
    };

    // The fleet rule, shared by node A, learnt by node B.
    a.synguard
        .run(ta, &["block", "198.19.66.0/24", "--share"])
        .unwrap();
    let learnt = wait_for(Duration::from_secs(10), || {
        listed_entry(b, "198.19.66.0/24").filter(|e| e["origin"] == "bgp")
    });
    let learnt = learnt.unwrap_or_else(|| panic!("B did not learn it:\n{}", b.daemon.log()));
    let rule_slot = learnt["counter_slot"].as_u64().expect("a counted entry");
    assert_eq!(entry_dropped(b, "198.19.66.0/24"), 0);
    // A more specific entry inside it, B's own (shared too, so counted).
    b.synguard
        .run(tb, &["block", "198.19.66.128/25", "--share"])
        .unwrap();
    assert_eq!(entry_dropped(b, "198.19.66.128/25"), 0);

    // A flood from the rule's lower half (only the rule covers it), then
    // from the upper half (the /25, the longest prefix, covers it).
    let (low, low_sent) = flood_from(b, 1..128, 300_000);
    let (high, high_sent) = flood_from(b, 128..255, 100_000);
    println!(
        "fleet counters: {low} of {low_sent} frames dropped by the rule, {high} of {high_sent} by the /25 inside it"
    );
    assert!(
        low > 10_000 && high > 10_000,
        "a flood: {low}, {high} dropped"
    );
    assert!(low <= low_sent && high <= high_sent);
    assert_eq!(
        entry_dropped(b, "198.19.66.0/24"),
        low,
        "the rule counts exactly the drops it made"
    );
    assert_eq!(
        entry_dropped(b, "198.19.66.128/25"),
        high,
        "the /25 counts its own drops, not the rule's"
    );
    assert_eq!(metric("198.19.66.0/24", "bgp"), low);
    assert_eq!(metric("198.19.66.128/25", "cli"), high);
    let text = b.synguard.run(tb, &["list", "blocked"]).unwrap();
    let rule_line = text
        .lines()
        .find(|l| l.starts_with("198.19.66.0/24"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        rule_line.contains(&format!("dropped {low} packets here")),
        "`synguard list` says what the rule dropped: {rule_line}"
    );
    // Node A saw none of it.
    assert_eq!(entry_dropped(a, "198.19.66.0/24"), 0);

    // Withdrawn on A, gone on B with its series; its slot goes to the
    // next rule, which starts from zero.
    a.synguard.run(ta, &["unblock", "198.19.66.0/24"]).unwrap();
    assert!(
        wait_for(Duration::from_secs(10), || listed_entry(
            b,
            "198.19.66.0/24"
        )
        .is_none()
        .then_some(()))
        .is_some(),
        "B kept the withdrawn rule:\n{}",
        b.daemon.log()
    );
    let (_, body) = http::get(tb, METRICS.parse().unwrap(), "/metrics").unwrap();
    assert!(
        !body.contains(r#"prefix="198.19.66.0/24""#),
        "a withdrawn rule's series is gone:\n{body}"
    );
    a.synguard
        .run(ta, &["block", "198.19.99.0/24", "--share"])
        .unwrap();
    let next = wait_for(Duration::from_secs(10), || {
        listed_entry(b, "198.19.99.0/24").filter(|e| e["origin"] == "bgp")
    })
    .unwrap_or_else(|| panic!("B did not learn the next rule:\n{}", b.daemon.log()));
    assert_eq!(
        next["counter_slot"].as_u64(),
        Some(rule_slot),
        "the freed slot is given again"
    );
    assert_eq!(
        next["dropped"]["packets"], 0,
        "and starts from zero: {next}"
    );
    b.lab.send_udp_from("198.19.99.1".parse().unwrap(), 25);
    assert_eq!(entry_dropped(b, "198.19.99.0/24"), 25);
    assert_eq!(metric("198.19.99.0/24", "bgp"), 25);
}

/// The "drop" and "fifo" receive columns of `iface` in `ns`'s
/// /proc/net/dev, as the daemon sums them for `nic_drops_pps`.
fn rx_dropped(ns: &Netns, iface: &str) -> u64 {
    let text = ns
        .run(|| std::fs::read_to_string("/proc/thread-self/net/dev"))
        .unwrap();
    text.lines()
        .find_map(|l| {
            let (name, fields) = l.split_once(':')?;
            (name.trim() == iface).then(|| {
                let f: Vec<u64> = fields
                    .split_whitespace()
                    .filter_map(|x| x.parse().ok())
                    .collect();
                f[3] + f[4]
            })
        })
        .unwrap_or_else(|| panic!("no {iface} in {}'s /proc/net/dev", ns.name()))
}

/// Frames lost before XDP ran, for real: a live-frame XDP_TX on the
/// outside veth (net/bpf/test_run.c turns it into a redirect out of that
/// veth) puts frames into the target veth's 256-slot XDP ring faster than
/// the target's NAPI empties it, and drivers/net/veth.c `veth_xdp_xmit`
/// counts those that find the ring full in the target's rx_dropped
/// (`peer_tq_xdp_xmit_err`, `veth_get_stats64`), as a NIC counts frames
/// its full RX ring missed. The target's NAPI is a thread on a CPU of its
/// own (threaded NAPI, as the flood lab runs it): left in the softirq of
/// the sender's call it would empty the ring after every batch of 64, and
/// nothing would be lost (tried: 5.2 M frames, 0 lost). The frames are
/// UDP, never a SYN: the SYN trigger cannot fire, whatever its threshold.
#[test]
fn frames_lost_before_xdp_alone_escalate_to_flowspec() {
    require_root();
    let _one_at_a_time = FLOOD.lock().unwrap_or_else(|e| e.into_inner());
    let up = upstream();
    let lab = &up.lab;
    let synguard = Synguard::new(lab.target.name());
    let dir = ConfigDir::new();
    // The SYN trigger out of reach (and no SYN is sent); only the drops
    // before XDP can escalate.
    let path = dir.write(
        "synguard.toml",
        &config(
            lab,
            &up.node,
            "",
            "",
            r#"
[bgp.escalation]
enabled = true
targets = ["198.18.0.2"]
capacity_syn_pps = 1000000000
nic_drops_pps = 1000
sustain = "2s"
action = "discard"
hold_down = "3s"
"#,
        ),
    );
    let daemon = start(&synguard, &lab.target, &path);
    let target = format!("{TARGET_V4}/32");
    // Attached (native), so the target veth has its XDP ring and NAPI.
    for pid in cpu::threaded_napi(&lab.target, &lab.target_if).unwrap() {
        cpu::pin(pid, 1).unwrap();
    }
    let before = rx_dropped(&lab.target, &lab.target_if);
    let generator = rawbpf::load_return("nicdrop_tx", rawbpf::XDP_TX).unwrap();
    let frame = packets::udp(
        "198.18.0.1".parse().unwrap(),
        TARGET_V4.into(),
        4000,
        9,
        &[0x42; 64],
    );
    let ifindex = lab.outside.run(|| lab::if_index(&lab.outside_if));
    let flood_for = Duration::from_secs(10);
    let started = Instant::now();
    let stop = std::sync::atomic::AtomicBool::new(false);
    let (sent, flowspec) = thread::scope(|s| {
        let flood = s.spawn(|| {
            lab.outside.run(|| {
                cpu::pin_current(0).unwrap();
                let mut sent = 0u64;
                while started.elapsed() < flood_for
                    && !stop.load(std::sync::atomic::Ordering::Relaxed)
                {
                    if rawbpf::run_live(generator.as_fd(), &frame, ifindex, 1 << 18).is_ok() {
                        sent += 1 << 18;
                    }
                }
                sent
            })
        });
        let flowspec = wait_for(flood_for, || {
            flowspec_to(&up.router, &target).map(|p| (p, started.elapsed()))
        });
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        (flood.join().unwrap(), flowspec)
    });
    let lost = rx_dropped(&lab.target, &lab.target_if) - before;
    println!(
        "nic drops: {sent} frames offered, {lost} lost before XDP; FlowSpec after {:?}",
        flowspec.as_ref().map(|f| f.1)
    );
    assert!(
        lost > 5_000,
        "the target veth's rx_dropped grew by {lost} only ({sent} frames offered)"
    );
    let (rule, after) = flowspec.unwrap_or_else(|| {
        panic!(
            "no FlowSpec rule for {target} on the lost frames alone ({lost} lost); synguard log:\n{}",
            daemon.log()
        )
    });
    assert!(
        after >= Duration::from_secs(2),
        "announced after the 2 s it had to be sustained, not before: {after:?}"
    );
    assert!(
        daemon
            .log()
            .contains("dropped before XDP, above nic_drops_pps 1000"),
        "the log names the trigger:\n{}",
        daemon.log()
    );
    assert!(
        !daemon.log().contains("above capacity_syn_pps"),
        "the SYN trigger never fired:\n{}",
        daemon.log()
    );
    assert_eq!(
        bgp::traffic_rate(&rule),
        Some(0.0),
        "discard (rate 0): {rule}"
    );
    // No more lost frames: withdrawn after the hold-down.
    assert!(
        wait_for(Duration::from_secs(10), || flowspec_to(&up.router, &target)
            .is_none()
            .then_some(()))
        .is_some(),
        "the rule stayed after the drops stopped; synguard log:\n{}",
        daemon.log()
    );
}
