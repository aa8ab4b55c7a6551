//! Eventfds and the `poll` on a descriptor plus a cancel eventfd, the
//! building blocks of the poll + eventfd peers.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

/// A new close-on-exec eventfd with count 0.
pub fn eventfd() -> io::Result<OwnedFd> {
    // SAFETY: eventfd has no memory preconditions; it returns a new
    // descriptor or -1.
    let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Adds 1 to eventfd `fd` (what a canceller does).
pub fn eventfd_signal(fd: RawFd) {
    let one: u64 = 1;
    // SAFETY: writes the 8 bytes of a live u64; a bad descriptor is an
    // error return, not memory unsafety.
    unsafe { libc::write(fd, (&one as *const u64).cast(), 8) };
}

/// Blocks in `poll` on `fd` and eventfd `efd`; true if `fd` became
/// readable, false if the eventfd fired (cancelled). Retries on `EINTR`.
pub fn poll_two(fd: RawFd, efd: RawFd) -> bool {
    let mut p = [
        libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            fd: efd,
            events: libc::POLLIN,
            revents: 0,
        },
    ];
    loop {
        // SAFETY: a live array of two pollfds, its length passed with it.
        let n = unsafe { libc::poll(p.as_mut_ptr(), 2, -1) };
        if n > 0 {
            return p[1].revents == 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn poll_two_tells_cancel_from_data() {
        let data = eventfd().unwrap();
        let cancel = eventfd().unwrap();
        eventfd_signal(cancel.as_raw_fd());
        assert!(!poll_two(data.as_raw_fd(), cancel.as_raw_fd()));
        let quiet = eventfd().unwrap();
        eventfd_signal(data.as_raw_fd());
        assert!(poll_two(data.as_raw_fd(), quiet.as_raw_fd()));
    }
}
