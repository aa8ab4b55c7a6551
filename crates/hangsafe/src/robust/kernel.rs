//! The kernel side of the protocol, behind a trait so that loom can check
//! the userspace half against a model of it.
//!
//! [`Linux`] is the real thing: PI futex syscalls on a shared (not
//! `FUTEX_PRIVATE_FLAG`) word. `loom_tests` supplies a mock with the same
//! observable behaviour (hand-over with `OWNER_DIED` from a dead owner,
//! `ESRCH` for a dead owner without waiters, `EDEADLK` for a self-owned
//! word). The trait is also where the test-only fail points live: the real
//! implementation's [`Kernel::point`] is an empty inline function, so the
//! fail points cost nothing outside tests.

use super::error::Error;
use crate::sync::AtomicU32;

/// The calling thread, as the mutex sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Me {
    /// TID in the caller's PID namespace (what the kernel writes into a PI
    /// futex word).
    pub(crate) tid: u32,
    /// A random 64-bit identity, unique to this thread for its lifetime; it
    /// tells "I hold this lock" from "a dead thread whose TID I now reuse
    /// holds this lock" (both show my TID in the word).
    pub(crate) nonce: u64,
    /// The caller's PID namespace.
    pub(crate) ns: u64,
}

/// An absolute `CLOCK_MONOTONIC` deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Deadline {
    pub(crate) sec: i64,
    pub(crate) nsec: i64,
}

/// Named steps of the protocol, where tests kill the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(any(test, hangsafe_loom)), allow(dead_code))]
pub(crate) enum Point {
    /// The lock CAS (or the kernel's grant) succeeded; before anything else.
    AfterLockCas,
    /// About to return a granted lock to the caller.
    BeforeReturn,
    /// `FUTEX_LOCK_PI` said `ESRCH` (the owner is dead); before the
    /// take-over CAS.
    AfterEsrch,
    /// A liveness check found the holder's TID gone while nobody was
    /// queued (R63); before the take-over CAS.
    AfterDeadHolder,
    /// The unlock CAS failed (waiters are queued); before `FUTEX_UNLOCK_PI`.
    FailedUnlockCas,
    /// The unlock CAS succeeded: the lock is released. Nothing may touch the
    /// mutex after this point.
    AfterUnlockCas,
}

/// The operations of the kernel's PI-futex interface the protocol uses.
///
/// Errors are raw errno values, exactly as the syscall reports them.
pub(crate) trait Kernel {
    /// The calling thread's identity.
    fn me(&self) -> Result<Me, Error>;
    /// The calling thread's identity if it is known without any work (a
    /// per-thread cache); `None` sends the caller to [`Kernel::me`] on a
    /// cold path. Kept apart from `me` so that the uncontended lock and
    /// unlock carry the identity in registers, never as a spilled
    /// `Result` (a store-forwarding stall, measured).
    #[inline(always)]
    fn me_cached(&self) -> Option<Me> {
        None
    }
    /// `FUTEX_LOCK_PI2` (monotonic deadline) on `word`.
    fn lock_pi(&self, word: &AtomicU32, deadline: Option<Deadline>) -> Result<(), i32>;
    /// `FUTEX_TRYLOCK_PI` on `word`.
    fn trylock_pi(&self, word: &AtomicU32) -> Result<(), i32>;
    /// `FUTEX_UNLOCK_PI` on `word`.
    fn unlock_pi(&self, word: &AtomicU32) -> Result<(), i32>;
    /// A named step of the protocol (test fail points).
    #[inline(always)]
    fn point(&self, _p: Point) {}
    /// One step of a userspace spin-wait.
    #[inline]
    fn spin(&self) {
        #[cfg(hangsafe_loom)]
        crate::sync::thread::yield_now();
        #[cfg(not(hangsafe_loom))]
        std::hint::spin_loop();
    }
    /// Nanoseconds on a monotonic clock, for the spin's time bounds
    /// ([`super::spin`]). The default, for mocks, advances 1 µs per call.
    fn now_ns(&self) -> u64 {
        std::thread_local! {
            static FAKE: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
        }
        FAKE.with(|c| {
            c.set(c.get().wrapping_add(1_000));
            c.get()
        })
    }
    /// Whether a thread with this TID exists (R63). `false` only when the
    /// kernel says so; the default, for mocks without a notion of
    /// threads, is "alive", which leaves the verdict to `lock_pi`.
    fn alive(&self, _tid: u32) -> bool {
        true
    }
    /// Waits a little before retry number `attempt` of a transient kernel
    /// refusal.
    fn backoff(&self, _attempt: u32) {
        crate::sync::thread::yield_now();
    }
}

