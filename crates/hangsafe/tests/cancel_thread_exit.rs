//! R20: thread exit vs the cancel signal.
//!
//! Threads that enter token scopes come and go while other threads cancel
//! those tokens at random moments (before the scope, inside it, while the
//! thread leaves it, after the thread exited), and pool threads with a
//! very short idle timeout retire while their runners are being cancelled.
//! The process must not die, and no cancel signal may reach a thread that
//! is not the target: two "victim" threads that never use hangsafe sit in a
//! plain `ppoll` the whole time, which any stray signal would end with
//! `EINTR`.
//!
//! Own test binary: it creates thousands of threads and watches for stray
//! signals process-wide.

mod support;

use hangsafe::cancel::{self, CancelToken, Error, Scope};
use hangsafe::runner::{Builder, Pool, SpawnError};
use std::cell::RefCell;
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::{eventually, pipe, spin_for, Rng};

const LONG: Duration = Duration::from_secs(20);

/// A thread blocked in a plain `ppoll` on a pipe until released; counts
/// the times the `ppoll` was ended by a signal (`EINTR`).
struct Victim {
    release: std::os::fd::OwnedFd,
    thread: std::thread::JoinHandle<u64>,
}

fn victim() -> Victim {
    let (r, w) = pipe();
    let thread = std::thread::spawn(move || {
        let mut stray = 0u64;
        loop {
            let mut p = libc::pollfd {
                fd: r.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd; no timeout, no mask.
            let rc = unsafe { libc::ppoll(&mut p, 1, std::ptr::null(), std::ptr::null()) };
            if rc == 1 {
                return stray;
            }
            let e = std::io::Error::last_os_error();
            assert_eq!(e.raw_os_error(), Some(libc::EINTR), "victim ppoll: {e}");
            stray += 1;
        }
    });
    Victim { release: w, thread }
}

impl Victim {
    fn stray_signals(self) -> u64 {
        assert_eq!(cancel::write(&self.release, b"x"), Ok(1));
        self.thread.join().unwrap()
    }
}

/// A small ring of recent tokens the cancellers pick from.
#[derive(Default)]
struct Ring {
    tokens: Mutex<Vec<CancelToken>>,
    next: AtomicU64,
}

impl Ring {
    const SIZE: usize = 64;
    fn push(&self, t: CancelToken) {
        let mut v = self.tokens.lock().unwrap();
        let i = self.next.fetch_add(1, Ordering::Relaxed) as usize % Self::SIZE;
        if v.len() < Self::SIZE {
            v.push(t);
        } else {
            v[i] = t;
        }
    }
    fn pick(&self, rng: &mut Rng) -> Option<CancelToken> {
        let v = self.tokens.lock().unwrap();
        if v.is_empty() {
            return None;
        }
        Some(v[rng.below(v.len() as u64) as usize].clone())
    }
}

/// R20: thousands of short-lived threads entering scopes, thousands of
/// cancels at random moments, pool threads retiring while cancelled.
#[test]
fn r20_short_lived_scoped_threads_vs_random_cancels() {
    let total: u64 = std::env::var("HANGSAFE_R20_THREADS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3000);
    let (mut rng, seed) = Rng::from_env_or_time("HANGSAFE_SEED");
    eprintln!("r20: {total} scoped threads, HANGSAFE_SEED={seed}");
    let s0 = cancel::metrics();
    let victims = [victim(), victim()];

    let ring = Arc::new(Ring::default());
    let stop = Arc::new(AtomicBool::new(false));
    let cancels = Arc::new(AtomicU64::new(0));
    let mut cancellers = Vec::new();
    for _ in 0..2 {
        let (ring, stop, cancels) = (Arc::clone(&ring), Arc::clone(&stop), Arc::clone(&cancels));
        let cseed = rng.next();
        cancellers.push(std::thread::spawn(move || {
            let mut rng = Rng::new(cseed);
            while !stop.load(Ordering::Relaxed) {
                if let Some(t) = ring.pick(&mut rng) {
                    if t.cancel() {
                        cancels.fetch_add(1, Ordering::Relaxed);
                    }
                }
                spin_for(Duration::from_micros(rng.below(50)));
            }
        }));
    }

    let pool = Pool::builder()
        .idle_timeout(Duration::from_millis(1))
        .build();
    let (data_r, data_w) = pipe();
    let data_r = Arc::new(data_r);
    let mut outcomes = [0u64; 2]; // scoped threads: ok, cancelled
    let t0 = Instant::now();
    let mut started = 0u64;
    while started < total {
        // A batch of scoped threads.
        let mut batch = Vec::new();
        let mut tokens = Vec::new();
        for _ in 0..8 {
            let token = CancelToken::new();
            ring.push(token.clone());
            tokens.push(token.clone());
            let mode = rng.below(5);
            let us = rng.below(300);
            let second = CancelToken::new();
            ring.push(second.clone());
            let data_r = Arc::clone(&data_r);
            batch.push(std::thread::spawn(move || -> Result<(), Error> {
                match mode {
                    // Enter and exit at once; the scope ends with the thread.
                    0 => {
                        let _s = token.enter().unwrap();
                        Ok(())
                    }
                    1 => {
                        let _s = token.enter().unwrap();
                        cancel::sleep(Duration::from_micros(us))
                    }
                    // Blocked in a restartable read nobody answers: only a
                    // cancel (a canceller's, or the batch's final one)
                    // ends it.
                    2 => {
                        let _s = token.enter().unwrap();
                        let mut b = [0u8; 1];
                        cancel::read(&*data_r, &mut b).map(|_| ())
                    }
                    3 => {
                        drop(token.enter().unwrap());
                        let _s = second.enter().unwrap();
                        spin_for(Duration::from_micros(us));
                        cancel::testcancel()
                    }
                    // Never enters: cancels of this token find nobody.
                    _ => Ok(()),
                }
            }));
            started += 1;
        }
        // Runners on the fast-retiring pool, released, cancelled or timed
        // out at random moments, in a short sleep or a blocked read.
        for _ in 0..2 {
            let us = rng.below(300);
            let in_read = rng.below(2) == 0;
            let how = rng.below(3);
            let mut b = Builder::new().pool(&pool);
            if how == 2 {
                b = b.timeout(Duration::from_micros(rng.below(300)));
            }
            let data_r = Arc::clone(&data_r);
            let r = match b.spawn(move |_| {
                if in_read {
                    let mut byte = [0u8; 1];
                    cancel::read(&*data_r, &mut byte).map(|_| ())
                } else {
                    cancel::sleep(Duration::from_micros(us))
                }
            }) {
                Ok(r) => r,
                Err(SpawnError::ThreadCreate(e)) => panic!("{e}"),
                Err(e) => panic!("{e}"),
            };
            spin_for(Duration::from_micros(rng.below(200)));
            match how {
                0 => drop(r),
                1 => {
                    let _ = r.cancel();
                    let _ = r.wait();
                }
                _ => {
                    let _ = r.wait();
                }
            }
        }
        // Cancel the whole batch at a random moment: some threads are
        // still inside their scope, some are leaving it, some are gone.
        spin_for(Duration::from_micros(rng.below(300)));
        for t in &tokens {
            if t.cancel() {
                cancels.fetch_add(1, Ordering::Relaxed);
            }
        }
        for h in batch {
            match h.join().expect("a scoped thread panicked") {
                Ok(()) => outcomes[0] += 1,
                Err(Error::Cancelled) => outcomes[1] += 1,
                Err(e) => panic!("unexpected error {e} (seed {seed})"),
            }
        }
        // Now and then let the pool's threads hit their idle timeout.
        if rng.below(4) == 0 {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    stop.store(true, Ordering::Relaxed);
    for c in cancellers {
        c.join().unwrap();
    }
    let elapsed = t0.elapsed();
    let stray: u64 = victims.into_iter().map(Victim::stray_signals).sum();
    let s1 = cancel::metrics();
    eprintln!(
        "r20: {started} threads in {elapsed:?}: ok {}, cancelled {}; {} winning cancels; \
         signals sent {}, handler runs {}, redirected {}, deferred {}; pool {:?}",
        outcomes[0],
        outcomes[1],
        cancels.load(Ordering::Relaxed),
        s1.signals_sent - s0.signals_sent,
        s1.handler_runs - s0.handler_runs,
        s1.redirected - s0.redirected,
        s1.deferred - s0.deferred,
        pool.metrics()
    );
    assert_eq!(
        stray, 0,
        "a cancel signal reached a thread outside every scope (seed {seed})"
    );
    assert!(
        s1.signals_sent > s0.signals_sent,
        "no cancel ever hit a bound thread"
    );
    // The pool's threads all retire.
    assert!(
        eventually(LONG, || pool.metrics().threads_alive == 0
            && pool.metrics().live_contexts == 0),
        "{:?}",
        pool.metrics()
    );
    drop(data_w);
}

thread_local! {
    static HELD: RefCell<Option<Scope>> = const { RefCell::new(None) };
}

const CHILD_ENV: &str = "HANGSAFE_R20_TLS_CHILD";

/// R20, the scope's end at thread exit: a thread keeps its scope in a
/// thread-local for its whole life, so the scope ends in a thread-local
/// destructor, here after the destructor that retires the thread's cancel
/// word (thread-local destructors run in reverse order of first use, and
/// `HELD` is used before `enter` creates the word). Leaving the scope then
/// must neither abort the process nor make the exited thread targetable
/// again.
///
/// Runs in a child process (re-executing this test binary), because the
/// failure is an abort of the whole process.
///
/// Regression test: `CancelWord::begin` once asserted on a retired word
/// (aborting the process from a thread-local destructor) and, in release
/// builds, cleared `RETIRED`. It now leaves a retired word alone.
#[test]
fn r20_scope_ended_by_a_thread_local_destructor_after_retire() {
    if std::env::var_os(CHILD_ENV).is_some() {
        let token = CancelToken::new();
        let t2 = token.clone();
        std::thread::spawn(move || {
            HELD.with(|h| *h.borrow_mut() = Some(t2.enter().unwrap()));
            assert_eq!(cancel::testcancel(), Ok(()));
        })
        .join()
        .unwrap();
        let before = cancel::metrics().signals_sent;
        assert!(token.cancel());
        assert_eq!(
            cancel::metrics().signals_sent,
            before,
            "a cancel signal was sent to an exited thread"
        );
        return;
    }
    if support::under_emulation() {
        // The child is this test binary, re-executed; under qemu-user it is
        // a foreign ELF the host cannot exec directly. The logic under test
        // (thread-local destructor order) does not depend on the
        // architecture, and runs natively on x86_64.
        eprintln!("skipped under emulation: cannot re-execute the test binary");
        return;
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "r20_scope_ended_by_a_thread_local_destructor_after_retire",
            "--test-threads=1",
            "--nocapture",
        ])
        .env(CHILD_ENV, "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the child process died: {:?}\n--- its stderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}
