//! R63 and R64 (`docs/races.md`): a contended lock that judges the
//! holder's liveness itself, and spins while the word is busy.
//!
//! * A holder that died with nobody waiting is taken over in userspace once
//!   its TID is gone: no `FUTEX_LOCK_PI`, so no `WAITERS` left behind (the
//!   kernel's `ESRCH` path sets it on the way).
//! * A taker killed between the verdict and its CAS leaves the word as it
//!   was: the next locker still recovers.
//! * A holder that is dead but not yet reaped (a zombie) still "exists"
//!   for the signal-0 check: the kernel's `ESRCH` recovers it.
//! * A live holder, running or stopped, is never taken over.

use super::failpoints::{arena, owner_dies_uncontended, parent_lock, Arena};
use super::support::*;
use crate::robust::kernel::Point;
use crate::robust::word::WAITERS;
use crate::robust::Acquired;
use std::sync::atomic::Ordering;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(20);

/// Child: lock with `k`; record the word as the lock returned it in `a`;
/// repair and unlock; exit with how it was found.
fn lock_and_record(ar: &Arena, k: &FailKernel<'_>) -> i32 {
    let r = ar.m.lock_with(k, None);
    let code = lock_code(&r);
    if let Ok(how) = r {
        ar.a.store(u64::from(ar.m.debug_word()) | 1 << 40, Ordering::SeqCst);
        if how == Acquired::OwnerDead && ar.m.consistent_with(k).is_err() {
            return code::OTHER;
        }
        if ar.m.unlock_with(k).is_err() {
            return code::OTHER;
        }
    }
    code
}

/// The word recorded by [`lock_and_record`].
fn recorded(ar: &Arena) -> u32 {
    let a = ar.a.load(Ordering::SeqCst);
    assert_ne!(a, 0, "no lock recorded");
    a as u32
}

/// R63: the holder died with nobody waiting and was reaped. The next
/// locker takes over in userspace, without `FUTEX_LOCK_PI`: the word it
/// holds has no `WAITERS` (the kernel's `ESRCH` path would have set it).
#[test]
fn r63_dead_holder_taken_over_without_the_kernel() {
    let ar = arena();
    owner_dies_uncontended(&ar);
    let c = fork(|| lock_and_record(&ar, &FailKernel::plain()));
    assert_eq!(c.wait(LIMIT), Exit::Code(code::OWNER_DEAD));
    let w = recorded(&ar);
    assert_eq!(
        w & WAITERS,
        0,
        "the recovery went through the kernel (word {w:#x})"
    );
    assert_eq!(parent_lock(&ar), Acquired::Consistent);
}

/// R63: a taker killed after the verdict "dead", before its CAS, changes
/// nothing: the next locker is told OwnerDead.
#[test]
fn r63_taker_killed_after_the_dead_verdict() {
    let ar = arena();
    owner_dies_uncontended(&ar);
    let t = fork(|| lock_and_record(&ar, &FailKernel::kill_at(Point::AfterDeadHolder)));
    assert_eq!(t.wait(LIMIT), Exit::Signal(libc::SIGKILL));
    assert_eq!(parent_lock(&ar), Acquired::OwnerDead);
    assert_eq!(parent_lock(&ar), Acquired::Consistent);
}

