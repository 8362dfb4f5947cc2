//! The IPv4 list index against the tries it is built from, through the
//! real program: every IPv4 source must get from the index the verdict the
//! tries give (allowlist, then blocklist, then martian list, for a SYN),
//! and where the index ran out of groups, the tries must answer.
//!
//! The entries are random (prefixes of every length, overlapping, in all
//! three lists); each run draws a seed from the clock and prints it, and
//! `SYNGUARD_SEED=<n>` replays it. Probe frames come only from
//! 198.18.0.0/15 and run through BPF_PROG_TEST_RUN, as if received on a
//! veth of the test's own namespace: no frame is sent anywhere.
mod common;

use std::net::{IpAddr, Ipv4Addr};

use common::Harness;
use ipnet::{IpNet, Ipv4Net};
use synguard::lists::List;
use synguard_common::{FloodMode, IfaceSettings, Reason, list_in_use};
use synguard_tests::{
    lab::if_index,
    netns::{Netns, unique_prefix},
    packets::{Rng, Segment},
};

const TARGET: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);

/// The verdict by the lists' definition, for a SYN in normal mode.
fn expected(entries: &[(Ipv4Net, List)], addr: Ipv4Addr) -> Reason {
    let on = |list| entries.iter().any(|&(n, l)| l == list && n.contains(&addr));
    if on(List::Allow) {
        Reason::Allowlist
    } else if on(List::Block) {
        Reason::Blocklist
    } else if on(List::Martian) {
        Reason::Martian
    } else {
        Reason::Syn
    }
}

fn seed() -> u64 {
    std::env::var("SYNGUARD_SEED")
        .ok()
        .and_then(|s| {
            let s = s.trim_start_matches("0x");
            u64::from_str_radix(s, 16).ok()
        })
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        })
}

/// A harness in normal mode and an interface to run frames on.
fn setup() -> (Harness, Netns, u32) {
    let mut harness = Harness::new();
    harness.set_config(IfaceSettings {
        flood_mode: FloodMode::Off as u32,
        ..IfaceSettings::default()
    });
    let ns = Netns::create(&format!("{}-idx", unique_prefix())).expect("netns");
    ns.ip(&["link", "add", "sg0", "type", "veth", "peer", "name", "sg1"])
        .unwrap();
    ns.ip(&["link", "set", "sg0", "up"]).unwrap();
    let ifindex = ns.run(|| if_index("sg0"));
    (harness, ns, ifindex)
}

fn add(harness: &Harness, entries: &[(Ipv4Net, List)]) {
    let mut lists = harness.lists();
    for list in [List::Allow, List::Block, List::Martian] {
        let nets: Vec<(IpNet, u64)> = entries
            .iter()
            .filter(|&&(_, l)| l == list)
            .map(|&(n, _)| (IpNet::V4(n), 0))
            .collect();
        for result in lists.add_many(list, &nets) {
            result.expect("add");
        }
    }
}

/// Runs a SYN from each probe, with the index live and then with the
/// tries alone, and checks both against the definition.
fn check(
    harness: &mut Harness,
    ns: &Netns,
    ifindex: u32,
    entries: &[(Ipv4Net, List)],
    probes: &[Ipv4Addr],
    seed: u64,
) {
    let live = harness.list_slot(list_in_use::INDEX_V4);
    assert_ne!(live, 0, "the lists code left no index live");
    for (index_live, label) in [(live, "index"), (0, "tries")] {
        harness.set_list_slot("INDEX_V4", index_live);
        let mut wrong = Vec::new();
        for &addr in probes {
            let frame = Segment::syn(IpAddr::V4(addr), IpAddr::V4(TARGET), 1234, 80).frame();
            let got = ns.run(|| harness.reason_on(ifindex, &frame));
            let want = expected(entries, addr);
            if got != want {
                wrong.push(format!("{addr}: {got:?}, want {want:?}"));
            }
        }
        assert!(
            wrong.is_empty(),
            "{label} (seed {seed:#x}): {} of {} probes wrong, e.g. {:?}",
            wrong.len(),
            probes.len(),
            &wrong[..wrong.len().min(10)]
        );
    }
    harness.set_list_slot("INDEX_V4", live);
}

