//! What the running kernel offers the XDP program, found by probing: a
//! trial load of a two-instruction XDP program that calls one helper, as
//! libbpf and bpftool probe (`aya::sys::is_helper_supported`). Never by
//! comparing version numbers: distribution kernels backport BPF (RHEL 9's
//! 5.14 carries helpers of 6.x), and a kernel may lack what its version
//! promises.
use std::collections::BTreeMap;

use aya::{
    programs::{ProgramError, ProgramType},
    sys::{BpfHelper, is_helper_supported},
};

mod probe;

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
/// oldest first; a test checks the embedded object against this list, both
/// ways.
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

/// One thing the program needs of the kernel, as probed.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Feature {
    /// A name that says what was probed: the helper's (`bpf_loop`), a map
    /// kind (`map_lpm_trie_no_prealloc`), `xdp_frags`, `xdp_link`. The
    /// metric `synguard_kernel_feature` has it as its label.
    pub name: String,
    /// The first mainline release with it, e.g. "5.17".
    pub since: String,
    /// Found by probing; null when the kernel would not say (probing
    /// needs CAP_BPF, or root).
    pub present: Option<bool>,
}

impl Feature {
    fn new(name: impl Into<String>, since: (u8, u8), present: Option<bool>) -> Self {
        Feature {
            name: name.into(),
            since: format!("{}.{}", since.0, since.1),
            present,
        }
    }

    /// (major, minor) of `since`.
    fn release(&self) -> (u8, u8) {
        let mut parts = self.since.split('.').map(|p| p.parse().unwrap_or(0));
        (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
    }
}

/// Every helper of [`HELPERS`], probed.
fn helpers() -> Vec<Feature> {
    HELPERS
        .iter()
        .map(|h| {
            let present = match is_helper_supported(ProgramType::Xdp, h.id) {
                Ok(yes) => Some(yes),
                Err(ProgramError::SyscallError(e))
                    if e.io_error.raw_os_error() == Some(libc::EPERM) =>
                {
                    None
                }
                Err(_) => Some(false),
            };
            Feature::new(h.name, h.since, present)
        })
        .collect()
}

/// A kind of map: its type and flags, as the object declares them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct MapKind {
    map_type: u32,
    flags: u32,
}

/// Map types by number (include/uapi/linux/bpf.h `enum bpf_map_type`):
/// the name and the first release, for those the program could use.
const MAP_TYPES: &[(u32, &str, (u8, u8))] = &[
    (1, "hash", (3, 19)),
    (2, "array", (3, 19)),
    (3, "prog_array", (4, 2)),
    (5, "percpu_hash", (4, 6)),
    (6, "percpu_array", (4, 6)),
    (9, "lru_hash", (4, 10)),
    (10, "lru_percpu_hash", (4, 10)),
    (11, "lpm_trie", (4, 11)),
    (27, "ringbuf", (5, 8)),
];

/// Map flags by bit: the name and the first release that accepts it.
const MAP_FLAGS: &[(u32, &str, (u8, u8))] = &[
    // BPF_F_NO_PREALLOC, for hash maps 4.6; LPM tries require it.
    (1 << 0, "no_prealloc", (4, 6)),
    // BPF_F_MMAPABLE (arrays): commit fc9702273e2e.
    (1 << 10, "mmapable", (5, 5)),
];

impl MapKind {
    fn name(self) -> String {
        let mut name = match MAP_TYPES.iter().find(|t| t.0 == self.map_type) {
            Some((_, n, _)) => format!("map_{n}"),
            None => format!("map_type_{}", self.map_type),
        };
        for bit in (0..32).map(|b| 1u32 << b).filter(|b| self.flags & b != 0) {
            match MAP_FLAGS.iter().find(|f| f.0 == bit) {
                Some((_, n, _)) => name.push_str(&format!("_{n}")),
                None => name.push_str(&format!("_flag_{bit:#x}")),
            }
        }
        name
    }

    /// The first release with both the type and every flag.
    fn since(self) -> (u8, u8) {
        let of_type = MAP_TYPES
            .iter()
            .find(|t| t.0 == self.map_type)
            .map_or((0, 0), |t| t.2);
        MAP_FLAGS
            .iter()
            .filter(|f| self.flags & f.0 != 0)
            .map(|f| f.2)
            .fold(of_type, Ord::max)
    }
}

/// A map of each kind the embedded object's maps are, probed with that
/// map's key and value sizes. Read from the object, so a map added to the
/// program is probed without touching this list.
fn maps() -> Vec<Feature> {
    let Ok(object) = aya_obj::Object::parse(crate::program::OBJECT) else {
        return Vec::new();
    };
    let mut kinds: BTreeMap<MapKind, (u32, u32)> = BTreeMap::new();
    for map in object.maps.values() {
        // The object's data sections (.rodata, .bss) are arrays aya makes
        // of its own; they are not the program's maps.
        if !matches!(
            map.section_kind(),
            aya_obj::EbpfSectionKind::Maps | aya_obj::EbpfSectionKind::BtfMaps
        ) {
            continue;
        }
        kinds
            .entry(MapKind {
                map_type: map.map_type(),
                flags: map.map_flags(),
            })
            .or_insert((map.key_size(), map.value_size()));
    }
    kinds
        .into_iter()
        .map(|(kind, (key, value))| {
            Feature::new(
                kind.name(),
                kind.since(),
                probe::map(kind.map_type, kind.flags, key, value),
            )
        })
        .collect()
}

/// What the running kernel offers synguard, by probing.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Offers {
    /// The helpers, map kinds, `xdp_frags` and `xdp_link`.
    pub features: Vec<Feature>,
    /// The trial load of synguard's own programs: Ok, or the one-line
    /// reason; None without the privilege to try.
    pub program_loads: Option<Result<(), String>>,
    /// net.ipv4.tcp_timestamps now.
    pub tcp_timestamps: Option<i64>,
}

