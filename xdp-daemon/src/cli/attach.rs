use std::process::ExitCode;

use anyhow::Context;
use xdp_daemon::{
    attach::{AttachMode, Attached, attach},
    pins::PinLayout,
};

/// Attach synguard to an interface; it stays attached until `detach`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The interface to protect, e.g. eth0.
    iface: String,
    /// native (in the driver), skb (generic), or auto (native, else skb).
    #[arg(long, default_value = "auto")]
    mode: AttachMode,
}

pub fn run(layout: &PinLayout, args: Args) -> anyhow::Result<ExitCode> {
    let outcome = attach(layout, &args.iface, args.mode)
        .with_context(|| format!("cannot attach to {}", args.iface))?;
    match outcome {
        Attached::New(mode) => println!("attached to {} ({mode} mode)", args.iface),
        Attached::Already => println!("{} is already attached; nothing to do", args.iface),
    }
    Ok(ExitCode::SUCCESS)
}
