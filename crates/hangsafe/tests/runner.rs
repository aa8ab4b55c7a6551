//! Runner behaviour on real threads. Test names carry the race IDs of
//! `docs/races.md`; every timing bound is a generous liveness bound.

mod support;

use hangsafe::runner::{Builder, Pool, RunError, SpawnError, State};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};
use support::{await_no_live_contexts, eventually};

const LONG: Duration = Duration::from_secs(20);

fn pool() -> Pool {
    Pool::builder().idle_timeout(Duration::from_secs(5)).build()
}

/// Cooperative work that reports that it started, runs until cancelled,
/// then reports that it saw the cancel. (A runner cancelled before its
/// thread picks it up never runs its work: then the sender is dropped
/// unused, which tests must allow for.)
fn until_cancelled(
    events: mpsc::Sender<&'static str>,
) -> impl FnOnce(&hangsafe::runner::Ctx<'_>) + Send {
    move |ctx| {
        let _ = events.send("started");
        while !ctx.is_cancelled() {
            std::thread::sleep(Duration::from_millis(1));
        }
        let _ = events.send("saw cancel");
    }
}

#[test]
fn done_value_is_delivered_and_kept_until_taken() {
    let pool = pool();
    let r = pool.spawn(|_| vec![1u8, 2, 3]).unwrap();
    assert!(eventually(LONG, || r.check() == State::Done));
    assert_eq!(r.result(), Some(&vec![1, 2, 3]));
    assert_eq!(r.result(), Some(&vec![1, 2, 3]), "peek does not consume");
    assert!(r.is_finished());
    assert_eq!(r.wait(), Ok(vec![1, 2, 3]));
    await_no_live_contexts(&pool, LONG);
}

#[test]
fn panic_ends_dead_with_message_and_pool_survives() {
    let pool = Pool::builder().max_threads(1).build();
    let r = pool.spawn(|_| -> u8 { panic!("probe exploded") }).unwrap();
    assert_eq!(r.wait(), Err(RunError::Panicked("probe exploded".into())));
    // The single thread is still there and still works.
    assert_eq!(pool.spawn(|_| 5).unwrap().wait(), Ok(5));
    let m = pool.metrics();
    assert_eq!(m.runners_panicked, 1);
    assert_eq!(m.threads_alive, 1, "{m:?}");
}

/// R1: release before the thread starts. The work never runs, nothing
/// leaks, and the thread is not left spinning (multipath-tools 0.15.0's bug:
/// 200 get+release calls left 198 spinning threads).
#[test]
fn r1_release_before_start_leaks_nothing() {
    let pool = pool();
    let ran = Arc::new(AtomicU64::new(0));
    for _ in 0..500 {
        let ran = Arc::clone(&ran);
        let r = pool
            .spawn(move |_| {
                ran.fetch_add(1, Ordering::Relaxed);
            })
            .unwrap();
        drop(r);
    }
    await_no_live_contexts(&pool, LONG);
    assert!(eventually(LONG, || pool.metrics().threads_running == 0));
    let m = pool.metrics();
    // Every runner ended; none ran twice; those that never ran are Dead.
    let ran = ran.load(Ordering::Relaxed);
    assert_eq!(m.runners_done + m.runners_dead, 500, "{m:?}");
    assert!(m.runners_done <= ran && ran <= 500, "ran {ran}, {m:?}");
    // No thread is left running or spinning: every one is parked idle and
    // will retire (tests/idle.rs measures the CPU and the retirement). A
    // burst faster than thread start-up may create up to one thread per
    // spawn, never more.
    assert!(m.threads_alive <= 500, "{m:?}");
    assert!(
        eventually(LONG, || {
            let m = pool.metrics();
            m.threads_running == 0 && m.threads_idle == m.threads_alive
        }),
        "{:?}",
        pool.metrics()
    );
}

/// R2: completion and an explicit cancel race; exactly one wins and the
/// outcome agrees with the state.
#[test]
fn r2_complete_vs_cancel() {
    let pool = pool();
    let (mut done, mut cancelled) = (0, 0);
    for i in 0..3000u64 {
        let r = pool.spawn(move |_| i * 2).unwrap();
        if i % 3 == 0 {
            std::hint::spin_loop();
        }
        let st = r.cancel();
        match (st, r.wait()) {
            (State::Done, Ok(v)) => {
                assert_eq!(v, i * 2);
                done += 1;
            }
            (State::Cancelled, Err(RunError::Cancelled)) => cancelled += 1,
            (st, out) => panic!("inconsistent: cancel returned {st:?}, outcome {out:?}"),
        }
    }
    assert_eq!(done + cancelled, 3000);
    await_no_live_contexts(&pool, LONG);
    let m = pool.metrics();
    assert_eq!(m.runners_cancelled, cancelled, "{m:?}");
    assert_eq!(m.runners_done, done, "{m:?}");
}

