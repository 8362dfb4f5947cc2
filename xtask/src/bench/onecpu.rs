//! The one-CPU flood lab (`cargo xtask bench --only one-cpu`): the lab as
//! a new user builds it, with none of the flood lab's placement. The
//! generator is pinned to one CPU and nothing else is arranged: no
//! threaded NAPI, no spinner, no real-time priority, GRO as veth has it.
//! A veth has no interrupts, so the target's receive work runs wherever
//! its NAPI (or, with no XDP program, the per-CPU backlog) was scheduled:
//! on the sender's CPU, inside the generator's own send calls, or on the
//! CPU whose traffic scheduled it last. Real clients sit in a third
//! namespace routed through the attacker's, so their packets cross the
//! same veth as the flood; the flood comes at fixed offered rates, and
//! each defence gets the same rates in the same run.
//!
//! Half the clients speak first (they send, then read the server's
//! greeting and their echo), half wait for the server's greeting before
//! sending anything, as SMTP, FTP and SSH clients do: with SYN cookies, a
//! lost final ACK of the handshake leaves such a client connected to a
//! server that never heard of it, which only this kind of client shows.
use std::{
    collections::BTreeMap,
    io::{Read, Write},
    net::{IpAddr, Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream},
    os::fd::AsRawFd,
    process::Command,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context, Result};
use synguard_tests::{
    bench::{
        cpu,
        generator::{Bounds, Flood, Generator, Sent},
    },
    lab::{Lab, TARGET_V4},
    netns::{Netns, run_quiet, unique_prefix},
    synguard::Synguard,
    traffic::ClientReport,
};

use super::{
    defence::Defence,
    flood::{self, SERVICE_PORT},
    soak::Link,
};

/// The CPU the generator runs on, and with it the target's receive work
/// that its sends schedule.
pub const GENERATOR_CPU: usize = 0;
/// The client namespace's link to the outside (the attacker's namespace,
/// which routes between it and the target).
const GATEWAY_V4: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 1);
const CLIENT_V4: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 2);
/// What the server sends first on every connection.
const GREETING: &[u8] = b"220 synguard bench ready\r\n";
/// No flood outlives this, whatever the plan says.
const MAX_FLOOD: Duration = Duration::from_secs(30);

/// How hard, how long, and where the clients run.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Offered flood rates, frames per second; each defence gets each.
    pub rates: Vec<u32>,
    /// Frames per send call (1: one sendmmsg(2) per frame: the generator
    /// then spends its CPU on calls, and reaches less).
    pub batch: usize,
    /// The generator sleeps between calls instead of spinning, so its CPU
    /// may halt (and take a vCPU's wake-up to resume).
    pub sleep: bool,
    /// Real client connections per run (half of each kind), started at
    /// `rate` per second whatever happens to the earlier ones.
    pub connections: u32,
    pub rate: u32,
    /// A client gives up after this, on connect and on each read.
    pub timeout: Duration,
    pub warmup: Duration,
    /// Runs of each (rate, defence), interleaved.
    pub rounds: usize,
    /// The CPU the clients and the server run on (None: wherever the
    /// scheduler puts them).
    pub clients_cpu: Option<usize>,
    /// Threaded NAPI for the target's veth (GRO on, as veth needs for a
    /// poll without XDP), its thread pinned to this CPU at real-time
    /// priority: the operator's way out, not the new user's lab.
    pub napi_cpu: Option<usize>,
}

impl Plan {
    pub fn new(
        quick: bool,
        rates: Vec<u32>,
        batch: usize,
        sleep: bool,
        clients_cpu: Option<usize>,
        napi_cpu: Option<usize>,
    ) -> Plan {
        Plan {
            rates,
            batch,
            sleep,
            connections: if quick { 40 } else { 100 },
            rate: 20,
            timeout: Duration::from_secs(3),
            warmup: Duration::from_millis(if quick { 500 } else { 1000 }),
            rounds: if quick { 1 } else { 2 },
            clients_cpu,
            napi_cpu,
        }
    }
}

