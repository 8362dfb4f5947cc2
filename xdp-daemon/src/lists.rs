//! The allow, block and martian lists: LPM tries shared by every interface,
//! pinned at the layout's versioned root, changed here and read by the data
//! path at once.
//!
//! Beside the tries, `LIST_IN_USE` holds a flag per trie that lets the data
//! path skip a trie known to be empty. It must never say empty while the
//! trie holds an entry (that would be a bypass), so every change goes
//! through `insert` (flag set before the entry goes in) and `delete`
//! (flag cleared only once the trie is seen empty), and every change first
//! repairs the flags from the tries (`settle`), undoing what a crash
//! between the two steps left over-stated.
//!
//! IPv4 sources are looked up in the IPv4 list index ([`index`]), which
//! every change rebuilds from the tries: the data path is switched to the
//! tries first, and to the new index once it is written, so it never reads
//! an index older than the tries. The methods that change a list expect
//! the caller to hold the state lock, as every caller does: a flag is only
//! exact while no one else writes.
//!
//! A blocklist entry's value also holds its counter slot ([`slots`]), in
//! which the data path counts what the entry drops on each interface
//! ([`drops`]); the entries added with `add_many_counted` (the fleet's)
//! get one, while slots last.
mod change;
pub mod drops;
pub mod entries;
pub mod index;
pub mod slots;

use std::{collections::BTreeMap, io, net::IpAddr, os::fd::AsFd};

use aya::{
    Ebpf,
    maps::{Array, LpmTrie, Map, MapData, MapError, lpm_trie::Key},
};
use ipnet::IpNet;
use synguard_common::{
    HostGroup, IndexChunk, ListValue,
    index::{CHUNKS, COPIES},
    list_in_use, maps, sizes,
};
use tracing::warn;

use crate::{
    pins::PinLayout,
    program::{self, LoadError},
};
use drops::EntryDrops;
use slots::Slots;

/// The first map layout whose list tries hold a [`ListValue`]; older
/// ones held the expiry alone, a `u64`.
pub const LIST_VALUE_SINCE: u32 = 14;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum List {
    /// Every packet from these sources is dropped.
    Block,
    /// These sources skip every check.
    Allow,
    /// SYNs from these sources are dropped: no real host sends them.
    Martian,
}

impl List {
    pub fn name(self) -> &'static str {
        match self {
            List::Block => "blocklist",
            List::Allow => "allowlist",
            List::Martian => "martian list",
        }
    }

    const ALL: [List; 3] = [List::Allow, List::Block, List::Martian];

    fn maps(self) -> (&'static str, &'static str) {
        match self {
            List::Block => (maps::BLOCK_V4, maps::BLOCK_V6),
            List::Allow => (maps::ALLOW_V4, maps::ALLOW_V6),
            List::Martian => (maps::MARTIAN_V4, maps::MARTIAN_V6),
        }
    }

    /// Its flag in the IPv4 index.
    fn index_flag(self) -> u8 {
        (match self {
            List::Block => synguard_common::index::BLOCK,
            List::Allow => synguard_common::index::ALLOW,
            List::Martian => synguard_common::index::MARTIAN,
        }) as u8
    }

    /// Where its tries sit in [`ListMaps`].
    fn at(self) -> usize {
        match self {
            List::Allow => 0,
            List::Block => 1,
            List::Martian => 2,
        }
    }

    /// The `LIST_IN_USE` slots of the IPv4 and IPv6 tries.
    fn slots(self) -> (u32, u32) {
        match self {
            List::Block => (list_in_use::BLOCK_V4, list_in_use::BLOCK_V6),
            List::Allow => (list_in_use::ALLOW_V4, list_in_use::ALLOW_V6),
            List::Martian => (list_in_use::MARTIAN_V4, list_in_use::MARTIAN_V6),
        }
    }

    fn capacity(self) -> u32 {
        match self {
            List::Block => sizes::BLOCKLIST,
            List::Allow => sizes::ALLOWLIST,
            List::Martian => sizes::MARTIANS,
        }
    }
}

