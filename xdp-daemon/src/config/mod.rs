//! The daemon's configuration: one TOML file (see
//! `packaging/synguard.toml`, which documents every key and its default),
//! plus the CIDR list files it names. Every error names the file, the line
//! and, where there is one, the key.
use std::{
    collections::BTreeMap, fmt, fs, net::SocketAddr, ops::Range, path::Path, time::Duration,
};

use ipnet::IpNet;
use xdp_common::Budget;

use crate::{attach::AttachMode, settings::FloodPolicy, sysctl};

mod list_file;
mod schema;
#[cfg(test)]
mod tests;

pub use list_file::{parse_cidr, parse_list, read_list_file};
pub use schema::{DEFAULT_METRICS_LISTEN, flood_mode_name, parse_flood_mode};
use schema::{RawBudget, RawConfig, RawSysctl};
/// Where `synguard run` and the CLI look for the configuration by default.
pub const DEFAULT_PATH: &str = "/etc/synguard/synguard.toml";

/// A validated configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub interfaces: Vec<Interface>,
    pub flood: FloodPolicy,
    /// How long a source prefix found over its SYN budget is blocked
    /// (`None`: not blocked, only counted).
    pub block_over_budget: Option<Duration>,
    pub block: Vec<IpNet>,
    pub allow: Vec<IpNet>,
    /// Sysctls to apply, by dotted name; keys absent are left alone.
    pub sysctls: BTreeMap<String, i64>,
    /// `None`: no metrics endpoint.
    pub metrics_listen: Option<SocketAddr>,
    pub log_level: String,
    /// On a clean stop, leave the program attached and the sysctls applied.
    pub keep_attached_on_stop: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interface {
    pub name: String,
    pub mode: AttachMode,
    /// Replace another XDP program found on the interface.
    pub replace: bool,
}

/// What is wrong with a configuration, and where.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}: {what}")]
    At {
        path: String,
        line: usize,
        what: String,
    },
}

impl Config {
    /// Reads, parses and validates a configuration file and the list files
    /// it names. Touches nothing else.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Config::parse(&text, path)
    }

    /// Parses configuration text; `path` names it in errors and anchors
    /// relative list-file paths.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let at = |span: Range<usize>, what: String| ConfigError::At {
            path: path.display().to_string(),
            line: line_of(text, span.start),
            what: with_key(text, span.start, what),
        };
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let span = e.span().unwrap_or(0..0);
            at(span, e.message().trim().to_string())
        })?;

        let mut interfaces: Vec<Interface> = Vec::new();
        for iface in &raw.interface {
            let name = iface.name.get_ref();
            if let Err(why) = check_iface_name(name) {
                return Err(at(iface.name.span(), why));
            }
            if interfaces.iter().any(|i| &i.name == name) {
                return Err(at(
                    iface.name.span(),
                    format!("interface {name:?} is listed twice"),
                ));
            }
            interfaces.push(Interface {
                name: name.clone(),
                mode: iface.mode.0,
                replace: iface.replace,
            });
        }

        let flood = &raw.flood;
        let on = *flood.syn_rate_on.get_ref();
        let off = *flood.syn_rate_off.get_ref();
        if on == 0 {
            return Err(at(
                flood.syn_rate_on.span(),
                "syn_rate_on must be at least 1 SYN/s".into(),
            ));
        }
        if off > on {
            return Err(at(
                flood.syn_rate_off.span(),
                format!("syn_rate_off ({off}) must not be above syn_rate_on ({on})"),
            ));
        }
        let hold_ms = u32::try_from(flood.hold.get_ref().0.as_millis())
            .ok()
            .filter(|&ms| ms > 0)
            .ok_or_else(|| {
                at(
                    flood.hold.span(),
                    "hold must be between 1ms and about 49 days".into(),
                )
            })?;
        let b = &raw.budgets;
        let budget = |raw: &RawBudget| -> Result<Budget, ConfigError> {
            if !b.enabled {
                return Ok(Budget { rate: 0, burst: 0 });
            }
            let (rate, burst) = (*raw.rate.get_ref(), *raw.burst.get_ref());
            if rate > 0 && burst < rate.min(1) {
                return Err(at(raw.burst.span(), "burst must be at least 1".into()));
            }
            if burst > xdp_common::budget::MAX_BURST {
                return Err(at(
                    raw.burst.span(),
                    format!(
                        "burst must be at most {} (what a bucket holds)",
                        xdp_common::budget::MAX_BURST
                    ),
                ));
            }
            Ok(Budget { rate, burst })
        };
        let mut ports: Vec<u16> = Vec::new();
        for port in &flood.ports {
            let p = *port.get_ref();
            if p == 0 {
                return Err(at(
                    port.span(),
                    "port 0 is not a port a listener can use".into(),
                ));
            }
            if ports.contains(&p) {
                return Err(at(port.span(), format!("port {p} is listed twice")));
            }
            ports.push(p);
        }
        let policy = FloodPolicy {
            ports,
            mode: flood.mode.0,
            syn_rate_on: on,
            syn_rate_off: off,
            hold_ms,
            budget_v4_host: budget(&b.v4_host)?,
            budget_v4_net: budget(&b.v4_net)?,
            budget_v6_host: budget(&b.v6_host)?,
            budget_v6_net: budget(&b.v6_net)?,
        };

        let base = path.parent().unwrap_or(Path::new("."));
        let mut block: Vec<IpNet> = raw.lists.block.iter().map(|c| c.0).collect();
        for file in &raw.lists.block_files {
            block.extend(read_list_file(&base.join(file.get_ref()))?);
        }
        let mut allow: Vec<IpNet> = raw.lists.allow.iter().map(|c| c.0).collect();
        for file in &raw.lists.allow_files {
            allow.extend(read_list_file(&base.join(file.get_ref()))?);
        }
        dedup(&mut block);
        dedup(&mut allow);

        let mut sysctls = sysctl::defaults();
        for (key, value) in &raw.sysctl {
            let setting = sysctl::Setting::find(key).ok_or_else(|| {
                at(
                    value.span(),
                    format!(
                        "synguard does not manage the sysctl {key:?}; it manages {}",
                        sysctl::Setting::names().join(", ")
                    ),
                )
            })?;
            match value.get_ref() {
                RawSysctl::Keep(word) if word == "keep" => {
                    sysctls.remove(setting.name);
                }
                RawSysctl::Keep(word) => {
                    return Err(at(
                        value.span(),
                        format!(
                            "{key}: expected a number or \"keep\" (leave it alone), not {word:?}"
                        ),
                    ));
                }
                RawSysctl::Value(v) => {
                    setting.validate(*v).map_err(|why| at(value.span(), why))?;
                    sysctls.insert(setting.name.to_string(), *v);
                }
            }
        }

        let metrics_listen = match raw.metrics.listen.get_ref().as_str() {
            "" | "off" => None,
            addr => Some(addr.parse::<SocketAddr>().map_err(|_| {
                at(
                    raw.metrics.listen.span(),
                    format!(
                        "listen: {addr:?} is not an address:port (e.g. 127.0.0.1:9720), or \"off\""
                    ),
                )
            })?),
        };
        let log_level = raw.log_level.get_ref().to_ascii_lowercase();
        if !["error", "warn", "info", "debug", "trace"].contains(&log_level.as_str()) {
            return Err(at(
                raw.log_level.span(),
                format!(
                    "log_level {:?} is not one of error, warn, info, debug, trace",
                    raw.log_level.get_ref()
                ),
            ));
        }

        Ok(Config {
            interfaces,
            flood: policy,
            block_over_budget: raw.budgets.block_over_budget_for.0.filter(|d| !d.is_zero()),
            block,
            allow,
            sysctls,
            metrics_listen,
            log_level,
            keep_attached_on_stop: raw.keep_attached_on_stop,
        })
    }
}

