//! A two-instruction XDP_PASS program for the veth peer of a protected
//! interface. XDP_TX on veth only delivers when the receiving peer runs an
//! XDP program (the kernel selftest xdp_synproxy calls it a "workaround
//! required for veth"); with none, SYN-ACKs sent from XDP are lost.
use std::{
    io,
    os::fd::{AsFd, OwnedFd},
};

use crate::rawbpf::{self, Insn};

/// Attaches XDP_PASS to `ifindex` (in the calling thread's namespace) in
/// native mode. The program stays attached while the returned link lives.
pub fn attach_pass(ifindex: u32) -> io::Result<OwnedFd> {
    rawbpf::attach_native(load_pass()?.as_fd(), ifindex)
}

/// Pins an XDP_PASS program at `path` (on bpffs), for attaching through
/// netlink with `ip link set dev X xdpdrv pinned PATH`: the way programs
/// that predate bpf_link (and many tools) attach.
pub fn pin_pass(path: &std::path::Path) -> io::Result<()> {
    rawbpf::pin(load_pass()?.as_fd(), path)
}

/// `r0 = XDP_PASS; exit`, taking multi-buffer frames, so the peer can run
/// at a jumbo MTU.
fn load_pass() -> io::Result<OwnedFd> {
    rawbpf::load_xdp_frags(
        "lab_peer",
        &[Insn::mov_imm(0, rawbpf::XDP_PASS as i32), Insn::exit()],
    )
}
