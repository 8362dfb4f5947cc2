//! The shipped alert rules against a real scrape: the daemon runs in a lab
//! namespace; `promtool check metrics` (Debian's, put in place by `cargo
//! xtask setup`) lints what /metrics serves a scraper that does not ask for
//! OpenMetrics, Prometheus' own request gets OpenMetrics, every metric the
//! rules read is served, and an interface detached behind the daemon's back
//! shows as configured but not attached, the input of the
//! SynguardInterfaceDetached alert.
use std::{
    io::Write,
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Duration,
};

use synguard_tests::{http, lab::Lab, netns::unique_prefix, require_root, synguard::Synguard};

const METRICS: &str = "127.0.0.1:9720";
const RULES: &str = include_str!("../../packaging/prometheus/synguard.rules.yml");
/// What Prometheus 2.42 sends.
const PROMETHEUS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

fn promtool() -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/tools/promtool");
    assert!(
        path.exists(),
        "{} is missing: run `cargo xtask setup`",
        path.display()
    );
    path
}

/// A scratch directory, removed on drop (also when the test fails).
struct ScratchDir(PathBuf);

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `promtool check metrics` on `body`: its exit status and output.
fn check_metrics(body: &str) -> (bool, String) {
    let mut child = Command::new(promtool())
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running promtool");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The synguard_* metric names an expression text mentions.
fn metric_names(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("synguard_") {
        let name: String = rest[at..]
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || *c == '_')
            .collect();
        rest = &rest[at + name.len()..];
        if !names.contains(&name) {
            names.push(name);
        }
    }
    names
}

#[test]
fn a_real_scrape_passes_promtool_and_feeds_every_alert_rule() {
    require_root();
    let lab = Lab::new().unwrap();
    let t = &lab.target;
    let iface = &lab.target_if;
    let synguard = Synguard::new(t.name());
    let dir = ScratchDir(std::env::temp_dir().join(format!("synguard-alerts-{}", unique_prefix())));
    std::fs::create_dir_all(&dir.0).unwrap();
    let config = dir.0.join("synguard.toml");
    std::fs::write(
        &config,
        format!(
            "[[interface]]\nname = \"{iface}\"\nmode = \"native\"\n\n[metrics]\nlisten = \"{METRICS}\"\n"
        ),
    )
    .unwrap();
    let addr: SocketAddr = METRICS.parse().unwrap();
    let mut daemon = synguard.daemon(t, &config).unwrap();
    daemon
        .wait_healthy(t, addr, Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("{e:#}"));

    // Prometheus asks for OpenMetrics and gets it.
    let (status, openmetrics) =
        http::get_accepting(t, addr, "/metrics", Some(PROMETHEUS_ACCEPT)).unwrap();
    assert_eq!(status, 200, "{openmetrics}");
    assert!(openmetrics.ends_with("# EOF\n"), "{openmetrics}");
    assert!(
        openmetrics.contains("# TYPE synguard_packets counter\n"),
        "{openmetrics}"
    );

    // Anyone else gets the text format, which promtool lints clean.
    let (status, body) = http::get(t, addr, "/metrics").unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("# TYPE synguard_packets_total counter\n"),
        "{body}"
    );
    let (clean, said) = check_metrics(&body);
    assert!(clean && said.trim().is_empty(), "promtool: {said}\n{body}");
    // The lint can fail: a family without help text is reported.
    let (clean, said) = check_metrics(&format!("{body}synguard_undocumented 1\n"));
    assert!(
        !clean && said.contains("synguard_undocumented"),
        "promtool passed a family without help: {said}"
    );

    // Every metric the rules read is served (a counter's samples carry
    // `_total` in both formats).
    let served: Vec<&str> = body
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next())
        .collect();
    let used = metric_names(RULES);
    assert!(used.len() >= 6, "the rules read {used:?}");
    for name in &used {
        assert!(
            served.contains(&name.as_str()),
            "the alert rules read {name}, which /metrics does not serve"
        );
    }
    let labels = format!(r#"device="{iface}""#);
    assert_eq!(
        http::sample(&body, "synguard_configured", &labels).unwrap(),
        1.0
    );

    // Detached behind the daemon's back: still configured, no longer
    // attached, which is what SynguardInterfaceDetached joins on.
    synguard.run(t, &["detach", iface]).unwrap();
    let (_, body) = http::get(t, addr, "/metrics").unwrap();
    assert_eq!(
        http::sample(&body, "synguard_configured", &labels).unwrap(),
        1.0,
        "{body}"
    );
    assert!(
        !body
            .lines()
            .any(|l| l.starts_with(&format!("synguard_attached{{{labels}"))),
        "{body}"
    );
    let (status, _) = http::get(t, addr, "/healthz").unwrap();
    assert_eq!(status, 503);

    daemon.signal(libc::SIGTERM);
    assert!(
        daemon.wait(Duration::from_secs(30)).is_some(),
        "the daemon did not stop: {}",
        daemon.log()
    );
}
