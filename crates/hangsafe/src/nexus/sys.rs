//! The nexus's syscalls: the fd re-check and the eventfd. The only
//! `unsafe` of the module lives here.

use super::hooks::{Interest, Ready};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// `poll(fd, interest, 0)`, retried on `EINTR`: the fd's conditions now,
/// or the `errno` of a failed `poll`.
pub(crate) fn poll_now(fd: RawFd, interest: Interest) -> Result<Ready, i32> {
    let mut p = libc::pollfd {
        fd,
        events: interest.bits(),
        revents: 0,
    };
    loop {
        // SAFETY: `p` is one valid, exclusively borrowed pollfd and the
        // count is 1; a zero timeout never blocks. A closed fd is reported
        // as POLLNVAL, not a memory error.
        let r = unsafe { libc::poll(&mut p, 1, 0) };
        match r {
            0 => return Ok(Ready(0)),
            1 => return Ok(Ready(p.revents)),
            _ => {
                let e = errno();
                if e != libc::EINTR {
                    return Err(e);
                }
            }
        }
    }
}

fn errno() -> i32 {
    io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

/// A non-blocking, close-on-exec eventfd.
#[derive(Debug)]
pub(crate) struct EventFd(OwnedFd);

impl EventFd {
    pub(crate) fn new() -> io::Result<EventFd> {
        // SAFETY: eventfd takes no pointers; the result is checked below.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just returned by eventfd and is owned by no one
        // else.
        Ok(EventFd(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// Adds 1 to the counter: the fd becomes readable. Async-signal-safe
    /// and never blocks (the counter cannot reach its 2⁶⁴−2 limit: it is
    /// reset by every [`clear`](Self::clear)).
    pub(crate) fn raise(&self) {
        let one: u64 = 1;
        loop {
            // SAFETY: writes the 8 bytes of `one`, which lives across the
            // call; the fd is owned by `self` and open.
            let r = unsafe { libc::write(self.0.as_raw_fd(), (&one as *const u64).cast(), 8) };
            if r == 8 || errno() != libc::EINTR {
                if r != 8 {
                    log::error!(
                        "hangsafe: eventfd write failed: {}",
                        io::Error::last_os_error()
                    );
                }
                return;
            }
        }
    }

    /// Resets the counter to 0 (the fd stops being readable); returns the
    /// count it had.
    pub(crate) fn clear(&self) -> u64 {
        let mut v: u64 = 0;
        loop {
            // SAFETY: reads at most 8 bytes into `v`, which lives across
            // the call; the fd is owned by `self` and open.
            let r = unsafe { libc::read(self.0.as_raw_fd(), (&mut v as *mut u64).cast(), 8) };
            if r == 8 {
                return v;
            }
            if errno() != libc::EINTR {
                // EAGAIN: the counter was already 0.
                return 0;
            }
        }
    }

    pub(crate) fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }

    pub(crate) fn as_raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}
