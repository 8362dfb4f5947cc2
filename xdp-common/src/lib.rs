//! Types shared by the XDP program (`xdp-prog`, built for `bpfel-unknown-none`)
//! and synguard's userspace. Every map key and value is defined here once,
//! `#[repr(C)]` and free of implicit padding, so both sides read the same bytes.
#![no_std]

/// What the program did with a packet. Each [`Reason`] belongs to exactly one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// Handed to the kernel (`XDP_PASS`).
    Pass,
    /// Dropped in the driver (`XDP_DROP`).
    Drop,
    /// Answered from XDP (`XDP_TX`), e.g. a SYN-ACK carrying a SYN cookie.
    Tx,
    /// The program hit an internal error (`XDP_ABORTED`); the packet is lost.
    Aborted,
}

impl Verdict {
    /// The label value used in metrics and `--json` output.
    pub const fn name(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Drop => "drop",
            Verdict::Tx => "tx",
            Verdict::Aborted => "aborted",
        }
    }

    /// The label value of a packet a dry-run interface passed instead
    /// (docs/design.md#dry-run): `would_drop`, `would_answer`; a pass is
    /// always a pass, an abort always an abort.
    pub const fn would_name(self) -> &'static str {
        match self {
            Verdict::Drop => "would_drop",
            Verdict::Tx => "would_answer",
            other => other.name(),
        }
    }

    /// Whether a dry-run interface passes a packet with this verdict
    /// instead, and counts it as what it would have been.
    pub const fn held_in_dry_run(self) -> bool {
        matches!(self, Verdict::Drop | Verdict::Tx)
    }
}

/// Why the program gave a packet its verdict. The discriminant indexes the
/// per-CPU counter array, so the order is part of the map layout: append new
/// reasons at the end and bump [`MAP_LAYOUT_VERSION`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum Reason {
    /// Not IP: ARP, LLDP and other EtherTypes go to the kernel untouched.
    NonIp = 0,
    /// IP but not TCP (ICMP, ICMPv6 and neighbour discovery, UDP, ...).
    NonTcp = 1,
    /// TCP the program has no business with: ACKs and data of flows, RSTs.
    Tcp = 2,
    /// A SYN handed to the kernel (normal mode, or a port synguard does not guard).
    Syn = 3,
    /// The source is allowlisted: every other check skipped.
    Allowlist = 4,
    /// An ACK whose SYN cookie the kernel's helper validated.
    ValidCookie = 5,
    /// An IP fragment that cannot hide a TCP handshake (the fragment policy:
    /// docs/design.md#why-these-parsing-choices).
    Fragment = 6,
    /// A SYN answered from XDP with a SYN-ACK carrying a kernel SYN cookie.
    SynAck = 7,
    /// Truncated or inconsistent headers the kernel would discard too.
    Malformed = 8,
    /// The source matches the blocklist.
    Blocklist = 9,
    /// The source prefix spent its SYN budget during a flood.
    Rate = 10,
    /// An ACK to a listener whose cookie did not validate during a flood.
    BadCookie = 11,
    /// A SYN from an address that cannot be a real source.
    Martian = 12,
    /// A SYN with FIN or RST also set.
    BadFlags = 13,
    /// A SYN during a flood to a port with no listener.
    NoListener = 14,
    /// A fragment that could hide a SYN from the checks: dropped.
    FragmentDrop = 15,
    /// More VLAN tags or IPv6 extension headers than the parser walks: dropped
    /// rather than passed unchecked.
    HeaderChain = 16,
    /// The program failed internally (a helper returned an unexpected error).
    Internal = 17,
    /// A SYN the program meant to answer with a cookie but could not (the
    /// frame could not be resized, its packet runs past the frame's first
    /// buffer, or the cookie path's program is missing from `TAIL`):
    /// handed to the kernel, which answers it.
    CookieFallback = 18,
    /// A SYN in a flood not addressed to this host: a frame for another
    /// MAC, a VLAN the host has no device for, or a destination that is not
    /// one of the namespace's local addresses (a router's forwarded
    /// traffic, a subnet's broadcast). Handed to the kernel, which forwards
    /// or discards it as it would without synguard.
    NotLocal = 19,
}

impl Reason {
    /// How many reasons there are. The counter array holds twice as many
    /// slots: the first `COUNT` for what the program did, the next `COUNT`
    /// (at [`Reason::would_slot`]) for what a dry-run interface would have
    /// done.
    pub const COUNT: u32 = 20;

    /// Every reason, in discriminant order.
    pub const ALL: [Reason; Reason::COUNT as usize] = [
        Reason::NonIp,
        Reason::NonTcp,
        Reason::Tcp,
        Reason::Syn,
        Reason::Allowlist,
        Reason::ValidCookie,
        Reason::Fragment,
        Reason::SynAck,
        Reason::Malformed,
        Reason::Blocklist,
        Reason::Rate,
        Reason::BadCookie,
        Reason::Martian,
        Reason::BadFlags,
        Reason::NoListener,
        Reason::FragmentDrop,
        Reason::HeaderChain,
        Reason::Internal,
        Reason::CookieFallback,
        Reason::NotLocal,
    ];

