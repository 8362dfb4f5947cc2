use std::{collections::BTreeMap, process::ExitCode};

use anyhow::Context;
use synguard::{config::Config, sysctl};

use super::Env;

/// Show, apply or restore the kernel settings synguard manages (in this
/// network namespace).
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Desired (from the config), actual, and original values; drift marked.
    Show,
    /// Apply the config's values, remembering the originals.
    Apply,
    /// Put back the values from before synguard changed them.
    Restore,
}

/// The desired values: the config's, or the defaults when there is no
/// config file at the default path.
fn desired(cx: &Env) -> anyhow::Result<BTreeMap<String, i64>> {
    if !cx.config.exists() && cx.config.as_os_str() == synguard::config::DEFAULT_PATH {
        return Ok(sysctl::defaults());
    }
    Ok(Config::load(&cx.config)?.sysctls)
}

pub fn run(cx: &Env, cmd: Command) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::Show => {
            let rows = sysctl::show(&desired(cx)?, &cx.state)?;
            if cx.json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
                return Ok(ExitCode::SUCCESS);
            }
            println!(
                "{:<32} {:>8} {:>8} {:>9}",
                "SYSCTL", "DESIRED", "ACTUAL", "ORIGINAL"
            );
            for row in &rows {
                let show = |v: Option<i64>| v.map_or("-".to_string(), |v| v.to_string());
                println!(
                    "{:<32} {:>8} {:>8} {:>9}{}",
                    row.name,
                    show(row.desired),
                    show(row.actual),
                    show(row.original),
                    if row.drifted() { "  drift" } else { "" }
                );
            }
        }
        Command::Apply => {
            let _lock = cx.state.lock().context("taking the state lock")?;
            let applied = sysctl::apply(&desired(cx)?, &cx.state)?;
            if applied.changed.is_empty() {
                println!("every sysctl already has its desired value; nothing to do");
            }
            for (name, from, to) in applied.changed {
                println!("{name}: {from} -> {to}");
            }
        }
        Command::Restore => {
            let _lock = cx.state.lock().context("taking the state lock")?;
            let restored = sysctl::restore(&cx.state)?;
            if restored.changed.is_empty() {
                println!("nothing to restore");
            }
            for (name, from, to) in restored.changed {
                println!("{name}: {from} -> {to} (restored)");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
