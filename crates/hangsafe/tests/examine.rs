//! Examine on real threads: published state read back by other threads
//! while the work runs, ends, or is released. Test names carry the race IDs
//! of `docs/races.md` (R47–R52). Every timing bound is a generous liveness
//! bound; no test depends on the scheduler letting a particular thread run.
//!
//! Knobs: `HANGSAFE_EXAMINE_READS` (snapshots per reader in the torn-read
//! stress, default 100,000), `HANGSAFE_EXAMINE_ENDINGS` (runners in the
//! ending stress, default 2,000). `HANGSAFE_UNDER_EMULATION` scales both
//! down.

mod support;

use hangsafe::examine::{self, Examiner, Pod, Progress, Ticket, EXAMINE_ATTEMPTS};
use hangsafe::runner::{Builder, Pool, RunError, Runner, State};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Once};
use std::time::{Duration, Instant};
use support::{await_no_live_contexts, eventually};

const LONG: Duration = Duration::from_secs(30);

fn pool() -> Pool {
    Pool::builder().idle_timeout(Duration::from_secs(5)).build()
}

/// A 64-byte state (the full capacity, every word) whose fields are all
/// derived from `n`: a snapshot mixing two publishes fails `is_consistent`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
struct Sample {
    n: u64,
    not_n: u64,
    times_k: u64,
    rotated: u64,
    parts: [u32; 6],
    check: u64,
}

// SAFETY: `#[repr(C)]`, four u64, [u32; 6] (24 bytes, at offset 32), one
// u64 at 56: no padding (size 64 checked below); every field `Pod`, so
// any bit pattern is valid; no pointers.
unsafe impl Pod for Sample {}
const _: () = assert!(std::mem::size_of::<Sample>() == 64);

const K: u64 = 0x9e37_79b9_7f4a_7c15;

impl Sample {
    fn new(n: u64) -> Sample {
        let mut parts = [0u32; 6];
        for (i, p) in parts.iter_mut().enumerate() {
            *p = (n as u32).wrapping_add(i as u32);
        }
        let mut s = Sample {
            n,
            not_n: !n,
            times_k: n.wrapping_mul(K),
            rotated: n.rotate_left(17),
            parts,
            check: 0,
        };
        s.check = s.digest();
        s
    }

    fn digest(&self) -> u64 {
        let mut h = self.n ^ self.not_n.rotate_left(7) ^ self.times_k ^ self.rotated;
        for p in self.parts {
            h = h.rotate_left(5) ^ u64::from(p);
        }
        h
    }

    fn is_consistent(&self) -> bool {
        *self == Sample::new(self.n) && self.check == self.digest()
    }
}

/// Asserts `r` is a consistent snapshot no older than `*last`, or one of
/// the allowed errors; returns the error if any.
fn check_sample(
    r: Result<Ticket<Sample>, examine::Error>,
    last: &mut u64,
) -> Result<u64, examine::Error> {
    let t = r?;
    let s = *t;
    assert!(s.is_consistent(), "inconsistent snapshot accepted: {s:?}");
    assert_eq!(
        t.publishes(),
        s.n,
        "snapshot from another publish than its ticket"
    );
    assert!(s.n >= *last, "went back from {} to {}", *last, s.n);
    *last = s.n;
    Ok(s.n)
}

/// Polls `cond` (yielding, not sleeping: these waits are short and many)
/// until it holds or `limit` passes; returns whether it held.
fn until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while !cond() {
        if Instant::now() >= end {
            return false;
        }
        std::thread::yield_now();
    }
    true
}

fn quiet_test_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if info.payload().downcast_ref::<&str>() != Some(&"examine test: planned panic") {
                default(info);
            }
        }));
    });
}

#[test]
fn examiner_is_send_sync_clone_and_not_generic() {
    fn assert_send_sync_clone<T: Send + Sync + Clone + 'static>() {}
    assert_send_sync_clone::<Examiner>();
    // The same type for runners of different result types.
    let a: Examiner = hangsafe::runner::spawn(|_| 1u8).unwrap().examiner();
    let b: Examiner = hangsafe::runner::spawn(|_| String::new())
        .unwrap()
        .examiner();
    let _both: [Examiner; 2] = [a, b];
}

