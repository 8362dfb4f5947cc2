//! End-to-end: what `attach` says about an interface's driver. A device
//! without native XDP (a bridge) is attached in skb mode by `--mode auto`,
//! and the operator is told it runs slower and where to look, on stderr.
use synguard_tests::{
    netns::{Netns, unique_prefix},
    require_root,
    synguard::Synguard,
};

#[test]
fn auto_mode_on_a_driver_without_native_xdp_warns_of_skb_mode() {
    require_root();
    let ns = Netns::create(&format!("{}-nic", unique_prefix())).expect("netns");
    ns.ip(&["link", "add", "sgbridge0", "type", "bridge"])
        .unwrap();
    ns.ip(&["link", "set", "sgbridge0", "up"]).unwrap();
    let synguard = Synguard::new(ns.name());
    let out = synguard
        .output(&ns, &["attach", "sgbridge0", "--mode", "auto"])
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("(skb mode)"), "{stdout}");
    assert!(
        stderr.contains("warning: sgbridge0: the driver (bridge) refused native XDP")
            && stderr.contains("skb (generic) mode"),
        "{stderr}"
    );
    synguard.run(&ns, &["detach", "sgbridge0"]).unwrap();
}

#[test]
fn a_daemon_that_cannot_attach_leaves_the_sysctls_as_they_were() {
    // The start fails (native mode on a driver without it, as a kernel that
    // refuses the program would): the sysctls it applied go back.
    require_root();
    let ns = Netns::create(&format!("{}-nid", unique_prefix())).expect("netns");
    ns.ip(&["link", "add", "sgbridge1", "type", "bridge"])
        .unwrap();
    ns.ip(&["link", "set", "sgbridge1", "up"]).unwrap();
    ns.set_sysctl("net.ipv4.tcp_timestamps", "1").unwrap();
    let dir = std::env::temp_dir().join(format!("synguard-nic-{}", unique_prefix()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("synguard.toml");
    std::fs::write(
        &config,
        "[[interface]]\nname = \"sgbridge1\"\nmode = \"native\"\n",
    )
    .unwrap();
    let synguard = Synguard::new(ns.name());
    let mut daemon = synguard.daemon(&ns, &config).unwrap();
    let status = daemon
        .wait(std::time::Duration::from_secs(60))
        .expect("the daemon exits");
    let log = daemon.log();
    assert!(!status.success(), "{log}");
    assert!(log.contains("cannot attach sgbridge1"), "{log}");
    assert!(
        log.contains("tcp_timestamps: 1 -> 2"),
        "applied first: {log}"
    );
    assert!(log.contains("restored: start failed"), "{log}");
    assert_eq!(ns.sysctl("net.ipv4.tcp_timestamps").unwrap().trim(), "1");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn offloads_are_read_as_ethtool_shows_them_and_veth_has_none_that_block_xdp() {
    // veth reports LRO and hardware GRO as fixed off (the offloads that
    // stop native XDP elsewhere), so it can show the read, not a refusal:
    // generic GRO, which veth lets change, read back in each state.
    require_root();
    let ns = Netns::create(&format!("{}-nio", unique_prefix())).expect("netns");
    ns.ip(&[
        "link", "add", "sgoff0", "type", "veth", "peer", "name", "sgoff1",
    ])
    .unwrap();
    ns.ip(&["link", "set", "sgoff0", "up"]).unwrap();
    let read = |name: &str| {
        ns.run(|| synguard::nic::offloads("sgoff0"))
            .expect("offloads of sgoff0")
            .into_iter()
            .find(|o| o.name == name)
            .unwrap_or_else(|| panic!("no offload {name}"))
    };
    for blocking in synguard::nic::XDP_BLOCKING_OFFLOADS {
        let o = read(blocking);
        assert!(!o.active && o.fixed, "{o:?}");
    }
    for (state, active) in [("off", false), ("on", true)] {
        let out = ns
            .command("ethtool")
            .args(["-K", "sgoff0", "gro", state])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let gro = read("rx-gro");
        assert_eq!(gro.active, active, "{gro:?} after gro {state}");
        assert!(!gro.fixed, "{gro:?}");
    }
    // And so native attach gives no offload hints, and succeeds.
    assert!(
        ns.run(|| synguard::nic::native_refusal("sgoff0", None))
            .is_empty()
    );
    // It succeeds, and says what native XDP does to a veth's receive
    // path (docs/benchmarks.md#one-cpu-the-generator-and-the-receive-work-together).
    let synguard = Synguard::new(ns.name());
    let out = synguard
        .output(&ns, &["attach", "sgoff0", "--mode", "native"])
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("(native mode)"), "{stdout}");
    assert!(
        stderr.contains("warning: sgoff0 (veth): with native XDP") && stderr.contains("--mode skb"),
        "{stderr}"
    );
    synguard.run(&ns, &["detach", "sgoff0"]).unwrap();
    // skb mode keeps veth's backlog: nothing to say.
    let out = synguard
        .output(&ns, &["attach", "sgoff0", "--mode", "skb"])
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("(veth)"), "{stderr}");
    synguard.run(&ns, &["detach", "sgoff0"]).unwrap();
}
