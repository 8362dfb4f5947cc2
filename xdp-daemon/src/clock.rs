//! The kernel's monotonic clocks, as the data path reads them.

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
}
