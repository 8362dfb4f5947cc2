//! The `[bgp]` section of synguard.toml: which BGP speaker synguard drives,
//! the guard rails, the fleet blocklist and the escalation ladder. Parsed
//! on its own (the rest of the file is config.rs), with errors that name
//! the file, the line and the key like every other section.
use std::{fmt, net::IpAddr, ops::Range, path::PathBuf, str::FromStr, time::Duration};

use ipnet::IpNet;
use serde::{Deserialize, Deserializer, de};
use toml::Spanned;

use crate::config::{ConfigError, parse_cidr, parse_duration};

/// A BGP community, `ASN:value` (RFC 1997).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Community(pub u32);

/// RFC 7999's BLACKHOLE community.
pub const BLACKHOLE: Community = Community(0xFFFF_029A);

impl FromStr for Community {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            format!("{s:?} is not a community: write ASN:VALUE, each 0 to 65535 (e.g. 65001:100)")
        };
        let (high, low) = s.split_once(':').ok_or_else(bad)?;
        let high: u16 = high.trim().parse().map_err(|_| bad())?;
        let low: u16 = low.trim().parse().map_err(|_| bad())?;
        Ok(Community(u32::from(high) << 16 | u32::from(low)))
    }
}

impl fmt::Display for Community {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.0 >> 16, self.0 & 0xffff)
    }
}

/// What a FlowSpec rule asks the upstream to do with matching SYNs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FlowAction {
    /// traffic-rate (RFC 8955 7.3) in bytes per second: an IEEE float on
    /// the wire, so keep it well above a few SYNs' worth (64-74 bytes each).
    RateLimit { bytes_per_second: u32 },
    /// traffic-rate 0.
    Discard,
}

/// A validated `[bgp]` section.
#[derive(Clone, Debug, PartialEq)]
pub struct BgpConfig {
    /// The gobgpd API synguard drives, as `gobgp --target` takes it
    /// (`unix:///run/synguard-gobgp/api.sock`) or `host:port`.
    pub api: String,
    /// The gobgp client binary.
    pub gobgp: PathBuf,
    /// Log and count what would be announced or withdrawn; change nothing.
    pub dry_run: bool,
    /// Carried by everything synguard announces, so a restarted daemon
    /// finds its own routes in the speaker and withdraws the stale ones.
    pub marker: Community,
    /// Never announced, whatever asks (the allowlist is never announced
    /// either).
    pub protected: Vec<IpNet>,
    /// At most this many routes announced at once.
    pub max_announcements: usize,
    /// The shortest prefixes shared with the fleet, pushed upstream or
    /// installed from the fleet.
    pub shortest_v4: u8,
    pub shortest_v6: u8,
    /// Withdraw everything on a clean stop.
    pub withdraw_on_stop: bool,
    pub fleet: Option<Fleet>,
    pub escalation: Option<Escalation>,
}

/// The fleet blocklist: routes carrying `community`.
#[derive(Clone, Debug, PartialEq)]
pub struct Fleet {
    pub community: Community,
    /// At most this many fleet entries installed.
    pub max_entries: usize,
}

/// The escalation ladder: FlowSpec, then (if enabled) RTBH.
#[derive(Clone, Debug, PartialEq)]
pub struct Escalation {
    /// The destinations synguard may escalate for.
    pub targets: Vec<IpAddr>,
    /// SYN/s on an interface above which the node counts as overloaded
    /// (0: not used).
    pub capacity_syn_pps: u64,
    /// Frames dropped by the NIC or driver per second (rx_dropped +
    /// rx_missed + rx_fifo) above which the node counts as overloaded (0:
    /// not used).
    pub nic_drops_pps: u64,
    /// How long the overload lasts before FlowSpec is announced.
    pub sustain: Duration,
    pub action: FlowAction,
    /// Whether RTBH is ever announced.
    pub rtbh: bool,
    /// How long an overload outlasts the FlowSpec rule before RTBH.
    pub rtbh_after: Duration,
    pub blackhole: Community,
    /// How long after the overload ended everything is withdrawn.
    pub hold_down: Duration,
}