    /// The reason of a label value ([`Reason::name`]).
    pub fn by_name(name: &str) -> Option<Reason> {
        Reason::ALL.into_iter().find(|r| r.name() == name)
    }

    /// The counter slot of a packet a dry-run interface passed that
    /// enforcing would have dropped or answered for this reason.
    #[inline(always)]
    pub const fn would_slot(self) -> u32 {
        Reason::COUNT + self as u32
    }

    /// The verdict this reason always comes with.
    pub const fn verdict(self) -> Verdict {
        match self {
            Reason::NonIp
            | Reason::NonTcp
            | Reason::Tcp
            | Reason::Syn
            | Reason::Allowlist
            | Reason::ValidCookie
            | Reason::Fragment
            | Reason::CookieFallback
            | Reason::NotLocal => Verdict::Pass,
            Reason::SynAck => Verdict::Tx,
            Reason::Malformed
            | Reason::Blocklist
            | Reason::Rate
            | Reason::BadCookie
            | Reason::Martian
            | Reason::BadFlags
            | Reason::NoListener
            | Reason::FragmentDrop
            | Reason::HeaderChain => Verdict::Drop,
            Reason::Internal => Verdict::Aborted,
        }
    }

    /// The label value used in metrics and `--json` output.
    pub const fn name(self) -> &'static str {
        match self {
            Reason::NonIp => "non_ip",
            Reason::NonTcp => "non_tcp",
            Reason::Tcp => "tcp",
            Reason::Syn => "syn",
            Reason::Allowlist => "allowlist",
            Reason::ValidCookie => "valid_cookie",
            Reason::Fragment => "later_fragment",
            Reason::SynAck => "syn_ack",
            Reason::Malformed => "malformed",
            Reason::Blocklist => "blocklist",
            Reason::Rate => "rate",
            Reason::BadCookie => "bad_cookie",
            Reason::Martian => "martian",
            Reason::BadFlags => "bad_flags",
            Reason::NoListener => "no_listener",
            Reason::FragmentDrop => "fragment",
            Reason::HeaderChain => "header_chain",
            Reason::Internal => "internal",
            Reason::CookieFallback => "cookie_fallback",
            Reason::NotLocal => "not_local",
        }
    }
}

/// One counter slot: packets and bytes (whole frames as XDP sees them).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct Counter {
    pub packets: u64,
    pub bytes: u64,
}

/// Bump this whenever a map's key or value layout changes: userspace pins maps
/// under a directory named after it, so a new build never misreads old maps.
pub const MAP_LAYOUT_VERSION: u32 = 12;

/// `BPF_F_MMAPABLE`, for the arrays whose values are laid out to fit cache
/// lines (`BUDGETS`, `SOURCES`: 64-byte sets read at random in a flood;
/// `LISTENERS`: 32-byte slots; `FLOOD`, `CONFIG`, `LIST_IN_USE`, read for
/// every SYN or packet): the kernel then starts their values on a page.
/// Without it they start 56 bytes into a line (after `struct bpf_array`),
/// and every set spans two lines: a SYN in a spoofed flood missed four
/// lines instead of two. Nothing maps them.
pub const ALIGNED_ARRAY: u32 = 1 << 10;

/// The XDP program attached to each interface, in the object.
pub const PROGRAM: &str = "synguard";
/// The cookie path's program, in the object: a tail call's target
/// ([`maps::TAIL`]), never attached itself.
pub const COOKIE_PROGRAM: &str = "synguard_syn";

