//! The kernel settings synguard manages: which ones, their safe values,
//! applying them while remembering the originals (in the state directory, so
//! a restarted daemon still knows them), restoring them, and drift.
//!
//! All of them are per network namespace: synguard applies them in the
//! namespace it runs in, the one whose listeners it protects.
use std::{collections::BTreeMap, fs, io, path::PathBuf};

use serde::Serialize;

use crate::state::StateDir;

/// One sysctl synguard knows how to check.
#[derive(Clone, Copy, Debug)]
pub struct Setting {
    /// The dotted name, e.g. `net.ipv4.tcp_syncookies`.
    pub name: &'static str,
    min: i64,
    max: i64,
    /// What the range means, for error messages.
    rule: &'static str,
    /// The value applied when the config does not say (None: left alone).
    default: Option<i64>,
}

const SETTINGS: &[Setting] = &[
    Setting {
        // The kernel only accepts cookie ACKs when syncookies are on; 2
        // would make it answer every SYN with a cookie even without a flood.
        name: "net.ipv4.tcp_syncookies",
        min: 1,
        max: 2,
        rule: "1 or 2 (0, 1 or 2 for the kernel, but with 0 the kernel refuses every cookie synguard sends)",
        default: Some(1),
    },
    Setting {
        // 2: timestamps without a per-connection offset, the only setting
        // under which window scaling and SACK survive a cookie made at XDP
        // (docs/design.md#the-tcp_timestamps2-trade-off).
        name: "net.ipv4.tcp_timestamps",
        min: 0,
        max: 2,
        rule: "0, 1 or 2",
        default: Some(2),
    },
    Setting {
        name: "net.core.somaxconn",
        min: 128,
        max: i32::MAX as i64,
        rule: "between 128 and 2147483647",
        default: Some(4096),
    },
    Setting {
        name: "net.ipv4.tcp_max_syn_backlog",
        min: 128,
        max: i32::MAX as i64,
        rule: "between 128 and 2147483647",
        default: Some(4096),
    },
    Setting {
        // 1 resets clients whenever an accept queue overflows for a moment:
        // old SYN-flood advice that turns a slow application into refused
        // connections.
        name: "net.ipv4.tcp_abort_on_overflow",
        min: 0,
        max: 1,
        rule: "0 or 1 (1 is risky: see the example config)",
        default: Some(0),
    },
    Setting {
        name: "net.ipv4.tcp_tw_reuse",
        min: 0,
        max: 2,
        rule: "0, 1 or 2",
        default: None,
    },
    Setting {
        name: "net.ipv4.tcp_fin_timeout",
        min: 1,
        max: 600,
        rule: "between 1 and 600 seconds",
        default: None,
    },
];

impl Setting {
    pub fn find(name: &str) -> Option<&'static Setting> {
        SETTINGS.iter().find(|s| s.name == name)
    }

    pub fn names() -> Vec<&'static str> {
        SETTINGS.iter().map(|s| s.name).collect()
    }

    pub fn validate(&self, value: i64) -> Result<(), String> {
        if (self.min..=self.max).contains(&value) {
            Ok(())
        } else {
            Err(format!("{} must be {}, not {value}", self.name, self.rule))
        }
    }
}

/// The values applied when the config has no `[sysctl]` section.
pub fn defaults() -> BTreeMap<String, i64> {
    SETTINGS
        .iter()
        .filter_map(|s| s.default.map(|v| (s.name.to_string(), v)))
        .collect()
}

#[derive(Debug, thiserror::Error)]
pub enum SysctlError {
    #[error("{name} ({path}): {source}")]
    Io {
        name: String,
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("{name}: the kernel holds {value:?}, not a number")]
    NotANumber { name: String, value: String },
    #[error("{path}: {source}")]
    Originals {
        path: String,
        #[source]
        source: io::Error,
    },
}

fn proc_path(name: &str) -> PathBuf {
    PathBuf::from("/proc/sys").join(name.replace('.', "/"))
}

