//! What the host is, as the data path needs it to answer only SYNs the
//! kernel would answer (`xdp_common::host`): each attached interface's MAC,
//! its VLAN devices, and the destinations local to the namespace. Read
//! from the kernel over rtnetlink (links, and the local routing table's
//! `local` routes: every address adds one, AnyIP ranges are one), and
//! written into the interface's maps (`HOST`, `VLANS`, `LOCAL_V4`,
//! `LOCAL_V6`): at attach, then by the daemon on every address or link
//! event and once a second.
//!
//! This module is the one writer of those maps.
use std::{
    collections::{BTreeMap, BTreeSet},
    io,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    os::fd::{AsFd, AsRawFd, RawFd},
};

use aya::{
    Ebpf,
    maps::{Array, HashMap, Map, MapData, lpm_trie::Key, lpm_trie::LpmTrie},
};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use netlink_packet_core::{
    NLM_F_DUMP, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload,
};
use netlink_packet_route::{
    AddressFamily, RouteNetlinkMessage,
    link::{
        InfoData, InfoKind, InfoVlan, LinkAttribute, LinkFlags, LinkInfo, LinkMessage, LinkXdp,
        VlanProtocol, XdpAttached,
    },
    route::{RouteAddress, RouteAttribute, RouteMessage, RouteType},
};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};
use xdp_common::{HostLink, HostSelf, host, maps};

use crate::pins::PinLayout;

/// The local routing table (include/uapi/linux/rtnetlink.h `RT_TABLE_LOCAL`).
const RT_TABLE_LOCAL: u32 = 255;
/// rtnetlink multicast groups (include/uapi/linux/rtnetlink.h `RTMGRP_*`).
const RTMGRP_LINK: u32 = 0x1;
const RTMGRP_IPV4_IFADDR: u32 = 0x10;
const RTMGRP_IPV6_IFADDR: u32 = 0x100;

/// One network device, as rtnetlink reports it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    pub mac: Option<[u8; 6]>,
    pub up: bool,
    /// A VLAN device: its lower device's index, tag protocol and id.
    pub vlan: Option<Vlan>,
    /// The XDP attach mode the kernel reports, if a program is attached.
    pub xdp: Option<&'static str>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Vlan {
    pub lower: u32,
    pub ad: bool,
    pub id: u16,
}

/// A `local` route of the local table: a destination the host accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LocalRoute {
    pub net: IpNet,
    /// The device the route is on (an IPv6 link-local address is local
    /// only there).
    pub oif: u32,
}

/// The namespace as the data path needs it.
#[derive(Clone, Debug, Default)]
pub struct HostView {
    pub links: Vec<Link>,
    pub local: Vec<LocalRoute>,
}

/// What the maps of one interface hold.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Identity {
    pub mac: [u8; 6],
    /// VLAN chain key (`host::vlan_key`) and the VLAN device's MAC.
    pub vlans: BTreeMap<u32, [u8; 6]>,
    pub local_v4: BTreeSet<Ipv4Net>,
    pub local_v6: BTreeSet<Ipv6Net>,
}