/// Names of the maps, as declared in the XDP program and pinned by userspace.
pub mod maps {
    /// Per interface: `PerCpuArray<Counter>` indexed by `Reason`, then by
    /// [`super::Reason::would_slot`] (dry-run).
    pub const COUNTERS: &str = "COUNTERS";
    /// Per interface: `Array<IfaceSettings>`, one entry, written by userspace.
    pub const CONFIG: &str = "CONFIG";
    /// Per interface: `Array<FloodState>`, one entry, kept by the data path.
    pub const FLOOD: &str = "FLOOD";
    /// Per interface: `PerCpuArray<u64>`, one entry: SYNs seen, per CPU.
    pub const SYN_COUNT: &str = "SYN_COUNT";
    /// Per interface: `Array<BudgetSet>`, networks' SYN budgets in a flood
    /// (see [`super::budget`]).
    pub const BUDGETS: &str = "BUDGETS";
    /// Per interface: `Array<SourceSet>`, hosts' SYN budgets and recent
    /// peers (see [`super::sources`]).
    pub const SOURCES: &str = "SOURCES";
    /// Per interface: `Array<ListenerSlot>` by destination port (see
    /// [`super::listeners`]).
    pub const LISTENERS: &str = "LISTENERS";
    /// Per interface: `ProgramArray`, the cookie path's program
    /// ([`super::COOKIE_PROGRAM`]) at index 0, which the data path hands the
    /// SYNs it answers with a tail call. Pinned with the rest, so that the
    /// program attached goes on answering when the daemon has stopped.
    pub const TAIL: &str = "TAIL";
    /// Per interface: `LruHashMap<SourceKey, u64>`, SYNs dropped over budget
    /// per source prefix, for userspace to turn into timed blocks; the data
    /// path adds to it at most once a second per prefix.
    pub const OVER_BUDGET: &str = "OVER_BUDGET";
    /// Shared: `LpmTrie<[u8; 4], u64>` and `LpmTrie<[u8; 16], u64>`; the
    /// value is the entry's expiry in Unix seconds (0: never), which
    /// userspace enforces.
    pub const BLOCK_V4: &str = "BLOCK_V4";
    pub const BLOCK_V6: &str = "BLOCK_V6";
    /// Shared: `LpmTrie<[u8; 4], u64>` and `LpmTrie<[u8; 16], u64>`.
    pub const ALLOW_V4: &str = "ALLOW_V4";
    pub const ALLOW_V6: &str = "ALLOW_V6";
    /// Shared: `LpmTrie<[u8; 4], u64>` and `LpmTrie<[u8; 16], u64>`: SYN
    /// sources that cannot be real.
    pub const MARTIAN_V4: &str = "MARTIAN_V4";
    pub const MARTIAN_V6: &str = "MARTIAN_V6";
    /// Shared: `Array<u32>` indexed by [`super::list_in_use`]: 0 when that
    /// list trie is known to be empty, so the data path skips its lookup.
    /// Written only by userspace, under the state lock: set before an
    /// insert, cleared only after a delete left the trie empty, so it may
    /// over-state (a lookup for nothing) but never under-state (a bypass).
    pub const LIST_IN_USE: &str = "LIST_IN_USE";
    /// Shared: the IPv4 list index (see [`super::index`]), compiled from
    /// the IPv4 tries by userspace: `Array<IndexChunk>` by first octet,
    /// `Array<IndexChunk>` of /16 groups, `Array<HostGroup>` of /24 groups.
    pub const INDEX_V4: &str = "INDEX_V4";
    pub const INDEX_V4_NETS: &str = "INDEX_V4_NETS";
    pub const INDEX_V4_HOSTS: &str = "INDEX_V4_HOSTS";
    /// Per interface: `Array<HostSelf>`, one entry: the interface's own
    /// MAC address and the first local host addresses (see
    /// [`super::host`]). Written by userspace.
    pub const HOST: &str = "HOST";
    /// Per interface: `HashMap<u32, HostLink>`, the VLAN devices the host
    /// has on the interface, by [`super::host::vlan_key`], with their MACs.
    pub const VLANS: &str = "VLANS";
    /// Per interface: `LpmTrie<[u8; 4], u8>` and `LpmTrie<[u8; 16], u8>`:
    /// the destinations local to the interface's namespace (its local
    /// routes: every address, AnyIP ranges).
    pub const LOCAL_V4: &str = "LOCAL_V4";
    pub const LOCAL_V6: &str = "LOCAL_V6";
    /// Per interface: `Array<CaptureSettings>`, one entry, written by
    /// `synguard capture` (see [`super::capture`]).
    pub const CAPTURE: &str = "CAPTURE";
    /// Per interface: a ring buffer of [`super::CaptureRecord`]s, filled
    /// only while a capture runs.
    pub const CAPTURE_RING: &str = "CAPTURE_RING";
    /// Maps shared by every interface's program instance.
    pub const SHARED: [&str; 10] = [
        BLOCK_V4,
        BLOCK_V6,
        ALLOW_V4,
        ALLOW_V6,
        MARTIAN_V4,
        MARTIAN_V6,
        LIST_IN_USE,
        INDEX_V4,
        INDEX_V4_NETS,
        INDEX_V4_HOSTS,
    ];
    /// Maps each interface's instance has for itself.
    pub const PER_INTERFACE: [&str; 15] = [
        COUNTERS,
        CONFIG,
        FLOOD,
        SYN_COUNT,
        BUDGETS,
        OVER_BUDGET,
        LISTENERS,
        SOURCES,
        TAIL,
        HOST,
        VLANS,
        LOCAL_V4,
        LOCAL_V6,
        CAPTURE,
        CAPTURE_RING,
    ];
}

