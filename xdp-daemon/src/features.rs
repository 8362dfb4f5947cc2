//! What the running kernel offers the XDP program, found by probing: a
//! trial load of a two-instruction XDP program that calls one helper, as
//! libbpf and bpftool probe (`aya::sys::is_helper_supported`). Never by
//! comparing version numbers: distribution kernels backport BPF (RHEL 9's
//! 5.14 carries helpers of 6.x), and a kernel may lack what its version
//! promises.
use aya::{
    programs::{ProgramError, ProgramType},
    sys::{BpfHelper, is_helper_supported},
};

/// A BPF helper the XDP program calls, and the first Linux release that has
/// it (its commit's first tag).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Helper {
    pub name: &'static str,
    pub id: BpfHelper,
    /// The first mainline release with the helper.
    pub since: (u8, u8),
}

const fn helper(name: &'static str, id: BpfHelper, since: (u8, u8)) -> Helper {
    Helper { name, id, since }
}

/// Every helper the XDP program calls that is newer than XDP itself (4.8),
/// oldest first; a test checks the embedded object against this list.
pub const HELPERS: &[Helper] = &[
    helper(
        "bpf_xdp_adjust_tail",
        BpfHelper::BPF_FUNC_xdp_adjust_tail,
        (4, 18),
    ),
    helper("bpf_sk_release", BpfHelper::BPF_FUNC_sk_release, (4, 20)),
    helper(
        "bpf_skc_lookup_tcp",
        BpfHelper::BPF_FUNC_skc_lookup_tcp,
        (5, 2),
    ),
    helper(
        "bpf_tcp_check_syncookie",
        BpfHelper::BPF_FUNC_tcp_check_syncookie,
        (5, 2),
    ),
    helper(
        "bpf_tcp_gen_syncookie",
        BpfHelper::BPF_FUNC_tcp_gen_syncookie,
        (5, 3),
    ),
    helper(
        "bpf_ktime_get_coarse_ns",
        BpfHelper::BPF_FUNC_ktime_get_coarse_ns,
        (5, 11),
    ),
    helper("bpf_loop", BpfHelper::BPF_FUNC_loop, (5, 17)),
    // The capture's ring (BPF_MAP_TYPE_RINGBUF, 5.8).
    helper(
        "bpf_ringbuf_reserve",
        BpfHelper::BPF_FUNC_ringbuf_reserve,
        (5, 8),
    ),
    helper(
        "bpf_ringbuf_submit",
        BpfHelper::BPF_FUNC_ringbuf_submit,
        (5, 8),
    ),
    helper(
        "bpf_ringbuf_discard",
        BpfHelper::BPF_FUNC_ringbuf_discard,
        (5, 8),
    ),
    helper(
        "bpf_xdp_load_bytes",
        BpfHelper::BPF_FUNC_xdp_load_bytes,
        (5, 18),
    ),
    helper(
        "bpf_xdp_store_bytes",
        BpfHelper::BPF_FUNC_xdp_store_bytes,
        (5, 18),
    ),
    helper(
        "bpf_xdp_get_buff_len",
        BpfHelper::BPF_FUNC_xdp_get_buff_len,
        (5, 18),
    ),
    helper(
        "bpf_map_lookup_percpu_elem",
        BpfHelper::BPF_FUNC_map_lookup_percpu_elem,
        (5, 19),
    ),
    helper(
        "bpf_tcp_raw_gen_syncookie_ipv4",
        BpfHelper::BPF_FUNC_tcp_raw_gen_syncookie_ipv4,
        (6, 0),
    ),
    helper(
        "bpf_tcp_raw_gen_syncookie_ipv6",
        BpfHelper::BPF_FUNC_tcp_raw_gen_syncookie_ipv6,
        (6, 0),
    ),
    helper(
        "bpf_tcp_raw_check_syncookie_ipv4",
        BpfHelper::BPF_FUNC_tcp_raw_check_syncookie_ipv4,
        (6, 0),
    ),
    helper(
        "bpf_tcp_raw_check_syncookie_ipv6",
        BpfHelper::BPF_FUNC_tcp_raw_check_syncookie_ipv6,
        (6, 0),
    ),
];

/// The helpers of [`HELPERS`] this kernel refuses to XDP programs.
pub fn missing_helpers() -> Result<Vec<Helper>, ProgramError> {
    let mut missing = Vec::new();
    for &helper in HELPERS {
        if !is_helper_supported(ProgramType::Xdp, helper.id)? {
            missing.push(helper);
        }
    }
    Ok(missing)
}

/// One line: the first release with every missing helper, then the
/// helpers by release, e.g. "synguard's XDP program needs Linux 6.0 or
/// later (or these BPF helpers backported); this kernel lacks bpf_loop
/// (Linux 5.17); bpf_tcp_raw_gen_syncookie_ipv4 (Linux 6.0)".
pub fn describe_missing(missing: &[Helper]) -> String {
    let Some(needed) = missing.iter().map(|h| h.since).max() else {
        return "this kernel has every BPF helper synguard's XDP program calls".into();
    };
    let mut releases: Vec<(u8, u8)> = missing.iter().map(|h| h.since).collect();
    releases.sort();
    releases.dedup();
    let groups: Vec<String> = releases
        .iter()
        .map(|&since| {
            let names: Vec<&str> = missing
                .iter()
                .filter(|h| h.since == since)
                .map(|h| h.name)
                .collect();
            format!("{} (Linux {}.{})", names.join(", "), since.0, since.1)
        })
        .collect();
    format!(
        "synguard's XDP program needs Linux {}.{} or later (or these BPF helpers backported); \
         this kernel lacks {}",
        needed.0,
        needed.1,
        groups.join("; ")
    )
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn the_line_names_the_release_needed_and_each_missing_helper() {
        let named = |name: &str| *HELPERS.iter().find(|h| h.name == name).expect(name);
        let missing = [
            named("bpf_xdp_load_bytes"),
            named("bpf_xdp_store_bytes"),
            named("bpf_loop"),
            named("bpf_tcp_raw_gen_syncookie_ipv4"),
        ];
        assert_eq!(
            describe_missing(&missing),
            "synguard's XDP program needs Linux 6.0 or later (or these BPF helpers \
             backported); this kernel lacks bpf_loop (Linux 5.17); bpf_xdp_load_bytes, \
             bpf_xdp_store_bytes (Linux 5.18); bpf_tcp_raw_gen_syncookie_ipv4 (Linux 6.0)"
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
        assert!(called.contains(&(BpfHelper::BPF_FUNC_loop as i32)));
    }
}