/// How synguard runs on this kernel, because of what it offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Everything: cookies from XDP keep window scaling and SACK.
    Full,
    /// The program runs, but cookies made at XDP carry the MSS only
    /// (tcp_timestamps is not 2).
    Degraded,
    /// The kernel refuses the program, or cannot pin its link.
    Refused,
    /// Not probed (no privilege).
    Unknown,
}

impl Mode {
    /// As the JSON and the metric's label name it.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Full => "full",
            Mode::Degraded => "degraded",
            Mode::Refused => "refused",
            Mode::Unknown => "unknown",
        }
    }
}

impl Offers {
    /// Probes the kernel: each feature, then a trial load of the embedded
    /// programs (maps unpinned, nothing attached), so a kernel is never
    /// called fine that then rejects the program.
    pub fn probe() -> Self {
        let mut features = helpers();
        features.extend(maps());
        features.push(Feature::new("xdp_frags", (5, 18), probe::xdp_frags()));
        features.push(Feature::new("xdp_link", (5, 9), probe::xdp_link()));
        Offers {
            features,
            program_loads: trial_load(),
            tcp_timestamps: crate::sysctl::read("net.ipv4.tcp_timestamps").ok(),
        }
    }

    /// The features probing found missing.
    pub fn missing(&self) -> Vec<&Feature> {
        self.features
            .iter()
            .filter(|f| f.present == Some(false))
            .collect()
    }

    /// The mode, and why in one line.
    pub fn mode(&self) -> (Mode, String) {
        let missing = self.missing();
        match &self.program_loads {
            Some(Err(e)) => return (Mode::Refused, e.clone()),
            // Loaded, but synguard pins a bpf_link to keep it attached.
            Some(Ok(())) if !missing.is_empty() => {
                return (Mode::Refused, describe_missing(&missing));
            }
            Some(Ok(())) => {}
            None => {
                return (
                    Mode::Unknown,
                    "not probed: the trial load needs root or CAP_BPF".into(),
                );
            }
        }
        match self.tcp_timestamps {
            Some(2) => (
                Mode::Full,
                "every feature synguard uses; SYN cookies from XDP keep window scaling and \
                 SACK (net.ipv4.tcp_timestamps=2)"
                    .into(),
            ),
            other => (
                Mode::Degraded,
                format!(
                    "SYN cookies from XDP carry the MSS only: net.ipv4.tcp_timestamps is {}, \
                     not 2 (the daemon sets 2; by hand: sysctl -w net.ipv4.tcp_timestamps=2)",
                    other.map_or("unreadable".into(), |v| v.to_string())
                ),
            ),
        }
    }

    /// One row per feature for the metric `synguard_kernel_feature`:
    /// the probed features, `program_load` and `tcp_timestamps_2`; those
    /// that could not be probed are left out.
    pub fn metric_rows(&self) -> Vec<(String, bool)> {
        let mut rows: Vec<(String, bool)> = self
            .features
            .iter()
            .filter_map(|f| Some((f.name.clone(), f.present?)))
            .collect();
        if let Some(loads) = &self.program_loads {
            rows.push(("program_load".into(), loads.is_ok()));
        }
        if let Some(ts) = self.tcp_timestamps {
            rows.push(("tcp_timestamps_2".into(), ts == 2));
        }
        rows
    }
}

/// Loads the embedded programs with their maps unpinned, and drops them:
/// Some(Err) with the reason in one line if the kernel refuses them, None
/// without the privilege to try.
pub fn trial_load() -> Option<Result<(), String>> {
    match crate::program::load(None, None) {
        Ok(_) => Some(Ok(())),
        Err(e) => {
            // EPERM anywhere in the chain (a map aya could not create, the
            // program load): not allowed to try, which says nothing of
            // the kernel.
            let mut source: Option<&dyn std::error::Error> = Some(&e);
            let mut unprivileged = false;
            while let Some(err) = source {
                unprivileged |= err.to_string().contains("Operation not permitted");
                source = err.source();
            }
            let line = e.to_string();
            (!unprivileged).then(|| Err(line.lines().next().unwrap_or_default().to_string()))
        }
    }
}

/// The features of [`Offers::probe`] but the trial load, that the kernel
/// lacks (what a refused load is explained by).
pub fn missing() -> Vec<Feature> {
    let mut features = helpers();
    features.extend(maps());
    features.push(Feature::new("xdp_frags", (5, 18), probe::xdp_frags()));
    features.retain(|f| f.present == Some(false));
    features
}

/// One line: the first release with every missing feature, then the
/// features by release, e.g. "synguard's XDP program needs Linux 6.0 or
/// later (or these features backported); this kernel lacks bpf_loop
/// (Linux 5.17); bpf_tcp_raw_gen_syncookie_ipv4 (Linux 6.0)".
pub fn describe_missing(missing: &[&Feature]) -> String {
    let Some(needed) = missing.iter().map(|f| f.release()).max() else {
        return "this kernel has every BPF feature synguard's XDP program uses".into();
    };
    let mut releases: Vec<(u8, u8)> = missing.iter().map(|f| f.release()).collect();
    releases.sort();
    releases.dedup();
    let groups: Vec<String> = releases
        .iter()
        .map(|&since| {
            let names: Vec<&str> = missing
                .iter()
                .filter(|f| f.release() == since)
                .map(|f| f.name.as_str())
                .collect();
            format!("{} (Linux {}.{})", names.join(", "), since.0, since.1)
        })
        .collect();
    format!(
        "synguard's XDP program needs Linux {}.{} or later (or these BPF features backported); \
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
}
