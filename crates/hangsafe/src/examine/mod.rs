//! Examine: consistent snapshots of a running worker's published state.
//!
//! The work publishes a small plain-data state (a phase, counters, a
//! timestamp) through its [`Ctx`](crate::runner::Ctx); any thread reads it
//! back, whole and consistent, while the work runs. This is utrace's
//! `utrace_prepare_examine` / `utrace_finish_examine` pair,
//! minus what made it iffy: no task reference is lent out between the two
//! calls, and a stale handle answers [`Gone`](Error::Gone) instead of
//! touching freed memory.
//!
//! * **Publishing never blocks** the worker: [`Ctx::publish`] is a
//!   sequence-lock write (two stores to the sequence word, one per data
//!   word, one fence), whatever readers do.
//! * **Readers never see a torn state**: a snapshot is the words of exactly
//!   one publish, validated before it becomes a typed value (the sound
//!   seqlock of Boehm, "Can seqlocks get along with programming language
//!   memory models?"; all data words are atomics). Reading is bounded: a
//!   worker publishing continuously makes a reader return
//!   [`Again`](Error::Again), never loop forever.
//! * **Prepare, look, finish**: [`Runner::prepare_examine`] returns a
//!   [`Ticket`] (the snapshot and the publish it came from);
//!   [`Runner::finish_examine`] answers `Again` if the worker published since,
//!   so whatever the caller concluded in between is known to describe the
//!   current state. [`Runner::examine`] does both around a closure and
//!   retries up to [`EXAMINE_ATTEMPTS`] times.
//! * **Gone, not garbage**: once the work has returned (or panicked), or
//!   the runner was released (its handle dropped), every examination
//!   answers `Gone`. A cancelled runner whose work is still running (a hung
//!   probe) can still be examined: that is when its state matters most.
//! * **Typed**: the state's type travels with it as a tag; asking for
//!   another type is [`WrongType`](Error::WrongType), never a
//!   reinterpretation.
//!
//! An [`Examiner`] is a cloneable, `Send + Sync` handle that examines a
//! runner from anywhere and may outlive it (it holds a weak reference). The
//! published type must be [`Pod`] and fit in [`CAPACITY`] bytes; the
//! standard state is [`Progress`].
//!
//! Until the work publishes, examination answers
//! [`Unpublished`](Error::Unpublished) (not a zeroed state). Each
//! runner has its own state slot, so a pooled thread's next job never
//! shows anything of the previous one.
//!
//! # Example
//!
//! ```
//! use hangsafe::examine::{Error, Progress};
//! use hangsafe::runner::spawn;
//! use std::sync::mpsc;
//!
//! let (go, wait) = mpsc::channel::<()>();
//! let probe = spawn(move |ctx| {
//!     ctx.enter_phase("open");
//!     // ...
//!     ctx.enter_phase("SG_IO");
//!     ctx.set_progress(1, 3);
//!     wait.recv().ok(); // the probe "hangs" here until we let it go
//! })
//! .unwrap();
//!
//! // Another thread (a watch view, say) sees the phase and time in it.
//! let watch = probe.examiner();
//! let seen = loop {
//!     match watch.examine(|p: &Progress| (p.phase().to_owned(), p.done(), p.time_in_phase())) {
//!         Ok((phase, 1, since)) if phase == "SG_IO" => break since,
//!         Ok(_) | Err(Error::Unpublished | Error::Again) => std::thread::yield_now(),
//!         Err(e) => panic!("{e}"),
//!     }
//! };
//! println!("in SG_IO for {seen:?}");
//!
//! go.send(()).unwrap();
//! probe.wait().unwrap();
//! // The work has ended and the handle is gone: the examiner answers Gone.
//! assert_eq!(watch.examine(|p: &Progress| p.done()), Err(Error::Gone));
//! ```
//!
//! With prepare/finish, to act on a state only if it is still current:
//!
//! ```
//! use hangsafe::examine::Error;
//! use hangsafe::runner::spawn;
//!
//! let r = spawn(|ctx| {
//!     ctx.publish(&[7u32, 7]);
//!     while !ctx.is_cancelled() {
//!         std::thread::yield_now();
//!     }
//! })
//! .unwrap();
//! let ticket = loop {
//!     match r.prepare_examine::<[u32; 2]>() {
//!         Ok(t) => break t,
//!         Err(Error::Unpublished) => std::thread::yield_now(),
//!         Err(e) => panic!("{e}"),
//!     }
//! };
//! assert_eq!(*ticket, [7, 7]);
//! // ... decide something from the snapshot ...
//! assert_eq!(r.finish_examine(&ticket), Ok(())); // nothing published since
//! ```
//!
//! [`Ctx::publish`]: crate::runner::Ctx::publish
//! [`Runner::prepare_examine`]: crate::runner::Runner::prepare_examine
//! [`Runner::finish_examine`]: crate::runner::Runner::finish_examine
//! [`Runner::examine`]: crate::runner::Runner::examine

