//! The one place that knows the BGP speaker is GoBGP: announcements and
//! withdrawals, reading back what synguard announced, the fleet's routes
//! and the sessions, all through the `gobgp` client of the same Debian
//! package as the daemon, talking to its API socket. Each call is a short
//! process with a deadline, so a hung speaker cannot stall the daemon.
use std::{
    io::Read,
    net::IpAddr,
    path::PathBuf,
    process::{Command, Stdio},
    sync::mpsc,
    time::Duration,
};

use ipnet::IpNet;
use serde_json::Value;

use super::{
    Announcement,
    config::{BLACKHOLE, Community, FlowAction},
};

/// How long one client call may take.
const DEADLINE: Duration = Duration::from_secs(5);

/// The FlowSpec tcp-flags match for a connection's first SYN: SYN set AND
/// ACK clear (a bare `S` would also match the SYN-ACKs of the host's own
/// outbound connections).
const SYN_NOT_ACK: &str = "S&!A";

/// GoBGP's `session_state` for an established session (api/gobgp.proto
/// `PeerState.SessionState`).
const ESTABLISHED: u64 = 6;

#[derive(Debug, thiserror::Error)]
pub enum SpeakerError {
    #[error("running {bin}: {source}")]
    Spawn {
        bin: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`gobgp {args}` gave no answer within {DEADLINE:?}; killed")]
    Timeout { args: String },
    #[error("`gobgp {args}` failed: {stderr}")]
    Failed { args: String, stderr: String },
    #[error("`gobgp {args}` printed what synguard cannot read: {why}")]
    Parse { args: String, why: String },
}

/// One BGP session of the speaker.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Session {
    pub peer: String,
    pub asn: u32,
    pub established: bool,
    /// The FlowSpec families both sides negotiated ("ipv4-flowspec"...):
    /// a family the peer did not negotiate is dropped in silence.
    pub flowspec: Vec<String>,
}

/// A route from another speaker that carries a given community.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Received {
    pub net: IpNet,
    pub from: String,
}

pub struct Gobgp {
    bin: PathBuf,
    target: String,
}

fn family_of(net: &IpNet, flowspec: bool) -> &'static str {
    match (net.addr().is_ipv4(), flowspec) {
        (true, false) => "ipv4",
        (false, false) => "ipv6",
        (true, true) => "ipv4-flowspec",
        (false, true) => "ipv6-flowspec",
    }
}

impl Gobgp {
    pub fn new(bin: PathBuf, api: &str) -> Gobgp {
        // gobgp's --target takes unix:///path.sock and host:port alike.
        Gobgp {
            bin,
            target: api.to_string(),
        }
    }