/// R47: a worker publishes continuously (every word of a 64-byte state
/// changes on each publish) while several readers take snapshots through
/// examiners and the handle. No accepted snapshot is ever inconsistent, a
/// reader's snapshots never go back, and once the worker stops publishing
/// every reader sees exactly its last state.
#[test]
fn r47_torn_snapshot_stress() {
    let reads = hangsafe_testkit::env::count("HANGSAFE_EXAMINE_READS", 100_000);
    let pool = pool();
    let stop = Arc::new(AtomicBool::new(false));
    let (stopped_tx, stopped_rx) = mpsc::channel::<u64>();
    let (end_tx, end_rx) = mpsc::channel::<()>();
    let worker_stop = Arc::clone(&stop);
    let r = pool
        .spawn(move |ctx| {
            let start = Instant::now();
            let mut n = 0u64;
            // Bounded: stops when told, or after LONG if the test broke.
            while !worker_stop.load(Ordering::Relaxed) && start.elapsed() < LONG {
                for _ in 0..64 {
                    n += 1;
                    ctx.publish(&Sample::new(n));
                }
            }
            stopped_tx.send(n).unwrap();
            end_rx.recv().ok();
            n
        })
        .unwrap();
    let ok = Arc::new(AtomicU64::new(0));
    let again = Arc::new(AtomicU64::new(0));
    let readers: Vec<_> = (0..3)
        .map(|i| {
            let ex = r.examiner();
            let (ok, again) = (Arc::clone(&ok), Arc::clone(&again));
            std::thread::spawn(move || {
                let mut last = 0;
                for k in 0..reads {
                    // Alternate the three ways in: prepare, and examine
                    // (which retries) with a closure checking in place.
                    let got = if (k + i) % 2 == 0 {
                        check_sample(ex.prepare_examine::<Sample>(), &mut last)
                    } else {
                        ex.examine(|s: &Sample| {
                            assert!(s.is_consistent(), "inconsistent in examine: {s:?}");
                            s.n
                        })
                        .inspect(|&n| {
                            assert!(n >= last, "went back from {last} to {n}");
                            last = n;
                        })
                    };
                    match got {
                        Ok(_) => ok.fetch_add(1, Ordering::Relaxed),
                        Err(examine::Error::Again | examine::Error::Unpublished) => {
                            again.fetch_add(1, Ordering::Relaxed)
                        }
                        Err(e) => panic!("reader {i}: {e:?}"),
                    };
                }
                (ex, last)
            })
        })
        .collect();
    // The handle reads too, from this thread.
    let mut last = 0;
    for _ in 0..reads / 10 {
        match check_sample(r.prepare_examine::<Sample>(), &mut last) {
            Ok(_) | Err(examine::Error::Again | examine::Error::Unpublished) => {}
            Err(e) => panic!("handle: {e:?}"),
        }
    }
    let examiners: Vec<(Examiner, u64)> = readers.into_iter().map(|h| h.join().unwrap()).collect();
    stop.store(true, Ordering::Relaxed);
    let last_n = stopped_rx.recv_timeout(LONG).expect("worker stopped");
    // Quiescent: every reader now sees exactly the last publish.
    for (ex, seen) in &examiners {
        assert!(*seen <= last_n);
        let t = ex.prepare_examine::<Sample>().unwrap();
        assert_eq!(*t, Sample::new(last_n));
        assert_eq!(ex.finish_examine(&t), Ok(()));
    }
    end_tx.send(()).unwrap();
    assert_eq!(r.wait(), Ok(last_n));
    for (ex, _) in &examiners {
        assert_eq!(
            ex.prepare_examine::<Sample>().err(),
            Some(examine::Error::Gone)
        );
    }
    let (ok, again) = (ok.load(Ordering::Relaxed), again.load(Ordering::Relaxed));
    eprintln!(
        "r47: {last_n} publishes; {} reader calls: {ok} snapshots, {again} Again/Unpublished",
        3 * reads
    );
    await_no_live_contexts(&pool, LONG);
}

