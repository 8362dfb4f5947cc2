//! The bench's namespace and programs: synguard (with its lists, and an
//! instance with none), the floor, the peer; and the timing itself.
use std::{
    net::{TcpListener, TcpStream},
    os::fd::{AsFd, BorrowedFd, OwnedFd},
};

use anyhow::{Context, Result, bail, ensure};
use aya::{Ebpf, maps::Array};
use synguard::{
    counters::Counters,
    host::{HostMaps, HostView},
    lists::{List, ListMaps},
    program,
    settings::{self, FloodPolicy, KernelFacts},
};
use synguard_common::{Budget, FloodMode, FloodState, IfaceSettings, list_in_use, maps};
use synguard_tests::{
    lab::{TARGET_MAC, TARGET_V4, TARGET_V6, if_index, mac},
    netns::Netns,
    packets::{Flags, Rng, Segment},
    rawbpf as bpf,
};

use crate::{
    BLOCKED, BLOCKLIST_EXTRA, FLEET_ENTRY, Options, PORT,
    classes::{Class, Mode, Timing},
    peer::Peer,
    report::Measured,
    synproxy::KernelSynproxy,
};

/// The namespace's fixtures and the programs.
pub struct Bench<'a> {
    pub ns: &'a Netns,
    pub ifindex: u32,
    /// synguard, by [`Lists`]: with its lists (the martians, and a
    /// blocklist of 1024), with every list empty (what parsing, the policy
    /// and counting cost without the list lookups), and with its lists but
    /// no IPv4 index (what the tries cost).
    pub synguard: [Ebpf; 3],
    /// Which of them the current class runs on.
    pub lists: Lists,
    /// Other builds of the program (`--compare OBJECT`), each set up as
    /// `synguard` is and measured beside it.
    pub compared: Vec<[Ebpf; 3]>,
    pub floor: OwnedFd,
    /// xdp-filter, when it could be loaded.
    pub peer: Option<Peer<'a>>,
    /// The kernel's XDP synproxy, when it could be built and loaded.
    pub synproxy: Option<KernelSynproxy>,
    /// The established connection's client side (for its port).
    pub client: TcpStream,
    pub _server_side: TcpStream,
    pub _listener: TcpListener,
}

