//! Per-CPU counters by reason: one array slot per `Reason`, summed across
//! CPUs by userspace at read time, so the hot path never takes a lock.
use aya_ebpf::{macros::map, maps::PerCpuArray};
use xdp_common::{Counter, Reason};

/// Packets and bytes per `Reason`, per CPU.
#[map(name = "COUNTERS")]
static COUNTERS: PerCpuArray<Counter> = PerCpuArray::with_max_entries(Reason::COUNT, 0);

#[inline(always)]
pub fn count(reason: Reason, len: usize) {
    if let Some(slot) = COUNTERS.get_ptr_mut(reason as u32) {
        // SAFETY: the slot belongs to this CPU, and XDP runs with preemption
        // disabled, so nothing else writes it concurrently.
        unsafe {
            (*slot).packets += 1;
            (*slot).bytes += len as u64;
        }
    }
}
