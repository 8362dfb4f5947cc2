//! The packet-test harness: the XDP program loaded (unpinned), frames run
//! through it with BPF_PROG_TEST_RUN, verdict, counters and output checked;
//! and [`CookieLab`], the harness beside a real listener for the cookie path.
#![allow(dead_code, reason = "each test file uses a part of the harness")]

use aya::{
    Ebpf,
    maps::{Array, HashMap, ProgramArray},
    programs::{TestRun, TestRunOptions},
};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use std::{net::TcpListener, os::fd::AsFd};

use synguard::{
    counters::Counters,
    host::{HostMaps, Identity},
    lists::{List, ListMaps},
    program,
};
use synguard_common::{
    BudgetSet, BudgetSlot, FloodMode, FloodState, IfaceSettings, Reason, SourceKey, SourceSet,
    Verdict, budget, host, list_in_use, maps, sources, words_of,
};
use synguard_tests::{
    lab::{TARGET_MAC, TARGET_V4, TARGET_V6},
    netns::{Netns, unique_prefix},
    require_root,
};

pub struct Harness {
    ebpf: Ebpf,
}

pub struct Outcome {
    pub action: u32,
    pub output: Vec<u8>,
    pub delta: Counters,
}

pub const XDP_DROP: u32 = 1;
pub const XDP_PASS: u32 = 2;
pub const XDP_TX: u32 = 3;

impl Harness {
    /// The program, loaded, on a host that is the lab's target
    /// ([`target_host`]).
    pub fn new() -> Harness {
        require_root();
        let mut harness = Harness {
            ebpf: program::load(None, None).expect("load the XDP program"),
        };
        harness.set_host(&target_host());
        harness
    }

    /// Writes what makes a SYN the host's, as synguard's host code does
    /// (it is that code).
    pub fn set_host(&mut self, identity: &Identity) {
        let written = HostMaps::of(&self.ebpf)
            .expect("the host maps")
            .write(identity)
            .expect("write the host maps");
        assert!(written.left_out.is_empty(), "{:?}", written.left_out);
    }

    pub fn counters(&self) -> Counters {
        Counters::read(self.ebpf.map(maps::COUNTERS).expect("COUNTERS map")).expect("read counters")
    }

    /// Runs `frame` once, from the calling thread's network namespace.
    pub fn run(&mut self, frame: &[u8]) -> Outcome {
        let before = self.counters();
        let mut out = vec![0u8; frame.len() + 256];
        let result = {
            let xdp = program::xdp(&mut self.ebpf);
            let opts = TestRunOptions {
                data_in: Some(frame),
                data_out: Some(&mut out),
                ..TestRunOptions::default()
            };
            xdp.test_run(opts).expect("BPF_PROG_TEST_RUN")
        };
        out.truncate(result.data_size_out as usize);
        Outcome {
            action: result.return_value,
            output: out,
            delta: self.counters().since(&before),
        }
    }

    /// Runs `frame` and returns a description of every way the outcome
    /// differs from "one packet, counted under `reason`, frame untouched".
    pub fn check(&mut self, name: &str, frame: &[u8], reason: Reason) -> Vec<String> {
        let outcome = self.run(frame);
        let mut problems = Vec::new();
        let expected_action = match reason.verdict() {
            Verdict::Pass => 2,
            Verdict::Drop => 1,
            Verdict::Tx => 3,
            Verdict::Aborted => 0,
        };
        if outcome.action != expected_action {
            problems.push(format!(
                "{name}: action {} (want {expected_action}, {:?})",
                outcome.action,
                reason.verdict()
            ));
        }
        if outcome.delta.total_packets() != 1 || outcome.delta.get(reason).packets != 1 {
            problems.push(format!(
                "{name}: counters moved {:?}, want exactly one packet under {}",
                outcome.delta.rows(),
                reason.name()
            ));
        }
        if outcome.delta.get(reason).bytes != frame.len() as u64 {
            problems.push(format!(
                "{name}: counted {} bytes, want {}",
                outcome.delta.get(reason).bytes,
                frame.len()
            ));
        }
        if reason.verdict() != Verdict::Tx && outcome.output != frame {
            problems.push(format!(
                "{name}: the program rewrote a frame it did not answer"
            ));
        }
        problems
    }

