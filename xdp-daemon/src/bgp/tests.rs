use std::path::PathBuf;

use super::{config::FlowAction, *};

fn bgp() -> Bgp {
    Bgp::new(BgpConfig {
        api: "unix:///nonexistent.sock".into(),
        gobgp: PathBuf::from("gobgp"),
        dry_run: true,
        marker: "65535:6660".parse().unwrap(),
        protected: vec!["198.18.0.0/31".parse().unwrap()],
        max_announcements: 2,
        shortest_v4: 20,
        shortest_v6: 32,
        withdraw_on_stop: true,
        fleet: None,
        escalation: None,
    })
}

fn flowspec(dst: &str) -> Announcement {
    Announcement::Flowspec {
        dst: dst.parse().unwrap(),
        ports: vec![80],
        action: FlowAction::Discard,
    }
}

#[test]
fn guard_rails_refuse_allowlisted_protected_wide_and_too_many() {
    let b = bgp();
    let allow: Vec<IpNet> = vec!["198.18.5.0/24".parse().unwrap()];
    let wanted = vec![
        flowspec("198.18.0.1/32"),
        flowspec("198.18.5.7/32"),
        Announcement::Share {
            net: "198.19.0.0/16".parse().unwrap(),
            community: "65001:100".parse().unwrap(),
        },
        flowspec("198.18.0.9/32"),
        flowspec("198.18.0.10/32"),
        flowspec("198.18.0.11/32"),
    ];
    let (kept, refused) = b.guard(wanted, &allow);
    assert_eq!(
        kept,
        vec![flowspec("198.18.0.9/32"), flowspec("198.18.0.10/32")]
    );
    let whys: Vec<&str> = refused.iter().map(|r| r.why.as_str()).collect();
    assert!(
        whys[0].contains("protected prefix 198.18.0.0/31"),
        "{whys:?}"
    );
    assert!(whys[1].contains("allowlisted 198.18.5.0/24"), "{whys:?}");
    assert!(whys[2].contains("wider than /20"), "{whys:?}");
    assert!(whys[3].contains("max_announcements (2)"), "{whys:?}");
}

#[test]
fn a_refusal_is_said_once_while_it_holds() {
    let mut said = SaidOnce::default();
    assert!(said.say("a"));
    said.next_tick();
    assert!(!said.say("a"), "still there: not again");
    said.next_tick();
    said.next_tick();
    assert!(said.say("a"), "gone for a tick, then back: said again");
}

#[test]
fn a_dry_run_logs_and_counts_but_calls_nothing() {
    let mut b = bgp();
    // The speaker does not exist: a real call would fail.
    b.converge(&[flowspec("198.18.0.9/32")]);
    b.converge(&[]);
    let status = b.status.lock().unwrap().clone();
    assert_eq!(status.changes["flowspec announce"], 1);
    assert_eq!(status.changes["flowspec withdraw"], 1);
    assert_eq!(status.recent[0].change, "would announce");
    assert!(status.speaker_error.is_none());
}