/// R3: completion and release race; nothing leaks.
#[test]
fn r3_complete_vs_release() {
    let pool = pool();
    for i in 0..3000u64 {
        let r = pool.spawn(move |_| vec![i; 4]).unwrap();
        if i % 2 == 0 {
            std::thread::yield_now();
        }
        drop(r);
    }
    await_no_live_contexts(&pool, LONG);
}

/// R4: the deadline is enforced proactively by the timer: nobody calls
/// `check()`, and the work still sees the cancel. (Retried if, under heavy
/// load, the deadline passed before the work even started.)
#[test]
fn r4_deadline_enforced_without_check() {
    let pool = pool();
    for attempt in 0..20 {
        let (tx, rx) = mpsc::channel();
        let r = Builder::new()
            .pool(&pool)
            .timeout(Duration::from_millis(100))
            .spawn(until_cancelled(tx))
            .unwrap();
        if rx.recv_timeout(LONG) != Ok("started") {
            assert_eq!(r.wait(), Err(RunError::TimedOut));
            eprintln!("attempt {attempt}: cancelled before start; retrying");
            continue;
        }
        assert_eq!(
            rx.recv_timeout(LONG),
            Ok("saw cancel"),
            "work never saw its deadline"
        );
        assert!(eventually(LONG, || r.state() == State::Dead));
        assert_eq!(r.wait(), Err(RunError::TimedOut));
        return;
    }
    panic!("the work never started before its 100 ms deadline in 20 attempts");
}

/// R4: `check()` applies the deadline lazily, as multipath-tools' runner does, and a
/// deadline that already passed cancels at once.
#[test]
fn r4_check_applies_deadline() {
    let pool = pool();
    let (tx, _rx) = mpsc::channel();
    let r = Builder::new()
        .pool(&pool)
        .deadline(Instant::now() - Duration::from_millis(1))
        .spawn(until_cancelled(tx))
        .unwrap();
    let st = r.check();
    assert!(matches!(st, State::Cancelled | State::Dead), "{st:?}");
    assert_eq!(r.wait(), Err(RunError::TimedOut));
}

/// R4: runners finishing just before or just after their deadline, polled
/// with `check()` while the timer fires too: the state and the outcome
/// always agree.
#[test]
fn r4_deadline_vs_completion_agree() {
    let pool = pool();
    for i in 0..300u64 {
        let r = Builder::new()
            .pool(&pool)
            .timeout(Duration::from_micros(500))
            .spawn(move |_| {
                std::thread::sleep(Duration::from_micros(300 + (i % 5) * 100));
                i
            })
            .unwrap();
        while r.check() == State::Running {
            std::thread::sleep(Duration::from_micros(50));
        }
        let st = r.state();
        match r.wait() {
            Ok(v) => {
                assert_eq!(v, i);
                assert_eq!(st, State::Done);
            }
            Err(RunError::TimedOut) => assert!(matches!(st, State::Cancelled | State::Dead)),
            Err(e) => panic!("{e}"),
        }
    }
    await_no_live_contexts(&pool, LONG);
}

/// R5: a pooled thread never acts on a cancel meant for an earlier job.
/// One thread. Job A runs a short random spin and is cancelled at a random
/// moment, while another thread starts job B on the same (single) thread
/// as soon as it is free. B must never see A's cancel. (The exact
/// interleaving is model-checked by `loom_r5_stale_cancel_on_reused_thread`;
/// this drives it on real threads.)
#[test]
fn r5_stale_cancel_on_reused_thread() {
    let pool = Pool::builder().max_threads(1).build();
    let (mut rng, seed) = support::Rng::from_env_or_time("HANGSAFE_SEED");
    let mut a_cancelled = 0;
    for _ in 0..2000 {
        let spin = rng.below(40);
        let a = pool
            .spawn(move |_| {
                let t = Instant::now();
                while t.elapsed() < Duration::from_micros(spin) {
                    std::hint::spin_loop();
                }
            })
            .unwrap();
        let p2 = pool.clone();
        let starter = std::thread::spawn(move || loop {
            match p2.spawn(|ctx| {
                for _ in 0..3 {
                    if ctx.is_cancelled() {
                        return true;
                    }
                    std::thread::yield_now();
                }
                ctx.is_cancelled()
            }) {
                Ok(b) => return b.wait(),
                Err(SpawnError::PoolFull { .. }) => std::hint::spin_loop(),
                Err(e) => panic!("{e}"),
            }
        });
        let wait = rng.below(40);
        let t = Instant::now();
        while t.elapsed() < Duration::from_micros(wait) {
            std::hint::spin_loop();
        }
        if a.cancel() == State::Cancelled {
            a_cancelled += 1;
        }
        assert_eq!(
            starter.join().unwrap(),
            Ok(false),
            "B saw A's cancel (seed {seed})"
        );
    }
    assert_eq!(pool.metrics().threads_alive, 1);
    eprintln!("r5: {a_cancelled}/2000 A runners cancelled while running (seed {seed})");
}