    /// Runs `frame` once as if received on `ifindex` of the calling
    /// thread's namespace (not loopback, where the martian list does not
    /// apply), and returns the one reason it was counted under.
    pub fn reason_on(&mut self, ifindex: u32, frame: &[u8]) -> Reason {
        let before = self.counters();
        let fd = program::xdp(&mut self.ebpf).fd().expect("loaded");
        let mut out = vec![0u8; frame.len() + 256];
        synguard_tests::rawbpf::test_run_on(fd.as_fd(), frame, Some(&mut out), 1, Some(ifindex))
            .expect("BPF_PROG_TEST_RUN");
        let delta = self.counters().since(&before);
        let reasons: Vec<Reason> = Reason::ALL
            .into_iter()
            .filter(|&r| delta.get(r).packets > 0)
            .collect();
        assert_eq!(delta.total_packets(), 1, "counted {:?}", delta.rows());
        reasons[0]
    }

    /// Runs `frame` from inside `ns`: the kernel runs test frames on that
    /// namespace's loopback, so socket lookups see its listeners.
    pub fn run_in(&mut self, ns: &Netns, frame: &[u8]) -> Outcome {
        ns.run(|| self.run(frame))
    }

    pub fn set_config(&mut self, config: IfaceSettings) {
        let map = self.ebpf.map_mut(maps::CONFIG).expect("CONFIG map");
        let mut array: Array<_, IfaceSettings> = Array::try_from(map).expect("CONFIG is an array");
        array.set(0, config, 0).expect("write CONFIG");
    }

    /// Takes the cookie path's program out of the data path's tail calls,
    /// as a broken load would leave it.
    #[allow(dead_code)]
    pub fn clear_tail(&mut self) {
        let map = self.ebpf.map_mut(maps::TAIL).expect("TAIL map");
        let mut tail = ProgramArray::try_from(map).expect("TAIL is a program array");
        tail.clear_index(&0).expect("clear TAIL[0]");
    }

    /// Adds `net` to one of the program's lists (BLOCK, ALLOW, MARTIAN)
    /// the way synguard's own lists code does (it is that code).
    pub fn list_add(&mut self, list: &str, net: &str) {
        let net: IpNet = net.parse().expect("CIDR");
        self.lists()
            .add(list_named(list), net, 0)
            .expect("add to the list");
    }

    /// The program's list maps.
    pub fn lists(&self) -> ListMaps {
        ListMaps::of(&self.ebpf).expect("the list maps")
    }
}

/// The MAC of the VLAN devices of [`target_host`].
pub const VLAN_MAC: [u8; 6] = [0x02, 0x00, 0x5e, 0x00, 0x01, 0x02];

/// The lab's target as the host: its MAC, its IPv4 and IPv6 addresses
/// local, and VLAN devices 7 and 100 (802.1Q) and 100.200 (802.1Q in
/// 802.1ad, as etherparse tags two).
pub fn target_host() -> Identity {
    let q100 = host::vlan_key(0, false, 100);
    let ad100 = host::vlan_key(0, true, 100);
    Identity {
        mac: TARGET_MAC,
        vlans: [
            (host::vlan_key(0, false, 7), VLAN_MAC),
            (q100, VLAN_MAC),
            (host::vlan_key(ad100, false, 200), VLAN_MAC),
        ]
        .into(),
        local_v4: [Ipv4Net::from(TARGET_V4)].into(),
        local_v6: [Ipv6Net::from(TARGET_V6)].into(),
    }
}

/// A list by the prefix of its map names.
pub fn list_named(list: &str) -> List {
    match list {
        "BLOCK" => List::Block,
        "ALLOW" => List::Allow,
        "MARTIAN" => List::Martian,
        other => panic!("no list named {other}"),
    }
}

impl Harness {
    /// The token bucket of a source prefix, if it has one: a network's in
    /// `BUDGETS`, a host's in `SOURCES` (found as the data path finds it,
    /// with the seed in `CONFIG`).
    pub fn budget(&self, key: SourceKey) -> Option<BudgetSlot> {
        let config = self.ebpf.map(maps::CONFIG).expect("CONFIG map");
        let config: Array<_, IfaceSettings> = Array::try_from(config).expect("an array");
        let seed = config.get(&0, 0).expect("read CONFIG").hash_seed;
        let (slots, tag) = if key.prefix_len == 24 || key.prefix_len == 64 {
            let (set, tag) = budget::place(&words_of(&key.addr), key.prefix_len, seed);
            let map = self.ebpf.map(maps::BUDGETS).expect("BUDGETS map");
            let sets: Array<_, BudgetSet> = Array::try_from(map).expect("an array");
            (sets.get(&set, 0).expect("read BUDGETS").slots, tag)
        } else {
            let (set, tag, _) = sources::place(&words_of(&key.addr), key.prefix_len == 128, seed);
            let map = self.ebpf.map(maps::SOURCES).expect("SOURCES map");
            let sets: Array<_, SourceSet> = Array::try_from(map).expect("an array");
            (sets.get(&set, 0).expect("read SOURCES").hosts, tag)
        };
        slots.into_iter().find(|slot| slot.tag == tag)
    }

