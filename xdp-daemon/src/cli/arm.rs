use std::process::ExitCode;

use anyhow::{Context, bail};
use synguard::settings;
use synguard_common::maps;

use super::Env;

/// Enforce on an interface attached in dry-run: drop and answer from now
/// on. One map write; the program stays attached (no link flap).
///
/// With the daemon, this lasts until its next reload, which applies the
/// config's `dry_run`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The attached interface, e.g. eth0.
    pub iface: String,
}

/// Put an attached interface in dry-run: pass everything, and count what
/// would have been dropped or answered. One map write; the program stays
/// attached.
#[derive(Debug, clap::Args)]
pub struct DisarmArgs {
    /// The attached interface, e.g. eth0.
    pub iface: String,
}

pub fn run(cx: &Env, iface: &str, dry_run: bool) -> anyhow::Result<ExitCode> {
    let _lock = cx.state.lock().context("taking the state lock")?;
    if !cx.layout.link(iface).exists() {
        bail!("synguard is not attached to {iface}: attach it first (synguard attach {iface})");
    }
    let path = cx.layout.map(iface, maps::CONFIG);
    let was = settings::set_dry_run(&path, dry_run)
        .with_context(|| format!("writing {}", path.display()))?;
    let now = if dry_run { "dry-run" } else { "enforcing" };
    if was == dry_run {
        println!("{iface} was already {now}");
    } else {
        println!("{iface} is now {now}");
    }
    Ok(ExitCode::SUCCESS)
}
