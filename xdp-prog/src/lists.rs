//! CIDR lists, shared by every interface's instance: the allowlist and
//! blocklist (checked first, for every protocol) and the martian list
//! (sources no real SYN comes from).
//!
//! Each list is a pair of LPM tries (longest prefix wins). An IPv4 source
//! is looked up in the IPv4 list index instead ([`synguard_common::index`]):
//! all three lists at once, in at most three array loads. The tries are
//! asked where the index says so, and while it is being rebuilt.
//!
//! A blocklist drop is also counted against the entry that matched
//! ([`Listed::count_block_drop`], docs/design.md#drops-per-blocklist-entry).
use aya_ebpf::{
    macros::map,
    maps::{Array, LpmTrie, PerCpuArray, lpm_trie::Key},
};
use synguard_common::{
    ALIGNED_ARRAY, Counter, HostGroup, IndexChunk, ListValue, bytes_of,
    index::{self, ALLOW, BLOCK, COUNTED, GROUP, MARTIAN, TRIES},
    list_in_use, sizes,
};

use crate::parse::{Family, Packet};

/// Sources that skip every other check. Values: expiry (userspace's).
#[map(name = "ALLOW_V4")]
static ALLOW_V4: LpmTrie<[u8; 4], ListValue> = LpmTrie::with_max_entries(sizes::ALLOWLIST, 0);
#[map(name = "ALLOW_V6")]
static ALLOW_V6: LpmTrie<[u8; 16], ListValue> = LpmTrie::with_max_entries(sizes::ALLOWLIST, 0);

/// Sources whose every packet is dropped. Values: expiry (userspace's)
/// and the entry's slot in `ENTRY_DROPS`.
#[map(name = "BLOCK_V4")]
static BLOCK_V4: LpmTrie<[u8; 4], ListValue> = LpmTrie::with_max_entries(sizes::BLOCKLIST, 0);
#[map(name = "BLOCK_V6")]
static BLOCK_V6: LpmTrie<[u8; 16], ListValue> = LpmTrie::with_max_entries(sizes::BLOCKLIST, 0);

/// SYN sources that cannot be real (net/ipv4/route.c `martian_source`).
#[map(name = "MARTIAN_V4")]
static MARTIAN_V4: LpmTrie<[u8; 4], ListValue> = LpmTrie::with_max_entries(sizes::MARTIANS, 0);
#[map(name = "MARTIAN_V6")]
static MARTIAN_V6: LpmTrie<[u8; 16], ListValue> = LpmTrie::with_max_entries(sizes::MARTIANS, 0);

/// Per trie, 0 when userspace knows it is empty: a lookup in an empty trie
/// still costs a helper call, paid by every packet for the usually empty
/// allowlist. Userspace sets a flag before inserting and clears it only
/// after a delete left the trie empty, so it never under-states. Slot
/// `INDEX_V4` says which copy of the IPv4 index is live.
#[map(name = "LIST_IN_USE")]
static LIST_IN_USE: Array<u32> = Array::with_max_entries(list_in_use::COUNT, ALIGNED_ARRAY);

/// The IPv4 list index: first-level chunks, /16 groups, /24 groups, each
/// map holding both copies.
#[map(name = "INDEX_V4")]
static INDEX_V4: Array<IndexChunk> = Array::with_max_entries(index::COPIES * index::CHUNKS, 0);
#[map(name = "INDEX_V4_NETS")]
static INDEX_V4_NETS: Array<IndexChunk> =
    Array::with_max_entries(index::COPIES * index::NET_GROUPS, 0);
#[map(name = "INDEX_V4_HOSTS")]
static INDEX_V4_HOSTS: Array<HostGroup> =
    Array::with_max_entries(index::COPIES * index::HOST_GROUPS, 0);

/// Packets and bytes each counted blocklist entry dropped on this
/// interface, per CPU, by the entry's slot ([`ListValue::slot`]; slot 0,
/// no slot, is never written). Userspace zeroes a slot before it gives
/// it to an entry.
#[map(name = "ENTRY_DROPS")]
static ENTRY_DROPS: PerCpuArray<Counter> = PerCpuArray::with_max_entries(sizes::COUNTED_ENTRIES, 0);

/// Not looked up yet: the martian list is only asked for SYNs.
const MARTIAN_UNKNOWN: u16 = 0x100;

/// The lists a packet's source is on.
pub struct Listed(u16);

impl Listed {
    #[inline(always)]
    pub fn allowed(&self) -> bool {
        self.0 & ALLOW != 0
    }

    #[inline(always)]
    pub fn blocked(&self) -> bool {
        self.0 & BLOCK != 0
    }

    #[inline(always)]
    pub fn martian(&self, packet: &Packet) -> bool {
        if self.0 & MARTIAN_UNKNOWN != 0 {
            return entry(&MARTIAN_LIST, packet).is_some();
        }
        self.0 & MARTIAN != 0
    }

    /// Counts a blocked packet against the blocklist entry that matched
    /// (the longest prefix), where the IPv4 index answered: it says only
    /// "blocked", and "an entry with a counter slot may match"
    /// ([`COUNTED`]); then, and only then, one lookup in the IPv4 trie
    /// finds the entry. (A trie answering found the entry: [`lookup`]
    /// counted it.)
    #[inline(always)]
    pub fn count_block_drop(&self, packet: &Packet, len: usize) {
        if self.0 & COUNTED != 0 {
            count_v4_drop(packet.src[0].to_le_bytes(), len);
        }
    }
}

