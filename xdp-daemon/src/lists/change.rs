//! How every change reaches the tries: the in-use flags repaired first
//! and set before an entry goes in, the data path switched to the tries
//! while the IPv4 index is rebuilt (see the module docs of `lists`).
// The tries, the index and their helpers, as the parent module names them.
use super::*;

impl ListMaps {
    /// Runs a change to the tries with the data path on the tries, the
    /// flags repaired before, and the IPv4 index rebuilt after (also after
    /// a change that failed part way: the tries hold what they hold).
    pub(super) fn change<T>(
        &mut self,
        f: impl FnOnce(&mut Self) -> Result<T, ListError>,
    ) -> Result<T, ListError> {
        let live = self.in_use.get(&list_in_use::INDEX_V4, 0)?;
        self.in_use.set(list_in_use::INDEX_V4, 0, 0)?;
        for list in List::ALL {
            self.settle(list)?;
        }
        let result = f(self);
        // The copy not live before: a reader still in it (a packet being
        // processed as the switch happened) finds it unchanged.
        let copy = if live == 1 { 1 } else { 0 };
        self.reindex(copy)?;
        result
    }

    /// The IPv4 index of the tries as they are, built for `copy`.
    pub(super) fn build(&self, copy: u32) -> Result<index::Built, ListError> {
        let mut entries = Vec::new();
        for list in List::ALL {
            for (net, value) in read(&self.v4[list.at()])? {
                if let IpNet::V4(net) = net {
                    let counted = if value.slot != slots::NO_SLOT {
                        synguard_common::index::COUNTED as u8
                    } else {
                        0
                    };
                    entries.push((net, list.index_flag() | counted));
                }
            }
        }
        Ok(index::build(
            &entries,
            index::Capacity::default(),
            index::Bases::of_copy(copy),
        ))
    }

    /// Writes the index of the tries into `copy` and makes it live.
    pub(super) fn reindex(&mut self, copy: u32) -> Result<(), ListError> {
        debug_assert!(copy < COPIES);
        let built = self.build(copy)?;
        for (i, chunk) in built.chunks.iter().enumerate() {
            self.index.set(copy * CHUNKS + i as u32, chunk, 0)?;
        }
        let bases = index::Bases::of_copy(copy);
        for (i, group) in built.nets.iter().enumerate() {
            self.index_nets
                .set(u32::from(bases.net) + i as u32, group, 0)?;
        }
        for (i, group) in built.hosts.iter().enumerate() {
            self.index_hosts
                .set(u32::from(bases.host) + i as u32, group, 0)?;
        }
        self.in_use.set(list_in_use::INDEX_V4, copy + 1, 0)?;
        if built.fallbacks > 0 {
            warn!(
                "the IPv4 list index is full: {} ranges are looked up in the tries (slower, as exact)",
                built.fallbacks
            );
        }
        Ok(())
    }

    /// Makes the flags of `list`'s tries say whether each holds an entry.
    pub(super) fn settle(&mut self, list: List) -> Result<(), ListError> {
        let (v4_slot, v6_slot) = list.slots();
        let v4_used = self.v4[list.at()].keys().next().transpose()?.is_some();
        self.in_use.set(v4_slot, u32::from(v4_used), 0)?;
        let v6_used = self.v6[list.at()].keys().next().transpose()?.is_some();
        self.in_use.set(v6_slot, u32::from(v6_used), 0)?;
        Ok(())
    }

    /// The value to write for `net` on `list` (whose entries are
    /// `present`): `expires`, and on the blocklist the counter slot the
    /// entry holds, else a new one if it is to be `counted` (zeroed on
    /// every interface first, so it starts from zero), else none. With
    /// every slot taken the entry goes uncounted, and that is logged.
    pub(super) fn value(
        &mut self,
        list: List,
        present: &BTreeMap<IpNet, ListValue>,
        slots: &mut Slots,
        net: IpNet,
        expires: u64,
        counted: bool,
    ) -> Result<ListValue, ListError> {
        let held = present.get(&net).map_or(slots::NO_SLOT, |v| v.slot);
        let slot = if list != List::Block || held != slots::NO_SLOT || !counted {
            held
        } else if let Some(slot) = slots.take() {
            for drops in &mut self.entry_drops {
                drops.zero(slot)?;
            }
            slot
        } else {
            if !std::mem::replace(&mut self.said_full, true) {
                warn!(
                    "{net}: every one of the {} blocklist counter slots is taken; its drops are not counted per entry",
                    sizes::COUNTED_ENTRIES - 1
                );
            }
            slots::NO_SLOT
        };
        Ok(ListValue {
            expiry: expires,
            slot,
            _pad: 0,
        })
    }

    /// Inserts or updates one entry, with no existence check. The trie's
    /// `LIST_IN_USE` flag is set first, so the data path never skips a
    /// trie with this entry in it. A full trie is E2BIG for hash-like
    /// maps and ENOSPC for LPM tries on 6.x kernels.
    pub(super) fn insert(
        &mut self,
        list: List,
        net: IpNet,
        value: ListValue,
    ) -> Result<(), ListError> {
        let (v4_slot, v6_slot) = list.slots();
        let slot = if net.addr().is_ipv4() {
            v4_slot
        } else {
            v6_slot
        };
        self.in_use.set(slot, 1, 0)?;
        let result = match net {
            IpNet::V4(n) => {
                self.v4[list.at()].insert(&key(n.prefix_len(), n.addr().octets()), value, 0)
            }
            IpNet::V6(n) => {
                self.v6[list.at()].insert(&key(n.prefix_len(), n.addr().octets()), value, 0)
            }
        };
        match result {
            Ok(()) => Ok(()),
            Err(MapError::SyscallError(e))
                if matches!(e.io_error.raw_os_error(), Some(libc::E2BIG | libc::ENOSPC)) =>
            {
                Err(ListError::Full {
                    list: list.name(),
                    capacity: list.capacity(),
                })
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Removes one entry; the trie's `LIST_IN_USE` flag is cleared
    /// afterwards if that left the trie empty.
    pub(super) fn delete(&mut self, list: List, net: IpNet) -> Result<(), ListError> {
        let (v4_slot, v6_slot) = list.slots();
        match net {
            IpNet::V4(n) => {
                let trie = &mut self.v4[list.at()];
                trie.remove(&key(n.prefix_len(), n.addr().octets()))?;
                if trie.keys().next().is_none() {
                    self.in_use.set(v4_slot, 0, 0)?;
                }
            }
            IpNet::V6(n) => {
                let trie = &mut self.v6[list.at()];
                trie.remove(&key(n.prefix_len(), n.addr().octets()))?;
                if trie.keys().next().is_none() {
                    self.in_use.set(v6_slot, 0, 0)?;
                }
            }
        }
        Ok(())
    }
}
