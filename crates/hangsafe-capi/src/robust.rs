//! `hangsafe.h`'s process-shared robust mutex: `hs_robust_mutex_t` and
//! `hs_robust_mutex_init`, `_lock`, `_trylock`, `_timedlock`,
//! `_consistent` and `_unlock`, on top of
//! [`hangsafe_core::robust::RawRobustMutex`].
//!
//! These functions follow pthread's conventions rather than the rest of
//! this library's: they **return** an error number (0 on success,
//! `EOWNERDEAD` for a lock that is held but inconsistent) and leave `errno`
//! exactly as the caller had it, whatever happens inside (the save and
//! restore costs two thread-local accesses).
//!
//! Arguments are checked before the mutex is touched: a null or
//! misaligned mutex pointer, a null `abs_timeout` and a `tv_nsec` outside
//! `[0, 1e9)` are `EINVAL` (logged at error level, like every bad argument
//! of this library), and nothing is locked or written. Memory that does
//! not hold an initialised mutex is `EINVAL` too (the core recognises it).
//! A negative `tv_sec` with a valid `tv_nsec` is a time already past, as
//! in glibc: the lock is taken if that can be done at once, otherwise the
//! call fails with `ETIMEDOUT`.
//!
//! The outcomes the mutex itself reports (`EBUSY`, `ETIMEDOUT`,
//! `EOWNERDEAD`, `ENOTRECOVERABLE`, `EPERM`, `EDEADLK`, `EINVAL` from
//! `_consistent` on a consistent mutex) are the caller's to handle and are
//! not logged; only the ones that mean misuse or a broken environment
//! (uninitialised memory, a foreign PID namespace, an unexpected kernel
//! error) are.
//!
//! Every entry point runs behind the panic barrier; a panic (a bug) is
//! reported as `ENOTRECOVERABLE`.

use crate::barrier;
use crate::errno;
use hangsafe_core::robust::{Acquired, Error, RawRobustMutex};
use std::ffi::c_int;

/// `hs_robust_mutex_t` of `hangsafe.h`: 64 opaque bytes, 8-byte aligned,
/// that hold a [`RawRobustMutex`]. C callers place it in shared memory and
/// only ever pass its address.
#[repr(C, align(8))]
pub struct HsRobustMutex {
    opaque: [u8; RawRobustMutex::SIZE],
}

impl std::fmt::Debug for HsRobustMutex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HsRobustMutex").finish_non_exhaustive()
    }
}

// The C type, this mirror of it and the core's mutex agree on size and
// alignment (the header checks the C side with a static assertion).
const _: () = {
    assert!(std::mem::size_of::<HsRobustMutex>() == RawRobustMutex::SIZE);
    assert!(std::mem::size_of::<RawRobustMutex>() == RawRobustMutex::SIZE);
    assert!(std::mem::align_of::<HsRobustMutex>() == 8);
    assert!(std::mem::align_of::<RawRobustMutex>() == 8);
};

/// Runs `body` behind the panic barrier and returns its error number,
/// leaving the caller's `errno` as it was (the core's syscalls may set it
/// on paths that still succeed, and the barrier sets it on a panic).
#[inline]
fn call(what: &str, body: impl FnOnce() -> c_int) -> c_int {
    let saved = errno::get();
    let r = barrier::run(what, libc::ENOTRECOVERABLE, body);
    errno::set(saved);
    r
}

/// The mutex at `m`, or `EINVAL` (logged) for a null or misaligned pointer.
///
/// # Safety
///
/// `m` is null, not 8-byte aligned, or valid for reads and atomic writes
/// of 64 bytes for `'a` (the caller's contract for every entry point).
#[inline]
unsafe fn mutex<'a>(what: &str, m: *mut HsRobustMutex) -> Result<&'a RawRobustMutex, c_int> {
    let raw = m.cast::<RawRobustMutex>().cast_const();
    if raw.is_null() {
        log::error!("{what}: mutex is NULL");
        return Err(libc::EINVAL);
    }
    if !raw.is_aligned() {
        log::error!("{what}: mutex {raw:p} is not 8-byte aligned");
        return Err(libc::EINVAL);
    }
    // SAFETY: non-null and aligned (checked above), and valid for reads and
    // writes of 64 bytes for 'a (caller's contract); the sizes and
    // alignments agree (const assertion above). Every field of
    // `RawRobustMutex` is an integer or an atomic integer, so any bytes are
    // a valid value, and it is only ever modified through its atomics
    // (other processes included), so a shared reference is sound.
    Ok(unsafe { &*raw })
}