/// [`Listed::count_block_drop`]'s lookup. A function of its own (a
/// BPF-to-BPF call, on that path only): inlined, it changed how LLVM
/// allocated registers across the whole verdict, and its code for the
/// cookie ACK path then stored a pointer as a `u32`, which the verifier
/// refused ("invalid size of register spill").
#[inline(never)]
fn count_v4_drop(src: [u8; 4], len: usize) {
    if let Some(entry) = BLOCK_V4.get(Key::new(32, src)) {
        count_entry_drop(entry.slot, len);
    }
}

/// Adds a dropped packet of `len` bytes to a blocklist entry's counter,
/// if it has a slot (not 0).
#[inline(always)]
fn count_entry_drop(slot: u32, len: usize) {
    if slot == 0 {
        return;
    }
    if let Some(counter) = ENTRY_DROPS.get_ptr_mut(slot) {
        // SAFETY: the slot belongs to this CPU, and XDP runs with
        // preemption disabled, so nothing else writes it concurrently.
        unsafe {
            (*counter).packets += 1;
            (*counter).bytes += len as u64;
        }
    }
}

/// Which lists the packet's source is on: from the IPv4 index, else from
/// the allowlist and blocklist tries (the martian trie is left for
/// [`Listed::martian`]). A blocklist entry a trie finds is counted the
/// packet's drop of `len` bytes at once (the only verdict it can get).
#[inline(always)]
pub fn lookup(packet: &Packet, len: usize) -> Listed {
    if packet.family == Family::V4
        && let Some(flags) = index_v4(packet.src[0])
        && flags & TRIES == 0
    {
        return Listed(flags);
    }
    let mut flags = MARTIAN_UNKNOWN;
    if entry(&ALLOW_LIST, packet).is_some() {
        flags |= ALLOW;
    } else if let Some(blocked) = entry(&BLOCK_LIST, packet) {
        count_entry_drop(blocked.slot, len);
        flags |= BLOCK;
    }
    Listed(flags)
}

/// The index's entry for an IPv4 source (its bytes as one word, the
/// first octet lowest); `None` when no copy is live or a group is missing
/// (then the tries decide).
#[inline(always)]
fn index_v4(src: u32) -> Option<u16> {
    let live = *LIST_IN_USE.get(list_in_use::INDEX_V4)?;
    if live == 0 {
        return None;
    }
    let chunk = INDEX_V4.get((live - 1) * index::CHUNKS + (src & 0xff))?;
    let entry = chunk.0[(src >> 8 & 0xff) as usize];
    if entry & GROUP == 0 {
        return Some(entry);
    }
    let nets = INDEX_V4_NETS.get((entry & !GROUP) as u32)?;
    let entry = nets.0[(src >> 16 & 0xff) as usize];
    if entry & GROUP == 0 {
        return Some(entry);
    }
    let hosts = INDEX_V4_HOSTS.get((entry & !GROUP) as u32)?;
    Some(hosts.0[last_byte_v4(src)] as u16)
}

/// The last byte of an IPv4 source, as an index the verifier can bound.
///
/// When the compiler assembled the address from four byte loads with
/// ORs, Linux 6.1's verifier lost the bounds of the result (it forgets
/// them for an OR with a non-constant operand: kernel/bpf/verifier.c
/// `adjust_scalar_min_max_vals`) and rejected the access ("R0 unbounded
/// memory access"), and this took the byte from memory instead. The
/// word now comes from one 32-bit load, which every verifier bounds to
/// 32 bits, so a shift by 24 is known to lie in [0, 255].
#[inline(always)]
fn last_byte_v4(src: u32) -> usize {
    (src >> 24) as usize
}

/// One list: its two tries and their `LIST_IN_USE` slots.
struct List {
    v4: &'static LpmTrie<[u8; 4], ListValue>,
    v6: &'static LpmTrie<[u8; 16], ListValue>,
    v4_slot: u32,
    v6_slot: u32,
}

const ALLOW_LIST: List = List {
    v4: &ALLOW_V4,
    v6: &ALLOW_V6,
    v4_slot: list_in_use::ALLOW_V4,
    v6_slot: list_in_use::ALLOW_V6,
};
const BLOCK_LIST: List = List {
    v4: &BLOCK_V4,
    v6: &BLOCK_V6,
    v4_slot: list_in_use::BLOCK_V4,
    v6_slot: list_in_use::BLOCK_V6,
};
const MARTIAN_LIST: List = List {
    v4: &MARTIAN_V4,
    v6: &MARTIAN_V6,
    v4_slot: list_in_use::MARTIAN_V4,
    v6_slot: list_in_use::MARTIAN_V6,
};

/// False only if the trie is known to be empty (a failed lookup of the
/// flag counts as in use).
#[inline(always)]
fn in_use(slot: u32) -> bool {
    LIST_IN_USE.get(slot).is_none_or(|flag| *flag != 0)
}

/// The entry of `list` the source matches (longest prefix), if any.
#[inline(always)]
fn entry(list: &List, packet: &Packet) -> Option<&'static ListValue> {
    match packet.family {
        // A trie key is the address's bytes in network order: the words'
        // bytes in memory, stored as words.
        Family::V4 => {
            if !in_use(list.v4_slot) {
                return None;
            }
            list.v4.get(Key::new(32, packet.src[0].to_le_bytes()))
        }
        Family::V6 => {
            if !in_use(list.v6_slot) {
                return None;
            }
            list.v6.get(Key::new(128, bytes_of(&packet.src)))
        }
    }
}
