//! Per-packet cost of synguard's XDP program, class by class, through
//! BPF_PROG_TEST_RUN, next to a two-instruction XDP_PASS program (the
//! floor: what running any XDP program costs here) and xdp-filter (the
//! peer, from Debian's xdp-tools) and, on the SYN and cookie-ACK classes,
//! the kernel's own XDP synproxy (built at bench time from Debian's
//! linux-source) on the same frames, in the same run.
//! `cargo xtask bench` runs it; alone:
//!
//! ```sh
//! cargo bench -p synguard-tests --bench xdp_cost -- [--quick] [--json FILE] [--only TEXT]... [--compare OBJECT]...
//! ```
//!
//! `--compare OBJECT` measures another build of the XDP program (a
//! `synguard-ebpf` object of the same map layout, say the one `git stash` left
//! in target/bpf/bpfel-unknown-none/release/; `xdp-prog` before the crate
//! rename) beside this one, in the same rounds, order rotated, and
//! prints each class's time as a ratio to this build's: before and after a
//! change to the data path, side by side.
//!
//! Method. Every frame is run as if received on a veth of a namespace that
//! holds a real listener on port 80 and one established connection, so the
//! program's socket lookups and the kernel's cookie helpers see real
//! sockets. Frames the program leaves as they are run `repeat` times in
//! one call, and the kernel's own timing (mean ns per run) is the cost. A
//! SYN answered with a SYN-ACK is rewritten in place, so a repeated run
//! would see its own answer: that class is timed as many single calls, a
//! fresh frame each, and its floor is timed the same way (a single call
//! carries the kernel's timer overhead, in both). Two single-call classes
//! never reuse a frame, so every SYN comes from a source synguard has not
//! seen (as in a spoofed flood): they show what creating per-source budget
//! entries costs, where the other SYN classes cycle through a fixed set of
//! sources whose entries exist after the first round. Each round measures every
//! class and program once, interleaved; the figures are medians over the
//! rounds, with the spread (min-max), and the ratio is taken per round.
//! Every measured run is checked: verdict, and for synguard the counter it
//! moved, so a figure is never the cost of a path other than its label.
mod classes;
mod fixture;
mod peer;
mod report;
mod synproxy;

use std::{net::Ipv4Addr, path::PathBuf};

use anyhow::{Context, Result, bail};
use synguard_tests::{
    bench::cpu,
    netns::{Netns, unique_prefix},
    require_root,
};

use fixture::Bench;
use report::{Measured, Report};

const PORT: u16 = 80;
/// The blocklisted source (the others come from OUTSIDE_V4).
const BLOCKED: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 66);
/// A source in a fleet entry (FLEET_ENTRY), which is counted per entry:
/// its drop costs a trie lookup after the IPv4 index.
const FLEET_BLOCKED: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 88);
const FLEET_ENTRY: &str = "198.18.0.80/28";
/// Entries on synguard's blocklist besides BLOCKED, so the trie has a
/// realistic depth: /32s and /24s in 198.18.1.0-198.18.255.255, never a
/// source the other classes use.
const BLOCKLIST_EXTRA: usize = 1023;
/// The CPU the measuring thread is pinned to.
const CPU: usize = 1;

struct Options {
    quick: bool,
    json: Option<PathBuf>,
    /// Only the classes whose name contains one of these.
    only: Vec<String>,
    /// Other builds of the XDP program to measure beside this one.
    compare: Vec<PathBuf>,
}

impl Options {
    fn parse() -> Result<Options> {
        let mut options = Options {
            quick: false,
            json: None,
            only: Vec::new(),
            compare: Vec::new(),
        };
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--quick" => options.quick = true,
                "--json" => options.json = Some(args.next().context("--json FILE")?.into()),
                "--only" => options.only.push(args.next().context("--only TEXT")?),
                "--compare" => options
                    .compare
                    .push(args.next().context("--compare OBJECT")?.into()),
                // cargo bench passes --bench to harness = false targets.
                "--bench" => {}
                other => bail!(
                    "unknown argument {other:?} (--quick, --json FILE, --only TEXT, --compare OBJECT)"
                ),
            }
        }
        Ok(options)
    }

    fn rounds(&self) -> usize {
        if self.quick { 3 } else { 9 }
    }

    /// Repetitions per repeated run.
    fn repeat(&self) -> u32 {
        if self.quick { 100_000 } else { 1_000_000 }
    }

    /// Calls per single-call run.
    fn calls(&self) -> usize {
        if self.quick { 2_000 } else { 20_000 }
    }
}

fn main() -> Result<()> {
    let options = Options::parse()?;
    require_root();
    let ns = Netns::create(&format!("{}-cost", unique_prefix()))?;
    let mut bench = Bench::new(&ns, &options)?;
    let mut classes = bench.classes(&options)?;
    if !options.only.is_empty() {
        classes.retain(|c| options.only.iter().any(|o| c.name.contains(o.as_str())));
    }
    let results = ns.run(|| -> Result<Vec<Measured>> {
        cpu::pin_current(CPU).context("pinning the measuring thread")?;
        bench.measure(&mut classes, &options)
    })?;
    let report = Report {
        results,
        options: &options,
        peer: bench.peer.is_some(),
        synproxy: bench.synproxy.as_ref().map(|s| s.source.clone()),
    };
    println!("{}", report.markdown());
    if let Some(path) = &options.json {
        std::fs::write(path, serde_json::to_string_pretty(&report.json())?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