/// R51: a worker that never stops publishing cannot keep a reader looping:
/// every call returns (a snapshot or `Again`) after a bounded number of
/// attempts. The time bound is generous (a descheduled reader is slow, not
/// stuck); the point is that every call returns.
#[test]
fn r51_a_continuous_writer_never_starves_a_reader_forever() {
    let calls = hangsafe_testkit::env::count("HANGSAFE_EXAMINE_READS", 100_000) / 5;
    let pool = pool();
    let stop = Arc::new(AtomicBool::new(false));
    let worker_stop = Arc::clone(&stop);
    let r = pool
        .spawn(move |ctx| {
            let start = Instant::now();
            let mut n = 0u64;
            while !worker_stop.load(Ordering::Relaxed) && start.elapsed() < LONG {
                n += 1;
                ctx.publish(&[n; 8]);
            }
        })
        .unwrap();
    let (mut ok, mut again, mut slowest) = (0u64, 0u64, Duration::ZERO);
    for _ in 0..calls {
        let t0 = Instant::now();
        let got = r.examine(|w: &[u64; 8]| {
            assert!(w.iter().all(|&x| x == w[0]), "torn: {w:?}");
        });
        slowest = slowest.max(t0.elapsed());
        match got {
            Ok(()) => ok += 1,
            Err(examine::Error::Again | examine::Error::Unpublished) => again += 1,
            Err(e) => panic!("{e:?}"),
        }
    }
    stop.store(true, Ordering::Relaxed);
    assert_eq!(r.wait(), Ok(()));
    eprintln!("r51: {calls} examine calls: {ok} Ok, {again} Again; slowest {slowest:?}");
    assert!(slowest < Duration::from_secs(10), "a call took {slowest:?}");
    await_no_live_contexts(&pool, LONG);
}

/// R48: runners whose work publishes a few states and returns (or panics,
/// or never runs: zero timeout), each examined from another thread in a
/// tight loop while it ends. Every answer is a consistent snapshot or
/// `Gone` (or not yet published / again), never garbage, never a panic;
/// `Gone` is final; once the handle sees the runner finished, examination
/// is `Gone`.
#[test]
fn r48_examining_a_runner_that_is_ending() {
    quiet_test_panics();
    let endings = hangsafe_testkit::env::count("HANGSAFE_EXAMINE_ENDINGS", 2_000);
    let pool = pool();
    let (ex_tx, ex_rx) = mpsc::channel::<Examiner>();
    let (done_tx, done_rx) = mpsc::channel::<(u64, u64)>();
    let reader = std::thread::spawn(move || {
        for ex in ex_rx {
            let (mut snapshots, mut last) = (0u64, 0u64);
            let start = Instant::now();
            loop {
                match check_sample(ex.prepare_examine::<Sample>(), &mut last) {
                    Ok(_) => snapshots += 1,
                    Err(examine::Error::Gone) => break,
                    Err(examine::Error::Again | examine::Error::Unpublished) => {}
                    Err(e) => panic!("{e:?}"),
                }
                assert!(start.elapsed() < LONG, "never Gone");
            }
            for _ in 0..3 {
                assert_eq!(
                    ex.prepare_examine::<Sample>().err(),
                    Some(examine::Error::Gone)
                );
                assert_eq!(ex.examine(|s: &Sample| s.n), Err(examine::Error::Gone));
            }
            done_tx.send((snapshots, last)).unwrap();
        }
    });
    let (mut snapshots, mut never_ran, mut panicked) = (0u64, 0u64, 0u64);
    for i in 0..endings {
        let publishes = (i % 5) * 20;
        let ran = Arc::new(AtomicBool::new(false));
        let ran2 = Arc::clone(&ran);
        let b = if i % 7 == 3 {
            Builder::new().pool(&pool).timeout(Duration::ZERO)
        } else {
            Builder::new().pool(&pool)
        };
        let r: Runner<u64> = b
            .spawn(move |ctx| {
                ran2.store(true, Ordering::Relaxed);
                for n in 1..=publishes {
                    ctx.publish(&Sample::new(n));
                }
                if i % 11 == 5 {
                    std::panic::panic_any("examine test: planned panic");
                }
                publishes
            })
            .unwrap();
        ex_tx.send(r.examiner()).unwrap();
        assert!(until(LONG, || r.is_finished()), "runner {i} never ended");
        // Finished (the final state CAS) implies the end flag is visible.
        assert_eq!(
            r.prepare_examine::<Sample>().err(),
            Some(examine::Error::Gone)
        );
        assert_eq!(r.examine(|s: &Sample| s.n), Err(examine::Error::Gone));
        let (seen, last) = done_rx.recv_timeout(LONG).expect("reader answered");
        assert!(last <= publishes);
        snapshots += seen;
        match r.wait() {
            Ok(n) => assert_eq!(n, publishes),
            Err(RunError::Panicked(_)) => panicked += 1,
            Err(RunError::TimedOut) => {
                if !ran.load(Ordering::Relaxed) {
                    never_ran += 1;
                }
            }
            Err(e) => panic!("{e:?}"),
        }
    }
    drop(ex_tx);
    reader.join().unwrap();
    eprintln!(
        "r48: {endings} runners, {snapshots} snapshots while ending, {panicked} panicked, {never_ran} never ran"
    );
    if endings > 5 {
        assert!(panicked > 0, "the panic path was exercised");
    }
    await_no_live_contexts(&pool, LONG);
}

