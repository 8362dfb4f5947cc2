//! The daemon's configuration: one TOML file (see
//! `packaging/synguard.toml`, which documents every key and its default),
//! plus the CIDR list files it names. Every error names the file, the line
//! and, where there is one, the key.
use std::{
    collections::BTreeMap,
    fmt, fs,
    net::SocketAddr,
    ops::Range,
    path::{Path, PathBuf},
    time::Duration,
};

use ipnet::IpNet;
use serde::{Deserialize, Deserializer, de};
use toml::Spanned;
use xdp_common::{Budget, FloodMode};

use crate::{attach::AttachMode, settings::FloodPolicy, sysctl};

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
            bgp: match &raw.bgp {
                Some(bgp) => crate::bgp::config::parse(bgp, &at)?,
                None => None,
            },
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

/// Reads a list file: one CIDR or address per line; `#` starts a comment.
pub fn read_list_file(path: &Path) -> Result<Vec<IpNet>, ConfigError> {
    let text = fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.display().to_string(),
        source,
    })?;
    parse_list(&text).map_err(|(line, what)| ConfigError::At {
        path: path.display().to_string(),
        line,
        what,
    })
}

/// Parses list-file text; an error is (1-based line, reason).
pub fn parse_list(text: &str) -> Result<Vec<IpNet>, (usize, String)> {
    let mut nets = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let entry = line.split('#').next().unwrap_or("").trim();
        if entry.is_empty() {
            continue;
        }
        nets.push(parse_cidr(entry).map_err(|why| (i + 1, why))?);
    }
    Ok(nets)
}

/// Parses a CIDR, or a bare address as a /32 or /128. Host bits set below
/// the prefix are an error: `10.0.0.1/8` is more likely a typo than `10/8`.
pub fn parse_cidr(s: &str) -> Result<IpNet, String> {
    if let Ok(net) = s.parse::<IpNet>() {
        if net.trunc() != net {
            return Err(format!(
                "{s:?} has host bits set below its prefix; did you mean {}?",
                net.trunc()
            ));
        }
        return Ok(net);
    }
    s.parse::<std::net::IpAddr>().map(IpNet::from).map_err(|_| {
        format!("{s:?} is not a CIDR (e.g. 203.0.113.0/24 or 2001:db8::/48) or an address")
    })
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

// The file as written; `Spanned` keeps positions for errors found after
// parsing.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default = "default_log_level")]
    log_level: Spanned<String>,
    #[serde(default)]
    keep_attached_on_stop: bool,
    #[serde(default)]
    interface: Vec<RawInterface>,
    #[serde(default)]
    flood: RawFlood,
    #[serde(default)]
    budgets: RawBudgets,
    #[serde(default)]
    lists: RawLists,
    #[serde(default)]
    sysctl: BTreeMap<String, Spanned<RawSysctl>>,
    #[serde(default)]
    metrics: RawMetrics,
    bgp: Option<crate::bgp::config::RawBgp>,
}