/// The error number that reports `e`, logging the errors that mean misuse
/// or a broken environment rather than an ordinary outcome.
fn error_number(what: &str, e: &Error) -> c_int {
    match e {
        Error::Uninitialized | Error::ForeignNamespace | Error::Os(_) => {
            log::error!("{what}: {e}");
        }
        _ => {}
    }
    e.errno()
}

/// The error number of a lock attempt's outcome.
fn lock_result(what: &str, r: Result<Acquired, Error>) -> c_int {
    match r {
        Ok(Acquired::Consistent) => 0,
        Ok(Acquired::OwnerDead) => libc::EOWNERDEAD,
        Err(e) => error_number(what, &e),
    }
}

/// The error number of an operation that acquires nothing.
fn unit_result(what: &str, r: Result<(), Error>) -> c_int {
    match r {
        Ok(()) => 0,
        Err(e) => error_number(what, &e),
    }
}

/// Initialises (or re-initialises) the mutex at `m`: unlocked, consistent,
/// belonging to the caller's PID namespace. Returns 0, or `EINVAL` for a
/// null or misaligned `m`, or the error number of an environment without
/// `/proc` (the namespace cannot be identified).
///
/// Must not race with any other use of the mutex.
///
/// # Safety
///
/// `m` must be null, misaligned, or valid for reads and writes of 64
/// bytes.
#[no_mangle]
pub unsafe extern "C" fn hs_robust_mutex_init(m: *mut HsRobustMutex) -> c_int {
    const WHAT: &str = "hs_robust_mutex_init";
    call(WHAT, || {
        // SAFETY: forwarded from this function's contract.
        match unsafe { mutex(WHAT, m) } {
            Ok(mx) => unit_result(WHAT, mx.init()),
            Err(e) => e,
        }
    })
}

/// Locks the mutex at `m`, blocking as long as a live thread holds it.
/// Returns 0, `EOWNERDEAD` (held; a previous owner died holding it),
/// `ENOTRECOVERABLE`, `EDEADLK` (the caller holds it), `EINVAL` (null,
/// misaligned, uninitialised) or `EXDEV` (another PID namespace).
///
/// # Safety
///
/// As for [`hs_robust_mutex_init`].
#[no_mangle]
pub unsafe extern "C" fn hs_robust_mutex_lock(m: *mut HsRobustMutex) -> c_int {
    const WHAT: &str = "hs_robust_mutex_lock";
    call(WHAT, || {
        // SAFETY: forwarded from this function's contract.
        match unsafe { mutex(WHAT, m) } {
            Ok(mx) => lock_result(WHAT, mx.lock()),
            Err(e) => e,
        }
    })
}

/// Locks the mutex at `m` if no live thread holds it. As
/// [`hs_robust_mutex_lock`], plus `EBUSY` when a live thread holds it.
///
/// # Safety
///
/// As for [`hs_robust_mutex_init`].
#[no_mangle]
pub unsafe extern "C" fn hs_robust_mutex_trylock(m: *mut HsRobustMutex) -> c_int {
    const WHAT: &str = "hs_robust_mutex_trylock";
    call(WHAT, || {
        // SAFETY: forwarded from this function's contract.
        match unsafe { mutex(WHAT, m) } {
            Ok(mx) => lock_result(WHAT, mx.try_lock()),
            Err(e) => e,
        }
    })
}

