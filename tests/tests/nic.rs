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
        stderr.contains("warning: sgbridge0: the driver (virtual device) refused native XDP")
            && stderr.contains("skb (generic) mode"),
        "{stderr}"
    );
    synguard.run(&ns, &["detach", "sgbridge0"]).unwrap();
}
