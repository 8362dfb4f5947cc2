//! The daemon's decisions, apart from what acts on them: which interfaces
//! to detach on a reload, what a changed interface index means, until when
//! a source over budget is blocked (which ones, and which list entries the
//! config owns: `lists::entries`). Pure, so the unit tests below pin them
//! down without root.
use std::time::Duration;

use crate::config::Interface;

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

/// When a block for a source over budget made at `now` (seconds) ends:
/// at least a second later.
pub(super) fn block_expires(now: u64, duration: Duration) -> u64 {
    now + duration.as_secs().max(1)
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
    fn a_block_over_budget_lasts_at_least_a_second() {
        assert_eq!(block_expires(1000, Duration::from_secs(600)), 1600);
        assert_eq!(block_expires(1000, Duration::from_millis(10)), 1001);
    }
}
