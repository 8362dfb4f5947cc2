//! The SYN's TCP options: Linux's layout read in place, anything else
//! walked option by option in a global BPF function.
use core::ffi::c_void;

use aya_ebpf::helpers::bpf_loop;
use synguard_common::limits::MAX_TCP_OPTIONS;

use super::{HEADER_COPY, SCRATCH};
use crate::parse::{frame_half, frame_word};

/// TCP option kinds (RFC 9293, RFC 7323, RFC 2018).
const OPT_EOL: u8 = 0;
pub(super) const OPT_NOP: u8 = 1;
pub(super) const OPT_MSS: u8 = 2;
pub(super) const OPT_WSCALE: u8 = 3;
pub(super) const OPT_SACK_PERM: u8 = 4;
pub(super) const OPT_TIMESTAMP: u8 = 8;
/// Their lengths, kind and length bytes included.
pub(super) const OPT_MSS_LEN: u8 = 4;
pub(super) const OPT_WSCALE_LEN: u8 = 3;
pub(super) const OPT_SACK_PERM_LEN: u8 = 2;
pub(super) const OPT_TIMESTAMP_LEN: u8 = 10;
/// include/net/tcp.h `TCP_MAX_WSCALE`.
const TCP_MAX_WSCALE: u8 = 14;

/// What the client's SYN asked for, gathered option by option in a
/// bpf_loop callback: the verifier checks one step once, where an open-coded
/// loop makes it walk every combination of option lengths. The flags share
/// one word: LLVM turns runs of zeroed fields into a call to memset, which
/// in BPF is a loop a byte at a time.
#[repr(C)]
#[derive(Clone, Copy)]
pub(super) struct ClientOptions {
    /// Offset of the next option in the header copy.
    pub(super) at: u64,
    /// The header length: options end here.
    pub(super) len: u64,
    /// The window scale shift (`NO_WSCALE` if absent) in the low byte, and
    /// the `SACK_PERMITTED` and `TIMESTAMPS` bits.
    pub(super) found: u64,
    pub(super) tsval: u64,
}

const WSCALE_MASK: u64 = 0xff;
const NO_WSCALE: u64 = 0xff;
const SACK_PERMITTED: u64 = 1 << 8;
const TIMESTAMPS: u64 = 1 << 9;

impl ClientOptions {
    #[inline(always)]
    pub(super) fn wscale(&self) -> Option<u8> {
        match self.found & WSCALE_MASK {
            NO_WSCALE => None,
            shift => Some(shift as u8),
        }
    }

    #[inline(always)]
    pub(super) fn sack(&self) -> bool {
        self.found & SACK_PERMITTED != 0
    }

    #[inline(always)]
    pub(super) fn timestamps(&self) -> bool {
        self.found & TIMESTAMPS != 0
    }
}
/// bpf_loop: go on, or stop.
const LOOP_CONTINUE: i64 = 0;
const LOOP_BREAK: i64 = 1;

/// A byte of the scratch header copy, 0 past its end (a bounds check the
/// verifier can follow, and no panic path).
#[inline(always)]
pub(super) fn byte(th: &[u8; HEADER_COPY], i: u64) -> u8 {
    if i < HEADER_COPY as u64 {
        th[i as usize]
    } else {
        0
    }
}

/// Reads the options of a SYN the way net/ipv4/tcp_input.c
/// `tcp_parse_options` does: stop at EOL, at a length below 2, or at an
/// option that runs past the header.
#[inline(always)]
pub(super) fn client_options(len: u32) -> ClientOptions {
    let found = synguard_syn_options(len);
    ClientOptions {
        at: len as u64,
        len: len as u64,
        found: found & FOUND_MASK,
        tsval: found >> 32,
    }
}

/// The flags of `ClientOptions::found`.
const FOUND_MASK: u64 = WSCALE_MASK | SACK_PERMITTED | TIMESTAMPS;

