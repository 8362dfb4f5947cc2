//! Per-packet cost of synguard's XDP program, class by class, through
//! BPF_PROG_TEST_RUN, next to a two-instruction XDP_PASS program (the
//! floor: what running any XDP program costs here) and xdp-filter (the
//! peer, from Debian's xdp-tools) on the same frames, in the same run.
//! `cargo xtask bench` runs it; alone:
//!
//! ```sh
//! cargo bench -p synguard-tests --bench xdp_cost -- [--quick] [--json FILE]
//! ```
//!
//! Method. Every frame is run as if received on a veth of a namespace that
//! holds a real listener on port 80 and one established connection, so the
//! program's socket lookups and the kernel's cookie helpers see real
//! sockets. Frames the program leaves as they are run `repeat` times in
//! one call, and the kernel's own timing (mean ns per run) is the cost. A
//! SYN answered with a SYN-ACK is rewritten in place, so a repeated run
//! would see its own answer: that class is timed as many single calls, a
//! fresh frame each, and its floor is timed the same way (a single call
//! carries the kernel's timer overhead, in both). Each round measures every
//! class and program once, interleaved; the figures are medians over the
//! rounds, with the spread (min-max), and the ratio is taken per round.
//! Every measured run is checked: verdict, and for synguard the counter it
//! moved, so a figure is never the cost of a path other than its label.
use std::{
    net::{IpAddr, Ipv4Addr, TcpListener, TcpStream},
    os::fd::{AsFd, BorrowedFd, OwnedFd},
    path::PathBuf,
};

use anyhow::{Context, Result, bail, ensure};
use aya::{
    Ebpf,
    maps::{Array, LpmTrie, lpm_trie::Key},
};
use serde_json::{Value, json};
use synguard_tests::{
    bench::{bpf, cpu},
    lab::{OUTSIDE_V4, TARGET_V4, if_index},
    netns::{Netns, run_quiet, unique_prefix},
    packets::{self, Flags, Rng, Segment},
    require_root,
};
use xdp_common::{Budget, Config, FloodMode, FloodState, Reason, maps};
use xdp_daemon::{
    counters::Counters,
    lists::DEFAULT_MARTIANS,
    program,
    settings::{self, FloodPolicy, KernelFacts},
};

const PORT: u16 = 80;
/// The blocklisted source (the others come from OUTSIDE_V4).
const BLOCKED: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 66);
/// Entries on synguard's blocklist besides BLOCKED, so the trie has a
/// realistic depth: /32s and /24s in 198.18.1.0-198.18.255.255, never a
/// source the other classes use.
const BLOCKLIST_EXTRA: usize = 1023;
/// The CPU the measuring thread is pinned to.
const CPU: usize = 1;

struct Options {
    quick: bool,
    json: Option<PathBuf>,
}

impl Options {
    fn parse() -> Result<Options> {
        let mut options = Options {
            quick: false,
            json: None,
        };
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--quick" => options.quick = true,
                "--json" => options.json = Some(args.next().context("--json FILE")?.into()),
                // cargo bench passes --bench to harness = false targets.
                "--bench" => {}
                other => bail!("unknown argument {other:?} (--quick, --json FILE)"),
            }
        }
        Ok(options)
    }

    fn rounds(&self) -> usize {
        if self.quick { 3 } else { 9 }
    }

    /// Repetitions per repeated run.
    fn repeat(&self) -> u32 {
        if self.quick { 100_000 } else { 1_000_000 }
    }

    /// Calls per single-call run.
    fn calls(&self) -> usize {
        if self.quick { 2_000 } else { 20_000 }
    }
}

/// How a class is timed.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Timing {
    /// One frame, `repeat` runs in one call.
    Repeated,
    /// Many frames, one call each.
    Single,
}

