//! Types shared by the XDP program (`xdp-prog`, built for `bpfel-unknown-none`)
//! and synguard's userspace. Every map key and value is defined here once,
//! `#[repr(C)]` and free of implicit padding, so both sides read the same bytes.
#![no_std]

mod reason;

pub use reason::{Counter, Reason, Verdict};

/// Bump this whenever a map's key or value layout changes: userspace pins maps
/// under a directory named after it, so a new build never misreads old maps.
pub const MAP_LAYOUT_VERSION: u32 = 14;

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

pub mod capture;
pub mod flows;
pub mod maps;
pub mod procfs;
#[cfg(feature = "signals")]
pub mod signals;

pub use capture::{CaptureRecord, CaptureSettings};
pub use flows::FlowSlot;

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

/// The value of every list trie's entry (`BLOCK_*`, `ALLOW_*`,
/// `MARTIAN_*`; one type, so the lists code reads and writes them alike).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct ListValue {
    /// When the entry expires, in Unix seconds (0: never); userspace
    /// enforces it.
    pub expiry: u64,
    /// Blocklist entries that are counted (the fleet's): the entry's
    /// slot in [`maps::ENTRY_DROPS`], given by userspace, so a drop is
    /// counted against the entry that matched (longest prefix). 0: not
    /// counted (and every entry of the other lists).
    pub slot: u32,
    pub _pad: u32,
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
    /// With `BLOCK`: a blocklist entry with a counter slot covers (part
    /// of) this range, so the data path looks up which entry matched
    /// before it counts a drop; without, a drop here is counted by
    /// reason only, at no extra cost. May over-state (the entry that
    /// matches may be a longer one without a slot), never under-state.
    pub const COUNTED: u16 = 16;
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
    /// Slots of [`ENTRY_DROPS`](super::maps::ENTRY_DROPS), slot 0 (no
    /// slot) included: at 16 bytes, 256 KiB per CPU per interface, where
    /// the blocklist's 65,536 would take 1 MiB. More than the fleet's
    /// default cap (`[bgp.fleet] max_entries`, 10,000) and the shares'
    /// (`max_announcements`, 64).
    pub const COUNTED_ENTRIES: u32 = 16_384;
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

/// The data path's clock: CLOCK_MONOTONIC_COARSE in ns, read as
/// `jiffies * tick_ns + offset_ns`. `bpf_jiffies64` is a load the verifier
/// inlines, where `bpf_ktime_get_coarse_ns` is a helper call (about 30 ns
/// on a machine with retpolines), paid by every SYN and by every ACK past
/// the remembered flows in a flood. Userspace measures both on load and
/// sets this read-only global ([`CLOCK_GLOBAL`]), so the verifier knows
/// its value; `tick_ns` 0 (an object loaded without it) means the helper.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct ClockSettings {
    /// The kernel's `TICK_NSEC`: ns per jiffy.
    pub tick_ns: u64,
    /// What to add (wrapping) to `jiffies * tick_ns`.
    pub offset_ns: u64,
}

impl ClockSettings {
    /// The kernel's `TICK_NSEC` at `hz` ticks a second.
    pub const fn tick_of(hz: u64) -> u64 {
        (1_000_000_000 + hz / 2) / hz
    }

    /// The ticks a second of `tick_ns`; none where the data path reads
    /// the helper.
    pub fn hz(&self) -> Option<u64> {
        (self.tick_ns > 0).then(|| Self::tick_of(self.tick_ns))
    }
}

/// The name of the program's [`ClockSettings`] global.
pub const CLOCK_GLOBAL: &str = "CLOCK";

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
    /// Sets of `BUDGETS` (networks).
    pub const SETS: u32 = 16_384;
    /// The largest burst a bucket holds (thousandths of a SYN in a u32).
    pub const MAX_BURST: u32 = u32::MAX / 1000;

    /// The set of `BUDGETS` where a network's bucket may be (a /24 or /64
    /// prefix, its address masked), and its tag (never 0).
    #[inline(always)]
    pub fn place(addr: &super::Words, prefix_len: u32, seed: u64) -> (u32, u32) {
        let h = super::hash_address(addr, prefix_len as u64, seed);
        ((h >> 32) as u32 % SETS, h as u32 | 1)
    }
}

