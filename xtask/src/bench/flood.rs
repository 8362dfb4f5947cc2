//! The end-to-end flood lab: for each defence, a fresh namespace lab, a
//! real TCP echo service on the target, a bounded spoofed SYN flood from
//! the outside at the generator's full rate, and real clients connecting at
//! a fixed rate through it.
//!
//! CPU placement (see `synguard_tests::bench::cpu`): the generator and the
//! outside veth's NAPI thread run on CPU 0; the target veth's NAPI thread,
//! which runs the target's whole receive path (XDP, IP, TCP, netfilter), on
//! CPU 1. Its CPU time per flood packet is the target-side cost.
use std::{
    collections::BTreeMap,
    net::{IpAddr, SocketAddr},
    os::fd::{AsFd, OwnedFd},
    sync::atomic::{AtomicBool, Ordering},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context, Result};
use synguard_tests::{
    bench::{
        cpu,
        generator::{self, Bounds, Flood, Generator, Sent},
    },
    lab::{Lab, TARGET_V4},
    netns::Netns,
    rawbpf as bpf,
    synguard::Synguard,
    traffic::{self, ClientReport, EchoServer},
};

use super::defence::Defence;

pub const SERVICE_PORT: u16 = 80;
/// CPUs: the attacker's side and the target's.
pub const ATTACKER_CPU: usize = 0;
pub const TARGET_CPU: usize = 1;
/// No flood outlives this, whatever the plan says.
const MAX_FLOOD: Duration = Duration::from_secs(60);
const MAX_PACKETS: u64 = 100_000_000;

/// How long and how hard: the legitimate load and the flood around it.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    /// Real client connections, started at `rate` per second whatever
    /// happens to the earlier ones (open loop).
    pub connections: u32,
    pub rate: u32,
    /// A client gives up after this (SYN retransmits at 1 s and 3 s).
    pub timeout: Duration,
    /// Flood before the first client connects.
    pub warmup: Duration,
    /// Length of each generator's calibration run.
    pub calibration: Duration,
    /// Runs per defence (interleaved: a, b, c, a, b, c, ...).
    pub rounds: usize,
}

/// What real clients saw: the lab's report (connect times of those that
/// connected and got their bytes echoed back), and for each of those the
/// time from connect() to the whole echo back.
#[derive(Debug, Default)]
pub struct Legit {
    pub clients: ClientReport,
    pub echo: ClientReport,
}

/// One defence under one flood.
#[derive(Debug)]
pub struct Outcome {
    pub defence: Defence,
    pub generator: Generator,
    pub sent: Sent,
    /// Flood frames the target's receive path took in (the rest were lost
    /// on the veth ring before the target could look at them).
    pub absorbed: u64,
    /// CPU time of the target's NAPI thread during the flood.
    pub target_cpu: Duration,
    pub legit: Legit,
    /// Growth of the target kernel's TCP counters.
    pub kernel: BTreeMap<String, u64>,
    /// synguard's counters (verdict/reason -> packets), when it ran.
    pub synguard: BTreeMap<String, u64>,
}

impl Outcome {
    pub fn absorbed_pps(&self) -> f64 {
        self.absorbed as f64 / self.sent.elapsed.as_secs_f64().max(1e-9)
    }

    /// Target CPU per million absorbed flood packets, in milliseconds
    /// (numerically, nanoseconds per packet).
    pub fn cpu_ms_per_million(&self) -> Option<f64> {
        cpu_ms_per_million(self.target_cpu, self.absorbed)
    }
}

/// `cpu` per million of `frames`, in ms (numerically, ns a frame); none
/// without frames.
fn cpu_ms_per_million(cpu: Duration, frames: u64) -> Option<f64> {
    (frames > 0).then(|| cpu.as_secs_f64() * 1e3 / (frames as f64 / 1e6))
}

const KERNEL_COUNTERS: [&str; 6] = [
    "TcpExtListenOverflows",
    "TcpExtListenDrops",
    "TcpExtSyncookiesSent",
    "TcpExtSyncookiesRecv",
    "TcpExtSyncookiesFailed",
    "TcpExtTCPReqQFullDrop",
];