/// Which settings synguard runs a class with.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Flood detection on (auto), never reaching its threshold.
    Normal,
    /// Flood mode on, default budgets.
    Flood,
    /// Flood mode on, per-source budgets off (`--no-budgets`).
    FloodNoBudgets,
    /// Flood mode on, budgets of 1 SYN/s: a source stays over its budget
    /// for a whole measurement (same code path as the defaults).
    FloodSpent,
}

struct Class {
    name: &'static str,
    mode: Mode,
    timing: Timing,
    frames: Vec<Vec<u8>>,
    /// What synguard must do with every frame.
    reason: Reason,
    /// What xdp-filter must do with it.
    peer_action: u32,
    /// Spend the source's SYN budget before each measurement (it refills
    /// between rounds).
    spend_budget: bool,
    /// Run on synguard with its lists (else on an instance whose lists are
    /// all empty).
    lists: bool,
}

fn main() -> Result<()> {
    let options = Options::parse()?;
    require_root();
    let ns = Netns::create(&format!("{}-cost", unique_prefix()))?;
    let mut bench = Bench::new(&ns)?;
    let classes = bench.classes()?;
    let results = ns.run(|| -> Result<Vec<Measured>> {
        cpu::pin_current(CPU).context("pinning the measuring thread")?;
        bench.measure(&classes, &options)
    })?;
    let report = Report {
        results,
        options: &options,
        peer: bench.peer.is_some(),
    };
    println!("{}", report.markdown());
    if let Some(path) = &options.json {
        std::fs::write(path, serde_json::to_string_pretty(&report.json())?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// The namespace's fixtures and the three programs.
struct Bench<'a> {
    ns: &'a Netns,
    ifindex: u32,
    /// synguard with its lists: the martians, and a blocklist of 1024.
    synguard: Ebpf,
    /// Another instance with every list empty: what parsing, the policy
    /// and counting cost without the list lookups.
    bare: Ebpf,
    /// Which of the two the current class runs on.
    use_bare: bool,
    floor: OwnedFd,
    /// xdp-filter, when it could be loaded.
    peer: Option<Peer<'a>>,
    /// The established connection's client side (for its port).
    client: TcpStream,
    _server_side: TcpStream,
    _listener: TcpListener,
}

impl<'a> Bench<'a> {
    fn new(ns: &'a Netns) -> Result<Bench<'a>> {
        // Cookies forced (the helper hands one out without a real flood)
        // and timestamps without offsets, as on a protected host.
        ns.set_sysctl("net.ipv4.tcp_syncookies", "2")?;
        ns.set_sysctl("net.ipv4.tcp_timestamps", "2")?;
        ns.ip(&[
            "link", "add", "bench0", "type", "veth", "peer", "name", "bench1",
        ])?;
        ns.ip(&["addr", "add", &format!("{TARGET_V4}/24"), "dev", "bench0"])?;
        ns.ip(&["link", "set", "bench0", "up"])?;
        ns.ip(&["link", "set", "bench1", "up"])?;
        let ifindex = ns.run(|| if_index("bench0"));
        let listener = ns
            .run(|| TcpListener::bind(("::", PORT)))
            .context("listening on [::]:80")?;
        let client = ns
            .run(|| TcpStream::connect((TARGET_V4, PORT)))
            .context("an established connection")?;
        let (server_side, _) = listener.accept()?;

        let mut synguard = program::load(None, None).context("loading synguard")?;
        for net in DEFAULT_MARTIANS {
            list_add(&mut synguard, "MARTIAN", net)?;
        }
        list_add(&mut synguard, "BLOCK", &format!("{BLOCKED}/32"))?;
        let mut rng = Rng::new(0xb10c);
        for i in 0..BLOCKLIST_EXTRA {
            let r = rng.next_u64();
            let third = 1 + (r % 255) as u8;
            if i % 32 == 0 {
                list_add(&mut synguard, "BLOCK", &format!("198.18.{third}.0/24"))?;
            } else {
                list_add(
                    &mut synguard,
                    "BLOCK",
                    &format!("198.18.{third}.{}/32", (r >> 8) as u8),
                )?;
            }
        }
        let bare = program::load(None, None).context("loading synguard")?;
        let floor = bpf::load_return("bench_floor", bpf::XDP_PASS)?;
        let peer = match Peer::load(ns, "bench0") {
            Ok(peer) => Some(peer),
            Err(e) => {
                eprintln!("xdp_cost: no xdp-filter beside synguard: {e:#}");
                None
            }
        };
        Ok(Bench {
            ns,
            ifindex,
            synguard,
            bare,
            use_bare: false,
            floor,
            peer,
            client,
            _server_side: server_side,
            _listener: listener,
        })
    }

    fn policy(&mut self, mode: Mode) -> Result<()> {
        let no_budget = Budget { rate: 0, burst: 0 };
        let policy = match mode {
            Mode::Normal => {
                // Flood classes leave the detector engaged for its hold
                // time: start from a quiet interface.
                for ebpf in [&mut self.synguard, &mut self.bare] {
                    let map = ebpf.map_mut(maps::FLOOD).context("FLOOD map")?;
                    let mut flood: Array<_, FloodState> = Array::try_from(map)?;
                    flood.set(0, FloodState::default(), 0)?;
                }
                FloodPolicy {
                    syn_rate_on: u32::MAX,
                    syn_rate_off: u32::MAX,
                    ..FloodPolicy::default()
                }
            }
            Mode::Flood => FloodPolicy {
                mode: FloodMode::Always,
                ..FloodPolicy::default()
            },
            Mode::FloodNoBudgets => FloodPolicy {
                mode: FloodMode::Always,
                budget_v4_host: no_budget,
                budget_v4_net: no_budget,
                budget_v6_host: no_budget,
                budget_v6_net: no_budget,
                ..FloodPolicy::default()
            },
            Mode::FloodSpent => {
                let spent = Budget { rate: 1, burst: 1 };
                FloodPolicy {
                    mode: FloodMode::Always,
                    budget_v4_host: spent,
                    budget_v4_net: spent,
                    budget_v6_host: spent,
                    budget_v6_net: spent,
                    ..FloodPolicy::default()
                }
            }
        };
        let config = settings::config(&policy, &host());
        set_config(&mut self.synguard, config)?;
        set_config(&mut self.bare, config)
    }

    fn instance(&self) -> &Ebpf {
        if self.use_bare {
            &self.bare
        } else {
            &self.synguard
        }
    }

    /// The traffic classes, with frames built here and checked below.
    fn classes(&mut self) -> Result<Vec<Class>> {
        let outside = IpAddr::V4(OUTSIDE_V4);
        let target = IpAddr::V4(TARGET_V4);
        let syn = Segment::syn(outside, target, 40000, PORT);
        let cookie_ack = self.cookie_ack(&syn)?;
        let forged = Segment::syn(outside, target, 40000, PORT)
            .flags(Flags::ACK)
            .numbers(0x1234_5679, 0xdead_beef)
            .options(vec![])
            .frame();
        let port = self.client.local_addr()?.port();
        let data = Segment::syn(target, target, port, PORT)
            .flags(Flags {
                psh: true,
                ..Flags::ACK
            })
            .numbers(1, 1)
            .options(vec![])
            .payload(&[0x42; 100])
            .frame();
        let udp = packets::udp(outside, target, 5353, 53, &[0x42; 32]);
        let blocked = Segment::syn(IpAddr::V4(BLOCKED), target, 40000, PORT).frame();
        let over_budget = Segment::syn(IpAddr::V4(Ipv4Addr::new(198, 19, 0, 7)), target, 1, PORT);
        let pass = bpf::XDP_PASS;
        Ok(vec![
            Class {
                name: "non-TCP (UDP) pass",
                mode: Mode::Normal,
                timing: Timing::Repeated,
                frames: vec![udp.clone()],
                reason: Reason::NonTcp,
                peer_action: pass,
                spend_budget: false,
                lists: true,
            },
            Class {
                name: "non-TCP (UDP) pass, every list empty",
                mode: Mode::Normal,
                timing: Timing::Repeated,
                frames: vec![udp],
                reason: Reason::NonTcp,
                peer_action: pass,
                spend_budget: false,
                lists: false,
            },
            Class {
                name: "blocklisted source: drop",
                mode: Mode::Normal,
                timing: Timing::Repeated,
                frames: vec![blocked],
                reason: Reason::Blocklist,
                peer_action: bpf::XDP_DROP,
                spend_budget: false,
                lists: true,
            },
            Class {
                name: "SYN, normal mode: pass",
                mode: Mode::Normal,
                timing: Timing::Repeated,
                frames: vec![syn.frame()],
                reason: Reason::Syn,
                peer_action: pass,
                spend_budget: false,
                lists: true,
            },
            Class {
                name: "SYN, flood mode: SYN-ACK (XDP_TX)",
                mode: Mode::Flood,
                timing: Timing::Single,
                frames: packets::spoofed_syns(4096, target, PORT, 0xc0ffee),
                reason: Reason::SynAck,
                peer_action: pass,
                spend_budget: false,
                lists: true,
            },
            Class {
                name: "SYN, flood mode, budgets off: SYN-ACK (XDP_TX)",
                mode: Mode::FloodNoBudgets,
                timing: Timing::Single,
                frames: packets::spoofed_syns(4096, target, PORT, 0xc0ffee),
                reason: Reason::SynAck,
                peer_action: pass,
                spend_budget: false,
                lists: true,
            },
            Class {
                name: "SYN, flood mode, source over budget: drop",
                mode: Mode::FloodSpent,
                // A budget refills as time passes; an answered SYN would be
                // rewritten in place, so fresh frames, one call each.
                timing: Timing::Single,
                frames: vec![over_budget.frame()],
                reason: Reason::Rate,
                peer_action: pass,
                spend_budget: true,
                lists: true,
            },
            Class {
                name: "valid cookie ACK: pass",
                mode: Mode::Flood,
                timing: Timing::Repeated,
                frames: vec![cookie_ack],
                reason: Reason::ValidCookie,
                peer_action: pass,
                spend_budget: false,
                lists: true,
            },
            Class {
                name: "forged cookie ACK: drop",
                mode: Mode::Flood,
                timing: Timing::Repeated,
                frames: vec![forged],
                reason: Reason::BadCookie,
                peer_action: pass,
                spend_budget: false,
                lists: true,
            },
            Class {
                name: "established-flow data, normal mode: pass",
                mode: Mode::Normal,
                timing: Timing::Repeated,
                frames: vec![data.clone()],
                reason: Reason::Tcp,
                peer_action: pass,
                spend_budget: false,
                lists: true,
            },
            Class {
                name: "established-flow data, flood mode: pass",
                mode: Mode::Flood,
                timing: Timing::Repeated,
                frames: vec![data],
                reason: Reason::Tcp,
                peer_action: pass,
                spend_budget: false,
                lists: true,
            },
        ])
    }

    /// The ACK that completes a handshake with the cookie synguard's own
    /// SYN-ACK carries.
    fn cookie_ack(&mut self, syn: &Segment) -> Result<Vec<u8>> {
        self.policy(Mode::Flood)?;
        let frame = syn.frame();
        let mut out = vec![0u8; frame.len() + 64];
        let fd = self.synguard_fd();
        let ifindex = self.ifindex;
        let run = self
            .ns
            .run(|| bpf::test_run_on(fd, &frame, Some(&mut out), 1, Some(ifindex)))?;
        ensure!(run.action == bpf::XDP_TX, "synguard did not answer the SYN");
        out.truncate(run.data_size_out as usize);
        let answer = etherparse::SlicedPacket::from_ethernet(&out)?;
        let Some(etherparse::TransportSlice::Tcp(tcp)) = answer.transport else {
            bail!("the answer is not TCP")
        };
        let tsval = tcp
            .options_iterator()
            .find_map(|o| match o {
                Ok(etherparse::TcpOptionElement::Timestamp(val, _)) => Some(val),
                _ => None,
            })
            .context("no timestamp in the SYN-ACK")?;
        Ok(syn
            .clone()
            .flags(Flags::ACK)
            .numbers(
                syn.seq.wrapping_add(1),
                tcp.sequence_number().wrapping_add(1),
            )
            .options(vec![
                etherparse::TcpOptionElement::Noop,
                etherparse::TcpOptionElement::Noop,
                etherparse::TcpOptionElement::Timestamp(0x0102_0305, tsval),
            ])
            .frame())
    }

    fn synguard_fd(&self) -> BorrowedFd<'_> {
        let xdp: &aya::programs::Xdp = self
            .instance()
            .program(program::PROGRAM)
            .expect("loaded")
            .try_into()
            .expect("XDP");
        xdp.fd().expect("loaded").as_fd()
    }

    fn counters(&self) -> Result<Counters> {
        Ok(Counters::read(
            self.instance().map(maps::COUNTERS).context("COUNTERS")?,
        )?)
    }

    /// Every round: every class, each program on it, interleaved.
    fn measure(&mut self, classes: &[Class], options: &Options) -> Result<Vec<Measured>> {
        let mut results: Vec<Measured> = classes
            .iter()
            .map(|c| Measured {
                class: c.name,
                timing: c.timing,
                reason: c.reason,
                floor: Vec::new(),
                synguard: Vec::new(),
                peer: Vec::new(),
            })
            .collect();
        for round in 0..options.rounds() {
            eprintln!("xdp_cost: round {}/{}", round + 1, options.rounds());
            for (class, result) in classes.iter().zip(&mut results) {
                self.policy(class.mode)?;
                self.use_bare = !class.lists;
                if class.spend_budget {
                    self.spend_budget(&class.frames[0])?;
                }
                let floor = self.floor.as_fd();
                result
                    .floor
                    .push(self.time(floor, class, options, bpf::XDP_PASS)?);
                let before = self.counters()?;
                let expected = match class.reason.verdict() {
                    xdp_common::Verdict::Pass => bpf::XDP_PASS,
                    xdp_common::Verdict::Drop => bpf::XDP_DROP,
                    xdp_common::Verdict::Tx => bpf::XDP_TX,
                    xdp_common::Verdict::Aborted => bpf::XDP_ABORTED,
                };
                let ns = self.time(self.synguard_fd(), class, options, expected)?;
                let delta = self.counters()?.since(&before);
                let runs = match class.timing {
                    Timing::Repeated => u64::from(options.repeat()),
                    Timing::Single => options.calls() as u64,
                };
                ensure!(
                    delta.get(class.reason).packets == runs && delta.total_packets() == runs,
                    "{}: synguard counted {:?}, want {runs} under {}",
                    class.name,
                    delta.rows(),
                    class.reason.name()
                );
                result.synguard.push(ns);
                if let Some(peer) = &self.peer {
                    let fd = peer.prog.as_fd();
                    result
                        .peer
                        .push(self.time(fd, class, options, class.peer_action)?);
                }
            }
        }
        Ok(results)
    }

    /// Sends SYNs from the frame's source until synguard drops one over
    /// its budget.
    fn spend_budget(&self, syn: &[u8]) -> Result<()> {
        let mut out = vec![0u8; 256];
        for _ in 0..10_000 {
            let run = bpf::test_run_on(
                self.synguard_fd(),
                syn,
                Some(&mut out),
                1,
                Some(self.ifindex),
            )?;
            if run.action == bpf::XDP_DROP {
                return Ok(());
            }
        }
        bail!("10000 SYNs from one source and still within its budget")
    }

    /// ns per packet of `prog` on the class's frames; every run must end
    /// in `action`.
    fn time(
        &self,
        prog: BorrowedFd<'_>,
        class: &Class,
        options: &Options,
        action: u32,
    ) -> Result<f64> {
        let ifindex = Some(self.ifindex);
        match class.timing {
            Timing::Repeated => {
                let frame = &class.frames[0];
                let run = bpf::test_run_on(prog, frame, None, options.repeat(), ifindex)?;
                ensure!(
                    run.action == action,
                    "{}: action {} (want {action})",
                    class.name,
                    run.action
                );
                Ok(f64::from(run.duration_ns))
            }
            Timing::Single => {
                let mut out = vec![0u8; 256];
                let mut total = 0u64;
                for i in 0..options.calls() {
                    let frame = &class.frames[i % class.frames.len()];
                    let run = bpf::test_run_on(prog, frame, Some(&mut out), 1, ifindex)?;
                    ensure!(
                        run.action == action,
                        "{}: action {} (want {action})",
                        class.name,
                        run.action
                    );
                    total += u64::from(run.duration_ns);
                }
                Ok(total as f64 / options.calls() as f64)
            }
        }
    }
}

/// xdp-filter loaded by its own command on an interface of the bench
/// namespace, blocking BLOCKED by source, and opened by its program id
/// (`ip -json link` shows it; with libxdp's dispatcher in front, that is
/// the dispatcher, which is what the kernel would run per packet).
struct Peer<'a> {
    prog: OwnedFd,
    _loaded: XdpFilter<'a>,
}

/// Where xdp-filter pins its maps, and libxdp its state.
const XDP_FILTER_PINS: &str = "/sys/fs/bpf/xdp-filter";
const LIBXDP_DIR: &str = "/sys/fs/bpf/xdp";

impl<'a> Peer<'a> {
    fn load(ns: &'a Netns, iface: &'static str) -> Result<Peer<'a>> {
        ensure!(
            !std::path::Path::new(XDP_FILTER_PINS).exists(),
            "{XDP_FILTER_PINS} exists: xdp-filter is loaded somewhere else; not disturbing it"
        );
        let loaded = XdpFilter {
            ns,
            iface,
            made_libxdp_dir: !std::path::Path::new(LIBXDP_DIR).exists(),
        };
        // Features ipv4,ipv6: the variant that matches addresses only, as
        // synguard's blocklist does; policy allow: listed sources dropped.
        run_quiet(
            ns.command("xdp-filter")
                .args(["load", "--features", "ipv4,ipv6", "--policy", "allow"])
                .arg(iface),
        )
        .context("xdp-filter load (is xdp-tools installed? cargo xtask bench installs it)")?;
        run_quiet(
            ns.command("xdp-filter")
                .args(["ip", &BLOCKED.to_string(), "--mode", "src"]),
        )?;
        let id = bpf::attached_prog_id(ns, iface)?;
        let prog = bpf::prog_fd_by_id(id).context("opening xdp-filter's program")?;
        Ok(Peer {
            prog,
            _loaded: loaded,
        })
    }
}

