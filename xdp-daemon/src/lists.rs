//! The allow, block and martian lists: LPM tries shared by every interface,
//! pinned at the layout's versioned root, changed here and read by the data
//! path at once.
//!
//! Beside the tries, `LIST_IN_USE` holds a flag per trie that lets the data
//! path skip a trie known to be empty. It must never say empty while the
//! trie holds an entry (that would be a bypass), so every change goes
//! through [`insert`] (flag set before the entry goes in) and [`delete`]
//! (flag cleared only once the trie is seen empty), and every change first
//! repairs the flags from the tries ([`settle`]), undoing what a crash
//! between the two steps left over-stated. The functions that change a
//! list expect the caller to hold the state lock, as every caller does:
//! a flag is only exact while no one else writes.
use std::{io, net::IpAddr};

use aya::maps::{Array, LpmTrie, Map, MapData, MapError, lpm_trie::Key};
use ipnet::IpNet;
use xdp_common::{list_in_use, maps, sizes};

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

    fn maps(self) -> (&'static str, &'static str) {
        match self {
            List::Block => (maps::BLOCK_V4, maps::BLOCK_V6),
            List::Allow => (maps::ALLOW_V4, maps::ALLOW_V6),
            List::Martian => (maps::MARTIAN_V4, maps::MARTIAN_V6),
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

/// Makes sure the shared maps exist (they do once any interface was
/// attached; otherwise loading the program creates and pins them).
fn ensure(layout: &PinLayout) -> Result<(), ListError> {
    if !layout.shared_map(maps::BLOCK_V4).exists() {
        layout.prepare()?;
        drop(program::load(Some(layout), None)?);
    }
    Ok(())
}

/// One of a list's two tries: `[u8; 4]` keys for IPv4, `[u8; 16]` for IPv6.
fn trie<const N: usize>(
    layout: &PinLayout,
    name: &str,
) -> Result<LpmTrie<MapData, [u8; N], u64>, ListError> {
    let map = Map::LpmTrie(MapData::from_pin(layout.shared_map(name))?);
    Ok(LpmTrie::try_from(map)?)
}

/// The trie key of a network: its prefix length and address bytes.
fn key<const N: usize>(prefix_len: u8, octets: [u8; N]) -> Key<[u8; N]> {
    Key::new(prefix_len.into(), octets)
}

/// Adds `net` to `list` (or updates its expiry). Returns false if it was
/// already there.
pub fn add(layout: &PinLayout, list: List, net: IpNet, expires: u64) -> Result<bool, ListError> {
    ensure(layout)?;
    settle(layout, list)?;
    let net = net.trunc();
    let existed = contains(layout, list, net)?;
    insert(layout, list, net, expires)?;
    Ok(!existed)
}

/// Removes `net` from `list`. Returns false if it was not there.
pub fn remove(layout: &PinLayout, list: List, net: IpNet) -> Result<bool, ListError> {
    ensure(layout)?;
    settle(layout, list)?;
    let net = net.trunc();
    if !contains(layout, list, net)? {
        return Ok(false);
    }
    delete(layout, list, net)?;
    Ok(true)
}

fn contains(layout: &PinLayout, list: List, net: IpNet) -> Result<bool, ListError> {
    Ok(entries(layout, list)?.iter().any(|(n, _)| *n == net))
}

/// Every entry of `list` with its expiry (Unix seconds, 0: never).
pub fn entries(layout: &PinLayout, list: List) -> Result<Vec<(IpNet, u64)>, ListError> {
    ensure(layout)?;
    let (v4, v6) = list.maps();
    let mut out = read::<4>(layout, v4)?;
    out.extend(read::<16>(layout, v6)?);
    out.sort();
    Ok(out)
}

/// The entries of one trie.
fn read<const N: usize>(layout: &PinLayout, name: &str) -> Result<Vec<(IpNet, u64)>, ListError>
where
    IpAddr: From<[u8; N]>,
{
    let mut out = Vec::new();
    for item in trie::<N>(layout, name)?.iter() {
        let (key, expires) = item?;
        let net = IpNet::new(IpAddr::from(key.data()), key.prefix_len() as u8)
            .map_err(io::Error::other)?;
        out.push((net, expires));
    }
    Ok(out)
}

/// Makes every list's `LIST_IN_USE` flags match its tries, repairing what
/// a crash mid-change left over-stated; attach calls it before a new
/// program instance starts reading them. The caller holds the state lock.
pub fn settle_all(layout: &PinLayout) -> Result<(), ListError> {
    ensure(layout)?;
    for list in [List::Allow, List::Block, List::Martian] {
        settle(layout, list)?;
    }
    Ok(())
}

/// Fills the martian list with `DEFAULT_MARTIANS` if it is empty.
pub fn seed_martians(layout: &PinLayout) -> Result<(), ListError> {
    if !entries(layout, List::Martian)?.is_empty() {
        return Ok(());
    }
    for net in DEFAULT_MARTIANS {
        add(
            layout,
            List::Martian,
            net.parse().expect("valid default"),
            0,
        )?;
    }
    Ok(())
}

/// Makes the entries of `list` that came from the config equal `desired`:
/// adds the missing ones (never expiring) and removes those in `previous`
/// (what the config held before) that left it. Entries added by other means
/// are left alone. One read of the list, whatever its size.
pub fn sync(
    layout: &PinLayout,
    list: List,
    desired: &[IpNet],
    previous: &[IpNet],
) -> Result<SyncOutcome, ListError> {
    ensure(layout)?;
    settle(layout, list)?;
    let present: std::collections::BTreeSet<IpNet> =
        entries(layout, list)?.into_iter().map(|(n, _)| n).collect();
    let mut outcome = SyncOutcome::default();
    for &net in desired {
        let net = net.trunc();
        if !present.contains(&net) {
            insert(layout, list, net, 0)?;
            outcome.added += 1;
        }
    }
    for &net in previous {
        let net = net.trunc();
        if present.contains(&net) && !desired.iter().any(|d| d.trunc() == net) {
            delete(layout, list, net)?;
            outcome.removed += 1;
        }
    }
    Ok(outcome)
}

/// What `sync` did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SyncOutcome {
    pub added: usize,
    pub removed: usize,
}

/// Removes entries of `list` whose expiry (Unix seconds) is at or before
/// `now`, and returns them.
pub fn sweep_expired(layout: &PinLayout, list: List, now: u64) -> Result<Vec<IpNet>, ListError> {
    ensure(layout)?;
    settle(layout, list)?;
    let mut gone = Vec::new();
    for (net, expires) in entries(layout, list)? {
        if expires != 0 && expires <= now {
            delete(layout, list, net)?;
            gone.push(net);
        }
    }
    Ok(gone)
}

/// The `LIST_IN_USE` flags.
fn in_use_flags(layout: &PinLayout) -> Result<Array<MapData, u32>, ListError> {
    let map = Map::Array(MapData::from_pin(layout.shared_map(maps::LIST_IN_USE))?);
    Ok(Array::try_from(map)?)
}

/// Sets the `LIST_IN_USE` flag of one trie.
fn set_in_use(layout: &PinLayout, slot: u32, in_use: bool) -> Result<(), ListError> {
    Ok(in_use_flags(layout)?.set(slot, u32::from(in_use), 0)?)
}

/// The `LIST_IN_USE` flags of `list`'s IPv4 and IPv6 tries: false means
/// the data path skips that trie.
pub fn in_use(layout: &PinLayout, list: List) -> Result<(bool, bool), ListError> {
    ensure(layout)?;
    let flags = in_use_flags(layout)?;
    let (v4_slot, v6_slot) = list.slots();
    Ok((flags.get(&v4_slot, 0)? != 0, flags.get(&v6_slot, 0)? != 0))
}

/// Makes the flags of `list`'s tries say whether each holds an entry.
/// Exact only while no one else changes the list: the caller holds the
/// state lock.
fn settle(layout: &PinLayout, list: List) -> Result<(), ListError> {
    let (v4, v6) = list.maps();
    let (v4_slot, v6_slot) = list.slots();
    let v4_used = trie::<4>(layout, v4)?.keys().next().transpose()?.is_some();
    set_in_use(layout, v4_slot, v4_used)?;
    let v6_used = trie::<16>(layout, v6)?.keys().next().transpose()?.is_some();
    set_in_use(layout, v6_slot, v6_used)
}

/// Inserts or updates one entry, with no existence check. The trie's
/// `LIST_IN_USE` flag is set first, so the data path never skips a trie
/// with this entry in it. A full trie is E2BIG for hash-like maps and
/// ENOSPC for LPM tries on 6.x kernels.
fn insert(layout: &PinLayout, list: List, net: IpNet, expires: u64) -> Result<(), ListError> {
    let (v4, v6) = list.maps();
    let (v4_slot, v6_slot) = list.slots();
    set_in_use(
        layout,
        if net.addr().is_ipv4() {
            v4_slot
        } else {
            v6_slot
        },
        true,
    )?;
    let result = match net {
        IpNet::V4(n) => {
            trie(layout, v4)?.insert(&key(n.prefix_len(), n.addr().octets()), expires, 0)
        }
        IpNet::V6(n) => {
            trie(layout, v6)?.insert(&key(n.prefix_len(), n.addr().octets()), expires, 0)
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

/// Removes one entry; the trie's `LIST_IN_USE` flag is cleared afterwards
/// if that left the trie empty.
fn delete(layout: &PinLayout, list: List, net: IpNet) -> Result<(), ListError> {
    let (v4, v6) = list.maps();
    let (v4_slot, v6_slot) = list.slots();
    match net {
        IpNet::V4(n) => {
            let mut trie = trie::<4>(layout, v4)?;
            trie.remove(&key(n.prefix_len(), n.addr().octets()))?;
            if trie.keys().next().is_none() {
                set_in_use(layout, v4_slot, false)?;
            }
        }
        IpNet::V6(n) => {
            let mut trie = trie::<16>(layout, v6)?;
            trie.remove(&key(n.prefix_len(), n.addr().octets()))?;
            if trie.keys().next().is_none() {
                set_in_use(layout, v6_slot, false)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_martians_parse_and_spare_real_sources() {
        let nets: Vec<IpNet> = DEFAULT_MARTIANS
            .iter()
            .map(|n| n.parse().unwrap())
            .collect();
        for real in [
            "10.1.2.3",
            "192.168.1.1",
            "198.18.0.1",
            "100.64.0.1",
            "2001:2::1",
            "fe80::1",
        ] {
            let ip: IpAddr = real.parse().unwrap();
            assert!(
                !nets.iter().any(|n| n.contains(&ip)),
                "{real} must not be a martian"
            );
        }
        for bogus in [
            "0.1.2.3",
            "127.0.0.1",
            "224.0.0.5",
            "255.255.255.255",
            "::1",
            "ff02::1",
        ] {
            let ip: IpAddr = bogus.parse().unwrap();
            assert!(
                nets.iter().any(|n| n.contains(&ip)),
                "{bogus} must be a martian"
            );
        }
    }
}
