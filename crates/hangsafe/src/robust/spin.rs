//! How long a contended lock waits in userspace before it queues in the
//! kernel, and when it asks whether the holder is still alive (R63, R64 in
//! `docs/races.md`; R37 in `docs/races.md`).
//!
//! A waiter queued in the kernel turns every later unlock into
//! `FUTEX_UNLOCK_PI` and every hand-over into a sleep and a wakeup, so a
//! contended lock first waits in userspace, re-reading the word, for as
//! long as that is likely to pay:
//!
//! * **while the word keeps changing** (the lock is passing between live
//!   threads, each holding it briefly), up to [`BUSY_NS`] in all;
//! * **but not while it stands still**: a word unchanged for
//!   [`STILL_NS`] means a long critical section or a holder that is not
//!   running, and the waiter queues in the kernel (where the kernel's own
//!   adaptive wait spins while the owner is on a CPU).
//!
//! Both bounds are measured on the monotonic clock, not counted in spins,
//! because one spin (`pause`/`yield`) costs from a few to over a hundred
//! cycles depending on the CPU. The waiter backs off: it pauses longer
//! and longer between looks (up to 64 pauses), so that it takes the cache
//! line from a holder that keeps re-locking less and less often (measured:
//! two processes free-running went from a third to about two thirds of
//! glibc's rate, and strict ping-pong past it).
//!
//! A word that stands still may name a holder that died (R63). Once it has
//! not changed for [`FIRST_CHECK`] spins, and again after 4×, 16×… as many,
//! the waiter asks the kernel whether the holder's TID still exists (a
//! signal-0 `kill`, [`Kernel::alive`]); if not, it takes the lock over in
//! userspace, which recovers from an owner that died with nobody waiting
//! without the spin and without queueing.

use super::kernel::Kernel;
use super::word::WAITERS;

/// Whether the clock is read before spin number `spins`: every 16th
/// spin, and every spin once [`backoff`] pauses long (under loom, every
/// spin).
#[inline]
fn clock_due(spins: u32) -> bool {
    #[cfg(hangsafe_loom)]
    let due = {
        let _ = spins;
        true
    };
    #[cfg(not(hangsafe_loom))]
    let due = spins & 15 == 0 || spins >= 32;
    due
}
/// A word unchanged this long: stop spinning.
const STILL_NS: u64 = 4_000;
/// Spinning this long in all: stop, however busy the word is.
const BUSY_NS: u64 = 40_000;
/// Spins of an unchanged word before the first liveness check.
const FIRST_CHECK: u32 = if cfg!(hangsafe_loom) { 1 } else { 8 };
/// A hard bound on spins, whatever the clock says (a clock that does not
/// advance must not make a waiter spin for ever; under loom, the bound of
/// the model).
const MAX_SPINS: u32 = if cfg!(hangsafe_loom) { 1 } else { 1 << 20 };

/// Pauses before the next look at the word after `spins` looks: 1 at
/// first, doubling every 4 looks up to 64, so that a waiter on a lock that
/// keeps changing hands reads its cache line less and less often (each
/// read takes the line from the holder, whose next CAS must win it back).
#[inline]
fn backoff(spins: u32) -> u32 {
    1 << (spins / 4).min(6)
}

/// What a waiter does next with a word held by a live-looking holder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Next {
    /// Spin (this many pauses) in userspace, then look again.
    Spin(u32),
    /// Ask the kernel whether the holder is alive (R63).
    CheckAlive,
    /// Queue in the kernel.
    Queue,
}

/// One contended lock's userspace wait.
#[derive(Debug)]
pub(crate) struct Spin {
    spins: u32,
    /// The word as last seen, and spins since it last changed.
    last: u32,
    still: u32,
    /// `still` at which the next liveness check is due.
    next_check: u32,
    /// Clock readings: the first, the previous, and since when the word
    /// has been still (as of the previous reading).
    start: u64,
    prev: u64,
    still_ns: u64,
    changed: bool,
}

impl Spin {
    pub(crate) fn new() -> Spin {
        Spin {
            spins: 0,
            last: 0,
            still: 0,
            next_check: FIRST_CHECK,
            start: 0,
            prev: 0,
            still_ns: 0,
            changed: false,
        }
    }

