//! Drops per blocklist entry (docs/design.md#drops-per-blocklist-entry),
//! through the real program with BPF_PROG_TEST_RUN: each blocked frame is
//! counted once, against the entry that matched (the longest prefix),
//! whether the IPv4 index or the tries answered, and for IPv6; a slot
//! given again starts from zero; an entry without a slot (not the
//! fleet's) is not counted, nor counted against a wider entry. Frames
//! come only from 198.18.0.0/15 and 2001:2::/48 and are sent nowhere.
mod common;

use std::net::IpAddr;

use common::Harness;
use ipnet::IpNet;
use synguard::lists::{List, ListMaps, slots::NO_SLOT};
use synguard_common::{Counter, FloodMode, IfaceSettings, Reason, list_in_use};
use synguard_tests::packets::Segment;

fn harness() -> Harness {
    let mut harness = Harness::new();
    harness.set_config(IfaceSettings {
        flood_mode: FloodMode::Off as u32,
        ..IfaceSettings::default()
    });
    harness
}

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

/// A SYN from `src` to the lab's target of its family.
fn syn_from(src: &str) -> Vec<u8> {
    let src: IpAddr = src.parse().unwrap();
    let dst: IpAddr = if src.is_ipv4() {
        "198.18.0.2".parse().unwrap()
    } else {
        "2001:2::2".parse().unwrap()
    };
    Segment::syn(src, dst, 40000, 80).frame()
}

/// Adds `entry` to the blocklist with a counter slot, as the fleet's
/// entries are.
fn add_counted(lists: &mut ListMaps, entry: &str, expires: u64) {
    for result in lists.add_many_counted(List::Block, &[(net(entry), expires)]) {
        result.unwrap();
    }
}

/// The counter slot of each blocklist entry.
fn slot(lists: &ListMaps, entry: &str) -> u32 {
    lists.values(List::Block).unwrap()[&net(entry)].slot
}

/// What the entry in `slot` dropped.
fn dropped(lists: &ListMaps, slot: u32) -> Counter {
    lists.entry_drops()[0].get(slot).unwrap()
}

/// Runs `frame` `n` times; each must be dropped as blocklisted.
fn drop_n(harness: &mut Harness, frame: &[u8], n: u64) {
    for _ in 0..n {
        let problems = harness.check("blocked", frame, Reason::Blocklist);
        assert!(problems.is_empty(), "{problems:?}");
    }
}

#[test]
fn each_drop_is_counted_against_the_longest_prefix_that_matched() {
    let mut harness = harness();
    let mut lists = harness.lists();
    for entry in [
        "198.18.0.0/16",
        "198.18.7.0/24",
        "198.18.7.9/32",
        "2001:2::/48",
        "2001:2:0:7::/64",
    ] {
        add_counted(&mut lists, entry, 0);
    }
    let wide = slot(&lists, "198.18.0.0/16");
    let mid = slot(&lists, "198.18.7.0/24");
    let host = slot(&lists, "198.18.7.9/32");
    let wide6 = slot(&lists, "2001:2::/48");
    let narrow6 = slot(&lists, "2001:2:0:7::/64");
    let slots = [wide, mid, host, wide6, narrow6];
    assert!(
        slots.iter().all(|&s| s != NO_SLOT),
        "every entry gets a slot of its own: {slots:?}"
    );
    let mut unique = slots.to_vec();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), slots.len(), "slots given twice: {slots:?}");

    // With the IPv4 index live, then with the tries alone (as while a
    // list changes): the same attribution.
    let live = harness.list_slot(list_in_use::INDEX_V4);
    assert_ne!(live, 0);
    let (a, b, c) = (
        syn_from("198.18.200.1"),
        syn_from("198.18.7.1"),
        syn_from("198.18.7.9"),
    );
    for index in [live, 0] {
        harness.set_list_slot("INDEX_V4", index);
        drop_n(&mut harness, &a, 2);
        drop_n(&mut harness, &b, 3);
        drop_n(&mut harness, &c, 5);
    }
    harness.set_list_slot("INDEX_V4", live);
    drop_n(&mut harness, &syn_from("2001:2:0:1::1"), 7);
    drop_n(&mut harness, &syn_from("2001:2:0:7::1"), 11);

    let got: Vec<u64> = slots.iter().map(|&s| dropped(&lists, s).packets).collect();
    assert_eq!(
        got,
        [4, 6, 10, 7, 11],
        "packets per entry: /16, /24, /32, /48, /64"
    );
    assert_eq!(
        dropped(&lists, mid).bytes,
        6 * b.len() as u64,
        "bytes are whole frames"
    );
    assert_eq!(dropped(&lists, NO_SLOT).packets, 0);
    // And the per-reason counter agrees with the sum.
    assert_eq!(
        harness.counters().get(Reason::Blocklist).packets,
        got.iter().sum::<u64>()
    );
}

