//! `cargo xtask systemd`: the .deb and its unit on a booted systemd.
//!
//! Builds the package (`cargo xtask package`), boots a Debian root with
//! systemd as PID 1 in a container (`systemd-nspawn -b`; the root is made
//! once by mmdebstrap from Debian packages and cached under
//! `target/systemd/`), and there installs the package and drives the
//! service through systemctl: start only once attached, reload with a good
//! and a broken file, the watchdog restarting a hung daemon, kill -9 with
//! protection left in place and adopted, stop, the unit's capabilities, the
//! journal lines docs/operating.md promises, `dpkg -r` and `--purge`.
//!
//! Each check goes through systemctl, so the service runs as systemd starts
//! it (the container's seccomp filter and capabilities); commands entered
//! with nsenter carry neither. nspawn needs three things for XDP here:
//! `--system-call-filter=bpf` (its seccomp filter denies bpf()),
//! `--capability=CAP_BPF,CAP_PERFMON` (not in its bounding set), and a
//! bpffs at /sys/fs/bpf: a private instance per container, so the daemon
//! never sees another test's pins. The container has its own network
//! namespace with only the veth pair this test makes in it.
use std::{
    fs,
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    thread::sleep,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail, ensure};

use crate::{exec, is_root, matrix, setup, skipped_by_hand, workspace};

/// `SYNGUARD_SYSTEMD=skip` skips this by hand (a machine that cannot boot a
/// container).
const SKIP_VAR: &str = "SYNGUARD_SYSTEMD";
/// Host packages: the container manager and the root's builder.
const PACKAGES: &[&str] = &["systemd-container", "mmdebstrap", "zstd"];
/// The Debian release in the container, and what the root holds beside
/// minbase: systemd as init, D-Bus for systemctl, ip, sysctl.
const SUITE: &str = "bookworm";
const INCLUDE: &str = "systemd,systemd-sysv,dbus,iproute2,procps";
/// The veth pair made in the container; synguard protects the first.
const IFACE: &str = "sgv0";
const PEER: &str = "sgv1";
const CONFIG: &str = "/etc/synguard/synguard.toml";
const DROP_IN: &str = "/etc/systemd/system/synguard.service.d";
/// The watchdog period for the test (the unit ships 30s).
const WATCHDOG_SEC: u64 = 3;
/// CAP_NET_ADMIN (12), CAP_PERFMON (38), CAP_BPF (39): the unit's
/// CapabilityBoundingSet.
const UNIT_CAPS: u64 = (1 << 12) | (1 << 38) | (1 << 39);
/// The sysctls the shipped config applies, with values different from
/// both the config's and the kernel's defaults, set before the install so
/// that "restored" can be told from "never changed".
const ORIGINAL_SYSCTLS: &[(&str, &str)] = &[
    ("net.ipv4.tcp_syncookies", "0"),
    ("net.ipv4.tcp_timestamps", "1"),
    ("net.core.somaxconn", "1000"),
    ("net.ipv4.tcp_max_syn_backlog", "512"),
    ("net.ipv4.tcp_abort_on_overflow", "0"),
];
/// Generous bounds for things that take a second or two: they only decide
/// when a failure is reported, never what passes.
const BOOT_TIMEOUT: Duration = Duration::from_secs(120);
const SETTLE_TIMEOUT: Duration = Duration::from_secs(60);

