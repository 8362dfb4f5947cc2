//! The soak's markdown section and JSON.
use std::{collections::BTreeMap, fmt::Write as _, time::Duration};

use serde_json::{Value, json};
use synguard_tests::traffic::ClientReport;

use super::{Memory, Outcome, Snapshot, reconcile::Tally};
use crate::bench::report::{millis, ms, thousands};

impl Outcome {
    fn legit(&self) -> (ClientReport, ClientReport) {
        let mut connect = ClientReport::default();
        let mut echo = ClientReport::default();
        for r in &self.clients {
            connect.attempted += 1;
            match r {
                Ok((c, e)) => {
                    connect.succeeded += 1;
                    connect.connect_times.push(*c);
                    echo.connect_times.push(*e);
                }
                Err(e) => connect.errors.push(e.clone()),
            }
        }
        (connect, echo)
    }

    /// Client success in each tenth of the soak, in start order.
    fn success_by_tenth(&self) -> Vec<f64> {
        let n = self.clients.len();
        (0..10)
            .map(|i| &self.clients[i * n / 10..(i + 1) * n / 10])
            .filter(|part| !part.is_empty())
            .map(|part| {
                100.0 * part.iter().filter(|r| r.is_ok()).count() as f64 / part.len() as f64
            })
            .collect()
    }

    fn scrape_times(&self) -> Vec<Duration> {
        let mut t: Vec<Duration> = self
            .samples
            .iter()
            .filter_map(|s| s.scrape.clone().ok())
            .collect();
        t.sort();
        t
    }

    fn max_rss_kb(&self) -> u64 {
        self.samples
            .iter()
            .filter_map(|s| s.memory)
            .chain([self.start.memory, self.end.memory])
            .map(|m| m.vm_rss_kb)
            .max()
            .unwrap_or(0)
    }

    pub fn markdown(&self) -> String {
        let d = Tally::of(self);
        let (legit, _) = self.legit();
        let scrapes = self.scrape_times();
        let failed = self.samples.iter().filter(|s| s.scrape.is_err()).count();
        let flood_on = self
            .samples
            .iter()
            .filter(|s| s.flood_active == Some(true))
            .count();
        let (m0, m1) = (self.start.memory, self.end.memory);
        let mut s = String::new();
        let _ = write!(
            s,
            "\n## Soak\n\n`synguard run --config` (the release binary; the target veth in native mode, every other key at its default, /metrics on {} in the target namespace) under a spoofed SYN flood from {} for the whole soak, while a real client connects {} times a second (each sending data and checking the echo, timeout {} s) and /metrics is scraped every {} s. Stopped with SIGTERM at the end.\n\n",
            super::METRICS,
            self.generator.name(),
            self.plan.rate,
            self.plan.timeout.as_secs(),
            self.plan.scrape_every.as_secs(),
        );
        s += "| | |\n|---|---|\n";
        let mut row = |k: &str, v: String| {
            let _ = writeln!(s, "| {k} | {v} |");
        };
        row(
            "flood, whole soak",
            format!(
                "{:.0} s, {} frames offered ({} pps), {} pps taken in by the target",
                self.sent.elapsed.as_secs_f64(),
                thousands(self.sent.packets as f64),
                thousands(self.sent.pps()),
                thousands(d.rx as f64 / self.sent.elapsed.as_secs_f64().max(1e-9)),
            ),
        );
        row(
            "real clients",
            format!(
                "{:.2}% ({}/{}); connect p50 {}, p99 {}",
                100.0 * legit.success_ratio(),
                legit.succeeded,
                legit.attempted,
                ms(legit.connect_quantile(0.5)),
                ms(legit.connect_quantile(0.99)),
            ),
        );
        row(
            "client success by tenth of the soak",
            self.success_by_tenth()
                .iter()
                .map(|p| format!("{p:.1}%"))
                .collect::<Vec<_>>()
                .join(", "),
        );
        row(
            "daemon VmRSS: start, end (max sampled)",
            format!(
                "{}, {} ({})",
                mb(m0.vm_rss_kb),
                mb(m1.vm_rss_kb),
                mb(self.max_rss_kb())
            ),
        );
        row(
            "daemon VmHWM: start, end",
            format!("{}, {}", mb(m0.vm_hwm_kb), mb(m1.vm_hwm_kb)),
        );
        row(
            "daemon threads, open fds: start, end",
            format!("{}, {}; {}, {}", m0.threads, m1.threads, m0.fds, m1.fds),
        );
        row(
            "/metrics scrapes under the flood",
            format!(
                "{} ({} failed); latency p50 {}, max {}",
                self.samples.len(),
                failed,
                ms(scrapes.get(scrapes.len() / 2).copied()),
                ms(scrapes.last().copied()),
            ),
        );
        row(
            "flood mode on",
            format!("in {flood_on} of {} scrapes", self.samples.len()),
        );
        if d.rx > 0 {
            row(
                "target CPU per M frames taken in",
                format!(
                    "{:.0} ms",
                    self.target_cpu.as_secs_f64() * 1e3 / (d.rx as f64 / 1e6)
                ),
            );
        }
        row("stop (SIGTERM)", self.stop_text());

        s += "\nCounters over the soak (end minus start):\n\n| | packets | read from |\n|---|---:|---|\n";
        for (k, v, from) in d.rows() {
            let _ = writeln!(s, "| {k} | {} | {from} |", grouped(v));
        }
        s += "\n";
        for (what, left, right) in d.checks() {
            let _ = writeln!(
                s,
                "- {what}: {}",
                if left == right {
                    format!("equal ({})", grouped(left))
                } else {
                    format!(
                        "{} against {} (difference {})",
                        grouped(left),
                        grouped(right),
                        signed(left, right)
                    )
                }
            );
        }
        let parts: Vec<String> = d
            .by_reason
            .iter()
            .map(|(k, v)| format!("{k} {}", thousands(*v as f64)))
            .collect();
        let _ = writeln!(s, "- synguard, by verdict/reason: {}", parts.join(", "));
        if let Some(line) = self.left_to_kernel() {
            let _ = writeln!(s, "- {line}");
        }
        let _ = writeln!(
            s,
            "- daemon log: {} WARN/ERROR line(s){}",
            self.log_problems.len(),
            self.log_problems
                .first()
                .map(|l| format!("; first: `{l}`"))
                .unwrap_or_default()
        );
        if let Some(e) = legit.errors.first() {
            let _ = writeln!(s, "- a client failure: {e}");
        }
        s
    }

