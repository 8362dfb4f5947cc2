//! Stopping: a clean stop, and undoing a start that failed.
use tracing::{error, info, warn};

use super::Daemon;
use crate::{
    attach::{self, Detached},
    state::StateDir,
    sysctl,
};

impl Daemon {
    pub(super) fn stop(&mut self) {
        let layout = &self.options.layout;
        let state = &self.options.state;
        let _lock = state.lock();
        if let Some(bgp) = &mut self.bgp {
            bgp.stop(layout, state, self.config.keep_attached_on_stop);
        }
        if self.config.keep_attached_on_stop {
            info!("stopping; keep_attached_on_stop: protection and sysctls stay in place");
        } else {
            for iface in &self.config.interfaces {
                match attach::detach(layout, &iface.name) {
                    Ok(Detached::Detached) => info!("detached {}", iface.name),
                    Ok(Detached::NotAttached) => {
                        info!("{} was not attached; nothing to do", iface.name)
                    }
                    Err(e) => error!("detaching {}: {e}", iface.name),
                }
            }
            let others = layout.attached().unwrap_or_default();
            if !others.is_empty() {
                info!(
                    "still attached (attached with the CLI, not in the config): {}",
                    others.join(", ")
                );
            }
            restore_sysctls(state, "restored", "restoring sysctls");
        }
        remove_status(state);
        info!("stopped");
    }

    /// After a start that failed (a kernel that refuses the program, say):
    /// put back the sysctls it applied, so the host is left as it was,
    /// unless protection is pinned (a daemon before this one, the CLI),
    /// which needs them.
    pub(super) fn undo_failed_start(&mut self) {
        let layout = &self.options.layout;
        let state = &self.options.state;
        let _lock = state.lock();
        let attached = layout.attached().unwrap_or_default();
        if !attached.is_empty() {
            warn!(
                "start failed; sysctls stay as applied: {} still attached",
                attached.join(", ")
            );
            return;
        }
        restore_sysctls(
            state,
            "restored: start failed",
            "restoring sysctls after a failed start",
        );
        remove_status(state);
    }
}

/// Puts back the sysctls the daemon applied, logging each change with
/// `why`, or the failure after `failing`.
fn restore_sysctls(state: &StateDir, why: &str, failing: &str) {
    match sysctl::restore(state) {
        Ok(restored) => {
            for (name, from, to) in restored.changed {
                info!("sysctl {name}: {from} -> {to} ({why})");
            }
        }
        Err(e) => error!("{failing}: {e}"),
    }
}

fn remove_status(state: &StateDir) {
    if let Err(e) = state.remove_daemon_status() {
        warn!("removing the status file: {e}");
    }
}
