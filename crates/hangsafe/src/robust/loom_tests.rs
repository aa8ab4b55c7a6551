//! Loom models of the robust mutex's userspace state machine (lock word,
//! `OwnerDead`, consistent, not-recoverable) against a mock PI futex.
//!
//! Run with (see `.ci/run`):
//!
//! ```text
//! RUSTFLAGS="--cfg hangsafe_loom" LOOM_MAX_PREEMPTIONS=3 \
//!     cargo test -p hangsafe --lib --release -- loom
//! ```
//!
//! Each model drives the real [`RawRobustMutex`] protocol (`lock_with`,
//! `try_lock_with`, `consistent_with`, `unlock_with`: the sync facade swaps
//! in loom's atomics) through [`Task`], a [`Kernel`] whose futex operations
//! go to [`MockFutex`]. Loom explores every interleaving up to the
//! preemption bound, checks every access to the protected data (a loom
//! `UnsafeCell`) for races, i.e. for two owners at once, and reports a
//! deadlock when every thread is blocked, i.e. a lost wakeup, since a
//! waiter blocks on a real (loom) condition variable. Test names carry the
//! race IDs of `docs/races.md`.
//!
//! # The mock kernel
//!
//! [`MockFutex`] models the Linux PI-futex operations on the one word of the
//! mutex (`kernel/futex/pi.c`), serialised by a loom mutex standing for the
//! hash-bucket lock, with the kernel's compare-exchange loops on the word
//! (userspace may change it concurrently; a failed compare-exchange makes
//! the kernel retry, as it does with `-EAGAIN` internally):
//!
//! * `lock_pi` (`futex_lock_pi_atomic`): my TID in the word → `EDEADLK`. If
//!   waiters are queued (a `pi_state` exists) it attaches to it with the
//!   checks of `attach_to_pi_state`, including the one that matters here:
//!   a `pi_state` whose owner exited (`owner == None`) while the word has no
//!   `OWNER_DIED` is `EINVAL` ([7] in the kernel's comments; R35: the
//!   protocol retries after [`Kernel::backoff`], here the trait's default,
//!   a loom yield). Otherwise a TID of 0 is taken over with a CAS that
//!   keeps `OWNER_DIED`; else `WAITERS` is set (CAS) and, if the owner is
//!   dead, `ESRCH` (`handle_exit_race`, after rereading the word), else the
//!   caller queues (FIFO) and blocks until it is granted the lock.
//! * `trylock_pi`: the same, but `EAGAIN` (`EWOULDBLOCK`) instead of
//!   blocking. A timed `lock_pi` is modelled as a deadline that has already
//!   passed: `ETIMEDOUT` instead of blocking (`WAITERS` stays set).
//! * `unlock_pi` (`futex_unlock_pi`/`wake_futex_pi`): `EPERM` unless the
//!   word names the caller; with waiters queued the word becomes
//!   `newtid | WAITERS` and the `pi_state` owner the top waiter, in the
//!   caller's syscall; else the word becomes 0.
//! * `die` (`exit_pi_state_list`): the thread is dead; a `pi_state` it owns
//!   loses its owner and the top waiter is woken. That waiter, inside its
//!   own `lock_pi` (`fixup_pi_state_owner`), writes
//!   `newtid | WAITERS | OWNER_DIED`. The two steps are separate, as in the
//!   kernel: between them the word still names the dead owner.
//! * A `pi_state` lives while a waiter is queued or granted but not yet
//!   returned, as its refcount does.
//!
//! Not modelled: equal-priority lock stealing by a waiter that attaches
//! while a grant is pending (it only reorders waiters: the stealer's fixup
//! writes its TID as the unlock's would), waiters that time out or die
//! while blocked, and `exec`.
//!
//! # Death
//!
//! A thread dies at a fail point ([`Kernel::point`]) by panicking with a
//! [`Died`] payload, which the model thread catches ([`run`]); it then calls
//! `die`, as the kernel's exit path does. Unwinding inside a loom thread
//! is fine: no loom guard is held at a fail point, the panic never crosses
//! a loom thread boundary, and after it the thread only marks the data
//! dirty (if it held the lock) and calls `die`. A thread may also "die
//! holding" outside a fail point, by calling `die` itself while holding
//! the lock. A normal thread exit calls `die` too (it must be a no-op).
//!
//! # The ghost
//!
//! The protected data records whether the last holder left the critical
//! section normally (`dirty == false`) or died in it. Every lock that
//! returns checks `OwnerDead` if and only if `dirty`: `OwnerDead` is seen
//! exactly when a holder died holding, and only by the next owner.

use super::error::{Acquired, Error};
use super::kernel::{Deadline, Kernel, Me, Point};
use super::raw::RawRobustMutex;
use super::word::{OWNER_DIED, TID_MASK, WAITERS};
use crate::sync::{Arc, AtomicU32, Mutex, MutexGuard, Ordering, UnsafeCell};
use loom::sync::Condvar;
use loom::thread;
use std::collections::VecDeque;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool as StdAtomicBool, Ordering as StdOrdering};

/// The PID namespace of every model.
const NS: u64 = 0x6e73;

// ---------------------------------------------------------------------------
// The mock kernel.

