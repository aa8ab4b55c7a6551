//! The misuse suite of the Rust API: every public entry point called with
//! extreme values (`Duration::ZERO`/`MAX`, sizes 0 and huge, forged
//! tokens, tokens of another set), in the wrong order, from inside work,
//! and in a `fork()` child. Nothing may panic (except a documented
//! `# Panics` precondition), hang, or stop the deadline timer.
//!
//! Every test runs under a watchdog ([`bounded`]): a hang fails the test
//! with its name instead of stalling the suite. Tests named `heN_…` are
//! the hazards of `docs/races.md`; an ignored one documents behaviour
//! that another change provides (its reason names that change).

mod support;

use hangsafe::cancel::{self, CancelSignal, CancelToken, ScopeError};
use hangsafe::examine::{self, Progress, Stamp};
use hangsafe::nexus::{Hooks, Ignored, Interest, Nexus, Registry, RunnerSet, SetError, Token};
use hangsafe::robust::{Acquired, RawRobustMutex, RegionOptions, SharedRegion};
use hangsafe::runner::{Builder, Pool, RunError, SpawnError, State};
use std::io;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::eventually;

/// How long any single test may take before the watchdog fails it.
const WATCHDOG: Duration = Duration::from_secs(120);
/// Generous bound for one liveness wait (the machine is loaded).
const LIMIT: Duration = Duration::from_secs(30);

/// Runs `f` on its own thread and fails the test if it panics or has not
/// finished within [`WATCHDOG`] (the hung thread is left behind; the test
/// binary reports the failure instead of hanging).
fn bounded(name: &str, f: impl FnOnce() + Send + 'static) {
    let (tx, rx) = mpsc::channel();
    let worker = std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            f();
            let _ = tx.send(());
        })
        .expect("cannot start the test thread");
    match rx.recv_timeout(WATCHDOG) {
        Ok(()) => worker.join().expect("test thread"),
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            // f panicked: re-raise its panic with its message.
            if let Err(p) = worker.join() {
                std::panic::resume_unwind(p);
            }
        }
        Err(mpsc::RecvTimeoutError::Timeout) => {
            panic!("{name}: still running after {WATCHDOG:?} (hang)")
        }
    }
}

