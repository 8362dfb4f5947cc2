//! The BGP side's metrics, read from its status at scrape time.
use std::{
    fmt,
    sync::{Arc, Mutex},
};

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric},
    metrics::{MetricType, counter::ConstCounter, gauge::ConstGauge},
};

use super::{Kind, Status, ladder::Level};

#[derive(Debug)]
pub struct BgpCollector(pub Arc<Mutex<Status>>);

type Labels = Vec<(&'static str, String)>;

fn family<M: EncodeMetric>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    kind: MetricType,
    rows: Vec<(Labels, M)>,
) -> fmt::Result {
    let mut metric = enc.encode_descriptor(name, help, None, kind)?;
    for (labels, value) in rows {
        value.encode(metric.encode_family(&labels)?)?;
    }
    Ok(())
}

impl Collector for BgpCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> fmt::Result {
        let status = self.0.lock().expect("not poisoned").clone();
        routes(&mut enc, &status)?;
        sessions(&mut enc, &status)?;
        escalation(&mut enc, &status)
    }
}

/// The routes carried for synguard, and the changes to them.
fn routes(enc: &mut DescriptorEncoder, status: &Status) -> fmt::Result {
    let announced = Kind::ALL
        .iter()
        .map(|k| {
            let n = status
                .announced
                .iter()
                .filter(|a| a.kind == k.name())
                .count();
            (
                vec![("kind", k.name().to_string())],
                ConstGauge::new(n as i64),
            )
        })
        .collect();
    family(
        enc,
        "synguard_bgp_announcements",
        "Routes the BGP speaker carries for synguard now (in a dry run: would carry), by kind",
        MetricType::Gauge,
        announced,
    )?;
    let mut changes = Vec::new();
    for k in Kind::ALL {
        for change in ["announce", "withdraw"] {
            let n = status
                .changes
                .get(&format!("{} {change}", k.name()))
                .copied()
                .unwrap_or(0);
            changes.push((
                vec![
                    ("kind", k.name().to_string()),
                    ("change", change.to_string()),
                    ("dry_run", status.dry_run.to_string()),
                ],
                ConstCounter::new(n),
            ));
        }
    }
    family(
        enc,
        "synguard_bgp_changes",
        "Announcements and withdrawals since the daemon started",
        MetricType::Counter,
        changes,
    )
}

/// The sessions with the peers, and what FlowSpec each negotiated.
fn sessions(enc: &mut DescriptorEncoder, status: &Status) -> fmt::Result {
    let sessions = status
        .sessions
        .iter()
        .map(|s| {
            (
                vec![("peer", s.peer.clone()), ("asn", s.asn.to_string())],
                ConstGauge::new(i64::from(s.established)),
            )
        })
        .collect();
    family(
        enc,
        "synguard_bgp_session_up",
        "1 while the BGP session with the peer is established",
        MetricType::Gauge,
        sessions,
    )?;
    let flowspec = status
        .sessions
        .iter()
        .map(|s| {
            (
                vec![("peer", s.peer.clone())],
                ConstGauge::new(s.flowspec.len() as i64),
            )
        })
        .collect();
    family(
        enc,
        "synguard_bgp_flowspec_families",
        "FlowSpec families (IPv4, IPv6) the peer negotiated; 0: FlowSpec rules do not reach it",
        MetricType::Gauge,
        flowspec,
    )
}

/// The escalation's level, what the guard rails hold back, the fleet's
/// entries, and the speaker's health.
fn escalation(enc: &mut DescriptorEncoder, status: &Status) -> fmt::Result {
    let level = match status.level {
        Level::Local => 0,
        Level::Flowspec => 1,
        Level::Rtbh => 2,
    };
    family(
        enc,
        "synguard_bgp_escalation_level",
        "0: XDP only; 1: FlowSpec announced; 2: RTBH announced too",
        MetricType::Gauge,
        vec![(Vec::new(), ConstGauge::new(level))],
    )?;
    family(
        enc,
        "synguard_bgp_refused",
        "Announcements the guard rails keep back now",
        MetricType::Gauge,
        vec![(Vec::new(), ConstGauge::new(status.refused.len() as i64))],
    )?;
    family(
        enc,
        "synguard_bgp_fleet_entries",
        "Blocklist entries installed from the fleet",
        MetricType::Gauge,
        vec![(Vec::new(), ConstGauge::new(status.fleet_entries as i64))],
    )?;
    family(
        enc,
        "synguard_bgp_speaker_up",
        "1 if the last call to the BGP speaker succeeded",
        MetricType::Gauge,
        vec![(
            Vec::new(),
            ConstGauge::new(i64::from(status.speaker_error.is_none())),
        )],
    )
}
