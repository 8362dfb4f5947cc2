//! What the running kernel offers the XDP program, found by probing: a
//! trial load of a two-instruction XDP program that calls one helper, as
//! libbpf and bpftool probe (`aya::sys::is_helper_supported`). Never by
//! comparing version numbers: distribution kernels backport BPF (RHEL 9's
//! 5.14 carries helpers of 6.x), and a kernel may lack what its version
//! promises.
use aya::{
    programs::{ProgramError, ProgramType},
    sys::{BpfHelper, is_helper_supported},
};

mod map_kinds;
mod probe;

pub use probe::ClockProbe;

use map_kinds::maps;

/// A BPF helper the XDP program calls, and the first Linux release that has
/// it (its commit's first tag).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Helper {
    pub name: &'static str,
    pub id: BpfHelper,
    /// The first mainline release with the helper.
    pub since: (u8, u8),
}

const fn helper(name: &'static str, id: BpfHelper, since: (u8, u8)) -> Helper {
    Helper { name, id, since }
}

/// Every helper the XDP program calls that is newer than XDP itself (4.8),
/// oldest first; a test checks the embedded object against this list, both
/// ways.
pub const HELPERS: &[Helper] = &[
    helper(
        "bpf_xdp_adjust_tail",
        BpfHelper::BPF_FUNC_xdp_adjust_tail,
        (4, 18),
    ),
    helper("bpf_sk_release", BpfHelper::BPF_FUNC_sk_release, (4, 20)),
    helper(
        "bpf_skc_lookup_tcp",
        BpfHelper::BPF_FUNC_skc_lookup_tcp,
        (5, 2),
    ),
    helper(
        "bpf_tcp_gen_syncookie",
        BpfHelper::BPF_FUNC_tcp_gen_syncookie,
        (5, 3),
    ),
    // Inlined as a load by 64-bit JITs (remembered flows' freshness).
    helper("bpf_jiffies64", BpfHelper::BPF_FUNC_jiffies64, (5, 5)),
    helper(
        "bpf_ktime_get_coarse_ns",
        BpfHelper::BPF_FUNC_ktime_get_coarse_ns,
        (5, 11),
    ),
    helper("bpf_loop", BpfHelper::BPF_FUNC_loop, (5, 17)),
    // The capture's ring (BPF_MAP_TYPE_RINGBUF, 5.8).
    helper(
        "bpf_ringbuf_reserve",
        BpfHelper::BPF_FUNC_ringbuf_reserve,
        (5, 8),
    ),
    helper(
        "bpf_ringbuf_submit",
        BpfHelper::BPF_FUNC_ringbuf_submit,
        (5, 8),
    ),
    helper(
        "bpf_ringbuf_discard",
        BpfHelper::BPF_FUNC_ringbuf_discard,
        (5, 8),
    ),
    helper(
        "bpf_xdp_load_bytes",
        BpfHelper::BPF_FUNC_xdp_load_bytes,
        (5, 18),
    ),
    helper(
        "bpf_xdp_store_bytes",
        BpfHelper::BPF_FUNC_xdp_store_bytes,
        (5, 18),
    ),
    helper(
        "bpf_xdp_get_buff_len",
        BpfHelper::BPF_FUNC_xdp_get_buff_len,
        (5, 18),
    ),
    helper(
        "bpf_map_lookup_percpu_elem",
        BpfHelper::BPF_FUNC_map_lookup_percpu_elem,
        (5, 19),
    ),
    helper(
        "bpf_tcp_raw_gen_syncookie_ipv4",
        BpfHelper::BPF_FUNC_tcp_raw_gen_syncookie_ipv4,
        (6, 0),
    ),
    helper(
        "bpf_tcp_raw_gen_syncookie_ipv6",
        BpfHelper::BPF_FUNC_tcp_raw_gen_syncookie_ipv6,
        (6, 0),
    ),
    helper(
        "bpf_tcp_raw_check_syncookie_ipv4",
        BpfHelper::BPF_FUNC_tcp_raw_check_syncookie_ipv4,
        (6, 0),
    ),
    helper(
        "bpf_tcp_raw_check_syncookie_ipv6",
        BpfHelper::BPF_FUNC_tcp_raw_check_syncookie_ipv6,
        (6, 0),
    ),
];

