use std::path::Path;

use crate::config::Config;

use super::*;

fn parse(text: &str) -> Result<Option<BgpConfig>, String> {
    Config::parse(text, Path::new("/etc/synguard/synguard.toml"))
        .map(|c| c.bgp)
        .map_err(|e| e.to_string())
}

#[test]
fn communities_read_and_print_as_asn_value() {
    assert_eq!("65535:666".parse::<Community>().unwrap(), BLACKHOLE);
    assert_eq!(BLACKHOLE.to_string(), "65535:666");
    assert!("65536:1".parse::<Community>().is_err());
    assert!("100".parse::<Community>().is_err());
}

#[test]
fn no_section_or_disabled_means_no_bgp() {
    assert_eq!(parse("").unwrap(), None);
    assert_eq!(parse("[bgp]\nenabled = false\n").unwrap(), None);
    let c = parse("[bgp]\nenabled = true\n").unwrap().unwrap();
    assert_eq!(c.api, "unix:///run/synguard-gobgp/api.sock");
    assert!(c.fleet.is_none() && c.escalation.is_none());
    assert!(c.withdraw_on_stop && !c.dry_run);
}

#[test]
fn errors_name_the_line_and_key() {
    let err = parse("[bgp]\nenabled = true\napi = \"localhost\"\n").unwrap_err();
    assert!(err.contains(":3: key `bgp.api`"), "{err}");
    let err = parse("[bgp]\nenabled = true\n[bgp.fleet]\nenabled = true\ncommunity = \"65001\"\n")
        .unwrap_err();
    assert!(err.contains(":5: key `bgp.fleet.community`"), "{err}");
    assert!(err.contains("ASN:VALUE"), "{err}");
    let err = parse(
        "[bgp]\nenabled = true\nprotected = [\"198.18.0.0/24\"]\n[bgp.escalation]\nenabled = true\ncapacity_syn_pps = 10\ntargets = [\"198.18.0.2\"]\n",
    )
    .unwrap_err();
    assert!(err.contains(":7: key `bgp.escalation.targets`"), "{err}");
    assert!(err.contains("protected prefix 198.18.0.0/24"), "{err}");
    let err = parse(
        "[bgp]\nenabled = true\n[bgp.escalation]\nenabled = true\ntargets = [\"198.18.0.2\"]\n",
    )
    .unwrap_err();
    assert!(err.contains("capacity_syn_pps or nic_drops_pps"), "{err}");
    let err = parse(
        "[bgp]\nenabled = true\n[bgp.escalation]\nenabled = true\ntargets = [\"198.18.0.2\"]\ncapacity_syn_pps = 5\naction = \"drop\"\n",
    )
    .unwrap_err();
    assert!(err.contains(":7: key `bgp.escalation.action`"), "{err}");
    let err = parse(
        "[bgp]\nenabled = true\n[bgp.fleet]\nenabled = true\ncommunity = \"65001:100\"\nmax_entries = 20000\n",
    )
    .unwrap_err();
    assert!(err.contains(":6: key `bgp.fleet.max_entries`"), "{err}");
    assert!(err.contains("1 to 16383"), "{err}");
    let err = parse("[bgp]\nenabled = true\nshortest_v4 = 33\n").unwrap_err();
    assert!(err.contains(":3: key `bgp.shortest_v4`"), "{err}");
}

#[test]
fn a_full_section_parses() {
    let c = parse(
        r#"
[bgp]
enabled = true
api = "unix:///run/x/gobgp.sock"
dry_run = true
protected = ["198.18.0.0/31"]
max_announcements = 4
[bgp.fleet]
enabled = true
community = "65001:100"
[bgp.escalation]
enabled = true
targets = ["198.18.0.2", "2001:2::2"]
capacity_syn_pps = 20000
sustain = "3s"
action = "discard"
rtbh = true
rtbh_after = "30s"
hold_down = "1m"
"#,
    )
    .unwrap()
    .unwrap();
    assert!(c.dry_run);
    assert_eq!(c.max_announcements, 4);
    assert_eq!(c.fleet.unwrap().community.to_string(), "65001:100");
    let e = c.escalation.unwrap();
    assert_eq!(e.targets.len(), 2);
    assert_eq!(e.action, FlowAction::Discard);
    assert!(e.rtbh);
    assert_eq!(e.blackhole, BLACKHOLE);
    assert_eq!(e.hold_down, Duration::from_secs(60));
}
