use std::process::ExitCode;

use anyhow::Context;
use synguard::attach::{Detached, detach};

use super::Env;

/// Detach synguard from an interface, leaving other interfaces alone.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The interface to stop protecting.
    iface: String,
}

pub fn run(cx: &Env, args: Args) -> anyhow::Result<ExitCode> {
    let _lock = cx.state.lock().context("taking the state lock")?;
    let outcome = detach(&cx.layout, &args.iface)
        .with_context(|| format!("cannot detach from {}", args.iface))?;
    match outcome {
        Detached::Detached => println!("detached from {}", args.iface),
        Detached::NotAttached => println!("{} was not attached; nothing to do", args.iface),
    }
    Ok(ExitCode::SUCCESS)
}
