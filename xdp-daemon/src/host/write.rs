//! Writing the host view into an interface's maps: this module is the one
//! writer of `HOST`, `VLANS`, `LOCAL_V4` and `LOCAL_V6`.
use std::{
    io,
    net::{Ipv4Addr, Ipv6Addr},
    os::fd::AsFd,
};

use aya::{
    Ebpf,
    maps::{Array, HashMap, Map, MapData, lpm_trie::Key, lpm_trie::LpmTrie},
};
use ipnet::{Ipv4Net, Ipv6Net};
use synguard_common::{HostLink, HostSelf, host, maps, words_of};

use super::{HostView, Identity};
use crate::pins::PinLayout;

/// The host maps of one interface's program instance.
pub struct HostMaps {
    host: Array<MapData, HostSelf>,
    vlans: HashMap<MapData, u32, HostLink>,
    v4: LpmTrie<MapData, [u8; 4], u8>,
    v6: LpmTrie<MapData, [u8; 16], u8>,
}

impl HostMaps {
    /// The pinned maps of an attached interface.
    pub fn open(layout: &PinLayout, iface: &str) -> io::Result<HostMaps> {
        HostMaps::with(|name| MapData::from_pin(layout.map(iface, name)).map_err(io::Error::other))
    }

    /// The maps of a loaded program (before its link is pinned, and in
    /// packet tests).
    pub fn of(ebpf: &Ebpf) -> io::Result<HostMaps> {
        HostMaps::with(|name| {
            let data = match ebpf.map(name) {
                Some(Map::Array(d) | Map::HashMap(d) | Map::LpmTrie(d)) => d,
                _ => return Err(io::Error::other(format!("the program has no map {name}"))),
            };
            MapData::from_fd(data.fd().as_fd().try_clone_to_owned()?).map_err(io::Error::other)
        })
    }

    fn with(open: impl Fn(&str) -> io::Result<MapData>) -> io::Result<HostMaps> {
        let e = io::Error::other;
        Ok(HostMaps {
            host: Array::try_from(Map::Array(open(maps::HOST)?)).map_err(e)?,
            vlans: HashMap::try_from(Map::HashMap(open(maps::VLANS)?)).map_err(e)?,
            v4: LpmTrie::try_from(Map::LpmTrie(open(maps::LOCAL_V4)?)).map_err(e)?,
            v6: LpmTrie::try_from(Map::LpmTrie(open(maps::LOCAL_V6)?)).map_err(e)?,
        })
    }

    /// What the maps hold now.
    pub fn read(&self) -> io::Result<Identity> {
        let e = io::Error::other;
        let mut identity = Identity {
            mac: self.host.get(&0, 0).map_err(e)?.mac,
            ..Identity::default()
        };
        for entry in self.vlans.iter() {
            let (key, link) = entry.map_err(e)?;
            identity.vlans.insert(key, link.mac);
        }
        for key in self.v4.keys() {
            let key = key.map_err(e)?;
            let net = Ipv4Net::new(Ipv4Addr::from(key.data()), key.prefix_len() as u8);
            identity.local_v4.extend(net.ok());
        }
        for key in self.v6.keys() {
            let key = key.map_err(e)?;
            let net = Ipv6Net::new(Ipv6Addr::from(key.data()), key.prefix_len() as u8);
            identity.local_v6.extend(net.ok());
        }
        Ok(identity)
    }