/// The monotonic deadline `(sec, nsec)` that `*ts` names, or `None` if it is
/// not a valid time. A negative `tv_sec` is a time long past (0); a huge
/// one is clamped to a time the core can convert without overflow (still
/// billions of years away).
fn deadline(ts: &libc::timespec) -> Option<(i64, i64)> {
    // `time_t` and `long` are i64 on every supported target (LP64 Linux).
    let nsec: i64 = ts.tv_nsec;
    if !(0..1_000_000_000).contains(&nsec) {
        return None;
    }
    let sec: i64 = ts.tv_sec;
    if sec < 0 {
        return Some((0, 0));
    }
    Some((sec.min(i64::MAX / 4), nsec))
}

/// Locks the mutex at `m`, blocking at most until the absolute
/// `CLOCK_MONOTONIC` time `*abs_timeout`. As [`hs_robust_mutex_lock`], plus
/// `ETIMEDOUT` when the time passes first, and `EINVAL` for a null
/// `abs_timeout` or a `tv_nsec` outside `[0, 1e9)` (checked before anything
/// else: such a call never locks). A time already past still takes a lock
/// that is free.
///
/// # Safety
///
/// As for [`hs_robust_mutex_init`]; `abs_timeout` must be null or valid for
/// reading one `struct timespec` (it need not be aligned).
#[no_mangle]
pub unsafe extern "C" fn hs_robust_mutex_timedlock(
    m: *mut HsRobustMutex,
    abs_timeout: *const libc::timespec,
) -> c_int {
    const WHAT: &str = "hs_robust_mutex_timedlock";
    call(WHAT, || {
        // SAFETY: forwarded from this function's contract.
        let mx = match unsafe { mutex(WHAT, m) } {
            Ok(mx) => mx,
            Err(e) => return e,
        };
        if abs_timeout.is_null() {
            log::error!("{WHAT}: abs_timeout is NULL");
            return libc::EINVAL;
        }
        // SAFETY: non-null and valid for reading one timespec (caller's
        // contract); read_unaligned makes no alignment assumption, and a
        // timespec is plain integers, valid for any bytes.
        let ts = unsafe { abs_timeout.read_unaligned() };
        let Some((sec, nsec)) = deadline(&ts) else {
            log::error!(
                "{WHAT}: abs_timeout->tv_nsec = {} is outside [0, 1000000000)",
                ts.tv_nsec
            );
            return libc::EINVAL;
        };
        lock_result(WHAT, mx.lock_until_monotonic(sec, nsec))
    })
}

/// Marks the state protected by the mutex at `m` as repaired, after a lock
/// returned `EOWNERDEAD`. Returns 0, `EPERM` (the caller does not hold
/// it), `EINVAL` (the mutex is not inconsistent; or null, misaligned,
/// uninitialised) or `EXDEV`.
///
/// # Safety
///
/// As for [`hs_robust_mutex_init`].
#[no_mangle]
pub unsafe extern "C" fn hs_robust_mutex_consistent(m: *mut HsRobustMutex) -> c_int {
    const WHAT: &str = "hs_robust_mutex_consistent";
    call(WHAT, || {
        // SAFETY: forwarded from this function's contract.
        match unsafe { mutex(WHAT, m) } {
            Ok(mx) => unit_result(WHAT, mx.consistent()),
            Err(e) => e,
        }
    })
}

