//! What the work sees of its runner.

use crate::cancel::word::{CancelWord, Gen};
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
pub struct Ctx<'a> {
    word: &'a CancelWord,
    gen: Gen,
    deadline: Option<Instant>,
    #[cfg(not(loom))]
    source: &'a dyn TokenSource,
}

/// Makes the runner's [`CancelToken`](crate::cancel::CancelToken) on demand.
#[cfg(not(loom))]
pub(crate) trait TokenSource {
    fn token(&self) -> crate::cancel::CancelToken;
}

impl std::fmt::Debug for Ctx<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx")
            .field("cancelled", &self.is_cancelled())
            .field("deadline", &self.deadline)
            .finish()
    }
}

impl<'a> Ctx<'a> {
    #[cfg(not(loom))]
    pub(crate) fn new(
        word: &'a CancelWord,
        gen: Gen,
        deadline: Option<Instant>,
        source: &'a dyn TokenSource,
    ) -> Self {
        Ctx {
            word,
            gen,
            deadline,
            source,
        }
    }

    /// The runner's cancellation token. Cancelling it cancels the runner
    /// (as [`Runner::cancel`](crate::runner::Runner::cancel) does), and
    /// other threads can [`enter`](crate::cancel::CancelToken::enter) its
    /// scope so that their cancellable syscalls are interrupted with the
    /// runner's.
    ///
    /// ```
    /// use hangsafe::runner::spawn;
    /// let r = spawn(|ctx| {
    ///     let token = ctx.token();
    ///     let helper = std::thread::spawn(move || {
    ///         let _scope = token.enter().unwrap();
    ///         hangsafe::cancel::sleep(std::time::Duration::from_secs(3600))
    ///     });
    ///     ctx.token().cancel(); // cancels the runner, and so the helper
    ///     helper.join().unwrap()
    /// })
    /// .unwrap();
    /// assert!(r.wait().is_err());
    /// ```
    #[cfg(not(loom))]
    pub fn token(&self) -> crate::cancel::CancelToken {
        self.source.token()
    }

    /// Whether this runner has been cancelled (explicitly, by its deadline,
    /// or because its handle was dropped). One atomic load of the thread's
    /// cancel word; a cancel meant for an earlier job on the same pooled
    /// thread never shows here.
    ///
    /// Blocking calls made through [`hangsafe::cancel`](crate::cancel) do
    /// not need this: they return `Cancelled` by themselves.
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
