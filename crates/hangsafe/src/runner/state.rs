//! The runner state word: one `AtomicU32` changed only by compare-and-swap.
//!
//! The low three bits hold multipath-tools' runner [`State`] (with the C values of
//! multipath-tools' `enum runner_status`); the bits above record *why* a
//! runner left `Running`, so the outcome can be reported without a second
//! atomic. Every transition is a CAS from an exact expected value, so two
//! racing transitions can never both take effect: exactly one of
//! "complete" and "cancel" wins (races R2, R3, R4 in `docs/races.md`).

use crate::sync::{AtomicU32, Ordering};

/// The state of a runner, as multipath-tools' runner defines it.
///
/// There is deliberately no "not started" state: a runner is `Running` from
/// the moment [`spawn`](crate::runner::spawn) returns, whether or not a
/// thread has picked the work up yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum State {
    /// The work has not finished and nobody has cancelled it.
    Running = 1,
    /// The work returned a value before any cancel; the value is available.
    Done = 2,
    /// A cancel (explicit, deadline or release) took effect while the work
    /// was running; the work has not returned yet. No result will ever be
    /// produced.
    Cancelled = 3,
    /// The work ended without producing a result: it panicked, or it
    /// returned after being cancelled.
    Dead = 4,
}

impl State {
    /// The name multipath-tools' runner (and `runner_state_name()`) uses for this state.
    ///
    /// ```
    /// use hangsafe::runner::State;
    /// assert_eq!(State::Cancelled.name(), "cancelled");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            State::Running => "running",
            State::Done => "done",
            State::Cancelled => "cancelled",
            State::Dead => "dead",
        }
    }

    /// True for `Done`, `Cancelled` and `Dead`: the outcome is decided and
    /// will not change from the caller's point of view.
    pub fn is_decided(self) -> bool {
        self != State::Running
    }
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a runner was cancelled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CancelReason {
    /// [`Runner::cancel`](crate::runner::Runner::cancel) was called.
    Explicit,
    /// The deadline passed (noticed by the timer or by `check()`).
    Deadline,
    /// The handle was dropped while the work was running.
    Released,
}

const STATE_MASK: u32 = 0b111;
const R_EXPLICIT: u32 = 1 << 3;
const R_DEADLINE: u32 = 1 << 4;
const R_RELEASED: u32 = 1 << 5;
const REASON_MASK: u32 = R_EXPLICIT | R_DEADLINE | R_RELEASED;
/// The work panicked (kept in `Dead`).
const F_PANICKED: u32 = 1 << 6;
/// The work outlived its cancel by the pool's grace period.
const F_ABANDONED: u32 = 1 << 7;

const fn reason_bit(r: CancelReason) -> u32 {
    match r {
        CancelReason::Explicit => R_EXPLICIT,
        CancelReason::Deadline => R_DEADLINE,
        CancelReason::Released => R_RELEASED,
    }
}

/// A decoded snapshot of the state word.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Word(u32);

impl Word {
    pub(crate) fn state(self) -> State {
        match self.0 & STATE_MASK {
            1 => State::Running,
            2 => State::Done,
            3 => State::Cancelled,
            _ => State::Dead,
        }
    }

    pub(crate) fn cancel_reason(self) -> Option<CancelReason> {
        let r = self.0 & REASON_MASK;
        if r & R_DEADLINE != 0 {
            Some(CancelReason::Deadline)
        } else if r & R_EXPLICIT != 0 {
            Some(CancelReason::Explicit)
        } else if r & R_RELEASED != 0 {
            Some(CancelReason::Released)
        } else {
            None
        }
    }

    pub(crate) fn abandoned(self) -> bool {
        self.0 & F_ABANDONED != 0
    }
}

/// What the worker's final transition decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Finish {
    /// `Running -> Done`: the result is published.
    Done,
    /// `Running -> Dead` by a panic.
    Panicked,
    /// `Cancelled -> Dead`: the cancel won; the result must be dropped.
    /// Carries whether the runner had been marked abandoned.
    AfterCancel { abandoned: bool },
}

/// The atomic state word of one runner.
#[derive(Debug)]
pub(crate) struct StateCell(AtomicU32);

impl StateCell {
    pub(crate) fn new() -> Self {
        StateCell(AtomicU32::new(State::Running as u32))
    }

    /// Acquire-loads the word. A load that sees `Done` or `Dead`
    /// synchronises with the worker's final CAS, so the result slot may be
    /// read afterwards.
    pub(crate) fn load(&self) -> Word {
        Word(self.0.load(Ordering::Acquire))
    }

