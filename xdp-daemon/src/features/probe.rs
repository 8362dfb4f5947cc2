//! The probes that aya does not offer: a map of each kind the program's
//! maps are (type and flags, as the object declares them), an XDP program
//! loaded with `BPF_F_XDP_HAS_FRAGS`, and an XDP `bpf_link`. Each asks the
//! kernel with bpf(2) and a throwaway object, as libbpf's and bpftool's
//! probes do (tools/lib/bpf/libbpf_probes.c).
use std::{
    io,
    mem::size_of,
    os::fd::{FromRawFd, OwnedFd},
};

use aya_obj::generated::{
    BPF_F_XDP_HAS_FRAGS, XDP_FLAGS_SKB_MODE, bpf_attach_type, bpf_attr, bpf_cmd, bpf_func_id,
    bpf_insn, bpf_prog_type,
};

/// What a probe found: Some(true/false), or None when the kernel would
/// not say (no privilege: EPERM).
pub type Found = Option<bool>;

/// bpf(2) with `attr`; what it returned, or the error.
fn bpf_call(cmd: bpf_cmd, attr: &mut bpf_attr) -> io::Result<i64> {
    // SAFETY: `attr` is a valid, fully initialised bpf_attr; the kernel
    // reads at most `size_of::<bpf_attr>()` bytes of it (and requires
    // what it does not know of to be zero, which it is).
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd as libc::c_long,
            attr as *mut bpf_attr,
            size_of::<bpf_attr>(),
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(ret)
}

/// bpf(2) with `attr` for a command that makes an object; its new
/// descriptor.
fn bpf(cmd: bpf_cmd, attr: &mut bpf_attr) -> io::Result<OwnedFd> {
    let fd = bpf_call(cmd, attr)?;
    // SAFETY: bpf(2) returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// An error that means "not allowed to ask", not "not there".
fn unprivileged(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::EPERM)
}

fn found<T>(result: io::Result<T>) -> Found {
    match result {
        Ok(_) => Some(true),
        Err(e) if unprivileged(&e) => None,
        Err(_) => Some(false),
    }
}

/// `BPF_MAP_TYPE_RINGBUF`: its size is in bytes, a power-of-two number of
/// pages, and it has no key or value.
const RINGBUF: u32 = 27;

/// Whether the kernel creates a map of this type with these flags and
/// sizes (one entry, or a ring buffer of one page: the sizes and flags are
/// what the kernel checks).
pub fn map(map_type: u32, flags: u32, key_size: u32, value_size: u32) -> Found {
    // SAFETY: all-zero is a valid bpf_attr.
    let mut attr: bpf_attr = unsafe { std::mem::zeroed() };
    // SAFETY: writing the BPF_MAP_CREATE member of the union.
    let create = unsafe { &mut attr.__bindgen_anon_1 };
    create.map_type = map_type;
    create.map_flags = flags;
    create.key_size = key_size;
    create.value_size = value_size;
    create.max_entries = if map_type == RINGBUF {
        // SAFETY: sysconf reads a constant.
        unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as u32
    } else {
        1
    };
    found(bpf(bpf_cmd::BPF_MAP_CREATE, &mut attr))
}

/// One instruction.
fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> bpf_insn {
    // SAFETY: all-zero is a valid bpf_insn.
    let mut insn: bpf_insn = unsafe { std::mem::zeroed() };
    insn.code = code;
    insn.set_dst_reg(dst);
    insn.set_src_reg(src);
    insn.off = off;
    insn.imm = imm;
    insn
}

const BPF_ALU64_MOV_K: u8 = 0xb7;
const BPF_ALU64_MOV_X: u8 = 0xbf;
const BPF_ALU64_ADD_K: u8 = 0x07;
const BPF_LDX_W: u8 = 0x61;
const BPF_STX_DW: u8 = 0x7b;
const BPF_JMP_JGT_X: u8 = 0x2d;
const BPF_JMP_CALL: u8 = 0x85;
const BPF_JMP_EXIT: u8 = 0x95;
const XDP_PASS: i32 = 2;

/// `r0 = XDP_PASS; exit`.
fn xdp_pass() -> [bpf_insn; 2] {
    [
        insn(BPF_ALU64_MOV_K, 0, 0, 0, XDP_PASS),
        insn(BPF_JMP_EXIT, 0, 0, 0, 0),
    ]
}

/// Loads an XDP program of `insns` with `prog_flags`.
fn load_xdp_insns(insns: &[bpf_insn], prog_flags: u32) -> io::Result<OwnedFd> {
    let license = c"GPL";
    // SAFETY: all-zero is a valid bpf_attr.
    let mut attr: bpf_attr = unsafe { std::mem::zeroed() };
    // SAFETY: writing the BPF_PROG_LOAD member of the union.
    let load = unsafe { &mut attr.__bindgen_anon_3 };
    load.prog_type = bpf_prog_type::BPF_PROG_TYPE_XDP as u32;
    load.insn_cnt = insns.len() as u32;
    load.insns = insns.as_ptr() as u64;
    load.license = license.as_ptr() as u64;
    load.prog_flags = prog_flags;
    // `insns` and `license` outlive the call.
    bpf(bpf_cmd::BPF_PROG_LOAD, &mut attr)
}

/// Loads a two-instruction XDP program with `prog_flags`.
fn load_xdp(prog_flags: u32) -> io::Result<OwnedFd> {
    load_xdp_insns(&xdp_pass(), prog_flags)
}

/// The data path's two clocks read side by side: an XDP program that
/// writes `bpf_jiffies64()` and then `bpf_ktime_get_coarse_ns()` into the
/// first 16 bytes of a frame, run with BPF_PROG_TEST_RUN
/// ([`crate::clock::measured`]).
pub struct ClockProbe {
    prog: OwnedFd,
}

