use std::process::ExitCode;

use anyhow::Context;
use serde::Serialize;
use xdp_daemon::{
    counters::{CounterRow, Counters},
    pins::PinLayout,
};

/// Show the counters of every attached interface, by verdict and reason.
#[derive(Debug, clap::Args)]
pub struct Args {}

#[derive(Serialize)]
struct DeviceStats {
    device: String,
    counters: Vec<CounterRow>,
}

pub fn run(layout: &PinLayout, _args: Args, json: bool) -> anyhow::Result<ExitCode> {
    let mut devices = Vec::new();
    let attached = layout
        .attached()
        .with_context(|| format!("listing {}", layout.root().display()))?;
    for device in attached {
        let path = layout.counters(&device);
        let counters =
            Counters::read_pinned(&path).with_context(|| format!("reading {}", path.display()))?;
        devices.push(DeviceStats {
            device,
            counters: counters.rows(),
        });
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&devices)?);
        return Ok(ExitCode::SUCCESS);
    }
    if devices.is_empty() {
        println!("synguard is not attached to any interface");
    }
    for device in &devices {
        println!("{}", device.device);
        println!(
            "  {:<8} {:<15} {:>14} {:>16}",
            "VERDICT", "REASON", "PACKETS", "BYTES"
        );
        for row in &device.counters {
            println!(
                "  {:<8} {:<15} {:>14} {:>16}",
                row.verdict, row.reason, row.packets, row.bytes
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
