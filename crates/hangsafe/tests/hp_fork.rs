//! H7–H9: a forked child gets a working pool, timer and key set.
//!
//! Each test forks: the parent has used the pool (so idle threads and the
//! timer thread exist in the parent only) and the child must still run
//! work, enforce deadlines, and accept keys that only parent runners held.

mod hp;

use hangsafe::runner::{Builder, Pool, RunError, State};
use hp::{eventually, in_child, Ended};
use std::time::Duration;

/// The children here end through `exec` (clean under valgrind); under
/// qemu-user the host cannot exec the foreign binary (exit 127). The fork
/// handlers' logic does not depend on the architecture and runs natively.
fn skipped_under_emulation() -> bool {
    let skip = std::env::var_os("HANGSAFE_UNDER_EMULATION").is_some();
    if skip {
        eprintln!("skipped under emulation: the fork child cannot exec there");
    }
    skip
}

/// Makes the pool leave at least one idle thread behind, and starts the
/// timer (a runner with a deadline).
fn warm(pool: &Pool) {
    let r = Builder::new()
        .pool(pool)
        .timeout(Duration::from_secs(30))
        .spawn(|_| 7)
        .unwrap();
    assert_eq!(r.wait(), Ok(7));
    assert!(eventually(Duration::from_secs(10), || pool
        .metrics()
        .threads_idle
        >= 1));
}

/// H7: in the child, a spawn runs its work on a thread of the child (not
/// on an idle thread that exists only in the parent), and the pool's
/// counters show no thread of the parent.
#[test]
fn h7_fork_child_runs_work_on_its_own_threads() {
    if skipped_under_emulation() {
        return;
    }
    for pool in [Pool::global().clone(), Pool::builder().name("h7").build()] {
        warm(&pool);
        let end = in_child(Duration::from_secs(60), || {
            let m = pool.metrics();
            let fresh = m.threads_idle == 0 && m.threads_alive == 0;
            let mut r = Builder::new().pool(&pool).spawn(|_| 42).unwrap();
            match r.wait_timeout(Duration::from_secs(10)) {
                Some(Ok(42)) => {}
                None => return 3, // the job never ran
                Some(_) => return 4,
            }
            // And again, now on the child's own idle thread.
            let mut r = Builder::new().pool(&pool).spawn(|_| 43).unwrap();
            match r.wait_timeout(Duration::from_secs(10)) {
                Some(Ok(43)) if fresh => 0,
                Some(Ok(43)) => 2, // counters still show parent threads
                _ => 5,
            }
        });
        assert_eq!(end, Ended::Code(0));
    }
}

/// H8: in the child, the deadline timer runs again: a runner whose work
/// only stops when cancelled is cancelled at its deadline without anyone
/// calling `check()`.
#[test]
fn h8_fork_child_enforces_deadlines() {
    if skipped_under_emulation() {
        return;
    }
    let pool = Pool::builder().name("h8").build();
    warm(&pool);
    let end = in_child(Duration::from_secs(60), || {
        let r = Builder::new()
            .pool(&pool)
            .timeout(Duration::from_millis(100))
            .spawn(|ctx| {
                let end = std::time::Instant::now() + Duration::from_secs(20);
                while !ctx.is_cancelled() && std::time::Instant::now() < end {
                    std::thread::sleep(Duration::from_millis(1));
                }
            })
            .unwrap();
        // `state()` has no side effects: only the timer can cancel it.
        if !eventually(Duration::from_secs(10), || r.state() != State::Running) {
            return 3;
        }
        if !eventually(Duration::from_secs(10), || r.is_finished()) {
            return 4;
        }
        match r.wait() {
            Err(RunError::TimedOut) => 0,
            _ => 5,
        }
    });
    assert_eq!(end, Ended::Code(0));
}

/// H9: a key held by a runner whose work runs only in the parent is free
/// in the child (that work will never finish there).
#[test]
fn h9_fork_child_key_sets_are_fresh() {
    if skipped_under_emulation() {
        return;
    }
    let pool = Pool::builder().name("h9").build();
    let (rd, _wr) = hp::pipe();
    let parent = Builder::new()
        .pool(&pool)
        .key("sda")
        .spawn(move |_| {
            let mut b = [0u8; 1];
            let _ = hangsafe::cancel::read(&rd, &mut b);
        })
        .unwrap();
    let end = in_child(Duration::from_secs(60), || {
        let mut r = match Builder::new().pool(&pool).key("sda").spawn(|_| 1) {
            Ok(r) => r,
            Err(_) => return 2,
        };
        match r.wait_timeout(Duration::from_secs(10)) {
            Some(Ok(1)) => 0,
            _ => 3,
        }
    });
    drop(parent);
    assert_eq!(end, Ended::Code(0));
}

/// H7, work that forks: the child continues on its copy of the pool
/// thread, which is not counted there and does not rejoin the child's pool
/// after its job; the child can spawn (on a thread of its own) even though
/// the parent had another idle thread at the fork.
#[test]
fn h7_fork_from_inside_work_child_can_spawn() {
    let pool = Pool::builder().name("h7w").build();
    // Two idle threads: the forking work takes one, the other stays idle
    // in the parent.
    let a = pool
        .spawn(|_| std::thread::sleep(Duration::from_millis(50)))
        .unwrap();
    let b = pool
        .spawn(|_| std::thread::sleep(Duration::from_millis(50)))
        .unwrap();
    assert_eq!((a.wait(), b.wait()), (Ok(()), Ok(())));
    assert!(eventually(Duration::from_secs(10), || pool
        .metrics()
        .threads_idle
        >= 2));
    let inner = pool.clone();
    let r = pool
        .spawn(move |_| {
            hp::in_child(Duration::from_secs(60), move || {
                let m = inner.metrics();
                if m.threads_alive != 0 || m.threads_idle != 0 {
                    return 2;
                }
                let mut r = Builder::new().pool(&inner).spawn(|_| 5).unwrap();
                match r.wait_timeout(Duration::from_secs(10)) {
                    Some(Ok(5)) => 0,
                    _ => 3,
                }
            })
        })
        .unwrap();
    assert_eq!(r.wait(), Ok(Ended::Code(0)));
}