/// R49: dropping the handle releases the runner, and examination answers
/// `Gone` at once, although the work is still running (and publishing).
#[test]
fn r49_a_released_runner_is_gone_while_its_work_still_runs() {
    let pool = pool();
    let (tx, rx) = mpsc::channel::<&'static str>();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let r = pool
        .spawn(move |ctx| {
            ctx.enter_phase("hang");
            tx.send("published").unwrap();
            while !ctx.is_cancelled() {
                std::thread::sleep(Duration::from_millis(1));
            }
            ctx.enter_phase("after cancel");
            tx.send("cancelled").unwrap();
            go_rx.recv().ok();
            ctx.enter_phase("still running");
        })
        .unwrap();
    assert_eq!(rx.recv_timeout(LONG), Ok("published"));
    let ex = r.examiner();
    assert_eq!(
        ex.examine(|p: &Progress| p.phase().to_owned()).as_deref(),
        Ok("hang")
    );
    drop(r); // release: cancels the work, which keeps running for now
    assert_eq!(
        ex.examine(|p: &Progress| p.phase().to_owned()),
        Err(examine::Error::Gone)
    );
    assert_eq!(rx.recv_timeout(LONG), Ok("cancelled"));
    assert_eq!(
        ex.prepare_examine::<Progress>().err(),
        Some(examine::Error::Gone)
    );
    assert_eq!(
        pool.metrics().live_contexts,
        1,
        "the work still holds its context"
    );
    go_tx.send(()).unwrap();
    await_no_live_contexts(&pool, LONG);
    assert_eq!(
        ex.prepare_examine::<Progress>().err(),
        Some(examine::Error::Gone)
    );
}

/// R49: an examiner outlives its runner (and is used from another thread):
/// it does not keep the context alive, and answers `Gone` once it is
/// freed.
#[test]
fn r49_an_examiner_outliving_its_runner_is_gone() {
    let pool = pool();
    let (tx, rx) = mpsc::channel::<()>();
    let r = pool
        .spawn(move |ctx| {
            ctx.publish(&Sample::new(1));
            rx.recv().ok();
            7u32
        })
        .unwrap();
    let ex = r.examiner();
    let ex2 = ex.clone();
    assert!(eventually(LONG, || ex.prepare_examine::<Sample>().is_ok()));
    assert!(format!("{ex:?}").contains("context_alive: true"));
    tx.send(()).unwrap();
    assert_eq!(r.wait(), Ok(7));
    // The examiners hold only weak references: the context is freed.
    await_no_live_contexts(&pool, LONG);
    assert!(format!("{ex:?}").contains("context_alive: false"));
    let other = std::thread::spawn(move || {
        (
            ex2.prepare_examine::<Sample>().err(),
            ex2.examine(|s: &Sample| s.n),
        )
    });
    assert_eq!(
        other.join().unwrap(),
        (Some(examine::Error::Gone), Err(examine::Error::Gone))
    );
    assert_eq!(
        ex.prepare_examine::<Sample>().err(),
        Some(examine::Error::Gone)
    );
}

