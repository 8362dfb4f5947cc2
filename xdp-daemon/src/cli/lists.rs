//! `block`, `unblock`, `allow`, `unallow` and `list`: the CIDR lists every
//! interface shares, changed in the data path at once. Comments and origins
//! live in the state directory; expiries in the maps themselves.
use std::{
    collections::BTreeMap,
    process::ExitCode,
    time::{Duration, UNIX_EPOCH},
};

use anyhow::Context;
use ipnet::IpNet;
use serde::Serialize;
use synguard::{
    config::{parse_cidr, parse_duration},
    lists::{
        List, ListMaps,
        entries::{Announce, Entries},
        slots::NO_SLOT,
    },
    state::{Origin, unix_now},
};

use super::Env;

/// A CIDR (or a bare address, taken as /32 or /128).
#[derive(Debug, clap::Args)]
pub struct Cidr {
    #[arg(value_parser = parse_cidr)]
    cidr: IpNet,
}

#[derive(Debug, clap::Args)]
pub struct BlockArgs {
    #[command(flatten)]
    cidr: Cidr,
    /// Block for this long (e.g. 90s, 10m, 1h, 2d), then let it go; the
    /// running daemon removes it when the time is up.
    #[arg(long = "for", value_parser = parse_duration)]
    duration: Option<Duration>,
    /// Why, for whoever reads `synguard list` later.
    #[arg(long)]
    comment: Option<String>,
    /// Also announce it to the fleet: the running daemon announces it with
    /// the `[bgp.fleet]` community, and withdraws it with the entry.
    #[arg(long)]
    share: bool,
    /// Also ask the upstream to drop it: the running daemon announces a
    /// FlowSpec discard for this source range, withdrawn with the entry.
    #[arg(long)]
    upstream: bool,
}

#[derive(Debug, clap::Args)]
pub struct AllowArgs {
    #[command(flatten)]
    cidr: Cidr,
    /// Why, for whoever reads `synguard list` later.
    #[arg(long)]
    comment: Option<String>,
}

/// Which list `list` shows.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Which {
    Blocked,
    Allowed,
    Martians,
}

pub fn block(cx: &Env, args: BlockArgs) -> anyhow::Result<ExitCode> {
    let expires = args.duration.map_or(0, |d| unix_now() + d.as_secs().max(1));
    let bgp = Announce {
        share: args.share,
        upstream: args.upstream,
    };
    let code = add(cx, List::Block, args.cidr.cidr, expires, args.comment, bgp)?;
    if args.share || args.upstream {
        let daemon = cx
            .state
            .daemon_status()
            .ok()
            .flatten()
            .filter(|d| d.alive());
        let bgp_on = daemon.is_some() && synguard::bgp::Status::read(&cx.state).is_some();
        if !bgp_on {
            eprintln!(
                "synguard: no running daemon with [bgp] enabled: {} is blocked here, and \
                 announced once one runs",
                args.cidr.cidr
            );
        } else {
            println!("the running daemon announces it within a second (see `synguard status`)");
        }
    }
    Ok(code)
}

pub fn allow(cx: &Env, args: AllowArgs) -> anyhow::Result<ExitCode> {
    add(
        cx,
        List::Allow,
        args.cidr.cidr,
        0,
        args.comment,
        Announce::default(),
    )
}

fn add(
    cx: &Env,
    list: List,
    net: IpNet,
    expires: u64,
    comment: Option<String>,
    bgp: Announce,
) -> anyhow::Result<ExitCode> {
    let _lock = cx.state.lock().context("taking the state lock")?;
    let new = Entries::new(&cx.layout, &cx.state).add(list, net, expires, comment, bgp)?;
    let until = if expires == 0 {
        String::new()
    } else {
        format!(
            " until {}",
            humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(expires))
        )
    };
    if new {
        println!("added {net} to the {}{until}", list.name());
    } else {
        println!("{net} is already in the {}; updated{until}", list.name());
    }
    Ok(ExitCode::SUCCESS)
}

