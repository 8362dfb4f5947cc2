//! What each fleet rule dropped on this node: the counted blocklist
//! entries (learnt from the fleet, or shared with `block --share`), per
//! interface, read from `ENTRY_DROPS` at scrape time
//! (docs/design.md#drops-per-blocklist-entry).
//!
//! Only counted entries have series, so their number is bounded by the
//! BGP caps (`[bgp.fleet] max_entries` plus the shares within
//! `max_announcements`) times the interfaces, never by the blocklist's
//! size.
use std::fmt;

use prometheus_client::{collector::Collector, encoding::DescriptorEncoder};

use super::families::{DEVICE, Labels, counter};
use crate::{
    lists::{List, ListMaps, slots::NO_SLOT},
    pins::PinLayout,
    state::{Origin, StateDir},
};

#[derive(Debug)]
pub struct EntryDropsCollector {
    pub layout: PinLayout,
    pub state: StateDir,
}

/// The `origin` label, as `synguard list --json` names it.
fn origin_label(origin: Option<Origin>) -> &'static str {
    match origin {
        Some(Origin::Bgp) => "bgp",
        Some(Origin::Cli) => "cli",
        Some(Origin::Config) => "config",
        Some(Origin::OverBudget) => "over-budget",
        None => "unknown",
    }
}

impl Collector for EntryDropsCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> fmt::Result {
        let mut packets = Vec::new();
        let mut bytes = Vec::new();
        match ListMaps::open(&self.layout).and_then(|maps| Ok((maps.values(List::Block)?, maps))) {
            Ok((values, maps)) => {
                let meta = self.state.list_meta().unwrap_or_default();
                for (net, value) in values.iter().filter(|(_, v)| v.slot != NO_SLOT) {
                    let origin = origin_label(meta.block.get(net).map(|m| m.origin));
                    for drops in maps.entry_drops() {
                        let c = match drops.get(value.slot) {
                            Ok(c) => c,
                            Err(e) => {
                                tracing::warn!("metrics: drops of {net} on {}: {e}", drops.iface);
                                continue;
                            }
                        };
                        let labels: Labels = vec![
                            (DEVICE, drops.iface.clone()),
                            ("prefix", net.to_string()),
                            ("origin", origin.to_string()),
                        ];
                        packets.push((labels.clone(), c.packets));
                        bytes.push((labels, c.bytes));
                    }
                }
            }
            Err(e) => tracing::warn!("metrics: the blocklist's entry counters: {e}"),
        }
        counter(
            &mut enc,
            "synguard_blocklist_entry_dropped_packets",
            "Packets each fleet rule (a blocklist entry learnt from the fleet, or shared with block --share) dropped on this node, by interface.",
            &packets,
        )?;
        counter(
            &mut enc,
            "synguard_blocklist_entry_dropped_bytes",
            "Bytes of those packets (whole frames).",
            &bytes,
        )
    }
}
