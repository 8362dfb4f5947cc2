//! A plain HTTP/1.0 GET, made from inside a namespace: enough to scrape
//! `/metrics` and `/healthz` the way Prometheus does, over real TCP.
use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    time::Duration,
};

use anyhow::{Context, Result, bail};

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

/// The value of the sample `name{labels}` in OpenMetrics text, where
/// `labels` is written as the exposition writes it, e.g.
/// `interface="eth0",verdict="drop",reason="blocklist"` (empty: no labels).
pub fn sample(body: &str, name: &str, labels: &str) -> Result<f64> {
    let wanted = if labels.is_empty() {
        format!("{name} ")
    } else {
        format!("{name}{{{labels}}} ")
    };
    for line in body.lines() {
        if let Some(value) = line.strip_prefix(&wanted) {
            return value
                .trim()
                .parse()
                .with_context(|| format!("sample {line:?}"));
        }
    }
    bail!("no sample {wanted:?} in the metrics")
}
