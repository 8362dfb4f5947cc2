#!/usr/bin/env python3
"""synguard's smoke checks on one kernel, run as root inside a VM that
`cargo xtask matrix` boots (or on the host's own kernel).

Usage: smoke.py SYNGUARD OUT_JSON [VIRTIO_MAC,VIRTIO_MAC [MQ_MAC,MQ_MAC,QUEUES]]

The MACs name two virtio-net NICs that matrix.rs gives the VM, joined on a
qemu hub, and two multi-queue ones with QUEUES queue pairs each, joined by
taps on a bridge in a namespace of matrix.rs's; only NICs with those MACs
are used (never a host's own NIC).

Two namespaces joined by a veth pair (198.18.0.0/24, 2001:2::/64): `out`
(clients) and `tgt` (a listener, synguard attached native to its end). Each
check gets "pass", "fail" or "skip" and a one-line detail; the verdicts go to
OUT_JSON, which the host reads; in a VM each also goes to the kernel's log,
which reaches the host over the serial console (a record of how far it got).
"""
import ctypes
import faulthandler
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import traceback

SYNGUARD, OUT = sys.argv[1], sys.argv[2]
VIRTIO_MACS = sys.argv[3].lower().split(",") if len(sys.argv) > 3 else []
# Two more, of multi-queue NICs: "MAC,MAC,QUEUES".
MQ = sys.argv[4].lower().split(",") if len(sys.argv) > 4 else []
# In a VM the names are the VM's alone. On the host they carry this run's
# pid, so that a run killed before its cleanup (SIGKILL, a lost terminal)
# leaves nothing the next one trips over; the next one removes what such a
# run left (`clear_dead_runs`).
RUN = "" if VIRTIO_MACS else f"-{os.getpid()}"
PIN_PARENT, PIN_NAME = "/sys/fs/bpf", "synguard-smoke"
PIN_ROOT = f"{PIN_PARENT}/{PIN_NAME}{RUN}"
OUT_IF, TGT_IF = "smk-out", "smk-tgt"
# Every namespace smoke.py makes, by what its name starts with.
NETNS = ("smoke-out", "smoke-tgt", "smoke-vio-cli", "smoke-vio-tgt")
OUT_NS, TGT_NS = f"{NETNS[0]}{RUN}", f"{NETNS[1]}{RUN}"
V4_OUT, V4_TGT = "198.18.0.1", "198.18.0.2"
V6_OUT, V6_TGT = "2001:2::1", "2001:2::2"
PORT = 8080
results = {"kernel": os.uname().release, "checks": {}}


# In a VM (matrix.rs gives it the NICs' MACs), each verdict and any error
# also goes into the kernel's log: vng --verbose carries that over the serial
# console into the host's vng.log, which does not depend on the shared
# directory working.
IN_VM = bool(VIRTIO_MACS)
try:
    KMSG = open("/dev/kmsg", "w") if IN_VM else None
except OSError:
    KMSG = None  # the verdict file still says what happened
# A crash of the interpreter itself (SIGBUS, SIGSEGV) prints its traceback
# there too.
faulthandler.enable(file=KMSG or sys.stderr)


def console(line):
    """One line into the VM's kernel log (nothing on the host)."""
    if KMSG is not None:
        try:
            KMSG.write(f"<4>smoke.py: {line[:800]}\n")
            KMSG.flush()
        except OSError:
            pass


def record(check, verdict, detail=""):
    results["checks"][check] = {"verdict": verdict, "detail": detail.strip()[-2000:]}
    console(f"{check} {verdict}: {detail.strip()[-300:]}")
    save()


def retried(fn, *args):
    """fn(*args), tried again on OSError, 20 times 0.1 s apart. The output
    directory is the host's, shared into the VM over 9p; reads and writes
    there have failed for a moment under a 7.2 guest in CI (ENODATA)."""
    for attempt in range(20):
        try:
            return fn(*args)
        except OSError as e:
            if attempt == 19:
                raise
            console(f"{e!r}; trying again")
            time.sleep(0.1)


def save():
    def write():
        with open(OUT + ".tmp", "w") as f:
            json.dump(results, f, indent=1)
        os.replace(OUT + ".tmp", OUT)
    retried(write)


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


def named_in_refusal(line):
    """The features a refusal line names: "... this kernel lacks a, b
    (Linux 5.18); c (Linux 6.0)" -> {a, b, c}."""
    lacks = line.split("this kernel lacks ", 1)[-1]
    names = set()
    for group in lacks.split("; "):
        names.update(n.strip() for n in group.rsplit(" (Linux", 1)[0].split(","))
    return names