/// Packets captured where they settle, for `synguard capture` and `top`
/// (docs/design.md#capture): the program copies the first
/// [`capture::SNAP_LEN`] bytes of a frame, with its counter slot, into a
/// ring buffer, only while [`CaptureSettings::until_ns`] is in the future.
pub mod capture {
    /// Bytes of each frame copied: every header a SYN can carry (two VLAN
    /// tags, IPv6 with extension headers, TCP with options), not payload.
    pub const SNAP_LEN: usize = 256;
    /// The ring buffer per interface (a power of two pages): about 3,600
    /// records; a reader that falls behind loses records, never packets.
    pub const RING_BYTES: u32 = 1 << 20;
    /// How long a capture's flag lasts unless renewed: a capture that dies
    /// without clearing it costs the data path at most this long.
    pub const LEASE_NS: u64 = 2_000_000_000;
}

/// What `synguard capture` asks of the data path, in `CAPTURE`. All zero:
/// nothing captured.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct CaptureSettings {
    /// Capture until then (CLOCK_MONOTONIC ns); 0: off.
    pub until_ns: u64,
    /// Counter slots to capture: bit `slot` for each (`Reason as u32`, or
    /// [`Reason::would_slot`] for dry-run's).
    pub slots: u64,
    /// Keep one packet in `sample` (0 and 1: every one).
    pub sample: u32,
    pub _pad: u32,
}

// Every counter slot has its bit in `CaptureSettings::slots`.
const _: () = assert!(2 * Reason::COUNT <= 64);

/// One captured packet, as the data path writes it into `CAPTURE_RING`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct CaptureRecord {
    /// CLOCK_MONOTONIC ns when it settled.
    pub ts_ns: u64,
    /// The frame's length as it left the program, and how much of it
    /// is in `data`.
    pub len: u32,
    pub caplen: u32,
    /// The counter slot it was counted in (its reason, or dry-run's).
    pub slot: u32,
    pub _pad: u32,
    /// The frame as it left the program (an answer: the SYN-ACK sent).
    pub data: [u8; capture::SNAP_LEN],
}

/// Indexes of [`maps::LIST_IN_USE`], one per list trie.
pub mod list_in_use {
    pub const ALLOW_V4: u32 = 0;
    pub const ALLOW_V6: u32 = 1;
    pub const BLOCK_V4: u32 = 2;
    pub const BLOCK_V6: u32 = 3;
    pub const MARTIAN_V4: u32 = 4;
    pub const MARTIAN_V6: u32 = 5;
    /// Not a trie's flag: which copy of the IPv4 list index is live, plus
    /// one; 0 while there is none (a change to the lists is under way, or
    /// none was ever made), and the data path asks the IPv4 tries.
    pub const INDEX_V4: u32 = 6;
    /// The length of the array.
    pub const COUNT: u32 = 7;
}

/// The IPv4 list index: the allowlist, blocklist and martian list of IPv4
/// compiled by userspace into direct-indexed tables, so the data path
/// finds a source's lists in at most three array loads (inlined by the
/// verifier: no helper call, no trie walk) where each LPM trie lookup is
/// a helper call that walks the trie. DIR-16-8-8: a first-level entry per
/// /16, holding the flags of the whole /16 or the number of a group with
/// an entry per /24 of it; a /24 entry likewise holds flags or the number
/// of a group with the flags of each host.
///
/// The tries stay the lists' truth (entries, expiry, what `list` shows);
/// the index is rebuilt from them after every change. Groups are finite:
/// a range the index has no group left for is marked [`TRIES`](index::TRIES)
/// and the data path asks the tries there, so the index can be slow but
/// never wrong. There are two copies: userspace switches the data path to
/// the tries, changes them, writes the copy not last in use, then switches
/// to it ([`list_in_use::INDEX_V4`]), so a reader never sees a half-written
/// copy and a crash mid-change leaves the tries in charge.
pub mod index {
    /// Entry bits: the source is on the allowlist, blocklist, martian list.
    pub const ALLOW: u16 = 1;
    pub const BLOCK: u16 = 2;
    pub const MARTIAN: u16 = 4;
    /// The index holds nothing for this range: ask the tries.
    pub const TRIES: u16 = 8;
    /// The entry is not flags but a group number (the low 15 bits) in the
    /// next level's map.
    pub const GROUP: u16 = 0x8000;
    /// Copies of the index, each with its own chunks and groups.
    pub const COPIES: u32 = 2;
    /// First-level chunks per copy: one per first octet.
    pub const CHUNKS: u32 = 256;
    /// /16 groups and /24 groups per copy.
    pub const NET_GROUPS: u32 = 2048;
    pub const HOST_GROUPS: u32 = 8192;
}

/// 256 entries of the IPv4 list index: a first-level chunk (by the second
/// octet) or a /16 group (by the third). Each is flags, or `GROUP` and a
/// group number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct IndexChunk(pub [u16; 256]);

/// The flags of each host of a /24 (by the fourth octet), in the IPv4
/// list index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct HostGroup(pub [u8; 256]);

