//! The CLI as one clap derive enum; one file per verb.
mod attach;
mod detach;
mod stats;

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};
use xdp_daemon::pins::{DEFAULT_ROOT, PinLayout};

/// synguard: SYN-flood mitigation at XDP.
///
/// Attaches an XDP program per interface that drops blocklisted sources and
/// answers SYN floods with kernel SYN cookies, and reads its counters. The
/// state lives pinned under bpffs, so it outlives this command.
#[derive(Debug, Parser)]
#[command(name = "synguard", version, about, long_about)]
pub struct Cli {
    /// Where synguard pins its programs and maps (a directory on bpffs).
    #[arg(long, global = true, env = "SYNGUARD_PIN_ROOT", default_value = DEFAULT_ROOT)]
    pin_root: PathBuf,

    /// Print data as JSON instead of a table.
    #[arg(long, global = true)]
    json: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Attach(attach::Args),
    Detach(detach::Args),
    Stats(stats::Args),
}

impl Cli {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let layout = PinLayout::new(self.pin_root);
        match self.command {
            Command::Attach(args) => attach::run(&layout, args),
            Command::Detach(args) => detach::run(&layout, args),
            Command::Stats(args) => stats::run(&layout, args, self.json),
        }
    }
}