/// R6 and the abandonment rules: cancelled work that does not return is
/// abandoned after the grace period, counted, and capped; when it comes
/// back its thread returns to the pool.
#[test]
fn r6_abandoned_threads_are_counted_capped_and_recovered() {
    let pool = Pool::builder()
        .abandon_after(Duration::from_millis(10))
        .max_abandoned(2)
        .build();
    let release = Arc::new(AtomicBool::new(false));
    let stuck = |release: Arc<AtomicBool>| {
        move |_: &hangsafe::runner::Ctx<'_>| {
            // Ignores cancellation, as a thread stuck in the kernel would.
            while !release.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    };
    let (tx, started) = mpsc::channel();
    let spawn_stuck = |tx: mpsc::Sender<()>| {
        let stuck = stuck(Arc::clone(&release));
        pool.spawn(move |ctx| {
            tx.send(()).unwrap();
            stuck(ctx)
        })
        .unwrap()
    };
    let a = spawn_stuck(tx.clone());
    let b = spawn_stuck(tx);
    // Cancel only once both are running, so both are truly hung.
    started.recv_timeout(LONG).unwrap();
    started.recv_timeout(LONG).unwrap();
    assert_eq!(b.cancel(), State::Cancelled);
    drop(a); // released while hung: still counted
    assert!(
        eventually(LONG, || pool.metrics().threads_abandoned == 2),
        "{:?}",
        pool.metrics()
    );
    assert_eq!(b.state(), State::Cancelled);
    match pool.spawn(|_| ()) {
        Err(SpawnError::TooManyAbandoned { max_abandoned: 2 }) => {}
        other => panic!("expected TooManyAbandoned, got {other:?}"),
    }
    release.store(true, Ordering::SeqCst);
    assert!(eventually(LONG, || pool.metrics().threads_abandoned == 0));
    assert!(eventually(LONG, || b.state() == State::Dead));
    assert_eq!(b.wait(), Err(RunError::Cancelled));
    let m = pool.metrics();
    assert_eq!(m.abandoned_total, 2, "{m:?}");
    // The recovered threads are reused: no new thread for the next runner.
    assert!(eventually(LONG, || pool.metrics().threads_idle == 2));
    assert_eq!(pool.spawn(|_| 1).unwrap().wait(), Ok(1));
    assert_eq!(pool.metrics().threads_alive, 2);
}

/// A cap of 0 abandoned threads refuses work only while one is abandoned.
#[test]
fn max_abandoned_zero_still_runs_work() {
    let pool = Pool::builder().max_abandoned(0).build();
    assert_eq!(pool.spawn(|_| 3).unwrap().wait(), Ok(3));
}

/// The per-key rule, and R9: the key is free by the time the outcome is
/// visible, so a checker loop can respawn at once.
#[test]
fn r9_key_rule_and_immediate_respawn() {
    let pool = pool();
    let (tx, _rx) = mpsc::channel();
    let first = Builder::new()
        .pool(&pool)
        .key("sdb")
        .spawn(until_cancelled(tx))
        .unwrap();
    assert!(matches!(
        Builder::new().pool(&pool).key("sdb").spawn(|_| ()),
        Err(SpawnError::KeyBusy { ref key }) if key == "sdb"
    ));
    // Another key is unaffected.
    assert_eq!(
        Builder::new()
            .pool(&pool)
            .key("sdc")
            .spawn(|_| 1)
            .unwrap()
            .wait(),
        Ok(1)
    );
    drop(first);
    // The key frees as soon as the work returns (or at once if it never
    // started).
    assert!(eventually(LONG, || Builder::new()
        .pool(&pool)
        .key("sdb")
        .spawn(|_| ())
        .is_ok()));
    for i in 0..2000u32 {
        let r = Builder::new()
            .pool(&pool)
            .key("sdd")
            .spawn(move |_| i)
            .unwrap();
        assert_eq!(r.wait(), Ok(i));
    }
}