/// The target kernel's TCP counters, and netfilter synproxy's
/// (/proc/net/stat/synproxy: one line per CPU, hex; it counts in
/// netfilter, not in the TCP MIB).
fn kernel_counters(ns: &Netns) -> Result<BTreeMap<String, u64>> {
    let netstat = ns.netstat()?;
    let mut out: BTreeMap<String, u64> = KERNEL_COUNTERS
        .iter()
        .map(|k| (k.to_string(), netstat.get(*k).copied().unwrap_or(0)))
        .collect();
    if let Ok(text) = ns.run(|| std::fs::read_to_string("/proc/thread-self/net/stat/synproxy")) {
        let mut lines = text.lines();
        let names: Vec<&str> = lines
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .collect();
        for line in lines {
            for (name, value) in names.iter().zip(line.split_whitespace()) {
                if *name != "entries"
                    && let Ok(v) = u64::from_str_radix(value, 16)
                {
                    *out.entry(format!("synproxy_{name}")).or_default() += v;
                }
            }
        }
    }
    Ok(out)
}

/// What holds the target's interface in a flood lab.
pub enum Guard {
    /// XDP_DROP on every frame, unread: what the generators are measured
    /// against.
    DropAll,
    /// One of the defences the flood lab compares, or its floor
    /// (`Defence::Floor`).
    Defence(Defence),
    /// Nothing yet: the caller attaches its own (the soak starts the
    /// daemon).
    Unguarded,
}

/// A lab ready for a flood: namespaces, NAPI threads on their CPUs, the
/// backscatter route, and a service on the target.
pub struct FloodLab {
    // Field order is drop order: server, programs and synguard before the
    // namespaces.
    _server: EchoServer,
    _drop_all: Option<OwnedFd>,
    synguard: Option<Synguard>,
    target_napi: Vec<u32>,
    pub lab: Lab,
}

impl FloodLab {
    pub fn new(guard: Guard, synguard_bin: &std::path::Path) -> Result<FloodLab> {
        let lab = Lab::new().context("building the namespace lab")?;
        filter_backscatter(&lab)?;
        let (synguard, drop_all) = match guard {
            Guard::DropAll => (None, Some(drop_all(&lab, false)?)),
            Guard::Defence(Defence::Floor) => (None, Some(drop_all(&lab, true)?)),
            Guard::Defence(d) => (d.configure(&lab, synguard_bin)?, None),
            Guard::Unguarded => (None, None),
        };
        // The target's receive path runs ahead of ordinary tasks, as it
        // would in softirq context, and on a CPU of its own: this is a
        // shared machine, and a NAPI thread that waits for a compiler's
        // time slice lets its ring overflow for reasons that are not the
        // defence's. (The kernel's RT throttling still leaves 5% to others.)
        let target_napi = cpu::threaded_napi(&lab.target, &lab.target_if)?;
        for &pid in &target_napi {
            cpu::pin(pid, TARGET_CPU).context("pinning the target's NAPI thread")?;
            cpu::realtime(pid, 10).context("raising the target's NAPI thread")?;
        }
        // The outside's receive work (backscatter, and the real clients'
        // SYN-ACKs) preempts the generator: the attacker's CPU is not what
        // the lab measures, and a client's answer must not be lost there.
        for pid in cpu::threaded_napi(&lab.outside, &lab.outside_if)? {
            cpu::pin(pid, ATTACKER_CPU).context("pinning the outside's NAPI thread")?;
            cpu::realtime(pid, 10).context("raising the outside's NAPI thread")?;
        }
        let service = SocketAddr::new(IpAddr::V4(TARGET_V4), SERVICE_PORT);
        let server = EchoServer::start(&lab.target, service)?;
        Ok(FloodLab {
            _server: server,
            _drop_all: drop_all,
            synguard,
            target_napi,
            lab,
        })
    }