impl HostView {
    /// Reads the calling thread's network namespace.
    pub fn read() -> io::Result<HostView> {
        let mut nl = Netlink::new()?;
        let links = nl
            .dump(RouteNetlinkMessage::GetLink(LinkMessage::default()))?
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewLink(link) => Some(link_of(&link)),
                _ => None,
            })
            .collect();
        let mut local = Vec::new();
        for family in [AddressFamily::Inet, AddressFamily::Inet6] {
            let mut request = RouteMessage::default();
            request.header.address_family = family;
            request.header.table = RT_TABLE_LOCAL as u8;
            for m in nl.dump(RouteNetlinkMessage::GetRoute(request))? {
                if let RouteNetlinkMessage::NewRoute(route) = m
                    && let Some(route) = local_route(&route)
                {
                    local.push(route);
                }
            }
        }
        Ok(HostView { links, local })
    }

    pub fn link(&self, name: &str) -> Option<&Link> {
        self.links.iter().find(|l| l.name == name)
    }

    /// What the data path on `iface` must know, or None if there is no
    /// such interface. Up VLAN devices on it (and on those, for 802.1ad
    /// over 802.1Q); local routes, but loopback destinations only on
    /// loopback (the kernel drops them elsewhere as martians) and IPv6
    /// link-local ones only on the device they are on.
    pub fn identity(&self, iface: &str) -> Option<Identity> {
        let link = self.link(iface)?;
        let mut identity = Identity {
            mac: link.mac.unwrap_or_default(),
            ..Identity::default()
        };
        let mut on_wire: Vec<(u32, u32)> = vec![(link.index, 0)];
        let mut devices = vec![link.index];
        // Two levels: the parser reads two tags.
        for _ in 0..xdp_common::limits::MAX_VLAN_TAGS {
            let mut next = Vec::new();
            for &(lower, key) in &on_wire {
                for l in &self.links {
                    if let Some(v) = l.vlan
                        && v.lower == lower
                        && l.up
                    {
                        let key = host::vlan_key(key, v.ad, v.id);
                        identity.vlans.insert(key, l.mac.unwrap_or_default());
                        devices.push(l.index);
                        next.push((l.index, key));
                    }
                }
            }
            on_wire = next;
        }
        let loopback = link.index == 1;
        for route in &self.local {
            match route.net {
                IpNet::V4(net) => {
                    if net.addr().is_loopback() && !loopback {
                        continue;
                    }
                    identity.local_v4.insert(net);
                }
                IpNet::V6(net) => {
                    let addr = net.addr();
                    if (addr.is_loopback() && !loopback)
                        || (addr.is_unicast_link_local() && !devices.contains(&route.oif))
                    {
                        continue;
                    }
                    identity.local_v6.insert(net);
                }
            }
        }
        Some(identity)
    }
}

fn link_of(message: &LinkMessage) -> Link {
    let mut link = Link {
        index: message.header.index,
        up: message.header.flags.contains(LinkFlags::Up),
        ..Link::default()
    };
    let mut lower = None;
    for attr in &message.attributes {
        match attr {
            LinkAttribute::IfName(name) => link.name = name.clone(),
            LinkAttribute::Address(mac) if mac.len() == 6 => {
                link.mac = Some(mac[..6].try_into().expect("six bytes"))
            }
            LinkAttribute::Link(index) => lower = Some(*index),
            LinkAttribute::Xdp(xdp) => {
                for x in xdp {
                    if let LinkXdp::Attached(mode) = x {
                        link.xdp = match mode {
                            XdpAttached::Driver => Some("native"),
                            XdpAttached::SocketBuffer => Some("skb"),
                            XdpAttached::Hardware => Some("offload"),
                            XdpAttached::Multiple => Some("multiple"),
                            _ => None,
                        };
                    }
                }
            }
            LinkAttribute::LinkInfo(infos) => {
                let is_vlan = infos
                    .iter()
                    .any(|i| matches!(i, LinkInfo::Kind(InfoKind::Vlan)));
                for info in infos {
                    if let (true, LinkInfo::Data(InfoData::Vlan(vlan))) = (is_vlan, info) {
                        let mut v = Vlan {
                            lower: 0,
                            ad: false,
                            id: 0,
                        };
                        for nla in vlan {
                            match nla {
                                InfoVlan::Id(id) => v.id = *id,
                                InfoVlan::Protocol(p) => v.ad = *p == VlanProtocol::Ieee8021Ad,
                                _ => {}
                            }
                        }
                        link.vlan = Some(v);
                    }
                }
            }
            _ => {}
        }
    }
    if let (Some(v), Some(lower)) = (link.vlan.as_mut(), lower) {
        v.lower = lower;
    }
    link
}

fn local_route(route: &RouteMessage) -> Option<LocalRoute> {
    if route.header.kind != RouteType::Local {
        return None;
    }
    let mut table = route.header.table as u32;
    let mut dst = None;
    let mut oif = 0;
    for attr in &route.attributes {
        match attr {
            RouteAttribute::Table(t) => table = *t,
            RouteAttribute::Destination(RouteAddress::Inet(a)) => dst = Some(IpAddr::V4(*a)),
            RouteAttribute::Destination(RouteAddress::Inet6(a)) => dst = Some(IpAddr::V6(*a)),
            RouteAttribute::Oif(i) => oif = *i,
            _ => {}
        }
    }
    if table != RT_TABLE_LOCAL {
        return None;
    }
    let net = IpNet::new(dst?, route.header.destination_prefix_length).ok()?;
    Some(LocalRoute { net, oif })
}