    /// Runs `gobgp --target T args...` and returns its stdout.
    fn call(&self, args: &[String]) -> Result<String, SpeakerError> {
        let shown = args.join(" ");
        let mut child = Command::new(&self.bin)
            .arg("--target")
            .arg(&self.target)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| SpeakerError::Spawn {
                bin: self.bin.display().to_string(),
                source,
            })?;
        let pid = child.id();
        let mut stdout = child.stdout.take().expect("piped");
        let mut stderr = child.stderr.take().expect("piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut out = String::new();
            let mut err = String::new();
            let _ = stdout.read_to_string(&mut out);
            let _ = stderr.read_to_string(&mut err);
            let status = child.wait();
            let _ = tx.send((status, out, err));
        });
        match rx.recv_timeout(DEADLINE) {
            Ok((Ok(status), out, err)) => {
                // gobgp exits 0 on some errors and prints them.
                if status.success() && !err.contains("rpc error") {
                    Ok(out)
                } else {
                    Err(SpeakerError::Failed {
                        args: shown,
                        stderr: format!("{} {}", err.trim(), out.trim()).trim().to_string(),
                    })
                }
            }
            Ok((Err(source), _, _)) => Err(SpeakerError::Spawn {
                bin: self.bin.display().to_string(),
                source,
            }),
            Err(_) => {
                // SAFETY: kill(2) on a child we started; the thread that
                // reaps it is still waiting, so the pid is not reused.
                unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
                Err(SpeakerError::Timeout { args: shown })
            }
        }
    }

    /// The match (and for an add, the action and communities) of an
    /// announcement, as `gobgp global rib -a FAMILY add|del ...` takes it.
    pub fn args(a: &Announcement, add: bool, marker: Community) -> Vec<String> {
        let mut args: Vec<String> = vec!["global".into(), "rib".into(), "-a".into()];
        let s = |x: &str| x.to_string();
        match a {
            Announcement::Flowspec { dst, ports, action } => {
                args.push(family_of(dst, true).into());
                args.push(if add { s("add") } else { s("del") });
                args.extend([s("match"), s("destination"), dst.to_string()]);
                args.extend([s("protocol"), s("tcp"), s("tcp-flags"), s(SYN_NOT_ACK)]);
                if !ports.is_empty() {
                    let ops: Vec<String> = ports.iter().map(|p| format!("=={p}")).collect();
                    args.extend([s("destination-port"), ops.join("|")]);
                }
                if add {
                    args.push(s("then"));
                    match action {
                        FlowAction::Discard => args.push(s("discard")),
                        FlowAction::RateLimit { bytes_per_second } => {
                            args.extend([s("rate-limit"), bytes_per_second.to_string()]);
                        }
                    }
                    args.extend([s("community"), marker.to_string()]);
                }
            }
            Announcement::Upstream { src } => {
                args.push(family_of(src, true).into());
                args.push(if add { s("add") } else { s("del") });
                args.extend([s("match"), s("source"), src.to_string()]);
                if add {
                    args.extend([s("then"), s("discard"), s("community"), marker.to_string()]);
                }
            }
            Announcement::Rtbh { dst, community } => {
                args.push(family_of(dst, false).into());
                args.push(if add { s("add") } else { s("del") });
                args.push(dst.to_string());
                if add {
                    args.extend([s("community"), format!("{community},{marker}")]);
                }
            }
            Announcement::Share { net, community } => {
                args.push(family_of(net, false).into());
                args.push(if add { s("add") } else { s("del") });
                args.push(net.to_string());
                if add {
                    args.extend([s("community"), format!("{community},{marker}")]);
                }
            }
        }
        args
    }

    pub fn announce(&self, a: &Announcement, marker: Community) -> Result<(), SpeakerError> {
        self.call(&Self::args(a, true, marker)).map(drop)
    }

    pub fn withdraw(&self, a: &Announcement, marker: Community) -> Result<(), SpeakerError> {
        self.call(&Self::args(a, false, marker)).map(drop)
    }

    /// The global RIB of one family as JSON: destination -> paths.
    fn rib(&self, family: &str) -> Result<serde_json::Map<String, Value>, SpeakerError> {
        let args: Vec<String> = ["global", "rib", "-a", family, "-j"]
            .map(String::from)
            .into();
        let text = self.call(&args)?;
        if text.trim().is_empty() {
            return Ok(serde_json::Map::new());
        }
        match serde_json::from_str(&text) {
            Ok(Value::Object(map)) => Ok(map),
            Ok(Value::Null) => Ok(serde_json::Map::new()),
            Ok(_) => Err(SpeakerError::Parse {
                args: args.join(" "),
                why: "not an object".into(),
            }),
            Err(e) => Err(SpeakerError::Parse {
                args: args.join(" "),
                why: e.to_string(),
            }),
        }
    }

    /// What this speaker originates with `marker`: synguard's routes, from
    /// this daemon or one before it.
    pub fn announced(&self, marker: Community) -> Result<Vec<Announcement>, SpeakerError> {
        let mut out = Vec::new();
        for family in ["ipv4", "ipv6", "ipv4-flowspec", "ipv6-flowspec"] {
            for (_, paths) in self.rib(family)? {
                for path in paths.as_array().into_iter().flatten() {
                    if !is_local(path) || !communities(path).contains(&marker) {
                        continue;
                    }
                    if let Some(a) = parse_path(path, family.ends_with("flowspec"), marker) {
                        out.push(a);
                    }
                }
            }
        }
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// Unicast routes from other speakers that carry `community`.
    pub fn received(&self, community: Community) -> Result<Vec<Received>, SpeakerError> {
        let mut out = Vec::new();
        for family in ["ipv4", "ipv6"] {
            for (_, paths) in self.rib(family)? {
                for path in paths.as_array().into_iter().flatten() {
                    if is_local(path) || !communities(path).contains(&community) {
                        continue;
                    }
                    let Some(net) = path["nlri"]["prefix"]
                        .as_str()
                        .and_then(|p| p.parse::<IpNet>().ok())
                    else {
                        continue;
                    };
                    let from = path["attrs"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .find(|a| a["type"] == 9)
                        .and_then(|a| a["value"].as_str())
                        .or_else(|| path["neighbor-ip"].as_str())
                        .unwrap_or("?")
                        .to_string();
                    out.push(Received {
                        net: net.trunc(),
                        from,
                    });
                }
            }
        }
        out.sort_by_key(|r| r.net);
        out.dedup_by(|a, b| a.net == b.net);
        Ok(out)
    }

    /// The speaker's sessions, with the FlowSpec families each negotiated.
    pub fn sessions(&self) -> Result<Vec<Session>, SpeakerError> {
        let args: Vec<String> = vec!["neighbor".into(), "-j".into()];
        let text = self.call(&args)?;
        let peers: Value = serde_json::from_str(text.trim()).map_err(|e| SpeakerError::Parse {
            args: args.join(" "),
            why: e.to_string(),
        })?;
        let mut out = Vec::new();
        for peer in peers.as_array().into_iter().flatten() {
            let address = peer["state"]["neighbor_address"]
                .as_str()
                .or_else(|| peer["conf"]["neighbor_address"].as_str())
                .unwrap_or("?")
                .to_string();
            let established = peer["state"]["session_state"].as_u64() == Some(ESTABLISHED);
            let flowspec = if established {
                self.flowspec_families(&address)?
            } else {
                Vec::new()
            };
            out.push(Session {
                asn: peer["conf"]["peer_asn"].as_u64().unwrap_or(0) as u32,
                peer: address,
                established,
                flowspec,
            });
        }
        Ok(out)
    }

    /// The FlowSpec families `peer` and this speaker both announced in
    /// their OPENs: `gobgp neighbor PEER` prints "advertised and received"
    /// for those (the JSON carries them only as packed protobuf).
    fn flowspec_families(&self, peer: &str) -> Result<Vec<String>, SpeakerError> {
        let text = self.call(&["neighbor".into(), peer.to_string()])?;
        Ok(text
            .lines()
            .filter_map(|l| {
                let (family, how) = l.trim().split_once(':')?;
                (family.ends_with("flowspec") && how.trim() == "advertised and received")
                    .then(|| family.to_string())
            })
            .collect())
    }
}

/// Whether a path was originated by this speaker (no peer sent it).
fn is_local(path: &Value) -> bool {
    match path.get("neighbor-ip").and_then(Value::as_str) {
        None => true,
        Some(ip) => ip.parse::<IpAddr>().is_err() || ip == "0.0.0.0" || ip == "::",
    }
}

/// The standard communities of a path (attribute type 8).
fn communities(path: &Value) -> Vec<Community> {
    path["attrs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|a| a["type"] == 8)
        .flat_map(|a| a["communities"].as_array().cloned().unwrap_or_default())
        .filter_map(|c| c.as_u64().map(|c| Community(c as u32)))
        .collect()
}

/// Reads one of synguard's own paths back into the announcement it was.
fn parse_path(path: &Value, flowspec: bool, marker: Community) -> Option<Announcement> {
    let comms = communities(path);
    if !flowspec {
        let net: IpNet = path["nlri"]["prefix"].as_str()?.parse().ok()?;
        let net = net.trunc();
        if comms.contains(&BLACKHOLE) {
            return Some(Announcement::Rtbh {
                dst: net,
                community: BLACKHOLE,
            });
        }
        // A share carries the fleet community; any other of synguard's
        // unicast routes is withdrawn by its prefix alone.
        let community = comms
            .iter()
            .copied()
            .find(|&c| c != marker)
            .unwrap_or(marker);
        return Some(Announcement::Share { net, community });
    }
    let mut dst = None;
    let mut src = None;
    let mut ports = Vec::new();
    for item in path["nlri"]["value"].as_array()? {
        match item["type"].as_u64()? {
            1 => dst = item["value"]["prefix"].as_str()?.parse::<IpNet>().ok(),
            2 => src = item["value"]["prefix"].as_str()?.parse::<IpNet>().ok(),
            5 => {
                for op in item["value"].as_array()? {
                    ports.push(op["value"].as_u64()? as u16);
                }
            }
            _ => {}
        }
    }
    let rate = path["attrs"]
        .as_array()?
        .iter()
        .filter(|a| a["type"] == 16)
        .flat_map(|a| a["value"].as_array().cloned().unwrap_or_default())
        .find(|e| e["subtype"] == 6)
        .and_then(|e| e["rate"].as_f64());
    let action = match rate {
        Some(r) if r > 0.0 => FlowAction::RateLimit {
            bytes_per_second: r as u32,
        },
        _ => FlowAction::Discard,
    };
    match (dst, src) {
        (Some(dst), _) => Some(Announcement::Flowspec {
            dst: dst.trunc(),
            ports,
            action,
        }),
        (None, Some(src)) => Some(Announcement::Upstream { src: src.trunc() }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MARKER: Community = Community(0xffff_1a04);

    #[test]
    fn flowspec_matches_first_syns_on_the_guarded_ports() {
        let a = Announcement::Flowspec {
            dst: "198.18.0.2/32".parse().unwrap(),
            ports: vec![80, 443],
            action: FlowAction::RateLimit {
                bytes_per_second: 9600,
            },
        };
        assert_eq!(
            Gobgp::args(&a, true, MARKER).join(" "),
            "global rib -a ipv4-flowspec add match destination 198.18.0.2/32 protocol tcp \
             tcp-flags S&!A destination-port ==80|==443 then rate-limit 9600 community 65535:6660"
        );
        assert_eq!(
            Gobgp::args(&a, false, MARKER).join(" "),
            "global rib -a ipv4-flowspec del match destination 198.18.0.2/32 protocol tcp \
             tcp-flags S&!A destination-port ==80|==443"
        );
    }

    #[test]
    fn rtbh_and_shares_carry_their_community_and_the_marker() {
        let a = Announcement::Rtbh {
            dst: "2001:2::2/128".parse().unwrap(),
            community: BLACKHOLE,
        };
        assert_eq!(
            Gobgp::args(&a, true, MARKER).join(" "),
            "global rib -a ipv6 add 2001:2::2/128 community 65535:666,65535:6660"
        );
        let s = Announcement::Share {
            net: "198.19.66.0/24".parse().unwrap(),
            community: "65001:100".parse().unwrap(),
        };
        assert_eq!(
            Gobgp::args(&s, false, MARKER).join(" "),
            "global rib -a ipv4 del 198.19.66.0/24"
        );
    }

    #[test]
    fn own_paths_read_back_as_what_was_announced() {
        // As gobgp 3.10 prints them (`global rib -a ipv4-flowspec -j`).
        let rib: Value = serde_json::from_str(r#"{"k":[{"nlri":{"value":[{"type":1,"value":{"prefix":"198.18.0.2/32"}},{"type":3,"value":[{"op":129,"value":6}]},{"type":5,"value":[{"op":1,"value":80},{"op":145,"value":443}]},{"type":9,"value":[{"op":0,"value":2},{"op":194,"value":16}]}]},"age":1,"best":true,"attrs":[{"type":1,"value":2},{"type":8,"communities":[4294908420]},{"type":16,"value":[{"type":128,"subtype":6,"as":0,"rate":1000}]}],"stale":false}]}"#).unwrap();
        let path = &rib["k"][0];
        assert!(is_local(path));
        assert_eq!(communities(path), vec![MARKER]);
        assert_eq!(
            parse_path(path, true, MARKER),
            Some(Announcement::Flowspec {
                dst: "198.18.0.2/32".parse().unwrap(),
                ports: vec![80, 443],
                action: FlowAction::RateLimit {
                    bytes_per_second: 1000
                },
            })
        );
        let rtbh: Value = serde_json::from_str(r#"{"nlri":{"prefix":"198.18.0.2/32"},"attrs":[{"type":8,"communities":[4294902426,4294908420]}],"neighbor-ip":"198.18.9.1"}"#).unwrap();
        assert!(!is_local(&rtbh));
        assert!(matches!(
            parse_path(&rtbh, false, MARKER),
            Some(Announcement::Rtbh { .. })
        ));
    }
}
