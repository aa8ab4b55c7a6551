//! `hangsafe.h`'s cancellable system calls: `hs_read`, `hs_write`,
//! `hs_poll`, `hs_nanosleep`, `hs_accept4`, `hs_connect`, `hs_openat4`
//! (behind the header's variadic `hs_openat`), `hs_ioctl3` (behind the
//! header's variadic `hs_ioctl`) and `hs_testcancel`.
//!
//! Each one is the libc call of the same name, made through the core's
//! cancellation stub ([`hangsafe_core::cancel::syscall`]):
//!
//! * On a thread bound to a runner (a C `runner_func` started by
//!   `get_runner`) that has been cancelled, a call that has not taken effect
//!   returns -1 with `errno` = `ECANCELED`. That covers a cancel that came
//!   before the call and one that interrupted the call while it was blocked
//!   without having done anything yet.
//! * Everything else is the syscall's own outcome: its return value, its
//!   `errno`, `EINTR` when a foreign signal interrupts a call the kernel does
//!   not restart (no retry: that is what libc does). A call that completed
//!   keeps its result even if the cancel arrives a moment later; the cancel
//!   shows at the next call.
//! * On any other thread they are the plain syscalls.
//!
//! Pointers go to the kernel untouched (this side never dereferences them),
//! so a bad one gives the kernel's `EFAULT`, as with libc. The kernel's
//! errors are ordinary outcomes and are not logged.
//!
//! These entry points use the signal-safe panic barrier: on their normal
//! path they allocate nothing, take no lock and install nothing, so they may
//! be called from a signal handler wherever the libc call may (the core's
//! stub keeps an exact in-call depth for that case). One caveat outside our
//! control: the first access to a `dlopen()`ed library's thread-local
//! storage on a thread may allocate in some libc versions.

use crate::barrier;
use crate::errno;
use hangsafe_core::cancel::{self as core, Error};
use libc::{c_int, c_long, c_ulong, c_void, mode_t, nfds_t, size_t, socklen_t, ssize_t};

/// The C convention for a wrapper's outcome: the value, or -1 with `errno`
/// set (`ECANCELED` for a cancellation).
fn to_c(r: Result<c_long, Error>) -> c_long {
    match r {
        Ok(v) => v,
        Err(e) => {
            errno::set(errno_of(e));
            -1
        }
    }
}

/// The `errno` that reports `e` to C.
fn errno_of(e: Error) -> c_int {
    match e {
        Error::Cancelled => libc::ECANCELED,
        Error::Os(code) => code,
    }
}

/// Makes syscall `nr` a cancellation point behind the panic barrier and
/// returns its outcome in the C convention.
///
/// # Safety
///
/// As for [`hangsafe_core::cancel::syscall`]: the syscall with these
/// arguments must be one the C caller could have made itself (its pointers
/// are the caller's, passed through unchanged).
unsafe fn call(what: &str, nr: c_long, args: [c_long; 6]) -> c_long {
    barrier::run_signal_safe(what, -1, || {
        // SAFETY: forwarded to the caller of `call`, and from there to the
        // C caller, whose pointers are passed to the kernel unchanged; the
        // kernel validates them (EFAULT) and this side reads none of them.
        to_c(unsafe { core::syscall(nr, args) })
    })
}

/// A syscall result that the kernel bounds to the range of `int` (a file
/// descriptor, a count of descriptors, 0), as an `int`.
fn int_result(r: c_long) -> c_int {
    // The kernel returns -1 (after `to_c`) or a value that fits an `int`
    // for every call that uses this; saturating keeps the impossible case
    // from wrapping into a negative "error".
    c_int::try_from(r).unwrap_or(c_int::MAX)
}

