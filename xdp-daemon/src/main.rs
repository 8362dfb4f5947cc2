//! `synguard`: the command line. Every verb acts on the pinned state under
//! bpffs (see `xdp_daemon::pins`), so verbs work with or without a running
//! daemon and never disagree with it.
mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match cli.run() {
        Ok(code) => code,
        Err(err) => {
            eprintln!("synguard: {err:#}");
            ExitCode::FAILURE
        }
    }
}
