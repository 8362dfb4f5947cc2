//! The peer: xdp-filter from Debian's xdp-tools, loaded and unloaded by
//! its own command.
use std::os::fd::OwnedFd;

use anyhow::{Context, Result, ensure};
use synguard_tests::{
    netns::{Netns, run_quiet},
    rawbpf as bpf,
};

use crate::{BLOCKED, FLEET_BLOCKED};

/// xdp-filter loaded by its own command on an interface of the bench
/// namespace, blocking BLOCKED by source, and opened by its program id
/// (`ip -json link` shows it; with libxdp's dispatcher in front, that is
/// the dispatcher, which is what the kernel would run per packet).
pub struct Peer<'a> {
    pub prog: OwnedFd,
    _loaded: XdpFilter<'a>,
}

/// Where xdp-filter pins its maps, and libxdp its state.
const XDP_FILTER_PINS: &str = "/sys/fs/bpf/xdp-filter";
const LIBXDP_DIR: &str = "/sys/fs/bpf/xdp";

impl<'a> Peer<'a> {
    pub fn load(ns: &'a Netns, iface: &'static str) -> Result<Peer<'a>> {
        ensure!(
            !std::path::Path::new(XDP_FILTER_PINS).exists(),
            "{XDP_FILTER_PINS} exists: xdp-filter is loaded somewhere else; not disturbing it"
        );
        let loaded = XdpFilter {
            ns,
            iface,
            made_libxdp_dir: !std::path::Path::new(LIBXDP_DIR).exists(),
        };
        // Features ipv4,ipv6: the variant that matches addresses only, as
        // synguard's blocklist does; policy allow: listed sources dropped.
        run_quiet(
            ns.command("xdp-filter")
                .args(["load", "--features", "ipv4,ipv6", "--policy", "allow"])
                .arg(iface),
        )
        .context("xdp-filter load (is xdp-tools installed? cargo xtask bench installs it)")?;
        for source in [BLOCKED, FLEET_BLOCKED] {
            run_quiet(
                ns.command("xdp-filter")
                    .args(["ip", &source.to_string(), "--mode", "src"]),
            )?;
        }
        let id = bpf::attached_prog_id(ns, iface)?;
        let prog = bpf::prog_fd_by_id(id).context("opening xdp-filter's program")?;
        Ok(Peer {
            prog,
            _loaded: loaded,
        })
    }
}

/// Unloads xdp-filter (which removes its pins) when dropped.
struct XdpFilter<'a> {
    ns: &'a Netns,
    iface: &'static str,
    /// libxdp's bpffs directory did not exist before: remove it after.
    made_libxdp_dir: bool,
}

impl Drop for XdpFilter<'_> {
    fn drop(&mut self) {
        let _ = run_quiet(self.ns.command("xdp-filter").args(["unload", self.iface]));
        if self.made_libxdp_dir {
            // remove_dir only removes an empty directory: never anything
            // someone else put there meanwhile.
            let _ = std::fs::remove_dir(LIBXDP_DIR);
        }
    }
}
