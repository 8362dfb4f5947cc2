//! `/metrics` (OpenMetrics text, through prometheus-client; the Prometheus
//! text format to a scraper that does not ask for OpenMetrics) and
//! `/healthz`.
//!
//! Every value is read at scrape time from the pinned maps, the kernel and
//! /proc: nothing is mirrored, so a scrape shows what the data path counted
//! at that moment, and reading never writes to a map the data path uses.
use std::{
    collections::BTreeMap,
    fmt,
    net::SocketAddr,
    sync::{Arc, Mutex},
};

mod entry_drops;
mod families;
mod text_format;

pub use entry_drops::EntryDropsCollector;

use families::{DEVICE, Labels, counter, device, gauge};

use axum::{
    Router,
    extract::State,
    http::{HeaderMap, StatusCode, header},
    response::IntoResponse,
    routing::get,
};
use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric},
    metrics::{MetricType, info::Info},
    registry::Registry,
};
use synguard_common::Reason;

use crate::{
    counters::Counters,
    features, flood, kernel,
    lists::{List, ListMaps},
    pins::PinLayout,
    sysctl,
};

/// What the daemon knows that the maps do not: shared with the collector,
/// updated on reload.
#[derive(Debug, Default)]
pub struct Known {
    /// The attach mode in use, per interface the daemon attached.
    pub modes: BTreeMap<String, String>,
    pub desired_sysctls: BTreeMap<String, i64>,
    /// What the kernel offers, probed once after start-up (it does not
    /// change while the kernel runs; tcp_timestamps is read per scrape).
    pub kernel: Option<features::Offers>,
}

#[derive(Debug)]
struct SynguardCollector {
    layout: PinLayout,
    known: Arc<Mutex<Known>>,
    /// The interfaces the config names (the daemon's list, as /healthz reads it).
    wanted: Arc<Mutex<Vec<String>>>,
}

/// How many source prefixes per interface `synguard_over_budget_top_dropped`
/// shows: enough for a dashboard's table, few enough for the label set.
const TOP_PREFIXES: usize = 10;

impl Collector for SynguardCollector {
    /// Each collector reads its part at scrape time and writes its
    /// families; one that cannot read a source logs it and leaves its
    /// rows out, so the rest of the scrape still happens.
    fn encode(&self, mut enc: DescriptorEncoder) -> fmt::Result {
        let attached = self.layout.attached().unwrap_or_else(|e| {
            tracing::warn!("metrics: listing attached interfaces: {e}");
            Vec::new()
        });
        let (modes, desired, offers) = {
            let known = self.known.lock().expect("not poisoned");
            (
                known.modes.clone(),
                known.desired_sysctls.clone(),
                known.kernel.clone(),
            )
        };
        packets(&mut enc, &self.layout, &attached, &modes)?;
        configured(&mut enc, &self.wanted)?;
        floods(&mut enc, &self.layout, &attached)?;
        lists(&mut enc, &self.layout)?;
        kernel_counters(&mut enc)?;
        sysctls(&mut enc, &desired)?;
        if let Some(offers) = offers {
            kernel_features(&mut enc, offers)?;
        }
        build(&mut enc)
    }
}

/// The interfaces the config asks synguard to protect: one without
/// `synguard_attached` is not protected (an alert's signal; a detached
/// interface's own series just disappear).
fn configured(enc: &mut DescriptorEncoder, wanted: &Mutex<Vec<String>>) -> fmt::Result {
    let rows: Vec<(Labels, i64)> = wanted
        .lock()
        .expect("not poisoned")
        .iter()
        .map(|name| (device(name), 1))
        .collect();
    gauge(
        enc,
        "synguard_configured",
        "1 for each interface the config asks synguard to protect; one without synguard_attached is not protected.",
        &rows,
    )
}
/// The data path's counters per interface (packets and bytes by verdict
/// and reason, and the SYN-ACK and cookie-ACK views of them), and the
/// interfaces attached.
fn packets(
    enc: &mut DescriptorEncoder,
    layout: &PinLayout,
    attached: &[String],
    modes: &BTreeMap<String, String>,
) -> fmt::Result {
    let mut packets = Vec::new();
    let mut bytes = Vec::new();
    let mut syn_acks = Vec::new();
    let mut cookie_acks = Vec::new();
    let mut attached_rows = Vec::new();
    for name in attached {
        let mode = modes.get(name).cloned().unwrap_or_else(|| "adopted".into());
        attached_rows.push((vec![(DEVICE, name.clone()), ("mode", mode)], 1i64));
        let c = match Counters::read_pinned(&layout.counters(name)) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("metrics: counters of {name}: {e}");
                continue;
            }
        };
        for (verdict, reason, counter) in c.labelled() {
            let labels: Labels = vec![
                (DEVICE, name.clone()),
                ("verdict", verdict.into()),
                ("reason", reason.name().into()),
            ];
            packets.push((labels.clone(), counter.packets));
            bytes.push((labels, counter.bytes));
        }
        syn_acks.push((device(name), c.get(Reason::SynAck).packets));
        for (result, reason) in [
            ("valid", Reason::ValidCookie),
            ("invalid", Reason::BadCookie),
        ] {
            cookie_acks.push((
                vec![(DEVICE, name.clone()), ("result", result.into())],
                c.get(reason).packets,
            ));
        }
    }
    counter(
        enc,
        "synguard_packets",
        "Packets seen by the XDP program, by interface, verdict and reason (would_drop, would_answer: passed in dry-run).",
        &packets,
    )?;
    counter(
        enc,
        "synguard_bytes",
        "Bytes of those packets (whole frames), by interface, verdict and reason.",
        &bytes,
    )?;
    counter(
        enc,
        "synguard_syn_acks_sent",
        "SYN-ACKs with a kernel SYN cookie sent from XDP.",
        &syn_acks,
    )?;
    counter(
        enc,
        "synguard_cookie_acks",
        "ACKs completing a cookie handshake during a flood: valid (passed) or invalid (dropped).",
        &cookie_acks,
    )?;
    gauge(
        enc,
        "synguard_attached",
        "1 for each interface synguard is attached to, with its attach mode.",
        &attached_rows,
    )
}