pub fn run() -> Result<()> {
    if skipped_by_hand("systemd", SKIP_VAR, "the unit was not tested") {
        return Ok(());
    }
    if !is_root() {
        bail!("cargo xtask systemd needs root: it boots a container and attaches XDP programs");
    }
    let missing: Vec<&str> = PACKAGES
        .iter()
        .copied()
        .filter(|p| !setup::installed(p))
        .collect();
    if !missing.is_empty() {
        eprintln!(
            "xtask systemd: installing Debian packages: {}",
            missing.join(" ")
        );
        setup::apt_install(&missing)?;
    }
    crate::package::run()?;
    let deb = newest_deb(&workspace().join("target/package"))?;
    let dir = workspace().join("target/systemd");
    let tarball = root_tarball(&dir)?;

    sweep_stale(&dir);
    let started = Instant::now();
    let ct = Container::boot(&tarball, &dir)?;
    eprintln!(
        "xtask systemd: {} booted in {:.1} s",
        ct.name,
        started.elapsed().as_secs_f64()
    );
    let result = scenario(&ct, &deb);
    if let Err(e) = &result {
        eprintln!("xtask systemd: FAILED: {e:#}");
        eprintln!("--- journalctl -u synguard (last 40 lines) ---");
        eprintln!("{}", tail(&ct.journal(), 40));
    }
    drop(ct);
    result?;
    eprintln!(
        "xtask systemd: every check passed in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Removes what an interrupted run (Ctrl-C, SIGKILL: no drop) left in
/// `dir`: a run directory named after a process that is gone, with its
/// bpffs mount.
fn sweep_stale(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix("run-sgt")
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        eprintln!("xtask systemd: removing {name}, left by an interrupted run");
        let bpf = entry.path().join("bpf");
        let _ = Command::new("umount").arg(&bpf).status();
        let mounted = Command::new("mountpoint")
            .arg("-q")
            .arg(&bpf)
            .status()
            .is_ok_and(|s| s.success());
        if mounted {
            eprintln!(
                "xtask systemd: {} is still mounted: left alone",
                bpf.display()
            );
            continue;
        }
        let _ = fs::remove_dir_all(entry.path());
    }
}

/// The newest `synguard_*.deb` in `dir`.
fn newest_deb(dir: &Path) -> Result<PathBuf> {
    fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .flatten()
        .filter(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.starts_with("synguard_") && name.ends_with(".deb")
        })
        .max_by_key(|e| e.metadata().and_then(|m| m.modified()).ok())
        .map(|e| e.path())
        .with_context(|| format!("no synguard_*.deb in {}", dir.display()))
}

/// The container's root as a tarball, made by mmdebstrap if missing.
fn root_tarball(dir: &Path) -> Result<PathBuf> {
    let tarball = dir.join(format!("{SUITE}-systemd.tar.zst"));
    if tarball.exists() {
        return Ok(tarball);
    }
    fs::create_dir_all(dir)?;
    let (mirror, _) = matrix::mirrors()?;
    let partial = dir.join(format!("{SUITE}-systemd.partial.tar.zst"));
    eprintln!("xtask systemd: making the {SUITE} root with mmdebstrap (about a minute, once)");
    let mut cmd = Command::new("mmdebstrap");
    cmd.arg("--variant=minbase")
        .arg(format!("--include={INCLUDE}"));
    for option in host_apt_network_options()? {
        cmd.arg(format!("--aptopt={option}"));
    }
    exec(cmd.arg(SUITE).arg(&partial).arg(&mirror))?;
    fs::rename(&partial, &tarball)?;
    Ok(tarball)
}

