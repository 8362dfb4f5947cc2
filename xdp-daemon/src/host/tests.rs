use super::*;

fn link(index: u32, name: &str, mac: u8, vlan: Option<Vlan>) -> Link {
    Link {
        index,
        name: name.into(),
        mac: Some([2, 0, 0, 0, 0, mac]),
        up: true,
        vlan,
        xdp: None,
    }
}

fn route(net: &str, oif: u32) -> LocalRoute {
    LocalRoute {
        net: net.parse().unwrap(),
        oif,
    }
}

fn view() -> HostView {
    let vlan = |lower, ad, id| Some(Vlan { lower, ad, id });
    let mut down = link(6, "eth0.300", 6, vlan(2, false, 300));
    down.up = false;
    HostView {
        links: vec![
            link(1, "lo", 0, None),
            link(2, "eth0", 2, None),
            link(3, "eth0.100", 3, vlan(2, false, 100)),
            link(4, "eth0.100.7", 4, vlan(3, true, 7)),
            link(5, "eth1", 5, None),
            down,
            link(7, "eth1.100", 7, vlan(5, false, 100)),
        ],
        local: vec![
            route("127.0.0.0/8", 1),
            route("127.0.0.1/32", 1),
            route("::1/128", 1),
            route("198.18.0.2/32", 2),
            route("198.18.9.2/32", 5),
            route("198.18.64.0/24", 1),
            route("2001:2::2/128", 2),
            route("fe80::2/128", 2),
            route("fe80::3/128", 3),
            route("fe80::5/128", 5),
        ],
    }
}

#[test]
fn an_interface_knows_its_mac_its_up_vlans_and_the_namespaces_addresses() {
    let id = view().identity("eth0").unwrap();
    assert_eq!(id.mac, [2, 0, 0, 0, 0, 2]);
    let q100 = host::vlan_key(0, false, 100);
    let ad7 = host::vlan_key(q100, true, 7);
    assert_eq!(
        id.vlans.into_iter().collect::<Vec<_>>(),
        vec![(q100, [2, 0, 0, 0, 0, 3]), (ad7, [2, 0, 0, 0, 0, 4])],
        "eth0.300 is down, eth1.100 is another interface's"
    );
    // The weak host model: eth1's address and the AnyIP range on lo are
    // local on eth0 too; loopback is not, nor eth1's link-local.
    let v4: Vec<String> = id.local_v4.iter().map(|n| n.to_string()).collect();
    assert_eq!(v4, ["198.18.0.2/32", "198.18.9.2/32", "198.18.64.0/24"]);
    let v6: Vec<String> = id.local_v6.iter().map(|n| n.to_string()).collect();
    assert_eq!(v6, ["2001:2::2/128", "fe80::2/128", "fe80::3/128"]);
}

#[test]
fn loopback_keeps_its_loopback_destinations() {
    let id = view().identity("lo").unwrap();
    assert!(id.local_v4.contains(&"127.0.0.0/8".parse().unwrap()));
    assert!(id.local_v6.contains(&"::1/128".parse().unwrap()));
    assert!(view().identity("eth9").is_none());
}

#[test]
fn host_addresses_go_inline_and_the_rest_to_the_tries() {
    let id = view().identity("eth0").unwrap();
    let entry = host_self(&id);
    assert_eq!(entry.mac, [2, 0, 0, 0, 0, 2]);
    // Two /32s inline; the AnyIP /24 only in the trie.
    assert_eq!(entry.n_v4, 2);
    let inline = entry.v4[..2].iter().map(|w| w.to_le_bytes());
    assert_eq!(
        inline.collect::<Vec<_>>(),
        [[198, 18, 0, 2], [198, 18, 9, 2]]
    );
    assert_eq!(entry.more_v4, 1);
    // Three /128s: two inline, one left to the trie.
    assert_eq!((entry.n_v6, entry.more_v6), (2, 1));
    let few = Identity {
        local_v4: ["198.18.0.2/32".parse().unwrap()].into(),
        ..Identity::default()
    };
    let entry = host_self(&few);
    assert_eq!(
        (entry.n_v4, entry.more_v4, entry.n_v6, entry.more_v6),
        (1, 0, 0, 0)
    );
}

#[test]
fn vlan_chains_are_named_as_ip_names_them() {
    let q100 = host::vlan_key(0, false, 100);
    assert_eq!(vlan_name(q100), "100");
    assert_eq!(vlan_name(host::vlan_key(q100, true, 7)), "100.ad 7");
    // A priority tag is no tag.
    assert_eq!(host::vlan_key(q100, false, 0), q100);
}
