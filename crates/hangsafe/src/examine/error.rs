//! Why an examination gave no snapshot.

use std::fmt;

/// Why [`prepare_examine`](crate::runner::Runner::prepare_examine),
/// [`finish_examine`](crate::runner::Runner::finish_examine) or
/// [`examine`](crate::runner::Runner::examine) returned no state.
///
/// The names follow utrace's `utrace_prepare_examine` /
/// `utrace_finish_examine`: [`Gone`](Self::Gone) is its `ESRCH`,
/// [`Again`](Self::Again) its `EAGAIN`.
///
/// | error | meaning | what to do |
/// |---|---|---|
/// | `Gone` | the work has returned or panicked, or its runner was released (handle dropped) | stop examining: it will never publish again |
/// | `Again` | the worker published between `prepare` and `finish`, or kept publishing so fast that no consistent snapshot was taken within the reader's bound | retry (or call `examine`, which retries a bounded number of times) |
/// | `Unpublished` | the work has not published anything yet | retry later; a probe that has just started shows this |
/// | `WrongType` | the last published state is of another type than the one asked for | ask for the type the work publishes |
/// | `ForeignTicket` | the ticket given to `finish_examine` was prepared on another runner | a bug in the caller |
///
/// `Gone` is final: once a runner has answered `Gone`, it answers `Gone`
/// to every later call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Error {
    /// The work has ended (returned or panicked), or the runner was
    /// released; nothing will be published again (utrace's `ESRCH`).
    Gone,
    /// The worker published in between (utrace's `EAGAIN`); retry.
    Again,
    /// The work has not published anything yet.
    Unpublished,
    /// The published state is not of the type asked for.
    WrongType,
    /// The ticket belongs to another runner.
    ForeignTicket,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Error::Gone => "the runner's work has ended or the runner was released",
            Error::Again => "the runner published new state meanwhile; try again",
            Error::Unpublished => "the runner has not published any state yet",
            Error::WrongType => "the runner's published state is of another type",
            Error::ForeignTicket => "the examine ticket was prepared on another runner",
        })
    }
}

impl std::error::Error for Error {}
