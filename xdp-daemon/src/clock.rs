//! The kernel's monotonic clocks, as the data path reads them, and the
//! data path's own: CLOCK_MONOTONIC_COARSE from jiffies
//! ([`data_path_clock`]).
use std::{sync::OnceLock, time::Duration};

use synguard_common::ClockSettings;

use crate::features::ClockProbe;

/// CLOCK_MONOTONIC in ns: `bpf_ktime_get_ns`'s clock.
pub fn monotonic_ns() -> u64 {
    read(libc::CLOCK_MONOTONIC)
}

/// CLOCK_MONOTONIC_COARSE in ns: `bpf_ktime_get_coarse_ns`'s, the data
/// path's clock for flood windows and budgets.
pub fn monotonic_coarse_ns() -> u64 {
    read(libc::CLOCK_MONOTONIC_COARSE)
}

fn read(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec into `ts`.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// The data path's clock for this boot ([`ClockSettings`]), measured once
/// per process. Where it cannot be measured (the probe cannot load, the
/// tick is not one the kernel can have), the data path reads the coarse
/// clock with a helper call instead, as it did before: slower, not wrong.
pub fn data_path_clock() -> ClockSettings {
    static WARNED: OnceLock<()> = OnceLock::new();
    match measured() {
        Ok(clock) => *clock,
        Err(why) => {
            WARNED.get_or_init(|| {
                tracing::warn!("the data path reads the clock with a helper call: {why}");
            });
            ClockSettings::default()
        }
    }
}

/// What measuring the data path's clock found, once per process.
pub fn measured() -> &'static Result<ClockSettings, String> {
    static CLOCK: OnceLock<Result<ClockSettings, String>> = OnceLock::new();
    CLOCK.get_or_init(measure)
}

/// How the data path reads its clock, in a few words: "jiffies at HZ=250",
/// or "a helper call" and why.
pub fn describe(measured: &Result<ClockSettings, String>) -> String {
    match measured.as_ref().map(ClockSettings::hz) {
        Ok(Some(hz)) => format!("jiffies at HZ={hz} (one load a read)"),
        Ok(None) => "a helper call".into(),
        Err(why) => format!("a helper call ({why})"),
    }
}

/// One reading of the probe: the jiffies and the coarse clock, read one
/// right after the other in one program run.
#[derive(Clone, Copy, Debug)]
struct Sample {
    jiffies: u64,
    coarse_ns: u64,
}

/// How long measuring may take at most (6 ticks at HZ=100 take 60 ms).
const MEASURE_FOR: Duration = Duration::from_millis(300);
/// Jiffies to see go by.
const TICKS: u64 = 6;

/// Reads the probe until [`TICKS`] jiffies have gone by, then settles the
/// clock from the readings.
fn measure() -> Result<ClockSettings, String> {
    let probe = ClockProbe::load().map_err(|e| format!("loading the clock probe: {e}"))?;
    let mut samples = Vec::new();
    let started = monotonic_ns();
    loop {
        let (jiffies, coarse_ns) = probe
            .sample()
            .map_err(|e| format!("running the clock probe: {e}"))?;
        samples.push(Sample { jiffies, coarse_ns });
        let first = samples[0].jiffies;
        if jiffies >= first + TICKS {
            break;
        }
        if monotonic_ns() - started > MEASURE_FOR.as_nanos() as u64 {
            return Err(format!(
                "jiffies went from {first} to {jiffies} in {MEASURE_FOR:?}"
            ));
        }
    }
    settle(&samples)
}

/// The ticks per second a kernel may be built with (`CONFIG_HZ`).
const HZ: [u64; 4] = [100, 250, 300, 1000];

/// A tick tried against the readings: `coarse - jiffies * tick` of each
/// reading, as signed distances from the first reading's (`base`),
/// sorted.
struct Fit {
    tick_ns: u64,
    base: u64,
    offsets: Vec<i64>,
}

impl Fit {
    fn of(samples: &[Sample], tick_ns: u64) -> Fit {
        let at = |s: &Sample| s.coarse_ns.wrapping_sub(s.jiffies.wrapping_mul(tick_ns));
        let base = at(&samples[0]);
        let mut offsets: Vec<i64> = samples
            .iter()
            .map(|s| at(s).wrapping_sub(base) as i64)
            .collect();
        offsets.sort_unstable();
        Fit {
            tick_ns,
            base,
            offsets,
        }
    }

    /// The usual offset: a tenth of the readings lie below it.
    fn low(&self) -> i64 {
        self.offsets[self.offsets.len() / 10]
    }

    /// How far the middle eight readings in ten spread.
    fn spread(&self) -> i64 {
        self.offsets[self.offsets.len() * 9 / 10] - self.low()
    }
}

