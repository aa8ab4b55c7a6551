//! H10–H12: signal masks of hangsafe's threads, and a cancel signal whose
//! disposition the application changed.

mod hp;

use hangsafe::runner::{Builder, Pool, RunError};
use hp::{eventually, in_child, Ended};
use std::sync::atomic::{AtomicI32, AtomicU32, Ordering};
use std::time::Duration;

static HANDLED_ON: AtomicI32 = AtomicI32::new(0);

extern "C" fn record_tid(_: libc::c_int) {
    // SAFETY: gettid is async-signal-safe.
    HANDLED_ON.store(unsafe { libc::gettid() }, Ordering::SeqCst);
}

fn set_mask(how: libc::c_int, sig: Option<i32>) {
    // SAFETY: a local set, initialised before use.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        match sig {
            Some(s) => {
                libc::sigemptyset(&mut set);
                libc::sigaddset(&mut set, s);
            }
            None => {
                libc::sigfillset(&mut set);
            }
        }
        libc::pthread_sigmask(how, &set, std::ptr::null_mut());
    }
}

/// H10: a process-directed signal is never handled on a hangsafe thread
/// (pool thread, idle or running work, or the timer), even when the
/// application thread blocks it only after hangsafe's threads exist.
#[test]
fn h10_internal_threads_do_not_take_process_signals() {
    let end = in_child(Duration::from_secs(60), || {
        // SAFETY: installs a handler that only stores gettid().
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = record_tid as *const () as usize;
            libc::sigaction(libc::SIGALRM, &sa, std::ptr::null_mut());
        }
        let pool = Pool::builder().name("h10").build();
        // A thread running work, an idle thread, and the timer.
        let busy = Builder::new()
            .pool(&pool)
            .timeout(Duration::from_secs(60))
            .spawn(|ctx| {
                while !ctx.is_cancelled() {
                    std::thread::sleep(Duration::from_millis(1));
                }
            })
            .unwrap();
        let r = Builder::new()
            .pool(&pool)
            .timeout(Duration::from_secs(60))
            .spawn(|_| 1)
            .unwrap();
        if r.wait() != Ok(1) {
            return 2;
        }
        if !eventually(Duration::from_secs(10), || {
            pool.metrics().threads_alive >= 2
        }) {
            return 3;
        }
        set_mask(libc::SIG_BLOCK, Some(libc::SIGALRM));
        // SAFETY: a process-directed signal to ourselves.
        unsafe { libc::kill(libc::getpid(), libc::SIGALRM) };
        std::thread::sleep(Duration::from_millis(300));
        let early = HANDLED_ON.load(Ordering::SeqCst);
        set_mask(libc::SIG_UNBLOCK, Some(libc::SIGALRM));
        drop(busy);
        // SAFETY: gettid has no preconditions.
        let me = unsafe { libc::gettid() };
        if early != 0 {
            return 4; // handled on another thread: a hangsafe thread
        }
        if HANDLED_ON.load(Ordering::SeqCst) != me {
            return 5;
        }
        0
    });
    assert_eq!(end, Ended::Code(0));
}

/// H11: work that blocks every signal and returns does not leave its pool
/// thread deaf to cancels: the next job, blocked in a cancellable read, is
/// interrupted at its deadline.
#[test]
fn h11_each_job_starts_with_the_cancel_signal_unblocked() {
    let pool = Pool::builder().name("h11").max_threads(1).build();
    let r = Builder::new()
        .pool(&pool)
        .spawn(|_| set_mask(libc::SIG_BLOCK, None))
        .unwrap();
    assert_eq!(r.wait(), Ok(()));
    assert!(eventually(Duration::from_secs(10), || pool
        .metrics()
        .threads_idle
        == 1));
    let (rd, wr) = hp::pipe();
    let r = Builder::new()
        .pool(&pool)
        .timeout(Duration::from_millis(100))
        .spawn(move |_| {
            let mut b = [0u8; 1];
            hangsafe::cancel::read(&rd, &mut b).is_err()
        })
        .unwrap();
    let returned = eventually(Duration::from_secs(10), || r.is_finished());
    // Unblock a deaf read before failing, so the pool thread ends.
    drop(wr);
    assert!(returned, "the read was not interrupted at the deadline");
    assert_eq!(r.wait(), Err(RunError::TimedOut));
}

static FOREIGN: AtomicU32 = AtomicU32::new(0);

extern "C" fn foreign(_: libc::c_int) {
    FOREIGN.fetch_add(1, Ordering::SeqCst);
}

/// Cancels a runner blocked in a cancellable read after
/// `reset` changed the cancel signal's disposition. Returns the child's
/// exit code: 0 if the process survived, the runner was cancelled, and no cancel
/// signal was sent to the changed disposition.
fn cancel_after(reset: fn(i32)) -> i32 {
    let pool = Pool::builder().name("h12").build();
    let r = pool.spawn(|_| 1).unwrap(); // installs the cancel signal
    if r.wait() != Ok(1) {
        return 2;
    }
    let Some(sig) = hangsafe::cancel::signal() else {
        return 3;
    };
    reset(sig);
    let sent = hangsafe::cancel::metrics().signals_sent;
    let (rd, wr) = hp::pipe();
    let r = pool
        .spawn(move |ctx| {
            let mut b = [0u8; 1];
            let _ = hangsafe::cancel::read(&rd, &mut b);
            ctx.is_cancelled()
        })
        .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    r.cancel();
    std::thread::sleep(Duration::from_millis(200));
    // Cooperative from here: the read is not interrupted; answer it.
    // SAFETY: writes one byte from a local buffer to our pipe.
    unsafe {
        libc::write(
            std::os::fd::AsRawFd::as_raw_fd(&wr),
            b"x".as_ptr().cast(),
            1,
        )
    };
    if r.wait() != Err(RunError::Cancelled) {
        return 4;
    }
    if hangsafe::cancel::metrics().signals_sent != sent || FOREIGN.load(Ordering::SeqCst) != 0 {
        return 5;
    }
    0
}

/// H12: the application reset the cancel signal to `SIG_DFL` (or put its
/// own handler there) after hangsafe installed it: a cancel must not kill
/// the process or reach the foreign handler; it falls back to cooperative
/// cancellation.
#[test]
fn h12_foreign_disposition_is_never_signalled() {
    let dfl = in_child(Duration::from_secs(60), || {
        cancel_after(|sig| {
            // SAFETY: resets a real-time signal to its default action.
            unsafe { libc::signal(sig, libc::SIG_DFL) };
        })
    });
    assert_eq!(dfl, Ended::Code(0), "SIG_DFL");
    let own = in_child(Duration::from_secs(60), || {
        cancel_after(|sig| {
            // SAFETY: installs a handler that only counts.
            unsafe { libc::signal(sig, foreign as *const () as libc::sighandler_t) };
        })
    });
    assert_eq!(own, Ended::Code(0), "foreign handler");
}
