//! Pool and runner counters, and the cheap [`Metrics`] snapshot.

use crate::sync::{AtomicU64, CachePadded, Ordering};

/// Live counters of one pool. Each is a relaxed atomic on its own cache
/// line (the caller's and the worker's counters must not share one: a
/// runner round trip is a handful of line transfers between two cores, and
/// false sharing would double them). A snapshot is a set of individually
/// exact values, not one instant's consistent cut.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) threads_alive: CachePadded<AtomicU64>,
    /// Written (a plain store of the idle stack's length) under the pool's
    /// idle lock, so it costs no extra line transfer.
    pub(crate) threads_idle: CachePadded<AtomicU64>,
    pub(crate) abandoned_now: CachePadded<AtomicU64>,
    pub(crate) abandoned_total: CachePadded<AtomicU64>,
    pub(crate) spawned: CachePadded<AtomicU64>,
    pub(crate) done: CachePadded<AtomicU64>,
    pub(crate) cancelled: CachePadded<AtomicU64>,
    pub(crate) dead: CachePadded<AtomicU64>,
    pub(crate) panicked: CachePadded<AtomicU64>,
    pub(crate) live_contexts: CachePadded<AtomicU64>,
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
        let alive = get(&self.threads_alive);
        let idle = get(&self.threads_idle).min(alive);
        Metrics {
            threads_alive: alive,
            threads_idle: idle,
            threads_running: alive - idle,
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
    /// Threads not idle: running a runner's work (abandoned ones included),
    /// or between jobs (`threads_alive - threads_idle`).
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
