//! What the daemon does once a second and on address changes: the host
//! maps, list expiry, blocks for sources over budget, interfaces gone,
//! renamed or back.
use std::time::Duration;

use ipnet::IpNet;
use tracing::{error, info, warn};

use super::{
    Daemon,
    decide::{self, IndexChange},
};
use crate::{
    attach, flood, host,
    lists::entries::Entries,
    pins::PinLayout,
    state::{StateDir, unix_now},
};

impl Daemon {
    /// Writes what makes a SYN the host's (MAC, VLANs, local destinations)
    /// into the maps of every attached interface, as the namespace has it
    /// now.
    pub(super) fn sync_hosts(&mut self) {
        let view = match host::HostView::read() {
            Ok(view) => view,
            Err(e) => {
                warn!("reading links and local addresses (rtnetlink): {e}");
                return;
            }
        };
        let layout = &self.options.layout;
        for iface in layout.attached().unwrap_or_default() {
            match host::sync(layout, &iface, &view) {
                Ok(written) => {
                    if !written.changes.is_empty() {
                        info!("{iface}: {}", written.changes.join(", "));
                    }
                    let said = self.host_left_out.entry(iface.clone()).or_default();
                    if *said != written.left_out {
                        for what in &written.left_out {
                            warn!(
                                "{iface}: not answered from XDP (the host maps are full; SYNs \
                                 go to the kernel): {what}"
                            );
                        }
                        *said = written.left_out;
                    }
                }
                Err(e) => warn!("{iface}: updating the host maps: {e}"),
            }
        }
    }

    /// Once a second: expire list entries, block sources over budget (if
    /// configured), re-attach interfaces that came back, sync the host
    /// maps.
    pub(super) fn housekeeping(&mut self) {
        self.logs.forward(&self.options.layout);
        let debug = matches!(self.config.log_level.as_str(), "debug" | "trace");
        self.decisions.forward(&self.options.layout, debug);
        self.sync_hosts();
        let layout = self.options.layout.clone();
        let state = self.options.state.clone();
        let Ok(_lock) = state.lock() else {
            warn!("cannot take the state lock; housekeeping skipped");
            return;
        };
        let now = unix_now();
        Entries::new(&layout, &state).expire(now);
        if let Some(duration) = self.config.block_over_budget {
            self.block_over_budget(&layout, &state, now, duration);
        }
        self.follow_interfaces(&layout);
        if let Some(bgp) = &mut self.bgp {
            bgp.tick(&layout, &state, &self.config);
        }
    }

    /// Detaches the config's interfaces that went (deleted or renamed) and
    /// attaches those that appeared (again).
    fn follow_interfaces(&mut self, layout: &PinLayout) {
        for iface in self.config.interfaces.clone() {
            let index = attach::if_index(&iface.name);
            let before = self.ifindex.get(&iface.name).copied().unwrap_or(0);
            match decide::index_change(before, index) {
                IndexChange::Same => {}
                IndexChange::Gone => {
                    match if_name(before) {
                        // The config names interfaces, so the renamed device is
                        // no longer one synguard was asked to protect.
                        Some(new_name) => warn!(
                            "{} was renamed to {new_name}: detached from it; {} is attached again \
                             when an interface of that name appears",
                            iface.name, iface.name
                        ),
                        None => warn!(
                            "{} is gone (deleted); it is attached again when it returns",
                            iface.name
                        ),
                    }
                    // A deleted device took its link with it; a renamed one keeps
                    // it, and detaching removes it. Either way the pins go, so
                    // status and /healthz say the interface is not protected.
                    if let Err(e) = attach::detach(layout, &iface.name) {
                        warn!("clearing the pins of {}: {e}", iface.name);
                    }
                    self.ifindex.insert(iface.name.clone(), 0);
                }
                IndexChange::Appeared => {
                    // A link pinned for the old interface is defunct, so
                    // start afresh.
                    if let Err(e) = attach::detach(layout, &iface.name) {
                        warn!("clearing the old pins of {}: {e}", iface.name);
                    }
                    match self.attach_one(&iface) {
                        Ok(()) => info!("{} is back (index {index}): attached again", iface.name),
                        Err(e) => error!("attaching {} again: {e:#}", iface.name),
                    }
                }
            }
        }
    }

    pub(super) fn block_over_budget(
        &self,
        layout: &PinLayout,
        state: &StateDir,
        now: u64,
        duration: Duration,
    ) {
        let expires = decide::block_expires(now, duration);
        for iface in layout.attached().unwrap_or_default() {
            // Dry-run blocks nothing: its sources over budget are counted
            // (`would_drop` `rate`), and shown by `status`, only.
            if flood::running(layout, &iface).is_ok_and(|r| r.dry_run) {
                continue;
            }
            let over = match flood::over_budget(layout, &iface) {
                Ok(over) if !over.is_empty() => over,
                Ok(_) => continue,
                Err(e) => {
                    warn!("reading sources over budget on {iface}: {e}");
                    continue;
                }
            };
            let nets: Vec<IpNet> = over.iter().map(|(n, _)| *n).collect();
            // Sources stay remembered, to be blocked at the next tick, while
            // the lists cannot be opened.
            if !Entries::new(layout, state).block_over_budget(&over, expires, duration, &iface) {
                continue;
            }
            if let Err(e) = flood::forget_over_budget(layout, &iface, &nets) {
                warn!("clearing sources over budget on {iface}: {e}");
            }
        }
    }
}

/// The name of the interface with index `index` now, if there is one.
fn if_name(index: u32) -> Option<String> {
    if index == 0 {
        return None;
    }
    let mut buf = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: `buf` has the IF_NAMESIZE bytes if_indextoname may write.
    let name = unsafe { libc::if_indextoname(index, buf.as_mut_ptr()) };
    if name.is_null() {
        return None;
    }
    // SAFETY: on success the buffer holds a NUL-terminated name.
    let name = unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) };
    Some(name.to_string_lossy().into_owned())
}
