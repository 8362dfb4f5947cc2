//! The IPv4 list index (synguard_common::index): built in memory from the IPv4
//! entries of the three lists, then written into the copy the data path
//! is not using.
use std::collections::BTreeMap;

use ipnet::Ipv4Net;
use synguard_common::{
    HostGroup, IndexChunk,
    index::{CHUNKS, GROUP, HOST_GROUPS, NET_GROUPS, TRIES},
};

/// One copy of the index, as it is to be written: the first-level chunks
/// (one per first octet) and the groups, numbered as the data path will
/// look them up (the copy's first group number already added).
#[derive(Debug)]
pub struct Built {
    pub chunks: Vec<IndexChunk>,
    pub nets: Vec<IndexChunk>,
    pub hosts: Vec<HostGroup>,
    /// Ranges (/16s and /24s) left to the tries for want of groups.
    pub fallbacks: usize,
}

/// Where a copy's groups start in the group maps.
#[derive(Clone, Copy, Debug)]
pub struct Bases {
    pub net: u16,
    pub host: u16,
}

impl Bases {
    pub fn of_copy(copy: u32) -> Bases {
        Bases {
            net: (copy * NET_GROUPS) as u16,
            host: (copy * HOST_GROUPS) as u16,
        }
    }
}

/// The capacity of one copy: how many groups of each level it may use.
#[derive(Clone, Copy, Debug)]
pub struct Capacity {
    pub nets: usize,
    pub hosts: usize,
}

impl Default for Capacity {
    fn default() -> Capacity {
        Capacity {
            nets: NET_GROUPS as usize,
            hosts: HOST_GROUPS as usize,
        }
    }
}

/// Sets `flag` on `to[from..=through]`.
fn mark<T: Copy + std::ops::BitOrAssign>(to: &mut [T], from: usize, through: usize, flag: T) {
    for entry in &mut to[from..=through] {
        *entry |= flag;
    }
}

/// Builds the index of `entries` (each a network and the list flag it
/// carries: `index::ALLOW`, `BLOCK` or `MARTIAN`). A /16 or /24 whose
/// entries are all alike is one entry; the first `capacity` /16s and
/// /24s that need a group get one, in address order, and the rest are
/// marked `TRIES`.
pub fn build(entries: &[(Ipv4Net, u8)], capacity: Capacity, bases: Bases) -> Built {
    // The flags of every /16 from the entries of /16 and shorter, and the
    // longer entries grouped by the /16 they fall in.
    let mut by_16 = vec![0u8; 1 << 16];
    let mut finer: BTreeMap<usize, Vec<(Ipv4Net, u8)>> = BTreeMap::new();
    for &(net, flag) in entries {
        let net = net.trunc();
        let first = u32::from(net.network()) as usize;
        let last = u32::from(net.broadcast()) as usize;
        if net.prefix_len() <= 16 {
            mark(&mut by_16, first >> 16, last >> 16, flag);
        } else {
            finer.entry(first >> 16).or_default().push((net, flag));
        }
    }

    let mut first_level: Vec<u16> = by_16.iter().map(|&f| u16::from(f)).collect();
    let mut nets = Vec::new();
    let mut hosts = Vec::new();
    let mut fallbacks = 0;
    for (&at_16, within) in &finer {
        let base = by_16[at_16];
        let mut by_24 = [base; 256];
        let mut finest: BTreeMap<usize, Vec<(Ipv4Net, u8)>> = BTreeMap::new();
        for &(net, flag) in within {
            let first = u32::from(net.network()) as usize;
            let last = u32::from(net.broadcast()) as usize;
            if net.prefix_len() <= 24 {
                mark(&mut by_24, (first >> 8) & 0xff, (last >> 8) & 0xff, flag);
            } else {
                finest
                    .entry((first >> 8) & 0xff)
                    .or_default()
                    .push((net, flag));
            }
        }
        let mut group = by_24.map(u16::from);
        for (&at_24, within) in &finest {
            let mut by_host = [by_24[at_24]; 256];
            for &(net, flag) in within {
                let first = u32::from(net.network()) as usize & 0xff;
                let last = u32::from(net.broadcast()) as usize & 0xff;
                mark(&mut by_host, first, last, flag);
            }
            if by_host.iter().all(|&f| f == by_host[0]) {
                group[at_24] = u16::from(by_host[0]);
            } else if hosts.len() < capacity.hosts {
                group[at_24] = GROUP | (bases.host + hosts.len() as u16);
                hosts.push(HostGroup(by_host));
            } else {
                group[at_24] = TRIES;
                fallbacks += 1;
            }
        }
        first_level[at_16] = if group.iter().all(|&e| e == group[0]) && group[0] & GROUP == 0 {
            group[0]
        } else if nets.len() < capacity.nets {
            nets.push(IndexChunk(group));
            GROUP | (bases.net + nets.len() as u16 - 1)
        } else {
            // Host groups this /16 took stay unused: the tries answer for
            // the whole /16.
            fallbacks += 1;
            TRIES
        };
    }
    let chunks = first_level
        .chunks_exact(256)
        .map(|c| IndexChunk(c.try_into().expect("256 entries")))
        .collect::<Vec<_>>();
    debug_assert_eq!(chunks.len(), CHUNKS as usize);
    Built {
        chunks,
        nets,
        hosts,
        fallbacks,
    }
}

