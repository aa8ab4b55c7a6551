//! R23: a foreign `EINTR` is retried, not taken for a cancel.
//!
//! A SIGUSR2 handler is installed *without* SA_RESTART, so every SIGUSR2
//! ends a blocked syscall with `EINTR`. A thread inside a (never
//! cancelled) scope, blocked in a cancellable `read`, `poll`, `sleep` or
//! `epoll_wait`, gets SIGUSR2 several times: the call must go on waiting
//! (no `Err(EINTR)`, no `Cancelled`) and complete normally; timed waits
//! must not be stretched by the restarts.
//!
//! Own test binary: it installs a SIGUSR2 handler and checks that no
//! cancel signal was sent meanwhile (process-wide), so its tests run one
//! at a time (SERIAL).

mod support;

use hangsafe::cancel::{self, CancelToken, Error};
use std::ffi::c_int;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Mutex, Once};
use std::time::{Duration, Instant};
use support::{await_blocked_in, eventually, gettid, pipe, tgkill};

const LONG: Duration = Duration::from_secs(20);

static SERIAL: Mutex<()> = Mutex::new(());
static USR2_RUNS: AtomicU64 = AtomicU64::new(0);

extern "C" fn on_usr2(_sig: c_int) {
    USR2_RUNS.fetch_add(1, Ordering::SeqCst);
}

fn install_sigusr2_without_restart() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: a zeroed, then initialised sigaction; the handler only
        // increments an atomic.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_usr2 as extern "C" fn(c_int) as usize;
            sa.sa_flags = 0; // no SA_RESTART: blocked calls end with EINTR
            libc::sigemptyset(&mut sa.sa_mask);
            assert_eq!(libc::sigaction(libc::SIGUSR2, &sa, std::ptr::null_mut()), 0);
        }
    });
}

fn serial() -> std::sync::MutexGuard<'static, ()> {
    install_sigusr2_without_restart();
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

/// Runs `f` on a new thread inside a scope of a token nobody cancels.
fn spawn_in_scope<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> (i32, CancelToken, mpsc::Receiver<T>) {
    let token = CancelToken::new();
    let t2 = token.clone();
    let (tid_tx, tid_rx) = mpsc::channel();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _scope = t2.enter().unwrap();
        tid_tx.send(gettid()).unwrap();
        let _ = tx.send(f());
    });
    (tid_rx.recv_timeout(LONG).unwrap(), token, rx)
}

/// Sends SIGUSR2 to `tid` `times` times, each time once it is asleep in
/// syscall `nr` again, and waits for the handler to have run. Ends with the
/// thread asleep in `nr` once more.
fn interrupt_repeatedly(tid: i32, nr: i64, times: u32) {
    for _ in 0..times {
        await_blocked_in(tid, nr, LONG);
        let before = USR2_RUNS.load(Ordering::SeqCst);
        tgkill(tid, libc::SIGUSR2);
        assert!(eventually(LONG, || USR2_RUNS.load(Ordering::SeqCst) > before));
    }
    await_blocked_in(tid, nr, LONG);
}

#[test]
fn r23_foreign_eintr_during_read_is_retried() {
    let _g = serial();
    let sent0 = cancel::metrics().signals_sent;
    let (r, w) = pipe();
    let (tid, token, rx) = spawn_in_scope(move || {
        let mut buf = [0u8; 8];
        cancel::read(&r, &mut buf).map(|n| buf[..n].to_vec())
    });
    interrupt_repeatedly(tid, libc::SYS_read, 6);
    assert!(
        rx.try_recv().is_err(),
        "the read returned on a foreign signal"
    );
    assert_eq!(cancel::write(&w, b"data"), Ok(4));
    assert_eq!(rx.recv_timeout(LONG).unwrap(), Ok(b"data".to_vec()));
    assert!(!token.is_cancelled());
    assert_eq!(
        cancel::metrics().signals_sent,
        sent0,
        "a cancel signal was sent"
    );
}

