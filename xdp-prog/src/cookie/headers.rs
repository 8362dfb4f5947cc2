//! The IP and TCP headers the cookie path reads and writes its answer
//! over: in the frame for the common layout, else a per-CPU copy.
use core::ffi::c_void;

use aya_ebpf::{helpers::bpf_xdp_load_bytes, programs::XdpContext};
use synguard_common::{IfaceSettings, Words};

use super::{
    HandedSyn, IP_END, IPV4_MAX, SCRATCH, Scratch,
    csum::{fold, sum_words},
    layout::{ipv4, ipv6},
    options::linux_syn_options,
};
use crate::{
    host,
    parse::{Family, frame_word, ptr_at},
};

impl Family {
    /// The length of the fixed IP header.
    #[inline(always)]
    pub(super) fn ip_len(self) -> usize {
        match self {
            Family::V4 => 20,
            Family::V6 => 40,
        }
    }

    /// Where the answer's IP header starts in `Scratch::out_ip`.
    #[inline(always)]
    fn ip_at(self) -> usize {
        IP_END - self.ip_len()
    }
}

/// The IP and TCP headers of a segment, where the cookie path reads them
/// and writes its answer.
///
/// A SYN laid out as most are (no VLAN tag, no IPv4 options or IPv6
/// extension headers, the 40-byte TCP header Linux sends, no payload)
/// is read where it lies, and its answer, as long (40 bytes of TCP), is
/// written over it: no copy, no resize. Any other segment is copied to
/// per-CPU scratch memory, and its answer written back with
/// bpf_xdp_store_bytes, at offsets that are plain scalars: no packet
/// pointer arithmetic, so the verifier can prune the paths that differ
/// only by VLAN tags or IPv6 extension headers instead of walking each.
pub(super) struct Headers {
    pub(super) family: Family,
    /// Bytes of TCP header the helpers read, in [20, 60].
    pub(super) tcp_len: u32,
    /// The IP header (IPv4's 20 bytes, then the TCP header's in the frame
    /// form, its options in scratch); `IPV4_MAX` bytes readable in both
    /// for a SYN, the fixed header and 20 bytes of TCP for an ACK.
    pub(super) ip: *mut [u8; 40],
    /// The TCP header's first 40 bytes (past `tcp_len`: scratch, unused).
    pub(super) tcp: *mut [u8; 40],
    /// Where the answer's IP header goes, and its TCP header, right after:
    /// over the segment's own headers, or scratch for bpf_xdp_store_bytes.
    pub(super) out_ip: *mut u8,
    pub(super) out_tcp: *mut [u8; 40],
    /// The answer is written in the frame: nothing to store, no resize.
    pub(super) in_frame: bool,
}

/// What the configuration lets an answer offer, read once per SYN: a
/// change by userspace mid-SYN must not change the answer's length. The
/// settings' own bytes (non-zero: on), not bools: the verifier would carry
/// each combination of constants through the rest of the path.
#[derive(Clone, Copy)]
pub(super) struct Offer {
    pub(super) ts_cookies: u8,
    pub(super) sack: u8,
    pub(super) window_scaling: u8,
}

impl Offer {
    #[inline(always)]
    pub(super) fn of(config: &IfaceSettings) -> Offer {
        Offer {
            ts_cookies: config.ts_cookies,
            sack: config.tcp_sack,
            window_scaling: config.tcp_window_scaling,
        }
    }
}

/// Where the frame form's headers lie: after an untagged Ethernet header.
const IN_FRAME_L3: usize = 14;
/// The frame form's TCP header length, and its answer's.
const IN_FRAME_TCP: usize = 40;

