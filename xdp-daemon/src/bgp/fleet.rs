//! The fleet blocklist: routes with the fleet community go into the local
//! blocklist with origin `bgp`, and leave it when they are withdrawn.
use std::collections::BTreeMap;

use ipnet::IpNet;
use tracing::{info, warn};

use super::{Bgp, overlaps};
use crate::{lists::entries::Entries, pins::PinLayout, state::StateDir};

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
        let entries = Entries::new(layout, state);
        let Some(plan) = entries.plan_fleet(want) else {
            return;
        };
        if plan.add.is_empty() && plan.remove.is_empty() {
            self.status.lock().expect("not poisoned").fleet_entries = plan.held;
            return;
        }
        if self.config.dry_run {
            for net in &plan.add {
                if self.said.say(&format!("would install {net}")) {
                    info!("bgp: would install {net} from the fleet (dry run)");
                }
            }
            return;
        }
        if let Some(held) = entries.apply_fleet(&plan, want) {
            self.status.lock().expect("not poisoned").fleet_entries = held;
        }
    }
}
