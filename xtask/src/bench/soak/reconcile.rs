//! Whether the soak's counters add up: what the generator sent, what veth
//! put on the target's ring or lost, what the clients sent, what the
//! target took in, and what synguard counted, end minus start. The kernel
//! side is explained in [`super::wire`].
use std::collections::BTreeMap;

use super::{Outcome, wire::Link};

/// The soak's counters, end minus start.
pub struct Tally {
    /// (a) flood frames the generator handed to the outside veth.
    pub sent: u64,
    /// (b) of those, put on the target's ring; (c) lost, the ring full.
    pub on_ring: u64,
    pub ring_full: u64,
    /// (d) the real clients' IP packets, as the outside's stack sent them.
    pub clients: u64,
    /// (e) the clients' packets the outside veth dropped, the ring full:
    /// its tx_dropped, less the generator's frames lost there (c).
    pub clients_lost: u64,
    /// (f) frames the target's NAPI took off its ring; (g) its rx_dropped.
    pub rx: u64,
    pub rx_dropped: u64,
    /// (h) frames synguard counted, every verdict.
    pub synguard: u64,
    /// What veth counted of each XDP action on the target.
    pub xdp_drops: u64,
    pub xdp_tx: u64,
    pub xdp_tx_errors: u64,
    pub xdp_redirect: u64,
    /// synguard's counters by "verdict/reason".
    pub by_reason: BTreeMap<String, u64>,
}

fn grew(before: &Link, after: &Link, key: &str) -> u64 {
    after.ethtool(key).saturating_sub(before.ethtool(key))
}

fn dev_grew(before: &Link, after: &Link, key: &str) -> u64 {
    after.dev(key).saturating_sub(before.dev(key))
}

impl Tally {
    pub fn of(o: &Outcome) -> Tally {
        let (s, e) = (&o.start, &o.end);
        let ring_full = grew(&s.outside, &e.outside, "tx_xdp_xmit_errors");
        Tally {
            sent: o.sent.packets,
            on_ring: grew(&s.outside, &e.outside, "tx_xdp_xmit"),
            ring_full,
            clients: e.outside_ip_out.saturating_sub(s.outside_ip_out),
            clients_lost: dev_grew(&s.outside, &e.outside, "tx_dropped").saturating_sub(ring_full),
            rx: dev_grew(&s.target, &e.target, "rx_packets"),
            rx_dropped: dev_grew(&s.target, &e.target, "rx_dropped"),
            synguard: e.synguard_total().saturating_sub(s.synguard_total()),
            xdp_drops: grew(&s.target, &e.target, "rx_xdp_drops"),
            xdp_tx: grew(&s.target, &e.target, "rx_xdp_tx"),
            xdp_tx_errors: grew(&s.target, &e.target, "rx_xdp_tx_errors"),
            xdp_redirect: grew(&s.target, &e.target, "rx_xdp_redirect"),
            by_reason: e
                .synguard
                .iter()
                .map(|(k, v)| {
                    let before = s.synguard.get(k).copied().unwrap_or(0);
                    (k.clone(), v.saturating_sub(before))
                })
                .filter(|(_, v)| *v > 0)
                .collect(),
        }
    }

    /// (what, packets, where it is read).
    pub fn rows(&self) -> [(&'static str, u64, &'static str); 8] {
        [
            (
                "(a) flood frames the generator handed to the outside veth",
                self.sent,
                "the generator's BPF_PROG_TEST_RUN repeat counts",
            ),
            (
                "(b) of those, put on the target's ring",
                self.on_ring,
                "outside veth, `ethtool -S`: tx_queue_0_xdp_xmit",
            ),
            (
                "(c) of those, lost: the ring was full",
                self.ring_full,
                "outside veth, `ethtool -S`: tx_queue_0_xdp_xmit_errors",
            ),
            (
                "(d) the real clients' IP packets",
                self.clients,
                "outside namespace: Ip and Ip6 OutRequests",
            ),
            (
                "(e) of those, lost: the ring was full",
                self.clients_lost,
                "outside veth: tx_dropped, less (c)",
            ),
            (
                "(f) frames the target took off its ring",
                self.rx,
                "target veth: rx_packets (/proc/net/dev, `ip -s link`)",
            ),
            (
                "(g) frames the target dropped before XDP",
                self.rx_dropped,
                "target veth: rx_dropped",
            ),
            (
                "(h) frames synguard counted, every verdict",
                self.synguard,
                "sum of synguard_packets_total, /metrics",
            ),
        ]
    }

    pub fn verdict(&self, verdict: &str) -> u64 {
        self.by_reason
            .iter()
            .filter(|(k, _)| k.split('/').next() == Some(verdict))
            .map(|(_, v)| v)
            .sum()
    }

    /// (what, left side, right side): each should be equal.
    pub fn checks(&self) -> Vec<(&'static str, u64, u64)> {
        let answered = self.xdp_tx + self.xdp_tx_errors;
        vec![
            (
                "a = b + c: every generated frame went on the ring or was lost there",
                self.sent,
                self.on_ring + self.ring_full,
            ),
            (
                "g = c: the target counts the flood's ring overflows as rx_dropped (the clients' are counted by the sender, as e)",
                self.rx_dropped,
                self.ring_full,
            ),
            (
                "f = b + d - e: the ring held only the flood and the clients",
                self.rx,
                (self.on_ring + self.clients).saturating_sub(self.clients_lost),
            ),
            (
                "h = f: synguard counted every frame the target took in",
                self.synguard,
                self.rx,
            ),
            (
                "synguard drop = veth xdp_drops",
                self.verdict("drop"),
                self.xdp_drops,
            ),
            (
                "synguard tx = veth xdp_tx + xdp_tx_errors",
                self.verdict("tx"),
                answered,
            ),
            (
                "synguard pass = f - drops - tx - redirects",
                self.verdict("pass"),
                self.rx
                    .saturating_sub(self.xdp_drops + answered + self.xdp_redirect),
            ),
        ]
    }
}
