//! Reading what the data path keeps per interface about floods: its flood
//! state and the source prefixes it found over their SYN budgets.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use aya::maps::{Array, HashMap, Map, MapData, MapError};
use ipnet::IpNet;
use synguard_common::{FloodMode, FloodState, IfaceSettings, SourceKey, maps};

use crate::pins::PinLayout;

/// How flood mode runs on an attached interface, as its data path has it.
#[derive(Clone, Copy, Debug)]
pub struct Running {
    /// The policy in the interface's `CONFIG`.
    pub policy: FloodMode,
    /// Whether SYNs are answered from XDP now: always, or auto with a
    /// flood detected.
    pub engaged: bool,
    /// Dry-run: passing what it would drop or answer.
    pub dry_run: bool,
    pub state: FloodState,
}

impl Running {
    pub fn policy_name(&self) -> &'static str {
        match self.policy {
            FloodMode::Off => "off",
            FloodMode::Auto => "auto",
            FloodMode::Always => "always",
        }
    }
}

/// The flood policy and state of an attached interface: what the data
/// path reads (`xdp-prog` flood.rs `active`), whoever attached it.
pub fn running(layout: &PinLayout, iface: &str) -> Result<Running, MapError> {
    let map = Map::Array(MapData::from_pin(layout.map(iface, maps::CONFIG))?);
    let config: Array<MapData, IfaceSettings> = Array::try_from(map)?;
    let settings = config.get(&0, 0)?;
    let mode = settings.flood_mode;
    let state = state(layout, iface)?;
    let policy = match mode {
        m if m == FloodMode::Always as u32 => FloodMode::Always,
        m if m == FloodMode::Auto as u32 => FloodMode::Auto,
        _ => FloodMode::Off,
    };
    Ok(Running {
        policy,
        engaged: policy == FloodMode::Always || (policy == FloodMode::Auto && state.active != 0),
        dry_run: settings.dry_run != 0,
        state,
    })
}

/// The flood state of an attached interface.
pub fn state(layout: &PinLayout, iface: &str) -> Result<FloodState, MapError> {
    let map = Map::Array(MapData::from_pin(layout.map(iface, maps::FLOOD))?);
    let array: Array<MapData, FloodState> = Array::try_from(map)?;
    array.get(&0, 0)
}

/// Source prefixes over budget on an interface, with the SYNs each had
/// dropped when read.
pub fn over_budget(layout: &PinLayout, iface: &str) -> Result<Vec<(IpNet, u64)>, MapError> {
    let map = Map::LruHashMap(MapData::from_pin(layout.map(iface, maps::OVER_BUDGET))?);
    let hash: HashMap<MapData, SourceKey, u64> = HashMap::try_from(map)?;
    let mut out = Vec::new();
    for item in hash.iter() {
        let (key, dropped) = item?;
        if let Some(net) = source_net(&key) {
            out.push((net, dropped));
        }
    }
    out.sort();
    Ok(out)
}

/// The `n` prefixes with the most SYNs dropped, most first; ties by prefix.
pub fn top(mut nets: Vec<(IpNet, u64)>, n: usize) -> Vec<(IpNet, u64)> {
    nets.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    nets.truncate(n);
    nets
}

/// Forgets prefixes once they were acted on.
pub fn forget_over_budget(layout: &PinLayout, iface: &str, nets: &[IpNet]) -> Result<(), MapError> {
    let map = Map::LruHashMap(MapData::from_pin(layout.map(iface, maps::OVER_BUDGET))?);
    let mut hash: HashMap<MapData, SourceKey, u64> = HashMap::try_from(map)?;
    for net in nets {
        let mut key = SourceKey {
            prefix_len: net.prefix_len().into(),
            addr: [0; 16],
        };
        match net.addr() {
            IpAddr::V4(a) => key.addr[..4].copy_from_slice(&a.octets()),
            IpAddr::V6(a) => key.addr = a.octets(),
        }
        match hash.remove(&key) {
            Ok(()) | Err(MapError::KeyNotFound) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn source_net(key: &SourceKey) -> Option<IpNet> {
    let addr = match key.prefix_len {
        // The data path keys IPv4 by /32 and /24, IPv6 by /128 and /64.
        0..=32 => {
            let a: [u8; 4] = key.addr[..4].try_into().ok()?;
            IpAddr::V4(Ipv4Addr::from(a))
        }
        _ => IpAddr::V6(Ipv6Addr::from(key.addr)),
    };
    IpNet::new(addr, key.prefix_len as u8)
        .ok()
        .map(|n| n.trunc())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_keys_read_back_as_prefixes() {
        let mut key = SourceKey {
            prefix_len: 24,
            addr: [0; 16],
        };
        key.addr[..4].copy_from_slice(&[198, 19, 7, 0]);
        assert_eq!(source_net(&key), Some("198.19.7.0/24".parse().unwrap()));
        let key = SourceKey {
            prefix_len: 64,
            addr: "2001:2:0:ff01::".parse::<Ipv6Addr>().unwrap().octets(),
        };
        assert_eq!(
            source_net(&key),
            Some("2001:2:0:ff01::/64".parse().unwrap())
        );
    }

    #[test]
    fn the_top_prefixes_are_the_most_dropped_first() {
        let net = |s: &str| s.parse::<IpNet>().unwrap();
        let nets = vec![
            (net("198.18.1.0/24"), 5),
            (net("198.18.2.0/24"), 50),
            (net("2001:2::/64"), 7),
            (net("198.18.3.0/24"), 7),
        ];
        assert_eq!(
            top(nets, 3),
            [
                (net("198.18.2.0/24"), 50),
                (net("198.18.3.0/24"), 7),
                (net("2001:2::/64"), 7),
            ]
        );
    }
}
