use std::{
    fs::File,
    io::{BufWriter, Write},
    path::PathBuf,
    process::ExitCode,
    time::{Duration, Instant, UNIX_EPOCH},
};

use anyhow::{Context, bail};
use pcap_file::{
    DataLink,
    pcapng::{
        PcapNgWriter,
        blocks::{
            enhanced_packet::{EnhancedPacketBlock, EnhancedPacketOption},
            interface_description::{InterfaceDescriptionBlock, InterfaceDescriptionOption},
        },
    },
};
use synguard::{
    capture::{self, Capture},
    config::parse_duration,
    frames,
};
use synguard_common::{
    Reason,
    capture::SNAP_LEN,
    signals::{stop_on_signals, stopped},
};

use super::Env;

/// Write sampled packets the data path settled, with their verdict and
/// reason, to a pcapng file (a comment per packet; tshark, tcpdump and
/// Wireshark read it), or one line each to stdout.
///
/// By default every packet dropped or answered (or, in dry-run, that
/// would be); the first 256 bytes of each, an answer as the SYN-ACK sent.
/// The program copies packets only while a capture runs; it stops at
/// Ctrl-C, after --count packets or --for.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The attached interface, e.g. eth0.
    iface: String,
    /// Only packets counted under this reason (repeat), e.g. blocklist,
    /// rate, syn_ack, no_listener, bad_cookie; passed ones too (syn, tcp).
    #[arg(long = "reason", value_parser = parse_reason)]
    reasons: Vec<Reason>,
    /// Stop after this many packets.
    #[arg(long)]
    count: Option<u64>,
    /// Keep one packet in N, written 1/N (or N).
    #[arg(long, default_value = "1/1", value_parser = parse_sample)]
    sample: u32,
    /// Stop after this long (e.g. 30s).
    #[arg(long = "for", value_parser = parse_duration)]
    duration: Option<Duration>,
    /// The pcapng file to write.
    #[arg(short = 'w', long = "write")]
    file: Option<PathBuf>,
}

pub fn parse_reason(s: &str) -> Result<Reason, String> {
    Reason::by_name(s).ok_or_else(|| {
        let names: Vec<&str> = Reason::ALL.iter().map(|r| r.name()).collect();
        format!("no reason {s:?}; one of {}", names.join(", "))
    })
}

pub fn parse_sample(s: &str) -> Result<u32, String> {
    let n = s.strip_prefix("1/").unwrap_or(s);
    match n.parse::<u32>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!(
            "{s:?}: a sample is 1/N with N at least 1, e.g. 1/100"
        )),
    }
}

/// Starts a capture, refusing a second one on the same interface (one
/// owner of its flag).
pub fn start(cx: &Env, iface: &str, reasons: &[Reason], sample: u32) -> anyhow::Result<Capture> {
    if capture::running(&cx.layout, iface) {
        bail!("a capture (synguard capture or top) is already running on {iface}; stop it first");
    }
    // Ctrl-C (or SIGTERM) ends the loop instead of the process, so the
    // capture's flag is cleared and the file finished.
    stop_on_signals();
    Capture::start(&cx.layout, iface, capture::slots(reasons), sample)
        .with_context(|| format!("cannot capture on {iface}"))
}

type Writer = PcapNgWriter<BufWriter<File>>;

fn create(path: &PathBuf, iface: &str) -> anyhow::Result<Writer> {
    let file = File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut w = PcapNgWriter::new(BufWriter::new(file))
        .with_context(|| format!("writing {}", path.display()))?;
    w.write_pcapng_block(InterfaceDescriptionBlock {
        linktype: DataLink::ETHERNET,
        snaplen: SNAP_LEN as u32,
        options: vec![
            InterfaceDescriptionOption::IfName(iface.into()),
            // Timestamps in nanoseconds (10^-9), as they are written.
            InterfaceDescriptionOption::IfTsResol(9),
        ],
    })
    .with_context(|| format!("writing {}", path.display()))?;
    Ok(w)
}

pub fn run(cx: &Env, args: Args) -> anyhow::Result<ExitCode> {
    let mut writer = match &args.file {
        Some(path) => Some(create(path, &args.iface)?),
        None => None,
    };
    let mut capture = start(cx, &args.iface, &args.reasons, args.sample)?;
    eprintln!("capturing on {}", args.iface);
    let started = Instant::now();
    let mut written = 0u64;
    let done = |written: u64| {
        stopped()
            || args.count.is_some_and(|n| written >= n)
            || args.duration.is_some_and(|d| started.elapsed() >= d)
    };
    while !done(written) {
        capture.renew()?;
        for packet in capture.next_batch(Duration::from_millis(200))? {
            if done(written) {
                break;
            }
            let note = format!(
                "synguard: {} {}{}",
                packet.verdict,
                packet.reason.name(),
                if packet.verdict == "tx" {
                    " (the answer sent)"
                } else {
                    ""
                }
            );
            match writer.as_mut() {
                Some(w) => {
                    w.write_pcapng_block(EnhancedPacketBlock {
                        interface_id: 0,
                        timestamp: packet.time.duration_since(UNIX_EPOCH).unwrap_or_default(),
                        original_len: packet.len,
                        data: packet.data.as_slice().into(),
                        options: vec![EnhancedPacketOption::Comment(note.into())],
                    })?;
                }
                None => println!("{note} {}", frames::describe(&packet.data)),
            }
            written += 1;
        }
    }
    // The flag is cleared before the file is finished.
    drop(capture);
    if let (Some(w), Some(path)) = (writer, &args.file) {
        w.into_inner()
            .flush()
            .with_context(|| format!("writing {}", path.display()))?;
        eprintln!("{written} packets written to {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}
