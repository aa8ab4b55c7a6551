//! R18: a cancel that arrives while the target thread runs *another*
//! signal handler, which interrupted a cancellable `read`.
//!
//! The cancel handler then finds the PC in the foreign handler (outside the
//! stub), so it must defer: mask the cancel signal in the interrupted
//! context and re-raise it. When the foreign handler returns, the signal
//! comes back with the PC in (SA_RESTART: rewound to the `syscall`
//! instruction) or just past (no SA_RESTART: `EINTR`) the stub, and the
//! read must end `Cancelled`: not hang, not `EINTR`, not `Ok`.
//!
//! Own test binary: it installs a SIGUSR1 handler, and it checks the
//! process-wide cancel counters, so its tests run one at a time (SERIAL)
//! and nothing else in the process sends cancel signals meanwhile.

mod support;

use hangsafe::cancel::{self, CancelToken, Error};
use std::ffi::c_int;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::sync::{mpsc, Mutex};
use std::time::Duration;
use support::{await_blocked_in, eventually, gettid, pipe, tgkill};

const LONG: Duration = Duration::from_secs(20);
/// How long the SIGUSR1 handler busy-waits.
const HANDLER_SPIN_NS: u64 = 40_000_000;

static SERIAL: Mutex<()> = Mutex::new(());
static IN_HANDLER: AtomicBool = AtomicBool::new(false);
static HANDLER_DONE: AtomicU64 = AtomicU64::new(0);

fn mono_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec; async-signal-safe.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Async-signal-safe: atomics and clock_gettime only.
extern "C" fn slow_handler(_sig: c_int) {
    IN_HANDLER.store(true, Ordering::SeqCst);
    let t0 = mono_ns();
    while mono_ns() - t0 < HANDLER_SPIN_NS {
        std::hint::spin_loop();
    }
    HANDLER_DONE.fetch_add(1, Ordering::SeqCst);
    IN_HANDLER.store(false, Ordering::SeqCst);
}

fn install_sigusr1(flags: c_int, block_all: bool) {
    install_sigusr1_handler(slow_handler, flags, block_all);
}

fn install_sigusr1_handler(handler: extern "C" fn(c_int), flags: c_int, block_all: bool) {
    // SAFETY: a zeroed, then initialised sigaction; the handlers are
    // async-signal-safe.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = handler as usize;
        sa.sa_flags = flags;
        if block_all {
            libc::sigfillset(&mut sa.sa_mask);
        } else {
            libc::sigemptyset(&mut sa.sa_mask);
        }
        assert_eq!(libc::sigaction(libc::SIGUSR1, &sa, std::ptr::null_mut()), 0);
    }
}

/// Counter deltas of one confirmed round.
#[derive(Debug)]
struct Round {
    sent: u64,
    deferred: u64,
    redirected: u64,
    handler_runs: u64,
}

/// Blocks a scoped thread in a cancellable read, sends it SIGUSR1 and,
/// while the (slow) SIGUSR1 handler runs, cancels the token. Retries until
/// the cancel demonstrably happened inside the handler (a few times at
/// most; the handler spins 40 ms). Returns the counter deltas.
fn cancel_inside_foreign_handler(flags: c_int, block_all: bool) -> Round {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    install_sigusr1(flags, block_all);
    for attempt in 0..10 {
        let (r, w) = pipe();
        let token = CancelToken::new();
        let t2 = token.clone();
        let (tid_tx, tid_rx) = mpsc::channel();
        let (res_tx, res_rx) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            let _scope = t2.enter().unwrap();
            tid_tx.send(gettid()).unwrap();
            let mut b = [0u8; 1];
            let res = cancel::read(&r, &mut b);
            res_tx
                .send((res, HANDLER_DONE.load(Ordering::SeqCst)))
                .unwrap();
        });
        let tid = tid_rx.recv_timeout(LONG).unwrap();
        await_blocked_in(tid, libc::SYS_read, LONG);
        let before = cancel::metrics();
        let done0 = HANDLER_DONE.load(Ordering::SeqCst);
        tgkill(tid, libc::SIGUSR1);
        assert!(eventually(LONG, || IN_HANDLER.load(Ordering::SeqCst)
            || HANDLER_DONE.load(Ordering::SeqCst) > done0));
        assert!(token.cancel());
        let inside = HANDLER_DONE.load(Ordering::SeqCst) == done0;
        let (res, done_at_return) = res_rx
            .recv_timeout(LONG)
            .expect("the read hung after a cancel sent during another handler");
        assert_eq!(
            res,
            Err(Error::Cancelled),
            "flags {flags:#x}, block_all {block_all}"
        );
        assert!(
            done_at_return > done0,
            "the read returned before the SIGUSR1 handler did"
        );
        // The thread leaves its scope (a deferred signal still pending is
        // delivered and ignored there) before the counters are read.
        thread.join().unwrap();
        let after = cancel::metrics();
        drop(w);
        if !inside {
            eprintln!("r18: attempt {attempt}: the handler ended before the cancel; again");
            continue;
        }
        let round = Round {
            sent: after.signals_sent - before.signals_sent,
            deferred: after.deferred - before.deferred,
            redirected: after.redirected - before.redirected,
            handler_runs: after.handler_runs - before.handler_runs,
        };
        eprintln!("r18: flags {flags:#x}, block_all {block_all}: {round:?}");
        assert_eq!(round.sent, 1, "one cancel, one signal: {round:?}");
        assert!(
            round.handler_runs >= round.deferred + round.redirected,
            "{round:?}"
        );
        return round;
    }
    panic!("could not cancel while the SIGUSR1 handler was running in 10 attempts");
}

