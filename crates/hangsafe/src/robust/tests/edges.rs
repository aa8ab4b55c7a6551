//! The edges: TID reuse, misuse, fork and exec while holding, PID
//! namespaces, uninitialised memory.

use super::failpoints::{arena, owner_dies_uncontended, parent_lock, Arena};
use super::support::*;
use crate::robust::kernel::{Kernel, Linux, Point};
use crate::robust::{Acquired, Error, RawRobustMutex};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(20);

fn code_of(r: Result<(), Error>, want: fn(&Error) -> bool) -> i32 {
    match r {
        Err(e) if want(&e) => code::CONSISTENT,
        _ => code::OTHER,
    }
}

/// R28: relocking by the owner is an error (EDEADLK), never a hang or a
/// recursive grant; unlock still works afterwards.
#[test]
fn r28_relock_by_owner_is_deadlock() {
    let m = RawRobustMutex::new().unwrap();
    assert_eq!(m.lock().unwrap(), Acquired::Consistent);
    assert!(matches!(m.lock(), Err(Error::Deadlock)));
    assert!(matches!(m.try_lock(), Err(Error::Deadlock)));
    assert!(matches!(
        m.lock_timeout(Duration::from_millis(1)),
        Err(Error::Deadlock)
    ));
    m.unlock().unwrap();
    assert!(matches!(m.unlock(), Err(Error::NotOwner)));
}

/// Sets `/proc/sys/kernel/ns_last_pid` so that the next fork gets `pid`.
fn set_next_pid(pid: libc::pid_t) -> bool {
    std::fs::write("/proc/sys/kernel/ns_last_pid", format!("{}", pid - 1)).is_ok()
}

/// R28: a dead owner's TID is reused by a thread that then locks: the word
/// shows the caller's own TID, but not its nonce. It must be told OwnerDead
/// (a dead thread held the lock), not EDEADLK and not a hang.
///
/// Real reuse needs `ns_last_pid` (root in the PID namespace). Without it
/// the test builds the same state directly: the word holds the caller's
/// TID with another thread's nonce, which is exactly what reuse leaves.
#[test]
fn r28_tid_reuse_by_next_locker() {
    let ar = arena();
    let mut real = false;
    for _ in 0..20 {
        let c = fork(|| locker_dies_holding(&ar));
        let dead = c.pid;
        assert_eq!(c.wait(LIMIT), Exit::Signal(libc::SIGKILL));
        if !set_next_pid(dead) {
            break;
        }
        let reuse = fork(|| {
            // SAFETY: getpid has no preconditions.
            if unsafe { libc::getpid() } != dead {
                return code::BUSY; // someone else took the PID: retry
            }
            lock_code(&ar.m.lock_with(&FailKernel::plain(), None))
        });
        match reuse.wait(LIMIT) {
            Exit::Code(code::BUSY) => {
                // Not reused: recover the lock and try again.
                assert_eq!(parent_lock(&ar), Acquired::OwnerDead);
                continue;
            }
            other => {
                assert_eq!(other, Exit::Code(code::OWNER_DEAD), "reused TID {dead}");
                real = true;
                break;
            }
        }
    }
    if !real {
        eprintln!("r28: ns_last_pid not writable here; building the reuse state directly");
        let c = fork(|| {
            let me = Linux.me().unwrap();
            ar.m.fake_owner_for_tests(me.tid, me.nonce ^ 0x5a5a);
            lock_code(&ar.m.lock_with(&FailKernel::plain(), None))
        });
        assert_eq!(c.wait(LIMIT), Exit::Code(code::OWNER_DEAD));
    }
}

fn locker_dies_holding(ar: &Arena) -> i32 {
    let _ =
        ar.m.lock_with(&FailKernel::kill_at(Point::AfterLockCas), None);
    code::OTHER
}

