//! The context one runner's handle and its work share.
//!
//! `Shared<T>` is created by `spawn` *with both references already taken*
//! (one in the handle, one in the job) before any thread can see the job,
//! which is the fix the multipath-tools runner review asks for: there is no window in
//! which one side exists without the other, so no start/cancel race
//! (R1 in `docs/races.md`).
//!
//! Who may touch what:
//!
//! * `state` — anyone, through [`StateCell`]'s CAS transitions.
//! * `result` — the worker alone while the state is `Running`/`Cancelled`;
//!   after the worker's final CAS (`Done`/`Dead`), the handle alone. The
//!   worker never touches it again after that CAS.
//! * `slots` — under its mutex: the worker's binding (which thread, which
//!   generation) and the handle's waiter. The mutex is held only for a few
//!   stores, never across user code or a blocking call.
//! * `examine` — the published state ([`SeqCell`]): its sequence word and
//!   data are written by the worker alone (through its `!Sync` `Ctx`, and
//!   the end flag in `run_job` if the work published), its release flag by
//!   the handle's `Drop`; anyone reads.

use super::error::RunError;
use super::metrics::Counters;
use super::state::{CancelReason, Finish, State, StateCell, Word};
use crate::cancel::word::{Binding, CancelWord, Gen, Request};
use crate::examine::SeqCell;
use crate::sync::{lock, thread, Arc, CachePadded, Mutex, UnsafeCell};
use std::time::{Duration, Instant};

/// Who to wake when the outcome is decided.
pub(crate) enum Waiter {
    Thread(thread::Thread),
    Task(std::task::Waker),
    /// A completion notice (a [`RunnerSet`](crate::nexus::RunnerSet)'s).
    /// Runs once, outside every runner lock, on whichever thread decided
    /// the outcome; it must not block.
    #[cfg_attr(hangsafe_loom, allow(dead_code))]
    Notice(Box<dyn FnOnce() + Send>),
}

impl Waiter {
    fn wake(self) {
        match self {
            Waiter::Thread(t) => t.unpark(),
            Waiter::Task(w) => w.wake(),
            Waiter::Notice(f) => f(),
        }
    }
}

#[derive(Default)]
struct Slots {
    /// The worker thread running the job.
    binding: Option<Binding>,
    /// Other threads that entered the runner's scope (`Ctx::token`).
    extra: Vec<Binding>,
    waiter: Option<Waiter>,
}

pub(crate) struct Shared<T> {
    /// On its own cache line: a waiting handle spins on it, and the
    /// worker's other writes (slots, result) must not bounce that line.
    state: CachePadded<StateCell>,
    result: UnsafeCell<Option<Result<T, String>>>,
    slots: Mutex<Slots>,
    counters: Arc<Counters>,
    deadline: Option<Instant>,
    grace: Duration,
    examine: SeqCell,
}

// SAFETY: `result` is accessed by one thread at a time under the protocol in
// the module docs (worker until its final CAS, then the handle), with the
// CAS's release/acquire pair ordering the hand-over. `T: Send` suffices
// because a `T` is only ever moved between threads, never shared: the
// handle's `result()` borrows it only after the worker is done with it.
unsafe impl<T: Send> Sync for Shared<T> {}
// SAFETY: all fields are Send when T is; see above for `result`.
unsafe impl<T: Send> Send for Shared<T> {}

impl<T> Shared<T> {
    pub(crate) fn new(counters: Arc<Counters>, deadline: Option<Instant>, grace: Duration) -> Self {
        Counters::inc(&counters.live_contexts);
        Shared {
            state: CachePadded(StateCell::new()),
            result: UnsafeCell::new(None),
            slots: Mutex::new(Slots::default()),
            counters,
            deadline,
            grace,
            examine: SeqCell::new(),
        }
    }

    /// The state the work publishes for examination.
    #[inline]
    pub(crate) fn examine_cell(&self) -> &SeqCell {
        &self.examine
    }

    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// How long cancelled work may run on before it counts as abandoned.
    #[cfg_attr(hangsafe_loom, allow(dead_code))]
    pub(crate) fn grace(&self) -> Duration {
        self.grace
    }

    pub(crate) fn counters(&self) -> &Counters {
        &self.counters
    }