/// One thing the program needs of the kernel, as probed.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Feature {
    /// A name that says what was probed: the helper's (`bpf_loop`), a map
    /// kind (`map_lpm_trie_no_prealloc`), `xdp_frags`, `xdp_link`. The
    /// metric `synguard_kernel_feature` has it as its label.
    pub name: String,
    /// The first mainline release with it, e.g. "5.17".
    pub since: String,
    /// Found by probing; null when the kernel would not say (probing
    /// needs CAP_BPF, or root).
    pub present: Option<bool>,
}

impl Feature {
    fn new(name: impl Into<String>, since: (u8, u8), present: Option<bool>) -> Self {
        Feature {
            name: name.into(),
            since: format!("{}.{}", since.0, since.1),
            present,
        }
    }

    /// (major, minor) of `since`.
    fn release(&self) -> (u8, u8) {
        let mut parts = self.since.split('.').map(|p| p.parse().unwrap_or(0));
        (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
    }
}

/// Every helper of [`HELPERS`], probed.
fn helpers() -> Vec<Feature> {
    HELPERS
        .iter()
        .map(|h| {
            let present = match is_helper_supported(ProgramType::Xdp, h.id) {
                Ok(yes) => Some(yes),
                Err(ProgramError::SyscallError(e))
                    if e.io_error.raw_os_error() == Some(libc::EPERM) =>
                {
                    None
                }
                Err(_) => Some(false),
            };
            Feature::new(h.name, h.since, present)
        })
        .collect()
}

/// What the running kernel offers synguard, by probing.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Offers {
    /// The helpers, map kinds, `xdp_frags` and `xdp_link`.
    pub features: Vec<Feature>,
    /// The trial load of synguard's own programs: Ok, or the one-line
    /// reason; None without the privilege to try.
    pub program_loads: Option<Result<(), String>>,
    /// net.ipv4.tcp_timestamps now.
    pub tcp_timestamps: Option<i64>,
}

/// How synguard runs on this kernel, because of what it offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Everything: cookies from XDP keep window scaling and SACK.
    Full,
    /// The program runs, but cookies made at XDP carry the MSS only
    /// (tcp_timestamps is not 2).
    Degraded,
    /// The kernel refuses the program, or cannot pin its link.
    Refused,
    /// Not probed (no privilege).
    Unknown,
}

impl Mode {
    /// As the JSON and the metric's label name it.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Full => "full",
            Mode::Degraded => "degraded",
            Mode::Refused => "refused",
            Mode::Unknown => "unknown",
        }
    }
}

impl Offers {
    /// Probes the kernel: each feature, then a trial load of the embedded
    /// programs (maps unpinned, nothing attached), so a kernel is never
    /// called fine that then rejects the program.
    pub fn probe() -> Self {
        let mut features = helpers();
        features.extend(maps());
        features.push(Feature::new("xdp_frags", (5, 18), probe::xdp_frags()));
        features.push(Feature::new("xdp_link", (5, 9), probe::xdp_link()));
        Offers {
            features,
            program_loads: trial_load(),
            tcp_timestamps: crate::sysctl::read("net.ipv4.tcp_timestamps").ok(),
        }
    }

    /// The features probing found missing.
    pub fn missing(&self) -> Vec<&Feature> {
        self.features
            .iter()
            .filter(|f| f.present == Some(false))
            .collect()
    }

