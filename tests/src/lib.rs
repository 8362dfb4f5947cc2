//! synguard's namespace lab: network namespaces joined by a veth pair, real
//! TCP servers and clients, crafted frames, and the real `synguard` binary.
//! Every end-to-end test, the demo and the benchmarks build on it.
//!
//! Everything a lab creates has a name unique to the process and the lab, so
//! tests run in parallel, and a crashed run cannot poison the next one. Drop
//! guards remove it all (processes by pid, pins, namespaces), also when a
//! test panics.
pub mod bench;
pub mod bgp;
pub mod http;
pub mod lab;
pub mod netns;
pub mod packets;
pub mod peer_xdp;
pub mod rawbpf;
pub mod synguard;
pub mod traffic;

/// Panics with a clear message unless running as root: namespaces, XDP and
/// BPF_PROG_TEST_RUN all need it.
pub fn require_root() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        panic!(
            "this test needs root (network namespaces, XDP, bpf): run `cargo xtask test` as root"
        );
    }
}