/// How a section's check turns a span of the file into an error.
type At<'a> = &'a dyn Fn(Range<usize>, String) -> ConfigError;

/// Parses the section; `at` makes an error at a span of the file.
pub fn parse(raw: &RawBgp, at: At) -> Result<Option<BgpConfig>, ConfigError> {
    if !raw.enabled {
        return Ok(None);
    }
    let api = api(raw, at)?;
    let max_announcements = *raw.max_announcements.get_ref();
    if !(1..=10_000).contains(&max_announcements) {
        return Err(at(
            raw.max_announcements.span(),
            "max_announcements must be 1 to 10000".into(),
        ));
    }
    let (v4, v6) = (*raw.shortest_v4.get_ref(), *raw.shortest_v6.get_ref());
    if v4 > 32 {
        return Err(at(
            raw.shortest_v4.span(),
            "shortest_v4 must be 0 to 32".into(),
        ));
    }
    if v6 > 128 {
        return Err(at(
            raw.shortest_v6.span(),
            "shortest_v6 must be 0 to 128".into(),
        ));
    }
    let protected: Vec<IpNet> = raw.protected.iter().map(|c| c.0).collect();
    let marker = raw.marker_community.get_ref().0;
    let fleet = match &raw.fleet {
        Some(f) if f.enabled => Some(fleet(f, marker, at)?),
        _ => None,
    };
    let escalation = match &raw.escalation {
        Some(e) if *e.enabled.get_ref() => Some(escalation(e, &protected, at)?),
        _ => None,
    };
    Ok(Some(BgpConfig {
        api,
        gobgp: raw.gobgp.clone(),
        dry_run: raw.dry_run,
        marker,
        protected,
        max_announcements,
        shortest_v4: v4,
        shortest_v6: v6,
        withdraw_on_stop: raw.withdraw_on_stop,
        fleet,
        escalation,
    }))
}

/// `api`: a unix socket's absolute path, or host:port.
fn api(raw: &RawBgp, at: At) -> Result<String, ConfigError> {
    let api = raw.api.get_ref().trim().to_string();
    let api_ok = match api.strip_prefix("unix://") {
        Some(path) => path.starts_with('/'),
        None => api
            .rsplit_once(':')
            .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok()),
    };
    if !api_ok {
        return Err(at(
            raw.api.span(),
            format!("api {api:?} is neither unix:///absolute/path.sock nor host:port"),
        ));
    }
    Ok(api)
}

/// The most fleet rules a node installs: one per counter slot
/// (`ENTRY_DROPS`, slot 0 meaning none), so that every rule is counted.
const MAX_FLEET_ENTRIES: usize = synguard_common::sizes::COUNTED_ENTRIES as usize - 1;

/// `[bgp.fleet]`, enabled: a community of its own, and at most
/// [`MAX_FLEET_ENTRIES`] rules.
fn fleet(f: &RawFleet, marker: Community, at: At) -> Result<Fleet, ConfigError> {
    let community = f.community.get_ref().0;
    if community == marker || community == BLACKHOLE {
        return Err(at(
            f.community.span(),
            format!(
                "the fleet community {community} must differ from marker_community and from BLACKHOLE (65535:666)"
            ),
        ));
    }
    let max_entries = *f.max_entries.get_ref();
    if !(1..=MAX_FLEET_ENTRIES).contains(&max_entries) {
        return Err(at(
            f.max_entries.span(),
            format!(
                "max_entries must be 1 to {MAX_FLEET_ENTRIES}: each fleet rule gets one of an interface's drop counters"
            ),
        ));
    }
    Ok(Fleet {
        community,
        max_entries,
    })
}