/// Whether a client sends first or waits for the server's greeting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    ClientFirst,
    ServerFirst,
}

/// What one kind of client saw: connect times in `clients`, and for those
/// that completed, the whole transaction (connect to last byte back).
#[derive(Debug, Default, Clone)]
pub struct Clients {
    pub clients: ClientReport,
    pub transaction: Vec<Duration>,
    /// Connected, but the server's greeting never came: the handshake's
    /// final ACK was lost, and the server had no connection.
    pub connected_no_greeting: u32,
}

/// Per-CPU softirq work, from /proc/net/softnet_stat and /proc/softirqs.
#[derive(Debug, Default, Clone, Copy)]
pub struct CpuNet {
    /// Packets the stack took in on this CPU (skbs; XDP verdicts other than
    /// XDP_PASS never count here).
    pub processed: u64,
    /// Packets dropped because this CPU's backlog was full.
    pub backlog_dropped: u64,
    /// NET_RX softirq runs that ran out of budget or time.
    pub time_squeeze: u64,
    /// NET_RX softirqs raised on this CPU.
    pub net_rx: u64,
    /// CPU time of this CPU's ksoftirqd: softirq work deferred to a thread.
    pub ksoftirqd: Duration,
}

/// One defence at one offered rate.
#[derive(Debug)]
pub struct Outcome {
    pub defence: Defence,
    /// Offered rate asked for, frames per second.
    pub rate: u32,
    pub sent: Sent,
    /// Frames the target's interface received (/proc/net/dev rx_packets).
    pub target_rx: u64,
    /// Frames the sender's veth end dropped because the target's ring (or
    /// backlog) was full (/proc/net/dev tx_dropped of the outside end).
    pub sender_tx_dropped: u64,
    /// `ethtool -S` of the target's veth end, grown during the run
    /// (per-queue counters summed: rx_xdp_packets, rx_xdp_tx,
    /// rx_xdp_tx_errors, ...).
    pub target_ethtool: BTreeMap<String, u64>,
    pub client_first: Clients,
    pub server_first: Clients,
    pub cpus: Vec<CpuNet>,
}

impl Outcome {
    pub fn kind(&self, kind: Kind) -> &Clients {
        match kind {
            Kind::ClientFirst => &self.client_first,
            Kind::ServerFirst => &self.server_first,
        }
    }

    /// Frames the sender dropped, as a share of those it offered.
    pub fn drop_ratio(&self) -> f64 {
        self.sender_tx_dropped as f64 / (self.sent.packets.max(1)) as f64
    }
}

/// The three namespaces, the defence and the server, dropped in this order.
struct OneCpuLab {
    _server: GreetingServer,
    _synguard: Option<Synguard>,
    client: Netns,
    lab: Lab,
}

impl OneCpuLab {
    fn new(defence: Defence, bin: &std::path::Path, plan: &Plan) -> Result<OneCpuLab> {
        let lab = Lab::new().context("building the namespace lab")?;
        flood::filter_backscatter(&lab)?;
        let client = client_namespace(&lab)?;
        let synguard = defence.configure(&lab, bin)?;
        if let Some(napi_cpu) = plan.napi_cpu {
            for pid in cpu::threaded_napi(&lab.target, &lab.target_if)? {
                cpu::pin(pid, napi_cpu).context("pinning the target's NAPI thread")?;
                cpu::realtime(pid, 10).context("raising the target's NAPI thread")?;
            }
        }
        let service = SocketAddr::new(IpAddr::V4(TARGET_V4), SERVICE_PORT);
        let server = GreetingServer::start(&lab.target, service, plan.clients_cpu)?;
        Ok(OneCpuLab {
            _server: server,
            _synguard: synguard,
            client,
            lab,
        })
    }
}