/// The host apt's settings for reaching its mirror, for mmdebstrap's apt,
/// which reads none of the host's configuration: the Release checks
/// (`Check-Valid-Until`, `Check-Date`: a mirror that serves a snapshot),
/// proxies, retries, and the credentials in `/etc/apt/auth.conf(.d)`. The
/// kernel matrix's apt reads the host's configuration itself.
fn host_apt_network_options() -> Result<Vec<String>> {
    let dump = Command::new("apt-config")
        .arg("dump")
        .output()
        .context("running apt-config dump")?;
    ensure!(dump.status.success(), "apt-config dump failed");
    let text = String::from_utf8_lossy(&dump.stdout);
    let mut options = apt_network_options(&text);
    options.push(r#"Acquire::Retries "3""#.to_string());
    options.push(r#"Dir::Etc::netrc "/etc/apt/auth.conf""#.to_string());
    options.push(r#"Dir::Etc::netrcparts "/etc/apt/auth.conf.d""#.to_string());
    Ok(options)
}

/// The lines of an `apt-config dump` that say how to reach a mirror.
fn apt_network_options(dump: &str) -> Vec<String> {
    const KEYS: &[&str] = &[
        "Acquire::Check-Valid-Until ",
        "Acquire::Check-Date ",
        "Acquire::Max-FutureTime ",
        "Acquire::http::",
        "Acquire::https::",
        "Acquire::http ",
        "Acquire::https ",
    ];
    dump.lines()
        .map(|line| line.trim().trim_end_matches(';'))
        .filter(|line| KEYS.iter().any(|key| line.starts_with(key)))
        .filter(|line| !line.ends_with(" \"\""))
        .map(str::to_string)
        .collect()
}

/// A booted container, halted and removed on drop (also on failure).
struct Container {
    name: String,
    dir: PathBuf,
    root: PathBuf,
    bpffs: PathBuf,
    bpffs_mounted: bool,
    nspawn: Option<Child>,
    /// The container's PID 1 (systemd), as the host sees it.
    leader: u32,
}

impl Container {
    fn boot(tarball: &Path, dir: &Path) -> Result<Container> {
        let name = format!("sgt{}", std::process::id());
        let run = dir.join(format!("run-{name}"));
        let mut ct = Container {
            root: run.join("root"),
            bpffs: run.join("bpf"),
            dir: run,
            name,
            bpffs_mounted: false,
            nspawn: None,
            leader: 0,
        };
        let _ = fs::remove_dir_all(&ct.dir);
        fs::create_dir_all(&ct.root)?;
        fs::create_dir_all(&ct.bpffs)?;
        exec(
            Command::new("tar")
                .arg("-C")
                .arg(&ct.root)
                .args(["--zstd", "-xf"])
                .arg(tarball),
        )?;
        fs::write(ct.root.join("etc/hostname"), format!("{}\n", ct.name))?;
        // A private bpffs: pins made in the container stay there and die
        // with it.
        exec(
            Command::new("mount")
                .args(["-t", "bpf", "bpf"])
                .arg(&ct.bpffs),
        )?;
        ct.bpffs_mounted = true;

        let console = fs::File::create(ct.dir.join("console.log"))?;
        let child = Command::new("systemd-nspawn")
            .arg("-D")
            .arg(&ct.root)
            .args(["-M", &ct.name, "-b"])
            // No systemd on the host to register with or to make a scope.
            .args(["--register=no", "--keep-unit", "--console=passive"])
            .arg("--private-network")
            .arg("--capability=CAP_BPF,CAP_PERFMON,CAP_NET_ADMIN")
            .arg("--system-call-filter=bpf")
            .arg(format!("--bind={}:/sys/fs/bpf", ct.bpffs.display()))
            .stdin(Stdio::null())
            .stdout(console.try_clone()?)
            .stderr(console)
            .spawn()
            .context("starting systemd-nspawn")?;
        let nspawn_pid = child.id();
        ct.nspawn = Some(child);

        let deadline = Instant::now() + BOOT_TIMEOUT;
        while ct.leader == 0 {
            if let Some(status) = ct.nspawn.as_mut().unwrap().try_wait()? {
                bail!(
                    "this machine cannot boot a container: systemd-nspawn exited ({status}); {}",
                    ct.keep_console()
                );
            }
            // nspawn's first child only sets up the namespaces and exits;
            // the container's init is the child in another PID namespace.
            ct.leader = children(nspawn_pid)
                .into_iter()
                .find(|&pid| in_other_pid_namespace(pid))
                .unwrap_or(0);
            ensure!(
                Instant::now() < deadline,
                "this machine cannot boot a container: systemd-nspawn started no init; {}",
                ct.keep_console()
            );
            sleep(Duration::from_millis(50));
        }
        // The bus answers a moment after PID 1 starts; then "starting"
        // until the boot is done.
        loop {
            let state = ct.output(&["systemctl", "is-system-running"]);
            let state = state
                .as_ref()
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
                .unwrap_or_default();
            if state == "running" || state == "degraded" {
                break;
            }
            if Instant::now() > deadline || ct.nspawn.as_mut().unwrap().try_wait()?.is_some() {
                bail!(
                    "this machine cannot boot a container: systemd in it did not come up ({}); {}",
                    if state.is_empty() { "no bus" } else { &state },
                    ct.keep_console()
                );
            }
            sleep(Duration::from_millis(100));
        }
        Ok(ct)
    }

    /// Keeps the console log of a failed boot (the run directory goes on
    /// drop) and names it.
    fn keep_console(&self) -> String {
        let kept = self
            .dir
            .with_file_name(format!("console-{}.log", self.name));
        match fs::copy(self.dir.join("console.log"), &kept) {
            Ok(_) => format!("its console: {}", kept.display()),
            Err(_) => "no console output".into(),
        }
    }

    /// A command run in every namespace of the container (not under its
    /// seccomp filter: only what systemd starts is).
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.args(["-t", &self.leader.to_string(), "-a", "--"])
            .args(args)
            .stdin(Stdio::null());
        cmd
    }

    fn output(&self, args: &[&str]) -> Result<Output> {
        self.command(args)
            .output()
            .with_context(|| format!("running {} in the container", args.join(" ")))
    }

    /// Runs `args` in the container; its stdout, or an error with its
    /// stderr.
    fn run(&self, args: &[&str]) -> Result<String> {
        let out = self.output(args)?;
        ensure!(
            out.status.success(),
            "{} failed in the container ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn sh(&self, script: &str) -> Result<String> {
        self.run(&["sh", "-ec", script])
    }

    /// A path inside the container's root, as the host sees it.
    fn path(&self, inside: &str) -> PathBuf {
        self.root.join(inside.trim_start_matches('/'))
    }

    fn journal(&self) -> String {
        self.run(&["journalctl", "-u", "synguard", "-o", "cat", "--no-pager"])
            .unwrap_or_default()
    }

    /// A property of synguard.service (`systemctl show -p`).
    fn prop(&self, name: &str) -> Result<String> {
        Ok(self
            .run(&["systemctl", "show", "-p", name, "--value", "synguard"])?
            .trim()
            .to_string())
    }

    fn sysctl(&self, name: &str) -> Result<String> {
        Ok(self.run(&["sysctl", "-n", name])?.trim().to_string())
    }

    /// The id of the XDP program on the test interface, if any, and
    /// whether it runs in the driver (native) mode.
    fn xdp(&self) -> Result<Option<(u32, bool)>> {
        let out = self.run(&["ip", "-d", "link", "show", "dev", IFACE])?;
        let Some(at) = out.find("prog/xdp id ") else {
            return Ok(None);
        };
        let id: String = out[at + "prog/xdp id ".len()..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        let native = out.lines().next().is_some_and(|l| l.contains(" xdp "));
        Ok(Some((id.parse()?, native)))
    }

    /// Waits until `done` holds; `what` names it in the error.
    fn wait_for(&self, what: &str, mut done: impl FnMut() -> Result<bool>) -> Result<()> {
        let deadline = Instant::now() + SETTLE_TIMEOUT;
        while !done()? {
            ensure!(
                Instant::now() < deadline,
                "{what}: not seen within {SETTLE_TIMEOUT:?}"
            );
            sleep(Duration::from_millis(200));
        }
        Ok(())
    }

    /// Waits for the journal to hold `line`, `times` times in all.
    fn wait_journal(&self, line: &str, times: usize) -> Result<()> {
        self.wait_for(&format!("journal line {line:?} x{times}"), || {
            Ok(self.journal().matches(line).count() >= times)
        })
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        if let Some(mut child) = self.nspawn.take() {
            // SIGTERM: nspawn halts the container in order (about 0.5 s).
            // SAFETY: kill has no memory preconditions; the pid is our child.
            unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(30);
            while child.try_wait().ok().flatten().is_none() {
                if Instant::now() > deadline {
                    eprintln!("xtask systemd: {} did not halt; killing it", self.name);
                    if self.leader != 0 {
                        // SAFETY: as above; the container's init, which we started.
                        unsafe { libc::kill(self.leader as libc::pid_t, libc::SIGKILL) };
                    }
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                sleep(Duration::from_millis(100));
            }
        }
        if self.bpffs_mounted {
            let _ = Command::new("umount").arg(&self.bpffs).status();
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Whether process `pid` lives in another PID namespace than this one.
fn in_other_pid_namespace(pid: u32) -> bool {
    match (
        fs::read_link(format!("/proc/{pid}/ns/pid")),
        fs::read_link("/proc/self/ns/pid"),
    ) {
        (Ok(theirs), Ok(ours)) => theirs != ours,
        _ => false,
    }
}

/// The children of process `pid`.
fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    if let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) {
        for task in tasks.flatten() {
            if let Ok(text) = fs::read_to_string(task.path().join("children")) {
                out.extend(
                    text.split_whitespace()
                        .filter_map(|p| p.parse::<u32>().ok()),
                );
            }
        }
    }
    out
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A file tree as sorted paths, to compare the node before and after.
fn snapshot(ct: &Container) -> Result<Vec<String>> {
    // find fails for a missing start (/run/synguard before the install)
    // and lists the rest.
    let out = ct.output(&[
        "find",
        "/etc",
        "/usr",
        "/sys/fs/bpf",
        "/run/synguard",
        "/var/lib/systemd",
        "-xdev",
    ])?;
    let mut paths: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    paths.sort();
    Ok(paths)
}

fn sysctls(ct: &Container) -> Result<Vec<(String, String)>> {
    ORIGINAL_SYSCTLS
        .iter()
        .map(|(name, _)| Ok((name.to_string(), ct.sysctl(name)?)))
        .collect()
}

fn main_pid(ct: &Container) -> Result<u32> {
    Ok(ct.prop("MainPID")?.parse()?)
}

fn restarts(ct: &Container) -> Result<u32> {
    Ok(ct.prop("NRestarts")?.parse()?)
}

/// Active with a main process other than `old`.
fn restarted(ct: &Container, old: u32) -> Result<bool> {
    let pid = main_pid(ct)?;
    Ok(pid != 0 && pid != old && ct.prop("ActiveState")? == "active")
}

fn step(what: &str) {
    eprintln!("xtask systemd: {what}");
}

fn scenario(ct: &Container, deb: &Path) -> Result<()> {
    step("preparing the node: a veth pair, sysctls to restore");
    ct.sh(&format!(
        "ip link add {IFACE} type veth peer name {PEER}
         ip addr add 198.18.0.1/30 dev {IFACE}
         ip addr add 198.18.0.2/30 dev {PEER}
         ip link set {IFACE} up
         ip link set {PEER} up"
    ))?;
    for (name, value) in ORIGINAL_SYSCTLS {
        ct.run(&["sysctl", "-q", "-w", &format!("{name}={value}")])?;
    }
    let before_sysctls = sysctls(ct)?;
    let before_files = snapshot(ct)?;

    step("dpkg -i");
    fs::copy(deb, ct.path("/root/synguard.deb"))?;
    ct.run(&["dpkg", "-i", "/root/synguard.deb"])?;
    let enabled = ct.output(&["systemctl", "is-enabled", "synguard"])?;
    ensure!(
        String::from_utf8_lossy(&enabled.stdout).trim() == "disabled",
        "the package enabled the service (is-enabled: {}); it must wait to be configured",
        String::from_utf8_lossy(&enabled.stdout).trim()
    );
    ensure!(
        ct.prop("ActiveState")? == "inactive",
        "the package started the service"
    );

    // The shipped config, with the test's interface; a drop-in shortens
    // the watchdog so a hung daemon is noticed in seconds.
    let shipped = fs::read_to_string(ct.path(CONFIG))?;
    ensure!(
        shipped.contains("name = \"eth0\""),
        "the shipped config names no eth0 to replace"
    );
    let good = shipped.replace("name = \"eth0\"", &format!("name = \"{IFACE}\""));
    fs::write(ct.path(CONFIG), &good)?;
    fs::create_dir_all(ct.path(DROP_IN))?;
    fs::write(
        ct.path(DROP_IN).join("test.conf"),
        format!("[Service]\nWatchdogSec={WATCHDOG_SEC}s\n"),
    )?;
    ct.run(&["systemctl", "daemon-reload"])?;

    step("systemctl enable --now: active only once attached");
    ct.run(&["systemctl", "enable", "--now", "synguard"])?;
    // Type=notify: the start job ends at READY=1, sent after the attach.
    let (prog, native) = ct
        .xdp()?
        .context("systemctl enable --now returned, but no XDP program is on the interface")?;
    ensure!(native, "{IFACE} is attached, but not in native mode");
    ensure!(
        ct.prop("ActiveState")? == "active",
        "not active after start"
    );
    let status = ct.prop("StatusText")?;
    ensure!(
        status == format!("protecting 1 interface(s): {IFACE}"),
        "Status= is {status:?}"
    );
    for (name, want) in [
        ("net.ipv4.tcp_syncookies", "1"),
        ("net.ipv4.tcp_timestamps", "2"),
        ("net.core.somaxconn", "4096"),
        ("net.ipv4.tcp_max_syn_backlog", "4096"),
    ] {
        let got = ct.sysctl(name)?;
        ensure!(got == want, "{name} is {got} while running, not {want}");
    }
    let healthz = ct.run(&[
        "bash",
        "-c",
        "exec 3<>/dev/tcp/127.0.0.1/9720; printf 'GET /healthz HTTP/1.0\\r\\n\\r\\n' >&3; cat <&3",
    ])?;
    ensure!(
        healthz.starts_with("HTTP/1.0 200") || healthz.starts_with("HTTP/1.1 200"),
        "/healthz: {healthz}"
    );

    step("the unit's capabilities, no more");
    let pid = main_pid(ct)?;
    let proc_status = ct.run(&["cat", &format!("/proc/{pid}/status")])?;
    for field in ["CapEff", "CapPrm", "CapBnd"] {
        let value = proc_status
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{field}:")))
            .map(str::trim)
            .with_context(|| format!("no {field} in /proc/{pid}/status"))?;
        let caps = u64::from_str_radix(value, 16)?;
        ensure!(
            caps == UNIT_CAPS,
            "{field} of the daemon is {caps:#018x}, not the unit's {UNIT_CAPS:#018x}"
        );
    }

    step("the journal lines docs/operating.md promises at start");
    let journal = ct.journal();
    for line in [
        format!("starting with {CONFIG}"),
        "sysctl net.ipv4.tcp_syncookies: 0 -> 1".to_string(),
        format!("attached {IFACE} (native mode)"),
        "serving /metrics and /healthz on http://127.0.0.1:9720".to_string(),
        format!("ready: protecting 1 interface(s): {IFACE}"),
    ] {
        ensure!(journal.contains(&line), "the journal lacks {line:?}");
    }

    step("systemctl reload, a good file");
    let blocked = "198.18.99.0/24";
    let with_block = good.replace("block = []", &format!("block = [\"{blocked}\"]"));
    ensure!(with_block != good, "the shipped config has no `block = []`");
    fs::write(ct.path(CONFIG), &with_block)?;
    ct.run(&["systemctl", "reload", "synguard"])?;
    ct.wait_journal(&format!("reloaded: protecting 1 interface(s): {IFACE}"), 1)?;
    ensure!(
        ct.journal()
            .contains(&format!("SIGHUP: reloading {CONFIG}")),
        "the journal does not say the reload started"
    );
    ensure!(
        ct.run(&["synguard", "list", "blocked"])?.contains(blocked),
        "the reloaded block entry is not listed"
    );

    step("systemctl reload, a broken file: refused, the old config stays");
    let (line_no, _) = with_block
        .lines()
        .enumerate()
        .find(|(_, l)| l.starts_with("syn_rate_on"))
        .context("the shipped config has no syn_rate_on line")?;
    let broken: String = with_block
        .lines()
        .map(|l| {
            if l.starts_with("syn_rate_on") {
                "syn_rate_on = \"lots\"".to_string()
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    fs::write(ct.path(CONFIG), &broken)?;
    let pid = main_pid(ct)?;
    ct.run(&["systemctl", "reload", "synguard"])?;
    let refused = format!(
        "reload refused, the running config stays: {CONFIG}:{}:",
        line_no + 1
    );
    ct.wait_journal(&refused, 1)?;
    let journal = ct.journal();
    let reason = journal
        .lines()
        .find(|l| l.contains(&refused))
        .unwrap_or_default();
    ensure!(
        reason.contains("key `flood.syn_rate_on`: invalid type"),
        "the refusal names no key and reason: {reason}"
    );
    ensure!(
        ct.prop("ActiveState")? == "active" && main_pid(ct)? == pid,
        "the service did not stay up on the old config"
    );
    ensure!(
        ct.run(&["synguard", "list", "blocked"])?.contains(blocked),
        "the running config's block entry is gone after a refused reload"
    );
    ensure!(
        ct.run(&["synguard", "status"])?
            .contains("last reload refused"),
        "synguard status does not say the reload was refused"
    );
    fs::write(ct.path(CONFIG), &with_block)?;
    ct.run(&["systemctl", "reload", "synguard"])?;
    ct.wait_journal(&format!("reloaded: protecting 1 interface(s): {IFACE}"), 2)?;

    step("the watchdog restarts a hung daemon, which adopts the pins");
    let pid = main_pid(ct)?;
    let before = restarts(ct)?;
    ct.run(&["kill", "-STOP", &pid.to_string()])?;
    ct.wait_for("a restart after the watchdog timeout", || {
        restarted(ct, pid)
    })?;
    ensure!(
        ct.journal().contains("Watchdog timeout"),
        "restarted, but the journal names no watchdog timeout"
    );
    ensure!(restarts(ct)? == before + 1, "NRestarts did not grow by one");
    ensure!(
        ct.xdp()?.map(|x| x.0) == Some(prog),
        "after the watchdog restart the program on {IFACE} is not the adopted one"
    );
    ct.wait_journal(
        &format!("{IFACE} was already attached: adopted, settings updated"),
        1,
    )?;

    step("systemctl kill -s KILL: protection stays, Restart= adopts it");
    let pid = main_pid(ct)?;
    let before = restarts(ct)?;
    ct.run(&["systemctl", "kill", "-s", "KILL", "synguard"])?;
    ct.wait_for("the killed daemon gone", || Ok(main_pid(ct)? != pid))?;
    ensure!(
        ct.xdp()?.map(|x| x.0) == Some(prog),
        "the program left {IFACE} with the killed daemon"
    );
    ct.wait_for("a restart after kill -9", || restarted(ct, pid))?;
    ensure!(restarts(ct)? == before + 1, "NRestarts did not grow by one");
    ensure!(
        ct.xdp()?.map(|x| x.0) == Some(prog),
        "after the restart the program on {IFACE} is not the adopted one"
    );
    ct.wait_journal(
        &format!("{IFACE} was already attached: adopted, settings updated"),
        2,
    )?;

    step("systemctl stop: detached, sysctls restored");
    ct.run(&["systemctl", "stop", "synguard"])?;
    ensure!(ct.xdp()?.is_none(), "{IFACE} still has XDP after stop");
    ensure!(
        sysctls(ct)? == before_sysctls,
        "the sysctls after stop are {:?}, not the originals {before_sysctls:?}",
        sysctls(ct)?
    );
    let journal = ct.journal();
    for line in [
        format!("detached {IFACE}"),
        "sysctl net.ipv4.tcp_syncookies: 1 -> 0 (restored)".to_string(),
        "stopped".to_string(),
    ] {
        ensure!(journal.contains(&line), "the journal lacks {line:?}");
    }

    step("dpkg -i over the installed package: the running service restarts");
    ct.run(&["systemctl", "start", "synguard"])?;
    ensure!(ct.xdp()?.is_some(), "not attached after a second start");
    let pid = main_pid(ct)?;
    ct.run(&["dpkg", "-i", "/root/synguard.deb"])?;
    ensure!(
        restarted(ct, pid)?,
        "the service was not restarted by the upgrade"
    );
    ensure!(ct.xdp()?.is_some(), "not attached after the upgrade");

    step("dpkg -r while running: stopped, detached, restored; config kept");
    ct.run(&["dpkg", "-r", "synguard"])?;
    ensure!(
        ct.prop("ActiveState")? != "active",
        "the service still runs after dpkg -r"
    );
    ensure!(ct.xdp()?.is_none(), "{IFACE} still has XDP after dpkg -r");
    ensure!(
        sysctls(ct)? == before_sysctls,
        "the sysctls after dpkg -r are {:?}, not the originals {before_sysctls:?}",
        sysctls(ct)?
    );
    ensure!(
        !ct.path("/usr/bin/synguard").exists(),
        "/usr/bin/synguard survived dpkg -r"
    );
    ensure!(
        ct.path(CONFIG).exists(),
        "dpkg -r removed the conffile (only --purge may)"
    );
    // The enablement symlink stays until purge, as Debian keeps it for
    // every package (deb-systemd-helper), so a reinstall comes back enabled.

    step("dpkg --purge: the node as it was");
    fs::remove_file(ct.path("/root/synguard.deb"))?;
    fs::remove_dir_all(ct.path(DROP_IN))?;
    ct.run(&["systemctl", "daemon-reload"])?;
    ct.run(&["dpkg", "--purge", "synguard"])?;
    let after_files = snapshot(ct)?;
    let added: Vec<&String> = after_files
        .iter()
        .filter(|p| !before_files.contains(p))
        .collect();
    let removed: Vec<&String> = before_files
        .iter()
        .filter(|p| !after_files.contains(p))
        .collect();
    ensure!(
        added.is_empty() && removed.is_empty(),
        "after dpkg --purge the node differs from before the install: left {added:?}, missing {removed:?}"
    );
    ensure!(
        sysctls(ct)? == before_sysctls,
        "the sysctls after --purge differ from the originals"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::apt_network_options;

    #[test]
    fn the_mirror_settings_are_taken_from_the_host_and_nothing_else() {
        let dump = concat!(
            "Acquire::IndexTargets::deb::Packages::Optional \"0\";\n",
            "Acquire::Check-Valid-Until \"false\";\n",
            "Acquire::Check-Date \"false\";\n",
            "Acquire::http \"\";\n",
            "Acquire::http::Proxy \"http://proxy.invalid:3128/\";\n",
            "Dir::Etc::parts \"apt.conf.d\";\n",
        );
        assert_eq!(
            apt_network_options(dump),
            [
                r#"Acquire::Check-Valid-Until "false""#,
                r#"Acquire::Check-Date "false""#,
                r#"Acquire::http::Proxy "http://proxy.invalid:3128/""#,
            ]
        );
    }
}
