//! H6 (`docs/races.md`): a guard leaked by a thread that then exits
//! must not let another thread take the lock over while a reference into
//! the data, lent by that guard, is still alive.
//!
//! Safe code can do it: leak the guard (`Box::leak`), derive a `&'static T`
//! from it, send that to another thread (`&T: Send` for `T: Sync`), and let
//! the locking thread exit. A dead owner's lock is taken over (`ESRCH`,
//! `OwnerDead`), so without protection a new guard's `&mut T` and the old
//! `&T` would alias: a data race in safe code.
//!
//! A separate test binary: the leaking thread is kept alive forever on
//! purpose (that is the fix), which nothing else should share.

use hangsafe::robust::{LockError, RobustMutexGuard, SharedRegion};
use std::sync::mpsc;
use std::time::Duration;

#[test]
fn h6_leaked_guard_of_an_exited_thread_is_never_taken_over() {
    let region: &'static SharedRegion<u64> =
        Box::leak(Box::new(SharedRegion::anonymous(7u64).unwrap()));
    let (tx, rx) = mpsc::channel::<&'static u64>();
    let (done_tx, done_rx) = mpsc::channel::<()>();
    std::thread::spawn(move || {
        let guard = region.lock().map_err(|_| ()).unwrap();
        let guard: &'static RobustMutexGuard<'static, u64> = Box::leak(Box::new(guard));
        tx.send(&**guard).unwrap();
        // Tell the test the thread is about to exit (a join would block
        // forever once the fix keeps the thread alive).
        done_tx.send(()).unwrap();
    });
    let shared: &'static u64 = rx.recv().unwrap();
    done_rx.recv().unwrap();
    // Give the thread every chance to have exited.
    std::thread::sleep(Duration::from_millis(200));
    for _ in 0..5 {
        match region.mutex().try_lock() {
            Err(LockError::WouldBlock) => {}
            Ok(mut g) => {
                *g = 99;
                panic!("lock taken over while a &u64 into the data lives ({shared})");
            }
            Err(LockError::OwnerDead(g)) => {
                let mut g = g.into_guard();
                *g = 99;
                panic!("owner-dead take-over while a &u64 into the data lives ({shared})");
            }
            Err(e) => panic!("unexpected: {e:?}"),
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(*shared, 7);
    // A timed lock times out: the lock is held for good, as a leaked
    // `std::sync::MutexGuard` keeps a `Mutex` locked.
    assert!(matches!(
        region.mutex().lock_timeout(Duration::from_millis(50)),
        Err(LockError::TimedOut)
    ));
}
