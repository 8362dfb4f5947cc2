use std::process::ExitCode;

use anyhow::Context;
use xdp_daemon::{
    attach::{Detached, detach},
    pins::PinLayout,
};

/// Detach synguard from an interface, leaving other interfaces alone.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The interface to stop protecting.
    iface: String,
}

pub fn run(layout: &PinLayout, args: Args) -> anyhow::Result<ExitCode> {
    let outcome = detach(layout, &args.iface)
        .with_context(|| format!("cannot detach from {}", args.iface))?;
    match outcome {
        Detached::Detached => println!("detached from {}", args.iface),
        Detached::NotAttached => println!("{} was not attached; nothing to do", args.iface),
    }
    Ok(ExitCode::SUCCESS)
}
