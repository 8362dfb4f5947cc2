use std::process::ExitCode;

use synguard::daemon::{self, Options};

use super::Env;

/// Run the service in the foreground (systemd Type=notify): apply the
/// config, keep it current, serve /metrics. SIGHUP reloads the config; a
/// clean stop detaches and restores sysctls unless keep_attached_on_stop.
#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(cx: &Env, _args: Args) -> anyhow::Result<ExitCode> {
    daemon::run(Options {
        config_path: cx.config.clone(),
        layout: cx.layout.clone(),
        state: cx.state.clone(),
    })?;
    Ok(ExitCode::SUCCESS)
}
