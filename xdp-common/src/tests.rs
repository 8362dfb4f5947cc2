use super::*;

#[test]
fn reasons_index_the_counter_array_in_order() {
    for (i, reason) in Reason::ALL.iter().enumerate() {
        assert_eq!(
            *reason as usize, i,
            "{reason:?} is out of place in Reason::ALL"
        );
    }
}

#[test]
fn shared_types_have_no_implicit_padding() {
    use core::mem::size_of;
    assert_eq!(
        size_of::<IfaceSettings>(),
        4 * 4 + 2 * 2 + 4 + 4 * 8 + 8 + 8192 + 8
    );
    assert_eq!(size_of::<FloodState>(), 5 * 8 + 2 * 4);
    assert_eq!(size_of::<SourceKey>(), 4 + 16);
    assert_eq!(size_of::<BudgetSlot>(), 24);
    assert_eq!(size_of::<BudgetSet>(), 64);
    assert_eq!(size_of::<SourceSet>(), 64);
    assert_eq!(size_of::<ListenerSlot>(), 32);
    assert_eq!(size_of::<HostLink>(), 8);
    assert_eq!(size_of::<HostSelf>(), 64);
    assert_eq!(size_of::<CaptureSettings>(), 24);
    assert_eq!(size_of::<ListValue>(), 16);
    assert_eq!(size_of::<CaptureRecord>(), 24 + capture::SNAP_LEN);
}

#[test]
fn budget_and_source_places_spread() {
    let addr = |last: u8| {
        let mut addr = [0; 16];
        addr[..4].copy_from_slice(&[198, 18, 7, last]);
        addr
    };
    let mut used = [0u32; 64];
    let mut bits = 0u64;
    for last in 0..=255u8 {
        let (set, tag, bit) = sources::place(&addr(last), false, 7);
        assert!(set < sources::SETS && tag & 1 == 1);
        assert!(bit != 0 && bit < 1 << sources::BITS);
        bits |= bit;
        used[(set % 64) as usize] += 1;
        let key = SourceKey {
            prefix_len: 24,
            addr: addr(last),
        };
        let (set, tag) = budget::place(&key, 7);
        assert!(set < budget::SETS && tag & 1 == 1);
    }
    assert!(used.iter().all(|&n| n < 16), "256 hosts bunch up: {used:?}");
    assert!(bits.count_ones() > 48, "peer bits bunch up: {bits:#x}");
    // The seed moves them; IPv4 and IPv6 addresses are apart.
    assert_ne!(
        sources::place(&addr(1), false, 7),
        sources::place(&addr(1), false, 8)
    );
    assert_ne!(
        sources::place(&addr(1), false, 7),
        sources::place(&addr(1), true, 7)
    );
}

#[test]
fn port_sets_hold_every_port() {
    let mut set = PortSet::default();
    for port in [0, 1, 63, 64, 443, 65535] {
        assert!(!set.contains(port));
        set.insert(port);
        assert!(set.contains(port));
    }
    assert!(!set.contains(80));
}

#[test]
fn each_verdict_and_reason_label_pair_is_unique() {
    for (i, a) in Reason::ALL.iter().enumerate() {
        for b in &Reason::ALL[i + 1..] {
            assert!(
                (a.verdict(), a.name()) != (b.verdict(), b.name()),
                "{a:?} and {b:?} would share metric labels"
            );
        }
    }
}