/// The latest `Instant` that `now + d` can still represent (binary search:
/// the platform's limit is not part of std's API).
fn far_instant() -> Instant {
    let now = Instant::now();
    let (mut lo, mut hi) = (0u64, u64::MAX);
    while lo < hi {
        let mid = lo + (hi - lo).div_ceil(2);
        if now.checked_add(Duration::from_secs(mid)).is_some() {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    now + Duration::from_secs(lo)
}

/// Checks that the process's deadline timer still works: work that hangs
/// with a short deadline is cancelled without anybody polling.
fn timer_still_enforces_deadlines() {
    let r = Builder::new()
        .timeout(Duration::from_millis(50))
        .spawn(|ctx| {
            let end = Instant::now() + LIMIT;
            while !ctx.is_cancelled() && Instant::now() < end {
                std::thread::sleep(Duration::from_millis(1));
            }
        })
        .expect("spawn");
    assert!(
        eventually(LIMIT, || r.state() != State::Running),
        "the timer no longer enforces deadlines"
    );
    assert_eq!(r.wait(), Err(RunError::TimedOut));
}

// ---- runner ---------------------------------------------------------------

#[test]
fn h57_builder_timeouts_zero_to_max() {
    bounded("h57", || {
        let timeouts = [
            Duration::ZERO,
            Duration::from_nanos(1),
            Duration::from_secs(u64::MAX / 2),
            Duration::from_secs(u64::MAX),
            Duration::MAX,
        ];
        for t in timeouts {
            let mut r = Builder::new().timeout(t).spawn(|_| 7u8).expect("spawn");
            let out = r.wait_timeout(LIMIT).expect("decided in time");
            if t.is_zero() {
                // Cancelled at once, or done first: both are fine.
                assert!(matches!(out, Ok(7) | Err(RunError::TimedOut)), "{out:?}");
            } else if t >= Duration::from_secs(1) {
                assert_eq!(out, Ok(7));
            }
        }
        timer_still_enforces_deadlines();
    });
}

#[test]
fn h58_wait_timeout_zero_and_max() {
    bounded("h58", || {
        let (tx, rx) = mpsc::channel::<()>();
        let mut r = hangsafe::runner::spawn(move |_| {
            let _ = rx.recv_timeout(LIMIT);
            5u32
        })
        .expect("spawn");
        assert_eq!(r.wait_timeout(Duration::ZERO), None);
        assert_eq!(r.try_wait(), None);
        assert_eq!(r.wait_timeout(Duration::from_nanos(1)), None);
        drop(tx);
        assert_eq!(r.wait_timeout(Duration::MAX), Some(Ok(5)));
        // Wrong order: everything but a second take still answers.
        assert_eq!(r.state(), State::Done);
        assert_eq!(r.check(), State::Done);
        assert_eq!(r.cancel(), State::Done);
        assert!(r.is_finished());
        assert_eq!(r.result(), None, "the value was taken");
    });
}

/// A deadline at the far end of `Instant`'s range: the runner completes,
/// cancelling or dropping it does not panic, and the timer survives.
#[test]
fn h59_builder_deadline_at_the_end_of_time() {
    bounded("h59", || {
        let far = far_instant();
        let r = Builder::new().deadline(far).spawn(|_| 1u8).expect("spawn");
        assert!(eventually(LIMIT, || r.is_finished()));
        assert_eq!(r.wait(), Ok(1));
        let (tx, rx) = mpsc::channel::<()>();
        let r = Builder::new()
            .deadline(far)
            .spawn(move |_| {
                let _ = rx.recv_timeout(LIMIT);
            })
            .expect("spawn");
        r.cancel();
        drop(r);
        drop(tx);
        timer_still_enforces_deadlines();
    });
}

/// A deadline long past cancels at once; the work never starts or is
/// cancelled.
#[test]
fn h60_builder_deadline_in_the_past() {
    bounded("h60", || {
        let past = Instant::now()
            .checked_sub(Duration::from_secs(3600))
            .unwrap_or_else(Instant::now);
        let r = Builder::new().deadline(past).spawn(|_| 1u8).expect("spawn");
        let out = r.wait();
        assert!(matches!(out, Ok(1) | Err(RunError::TimedOut)), "{out:?}");
    });
}

#[test]
fn h61_pool_builder_extremes() {
    bounded("h61", || {
        // Sizes 0 and 1 are clamped to the minimum; an impossible stack is
        // a typed spawn error.
        for (stack, ok) in [(0, true), (1, true), (usize::MAX, false), (1 << 60, false)] {
            let pool = Pool::builder().stack_size(stack).build();
            match pool.spawn(|_| 3u8) {
                Ok(r) => {
                    assert!(ok, "stack {stack} accepted");
                    assert_eq!(r.wait(), Ok(3));
                }
                Err(e) => {
                    assert!(!ok, "stack {stack}: {e}");
                    assert!(matches!(e, SpawnError::ThreadCreate(_)), "{e:?}");
                }
            }
        }
        let pool = Pool::builder()
            .max_threads(0)
            .max_abandoned(0)
            .idle_timeout(Duration::ZERO)
            .abandon_after(Duration::ZERO)
            .name("")
            .build();
        for _ in 0..20 {
            assert_eq!(pool.spawn(|_| 4u8).expect("spawn").wait(), Ok(4));
        }
        let long = "x".repeat(1 << 16);
        let pool = Pool::builder().name(long).build();
        assert_eq!(pool.spawn(|_| 5u8).expect("spawn").wait(), Ok(5));
    });
}

/// A thread-name prefix with a NUL byte is not a valid thread name: the
/// pool must refuse it with a typed error, not panic in `spawn`.
#[test]
fn h62_pool_name_with_nul_byte() {
    bounded("h62", || {
        let pool = Pool::builder().name("bad\0name").build();
        match pool.spawn(|_| 6u8) {
            Ok(r) => assert_eq!(r.wait(), Ok(6)),
            Err(e) => assert!(matches!(e, SpawnError::ThreadCreate(_)), "{e:?}"),
        }
    });
}

#[test]
fn h63_pool_idle_timeout_max() {
    bounded("h63", || {
        let pool = Pool::builder().idle_timeout(Duration::MAX).build();
        for _ in 0..3 {
            let mut r = pool.spawn(|_| 1u8).expect("spawn");
            assert_eq!(r.wait_timeout(LIMIT), Some(Ok(1)));
            // Past the worker's spin phase: it computes its idle deadline.
            std::thread::sleep(Duration::from_millis(50));
        }
    });
}

#[test]
fn h64_pool_abandon_after_max() {
    bounded("h64", || {
        let pool = Pool::builder().abandon_after(Duration::MAX).build();
        let (tx, rx) = mpsc::channel::<()>();
        let r = Builder::new()
            .pool(&pool)
            .timeout(Duration::from_millis(10))
            .spawn(move |_| {
                let _ = rx.recv_timeout(LIMIT);
            })
            .expect("spawn");
        assert!(eventually(LIMIT, || r.state() != State::Running));
        r.cancel();
        drop(r);
        drop(tx);
        timer_still_enforces_deadlines();
    });
}

/// Work that starts, waits for and drops other runners, including ones of
/// a pool it created itself.
#[test]
fn h65_runner_api_from_inside_work() {
    bounded("h65", || {
        let r = hangsafe::runner::spawn(|ctx| {
            let inner = hangsafe::runner::spawn(|_| 20u32).expect("inner spawn");
            let a = inner.wait().expect("inner");
            let pool = Pool::builder().max_threads(1).build();
            let b = pool.spawn(|_| 1u32).expect("pool spawn").wait().expect("b");
            let hung = Builder::new()
                .timeout(Duration::from_millis(1))
                .spawn(|c| {
                    let end = Instant::now() + LIMIT;
                    while !c.is_cancelled() && Instant::now() < end {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                })
                .expect("hung spawn");
            drop(hung);
            assert!(!ctx.is_cancelled());
            a + b + u32::from(ctx.checkpoint().is_ok())
        })
        .expect("spawn");
        assert_eq!(r.wait(), Ok(22));
    });
}

/// Work that gets its own runner's handle: checking and `wait_timeout` on
/// itself return (it is still running), and dropping the handle cancels it.
#[test]
fn h66_work_checks_and_drops_its_own_runner() {
    bounded("h66", || {
        type Slot = Arc<Mutex<Option<hangsafe::runner::Runner<u32>>>>;
        let slot: Slot = Arc::new(Mutex::new(None));
        let theirs = Arc::clone(&slot);
        let (tx, rx) = mpsc::channel();
        let r = hangsafe::runner::spawn(move |ctx| {
            let end = Instant::now() + LIMIT;
            let mut me = loop {
                if let Some(me) = theirs.lock().unwrap().take() {
                    break me;
                }
                assert!(Instant::now() < end, "never got the handle");
                std::thread::sleep(Duration::from_millis(1));
            };
            let seen = (
                me.check(),
                me.wait_timeout(Duration::from_millis(20)).is_none(),
                me.try_wait().is_none(),
            );
            drop(me);
            let _ = tx.send((seen, ctx.is_cancelled()));
            0
        })
        .expect("spawn");
        *slot.lock().unwrap() = Some(r);
        let (seen, cancelled) = rx.recv_timeout(LIMIT).expect("the work reported");
        assert_eq!(seen, (State::Running, true, true));
        assert!(cancelled, "dropping its own handle cancels the work");
    });
}

/// `wait()` on its own runner from inside the work can never return a
/// value (the work cannot finish while it waits): it must fail at once
/// with a typed error instead of blocking the thread for ever.
#[test]
fn h67_work_waits_on_its_own_runner() {
    bounded("h67", || {
        type Slot = Arc<Mutex<Option<hangsafe::runner::Runner<u32>>>>;
        let slot: Slot = Arc::new(Mutex::new(None));
        let theirs = Arc::clone(&slot);
        let (tx, rx) = mpsc::channel();
        let r = hangsafe::runner::spawn(move |_| {
            let end = Instant::now() + LIMIT;
            let me = loop {
                if let Some(me) = theirs.lock().unwrap().take() {
                    break me;
                }
                assert!(Instant::now() < end, "never got the handle");
                std::thread::sleep(Duration::from_millis(1));
            };
            let _ = tx.send(me.wait());
            0
        })
        .expect("spawn");
        *slot.lock().unwrap() = Some(r);
        let out = rx
            .recv_timeout(LIMIT)
            .expect("wait() on its own runner blocked");
        assert_eq!(out, Err(RunError::WaitOnSelf));
    });
}

// ---- nexus -------------------------------------------------------------------

/// Tokens nobody issued, of every shape, are stale everywhere.
#[test]
fn h68_forged_tokens_are_stale() {
    bounded("h68", || {
        let forged: Vec<Token> = [
            Token::from_u64(u64::MAX),
            Token::from_u64(1 << 32),
            Token::from_parts(0, 1),
            Token::from_parts(u32::MAX, u32::MAX),
            Token::from_parts(12345, 1),
            Token::from_ptr(usize::MAX as *mut std::ffi::c_void),
        ]
        .into_iter()
        .flatten()
        .collect();
        assert_eq!(Token::from_u64(0), None);
        assert_eq!(Token::from_u64(u32::MAX as u64), None, "generation 0");
        assert_eq!(Token::from_ptr(std::ptr::null_mut()), None);

        let set = RunnerSet::<u8>::new().expect("set");
        let live = set.spawn(Builder::new(), |_| 1).expect("spawn");
        let reg: Registry<u8> = Registry::new();
        let mut nexus: Nexus<u8> = Nexus::new();
        let mut hooks = NoHooks;
        for &t in &forged {
            if t == live {
                continue;
            }
            assert!(!set.release(t));
            assert_eq!(set.cancel(t), None);
            assert_eq!(set.state(t), None);
            assert!(!set.contains(t));
            assert!(matches!(
                set.examiner(t)
                    .and_then(|e| e.examine(|p: &Progress| p.done())),
                Err(examine::Error::Gone)
            ));
            let _ = set.occurred_fd(t, -1, i16::MAX);
            let _ = set.occurred_fd(t, RawFd::MAX, -1);
            let _ = set.occurred_timeout(t);
            assert!(reg.get(t).is_none());
            assert!(!nexus.deregister_fd(&mut hooks, t));
            assert!(!nexus.withdraw_timeout(&mut hooks, t));
            assert_eq!(nexus.timeout_deadline(t), None);
            assert!(matches!(
                nexus.occurred_fd(t, 0, libc::POLLIN),
                Err(Ignored::Stale)
            ));
            assert!(matches!(
                nexus.occurred_timeout(&mut hooks, t, Instant::now()),
                Err(Ignored::Stale)
            ));
        }
        assert_eq!(set.len(), 1);
        assert!(set.release(live));
        assert!(!set.release(live), "double release");
        assert_eq!(set.state(live), None);
    });
}

/// Registry limits that cannot work: `Registry::with_limits` documents a
/// panic; `RunnerSet::with_limits` returns an `io::Result` and must use
/// it (InvalidInput) rather than panic.
#[test]
fn h69_set_with_impossible_limits_is_an_error() {
    bounded("h69", || {
        for (gens, slots) in [
            (0, 1),
            (1, 0),
            (0, 0),
            (1, usize::MAX),
            (u32::MAX, usize::MAX),
        ] {
            let e = RunnerSet::<u8>::with_limits(gens, slots).expect_err("accepted");
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{e}");
        }
        let set = RunnerSet::<u8>::with_limits(1, 1).expect("smallest limits");
        let t = set.spawn(Builder::new(), |_| 1).expect("spawn");
        assert!(matches!(
            set.spawn(Builder::new(), |_| 2),
            Err(SetError::Full)
        ));
        assert!(set.release(t));
        // The only slot had its one generation: the set is exhausted.
        assert!(matches!(
            set.spawn(Builder::new(), |_| 3),
            Err(SetError::Full)
        ));
    });
}

/// A token of one set used on another: it may name a runner there (tokens
/// are plain numbers, like fds), but nothing panics or hangs.
#[test]
fn h70_token_of_another_set() {
    bounded("h70", || {
        let a = RunnerSet::<u8>::new().expect("set");
        let b = RunnerSet::<u8>::new().expect("set");
        let ta = a.spawn(Builder::new(), |_| 1).expect("spawn");
        assert!(!b.release(ta));
        assert_eq!(b.state(ta), None);
        let tb = b.spawn(Builder::new(), |_| 2).expect("spawn");
        assert_eq!(ta, tb, "the same slot and generation");
        let _ = a.cancel(tb);
        assert!(eventually(LIMIT, || a
            .drain()
            .map(|d| d.count())
            .unwrap_or(0)
            > 0
            || a.is_empty()));
        drop(a);
        let mut got = Vec::new();
        assert!(eventually(LIMIT, || {
            got.extend(b.drain().expect("drain"));
            !got.is_empty()
        }));
        assert_eq!(got, vec![(tb, Ok(2))]);
    });
}

/// Dropping the set in the middle of iterating a drain; spawning into it
/// from its own work; the last reference to the set dropped by one of its
/// own runners' work.
#[test]
fn h71_set_dropped_or_used_from_inside() {
    bounded("h71", || {
        let set = RunnerSet::<u32>::new().expect("set");
        for i in 0..8 {
            set.spawn(Builder::new(), move |_| i).expect("spawn");
        }
        let mut drained = Vec::new();
        assert!(eventually(LIMIT, || {
            drained.extend(set.drain().expect("drain").take(1));
            !drained.is_empty()
        }));
        let rest = set.drain().expect("drain");
        drop(set);
        let n = rest.count();
        assert!(n <= 7);

        // Work that spawns into its own set, and releases itself.
        let set = Arc::new(RunnerSet::<u32>::new().expect("set"));
        let mine = Arc::clone(&set);
        let (tx, rx) = mpsc::channel();
        let t = set
            .spawn(Builder::new(), move |_| {
                let child = mine.spawn(Builder::new(), |_| 40).expect("nested spawn");
                let _ = tx.send(child);
                // The last reference may be this one: the set is then
                // dropped here, on its own runner's thread.
                drop(mine);
                2
            })
            .expect("spawn");
        let child = rx.recv_timeout(LIMIT).expect("nested spawn reported");
        let mut got = Vec::new();
        assert!(eventually(LIMIT, || {
            got.extend(set.drain().expect("drain"));
            got.len() == 2
        }));
        got.sort_by_key(|(t, _)| *t);
        let mut want = vec![(t, Ok(2)), (child, Ok(40))];
        want.sort_by_key(|(t, _)| *t);
        assert_eq!(got, want);

        // Dropped by its own work while that work still runs.
        let set = Arc::new(RunnerSet::<u32>::new().expect("set"));
        let mine = Arc::clone(&set);
        let (go_tx, go_rx) = mpsc::channel::<()>();
        let (done_tx, done_rx) = mpsc::channel();
        set.spawn(Builder::new(), move |ctx| {
            let _ = go_rx.recv_timeout(LIMIT);
            drop(mine);
            let _ = done_tx.send(ctx.is_cancelled());
            0
        })
        .expect("spawn");
        drop(set);
        drop(go_tx);
        let cancelled = done_rx.recv_timeout(LIMIT).expect("the work finished");
        assert!(cancelled, "dropping the set cancels its runners");
    });
}

/// A value whose destructor calls back into the set that drops it.
#[test]
fn h72_value_destructor_reenters_the_set() {
    struct CallsBack(Arc<Mutex<Option<Arc<RunnerSet<CallsBack>>>>>);
    impl Drop for CallsBack {
        fn drop(&mut self) {
            // Not `if let … = lock().clone()`: the guard would live through
            // the body, and a nested drop would lock it again.
            let set = self.0.lock().unwrap().clone();
            if let Some(set) = set {
                let _ = set.len();
                let _ = set.drain().map(|d| d.count());
                if let Ok(t) = set.spawn(Builder::new(), |_| CallsBack(Arc::default())) {
                    set.release(t);
                }
            }
        }
    }
    bounded("h72", || {
        let set = Arc::new(RunnerSet::<CallsBack>::new().expect("set"));
        let back = Arc::new(Mutex::new(Some(Arc::clone(&set))));
        let mut tokens = Vec::new();
        for _ in 0..4 {
            let b = Arc::clone(&back);
            tokens.push(
                set.spawn(Builder::new(), move |_| CallsBack(b))
                    .expect("spawn"),
            );
        }
        assert!(eventually(LIMIT, || tokens
            .iter()
            .all(|&t| set.state(t) != Some(State::Running))));
        // Released while holding a value: dropped outside the set's lock.
        assert!(set.release(tokens[0]));
        // Drained: dropped by the caller.
        let outs: Vec<_> = set.drain().expect("drain").collect();
        drop(outs);
        back.lock().unwrap().take();
    });
}

/// A hook implementation that accepts everything.
struct NoHooks;

impl Hooks for NoHooks {
    fn fd_register(&mut self, _: RawFd, _: Interest, _: Token) -> io::Result<()> {
        Ok(())
    }
    fn fd_modify(&mut self, _: RawFd, _: Interest, _: Token) -> io::Result<()> {
        Ok(())
    }
    fn fd_deregister(&mut self, _: RawFd, _: Token) {}
    fn timeout_register(&mut self, _: Instant, _: Token) -> io::Result<()> {
        Ok(())
    }
    fn timeout_modify(&mut self, _: Instant, _: Token) -> io::Result<()> {
        Ok(())
    }
}

/// Nexus registrations with extreme fds and deadlines.
#[test]
fn h73_nexus_extreme_registrations() {
    bounded("h73", || {
        let mut nexus: Nexus<u8> = Nexus::new();
        let mut hooks = NoHooks;
        for fd in [-1, RawFd::MIN, RawFd::MAX] {
            let t = nexus
                .register_fd(&mut hooks, fd, Interest::READABLE, 1)
                .expect("register");
            let _ = nexus.occurred_fd(t, fd, i16::MIN);
            let _ = nexus.occurred_fd(t, fd ^ 1, libc::POLLIN);
            assert!(nexus.deregister_fd(&mut hooks, t));
            assert!(!nexus.deregister_fd(&mut hooks, t));
        }
        for deadline in [far_instant(), Instant::now(), Stamp::ZERO.instant()] {
            let t = nexus
                .register_timeout(&mut hooks, deadline, 2)
                .expect("register");
            let _ = nexus.occurred_timeout(&mut hooks, t, far_instant());
            let _ = nexus.withdraw_timeout(&mut hooks, t);
            let _ = nexus.occurred_timeout(&mut hooks, t, Instant::now());
        }
        nexus.deregister_all(&mut hooks);
    });
}

// ---- examine -----------------------------------------------------------------

#[test]
fn h74_examine_extreme_values() {
    bounded("h74", || {
        let s = Stamp::from_nanos(u64::MAX);
        let _ = s.instant();
        assert_eq!(s.elapsed(), Duration::ZERO);
        let _ = Stamp::from_instant(far_instant());
        let p = Progress::new(&"p".repeat(1 << 16))
            .with_counts(u32::MAX, 0)
            .updated(Stamp::from_nanos(u64::MAX));
        let _ = (
            p.phase(),
            p.time_in_phase(),
            p.since_update(),
            p.entered_at(),
        );
        let p = Progress::at("", Stamp::from_nanos(u64::MAX));
        let _ = (p.updated_at(), p.done(), p.total());
        let mut r = hangsafe::runner::spawn(|ctx| {
            ctx.enter_phase("");
            ctx.enter_phase(&"\u{1F600}".repeat(1000));
            ctx.set_progress(u32::MAX, 0);
            ctx.set_progress(0, u32::MAX);
            ctx.publish(&Progress::new("x"));
            ctx.deadline()
        })
        .expect("spawn");
        assert_eq!(r.wait_timeout(LIMIT), Some(Ok(None)));
        // Examined after the end: Gone, in every order.
        assert!(matches!(
            r.examine(|p: &Progress| p.done()),
            Err(examine::Error::Gone)
        ));
        assert!(matches!(
            r.prepare_examine::<Progress>(),
            Err(examine::Error::Gone)
        ));
        let ex = r.examiner();
        drop(r);
        assert!(matches!(
            ex.examine(|p: &Progress| p.done()),
            Err(examine::Error::Gone)
        ));
    });
}

// ---- cancel ------------------------------------------------------------------

/// The longest sleeps and waits are still interrupted by a cancel.
#[test]
fn h75_cancellable_calls_with_duration_max() {
    bounded("h75", || {
        type Call = fn() -> cancel::Result<()>;
        let calls: [(&str, Call); 4] = [
            ("sleep", || cancel::sleep(Duration::MAX)),
            ("poll", || {
                cancel::poll(&mut [], Some(Duration::MAX)).map(drop)
            }),
            ("poll forever", || cancel::poll(&mut [], None).map(drop)),
            ("epoll_wait", || {
                // SAFETY: epoll_create1 has no preconditions.
                let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
                assert!(ep >= 0);
                // SAFETY: `ep` was just opened and is owned here.
                let ep =
                    unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(ep) };
                let mut events = [libc::epoll_event { events: 0, u64: 0 }; 1];
                cancel::epoll_wait(ep.as_fd(), &mut events, Some(Duration::MAX)).map(drop)
            }),
        ];
        for (what, call) in calls {
            let start = Instant::now();
            let r = Builder::new()
                .timeout(Duration::from_millis(50))
                .spawn(move |_| call())
                .expect("spawn");
            let out = r.wait();
            assert_eq!(out, Err(RunError::TimedOut), "{what}");
            assert!(start.elapsed() < LIMIT, "{what} took {:?}", start.elapsed());
        }
        // Outside any runner, the zero and tiny cases are plain calls.
        cancel::sleep(Duration::ZERO).expect("sleep 0");
        cancel::sleep(Duration::from_nanos(1)).expect("sleep 1ns");
        assert_eq!(
            cancel::poll(&mut [], Some(Duration::ZERO)).expect("poll"),
            0
        );
    });
}

/// Empty and huge buffers, bad descriptors.
#[test]
fn h76_cancellable_io_extremes() {
    bounded("h76", || {
        let (r, w) = io::pipe().expect("pipe");
        assert_eq!(cancel::read(r.as_fd(), &mut []).expect("empty read"), 0);
        assert_eq!(cancel::write(w.as_fd(), &[]).expect("empty write"), 0);
        // An offset past i64::MAX is refused (EINVAL; ESPIPE on a pipe),
        // never wrapped into a valid one.
        let e = cancel::pread(r.as_fd(), &mut [0; 4], u64::MAX).expect_err("pipe");
        assert!(
            matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ESPIPE)),
            "{e}"
        );
        let f = std::fs::File::open("/dev/zero").expect("open");
        let mut buf = [1u8; 16];
        // Offsets past i64::MAX are refused by the kernel, not wrapped.
        let e = cancel::pread(f.as_fd(), &mut buf, u64::MAX).expect_err("huge offset");
        assert_eq!(e.raw_os_error(), Some(libc::EINVAL));
        let mut fds = [libc::pollfd {
            fd: -1,
            events: libc::POLLIN,
            revents: 0,
        }];
        assert_eq!(
            cancel::poll(&mut fds, Some(Duration::ZERO)).expect("poll"),
            0
        );
        fds[0].fd = RawFd::MAX;
        assert_eq!(
            cancel::poll(&mut fds, Some(Duration::ZERO)).expect("poll"),
            1
        );
        assert_ne!(fds[0].revents & libc::POLLNVAL, 0);
        let _ = (r.as_raw_fd(), w.as_raw_fd());
    });
}

