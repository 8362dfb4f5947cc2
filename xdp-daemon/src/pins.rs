//! Where synguard keeps its state: pinned maps and links under bpffs. The
//! pins are the one source of truth shared by the daemon and the CLI, and
//! they keep protection in place when the daemon stops or crashes.
//!
//! Layout, versioned so a build never misreads maps of another layout:
//! `<root>/v<MAP_LAYOUT_VERSION>/{BLOCK_V4,...}` for the lists every
//! interface shares, and `<root>/v<N>/ifaces/<interface>/{link,COUNTERS,...}`
//! for each interface's own program instance.
use std::{
    fs, io,
    path::{Path, PathBuf},
};

use synguard_common::{MAP_LAYOUT_VERSION, maps};

/// The default pin root. bpffs is mounted at /sys/fs/bpf if it is not yet.
pub const DEFAULT_ROOT: &str = "/sys/fs/bpf/synguard";
const BPFFS_MOUNT: &str = "/sys/fs/bpf";
/// `BPF_FS_MAGIC` from include/uapi/linux/magic.h.
const BPF_FS_MAGIC: i64 = 0xcafe_4a11;

#[derive(Clone, Debug)]
pub struct PinLayout {
    root: PathBuf,
    /// The map layout version whose directory this is: this build's, or
    /// an older one whose lists are carried over.
    version: u32,
}

