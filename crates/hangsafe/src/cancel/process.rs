//! Processes: wait4 and waitid.

use super::error::Result;
use super::syscall::{cp, OnEintr};
use std::ffi::c_long;

/// Cancellable `wait4(2)`: returns the child's PID (0 with `WNOHANG` and
/// nothing to reap) and its wait status.
pub fn wait4(pid: i32, options: i32) -> Result<(i32, i32)> {
    let mut status: libc::c_int = 0;
    // SAFETY: the kernel writes one int into `status`; no rusage.
    let r = unsafe {
        cp(
            libc::SYS_wait4,
            [
                pid as c_long,
                &mut status as *mut _ as c_long,
                options as c_long,
                0,
                0,
                0,
            ],
            OnEintr::Retry,
        )?
    };
    Ok((r as i32, status))
}

/// Cancellable `waitid(2)`; returns the filled `siginfo_t` (`si_pid` is 0
/// with `WNOHANG` and nothing to report).
pub fn waitid(idtype: libc::idtype_t, id: libc::id_t, options: i32) -> Result<libc::siginfo_t> {
    // SAFETY: siginfo_t is plain data; zero means "nothing reported".
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: the kernel writes one siginfo_t into `info`; no rusage.
    unsafe {
        cp(
            libc::SYS_waitid,
            [
                idtype as c_long,
                id as c_long,
                &mut info as *mut _ as c_long,
                options as c_long,
                0,
                0,
            ],
            OnEintr::Retry,
        )?
    };
    Ok(info)
}
