//! Ctrl-C and SIGTERM as a flag to poll, for loops that must finish their
//! work before the process ends (`synguard capture` and `top` clear their
//! capture flag; `cargo xtask matrix` stops its VM and removes its
//! namespace).
use core::sync::atomic::{AtomicBool, Ordering};

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

/// From now on, SIGINT and SIGTERM set the flag [`stopped`] reads instead
/// of ending the process.
pub fn stop_on_signals() {
    for signal in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only stores to an atomic.
        unsafe { libc::signal(signal, on_signal as *const () as libc::sighandler_t) };
    }
}

/// Whether SIGINT or SIGTERM came since [`stop_on_signals`].
pub fn stopped() -> bool {
    STOP.load(Ordering::Relaxed)
}
