//! What the work sees of its runner.

use super::cancel_word::{CancelWord, Gen};
use crate::error::Cancelled;
use std::time::Instant;

/// The work's view of its runner, passed to the closure given to
/// [`spawn`](crate::runner::spawn).
///
/// Cancellation is cooperative at this level: the work polls
/// [`is_cancelled`](Self::is_cancelled) or calls
/// [`checkpoint`](Self::checkpoint) at convenient points and returns early.
///
/// ```
/// use hangsafe::runner::{Builder, RunError};
/// use std::time::Duration;
///
/// let r = Builder::new()
///     .timeout(Duration::from_millis(20))
///     .spawn(|ctx| -> Result<u64, hangsafe::Cancelled> {
///         let mut n = 0u64;
///         loop {
///             ctx.checkpoint()?; // returns Err(Cancelled) once the deadline passed
///             n += 1;
///             std::thread::sleep(Duration::from_millis(1));
///         }
///     })
///     .unwrap();
/// assert_eq!(r.wait(), Err(RunError::TimedOut));
/// ```
#[derive(Debug)]
pub struct Ctx<'a> {
    word: &'a CancelWord,
    gen: Gen,
    deadline: Option<Instant>,
}

impl<'a> Ctx<'a> {
    pub(crate) fn new(word: &'a CancelWord, gen: Gen, deadline: Option<Instant>) -> Self {
        Ctx {
            word,
            gen,
            deadline,
        }
    }

    /// Whether this runner has been cancelled (explicitly, by its deadline,
    /// or because its handle was dropped). One atomic load of the thread's
    /// cancel word; a cancel meant for an earlier job on the same pooled
    /// thread never shows here.
    #[inline]
    pub fn is_cancelled(&self) -> bool {
        self.word.is_cancelled(self.gen)
    }

    /// Returns `Err(Cancelled)` if this runner has been cancelled, so the
    /// work can bail out with `?`.
    #[inline]
    pub fn checkpoint(&self) -> Result<(), Cancelled> {
        if self.is_cancelled() {
            Err(Cancelled)
        } else {
            Ok(())
        }
    }

    /// The runner's deadline, if it has one.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }
}
