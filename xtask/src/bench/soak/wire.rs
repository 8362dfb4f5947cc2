//! What the soak reads, at one moment: the veth pair's counters as the
//! kernel keeps them, the real clients' packets as the outside's IP stack
//! counted them, synguard's counters from a real `/metrics` scrape, and
//! the daemon's memory from `/proc`.
//!
//! How veth counts (drivers/net/veth.c, `veth_xdp_xmit`,
//! `veth_get_stats64`, `veth_get_ethtool_stats`): a frame redirected into
//! the peer (the live-frame generator's XDP_TX) is counted by the peer's
//! receive queue as `xdp_xmit` when it fits on the 256-slot ring and as
//! `xdp_xmit_errors` when the ring is full; `ethtool -S` shows both on the
//! sending side as `tx_queue_N_*`, and the receiving side adds the errors to
//! its `rx_dropped`, before any XDP program saw them. The receiver's
//! `rx_packets` are the frames its NAPI took off the ring, each run through
//! its XDP program; `xdp_drops` counts XDP_DROP (and XDP_ABORTED), `xdp_tx`
//! and `xdp_tx_errors` the XDP_TX answers sent and lost on the peer's ring.
use std::{collections::BTreeMap, net::SocketAddr, path::Path, time::Duration};

use anyhow::{Context, Result, bail};
use synguard_tests::{http, lab::Lab, netns::Netns};

/// One veth end's counters.
#[derive(Clone, Debug, Default)]
pub struct Link {
    /// `/proc/net/dev` (what `ip -s link` shows): rx_packets, rx_dropped,
    /// tx_packets, tx_dropped.
    pub dev: BTreeMap<&'static str, u64>,
    /// `ethtool -S`, per-queue counters summed over the queues:
    /// `rx_xdp_packets`, `rx_drops`, `rx_xdp_drops`, `rx_xdp_tx`,
    /// `tx_xdp_xmit`, `tx_xdp_xmit_errors`, ...
    pub ethtool: BTreeMap<String, u64>,
}

impl Link {
    pub fn read(ns: &Netns, iface: &str) -> Result<Link> {
        let text = ns.run(|| std::fs::read_to_string("/proc/thread-self/net/dev"))?;
        let dev = parse_net_dev(&text, iface)
            .with_context(|| format!("no {iface} in /proc/net/dev of {}", ns.name()))?;
        let out = ns
            .command("ethtool")
            .args(["-S", iface])
            .output()
            .context("running ethtool -S")?;
        if !out.status.success() {
            bail!(
                "ethtool -S {iface} failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(Link {
            dev,
            ethtool: parse_ethtool(&String::from_utf8_lossy(&out.stdout)),
        })
    }

    pub fn dev(&self, key: &str) -> u64 {
        self.dev.get(key).copied().unwrap_or(0)
    }

    pub fn ethtool(&self, key: &str) -> u64 {
        self.ethtool.get(key).copied().unwrap_or(0)
    }
}

/// The daemon's memory and handles (`/proc/PID/status`, `/proc/PID/fd`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Memory {
    pub vm_rss_kb: u64,
    /// The peak of VmRSS since the process started.
    pub vm_hwm_kb: u64,
    pub threads: u64,
    pub fds: u64,
}

impl Memory {
    pub fn read(pid: u32) -> Result<Memory> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .with_context(|| format!("reading /proc/{pid}/status"))?;
        let mut memory = parse_status(&status);
        memory.fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
            .with_context(|| format!("listing /proc/{pid}/fd"))?
            .count() as u64;
        Ok(memory)
    }
}

/// Everything the soak compares, read at one moment.
#[derive(Clone, Debug)]
pub struct Snapshot {
    pub target: Link,
    pub outside: Link,
    /// IP packets the outside's own stack sent (`Ip OutRequests` plus
    /// `Ip6 OutRequests`): the real clients' frames, as the generator's
    /// never pass through it.
    pub outside_ip_out: u64,
    /// `synguard_packets_total` of the target interface: "verdict/reason"
    /// -> packets.
    pub synguard: BTreeMap<String, u64>,
    /// SYN cookies the target's kernel sent itself
    /// (`synguard_kernel_syncookies_sent_total`).
    pub kernel_cookies: u64,
    pub memory: Memory,
}

impl Snapshot {
    pub fn take(lab: &Lab, metrics: SocketAddr, pid: u32) -> Result<Snapshot> {
        let (body, _) = scrape(&lab.target, metrics)?;
        let netstat = lab.outside.netstat()?;
        let out = |k: &str| netstat.get(k).copied().unwrap_or(0);
        Ok(Snapshot {
            target: Link::read(&lab.target, &lab.target_if)?,
            outside: Link::read(&lab.outside, &lab.outside_if)?,
            outside_ip_out: out("IpOutRequests") + ipv6_out_requests(&lab.outside)?,
            synguard: packets_by_verdict(&body, &lab.target_if),
            kernel_cookies: http::sample(&body, "synguard_kernel_syncookies_sent_total", "")
                .map_or(0, |v| v as u64),
            memory: Memory::read(pid)?,
        })
    }

    pub fn synguard_total(&self) -> u64 {
        self.synguard.values().sum()
    }
}

/// `Ip6OutRequests` from /proc/net/snmp6 (name and value per line; the
/// namespace's, read from a thread inside it).
fn ipv6_out_requests(ns: &Netns) -> Result<u64> {
    let text = ns.run(|| std::fs::read_to_string("/proc/thread-self/net/snmp6"))?;
    Ok(text
        .lines()
        .filter_map(|l| l.split_once(char::is_whitespace))
        .find(|(name, _)| *name == "Ip6OutRequests")
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0))
}

