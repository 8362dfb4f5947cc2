//! What the BGP side is doing, for `synguard status` and the metrics.
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{gobgp::Session, ladder::Level};
use crate::state::StateDir;

/// One announcement or withdrawal, for `synguard status`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Unix seconds.
    pub at: u64,
    /// "announce" or "withdraw" (prefixed "would " in a dry run).
    pub change: String,
    pub what: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Announced {
    pub kind: String,
    pub what: String,
    /// Unix seconds.
    pub since: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refused {
    pub what: String,
    pub why: String,
}

/// What the BGP side is doing: written to `bgp.json` in the state
/// directory for `synguard status`, and read by the metrics collector.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    pub speaker: String,
    pub dry_run: bool,
    /// Why the speaker could not be driven at the last try.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speaker_error: Option<String>,
    pub level: Level,
    /// Why the node counts as overloaded now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overload: Option<String>,
    /// What the speaker carries for synguard (in a dry run: would carry).
    pub announced: Vec<Announced>,
    /// What the guard rails kept from being announced.
    pub refused: Vec<Refused>,
    pub sessions: Vec<Session>,
    /// Blocklist entries installed from the fleet.
    pub fleet_entries: usize,
    /// Announcements and withdrawals since start, by "kind change".
    pub changes: BTreeMap<String, u64>,
    /// The latest announcements and withdrawals, newest last.
    pub recent: Vec<Event>,
}

impl Status {
    pub const FILE: &'static str = "bgp.json";

    /// The running daemon's BGP status, if it has one.
    pub fn read(state: &StateDir) -> Option<Status> {
        let bytes = std::fs::read(state.path().join(Status::FILE)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }
}
