//! Loom models of the runner's state machine.
//!
//! Run with (see `.ci/run`):
//!
//! ```text
//! RUSTFLAGS="--cfg hangsafe_loom" LOOM_MAX_PREEMPTIONS=2 \
//!     cargo test -p hangsafe --lib --release -- loom
//! ```
//!
//! Each model drives the real `Shared`/`StateCell`/`CancelWord` code (the
//! sync facade swaps in loom's atomics, mutex and cell), with loom threads
//! standing in for the worker, the handle, the timer and `check()`. Loom
//! explores every interleaving up to the preemption bound, checks every
//! `UnsafeCell` access for data races, and fails on deadlock or leaked
//! `Arc`s. Test names carry the race IDs of `docs/races.md`.

use super::metrics::Counters;
use super::shared::{Shared, Waiter};
use super::state::{CancelReason, Finish, State};
use crate::cancel::word::{CancelWord, Request};
use crate::sync::{Arc, AtomicBool, Ordering};
use loom::thread;
use std::time::Duration;

fn shared() -> Arc<Shared<u32>> {
    Arc::new(Shared::new(
        Arc::new(Counters::default()),
        None,
        Duration::from_millis(1),
    ))
}

/// The worker side of a job, as `run_job` does it: begin, bind, run a
/// (cooperative) body, finish.
fn work(
    s: &Shared<u32>,
    word: &Arc<CancelWord>,
    body: impl FnOnce(&CancelWord, u64) -> u32,
) -> Finish {
    let gen = word.begin();
    if s.bind(word, gen) {
        return s.finish_unrun();
    }
    let v = body(word, gen);
    s.finish(Ok(v)).0
}

/// R2 (complete vs cancel) and R1 (start vs cancel): exactly one of the
/// completion and the cancel wins; the value is delivered iff completion
/// won; the handle's read of the result never races the worker's write.
#[test]
fn loom_r1_r2_complete_vs_cancel() {
    loom::model(|| {
        let s = shared();
        let word = Arc::new(CancelWord::new());
        let (s2, w2) = (Arc::clone(&s), Arc::clone(&word));
        let worker = thread::spawn(move || work(&s2, &w2, |_, _| 42));
        let before = s.cancel(CancelReason::Explicit);
        let fin = worker.join().unwrap();
        let out = s.take().expect("decided");
        match before.state() {
            State::Running => {
                // The cancel took effect: no value, whatever the worker did.
                assert!(matches!(fin, Finish::AfterCancel { .. }));
                assert_eq!(out, Err(super::RunError::Cancelled));
                assert_eq!(s.word().state(), State::Dead);
            }
            State::Done => {
                assert_eq!(fin, Finish::Done);
                assert_eq!(out, Ok(42));
            }
            other => panic!("cancel saw {other:?}"),
        }
    });
}

/// R1/R8 liveness: work that runs until it is cancelled always sees the
/// cancel, wherever the cancel lands relative to `bind` (the Dekker
/// handshake between `bind` and `cancel`). A lost cancel makes the worker
/// spin forever, which loom reports.
#[test]
fn loom_r1_cancel_always_reaches_bound_work() {
    loom::model(|| {
        let s = shared();
        let word = Arc::new(CancelWord::new());
        let (s2, w2) = (Arc::clone(&s), Arc::clone(&word));
        let worker = thread::spawn(move || {
            work(&s2, &w2, |w, gen| {
                while !w.is_cancelled(gen) {
                    thread::yield_now();
                }
                7
            })
        });
        s.cancel(CancelReason::Deadline);
        let fin = worker.join().unwrap();
        assert!(matches!(fin, Finish::AfterCancel { .. }));
        assert_eq!(s.take(), Some(Err(super::RunError::TimedOut)));
    });
}

/// R3 (complete vs release): the handle is dropped (release = cancel +
/// drop of its reference) while the worker completes. No leak (loom checks
/// that every Arc is freed), no double free, no racing access to the slot.
#[test]
fn loom_r3_complete_vs_release() {
    loom::model(|| {
        let s = shared();
        let word = Arc::new(CancelWord::new());
        let (s2, w2) = (Arc::clone(&s), Arc::clone(&word));
        let worker = thread::spawn(move || {
            work(&s2, &w2, |_, _| 1);
        });
        // Release: cancel if running, then drop the handle's reference.
        if s.word().state() == State::Running {
            s.cancel(CancelReason::Released);
        }
        drop(s);
        worker.join().unwrap();
    });
}