/// A third namespace whose only way out is the outside namespace, which
/// forwards between it and the target. Everything in it goes with it.
fn client_namespace(lab: &Lab) -> Result<Netns> {
    let prefix = unique_prefix();
    let client = Netns::create(&format!("{prefix}-cli"))?;
    let client_if = format!("{prefix}c");
    let gateway_if = format!("{prefix}g");
    run_quiet(Command::new("ip").args([
        "link",
        "add",
        &gateway_if,
        "netns",
        lab.outside.name(),
        "type",
        "veth",
        "peer",
        "name",
        &client_if,
        "netns",
        client.name(),
    ]))?;
    lab.outside.ip(&[
        "addr",
        "add",
        &format!("{GATEWAY_V4}/24"),
        "dev",
        &gateway_if,
    ])?;
    lab.outside.ip(&["link", "set", &gateway_if, "up"])?;
    client.ip(&["addr", "add", &format!("{CLIENT_V4}/24"), "dev", &client_if])?;
    client.ip(&["link", "set", &client_if, "up"])?;
    client.ip(&["route", "add", "default", "via", &GATEWAY_V4.to_string()])?;
    lab.outside.set_sysctl("net.ipv4.ip_forward", "1")?;
    // Complete checksums on the clients' frames, as on the outside's own
    // (a forwarded CHECKSUM_PARTIAL frame reaches XDP unfinished).
    run_quiet(
        client
            .command("ethtool")
            .args(["-K", &client_if, "tx", "off"]),
    )
    .context("turning TX checksum offload off on the client's veth")?;
    Ok(client)
}

