//! Reading the per-CPU counters: summed across CPUs at read time, never
//! mirrored, so a reader cannot disturb or fall behind the data path.
use std::path::Path;

use aya::maps::{Map, MapData, MapError, PerCpuArray};
use serde::Serialize;
use xdp_common::{Counter, Reason};

/// Totals per reason for one interface.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters([Counter; Reason::COUNT as usize]);

impl Counters {
    pub fn get(&self, reason: Reason) -> Counter {
        self.0[reason as usize]
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

    /// Rows with a non-zero packet count, in reason order.
    pub fn rows(&self) -> Vec<CounterRow> {
        Reason::ALL
            .iter()
            .map(|&reason| (reason, self.get(reason)))
            .filter(|(_, c)| c.packets > 0)
            .map(|(reason, c)| CounterRow {
                verdict: reason.verdict().name(),
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
        for reason in Reason::ALL {
            for per_cpu in array.get(&(reason as u32), 0)?.iter() {
                let slot = &mut totals.0[reason as usize];
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
