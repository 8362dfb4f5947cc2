//! Reading the per-CPU counters: summed across CPUs at read time, never
//! mirrored, so a reader cannot disturb or fall behind the data path.
use std::path::Path;

use aya::maps::{Map, MapData, MapError, PerCpuArray};
use serde::Serialize;
use synguard_common::{Counter, Reason};

/// Slots of the `COUNTERS` array: per reason, what was done, then what a
/// dry-run interface would have done.
const SLOTS: usize = 2 * Reason::COUNT as usize;

/// Totals per reason for one interface: what the program did, and what it
/// would have done where it ran in dry-run (docs/design.md#dry-run).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Counters([Counter; SLOTS]);

impl Default for Counters {
    fn default() -> Self {
        Counters([Counter::default(); SLOTS])
    }
}

impl Counters {
    /// Packets counted under `reason` with its verdict.
    pub fn get(&self, reason: Reason) -> Counter {
        self.0[reason as usize]
    }

    /// Packets a dry-run interface passed that it would have dropped or
    /// answered for `reason`.
    pub fn would(&self, reason: Reason) -> Counter {
        self.0[reason.would_slot() as usize]
    }

    /// Every slot: the verdict label (`would_drop` for a dry-run's), the
    /// reason, the count.
    pub fn labelled(&self) -> impl Iterator<Item = (&'static str, Reason, Counter)> + '_ {
        let done = Reason::ALL
            .iter()
            .map(|&r| (r.verdict().name(), r, self.get(r)));
        let would = Reason::ALL
            .iter()
            .filter(|r| r.verdict().held_in_dry_run())
            .map(|&r| (r.verdict().would_name(), r, self.would(r)));
        done.chain(would)
    }

    /// Packets counted under any reason.
    pub fn total_packets(&self) -> u64 {
        self.0.iter().map(|c| c.packets).sum()
    }

    /// Counts that grew between `earlier` and `self`.
    pub fn since(&self, earlier: &Counters) -> Counters {
        let mut delta = *self;
        for (d, e) in delta.0.iter_mut().zip(earlier.0.iter()) {
            d.packets -= e.packets;
            d.bytes -= e.bytes;
        }
        delta
    }

    /// Rows with a non-zero packet count, in reason order, then the
    /// dry-run's in reason order.
    pub fn rows(&self) -> Vec<CounterRow> {
        self.labelled()
            .filter(|(_, _, c)| c.packets > 0)
            .map(|(verdict, reason, c)| CounterRow {
                verdict,
                reason: reason.name(),
                packets: c.packets,
                bytes: c.bytes,
            })
            .collect()
    }

    /// Reads a `COUNTERS` map of a loaded program.
    pub fn read(map: &Map) -> Result<Counters, MapError> {
        let array: PerCpuArray<&MapData, Counter> = PerCpuArray::try_from(map)?;
        Self::sum(&array)
    }

    /// Reads a pinned `COUNTERS` map.
    pub fn read_pinned(path: &Path) -> Result<Counters, MapError> {
        let map = Map::PerCpuArray(MapData::from_pin(path)?);
        let array: PerCpuArray<MapData, Counter> = PerCpuArray::try_from(map)?;
        Self::sum(&array)
    }

    fn sum<T: std::borrow::Borrow<MapData>>(
        array: &PerCpuArray<T, Counter>,
    ) -> Result<Counters, MapError> {
        let mut totals = Counters::default();
        for (i, slot) in totals.0.iter_mut().enumerate() {
            for per_cpu in array.get(&(i as u32), 0)?.iter() {
                slot.packets += per_cpu.packets;
                slot.bytes += per_cpu.bytes;
            }
        }
        Ok(totals)
    }
}

/// One line of `synguard stats`.
#[derive(Clone, Debug, Serialize)]
pub struct CounterRow {
    pub verdict: &'static str,
    pub reason: &'static str,
    pub packets: u64,
    pub bytes: u64,
}
