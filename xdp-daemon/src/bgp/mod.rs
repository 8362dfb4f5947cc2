//! Beyond one node, through BGP: synguard drives a BGP speaker of the
//! operator's (GoBGP, see `gobgp`; never BGP of its own) to escalate a flood
//! the node cannot absorb to its upstream (FlowSpec, then RTBH), to push
//! blocklist entries upstream, and to share the blocklist with the fleet
//! through a route reflector.
//!
//! The daemon owns one [`Bgp`] and calls [`Bgp::tick`] once a second with
//! the state lock held. Each tick works out what should be announced (the
//! ladder's rules, the entries marked `--share` or `--upstream`), passes it
//! through the guard rails, and makes the speaker carry exactly that: it
//! reads back what the speaker carries with synguard's marker community at
//! start and after any failure, so a restarted daemon withdraws what a
//! crashed one left. It also installs the fleet's routes in the blocklist
//! (origin `bgp`) and removes them when they are withdrawn.
mod announcement;
pub mod config;
mod fleet;
pub mod gobgp;
pub mod ladder;
pub mod load;
pub mod metrics;
mod status;

pub use self::{
    announcement::{Announcement, Kind},
    status::{Announced, Event, Refused, Status},
};

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{Arc, Mutex},
    time::Instant,
};

use ipnet::IpNet;
use tracing::{error, info, warn};

use self::{
    config::BgpConfig,
    gobgp::Gobgp,
    ladder::{Ladder, Level, Timing},
    load::Load,
};
use crate::{
    config::Config,
    lists::{List, ListMaps},
    pins::PinLayout,
    state::{StateDir, unix_now},
};

/// How many events `status` keeps.
const RECENT: usize = 20;
/// Sessions are read every this many ticks.
const SESSION_EVERY: u64 = 5;
/// What the speaker carries is read back every this many ticks, so a
/// gobgpd restarted between two calls (it starts with an empty RIB) gets
/// synguard's routes again.
const RESYNC_EVERY: u64 = 10;

pub struct Bgp {
    config: BgpConfig,
    speaker: Gobgp,
    /// What the speaker carries for synguard, with since when.
    announced: BTreeMap<Announcement, u64>,
    /// Whether `announced` was read from the speaker (false at start and
    /// after a failed call).
    in_sync: bool,
    ladder: Ladder,
    load: Load,
    clock: Instant,
    ticks: u64,
    status: Arc<Mutex<Status>>,
    /// Refusals, each logged once while it holds.
    said: SaidOnce,
    saved: Vec<u8>,
}

impl Bgp {
    pub fn new(config: BgpConfig) -> Bgp {
        let speaker = Gobgp::new(config.gobgp.clone(), &config.api);
        let status = Status {
            speaker: config.api.clone(),
            dry_run: config.dry_run,
            ..Status::default()
        };
        info!(
            "bgp: driving gobgpd at {}{}",
            config.api,
            if config.dry_run {
                " (dry run: announcing nothing)"
            } else {
                ""
            }
        );
        Bgp {
            config,
            speaker,
            announced: BTreeMap::new(),
            in_sync: false,
            ladder: Ladder::default(),
            load: Load::default(),
            clock: Instant::now(),
            ticks: 0,
            status: Arc::new(Mutex::new(status)),
            said: SaidOnce::default(),
            saved: Vec::new(),
        }
    }

    /// Shared with the metrics collector.
    pub fn status(&self) -> Arc<Mutex<Status>> {
        self.status.clone()
    }

    /// Takes a reloaded `[bgp]` section; the next tick applies it.
    pub fn reconfigure(&mut self, config: BgpConfig) {
        if config.api != self.config.api || config.marker != self.config.marker {
            self.in_sync = false;
        }
        let mut config = config;
        if config.dry_run != self.config.dry_run {
            // Switching mid-run would leave real routes behind a dry run,
            // or count a dry run's as sent.
            warn!("bgp: dry_run changed: it takes effect at the next restart");
            config.dry_run = self.config.dry_run;
        }
        self.speaker = Gobgp::new(config.gobgp.clone(), &config.api);
        self.status.lock().expect("not poisoned").speaker = config.api.clone();
        self.config = config;
    }

