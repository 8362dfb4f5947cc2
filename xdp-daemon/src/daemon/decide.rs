//! The daemon's decisions, apart from what acts on them: which interfaces
//! to detach on a reload, what a changed interface index means, which
//! sources over budget to block and until when, which list entries the
//! config owns. Pure, so the unit tests below pin them down without root.
use std::{collections::BTreeMap, time::Duration};

use ipnet::IpNet;

use crate::{
    config::Interface,
    state::{EntryMeta, Origin},
};

/// The interfaces of the previous config that the new one no longer
/// names: to be detached.
pub(super) fn interfaces_gone<'a>(
    previous: &'a [Interface],
    current: &[Interface],
) -> Vec<&'a Interface> {
    previous
        .iter()
        .filter(|o| !current.iter().any(|i| i.name == o.name))
        .collect()
}

/// What became of a config interface since it was last seen, from its
/// index then (0: missing) and now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum IndexChange {
    /// Nothing to do.
    Same,
    /// Deleted or renamed: its pins go.
    Gone,
    /// Created (again): attached afresh.
    Appeared,
}

pub(super) fn index_change(before: u32, now: u32) -> IndexChange {
    match (before, now) {
        _ if before == now => IndexChange::Same,
        (_, 0) => IndexChange::Gone,
        _ => IndexChange::Appeared,
    }
}

/// The sources over budget to block: all but those the blocklist holds
/// for another reason (an operator's entry, or the config's, keeps its
/// expiry).
pub(super) fn to_block<'a>(
    over: &'a [(IpNet, u64)],
    block_meta: &BTreeMap<IpNet, EntryMeta>,
) -> Vec<&'a (IpNet, u64)> {
    over.iter()
        .filter(|(net, _)| {
            block_meta
                .get(net)
                .is_none_or(|m| m.origin == Origin::OverBudget)
        })
        .collect()
}

/// When a block for a source over budget made at `now` (seconds) ends:
/// at least a second later.
pub(super) fn block_expires(now: u64, duration: Duration) -> u64 {
    now + duration.as_secs().max(1)
}

/// The entries of a list the config put there (as recorded).
pub(super) fn config_entries(recorded: &BTreeMap<IpNet, EntryMeta>) -> Vec<IpNet> {
    recorded
        .iter()
        .filter(|(_, m)| m.origin == Origin::Config)
        .map(|(n, _)| *n)
        .collect()
}

/// Records the config's entries of a list as `desired`: those that left
/// the config are forgotten, new ones recorded; other origins' stay.
pub(super) fn record_config_entries(recorded: &mut BTreeMap<IpNet, EntryMeta>, desired: &[IpNet]) {
    recorded.retain(|n, m| m.origin != Origin::Config || desired.contains(n));
    for net in desired {
        recorded.entry(*net).or_insert(EntryMeta {
            origin: Origin::Config,
            comment: None,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attach::AttachMode;

    fn iface(name: &str) -> Interface {
        Interface {
            name: name.into(),
            mode: AttachMode::Auto,
            replace: false,
            dry_run: false,
        }
    }

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    fn meta(origin: Origin) -> EntryMeta {
        EntryMeta {
            origin,
            comment: None,
        }
    }

    #[test]
    fn a_reload_detaches_only_the_interfaces_the_config_dropped() {
        let previous = [iface("eth0"), iface("eth1"), iface("eth2")];
        let current = [iface("eth1"), iface("eth3")];
        let gone: Vec<&str> = interfaces_gone(&previous, &current)
            .iter()
            .map(|i| i.name.as_str())
            .collect();
        assert_eq!(gone, ["eth0", "eth2"]);
        assert!(interfaces_gone(&[], &current).is_empty());
    }

    #[test]
    fn an_index_change_says_whether_the_interface_went_or_came() {
        assert_eq!(index_change(7, 7), IndexChange::Same);
        assert_eq!(index_change(0, 0), IndexChange::Same);
        assert_eq!(index_change(7, 0), IndexChange::Gone);
        assert_eq!(index_change(0, 9), IndexChange::Appeared);
        // Deleted and created again between two ticks: a new index.
        assert_eq!(index_change(7, 9), IndexChange::Appeared);
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
    fn a_block_over_budget_lasts_at_least_a_second() {
        assert_eq!(block_expires(1000, Duration::from_secs(600)), 1600);
        assert_eq!(block_expires(1000, Duration::from_millis(10)), 1001);
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
}
