//! Reading the packets the data path copies where they settle, while a
//! capture runs (docs/design.md#capture): the capture's flag in `CAPTURE`,
//! renewed while the reader lives, and the records of `CAPTURE_RING`.
use std::{
    os::fd::{AsFd, AsRawFd},
    path::Path,
    time::{Duration, SystemTime},
};

use aya::maps::{Array, Map, MapData, MapError, RingBuf};
use synguard_common::{CaptureRecord, CaptureSettings, Reason, capture, maps};

use crate::{clock::monotonic_ns, pins::PinLayout};

#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("synguard is not attached to {0}")]
    NotAttached(String),
    #[error("{path}: {source}")]
    Map {
        path: String,
        #[source]
        source: MapError,
    },
    #[error("{call}: {source}")]
    Sys {
        call: &'static str,
        #[source]
        source: std::io::Error,
    },
}

/// One packet as captured.
#[derive(Clone, Debug)]
pub struct Packet {
    /// When it settled (wall clock).
    pub time: SystemTime,
    /// The frame's whole length; `data` is its first bytes (at most
    /// `capture::SNAP_LEN`).
    pub len: u32,
    pub data: Vec<u8>,
    /// Its verdict label (`drop`, `tx`, `would_drop`, ...) and reason.
    pub verdict: &'static str,
    pub reason: Reason,
}

/// The counter slots a capture of these reasons asks for: each reason
/// enforced and in dry-run. None: every reason that drops or answers.
pub fn slots(reasons: &[Reason]) -> u64 {
    let wanted = |r: &Reason| reasons.is_empty() && r.verdict().held_in_dry_run();
    Reason::ALL
        .iter()
        .filter(|r| reasons.contains(r) || wanted(r))
        .fold(0, |mask, &r| mask | 1 << (r as u32) | 1 << r.would_slot())
}

/// The verdict label and reason of a counter slot.
pub fn slot_label(slot: u32) -> Option<(&'static str, Reason)> {
    let reason = *Reason::ALL.get((slot % Reason::COUNT) as usize)?;
    if slot < Reason::COUNT {
        Some((reason.verdict().name(), reason))
    } else if slot < 2 * Reason::COUNT {
        Some((reason.verdict().would_name(), reason))
    } else {
        None
    }
}

/// A running capture on one interface. Dropping it turns the capture off.
pub struct Capture {
    settings: Array<MapData, CaptureSettings>,
    wanted: CaptureSettings,
    ring: RingBuf<MapData>,
    /// Wall clock minus CLOCK_MONOTONIC, for the records' times.
    offset: Duration,
}

impl Capture {
    /// Starts capturing on an attached interface: packets settled in
    /// `slots` ([`slots`]), one in `sample`.
    pub fn start(
        layout: &PinLayout,
        iface: &str,
        slots: u64,
        sample: u32,
    ) -> Result<Capture, CaptureError> {
        if !layout.link(iface).exists() {
            return Err(CaptureError::NotAttached(iface.into()));
        }
        let open = |name: &str| {
            let path = layout.map(iface, name);
            MapData::from_pin(&path).map_err(|source| CaptureError::Map {
                path: path.display().to_string(),
                source,
            })
        };
        let map_err = |name: &str| {
            let path = layout.map(iface, name).display().to_string();
            move |source| CaptureError::Map { path, source }
        };
        let settings =
            Array::try_from(Map::Array(open(maps::CAPTURE)?)).map_err(map_err(maps::CAPTURE))?;
        let ring = RingBuf::try_from(Map::RingBuf(open(maps::CAPTURE_RING)?))
            .map_err(map_err(maps::CAPTURE_RING))?;
        let wall = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        let mut capture = Capture {
            settings,
            wanted: CaptureSettings {
                until_ns: 0,
                slots,
                sample,
                _pad: 0,
            },
            ring,
            offset: wall.saturating_sub(Duration::from_nanos(monotonic_ns())),
        };
        // Records a capture before this one left behind are not ours.
        while capture.ring.next().is_some() {}
        capture.renew()?;
        Ok(capture)
    }

    /// Keeps the capture on for another lease (`capture::LEASE_NS`); call
    /// at least once a second.
    pub fn renew(&mut self) -> Result<(), CaptureError> {
        self.wanted.until_ns = monotonic_ns() + capture::LEASE_NS;
        self.settings
            .set(0, self.wanted, 0)
            .map_err(|source| CaptureError::Map {
                path: maps::CAPTURE.into(),
                source,
            })
    }

    /// The packets captured so far, waiting up to `timeout` for the first.
    pub fn next_batch(&mut self, timeout: Duration) -> Result<Vec<Packet>, CaptureError> {
        let mut pfd = libc::pollfd {
            fd: self.ring.as_fd().as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one pollfd, valid for the call.
        let n = unsafe { libc::poll(&mut pfd, 1, timeout.as_millis() as libc::c_int) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(CaptureError::Sys {
                    call: "poll",
                    source: e,
                });
            }
        }
        let mut out = Vec::new();
        let offset = self.offset;
        while let Some(item) = self.ring.next() {
            if let Some(packet) = decode(offset, &item) {
                out.push(packet);
            }
        }
        Ok(out)
    }
}

/// A record of the ring as a packet.
fn decode(offset: Duration, bytes: &[u8]) -> Option<Packet> {
    if bytes.len() < size_of::<CaptureRecord>() {
        return None;
    }
    // SAFETY: the ring holds `CaptureRecord`s, as the data path writes
    // them; read unaligned, it is plain data.
    let record: CaptureRecord = unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast()) };
    let (verdict, reason) = slot_label(record.slot)?;
    let caplen = (record.caplen as usize).min(capture::SNAP_LEN);
    Some(Packet {
        time: SystemTime::UNIX_EPOCH + offset + Duration::from_nanos(record.ts_ns),
        len: record.len,
        data: record.data[..caplen].to_vec(),
        verdict,
        reason,
    })
}

impl Drop for Capture {
    fn drop(&mut self) {
        let _ = self.settings.set(0, CaptureSettings::default(), 0);
    }
}

/// Whether a capture is running on an interface now (its lease unexpired).
pub fn running(layout: &PinLayout, iface: &str) -> bool {
    let path = layout.map(iface, maps::CAPTURE);
    read_settings(&path).is_ok_and(|s| s.until_ns > monotonic_ns())
}

fn read_settings(path: &Path) -> Result<CaptureSettings, MapError> {
    let array: Array<MapData, CaptureSettings> =
        Array::try_from(Map::Array(MapData::from_pin(path)?))?;
    array.get(&0, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reason_asks_for_its_enforced_and_its_dry_run_slot() {
        let mask = slots(&[Reason::Blocklist]);
        assert_eq!(
            mask,
            1 << Reason::Blocklist as u32 | 1 << Reason::Blocklist.would_slot()
        );
        // None: every drop and answer, nothing passed.
        let all = slots(&[]);
        assert!(all & 1 << Reason::SynAck as u32 != 0);
        assert!(all & 1 << Reason::Rate.would_slot() != 0);
        assert!(all & 1 << Reason::Syn as u32 == 0);
        assert_eq!(
            slot_label(Reason::SynAck as u32),
            Some(("tx", Reason::SynAck))
        );
        assert_eq!(
            slot_label(Reason::Blocklist.would_slot()),
            Some(("would_drop", Reason::Blocklist))
        );
        assert_eq!(slot_label(2 * Reason::COUNT), None);
    }
}
