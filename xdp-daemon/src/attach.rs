//! Attaching and detaching per interface. Each interface gets its own
//! instance of the program, with its own counters, attached through a
//! bpf_link that is pinned: the program stays attached when synguard exits,
//! and goes when the pin is removed.
use std::{fs, io, str::FromStr};

use aya::{
    pin::PinError,
    programs::{
        ProgramError,
        links::{FdLink, LinkError, PinnedLink},
        xdp::XdpMode,
    },
};

use synguard_common::maps;

use crate::{
    host,
    lists::{ListError, ListMaps},
    pins::PinLayout,
    program::{self, LoadError},
    settings::{self, FloodPolicy, KernelFacts},
};

/// How the program is attached.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AttachMode {
    /// In the driver (fast; needs driver support).
    Native,
    /// In the generic, skb-based path (works on any interface, slower).
    Skb,
    /// Native, falling back to skb where the driver cannot.
    Auto,
}

impl std::fmt::Display for AttachMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Native => "native",
            Self::Skb => "skb",
            Self::Auto => "auto",
        })
    }
}

impl FromStr for AttachMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "native" => Ok(Self::Native),
            "skb" => Ok(Self::Skb),
            "auto" => Ok(Self::Auto),
            other => Err(format!(
                "unknown attach mode {other:?}: use native, skb or auto"
            )),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    #[error("no interface named {0:?} in this network namespace")]
    NoSuchInterface(String),
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error("attaching to {iface} in {mode} mode: {source}{}", hints.iter().map(|h| format!("\n  likely why: {h}")).collect::<String>())]
    Attach {
        iface: String,
        mode: AttachMode,
        #[source]
        source: ProgramError,
        /// What the interface shows that stops native XDP (nic.rs); boxed
        /// to keep the error small.
        hints: Box<[String]>,
    },
    #[error(
        "the kernel attached {iface} without a bpf_link, which cannot be pinned (kernel < 5.9?)"
    )]
    NotALink { iface: String },
    #[error("pinning the link of {iface}: {source}")]
    Pin {
        iface: String,
        #[source]
        source: PinError,
    },
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("reading what the data path needs to know of {iface} and its namespace: {source}")]
    Kernel {
        iface: String,
        #[source]
        source: io::Error,
    },
    #[error("reading or writing what makes a SYN the host's on {iface} (rtnetlink): {source}")]
    Host {
        iface: String,
        #[source]
        source: io::Error,
    },
    #[error("writing the settings of {iface}: {source}")]
    Settings {
        iface: String,
        #[source]
        source: aya::maps::MapError,
    },
    #[error(transparent)]
    Lists(#[from] ListError),
    #[error(
        "another XDP program ({program}) is attached to {iface}; synguard does not replace \
         it unless told to (`synguard attach --replace`, or `replace = true` for the \
         interface in the config)"
    )]
    Occupied { iface: String, program: String },
    #[error(
        "the XDP program ({program}) on {iface} is held by another process's bpf_link and \
         cannot be removed from outside; stop its owner first"
    )]
    HeldByLink { iface: String, program: String },
    #[error("reading the pinned link of {iface}: {source}")]
    Link {
        iface: String,
        #[source]
        source: LinkError,
    },
}

/// What `attach` found or did.
#[derive(Debug, PartialEq, Eq)]
pub enum Attached {
    /// Newly attached, in this mode.
    New(AttachMode),
    /// A pinned link already existed; its settings were updated.
    Already,
}

