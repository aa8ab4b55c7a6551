//! The protocol's decisions against a scripted kernel: no syscalls, no
//! processes, so these also run under Miri. Each kernel answer is the one
//! Linux gives in that situation (see `kernel.rs`); the process tests in
//! `tests/` check the same paths against the real kernel.

use super::error::{Acquired, Error};
use super::kernel::{Deadline, Kernel, Me};
use super::raw::RawRobustMutex;
use super::word::{OWNER_DIED, WAITERS};
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, Ordering};

const NS: u64 = 4026531836;
const ME: Me = Me {
    tid: 100,
    nonce: 0xfeed,
    ns: NS,
};

/// What the scripted `FUTEX_LOCK_PI` does next.
enum Answer {
    /// Grant: write this word, return 0.
    Grant(u32),
    /// Fail with this errno, after setting WAITERS (as the kernel does
    /// before attaching to an owner).
    Fail(i32),
}

#[derive(Default)]
struct Script {
    answers: RefCell<VecDeque<Answer>>,
    lock_calls: Cell<u32>,
    unlock_calls: Cell<u32>,
    backoffs: Cell<u32>,
    /// Answer EINVAL forever once the script runs out.
    einval_forever: bool,
}

impl Kernel for Script {
    fn me(&self) -> Result<Me, Error> {
        Ok(ME)
    }
    fn lock_pi(&self, word: &AtomicU32, _d: Option<Deadline>) -> Result<(), i32> {
        self.lock_calls.set(self.lock_calls.get() + 1);
        let next = self.answers.borrow_mut().pop_front();
        match next {
            Some(Answer::Grant(w)) => {
                word.store(w, Ordering::SeqCst);
                Ok(())
            }
            Some(Answer::Fail(e)) => {
                word.fetch_or(WAITERS, Ordering::SeqCst);
                Err(e)
            }
            None if self.einval_forever => Err(libc::EINVAL),
            None => panic!("unexpected FUTEX_LOCK_PI"),
        }
    }
    fn trylock_pi(&self, word: &AtomicU32) -> Result<(), i32> {
        self.lock_pi(word, None)
    }
    fn unlock_pi(&self, word: &AtomicU32) -> Result<(), i32> {
        self.unlock_calls.set(self.unlock_calls.get() + 1);
        word.store(0, Ordering::SeqCst);
        Ok(())
    }
    fn backoff(&self, _attempt: u32) {
        self.backoffs.set(self.backoffs.get() + 1);
    }
}

fn script(answers: Vec<Answer>) -> Script {
    Script {
        answers: RefCell::new(answers.into()),
        ..Script::default()
    }
}

#[test]
fn uncontended_lock_and_unlock_never_enter_the_kernel() {
    let m = RawRobustMutex::with_namespace(NS);
    let k = script(vec![]);
    assert_eq!(m.lock_with(&k, None).unwrap(), Acquired::Consistent);
    assert_eq!(m.debug_word(), ME.tid);
    m.unlock_with(&k).unwrap();
    assert_eq!(m.debug_word(), 0);
    assert_eq!((k.lock_calls.get(), k.unlock_calls.get()), (0, 0));
}

#[test]
fn r29_esrch_takes_over_keeping_waiters_then_unlocks_through_the_kernel() {
    let m = RawRobustMutex::with_namespace(NS);
    m.fake_owner_for_tests(555, 0x1);
    let k = script(vec![Answer::Fail(libc::ESRCH)]);
    assert_eq!(m.lock_with(&k, None).unwrap(), Acquired::OwnerDead);
    assert_eq!(m.debug_word(), ME.tid | WAITERS);
    assert!(matches!(m.unlock_with(&k), Ok(())));
    assert_eq!(k.unlock_calls.get(), 1);
    // Unlocked while inconsistent: not recoverable, without asking the
    // kernel again.
    assert!(matches!(m.lock_with(&k, None), Err(Error::NotRecoverable)));
    assert_eq!(k.lock_calls.get(), 1);
}

#[test]
fn r30_grant_with_owner_died_is_owner_dead_and_the_bit_is_cleared() {
    let m = RawRobustMutex::with_namespace(NS);
    m.fake_owner_for_tests(555, 0x1);
    let k = script(vec![Answer::Grant(ME.tid | WAITERS | OWNER_DIED)]);
    assert_eq!(m.lock_with(&k, None).unwrap(), Acquired::OwnerDead);
    assert_eq!(m.debug_word(), ME.tid | WAITERS);
    m.consistent_with(&k).unwrap();
    m.unlock_with(&k).unwrap();
    assert_eq!(m.lock_with(&k, None).unwrap(), Acquired::Consistent);
}

