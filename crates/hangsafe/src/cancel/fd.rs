//! `Read`/`Write` adapters: std-style code becomes cancellable by swapping
//! one type.

use std::io;
use std::os::fd::{AsFd, BorrowedFd};

/// Wraps anything with a file descriptor so that `Read` and `Write` go
/// through the cancellable syscalls.
///
/// A cancellation surfaces as an `io::Error` for which
/// [`is_cancelled`](crate::is_cancelled) is true and whose kind is not
/// `Interrupted`, so `read_exact`, `read_to_end`, `write_all`, `io::copy`
/// and friends stop instead of retrying.
///
/// ```
/// use std::io::{Read, Write};
/// use hangsafe::cancel::Cancellable;
///
/// let (r, w) = std::io::pipe().unwrap();
/// Cancellable(&w).write_all(b"ping").unwrap();
/// let mut buf = [0u8; 4];
/// Cancellable(&r).read_exact(&mut buf).unwrap();
/// assert_eq!(&buf, b"ping");
/// ```
#[derive(Debug)]
pub struct Cancellable<F>(pub F);

impl<F: AsFd> AsFd for Cancellable<F> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

impl<F: AsFd> io::Read for Cancellable<F> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        Ok(super::read(&self.0, buf)?)
    }

    fn read_vectored(&mut self, bufs: &mut [io::IoSliceMut<'_>]) -> io::Result<usize> {
        Ok(super::readv(&self.0, bufs)?)
    }
}

impl<F: AsFd> io::Write for Cancellable<F> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Ok(super::write(&self.0, buf)?)
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        Ok(super::writev(&self.0, bufs)?)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
