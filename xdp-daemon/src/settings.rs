//! The data path's per-interface settings (the `CONFIG` map): the flood
//! policy chosen by the operator, and what the data path must know of the
//! kernel to make cookies the kernel accepts, read from the namespace's
//! sysctls and the interface's MTU.
use std::{fs, io, path::Path};

use aya::maps::{Array, Map, MapData, MapError};
use synguard_common::{Budget, FloodMode, IfaceSettings, PortSet};

/// The operator's flood policy for an interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FloodPolicy {
    pub mode: FloodMode,
    /// SYN/s on the interface at which flood mode engages.
    pub syn_rate_on: u32,
    /// SYN/s below which flood mode may end.
    pub syn_rate_off: u32,
    /// How long flood mode outlasts the last busy window, in ms.
    pub hold_ms: u32,
    /// SYN budgets per source in a flood: /32 and /24, /128 and /64.
    pub budget_v4_host: Budget,
    pub budget_v4_net: Budget,
    pub budget_v6_host: Budget,
    pub budget_v6_net: Budget,
    /// The ports whose SYNs are answered from XDP in a flood; the others go
    /// to the kernel. Empty: every port.
    pub ports: Vec<u16>,
    /// Pass everything, and count what would have been dropped or
    /// answered (docs/design.md#dry-run).
    pub dry_run: bool,
}

impl Default for FloodPolicy {
    fn default() -> Self {
        FloodPolicy {
            // Engage on the data; cookies are only issued when the
            // listener's queue is full anyway (see xdp-prog cookie/).
            mode: FloodMode::Auto,
            // Far above what one ingress node's real clients send, far
            // below what a flood sends.
            syn_rate_on: 5_000,
            syn_rate_off: 2_500,
            hold_ms: 10_000,
            // A real client makes a few connections a second; a /24 of them
            // behind NAT many more.
            budget_v4_host: Budget {
                rate: 50,
                burst: 100,
            },
            budget_v4_net: Budget {
                rate: 500,
                burst: 1_000,
            },
            budget_v6_host: Budget {
                rate: 50,
                burst: 100,
            },
            budget_v6_net: Budget {
                rate: 500,
                burst: 1_000,
            },
            ports: Vec::new(),
            // Enforce: dry-run is asked for, per interface.
            dry_run: false,
        }
    }
}

/// What the data path must know of the kernel, per namespace and interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelFacts {
    /// net.ipv4.tcp_timestamps (2: no per-connection offset).
    pub tcp_timestamps: u8,
    pub tcp_sack: u8,
    pub tcp_window_scaling: u8,
    /// The window scale the kernel gives a cookie connection.
    pub wscale: u8,
    pub mtu: u32,
}

impl KernelFacts {
    /// Reads the facts of the calling process's network namespace.
    pub fn read(iface: &str) -> io::Result<KernelFacts> {
        let mtu = crate::nic::mtu(iface)
            .map_err(|e| io::Error::new(e.kind(), format!("the MTU of {iface}: {e}")))?;
        Self::read_sysctls(Path::new(PROC_SYS), mtu)
    }

    /// The sysctl part of [`read`](Self::read), from a /proc/sys tree.
    fn read_sysctls(proc_sys: &Path, mtu: u32) -> io::Result<KernelFacts> {
        let rmem = sysctl(proc_sys, "net/ipv4/tcp_rmem")?;
        let rmem_high: u64 = rmem
            .split_whitespace()
            .nth(2)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| {
                io::Error::other(format!(
                    "{}: no third value in {:?}",
                    proc_sys.join("net/ipv4/tcp_rmem").display(),
                    rmem.trim()
                ))
            })?;
        // net.core.rmem_max is missing from child network namespaces on
        // older kernels (6.1 lacks it there, 6.12 has it): until it was made
        // per namespace, net/core/sysctl_net_core.c registered it (in
        // `net_core_table`) for init_net alone, and tcp_select_initial_window
        // (net/ipv4/tcp_output.c) read the one global `sysctl_rmem_max`,
        // which a child namespace cannot see. Take its boot value then: its
        // window scale (2) is at most tcp_rmem[2]'s (at least 128 KiB, so 2
        // or more), so the scale is tcp_rmem[2]'s, as the kernel's is unless
        // the host's administrator raised rmem_max above tcp_rmem[2].
        let rmem_max = match sysctl_u64(proc_sys, "net/core/rmem_max") {
            Err(e) if e.kind() == io::ErrorKind::NotFound => RMEM_MAX_BOOT,
            other => other?,
        };
        Ok(KernelFacts {
            tcp_timestamps: sysctl_u8(proc_sys, "net/ipv4/tcp_timestamps")?,
            tcp_sack: sysctl_u8(proc_sys, "net/ipv4/tcp_sack")?,
            tcp_window_scaling: sysctl_u8(proc_sys, "net/ipv4/tcp_window_scaling")?,
            wscale: window_scale(rmem_high.max(rmem_max)),
            mtu,
        })
    }
}

