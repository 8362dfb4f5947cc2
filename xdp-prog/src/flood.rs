//! Flood detection and per-source SYN budgets.
//!
//! Detection measures the interface's SYN rate in windows of
//! `FLOOD_WINDOW_NS`. When a window's rate reaches `syn_rate_on`, flood mode
//! engages; it stays on while windows keep reaching `syn_rate_off` (lower:
//! hysteresis) and for `flood_hold_ms` after the last one that did. Each CPU
//! counts SYNs in its own slot (no shared cache line per SYN); the CPU that
//! closes a window sums the slots. Two CPUs closing the same window at once
//! cost at most one window's estimate.
use core::ffi::c_void;

use aya_ebpf::{
    helpers::{bpf_jiffies64, bpf_ktime_get_coarse_ns, bpf_map_lookup_percpu_elem},
    macros::map,
    maps::{Array, LruHashMap, PerCpuArray},
};
use synguard_common::{
    ALIGNED_ARRAY, Budget, BudgetSet, BudgetSlot, ClockSettings, FLOOD_WINDOW_NS, FloodMode,
    FloodState, IfaceSettings, SourceKey, Words, budget, bytes_of, limits::MAX_CPUS, sizes,
};

use crate::{
    parse::{Family, Packet},
    sources,
};

/// This interface's settings, written by userspace.
#[map(name = "CONFIG")]
static CONFIG: Array<IfaceSettings> = Array::with_max_entries(1, ALIGNED_ARRAY);

/// This interface's flood detection state.
#[map(name = "FLOOD")]
static FLOOD: Array<FloodState> = Array::with_max_entries(1, ALIGNED_ARRAY);

/// SYNs seen by each CPU, ever (never reset, so no CPU writes another's).
#[map(name = "SYN_COUNT")]
static SYN_COUNT: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

/// SYN token buckets per source network, used only in flood mode (see
/// `synguard_common::budget`; the hosts' are in `crate::sources`): a spoofed
/// flood can churn them, but never evict an operator's list entry.
#[map(name = "BUDGETS")]
static BUDGETS: Array<BudgetSet> = Array::with_max_entries(budget::SETS, ALIGNED_ARRAY);

/// SYNs dropped over budget, per source prefix, for userspace.
#[map(name = "OVER_BUDGET")]
static OVER_BUDGET: LruHashMap<SourceKey, u64> =
    LruHashMap::with_max_entries(sizes::OVER_BUDGET, 0);

const NS_PER_MS: u64 = 1_000_000;
const NS_PER_SEC: u64 = 1_000_000_000;
/// A bucket refills for at most this long, so the arithmetic cannot overflow.
const MAX_REFILL_NS: u64 = 10 * NS_PER_SEC;
const MILLI: u64 = 1000;

#[inline(always)]
pub fn config() -> Option<&'static IfaceSettings> {
    CONFIG.get(0)
}

/// True on a dry-run interface (docs/design.md#dry-run).
#[inline(always)]
pub fn dry_run() -> bool {
    CONFIG.get(0).is_some_and(|config| config.dry_run != 0)
}

/// True while the interface is in flood mode (for ACKs: no counting).
#[inline(always)]
pub fn active(config: &IfaceSettings) -> bool {
    if config.flood_mode == FloodMode::Always as u32 {
        return true;
    }
    config.flood_mode == FloodMode::Auto as u32
        && FLOOD.get(0).is_some_and(|state| state.active != 0)
}

/// The clock userspace measured on load ([`ClockSettings`]); read-only,
/// so the verifier knows it and keeps one of the two ways in [`now`].
#[unsafe(no_mangle)]
static CLOCK: ClockSettings = ClockSettings {
    tick_ns: 0,
    offset_ns: 0,
};

/// CLOCK_MONOTONIC_COARSE in ns, as `FloodState` and the buckets keep
/// time: the clock as of the last tick (4 ms at HZ=250). Reading the exact
/// clock (bpf_ktime_get_ns: a serialising TSC read) cost about a fifth of a
/// SYN's time in normal mode. A tick is small beside what the clock
/// measures: 100 ms windows, a 10 s hold, token refills (a tick's worth
/// arrives at the next tick), and the answer's timestamp, whose low 6 bits
/// of milliseconds are the cookie's options anyway.
///
/// Read from jiffies (an inlined load) where userspace set [`CLOCK`], and
/// from the helper (a call) where it did not: userspace sets the offset a
/// tick or two behind the coarse clock, so the answer's timestamp stays
/// behind the kernel's TCP clock either way.
#[inline(always)]
pub fn now() -> u64 {
    // SAFETY: a read of our own global.
    let clock = unsafe { core::ptr::read_volatile(&raw const CLOCK) };
    if clock.tick_ns == 0 {
        // SAFETY: a helper without arguments.
        return unsafe { bpf_ktime_get_coarse_ns() };
    }
    // SAFETY: a helper without arguments (inlined by the verifier).
    let jiffies = unsafe { bpf_jiffies64() };
    jiffies
        .wrapping_mul(clock.tick_ns)
        .wrapping_add(clock.offset_ns)
}

