//! Driving the real `synguard` binary from a lab, with a pin root of the
//! lab's own so labs never see each other's state.
use std::{
    path::{Path, PathBuf},
    process::Output,
};

use anyhow::{Context, Result, bail};

use crate::netns::Netns;

/// The `synguard` binary under test: `$SYNGUARD_BIN`, else the one cargo
/// built next to this test executable (target/<profile>/synguard).
pub fn binary() -> PathBuf {
    if let Some(bin) = std::env::var_os("SYNGUARD_BIN") {
        return PathBuf::from(bin);
    }
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/<test> or target/<profile>/<bin>
    for dir in exe.ancestors().skip(1).take(2) {
        let candidate = dir.join("synguard");
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!(
        "no synguard binary next to {}; build it (`cargo build -p xdp-daemon`) or set SYNGUARD_BIN",
        exe.display()
    );
}

/// synguard's state for one lab: removed (which detaches) on drop.
pub struct Synguard {
    bin: PathBuf,
    pin_root: PathBuf,
}

impl Synguard {
    pub fn new(name: &str) -> Synguard {
        Self::with_binary(binary(), name)
    }

    /// Uses the given `synguard` binary; `name` makes the pin root unique.
    pub fn with_binary(bin: PathBuf, name: &str) -> Synguard {
        Synguard {
            bin,
            pin_root: PathBuf::from(format!("/sys/fs/bpf/synguard-lab-{name}")),
        }
    }

    pub fn pin_root(&self) -> &Path {
        &self.pin_root
    }

    /// Runs `synguard args...` inside `ns`; fails with its stderr.
    pub fn run(&self, ns: &Netns, args: &[&str]) -> Result<String> {
        let out = self.output(ns, args)?;
        if !out.status.success() {
            bail!(
                "synguard {} failed ({}): {}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Runs `synguard args...` inside `ns` and returns what happened.
    pub fn output(&self, ns: &Netns, args: &[&str]) -> Result<Output> {
        ns.command(&self.bin)
            .args(args)
            .env("SYNGUARD_PIN_ROOT", &self.pin_root)
            .output()
            .with_context(|| format!("running {}", self.bin.display()))
    }

    /// Counters of `device` from `synguard --json stats`: (verdict, reason) -> packets.
    pub fn counters(&self, ns: &Netns, device: &str) -> Result<Vec<(String, String, u64)>> {
        let text = self.run(ns, &["--json", "stats"])?;
        let json: serde_json::Value = serde_json::from_str(&text).context("stats JSON")?;
        let mut rows = Vec::new();
        for dev in json.as_array().into_iter().flatten() {
            if dev["device"] != device {
                continue;
            }
            for row in dev["counters"].as_array().into_iter().flatten() {
                rows.push((
                    row["verdict"].as_str().unwrap_or_default().to_string(),
                    row["reason"].as_str().unwrap_or_default().to_string(),
                    row["packets"].as_u64().unwrap_or_default(),
                ));
            }
        }
        Ok(rows)
    }

    /// Packets counted for one verdict and reason on `device`.
    pub fn count(&self, ns: &Netns, device: &str, verdict: &str, reason: &str) -> Result<u64> {
        Ok(self
            .counters(ns, device)?
            .into_iter()
            .filter(|(v, r, _)| v == verdict && r == reason)
            .map(|(_, _, n)| n)
            .sum())
    }

    /// Packets counted for one verdict and reason once the count stops
    /// moving. Frames cross the veth asynchronously, so right after a burst
    /// some are still on their way: this reads until two reads 100 ms apart
    /// agree (giving up after 10 s, and returning the last read).
    pub fn settled_count(
        &self,
        ns: &Netns,
        device: &str,
        verdict: &str,
        reason: &str,
    ) -> Result<u64> {
        let mut last = self.count(ns, device, verdict, reason)?;
        for _ in 0..100 {
            std::thread::sleep(std::time::Duration::from_millis(100));
            let now = self.count(ns, device, verdict, reason)?;
            if now == last {
                break;
            }
            last = now;
        }
        Ok(last)
    }
}

impl Drop for Synguard {
    fn drop(&mut self) {
        // Removing the pinned links detaches the programs.
        let _ = std::fs::remove_dir_all(&self.pin_root);
    }
}
