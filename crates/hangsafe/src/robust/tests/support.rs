//! Fail points and `/proc` probes for the robust-mutex tests; fork, wait
//! and shared memory come from the workspace's test kit
//! (`hangsafe-testkit`).

use crate::robust::error::Error;
use crate::robust::kernel::{Deadline, Kernel, Linux, Me, Point};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

// Fork, wait, die and the shared mapping: the workspace's test kit.
pub(crate) use hangsafe_testkit::process::{die, fork, Child, Exit, Shm};

/// The real kernel, plus: SIGKILL self when reaching `kill_at`; spin on a
/// shared gate when reaching `pause_at` (until the gate opens).
pub(crate) struct FailKernel<'a> {
    pub(crate) kill_at: Option<Point>,
    pub(crate) pause_at: Option<(Point, &'a AtomicU32)>,
    /// Counts arrivals at `pause_at`.
    pub(crate) arrived: Option<&'a AtomicU32>,
    /// Judge every holder alive (no R63 liveness check), so that a
    /// contender of a dead holder reaches `FUTEX_LOCK_PI` and its `ESRCH`.
    pub(crate) kernel_only: bool,
}

impl FailKernel<'_> {
    pub(crate) fn plain() -> FailKernel<'static> {
        FailKernel {
            kill_at: None,
            pause_at: None,
            arrived: None,
            kernel_only: false,
        }
    }
    pub(crate) fn kill_at(p: Point) -> FailKernel<'static> {
        FailKernel {
            kill_at: Some(p),
            pause_at: None,
            arrived: None,
            kernel_only: false,
        }
    }
}

impl Kernel for FailKernel<'_> {
    fn me(&self) -> Result<Me, Error> {
        Linux.me()
    }
    fn me_cached(&self) -> Option<Me> {
        Linux.me_cached()
    }
    fn lock_pi(&self, word: &AtomicU32, deadline: Option<Deadline>) -> Result<(), i32> {
        Linux.lock_pi(word, deadline)
    }
    fn trylock_pi(&self, word: &AtomicU32) -> Result<(), i32> {
        Linux.trylock_pi(word)
    }
    fn unlock_pi(&self, word: &AtomicU32) -> Result<(), i32> {
        Linux.unlock_pi(word)
    }
    fn backoff(&self, attempt: u32) {
        Linux.backoff(attempt)
    }
    fn now_ns(&self) -> u64 {
        Linux.now_ns()
    }
    fn alive(&self, tid: u32) -> bool {
        self.kernel_only || Linux.alive(tid)
    }
    fn point(&self, p: Point) {
        if self.kill_at == Some(p) {
            die();
        }
        if let Some((at, gate)) = self.pause_at {
            if at == p {
                if let Some(a) = self.arrived {
                    a.fetch_add(1, Ordering::SeqCst);
                }
                while gate.load(Ordering::SeqCst) == 0 {
                    std::hint::spin_loop();
                    // SAFETY: sched_yield has no preconditions.
                    unsafe { libc::sched_yield() };
                }
            }
        }
    }
}

/// Polls `cond` until true; panics after `limit`.
pub(crate) fn eventually(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < end, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Whether process `pid` (single-threaded) sleeps in the futex syscall.
///
/// Under qemu-user (`HANGSAFE_UNDER_EMULATION`, the aarch64 CI run),
/// `/proc/<pid>/syscall` describes qemu's host thread with the host's
/// numbering, so only "sleeps in some syscall" can be observed; the
/// callers then allow a settle time (see [`settle`]).
pub(crate) fn blocked_in_futex(pid: libc::pid_t) -> bool {
    let s = std::fs::read_to_string(format!("/proc/{pid}/syscall")).unwrap_or_default();
    let first = s.split_whitespace().next().unwrap_or("");
    if under_emulation() {
        return first.parse::<i64>().is_ok_and(|n| n >= 0);
    }
    first == libc::SYS_futex.to_string()
}

pub(crate) use hangsafe_testkit::env::under_emulation;

/// After [`blocked_in_futex`] said yes: under emulation, give the process
/// time to really reach the futex wait.
pub(crate) fn settle() {
    if under_emulation() {
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Process state letter from `/proc/<pid>/stat` (after the `(comm)`).
pub(crate) fn proc_state(pid: libc::pid_t) -> Option<char> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    s.rsplit_once(')')?.1.trim_start().chars().next()
}

/// Child exit codes used by the tests.
pub(crate) mod code {
    pub(crate) const CONSISTENT: i32 = 10;
    pub(crate) const OWNER_DEAD: i32 = 11;
    pub(crate) const NOT_RECOVERABLE: i32 = 12;
    pub(crate) const TIMED_OUT: i32 = 13;
    pub(crate) const BUSY: i32 = 14;
    pub(crate) const OTHER: i32 = 20;
}

/// Maps a lock result to a child exit code.
pub(crate) fn lock_code(r: &Result<crate::robust::Acquired, Error>) -> i32 {
    use crate::robust::Acquired;
    match r {
        Ok(Acquired::Consistent) => code::CONSISTENT,
        Ok(Acquired::OwnerDead) => code::OWNER_DEAD,
        Err(Error::NotRecoverable) => code::NOT_RECOVERABLE,
        Err(Error::TimedOut) => code::TIMED_OUT,
        Err(Error::WouldBlock) => code::BUSY,
        Err(_) => code::OTHER,
    }
}