/// What the built index says of `addr`, as the data path reads it
/// (`None`: ask the tries).
#[cfg(test)]
fn flags_of(built: &Built, bases: Bases, addr: std::net::Ipv4Addr) -> Option<u16> {
    let [a, b, c, d] = addr.octets();
    let entry = built.chunks[a as usize].0[b as usize];
    let entry = if entry & GROUP == 0 {
        entry
    } else {
        built.nets[((entry & !GROUP) - bases.net) as usize].0[c as usize]
    };
    let entry = if entry & GROUP == 0 {
        entry
    } else {
        u16::from(built.hosts[((entry & !GROUP) - bases.host) as usize].0[d as usize])
    };
    (entry & TRIES == 0).then_some(entry)
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use proptest::prelude::*;
    use synguard_common::index::{ALLOW, BLOCK, MARTIAN};

    use super::*;

    const ALLOW8: u8 = ALLOW as u8;
    const BLOCK8: u8 = BLOCK as u8;
    const MARTIAN8: u8 = MARTIAN as u8;

    /// The flags of `addr` by the definition: every list whose entries
    /// contain it.
    fn expected(entries: &[(Ipv4Net, u8)], addr: Ipv4Addr) -> u16 {
        entries
            .iter()
            .filter(|(n, _)| n.contains(&addr))
            .fold(0, |f, (_, flag)| f | u16::from(*flag))
    }

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    #[test]
    fn an_empty_index_lists_nothing_and_uses_no_groups() {
        let bases = Bases::of_copy(1);
        let built = build(&[], Capacity::default(), bases);
        assert!(built.nets.is_empty() && built.hosts.is_empty());
        assert_eq!(
            flags_of(&built, bases, Ipv4Addr::new(198, 18, 0, 1)),
            Some(0)
        );
    }

    #[test]
    fn every_prefix_length_resolves_to_the_lists_that_contain_the_address() {
        let entries = vec![
            (net("0.0.0.0/8"), MARTIAN8),
            (net("224.0.0.0/3"), MARTIAN8),
            (net("198.18.0.0/15"), ALLOW8),
            (net("198.18.7.0/24"), BLOCK8),
            (net("198.18.9.128/25"), BLOCK8),
            (net("198.18.9.200/32"), MARTIAN8),
            (net("10.1.0.0/20"), BLOCK8),
            (net("10.2.3.4/31"), BLOCK8),
        ];
        for bases in [Bases::of_copy(0), Bases::of_copy(1)] {
            let built = build(&entries, Capacity::default(), bases);
            assert_eq!(built.fallbacks, 0);
            for addr in [
                "0.1.2.3",
                "1.0.0.0",
                "224.0.0.1",
                "255.255.255.255",
                "198.18.0.1",
                "198.19.255.255",
                "198.18.7.9",
                "198.18.8.0",
                "198.18.9.127",
                "198.18.9.128",
                "198.18.9.200",
                "198.18.9.255",
                "10.1.15.255",
                "10.1.16.0",
                "10.2.3.3",
                "10.2.3.4",
                "10.2.3.5",
                "10.2.3.6",
            ] {
                let addr: Ipv4Addr = addr.parse().unwrap();
                assert_eq!(
                    flags_of(&built, bases, addr),
                    Some(expected(&entries, addr)),
                    "{addr}"
                );
            }
        }
    }

    #[test]
    fn ranges_without_a_group_left_are_marked_for_the_tries() {
        // Three /16s with a /32 each, room for two /16 groups and one /24
        // group.
        let entries = vec![
            (net("10.0.0.1/32"), BLOCK8),
            (net("10.1.0.1/32"), BLOCK8),
            (net("10.2.0.1/32"), BLOCK8),
        ];
        let capacity = Capacity { nets: 2, hosts: 1 };
        let bases = Bases::of_copy(0);
        let built = build(&entries, capacity, bases);
        assert_eq!(built.nets.len(), 2);
        assert_eq!(built.hosts.len(), 1);
        assert_eq!(
            built.fallbacks, 3,
            "a /24 of 10.1/16, a /24 and then all of 10.2/16"
        );
        let at = |s: &str| flags_of(&built, bases, s.parse().unwrap());
        assert_eq!(at("10.0.0.1"), Some(u16::from(BLOCK8)));
        assert_eq!(at("10.0.0.2"), Some(0));
        assert_eq!(at("10.1.0.1"), None, "no host group left: the tries decide");
        assert_eq!(at("10.1.1.0"), Some(0), "the rest of that /16 is indexed");
        assert_eq!(at("10.2.0.1"), None, "no /16 group left: the tries decide");
        assert_eq!(at("10.2.200.0"), None);
    }

    #[test]
    fn a_range_covered_whole_takes_no_group() {
        let entries: Vec<_> = (0..256)
            .map(|i| (net(&format!("203.0.{i}.0/24")), BLOCK8))
            .chain((0..256).map(|i| (net(&format!("198.51.100.{i}/32")), BLOCK8)))
            .collect();
        let built = build(&entries, Capacity::default(), Bases::of_copy(0));
        assert_eq!(built.nets.len(), 1, "only 198.51/16 needs a /16 group");
        assert!(built.hosts.is_empty());
    }

    fn any_entry() -> impl Strategy<Value = (Ipv4Net, u8)> {
        // Addresses clustered in a few /16s, so that prefixes overlap.
        (0u32..4, any::<u16>(), 0u8..=32, 0usize..3).prop_map(|(hi, lo, len, list)| {
            let addr = Ipv4Addr::from(0x0a00_0000 | (hi << 16) | u32::from(lo));
            let flag = [ALLOW8, BLOCK8, MARTIAN8][list];
            (Ipv4Net::new(addr, len).unwrap().trunc(), flag)
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        /// Whatever the entries and however small the index, an address
        /// it answers for gets exactly the lists that contain it.
        #[test]
        fn the_index_agrees_with_the_lists(
            entries in prop::collection::vec(any_entry(), 0..40),
            probes in prop::collection::vec((0u32..4, any::<u16>()), 64),
            nets in 0usize..5,
            hosts in prop::sample::select(vec![0usize, 1, 2, 5, 40]),
        ) {
            let bases = Bases::of_copy(1);
            let built = build(&entries, Capacity { nets, hosts }, bases);
            let probes = probes
                .iter()
                .map(|&(hi, lo)| Ipv4Addr::from(0x0a00_0000 | (hi << 16) | u32::from(lo)))
                .chain(entries.iter().flat_map(|(n, _)| [n.network(), n.broadcast()]));
            for addr in probes {
                if let Some(flags) = flags_of(&built, bases, addr) {
                    prop_assert_eq!(flags, expected(&entries, addr), "{}", addr);
                }
            }
            if nets >= 4 && hosts >= 40 {
                prop_assert_eq!(built.fallbacks, 0);
            }
        }
    }
}
