use std::{
    collections::HashMap,
    process::ExitCode,
    time::{Duration, Instant},
};

use ipnet::IpNet;
use serde::Serialize;
use synguard::{config::parse_duration, frames};
use synguard_common::{Reason, Verdict, signals::stopped};

use super::{
    Env,
    capture::{parse_reason, parse_sample, start},
};

/// Show, live, the source prefixes (/24, /64) with the most packets
/// dropped (or, in dry-run, that would be), by reason.
///
/// Read from a capture of the dropped packets (as `synguard capture`
/// takes it), one in --sample, counts scaled back up; it runs until
/// Ctrl-C or --for, redrawing every --interval.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The attached interface, e.g. eth0.
    iface: String,
    /// Only this reason (repeat). Default: every reason that drops.
    #[arg(long = "reason", value_parser = parse_reason)]
    reasons: Vec<Reason>,
    /// Look at one packet in N (1/N): cheaper in a flood, counts estimated.
    #[arg(long, default_value = "1/16", value_parser = parse_sample)]
    sample: u32,
    /// How many prefixes to show.
    #[arg(long, default_value_t = 10)]
    limit: usize,
    /// Redraw this often.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    interval: Duration,
    /// Stop after this long, printing the last table (with --json: only
    /// that one).
    #[arg(long = "for", value_parser = parse_duration)]
    duration: Option<Duration>,
}

#[derive(Serialize)]
struct Row {
    prefix: IpNet,
    verdict: &'static str,
    reason: &'static str,
    /// Packets seen in the capture, times the sample.
    packets: u64,
}

pub fn run(cx: &Env, args: Args) -> anyhow::Result<ExitCode> {
    let reasons: Vec<Reason> = if args.reasons.is_empty() {
        Reason::ALL
            .into_iter()
            .filter(|r| r.verdict() == Verdict::Drop)
            .collect()
    } else {
        args.reasons.clone()
    };
    let mut capture = start(cx, &args.iface, &reasons, args.sample)?;
    eprintln!("watching {}", args.iface);
    let started = Instant::now();
    let mut last_draw = Instant::now();
    let mut seen: HashMap<(IpNet, &'static str, Reason), u64> = HashMap::new();
    loop {
        let over = stopped() || args.duration.is_some_and(|d| started.elapsed() >= d);
        if over || (!cx.json && last_draw.elapsed() >= args.interval) {
            last_draw = Instant::now();
            let mut rows: Vec<Row> = seen
                .iter()
                .map(|(&(prefix, verdict, reason), &n)| Row {
                    prefix,
                    verdict,
                    reason: reason.name(),
                    packets: n * u64::from(args.sample),
                })
                .collect();
            rows.sort_by(|a, b| b.packets.cmp(&a.packets).then(a.prefix.cmp(&b.prefix)));
            rows.truncate(args.limit);
            print(cx, &args, &rows, started.elapsed(), over)?;
        }
        if over {
            break;
        }
        capture.renew()?;
        for packet in capture.next_batch(Duration::from_millis(200))? {
            if let Some(prefix) = frames::source_prefix(&packet.data) {
                *seen
                    .entry((prefix, packet.verdict, packet.reason))
                    .or_default() += 1;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print(cx: &Env, args: &Args, rows: &[Row], elapsed: Duration, last: bool) -> anyhow::Result<()> {
    if cx.json {
        println!("{}", serde_json::to_string_pretty(rows)?);
        return Ok(());
    }
    if !last {
        // Clear the screen and go home, like top(1).
        print!("\x1b[2J\x1b[H");
    }
    println!(
        "{}: source prefixes dropped most, over {:.0}s, 1 packet in {} looked at",
        args.iface,
        elapsed.as_secs_f64(),
        args.sample
    );
    println!(
        "  {:<24} {:<12} {:<14} {:>12}",
        "PREFIX", "VERDICT", "REASON", "PACKETS"
    );
    for row in rows {
        println!(
            "  {:<24} {:<12} {:<14} {:>12}",
            row.prefix.to_string(),
            row.verdict,
            row.reason,
            row.packets
        );
    }
    Ok(())
}
