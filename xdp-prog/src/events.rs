//! Rare events of the data path, logged through aya-log into the
//! program's `AYA_LOGS` ring, which the daemon forwards to its log
//! (docs/design.md#logs): flood mode engaged and ended, the cookie path's
//! program missing. Nothing per packet: the daemon's decision logs come
//! from a capture. (The IPv4 list index off is the daemon's to say: it
//! is the normal state with no lists, where a test per packet here cost
//! a clock read and a call.)
//!
//! An event that can repeat per packet is logged at most once a second
//! per CPU (`LOG_LAST`). Each logging function is a global BPF function (scalar
//! arguments, `#[no_mangle]`, never inlined): the verifier checks it once,
//! on its own. Inlined, the log macros' code was walked again for every
//! state the data path reaches them in, past the verifier's limit
//! (E2BIG).
use aya_ebpf::{macros::map, maps::PerCpuArray};
use aya_log_ebpf::{info, warn};

/// Per CPU and kind: when a repeating event was last logged (the
/// second, `now >> 30`) and how many that second.
#[map(name = "LOG_LAST")]
static LOG_LAST: PerCpuArray<u64> = PerCpuArray::with_max_entries(KINDS, 0);

const COOKIE_MISSING: u32 = 0;
const KINDS: u32 = 1;

// aya-log's macros take the program's context only to ignore it; these
// events are logged from places that do not hold it.
const NO_CONTEXT: () = ();

/// Whether a repeating event of `kind` may be logged now: the first
/// `per_sec` of each second (about: `now >> 30`), per CPU.
#[inline(always)]
fn may_log(kind: u32, now: u64, per_sec: u64) -> bool {
    let Some(slot) = LOG_LAST.get_ptr_mut(kind) else {
        return false;
    };
    let second = now >> 30;
    // SAFETY: this CPU's slot; XDP runs with preemption disabled.
    unsafe {
        let last = *slot;
        if last >> 16 != second {
            *slot = second << 16 | 1;
            return true;
        }
        if last & 0xffff < per_sec {
            *slot = last + 1;
            return true;
        }
    }
    false
}

#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn synguard_log_flood_engaged(rate: u64) -> u64 {
    info!(NO_CONTEXT, "flood mode engaged: {} SYN/s", rate);
    0
}

#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn synguard_log_flood_ended(rate: u64) -> u64 {
    info!(NO_CONTEXT, "flood mode ended: {} SYN/s", rate);
    0
}

#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn synguard_log_cookie_program_missing(now: u64) -> u64 {
    if may_log(COOKIE_MISSING, now, 1) {
        warn!(
            NO_CONTEXT,
            "the cookie path's program is missing from TAIL: SYNs go to the kernel (cookie_fallback)"
        );
    }
    0
}