/// Unloads xdp-filter (which removes its pins) when dropped.
struct XdpFilter<'a> {
    ns: &'a Netns,
    iface: &'static str,
    /// libxdp's bpffs directory did not exist before: remove it after.
    made_libxdp_dir: bool,
}

impl Drop for XdpFilter<'_> {
    fn drop(&mut self) {
        let _ = run_quiet(self.ns.command("xdp-filter").args(["unload", self.iface]));
        if self.made_libxdp_dir {
            // remove_dir only removes an empty directory: never anything
            // someone else put there meanwhile.
            let _ = std::fs::remove_dir(LIBXDP_DIR);
        }
    }
}

/// The protected host synguard is configured for: the namespace's sysctls
/// (timestamps without offsets, SACK and window scaling on), tcp_rmem's
/// default 6 MiB maximum, and an Ethernet MTU.
fn host() -> KernelFacts {
    KernelFacts {
        tcp_timestamps: 2,
        tcp_sack: 1,
        tcp_window_scaling: 1,
        wscale: settings::window_scale(6 << 20),
        mtu: 1500,
    }
}

fn set_config(ebpf: &mut Ebpf, config: Config) -> Result<()> {
    let map = ebpf.map_mut(maps::CONFIG).context("CONFIG map")?;
    let mut array: Array<_, Config> = Array::try_from(map)?;
    array.set(0, config, 0)?;
    Ok(())
}