impl Headers {
    /// The SYN's headers in the frame, if it has the layout most SYNs
    /// have and its answer is as long (timestamps and window scaling
    /// offered); else a copy.
    #[inline(always)]
    pub(super) fn of_syn(
        ctx: &XdpContext,
        syn: &HandedSyn,
        family: Family,
        offer: Offer,
    ) -> Option<Headers> {
        let ip_len = family.ip_len();
        let fits = syn.l3 as usize == IN_FRAME_L3
            && syn.l4 as usize == IN_FRAME_L3 + ip_len
            && syn.header_len as usize == IN_FRAME_TCP
            // No payload: the answer, as long as the SYN, fills the frame.
            // (Compared before `in_frame`'s bounds check, 3% faster than
            // after it. Should LLVM ever drop that check as implied by the
            // length, the verifier, which does not follow the length,
            // refuses the program: the packet tests load it.)
            && ctx.data_end() - ctx.data() == IN_FRAME_L3 + ip_len + IN_FRAME_TCP
            && offer.ts_cookies != 0
            && offer.window_scaling != 0;
        if fits && let Some(h) = Headers::in_frame(ctx, family) {
            return Some(h);
        }
        let tcp_len = header_copy_len(syn.header_len);
        Headers::copy(ctx, family, syn.l3, syn.l4, tcp_len)
    }

    /// The headers of an untagged frame of IP and 40 bytes of TCP, in
    /// place, if its options are Linux's.
    #[inline(always)]
    pub(super) fn in_frame(ctx: &XdpContext, family: Family) -> Option<Headers> {
        // Constant offsets, checked against the frame's end here, so the
        // verifier follows every access below.
        let (ip, tcp) = match family {
            Family::V4 => {
                let at = ptr_at::<[u8; 20 + IN_FRAME_TCP]>(ctx, IN_FRAME_L3)? as *mut u8;
                (at, at.wrapping_add(20))
            }
            Family::V6 => {
                let at = ptr_at::<[u8; 40 + IN_FRAME_TCP]>(ctx, IN_FRAME_L3)? as *mut u8;
                (at, at.wrapping_add(40))
            }
        };
        let tcp = tcp as *mut [u8; 40];
        // SAFETY: `ptr_at` checked that the 40 bytes lie inside the frame.
        linux_syn_options(unsafe { &*tcp }, IN_FRAME_TCP as u32)?;
        Some(Headers {
            family,
            tcp_len: IN_FRAME_TCP as u32,
            ip: ip as *mut [u8; 40],
            tcp,
            out_ip: ip,
            out_tcp: tcp,
            in_frame: true,
        })
    }

    /// An ACK's headers, for the checks of its cookie and socket (the
    /// fixed IP header and 20 bytes of TCP header): where they lie if
    /// the frame has the usual layout (no VLAN tag, no IPv4 options or
    /// IPv6 extension headers), which spares two helper calls that copy
    /// them; else a copy.
    #[inline(always)]
    pub(super) fn of_ack(ctx: &XdpContext, family: Family, l3: u32, l4: u32) -> Option<Headers> {
        if l3 as usize == IN_FRAME_L3
            && l4 as usize == IN_FRAME_L3 + family.ip_len()
            && let Some(h) = Headers::ack_in_frame(ctx, family)
        {
            return Some(h);
        }
        Headers::copy(ctx, family, l3, l4, 20)
    }

    /// An untagged frame's IP header and the first 20 bytes of its TCP
    /// header, in place. Only those 20 bytes are checked against the
    /// frame's end (an ACK's TCP header may be no longer): the ACK check
    /// reads no further, and the verifier refuses the program if it did.
    #[inline(always)]
    fn ack_in_frame(ctx: &XdpContext, family: Family) -> Option<Headers> {
        let (ip, tcp) = match family {
            Family::V4 => {
                let at = ptr_at::<[u8; 20 + 20]>(ctx, IN_FRAME_L3)? as *mut u8;
                (at, at.wrapping_add(20))
            }
            Family::V6 => {
                let at = ptr_at::<[u8; 40 + 20]>(ctx, IN_FRAME_L3)? as *mut u8;
                (at, at.wrapping_add(40))
            }
        };
        Some(Headers {
            family,
            tcp_len: 20,
            ip: ip as *mut [u8; 40],
            tcp: tcp as *mut [u8; 40],
            out_ip: ip,
            out_tcp: tcp as *mut [u8; 40],
            in_frame: true,
        })
    }