/// A TCP server that greets each connection first, then echoes what it
/// reads until the client closes.
struct GreetingServer {
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl GreetingServer {
    fn start(ns: &Netns, addr: SocketAddr, cpu: Option<usize>) -> Result<GreetingServer> {
        let listener = ns
            .run(|| TcpListener::bind(addr))
            .with_context(|| format!("listening on {addr} in {}", ns.name()))?;
        listener.set_nonblocking(true)?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = thread::spawn(move || {
            if let Some(cpu) = cpu {
                let _ = cpu::pin_current(cpu);
            }
            while !stopping.load(Ordering::Relaxed) {
                if !readable(&listener, 20) {
                    continue;
                }
                while let Ok((stream, _)) = listener.accept() {
                    thread::spawn(move || {
                        let _ = greet_and_echo(stream);
                    });
                }
            }
        });
        Ok(GreetingServer {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for GreetingServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Waits up to `ms` for a connection to accept.
fn readable(listener: &TcpListener, ms: i32) -> bool {
    let mut fds = libc::pollfd {
        fd: listener.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    unsafe { libc::poll(&mut fds, 1, ms) > 0 }
}

fn greet_and_echo(mut stream: TcpStream) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.write_all(GREETING)?;
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return stream.shutdown(Shutdown::Write);
        }
        stream.write_all(&buf[..n])?;
    }
}

/// Why a client failed, in words the report can count.
const NO_GREETING: &str = "connected, but the server's greeting never came";

/// One client connection of `kind`; returns (connect, whole transaction).
fn client(
    ns: &Netns,
    addr: SocketAddr,
    kind: Kind,
    i: u32,
    timeout: Duration,
    cpu: Option<usize>,
) -> Result<(Duration, Duration)> {
    let t0 = Instant::now();
    // The thread that reads and writes, and the one that connects in the
    // namespace (spawned from it), run where the plan says.
    if let Some(cpu) = cpu {
        let _ = cpu::pin_current(cpu);
    }
    let mut stream = ns
        .run(|| TcpStream::connect_timeout(&addr, timeout))
        .with_context(|| format!("connecting to {addr}"))?;
    let connect = t0.elapsed();
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let payload = format!("synguard one-cpu client {i}\n").repeat(4);
    match kind {
        Kind::ClientFirst => {
            stream.write_all(payload.as_bytes())?;
            stream.shutdown(Shutdown::Write)?;
            let mut back = Vec::new();
            stream.read_to_end(&mut back)?;
            let want = [GREETING, payload.as_bytes()].concat();
            anyhow::ensure!(
                back == want,
                "sent {} bytes, got {} of {} back",
                payload.len(),
                back.len(),
                want.len()
            );
        }
        Kind::ServerFirst => {
            let mut greeting = vec![0u8; GREETING.len()];
            stream
                .read_exact(&mut greeting)
                .map_err(|e| anyhow::anyhow!("{NO_GREETING} ({e})"))?;
            anyhow::ensure!(greeting == GREETING, "a wrong greeting");
            stream.write_all(payload.as_bytes())?;
            stream.shutdown(Shutdown::Write)?;
            let mut back = Vec::new();
            stream.read_to_end(&mut back)?;
            anyhow::ensure!(back == payload.as_bytes(), "the echo differs");
        }
    }
    Ok((connect, t0.elapsed()))
}

/// The plan's clients from the client namespace, alternating kinds.
fn clients(ns: &Netns, plan: &Plan) -> (Clients, Clients) {
    let service = SocketAddr::new(IpAddr::V4(TARGET_V4), SERVICE_PORT);
    let interval = Duration::from_secs_f64(1.0 / f64::from(plan.rate));
    let started = Instant::now();
    let results: Vec<(Kind, Result<(Duration, Duration)>)> = thread::scope(|s| {
        let handles: Vec<_> = (0..plan.connections)
            .map(|i| {
                let at = started + interval * i;
                if let Some(wait) = at.checked_duration_since(Instant::now()) {
                    thread::sleep(wait);
                }
                let kind = if i % 2 == 0 {
                    Kind::ClientFirst
                } else {
                    Kind::ServerFirst
                };
                s.spawn(move || {
                    (
                        kind,
                        client(ns, service, kind, i, plan.timeout, plan.clients_cpu),
                    )
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("client thread"))
            .collect()
    });
    let mut first = Clients::default();
    let mut second = Clients::default();
    for (kind, result) in results {
        let c = match kind {
            Kind::ClientFirst => &mut first,
            Kind::ServerFirst => &mut second,
        };
        c.clients.attempted += 1;
        match result {
            Ok((connect, whole)) => {
                c.clients.succeeded += 1;
                c.clients.connect_times.push(connect);
                c.transaction.push(whole);
            }
            Err(e) => {
                let e = format!("{e:#}");
                if e.contains(NO_GREETING) {
                    c.connected_no_greeting += 1;
                }
                c.clients.errors.push(e);
            }
        }
    }
    (first, second)
}

/// Per-CPU network softirq counters, machine-wide (softnet_stat is not
/// per namespace): this lab is the machine's only heavy network user
/// while it runs.
fn cpu_net() -> Vec<CpuNet> {
    let softnet = std::fs::read_to_string("/proc/net/softnet_stat").unwrap_or_default();
    let softirqs = std::fs::read_to_string("/proc/softirqs").unwrap_or_default();
    let net_rx: Vec<u64> = softirqs
        .lines()
        .find_map(|l| l.trim_start().strip_prefix("NET_RX:"))
        .map(|l| {
            l.split_whitespace()
                .filter_map(|v| v.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    softnet
        .lines()
        .enumerate()
        .map(|(cpu_index, line)| {
            let col: Vec<u64> = line
                .split_whitespace()
                .map(|v| u64::from_str_radix(v, 16).unwrap_or(0))
                .collect();
            let ksoftirqd = cpu::kernel_threads(&format!("ksoftirqd/{cpu_index}"))
                .ok()
                .and_then(|pids| {
                    pids.into_iter()
                        .find(|&pid| {
                            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                                .is_ok_and(|c| c.trim_end() == format!("ksoftirqd/{cpu_index}"))
                        })
                        .and_then(|pid| cpu::task_cpu(pid).ok())
                })
                .unwrap_or_default();
            CpuNet {
                processed: col.first().copied().unwrap_or(0),
                backlog_dropped: col.get(1).copied().unwrap_or(0),
                time_squeeze: col.get(2).copied().unwrap_or(0),
                net_rx: net_rx.get(cpu_index).copied().unwrap_or(0),
                ksoftirqd,
            }
        })
        .collect()
}

fn cpu_net_growth(before: &[CpuNet], after: &[CpuNet]) -> Vec<CpuNet> {
    after
        .iter()
        .zip(before)
        .map(|(a, b)| CpuNet {
            processed: a.processed.saturating_sub(b.processed),
            backlog_dropped: a.backlog_dropped.saturating_sub(b.backlog_dropped),
            time_squeeze: a.time_squeeze.saturating_sub(b.time_squeeze),
            net_rx: a.net_rx.saturating_sub(b.net_rx),
            ksoftirqd: a.ksoftirqd.saturating_sub(b.ksoftirqd),
        })
        .collect()
}

/// One defence at one offered rate, with the plan's clients.
pub fn run(defence: Defence, rate: u32, plan: &Plan, bin: &std::path::Path) -> Result<Outcome> {
    let ol = OneCpuLab::new(defence, bin, plan)?;
    let lab = &ol.lab;
    let flood = Flood::new(
        Generator::PacketMmsg,
        &lab.outside,
        &lab.outside_if,
        TARGET_V4,
        SERVICE_PORT,
    )?;
    let schedule = Duration::from_secs_f64(f64::from(plan.connections) / f64::from(plan.rate));
    let longest =
        (plan.warmup + schedule + plan.timeout * 2 + Duration::from_secs(1)).min(MAX_FLOOD);

    let target_before = Link::read(&lab.target, &lab.target_if)?;
    let outside_before = Link::read(&lab.outside, &lab.outside_if)?;
    let cpus_before = cpu_net();
    let stop = AtomicBool::new(false);
    let (sent, (client_first, server_first)) = thread::scope(|s| {
        let flooding = s.spawn(|| {
            let bounds = Bounds {
                duration: longest,
                max_packets: u64::from(rate) * longest.as_secs().max(1),
                stop: &stop,
            };
            lab.outside.run(|| {
                if let Err(e) = cpu::pin_current(GENERATOR_CPU) {
                    eprintln!(
                        "xtask bench: could not pin the generator to CPU {GENERATOR_CPU}: {e}"
                    );
                }
                flood.run_paced(&bounds, rate, plan.batch, plan.sleep)
            })
        });
        thread::sleep(plan.warmup);
        let legit = clients(&ol.client, plan);
        stop.store(true, Ordering::Relaxed);
        (flooding.join().expect("flood thread"), legit)
    });
    let sent = sent?;
    thread::sleep(Duration::from_millis(100));
    let cpus = cpu_net_growth(&cpus_before, &cpu_net());
    let target = Link::read(&lab.target, &lab.target_if)?;
    let outside = Link::read(&lab.outside, &lab.outside_if)?;
    let target_ethtool = target
        .ethtool
        .iter()
        .map(|(k, v)| (k.clone(), v.saturating_sub(target_before.ethtool(k))))
        .filter(|(_, v)| *v > 0)
        .collect();
    Ok(Outcome {
        defence,
        rate,
        sent,
        target_rx: target.dev("rx_packets") - target_before.dev("rx_packets"),
        sender_tx_dropped: outside.dev("tx_dropped") - outside_before.dev("tx_dropped"),
        target_ethtool,
        client_first,
        server_first,
        cpus,
    })
}

fn quantile(times: &[Duration], q: f64) -> Option<Duration> {
    let mut t = times.to_vec();
    t.sort();
    let i = ((t.len() as f64 - 1.0) * q).round() as usize;
    t.get(i).copied()
}

/// The runs of one (rate, defence), every round's clients together.
struct Pooled<'a> {
    runs: Vec<&'a Outcome>,
}

impl Pooled<'_> {
    fn clients(&self, kind: Kind) -> Clients {
        let mut all = Clients::default();
        for o in &self.runs {
            let c = o.kind(kind);
            all.clients.attempted += c.clients.attempted;
            all.clients.succeeded += c.clients.succeeded;
            all.clients.connect_times.extend(&c.clients.connect_times);
            all.transaction.extend(&c.transaction);
            all.connected_no_greeting += c.connected_no_greeting;
            all.clients.errors.extend(c.clients.errors.iter().cloned());
        }
        all
    }

    fn sum(&self, f: impl Fn(&Outcome) -> u64) -> u64 {
        self.runs.iter().map(|o| f(o)).sum()
    }
}

fn pools<'a>(outcomes: &'a [Outcome]) -> Vec<(u32, Defence, Pooled<'a>)> {
    let mut keys: Vec<(u32, Defence)> = Vec::new();
    for o in outcomes {
        if !keys.contains(&(o.rate, o.defence)) {
            keys.push((o.rate, o.defence));
        }
    }
    keys.sort_by_key(|&(rate, _)| rate);
    keys.into_iter()
        .map(|(rate, defence)| {
            let runs = outcomes
                .iter()
                .filter(|o| o.rate == rate && o.defence == defence)
                .collect();
            (rate, defence, Pooled { runs })
        })
        .collect()
}

/// The scenario's markdown: one row per (offered rate, defence).
pub fn section(plan: &Plan, outcomes: &[Outcome]) -> String {
    use super::report::{ms, thousands};
    let mut s = format!(
        "\n## One CPU: generator and receive work together\n\nThe lab as a new user builds it: the generator (AF_PACKET, sendmmsg(2) of {} frame(s) per call, PACKET_QDISC_BYPASS, paced, {} between calls) pinned to CPU {GENERATOR_CPU}, {}. Real clients in a third namespace routed through the attacker's: {} connections per run at {}/s ({}), half sending first, half waiting for the server's greeting first; timeout {} s. {} round(s), interleaved. Clients pooled over rounds; transaction = connect to the last byte back.\n\n",
        plan.batch,
        if plan.sleep { "sleeping" } else { "spinning" },
        match plan.napi_cpu {
            Some(c) => format!(
                "the target veth's NAPI a thread on CPU {c} at real-time priority (GRO on, so every defence receives through its ring), no spinner"
            ),
            None => "no threaded NAPI, no spinner, GRO as veth has it, so the target's receive work runs where its sends (or the clients' packets) schedule it".into(),
        },
        plan.connections,
        plan.rate,
        match plan.clients_cpu {
            Some(c) => format!("clients and server on CPU {c}"),
            None => "clients and server unpinned".into(),
        },
        plan.timeout.as_secs_f64(),
        plan.rounds,
    );
    s += "| offered | defence | reached pps | target rx | sender tx_dropped | served, client first | served, server first | connected, no greeting | connect p50 / p99 | transaction p50 / p99 |\n";
    s += "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|\n";
    for (rate, defence, pool) in pools(outcomes) {
        let first = pool.clients(Kind::ClientFirst);
        let second = pool.clients(Kind::ServerFirst);
        let mut connect = first.clients.connect_times.clone();
        connect.extend(&second.clients.connect_times);
        let mut whole = first.transaction.clone();
        whole.extend(&second.transaction);
        let sent: u64 = pool.sum(|o| o.sent.packets);
        let secs: f64 = pool.runs.iter().map(|o| o.sent.elapsed.as_secs_f64()).sum();
        let dropped = pool.sum(|o| o.sender_tx_dropped);
        s += &format!(
            "| {} | {} | {} | {} | {} ({:.2}%) | {}/{} | {}/{} | {} | {} / {} | {} / {} |\n",
            thousands(f64::from(rate)),
            defence.label(),
            thousands(sent as f64 / secs.max(1e-9)),
            thousands(pool.sum(|o| o.target_rx) as f64),
            thousands(dropped as f64),
            100.0 * dropped as f64 / sent.max(1) as f64,
            first.clients.succeeded,
            first.clients.attempted,
            second.clients.succeeded,
            second.clients.attempted,
            first.connected_no_greeting + second.connected_no_greeting,
            ms(quantile(&connect, 0.5)),
            ms(quantile(&connect, 0.99)),
            ms(quantile(&whole, 0.5)),
            ms(quantile(&whole, 0.99)),
        );
    }
    s += "\nWhere the receive work ran, summed over rounds (per CPU: NET_RX softirqs raised, budget squeezes, ksoftirqd CPU ms, backlog drops), and the target veth's own counters (`ethtool -S`, grown):\n\n";
    for (rate, defence, pool) in pools(outcomes) {
        let ncpu = pool.runs.iter().map(|o| o.cpus.len()).max().unwrap_or(0);
        let per_cpu: Vec<String> = (0..ncpu)
            .map(|c| {
                let get = |f: &dyn Fn(&CpuNet) -> u64| -> u64 {
                    pool.runs.iter().filter_map(|o| o.cpus.get(c)).map(f).sum()
                };
                format!(
                    "CPU {c}: NET_RX {}, squeezed {}, ksoftirqd {} ms, backlog drops {}",
                    thousands(get(&|n| n.net_rx) as f64),
                    get(&|n| n.time_squeeze),
                    get(&|n| n.ksoftirqd.as_millis() as u64),
                    get(&|n| n.backlog_dropped),
                )
            })
            .collect();
        let mut ethtool: BTreeMap<&str, u64> = BTreeMap::new();
        for o in &pool.runs {
            for (k, v) in &o.target_ethtool {
                *ethtool.entry(k).or_default() += v;
            }
        }
        let ethtool: Vec<String> = ethtool
            .iter()
            .map(|(k, v)| format!("{k} {}", thousands(*v as f64)))
            .collect();
        s += &format!(
            "- {} at {}: {}; {}\n",
            defence.label(),
            thousands(f64::from(rate)),
            per_cpu.join("; "),
            if ethtool.is_empty() {
                "no veth counters grew".to_string()
            } else {
                ethtool.join(", ")
            }
        );
        let errors: Vec<&String> = [Kind::ClientFirst, Kind::ServerFirst]
            .iter()
            .flat_map(|&k| {
                pool.runs
                    .iter()
                    .flat_map(move |o| o.kind(k).clients.errors.iter())
            })
            .take(2)
            .collect();
        for e in errors {
            s += &format!("  (a client failure: {e})\n");
        }
    }
    s
}

/// Every run, for bench.json.
pub fn json(plan: &Plan, outcomes: &[Outcome]) -> serde_json::Value {
    use super::report::millis;
    let runs: Vec<serde_json::Value> = outcomes
        .iter()
        .map(|o| {
            let clients = |c: &Clients| {
                serde_json::json!({
                    "attempted": c.clients.attempted,
                    "succeeded": c.clients.succeeded,
                    "connected_no_greeting": c.connected_no_greeting,
                    "connect_ms": millis(&c.clients.connect_times),
                    "transaction_ms": millis(&c.transaction),
                    "errors": c.clients.errors.iter().take(5).collect::<Vec<_>>(),
                })
            };
            serde_json::json!({
                "defence": o.defence.key(),
                "offered_pps_asked": o.rate,
                "flood_packets_sent": o.sent.packets,
                "flood_seconds": o.sent.elapsed.as_secs_f64(),
                "generator_cpu_s": o.sent.cpu.as_secs_f64(),
                "target_rx_packets": o.target_rx,
                "sender_tx_dropped": o.sender_tx_dropped,
                "sender_drop_ratio": o.drop_ratio(),
                "target_ethtool": o.target_ethtool,
                "client_first": clients(&o.client_first),
                "server_first": clients(&o.server_first),
                "cpus": o.cpus.iter().map(|c| serde_json::json!({
                    "net_rx_softirqs": c.net_rx,
                    "time_squeeze": c.time_squeeze,
                    "backlog_dropped": c.backlog_dropped,
                    "processed": c.processed,
                    "ksoftirqd_ms": c.ksoftirqd.as_secs_f64() * 1e3,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    serde_json::json!({
        "plan": {
            "rates": plan.rates,
            "batch": plan.batch,
            "sleep_between_calls": plan.sleep,
            "connections": plan.connections,
            "rate_per_s": plan.rate,
            "timeout_s": plan.timeout.as_secs_f64(),
            "rounds": plan.rounds,
            "generator_cpu": GENERATOR_CPU,
            "clients_cpu": plan.clients_cpu,
            "napi_cpu": plan.napi_cpu,
        },
        "runs": runs,
    })
}
