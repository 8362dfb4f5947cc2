//! Writing a family of rows, and the label every per-interface row has.
use std::fmt;

use prometheus_client::{
    encoding::{DescriptorEncoder, EncodeMetric},
    metrics::{MetricType, counter::ConstCounter, gauge::ConstGauge},
};

pub(super) type Labels = Vec<(&'static str, String)>;

pub(super) fn counter(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    rows: &[(Labels, u64)],
) -> fmt::Result {
    let mut metric = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, value) in rows {
        ConstCounter::new(*value).encode(metric.encode_family(labels)?)?;
    }
    Ok(())
}

pub(super) fn gauge<V>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    rows: &[(Labels, V)],
) -> fmt::Result
where
    V: prometheus_client::encoding::EncodeGaugeValue + Copy + fmt::Debug,
{
    let mut metric = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, value) in rows {
        ConstGauge::new(*value).encode(metric.encode_family(labels)?)?;
    }
    Ok(())
}

/// The label naming an interface, as node_exporter names it (so its
/// series and synguard's join), and as `synguard stats --json` does.
pub(super) const DEVICE: &str = "device";

pub(super) fn device(name: &str) -> Labels {
    vec![(DEVICE, name.to_string())]
}