/// Counts one SYN (at `now`) and says whether the interface is in flood
/// mode.
#[inline(always)]
pub fn on_syn(config: &IfaceSettings, now: u64) -> bool {
    if let Some(count) = SYN_COUNT.get_ptr_mut(0) {
        // SAFETY: this CPU's own slot; XDP runs with preemption disabled.
        unsafe { *count += 1 };
    }
    let Some(state) = FLOOD.get_ptr_mut(0) else {
        return false;
    };
    // SAFETY: `state` points into the map's value, valid for this run.
    // (Signed: a state left by another load can be a tick or two in this
    // one's future, its clock's offset measured apart; no time has gone
    // by then. Free where a saturating subtraction costs a branch.)
    unsafe {
        let elapsed = now.wrapping_sub((*state).window_start_ns) as i64;
        if elapsed >= FLOOD_WINDOW_NS as i64 {
            close_window(&mut *state, config, now, elapsed as u64);
        }
        let hold = config.flood_hold_ms as i64 * NS_PER_MS as i64;
        if (*state).active != 0 && (now.wrapping_sub((*state).last_over_ns) as i64) > hold {
            (*state).active = 0;
            crate::events::synguard_log_flood_ended((*state).last_rate);
        }
        match config.flood_mode {
            m if m == FloodMode::Always as u32 => true,
            m if m == FloodMode::Auto as u32 => (*state).active != 0,
            _ => false,
        }
    }
}

/// Ends the current window: measures its rate and moves the flood state.
#[inline(always)]
fn close_window(state: &mut FloodState, config: &IfaceSettings, now: u64, elapsed: u64) {
    let total = synguard_total_syns();
    let syns = total.wrapping_sub(state.window_start_syns);
    state.window_start_syns = total;
    state.window_start_ns = now;
    // (No saturating_mul: it needs 128-bit arithmetic BPF does not have.)
    let rate = syns.min(u64::MAX / NS_PER_SEC) * NS_PER_SEC / elapsed;
    state.last_rate = rate;
    let threshold = if state.active != 0 {
        config.syn_rate_off
    } else {
        config.syn_rate_on
    } as u64;
    if threshold > 0 && rate >= threshold {
        state.last_over_ns = now;
        if state.active == 0 {
            state.active = 1;
            state.engaged_ns = now;
            crate::events::synguard_log_flood_engaged(rate);
        }
    }
}

/// SYNs seen by all CPUs together. A global BPF function: the verifier
/// walks its loop over the CPUs once, on its own, not again for every
/// state the program reaches it in.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn synguard_total_syns() -> u64 {
    let map = &SYN_COUNT as *const PerCpuArray<u64> as *mut c_void;
    let key = 0u32;
    let mut total = 0u64;
    for cpu in 0..MAX_CPUS {
        // SAFETY: a lookup in our own per-CPU map; null past the last CPU.
        let slot =
            unsafe { bpf_map_lookup_percpu_elem(map, &key as *const u32 as *const c_void, cpu) };
        if slot.is_null() {
            break;
        }
        // SAFETY: non-null pointer to a u64 slot.
        total += unsafe { *(slot as *const u64) };
    }
    total
}

/// Spends one SYN (at `now`) from the source's network and host budgets;
/// false when either is empty (and counts the drop against the prefix
/// that ran out: the network's if it is empty, else the host's).
///
/// The network is looked at first: in a spoofed flood most SYNs come from
/// new hosts of networks already over budget, and those are dropped
/// without a look at (or a slot for) the host, a random read in a table
/// that would otherwise take one slot per spoofed address. Both buckets
/// are looked at before either is written, so a SYN the host's budget
/// drops spends nothing from its network's.
#[inline(always)]
pub fn within_budget(packet: &Packet, config: &IfaceSettings, now: u64) -> bool {
    let (host, net, host_len, net_len) = match packet.family {
        Family::V4 => (config.budget_v4_host, config.budget_v4_net, 32, 24),
        Family::V6 => (config.budget_v6_host, config.budget_v6_net, 128, 64),
    };
    if host.rate == 0 && net.rate == 0 {
        return true;
    }
    let network = masked(packet, net_len);
    let (set, tag) = budget::place(&network, net_len, config.hash_seed);
    let net_bucket = match BUDGETS.get_ptr_mut(set) {
        // SAFETY: a pointer into our own map's value, valid for this run.
        Some(set) => Found::look(unsafe { &raw mut (*set).slots }, tag, net, now),
        None => Found::Off,
    };
    if !net_bucket.has_token() {
        count_over(net_bucket.write(now, 0), net_len, &network, now);
        return false;
    }
    let host_bucket = match sources::host_slots(packet, config.hash_seed) {
        Some((slots, tag)) => Found::look(slots, tag, host, now),
        None => Found::Off,
    };
    if !host_bucket.has_token() {
        // The network's bucket keeps its refill, but not this SYN.
        if let Found::Present { .. } = net_bucket {
            net_bucket.write(now, 0);
        }
        count_over(host_bucket.write(now, 0), host_len, &packet.src, now);
        return false;
    }
    net_bucket.write(now, MILLI);
    host_bucket.write(now, MILLI);
    true
}