/// An address as the data path holds it: its 16 bytes as four 32-bit
/// words, each read from the packet with one load (IPv4's in the first,
/// the others zero). The bytes in memory are the address's, in network
/// order, so a word's value is its four bytes read little-endian (BPF's
/// `bpfel` order, and x86's). Bytes would cost more: LLVM's BPF backend
/// rebuilds a byte array into words with a load, a shift and an or per
/// byte, and spills them, before every hash and trie key that reads one.
pub type Words = [u32; 4];

/// The [`Words`] of an address's 16 bytes (IPv4 in the first four).
#[inline(always)]
pub const fn words_of(bytes: &[u8; 16]) -> Words {
    let b = bytes;
    [
        u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
        u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
        u32::from_le_bytes([b[8], b[9], b[10], b[11]]),
        u32::from_le_bytes([b[12], b[13], b[14], b[15]]),
    ]
}

/// The 16 bytes of an address held as [`Words`].
#[inline(always)]
pub const fn bytes_of(words: &Words) -> [u8; 16] {
    let [a, b, c, d] = [
        words[0].to_le_bytes(),
        words[1].to_le_bytes(),
        words[2].to_le_bytes(),
        words[3].to_le_bytes(),
    ];
    [
        a[0], a[1], a[2], a[3], b[0], b[1], b[2], b[3], c[0], c[1], c[2], c[3], d[0], d[1], d[2],
        d[3],
    ]
}

/// A keyed 64-bit hash of an address and a discriminator, for the data
/// path's tables. The address's bytes 0-7 and 8-15, read little-endian,
/// are mixed in turn (userspace finds the same slots from the bytes:
/// [`words_of`]).
#[inline(always)]
pub fn hash_address(addr: &Words, discriminator: u64, seed: u64) -> u64 {
    let mut h = seed ^ discriminator.wrapping_mul(GOLDEN);
    h = mix(h ^ pair(addr[0], addr[1]));
    mix(h ^ pair(addr[2], addr[3]))
}

/// 2^64 divided by the golden ratio: spreads a small discriminator over
/// the word before it is mixed.
const GOLDEN: u64 = 0x9e37_79b9_7f4a_7c15;

/// Two words as one, `low` in the low half.
#[inline(always)]
pub(crate) fn pair(low: u32, high: u32) -> u64 {
    low as u64 | (high as u64) << 32
}

/// A 64-bit finaliser (murmur3's fmix64).
#[inline(always)]
pub(crate) fn mix(mut x: u64) -> u64 {
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
    /// The SYN's destination address (IPv4 in the first word).
    pub addr: Words,
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
    pub fn place(addr: &super::Words, v6: bool, seed: u64) -> (u32, u32, u64) {
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
    /// As the data path reads them from a packet: an IPv4 address's
    /// bytes as one little-endian word, an IPv6 one's as [`Words`].
    pub v4: [u32; host::INLINE_V4],
    pub v6: [Words; host::INLINE_V6],
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
    unsafe impl aya::Pod for super::FlowSlot {}
    unsafe impl aya::Pod for super::SourceSet {}
    unsafe impl aya::Pod for super::IndexChunk {}
    unsafe impl aya::Pod for super::HostGroup {}
    unsafe impl aya::Pod for super::HostLink {}
    unsafe impl aya::Pod for super::HostSelf {}
    unsafe impl aya::Pod for super::CaptureSettings {}
    unsafe impl aya::Pod for super::ListValue {}
    unsafe impl aya::Pod for super::ClockSettings {}
}

#[cfg(test)]
mod tests;
