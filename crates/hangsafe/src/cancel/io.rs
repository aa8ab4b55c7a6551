//! Reading and writing: read, write, pread, pwrite, readv, writev, and a
//! `close` that is deliberately *not* a cancellation point.

use super::error::{Error, Result};
use super::syscall::{cp, OnEintr};
use std::ffi::c_long;
use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, IntoRawFd, OwnedFd};

#[inline]
pub(crate) fn raw(fd: impl AsFd) -> c_long {
    fd.as_fd().as_raw_fd() as c_long
}

/// Cancellable `read(2)`. Bytes that were read are always returned, even if
/// a cancel arrives right after (R16): a cancel only ever replaces a read
/// that did not happen.
///
/// ```
/// let (r, w) = std::io::pipe().unwrap();
/// assert_eq!(hangsafe::cancel::write(&w, b"hi").unwrap(), 2);
/// let mut buf = [0u8; 8];
/// assert_eq!(hangsafe::cancel::read(&r, &mut buf).unwrap(), 2);
/// ```
pub fn read(fd: impl AsFd, buf: &mut [u8]) -> Result<usize> {
    // SAFETY: the kernel writes at most buf.len() bytes into buf.
    let n = unsafe {
        cp(
            libc::SYS_read,
            [
                raw(fd),
                buf.as_mut_ptr() as c_long,
                buf.len() as c_long,
                0,
                0,
                0,
            ],
            OnEintr::Retry,
        )?
    };
    Ok(n as usize)
}

/// Cancellable `write(2)`; bytes written are always reported.
pub fn write(fd: impl AsFd, buf: &[u8]) -> Result<usize> {
    // SAFETY: the kernel reads at most buf.len() bytes from buf.
    let n = unsafe {
        cp(
            libc::SYS_write,
            [
                raw(fd),
                buf.as_ptr() as c_long,
                buf.len() as c_long,
                0,
                0,
                0,
            ],
            OnEintr::Retry,
        )?
    };
    Ok(n as usize)
}

/// Cancellable `pread(2)` at `offset`.
pub fn pread(fd: impl AsFd, buf: &mut [u8], offset: u64) -> Result<usize> {
    // SAFETY: as for `read`.
    let n = unsafe {
        cp(
            libc::SYS_pread64,
            [
                raw(fd),
                buf.as_mut_ptr() as c_long,
                buf.len() as c_long,
                offset as c_long,
                0,
                0,
            ],
            OnEintr::Retry,
        )?
    };
    Ok(n as usize)
}

/// Cancellable `pwrite(2)` at `offset`.
pub fn pwrite(fd: impl AsFd, buf: &[u8], offset: u64) -> Result<usize> {
    // SAFETY: as for `write`.
    let n = unsafe {
        cp(
            libc::SYS_pwrite64,
            [
                raw(fd),
                buf.as_ptr() as c_long,
                buf.len() as c_long,
                offset as c_long,
                0,
                0,
            ],
            OnEintr::Retry,
        )?
    };
    Ok(n as usize)
}

/// Cancellable `readv(2)`.
pub fn readv(fd: impl AsFd, bufs: &mut [IoSliceMut<'_>]) -> Result<usize> {
    // SAFETY: IoSliceMut is ABI-compatible with `struct iovec` on Unix;
    // each describes a live, writable buffer.
    let n = unsafe {
        cp(
            libc::SYS_readv,
            [
                raw(fd),
                bufs.as_mut_ptr() as c_long,
                bufs.len() as c_long,
                0,
                0,
                0,
            ],
            OnEintr::Retry,
        )?
    };
    Ok(n as usize)
}

/// Cancellable `writev(2)`.
pub fn writev(fd: impl AsFd, bufs: &[IoSlice<'_>]) -> Result<usize> {
    // SAFETY: IoSlice is ABI-compatible with `struct iovec` on Unix.
    let n = unsafe {
        cp(
            libc::SYS_writev,
            [
                raw(fd),
                bufs.as_ptr() as c_long,
                bufs.len() as c_long,
                0,
                0,
                0,
            ],
            OnEintr::Retry,
        )?
    };
    Ok(n as usize)
}

/// `close(2)`, which is **not** a cancellation point.
///
/// Once `close` has entered the kernel the descriptor is gone, whatever the
/// return value, so reporting "cancelled" could only make a caller leak or
/// double-close it (R17). This call therefore never reports `Cancelled`,
/// and treats `EINTR` as success (Linux has released the descriptor).
pub fn close(fd: OwnedFd) -> Result<()> {
    let raw = fd.into_raw_fd();
    // SAFETY: we own `raw` (taken out of the OwnedFd) and close it once.
    let r = unsafe { libc::close(raw) };
    if r == 0 {
        return Ok(());
    }
    match std::io::Error::last_os_error().raw_os_error() {
        Some(libc::EINTR) => Ok(()),
        Some(e) => Err(Error::Os(e)),
        None => Ok(()),
    }
}
