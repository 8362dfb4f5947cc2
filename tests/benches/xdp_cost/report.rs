//! Medians, ratios, the targets, and the table and JSON they go into.
use serde_json::{Value, json};
use synguard_common::Reason;

use crate::{CPU, Options, classes::Timing};

/// A goal set for a class: at most `max_ratio` times the floor, and
/// perhaps no slower than xdp-filter. Printed, never asserted.
pub struct Target {
    pub class: &'static str,
    pub max_ratio: f64,
    pub not_slower_than_peer: bool,
}

pub const TARGETS: [Target; 3] = [
    Target {
        class: "non-TCP (UDP) pass",
        max_ratio: 2.0,
        not_slower_than_peer: false,
    },
    Target {
        class: "blocklisted source: drop",
        max_ratio: 4.0,
        not_slower_than_peer: true,
    },
    Target {
        class: "SYN, flood mode: SYN-ACK (XDP_TX)",
        max_ratio: 6.0,
        not_slower_than_peer: false,
    },
];

/// A goal set against something measured on the same frames in the same
/// run (ratios to the floor move with the machine; these do not): at most
/// `max_ratio` times `against`, as the median of per-round ratios.
/// Printed, never asserted.
pub struct SideBySide {
    pub class: &'static str,
    pub against: Against,
    pub max_ratio: f64,
}

/// What a [`SideBySide`] goal compares synguard with.
pub enum Against {
    /// synguard on another class's frames (the same frames, other settings).
    Class(&'static str),
    /// xdp-filter on the same frames.
    XdpFilter,
    /// The kernel's XDP synproxy on the same frames.
    Synproxy,
}

pub const SIDE_BY_SIDE: [SideBySide; 4] = [
    SideBySide {
        class: "established-flow data, flood mode: pass",
        against: Against::Class("established-flow data, normal mode: pass"),
        max_ratio: 1.3,
    },
    SideBySide {
        class: "forged cookie ACK: drop",
        against: Against::XdpFilter,
        max_ratio: 1.5,
    },
    SideBySide {
        class: "valid cookie ACK: pass",
        against: Against::XdpFilter,
        max_ratio: 3.0,
    },
    SideBySide {
        class: "SYN, flood mode: SYN-ACK (XDP_TX)",
        against: Against::Synproxy,
        max_ratio: 0.6,
    },
];

/// One class's figures, one per round.
pub struct Measured {
    pub class: &'static str,
    pub timing: Timing,
    pub reason: Reason,
    pub floor: Vec<f64>,
    pub synguard: Vec<f64>,
    /// Per `--compare` object, like `synguard`.
    pub compared: Vec<Vec<f64>>,
    pub peer: Vec<f64>,
    /// The kernel's XDP synproxy, on the classes it is timed on.
    pub synproxy: Vec<f64>,
}

/// Median and spread of a set of figures.
#[derive(Clone, Copy)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Spread {
    pub fn of(values: &[f64]) -> Option<Spread> {
        if values.is_empty() {
            return None;
        }
        let mut v = values.to_vec();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Some(Spread {
            median,
            min: v[0],
            max: v[n - 1],
        })
    }

    pub fn json(self) -> Value {
        json!({ "median": round2(self.median), "min": round2(self.min), "max": round2(self.max) })
    }
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

impl Measured {
    fn ratios(&self, of: &[f64]) -> Vec<f64> {
        of.iter().zip(&self.floor).map(|(a, f)| a / f).collect()
    }

    /// A compared build's time over this build's, per round.
    fn against_synguard(&self, of: &[f64]) -> Vec<f64> {
        of.iter().zip(&self.synguard).map(|(a, b)| a / b).collect()
    }

    /// This build's time over another program's, per round.
    fn synguard_over(&self, other: &[f64]) -> Vec<f64> {
        self.synguard
            .iter()
            .zip(other)
            .map(|(a, b)| a / b)
            .collect()
    }
}

pub struct Report<'a> {
    pub results: Vec<Measured>,
    pub options: &'a Options,
    pub peer: bool,
    /// The linux-source package the kernel's XDP synproxy was built from,
    /// when it ran.
    pub synproxy: Option<String>,
}

