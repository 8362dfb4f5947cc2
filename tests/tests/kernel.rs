//! End-to-end on the host's kernel: `synguard status --json` and the
//! daemon's /metrics say what the kernel offers, found by probing, and
//! which mode synguard runs in because of it. The kernel matrix checks the
//! same against what happened on each Debian kernel (xtask/src/matrix).
use std::{net::SocketAddr, time::Duration};

use synguard_tests::{
    http,
    netns::{Netns, unique_prefix},
    require_root,
    synguard::Synguard,
};

const METRICS: &str = "127.0.0.1:9721";

fn status(synguard: &Synguard, ns: &Netns) -> serde_json::Value {
    let out = synguard.run(ns, &["--json", "status"]).expect("status");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

#[test]
fn status_reports_the_probed_features_and_the_mode_they_give() {
    require_root();
    let ns = Netns::create(&format!("{}-kst", unique_prefix())).expect("netns");
    let synguard = Synguard::new(ns.name());

    ns.set_sysctl("net.ipv4.tcp_timestamps", "2").unwrap();
    let s = status(&synguard, &ns);
    let kernel = &s["kernel"];
    // This kernel runs synguard (every other test says so): the probes
    // must find everything, and the trial load must pass.
    assert_eq!(kernel["program_loads"], true, "{kernel}");
    assert_eq!(kernel["missing"], serde_json::json!([]), "{kernel}");
    assert_eq!(kernel["mode"], "full", "{kernel}");
    let features = kernel["features"].as_array().expect("features");
    let names: Vec<&str> = features.iter().filter_map(|f| f["name"].as_str()).collect();
    for wanted in [
        "bpf_loop",
        "bpf_tcp_raw_gen_syncookie_ipv4",
        "map_lpm_trie_no_prealloc",
        "map_percpu_array",
        "map_array_mmapable",
        "xdp_frags",
        "xdp_link",
    ] {
        assert!(names.contains(&wanted), "{wanted} not probed: {names:?}");
    }
    for f in features {
        assert_eq!(f["present"], true, "{f}");
        assert!(f["since"].as_str().is_some_and(|s| s.contains('.')), "{f}");
    }
    // The data path's clock reads jiffies (its probe worked: no helper
    // call), at the kernel's tick: the coarse clock's resolution is
    // TICK_NSEC. Whether that clock is right shows in the SYN-ACKs'
    // timestamps (cookie.rs).
    let mut res = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_getres writes one timespec.
    assert_eq!(
        unsafe { libc::clock_getres(libc::CLOCK_MONOTONIC_COARSE, &mut res) },
        0
    );
    let tick_ns = res.tv_sec as u64 * 1_000_000_000 + res.tv_nsec as u64;
    let hz = (1_000_000_000 + tick_ns / 2) / tick_ns;
    assert_eq!(kernel["clock_hz"], hz, "{kernel}");

    // Timestamps with per-connection offsets: the same kernel, degraded.
    ns.set_sysctl("net.ipv4.tcp_timestamps", "1").unwrap();
    let s = status(&synguard, &ns);
    assert_eq!(s["kernel"]["mode"], "degraded", "{}", s["kernel"]);
    let why = s["kernel"]["mode_reason"].as_str().unwrap();
    assert!(why.contains("tcp_timestamps is 1, not 2"), "{why}");
    let text = synguard.run(&ns, &["status"]).unwrap();
    assert!(text.contains("synguard runs: DEGRADED"), "{text}");
    assert!(text.contains("XDP programs: load (trial load)"), "{text}");
    assert!(
        text.contains(&format!("data path clock: jiffies at HZ={hz}")),
        "{text}"
    );
}

#[test]
fn the_daemon_serves_the_probed_features_as_a_metric() {
    require_root();
    let ns = Netns::create(&format!("{}-kme", unique_prefix())).expect("netns");
    ns.set_sysctl("net.ipv4.tcp_timestamps", "1").unwrap();
    let dir = std::env::temp_dir().join(format!("synguard-kernel-{}", unique_prefix()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("synguard.toml");
    std::fs::write(&config, format!("[metrics]\nlisten = \"{METRICS}\"\n")).unwrap();
    let synguard = Synguard::new(ns.name());
    let mut daemon = synguard.daemon(&ns, &config).unwrap();
    let addr: SocketAddr = METRICS.parse().unwrap();
    daemon
        .wait_healthy(&ns, addr, Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("{e:#}"));
    // The probe runs once after start-up, off its path: wait for it.
    let feature = |body: &str, name: &str| {
        http::sample(
            body,
            "synguard_kernel_feature",
            &format!(r#"feature="{name}""#),
        )
        .ok()
    };
    let mut body = String::new();
    for _ in 0..600 {
        body = http::get(&ns, addr, "/metrics").expect("scrape").1;
        if feature(&body, "program_load").is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    for name in ["program_load", "xdp_link", "xdp_frags", "bpf_loop"] {
        assert_eq!(feature(&body, name), Some(1.0), "{name}:\n{body}");
    }
    // The daemon applied its default tcp_timestamps=2: read per scrape.
    assert_eq!(
        feature(&body, "tcp_timestamps_2"),
        Some(1.0),
        "{}",
        daemon.log()
    );
    assert_eq!(
        http::sample(&body, "synguard_kernel_mode", r#"mode="full""#).ok(),
        Some(1.0),
        "{body}"
    );
    daemon.signal(libc::SIGTERM);
    assert!(
        daemon
            .wait(Duration::from_secs(30))
            .is_some_and(|s| s.success()),
        "{}",
        daemon.log()
    );
    let _ = std::fs::remove_dir_all(&dir);
}