    /// Once a second, with the state lock held.
    pub fn tick(&mut self, layout: &PinLayout, state: &StateDir, config: &Config) {
        self.ticks += 1;
        let allow = list_nets(layout, List::Allow);
        let mut wanted = self.escalation(layout, config);
        wanted.extend(self.marked_in_blocklist(layout, state));
        let (desired, refused) = self.guard(wanted, &allow);
        for r in &refused {
            let line = format!("{}: {}", r.what, r.why);
            if self.said.say(&line) {
                warn!("bgp: not announced: {line}");
            }
        }
        self.status.lock().expect("not poisoned").refused = refused;

        if self.ticks.is_multiple_of(RESYNC_EVERY) {
            self.in_sync = false;
        }
        if self.sync_speaker() {
            self.converge(&desired);
        }
        self.sync_fleet(layout, state, &allow);
        if self.ticks % SESSION_EVERY == 1 {
            match self.speaker.sessions() {
                Ok(sessions) => {
                    let mut status = self.status.lock().expect("not poisoned");
                    for s in &sessions {
                        let before = status.sessions.iter().find(|b| b.peer == s.peer);
                        if before.is_none_or(|b| b.established != s.established) {
                            info!(
                                "bgp: session with {} (AS{}) {}{}",
                                s.peer,
                                s.asn,
                                if s.established {
                                    "established"
                                } else {
                                    "not established"
                                },
                                if s.established && s.flowspec.is_empty() {
                                    "; it negotiated no FlowSpec family: FlowSpec rules do not reach it"
                                } else {
                                    ""
                                }
                            );
                        }
                    }
                    status.sessions = sessions;
                }
                Err(e) => self.speaker_failed(&e.to_string()),
            }
        }
        self.said.next_tick();
        self.save(state);
    }

    /// The ladder's announcements for this second.
    fn escalation(&mut self, layout: &PinLayout, config: &Config) -> Vec<Announcement> {
        let Some(e) = &self.config.escalation else {
            return Vec::new();
        };
        let interfaces: Vec<String> = config.interfaces.iter().map(|i| i.name.clone()).collect();
        let why = self
            .load
            .overloaded(layout, &interfaces, e.capacity_syn_pps, e.nic_drops_pps);
        let before = self.ladder.level();
        let timing = Timing {
            sustain: e.sustain,
            rtbh: e.rtbh.then_some(e.rtbh_after),
            hold_down: e.hold_down,
        };
        let level = self
            .ladder
            .step(self.clock.elapsed().as_secs(), why.is_some(), timing);
        if level != before {
            let reason = why
                .clone()
                .unwrap_or_else(|| "the overload ended and the hold-down passed".into());
            info!(
                "bgp: escalation {} -> {}: {reason}",
                before.name(),
                level.name()
            );
        }
        {
            let mut status = self.status.lock().expect("not poisoned");
            status.level = level;
            status.overload = why;
        }
        let mut out = Vec::new();
        for &target in &e.targets {
            let dst = IpNet::from(target);
            if level >= Level::Flowspec {
                out.push(Announcement::Flowspec {
                    dst,
                    ports: config.flood.ports.clone(),
                    action: e.action,
                });
            }
            if level >= Level::Rtbh {
                out.push(Announcement::Rtbh {
                    dst,
                    community: e.blackhole,
                });
            }
        }
        out
    }

    /// Blocklist entries marked `--share` or `--upstream`.
    fn marked_in_blocklist(&mut self, layout: &PinLayout, state: &StateDir) -> Vec<Announcement> {
        let meta = state.list_meta().unwrap_or_default();
        let blocked: BTreeSet<IpNet> = list_nets(layout, List::Block).into_iter().collect();
        let mut out = Vec::new();
        for (net, m) in &meta.block {
            if !blocked.contains(net) {
                continue;
            }
            if m.share {
                match &self.config.fleet {
                    Some(fleet) => out.push(Announcement::Share {
                        net: *net,
                        community: fleet.community,
                    }),
                    None => {
                        let line = format!("share {net}: [bgp.fleet] is not enabled");
                        if self.said.say(&line) {
                            warn!("bgp: not announced: {line}");
                        }
                    }
                }
            }
            if m.upstream {
                out.push(Announcement::Upstream { src: *net });
            }
        }
        out
    }

    /// Keeps what may be announced, in order, and says why the rest may not.
    fn guard(
        &self,
        wanted: Vec<Announcement>,
        allow: &[IpNet],
    ) -> (Vec<Announcement>, Vec<Refused>) {
        let mut kept: Vec<Announcement> = Vec::new();
        let mut refused = Vec::new();
        for a in wanted {
            let p = a.prefix();
            let shortest = if p.addr().is_ipv4() {
                self.config.shortest_v4
            } else {
                self.config.shortest_v6
            };
            let why = if let Some(x) = allow.iter().find(|x| overlaps(x, &p)) {
                Some(format!("{p} overlaps the allowlisted {x}"))
            } else if let Some(x) = self.config.protected.iter().find(|x| overlaps(x, &p)) {
                Some(format!("{p} overlaps the protected prefix {x}"))
            } else if matches!(a.kind(), Kind::Share | Kind::Upstream) && p.prefix_len() < shortest
            {
                Some(format!(
                    "{p} is wider than /{shortest} (shortest_v{})",
                    if p.addr().is_ipv4() { 4 } else { 6 }
                ))
            } else if kept.len() >= self.config.max_announcements {
                Some(format!(
                    "max_announcements ({}) reached",
                    self.config.max_announcements
                ))
            } else {
                None
            };
            match why {
                Some(why) => refused.push(Refused {
                    what: a.to_string(),
                    why,
                }),
                None if kept.contains(&a) => {}
                None => kept.push(a),
            }
        }
        (kept, refused)
    }