/// The kernel's `pi_state` of the word: exists while waiters are queued.
#[derive(Debug)]
struct PiState {
    /// The owner as the kernel sees it; `None` once the owner exited
    /// (`exit_pi_state_list`), until the woken waiter fixes it up.
    owner: Option<u32>,
    /// The thread whose exit cleared `owner` (for write attribution).
    exited: Option<u32>,
    /// Blocked waiters, top first.
    waiters: VecDeque<u32>,
    /// The waiter granted the lock that has not yet returned from `lock_pi`.
    granted: Option<u32>,
}

/// Everything the mock kernel knows, under the hash-bucket lock.
#[derive(Debug, Default)]
struct KState {
    /// Dead TIDs (a TID leaves this list when reused).
    dead: Vec<u32>,
    pi: Option<PiState>,
    /// Writes to the word the kernel made because a thread exited:
    /// (dead TID, value written).
    exit_writes: Vec<(u32, u32)>,
    /// `ESRCH` answers given (coverage).
    esrch: u32,
    /// Hand-overs by `FUTEX_UNLOCK_PI` (coverage).
    handovers: u32,
    /// `EINVAL` answers given (coverage).
    einval: u32,
    /// Liveness checks that found the TID gone (R63, coverage).
    dead_verdicts: u32,
}

impl KState {
    /// The kernel keeps `WAITERS` set while a `pi_state` exists.
    fn check(&self, uval: u32) {
        if self.pi.is_some() {
            assert_ne!(uval & WAITERS, 0, "pi_state without WAITERS: {uval:#x}");
        }
    }
}

/// How `lock_pi` handles a lock held by a live owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wait {
    Block,
    Try,
    Timed,
}

/// A mock of the Linux PI-futex operations on one word.
#[derive(Debug)]
struct MockFutex {
    hb: Mutex<KState>,
    cv: Condvar,
}

fn hb_lock(m: &Mutex<KState>) -> MutexGuard<'_, KState> {
    crate::sync::lock(m)
}

impl MockFutex {
    fn new() -> MockFutex {
        MockFutex {
            hb: Mutex::new(KState::default()),
            cv: Condvar::new(),
        }
    }

    /// `FUTEX_LOCK_PI2` / `FUTEX_TRYLOCK_PI` by `tid`.
    fn lock_pi(&self, tid: u32, word: &AtomicU32, wait: Wait) -> Result<(), i32> {
        let mut g = hb_lock(&self.hb);
        let owner = loop {
            let uval = word.load(Ordering::SeqCst);
            g.check(uval);
            let pid = uval & TID_MASK;
            if pid == tid {
                return Err(libc::EDEADLK);
            }
            if let Some(pi) = &g.pi {
                // attach_to_pi_state.
                let ok = if uval & OWNER_DIED != 0 {
                    match pi.owner {
                        None => pid == 0,                // [4] / [5]
                        Some(o) => pid == 0 || pid == o, // [6] / [8]
                    }
                } else {
                    pi.owner == Some(pid) // [7] / [9/10]
                };
                if !ok {
                    g.einval += 1;
                    return Err(libc::EINVAL);
                }
                break pid;
            }
            if pid == 0 {
                // Free, nobody queued: take it, keeping OWNER_DIED.
                let newval = (uval & OWNER_DIED) | tid;
                if word
                    .compare_exchange(uval, newval, Ordering::SeqCst, Ordering::SeqCst)
                    .is_err()
                {
                    continue;
                }
                return Ok(());
            }
            if word
                .compare_exchange(uval, uval | WAITERS, Ordering::SeqCst, Ordering::SeqCst)
                .is_err()
            {
                continue;
            }
            if g.dead.contains(&pid) {
                // attach_to_pi_owner → handle_exit_race.
                if word.load(Ordering::SeqCst) != uval | WAITERS {
                    continue;
                }
                g.esrch += 1;
                return Err(libc::ESRCH);
            }
            break pid;
        };
        match wait {
            Wait::Block => {}
            Wait::Try => return Err(libc::EAGAIN),
            Wait::Timed => return Err(libc::ETIMEDOUT),
        }
        // Queue behind the owner (creating its pi_state if first) and sleep.
        let pi = g.pi.get_or_insert_with(|| PiState {
            owner: Some(owner),
            exited: None,
            waiters: VecDeque::new(),
            granted: None,
        });
        pi.waiters.push_back(tid);
        self.cv.notify_all();
        while g.pi.as_ref().and_then(|p| p.granted) != Some(tid) {
            g = self.cv.wait(g).unwrap_or_else(|e| e.into_inner());
        }
        let g = &mut *g;
        let pi = g.pi.as_mut().expect("granted pi_state");
        pi.granted = None;
        if pi.owner != Some(tid) {
            // fixup_pi_state_owner: the owner exited.
            assert_eq!(pi.owner, None, "only an exit leaves a foreign owner");
            let newtid = tid | WAITERS | OWNER_DIED;
            let mut uval = word.load(Ordering::SeqCst);
            let newval = loop {
                let newval = (uval & OWNER_DIED) | newtid;
                match word.compare_exchange(uval, newval, Ordering::SeqCst, Ordering::SeqCst) {
                    Ok(_) => break newval,
                    Err(cur) => uval = cur,
                }
            };
            pi.owner = Some(tid);
            let dead = pi.exited.take().expect("exit recorded");
            g.exit_writes.push((dead, newval));
        }
        if pi.waiters.is_empty() {
            // The last reference to the pi_state is dropped.
            g.pi = None;
        }
        Ok(())
    }

