use std::{path::Path, process::ExitCode};

use serde::Serialize;
use xdp_daemon::{
    config::Config,
    features, flood,
    host::HostView,
    lists::{List, ListMaps},
    program,
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
    /// The BPF helpers the XDP program calls that this kernel lacks, by
    /// probing (empty: it has them all); null when probing was not
    /// possible (it needs CAP_BPF).
    missing_helpers: Option<Vec<&'static str>>,
    /// Whether this kernel loads synguard's programs: a trial load of the
    /// embedded object (maps unpinned, nothing attached), so `status`
    /// never calls a kernel fine that then rejects the program. Null when
    /// it could not be tried (it needs CAP_BPF).
    program_loads: Option<bool>,
    /// Why the trial load failed, in one line.
    program_error: Option<String>,
}

pub fn run(cx: &Env, _args: Args) -> anyhow::Result<ExitCode> {
    let daemon = cx.state.daemon_status().ok().flatten();
    let daemon_running = daemon.as_ref().is_some_and(DaemonStatus::alive);
    let (desired, desired_from) = match (&daemon, daemon_running) {
        (Some(d), true) => (d.sysctls.clone(), "the running daemon".to_string()),
        _ => match Config::load(&cx.config) {
            Ok(c) => (c.sysctls, cx.config.display().to_string()),
            Err(_) => (
                sysctl::defaults(),
                "synguard's defaults (no readable config)".into(),
            ),
        },
    };
    let mut interfaces = Vec::new();
    let view = HostView::read().ok();
    for name in cx.layout.attached()? {
        let running = flood::running(&cx.layout, &name).ok();
        let link = view.as_ref().and_then(|v| v.link(&name));
        interfaces.push(IfaceStatus {
            mode: link.and_then(|l| l.xdp).map(String::from),
            present: xdp_daemon::attach::if_index(&name) != 0,
            flood_policy: running.map(|r| r.policy_name()),
            flood_active: running.map(|r| r.engaged),
            dry_run: running.map(|r| r.dry_run),
            syn_rate: running.map(|r| r.state.last_rate),
            over_budget_sources: flood::over_budget(&cx.layout, &name).ok().map(|v| v.len()),
            name,
        });
    }
    let mut list_sizes = Vec::new();
    let mut list_index = None;
    if cx.layout.shared_map(xdp_common::maps::INDEX_V4).exists() {
        let maps = ListMaps::open(&cx.layout)?;
        list_index = maps.index_stats().ok().map(|s| IndexStatus {
            net_groups: s.nets,
            net_groups_max: xdp_common::index::NET_GROUPS,
            host_groups: s.hosts,
            host_groups_max: xdp_common::index::HOST_GROUPS,
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
    let helpers = features::missing_helpers();
    let trial = trial_load();
    let status = Status {
        sysctls: sysctl::show(&desired, &cx.state)?,
        desired_from,
        kernel: Kernel {
            release: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .unwrap_or_default()
                .trim()
                .into(),
            bpffs: cx.layout.root().parent().is_some_and(|p| p.exists()),
            btf: Path::new("/sys/kernel/btf/vmlinux").exists(),
            cookie_options: sysctl::read("net.ipv4.tcp_timestamps").ok() == Some(2),
            missing_helpers: helpers
                .as_ref()
                .ok()
                .map(|missing| missing.iter().map(|h| h.name).collect()),
            program_loads: trial.as_ref().map(Result::is_ok),
            program_error: trial.as_ref().and_then(|t| t.as_ref().err().cloned()),
        },
        daemon,
        daemon_running,
        interfaces,
        lists: list_sizes,
        list_index,
    };
    if cx.json {
        println!("{}", serde_json::to_string_pretty(&status)?);
        return Ok(ExitCode::SUCCESS);
    }
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
    println!(
        "kernel: {} (BTF {}, cookie options {})",
        status.kernel.release,
        if status.kernel.btf { "yes" } else { "no" },
        if status.kernel.cookie_options {
            "on: tcp_timestamps=2"
        } else {
            "off: MSS only (tcp_timestamps is not 2)"
        }
    );
    match &helpers {
        Ok(missing) if missing.is_empty() => {
            println!("  BPF helpers: every one the XDP program calls (probed)")
        }
        Ok(missing) => println!("  {}", features::describe_missing(missing)),
        Err(e) => println!("  BPF helpers: not probed ({e})"),
    }
    match &trial {
        Some(Ok(())) => println!("  XDP programs: load (trial load)"),
        Some(Err(e)) => println!("  XDP programs: REFUSED by this kernel: {e}"),
        None => println!("  XDP programs: not tried (needs root or CAP_BPF)"),
    }
    Ok(ExitCode::SUCCESS)
}

/// Loads the embedded programs with their maps unpinned, and drops them:
/// Some(Err) with the reason in one line if the kernel refuses them, None
/// without the privilege to try.
fn trial_load() -> Option<Result<(), String>> {
    match program::load(None, None) {
        Ok(_) => Some(Ok(())),
        Err(e) => {
            let line = e.to_string();
            let unprivileged = line.contains("Operation not permitted");
            (!unprivileged).then(|| Err(line.lines().next().unwrap_or_default().to_string()))
        }
    }
}
