//! A list entry and what is recorded about it (who put it there, and why),
//! changed together here and nowhere else, so the CLI and the daemon cannot
//! drift: the map entry with its expiry in the tries, its origin and
//! comment in the state directory. Every method expects the caller to hold
//! the state lock.
use std::{
    collections::{BTreeMap, BTreeSet},
    time::Duration,
};

use anyhow::Context;
use ipnet::IpNet;
use tracing::{info, warn};

use super::{List, ListMaps};
use crate::{
    pins::PinLayout,
    state::{EntryMeta, Origin, StateDir},
};

/// What the running daemon is to announce of an entry over BGP.
#[derive(Clone, Copy, Debug, Default)]
pub struct Announce {
    /// To the fleet (`block --share`).
    pub share: bool,
    /// Upstream, as a FlowSpec discard (`block --upstream`).
    pub upstream: bool,
}

/// The block and allow lists with their records.
pub struct Entries<'a> {
    layout: &'a PinLayout,
    state: &'a StateDir,
}

impl<'a> Entries<'a> {
    pub fn new(layout: &'a PinLayout, state: &'a StateDir) -> Self {
        Entries { layout, state }
    }

    /// Adds `net` (or updates its expiry; 0: never) on an operator's word.
    /// An entry keeps the origin it was recorded with, but one from the
    /// fleet becomes the operator's; a comment given replaces the one
    /// recorded; `announce` adds to what the daemon announces over BGP,
    /// and a shared entry's drops are counted (a fleet rule's, here).
    /// Whether the entry is new.
    pub fn add(
        &self,
        list: List,
        net: IpNet,
        expires: u64,
        comment: Option<String>,
        announce: Announce,
    ) -> anyhow::Result<bool> {
        let new = ListMaps::open(self.layout)
            .and_then(|mut maps| {
                let entry = [(net, expires)];
                let mut results = if announce.share {
                    maps.add_many_counted(list, &entry)
                } else {
                    maps.add_many(list, &entry)
                };
                results.pop().expect("one result per entry")
            })
            .with_context(|| format!("cannot add {net} to the {}", list.name()))?;
        let mut meta = self.state.list_meta()?;
        if let Some(records) = meta.of_mut(list) {
            let entry = records.entry(net).or_insert(EntryMeta {
                origin: Origin::Cli,
                comment: None,
                share: false,
                upstream: false,
            });
            if comment.is_some() {
                entry.comment = comment;
            }
            // An entry from the fleet that a person blocks is theirs from now on.
            if entry.origin == Origin::Bgp {
                entry.origin = Origin::Cli;
            }
            entry.share |= announce.share;
            entry.upstream |= announce.upstream;
        }
        self.state.save_list_meta(&meta)?;
        Ok(new)
    }

    /// Removes `net` and its record. Whether it was there.
    pub fn remove(&self, list: List, net: IpNet) -> anyhow::Result<bool> {
        let removed = ListMaps::open(self.layout)
            .and_then(|mut maps| maps.remove(list, net))
            .with_context(|| format!("cannot remove {net} from the {}", list.name()))?;
        let mut meta = self.state.list_meta()?;
        if meta.of_mut(list).is_some_and(|r| r.remove(&net).is_some()) {
            self.state.save_list_meta(&meta)?;
        }
        Ok(removed)
    }

    /// Makes the config's entries of the two lists `block` and `allow`.
    /// The entries the config put there before are known from the records,
    /// so a restarted daemon removes what left the config while it was
    /// down; an entry someone else put there stays theirs.
    pub fn sync_config(&self, block: &[IpNet], allow: &[IpNet]) -> anyhow::Result<()> {
        let mut meta = self.state.list_meta()?;
        for (list, desired, recorded) in [
            (List::Block, block, &mut meta.block),
            (List::Allow, allow, &mut meta.allow),
        ] {
            let previous = config_entries(recorded);
            let outcome = ListMaps::open(self.layout)
                .and_then(|mut maps| maps.sync(list, desired, &previous))
                .with_context(|| format!("loading the {} from the config", list.name()))?;
            if outcome.added + outcome.removed > 0 {
                info!(
                    "{}: {} added, {} removed from the config",
                    list.name(),
                    outcome.added,
                    outcome.removed
                );
            }
            record_config_entries(recorded, desired);
        }
        self.state.save_list_meta(&meta)?;
        Ok(())
    }

