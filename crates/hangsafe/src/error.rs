//! Crate-wide error types.

use std::fmt;
use std::io;

/// The work was cancelled: returned by
/// [`Ctx::checkpoint`](crate::runner::Ctx::checkpoint).
///
/// Cancellation is reported as an error value and never as an unwind. Its
/// `io::Error` form has kind [`io::ErrorKind::Other`], never
/// `Interrupted`: std's I/O helpers retry `Interrupted`, which would turn a
/// cancel into a silent retry. Recognise it with [`is_cancelled`].
///
/// ```
/// use hangsafe::{is_cancelled, Cancelled};
/// let e: std::io::Error = Cancelled.into();
/// assert!(is_cancelled(&e));
/// assert_ne!(e.kind(), std::io::ErrorKind::Interrupted);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Cancelled;

impl fmt::Display for Cancelled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("operation cancelled")
    }
}

impl std::error::Error for Cancelled {}

impl From<Cancelled> for io::Error {
    fn from(c: Cancelled) -> io::Error {
        io::Error::other(c)
    }
}

/// Whether an `io::Error` stands for a hangsafe cancellation.
pub fn is_cancelled(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<Cancelled>())
}
