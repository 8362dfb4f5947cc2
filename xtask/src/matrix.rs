//! `cargo xtask matrix`: synguard's smoke checks on Debian's own kernels.
//!
//! Fetches the kernel images of Debian 11 (5.10), 12 (6.1), 13 (6.12) and
//! the newest Debian carries (unstable) through a scratch apt
//! configuration that leaves the system's alone, caches them under
//! `target/matrix/kernels`, boots each under qemu with virtme-ng (the
//! host's root shared read-only, so the guest runs this build's binary),
//! and runs `matrix/smoke.py` there, then on the host's kernel directly.
//! The guest writes its verdicts into a shared directory (the console's
//! order and completeness are not reliable enough to parse); its kernel log,
//! with a line per verdict, comes over the serial console into `vng.log`,
//! for a run that ended early. A run the harness broke boots once more
//! ([`boot_again`]). Prints a kernel x check table and writes
//! `target/matrix/matrix.json`; fails when a kernel does worse than
//! docs/kernels.md#what-each-kernel-supports says (6.1 and later: every
//! check passes; older: attach is refused with one line naming the missing
//! helpers).
//!
//! KVM cannot run stock kernels on these machines (a bzImage hangs after
//! "Probing EDD"), so the VMs run under TCG: 30-60 s per kernel.
use std::{
    fs,
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use synguard_common::signals::{stop_on_signals, stopped};

use crate::{cargo, exec, is_root, setup, skipped_by_hand, workspace};

/// The checks smoke.py records, in the table's order.
const CHECKS: &[&str] = &[
    "attach_native_netns",
    "status_probe",
    "syn_answered_from_xdp_v4",
    "cookie_handshake_v4",
    "syn_answered_from_xdp_v6",
    "cookie_handshake_v6",
    "blocklist_drop",
    "detach",
    "skb_mode_cookie",
    "daemon_start_stop",
    "virtio_native_cookie",
    "virtio_offloads_named",
    "virtio_mq_native_cookie",
];
/// Two single-queue virtio-net NICs joined on a hub inside qemu (no host
/// networking); smoke.py finds them by these MACs (QEMU's prefix).
const VIRTIO_MACS: [&str; 2] = ["52:54:00:12:34:a1", "52:54:00:12:34:a2"];
/// Two multi-queue virtio-net NICs: taps on a bridge in a network
/// namespace the matrix makes (qemu runs there), so no host interface is
/// involved. The first (the client's) comes without ctrl_guest_offloads,
/// so the host's guest offloads stay on and virtio_net refuses XDP there
/// (smoke.py's virtio_offloads_named); the second gets synguard.
const MQ_MACS: [&str; 2] = ["52:54:00:12:34:b1", "52:54:00:12:34:b2"];
/// Queue pairs of each: the guest's 2 CPUs use 2, XDP_TX gets the other 2
/// (virtio_net `virtnet_xdp_set`: curr + one per CPU <= max).
const MQ_QUEUES: u32 = 4;
const MQ_TAPS: [&str; 2] = ["sgmq0", "sgmq1"];
/// Debian suites whose `linux-image-amd64` names the kernels to test.
const SUITES: &[&str] = &["bullseye", "bookworm", "trixie", "sid"];
const SECURITY_SUITES: &[&str] = &["bullseye-security", "bookworm-security", "trixie-security"];
/// The kernel series to test, beside the newest.
const SERIES: &[&str] = &["5.10.", "6.1.", "6.12."];
/// The first series synguard supports fully
/// (docs/kernels.md#what-each-kernel-supports).
const SUPPORTED_FROM: (u32, u32) = (6, 1);
/// Debian packages the VMs need: qemu without its recommended GUI stack,
/// a static busybox for virtme-ng's init, kmod for depmod and modprobe.
const PACKAGES: &[&str] = &["qemu-system-x86", "busybox-static", "kmod"];
/// How long a VM may take in all.
const VM_TIMEOUT: Duration = Duration::from_secs(600);
/// How long a VM may take to boot and start smoke.py (it writes its
/// verdict file first thing): a bare boot takes 11-14 s under TCG here.
const BOOT_TIMEOUT: Duration = Duration::from_secs(180);
/// The emulator virtme-ng starts.
const QEMU: &str = "qemu-system-x86_64";
/// `SYNGUARD_MATRIX=skip` skips the matrix by hand (a machine that cannot
/// run qemu); `SYNGUARD_MATRIX_KERNELS=6.1.,host` runs only the kernels
/// whose release starts with one of the prefixes (`host`: the host's).
const SKIP_VAR: &str = "SYNGUARD_MATRIX";
const ONLY_VAR: &str = "SYNGUARD_MATRIX_KERNELS";

pub fn run() -> Result<()> {
    if skipped_by_hand("matrix", SKIP_VAR, "no kernel was tested") {
        return Ok(());
    }
    if !is_root() {
        bail!("cargo xtask matrix needs root: it installs packages and attaches XDP programs");
    }
    setup::run()?;
    install_vm_tools()?;
    can_start_vms()?;
    let only: Option<Vec<String>> = std::env::var(ONLY_VAR)
        .ok()
        .map(|v| v.split(',').map(|p| p.trim().to_string()).collect());
    let wanted = |release: &str| {
        only.as_ref()
            .is_none_or(|o| o.iter().any(|p| release.starts_with(p.as_str())))
    };
    exec(cargo().args(["build", "--locked", "-p", "synguard"]))?;
    // A VM's process group is not the terminal's: on SIGINT or SIGTERM
    // the run stops the VM itself and ends as on failure, removing what it
    // made (the namespace of the taps).
    stop_on_signals();
    let root = workspace().join("target/matrix");
    let synguard = workspace().join("target/debug/synguard");
    let smoke = workspace().join("xtask/src/matrix/smoke.py");
    let kernels = fetch_kernels(&root)?;
    let mut rows = Vec::new();
    for kernel in kernels.iter().filter(|k| wanted(&k.version)) {
        if stopped() {
            bail!("stopped by a signal; the VM and its namespace were removed");
        }
        let out = root.join("runs").join(&kernel.version);
        let _ = fs::remove_dir_all(&out);
        fs::create_dir_all(&out)?;
        eprintln!(
            "xtask matrix: booting {} ({})",
            kernel.version, kernel.suite
        );
        let tested = |dir: &Path| {
            let started = Instant::now();
            let booted = boot(kernel, dir, &smoke, &synguard);
            row(
                kernel.version.clone(),
                kernel.suite.clone(),
                dir,
                started,
                booted,
            )
        };
        let mut r = tested(&out);
        if let Some(why) = boot_again(&r, &out) {
            // The first boot's files stay where its problem says.
            let again = out.join("again");
            fs::create_dir_all(&again)?;
            eprintln!(
                "xtask matrix: {}: {}\nxtask matrix: {}: booting it once more (its files: {})",
                kernel.version,
                r["problem"].as_str().unwrap_or_default(),
                kernel.version,
                again.display()
            );
            r = tested(&again);
            r["first_boot"] = why.into();
        }
        rows.push(r);
    }
    if wanted("host") {
        let out = root.join("runs/host");
        let _ = fs::remove_dir_all(&out);
        fs::create_dir_all(&out)?;
        let started = Instant::now();
        let host = Command::new("python3")
            .arg(&smoke)
            .arg(&synguard)
            .arg(out.join("smoke.json"))
            .status()
            .context("running smoke.py on the host")
            .map(drop);
        let release = fs::read_to_string("/proc/sys/kernel/osrelease")?
            .trim()
            .to_string();
        rows.push(row(release, "host".into(), &out, started, host));
    }

    print_table(&rows);
    let json = json!({ "checks": CHECKS, "partial": only.is_some(), "kernels": rows });
    fs::write(root.join("matrix.json"), serde_json::to_vec_pretty(&json)?)?;
    // The same as a Markdown table, to check docs/kernels.md against.
    fs::write(root.join("kernels.md"), markdown(&rows))?;
    eprintln!("xtask matrix: wrote {}", root.join("matrix.json").display());
    if let Some(only) = &only {
        eprintln!("xtask matrix: partial run ({ONLY_VAR}={})", only.join(","));
    }
    // A kernel that could not be tested at all: one line each, naming the
    // kernel and the likely cause, before the summary.
    for r in &rows {
        let kernel = r["kernel"].as_str().unwrap_or_default();
        if let Some(why) = r["first_boot"].as_str() {
            eprintln!("xtask matrix: {kernel}: booted twice; the first boot: {why}");
        }
        if let Some(p) = r["problem"].as_str().filter(|p| !p.is_empty()) {
            eprintln!("xtask matrix: {kernel}: {p}");
        }
    }
    // Every check that kept a kernel from what the docs promise, with its
    // detail, so a CI log alone says why.
    for r in rows.iter().filter(|r| r["as_promised"] != true) {
        let kernel = r["kernel"].as_str().unwrap_or_default();
        for c in CHECKS {
            let check = &r["checks"][c];
            let verdict = check["verdict"].as_str().unwrap_or("-");
            if !matches!(verdict, "pass" | "refused" | "skip") {
                let detail = check["detail"].as_str().unwrap_or_default();
                eprintln!("xtask matrix: {kernel}: {c} {verdict}: {detail}");
            }
        }
    }
    let worse: Vec<String> = rows
        .iter()
        .filter(|r| r["as_promised"] != true)
        .map(|r| r["kernel"].as_str().unwrap_or_default().to_string())
        .collect();
    if !worse.is_empty() {
        bail!("worse than docs/kernels.md says: {}", worse.join(", "));
    }
    Ok(())
}

/// Fails in one line when qemu or virtme-ng cannot start at all: the
/// matrix would otherwise report every kernel as unbootable.
fn can_start_vms() -> Result<()> {
    let hint = format!("or set {SKIP_VAR}=skip to skip the kernel matrix by hand");
    for (program, arg, package) in [
        (QEMU, "-version", "qemu-system-x86"),
        (
            "vng",
            "--version",
            "virtme-ng (python3 -m pip install virtme-ng)",
        ),
    ] {
        if !runs(program, &[arg]) {
            bail!("cannot boot VMs: `{program} {arg}` does not run; install {package}, {hint}");
        }
    }
    Ok(())
}

/// One Debian kernel package set, extracted.
struct Kernel {
    /// The release as `uname -r` shows it, e.g. 6.1.0-57-amd64.
    version: String,
    suite: String,
    dir: PathBuf,
}

fn install_vm_tools() -> Result<()> {
    let missing: Vec<&str> = PACKAGES
        .iter()
        .copied()
        .filter(|p| !setup::installed(p))
        .collect();
    if !missing.is_empty() {
        setup::apt_install(&missing)?;
    }
    if !runs("vng", &["--version"]) {
        exec(Command::new("python3").args(["-m", "pip", "install", "-q", "virtme-ng"]))
            .context("installing virtme-ng from PyPI (python3 -m pip install virtme-ng)")?;
    }
    Ok(())
}

fn runs(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The Debian mirror and security archive this machine's apt uses, so the
/// scratch configuration reaches the same ones.
pub(crate) fn mirrors() -> Result<(String, Option<String>)> {
    let (mut mirror, mut security) = (None, None);
    let mut files = vec![PathBuf::from("/etc/apt/sources.list")];
    if let Ok(dir) = fs::read_dir("/etc/apt/sources.list.d") {
        files.extend(dir.flatten().map(|e| e.path()));
    }
    for file in files {
        let name = file.to_string_lossy();
        if !(name.ends_with(".list") || name.ends_with(".sources")) {
            continue;
        }
        let Ok(text) = fs::read_to_string(&file) else {
            continue;
        };
        for line in text.lines().map(str::trim) {
            let uri = if let Some(rest) = line.strip_prefix("URIs:") {
                rest.split_whitespace().next()
            } else if let Some(rest) = line.strip_prefix("deb ") {
                rest.split_whitespace().find(|w| w.contains("://"))
            } else {
                None
            };
            match uri.map(|u| u.trim_end_matches('/')) {
                Some(u) if u.ends_with("/debian") => {
                    mirror.get_or_insert_with(|| u.to_string());
                }
                Some(u) if u.ends_with("/debian-security") => {
                    security.get_or_insert_with(|| u.to_string());
                }
                _ => {}
            }
        }
    }
    let mirror = mirror.context(
        "no Debian mirror in /etc/apt/sources.list(.d): the kernel matrix and the systemd test fetch from it",
    )?;
    Ok((mirror, security))
}

/// apt-get or apt-cache with the scratch configuration under `root/apt`.
fn apt(root: &Path, tool: &str) -> Command {
    let apt = root.join("apt");
    let mut cmd = Command::new(tool);
    for (key, value) in [
        ("Dir::Etc::sourcelist", apt.join("sources.list")),
        ("Dir::Etc::sourceparts", PathBuf::from("-")),
        ("Dir::State::Lists", apt.join("lists")),
        ("Dir::Cache", apt.join("cache")),
        ("APT::Sandbox::User", PathBuf::from("root")),
    ] {
        cmd.arg("-o").arg(format!("{key}={}", value.display()));
    }
    cmd.arg("-q");
    cmd
}

/// The image packages to test, by `linux-image-amd64`'s dependencies:
/// the newest of each series, and the newest of all.
fn fetch_kernels(root: &Path) -> Result<Vec<Kernel>> {
    let apt_dir = root.join("apt");
    fs::create_dir_all(apt_dir.join("lists/partial"))?;
    fs::create_dir_all(apt_dir.join("cache/archives/partial"))?;
    let (mirror, security) = mirrors()?;
    let line = |uri: &str, suite: &str| {
        format!(
            "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] {uri} {suite} main\n"
        )
    };
    let mut sources: String = SUITES.iter().map(|suite| line(&mirror, suite)).collect();
    // Stable's kernel updates come through the security archive.
    if let Some(security) = security {
        for suite in SECURITY_SUITES {
            sources.push_str(&line(&security, suite));
        }
    }

    fs::write(apt_dir.join("sources.list"), sources)?;
    exec(apt(root, "apt-get").arg("update"))?;
    let show = apt(root, "apt-cache")
        .args(["show", "linux-image-amd64"])
        .output()?;
    let text = String::from_utf8_lossy(&show.stdout);
    // (version, image package) per stanza.
    let mut images: Vec<(String, String)> = Vec::new();
    for stanza in text.split("\n\n") {
        let field = |name: &str| {
            stanza
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .map(|v| v.trim().to_string())
        };
        if let (Some(version), Some(depends)) = (field("Version:"), field("Depends:"))
            && let Some(image) = depends
                .split(',')
                .map(|d| d.split_whitespace().next().unwrap_or_default())
                .find(|d| d.starts_with("linux-image-"))
        {
            images.push((version, image.to_string()));
        }
    }
    images.sort_by(|a, b| version_cmp(&a.0, &b.0));
    let mut chosen: Vec<(String, String)> = SERIES
        .iter()
        .filter_map(|series| {
            images
                .iter()
                .rev()
                .find(|(v, _)| v.starts_with(series))
                .cloned()
        })
        .collect();
    if let Some(newest) = images.last()
        && !chosen.contains(newest)
    {
        chosen.push(newest.clone());
    }
    if chosen.len() < SERIES.len() {
        bail!("Debian's package lists lack one of the kernel series {SERIES:?}: {images:?}");
    }
    chosen
        .into_iter()
        .map(|(version, image)| fetch_kernel(root, &version, &image))
        .collect()
}

/// Downloads and extracts an image package, and the packages of the same
/// release it depends on (newer Debian splits the image from its modules),
/// unless already extracted.
fn fetch_kernel(root: &Path, version: &str, image: &str) -> Result<Kernel> {
    let release = image
        .strip_prefix("linux-image-")
        .context("an image package name")?
        .to_string();
    let dir = root.join("kernels").join(&release);
    let suite = match version
        .split('.')
        .take(2)
        .collect::<Vec<_>>()
        .join(".")
        .as_str()
    {
        "5.10" => "bullseye",
        "6.1" => "bookworm",
        "6.12" => "trixie",
        _ => "sid",
    }
    .to_string();
    if vmlinuz(&dir, &release).is_some() {
        return Ok(Kernel {
            version: release,
            suite,
            dir,
        });
    }
    let depends = apt(root, "apt-cache").args(["depends", image]).output()?;
    let mut packages = vec![image.to_string()];
    for line in String::from_utf8_lossy(&depends.stdout).lines() {
        if let Some(dep) = line.trim().strip_prefix("Depends: ")
            && dep.starts_with("linux-")
            && dep.contains(&release)
        {
            packages.push(dep.to_string());
        }
    }
    let debs = root.join("debs");
    fs::create_dir_all(&debs)?;
    exec(
        apt(root, "apt-get")
            .current_dir(&debs)
            .arg("download")
            .args(&packages),
    )?;
    let staging = root.join("kernels").join(format!("{release}.partial"));
    let _ = fs::remove_dir_all(&staging);
    fs::create_dir_all(&staging)?;
    for entry in fs::read_dir(&debs)? {
        let path = entry?.path();
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        if packages.iter().any(|p| name.starts_with(&format!("{p}_"))) {
            exec(Command::new("dpkg-deb").arg("-x").arg(&path).arg(&staging))?;
        }
    }
    fs::rename(&staging, &dir)?;
    Ok(Kernel {
        version: release,
        suite,
        dir,
    })
}

/// The kernel image of an extracted release: in boot/, or (newer Debian)
/// beside its modules in usr/lib/modules/RELEASE/.
fn vmlinuz(dir: &Path, release: &str) -> Option<PathBuf> {
    [
        dir.join("boot").join(format!("vmlinuz-{release}")),
        dir.join("usr/lib/modules").join(release).join("vmlinuz"),
    ]
    .into_iter()
    .find(|p| p.exists())
}

/// Debian version order, enough for kernels: numeric runs compared as
/// numbers.
fn version_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    let parts = |s: &str| -> Vec<u64> {
        s.split(|c: char| !c.is_ascii_digit())
            .filter(|p| !p.is_empty())
            .map(|p| p.parse().unwrap_or(0))
            .collect()
    };
    parts(a).cmp(&parts(b))
}

/// Boots `kernel` and runs smoke.py in it; its verdicts land in `out`.
fn boot(kernel: &Kernel, out: &Path, smoke: &Path, synguard: &Path) -> Result<()> {
    let vmlinuz = vmlinuz(&kernel.dir, &kernel.version)
        .with_context(|| format!("no kernel image in {}", kernel.dir.display()))?;

    let guest_cmd = format!(
        "python3 {} {} {} {} {},{MQ_QUEUES} > {} 2>&1",
        smoke.display(),
        synguard.display(),
        out.join("smoke.json").display(),
        VIRTIO_MACS.join(","),
        MQ_MACS.join(","),
        out.join("smoke.log").display()
    );
    let mut nics: String = VIRTIO_MACS
        .iter()
        .enumerate()
        .map(|(i, mac)| {
            format!(
                "-netdev hubport,id=smk{i},hubid=7 -device virtio-net-pci,netdev=smk{i},mac={mac} "
            )
        })
        .collect();
    for (i, (mac, tap)) in MQ_MACS.iter().zip(MQ_TAPS).enumerate() {
        let offloads = if i == 0 {
            ",ctrl_guest_offloads=off"
        } else {
            ""
        };
        nics.push_str(&format!(
            "-netdev tap,id=smq{i},ifname={tap},script=no,downscript=no,queues={MQ_QUEUES} \
             -device virtio-net-pci,netdev=smq{i},mac={mac},mq=on,vectors={}{offloads} ",
            2 * MQ_QUEUES + 2
        ));
    }
    let mq = MqNet::create()?;
    let log = fs::File::create(out.join("vng.log"))?;
    // vng exits 255 here even when the command ran (no udev in the guest):
    // the verdict file, not the exit status, says what happened. It runs
    // in the taps' namespace (`ip netns exec` execs it: the same pid).
    let mut child = Command::new("ip")
        .args(["netns", "exec", &mq.0, "vng"])
        .args(["--disable-kvm", "--force-9p", "--run"])
        .arg(&vmlinuz)
        .args(["--busybox", "/bin/busybox", "--cpus", "2", "--memory", "2G"])
        // The guest kernel's log on the serial console, into vng.log: a
        // panic, an oops, and smoke.py's own lines (it writes each verdict
        // to /dev/kmsg) reach the host even when the shared directory fails.
        .arg("--verbose")
        .arg("--rwdir")
        .arg(out)
        // One argument: vng's parser takes a separate "-netdev ..." for
        // an option of its own.
        .arg(format!("--qemu-opts={}", nics.trim_end()))
        .arg("--exec")
        .arg(guest_cmd)
        .current_dir(out)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        // Its own process group: vng starts virtme-run, which execs qemu,
        // and a VM past its time is stopped as a group.
        .process_group(0)
        .spawn()
        .context("running vng (virtme-ng)")?;
    let started = Instant::now();
    let verdicts = out.join("smoke.json");
    let vng_log = out.join("vng.log");
    loop {
        if child.try_wait()?.is_some() {
            return Ok(());
        }
        let waited = started.elapsed();
        let limit = if verdicts.exists() {
            VM_TIMEOUT
        } else {
            BOOT_TIMEOUT
        };
        let stopped = stopped();
        if waited > limit || stopped {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", child.id())])
                .status();
            let _ = child.wait();
            if stopped {
                bail!("stopped by a signal");
            }
            if verdicts.exists() {
                bail!(
                    "the VM did not finish within {} s (smoke.py hung? see {})",
                    limit.as_secs(),
                    out.join("smoke.log").display()
                );
            }
            bail!(
                "the VM wrote no verdicts within {} s (qemu could not boot it? see {})",
                limit.as_secs(),
                vng_log.display()
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// The namespace of the multi-queue NICs' taps, bridged: made before a VM
/// boots, removed (taps first) when it is done, also on failure. Named
/// after this process, so two matrix runs on one machine do not meet.
struct MqNet(String);

impl MqNet {
    fn create() -> Result<MqNet> {
        let name = format!("synguard-matrix-mq-{}", std::process::id());
        let ip = |args: &[&str]| exec(Command::new("ip").args(["-n", &name]).args(args));
        exec(Command::new("ip").args(["netns", "add", &name]))?;
        let net = MqNet(name.clone());
        ip(&["link", "add", "sgmqbr", "type", "bridge"])?;
        for tap in MQ_TAPS {
            ip(&["tuntap", "add", "dev", tap, "mode", "tap", "multi_queue"])?;
            ip(&["link", "set", tap, "master", "sgmqbr", "up"])?;
        }
        ip(&["link", "set", "sgmqbr", "up"])?;
        Ok(net)
    }
}

impl Drop for MqNet {
    fn drop(&mut self) {
        for tap in MQ_TAPS {
            let _ = Command::new("ip")
                .args(["-n", &self.0, "tuntap", "del", "dev", tap, "mode", "tap"])
                .args(["multi_queue"])
                .stderr(Stdio::null())
                .status();
        }
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// One kernel's results, as written to matrix.json.
fn row(kernel: String, suite: String, out: &Path, started: Instant, ran: Result<()>) -> Value {
    let seconds = started.elapsed().as_secs_f64().round();
    let smoke: Value = fs::read(out.join("smoke.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(Value::Null);
    let mut checks = serde_json::Map::new();
    for &check in CHECKS {
        let verdict = smoke["checks"][check].clone();
        checks.insert(
            check.into(),
            if verdict.is_null() {
                json!({ "verdict": "-", "detail": "" })
            } else {
                verdict
            },
        );
    }
    let release = smoke["kernel"].as_str().unwrap_or_default().to_string();
    let supported = series(&release).is_some_and(|s| s >= SUPPORTED_FROM);
    let verdict = |c: &str| checks[c]["verdict"].as_str().unwrap_or("-").to_string();
    let as_promised = smoke["done"] == true
        && if supported {
            // The host run has no NICs of its own to give the virtio checks.
            CHECKS.iter().all(|c| {
                verdict(c) == "pass"
                    || (suite == "host" && c.starts_with("virtio_") && verdict(c) == "skip")
            })
        } else {
            verdict("attach_native_netns") == "refused"
                && verdict("status_probe") == "refused"
                && verdict("daemon_start_stop") == "refused"
        };
    let problem = match (&ran, smoke.is_null()) {
        (Err(e), _) => format!("{e:#}"),
        (Ok(()), true) => format!(
            "{NO_VERDICTS} (qemu could not boot it, or smoke.py did not start? see {})",
            out.join("vng.log").display()
        ),
        (Ok(()), false) if smoke["done"] != true => format!(
            "{STOPPED_EARLY} (the VM crashed or was stopped? see {} and {})",
            out.join("smoke.log").display(),
            out.join("vng.log").display()
        ),
        // smoke.py's own error, outside any check (the checks after it
        // did not run): what it was, and where.
        _ if smoke["checks"]["setup"]["verdict"] == "fail" => format!(
            "{OUTSIDE_CHECKS}{}",
            smoke["checks"]["setup"]["detail"]
                .as_str()
                .unwrap_or_default()
        ),
        _ => String::new(),
    };
    // What the guest's console said, for a VM that did not end as planned.
    let problem = if problem.is_empty() {
        problem
    } else {
        let said = console_tail(out);
        if said.is_empty() {
            problem
        } else {
            format!(
                "{problem}\n  the guest's console ended:\n    {}",
                said.join("\n    ")
            )
        }
    };
    json!({
        "kernel": kernel,
        "suite": suite,
        "seconds": seconds,
        "as_promised": as_promised,
        "problem": problem,
        "checks": checks,
    })
}

/// How a row's problem begins when the VM ended by itself without
/// smoke.py's verdicts, before smoke.py's end, or after an error of
/// smoke.py's outside its checks ([`row`] writes them, [`boot_again`] reads
/// them).
const NO_VERDICTS: &str = "the VM wrote no verdicts";
const STOPPED_EARLY: &str = "smoke.py stopped before its end";
const OUTSIDE_CHECKS: &str = "smoke.py failed outside its checks: ";

/// Signs in a guest's kernel log that the kernel itself failed.
const CRASH_SIGNS: &[&str] = &[
    "Kernel panic",
    "BUG:",
    "Oops",
    "general protection fault",
    "Call Trace",
    "soft lockup",
    "hard LOCKUP",
    "self-detected stall",
    "blocked for more than",
];

/// The lines of the guest's console (vng.log) that say how its run ended:
/// the kernel's own failure signs, smoke.py's lines and what the kernel said
/// last; at most 20.
fn console_tail(out: &Path) -> Vec<String> {
    let Ok(log) = fs::read_to_string(out.join("vng.log")) else {
        return Vec::new();
    };
    let lines: Vec<&str> = log.lines().collect();
    let mut keep: Vec<usize> = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.contains("smoke.py:") || CRASH_SIGNS.iter().any(|s| l.contains(s)))
        .map(|(i, _)| i)
        .collect();
    keep.extend(lines.len().saturating_sub(6)..lines.len());
    keep.sort_unstable();
    keep.dedup();
    let from = keep.len().saturating_sub(20);
    keep[from..]
        .iter()
        .map(|&i| lines[i].trim().to_string())
        .collect()
}

/// Why a kernel's run is worth one more boot, if it is: the VM ended by
/// itself before smoke.py's end, or smoke.py failed on an I/O error of its
/// own (the shared directory), and nothing says synguard or the kernel
/// failed: no check failed and the guest's kernel log shows no crash. A
/// check that failed, a VM past its time, a crash and a signal are never
/// run again.
fn boot_again(row: &Value, out: &Path) -> Option<String> {
    let problem = row["problem"].as_str().unwrap_or_default();
    let harness = problem.starts_with(STOPPED_EARLY)
        || problem.starts_with(&format!("{NO_VERDICTS} ("))
        || problem.starts_with(&format!("{OUTSIDE_CHECKS}OSError("));
    let failed = CHECKS.iter().any(|c| row["checks"][c]["verdict"] == "fail");
    let log = fs::read_to_string(out.join("vng.log")).unwrap_or_default();
    let crashed = CRASH_SIGNS.iter().any(|s| log.contains(s));
    (harness && !failed && !crashed && !stopped())
        .then(|| problem.lines().next().unwrap_or_default().to_string())
}

/// (major, minor) of a release string such as 6.1.0-57-amd64.
fn series(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// The kernel x check table in Markdown, as docs/kernels.md words it:
/// pass is "supported", refused "refused", skip "not run".
fn markdown(rows: &[Value]) -> String {
    let mut out = format!("| kernel | {} |\n|---|", CHECKS.join(" | "));
    out.push_str(&"---|".repeat(CHECKS.len()));
    out.push('\n');
    for r in rows {
        out.push_str(&format!(
            "| {} ({}) |",
            r["kernel"].as_str().unwrap_or(""),
            r["suite"].as_str().unwrap_or("")
        ));
        for c in CHECKS {
            let word = match r["checks"][c]["verdict"].as_str().unwrap_or("-") {
                "pass" => "supported",
                "refused" => "refused",
                "skip" => "not run",
                other => other,
            };
            out.push_str(&format!(" {word} |"));
        }
        out.push('\n');
    }
    out
}

fn print_table(rows: &[Value]) {
    let short = |c: &str| c.replace("_native_netns", "").replace("_from_xdp", "");
    let mut header = format!("{:<31} {:>5}", "kernel", "secs");
    for c in CHECKS {
        header.push_str(&format!(" {:>18}", short(c)));
    }
    println!("{header}");
    for r in rows {
        let mut line = format!(
            "{:<31} {:>5}",
            format!(
                "{} ({})",
                r["kernel"].as_str().unwrap_or(""),
                r["suite"].as_str().unwrap_or("")
            ),
            r["seconds"]
        );
        for c in CHECKS {
            line.push_str(&format!(
                " {:>18}",
                r["checks"][c]["verdict"].as_str().unwrap_or("-")
            ));
        }
        line.push_str(if r["as_promised"] == true {
            "  ok"
        } else {
            "  WORSE"
        });
        println!("{line}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_versions_order_numerically() {
        let mut v = vec![
            "6.12.117-1",
            "6.1.192-3",
            "7.2.13-1",
            "5.10.223-1",
            "6.1.176-1",
        ];
        v.sort_by(|a, b| version_cmp(a, b));
        assert_eq!(
            v,
            [
                "5.10.223-1",
                "6.1.176-1",
                "6.1.192-3",
                "6.12.117-1",
                "7.2.13-1"
            ]
        );
        assert_eq!(series("6.1.0-57-amd64"), Some((6, 1)));
        assert_eq!(series("6.12.117+deb13-amd64"), Some((6, 12)));
    }

    /// A row as row() makes it, for `problem` and one failed check (or none).
    fn row_with(problem: &str, failed: Option<&str>) -> Value {
        let mut checks = serde_json::Map::new();
        for c in CHECKS {
            let verdict = if Some(*c) == failed { "fail" } else { "pass" };
            checks.insert(c.to_string(), json!({ "verdict": verdict }));
        }
        json!({ "problem": problem, "checks": checks })
    }

    #[test]
    fn only_a_harness_failure_boots_a_kernel_again() {
        let out = std::env::temp_dir().join(format!("synguard-boot-again-{}", std::process::id()));
        fs::create_dir_all(&out).unwrap();
        let boot = "[    0.387498] NMI watchdog: Perf NMI watchdog permanently disabled\n\
                    [    4.778609] smoke.py: cookie_handshake_v4 pass: SYN-ACKs from XDP 1\n";
        fs::write(out.join("vng.log"), boot).unwrap();
        let stopped = "smoke.py stopped before its end (the VM crashed or was stopped? see a and b)\n  the guest's console ended:";
        assert_eq!(
            boot_again(&row_with(stopped, None), &out).as_deref(),
            Some("smoke.py stopped before its end (the VM crashed or was stopped? see a and b)")
        );
        let io =
            "smoke.py failed outside its checks: OSError(61, 'No data available') at smoke.py:1";
        assert!(boot_again(&row_with(io, None), &out).is_some());
        // What synguard or the kernel did is never tried again.
        assert!(boot_again(&row_with(stopped, Some("blocklist_drop")), &out).is_none());
        let daemon =
            "smoke.py failed outside its checks: RuntimeError('synguard run: exit 1') at x";
        assert!(boot_again(&row_with(daemon, None), &out).is_none());
        let late = "the VM did not finish within 600 s (smoke.py hung? see a)";
        assert!(boot_again(&row_with(late, None), &out).is_none());
        assert!(boot_again(&row_with("", None), &out).is_none());
        fs::write(
            out.join("vng.log"),
            format!("{boot}[   60.1] Kernel panic - not syncing: Fatal exception in interrupt\n"),
        )
        .unwrap();
        assert!(boot_again(&row_with(stopped, None), &out).is_none());
        // The console's tail names the panic and smoke.py's last line.
        let said = console_tail(&out);
        assert!(said.iter().any(|l| l.contains("Kernel panic")), "{said:?}");
        assert!(
            said.iter()
                .any(|l| l.contains("smoke.py: cookie_handshake_v4"))
        );
        fs::remove_dir_all(&out).unwrap();
    }

    #[test]
    fn the_markdown_table_words_verdicts_as_the_docs_do() {
        let mut checks = serde_json::Map::new();
        for (i, c) in CHECKS.iter().enumerate() {
            let verdict = ["pass", "refused", "skip"][i % 3];
            checks.insert(c.to_string(), json!({ "verdict": verdict }));
        }
        let row = json!({ "kernel": "6.1.0-57-amd64", "suite": "bookworm", "checks": checks });
        let md = markdown(&[row]);
        let lines: Vec<&str> = md.lines().collect();
        assert_eq!(lines.len(), 3, "{md}");
        assert!(
            lines[2].starts_with("| 6.1.0-57-amd64 (bookworm) | supported | refused | not run |")
        );
        assert_eq!(lines[0].matches('|').count(), CHECKS.len() + 2);
    }
}