/// Attaches the program to `iface` with `policy` and pins the link; for an
/// interface already attached, updates its settings. Another XDP program
/// on the interface is an error unless `replace`, which detaches it first
/// (possible for programs attached through netlink, not for another
/// process's bpf_link).
pub fn attach(
    layout: &PinLayout,
    iface: &str,
    mode: AttachMode,
    policy: &FloodPolicy,
    replace: bool,
) -> Result<Attached, AttachError> {
    let io_err = |path: &std::path::Path| {
        let path = path.display().to_string();
        move |source| AttachError::Io { path, source }
    };
    layout.prepare().map_err(io_err(layout.root()))?;
    if if_index(iface) == 0 {
        return Err(AttachError::NoSuchInterface(iface.to_string()));
    }
    let kernel = KernelFacts::read(iface).map_err(|source| AttachError::Kernel {
        iface: iface.into(),
        source,
    })?;
    let config = settings::config(policy, &kernel);
    let host_err = |source| AttachError::Host {
        iface: iface.into(),
        source,
    };
    let view = host::HostView::read().map_err(host_err)?;
    let identity = view
        .identity(iface)
        .ok_or_else(|| AttachError::NoSuchInterface(iface.to_string()))?;
    if layout.link(iface).exists() {
        let written = host::HostMaps::open(layout, iface)
            .and_then(|mut maps| maps.write(&identity))
            .map_err(host_err)?;
        warn_left_out(iface, &written);
        settings::write_pinned(&layout.map(iface, maps::CONFIG), &config).map_err(|source| {
            AttachError::Settings {
                iface: iface.into(),
                source,
            }
        })?;
        return Ok(Attached::Already);
    }
    if let Some(program) = foreign_program(iface) {
        if !replace {
            return Err(AttachError::Occupied {
                iface: iface.into(),
                program,
            });
        }
        remove_foreign(iface);
        if let Some(program) = foreign_program(iface) {
            return Err(AttachError::HeldByLink {
                iface: iface.into(),
                program,
            });
        }
    }
    let dir = layout.iface_dir(iface);
    fs::create_dir_all(&dir).map_err(io_err(&dir))?;
    let result = attach_and_pin(layout, iface, mode, &config, &identity);
    if result.is_err() {
        // Leave nothing half made: no maps pinned without a link.
        let _ = fs::remove_dir_all(&dir);
    }
    result
}

fn attach_and_pin(
    layout: &PinLayout,
    iface: &str,
    mode: AttachMode,
    config: &synguard_common::IfaceSettings,
    identity: &host::Identity,
) -> Result<Attached, AttachError> {
    let mut ebpf = program::load(Some(layout), Some(iface))?;
    // What makes a SYN ours, before the first packet.
    let written = host::HostMaps::of(&ebpf)
        .and_then(|mut maps| maps.write(identity))
        .map_err(|source| AttachError::Host {
            iface: iface.into(),
            source,
        })?;
    warn_left_out(iface, &written);
    settings::write(ebpf.map_mut(maps::CONFIG), config).map_err(|source| {
        AttachError::Settings {
            iface: iface.into(),
            source,
        }
    })?;
    let mut lists = ListMaps::open(layout)?;
    lists.settle_all()?;
    lists.seed_martians()?;
    let xdp = program::xdp(&mut ebpf);
    let attempts: &[(AttachMode, XdpMode)] = match mode {
        AttachMode::Native => &[(AttachMode::Native, XdpMode::Driver)],
        AttachMode::Skb => &[(AttachMode::Skb, XdpMode::Skb)],
        AttachMode::Auto => &[
            (AttachMode::Native, XdpMode::Driver),
            (AttachMode::Skb, XdpMode::Skb),
        ],
    };
    let mut last_error = None;
    for &(used, xdp_mode) in attempts {
        match xdp.attach(iface, xdp_mode) {
            Ok(id) => {
                let link = xdp.take_link(id).map_err(|source| AttachError::Attach {
                    iface: iface.into(),
                    mode: used,
                    source,
                    hints: Box::default(),
                })?;
                let link = FdLink::try_from(link).map_err(|_| AttachError::NotALink {
                    iface: iface.into(),
                })?;
                link.pin(layout.link(iface))
                    .map_err(|source| AttachError::Pin {
                        iface: iface.into(),
                        source,
                    })?;
                return Ok(Attached::New(used));
            }
            Err(source) => last_error = Some((used, source)),
        }
    }
    let (mode, source) = last_error.expect("at least one attempt");
    let hints = if mode == AttachMode::Native {
        crate::nic::native_refusal(iface, os_error(&source)).into()
    } else {
        Box::default()
    };
    Err(AttachError::Attach {
        iface: iface.into(),
        mode,
        source,
        hints,
    })
}