/// Scopes: nesting, entering inside work, cancelling twice, cancelling a
/// token nobody entered.
#[test]
fn h77_cancel_token_wrong_order() {
    bounded("h77", || {
        let t = CancelToken::new();
        assert!(t.cancel());
        assert!(!t.cancel(), "second cancel is a no-op");
        {
            let scope = t.enter().expect("enter a cancelled token");
            assert!(cancel::testcancel().is_err(), "entered cancelled");
            assert_eq!(CancelToken::new().enter().err(), Some(ScopeError::Nested));
            drop(scope);
        }
        assert!(cancel::testcancel().is_ok(), "the scope is left");
        let r = hangsafe::runner::spawn(|_| CancelToken::new().enter().err()).expect("spawn");
        assert_eq!(r.wait(), Ok(Some(ScopeError::Nested)));
    });
}

/// Out-of-range signal choices are errors, never panics or overflows.
#[test]
fn h78_install_extreme_signals() {
    bounded("h78", || {
        for which in [
            CancelSignal::RtMinPlus(i32::MAX),
            CancelSignal::RtMinPlus(i32::MIN),
            CancelSignal::RtMinPlus(-1),
            CancelSignal::RtMinPlus(1000),
            CancelSignal::Number(0),
            CancelSignal::Number(-1),
            CancelSignal::Number(libc::SIGKILL),
            CancelSignal::Number(i32::MAX),
            CancelSignal::Number(i32::MIN),
        ] {
            assert!(cancel::install(which).is_err(), "{which:?} accepted");
        }
    });
}

