//! What an interface's driver will do to synguard, said plainly at attach:
//! the traps of cloud NICs that the kernel only logs, or not at all
//! (shared/research notes; drivers/net/virtio_net.c `virtnet_xdp_set`).
use std::{fs, io};

use crate::attach::AttachMode;

/// `SIOCETHTOOL` and its commands (include/uapi/linux/sockios.h,
/// ethtool.h).
const SIOCETHTOOL: libc::c_ulong = 0x8946;
const ETHTOOL_GCHANNELS: u32 = 0x3c;
const ETHTOOL_GSTRINGS: u32 = 0x1b;
const ETHTOOL_GSSET_INFO: u32 = 0x37;
const ETHTOOL_GFEATURES: u32 = 0x3a;
/// The string set of the feature names (`ethtool -k`).
const ETH_SS_FEATURES: u32 = 4;
const ETH_GSTRING_LEN: usize = 32;

/// Offloads that stop a driver's native XDP while on: LRO (merged frames
/// XDP cannot see one by one) and hardware GRO, which virtio_net also
/// reports for the host's guest offloads (drivers/net/virtio_net.c
/// `virtnet_xdp_set`: "Can't set XDP while host is implementing GRO_HW/CSUM").
pub const XDP_BLOCKING_OFFLOADS: &[&str] = &["rx-lro", "rx-gro-hw"];

/// One offload, by the kernel's feature name (`rx-lro`, which `ethtool
/// -k` shows as large-receive-offload; `rx-gro-hw`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Offload {
    pub name: String,
    pub active: bool,
    /// `[fixed]`: the driver does not let it change (on virtio_net, the
    /// hypervisor decides).
    pub fixed: bool,
}

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

