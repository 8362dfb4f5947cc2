//! The listener a SYN is for: the socket lookup, the two ways to a
//! cookie, and what the last full look at a port found (`LISTENERS`).
use core::{ffi::c_void, mem::MaybeUninit};

use aya_ebpf::{
    bindings::{BPF_F_CURRENT_NETNS, bpf_sock, bpf_sock_tuple, iphdr, ipv6hdr, tcphdr},
    helpers::{
        bpf_sk_release, bpf_skc_lookup_tcp, bpf_tcp_gen_syncookie,
        bpf_tcp_raw_check_syncookie_ipv4, bpf_tcp_raw_check_syncookie_ipv6,
        bpf_tcp_raw_gen_syncookie_ipv4, bpf_tcp_raw_gen_syncookie_ipv6,
    },
    macros::map,
    maps::Array,
    programs::XdpContext,
};
use synguard_common::{ALIGNED_ARRAY, ListenerSlot, Reason, listeners};

use super::headers::Headers;
use crate::parse::Family;

/// include/net/tcp_states.h `TCP_ESTABLISHED`, `TCP_LISTEN`.
const TCP_ESTABLISHED: u32 = 1;
const TCP_LISTEN: u32 = 10;

/// What the last full look at each destination port found (see
/// `synguard_common::listeners`).
#[map(name = "LISTENERS")]
pub(super) static LISTENERS: Array<ListenerSlot> = Array::with_max_entries(65_536, ALIGNED_ARRAY);

/// A socket reference from bpf_skc_lookup_tcp, released when dropped, as
/// the verifier demands on every path.
pub(super) struct Socket(pub(super) *mut bpf_sock);

impl Drop for Socket {
    #[inline(always)]
    fn drop(&mut self) {
        // SAFETY: a non-null reference from bpf_skc_lookup_tcp, released once.
        unsafe { bpf_sk_release(self.0 as *mut c_void) };
    }
}

impl Socket {
    #[inline(always)]
    pub(super) fn is_listener(&self) -> bool {
        // SAFETY: non-null; `state` is readable on any sock_common.
        unsafe { (*self.0).state == TCP_LISTEN }
    }

    #[inline(always)]
    pub(super) fn is_established(&self) -> bool {
        // SAFETY: as in `is_listener`.
        unsafe { (*self.0).state == TCP_ESTABLISHED }
    }
}

impl Headers {
    /// Looks up the socket the segment is for, in the interface's namespace.
    #[inline(always)]
    pub(super) fn lookup(&mut self, ctx: &XdpContext) -> Option<Socket> {
        // Not zeroed first: only the member the helper reads (`size` bytes)
        // is written. Zeroing it cost a call to a byte-at-a-time memset.
        let mut tuple = MaybeUninit::<bpf_sock_tuple>::uninit();
        let t = self.tcp();
        let sport = u16::from_ne_bytes([t[0], t[1]]);
        let dport = u16::from_ne_bytes([t[2], t[3]]);
        // The tuple's addresses are network order: the words' bytes.
        let size = match self.family {
            Family::V4 => {
                let (client, server) = self.v4_addrs();
                // SAFETY: writing every field of the ipv4 member of the
                // union through a raw pointer; no reference to uninit data.
                unsafe {
                    let v4 = &raw mut (*tuple.as_mut_ptr()).__bindgen_anon_1.ipv4;
                    (*v4).saddr = client;
                    (*v4).daddr = server;
                    (*v4).sport = sport;
                    (*v4).dport = dport;
                }
                12
            }
            Family::V6 => {
                let (client, server) = self.v6_addrs();
                // SAFETY: as above, the ipv6 member.
                unsafe {
                    let v6 = &raw mut (*tuple.as_mut_ptr()).__bindgen_anon_1.ipv6;
                    (*v6).saddr = client;
                    (*v6).daddr = server;
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

    /// Whether the ACK's acknowledgment number is a cookie the kernel's
    /// secret made for its 4-tuple within the last minutes (the raw
    /// helper: no socket).
    #[inline(always)]
    pub(super) fn raw_cookie_valid(&mut self) -> bool {
        let ip = self.ip as *mut u8;
        let th = self.tcp as *mut tcphdr;
        // SAFETY: the helpers read the fixed IP header (20 or 40 bytes of
        // `ip`) and the 20-byte TCP header of `tcp`, in scratch.
        let checked = unsafe {
            match self.family {
                Family::V4 => bpf_tcp_raw_check_syncookie_ipv4(ip as *mut iphdr, th),
                Family::V6 => bpf_tcp_raw_check_syncookie_ipv6(ip as *mut ipv6hdr, th),
            }
        };
        checked == 0
    }

    /// A cookie from the raw helper (the kernel's secret and MSS table,
    /// no socket): cookie | MSS << 32, or negative.
    #[inline(always)]
    pub(super) fn raw_cookie(&mut self) -> i64 {
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
    pub(super) fn socket_cookie(
        &mut self,
        ctx: &XdpContext,
        port: u16,
        now: u64,
    ) -> Result<i64, Reason> {
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

/// What the last full look at the SYN's port and address found, if it is
/// fresh.
#[inline(always)]
pub(super) fn cached_listener(port: u16, h: &Headers, now: u64) -> Option<u32> {
    let slot = LISTENERS.get(port as u32)?;
    let (family, addr) = h.local_addr();
    let fresh = slot.family == family
        && slot.addr == addr
        && now.wrapping_sub(slot.checked_ns) < listeners::FRESH_NS;
    fresh.then_some(slot.state)
}

/// Remembers what a full look at the SYN's port and address found.
#[inline(always)]
pub(super) fn remember_listener(port: u16, h: &Headers, state: u32, now: u64) {
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
