//! Owner death at each named step of the protocol.

use super::support::*;
use crate::robust::kernel::Point;
use crate::robust::{Acquired, RawRobustMutex};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(20);

/// The shared arena of one test.
#[repr(C)]
pub(crate) struct Arena {
    pub(crate) m: RawRobustMutex,
    /// Set by a child once it holds the lock.
    pub(crate) held: AtomicU32,
    /// Opened by the parent to let a paused child go on.
    pub(crate) gate: AtomicU32,
    pub(crate) arrived: AtomicU32,
    /// Children inside the critical section right now (must stay ≤ 1).
    pub(crate) inside: AtomicU32,
    pub(crate) violations: AtomicU32,
    pub(crate) a: AtomicU64,
    pub(crate) b: AtomicU64,
    pub(crate) signals: AtomicU32,
}

pub(crate) fn arena() -> Shm<Arena> {
    // SAFETY: all-zero bytes are a valid value of the mapped type (atomics,
    // a raw mutex before `init`, a zeroed `pthread_mutex_t`).
    let s: Shm<Arena> = unsafe { Shm::zeroed() };
    s.m.init().unwrap();
    s
}

/// Child: take the lock (plain kernel), say so, wait for the gate, then
/// do `then`.
fn holder(ar: &Arena, then: impl FnOnce(&Arena) -> i32) -> i32 {
    let r = ar.m.lock_with(&FailKernel::plain(), None);
    if r.is_err() {
        return lock_code(&r);
    }
    ar.held.store(1, Ordering::SeqCst);
    while ar.gate.load(Ordering::SeqCst) == 0 {
        std::hint::spin_loop();
        std::thread::yield_now();
    }
    then(ar)
}

/// A `holder`'s ending: unlock normally, report whether that worked.
fn unlocks(ar: &Arena) -> i32 {
    match ar.m.unlock_with(&FailKernel::plain()) {
        Ok(()) => code::CONSISTENT,
        Err(_) => code::OTHER,
    }
}

/// Child: lock with `k`, and report how (then unlock, repairing first if
/// OwnerDead).
fn locker(ar: &Arena, k: &FailKernel<'_>) -> i32 {
    let r = ar.m.lock_with(k, None);
    let code = lock_code(&r);
    if let Ok(how) = r {
        if ar.inside.fetch_add(1, Ordering::SeqCst) != 0 {
            ar.violations.fetch_add(1, Ordering::SeqCst);
        }
        if how == Acquired::OwnerDead && ar.m.consistent_with(k).is_err() {
            return code::OTHER;
        }
        ar.inside.fetch_sub(1, Ordering::SeqCst);
        if ar.m.unlock_with(k).is_err() {
            return code::OTHER;
        }
    }
    code
}

/// A child takes the lock and is killed right after the lock CAS, with
/// nobody waiting: the word keeps its dead TID.
pub(crate) fn owner_dies_uncontended(ar: &Arena) {
    let c = fork(|| locker(ar, &FailKernel::kill_at(Point::AfterLockCas)));
    assert_eq!(c.wait(LIMIT), Exit::Signal(libc::SIGKILL));
}

fn wait_held(ar: &Arena) {
    eventually(LIMIT, "holder has the lock", || {
        ar.held.load(Ordering::SeqCst) == 1
    });
}

fn wait_blocked(c: &Child) {
    eventually(LIMIT, "waiter blocked in FUTEX_LOCK_PI", || {
        blocked_in_futex(c.pid)
    });
    settle();
}

/// The parent's own lock: returns how it was found and leaves it unlocked
/// (repairing if needed).
pub(crate) fn parent_lock(ar: &Arena) -> Acquired {
    let how = ar.m.lock().expect("parent lock");
    if how == Acquired::OwnerDead {
        ar.m.consistent().unwrap();
    }
    ar.m.unlock().unwrap();
    how
}

/// R29: killed right after the lock CAS, nobody waiting: the next locker
/// gets ESRCH from the kernel, takes over, and is told OwnerDead.
#[test]
fn r29_killed_after_lock_cas_uncontended() {
    let ar = arena();
    owner_dies_uncontended(&ar);
    assert_eq!(parent_lock(&ar), Acquired::OwnerDead);
    // Repaired: the next lock is clean.
    assert_eq!(parent_lock(&ar), Acquired::Consistent);
}

