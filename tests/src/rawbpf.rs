//! Raw bpf(2), the lab's and the benchmarks' one way to the syscall: load
//! a few-instruction XDP program, attach or pin it, open a program someone
//! else loaded by its id or pin, and run any XDP program through
//! `BPF_PROG_TEST_RUN` by its file descriptor, plain or with live frames.
//! One code path for synguard, the floor program and the peer alike, so
//! they are timed the same way. Raw, so the lab needs no eBPF toolchain
//! and no aya of its own.
use std::{
    io,
    os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd},
};

const BPF_MAP_CREATE: libc::c_long = 0;
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_OBJ_GET: libc::c_long = 7;
const BPF_PROG_TEST_RUN: libc::c_long = 10;
const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
const BPF_OBJ_PIN: libc::c_long = 6;
const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
const BPF_LINK_CREATE: libc::c_long = 28;
const BPF_LINK_UPDATE: libc::c_long = 29;
const BPF_LINK_GET_FD_BY_ID: libc::c_long = 30;
const BPF_LINK_GET_NEXT_ID: libc::c_long = 31;
const XDP_FLAGS_DRV_MODE: u32 = 1 << 2;
const BPF_PROG_TYPE_XDP: u32 = 6;
const BPF_XDP: u32 = 37;
/// `BPF_F_XDP_HAS_FRAGS`: the program takes multi-buffer frames (veth
/// refuses a program without it at a jumbo MTU).
const BPF_F_XDP_HAS_FRAGS: u32 = 1 << 5;
/// include/uapi/linux/bpf.h: frames go out for real (XDP_TX, redirect) or
/// up the stack (XDP_PASS) instead of back to the caller.
const BPF_F_TEST_XDP_LIVE_FRAMES: u32 = 1 << 1;
/// `union bpf_attr` is larger; the kernel wants the bytes it does not know
/// to be zero, which these are.
const ATTR_SIZE: usize = 128;

pub const XDP_ABORTED: u32 = 0;
pub const XDP_DROP: u32 = 1;
pub const XDP_PASS: u32 = 2;
pub const XDP_TX: u32 = 3;

/// One eBPF instruction (include/uapi/linux/bpf.h `struct bpf_insn`).
#[derive(Clone, Copy)]
pub struct Insn([u8; 8]);

