use std::{path::PathBuf, process::ExitCode};

use synguard::config::Config;

use super::Env;

/// Work with the configuration file.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Validate a config file and the list files it names, touching nothing;
    /// errors name the file, line, key and reason (exit code 2).
    Check {
        /// The file to check (default: --config).
        file: Option<PathBuf>,
    },
}

pub fn run(cx: &Env, cmd: Command) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::Check { file } => {
            let path = file.unwrap_or_else(|| cx.config.clone());
            match Config::load(&path) {
                Ok(config) => {
                    println!(
                        "{}: ok ({} interface(s), {} blocked and {} allowed range(s), {} sysctl(s))",
                        path.display(),
                        config.interfaces.len(),
                        config.block.len(),
                        config.allow.len(),
                        config.sysctls.len()
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    eprintln!("synguard: {e}");
                    Ok(ExitCode::from(2))
                }
            }
        }
    }
}
