//! Cancellation of blocking syscalls, race by race (R12, R14-R17, R19,
//! R21's API contract, R22), on real threads. Test names carry the race IDs
//! of `docs/races.md`.
//!
//! Nothing here installs a signal handler of its own or measures a
//! process-wide quantity exactly (those tests live in their own binaries:
//! `cancel_nested_signal.rs`, `cancel_foreign_eintr.rs`,
//! `cancel_signal_count.rs`, `cancel_thread_exit.rs`, `cancel_fd_leak.rs`,
//! `cancel_thread_reuse.rs`, `cancel_no_lost_bytes.rs`). Process-wide
//! counters are only checked for "increased", which concurrent tests cannot
//! break.
//!
//! "Blocked" is not guessed from a sleep: the tests wait until
//! `/proc/self/task/<tid>/syscall` shows the thread asleep in the expected
//! syscall, then cancel. Every time bound is a generous liveness bound.

mod support;

use hangsafe::cancel::{self, CancelToken, Cancellable, Error};
use hangsafe::runner::{Builder, Pool, RunError, SpawnError, State};
use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};
use support::{
    await_blocked_in, blocked_syscall, eventually, gettid, pipe, readable_bytes, spin_for, Rng,
};

/// Hard cap on any single wait: a hang fails the test instead of hanging it.
const LONG: Duration = Duration::from_secs(20);
/// "Quickly": how soon a cancelled blocked call must return. Generous.
const QUICK: Duration = Duration::from_secs(5);

fn pool() -> Pool {
    Pool::builder().idle_timeout(Duration::from_secs(5)).build()
}

fn errno() -> i32 {
    io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// A thread inside a fresh token's scope, running one call.
struct InScope<T> {
    token: CancelToken,
    tid: i32,
    done: mpsc::Receiver<(T, Instant)>,
}

/// Runs `f` on a new thread inside a scope of a new token.
fn in_scope<T, F>(f: F) -> InScope<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let token = CancelToken::new();
    let inner = token.clone();
    let (tid_tx, tid_rx) = mpsc::channel();
    let (tx, done) = mpsc::channel();
    std::thread::spawn(move || {
        let scope = inner.enter().expect("enter a fresh token's scope");
        tid_tx.send(gettid()).unwrap();
        let r = f();
        let at = Instant::now();
        drop(scope);
        let _ = tx.send((r, at));
    });
    let tid = tid_rx
        .recv_timeout(LONG)
        .expect("scope thread did not start");
    InScope { token, tid, done }
}

impl<T> InScope<T> {
    /// Waits until the thread sleeps in syscall `nr`, cancels the token,
    /// and returns the call's result and how long after the cancel it came.
    fn cancel_when_blocked(self, nr: i64) -> (T, Duration) {
        await_blocked_in(self.tid, nr, LONG);
        let t0 = Instant::now();
        assert!(self.token.cancel(), "the token was already cancelled");
        let (r, at) = self.done.recv_timeout(LONG).unwrap_or_else(|_| {
            panic!("the call blocked in syscall {nr} was not interrupted within {LONG:?}")
        });
        (r, at.saturating_duration_since(t0))
    }
}

fn assert_quick(took: Duration, what: &str) {
    assert!(took < QUICK, "{what}: the cancel took {took:?} to act");
}

fn write_all(fd: impl std::os::fd::AsFd, data: &[u8]) {
    assert_eq!(cancel::write(fd, data), Ok(data.len()));
}

fn cstring(p: &std::path::Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).unwrap()
}

fn temp_file(tag: &str, contents: &[u8]) -> support::RemoveOnDrop {
    let path = support::temp_path(tag);
    std::fs::write(&path, contents).unwrap();
    support::RemoveOnDrop(path)
}

fn open_rw(p: &std::path::Path) -> File {
    OpenOptions::new().read(true).write(true).open(p).unwrap()
}

fn write_lock() -> libc::flock {
    // SAFETY: flock is plain data; all-zero is a valid value.
    let mut lk: libc::flock = unsafe { std::mem::zeroed() };
    lk.l_type = libc::F_WRLCK as libc::c_short;
    lk.l_whence = libc::SEEK_SET as libc::c_short;
    lk
}

// ---------------------------------------------------------------- R12 ----