/// R63: several contenders reach the verdict "dead" together; exactly one
/// takes over, the others then find a live owner (and lock cleanly after
/// it, with no two owners at once).
#[test]
fn r63_several_contenders_judge_the_holder_dead() {
    const N: u32 = 3;
    let ar = arena();
    owner_dies_uncontended(&ar);
    let kids: Vec<Child> = (0..N)
        .map(|_| {
            fork(|| {
                let k = FailKernel {
                    kill_at: None,
                    pause_at: Some((Point::AfterDeadHolder, &ar.gate)),
                    arrived: Some(&ar.arrived),
                    kernel_only: false,
                };
                let r = ar.m.lock_with(&k, None);
                let code = lock_code(&r);
                if let Ok(how) = r {
                    if ar.inside.fetch_add(1, Ordering::SeqCst) != 0 {
                        ar.violations.fetch_add(1, Ordering::SeqCst);
                    }
                    if how == Acquired::OwnerDead && ar.m.consistent_with(&k).is_err() {
                        return code::OTHER;
                    }
                    ar.inside.fetch_sub(1, Ordering::SeqCst);
                    if ar.m.unlock_with(&k).is_err() {
                        return code::OTHER;
                    }
                }
                code
            })
        })
        .collect();
    eventually(LIMIT, "every contender judged the holder dead", || {
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
    assert_eq!(ar.violations.load(Ordering::SeqCst), 0, "two owners");
    assert_eq!(parent_lock(&ar), Acquired::Consistent);
}

/// R63: a holder killed but not reaped is a zombie, which a signal-0
/// `kill` still finds; the kernel's `ESRCH` recovers it (the word then
/// carries `WAITERS`, set by `FUTEX_LOCK_PI` on the way).
#[test]
fn r63_zombie_holder_recovered_by_the_kernel() {
    let ar = arena();
    let zombie = fork(|| {
        let _ = ar.m.lock_with(&FailKernel::plain(), None);
        ar.held.store(1, Ordering::SeqCst);
        die()
    });
    eventually(LIMIT, "holder dead", || {
        ar.held.load(Ordering::SeqCst) == 1 && is_zombie(zombie.pid)
    });
    let c = fork(|| lock_and_record(&ar, &FailKernel::plain()));
    assert_eq!(c.wait(LIMIT), Exit::Code(code::OWNER_DEAD));
    assert_ne!(recorded(&ar) & WAITERS, 0, "recovered without the kernel");
    assert_eq!(zombie.wait(LIMIT), Exit::Signal(libc::SIGKILL));
    assert_eq!(parent_lock(&ar), Acquired::Consistent);
}

/// R63: a live holder, here a stopped one whose word stands still, is
/// never taken over: a timed lock times out.
#[test]
fn r63_stopped_live_holder_is_not_taken_over() {
    let ar = arena();
    let h = fork(|| {
        let _ = ar.m.lock_with(&FailKernel::plain(), None);
        ar.held.store(1, Ordering::SeqCst);
        loop {
            std::thread::sleep(Duration::from_secs(1));
        }
    });
    eventually(LIMIT, "held", || ar.held.load(Ordering::SeqCst) == 1);
    // SAFETY: stops our own child.
    assert_eq!(unsafe { libc::kill(h.pid, libc::SIGSTOP) }, 0);
    let r = ar.m.lock_timeout(Duration::from_millis(200));
    assert!(
        matches!(r, Err(crate::robust::Error::TimedOut)),
        "a live holder's lock was taken: {r:?}"
    );
    h.kill();
    assert_eq!(h.wait(LIMIT), Exit::Signal(libc::SIGKILL));
}

/// Whether process `pid` is a zombie (`/proc/<pid>/stat` state `Z`).
fn is_zombie(pid: libc::pid_t) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            let rest = &s[s.rfind(')')? + 2..];
            rest.chars().next()
        })
        == Some('Z')
}

/// H115: the word is shared memory, so a peer may write any TID into it;
/// the liveness check only ever performs a signal-0 `kill` of a positive
/// TID (nothing is sent). A TID that names some live task (here init,
/// PID 1 of this namespace, usually another user's) is judged alive: the
/// lock is not taken over, a timed lock times out.
#[test]
fn h115_a_foreign_live_tid_in_the_word_is_judged_alive() {
    let ar = arena();
    ar.m.fake_owner_for_tests(1, 0x1234_0001);
    let r = ar.m.lock_timeout(Duration::from_millis(100));
    assert!(
        matches!(r, Err(crate::robust::Error::TimedOut)),
        "a live task's TID was taken over: {r:?}"
    );
}