    /// Decides what to do about word `w` (held by someone else).
    pub(crate) fn next<K: Kernel>(&mut self, k: &K, w: u32) -> Next {
        if w == self.last {
            self.still = self.still.saturating_add(1);
        } else {
            self.last = w;
            self.still = 0;
            self.next_check = FIRST_CHECK;
            self.changed = true;
        }
        // A queued waiter's pi_state may be mid-hand-over (R35): only the
        // kernel may judge a holder dead then.
        if w & WAITERS == 0 && self.still >= self.next_check {
            self.next_check = self.next_check.saturating_mul(4);
            return Next::CheckAlive;
        }
        if self.spins >= MAX_SPINS {
            return Next::Queue;
        }
        if clock_due(self.spins) && self.out_of_time(k.now_ns()) {
            return Next::Queue;
        }
        self.spins += 1;
        Next::Spin(backoff(self.spins))
    }

    /// Whether the time bounds are passed, at clock reading `now`.
    fn out_of_time(&mut self, now: u64) -> bool {
        if self.spins == 0 {
            self.start = now;
            self.prev = now;
            self.changed = false;
            return false;
        }
        let step = now.saturating_sub(self.prev);
        self.prev = now;
        if std::mem::take(&mut self.changed) {
            self.still_ns = 0;
        } else {
            self.still_ns = self.still_ns.saturating_add(step);
        }
        self.still_ns >= STILL_NS || now.saturating_sub(self.start) >= BUSY_NS
    }
}

#[cfg(all(test, not(hangsafe_loom)))]
mod tests {
    use super::*;
    use crate::robust::error::Error;
    use crate::robust::kernel::{Deadline, Me};
    use std::cell::Cell;
    use std::sync::atomic::AtomicU32;

    /// A kernel whose clock advances by `step` ns per reading.
    struct Clock {
        now: Cell<u64>,
        step: u64,
    }

    impl Kernel for Clock {
        fn me(&self) -> Result<Me, Error> {
            unreachable!()
        }
        fn lock_pi(&self, _: &AtomicU32, _: Option<Deadline>) -> Result<(), i32> {
            unreachable!()
        }
        fn trylock_pi(&self, _: &AtomicU32) -> Result<(), i32> {
            unreachable!()
        }
        fn unlock_pi(&self, _: &AtomicU32) -> Result<(), i32> {
            unreachable!()
        }
        fn now_ns(&self) -> u64 {
            self.now.set(self.now.get() + self.step);
            self.now.get()
        }
    }

    fn clock(step: u64) -> Clock {
        Clock {
            now: Cell::new(1_000_000),
            step,
        }
    }

    /// Runs the policy on a word sequence until it queues; returns the
    /// spins and liveness checks it made.
    fn until_queue(k: &Clock, mut word: impl FnMut(u32) -> u32) -> (u32, u32) {
        let mut s = Spin::new();
        let (mut spins, mut checks) = (0, 0);
        for i in 0..(1 << 22) {
            match s.next(k, word(i)) {
                Next::Spin(_) => spins += 1,
                Next::CheckAlive => checks += 1,
                Next::Queue => return (spins, checks),
            }
        }
        panic!("never queued");
    }

    #[test]
    fn r64_a_still_word_queues_after_still_ns() {
        // 100 ns per clock reading (at spins 0 and 16, then every spin
        // from 32 on): 4 µs still is 40 readings, from spin 32 on.
        let (spins, checks) = until_queue(&clock(100), |_| 42);
        assert!((65..=80).contains(&spins), "{spins}");
        // 8 and 32 spins still.
        assert_eq!(checks, 2);
    }

    #[test]
    fn r64_a_busy_word_spins_up_to_busy_ns() {
        // The word changes every spin: only the 40 µs bound ends the spin.
        let (spins, checks) = until_queue(&clock(100), |i| i | 1);
        // 40 µs is 400 readings, nearly all one per spin.
        assert!((400..=450).contains(&spins), "{spins}");
        assert_eq!(checks, 0, "a changing word names a live holder");
    }

    #[test]
    #[cfg_attr(
        miri,
        ignore = "a million looks; the other tests cover the logic under Miri"
    )]
    fn r64_a_stuck_clock_still_ends() {
        let (spins, _) = until_queue(&clock(0), |_| 42);
        assert_eq!(spins, MAX_SPINS);
    }

    #[test]
    fn r63_no_liveness_check_while_waiters_are_queued() {
        let (_, checks) = until_queue(&clock(100), |_| 42 | WAITERS);
        assert_eq!(checks, 0);
    }
}