/// The interface's driver, as `ethtool -i` names it (veth, bridge,
/// virtio_net), asked over SIOCETHTOOL: sysfs shows only the namespace
/// it was mounted in, so it cannot name the driver of an interface of
/// another network namespace.
pub fn driver(iface: &str) -> Option<String> {
    // struct ethtool_drvinfo: cmd, then driver[32], version[32], ... (196
    // bytes).
    const ETHTOOL_GDRVINFO: u32 = 0x03;
    let mut info = [0u32; 49];
    info[0] = ETHTOOL_GDRVINFO;
    ethtool(iface, &mut info).ok()?;
    let bytes: Vec<u8> = info[1..9].iter().flat_map(|w| w.to_ne_bytes()).collect();
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    (end > 0).then(|| String::from_utf8_lossy(&bytes[..end]).into_owned())
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

/// The interface's offloads, by name (`ethtool -k`), read over
/// SIOCETHTOOL: the names of the feature string set, then their state.
pub fn offloads(iface: &str) -> io::Result<Vec<Offload>> {
    // struct ethtool_sset_info: cmd, reserved, sset_mask (u64), data[1].
    let mut info = [0u32; 5];
    info[0] = ETHTOOL_GSSET_INFO;
    info[2] = 1 << ETH_SS_FEATURES;
    ethtool(iface, &mut info)?;
    let count = info[4] as usize;
    // struct ethtool_gstrings: cmd, string_set, len, then the names.
    let mut strings = vec![0u32; 3 + count * ETH_GSTRING_LEN / 4];
    strings[0] = ETHTOOL_GSTRINGS;
    strings[1] = ETH_SS_FEATURES;
    strings[2] = count as u32;
    ethtool(iface, &mut strings)?;
    let names: Vec<u8> = strings[3..].iter().flat_map(|w| w.to_ne_bytes()).collect();
    // struct ethtool_gfeatures: cmd, size, then per 32 features a block
    // of available, requested, active, never_changed.
    let blocks = count.div_ceil(32);
    let mut features = vec![0u32; 2 + 4 * blocks];
    features[0] = ETHTOOL_GFEATURES;
    features[1] = blocks as u32;
    ethtool(iface, &mut features)?;
    Ok(names
        .chunks(ETH_GSTRING_LEN)
        .take(count)
        .enumerate()
        .map(|(i, name)| {
            let block = &features[2 + 4 * (i / 32)..][..4];
            let bit = 1 << (i % 32);
            let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
            Offload {
                name: String::from_utf8_lossy(&name[..end]).into_owned(),
                active: block[2] & bit != 0,
                fixed: block[0] & bit == 0 || block[3] & bit != 0,
            }
        })
        .collect())
}

/// SIOCETHTOOL with `buf` (a command's struct, as u32 words).
fn ethtool(iface: &str, buf: &mut [u32]) -> io::Result<()> {
    // `buf` outlives the call and is as large as the command writes (its
    // counts, set by the caller, bound what the kernel writes).
    if_ioctl(iface, SIOCETHTOOL, |req| {
        req.ifr_ifru.ifru_data = buf.as_mut_ptr().cast();
    })?;
    Ok(())
}

/// What to tell the operator of offloads that block native XDP, one
/// line each.
pub fn offload_warnings(iface: &str, driver: Option<&str>, offloads: &[Offload]) -> Vec<String> {
    offloads
        .iter()
        .filter(|o| o.active && XDP_BLOCKING_OFFLOADS.contains(&o.name.as_str()))
        .map(|o| {
            let short = match o.name.as_str() {
                "rx-lro" => "lro",
                other => other,
            };
            if o.fixed && driver == Some("virtio_net") {
                format!(
                    "{iface}: {} is on and the guest cannot turn it off (the hypervisor \
                     offers guest offloads without letting the guest control them), which \
                     stops native XDP on virtio_net; have the hypervisor turn them off (qemu: \
                     guest_tso4=off,guest_tso6=off,guest_ecn=off,guest_ufo=off,guest_csum=off \
                     on the virtio-net device) or offer ctrl_guest_offloads",
                    o.name
                )
            } else if o.fixed {
                format!(
                    "{iface}: {} is on and fixed by the driver ({}), which stops native XDP",
                    o.name,
                    driver.unwrap_or("virtual device")
                )
            } else {
                format!(
                    "{iface}: {} is on, which stops native XDP on most drivers: \
                     `ethtool -K {iface} {short} off`",
                    o.name
                )
            }
        })
        .collect()
}

/// Why native attach may have failed, from the interface itself (the
/// driver's reason reaches only the kernel's tracepoint, not bpf(2)'s
/// caller): offloads that block XDP, and an MTU the driver's XDP refuses
/// (ERANGE from veth and others, "MTU too large" from virtio_net).
pub fn native_refusal(iface: &str, error: Option<i32>) -> Vec<String> {
    let driver = driver(iface);
    let mut out = offloads(iface)
        .map(|o| offload_warnings(iface, driver.as_deref(), &o))
        .unwrap_or_default();
    let mtu = mtu(iface).ok();
    if let Some(mtu) = mtu.filter(|&m| m > 1500)
        && (error == Some(libc::ERANGE) || error == Some(libc::EINVAL) || out.is_empty())
    {
        out.push(format!(
            "{iface}: MTU {mtu} may be above what the driver ({}) supports for XDP (a page \
             per frame, about 3500 bytes, on drivers without XDP multi-buffer); try \
             `ip link set {iface} mtu 1500`, or attach with --mode skb",
            driver.as_deref().unwrap_or("virtual device")
        ));
    }
    out
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

/// A veth with native XDP receives through a 256-frame ring per queue
/// (drivers/net/veth.c `VETH_RING_SIZE`), emptied by a NAPI poll on
/// whichever CPU scheduled it; without it, a frame sent into the veth is
/// taken in by the sending CPU's backlog, inside the sender's own call.
/// Measured in the bench's one-CPU scenario (docs/benchmarks.md#one-cpu-the-generator-and-the-receive-work-together):
/// a real client's packet that schedules the poll on another CPU than the
/// flood's sender frees the sender of the receive work, and the ring
/// overflows; in skb mode the backlog keeps the sender paying for it.
pub fn veth_ring_note(iface: &str) -> String {
    format!(
        "{iface} (veth): with native XDP, frames sent into it wait in a 256-frame ring per \
         queue, emptied on whichever CPU scheduled its poll, no longer in the sender's own \
         call: a sender faster than that CPU overflows the ring, and what is lost there (the \
         peer's tx_dropped) includes real clients' SYNs and handshake ACKs; for traffic that \
         reaches {iface} from a namespace or container (not redirected by XDP), --mode skb \
         keeps the sending CPU's backlog; or make the poll a thread on a CPU of its own \
         (echo 1 > /sys/class/net/{iface}/threaded)"
    )
}

/// What to tell the operator about `iface` once attached in `used` mode
/// (having asked for `asked`): one line each. `before` is its queue
/// counts read before attaching: virtio_net counts the queues it gives
/// XDP_TX as in use once attached, so only the counts before say whether
/// there were enough.
pub fn warnings(
    iface: &str,
    asked: AttachMode,
    used: AttachMode,
    before: Option<Channels>,
) -> Vec<String> {
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
    if used == AttachMode::Skb
        && asked == AttachMode::Auto
        && let Ok(offloads) = offloads(iface)
    {
        out.extend(offload_warnings(iface, driver.as_deref(), &offloads));
    }
    if used == AttachMode::Native && driver.as_deref() == Some("veth") {
        out.push(veth_ring_note(iface));
    }
    if used == AttachMode::Native
        && driver.as_deref() == Some("virtio_net")
        && let Some(channels) = before
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
    fn veth_in_native_mode_is_told_of_its_ring_and_the_way_out() {
        let note = veth_ring_note("veth0");
        assert!(note.starts_with("veth0 (veth): "), "{note}");
        assert!(note.contains("256-frame ring"), "{note}");
        assert!(note.contains("tx_dropped"), "{note}");
        assert!(note.contains("--mode skb"), "{note}");
        assert!(note.contains("/sys/class/net/veth0/threaded"), "{note}");
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

    fn offload(name: &str, active: bool, fixed: bool) -> Offload {
        Offload {
            name: name.into(),
            active,
            fixed,
        }
    }

    #[test]
    fn offloads_that_block_xdp_say_what_to_run_or_who_must_act() {
        let lro = [offload("rx-lro", true, false)];
        let w = offload_warnings("eth0", Some("ixgbe"), &lro);
        assert_eq!(w.len(), 1);
        assert!(w[0].contains("`ethtool -K eth0 lro off`"), "{w:?}");
        // virtio_net without ctrl_guest_offloads: only the host can help.
        let gro = [offload("rx-gro-hw", true, true)];
        let w = offload_warnings("eth0", Some("virtio_net"), &gro);
        assert!(w[0].contains("qemu: guest_tso4=off"), "{w:?}");
        assert!(w[0].contains("ctrl_guest_offloads"), "{w:?}");
        // Off, or not a blocking one: nothing to say.
        let quiet = [
            offload("rx-lro", false, false),
            offload("rx-gro", true, false),
        ];
        assert!(offload_warnings("eth0", Some("ixgbe"), &quiet).is_empty());
    }

    #[test]
    fn cpu_lists_count_their_cpus() {
        assert_eq!(parse_cpu_list("0-3"), Some(4));
        assert_eq!(parse_cpu_list("0"), Some(1));
        assert_eq!(parse_cpu_list("0-3,8,10-11"), Some(7));
        assert_eq!(parse_cpu_list("x"), None);
    }
}
