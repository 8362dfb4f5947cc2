//! Real traffic: a TCP echo server, TCP clients that check what comes back,
//! and an AF_PACKET sender for crafted frames.
use std::{
    io::{self, Read, Write},
    net::{Shutdown, SocketAddr, TcpListener, TcpStream},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context, Result};

use crate::netns::Netns;

/// A TCP server in a namespace that echoes each connection's bytes back.
pub struct EchoServer {
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
    pub addr: SocketAddr,
    accepted: Arc<std::sync::Mutex<Vec<TcpInfo>>>,
}

/// What the server's kernel negotiated for an accepted connection
/// (getsockopt TCP_INFO, include/uapi/linux/tcp.h).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpInfo {
    /// `tcpi_options`: TCPI_OPT_TIMESTAMPS 1, SACK 2, WSCALE 4.
    pub options: u8,
    /// The client's window scale, as the server uses it.
    pub snd_wscale: u8,
    /// The server's own window scale.
    pub rcv_wscale: u8,
}

impl TcpInfo {
    pub const TIMESTAMPS: u8 = 1;
    pub const SACK: u8 = 2;
    pub const WSCALE: u8 = 4;

    fn of(stream: &TcpStream) -> Option<TcpInfo> {
        use std::os::fd::AsRawFd;
        let mut buf = [0u8; 256];
        let mut len = buf.len() as libc::socklen_t;
        // SAFETY: getsockopt writes at most `len` bytes into our buffer.
        let rc = unsafe {
            libc::getsockopt(
                stream.as_raw_fd(),
                libc::IPPROTO_TCP,
                libc::TCP_INFO,
                buf.as_mut_ptr().cast(),
                &mut len,
            )
        };
        (rc == 0 && len >= 8).then(|| TcpInfo {
            options: buf[5],
            snd_wscale: buf[6] & 0x0f,
            rcv_wscale: buf[6] >> 4,
        })
    }
}

impl EchoServer {
    pub fn start(ns: &Netns, addr: SocketAddr) -> Result<EchoServer> {
        let listener = ns
            .run(|| bind_listener(addr))
            .with_context(|| format!("listening on {addr} in {}", ns.name()))?;
        listener.set_nonblocking(true)?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let accepted = Arc::new(std::sync::Mutex::new(Vec::new()));
        let record = accepted.clone();
        let thread = thread::spawn(move || {
            while !stopping.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        if let Some(info) = TcpInfo::of(&stream) {
                            record.lock().unwrap().push(info);
                        }
                        thread::spawn(move || {
                            let _ = echo(stream);
                        });
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        thread::sleep(Duration::from_millis(2));
                    }
                    Err(_) => thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        Ok(EchoServer {
            stop,
            thread: Some(thread),
            addr,
            accepted,
        })
    }

    /// TCP_INFO of every connection accepted so far.
    pub fn accepted(&self) -> Vec<TcpInfo> {
        self.accepted.lock().unwrap().clone()
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn bind_listener(addr: SocketAddr) -> io::Result<TcpListener> {
    // std's listen backlog is 128; a real service's.
    TcpListener::bind(addr)
}

fn echo(mut stream: TcpStream) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return stream.shutdown(Shutdown::Write);
        }
        stream.write_all(&buf[..n])?;
    }
}

/// Connects from `ns` to `addr`, sends `payload`, and checks it comes back
/// whole. Returns the time to connect.
pub fn echo_once(
    ns: &Netns,
    addr: SocketAddr,
    payload: &[u8],
    timeout: Duration,
) -> Result<Duration> {
    let start = Instant::now();
    let mut stream = ns
        .run(|| TcpStream::connect_timeout(&addr, timeout))
        .with_context(|| format!("connecting to {addr}"))?;
    let connected = start.elapsed();
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    stream.write_all(payload)?;
    stream.shutdown(Shutdown::Write)?;
    let mut back = Vec::with_capacity(payload.len());
    stream.read_to_end(&mut back)?;
    anyhow::ensure!(
        back == payload,
        "echo mismatch: sent {} bytes, got {}",
        payload.len(),
        back.len()
    );
    Ok(connected)
}

/// A client connection kept open to an [`EchoServer`], for checking that an
/// established connection keeps working (through a flood, say).
pub struct EchoConnection {
    stream: TcpStream,
}

impl EchoConnection {
    /// Connects from `ns`; every later read and write gives up after `timeout`.
    pub fn open(ns: &Netns, addr: SocketAddr, timeout: Duration) -> Result<EchoConnection> {
        let stream = ns
            .run(|| TcpStream::connect_timeout(&addr, timeout))
            .with_context(|| format!("connecting to {addr}"))?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        Ok(EchoConnection { stream })
    }