/// A worker that publishes one step each time it is told to, and acks.
fn stepper(pool: &Pool) -> (Runner<u64>, mpsc::Sender<bool>, mpsc::Receiver<u64>) {
    let (go_tx, go_rx) = mpsc::channel::<bool>();
    let (ack_tx, ack_rx) = mpsc::channel::<u64>();
    let r = pool
        .spawn(move |ctx| {
            let mut n = 1;
            ctx.publish(&Sample::new(n));
            ack_tx.send(n).unwrap();
            while let Ok(true) = go_rx.recv() {
                n += 1;
                ctx.publish(&Sample::new(n));
                ack_tx.send(n).unwrap();
            }
            n
        })
        .unwrap();
    (r, go_tx, ack_rx)
}

/// R50: utrace's pairing. `finish_examine` answers `Again` iff the worker
/// published after `prepare_examine`; `examine` retries when it does, and
/// gives up with `Again` after its documented number of attempts.
#[test]
fn r50_prepare_finish_is_again_when_the_worker_publishes_in_between() {
    let pool = pool();
    let (r, go, ack) = stepper(&pool);
    assert_eq!(ack.recv_timeout(LONG), Ok(1));
    let ex = r.examiner();
    let t = r.prepare_examine::<Sample>().unwrap();
    assert_eq!((t.n, t.publishes()), (1, 1));
    assert_eq!(r.finish_examine(&t), Ok(()));
    assert_eq!(ex.finish_examine(&t), Ok(()), "tickets work across handles");

    go.send(true).unwrap();
    assert_eq!(ack.recv_timeout(LONG), Ok(2));
    assert_eq!(r.finish_examine(&t), Err(examine::Error::Again));
    assert_eq!(ex.finish_examine(&t), Err(examine::Error::Again));
    let t2 = ex.prepare_examine::<Sample>().unwrap();
    assert_eq!(t2.n, 2);
    assert_eq!(r.finish_examine(&t2), Ok(()));

    // A publish during the closure: examine runs it again on the new state.
    let mut seen = Vec::new();
    let got = r.examine(|s: &Sample| {
        seen.push(s.n);
        if seen.len() == 1 {
            go.send(true).unwrap();
            assert_eq!(ack.recv_timeout(LONG), Ok(3));
        }
        s.n
    });
    assert_eq!((got, seen), (Ok(3), vec![2, 3]));

    // A publish during every attempt: bounded, then Again.
    let mut calls = 0;
    let got = ex.examine(|_: &Sample| {
        calls += 1;
        go.send(true).unwrap();
        ack.recv_timeout(LONG).unwrap();
    });
    assert_eq!((got, calls), (Err(examine::Error::Again), EXAMINE_ATTEMPTS));

    // A ticket from another runner is refused, not compared.
    let (other, other_go, other_ack) = stepper(&pool);
    assert_eq!(other_ack.recv_timeout(LONG), Ok(1));
    let foreign = other.prepare_examine::<Sample>().unwrap();
    assert_eq!(
        r.finish_examine(&foreign),
        Err(examine::Error::ForeignTicket)
    );
    other_go.send(false).unwrap();
    assert_eq!(other.wait(), Ok(1));

    let last = r.prepare_examine::<Sample>().unwrap();
    go.send(false).unwrap();
    let n = r.wait().unwrap();
    assert_eq!(last.n, n);
    await_no_live_contexts(&pool, LONG);
}

/// Asking for another type than the one published is an error, never a
/// reinterpretation of the bytes; the worker may change type between
/// publishes.
#[test]
fn wrong_type_is_an_error_not_garbage() {
    let pool = pool();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let (ack_tx, ack_rx) = mpsc::channel::<()>();
    let r = pool
        .spawn(move |ctx| {
            ctx.publish(&Sample::new(5));
            ack_tx.send(()).unwrap();
            go_rx.recv().ok();
            ctx.enter_phase("scan");
            ack_tx.send(()).unwrap();
            go_rx.recv().ok();
        })
        .unwrap();
    ack_rx.recv_timeout(LONG).unwrap();
    assert_eq!(
        r.prepare_examine::<[u64; 8]>().err(),
        Some(examine::Error::WrongType)
    );
    assert_eq!(
        r.prepare_examine::<[u8; 64]>().err(),
        Some(examine::Error::WrongType)
    );
    assert_eq!(
        r.prepare_examine::<Progress>().err(),
        Some(examine::Error::WrongType)
    );
    assert_eq!(r.examine(|v: &u64| *v), Err(examine::Error::WrongType));
    assert_eq!(r.examine(|s: &Sample| *s), Ok(Sample::new(5)));
    go_tx.send(()).unwrap();
    ack_rx.recv_timeout(LONG).unwrap();
    assert_eq!(
        r.prepare_examine::<Sample>().err(),
        Some(examine::Error::WrongType)
    );
    assert_eq!(
        r.examine(|p: &Progress| p.phase().to_owned()).as_deref(),
        Ok("scan")
    );
    let e = r.prepare_examine::<Sample>().unwrap_err();
    assert!(e.to_string().contains("another type"), "{e}");
    go_tx.send(()).unwrap();
    r.wait().unwrap();
}