    /// `FUTEX_UNLOCK_PI` by `tid`.
    fn unlock_pi(&self, tid: u32, word: &AtomicU32) -> Result<(), i32> {
        let mut g = hb_lock(&self.hb);
        loop {
            let uval = word.load(Ordering::SeqCst);
            g.check(uval);
            if uval & TID_MASK != tid {
                return Err(libc::EPERM);
            }
            if let Some(pi) = g.pi.as_mut() {
                if pi.owner != Some(tid) {
                    return Err(libc::EINVAL);
                }
                let new = *pi.waiters.front().expect("a pi_state has waiters");
                let newval = WAITERS | new;
                if word
                    .compare_exchange(uval, newval, Ordering::SeqCst, Ordering::SeqCst)
                    .is_err()
                {
                    continue;
                }
                pi.waiters.pop_front();
                pi.owner = Some(new);
                pi.granted = Some(new);
                g.handovers += 1;
                self.cv.notify_all();
                return Ok(());
            }
            if word
                .compare_exchange(uval, 0, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
            {
                return Ok(());
            }
        }
    }

    /// Thread exit (`exit_pi_state_list`).
    fn die(&self, tid: u32) {
        let mut g = hb_lock(&self.hb);
        g.dead.push(tid);
        if let Some(pi) = g.pi.as_mut() {
            if pi.owner == Some(tid) {
                pi.owner = None;
                pi.exited = Some(tid);
                let top = pi.waiters.pop_front().expect("a pi_state has waiters");
                pi.granted = Some(top);
                self.cv.notify_all();
            }
        }
    }

    /// A signal-0 `kill` (R63): whether the TID is not (or no longer) a
    /// dead thread's. Counted when it is.
    fn alive(&self, tid: u32) -> bool {
        let mut g = hb_lock(&self.hb);
        if g.dead.contains(&tid) {
            g.dead_verdicts += 1;
            return false;
        }
        true
    }

    /// A new thread gets a dead thread's TID.
    fn reuse(&self, tid: u32) {
        let mut g = hb_lock(&self.hb);
        assert!(g.dead.contains(&tid), "only a dead thread's TID is reused");
        g.dead.retain(|&t| t != tid);
    }

    /// Test helper (not a kernel operation): blocks until `n` waiters are
    /// queued in the kernel.
    fn wait_queued(&self, n: usize) {
        let mut g = hb_lock(&self.hb);
        while g.pi.as_ref().map_or(0, |p| p.waiters.len()) < n {
            g = self.cv.wait(g).unwrap_or_else(|e| e.into_inner());
        }
    }

    fn with_state<R>(&self, f: impl FnOnce(&KState) -> R) -> R {
        f(&hb_lock(&self.hb))
    }
}

// ---------------------------------------------------------------------------
// The system under test, and model threads.

/// The data the mutex protects (a ghost of the critical section).
#[derive(Debug, Default)]
struct Data {
    /// Critical sections entered.
    entries: u32,
    /// A holder is inside, or died inside.
    dirty: bool,
}

struct Sys {
    m: RawRobustMutex,
    k: MockFutex,
    data: UnsafeCell<Data>,
    /// Whether lockers may check a holder's liveness (R63); off in the
    /// models of the kernel's `ESRCH` path. A plain (non-loom) atomic: the
    /// model's setting, not state under test.
    liveness: StdAtomicBool,
}

impl Sys {
    fn new() -> Arc<Sys> {
        Arc::new(Sys {
            m: RawRobustMutex::with_namespace(NS),
            k: MockFutex::new(),
            data: UnsafeCell::new(Data::default()),
            liveness: StdAtomicBool::new(true),
        })
    }

    /// Thread `tid` (nonce derived from `tid` and `gen`, for TID reuse), to
    /// die at `fail` if given.
    fn task(&self, tid: u32, gen: u64, fail: Option<Point>) -> Task<'_> {
        Task {
            sys: self,
            me: Me {
                tid,
                nonce: (gen << 32) | u64::from(tid),
                ns: NS,
            },
            fail,
        }
    }

    /// The lock word's owner TID and `WAITERS`, from the mutex's `Debug`.
    fn word_is_free(&self) -> bool {
        let s = format!("{:?}", self.m);
        s.contains("owner_tid: 0") && s.contains("waiters: false")
    }
}

/// The panic payload of a thread dying at a fail point.
struct Died(Point);

/// One thread's view of the kernel.
struct Task<'a> {
    sys: &'a Sys,
    me: Me,
    fail: Option<Point>,
}

impl Kernel for Task<'_> {
    fn me(&self) -> Result<Me, Error> {
        Ok(self.me)
    }
    fn lock_pi(&self, word: &AtomicU32, deadline: Option<Deadline>) -> Result<(), i32> {
        let wait = if deadline.is_some() {
            Wait::Timed
        } else {
            Wait::Block
        };
        self.sys.k.lock_pi(self.me.tid, word, wait)
    }
    fn trylock_pi(&self, word: &AtomicU32) -> Result<(), i32> {
        self.sys.k.lock_pi(self.me.tid, word, Wait::Try)
    }
    fn unlock_pi(&self, word: &AtomicU32) -> Result<(), i32> {
        self.sys.k.unlock_pi(self.me.tid, word)
    }
    fn point(&self, p: Point) {
        if self.fail == Some(p) {
            std::panic::panic_any(Died(p));
        }
    }
    fn alive(&self, tid: u32) -> bool {
        !self.sys.liveness.load(StdOrdering::Relaxed) || self.sys.k.alive(tid)
    }
}

