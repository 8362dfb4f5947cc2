use super::*;
use crate::sysctl;

fn parse(text: &str) -> Result<Config, String> {
    Config::parse(text, Path::new("/etc/synguard/synguard.toml")).map_err(|e| e.to_string())
}

#[test]
fn an_empty_file_gives_the_documented_defaults() {
    let c = parse("").unwrap();
    assert!(c.interfaces.is_empty());
    assert_eq!(c.flood, FloodPolicy::default());
    assert_eq!(c.metrics_listen, Some("127.0.0.1:9720".parse().unwrap()));
    assert_eq!(c.sysctls, sysctl::defaults());
    assert_eq!(c.log_level, "info");
    assert!(!c.keep_attached_on_stop);
    assert_eq!(c.block_over_budget, None);
}

#[test]
fn the_shipped_example_is_valid_and_states_the_defaults() {
    let text = include_str!("../../../packaging/synguard.toml");
    let example = parse(text).unwrap();
    let defaults = parse("").unwrap();
    // The example attaches eth0 and shows commented lists; everything
    // else must equal the defaults it documents.
    assert_eq!(example.flood, defaults.flood);
    assert_eq!(example.sysctls, defaults.sysctls);
    assert_eq!(example.metrics_listen, defaults.metrics_listen);
    assert_eq!(example.block_over_budget, defaults.block_over_budget);
}

#[test]
fn errors_name_file_line_key_and_reason() {
    let err = parse("[flood]\nmode = \"auto\"\nsyn_rate_on = \"lots\"\n").unwrap_err();
    assert!(
        err.starts_with("/etc/synguard/synguard.toml:3: key `flood.syn_rate_on`:"),
        "{err}"
    );
    let err = parse("\n[flood]\nmode = \"sometimes\"\n").unwrap_err();
    assert!(err.contains(":3: key `flood.mode`"), "{err}");
    assert!(err.contains("auto, always or off"), "{err}");
    let err = parse("[lists]\nblock = [\"10.0.0.0/8\",\n  \"10.300.0.0/16\"]\n").unwrap_err();
    assert!(err.contains(":2:"), "{err}");
    assert!(err.contains("is not a CIDR"), "{err}");
    let err = parse("[flood]\nsyn_rate_on = 100\nsyn_rate_off = 200\n").unwrap_err();
    assert!(err.contains(":3: key `flood.syn_rate_off`"), "{err}");
    let err = parse("[metrics]\nlisten = \"localhost\"\n").unwrap_err();
    assert!(err.contains(":2: key `metrics.listen`"), "{err}");
    let err = parse("colour = \"blue\"\n").unwrap_err();
    assert!(
        err.contains(":1:") && err.contains("unknown field `colour`"),
        "{err}"
    );
    let err = parse("[sysctl]\n\"net.ipv4.tcp_syncookies\" = 7\n").unwrap_err();
    assert!(err.contains(":2:") && err.contains("0, 1 or 2"), "{err}");
    let err = parse("[sysctl]\n\"kernel.panic\" = 1\n").unwrap_err();
    assert!(err.contains("does not manage"), "{err}");
    let err =
        parse("[[interface]]\nname = \"eth0\"\n[[interface]]\nname = \"eth0\"\n").unwrap_err();
    assert!(err.contains(":4:") && err.contains("twice"), "{err}");
    let err = parse("[[interface]]\nname = \"a/b\"\n").unwrap_err();
    assert!(err.contains(":2:"), "{err}");
}

#[test]
fn list_files_name_their_own_line() {
    assert_eq!(
        parse_list("# office\n203.0.113.0/24\n\n2001:db8::1 # one host\n").unwrap(),
        vec![
            "203.0.113.0/24".parse::<IpNet>().unwrap(),
            "2001:db8::1/128".parse().unwrap()
        ]
    );
    let (line, why) = parse_list("10.0.0.0/8\n\n10.0.0.1/8\n").unwrap_err();
    assert_eq!(line, 3);
    assert!(why.contains("did you mean 10.0.0.0/8"), "{why}");
    let (line, _) = parse_list("1.2.3.4\nnot-an-address\n").unwrap_err();
    assert_eq!(line, 2);
}