    /// Runs `flood` with the target's CPU kept awake, and returns what it
    /// returned, the frames the target took off its ring meanwhile and its
    /// NAPI thread's CPU time, read once the ring has drained.
    pub fn measure<T>(&self, flood: impl FnOnce() -> T) -> Result<(T, u64, Duration)> {
        let rx_before = rx_packets(&self.lab.target, &self.lab.target_if)?;
        let cpu_before = self.target_cpu();
        let awake = cpu::KeepAwake::on(TARGET_CPU).context("keeping the target's CPU awake")?;
        let out = flood();
        thread::sleep(Duration::from_millis(100));
        drop(awake);
        let cpu = self.target_cpu().saturating_sub(cpu_before);
        let absorbed = rx_packets(&self.lab.target, &self.lab.target_if)? - rx_before;
        Ok((out, absorbed, cpu))
    }

    pub fn target_cpu(&self) -> Duration {
        self.target_napi
            .iter()
            .filter_map(|&pid| cpu::task_cpu(pid).ok())
            .sum()
    }
}

/// SYN-ACKs to spoofed sources come back to the outside: the lab's
/// XDP_PASS there becomes a program that drops them.
pub fn filter_backscatter(lab: &Lab) -> Result<()> {
    let peer = bpf::attached_prog_id(&lab.outside, &lab.outside_if)?;
    let filter = bpf::load_xdp("bench_backscat", &generator::drop_backscatter())?;
    bpf::replace_linked_program(peer, filter.as_fd())
        .context("swapping the outside's XDP_PASS for the backscatter filter")
}

/// XDP_DROP on the target's interface, in native mode; with `read`, after
/// a load of the frame's EtherType (`generator::read_and_drop`).
fn drop_all(lab: &Lab, read: bool) -> Result<OwnedFd> {
    let prog = if read {
        bpf::load_xdp("bench_floor", &generator::read_and_drop())?
    } else {
        bpf::load_return("bench_drop", bpf::XDP_DROP)?
    };
    let name = lab.target_if.clone();
    lab.target
        .run(|| bpf::attach_native(prog.as_fd(), synguard_tests::lab::if_index(&name)))
        .context("attaching XDP_DROP to the target")
}

/// Frames `iface` in `ns` has received (/proc/net/dev): for a veth, those
/// its NAPI took off the ring. Frames that found the ring full are dropped
/// on the sending side and not counted here.
pub fn rx_packets(ns: &Netns, iface: &str) -> Result<u64> {
    let text = ns.run(|| std::fs::read_to_string("/proc/thread-self/net/dev"))?;
    super::soak::parse_net_dev(&text, iface)
        .map(|dev| dev["rx_packets"])
        .with_context(|| format!("no receive counter for {iface} in {}", ns.name()))
}

/// What a generator sent alone, and what the target's receive path paid
/// for the frames it took in with XDP_DROP on them, unread (the
/// generators' table; the flood lab's own floor reads each frame:
/// `Defence::Floor`).
pub struct Calibration {
    pub sent: Sent,
    pub absorbed: u64,
    pub target_cpu: Duration,
}

impl Calibration {
    /// Target CPU per million frames taken in, in ms (ns per frame).
    pub fn cpu_ms_per_million(&self) -> Option<f64> {
        cpu_ms_per_million(self.target_cpu, self.absorbed)
    }
}

/// Floods the target with `generator` for `duration`, with no defence and
/// no clients: what the generator can send on this machine, and what the
/// target's receive path costs a frame with XDP_DROP alone.
pub fn calibrate(
    generator: Generator,
    duration: Duration,
    bin: &std::path::Path,
) -> Result<Calibration> {
    let fl = FloodLab::new(Guard::DropAll, bin)?;
    let flood = Flood::new(
        generator,
        &fl.lab.outside,
        &fl.lab.outside_if,
        TARGET_V4,
        SERVICE_PORT,
    )?;
    let stop = AtomicBool::new(false);
    let (sent, absorbed, target_cpu) =
        fl.measure(|| flood_from_outside(&fl.lab, &flood, duration, &stop))?;
    Ok(Calibration {
        sent,
        absorbed,
        target_cpu,
    })
}

fn flood_from_outside(lab: &Lab, flood: &Flood, duration: Duration, stop: &AtomicBool) -> Sent {
    let bounds = Bounds {
        duration: duration.min(MAX_FLOOD),
        max_packets: MAX_PACKETS,
        stop,
    };
    send_from_outside(lab, flood, &bounds)
}

