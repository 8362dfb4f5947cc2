//! Builds the XDP program from `../xdp-prog` and leaves the object in
//! `OUT_DIR/synguard-ebpf`, where `src/program.rs` embeds it. The eBPF crate needs a
//! compiler with its own library source for `-Z build-std=core` and the
//! `bpf-linker`; `cargo xtask setup` installs both
//! (docs/development.md#toolchain).
use std::{
    env,
    path::{Path, PathBuf},
    process::Command,
};

/// Debian's rustc-web: a rustc with `rust-src`, which rustup's nightly lacks here.
const DEFAULT_BPF_RUSTC: &str = "/usr/bin/rustc";
const DEFAULT_BPF_CARGO: &str = "/usr/bin/cargo";
const BPF_TARGET: &str = "bpfel-unknown-none";

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let workspace = manifest_dir.parent().unwrap();
    let prog_dir = workspace.join("xdp-prog");
    for watched in [
        "xdp-prog/src",
        "xdp-prog/Cargo.toml",
        "xdp-prog/Cargo.lock",
        "xdp-common",
    ] {
        println!(
            "cargo::rerun-if-changed={}",
            workspace.join(watched).display()
        );
    }
    println!("cargo::rerun-if-env-changed=SYNGUARD_BPF_RUSTC");
    println!("cargo::rerun-if-env-changed=SYNGUARD_BPF_CARGO");

    let rustc = env::var("SYNGUARD_BPF_RUSTC").unwrap_or_else(|_| DEFAULT_BPF_RUSTC.into());
    let cargo = env::var("SYNGUARD_BPF_CARGO").unwrap_or_else(|_| DEFAULT_BPF_CARGO.into());
    check_toolchain(&rustc, &cargo);

    // One target directory for every profile of the userspace build, so a
    // debug and a release build share the eBPF object.
    let target_dir = workspace.join("target").join("bpf");
    let mut build = Command::new(&cargo);
    build
        .current_dir(&prog_dir)
        .args(["build", "--release", "--locked", "--target", BPF_TARGET])
        .args(["-Z", "build-std=core"])
        .arg("--target-dir")
        .arg(&target_dir);
    // The outer cargo's settings (clippy's wrapper, rustflags, jobserver, the
    // target) are for userspace; none of them must leak into the eBPF build.
    for (key, _) in env::vars_os() {
        let key = key.to_string_lossy();
        if (key.starts_with("CARGO_") && key != "CARGO_HOME")
            || key.starts_with("RUSTC")
            || key.starts_with("RUSTDOC")
            || key == "RUSTFLAGS"
        {
            build.env_remove(&*key);
        }
    }
    build
        .env("RUSTC", &rustc)
        // Unlocks -Z build-std on this stable compiler, for this build only.
        .env("RUSTC_BOOTSTRAP", "1")
        .env("PATH", path_with_cargo_bin());
    let status = build
        .status()
        .unwrap_or_else(|e| panic!("cannot run {cargo}: {e}; run `cargo xtask setup`"));
    if !status.success() {
        panic!("building the XDP program (synguard-ebpf, in xdp-prog/) failed: {status}");
    }
    let object = target_dir
        .join(BPF_TARGET)
        .join("release")
        .join("synguard-ebpf");
    let out = PathBuf::from(env::var_os("OUT_DIR").unwrap()).join("synguard-ebpf");
    std::fs::copy(&object, &out)
        .unwrap_or_else(|e| panic!("copying {} to {}: {e}", object.display(), out.display()));
}

fn check_toolchain(rustc: &str, cargo: &str) {
    let fix = "run `cargo xtask setup` (docs/development.md#toolchain)";
    for tool in [rustc, cargo] {
        if !Path::new(tool).exists() {
            panic!("the eBPF build needs {tool}, which is missing: {fix}");
        }
    }
    let sysroot = Command::new(rustc)
        .args(["--print", "sysroot"])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {rustc}: {e}; {fix}"));
    let sysroot = String::from_utf8_lossy(&sysroot.stdout).trim().to_string();
    let core_src = Path::new(&sysroot).join("lib/rustlib/src/rust/library/core");
    if !core_src.exists() {
        panic!(
            "{rustc} has no library source at {}: {fix}",
            core_src.display()
        );
    }
    let has_linker =
        env::split_paths(&path_with_cargo_bin()).any(|dir| dir.join("bpf-linker").exists());
    if !has_linker {
        panic!("bpf-linker is not on PATH nor in $CARGO_HOME/bin: {fix}");
    }
}

/// PATH with `$CARGO_HOME/bin` appended, where `cargo install` puts bpf-linker.
fn path_with_cargo_bin() -> std::ffi::OsString {
    let mut paths: Vec<PathBuf> = env::var_os("PATH")
        .map(|p| env::split_paths(&p).collect())
        .unwrap_or_default();
    let cargo_home = env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")));
    if let Some(home) = cargo_home {
        paths.push(home.join("bin"));
    }
    env::join_paths(paths).unwrap()
}
