#!/usr/bin/env python3
"""synguard's smoke checks on one kernel, run as root inside a VM that
`cargo xtask matrix` boots (or on the host's own kernel).

Usage: smoke.py SYNGUARD OUT_JSON [VIRTIO_MAC,VIRTIO_MAC]

The MACs name two virtio-net NICs that matrix.rs gives the VM, joined on a
qemu hub; only NICs with those MACs are used (never a host's own NIC).

Two namespaces joined by a veth pair (198.18.0.0/24, 2001:2::/64): `out`
(clients) and `tgt` (a listener, synguard attached native to its end). Each
check gets "pass", "fail" or "skip" and a one-line detail; the verdicts go to
OUT_JSON, which the host reads (the VM's console output is not reliable).
"""
import ctypes
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

SYNGUARD, OUT = sys.argv[1], sys.argv[2]
VIRTIO_MACS = sys.argv[3].lower().split(",") if len(sys.argv) > 3 else []
PIN_ROOT = "/sys/fs/bpf/synguard-smoke"
OUT_IF, TGT_IF = "smk-out", "smk-tgt"
OUT_NS, TGT_NS = "smoke-out", "smoke-tgt"
V4_OUT, V4_TGT = "198.18.0.1", "198.18.0.2"
V6_OUT, V6_TGT = "2001:2::1", "2001:2::2"
PORT = 8080
results = {"kernel": os.uname().release, "checks": {}}


def record(check, verdict, detail=""):
    results["checks"][check] = {"verdict": verdict, "detail": detail.strip()[-2000:]}
    save()


def save():
    with open(OUT + ".tmp", "w") as f:
        json.dump(results, f, indent=1)
    os.replace(OUT + ".tmp", OUT)


def sh(*args, check=True, timeout=120):
    p = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: exit {p.returncode}: {p.stdout}{p.stderr}")
    return p


def synguard(*args, check=True):
    return sh("nsenter", f"--net=/run/netns/{TGT_NS}", SYNGUARD, "--pin-root", PIN_ROOT,
              *args, check=check)


def counters(ns=TGT_NS, device=TGT_IF):
    out = sh("nsenter", f"--net=/run/netns/{ns}", SYNGUARD, "--pin-root", PIN_ROOT, "--json",
             "stats").stdout
    rows = {}
    for dev in json.loads(out):
        if dev.get("device") == device:
            for row in dev["counters"]:
                key = (row["verdict"], row["reason"])
                rows[key] = rows.get(key, 0) + row["packets"]
    return rows


def netstat(ns):
    text = sh("ip", "netns", "exec", ns, "cat", "/proc/net/netstat").stdout.splitlines()
    out = {}
    for names, values in zip(text[::2], text[1::2]):
        prefix, names = names.split(":", 1)
        for n, v in zip(names.split(), values.split(":", 1)[1].split()):
            out[f"{prefix}.{n}"] = int(v)
    return out


# bpf(2) on x86-64, and what of include/uapi/linux/bpf.h it needs.
SYS_BPF = 321
BPF_PROG_LOAD, BPF_OBJ_PIN = 5, 6
BPF_PROG_TYPE_XDP = 6
BPF_ATTR_SIZE = 128  # more than the members used; the rest stays zero
MOV64_IMM_R0, EXIT = 0xB7, 0x95
XDP_PASS = 2


def attach_pass(ifname):
    """XDP_PASS on the outside end: XDP_TX on veth delivers only when the
    receiving peer runs XDP (or has NAPI some other way)."""
    libc = ctypes.CDLL(None, use_errno=True)
    insns = (struct.pack("<BBhi", MOV64_IMM_R0, 0, 0, XDP_PASS)
             + struct.pack("<BBhi", EXIT, 0, 0, 0))
    ibuf = ctypes.create_string_buffer(insns)
    lic = ctypes.create_string_buffer(b"GPL")
    attr = ctypes.create_string_buffer(
        struct.pack("<IIQQ", BPF_PROG_TYPE_XDP, 2, ctypes.addressof(ibuf), ctypes.addressof(lic)),
        BPF_ATTR_SIZE)
    fd = libc.syscall(SYS_BPF, BPF_PROG_LOAD, attr, BPF_ATTR_SIZE)
    if fd < 0:
        raise OSError(ctypes.get_errno(), "BPF_PROG_LOAD XDP_PASS")
    path = f"/sys/fs/bpf/smoke-pass-{os.getpid()}"
    cpath = ctypes.create_string_buffer(path.encode())
    pattr = ctypes.create_string_buffer(struct.pack("<QI", ctypes.addressof(cpath), fd),
                                        BPF_ATTR_SIZE)
    if libc.syscall(SYS_BPF, BPF_OBJ_PIN, pattr, BPF_ATTR_SIZE) < 0:
        raise OSError(ctypes.get_errno(), "BPF_OBJ_PIN")
    # nsenter, not `ip -n`: that remounts /sys, hiding the pin.
    try:
        sh("nsenter", f"--net=/run/netns/{OUT_NS}", "ip", "link", "set", "dev", ifname,
           "xdpdrv", "pinned", path)
    finally:
        os.unlink(path)