/// `read(2)`, cancellable. Returns the number of bytes read (0 at end of
/// file), or -1 with `errno` set (`ECANCELED`: the runner was cancelled and
/// nothing was read).
///
/// # Safety
///
/// As for `read(2)`: `buf` must be valid for writing `count` bytes, or
/// point to memory the kernel rejects with `EFAULT`.
#[no_mangle]
pub unsafe extern "C" fn hs_read(fd: c_int, buf: *mut c_void, count: size_t) -> ssize_t {
    let args = [fd as c_long, buf as c_long, count as c_long, 0, 0, 0];
    // SAFETY: the arguments of read(2) exactly as the caller gave them; the
    // caller's contract is read(2)'s.
    let n = unsafe { call("hs_read", libc::SYS_read, args) };
    // `long` and `ssize_t` are the same 64-bit type on LP64 Linux.
    n as ssize_t
}

/// `write(2)`, cancellable. Returns the number of bytes written, or -1
/// with `errno` set (`ECANCELED`: nothing was written).
///
/// # Safety
///
/// As for `write(2)`: `buf` must be valid for reading `count` bytes, or
/// point to memory the kernel rejects with `EFAULT`.
#[no_mangle]
pub unsafe extern "C" fn hs_write(fd: c_int, buf: *const c_void, count: size_t) -> ssize_t {
    let args = [fd as c_long, buf as c_long, count as c_long, 0, 0, 0];
    // SAFETY: the arguments of write(2) exactly as the caller gave them;
    // the kernel only reads through `buf`.
    let n = unsafe { call("hs_write", libc::SYS_write, args) };
    // `long` and `ssize_t` are the same 64-bit type on LP64 Linux.
    n as ssize_t
}

/// The `ppoll` timeout for a `poll` timeout in milliseconds: `None` (wait
/// forever) for a negative one.
fn poll_timeout(timeout_ms: c_int) -> Option<libc::timespec> {
    if timeout_ms < 0 {
        return None;
    }
    Some(libc::timespec {
        tv_sec: libc::time_t::from(timeout_ms / 1000),
        tv_nsec: c_long::from(timeout_ms % 1000) * 1_000_000,
    })
}

/// `poll(2)`, cancellable, made with `ppoll` (aarch64 has no `poll`
/// syscall). `timeout` is in milliseconds; negative waits forever. Returns
/// the number of descriptors with events (0 on timeout), or -1 with
/// `errno` set.
///
/// # Safety
///
/// As for `poll(2)`: `fds` must be valid for reading and writing `nfds`
/// `struct pollfd`, or point to memory the kernel rejects with `EFAULT`.
#[no_mangle]
pub unsafe extern "C" fn hs_poll(fds: *mut libc::pollfd, nfds: nfds_t, timeout: c_int) -> c_int {
    // The kernel writes the time left back into the timespec: it must be a
    // live, writable local for the whole call.
    let mut ts = poll_timeout(timeout);
    let tsp = ts
        .as_mut()
        .map_or(0, |t| t as *mut libc::timespec as c_long);
    let args = [fds as c_long, nfds as c_long, tsp, 0, 0, 0];
    // SAFETY: `fds`/`nfds` are the caller's, as for poll(2); `tsp` is null
    // or points to `ts`, which outlives the call; no signal mask is passed.
    int_result(unsafe { call("hs_poll", libc::SYS_ppoll, args) })
}

/// `nanosleep(2)`, cancellable. Returns 0 after the full sleep, or -1 with
/// `errno` set; after `EINTR` the time left is in `*rem` (if `rem` is not
/// null). After `ECANCELED` the contents of `*rem` are unspecified (the
/// kernel writes it if the cancel interrupted the sleep).
///
/// # Safety
///
/// As for `nanosleep(2)`: `req` must be valid for reading one
/// `struct timespec`, `rem` null or valid for writing one (or pointers the
/// kernel rejects with `EFAULT`).
#[no_mangle]
pub unsafe extern "C" fn hs_nanosleep(
    req: *const libc::timespec,
    rem: *mut libc::timespec,
) -> c_int {
    let args = [req as c_long, rem as c_long, 0, 0, 0, 0];
    // SAFETY: the arguments of nanosleep(2) exactly as the caller gave
    // them; the kernel reads `req` and may write `rem`.
    int_result(unsafe { call("hs_nanosleep", libc::SYS_nanosleep, args) })
}