impl PinLayout {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self::of_version(root, MAP_LAYOUT_VERSION)
    }

    /// The pins of another map layout version under the same root.
    pub fn of_version(root: impl Into<PathBuf>, version: u32) -> Self {
        Self {
            root: root.into(),
            version,
        }
    }

    pub fn version(&self) -> u32 {
        self.version
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn versioned(&self) -> PathBuf {
        self.root.join(format!("v{}", self.version))
    }

    fn ifaces(&self) -> PathBuf {
        self.versioned().join("ifaces")
    }

    /// The directory of one interface's link and maps.
    pub fn iface_dir(&self, iface: &str) -> PathBuf {
        self.ifaces().join(iface)
    }

    /// The pinned XDP link: while it exists, the program stays attached.
    pub fn link(&self, iface: &str) -> PathBuf {
        self.iface_dir(iface).join("link")
    }

    pub fn counters(&self, iface: &str) -> PathBuf {
        self.iface_dir(iface).join(maps::COUNTERS)
    }

    /// Where a map is pinned: the shared lists at the versioned root, the
    /// rest in the interface's directory.
    pub fn map(&self, iface: &str, name: &str) -> PathBuf {
        if maps::SHARED.contains(&name) {
            self.versioned().join(name)
        } else {
            self.iface_dir(iface).join(name)
        }
    }

    /// A shared map (allow, block and martian lists).
    pub fn shared_map(&self, name: &str) -> PathBuf {
        self.versioned().join(name)
    }

    /// Interfaces with a pinned link, sorted by name.
    pub fn attached(&self) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        match fs::read_dir(self.ifaces()) {
            Ok(entries) => {
                for entry in entries {
                    let name = entry?.file_name().to_string_lossy().into_owned();
                    if self.link(&name).exists() {
                        names.push(name);
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        names.sort();
        Ok(names)
    }

    /// Pin directories of other map layout versions (`v<N>` other than
    /// this build's): state of another synguard version, never read but
    /// for their lists ([`crate::lists::ListMaps::import`]).
    pub fn other_versions(&self) -> io::Result<Vec<PathBuf>> {
        Ok(self
            .other_layouts()?
            .into_iter()
            .map(|l| l.versioned())
            .collect())
    }

    /// The layouts of the other versions found under the root, oldest
    /// first.
    pub fn other_layouts(&self) -> io::Result<Vec<PinLayout>> {
        let mut out = Vec::new();
        match fs::read_dir(&self.root) {
            Ok(entries) => {
                for entry in entries {
                    let path = entry?.path();
                    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
                    let version = name
                        .strip_prefix('v')
                        .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
                        .and_then(|n| n.parse().ok());
                    if let Some(version) = version
                        && version != self.version
                    {
                        out.push(PinLayout::of_version(self.root.clone(), version));
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        out.sort_by_key(|l| l.version);
        Ok(out)
    }

    /// Makes the pin directories ready: a bpffs under the root (see
    /// `ensure_bpffs`) and the versioned directory the shared maps go in.
    pub fn prepare(&self) -> io::Result<()> {
        self.ensure_bpffs()?;
        fs::create_dir_all(self.versioned())?;
        // The pins are the control path: root only.
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&self.root, fs::Permissions::from_mode(0o700))
    }

    /// Makes sure the root lies on a bpffs, mounting one at /sys/fs/bpf when
    /// the root is below it and nothing is mounted there yet.
    fn ensure_bpffs(&self) -> io::Result<()> {
        let bpffs = Path::new(BPFFS_MOUNT);
        if self.root.starts_with(bpffs) && !is_bpffs(bpffs)? {
            if !in_lasting_mount_namespace() {
                return Err(io::Error::other(format!(
                    "{BPFFS_MOUNT} holds no bpf filesystem in this mount namespace, which is \
                     not the host's (as under `ip netns exec`): a bpffs mounted here would go \
                     with this process, and the pins and attachments with it. Enter only the \
                     network namespace (`nsenter --net=/run/netns/NAME synguard ...`), or mount \
                     a bpffs there that outlives synguard"
                )));
            }
            mount_bpffs(bpffs)?;
        }
        let parent = self.root.parent().unwrap_or(Path::new("/"));
        if !is_bpffs(parent)? {
            return Err(io::Error::other(format!(
                "{} is not on a bpf filesystem; mount one with `mount -t bpf bpf {}`",
                self.root.display(),
                parent.display()
            )));
        }
        Ok(())
    }
}

/// Whether this process's mount namespace is the one a bpffs it mounts
/// outlives it in: PID 1's, or if that cannot be read, its parent's (a
/// command that `ip netns exec` or `unshare -m` runs has one of its own,
/// which ends with it). True if /proc cannot tell.
fn in_lasting_mount_namespace() -> bool {
    let Ok(own) = fs::read_link("/proc/self/ns/mnt") else {
        return true;
    };
    let parent = format!("/proc/{}/ns/mnt", std::os::unix::process::parent_id());
    ["/proc/1/ns/mnt", parent.as_str()]
        .into_iter()
        .find_map(|other| fs::read_link(other).ok())
        .is_none_or(|other| other == own)
}

fn is_bpffs(path: &Path) -> io::Result<bool> {
    let c_path =
        std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).map_err(io::Error::other)?;
    // SAFETY: statfs writes into the zeroed struct we own.
    let mut stat: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(c_path.as_ptr(), &mut stat) } != 0 {
        let err = io::Error::last_os_error();
        return if err.kind() == io::ErrorKind::NotFound {
            Ok(false)
        } else {
            Err(err)
        };
    }
    Ok(stat.f_type as i64 == BPF_FS_MAGIC)
}

fn mount_bpffs(path: &Path) -> io::Result<()> {
    fs::create_dir_all(path)?;
    let target =
        std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).map_err(io::Error::other)?;
    // SAFETY: all pointers are valid NUL-terminated strings for the call.
    let rc = unsafe {
        libc::mount(
            c"bpf".as_ptr(),
            target.as_ptr(),
            c"bpf".as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(io::Error::other(format!(
            "mounting bpffs at {}: {}",
            path.display(),
            io::Error::last_os_error()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_live_under_a_versioned_per_interface_directory() {
        let layout = PinLayout::new("/sys/fs/bpf/synguard");
        let v = MAP_LAYOUT_VERSION;
        assert_eq!(
            layout.link("eth0"),
            PathBuf::from(format!("/sys/fs/bpf/synguard/v{v}/ifaces/eth0/link"))
        );
        assert_eq!(
            layout.counters("eth0"),
            PathBuf::from(format!("/sys/fs/bpf/synguard/v{v}/ifaces/eth0/COUNTERS"))
        );
    }

    #[test]
    fn no_pin_directory_means_nothing_attached() {
        let layout = PinLayout::new("/nonexistent/synguard");
        assert_eq!(layout.attached().unwrap(), Vec::<String>::new());
    }
}
