//! Misuse hazards of the runner pool, the deadline timer and the runner
//! set: extreme configuration values and forged tokens (H2–H5 in
//! `docs/races.md`). Each test failed on the code before its fix; the
//! entries say how.
//!
//! These tests share the process-wide timer and global pool on purpose:
//! the hazard was that one bad value broke deadlines for everybody.

mod support;

use hangsafe::nexus::{RunnerSet, Token};
use hangsafe::runner::{Builder, Ctx, Pool, RunError, Runner, State};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Barrier};
use std::time::{Duration, Instant};

/// Generous: these are liveness checks on a loaded machine.
const LIMIT: Duration = Duration::from_secs(20);

/// Work that runs until it is cancelled (or `LIMIT` passes, so a broken
/// build fails instead of hanging); returns whether it saw the cancel.
fn until_cancelled(ctx: &Ctx<'_>) -> bool {
    let end = Instant::now() + LIMIT;
    while Instant::now() < end {
        if ctx.is_cancelled() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    false
}

/// A runner on the global pool with a 50 ms deadline, which nobody polls:
/// only the timer thread can cancel it. Returns whether the work saw the
/// cancel (within `LIMIT`).
fn global_deadline_is_enforced() -> bool {
    let (tx, rx) = mpsc::channel();
    let r = Builder::new()
        .timeout(Duration::from_millis(50))
        .spawn(move |ctx| {
            let _ = tx.send(until_cancelled(ctx));
        })
        .expect("spawn on the global pool");
    // No `wait`/`check` here: they would apply the deadline themselves.
    let seen = rx.recv_timeout(LIMIT + LIMIT).unwrap_or(false);
    drop(r);
    seen
}

/// H2: `abandon_after(Duration::MAX)` made `now + grace` overflow in the
/// timer thread (which then died: no deadline in the process was enforced
/// any more) and in the caller's `cancel()`/`drop`.
#[test]
fn h2_abandon_after_max_keeps_deadlines_enforced() {
    let pool = Pool::builder().abandon_after(Duration::MAX).build();
    // The timer fires this runner's deadline, then arms its abandon check.
    let r = Builder::new()
        .pool(&pool)
        .timeout(Duration::from_millis(20))
        .spawn(until_cancelled)
        .unwrap();
    let out = catch_unwind(AssertUnwindSafe(|| r.wait()));
    assert_eq!(out.ok(), Some(Err(RunError::TimedOut)));
    // Every other deadline in the process is still enforced by the timer.
    assert!(
        global_deadline_is_enforced(),
        "the timer thread no longer enforces deadlines"
    );
}

/// H2: the same overflow on the caller's thread, in `cancel()` and in
/// `drop` (where a panic during unwinding aborts the process).
#[test]
fn h2_abandon_after_max_cancel_and_drop_do_not_panic() {
    let pool = Pool::builder().abandon_after(Duration::MAX).build();
    let r = pool.spawn(until_cancelled).unwrap();
    let st = catch_unwind(AssertUnwindSafe(|| r.cancel()));
    assert_eq!(st.ok(), Some(State::Cancelled));
    let out = catch_unwind(AssertUnwindSafe(move || r.wait()));
    assert_eq!(out.ok(), Some(Err(RunError::Cancelled)));
    let r = pool.spawn(until_cancelled).unwrap();
    assert!(catch_unwind(AssertUnwindSafe(move || drop(r))).is_ok());
    // "Never abandoned": the cancelled work returned, nothing was counted.
    assert!(support::eventually(LIMIT, || pool
        .metrics()
        .threads_running
        == 0));
    assert_eq!(pool.metrics().abandoned_total, 0);
}

/// H3: `idle_timeout(Duration::MAX)` made `start + idle_timeout` panic in
/// the worker after its first job, while it was on the idle stack: the next
/// spawn handed its job to a dead thread and returned `Ok`.
#[test]
fn h3_idle_timeout_max_worker_keeps_serving() {
    let pool = Pool::builder().idle_timeout(Duration::MAX).build();
    for i in 0..3u32 {
        let mut r = pool.spawn(move |_| i).unwrap();
        assert_eq!(r.wait_timeout(LIMIT), Some(Ok(i)), "job {i} never ran");
        // Let the worker get past its spin and into the timed park.
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(pool.metrics().threads_alive, 1, "{:?}", pool.metrics());
}

/// H3: the other extremes of the idle timeout still serve every job.
#[test]
fn h3_idle_timeout_zero_and_one_nanosecond() {
    for d in [Duration::ZERO, Duration::from_nanos(1)] {
        let pool = Pool::builder().idle_timeout(d).build();
        for i in 0..3u32 {
            let mut r = pool.spawn(move |_| i).unwrap();
            assert_eq!(r.wait_timeout(LIMIT), Some(Ok(i)), "{d:?}: job {i}");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(support::eventually(LIMIT, || pool.metrics().threads_alive == 0));
    }
}

/// H4: releasing the token a concurrent `spawn` is about to return (known
/// in advance: tokens are predictable) removed the reserved slot, and the
/// spawn then panicked on its `expect("reserved")`.
#[test]
fn h4_release_of_unissued_token_races_spawn() {
    let set = Arc::new(RunnerSet::<u32>::new().unwrap());
    let mut early = 0u32;
    for round in 0..500u32 {
        // The slot the next spawn reuses, and its next generation.
        let t = set.spawn(Builder::new(), |_| 0).unwrap();
        assert!(set.release(t));
        let next = Token::from_parts(t.index(), t.generation() + 1).unwrap();
        let go = Arc::new(Barrier::new(2));
        let done = Arc::new(AtomicBool::new(false));
        let releaser = {
            let (set, go, done) = (Arc::clone(&set), Arc::clone(&go), Arc::clone(&done));
            std::thread::spawn(move || {
                go.wait();
                let mut n = 0u32;
                while !done.load(Ordering::Acquire) {
                    if !set.release(next) {
                        n += 1;
                    }
                }
                n
            })
        };
        go.wait();
        let spawned = catch_unwind(AssertUnwindSafe(|| {
            set.spawn(Builder::new(), move |_| round)
        }));
        done.store(true, Ordering::Release);
        early += releaser.join().expect("release never panics");
        let token = spawned
            .expect("spawn never panics")
            .expect("spawn succeeds");
        assert_eq!(token, next, "round {round}");
        // Released after it was issued (fine), or still there.
        set.release(token);
    }
    assert!(
        early > 0,
        "the releaser never ran before the spawn returned"
    );
    assert!(set.is_empty());
}

/// H4: a forged token (never issued, or of another set) is just stale.
#[test]
fn h4_forged_tokens_are_stale() {
    let set = RunnerSet::<u32>::new().unwrap();
    for t in [
        Token::from_parts(0, 1),
        Token::from_parts(7, 3),
        Token::from_parts(u32::MAX, u32::MAX),
    ]
    .into_iter()
    .flatten()
    {
        assert!(!set.release(t));
        assert_eq!(set.cancel(t), None);
        assert_eq!(set.state(t), None);
        assert!(!set.contains(t));
    }
    let t = set.spawn(Builder::new(), |_| 1).unwrap();
    assert_eq!(
        set.state(Token::from_parts(t.index(), t.generation() + 1).unwrap()),
        None
    );
    assert!(set.release(t));
}

/// H5: limits out of range were an `assert!` in the registry (a panic in
/// the caller for a value it passed); they are a typed error now.
#[test]
fn h5_runner_set_bad_limits_are_typed_errors() {
    for (g, s) in [
        (0, 1),
        (1, 0),
        (0, 0),
        (1, u32::MAX as usize + 2),
        (0, usize::MAX),
    ] {
        let r = catch_unwind(|| RunnerSet::<u32>::with_limits(g, s).map(drop));
        let err = r.expect("no panic").expect_err("refused");
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{g} {s}");
    }
    let set = RunnerSet::<u32>::with_limits(1, 1).unwrap();
    let t = set.spawn(Builder::new(), |_| 1).unwrap();
    assert!(set.release(t));
}

/// H5: a pool name with a NUL byte made the standard library panic when
/// the pool created its first thread (thread names are C strings).
#[test]
fn h5_pool_name_with_nul_does_not_panic() {
    let pool = Pool::builder().name("disk\0probe").build();
    let r = catch_unwind(AssertUnwindSafe(|| pool.spawn(|_| 5).map(Runner::wait)));
    match r.expect("no panic") {
        Err(hangsafe::runner::SpawnError::ThreadCreate(e)) => {
            assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput, "{e}")
        }
        other => panic!("a NUL in the pool name must be a loud error: {other:?}"),
    }
}

/// R53: the value of a `Done` runner whose handle is dropped was dropped by
/// whoever released the context's last reference. Here that is a
/// `CancelToken` the work handed out; in the library it can be the timer
/// thread firing an entry or compacting under its lock, where a value's
/// destructor (user code, possibly blocking) would stall every deadline.
#[test]
fn r53_value_is_dropped_by_the_handle_not_the_last_reference() {
    struct Noisy(mpsc::Sender<String>);
    impl Drop for Noisy {
        fn drop(&mut self) {
            let me = std::thread::current().name().unwrap_or("?").to_owned();
            let _ = self.0.send(me);
        }
    }
    let (tx, rx) = mpsc::channel();
    let (tok_tx, tok_rx) = mpsc::channel();
    let r = hangsafe::runner::spawn(move |ctx| {
        tok_tx.send(ctx.token()).unwrap();
        Noisy(tx)
    })
    .unwrap();
    let token = tok_rx.recv().unwrap();
    assert!(support::eventually(LIMIT, || r.is_finished()));
    let here = std::thread::current().name().unwrap_or("?").to_owned();
    drop(r);
    // The token still references the context; the value is gone anyway,
    // dropped on this thread.
    assert_eq!(rx.try_recv().ok(), Some(here));
    drop(token);
}
