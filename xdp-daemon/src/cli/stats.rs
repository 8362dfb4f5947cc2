use std::{collections::BTreeMap, process::ExitCode, time::Duration};

use anyhow::Context;
use serde::Serialize;
use synguard::{
    config::parse_duration,
    counters::{CounterRow, Counters},
};

use super::Env;

/// Show the counters of every attached interface, by verdict and reason.
///
/// On a dry-run interface, what it passed but would have dropped or
/// answered shows as `would_drop` or `would_answer`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print again every interval, with per-second rates, until Ctrl-C.
    #[arg(long)]
    watch: bool,
    /// The interval of --watch.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    interval: Duration,
}

#[derive(Serialize)]
struct DeviceStats {
    device: String,
    counters: Vec<Row>,
}

#[derive(Serialize)]
struct Row {
    #[serde(flatten)]
    counter: CounterRow,
    /// Packets per second since the previous print (--watch).
    #[serde(skip_serializing_if = "Option::is_none")]
    pps: Option<f64>,
}

fn read(cx: &Env) -> anyhow::Result<BTreeMap<String, Counters>> {
    let mut out = BTreeMap::new();
    let attached = cx
        .layout
        .attached()
        .with_context(|| format!("listing {}", cx.layout.root().display()))?;
    for device in attached {
        let path = cx.layout.counters(&device);
        let counters =
            Counters::read_pinned(&path).with_context(|| format!("reading {}", path.display()))?;
        out.insert(device, counters);
    }
    Ok(out)
}

pub fn run(cx: &Env, args: Args) -> anyhow::Result<ExitCode> {
    let mut previous = read(cx)?;
    if !args.watch {
        print(cx, &previous, None, args.interval)?;
        return Ok(ExitCode::SUCCESS);
    }
    if args.interval.is_zero() {
        anyhow::bail!("--interval must be more than 0");
    }
    loop {
        std::thread::sleep(args.interval);
        let current = read(cx)?;
        if !cx.json {
            // Clear the screen and go home, like watch(1).
            print!("\x1b[2J\x1b[H");
        }
        print(cx, &current, Some(&previous), args.interval)?;
        previous = current;
    }
}

fn print(
    cx: &Env,
    now: &BTreeMap<String, Counters>,
    before: Option<&BTreeMap<String, Counters>>,
    interval: Duration,
) -> anyhow::Result<()> {
    let devices: Vec<DeviceStats> = now
        .iter()
        .map(|(device, counters)| {
            let earlier = before.and_then(|b| b.get(device));
            let counters = counters
                .rows()
                .into_iter()
                .map(|counter| {
                    let pps = earlier.map(|e| {
                        let old = e
                            .rows()
                            .into_iter()
                            .find(|r| (r.verdict, r.reason) == (counter.verdict, counter.reason))
                            .map_or(0, |r| r.packets);
                        counter.packets.saturating_sub(old) as f64 / interval.as_secs_f64()
                    });
                    Row { counter, pps }
                })
                .collect();
            DeviceStats {
                device: device.clone(),
                counters,
            }
        })
        .collect();
    if cx.json {
        if before.is_none() {
            println!("{}", serde_json::to_string_pretty(&devices)?);
        } else {
            println!("{}", serde_json::to_string(&devices)?);
        }
        return Ok(());
    }
    if devices.is_empty() {
        println!("synguard is not attached to any interface");
    }
    for device in &devices {
        println!("{}", device.device);
        println!(
            "  {:<8} {:<15} {:>14} {:>16} {:>12}",
            "VERDICT", "REASON", "PACKETS", "BYTES", "PKT/S"
        );
        for row in &device.counters {
            let c = &row.counter;
            println!(
                "  {:<8} {:<15} {:>14} {:>16} {:>12}",
                c.verdict,
                c.reason,
                c.packets,
                c.bytes,
                row.pps.map_or("-".into(), |p| format!("{p:.0}"))
            );
        }
    }
    Ok(())
}
