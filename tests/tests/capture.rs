//! Seeing what is dropped, end to end: `synguard capture` writes a
//! blocklisted source's drops and a flood's answers to a pcapng file with
//! their verdicts (read back here with pcap-file), and `synguard explain`
//! gives crafted frames the verdicts the live path gives them, without
//! moving the live counters.
use std::{
    io::{BufRead, BufReader},
    net::{IpAddr, Ipv4Addr},
    path::Path,
    process::Stdio,
    time::{Duration, Instant},
};

use etherparse::{LaxSlicedPacket, TransportSlice};
use pcap_file::pcapng::{Block, PcapNgReader, blocks::enhanced_packet::EnhancedPacketOption};
use synguard_tests::{
    lab::{Lab, OUTSIDE_V4, TARGET_V4},
    packets::{self, Segment},
    require_root,
    synguard::Synguard,
    traffic::{EchoServer, RawSender},
};

const PORT: u16 = 80;
/// A blocklisted (spoofed) source.
const BLOCKED: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 77);

/// A lab with flood mode forced on, a listener on PORT that the kernel
/// hands cookies for at once, and BLOCKED on the blocklist.
fn flooded_lab() -> (Synguard, Lab, EchoServer) {
    require_root();
    let lab = Lab::new().expect("build the lab");
    let synguard = Synguard::new(lab.target.name());
    lab.target
        .set_sysctl("net.ipv4.tcp_syncookies", "2")
        .unwrap();
    synguard
        .run(
            &lab.target,
            &[
                "attach",
                &lab.target_if,
                "--mode",
                "native",
                "--flood",
                "always",
            ],
        )
        .expect("attach");
    synguard
        .run(&lab.target, &["block", &BLOCKED.to_string()])
        .unwrap();
    let server = EchoServer::start(&lab.target, (TARGET_V4, PORT).into()).unwrap();
    (synguard, lab, server)
}

fn syn_from(src: Ipv4Addr, sport: u16, dport: u16) -> Vec<u8> {
    Segment::syn(IpAddr::V4(src), IpAddr::V4(TARGET_V4), sport, dport).frame()
}

/// (comment, frame) of every packet in a pcapng file.
fn read_pcapng(path: &Path) -> Vec<(String, Vec<u8>)> {
    let bytes = std::fs::read(path).expect("the capture file");
    let mut reader = PcapNgReader::new(&bytes[..]).expect("a pcapng file");
    let mut out = Vec::new();
    while let Some(block) = reader.next_block() {
        if let Block::EnhancedPacket(p) = block.expect("a block") {
            let comment = p
                .options
                .iter()
                .find_map(|o| match o {
                    EnhancedPacketOption::Comment(c) => Some(c.to_string()),
                    _ => None,
                })
                .unwrap_or_default();
            out.push((comment, p.data.into_owned()));
        }
    }
    out
}