// ---- robust ------------------------------------------------------------------

#[test]
fn h79_robust_extreme_timeouts() {
    bounded("h79", || {
        let m = RawRobustMutex::new().expect("mutex");
        assert!(matches!(
            m.lock_timeout(Duration::MAX),
            Ok(Acquired::Consistent)
        ));
        m.unlock().expect("unlock");
        assert!(matches!(
            m.lock_until(far_instant()),
            Ok(Acquired::Consistent)
        ));
        m.unlock().expect("unlock");
        assert!(matches!(
            m.lock_until_monotonic(i64::MAX, 999_999_999),
            Ok(Acquired::Consistent)
        ));
        assert!(
            m.lock_until_monotonic(i64::MAX, 0).is_err(),
            "held: EDEADLK"
        );
        let _ = m.try_lock();
        m.unlock().expect("unlock");
        for (s, ns) in [(0, -1), (0, 1_000_000_000), (-1, 0), (i64::MIN, i64::MIN)] {
            assert!(m.lock_until_monotonic(s, ns).is_err(), "({s}, {ns})");
        }
        assert!(m.unlock().is_err(), "nothing was locked");
        // Held by another thread: zero and past deadlines time out.
        let m = Arc::new(m);
        assert!(matches!(m.lock(), Ok(Acquired::Consistent)));
        let other = Arc::clone(&m);
        let seen = std::thread::spawn(move || {
            (
                other.lock_timeout(Duration::ZERO),
                other.lock_until(Instant::now() - Duration::from_millis(1)),
                other.try_lock(),
                other.unlock(),
                other.consistent(),
            )
        })
        .join()
        .expect("thread");
        assert!(seen.0.is_err() && seen.1.is_err() && seen.2.is_err());
        assert!(seen.3.is_err() && seen.4.is_err());
        m.unlock().expect("unlock");
    });
}

