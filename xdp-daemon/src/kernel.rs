//! The kernel's own TCP counters that tell whether a flood reaches the
//! listeners: read from /proc/net/netstat of the calling thread's namespace.
use std::{collections::BTreeMap, fs, io};

use synguard_common::procfs::netstat_fields;

/// The TcpExt counters synguard reports, by the kernel's name.
pub const TCP_EXT: &[&str] = &[
    "ListenOverflows",
    "ListenDrops",
    "SyncookiesSent",
    "SyncookiesRecv",
    "SyncookiesFailed",
];

/// Every counter of /proc/net/netstat, keyed `TcpExt.ListenDrops` and so on.
pub fn netstat() -> io::Result<BTreeMap<String, u64>> {
    // /proc/thread-self follows the calling thread's namespace.
    let text = fs::read_to_string("/proc/thread-self/net/netstat")?;
    Ok(parse_netstat(&text))
}

/// The counters keyed `Prefix.Name`; a value that is not a count is left
/// out.
fn parse_netstat(text: &str) -> BTreeMap<String, u64> {
    netstat_fields(text)
        .filter_map(|(prefix, name, value)| Some((format!("{prefix}.{name}"), value.parse().ok()?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn netstat_pairs_names_with_values() {
        let text = "TcpExt: SyncookiesSent SyncookiesRecv ListenDrops\nTcpExt: 5 3 0\nIpExt: InOctets\nIpExt: 99\n";
        let m = parse_netstat(text);
        assert_eq!(m["TcpExt.SyncookiesSent"], 5);
        assert_eq!(m["TcpExt.ListenDrops"], 0);
        assert_eq!(m["IpExt.InOctets"], 99);
    }
}