impl<'a> Bench<'a> {
    pub fn new(ns: &'a Netns, options: &Options) -> Result<Bench<'a>> {
        // Cookies forced (the helper hands one out without a real flood)
        // and timestamps without offsets, as on a protected host.
        ns.set_sysctl("net.ipv4.tcp_syncookies", "2")?;
        ns.set_sysctl("net.ipv4.tcp_timestamps", "2")?;
        // The frames are for the lab's target MAC and addresses.
        ns.ip(&[
            "link",
            "add",
            "bench0",
            "address",
            &mac(TARGET_MAC),
            "type",
            "veth",
            "peer",
            "name",
            "bench1",
        ])?;
        ns.ip(&["addr", "add", &format!("{TARGET_V4}/24"), "dev", "bench0"])?;
        ns.ip(&[
            "addr",
            "add",
            &format!("{TARGET_V6}/64"),
            "dev",
            "bench0",
            "nodad",
        ])?;
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

        let identity = ns
            .run(HostView::read)?
            .identity("bench0")
            .context("bench0 in the namespace")?;
        let synguard = instances(program::OBJECT).context("loading synguard")?;
        eprintln!("xdp_cost: this build: {}", verified(&synguard[0]));
        for ebpf in &synguard {
            HostMaps::of(ebpf)?.write(&identity)?;
        }
        let mut compared = Vec::new();
        for path in &options.compare {
            let object =
                std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            let builds =
                instances(&object).with_context(|| format!("loading {}", path.display()))?;
            eprintln!("xdp_cost: {}: {}", path.display(), verified(&builds[0]));
            // A build from before the host maps has none to fill.
            for ebpf in &builds {
                if let Ok(mut maps) = HostMaps::of(ebpf) {
                    maps.write(&identity)?;
                }
            }
            compared.push(builds);
        }
        let floor = bpf::load_return("bench_floor", bpf::XDP_PASS)?;
        let peer = match Peer::load(ns, "bench0") {
            Ok(peer) => Some(peer),
            Err(e) => {
                eprintln!("xdp_cost: no xdp-filter beside synguard: {e:#}");
                None
            }
        };
        let synproxy = match KernelSynproxy::load(PORT) {
            Ok(synproxy) => Some(synproxy),
            Err(e) => {
                eprintln!("xdp_cost: no kernel XDP synproxy beside synguard: {e:#}");
                None
            }
        };
        Ok(Bench {
            ns,
            ifindex,
            synguard,
            lists: Lists::Indexed,
            compared,
            floor,
            peer,
            synproxy,
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
                for ebpf in self.all_mut() {
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
        for ebpf in self.all_mut() {
            set_config(ebpf, config)?;
        }
        Ok(())
    }

    /// Every instance of every build.
    fn all_mut(&mut self) -> impl Iterator<Item = &mut Ebpf> {
        self.synguard
            .iter_mut()
            .chain(self.compared.iter_mut().flatten())
    }

    fn instance(&self) -> &Ebpf {
        &self.synguard[self.lists as usize]
    }

    /// The instance of compared build `i` the current class runs on.
    fn compared_instance(&self, i: usize) -> &Ebpf {
        &self.compared[i][self.lists as usize]
    }

    /// The ACK that completes a handshake with the cookie synguard's own
    /// SYN-ACK carries.
    pub fn cookie_ack(&mut self, syn: &Segment) -> Result<Vec<u8>> {
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
        program_fd(self.instance())
    }

    /// Every round: every class, each program on it, interleaved.
    pub fn measure(&mut self, classes: &mut [Class], options: &Options) -> Result<Vec<Measured>> {
        let mut results: Vec<Measured> = classes
            .iter()
            .map(|c| Measured {
                class: c.name,
                timing: c.timing,
                reason: c.reason,
                floor: Vec::new(),
                synguard: Vec::new(),
                compared: Vec::new(),
                peer: Vec::new(),
                synproxy: Vec::new(),
            })
            .collect();
        for round in 0..options.rounds() {
            eprintln!("xdp_cost: round {}/{}", round + 1, options.rounds());
            for class in classes.iter_mut() {
                if let Some(syn) = &class.cookie_of {
                    class.frames = vec![self.cookie_ack(syn)?];
                }
            }
            for (class, result) in classes.iter().zip(&mut results) {
                self.policy(class.mode)?;
                self.lists = class.lists;
                // Fresh frames: each round takes the next `calls` of them.
                let start = if class.fresh {
                    round * options.calls()
                } else {
                    0
                };
                let floor = self.floor.as_fd();
                result.floor.push(self.time(
                    floor,
                    class,
                    options,
                    start,
                    class.calls(options),
                    bpf::XDP_PASS,
                )?);
                let expected = match class.reason.verdict() {
                    synguard_common::Verdict::Pass => bpf::XDP_PASS,
                    synguard_common::Verdict::Drop => bpf::XDP_DROP,
                    synguard_common::Verdict::Tx => bpf::XDP_TX,
                    synguard_common::Verdict::Aborted => bpf::XDP_ABORTED,
                };
                // synguard and the builds compared with it, in an order
                // rotated every round: none always runs first (or after
                // the floor warmed the caches for it).
                let mut instances: Vec<Option<usize>> = std::iter::once(None)
                    .chain((0..self.compared.len()).map(Some))
                    .collect();
                let turn = round % instances.len();
                instances.rotate_left(turn);
                result.compared.resize(self.compared.len(), Vec::new());
                for which in instances {
                    let ebpf = match which {
                        None => self.instance(),
                        Some(i) => self.compared_instance(i),
                    };
                    let ns = self
                        .checked_time(ebpf, class, options, start, expected)
                        .with_context(|| match which {
                            None => "synguard".to_string(),
                            Some(i) => format!("compared {}", i + 1),
                        })?;
                    match which {
                        None => result.synguard.push(ns),
                        Some(i) => result.compared[i].push(ns),
                    }
                }
                if let Some(peer) = &self.peer {
                    let fd = peer.prog.as_fd();
                    result.peer.push(self.time(
                        fd,
                        class,
                        options,
                        start,
                        class.calls(options),
                        class.peer_action,
                    )?);
                }
                if let (Some(synproxy), Some(action)) = (&self.synproxy, class.synproxy_action) {
                    let fd = synproxy.prog.as_fd();
                    result.synproxy.push(
                        self.time(fd, class, options, start, class.calls(options), action)
                            .context("the kernel's XDP synproxy")?,
                    );
                }
            }
        }
        Ok(results)
    }

    /// `time` on one instance of synguard, checking that every run was
    /// counted under the class's reason. A class over its budget has it
    /// spent first.
    fn checked_time(
        &self,
        ebpf: &Ebpf,
        class: &Class,
        options: &Options,
        start: usize,
        expected: u32,
    ) -> Result<f64> {
        if class.spend_budget {
            // With the round's first source: one spent in an earlier round
            // may still be over its own budget, so its SYNs would be
            // dropped without spending its network's budget.
            spend_budget_of(program_fd(ebpf), &class.frames[start], self.ifindex)?;
        }
        let calls = class.calls(options);
        let before = counters(ebpf)?;
        let ns = match self.time(program_fd(ebpf), class, options, start, calls, expected) {
            Ok(ns) => ns,
            Err(e) => {
                let delta = counters(ebpf)?.since(&before);
                return Err(e.context(format!("counted so far: {:?}", delta.rows())));
            }
        };
        let delta = counters(ebpf)?.since(&before);
        let runs = match class.timing {
            Timing::Repeated => u64::from(options.repeat()),
            Timing::Single => calls as u64,
        };
        ensure!(
            delta.get(class.reason).packets == runs && delta.total_packets() == runs,
            "{}: synguard counted {:?}, want {runs} under {}",
            class.name,
            delta.rows(),
            class.reason.name()
        );
        Ok(ns)
    }

    /// ns per packet of `prog` on the class's frames (`calls` single
    /// calls from frame `start` on); every run must end in `action`.
    fn time(
        &self,
        prog: BorrowedFd<'_>,
        class: &Class,
        options: &Options,
        start: usize,
        calls: usize,
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
                for i in 0..calls {
                    let frame = &class.frames[(start + i) % class.frames.len()];
                    let run = bpf::test_run_on(prog, frame, Some(&mut out), 1, ifindex)?;
                    ensure!(
                        run.action == action,
                        "{}: action {} (want {action}) at frame {}",
                        class.name,
                        run.action,
                        start + i
                    );
                    total += u64::from(run.duration_ns);
                }
                Ok(total as f64 / calls as f64)
            }
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

/// Sends SYNs from the frame's source until `prog` drops one over its
/// budget.
fn spend_budget_of(prog: BorrowedFd<'_>, syn: &[u8], ifindex: u32) -> Result<()> {
    let mut out = vec![0u8; 256];
    for _ in 0..10_000 {
        let run = bpf::test_run_on(prog, syn, Some(&mut out), 1, Some(ifindex))?;
        if run.action == bpf::XDP_DROP {
            return Ok(());
        }
    }
    bail!("10000 SYNs from one source and still within its budget")
}

fn program_fd(ebpf: &Ebpf) -> BorrowedFd<'_> {
    let xdp: &aya::programs::Xdp = ebpf
        .program(program::PROGRAM)
        .expect("loaded")
        .try_into()
        .expect("XDP");
    xdp.fd().expect("loaded").as_fd()
}

fn counters(ebpf: &Ebpf) -> Result<Counters> {
    Ok(Counters::read(
        ebpf.map(maps::COUNTERS).context("COUNTERS")?,
    )?)
}

/// Which lists an instance of synguard has.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Lists {
    /// The martians and a blocklist of 1025 (BLOCKED, BLOCKLIST_EXTRA
    /// more, and FLEET_ENTRY, counted per entry as the fleet's are), the IPv4 index built, as synguard's lists code leaves them.
    Indexed = 0,
    /// None.
    Empty = 1,
    /// The same as `Indexed`, but no IPv4 index live: the tries decide,
    /// as during a list change.
    TriesOnly = 2,
}

/// The instructions the verifier checked for each program of a build, as
/// the kernel reports them (`bpf_prog_info.verified_insns`): the verifier's
/// cost of a change, next to its time.
fn verified(ebpf: &Ebpf) -> String {
    [program::PROGRAM, program::COOKIE_PROGRAM]
        .iter()
        .map(|name| {
            let count = ebpf
                .program(name)
                .and_then(|p| p.info().ok())
                .and_then(|info| info.verified_instruction_count());
            match count {
                Some(n) => format!("{name} {n} verified instructions"),
                None => format!("{name} ? verified instructions"),
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The three instances of a build of synguard, by [`Lists`].
fn instances(object: &[u8]) -> Result<[Ebpf; 3]> {
    let load = || Ok::<_, anyhow::Error>(program::load_object(object, None, None)?);
    let indexed = load()?;
    with_lists(&indexed)?;
    let mut tries = load()?;
    with_lists(&tries)?;
    let map = tries
        .map_mut(maps::LIST_IN_USE)
        .context("LIST_IN_USE map")?;
    Array::<_, u32>::try_from(map)?.set(list_in_use::INDEX_V4, 0, 0)?;
    Ok([indexed, load()?, tries])
}

/// Fills the lists of an instance the way synguard's lists code does.
fn with_lists(ebpf: &Ebpf) -> Result<()> {
    let mut lists = ListMaps::of(ebpf)?;
    lists.seed_martians()?;
    let mut block: Vec<(ipnet::IpNet, u64)> = vec![(format!("{BLOCKED}/32").parse()?, 0)];
    let mut rng = Rng::new(0xb10c);
    for i in 0..BLOCKLIST_EXTRA {
        let r = rng.next_u64();
        let third = 1 + (r % 255) as u8;
        let net = if i % 32 == 0 {
            format!("198.18.{third}.0/24")
        } else {
            format!("198.18.{third}.{}/32", (r >> 8) as u8)
        };
        block.push((net.parse()?, 0));
    }
    for result in lists.add_many(List::Block, &block) {
        result?;
    }
    for result in lists.add_many_counted(List::Block, &[(FLEET_ENTRY.parse()?, 0)]) {
        result?;
    }
    Ok(())
}

fn set_config(ebpf: &mut Ebpf, config: IfaceSettings) -> Result<()> {
    let map = ebpf.map_mut(maps::CONFIG).context("CONFIG map")?;
    let mut array: Array<_, IfaceSettings> = Array::try_from(map)?;
    array.set(0, config, 0)?;
    Ok(())
}
