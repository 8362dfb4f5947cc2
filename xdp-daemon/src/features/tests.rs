use std::collections::BTreeSet;

use super::{map_kinds::MapKind, *};

fn feature(name: &str, since: (u8, u8), present: Option<bool>) -> Feature {
    Feature::new(name, since, present)
}

#[test]
fn the_line_names_the_release_needed_and_each_missing_feature() {
    let missing = [
        feature("bpf_xdp_load_bytes", (5, 18), Some(false)),
        feature("xdp_frags", (5, 18), Some(false)),
        feature("bpf_loop", (5, 17), Some(false)),
        feature("bpf_tcp_raw_gen_syncookie_ipv4", (6, 0), Some(false)),
    ];
    assert_eq!(
        describe_missing(&missing.iter().collect::<Vec<_>>()),
        "synguard's XDP program needs Linux 6.0 or later (or these BPF features \
         backported); this kernel lacks bpf_loop (Linux 5.17); bpf_xdp_load_bytes, \
         xdp_frags (Linux 5.18); bpf_tcp_raw_gen_syncookie_ipv4 (Linux 6.0)"
    );
}

#[test]
fn map_kinds_are_named_by_type_and_flags_and_dated_by_the_newer() {
    let trie = MapKind {
        map_type: 11,
        flags: 1,
    };
    assert_eq!(trie.name(), "map_lpm_trie_no_prealloc");
    assert_eq!(trie.since(), (4, 11));
    let mmapable = MapKind {
        map_type: 2,
        flags: 1 << 10,
    };
    assert_eq!(mmapable.name(), "map_array_mmapable");
    assert_eq!(mmapable.since(), (5, 5));
    let odd = MapKind {
        map_type: 99,
        flags: 1 << 3,
    };
    assert_eq!(odd.name(), "map_type_99_flag_0x8");
}

fn offers(present: Option<bool>, loads: Option<Result<(), String>>, ts: i64) -> Offers {
    Offers {
        features: vec![
            feature("bpf_loop", (5, 17), Some(true)),
            feature("xdp_link", (5, 9), present),
        ],
        program_loads: loads,
        tcp_timestamps: Some(ts),
    }
}

#[test]
fn the_mode_follows_the_trial_load_then_the_features_then_tcp_timestamps() {
    let (mode, why) = offers(Some(true), Some(Ok(())), 2).mode();
    assert_eq!(mode, Mode::Full, "{why}");
    let (mode, why) = offers(Some(true), Some(Ok(())), 1).mode();
    assert_eq!(mode, Mode::Degraded);
    assert!(why.contains("tcp_timestamps is 1, not 2"), "{why}");
    // A refused load wins, whatever the rest says: status never calls
    // a kernel fine that rejects the program.
    let refused = Some(Err("needs Linux 6.0".to_string()));
    assert_eq!(offers(Some(true), refused, 2).mode().0, Mode::Refused);
    // Loads, but no bpf_link to pin: refused too, naming it.
    let (mode, why) = offers(Some(false), Some(Ok(())), 2).mode();
    assert_eq!(mode, Mode::Refused);
    assert!(why.contains("xdp_link (Linux 5.9)"), "{why}");
    assert_eq!(offers(None, None, 2).mode().0, Mode::Unknown);
}

#[test]
fn metric_rows_leave_out_what_was_not_probed() {
    let rows = offers(None, Some(Ok(())), 1).metric_rows();
    assert_eq!(
        rows,
        [
            ("bpf_loop".to_string(), true),
            ("program_load".to_string(), true),
            ("tcp_timestamps_2".to_string(), false),
        ]
    );
}

#[test]
fn every_map_of_the_object_is_probed_by_its_kind() {
    let names: Vec<String> = maps().into_iter().map(|f| f.name).collect();
    for kind in [
        "map_lpm_trie_no_prealloc",
        "map_percpu_array",
        "map_array_mmapable",
        "map_prog_array",
        "map_lru_hash",
        "map_ringbuf",
    ] {
        assert!(names.iter().any(|n| n == kind), "{kind} not in {names:?}");
    }
    // A kind without a name has no release either: status would call
    // the kernel too old for it.
    assert!(
        names.iter().all(|n| !n.starts_with("map_type_")),
        "a map type missing from MAP_TYPES: {names:?}"
    );
}

#[test]
fn every_helper_the_program_calls_since_xdp_began_is_probed() {
    let object = aya_obj::Object::parse(crate::program::OBJECT).expect("parse the object");
    // BPF_JMP | BPF_CALL with src_reg 0: a helper call (1 and 2 are
    // calls of BPF functions and kfuncs); imm is the helper's number.
    let called: BTreeSet<i32> = object
        .functions
        .values()
        .flat_map(|f| &f.instructions)
        .filter(|insn| insn.code == 0x85 && insn.src_reg() == 0)
        .map(|insn| insn.imm)
        .collect();
    let probed: BTreeSet<i32> = HELPERS.iter().map(|h| h.id as i32).collect();
    // Helpers every XDP kernel has: map lookup/update (1, 2), ktime (5),
    // tail call (12), the CPU number (8), redirect_map (51), a random
    // number (7, for a capture's sample).
    let old = BTreeSet::from([1, 2, 3, 5, 7, 8, 12, 51]);
    let unprobed: Vec<_> = called
        .difference(&probed)
        .filter(|id| !old.contains(id))
        .collect();
    assert!(
        unprobed.is_empty(),
        "the XDP program calls helpers {unprobed:?} that features::HELPERS does not probe"
    );
    // Nor a helper it no longer calls: a kernel would be refused for
    // lacking it.
    let uncalled: Vec<_> = HELPERS
        .iter()
        .filter(|h| !called.contains(&(h.id as i32)))
        .map(|h| h.name)
        .collect();
    assert!(
        uncalled.is_empty(),
        "features::HELPERS probes {uncalled:?}, which the XDP program does not call"
    );
    assert!(called.contains(&(BpfHelper::BPF_FUNC_loop as i32)));
}
