//! `synguard run`: the service. It applies the config (sysctls, lists,
//! interfaces), serves `/metrics`, and keeps things current: expired list
//! entries go, sources over budget are blocked if the config says so, an
//! interface that comes back is attached again, SIGHUP reloads.
//!
//! Everything it sets up is pinned, so a crash or `kill -9` leaves the
//! program attached and dropping, and the next daemon adopts it. A clean
//! stop (SIGTERM/SIGINT) detaches the config's interfaces and restores the
//! sysctls, unless `keep_attached_on_stop` says to leave protection in
//! place. systemd: `Type=notify` (READY once attached, RELOADING, STOPPING,
//! watchdog pings when `WatchdogSec=` is set).
use std::{
    collections::{BTreeMap, BTreeSet},
    path::PathBuf,
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::{Context, bail};
use ipnet::IpNet;
use sd_notify::NotifyState;
use tokio::{
    io::unix::{AsyncFd, AsyncFdReadyGuard},
    signal::unix::{SignalKind, signal},
};
use tracing::{error, info, warn};

use crate::{
    attach::{self, Attached, Detached},
    bgp::{Bgp, metrics::BgpCollector},
    config::{Config, Interface},
    flood, host,
    lists::{List, ListMaps},
    metrics::{self, Known},
    nic,
    pins::PinLayout,
    state::{DaemonStatus, EntryMeta, Origin, StateDir, unix_now},
    sysctl,
};

pub struct Options {
    pub config_path: PathBuf,
    pub layout: PinLayout,
    pub state: StateDir,
}

/// Runs the service until SIGTERM or SIGINT.
pub fn run(options: Options) -> anyhow::Result<()> {
    let config = Config::load(&options.config_path)?;
    init_tracing(&config.log_level);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(Daemon::new(options, config).run())
}

fn init_tracing(level: &str) {
    // RUST_LOG, when set, overrides the config's log_level.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!("synguard={level},xdp_daemon={level}"))
    });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .try_init();
}

struct Daemon {
    options: Options,
    config: Config,
    known: Arc<Mutex<Known>>,
    wanted: Arc<Mutex<Vec<String>>>,
    /// The interface index each config interface had when attached (0: it
    /// was missing), to notice an interface deleted and created again.
    ifindex: BTreeMap<String, u32>,
    started: u64,
    last_reload_error: Option<String>,
    /// Per interface, what the last host sync left out of the maps (said
    /// once, not every second).
    host_left_out: BTreeMap<String, Vec<String>>,
    /// The BGP side, when the config has `[bgp]`.
    bgp: Option<Bgp>,
}

/// Waits until the rtnetlink events socket is readable; forever without one.
async fn readable(
    events: Option<&AsyncFd<host::Events>>,
) -> std::io::Result<AsyncFdReadyGuard<'_, host::Events>> {
    match events {
        Some(events) => events.readable().await,
        None => std::future::pending().await,
    }
}

fn notify(states: &[NotifyState]) {
    // Outside systemd (no NOTIFY_SOCKET) this does nothing.
    if let Err(e) = sd_notify::notify(states) {
        warn!("telling systemd: {e}");
    }
}

impl Daemon {
    fn new(options: Options, config: Config) -> Self {
        Daemon {
            options,
            config,
            known: Arc::default(),
            wanted: Arc::default(),
            ifindex: BTreeMap::new(),
            started: unix_now(),
            last_reload_error: None,
            host_left_out: BTreeMap::new(),
            bgp: None,
        }
    }

