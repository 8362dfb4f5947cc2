//! Stopping: a clean stop, and undoing a start that failed.
use tracing::{error, info, warn};

use super::Daemon;
use crate::{
    attach::{self, Detached},
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
            match sysctl::restore(state) {
                Ok(restored) => {
                    for (name, from, to) in restored.changed {
                        info!("sysctl {name}: {from} -> {to} (restored)");
                    }
                }
                Err(e) => error!("restoring sysctls: {e}"),
            }
        }
        if let Err(e) = state.remove_daemon_status() {
            warn!("removing the status file: {e}");
        }
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
        match sysctl::restore(state) {
            Ok(restored) => {
                for (name, from, to) in restored.changed {
                    info!("sysctl {name}: {from} -> {to} (restored: start failed)");
                }
            }
            Err(e) => error!("restoring sysctls after a failed start: {e}"),
        }
        if let Err(e) = state.remove_daemon_status() {
            warn!("removing the status file: {e}");
        }
    }
}
