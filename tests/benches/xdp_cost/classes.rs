//! The traffic classes: the frames of each, which of synguard's settings
//! it runs under, how it is timed, and what synguard and xdp-filter must
//! do with it.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use anyhow::Result;
use synguard_common::Reason;
use synguard_tests::{
    lab::{OUTSIDE_V4, TARGET_V4},
    packets::{self, Flags, Segment},
    rawbpf as bpf,
};

use crate::{
    BLOCKED, FLEET_BLOCKED, Options, PORT,
    fixture::{Bench, Lists},
};

/// How a class is timed.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Timing {
    /// One frame, `repeat` runs in one call.
    Repeated,
    /// Many frames, one call each.
    Single,
}

/// Which settings synguard runs a class with.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Flood detection on (auto), never reaching its threshold.
    Normal,
    /// Flood mode on, default budgets.
    Flood,
    /// Flood mode on, per-source budgets off (`--no-budgets`).
    FloodNoBudgets,
    /// Flood mode on, budgets of 1 SYN/s: a source stays over its budget
    /// for a whole measurement (same code path as the defaults).
    FloodSpent,
}

pub struct Class {
    pub name: &'static str,
    pub mode: Mode,
    pub timing: Timing,
    pub frames: Vec<Vec<u8>>,
    /// What synguard must do with every frame.
    pub reason: Reason,
    /// What xdp-filter must do with it.
    pub peer_action: u32,
    /// What the kernel's XDP synproxy must do with it, on the classes it
    /// is timed on: SYNs it answers, and cookie ACKs in single calls only
    /// (it grows every frame it checks by up to 40 bytes and never shrinks
    /// it back, so a repeated run would time ever longer frames).
    pub synproxy_action: Option<u32>,
    /// Spend the source's SYN budget before each measurement (it refills
    /// between rounds).
    pub spend_budget: bool,
    /// Which instance of synguard it runs on.
    pub lists: Lists,
    /// The SYN whose cookie the class's ACK carries: its frame is made
    /// afresh every round, as a cookie is valid for two to three minutes
    /// only and a run takes longer.
    pub cookie_of: Option<Segment>,
    /// Every single call gets a frame no earlier call had (`frames` holds
    /// one per call of every round), as in a spoofed flood whose sources
    /// keep changing; else the frames are reused round after round.
    pub fresh: bool,
}

/// Single calls a round for a class over its budget: a budget of 1 SYN/s
/// refills one SYN a second, so the class must be timed well within one
/// (a single call, syscall included, takes tens of µs here).
pub const OVER_BUDGET_CALLS: usize = 2_000;

impl Class {
    /// Single calls per round for this class.
    pub fn calls(&self, options: &Options) -> usize {
        if self.spend_budget {
            options.calls().min(OVER_BUDGET_CALLS)
        } else {
            options.calls()
        }
    }
}

/// `count` SYNs to the listener from as many sources in 10.0.0.0/8 (a
/// bijection of the index, so no two share one), spread over its /24s.
fn fresh_syns_v4(count: usize, target: IpAddr) -> Vec<Vec<u8>> {
    (0..count as u32)
        .map(|i| {
            // An odd multiplier permutes 0..2^24.
            let x = i.wrapping_mul(0x005b_d1e9) & 0x00ff_ffff;
            let [_, a, b, c] = x.to_be_bytes();
            Segment::syn(
                IpAddr::V4(Ipv4Addr::new(10, a, b, c)),
                target,
                1024 + (i % 60000) as u16,
                PORT,
            )
            .numbers(x.wrapping_mul(0x9e37_79b1), 0)
            .frame()
        })
        .collect()
}

/// `count` SYNs from as many hosts of one IPv6 /64, 2001:2:0:ff00::/64.
fn fresh_syns_v6_one_net(count: usize) -> Vec<Vec<u8>> {
    let target = IpAddr::V6(Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 2));
    (0..count as u64)
        .map(|i| {
            let host = i.wrapping_mul(0x9e37_79b9_7f4a_7c15);
            let [a, b, c, d] = [host >> 48, host >> 32, host >> 16, host].map(|w| w as u16);
            Segment::syn(
                IpAddr::V6(Ipv6Addr::new(0x2001, 2, 0, 0xff00, a, b, c, d)),
                target,
                1024 + (i % 60000) as u16,
                PORT,
            )
            .frame()
        })
        .collect()
}

