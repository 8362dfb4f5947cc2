//! The daemon's configuration: one TOML file (see
//! `packaging/synguard.toml`, which documents every key and its default),
//! plus the CIDR list files it names. Every error names the file, the line
//! and, where there is one, the key.
use std::{
    collections::BTreeMap, fmt, fs, net::SocketAddr, ops::Range, path::Path, time::Duration,
};

use ipnet::IpNet;

use crate::{attach::AttachMode, settings::FloodPolicy};

mod list_file;
mod schema;
mod sections;
#[cfg(test)]
mod tests;

pub use list_file::{parse_cidr, parse_list, read_list_file};
use schema::RawConfig;
pub use schema::{DEFAULT_METRICS_LISTEN, flood_mode_name, parse_flood_mode};
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
    /// `None`: synguard speaks no BGP.
    pub bgp: Option<crate::bgp::config::BgpConfig>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interface {
    pub name: String,
    pub mode: AttachMode,
    /// Replace another XDP program found on the interface.
    pub replace: bool,
    /// Pass everything and count what would have been dropped or answered
    /// (docs/design.md#dry-run).
    pub dry_run: bool,
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
    /// relative list-file paths. Sections are checked in file order, so
    /// the first error reported is the first in the file's layout.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let at = Spans { text, path };
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let span = e.span().unwrap_or(0..0);
            at.error(span, e.message().trim().to_string())
        })?;
        let interfaces = sections::interfaces(&raw.interface, &at)?;
        let flood = sections::flood_policy(&raw.flood, &raw.budgets, &at)?;
        let base = path.parent().unwrap_or(Path::new("."));
        let (block, allow) = sections::lists(&raw.lists, base)?;
        let sysctls = sections::sysctls(&raw.sysctl, &at)?;
        let metrics_listen = sections::metrics_listen(&raw.metrics, &at)?;
        let log_level = sections::log_level(&raw.log_level, &at)?;
        let bgp = match &raw.bgp {
            Some(bgp) => crate::bgp::config::parse(bgp, &|span, what| at.error(span, what))?,
            None => None,
        };
        Ok(Config {
            interfaces,
            flood,
            block_over_budget: raw.budgets.block_over_budget_for.0.filter(|d| !d.is_zero()),
            block,
            allow,
            sysctls,
            metrics_listen,
            log_level,
            keep_attached_on_stop: raw.keep_attached_on_stop,
            bgp,
        })
    }
}

/// The text being parsed, to turn a span into an error at its line.
struct Spans<'a> {
    text: &'a str,
    path: &'a Path,
}

impl Spans<'_> {
    /// An error at the line holding `span`, naming its key.
    fn error(&self, span: Range<usize>, what: String) -> ConfigError {
        ConfigError::At {
            path: self.path.display().to_string(),
            line: line_of(self.text, span.start),
            what: with_key(self.text, span.start, what),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config::parse("", Path::new("(defaults)")).expect("the defaults are valid")
    }
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