#[test]
fn the_index_gives_every_source_the_verdict_the_tries_give() {
    let seed = seed();
    println!("seed {seed:#x} (replay: SYNGUARD_SEED={seed:#x})");
    let mut rng = Rng::new(seed);
    let (mut harness, ns, ifindex) = setup();
    // Prefixes of every length around 198.18.0.0/15, so that they nest
    // and overlap: shorter ones cover all of it, longer ones carve /16s,
    // /24s and hosts.
    let lists = [List::Allow, List::Block, List::Martian];
    let mut entries: Vec<(Ipv4Net, List)> = (0..80)
        .map(|_| {
            let r = rng.next_u64();
            let addr = Ipv4Addr::from(0xc612_0000 | (r as u32 & 0x0001_ffff));
            let len = match (r >> 32) % 8 {
                0 => 8 + (r >> 40) as u8 % 8,
                1 | 2 => 16 + (r >> 40) as u8 % 9,
                _ => 24 + (r >> 40) as u8 % 9,
            };
            let list = lists[((r >> 48) % 3) as usize];
            (Ipv4Net::new(addr, len).unwrap().trunc(), list)
        })
        .collect();
    entries.sort_by_key(|&(n, l)| (n, l.name()));
    entries.dedup();
    add(&harness, &entries);

    // Random sources of 198.18.0.0/15, and every entry's edges and their
    // neighbours (inside the /15).
    let mut probes: Vec<Ipv4Addr> = (0..1500)
        .map(|_| Ipv4Addr::from(0xc612_0000 | (rng.next_u64() as u32 & 0x0001_ffff)))
        .collect();
    for (net, _) in &entries {
        let (first, last) = (u32::from(net.network()), u32::from(net.broadcast()));
        for a in [first.wrapping_sub(1), first, last, last.wrapping_add(1)] {
            if a >> 17 == 0xc612 >> 1 {
                probes.push(Ipv4Addr::from(a));
            }
        }
    }
    check(&mut harness, &ns, ifindex, &entries, &probes, seed);

    // A change rebuilds it: remove half the entries and check again.
    let mut maps = harness.lists();
    let (gone, kept): (Vec<_>, Vec<_>) = entries.iter().enumerate().partition(|(i, _)| i % 2 == 0);
    for (_, &(net, list)) in gone {
        assert!(maps.remove(list, IpNet::V4(net)).unwrap());
    }
    let kept: Vec<(Ipv4Net, List)> = kept.into_iter().map(|(_, e)| *e).collect();
    check(&mut harness, &ns, ifindex, &kept, &probes, seed);
}

#[test]
fn a_full_index_leaves_the_rest_to_the_tries_and_stays_exact() {
    let (mut harness, ns, ifindex) = setup();
    // More /16s holding a host entry than a copy has groups for, all
    // below 198.18.0.0/15 in address order, so the /15's own entries are
    // the ones left without a group. Entries only: no frame comes from
    // these addresses.
    let groups = synguard_common::index::NET_GROUPS;
    let mut entries: Vec<(Ipv4Net, List)> = (0..groups + 16)
        .map(|i| {
            let addr = Ipv4Addr::from(0x0b00_0000 + (i << 16) + 7);
            (Ipv4Net::new(addr, 32).unwrap(), List::Block)
        })
        .collect();
    let near: Vec<(Ipv4Net, List)> = [
        ("198.18.0.0/16", List::Martian),
        ("198.18.0.66/32", List::Block),
        ("198.18.0.128/25", List::Allow),
        ("198.19.4.0/24", List::Block),
        ("198.19.4.9/32", List::Allow),
    ]
    .iter()
    .map(|&(n, l)| (n.parse().unwrap(), l))
    .collect();
    entries.extend(&near);
    add(&harness, &entries);
    let stats = harness.lists().index_stats().unwrap();
    assert_eq!(stats.nets, groups as usize, "{stats:?}");
    assert!(
        stats.fallbacks >= 2,
        "198.18/16 and 198.19/16 left to the tries: {stats:?}"
    );

    let probes: Vec<Ipv4Addr> = [
        "198.18.0.1",
        "198.18.0.66",
        "198.18.0.127",
        "198.18.0.128",
        "198.18.0.255",
        "198.18.1.0",
        "198.19.4.8",
        "198.19.4.9",
        "198.19.4.10",
        "198.19.5.1",
    ]
    .iter()
    .map(|a| a.parse().unwrap())
    .collect();
    check(&mut harness, &ns, ifindex, &entries, &probes, 0);
}