impl Bench<'_> {
    /// The traffic classes, with frames built here and checked below.
    pub fn classes(&mut self, options: &Options) -> Result<Vec<Class>> {
        let fresh_frames = options.rounds() * options.calls();
        let outside = IpAddr::V4(OUTSIDE_V4);
        let target = IpAddr::V4(TARGET_V4);
        let syn = Segment::syn(outside, target, 40000, PORT);
        let cookie_ack = self.cookie_ack(&syn)?;
        let forged = Segment::syn(outside, target, 40000, PORT)
            .flags(Flags::ACK)
            .numbers(0x1234_5679, 0xdead_beef)
            .options(vec![])
            .frame();
        let port = self.client.local_addr()?.port();
        let data = Segment::syn(target, target, port, PORT)
            .flags(Flags {
                psh: true,
                ..Flags::ACK
            })
            .numbers(1, 1)
            .options(vec![])
            .payload(&[0x42; 100])
            .frame();
        let udp = packets::udp(outside, target, 5353, 53, &[0x42; 32]);
        let blocked = Segment::syn(IpAddr::V4(BLOCKED), target, 40000, PORT).frame();
        let fleet_blocked = Segment::syn(IpAddr::V4(FLEET_BLOCKED), target, 40000, PORT).frame();
        // Not in 198.19.0.0/16, whose /24s the other SYN classes spend: a /24
        // this class leaves over its 1 SYN/s budget would drop their SYNs.
        let over_budget = Segment::syn(IpAddr::V4(Ipv4Addr::new(198, 18, 0, 7)), target, 1, PORT);
        let pass = bpf::XDP_PASS;
        Ok(vec![
            Class {
                name: "non-TCP (UDP) pass",
                mode: Mode::Normal,
                timing: Timing::Repeated,
                frames: vec![udp.clone()],
                reason: Reason::NonTcp,
                peer_action: pass,
                synproxy_action: None,
                spend_budget: false,
                lists: Lists::Indexed,
                cookie_of: None,
                fresh: false,
            },
            Class {
                name: "non-TCP (UDP) pass, every list empty",
                mode: Mode::Normal,
                timing: Timing::Repeated,
                frames: vec![udp.clone()],
                reason: Reason::NonTcp,
                peer_action: pass,
                synproxy_action: None,
                spend_budget: false,
                lists: Lists::Empty,
                cookie_of: None,
                fresh: false,
            },
            Class {
                name: "non-TCP (UDP) pass, lists in the tries (no IPv4 index)",
                mode: Mode::Normal,
                timing: Timing::Repeated,
                frames: vec![udp.clone()],
                reason: Reason::NonTcp,
                peer_action: pass,
                synproxy_action: None,
                spend_budget: false,
                lists: Lists::TriesOnly,
                cookie_of: None,
                fresh: false,
            },
            Class {
                name: "blocklisted source: drop",
                mode: Mode::Normal,
                timing: Timing::Repeated,
                frames: vec![blocked.clone()],
                reason: Reason::Blocklist,
                peer_action: bpf::XDP_DROP,
                synproxy_action: None,
                spend_budget: false,
                lists: Lists::Indexed,
                cookie_of: None,
                fresh: false,
            },
            Class {
                name: "blocklisted source, fleet entry (counted per entry): drop",
                mode: Mode::Normal,
                timing: Timing::Repeated,
                frames: vec![fleet_blocked.clone()],
                reason: Reason::Blocklist,
                peer_action: bpf::XDP_DROP,
                synproxy_action: None,
                spend_budget: false,
                lists: Lists::Indexed,
                cookie_of: None,
                fresh: false,
            },
            Class {
                name: "blocklisted source, fleet entry (counted per entry): drop, lists in the tries (no IPv4 index)",
                mode: Mode::Normal,
                timing: Timing::Repeated,
                frames: vec![fleet_blocked],
                reason: Reason::Blocklist,
                peer_action: bpf::XDP_DROP,
                synproxy_action: None,
                spend_budget: false,
                lists: Lists::TriesOnly,
                cookie_of: None,
                fresh: false,
            },
            Class {
                name: "blocklisted source: drop, lists in the tries (no IPv4 index)",
                mode: Mode::Normal,
                timing: Timing::Repeated,
                frames: vec![blocked],
                reason: Reason::Blocklist,
                peer_action: bpf::XDP_DROP,
                synproxy_action: None,
                spend_budget: false,
                lists: Lists::TriesOnly,
                cookie_of: None,
                fresh: false,
            },
            Class {
                name: "SYN, normal mode: pass",
                mode: Mode::Normal,
                timing: Timing::Repeated,
                frames: vec![syn.frame()],
                reason: Reason::Syn,
                peer_action: pass,
                synproxy_action: None,
                spend_budget: false,
                lists: Lists::Indexed,
                cookie_of: None,
                fresh: false,
            },
            Class {
                name: "SYN, flood mode: SYN-ACK (XDP_TX)",
                mode: Mode::Flood,
                timing: Timing::Single,
                frames: packets::spoofed_syns(4096, target, PORT, 0xc0ffee),
                reason: Reason::SynAck,
                peer_action: pass,
                synproxy_action: Some(bpf::XDP_TX),
                spend_budget: false,
                lists: Lists::Indexed,
                cookie_of: None,
                fresh: false,
            },
            Class {
                name: "SYN, flood mode, budgets off: SYN-ACK (XDP_TX)",
                mode: Mode::FloodNoBudgets,
                timing: Timing::Single,
                frames: packets::spoofed_syns(4096, target, PORT, 0xc0ffee),
                reason: Reason::SynAck,
                peer_action: pass,
                synproxy_action: Some(bpf::XDP_TX),
                spend_budget: false,
                lists: Lists::Indexed,
                cookie_of: None,
                fresh: false,
            },
            Class {
                name: "SYN, flood mode, a new source each time: SYN-ACK (XDP_TX)",
                mode: Mode::Flood,
                timing: Timing::Single,
                frames: fresh_syns_v4(fresh_frames, target),
                reason: Reason::SynAck,
                peer_action: pass,
                synproxy_action: Some(bpf::XDP_TX),
                spend_budget: false,
                lists: Lists::Indexed,
                cookie_of: None,
                fresh: true,
            },
            Class {
                name: "SYN, flood mode, source over budget: drop",
                mode: Mode::FloodSpent,
                // A budget refills as time passes; an answered SYN would be
                // rewritten in place, so fresh frames, one call each.
                timing: Timing::Single,
                frames: vec![over_budget.frame()],
                reason: Reason::Rate,
                peer_action: pass,
                synproxy_action: None,
                spend_budget: true,
                lists: Lists::Indexed,
                cookie_of: None,
                fresh: false,
            },
            Class {
                name: "SYN, flood mode, new hosts of an IPv6 /64 over budget: drop",
                mode: Mode::FloodSpent,
                timing: Timing::Single,
                frames: fresh_syns_v6_one_net(fresh_frames),
                reason: Reason::Rate,
                peer_action: pass,
                synproxy_action: None,
                spend_budget: true,
                lists: Lists::Indexed,
                cookie_of: None,
                fresh: true,
            },
            Class {
                name: "valid cookie ACK: pass (single calls)",
                mode: Mode::Flood,
                timing: Timing::Single,
                frames: vec![cookie_ack.clone()],
                reason: Reason::ValidCookie,
                peer_action: pass,
                synproxy_action: Some(pass),
                spend_budget: false,
                lists: Lists::Indexed,
                cookie_of: Some(syn.clone()),
                fresh: false,
            },
            Class {
                name: "forged cookie ACK: drop (single calls)",
                mode: Mode::Flood,
                timing: Timing::Single,
                frames: vec![forged.clone()],
                reason: Reason::BadCookie,
                peer_action: pass,
                synproxy_action: Some(bpf::XDP_DROP),
                spend_budget: false,
                lists: Lists::Indexed,
                cookie_of: None,
                fresh: false,
            },
            Class {
                name: "valid cookie ACK: pass",
                mode: Mode::Flood,
                timing: Timing::Repeated,
                frames: vec![cookie_ack],
                reason: Reason::ValidCookie,
                peer_action: pass,
                synproxy_action: None,
                spend_budget: false,
                lists: Lists::Indexed,
                cookie_of: Some(syn.clone()),
                fresh: false,
            },
            Class {
                name: "forged cookie ACK: drop",
                mode: Mode::Flood,
                timing: Timing::Repeated,
                frames: vec![forged],
                reason: Reason::BadCookie,
                peer_action: pass,
                synproxy_action: None,
                spend_budget: false,
                lists: Lists::Indexed,
                cookie_of: None,
                fresh: false,
            },
            Class {
                name: "established-flow data, normal mode: pass",
                mode: Mode::Normal,
                timing: Timing::Repeated,
                frames: vec![data.clone()],
                reason: Reason::Tcp,
                peer_action: pass,
                synproxy_action: None,
                spend_budget: false,
                lists: Lists::Indexed,
                cookie_of: None,
                fresh: false,
            },
            Class {
                name: "established-flow data, flood mode: pass",
                mode: Mode::Flood,
                timing: Timing::Repeated,
                frames: vec![data],
                reason: Reason::Tcp,
                peer_action: pass,
                synproxy_action: None,
                spend_budget: false,
                lists: Lists::Indexed,
                cookie_of: None,
                fresh: false,
            },
        ])
    }
}
