//! What the program does with a packet, and why: the counters' index.
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

    /// The label value of a packet a dry-run interface passed instead
    /// (docs/design.md#dry-run): `would_drop`, `would_answer`; a pass is
    /// always a pass, an abort always an abort.
    pub const fn would_name(self) -> &'static str {
        match self {
            Verdict::Drop => "would_drop",
            Verdict::Tx => "would_answer",
            other => other.name(),
        }
    }

    /// Whether a dry-run interface passes a packet with this verdict
    /// instead, and counts it as what it would have been.
    pub const fn held_in_dry_run(self) -> bool {
        matches!(self, Verdict::Drop | Verdict::Tx)
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
    /// An IP fragment that cannot hide a TCP handshake (the fragment policy:
    /// docs/design.md#why-these-parsing-choices).
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
    /// A SYN the program meant to answer with a cookie but could not (the
    /// frame could not be resized, its packet runs past the frame's first
    /// buffer, or the cookie path's program is missing from `TAIL`):
    /// handed to the kernel, which answers it.
    CookieFallback = 18,
    /// A SYN in a flood not addressed to this host: a frame for another
    /// MAC, a VLAN the host has no device for, or a destination that is not
    /// one of the namespace's local addresses (a router's forwarded
    /// traffic, a subnet's broadcast). Handed to the kernel, which forwards
    /// or discards it as it would without synguard.
    NotLocal = 19,
}

impl Reason {
    /// How many reasons there are. The counter array holds twice as many
    /// slots: the first `COUNT` for what the program did, the next `COUNT`
    /// (at [`Reason::would_slot`]) for what a dry-run interface would have
    /// done.
    pub const COUNT: u32 = 20;

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
        Reason::CookieFallback,
        Reason::NotLocal,
    ];

    /// The reason of a label value ([`Reason::name`]).
    pub fn by_name(name: &str) -> Option<Reason> {
        Reason::ALL.into_iter().find(|r| r.name() == name)
    }

    /// The counter slot of a packet a dry-run interface passed that
    /// enforcing would have dropped or answered for this reason.
    #[inline(always)]
    pub const fn would_slot(self) -> u32 {
        Reason::COUNT + self as u32
    }

    /// The verdict this reason always comes with.
    pub const fn verdict(self) -> Verdict {
        match self {
            Reason::NonIp
            | Reason::NonTcp
            | Reason::Tcp
            | Reason::Syn
            | Reason::Allowlist
            | Reason::ValidCookie
            | Reason::Fragment
            | Reason::CookieFallback
            | Reason::NotLocal => Verdict::Pass,
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
            Reason::CookieFallback => "cookie_fallback",
            Reason::NotLocal => "not_local",
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
