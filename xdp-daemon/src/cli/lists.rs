//! `block`, `unblock`, `allow`, `unallow` and `list`: the CIDR lists every
//! interface shares, changed in the data path at once.
use std::process::ExitCode;

use anyhow::Context;
use ipnet::IpNet;
use serde::Serialize;
use xdp_daemon::{
    lists::{self, List},
    pins::PinLayout,
};

/// A CIDR (or a bare address, taken as /32 or /128).
#[derive(Debug, clap::Args)]
pub struct Cidr {
    #[arg(value_parser = parse_cidr)]
    cidr: IpNet,
}

fn parse_cidr(s: &str) -> Result<IpNet, String> {
    s.parse::<IpNet>()
        .or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from))
        .map_err(|_| {
            format!("{s:?} is not a CIDR (e.g. 203.0.113.0/24 or 2001:db8::/48) or an address")
        })
}

/// Which list `list` shows.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Which {
    Blocked,
    Allowed,
    Martians,
}

pub fn add(layout: &PinLayout, list: List, args: Cidr) -> anyhow::Result<ExitCode> {
    let new = lists::add(layout, list, args.cidr, 0)
        .with_context(|| format!("cannot add {} to the {}", args.cidr, list.name()))?;
    if new {
        println!("added {} to the {}", args.cidr.trunc(), list.name());
    } else {
        println!(
            "{} is already in the {}; nothing to do",
            args.cidr.trunc(),
            list.name()
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub fn remove(layout: &PinLayout, list: List, args: Cidr) -> anyhow::Result<ExitCode> {
    let removed = lists::remove(layout, list, args.cidr)
        .with_context(|| format!("cannot remove {} from the {}", args.cidr, list.name()))?;
    if removed {
        println!("removed {} from the {}", args.cidr.trunc(), list.name());
    } else {
        println!(
            "{} is not in the {}; nothing to do",
            args.cidr.trunc(),
            list.name()
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Serialize)]
struct Entry {
    cidr: String,
    /// Unix seconds; absent: never.
    #[serde(skip_serializing_if = "Option::is_none")]
    expires: Option<u64>,
}

pub fn show(layout: &PinLayout, which: Option<Which>, json: bool) -> anyhow::Result<ExitCode> {
    let which = which.unwrap_or(Which::Blocked);
    let list = match which {
        Which::Blocked => List::Block,
        Which::Allowed => List::Allow,
        Which::Martians => List::Martian,
    };
    let entries: Vec<Entry> = lists::entries(layout, list)
        .with_context(|| format!("cannot read the {}", list.name()))?
        .into_iter()
        .map(|(net, expires)| Entry {
            cidr: net.to_string(),
            expires: (expires != 0).then_some(expires),
        })
        .collect();
    if json {
        println!("{}", serde_json::to_string_pretty(&entries)?);
    } else if entries.is_empty() {
        println!("the {} is empty", list.name());
    } else {
        for e in &entries {
            println!("{}", e.cidr);
        }
    }
    Ok(ExitCode::SUCCESS)
}