    /// SYNs synguard passed to the kernel, and the kernel's own cookies,
    /// before flood mode was first seen on and after.
    fn left_to_kernel(&self) -> Option<String> {
        let first = self.samples.iter().find(|s| s.flood_active == Some(true))?;
        let syn = |m: &BTreeMap<String, u64>| m.get("pass/syn").copied().unwrap_or(0);
        let cookies = first.kernel_cookies?;
        let (start, end) = (&self.start, &self.end);
        Some(format!(
            "SYNs left to the kernel (pass/syn): {} by the first scrape in flood mode ({:.0} s in), {} in the {:.0} s after; the kernel's own SYN cookies (synguard_kernel_syncookies_sent_total): {} and {}",
            grouped(syn(&first.packets).saturating_sub(syn(&start.synguard))),
            first.at.as_secs_f64(),
            grouped(syn(&end.synguard).saturating_sub(syn(&first.packets))),
            self.sent.elapsed.saturating_sub(first.at).as_secs_f64(),
            grouped(cookies.saturating_sub(start.kernel_cookies)),
            grouped(end.kernel_cookies.saturating_sub(cookies)),
        ))
    }

    fn stop_text(&self) -> String {
        let st = &self.stop;
        let exit = match st.status {
            Some(status) => format!("{status} after {:.2} s", st.took.as_secs_f64()),
            None => format!(
                "still running {:.0} s later (killed)",
                st.took.as_secs_f64()
            ),
        };
        format!(
            "{exit}; {}; {}",
            if st.xdp_left {
                "XDP STILL ATTACHED"
            } else {
                "XDP detached"
            },
            if st.links_left.is_empty() {
                "no pinned link left".to_string()
            } else {
                format!("pinned links left: {}", st.links_left.join(" "))
            },
        )
    }

