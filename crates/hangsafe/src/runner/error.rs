//! Errors of the runner API.

use std::fmt;
use std::io;

/// Why [`spawn`](crate::runner::spawn) refused to start a runner.
///
/// Nothing is lost when spawning fails: the work closure is dropped on the
/// caller's thread before the error is returned, and no thread, timer entry
/// or key reservation is left behind.
#[derive(Debug)]
#[non_exhaustive]
pub enum SpawnError {
    /// A new pool thread was needed and the OS refused to create it
    /// (typically `EAGAIN`: the thread or memory limit).
    ThreadCreate(io::Error),
    /// The pool already has `max_threads` threads, none idle.
    PoolFull {
        /// The configured limit.
        max_threads: usize,
    },
    /// The pool has `max_abandoned` abandoned threads: hung work that did
    /// not return after its cancel. Spawning resumes when one comes back.
    TooManyAbandoned {
        /// The configured cap.
        max_abandoned: usize,
    },
    /// A runner spawned earlier with the same key has not finished yet
    /// (it is still running, or hung after a cancel).
    KeyBusy {
        /// The key.
        key: String,
    },
}

impl fmt::Display for SpawnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpawnError::ThreadCreate(e) => write!(f, "cannot create a runner thread: {e}"),
            SpawnError::PoolFull { max_threads } => {
                write!(f, "runner pool is full ({max_threads} threads, none idle)")
            }
            SpawnError::TooManyAbandoned { max_abandoned } => write!(
                f,
                "too many abandoned runner threads ({max_abandoned}): hung work has not returned"
            ),
            SpawnError::KeyBusy { key } => {
                write!(f, "the previous runner for key {key:?} has not finished")
            }
        }
    }
}

impl std::error::Error for SpawnError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SpawnError::ThreadCreate(e) => Some(e),
            _ => None,
        }
    }
}

impl From<SpawnError> for io::Error {
    fn from(e: SpawnError) -> io::Error {
        let kind = match &e {
            SpawnError::ThreadCreate(inner) => inner.kind(),
            SpawnError::KeyBusy { .. } => io::ErrorKind::ResourceBusy,
            _ => io::ErrorKind::WouldBlock,
        };
        io::Error::new(kind, e)
    }
}

/// Why a runner produced no value.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RunError {
    /// [`Runner::cancel`](crate::runner::Runner::cancel) took effect before
    /// the work returned.
    Cancelled,
    /// The deadline passed before the work returned.
    TimedOut,
    /// The work panicked; the panic message is kept.
    Panicked(String),
    /// [`Runner::wait`](crate::runner::Runner::wait) was called from
    /// inside the runner's own work: the work cannot finish while it waits
    /// for itself, so the wait fails at once instead of blocking for ever.
    WaitOnSelf,
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunError::Cancelled => f.write_str("runner was cancelled"),
            RunError::TimedOut => f.write_str("runner timed out"),
            RunError::Panicked(m) => write!(f, "runner work panicked: {m}"),
            RunError::WaitOnSelf => {
                f.write_str("a runner's work waited for its own runner (it would never return)")
            }
        }
    }
}

impl std::error::Error for RunError {}

impl From<RunError> for io::Error {
    fn from(e: RunError) -> io::Error {
        let kind = match e {
            RunError::TimedOut => io::ErrorKind::TimedOut,
            _ => io::ErrorKind::Other,
        };
        io::Error::new(kind, e)
    }
}
