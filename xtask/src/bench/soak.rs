//! The soak: the real daemon (`synguard run --config`, the release
//! binary) held for minutes under the strongest spoofed SYN flood the
//! bench's fastest generator makes, with real clients connecting steadily
//! through it and `/metrics` scraped while it lasts. It records what a
//! short flood cannot show: whether the daemon's memory grows, whether
//! its counters still add up with the kernel's after billions of frames,
//! whether scrapes stay quick under load, and whether it still stops
//! cleanly at the end.
//!
//! The lab is the flood lab's ([`super::flood::FloodLab`]: CPUs, NAPI
//! threads, backscatter filter, echo service), with the daemon in place
//! of a defence.
mod reconcile;
mod report;
mod wire;

use std::{
    collections::BTreeMap,
    net::{IpAddr, SocketAddr},
    path::Path,
    process::ExitStatus,
    sync::atomic::{AtomicBool, Ordering},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context, Result};
use synguard_tests::{
    bench::{
        cpu,
        generator::{Bounds, Flood, Generator, Sent},
    },
    http,
    lab::{Lab, TARGET_V4},
    synguard::{Daemon, Synguard},
};

use super::flood::{self, FloodLab, Guard, SERVICE_PORT, TARGET_CPU};
pub(super) use wire::{Link, parse_net_dev};
pub use wire::{Memory, Snapshot};

/// Where the daemon serves /metrics: loopback in the target namespace.
const METRICS: &str = "127.0.0.1:9720";
/// The longest soak `--soak-secs` accepts; no flood outlives it.
pub const MAX_SECS: u64 = 3600;
const STARTUP: Duration = Duration::from_secs(60);
const STOP: Duration = Duration::from_secs(30);

/// How long, and the steady load around the flood.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    /// How long real clients connect; the flood starts `warmup` before the
    /// first and stops when the last is done.
    pub secs: u64,
    /// Client connections per second, started whatever happens to the
    /// earlier ones (open loop).
    pub rate: u32,
    /// A client gives up after this (SYN retransmits at 1 s and 3 s).
    pub timeout: Duration,
    pub warmup: Duration,
    pub scrape_every: Duration,
}

impl Plan {
    pub fn new(secs: u64) -> Plan {
        Plan {
            secs,
            rate: 10,
            timeout: Duration::from_secs(3),
            warmup: Duration::from_secs(1),
            scrape_every: Duration::from_secs(5),
        }
    }

    fn connections(&self) -> u32 {
        (self.secs * u64::from(self.rate)) as u32
    }
}

/// One periodic look at the daemon while the flood runs.
#[derive(Debug)]
pub struct Sample {
    /// Since the flood started.
    pub at: Duration,
    pub memory: Option<Memory>,
    /// The scrape's latency, or why it failed.
    pub scrape: Result<Duration, String>,
    /// synguard_packets_total of the target by "verdict/reason" (empty if
    /// the scrape failed), flood mode, and the SYN cookies the target's
    /// kernel sent (synguard_kernel_syncookies_sent_total).
    pub packets: BTreeMap<String, u64>,
    pub flood_active: Option<bool>,
    pub kernel_cookies: Option<u64>,
}

/// How the daemon ended.
#[derive(Debug)]
pub struct Stop {
    /// None: still running `STOP` after SIGTERM (then killed).
    pub status: Option<ExitStatus>,
    pub took: Duration,
    /// XDP still on the target interface (`ip link`).
    pub xdp_left: bool,
    /// Pinned links still under the daemon's pin root.
    pub links_left: Vec<String>,
}

impl Stop {
    pub fn clean(&self) -> bool {
        self.status.is_some_and(|s| s.success()) && !self.xdp_left && self.links_left.is_empty()
    }
}

#[derive(Debug)]
pub struct Outcome {
    pub plan: Plan,
    pub generator: Generator,
    pub sent: Sent,
    /// Before the flood (daemon healthy) and after it (rings drained).
    pub start: Snapshot,
    pub end: Snapshot,
    pub samples: Vec<Sample>,
    /// Per client, in start order: (connect, whole echo) or the error.
    pub clients: Vec<Result<(Duration, Duration), String>>,
    /// CPU time of the target's NAPI thread during the flood.
    pub target_cpu: Duration,
    pub stop: Stop,
    /// The daemon's WARN and ERROR log lines.
    pub log_problems: Vec<String>,
    /// The config the daemon ran with.
    pub config: String,
}

/// The daemon's config: the lab's target interface in native mode,
/// metrics on loopback; every other key at its default.
fn config(iface: &str) -> String {
    format!(
        "# cargo xtask bench --only soak: the daemon's config for one run\n\
         [[interface]]\nname = \"{iface}\"\nmode = \"native\"\n\n\
         [metrics]\nlisten = \"{METRICS}\"\n"
    )
}

