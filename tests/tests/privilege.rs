//! Least privilege: the service runs with only the capabilities the unit
//! file grants (CAP_BPF, CAP_NET_ADMIN, CAP_PERFMON; bpffs already mounted,
//! as systemd does at boot), and a user without them gets a clear
//! permission error from every verb, not a crash or a half-done change.
use std::{
    net::SocketAddr,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use synguard_tests::{
    http,
    lab::Lab,
    netns::Netns,
    require_root,
    synguard::{Synguard, binary},
};

/// The capabilities packaging/synguard.service keeps.
const SERVICE_CAPS: &str = "-all,+bpf,+net_admin,+perfmon";

/// `setpriv <args> synguard ...` inside `ns`, with the lab's pins and state.
fn limited(synguard: &Synguard, ns: &Netns, setpriv: &[&str]) -> Command {
    let mut cmd = ns.command("setpriv");
    cmd.args(setpriv)
        .arg(binary())
        .env("SYNGUARD_PIN_ROOT", synguard.pin_root())
        .env("SYNGUARD_STATE_DIR", synguard.state_dir())
        .env_remove("NOTIFY_SOCKET");
    cmd
}

#[test]
fn the_service_needs_only_bpf_net_admin_and_perfmon() {
    require_root();
    let lab = Lab::new().unwrap();
    let synguard = Synguard::new(lab.target.name());
    let config = std::env::temp_dir().join(format!("synguard-caps-{}.toml", lab.target.name()));
    std::fs::write(
        &config,
        format!(
            "[[interface]]\nname = \"{}\"\nmode = \"native\"\n[lists]\nblock = [\"198.18.5.0/24\"]\n",
            lab.target_if
        ),
    )
    .unwrap();
    let mut child = limited(
        &synguard,
        &lab.target,
        &["--bounding-set", SERVICE_CAPS, "--inh-caps=-all"],
    )
    .arg("--config")
    .arg(&config)
    .arg("run")
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let addr: SocketAddr = "127.0.0.1:9720".parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut healthy = false;
    while Instant::now() < deadline && !healthy {
        healthy = matches!(http::get(&lab.target, addr, "/healthz"), Ok((200, _)));
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // SAFETY: SIGTERM to the pid of our own unreaped child.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let out = child.wait_with_output().unwrap();
    let _ = std::fs::remove_file(&config);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(healthy, "not healthy with {SERVICE_CAPS}:\n{log}");
    assert!(out.status.success(), "{}:\n{log}", out.status);
    assert!(
        log.contains("attached") && log.contains("restored"),
        "{log}"
    );
}

#[test]
fn without_privileges_every_verb_says_so_clearly() {
    require_root();
    let ns = Netns::create(&format!("{}-np", synguard_tests::netns::unique_prefix())).unwrap();
    let synguard = Synguard::new(ns.name());
    // Something to refuse access to: a list created by root.
    synguard.run(&ns, &["block", "198.18.5.0/24"]).unwrap();
    let nobody = ["--reuid=65534", "--regid=65534", "--clear-groups"];
    for verb in [
        vec!["attach", "lo"],
        vec!["detach", "lo"],
        vec!["block", "198.18.6.0/24"],
        vec!["unblock", "198.18.5.0/24"],
        vec!["list"],
        vec!["stats"],
        vec!["sysctl", "apply"],
    ] {
        let out = limited(&synguard, &ns, &nobody)
            .args(&verb)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{verb:?}: {err}");
        assert!(err.contains("this needs root"), "{verb:?}: {err}");
        assert!(!err.contains("panicked"), "{verb:?}: {err}");
    }
    let list = synguard.run(&ns, &["list"]).unwrap();
    assert!(list.contains("198.18.5.0/24"), "nothing was lost: {list}");
    assert!(!list.contains("198.18.6.0/24"), "nothing was added: {list}");
}