/// R29 with a waiter queued: the owner dies holding, the kernel hands the
/// blocked waiter the lock with OWNER_DIED (no lost wakeup).
#[test]
fn r29_r30_owner_dies_holding_with_waiter() {
    let ar = arena();
    let h = fork(|| holder(&ar, |_| die()));
    wait_held(&ar);
    let w = fork(|| locker(&ar, &FailKernel::plain()));
    wait_blocked(&w);
    ar.gate.store(1, Ordering::SeqCst);
    assert_eq!(h.wait(LIMIT), Exit::Signal(libc::SIGKILL));
    assert_eq!(w.wait(LIMIT), Exit::Code(code::OWNER_DEAD));
    assert_eq!(parent_lock(&ar), Acquired::Consistent);
}

/// R24: killed right after the unlock CAS: the lock was released; nobody
/// is told OwnerDead and the word is 0.
#[test]
fn r24_killed_after_unlock_cas() {
    let ar = arena();
    let c = fork(|| {
        let k = FailKernel::kill_at(Point::AfterUnlockCas);
        let _ = ar.m.lock_with(&k, None);
        let _ = ar.m.unlock_with(&k);
        code::OTHER
    });
    assert_eq!(c.wait(LIMIT), Exit::Signal(libc::SIGKILL));
    assert!(format!("{:?}", ar.m).contains("owner_tid: 0"), "{:?}", ar.m);
    assert_eq!(parent_lock(&ar), Acquired::Consistent);
}

/// R30: killed between a failed unlock CAS (waiters queued) and
/// FUTEX_UNLOCK_PI: it still held the lock, so the waiter is woken by the
/// kernel's exit path and told OwnerDead.
#[test]
fn r30_killed_between_failed_unlock_cas_and_unlock_pi() {
    let ar = arena();
    let h = fork(|| {
        holder(&ar, |ar| {
            let _ =
                ar.m.unlock_with(&FailKernel::kill_at(Point::FailedUnlockCas));
            code::OTHER
        })
    });
    wait_held(&ar);
    let w = fork(|| locker(&ar, &FailKernel::plain()));
    wait_blocked(&w);
    ar.gate.store(1, Ordering::SeqCst);
    assert_eq!(h.wait(LIMIT), Exit::Signal(libc::SIGKILL));
    assert_eq!(w.wait(LIMIT), Exit::Code(code::OWNER_DEAD));
}

/// R31: a waiter killed while blocked leaves no trace: the owner's unlock
/// (through the kernel, WAITERS is set) succeeds, the other waiter gets the
/// lock cleanly, and nobody sees OwnerDead.
#[test]
fn r31_waiter_killed_while_blocked() {
    let ar = arena();
    let h = fork(|| holder(&ar, unlocks));
    wait_held(&ar);
    let w1 = fork(|| locker(&ar, &FailKernel::plain()));
    let w2 = fork(|| locker(&ar, &FailKernel::plain()));
    wait_blocked(&w1);
    wait_blocked(&w2);
    w1.kill();
    assert_eq!(w1.wait(LIMIT), Exit::Signal(libc::SIGKILL));
    ar.gate.store(1, Ordering::SeqCst);
    assert_eq!(h.wait(LIMIT), Exit::Code(code::CONSISTENT));
    assert_eq!(w2.wait(LIMIT), Exit::Code(code::CONSISTENT));
    assert_eq!(parent_lock(&ar), Acquired::Consistent);
}

/// R30: a waiter granted the lock by the kernel is killed before lock
/// returns: it held the lock, so the next locker is told OwnerDead.
#[test]
fn r30_granted_owner_killed_before_return() {
    let ar = arena();
    let h = fork(|| holder(&ar, unlocks));
    wait_held(&ar);
    let w = fork(|| locker(&ar, &FailKernel::kill_at(Point::BeforeReturn)));
    wait_blocked(&w);
    ar.gate.store(1, Ordering::SeqCst);
    assert_eq!(h.wait(LIMIT), Exit::Code(code::CONSISTENT));
    assert_eq!(w.wait(LIMIT), Exit::Signal(libc::SIGKILL));
    assert_eq!(parent_lock(&ar), Acquired::OwnerDead);
}