def check_status(text, refusal):
    """`status --json` agrees with what happened: a kernel that took the
    program is reported full (tcp_timestamps=2 here) with nothing missing;
    one that refused it is reported refused, missing exactly the features
    the refusal named."""
    try:
        kernel = json.loads(text)["kernel"]
    except (ValueError, KeyError) as e:
        record("status_probe", "fail", f"status --json: {e}: {text[-500:]}")
        return
    missing = set(kernel.get("missing") or [])
    said = (f"mode {kernel.get('mode')}, program_loads {kernel.get('program_loads')}, "
            f"missing {sorted(missing)}, {len(kernel.get('features') or [])} features probed, "
            f"clock {kernel.get('clock')}")
    if refusal is None:
        # The data path's clock reads jiffies (its probe worked, no helper
        # call) at the kernel's tick: the coarse clock's resolution
        # (CLOCK_MONOTONIC_COARSE is 6). A wrong clock shows in the
        # handshakes: a SYN-ACK's timestamp ahead of the kernel's makes
        # the client drop the server's segments (PAWS).
        hz = round(1 / time.clock_getres(6))
        ok = (kernel.get("mode") == "full" and kernel.get("program_loads") is True
              and not missing and kernel.get("clock_hz") == hz)
        record("status_probe", "pass" if ok else "fail", f"attached; status said {said}")
        return
    named = named_in_refusal(refusal)
    ok = (kernel.get("mode") == "refused" and kernel.get("program_loads") is False
          and missing == named)
    record("status_probe", "refused" if ok else "fail",
           f"refused naming {sorted(named)}; status said {said}")


def check_skb():
    """skb (generic) mode: attach, and a v4 client through a cookie
    answered from XDP, then detach."""
    p = synguard("attach", TGT_IF, "--mode", "skb", "--flood", "always", check=False)
    out = (p.stdout + p.stderr).strip()
    if p.returncode != 0 or "(skb mode)" not in out:
        record("skb_mode_cookie", "fail", f"attach --mode skb: {out[-1500:]}")
        return
    try:
        before, ns_before = counters(), netstat(TGT_NS)
        options, _ = client(OUT_NS, socket.AF_INET, V4_TGT)
        time.sleep(0.3)
        after, ns_after = counters(), netstat(TGT_NS)
        answered = after.get(("tx", "syn_ack"), 0) - before.get(("tx", "syn_ack"), 0)
        recv = ns_after["TcpExt.SyncookiesRecv"] - ns_before["TcpExt.SyncookiesRecv"]
        mode = "xdpgeneric" in sh("ip", "-n", TGT_NS, "link", "show", "dev", TGT_IF).stdout
        ok = answered >= 1 and recv >= 1 and options & 7 == 7 and mode
        record("skb_mode_cookie", "pass" if ok else "fail",
               f"{out}; generic per ip-link {mode}; SYN-ACKs from XDP {answered}, "
               f"SyncookiesRecv {recv}, client options {options & 7:#x}")
    except Exception as e:  # noqa: BLE001 - reported as the detail
        record("skb_mode_cookie", "fail", f"client: {e}")
    finally:
        synguard("detach", TGT_IF, check=False)


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
        # The log is on the host's filesystem, shared into the VM: a read
        # racing the daemon's write failed there once, with ENODATA.
        def read():
            with open(log_path) as f:
                return f.read()
        return retried(read)

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


VIO_CLI_NS, VIO_TGT_NS = f"{NETNS[2]}{RUN}", f"{NETNS[3]}{RUN}"
# One subnet per NIC pair; both pairs stay inside the VM (and, for the
# multi-queue pair, taps in a namespace matrix.rs made).
VIO_NETS = {"virtio_native_cookie": "198.18.1", "virtio_mq_native_cookie": "198.18.2"}


def virtio_nics(macs):
    """The NICs with the MACs matrix.rs gave the VM, in that order."""
    by_mac = {}
    for ifname in os.listdir("/sys/class/net"):
        with open(f"/sys/class/net/{ifname}/address") as f:
            by_mac[f.read().strip().lower()] = ifname
    return [by_mac[mac] for mac in macs if mac in by_mac]


def locked_lines():
    return [line.strip() for line in sh("dmesg", check=False).stdout.splitlines()
            if "XDP_TX" in line and "locked" in line]


def check_virtio(refused_expected, check="virtio_native_cookie", macs=None, queues=1):
    """Two virtio-net NICs joined outside the guest (matrix.rs), one per
    namespace: synguard native on the target's, a SYN answered by XDP_TX,
    a real client through the cookie handshake. With `queues` pairs for
    the guest's 2 CPUs, XDP_TX has queues of its own only when queues >=
    2 + 2: synguard must warn exactly when it does not, as the kernel's
    "locked tx mode" line says."""
    macs = VIRTIO_MACS if macs is None else macs
    if not macs:
        record(check, "skip", "not in a matrix VM: no NICs of its own to use")
        return
    sh("modprobe", "virtio_net", check=False)
    nics = virtio_nics(macs)
    if len(nics) < 2:
        record(check, "fail", f"NICs with MACs {macs}: {nics}")
        return
    try:
        virtio_pair(refused_expected, check, nics, queues)
    finally:
        # The NICs go back to the VM's own namespace, for the next check
        # (the kernel moves them when their namespace goes, shortly after).
        for ns in (VIO_CLI_NS, VIO_TGT_NS):
            sh("ip", "netns", "del", ns, check=False)
        for _ in range(100):
            if len(virtio_nics(macs)) == 2:
                break
            time.sleep(0.1)


