//! Per-CPU counters by reason: one array slot per `Reason`, summed across
//! CPUs by userspace at read time, so the hot path never takes a lock; and
//! the verdict's action, where dry-run turns a drop or an answer into a
//! pass (docs/design.md#dry-run).
use aya_ebpf::{bindings::xdp_action, macros::map, maps::PerCpuArray, programs::XdpContext};
use synguard_common::{Counter, Reason, Verdict};

use crate::{capture, flood};

/// Packets and bytes per `Reason`, per CPU; then, per `Reason`, what a
/// dry-run interface passed that it would have dropped or answered.
#[map(name = "COUNTERS")]
static COUNTERS: PerCpuArray<Counter> = PerCpuArray::with_max_entries(2 * Reason::COUNT, 0);

/// Counts a packet under its reason, hands it to a running capture, and
/// returns the XDP action for it. On
/// a dry-run interface a packet that would be dropped or answered is
/// passed and counted at the reason's `would_slot`; the enforcing path
/// pays the test of the flag, for those packets only.
#[inline(always)]
pub fn settle(ctx: &XdpContext, reason: Reason, len: usize) -> u32 {
    let verdict = reason.verdict();
    if verdict.held_in_dry_run() && flood::dry_run() {
        count(reason.would_slot(), len);
        capture::packet(ctx, reason.would_slot());
        return xdp_action::XDP_PASS;
    }
    count(reason as u32, len);
    capture::packet(ctx, reason as u32);
    match verdict {
        Verdict::Pass => xdp_action::XDP_PASS,
        Verdict::Drop => xdp_action::XDP_DROP,
        Verdict::Tx => xdp_action::XDP_TX,
        Verdict::Aborted => xdp_action::XDP_ABORTED,
    }
}

#[inline(always)]
fn count(slot: u32, len: usize) {
    if let Some(slot) = COUNTERS.get_ptr_mut(slot) {
        // SAFETY: the slot belongs to this CPU, and XDP runs with preemption
        // disabled, so nothing else writes it concurrently.
        unsafe {
            (*slot).packets += 1;
            (*slot).bytes += len as u64;
        }
    }
}
