//! R21: real-time signals queue, so the design must send exactly one per
//! cancel, however many cancellers race: only the winner of the cancel
//! word's CAS sends (and for runners only the winner of the state CAS gets
//! there).
//!
//! Own test binary: it counts `cancel::metrics().signals_sent`, which is
//! process-wide, so its tests run one at a time (SERIAL) and nothing else
//! in the process cancels anything meanwhile.

mod support;

use hangsafe::cancel::{self, CancelToken, Error};
use hangsafe::runner::{Builder, Pool};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Barrier, Mutex};
use std::time::{Duration, Instant};
use support::{await_blocked_in, gettid, pipe, Rng};

const LONG: Duration = Duration::from_secs(20);

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

fn sleep_until(t: Instant) {
    let now = Instant::now();
    if t > now {
        std::thread::sleep(t - now);
    }
}

/// N threads, each blocked inside its own token's scope (half in a read,
/// half in a sleep). Several cancellers cancel every token many times,
/// concurrently, in different orders. Exactly N signals are sent, and
/// exactly N `cancel` calls report that they cancelled.
#[test]
fn r21_one_signal_per_cancelled_scope_despite_concurrent_cancellers() {
    let _g = serial();
    const N: usize = 8;
    const CANCELLERS: usize = 4;
    let rounds: u64 = std::env::var("HANGSAFE_R21_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let (mut rng, seed) = Rng::from_env_or_time("HANGSAFE_SEED");
    eprintln!("r21: {rounds} rounds of {N} scopes x {CANCELLERS} cancellers, HANGSAFE_SEED={seed}");
    let total0 = cancel::metrics().signals_sent;
    for round in 0..rounds {
        let mut tokens = Vec::new();
        let mut waiting = Vec::new();
        let mut keep = Vec::new();
        for i in 0..N {
            let token = CancelToken::new();
            let t2 = token.clone();
            let (r, w) = pipe();
            let (tid_tx, tid_rx) = mpsc::channel();
            let (res_tx, res_rx) = mpsc::channel();
            let h = std::thread::spawn(move || {
                let _scope = t2.enter().unwrap();
                tid_tx.send(gettid()).unwrap();
                let res = if i % 2 == 0 {
                    let mut b = [0u8; 1];
                    cancel::read(&r, &mut b)
                } else {
                    cancel::sleep(Duration::from_secs(3600)).map(|()| 0)
                };
                res_tx.send(res).unwrap();
            });
            let tid = tid_rx.recv_timeout(LONG).unwrap();
            let nr = if i % 2 == 0 {
                libc::SYS_read
            } else {
                libc::SYS_clock_nanosleep
            };
            tokens.push(token);
            waiting.push((tid, nr, res_rx, h));
            keep.push(w);
        }
        for (tid, nr, _, _) in &waiting {
            await_blocked_in(*tid, *nr, LONG);
        }
        let before = cancel::metrics().signals_sent;
        let wins = AtomicU64::new(0);
        let start = Barrier::new(CANCELLERS);
        std::thread::scope(|s| {
            for _ in 0..CANCELLERS {
                let mut order: Vec<usize> = (0..N).collect();
                for k in (1..N).rev() {
                    order.swap(k, rng.below(k as u64 + 1) as usize);
                }
                let (tokens, wins, start) = (&tokens, &wins, &start);
                s.spawn(move || {
                    start.wait();
                    for _ in 0..50 {
                        for &i in &order {
                            if tokens[i].cancel() {
                                wins.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                });
            }
        });
        for (_, _, rx, h) in waiting {
            assert_eq!(rx.recv_timeout(LONG).unwrap(), Err(Error::Cancelled));
            h.join().unwrap();
        }
        let sent = cancel::metrics().signals_sent - before;
        assert_eq!(sent, N as u64, "round {round}: signals sent (seed {seed})");
        assert_eq!(
            wins.load(Ordering::Relaxed),
            N as u64,
            "round {round}: winning cancels"
        );
    }
    let total = cancel::metrics().signals_sent - total0;
    eprintln!(
        "r21: {total} signals for {} cancelled scopes",
        rounds * N as u64
    );
    assert_eq!(total, rounds * N as u64);
}

/// One runner blocked in a read, cancelled at about the same moment by its
/// deadline (timer thread), by its handle (`cancel()` then release, or a
/// plain release) and by two threads cancelling its `Ctx::token`. Exactly
/// one signal per runner.
#[test]
fn r21_runner_cancel_deadline_and_release_together_send_one_signal() {
    let _g = serial();
    let rounds: u64 = std::env::var("HANGSAFE_R21_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    let (mut rng, seed) = Rng::from_env_or_time("HANGSAFE_SEED");
    eprintln!("r21 runners: {rounds} rounds, HANGSAFE_SEED={seed}");
    let pool = Pool::builder().build();
    let total0 = cancel::metrics().signals_sent;
    let mut bound = 0;
    for round in 0..rounds {
        let (r, _w) = pipe();
        let before = cancel::metrics().signals_sent;
        let deadline = Instant::now() + Duration::from_millis(60);
        let (tx, rx) = mpsc::channel();
        let (res_tx, res_rx) = mpsc::channel();
        let runner = Builder::new()
            .pool(&pool)
            .deadline(deadline)
            .spawn(move |ctx| {
                tx.send((gettid(), ctx.token())).unwrap();
                let mut b = [0u8; 1];
                res_tx.send(cancel::read(&r, &mut b)).unwrap();
            })
            .unwrap();
        let Ok((tid, token)) = rx.recv_timeout(LONG) else {
            // On a loaded machine the deadline may pass before a thread
            // picks the work up: then it never runs, nothing is bound, and
            // no signal may be sent at all.
            drop(runner);
            std::thread::sleep(Duration::from_millis(5));
            assert_eq!(cancel::metrics().signals_sent, before, "round {round}");
            continue;
        };
        bound += 1;
        // Usually the cancels find the work asleep in its read; if the
        // deadline is already past, they find it elsewhere: either way it
        // is bound, and exactly one signal is due.
        let _ = support::eventually(Duration::from_millis(50), || {
            support::blocked_syscall(tid) == Some(libc::SYS_read)
        });
        // Each canceller aims at a moment within +-300 us of the deadline.
        let mut aim =
            || deadline - Duration::from_micros(300) + Duration::from_micros(rng.below(600));
        let (a, b, c) = (aim(), aim(), aim());
        let cancel_first = rng.below(2) == 0;
        let start = Barrier::new(3);
        let token_wins = AtomicU64::new(0);
        std::thread::scope(|s| {
            let start = &start;
            s.spawn(move || {
                start.wait();
                sleep_until(a);
                if cancel_first {
                    let _ = runner.cancel();
                }
                drop(runner);
            });
            for at in [b, c] {
                let (token, token_wins) = (token.clone(), &token_wins);
                s.spawn(move || {
                    start.wait();
                    sleep_until(at);
                    if token.cancel() {
                        token_wins.fetch_add(1, Ordering::Relaxed);
                    }
                });
            }
        });
        // The work returns only once the signal reached it.
        assert_eq!(rx_result(&res_rx), Err(Error::Cancelled));
        // Give a late loser (e.g. the timer) every chance to misbehave.
        std::thread::sleep(Duration::from_millis(5));
        let sent = cancel::metrics().signals_sent - before;
        assert_eq!(
            sent, 1,
            "round {round}: signals for one runner (seed {seed})"
        );
    }
    eprintln!("r21 runners: {bound} of {rounds} rounds had the work bound when cancelled");
    assert_eq!(cancel::metrics().signals_sent - total0, bound);
    assert!(bound > 0, "no work ever started before its deadline");
    support::await_no_live_contexts(&pool, LONG);
}

fn rx_result(rx: &mpsc::Receiver<Result<usize, Error>>) -> Result<usize, Error> {
    rx.recv_timeout(LONG)
        .expect("the cancelled runner's read did not return")
}
