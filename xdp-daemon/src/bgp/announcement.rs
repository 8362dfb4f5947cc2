//! What synguard has the speaker announce, independent of the speaker.
use std::fmt;

use ipnet::IpNet;

use super::config::{Community, FlowAction};

/// One route synguard has the speaker announce.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Announcement {
    /// TCP with SYN set and ACK clear to `dst` on `ports` (empty: any),
    /// rate-limited or discarded by the upstream (RFC 8955/8956).
    Flowspec {
        dst: IpNet,
        ports: Vec<u16>,
        action: FlowAction,
    },
    /// `dst` with the BLACKHOLE community (RFC 7999): the upstream drops
    /// everything to it.
    Rtbh { dst: IpNet, community: Community },
    /// A blocklist entry for the fleet, with the fleet community.
    Share { net: IpNet, community: Community },
    /// A blocklist entry as a FlowSpec discard of its source range.
    Upstream { src: IpNet },
}

/// What a route is for: the `kind` label of the metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Flowspec,
    Rtbh,
    Share,
    Upstream,
}

impl Kind {
    pub const ALL: [Kind; 4] = [Kind::Flowspec, Kind::Rtbh, Kind::Share, Kind::Upstream];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Flowspec => "flowspec",
            Kind::Rtbh => "rtbh",
            Kind::Share => "share",
            Kind::Upstream => "upstream",
        }
    }
}

impl Announcement {
    pub fn kind(&self) -> Kind {
        match self {
            Announcement::Flowspec { .. } => Kind::Flowspec,
            Announcement::Rtbh { .. } => Kind::Rtbh,
            Announcement::Share { .. } => Kind::Share,
            Announcement::Upstream { .. } => Kind::Upstream,
        }
    }

    /// The prefix it is about.
    pub fn prefix(&self) -> IpNet {
        match self {
            Announcement::Flowspec { dst, .. } | Announcement::Rtbh { dst, .. } => *dst,
            Announcement::Share { net, .. } => *net,
            Announcement::Upstream { src } => *src,
        }
    }
}

impl fmt::Display for Announcement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Announcement::Flowspec { dst, ports, action } => {
                write!(f, "flowspec to {dst} tcp SYN&!ACK")?;
                if !ports.is_empty() {
                    let ports: Vec<String> = ports.iter().map(u16::to_string).collect();
                    write!(f, " port {}", ports.join(","))?;
                }
                match action {
                    FlowAction::Discard => write!(f, " discard"),
                    FlowAction::RateLimit { bytes_per_second } => {
                        write!(f, " rate-limit {bytes_per_second} B/s")
                    }
                }
            }
            Announcement::Rtbh { dst, community } => write!(f, "rtbh {dst} community {community}"),
            Announcement::Share { net, community } => {
                write!(f, "share {net} community {community}")
            }
            Announcement::Upstream { src } => write!(f, "flowspec from {src} discard"),
        }
    }
}