    /// `Running -> Cancelled(reason)`. Returns the word seen before; the
    /// cancel took effect iff that word's state is `Running`.
    pub(crate) fn cancel(&self, reason: CancelReason) -> Word {
        let mut cur = self.0.load(Ordering::Acquire);
        loop {
            if cur & STATE_MASK != State::Running as u32 {
                return Word(cur);
            }
            let new = (cur & !STATE_MASK) | State::Cancelled as u32 | reason_bit(reason);
            match self
                .0
                .compare_exchange(cur, new, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return Word(cur),
                Err(seen) => cur = seen,
            }
        }
    }

    /// `Running -> Done` (if `ok`) or `Running -> Dead|PANICKED`. Called
    /// once by the worker after it wrote the result slot; the release half
    /// of the CAS publishes the slot. Returns `None`, changing nothing, if a
    /// cancel got there first: the worker then still owns the slot, must
    /// empty it, and calls [`end_cancelled`](Self::end_cancelled).
    pub(crate) fn complete(&self, ok: bool) -> Option<Finish> {
        let mut cur = self.0.load(Ordering::Acquire);
        loop {
            let (new, outcome) = match Word(cur).state() {
                State::Running if ok => ((cur & !STATE_MASK) | State::Done as u32, Finish::Done),
                State::Running => (
                    (cur & !STATE_MASK) | State::Dead as u32 | F_PANICKED,
                    Finish::Panicked,
                ),
                State::Cancelled => return None,
                // Only the worker leaves Running/Cancelled for a final state.
                State::Done | State::Dead => unreachable!("runner completed twice"),
            };
            match self
                .0
                .compare_exchange(cur, new, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return Some(outcome),
                Err(seen) => cur = seen,
            }
        }
    }

    /// `Cancelled -> Dead`, keeping the reason and abandonment bits. Called
    /// once by the worker after [`complete`](Self::complete) returned `None`.
    pub(crate) fn end_cancelled(&self, panicked: bool) -> Finish {
        let mut cur = self.0.load(Ordering::Acquire);
        loop {
            let w = Word(cur);
            debug_assert_eq!(w.state(), State::Cancelled);
            let new =
                (cur & !STATE_MASK) | State::Dead as u32 | if panicked { F_PANICKED } else { 0 };
            match self
                .0
                .compare_exchange(cur, new, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => {
                    return Finish::AfterCancel {
                        abandoned: w.abandoned(),
                    }
                }
                Err(seen) => cur = seen,
            }
        }
    }

    /// `Cancelled -> Cancelled|ABANDONED`, once. True if this call marked it.
    /// A runner that already ended is never marked (race R6).
    pub(crate) fn mark_abandoned(&self) -> bool {
        let mut cur = self.0.load(Ordering::Acquire);
        loop {
            let w = Word(cur);
            if w.state() != State::Cancelled || w.abandoned() {
                return false;
            }
            match self.0.compare_exchange(
                cur,
                cur | F_ABANDONED,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return true,
                Err(seen) => cur = seen,
            }
        }
    }
}

#[cfg(all(test, not(hangsafe_loom)))]
mod tests {
    use super::*;

    #[test]
    fn values_match_multipath_runner_status() {
        // enum runner_status in libmpathutil/runner.h: IDLE 0, RUNNING 1,
        // DONE 2, CANCELLED 3, DEAD 4.
        assert_eq!(State::Running as u8, 1);
        assert_eq!(State::Done as u8, 2);
        assert_eq!(State::Cancelled as u8, 3);
        assert_eq!(State::Dead as u8, 4);
    }

    #[test]
    fn transition_table() {
        // Running -> Done
        let s = StateCell::new();
        assert_eq!(s.complete(true), Some(Finish::Done));
        assert_eq!(s.load().state(), State::Done);
        // Done is terminal for cancel.
        assert_eq!(s.cancel(CancelReason::Explicit).state(), State::Done);
        assert_eq!(s.load().state(), State::Done);

        // Running -> Dead (panic)
        let s = StateCell::new();
        assert_eq!(s.complete(false), Some(Finish::Panicked));
        assert_eq!(s.load().state(), State::Dead);
        assert_eq!(s.load().cancel_reason(), None);

        // Running -> Cancelled -> Dead, reason kept.
        let s = StateCell::new();
        assert_eq!(s.cancel(CancelReason::Deadline).state(), State::Running);
        assert_eq!(s.cancel(CancelReason::Explicit).state(), State::Cancelled);
        assert_eq!(s.load().cancel_reason(), Some(CancelReason::Deadline));
        assert!(s.mark_abandoned());
        assert!(!s.mark_abandoned());
        assert_eq!(s.complete(true), None);
        assert_eq!(s.load().state(), State::Cancelled);
        assert_eq!(
            s.end_cancelled(false),
            Finish::AfterCancel { abandoned: true }
        );
        let w = s.load();
        assert_eq!(w.state(), State::Dead);
        assert_eq!(w.cancel_reason(), Some(CancelReason::Deadline));
        assert!(!s.mark_abandoned(), "a dead runner is never abandoned");
    }
}
