//! `cargo xtask bench`: synguard's figures, measured side by side in one
//! run on this machine's real kernel.
//!
//! 1. Per-packet cost of the XDP program per traffic class, through
//!    BPF_PROG_TEST_RUN, beside an XDP_PASS floor and xdp-filter
//!    (`tests/benches/xdp_cost/`, run with `cargo bench`: it needs aya
//!    and the embedded program, which xtask must not depend on).
//! 2. The flood lab: each defence under a spoofed SYN flood from the
//!    fastest generator, with real clients connecting through it
//!    ([`flood`], [`defence`]).
//! 3. One CPU: the generator and the target's receive work on one CPU,
//!    as a new user's lab has them, at fixed offered rates, kernel SYN
//!    cookies and synguard side by side, with clients that speak first
//!    and clients that wait for the server's greeting ([`onecpu`]).
//! 4. The soak: the daemon held for minutes under that flood, with steady
//!    real clients, its memory, scrapes and counters watched ([`soak`]).
//!    Only with `--only soak`, or `--soak-secs` in a full run: it would
//!    more than double the full run's time.
//!
//! A markdown report goes to stdout and into a dated page
//! (`docs/benchmarks/<date>.md`, see [`page`]), the figures as JSON to
//! `target/bench/`. Nothing here asserts on time.
mod defence;
mod flood;
mod onecpu;
mod page;
mod report;
mod soak;

use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Command, Stdio},
    time::Duration,
};

use anyhow::{Context, Result, bail};
use synguard_tests::bench::{cpu::Machine, generator::Generator};

use crate::{cargo, describe, is_root, workspace};
use defence::Defence;
use flood::Plan;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// A short run (seconds, not minutes) to check the bench still works;
    /// its figures are rough.
    #[arg(long)]
    quick: bool,
    /// Run one part only.
    #[arg(long, value_enum)]
    only: Option<Part>,
    /// Flood with this generator instead of the fastest measured
    /// (packet-send, packet-mmsg, xdp-live).
    #[arg(long, value_parser = parse_generator)]
    generator: Option<Generator>,
    /// Flood lab and one CPU: these defences only (none, syncookies,
    /// nft-synproxy, synguard, synguard-no-budgets, synguard-skb; and
    /// floor, the flood lab's floor, which one CPU skips).
    #[arg(long, value_delimiter = ',', value_parser = parse_defence)]
    defences: Vec<Defence>,
    /// Soak: how long the flood and the real clients are held, in seconds
    /// (default 300, with --quick 30). Given for a full run, it adds the
    /// soak to it.
    #[arg(long, value_parser = clap::value_parser!(u64).range(10..=soak::MAX_SECS))]
    soak_secs: Option<u64>,
    /// One CPU: the offered flood rates, frames per second.
    #[arg(long, value_delimiter = ',', default_value = "100000,300000,600000",
          value_parser = clap::value_parser!(u32).range(1000..=2_000_000))]
    rates: Vec<u32>,
    /// One CPU: frames per send call (1: one sendmmsg(2) per frame).
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=256))]
    batch: u16,
    /// One CPU: the generator sleeps between send calls instead of
    /// spinning, so its CPU may halt between them.
    #[arg(long)]
    sleep: bool,
    /// One CPU: the CPU the real clients and the server run on ("any":
    /// unpinned).
    #[arg(long, default_value = "1", value_parser = parse_cpu)]
    clients_cpu: CpuChoice,
    /// One CPU: make the target veth's NAPI a thread on this CPU, at
    /// real-time priority (the flood lab's arrangement, without its
    /// spinner).
    #[arg(long)]
    napi_cpu: Option<usize>,
}

#[derive(Clone, Copy, Debug)]
struct CpuChoice(Option<usize>);

fn parse_cpu(s: &str) -> Result<CpuChoice, String> {
    match s {
        "any" => Ok(CpuChoice(None)),
        n => n
            .parse()
            .map(|c| CpuChoice(Some(c)))
            .map_err(|_| format!("a CPU number or \"any\", not {s:?}")),
    }
}

impl Args {
    fn runs(&self, part: Part) -> bool {
        match self.only {
            Some(only) => only == part,
            None => part != Part::Soak || self.soak_secs.is_some(),
        }
    }
}

