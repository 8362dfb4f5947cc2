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
    collections::BTreeMap,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::{Context, bail};
use sd_notify::NotifyState;
use tokio::{
    io::unix::{AsyncFd, AsyncFdReadyGuard},
    signal::unix::{SignalKind, signal},
};
use tracing::{error, info, warn};

use crate::{
    bgp::{Bgp, metrics::BgpCollector},
    config::Config,
    features, host,
    metrics::{self, Known},
    pins::PinLayout,
    state::{DaemonStatus, StateDir, unix_now},
};

mod apply;
mod decide;
mod logs;
mod stop;
mod upkeep;

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
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("synguard={level}")));
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
    /// The data path's logs, forwarded to ours.
    logs: logs::ProgramLogs,
    /// Its decisions, at log_level = "debug".
    decisions: logs::Decisions,
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

/// Fails if another daemon is running with this state directory.
fn refuse_a_second_daemon(state: &StateDir) -> anyhow::Result<()> {
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
    Ok(())
}

/// Address and link changes, over rtnetlink: they reach the data path at
/// once; the tick catches the rest (AnyIP routes added by hand) within a
/// second.
fn follow_addresses() -> Option<AsyncFd<host::Events>> {
    // SAFETY: `Events` owns its socket, which is neither replaced nor
    // closed while the AsyncFd holds it.
    match host::Events::subscribe()
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
            logs: logs::ProgramLogs::default(),
            decisions: logs::Decisions::default(),
            bgp: None,
        }
    }

    async fn run(mut self) -> anyhow::Result<()> {
        let state = self.options.state.clone();
        state
            .ensure()
            .with_context(|| format!("creating the state directory {}", state.path().display()))?;
        refuse_a_second_daemon(&state)?;
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

        let server = self.serve_metrics().await?;
        self.save_status();
        notify(&[NotifyState::Ready, NotifyState::Status(&self.summary())]);
        info!("ready: {}", self.summary());
        // What the kernel offers, for /metrics: probed once, off the
        // start-up path (the trial load runs the verifier).
        let known = self.known.clone();
        let probe = tokio::task::spawn_blocking(features::Offers::probe);
        tokio::spawn(async move {
            match probe.await {
                Ok(offers) => known.lock().expect("not poisoned").kernel = Some(offers),
                Err(e) => warn!("probing what the kernel offers: {e}"),
            }
        });

        let mut hup = signal(SignalKind::hangup())?;
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let watchdog = sd_notify::watchdog_enabled();
        let period = watchdog
            .map(|w| (w / 2).min(Duration::from_secs(1)))
            .unwrap_or(Duration::from_secs(1));
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let events = follow_addresses();
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

    /// Serves `/metrics` and `/healthz`, if the config says where.
    async fn serve_metrics(
        &self,
    ) -> anyhow::Result<Option<tokio::task::JoinHandle<std::io::Result<()>>>> {
        let Some(addr) = self.config.metrics_listen else {
            return Ok(None);
        };
        let listener = metrics::bind(addr)
            .await
            .with_context(|| format!("serving metrics on {addr}"))?;
        info!("serving /metrics and /healthz on http://{addr}");
        let mut registry = metrics::registry(
            self.options.layout.clone(),
            self.known.clone(),
            self.wanted.clone(),
        );
        registry.register_collector(Box::new(metrics::EntryDropsCollector {
            layout: self.options.layout.clone(),
            state: self.options.state.clone(),
        }));
        if let Some(bgp) = &self.bgp {
            registry.register_collector(Box::new(BgpCollector(bgp.status())));
        }
        Ok(Some(tokio::spawn(metrics::serve(
            listener,
            registry,
            self.options.layout.clone(),
            self.wanted.clone(),
        ))))
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
