use std::{collections::BTreeMap, path::Path, process::ExitCode};

use serde::Serialize;
use synguard::{
    bgp, clock,
    config::Config,
    features, flood,
    host::HostView,
    lists::{List, ListMaps},
    state::DaemonStatus,
    sysctl,
};

use super::Env;

/// What synguard is doing: the daemon, each interface and its flood state,
/// list sizes, sysctls (desired vs actual), and what the kernel offers.
#[derive(Debug, clap::Args)]
pub struct Args {}

#[derive(Serialize)]
struct Status {
    daemon: Option<DaemonStatus>,
    daemon_running: bool,
    interfaces: Vec<IfaceStatus>,
    lists: Vec<ListSize>,
    /// The IPv4 list index: how many of its groups are used, and how many
    /// ranges it left to the tries (0 when it holds everything).
    list_index: Option<IndexStatus>,
    sysctls: Vec<sysctl::Row>,
    /// Where the desired sysctls came from.
    desired_from: String,
    kernel: Kernel,
    /// The running daemon's BGP side, when its config has `[bgp]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    bgp: Option<bgp::Status>,
}

#[derive(Serialize)]
struct IfaceStatus {
    name: String,
    /// The attach mode the kernel reports (native, skb), whoever attached.
    mode: Option<String>,
    /// Whether an interface of that name exists in this namespace.
    present: bool,
    /// The flood policy in the data path: auto, always or off.
    flood_policy: Option<&'static str>,
    /// Whether SYNs are answered from XDP now (always, or auto in a flood).
    flood_active: Option<bool>,
    /// Whether it passes what it would drop or answer (dry-run).
    dry_run: Option<bool>,
    syn_rate: Option<u64>,
    over_budget_sources: Option<usize>,
}

#[derive(Serialize)]
struct ListSize {
    list: &'static str,
    entries: usize,
}

#[derive(Serialize)]
struct IndexStatus {
    net_groups: usize,
    net_groups_max: u32,
    host_groups: usize,
    host_groups_max: u32,
    ranges_left_to_the_tries: usize,
}

#[derive(Serialize)]
struct Kernel {
    release: String,
    bpffs: bool,
    btf: bool,
    /// With net.ipv4.tcp_timestamps=2, cookies made at XDP keep window
    /// scaling and SACK; otherwise they carry the MSS only.
    cookie_options: bool,
    /// How synguard runs here because of what the kernel offers: full,
    /// degraded (cookies from XDP carry the MSS only), refused, unknown
    /// (not probed: needs root or CAP_BPF).
    mode: features::Mode,
    /// Why, in one line.
    mode_reason: String,
    /// Each helper, map kind, `xdp_frags` and `xdp_link`, probed.
    features: Vec<features::Feature>,
    /// The names of the features probing found missing.
    missing: Vec<String>,
    /// The BPF helpers the XDP program calls that this kernel lacks, by
    /// probing (empty: it has them all); null when probing was not
    /// possible (it needs CAP_BPF).
    missing_helpers: Option<Vec<String>>,
    /// Whether this kernel loads synguard's programs: a trial load of the
    /// embedded object (maps unpinned, nothing attached), so `status`
    /// never calls a kernel fine that then rejects the program. Null when
    /// it could not be tried (it needs CAP_BPF).
    program_loads: Option<bool>,
    /// Why the trial load failed, in one line.
    program_error: Option<String>,
    /// The kernel's tick as the data path's clock uses it (it reads
    /// jiffies, one load); null where it reads the clock with a helper
    /// call (not measured, or no tick found: `clock`).
    clock_hz: Option<u64>,
    /// How the data path reads its clock, in a few words.
    clock: String,
}

pub fn run(cx: &Env, _args: Args) -> anyhow::Result<ExitCode> {
    let daemon = cx.state.daemon_status().ok().flatten();
    let daemon_running = daemon.as_ref().is_some_and(DaemonStatus::alive);
    let (desired, desired_from) = desired_sysctls(cx, daemon.as_ref(), daemon_running);
    let interfaces = interfaces(cx)?;
    let (lists, list_index) = lists(cx)?;
    let kernel = kernel(cx);
    let status = Status {
        sysctls: sysctl::show(&desired, &cx.state)?,
        desired_from,
        kernel,
        daemon,
        daemon_running,
        interfaces,
        lists,
        list_index,
        bgp: daemon_running
            .then(|| bgp::Status::read(&cx.state))
            .flatten(),
    };
    if cx.json {
        println!("{}", serde_json::to_string_pretty(&status)?);
        return Ok(ExitCode::SUCCESS);
    }
    print_daemon(cx, &status);
    print_interfaces(&status);
    print_lists(&status);
    if let Some(b) = &status.bgp {
        print_bgp(b);
    }
    print_sysctls(&status);
    print_kernel(&status.kernel);
    Ok(ExitCode::SUCCESS)
}