    /// Reads what the speaker carries for synguard, unless known. False:
    /// the speaker cannot be reached now.
    fn sync_speaker(&mut self) -> bool {
        if self.in_sync || self.config.dry_run {
            return true;
        }
        match self.speaker.announced(self.config.marker) {
            Ok(found) => {
                if !found.is_empty() {
                    info!(
                        "bgp: the speaker carries {} route(s) with synguard's marker {}: {}",
                        found.len(),
                        self.config.marker,
                        found
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join("; ")
                    );
                }
                let now = unix_now();
                self.announced = found
                    .into_iter()
                    .map(|a| {
                        let since = self.announced.get(&a).copied().unwrap_or(now);
                        (a, since)
                    })
                    .collect();
                self.in_sync = true;
                self.status.lock().expect("not poisoned").speaker_error = None;
                true
            }
            Err(e) => {
                self.speaker_failed(&e.to_string());
                false
            }
        }
    }

    fn speaker_failed(&mut self, why: &str) {
        let mut status = self.status.lock().expect("not poisoned");
        if status.speaker_error.as_deref() != Some(why) {
            error!("bgp: {why}");
        }
        status.speaker_error = Some(why.to_string());
        self.in_sync = false;
    }

    /// Withdraws what is no longer desired, then announces what is new.
    fn converge(&mut self, desired: &[Announcement]) {
        let stale: Vec<Announcement> = self
            .announced
            .keys()
            .filter(|a| !desired.contains(a))
            .cloned()
            .collect();
        for a in stale {
            if self.change(&a, false) {
                self.announced.remove(&a);
            }
        }
        for a in desired {
            if !self.announced.contains_key(a) && self.change(a, true) {
                self.announced.insert(a.clone(), unix_now());
            }
        }
        let mut status = self.status.lock().expect("not poisoned");
        status.announced = self
            .announced
            .iter()
            .map(|(a, &since)| Announced {
                kind: a.kind().name().into(),
                what: a.to_string(),
                since,
            })
            .collect();
    }

    /// Announces (`add`) or withdraws one route; logs and counts it.
    fn change(&mut self, a: &Announcement, add: bool) -> bool {
        let verb = if add { "announce" } else { "withdraw" };
        let dry = self.config.dry_run;
        if !dry {
            let result = if add {
                self.speaker.announce(a, self.config.marker)
            } else {
                self.speaker.withdraw(a, self.config.marker)
            };
            if let Err(e) = result {
                self.speaker_failed(&format!("cannot {verb} {a}: {e}"));
                return false;
            }
        }
        let change = if dry {
            format!("would {verb}")
        } else {
            verb.to_string()
        };
        info!("bgp: {change} {a}");
        let mut status = self.status.lock().expect("not poisoned");
        *status
            .changes
            .entry(format!("{} {verb}", a.kind().name()))
            .or_default() += 1;
        status.recent.push(Event {
            at: unix_now(),
            change,
            what: a.to_string(),
        });
        let excess = status.recent.len().saturating_sub(RECENT);
        status.recent.drain(..excess);
        true
    }

    /// A clean stop, with the state lock held: withdraws everything
    /// (unless `withdraw_on_stop = false`), and takes the fleet's entries
    /// out of the blocklist unless protection stays in place.
    pub fn stop(&mut self, layout: &PinLayout, state: &StateDir, keep_attached: bool) {
        if self.config.withdraw_on_stop {
            if self.sync_speaker() {
                self.converge(&[]);
            }
        } else if !self.announced.is_empty() {
            info!(
                "bgp: withdraw_on_stop = false: {} route(s) stay announced",
                self.announced.len()
            );
        }
        if !keep_attached {
            self.install_fleet(layout, state, &BTreeMap::new());
        }
        let _ = std::fs::remove_file(state.path().join(Status::FILE));
    }

    fn save(&mut self, state: &StateDir) {
        let status = self.status.lock().expect("not poisoned").clone();
        let Ok(json) = serde_json::to_vec_pretty(&status) else {
            return;
        };
        if json != self.saved {
            if let Err(e) = state.write_atomic(&state.path().join(Status::FILE), &json) {
                warn!("bgp: writing its status: {e}");
            }
            self.saved = json;
        }
    }
}

/// Lines logged once while they hold: a line is said when it first shows,
/// and again only after a tick without it.
#[derive(Debug, Default)]
struct SaidOnce {
    before: BTreeSet<String>,
    now: BTreeSet<String>,
}

impl SaidOnce {
    /// Records `line` for this tick; true if it was not there last tick.
    fn say(&mut self, line: &str) -> bool {
        self.now.insert(line.to_string());
        !self.before.contains(line)
    }

    fn next_tick(&mut self) {
        self.before = std::mem::take(&mut self.now);
    }
}

/// Whether one prefix holds the other.
fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

fn list_nets(layout: &PinLayout, list: List) -> Vec<IpNet> {
    ListMaps::open(layout)
        .and_then(|maps| maps.entries(list))
        .map(|e| e.into_iter().map(|(n, _)| n).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests;