/// Region names and options at the edges: typed errors only.
#[test]
fn h80_region_names_and_options() {
    bounded("h80", || {
        let long = "n".repeat(300);
        for name in ["", "/", "a/b", "..", ".", "with\0nul", long.as_str()] {
            let r = SharedRegion::<u64>::create(name, 0);
            assert!(r.is_err(), "{name:?} accepted");
            assert!(SharedRegion::<u64>::open(name).is_err());
            assert!(SharedRegion::<()>::unlink(name).is_err());
        }
        let r = RegionOptions::new()
            .mode(u32::MAX)
            .tag(u64::MAX)
            .ready_timeout(Duration::MAX)
            .anonymous(7u64)
            .expect("anonymous region");
        assert_eq!(*r.mutex().lock().expect("lock"), 7);
        let r = RegionOptions::new()
            .ready_timeout(Duration::ZERO)
            .anonymous(8u64)
            .expect("anonymous region");
        assert_eq!(*r.mutex().lock().expect("lock"), 8);
    });
}

// ---- fork --------------------------------------------------------------------

/// Forks; the child runs `f` and exits with its result (0: passed); the
/// parent waits for it (bounded) and returns its exit code, or -1.
fn in_child(f: fn() -> i32) -> i32 {
    // SAFETY: the child only runs `f`, which uses the library and libc,
    // then `_exit`s without running the parent's destructors or at-exit
    // handlers. glibc's fork keeps malloc usable in the child.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        let code = std::panic::catch_unwind(f).unwrap_or(99);
        // SAFETY: ends the child at once.
        unsafe { libc::_exit(code) };
    }
    assert!(pid > 0, "fork failed");
    let end = Instant::now() + LIMIT;
    let mut status = 0;
    loop {
        // SAFETY: `status` is a writable int; `pid` is our child.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if r == pid {
            break;
        }
        if r < 0 || Instant::now() >= end {
            // SAFETY: kills and reaps only the child forked above.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, &mut status, 0);
            }
            return -1;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -1
    }
}

