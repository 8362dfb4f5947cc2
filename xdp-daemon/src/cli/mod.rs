//! The CLI as one clap derive enum; one file per verb.
mod arm;
mod attach;
mod capture;
mod config;
mod detach;
mod docs;
mod explain;
mod lists;
mod run;
mod stats;
mod status;
mod sysctl;
mod top;

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};
use synguard::{
    lists::List,
    pins::{DEFAULT_ROOT, PinLayout},
    state::{DEFAULT_STATE_DIR, StateDir},
};

/// synguard: SYN-flood mitigation at XDP.
///
/// Attaches an XDP program per interface that drops blocklisted sources and
/// answers SYN floods with kernel SYN cookies, and reads its counters. The
/// state lives pinned under bpffs, so it outlives this command and the
/// daemon: every verb works with or without `synguard run`.
///
/// Exit codes: 0 success (including "nothing to do"), 1 failure, 2 bad usage
/// or a bad config.
#[derive(Debug, Parser)]
#[command(name = "synguard", version, about, long_about)]
pub struct Cli {
    /// Where synguard pins its programs and maps (a directory on bpffs).
    #[arg(long, global = true, env = "SYNGUARD_PIN_ROOT", default_value = DEFAULT_ROOT)]
    pin_root: PathBuf,

    /// Where synguard keeps what the pins cannot hold (original sysctls,
    /// list comments, the daemon's status, the lock).
    #[arg(long, global = true, env = "SYNGUARD_STATE_DIR", default_value = DEFAULT_STATE_DIR)]
    state_dir: PathBuf,

    /// The configuration file.
    #[arg(long, global = true, env = "SYNGUARD_CONFIG", default_value = synguard::config::DEFAULT_PATH)]
    config: PathBuf,

    /// Print data as JSON instead of a table.
    #[arg(long, global = true)]
    json: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Run(run::Args),
    #[command(subcommand)]
    Config(config::Command),
    Status(status::Args),
    Attach(attach::Args),
    Detach(detach::Args),
    Arm(arm::Args),
    Disarm(arm::DisarmArgs),
    Stats(stats::Args),
    Capture(capture::Args),
    Top(top::Args),
    Explain(explain::Args),
    /// Drop every packet from a source range, on every interface, at once.
    Block(lists::BlockArgs),
    /// Take a source range off the blocklist.
    Unblock(lists::Cidr),
    /// Let a source range skip every check, on every interface.
    Allow(lists::AllowArgs),
    /// Take a source range off the allowlist.
    Unallow(lists::Cidr),
    /// Show a list (default: blocked).
    List {
        #[arg(value_enum)]
        which: Option<lists::Which>,
    },
    #[command(subcommand)]
    Sysctl(sysctl::Command),
    /// Print the man page (roff) on stdout.
    #[command(hide = true)]
    Man,
    /// Print shell completions on stdout.
    #[command(hide = true)]
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// What every verb gets.
pub struct Env {
    pub layout: PinLayout,
    pub state: StateDir,
    pub config: PathBuf,
    pub json: bool,
}

impl Cli {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        if !matches!(self.command, Command::Run(_)) {
            // `synguard list | head`: end quietly when the reader goes, like
            // other Unix tools, instead of failing on a broken pipe. Not
            // for the daemon, whose sockets must never kill it.
            // SAFETY: setting a signal disposition before any thread starts.
            unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
        }
        let cx = Env {
            layout: PinLayout::new(self.pin_root),
            state: StateDir::new(self.state_dir),
            config: self.config,
            json: self.json,
        };
        match self.command {
            Command::Run(args) => run::run(&cx, args),
            Command::Config(cmd) => config::run(&cx, cmd),
            Command::Status(args) => status::run(&cx, args),
            Command::Attach(args) => attach::run(&cx, args),
            Command::Detach(args) => detach::run(&cx, args),
            Command::Arm(args) => arm::run(&cx, &args.iface, false),
            Command::Disarm(args) => arm::run(&cx, &args.iface, true),
            Command::Stats(args) => stats::run(&cx, args),
            Command::Capture(args) => capture::run(&cx, args),
            Command::Top(args) => top::run(&cx, args),
            Command::Explain(args) => explain::run(&cx, args),
            Command::Block(args) => lists::block(&cx, args),
            Command::Unblock(args) => lists::remove(&cx, List::Block, args),
            Command::Allow(args) => lists::allow(&cx, args),
            Command::Unallow(args) => lists::remove(&cx, List::Allow, args),
            Command::List { which } => lists::show(&cx, which),
            Command::Sysctl(cmd) => sysctl::run(&cx, cmd),
            Command::Man => docs::man(),
            Command::Completions { shell } => docs::completions(shell),
        }
    }
}