impl Insn {
    const fn new(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
        let o = off.to_le_bytes();
        let i = imm.to_le_bytes();
        Insn([code, (src << 4) | dst, o[0], o[1], i[0], i[1], i[2], i[3]])
    }
    /// `dst = imm` (64-bit).
    pub const fn mov_imm(dst: u8, imm: i32) -> Insn {
        Insn::new(0xb7, dst, 0, 0, imm)
    }
    /// `dst = src` (64-bit).
    pub const fn mov(dst: u8, src: u8) -> Insn {
        Insn::new(0xbf, dst, src, 0, 0)
    }
    pub const fn add_imm(dst: u8, imm: i32) -> Insn {
        Insn::new(0x07, dst, 0, 0, imm)
    }
    pub const fn and_imm(dst: u8, imm: i32) -> Insn {
        Insn::new(0x57, dst, 0, 0, imm)
    }
    pub const fn or_imm(dst: u8, imm: i32) -> Insn {
        Insn::new(0x47, dst, 0, 0, imm)
    }
    pub const fn xor_imm(dst: u8, imm: i32) -> Insn {
        Insn::new(0xa7, dst, 0, 0, imm)
    }
    pub const fn rsh_imm(dst: u8, imm: i32) -> Insn {
        Insn::new(0x77, dst, 0, 0, imm)
    }
    /// `dst = htobe16(dst)`: the low 16 bits in network order.
    pub const fn be16(dst: u8) -> Insn {
        Insn::new(0xdc, dst, 0, 0, 16)
    }
    /// `dst = *(u32 *)(src + off)`.
    pub const fn load_u32(dst: u8, src: u8, off: i16) -> Insn {
        Insn::new(0x61, dst, src, off, 0)
    }
    /// `dst = *(u16 *)(src + off)`.
    pub const fn load_u16(dst: u8, src: u8, off: i16) -> Insn {
        Insn::new(0x69, dst, src, off, 0)
    }
    /// `*(u16 *)(dst + off) = src`.
    pub const fn store_u16(dst: u8, off: i16, src: u8) -> Insn {
        Insn::new(0x6b, dst, src, off, 0)
    }
    /// `*(u32 *)(dst + off) = imm`.
    pub const fn store_imm_u32(dst: u8, off: i16, imm: i32) -> Insn {
        Insn::new(0x62, dst, 0, off, imm)
    }
    /// `*(u16 *)(dst + off) = imm`.
    pub const fn store_imm_u16(dst: u8, off: i16, imm: i32) -> Insn {
        Insn::new(0x6a, dst, 0, off, imm)
    }
    /// `*(u8 *)(dst + off) = imm`.
    pub const fn store_imm_u8(dst: u8, off: i16, imm: i32) -> Insn {
        Insn::new(0x72, dst, 0, off, imm)
    }
    /// `if dst > src goto +off` (unsigned).
    pub const fn jgt(dst: u8, src: u8, off: i16) -> Insn {
        Insn::new(0x2d, dst, src, off, 0)
    }
    /// `if dst != imm goto +off`.
    pub const fn jne_imm(dst: u8, imm: i32, off: i16) -> Insn {
        Insn::new(0x55, dst, 0, off, imm)
    }
    /// Calls helper number `id`.
    pub const fn call(id: i32) -> Insn {
        Insn::new(0x85, 0, 0, 0, id)
    }
    pub const fn exit() -> Insn {
        Insn::new(0x95, 0, 0, 0, 0)
    }
    /// The instruction as the kernel reads it.
    pub const fn bytes(self) -> [u8; 8] {
        self.0
    }
}

/// Loads an XDP program; it lives as long as the returned descriptor.
pub fn load_xdp(name: &str, insns: &[Insn]) -> io::Result<OwnedFd> {
    load(name, insns, 0)
}

/// [`load_xdp`], for a program that takes multi-buffer frames.
pub fn load_xdp_frags(name: &str, insns: &[Insn]) -> io::Result<OwnedFd> {
    load(name, insns, BPF_F_XDP_HAS_FRAGS)
}

fn load(name: &str, insns: &[Insn], prog_flags: u32) -> io::Result<OwnedFd> {
    let code: Vec<u8> = insns.iter().flat_map(|i| i.0).collect();
    let license = c"GPL";
    let mut attr = [0u8; ATTR_SIZE];
    put_u32(&mut attr, 0, BPF_PROG_TYPE_XDP);
    put_u32(&mut attr, 4, insns.len() as u32);
    put_u64(&mut attr, 8, code.as_ptr() as u64);
    put_u64(&mut attr, 16, license.as_ptr() as u64);
    let name = name.as_bytes();
    let n = name.len().min(15);
    put_u32(&mut attr, 44, prog_flags);
    attr[48..48 + n].copy_from_slice(&name[..n]);
    put_u32(&mut attr, 68, BPF_XDP); // expected_attach_type
    bpf_fd(BPF_PROG_LOAD, &attr)
}

/// Creates an LPM trie of `prefix_bytes`-byte addresses (4 or 16) with
/// `value_size`-byte values, as an older synguard's list tries were
/// (include/uapi/linux/bpf.h: `BPF_MAP_TYPE_LPM_TRIE`, which must be
/// created `BPF_F_NO_PREALLOC`); it lives as long as the descriptor, or
/// its pin ([`pin`] takes any bpf object).
pub fn create_lpm_trie(
    prefix_bytes: u32,
    value_size: u32,
    max_entries: u32,
) -> io::Result<OwnedFd> {
    const BPF_MAP_TYPE_LPM_TRIE: u32 = 11;
    const BPF_F_NO_PREALLOC: u32 = 1;
    let mut attr = [0u8; ATTR_SIZE];
    put_u32(&mut attr, 0, BPF_MAP_TYPE_LPM_TRIE);
    put_u32(&mut attr, 4, 4 + prefix_bytes); // key: prefix length, address
    put_u32(&mut attr, 8, value_size);
    put_u32(&mut attr, 12, max_entries);
    put_u32(&mut attr, 16, BPF_F_NO_PREALLOC);
    bpf_fd(BPF_MAP_CREATE, &attr)
}

