//! Names of the maps, as declared in the XDP program and pinned by userspace.
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
/// Per interface: `Array<FlowSlot>`, connections the socket lookup
/// found established in a flood (see [`super::flows`]).
pub const FLOWS: &str = "FLOWS";
/// Per interface: `ProgramArray`, the cookie path's program
/// ([`super::COOKIE_PROGRAM`]) at index 0, which the data path hands the
/// SYNs it answers with a tail call. Pinned with the rest, so that the
/// program attached goes on answering when the daemon has stopped.
pub const TAIL: &str = "TAIL";
/// Per interface: `LruHashMap<SourceKey, u64>`, SYNs dropped over budget
/// per source prefix, for userspace to turn into timed blocks; the data
/// path adds to it at most once a second per prefix.
pub const OVER_BUDGET: &str = "OVER_BUDGET";
/// Shared: `LpmTrie<[u8; 4], ListValue>` and `LpmTrie<[u8; 16],
/// ListValue>` (see [`super::ListValue`]: the entry's expiry, which
/// userspace enforces, and its counter slot in [`ENTRY_DROPS`]). Up to
/// layout 13 the value was the expiry alone, a `u64`.
pub const BLOCK_V4: &str = "BLOCK_V4";
pub const BLOCK_V6: &str = "BLOCK_V6";
/// Shared: `LpmTrie<[u8; 4], ListValue>` and `LpmTrie<[u8; 16],
/// ListValue>`, slot 0.
pub const ALLOW_V4: &str = "ALLOW_V4";
pub const ALLOW_V6: &str = "ALLOW_V6";
/// Shared: `LpmTrie<[u8; 4], ListValue>` and `LpmTrie<[u8; 16],
/// ListValue>`, slot 0: SYN sources that cannot be real.
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
/// Per interface: `PerCpuArray<Counter>` by counted blocklist entry
/// ([`super::ListValue::slot`]): the packets and bytes each entry
/// dropped here. Slot 0 (no slot) stays zero.
pub const ENTRY_DROPS: &str = "ENTRY_DROPS";
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
pub const PER_INTERFACE: [&str; 17] = [
    COUNTERS,
    ENTRY_DROPS,
    CONFIG,
    FLOOD,
    SYN_COUNT,
    BUDGETS,
    OVER_BUDGET,
    LISTENERS,
    FLOWS,
    SOURCES,
    TAIL,
    HOST,
    VLANS,
    LOCAL_V4,
    LOCAL_V6,
    CAPTURE,
    CAPTURE_RING,
];
