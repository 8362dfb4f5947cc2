//! Types shared by the XDP program (`xdp-prog`, built for `bpfel-unknown-none`)
//! and synguard's userspace. Every map key and value is defined here once,
//! `#[repr(C)]` and free of implicit padding, so both sides read the same bytes.
#![no_std]

/// What the program did with a packet. Each [`Reason`] belongs to exactly one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// Handed to the kernel (`XDP_PASS`).
    Pass,
    /// Dropped in the driver (`XDP_DROP`).
    Drop,
    /// Answered from XDP (`XDP_TX`), e.g. a SYN-ACK carrying a SYN cookie.
    Tx,
    /// The program hit an internal error (`XDP_ABORTED`); the packet is lost.
    Aborted,
}

impl Verdict {
    /// The label value used in metrics and `--json` output.
    pub const fn name(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Drop => "drop",
            Verdict::Tx => "tx",
            Verdict::Aborted => "aborted",
        }
    }
}

/// Why the program gave a packet its verdict. The discriminant indexes the
/// per-CPU counter array, so the order is part of the map layout: append new
/// reasons at the end and bump [`MAP_LAYOUT_VERSION`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum Reason {
    /// Not IP: ARP, LLDP and other EtherTypes go to the kernel untouched.
    NonIp = 0,
    /// IP but not TCP (ICMP, ICMPv6 and neighbour discovery, UDP, ...).
    NonTcp = 1,
    /// TCP the program has no business with: ACKs and data of flows, RSTs.
    Tcp = 2,
    /// A SYN handed to the kernel (normal mode, or a port synguard does not guard).
    Syn = 3,
    /// The source is allowlisted: every other check skipped.
    Allowlist = 4,
    /// An ACK whose SYN cookie the kernel's helper validated.
    ValidCookie = 5,
    /// An IP fragment that cannot hide a TCP handshake (see the README's
    /// fragment policy).
    Fragment = 6,
    /// A SYN answered from XDP with a SYN-ACK carrying a kernel SYN cookie.
    SynAck = 7,
    /// Truncated or inconsistent headers the kernel would discard too.
    Malformed = 8,
    /// The source matches the blocklist.
    Blocklist = 9,
    /// The source prefix spent its SYN budget during a flood.
    Rate = 10,
    /// An ACK to a listener whose cookie did not validate during a flood.
    BadCookie = 11,
    /// A SYN from an address that cannot be a real source.
    Martian = 12,
    /// A SYN with FIN or RST also set.
    BadFlags = 13,
    /// A SYN during a flood to a port with no listener.
    NoListener = 14,
    /// A fragment that could hide a SYN from the checks: dropped.
    FragmentDrop = 15,
    /// More VLAN tags or IPv6 extension headers than the parser walks: dropped
    /// rather than passed unchecked.
    HeaderChain = 16,
    /// The program failed internally (a helper returned an unexpected error).
    Internal = 17,
}

impl Reason {
    /// How many reasons there are: the length of the counter array.
    pub const COUNT: u32 = 18;

    /// Every reason, in discriminant order.
    pub const ALL: [Reason; Reason::COUNT as usize] = [
        Reason::NonIp,
        Reason::NonTcp,
        Reason::Tcp,
        Reason::Syn,
        Reason::Allowlist,
        Reason::ValidCookie,
        Reason::Fragment,
        Reason::SynAck,
        Reason::Malformed,
        Reason::Blocklist,
        Reason::Rate,
        Reason::BadCookie,
        Reason::Martian,
        Reason::BadFlags,
        Reason::NoListener,
        Reason::FragmentDrop,
        Reason::HeaderChain,
        Reason::Internal,
    ];

    /// The verdict this reason always comes with.
    pub const fn verdict(self) -> Verdict {
        match self {
            Reason::NonIp
            | Reason::NonTcp
            | Reason::Tcp
            | Reason::Syn
            | Reason::Allowlist
            | Reason::ValidCookie
            | Reason::Fragment => Verdict::Pass,
            Reason::SynAck => Verdict::Tx,
            Reason::Malformed
            | Reason::Blocklist
            | Reason::Rate
            | Reason::BadCookie
            | Reason::Martian
            | Reason::BadFlags
            | Reason::NoListener
            | Reason::FragmentDrop
            | Reason::HeaderChain => Verdict::Drop,
            Reason::Internal => Verdict::Aborted,
        }
    }

    /// The label value used in metrics and `--json` output.
    pub const fn name(self) -> &'static str {
        match self {
            Reason::NonIp => "non_ip",
            Reason::NonTcp => "non_tcp",
            Reason::Tcp => "tcp",
            Reason::Syn => "syn",
            Reason::Allowlist => "allowlist",
            Reason::ValidCookie => "valid_cookie",
            Reason::Fragment => "later_fragment",
            Reason::SynAck => "syn_ack",
            Reason::Malformed => "malformed",
            Reason::Blocklist => "blocklist",
            Reason::Rate => "rate",
            Reason::BadCookie => "bad_cookie",
            Reason::Martian => "martian",
            Reason::BadFlags => "bad_flags",
            Reason::NoListener => "no_listener",
            Reason::FragmentDrop => "fragment",
            Reason::HeaderChain => "header_chain",
            Reason::Internal => "internal",
        }
    }
}

/// One counter slot: packets and bytes (whole frames as XDP sees them).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct Counter {
    pub packets: u64,
    pub bytes: u64,
}

/// Bump this whenever a map's key or value layout changes: userspace pins maps
/// under a directory named after it, so a new build never misreads old maps.
pub const MAP_LAYOUT_VERSION: u32 = 1;

/// Names of the maps, as declared in the XDP program and pinned by userspace.
pub mod maps {
    /// `PerCpuArray<Counter>` indexed by `Reason`.
    pub const COUNTERS: &str = "COUNTERS";
}

/// Bounds of the parser, documented in the README.
pub mod limits {
    /// VLAN tags (802.1Q / 802.1ad) walked before the IP header; a frame with
    /// more is dropped as `header_chain`.
    pub const MAX_VLAN_TAGS: usize = 2;
    /// IPv6 extension headers walked before the upper-layer header; a chain
    /// that is longer is dropped as `header_chain`.
    pub const MAX_IPV6_EXT_HEADERS: usize = 8;
}

#[cfg(feature = "user")]
mod user {
    // SAFETY: plain-old-data, `#[repr(C)]`, two u64 fields, no padding.
    unsafe impl aya::Pod for super::Counter {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_index_the_counter_array_in_order() {
        for (i, reason) in Reason::ALL.iter().enumerate() {
            assert_eq!(
                *reason as usize, i,
                "{reason:?} is out of place in Reason::ALL"
            );
        }
    }

    #[test]
    fn each_verdict_and_reason_label_pair_is_unique() {
        for (i, a) in Reason::ALL.iter().enumerate() {
            for b in &Reason::ALL[i + 1..] {
                assert!(
                    (a.verdict(), a.name()) != (b.verdict(), b.name()),
                    "{a:?} and {b:?} would share metric labels"
                );
            }
        }
    }
}
