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
mod change;
pub mod entries;
pub mod index;

use std::{io, net::IpAddr, os::fd::AsFd};

use aya::{
    Ebpf,
    maps::{Array, LpmTrie, Map, MapData, MapError, lpm_trie::Key},
};
use ipnet::IpNet;
use synguard_common::{
    HostGroup, IndexChunk,
    index::{CHUNKS, COPIES},
    list_in_use, maps, sizes,
};
use tracing::warn;

use crate::{
    pins::PinLayout,
    program::{self, LoadError},
};

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
/// opened from their pins or from a loaded program.
pub struct ListMaps {
    /// By [`List::at`].
    v4: [LpmTrie<MapData, [u8; 4], u64>; 3],
    v6: [LpmTrie<MapData, [u8; 16], u64>; 3],
    in_use: Array<MapData, u32>,
    index: Array<MapData, IndexChunk>,
    index_nets: Array<MapData, IndexChunk>,
    index_hosts: Array<MapData, HostGroup>,
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
        ListMaps::with(|name| Ok(MapData::from_pin(layout.shared_map(name))?))
    }

    /// The maps of a program loaded without pins (packet tests, the bench).
    pub fn of(ebpf: &Ebpf) -> Result<ListMaps, ListError> {
        ListMaps::with(|name| {
            let map = ebpf
                .map(name)
                .ok_or_else(|| io::Error::other(format!("the program has no map {name}")))?;
            let data = match map {
                Map::Array(data) | Map::LpmTrie(data) => data,
                _ => return Err(io::Error::other(format!("{name} is not a list map")).into()),
            };
            let fd = data.fd().as_fd().try_clone_to_owned()?;
            Ok(MapData::from_fd(fd)?)
        })
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
        })
    }

    /// Adds `net` to `list` (or updates its expiry). Returns false if it
    /// was already there.
    pub fn add(&mut self, list: List, net: IpNet, expires: u64) -> Result<bool, ListError> {
        self.add_many(list, &[(net, expires)])
            .pop()
            .expect("one result per entry")
    }

    /// [`add`](Self::add) for several entries, with one index rebuild: a
    /// result per entry, in order.
    pub fn add_many(&mut self, list: List, nets: &[(IpNet, u64)]) -> Vec<Result<bool, ListError>> {
        let mut results = Vec::new();
        let outcome = self.change(|maps| {
            let present = maps.present(list)?;
            for &(net, expires) in nets {
                let net = net.trunc();
                results.push(
                    maps.insert(list, net, expires)
                        .map(|()| !present.contains(&net)),
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

    /// Adds the entries of an older map layout's lists (their tries have
    /// kept one format since the first layout) that these lists lack,
    /// with their expiry; expired ones are left out. Reads the old pins
    /// only, creating nothing there. Returns how many went into each list.
    pub fn import(&mut self, older: &PinLayout, now: u64) -> Result<Vec<(List, usize)>, ListError> {
        let mut imported = Vec::new();
        for list in List::ALL {
            let (v4, v6) = list.maps();
            let mut old = Vec::new();
            for name in [v4, v6] {
                let path = older.shared_map(name);
                if !path.exists() {
                    continue;
                }
                let map = Map::LpmTrie(MapData::from_pin(path)?);
                if name == v4 {
                    old.extend(read(&LpmTrie::<_, [u8; 4], u64>::try_from(map)?)?);
                } else {
                    old.extend(read(&LpmTrie::<_, [u8; 16], u64>::try_from(map)?)?);
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
        let mut out = read(&self.v4[list.at()])?;
        out.extend(read(&self.v6[list.at()])?);
        out.sort();
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
            let present = maps.present(list)?;
            let mut outcome = SyncOutcome::default();
            for &net in desired {
                let net = net.trunc();
                if !present.contains(&net) {
                    maps.insert(list, net, 0)?;
                    outcome.added += 1;
                }
            }
            for &net in previous {
                let net = net.trunc();
                if present.contains(&net) && !desired.iter().any(|d| d.trunc() == net) {
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

/// The entries of one trie.
fn read<const N: usize>(
    trie: &LpmTrie<MapData, [u8; N], u64>,
) -> Result<Vec<(IpNet, u64)>, ListError>
where
    IpAddr: From<[u8; N]>,
{
    let mut out = Vec::new();
    for item in trie.iter() {
        let (key, expires) = item?;
        let net = IpNet::new(IpAddr::from(key.data()), key.prefix_len() as u8)
            .map_err(io::Error::other)?;
        out.push((net, expires));
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