    /// Makes the maps hold `wanted`: what is gone is removed first, so a
    /// removed address stops being answered even when the maps are full.
    /// Returns what changed, for the log.
    pub fn write(&mut self, wanted: &Identity) -> io::Result<Written> {
        let e = io::Error::other;
        let have = self.read()?;
        let mut changes = Vec::new();
        if have.mac != wanted.mac {
            changes.push(format!("MAC {}", format_mac(&wanted.mac)));
        }
        for key in have.vlans.keys().filter(|k| !wanted.vlans.contains_key(k)) {
            self.vlans.remove(key).map_err(e)?;
            changes.push(format!("VLAN {} gone", vlan_name(*key)));
        }
        for net in have.local_v4.difference(&wanted.local_v4) {
            self.v4
                .remove(&Key::new(net.prefix_len() as u32, net.addr().octets()))
                .map_err(e)?;
            changes.push(format!("{net} no longer local"));
        }
        for net in have.local_v6.difference(&wanted.local_v6) {
            self.v6
                .remove(&Key::new(net.prefix_len() as u32, net.addr().octets()))
                .map_err(e)?;
            changes.push(format!("{net} no longer local"));
        }
        // Between the removals and the additions: an address removed stops
        // being answered, one added is answered once `HOST` or the trie
        // holds it; neither way does the data path see one that is gone.
        let entry = host_self(wanted);
        if self.host.get(&0, 0).map_err(e)? != entry {
            self.host.set(0, entry, 0).map_err(e)?;
        }
        let mut left_out = Vec::new();
        for (key, mac) in &wanted.vlans {
            if have.vlans.get(key) != Some(mac) {
                let link = HostLink {
                    mac: *mac,
                    _pad: [0; 2],
                };
                match self.vlans.insert(key, link, 0) {
                    Ok(()) => changes.push(format!("VLAN {}", vlan_name(*key))),
                    Err(err) => left_out.push(format!("VLAN {}: {err}", vlan_name(*key))),
                }
            }
        }
        for net in wanted.local_v4.difference(&have.local_v4) {
            let key = Key::new(net.prefix_len() as u32, net.addr().octets());
            match self.v4.insert(&key, 1, 0) {
                Ok(()) => changes.push(format!("{net} local")),
                Err(err) => left_out.push(format!("{net}: {err}")),
            }
        }
        for net in wanted.local_v6.difference(&have.local_v6) {
            let key = Key::new(net.prefix_len() as u32, net.addr().octets());
            match self.v6.insert(&key, 1, 0) {
                Ok(()) => changes.push(format!("{net} local")),
                Err(err) => left_out.push(format!("{net}: {err}")),
            }
        }
        Ok(Written { changes, left_out })
    }
}

/// The `HOST` entry for an identity: its MAC, and its first host
/// addresses inline, with `more_*` set where the tries hold others.
pub fn host_self(identity: &Identity) -> HostSelf {
    let mut entry = HostSelf {
        mac: identity.mac,
        ..HostSelf::default()
    };
    for net in &identity.local_v4 {
        let n = entry.n_v4 as usize;
        if net.prefix_len() == 32 && n < host::INLINE_V4 {
            // As the data path reads it: the bytes as one word.
            entry.v4[n] = u32::from_le_bytes(net.addr().octets());
            entry.n_v4 += 1;
        } else {
            entry.more_v4 = 1;
        }
    }
    for net in &identity.local_v6 {
        let n = entry.n_v6 as usize;
        if net.prefix_len() == 128 && n < host::INLINE_V6 {
            entry.v6[n] = words_of(&net.addr().octets());
            entry.n_v6 += 1;
        } else {
            entry.more_v6 = 1;
        }
    }
    entry
}

/// What [`HostMaps::write`] did.
#[derive(Debug, Default)]
pub struct Written {
    pub changes: Vec<String>,
    /// What did not fit the maps: SYNs there are not answered from XDP but
    /// go to the kernel (safe, slower in a flood). The caller says so.
    pub left_out: Vec<String>,
}

/// Reads the namespace and writes what `iface`'s data path must know into
/// its pinned maps. Returns what changed.
pub fn sync(layout: &PinLayout, iface: &str, view: &HostView) -> io::Result<Written> {
    let Some(identity) = view.identity(iface) else {
        return Ok(Written::default());
    };
    HostMaps::open(layout, iface)?.write(&identity)
}

pub fn format_mac(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// A VLAN chain key as `ip` names tags: `100`, `ad 10.100`.
pub fn vlan_name(key: u32) -> String {
    let mut parts = Vec::new();
    let mut k = key;
    while k != 0 {
        let tag = k & 0x1fff;
        let id = tag & 0xfff;
        parts.push(if tag & 0x1000 != 0 {
            format!("ad {id}")
        } else {
            id.to_string()
        });
        k >>= 13;
    }
    parts.reverse();
    parts.join(".")
}