/// Map sizes (entries).
pub mod sizes {
    pub const BLOCKLIST: u32 = 65_536;
    pub const ALLOWLIST: u32 = 4_096;
    pub const MARTIANS: u32 = 256;
    pub const OVER_BUDGET: u32 = 4_096;
}

/// When the data path answers SYNs itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum FloodMode {
    /// Never: SYNs always go to the kernel.
    Off = 0,
    /// When the SYN rate says there is a flood (with hysteresis).
    Auto = 1,
    /// Always, as if a flood were on.
    Always = 2,
}

/// A SYN budget: a token bucket refilled at `rate` SYNs per second, holding
/// at most `burst`. A zero rate turns the budget off.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct Budget {
    pub rate: u32,
    pub burst: u32,
}

/// Per-interface settings, written by userspace into `CONFIG`. All zero is
/// a safe value: flood mode off, no budgets, no TCP options in cookies.
/// (Not `Config`: that is the daemon's TOML file. The map keeps its name,
/// part of the pin layout.)
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct IfaceSettings {
    /// A `FloodMode` discriminant.
    pub flood_mode: u32,
    /// SYNs per second on this interface above which flood mode engages.
    pub syn_rate_on: u32,
    /// SYNs per second below which flood mode may end (hysteresis).
    pub syn_rate_off: u32,
    /// How long flood mode stays on after the rate was last above
    /// `syn_rate_off`, in milliseconds.
    pub flood_hold_ms: u32,
    /// MSS advertised in SYN-ACKs sent from XDP (IPv4, IPv6).
    pub mss_v4: u16,
    pub mss_v6: u16,
    /// Window scale the kernel will use for a cookie connection (it derives
    /// it from tcp_rmem and rmem_max when it accepts the ACK).
    pub wscale: u8,
    /// 1 when the listener's namespace has net.ipv4.tcp_timestamps=2, the
    /// only setting under which the kernel decodes options from a timestamp
    /// an XDP program made (no per-connection offset). Then cookies carry
    /// window scaling and SACK; otherwise they carry the MSS only.
    pub ts_cookies: u8,
    /// Mirrors of net.ipv4.tcp_sack and tcp_window_scaling: a cookie that
    /// claims a disabled option is refused by the kernel.
    pub tcp_sack: u8,
    pub tcp_window_scaling: u8,
    /// SYN budgets per source: IPv4 /32 and /24, IPv6 /128 and /64.
    pub budget_v4_host: Budget,
    pub budget_v4_net: Budget,
    pub budget_v6_host: Budget,
    pub budget_v6_net: Budget,
    /// Keys the data path's hashes ([`budget::place`], [`sources::place`]);
    /// random per interface, kept across settings updates.
    pub hash_seed: u64,
    /// Destination ports whose SYNs go to the kernel even in a flood (the
    /// operator guards only some ports). Empty: every port is guarded.
    pub unguarded_ports: PortSet,
    /// Non-zero: dry-run (docs/design.md#dry-run). Everything is decided
    /// and counted as when enforcing, budgets and flood detection
    /// included, but a packet that would be dropped or answered is passed
    /// untouched and counted at its [`Reason::would_slot`]. Switching is
    /// this one write (`synguard arm`), never a reattach.
    pub dry_run: u32,
    pub _pad: u32,
}

/// A set of TCP ports as a bitmap: bit `p % 64` of word `p / 64`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct PortSet(pub [u64; 1024]);

impl Default for PortSet {
    fn default() -> Self {
        PortSet([0; 1024])
    }
}

impl PortSet {
    #[inline(always)]
    pub fn contains(&self, port: u16) -> bool {
        self.0[(port >> 6) as usize] & (1 << (port & 63)) != 0
    }

    pub fn insert(&mut self, port: u16) {
        self.0[(port >> 6) as usize] |= 1 << (port & 63);
    }
}

/// Flood detection state, kept by the data path in `FLOOD`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct FloodState {
    /// Start of the current counting window (CLOCK_MONOTONIC_COARSE ns, as
    /// every time here: the data path reads the clock as of the last tick).
    pub window_start_ns: u64,
    /// SYNs seen on all CPUs together when the window started.
    pub window_start_syns: u64,
    /// When a window last measured a rate above the threshold in force.
    pub last_over_ns: u64,
    /// When flood mode last engaged (0: never).
    pub engaged_ns: u64,
    /// SYN rate of the last finished window, per second.
    pub last_rate: u64,
    /// 1 while flood mode is on.
    pub active: u32,
    pub _pad: u32,
}

/// How long one flood-detection window lasts.
pub const FLOOD_WINDOW_NS: u64 = 100_000_000;