#[test]
fn capture_writes_drops_and_answers_with_their_reasons() {
    let (synguard, lab, _server) = flooded_lab();
    let file = synguard.state_dir().with_extension("pcapng");
    let mut child = synguard
        .command(&lab.target)
        .args([
            "capture",
            &lab.target_if,
            "--count",
            "6",
            "--for",
            "30s",
            "-w",
        ])
        .arg(&file)
        .stderr(Stdio::piped())
        .spawn()
        .expect("synguard capture");
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    assert!(line.starts_with("capturing on"), "{line}");

    let tx = RawSender::open(&lab.outside, &lab.outside_if).unwrap();
    // Passed packets are not captured (by default only drops and answers).
    for i in 0..3 {
        tx.send(&packets::udp(
            IpAddr::V4(OUTSIDE_V4),
            IpAddr::V4(TARGET_V4),
            5000,
            9,
            b"x",
        ))
        .unwrap();
        tx.send(&packets::udp(
            IpAddr::V4(BLOCKED),
            IpAddr::V4(TARGET_V4),
            5000 + i,
            9,
            b"x",
        ))
        .unwrap();
        tx.send(&syn_from(
            Ipv4Addr::new(198, 19, 7, i as u8 + 1),
            40000 + i,
            PORT,
        ))
        .unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(40);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("capture did not stop after 6 packets");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    assert!(status.success(), "{rest}");
    assert!(rest.contains("6 packets written"), "{rest}");

    let packets = read_pcapng(&file);
    // As an operator reads it: tshark (Debian's, installed by `cargo xtask
    // setup`) shows each packet's comment beside its source.
    let tshark = std::process::Command::new("tshark")
        .args(["-r"])
        .arg(&file)
        .args(["-T", "fields", "-e", "frame.comment", "-e", "ip.src"])
        .output()
        .expect("tshark (cargo xtask setup installs it)");
    let _ = std::fs::remove_file(&file);
    let read = String::from_utf8_lossy(&tshark.stdout);
    assert!(tshark.status.success(), "tshark: {tshark:?}");
    let blocked = format!("synguard: drop blocklist\t{BLOCKED}");
    let answered = format!("synguard: tx syn_ack (the answer sent)\t{TARGET_V4}");
    assert_eq!(
        (
            read.lines().filter(|l| *l == blocked).count(),
            read.lines().filter(|l| *l == answered).count()
        ),
        (3, 3),
        "tshark read:\n{read}"
    );
    assert_eq!(packets.len(), 6, "{packets:?}");
    let mut drops = 0;
    let mut answers = 0;
    for (comment, frame) in &packets {
        let sliced = LaxSlicedPacket::from_ethernet(frame).expect("an Ethernet frame");
        let Some(etherparse::LaxNetSlice::Ipv4(ip)) = &sliced.net else {
            panic!("not IPv4: {comment}");
        };
        match comment.as_str() {
            "synguard: drop blocklist" => {
                assert_eq!(ip.header().source_addr(), BLOCKED);
                drops += 1;
            }
            "synguard: tx syn_ack (the answer sent)" => {
                let Some(TransportSlice::Tcp(tcp)) = &sliced.transport else {
                    panic!("the answer is not TCP");
                };
                assert!(tcp.syn() && tcp.ack(), "a SYN-ACK");
                assert_eq!(ip.header().source_addr(), TARGET_V4);
                assert_eq!(tcp.source_port(), PORT);
                answers += 1;
            }
            other => panic!("unexpected packet in the capture: {other}"),
        }
    }
    assert_eq!((drops, answers), (3, 3));
    // The capture's flag is off again: a second capture may start.
    let out = synguard
        .output(&lab.target, &["capture", &lab.target_if, "--for", "100ms"])
        .unwrap();
    assert!(out.status.success(), "{out:?}");
}

#[test]
fn explain_gives_the_live_verdicts_without_moving_live_counters() {
    let (synguard, lab, _server) = flooded_lab();
    let frames = [
        (
            packets::udp(IpAddr::V4(BLOCKED), IpAddr::V4(TARGET_V4), 5000, 9, b"x"),
            "drop",
            "blocklist",
        ),
        (
            syn_from(Ipv4Addr::new(198, 19, 1, 1), 40001, PORT),
            "tx",
            "syn_ack",
        ),
        (
            syn_from(Ipv4Addr::new(198, 19, 1, 2), 40002, PORT + 1),
            "drop",
            "no_listener",
        ),
        (
            Segment::syn(IpAddr::V4(OUTSIDE_V4), IpAddr::V4(TARGET_V4), 40003, PORT)
                .flags(packets::Flags::SYN_FIN)
                .frame(),
            "drop",
            "bad_flags",
        ),
    ];
    let hex: String = frames
        .iter()
        .map(|(f, _, _)| f.iter().map(|b| format!("{b:02x}")).collect::<String>() + "\n")
        .collect();
    let file = synguard.state_dir().with_extension("hex");
    std::fs::write(&file, hex).unwrap();
    // The counters explain's frames would move; the link's own chatter
    // (neighbour discovery) may move others meanwhile.
    let moved = |synguard: &Synguard| {
        let mut rows = synguard.counters(&lab.target, &lab.target_if).unwrap();
        rows.retain(|(v, r, _)| frames.iter().any(|(_, fv, fr)| v == fv && r == fr));
        rows
    };
    let before = moved(&synguard);
    let out = synguard
        .run(
            &lab.target,
            &["--json", "explain", &lab.target_if, file.to_str().unwrap()],
        )
        .expect("synguard explain");
    let _ = std::fs::remove_file(&file);
    let explained: serde_json::Value = serde_json::from_str(&out).expect("explain JSON");
    assert_eq!(moved(&synguard), before, "explain moved no live counter");
    let tx = RawSender::open(&lab.outside, &lab.outside_if).unwrap();
    for (i, (frame, verdict, reason)) in frames.iter().enumerate() {
        let row = &explained[i];
        assert_eq!(
            (row["verdict"].as_str(), row["reason"].as_str()),
            (Some(*verdict), Some(*reason)),
            "frame {}: {row}",
            i + 1
        );
        // The same frame on the wire: counted under the same reason.
        let live = synguard
            .settled_count(&lab.target, &lab.target_if, verdict, reason)
            .unwrap();
        tx.send(frame).unwrap();
        let after = synguard
            .settled_count(&lab.target, &lab.target_if, verdict, reason)
            .unwrap();
        assert_eq!(after, live + 1, "frame {}: live {verdict} {reason}", i + 1);
    }
    let answer = explained[1]["answer"].as_str().expect("the answer");
    assert!(
        answer.starts_with(&format!("{TARGET_V4}:{PORT} > 198.19.1.1:40001 TCP [S.]")),
        "{answer}"
    );
}

#[test]
fn top_ranks_the_source_prefixes_dropped_most() {
    let (synguard, lab, _server) = flooded_lab();
    synguard
        .run(&lab.target, &["block", "198.18.9.0/24"])
        .unwrap();
    let mut child = synguard
        .command(&lab.target)
        .args([
            "--json",
            "top",
            &lab.target_if,
            "--sample",
            "1/1",
            "--for",
            "3s",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("synguard top");
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    assert!(line.starts_with("watching"), "{line}");
    lab.send_udp_from(BLOCKED, 5);
    lab.send_udp_from(Ipv4Addr::new(198, 18, 9, 1), 2);
    // Passed packets are not ranked.
    lab.send_udp_from(OUTSIDE_V4, 9);
    let out = child.wait_with_output().expect("top ends after --for");
    assert!(out.status.success(), "{out:?}");
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).expect("top JSON");
    let rows: Vec<(String, String, u64)> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["prefix"].as_str().unwrap().to_string(),
                r["reason"].as_str().unwrap().to_string(),
                r["packets"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        vec![
            ("198.18.0.0/24".into(), "blocklist".into(), 5),
            ("198.18.9.0/24".into(), "blocklist".into(), 2),
        ]
    );
}