def virtio_pair(refused_expected, check, nics, queues):
    cli_if, tgt_if = nics[:2]
    net = VIO_NETS[check]
    cli_addr, tgt_addr = f"{net}.1", f"{net}.2"
    channels = sh("ethtool", "-l", tgt_if, check=False).stdout.split()
    for ns, ifname, addr in ((VIO_CLI_NS, cli_if, cli_addr), (VIO_TGT_NS, tgt_if, tgt_addr)):
        sh("ip", "netns", "add", ns)
        sh("ip", "link", "set", ifname, "netns", ns)
        sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "-n", ns, "addr", "add", f"{addr}/24", "dev", ifname)
        sh("ip", "-n", ns, "link", "set", ifname, "up")
    sh("ip", "netns", "exec", VIO_TGT_NS, "sysctl", "-qw", "net.ipv4.tcp_syncookies=2")
    sh("ip", "netns", "exec", VIO_TGT_NS, "sysctl", "-qw", "net.ipv4.tcp_timestamps=2")
    locked_before = len(locked_lines())
    p = sh("nsenter", f"--net=/run/netns/{VIO_TGT_NS}", SYNGUARD, "--pin-root", PIN_ROOT,
           "attach", tgt_if, "--mode", "native", "--flood", "always", check=False)
    out = (p.stdout + p.stderr).strip()
    locked = locked_lines()[locked_before:]
    warned = "queue pairs" in p.stderr
    should_warn = queues < os.cpu_count() * 2
    note = (f"; {queues} queue pairs for {os.cpu_count()} CPUs: synguard warned {warned}, "
            f"kernel: {locked[-1] if locked else 'no locked-XDP_TX line'}")
    if p.returncode != 0 or "native" not in out:
        lines = out.splitlines()
        if refused_expected and len(lines) == 1 and "needs Linux" in lines[0]:
            record(check, "refused", lines[0])
        else:
            record(check, "fail", f"attach {tgt_if}: {out[-1500:]}")
        return
    stop = threading.Event()
    in_netns(VIO_TGT_NS, server, socket.AF_INET, tgt_addr, stop)
    time.sleep(0.5)
    try:
        before = counters(VIO_TGT_NS, tgt_if)
        ns_before = netstat(VIO_TGT_NS)
        try:
            options, _ = client(VIO_CLI_NS, socket.AF_INET, tgt_addr, timeout=10)
            connected = True
        except Exception as e:  # noqa: BLE001 - reported as the detail
            options, connected = 0, f"client: {e}"
        time.sleep(0.3)
        after, ns_after = counters(VIO_TGT_NS, tgt_if), netstat(VIO_TGT_NS)
        answered = after.get(("tx", "syn_ack"), 0) - before.get(("tx", "syn_ack"), 0)
        recv = ns_after["TcpExt.SyncookiesRecv"] - ns_before["TcpExt.SyncookiesRecv"]
        # synguard's warning agrees with the kernel's own line, and with
        # the queue count qemu was given.
        ok = (connected is True and answered >= 1 and recv >= 1
              and warned == should_warn == bool(locked))
        record(check, "pass" if ok else "fail",
               f"{out}; SYN-ACKs from XDP {answered}, SyncookiesRecv {recv}, connected "
               f"{connected}, client options {options & 7:#x}{note}; ethtool -l: "
               f"{' '.join(channels)[-200:]}")
    finally:
        stop.set()
        sh("nsenter", f"--net=/run/netns/{VIO_TGT_NS}", SYNGUARD, "--pin-root", PIN_ROOT,
           "detach", tgt_if, check=False)


