//! A two-instruction XDP_PASS program for the veth peer of a protected
//! interface. XDP_TX on veth only delivers when the receiving peer runs an
//! XDP program (the kernel selftest xdp_synproxy calls it a "workaround
//! required for veth"); with none, SYN-ACKs sent from XDP are lost. Loaded
//! with raw bpf(2), so the lab needs no eBPF toolchain of its own.
use std::{
    io,
    os::fd::{FromRawFd, OwnedFd},
};

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_LINK_CREATE: libc::c_long = 28;
const BPF_OBJ_PIN: libc::c_long = 6;
const BPF_PROG_TYPE_XDP: u32 = 6;
const BPF_XDP: u32 = 37;
const XDP_FLAGS_DRV_MODE: u32 = 1 << 2;
const XDP_PASS: u8 = 2;
/// `BPF_F_XDP_HAS_FRAGS`: the program takes multi-buffer frames, so the
/// peer can run at a jumbo MTU (veth refuses a program without it there).
const BPF_F_XDP_HAS_FRAGS: u32 = 1 << 5;
/// `union bpf_attr` is larger; the kernel reads what it knows and wants the
/// rest zero, which these buffers are.
const ATTR_SIZE: usize = 128;

/// Attaches XDP_PASS to `ifindex` (in the calling thread's namespace) in
/// native mode. The program stays attached while the returned link lives.
pub fn attach_pass(ifindex: u32) -> io::Result<OwnedFd> {
    let prog = load_pass()?;
    let mut attr = [0u8; ATTR_SIZE];
    put_u32(&mut attr, 0, fd_u32(&prog));
    put_u32(&mut attr, 4, ifindex);
    put_u32(&mut attr, 8, BPF_XDP);
    put_u32(&mut attr, 12, XDP_FLAGS_DRV_MODE);
    bpf(BPF_LINK_CREATE, &attr)
}

/// Pins an XDP_PASS program at `path` (on bpffs), for attaching through
/// netlink with `ip link set dev X xdpdrv pinned PATH`: the way programs
/// that predate bpf_link (and many tools) attach.
pub fn pin_pass(path: &std::path::Path) -> io::Result<()> {
    let prog = load_pass()?;
    let c_path =
        std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).map_err(io::Error::other)?;
    let mut attr = [0u8; ATTR_SIZE];
    put_u64(&mut attr, 0, c_path.as_ptr() as u64);
    put_u32(&mut attr, 8, fd_u32(&prog));
    // BPF_OBJ_PIN returns 0, not a descriptor.
    // SAFETY: `attr` is a valid bpf_attr-sized buffer; `c_path` outlives the call.
    let rc = unsafe { libc::syscall(libc::SYS_bpf, BPF_OBJ_PIN, attr.as_ptr(), ATTR_SIZE as u32) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn load_pass() -> io::Result<OwnedFd> {
    // r0 = XDP_PASS; exit
    let insns: [u8; 16] = [0xb7, 0, 0, 0, XDP_PASS, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0];
    let license = c"GPL";
    let mut attr = [0u8; ATTR_SIZE];
    put_u32(&mut attr, 0, BPF_PROG_TYPE_XDP);
    put_u32(&mut attr, 4, 2); // insn_cnt
    put_u64(&mut attr, 8, insns.as_ptr() as u64);
    put_u64(&mut attr, 16, license.as_ptr() as u64);
    put_u32(&mut attr, 44, BPF_F_XDP_HAS_FRAGS); // prog_flags
    attr[48..56].copy_from_slice(b"lab_peer");
    put_u32(&mut attr, 68, BPF_XDP); // expected_attach_type
    bpf(BPF_PROG_LOAD, &attr)
}

fn bpf(cmd: libc::c_long, attr: &[u8; ATTR_SIZE]) -> io::Result<OwnedFd> {
    // SAFETY: `attr` is a valid, fully initialised bpf_attr-sized buffer.
    let fd = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.as_ptr(), ATTR_SIZE as u32) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel returned a new file descriptor that we now own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

fn fd_u32(fd: &OwnedFd) -> u32 {
    use std::os::fd::AsRawFd;
    fd.as_raw_fd() as u32
}

fn put_u32(buf: &mut [u8], at: usize, v: u32) {
    buf[at..at + 4].copy_from_slice(&v.to_ne_bytes());
}

fn put_u64(buf: &mut [u8], at: usize, v: u64) {
    buf[at..at + 8].copy_from_slice(&v.to_ne_bytes());
}