/// A source prefix: the key of the budget maps.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[repr(C)]
pub struct SourceKey {
    /// 32 or 24 for IPv4, 128 or 64 for IPv6.
    pub prefix_len: u32,
    /// The masked address; IPv4 in the first four bytes.
    pub addr: [u8; 16],
}

/// A source prefix's token bucket: in `BUDGETS` for a network, in
/// `SOURCES` for a host.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct BudgetSlot {
    /// Whose bucket this is ([`budget::place`], [`sources::place`]); 0:
    /// nobody's.
    pub tag: u32,
    /// Thousandths of a SYN, as of `last_ns` (a burst is held to
    /// 4,294,967 SYNs).
    pub milli_tokens: u32,
    pub last_ns: u64,
    /// SYNs dropped over this budget since they were last added to
    /// `OVER_BUDGET`, and when that was (`now >> 30`, about seconds,
    /// wrapping).
    pub dropped: u32,
    pub reported: u16,
    pub _pad: u16,
}

/// Where a network's bucket may be: two slots, in one cache line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct BudgetSet {
    pub slots: [BudgetSlot; 2],
    pub _pad: [u64; 2],
}

/// What the data path keeps per source address, in one cache line: the
/// recent-peer bits of the addresses that hash here (one word per
/// generation, [`sources`]) and two slots for their hosts' buckets, so a
/// SYN in a flood reads one random line for both.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct SourceSet {
    pub peers: [u64; 2],
    pub hosts: [BudgetSlot; 2],
}

/// Per-source SYN budgets: token buckets in set-associative tables (two
/// ways), networks in `BUDGETS` and hosts in `SOURCES` ([`sources`]),
/// found by a keyed hash of the prefix. An array lookup the verifier
/// inlines, and a hash of a few multiplies, where an LRU hash map costs a
/// helper call, a jhash and a list update per lookup. A new prefix takes
/// the slot of its set used least recently, so prefixes that keep sending
/// keep their buckets while a spoofed flood churns the rest; losing a
/// bucket only ever gives a prefix a full one. The seed
/// (`IfaceSettings::hash_seed`) is random per interface, so a flood cannot aim
/// its sources at one set.
pub mod budget {
    use super::SourceKey;

    /// Sets of `BUDGETS` (networks).
    pub const SETS: u32 = 16_384;
    /// The largest burst a bucket holds (thousandths of a SYN in a u32).
    pub const MAX_BURST: u32 = u32::MAX / 1000;

    /// The set of `BUDGETS` where a network's bucket may be (a /24 or /64
    /// key), and its tag (never 0).
    #[inline(always)]
    pub fn place(key: &SourceKey, seed: u64) -> (u32, u32) {
        let h = super::hash_address(&key.addr, key.prefix_len as u64, seed);
        ((h >> 32) as u32 % SETS, h as u32 | 1)
    }
}

/// A keyed 64-bit hash of an address (IPv4 in the first four bytes) and a
/// discriminator, for the data path's tables.
#[inline(always)]
pub fn hash_address(addr: &[u8; 16], discriminator: u64, seed: u64) -> u64 {
    let a = addr;
    let low = u64::from_le_bytes([a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7]]);
    let high = u64::from_le_bytes([a[8], a[9], a[10], a[11], a[12], a[13], a[14], a[15]]);
    let mut h = seed ^ discriminator.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    h = mix(h ^ low);
    mix(h ^ high)
}

/// A 64-bit finaliser (murmur3's fmix64).
#[inline(always)]
fn mix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

/// Where the data path remembers, per interface, whether a destination
/// port has a listener (`LISTENERS`, by port): so that in a flood only one
/// SYN a second per port and address pays for the socket lookup and the
/// kernel's socket-bound cookie helper (which also renews the listener's
/// overflow stamp, without which the kernel refuses cookie ACKs), and the
/// rest get their cookie from the raw helper (the same secret, MSS table
/// and cookie).
pub mod listeners {
    /// How long a lookup's result is used.
    pub const FRESH_NS: u64 = 1_000_000_000;
    /// `ListenerSlot::state`: the socket lookup found a listener and the
    /// kernel handed out a cookie for it.
    pub const LISTENING: u32 = 1;
    /// `ListenerSlot::state`: no socket took the SYN.
    pub const NONE: u32 = 2;
}

/// What the last full look at a port found, for one local address.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct ListenerSlot {
    /// The SYN's destination address (IPv4 in the first four bytes).
    pub addr: [u8; 16],
    /// 4 or 6; 0: never looked.
    pub family: u32,
    /// [`listeners::LISTENING`] or [`listeners::NONE`].
    pub state: u32,
    /// When (the data path's clock).
    pub checked_ns: u64,
}