/// Unlocks the mutex at `m`. Returns 0, `EPERM` (the calling thread does
/// not hold it), `EINVAL` (null, misaligned, uninitialised) or `EXDEV`.
/// Unlocking an inconsistent mutex makes it not recoverable. After 0 is
/// returned, nothing (this library or the kernel) writes to the mutex's
/// memory again.
///
/// # Safety
///
/// As for [`hs_robust_mutex_init`].
#[no_mangle]
pub unsafe extern "C" fn hs_robust_mutex_unlock(m: *mut HsRobustMutex) -> c_int {
    const WHAT: &str = "hs_robust_mutex_unlock";
    call(WHAT, || {
        // SAFETY: forwarded from this function's contract.
        match unsafe { mutex(WHAT, m) } {
            Ok(mx) => unit_result(WHAT, mx.unlock()),
            Err(e) => e,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ptr;

    fn zeroed() -> Box<HsRobustMutex> {
        Box::new(HsRobustMutex {
            opaque: [0; RawRobustMutex::SIZE],
        })
    }

    fn ts(sec: i64, nsec: i64) -> libc::timespec {
        libc::timespec {
            tv_sec: sec as libc::time_t,
            tv_nsec: nsec as _,
        }
    }

    fn monotonic_after(ms: i64) -> libc::timespec {
        let mut now = ts(0, 0);
        // SAFETY: `now` is a valid out-pointer; the clock exists.
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
        let total = now.tv_nsec + ms * 1_000_000;
        ts(now.tv_sec + total / 1_000_000_000, total % 1_000_000_000)
    }

    #[test]
    fn layout_matches_the_core() {
        assert_eq!(std::mem::size_of::<HsRobustMutex>(), 64);
        assert_eq!(std::mem::align_of::<HsRobustMutex>(), 8);
    }

    #[test]
    fn deadlines() {
        assert_eq!(deadline(&ts(5, 0)), Some((5, 0)));
        assert_eq!(deadline(&ts(5, 999_999_999)), Some((5, 999_999_999)));
        assert_eq!(deadline(&ts(5, -1)), None);
        assert_eq!(deadline(&ts(5, 1_000_000_000)), None);
        assert_eq!(deadline(&ts(-1, 0)), Some((0, 0)));
        assert_eq!(deadline(&ts(-1, -1)), None);
        assert_eq!(deadline(&ts(i64::MAX, 0)), Some((i64::MAX / 4, 0)));
    }

    /// Null and misaligned pointers are EINVAL for every function, and
    /// nothing is written through a misaligned one.
    #[test]
    fn bad_pointers_are_einval() {
        let t = monotonic_after(1000);
        let null = ptr::null_mut();
        // SAFETY: null is allowed; `t` is a live timespec.
        unsafe {
            assert_eq!(hs_robust_mutex_init(null), libc::EINVAL);
            assert_eq!(hs_robust_mutex_lock(null), libc::EINVAL);
            assert_eq!(hs_robust_mutex_trylock(null), libc::EINVAL);
            assert_eq!(hs_robust_mutex_timedlock(null, &t), libc::EINVAL);
            assert_eq!(hs_robust_mutex_consistent(null), libc::EINVAL);
            assert_eq!(hs_robust_mutex_unlock(null), libc::EINVAL);
        }
        let mut buf = [0u64; 9];
        let odd = buf.as_mut_ptr().cast::<u8>().wrapping_add(4).cast();
        // SAFETY: `odd` is misaligned, so nothing is read or written
        // through it; `t` is a live timespec.
        unsafe {
            assert_eq!(hs_robust_mutex_init(odd), libc::EINVAL);
            assert_eq!(hs_robust_mutex_lock(odd), libc::EINVAL);
            assert_eq!(hs_robust_mutex_trylock(odd), libc::EINVAL);
            assert_eq!(hs_robust_mutex_timedlock(odd, &t), libc::EINVAL);
            assert_eq!(hs_robust_mutex_consistent(odd), libc::EINVAL);
            assert_eq!(hs_robust_mutex_unlock(odd), libc::EINVAL);
        }
        assert_eq!(buf, [0; 9]);
    }

    #[test]
    fn uninitialised_memory_is_einval() {
        let mut m = zeroed();
        let p: *mut HsRobustMutex = &mut *m;
        let t = monotonic_after(1000);
        // SAFETY: `p` points to 64 zeroed, aligned, live bytes.
        unsafe {
            assert_eq!(hs_robust_mutex_lock(p), libc::EINVAL);
            assert_eq!(hs_robust_mutex_trylock(p), libc::EINVAL);
            assert_eq!(hs_robust_mutex_timedlock(p, &t), libc::EINVAL);
            assert_eq!(hs_robust_mutex_consistent(p), libc::EINVAL);
            assert_eq!(hs_robust_mutex_unlock(p), libc::EINVAL);
        }
    }

    /// The uncontended cycle, the errors of the owner and of an unlocked
    /// mutex, and errno left alone throughout.
    #[test]
    fn lock_cycle_and_errno() {
        let mut m = zeroed();
        let p: *mut HsRobustMutex = &mut *m;
        let soon = monotonic_after(1000);
        let past = ts(-5, 0);
        errno::set(4321);
        // SAFETY: `p` points to 64 aligned, live bytes; the timespecs are
        // live.
        unsafe {
            assert_eq!(hs_robust_mutex_init(p), 0);
            assert_eq!(hs_robust_mutex_unlock(p), libc::EPERM);
            assert_eq!(hs_robust_mutex_lock(p), 0);
            assert_eq!(hs_robust_mutex_lock(p), libc::EDEADLK);
            assert_eq!(hs_robust_mutex_trylock(p), libc::EDEADLK);
            assert_eq!(hs_robust_mutex_timedlock(p, &soon), libc::EDEADLK);
            assert_eq!(hs_robust_mutex_consistent(p), libc::EINVAL);
            assert_eq!(hs_robust_mutex_unlock(p), 0);
            assert_eq!(hs_robust_mutex_unlock(p), libc::EPERM);
            assert_eq!(hs_robust_mutex_trylock(p), 0);
            assert_eq!(hs_robust_mutex_unlock(p), 0);
            assert_eq!(hs_robust_mutex_timedlock(p, &soon), 0);
            assert_eq!(hs_robust_mutex_unlock(p), 0);
            // A time long past still takes a free lock.
            assert_eq!(hs_robust_mutex_timedlock(p, &past), 0);
            assert_eq!(hs_robust_mutex_unlock(p), 0);
        }
        assert_eq!(errno::get(), 4321);
    }

    /// A bad timeout is refused before the lock is tried, even when the
    /// lock is free.
    #[test]
    fn bad_timeouts_are_einval() {
        let mut m = zeroed();
        let p: *mut HsRobustMutex = &mut *m;
        // SAFETY: `p` points to 64 aligned, live bytes; the timespecs are
        // live.
        unsafe {
            assert_eq!(hs_robust_mutex_init(p), 0);
            assert_eq!(hs_robust_mutex_timedlock(p, ptr::null()), libc::EINVAL);
            for nsec in [-1, 1_000_000_000, libc::c_long::MAX] {
                let t = ts(1, nsec);
                assert_eq!(hs_robust_mutex_timedlock(p, &t), libc::EINVAL);
            }
            // Nothing was locked.
            assert_eq!(hs_robust_mutex_trylock(p), 0);
            assert_eq!(hs_robust_mutex_unlock(p), 0);
        }
    }

    /// Another thread of the process can neither unlock nor repair the
    /// lock, and sees it busy; a deadline in the past times out. errno
    /// survives the failed futex call behind that timeout.
    #[test]
    fn other_thread_is_not_the_owner() {
        let mut m = zeroed();
        let p: *mut HsRobustMutex = &mut *m;
        // SAFETY: `p` points to 64 aligned, live bytes.
        unsafe {
            assert_eq!(hs_robust_mutex_init(p), 0);
            assert_eq!(hs_robust_mutex_lock(p), 0);
        }
        let addr = p as usize;
        let seen = std::thread::spawn(move || {
            let p = addr as *mut HsRobustMutex;
            let past = ts(0, 0);
            errno::set(4321);
            // SAFETY: the mutex outlives this thread (joined below).
            unsafe {
                [
                    hs_robust_mutex_unlock(p),
                    hs_robust_mutex_consistent(p),
                    hs_robust_mutex_trylock(p),
                    hs_robust_mutex_timedlock(p, &past),
                    errno::get(),
                ]
            }
        })
        .join()
        .expect("thread");
        assert_eq!(
            seen,
            [libc::EPERM, libc::EPERM, libc::EBUSY, libc::ETIMEDOUT, 4321]
        );
        // SAFETY: as above.
        assert_eq!(unsafe { hs_robust_mutex_unlock(p) }, 0);
    }
}