/// R52: a pooled thread's next job starts with nothing published: the
/// state belongs to the runner, not the thread.
#[test]
fn r52_the_next_job_on_the_same_thread_shows_nothing_of_the_previous() {
    let pool = Pool::builder()
        .max_threads(1)
        .idle_timeout(Duration::from_secs(5))
        .build();
    let first = pool
        .spawn(|ctx| {
            ctx.publish(&Sample::new(41));
            ctx.enter_phase("first job");
            std::thread::current().id()
        })
        .unwrap();
    let first_ex = first.examiner();
    let first_thread = first.wait().unwrap();

    let (started_tx, started_rx) = mpsc::channel::<()>();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let (ack_tx, ack_rx) = mpsc::channel::<()>();
    let second = pool
        .spawn(move |ctx| {
            started_tx.send(()).unwrap();
            go_rx.recv().ok();
            ctx.publish(&Sample::new(42));
            ack_tx.send(()).unwrap();
            go_rx.recv().ok();
            std::thread::current().id()
        })
        .unwrap();
    started_rx.recv_timeout(LONG).unwrap();
    // Running on the thread that ran the first job, which published a
    // Progress last: the second runner shows nothing, of any type.
    assert_eq!(
        second.prepare_examine::<Progress>().err(),
        Some(examine::Error::Unpublished)
    );
    assert_eq!(
        second.prepare_examine::<Sample>().err(),
        Some(examine::Error::Unpublished)
    );
    assert_eq!(
        second.examine(|s: &Sample| s.n),
        Err(examine::Error::Unpublished)
    );
    assert_eq!(
        first_ex.prepare_examine::<Progress>().err(),
        Some(examine::Error::Gone)
    );
    go_tx.send(()).unwrap();
    ack_rx.recv_timeout(LONG).unwrap();
    let t = second.prepare_examine::<Sample>().unwrap();
    assert_eq!((t.n, t.publishes()), (42, 1), "counts start again too");
    go_tx.send(()).unwrap();
    assert_eq!(second.wait(), Ok(first_thread), "same pooled thread");
    await_no_live_contexts(&pool, LONG);
}