#[test]
fn r23_foreign_eintr_during_poll_is_retried_and_cancel_still_works() {
    let _g = serial();
    // First: completes normally when data arrives.
    let (r, w) = pipe();
    let (tid, _token, rx) = spawn_in_scope(move || {
        let mut fds = [libc::pollfd {
            fd: r.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        cancel::poll(&mut fds, None).map(|n| (n, fds[0].revents))
    });
    interrupt_repeatedly(tid, libc::SYS_ppoll, 6);
    assert!(rx.try_recv().is_err(), "poll returned on a foreign signal");
    assert_eq!(cancel::write(&w, b"x"), Ok(1));
    assert_eq!(rx.recv_timeout(LONG).unwrap(), Ok((1, libc::POLLIN)));

    // Then: after foreign signals, a real cancel is still a cancel.
    let (r, w) = pipe();
    let (tid, token, rx) = spawn_in_scope(move || {
        let mut fds = [libc::pollfd {
            fd: r.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        cancel::poll(&mut fds, None)
    });
    interrupt_repeatedly(tid, libc::SYS_ppoll, 3);
    assert!(token.cancel());
    assert_eq!(rx.recv_timeout(LONG).unwrap(), Err(Error::Cancelled));
    drop(w);
}

/// Timed waits keep their deadline across foreign interruptions: `sleep`
/// (absolute `clock_nanosleep`), `poll` and `epoll_wait` (remaining time
/// recomputed) each wait 3 s while being interrupted every ~100 ms for
/// 2.8 s. Restarting with the full duration would end after 5.8 s or more;
/// they must end after 3 s and (generously) before 5 s, with their normal
/// result.
#[test]
fn r23_foreign_eintr_does_not_stretch_timed_waits() {
    let _g = serial();
    let sent0 = cancel::metrics().signals_sent;
    let wait = Duration::from_secs(3);
    type Timed = (String, Result<usize, Error>, Duration);
    let mut threads: Vec<(i32, mpsc::Receiver<Timed>)> = Vec::new();

    let (tid, _t, rx) = spawn_in_scope(move || {
        let t0 = Instant::now();
        let r = cancel::sleep(wait).map(|()| 0);
        ("sleep".to_string(), r, t0.elapsed())
    });
    threads.push((tid, rx));

    let (pr, pw) = pipe();
    let (tid, _t, rx) = spawn_in_scope(move || {
        let mut fds = [libc::pollfd {
            fd: pr.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        let t0 = Instant::now();
        let r = cancel::poll(&mut fds, Some(wait));
        ("poll".to_string(), r, t0.elapsed())
    });
    threads.push((tid, rx));

    let (er, ew) = pipe();
    // SAFETY: no memory arguments.
    let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    assert!(ep >= 0);
    // SAFETY: a new descriptor we own.
    let ep = unsafe { OwnedFd::from_raw_fd(ep) };
    let mut ev = libc::epoll_event {
        events: libc::EPOLLIN as u32,
        u64: 0,
    };
    assert_eq!(
        // SAFETY: the kernel reads one epoll_event.
        unsafe { libc::epoll_ctl(ep.as_raw_fd(), libc::EPOLL_CTL_ADD, er.as_raw_fd(), &mut ev) },
        0
    );
    let (tid, _t, rx) = spawn_in_scope(move || {
        let mut evs = [libc::epoll_event { events: 0, u64: 0 }; 2];
        let t0 = Instant::now();
        let r = cancel::epoll_wait(&ep, &mut evs, Some(wait));
        ("epoll_wait".to_string(), r, t0.elapsed())
    });
    threads.push((tid, rx));

    let start = Instant::now();
    let runs0 = USR2_RUNS.load(Ordering::SeqCst);
    let mut sent = 0u64;
    while start.elapsed() < Duration::from_millis(2800) {
        for (tid, rx) in &threads {
            // Only while the thread is still waiting (tgkill to a thread
            // that ended would fail).
            if !matches!(rx.try_recv(), Err(mpsc::TryRecvError::Empty)) {
                panic!("a timed wait ended early");
            }
            tgkill(*tid, libc::SIGUSR2);
            sent += 1;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    for (_, rx) in threads {
        let (what, r, took) = rx.recv_timeout(LONG).unwrap();
        eprintln!("r23: {what} returned {r:?} after {took:?}");
        assert_eq!(r, Ok(0), "{what}");
        assert!(took >= wait, "{what} ended early: {took:?}");
        assert!(
            took < wait + Duration::from_secs(2),
            "{what} was stretched: {took:?}"
        );
    }
    let runs = USR2_RUNS.load(Ordering::SeqCst) - runs0;
    assert!(
        runs >= sent / 2,
        "only {runs} of {sent} SIGUSR2 were handled"
    );
    assert_eq!(
        cancel::metrics().signals_sent,
        sent0,
        "a cancel signal was sent"
    );
    drop((pw, ew));
}
