//! The defences the flood lab compares, each set up on a fresh target
//! namespace the way its documentation says.
use std::{
    io::Write,
    path::Path,
    process::{Command, Stdio},
};

use anyhow::{Context, Result, bail};
use synguard_tests::{lab::Lab, netns::Netns, synguard::Synguard};

use super::flood::SERVICE_PORT;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Defence {
    /// The kernel alone, SYN cookies off: the SYN queue is all there is.
    None,
    /// The kernel's SYN cookies (net.ipv4.tcp_syncookies=1, the default).
    KernelCookies,
    /// nftables synproxy in front of the listener, as nft(8) shows it.
    NftSynproxy,
    /// synguard attached with its defaults (flood mode auto, budgets on).
    Synguard,
    /// synguard with the per-source budgets off: every spoofed SYN gets an
    /// XDP cookie, as when sources are spread wider than the lab's /16.
    SynguardNoBudgets,
    /// synguard attached in skb (generic) mode: on a veth, the interface
    /// keeps receiving through the per-CPU backlog instead of a NAPI ring
    /// of its own. Not in the flood lab's default set.
    SynguardSkb,
    /// No defence but a measure, the floor under every defence's CPU per
    /// frame: a program that reads the frame's first bytes (its first
    /// cache line, which any program that looks at a frame pays for) and
    /// drops it; no clients. Flood lab only; the lab sets it up, not
    /// `configure`.
    Floor,
}

impl Defence {
    pub const ALL: [Defence; 6] = [
        Defence::None,
        Defence::KernelCookies,
        Defence::NftSynproxy,
        Defence::Synguard,
        Defence::SynguardNoBudgets,
        Defence::Floor,
    ];

    /// Every defence a command line may name.
    pub const KNOWN: [Defence; 7] = [
        Defence::None,
        Defence::KernelCookies,
        Defence::NftSynproxy,
        Defence::Synguard,
        Defence::SynguardNoBudgets,
        Defence::SynguardSkb,
        Defence::Floor,
    ];

    /// Short name for JSON and command lines.
    pub fn key(self) -> &'static str {
        match self {
            Defence::None => "none",
            Defence::KernelCookies => "syncookies",
            Defence::NftSynproxy => "nft-synproxy",
            Defence::Synguard => "synguard",
            Defence::SynguardNoBudgets => "synguard-no-budgets",
            Defence::SynguardSkb => "synguard-skb",
            Defence::Floor => "floor",
        }
    }

    /// What the table says.
    pub fn label(self) -> &'static str {
        match self {
            Defence::None => "none (tcp_syncookies=0)",
            Defence::KernelCookies => "kernel SYN cookies (tcp_syncookies=1)",
            Defence::NftSynproxy => "nftables synproxy",
            Defence::Synguard => "synguard (defaults)",
            Defence::SynguardNoBudgets => "synguard --no-budgets",
            Defence::SynguardSkb => "synguard --mode skb",
            Defence::Floor => "floor: read the first bytes, XDP_DROP (no clients)",
        }
    }

    /// Sets the defence up in the lab's target namespace. Everything it
    /// changes lives in that namespace and goes with it.
    pub fn configure(self, lab: &Lab, synguard_bin: &Path) -> Result<Option<Synguard>> {
        let target = &lab.target;
        match self {
            Defence::Floor => bail!(
                "floor is the flood lab's measure (read each frame's first bytes, drop it; no clients), not a defence to configure"
            ),
            Defence::None => {
                target.set_sysctl("net.ipv4.tcp_syncookies", "0")?;
                Ok(None)
            }
            Defence::KernelCookies => {
                target.set_sysctl("net.ipv4.tcp_syncookies", "1")?;
                Ok(None)
            }
            Defence::NftSynproxy => {
                target.set_sysctl("net.ipv4.tcp_syncookies", "1")?;
                nft(target, &synproxy_ruleset(window_scale(target)?))?;
                // nft(8): "Switch tcp_loose mode off, so conntrack will mark
                // out-of-flow packets as state INVALID."
                target.set_sysctl("net.netfilter.nf_conntrack_tcp_loose", "0")?;
                Ok(None)
            }
            Defence::Synguard | Defence::SynguardNoBudgets | Defence::SynguardSkb => {
                // XDP cookies carry window scaling and SACK only without
                // per-connection timestamp offsets
                // (docs/design.md#the-tcp_timestamps2-trade-off).
                target.set_sysctl("net.ipv4.tcp_timestamps", "2")?;
                let synguard = Synguard::with_binary(synguard_bin.to_path_buf(), target.name());
                let mode = if self == Defence::SynguardSkb {
                    "skb"
                } else {
                    "native"
                };
                let mut args = vec!["attach", lab.target_if.as_str(), "--mode", mode];
                if self == Defence::SynguardNoBudgets {
                    args.push("--no-budgets");
                }
                synguard.run(target, &args)?;
                Ok(Some(synguard))
            }
        }
    }
}

