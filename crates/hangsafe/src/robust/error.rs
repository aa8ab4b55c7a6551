//! Errors and lock outcomes of the robust mutex.

use std::fmt;
use std::io;

/// How a successful lock found the mutex.
///
/// ```
/// use hangsafe::robust::{Acquired, RawRobustMutex};
///
/// let m = RawRobustMutex::new().unwrap();
/// assert_eq!(m.lock().unwrap(), Acquired::Consistent);
/// m.unlock().unwrap();
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[must_use = "an OwnerDead lock must be repaired and marked consistent"]
pub enum Acquired {
    /// The lock is held and the previous owner released it normally.
    Consistent,
    /// The lock is held, but a previous owner died holding it (or died while
    /// repairing it): the protected data may be half-updated. Repair it and
    /// call `consistent`, or unlock without doing so to make the mutex
    /// permanently not-recoverable. `EOWNERDEAD` in C.
    OwnerDead,
}

/// Why a robust-mutex operation failed. Nothing was acquired when one of
/// these is returned.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// `try_lock`: another live thread holds the lock. `EBUSY` in C.
    WouldBlock,
    /// The deadline passed before the lock could be taken. `ETIMEDOUT`.
    TimedOut,
    /// An owner unlocked the mutex while it was inconsistent; it can never
    /// be locked again. `ENOTRECOVERABLE`.
    NotRecoverable,
    /// `unlock` or `consistent` by a thread that does not hold the lock.
    /// `EPERM`.
    NotOwner,
    /// The calling thread already holds the lock (robust mutexes are
    /// error-checking, never recursive). `EDEADLK`.
    Deadlock,
    /// `consistent` on a mutex that is not in the owner-dead state.
    /// `EINVAL`.
    NotInconsistent,
    /// The memory does not hold an initialised robust mutex. `EINVAL`.
    Uninitialized,
    /// The mutex was initialised in another PID namespace. Owner TIDs are
    /// only meaningful inside one namespace, so sharing it across namespaces
    /// would make dead owners undetectable and could grant the lock twice.
    /// `EXDEV`.
    ForeignNamespace,
    /// The kernel refused an operation in an unexpected way, or the calling
    /// thread's identity could not be established (no `/proc`).
    Os(io::Error),
}

impl Error {
    /// The error number a pthread-style C API returns for this error.
    ///
    /// ```
    /// assert_eq!(hangsafe::robust::Error::TimedOut.errno(), libc::ETIMEDOUT);
    /// ```
    pub fn errno(&self) -> i32 {
        match self {
            Error::WouldBlock => libc::EBUSY,
            Error::TimedOut => libc::ETIMEDOUT,
            Error::NotRecoverable => libc::ENOTRECOVERABLE,
            Error::NotOwner => libc::EPERM,
            Error::Deadlock => libc::EDEADLK,
            Error::NotInconsistent | Error::Uninitialized => libc::EINVAL,
            Error::ForeignNamespace => libc::EXDEV,
            Error::Os(e) => e.raw_os_error().unwrap_or(libc::EIO),
        }
    }

    pub(crate) fn from_errno(errno: i32) -> Error {
        Error::Os(io::Error::from_raw_os_error(errno))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::WouldBlock => f.write_str("robust mutex is held by another thread"),
            Error::TimedOut => f.write_str("timed out waiting for robust mutex"),
            Error::NotRecoverable => f.write_str(
                "robust mutex is not recoverable: an owner unlocked it while it was inconsistent",
            ),
            Error::NotOwner => f.write_str("robust mutex is not held by the calling thread"),
            Error::Deadlock => f.write_str("robust mutex is already held by the calling thread"),
            Error::NotInconsistent => f.write_str("robust mutex is not in the owner-dead state"),
            Error::Uninitialized => f.write_str("memory does not hold an initialised robust mutex"),
            Error::ForeignNamespace => f.write_str("robust mutex belongs to another PID namespace"),
            Error::Os(e) => write!(f, "robust mutex: {e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Os(e) => Some(e),
            _ => None,
        }
    }
}

impl From<Error> for io::Error {
    fn from(e: Error) -> io::Error {
        match e {
            Error::Os(e) => e,
            other => io::Error::from_raw_os_error(other.errno()),
        }
    }
}