/// In a `fork()` child the calls that need no pool thread work: the
/// robust mutex, examine, tokens, the cancellable calls.
#[test]
fn h81_fork_child_plain_calls() {
    bounded("h81", || {
        let region = RegionOptions::new().anonymous(1u64).expect("region");
        let guard = region.mutex().lock().expect("lock");
        fn child() -> i32 {
            if cancel::testcancel().is_err() {
                return 10;
            }
            if cancel::sleep(Duration::from_millis(1)).is_err() {
                return 11;
            }
            if Token::from_u64(u64::MAX).is_none() {
                return 12;
            }
            if CancelToken::new().enter().is_err() {
                return 13;
            }
            0
        }
        assert_eq!(in_child(child), 0);
        drop(guard);
    });
}

/// A fork child spawns after the parent left idle threads and a running
/// timer: the child's work runs, and its deadlines are enforced.
#[test]
fn h82_fork_child_gets_a_working_pool() {
    bounded("h82", || {
        // Leave an idle pool thread and a started timer behind.
        let r = Builder::new()
            .timeout(Duration::from_secs(10))
            .spawn(|_| 1u8)
            .expect("spawn");
        assert_eq!(r.wait(), Ok(1));
        fn child() -> i32 {
            let Ok(mut r) = hangsafe::runner::spawn(|_| 2u8) else {
                return 20;
            };
            if r.wait_timeout(Duration::from_secs(10)) != Some(Ok(2)) {
                return 21;
            }
            let Ok(r) = Builder::new()
                .timeout(Duration::from_millis(100))
                .spawn(|ctx| {
                    let end = Instant::now() + Duration::from_secs(10);
                    while !ctx.is_cancelled() && Instant::now() < end {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                })
            else {
                return 22;
            };
            if !eventually(Duration::from_secs(10), || r.state() != State::Running) {
                return 23;
            }
            0
        }
        assert_eq!(in_child(child), 0);
    });
}
