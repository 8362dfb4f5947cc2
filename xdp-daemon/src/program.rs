//! The XDP program object, built from `xdp-prog` by build.rs and embedded in
//! the binary, so the binary is the one artifact to ship.
use std::path::PathBuf;

use aya::{
    Ebpf, EbpfLoader,
    maps::ProgramArray,
    programs::{ProgramError, Xdp},
};
use synguard_common::{CLOCK_GLOBAL, maps};

use crate::{clock, features, pins::PinLayout};

/// The eBPF object (ELF, bpfel).
pub static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/synguard-ebpf"));

/// The programs' names in the object: the one attached, and the cookie
/// path's, which it reaches by a tail call.
pub use synguard_common::{COOKIE_PROGRAM, PROGRAM};

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("loading the XDP object: {0}")]
    Object(#[from] aya::EbpfError),
    #[error("the XDP object has no XDP program named {0}")]
    MissingProgram(&'static str),
    #[error("handing the cookie path's program to the data path ({TAIL}): {0}", TAIL = maps::TAIL)]
    Tail(#[source] aya::maps::MapError),
    #[error("the kernel verifier rejected the XDP program: {0}")]
    Verifier(#[source] ProgramError),
    /// Found by probing after the kernel refused the program.
    #[error("{}", features::describe_missing(&.0.iter().collect::<Vec<_>>()))]
    MissingFeatures(Vec<features::Feature>),
}

/// Loads the program into the kernel. With a layout, its maps are pinned
/// there, and adopted if already pinned: the lists shared by all
/// interfaces, and (given an interface) that interface's own. Without, they
/// live as long as the returned handle (packet tests).
pub fn load(layout: Option<&PinLayout>, iface: Option<&str>) -> Result<Ebpf, LoadError> {
    load_object(OBJECT, layout, iface)
}

/// [`load`] with another build of the program (the cost bench measures
/// one beside the embedded object; it must have the same map layout).
pub fn load_object(
    object: &[u8],
    layout: Option<&PinLayout>,
    iface: Option<&str>,
) -> Result<Ebpf, LoadError> {
    let mut paths: Vec<(&str, PathBuf)> = Vec::new();
    if let Some(layout) = layout {
        for name in maps::SHARED {
            paths.push((name, layout.shared_map(name)));
        }
        if let Some(iface) = iface {
            for name in maps::PER_INTERFACE {
                paths.push((name, layout.map(iface, name)));
            }
        }
    }
    // The data path's clock for this boot: set before the load, so the
    // verifier knows it (an object without it ignores it: `--compare`).
    let clock = clock::data_path_clock();
    let mut loader = EbpfLoader::new();
    loader.override_global(CLOCK_GLOBAL, &clock, false);
    for (name, path) in &paths {
        loader.map_pin_path(name, path.as_path());
    }
    let mut ebpf = loader.load(object)?;
    for name in [PROGRAM, COOKIE_PROGRAM] {
        xdp_named(&mut ebpf, name)?.load().map_err(explain)?;
    }
    // The cookie path's program at index 0 of the data path's tail calls
    // (replacing the one an adopted pin held, from an older load).
    let cookie = xdp_named(&mut ebpf, COOKIE_PROGRAM)?
        .fd()
        .map_err(LoadError::Verifier)?
        .try_clone()
        .map_err(|e| LoadError::Verifier(ProgramError::IOError(e)))?;
    let map =
        ebpf.map_mut(maps::TAIL)
            .ok_or(LoadError::Tail(aya::maps::MapError::InvalidName {
                name: maps::TAIL.to_string(),
            }))?;
    let mut tail = ProgramArray::try_from(map).map_err(LoadError::Tail)?;
    tail.set(0, &cookie, 0).map_err(LoadError::Tail)?;
    Ok(ebpf)
}

/// A refused load explained: the features the kernel lacks, if probing
/// finds any (one line instead of the verifier's log), else the verifier's
/// own words.
fn explain(error: ProgramError) -> LoadError {
    let missing = features::missing();
    if missing.is_empty() {
        LoadError::Verifier(error)
    } else {
        LoadError::MissingFeatures(missing)
    }
}

fn xdp_named<'a>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<&'a mut Xdp, LoadError> {
    ebpf.program_mut(name)
        .and_then(|p| p.try_into().ok())
        .ok_or(LoadError::MissingProgram(name))
}

/// The loaded XDP program of `ebpf`.
pub fn xdp(ebpf: &mut Ebpf) -> &mut Xdp {
    ebpf.program_mut(PROGRAM)
        .and_then(|p| p.try_into().ok())
        .expect("load() checked the program exists and is XDP")
}