    pub fn json(&self) -> Value {
        let d = Tally::of(self);
        let (legit, echo) = self.legit();
        let scrapes = self.scrape_times();
        let memory = |m: Memory| json!({"vm_rss_kb": m.vm_rss_kb, "vm_hwm_kb": m.vm_hwm_kb, "threads": m.threads, "fds": m.fds});
        let snapshot = |x: &Snapshot| {
            json!({
                "target_dev": x.target.dev, "target_ethtool": x.target.ethtool,
                "outside_dev": x.outside.dev, "outside_ethtool": x.outside.ethtool,
                "outside_ip_out_requests": x.outside_ip_out,
                "kernel_syncookies_sent": x.kernel_cookies,
                "synguard_packets": x.synguard,
            })
        };
        json!({
            "secs": self.plan.secs,
            "legit_rate_per_s": self.plan.rate,
            "legit_timeout_s": self.plan.timeout.as_secs_f64(),
            "scrape_every_s": self.plan.scrape_every.as_secs_f64(),
            "generator": self.generator.name(),
            "config": self.config,
            "flood": {
                "packets": self.sent.packets,
                "seconds": self.sent.elapsed.as_secs_f64(),
                "pps": self.sent.pps().round(),
                "generator_cpu_s": self.sent.cpu.as_secs_f64(),
            },
            "target_cpu_s": self.target_cpu.as_secs_f64(),
            "legit": {
                "attempted": legit.attempted,
                "succeeded": legit.succeeded,
                "success_by_tenth_pct": self.success_by_tenth(),
                "connect_ms": millis(&legit.connect_times),
                "echo_ms": millis(&echo.connect_times),
                "errors": legit.errors.iter().take(10).collect::<Vec<_>>(),
            },
            "memory": {
                "start": memory(self.start.memory),
                "end": memory(self.end.memory),
                "max_rss_kb": self.max_rss_kb(),
            },
            "scrapes": {
                "count": self.samples.len(),
                "failed": self.samples.iter().filter(|s| s.scrape.is_err()).count(),
                "p50_ms": scrapes.get(scrapes.len() / 2).map(|d| d.as_secs_f64() * 1e3),
                "max_ms": scrapes.last().map(|d| d.as_secs_f64() * 1e3),
            },
            "samples": self.samples.iter().map(|s| json!({
                "t_s": (s.at.as_secs_f64() * 10.0).round() / 10.0,
                "memory": s.memory.map(memory),
                "scrape_ms": s.scrape.as_ref().ok().map(|d| d.as_secs_f64() * 1e3),
                "scrape_error": s.scrape.as_ref().err(),
                "packets_total": s.packets.values().sum::<u64>(),
                "packets": s.packets,
                "flood_active": s.flood_active,
                "kernel_syncookies_sent": s.kernel_cookies,
            })).collect::<Vec<_>>(),
            "counters": {
                "generator_sent": d.sent,
                "on_target_ring": d.on_ring,
                "ring_full": d.ring_full,
                "client_ip_packets": d.clients,
                "client_ip_packets_lost": d.clients_lost,
                "target_rx_packets": d.rx,
                "target_rx_dropped": d.rx_dropped,
                "synguard_total": d.synguard,
                "synguard_by_reason": d.by_reason,
                "veth_xdp_drops": d.xdp_drops,
                "veth_xdp_tx": d.xdp_tx,
                "veth_xdp_tx_errors": d.xdp_tx_errors,
                "veth_xdp_redirect": d.xdp_redirect,
                "checks": d.checks().iter().map(|(what, l, r)| json!({"check": what, "left": l, "right": r})).collect::<Vec<_>>(),
                "start": snapshot(&self.start),
                "end": snapshot(&self.end),
            },
            "stop": {
                "exit_code": self.stop.status.and_then(|s| s.code()),
                "clean": self.stop.clean(),
                "seconds": self.stop.took.as_secs_f64(),
                "xdp_left": self.stop.xdp_left,
                "links_left": self.stop.links_left,
            },
            "log_problems": self.log_problems.iter().take(20).collect::<Vec<_>>(),
        })
    }
}

fn mb(kb: u64) -> String {
    format!("{:.1} MiB", kb as f64 / 1024.0)
}

/// 1234567 -> "1,234,567": counts compared to the packet.
fn grouped(v: u64) -> String {
    let digits = v.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn signed(left: u64, right: u64) -> String {
    if left >= right {
        format!("+{}", grouped(left - right))
    } else {
        format!("-{}", grouped(right - left))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_well() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1000), "1,000");
        assert_eq!(grouped(2_412_345_678), "2,412,345,678");
        assert_eq!(signed(5, 7), "-2");
        assert_eq!(signed(7, 5), "+2");
    }
}
