//! Packets copied to userspace where they settle, while `synguard
//! capture` (or `top`) runs (docs/design.md#capture). Off, the data path
//! pays one load and one branch per packet.
use core::ffi::c_void;

use aya_ebpf::{
    helpers::{bpf_get_prandom_u32, bpf_ktime_get_ns, bpf_xdp_load_bytes},
    macros::map,
    maps::{Array, RingBuf},
    programs::XdpContext,
};
use synguard_common::{CaptureRecord, CaptureSettings, capture};

/// The shortest frame worth a record: an Ethernet header.
const ETH_HLEN: usize = 14;

/// What the capture asks for; written by userspace, all zero when off.
#[map(name = "CAPTURE")]
static CAPTURE: Array<CaptureSettings> = Array::with_max_entries(1, 0);

/// The captured packets, for userspace.
#[map(name = "CAPTURE_RING")]
static CAPTURE_RING: RingBuf = RingBuf::with_byte_size(capture::RING_BYTES, 0);

/// Copies the packet that settled in counter `slot` into the ring, if a
/// capture is running and wants it.
#[inline(always)]
pub fn packet(ctx: &XdpContext, slot: u32) {
    let Some(settings) = CAPTURE.get(0) else {
        return;
    };
    if settings.until_ns == 0 {
        return;
    }
    record(ctx, settings, slot);
}

#[inline(always)]
fn record(ctx: &XdpContext, settings: &CaptureSettings, slot: u32) {
    if settings.slots & (1u64 << (slot & 63)) == 0 {
        return;
    }
    // SAFETY: helpers without pointer arguments.
    let now = unsafe { bpf_ktime_get_ns() };
    if now > settings.until_ns {
        return;
    }
    // SAFETY: as above.
    if settings.sample > 1 && unsafe { bpf_get_prandom_u32() } % settings.sample != 0 {
        return;
    }
    // The frame as it leaves: an answer is as long as the SYN-ACK.
    let len = ctx.data_end() - ctx.data();
    // bpf_xdp_load_bytes wants a length the verifier knows is above 0:
    // Linux 6.1's does not learn that from `!= 0`, but from `<` it does.
    if len < ETH_HLEN {
        return;
    }
    let caplen = if len < capture::SNAP_LEN {
        len
    } else {
        capture::SNAP_LEN
    };
    // A full ring (a reader behind) loses the record, not the packet.
    let Some(mut entry) = CAPTURE_RING.reserve::<CaptureRecord>(0) else {
        return;
    };
    let record = entry.as_mut_ptr();
    // SAFETY: `record` is the ring's memory reserved for one record; the
    // copy is at most `SNAP_LEN` bytes into its `data`, from the frame.
    let copied = unsafe {
        (*record).ts_ns = now;
        (*record).len = len as u32;
        (*record).caplen = caplen as u32;
        (*record).slot = slot;
        (*record)._pad = 0;
        bpf_xdp_load_bytes(
            ctx.ctx,
            0,
            (*record).data.as_mut_ptr() as *mut c_void,
            caplen as u32,
        )
    };
    if copied == 0 {
        entry.submit(0);
    } else {
        entry.discard(0);
    }
}