/// R25: several contenders all get ESRCH for the same dead owner: exactly
/// one takes over (OwnerDead), the others queue behind it and get the lock
/// cleanly after it repairs; never two owners.
#[test]
fn r25_several_contenders_get_esrch() {
    const N: u32 = 4;
    let ar = arena();
    owner_dies_uncontended(&ar);
    let kids: Vec<Child> = (0..N)
        .map(|_| {
            fork(|| {
                let k = FailKernel {
                    kill_at: None,
                    pause_at: Some((Point::AfterEsrch, &ar.gate)),
                    arrived: Some(&ar.arrived),
                    kernel_only: true,
                };
                locker(&ar, &k)
            })
        })
        .collect();
    eventually(LIMIT, "every contender got ESRCH", || {
        ar.arrived.load(Ordering::SeqCst) >= N
    });
    ar.gate.store(1, Ordering::SeqCst);
    let codes: Vec<Exit> = kids.into_iter().map(|k| k.wait(LIMIT)).collect();
    let dead = codes
        .iter()
        .filter(|c| **c == Exit::Code(code::OWNER_DEAD))
        .count();
    let clean = codes
        .iter()
        .filter(|c| **c == Exit::Code(code::CONSISTENT))
        .count();
    assert_eq!((dead, clean), (1, N as usize - 1), "{codes:?}");
    assert_eq!(
        ar.violations.load(Ordering::SeqCst),
        0,
        "two owners at once"
    );
    assert_eq!(parent_lock(&ar), Acquired::Consistent);
}

/// R26: the process that took over a dead owner's lock dies while
/// repairing it: the next owner is told OwnerDead again, with or without
/// a waiter queued at the time.
#[test]
fn r26_taker_dies_mid_recovery() {
    let ar = arena();
    owner_dies_uncontended(&ar);
    // Uncontended: the taker gets OwnerDead, half-repairs, dies.
    let t = fork(|| {
        let r = ar.m.lock_with(&FailKernel::plain(), None);
        if r.as_ref().ok() != Some(&Acquired::OwnerDead) {
            return lock_code(&r);
        }
        ar.a.store(1, Ordering::SeqCst);
        die()
    });
    assert_eq!(t.wait(LIMIT), Exit::Signal(libc::SIGKILL));
    // Contended: the next taker also gets OwnerDead, and dies with a
    // waiter queued; the waiter is told OwnerDead too.
    let t2 = fork(|| {
        holder(&ar, |ar| {
            if ar.m.is_not_recoverable() {
                return code::OTHER;
            }
            die()
        })
    });
    wait_held(&ar);
    let w = fork(|| locker(&ar, &FailKernel::plain()));
    wait_blocked(&w);
    ar.gate.store(1, Ordering::SeqCst);
    assert_eq!(t2.wait(LIMIT), Exit::Signal(libc::SIGKILL));
    assert_eq!(w.wait(LIMIT), Exit::Code(code::OWNER_DEAD));
    assert_eq!(parent_lock(&ar), Acquired::Consistent);
}