/// R33: unlock and consistent by a non-owner (another process, another
/// thread) fail with NotOwner and change nothing.
#[test]
fn r33_unlock_by_non_owner() {
    let ar = arena();
    assert_eq!(ar.m.lock().unwrap(), Acquired::Consistent);
    let c = fork(|| code_of(ar.m.unlock(), |e| matches!(e, Error::NotOwner)));
    assert_eq!(c.wait(LIMIT), Exit::Code(code::CONSISTENT));
    let m = &ar.m;
    std::thread::scope(|s| {
        s.spawn(|| {
            assert!(matches!(m.unlock(), Err(Error::NotOwner)));
            assert!(matches!(m.consistent(), Err(Error::NotOwner)));
            assert!(matches!(m.try_lock(), Err(Error::WouldBlock)));
        });
    });
    // Still mine.
    assert!(matches!(ar.m.consistent(), Err(Error::NotInconsistent)));
    ar.m.unlock().unwrap();
}

/// R33: a fork child of a holder does not hold the lock: its unlock is
/// NotOwner, its try_lock WouldBlock (the parent is alive), and the parent
/// still holds and releases normally.
#[test]
fn r33_fork_while_holding() {
    let ar = arena();
    let h = fork(|| {
        if ar.m.lock().is_err() {
            return code::OTHER;
        }
        let g = fork(|| {
            let a = matches!(ar.m.unlock(), Err(Error::NotOwner));
            let b = matches!(ar.m.try_lock(), Err(Error::WouldBlock));
            if a && b {
                code::CONSISTENT
            } else {
                code::OTHER
            }
        });
        let e = g.wait(LIMIT);
        if e != Exit::Code(code::CONSISTENT) || ar.m.unlock().is_err() {
            return code::OTHER;
        }
        code::CONSISTENT
    });
    assert_eq!(h.wait(LIMIT), Exit::Code(code::CONSISTENT));
    assert_eq!(parent_lock(&ar), Acquired::Consistent);
}

/// Execs `/bin/sleep secs` (never returns).
fn exec_sleep(argv: &[std::ffi::CString]) -> ! {
    let ptrs: [*const libc::c_char; 3] = [argv[0].as_ptr(), argv[1].as_ptr(), std::ptr::null()];
    // SAFETY: NUL-terminated strings and a null-terminated argv that
    // outlive the call; on success execv does not return.
    unsafe { libc::execv(ptrs[0], ptrs.as_ptr()) };
    // SAFETY: exec failed; leave without unwinding.
    unsafe { libc::_exit(code::OTHER) }
}

fn sleep_argv(secs: &str) -> Option<Vec<std::ffi::CString>> {
    let path = ["/bin/sleep", "/usr/bin/sleep"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())?;
    Some(vec![
        std::ffi::CString::new(path).unwrap(),
        std::ffi::CString::new(secs).unwrap(),
    ])
}

/// R33: exec while holding, with a waiter queued: the kernel's exec path
/// releases the holder's PI state like exit does, so the waiter is handed
/// the lock with OwnerDead at once (long before the exec'd program ends).
#[test]
fn r33_exec_while_holding_with_waiter() {
    let argv = sleep_argv("30").expect("no sleep(1) binary");
    let ar = arena();
    let h = fork(|| holder_then(&ar, || exec_sleep(&argv)));
    wait_until(|| ar.held.load(Ordering::SeqCst) == 1);
    let t0 = Instant::now();
    let w = fork(|| lock_code(&ar.m.lock_with(&FailKernel::plain(), None)));
    eventually(LIMIT, "waiter blocked", || blocked_in_futex(w.pid));
    settle();
    ar.gate.store(1, Ordering::SeqCst);
    assert_eq!(w.wait(LIMIT), Exit::Code(code::OWNER_DEAD));
    assert!(
        t0.elapsed() < Duration::from_secs(25),
        "waiter woke only at exit"
    );
    h.kill();
}

/// R33: exec while holding, nobody waiting: the TID stays alive in the new
/// program, so the lock stays held (WouldBlock) until that program exits;
/// then the next locker is told OwnerDead.
#[test]
fn r33_exec_while_holding_uncontended() {
    // 2 s, not less: the parent's try_lock must come before the exec'd
    // sleep exits, also under qemu-user on a loaded machine (0.3 s was
    // missed there once).
    let argv = sleep_argv("2").expect("no sleep(1) binary");
    let ar = arena();
    let h = fork(|| holder_then(&ar, || exec_sleep(&argv)));
    wait_until(|| ar.held.load(Ordering::SeqCst) == 1);
    ar.gate.store(1, Ordering::SeqCst);
    // The exec'd sleep still has the holder's TID: busy.
    assert!(matches!(ar.m.try_lock(), Err(Error::WouldBlock)));
    assert_eq!(h.wait(LIMIT), Exit::Code(0));
    assert_eq!(ar.m.try_lock().unwrap(), Acquired::OwnerDead);
    ar.m.consistent().unwrap();
    ar.m.unlock().unwrap();
}

