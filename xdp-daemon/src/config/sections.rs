//! `Config::parse`, one section at a time: each function checks what its
//! section says and turns it into the validated form.
use std::{
    collections::BTreeMap,
    net::SocketAddr,
    path::{Path, PathBuf},
};

use ipnet::IpNet;
use synguard_common::Budget;
use toml::Spanned;

use super::{
    ConfigError, Interface, Spans, check_iface_name, read_list_file,
    schema::{RawBudget, RawBudgets, RawFlood, RawInterface, RawLists, RawMetrics, RawSysctl},
};
use crate::{settings::FloodPolicy, sysctl};

/// `[[interface]]`: valid names, each listed once.
pub(super) fn interfaces(raw: &[RawInterface], at: &Spans) -> Result<Vec<Interface>, ConfigError> {
    let mut interfaces: Vec<Interface> = Vec::new();
    for iface in raw {
        let name = iface.name.get_ref();
        if let Err(why) = check_iface_name(name) {
            return Err(at.error(iface.name.span(), why));
        }
        if interfaces.iter().any(|i| &i.name == name) {
            return Err(at.error(
                iface.name.span(),
                format!("interface {name:?} is listed twice"),
            ));
        }
        interfaces.push(Interface {
            name: name.clone(),
            mode: iface.mode.0,
            replace: iface.replace,
            dry_run: iface.dry_run,
        });
    }
    Ok(interfaces)
}

/// `[flood]` and `[budgets]`: the detector's thresholds, the guarded
/// ports and the per-source budgets.
pub(super) fn flood_policy(
    flood: &RawFlood,
    b: &RawBudgets,
    at: &Spans,
) -> Result<FloodPolicy, ConfigError> {
    let on = *flood.syn_rate_on.get_ref();
    let off = *flood.syn_rate_off.get_ref();
    if on == 0 {
        return Err(at.error(
            flood.syn_rate_on.span(),
            "syn_rate_on must be at least 1 SYN/s".into(),
        ));
    }
    if off > on {
        return Err(at.error(
            flood.syn_rate_off.span(),
            format!("syn_rate_off ({off}) must not be above syn_rate_on ({on})"),
        ));
    }
    let hold_ms = u32::try_from(flood.hold.get_ref().0.as_millis())
        .ok()
        .filter(|&ms| ms > 0)
        .ok_or_else(|| {
            at.error(
                flood.hold.span(),
                "hold must be between 1ms and about 49 days".into(),
            )
        })?;
    let budget = |raw: &RawBudget| budget(raw, b.enabled, at);
    Ok(FloodPolicy {
        ports: ports(&flood.ports, at)?,
        mode: flood.mode.0,
        syn_rate_on: on,
        syn_rate_off: off,
        hold_ms,
        budget_v4_host: budget(&b.v4_host)?,
        budget_v4_net: budget(&b.v4_net)?,
        budget_v6_host: budget(&b.v6_host)?,
        budget_v6_net: budget(&b.v6_net)?,
        // Per interface: `Interface::dry_run`.
        dry_run: false,
    })
}

/// One of `[budgets]`' buckets; all zero when budgets are off.
fn budget(raw: &RawBudget, enabled: bool, at: &Spans) -> Result<Budget, ConfigError> {
    if !enabled {
        return Ok(Budget { rate: 0, burst: 0 });
    }
    let (rate, burst) = (*raw.rate.get_ref(), *raw.burst.get_ref());
    if rate > 0 && burst < rate.min(1) {
        return Err(at.error(raw.burst.span(), "burst must be at least 1".into()));
    }
    if burst > synguard_common::budget::MAX_BURST {
        return Err(at.error(
            raw.burst.span(),
            format!(
                "burst must be at most {} (what a bucket holds)",
                synguard_common::budget::MAX_BURST
            ),
        ));
    }
    Ok(Budget { rate, burst })
}

/// `flood.ports`: real ports, each listed once.
fn ports(raw: &[Spanned<u16>], at: &Spans) -> Result<Vec<u16>, ConfigError> {
    let mut ports: Vec<u16> = Vec::new();
    for port in raw {
        let p = *port.get_ref();
        if p == 0 {
            return Err(at.error(
                port.span(),
                "port 0 is not a port a listener can use".into(),
            ));
        }
        if ports.contains(&p) {
            return Err(at.error(port.span(), format!("port {p} is listed twice")));
        }
        ports.push(p);
    }
    Ok(ports)
}

/// `[lists]`: the blocklist and the allowlist, inline and from files
/// (relative to `base`), sorted and without duplicates.
pub(super) fn lists(raw: &RawLists, base: &Path) -> Result<(Vec<IpNet>, Vec<IpNet>), ConfigError> {
    let list = |inline: &[super::schema::Cidr], files: &[Spanned<PathBuf>]| {
        let mut nets: Vec<IpNet> = inline.iter().map(|c| c.0).collect();
        for file in files {
            nets.extend(read_list_file(&base.join(file.get_ref()))?);
        }
        nets.sort();
        nets.dedup();
        Ok::<_, ConfigError>(nets)
    };
    let block = list(&raw.block, &raw.block_files)?;
    let allow = list(&raw.allow, &raw.allow_files)?;
    Ok((block, allow))
}

/// `[sysctl]`: the defaults, with each key set or left alone ("keep").
pub(super) fn sysctls(
    raw: &BTreeMap<String, Spanned<RawSysctl>>,
    at: &Spans,
) -> Result<BTreeMap<String, i64>, ConfigError> {
    let mut sysctls = sysctl::defaults();
    for (key, value) in raw {
        let setting = sysctl::Setting::find(key).ok_or_else(|| {
            at.error(
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
                return Err(at.error(
                    value.span(),
                    format!("{key}: expected a number or \"keep\" (leave it alone), not {word:?}"),
                ));
            }
            RawSysctl::Value(v) => {
                setting
                    .validate(*v)
                    .map_err(|why| at.error(value.span(), why))?;
                sysctls.insert(setting.name.to_string(), *v);
            }
        }
    }
    Ok(sysctls)
}

/// `[metrics] listen`: an address, or none ("off" or empty).
pub(super) fn metrics_listen(
    raw: &RawMetrics,
    at: &Spans,
) -> Result<Option<SocketAddr>, ConfigError> {
    match raw.listen.get_ref().as_str() {
        "" | "off" => Ok(None),
        addr => addr.parse::<SocketAddr>().map(Some).map_err(|_| {
            at.error(
                raw.listen.span(),
                format!(
                    "listen: {addr:?} is not an address:port (e.g. 127.0.0.1:9720), or \"off\""
                ),
            )
        }),
    }
}

/// `log_level`: one of the five, in lower case.
pub(super) fn log_level(raw: &Spanned<String>, at: &Spans) -> Result<String, ConfigError> {
    let log_level = raw.get_ref().to_ascii_lowercase();
    if !["error", "warn", "info", "debug", "trace"].contains(&log_level.as_str()) {
        return Err(at.error(
            raw.span(),
            format!(
                "log_level {:?} is not one of error, warn, info, debug, trace",
                raw.get_ref()
            ),
        ));
    }
    Ok(log_level)
}