/// Reads a sysctl of the calling thread's namespace.
pub fn read(name: &str) -> Result<i64, SysctlError> {
    let path = proc_path(name);
    let text = fs::read_to_string(&path).map_err(|source| SysctlError::Io {
        name: name.into(),
        path: path.display().to_string(),
        source,
    })?;
    text.trim().parse().map_err(|_| SysctlError::NotANumber {
        name: name.into(),
        value: text.trim().into(),
    })
}

fn write(name: &str, value: i64) -> Result<(), SysctlError> {
    let path = proc_path(name);
    fs::write(&path, format!("{value}\n")).map_err(|source| SysctlError::Io {
        name: name.into(),
        path: path.display().to_string(),
        source,
    })
}

/// One line of `synguard sysctl show` and of the status.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Row {
    pub name: String,
    pub desired: Option<i64>,
    pub actual: Option<i64>,
    /// The value before synguard changed it, if it did.
    pub original: Option<i64>,
}

impl Row {
    pub fn drifted(&self) -> bool {
        matches!((self.desired, self.actual), (Some(d), Some(a)) if d != a)
    }
}

/// Desired, actual and original values of every managed sysctl.
pub fn show(desired: &BTreeMap<String, i64>, state: &StateDir) -> Result<Vec<Row>, SysctlError> {
    let originals = originals(state)?;
    Ok(SETTINGS
        .iter()
        .map(|s| Row {
            name: s.name.into(),
            desired: desired.get(s.name).copied(),
            actual: read(s.name).ok(),
            original: originals.get(s.name).copied(),
        })
        .collect())
}

/// What `apply` changed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Applied {
    /// (name, from, to)
    pub changed: Vec<(String, i64, i64)>,
}

/// Applies `desired`, first recording each original value not recorded yet
/// (a value already recorded is the one from before synguard's first run).
pub fn apply(desired: &BTreeMap<String, i64>, state: &StateDir) -> Result<Applied, SysctlError> {
    let mut originals = originals(state)?;
    let mut applied = Applied::default();
    let mut plan = Vec::new();
    for (name, &value) in desired {
        let current = read(name)?;
        originals.entry(name.clone()).or_insert(current);
        if current != value {
            plan.push((name.clone(), current, value));
        }
    }
    // The originals reach the disk before the kernel changes.
    save_originals(state, &originals)?;
    for (name, from, to) in plan {
        write(&name, to)?;
        applied.changed.push((name, from, to));
    }
    Ok(applied)
}

/// Puts back every recorded original and forgets them. Returns what changed.
pub fn restore(state: &StateDir) -> Result<Applied, SysctlError> {
    let originals = originals(state)?;
    let mut applied = Applied::default();
    for (name, &value) in &originals {
        let current = read(name)?;
        if current != value {
            write(name, value)?;
            applied.changed.push((name.clone(), current, value));
        }
    }
    let path = state.sysctl_originals();
    match fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(SysctlError::Originals {
                path: path.display().to_string(),
                source,
            });
        }
    }
    Ok(applied)
}

fn originals(state: &StateDir) -> Result<BTreeMap<String, i64>, SysctlError> {
    let path = state.sysctl_originals();
    let err = |source| SysctlError::Originals {
        path: path.display().to_string(),
        source,
    };
    match fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| err(io::Error::other(e))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(BTreeMap::new()),
        Err(e) => Err(err(e)),
    }
}

fn save_originals(state: &StateDir, originals: &BTreeMap<String, i64>) -> Result<(), SysctlError> {
    let path = state.sysctl_originals();
    let json = serde_json::to_vec_pretty(originals).expect("a map of numbers serializes");
    state
        .write_atomic(&path, &json)
        .map_err(|source| SysctlError::Originals {
            path: path.display().to_string(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_default_passes_its_own_check() {
        for (name, value) in defaults() {
            Setting::find(&name).unwrap().validate(value).unwrap();
        }
    }

    #[test]
    fn values_out_of_range_are_refused_with_the_rule() {
        let s = Setting::find("net.ipv4.tcp_syncookies").unwrap();
        let err = s.validate(0).unwrap_err();
        assert!(err.contains("refuses every cookie"), "{err}");
        assert!(
            Setting::find("net.core.somaxconn")
                .unwrap()
                .validate(64)
                .is_err()
        );
        assert!(Setting::find("vm.swappiness").is_none());
    }
}