/// `accept4(2)`, cancellable. Returns the new descriptor, or -1 with
/// `errno` set. A connection the kernel accepted is always returned: a
/// cancel never drops one.
///
/// # Safety
///
/// As for `accept4(2)`: `addr` and `addrlen` both null, or `addrlen` valid
/// for reading and writing a `socklen_t` and `addr` for writing `*addrlen`
/// bytes (or pointers the kernel rejects with `EFAULT`).
#[no_mangle]
pub unsafe extern "C" fn hs_accept4(
    sockfd: c_int,
    addr: *mut libc::sockaddr,
    addrlen: *mut socklen_t,
    flags: c_int,
) -> c_int {
    let args = [
        sockfd as c_long,
        addr as c_long,
        addrlen as c_long,
        flags as c_long,
        0,
        0,
    ];
    // SAFETY: the arguments of accept4(2) exactly as the caller gave them.
    int_result(unsafe { call("hs_accept4", libc::SYS_accept4, args) })
}

/// `connect(2)`, cancellable. Returns 0, or -1 with `errno` set. As with
/// `connect(2)`, an interrupted blocking connect (`EINTR`, or `ECANCELED`
/// after the handshake started) may keep connecting in the background.
///
/// # Safety
///
/// As for `connect(2)`: `addr` must be valid for reading `addrlen` bytes,
/// or point to memory the kernel rejects with `EFAULT`.
#[no_mangle]
pub unsafe extern "C" fn hs_connect(
    sockfd: c_int,
    addr: *const libc::sockaddr,
    addrlen: socklen_t,
) -> c_int {
    let args = [
        sockfd as c_long,
        addr as c_long,
        c_long::from(addrlen),
        0,
        0,
        0,
    ];
    // SAFETY: the arguments of connect(2) exactly as the caller gave them;
    // the kernel only reads through `addr`.
    int_result(unsafe { call("hs_connect", libc::SYS_connect, args) })
}

/// `openat(2)` with its mode always passed: the library symbol behind the
/// header's variadic `hs_openat`, usable directly from other languages.
/// `mode` matters only with `O_CREAT` or `O_TMPFILE` (the kernel ignores
/// it otherwise). No flag is added (no implicit `O_CLOEXEC`). Returns the
/// new descriptor, or -1 with `errno` set; a descriptor the kernel opened
/// is always returned, never leaked by a cancel.
///
/// # Safety
///
/// As for `openat(2)`: `pathname` must be a NUL-terminated string (or a
/// pointer the kernel rejects with `EFAULT`).
#[no_mangle]
pub unsafe extern "C" fn hs_openat4(
    dirfd: c_int,
    pathname: *const libc::c_char,
    flags: c_int,
    mode: mode_t,
) -> c_int {
    let args = [
        dirfd as c_long,
        pathname as c_long,
        flags as c_long,
        c_long::from(mode),
        0,
        0,
    ];
    // SAFETY: the arguments of openat(2) exactly as the caller gave them;
    // the kernel only reads the path.
    int_result(unsafe { call("hs_openat4", libc::SYS_openat, args) })
}

/// `ioctl(2)` with its argument always passed: the library symbol behind
/// the header's variadic `hs_ioctl`, usable directly from other languages.
/// Returns the ioctl's (non-negative) result, or -1 with `errno` set.
///
/// # Safety
///
/// As for `ioctl(2)`: `arg` must be whatever `request` expects (valid for
/// what the driver reads and writes through it, for the whole call).
#[no_mangle]
pub unsafe extern "C" fn hs_ioctl3(fd: c_int, request: c_ulong, arg: *mut c_void) -> c_int {
    barrier::run_signal_safe("hs_ioctl3", -1, || {
        // SAFETY: the arguments of ioctl(2) exactly as the caller gave them;
        // what the driver does with `arg` is the caller's contract.
        match unsafe { core::ioctl(fd, request, arg) } {
            Ok(v) => v,
            Err(e) => {
                errno::set(errno_of(e));
                -1
            }
        }
    })
}