/// The errno somewhere in `error`'s chain.
fn os_error(error: &(dyn std::error::Error + 'static)) -> Option<i32> {
    let mut source = Some(error);
    while let Some(e) = source {
        if let Some(code) = e
            .downcast_ref::<io::Error>()
            .and_then(io::Error::raw_os_error)
        {
            return Some(code);
        }
        source = e.source();
    }
    None
}

/// Says what did not fit the host maps (its SYNs go to the kernel).
fn warn_left_out(iface: &str, written: &host::Written) {
    for what in &written.left_out {
        tracing::warn!("{iface}: not answered from XDP (the host maps are full): {what}");
    }
}

/// What `detach` found or did.
#[derive(Debug, PartialEq, Eq)]
pub enum Detached {
    Detached,
    /// Nothing of synguard was attached there.
    NotAttached,
}

/// Removes the pinned link of `iface` (which detaches the program) and its maps.
pub fn detach(layout: &PinLayout, iface: &str) -> Result<Detached, AttachError> {
    let link_path = layout.link(iface);
    let dir = layout.iface_dir(iface);
    if !link_path.exists() {
        if dir.exists() {
            fs::remove_dir_all(&dir).map_err(|source| AttachError::Io {
                path: dir.display().to_string(),
                source,
            })?;
        }
        return Ok(Detached::NotAttached);
    }
    let pinned = PinnedLink::from_pin(&link_path).map_err(|source| AttachError::Link {
        iface: iface.into(),
        source,
    })?;
    // Dropping the last reference to the link detaches the program.
    drop(pinned.unpin().map_err(|source| AttachError::Io {
        path: link_path.display().to_string(),
        source,
    })?);
    fs::remove_dir_all(&dir).map_err(|source| AttachError::Io {
        path: dir.display().to_string(),
        source,
    })?;
    Ok(Detached::Detached)
}

/// The XDP program on `iface` as `ip -j link` reports it ("name, id N"),
/// if any. Only called when synguard has no link pinned there, so any
/// program found is someone else's.
fn foreign_program(iface: &str) -> Option<String> {
    let out = std::process::Command::new("ip")
        .args(["-j", "link", "show", "dev", iface])
        .output()
        .ok()?;
    let links: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    let xdp = links.get(0)?.get("xdp")?;
    let prog = xdp
        .get("prog")
        .or_else(|| xdp.get("attached")?.get(0)?.get("prog"))?;
    Some(format!(
        "{}, id {}",
        prog.get("name")
            .and_then(|n| n.as_str())
            .unwrap_or("unnamed"),
        prog.get("id").map_or("?".to_string(), |i| i.to_string())
    ))
}

/// Detaches whatever netlink-attached XDP program `iface` has, in any mode.
fn remove_foreign(iface: &str) {
    for mode in ["xdpgeneric", "xdpdrv", "xdpoffload"] {
        let _ = std::process::Command::new("ip")
            .args(["link", "set", "dev", iface, mode, "off"])
            .stderr(std::process::Stdio::null())
            .status();
    }
}

/// The interface's index in the calling thread's namespace (0: none).
pub fn if_index(iface: &str) -> u32 {
    let Ok(name) = std::ffi::CString::new(iface) else {
        return 0;
    };
    // SAFETY: `name` is a valid NUL-terminated string.
    unsafe { libc::if_nametoindex(name.as_ptr()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attach_modes_parse_and_print_alike() {
        for mode in [AttachMode::Native, AttachMode::Skb, AttachMode::Auto] {
            assert_eq!(mode.to_string().parse::<AttachMode>(), Ok(mode));
        }
        let err = "driver".parse::<AttachMode>().unwrap_err();
        assert!(err.contains("native, skb or auto"), "{err}");
    }
}
