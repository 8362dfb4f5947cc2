//! The second peer: the kernel's own XDP SYN proxy, the BPF selftest
//! program `tools/testing/selftests/bpf/progs/xdp_synproxy_kern.c`, built
//! here at bench time from Debian's `linux-source` package (which
//! `cargo xtask bench` installs with clang and libbpf-dev) and loaded by
//! bpftool, whose libbpf resolves the conntrack kfuncs it calls. Nothing
//! of it is kept in the project.
//!
//! It answers a SYN with a cookie SYN-ACK from XDP and checks the cookie of
//! an ACK, with the same kernel helpers synguard uses, after a conntrack
//! lookup and checksum checks of its own; it does nothing else (no lists,
//! no flood detection, no budgets), and it drops any TCP segment that is
//! neither a SYN nor a valid cookie ACK unless conntrack knows its flow,
//! so it is timed on the SYN and cookie-ACK classes only.
use std::{
    os::fd::OwnedFd,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, Result, bail, ensure};
use synguard_tests::{netns::run_quiet, rawbpf as bpf};

/// The kernel's XDP synproxy, loaded.
pub struct KernelSynproxy {
    pub prog: OwnedFd,
    /// The `linux-source` package it was built from.
    pub source: String,
    _pins: Pins,
}

/// Where bpftool pins its programs and maps, removed when dropped.
struct Pins(PathBuf);

/// Debian's 6.1 copy of the program runs past the verifier's limit of a
/// million instructions on newer kernels when built with Debian 12's
/// clang; 6.12's (which bookworm also carries) loads.
const OLDEST_SOURCE: (u32, u32) = (6, 12);

const PROGRAM: &str = "tools/testing/selftests/bpf/progs/xdp_synproxy_kern.c";
const ITS_HEADER: &str = "tools/testing/selftests/bpf/progs/bpf_compiler.h";

impl KernelSynproxy {
    /// Builds (or reuses a build of) the program, loads it, and allows
    /// SYN cookies on `port` only, with its default MSS, window scale and
    /// TTL.
    pub fn load(port: u16) -> Result<KernelSynproxy> {
        let (tarball, source) = newest_source()?;
        let object = build(&tarball, &source)?;
        let dir = PathBuf::from(format!(
            "/sys/fs/bpf/synguard-bench-synproxy-{}",
            std::process::id()
        ));
        ensure!(!dir.exists(), "{} exists", dir.display());
        // From here on, dropping `pins` removes whatever bpftool pinned.
        std::fs::create_dir(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let pins = Pins(dir);
        run_quiet(
            Command::new("bpftool")
                .args(["prog", "loadall"])
                .arg(&object)
                .arg(pins.0.join("progs"))
                .arg("pinmaps")
                .arg(pins.0.join("maps")),
        )
        .context("bpftool prog loadall (the kernel's XDP synproxy)")?;
        let [lo, hi] = port.to_le_bytes();
        run_quiet(
            Command::new("bpftool")
                .args(["map", "update", "pinned"])
                .arg(pins.0.join("maps/allowed_ports"))
                .args(["key", "0", "0", "0", "0", "value"])
                .args([lo.to_string(), hi.to_string()]),
        )
        .context("allowing the port in its allowed_ports map")?;
        let prog =
            bpf::pinned(&pins.0.join("progs/syncookie_xdp")).context("opening its XDP program")?;
        Ok(KernelSynproxy {
            prog,
            source,
            _pins: pins,
        })
    }
}

impl Drop for Pins {
    fn drop(&mut self) {
        // Unlinks the pins; the program goes when its last fd closes.
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The newest `/usr/src/linux-source-X.Y.tar.xz` at least OLDEST_SOURCE,
/// and its name.
fn newest_source() -> Result<(PathBuf, String)> {
    let mut best: Option<((u32, u32), PathBuf, String)> = None;
    for entry in std::fs::read_dir("/usr/src").context("reading /usr/src")? {
        let path = entry?.path();
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        let Some(version) = name
            .strip_prefix("linux-source-")
            .and_then(|v| v.strip_suffix(".tar.xz"))
        else {
            continue;
        };
        let mut parts = version.split('.').map(str::parse::<u32>);
        let (Some(Ok(major)), Some(Ok(minor))) = (parts.next(), parts.next()) else {
            continue;
        };
        if (major, minor) >= OLDEST_SOURCE && best.as_ref().is_none_or(|b| (major, minor) > b.0) {
            best = Some((
                (major, minor),
                path.clone(),
                format!("linux-source-{version}"),
            ));
        }
    }
    match best {
        Some((_, path, name)) => Ok((path, name)),
        None => bail!(
            "no /usr/src/linux-source-{}.{}.tar.xz or newer (apt-get install linux-source-6.12; cargo xtask bench installs it)",
            OLDEST_SOURCE.0,
            OLDEST_SOURCE.1
        ),
    }
}

/// Extracts the program and its one local header from the tarball, makes
/// vmlinux.h for the running kernel, and compiles; cached per source and
/// kernel.
fn build(tarball: &Path, source: &str) -> Result<PathBuf> {
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")?;
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("kernel-synproxy")
        .join(format!("{source}-on-{}", kernel.trim()));
    let object = dir.join("xdp_synproxy_kern.o");
    if object.exists() {
        return Ok(object);
    }
    std::fs::create_dir_all(&dir)?;
    let top = tarball
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_suffix(".tar.xz"))
        .context("tarball name")?;
    run_quiet(
        Command::new("tar")
            .arg("-xJf")
            .arg(tarball)
            .arg("-C")
            .arg(&dir)
            .arg(format!("{top}/{PROGRAM}"))
            .arg(format!("{top}/{ITS_HEADER}")),
    )
    .with_context(|| format!("extracting the program from {}", tarball.display()))?;
    let btf = Command::new("bpftool")
        .args([
            "btf",
            "dump",
            "file",
            "/sys/kernel/btf/vmlinux",
            "format",
            "c",
        ])
        .output()
        .context("running bpftool btf dump")?;
    ensure!(btf.status.success(), "bpftool btf dump failed");
    std::fs::write(dir.join("vmlinux.h"), btf.stdout)?;
    // <asm/errno.h> lives under the multiarch include directory.
    let multiarch = format!("/usr/include/{}-linux-gnu", std::env::consts::ARCH);
    let partial = dir.join("xdp_synproxy_kern.o.partial");
    run_quiet(
        Command::new("clang")
            .args(["-O2", "-g", "-target", "bpf", "-w"])
            .arg("-I")
            .arg(&dir)
            .arg("-I")
            .arg(multiarch)
            .arg("-c")
            .arg(dir.join(top).join(PROGRAM))
            .arg("-o")
            .arg(&partial),
    )
    .context("compiling the kernel's XDP synproxy with clang")?;
    std::fs::rename(&partial, &object)?;
    Ok(object)
}