/// The clock from the readings. The coarse clock and jiffies move
/// together, a tick at a time (the tick code advances jiffies from
/// CLOCK_MONOTONIC and then the timekeeping: kernel/time/tick-sched.c
/// `tick_do_update_jiffies64`), so with the kernel's tick `coarse -
/// jiffies * tick` is the same in every reading, within a tick where one
/// fell between the two reads; with any other it drifts by the
/// difference for every jiffy. The tick is the `TICK_NSEC` of the HZ whose
/// offsets spread least (the middle eight readings in ten within a quarter
/// of a tick), and the offset a tick below the usual one: a reading that
/// fell after jiffies moved and before the coarse clock did is a tick
/// lower, and meets the data path's time there. So the data path's time
/// is at most two ticks behind the coarse clock, never ahead of it, and
/// the answer's timestamp never ahead of the kernel's TCP clock. Both hold
/// for the boot.
fn settle(samples: &[Sample]) -> Result<ClockSettings, String> {
    let (Some(first), Some(last)) = (samples.first(), samples.last()) else {
        return Err("no readings".into());
    };
    let jiffies = last.jiffies.wrapping_sub(first.jiffies);
    if jiffies < 2 {
        return Err(format!("{jiffies} jiffies went by while the probe ran"));
    }
    let fit = HZ
        .iter()
        .map(|&hz| Fit::of(samples, ClockSettings::tick_of(hz)))
        .min_by_key(Fit::spread)
        .expect("HZ is not empty");
    let tick_ns = fit.tick_ns;
    if fit.spread() > tick_ns as i64 / 4 {
        return Err(format!(
            "no kernel's tick fits: the coarse clock moved {} ns in {jiffies} jiffies",
            last.coarse_ns.wrapping_sub(first.coarse_ns)
        ));
    }
    Ok(ClockSettings {
        tick_ns,
        offset_ns: fit
            .base
            .wrapping_add(fit.low() as u64)
            .wrapping_sub(tick_ns),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_clocks_run_and_agree_within_a_tick() {
        let (fine, coarse) = (monotonic_ns(), monotonic_coarse_ns());
        assert!(fine > 0 && coarse > 0);
        // The coarse clock lags by at most a jiffy (10 ms at HZ=100).
        assert!(fine.abs_diff(coarse) < 20_000_000, "{fine} vs {coarse}");
    }

    /// Readings every `every_ns` of a kernel with this tick: jiffies
    /// begin on the tick, the coarse clock moves 2 us later (now and then
    /// a reading falls between the two).
    fn readings(tick_ns: u64, every_ns: u64, count: u64) -> Vec<Sample> {
        (0..count)
            .map(|i| {
                let t = 1_000_000_000_000 + i * every_ns + 777;
                let jiffies = 4_294_000_000 + t / tick_ns;
                let coarse_ns = (t - 2_000) / tick_ns * tick_ns;
                Sample { jiffies, coarse_ns }
            })
            .collect()
    }

    #[test]
    fn the_tick_is_the_kernels_and_the_clock_never_ahead() {
        for hz in [100, 250, 300, 1000] {
            let tick = ClockSettings::tick_of(hz);
            let samples = readings(tick, 3_000, 7 * tick / 3_000);
            let clock = settle(&samples).unwrap();
            assert_eq!(clock.tick_ns, tick, "HZ={hz}");
            for s in &samples {
                let ours = s
                    .jiffies
                    .wrapping_mul(clock.tick_ns)
                    .wrapping_add(clock.offset_ns);
                assert!(
                    ours <= s.coarse_ns,
                    "HZ={hz}: {ours} ahead of {}",
                    s.coarse_ns
                );
                assert!(
                    s.coarse_ns - ours <= 2 * tick,
                    "HZ={hz}: more than two ticks behind"
                );
            }
        }
    }

    #[test]
    fn a_tick_no_kernel_has_or_too_few_jiffies_is_refused() {
        // 7 ms: no HZ gives it.
        let err = settle(&readings(7_000_000, 50_000, 1_000)).unwrap_err();
        assert!(err.contains("no kernel's tick"), "{err}");
        let err = settle(&readings(4_000_000, 1_000, 100)).unwrap_err();
        assert!(err.contains("jiffies went by"), "{err}");
    }

    #[test]
    fn the_probe_measures_this_kernel() {
        if unsafe { libc::geteuid() } != 0 {
            return;
        }
        let clock = measure().expect("measured");
        let ours = |j: u64| j.wrapping_mul(clock.tick_ns).wrapping_add(clock.offset_ns);
        let probe = ClockProbe::load().unwrap();
        for _ in 0..1000 {
            let (jiffies, coarse) = probe.sample().unwrap();
            assert!(ours(jiffies) <= coarse, "ahead of the coarse clock");
            assert!(
                coarse - ours(jiffies) <= 3 * clock.tick_ns,
                "too far behind"
            );
        }
    }
}