/// Walks the options of the SYN in scratch (`len` bytes of header) and
/// returns what it found: `ClientOptions::found`, and the timestamp in
/// the high 32 bits. A global BPF function: the verifier checks the walk
/// once, on its own. Inlined, it checked the loop's callback again for
/// every state the cookie path reaches it in, about half of all it
/// checked in the program.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn synguard_syn_options(len: u32) -> u64 {
    let mut options = ClientOptions {
        at: 20,
        len: len as u64,
        found: NO_WSCALE,
        tsval: 0,
    };
    // SAFETY: the callback is a static function of this program and the
    // context lives on our stack for the call.
    unsafe {
        bpf_loop(
            MAX_TCP_OPTIONS as u32,
            option_step as *mut c_void,
            &mut options as *mut ClientOptions as *mut c_void,
            0,
        );
    }
    (options.found & FOUND_MASK) | (options.tsval & 0xffff_ffff) << 32
}

/// The options of a SYN laid out as Linux sends them with timestamps on
/// (net/ipv4/tcp_output.c `tcp_options_write`): MSS, SACK permitted,
/// timestamps, NOP, window scale, 20 bytes. Read in place, they give what
/// the loop over them gives (the MSS is the helper's business, the echo
/// is 0 in a SYN), without its callback per option; anything else is left
/// to the loop.
#[inline(always)]
pub(super) fn linux_syn_options<const N: usize>(th: &[u8; N], len: u32) -> Option<ClientOptions> {
    // The option bytes compared a word at a time, as `frame_word` reads
    // them (their bytes in memory order): MSS kind and length; SACK
    // permitted, then timestamps' kind and length; NOP, window scale's
    // kind and length, and the shift (masked off).
    const { assert!(N >= 40) };
    let p = th.as_ptr();
    // SAFETY: offsets 20-39 of the N >= 40 bytes of `th` (the frame,
    // checked, or scratch); on alignment, `frame_word`.
    let (mss, sack_ts, wscale, tsval) = unsafe {
        (
            frame_half(p.add(20)),
            frame_word(p.add(24)),
            frame_word(p.add(36)),
            frame_word(p.add(28)),
        )
    };
    if len != 40
        || mss != u16::from_le_bytes([OPT_MSS, OPT_MSS_LEN])
        || sack_ts
            != u32::from_le_bytes([
                OPT_SACK_PERM,
                OPT_SACK_PERM_LEN,
                OPT_TIMESTAMP,
                OPT_TIMESTAMP_LEN,
            ])
        || wscale & 0x00ff_ffff != u32::from_le_bytes([OPT_NOP, OPT_WSCALE, OPT_WSCALE_LEN, 0])
    {
        return None;
    }
    Some(ClientOptions {
        at: 40,
        len: 40,
        found: ((wscale >> 24) as u8).min(TCP_MAX_WSCALE) as u64 | SACK_PERMITTED | TIMESTAMPS,
        tsval: u32::from_be(tsval) as u64,
    })
}

/// One option of the SYN's header (in the per-CPU scratch copy).
extern "C" fn option_step(_index: u64, ctx: *mut c_void) -> i64 {
    // SAFETY: bpf_loop hands back the context `client_options` passed.
    let o = unsafe { &mut *(ctx as *mut ClientOptions) };
    let Some(scratch) = SCRATCH.get_ptr(0) else {
        return LOOP_BREAK;
    };
    // SAFETY: this CPU's scratch slot, filled by `Headers::copy`.
    let th = unsafe { &(*scratch).tcp };
    let i = o.at;
    if i >= o.len {
        return LOOP_BREAK;
    }
    let kind = byte(th, i);
    if kind == OPT_EOL {
        return LOOP_BREAK;
    }
    if kind == OPT_NOP {
        o.at = i + 1;
        return LOOP_CONTINUE;
    }
    let size = byte(th, i + 1) as u64;
    if size < 2 || i + size > o.len {
        return LOOP_BREAK;
    }
    if kind == OPT_WSCALE && size == 3 {
        o.found = (o.found & !WSCALE_MASK) | byte(th, i + 2).min(TCP_MAX_WSCALE) as u64;
    } else if kind == OPT_SACK_PERM && size == 2 {
        o.found |= SACK_PERMITTED;
    } else if kind == OPT_TIMESTAMP && size == 10 {
        o.found |= TIMESTAMPS;
        o.tsval = u32::from_be_bytes([
            byte(th, i + 2),
            byte(th, i + 3),
            byte(th, i + 4),
            byte(th, i + 5),
        ]) as u64;
    }
    // The MSS is the helper's business: it reads it from the header.
    o.at = i + size;
    LOOP_CONTINUE
}
