//! List files: one CIDR or address per line, `#` comments.
use std::{fs, path::Path};

use ipnet::IpNet;

use super::ConfigError;

/// Reads a list file: one CIDR or address per line; `#` starts a comment.
pub fn read_list_file(path: &Path) -> Result<Vec<IpNet>, ConfigError> {
    let text = fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.display().to_string(),
        source,
    })?;
    parse_list(&text).map_err(|(line, what)| ConfigError::At {
        path: path.display().to_string(),
        line,
        what,
    })
}

/// Parses list-file text; an error is (1-based line, reason).
pub fn parse_list(text: &str) -> Result<Vec<IpNet>, (usize, String)> {
    let mut nets = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let entry = line.split('#').next().unwrap_or("").trim();
        if entry.is_empty() {
            continue;
        }
        nets.push(parse_cidr(entry).map_err(|why| (i + 1, why))?);
    }
    Ok(nets)
}

/// Parses a CIDR, or a bare address as a /32 or /128. Host bits set below
/// the prefix are an error: `10.0.0.1/8` is more likely a typo than `10/8`.
pub fn parse_cidr(s: &str) -> Result<IpNet, String> {
    if let Ok(net) = s.parse::<IpNet>() {
        if net.trunc() != net {
            return Err(format!(
                "{s:?} has host bits set below its prefix; did you mean {}?",
                net.trunc()
            ));
        }
        return Ok(net);
    }
    s.parse::<std::net::IpAddr>().map(IpNet::from).map_err(|_| {
        format!("{s:?} is not a CIDR (e.g. 203.0.113.0/24 or 2001:db8::/48) or an address")
    })
}
