//! Installs what building the XDP program and running the lab need, and
//! says what it does. Idempotent: a second run only checks.
//!
//! The recipe: Debian's rustc-web (rustc 1.96 on LLVM 22) with its library
//! source rust-web-src, for `-Z build-std=core` (rustup's nightly here has no
//! rust-src and cannot download it), and bpf-linker built against Debian's
//! LLVM 22 (its default feature wants LLVM 23).
use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, Result, bail, ensure};

use crate::{exec, is_root};

/// Debian packages: the eBPF compiler and its source, LLVM for bpf-linker,
/// the tools the lab drives (ip, ethtool; gobgpd, the BGP speaker
/// of the fleet tests and of `[bgp]`), tshark, with which the tests read
/// `synguard capture`'s files as an operator would, and bpftool, with
/// which the dry-run test reads the pinned link as an operator would.
const PACKAGES: &[&str] = &[
    "rustc-web",
    "cargo-web",
    "rust-web-src",
    "llvm-22-dev",
    "iproute2",
    "ethtool",
    "gobgpd",
    "tshark",
    "bpftool",
];
const LLVM_PREFIX: &str = "/usr/lib/llvm-22";
/// promtool (the alert rules' unit tests, the lint of a real scrape), taken
/// out of Debian's prometheus package rather than installed with it: the
/// package's init script would start a Prometheus server on a host whose
/// PID 1 is not systemd. Relative to the workspace.
pub const PROMTOOL: &str = "target/tools/promtool";
const BPF_LINKER_VERSION: &str = "0.13";

/// Installs Debian packages without their recommends (root).
pub fn apt_install(packages: &[&str]) -> Result<()> {
    exec(Command::new("apt-get").args(["update", "-q"]))?;
    exec(
        Command::new("apt-get")
            .args(["install", "-y", "-q", "--no-install-recommends"])
            .args(packages)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
}

pub fn run() -> Result<()> {
    let missing: Vec<&str> = PACKAGES.iter().copied().filter(|p| !installed(p)).collect();
    if !missing.is_empty() {
        let list = missing.join(" ");
        if !Path::new("/etc/debian_version").exists() {
            bail!(
                "missing {list}, and this is not Debian: install the equivalents (rustc 1.96 with rust-src, LLVM 22 dev files, iproute2, ethtool, gobgpd, tshark, bpftool) by hand"
            );
        }
        if !is_root() {
            bail!(
                "missing Debian packages: {list}; as root run: apt-get update && apt-get install -y {list}"
            );
        }
        eprintln!("xtask setup: installing Debian packages: {list}");
        apt_install(&missing)?;
    }
    if bpf_linker().is_none() {
        eprintln!(
            "xtask setup: building bpf-linker {BPF_LINKER_VERSION} against {LLVM_PREFIX} (about a minute)"
        );
        let path = format!(
            "{LLVM_PREFIX}/bin:{}",
            std::env::var("PATH").unwrap_or_default()
        );
        exec(
            crate::cargo()
                .args([
                    "install",
                    "bpf-linker",
                    "--version",
                    &format!("^{BPF_LINKER_VERSION}"),
                ])
                .args(["--no-default-features", "--features", "llvm-22"])
                .env("LLVM_PREFIX", LLVM_PREFIX)
                .env("PATH", path),
        )?;
    }
    promtool()?;
    eprintln!(
        "xtask setup: toolchain ready (rustc-web, rust-web-src, llvm-22, bpf-linker, iproute2, ethtool, gobgpd, promtool, tshark, bpftool)"
    );
    Ok(())
}

/// Puts promtool at [`PROMTOOL`] unless it is there and runs.
fn promtool() -> Result<()> {
    let dest = crate::workspace().join(PROMTOOL);
    if runs(&dest) {
        return Ok(());
    }
    let scratch = crate::workspace().join("target/tools/prometheus-deb");
    let _ = fs::remove_dir_all(&scratch);
    fs::create_dir_all(&scratch)?;
    eprintln!("xtask setup: taking promtool out of Debian's prometheus package");
    let download = || {
        Command::new("apt-get")
            .args(["download", "-q", "prometheus"])
            .current_dir(&scratch)
            .status()
            .is_ok_and(|s| s.success())
    };
    if !download() {
        // No package lists yet (a fresh machine).
        exec(Command::new("apt-get").args(["update", "-q"]))?;
        if !download() {
            bail!(
                "apt-get download prometheus failed: promtool is needed for the alert rules' tests"
            );
        }
    }
    let deb = fs::read_dir(&scratch)?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .context("apt-get download prometheus left no .deb")?;
    let unpacked = scratch.join("x");
    exec(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&unpacked))?;
    fs::copy(unpacked.join("usr/bin/promtool"), &dest)
        .with_context(|| format!("copying promtool to {}", dest.display()))?;
    fs::remove_dir_all(&scratch)?;
    ensure!(runs(&dest), "{} does not run", dest.display());
    Ok(())
}

