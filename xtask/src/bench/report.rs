//! The bench's report: markdown for people (stdout), JSON for tools.
use std::{collections::BTreeMap, path::Path, time::Duration};

use anyhow::{Context, Result};
use serde_json::{Value, json};
use synguard_tests::bench::{cpu::Machine, generator::Generator};

use super::{
    defence::Defence,
    flood::{ATTACKER_CPU, Calibration, Legit, Outcome, Plan, TARGET_CPU},
};

pub struct Report {
    json: Value,
    flood: Vec<Outcome>,
    /// Markdown, in the order printed: what the dated page holds.
    sections: Vec<String>,
}

impl Report {
    pub fn new(machine: &Machine, quick: bool) -> Report {
        Report {
            json: json!({
                "machine": {
                    "cpus": machine.cpus,
                    "cpu_model": machine.cpu_model,
                    "kernel": machine.kernel,
                },
                "quick": quick,
                "load_average_start": load_average(),
                "unix_time": std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs()),
            }),
            flood: Vec::new(),
            sections: Vec::new(),
        }
    }

    pub fn header(&self) -> String {
        format!("# synguard benchmarks\n\n{}\n", self.machine())
    }

    /// The machine and its load, one line.
    pub fn machine(&self) -> String {
        let m = &self.json["machine"];
        format!(
            "Machine: {} CPUs, {}, Linux {}; load average {} at the start (the machine is shared){}",
            m["cpus"],
            m["cpu_model"].as_str().unwrap_or_default(),
            m["kernel"].as_str().unwrap_or_default(),
            self.json["load_average_start"].as_str().unwrap_or_default(),
            if self.json["quick"] == true {
                "; --quick: rough figures"
            } else {
                ""
            }
        )
    }

    /// Takes in the per-packet results the bench binary wrote (it printed
    /// its own table).
    pub fn add_cost(&mut self, path: &Path) -> Result<()> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        self.json["xdp_cost"] = serde_json::from_str(&text).context("xdp_cost JSON")?;
        Ok(())
    }

    pub fn add_generator(&mut self, generator: Generator, calibration: &Calibration) {
        let sent = &calibration.sent;
        let entry = json!({
            "generator": generator.name(),
            "how": generator.describe(),
            "packets": sent.packets,
            "seconds": sent.elapsed.as_secs_f64(),
            "cpu_s": sent.cpu.as_secs_f64(),
            "pps": sent.pps().round(),
            "absorbed": calibration.absorbed,
            "target_cpu_s": calibration.target_cpu.as_secs_f64(),
            "target_cpu_ms_per_m": calibration.cpu_ms_per_million(),
        });
        match self.json["generators"].as_array_mut() {
            Some(list) => list.push(entry),
            None => self.json["generators"] = json!([entry]),
        }
    }

    pub fn set_flood_plan(&mut self, plan: &Plan, generator: Generator) {
        self.json["flood_plan"] = json!({
            "generator": generator.name(),
            "legit_connections": plan.connections,
            "legit_rate_per_s": plan.rate,
            "legit_timeout_s": plan.timeout.as_secs_f64(),
            "warmup_s": plan.warmup.as_secs_f64(),
            "calibration_s": plan.calibration.as_secs_f64(),
            "rounds": plan.rounds,
            "attacker_cpu": ATTACKER_CPU,
            "target_cpu": TARGET_CPU,
        });
    }

    /// Prints a part's markdown and keeps it for the page.
    pub fn add_section(&mut self, markdown: String) {
        println!("{markdown}");
        self.keep_section(markdown);
    }

    /// Keeps for the page markdown already printed.
    pub fn keep_section(&mut self, markdown: String) {
        self.sections.push(markdown);
    }

    pub fn sections(&self) -> &[String] {
        &self.sections
    }

    pub fn add_flood(&mut self, outcome: Outcome) {
        self.flood.push(outcome);
    }

    pub fn add_one_cpu(&mut self, one_cpu: Value) {
        self.json["one_cpu"] = one_cpu;
    }

    pub fn add_soak(&mut self, soak: Value) {
        self.json["soak"] = soak;
    }

    pub fn flood_section(&self) -> String {
        let mut s = String::new();
        if let Some(list) = self.json["generators"].as_array() {
            s += "\n## Flood generators\n\n";
            s += &format!(
                "Each alone for {} s, sending from CPU 0 to a target that drops every frame in XDP; target CPU as in the flood lab below (its NAPI thread per frame taken in: a full ring is cheaper a frame than a trickle).\n\n",
                self.json["flood_plan"]["calibration_s"]
            );
            s += "| generator | how | pps | target CPU ms / M frames |\n|---|---|---:|---:|\n";
            for g in list {
                s += &format!(
                    "| {} | {} | {} | {} |\n",
                    g["generator"].as_str().unwrap_or_default(),
                    g["how"].as_str().unwrap_or_default(),
                    thousands(g["pps"].as_f64().unwrap_or(0.0)),
                    g["target_cpu_ms_per_m"]
                        .as_f64()
                        .map_or("-".into(), |v| format!("{v:.0}")),
                );
            }
        }
        let plan = &self.json["flood_plan"];
        s += &format!(
            "\n## Flood lab\n\nSpoofed SYN flood ({}, sources random in 198.19.0.0/16) while a real client makes {} connections at {}/s (timeout {} s) and echoes data; {} round(s) per defence, interleaved. Rates and CPU: median (min-max) over rounds; clients: all rounds together. Target CPU: the target veth's NAPI thread (all of the target's receive path), per million frames it took in, i.e. ns per frame.\n\n",
            plan["generator"].as_str().unwrap_or_default(),
            plan["legit_connections"],
            plan["legit_rate_per_s"],
            plan["legit_timeout_s"],
            plan["rounds"],
        );
        s += "| defence | offered flood pps | absorbed by target pps | target CPU ms / M frames | legit success | connect p50 | connect p99 | echo p50 |\n";
        s += "|---|---:|---:|---:|---:|---:|---:|---:|\n";
        for d in self.defences() {
            let runs: Vec<&Outcome> = self.flood.iter().filter(|o| o.defence == d).collect();
            let offered = spread(runs.iter().map(|o| o.sent.pps()));
            let absorbed = spread(runs.iter().map(|o| o.absorbed_pps()));
            let cpu = spread(runs.iter().filter_map(|o| o.cpu_ms_per_million()));
            let legit = pooled(&runs);
            let success = if legit.clients.attempted == 0 {
                "-".to_string()
            } else {
                format!(
                    "{:.1}% ({}/{})",
                    100.0 * legit.clients.success_ratio(),
                    legit.clients.succeeded,
                    legit.clients.attempted
                )
            };
            s += &format!(
                "| {} | {} | {} | {} | {} | {} | {} | {} |\n",
                d.label(),
                show(offered, thousands),
                show(absorbed, thousands),
                show(cpu, |v| format!("{v:.0}")),
                success,
                ms(legit.clients.connect_quantile(0.5)),
                ms(legit.clients.connect_quantile(0.99)),
                ms(legit.echo.connect_quantile(0.5)),
            );
        }
        s += &self.flood_goal();
        s += "\nWhat the target did, summed over rounds:\n\n";
        for d in self.defences() {
            let runs: Vec<&Outcome> = self.flood.iter().filter(|o| o.defence == d).collect();
            let mut counters: BTreeMap<String, u64> = BTreeMap::new();
            for o in &runs {
                for (k, v) in &o.kernel {
                    *counters
                        .entry(k.trim_start_matches("TcpExt").to_string())
                        .or_default() += v;
                }
                for (k, v) in &o.synguard {
                    *counters.entry(format!("synguard {k}")).or_default() += v;
                }
            }
            let parts: Vec<String> = counters
                .iter()
                .filter(|(_, v)| **v > 0)
                .map(|(k, v)| format!("{k} {}", thousands(*v as f64)))
                .collect();
            let what = if parts.is_empty() {
                "nothing counted".to_string()
            } else {
                parts.join(", ")
            };
            s += &format!("- {}: {what}\n", d.label());
            // Each round that lost a client, beside what its flood lost at
            // the target's ring: a client's SYN waits in that ring too.
            for (round, o) in runs.iter().enumerate() {
                if let Some(first) = o.legit.clients.errors.first() {
                    s += &format!(
                        "  (round {}: {} of {} clients failed, {}% of the flood's frames lost at the target's ring; a failure: {first})\n",
                        round + 1,
                        o.legit.clients.errors.len(),
                        o.legit.clients.attempted,
                        ring_loss_percent(o.sent.packets, o.absorbed),
                    );
                }
            }
        }
        s
    }

    /// Issue 18's flood-lab goal, synguard's target CPU a frame at most
    /// 1/40 of the kernel's SYN cookies', beside the floor under both
    /// (a program that reads each frame and drops it): the median of the
    /// per-round ratios (round i of a defence against round i of the
    /// kernel's, run next to each other), with their spread.
    fn flood_goal(&self) -> String {
        let per_round = |d: Defence| -> Vec<Option<f64>> {
            self.flood
                .iter()
                .filter(|o| o.defence == d)
                .map(Outcome::cpu_ms_per_million)
                .collect()
        };
        let kernel = per_round(Defence::KernelCookies);
        if kernel.iter().all(Option::is_none) {
            return String::new();
        }
        let mut s = String::from(
            "\nTarget CPU a frame as a fraction of kernel SYN cookies' (median of per-round ratios, min-max; goal for synguard <= 1/40):\n\n",
        );
        let fraction = |v: f64| format!("1/{:.0}", 1.0 / v.max(1e-9));
        for d in [
            Defence::Synguard,
            Defence::SynguardNoBudgets,
            Defence::Floor,
        ] {
            let rounds = per_round(d);
            let ratios = rounds
                .iter()
                .zip(&kernel)
                .filter_map(|(ns, k)| match (ns, k) {
                    (Some(ns), Some(k)) if *k > 0.0 => Some(ns / k),
                    _ => None,
                });
            let Some(ratio) = spread(ratios) else {
                continue;
            };
            let ns = spread(rounds.iter().flatten().copied()).map_or(0.0, |s| s.median);
            let verdict = match d {
                Defence::Floor => {
                    " (the floor: a program that reads each frame and drops it)".to_string()
                }
                _ if ratio.max * 40.0 <= 1.0 => ", goal met in every round".to_string(),
                _ if ratio.median * 40.0 <= 1.0 => ", goal met, not in every round".to_string(),
                _ => ", goal missed".to_string(),
            };
            s += &format!(
                "- {}: {} ({}-{}), {ns:.0} ns a frame{verdict}\n",
                d.label(),
                fraction(ratio.median),
                fraction(ratio.min),
                fraction(ratio.max),
            );
        }
        let floor = per_round(Defence::Floor);
        let above = per_round(Defence::Synguard)
            .iter()
            .zip(&floor)
            .filter_map(|(s, f)| Some((*s)? - (*f)?))
            .collect::<Vec<_>>();
        if let Some(above) = spread(above.into_iter()) {
            s += &format!(
                "- synguard (defaults) above the floor, round by round: {}\n",
                show(Some(above), |v| format!("{v:.0} ns"))
            );
        }
        s
    }

    /// The defences measured, in the order first run.
    fn defences(&self) -> Vec<Defence> {
        let mut seen = Vec::new();
        for o in &self.flood {
            if !seen.contains(&o.defence) {
                seen.push(o.defence);
            }
        }
        seen
    }

    pub fn finish(&mut self, elapsed: Duration) {
        let flood: Vec<Value> = self
            .flood
            .iter()
            .map(|o| {
                json!({
                    "defence": o.defence.key(),
                    "label": o.defence.label(),
                    "generator": o.generator.name(),
                    "flood_packets_sent": o.sent.packets,
                    "flood_seconds": o.sent.elapsed.as_secs_f64(),
                    "generator_cpu_s": o.sent.cpu.as_secs_f64(),
                    "offered_pps": o.sent.pps().round(),
                    "absorbed_packets": o.absorbed,
                    "absorbed_pps": o.absorbed_pps().round(),
                    "target_cpu_s": o.target_cpu.as_secs_f64(),
                    "target_cpu_ms_per_million": o.cpu_ms_per_million(),
                    "legit": {
                        "attempted": o.legit.clients.attempted,
                        "succeeded": o.legit.clients.succeeded,
                        "connect_ms": millis(&o.legit.clients.connect_times),
                        "echo_ms": millis(&o.legit.echo.connect_times),
                        "errors": o.legit.clients.errors.iter().take(5).collect::<Vec<_>>(),
                    },
                    "kernel_counters": o.kernel,
                    "synguard_counters": o.synguard,
                })
            })
            .collect();
        if !flood.is_empty() {
            self.json["flood_runs"] = Value::Array(flood);
        }
        self.json["load_average_end"] = json!(load_average());
        self.json["bench_seconds"] = json!(elapsed.as_secs_f64().round());
    }

    pub fn json(&self) -> String {
        serde_json::to_string_pretty(&self.json).expect("JSON")
    }
}

