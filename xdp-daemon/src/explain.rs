//! `synguard explain`: frames run with BPF_PROG_TEST_RUN through a private
//! instance of the program, set up as the interface's is, so the verdict
//! is the one the live path would give and nothing live is touched
//! (docs/design.md#explain).
//!
//! The private instance shares the lists (read only: the data path never
//! writes them) and gets copies of the interface's settings (dry-run
//! included) and flood state, and the host maps as `attach` writes them.
//! Its counters, budgets, recent peers, remembered listeners and capture
//! are its own and start empty: a frame explained sees every budget full
//! and takes the full way to its listener. The one thing outside synguard
//! it can touch is what a SYN in a flood touches: its listener's SYN-cookie
//! overflow stamp (`bpf_tcp_gen_syncookie`).
use aya::{
    Ebpf, Pod,
    maps::{Array, Map, MapData, MapError},
    programs::{TestRun, TestRunOptions},
};
use synguard_common::{FloodState, IfaceSettings, Reason, maps};

use crate::{
    attach,
    counters::Counters,
    host::{HostMaps, HostView},
    pins::PinLayout,
    program::{self, LoadError},
};

#[derive(Debug, thiserror::Error)]
pub enum ExplainError {
    #[error("synguard is not attached to {0}")]
    NotAttached(String),
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error("{what}: {source}")]
    Map {
        what: String,
        #[source]
        source: MapError,
    },
    #[error("the host maps of {iface}: {source}")]
    Host {
        iface: String,
        #[source]
        source: std::io::Error,
    },
    #[error("BPF_PROG_TEST_RUN: {0}")]
    Run(#[source] aya::programs::ProgramError),
}

/// What the program does with one frame.
#[derive(Clone, Debug)]
pub struct Verdict {
    /// The XDP action: 1 drop, 2 pass, 3 tx (0 aborted).
    pub action: u32,
    /// The verdict label (`drop`, `tx`, `would_drop`, ...) and reason it
    /// was counted under.
    pub verdict: &'static str,
    pub reason: Reason,
    /// The frame the program sends back (`tx`): its SYN-ACK.
    pub answer: Option<Vec<u8>>,
}

/// A private instance of the program, set up as an interface's.
pub struct Explainer {
    ebpf: Ebpf,
    ifindex: u32,
}

/// `struct xdp_md` as BPF_PROG_TEST_RUN takes it in `ctx_in`: the frame
/// as received on `ingress_ifindex` (so the martian list and the host's
/// MAC and addresses apply as on that interface).
#[repr(C)]
#[derive(Default)]
struct XdpMd {
    data: u32,
    data_end: u32,
    data_meta: u32,
    ingress_ifindex: u32,
    rx_queue_index: u32,
    egress_ifindex: u32,
}

fn copy_from_pin<T: Pod>(
    layout: &PinLayout,
    iface: &str,
    name: &str,
    ebpf: &mut Ebpf,
    change: impl FnOnce(T) -> T,
) -> Result<(), ExplainError> {
    let path = layout.map(iface, name);
    let map_err = |source| ExplainError::Map {
        what: path.display().to_string(),
        source,
    };
    let live: Array<MapData, T> =
        Array::try_from(Map::Array(MapData::from_pin(&path).map_err(map_err)?)).map_err(map_err)?;
    let value = live.get(&0, 0).map_err(map_err)?;
    let own = ebpf.map_mut(name).ok_or_else(|| ExplainError::Map {
        what: name.into(),
        source: MapError::InvalidName { name: name.into() },
    })?;
    let mut own: Array<&mut MapData, T> = Array::try_from(own).map_err(map_err)?;
    own.set(0, change(value), 0).map_err(map_err)
}

impl Explainer {
    /// Loads the private instance for an attached interface.
    pub fn new(layout: &PinLayout, iface: &str) -> Result<Explainer, ExplainError> {
        if !layout.link(iface).exists() {
            return Err(ExplainError::NotAttached(iface.into()));
        }
        let ifindex = attach::if_index(iface);
        // The shared lists are adopted from the pins; this instance's own
        // maps are new.
        let mut ebpf = program::load(Some(layout), None)?;
        copy_from_pin::<IfaceSettings>(layout, iface, maps::CONFIG, &mut ebpf, |s| s)?;
        // The live SYN count is not copied: the window's start is counted
        // from this instance's own (zero).
        copy_from_pin::<FloodState>(layout, iface, maps::FLOOD, &mut ebpf, |f| FloodState {
            window_start_syns: 0,
            ..f
        })?;
        let host_err = |source| ExplainError::Host {
            iface: iface.into(),
            source,
        };
        let identity = HostView::read()
            .map_err(host_err)?
            .identity(iface)
            .ok_or_else(|| ExplainError::NotAttached(iface.into()))?;
        HostMaps::of(&ebpf)
            .and_then(|mut maps| maps.write(&identity))
            .map_err(host_err)?;
        Ok(Explainer { ebpf, ifindex })
    }

    fn counters(&self) -> Result<Counters, ExplainError> {
        let map = self.ebpf.map(maps::COUNTERS).ok_or(ExplainError::Map {
            what: maps::COUNTERS.into(),
            source: MapError::InvalidName {
                name: maps::COUNTERS.into(),
            },
        })?;
        Counters::read(map).map_err(|source| ExplainError::Map {
            what: maps::COUNTERS.into(),
            source,
        })
    }

    /// Runs one frame and says what the program did with it.
    pub fn run(&mut self, frame: &[u8]) -> Result<Verdict, ExplainError> {
        let before = self.counters()?;
        let md = XdpMd {
            data_end: frame.len() as u32,
            ingress_ifindex: self.ifindex,
            ..XdpMd::default()
        };
        // SAFETY: `XdpMd` is six u32s, no padding.
        let ctx =
            unsafe { std::slice::from_raw_parts((&raw const md).cast::<u8>(), size_of::<XdpMd>()) };
        let mut out = vec![0u8; frame.len() + 256];
        let result = {
            let xdp = program::xdp(&mut self.ebpf);
            let opts = TestRunOptions {
                data_in: Some(frame),
                data_out: Some(&mut out),
                ctx_in: Some(ctx),
                ..TestRunOptions::default()
            };
            xdp.test_run(opts).map_err(ExplainError::Run)?
        };
        out.truncate(result.data_size_out as usize);
        let delta = self.counters()?.since(&before);
        let (verdict, reason) = delta
            .labelled()
            .find(|(_, _, c)| c.packets > 0)
            .map_or(("aborted", Reason::Internal), |(v, r, _)| (v, r));
        Ok(Verdict {
            action: result.return_value,
            verdict,
            reason,
            answer: (result.return_value == 3).then_some(out),
        })
    }
}