    /// Blocks the sources found over their SYN budget on `iface` until
    /// `expires` (`over`: each with the SYNs it sent over budget), but for
    /// those the blocklist holds for another reason. Failures are logged;
    /// false if the lists could not be opened (nothing was blocked).
    pub fn block_over_budget(
        &self,
        over: &[(IpNet, u64)],
        expires: u64,
        duration: Duration,
        iface: &str,
    ) -> bool {
        let mut meta = self.state.list_meta().unwrap_or_default();
        let to_block = to_block(over, &meta.block);
        let entries: Vec<(IpNet, u64)> = to_block.iter().map(|(net, _)| (*net, expires)).collect();
        let results = match ListMaps::open(self.layout) {
            Ok(mut maps) => maps.add_many(List::Block, &entries),
            Err(e) => {
                warn!("opening the lists: {e}");
                return false;
            }
        };
        for ((net, dropped), result) in to_block.into_iter().zip(results) {
            match result {
                Ok(_) => {
                    info!(
                        "{net} blocked for {} ({dropped} SYNs over budget on {iface})",
                        humantime::format_duration(duration)
                    );
                    meta.block.insert(
                        *net,
                        EntryMeta {
                            origin: Origin::OverBudget,
                            comment: Some(format!("over its SYN budget on {iface}")),
                            share: false,
                            upstream: false,
                        },
                    );
                }
                Err(e) => warn!("blocking {net}: {e}"),
            }
        }
        if let Err(e) = self.state.save_list_meta(&meta) {
            warn!("saving list comments: {e}");
        }
        true
    }

    /// What making the blocklist's fleet entries (origin `bgp`) equal
    /// `want` (each with the peer it came from) takes; None if the records
    /// cannot be read.
    pub fn plan_fleet(&self, want: &BTreeMap<IpNet, String>) -> Option<FleetPlan> {
        let meta = self.state.list_meta().ok()?;
        Some(plan_fleet(&meta.block, want))
    }

    /// Carries out `plan` (from [`Entries::plan_fleet`]); how many fleet
    /// entries the blocklist then holds. Failures are logged; None if the
    /// lists could not be opened (nothing changed).
    pub fn apply_fleet(&self, plan: &FleetPlan, want: &BTreeMap<IpNet, String>) -> Option<usize> {
        let mut meta = self.state.list_meta().ok()?;
        let mut maps = match ListMaps::open(self.layout) {
            Ok(maps) => maps,
            Err(e) => {
                warn!("bgp: opening the lists: {e}");
                return None;
            }
        };
        let add: Vec<(IpNet, u64)> = plan.add.iter().map(|n| (*n, 0)).collect();
        for (&(net, _), result) in add.iter().zip(maps.add_many_counted(List::Block, &add)) {
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
        for &net in &plan.remove {
            match maps.remove(List::Block, net) {
                Ok(_) => {
                    info!("bgp: unblocked {net}: the fleet withdrew it");
                    meta.block.remove(&net);
                }
                Err(e) => warn!("bgp: unblocking {net}: {e}"),
            }
        }
        if let Err(e) = self.state.save_list_meta(&meta) {
            warn!("bgp: saving list comments: {e}");
        }
        Some(
            meta.block
                .values()
                .filter(|m| m.origin == Origin::Bgp)
                .count(),
        )
    }

    /// Gives a counter slot to the fleet's entries and the shared ones
    /// that have none (carried over from a layout without slots); how
    /// many.
    pub fn count_fleet(&self) -> anyhow::Result<usize> {
        let meta = self.state.list_meta()?;
        let fleet: Vec<IpNet> = meta
            .block
            .iter()
            .filter(|(_, m)| m.origin == Origin::Bgp || m.share)
            .map(|(n, _)| *n)
            .collect();
        Ok(ListMaps::open(self.layout)?.count(List::Block, &fleet)?)
    }

    /// Removes the entries whose time is up, and their records. Failures
    /// are logged.
    pub fn expire(&self, now: u64) {
        let mut expired_any = false;
        for list in [List::Block, List::Allow] {
            match ListMaps::open(self.layout).and_then(|mut maps| maps.sweep_expired(list, now)) {
                Ok(gone) => {
                    for net in &gone {
                        info!("{net} expired from the {}", list.name());
                    }
                    expired_any |= !gone.is_empty();
                }
                Err(e) => warn!("sweeping the {}: {e}", list.name()),
            }
        }
        if expired_any && let Err(e) = self.prune() {
            warn!("updating list comments: {e}");
        }
    }

    /// Drops the records of entries no longer in the maps.
    fn prune(&self) -> anyhow::Result<()> {
        let mut meta = self.state.list_meta()?;
        let maps = ListMaps::open(self.layout)?;
        let in_map = |list| -> anyhow::Result<BTreeSet<IpNet>> {
            Ok(maps.entries(list)?.into_iter().map(|(n, _)| n).collect())
        };
        let (block, allow) = (in_map(List::Block)?, in_map(List::Allow)?);
        meta.block.retain(|n, _| block.contains(n));
        meta.allow.retain(|n, _| allow.contains(n));
        self.state.save_list_meta(&meta)?;
        Ok(())
    }
}

/// What syncing the fleet's entries changes: the nets to add (in the
/// blocklist for no reason yet), the fleet entries to remove (withdrawn),
/// and how many fleet entries there are now.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct FleetPlan {
    pub add: Vec<IpNet>,
    pub remove: Vec<IpNet>,
    pub held: usize,
}

