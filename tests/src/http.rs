//! A plain HTTP/1.0 GET, made from inside a namespace: enough to scrape
//! `/metrics` and `/healthz` the way Prometheus does, over real TCP.
use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    time::Duration,
};

use anyhow::{Context, Result};

use crate::netns::Netns;

/// GETs `path` from `addr` in `ns`; returns the status code and body.
pub fn get(ns: &Netns, addr: SocketAddr, path: &str) -> Result<(u16, String)> {
    get_accepting(ns, addr, path, None)
}

/// [`get`], with an `Accept` header when `accept` is given (Prometheus
/// sends one asking for OpenMetrics).
pub fn get_accepting(
    ns: &Netns,
    addr: SocketAddr,
    path: &str,
    accept: Option<&str>,
) -> Result<(u16, String)> {
    let mut stream = ns
        .run(|| TcpStream::connect_timeout(&addr, Duration::from_secs(5)))
        .with_context(|| format!("connecting to {addr} in {}", ns.name()))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let accept = accept
        .map(|a| format!("Accept: {a}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: {addr}\r\n{accept}\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .context("no end of headers in the response")?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("no status in {head:?}"))?;
    Ok((status, body.to_string()))
}

/// One sample line of OpenMetrics text: `name{key="value",...} value`.
#[derive(Debug, PartialEq)]
pub struct Sample<'a> {
    pub name: &'a str,
    /// In the order written.
    pub labels: Vec<(&'a str, &'a str)>,
    pub value: f64,
}

impl Sample<'_> {
    /// The value of label `key`.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
    }
}

/// The samples of OpenMetrics text (as synguard writes it: no commas or
/// quotes inside label values), comments and other lines skipped. The
/// one parser of metrics text for the tests, the demo and the benches.
pub fn samples(body: &str) -> impl Iterator<Item = Sample<'_>> {
    body.lines().filter_map(parse_sample)
}

fn parse_sample(line: &str) -> Option<Sample<'_>> {
    if line.starts_with('#') {
        return None;
    }
    let (series, value) = line.rsplit_once(' ')?;
    let (name, labels) = match series.split_once('{') {
        Some((name, rest)) => (name, parse_labels(rest.strip_suffix('}')?)?),
        None => (series, Vec::new()),
    };
    let value = value.trim().parse().ok()?;
    Some(Sample {
        name,
        labels,
        value,
    })
}

/// `key="value",...` as (key, value) pairs.
fn parse_labels(text: &str) -> Option<Vec<(&str, &str)>> {
    if text.is_empty() {
        return Some(Vec::new());
    }
    text.split(',')
        .map(|kv| {
            let (key, value) = kv.split_once('=')?;
            Some((key, value.strip_prefix('"')?.strip_suffix('"')?))
        })
        .collect()
}

/// The value of the sample `name{labels}` in OpenMetrics text, where
/// `labels` is written as the exposition writes it, e.g.
/// `device="eth0",verdict="drop",reason="blocklist"` (empty: no labels).
pub fn sample(body: &str, name: &str, labels: &str) -> Result<f64> {
    let wanted = parse_labels(labels).with_context(|| format!("labels {labels:?}"))?;
    samples(body)
        .find(|s| s.name == name && s.labels == wanted)
        .map(|s| s.value)
        .with_context(|| {
            if labels.is_empty() {
                format!("no sample {name:?} in the metrics")
            } else {
                format!("no sample \"{name}{{{labels}}}\" in the metrics")
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &str = "# HELP synguard_packets Packets.\n# TYPE synguard_packets counter\nsynguard_packets_total{device=\"a\",verdict=\"drop\",reason=\"rate\"} 30\nsynguard_kernel_listen_drops_total 7\n# EOF\n";

    #[test]
    fn samples_are_read_with_their_labels_and_comments_skipped() {
        let all: Vec<Sample> = samples(BODY).collect();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].name, "synguard_packets_total");
        assert_eq!(all[0].label("device"), Some("a"));
        assert_eq!(all[0].label("reason"), Some("rate"));
        assert_eq!(all[0].label("mode"), None);
        assert_eq!(all[0].value, 30.0);
        assert_eq!(all[1].labels, []);
        assert_eq!(all[1].value, 7.0);
    }

    #[test]
    fn a_sample_is_found_by_name_and_every_label() {
        let labels = r#"device="a",verdict="drop",reason="rate""#;
        assert_eq!(
            sample(BODY, "synguard_packets_total", labels).unwrap(),
            30.0
        );
        assert_eq!(
            sample(BODY, "synguard_kernel_listen_drops_total", "").unwrap(),
            7.0
        );
        let err = sample(
            BODY,
            "synguard_packets_total",
            r#"device="b",verdict="drop",reason="rate""#,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains(r#"device="b""#), "{err}");
        assert!(sample(BODY, "synguard_packets_total", r#"device="a""#).is_err());
    }
}
