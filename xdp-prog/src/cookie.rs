//! SYN cookies answered from XDP, made and checked by the kernel's own
//! helpers with the kernel's own secret, so the listener accepts the ACK as
//! if it had sent the SYN-ACK itself.
//!
//! Why the socket-bound helpers (bpf_skc_lookup_tcp + bpf_tcp_gen_syncookie)
//! at least once a second per port, and the raw ones only in between: the
//! kernel accepts a cookie ACK only within two minutes of an overflow
//! recorded on that listener (include/net/tcp.h
//! `tcp_synq_no_recent_overflow`). bpf_tcp_gen_syncookie records one
//! (net/ipv4/tcp_ipv4.c `tcp_v4_get_syncookie` calls `tcp_synq_overflow`);
//! the raw helpers do not, so with them alone handshakes fail two minutes
//! into a flood. The helper also hands out a cookie only when the kernel
//! would use one (listen queue full, or net.ipv4.tcp_syncookies=2);
//! otherwise the SYN goes to the kernel, which answers it with full options
//! and retransmits. The raw helpers compute the same cookie (the same
//! secret, MSS table and inputs) without the socket lookup, a hash walk
//! that is most of a SYN's cost (see `answer_syn`).
use core::{ffi::c_void, mem::MaybeUninit};

use aya_ebpf::{
    bindings::{BPF_F_CURRENT_NETNS, bpf_sock, bpf_sock_tuple, iphdr, ipv6hdr, tcphdr},
    helpers::{
        bpf_loop, bpf_sk_release, bpf_skc_lookup_tcp, bpf_tcp_check_syncookie,
        bpf_tcp_gen_syncookie, bpf_tcp_raw_gen_syncookie_ipv4, bpf_tcp_raw_gen_syncookie_ipv6,
        bpf_xdp_adjust_tail, bpf_xdp_load_bytes, bpf_xdp_store_bytes,
    },
    macros::map,
    maps::{Array, PerCpuArray, ProgramArray},
    programs::XdpContext,
};
use xdp_common::{ALIGNED_ARRAY, Config, ListenerSlot, Reason, limits::MAX_TCP_OPTIONS, listeners};

use crate::{
    host,
    parse::{Family, Packet, Tcp, ptr_at},
    sources,
};

/// include/net/tcp_states.h `TCP_LISTEN`.
const TCP_LISTEN: u32 = 10;
const IPPROTO_TCP: u8 = 6;
/// TCP option kinds (RFC 9293, RFC 7323, RFC 2018).
const OPT_EOL: u8 = 0;
const OPT_NOP: u8 = 1;
const OPT_MSS: u8 = 2;
const OPT_WSCALE: u8 = 3;
const OPT_SACK_PERM: u8 = 4;
const OPT_TIMESTAMP: u8 = 8;
/// net/ipv4/syncookies.c: the low 6 bits of a cookie timestamp carry the
/// options (window scale, SACK, ECN).
const TS_OPT_WSCALE_MASK: u32 = 0xf;
const TS_OPT_SACK: u32 = 1 << 4;
const TSBITS: u32 = 6;
/// include/net/tcp.h `TCP_MAX_WSCALE`.
const TCP_MAX_WSCALE: u8 = 14;
const DEFAULT_MSS_V4: u16 = 1460;
const DEFAULT_MSS_V6: u16 = 1440;
const SYN_ACK_TTL: u8 = 64;
/// The SYN-ACK's window; SYN segments are never scaled (RFC 7323 2.2).
const SYN_ACK_WINDOW: u16 = 65535;
/// A copy of a TCP header: 60 bytes at most, with room so that a length the
/// verifier can only bound by a mask still fits.
const HEADER_COPY: usize = 80;

/// Working memory for the cookie path, per CPU: the headers it reads and
/// the answer it builds are too large for the 512-byte BPF stack.
#[repr(C)]
pub struct Scratch {
    /// The IP header of the segment: IPv4's with its options (checksummed,
    /// not answered), IPv6's fixed header (extension headers not copied).
    ip: [u8; IPV4_MAX],
    /// The TCP header of the segment, options included.
    tcp: [u8; HEADER_COPY],
    /// The answer's IP header, ending where `out_tcp` begins (IPv4's in
    /// bytes 20..40), so that both go back into the frame in one helper
    /// call.
    out_ip: [u8; IP_END],
    /// The answer's TCP header.
    out_tcp: [u8; 40],
    /// The SYN, as `hand_over` passes it to `synguard_syn`.
    syn: HandedSyn,
}

/// What the parse found about a SYN the cookie path is to answer.
#[repr(C)]
struct HandedSyn {
    src: [u8; 16],
    l3: u32,
    l4: u32,
    header_len: u32,
    v6: u32,
    /// The frame's VLAN chain (`xdp_common::host::vlan_key`).
    vlan: u32,
    _pad: u32,
    now: u64,
}