fn holder_then(ar: &Arena, then: impl FnOnce() -> i32) -> i32 {
    if ar.m.lock_with(&FailKernel::plain(), None).is_err() {
        return code::OTHER;
    }
    ar.held.store(1, Ordering::SeqCst);
    while ar.gate.load(Ordering::SeqCst) == 0 {
        std::thread::yield_now();
    }
    then()
}

fn wait_until(mut f: impl FnMut() -> bool) {
    eventually(LIMIT, "condition", &mut f);
}

/// R33: a mutex from another PID namespace is refused (TIDs would be
/// misread, and a live owner judged dead). With privileges the test uses a
/// real new namespace; without, a mutex stamped with another namespace id.
#[test]
fn r33_foreign_pid_namespace_refused() {
    let ar = arena();
    let c = fork(|| {
        // SAFETY: unshare affects only this (single-threaded) child and
        // its future children.
        if unsafe { libc::unshare(libc::CLONE_NEWPID) } != 0 {
            return code::BUSY;
        }
        let g = fork(|| match ar.m.lock() {
            Err(Error::ForeignNamespace) => code::CONSISTENT,
            other => lock_code(&other),
        });
        match g.wait(LIMIT) {
            Exit::Code(c) => c,
            Exit::Signal(_) => code::OTHER,
        }
    });
    match c.wait(LIMIT) {
        Exit::Code(code::BUSY) => {
            eprintln!("r33: unshare(CLONE_NEWPID) not permitted; stamped mutex instead")
        }
        other => assert_eq!(other, Exit::Code(code::CONSISTENT)),
    }
    let foreign = RawRobustMutex::with_namespace(Linux.me().unwrap().ns ^ 1);
    assert!(matches!(foreign.lock(), Err(Error::ForeignNamespace)));
    assert!(matches!(foreign.unlock(), Err(Error::ForeignNamespace)));
    // The namespace was not touched by the refused calls.
    assert_eq!(foreign.lock().err().map(|e| e.errno()), Some(libc::EXDEV));
}

/// Uninitialised (zeroed) memory is refused by every operation, and
/// consistent() on a consistent mutex is refused.
#[test]
fn uninitialised_and_misuse_refused() {
    // SAFETY: all-zero bytes are a valid value of the mapped type (atomics,
    // a raw mutex before `init`, a zeroed `pthread_mutex_t`).
    let z: Shm<RawRobustMutex> = unsafe { Shm::zeroed() };
    assert!(matches!(z.lock(), Err(Error::Uninitialized)));
    assert!(matches!(z.try_lock(), Err(Error::Uninitialized)));
    assert!(matches!(z.unlock(), Err(Error::Uninitialized)));
    assert!(matches!(z.consistent(), Err(Error::Uninitialized)));
    let m = RawRobustMutex::new().unwrap();
    assert_eq!(m.lock().unwrap(), Acquired::Consistent);
    assert!(matches!(m.consistent(), Err(Error::NotInconsistent)));
    m.unlock().unwrap();
    assert!(matches!(m.consistent(), Err(Error::NotOwner)));
    assert!(m.lock_until_monotonic(0, 1_000_000_000).is_err());
}

/// try_lock recovers a dead owner (OwnerDead) but refuses a live one.
#[test]
fn try_lock_dead_vs_live_owner() {
    let ar = arena();
    owner_dies_uncontended(&ar);
    assert_eq!(ar.m.try_lock().unwrap(), Acquired::OwnerDead);
    ar.m.consistent().unwrap();
    ar.m.unlock().unwrap();
    let stamp = AtomicU64::new(0);
    let _ = &stamp;
    let h = fork(|| holder_then(&ar, || code::OTHER));
    wait_until(|| ar.held.load(Ordering::SeqCst) == 1);
    assert!(matches!(ar.m.try_lock(), Err(Error::WouldBlock)));
    h.kill();
    let _ = h.wait(LIMIT);
    assert_eq!(ar.m.try_lock().unwrap(), Acquired::OwnerDead);
}
