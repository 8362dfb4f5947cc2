//! Network namespaces made with `ip netns`, entered per thread with setns(2).
use std::{
    fs::File,
    io,
    os::{fd::AsRawFd, unix::process::CommandExt},
    process::{Child, Command, Stdio},
    sync::{
        Mutex,
        atomic::{AtomicU32, Ordering},
    },
    thread,
};

use anyhow::{Context, Result, bail};

static NEXT_ID: AtomicU32 = AtomicU32::new(0);

/// A short name unique to this process and call: `sg<pid><n>`, at most 12
/// characters, so an interface name built from it fits IFNAMSIZ.
pub fn unique_prefix() -> String {
    let n = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    format!("sg{}x{}", std::process::id() % 100_000, n % 1000)
}

/// A network namespace that exists as long as this value.
pub struct Netns {
    name: String,
    children: Mutex<Vec<Child>>,
}

impl Netns {
    /// Creates `/run/netns/<name>`, with `lo` up.
    pub fn create(name: &str) -> Result<Netns> {
        // A stale namespace of the same name can only be a crashed run of a
        // process with our pid: it is ours to remove.
        if std::path::Path::new("/run/netns").join(name).exists() {
            let _ = run_quiet(Command::new("ip").args(["netns", "del", name]));
        }
        run_quiet(Command::new("ip").args(["netns", "add", name]))?;
        let ns = Netns {
            name: name.to_string(),
            children: Mutex::new(Vec::new()),
        };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `ip -n <ns> args...` and fails with its stderr.
    pub fn ip(&self, args: &[&str]) -> Result<()> {
        run_quiet(Command::new("ip").arg("-n").arg(&self.name).args(args))
    }

    /// Runs `f` on a thread inside this namespace. Sockets made there stay in
    /// the namespace, and can be used from any thread afterwards.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let file = self.open().expect("open netns");
        thread::scope(|s| {
            s.spawn(|| {
                enter(&file).expect("setns");
                f()
            })
            .join()
            .expect("thread in netns panicked")
        })
    }

    /// A command that runs inside this namespace (same mount namespace, so
    /// bpffs pins are shared with the test).
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let file = self.open().expect("open netns");
        let mut cmd = Command::new(program);
        // SAFETY: setns is async-signal-safe; `file` outlives the fork because
        // the closure owns it.
        unsafe {
            cmd.pre_exec(move || enter(&file));
        }
        cmd
    }

    /// Starts a process that is killed (by pid) when the namespace goes.
    pub fn spawn(&self, mut cmd: Command) -> Result<u32> {
        let child = cmd.spawn().with_context(|| format!("spawning {cmd:?}"))?;
        let pid = child.id();
        self.children.lock().unwrap().push(child);
        Ok(pid)
    }

    /// Writes a sysctl of this namespace, e.g. `net.ipv4.tcp_syncookies`.
    pub fn set_sysctl(&self, key: &str, value: &str) -> Result<()> {
        let path = sysctl_path(key);
        self.run(|| std::fs::write(&path, value))
            .with_context(|| format!("setting {key}={value} in {}", self.name))
    }

    pub fn sysctl(&self, key: &str) -> Result<String> {
        let path = sysctl_path(key);
        let value = self
            .run(|| std::fs::read_to_string(&path))
            .with_context(|| format!("reading {key} in {}", self.name))?;
        Ok(value.trim().to_string())
    }

    /// The namespace's SNMP and TCP extension counters (`TcpExtListenDrops`,
    /// `TcpExtSyncookiesRecv`, ...), as nstat names them.
    pub fn netstat(&self) -> Result<std::collections::HashMap<String, u64>> {
        // /proc/thread-self, not /proc/self: the namespace is per thread here.
        let text = self.run(|| -> io::Result<String> {
            let mut all = std::fs::read_to_string("/proc/thread-self/net/netstat")?;
            all.push_str(&std::fs::read_to_string("/proc/thread-self/net/snmp")?);
            Ok(all)
        })?;
        Ok(parse_netstat(&text))
    }

    fn open(&self) -> io::Result<File> {
        File::open(format!("/run/netns/{}", self.name))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for mut child in self.children.lock().unwrap().drain(..) {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = run_quiet(Command::new("ip").args(["netns", "del", &self.name]));
    }
}

fn enter(file: &File) -> io::Result<()> {
    // SAFETY: a valid namespace fd; affects only the calling thread.
    if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn sysctl_path(key: &str) -> String {
    format!("/proc/sys/{}", key.replace('.', "/"))
}

/// Parses /proc/net/{netstat,snmp}, keyed as nstat names the counters
/// (`TcpExtListenDrops`); a negative value (`TcpMaxConn`) counts as 0.
pub fn parse_netstat(text: &str) -> std::collections::HashMap<String, u64> {
    synguard_common::procfs::netstat_fields(text)
        .filter_map(|(prefix, name, value)| {
            let v = value.parse::<i64>().ok()?;
            Some((format!("{prefix}{name}"), v.max(0) as u64))
        })
        .collect()
}

/// Runs a command, failing with its stderr when it fails.
pub fn run_quiet(cmd: &mut Command) -> Result<()> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn netstat_pairs_header_and_value_lines() {
        let text = "TcpExt: SyncookiesSent SyncookiesRecv ListenDrops\nTcpExt: 5 7 0\nIp: Forwarding InReceives\nIp: 2 42\n";
        let stats = parse_netstat(text);
        assert_eq!(stats["TcpExtSyncookiesSent"], 5);
        assert_eq!(stats["TcpExtSyncookiesRecv"], 7);
        assert_eq!(stats["TcpExtListenDrops"], 0);
        assert_eq!(stats["IpInReceives"], 42);
    }

    #[test]
    fn prefixes_fit_interface_names() {
        let p = unique_prefix();
        assert!(p.len() < 15, "{p} leaves no room for a suffix in IFNAMSIZ");
        assert_ne!(unique_prefix(), unique_prefix());
    }
}