    /// The flags the kernel created a map of the program with.
    pub fn map_flags(&self, name: &str) -> u32 {
        let aya::maps::Map::Array(data) = self.ebpf.map(name).expect("the map") else {
            panic!("{name} is not an array");
        };
        data.info().expect("the map's info").map_flags()
    }

    /// The flood state the data path keeps in `FLOOD`.
    pub fn flood_state(&self) -> FloodState {
        let map = self.ebpf.map(maps::FLOOD).expect("FLOOD map");
        let state: Array<_, FloodState> = Array::try_from(map).expect("an array");
        state.get(&0, 0).expect("read FLOOD")
    }

    /// Sets `FLOOD`, as another load of the program may have left it.
    pub fn set_flood_state(&mut self, value: FloodState) {
        let map = self.ebpf.map_mut(maps::FLOOD).expect("FLOOD map");
        let mut state: Array<_, FloodState> = Array::try_from(map).expect("an array");
        state.set(0, value, 0).expect("write FLOOD");
    }

    /// SYNs dropped over budget for a source prefix, from `OVER_BUDGET`.
    pub fn over_budget(&self, key: SourceKey) -> Option<u64> {
        let map = self.ebpf.map(maps::OVER_BUDGET).expect("OVER_BUDGET map");
        let over: HashMap<_, SourceKey, u64> = HashMap::try_from(map).expect("a hash map");
        over.get(&key, 0).ok()
    }

    /// Sets one slot of `LIST_IN_USE`: a list trie's flag (`BLOCK_V4`,
    /// ...; false makes the data path skip that trie whatever it holds),
    /// or `INDEX_V4`, which copy of the IPv4 index is live (0: none, the
    /// tries decide).
    pub fn set_list_slot(&mut self, slot: &str, value: u32) {
        let slot = match slot {
            "ALLOW_V4" => list_in_use::ALLOW_V4,
            "ALLOW_V6" => list_in_use::ALLOW_V6,
            "BLOCK_V4" => list_in_use::BLOCK_V4,
            "BLOCK_V6" => list_in_use::BLOCK_V6,
            "MARTIAN_V4" => list_in_use::MARTIAN_V4,
            "MARTIAN_V6" => list_in_use::MARTIAN_V6,
            "INDEX_V4" => list_in_use::INDEX_V4,
            other => panic!("no LIST_IN_USE slot named {other}"),
        };
        let map = self
            .ebpf
            .map_mut(maps::LIST_IN_USE)
            .expect("LIST_IN_USE map");
        let mut flags: Array<_, u32> = Array::try_from(map).expect("LIST_IN_USE is an array");
        flags.set(slot, value, 0).expect("write LIST_IN_USE");
    }

    pub fn list_slot(&self, slot: u32) -> u32 {
        let map = self.ebpf.map(maps::LIST_IN_USE).expect("LIST_IN_USE map");
        let flags: Array<_, u32> = Array::try_from(map).expect("LIST_IN_USE is an array");
        flags.get(&slot, 0).expect("read LIST_IN_USE")
    }
}

/// The port [`CookieLab`]'s listener serves.
pub const LISTEN_PORT: u16 = 80;

/// A namespace with a dual-stack listener on port 80 and the sysctls of a
/// protected host: cookies forced (so the helper hands one out without a
/// real flood) and timestamps without per-connection offsets.
pub struct CookieLab {
    pub harness: Harness,
    _listener: TcpListener,
    pub ns: Netns,
}

impl CookieLab {
    pub fn new(config: IfaceSettings) -> CookieLab {
        let mut harness = Harness::new();
        let ns = Netns::create(&format!("{}-ck", unique_prefix())).expect("netns");
        ns.set_sysctl("net.ipv4.tcp_syncookies", "2").unwrap();
        ns.set_sysctl("net.ipv4.tcp_timestamps", "2").unwrap();
        let listener = ns
            .run(|| TcpListener::bind(("::", LISTEN_PORT)))
            .expect("listen on [::]:80");
        harness.set_config(config);
        CookieLab {
            harness,
            _listener: listener,
            ns,
        }
    }

    pub fn run(&mut self, frame: &[u8]) -> Outcome {
        self.harness.run_in(&self.ns, frame)
    }
}

/// Flood mode always on, cookies with options, as on a host with
/// tcp_timestamps=2 and 32 MiB receive buffers.
pub fn flood_config() -> IfaceSettings {
    IfaceSettings {
        flood_mode: FloodMode::Always as u32,
        mss_v4: 1460,
        mss_v6: 1440,
        wscale: 10,
        ts_cookies: 1,
        tcp_sack: 1,
        tcp_window_scaling: 1,
        ..IfaceSettings::default()
    }
}