/// The packet's source masked to a network prefix (/24 or /64).
#[inline(always)]
fn masked(packet: &Packet, prefix_len: u32) -> Words {
    let [a, b, c, d] = packet.src;
    match prefix_len {
        // The fourth octet is the word's high byte.
        24 => [a & 0x00ff_ffff, b, c, d],
        64 => [a, b, 0, 0],
        _ => packet.src,
    }
}

/// A prefix's token bucket as looked up, its tokens refilled up to now:
/// nothing is written until the SYN's fate is known.
enum Found {
    /// The budget is off (rate 0).
    Off,
    /// Not in its set: a new prefix starts with a full bucket, in the slot
    /// of its set used least recently.
    Missing {
        slot: *mut BudgetSlot,
        tag: u32,
        capacity: u64,
    },
    /// Its slot, and its thousandths of a token refilled up to now.
    Present { slot: *mut BudgetSlot, tokens: u64 },
}

impl Found {
    /// Finds the bucket tagged `tag` in `slots`.
    #[inline(always)]
    fn look(slots: *mut [BudgetSlot; 2], tag: u32, budget: Budget, now: u64) -> Found {
        if budget.rate == 0 {
            return Found::Off;
        }
        // Held to what a slot stores.
        let capacity = (budget.burst as u64 * MILLI).min(u32::MAX as u64);
        // SAFETY: the pointer is valid for this run; races between CPUs
        // only blur the estimate.
        unsafe {
            let (first, second) = (&raw mut (*slots)[0], &raw mut (*slots)[1]);
            let slot = if (*first).tag == tag {
                first
            } else if (*second).tag == tag {
                second
            } else {
                let victim = if (*first).last_ns <= (*second).last_ns {
                    first
                } else {
                    second
                };
                return Found::Missing {
                    slot: victim,
                    tag,
                    capacity,
                };
            };
            let elapsed = now.saturating_sub((*slot).last_ns).min(MAX_REFILL_NS);
            let refill = elapsed * budget.rate as u64 / (NS_PER_SEC / MILLI);
            Found::Present {
                slot,
                tokens: ((*slot).milli_tokens as u64 + refill).min(capacity),
            }
        }
    }

    /// Whether a SYN can be spent.
    #[inline(always)]
    fn has_token(&self) -> bool {
        match *self {
            Found::Off => true,
            Found::Missing { capacity, .. } => capacity >= MILLI,
            Found::Present { tokens, .. } => tokens >= MILLI,
        }
    }

    /// Stores the bucket as of `now`, less `spent` thousandths: an
    /// existing one's refill, or a new one, full (only a burst of 0 is
    /// empty from the start). Returns its slot (`None` with the budget
    /// off).
    #[inline(always)]
    fn write(&self, now: u64, spent: u64) -> Option<*mut BudgetSlot> {
        // SAFETY: as in `look`. The token counts are at most `capacity`,
        // which fits in a u32.
        unsafe {
            match *self {
                Found::Off => None,
                Found::Present { slot, tokens } => {
                    (*slot).milli_tokens = tokens.saturating_sub(spent) as u32;
                    (*slot).last_ns = now;
                    Some(slot)
                }
                Found::Missing {
                    slot,
                    tag,
                    capacity,
                } => {
                    *slot = BudgetSlot {
                        tag,
                        milli_tokens: capacity.saturating_sub(spent) as u32,
                        last_ns: now,
                        dropped: 0,
                        reported: 0,
                        _pad: 0,
                    };
                    Some(slot)
                }
            }
        }
    }
}

/// Counts a SYN dropped over the budget in `slot` (none with the budget
/// off), and adds the drops to `OVER_BUDGET` at most once a second
/// (`now >> 30`) for the prefix: an LRU hash update per dropped SYN would
/// cost more than the rest of the drop.
#[inline(always)]
fn count_over(slot: Option<*mut BudgetSlot>, prefix_len: u32, addr: &Words, now: u64) {
    let Some(slot) = slot else {
        return;
    };
    let second = (now >> 30) as u16;
    // SAFETY: as in `Found::look`; a count lost to a race between CPUs
    // only undercounts a diagnostic.
    unsafe {
        (*slot).dropped = (*slot).dropped.saturating_add(1);
        if (*slot).reported == second {
            return;
        }
        let dropped = (*slot).dropped as u64;
        (*slot).dropped = 0;
        (*slot).reported = second;
        let key = SourceKey {
            prefix_len,
            addr: bytes_of(addr),
        };
        match OVER_BUDGET.get_ptr_mut(&key) {
            Some(count) => *count += dropped,
            None => {
                let _ = OVER_BUDGET.insert(&key, &dropped, 0);
            }
        }
    }
}
