//! Helpers shared by the integration tests.
#![allow(dead_code)]

use hangsafe::runner::{Metrics, Pool};
use std::time::{Duration, Instant};

/// Polls `cond` until it holds or `limit` passes; returns whether it held.
/// Limits are generous: these are liveness checks, not timing checks.
pub fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Waits until the pool has no live runner context, or panics with the
/// metrics after `limit`.
pub fn await_no_live_contexts(pool: &Pool, limit: Duration) {
    let ok = eventually(limit, || pool.metrics().live_contexts == 0);
    assert!(
        ok,
        "live contexts did not return to zero: {:?}",
        pool.metrics()
    );
}

/// A small deterministic PRNG (xorshift64*), so runs are reproducible from
/// the printed seed without a dependency.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed | 1)
    }
    pub fn from_env_or_time(name: &str) -> (Self, u64) {
        let seed = std::env::var(name)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(1)
            });
        (Rng::new(seed), seed)
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Threads of this process, from /proc/self/status.
pub fn process_threads() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap()
}

/// CPU time (user + system) this process has used.
pub fn process_cpu() -> Duration {
    let mut ru = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes a full rusage into the valid pointer.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, ru.as_mut_ptr()) };
    assert_eq!(rc, 0);
    // SAFETY: initialised by the successful call above.
    let ru = unsafe { ru.assume_init() };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

pub fn show(m: &Metrics) -> String {
    format!("{m:?}")
}