impl Task<'_> {
    fn lock(&self) -> Result<Acquired, Error> {
        self.sys.m.lock_with(self, None)
    }

    /// Locks, checks the ghost (`OwnerDead` iff the last holder died
    /// holding) and enters the critical section.
    fn enter(&self) -> Result<Acquired, Error> {
        let how = self.lock()?;
        self.sys.data.with_mut(|d| {
            // SAFETY: the lock is held; loom checks that no other thread
            // accesses the data concurrently.
            let d = unsafe { &mut *d };
            assert_eq!(
                how == Acquired::OwnerDead,
                d.dirty,
                "OwnerDead must be seen iff a holder died holding"
            );
            d.entries += 1;
            d.dirty = true;
        });
        Ok(how)
    }

    /// Repairs (if `how` is `OwnerDead`), leaves and unlocks.
    fn leave(&self, how: Acquired) {
        if how == Acquired::OwnerDead {
            self.sys.m.consistent_with(self).expect("consistent");
        }
        self.sys.data.with_mut(|d| {
            // SAFETY: the lock is held (see `enter`).
            unsafe { (*d).dirty = false };
        });
        self.sys.m.unlock_with(self).expect("unlock");
    }

    /// Lock, write, unlock.
    fn use_once(&self) -> Acquired {
        let how = self.enter().expect("lock");
        self.leave(how);
        how
    }

    /// Dies holding the lock (outside a fail point): the data stays dirty.
    fn die_holding(&self) {
        self.sys.k.die(self.me.tid);
    }
}

/// How a model thread ended.
#[derive(Debug, PartialEq, Eq)]
enum End<T> {
    Done(T),
    Died(Point),
}

/// Runs `f` as thread `t`; a death at a fail point is caught and handed to
/// the kernel's exit path, as is a normal exit.
fn run<T>(t: &Task<'_>, f: impl FnOnce() -> T) -> End<T> {
    let end = match catch_unwind(AssertUnwindSafe(f)) {
        Ok(v) => End::Done(v),
        Err(payload) => match payload.downcast::<Died>() {
            Ok(died) => {
                let holding = matches!(
                    died.0,
                    Point::AfterLockCas | Point::BeforeReturn | Point::FailedUnlockCas
                );
                if holding {
                    t.sys.data.with_mut(|d| {
                        // SAFETY: the dying thread still holds the lock.
                        unsafe { (*d).dirty = true };
                    });
                }
                End::Died(died.0)
            }
            Err(other) => resume_unwind(other),
        },
    };
    t.sys.k.die(t.me.tid);
    end
}

/// Silences the panic message of a [`Died`] (a simulated death, not a
/// failure); every other panic goes to the previous hook.
fn quiet_deaths() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !info.payload().is::<Died>() {
                prev(info);
            }
        }));
    });
}

/// Runs a model with the environment's loom settings, bounding preemptions
/// to 3 when `LOOM_MAX_PREEMPTIONS` is unset. Prints the number of
/// executions explored (seen with `--nocapture`).
fn model(f: impl Fn() + Sync + Send + 'static) {
    quiet_deaths();
    let mut b = loom::model::Builder::new();
    if b.preemption_bound.is_none() {
        b.preemption_bound = Some(3);
    }
    let runs = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = std::sync::Arc::clone(&runs);
    b.check(move || {
        counter.fetch_add(1, StdOrdering::Relaxed);
        f();
    });
    eprintln!(
        "{}: {} executions",
        std::thread::current().name().unwrap_or("model"),
        runs.load(StdOrdering::Relaxed)
    );
}

/// Records that some explored execution reached a case (checked after the
/// model, so that no model passes vacuously).
struct Seen(StdAtomicBool);

impl Seen {
    const fn new() -> Seen {
        Seen(StdAtomicBool::new(false))
    }
    fn mark(&self) {
        self.0.store(true, StdOrdering::Relaxed);
    }
    fn assert(&self, what: &str) {
        assert!(self.0.load(StdOrdering::Relaxed), "never explored: {what}");
    }
}

/// A fresh thread locks once after the model's threads are done; returns
/// how it found the mutex (and repairs it).
fn final_lock(sys: &Sys, tid: u32) -> Acquired {
    let t = sys.task(tid, 9, None);
    let End::Done(how) = run(&t, || t.use_once()) else {
        unreachable!()
    };
    how
}

/// Spawns model thread `tid` (first generation, dying at `fail` if given)
/// running `f` through [`run`].
fn spawn_task<T: Send + 'static>(
    sys: &Arc<Sys>,
    tid: u32,
    fail: Option<Point>,
    f: impl FnOnce(&Task<'_>) -> T + Send + 'static,
) -> thread::JoinHandle<End<T>> {
    let sys = Arc::clone(sys);
    thread::spawn(move || {
        let t = sys.task(tid, 0, fail);
        run(&t, || f(&t))
    })
}

/// Spawns model thread `tid` that uses the mutex once ([`Task::use_once`]).
fn spawn_user(sys: &Arc<Sys>, tid: u32, fail: Option<Point>) -> thread::JoinHandle<End<Acquired>> {
    spawn_task(sys, tid, fail, |t| t.use_once())
}

