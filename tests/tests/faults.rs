//! Faults, end to end in the namespace lab: another XDP program on the
//! interface, the protected interface deleted and created again under a
//! running daemon, a full blocklist, pins of another layout version, and
//! list flags left over-stated by a crash.
use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    time::{Duration, Instant},
};

use ipnet::IpNet;
use synguard::{
    lists::{List, ListMaps},
    pins::PinLayout,
};
use synguard_tests::{
    http,
    lab::{Lab, if_index, mac},
    netns::unique_prefix,
    peer_xdp, require_root,
    synguard::Synguard,
};

fn xdp_program_name(lab: &Lab) -> Option<String> {
    let out = lab
        .target
        .command("ip")
        .args(["-j", "link", "show", "dev", &lab.target_if])
        .output()
        .ok()?;
    let links: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    let xdp = links.get(0)?.get("xdp")?;
    let prog = xdp
        .get("prog")
        .or_else(|| xdp.get("attached")?.get(0)?.get("prog"))?;
    prog.get("name")?.as_str().map(str::to_string)
}

#[test]
fn another_xdp_program_is_refused_unless_replaced() {
    require_root();
    let lab = Lab::new().unwrap();
    let synguard = Synguard::new(lab.target.name());
    let t = &lab.target;

    // Held by another process's bpf_link: refused, and --replace cannot help.
    let ifindex = t.run(|| if_index(&lab.target_if));
    let link = t.run(|| peer_xdp::attach_pass(ifindex)).unwrap();
    let out = synguard
        .output(t, &["attach", &lab.target_if, "--mode", "native"])
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("another XDP program (lab_peer, id "), "{err}");
    let out = synguard
        .output(
            t,
            &["attach", &lab.target_if, "--mode", "native", "--replace"],
        )
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("held by another process's bpf_link"), "{err}");
    assert_eq!(xdp_program_name(&lab).as_deref(), Some("lab_peer"));
    drop(link);

    // Attached through netlink (as ip, xdp-loader and older tools do):
    // refused by default, replaced when told to.
    let pin = std::path::PathBuf::from(format!(
        "/sys/fs/bpf/synguard-lab-foreign-{}",
        unique_prefix()
    ));
    peer_xdp::pin_pass(&pin).unwrap();
    let status = t
        .command("ip")
        .args(["link", "set", "dev", &lab.target_if, "xdpdrv", "pinned"])
        .arg(&pin)
        .status()
        .unwrap();
    let _ = std::fs::remove_file(&pin);
    assert!(status.success());
    let out = synguard.output(t, &["attach", &lab.target_if]).unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("lab_peer"));
    assert_eq!(
        xdp_program_name(&lab).as_deref(),
        Some("lab_peer"),
        "left alone"
    );
    let out = synguard
        .run(t, &["attach", &lab.target_if, "--replace"])
        .unwrap();
    assert!(out.contains("attached"), "{out}");
    assert_eq!(xdp_program_name(&lab).as_deref(), Some("synguard"));
}