#[test]
fn sysctls_can_be_left_alone_or_changed() {
    let c =
        parse("[sysctl]\n\"net.ipv4.tcp_timestamps\" = \"keep\"\n\"net.core.somaxconn\" = 8192\n")
            .unwrap();
    assert!(!c.sysctls.contains_key("net.ipv4.tcp_timestamps"));
    assert_eq!(c.sysctls["net.core.somaxconn"], 8192);
}

#[test]
fn guarded_ports_are_checked() {
    assert_eq!(
        parse("[flood]\nports = [443, 80]\n").unwrap().flood.ports,
        vec![443, 80]
    );
    let err = parse("[flood]\nports = [443,\n 443]\n").unwrap_err();
    assert!(err.contains(":3:") && err.contains("twice"), "{err}");
    let err = parse("[flood]\nports = [70000]\n").unwrap_err();
    assert!(err.contains(":2: key `flood.ports`"), "{err}");
}

#[test]
fn budgets_can_be_turned_off_and_over_budget_blocks_on() {
    let c = parse("[budgets]\nenabled = false\nblock_over_budget_for = \"5m\"\n").unwrap();
    assert_eq!(c.flood.budget_v4_host.rate, 0);
    assert_eq!(c.block_over_budget, Some(Duration::from_secs(300)));
}

#[test]
fn a_burst_larger_than_a_bucket_holds_is_refused() {
    let max = synguard_common::budget::MAX_BURST;
    let ok = format!("[budgets]\nv4_net = {{ rate = 500, burst = {max} }}\n");
    assert_eq!(parse(&ok).unwrap().flood.budget_v4_net.burst, max);
    let too_big = format!(
        "[budgets]\nv4_net = {{ rate = 500, burst = {} }}\n",
        max + 1
    );
    let err = parse(&too_big).unwrap_err().to_string();
    assert!(
        err.contains(":2:") && err.contains("at most 4294967"),
        "{err}"
    );
}

/// Properties over arbitrary input: the parsers never panic, errors point
/// at a line that exists, and every valid CIDR survives a list file.
#[cfg(test)]
mod props {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use proptest::prelude::*;

    use super::*;

    fn line_count(text: &str) -> usize {
        text.lines().count().max(1)
    }

    fn cidr() -> impl Strategy<Value = IpNet> {
        prop_oneof![
            (any::<u32>(), 0u8..=32)
                .prop_map(|(a, p)| IpNet::new(Ipv4Addr::from(a).into(), p).unwrap().trunc()),
            (any::<u128>(), 0u8..=128)
                .prop_map(|(a, p)| IpNet::new(Ipv6Addr::from(a).into(), p).unwrap().trunc()),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        #[test]
        fn cidr_parsing_never_panics_and_round_trips(s in ".{0,60}") {
            if let Ok(net) = parse_cidr(&s) {
                prop_assert_eq!(parse_cidr(&net.to_string()), Ok(net));
            }
        }

        #[test]
        fn list_files_never_panic_and_name_a_real_line(text in "[0-9a-f:./# \\n]{0,300}") {
            if let Err((line, _)) = parse_list(&text) {
                prop_assert!(line >= 1 && line <= line_count(&text));
            }
        }

        #[test]
        fn configs_never_panic_and_name_a_real_line(text in "(\\PC|\\n){0,300}") {
            if let Err(ConfigError::At { line, .. }) = Config::parse(&text, Path::new("f.toml")) {
                prop_assert!(line >= 1 && line <= line_count(&text) + 1, "line {}", line);
            }
        }

        #[test]
        fn configs_built_from_keys_never_panic(
            key in prop::sample::select(vec!["mode", "syn_rate_on", "syn_rate_off", "hold", "name", "listen", "block", "rate"]),
            table in prop::sample::select(vec!["flood", "budgets", "metrics", "lists", "sysctl", "[interface]"]),
            value in prop::sample::select(vec!["1", "-1", "0", "\"auto\"", "\"10s\"", "[\"10.0.0.0/8\"]", "{ rate = 1, burst = 0 }", "4294967296", "\"\"", "true"]),
        ) {
            let text = format!("[{table}]\n{key} = {value}\n");
            let _ = Config::parse(&text, Path::new("f.toml"));
        }

        #[test]
        fn every_cidr_survives_a_list_file(nets in prop::collection::vec(cidr(), 0..50)) {
            let mut text = String::from("# generated\n");
            for net in &nets {
                text.push_str(&format!("{net}   # entry\n\n"));
            }
            prop_assert_eq!(parse_list(&text).unwrap(), nets);
        }
    }
}