fn list_add(ebpf: &mut Ebpf, list: &str, net: &str) -> Result<()> {
    let net: ipnet::IpNet = net.parse().with_context(|| format!("CIDR {net}"))?;
    match net.trunc() {
        ipnet::IpNet::V4(n) => {
            let map = ebpf.map_mut(&format!("{list}_V4")).context("list map")?;
            let mut trie: LpmTrie<_, [u8; 4], u64> = LpmTrie::try_from(map)?;
            trie.insert(&Key::new(n.prefix_len().into(), n.addr().octets()), 0, 0)?;
        }
        ipnet::IpNet::V6(n) => {
            let map = ebpf.map_mut(&format!("{list}_V6")).context("list map")?;
            let mut trie: LpmTrie<_, [u8; 16], u64> = LpmTrie::try_from(map)?;
            trie.insert(&Key::new(n.prefix_len().into(), n.addr().octets()), 0, 0)?;
        }
    }
    Ok(())
}

/// A goal set for a class: at most `max_ratio` times the floor, and
/// perhaps no slower than xdp-filter. Printed, never asserted.
struct Target {
    class: &'static str,
    max_ratio: f64,
    not_slower_than_peer: bool,
}

const TARGETS: [Target; 3] = [
    Target {
        class: "non-TCP (UDP) pass",
        max_ratio: 2.0,
        not_slower_than_peer: false,
    },
    Target {
        class: "blocklisted source: drop",
        max_ratio: 4.0,
        not_slower_than_peer: true,
    },
    Target {
        class: "SYN, flood mode: SYN-ACK (XDP_TX)",
        max_ratio: 6.0,
        not_slower_than_peer: false,
    },
];