def server(family, addr, stop):
    s = socket.socket(family, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, PORT))
    s.listen(128)
    s.settimeout(0.5)
    while not stop.is_set():
        try:
            c, _ = s.accept()
        except socket.timeout:
            continue
        with c:
            c.settimeout(5)
            try:
                data = c.recv(100)
                c.sendall(data)
            except OSError:
                pass
    s.close()


def in_netns(ns, fn, *args):
    """Runs fn in a thread that entered netns `ns` (setns is per thread)."""
    result = {}

    def run():
        libc = ctypes.CDLL(None, use_errno=True)
        fd = os.open(f"/run/netns/{ns}", os.O_RDONLY)
        if libc.setns(fd, 0x40000000) != 0:
            result["err"] = OSError(ctypes.get_errno(), "setns")
            return
        os.close(fd)
        try:
            result["ok"] = fn(*args)
        except Exception as e:  # noqa: BLE001 - reported as the check's detail
            result["err"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, result


def connect(family, addr, timeout=5):
    """One connection: returns the client's TCP_INFO options byte."""
    c = socket.socket(family, socket.SOCK_STREAM)
    c.settimeout(timeout)
    try:
        c.connect((addr, PORT))
        c.sendall(b"hello")
        if c.recv(100) != b"hello":
            raise RuntimeError("echo mismatch")
        info = c.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
        # struct tcp_info: state, ca_state, retransmits, probes, backoff,
        # options, wscale nibbles.
        options, wscale = info[5], info[6]
        return options, wscale & 0xF  # tcpi_snd_wscale: the server's
    finally:
        c.close()


def client(ns, family, addr, timeout=5):
    t, r = in_netns(ns, connect, family, addr, timeout)
    t.join(timeout + 5)
    if "err" in r:
        raise r["err"]
    return r.get("ok")


# The sysctls the daemon's check watches: the one its config sets, and the
# ones it manages by default.
DAEMON_SYSCTLS = ("net.ipv4.tcp_timestamps", "net.ipv4.tcp_syncookies", "net.core.somaxconn",
                  "net.ipv4.tcp_max_syn_backlog", "net.ipv4.tcp_abort_on_overflow")
DAEMON_CONFIG = f"""\
log_level = "info"

[[interface]]
name = "{TGT_IF}"
mode = "native"

[flood]
mode = "always"

[sysctl]
"net.ipv4.tcp_timestamps" = 2
"net.ipv4.tcp_syncookies" = 1

[metrics]
listen = "off"
"""


def sysctls(ns):
    values = {}
    for name in DAEMON_SYSCTLS:
        p = sh("ip", "netns", "exec", ns, "sysctl", "-n", name, check=False)
        values[name] = p.stdout.strip() if p.returncode == 0 else "missing"
    return values


def xdp_attached(ns, ifname):
    return " xdp" in sh("ip", "-n", ns, "link", "show", "dev", ifname).stdout


def check_daemon(refused_expected):
    """`synguard run` in the target namespace: ready, attached, sysctls
    applied; SIGTERM: exit 0, detached, sysctls restored."""
    work = os.path.join(os.path.dirname(OUT), "daemon")
    os.makedirs(work, exist_ok=True)
    config = os.path.join(work, "synguard.toml")
    with open(config, "w") as f:
        f.write(DAEMON_CONFIG)
    log_path = os.path.join(work, "daemon.log")
    # A value the config changes, so applying and restoring both show.
    sh("ip", "netns", "exec", TGT_NS, "sysctl", "-qw", "net.ipv4.tcp_timestamps=1")
    before = sysctls(TGT_NS)
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            ["nsenter", f"--net=/run/netns/{TGT_NS}", SYNGUARD, "--pin-root", PIN_ROOT,
             "--state-dir", os.path.join(work, "state"), "--config", config, "run"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)

    def text():
        with open(log_path) as f:
            return f.read()

    t0 = time.monotonic()
    try:
        while "ready:" not in text() and proc.poll() is None and time.monotonic() - t0 < 60:
            time.sleep(0.2)
        took = time.monotonic() - t0
        if proc.poll() is not None:
            lines = text().strip().splitlines()
            errors = [line for line in lines if "needs Linux" in line]
            after = sysctls(TGT_NS)
            left = {k: f"{before[k]}->{after[k]}" for k in before if after[k] != before[k]}
            detail = f"exit {proc.returncode}: {' | '.join(lines[-3:])}; sysctls left {left}"
            if refused_expected and proc.returncode != 0 and len(errors) == 1:
                # The refusal is what 5.10 is promised; sysctls it applied
                # before the attach failed are reported, not judged.
                record("daemon_start_stop", "refused",
                       errors[0].strip() + (f" [sysctls left applied: {left}]" if left else ""))
            else:
                record("daemon_start_stop", "fail", detail)
            return
        if "ready:" not in text():
            record("daemon_start_stop", "fail", f"no 'ready:' within 60 s: {text()[-1500:]}")
            return
        attached = xdp_attached(TGT_NS, TGT_IF)
        applied = sysctls(TGT_NS)
        proc.send_signal(signal.SIGTERM)
        t1 = time.monotonic()
        try:
            code = proc.wait(30)
        except subprocess.TimeoutExpired:
            code = "none within 30 s"
        stopped = time.monotonic() - t1
        detached = not xdp_attached(TGT_NS, TGT_IF)
        after = sysctls(TGT_NS)
        ok = (not refused_expected and attached and applied["net.ipv4.tcp_timestamps"] == "2"
              and code == 0 and detached and after == before)
        changed = {k: f"{before[k]}->{applied[k]}" for k in before if applied[k] != before[k]}
        record("daemon_start_stop", "pass" if ok else "fail",
               f"ready in {took:.1f} s, attached {attached}, applied {changed}; SIGTERM: exit "
               f"{code} in {stopped:.1f} s, detached {detached}, restored {after == before}"
               + ("" if after == before else f" (before {before}, after {after})"))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


VIO_CLI_NS, VIO_TGT_NS = "smoke-vio-cli", "smoke-vio-tgt"
VIO_CLI, VIO_TGT = "198.18.1.1", "198.18.1.2"


def virtio_nics():
    """The NICs with the MACs matrix.rs gave the VM, in that order."""
    by_mac = {}
    for ifname in os.listdir("/sys/class/net"):
        with open(f"/sys/class/net/{ifname}/address") as f:
            by_mac[f.read().strip().lower()] = ifname
    return [by_mac[mac] for mac in VIRTIO_MACS if mac in by_mac]


def check_virtio(refused_expected):
    """Two virtio-net NICs joined on a qemu hub (matrix.rs), one per
    namespace: synguard native on the target's, a SYN answered by XDP_TX,
    a real client through the cookie handshake."""
    if not VIRTIO_MACS:
        record("virtio_native_cookie", "skip", "not in a matrix VM: no NICs of its own to use")
        return
    sh("modprobe", "virtio_net", check=False)
    nics = virtio_nics()
    if len(nics) < 2:
        record("virtio_native_cookie", "fail", f"NICs with MACs {VIRTIO_MACS}: {nics}")
        return
    cli_if, tgt_if = nics[:2]
    for ns, ifname, addr in ((VIO_CLI_NS, cli_if, VIO_CLI), (VIO_TGT_NS, tgt_if, VIO_TGT)):
        sh("ip", "netns", "add", ns)
        sh("ip", "link", "set", ifname, "netns", ns)
        sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "-n", ns, "addr", "add", f"{addr}/24", "dev", ifname)
        sh("ip", "-n", ns, "link", "set", ifname, "up")
    sh("ip", "netns", "exec", VIO_TGT_NS, "sysctl", "-qw", "net.ipv4.tcp_syncookies=2")
    sh("ip", "netns", "exec", VIO_TGT_NS, "sysctl", "-qw", "net.ipv4.tcp_timestamps=2")
    p = sh("nsenter", f"--net=/run/netns/{VIO_TGT_NS}", SYNGUARD, "--pin-root", PIN_ROOT,
           "attach", tgt_if, "--mode", "native", "--flood", "always", check=False)
    out = (p.stdout + p.stderr).strip()
    locked = [line.strip() for line in sh("dmesg", check=False).stdout.splitlines()
              if "XDP_TX" in line and "locked" in line]
    note = f"; kernel: {locked[-1]}" if locked else "; no locked-XDP_TX line in dmesg"
    if p.returncode != 0 or "native" not in out:
        lines = out.splitlines()
        if refused_expected and len(lines) == 1 and "needs Linux" in lines[0]:
            record("virtio_native_cookie", "refused", lines[0])
        else:
            record("virtio_native_cookie", "fail", f"attach {tgt_if}: {out[-1500:]}")
        return
    stop = threading.Event()
    in_netns(VIO_TGT_NS, server, socket.AF_INET, VIO_TGT, stop)
    time.sleep(0.5)
    try:
        before = counters(VIO_TGT_NS, tgt_if)
        ns_before = netstat(VIO_TGT_NS)
        try:
            options, _ = client(VIO_CLI_NS, socket.AF_INET, VIO_TGT, timeout=10)
            connected = True
        except Exception as e:  # noqa: BLE001 - reported as the detail
            options, connected = 0, f"client: {e}"
        time.sleep(0.3)
        after, ns_after = counters(VIO_TGT_NS, tgt_if), netstat(VIO_TGT_NS)
        answered = after.get(("tx", "syn_ack"), 0) - before.get(("tx", "syn_ack"), 0)
        recv = ns_after["TcpExt.SyncookiesRecv"] - ns_before["TcpExt.SyncookiesRecv"]
        ok = connected is True and answered >= 1 and recv >= 1
        record("virtio_native_cookie", "pass" if ok else "fail",
               f"{out}; SYN-ACKs from XDP {answered}, SyncookiesRecv {recv}, connected "
               f"{connected}, client options {options & 7:#x}{note}")
    finally:
        stop.set()
        sh("nsenter", f"--net=/run/netns/{VIO_TGT_NS}", SYNGUARD, "--pin-root", PIN_ROOT,
           "detach", tgt_if, check=False)


