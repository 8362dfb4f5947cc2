//! Where the flood lab's work runs, and how much CPU it took.
//!
//! A veth pair has no interrupts: whoever schedules the receiving side's
//! NAPI runs it, so by default the target's receive work lands on the
//! sender's CPU, mixed with the generator's. The benchmark therefore makes
//! each veth end's NAPI a kernel thread (`/sys/class/net/IF/threaded`),
//! pins the target's to one CPU and the generator and the outside's to the
//! other, and reads the target thread's CPU time from
//! `/proc/PID/schedstat` (nanoseconds on CPU, whatever the tick).
use std::{
    fs, io,
    process::Command,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::Duration,
};

use anyhow::{Context, Result, bail};

use crate::netns::{Netns, run_quiet};

/// Pins the calling thread (tid 0) or task `pid` to one CPU.
pub fn pin(pid: u32, cpu: usize) -> io::Result<()> {
    // SAFETY: a zeroed cpu_set_t with one bit set is a valid mask.
    let rc = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(pid as i32, std::mem::size_of::<libc::cpu_set_t>(), &set)
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Pins the calling thread to `cpu`.
pub fn pin_current(cpu: usize) -> io::Result<()> {
    pin(0, cpu)
}

/// Gives task `pid` a real-time priority (SCHED_FIFO), so it runs as soon
/// as it has work, ahead of any ordinary task on its CPU.
pub fn realtime(pid: u32, priority: i32) -> io::Result<()> {
    let param = libc::sched_param {
        sched_priority: priority,
    };
    // SAFETY: a valid sched_param for SCHED_FIFO.
    if unsafe { libc::sched_setscheduler(pid as i32, libc::SCHED_FIFO, &param) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Keeps one CPU from going idle while it lives: a thread at the lowest
/// priority (SCHED_IDLE) spins there, yielding to any other task at once.
/// On this VM, a vCPU that halts takes long enough to wake that a veth
/// ring overflows while the NAPI thread it should run sits waiting, so
/// the target would lose frames for reasons that are not its defence's.
/// The NAPI thread's own CPU time is what is measured; the spinner's is not.
pub struct KeepAwake {
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl KeepAwake {
    pub fn on(cpu: usize) -> io::Result<KeepAwake> {
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = thread::spawn(move || {
            let param = libc::sched_param { sched_priority: 0 };
            // SAFETY: a valid sched_param for SCHED_IDLE, on this thread.
            let idle = unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) };
            let ready = pin_current(cpu).and_then(|()| {
                if idle == 0 {
                    Ok(())
                } else {
                    Err(io::Error::last_os_error())
                }
            });
            let ok = ready.is_ok();
            let _ = tx.send(ready);
            while ok && !stopping.load(Ordering::Relaxed) {
                std::hint::spin_loop();
            }
        });
        let ready = rx
            .recv()
            .unwrap_or_else(|_| Err(io::Error::other("spinner died")));
        let guard = KeepAwake {
            stop,
            thread: Some(thread),
        };
        ready.map(|()| guard)
    }
}

impl Drop for KeepAwake {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// CPU time the calling thread has run.
pub fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: writes one timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// CPU time task `pid` has run, from the scheduler's own clock.
pub fn task_cpu(pid: u32) -> io::Result<Duration> {
    let text = fs::read_to_string(format!("/proc/{pid}/schedstat"))?;
    let ns = text
        .split_whitespace()
        .next()
        .and_then(|v| v.parse::<u64>().ok())
        .ok_or_else(|| io::Error::other(format!("unreadable /proc/{pid}/schedstat: {text}")))?;
    Ok(Duration::from_nanos(ns))
}

/// Turns on threaded NAPI for `iface` in `ns` and returns the pids of its
/// NAPI threads. veth runs NAPI only with an XDP program attached or GRO
/// on, so GRO is turned on first. The sysfs attribute is per namespace, and
/// only `ip netns exec` mounts that namespace's sysfs.
pub fn threaded_napi(ns: &Netns, iface: &str) -> Result<Vec<u32>> {
    run_quiet(ns.command("ethtool").args(["-K", iface, "gro", "on"]))
        .with_context(|| format!("turning GRO on for {iface}"))?;
    run_quiet(Command::new("ip").args([
        "netns",
        "exec",
        ns.name(),
        "sh",
        "-c",
        &format!("echo 1 > /sys/class/net/{iface}/threaded"),
    ]))
    .with_context(|| format!("turning threaded NAPI on for {iface}"))?;
    // The threads are named napi/<iface>-<napi id> (cut to 15 characters).
    let want = format!("napi/{iface}-");
    let want = &want[..want.len().min(15)];
    for _ in 0..50 {
        let pids = kernel_threads(want)?;
        if !pids.is_empty() {
            return Ok(pids);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    bail!("no NAPI thread {want}* appeared for {iface}")
}

/// Pids of kernel threads whose name starts with `prefix`.
pub fn kernel_threads(prefix: &str) -> Result<Vec<u32>> {
    let mut pids = Vec::new();
    for entry in fs::read_dir("/proc")? {
        let entry = entry?;
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
            continue;
        };
        if let Ok(comm) = fs::read_to_string(entry.path().join("comm"))
            && comm.trim_end().starts_with(prefix)
        {
            pids.push(pid);
        }
    }
    Ok(pids)
}

/// What the machine is: for the record next to the figures.
pub struct Machine {
    pub cpus: usize,
    pub cpu_model: String,
    pub kernel: String,
}

impl Machine {
    pub fn read() -> Machine {
        let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
            .unwrap_or_else(|| "unknown".into());
        let kernel = fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "unknown".into());
        Machine {
            // SAFETY: sysconf has no preconditions.
            cpus: unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) }.max(1) as usize,
            cpu_model,
            kernel,
        }
    }
}