/// What the data path keeps per source address, per interface
/// (`SOURCES`, an array of [`SourceSet`]): host budgets, and recent peers.
///
/// Recent peers: a bit per hash slot of source addresses seen in a
/// connection the kernel has (a FIN of a connection it holds, an ACK with
/// a valid cookie), in two generations of about a minute each. A SYN from
/// a recent peer may be for a 4-tuple the kernel still holds (TIME_WAIT
/// after the server closed, 60 s), where the kernel itself would not just
/// answer with a cookie; so in a flood such a SYN takes the full socket
/// lookup, and the rest (spoofed sources are never peers) the cheap path.
/// A slot shared by two addresses only sends more SYNs down the full path.
pub mod sources {
    /// Sets (64 bytes each): 1 MiB, 32,768 host buckets and 917,504
    /// recent-peer slots.
    pub const SETS: u32 = 16_384;
    /// Peer slots per generation word: the low 56 bits; the top byte holds
    /// the word's generation.
    pub const BITS: u64 = 56;
    /// A generation lasts 2^36 ns (about 69 s); a peer is recent if seen
    /// in this one or the last (69 to 137 s).
    pub const GENERATION_SHIFT: u32 = 36;

    /// A source address's set, the tag of its host bucket (never 0), and
    /// its recent-peer bit.
    #[inline(always)]
    pub fn place(addr: &[u8; 16], v6: bool, seed: u64) -> (u32, u32, u64) {
        let h = super::hash_address(addr, if v6 { 128 } else { 32 }, seed);
        let set = (h >> 32) as u32 % SETS;
        // A bit in [0, 56) from 16 bits the set and tag do not use,
        // without a division.
        let bit = (((h >> 48) & 0xffff) * BITS) >> 16;
        (set, h as u32 | 1, 1 << bit)
    }
}

/// What makes a SYN this host's to answer, as the kernel decides it
/// (net/ethernet/eth.c `eth_type_trans`, net/core/dev.c
/// `__netif_receive_skb_core` and net/8021q/vlan_core.c `vlan_do_receive`,
/// net/ipv4/route.c `ip_route_input_slow`, `tcp_v4_rcv`/`tcp_v6_rcv`, which
/// discard any segment whose frame was not `PACKET_HOST`):
/// - the frame is for the interface's own MAC, or, on a VLAN, for the
///   VLAN device's (group MACs never: TCP discards them);
/// - every VLAN tag other than a priority tag (VLAN id 0, which the kernel
///   strips) names a VLAN device the host has on the interface, by id and
///   tag protocol;
/// - the destination is local to the namespace: on a local route, which
///   is what every address of every interface adds (the weak host model),
///   and AnyIP ranges too. A subnet's broadcast address has a broadcast
///   route, not a local one. Loopback destinations only on loopback,
///   IPv6 link-local ones only on the interface (and VLANs) they are on.
///
/// Userspace keeps the maps from netlink (`HOST`, `VLANS`, `LOCAL_V4`,
/// `LOCAL_V6`); all empty, nothing is answered.
pub mod host {
    /// The VLAN chain of a frame as one key: for each tag that is not a
    /// priority tag, outermost first, 13 bits: 802.1ad's bit, then the
    /// VLAN id. 0: untagged (or priority tags only).
    #[inline(always)]
    pub fn vlan_key(key: u32, ad: bool, vid: u16) -> u32 {
        if vid == 0 {
            key
        } else {
            key << 13 | (ad as u32) << 12 | vid as u32
        }
    }

    /// Local host addresses `HOST` holds inline per family: compared in a
    /// few instructions, where a trie lookup is a helper call and a walk.
    pub const INLINE_V4: usize = 4;
    pub const INLINE_V6: usize = 2;

    /// Entries of `VLANS`, `LOCAL_V4`, `LOCAL_V6`.
    pub const MAX_VLANS: u32 = 4_096;
    pub const MAX_LOCAL_V4: u32 = 16_384;
    pub const MAX_LOCAL_V6: u32 = 16_384;
}

/// What `HOST` holds, in one cache line: the interface's MAC, and the
/// namespace's local destinations when they are few host addresses, so
/// that the data path needs no trie lookup for them. Where the namespace
/// has more (or ranges), `more_v4`/`more_v6` send the data path on to the
/// tries (`LOCAL_V4`, `LOCAL_V6`), which always hold every one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct HostSelf {
    pub mac: [u8; 6],
    /// How many of `v4` and `v6` are in use.
    pub n_v4: u8,
    pub n_v6: u8,
    /// Non-zero: there are local destinations beyond the inline ones.
    pub more_v4: u8,
    pub more_v6: u8,
    pub _pad: [u8; 6],
    pub v4: [[u8; 4]; host::INLINE_V4],
    pub v6: [[u8; 16]; host::INLINE_V6],
}

/// A VLAN device's MAC address, in `VLANS`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct HostLink {
    pub mac: [u8; 6],
    pub _pad: [u8; 2],
}

