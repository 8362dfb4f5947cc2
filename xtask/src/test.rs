//! Every check and test, in the order that fails fastest: fmt, doc links,
//! clippy, the alert rules' unit tests, the workspace's tests, the .deb
//! under a booted systemd, then the kernel matrix.
use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
};

use anyhow::{Context, Result, bail};

use crate::{cargo, exec, is_root, workspace};

pub fn run() -> Result<()> {
    crate::setup::run()?;
    if !is_root() {
        bail!(
            "cargo xtask test needs root: the tests create network namespaces, attach XDP programs and run BPF_PROG_TEST_RUN; run it as root"
        );
    }
    exec(cargo().args(["fmt", "--all", "--check"]))?;
    let prog_manifest = workspace().join("xdp-prog/Cargo.toml");
    exec(
        cargo()
            .args(["fmt", "--check", "--manifest-path"])
            .arg(&prog_manifest),
    )?;
    crate::docs::run()?;
    exec(cargo().args([
        "clippy",
        "--locked",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    // The alert rules: valid, and their unit tests pass.
    let promtool = workspace().join(crate::setup::PROMTOOL);
    exec(
        Command::new(&promtool)
            .args(["check", "rules", "synguard.rules.yml"])
            .current_dir(workspace().join("packaging/prometheus")),
    )?;
    exec(
        Command::new(&promtool)
            .args(["test", "rules", "synguard.rules.test.yml"])
            .current_dir(workspace().join("packaging/prometheus")),
    )?;
    // The end-to-end tests drive the real binary, built next to them.
    exec(cargo().args(["build", "--locked", "-p", "synguard"]))?;
    let tally = cargo_test()?;
    let closing = || {
        // One closing line over all test binaries (cargo prints one per
        // binary), last, after the kernel matrix.
        println!(
            "tests: {} passed, {} failed, {} skipped",
            tally.passed, tally.failed, tally.ignored
        );
    };
    if tally.failed > 0 || !tally.success {
        closing();
        bail!("tests failed");
    }
    if tally.passed == 0 {
        closing();
        bail!("no test ran");
    }
    // The package and its unit in a container booted with systemd as PID 1
    // (docs/operating.md#running-under-systemd).
    if let Err(e) = crate::systemd::run() {
        closing();
        return Err(e.context("the .deb under systemd"));
    }
    // Debian's kernels booted under qemu (docs/kernels.md#the-kernel-matrix):
    // fails the run when a kernel does worse than that page promises.
    let matrix = crate::matrix::run().context("the kernel matrix");
    closing();
    matrix
}

#[derive(Default)]
struct Tally {
    passed: u64,
    failed: u64,
    ignored: u64,
    success: bool,
}

/// Runs `cargo test --workspace`, echoing its output, and adds up its
/// `test result:` lines.
fn cargo_test() -> Result<Tally> {
    let mut cmd = cargo();
    cmd.args(["test", "--locked", "--workspace"])
        .stdout(Stdio::piped());
    eprintln!("xtask: running cargo test --locked --workspace");
    let mut child = cmd.spawn().context("running cargo test")?;
    let mut tally = Tally::default();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line?;
        println!("{line}");
        if let Some(rest) = line.strip_prefix("test result: ") {
            for part in rest.split([';', '.']) {
                let mut words = part.split_whitespace();
                if let (Some(n), Some(what)) = (words.next(), words.next()) {
                    let Ok(n) = n.parse::<u64>() else { continue };
                    match what {
                        "passed" => tally.passed += n,
                        "failed" => tally.failed += n,
                        "ignored" => tally.ignored += n,
                        _ => {}
                    }
                }
            }
        }
    }
    tally.success = child.wait()?.success();
    Ok(tally)
}