/// The sysctls to compare with, and where they come from: the running
/// daemon's, else the config's, else the defaults.
fn desired_sysctls(
    cx: &Env,
    daemon: Option<&DaemonStatus>,
    daemon_running: bool,
) -> (BTreeMap<String, i64>, String) {
    match (daemon, daemon_running) {
        (Some(d), true) => (d.sysctls.clone(), "the running daemon".to_string()),
        _ => match Config::load(&cx.config) {
            Ok(c) => (c.sysctls, cx.config.display().to_string()),
            Err(_) => (
                sysctl::defaults(),
                "synguard's defaults (no readable config)".into(),
            ),
        },
    }
}

/// Each attached interface, as the pins and the kernel have it.
fn interfaces(cx: &Env) -> anyhow::Result<Vec<IfaceStatus>> {
    let mut interfaces = Vec::new();
    let view = HostView::read().ok();
    for name in cx.layout.attached()? {
        let running = flood::running(&cx.layout, &name).ok();
        let link = view.as_ref().and_then(|v| v.link(&name));
        interfaces.push(IfaceStatus {
            mode: link.and_then(|l| l.xdp).map(String::from),
            present: synguard::attach::if_index(&name) != 0,
            flood_policy: running.map(|r| r.policy_name()),
            flood_active: running.map(|r| r.engaged),
            dry_run: running.map(|r| r.dry_run),
            syn_rate: running.map(|r| r.state.last_rate),
            over_budget_sources: flood::over_budget(&cx.layout, &name).ok().map(|v| v.len()),
            name,
        });
    }
    Ok(interfaces)
}

/// The lists' sizes and the IPv4 index's use, once the lists exist.
fn lists(cx: &Env) -> anyhow::Result<(Vec<ListSize>, Option<IndexStatus>)> {
    let mut list_sizes = Vec::new();
    let mut list_index = None;
    if cx
        .layout
        .shared_map(synguard_common::maps::INDEX_V4)
        .exists()
    {
        let maps = ListMaps::open(&cx.layout)?;
        list_index = maps.index_stats().ok().map(|s| IndexStatus {
            net_groups: s.nets,
            net_groups_max: synguard_common::index::NET_GROUPS,
            host_groups: s.hosts,
            host_groups_max: synguard_common::index::HOST_GROUPS,
            ranges_left_to_the_tries: s.fallbacks,
        });
        for (label, list) in [
            ("blocked", List::Block),
            ("allowed", List::Allow),
            ("martians", List::Martian),
        ] {
            list_sizes.push(ListSize {
                list: label,
                entries: maps.entries(list)?.len(),
            });
        }
    }
    Ok((list_sizes, list_index))
}

/// What the kernel offers synguard, probed now.
fn kernel(cx: &Env) -> Kernel {
    let offers = features::Offers::probe();
    let (mode, mode_reason) = offers.mode();
    let helpers = &offers.features[..features::HELPERS.len()];
    Kernel {
        release: std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim()
            .into(),
        bpffs: cx.layout.root().parent().is_some_and(|p| p.exists()),
        btf: Path::new("/sys/kernel/btf/vmlinux").exists(),
        cookie_options: offers.tcp_timestamps == Some(2),
        mode,
        mode_reason,
        missing: offers.missing().iter().map(|f| f.name.clone()).collect(),
        missing_helpers: helpers
            .iter()
            .map(|h| h.present.map(|p| (!p).then(|| h.name.clone())))
            .collect::<Option<Vec<_>>>()
            .map(|v| v.into_iter().flatten().collect()),
        program_loads: offers.program_loads.as_ref().map(Result::is_ok),
        program_error: offers
            .program_loads
            .as_ref()
            .and_then(|t| t.as_ref().err().cloned()),
        features: offers.features.clone(),
        clock_hz: clock::measured().as_ref().ok().and_then(|c| c.hz()),
        clock: clock::describe(clock::measured()),
    }
}

fn print_daemon(cx: &Env, status: &Status) {
    match (&status.daemon, status.daemon_running) {
        (Some(d), true) => println!(
            "daemon: running (pid {}, config {}{})",
            d.pid,
            d.config.display(),
            d.metrics
                .as_ref()
                .map_or(String::new(), |m| format!(", metrics on {m}"))
        ),
        (Some(d), false) => println!(
            "daemon: not running (pid {} exited without a clean stop; pinned protection stays)",
            d.pid
        ),
        (None, _) => println!("daemon: not running"),
    }
    if let Some(e) = status
        .daemon
        .as_ref()
        .and_then(|d| d.last_reload_error.as_ref())
    {
        println!("  last reload refused: {e}");
    }
    for other in cx.layout.other_versions().unwrap_or_default() {
        println!(
            "warning: {} holds pins of another map layout (another synguard version); \
             this version does not read them",
            other.display()
        );
    }
}

