//! The Prometheus text format (0.0.4), for scrapers that do not ask for
//! OpenMetrics: `curl | promtool check metrics`, older agents. Prometheus
//! itself asks for OpenMetrics and gets it unchanged.
//!
//! prometheus-client writes only OpenMetrics; the two formats differ, for
//! what synguard serves, in three things rewritten here: a counter's
//! family is named with its `_total` suffix, an info metric is a gauge
//! named `_info`, and there is no `# EOF`.

/// The media type of the text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Whether a request's `Accept` header asks for OpenMetrics.
pub fn wants_openmetrics(accept: Option<&str>) -> bool {
    accept.is_some_and(|a| a.contains("application/openmetrics-text"))
}

/// `openmetrics` (as prometheus-client encodes it) in the text format.
pub fn from_openmetrics(openmetrics: &str) -> String {
    let mut out = String::with_capacity(openmetrics.len());
    // A family's TYPE line follows its HELP line: find each family's type
    // first, so the HELP line gets the same name.
    let mut types = std::collections::BTreeMap::new();
    for line in openmetrics.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ")
            && let Some((name, kind)) = rest.split_once(' ')
        {
            types.insert(name, kind);
        }
    }
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let descriptor = ["# HELP ", "# TYPE "]
            .into_iter()
            .find_map(|p| line.strip_prefix(p).map(|rest| (p, rest)));
        if let Some((prefix, rest)) = descriptor {
            let (name, text) = rest.split_once(' ').unwrap_or((rest, ""));
            let (name, text) = match types.get(name).copied() {
                Some("counter") => (format!("{name}_total"), text),
                Some("info") if prefix == "# TYPE " => (format!("{name}_info"), "gauge"),
                Some("info") => (format!("{name}_info"), text),
                _ => (name.to_string(), text),
            };
            out.push_str(prefix);
            out.push_str(&name);
            out.push(' ');
            out.push_str(text);
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_and_info_are_renamed_and_eof_dropped() {
        let om = "# HELP a_packets Packets.\n# TYPE a_packets counter\n\
                  a_packets_total{x=\"1\"} 3\n\
                  # HELP a_rate Rate.\n# TYPE a_rate gauge\na_rate 7\n\
                  # HELP a_build Version.\n# TYPE a_build info\n\
                  a_build_info{version=\"0.1.0\"} 1\n# EOF\n";
        assert_eq!(
            from_openmetrics(om),
            "# HELP a_packets_total Packets.\n# TYPE a_packets_total counter\n\
             a_packets_total{x=\"1\"} 3\n\
             # HELP a_rate Rate.\n# TYPE a_rate gauge\na_rate 7\n\
             # HELP a_build_info Version.\n# TYPE a_build_info gauge\n\
             a_build_info{version=\"0.1.0\"} 1\n"
        );
    }

    #[test]
    fn prometheus_gets_openmetrics_and_curl_the_text_format() {
        let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert!(wants_openmetrics(Some(prometheus)));
        assert!(!wants_openmetrics(Some("*/*")));
        assert!(!wants_openmetrics(None));
    }
}