impl HandedSyn {
    #[inline(always)]
    fn family(&self) -> Family {
        if self.v6 != 0 { Family::V6 } else { Family::V4 }
    }
}

/// Where the answer's IP header ends and its TCP header begins.
const IP_END: usize = 40;
/// The longest IPv4 header, options included.
const IPV4_MAX: usize = 60;

impl Family {
    /// The length of the fixed IP header.
    #[inline(always)]
    fn ip_len(self) -> usize {
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

#[map(name = "SCRATCH")]
static SCRATCH: PerCpuArray<Scratch> = PerCpuArray::with_max_entries(1, 0);

/// The cookie path's program (`synguard_syn`), at index 0: the data path
/// hands it the SYNs it answers with a tail call (`hand_over`), so that
/// the verifier checks it once, as a program of its own with a stack of
/// its own, not again for every state the parse reaches it in.
#[map(name = "TAIL")]
static TAIL: ProgramArray = ProgramArray::with_max_entries(1, 0);

/// What the last full look at each destination port found (see
/// `xdp_common::listeners`).
#[map(name = "LISTENERS")]
static LISTENERS: Array<ListenerSlot> = Array::with_max_entries(65_536, ALIGNED_ARRAY);

/// A socket reference from bpf_skc_lookup_tcp, released when dropped, as
/// the verifier demands on every path.
struct Socket(*mut bpf_sock);

impl Drop for Socket {
    #[inline(always)]
    fn drop(&mut self) {
        // SAFETY: a non-null reference from bpf_skc_lookup_tcp, released once.
        unsafe { bpf_sk_release(self.0 as *mut c_void) };
    }
}

impl Socket {
    #[inline(always)]
    fn is_listener(&self) -> bool {
        // SAFETY: non-null; `state` is readable on any sock_common.
        unsafe { (*self.0).state == TCP_LISTEN }
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
struct Headers {
    family: Family,
    /// Bytes of TCP header the helpers read, in [20, 60].
    tcp_len: u32,
    /// The IP header (IPv4's 20 bytes, then the TCP header's in the frame
    /// form, its options in scratch); `IPV4_MAX` bytes readable in both.
    ip: *mut [u8; 40],
    /// The TCP header's first 40 bytes (past `tcp_len`: scratch, unused).
    tcp: *mut [u8; 40],
    /// Where the answer's IP header goes, and its TCP header, right after:
    /// over the segment's own headers, or scratch for bpf_xdp_store_bytes.
    out_ip: *mut u8,
    out_tcp: *mut [u8; 40],
    /// The answer is written in the frame: nothing to store, no resize.
    in_frame: bool,
}

/// What the configuration lets an answer offer, read once per SYN: a
/// change by userspace mid-SYN must not change the answer's length. The
/// settings' own bytes (non-zero: on), not bools: the verifier would carry
/// each combination of constants through the rest of the path.
#[derive(Clone, Copy)]
struct Offer {
    ts_cookies: u8,
    sack: u8,
    window_scaling: u8,
}

impl Offer {
    #[inline(always)]
    fn of(config: &Config) -> Offer {
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
    fn of_syn(ctx: &XdpContext, syn: &HandedSyn, family: Family, offer: Offer) -> Option<Headers> {
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
    fn in_frame(ctx: &XdpContext, family: Family) -> Option<Headers> {
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

    /// Copies the headers to scratch: the fixed IP header at `l3`, and
    /// `tcp_len` bytes of the TCP header at `l4`.
    #[inline(always)]
    fn copy(ctx: &XdpContext, family: Family, l3: u32, l4: u32, tcp_len: u32) -> Option<Headers> {
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
    fn ip(&self) -> &[u8; 40] {
        // SAFETY: in the frame (checked) or scratch, valid for this run.
        unsafe { &*self.ip }
    }

    /// Whether the IPv4 header's checksum is right: ip_rcv_core drops the
    /// packet otherwise, so its SYN must not be answered. `header_len`: the
    /// header's length, options included (20 in the frame form). (The TCP
    /// checksum is not checked: on veth, a local sender's segments carry
    /// only the pseudo-header's sum, for the receiver to finish.)
    #[inline(always)]
    fn ipv4_header_ok(&self, header_len: u32) -> bool {
        // SAFETY: IPV4_MAX bytes are readable at `ip` in both forms (the
        // frame form checked 20 + 40 bytes; scratch holds IPV4_MAX).
        let ip = unsafe { &*(self.ip as *const [u8; IPV4_MAX]) };
        let sum = if self.in_frame {
            sum_words(ip, 0, 20, 0)
        } else {
            sum_words(ip, 0, header_len as usize, 0)
        };
        fold(sum) == 0xffff
    }

    /// The segment's TCP header, its first 40 bytes.
    #[inline(always)]
    fn tcp(&self) -> &[u8; 40] {
        // SAFETY: as in `ip`.
        unsafe { &*self.tcp }
    }

    /// The client's address and the server's (ours), in network order.
    #[inline(always)]
    fn v4_addrs(&self) -> ([u8; 4], [u8; 4]) {
        let ip = self.ip();
        (
            [ip[12], ip[13], ip[14], ip[15]],
            [ip[16], ip[17], ip[18], ip[19]],
        )
    }

    /// Looks up the socket the segment is for, in the interface's namespace.
    #[inline(always)]
    fn lookup(&mut self, ctx: &XdpContext) -> Option<Socket> {
        // Not zeroed first: only the member the helper reads (`size` bytes)
        // is written. Zeroing it cost a call to a byte-at-a-time memset.
        let mut tuple = MaybeUninit::<bpf_sock_tuple>::uninit();
        let t = self.tcp();
        let sport = u16::from_ne_bytes([t[0], t[1]]);
        let dport = u16::from_ne_bytes([t[2], t[3]]);
        let ip = self.ip();
        let size = match self.family {
            Family::V4 => {
                let (client, server) = self.v4_addrs();
                // SAFETY: writing every field of the ipv4 member of the
                // union through a raw pointer; no reference to uninit data.
                unsafe {
                    let v4 = &raw mut (*tuple.as_mut_ptr()).__bindgen_anon_1.ipv4;
                    (*v4).saddr = u32::from_ne_bytes(client);
                    (*v4).daddr = u32::from_ne_bytes(server);
                    (*v4).sport = sport;
                    (*v4).dport = dport;
                }
                12
            }
            Family::V6 => {
                // SAFETY: as above, the ipv6 member.
                unsafe {
                    let v6 = &raw mut (*tuple.as_mut_ptr()).__bindgen_anon_1.ipv6;
                    for i in 0..4 {
                        let s = 8 + i * 4;
                        let d = 24 + i * 4;
                        (*v6).saddr[i] =
                            u32::from_ne_bytes([ip[s], ip[s + 1], ip[s + 2], ip[s + 3]]);
                        (*v6).daddr[i] =
                            u32::from_ne_bytes([ip[d], ip[d + 1], ip[d + 2], ip[d + 3]]);
                    }
                    (*v6).sport = sport;
                    (*v6).dport = dport;
                }
                36
            }
        };
        // SAFETY: the tuple lives on our stack for the call, its first
        // `size` bytes written.
        let sk = unsafe {
            bpf_skc_lookup_tcp(
                ctx.ctx as *mut c_void,
                tuple.as_mut_ptr(),
                size,
                BPF_F_CURRENT_NETNS as u64,
                0,
            )
        };
        if sk.is_null() {
            None
        } else {
            Some(Socket(sk as *mut bpf_sock))
        }
    }
}

/// During a flood: answer a SYN with a SYN-ACK carrying a kernel cookie.
///
/// The full way looks up the socket and asks the socket-bound helper for
/// the cookie, which renews the listener's overflow stamp and gives out a
/// cookie only when the kernel would. Its answer is remembered per port
/// and address for a second (`LISTENERS`), and meanwhile SYNs to that
/// port are dropped if no socket was there, or get their cookie from the
/// raw helper, unless they come from a recent peer (`crate::sources`): for
/// those the lookup may find a connection the kernel still holds.
#[inline(always)]
fn answer_syn(ctx: &XdpContext, syn: &HandedSyn, config: &Config) -> Reason {
    // The family is decided once, and each arm is a copy of the path with
    // it constant. With one path, the compiler tests the family again at
    // every difference and reuses stack slots between the arms; Linux 6.1's
    // verifier does not carry the first test's outcome to the later ones
    // (the family is spilled to the stack without an ID:
    // kernel/bpf/verifier.c `find_equal_scalars`), walks mixed V4/V6 paths
    // that cannot happen, and rejects one that treats a V6 arm's stack
    // pointer as V4 address bytes ("bitwise operator &= on pointer").
    match syn.family() {
        Family::V4 => answer_syn_as(ctx, syn, Family::V4, config),
        Family::V6 => answer_syn_as(ctx, syn, Family::V6, config),
    }
}

#[inline(always)]
fn answer_syn_as(ctx: &XdpContext, syn: &HandedSyn, family: Family, config: &Config) -> Reason {
    let now = syn.now;
    if !host::frame_for_us(ctx, syn.vlan) {
        return Reason::NotLocal;
    }
    let offer = Offer::of(config);
    let Some(mut h) = Headers::of_syn(ctx, syn, family, offer) else {
        return Reason::Internal;
    };
    if h.family == Family::V4 && !h.ipv4_header_ok(syn.l4.wrapping_sub(syn.l3)) {
        return Reason::Malformed;
    }
    // The answer is built and sized in the frame's first buffer: a SYN
    // whose packet runs past it (a multi-buffer frame: data in a jumbo
    // SYN, a NIC's header split) goes to the kernel.
    if !h.in_first_buffer(ctx, syn.l3) {
        return Reason::CookieFallback;
    }
    let t = h.tcp();
    let dport = u16::from_be_bytes([t[2], t[3]]);
    let cheap = match cached_listener(dport, &h, now) {
        Some(listeners::NONE) => return Reason::NoListener,
        Some(_) if !sources::recent_peer(&syn.src, h.family, config.hash_seed, now) => {
            Some(h.raw_cookie()).filter(|&generated| generated >= 0)
        }
        _ => None,
    };
    let generated = match cheap {
        Some(generated) => generated,
        // The full way, for a destination found local: a fresh slot in
        // `LISTENERS` is one (`remember_listener` follows this check).
        None if !h.local_destination() => return Reason::NotLocal,
        None => match h.socket_cookie(ctx, dport, now) {
            Ok(generated) => generated,
            Err(reason) => return reason,
        },
    };
    build_syn_ack(
        ctx,
        syn.l3 as usize,
        h,
        generated as u32,
        offer,
        config,
        now,
    )
}

/// Hands a SYN to the cookie path's program (`synguard_syn`), with what
/// the parse found, and ends this program there. If that program is not
/// in `TAIL` (a broken load), the SYN goes to the kernel, which answers
/// it with a cookie of its own: `cookie_fallback`.
#[inline(always)]
pub fn hand_over(ctx: &XdpContext, packet: &Packet, tcp: &Tcp, now: u64) -> Reason {
    let Some(scratch) = SCRATCH.get_ptr_mut(0) else {
        return Reason::Internal;
    };
    // SAFETY: this CPU's scratch slot, used by one program run at a time
    // (the tail call runs on the same CPU, in the same run).
    unsafe {
        (*scratch).syn = HandedSyn {
            src: packet.src,
            l3: packet.l3 as u32,
            l4: tcp.l4 as u32,
            header_len: tcp.header_len as u32,
            v6: (packet.family == Family::V6) as u32,
            vlan: packet.vlan,
            _pad: 0,
            now,
        };
        TAIL.tail_call(ctx, 0);
    }
    Reason::CookieFallback
}

/// The cookie path's program's side of `hand_over`: the SYN it was
/// handed, answered.
#[inline(always)]
pub fn answer_handed(ctx: &XdpContext) -> Reason {
    let (Some(scratch), Some(config)) = (SCRATCH.get_ptr(0), crate::flood::config()) else {
        return Reason::Internal;
    };
    // SAFETY: this CPU's scratch slot, written by `hand_over` in this run.
    answer_syn(ctx, unsafe { &(*scratch).syn }, config)
}

/// What the last full look at the SYN's port and address found, if it is
/// fresh.
#[inline(always)]
fn cached_listener(port: u16, h: &Headers, now: u64) -> Option<u32> {
    let slot = LISTENERS.get(port as u32)?;
    let (family, addr) = h.local_addr();
    let fresh = slot.family == family
        && slot.addr == addr
        && now.wrapping_sub(slot.checked_ns) < listeners::FRESH_NS;
    fresh.then_some(slot.state)
}

/// Remembers what a full look at the SYN's port and address found.
#[inline(always)]
fn remember_listener(port: u16, h: &Headers, state: u32, now: u64) {
    let (family, addr) = h.local_addr();
    // SAFETY: a store into our own map's value, valid for this run.
    if let Some(slot) = LISTENERS.get_ptr_mut(port as u32) {
        unsafe {
            *slot = ListenerSlot {
                addr,
                family,
                state,
                checked_ns: now,
            };
        }
    }
}

impl Headers {
    /// The segment's destination: our address (IPv4 in the first four
    /// bytes), with the family as `ListenerSlot` keeps it.
    #[inline(always)]
    fn local_addr(&self) -> (u32, [u8; 16]) {
        let ip = self.ip();
        let mut addr = [0u8; 16];
        match self.family {
            Family::V4 => {
                addr[..4].copy_from_slice(&ip[16..20]);
                (4, addr)
            }
            Family::V6 => {
                addr.copy_from_slice(&ip[24..40]);
                (6, addr)
            }
        }
    }

    /// Whether the IP packet, as long as its header says, ends within the
    /// frame's first buffer.
    #[inline(always)]
    fn in_first_buffer(&self, ctx: &XdpContext, l3: u32) -> bool {
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
    fn local_destination(&self) -> bool {
        let ip = self.ip();
        match self.family {
            Family::V4 => host::local_v4([ip[16], ip[17], ip[18], ip[19]]),
            Family::V6 => {
                let mut addr = [0u8; 16];
                addr.copy_from_slice(&ip[24..40]);
                host::local_v6(addr)
            }
        }
    }

    /// Whether an ACK that reached a listener is for this host: its frame
    /// and its destination.
    #[inline(always)]
    fn ack_for_us(&self, ctx: &XdpContext, vlan: u32) -> bool {
        host::frame_for_us(ctx, vlan) && self.local_destination()
    }

    /// A cookie from the raw helper (the kernel's secret and MSS table,
    /// no socket): cookie | MSS << 32, or negative.
    #[inline(always)]
    fn raw_cookie(&mut self) -> i64 {
        let ip = self.ip as *mut u8;
        let th = self.tcp as *mut tcphdr;
        // SAFETY: the helpers read the fixed IP header (20 or 40 bytes of
        // `ip`) and tcp_len (= doff * 4) bytes of `tcp`, in the frame
        // (checked) or in scratch.
        unsafe {
            match self.family {
                Family::V4 => bpf_tcp_raw_gen_syncookie_ipv4(ip as *mut iphdr, th, self.tcp_len),
                Family::V6 => bpf_tcp_raw_gen_syncookie_ipv6(ip as *mut ipv6hdr, th, self.tcp_len),
            }
        }
    }

    /// The full way: the socket lookup and the socket-bound helper, its
    /// result remembered for the port. `Err` is the SYN's reason when no
    /// cookie is to be sent.
    #[inline(always)]
    fn socket_cookie(&mut self, ctx: &XdpContext, port: u16, now: u64) -> Result<i64, Reason> {
        let Some(socket) = self.lookup(ctx) else {
            remember_listener(port, self, listeners::NONE, now);
            return Err(Reason::NoListener);
        };
        if !socket.is_listener() {
            // A SYN for a socket in another state (TIME_WAIT reuse, ...):
            // the kernel's business.
            return Err(Reason::Syn);
        }
        let ip_len = self.family.ip_len() as u32;
        // SAFETY: the helper reads ip_len bytes of `ip` and tcp_len of
        // `tcp`, in the frame (checked) or in scratch; th_len == doff * 4
        // as it requires.
        let generated = unsafe {
            bpf_tcp_gen_syncookie(
                socket.0 as *mut c_void,
                self.ip as *mut c_void,
                ip_len,
                self.tcp as *mut tcphdr,
                self.tcp_len,
            )
        };
        drop(socket);
        if generated < 0 {
            // -ENOENT: the listener is not overwhelmed and cookies are not
            // forced, so the kernel takes this SYN itself (and the next:
            // nothing is remembered).
            return Err(Reason::Syn);
        }
        remember_listener(port, self, listeners::LISTENING, now);
        Ok(generated)
    }
}

/// The copy length: doff * 4, in [20, 60], computed so that the verifier
/// sees it bounded by [20, 80].
#[inline(always)]
fn header_copy_len(header_len: u32) -> u32 {
    let extra_words = ((header_len >> 2).wrapping_sub(5)) & 0xf;
    20 + extra_words * 4
}

/// What the client's SYN asked for, gathered option by option in a
/// bpf_loop callback: the verifier checks one step once, where an open-coded
/// loop makes it walk every combination of option lengths. The flags share
/// one word: LLVM turns runs of zeroed fields into a call to memset, which
/// in BPF is a loop a byte at a time.
#[repr(C)]
#[derive(Clone, Copy)]
struct ClientOptions {
    /// Offset of the next option in the header copy.
    at: u64,
    /// The header length: options end here.
    len: u64,
    /// The window scale shift (`NO_WSCALE` if absent) in the low byte, and
    /// the `SACK_PERMITTED` and `TIMESTAMPS` bits.
    found: u64,
    tsval: u64,
}

const WSCALE_MASK: u64 = 0xff;
const NO_WSCALE: u64 = 0xff;
const SACK_PERMITTED: u64 = 1 << 8;
const TIMESTAMPS: u64 = 1 << 9;

impl ClientOptions {
    #[inline(always)]
    fn wscale(&self) -> Option<u8> {
        match self.found & WSCALE_MASK {
            NO_WSCALE => None,
            shift => Some(shift as u8),
        }
    }

    #[inline(always)]
    fn sack(&self) -> bool {
        self.found & SACK_PERMITTED != 0
    }

    #[inline(always)]
    fn timestamps(&self) -> bool {
        self.found & TIMESTAMPS != 0
    }
}
/// bpf_loop: go on, or stop.
const LOOP_CONTINUE: i64 = 0;
const LOOP_BREAK: i64 = 1;

/// A byte of the scratch header copy, 0 past its end (a bounds check the
/// verifier can follow, and no panic path).
#[inline(always)]
fn byte(th: &[u8; HEADER_COPY], i: u64) -> u8 {
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
fn client_options(len: u32) -> ClientOptions {
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
fn linux_syn_options<const N: usize>(th: &[u8; N], len: u32) -> Option<ClientOptions> {
    let layout = [
        (20, OPT_MSS),
        (21, 4),
        (24, OPT_SACK_PERM),
        (25, 2),
        (26, OPT_TIMESTAMP),
        (27, 10),
        (36, OPT_NOP),
        (37, OPT_WSCALE),
        (38, 3),
    ];
    if len != 40 || layout.iter().any(|&(at, byte)| th[at] != byte) {
        return None;
    }
    Some(ClientOptions {
        at: 40,
        len: 40,
        found: th[39].min(TCP_MAX_WSCALE) as u64 | SACK_PERMITTED | TIMESTAMPS,
        tsval: u32::from_be_bytes([th[28], th[29], th[30], th[31]]) as u64,
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

/// What the answer takes from the SYN, read before any of it is written
/// (the frame form writes the answer over the SYN).
struct Syn {
    /// The SYN's source and destination ports, as in its header.
    ports: [u8; 4],
    seq: u32,
    options: ClientOptions,
    /// The client's address and the server's.
    addrs: Addrs,
}

enum Addrs {
    V4 { client: [u8; 4], server: [u8; 4] },
    V6 { client: [u8; 16], server: [u8; 16] },
}

impl Syn {
    #[inline(always)]
    fn read(h: &Headers) -> Syn {
        let th = h.tcp();
        let options = match linux_syn_options(th, h.tcp_len) {
            Some(options) => options,
            // (The frame form has Linux's options: `Headers::in_frame`.)
            None => client_options(h.tcp_len),
        };
        let ip = h.ip();
        // Not zeroed arrays filled in: zeroing costs a call to memset.
        let addrs = match h.family {
            Family::V4 => {
                let (client, server) = h.v4_addrs();
                Addrs::V4 { client, server }
            }
            Family::V6 => {
                let mut client = MaybeUninit::<[u8; 16]>::uninit();
                let mut server = MaybeUninit::<[u8; 16]>::uninit();
                // SAFETY: every byte of both is written before they are read.
                unsafe {
                    (*client.as_mut_ptr()).copy_from_slice(&ip[8..24]);
                    (*server.as_mut_ptr()).copy_from_slice(&ip[24..40]);
                    Addrs::V6 {
                        client: client.assume_init(),
                        server: server.assume_init(),
                    }
                }
            }
        };
        Syn {
            ports: [th[0], th[1], th[2], th[3]],
            seq: u32::from_be_bytes([th[4], th[5], th[6], th[7]]),
            options,
            addrs,
        }
    }
}

/// Writes the SYN-ACK that answers the SYN: addresses and ports swapped,
/// seq = cookie, ack = the client's seq + 1, and the options the kernel's
/// own cookie SYN-ACK would carry. IP options, IPv6 extension headers and
/// any SYN payload are not carried over.
#[inline(always)]
fn build_syn_ack(
    ctx: &XdpContext,
    l3: usize,
    h: Headers,
    cookie: u32,
    offer: Offer,
    config: &Config,
    now: u64,
) -> Reason {
    let family = h.family;
    let syn = Syn::read(&h);
    let client = syn.options;

    // Timestamps carry the options through the handshake (syncookies.c
    // `cookie_init_timestamp`); without them the cookie holds the MSS only.
    let use_ts = offer.ts_cookies != 0 && client.timestamps();
    let sack = use_ts && client.sack() && offer.sack != 0;
    let client_wscale = client.wscale();
    let wscale = use_ts && offer.window_scaling != 0 && client_wscale.is_some();

    // Every byte of the answer up to its length is written below, none
    // zeroed first: a zeroed buffer costs a call to memset, which in BPF
    // loops a byte at a time.
    // SAFETY: the frame's own headers (checked) or scratch; the SYN's
    // bytes were all read into `syn` above.
    let out = unsafe { &mut *h.out_tcp };
    // The checksum is summed from the values written, not read back from
    // the bytes: each 16-bit word read back cost two byte loads, a shift
    // and an or in BPF.
    let ack = syn.seq.wrapping_add(1);
    let mut sum = words(u32::from_be_bytes([
        syn.ports[2],
        syn.ports[3],
        syn.ports[0],
        syn.ports[1],
    ])) + words(cookie)
        + words(ack)
        + SYN_ACK_WINDOW as u32;
    out[0..2].copy_from_slice(&syn.ports[2..4]);
    out[2..4].copy_from_slice(&syn.ports[0..2]);
    out[4..8].copy_from_slice(&cookie.to_be_bytes());
    out[8..12].copy_from_slice(&ack.to_be_bytes());
    out[13] = 0x12; // SYN | ACK
    out[14..16].copy_from_slice(&SYN_ACK_WINDOW.to_be_bytes());
    // The checksum, 0 while it is computed, and the urgent pointer.
    out[16..18].copy_from_slice(&0u16.to_be_bytes());
    out[18..20].copy_from_slice(&0u16.to_be_bytes());
    let mss = match family {
        Family::V4 if config.mss_v4 != 0 => config.mss_v4,
        Family::V4 => DEFAULT_MSS_V4,
        Family::V6 if config.mss_v6 != 0 => config.mss_v6,
        Family::V6 => DEFAULT_MSS_V6,
    };
    out[20] = OPT_MSS;
    out[21] = 4;
    out[22..24].copy_from_slice(&mss.to_be_bytes());
    sum += word(OPT_MSS, 4) + mss as u32;
    let mut tcp_len = 24usize;
    if use_ts {
        let mut options = match client_wscale {
            Some(shift) if wscale => shift as u32,
            _ => TS_OPT_WSCALE_MASK,
        };
        if sack {
            options |= TS_OPT_SACK;
        }
        // The kernel's TCP clock is CLOCK_MONOTONIC (tcp_clock_ns); `now`
        // is the same clock as of the last tick, so never ahead of it.
        let now_ms = now / 1_000_000;
        let mut ts = ((now_ms >> TSBITS) << TSBITS) | options as u64;
        // Keep TSval <= the clock, as cookie_init_timestamp does.
        if ts > now_ms {
            ts -= 1 << TSBITS;
        }
        if sack {
            out[24..26].copy_from_slice(&[OPT_SACK_PERM, 2]);
            sum += word(OPT_SACK_PERM, 2);
        } else {
            out[24..26].copy_from_slice(&[OPT_NOP, OPT_NOP]);
            sum += word(OPT_NOP, OPT_NOP);
        }
        out[26..28].copy_from_slice(&[OPT_TIMESTAMP, 10]);
        out[28..32].copy_from_slice(&(ts as u32).to_be_bytes());
        out[32..36].copy_from_slice(&(client.tsval as u32).to_be_bytes());
        sum += word(OPT_TIMESTAMP, 10) + words(ts as u32) + words(client.tsval as u32);
        tcp_len = 36;
        if wscale {
            out[36..40].copy_from_slice(&[OPT_NOP, OPT_WSCALE, 3, config.wscale]);
            sum += word(OPT_NOP, OPT_WSCALE) + word(3, config.wscale);
            tcp_len = 40;
        }
    }
    let doff = ((tcp_len / 4) as u8) << 4;
    out[12] = doff;
    sum += word(doff, 0x12);

    let pseudo = match syn.addrs {
        Addrs::V4 { client, server } => {
            // SAFETY: 20 bytes where the answer's IP header goes.
            let ip = unsafe { &mut *(h.out_ip as *mut [u8; 20]) };
            ip[0] = 0x45;
            ip[1] = 0; // DSCP, ECN
            ip[2..4].copy_from_slice(&((20 + tcp_len) as u16).to_be_bytes());
            ip[4..6].copy_from_slice(&0u16.to_be_bytes()); // identification
            ip[6] = 0x40; // don't fragment, offset 0
            ip[7] = 0;
            ip[8] = SYN_ACK_TTL;
            ip[9] = IPPROTO_TCP;
            ip[10..12].copy_from_slice(&0u16.to_be_bytes()); // checksum, below
            ip[12..16].copy_from_slice(&server);
            ip[16..20].copy_from_slice(&client);
            let addrs = words(u32::from_be_bytes(server)) + words(u32::from_be_bytes(client));
            let ip_sum = fold(
                word(0x45, 0)
                    + (20 + tcp_len) as u32
                    + word(0x40, 0)
                    + word(SYN_ACK_TTL, IPPROTO_TCP)
                    + addrs,
            );
            ip[10..12].copy_from_slice(&(!ip_sum).to_be_bytes());
            addrs
        }
        Addrs::V6 { client, server } => {
            // SAFETY: 40 bytes where the answer's IP header goes.
            let ip = unsafe { &mut *(h.out_ip as *mut [u8; 40]) };
            // Version 6, traffic class and flow label 0.
            ip[0..4].copy_from_slice(&0x6000_0000u32.to_be_bytes());
            ip[4..6].copy_from_slice(&(tcp_len as u16).to_be_bytes());
            ip[6] = IPPROTO_TCP;
            ip[7] = SYN_ACK_TTL;
            ip[8..24].copy_from_slice(&server);
            ip[24..40].copy_from_slice(&client);
            // RFC 8200 8.1: the pseudo-header holds both addresses.
            address_words(&server) + address_words(&client)
        }
    };
    let tcp_sum = fold(sum + pseudo + IPPROTO_TCP as u32 + tcp_len as u32);
    out[16..18].copy_from_slice(&(!tcp_sum).to_be_bytes());
    emit(ctx, l3, &h, tcp_len)
}

/// Puts the answer in the frame and swaps the MACs (constant offsets, no
/// helper). The frame form's answer is there already, as long as the
/// SYN. A copy's is written back in one helper call, after the frame is
/// resized to L2 + IP + TCP; the resize comes first: if the driver cannot,
/// nothing has been touched yet and the SYN goes to the kernel instead.
#[inline(always)]
fn emit(ctx: &XdpContext, l3: usize, h: &Headers, tcp_len: usize) -> Reason {
    let ip_len = h.family.ip_len();
    let old_len = ctx.data_end() - ctx.data();
    let new_len = l3 + ip_len + tcp_len;
    if h.in_frame {
        // `Headers::of_syn` took this form only for answers as long.
        if new_len != old_len {
            return Reason::Internal;
        }
    } else {
        let delta = new_len as i32 - old_len as i32;
        // SAFETY: plain helper calls on our context and scratch memory.
        if delta != 0 && unsafe { bpf_xdp_adjust_tail(ctx.ctx, delta) } != 0 {
            return Reason::CookieFallback;
        }
        let tcp_len = tcp_len.min(40);
        // SAFETY: `out_ip + ip_len` is `out_tcp` (`Headers::copy`).
        let stored = unsafe {
            bpf_xdp_store_bytes(
                ctx.ctx,
                l3 as u32,
                h.out_ip as *mut c_void,
                (ip_len + tcp_len) as u32,
            )
        };
        if stored != 0 {
            return Reason::Internal;
        }
    }
    // The resize moved the frame's end: `ptr_at` checks against the new one.
    let Some(macs) = ptr_at::<[u8; 12]>(ctx, 0) else {
        return Reason::Internal;
    };
    let macs = macs as *mut [u8; 12];
    // SAFETY: `ptr_at` checked that the 12 bytes lie inside the frame.
    unsafe {
        let m = *macs;
        *macs = [
            m[6], m[7], m[8], m[9], m[10], m[11], m[0], m[1], m[2], m[3], m[4], m[5],
        ];
    }
    Reason::SynAck
}

/// During a flood: an ACK that reaches a listener (no established or
/// half-open socket took it) must carry a valid cookie. A valid one, and
/// the FIN of a connection the kernel holds, make its source a recent
/// peer.
#[inline(always)]
pub fn check_ack(ctx: &XdpContext, packet: &Packet, tcp: &Tcp, config: &Config) -> Reason {
    let Some(mut h) = Headers::copy(ctx, packet.family, packet.l3 as u32, tcp.l4 as u32, 20) else {
        return Reason::Internal;
    };
    let Some(socket) = h.lookup(ctx) else {
        return Reason::Tcp;
    };
    if !socket.is_listener() {
        // Established, TIME_WAIT, or a request socket the kernel made.
        drop(socket);
        if tcp.flags.is_fin() {
            sources::mark_peer(packet, config.hash_seed, crate::flood::now());
        }
        return Reason::Tcp;
    }
    let ip_len = h.family.ip_len() as u32;
    // SAFETY: the helper reads ip_len bytes of `ip` and 20 of `tcp`.
    let checked = unsafe {
        bpf_tcp_check_syncookie(
            socket.0 as *mut c_void,
            h.ip as *mut c_void,
            ip_len,
            h.tcp as *mut tcphdr,
            20,
        )
    };
    drop(socket);
    if checked == 0 {
        sources::mark_peer(packet, config.hash_seed, crate::flood::now());
        Reason::ValidCookie
    } else if h.ack_for_us(ctx, packet.vlan) {
        Reason::BadCookie
    } else {
        // The lookup finds a wildcard listener whatever the destination: an
        // ACK of a connection this host forwards (or one for another MAC,
        // or a VLAN it has no device for) is not ours to judge. Asked only
        // of ACKs whose cookie failed: a valid one is passed either way.
        Reason::NotLocal
    }
}

/// Adds the 16-bit big-endian words of `bytes[from..to]` to `sum`.
#[inline(always)]
fn sum_words<const N: usize>(bytes: &[u8; N], from: usize, to: usize, mut sum: u32) -> u32 {
    let mut i = from;
    while i + 1 < N && i + 1 < to {
        sum += u16::from_be_bytes([bytes[i], bytes[i + 1]]) as u32;
        i += 2;
    }
    sum
}

/// The sum of a u32's two 16-bit words.
#[inline(always)]
fn words(x: u32) -> u32 {
    (x >> 16) + (x & 0xffff)
}

/// The 16-bit word of two bytes, in network order.
#[inline(always)]
fn word(high: u8, low: u8) -> u32 {
    (high as u32) << 8 | low as u32
}

/// The sum of an IPv6 address's 16-bit words.
#[inline(always)]
fn address_words(a: &[u8; 16]) -> u32 {
    words(u32::from_be_bytes([a[0], a[1], a[2], a[3]]))
        + words(u32::from_be_bytes([a[4], a[5], a[6], a[7]]))
        + words(u32::from_be_bytes([a[8], a[9], a[10], a[11]]))
        + words(u32::from_be_bytes([a[12], a[13], a[14], a[15]]))
}

/// RFC 1071: fold a 32-bit sum into 16 bits.
#[inline(always)]
fn fold(mut sum: u32) -> u16 {
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    sum as u16
}
