//! What each blocklist entry dropped: the `ENTRY_DROPS` array of every
//! attached interface, by the entry's counter slot, summed across CPUs at
//! read time (docs/design.md#drops-per-blocklist-entry).
use std::io;

use aya::{
    maps::{Map, MapData, MapError, PerCpuArray, PerCpuValues},
    util::nr_cpus,
};
use synguard_common::{Counter, maps};

use super::ListError;
use crate::pins::PinLayout;

/// One interface's `ENTRY_DROPS`.
pub struct EntryDrops {
    pub iface: String,
    array: PerCpuArray<MapData, Counter>,
}

impl EntryDrops {
    /// The arrays of every interface attached under `layout` (an
    /// interface without one, being attached, is left out).
    pub fn attached(layout: &PinLayout) -> io::Result<Vec<EntryDrops>> {
        let mut out = Vec::new();
        for iface in layout.attached()? {
            let path = layout.map(&iface, maps::ENTRY_DROPS);
            if !path.exists() {
                continue;
            }
            match MapData::from_pin(&path)
                .map(Map::PerCpuArray)
                .and_then(PerCpuArray::try_from)
            {
                Ok(array) => out.push(EntryDrops { iface, array }),
                Err(e) => {
                    return Err(io::Error::other(format!("opening {}: {e}", path.display())));
                }
            }
        }
        Ok(out)
    }

    /// The array of a program loaded without pins (packet tests, bench).
    pub fn of(iface: &str, map: Map) -> Result<EntryDrops, MapError> {
        Ok(EntryDrops {
            iface: iface.to_string(),
            array: PerCpuArray::try_from(map)?,
        })
    }

    /// What the entry in `slot` dropped here, all CPUs together.
    pub fn get(&self, slot: u32) -> Result<Counter, MapError> {
        let mut total = Counter::default();
        for per_cpu in self.array.get(&slot, 0)?.iter() {
            total.packets += per_cpu.packets;
            total.bytes += per_cpu.bytes;
        }
        Ok(total)
    }

    /// Zeroes `slot` on every CPU, before it is given to an entry.
    pub fn zero(&mut self, slot: u32) -> Result<(), ListError> {
        let cpus = nr_cpus().map_err(|(_, e)| e)?;
        let zeros = PerCpuValues::try_from(vec![Counter::default(); cpus])?;
        Ok(self.array.set(slot, zeros, 0)?)
    }
}