/// `[bgp.escalation]`, enabled: targets outside the protected prefixes,
/// a trigger, durations of a second or more, and the FlowSpec action.
fn escalation(e: &RawEscalation, protected: &[IpNet], at: At) -> Result<Escalation, ConfigError> {
    let targets = targets(e, protected, at)?;
    if *e.capacity_syn_pps.get_ref() == 0 && *e.nic_drops_pps.get_ref() == 0 {
        return Err(at(
            e.capacity_syn_pps.span(),
            "set capacity_syn_pps or nic_drops_pps (or both): otherwise nothing ever escalates"
                .into(),
        ));
    }
    for d in [&e.sustain, &e.rtbh_after, &e.hold_down] {
        if d.get_ref().0 < Duration::from_secs(1) {
            return Err(at(
                d.span(),
                "must be at least 1s (synguard looks once a second)".into(),
            ));
        }
    }
    Ok(Escalation {
        targets,
        capacity_syn_pps: *e.capacity_syn_pps.get_ref(),
        nic_drops_pps: *e.nic_drops_pps.get_ref(),
        sustain: e.sustain.get_ref().0,
        action: flow_action(e, at)?,
        rtbh: e.rtbh,
        rtbh_after: e.rtbh_after.get_ref().0,
        blackhole: e.blackhole_community.0,
        hold_down: e.hold_down.get_ref().0,
    })
}

/// `targets`: at least one, each an address outside the protected prefixes.
fn targets(e: &RawEscalation, protected: &[IpNet], at: At) -> Result<Vec<IpAddr>, ConfigError> {
    if e.targets.is_empty() {
        return Err(at(
            e.enabled.span(),
            "escalation needs targets: the destination addresses synguard may escalate for".into(),
        ));
    }
    let mut targets = Vec::new();
    for t in &e.targets {
        let addr: IpAddr = t.get_ref().parse().map_err(|_| {
            at(
                t.span(),
                format!("target {:?} is not an IP address", t.get_ref()),
            )
        })?;
        if let Some(p) = protected.iter().find(|p| p.contains(&addr)) {
            return Err(at(
                t.span(),
                format!(
                    "target {addr} is inside the protected prefix {p}: it could never be announced"
                ),
            ));
        }
        targets.push(addr);
    }
    Ok(targets)
}

/// `action`: discard, or rate-limit at a rate above 0.
fn flow_action(e: &RawEscalation, at: At) -> Result<FlowAction, ConfigError> {
    match e.action.get_ref().as_str() {
        "discard" => Ok(FlowAction::Discard),
        "rate-limit" => {
            let rate = *e.rate_bytes_per_second.get_ref();
            if rate == 0 {
                return Err(at(
                    e.rate_bytes_per_second.span(),
                    "rate_bytes_per_second must be above 0 (for no traffic, action = \"discard\")"
                        .into(),
                ));
            }
            Ok(FlowAction::RateLimit {
                bytes_per_second: rate,
            })
        }
        other => Err(at(
            e.action.span(),
            format!("action {other:?} is not \"rate-limit\" or \"discard\""),
        )),
    }
}

// The section as written. Every default is stated in
// packaging/synguard.toml, which a test checks against these.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBgp {
    #[serde(default)]
    enabled: bool,
    #[serde(default = "default_api")]
    api: Spanned<String>,
    #[serde(default = "default_gobgp")]
    gobgp: PathBuf,
    #[serde(default)]
    dry_run: bool,
    #[serde(default = "default_marker")]
    marker_community: Spanned<Comm>,
    #[serde(default)]
    protected: Vec<Cidr>,
    #[serde(default = "default_max")]
    max_announcements: Spanned<usize>,
    #[serde(default = "default_shortest_v4")]
    shortest_v4: Spanned<u8>,
    #[serde(default = "default_shortest_v6")]
    shortest_v6: Spanned<u8>,
    #[serde(default = "yes")]
    withdraw_on_stop: bool,
    fleet: Option<RawFleet>,
    escalation: Option<RawEscalation>,
}

