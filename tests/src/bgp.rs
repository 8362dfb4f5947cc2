//! Real BGP speakers for the fleet tests: Debian's gobgpd, one per
//! namespace, each with its API on a Unix socket in a directory of its
//! own, started by the test and killed by pid when its namespace goes.
use std::{
    path::PathBuf,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::netns::{Netns, run_quiet, unique_prefix};

/// A /30 between two namespaces: `a` gets .1, `b` gets .2. The names of
/// the two ends are returned.
pub fn link(a: &Netns, b: &Netns, net: &str) -> Result<(String, String)> {
    let prefix = unique_prefix();
    let (end_a, end_b) = (format!("{prefix}a"), format!("{prefix}b"));
    run_quiet(Command::new("ip").args([
        "link",
        "add",
        &end_a,
        "netns",
        a.name(),
        "type",
        "veth",
        "peer",
        "name",
        &end_b,
        "netns",
        b.name(),
    ]))?;
    for (ns, end, host) in [(a, &end_a, 1), (b, &end_b, 2)] {
        ns.ip(&["addr", "add", &format!("{net}.{host}/30"), "dev", end])?;
        ns.ip(&["link", "set", end, "up"])?;
    }
    Ok((end_a, end_b))
}

/// One neighbor of a speaker's config.
pub struct Neighbor<'a> {
    pub address: String,
    pub asn: u32,
    pub families: &'a [&'a str],
    /// This side waits for the peer to connect.
    pub passive: bool,
    pub rr_client: bool,
}

/// A running gobgpd.
pub struct Gobgpd {
    dir: PathBuf,
    pid: u32,
}

impl Gobgpd {
    /// Starts gobgpd in `ns` with AS `asn`, router id `id` and the given
    /// neighbors.
    pub fn start(ns: &Netns, asn: u32, id: &str, neighbors: &[Neighbor]) -> Result<Gobgpd> {
        let dir = std::env::temp_dir().join(format!("synguard-gobgp-{}", unique_prefix()));
        std::fs::create_dir_all(&dir)?;
        let mut config = format!("[global.config]\n  as = {asn}\n  router-id = \"{id}\"\n");
        for n in neighbors {
            config.push_str(&format!(
                "[[neighbors]]\n  [neighbors.config]\n    neighbor-address = \"{}\"\n    peer-as = {}\n\
                 \x20 [neighbors.timers.config]\n    connect-retry = 1\n    hold-time = 9\n    keepalive-interval = 3\n\
                 \x20 [neighbors.transport.config]\n    passive-mode = {}\n",
                n.address, n.asn, n.passive
            ));
            if n.rr_client {
                config.push_str(&format!(
                    "  [neighbors.route-reflector.config]\n    route-reflector-client = true\n    route-reflector-cluster-id = \"{id}\"\n"
                ));
            }
            for family in n.families {
                config.push_str(&format!(
                    "  [[neighbors.afi-safis]]\n    [neighbors.afi-safis.config]\n      afi-safi-name = \"{family}\"\n"
                ));
            }
        }
        std::fs::write(dir.join("gobgpd.toml"), config)?;
        let mut speaker = Gobgpd { dir, pid: 0 };
        speaker.spawn(ns)?;
        Ok(speaker)
    }

    /// Starts gobgpd in `ns` from the config in its directory, and waits
    /// for its API to answer.
    fn spawn(&mut self, ns: &Netns) -> Result<()> {
        let dir = &self.dir;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("gobgpd.log"))?;
        let mut cmd = ns.command("gobgpd");
        cmd.arg("-f")
            .arg(dir.join("gobgpd.toml"))
            .arg("-p")
            .arg("--api-hosts")
            .arg(format!("unix://{}", dir.join("api.sock").display()))
            .arg("--pprof-disable")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        self.pid = ns
            .spawn(cmd)
            .context("starting gobgpd (is it installed? `cargo xtask setup`)")?;
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.cli(&["global"]).is_err() {
            if Instant::now() > deadline {
                bail!("gobgpd (pid {}) did not answer:\n{}", self.pid, self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Its API, as synguard's `[bgp] api` takes it.
    pub fn api(&self) -> String {
        format!("unix://{}", self.dir.join("api.sock").display())
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("gobgpd.log")).unwrap_or_default()
    }

    /// Runs `gobgp --target <api> args...` (the client needs no
    /// namespace: the socket is a file).
    pub fn cli(&self, args: &[&str]) -> Result<String> {
        let out = Command::new("gobgp")
            .arg("--target")
            .arg(self.api())
            .args(args)
            .output()
            .context("running gobgp")?;
        if !out.status.success() {
            bail!(
                "gobgp {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The paths of one family of the global RIB, as gobgp's JSON has
    /// them (an empty table is an empty list).
    pub fn rib(&self, family: &str) -> Vec<Value> {
        let text = self
            .cli(&["global", "rib", "-a", family, "-j"])
            .unwrap_or_default();
        let json: Value = serde_json::from_str(text.trim()).unwrap_or(Value::Null);
        json.as_object()
            .into_iter()
            .flat_map(|m| m.values())
            .flat_map(|paths| paths.as_array().cloned().unwrap_or_default())
            .collect()
    }

    /// Waits until every session is established.
    pub fn wait_established(&self, peers: usize, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let text = self.cli(&["neighbor", "-j"]).unwrap_or_default();
            let json: Value = serde_json::from_str(text.trim()).unwrap_or(Value::Null);
            let up = json
                .as_array()
                .into_iter()
                .flatten()
                .filter(|p| p["state"]["session_state"] == 6)
                .count();
            if up >= peers {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "{up} of {peers} sessions established after {timeout:?}:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Kills it (SIGKILL, by pid), as a crash would, and starts it again
    /// with the same config and API socket: it comes back with an empty RIB.
    pub fn crash_and_restart(&mut self, ns: &Netns) -> Result<()> {
        // SAFETY: kill(2) on the pid of a child the namespace holds and has
        // not reaped.
        unsafe { libc::kill(self.pid as libc::pid_t, libc::SIGKILL) };
        let socket = self.dir.join("api.sock");
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.cli(&["global"]).is_ok() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = std::fs::remove_file(socket);
        self.spawn(ns)
    }
}

impl Drop for Gobgpd {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("gobgpd (pid {}) log:\n{}", self.pid, self.log());
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The FlowSpec components of a path, by type: 1 destination, 2 source,
/// 3 protocol, 5 destination port, 9 TCP flags.
pub fn flowspec_component(path: &Value, kind: u64) -> Option<Value> {
    path["nlri"]["value"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == kind)
        .map(|c| c["value"].clone())
}

/// The traffic-rate (bytes/s; 0: discard) of a FlowSpec path.
pub fn traffic_rate(path: &Value) -> Option<f64> {
    path["attrs"]
        .as_array()?
        .iter()
        .filter(|a| a["type"] == 16)
        .flat_map(|a| a["value"].as_array().cloned().unwrap_or_default())
        .find(|e| e["subtype"] == 6)?["rate"]
        .as_f64()
}

/// The standard communities of a path.
pub fn communities(path: &Value) -> Vec<u64> {
    path["attrs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|a| a["type"] == 8)
        .flat_map(|a| a["communities"].as_array().cloned().unwrap_or_default())
        .filter_map(|c| c.as_u64())
        .collect()
}

/// The prefix of a unicast path.
pub fn prefix(path: &Value) -> Option<String> {
    path["nlri"]["prefix"].as_str().map(String::from)
}
