//! What the work sees of its runner.

use crate::cancel::word::{CancelWord, Gen};
use crate::error::Cancelled;
#[cfg(not(hangsafe_loom))]
use crate::examine::{Pod, Progress, SeqCell, Stamp};
#[cfg(not(hangsafe_loom))]
use std::cell::Cell;
use std::marker::PhantomData;
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
///
/// The work also publishes its state here for others to
/// [examine](crate::examine): [`publish`](Self::publish),
/// [`enter_phase`](Self::enter_phase), [`set_progress`](Self::set_progress).
///
/// # Only the worker's thread
///
/// `Ctx` is neither `Sync` nor `Send`: the work gets a `&Ctx` that cannot
/// be handed to another thread. This is what makes the worker the single
/// writer of the runner's examine state (the seqlock's premise), and keeps
/// [`is_cancelled`](Self::is_cancelled) about the worker's own thread.
/// Other threads that take part in the work use [`token`](Self::token).
///
/// ```compile_fail,E0277
/// // Does not compile: `&Ctx` cannot be sent to another thread.
/// let r = hangsafe::runner::spawn(|ctx| {
///     std::thread::scope(|s| {
///         s.spawn(|| ctx.publish(&1u64));
///     });
/// });
/// ```
///
/// Both bounds are pinned (H1 in `docs/races.md`):
///
/// ```compile_fail,E0277
/// fn assert_sync<T: Sync>() {}
/// assert_sync::<hangsafe::runner::Ctx<'static>>();
/// ```
///
/// ```compile_fail,E0277
/// fn assert_send<T: Send>() {}
/// assert_send::<hangsafe::runner::Ctx<'static>>();
/// ```
///
/// ```
/// // The same on the worker's own thread is fine.
/// let r = hangsafe::runner::spawn(|ctx| {
///     std::thread::scope(|s| {
///         s.spawn(|| 1 + 1);
///     });
///     ctx.publish(&1u64);
/// });
/// r.unwrap().wait().unwrap();
/// ```
pub struct Ctx<'a> {
    word: &'a CancelWord,
    gen: Gen,
    deadline: Option<Instant>,
    // `dyn TokenSource` is not `Sync`, so neither is `Ctx`.
    #[cfg(not(hangsafe_loom))]
    source: &'a dyn TokenSource,
    /// The runner's examine state; this `Ctx` is its only writer.
    #[cfg(not(hangsafe_loom))]
    cell: &'a SeqCell,
    /// The writer's record of the cell's sequence word (see
    /// `SeqCell::write`): 0 until the first publish.
    #[cfg(not(hangsafe_loom))]
    seq: Cell<u64>,
    /// Keeps `Ctx` `!Sync` (and `!Send`) on its own, whatever the fields
    /// above become: the examine seqlock relies on a single writer.
    _single_thread: PhantomData<*const ()>,
}

/// Makes the runner's [`CancelToken`](crate::cancel::CancelToken) on demand.
#[cfg(not(hangsafe_loom))]
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
    #[cfg(not(hangsafe_loom))]
    pub(crate) fn new(
        word: &'a CancelWord,
        gen: Gen,
        deadline: Option<Instant>,
        source: &'a dyn TokenSource,
        cell: &'a SeqCell,
    ) -> Self {
        Ctx {
            word,
            gen,
            deadline,
            source,
            cell,
            seq: Cell::new(0),
            _single_thread: PhantomData,
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
    #[cfg(not(hangsafe_loom))]
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

    /// Publishes `state` for [examination](crate::examine): from now on,
    /// [`Runner::examine`](crate::runner::Runner::examine) and any
    /// [`Examiner`](crate::examine::Examiner) of this runner see it, whole,
    /// until the next publish.
    ///
    /// Never blocks and never waits for readers: a few stores and a fence
    /// (a sequence-lock write). Any [`Pod`] type up to 64 bytes and
    /// 8-byte alignment (checked at compile time); a reader asking for
    /// another type than the last one published gets
    /// [`WrongType`](crate::examine::Error::WrongType).
    ///
    /// ```
    /// use hangsafe::examine;
    ///
    /// let (tx, rx) = std::sync::mpsc::channel::<()>();
    /// let r = hangsafe::runner::spawn(move |ctx| {
    ///     for sector in 0..1000u64 {
    ///         ctx.publish(&[sector, 1000]);
    ///     }
    ///     rx.recv().ok();
    /// })
    /// .unwrap();
    /// let state = loop {
    ///     match r.examine(|&[sector, of]: &[u64; 2]| (sector, of)) {
    ///         Ok(s) if s.0 == 999 => break s,
    ///         Ok(_) | Err(examine::Error::Unpublished | examine::Error::Again) => std::thread::yield_now(),
    ///         Err(e) => panic!("{e}"),
    ///     }
    /// };
    /// assert_eq!(state, (999, 1000));
    /// tx.send(()).unwrap();
    /// ```
    #[cfg(not(hangsafe_loom))]
    #[inline]
    pub fn publish<S: Pod>(&self, state: &S) {
        // The single-writer premise of the seqlock holds: `Ctx` is `!Sync`,
        // so this runs on the worker's thread, which is also the only one
        // that sets the end flag (after the work has returned).
        let seq = crate::examine::publish(self.cell, self.seq.get(), state);
        self.seq.set(seq);
    }

    /// The writer's record of the examine sequence, for `run_job` to mark
    /// the end of the work after its last publish.
    #[cfg(not(hangsafe_loom))]
    pub(crate) fn examine_seq(&self) -> u64 {
        self.seq.get()
    }

    /// Publishes a [`Progress`] entering `phase` now: the phase name (up to
    /// [`PHASE_LEN`](crate::examine::PHASE_LEN) bytes), its entry time,
    /// and both counters **reset to 0** (counters describe one phase).
    ///
    /// ```
    /// use hangsafe::examine::Progress;
    ///
    /// let r = hangsafe::runner::spawn(|ctx| {
    ///     ctx.enter_phase("SG_IO");
    ///     // ... the call that may hang ...
    /// })
    /// .unwrap();
    /// // A reader would call r.examine(|p: &Progress| p.time_in_phase()).
    /// r.wait().unwrap();
    /// ```
    #[cfg(not(hangsafe_loom))]
    pub fn enter_phase(&self, phase: &str) {
        self.publish(&Progress::new(phase));
    }

    /// Publishes the current phase again with its counters set to `done` of
    /// `total` (0: unknown) and its update time set to now. The phase and
    /// its entry time are kept. If the last state published was not a
    /// [`Progress`] (or nothing was), this enters an unnamed phase now.
    #[cfg(not(hangsafe_loom))]
    pub fn set_progress(&self, done: u32, total: u32) {
        let now = Stamp::now();
        let current = crate::examine::own_progress(self.cell, self.seq.get())
            .unwrap_or_else(|| Progress::at("", now));
        self.publish(&current.with_counts(done, total).updated(now));
    }
}