/// Runs `flood` within `bounds` from the outside namespace, on the
/// attacker's CPU.
pub fn send_from_outside(lab: &Lab, flood: &Flood, bounds: &Bounds<'_>) -> Sent {
    lab.outside.run(|| {
        if let Err(e) = cpu::pin_current(ATTACKER_CPU) {
            eprintln!("xtask bench: could not pin the generator to CPU {ATTACKER_CPU}: {e}");
        }
        flood.run(bounds)
    })
}

/// One defence through one flood, with real clients.
pub fn run(
    defence: Defence,
    generator: Generator,
    plan: &Plan,
    bin: &std::path::Path,
) -> Result<Outcome> {
    let fl = FloodLab::new(Guard::Defence(defence), bin)?;
    let lab = &fl.lab;
    let flood = Flood::new(
        generator,
        &lab.outside,
        &lab.outside_if,
        TARGET_V4,
        SERVICE_PORT,
    )?;
    let service = SocketAddr::new(IpAddr::V4(TARGET_V4), SERVICE_PORT);
    let schedule = Duration::from_secs_f64(f64::from(plan.connections) / f64::from(plan.rate));
    let longest = plan.warmup + schedule + plan.timeout + Duration::from_secs(2);

    let netstat_before = kernel_counters(&lab.target)?;
    let stop = AtomicBool::new(false);
    let ((sent, legit), absorbed, target_cpu) = fl.measure(|| {
        thread::scope(|s| {
            let flooding = s.spawn(|| flood_from_outside(lab, &flood, longest, &stop));
            thread::sleep(plan.warmup);
            let legit = if defence == Defence::Floor {
                // Nothing would answer them: the floor floods as long as the
                // clients' schedule lasts, and has none.
                thread::sleep(schedule);
                Legit::default()
            } else {
                clients(&lab.outside, service, plan)
            };
            stop.store(true, Ordering::Relaxed);
            (flooding.join().expect("flood thread"), legit)
        })
    })?;
    let kernel = kernel_counters(&lab.target)?
        .into_iter()
        .map(|(k, v)| {
            let grew = v.saturating_sub(netstat_before.get(&k).copied().unwrap_or(0));
            (k, grew)
        })
        .collect();
    let synguard = match &fl.synguard {
        Some(sg) => sg
            .counters(&lab.target, &lab.target_if)?
            .into_iter()
            .filter(|(_, _, n)| *n > 0)
            .map(|(v, r, n)| (format!("{v}/{r}"), n))
            .collect(),
        None => BTreeMap::new(),
    };
    Ok(Outcome {
        defence,
        generator,
        sent,
        absorbed,
        target_cpu,
        legit,
        kernel,
        synguard,
    })
}

/// `plan.connections` echo connections from `ns`, started at a fixed rate
/// whatever happens to earlier ones, each on its own thread.
fn clients(ns: &Netns, service: SocketAddr, plan: &Plan) -> Legit {
    let mut legit = Legit::default();
    for r in client_results(ns, service, plan) {
        legit.clients.attempted += 1;
        match r {
            Ok((connect, echo)) => {
                legit.clients.succeeded += 1;
                legit.clients.connect_times.push(connect);
                legit.echo.connect_times.push(echo);
            }
            Err(e) => legit.clients.errors.push(format!("{e:#}")),
        }
    }
    legit
}

/// Each client's (connect, whole echo) times or its error, in the order
/// they started: client `i` starts `i / plan.rate` seconds in.
pub fn client_results(
    ns: &Netns,
    service: SocketAddr,
    plan: &Plan,
) -> Vec<Result<(Duration, Duration)>> {
    let interval = Duration::from_secs_f64(1.0 / f64::from(plan.rate));
    let started = Instant::now();
    thread::scope(|s| {
        let handles: Vec<_> = (0..plan.connections)
            .map(|i| {
                let at = started + interval * i;
                if let Some(wait) = at.checked_duration_since(Instant::now()) {
                    thread::sleep(wait);
                }
                s.spawn(move || {
                    let t0 = Instant::now();
                    let payload = format!("synguard bench client {i}\n").repeat(4);
                    let connect =
                        traffic::echo_once(ns, service, payload.as_bytes(), plan.timeout)?;
                    Ok((connect, t0.elapsed()))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("client thread"))
            .collect()
    })
}