#[test]
fn a_slot_given_again_starts_from_zero() {
    let mut harness = harness();
    let mut lists = harness.lists();
    add_counted(&mut lists, "198.18.9.0/24", 0);
    add_counted(&mut lists, "198.18.10.0/24", 0);
    let first = slot(&lists, "198.18.9.0/24");
    drop_n(&mut harness, &syn_from("198.18.9.1"), 3);
    assert_eq!(dropped(&lists, first).packets, 3);

    // Gone (unblocked, expired or withdrawn: the same delete), its slot
    // is free, and the next new entry gets it, at zero.
    assert!(lists.remove(List::Block, net("198.18.9.0/24")).unwrap());
    add_counted(&mut lists, "198.18.11.0/24", 0);
    assert_eq!(slot(&lists, "198.18.11.0/24"), first, "the freed slot");
    assert_eq!(dropped(&lists, first), Counter::default());
    drop_n(&mut harness, &syn_from("198.18.11.1"), 2);
    assert_eq!(dropped(&lists, first).packets, 2);

    // Updating an entry's expiry keeps its slot and its count, whether
    // or not it is added as counted again.
    lists
        .add(List::Block, net("198.18.11.0/24"), u64::MAX)
        .unwrap();
    assert_eq!(slot(&lists, "198.18.11.0/24"), first);
    add_counted(&mut lists, "198.18.11.0/24", 0);
    assert_eq!(slot(&lists, "198.18.11.0/24"), first);
    assert_eq!(dropped(&lists, first).packets, 2);
}

#[test]
fn an_entry_without_a_slot_is_not_counted_nor_counted_against_a_wider_one() {
    let mut harness = harness();
    let mut lists = harness.lists();
    add_counted(&mut lists, "198.18.0.0/16", 0);
    // An operator's entry, and the config's: not the fleet's.
    lists.add(List::Block, net("198.18.12.0/24"), 0).unwrap();
    lists
        .sync(List::Block, &[net("198.19.1.0/24")], &[])
        .unwrap();
    assert_eq!(slot(&lists, "198.18.12.0/24"), NO_SLOT);
    assert_eq!(slot(&lists, "198.19.1.0/24"), NO_SLOT);
    let wide = slot(&lists, "198.18.0.0/16");
    let live = harness.list_slot(list_in_use::INDEX_V4);
    for index in [live, 0] {
        harness.set_list_slot("INDEX_V4", index);
        drop_n(&mut harness, &syn_from("198.18.12.1"), 3);
        drop_n(&mut harness, &syn_from("198.18.13.1"), 2);
        drop_n(&mut harness, &syn_from("198.19.1.1"), 1);
    }
    harness.set_list_slot("INDEX_V4", live);
    // The /24 inside is the longest match for 198.18.12.1: its drops
    // are its own (uncounted), not the /16's.
    assert_eq!(dropped(&lists, wide).packets, 4);
    assert_eq!(dropped(&lists, NO_SLOT), Counter::default());
    assert_eq!(harness.counters().get(Reason::Blocklist).packets, 12);
}
