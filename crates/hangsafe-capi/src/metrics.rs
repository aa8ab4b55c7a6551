//! `hs_runner_metrics()`: the runner pool's counters for C.

use crate::barrier;
use crate::errno;
use hangsafe_core::runner::{Metrics, Pool};
use std::ffi::c_int;

/// `struct hs_runner_metrics` of `hangsafe.h`: a snapshot of the global
/// runner pool's counters. See the core's `Metrics` for each field's
/// meaning; gauges are current values, the rest count since start-up.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HsRunnerMetrics {
    /// Pool threads that exist, abandoned ones included.
    pub threads_alive: u64,
    /// Threads parked, waiting for work.
    pub threads_idle: u64,
    /// Threads not idle: running a runner's work (abandoned ones included)
    /// or between two jobs; always `threads_alive - threads_idle`.
    pub threads_running: u64,
    /// Threads whose work outlived its cancel and has not returned yet.
    pub threads_abandoned: u64,
    /// Threads ever declared abandoned.
    pub abandoned_total: u64,
    /// Runners started.
    pub runners_spawned: u64,
    /// Runners that ended in `RUNNER_DONE`.
    pub runners_done: u64,
    /// Runners a cancel (timeout, release) took effect on.
    pub runners_cancelled: u64,
    /// Runners that ended in `RUNNER_DEAD`.
    pub runners_dead: u64,
    /// Runners whose work panicked (Rust work only).
    pub runners_panicked: u64,
    /// Runner contexts still allocated (handle or work alive).
    pub live_contexts: u64,
}

impl From<Metrics> for HsRunnerMetrics {
    fn from(m: Metrics) -> Self {
        HsRunnerMetrics {
            threads_alive: m.threads_alive,
            threads_idle: m.threads_idle,
            threads_running: m.threads_running,
            threads_abandoned: m.threads_abandoned,
            abandoned_total: m.abandoned_total,
            runners_spawned: m.runners_spawned,
            runners_done: m.runners_done,
            runners_cancelled: m.runners_cancelled,
            runners_dead: m.runners_dead,
            runners_panicked: m.runners_panicked,
            live_contexts: m.live_contexts,
        }
    }
}

/// Fills `*out` with a snapshot of the global runner pool's counters.
/// Returns 0, or -1 with `errno` = `EINVAL` if `out` is null.
///
/// # Safety
///
/// `out` must be null or valid for writing one `struct hs_runner_metrics`.
#[no_mangle]
pub unsafe extern "C" fn hs_runner_metrics(out: *mut HsRunnerMetrics) -> c_int {
    barrier::run("hs_runner_metrics", -1, || {
        if out.is_null() {
            log::error!("hs_runner_metrics: out is NULL");
            errno::set(libc::EINVAL);
            return -1;
        }
        let snapshot = HsRunnerMetrics::from(Pool::global().metrics());
        // SAFETY: `out` is non-null and writable for one struct (caller's
        // contract); `write` does not read or drop the old contents, which
        // may be uninitialised.
        unsafe { out.write(snapshot) };
        0
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn null_is_einval() {
        // SAFETY: null is allowed.
        assert_eq!(unsafe { hs_runner_metrics(std::ptr::null_mut()) }, -1);
        assert_eq!(
            std::io::Error::last_os_error().raw_os_error(),
            Some(libc::EINVAL)
        );
    }

    #[test]
    fn fills_the_struct() {
        let mut m = std::mem::MaybeUninit::<HsRunnerMetrics>::uninit();
        // SAFETY: `m` is writable for one struct.
        assert_eq!(unsafe { hs_runner_metrics(m.as_mut_ptr()) }, 0);
        // SAFETY: hs_runner_metrics returned 0, so it wrote the struct.
        let m = unsafe { m.assume_init() };
        assert!(m.runners_done <= m.runners_spawned);
    }

    #[test]
    fn layout_is_eleven_u64() {
        assert_eq!(std::mem::size_of::<HsRunnerMetrics>(), 11 * 8);
        assert_eq!(std::mem::align_of::<HsRunnerMetrics>(), 8);
    }
}