/// One class's figures, one per round.
struct Measured {
    class: &'static str,
    timing: Timing,
    reason: Reason,
    floor: Vec<f64>,
    synguard: Vec<f64>,
    peer: Vec<f64>,
}

/// Median and spread of a set of figures.
#[derive(Clone, Copy)]
struct Spread {
    median: f64,
    min: f64,
    max: f64,
}

impl Spread {
    fn of(values: &[f64]) -> Option<Spread> {
        if values.is_empty() {
            return None;
        }
        let mut v = values.to_vec();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Some(Spread {
            median,
            min: v[0],
            max: v[n - 1],
        })
    }

    fn json(self) -> Value {
        json!({ "median": round2(self.median), "min": round2(self.min), "max": round2(self.max) })
    }
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

impl Measured {
    fn ratios(&self, of: &[f64]) -> Vec<f64> {
        of.iter().zip(&self.floor).map(|(a, f)| a / f).collect()
    }
}

struct Report<'a> {
    results: Vec<Measured>,
    options: &'a Options,
    peer: bool,
}

impl Report<'_> {
    fn markdown(&self) -> String {
        let o = self.options;
        let mut s = format!(
            "## Per-packet cost (BPF_PROG_TEST_RUN, {} rounds; repeated runs x{}, single calls x{})\n\n",
            o.rounds(),
            o.repeat(),
            o.calls()
        );
        s += "ns/packet: median (min-max) over rounds; ratio: to the XDP_PASS floor on the same frames, same timing, median of per-round ratios.\n\n";
        s += "| class | timing | synguard verdict | floor ns | synguard ns | synguard / floor |";
        if self.peer {
            s += " xdp-filter ns | xdp-filter / floor |";
        }
        s += "\n|---|---|---|---:|---:|---:|";
        if self.peer {
            s += "---:|---:|";
        }
        s += "\n";
        for m in &self.results {
            let cell = |v: &[f64]| Spread::of(v).map_or("-".into(), ns);
            let ratio = |v: &[f64]| Spread::of(&m.ratios(v)).map_or("-".into(), times);
            s += &format!(
                "| {} | {} | {} {} | {} | {} | {} |",
                m.class,
                match m.timing {
                    Timing::Repeated => "repeated",
                    Timing::Single => "single calls",
                },
                m.reason.verdict().name(),
                m.reason.name(),
                cell(&m.floor),
                cell(&m.synguard),
                ratio(&m.synguard),
            );
            if self.peer {
                s += &format!(" {} | {} |", cell(&m.peer), ratio(&m.peer));
            }
            s += "\n";
        }
        s += "\nTargets (issue 5), on the medians above:\n\n";
        for target in &TARGETS {
            s += &format!("- {}\n", self.check(target));
        }
        s
    }

    /// Whether a target is met, and by how much it is met or missed.
    fn check(&self, target: &Target) -> String {
        let Some(m) = self.results.iter().find(|m| m.class == target.class) else {
            return format!("{}: not measured", target.class);
        };
        let median = |v: &[f64]| Spread::of(v).map(|s| s.median);
        let (Some(ratio), Some(ns)) = (median(&m.ratios(&m.synguard)), median(&m.synguard)) else {
            return format!("{}: not measured", target.class);
        };
        let mut verdict = vec![format!(
            "{:.2}x the floor, target <= {:.0}x: {}",
            ratio,
            target.max_ratio,
            if ratio <= target.max_ratio {
                "met".to_string()
            } else {
                format!("missed by {:.1}x", ratio / target.max_ratio)
            }
        )];
        if target.not_slower_than_peer
            && let Some(peer) = median(&m.peer)
        {
            verdict.push(format!(
                "{ns:.0} ns vs xdp-filter {peer:.0} ns, target no slower: {}",
                if ns <= peer {
                    "met".to_string()
                } else {
                    format!("missed by {:.1}x", ns / peer)
                }
            ));
        }
        format!("{}: {}", target.class, verdict.join("; "))
    }

    fn json(&self) -> Value {
        let o = self.options;
        let classes: Vec<Value> = self
            .results
            .iter()
            .map(|m| {
                let spread = |v: &[f64]| Spread::of(v).map(Spread::json);
                json!({
                    "class": m.class,
                    "timing": match m.timing {
                        Timing::Repeated => "repeated",
                        Timing::Single => "single",
                    },
                    "synguard_verdict": m.reason.verdict().name(),
                    "synguard_reason": m.reason.name(),
                    "floor_ns": spread(&m.floor),
                    "synguard_ns": spread(&m.synguard),
                    "synguard_ratio": spread(&m.ratios(&m.synguard)),
                    "xdp_filter_ns": spread(&m.peer),
                    "xdp_filter_ratio": spread(&m.ratios(&m.peer)),
                    "rounds": {
                        "floor": m.floor,
                        "synguard": m.synguard,
                        "xdp_filter": m.peer,
                    },
                })
            })
            .collect();
        json!({
            "rounds": o.rounds(),
            "repeat": o.repeat(),
            "single_calls": o.calls(),
            "cpu": CPU,
            "peer": if self.peer { "xdp-filter --features ipv4,ipv6 --policy allow, source address listed" } else { "none" },
            "classes": classes,
            "targets": TARGETS.iter().map(|t| self.check(t)).collect::<Vec<_>>(),
        })
    }
}

fn ns(s: Spread) -> String {
    format!("{:.0} ({:.0}-{:.0})", s.median, s.min, s.max)
}

fn times(s: Spread) -> String {
    format!("{:.2}x ({:.2}-{:.2})", s.median, s.min, s.max)
}