/// R12: a cancel that happened before the call. The token is cancelled
/// first; every cancellable call in its scope is `Cancelled` without
/// effect: the pipe's data is still all there afterwards.
#[test]
fn r12_cancelled_scope_read_has_no_effect() {
    let (r, w) = pipe();
    write_all(&w, b"abc");
    let token = CancelToken::new();
    assert!(token.cancel());
    assert!(token.is_cancelled());
    let (r, w) = std::thread::spawn(move || {
        let scope = token.enter().unwrap();
        let mut buf = [0u8; 8];
        assert_eq!(cancel::read(&r, &mut buf), Err(Error::Cancelled));
        assert_eq!(buf, [0; 8], "a cancelled read wrote into the buffer");
        assert_eq!(cancel::write(&w, b"d"), Err(Error::Cancelled));
        let mut fds = [libc::pollfd {
            fd: r.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        assert_eq!(
            cancel::poll(&mut fds, Some(Duration::ZERO)),
            Err(Error::Cancelled)
        );
        assert_eq!(cancel::sleep(Duration::ZERO), Err(Error::Cancelled));
        assert_eq!(cancel::testcancel(), Err(Error::Cancelled));
        drop(scope);
        // Outside the scope the calls are plain again.
        assert_eq!(cancel::testcancel(), Ok(()));
        (r, w)
    })
    .join()
    .unwrap();
    assert_eq!(readable_bytes(&r), 3, "the cancelled read consumed data");
    let mut buf = [0u8; 8];
    assert_eq!(cancel::read(&r, &mut buf), Ok(3));
    assert_eq!(&buf[..3], b"abc");
    drop(w);
}

/// R12 for runners: the runner is cancelled (explicitly, or by its
/// deadline) while its work is still before the read; the read then
/// returns `Cancelled` without consuming anything.
#[test]
fn r12_runner_cancelled_before_its_read() {
    let pool = pool();
    for by_deadline in [false, true] {
        // Under heavy load a short deadline may pass before a pool thread
        // picks the work up (then the work never runs, R1): try again
        // with a longer one.
        let mut deadline = Duration::from_millis(30);
        let (runner, r, gate_tx, res_rx) = loop {
            let (r, w) = pipe();
            write_all(&w, b"abc");
            let r = Arc::new(r);
            let r2 = Arc::clone(&r);
            let (started_tx, started_rx) = mpsc::channel();
            let (gate_tx, gate_rx) = mpsc::channel::<()>();
            let (res_tx, res_rx) = mpsc::channel();
            let mut b = Builder::new().pool(&pool);
            if by_deadline {
                b = b.timeout(deadline);
            }
            let runner = b
                .spawn(move |ctx| {
                    started_tx.send(()).unwrap();
                    // A plain (not cancellable) wait: the cancel arrives here.
                    gate_rx.recv().unwrap();
                    let seen = ctx.is_cancelled();
                    let mut buf = [0u8; 8];
                    res_tx.send((seen, cancel::read(&*r2, &mut buf))).unwrap();
                })
                .unwrap();
            match started_rx.recv_timeout(LONG) {
                Ok(()) => break (runner, r, gate_tx, res_rx),
                Err(_) if by_deadline && deadline < LONG => deadline *= 2,
                Err(e) => panic!("the work did not start: {e}"),
            }
        };
        if by_deadline {
            assert!(eventually(LONG, || runner.state() == State::Cancelled));
        } else {
            assert_eq!(runner.cancel(), State::Cancelled);
        }
        gate_tx.send(()).unwrap();
        let (seen, res) = res_rx.recv_timeout(LONG).unwrap();
        assert!(
            seen,
            "the work did not see its cancel (deadline: {by_deadline})"
        );
        assert_eq!(res, Err(Error::Cancelled), "deadline: {by_deadline}");
        assert_eq!(readable_bytes(&*r), 3, "the cancelled read consumed data");
        let want = if by_deadline {
            RunError::TimedOut
        } else {
            RunError::Cancelled
        };
        assert_eq!(runner.wait(), Err(want));
    }
}

// ---------------------------------------------------------------- R14 ----

/// R14: blocked in `read` on an empty pipe (restartable: the kernel rewinds
/// the PC into the stub). The cancel interrupts it at once, and the pipe is
/// untouched: bytes written afterwards all go to the next reader.
#[test]
fn r14_blocked_pipe_read_is_cancelled_and_pipe_untouched() {
    let (r, w) = pipe();
    let r = Arc::new(r);
    let r2 = Arc::clone(&r);
    let s = in_scope(move || {
        let mut buf = [0u8; 16];
        cancel::read(&*r2, &mut buf)
    });
    let (res, took) = s.cancel_when_blocked(libc::SYS_read);
    assert_eq!(res, Err(Error::Cancelled));
    assert_quick(took, "read");
    write_all(&w, b"after");
    assert_eq!(readable_bytes(&*r), 5);
    let mut buf = [0u8; 16];
    assert_eq!(cancel::read(&*r, &mut buf), Ok(5));
    assert_eq!(&buf[..5], b"after");
}

/// R14: blocked in `accept4`. Cancelled; the listener is untouched: a
/// client connecting afterwards is accepted by another caller, with its
/// data.
#[test]
fn r14_blocked_accept_is_cancelled_and_listener_untouched() {
    let listener = Arc::new(TcpListener::bind("127.0.0.1:0").unwrap());
    let addr = listener.local_addr().unwrap();
    let l2 = Arc::clone(&listener);
    let s = in_scope(move || cancel::accept4(&*l2, 0).map(|_| ()));
    let (res, took) = s.cancel_when_blocked(libc::SYS_accept4);
    assert_eq!(res, Err(Error::Cancelled));
    assert_quick(took, "accept4");
    let mut client = TcpStream::connect(addr).unwrap();
    client.write_all(b"hi").unwrap();
    let (mut conn, peer) = listener.accept().unwrap();
    assert_eq!(peer, client.local_addr().unwrap());
    let mut buf = [0u8; 2];
    conn.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"hi");
}

/// R14: blocked in `openat` of a FIFO that has no writer. Cancelled; no
/// reader is left behind (a non-blocking writer open finds none: ENXIO).
#[test]
fn r14_blocked_fifo_open_is_cancelled_and_leaves_no_reader() {
    let fifo = support::mkfifo("r14-fifo");
    let p = fifo.0.clone();
    let s = in_scope(move || cancel::openat(None, &p, libc::O_RDONLY, 0).map(|_| ()));
    let (res, took) = s.cancel_when_blocked(libc::SYS_openat);
    assert_eq!(res, Err(Error::Cancelled));
    assert_quick(took, "openat");
    let c = cstring(&fifo.0);
    // SAFETY: `c` is a NUL-terminated path.
    let fd = unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_WRONLY | libc::O_NONBLOCK | libc::O_CLOEXEC,
        )
    };
    let e = errno();
    if fd >= 0 {
        // SAFETY: we own the descriptor just opened.
        drop(unsafe { OwnedFd::from_raw_fd(fd) });
        panic!("a reader is still open on the FIFO after the cancelled openat");
    }
    assert_eq!(e, libc::ENXIO);
}