#[test]
fn r25_lost_esrch_race_queues_behind_the_winner() {
    let m = RawRobustMutex::with_namespace(NS);
    m.fake_owner_for_tests(555, 0x1);
    // ESRCH, but by the time we CAS another contender (tid 777) has taken
    // over: we must not take it; we queue and are granted cleanly.
    struct Racer(Script, RawRobustMutexRef);
    type RawRobustMutexRef = *const RawRobustMutex;
    impl Kernel for Racer {
        fn me(&self) -> Result<Me, Error> {
            self.0.me()
        }
        fn lock_pi(&self, w: &AtomicU32, d: Option<Deadline>) -> Result<(), i32> {
            let r = self.0.lock_pi(w, d);
            if r == Err(libc::ESRCH) {
                // SAFETY: the mutex outlives the call (test-local).
                unsafe { &*self.1 }.fake_owner_for_tests(777 | WAITERS, 0x2);
            }
            r
        }
        fn trylock_pi(&self, w: &AtomicU32) -> Result<(), i32> {
            self.0.trylock_pi(w)
        }
        fn unlock_pi(&self, w: &AtomicU32) -> Result<(), i32> {
            self.0.unlock_pi(w)
        }
    }
    let k = Racer(
        script(vec![
            Answer::Fail(libc::ESRCH),
            Answer::Grant(ME.tid | WAITERS),
        ]),
        &m,
    );
    assert_eq!(m.lock_with(&k, None).unwrap(), Acquired::Consistent);
    assert_eq!(k.0.lock_calls.get(), 2);
}

#[test]
fn r28_own_tid_with_foreign_nonce_is_a_dead_holder() {
    let m = RawRobustMutex::with_namespace(NS);
    m.fake_owner_for_tests(ME.tid, ME.nonce ^ 1);
    let k = script(vec![]);
    assert_eq!(m.lock_with(&k, None).unwrap(), Acquired::OwnerDead);
    assert!(matches!(m.lock_with(&k, None), Err(Error::Deadlock)));
    assert_eq!(k.lock_calls.get(), 0);
}

#[test]
fn r35_transient_einval_is_retried() {
    let m = RawRobustMutex::with_namespace(NS);
    m.fake_owner_for_tests(555, 0x1);
    let k = script(vec![
        Answer::Fail(libc::EINVAL),
        Answer::Fail(libc::EINVAL),
        Answer::Grant(ME.tid | WAITERS),
    ]);
    assert_eq!(m.lock_with(&k, None).unwrap(), Acquired::Consistent);
    assert_eq!(k.backoffs.get(), 2);
    // try_lock reports WouldBlock instead of waiting.
    m.unlock_with(&k).unwrap();
    m.fake_owner_for_tests(555, 0x1);
    let k = script(vec![Answer::Fail(libc::EINVAL)]);
    assert!(matches!(m.try_lock_with(&k), Err(Error::WouldBlock)));
}

#[test]
fn r35_persistent_einval_is_reported_not_retried_forever() {
    let m = RawRobustMutex::with_namespace(NS);
    m.fake_owner_for_tests(555, 0x1);
    let k = Script {
        einval_forever: true,
        ..Script::default()
    };
    let e = m.lock_with(&k, None).unwrap_err();
    assert_eq!(e.errno(), libc::EINVAL);
    assert!(k.backoffs.get() > 1000);
}

#[test]
fn r33_namespace_and_initialisation_are_checked_before_any_write() {
    let k = script(vec![]);
    let foreign = RawRobustMutex::with_namespace(NS + 1);
    assert!(matches!(
        foreign.lock_with(&k, None),
        Err(Error::ForeignNamespace)
    ));
    assert_eq!(foreign.debug_word(), 0);
    let zero = RawRobustMutex::with_namespace(0);
    assert!(matches!(
        zero.lock_with(&k, None),
        Err(Error::Uninitialized)
    ));
    assert!(matches!(zero.unlock_with(&k), Err(Error::Uninitialized)));
}

#[test]
fn timeout_and_errors_map_to_pthread_numbers() {
    let m = RawRobustMutex::with_namespace(NS);
    m.fake_owner_for_tests(555, 0x1);
    let k = script(vec![Answer::Fail(libc::ETIMEDOUT)]);
    let e = m.lock_with(&k, None).unwrap_err();
    assert!(matches!(e, Error::TimedOut));
    assert_eq!(e.errno(), libc::ETIMEDOUT);
    assert_eq!(Error::WouldBlock.errno(), libc::EBUSY);
    assert_eq!(Error::NotRecoverable.errno(), libc::ENOTRECOVERABLE);
    assert_eq!(Error::NotOwner.errno(), libc::EPERM);
    assert_eq!(Error::Deadlock.errno(), libc::EDEADLK);
    assert_eq!(Error::Uninitialized.errno(), libc::EINVAL);
    assert_eq!(Error::ForeignNamespace.errno(), libc::EXDEV);
    let io: std::io::Error = Error::NotOwner.into();
    assert_eq!(io.raw_os_error(), Some(libc::EPERM));
}