/// The gobgpd of synguard's own, reached over a root-only Unix socket.
fn default_api() -> Spanned<String> {
    Spanned::new(0..0, "unix:///run/synguard-gobgp/api.sock".into())
}
/// Debian's gobgpd package puts its client on PATH.
fn default_gobgp() -> PathBuf {
    "gobgp".into()
}
/// A private-ASN community no one else should set.
fn default_marker() -> Spanned<Comm> {
    Spanned::new(0..0, Comm("65535:6660".parse().expect("valid")))
}
/// A handful of targets, each with FlowSpec and RTBH, plus shares.
fn default_max() -> Spanned<usize> {
    Spanned::new(0..0, 64)
}
/// A /16 is the widest a single node may black out for the fleet.
fn default_shortest_v4() -> Spanned<u8> {
    Spanned::new(0..0, 16)
}
/// An IPv6 /32 is a whole provider allocation: wide enough.
fn default_shortest_v6() -> Spanned<u8> {
    Spanned::new(0..0, 32)
}
fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFleet {
    #[serde(default)]
    enabled: bool,
    community: Spanned<Comm>,
    /// A fleet feed gone wrong must not fill the blocklist (65536).
    #[serde(default = "default_fleet_max")]
    max_entries: Spanned<usize>,
}

fn default_fleet_max() -> Spanned<usize> {
    Spanned::new(0..0, 10_000)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEscalation {
    #[serde(default = "zero")]
    enabled: Spanned<bool>,
    #[serde(default)]
    targets: Vec<Spanned<String>>,
    #[serde(default = "zero")]
    capacity_syn_pps: Spanned<u64>,
    #[serde(default = "zero")]
    nic_drops_pps: Spanned<u64>,
    /// Long enough that a burst the node absorbs does not escalate.
    #[serde(default = "default_sustain")]
    sustain: Spanned<Dur>,
    #[serde(default = "default_action")]
    action: Spanned<String>,
    /// 9600 B/s (about 130 SYNs/s): ExaBGP's source warns that lower rates
    /// may not be enforced by some routers.
    #[serde(default = "default_rate")]
    rate_bytes_per_second: Spanned<u32>,
    /// RTBH blacks out the target for everyone: off unless asked for.
    #[serde(default)]
    rtbh: bool,
    #[serde(default = "default_rtbh_after")]
    rtbh_after: Spanned<Dur>,
    #[serde(default = "default_blackhole")]
    blackhole_community: Comm,
    /// A flood that pauses and resumes does not flap the upstream rule.
    #[serde(default = "default_hold_down")]
    hold_down: Spanned<Dur>,
}

/// Off, or zero: not used.
fn zero<T: Default>() -> Spanned<T> {
    Spanned::new(0..0, T::default())
}
fn default_sustain() -> Spanned<Dur> {
    Spanned::new(0..0, Dur(Duration::from_secs(10)))
}
fn default_action() -> Spanned<String> {
    Spanned::new(0..0, "rate-limit".into())
}
fn default_rate() -> Spanned<u32> {
    Spanned::new(0..0, 9600)
}
fn default_rtbh_after() -> Spanned<Dur> {
    Spanned::new(0..0, Dur(Duration::from_secs(120)))
}
fn default_blackhole() -> Comm {
    Comm(BLACKHOLE)
}
fn default_hold_down() -> Spanned<Dur> {
    Spanned::new(0..0, Dur(Duration::from_secs(300)))
}

struct Comm(Community);

impl<'de> Deserialize<'de> for Comm {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map(Comm).map_err(de::Error::custom)
    }
}

struct Cidr(IpNet);

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_cidr(&s).map(Cidr).map_err(de::Error::custom)
    }
}

struct Dur(Duration);

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_duration(&s).map(Dur).map_err(de::Error::custom)
    }
}

#[cfg(test)]
mod tests;
