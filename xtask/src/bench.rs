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
//!
//! A markdown report goes to stdout, the figures as JSON to
//! `target/bench/`. Nothing here asserts on time.
mod defence;
mod flood;
mod report;

use std::{path::Path, time::Duration};

use anyhow::{Context, Result, bail};
use synguard_tests::bench::{cpu::Machine, generator::Generator};

use crate::{cargo, exec, is_root, workspace};
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
    /// Flood lab: these defences only (none, syncookies, nft-synproxy,
    /// synguard, synguard-no-budgets).
    #[arg(long, value_delimiter = ',', value_parser = parse_defence)]
    defences: Vec<Defence>,
}

fn parse_defence(s: &str) -> Result<Defence, String> {
    Defence::ALL
        .into_iter()
        .find(|d| d.key() == s)
        .ok_or_else(|| {
            let keys: Vec<_> = Defence::ALL.iter().map(|d| d.key()).collect();
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

    if args.only != Some(Part::Flood) {
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
        exec(&mut cmd)?;
        report.add_cost(&json)?;
    }
    if args.only != Some(Part::Cost) {
        flood_lab(&mut report, &bin, &args)?;
    }
    report.finish(started.elapsed());
    let path = out_dir.join("bench.json");
    std::fs::write(&path, report.json()).with_context(|| format!("writing {}", path.display()))?;
    println!("\nJSON: {}", path.display());
    Ok(())
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

fn flood_lab(report: &mut report::Report, bin: &Path, args: &Args) -> Result<()> {
    let plan = plan(args.quick);
    eprintln!("xtask bench: measuring the flood generators");
    let mut best: Option<(Generator, f64)> = None;
    for generator in Generator::ALL {
        let sent = flood::calibrate(generator, plan.calibration, bin)
            .with_context(|| format!("calibrating {}", generator.name()))?;
        eprintln!("   {:<12} {:>10.0} pps", generator.name(), sent.pps());
        report.add_generator(generator, &sent);
        if best.is_none_or(|(_, pps)| sent.pps() > pps) {
            best = Some((generator, sent.pps()));
        }
    }
    let generator = args
        .generator
        .unwrap_or_else(|| best.expect("at least one generator").0);
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
    println!("{}", report.flood_section());
    Ok(())
}