    #[inline]
    pub(crate) fn word(&self) -> Word {
        self.state.load()
    }

    // ---- worker side ----------------------------------------------------

    /// Records which thread and generation run this job. Returns true if a
    /// cancel already happened, in which case the thread's cancel bit has
    /// been set here (R1, R5).
    ///
    /// Together with [`cancel`](Self::cancel) this is a Dekker handshake
    /// through the `slots` mutex: the worker stores the binding and then
    /// reads the state; the canceller writes the state and then reads the
    /// binding. Lock order guarantees at least one side sees the other, and
    /// the cancel word's CAS makes sure only one of them sets the bit.
    pub(crate) fn bind(&self, word: &Arc<CancelWord>, gen: Gen) -> bool {
        let cancelled = {
            let mut slots = lock(&self.slots);
            slots.binding = Some(Binding {
                word: Arc::clone(word),
                gen,
            });
            self.state.load().state() != State::Running
        };
        // The worker itself is not blocked anywhere: set the bit, no signal.
        if cancelled && word.request(gen) == Request::Set {
            word.sent();
        }
        cancelled
    }

    /// Publishes the work's result (or panic message) and makes the final
    /// transition. Called exactly once, by the worker.
    ///
    /// Returns what happened plus the value if the cancel won, so that the
    /// caller can drop it outside any lock (its destructor is user code).
    pub(crate) fn finish(&self, result: Result<T, String>) -> (Finish, Option<Result<T, String>>) {
        let ok = result.is_ok();
        // SAFETY: the state is Running or Cancelled, so the worker is the
        // only party allowed to touch `result` (module docs).
        self.result.with_mut(|p| unsafe { *p = Some(result) });
        let (fin, dropped) = match self.state.complete(ok) {
            Some(fin) => (fin, None),
            None => {
                // The cancel won (R2). The state is still Cancelled, so the
                // slot is still ours: take the value back out before the
                // final CAS hands the slot to the handle.
                // SAFETY: as above; the final CAS below has not happened.
                let v = self.result.with_mut(|p| unsafe { (*p).take() });
                (self.state.end_cancelled(!ok), v)
            }
        };
        match fin {
            Finish::Done => Counters::inc(&self.counters.done),
            Finish::Panicked => {
                Counters::inc(&self.counters.dead);
                Counters::inc(&self.counters.panicked);
            }
            Finish::AfterCancel { .. } => {
                Counters::inc(&self.counters.dead);
                if !ok {
                    Counters::inc(&self.counters.panicked);
                }
            }
        }
        self.wake();
        (fin, dropped)
    }

    /// Ends a runner whose work never ran because it was cancelled before
    /// its thread bound it (`bind` returned true).
    pub(crate) fn finish_unrun(&self) -> Finish {
        let fin = self.state.end_cancelled(false);
        Counters::inc(&self.counters.dead);
        self.wake();
        fin
    }

    fn wake(&self) {
        let waiter = {
            let mut slots = lock(&self.slots);
            slots.binding = None;
            slots.waiter.take()
        };
        if let Some(w) = waiter {
            w.wake();
        }
    }

    // ---- handle / timer side ---------------------------------------------

    /// `Running -> Cancelled(reason)`. Returns the word seen before: the
    /// cancel took effect iff its state is `Running`. On effect, the bound
    /// thread's cancel bit is set (at most once per job, R8) and the waiter
    /// is woken.
    pub(crate) fn cancel(&self, reason: CancelReason) -> Word {
        let before = self.state.cancel(reason);
        if before.state() != State::Running {
            return before;
        }
        Counters::inc(&self.counters.cancelled);
        let waiter = {
            let mut slots = lock(&self.slots);
            // Under the lock, so a binding cannot slip in unseen (R1); a
            // thread that has moved on makes its CAS fail (R5).
            if let Some(b) = &slots.binding {
                b.cancel();
            }
            for b in &slots.extra {
                b.cancel();
            }
            slots.waiter.take()
        };
        if let Some(w) = waiter {
            w.wake();
        }
        before
    }