// ---------------------------------------------------------------------------
// Models.

/// R30 (no lost wakeup) and mutual exclusion: three threads lock, write the
/// protected data and unlock, through the fast path, `FUTEX_LOCK_PI` and
/// `FUTEX_UNLOCK_PI` hand-over. No two owners (no data race), no deadlock
/// (every waiter is woken), never `OwnerDead`, and the word is 0 at the end.
#[test]
fn loom_r30_mutual_exclusion_no_lost_wakeup() {
    static HANDOVERS: Seen = Seen::new();
    model(|| {
        let sys = Sys::new();
        let hs: Vec<_> = (1..=2).map(|tid| spawn_user(&sys, tid, None)).collect();
        let t = sys.task(3, 0, None);
        let mine = run(&t, || t.use_once());
        assert_eq!(mine, End::Done(Acquired::Consistent));
        for h in hs {
            assert_eq!(h.join().unwrap(), End::Done(Acquired::Consistent));
        }
        // SAFETY: every thread has finished.
        let d = sys.data.with(|d| unsafe { (*d).entries });
        assert_eq!(d, 3);
        assert!(sys.word_is_free(), "{:?}", sys.m);
        let (pi_left, exit_writes, handovers) = sys
            .k
            .with_state(|k| (k.pi.is_some(), k.exit_writes.len(), k.handovers));
        assert!(!pi_left && exit_writes == 0, "kernel state left behind");
        if handovers == 2 {
            HANDOVERS.mark();
        }
    });
    HANDOVERS.assert("two FUTEX_UNLOCK_PI hand-overs in one execution");
}

/// R29: an owner dies holding (at `AfterLockCas`) while another thread
/// locks twice. Whichever order they take the lock in, exactly one of the
/// survivor's locks returns `OwnerDead`: through `ESRCH` and the take-over
/// CAS when nobody was queued at the death, or through the kernel's
/// hand-over when the survivor was already waiting. After `consistent`, the
/// next lock is `Consistent`.
#[test]
fn loom_r29_owner_dies_holding_uncontended() {
    static ESRCH: Seen = Seen::new();
    model(|| {
        let sys = Sys::new();
        let a = spawn_user(&sys, 1, Some(Point::AfterLockCas));
        let t = sys.task(2, 0, None);
        let End::Done((r1, r2)) = run(&t, || {
            let r1 = t.use_once();
            // The second lock surely comes after the death.
            let r2 = t.use_once();
            (r1, r2)
        }) else {
            unreachable!()
        };
        assert_eq!(a.join().unwrap(), End::Died(Point::AfterLockCas));
        let r3 = final_lock(&sys, 3);
        let dead = [r1, r2, r3]
            .iter()
            .filter(|r| **r == Acquired::OwnerDead)
            .count();
        assert_eq!(dead, 1, "{r1:?} {r2:?} {r3:?}");
        if sys.k.with_state(|k| k.esrch) > 0 {
            ESRCH.mark();
        }
    });
    ESRCH.assert("a lock answered ESRCH");
}

/// R29 with `try_lock`: an owner dies holding (at `AfterLockCas`) while
/// another thread tries. `try_lock` is `WouldBlock` while the owner lives,
/// `OwnerDead` once it is dead (`FUTEX_TRYLOCK_PI` answers `ESRCH`, and the
/// take-over CAS follows), `Consistent` before it locked; in every case
/// exactly one lock, that one or the next, reports the death.
#[test]
fn loom_r29_try_lock_dead_vs_live_owner() {
    static OUTCOMES: [Seen; 3] = [Seen::new(), Seen::new(), Seen::new()];
    model(|| {
        let sys = Sys::new();
        let a = spawn_user(&sys, 1, Some(Point::AfterLockCas));
        let t = sys.task(2, 0, None);
        let End::Done(tried) = run(&t, || match t.sys.m.try_lock_with(&t) {
            Ok(how) => {
                t.sys.data.with_mut(|d| {
                    // SAFETY: the lock is held (see `Task::enter`).
                    let d = unsafe { &mut *d };
                    assert_eq!(how == Acquired::OwnerDead, d.dirty);
                    d.dirty = true;
                });
                t.leave(how);
                Some(how)
            }
            Err(Error::WouldBlock) => None,
            Err(e) => panic!("try_lock: {e}"),
        }) else {
            unreachable!()
        };
        assert_eq!(a.join().unwrap(), End::Died(Point::AfterLockCas));
        let next = final_lock(&sys, 3);
        let dead = [tried, Some(next)]
            .iter()
            .filter(|r| **r == Some(Acquired::OwnerDead))
            .count();
        assert_eq!(dead, 1, "{tried:?} {next:?}");
        OUTCOMES[match tried {
            None => 0,
            Some(Acquired::OwnerDead) => 1,
            Some(Acquired::Consistent) => 2,
        }]
        .mark();
    });
    for (seen, what) in OUTCOMES
        .iter()
        .zip(["WouldBlock", "OwnerDead", "Consistent"])
    {
        seen.assert(what);
    }
}

