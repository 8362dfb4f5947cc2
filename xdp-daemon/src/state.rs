//! The state directory (`/run/synguard` by default): what the pinned maps
//! cannot hold. The sysctl values from before synguard changed them, the
//! comment and origin of each list entry, the running daemon's status, and
//! the lock that makes concurrent changes safe. It lives on /run, like the
//! pins on bpffs, so both vanish together at reboot.
use std::{
    collections::BTreeMap,
    fs::{self, File, OpenOptions},
    io::{self, Write},
    os::{fd::AsRawFd, unix::fs::OpenOptionsExt},
    path::{Path, PathBuf},
};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::lists::List;

pub const DEFAULT_STATE_DIR: &str = "/run/synguard";

/// Now, in Unix seconds: the clock of list expiries and the status file.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[derive(Clone, Debug)]
pub struct StateDir {
    dir: PathBuf,
}

/// Held while changing pinned state; released on drop.
pub struct Lock(#[allow(dead_code)] File);

impl StateDir {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    pub fn sysctl_originals(&self) -> PathBuf {
        self.dir.join("sysctl-originals.json")
    }

    fn list_meta_path(&self) -> PathBuf {
        self.dir.join("lists.json")
    }

    pub fn status_path(&self) -> PathBuf {
        self.dir.join("daemon.json")
    }

    /// Creates the directory, readable by root only.
    pub fn ensure(&self) -> io::Result<()> {
        fs::create_dir_all(&self.dir)?;
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&self.dir, fs::Permissions::from_mode(0o700))
    }

    /// Takes the lock every change to pinned state holds, so a CLI verb and
    /// the daemon (or two CLI verbs) never interleave a read-modify-write.
    pub fn lock(&self) -> io::Result<Lock> {
        self.ensure()?;
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(self.dir.join("lock"))?;
        // SAFETY: flock on a descriptor we own.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Lock(file))
    }

    /// Writes a file whole or not at all (write to a temporary, rename).
    pub fn write_atomic(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        self.ensure()?;
        let tmp = path.with_extension("tmp");
        {
            let mut f = OpenOptions::new()
                .create(true)
                .truncate(true)
                .write(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(bytes)?;
            f.sync_all()?;
        }
        fs::rename(&tmp, path)
    }

    pub fn list_meta(&self) -> io::Result<ListMeta> {
        match fs::read(self.list_meta_path()) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(io::Error::other),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(ListMeta::default()),
            Err(e) => Err(e),
        }
    }

    pub fn save_list_meta(&self, meta: &ListMeta) -> io::Result<()> {
        let json = serde_json::to_vec_pretty(meta).map_err(io::Error::other)?;
        self.write_atomic(&self.list_meta_path(), &json)
    }

    pub fn daemon_status(&self) -> io::Result<Option<DaemonStatus>> {
        match fs::read(self.status_path()) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(io::Error::other),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub fn save_daemon_status(&self, status: &DaemonStatus) -> io::Result<()> {
        let json = serde_json::to_vec_pretty(status).map_err(io::Error::other)?;
        self.write_atomic(&self.status_path(), &json)
    }

    pub fn remove_daemon_status(&self) -> io::Result<()> {
        match fs::remove_file(self.status_path()) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

/// Who put a list entry there.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Origin {
    /// A person, through the CLI.
    Cli,
    /// The config file (removed again when it leaves the config).
    Config,
    /// The daemon, for a source over its SYN budget.
    OverBudget,
    /// The fleet: a route with the fleet community (removed when withdrawn).
    Bgp,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryMeta {
    pub origin: Origin,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// Announced to the fleet (`block --share`) by the running daemon.
    #[serde(default, skip_serializing_if = "is_false")]
    pub share: bool,
    /// Announced upstream as a FlowSpec discard (`block --upstream`).
    #[serde(default, skip_serializing_if = "is_false")]
    pub upstream: bool,
}

fn is_false(b: &bool) -> bool {
    !b
}

/// Comments and origins of list entries, by list name then CIDR.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListMeta {
    #[serde(default)]
    pub block: BTreeMap<IpNet, EntryMeta>,
    #[serde(default)]
    pub allow: BTreeMap<IpNet, EntryMeta>,
}

impl ListMeta {
    /// The records of `list`; the martians have none.
    pub fn of(&self, list: List) -> Option<&BTreeMap<IpNet, EntryMeta>> {
        match list {
            List::Block => Some(&self.block),
            List::Allow => Some(&self.allow),
            List::Martian => None,
        }
    }

    /// As [`ListMeta::of`], to change them (`lists::entries` does).
    pub fn of_mut(&mut self, list: List) -> Option<&mut BTreeMap<IpNet, EntryMeta>> {
        match list {
            List::Block => Some(&mut self.block),
            List::Allow => Some(&mut self.allow),
            List::Martian => None,
        }
    }
}

/// What the running daemon writes for `status`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DaemonStatus {
    pub pid: u32,
    pub config: PathBuf,
    /// Unix seconds.
    pub started: u64,
    /// Unix seconds of the last (re)load that took effect.
    pub loaded: u64,
    pub interfaces: Vec<String>,
    pub sysctls: BTreeMap<String, i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<String>,
    /// The attach mode in use per interface ("adopted": found attached).
    #[serde(default)]
    pub modes: BTreeMap<String, String>,
    /// The last reload that was refused, and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_reload_error: Option<String>,
}

impl DaemonStatus {
    /// Whether the process that wrote this is still alive.
    pub fn alive(&self) -> bool {
        Path::new(&format!("/proc/{}", self.pid)).exists()
    }
}
