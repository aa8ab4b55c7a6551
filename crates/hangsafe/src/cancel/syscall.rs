//! The one loop every cancellable wrapper goes through.

use super::error::{Error, Result};
use super::thread;
use crate::platform;
use std::ffi::c_long;

/// What to do when the kernel returns `EINTR` and no cancel is pending.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OnEintr {
    /// Make the same call again (calls with no relative timeout).
    Retry,
    /// Report `EINTR` (the caller recomputes a timeout, or mirrors libc).
    Return,
}

/// Makes syscall `nr` a cancellation point.
///
/// * A cancel pending before the call, or arriving before the kernel acted
///   on it, gives `Err(Cancelled)` and the syscall has no effect.
/// * A call that completed is reported as completed, even if a cancel
///   arrived a moment later: its result (bytes, a file descriptor) is never
///   lost. The cancel shows at the next cancellation point.
/// * `EINTR` with a cancel pending is `Err(Cancelled)`; without one it is
///   retried or returned per `on_eintr`.
///
/// The successful first attempt is straight-line code inlined into each
/// wrapper (the arguments stay in registers); errors, retries and
/// cancellation go through the cold [`cp_slow`]. This keeps the wrapper
/// within a few nanoseconds of the raw syscall.
///
/// # Safety
///
/// The syscall with these arguments must be memory-safe (pointers valid
/// for what the kernel reads and writes).
#[inline(always)]
pub(crate) unsafe fn cp(nr: c_long, args: [c_long; 6], on_eintr: OnEintr) -> Result<c_long> {
    // SAFETY: forwarded to the caller.
    let r = unsafe { once(nr, args) };
    // The kernel returns -4095..=-1 for errors.
    if !(-4095..0).contains(&r) {
        return Ok(r);
    }
    // SAFETY: forwarded to the caller.
    unsafe { cp_slow(r, nr, args, on_eintr) }
}

/// One attempt: through the stub if this thread has a cancel word.
#[inline(always)]
unsafe fn once(nr: c_long, a: [c_long; 6]) -> c_long {
    match thread::stub_word() {
        // SAFETY: CURRENT's word lives as long as the thread, and is this
        // thread's; the syscall's own contract is the caller's.
        Some(w) => unsafe { platform::cancellable_syscall((*w).stub(), nr, a) },
        // SAFETY: as above, without the stub.
        None => unsafe { plain(nr, a) },
    }
}

/// The error path of [`cp`]: classify `r`, retry on a foreign `EINTR`.
#[cold]
#[inline(never)]
unsafe fn cp_slow(
    mut r: c_long,
    nr: c_long,
    args: [c_long; 6],
    on_eintr: OnEintr,
) -> Result<c_long> {
    loop {
        if !(-4095..0).contains(&r) {
            return Ok(r);
        }
        let errno = -r as i32;
        if (errno == libc::ECANCELED || errno == libc::EINTR) && thread::pending() {
            return Err(Error::Cancelled);
        }
        if errno == libc::EINTR && on_eintr == OnEintr::Retry {
            // SAFETY: forwarded to the caller.
            r = unsafe { once(nr, args) };
            continue;
        }
        return Err(Error::Os(errno));
    }
}

/// A syscall for a thread that cannot be cancelled, in the kernel's
/// convention (`-errno` on failure).
unsafe fn plain(nr: c_long, a: [c_long; 6]) -> c_long {
    // SAFETY: forwarded to the caller.
    let r = unsafe { libc::syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]) };
    if r == -1 {
        -(std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO) as c_long)
    } else {
        r
    }
}

/// A cancellation point without a syscall: `Err(Cancelled)` if this
/// thread's job or scope has been cancelled.
///
/// ```
/// assert_eq!(hangsafe::cancel::testcancel(), Ok(()));
/// ```
pub fn testcancel() -> Result<()> {
    if thread::pending() {
        Err(Error::Cancelled)
    } else {
        Ok(())
    }
}
