//! `synguard`: the command line. Every verb acts on the pinned state under
//! bpffs (see `synguard::pins`), so verbs work with or without a running
//! daemon and never disagree with it.
mod cli;

use std::process::ExitCode;

use clap::Parser;
use synguard::{config::ConfigError, program::LoadError};

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match cli.run() {
        Ok(code) => code,
        Err(err) => {
            eprintln!("synguard: {}", describe(&err));
            if denied(&err) {
                eprintln!(
                    "synguard: this needs root (or CAP_BPF, CAP_NET_ADMIN, CAP_PERFMON and \
                     CAP_SYS_ADMIN): the pinned maps and the state directory are root-only"
                );
            }
            if err.downcast_ref::<ConfigError>().is_some() {
                return ExitCode::from(2);
            }
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes, each cause once: many errors already quote
/// their source in their own message.
fn describe(err: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in err.chain() {
        let part = cause.to_string();
        if text.contains(&part) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&part);
    }
    text
}

/// Whether the failure was the kernel or the filesystem saying no. Not a
/// verifier's refusal: that is EACCES too, but no privilege would help.
fn denied(err: &anyhow::Error) -> bool {
    if err
        .chain()
        .any(|cause| matches!(cause.downcast_ref(), Some(LoadError::Verifier(_))))
    {
        return false;
    }
    err.chain().any(|cause| {
        let text = cause.to_string();
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::PermissionDenied)
            || text.contains("Operation not permitted")
            || text.contains("Permission denied")
    })
}