/// R27: unlocking while inconsistent makes the mutex permanently
/// not-recoverable: a waiter queued at the time, and every later lock,
/// try_lock and timed lock, get NotRecoverable.
#[test]
fn r27_unlock_while_inconsistent() {
    let ar = arena();
    owner_dies_uncontended(&ar);
    let t = fork(|| {
        let r = ar.m.lock_with(&FailKernel::plain(), None);
        if r.as_ref().ok() != Some(&Acquired::OwnerDead) {
            return lock_code(&r);
        }
        ar.held.store(1, Ordering::SeqCst);
        while ar.gate.load(Ordering::SeqCst) == 0 {
            std::thread::yield_now();
        }
        // Unlock without consistent().
        match ar.m.unlock_with(&FailKernel::plain()) {
            Ok(()) => code::CONSISTENT,
            Err(_) => code::OTHER,
        }
    });
    wait_held(&ar);
    let w1 = fork(|| locker(&ar, &FailKernel::plain()));
    let w2 = fork(|| locker(&ar, &FailKernel::plain()));
    wait_blocked(&w1);
    wait_blocked(&w2);
    ar.gate.store(1, Ordering::SeqCst);
    assert_eq!(t.wait(LIMIT), Exit::Code(code::CONSISTENT));
    assert_eq!(w1.wait(LIMIT), Exit::Code(code::NOT_RECOVERABLE));
    assert_eq!(w2.wait(LIMIT), Exit::Code(code::NOT_RECOVERABLE));
    assert!(matches!(
        ar.m.lock(),
        Err(crate::robust::Error::NotRecoverable)
    ));
    assert!(matches!(
        ar.m.try_lock(),
        Err(crate::robust::Error::NotRecoverable)
    ));
    assert!(matches!(
        ar.m.lock_timeout(Duration::from_millis(10)),
        Err(crate::robust::Error::NotRecoverable)
    ));
    assert!(ar.m.is_not_recoverable());
}

/// R32: a timed lock that times out while the owner holds leaves the mutex
/// usable: the owner's unlock succeeds and the next lock is clean; with the
/// pre-5.14 FUTEX_LOCK_PI fallback too.
#[test]
fn r32_timeout_during_lock() {
    for fallback in [false, true] {
        let ar = arena();
        let h = fork(|| {
            holder(&ar, |ar| match ar.m.unlock_with(&FailKernel::plain()) {
                Ok(()) => code::CONSISTENT,
                Err(_) => code::OTHER,
            })
        });
        wait_held(&ar);
        let w = fork(|| {
            crate::robust::kernel::set_force_lock_pi(fallback);
            let r = ar.m.lock_with(
                &FailKernel::plain(),
                Some(crate::robust::raw::deadline_after(Duration::from_millis(
                    50,
                ))),
            );
            lock_code(&r)
        });
        assert_eq!(
            w.wait(LIMIT),
            Exit::Code(code::TIMED_OUT),
            "fallback={fallback}"
        );
        ar.gate.store(1, Ordering::SeqCst);
        assert_eq!(h.wait(LIMIT), Exit::Code(code::CONSISTENT));
        assert_eq!(parent_lock(&ar), Acquired::Consistent);
    }
}

static SIGNALS: AtomicU32 = AtomicU32::new(0);
extern "C" fn count_signal(_: libc::c_int) {
    SIGNALS.fetch_add(1, Ordering::Relaxed);
}

/// R32: signals delivered to a process blocked in lock run their handler
/// and the wait resumes: no EINTR, no spurious failure, the lock is taken
/// when the owner unlocks.
#[test]
fn r32_signal_during_lock() {
    let ar = arena();
    let h = fork(|| holder(&ar, unlocks));
    wait_held(&ar);
    let w = fork(|| {
        // SAFETY: installs an async-signal-safe handler (one atomic add)
        // for SIGUSR1 in this single-threaded child.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = count_signal as *const () as usize;
            sa.sa_flags = 0; // no SA_RESTART: the kernel must restart anyway
            libc::sigaction(libc::SIGUSR1, &sa, std::ptr::null_mut());
        }
        ar.arrived.store(1, Ordering::SeqCst);
        let r = locker(&ar, &FailKernel::plain());
        ar.signals
            .store(SIGNALS.load(Ordering::Relaxed), Ordering::SeqCst);
        r
    });
    eventually(LIMIT, "handler installed", || {
        ar.arrived.load(Ordering::SeqCst) == 1
    });
    wait_blocked(&w);
    for _ in 0..50 {
        // SAFETY: signalling our own unreaped child.
        unsafe { libc::kill(w.pid, libc::SIGUSR1) };
        std::thread::sleep(Duration::from_millis(1));
    }
    wait_blocked(&w);
    ar.gate.store(1, Ordering::SeqCst);
    assert_eq!(h.wait(LIMIT), Exit::Code(code::CONSISTENT));
    assert_eq!(w.wait(LIMIT), Exit::Code(code::CONSISTENT));
    assert!(
        ar.signals.load(Ordering::SeqCst) > 0,
        "no signal was handled"
    );
}
