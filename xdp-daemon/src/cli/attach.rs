use std::process::ExitCode;

use anyhow::Context;
use synguard::{
    attach::{AttachMode, Attached, attach},
    config::parse_flood_mode,
    nic,
    settings::FloodPolicy,
};
use synguard_common::FloodMode;

use super::Env;

/// Attach synguard to an interface; it stays attached until `detach`.
/// On an attached interface, updates its flood settings.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The interface to protect, e.g. eth0.
    iface: String,
    /// native (in the driver), skb (generic), or auto (native, else skb).
    #[arg(long, default_value = "auto")]
    mode: AttachMode,
    /// When to answer SYNs from XDP: auto (when the SYN rate says flood),
    /// always, or off.
    #[arg(long, default_value = "auto", value_parser = parse_flood_mode)]
    flood: FloodMode,
    /// SYN/s on the interface at which flood mode engages (auto).
    #[arg(long, default_value_t = FloodPolicy::default().syn_rate_on)]
    syn_rate_on: u32,
    /// SYN/s below which flood mode may end (auto).
    #[arg(long, default_value_t = FloodPolicy::default().syn_rate_off)]
    syn_rate_off: u32,
    /// Answer SYNs from XDP in a flood only for these destination ports
    /// (repeat, or comma-separated); SYNs to other ports go to the kernel.
    /// Default: every port with a listener.
    #[arg(long = "port", value_delimiter = ',')]
    ports: Vec<u16>,
    /// Turn the per-source SYN budgets off.
    #[arg(long)]
    no_budgets: bool,
    /// Pass everything, and count what would have been dropped or answered
    /// (`would_drop`, `would_answer` in `stats`). `synguard arm` enforces,
    /// without reattaching.
    #[arg(long)]
    dry_run: bool,
    /// Replace another XDP program found on the interface (by default
    /// synguard refuses and names it).
    #[arg(long)]
    replace: bool,
}

pub fn run(cx: &Env, args: Args) -> anyhow::Result<ExitCode> {
    let mut policy = FloodPolicy {
        mode: args.flood,
        syn_rate_on: args.syn_rate_on,
        syn_rate_off: args.syn_rate_off,
        ports: args.ports,
        dry_run: args.dry_run,
        ..FloodPolicy::default()
    };
    if args.no_budgets {
        for budget in [
            &mut policy.budget_v4_host,
            &mut policy.budget_v4_net,
            &mut policy.budget_v6_host,
            &mut policy.budget_v6_net,
        ] {
            budget.rate = 0;
        }
    }
    let _lock = cx.state.lock().context("taking the state lock")?;
    let before = nic::channels(&args.iface).ok();
    let outcome = attach(&cx.layout, &args.iface, args.mode, &policy, args.replace)
        .with_context(|| format!("cannot attach to {}", args.iface))?;
    match outcome {
        Attached::New(mode) => {
            let dry = if args.dry_run { ", dry-run" } else { "" };
            println!("attached to {} ({mode} mode{dry})", args.iface);
            for w in nic::warnings(&args.iface, args.mode, mode, before) {
                eprintln!("warning: {w}");
            }
        }
        Attached::Already => println!("{} is already attached; settings updated", args.iface),
    }
    Ok(ExitCode::SUCCESS)
}