    /// Copies the headers to scratch: the fixed IP header at `l3`, and
    /// `tcp_len` bytes of the TCP header at `l4`.
    #[inline(always)]
    pub(super) fn copy(
        ctx: &XdpContext,
        family: Family,
        l3: u32,
        l4: u32,
        tcp_len: u32,
    ) -> Option<Headers> {
        let scratch = SCRATCH.get_ptr_mut(0)?;
        // SAFETY: this CPU's scratch slot, used by one program run at a time.
        let s = unsafe { &mut *scratch };
        // Two copies even when the headers are adjacent: one copy then
        // (a branch on l4 == l3 + ip_len) made the verifier walk the rest
        // of the cookie path twice over, past its 1M-instruction limit.
        // IPv4's options too, for its header checksum (`ipv4_header_ok`).
        let ip_len = match family {
            Family::V4 => l4.wrapping_sub(l3).clamp(20, IPV4_MAX as u32),
            Family::V6 => 40,
        };
        // SAFETY: the buffers hold at least the lengths loaded.
        let failed = unsafe {
            bpf_xdp_load_bytes(ctx.ctx, l3, s.ip.as_mut_ptr() as *mut c_void, ip_len) != 0
                || bpf_xdp_load_bytes(ctx.ctx, l4, s.tcp.as_mut_ptr() as *mut c_void, tcp_len) != 0
        };
        if failed {
            return None;
        }
        Some(Headers::in_scratch(s, family, tcp_len))
    }

    /// The headers `copy` left in scratch.
    #[inline(always)]
    fn in_scratch(s: &mut Scratch, family: Family, tcp_len: u32) -> Headers {
        Headers {
            family,
            tcp_len,
            ip: s.ip.as_mut_ptr() as *mut [u8; 40],
            tcp: s.tcp.as_mut_ptr() as *mut [u8; 40],
            // SAFETY: within `out_ip` (`ip_at` <= 20).
            out_ip: unsafe { s.out_ip.as_mut_ptr().add(family.ip_at()) },
            out_tcp: &raw mut s.out_tcp,
            in_frame: false,
        }
    }

    /// The segment's IP header.
    #[inline(always)]
    pub(super) fn ip(&self) -> &[u8; 40] {
        // SAFETY: in the frame (checked) or scratch, valid for this run.
        unsafe { &*self.ip }
    }

    /// Whether the IPv4 header's checksum is right: ip_rcv_core drops the
    /// packet otherwise, so its SYN must not be answered. `header_len`: the
    /// header's length, options included (20 in the frame form). (The TCP
    /// checksum is not checked: on veth, a local sender's segments carry
    /// only the pseudo-header's sum, for the receiver to finish.)
    #[inline(always)]
    pub(super) fn ipv4_header_ok(&self, header_len: u32) -> bool {
        // SAFETY: IPV4_MAX bytes are readable at `ip` in both forms (the
        // frame form checked 20 + 40 bytes; scratch holds IPV4_MAX).
        let ip = unsafe { &*(self.ip as *const [u8; IPV4_MAX]) };
        if self.in_frame {
            // Five 32-bit words as loaded (their bytes in memory order):
            // a ones' complement sum of byte-swapped words is the sum
            // byte-swapped, and 0xffff reads the same either way.
            let mut sum: u64 = (0..5).map(|i| self.ip_word(4 * i) as u64).sum();
            sum = (sum & 0xffff_ffff) + (sum >> 32);
            sum = (sum & 0xffff_ffff) + (sum >> 32);
            return fold(sum as u32) == 0xffff;
        }
        fold(sum_words(ip, 0, header_len as usize, 0)) == 0xffff
    }