    /// The mode, and why in one line.
    pub fn mode(&self) -> (Mode, String) {
        let missing = self.missing();
        match &self.program_loads {
            Some(Err(e)) => return (Mode::Refused, e.clone()),
            // Loaded, but synguard pins a bpf_link to keep it attached.
            Some(Ok(())) if !missing.is_empty() => {
                return (Mode::Refused, describe_missing(&missing));
            }
            Some(Ok(())) => {}
            None => {
                return (
                    Mode::Unknown,
                    "not probed: the trial load needs root or CAP_BPF".into(),
                );
            }
        }
        match self.tcp_timestamps {
            Some(2) => (
                Mode::Full,
                "every feature synguard uses; SYN cookies from XDP keep window scaling and \
                 SACK (net.ipv4.tcp_timestamps=2)"
                    .into(),
            ),
            other => (
                Mode::Degraded,
                format!(
                    "SYN cookies from XDP carry the MSS only: net.ipv4.tcp_timestamps is {}, \
                     not 2 (the daemon sets 2; by hand: sysctl -w net.ipv4.tcp_timestamps=2)",
                    other.map_or("unreadable".into(), |v| v.to_string())
                ),
            ),
        }
    }

    /// One row per feature for the metric `synguard_kernel_feature`:
    /// the probed features, `program_load` and `tcp_timestamps_2`; those
    /// that could not be probed are left out.
    pub fn metric_rows(&self) -> Vec<(String, bool)> {
        let mut rows: Vec<(String, bool)> = self
            .features
            .iter()
            .filter_map(|f| Some((f.name.clone(), f.present?)))
            .collect();
        if let Some(loads) = &self.program_loads {
            rows.push(("program_load".into(), loads.is_ok()));
        }
        if let Some(ts) = self.tcp_timestamps {
            rows.push(("tcp_timestamps_2".into(), ts == 2));
        }
        rows
    }
}

/// Loads the embedded programs with their maps unpinned, and drops them:
/// Some(Err) with the reason in one line if the kernel refuses them, None
/// without the privilege to try.
pub fn trial_load() -> Option<Result<(), String>> {
    match crate::program::load(None, None) {
        Ok(_) => Some(Ok(())),
        Err(e) => {
            // EPERM anywhere in the chain (a map aya could not create, the
            // program load): not allowed to try, which says nothing of
            // the kernel.
            let mut source: Option<&dyn std::error::Error> = Some(&e);
            let mut unprivileged = false;
            while let Some(err) = source {
                unprivileged |= err.to_string().contains("Operation not permitted");
                source = err.source();
            }
            let line = e.to_string();
            (!unprivileged).then(|| Err(line.lines().next().unwrap_or_default().to_string()))
        }
    }
}

/// The features of [`Offers::probe`] but the trial load, that the kernel
/// lacks (what a refused load is explained by).
pub fn missing() -> Vec<Feature> {
    let mut features = helpers();
    features.extend(maps());
    features.push(Feature::new("xdp_frags", (5, 18), probe::xdp_frags()));
    features.retain(|f| f.present == Some(false));
    features
}

/// One line: the first release with every missing feature, then the
/// features by release, e.g. "synguard's XDP program needs Linux 6.0 or
/// later (or these features backported); this kernel lacks bpf_loop
/// (Linux 5.17); bpf_tcp_raw_gen_syncookie_ipv4 (Linux 6.0)".
pub fn describe_missing(missing: &[&Feature]) -> String {
    let Some(needed) = missing.iter().map(|f| f.release()).max() else {
        return "this kernel has every BPF feature synguard's XDP program uses".into();
    };
    let mut releases: Vec<(u8, u8)> = missing.iter().map(|f| f.release()).collect();
    releases.sort();
    releases.dedup();
    let groups: Vec<String> = releases
        .iter()
        .map(|&since| {
            let names: Vec<&str> = missing
                .iter()
                .filter(|f| f.release() == since)
                .map(|f| f.name.as_str())
                .collect();
            format!("{} (Linux {}.{})", names.join(", "), since.0, since.1)
        })
        .collect();
    format!(
        "synguard's XDP program needs Linux {}.{} or later (or these BPF features backported); \
         this kernel lacks {}",
        needed.0,
        needed.1,
        groups.join("; ")
    )
}

#[cfg(test)]
mod tests;