/// Waits until `needle` appears `times` times in the daemon's log.
fn wait_for_count(daemon: &synguard_tests::synguard::Daemon, needle: &str, times: usize) -> bool {
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if daemon.log().matches(needle).count() >= times {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

#[test]
fn an_interface_renamed_or_deleted_and_created_again_is_attached_again() {
    require_root();
    let lab = Lab::new().unwrap();
    let synguard = Synguard::new(lab.target.name());
    let t = &lab.target;
    let config = std::env::temp_dir().join(format!("synguard-recreate-{}.toml", t.name()));
    std::fs::write(
        &config,
        format!(
            "[[interface]]\nname = \"{}\"\nmode = \"native\"\n[lists]\nblock = [\"198.18.5.0/24\"]\n",
            lab.target_if
        ),
    )
    .unwrap();
    let mut daemon = synguard.daemon(t, &config).unwrap();
    let addr: SocketAddr = "127.0.0.1:9720".parse().unwrap();
    let health = |want: u16| {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if matches!(http::get(t, addr, "/healthz"), Ok((code, _)) if code == want) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    };
    assert!(health(200), "{}", daemon.log());

    // Renamed: reported, and no longer protected (the config names eth
    // names, not devices); the old name back means protection back.
    t.ip(&["link", "set", &lab.target_if, "down"]).unwrap();
    t.ip(&["link", "set", &lab.target_if, "name", "renamed0"])
        .unwrap();
    assert!(
        daemon.wait_for_log(
            &format!("{} was renamed to renamed0", lab.target_if),
            Duration::from_secs(15)
        ),
        "{}",
        daemon.log()
    );
    assert!(health(503), "healthz reports the interface unprotected");
    t.ip(&["link", "set", "renamed0", "name", &lab.target_if])
        .unwrap();
    t.ip(&["link", "set", &lab.target_if, "up"]).unwrap();
    assert!(
        daemon.wait_for_log("attached again", Duration::from_secs(15)),
        "{}",
        daemon.log()
    );
    assert!(health(200), "{}", daemon.log());

    // Deleting one end of a veth deletes both.
    t.ip(&["link", "del", &lab.target_if]).unwrap();
    assert!(
        daemon.wait_for_log("is gone (deleted)", Duration::from_secs(15)),
        "{}",
        daemon.log()
    );
    assert!(health(503), "healthz reports the interface unprotected");

    lab.outside
        .ip(&[
            "link",
            "add",
            &lab.outside_if,
            "address",
            &mac(synguard_tests::lab::OUTSIDE_MAC),
            "type",
            "veth",
            "peer",
            "name",
            &lab.target_if,
            "netns",
            t.name(),
        ])
        .unwrap();
    lab.outside
        .ip(&["link", "set", &lab.outside_if, "up"])
        .unwrap();
    t.ip(&["link", "set", &lab.target_if, "up"]).unwrap();
    assert!(
        wait_for_count(&daemon, "attached again", 2),
        "{}",
        daemon.log()
    );
    assert!(health(200), "{}", daemon.log());

    // And it protects the new interface.
    lab.send_udp_from(Ipv4Addr::new(198, 18, 5, 3), 10);
    assert_eq!(
        synguard
            .count(t, &lab.target_if, "drop", "blocklist")
            .unwrap(),
        10
    );
    daemon.signal(libc::SIGTERM);
    assert!(
        daemon
            .wait(Duration::from_secs(30))
            .is_some_and(|s| s.success())
    );
    let _ = std::fs::remove_file(&config);
}

/// Every list trie's LIST_IN_USE flag is set whenever the trie holds an
/// entry (false would let the data path skip it: a bypass).
fn assert_flags_cover_entries(layout: &PinLayout, when: &str) {
    let maps = ListMaps::open(layout).unwrap();
    for list in [List::Allow, List::Block, List::Martian] {
        let entries = maps.entries(list).unwrap();
        let (v4, v6) = maps.in_use(list).unwrap();
        let has_v4 = entries.iter().any(|(n, _)| n.addr().is_ipv4());
        let has_v6 = entries.iter().any(|(n, _)| n.addr().is_ipv6());
        assert!(
            (v4 || !has_v4) && (v6 || !has_v6),
            "{when}: the {} holds {entries:?} but its flags say in use v4 {v4}, v6 {v6}",
            list.name()
        );
    }
}

#[test]
fn list_flags_never_say_empty_while_a_trie_holds_entries() {
    require_root();
    let synguard = Synguard::new(&format!("{}-flags", unique_prefix()));
    let layout = PinLayout::new(synguard.pin_root());
    let net = |s: &str| -> IpNet { s.parse().unwrap() };

    // A fresh layout: everything empty, so every trie is skipped.
    assert_eq!(lists(&layout).in_use(List::Allow).unwrap(), (false, false));
    assert_eq!(lists(&layout).in_use(List::Block).unwrap(), (false, false));

    assert!(
        lists(&layout)
            .add(List::Allow, net("192.0.2.10/32"), 0)
            .unwrap()
    );
    assert_flags_cover_entries(&layout, "allow added");
    assert_eq!(lists(&layout).in_use(List::Allow).unwrap(), (true, false));
    assert!(
        lists(&layout)
            .add(List::Allow, net("192.0.2.0/24"), 0)
            .unwrap()
    );
    assert!(
        lists(&layout)
            .remove(List::Allow, net("192.0.2.10/32"))
            .unwrap()
    );
    assert_flags_cover_entries(&layout, "one of two removed");
    assert_eq!(lists(&layout).in_use(List::Allow).unwrap(), (true, false));
    assert!(
        lists(&layout)
            .remove(List::Allow, net("192.0.2.0/24"))
            .unwrap()
    );
    assert_eq!(lists(&layout).in_use(List::Allow).unwrap(), (false, false));

    // sync adds and removes config entries; sweeps remove expired ones.
    let desired = [net("198.51.100.0/24"), net("2001:db8::/32")];
    lists(&layout).sync(List::Block, &desired, &[]).unwrap();
    assert_flags_cover_entries(&layout, "synced");
    assert_eq!(lists(&layout).in_use(List::Block).unwrap(), (true, true));
    lists(&layout)
        .sync(List::Block, &desired[..1], &desired)
        .unwrap();
    assert_eq!(lists(&layout).in_use(List::Block).unwrap(), (true, false));
    lists(&layout)
        .add(List::Block, net("2001:db8:1::/48"), 100)
        .unwrap();
    assert_eq!(lists(&layout).in_use(List::Block).unwrap(), (true, true));
    let gone = lists(&layout).sweep_expired(List::Block, 101).unwrap();
    assert_eq!(gone, vec![net("2001:db8:1::/48")]);
    assert_eq!(lists(&layout).in_use(List::Block).unwrap(), (true, false));
    lists(&layout).seed_martians().unwrap();
    assert_flags_cover_entries(&layout, "martians seeded");
    assert_eq!(lists(&layout).in_use(List::Martian).unwrap(), (true, true));

    // A crash between a change's two steps (flag set, then insert; delete,
    // then flag cleared) leaves a flag set over an empty trie: a lookup for
    // nothing, which the next change repairs.
    lists(&layout)
        .add(List::Allow, net("2001:db8::1/128"), 0)
        .unwrap();
    remove_entry_behind_synguards_back(&layout, "2001:db8::1");
    assert_eq!(lists(&layout).in_use(List::Allow).unwrap(), (false, true));
    lists(&layout).sweep_expired(List::Allow, 1).unwrap();
    assert_eq!(lists(&layout).in_use(List::Allow).unwrap(), (false, false));
    lists(&layout).settle_all().unwrap();
    assert_flags_cover_entries(&layout, "settled");

    // Every change leaves an IPv4 index live; a crash in the middle of
    // one leaves none (the data path then asks the tries), and the next
    // change, or attach, builds it again.
    assert!(lists(&layout).index_stats().is_ok());
    set_list_slot(&layout, synguard_common::list_in_use::INDEX_V4, 0);
    assert!(lists(&layout).index_stats().is_err());
    lists(&layout).settle_all().unwrap();
    assert!(lists(&layout).index_stats().is_ok());
}

/// Writes one slot of the pinned `LIST_IN_USE` array, as a crash part way
/// through a change would leave it.
fn set_list_slot(layout: &PinLayout, slot: u32, value: u32) {
    use aya::maps::{Array, Map, MapData};
    let map = MapData::from_pin(layout.shared_map(synguard_common::maps::LIST_IN_USE)).unwrap();
    let mut array: Array<_, u32> = Array::try_from(Map::Array(map)).unwrap();
    array.set(slot, value, 0).unwrap();
}

fn lists(layout: &PinLayout) -> ListMaps {
    ListMaps::open(layout).unwrap()
}

/// Removes a /128 from the allowlist's IPv6 trie directly, leaving its
/// flag as a crash after the delete would.
fn remove_entry_behind_synguards_back(layout: &PinLayout, addr: &str) {
    use aya::maps::{LpmTrie, Map, MapData, lpm_trie::Key};
    let map = MapData::from_pin(layout.shared_map(synguard_common::maps::ALLOW_V6)).unwrap();
    let mut trie: LpmTrie<_, [u8; 16], synguard_common::ListValue> =
        LpmTrie::try_from(Map::LpmTrie(map)).unwrap();
    let addr: std::net::Ipv6Addr = addr.parse().unwrap();
    trie.remove(&Key::new(128, addr.octets())).unwrap();
}

#[test]
fn a_full_blocklist_says_so_and_loses_nothing() {
    require_root();
    let lab = Lab::new().unwrap();
    let synguard = Synguard::new(lab.target.name());
    let t = &lab.target;
    synguard.run(t, &["block", "198.18.5.0/24"]).unwrap();
    let layout = PinLayout::new(synguard.pin_root());
    // Fill the rest of the IPv4 blocklist with /32s of 10.0.0.0/8.
    let capacity = synguard_common::sizes::BLOCKLIST as usize;
    let fill: Vec<IpNet> = (0..capacity as u32 - 1)
        .map(|i| IpNet::from(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i))))
        .collect();
    lists(&layout).sync(List::Block, &fill, &[]).unwrap();

    let out = synguard.output(t, &["block", "198.18.6.0/24"]).unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "the blocklist is full ({capacity} entries); nothing was removed"
        )),
        "{err}"
    );
    let entries = lists(&layout).entries(List::Block).unwrap();
    assert_eq!(entries.len(), capacity);
    assert!(
        entries
            .iter()
            .any(|(n, _)| n.to_string() == "198.18.5.0/24")
    );
    assert!(
        !entries
            .iter()
            .any(|(n, _)| n.to_string() == "198.18.6.0/24")
    );

    // The entries already there still drop.
    synguard
        .run(t, &["attach", &lab.target_if, "--mode", "native"])
        .unwrap();
    lab.send_udp_from(Ipv4Addr::new(198, 18, 5, 3), 5);
    assert_eq!(
        synguard
            .count(t, &lab.target_if, "drop", "blocklist")
            .unwrap(),
        5
    );
}

#[test]
fn pins_of_another_layout_version_are_reported_not_read() {
    require_root();
    let lab = Lab::new().unwrap();
    let synguard = Synguard::new(lab.target.name());
    let t = &lab.target;
    synguard.run(t, &["block", "198.18.5.0/24"]).unwrap();
    std::fs::create_dir_all(synguard.pin_root().join("v0")).unwrap();
    let status = synguard.run(t, &["status"]).unwrap();
    assert!(
        status.contains("v0 holds pins of another map layout"),
        "{status}"
    );
    assert!(status.contains("1 blocked"), "{status}");
}