mod error;
pub(crate) mod seqlock;

#[cfg(not(hangsafe_loom))]
mod pod;
#[cfg(not(hangsafe_loom))]
mod progress;

#[cfg(all(test, hangsafe_loom))]
mod loom_tests;
#[cfg(all(test, not(hangsafe_loom)))]
mod tests;

pub use error::Error;

/// The former name of [`Error`].
#[deprecated(since = "0.2.0", note = "renamed to `hangsafe::examine::Error`")]
pub type ExamineError = Error;
#[cfg(not(hangsafe_loom))]
pub use pod::{Pod, CAPACITY, MAX_ALIGN};
#[cfg(not(hangsafe_loom))]
pub use progress::{Progress, Stamp, PHASE_LEN};
pub(crate) use seqlock::SeqCell;

#[cfg(not(hangsafe_loom))]
pub(crate) use typed::{examine, finish, own_progress, prepare, publish, Examinable};
#[cfg(not(hangsafe_loom))]
pub use typed::{Examiner, Ticket, EXAMINE_ATTEMPTS};

#[cfg(not(hangsafe_loom))]
mod typed {
    use super::pod::{self, Pod};
    use super::seqlock::{SeqCell, WORDS};
    use super::{Error, Progress};
    use crate::sync::Weak;
    use std::fmt;
    use std::time::Instant;

    /// How many times [`examine`](crate::runner::Runner::examine) tries
    /// prepare → closure → finish before it gives up with
    /// [`Again`](Error::Again). Each try's snapshot is itself bounded
    /// (64 attempts with short pauses: about 15 µs on an x86_64 VM if none
    /// succeeds), so `examine` returns within about 0.15 ms plus
    /// the closure's own time, however the worker publishes, even if it is
    /// preempted in the middle of a publish.
    pub const EXAMINE_ATTEMPTS: u32 = 8;

    /// A snapshot of a runner's published state, and the publish it came
    /// from: what [`prepare_examine`](crate::runner::Runner::prepare_examine)
    /// returns and [`finish_examine`](crate::runner::Runner::finish_examine)
    /// checks.
    ///
    /// The state is a copy: it stays valid whatever the worker does next.
    /// The ticket dereferences to it.
    #[derive(Clone, Copy)]
    pub struct Ticket<S> {
        state: S,
        seq: u64,
        cell: usize,
    }

    impl<S> Ticket<S> {
        /// The snapshot.
        pub fn state(&self) -> &S {
            &self.state
        }

        /// The snapshot, by value.
        pub fn into_state(self) -> S {
            self.state
        }

        /// How many times the worker had published when the snapshot was
        /// taken (1 for its first publish). Two tickets of the same runner
        /// with the same count hold the same state.
        pub fn publishes(&self) -> u64 {
            self.seq / 2
        }
    }

    impl Ticket<Progress> {
        /// When the worker published this state.
        pub fn published_at(&self) -> Instant {
            self.state.updated_at()
        }
    }

    impl<S> std::ops::Deref for Ticket<S> {
        type Target = S;
        fn deref(&self) -> &S {
            &self.state
        }
    }