/// R14: blocked in `flock(LOCK_EX)` on a file another open file
/// description holds. Cancelled; the cancelled waiter neither holds nor
/// waits for the lock: once the holder unlocks, a third OFD takes it at
/// once.
#[test]
fn r14_blocked_flock_is_cancelled_and_lock_untouched() {
    let f = temp_file("r14-flock", b"x");
    let holder = open_rw(&f.0);
    // SAFETY: flock on a descriptor we own.
    assert_eq!(unsafe { libc::flock(holder.as_raw_fd(), libc::LOCK_EX) }, 0);
    let waiter = Arc::new(open_rw(&f.0));
    let w2 = Arc::clone(&waiter);
    let s = in_scope(move || cancel::flock(&*w2, libc::LOCK_EX));
    let (res, took) = s.cancel_when_blocked(libc::SYS_flock);
    assert_eq!(res, Err(Error::Cancelled));
    assert_quick(took, "flock");
    // SAFETY: as above.
    assert_eq!(unsafe { libc::flock(holder.as_raw_fd(), libc::LOCK_UN) }, 0);
    let third = open_rw(&f.0);
    // SAFETY: as above.
    let rc = unsafe { libc::flock(third.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    assert_eq!(
        rc,
        0,
        "the lock is not free: {}",
        io::Error::last_os_error()
    );
}

/// R14: blocked in `fcntl(F_OFD_SETLKW)` against another OFD's write lock.
/// Cancelled; afterwards the lock goes to a third OFD once it is released.
#[test]
fn r14_blocked_ofd_lock_wait_is_cancelled_and_lock_untouched() {
    let f = temp_file("r14-ofd", b"x");
    let holder = open_rw(&f.0);
    let lk = write_lock();
    assert_eq!(
        // SAFETY: the kernel reads one struct flock.
        unsafe { libc::fcntl(holder.as_raw_fd(), libc::F_OFD_SETLK, &lk) },
        0
    );
    let waiter = Arc::new(open_rw(&f.0));
    let w2 = Arc::clone(&waiter);
    let s = in_scope(move || cancel::fcntl_lock_wait(&*w2, &write_lock(), true));
    let (res, took) = s.cancel_when_blocked(libc::SYS_fcntl);
    assert_eq!(res, Err(Error::Cancelled));
    assert_quick(took, "fcntl(F_OFD_SETLKW)");
    let mut un = write_lock();
    un.l_type = libc::F_UNLCK as libc::c_short;
    assert_eq!(
        // SAFETY: as above.
        unsafe { libc::fcntl(holder.as_raw_fd(), libc::F_OFD_SETLK, &un) },
        0
    );
    let third = open_rw(&f.0);
    // SAFETY: as above.
    let rc = unsafe { libc::fcntl(third.as_raw_fd(), libc::F_OFD_SETLK, &lk) };
    assert_eq!(
        rc,
        0,
        "the lock is not free: {}",
        io::Error::last_os_error()
    );
}

/// Forks a child that runs `child` (async-signal-safe code only) and then
/// `_exit`s with its return value.
fn fork_child(child: impl FnOnce() -> i32) -> libc::pid_t {
    // SAFETY: the child runs only async-signal-safe libc calls (the
    // closures given here use raw fcntl/read/write/poll) and then _exit.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", io::Error::last_os_error());
    if pid == 0 {
        let code = child();
        // SAFETY: ends the child without running the parent's destructors.
        unsafe { libc::_exit(code) };
    }
    pid
}

/// In a forked child: waits (at most 20 s) for one byte on `fd`.
fn child_wait_byte(fd: i32) -> u8 {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    let mut b = 0u8;
    // SAFETY: async-signal-safe calls on valid pointers.
    unsafe {
        if libc::poll(&mut p, 1, 20_000) == 1 {
            libc::read(fd, (&mut b as *mut u8).cast(), 1);
        }
    }
    b
}

/// In a forked child: writes one byte to `fd`.
fn child_send_byte(fd: i32, b: u8) {
    // SAFETY: an async-signal-safe write from a valid one-byte buffer.
    unsafe { libc::write(fd, (&b as *const u8).cast(), 1) };
}

fn read_byte(fd: impl std::os::fd::AsFd) -> u8 {
    let mut b = [0u8; 1];
    assert_eq!(cancel::read(fd, &mut b), Ok(1));
    b[0]
}

fn reap(pid: libc::pid_t) -> i32 {
    let mut status = 0;
    // SAFETY: waitpid writes one int.
    let r = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(r, pid, "waitpid: {}", io::Error::last_os_error());
    assert!(libc::WIFEXITED(status), "child status {status:#x}");
    libc::WEXITSTATUS(status)
}

/// R14: blocked in `fcntl(F_SETLKW)` on a record lock a child process
/// holds. Cancelled; and when the child releases and immediately re-takes
/// its lock (non-blocking) it gets it: the cancelled waiter is not queued
/// for the lock and does not hold it.
#[test]
fn r14_blocked_posix_lock_held_by_child_is_cancelled() {
    let f = temp_file("r14-posix", b"x");
    let file = Arc::new(open_rw(&f.0));
    let (ready_r, ready_w) = pipe();
    let (cmd_r, cmd_w) = pipe();
    let lk = write_lock();
    let mut un = write_lock();
    un.l_type = libc::F_UNLCK as libc::c_short;
    let (fd, rw, cr) = (file.as_raw_fd(), ready_w.as_raw_fd(), cmd_r.as_raw_fd());
    let pid = fork_child(|| {
        // SAFETY: fcntl reads one struct flock; async-signal-safe.
        let locked = unsafe { libc::fcntl(fd, libc::F_SETLK, &lk) } == 0;
        child_send_byte(rw, if locked { b'L' } else { b'E' });
        if child_wait_byte(cr) != b'g' {
            return 2;
        }
        // SAFETY: as above.
        unsafe { libc::fcntl(fd, libc::F_SETLK, &un) };
        // SAFETY: as above.
        let again = unsafe { libc::fcntl(fd, libc::F_SETLK, &lk) } == 0;
        child_send_byte(rw, if again { b'A' } else { b'B' });
        0
    });
    assert_eq!(
        read_byte(&ready_r),
        b'L',
        "the child could not take the lock"
    );
    let f2 = Arc::clone(&file);
    let s = in_scope(move || cancel::fcntl_lock_wait(&*f2, &write_lock(), false));
    let (res, took) = s.cancel_when_blocked(libc::SYS_fcntl);
    assert_eq!(res, Err(Error::Cancelled));
    assert_quick(took, "fcntl(F_SETLKW)");
    write_all(&cmd_w, b"g");
    assert_eq!(
        read_byte(&ready_r),
        b'A',
        "the child could not re-take its lock after releasing it"
    );
    assert_eq!(reap(pid), 0);
}

/// R14: blocked in `wait4` for a child that has not exited. Cancelled; the
/// child's exit status is not consumed: it is still there to reap.
#[test]
fn r14_blocked_wait4_is_cancelled_and_child_still_reapable() {
    let (cmd_r, cmd_w) = pipe();
    let cr = cmd_r.as_raw_fd();
    let pid = fork_child(|| if child_wait_byte(cr) == b'x' { 7 } else { 3 });
    let s = in_scope(move || cancel::wait4(pid, 0));
    let (res, took) = s.cancel_when_blocked(libc::SYS_wait4);
    assert_eq!(res, Err(Error::Cancelled));
    assert_quick(took, "wait4");
    write_all(&cmd_w, b"x");
    assert_eq!(reap(pid), 7);
    drop(cmd_r);
}

// ---------------------------------------------------------------- R15 ----

/// R15: calls the kernel never restarts after a handler (`ppoll`, `poll`,
/// `epoll_pwait`, `clock_nanosleep`): the interrupted call returns `EINTR`
/// with the PC past the stub, and with the cancel pending that is
/// `Cancelled`, never `EINTR`.
#[test]
fn r15_blocked_poll_is_cancelled() {
    let (r, w) = pipe();
    let s = in_scope(move || {
        let mut fds = [libc::pollfd {
            fd: r.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        cancel::poll(&mut fds, None)
    });
    let (res, took) = s.cancel_when_blocked(libc::SYS_ppoll);
    assert_eq!(res, Err(Error::Cancelled));
    assert_quick(took, "poll");
    drop(w);
}

#[test]
fn r15_blocked_ppoll_with_timeout_and_mask_is_cancelled() {
    let (r, w) = pipe();
    let s = in_scope(move || {
        let mut fds = [libc::pollfd {
            fd: r.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        // SAFETY: sigemptyset initialises the set.
        let mut mask: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        unsafe { libc::sigemptyset(&mut mask) };
        cancel::ppoll(&mut fds, Some(Duration::from_secs(3600)), Some(&mask))
    });
    let (res, took) = s.cancel_when_blocked(libc::SYS_ppoll);
    assert_eq!(res, Err(Error::Cancelled));
    assert_quick(took, "ppoll");
    drop(w);
}

#[test]
fn r15_blocked_sleep_is_cancelled() {
    let s = in_scope(|| cancel::sleep(Duration::from_secs(3600)));
    let (res, took) = s.cancel_when_blocked(libc::SYS_clock_nanosleep);
    assert_eq!(res, Err(Error::Cancelled));
    assert_quick(took, "sleep");
}

#[test]
fn r15_blocked_epoll_wait_is_cancelled() {
    let (r, w) = pipe();
    // SAFETY: epoll_create1 has no memory arguments.
    let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    assert!(ep >= 0);
    // SAFETY: a new descriptor we own.
    let ep = unsafe { OwnedFd::from_raw_fd(ep) };
    let mut ev = libc::epoll_event {
        events: libc::EPOLLIN as u32,
        u64: 1,
    };
    // SAFETY: the kernel reads one epoll_event.
    let rc =
        unsafe { libc::epoll_ctl(ep.as_raw_fd(), libc::EPOLL_CTL_ADD, r.as_raw_fd(), &mut ev) };
    assert_eq!(rc, 0);
    let s = in_scope(move || {
        let mut evs = [libc::epoll_event { events: 0, u64: 0 }; 4];
        cancel::epoll_wait(&ep, &mut evs, None)
    });
    let (res, took) = s.cancel_when_blocked(libc::SYS_epoll_pwait);
    assert_eq!(res, Err(Error::Cancelled));
    assert_quick(took, "epoll_wait");
    drop((r, w));
}

// ---------------------------------------------------------------- R16 ----

/// R16, deterministic part: a read that completed keeps its data even
/// though a cancel arrives right after it (the signal lands outside the
/// stub, in user code: it must not act there); the next cancellable call is
/// `Cancelled` and consumes nothing. The random, racing part is
/// `cancel_no_lost_bytes.rs`.
#[test]
fn r16_completed_read_keeps_its_data_then_next_call_is_cancelled() {
    let before = cancel::metrics();
    let (r, w) = pipe();
    write_all(&w, b"helloworld");
    let r = Arc::new(r);
    let r2 = Arc::clone(&r);
    let (got_tx, got_rx) = mpsc::channel();
    let (gate_tx, gate_rx) = mpsc::channel::<()>();
    let s = in_scope(move || {
        let mut buf = [0u8; 5];
        let first = cancel::read(&*r2, &mut buf).map(|n| buf[..n].to_vec());
        got_tx.send(first).unwrap();
        gate_rx.recv().unwrap(); // the cancel arrives here
        cancel::read(&*r2, &mut buf)
    });
    assert_eq!(got_rx.recv_timeout(LONG).unwrap(), Ok(b"hello".to_vec()));
    assert!(s.token.cancel());
    gate_tx.send(()).unwrap();
    let (second, _) = s.done.recv_timeout(LONG).unwrap();
    assert_eq!(second, Err(Error::Cancelled));
    assert_eq!(readable_bytes(&*r), 5, "the cancelled read consumed data");
    let after = cancel::metrics();
    assert!(
        after.signals_sent > before.signals_sent,
        "no cancel signal was sent to the scoped thread: {before:?} -> {after:?}"
    );
}

/// R16 for a runner: the work's read completes, then the runner is
/// cancelled; the work still has its bytes, and its next read is
/// `Cancelled`.
#[test]
fn r16_runner_completed_read_keeps_its_data() {
    let pool = pool();
    let (r, w) = pipe();
    write_all(&w, b"0123456789");
    let r = Arc::new(r);
    let r2 = Arc::clone(&r);
    let (got_tx, got_rx) = mpsc::channel();
    let (gate_tx, gate_rx) = mpsc::channel::<()>();
    let runner = pool
        .spawn(move |_| {
            let mut buf = [0u8; 4];
            let n = cancel::read(&*r2, &mut buf);
            got_tx.send(n.map(|n| buf[..n].to_vec())).unwrap();
            gate_rx.recv().unwrap();
            let next = cancel::read(&*r2, &mut buf);
            got_tx.send(next.map(|n| buf[..n].to_vec())).unwrap();
        })
        .unwrap();
    assert_eq!(got_rx.recv_timeout(LONG).unwrap(), Ok(b"0123".to_vec()));
    assert_eq!(runner.cancel(), State::Cancelled);
    gate_tx.send(()).unwrap();
    assert_eq!(got_rx.recv_timeout(LONG).unwrap(), Err(Error::Cancelled));
    assert_eq!(readable_bytes(&*r), 6);
    assert_eq!(runner.wait(), Err(RunError::Cancelled));
}

// ---------------------------------------------------------------- R17 ----

/// Duplicates `fd` onto a high, otherwise unused descriptor number, so
/// that no concurrently running test can reuse the number between our
/// `close` and our `F_GETFD` check.
fn dup_high(fd: i32, min: i32) -> OwnedFd {
    // SAFETY: F_DUPFD_CLOEXEC has no memory arguments.
    let d = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, min) };
    assert!(d >= min, "F_DUPFD: {}", io::Error::last_os_error());
    // SAFETY: a new descriptor we own.
    unsafe { OwnedFd::from_raw_fd(d) }
}

fn assert_closed(raw: i32) {
    // SAFETY: F_GETFD on a number; no memory arguments.
    let rc = unsafe { libc::fcntl(raw, libc::F_GETFD) };
    assert_eq!(rc, -1, "fd {raw} is still open after close returned Ok");
    assert_eq!(errno(), libc::EBADF);
}

/// R17: `close` is not a cancellation point. In a cancelled scope, and in
/// a cancelled runner, it returns `Ok` (never `Cancelled`) and the
/// descriptor is really closed.
#[test]
fn r17_close_after_cancel_is_ok_and_really_closes() {
    let token = CancelToken::new();
    assert!(token.cancel());
    std::thread::spawn(move || {
        let _scope = token.enter().unwrap();
        assert_eq!(cancel::testcancel(), Err(Error::Cancelled));
        let (r, w) = pipe();
        let file = File::open("/dev/null").unwrap();
        let sock = TcpListener::bind("127.0.0.1:0").unwrap();
        for (k, raw) in [
            r.as_raw_fd(),
            w.as_raw_fd(),
            file.as_raw_fd(),
            sock.as_raw_fd(),
        ]
        .into_iter()
        .enumerate()
        {
            let fd = dup_high(raw, 700 + 10 * k as i32);
            let n = fd.as_raw_fd();
            assert_eq!(cancel::close(fd), Ok(()), "close of a dup of fd {raw}");
            assert_closed(n);
        }
    })
    .join()
    .unwrap();

    // And in a runner whose cancel arrived while it was blocked.
    let pool = pool();
    let (r, _w) = pipe();
    let (tx, rx) = mpsc::channel();
    let runner = pool
        .spawn(move |_| {
            tx.send(gettid()).unwrap();
            let mut b = [0u8; 1];
            let res = cancel::read(&r, &mut b);
            let fd = dup_high(r.as_raw_fd(), 760);
            let n = fd.as_raw_fd();
            tx.send(n).unwrap();
            (res, cancel::close(fd), n)
        })
        .unwrap();
    let tid = rx.recv_timeout(LONG).unwrap();
    await_blocked_in(tid, libc::SYS_read, LONG);
    assert_eq!(runner.cancel(), State::Cancelled);
    let n = rx.recv_timeout(LONG).unwrap();
    assert!(eventually(LONG, || runner.state() == State::Dead));
    assert_closed(n);
    assert_eq!(runner.wait(), Err(RunError::Cancelled));
}

// ---------------------------------------------------------------- R19 ----

/// R19: stale cancels and stale pending signals on a reused thread. One
/// pool thread. Runner A (blocked in a read; or past a completed read and
/// spinning in user code, where the signal is deferred and masked; or in a
/// short cancellable sleep) is cancelled at a random moment by a random
/// means (drop, `cancel()`, its `Ctx::token`, its deadline). Runner B then
/// runs on the same thread, blocks in a read, and is answered by a write
/// at a random moment: B must get its byte, never `Cancelled`.
#[test]
fn r19_stale_cancel_never_reaches_the_next_job_on_a_reused_thread() {
    let iters: u64 = std::env::var("HANGSAFE_R19_ITERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(400);
    let (mut rng, seed) = Rng::from_env_or_time("HANGSAFE_SEED");
    eprintln!("r19: {iters} iterations, HANGSAFE_SEED={seed}");
    let pool = Pool::builder()
        .max_threads(1)
        .idle_timeout(Duration::from_secs(30))
        .build();
    let mut the_tid = None;
    // [A done, A cancelled/timed out, A released]
    let mut outcomes = [0u32; 3];
    for i in 0..iters {
        let (ra, wa) = pipe();
        let mode = rng.below(3);
        if mode == 1 {
            write_all(&wa, b"a");
        }
        let spin = Duration::from_micros(rng.below(200));
        let how = rng.below(4);
        let mut builder = Builder::new().pool(&pool);
        if how == 3 {
            builder = builder.timeout(Duration::from_micros(rng.below(500)));
        }
        let (tid_tx, tid_rx) = mpsc::channel();
        let a = builder
            .spawn(move |ctx| {
                tid_tx.send((gettid(), ctx.token())).unwrap();
                let mut b = [0u8; 1];
                let res = match mode {
                    0 | 1 => cancel::read(&ra, &mut b),
                    _ => cancel::sleep(spin).map(|()| 0),
                };
                spin_for(spin); // a cancel landing here is deferred
                res
            })
            .unwrap();
        // A runner whose deadline already passed may never run its work.
        let tid = match tid_rx.recv_timeout(if how == 3 { QUICK } else { LONG }) {
            Ok((tid, token)) => {
                assert_eq!(
                    *the_tid.get_or_insert(tid),
                    tid,
                    "max_threads(1) used two threads"
                );
                // (With a deadline, A may already be cancelled and gone.)
                if mode == 0 && how != 3 && rng.below(2) == 0 {
                    await_blocked_in(tid, libc::SYS_read, LONG);
                } else {
                    spin_for(Duration::from_micros(rng.below(300)));
                }
                if how == 2 {
                    token.cancel();
                }
                Some(tid)
            }
            Err(_) => {
                assert_eq!(how, 3, "A's work did not start (seed {seed})");
                None
            }
        };
        match how {
            0 => {
                drop(a);
                outcomes[2] += 1;
            }
            _ => {
                if how == 1 {
                    let _ = a.cancel();
                }
                match a.wait() {
                    Ok(_) => outcomes[0] += 1,
                    Err(RunError::Cancelled | RunError::TimedOut) => outcomes[1] += 1,
                    Err(e) => panic!("A: {e} (seed {seed})"),
                }
            }
        }
        // B on the same, only thread, as soon as A let go of it.
        let (rb, wb) = pipe();
        let rb = Arc::new(rb);
        let (btid_tx, btid_rx) = mpsc::channel();
        let b = loop {
            let rb = Arc::clone(&rb);
            let btid_tx = btid_tx.clone();
            match pool.spawn(move |_| {
                let _ = btid_tx.send(gettid());
                let mut b = [0u8; 1];
                (gettid(), cancel::read(&*rb, &mut b), b[0])
            }) {
                Ok(b) => break b,
                Err(SpawnError::PoolFull { .. }) => std::thread::yield_now(),
                Err(e) => panic!("{e}"),
            }
        };
        let btid = btid_rx.recv_timeout(LONG).unwrap();
        if let Some(tid) = tid {
            assert_eq!(btid, tid, "B ran on another thread");
        }
        if rng.below(2) == 0 {
            await_blocked_in(btid, libc::SYS_read, LONG);
        } else {
            spin_for(Duration::from_micros(rng.below(300)));
        }
        let byte = (i % 251) as u8;
        write_all(&wb, &[byte]);
        match b.wait() {
            Ok((_, res, got)) => {
                assert_eq!(res, Ok(1), "B's read failed (iteration {i}, seed {seed})");
                assert_eq!(got, byte);
            }
            Err(e) => panic!("B: {e} (iteration {i}, seed {seed})"),
        }
        drop(wa);
    }
    eprintln!("r19: A done/cancelled/released = {outcomes:?} (seed {seed})");
    assert_eq!(pool.metrics().threads_alive, 1);
}

// ------------------------------------------------------- R21 (contract) ----

/// R21 at the API level: one cancel has one winner. `CancelToken::cancel`
/// "returns true if this call cancelled it". A plain token does; a
/// runner's token (`Ctx::token`) must too.
///
/// (This failed against f259b11/9c4833d, where `RunnerToken::cancel` in
/// `src/runner/handle.rs` returned `cancel_runner(..) == State::Cancelled
/// && reason == Explicit`, which is also true for every call after the
/// first explicit cancel; fixed in 4b1cdf9.)
#[test]
fn r21_runner_token_cancel_returns_true_only_for_the_winning_call() {
    // The reference behaviour, on a plain token.
    let plain = CancelToken::new();
    assert!(plain.cancel());
    assert!(!plain.cancel());

    let pool = pool();
    let (tx, rx) = mpsc::channel();
    let runner = pool
        .spawn(move |ctx| {
            tx.send(ctx.token()).unwrap();
            cancel::sleep(Duration::from_secs(3600))
        })
        .unwrap();
    let token = rx.recv_timeout(LONG).unwrap();
    let first = token.cancel();
    let second = token.cancel();
    let third = token.clone().cancel();
    assert_eq!(runner.wait(), Err(RunError::Cancelled));
    assert!(first, "the first cancel of the runner's token did not win");
    assert_eq!(
        (second, third),
        (false, false),
        "CancelToken::cancel on a runner's token returned true for calls that did not cancel it"
    );
}

// ---------------------------------------------------------------- R22 ----

/// R22: work that never reaches a cancellation point is not interrupted by
/// a cancel, and is abandoned after `abandon_after`: a busy loop, and a
/// plain `libc::read` (the cancel signal is deferred and the kernel
/// restarts the read, SA_RESTART). When released, both threads come back
/// (abandoned gauge back to 0) and the plain read returns its byte, not
/// `EINTR`.
#[test]
fn r22_uninterruptible_work_is_abandoned_then_comes_back() {
    let pool = Pool::builder()
        .abandon_after(Duration::from_millis(50))
        .max_abandoned(8)
        .idle_timeout(Duration::from_secs(30))
        .build();
    let release = Arc::new(AtomicBool::new(false));
    let rel = Arc::clone(&release);
    let (busy_tx, busy_rx) = mpsc::channel();
    let busy = pool
        .spawn(move |_| {
            busy_tx.send(()).unwrap();
            let mut n = 0u64;
            while !rel.load(Ordering::SeqCst) {
                n = n.wrapping_add(1);
                std::hint::spin_loop();
            }
            n
        })
        .unwrap();
    let (r, w) = pipe();
    let (plain_tx, plain_rx) = mpsc::channel();
    let (res_tx, res_rx) = mpsc::channel();
    let plain = pool
        .spawn(move |_| {
            plain_tx.send(gettid()).unwrap();
            let mut b = [0u8; 1];
            // SAFETY: reads at most one byte into `b`.
            let n = unsafe { libc::read(r.as_raw_fd(), b.as_mut_ptr().cast(), 1) };
            res_tx.send((n, errno(), b[0])).unwrap();
        })
        .unwrap();
    busy_rx.recv_timeout(LONG).unwrap();
    let ptid = plain_rx.recv_timeout(LONG).unwrap();
    await_blocked_in(ptid, libc::SYS_read, LONG);

    assert_eq!(busy.cancel(), State::Cancelled);
    assert_eq!(plain.cancel(), State::Cancelled);
    assert!(
        eventually(LONG, || pool.metrics().threads_abandoned == 2),
        "{:?}",
        pool.metrics()
    );
    // Not interrupted: the plain read is still asleep in the kernel.
    await_blocked_in(ptid, libc::SYS_read, LONG);
    assert!(res_rx.try_recv().is_err(), "the plain read returned");
    assert_eq!(busy.state(), State::Cancelled);
    assert_eq!(plain.state(), State::Cancelled);

    release.store(true, Ordering::SeqCst);
    write_all(&w, b"z");
    let (n, e, byte) = res_rx.recv_timeout(LONG).unwrap();
    assert_eq!((n, byte), (1, b'z'), "plain read returned {n} (errno {e})");
    assert!(
        eventually(LONG, || pool.metrics().threads_abandoned == 0),
        "{:?}",
        pool.metrics()
    );
    assert!(eventually(LONG, || busy.state() == State::Dead
        && plain.state() == State::Dead));
    assert_eq!(busy.wait(), Err(RunError::Cancelled));
    assert_eq!(plain.wait(), Err(RunError::Cancelled));
    let m = pool.metrics();
    assert_eq!(m.abandoned_total, 2, "{m:?}");
    // Both threads are back in the pool.
    assert!(eventually(LONG, || pool.metrics().threads_idle == 2));
    assert_eq!(pool.metrics().threads_alive, 2);
}

// --------------------------------------- adapter, final state (R14) ----

/// The `Read`/`Write` adapter: std's `read_exact` (which retries
/// `Interrupted`) through `Cancellable` in a runner blocked on a pipe
/// stops at the cancel with an error that `is_cancelled` recognises and
/// whose kind is not `Interrupted`. Same for `write_all` blocked on a full
/// pipe.
#[test]
fn r14_adapter_read_exact_and_write_all_stop_at_the_cancel() {
    let pool = pool();
    for writing in [false, true] {
        let (r, w) = pipe();
        let (tx, rx) = mpsc::channel();
        let (err_tx, err_rx) = mpsc::channel();
        if !writing {
            write_all(&w, b"ab"); // read_exact gets these, then blocks
        }
        let (r2, w2) = (Arc::new(r), Arc::new(w));
        let (r3, w3) = (Arc::clone(&r2), Arc::clone(&w2));
        let runner = pool
            .spawn(move |_| {
                tx.send(gettid()).unwrap();
                let e = if writing {
                    Cancellable(&*w3)
                        .write_all(&vec![7u8; 1 << 20])
                        .unwrap_err()
                } else {
                    let mut buf = [0u8; 4];
                    Cancellable(&*r3).read_exact(&mut buf).unwrap_err()
                };
                err_tx.send(e).unwrap();
            })
            .unwrap();
        let tid = rx.recv_timeout(LONG).unwrap();
        let nr = if writing {
            libc::SYS_write
        } else {
            libc::SYS_read
        };
        await_blocked_in(tid, nr, LONG);
        assert_eq!(runner.cancel(), State::Cancelled);
        let e: io::Error = err_rx.recv_timeout(LONG).unwrap();
        assert!(hangsafe::is_cancelled(&e), "not a cancellation: {e:?}");
        assert_ne!(e.kind(), io::ErrorKind::Interrupted);
        assert_eq!(runner.wait(), Err(RunError::Cancelled));
        drop((r2, w2));
    }
}

/// Cancelled-then-returned work ends in `Dead`: the state goes
/// `Running -> Cancelled -> Dead` once the interrupted work returns, and
/// the outcome is the cancel's (`Cancelled`, or `TimedOut` for a deadline).
#[test]
fn r14_cancelled_then_returned_work_ends_dead() {
    let pool = pool();
    let before = pool.metrics();
    let mut spawned = 0;
    for by_deadline in [false, true] {
        let mut deadline = Duration::from_millis(100);
        let (runner, ret_rx, w) = loop {
            let (r, w) = pipe();
            let (tx, rx) = mpsc::channel();
            let (ret_tx, ret_rx) = mpsc::channel();
            let mut b = Builder::new().pool(&pool);
            if by_deadline {
                b = b.timeout(deadline);
            }
            let runner = b
                .spawn(move |_| {
                    tx.send(gettid()).unwrap();
                    let mut buf = [0u8; 1];
                    let res = cancel::read(&r, &mut buf);
                    ret_tx.send(res).unwrap();
                    res
                })
                .unwrap();
            spawned += 1;
            match rx.recv_timeout(LONG) {
                Ok(tid) => {
                    if !by_deadline {
                        await_blocked_in(tid, libc::SYS_read, LONG);
                    }
                    break (runner, ret_rx, w);
                }
                // Under heavy load the deadline passed before the work
                // started (so it never ran): again, with a longer one.
                Err(_) if by_deadline && deadline < LONG => deadline *= 2,
                Err(e) => panic!("the work did not start: {e}"),
            }
        };
        if by_deadline {
            assert!(eventually(LONG, || runner.state() != State::Running));
        } else {
            assert_eq!(runner.cancel(), State::Cancelled);
        }
        assert_eq!(ret_rx.recv_timeout(LONG).unwrap(), Err(Error::Cancelled));
        assert!(
            eventually(LONG, || runner.state() == State::Dead),
            "state {:?}",
            runner.state()
        );
        assert!(runner.is_finished());
        assert_eq!(runner.result(), None);
        let want = if by_deadline {
            RunError::TimedOut
        } else {
            RunError::Cancelled
        };
        assert_eq!(runner.wait(), Err(want));
        drop(w);
    }
    let m = pool.metrics();
    assert_eq!(m.runners_dead - before.runners_dead, spawned, "{m:?}");
    assert_eq!(
        m.runners_cancelled - before.runners_cancelled,
        spawned,
        "{m:?}"
    );
    assert_eq!(m.runners_done - before.runners_done, 0, "{m:?}");
    support::await_no_live_contexts(&pool, LONG);
}

/// Sanity of the blocked-thread probe the tests rely on.
#[test]
fn probe_sees_a_thread_blocked_in_read() {
    let (r, w) = pipe();
    let (tx, rx) = mpsc::channel();
    let t = std::thread::spawn(move || {
        tx.send(gettid()).unwrap();
        let mut b = [0u8; 1];
        cancel::read(&r, &mut b)
    });
    let tid = rx.recv_timeout(LONG).unwrap();
    await_blocked_in(tid, libc::SYS_read, LONG);
    write_all(&w, b"x");
    assert_eq!(t.join().unwrap(), Ok(1));
    assert!(eventually(LONG, || blocked_syscall(tid).is_none()));
}