/// Pins `prog` at `path` (on bpffs).
pub fn pin(prog: BorrowedFd<'_>, path: &std::path::Path) -> io::Result<()> {
    let c_path =
        std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).map_err(io::Error::other)?;
    let mut attr = [0u8; ATTR_SIZE];
    put_u64(&mut attr, 0, c_path.as_ptr() as u64);
    put_u32(&mut attr, 8, prog.as_raw_fd() as u32);
    // BPF_OBJ_PIN returns 0, not a descriptor.
    // SAFETY: a bpf_attr-sized buffer; `c_path` outlives the call.
    let rc = unsafe { libc::syscall(libc::SYS_bpf, BPF_OBJ_PIN, attr.as_ptr(), ATTR_SIZE as u32) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `r0 = action; exit`: the floor every XDP program is compared with.
pub fn load_return(name: &str, action: u32) -> io::Result<OwnedFd> {
    load_xdp(name, &[Insn::mov_imm(0, action as i32), Insn::exit()])
}

/// Attaches `prog` to `ifindex` (in the calling thread's namespace) in
/// native mode, for as long as the returned link lives.
pub fn attach_native(prog: BorrowedFd<'_>, ifindex: u32) -> io::Result<OwnedFd> {
    let mut attr = [0u8; ATTR_SIZE];
    put_u32(&mut attr, 0, prog.as_raw_fd() as u32);
    put_u32(&mut attr, 4, ifindex);
    put_u32(&mut attr, 8, BPF_XDP);
    put_u32(&mut attr, 12, XDP_FLAGS_DRV_MODE);
    bpf_fd(BPF_LINK_CREATE, &attr)
}

/// Swaps the program of the XDP link that runs program `prog_id` for
/// `new_prog`, in place (BPF_LINK_UPDATE): the link keeps its owner and its
/// lifetime, only what it runs changes. Program ids are unique system-wide,
/// so only the link running that very program is touched.
pub fn replace_linked_program(prog_id: u32, new_prog: BorrowedFd<'_>) -> io::Result<()> {
    let mut id = 0u32;
    loop {
        let mut attr = [0u8; ATTR_SIZE];
        put_u32(&mut attr, 0, id);
        // SAFETY: a bpf_attr-sized buffer; the kernel writes next_id.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                BPF_LINK_GET_NEXT_ID,
                attr.as_mut_ptr(),
                ATTR_SIZE as u32,
            )
        };
        if rc < 0 {
            return Err(io::Error::other(format!(
                "no BPF link runs program {prog_id}"
            )));
        }
        id = get_u32(&attr, 4);
        let mut attr = [0u8; ATTR_SIZE];
        put_u32(&mut attr, 0, id);
        let Ok(link) = bpf_fd(BPF_LINK_GET_FD_BY_ID, &attr) else {
            continue; // gone since it was listed
        };
        // struct bpf_link_info: type, id, prog_id, then per-type data.
        let mut info = [0u8; 64];
        let mut attr = [0u8; ATTR_SIZE];
        put_u32(&mut attr, 0, link.as_raw_fd() as u32);
        put_u32(&mut attr, 4, info.len() as u32);
        put_u64(&mut attr, 8, info.as_mut_ptr() as u64);
        // SAFETY: the kernel writes at most info_len bytes into `info`.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                BPF_OBJ_GET_INFO_BY_FD,
                attr.as_mut_ptr(),
                ATTR_SIZE as u32,
            )
        };
        if rc < 0 || get_u32(&info, 8) != prog_id {
            continue;
        }
        let mut attr = [0u8; ATTR_SIZE];
        put_u32(&mut attr, 0, link.as_raw_fd() as u32);
        put_u32(&mut attr, 4, new_prog.as_raw_fd() as u32);
        // SAFETY: a valid bpf_attr for BPF_LINK_UPDATE.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                BPF_LINK_UPDATE,
                attr.as_mut_ptr(),
                ATTR_SIZE as u32,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        return Ok(());
    }
}