impl Report<'_> {
    pub fn markdown(&self) -> String {
        let o = self.options;
        let mut s = format!(
            "## Per-packet cost (BPF_PROG_TEST_RUN, {} rounds; repeated runs x{}, single calls x{}, over budget x{})\n\n",
            o.rounds(),
            o.repeat(),
            o.calls(),
            o.calls().min(crate::classes::OVER_BUDGET_CALLS)
        );
        s += "ns/packet: median (min-max) over rounds; ratio: to the XDP_PASS floor on the same frames, same timing, median of per-round ratios.\n\n";
        s += "| class | timing | synguard verdict | floor ns | synguard ns | synguard / floor |";
        if self.peer {
            s += " xdp-filter ns | xdp-filter / floor | synguard / xdp-filter |";
        }
        if self.synproxy.is_some() {
            s += " kernel synproxy ns | synguard / kernel synproxy |";
        }
        for i in 0..o.compare.len() {
            s += &format!(" compared {} ns | compared {} / synguard |", i + 1, i + 1);
        }
        s += "\n|---|---|---|---:|---:|---:|";
        if self.peer {
            s += "---:|---:|---:|";
        }
        if self.synproxy.is_some() {
            s += "---:|---:|";
        }
        s += &"---:|---:|".repeat(o.compare.len());
        s += "\n";
        for m in &self.results {
            let cell = |v: &[f64]| Spread::of(v).map_or("-".into(), ns);
            let ratio = |v: &[f64]| Spread::of(&m.ratios(v)).map_or("-".into(), times);
            s += &format!(
                "| {} | {} | {} {} | {} | {} | {} |",
                m.class,
                match m.timing {
                    Timing::Repeated => "repeated",
                    Timing::Single => "single calls",
                },
                m.reason.verdict().name(),
                m.reason.name(),
                cell(&m.floor),
                cell(&m.synguard),
                ratio(&m.synguard),
            );
            let over = |v: &[f64]| Spread::of(&m.synguard_over(v)).map_or("-".into(), times);
            if self.peer {
                s += &format!(
                    " {} | {} | {} |",
                    cell(&m.peer),
                    ratio(&m.peer),
                    over(&m.peer)
                );
            }
            if self.synproxy.is_some() {
                s += &format!(" {} | {} |", cell(&m.synproxy), over(&m.synproxy));
            }
            for c in &m.compared {
                let against = Spread::of(&m.against_synguard(c)).map_or("-".into(), times);
                s += &format!(" {} | {} |", cell(c), against);
            }
            s += "\n";
        }
        for (i, path) in o.compare.iter().enumerate() {
            s += &format!("\ncompared {}: {}", i + 1, path.display());
        }
        if !o.compare.is_empty() {
            s += "\n";
        }
        if let Some(source) = &self.synproxy {
            s += &format!(
                "\nkernel synproxy: tools/testing/selftests/bpf/progs/xdp_synproxy_kern.c from {source}, built here with clang, port {} allowed, its default options.\n",
                crate::PORT
            );
        }
        s += "\nGoals side by side (same frames, same run; median of per-round ratios):\n\n";
        for goal in &SIDE_BY_SIDE {
            s += &format!("- {}\n", self.check_side_by_side(goal));
        }
        s += "\nGoals against the floor (for reference; the floor moves with the machine):\n\n";
        for target in &TARGETS {
            s += &format!("- {}\n", self.check(target));
        }
        s
    }

    fn find(&self, class: &str) -> Option<&Measured> {
        self.results.iter().find(|m| m.class == class)
    }

    /// A side-by-side goal's per-round ratios, and what they compare with.
    fn side_by_side(&self, goal: &SideBySide) -> Option<(Spread, String)> {
        let m = self.find(goal.class)?;
        let (ratios, with) = match &goal.against {
            Against::Class(other) => (
                m.synguard_over(&self.find(other)?.synguard),
                format!("synguard on \"{other}\""),
            ),
            Against::XdpFilter => (m.synguard_over(&m.peer), "xdp-filter".to_string()),
            Against::Synproxy => (
                m.synguard_over(&m.synproxy),
                "the kernel's XDP synproxy".to_string(),
            ),
        };
        Some((Spread::of(&ratios)?, with))
    }

    fn check_side_by_side(&self, goal: &SideBySide) -> String {
        let Some((spread, with)) = self.side_by_side(goal) else {
            return format!("{}: not measured", goal.class);
        };
        format!(
            "{}: {} times {with}, goal <= {:.1}x: {}",
            goal.class,
            times(spread),
            goal.max_ratio,
            if spread.median <= goal.max_ratio {
                format!(
                    "met{}",
                    if spread.max <= goal.max_ratio {
                        " in every round"
                    } else {
                        ", not in every round"
                    }
                )
            } else {
                format!("missed by {:.2}x", spread.median / goal.max_ratio)
            }
        )
    }

    /// Whether a target is met, and by how much it is met or missed.
    fn check(&self, target: &Target) -> String {
        let Some(m) = self.results.iter().find(|m| m.class == target.class) else {
            return format!("{}: not measured", target.class);
        };
        let median = |v: &[f64]| Spread::of(v).map(|s| s.median);
        let (Some(ratio), Some(ns)) = (median(&m.ratios(&m.synguard)), median(&m.synguard)) else {
            return format!("{}: not measured", target.class);
        };
        let mut verdict = vec![format!(
            "{:.2}x the floor, target <= {:.0}x: {}",
            ratio,
            target.max_ratio,
            if ratio <= target.max_ratio {
                "met".to_string()
            } else {
                format!("missed by {:.1}x", ratio / target.max_ratio)
            }
        )];
        if target.not_slower_than_peer
            && let Some(peer) = median(&m.peer)
        {
            verdict.push(format!(
                "{ns:.0} ns vs xdp-filter {peer:.0} ns, target no slower: {}",
                if ns <= peer {
                    "met".to_string()
                } else {
                    format!("missed by {:.1}x", ns / peer)
                }
            ));
        }
        format!("{}: {}", target.class, verdict.join("; "))
    }

    pub fn json(&self) -> Value {
        let o = self.options;
        let classes: Vec<Value> = self
            .results
            .iter()
            .map(|m| {
                let spread = |v: &[f64]| Spread::of(v).map(Spread::json);
                json!({
                    "class": m.class,
                    "timing": match m.timing {
                        Timing::Repeated => "repeated",
                        Timing::Single => "single",
                    },
                    "synguard_verdict": m.reason.verdict().name(),
                    "synguard_reason": m.reason.name(),
                    "floor_ns": spread(&m.floor),
                    "synguard_ns": spread(&m.synguard),
                    "synguard_ratio": spread(&m.ratios(&m.synguard)),
                    "xdp_filter_ns": spread(&m.peer),
                    "xdp_filter_ratio": spread(&m.ratios(&m.peer)),
                    "synguard_to_xdp_filter": spread(&m.synguard_over(&m.peer)),
                    "synproxy_ns": spread(&m.synproxy),
                    "synguard_to_synproxy": spread(&m.synguard_over(&m.synproxy)),
                    "compared_ns": m.compared.iter().map(|c| spread(c)).collect::<Vec<_>>(),
                    "compared_to_synguard": m
                        .compared
                        .iter()
                        .map(|c| spread(&m.against_synguard(c)))
                        .collect::<Vec<_>>(),
                    "rounds": {
                        "floor": m.floor,
                        "synguard": m.synguard,
                        "xdp_filter": m.peer,
                        "synproxy": m.synproxy,
                        "compared": m.compared,
                    },
                })
            })
            .collect();
        json!({
            "rounds": o.rounds(),
            "repeat": o.repeat(),
            "single_calls": o.calls(),
            "cpu": CPU,
            "compared": o.compare.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
            "peer": if self.peer { "xdp-filter --features ipv4,ipv6 --policy allow, source address listed" } else { "none" },
            "classes": classes,
            "synproxy": self.synproxy,
            "side_by_side": SIDE_BY_SIDE.iter().map(|g| self.check_side_by_side(g)).collect::<Vec<_>>(),
            "targets": TARGETS.iter().map(|t| self.check(t)).collect::<Vec<_>>(),
        })
    }
}

fn ns(s: Spread) -> String {
    format!("{:.0} ({:.0}-{:.0})", s.median, s.min, s.max)
}

fn times(s: Spread) -> String {
    format!("{:.2}x ({:.2}-{:.2})", s.median, s.min, s.max)
}