/// R4 (deadline vs check vs completion): the timer and `check()` both apply
/// the deadline while the work completes. At most one cancel takes effect,
/// and it is counted once.
#[test]
fn loom_r4_deadline_vs_check() {
    loom::model(|| {
        let counters = Arc::new(Counters::default());
        let s = Arc::new(Shared::<u32>::new(
            Arc::clone(&counters),
            None,
            Duration::from_millis(1),
        ));
        let word = Arc::new(CancelWord::new());
        let (s2, w2) = (Arc::clone(&s), Arc::clone(&word));
        let worker = thread::spawn(move || work(&s2, &w2, |_, _| 3));
        let s3 = Arc::clone(&s);
        let timer =
            thread::spawn(move || s3.cancel(CancelReason::Deadline).state() == State::Running);
        let by_check = s.cancel(CancelReason::Deadline).state() == State::Running;
        let by_timer = timer.join().unwrap();
        let fin = worker.join().unwrap();
        assert!(!(by_check && by_timer), "two cancels took effect");
        let cancelled = counters.cancelled.load(Ordering::Relaxed);
        assert_eq!(cancelled, u64::from(by_check || by_timer));
        assert_eq!(fin == Finish::Done, cancelled == 0);
    });
}

/// R10 (waiter vs completion): a handle that registers and parks is always
/// woken by the completion, whatever the interleaving (no lost wake-up).
#[test]
fn loom_r10_wait_is_woken() {
    loom::model(|| {
        let s = shared();
        let word = Arc::new(CancelWord::new());
        let (s2, w2) = (Arc::clone(&s), Arc::clone(&word));
        let worker = thread::spawn(move || {
            work(&s2, &w2, |_, _| 9);
        });
        loop {
            if let Some(r) = s.take() {
                assert_eq!(r, Ok(9));
                break;
            }
            if !s.register(Waiter::Thread(thread::current())) {
                continue;
            }
            thread::park();
        }
        worker.join().unwrap();
    });
}

/// R5: a cancel aimed at the previous job of a pooled thread never cancels
/// the job that thread runs now, however the canceller and `begin` race.
#[test]
fn loom_r5_stale_cancel_on_reused_thread() {
    loom::model(|| {
        let word = Arc::new(CancelWord::new());
        let g1 = word.begin();
        let w2 = Arc::clone(&word);
        let canceller = thread::spawn(move || {
            if w2.request(g1) == Request::Set {
                w2.sent();
            }
        });
        let g2 = word.begin();
        canceller.join().unwrap();
        assert!(!word.is_cancelled(g2), "stale cancel hit the new job");
        assert!(!word.is_cancelled(g1) || g1 == g2);
    });
}

/// R8: two cancellers of the same job: exactly one of them owns the
/// notification (one signal per cancel, once signals are sent).
#[test]
fn loom_r8_one_notification_per_cancel() {
    loom::model(|| {
        let word = Arc::new(CancelWord::new());
        let gen = word.begin();
        let w2 = Arc::clone(&word);
        let other = thread::spawn(move || {
            let r = w2.request(gen);
            if r == Request::Set {
                w2.sent();
            }
            r == Request::Set
        });
        let mine = word.request(gen);
        if mine == Request::Set {
            word.sent();
        }
        let theirs = other.join().unwrap();
        assert!((mine == Request::Set) ^ theirs, "exactly one notifier");
        assert!(word.is_cancelled(gen));
    });
}

/// R7: a thread that retires is never targeted after it retired: a
/// canceller between its CAS and its (simulated) signal holds the thread
/// back from exiting.
#[test]
fn loom_r7_no_signal_after_retire() {
    loom::model(|| {
        let word = Arc::new(CancelWord::new());
        let gen = word.begin();
        let exited = Arc::new(AtomicBool::new(false));
        let (w2, e2) = (Arc::clone(&word), Arc::clone(&exited));
        let canceller = thread::spawn(move || {
            if w2.request(gen) == Request::Set {
                // The signal would be sent here.
                assert!(!e2.load(Ordering::SeqCst), "signalled an exited thread");
                w2.sent();
            }
        });
        word.retire();
        exited.store(true, Ordering::SeqCst);
        canceller.join().unwrap();
        assert!(word.is_retired());
    });
}

/// R6: the abandonment check (timer) races the cancelled work returning.
/// The runner is reported abandoned by its end iff the check marked it, so
/// the abandoned-thread gauge (incremented on mark, decremented on an
/// abandoned end) always returns to zero.
#[test]
fn loom_r6_abandon_check_vs_return() {
    loom::model(|| {
        let s = shared();
        let word = Arc::new(CancelWord::new());
        assert_eq!(s.cancel(CancelReason::Deadline).state(), State::Running);
        let (s2, w2) = (Arc::clone(&s), Arc::clone(&word));
        let worker = thread::spawn(move || work(&s2, &w2, |_, _| 5));
        let marked = s.mark_abandoned();
        let fin = worker.join().unwrap();
        assert_eq!(fin, Finish::AfterCancel { abandoned: marked });
        assert!(!s.mark_abandoned(), "an ended runner is never abandoned");
    });
}
