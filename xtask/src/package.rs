//! `cargo xtask package`: the .deb. Builds synguard in release mode,
//! generates the man page and shell completions from the binary's own clap
//! definitions (hidden `man` and `completions` verbs), and runs cargo-deb
//! with the metadata in xdp-daemon/Cargo.toml.
use std::{fs, process::Command};

use anyhow::{Context, Result};

use crate::{build_release, cargo, exec, workspace};

/// cargo-deb, installed from crates.io if missing.
const CARGO_DEB: &str = "cargo-deb@^3";

pub fn run() -> Result<()> {
    crate::setup::run()?;
    let has_deb = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .args(["deb", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_deb {
        exec(cargo().args(["install", "--locked", CARGO_DEB]))?;
    }
    let bin = build_release()?;
    let out = workspace().join("target/package");
    fs::create_dir_all(&out)?;
    let generate = |args: &[&str], file: &str| -> Result<()> {
        let output = Command::new(&bin)
            .args(args)
            .output()
            .with_context(|| format!("running {} {}", bin.display(), args.join(" ")))?;
        anyhow::ensure!(
            output.status.success(),
            "synguard {} failed",
            args.join(" ")
        );
        fs::write(out.join(file), output.stdout)?;
        Ok(())
    };
    generate(&["man"], "synguard.8")?;
    generate(&["completions", "bash"], "synguard.bash")?;
    generate(&["completions", "zsh"], "_synguard")?;
    generate(&["completions", "fish"], "synguard.fish")?;
    exec(
        cargo()
            .args(["deb", "-p", "synguard", "--no-build", "--output"])
            .arg(&out),
    )?;
    eprintln!("xtask: the package is in {}", out.display());
    Ok(())
}