/// The machine is shared: its load is part of the record.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

#[derive(Clone, Copy)]
struct Spread {
    median: f64,
    min: f64,
    max: f64,
}

fn spread(values: impl Iterator<Item = f64>) -> Option<Spread> {
    let mut v: Vec<f64> = values.collect();
    if v.is_empty() {
        return None;
    }
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

fn show(s: Option<Spread>, fmt: impl Fn(f64) -> String) -> String {
    match s {
        None => "-".into(),
        Some(s) if s.min == s.max => fmt(s.median),
        Some(s) => format!("{} ({}-{})", fmt(s.median), fmt(s.min), fmt(s.max)),
    }
}

/// The clients of several rounds as one batch.
fn pooled(runs: &[&Outcome]) -> Legit {
    let mut all = Legit::default();
    for o in runs {
        all.clients.attempted += o.legit.clients.attempted;
        all.clients.succeeded += o.legit.clients.succeeded;
        all.clients
            .connect_times
            .extend(&o.legit.clients.connect_times);
        all.echo.connect_times.extend(&o.legit.echo.connect_times);
    }
    all
}

/// Durations in milliseconds, to 10 µs.
pub(super) fn millis(times: &[Duration]) -> Vec<f64> {
    times
        .iter()
        .map(|d| (d.as_secs_f64() * 1e5).round() / 100.0)
        .collect()
}

pub(super) fn ms(d: Option<Duration>) -> String {
    match d {
        None => "-".into(),
        Some(d) if d >= Duration::from_millis(100) => format!("{:.0} ms", d.as_secs_f64() * 1e3),
        Some(d) => format!("{:.2} ms", d.as_secs_f64() * 1e3),
    }
}

/// 1234567 -> "1.23 M", 12345 -> "12.3 k".
pub(super) fn thousands(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.2} M", v / 1e6)
    } else if v >= 1e4 {
        format!("{:.0} k", v / 1e3)
    } else if v >= 1e3 {
        format!("{:.1} k", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}

/// The share of `sent` frames the target did not take in, in whole
/// percent (0 when it took them all, or more: a client's frames are
/// counted with the flood's).
fn ring_loss_percent(sent: u64, absorbed: u64) -> u64 {
    if sent == 0 {
        return 0;
    }
    (sent.saturating_sub(absorbed) * 100 + sent / 2) / sent
}

#[cfg(test)]
mod tests {
    use super::*;
    use synguard_tests::bench::generator::Sent;

    /// A flood-lab round of `defence` in which the target spent `ns` a
    /// frame on a million frames.
    fn round(defence: Defence, ns: u64) -> Outcome {
        Outcome {
            defence,
            generator: Generator::XdpLive,
            sent: Sent {
                packets: 1_000_000,
                elapsed: Duration::from_secs(1),
                cpu: Duration::from_secs(1),
            },
            absorbed: 1_000_000,
            target_cpu: Duration::from_nanos(ns * 1_000_000),
            legit: Legit::default(),
            kernel: BTreeMap::new(),
            synguard: BTreeMap::new(),
        }
    }

    /// Rounds interleaved as the lab runs them: kernel, synguard, floor.
    fn report(rounds: &[(u64, u64, u64)]) -> Report {
        let machine = Machine {
            cpus: 2,
            cpu_model: "test".into(),
            kernel: "test".into(),
        };
        let mut report = Report::new(&machine, true);
        for &(kernel, synguard, floor) in rounds {
            report.add_flood(round(Defence::KernelCookies, kernel));
            report.add_flood(round(Defence::Synguard, synguard));
            report.add_flood(round(Defence::Floor, floor));
        }
        report
    }

    #[test]
    fn the_flood_goal_takes_each_ratio_within_its_round() {
        // Medians of the whole run would give 140/5000 = 1/36 (missed);
        // round by round the ratios are 1/44, 1/43 and 1/30: met, not in
        // every round.
        let text = report(&[(4000, 90, 80), (6000, 140, 100), (5000, 167, 90)]).flood_goal();
        assert!(
            text.contains(
                "- synguard (defaults): 1/43 (1/44-1/30), 140 ns a frame, goal met, not in every round"
            ),
            "{text}"
        );
        assert!(text.contains("the floor"), "{text}");
        assert!(
            text.contains("above the floor, round by round: 40 ns (10 ns-77 ns)"),
            "{text}"
        );
    }

    #[test]
    fn the_flood_goal_is_met_in_every_round_only_when_every_round_meets_it() {
        let text = report(&[(8000, 100, 80), (6000, 120, 100)]).flood_goal();
        assert!(text.contains("goal met in every round"), "{text}");
        let text = report(&[(4000, 200, 80), (6000, 300, 100)]).flood_goal();
        assert!(
            text.contains("1/20 (1/20-1/20), 250 ns a frame, goal missed"),
            "{text}"
        );
    }

    #[test]
    fn a_round_that_lost_a_client_says_what_its_flood_lost_at_the_ring() {
        let mut report = report(&[(4000, 90, 80)]);
        let mut lossy = round(Defence::Synguard, 90);
        lossy.absorbed = 450_000;
        lossy.legit.clients.attempted = 100;
        lossy.legit.clients.errors = vec!["connecting: connection timed out".into()];
        report.add_flood(round(Defence::KernelCookies, 4000));
        report.add_flood(lossy);
        let text = report.flood_section();
        assert!(
            text.contains(
                "(round 2: 1 of 100 clients failed, 55% of the flood's frames lost at the target's ring; a failure: connecting: connection timed out)"
            ),
            "{text}"
        );
        // Round 1, which lost none, has no line.
        assert!(!text.contains("round 1:"), "{text}");
    }

    #[test]
    fn no_flood_goal_without_the_kernels_rounds() {
        let machine = Machine {
            cpus: 2,
            cpu_model: "test".into(),
            kernel: "test".into(),
        };
        let mut report = Report::new(&machine, true);
        report.add_flood(round(Defence::Synguard, 100));
        assert_eq!(report.flood_goal(), "");
    }
}