impl ClockProbe {
    pub fn load() -> io::Result<ClockProbe> {
        let insns = [
            insn(BPF_ALU64_MOV_X, 6, 1, 0, 0), // r6 = ctx
            insn(
                BPF_JMP_CALL,
                0,
                0,
                0,
                bpf_func_id::BPF_FUNC_jiffies64 as i32,
            ),
            insn(BPF_ALU64_MOV_X, 7, 0, 0, 0), // r7 = jiffies
            insn(
                BPF_JMP_CALL,
                0,
                0,
                0,
                bpf_func_id::BPF_FUNC_ktime_get_coarse_ns as i32,
            ),
            insn(BPF_LDX_W, 2, 6, 0, 0), // r2 = ctx->data
            insn(BPF_LDX_W, 3, 6, 4, 0), // r3 = ctx->data_end
            insn(BPF_ALU64_MOV_X, 4, 2, 0, 0),
            insn(BPF_ALU64_ADD_K, 4, 0, 0, 16),
            insn(BPF_JMP_JGT_X, 4, 3, 2, 0), // data + 16 > data_end: out
            insn(BPF_STX_DW, 2, 7, 0, 0),
            insn(BPF_STX_DW, 2, 0, 8, 0),
            insn(BPF_ALU64_MOV_K, 0, 0, 0, XDP_PASS),
            insn(BPF_JMP_EXIT, 0, 0, 0, 0),
        ];
        Ok(ClockProbe {
            prog: load_xdp_insns(&insns, 0)?,
        })
    }

    /// `(jiffies, coarse ns)`, read in this order.
    pub fn sample(&self) -> io::Result<(u64, u64)> {
        let input = [0u8; 64];
        let mut output = [0u8; 64];
        // SAFETY: all-zero is a valid bpf_attr.
        let mut attr: bpf_attr = unsafe { std::mem::zeroed() };
        // SAFETY: writing the BPF_PROG_TEST_RUN member of the union.
        let test = unsafe { &mut attr.test };
        test.prog_fd = std::os::fd::AsRawFd::as_raw_fd(&self.prog) as u32;
        test.data_in = input.as_ptr() as u64;
        test.data_size_in = input.len() as u32;
        test.data_out = output.as_mut_ptr() as u64;
        test.data_size_out = output.len() as u32;
        test.repeat = 1;
        // `input` and `output` outlive the call.
        bpf_call(bpf_cmd::BPF_PROG_TEST_RUN, &mut attr)?;
        let word = |at: usize| u64::from_ne_bytes(output[at..at + 8].try_into().unwrap());
        Ok((word(0), word(8)))
    }
}

/// Whether XDP programs may be loaded with `BPF_F_XDP_HAS_FRAGS` (Linux
/// 5.18, commit c2f2cdbeffda): what `xdp.frags` asks for, and what lets a
/// program attach native at an MTU above a page. Older kernels refuse the
/// unknown flag with EINVAL.
pub fn xdp_frags() -> Found {
    found(load_xdp(BPF_F_XDP_HAS_FRAGS))
}

/// Whether XDP programs attach through a `bpf_link` (Linux 5.9, commit
/// aa8d3a716b59), which synguard pins so that the program outlives the
/// process. Tried for real in skb mode on the loopback device of a network
/// namespace made for the probe, on a thread of its own, so no interface
/// of the host is touched; the namespace goes with the thread.
pub fn xdp_link() -> Found {
    std::thread::spawn(|| {
        // SAFETY: unshare affects only this thread, which ends here.
        if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
            let e = io::Error::last_os_error();
            return (!unprivileged(&e)).then_some(false);
        }
        let prog = match load_xdp(0) {
            Ok(fd) => fd,
            Err(e) => return (!unprivileged(&e)).then_some(false),
        };
        /// The loopback device is the first of every namespace.
        const LOOPBACK: u32 = 1;
        // SAFETY: all-zero is a valid bpf_attr.
        let mut attr: bpf_attr = unsafe { std::mem::zeroed() };
        // SAFETY: writing the BPF_LINK_CREATE member of the union.
        let link = unsafe { &mut attr.link_create };
        link.__bindgen_anon_1.prog_fd = std::os::fd::AsRawFd::as_raw_fd(&prog) as u32;
        link.__bindgen_anon_2.target_ifindex = LOOPBACK;
        link.attach_type = bpf_attach_type::BPF_XDP as u32;
        link.flags = XDP_FLAGS_SKB_MODE;
        found(bpf(bpf_cmd::BPF_LINK_CREATE, &mut attr))
    })
    .join()
    .unwrap_or(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The probes ask the kernel; without root it would not say.
    fn root() -> bool {
        // SAFETY: geteuid has no preconditions.
        unsafe { libc::geteuid() == 0 }
    }

    #[test]
    fn a_map_kind_no_kernel_has_is_found_missing_and_a_plain_array_present() {
        if !root() {
            eprintln!("skipped: needs root");
            return;
        }
        assert_eq!(map(2, 0, 4, 8), Some(true));
        assert_eq!(map(RINGBUF, 0, 0, 0), Some(true));
        assert_eq!(map(u32::MAX, 0, 4, 8), Some(false));
        // An array with a flag bit no kernel defines.
        assert_eq!(map(2, 1 << 31, 4, 8), Some(false));
    }

    #[test]
    fn a_load_flag_no_kernel_has_is_found_missing() {
        if !root() {
            eprintln!("skipped: needs root");
            return;
        }
        assert!(load_xdp(0).is_ok());
        assert!(load_xdp(1 << 31).is_err());
    }
}
