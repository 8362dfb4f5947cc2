//! The kinds of map the XDP program's maps are (type and flags, read from
//! the embedded object), named, dated and probed.
use std::collections::BTreeMap;

use super::{Feature, probe};

/// A kind of map: its type and flags, as the object declares them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct MapKind {
    pub(super) map_type: u32,
    pub(super) flags: u32,
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
    pub(super) fn name(self) -> String {
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
    pub(super) fn since(self) -> (u8, u8) {
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
pub(super) fn maps() -> Vec<Feature> {
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
