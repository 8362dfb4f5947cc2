//! The data path in the daemon's log (docs/design.md#logs): its aya-log
//! records (rare events), read once a second from each attached
//! program's `AYA_LOGS` ring and written with the interface's name (the
//! program is found through its pinned link, so one attached by the CLI,
//! or adopted after a restart, is read as well); and at debug level,
//! sampled per-packet decisions from a capture.
use std::{collections::BTreeMap, time::Duration};

use aya::programs::links::{FdLink, PinnedLink};
use aya_log::EbpfLogger;
use synguard_common::Reason;
use tracing::{debug, error, info, trace, warn};

use crate::{
    capture::{self, Capture},
    frames,
    pins::PinLayout,
};

/// A `log::Log` that turns one interface's records into tracing events.
struct Interface(String);

impl log::Log for Interface {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }

    fn log(&self, record: &log::Record) {
        let (iface, message) = (&self.0, record.args());
        match record.level() {
            log::Level::Error => error!("{iface}: {message}"),
            log::Level::Warn => warn!("{iface}: {message}"),
            log::Level::Info => info!("{iface}: {message}"),
            log::Level::Debug => debug!("{iface}: {message}"),
            log::Level::Trace => trace!("{iface}: {message}"),
        }
    }

    fn flush(&self) {}
}

/// The readers of the attached programs' logs, by interface, with the
/// program id each reads.
#[derive(Default)]
pub(super) struct ProgramLogs {
    readers: BTreeMap<String, (u32, EbpfLogger<Interface>)>,
    /// Interfaces whose log cannot be read, said once.
    failed: BTreeMap<String, u32>,
}

/// The id of the program attached through an interface's pinned link.
fn program_id(layout: &PinLayout, iface: &str) -> Option<u32> {
    let link = PinnedLink::from_pin(layout.link(iface)).ok()?;
    FdLink::from(link).info().ok().map(|i| i.program_id())
}

impl ProgramLogs {
    /// Writes what each attached program logged since the last call.
    pub(super) fn forward(&mut self, layout: &PinLayout) {
        let attached = layout.attached().unwrap_or_default();
        self.readers.retain(|iface, _| attached.contains(iface));
        for iface in attached {
            let Some(id) = program_id(layout, &iface) else {
                continue;
            };
            if self.readers.get(&iface).is_none_or(|(read, _)| *read != id)
                && self.failed.get(&iface) != Some(&id)
            {
                match EbpfLogger::init_from_id_with_logger(id, Interface(iface.clone())) {
                    Ok(logger) => {
                        self.readers.insert(iface.clone(), (id, logger));
                    }
                    Err(e) => {
                        warn!("{iface}: cannot read the XDP program's log: {e}");
                        self.failed.insert(iface.clone(), id);
                    }
                }
            }
            if let Some((_, logger)) = self.readers.get_mut(&iface) {
                logger.flush();
            }
        }
    }
}

/// Per-packet decisions in the daemon's log at `log_level = "debug"`:
/// read from a capture of every verdict, one packet in
/// [`DECISION_SAMPLE`], at most [`DECISIONS_PER_SEC`] lines a second per
/// interface. The data path pays for it what any capture costs; nothing
/// when it is off. A running `synguard capture` or `top` has the
/// interface's capture, and the daemon waits for it to end.
#[derive(Default)]
pub(super) struct Decisions {
    captures: BTreeMap<String, Capture>,
}

/// One packet in this many is looked at.
pub const DECISION_SAMPLE: u32 = 100;
/// Decision lines a second per interface, at most.
pub const DECISIONS_PER_SEC: usize = 100;

impl Decisions {
    /// Logs the decisions captured since the last call (at debug level),
    /// starting or renewing each interface's capture; `on` false stops
    /// them all.
    pub(super) fn forward(&mut self, layout: &PinLayout, on: bool) {
        if !on {
            self.captures.clear();
            return;
        }
        let attached = layout.attached().unwrap_or_default();
        self.captures.retain(|iface, _| attached.contains(iface));
        for iface in attached {
            if !self.captures.contains_key(&iface) {
                if capture::running(layout, &iface) {
                    continue;
                }
                let every = capture::slots(&Reason::ALL);
                match Capture::start(layout, &iface, every, DECISION_SAMPLE) {
                    Ok(c) => {
                        self.captures.insert(iface.clone(), c);
                    }
                    Err(e) => {
                        debug!("{iface}: no decision log: {e}");
                        continue;
                    }
                }
            }
            let Some(capture) = self.captures.get_mut(&iface) else {
                continue;
            };
            let packets = capture
                .renew()
                .and_then(|()| capture.next_batch(Duration::ZERO));
            match packets {
                Ok(packets) => {
                    for p in packets.iter().take(DECISIONS_PER_SEC) {
                        debug!(
                            "{iface}: decision: {} {} {}",
                            p.verdict,
                            p.reason.name(),
                            frames::describe(&p.data)
                        );
                    }
                }
                Err(e) => {
                    debug!("{iface}: decision log stopped: {e}");
                    self.captures.remove(&iface);
                }
            }
        }
    }
}
