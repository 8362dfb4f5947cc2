//! The format of /proc/net/netstat and /proc/net/snmp, read by the daemon
//! (its kernel metrics) and the lab (its flood checks) alike: pairs of
//! lines, `Prefix: name name ...` then `Prefix: value value ...`. Here,
//! with no allocation, because this crate is also built for the XDP
//! program; each caller parses the values as it needs them.

/// Each counter of the text as (prefix, name, value), in file order.
pub fn netstat_fields(text: &str) -> impl Iterator<Item = (&str, &str, &str)> {
    let mut lines = text.lines();
    core::iter::from_fn(move || Some((lines.next()?, lines.next()?)))
        .filter_map(|(names, values)| {
            let (prefix, names) = names.split_once(':')?;
            let (_, values) = values.split_once(':')?;
            Some((prefix, names, values))
        })
        .flat_map(|(prefix, names, values)| {
            names
                .split_whitespace()
                .zip(values.split_whitespace())
                .map(move |(name, value)| (prefix, name, value))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_pair_with_the_values_below_them() {
        let text =
            "TcpExt: SyncookiesSent ListenDrops\nTcpExt: 5 0\nTcp: MaxConn InSegs\nTcp: -1 42\n";
        let mut fields = netstat_fields(text);
        assert_eq!(fields.next(), Some(("TcpExt", "SyncookiesSent", "5")));
        assert_eq!(fields.next(), Some(("TcpExt", "ListenDrops", "0")));
        assert_eq!(fields.next(), Some(("Tcp", "MaxConn", "-1")));
        assert_eq!(fields.next(), Some(("Tcp", "InSegs", "42")));
        assert_eq!(fields.next(), None);
    }

    #[test]
    fn a_header_without_its_values_gives_nothing() {
        assert_eq!(netstat_fields("TcpExt: A B\n").count(), 0);
        assert_eq!(netstat_fields("garbage\nmore\n").count(), 0);
    }
}