#[cfg(not(hangsafe_loom))]
pub(crate) use linux::Linux;

#[cfg(not(hangsafe_loom))]
mod linux {
    use super::{Deadline, Error, Kernel, Me};
    use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

    const FUTEX_LOCK_PI: i32 = 6;
    const FUTEX_UNLOCK_PI: i32 = 7;
    const FUTEX_TRYLOCK_PI: i32 = 8;
    const FUTEX_LOCK_PI2: i32 = 13;

    /// Set once `FUTEX_LOCK_PI2` (Linux 5.14) turned out to be missing.
    static NO_LOCK_PI2: AtomicBool = AtomicBool::new(false);

    /// The real kernel.
    #[derive(Debug, Clone, Copy, Default)]
    pub(crate) struct Linux;

    /// One futex call on a shared word. Returns 0 or the errno.
    fn futex(word: &AtomicU32, op: i32, ts: Option<&libc::timespec>) -> Result<(), i32> {
        let ts_ptr = ts.map_or(std::ptr::null(), |t| t as *const libc::timespec);
        // SAFETY: `word` is a live, aligned u32 for the duration of the call
        // (a reference); the PI operations read and compare-exchange it and
        // nothing else. `ts_ptr` is null or points to a timespec that lives
        // across the call. uaddr2/val3 are unused by these operations.
        let r = unsafe {
            libc::syscall(
                libc::SYS_futex,
                word.as_ptr(),
                op,
                0u32,
                ts_ptr,
                std::ptr::null::<u32>(),
                0u32,
            )
        };
        if r == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::EIO))
        }
    }

    /// Converts a monotonic deadline to a realtime one, for kernels without
    /// `FUTEX_LOCK_PI2` (whose `FUTEX_LOCK_PI` only takes `CLOCK_REALTIME`).
    fn to_realtime(d: Deadline) -> libc::timespec {
        let mono = clock(libc::CLOCK_MONOTONIC);
        let real = clock(libc::CLOCK_REALTIME);
        let left = (d.sec - mono.0) as i128 * 1_000_000_000 + (d.nsec - mono.1) as i128;
        let left = left.max(0);
        let abs = real.0 as i128 * 1_000_000_000 + real.1 as i128 + left;
        libc::timespec {
            // Far-future deadlines are clamped, not wrapped.
            tv_sec: (abs / 1_000_000_000).min(i64::MAX as i128 / 4) as libc::time_t,
            tv_nsec: (abs % 1_000_000_000) as _,
        }
    }

    pub(crate) fn clock(id: libc::clockid_t) -> (i64, i64) {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid out-pointer; the clocks used always exist.
        unsafe { libc::clock_gettime(id, &mut ts) };
        (ts.tv_sec, ts.tv_nsec)
    }

    impl Kernel for Linux {
        #[inline]
        fn me(&self) -> Result<Me, Error> {
            super::super::ident::me()
        }

        #[inline(always)]
        fn me_cached(&self) -> Option<Me> {
            super::super::ident::cached()
        }

        fn lock_pi(&self, word: &AtomicU32, deadline: Option<Deadline>) -> Result<(), i32> {
            let ts = deadline.map(|d| libc::timespec {
                tv_sec: d.sec as libc::time_t,
                tv_nsec: d.nsec as _,
            });
            if !NO_LOCK_PI2.load(Ordering::Relaxed) && !force_lock_pi() {
                match futex(word, FUTEX_LOCK_PI2, ts.as_ref()) {
                    // Kernels before 5.14 answer an unknown futex
                    // operation with ENOSYS.
                    Err(libc::ENOSYS) => {
                        NO_LOCK_PI2.store(true, Ordering::Relaxed);
                        log::debug!("robust mutex: no FUTEX_LOCK_PI2, using FUTEX_LOCK_PI");
                    }
                    r => return r,
                }
            }
            // Old kernel: FUTEX_LOCK_PI measures its absolute timeout on
            // CLOCK_REALTIME. Convert, and if the realtime clock is stepped
            // while we sleep, recheck against the monotonic deadline.
            loop {
                let rt = deadline.map(to_realtime);
                match futex(word, FUTEX_LOCK_PI, rt.as_ref()) {
                    Err(libc::ETIMEDOUT) => {
                        // Only a deadline times out; without one, pass the
                        // kernel's answer on rather than panic.
                        let Some(d) = deadline else {
                            return Err(libc::ETIMEDOUT);
                        };
                        let now = clock(libc::CLOCK_MONOTONIC);
                        if (now.0, now.1) >= (d.sec, d.nsec) {
                            return Err(libc::ETIMEDOUT);
                        }
                    }
                    r => return r,
                }
            }
        }

        fn trylock_pi(&self, word: &AtomicU32) -> Result<(), i32> {
            futex(word, FUTEX_TRYLOCK_PI, None)
        }

        fn unlock_pi(&self, word: &AtomicU32) -> Result<(), i32> {
            futex(word, FUTEX_UNLOCK_PI, None)
        }

        #[inline]
        fn now_ns(&self) -> u64 {
            let (s, ns) = clock(libc::CLOCK_MONOTONIC);
            (s as u64)
                .saturating_mul(1_000_000_000)
                .saturating_add(ns as u64)
        }

        /// A signal-0 `kill` of the TID: `ESRCH` means no task has it
        /// (it exited and was released); anything else (success, `EPERM`
        /// for another user's thread) means it exists. A zombie (a killed
        /// process not yet reaped) still exists: it is left to
        /// `FUTEX_LOCK_PI`, whose `ESRCH` covers it.
        fn alive(&self, tid: u32) -> bool {
            let Ok(pid) = libc::pid_t::try_from(tid) else {
                return true;
            };
            if pid <= 0 {
                return true;
            }
            // SAFETY: signal 0 performs the existence and permission
            // checks only; nothing is sent. `pid` is positive, so this
            // names one process or thread, never a group or everyone.
            let r = unsafe { libc::kill(pid, 0) };
            r == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
        }

        /// Yields for the first few attempts (the new owner is usually
        /// just about to run), then sleeps 100 µs per attempt.
        fn backoff(&self, attempt: u32) {
            if attempt < 16 {
                std::thread::yield_now();
            } else {
                std::thread::sleep(std::time::Duration::from_micros(100));
            }
        }
    }

    /// Whether to skip `FUTEX_LOCK_PI2` and take the pre-5.14 path. Never
    /// in the shipped library: there only the kernel's `ENOSYS` selects the
    /// fallback, so no environment variable can change how a program locks.
    #[cfg(not(test))]
    #[inline]
    fn force_lock_pi() -> bool {
        false
    }

    /// 0: not decided; 1: use LOCK_PI2; 2: force the pre-5.14 path.
    #[cfg(test)]
    static FORCE: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

    /// Unit tests only: `HANGSAFE_ROBUST_LOCK_PI=1` runs the test binary on
    /// the pre-5.14 path (to test the fallback on a new kernel).
    #[cfg(test)]
    fn force_lock_pi() -> bool {
        match FORCE.load(Ordering::Relaxed) {
            0 => {
                let force = std::env::var_os("HANGSAFE_ROBUST_LOCK_PI").is_some_and(|v| v == "1");
                FORCE.store(if force { 2 } else { 1 }, Ordering::Relaxed);
                force
            }
            v => v == 2,
        }
    }

    /// Tests: force (or stop forcing) the `FUTEX_LOCK_PI` fallback.
    #[cfg(all(test, not(miri)))]
    pub(crate) fn set_force_lock_pi(force: bool) {
        FORCE.store(if force { 2 } else { 1 }, Ordering::Relaxed);
    }
}

#[cfg(not(hangsafe_loom))]
pub(crate) use linux::clock;
#[cfg(all(test, not(hangsafe_loom), not(miri)))]
pub(crate) use linux::set_force_lock_pi;