pub fn run(plan: &Plan, generator: Generator, bin: &Path, out_dir: &Path) -> Result<Outcome> {
    let metrics: SocketAddr = METRICS.parse().expect("a socket address");
    // Drop order (reverse of declaration): the daemon, its pins, the lab.
    let fl = FloodLab::new(Guard::Unguarded, bin)?;
    let lab = &fl.lab;
    let config = config(&lab.target_if);
    let config_path = out_dir.join("soak.toml");
    std::fs::write(&config_path, &config)
        .with_context(|| format!("writing {}", config_path.display()))?;
    let synguard = Synguard::with_binary(bin.to_path_buf(), lab.target.name());
    let mut daemon = synguard.daemon(&lab.target, &config_path)?;
    daemon.wait_healthy(&lab.target, metrics, STARTUP)?;
    let pid = daemon.pid();

    let flood = Flood::new(
        generator,
        &lab.outside,
        &lab.outside_if,
        TARGET_V4,
        SERVICE_PORT,
    )?;
    let service = SocketAddr::new(IpAddr::V4(TARGET_V4), SERVICE_PORT);
    let clients_plan = flood::Plan {
        connections: plan.connections(),
        rate: plan.rate,
        timeout: plan.timeout,
        warmup: plan.warmup,
        calibration: Duration::ZERO,
        rounds: 1,
    };
    let done = AtomicBool::new(false);
    // Bounded in time only: the clients' schedule, their last timeout and
    // a margin, and never beyond MAX_SECS.
    let bounds = Bounds {
        duration: (plan.warmup + Duration::from_secs(plan.secs) + plan.timeout)
            .min(Duration::from_secs(MAX_SECS))
            + Duration::from_secs(10),
        max_packets: u64::MAX,
        stop: &done,
    };

    let start = Snapshot::take(lab, metrics, pid).context("reading the counters before")?;
    let cpu_before = fl.target_cpu();
    let awake = cpu::KeepAwake::on(TARGET_CPU).context("keeping the target's CPU awake")?;
    let flood_started = Instant::now();
    let (sent, results, samples) = thread::scope(|s| {
        let flooding = s.spawn(|| flood::send_from_outside(lab, &flood, &bounds));
        let sampling = s.spawn(|| sample(lab, metrics, pid, plan, flood_started, &done));
        thread::sleep(plan.warmup);
        let results = flood::client_results(&lab.outside, service, &clients_plan);
        done.store(true, Ordering::Relaxed);
        (
            flooding.join().expect("flood thread"),
            results,
            sampling.join().expect("sampling thread"),
        )
    });
    // Let the rings drain before reading what everyone counted.
    thread::sleep(Duration::from_millis(200));
    drop(awake);
    let target_cpu = fl.target_cpu().saturating_sub(cpu_before);
    let end = Snapshot::take(lab, metrics, pid).context("reading the counters after")?;
    let stop = terminate(&mut daemon, &synguard, lab);
    let log_problems = daemon
        .log()
        .lines()
        .filter(|l| l.contains(" WARN ") || l.contains("ERROR "))
        .map(str::to_string)
        .collect();
    Ok(Outcome {
        plan: *plan,
        generator,
        sent,
        start,
        end,
        samples,
        clients: results
            .into_iter()
            .map(|r| r.map_err(|e| format!("{e:#}")))
            .collect(),
        target_cpu,
        stop,
        log_problems,
        config,
    })
}

/// Waits for `/healthz` to answer 200: every configured interface attached.
/// Every `plan.scrape_every` until `done`: a real scrape of /metrics (so
/// scraping is exercised under the flood) and the daemon's memory.
fn sample(
    lab: &Lab,
    metrics: SocketAddr,
    pid: u32,
    plan: &Plan,
    started: Instant,
    done: &AtomicBool,
) -> Vec<Sample> {
    let mut samples = Vec::new();
    let mut next = started;
    while !done.load(Ordering::Relaxed) {
        if Instant::now() < next {
            thread::sleep(Duration::from_millis(50));
            continue;
        }
        next += plan.scrape_every;
        let at = started.elapsed();
        let mut sample = Sample {
            at,
            memory: Memory::read(pid).ok(),
            scrape: Err(String::new()),
            packets: BTreeMap::new(),
            flood_active: None,
            kernel_cookies: None,
        };
        match wire::scrape(&lab.target, metrics) {
            Ok((body, took)) => {
                sample.scrape = Ok(took);
                sample.packets = wire::packets_by_verdict(&body, &lab.target_if);
                let iface = format!(r#"device="{}""#, lab.target_if);
                sample.flood_active = http::sample(&body, "synguard_flood_active", &iface)
                    .ok()
                    .map(|v| v > 0.0);
                sample.kernel_cookies =
                    http::sample(&body, "synguard_kernel_syncookies_sent_total", "")
                        .ok()
                        .map(|v| v as u64);
            }
            Err(e) => sample.scrape = Err(format!("{e:#}")),
        }
        samples.push(sample);
    }
    samples
}

/// SIGTERM, then what is left: the exit status, XDP on the interface,
/// pinned links.
fn terminate(daemon: &mut Daemon, synguard: &Synguard, lab: &Lab) -> Stop {
    let started = Instant::now();
    daemon.signal(libc::SIGTERM);
    let status = daemon.wait(STOP);
    let took = started.elapsed();
    let xdp_left = lab
        .target
        .command("ip")
        .args(["link", "show", "dev", &lab.target_if])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("xdp"))
        .unwrap_or(true);
    Stop {
        status,
        took,
        xdp_left,
        links_left: wire::pinned_links(synguard.pin_root()),
    }
}
