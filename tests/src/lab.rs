//! The standard lab: an `outside` namespace (clients and attackers) and a
//! `target` namespace (the protected host), joined by one veth pair. The
//! target routes everything back through the outside, so replies to spoofed
//! sources leave by the same interface the flood came in on.
use std::{
    net::{Ipv4Addr, Ipv6Addr},
    os::fd::OwnedFd,
    process::Command,
};

use anyhow::{Context, Result};

use crate::{
    netns::{Netns, run_quiet, unique_prefix},
    peer_xdp,
};

/// Addresses from the benchmarking ranges (RFC 2544, RFC 5180).
pub const OUTSIDE_V4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
pub const TARGET_V4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
pub const OUTSIDE_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 1);
pub const TARGET_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 2);
pub const OUTSIDE_MAC: [u8; 6] = [0x02, 0x00, 0x5e, 0x00, 0x00, 0x01];
pub const TARGET_MAC: [u8; 6] = [0x02, 0x00, 0x5e, 0x00, 0x00, 0x02];

pub struct Lab {
    /// Dropped first: the peer program goes before its namespace.
    _peer_link: Option<OwnedFd>,
    pub outside: Netns,
    pub target: Netns,
    /// The outside end of the veth pair.
    pub outside_if: String,
    /// The target end: the interface synguard protects.
    pub target_if: String,
}

impl Lab {
    /// Builds the two namespaces and the veth pair, with addresses, routes,
    /// fixed neighbours (no ARP/ND chatter on the link) and TX checksum
    /// offload off on the outside, so frames carry complete checksums.
    pub fn new() -> Result<Lab> {
        let prefix = unique_prefix();
        let outside = Netns::create(&format!("{prefix}-out"))?;
        let target = Netns::create(&format!("{prefix}-tgt"))?;
        let outside_if = format!("{prefix}o");
        let target_if = format!("{prefix}t");
        run_quiet(Command::new("ip").args([
            "link",
            "add",
            &outside_if,
            "netns",
            outside.name(),
            "address",
            &mac(OUTSIDE_MAC),
            "type",
            "veth",
            "peer",
            "name",
            &target_if,
            "netns",
            target.name(),
            "address",
            &mac(TARGET_MAC),
        ]))?;
        for (ns, ifname, v4, v6, peer_v4, peer_v6, peer_mac) in [
            (
                &outside,
                &outside_if,
                OUTSIDE_V4,
                OUTSIDE_V6,
                TARGET_V4,
                TARGET_V6,
                TARGET_MAC,
            ),
            (
                &target,
                &target_if,
                TARGET_V4,
                TARGET_V6,
                OUTSIDE_V4,
                OUTSIDE_V6,
                OUTSIDE_MAC,
            ),
        ] {
            ns.ip(&["addr", "add", &format!("{v4}/24"), "dev", ifname])?;
            ns.ip(&["addr", "add", &format!("{v6}/64"), "dev", ifname, "nodad"])?;
            ns.ip(&["link", "set", ifname, "up"])?;
            for peer in [peer_v4.to_string(), peer_v6.to_string()] {
                ns.ip(&[
                    "neigh",
                    "replace",
                    &peer,
                    "lladdr",
                    &mac(peer_mac),
                    "dev",
                    ifname,
                    "nud",
                    "permanent",
                ])?;
            }
        }
        target.ip(&["route", "add", "default", "via", &OUTSIDE_V4.to_string()])?;
        target.ip(&[
            "-6",
            "route",
            "add",
            "default",
            "via",
            &OUTSIDE_V6.to_string(),
        ])?;
        run_quiet(
            outside
                .command("ethtool")
                .args(["-K", &outside_if, "tx", "off"]),
        )
        .context("turning TX checksum offload off (is ethtool installed? `cargo xtask setup`)")?;
        let ifindex = outside.run(|| if_index(&outside_if));
        let peer_link = outside
            .run(|| peer_xdp::attach_pass(ifindex))
            .context("attaching XDP_PASS to the outside veth")?;
        Ok(Lab {
            _peer_link: Some(peer_link),
            outside,
            target,
            outside_if,
            target_if,
        })
    }
}

impl Lab {
    /// Whether `ip link` shows an XDP program on the target interface.
    pub fn target_has_xdp(&self) -> bool {
        let link = self
            .target
            .command("ip")
            .args(["link", "show", &self.target_if])
            .output()
            .expect("ip link show");
        String::from_utf8_lossy(&link.stdout).contains("xdp")
    }

    /// Sends `count` UDP datagrams from the outside to the target, from the
    /// (spoofed) IPv4 `source`, and lets them cross the veth before
    /// returning, so counters read next include them.
    pub fn send_udp_from(&self, source: Ipv4Addr, count: usize) {
        let sender = crate::traffic::RawSender::open(&self.outside, &self.outside_if)
            .expect("open a raw socket outside");
        let frame = crate::packets::udp(source.into(), TARGET_V4.into(), 4000, 9, b"x");
        for _ in 0..count {
            sender.send(&frame).expect("send a frame");
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// The index of `name` in the calling thread's namespace (0 if none).
pub fn if_index(name: &str) -> u32 {
    let c = std::ffi::CString::new(name).unwrap();
    // SAFETY: valid NUL-terminated string.
    unsafe { libc::if_nametoindex(c.as_ptr()) }
}

pub fn mac(m: [u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}