/// R30 (owner dies with a waiter queued): the kernel's exit path hands the
/// lock to the blocked waiter with `OWNER_DIED`; the waiter wakes (no lost
/// wakeup), is told `OwnerDead` once, repairs, and the next lock is
/// `Consistent`.
#[test]
fn loom_r30_owner_dies_holding_with_waiter() {
    model(|| {
        let sys = Sys::new();
        let t = sys.task(1, 0, None);
        let how = t.enter().unwrap();
        assert_eq!(how, Acquired::Consistent);
        let b = spawn_user(&sys, 2, None);
        sys.k.wait_queued(1);
        t.die_holding();
        assert_eq!(b.join().unwrap(), End::Done(Acquired::OwnerDead));
        assert_eq!(final_lock(&sys, 3), Acquired::Consistent);
        // The hand-over is the only kernel write caused by an exit.
        let writes = sys.k.with_state(|k| k.exit_writes.clone());
        assert_eq!(writes, [(1, 2 | WAITERS | OWNER_DIED)]);
    });
}

/// R24: a thread dies right after its unlock CAS while another thread uses
/// the mutex. The lock was released: nobody is told `OwnerDead`, the kernel
/// makes no write to the word on behalf of the dead thread (its exit finds
/// no `pi_state` it owns), and the word is 0 at the end.
#[test]
fn loom_r24_dies_after_unlock_cas() {
    static DIED: Seen = Seen::new();
    model(|| {
        let sys = Sys::new();
        let a = spawn_user(&sys, 1, Some(Point::AfterUnlockCas));
        let t = sys.task(2, 0, None);
        assert_eq!(run(&t, || t.use_once()), End::Done(Acquired::Consistent));
        match a.join().unwrap() {
            // Unlocked through FUTEX_UNLOCK_PI (the other thread was
            // queued): the fail point was not on the path.
            End::Done(how) => assert_eq!(how, Acquired::Consistent),
            End::Died(p) => {
                assert_eq!(p, Point::AfterUnlockCas);
                DIED.mark();
            }
        }
        assert!(sys.k.with_state(|k| k.exit_writes.is_empty()));
        assert!(sys.word_is_free(), "{:?}", sys.m);
        assert_eq!(final_lock(&sys, 3), Acquired::Consistent);
    });
    DIED.assert("death after the unlock CAS");
}

/// R30: the owner dies between a failed unlock CAS (a waiter is queued, so
/// `WAITERS` is set) and `FUTEX_UNLOCK_PI`. It still held the lock: the
/// kernel's exit path hands it to the waiter, which is told `OwnerDead`.
#[test]
fn loom_r30_dies_between_failed_unlock_cas_and_unlock_pi() {
    model(|| {
        let sys = Sys::new();
        let t = sys.task(1, 0, Some(Point::FailedUnlockCas));
        let how = t.enter().unwrap();
        assert_eq!(how, Acquired::Consistent);
        let b = spawn_user(&sys, 2, None);
        sys.k.wait_queued(1);
        assert_eq!(run(&t, || t.leave(how)), End::Died(Point::FailedUnlockCas));
        assert_eq!(b.join().unwrap(), End::Done(Acquired::OwnerDead));
        assert_eq!(final_lock(&sys, 3), Acquired::Consistent);
    });
}

/// R25: an owner died holding, nobody queued. Two contenders race; both
/// may get `ESRCH` and race the take-over CAS from the dead TID. Exactly
/// one is told `OwnerDead`, the other queues behind it (or finds it
/// released) and gets the lock `Consistent`; never two owners. (Without
/// the liveness check, which would settle it first: see the R63 model.)
#[test]
fn loom_r25_two_contenders_esrch() {
    static BOTH: Seen = Seen::new();
    model(|| {
        let sys = Sys::new();
        sys.liveness.store(false, StdOrdering::Relaxed);
        let a = spawn_user(&sys, 1, Some(Point::AfterLockCas));
        assert_eq!(a.join().unwrap(), End::Died(Point::AfterLockCas));
        let b = spawn_user(&sys, 2, None);
        let t = sys.task(3, 0, None);
        let End::Done(mine) = run(&t, || t.use_once()) else {
            unreachable!()
        };
        let End::Done(theirs) = b.join().unwrap() else {
            unreachable!()
        };
        let mut got = [mine, theirs];
        got.sort_by_key(|h| *h == Acquired::OwnerDead);
        assert_eq!(got, [Acquired::Consistent, Acquired::OwnerDead]);
        assert_eq!(final_lock(&sys, 4), Acquired::Consistent);
        if sys.k.with_state(|k| k.esrch) == 2 {
            BOTH.mark();
        }
    });
    BOTH.assert("both contenders got ESRCH");
}

/// R26: the thread that takes over a dead owner's lock dies in the
/// critical section before `consistent` (a concurrent locker may be queued
/// behind it or come later). Whoever locks next is told `OwnerDead` again;
/// every `OwnerDead` matches a death (two deaths, two `OwnerDead`s).
#[test]
fn loom_r26_taker_dies_mid_recovery() {
    static MID: Seen = Seen::new();
    model(|| {
        let sys = Sys::new();
        let a = spawn_user(&sys, 1, Some(Point::AfterLockCas));
        assert_eq!(a.join().unwrap(), End::Died(Point::AfterLockCas));
        let s2 = Arc::clone(&sys);
        let b = thread::spawn(move || {
            let t = s2.task(2, 0, None);
            // Lock, start repairing, die.
            let how = t.enter().expect("lock");
            t.die_holding();
            how
        });
        let t = sys.task(3, 0, None);
        let End::Done(mine) = run(&t, || t.use_once()) else {
            unreachable!()
        };
        let taker = b.join().unwrap();
        let last = final_lock(&sys, 4);
        let dead = [mine, taker, last]
            .iter()
            .filter(|r| **r == Acquired::OwnerDead)
            .count();
        assert_eq!(dead, 2, "{mine:?} {taker:?} {last:?}");
        if taker == Acquired::OwnerDead {
            // The taker died mid-recovery: the next owner was told again.
            assert_eq!(mine, Acquired::OwnerDead);
            MID.mark();
        }
    });
    MID.assert("the taker died mid-recovery");
}

