//! glibc's robust process-shared `pthread_mutex_t`, plain and
//! priority-inheriting: the peers of hangsafe's robust mutex, for the
//! criterion benchmark and `hangsafe bench` alike.
//!
//! A [`GlibcMutex`] lives in shared memory (all-zero bytes are a valid
//! not-yet-initialised value); errors are the pthread return codes.

use std::cell::UnsafeCell;
use std::mem::MaybeUninit;

/// Which glibc robust mutex.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// `PTHREAD_MUTEX_ROBUST`, default protocol: a plain futex, the robust
    /// list, userspace hand-over.
    Robust,
    /// The same plus `PTHREAD_PRIO_INHERIT`: a PI futex, as hangsafe's.
    RobustPi,
}

/// A process-shared robust `pthread_mutex_t`, to be placed in shared
/// memory.
#[repr(C)]
pub struct GlibcMutex(UnsafeCell<libc::pthread_mutex_t>);

// SAFETY: a process-shared pthread mutex is made to be used from several
// threads (and processes) at once; every access goes through glibc's
// pthread functions.
unsafe impl Sync for GlibcMutex {}

impl std::fmt::Debug for GlibcMutex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GlibcMutex").finish_non_exhaustive()
    }
}

/// A pthread return code as a `Result`.
fn rc(r: i32) -> Result<(), i32> {
    if r == 0 {
        Ok(())
    } else {
        Err(r)
    }
}

impl GlibcMutex {
    /// `pthread_mutex_init` as a process-shared robust mutex of
    /// `protocol`.
    ///
    /// # Safety
    ///
    /// No thread or process uses the mutex meanwhile, and it is not an
    /// initialised mutex that was never destroyed ([`GlibcMutex::destroy`]).
    pub unsafe fn init(&self, protocol: Protocol) -> Result<(), i32> {
        let mut attr = MaybeUninit::<libc::pthread_mutexattr_t>::uninit();
        let a = attr.as_mut_ptr();
        // SAFETY: `a` is storage for an attribute object, initialised first
        // and destroyed last; the mutex is unused (the caller's contract).
        unsafe {
            rc(libc::pthread_mutexattr_init(a))?;
            let r = rc(libc::pthread_mutexattr_setpshared(
                a,
                libc::PTHREAD_PROCESS_SHARED,
            ))
            .and_then(|()| {
                rc(libc::pthread_mutexattr_setrobust(
                    a,
                    libc::PTHREAD_MUTEX_ROBUST,
                ))
            })
            .and_then(|()| match protocol {
                Protocol::Robust => Ok(()),
                Protocol::RobustPi => rc(libc::pthread_mutexattr_setprotocol(
                    a,
                    libc::PTHREAD_PRIO_INHERIT,
                )),
            })
            .and_then(|()| rc(libc::pthread_mutex_init(self.0.get(), a)));
            libc::pthread_mutexattr_destroy(a);
            r
        }
    }

    /// `pthread_mutex_destroy`.
    ///
    /// # Safety
    ///
    /// The mutex is initialised, unlocked and unused by anyone else.
    pub unsafe fn destroy(&self) {
        // SAFETY: the caller's contract.
        unsafe { libc::pthread_mutex_destroy(self.0.get()) };
    }

    /// `pthread_mutex_lock`: `Ok(false)` held, `Ok(true)` held after an
    /// owner died (`EOWNERDEAD`).
    #[inline]
    pub fn lock(&self) -> Result<bool, i32> {
        // SAFETY: a mutex in memory we reference; glibc refuses one that
        // was never initialised only by convention, which the callers keep
        // (they initialise before sharing).
        match unsafe { libc::pthread_mutex_lock(self.0.get()) } {
            0 => Ok(false),
            libc::EOWNERDEAD => Ok(true),
            e => Err(e),
        }
    }

    /// `pthread_mutex_unlock`.
    #[inline]
    pub fn unlock(&self) -> Result<(), i32> {
        // SAFETY: as in `lock`.
        rc(unsafe { libc::pthread_mutex_unlock(self.0.get()) })
    }

    /// `pthread_mutex_consistent`.
    pub fn consistent(&self) -> Result<(), i32> {
        // SAFETY: as in `lock`.
        rc(unsafe { libc::pthread_mutex_consistent(self.0.get()) })
    }
}