/// A NETLINK_ROUTE socket for dumps.
struct Netlink {
    socket: Socket,
    sequence: u32,
}

impl Netlink {
    fn new() -> io::Result<Netlink> {
        let mut socket = Socket::new(NETLINK_ROUTE)?;
        socket.bind_auto()?;
        // Let the kernel filter route dumps by table (4.20+); older ones
        // dump every table, and `local_route` filters.
        let _ = socket.set_netlink_get_strict_chk(true);
        socket.connect(&SocketAddr::new(0, 0))?;
        Ok(Netlink {
            socket,
            sequence: 0,
        })
    }

    /// Sends a dump request and collects every answer up to NLMSG_DONE.
    fn dump(&mut self, request: RouteNetlinkMessage) -> io::Result<Vec<RouteNetlinkMessage>> {
        self.sequence += 1;
        let mut packet = NetlinkMessage::new(NetlinkHeader::default(), request.into());
        packet.header.flags = NLM_F_DUMP | NLM_F_REQUEST;
        packet.header.sequence_number = self.sequence;
        packet.finalize();
        let mut buf = vec![0; packet.buffer_len()];
        packet.serialize(&mut buf);
        self.socket.send(&buf, 0)?;
        let mut out = Vec::new();
        let mut receive = vec![0u8; 64 * 1024];
        loop {
            let size = self.socket.recv(&mut &mut receive[..], 0)?;
            let mut offset = 0;
            while offset < size {
                let message: NetlinkMessage<RouteNetlinkMessage> =
                    NetlinkMessage::deserialize(&receive[offset..size])
                        .map_err(|e| io::Error::other(format!("rtnetlink: {e}")))?;
                let length = message.header.length as usize;
                match message.payload {
                    NetlinkPayload::Done(_) => return Ok(out),
                    NetlinkPayload::Error(e) => {
                        return Err(e.to_io());
                    }
                    NetlinkPayload::InnerMessage(m) => out.push(m),
                    _ => {}
                }
                if length == 0 {
                    break;
                }
                offset += length;
            }
        }
    }
}

/// A socket that becomes readable when a link or an address changes in
/// the namespace: the daemon syncs the maps then, not only once a second.
pub struct Events {
    socket: Socket,
}

impl Events {
    pub fn subscribe() -> io::Result<Events> {
        let mut socket = Socket::new(NETLINK_ROUTE)?;
        socket.bind(&SocketAddr::new(
            0,
            RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR,
        ))?;
        socket.set_non_blocking(true)?;
        Ok(Events { socket })
    }

    /// Reads every pending event; whether there was any (or the socket
    /// overflowed, which also calls for a sync).
    pub fn drain(&self) -> bool {
        let mut any = false;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match self.socket.recv(&mut &mut buf[..], 0) {
                Ok(0) => return any,
                Ok(_) => any = true,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return any,
                Err(_) => return true,
            }
        }
    }
}

