//! Threads are reused (R14's point for a pool): runners blocked in a read
//! nobody answers are cancelled at their deadline, their reads return
//! `Cancelled`, and their threads go back to the pool. Batch after batch,
//! the process never holds more than about one batch of threads, and no
//! thread is ever abandoned.
//!
//! Own test binary: it counts the process's threads.

mod support;

use hangsafe::cancel::{self, Error};
use hangsafe::runner::{Builder, Pool, RunError};
use std::collections::HashSet;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};
use support::{eventually, pipe, process_threads};

const LONG: Duration = Duration::from_secs(20);

#[test]
fn r14_threads_of_cancelled_blocked_reads_are_reused() {
    const BATCHES: usize = 5;
    const BATCH: usize = 16;
    // A generous grace: "abandoned" must mean "did not come back", not
    // "was descheduled for a moment on a loaded machine".
    let pool = Pool::builder()
        .idle_timeout(Duration::from_secs(30))
        .abandon_after(Duration::from_secs(5))
        .build();
    // Start the deadline timer thread (once per process) before the
    // baseline, so that it is counted there.
    let warm = Builder::new()
        .pool(&pool)
        .timeout(Duration::from_secs(60))
        .spawn(|_| ())
        .unwrap();
    assert_eq!(warm.wait(), Ok(()));
    assert!(eventually(LONG, || pool.metrics().threads_running == 0));
    let base = process_threads();
    let (r, _w) = pipe(); // nobody ever writes
    let r = Arc::new(r);
    let mut tids = HashSet::new();
    let mut max_threads = 0;
    for batch in 0..BATCHES {
        let (tx, rx) = mpsc::channel();
        let t0 = Instant::now();
        let runners: Vec<_> = (0..BATCH)
            .map(|_| {
                let (r, tx) = (Arc::clone(&r), tx.clone());
                Builder::new()
                    .pool(&pool)
                    .timeout(Duration::from_millis(30))
                    .spawn(move |_| {
                        let mut b = [0u8; 1];
                        let res = cancel::read(&*r, &mut b);
                        tx.send((support::gettid(), res)).unwrap();
                        res
                    })
                    .unwrap()
            })
            .collect();
        drop(tx);
        max_threads = max_threads.max(process_threads());
        for runner in runners {
            assert_eq!(runner.wait(), Err(RunError::TimedOut));
        }
        // One result per work that ran (on a loaded machine a deadline may
        // pass before a thread picks a work up: then it never runs); the
        // channel closes when every work has returned or was dropped.
        let mut ran = 0;
        loop {
            match rx.recv_timeout(LONG) {
                Ok((tid, res)) => {
                    assert_eq!(res, Err(Error::Cancelled));
                    tids.insert(tid);
                    ran += 1;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(e) => panic!("a read was not interrupted: {e}"),
            }
        }
        assert!(ran <= BATCH);
        // Every thread is back in the pool before the next batch.
        assert!(
            eventually(LONG, || {
                let m = pool.metrics();
                m.threads_running == 0 && m.threads_idle == m.threads_alive
            }),
            "{:?}",
            pool.metrics()
        );
        max_threads = max_threads.max(process_threads());
        let m = pool.metrics();
        eprintln!(
            "batch {batch}: {ran} works ran, {:?}, process threads {} (baseline {base}), {m:?}",
            t0.elapsed(),
            process_threads()
        );
        assert!(m.threads_alive <= BATCH as u64, "{m:?}");
        assert_eq!(m.threads_abandoned, 0, "{m:?}");
    }
    let m = pool.metrics();
    assert_eq!(m.abandoned_total, 0, "{m:?}");
    assert_eq!(m.runners_cancelled, (BATCHES * BATCH) as u64, "{m:?}");
    assert_eq!(m.runners_dead, (BATCHES * BATCH) as u64, "{m:?}");
    assert!(
        tids.len() <= BATCH,
        "{} distinct threads ran {} runners",
        tids.len(),
        BATCHES * BATCH
    );
    assert!(
        max_threads <= base + BATCH as u64 + 2,
        "the process had {max_threads} threads (baseline {base}, batch {BATCH})"
    );
    // And the pool's threads are all still usable.
    let r = pool.spawn(|_| 42).unwrap();
    assert_eq!(r.wait(), Ok(42));
    assert_eq!(pool.metrics().threads_alive, m.threads_alive);
}