/// Sources that cannot be real on the wire (net/ipv4/route.c
/// `ip_route_input_slow` drops them as martians); loaded when the martian
/// list is empty. Private ranges are not here: they are real sources on
/// internal networks.
pub const DEFAULT_MARTIANS: &[&str] = &[
    "0.0.0.0/8",
    "127.0.0.0/8",
    "224.0.0.0/4",
    "240.0.0.0/4",
    "::/128",
    "::1/128",
    "::ffff:0:0/96",
    "ff00::/8",
];

#[derive(Debug, thiserror::Error)]
pub enum ListError {
    #[error("the {list} is full ({capacity} entries); nothing was removed to make room")]
    Full { list: &'static str, capacity: u32 },
    #[error("{0}")]
    Map(#[from] MapError),
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// The trie key of a network: its prefix length and address bytes.
fn key<const N: usize>(prefix_len: u8, octets: [u8; N]) -> Key<[u8; N]> {
    Key::new(prefix_len.into(), octets)
}

/// The shared list maps: the tries, their flags and the IPv4 index,
/// opened from their pins or from a loaded program; and the interfaces'
/// `ENTRY_DROPS`, to zero a slot before it is given.
pub struct ListMaps {
    /// By [`List::at`].
    v4: [LpmTrie<MapData, [u8; 4], ListValue>; 3],
    v6: [LpmTrie<MapData, [u8; 16], ListValue>; 3],
    in_use: Array<MapData, u32>,
    index: Array<MapData, IndexChunk>,
    index_nets: Array<MapData, IndexChunk>,
    index_hosts: Array<MapData, HostGroup>,
    entry_drops: Vec<EntryDrops>,
    /// Whether running out of counter slots was logged.
    said_full: bool,
}

/// What the last index rebuild made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IndexStats {
    /// Groups used: /16s and /24s that hold finer entries.
    pub nets: usize,
    pub hosts: usize,
    /// /16s and /24s left to the tries for want of groups.
    pub fallbacks: usize,
}

impl ListMaps {
    /// The pinned maps of `layout`, created (by loading the program once)
    /// if no interface was ever attached there.
    pub fn open(layout: &PinLayout) -> Result<ListMaps, ListError> {
        if !layout.shared_map(maps::INDEX_V4).exists() {
            layout.prepare()?;
            drop(program::load(Some(layout), None)?);
        }
        let mut maps = ListMaps::with(|name| Ok(MapData::from_pin(layout.shared_map(name))?))?;
        maps.entry_drops = EntryDrops::attached(layout)?;
        Ok(maps)
    }

    /// The maps of a program loaded without pins (packet tests, the bench).
    pub fn of(ebpf: &Ebpf) -> Result<ListMaps, ListError> {
        let open = |name: &str| {
            let map = ebpf
                .map(name)
                .ok_or_else(|| io::Error::other(format!("the program has no map {name}")))?;
            let data = match map {
                Map::Array(data) | Map::LpmTrie(data) | Map::PerCpuArray(data) => data,
                _ => return Err(io::Error::other(format!("{name} is not a list map")).into()),
            };
            let fd = data.fd().as_fd().try_clone_to_owned()?;
            Ok(MapData::from_fd(fd)?)
        };
        let mut maps = ListMaps::with(open)?;
        let drops = Map::PerCpuArray(open(maps::ENTRY_DROPS)?);
        maps.entry_drops = vec![EntryDrops::of("", drops)?];
        Ok(maps)
    }

    fn with(open: impl Fn(&str) -> Result<MapData, ListError>) -> Result<ListMaps, ListError> {
        let trie = |name: &str| -> Result<Map, ListError> { Ok(Map::LpmTrie(open(name)?)) };
        let array = |name: &str| -> Result<Map, ListError> { Ok(Map::Array(open(name)?)) };
        let v4 =
            |list: List| -> Result<_, ListError> { Ok(LpmTrie::try_from(trie(list.maps().0)?)?) };
        let v6 =
            |list: List| -> Result<_, ListError> { Ok(LpmTrie::try_from(trie(list.maps().1)?)?) };
        Ok(ListMaps {
            v4: [v4(List::Allow)?, v4(List::Block)?, v4(List::Martian)?],
            v6: [v6(List::Allow)?, v6(List::Block)?, v6(List::Martian)?],
            in_use: Array::try_from(array(maps::LIST_IN_USE)?)?,
            index: Array::try_from(array(maps::INDEX_V4)?)?,
            index_nets: Array::try_from(array(maps::INDEX_V4_NETS)?)?,
            index_hosts: Array::try_from(array(maps::INDEX_V4_HOSTS)?)?,
            entry_drops: Vec::new(),
            said_full: false,
        })
    }

    /// Adds `net` to `list` (or updates its expiry; it keeps its counter
    /// slot, if any). Returns false if it was already there.
    pub fn add(&mut self, list: List, net: IpNet, expires: u64) -> Result<bool, ListError> {
        self.add_many(list, &[(net, expires)])
            .pop()
            .expect("one result per entry")
    }

    /// [`add`](Self::add) for several entries, with one index rebuild: a
    /// result per entry, in order.
    pub fn add_many(&mut self, list: List, nets: &[(IpNet, u64)]) -> Vec<Result<bool, ListError>> {
        self.add_entries(list, nets, false)
    }

    /// [`add_many`](Self::add_many), each blocklist entry with a counter
    /// slot (kept if it has one, else a new one, at zero), so that what
    /// it drops is counted per interface: the fleet's entries. Only
    /// those, because an IPv4 drop then costs a trie lookup
    /// (docs/design.md#drops-per-blocklist-entry).
    pub fn add_many_counted(
        &mut self,
        list: List,
        nets: &[(IpNet, u64)],
    ) -> Vec<Result<bool, ListError>> {
        self.add_entries(list, nets, true)
    }

    /// Gives a counter slot to those of `nets` on `list` that have none,
    /// keeping their expiry (entries shared before an upgrade).
    pub fn count(&mut self, list: List, nets: &[IpNet]) -> Result<usize, ListError> {
        let values = self.values(list)?;
        let uncounted: Vec<(IpNet, u64)> = nets
            .iter()
            .filter_map(|n| values.get(&n.trunc()).map(|v| (n.trunc(), *v)))
            .filter(|(_, v)| v.slot == slots::NO_SLOT)
            .map(|(n, v)| (n, v.expiry))
            .collect();
        if uncounted.is_empty() {
            return Ok(0);
        }
        for result in self.add_many_counted(list, &uncounted) {
            result?;
        }
        Ok(uncounted.len())
    }

    fn add_entries(
        &mut self,
        list: List,
        nets: &[(IpNet, u64)],
        counted: bool,
    ) -> Vec<Result<bool, ListError>> {
        let mut results = Vec::new();
        let outcome = self.change(|maps| {
            let present = maps.values(list)?;
            let mut slots = Slots::of(present.values().map(|v| v.slot));
            for &(net, expires) in nets {
                let net = net.trunc();
                results.push(
                    maps.value(list, &present, &mut slots, net, expires, counted)
                        .and_then(|value| maps.insert(list, net, value))
                        .map(|()| !present.contains_key(&net)),
                );
            }
            Ok(())
        });
        if let Err(e) = outcome {
            // Nothing was changed: the same error for every entry.
            let message = e.to_string();
            results = nets
                .iter()
                .map(|_| Err(io::Error::other(message.clone()).into()))
                .collect();
        }
        results
    }

    /// Adds the entries of an older map layout's lists that these lists
    /// lack, with their expiry (a value of its own before layout
    /// [`LIST_VALUE_SINCE`]; the old layout's counter slots are not
    /// carried over: each entry gets one here); expired ones are left
    /// out. Reads the old pins only, creating nothing there. Returns how
    /// many went into each list.
    pub fn import(&mut self, older: &PinLayout, now: u64) -> Result<Vec<(List, usize)>, ListError> {
        let mut imported = Vec::new();
        let bare = older.version() < LIST_VALUE_SINCE;
        for list in List::ALL {
            let (v4, v6) = list.maps();
            let mut old = Vec::new();
            for name in [v4, v6] {
                let path = older.shared_map(name);
                if !path.exists() {
                    continue;
                }
                let map = Map::LpmTrie(MapData::from_pin(path)?);
                let expiries = |entries: Vec<(IpNet, ListValue)>| {
                    entries.into_iter().map(|(net, v)| (net, v.expiry))
                };
                match (name == v4, bare) {
                    (true, true) => old.extend(read(&LpmTrie::<_, [u8; 4], u64>::try_from(map)?)?),
                    (false, true) => {
                        old.extend(read(&LpmTrie::<_, [u8; 16], u64>::try_from(map)?)?)
                    }
                    (true, false) => old.extend(expiries(read(
                        &LpmTrie::<_, [u8; 4], ListValue>::try_from(map)?,
                    )?)),
                    (false, false) => {
                        old.extend(expiries(read(
                            &LpmTrie::<_, [u8; 16], ListValue>::try_from(map)?,
                        )?))
                    }
                }
            }
            let present = self.present(list)?;
            let missing: Vec<(IpNet, u64)> = old
                .into_iter()
                .filter(|(net, expires)| {
                    !present.contains(net) && (*expires == 0 || *expires > now)
                })
                .collect();
            if missing.is_empty() {
                continue;
            }
            for result in self.add_many(list, &missing) {
                result?;
            }
            imported.push((list, missing.len()));
        }
        Ok(imported)
    }

    /// Removes `net` from `list`. Returns false if it was not there.
    pub fn remove(&mut self, list: List, net: IpNet) -> Result<bool, ListError> {
        let net = net.trunc();
        self.change(|maps| {
            if !maps.present(list)?.contains(&net) {
                return Ok(false);
            }
            maps.delete(list, net)?;
            Ok(true)
        })
    }

    /// The networks on `list`.
    fn present(&self, list: List) -> Result<std::collections::BTreeSet<IpNet>, ListError> {
        Ok(self.entries(list)?.into_iter().map(|(n, _)| n).collect())
    }

    /// Every entry of `list` with its expiry (Unix seconds, 0: never).
    pub fn entries(&self, list: List) -> Result<Vec<(IpNet, u64)>, ListError> {
        Ok(self
            .values(list)?
            .into_iter()
            .map(|(net, v)| (net, v.expiry))
            .collect())
    }

    /// Every entry of `list` with its value: expiry and counter slot.
    pub fn values(&self, list: List) -> Result<BTreeMap<IpNet, ListValue>, ListError> {
        let mut out: BTreeMap<IpNet, ListValue> = read(&self.v4[list.at()])?.into_iter().collect();
        out.extend(read(&self.v6[list.at()])?);
        Ok(out)
    }

    /// Makes every list's `LIST_IN_USE` flags match its tries and rebuilds
    /// the IPv4 index, repairing what a crash mid-change left behind;
    /// attach calls it before a new program instance starts reading them.
    pub fn settle_all(&mut self) -> Result<(), ListError> {
        self.change(|_| Ok(()))
    }

    /// Fills the martian list with `DEFAULT_MARTIANS` if it is empty.
    pub fn seed_martians(&mut self) -> Result<(), ListError> {
        if !self.entries(List::Martian)?.is_empty() {
            return Ok(());
        }
        let defaults: Vec<(IpNet, u64)> = DEFAULT_MARTIANS
            .iter()
            .map(|net| (net.parse().expect("valid default"), 0))
            .collect();
        for result in self.add_many(List::Martian, &defaults) {
            result?;
        }
        Ok(())
    }

    /// Makes the entries of `list` that came from the config equal
    /// `desired`: adds the missing ones (never expiring) and removes those
    /// in `previous` (what the config held before) that left it. Entries
    /// added by other means are left alone. One read of the list, whatever
    /// its size.
    pub fn sync(
        &mut self,
        list: List,
        desired: &[IpNet],
        previous: &[IpNet],
    ) -> Result<SyncOutcome, ListError> {
        self.change(|maps| {
            let present = maps.values(list)?;
            let mut slots = Slots::of(present.values().map(|v| v.slot));
            let mut outcome = SyncOutcome::default();
            for &net in desired {
                let net = net.trunc();
                if !present.contains_key(&net) {
                    let value = maps.value(list, &present, &mut slots, net, 0, false)?;
                    maps.insert(list, net, value)?;
                    outcome.added += 1;
                }
            }
            for &net in previous {
                let net = net.trunc();
                if present.contains_key(&net) && !desired.iter().any(|d| d.trunc() == net) {
                    maps.delete(list, net)?;
                    outcome.removed += 1;
                }
            }
            Ok(outcome)
        })
    }

    /// Removes entries of `list` whose expiry (Unix seconds) is at or
    /// before `now`, and returns them. If none has expired, it only
    /// repairs the trie flags (as every change does first; the daemon
    /// sweeps once a second) and leaves the index as it is.
    pub fn sweep_expired(&mut self, list: List, now: u64) -> Result<Vec<IpNet>, ListError> {
        for list in List::ALL {
            self.settle(list)?;
        }
        let expired: Vec<IpNet> = self
            .entries(list)?
            .into_iter()
            .filter(|&(_, expires)| expires != 0 && expires <= now)
            .map(|(net, _)| net)
            .collect();
        if expired.is_empty() {
            return Ok(expired);
        }
        self.change(|maps| {
            for &net in &expired {
                maps.delete(list, net)?;
            }
            Ok(())
        })?;
        Ok(expired)
    }

    /// The `LIST_IN_USE` flags of `list`'s IPv4 and IPv6 tries: false
    /// means the data path skips that trie.
    pub fn in_use(&self, list: List) -> Result<(bool, bool), ListError> {
        let (v4_slot, v6_slot) = list.slots();
        Ok((
            self.in_use.get(&v4_slot, 0)? != 0,
            self.in_use.get(&v6_slot, 0)? != 0,
        ))
    }

    /// The `ENTRY_DROPS` of every interface attached (one, unnamed, for
    /// a program loaded without pins).
    pub fn entry_drops(&self) -> &[EntryDrops] {
        &self.entry_drops
    }

    /// How full the live copy of the IPv4 index is.
    pub fn index_stats(&self) -> Result<IndexStats, ListError> {
        let live = self.in_use.get(&list_in_use::INDEX_V4, 0)?;
        if live == 0 {
            return Err(io::Error::other("no IPv4 list index is live").into());
        }
        let built = self.build(live - 1)?;
        Ok(IndexStats {
            nets: built.nets.len(),
            hosts: built.hosts.len(),
            fallbacks: built.fallbacks,
        })
    }
}

/// The entries of one trie, with their values.
fn read<const N: usize, V: aya::Pod>(
    trie: &LpmTrie<MapData, [u8; N], V>,
) -> Result<Vec<(IpNet, V)>, ListError>
where
    IpAddr: From<[u8; N]>,
{
    let mut out = Vec::new();
    for item in trie.iter() {
        let (key, value) = item?;
        let net = IpNet::new(IpAddr::from(key.data()), key.prefix_len() as u8)
            .map_err(io::Error::other)?;
        out.push((net, value));
    }
    Ok(out)
}

/// What `sync` did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SyncOutcome {
    pub added: usize,
    pub removed: usize,
}

#[cfg(test)]
mod tests;
