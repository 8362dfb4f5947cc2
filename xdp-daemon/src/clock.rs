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

/// How long measuring may take at most: a guest whose vCPUs are starved
/// can see its ticks late (8 ticks at HZ=100 take 80 ms).
const MEASURE_FOR: Duration = Duration::from_secs(2);
/// Jiffies to see go by.
const TICKS: u64 = 8;
/// Jiffies apart the first and last readings that agree on the offset must
/// be at least: a starved guest's jiffies can jump by several at once.
const AGREE_OVER: u64 = 3;

/// Reads the probe until [`TICKS`] jiffies have gone by, then settles the
/// clock from the readings at the kernel's tick.
fn measure() -> Result<ClockSettings, String> {
    let tick_ns = kernel_tick_ns()?;
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
    settle(&samples, tick_ns)
}

/// The kernel's `TICK_NSEC`, from the kernel itself: the coarse clocks'
/// resolution is one tick (kernel/time/posix-timers.c
/// `posix_get_coarse_res`).
fn kernel_tick_ns() -> Result<u64, String> {
    let mut res = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_getres writes one timespec into `res`.
    if unsafe { libc::clock_getres(libc::CLOCK_MONOTONIC_COARSE, &mut res) } != 0 {
        return Err(format!(
            "clock_getres(CLOCK_MONOTONIC_COARSE): {}",
            std::io::Error::last_os_error()
        ));
    }
    let tick_ns = res.tv_sec as u64 * 1_000_000_000 + res.tv_nsec as u64;
    // CONFIG_HZ is 100 to 1000 on the architectures Debian builds.
    if !(ClockSettings::tick_of(1000)..=ClockSettings::tick_of(100)).contains(&tick_ns) {
        return Err(format!(
            "the coarse clock's resolution, {tick_ns} ns, is no tick of HZ 100 to 1000"
        ));
    }
    Ok(tick_ns)
}

/// The readings at the kernel's tick: `coarse - jiffies * tick` of each,
/// and how many agree on one value.
struct Fit {
    /// The median of `coarse - jiffies * tick`: the usual offset.
    usual: u64,
    /// Readings within an eighth of a tick of the usual offset.
    agree: usize,
    /// How many jiffies apart the first and last agreeing readings are.
    agree_over: u64,
}

impl Fit {
    fn of(samples: &[Sample], tick_ns: u64) -> Fit {
        let at = |s: &Sample| s.coarse_ns.wrapping_sub(s.jiffies.wrapping_mul(tick_ns));
        // Distances from the first reading's, so a wrapped value sorts.
        let base = at(&samples[0]);
        let from_base = |s: &Sample| at(s).wrapping_sub(base) as i64;
        let mut offsets: Vec<i64> = samples.iter().map(from_base).collect();
        offsets.sort_unstable();
        let median = offsets[offsets.len() / 2];
        let agreeing = samples
            .iter()
            .filter(|s| from_base(s).abs_diff(median) <= tick_ns / 8);
        let (low, high) = agreeing.clone().fold((u64::MAX, 0), |(l, h), s| {
            (l.min(s.jiffies), h.max(s.jiffies))
        });
        Fit {
            usual: base.wrapping_add(median as u64),
            agree: agreeing.count(),
            agree_over: high.saturating_sub(low),
        }
    }
}

