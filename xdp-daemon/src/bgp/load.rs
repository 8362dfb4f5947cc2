//! "The node cannot keep up": SYNs per second above the capacity the
//! operator configured (the data path's own measure, `FloodState`), or
//! frames the NIC or driver dropped before XDP ran growing faster than a
//! threshold (`/proc/net/dev`, which is per network namespace, unlike
//! /sys/class/net of a namespace entered with setns).
use std::collections::BTreeMap;

use synguard_common::{FLOOD_WINDOW_NS, FloodState};

use crate::{clock::monotonic_coarse_ns, flood, pins::PinLayout};

/// The SYN rate the data path measured, if its window is current. The data
/// path closes a window only when a SYN arrives (xdp-prog flood.rs
/// `on_syn`), so once a flood stops its last rate stands until the next
/// SYN: a window older than two windows means no SYNs since.
fn current_rate(state: &FloodState, now_ns: u64) -> u64 {
    if now_ns.saturating_sub(state.window_start_ns) > 2 * FLOOD_WINDOW_NS {
        0
    } else {
        state.last_rate
    }
}

/// The frames an interface lost before the stack saw them: the "drop"
/// (rx_dropped + rx_missed_errors) and "fifo" (rx_fifo_errors) receive
/// columns of `/proc/net/dev` (net/core/net-procfs.c dev_seq_printf_stats).
pub fn rx_drops() -> BTreeMap<String, u64> {
    let text = std::fs::read_to_string("/proc/net/dev").unwrap_or_default();
    parse_proc_net_dev(&text)
}

fn parse_proc_net_dev(text: &str) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for line in text.lines().skip(2) {
        let Some((name, fields)) = line.split_once(':') else {
            continue;
        };
        let fields: Vec<u64> = fields
            .split_whitespace()
            .filter_map(|f| f.parse().ok())
            .collect();
        if fields.len() >= 5 {
            out.insert(name.trim().to_string(), fields[3] + fields[4]);
        }
    }
    out
}

/// Why the node counts as overloaded this second, if it does.
#[derive(Debug, Default)]
pub struct Load {
    /// Drop counters seen the second before, per interface.
    drops: BTreeMap<String, u64>,
}

impl Load {
    /// Looks at the interfaces synguard protects; `None`: the node keeps up.
    pub fn overloaded(
        &mut self,
        layout: &PinLayout,
        interfaces: &[String],
        capacity_syn_pps: u64,
        nic_drops_pps: u64,
    ) -> Option<String> {
        let mut why = None;
        if capacity_syn_pps > 0 {
            for iface in layout.attached().unwrap_or_default() {
                if let Ok(state) = flood::state(layout, &iface)
                    && let rate = current_rate(&state, monotonic_coarse_ns())
                    && rate > capacity_syn_pps
                {
                    why = Some(format!(
                        "{iface}: {rate} SYN/s, above capacity_syn_pps {capacity_syn_pps}"
                    ));
                }
            }
        }
        let now = rx_drops();
        if nic_drops_pps > 0 {
            for iface in interfaces {
                let (Some(&before), Some(&after)) = (self.drops.get(iface), now.get(iface)) else {
                    continue;
                };
                let grew = after.saturating_sub(before);
                if grew > nic_drops_pps {
                    why = Some(format!(
                        "{iface}: {grew} frames/s dropped before XDP, above nic_drops_pps {nic_drops_pps}"
                    ));
                }
            }
        }
        self.drops = now;
        why
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rate_whose_window_is_old_is_no_rate() {
        let state = FloodState {
            window_start_ns: 10_000_000_000,
            last_rate: 150_000,
            ..FloodState::default()
        };
        assert_eq!(current_rate(&state, 10_050_000_000), 150_000);
        assert_eq!(current_rate(&state, 10_300_000_000), 0);
    }

    #[test]
    fn proc_net_dev_drops_are_drop_plus_fifo() {
        let text = "Inter-|   Receive                                                |  Transmit\n \
            face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    \
            lo:    1000      10    0    0    0     0          0         0     1000      10    0    0    0     0       0          0\n  \
            eth0: 5000000   40000    1   17    3     0          0         0   100000    1000    0    0    0     0       0          0\n";
        let drops = parse_proc_net_dev(text);
        assert_eq!(drops["lo"], 0);
        assert_eq!(drops["eth0"], 20);
    }
}