def check_offloads(refused_expected):
    """The multi-queue client NIC comes without ctrl_guest_offloads
    (matrix.rs): the host's guest offloads (GRO_HW) stay on, which
    virtio_net refuses XDP under. A native attach there must fail and say
    so, and what the hypervisor must change."""
    nics = virtio_nics(MQ[:1]) if len(MQ) >= 3 else []
    if not nics:
        record("virtio_offloads_named", "skip", "no multi-queue NICs given")
        return
    sh("ip", "link", "set", nics[0], "up")
    # In the VM's own namespace, where the NIC is (not synguard()'s TGT_NS).
    p = sh(SYNGUARD, "--pin-root", PIN_ROOT, "attach", nics[0], "--mode", "native",
           check=False)
    out = (p.stdout + p.stderr).strip()
    sh(SYNGUARD, "--pin-root", PIN_ROOT, "detach", nics[0], check=False)
    features = sh("ethtool", "-k", nics[0], check=False).stdout
    gro_hw = [line.strip() for line in features.splitlines()
              if "gro-hw" in line or "large-rec" in line]
    lines = out.splitlines()
    if refused_expected and len(lines) == 1 and "needs Linux" in lines[0]:
        record("virtio_offloads_named", "refused", lines[0])
        return
    ok = (p.returncode != 0 and ("rx-gro-hw" in out or "rx-lro" in out)
          and "guest_tso4=off" in out)
    record("virtio_offloads_named", "pass" if ok else "fail",
           f"exit {p.returncode}: {out[-1200:]} [ethtool -k: {'; '.join(gro_hw)}]")


def check_mq(refused_expected):
    if len(MQ) < 3:
        record("virtio_mq_native_cookie", "skip", "no multi-queue NICs given")
        return
    check_virtio(refused_expected, "virtio_mq_native_cookie", MQ[:2], int(MQ[2]))


def clear_dead_runs():
    """What host runs of smoke.py that were killed outright left behind:
    their namespaces and pins, named with their pid (`RUN`), when that
    pid is gone. Nothing of a live run, nor anything not named so."""
    def dead(suffix):
        return suffix.isdigit() and not os.path.exists(f"/proc/{suffix}")
    netns = sh("ip", "netns", "list", check=False).stdout.split()
    for name in netns:
        for base in NETNS:
            if name.startswith(base + "-") and dead(name[len(base) + 1:]):
                sh("ip", "netns", "del", name, check=False)
    if os.path.isdir(PIN_PARENT):
        for name in os.listdir(PIN_PARENT):
            if name.startswith(PIN_NAME + "-") and dead(name[len(PIN_NAME) + 1:]):
                subprocess.run(["rm", "-rf", os.path.join(PIN_PARENT, name)])


def main():
    if RUN:
        clear_dead_runs()
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
    status = synguard("--json", "status", check=False)
    with open(os.path.join(os.path.dirname(OUT), "status.json"), "w") as f:
        f.write(status.stdout + status.stderr)
    if p.returncode != 0 or "native" not in out:
        with open(os.path.join(os.path.dirname(OUT), "attach.log"), "w") as f:
            f.write(out)
        lines = out.splitlines()
        # A kernel without the program's helpers: one line naming them.
        if len(lines) == 1 and "needs Linux" in lines[0]:
            record("attach_native_netns", "refused", lines[0])
            check_status(status.stdout, refusal=lines[0])
            check_daemon(refused_expected=True)
            check_virtio(refused_expected=True)
            check_offloads(refused_expected=True)
            check_mq(refused_expected=True)
        else:
            record("attach_native_netns", "fail", (lines or [""])[0] + " ... " + out[-1500:])
        return
    check_status(status.stdout, refusal=None)
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
    p = synguard("detach", TGT_IF, check=False)
    left = os.listdir(PIN_ROOT) if os.path.isdir(PIN_ROOT) else []
    record("detach", "pass" if p.returncode == 0 and not xdp_attached(TGT_NS, TGT_IF) else "fail",
           (p.stdout + p.stderr) + f" left: {left}")
    check_skb()
    stop.set()
    subprocess.run(["rm", "-rf", PIN_ROOT])
    check_daemon(refused_expected=False)
    subprocess.run(["rm", "-rf", PIN_ROOT])
    check_virtio(refused_expected=False)
    subprocess.run(["rm", "-rf", PIN_ROOT])
    check_offloads(refused_expected=False)
    subprocess.run(["rm", "-rf", PIN_ROOT])
    check_mq(refused_expected=False)
    subprocess.run(["rm", "-rf", PIN_ROOT])


# SIGTERM (a stopped `cargo xtask matrix`, a CI timeout) ends the run
# through the cleanup below, as Ctrl-C does.
signal.signal(signal.SIGTERM, signal.default_int_handler)
try:
    save()  # first thing: tells the host the VM booted and smoke.py runs
    main()
except Exception as e:  # noqa: BLE001
    # Where it was raised, so the host's log says which step failed.
    where = traceback.extract_tb(e.__traceback__)[-1]
    record("setup", "fail", f"{e!r} at smoke.py:{where.lineno} ({where.name}: {where.line})")
except KeyboardInterrupt:
    record("setup", "fail", "stopped by a signal (SIGINT or SIGTERM)")
    raise
finally:
    results["done"] = True
    save()
    console("done")
    for ns in (OUT_NS, TGT_NS, VIO_CLI_NS, VIO_TGT_NS):
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
    subprocess.run(["rm", "-rf", PIN_ROOT])