/// The standard state through `Ctx`: phase, time in phase, counters reset
/// by `enter_phase` and set by `set_progress`, publish time on the ticket.
#[test]
fn progress_phase_and_time_in_phase() {
    let pool = pool();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let (ack_tx, ack_rx) = mpsc::channel::<()>();
    let r = pool
        .spawn(move |ctx| {
            let step = || {
                ack_tx.send(()).unwrap();
                go_rx.recv().ok();
            };
            ctx.set_progress(1, 2); // before any phase: an unnamed one
            step();
            ctx.enter_phase("open");
            ctx.set_progress(1, 3);
            step();
            ctx.enter_phase("SG_IO");
            step();
            ctx.set_progress(2, 0);
            step();
        })
        .unwrap();
    let get = || {
        ack_rx.recv_timeout(LONG).unwrap();
        r.prepare_examine::<Progress>().unwrap()
    };
    let p = get();
    assert_eq!((p.phase(), p.done(), p.total()), ("", 1, 2));
    go_tx.send(()).unwrap();

    let open = get();
    assert_eq!((open.phase(), open.done(), open.total()), ("open", 1, 3));
    assert!(open.published_at() >= open.entered_at());
    go_tx.send(()).unwrap();

    let sgio = get();
    assert_eq!(
        (sgio.phase(), sgio.done(), sgio.total()),
        ("SG_IO", 0, 0),
        "reset"
    );
    assert!(sgio.entered_at() >= open.published_at());
    assert_eq!(sgio.published_at(), sgio.entered_at());
    // Time in phase grows while the worker sits in it (lower bound only).
    std::thread::sleep(Duration::from_millis(20));
    let later = r.prepare_examine::<Progress>().unwrap();
    assert_eq!(later.publishes(), sgio.publishes(), "no publish meanwhile");
    assert!(later.time_in_phase() >= Duration::from_millis(20));
    assert!(later.since_update() >= Duration::from_millis(20));
    assert!(later.to_string().starts_with("SG_IO for "));
    go_tx.send(()).unwrap();

    let counted = get();
    assert_eq!(
        (counted.phase(), counted.done(), counted.total()),
        ("SG_IO", 2, 0)
    );
    assert_eq!(
        counted.entered_at(),
        sgio.entered_at(),
        "set_progress keeps the phase entry"
    );
    assert!(counted.published_at() > sgio.published_at());
    assert!(counted.time_in_phase() >= Duration::from_millis(20));
    go_tx.send(()).unwrap();
    r.wait().unwrap();
}

/// A cancelled runner whose work has not returned is not `Gone`: a hung
/// probe is exactly what one wants to examine.
#[test]
fn a_cancelled_runner_whose_work_still_runs_can_be_examined() {
    let pool = pool();
    let (tx, rx) = mpsc::channel::<()>();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let r = pool
        .spawn(move |ctx| {
            ctx.enter_phase("uninterruptible");
            tx.send(()).unwrap();
            go_rx.recv().ok(); // ignores the cancel, as a hung syscall would
        })
        .unwrap();
    rx.recv_timeout(LONG).unwrap();
    assert_eq!(r.cancel(), State::Cancelled);
    assert_eq!(
        r.examine(|p: &Progress| p.phase().to_owned()).as_deref(),
        Ok("uninterruptible")
    );
    go_tx.send(()).unwrap();
    assert!(eventually(LONG, || r.is_finished()));
    assert_eq!(
        r.examine(|p: &Progress| p.done()),
        Err(examine::Error::Gone)
    );
    assert_eq!(r.wait(), Err(RunError::Cancelled));
}

/// R49, the other side: a runner whose outcome was *taken* (here a
/// timed-out probe drained from a `RunnerSet`) was not released. Its work,
/// still stuck, stays examinable through an examiner taken earlier, which
/// is what a watch view needs ("in SG_IO for 41 s"); it is Gone once the
/// work returns.
#[test]
fn r49_a_drained_timed_out_probe_stays_examinable_until_its_work_returns() {
    use hangsafe::nexus::RunnerSet;
    use hangsafe::runner::{Builder, RunError};
    let set = RunnerSet::<()>::new().unwrap();
    let (tx, rx) = mpsc::channel::<()>();
    let (pub_tx, pub_rx) = mpsc::channel::<()>();
    let t = set
        .spawn(
            Builder::new().timeout(Duration::from_millis(50)),
            move |ctx| {
                ctx.enter_phase("SG_IO");
                pub_tx.send(()).unwrap();
                // Ignores its cancel, like a call stuck in the kernel.
                rx.recv().ok();
            },
        )
        .unwrap();
    pub_rx.recv_timeout(LONG).unwrap();
    let ex = set.examiner(t).unwrap();
    let mut out = Vec::new();
    assert!(eventually(LONG, || {
        out.extend(set.drain().unwrap());
        !out.is_empty()
    }));
    assert_eq!(out, vec![(t, Err(RunError::TimedOut))]);
    assert!(
        matches!(set.examiner(t), Err(examine::Error::Gone)),
        "stale token"
    );
    assert_eq!(
        ex.examine(|p: &Progress| p.phase().to_owned()).as_deref(),
        Ok("SG_IO"),
        "the stuck work is still examinable"
    );
    tx.send(()).unwrap();
    assert!(eventually(LONG, || ex
        .examine(|p: &Progress| p.done())
        .is_err_and(|e| e == examine::Error::Gone)));
}