/// nft(8), SYNPROXY STATEMENT: untrack SYNs in raw prerouting, then hand
/// untracked (SYN) and invalid (handshake ACK) packets to synproxy with the
/// options the server itself uses, and drop what is still invalid.
fn synproxy_ruleset(wscale: u8) -> String {
    format!(
        "table ip synguard_bench {{
    chain prerouting {{
        type filter hook prerouting priority raw; policy accept;
        tcp dport {SERVICE_PORT} tcp flags syn notrack
    }}
    chain input {{
        type filter hook input priority filter; policy accept;
        tcp dport {SERVICE_PORT} ct state invalid,untracked synproxy mss 1460 wscale {wscale} timestamp sack-perm
        ct state invalid drop
    }}
}}
"
    )
}

/// The window scale the target's own SYN-ACKs carry, which synproxy must
/// announce too: net/ipv4/tcp_output.c `tcp_select_initial_window`, the
/// shift that lets the largest receive buffer be advertised (as
/// `synguard::settings::window_scale` computes it).
fn window_scale(ns: &Netns) -> Result<u8> {
    let rmem: u64 = ns
        .sysctl("net.ipv4.tcp_rmem")?
        .split_whitespace()
        .nth(2)
        .and_then(|v| v.parse().ok())
        .context("net.ipv4.tcp_rmem has no third value")?;
    let rmem_max: u64 = ns.sysctl("net.core.rmem_max")?.parse()?;
    let space = rmem.max(rmem_max).max(1);
    Ok((space.ilog2() as i64 - 15).clamp(0, 14) as u8)
}

/// Loads a ruleset into `ns` with `nft -f -`.
fn nft(ns: &Netns, ruleset: &str) -> Result<()> {
    let mut child = ns
        .command("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("running nft (is nftables installed? cargo xtask bench installs it)")?;
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(ruleset.as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "nft -f - failed: {}\n{ruleset}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Debian packages the peers come from: xdp-filter (the per-packet peer),
/// the kernel's XDP synproxy (the per-packet peer on SYNs and cookie ACKs,
/// compiled by the bench from linux-source's selftest with clang and
/// libbpf's headers, loaded by bpftool; 6.12 because 6.1's copy exceeds
/// the verifier's instruction limit on newer kernels) and nft (synproxy, a
/// flood-lab defence).
pub const PEER_PACKAGES: [&str; 6] = [
    "xdp-tools",
    "clang",
    "libbpf-dev",
    "bpftool",
    "linux-source-6.12",
    "nftables",
];

/// Installs the peers' Debian packages that are missing (idempotent).
pub fn install_peers() -> Result<()> {
    let missing: Vec<&str> = PEER_PACKAGES
        .into_iter()
        .filter(|p| !crate::setup::installed(p))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!(
        "xtask bench: installing the peers' Debian packages: {}",
        missing.join(" ")
    );
    crate::exec(Command::new("apt-get").arg("update").arg("-q"))?;
    crate::exec(
        Command::new("apt-get")
            .args(["install", "-y", "-q", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
}
