//! The error type of the cancellable syscall wrappers.

use crate::error::Cancelled;
use std::fmt;
use std::io;

/// The result of a cancellable syscall that did not succeed: either it was
/// cancelled before it took effect, or the kernel returned an error.
///
/// A cancellation is never `EINTR`: std retries `ErrorKind::Interrupted`,
/// which would turn a cancel into a retry. Converted into an `io::Error`, a
/// cancellation has kind `Other` and is recognised by
/// [`is_cancelled`](crate::is_cancelled).
///
/// ```
/// use hangsafe::cancel::Error;
/// let e = Error::Cancelled;
/// assert!(e.is_cancelled());
/// let io: std::io::Error = e.into();
/// assert!(hangsafe::is_cancelled(&io));
/// assert_eq!(std::io::Error::from(Error::Os(libc::ENOENT)).kind(), std::io::ErrorKind::NotFound);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Error {
    /// The thread's job or scope was cancelled, and the syscall did not
    /// take effect.
    Cancelled,
    /// The kernel returned this `errno`.
    Os(i32),
}

impl Error {
    /// Whether this is a cancellation.
    pub fn is_cancelled(&self) -> bool {
        matches!(self, Error::Cancelled)
    }

    /// The `errno`, if the kernel returned an error.
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            Error::Os(e) => Some(*e),
            Error::Cancelled => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Cancelled => fmt::Display::fmt(&Cancelled, f),
            Error::Os(e) => fmt::Display::fmt(&io::Error::from_raw_os_error(*e), f),
        }
    }
}

impl std::error::Error for Error {}

impl From<Cancelled> for Error {
    fn from(_: Cancelled) -> Error {
        Error::Cancelled
    }
}

impl From<Error> for io::Error {
    fn from(e: Error) -> io::Error {
        match e {
            Error::Cancelled => Cancelled.into(),
            Error::Os(errno) => io::Error::from_raw_os_error(errno),
        }
    }
}

/// The result type of the cancellable wrappers.
pub type Result<T> = std::result::Result<T, Error>;
