//! The file as written: serde types with their defaults, and values that
//! check themselves while parsing.
use std::{collections::BTreeMap, path::PathBuf, time::Duration};

use ipnet::IpNet;
use serde::{Deserialize, Deserializer, de};
use synguard_common::{Budget, FloodMode};
use toml::Spanned;

use super::{list_file::parse_cidr, parse_duration};
use crate::{attach::AttachMode, settings::FloodPolicy};
// The file as written; `Spanned` keeps positions for errors found after
// parsing.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    #[serde(default = "default_log_level")]
    pub(super) log_level: Spanned<String>,
    #[serde(default)]
    pub(super) keep_attached_on_stop: bool,
    #[serde(default)]
    pub(super) interface: Vec<RawInterface>,
    #[serde(default)]
    pub(super) flood: RawFlood,
    #[serde(default)]
    pub(super) budgets: RawBudgets,
    #[serde(default)]
    pub(super) lists: RawLists,
    #[serde(default)]
    pub(super) sysctl: BTreeMap<String, Spanned<RawSysctl>>,
    #[serde(default)]
    pub(super) metrics: RawMetrics,
    pub(super) bgp: Option<crate::bgp::config::RawBgp>,
}

fn default_log_level() -> Spanned<String> {
    Spanned::new(0..0, "info".into())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawInterface {
    pub(super) name: Spanned<String>,
    #[serde(default)]
    pub(super) mode: Mode,
    #[serde(default)]
    pub(super) replace: bool,
    #[serde(default)]
    pub(super) dry_run: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFlood {
    #[serde(default)]
    pub(super) mode: Flood,
    #[serde(default = "default_rate_on")]
    pub(super) syn_rate_on: Spanned<u32>,
    #[serde(default = "default_rate_off")]
    pub(super) syn_rate_off: Spanned<u32>,
    #[serde(default = "default_hold")]
    pub(super) hold: Spanned<Dur>,
    #[serde(default)]
    pub(super) ports: Vec<Spanned<u16>>,
}

impl Default for RawFlood {
    fn default() -> Self {
        RawFlood {
            mode: Flood::default(),
            syn_rate_on: default_rate_on(),
            syn_rate_off: default_rate_off(),
            hold: default_hold(),
            ports: Vec::new(),
        }
    }
}

fn default_rate_on() -> Spanned<u32> {
    Spanned::new(0..0, FloodPolicy::default().syn_rate_on)
}
fn default_rate_off() -> Spanned<u32> {
    Spanned::new(0..0, FloodPolicy::default().syn_rate_off)
}
fn default_hold() -> Spanned<Dur> {
    Spanned::new(
        0..0,
        Dur(Duration::from_millis(FloodPolicy::default().hold_ms.into())),
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBudgets {
    #[serde(default = "yes")]
    pub(super) enabled: bool,
    #[serde(default = "default_v4_host")]
    pub(super) v4_host: RawBudget,
    #[serde(default = "default_v4_net")]
    pub(super) v4_net: RawBudget,
    #[serde(default = "default_v6_host")]
    pub(super) v6_host: RawBudget,
    #[serde(default = "default_v6_net")]
    pub(super) v6_net: RawBudget,
    #[serde(default)]
    pub(super) block_over_budget_for: OptDur,
}

impl Default for RawBudgets {
    fn default() -> Self {
        RawBudgets {
            enabled: true,
            v4_host: default_v4_host(),
            v4_net: default_v4_net(),
            v6_host: default_v6_host(),
            v6_net: default_v6_net(),
            block_over_budget_for: OptDur(None),
        }
    }
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBudget {
    pub(super) rate: Spanned<u32>,
    pub(super) burst: Spanned<u32>,
}

impl From<Budget> for RawBudget {
    fn from(b: Budget) -> Self {
        RawBudget {
            rate: Spanned::new(0..0, b.rate),
            burst: Spanned::new(0..0, b.burst),
        }
    }
}

fn default_v4_host() -> RawBudget {
    FloodPolicy::default().budget_v4_host.into()
}
fn default_v4_net() -> RawBudget {
    FloodPolicy::default().budget_v4_net.into()
}
fn default_v6_host() -> RawBudget {
    FloodPolicy::default().budget_v6_host.into()
}
fn default_v6_net() -> RawBudget {
    FloodPolicy::default().budget_v6_net.into()
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLists {
    #[serde(default)]
    pub(super) block: Vec<Cidr>,
    #[serde(default)]
    pub(super) allow: Vec<Cidr>,
    #[serde(default)]
    pub(super) block_files: Vec<Spanned<PathBuf>>,
    #[serde(default)]
    pub(super) allow_files: Vec<Spanned<PathBuf>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMetrics {
    #[serde(default = "default_listen")]
    pub(super) listen: Spanned<String>,
}

impl Default for RawMetrics {
    fn default() -> Self {
        RawMetrics {
            listen: default_listen(),
        }
    }
}

/// Loopback only: the counters tell an attacker how well the flood works.
pub const DEFAULT_METRICS_LISTEN: &str = "127.0.0.1:9720";

fn default_listen() -> Spanned<String> {
    Spanned::new(0..0, DEFAULT_METRICS_LISTEN.into())
}

#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum RawSysctl {
    Value(i64),
    Keep(String),
}

// Values that check themselves while parsing, so the parser's error carries
// the value's position.

pub(super) struct Cidr(pub(super) IpNet);

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_cidr(&s).map(Cidr).map_err(de::Error::custom)
    }
}

pub(super) struct Mode(pub(super) AttachMode);

impl Default for Mode {
    fn default() -> Self {
        Mode(AttachMode::Auto)
    }
}

impl<'de> Deserialize<'de> for Mode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map(Mode).map_err(de::Error::custom)
    }
}

pub(super) struct Flood(pub(super) FloodMode);

impl Default for Flood {
    fn default() -> Self {
        Flood(FloodPolicy::default().mode)
    }
}

impl<'de> Deserialize<'de> for Flood {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_flood_mode(&s).map(Flood).map_err(de::Error::custom)
    }
}

/// Parses `auto`, `always` or `off`.
pub fn parse_flood_mode(s: &str) -> Result<FloodMode, String> {
    match s {
        "auto" => Ok(FloodMode::Auto),
        "always" => Ok(FloodMode::Always),
        "off" => Ok(FloodMode::Off),
        other => Err(format!(
            "unknown flood mode {other:?}: use auto, always or off"
        )),
    }
}

/// The name of a flood mode, as the config and CLI spell it.
pub fn flood_mode_name(mode: FloodMode) -> &'static str {
    match mode {
        FloodMode::Auto => "auto",
        FloodMode::Always => "always",
        FloodMode::Off => "off",
    }
}

pub(super) struct Dur(pub(super) Duration);

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_duration(&s).map(Dur).map_err(de::Error::custom)
    }
}

#[derive(Default)]
pub(super) struct OptDur(pub(super) Option<Duration>);

impl<'de> Deserialize<'de> for OptDur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s == "off" {
            return Ok(OptDur(None));
        }
        parse_duration(&s)
            .map(|d| OptDur(Some(d)))
            .map_err(de::Error::custom)
    }
}