/// R27: the thread told `OwnerDead` unlocks without `consistent`. The mutex
/// is then not-recoverable forever: the other thread (queued at the time,
/// or arriving later) gets `NotRecoverable`, and so does every later
/// `lock` and `try_lock`, by either thread or a new one; nothing deadlocks.
#[test]
fn loom_r27_unlock_while_inconsistent() {
    model(|| {
        let sys = Sys::new();
        let a = spawn_user(&sys, 1, Some(Point::AfterLockCas));
        assert_eq!(a.join().unwrap(), End::Died(Point::AfterLockCas));
        let body = |t: &Task<'_>| -> bool {
            let owner_dead = match t.enter() {
                Ok(how) => {
                    assert_eq!(how, Acquired::OwnerDead);
                    // Unlock without repairing.
                    t.sys.m.unlock_with(t).expect("unlock");
                    true
                }
                Err(Error::NotRecoverable) => false,
                Err(e) => panic!("lock: {e}"),
            };
            assert!(matches!(t.lock(), Err(Error::NotRecoverable)));
            assert!(matches!(
                t.sys.m.try_lock_with(t),
                Err(Error::NotRecoverable)
            ));
            owner_dead
        };
        let b = spawn_task(&sys, 2, None, body);
        let t = sys.task(3, 0, None);
        let End::Done(mine) = run(&t, || body(&t)) else {
            unreachable!()
        };
        let End::Done(theirs) = b.join().unwrap() else {
            unreachable!()
        };
        assert!(mine != theirs, "exactly one OwnerDead");
        let t = sys.task(4, 0, None);
        assert!(matches!(t.lock(), Err(Error::NotRecoverable)));
        assert!(matches!(
            sys.m.try_lock_with(&t),
            Err(Error::NotRecoverable)
        ));
        assert!(sys.m.is_not_recoverable());
    });
}

/// R28: an owner dies holding, nobody queued, and its TID is reused by a
/// new thread (another nonce). That thread's lock finds its own TID in the
/// word and takes over: `OwnerDead`, not `Deadlock`; its genuine relock is
/// `Deadlock`. A third thread locking meanwhile is queued by the kernel
/// behind the reused TID (which the kernel thinks is the owner) and gets
/// the lock `Consistent` after the repair.
#[test]
fn loom_r28_tid_reuse() {
    model(|| {
        let sys = Sys::new();
        let a = spawn_user(&sys, 1, Some(Point::BeforeReturn));
        assert_eq!(a.join().unwrap(), End::Died(Point::BeforeReturn));
        sys.k.reuse(1);
        let c = spawn_user(&sys, 2, None);
        let t = sys.task(1, 1, None);
        assert_ne!(t.me.nonce, 1, "a new nonce");
        let End::Done(()) = run(&t, || {
            let how = t.enter().expect("lock");
            assert_eq!(how, Acquired::OwnerDead);
            assert!(matches!(t.lock(), Err(Error::Deadlock)));
            t.leave(how);
        }) else {
            unreachable!()
        };
        assert_eq!(c.join().unwrap(), End::Done(Acquired::Consistent));
        assert_eq!(final_lock(&sys, 3), Acquired::Consistent);
    });
}

/// R32: a timed lock whose deadline passes while a live owner holds gives
/// up with `TimedOut` and leaves `WAITERS` set; the owner's unlock then
/// takes the kernel path, which clears the word, and the next lock is
/// `Consistent`. (The mock's deadline has always passed when it would
/// block.)
#[test]
fn loom_r32_timed_lock_gives_up() {
    static TIMED_OUT: Seen = Seen::new();
    model(|| {
        let sys = Sys::new();
        let deadline = Some(Deadline { sec: 0, nsec: 0 });
        let b = spawn_task(&sys, 2, None, move |t| {
            match t.sys.m.lock_with(t, deadline) {
                Ok(how) => {
                    assert_eq!(how, Acquired::Consistent);
                    t.sys.m.unlock_with(t).expect("unlock");
                    false
                }
                Err(Error::TimedOut) => true,
                Err(e) => panic!("timed lock: {e}"),
            }
        });
        let t = sys.task(1, 0, None);
        assert_eq!(run(&t, || t.use_once()), End::Done(Acquired::Consistent));
        if b.join().unwrap() == End::Done(true) {
            TIMED_OUT.mark();
        }
        assert!(sys.word_is_free(), "{:?}", sys.m);
        assert_eq!(final_lock(&sys, 3), Acquired::Consistent);
    });
    TIMED_OUT.assert("a timed lock gave up");
}