/// Flood detection and budgets per interface.
fn floods(enc: &mut DescriptorEncoder, layout: &PinLayout, attached: &[String]) -> fmt::Result {
    let mut flood_active = Vec::new();
    let mut syn_rate = Vec::new();
    let mut over_budget = Vec::new();
    let mut top = Vec::new();
    for name in attached {
        match flood::running(layout, name) {
            Ok(r) => {
                flood_active.push((device(name), i64::from(r.engaged)));
                syn_rate.push((device(name), r.state.last_rate as i64));
            }
            Err(e) => tracing::warn!("metrics: flood state of {name}: {e}"),
        }
        match flood::over_budget(layout, name) {
            Ok(v) => {
                over_budget.push((device(name), v.len() as i64));
                top.extend(
                    flood::top(v, TOP_PREFIXES)
                        .into_iter()
                        .map(|(net, dropped)| {
                            let mut labels = device(name);
                            labels.push(("prefix", net.to_string()));
                            (labels, dropped as i64)
                        }),
                );
            }
            Err(e) => tracing::warn!("metrics: over-budget sources of {name}: {e}"),
        }
    }
    gauge(
        enc,
        "synguard_flood_active",
        "1 while the interface is in flood mode (SYNs answered from XDP): flood always, or auto with a flood detected.",
        &flood_active,
    )?;
    gauge(
        enc,
        "synguard_syn_rate",
        "SYNs per second on the interface in the last 100 ms window.",
        &syn_rate,
    )?;
    gauge(
        enc,
        "synguard_over_budget_sources",
        "Source prefixes that went over their SYN budget, as the data path remembers them.",
        &over_budget,
    )?;
    gauge(
        enc,
        "synguard_over_budget_top_dropped",
        "SYNs dropped over budget per source prefix, for the interface's top prefixes, until acted on.",
        &top,
    )
}

/// The CIDR lists' sizes, and what the IPv4 list index left to the tries.
fn lists(enc: &mut DescriptorEncoder, layout: &PinLayout) -> fmt::Result {
    let mut list_rows = Vec::new();
    let mut index_rows = Vec::new();
    match ListMaps::open(layout) {
        Ok(maps) => {
            if let Ok(stats) = maps.index_stats() {
                index_rows.push((Vec::new(), stats.fallbacks as i64));
            }
            for (label, list) in [
                ("block", List::Block),
                ("allow", List::Allow),
                ("martian", List::Martian),
            ] {
                match maps.entries(list) {
                    Ok(e) => {
                        list_rows.push((vec![("list", label.to_string())], e.len() as i64));
                    }
                    Err(e) => tracing::warn!("metrics: {}: {e}", list.name()),
                }
            }
        }
        Err(e) => tracing::warn!("metrics: the lists: {e}"),
    }
    gauge(
        enc,
        "synguard_list_entries",
        "Entries in each CIDR list.",
        &list_rows,
    )?;
    gauge(
        enc,
        "synguard_list_index_ranges_in_tries",
        "/16s and /24s the IPv4 list index had no group for, looked up in the tries (slower, as exact); 0 while it holds every list.",
        &index_rows,
    )
}

/// The kernel's TcpExt counters synguard watches.
fn kernel_counters(enc: &mut DescriptorEncoder) -> fmt::Result {
    let netstat = match kernel::netstat() {
        Ok(netstat) => netstat,
        Err(e) => {
            tracing::warn!("metrics: /proc/net/netstat: {e}");
            return Ok(());
        }
    };
    for name in kernel::TCP_EXT {
        let value = netstat.get(&format!("TcpExt.{name}")).copied().unwrap_or(0);
        let metric = format!("synguard_kernel_{}", snake(name));
        counter(
            enc,
            &metric,
            &format!("The kernel's TcpExt {name} counter in synguard's network namespace."),
            &[(Vec::new(), value)],
        )?;
    }
    Ok(())
}