fn parse_defence(s: &str) -> Result<Defence, String> {
    Defence::KNOWN
        .into_iter()
        .find(|d| d.key() == s)
        .ok_or_else(|| {
            let keys: Vec<_> = Defence::KNOWN.iter().map(|d| d.key()).collect();
            format!("unknown defence {s:?}: {}", keys.join(", "))
        })
}

fn parse_generator(s: &str) -> Result<Generator, String> {
    Generator::ALL
        .into_iter()
        .find(|g| g.name() == s)
        .ok_or_else(|| format!("unknown generator {s:?}: packet-send, packet-mmsg or xdp-live"))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Part {
    /// Per-packet cost through BPF_PROG_TEST_RUN.
    Cost,
    /// The end-to-end flood lab.
    Flood,
    /// The generator and the target's receive work on one CPU, fixed
    /// offered rates, kernel SYN cookies and synguard.
    OneCpu,
    /// The daemon under a flood held for minutes, with steady real clients.
    Soak,
}

pub fn run(args: Args) -> Result<()> {
    crate::setup::run()?;
    if !is_root() {
        bail!(
            "cargo xtask bench needs root: it creates network namespaces, attaches XDP programs and runs BPF_PROG_TEST_RUN; run it as root"
        );
    }
    defence::install_peers()?;
    let bin = crate::build_release()?;
    let out_dir = workspace().join("target/bench");
    std::fs::create_dir_all(&out_dir).context("creating target/bench")?;
    let started = std::time::Instant::now();
    let machine = Machine::read();
    let mut report = report::Report::new(&machine, args.quick);
    println!("{}", report.header());

    if args.runs(Part::Cost) {
        let json = out_dir.join("xdp_cost.json");
        let mut cmd = cargo();
        cmd.args([
            "bench",
            "--locked",
            "-p",
            "synguard-tests",
            "--bench",
            "xdp_cost",
            "--",
        ])
        .arg("--json")
        .arg(&json);
        if args.quick {
            cmd.arg("--quick");
        }
        // The cost bench prints its own table; it goes into the page as is.
        let table = echo_stdout(&mut cmd)?;
        report.add_cost(&json)?;
        report.keep_section(table);
    }
    let mut generator = None;
    if args.runs(Part::Flood) {
        generator = Some(flood_lab(&mut report, &bin, &args)?);
    }
    if args.runs(Part::OneCpu) {
        one_cpu(&mut report, &bin, &args)?;
    }
    let mut unclean_stop = None;
    if args.runs(Part::Soak) {
        let generator = match generator {
            Some(g) => g,
            None => choose_generator(&mut report, &bin, &args, plan(args.quick).calibration)?,
        };
        let secs = args.soak_secs.unwrap_or(if args.quick { 30 } else { 300 });
        eprintln!(
            "xtask bench: soak, {secs} s of {} with the daemon",
            generator.name()
        );
        let outcome =
            soak::run(&soak::Plan::new(secs), generator, &bin, &out_dir).context("soak")?;
        report.add_section(outcome.markdown());
        if !outcome.stop.clean() {
            unclean_stop = Some(format!(
                "the soak's daemon did not stop cleanly on SIGTERM (status {:?}, XDP left {}, links left {:?})",
                outcome.stop.status, outcome.stop.xdp_left, outcome.stop.links_left
            ));
        }
        report.add_soak(outcome.json());
    }
    report.finish(started.elapsed());
    let path = out_dir.join("bench.json");
    std::fs::write(&path, report.json()).with_context(|| format!("writing {}", path.display()))?;
    println!("\nJSON: {}", path.display());
    let parts = [
        (Part::Cost, "cost"),
        (Part::Flood, "flood"),
        (Part::OneCpu, "one-cpu"),
        (Part::Soak, "soak"),
    ]
    .into_iter()
    .filter(|&(part, _)| args.runs(part))
    .map(|(_, name)| name)
    .collect();
    let run = page::Run::now(&workspace(), parts);
    let text = page::render(
        &run,
        &report.machine(),
        report.sections(),
        started.elapsed(),
    );
    let page = page::write(&workspace(), args.quick, &run, &text)?;
    println!("Page: {}", page.display());
    match unclean_stop {
        Some(problem) => bail!(problem),
        None => Ok(()),
    }
}

fn plan(quick: bool) -> Plan {
    if quick {
        Plan {
            connections: 40,
            rate: 20,
            timeout: Duration::from_secs(3),
            warmup: Duration::from_millis(500),
            calibration: Duration::from_secs(1),
            rounds: 1,
        }
    } else {
        Plan {
            connections: 100,
            rate: 20,
            timeout: Duration::from_secs(3),
            warmup: Duration::from_secs(1),
            calibration: Duration::from_secs(3),
            rounds: 3,
        }
    }
}

/// Measures every generator for `calibration` and returns the fastest, or
/// the one `--generator` names.
fn choose_generator(
    report: &mut report::Report,
    bin: &Path,
    args: &Args,
    calibration: Duration,
) -> Result<Generator> {
    eprintln!("xtask bench: measuring the flood generators");
    let mut best: Option<(Generator, f64)> = None;
    for generator in Generator::ALL {
        let calibration = flood::calibrate(generator, calibration, bin)
            .with_context(|| format!("calibrating {}", generator.name()))?;
        let sent = &calibration.sent;
        eprintln!(
            "   {:<12} {:>10.0} pps, target {:.0} ns a frame with XDP_DROP",
            generator.name(),
            sent.pps(),
            calibration.cpu_ms_per_million().unwrap_or(f64::NAN)
        );
        report.add_generator(generator, &calibration);
        if best.is_none_or(|(_, pps)| sent.pps() > pps) {
            best = Some((generator, sent.pps()));
        }
    }
    Ok(args
        .generator
        .unwrap_or_else(|| best.expect("at least one generator").0))
}

/// Runs the flood lab; returns the generator it flooded with.
fn flood_lab(report: &mut report::Report, bin: &Path, args: &Args) -> Result<Generator> {
    let plan = plan(args.quick);
    let generator = choose_generator(report, bin, args, plan.calibration)?;
    report.set_flood_plan(&plan, generator);
    let defences = if args.defences.is_empty() {
        Defence::ALL.to_vec()
    } else {
        args.defences.clone()
    };
    for round in 1..=plan.rounds {
        for &defence in &defences {
            eprintln!(
                "xtask bench: flood lab, round {round}/{}, {}",
                plan.rounds,
                defence.label()
            );
            let outcome = flood::run(defence, generator, &plan, bin)
                .with_context(|| format!("flood lab with {}", defence.label()))?;
            report.add_flood(outcome);
        }
    }
    report.add_section(report.flood_section());
    Ok(generator)
}

/// Runs the one-CPU scenario: each offered rate, each defence (kernel SYN
/// cookies, synguard native and skb unless `--defences` says otherwise),
/// interleaved.
fn one_cpu(report: &mut report::Report, bin: &Path, args: &Args) -> Result<()> {
    let plan = onecpu::Plan::new(
        args.quick,
        args.rates.clone(),
        usize::from(args.batch),
        args.sleep,
        args.clients_cpu.0,
        args.napi_cpu,
    );
    let defences = if args.defences.is_empty() {
        vec![
            Defence::KernelCookies,
            Defence::Synguard,
            Defence::SynguardSkb,
        ]
    } else {
        // The floor is the flood lab's measure; it has no clients to serve.
        args.defences
            .iter()
            .copied()
            .filter(|&d| d != Defence::Floor)
            .collect()
    };
    if defences.is_empty() {
        eprintln!("xtask bench: one CPU: no defence to run (the floor is the flood lab's alone)");
        return Ok(());
    }
    let mut outcomes = Vec::new();
    for round in 1..=plan.rounds {
        for &rate in &plan.rates {
            for &defence in &defences {
                eprintln!(
                    "xtask bench: one CPU, round {round}/{}, {rate} pps, {}",
                    plan.rounds,
                    defence.label()
                );
                let outcome = onecpu::run(defence, rate, &plan, bin)
                    .with_context(|| format!("one CPU at {rate} pps with {}", defence.label()))?;
                outcomes.push(outcome);
            }
        }
    }
    report.add_section(onecpu::section(&plan, &outcomes));
    report.add_one_cpu(onecpu::json(&plan, &outcomes));
    Ok(())
}

/// Runs `cmd` with its stdout echoed line by line and returned.
fn echo_stdout(cmd: &mut Command) -> Result<String> {
    eprintln!("xtask: running {}", describe(cmd));
    let mut child = cmd
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("running {}", describe(cmd)))?;
    let mut out = String::new();
    for line in BufReader::new(child.stdout.take().expect("piped")).lines() {
        let line = line?;
        println!("{line}");
        out.push_str(&line);
        out.push('\n');
    }
    let status = child.wait()?;
    if !status.success() {
        bail!("{} failed ({status})", describe(cmd));
    }
    Ok(out)
}
