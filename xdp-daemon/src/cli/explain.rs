use std::{fs, io::Read, path::PathBuf, process::ExitCode};

use anyhow::{Context, bail};
use pcap_file::{
    pcap::PcapReader,
    pcapng::{Block, PcapNgReader},
};
use serde::Serialize;
use synguard::{explain::Explainer, frames};

use super::Env;

/// Run frames through the program as the interface has it attached, and
/// print, per frame, the verdict, the reason and the answer it would send.
///
/// FILE is a pcap or pcapng file, or text with one frame in hex per line
/// (`-`: standard input). The frames run (BPF_PROG_TEST_RUN) through a
/// private instance of the program with a copy of the interface's
/// settings (dry-run included), flood state and host maps, and the live
/// lists: nothing of the live path is counted, spent or changed. Its
/// budgets start full and it remembers no listener, so a SYN in a flood
/// takes the full way, and renews its listener's SYN-cookie overflow
/// stamp as any such SYN does.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The attached interface, e.g. eth0.
    iface: String,
    /// The frames: pcap, pcapng or hex lines; `-` for standard input.
    file: PathBuf,
}

#[derive(Serialize)]
struct Row {
    frame: usize,
    verdict: &'static str,
    reason: &'static str,
    packet: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    answer: Option<String>,
}

const PCAPNG: [u8; 4] = [0x0a, 0x0d, 0x0d, 0x0a];
/// pcap's magic numbers: microseconds and nanoseconds, either byte order.
const PCAP: [[u8; 4]; 4] = [
    [0xd4, 0xc3, 0xb2, 0xa1],
    [0xa1, 0xb2, 0xc3, 0xd4],
    [0x4d, 0x3c, 0xb2, 0xa1],
    [0xa1, 0xb2, 0x3c, 0x4d],
];

/// The frames of a pcap or pcapng file, or of hex lines.
fn frames_of(bytes: &[u8]) -> anyhow::Result<Vec<Vec<u8>>> {
    let mut frames = Vec::new();
    match bytes.get(..4) {
        Some(m) if m == PCAPNG => {
            let mut reader = PcapNgReader::new(bytes).context("a pcapng file")?;
            while let Some(block) = reader.next_block() {
                match block.context("a pcapng block")? {
                    Block::EnhancedPacket(p) => frames.push(p.data.into_owned()),
                    Block::SimplePacket(p) => frames.push(p.data.into_owned()),
                    Block::Packet(p) => frames.push(p.data.into_owned()),
                    _ => {}
                }
            }
        }
        Some(m) if PCAP.iter().any(|p| p == m) => {
            let mut reader = PcapReader::new(bytes).context("a pcap file")?;
            while let Some(packet) = reader.next_packet() {
                frames.push(packet.context("a pcap packet")?.data.into_owned());
            }
        }
        _ => {
            let text = std::str::from_utf8(bytes)
                .context("neither pcap, pcapng nor text with a frame in hex per line")?;
            for (n, line) in text.lines().enumerate() {
                let hex: String = line
                    .split('#')
                    .next()
                    .unwrap_or_default()
                    .chars()
                    .filter(|c| !c.is_whitespace() && *c != ':')
                    .collect();
                if hex.is_empty() {
                    continue;
                }
                if !hex.len().is_multiple_of(2) || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
                    bail!("line {}: not a frame in hex", n + 1);
                }
                frames.push(
                    (0..hex.len())
                        .step_by(2)
                        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex digits"))
                        .collect(),
                );
            }
        }
    }
    Ok(frames)
}

pub fn run(cx: &Env, args: Args) -> anyhow::Result<ExitCode> {
    let bytes = if args.file.as_os_str() == "-" {
        let mut b = Vec::new();
        std::io::stdin().read_to_end(&mut b)?;
        b
    } else {
        fs::read(&args.file).with_context(|| format!("cannot read {}", args.file.display()))?
    };
    let frames = frames_of(&bytes).with_context(|| format!("reading {}", args.file.display()))?;
    if frames.is_empty() {
        bail!("{}: no frames", args.file.display());
    }
    let mut explainer = Explainer::new(&cx.layout, &args.iface)
        .with_context(|| format!("cannot explain on {}", args.iface))?;
    let mut rows = Vec::new();
    for (i, frame) in frames.iter().enumerate() {
        let v = explainer
            .run(frame)
            .with_context(|| format!("frame {}", i + 1))?;
        rows.push(Row {
            frame: i + 1,
            verdict: v.verdict,
            reason: v.reason.name(),
            packet: frames::describe(frame),
            answer: v.answer.as_deref().map(frames::describe),
        });
    }
    if cx.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(ExitCode::SUCCESS);
    }
    for row in &rows {
        println!(
            "#{:<4} {:<12} {:<15} {}",
            row.frame, row.verdict, row.reason, row.packet
        );
        if let Some(answer) = &row.answer {
            println!("      answer: {answer}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_lines_are_frames_and_a_bad_line_is_named() {
        let frames = frames_of(b"# two frames\n00:11 22\n\naabb # note\n").unwrap();
        assert_eq!(frames, vec![vec![0x00, 0x11, 0x22], vec![0xaa, 0xbb]]);
        let err = frames_of(b"0011\nxyz\n").unwrap_err();
        assert_eq!(err.to_string(), "line 2: not a frame in hex");
    }
}
