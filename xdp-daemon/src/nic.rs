//! What an interface's driver will do to synguard, said plainly at attach:
//! the traps of cloud NICs that the kernel only logs, or not at all
//! (shared/research notes; drivers/net/virtio_net.c `virtnet_xdp_set`).
use std::{fs, io, path::Path};

use crate::attach::AttachMode;

/// `SIOCETHTOOL` and `ETHTOOL_GCHANNELS` (include/uapi/linux/sockios.h,
/// ethtool.h).
const SIOCETHTOOL: libc::c_ulong = 0x8946;
const ETHTOOL_GCHANNELS: u32 = 0x3c;

/// `struct ethtool_channels`: the maximum and current queue counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct Channels {
    cmd: u32,
    pub max_rx: u32,
    pub max_tx: u32,
    pub max_other: u32,
    pub max_combined: u32,
    pub rx_count: u32,
    pub tx_count: u32,
    pub other_count: u32,
    pub combined_count: u32,
}

/// The interface's driver, as sysfs names it (none for virtual devices
/// such as veth).
pub fn driver(iface: &str) -> Option<String> {
    let link = fs::read_link(
        Path::new("/sys/class/net")
            .join(iface)
            .join("device/driver"),
    )
    .ok()?;
    Some(link.file_name()?.to_string_lossy().into_owned())
}

/// The interface's queue counts (`ethtool -l`).
pub fn channels(iface: &str) -> io::Result<Channels> {
    let mut channels = Channels {
        cmd: ETHTOOL_GCHANNELS,
        ..Channels::default()
    };
    // `channels` outlives the call, and SIOCETHTOOL with ETHTOOL_GCHANNELS
    // writes one `struct ethtool_channels` there.
    if_ioctl(iface, SIOCETHTOOL, |req| {
        req.ifr_ifru.ifru_data = (&raw mut channels).cast();
    })?;
    Ok(channels)
}

/// The interface's MTU (SIOCGIFMTU).
pub fn mtu(iface: &str) -> io::Result<u32> {
    let req = if_ioctl(iface, libc::SIOCGIFMTU, |_| {})?;
    // SAFETY: SIOCGIFMTU filled the MTU member of the union.
    Ok(unsafe { req.ifr_ifru.ifru_mtu } as u32)
}

/// An interface ioctl on a throwaway socket of the calling thread's
/// namespace: an `ifreq` with the name, then whatever `fill` adds.
fn if_ioctl(
    iface: &str,
    request: libc::c_ulong,
    fill: impl FnOnce(&mut libc::ifreq),
) -> io::Result<libc::ifreq> {
    // SAFETY: an all-zero ifreq is valid; the name is NUL-terminated (at
    // most IFNAMSIZ - 1 bytes); the socket is closed on every path.
    unsafe {
        let mut req: libc::ifreq = std::mem::zeroed();
        for (dst, src) in req
            .ifr_name
            .iter_mut()
            .zip(iface.bytes().take(libc::IFNAMSIZ - 1))
        {
            *dst = src as libc::c_char;
        }
        fill(&mut req);
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM, 0);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let rc = libc::ioctl(fd, request, &mut req);
        let err = io::Error::last_os_error();
        libc::close(fd);
        if rc != 0 {
            return Err(err);
        }
        Ok(req)
    }
}

/// The CPUs XDP_TX may run on (the kernel sizes virtio_net's XDP queues by
/// `nr_cpu_ids`, the possible CPUs).
pub fn possible_cpus() -> u32 {
    fs::read_to_string("/sys/devices/system/cpu/possible")
        .ok()
        .and_then(|s| parse_cpu_list(s.trim()))
        .unwrap_or(1)
}

/// The number of CPUs in a list such as "0-3,8".
fn parse_cpu_list(list: &str) -> Option<u32> {
    let mut n = 0;
    for part in list.split(',') {
        n += match part.split_once('-') {
            Some((a, b)) => b.parse::<u32>().ok()? - a.parse::<u32>().ok()? + 1,
            None => {
                part.parse::<u32>().ok()?;
                1
            }
        };
    }
    Some(n)
}

/// virtio_net sends XDP_TX (synguard's SYN-ACKs) on a queue pair of its
/// own per CPU, beyond the ones in use, when the hypervisor offers enough;
/// otherwise it shares the in-use queues under a lock ("XDP_TX and
/// XDP_REDIRECT will operate in a slower locked tx mode").
pub fn virtio_queue_warning(iface: &str, channels: &Channels, cpus: u32) -> Option<String> {
    let in_use = channels.combined_count;
    let max = channels.max_combined;
    if in_use + cpus <= max {
        return None;
    }
    Some(format!(
        "{iface} (virtio_net) has {max} queue pairs for {in_use} in use and {cpus} CPUs: \
         the SYN-ACKs synguard sends from XDP share the in-use queues under a lock (slower in \
         a flood); have the hypervisor offer at least {} queue pairs (qemu: queues={0}, \
         vectors={}), or lower the queues in use with `ethtool -L {iface} combined {}`",
        in_use + cpus,
        2 * (in_use + cpus) + 2,
        max.saturating_sub(cpus).max(1),
    ))
}

/// What to tell the operator about `iface` once attached in `used` mode
/// (having asked for `asked`): one line each.
pub fn warnings(iface: &str, asked: AttachMode, used: AttachMode) -> Vec<String> {
    let mut out = Vec::new();
    let driver = driver(iface);
    if asked == AttachMode::Auto && used == AttachMode::Skb {
        out.push(format!(
            "{iface}: the driver ({}) refused native XDP, so synguard runs in skb (generic) \
             mode: every frame is turned into an skb before synguard sees it, several times \
             the cost per packet in a flood; see the kernel log (`dmesg`) for why (on \
             virtio_net: guest offloads such as LRO or checksum offload must be off: \
             `ethtool -K {iface} lro off`), or attach with --mode native to see the error",
            driver.as_deref().unwrap_or("virtual device")
        ));
    }
    if used == AttachMode::Native
        && driver.as_deref() == Some("virtio_net")
        && let Ok(channels) = channels(iface)
        && let Some(w) = virtio_queue_warning(iface, &channels, possible_cpus())
    {
        out.push(w);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ch(max: u32, in_use: u32) -> Channels {
        Channels {
            max_combined: max,
            combined_count: in_use,
            ..Channels::default()
        }
    }

    #[test]
    fn virtio_warns_when_xdp_tx_would_share_queues() {
        // A cloud VM: as many queues as vCPUs, all in use.
        let w = virtio_queue_warning("eth0", &ch(4, 4), 4).unwrap();
        assert!(w.contains("at least 8 queue pairs"), "{w}");
        assert!(w.contains("queues=8, vectors=18"), "{w}");
        assert!(w.contains("ethtool -L eth0 combined"), "{w}");
        // One queue, one CPU, two offered: XDP_TX has its own.
        assert_eq!(virtio_queue_warning("eth0", &ch(2, 1), 1), None);
        assert!(virtio_queue_warning("eth0", &ch(1, 1), 2).is_some());
    }

    #[test]
    fn cpu_lists_count_their_cpus() {
        assert_eq!(parse_cpu_list("0-3"), Some(4));
        assert_eq!(parse_cpu_list("0"), Some(1));
        assert_eq!(parse_cpu_list("0-3,8,10-11"), Some(7));
        assert_eq!(parse_cpu_list("x"), None);
    }
}
