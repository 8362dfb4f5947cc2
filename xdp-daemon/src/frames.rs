//! Frames as an operator reads them: one line per frame (addresses, ports,
//! TCP flags), and the source prefix `top` groups by. Parsed with
//! etherparse's lax slicer, so a truncated capture or a malformed frame
//! still says what it can.
use std::{fmt::Write, net::IpAddr};

use etherparse::{LaxNetSlice, LaxSlicedPacket, TransportSlice};
use ipnet::IpNet;

/// The frame's source address, if it has an IP header.
pub fn source(frame: &[u8]) -> Option<IpAddr> {
    let packet = LaxSlicedPacket::from_ethernet(frame).ok()?;
    match packet.net? {
        LaxNetSlice::Ipv4(ip) => Some(IpAddr::V4(ip.header().source_addr())),
        LaxNetSlice::Ipv6(ip) => Some(IpAddr::V6(ip.header().source_addr())),
        LaxNetSlice::Arp(_) => None,
    }
}

/// The /24 (IPv4) or /64 (IPv6) the frame comes from: the networks whose
/// SYN budgets the data path keeps.
pub fn source_prefix(frame: &[u8]) -> Option<IpNet> {
    let addr = source(frame)?;
    let len = if addr.is_ipv4() { 24 } else { 64 };
    IpNet::new(addr, len).ok().map(|n| n.trunc())
}

/// One line: `198.18.0.1:40000 > 198.18.0.2:80 TCP [S] seq 1 ack 0`.
pub fn describe(frame: &[u8]) -> String {
    let Ok(packet) = LaxSlicedPacket::from_ethernet(frame) else {
        return format!("{} bytes, not Ethernet", frame.len());
    };
    let (src, dst): (String, String) = match &packet.net {
        Some(LaxNetSlice::Ipv4(ip)) => (
            ip.header().source_addr().to_string(),
            ip.header().destination_addr().to_string(),
        ),
        Some(LaxNetSlice::Ipv6(ip)) => (
            format!("[{}]", ip.header().source_addr()),
            format!("[{}]", ip.header().destination_addr()),
        ),
        Some(LaxNetSlice::Arp(_)) => return "ARP".into(),
        None => return format!("{} bytes, not IP", frame.len()),
    };
    let mut out = String::new();
    match &packet.transport {
        Some(TransportSlice::Tcp(tcp)) => {
            let flags: String = [
                (tcp.syn(), 'S'),
                (tcp.ack(), '.'),
                (tcp.fin(), 'F'),
                (tcp.rst(), 'R'),
                (tcp.psh(), 'P'),
            ]
            .iter()
            .filter(|(on, _)| *on)
            .map(|(_, c)| *c)
            .collect();
            let _ = write!(
                out,
                "{src}:{} > {dst}:{} TCP [{flags}] seq {} ack {}",
                tcp.source_port(),
                tcp.destination_port(),
                tcp.sequence_number(),
                tcp.acknowledgment_number()
            );
        }
        Some(TransportSlice::Udp(udp)) => {
            let _ = write!(
                out,
                "{src}:{} > {dst}:{} UDP",
                udp.source_port(),
                udp.destination_port()
            );
        }
        Some(_) => {
            let _ = write!(out, "{src} > {dst} ICMP");
        }
        None => {
            let _ = write!(out, "{src} > {dst}");
            if let Some((e, _)) = &packet.stop_err {
                let _ = write!(out, " ({e})");
            }
        }
    }
    out
}
