//! Making the system match the config: sysctls, lists, interfaces.
use anyhow::{Context, bail};
use tracing::{error, info, warn};

use super::{Daemon, decide};
use crate::{
    attach::{self, Attached, Detached},
    config::{Config, Interface},
    lists::{ListMaps, entries::Entries},
    nic,
    pins::PinLayout,
    settings::FloodPolicy,
    state::{StateDir, unix_now},
    sysctl,
};

impl Daemon {
    /// Makes the system match `self.config`; `previous` is the config being
    /// replaced (None at start-up).
    pub(super) fn apply(&mut self, previous: Option<&Config>) -> anyhow::Result<()> {
        let state = &self.options.state;
        let layout = &self.options.layout;
        let _lock = state.lock().context("taking the state lock")?;

        // Sysctls first: the interfaces' settings are derived from them.
        let applied = sysctl::apply(&self.config.sysctls, state)?;
        for (name, from, to) in &applied.changed {
            info!("sysctl {name}: {from} -> {to}");
        }

        if previous.is_none() {
            import_older_lists(layout, state);
        }
        self.sync_lists()?;

        let old: Vec<Interface> = previous.map(|p| p.interfaces.clone()).unwrap_or_default();
        for gone in decide::interfaces_gone(&old, &self.config.interfaces) {
            match attach::detach(layout, &gone.name) {
                Ok(Detached::Detached) => info!("detached {} (no longer in the config)", gone.name),
                Ok(Detached::NotAttached) => {}
                Err(e) => error!("detaching {}: {e}", gone.name),
            }
            self.ifindex.remove(&gone.name);
            self.known
                .lock()
                .expect("not poisoned")
                .modes
                .remove(&gone.name);
        }
        let mut failures = Vec::new();
        for iface in self.config.interfaces.clone() {
            if let Err(e) = self.attach_one(&iface) {
                failures.push(format!("{}: {e:#}", iface.name));
            }
        }
        {
            let mut known = self.known.lock().expect("not poisoned");
            known.desired_sysctls = self.config.sysctls.clone();
        }
        *self.wanted.lock().expect("not poisoned") = self
            .config
            .interfaces
            .iter()
            .map(|i| i.name.clone())
            .collect();
        if !failures.is_empty() {
            bail!("cannot attach {}", failures.join("; "));
        }
        Ok(())
    }

    /// Attaches (or adopts and updates) one interface. A missing interface
    /// is not an error: it is attached when it appears.
    pub(super) fn attach_one(&mut self, iface: &Interface) -> anyhow::Result<()> {
        let layout = &self.options.layout;
        let index = attach::if_index(&iface.name);
        if index == 0 {
            warn!(
                "{} does not exist (yet); it is attached when it appears",
                iface.name
            );
            self.ifindex.insert(iface.name.clone(), 0);
            return Ok(());
        }
        let before = nic::channels(&iface.name).ok();
        let policy = FloodPolicy {
            dry_run: iface.dry_run,
            ..self.config.flood.clone()
        };
        match attach::attach(layout, &iface.name, iface.mode, &policy, iface.replace)? {
            Attached::New(used) => {
                info!("attached {} ({used} mode)", iface.name);
                for w in nic::warnings(&iface.name, iface.mode, used, before) {
                    warn!("{w}");
                }
                self.known
                    .lock()
                    .expect("not poisoned")
                    .modes
                    .insert(iface.name.clone(), used.to_string());
            }
            Attached::Already => {
                info!(
                    "{} was already attached: adopted, settings updated",
                    iface.name
                );
                self.known
                    .lock()
                    .expect("not poisoned")
                    .modes
                    .entry(iface.name.clone())
                    .or_insert_with(|| "adopted".into());
            }
        }
        self.ifindex.insert(iface.name.clone(), index);
        Ok(())
    }

    /// Makes the lists' config entries match the config. The entries the
    /// config put there before are known from the state directory, so a
    /// restarted daemon removes what left the config while it was down.
    pub(super) fn sync_lists(&self) -> anyhow::Result<()> {
        Entries::new(&self.options.layout, &self.options.state)
            .sync_config(&self.config.block, &self.config.allow)
    }
}

/// Carries the lists of older map layouts (pins an earlier synguard left)
/// into this one, once per older layout: an upgrade keeps what operators
/// and the daemon had blocked and allowed. A marker in the state directory
/// records each import, so entries removed afterwards stay removed. The
/// caller holds the state lock.
fn import_older_lists(layout: &PinLayout, state: &StateDir) {
    let older = layout
        .other_layouts()
        .unwrap_or_default()
        .into_iter()
        .filter(|l| l.version() < synguard_common::MAP_LAYOUT_VERSION);
    for older in older {
        let marker = state
            .path()
            .join(format!("lists-imported-from-v{}", older.version()));
        if marker.exists() {
            continue;
        }
        let imported = ListMaps::open(layout).and_then(|mut maps| maps.import(&older, unix_now()));
        match imported {
            Ok(counts) => {
                for (list, n) in &counts {
                    info!(
                        "{n} entries of the {} carried over from map layout v{}",
                        list.name(),
                        older.version()
                    );
                }
                if let Err(e) = state.write_atomic(&marker, b"") {
                    warn!("recording the import from v{}: {e}", older.version());
                }
                // Shared entries are counted per entry from this layout on.
                if let Err(e) = Entries::new(layout, state).count_fleet() {
                    warn!("counting the shared entries carried over: {e}");
                }
            }
            Err(e) => warn!(
                "the lists of map layout v{} could not be carried over: {e}",
                older.version()
            ),
        }
    }
}
