//! Escape hatches: any ioctl or syscall, made a cancellation point.

use super::error::Result;
use super::syscall::{cp, OnEintr};
use std::ffi::{c_long, c_ulong, c_void};
use std::os::fd::RawFd;

/// Cancellable `ioctl(2)` (for example `SG_IO`). Returns the ioctl's
/// non-negative result. `EINTR` without a cancel is returned, not retried:
/// whether an ioctl may be repeated depends on the request.
///
/// # Safety
///
/// `arg` must be valid for whatever `request` makes the kernel read and
/// write, for the duration of the call.
pub unsafe fn ioctl(fd: RawFd, request: c_ulong, arg: *mut c_void) -> Result<i32> {
    // SAFETY: forwarded to the caller.
    let r = unsafe {
        cp(
            libc::SYS_ioctl,
            [fd as c_long, request as c_long, arg as c_long, 0, 0, 0],
            OnEintr::Return,
        )?
    };
    Ok(r as i32)
}

/// Makes any syscall a cancellation point. Returns the raw non-negative
/// result; `EINTR` without a cancel is returned, not retried.
///
/// # Safety
///
/// The syscall with these arguments must be memory-safe: every pointer
/// argument valid for what the kernel reads and writes. Syscalls that
/// change the thread's state in ways hangsafe relies on (signal masks of
/// the cancel signal, `exit`, `clone`) are not supported.
pub unsafe fn syscall(nr: c_long, args: [c_long; 6]) -> Result<c_long> {
    // SAFETY: forwarded to the caller.
    unsafe { cp(nr, args, OnEintr::Return) }
}
