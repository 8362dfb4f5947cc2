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
        let (set, tag, bit) = sources::place(&words_of(&addr(last)), false, 7);
        assert!(set < sources::SETS && tag & 1 == 1);
        assert!(bit != 0 && bit < 1 << sources::BITS);
        bits |= bit;
        used[(set % 64) as usize] += 1;
        let (set, tag) = budget::place(&words_of(&addr(last)), 24, 7);
        assert!(set < budget::SETS && tag & 1 == 1);
    }
    assert!(used.iter().all(|&n| n < 16), "256 hosts bunch up: {used:?}");
    assert!(bits.count_ones() > 48, "peer bits bunch up: {bits:#x}");
    // The seed moves them; IPv4 and IPv6 addresses are apart.
    let one = words_of(&addr(1));
    assert_ne!(
        sources::place(&one, false, 7),
        sources::place(&one, false, 8)
    );
    assert_ne!(
        sources::place(&one, false, 7),
        sources::place(&one, true, 7)
    );
}

#[test]
fn addresses_hash_as_their_bytes_read_little_endian() {
    // The data path reads an address as words; userspace (tests, the
    // daemon) has its bytes. Both must find the same slots: the hash is
    // that of the bytes 0-7 and 8-15 read little-endian, as before the
    // data path held words.
    let bytes: [u8; 16] = core::array::from_fn(|i| 0x20 + i as u8 * 7);
    let words = words_of(&bytes);
    assert_eq!(bytes_of(&words), bytes);
    assert_eq!(words[0], u32::from_le_bytes([0x20, 0x27, 0x2e, 0x35]));
    let low = u64::from_le_bytes(bytes[..8].try_into().unwrap());
    let high = u64::from_le_bytes(bytes[8..].try_into().unwrap());
    let seed = 0x0123_4567_89ab_cdef;
    let by_bytes = mix(mix(seed ^ 24u64.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ low) ^ high);
    assert_eq!(hash_address(&words, 24, seed), by_bytes);
    // Pinned, so that a change of the hash is a decision.
    assert_eq!(by_bytes, 0x2bfa_38e7_debf_3b2f);
}

#[test]
fn flows_of_one_destination_differ_by_source_and_ports() {
    let dst = words_of(&[198, 18, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    let src = |last: u8| words_of(&[198, 18, 0, last, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    let a = flows::place(&src(1), &dst, 0x5000_1234, false, 7);
    assert_ne!(a, flows::place(&src(1), &dst, 0x5000_1235, false, 7));
    assert_ne!(a, flows::place(&src(3), &dst, 0x5000_1234, false, 7));
    assert_ne!(a, flows::place(&src(1), &dst, 0x5000_1234, false, 8));
    assert_ne!(a, flows::place(&src(1), &dst, 0x5000_1234, true, 7));
    assert!(a.0 < flows::SLOTS && a.1 & 1 == 1);
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
