//! What the host is, as the data path needs it to answer only SYNs the
//! kernel would answer (`synguard_common::host`): each attached interface's MAC,
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
    net::IpAddr,
    os::fd::{AsRawFd, RawFd},
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
use synguard_common::host;

#[cfg(test)]
mod tests;
mod write;

pub use write::{HostMaps, Written, format_mac, host_self, sync, vlan_name};

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
        for _ in 0..synguard_common::limits::MAX_VLAN_TAGS {
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