fn runs(program: &Path) -> bool {
    Command::new(program)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

pub(crate) fn installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "install ok installed")
        .unwrap_or(false)
}

/// Where bpf-linker is, if it is installed and runs.
fn bpf_linker() -> Option<PathBuf> {
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))?;
    let candidates = on_path("bpf-linker").chain([cargo_home.join("bin/bpf-linker")]);
    candidates.into_iter().find(|c| {
        Command::new(c)
            .arg("--version")
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    })
}

/// `program` in each directory of PATH, in order (existing or not).
fn on_path(program: &str) -> impl Iterator<Item = PathBuf> {
    let dirs = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    dirs.into_iter().map(move |dir| dir.join(program))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// Every program name the tests start by a literal (`Command::new("x")`,
    /// `ns.command("x")`).
    fn programs_the_tests_run() -> BTreeSet<String> {
        let root = crate::workspace();
        let mut files = Vec::new();
        for dir in ["tests/src", "tests/tests"] {
            crate::docs::walk(&root, &root.join(dir), &mut files).unwrap();
        }
        let mut programs = BTreeSet::new();
        for file in files
            .iter()
            .filter(|f| f.extension().is_some_and(|e| e == "rs"))
        {
            let text = fs::read_to_string(root.join(file)).unwrap();
            for call in ["Command::new(\"", ".command(\""] {
                for (at, _) in text.match_indices(call) {
                    let rest = &text[at + call.len()..];
                    if let Some(end) = rest.find('"') {
                        programs.insert(rest[..end].to_string());
                    }
                }
            }
        }
        programs
    }

    /// The Debian package that owns `program` as found on PATH, if any.
    fn owner(program: &str) -> Option<String> {
        let path = on_path(program).find(|p| p.exists())?;
        // Debian's merged /usr: dpkg may know the file under /bin or /sbin,
        // or under its target's name.
        let mut names = vec![path.clone()];
        if let Ok(stripped) = path.strip_prefix("/usr") {
            names.push(Path::new("/").join(stripped));
        }
        if let Ok(real) = fs::canonicalize(&path) {
            names.push(real);
        }
        names.into_iter().find_map(|name| {
            let out = Command::new("dpkg-query")
                .arg("-S")
                .arg(&name)
                .output()
                .ok()?;
            let text = String::from_utf8_lossy(&out.stdout);
            let line = text.lines().next()?;
            Some(line.split(':').next()?.trim().to_string())
        })
    }

    /// A new tool in the tests needs a package in [`PACKAGES`] (or one
    /// every Debian has): on a fresh machine `cargo xtask test` would
    /// otherwise fail where the developer's machine, which had it from
    /// elsewhere, passed (bpftool, found by a clean clone on a fresh
    /// machine).
    #[test]
    fn every_program_the_tests_run_comes_from_setup() {
        if !Path::new("/etc/debian_version").exists() {
            eprintln!("not Debian: setup's packages are Debian's; not checked");
            return;
        }
        let programs = programs_the_tests_run();
        assert!(
            programs.contains("ip") && programs.contains("bpftool"),
            "{programs:?}"
        );
        for program in programs {
            let Some(package) = owner(&program) else {
                panic!(
                    "the tests run {program}, which no Debian package here provides: add its package to setup's PACKAGES and install it"
                );
            };
            let fields = Command::new("dpkg-query")
                .args(["-W", "-f=${Essential} ${Priority}", &package])
                .output()
                .unwrap();
            let fields = String::from_utf8_lossy(&fields.stdout).to_string();
            let everywhere = fields.starts_with("yes") || fields.ends_with("required");
            assert!(
                everywhere || PACKAGES.contains(&package.as_str()),
                "the tests run {program}, from {package} ({fields}), which cargo xtask setup does not install: add it to PACKAGES"
            );
        }
    }
}
