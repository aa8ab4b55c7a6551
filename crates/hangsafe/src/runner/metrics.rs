//! Pool and runner counters, and the cheap [`Metrics`] snapshot.

use crate::sync::{AtomicU64, Ordering};

/// Live counters of one pool. Each is a relaxed atomic: a snapshot is a set
/// of individually exact values, not one instant's consistent cut.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) threads_alive: AtomicU64,
    pub(crate) threads_idle: AtomicU64,
    pub(crate) threads_running: AtomicU64,
    pub(crate) abandoned_now: AtomicU64,
    pub(crate) abandoned_total: AtomicU64,
    pub(crate) spawned: AtomicU64,
    pub(crate) done: AtomicU64,
    pub(crate) cancelled: AtomicU64,
    pub(crate) dead: AtomicU64,
    pub(crate) panicked: AtomicU64,
    pub(crate) live_contexts: AtomicU64,
}

impl Counters {
    #[inline]
    pub(crate) fn inc(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    #[inline]
    pub(crate) fn dec(c: &AtomicU64) {
        c.fetch_sub(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> Metrics {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Metrics {
            threads_alive: get(&self.threads_alive),
            threads_idle: get(&self.threads_idle),
            threads_running: get(&self.threads_running),
            threads_abandoned: get(&self.abandoned_now),
            abandoned_total: get(&self.abandoned_total),
            runners_spawned: get(&self.spawned),
            runners_done: get(&self.done),
            runners_cancelled: get(&self.cancelled),
            runners_dead: get(&self.dead),
            runners_panicked: get(&self.panicked),
            live_contexts: get(&self.live_contexts),
        }
    }
}

/// A snapshot of a pool's counters, taken with
/// [`Pool::metrics`](crate::runner::Pool::metrics).
///
/// Taking it costs a handful of relaxed loads. Gauges (`threads_*`,
/// `live_contexts`) are current values; the rest count since the pool was
/// created.
///
/// ```
/// let pool = hangsafe::runner::Pool::global();
/// let before = pool.metrics();
/// hangsafe::runner::spawn(|_| 1).unwrap().wait().unwrap();
/// assert!(pool.metrics().runners_done > before.runners_done);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Metrics {
    /// Pool threads that exist, including abandoned ones.
    pub threads_alive: u64,
    /// Threads parked, waiting for work.
    pub threads_idle: u64,
    /// Threads running a runner's work (including abandoned ones).
    pub threads_running: u64,
    /// Threads whose work outlived its cancel by the grace period and that
    /// have not come back yet. Spawning fails while this is at the cap.
    pub threads_abandoned: u64,
    /// Threads ever declared abandoned (some may have come back since).
    pub abandoned_total: u64,
    /// Runners spawned.
    pub runners_spawned: u64,
    /// Runners that ended in `Done`.
    pub runners_done: u64,
    /// Runners a cancel (explicit, deadline, release) took effect on.
    pub runners_cancelled: u64,
    /// Runners that ended in `Dead` (a panic, or returning after a cancel).
    pub runners_dead: u64,
    /// Runners whose work panicked.
    pub runners_panicked: u64,
    /// Runner contexts currently allocated (handle or work still alive).
    pub live_contexts: u64,
}