/// GETs `/metrics` from `addr` in `ns`: the body and how long it took.
pub fn scrape(ns: &Netns, addr: SocketAddr) -> Result<(String, Duration)> {
    let started = std::time::Instant::now();
    let (status, body) = http::get(ns, addr, "/metrics")?;
    let took = started.elapsed();
    if status != 200 {
        bail!("/metrics answered {status}");
    }
    Ok((body, took))
}

/// rx_packets, rx_dropped, tx_packets and tx_dropped of `iface` in
/// /proc/net/dev (8 receive columns, then 8 transmit columns).
pub fn parse_net_dev(text: &str, iface: &str) -> Option<BTreeMap<&'static str, u64>> {
    let (_, counters) = text
        .lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.trim() == iface)?;
    let v: Vec<u64> = counters
        .split_whitespace()
        .map(|c| c.parse().ok())
        .collect::<Option<_>>()?;
    Some(BTreeMap::from([
        ("rx_packets", *v.get(1)?),
        ("rx_dropped", *v.get(3)?),
        ("tx_packets", *v.get(9)?),
        ("tx_dropped", *v.get(11)?),
    ]))
}

/// `ethtool -S` output, `rx_queue_N_x` summed as `rx_x` (and `tx_` alike);
/// other counters under their own names.
pub fn parse_ethtool(text: &str) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let Some((name, value)) = line.trim().split_once(':') else {
            continue;
        };
        let Ok(value) = value.trim().parse::<u64>() else {
            continue;
        };
        let key = ["rx", "tx"]
            .into_iter()
            .find_map(|dir| {
                let rest = name.strip_prefix(dir)?.strip_prefix("_queue_")?;
                let (queue, counter) = rest.split_once('_')?;
                queue
                    .parse::<u32>()
                    .is_ok()
                    .then(|| format!("{dir}_{counter}"))
            })
            .unwrap_or_else(|| name.to_string());
        *out.entry(key).or_insert(0) += value;
    }
    out
}

/// VmRSS, VmHWM (kB) and Threads from /proc/PID/status.
pub fn parse_status(text: &str) -> Memory {
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    Memory {
        vm_rss_kb: field("VmRSS"),
        vm_hwm_kb: field("VmHWM"),
        threads: field("Threads"),
        fds: 0,
    }
}

/// `synguard_packets_total{device="<iface>",verdict="v",reason="r"} n`
/// samples as "v/r" -> n.
pub fn packets_by_verdict(body: &str, iface: &str) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for s in synguard_tests::http::samples(body) {
        if s.name != "synguard_packets_total" || s.label("device") != Some(iface) {
            continue;
        }
        let key = format!(
            "{}/{}",
            s.label("verdict").unwrap_or_default(),
            s.label("reason").unwrap_or_default()
        );
        *out.entry(key).or_insert(0) += s.value as u64;
    }
    out
}

/// Files named `link` under `root`: pinned XDP links, each holding a
/// program on an interface.
pub fn pinned_links(root: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                dirs.push(path);
            } else if entry.file_name() == "link" {
                found.push(path.display().to_string());
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn net_dev_columns() {
        let text = "Inter-|   Receive                                                |  Transmit\n face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    lo:       0       0    0    0    0     0          0         0        0       0    0    0    0     0       0          0\n sg1t:  6000     100    0   42    0     0          0         0     3000      50    0    7    0     0       0          0\n";
        let dev = parse_net_dev(text, "sg1t").unwrap();
        assert_eq!(dev["rx_packets"], 100);
        assert_eq!(dev["rx_dropped"], 42);
        assert_eq!(dev["tx_packets"], 50);
        assert_eq!(dev["tx_dropped"], 7);
        assert!(parse_net_dev(text, "sg1").is_none());
    }

    #[test]
    fn ethtool_queues_are_summed() {
        let text = "NIC statistics:\n     peer_ifindex: 2\n     rx_queue_0_xdp_packets: 10\n     rx_queue_1_xdp_packets: 5\n     rx_queue_0_xdp_tx_errors: 3\n     tx_queue_0_xdp_xmit: 7\n     tx_queue_0_xdp_xmit_errors: 1\n";
        let stats = parse_ethtool(text);
        assert_eq!(stats["rx_xdp_packets"], 15);
        assert_eq!(stats["rx_xdp_tx_errors"], 3);
        assert_eq!(stats["tx_xdp_xmit"], 7);
        assert_eq!(stats["tx_xdp_xmit_errors"], 1);
        assert_eq!(stats["peer_ifindex"], 2);
    }

    #[test]
    fn status_fields() {
        let text = "Name:\tsynguard\nVmHWM:\t   20480 kB\nVmRSS:\t   18000 kB\nThreads:\t3\n";
        let m = parse_status(text);
        assert_eq!((m.vm_rss_kb, m.vm_hwm_kb, m.threads), (18000, 20480, 3));
    }

    #[test]
    fn packets_of_one_interface_by_verdict() {
        let body = "# TYPE synguard_packets counter\nsynguard_packets_total{device=\"a\",verdict=\"tx\",reason=\"syn_ack\"} 12\nsynguard_packets_total{device=\"a\",verdict=\"drop\",reason=\"rate\"} 30\nsynguard_packets_total{device=\"b\",verdict=\"drop\",reason=\"rate\"} 99\nsynguard_bytes_total{device=\"a\",verdict=\"drop\",reason=\"rate\"} 1800\n";
        let got = packets_by_verdict(body, "a");
        assert_eq!(got.len(), 2);
        assert_eq!(got["tx/syn_ack"], 12);
        assert_eq!(got["drop/rate"], 30);
    }
}