/// SIGUSR1 with SA_RESTART, empty mask: the kernel rewinds the read to the
/// `syscall` instruction before running the SIGUSR1 handler; the cancel
/// signal interrupts that handler and is deferred; when the handler
/// returns it is delivered again with the PC inside the stub and
/// redirected.
#[test]
fn r18_cancel_inside_sa_restart_handler_is_deferred_then_acts() {
    let r = cancel_inside_foreign_handler(libc::SA_RESTART, false);
    assert!(r.deferred >= 1, "{r:?}");
    assert!(r.redirected >= 1, "{r:?}");
}

/// SIGUSR1 without SA_RESTART: the read is ended with `EINTR` (PC just
/// past the stub); the deferred cancel signal comes back there, is
/// deferred again, and the wrapper turns `EINTR` + pending cancel into
/// `Cancelled`.
#[test]
fn r18_cancel_inside_non_restart_handler_is_deferred_then_acts() {
    let r = cancel_inside_foreign_handler(0, false);
    assert!(r.deferred >= 1, "{r:?}");
}

/// The foreign handler blocks every signal (full `sa_mask`): the cancel
/// signal cannot interrupt it; it is delivered once the handler returns,
/// and then acts (with SA_RESTART the PC is back inside the stub; without,
/// the read returns `EINTR` with the cancel pending). Only the outcome and
/// the single signal are asserted here (in `cancel_inside_foreign_handler`);
/// the counters are printed.
#[test]
fn r18_cancel_while_handler_blocks_all_signals_acts_after_it() {
    cancel_inside_foreign_handler(libc::SA_RESTART, true);
    cancel_inside_foreign_handler(0, true);
}

/// The pipe the nested handler reads from.
static INNER_FD: AtomicI32 = AtomicI32::new(-1);
static INNER_STARTED: AtomicBool = AtomicBool::new(false);
/// 0: not returned yet, 1: Ok, 2: Cancelled, 3: another error.
static INNER_RESULT: AtomicI32 = AtomicI32::new(0);

/// A SIGUSR1 handler that itself makes a cancellable call (a `read` of an
/// empty pipe: it blocks until cancelled). Async-signal-safe: the
/// cancellable read allocates nothing and takes no lock.
extern "C" fn reading_handler(_sig: c_int) {
    INNER_STARTED.store(true, Ordering::SeqCst);
    let fd = INNER_FD.load(Ordering::SeqCst);
    // SAFETY: the test keeps the pipe open while the handler can run.
    let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    let mut b = [0u8; 1];
    let code = match cancel::read(fd, &mut b) {
        Ok(_) => 1,
        Err(Error::Cancelled) => 2,
        Err(_) => 3,
    };
    INNER_RESULT.store(code, Ordering::SeqCst);
}

/// R18, nested call: the foreign handler (SA_RESTART) that interrupted a
/// cancellable `read` makes a cancellable call of its own, and the cancel
/// arrives while that inner call is blocked. The one cancel signal is
/// consumed by the inner call (it returns `Cancelled`, as it should); when
/// the handler returns, the interrupted outer `read` must end `Cancelled`
/// too: its scope is cancelled.
///
/// Regression test: the handler once spent the single cancel signal on the
/// inner call and left nothing for the outer one, which had been rewound
/// to its trap for the `SA_RESTART` restart. The handler now also defers
/// (masks and re-raises) whenever the stub's in-call depth shows an outer
/// call interrupted by a signal handler.
#[test]
fn r18_cancel_taken_by_a_call_inside_the_foreign_handler_still_cancels_the_outer_call() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let (inner_r, inner_w) = pipe();
    INNER_FD.store(inner_r.as_raw_fd(), Ordering::SeqCst);
    INNER_STARTED.store(false, Ordering::SeqCst);
    INNER_RESULT.store(0, Ordering::SeqCst);
    install_sigusr1_handler(reading_handler, libc::SA_RESTART, false);

    let (r, w) = pipe();
    let token = CancelToken::new();
    let t2 = token.clone();
    let (tid_tx, tid_rx) = mpsc::channel();
    let (res_tx, res_rx) = mpsc::channel();
    let thread = std::thread::spawn(move || {
        let _scope = t2.enter().unwrap();
        tid_tx.send(gettid()).unwrap();
        let mut b = [0u8; 1];
        res_tx.send(cancel::read(&r, &mut b)).unwrap();
    });
    let tid = tid_rx.recv_timeout(LONG).unwrap();
    await_blocked_in(tid, libc::SYS_read, LONG);
    tgkill(tid, libc::SIGUSR1);
    assert!(eventually(LONG, || INNER_STARTED.load(Ordering::SeqCst)));
    // The thread is in the handler now: a blocked read is the inner one.
    await_blocked_in(tid, libc::SYS_read, LONG);
    assert!(token.cancel());
    assert!(
        eventually(LONG, || INNER_RESULT.load(Ordering::SeqCst) != 0),
        "the read inside the handler was not interrupted by the cancel"
    );
    assert_eq!(
        INNER_RESULT.load(Ordering::SeqCst),
        2,
        "the read inside the handler did not return Cancelled"
    );
    let outer = res_rx.recv_timeout(Duration::from_secs(5));
    let outer = match outer {
        Ok(res) => res,
        Err(_) => {
            // Release the stuck read so the thread can end.
            assert_eq!(cancel::write(&w, b"!"), Ok(1));
            let late = res_rx.recv_timeout(LONG);
            panic!(
                "the interrupted read of a cancelled scope did not return after the \
                 foreign handler (its cancel was consumed by the handler's own call); \
                 released by a write, it returned {late:?}"
            );
        }
    };
    assert_eq!(outer, Err(Error::Cancelled));
    thread.join().unwrap();
    drop((inner_r, inner_w, w));
}