    impl<S: fmt::Debug> fmt::Debug for Ticket<S> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("Ticket")
                .field("state", &self.state)
                .field("publishes", &self.publishes())
                .finish()
        }
    }

    fn cell_id(cell: &SeqCell) -> usize {
        cell as *const SeqCell as usize
    }

    // ---- the one implementation every handle delegates to --------------

    /// Publishes `state` into `cell`; `last` is the writer's record of the
    /// sequence (see [`SeqCell::write`]), and the new one is returned. Only
    /// the cell's single writer (the worker, through its `!Sync` `Ctx`)
    /// calls this.
    #[inline]
    pub(crate) fn publish<S: Pod>(cell: &SeqCell, last: u64, state: &S) -> u64 {
        let words = pod::to_words(state);
        cell.write(last, pod::tag_of::<S>(), &words[..pod::words_of::<S>()])
    }

    /// The writer's own last published `Progress`, if that is what it last
    /// published (`last` as for [`publish`]).
    pub(crate) fn own_progress(cell: &SeqCell, last: u64) -> Option<Progress> {
        if last == 0 {
            return None;
        }
        let mut words = [0u64; WORDS];
        let tag = cell.peek_own(&mut words[..pod::words_of::<Progress>()]);
        (tag == pod::tag_of::<Progress>()).then(|| pod::from_words(&words))
    }

    /// `ended` tells whether the runner's work is over (its state is final);
    /// it is asked only if nothing was ever published.
    pub(crate) fn prepare<S: Pod>(
        cell: &SeqCell,
        ended: impl Fn() -> bool,
    ) -> Result<Ticket<S>, Error> {
        let mut words = [0u64; WORDS];
        let raw = cell.read(&mut words[..pod::words_of::<S>()], ended)?;
        if raw.tag != pod::tag_of::<S>() {
            return Err(Error::WrongType);
        }
        Ok(Ticket {
            state: pod::from_words(&words),
            seq: raw.seq,
            cell: cell_id(cell),
        })
    }

    pub(crate) fn finish<S>(cell: &SeqCell, ticket: &Ticket<S>) -> Result<(), Error> {
        if ticket.cell != cell_id(cell) {
            return Err(Error::ForeignTicket);
        }
        cell.validate(ticket.seq)
    }

    pub(crate) fn examine<S: Pod, R>(
        cell: &SeqCell,
        ended: impl Fn() -> bool,
        mut f: impl FnMut(&S) -> R,
    ) -> Result<R, Error> {
        for _ in 0..EXAMINE_ATTEMPTS {
            let ticket = match prepare::<S>(cell, &ended) {
                Ok(t) => t,
                Err(Error::Again) => continue,
                Err(e) => return Err(e),
            };
            let r = f(&ticket.state);
            match finish(cell, &ticket) {
                Ok(()) => return Ok(r),
                Err(Error::Again) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(Error::Again)
    }

    // ---- the type-erased handle ----------------------------------------

    /// What an [`Examiner`] reaches through its weak reference: a runner's
    /// context, whatever its result type.
    pub(crate) trait Examinable: Send + Sync {
        fn examine_cell(&self) -> &SeqCell;
        /// Whether the runner's work is over (its state is final).
        fn work_ended(&self) -> bool;
    }

    /// Examines one runner from any thread, for as long as anyone wants:
    /// cloneable, `Send + Sync`, not generic over the runner's result type,
    /// and it may outlive the runner. Get one from
    /// [`Runner::examiner`](crate::runner::Runner::examiner).
    ///
    /// It holds a weak reference to the runner's context: it never keeps
    /// the context alive, and once the context is freed every call answers
    /// [`Gone`](Error::Gone) (so does every call after the work
    /// ended or the runner was released, while the context still exists).
    /// During a call it holds a strong reference, so if the runner's last
    /// other reference goes away meanwhile, the context (and a result
    /// nobody took) is freed on the examining thread when the call returns.
    ///
    /// ```
    /// use hangsafe::examine::{Error, Examiner};
    ///
    /// let r = hangsafe::runner::spawn(|ctx| ctx.publish(&1u64)).unwrap();
    /// let ex: Examiner = r.examiner();
    /// let ex2 = ex.clone();
    /// r.wait().unwrap();
    /// std::thread::spawn(move || assert_eq!(ex2.prepare_examine::<u64>().err(), Some(Error::Gone)))
    ///     .join()
    ///     .unwrap();
    /// assert_eq!(ex.examine(|v: &u64| *v), Err(Error::Gone));
    /// ```
    #[derive(Clone)]
    pub struct Examiner {
        src: Weak<dyn Examinable>,
    }

    impl Examiner {
        pub(crate) fn new(src: Weak<dyn Examinable>) -> Examiner {
            Examiner { src }
        }

        fn with<R>(&self, f: impl FnOnce(&dyn Examinable) -> Result<R, Error>) -> Result<R, Error> {
            let ctx = self.src.upgrade().ok_or(Error::Gone)?;
            f(&*ctx)
        }

        /// Takes a snapshot of the runner's published state; see
        /// [`Runner::prepare_examine`](crate::runner::Runner::prepare_examine).
        pub fn prepare_examine<S: Pod>(&self) -> Result<Ticket<S>, Error> {
            self.with(|r| prepare::<S>(r.examine_cell(), || r.work_ended()))
        }

        /// Checks that the worker has not published since `ticket` was
        /// prepared; see
        /// [`Runner::finish_examine`](crate::runner::Runner::finish_examine).
        pub fn finish_examine<S>(&self, ticket: &Ticket<S>) -> Result<(), Error> {
            self.with(|r| finish(r.examine_cell(), ticket))
        }

        /// Runs `f` on a consistent, current snapshot; see
        /// [`Runner::examine`](crate::runner::Runner::examine).
        pub fn examine<S: Pod, R>(&self, f: impl FnMut(&S) -> R) -> Result<R, Error> {
            self.with(|r| examine(r.examine_cell(), || r.work_ended(), f))
        }
    }

    impl fmt::Debug for Examiner {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("Examiner")
                .field("context_alive", &(self.src.strong_count() > 0))
                .finish()
        }
    }
}
