//! The man page and shell completions, generated from the same clap
//! definitions as `--help` (`cargo xtask package` runs these; see
//! docs/operating.md#install).
use std::process::ExitCode;

use clap::CommandFactory;

use super::Cli;

pub fn man() -> anyhow::Result<ExitCode> {
    let page = clap_mangen::Man::new(Cli::command()).section("8");
    page.render(&mut std::io::stdout())?;
    Ok(ExitCode::SUCCESS)
}

pub fn completions(shell: clap_complete::Shell) -> anyhow::Result<ExitCode> {
    clap_complete::generate(
        shell,
        &mut Cli::command(),
        "synguard",
        &mut std::io::stdout(),
    );
    Ok(ExitCode::SUCCESS)
}