def main():
    for mod in ("veth",):
        sh("modprobe", mod, check=False)
    if not os.path.ismount("/sys/fs/bpf"):
        sh("mount", "-t", "bpf", "bpf", "/sys/fs/bpf")
    for ns in (OUT_NS, TGT_NS):
        sh("ip", "netns", "add", ns)
        sh("ip", "-n", ns, "link", "set", "lo", "up")
    sh("ip", "link", "add", OUT_IF, "netns", OUT_NS, "type", "veth", "peer", "name", TGT_IF,
       "netns", TGT_NS)
    for ns, ifname, v4, v6 in ((OUT_NS, OUT_IF, V4_OUT, V6_OUT), (TGT_NS, TGT_IF, V4_TGT, V6_TGT)):
        sh("ip", "-n", ns, "addr", "add", f"{v4}/24", "dev", ifname)
        sh("ip", "-n", ns, "addr", "add", f"{v6}/64", "dev", ifname, "nodad")
        sh("ip", "-n", ns, "link", "set", ifname, "up")
    sh("ip", "netns", "exec", OUT_NS, "ethtool", "-K", OUT_IF, "tx", "off", check=False)
    attach_pass(OUT_IF)
    # Cookies from XDP only where the kernel would send one itself: with 2,
    # for every SYN (xdp-prog cookie/).
    sh("ip", "netns", "exec", TGT_NS, "sysctl", "-qw", "net.ipv4.tcp_syncookies=2")
    sh("ip", "netns", "exec", TGT_NS, "sysctl", "-qw", "net.ipv4.tcp_timestamps=2", check=False)

    t0 = time.monotonic()
    p = synguard("attach", TGT_IF, "--mode", "native", "--flood", "always", check=False)
    took = time.monotonic() - t0
    out = (p.stdout + p.stderr).strip()
    status = synguard("status", check=False)
    probe = [line.strip() for line in status.stdout.splitlines()
             if "BPF helpers" in line or "needs Linux" in line]
    if p.returncode != 0 or "native" not in out:
        with open(os.path.join(os.path.dirname(OUT), "attach.log"), "w") as f:
            f.write(out)
        lines = out.splitlines()
        # A kernel without the program's helpers: one line naming them.
        if len(lines) == 1 and "needs Linux" in lines[0]:
            record("attach_native_netns", "refused", lines[0])
            record("status_probe", "refused" if probe and "needs Linux" in probe[0] else "fail",
                   " ".join(probe))
            check_daemon(refused_expected=True)
            check_virtio(refused_expected=True)
        else:
            record("attach_native_netns", "fail", (lines or [""])[0] + " ... " + out[-1500:])
        return
    record("status_probe", "pass" if probe and "every one" in probe[0] else "fail",
           " ".join(probe))
    record("attach_native_netns", "pass", f"{out} ({took:.1f} s)")

    stop = threading.Event()
    for family, addr in ((socket.AF_INET, V4_TGT), (socket.AF_INET6, V6_TGT)):
        in_netns(TGT_NS, server, family, addr, stop)
    time.sleep(0.5)

    for name, family, addr in (("v4", socket.AF_INET, V4_TGT), ("v6", socket.AF_INET6, V6_TGT)):
        before, ns_before = counters(), netstat(TGT_NS)
        try:
            options, wscale = client(OUT_NS, family, addr)
        except Exception as e:  # noqa: BLE001
            record(f"cookie_handshake_{name}", "fail", f"client: {e}")
            continue
        time.sleep(0.3)
        after, ns_after = counters(), netstat(TGT_NS)
        answered = after.get(("tx", "syn_ack"), 0) - before.get(("tx", "syn_ack"), 0)
        recv = ns_after["TcpExt.SyncookiesRecv"] - ns_before["TcpExt.SyncookiesRecv"]
        sent = ns_after["TcpExt.SyncookiesSent"] - ns_before["TcpExt.SyncookiesSent"]
        detail = (f"SYN-ACKs from XDP {answered}, kernel SyncookiesSent {sent}, "
                  f"SyncookiesRecv {recv}; client options ts={bool(options & 1)} "
                  f"sack={bool(options & 2)} wscale={bool(options & 4)} (server's {wscale})")
        record(f"syn_answered_from_xdp_{name}", "pass" if answered >= 1 and sent == 0 else "fail",
               detail)
        record(f"cookie_handshake_{name}", "pass" if recv >= 1 and options & 7 == 7 else "fail",
               detail)

    before = counters()
    synguard("block", f"{V4_OUT}/32")
    try:
        client(OUT_NS, socket.AF_INET, V4_TGT, timeout=2)
        record("blocklist_drop", "fail", "a blocked client connected")
    except Exception:  # noqa: BLE001 - the expected timeout
        dropped = counters().get(("drop", "blocklist"), 0) - before.get(("drop", "blocklist"), 0)
        record("blocklist_drop", "pass" if dropped >= 1 else "fail",
               f"{dropped} frames dropped by the blocklist")
    synguard("unblock", f"{V4_OUT}/32")
    stop.set()
    p = synguard("detach", TGT_IF, check=False)
    left = os.listdir(PIN_ROOT) if os.path.isdir(PIN_ROOT) else []
    record("detach", "pass" if p.returncode == 0 else "fail", (p.stdout + p.stderr) + f" left: {left}")
    subprocess.run(["rm", "-rf", PIN_ROOT])
    check_daemon(refused_expected=False)
    subprocess.run(["rm", "-rf", PIN_ROOT])
    check_virtio(refused_expected=False)
    subprocess.run(["rm", "-rf", PIN_ROOT])


try:
    save()  # first thing: tells the host the VM booted and smoke.py runs
    main()
except Exception as e:  # noqa: BLE001
    record("setup", "fail", repr(e))
finally:
    results["done"] = True
    save()
    for ns in (OUT_NS, TGT_NS, VIO_CLI_NS, VIO_TGT_NS):
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