/// net/ipv4/tcp_output.c `tcp_select_initial_window`: the shift that lets
/// the largest receive buffer be advertised, ilog2(space) - 15, in [0, 14].
pub fn window_scale(space: u64) -> u8 {
    let log2 = 63 - space.max(1).leading_zeros() as i64;
    (log2 - 15).clamp(0, 14) as u8
}

/// The data path's settings for a policy and the kernel it runs on.
pub fn config(policy: &FloodPolicy, kernel: &KernelFacts) -> IfaceSettings {
    IfaceSettings {
        flood_mode: policy.mode as u32,
        syn_rate_on: policy.syn_rate_on,
        syn_rate_off: policy.syn_rate_off,
        flood_hold_ms: policy.hold_ms,
        mss_v4: kernel.mtu.saturating_sub(40).min(u16::MAX as u32) as u16,
        mss_v6: kernel.mtu.saturating_sub(60).min(u16::MAX as u32) as u16,
        wscale: kernel.wscale,
        // Only with tcp_timestamps=2 does the kernel decode options from a
        // timestamp it did not make itself (no per-connection offset).
        ts_cookies: u8::from(kernel.tcp_timestamps == 2),
        tcp_sack: kernel.tcp_sack,
        tcp_window_scaling: kernel.tcp_window_scaling,
        budget_v4_host: policy.budget_v4_host,
        budget_v4_net: policy.budget_v4_net,
        budget_v6_host: policy.budget_v6_host,
        budget_v6_net: policy.budget_v6_net,
        // Filled in by `write`.
        hash_seed: 0,
        unguarded_ports: unguarded(&policy.ports),
        dry_run: u32::from(policy.dry_run),
        _pad: 0,
    }
}

/// Every port not in `guarded`; nothing when `guarded` is empty.
fn unguarded(guarded: &[u16]) -> PortSet {
    let mut set = PortSet::default();
    if !guarded.is_empty() {
        for port in 0..=u16::MAX {
            if !guarded.contains(&port) {
                set.insert(port);
            }
        }
    }
    set
}

/// Writes `config` into a program's `CONFIG` map, with the hash seed
/// already there (so an update keeps the budgets and peers findable), or a
/// random one for a new map.
pub fn write(map: Option<&mut Map>, config: &IfaceSettings) -> Result<(), MapError> {
    let map = map.ok_or(MapError::InvalidName {
        name: synguard_common::maps::CONFIG.into(),
    })?;
    let mut array: Array<&mut MapData, IfaceSettings> = Array::try_from(map)?;
    let seed = match array.get(&0, 0)?.hash_seed {
        0 => random_seed()?,
        seed => seed,
    };
    array.set(
        0,
        IfaceSettings {
            hash_seed: seed,
            ..*config
        },
        0,
    )
}

/// A random non-zero u64 from the kernel (getrandom(2)).
fn random_seed() -> Result<u64, MapError> {
    let mut seed = 0u64;
    // SAFETY: getrandom writes at most 8 bytes into `seed`.
    let n = unsafe { libc::getrandom((&raw mut seed).cast(), 8, 0) };
    if n != 8 {
        return Err(MapError::SyscallError(aya::sys::SyscallError {
            call: "getrandom",
            io_error: io::Error::last_os_error(),
        }));
    }
    Ok(seed | 1)
}

/// Writes `config` into a pinned `CONFIG` map.
pub fn write_pinned(path: &std::path::Path, config: &IfaceSettings) -> Result<(), MapError> {
    let mut map = Map::Array(MapData::from_pin(path)?);
    write(Some(&mut map), config)
}

/// Switches a pinned `CONFIG` map between dry-run and enforcing, leaving
/// every other setting as it is: one map write, the program stays
/// attached (docs/design.md#dry-run). Returns whether it was in dry-run.
pub fn set_dry_run(path: &std::path::Path, dry_run: bool) -> Result<bool, MapError> {
    let map = Map::Array(MapData::from_pin(path)?);
    let mut array: Array<MapData, IfaceSettings> = Array::try_from(map)?;
    let current = array.get(&0, 0)?;
    array.set(
        0,
        IfaceSettings {
            dry_run: u32::from(dry_run),
            ..current
        },
        0,
    )?;
    Ok(current.dry_run != 0)
}

/// Where the calling thread's network namespace shows its sysctls.
const PROC_SYS: &str = "/proc/sys";

/// include/net/sock.h `SK_RMEM_MAX` (256 packets of 256 bytes with their
/// overhead): net.core.rmem_max's boot value on x86-64.
const RMEM_MAX_BOOT: u64 = 212_992;

