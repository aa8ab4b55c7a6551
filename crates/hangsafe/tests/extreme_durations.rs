//! Property tests: every `Duration`/`Instant` knob a caller controls (and
//! the pool's other knobs) takes any value (0, 1 ns, `Duration::MAX`,
//! random) without a panic, and
//! deadlines elsewhere in the process stay enforced afterwards (H2, H3,
//! H5 in `docs/races.md`).

use hangsafe::nexus::RunnerSet;
use hangsafe::robust::SharedRegion;
use hangsafe::runner::{Builder, Ctx, Pool, RunError, Runner, SpawnError};
use proptest::prelude::*;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Generous: liveness, not timing, on a loaded machine.
const LIMIT: Duration = Duration::from_secs(20);

/// Any duration, with the edges that break arithmetic weighted in.
fn any_duration() -> impl Strategy<Value = Duration> {
    prop_oneof![
        Just(Duration::ZERO),
        Just(Duration::from_nanos(1)),
        Just(Duration::MAX),
        Just(Duration::from_secs(i64::MAX as u64)),
        Just(Duration::from_secs(u64::MAX / 2)),
        (0u64..5_000_000).prop_map(Duration::from_nanos),
        (any::<u64>(), 0u32..1_000_000_000).prop_map(|(s, n)| Duration::new(s, n)),
    ]
}

/// A duration short enough to wait for in a test.
fn short_duration() -> impl Strategy<Value = Duration> {
    prop_oneof![
        Just(Duration::ZERO),
        Just(Duration::from_nanos(1)),
        (0u64..20_000_000).prop_map(Duration::from_nanos),
    ]
}

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

/// Spawns, retrying while a small pool is busy with earlier work that was
/// cancelled but has not returned yet (`PoolFull`, `TooManyAbandoned`:
/// typed refusals, not failures).
fn spawn<T: Send + 'static>(
    b: Builder,
    f: impl FnOnce(&Ctx<'_>) -> T + Send + Clone + 'static,
) -> Runner<T> {
    let end = Instant::now() + LIMIT;
    loop {
        match b.clone().spawn(f.clone()) {
            Ok(r) => return r,
            Err(SpawnError::PoolFull { .. } | SpawnError::TooManyAbandoned { .. })
                if Instant::now() < end =>
            {
                std::thread::sleep(Duration::from_millis(1))
            }
            Err(e) => panic!("spawn: {e}"),
        }
    }
}

