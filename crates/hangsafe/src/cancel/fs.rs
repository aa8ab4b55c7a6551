//! Files: openat (a FIFO open blocks), fsync, fdatasync, and the blocking
//! locks (`F_SETLKW`, `F_OFD_SETLKW`, `flock`).

use super::error::{Error, Result};
use super::io::raw;
use super::syscall::{cp, OnEintr};
use std::ffi::{c_long, CString};
use std::os::fd::{AsFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Cancellable `openat(2)` relative to `dir` (or the working directory for
/// `None`). A descriptor the kernel created is always returned, never
/// leaked (R16). `O_CLOEXEC` is added to `flags`.
///
/// ```
/// use hangsafe::cancel;
/// let fd = cancel::openat(None, "/dev/null", libc::O_RDONLY, 0).unwrap();
/// cancel::close(fd).unwrap();
/// assert_eq!(
///     cancel::openat(None, "/nonexistent", libc::O_RDONLY, 0).unwrap_err(),
///     cancel::Error::Os(libc::ENOENT)
/// );
/// ```
pub fn openat(
    dir: Option<BorrowedFd<'_>>,
    path: impl AsRef<Path>,
    flags: i32,
    mode: u32,
) -> Result<OwnedFd> {
    let path =
        CString::new(path.as_ref().as_os_str().as_bytes()).map_err(|_| Error::Os(libc::EINVAL))?;
    let dirfd = dir.map_or(libc::AT_FDCWD as c_long, raw);
    // SAFETY: `path` is a live NUL-terminated string.
    let fd = unsafe {
        cp(
            libc::SYS_openat,
            [
                dirfd,
                path.as_ptr() as c_long,
                (flags | libc::O_CLOEXEC) as c_long,
                mode as c_long,
                0,
                0,
            ],
            OnEintr::Retry,
        )?
    };
    // SAFETY: the kernel just returned this new descriptor; we own it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Cancellable `fsync(2)`.
pub fn fsync(fd: impl AsFd) -> Result<()> {
    // SAFETY: no memory arguments.
    unsafe { cp(libc::SYS_fsync, [raw(fd), 0, 0, 0, 0, 0], OnEintr::Retry)? };
    Ok(())
}

/// Cancellable `fdatasync(2)`.
pub fn fdatasync(fd: impl AsFd) -> Result<()> {
    // SAFETY: no memory arguments.
    unsafe {
        cp(
            libc::SYS_fdatasync,
            [raw(fd), 0, 0, 0, 0, 0],
            OnEintr::Retry,
        )?
    };
    Ok(())
}

/// Cancellable blocking record lock: `fcntl(F_SETLKW)`, or with `ofd`
/// `fcntl(F_OFD_SETLKW)` (open-file-description locks).
pub fn fcntl_lock_wait(fd: impl AsFd, lock: &libc::flock, ofd: bool) -> Result<()> {
    let cmd = if ofd {
        libc::F_OFD_SETLKW
    } else {
        libc::F_SETLKW
    };
    // SAFETY: the kernel reads one `struct flock` from `lock`.
    unsafe {
        cp(
            libc::SYS_fcntl,
            [
                raw(fd),
                cmd as c_long,
                lock as *const libc::flock as c_long,
                0,
                0,
                0,
            ],
            OnEintr::Retry,
        )?
    };
    Ok(())
}

/// Cancellable `flock(2)` (`LOCK_SH`/`LOCK_EX`, optionally `LOCK_NB`).
pub fn flock(fd: impl AsFd, operation: i32) -> Result<()> {
    // SAFETY: no memory arguments.
    unsafe {
        cp(
            libc::SYS_flock,
            [raw(fd), operation as c_long, 0, 0, 0, 0],
            OnEintr::Retry,
        )?
    };
    Ok(())
}