    /// The segment's TCP header, its first 40 bytes.
    #[inline(always)]
    pub(super) fn tcp(&self) -> &[u8; 40] {
        // SAFETY: as in `ip`.
        unsafe { &*self.tcp }
    }

    /// The 32-bit word at `at` of the IP header, in one load (see
    /// `crate::parse::frame_word`; scratch is aligned).
    #[inline(always)]
    fn ip_word(&self, at: usize) -> u32 {
        // SAFETY: `at` + 4 <= 40, readable in both forms (as in `ip`).
        unsafe { frame_word((self.ip as *const u8).add(at)) }
    }

    /// The 32-bit word at `at` of the TCP header, in one load (as
    /// `ip_word`).
    #[inline(always)]
    pub(super) fn tcp_word(&self, at: usize) -> u32 {
        // SAFETY: `at` + 4 <= 20 at every call: the fixed header, readable
        // in every form.
        unsafe { frame_word((self.tcp as *const u8).add(at)) }
    }

    /// An IPv6 address at `at` of the IP header.
    #[inline(always)]
    fn ip_words(&self, at: usize) -> Words {
        [
            self.ip_word(at),
            self.ip_word(at + 4),
            self.ip_word(at + 8),
            self.ip_word(at + 12),
        ]
    }

    /// The client's address and the server's (ours), IPv4, as words.
    #[inline(always)]
    pub(super) fn v4_addrs(&self) -> (u32, u32) {
        (self.ip_word(ipv4::SRC), self.ip_word(ipv4::DST))
    }

    /// The client's address and the server's (ours), IPv6, as words.
    #[inline(always)]
    pub(super) fn v6_addrs(&self) -> (Words, Words) {
        (self.ip_words(ipv6::SRC), self.ip_words(ipv6::DST))
    }

    /// The segment's destination: our address, with the family as
    /// `ListenerSlot` keeps it.
    #[inline(always)]
    pub(super) fn local_addr(&self) -> (u32, Words) {
        match self.family {
            Family::V4 => (4, [self.ip_word(ipv4::DST), 0, 0, 0]),
            Family::V6 => (6, self.ip_words(ipv6::DST)),
        }
    }

    /// Whether the IP packet, as long as its header says, ends within the
    /// frame's first buffer.
    #[inline(always)]
    pub(super) fn in_first_buffer(&self, ctx: &XdpContext, l3: u32) -> bool {
        let ip = self.ip();
        let len = match self.family {
            Family::V4 => u16::from_be_bytes([ip[2], ip[3]]) as usize,
            Family::V6 => 40 + u16::from_be_bytes([ip[4], ip[5]]) as usize,
        };
        l3 as usize + len <= ctx.data_end() - ctx.data()
    }

    /// Whether the segment's destination is local to the namespace
    /// (`host`): bpf_skc_lookup_tcp finds a wildcard listener whatever the
    /// destination, so a forwarded SYN would be answered.
    #[inline(always)]
    pub(super) fn local_destination(&self) -> bool {
        match self.family {
            Family::V4 => host::local_v4(self.ip_word(ipv4::DST)),
            Family::V6 => host::local_v6(self.ip_words(ipv6::DST)),
        }
    }

    /// Whether an ACK that reached a listener is for this host: its frame
    /// and its destination.
    #[inline(always)]
    pub(super) fn ack_for_us(&self, ctx: &XdpContext, vlan: u32) -> bool {
        host::frame_for_us(ctx, vlan) && self.local_destination()
    }
}

/// The copy length: doff * 4, in [20, 60], computed so that the verifier
/// sees it bounded by [20, 80].
#[inline(always)]
fn header_copy_len(header_len: u32) -> u32 {
    let extra_words = ((header_len >> 2).wrapping_sub(5)) & 0xf;
    20 + extra_words * 4
}