/// The clock from the readings, at the kernel's tick. The coarse clock
/// and jiffies move together, a tick at a time (the tick code advances
/// jiffies from CLOCK_MONOTONIC and then the timekeeping:
/// kernel/time/tick-sched.c `tick_do_update_jiffies64`), so `coarse -
/// jiffies * tick` has one value in most readings, and is a tick off in a
/// reading that fell between the two updates or between the probe's two
/// reads. Those can be many where the tick code was preempted, as in a
/// starved VM, so the usual value is the median, and it must hold for
/// most readings, [`AGREE_OVER`] jiffies apart at least (else the
/// readings say nothing: the kernel's jiffies do not move at its tick, or
/// the probe saw too little). The offset is a tick below the usual one:
/// a reading that fell after jiffies moved and before the coarse clock
/// did is a tick lower, and meets the data path's time there. So the data path's
/// time is at most two ticks behind the coarse clock when measured, and
/// for the whole boot never ahead of CLOCK_MONOTONIC, the kernel's TCP
/// clock (so neither is a SYN-ACK's timestamp), and at most three ticks
/// behind it: jiffies move with CLOCK_MONOTONIC a tick at a time
/// (`last_jiffies_update`), and the coarse clock's offset from them stays
/// within a tick below to a tick above the one measured (timekeeping
/// moves it in whole clocksource intervals, whose phase can drift against
/// the tick over hours). Another load measures an offset of its own: the
/// data path takes times a few ms in its future as now (`flood.rs`).
fn settle(samples: &[Sample], tick_ns: u64) -> Result<ClockSettings, String> {
    let (Some(first), Some(last)) = (samples.first(), samples.last()) else {
        return Err("no readings".into());
    };
    let jiffies = last.jiffies.wrapping_sub(first.jiffies);
    if jiffies < 4 {
        return Err(format!("{jiffies} jiffies went by while the probe ran"));
    }
    let fit = Fit::of(samples, tick_ns);
    if fit.agree * 2 <= samples.len() || fit.agree_over < AGREE_OVER {
        return Err(format!(
            "jiffies do not move at the kernel's tick ({tick_ns} ns): the coarse clock \
             moved {} ns in {jiffies} jiffies, {} of {} readings agree",
            last.coarse_ns.wrapping_sub(first.coarse_ns),
            fit.agree,
            samples.len()
        ));
    }
    Ok(ClockSettings {
        tick_ns,
        offset_ns: fit.usual.wrapping_sub(tick_ns),
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
        lagging(tick_ns, every_ns, count, 2_000)
    }

    /// Readings as [`readings`], with the coarse clock moving `lag_ns`
    /// after jiffies.
    fn lagging(tick_ns: u64, every_ns: u64, count: u64, lag_ns: u64) -> Vec<Sample> {
        (0..count)
            .map(|i| {
                let t = 1_000_000_000_000 + i * every_ns + 777;
                let jiffies = 4_294_000_000 + t / tick_ns;
                let coarse_ns = (t - lag_ns) / tick_ns * tick_ns;
                Sample { jiffies, coarse_ns }
            })
            .collect()
    }

    /// Where the data path's time is against each reading's coarse
    /// clock: never ahead, at most two ticks behind.
    fn never_ahead(clock: &ClockSettings, samples: &[Sample], what: &str) {
        for s in samples {
            let ours = s
                .jiffies
                .wrapping_mul(clock.tick_ns)
                .wrapping_add(clock.offset_ns);
            assert!(
                ours <= s.coarse_ns,
                "{what}: {ours} ahead of {}",
                s.coarse_ns
            );
            assert!(
                s.coarse_ns - ours <= 2 * clock.tick_ns,
                "{what}: more than two ticks behind"
            );
        }
    }

    #[test]
    fn the_clock_is_never_ahead_and_at_most_two_ticks_behind() {
        for hz in [100, 250, 300, 1000] {
            let tick = ClockSettings::tick_of(hz);
            let samples = readings(tick, 3_000, 9 * tick / 3_000);
            let clock = settle(&samples, tick).unwrap();
            assert_eq!(clock.tick_ns, tick, "HZ={hz}");
            never_ahead(&clock, &samples, &format!("HZ={hz}"));
        }
    }

    #[test]
    fn a_tick_code_preempted_between_its_two_updates_is_tolerated() {
        // A starved guest: the coarse clock moves 40% of a tick after
        // jiffies, so 40% of the readings are a tick lower. (A rule of
        // the middle eight readings in ten within a quarter tick refused
        // this in a loaded VM.)
        for hz in [100, 250, 1000] {
            let tick = ClockSettings::tick_of(hz);
            let samples = lagging(tick, 3_000, 9 * tick / 3_000, tick * 2 / 5);
            let clock = settle(&samples, tick).unwrap();
            never_ahead(&clock, &samples, &format!("HZ={hz}, lagging"));
        }
        // All but a few readings in one jiffy, then one mid-tick in each
        // of the nine jiffies after: the offset is the usual one.
        let tick = ClockSettings::tick_of(250);
        let mut samples = readings(tick, 1_000, 3_000);
        let last = samples[samples.len() - 1];
        samples.extend((1..=9).map(|j| Sample {
            jiffies: last.jiffies + j,
            coarse_ns: last.coarse_ns + j * tick,
        }));
        let clock = settle(&samples, tick).unwrap();
        never_ahead(&clock, &samples, "one jiffy, then nine");
        // As a starved guest under qemu TCG gave: readings over the first
        // five jiffies, then one eleven on, after jiffies jumped and
        // before the coarse clock followed.
        let mut samples = readings(tick, 70_000, 300);
        let last = samples[samples.len() - 1];
        samples.push(Sample {
            jiffies: last.jiffies + 6,
            coarse_ns: last.coarse_ns + 5 * tick,
        });
        let clock = settle(&samples, tick).unwrap();
        never_ahead(&clock, &samples[..300], "jiffies jumped");
    }

    #[test]
    fn readings_that_do_not_move_at_the_tick_or_too_few_jiffies_are_refused() {
        // Jiffies of 7 ms against the tick of HZ=250.
        let tick = ClockSettings::tick_of(250);
        let err = settle(&readings(7_000_000, 50_000, 1_000), tick).unwrap_err();
        assert!(err.contains("do not move at the kernel's tick"), "{err}");
        // HZ=300's against HZ=250's: a sixth apart.
        let err = settle(&readings(ClockSettings::tick_of(300), 3_000, 12_000), tick).unwrap_err();
        assert!(err.contains("do not move at the kernel's tick"), "{err}");
        // Everything in one jiffy but the last reading, nine later and
        // half a tick off: nothing says the tick is right.
        let mut samples = readings(tick, 1_000, 3_000);
        let last = samples[samples.len() - 1];
        samples.push(Sample {
            jiffies: last.jiffies + 9,
            coarse_ns: last.coarse_ns + 9 * tick + tick / 2,
        });
        let err = settle(&samples, tick).unwrap_err();
        assert!(err.contains("do not move at the kernel's tick"), "{err}");
        let err = settle(&readings(tick, 1_000, 100), tick).unwrap_err();
        assert!(err.contains("jiffies went by"), "{err}");
    }

    #[test]
    fn the_kernels_tick_is_one_of_hz_100_to_1000() {
        let tick = kernel_tick_ns().unwrap();
        assert!(
            [100, 250, 300, 1000]
                .map(ClockSettings::tick_of)
                .contains(&tick),
            "{tick}"
        );
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