/// R35: a third thread locks while the owner dies with a waiter queued.
/// The kernel's exit path makes the waiter the owner of the `pi_state` but
/// the word keeps the dead owner's TID, without `OWNER_DIED`, until the
/// waiter's own fix-up; a `FUTEX_LOCK_PI` in that window gets `EINVAL`
/// ([7] in `attach_to_pi_state`). `lock` treats it as transient and
/// retries: the waiter is told `OwnerDead`, the third thread gets the lock
/// `Consistent` after it (whether it queued before the death, arrived in
/// the window, or came later), no deadlock, never two owners.
#[test]
fn loom_r35_lock_during_exit_handover() {
    static EINVAL: Seen = Seen::new();
    model(|| {
        let sys = Sys::new();
        let t = sys.task(1, 0, None);
        assert_eq!(t.enter().unwrap(), Acquired::Consistent);
        let hs: Vec<_> = (2..=3).map(|tid| spawn_user(&sys, tid, None)).collect();
        sys.k.wait_queued(1);
        t.die_holding();
        let mut got: Vec<_> = hs.into_iter().map(|h| h.join().unwrap()).collect();
        got.sort_by_key(|e| *e == End::Done(Acquired::OwnerDead));
        assert_eq!(
            got,
            [
                End::Done(Acquired::Consistent),
                End::Done(Acquired::OwnerDead)
            ]
        );
        assert_eq!(final_lock(&sys, 4), Acquired::Consistent);
        if sys.k.with_state(|k| k.einval) > 0 {
            EINVAL.mark();
        }
    });
    EINVAL.assert("a lock got EINVAL in the exit hand-over window");
}

/// R35 with `try_lock`: a `try_lock` while the owner dies with a waiter
/// queued is `WouldBlock` (the owner is alive, or the hand-over to the
/// waiter is in flight: `EINVAL` from `FUTEX_TRYLOCK_PI`), or `Consistent`
/// once the waiter has repaired and unlocked; never an error, never
/// `OwnerDead` (the waiter is the next owner).
#[test]
fn loom_r35_try_lock_during_exit_handover() {
    static EINVAL: Seen = Seen::new();
    model(|| {
        let sys = Sys::new();
        let t = sys.task(1, 0, None);
        assert_eq!(t.enter().unwrap(), Acquired::Consistent);
        let b = spawn_user(&sys, 2, None);
        let c = spawn_task(&sys, 3, None, |t| match t.sys.m.try_lock_with(t) {
            Ok(how) => {
                assert_eq!(how, Acquired::Consistent);
                t.sys.m.unlock_with(t).expect("unlock");
                true
            }
            Err(Error::WouldBlock) => false,
            Err(e) => panic!("try_lock: {e}"),
        });
        sys.k.wait_queued(1);
        t.die_holding();
        assert_eq!(b.join().unwrap(), End::Done(Acquired::OwnerDead));
        assert!(matches!(c.join().unwrap(), End::Done(_)));
        assert_eq!(final_lock(&sys, 4), Acquired::Consistent);
        if sys.k.with_state(|k| k.einval) > 0 {
            EINVAL.mark();
        }
    });
    EINVAL.assert("a try_lock got EINVAL in the exit hand-over window");
}

/// R63: an owner died holding, nobody queued. Two contenders race, each
/// checking the holder's liveness once its word stood still; both may
/// find it dead and race the take-over CAS from the word as they read it.
/// Exactly one is told `OwnerDead`, the other gets the lock `Consistent`
/// (after it, or queued behind it); never two owners, and the word is
/// free at the end.
#[test]
fn loom_r63_two_contenders_judge_the_holder_dead() {
    static BOTH: Seen = Seen::new();
    model(|| {
        let sys = Sys::new();
        let a = spawn_user(&sys, 1, Some(Point::AfterLockCas));
        assert_eq!(a.join().unwrap(), End::Died(Point::AfterLockCas));
        let b = spawn_user(&sys, 2, None);
        let t = sys.task(3, 0, None);
        let End::Done(mine) = run(&t, || t.use_once()) else {
            unreachable!()
        };
        let End::Done(theirs) = b.join().unwrap() else {
            unreachable!()
        };
        let mut got = [mine, theirs];
        got.sort_by_key(|h| *h == Acquired::OwnerDead);
        assert_eq!(got, [Acquired::Consistent, Acquired::OwnerDead]);
        assert!(sys.word_is_free(), "{:?}", sys.m);
        if sys.k.with_state(|k| k.dead_verdicts) == 2 {
            BOTH.mark();
        }
    });
    BOTH.assert("both contenders judged the holder dead");
}

/// R63 against a live holder: a contender spins on the word of a holder
/// that is alive, may check its liveness, and must not take the lock
/// over; the holder then dies holding (with the contender spinning or
/// queued). The contender is told `OwnerDead` exactly once, by whichever
/// path (liveness, `ESRCH`, or the kernel's hand-over) it learnt it.
#[test]
fn loom_r63_live_holder_then_dies() {
    static VERDICT: Seen = Seen::new();
    model(|| {
        let sys = Sys::new();
        let t = sys.task(1, 0, None);
        let how = t.enter().unwrap();
        assert_eq!(how, Acquired::Consistent);
        let b = spawn_user(&sys, 2, None);
        t.die_holding();
        assert_eq!(b.join().unwrap(), End::Done(Acquired::OwnerDead));
        assert_eq!(final_lock(&sys, 3), Acquired::Consistent);
        if sys.k.with_state(|k| k.dead_verdicts) > 0 {
            VERDICT.mark();
        }
    });
    VERDICT.assert("the contender judged the holder dead");
}