fn default_log_level() -> Spanned<String> {
    Spanned::new(0..0, "info".into())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInterface {
    name: Spanned<String>,
    #[serde(default)]
    mode: Mode,
    #[serde(default)]
    replace: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFlood {
    #[serde(default)]
    mode: Flood,
    #[serde(default = "default_rate_on")]
    syn_rate_on: Spanned<u32>,
    #[serde(default = "default_rate_off")]
    syn_rate_off: Spanned<u32>,
    #[serde(default = "default_hold")]
    hold: Spanned<Dur>,
    #[serde(default)]
    ports: Vec<Spanned<u16>>,
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
struct RawBudgets {
    #[serde(default = "yes")]
    enabled: bool,
    #[serde(default = "default_v4_host")]
    v4_host: RawBudget,
    #[serde(default = "default_v4_net")]
    v4_net: RawBudget,
    #[serde(default = "default_v6_host")]
    v6_host: RawBudget,
    #[serde(default = "default_v6_net")]
    v6_net: RawBudget,
    #[serde(default)]
    block_over_budget_for: OptDur,
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
struct RawBudget {
    rate: Spanned<u32>,
    burst: Spanned<u32>,
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
struct RawLists {
    #[serde(default)]
    block: Vec<Cidr>,
    #[serde(default)]
    allow: Vec<Cidr>,
    #[serde(default)]
    block_files: Vec<Spanned<PathBuf>>,
    #[serde(default)]
    allow_files: Vec<Spanned<PathBuf>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMetrics {
    #[serde(default = "default_listen")]
    listen: Spanned<String>,
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
enum RawSysctl {
    Value(i64),
    Keep(String),
}

// Values that check themselves while parsing, so the parser's error carries
// the value's position.

struct Cidr(IpNet);

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_cidr(&s).map(Cidr).map_err(de::Error::custom)
    }
}

struct Mode(AttachMode);

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

struct Flood(FloodMode);

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

struct Dur(Duration);

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_duration(&s).map(Dur).map_err(de::Error::custom)
    }
}

#[derive(Default)]
struct OptDur(Option<Duration>);

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

impl fmt::Display for Interface {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name, self.mode)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, String> {
        Config::parse(text, Path::new("/etc/synguard/synguard.toml")).map_err(|e| e.to_string())
    }

    #[test]
    fn an_empty_file_gives_the_documented_defaults() {
        let c = parse("").unwrap();
        assert!(c.interfaces.is_empty());
        assert_eq!(c.flood, FloodPolicy::default());
        assert_eq!(c.metrics_listen, Some("127.0.0.1:9720".parse().unwrap()));
        assert_eq!(c.sysctls, sysctl::defaults());
        assert_eq!(c.log_level, "info");
        assert!(!c.keep_attached_on_stop);
        assert_eq!(c.block_over_budget, None);
    }

    #[test]
    fn the_shipped_example_is_valid_and_states_the_defaults() {
        let text = include_str!("../../packaging/synguard.toml");
        let example = parse(text).unwrap();
        let defaults = parse("").unwrap();
        // The example attaches eth0 and shows commented lists; everything
        // else must equal the defaults it documents.
        assert_eq!(example.flood, defaults.flood);
        assert_eq!(example.sysctls, defaults.sysctls);
        assert_eq!(example.metrics_listen, defaults.metrics_listen);
        assert_eq!(example.block_over_budget, defaults.block_over_budget);
    }

    #[test]
    fn errors_name_file_line_key_and_reason() {
        let err = parse("[flood]\nmode = \"auto\"\nsyn_rate_on = \"lots\"\n").unwrap_err();
        assert!(
            err.starts_with("/etc/synguard/synguard.toml:3: key `flood.syn_rate_on`:"),
            "{err}"
        );
        let err = parse("\n[flood]\nmode = \"sometimes\"\n").unwrap_err();
        assert!(err.contains(":3: key `flood.mode`"), "{err}");
        assert!(err.contains("auto, always or off"), "{err}");
        let err = parse("[lists]\nblock = [\"10.0.0.0/8\",\n  \"10.300.0.0/16\"]\n").unwrap_err();
        assert!(err.contains(":2:"), "{err}");
        assert!(err.contains("is not a CIDR"), "{err}");
        let err = parse("[flood]\nsyn_rate_on = 100\nsyn_rate_off = 200\n").unwrap_err();
        assert!(err.contains(":3: key `flood.syn_rate_off`"), "{err}");
        let err = parse("[metrics]\nlisten = \"localhost\"\n").unwrap_err();
        assert!(err.contains(":2: key `metrics.listen`"), "{err}");
        let err = parse("colour = \"blue\"\n").unwrap_err();
        assert!(
            err.contains(":1:") && err.contains("unknown field `colour`"),
            "{err}"
        );
        let err = parse("[sysctl]\n\"net.ipv4.tcp_syncookies\" = 7\n").unwrap_err();
        assert!(err.contains(":2:") && err.contains("0, 1 or 2"), "{err}");
        let err = parse("[sysctl]\n\"kernel.panic\" = 1\n").unwrap_err();
        assert!(err.contains("does not manage"), "{err}");
        let err =
            parse("[[interface]]\nname = \"eth0\"\n[[interface]]\nname = \"eth0\"\n").unwrap_err();
        assert!(err.contains(":4:") && err.contains("twice"), "{err}");
        let err = parse("[[interface]]\nname = \"a/b\"\n").unwrap_err();
        assert!(err.contains(":2:"), "{err}");
    }

    #[test]
    fn list_files_name_their_own_line() {
        assert_eq!(
            parse_list("# office\n203.0.113.0/24\n\n2001:db8::1 # one host\n").unwrap(),
            vec![
                "203.0.113.0/24".parse::<IpNet>().unwrap(),
                "2001:db8::1/128".parse().unwrap()
            ]
        );
        let (line, why) = parse_list("10.0.0.0/8\n\n10.0.0.1/8\n").unwrap_err();
        assert_eq!(line, 3);
        assert!(why.contains("did you mean 10.0.0.0/8"), "{why}");
        let (line, _) = parse_list("1.2.3.4\nnot-an-address\n").unwrap_err();
        assert_eq!(line, 2);
    }

    #[test]
    fn sysctls_can_be_left_alone_or_changed() {
        let c = parse(
            "[sysctl]\n\"net.ipv4.tcp_timestamps\" = \"keep\"\n\"net.core.somaxconn\" = 8192\n",
        )
        .unwrap();
        assert!(!c.sysctls.contains_key("net.ipv4.tcp_timestamps"));
        assert_eq!(c.sysctls["net.core.somaxconn"], 8192);
    }

    #[test]
    fn guarded_ports_are_checked() {
        assert_eq!(
            parse("[flood]\nports = [443, 80]\n").unwrap().flood.ports,
            vec![443, 80]
        );
        let err = parse("[flood]\nports = [443,\n 443]\n").unwrap_err();
        assert!(err.contains(":3:") && err.contains("twice"), "{err}");
        let err = parse("[flood]\nports = [70000]\n").unwrap_err();
        assert!(err.contains(":2: key `flood.ports`"), "{err}");
    }

    #[test]
    fn budgets_can_be_turned_off_and_over_budget_blocks_on() {
        let c = parse("[budgets]\nenabled = false\nblock_over_budget_for = \"5m\"\n").unwrap();
        assert_eq!(c.flood.budget_v4_host.rate, 0);
        assert_eq!(c.block_over_budget, Some(Duration::from_secs(300)));
    }

    #[test]
    fn a_burst_larger_than_a_bucket_holds_is_refused() {
        let max = xdp_common::budget::MAX_BURST;
        let ok = format!("[budgets]\nv4_net = {{ rate = 500, burst = {max} }}\n");
        assert_eq!(parse(&ok).unwrap().flood.budget_v4_net.burst, max);
        let too_big = format!(
            "[budgets]\nv4_net = {{ rate = 500, burst = {} }}\n",
            max + 1
        );
        let err = parse(&too_big).unwrap_err().to_string();
        assert!(
            err.contains(":2:") && err.contains("at most 4294967"),
            "{err}"
        );
    }
}

/// Properties over arbitrary input: the parsers never panic, errors point
/// at a line that exists, and every valid CIDR survives a list file.
#[cfg(test)]
mod props {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use proptest::prelude::*;

    use super::*;

    fn line_count(text: &str) -> usize {
        text.lines().count().max(1)
    }

    fn cidr() -> impl Strategy<Value = IpNet> {
        prop_oneof![
            (any::<u32>(), 0u8..=32)
                .prop_map(|(a, p)| IpNet::new(Ipv4Addr::from(a).into(), p).unwrap().trunc()),
            (any::<u128>(), 0u8..=128)
                .prop_map(|(a, p)| IpNet::new(Ipv6Addr::from(a).into(), p).unwrap().trunc()),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        #[test]
        fn cidr_parsing_never_panics_and_round_trips(s in ".{0,60}") {
            if let Ok(net) = parse_cidr(&s) {
                prop_assert_eq!(parse_cidr(&net.to_string()), Ok(net));
            }
        }

        #[test]
        fn list_files_never_panic_and_name_a_real_line(text in "[0-9a-f:./# \\n]{0,300}") {
            if let Err((line, _)) = parse_list(&text) {
                prop_assert!(line >= 1 && line <= line_count(&text));
            }
        }

        #[test]
        fn configs_never_panic_and_name_a_real_line(text in "(\\PC|\\n){0,300}") {
            if let Err(ConfigError::At { line, .. }) = Config::parse(&text, Path::new("f.toml")) {
                prop_assert!(line >= 1 && line <= line_count(&text) + 1, "line {}", line);
            }
        }

        #[test]
        fn configs_built_from_keys_never_panic(
            key in prop::sample::select(vec!["mode", "syn_rate_on", "syn_rate_off", "hold", "name", "listen", "block", "rate"]),
            table in prop::sample::select(vec!["flood", "budgets", "metrics", "lists", "sysctl", "[interface]"]),
            value in prop::sample::select(vec!["1", "-1", "0", "\"auto\"", "\"10s\"", "[\"10.0.0.0/8\"]", "{ rate = 1, burst = 0 }", "4294967296", "\"\"", "true"]),
        ) {
            let text = format!("[{table}]\n{key} = {value}\n");
            let _ = Config::parse(&text, Path::new("f.toml"));
        }

        #[test]
        fn every_cidr_survives_a_list_file(nets in prop::collection::vec(cidr(), 0..50)) {
            let mut text = String::from("# generated\n");
            for net in &nets {
                text.push_str(&format!("{net}   # entry\n\n"));
            }
            prop_assert_eq!(parse_list(&text).unwrap(), nets);
        }
    }
}