/// R11: an idle thread retiring at its idle timeout races a spawner that
/// pops it to hand over a job. The job must never be lost: either the
/// thread leaves the idle stack first (and the spawner creates another), or
/// it stays for the job.
#[test]
fn r11_idle_retire_vs_handoff() {
    let pool = Pool::builder()
        .idle_timeout(Duration::from_micros(300))
        .build();
    let (mut rng, seed) = support::Rng::from_env_or_time("HANGSAFE_SEED");
    for i in 0..1500u64 {
        // Spawn around the moment the previous thread's idle timeout (plus
        // its spin phase) expires.
        std::thread::sleep(Duration::from_micros(200 + rng.below(300)));
        let mut r = pool.spawn(move |_| i).unwrap();
        assert_eq!(r.wait_timeout(LONG), Some(Ok(i)), "job lost (seed {seed})");
    }
    assert!(eventually(LONG, || pool.metrics().threads_alive == 0));
}

#[test]
fn wait_timeout_then_result() {
    let pool = pool();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let mut r = pool
        .spawn(move |_| {
            go_rx.recv().unwrap();
            11
        })
        .unwrap();
    assert_eq!(r.wait_timeout(Duration::from_millis(20)), None);
    assert_eq!(r.state(), State::Running);
    go_tx.send(()).unwrap();
    assert_eq!(r.wait_timeout(LONG), Some(Ok(11)));
}

#[test]
fn runner_is_a_future() {
    let pool = pool();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let out = rt.block_on(async {
        let a = pool
            .spawn(|_| {
                std::thread::sleep(Duration::from_millis(5));
                1
            })
            .unwrap();
        let b = Builder::new()
            .pool(&pool)
            .timeout(Duration::from_millis(5))
            .spawn(|ctx| {
                while !ctx.is_cancelled() {
                    std::thread::sleep(Duration::from_millis(1));
                }
            })
            .unwrap();
        (a.await, b.await)
    });
    assert_eq!(out, (Ok(1), Err(RunError::TimedOut)));
}

#[test]
fn spawn_errors_are_typed_and_lose_nothing() {
    // An impossible stack size makes pthread_create fail.
    let pool = Pool::builder().stack_size(usize::MAX / 2).build();
    let dropped = Arc::new(AtomicBool::new(false));
    struct Flag(Arc<AtomicBool>);
    impl Drop for Flag {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }
    let flag = Flag(Arc::clone(&dropped));
    let err = pool
        .spawn(move |_| {
            let _keep = &flag;
        })
        .unwrap_err();
    assert!(matches!(err, SpawnError::ThreadCreate(_)), "{err}");
    assert!(
        dropped.load(Ordering::SeqCst),
        "the closure was dropped, not leaked"
    );
    let io: std::io::Error = err.into();
    assert!(std::error::Error::source(&io).is_some() || !io.to_string().is_empty());
    assert_eq!(pool.metrics().threads_alive, 0);
    assert_eq!(pool.metrics().live_contexts, 0);

    // max_threads: with the one thread busy, the next spawn is refused.
    let pool = Pool::builder().max_threads(1).build();
    let (tx, _rx) = mpsc::channel();
    let busy = pool.spawn(until_cancelled(tx)).unwrap();
    assert!(matches!(
        pool.spawn(|_| ()),
        Err(SpawnError::PoolFull { max_threads: 1 })
    ));
    drop(busy);
}

#[test]
fn idle_threads_retire_and_dropped_pool_exits() {
    let pool = Pool::builder()
        .idle_timeout(Duration::from_millis(30))
        .build();
    let rs: Vec<_> = (0..4)
        .map(|_| {
            pool.spawn(|_| std::thread::sleep(Duration::from_millis(20)))
                .unwrap()
        })
        .collect();
    for r in rs {
        r.wait().unwrap();
    }
    assert!(
        eventually(LONG, || pool.metrics().threads_alive == 0),
        "{:?}",
        pool.metrics()
    );

    // Dropping the last clone of a pool makes its idle threads exit.
    let pool = Pool::builder()
        .name("hs-droptest")
        .idle_timeout(Duration::from_secs(3600))
        .build();
    let rs: Vec<_> = (0..3)
        .map(|_| {
            pool.spawn(|_| std::thread::sleep(Duration::from_millis(10)))
                .unwrap()
        })
        .collect();
    for r in rs {
        r.wait().unwrap();
    }
    let named = || {
        std::fs::read_dir("/proc/self/task")
            .unwrap()
            .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
            .filter(|c| c.starts_with("hs-droptest"))
            .count()
    };
    assert!(named() >= 1);
    let clone = pool.clone();
    drop(pool);
    std::thread::sleep(Duration::from_millis(20));
    assert!(named() >= 1, "a clone keeps the pool alive");
    drop(clone);
    assert!(
        eventually(LONG, || named() == 0),
        "pool threads did not exit"
    );
}
