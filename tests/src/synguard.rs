//! Driving the real `synguard` binary from a lab, with a pin root of the
//! lab's own so labs never see each other's state.
use std::{
    fs::File,
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Output, Stdio},
    sync::atomic::{AtomicU32, Ordering},
    time::{Duration, Instant},
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
        "no synguard binary next to {}; build it (`cargo build -p synguard`) or set SYNGUARD_BIN",
        exe.display()
    );
}

/// synguard's state for one lab: removed (which detaches) on drop.
pub struct Synguard {
    bin: PathBuf,
    pin_root: PathBuf,
    state_dir: PathBuf,
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
            state_dir: PathBuf::from(format!("/run/synguard-lab-{name}")),
        }
    }

    /// The binary it runs.
    pub fn bin(&self) -> &Path {
        &self.bin
    }

    pub fn pin_root(&self) -> &Path {
        &self.pin_root
    }

    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// A `synguard` command for `ns` with the lab's pin root and state
    /// directory.
    pub fn command(&self, ns: &Netns) -> Command {
        let mut cmd = ns.command(&self.bin);
        cmd.env("SYNGUARD_PIN_ROOT", &self.pin_root)
            .env("SYNGUARD_STATE_DIR", &self.state_dir)
            .env_remove("NOTIFY_SOCKET")
            .env_remove("RUST_LOG");
        cmd
    }

    /// Starts `synguard run --config <config>` in `ns`, its log going to a
    /// file the returned handle reads.
    pub fn daemon(&self, ns: &Netns, config: &Path) -> Result<Daemon> {
        let log = std::env::temp_dir().join(format!(
            "synguard-lab-{}-{}.log",
            self.pin_root
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            DAEMONS.fetch_add(1, Ordering::Relaxed)
        ));
        let file = File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let child = self
            .command(ns)
            .arg("--config")
            .arg(config)
            .arg("run")
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .spawn()
            .context("starting synguard run")?;
        Ok(Daemon {
            child: Some(child),
            log,
        })
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
        self.command(ns)
            .args(args)
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
        let _ = std::fs::remove_dir_all(&self.state_dir);
    }
}

static DAEMONS: AtomicU32 = AtomicU32::new(0);

/// A `synguard run` this test started: killed by its pid on drop if still
/// running, its log file removed.
pub struct Daemon {
    child: Option<Child>,
    log: PathBuf,
}

impl Daemon {
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// What the daemon logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log contains `needle` (true) or `timeout` passes, or
    /// the daemon exits (false).
    pub fn wait_for_log(&mut self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.log().contains(needle) {
                return true;
            }
            if self.exited().is_some() {
                return self.log().contains(needle);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// Waits up to `timeout` for `/healthz` at `metrics` in `ns` to answer
    /// 200; fails with the daemon's log if it exits or never gets there.
    pub fn wait_healthy(
        &mut self,
        ns: &Netns,
        metrics: SocketAddr,
        timeout: Duration,
    ) -> Result<()> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok((200, _)) = crate::http::get(ns, metrics, "/healthz") {
                return Ok(());
            }
            if let Some(status) = self.exited() {
                bail!("synguard run exited ({status}):\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        bail!(
            "synguard run was not healthy after {timeout:?}:\n{}",
            self.log()
        )
    }

    /// The exit status, if it has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.as_mut()?.try_wait().ok().flatten()
    }

    /// Sends `signal` to the daemon's pid.
    pub fn signal(&self, signal: libc::c_int) {
        if let Some(child) = &self.child {
            // SAFETY: kill(2) on the pid of a child we started and have not
            // reaped, so the pid cannot have been reused.
            unsafe { libc::kill(child.id() as libc::pid_t, signal) };
        }
    }

    /// Waits up to `timeout` for the daemon to exit.
    pub fn wait(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = self.exited() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if child.try_wait().ok().flatten().is_none() {
                let _ = child.kill();
            }
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!("synguard run log ({}):\n{}", self.log.display(), self.log());
        }
        let _ = std::fs::remove_file(&self.log);
    }
}