/// A runner on `pool` (or the global pool) with a 30 ms deadline that
/// nobody polls: only the timer can cancel it.
fn deadline_enforced(pool: Option<&Pool>) -> bool {
    let (tx, rx) = mpsc::channel();
    let mut b = Builder::new().timeout(Duration::from_millis(30));
    if let Some(p) = pool {
        b = b.pool(p);
    }
    let r = spawn(b, move |ctx| {
        let _ = tx.send(until_cancelled(ctx));
    });
    let seen = rx.recv_timeout(LIMIT + LIMIT).unwrap_or(false);
    drop(r);
    seen
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 48,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    /// H2/H3: any pool configuration, then spawn, cancel, drop and wait
    /// on it: nothing panics, the pool's and the process's deadlines hold.
    #[test]
    fn h2_h3_pool_builder_takes_any_duration(
        idle in any_duration(),
        grace in any_duration(),
        timeout in any_duration(),
        wait in any_duration(),
        max_threads in prop_oneof![Just(0usize), Just(1), Just(usize::MAX), 1usize..64],
        max_abandoned in prop_oneof![Just(0usize), Just(usize::MAX), 0usize..8],
        stack in prop_oneof![Just(0usize), Just(usize::MAX), Just(isize::MAX as usize), 0usize..(1 << 20)],
        name in prop_oneof![Just(String::new()), Just(String::from("a\0b")), ".{0,40}"],
    ) {
        let pool = Pool::builder()
            .stack_size(stack)
            .name(name.clone())
            .idle_timeout(idle)
            .abandon_after(grace)
            .max_threads(max_threads)
            .max_abandoned(max_abandoned)
            .build();
        if stack > 1 << 40 || name.contains('\0') {
            // No such stack can be mapped, and no thread can be named with
            // a NUL byte: a typed refusal, not a panic.
            let r = catch_unwind(AssertUnwindSafe(|| pool.spawn(|_| ()).map(drop)));
            prop_assert!(r.is_ok(), "panicked");
            prop_assert!(matches!(r.unwrap(), Err(SpawnError::ThreadCreate(_))));
            prop_assert!(deadline_enforced(None), "the global pool's deadlines");
            return Ok(());
        }
        let out = catch_unwind(AssertUnwindSafe(|| {
            // A job that returns at once: `wait_timeout(any)` ends quickly.
            let mut r = spawn(Builder::new().pool(&pool).timeout(timeout), |_| 7u32);
            // Decided either by the first or by a bounded second wait.
            let outcome = match r.wait_timeout(wait) {
                Some(o) => Some(o),
                None => r.wait_timeout(LIMIT),
            };
            prop_assert!(
                matches!(outcome, Some(Ok(7)) | Some(Err(RunError::TimedOut))),
                "{outcome:?}"
            );
            // Cancel and drop running work: arms the abandon check.
            let r = spawn(Builder::new().pool(&pool), until_cancelled);
            r.cancel();
            drop(r);
            drop(spawn(Builder::new().pool(&pool), until_cancelled));
            Ok(())
        }));
        prop_assert!(out.is_ok(), "panicked");
        out.unwrap()?;
        prop_assert!(deadline_enforced(Some(&pool)), "this pool's deadlines");
        prop_assert!(deadline_enforced(None), "the global pool's deadlines");
    }

    /// H2: any deadline in a `RunnerSet`, and its poll-loop helpers.
    #[test]
    fn h2_runner_set_takes_any_deadline(timeout in any_duration(), at in any_duration()) {
        let out = catch_unwind(AssertUnwindSafe(|| {
            let set = RunnerSet::<u32>::new().unwrap();
            let a = set.spawn(Builder::new().timeout(timeout), |_| 1).unwrap();
            let deadline = Instant::now().checked_add(at).unwrap_or_else(Instant::now);
            let b = set.spawn(Builder::new().deadline(deadline), |_| 2).unwrap();
            let _ = set.poll_timeout();
            let _ = set.next_deadline();
            let mut seen = 0;
            let end = Instant::now() + LIMIT;
            while seen < 2 && Instant::now() < end {
                seen += set.drain().unwrap().count();
                std::thread::sleep(Duration::from_millis(1));
            }
            (seen, set.release(a), set.release(b))
        }));
        prop_assert!(out.is_ok(), "panicked");
        prop_assert_eq!(out.unwrap(), (2, false, false));
    }

    /// H2: cancellable waits with any timeout inside a runner whose short
    /// deadline interrupts them; `wait_timeout(any)` on a finished runner.
    #[test]
    fn h2_cancellable_waits_take_any_timeout(d in any_duration(), w in any_duration()) {
        let r = Builder::new()
            .timeout(Duration::from_millis(10))
            .spawn(move |_| {
                let slept = hangsafe::cancel::sleep(d);
                let polled = hangsafe::cancel::poll(&mut [], Some(d));
                (slept.is_ok(), polled.is_ok())
            })
            .unwrap();
        let out = catch_unwind(AssertUnwindSafe(move || {
            let mut r = r;
            r.wait_timeout(w).or_else(|| r.wait_timeout(LIMIT))
        }));
        prop_assert!(out.is_ok(), "panicked");
        prop_assert!(out.unwrap().is_some(), "the deadline did not interrupt the wait");
    }

    /// H2: a robust mutex's timed lock with any timeout or deadline, free
    /// (any value) and contended (short values).
    #[test]
    fn h2_robust_timed_lock_takes_any_duration(d in any_duration(), short in short_duration()) {
        let region = SharedRegion::anonymous(0u64).unwrap();
        let m = region.mutex();
        let out = catch_unwind(AssertUnwindSafe(|| {
            drop(m.lock_timeout(d).map_err(|_| ()).expect("a free lock is taken"));
            let until = Instant::now().checked_add(d).unwrap_or_else(Instant::now);
            drop(m.lock_until(until).map_err(|_| ()).expect("a free lock is taken"));
            let held = m.lock().map_err(|_| ()).unwrap();
            std::thread::scope(|s| {
                s.spawn(|| assert!(m.lock_timeout(short).is_err(), "held elsewhere"));
            });
            drop(held);
        }));
        prop_assert!(out.is_ok(), "panicked");
    }
}