/// A kernel whose owner (tid 555) lets go of the lock on spin number
/// `release_at` (0: never), counting the spins: the userspace wait of R37,
/// made deterministic.
struct Spinner<'a> {
    script: Script,
    mutex: &'a RawRobustMutex,
    release_at: u32,
    spins: Cell<u32>,
}

impl Kernel for Spinner<'_> {
    fn me(&self) -> Result<Me, Error> {
        self.script.me()
    }
    fn lock_pi(&self, w: &AtomicU32, d: Option<Deadline>) -> Result<(), i32> {
        self.script.lock_pi(w, d)
    }
    fn trylock_pi(&self, w: &AtomicU32) -> Result<(), i32> {
        self.script.trylock_pi(w)
    }
    fn unlock_pi(&self, w: &AtomicU32) -> Result<(), i32> {
        self.script.unlock_pi(w)
    }
    fn spin(&self) {
        self.spins.set(self.spins.get() + 1);
        if self.spins.get() == self.release_at {
            // The owner's unlock: a plain CAS to 0, nobody queued.
            self.mutex.fake_owner_for_tests(0, 0);
        }
    }
}

fn spinner(mutex: &RawRobustMutex, release_at: u32, answers: Vec<Answer>) -> Spinner<'_> {
    Spinner {
        script: script(answers),
        mutex,
        release_at,
        spins: Cell::new(0),
    }
}

#[test]
fn r37_short_held_lock_is_taken_by_spinning_without_entering_the_kernel() {
    let m = RawRobustMutex::with_namespace(NS);
    m.fake_owner_for_tests(555, 0x1);
    let k = spinner(&m, 10, vec![]);
    assert_eq!(m.lock_with(&k, None).unwrap(), Acquired::Consistent);
    // Released at the 10th pause; the look after that batch of pauses
    // (R64's backoff) takes it.
    let spins = k.spins.get();
    assert!((10..=16).contains(&spins), "{spins}");
    // No FUTEX_LOCK_PI, so no WAITERS: the unlock is a CAS too.
    assert_eq!(m.debug_word(), ME.tid);
    m.unlock_with(&k).unwrap();
    let calls = (k.script.lock_calls.get(), k.script.unlock_calls.get());
    assert_eq!(calls, (0, 0), "(FUTEX_LOCK_PI, FUTEX_UNLOCK_PI) calls");
}

#[test]
fn r37_spin_is_bounded_then_the_contender_queues_in_the_kernel() {
    let m = RawRobustMutex::with_namespace(NS);
    m.fake_owner_for_tests(555, 0x1);
    let k = spinner(&m, 0, vec![Answer::Grant(ME.tid | WAITERS)]);
    assert_eq!(m.lock_with(&k, None).unwrap(), Acquired::Consistent);
    let spins = k.spins.get();
    assert!((1..=1_000).contains(&spins), "{spins} spins");
    assert_eq!(k.script.lock_calls.get(), 1);
}

#[test]
fn r64_spin_bounded_with_a_waiter_queued_and_none_for_try_lock() {
    // R64: a queued waiter no longer stops the spin (the holder's kernel
    // unlock may leave the word free for a spinner), but it stays bounded
    // and ends in the kernel.
    let m = RawRobustMutex::with_namespace(NS);
    m.fake_owner_for_tests(555 | WAITERS, 0x1);
    let k = spinner(&m, 0, vec![Answer::Grant(ME.tid | WAITERS)]);
    assert_eq!(m.lock_with(&k, None).unwrap(), Acquired::Consistent);
    let spins = k.spins.get();
    assert!((1..=1_000).contains(&spins), "{spins} spins");
    assert_eq!(k.script.lock_calls.get(), 1);

    let m = RawRobustMutex::with_namespace(NS);
    m.fake_owner_for_tests(555, 0x1);
    let k = spinner(&m, 1, vec![Answer::Fail(libc::EWOULDBLOCK)]);
    assert!(matches!(m.try_lock_with(&k), Err(Error::WouldBlock)));
    assert_eq!((k.spins.get(), k.script.lock_calls.get()), (0, 1));
}