    /// Sends `payload` and checks the same bytes come back.
    pub fn round_trip(&mut self, payload: &[u8]) -> Result<()> {
        self.stream.write_all(payload).context("sending")?;
        let mut back = vec![0u8; payload.len()];
        self.stream
            .read_exact(&mut back)
            .context("reading the echo")?;
        anyhow::ensure!(back == payload, "the echo differs from what was sent");
        Ok(())
    }

    /// Closes the connection the orderly way (FIN both ways).
    pub fn close(mut self) -> Result<()> {
        self.stream.shutdown(Shutdown::Write)?;
        let mut rest = Vec::new();
        self.stream.read_to_end(&mut rest)?;
        anyhow::ensure!(rest.is_empty(), "{} unexpected bytes at close", rest.len());
        Ok(())
    }
}

/// Outcome of a batch of client connections.
#[derive(Debug, Default, Clone)]
pub struct ClientReport {
    pub attempted: u32,
    pub succeeded: u32,
    pub connect_times: Vec<Duration>,
    pub errors: Vec<String>,
}

impl ClientReport {
    pub fn success_ratio(&self) -> f64 {
        if self.attempted == 0 {
            return 0.0;
        }
        f64::from(self.succeeded) / f64::from(self.attempted)
    }

    /// The `q` quantile (0..=1) of the connect times of successful connections.
    pub fn connect_quantile(&self, q: f64) -> Option<Duration> {
        let mut t = self.connect_times.clone();
        t.sort();
        let i = ((t.len() as f64 - 1.0) * q).round() as usize;
        t.get(i).copied()
    }
}

/// Makes `count` echo connections one after another, `interval` apart.
pub fn run_clients(
    ns: &Netns,
    addr: SocketAddr,
    count: u32,
    interval: Duration,
    timeout: Duration,
) -> ClientReport {
    let mut report = ClientReport::default();
    for i in 0..count {
        let started = Instant::now();
        report.attempted += 1;
        let payload = format!("synguard client {i}\n").repeat(8);
        match echo_once(ns, addr, payload.as_bytes(), timeout) {
            Ok(t) => {
                report.succeeded += 1;
                report.connect_times.push(t);
            }
            Err(e) => report.errors.push(format!("{e:#}")),
        }
        if let Some(rest) = interval.checked_sub(started.elapsed()) {
            thread::sleep(rest);
        }
    }
    report
}

/// Sends raw Ethernet frames out of one interface (AF_PACKET, no qdisc).
pub struct RawSender {
    fd: std::os::fd::OwnedFd,
}

impl RawSender {
    /// Opens the socket inside `ns`, bound to `iface`.
    pub fn open(ns: &Netns, iface: &str) -> Result<RawSender> {
        let iface = iface.to_string();
        ns.run(move || open_packet_socket(&iface))
            .context("opening an AF_PACKET socket")
    }

    pub fn send(&self, frame: &[u8]) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        // SAFETY: sending from a valid buffer on our own socket.
        let n = unsafe { libc::send(self.fd.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

fn open_packet_socket(iface: &str) -> io::Result<RawSender> {
    let ifindex = crate::lab::if_index(iface);
    if ifindex == 0 {
        return Err(io::Error::other(format!("no interface {iface}")));
    }
    Ok(RawSender {
        fd: packet_socket(ifindex)?,
    })
}

/// A raw AF_PACKET socket bound to `ifindex` (in the calling thread's
/// namespace), for sending whole Ethernet frames.
pub fn packet_socket(ifindex: u32) -> io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::{AsRawFd, FromRawFd};
    // SAFETY: plain socket(2) call.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel gave us this descriptor.
    let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
    // SAFETY: zeroed sockaddr_ll is a valid starting point.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_ifindex = ifindex as i32;
    // SAFETY: sll is a properly sized sockaddr_ll.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&sll as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as u32,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fd)
}

/// Sends `frames` round-robin until `duration` has passed or `max_packets`
/// went out, whichever is first. Returns how many were sent. Always bounded.
pub fn flood(sender: &RawSender, frames: &[Vec<u8>], duration: Duration, max_packets: u64) -> u64 {
    let deadline = Instant::now() + duration;
    let mut sent = 0u64;
    'outer: loop {
        for frame in frames {
            if sent >= max_packets || (sent.is_multiple_of(256) && Instant::now() >= deadline) {
                break 'outer;
            }
            // A full socket buffer (ENOBUFS) under load is the flood's own
            // back-pressure: skip and go on.
            if sender.send(frame).is_ok() {
                sent += 1;
            }
        }
    }
    sent
}