/// A cancellation point without a syscall: 0, or -1 with `errno` =
/// `ECANCELED` if the calling thread's runner (or scope) has been
/// cancelled. Always 0 on a thread that nothing can cancel.
#[no_mangle]
pub extern "C" fn hs_testcancel() -> c_int {
    barrier::run_signal_safe("hs_testcancel", -1, || match core::testcancel() {
        Ok(()) => 0,
        Err(e) => {
            errno::set(errno_of(e));
            -1
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use hangsafe_core::runner::{Builder, RunError};
    use std::os::fd::{AsRawFd, OwnedFd};
    use std::sync::mpsc;
    use std::time::{Duration, Instant};

    fn errno() -> c_int {
        std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
    }

    fn pipe() -> (OwnedFd, OwnedFd) {
        let (r, w) = std::io::pipe().expect("pipe");
        (r.into(), w.into())
    }

    #[test]
    fn poll_timeouts() {
        assert!(poll_timeout(-1).is_none());
        assert!(poll_timeout(c_int::MIN).is_none());
        let t = poll_timeout(0).unwrap();
        assert_eq!((t.tv_sec, t.tv_nsec), (0, 0));
        let t = poll_timeout(1999).unwrap();
        assert_eq!((t.tv_sec, t.tv_nsec), (1, 999_000_000));
        let t = poll_timeout(c_int::MAX).unwrap();
        assert_eq!(t.tv_sec, libc::time_t::from(c_int::MAX / 1000));
        assert_eq!(t.tv_nsec, 647_000_000);
    }

    #[test]
    fn errors_map_to_errno() {
        assert_eq!(errno_of(Error::Cancelled), libc::ECANCELED);
        assert_eq!(errno_of(Error::Os(libc::EINTR)), libc::EINTR);
        assert_eq!(int_result(-1), -1);
        assert_eq!(int_result(7), 7);
        assert_eq!(int_result(c_long::MAX), c_int::MAX);
    }

    /// Outside a runner the calls are the plain syscalls.
    #[test]
    fn plain_calls_outside_a_runner() {
        let (r, w) = pipe();
        let msg = b"abc";
        // SAFETY: `msg` is readable for its length; `buf` is writable for
        // its length; `n` is a writable int; the fds are live.
        unsafe {
            assert_eq!(hs_write(w.as_raw_fd(), msg.as_ptr().cast(), msg.len()), 3);
            let mut n: c_int = 0;
            let p = std::ptr::addr_of_mut!(n).cast::<c_void>();
            assert_eq!(hs_ioctl3(r.as_raw_fd(), libc::FIONREAD, p), 0);
            assert_eq!(n, 3);
            let mut buf = [0u8; 8];
            assert_eq!(
                hs_read(r.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()),
                3
            );
            assert_eq!(&buf[..3], msg);
            let mut fds = [libc::pollfd {
                fd: r.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            }];
            assert_eq!(hs_poll(fds.as_mut_ptr(), 1, 0), 0);
            assert_eq!(hs_read(-1, buf.as_mut_ptr().cast(), 1), -1);
            assert_eq!(errno(), libc::EBADF);
            let fd = hs_openat4(libc::AT_FDCWD, c"/dev/null".as_ptr(), libc::O_RDONLY, 0);
            assert!(fd >= 0);
            // No O_CLOEXEC is added behind the caller's back.
            assert_eq!(libc::fcntl(fd, libc::F_GETFD) & libc::FD_CLOEXEC, 0);
            libc::close(fd);
            let missing = c"/nonexistent/hangsafe-capi";
            assert_eq!(hs_openat4(libc::AT_FDCWD, missing.as_ptr(), 0, 0), -1);
            assert_eq!(errno(), libc::ENOENT);
            let req = libc::timespec {
                tv_sec: 0,
                tv_nsec: 1_000_000_000,
            };
            assert_eq!(hs_nanosleep(&req, std::ptr::null_mut()), -1);
            assert_eq!(errno(), libc::EINVAL);
        }
        assert_eq!(hs_testcancel(), 0);
    }

    /// What a runner's work saw: (return value, errno), then
    /// hs_testcancel's (return value, errno).
    type Seen = ((c_long, c_int), (c_int, c_int));

    /// Runs `op` as a runner's work with a short deadline; returns what it
    /// saw, and how long it took.
    fn cancelled_in_runner(op: impl FnOnce() -> c_long + Send + 'static) -> (Seen, Duration) {
        let (tx, rx) = mpsc::channel();
        let runner = Builder::new()
            .timeout(Duration::from_millis(30))
            .spawn(move |_| {
                let start = Instant::now();
                let r = op();
                let e = errno();
                let t = hs_testcancel();
                let te = errno();
                let _ = tx.send((((r, e), (t, te)), start.elapsed()));
            })
            .expect("spawn");
        assert_eq!(runner.wait(), Err(RunError::TimedOut));
        rx.recv_timeout(Duration::from_secs(30))
            .expect("the work reports")
    }

    const CANCELLED: Seen = ((-1, libc::ECANCELED), (-1, libc::ECANCELED));

    #[test]
    fn blocked_read_is_cancelled() {
        let (r, w) = pipe();
        let (seen, took) = cancelled_in_runner(move || {
            let mut b = [0u8; 1];
            // SAFETY: `b` is writable for one byte; `r` is live.
            let n = unsafe { hs_read(r.as_raw_fd(), b.as_mut_ptr().cast(), 1) };
            n as c_long
        });
        drop(w);
        assert_eq!(seen, CANCELLED);
        assert!(took < Duration::from_secs(10), "{took:?}");
    }

    #[test]
    fn blocked_poll_and_sleep_are_cancelled() {
        let (r, w) = pipe();
        let (seen, _) = cancelled_in_runner(move || {
            let mut fds = [libc::pollfd {
                fd: r.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            }];
            // SAFETY: `fds` is a live array of one pollfd.
            c_long::from(unsafe { hs_poll(fds.as_mut_ptr(), 1, -1) })
        });
        drop(w);
        assert_eq!(seen, CANCELLED);
        let (seen, took) = cancelled_in_runner(|| {
            let req = libc::timespec {
                tv_sec: 60,
                tv_nsec: 0,
            };
            // SAFETY: `req` is a live timespec; no remainder requested.
            c_long::from(unsafe { hs_nanosleep(&req, std::ptr::null_mut()) })
        });
        assert_eq!(seen, CANCELLED);
        assert!(took < Duration::from_secs(30), "{took:?}");
    }

    /// A call that completes in a runner that is not cancelled keeps its
    /// result, and hs_testcancel is 0 there.
    #[test]
    fn completed_call_in_a_runner() {
        let (r, w) = pipe();
        assert_eq!(
            // SAFETY: one readable byte; `w` is live.
            unsafe { hs_write(w.as_raw_fd(), b"z".as_ptr().cast(), 1) },
            1
        );
        let runner = Builder::new()
            .timeout(Duration::from_secs(30))
            .spawn(move |_| {
                let mut b = [0u8; 4];
                // SAFETY: `b` is writable for its length; `r` is live.
                let n = unsafe { hs_read(r.as_raw_fd(), b.as_mut_ptr().cast(), b.len()) };
                (n, b[0], hs_testcancel())
            })
            .expect("spawn");
        assert_eq!(runner.wait(), Ok((1, b'z', 0)));
    }
}