impl Default for Config {
    fn default() -> Self {
        Config::parse("", Path::new("(defaults)")).expect("the defaults are valid")
    }
}

fn dedup(nets: &mut Vec<IpNet>) {
    nets.sort();
    nets.dedup();
}

/// The 1-based line holding byte `offset`.
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// Prefixes `what` with the dotted key whose line holds `offset`, when that
/// line is a `key = value` line.
fn with_key(text: &str, offset: usize, what: String) -> String {
    let offset = offset.min(text.len());
    let start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let line = text[start..].lines().next().unwrap_or("");
    let Some((key, _)) = line.split_once('=') else {
        return what;
    };
    let key = key.trim().trim_matches('"');
    if key.is_empty() || key.starts_with('[') || key.starts_with('#') {
        return what;
    }
    // The table the line is in: the last header above it.
    let table = text[..start]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('['))
        .map(|h| h.trim_matches(|c| c == '[' || c == ']').trim());
    match table {
        Some(t) if !t.is_empty() => format!("key `{t}.{key}`: {what}"),
        _ => format!("key `{key}`: {what}"),
    }
}

/// Checks a Linux interface name (see dev_valid_name in net/core/dev.c).
pub fn check_iface_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() >= libc::IFNAMSIZ {
        return Err(format!(
            "interface name {name:?} must be 1 to {} bytes",
            libc::IFNAMSIZ - 1
        ));
    }
    if name == "."
        || name == ".."
        || name.contains(['/', ':'])
        || name.contains(char::is_whitespace)
    {
        return Err(format!(
            "{name:?} is not a valid interface name (no '/', ':' or spaces)"
        ));
    }
    Ok(())
}

/// Parses a duration such as `90s`, `10m`, `1h 30m` or `2d`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim())
        .map_err(|e| format!("{s:?} is not a duration like 30s, 10m, 1h or 2d: {e}"))
}

impl fmt::Display for Interface {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name, self.mode)
    }
}