/// A sysctl's text. An error names the file, keeping the kind (a missing
/// file stays `NotFound`).
fn sysctl(proc_sys: &Path, key: &str) -> io::Result<String> {
    let path = proc_sys.join(key);
    fs::read_to_string(&path)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))
}

fn sysctl_u64(proc_sys: &Path, key: &str) -> io::Result<u64> {
    let text = sysctl(proc_sys, key)?;
    text.trim().parse().map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{}: {:?} is not a number: {e}",
                proc_sys.join(key).display(),
                text.trim()
            ),
        )
    })
}

fn sysctl_u8(proc_sys: &Path, key: &str) -> io::Result<u8> {
    let value = sysctl_u64(proc_sys, key)?;
    u8::try_from(value).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: {value}: {e}", proc_sys.join(key).display()),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_scale_matches_the_kernels_formula() {
        // tcp_rmem[2] = 32 MiB (this machine): the kernel picks 10.
        assert_eq!(window_scale(32 << 20), 10);
        // The old default 6 MiB: 7.
        assert_eq!(window_scale(6 << 20), 7);
        assert_eq!(window_scale(65_535), 0);
        assert_eq!(window_scale(1 << 40), 14);
    }

    #[test]
    fn timestamp_cookies_only_without_per_connection_offsets() {
        let policy = FloodPolicy::default();
        let mut kernel = KernelFacts {
            tcp_timestamps: 1,
            tcp_sack: 1,
            tcp_window_scaling: 1,
            wscale: 10,
            mtu: 1500,
        };
        assert_eq!(config(&policy, &kernel).ts_cookies, 0);
        kernel.tcp_timestamps = 2;
        let c = config(&policy, &kernel);
        assert_eq!(
            (c.ts_cookies, c.mss_v4, c.mss_v6, c.wscale),
            (1, 1460, 1440, 10)
        );
    }

    /// A /proc/sys tree with the files `read_sysctls` reads, less `missing`.
    fn proc_sys(name: &str, missing: &[&str]) -> std::path::PathBuf {
        let root = std::env::temp_dir().join(format!("synguard-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        for (key, value) in [
            ("net/ipv4/tcp_rmem", "4096\t131072\t6291456\n"),
            ("net/core/rmem_max", "67108864\n"),
            ("net/ipv4/tcp_timestamps", "2\n"),
            ("net/ipv4/tcp_sack", "1\n"),
            ("net/ipv4/tcp_window_scaling", "1\n"),
        ] {
            if !missing.contains(&key) {
                let path = root.join(key);
                fs::create_dir_all(path.parent().unwrap()).unwrap();
                fs::write(path, value).unwrap();
            }
        }
        root
    }

    #[test]
    fn a_namespace_without_rmem_max_takes_the_window_scale_from_tcp_rmem() {
        let full = proc_sys("full", &[]);
        let facts = KernelFacts::read_sysctls(&full, 1500).unwrap();
        // rmem_max = 64 MiB wins over tcp_rmem[2] = 6 MiB.
        assert_eq!(
            (facts.wscale, facts.tcp_timestamps, facts.mtu),
            (11, 2, 1500)
        );
        // A child namespace before Linux 6.x has no net/core/rmem_max.
        let child = proc_sys("child", &["net/core/rmem_max"]);
        let facts = KernelFacts::read_sysctls(&child, 1500).unwrap();
        assert_eq!(facts.wscale, window_scale(6_291_456));
        let _ = fs::remove_dir_all(full);
        let _ = fs::remove_dir_all(child);
    }

    #[test]
    fn a_sysctl_that_cannot_be_read_is_named_by_its_file() {
        let root = proc_sys("no-sack", &["net/ipv4/tcp_sack"]);
        let err = KernelFacts::read_sysctls(&root, 1500).unwrap_err();
        let expected = root.join("net/ipv4/tcp_sack");
        assert!(
            err.to_string().starts_with(&expected.display().to_string()),
            "{err}"
        );
        fs::write(root.join("net/ipv4/tcp_sack"), "yes\n").unwrap();
        let err = KernelFacts::read_sysctls(&root, 1500).unwrap_err();
        assert!(
            err.to_string()
                .contains("tcp_sack: \"yes\" is not a number"),
            "{err}"
        );
        let _ = fs::remove_dir_all(root);
    }

    #[test]
    fn only_the_guarded_ports_are_answered_from_xdp() {
        assert_eq!(unguarded(&[]), PortSet::default());
        let set = unguarded(&[80, 443]);
        assert!(!set.contains(80) && !set.contains(443));
        assert!(set.contains(22) && set.contains(0) && set.contains(65535));
    }
}