/// The id of the XDP program attached to `iface` in `ns`, as `ip -json
/// link` reports it.
pub fn attached_prog_id(ns: &crate::netns::Netns, iface: &str) -> anyhow::Result<u32> {
    use anyhow::Context;
    let out = std::process::Command::new("ip")
        .args([
            "-n",
            ns.name(),
            "-json",
            "-details",
            "link",
            "show",
            "dev",
            iface,
        ])
        .output()
        .context("running ip -json link show")?;
    let json: serde_json::Value =
        serde_json::from_slice(&out.stdout).context("ip -json link output")?;
    json[0]["xdp"]["prog"]["id"]
        .as_u64()
        .map(|id| id as u32)
        .with_context(|| format!("no XDP program on {iface} in {}", ns.name()))
}

/// A new descriptor for a program loaded by another process (bpftool and
/// `ip link` show the id).
pub fn prog_fd_by_id(id: u32) -> io::Result<OwnedFd> {
    let mut attr = [0u8; ATTR_SIZE];
    put_u32(&mut attr, 0, id);
    bpf_fd(BPF_PROG_GET_FD_BY_ID, &attr)
}

/// A new descriptor for a program pinned at `path` on bpffs (bpftool
/// pins what it loads).
pub fn pinned(path: &std::path::Path) -> io::Result<OwnedFd> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let mut attr = [0u8; ATTR_SIZE];
    put_u64(&mut attr, 0, path.as_ptr() as u64);
    bpf_fd(BPF_OBJ_GET, &attr)
}

/// What one `BPF_PROG_TEST_RUN` call returned.
#[derive(Clone, Copy, Debug)]
pub struct RunResult {
    /// The program's return value (an XDP action).
    pub action: u32,
    /// The kernel's own timing: mean ns per repetition (integer).
    pub duration_ns: u32,
    /// Bytes written to the output buffer.
    pub data_size_out: u32,
}

/// Runs `prog` on `frame` `repeat` times inside the kernel, in the calling
/// thread's network namespace, as if received on its loopback. A repeated
/// run sees the frame as the previous repetition left it.
pub fn test_run(
    prog: BorrowedFd<'_>,
    frame: &[u8],
    out: Option<&mut [u8]>,
    repeat: u32,
) -> io::Result<RunResult> {
    test_run_on(prog, frame, out, repeat, None)
}

/// [`test_run`], as if received on `ifindex` (of the calling thread's
/// namespace) when given.
pub fn test_run_on(
    prog: BorrowedFd<'_>,
    frame: &[u8],
    out: Option<&mut [u8]>,
    repeat: u32,
    ifindex: Option<u32>,
) -> io::Result<RunResult> {
    let ctx = ifindex.map(|ifindex| XdpMd {
        data_end: frame.len() as u32,
        ingress_ifindex: ifindex,
        ..XdpMd::default()
    });
    let mut attr = [0u8; ATTR_SIZE];
    if let Some(ctx) = &ctx {
        put_u32(&mut attr, 40, std::mem::size_of::<XdpMd>() as u32);
        put_u64(&mut attr, 48, ctx as *const XdpMd as u64);
    }
    put_u32(&mut attr, 0, prog.as_raw_fd() as u32);
    put_u32(&mut attr, 8, frame.len() as u32);
    put_u64(&mut attr, 16, frame.as_ptr() as u64);
    if let Some(out) = out {
        put_u32(&mut attr, 12, out.len() as u32);
        put_u64(&mut attr, 24, out.as_mut_ptr() as u64);
    }
    put_u32(&mut attr, 32, repeat.max(1));
    bpf_run(&mut attr)
}

