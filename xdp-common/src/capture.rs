//! Packets captured where they settle, for `synguard capture` and `top`
//! (docs/design.md#capture): the program copies the first
//! [`SNAP_LEN`] bytes of a frame, with its counter slot, into a
//! ring buffer, only while [`CaptureSettings::until_ns`] is in the future.
use crate::Reason;

/// Bytes of each frame copied: every header a SYN can carry (two VLAN
/// tags, IPv6 with extension headers, TCP with options), not payload.
pub const SNAP_LEN: usize = 256;
/// The ring buffer per interface (a power of two pages): about 3,600
/// records; a reader that falls behind loses records, never packets.
pub const RING_BYTES: u32 = 1 << 20;
/// How long a capture's flag lasts unless renewed: a capture that dies
/// without clearing it costs the data path at most this long.
pub const LEASE_NS: u64 = 2_000_000_000;

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
    pub data: [u8; SNAP_LEN],
}