/// The sysctls synguard manages: their values now, and the config's.
fn sysctls(enc: &mut DescriptorEncoder, desired: &BTreeMap<String, i64>) -> fmt::Result {
    let mut actual = Vec::new();
    let mut wanted = Vec::new();
    for name in sysctl::Setting::names() {
        if let Ok(v) = sysctl::read(name) {
            actual.push((vec![("name", name.to_string())], v));
        }
        if let Some(&v) = desired.get(name) {
            wanted.push((vec![("name", name.to_string())], v));
        }
    }
    gauge(
        enc,
        "synguard_sysctl",
        "The current value of each sysctl synguard manages.",
        &actual,
    )?;
    gauge(
        enc,
        "synguard_sysctl_desired",
        "The value the config asks for, per sysctl synguard applies.",
        &wanted,
    )
}

/// What the running kernel offers, probed once after start-up, and the
/// mode synguard runs in because of it (`features`).
fn kernel_features(enc: &mut DescriptorEncoder, mut offers: features::Offers) -> fmt::Result {
    offers.tcp_timestamps = sysctl::read("net.ipv4.tcp_timestamps").ok();
    let rows: Vec<(Labels, i64)> = offers
        .metric_rows()
        .into_iter()
        .map(|(name, present)| (vec![("feature", name)], i64::from(present)))
        .collect();
    gauge(
        enc,
        "synguard_kernel_feature",
        "1 if the running kernel offers what synguard uses, 0 if not, by probing: each BPF helper, map kind, xdp_frags, xdp_link, a trial load of the programs (program_load), and tcp_timestamps_2 (cookies from XDP keep window scaling and SACK).",
        &rows,
    )?;
    let mode = offers.mode().0.name().to_string();
    gauge(
        enc,
        "synguard_kernel_mode",
        "1 for the mode synguard runs in on this kernel: full, degraded (cookies from XDP carry the MSS only), refused, unknown.",
        &[(vec![("mode", mode)], 1i64)],
    )
}

/// synguard's version.
fn build(enc: &mut DescriptorEncoder) -> fmt::Result {
    let info = Info::new(vec![("version", env!("CARGO_PKG_VERSION").to_string())]);
    info.encode(enc.encode_descriptor(
        "synguard_build",
        "synguard's version.",
        None,
        MetricType::Info,
    )?)
}

/// `ListenOverflows` -> `listen_overflows`.
fn snake(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

/// The registry with synguard's collector; `wanted` is the list of
/// interfaces the config names.
pub fn registry(
    layout: PinLayout,
    known: Arc<Mutex<Known>>,
    wanted: Arc<Mutex<Vec<String>>>,
) -> Registry {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(SynguardCollector {
        layout,
        known,
        wanted,
    }));
    registry
}

#[derive(Clone)]
struct App {
    registry: Arc<Registry>,
    layout: PinLayout,
    wanted: Arc<Mutex<Vec<String>>>,
}

/// Serves `/metrics` and `/healthz` on `listener` until the task is dropped.
/// `wanted` is the list of interfaces the config asks for: `/healthz` is 200
/// while each has synguard attached.
pub async fn serve(
    listener: tokio::net::TcpListener,
    registry: Registry,
    layout: PinLayout,
    wanted: Arc<Mutex<Vec<String>>>,
) -> std::io::Result<()> {
    let app = App {
        registry: Arc::new(registry),
        layout,
        wanted,
    };
    let router = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .with_state(app);
    axum::serve(listener, router).await
}

async fn metrics(State(app): State<App>, headers: HeaderMap) -> impl IntoResponse {
    let openmetrics =
        text_format::wants_openmetrics(headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()));
    // Map reads are short syscalls; a blocking thread keeps them off the
    // runtime's only worker.
    let body = tokio::task::spawn_blocking(move || {
        let mut body = String::new();
        prometheus_client::encoding::text::encode(&mut body, &app.registry).map(|()| body)
    })
    .await;
    match body {
        Ok(Ok(body)) if openmetrics => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            body,
        )
            .into_response(),
        Ok(Ok(body)) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, text_format::CONTENT_TYPE)],
            text_format::from_openmetrics(&body),
        )
            .into_response(),
        _ => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "encoding the metrics failed\n",
        )
            .into_response(),
    }
}

async fn healthz(State(app): State<App>) -> impl IntoResponse {
    let wanted = app.wanted.lock().expect("not poisoned").clone();
    let missing: Vec<String> = wanted
        .into_iter()
        .filter(|i| !app.layout.link(i).exists())
        .collect();
    if missing.is_empty() {
        (StatusCode::OK, "ok\n".to_string())
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not attached: {}\n", missing.join(", ")),
        )
    }
}

/// Binds the metrics address (separately, so a taken port fails start-up).
pub async fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_counter_names_become_snake_case() {
        assert_eq!(snake("ListenOverflows"), "listen_overflows");
        assert_eq!(snake("SyncookiesRecv"), "syncookies_recv");
    }
}
