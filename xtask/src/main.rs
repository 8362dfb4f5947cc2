//! `cargo xtask`: set-up, build, test and demo automation for synguard.
mod bench;
mod demo;
mod docs;
mod matrix;
mod package;
mod setup;
mod systemd;
mod test;

use std::{
    path::{Path, PathBuf},
    process::{Command, ExitCode},
};

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "synguard's automation")]
struct Cli {
    #[command(subcommand)]
    command: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install what the eBPF build and the lab need (idempotent; needs root on Debian).
    Setup,
    /// Build the synguard binary (release), with the XDP program embedded.
    Build,
    /// Run every check and test: fmt, doc links, clippy, unit, packet and
    /// namespace tests, the kernel matrix (root).
    Test,
    /// Check that every link in the docs, and every doc cited in source,
    /// resolves to a file and heading that exist.
    Docs,
    /// Show synguard at work in a namespace lab, then tear it down (root).
    Demo,
    /// Build the .deb (binary, systemd unit, example config, man page,
    /// completions, Grafana dashboard) into target/package.
    Package,
    /// Measure per-packet cost and defences under a SYN flood, side by side (root).
    Bench(bench::Args),
    /// Boot Debian's kernels (5.10, 6.1, 6.12, the newest) under qemu and run
    /// the smoke checks in each, then on this kernel; writes
    /// target/matrix/matrix.json (root).
    Matrix,
    /// Install the .deb in a Debian container booted with systemd as PID 1
    /// (systemd-nspawn) and drive the service through systemctl: start,
    /// reload, watchdog, kill -9, stop, capabilities, journal, dpkg -r and
    /// --purge (root).
    Systemd,
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Task::Setup => setup::run(),
        Task::Build => setup::run().and_then(|()| build_release()).map(drop),
        Task::Test => test::run(),
        Task::Docs => docs::run(),
        Task::Demo => demo::run(),
        Task::Package => package::run(),
        Task::Bench(args) => bench::run(args),
        Task::Matrix => matrix::run(),
        Task::Systemd => systemd::run(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("xtask: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root (xtask lives one level below it).
fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// `cargo` as invoked by the user (rustup's, via the alias).
fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(workspace());
    cmd
}

/// Runs a command, echoing it, and fails if it fails.
fn exec(cmd: &mut Command) -> Result<()> {
    eprintln!("xtask: running {}", describe(cmd));
    let status = cmd
        .status()
        .with_context(|| format!("running {}", describe(cmd)))?;
    if !status.success() {
        bail!("{} failed ({status})", describe(cmd));
    }
    Ok(())
}

fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        s.push(' ');
        s.push_str(&arg.to_string_lossy());
    }
    s
}

/// Whether `var=skip` asks to leave out a part of `cargo xtask test` on
/// this machine; says so, naming what was not tested.
fn skipped_by_hand(task: &str, var: &str, untested: &str) -> bool {
    let skip = std::env::var(var).is_ok_and(|v| v == "skip");
    if skip {
        eprintln!("xtask {task}: skipped by hand ({var}=skip): {untested}");
    }
    skip
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Builds `synguard` in release mode and returns its path.
fn build_release() -> Result<PathBuf> {
    exec(cargo().args(["build", "--release", "--locked", "-p", "synguard"]))?;
    Ok(workspace().join("target/release/synguard"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// xtask installs the eBPF toolchain, so it must build before it is
    /// there: nothing it links (normal or build dependencies, direct or
    /// not) may be `synguard`, whose build script needs that toolchain.
    #[test]
    fn xtask_builds_without_the_ebpf_toolchain() {
        let tree = cargo()
            .args(["tree", "--locked", "-p", "xtask", "-e", "normal,build"])
            .args(["--prefix", "none", "--format", "{p}"])
            .output()
            .unwrap();
        assert!(
            tree.status.success(),
            "{}",
            String::from_utf8_lossy(&tree.stderr)
        );
        let tree = String::from_utf8(tree.stdout).unwrap();
        assert!(tree.lines().any(|l| l.starts_with("synguard-common ")));
        let synguard: Vec<&str> = tree
            .lines()
            .filter(|l| l.starts_with("synguard v"))
            .collect();
        assert!(synguard.is_empty(), "xtask links {synguard:?}");
    }
}
