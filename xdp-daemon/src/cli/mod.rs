//! The CLI as one clap derive enum; one file per verb.
mod attach;
mod detach;
mod lists;
mod stats;

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};
use xdp_daemon::{
    lists::List,
    pins::{DEFAULT_ROOT, PinLayout},
};

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
    /// Drop every packet from a source range, on every interface, at once.
    Block(lists::Cidr),
    /// Take a source range off the blocklist.
    Unblock(lists::Cidr),
    /// Let a source range skip every check, on every interface.
    Allow(lists::Cidr),
    /// Take a source range off the allowlist.
    Unallow(lists::Cidr),
    /// Show a list (default: blocked).
    List {
        #[arg(value_enum)]
        which: Option<lists::Which>,
    },
}

impl Cli {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let layout = PinLayout::new(self.pin_root);
        match self.command {
            Command::Attach(args) => attach::run(&layout, args),
            Command::Detach(args) => detach::run(&layout, args),
            Command::Stats(args) => stats::run(&layout, args, self.json),
            Command::Block(args) => lists::add(&layout, List::Block, args),
            Command::Unblock(args) => lists::remove(&layout, List::Block, args),
            Command::Allow(args) => lists::add(&layout, List::Allow, args),
            Command::Unallow(args) => lists::remove(&layout, List::Allow, args),
            Command::List { which } => lists::show(&layout, which, self.json),
        }
    }
}
