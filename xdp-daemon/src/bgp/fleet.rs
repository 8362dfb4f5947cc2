//! The fleet blocklist: routes with the fleet community go into the local
//! blocklist with origin `bgp`, and leave it when they are withdrawn.
use std::collections::{BTreeMap, BTreeSet};

use ipnet::IpNet;
use tracing::{info, warn};

use super::{Bgp, overlaps};
use crate::{
    lists::{List, ListMaps},
    pins::PinLayout,
    state::{EntryMeta, Origin, StateDir},
};

impl Bgp {
    /// Makes the blocklist's `bgp` entries equal the fleet's routes that
    /// pass the guard rails. An entry that is also there by other means
    /// (the CLI, the config) is left to them.
    pub(super) fn sync_fleet(&mut self, layout: &PinLayout, state: &StateDir, allow: &[IpNet]) {
        let mut want: BTreeMap<IpNet, String> = BTreeMap::new();
        if let Some(fleet) = &self.config.fleet {
            let received = match self.speaker.received(fleet.community) {
                Ok(r) => r,
                Err(e) => {
                    self.speaker_failed(&e.to_string());
                    return;
                }
            };
            for r in received {
                let shortest = if r.net.addr().is_ipv4() {
                    self.config.shortest_v4
                } else {
                    self.config.shortest_v6
                };
                let why = if let Some(x) = allow.iter().find(|x| overlaps(x, &r.net)) {
                    Some(format!("overlaps the allowlisted {x}"))
                } else if r.net.prefix_len() < shortest {
                    Some(format!("wider than /{shortest}"))
                } else if want.len() >= fleet.max_entries {
                    Some(format!(
                        "[bgp.fleet] max_entries ({}) reached",
                        fleet.max_entries
                    ))
                } else {
                    None
                };
                match why {
                    Some(why) => {
                        let line = format!("fleet {} from {}: {why}", r.net, r.from);
                        if self.said.say(&line) {
                            warn!("bgp: not installed: {line}");
                        }
                    }
                    None => {
                        want.insert(r.net, r.from);
                    }
                }
            }
        }
        self.install_fleet(layout, state, &want);
    }

    pub(super) fn install_fleet(
        &mut self,
        layout: &PinLayout,
        state: &StateDir,
        want: &BTreeMap<IpNet, String>,
    ) {
        let Ok(mut meta) = state.list_meta() else {
            return;
        };
        let ours: BTreeSet<IpNet> = meta
            .block
            .iter()
            .filter(|(_, m)| m.origin == Origin::Bgp)
            .map(|(n, _)| *n)
            .collect();
        let add: Vec<(IpNet, u64)> = want
            .keys()
            .filter(|n| !meta.block.contains_key(n))
            .map(|n| (*n, 0))
            .collect();
        let remove: Vec<IpNet> = ours
            .iter()
            .filter(|n| !want.contains_key(n))
            .copied()
            .collect();
        if add.is_empty() && remove.is_empty() {
            self.status.lock().expect("not poisoned").fleet_entries = ours.len();
            return;
        }
        if self.config.dry_run {
            for (net, _) in &add {
                if self.said.say(&format!("would install {net}")) {
                    info!("bgp: would install {net} from the fleet (dry run)");
                }
            }
            return;
        }
        let mut maps = match ListMaps::open(layout) {
            Ok(maps) => maps,
            Err(e) => {
                warn!("bgp: opening the lists: {e}");
                return;
            }
        };
        for (&(net, _), result) in add.iter().zip(maps.add_many(List::Block, &add)) {
            match result {
                Ok(_) => {
                    info!("bgp: blocked {net} from the fleet (from {})", want[&net]);
                    meta.block.insert(
                        net,
                        EntryMeta {
                            origin: Origin::Bgp,
                            comment: Some(format!("fleet, from {}", want[&net])),
                            share: false,
                            upstream: false,
                        },
                    );
                }
                Err(e) => warn!("bgp: blocking {net} from the fleet: {e}"),
            }
        }
        for net in remove {
            match maps.remove(List::Block, net) {
                Ok(_) => {
                    info!("bgp: unblocked {net}: the fleet withdrew it");
                    meta.block.remove(&net);
                }
                Err(e) => warn!("bgp: unblocking {net}: {e}"),
            }
        }
        if let Err(e) = state.save_list_meta(&meta) {
            warn!("bgp: saving list comments: {e}");
        }
        self.status.lock().expect("not poisoned").fleet_entries = meta
            .block
            .values()
            .filter(|m| m.origin == Origin::Bgp)
            .count();
    }
}