    async fn run(mut self) -> anyhow::Result<()> {
        let state = self.options.state.clone();
        state
            .ensure()
            .with_context(|| format!("creating the state directory {}", state.path().display()))?;
        if let Some(other) = state.daemon_status()?
            && other.alive()
            && other.pid != std::process::id()
        {
            bail!(
                "another synguard daemon (pid {}) is running with {}; stop it first",
                other.pid,
                other.config.display()
            );
        }
        for other in self.options.layout.other_versions().unwrap_or_default() {
            warn!(
                "{} holds pins of another map layout (from another synguard version); they are \
                 left alone, and not read but for their lists, which an older layout's carry \
                 over once: detach with that version, or remove the directory",
                other.display()
            );
        }
        info!(
            "starting with {} (pins under {}, state in {})",
            self.options.config_path.display(),
            self.options.layout.root().display(),
            state.path().display()
        );
        if let Err(e) = self.apply(None) {
            self.undo_failed_start();
            return Err(e).context("applying the config");
        }
        self.bgp = self.config.bgp.clone().map(Bgp::new);

        let server = match self.config.metrics_listen {
            Some(addr) => {
                let listener = metrics::bind(addr)
                    .await
                    .with_context(|| format!("serving metrics on {addr}"))?;
                info!("serving /metrics and /healthz on http://{addr}");
                let mut registry =
                    metrics::registry(self.options.layout.clone(), self.known.clone());
                if let Some(bgp) = &self.bgp {
                    registry.register_collector(Box::new(BgpCollector(bgp.status())));
                }
                Some(tokio::spawn(metrics::serve(
                    listener,
                    registry,
                    self.options.layout.clone(),
                    self.wanted.clone(),
                )))
            }
            None => None,
        };
        self.save_status();
        notify(&[NotifyState::Ready, NotifyState::Status(&self.summary())]);
        info!("ready: {}", self.summary());

        let mut hup = signal(SignalKind::hangup())?;
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let watchdog = sd_notify::watchdog_enabled();
        let period = watchdog
            .map(|w| (w / 2).min(Duration::from_secs(1)))
            .unwrap_or(Duration::from_secs(1));
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Address and link changes reach the data path at once; the tick
        // catches the rest (AnyIP routes added by hand) within a second.
        // SAFETY: `Events` owns its socket, which is neither replaced nor
        // closed while the AsyncFd holds it.
        let events = match host::Events::subscribe()
            .and_then(|events| unsafe { AsyncFd::register(events) }.map_err(Into::into))
        {
            Ok(events) => Some(events),
            Err(e) => {
                warn!(
                    "cannot follow address changes over rtnetlink ({e}); they reach the data \
                     path within a second instead"
                );
                None
            }
        };
        loop {
            tokio::select! {
                ready = readable(events.as_ref()) => {
                    if let Ok(mut guard) = ready {
                        guard.get_inner().drain();
                        guard.clear_ready();
                    }
                    self.sync_hosts();
                }
                _ = hup.recv() => self.reload(),
                _ = term.recv() => break,
                _ = int.recv() => break,
                _ = tick.tick() => {
                    if watchdog.is_some() {
                        notify(&[NotifyState::Watchdog]);
                    }
                    self.housekeeping();
                }
            }
        }
        notify(&[NotifyState::Stopping]);
        if let Some(server) = server {
            server.abort();
        }
        self.stop();
        Ok(())
    }

    fn summary(&self) -> String {
        let attached = self.options.layout.attached().unwrap_or_default();
        format!(
            "protecting {} interface(s): {}",
            attached.len(),
            if attached.is_empty() {
                "none".to_string()
            } else {
                attached.join(", ")
            }
        )
    }