impl AsRawFd for Events {
    fn as_raw_fd(&self) -> RawFd {
        self.socket.as_raw_fd()
    }
}

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
            entry.v4[n] = net.addr().octets();
            entry.n_v4 += 1;
        } else {
            entry.more_v4 = 1;
        }
    }
    for net in &identity.local_v6 {
        let n = entry.n_v6 as usize;
        if net.prefix_len() == 128 && n < host::INLINE_V6 {
            entry.v6[n] = net.addr().octets();
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

#[cfg(test)]
mod tests {
    use super::*;

    fn link(index: u32, name: &str, mac: u8, vlan: Option<Vlan>) -> Link {
        Link {
            index,
            name: name.into(),
            mac: Some([2, 0, 0, 0, 0, mac]),
            up: true,
            vlan,
            xdp: None,
        }
    }

    fn route(net: &str, oif: u32) -> LocalRoute {
        LocalRoute {
            net: net.parse().unwrap(),
            oif,
        }
    }

    fn view() -> HostView {
        let vlan = |lower, ad, id| Some(Vlan { lower, ad, id });
        let mut down = link(6, "eth0.300", 6, vlan(2, false, 300));
        down.up = false;
        HostView {
            links: vec![
                link(1, "lo", 0, None),
                link(2, "eth0", 2, None),
                link(3, "eth0.100", 3, vlan(2, false, 100)),
                link(4, "eth0.100.7", 4, vlan(3, true, 7)),
                link(5, "eth1", 5, None),
                down,
                link(7, "eth1.100", 7, vlan(5, false, 100)),
            ],
            local: vec![
                route("127.0.0.0/8", 1),
                route("127.0.0.1/32", 1),
                route("::1/128", 1),
                route("198.18.0.2/32", 2),
                route("198.18.9.2/32", 5),
                route("198.18.64.0/24", 1),
                route("2001:2::2/128", 2),
                route("fe80::2/128", 2),
                route("fe80::3/128", 3),
                route("fe80::5/128", 5),
            ],
        }
    }

    #[test]
    fn an_interface_knows_its_mac_its_up_vlans_and_the_namespaces_addresses() {
        let id = view().identity("eth0").unwrap();
        assert_eq!(id.mac, [2, 0, 0, 0, 0, 2]);
        let q100 = host::vlan_key(0, false, 100);
        let ad7 = host::vlan_key(q100, true, 7);
        assert_eq!(
            id.vlans.into_iter().collect::<Vec<_>>(),
            vec![(q100, [2, 0, 0, 0, 0, 3]), (ad7, [2, 0, 0, 0, 0, 4])],
            "eth0.300 is down, eth1.100 is another interface's"
        );
        // The weak host model: eth1's address and the AnyIP range on lo are
        // local on eth0 too; loopback is not, nor eth1's link-local.
        let v4: Vec<String> = id.local_v4.iter().map(|n| n.to_string()).collect();
        assert_eq!(v4, ["198.18.0.2/32", "198.18.9.2/32", "198.18.64.0/24"]);
        let v6: Vec<String> = id.local_v6.iter().map(|n| n.to_string()).collect();
        assert_eq!(v6, ["2001:2::2/128", "fe80::2/128", "fe80::3/128"]);
    }

    #[test]
    fn loopback_keeps_its_loopback_destinations() {
        let id = view().identity("lo").unwrap();
        assert!(id.local_v4.contains(&"127.0.0.0/8".parse().unwrap()));
        assert!(id.local_v6.contains(&"::1/128".parse().unwrap()));
        assert!(view().identity("eth9").is_none());
    }

    #[test]
    fn host_addresses_go_inline_and_the_rest_to_the_tries() {
        let id = view().identity("eth0").unwrap();
        let entry = host_self(&id);
        assert_eq!(entry.mac, [2, 0, 0, 0, 0, 2]);
        // Two /32s inline; the AnyIP /24 only in the trie.
        assert_eq!(entry.n_v4, 2);
        assert_eq!(entry.v4[..2], [[198, 18, 0, 2], [198, 18, 9, 2]]);
        assert_eq!(entry.more_v4, 1);
        // Three /128s: two inline, one left to the trie.
        assert_eq!((entry.n_v6, entry.more_v6), (2, 1));
        let few = Identity {
            local_v4: ["198.18.0.2/32".parse().unwrap()].into(),
            ..Identity::default()
        };
        let entry = host_self(&few);
        assert_eq!(
            (entry.n_v4, entry.more_v4, entry.n_v6, entry.more_v6),
            (1, 0, 0, 0)
        );
    }

    #[test]
    fn vlan_chains_are_named_as_ip_names_them() {
        let q100 = host::vlan_key(0, false, 100);
        assert_eq!(vlan_name(q100), "100");
        assert_eq!(vlan_name(host::vlan_key(q100, true, 7)), "100.ad 7");
        // A priority tag is no tag.
        assert_eq!(host::vlan_key(q100, false, 0), q100);
    }
}