pub fn remove(cx: &Env, list: List, args: Cidr) -> anyhow::Result<ExitCode> {
    let net = args.cidr;
    let _lock = cx.state.lock().context("taking the state lock")?;
    let removed = Entries::new(&cx.layout, &cx.state).remove(list, net)?;
    if removed {
        println!("removed {net} from the {}", list.name());
    } else {
        println!("{net} is not in the {}; nothing to do", list.name());
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Serialize)]
struct Entry {
    cidr: String,
    /// Unix seconds; absent: never.
    #[serde(skip_serializing_if = "Option::is_none")]
    expires: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    origin: Option<Origin>,
    #[serde(skip_serializing_if = "Option::is_none")]
    comment: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    share: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    upstream: bool,
    /// Counted entries (the fleet's): what it dropped on this node, all
    /// interfaces together, and per interface.
    #[serde(skip_serializing_if = "Option::is_none")]
    dropped: Option<Dropped>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    dropped_by_device: BTreeMap<String, Dropped>,
    /// The entry's counter slot (debugging; reused once the entry goes).
    #[serde(skip_serializing_if = "Option::is_none")]
    counter_slot: Option<u32>,
}

#[derive(Clone, Copy, Default, Serialize)]
struct Dropped {
    packets: u64,
    bytes: u64,
}

pub fn show(cx: &Env, which: Option<Which>) -> anyhow::Result<ExitCode> {
    let list = match which.unwrap_or(Which::Blocked) {
        Which::Blocked => List::Block,
        Which::Allowed => List::Allow,
        Which::Martians => List::Martian,
    };
    let meta = cx.state.list_meta().unwrap_or_default();
    let notes = meta.of(list);
    let maps =
        ListMaps::open(&cx.layout).with_context(|| format!("cannot read the {}", list.name()))?;
    let entries: Vec<Entry> = maps
        .values(list)
        .with_context(|| format!("cannot read the {}", list.name()))?
        .into_iter()
        .map(|(net, value)| {
            let note = notes.and_then(|n| n.get(&net));
            let counted = value.slot != NO_SLOT;
            let mut by_device = BTreeMap::new();
            if counted {
                for drops in maps.entry_drops() {
                    if let Ok(c) = drops.get(value.slot) {
                        by_device.insert(
                            drops.iface.clone(),
                            Dropped {
                                packets: c.packets,
                                bytes: c.bytes,
                            },
                        );
                    }
                }
            }
            Entry {
                cidr: net.to_string(),
                expires: (value.expiry != 0).then_some(value.expiry),
                origin: note.map(|n| n.origin),
                comment: note.and_then(|n| n.comment.clone()),
                share: note.is_some_and(|n| n.share),
                upstream: note.is_some_and(|n| n.upstream),
                dropped: counted.then(|| Dropped {
                    packets: by_device.values().map(|d| d.packets).sum(),
                    bytes: by_device.values().map(|d| d.bytes).sum(),
                }),
                dropped_by_device: by_device,
                counter_slot: counted.then_some(value.slot),
            }
        })
        .collect();
    if cx.json {
        println!("{}", serde_json::to_string_pretty(&entries)?);
    } else if entries.is_empty() {
        println!("the {} is empty", list.name());
    } else {
        let now = unix_now();
        for e in &entries {
            let mut line = e.cidr.clone();
            if let Some(at) = e.expires {
                if at <= now {
                    line.push_str("  (expired; removed by the running daemon)");
                } else {
                    line.push_str(&format!(
                        "  expires in {}",
                        humantime::format_duration(Duration::from_secs(at - now))
                    ));
                }
            }
            if let Some(origin) = e.origin
                && origin != Origin::Cli
            {
                line.push_str(match origin {
                    Origin::Config => "  [config]",
                    Origin::OverBudget => "  [over budget]",
                    Origin::Bgp => "  [fleet]",
                    Origin::Cli => "",
                });
            }
            if e.share {
                line.push_str("  [shared]");
            }
            if e.upstream {
                line.push_str("  [upstream]");
            }
            if let Some(d) = e.dropped {
                line.push_str(&format!("  dropped {} packets here", d.packets));
            }
            if let Some(c) = &e.comment {
                line.push_str(&format!("  # {c}"));
            }
            println!("{line}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