    /// Binds another thread to this runner's cancellation (a scope of the
    /// runner's token). Returns true, having cancelled that thread's scope,
    /// if the runner is no longer running.
    #[cfg_attr(hangsafe_loom, allow(dead_code))]
    pub(crate) fn bind_extra(&self, binding: Binding) -> bool {
        let mut slots = lock(&self.slots);
        let cancelled = self.state.load().state() != State::Running;
        if cancelled {
            binding.cancel();
        }
        slots.extra.push(binding);
        cancelled
    }

    /// Unbinds a thread bound with [`bind_extra`](Self::bind_extra).
    #[cfg_attr(hangsafe_loom, allow(dead_code))]
    pub(crate) fn unbind_extra(&self, word: &CancelWord) {
        lock(&self.slots)
            .extra
            .retain(|b| !std::ptr::eq(&*b.word, word));
    }

    /// Marks a cancelled runner whose work has not returned as abandoned.
    pub(crate) fn mark_abandoned(&self) -> bool {
        self.state.mark_abandoned()
    }

    /// Registers who to wake when the outcome is decided. Returns false
    /// (registering nothing) if it is decided already.
    pub(crate) fn register(&self, waiter: Waiter) -> bool {
        let mut slots = lock(&self.slots);
        if self.state.load().state().is_decided() {
            return false;
        }
        slots.waiter = Some(waiter);
        true
    }

    /// Takes the outcome if it is decided. Only the handle calls this, and
    /// at most once after it returned `Some`.
    pub(crate) fn take(&self) -> Option<Result<T, RunError>> {
        let w = self.state.load();
        match w.state() {
            State::Running => None,
            State::Cancelled => Some(Err(cancel_error(w))),
            State::Done => {
                // SAFETY: Done is final and was reached by the worker's CAS,
                // which our acquire load synchronised with: the worker will
                // not touch the slot again, and the handle is the only
                // taker.
                let v = self.result.with_mut(|p| unsafe { (*p).take() });
                match v {
                    Some(Ok(v)) => Some(Ok(v)),
                    _ => unreachable!("Done without a value"),
                }
            }
            State::Dead if w.cancel_reason().is_some() => Some(Err(cancel_error(w))),
            State::Dead => {
                // SAFETY: as for Done.
                let v = self.result.with_mut(|p| unsafe { (*p).take() });
                let msg = match v {
                    Some(Err(m)) => m,
                    _ => String::from("<no panic message>"),
                };
                Some(Err(RunError::Panicked(msg)))
            }
        }
    }

    /// Borrows the value of a `Done` runner.
    ///
    /// The returned reference must not outlive the handle's shared borrow;
    /// the handle only calls [`take`](Self::take) through `&mut`/by value,
    /// so the borrow checker keeps the two apart.
    ///
    /// # Safety
    ///
    /// `Shared<T>` is `Sync` for any `T: Send`, but the `&T` returned here
    /// shares the value: the caller must not let it (or the `&Shared<T>` it
    /// calls this through) reach several threads unless `T: Sync`.
    /// `Runner<T>` upholds this by being `Sync` only when `T: Sync`.
    #[cfg(not(hangsafe_loom))]
    pub(crate) unsafe fn peek(&self) -> Option<&T> {
        if self.state.load().state() != State::Done {
            return None;
        }
        // SAFETY: Done is final; the worker no longer touches the slot
        // (acquire load above), and the only writer left is `take`, which
        // the handle can only call while no `&T` from here is alive. Who
        // may see the `&T` is the caller's obligation (# Safety).
        self.result
            .with(|p| unsafe { (*p).as_ref() })
            .and_then(|r| r.as_ref().ok())
    }
}

#[cfg(not(hangsafe_loom))]
impl<T: Send + 'static> crate::examine::Examinable for Shared<T> {
    fn examine_cell(&self) -> &SeqCell {
        &self.examine
    }

    fn work_ended(&self) -> bool {
        matches!(self.word().state(), State::Done | State::Dead)
    }
}

fn cancel_error(w: Word) -> RunError {
    match w.cancel_reason() {
        Some(CancelReason::Deadline) => RunError::TimedOut,
        _ => RunError::Cancelled,
    }
}

impl<T> Drop for Shared<T> {
    fn drop(&mut self) {
        Counters::dec(&self.counters.live_contexts);
    }
}