fn plan_fleet(block: &BTreeMap<IpNet, EntryMeta>, want: &BTreeMap<IpNet, String>) -> FleetPlan {
    let ours: BTreeSet<IpNet> = block
        .iter()
        .filter(|(_, m)| m.origin == Origin::Bgp)
        .map(|(n, _)| *n)
        .collect();
    FleetPlan {
        add: want
            .keys()
            .filter(|n| !block.contains_key(n))
            .copied()
            .collect(),
        remove: ours
            .iter()
            .filter(|n| !want.contains_key(n))
            .copied()
            .collect(),
        held: ours.len(),
    }
}

/// The entries of a list the config put there (as recorded).
fn config_entries(recorded: &BTreeMap<IpNet, EntryMeta>) -> Vec<IpNet> {
    recorded
        .iter()
        .filter(|(_, m)| m.origin == Origin::Config)
        .map(|(n, _)| *n)
        .collect()
}

/// Records the config's entries of a list as `desired`: those that left
/// the config are forgotten, new ones recorded; other origins' stay.
fn record_config_entries(recorded: &mut BTreeMap<IpNet, EntryMeta>, desired: &[IpNet]) {
    recorded.retain(|n, m| m.origin != Origin::Config || desired.contains(n));
    for net in desired {
        recorded.entry(*net).or_insert(EntryMeta {
            origin: Origin::Config,
            comment: None,
            share: false,
            upstream: false,
        });
    }
}

/// The sources over budget to block: all but those the blocklist holds
/// for another reason (an operator's entry, or the config's, keeps its
/// expiry).
fn to_block<'o>(
    over: &'o [(IpNet, u64)],
    block_meta: &BTreeMap<IpNet, EntryMeta>,
) -> Vec<&'o (IpNet, u64)> {
    over.iter()
        .filter(|(net, _)| {
            block_meta
                .get(net)
                .is_none_or(|m| m.origin == Origin::OverBudget)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    fn meta(origin: Origin) -> EntryMeta {
        EntryMeta {
            origin,
            comment: None,
            share: false,
            upstream: false,
        }
    }

    #[test]
    fn an_operators_entry_is_not_replaced_by_a_block_over_budget() {
        let over = [
            (net("198.18.0.1/32"), 10),
            (net("198.18.0.2/32"), 20),
            (net("198.18.0.3/32"), 30),
            (net("198.18.0.4/32"), 40),
        ];
        let recorded = BTreeMap::from([
            (net("198.18.0.1/32"), meta(Origin::Cli)),
            (net("198.18.0.2/32"), meta(Origin::OverBudget)),
            (net("198.18.0.3/32"), meta(Origin::Config)),
        ]);
        let blocked: Vec<IpNet> = to_block(&over, &recorded).iter().map(|e| e.0).collect();
        assert_eq!(blocked, [net("198.18.0.2/32"), net("198.18.0.4/32")]);
    }

    #[test]
    fn the_config_owns_only_its_own_list_entries() {
        let mut recorded = BTreeMap::from([
            (net("198.18.0.0/24"), meta(Origin::Config)),
            (net("198.18.1.0/24"), meta(Origin::Config)),
            (net("198.18.2.0/24"), meta(Origin::Cli)),
            (net("198.18.3.0/24"), meta(Origin::OverBudget)),
        ]);
        assert_eq!(
            config_entries(&recorded),
            [net("198.18.0.0/24"), net("198.18.1.0/24")]
        );
        // The config now says 198.18.1.0/24 and 198.18.2.0/24 (which an
        // operator added first: it stays theirs) and 2001:2::/48.
        let desired = [
            net("198.18.1.0/24"),
            net("198.18.2.0/24"),
            net("2001:2::/48"),
        ];
        record_config_entries(&mut recorded, &desired);
        let origins: Vec<(IpNet, Origin)> = recorded.iter().map(|(n, m)| (*n, m.origin)).collect();
        assert_eq!(
            origins,
            [
                (net("198.18.1.0/24"), Origin::Config),
                (net("198.18.2.0/24"), Origin::Cli),
                (net("198.18.3.0/24"), Origin::OverBudget),
                (net("2001:2::/48"), Origin::Config),
            ]
        );
    }

    #[test]
    fn the_fleet_adds_what_is_free_and_removes_only_its_own() {
        let block = BTreeMap::from([
            (net("198.18.0.1/32"), meta(Origin::Bgp)),
            (net("198.18.0.2/32"), meta(Origin::Bgp)),
            (net("198.18.0.3/32"), meta(Origin::Cli)),
            (net("198.18.0.4/32"), meta(Origin::Config)),
        ]);
        let want = BTreeMap::from([
            (net("198.18.0.1/32"), "peer".to_string()),
            (net("198.18.0.3/32"), "peer".to_string()),
            (net("198.18.0.9/32"), "peer".to_string()),
        ]);
        assert_eq!(
            plan_fleet(&block, &want),
            FleetPlan {
                add: vec![net("198.18.0.9/32")],
                remove: vec![net("198.18.0.2/32")],
                held: 2,
            }
        );
    }
}