    /// Makes the system match `self.config`; `previous` is the config being
    /// replaced (None at start-up).
    fn apply(&mut self, previous: Option<&Config>) -> anyhow::Result<()> {
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
        for gone in old
            .iter()
            .filter(|o| !self.config.interfaces.iter().any(|i| i.name == o.name))
        {
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
    fn attach_one(&mut self, iface: &Interface) -> anyhow::Result<()> {
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
        match attach::attach(
            layout,
            &iface.name,
            iface.mode,
            &self.config.flood,
            iface.replace,
        )? {
            Attached::New(used) => {
                info!("attached {} ({used} mode)", iface.name);
                for w in nic::warnings(&iface.name, iface.mode, used) {
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
    fn sync_lists(&self) -> anyhow::Result<()> {
        let state = &self.options.state;
        let layout = &self.options.layout;
        let mut meta = state.list_meta()?;
        for (list, desired, recorded) in [
            (List::Block, &self.config.block, &mut meta.block),
            (List::Allow, &self.config.allow, &mut meta.allow),
        ] {
            let previous: Vec<IpNet> = recorded
                .iter()
                .filter(|(_, m)| m.origin == Origin::Config)
                .map(|(n, _)| *n)
                .collect();
            let outcome = ListMaps::open(layout)
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
        state.save_list_meta(&meta)?;
        Ok(())
    }

    fn reload(&mut self) {
        info!("SIGHUP: reloading {}", self.options.config_path.display());
        notify(&[
            NotifyState::Reloading,
            NotifyState::monotonic_usec_now().unwrap_or(NotifyState::MonotonicUsec(0)),
        ]);
        match Config::load(&self.options.config_path) {
            Err(e) => {
                error!("reload refused, the running config stays: {e}");
                self.last_reload_error = Some(e.to_string());
            }
            Ok(new) => {
                if new.metrics_listen != self.config.metrics_listen {
                    warn!("metrics.listen changed: it takes effect at the next restart");
                }
                if new.bgp.is_some() != self.config.bgp.is_some() {
                    warn!("[bgp] turned on or off: it takes effect at the next restart");
                }
                if let (Some(bgp), Some(section)) = (&mut self.bgp, &new.bgp) {
                    bgp.reconfigure(section.clone());
                }
                if new.log_level != self.config.log_level {
                    warn!("log_level changed: it takes effect at the next restart");
                }
                let old = std::mem::replace(&mut self.config, new);
                match self.apply(Some(&old)) {
                    Ok(()) => {
                        info!("reloaded: {}", self.summary());
                        self.last_reload_error = None;
                    }
                    Err(e) => {
                        error!("reload applied in part: {e:#}");
                        self.last_reload_error = Some(format!("{e:#}"));
                    }
                }
            }
        }
        self.save_status();
        notify(&[NotifyState::Ready, NotifyState::Status(&self.summary())]);
    }

    /// Writes what makes a SYN the host's (MAC, VLANs, local destinations)
    /// into the maps of every attached interface, as the namespace has it
    /// now.
    fn sync_hosts(&mut self) {
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
    fn housekeeping(&mut self) {
        self.sync_hosts();
        let layout = self.options.layout.clone();
        let state = self.options.state.clone();
        let Ok(_lock) = state.lock() else {
            warn!("cannot take the state lock; housekeeping skipped");
            return;
        };
        let now = unix_now();
        let mut expired_any = false;
        for list in [List::Block, List::Allow] {
            match ListMaps::open(&layout).and_then(|mut maps| maps.sweep_expired(list, now)) {
                Ok(gone) => {
                    for net in &gone {
                        info!("{net} expired from the {}", list.name());
                    }
                    expired_any |= !gone.is_empty();
                }
                Err(e) => warn!("sweeping the {}: {e}", list.name()),
            }
        }
        if expired_any && let Err(e) = prune_meta(&state, &layout) {
            warn!("updating list comments: {e}");
        }

        if let Some(duration) = self.config.block_over_budget {
            self.block_over_budget(&layout, &state, now, duration);
        }

        for iface in self.config.interfaces.clone() {
            let index = attach::if_index(&iface.name);
            let before = self.ifindex.get(&iface.name).copied().unwrap_or(0);
            if index == before {
                continue;
            }
            if index == 0 {
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
                if let Err(e) = attach::detach(&layout, &iface.name) {
                    warn!("clearing the pins of {}: {e}", iface.name);
                }
                self.ifindex.insert(iface.name.clone(), 0);
                continue;
            }
            // The interface was created (again): a link pinned for the old
            // one is defunct, so start afresh.
            if let Err(e) = attach::detach(&layout, &iface.name) {
                warn!("clearing the old pins of {}: {e}", iface.name);
            }
            match self.attach_one(&iface) {
                Ok(()) => info!("{} is back (index {index}): attached again", iface.name),
                Err(e) => error!("attaching {} again: {e:#}", iface.name),
            }
        }

        if let Some(bgp) = &mut self.bgp {
            bgp.tick(&layout, &state, &self.config);
        }
    }

    fn block_over_budget(
        &self,
        layout: &PinLayout,
        state: &StateDir,
        now: u64,
        duration: Duration,
    ) {
        let expires = now + duration.as_secs().max(1);
        for iface in layout.attached().unwrap_or_default() {
            let over = match flood::over_budget(layout, &iface) {
                Ok(over) if !over.is_empty() => over,
                Ok(_) => continue,
                Err(e) => {
                    warn!("reading sources over budget on {iface}: {e}");
                    continue;
                }
            };
            let nets: Vec<IpNet> = over.iter().map(|(n, _)| *n).collect();
            let mut meta = state.list_meta().unwrap_or_default();
            // An operator's entry keeps its expiry.
            let to_block: Vec<&(IpNet, u64)> = over
                .iter()
                .filter(|(net, _)| {
                    meta.block
                        .get(net)
                        .is_none_or(|m| m.origin == Origin::OverBudget)
                })
                .collect();
            let entries: Vec<(IpNet, u64)> =
                to_block.iter().map(|(net, _)| (*net, expires)).collect();
            let results = match ListMaps::open(layout) {
                Ok(mut maps) => maps.add_many(List::Block, &entries),
                Err(e) => {
                    warn!("opening the lists: {e}");
                    continue;
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
            if let Err(e) = state.save_list_meta(&meta) {
                warn!("saving list comments: {e}");
            }
            if let Err(e) = flood::forget_over_budget(layout, &iface, &nets) {
                warn!("clearing sources over budget on {iface}: {e}");
            }
        }
    }

    fn stop(&mut self) {
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
    fn undo_failed_start(&mut self) {
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

    fn save_status(&self) {
        let status = DaemonStatus {
            pid: std::process::id(),
            config: self.options.config_path.clone(),
            started: self.started,
            loaded: unix_now(),
            interfaces: self
                .config
                .interfaces
                .iter()
                .map(|i| i.name.clone())
                .collect(),
            sysctls: self.config.sysctls.clone(),
            metrics: self.config.metrics_listen.map(|a| a.to_string()),
            modes: self.known.lock().expect("not poisoned").modes.clone(),
            last_reload_error: self.last_reload_error.clone(),
        };
        if let Err(e) = self.options.state.save_daemon_status(&status) {
            warn!(
                "writing {}: {e}",
                self.options.state.status_path().display()
            );
        }
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
        .filter(|l| l.version() < xdp_common::MAP_LAYOUT_VERSION);
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
            }
            Err(e) => warn!(
                "the lists of map layout v{} could not be carried over: {e}",
                older.version()
            ),
        }
    }
}

/// Drops comments of entries no longer in the maps.
fn prune_meta(state: &StateDir, layout: &PinLayout) -> anyhow::Result<()> {
    let mut meta = state.list_meta()?;
    let maps = ListMaps::open(layout)?;
    let block: BTreeSet<IpNet> = maps
        .entries(List::Block)?
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    let allow: BTreeSet<IpNet> = maps
        .entries(List::Allow)?
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    meta.block.retain(|n, _| block.contains(n));
    meta.allow.retain(|n, _| allow.contains(n));
    state.save_list_meta(&meta)?;
    Ok(())
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