fn print_interfaces(status: &Status) {
    if status.interfaces.is_empty() {
        println!("interfaces: none attached");
    } else {
        println!("interfaces:");
    }
    for i in &status.interfaces {
        println!(
            "  {:<16} mode {:<8} flood {:<6} {:<8} syn/s {:<8} over-budget {}{}{}",
            i.name,
            i.mode.as_deref().unwrap_or("-"),
            i.flood_policy.unwrap_or("?"),
            match i.flood_active {
                Some(true) => "ENGAGED",
                Some(false) => "idle",
                None => "?",
            },
            i.syn_rate.map_or("?".into(), |r| r.to_string()),
            i.over_budget_sources.map_or("?".into(), |n| n.to_string()),
            if i.dry_run == Some(true) {
                "  DRY-RUN (passing what it would drop or answer)"
            } else {
                ""
            },
            if i.present {
                ""
            } else {
                "  (interface missing)"
            }
        );
    }
}

fn print_lists(status: &Status) {
    let sizes: Vec<String> = status
        .lists
        .iter()
        .map(|l| format!("{} {}", l.entries, l.list))
        .collect();
    println!(
        "lists: {}",
        if sizes.is_empty() {
            "not created yet".into()
        } else {
            sizes.join(", ")
        }
    );
    if let Some(i) = &status.list_index {
        println!(
            "IPv4 list index: {} of {} /16 groups, {} of {} /24 groups{}",
            i.net_groups,
            i.net_groups_max,
            i.host_groups,
            i.host_groups_max,
            match i.ranges_left_to_the_tries {
                0 => String::new(),
                n => format!("; full: {n} ranges looked up in the tries (slower, as exact)"),
            }
        );
    }
}

fn print_sysctls(status: &Status) {
    println!("sysctls (desired from {}):", status.desired_from);
    for row in &status.sysctls {
        let show = |v: Option<i64>| v.map_or("-".to_string(), |v| v.to_string());
        println!(
            "  {:<32} desired {:>6}  actual {:>6}{}",
            row.name,
            show(row.desired),
            show(row.actual),
            if row.drifted() { "  DRIFT" } else { "" }
        );
    }
}

fn print_kernel(k: &Kernel) {
    println!(
        "kernel: {} (BTF {}, cookie options {})",
        k.release,
        if k.btf { "yes" } else { "no" },
        if k.cookie_options {
            "on: tcp_timestamps=2"
        } else {
            "off: MSS only (tcp_timestamps is not 2)"
        }
    );
    println!(
        "  synguard runs: {} ({})",
        k.mode.name().to_uppercase(),
        k.mode_reason
    );
    let unprobed: Vec<&str> = k
        .features
        .iter()
        .filter(|f| f.present.is_none())
        .map(|f| f.name.as_str())
        .collect();
    let missing: Vec<&features::Feature> = k
        .features
        .iter()
        .filter(|f| f.present == Some(false))
        .collect();
    if !unprobed.is_empty() {
        println!("  BPF features: not probed (needs root or CAP_BPF)");
    } else if missing.is_empty() {
        println!(
            "  BPF features: every one synguard uses (probed: {} helpers; maps {}; xdp_frags; \
             xdp_link)",
            features::HELPERS.len(),
            k.features
                .iter()
                .filter(|f| f.name.starts_with("map_"))
                .map(|f| f.name.trim_start_matches("map_"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    } else {
        println!("  {}", features::describe_missing(&missing));
    }
    match (&k.program_loads, &k.program_error) {
        (Some(true), _) => println!("  XDP programs: load (trial load)"),
        (Some(false), e) => println!(
            "  XDP programs: REFUSED by this kernel: {}",
            e.as_deref().unwrap_or("")
        ),
        (None, _) => println!("  XDP programs: not tried (needs root or CAP_BPF)"),
    }
    println!("  data path clock: {}", k.clock);
}

/// The BGP lines of `status`.
fn print_bgp(b: &bgp::Status) {
    println!(
        "bgp: speaker {}{}, escalation {}{}",
        b.speaker,
        match &b.speaker_error {
            Some(e) => format!(" FAILING ({e})"),
            None => String::new(),
        },
        b.level.name(),
        if b.dry_run { ", DRY RUN" } else { "" }
    );
    if let Some(why) = &b.overload {
        println!("  overloaded: {why}");
    }
    for s in &b.sessions {
        println!(
            "  session {} AS{} {}{}",
            s.peer,
            s.asn,
            if s.established { "established" } else { "down" },
            if s.flowspec.is_empty() {
                String::new()
            } else {
                format!(", {}", s.flowspec.join(" "))
            }
        );
    }
    for a in &b.announced {
        println!("  announced: {}", a.what);
    }
    for r in &b.refused {
        println!("  refused: {} ({})", r.what, r.why);
    }
    if b.fleet_entries > 0 {
        println!("  fleet: {} blocklist entries installed", b.fleet_entries);
    }
    for e in b.recent.iter().rev().take(5) {
        println!(
            "  {} {} {}",
            humantime::format_rfc3339_seconds(
                std::time::UNIX_EPOCH + std::time::Duration::from_secs(e.at)
            ),
            e.change,
            e.what
        );
    }
}