/// `struct xdp_md` as BPF_PROG_TEST_RUN takes it in `ctx_in`.
#[repr(C)]
#[derive(Default)]
struct XdpMd {
    data: u32,
    data_end: u32,
    data_meta: u32,
    ingress_ifindex: u32,
    rx_queue_index: u32,
    egress_ifindex: u32,
}

/// Runs `prog` on `repeat` copies of `frame` as if they had arrived on
/// `ifindex` (in the calling thread's namespace), honouring the verdicts:
/// XDP_TX sends the frame out of that interface. net/bpf/test_run.c
/// `bpf_test_run_xdp_live`, kernel 5.18+.
pub fn run_live(prog: BorrowedFd<'_>, frame: &[u8], ifindex: u32, repeat: u32) -> io::Result<()> {
    let ctx = XdpMd {
        data_end: frame.len() as u32,
        ingress_ifindex: ifindex,
        ..XdpMd::default()
    };
    let mut attr = [0u8; ATTR_SIZE];
    put_u32(&mut attr, 0, prog.as_raw_fd() as u32);
    put_u32(&mut attr, 8, frame.len() as u32);
    put_u64(&mut attr, 16, frame.as_ptr() as u64);
    put_u32(&mut attr, 32, repeat.max(1));
    put_u32(&mut attr, 40, std::mem::size_of::<XdpMd>() as u32);
    put_u64(&mut attr, 48, &ctx as *const XdpMd as u64);
    put_u32(&mut attr, 64, BPF_F_TEST_XDP_LIVE_FRAMES);
    bpf_run(&mut attr).map(drop)
}

fn bpf_run(attr: &mut [u8; ATTR_SIZE]) -> io::Result<RunResult> {
    // SAFETY: a bpf_attr-sized buffer whose pointers outlive the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_TEST_RUN,
            attr.as_mut_ptr(),
            ATTR_SIZE as u32,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(RunResult {
        action: get_u32(attr, 4),
        duration_ns: get_u32(attr, 36),
        data_size_out: get_u32(attr, 12),
    })
}

fn bpf_fd(cmd: libc::c_long, attr: &[u8; ATTR_SIZE]) -> io::Result<OwnedFd> {
    // SAFETY: a valid, fully initialised bpf_attr-sized buffer.
    let fd = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.as_ptr(), ATTR_SIZE as u32) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel returned a new file descriptor that we now own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

fn put_u32(buf: &mut [u8], at: usize, v: u32) {
    buf[at..at + 4].copy_from_slice(&v.to_ne_bytes());
}

fn put_u64(buf: &mut [u8], at: usize, v: u64) {
    buf[at..at + 8].copy_from_slice(&v.to_ne_bytes());
}

fn get_u32(buf: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes(buf[at..at + 4].try_into().unwrap())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instructions_encode_as_the_kernel_reads_them() {
        // r0 = 2; exit, exactly as the lab's peer program spells it.
        assert_eq!(Insn::mov_imm(0, 2).bytes(), [0xb7, 0, 0, 0, 2, 0, 0, 0]);
        assert_eq!(Insn::exit().bytes(), [0x95, 0, 0, 0, 0, 0, 0, 0]);
        // *(u16 *)(r2 + 28) = r5: dst in the low nibble, src in the high one.
        assert_eq!(
            Insn::store_u16(2, 28, 5).bytes(),
            [0x6b, 0x52, 28, 0, 0, 0, 0, 0]
        );
        assert_eq!(
            Insn::jgt(4, 3, -1).bytes(),
            [0x2d, 0x34, 0xff, 0xff, 0, 0, 0, 0]
        );
    }
}