/// Bounds of the parser (docs/design.md#the-data-path).
pub mod limits {
    /// VLAN tags (802.1Q / 802.1ad) walked before the IP header; a frame with
    /// more is dropped as `header_chain`.
    pub const MAX_VLAN_TAGS: usize = 2;
    /// IPv6 extension headers walked before the upper-layer header; a chain
    /// that is longer is dropped as `header_chain`.
    pub const MAX_IPV6_EXT_HEADERS: usize = 8;
    /// TCP options read from a SYN: enough for 40 one-byte options, the
    /// whole option space, so no option is ever skipped.
    pub const MAX_TCP_OPTIONS: usize = 40;
    /// CPUs whose SYN counts flood detection sums.
    pub const MAX_CPUS: u32 = 512;
}

#[cfg(feature = "user")]
mod user {
    // SAFETY: each is plain-old-data, `#[repr(C)]`, and laid out without
    // implicit padding (explicit `_pad` fields where needed).
    unsafe impl aya::Pod for super::Counter {}
    unsafe impl aya::Pod for super::IfaceSettings {}
    unsafe impl aya::Pod for super::FloodState {}
    unsafe impl aya::Pod for super::SourceKey {}
    unsafe impl aya::Pod for super::BudgetSlot {}
    unsafe impl aya::Pod for super::BudgetSet {}
    unsafe impl aya::Pod for super::ListenerSlot {}
    unsafe impl aya::Pod for super::SourceSet {}
    unsafe impl aya::Pod for super::IndexChunk {}
    unsafe impl aya::Pod for super::HostGroup {}
    unsafe impl aya::Pod for super::HostLink {}
    unsafe impl aya::Pod for super::HostSelf {}
    unsafe impl aya::Pod for super::CaptureSettings {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_index_the_counter_array_in_order() {
        for (i, reason) in Reason::ALL.iter().enumerate() {
            assert_eq!(
                *reason as usize, i,
                "{reason:?} is out of place in Reason::ALL"
            );
        }
    }

    #[test]
    fn shared_types_have_no_implicit_padding() {
        use core::mem::size_of;
        assert_eq!(
            size_of::<IfaceSettings>(),
            4 * 4 + 2 * 2 + 4 + 4 * 8 + 8 + 8192 + 8
        );
        assert_eq!(size_of::<FloodState>(), 5 * 8 + 2 * 4);
        assert_eq!(size_of::<SourceKey>(), 4 + 16);
        assert_eq!(size_of::<BudgetSlot>(), 24);
        assert_eq!(size_of::<BudgetSet>(), 64);
        assert_eq!(size_of::<SourceSet>(), 64);
        assert_eq!(size_of::<ListenerSlot>(), 32);
        assert_eq!(size_of::<HostLink>(), 8);
        assert_eq!(size_of::<HostSelf>(), 64);
        assert_eq!(size_of::<CaptureSettings>(), 24);
        assert_eq!(size_of::<CaptureRecord>(), 24 + capture::SNAP_LEN);
    }

    #[test]
    fn budget_and_source_places_spread() {
        let addr = |last: u8| {
            let mut addr = [0; 16];
            addr[..4].copy_from_slice(&[198, 18, 7, last]);
            addr
        };
        let mut used = [0u32; 64];
        let mut bits = 0u64;
        for last in 0..=255u8 {
            let (set, tag, bit) = sources::place(&addr(last), false, 7);
            assert!(set < sources::SETS && tag & 1 == 1);
            assert!(bit != 0 && bit < 1 << sources::BITS);
            bits |= bit;
            used[(set % 64) as usize] += 1;
            let key = SourceKey {
                prefix_len: 24,
                addr: addr(last),
            };
            let (set, tag) = budget::place(&key, 7);
            assert!(set < budget::SETS && tag & 1 == 1);
        }
        assert!(used.iter().all(|&n| n < 16), "256 hosts bunch up: {used:?}");
        assert!(bits.count_ones() > 48, "peer bits bunch up: {bits:#x}");
        // The seed moves them; IPv4 and IPv6 addresses are apart.
        assert_ne!(
            sources::place(&addr(1), false, 7),
            sources::place(&addr(1), false, 8)
        );
        assert_ne!(
            sources::place(&addr(1), false, 7),
            sources::place(&addr(1), true, 7)
        );
    }

    #[test]
    fn port_sets_hold_every_port() {
        let mut set = PortSet::default();
        for port in [0, 1, 63, 64, 443, 65535] {
            assert!(!set.contains(port));
            set.insert(port);
            assert!(set.contains(port));
        }
        assert!(!set.contains(80));
    }

    #[test]
    fn each_verdict_and_reason_label_pair_is_unique() {
        for (i, a) in Reason::ALL.iter().enumerate() {
            for b in &Reason::ALL[i + 1..] {
                assert!(
                    (a.verdict(), a.name()) != (b.verdict(), b.name()),
                    "{a:?} and {b:?} would share metric labels"
                );
            }
        }
    }
}
