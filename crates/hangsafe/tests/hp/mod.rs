//! Helpers shared by the process-level hazard tests (`hp_*.rs`): running a
//! closure in a forked child and reading its exit status.

#![allow(dead_code)]

use std::time::{Duration, Instant};

/// How a forked child ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Ended {
    /// `_exit(code)`.
    Code(i32),
    /// Killed by this signal.
    Signal(i32),
    /// Still running after the bound: killed by the parent.
    Hung,
}

/// Forks; the child runs `f` and `_exit`s with its return value (101 if it
/// panicked). The parent waits at most `limit` for it.
pub(crate) fn in_child(limit: Duration, f: impl FnOnce() -> i32) -> Ended {
    // SAFETY: fork has no preconditions; the child only runs `f` (which the
    // tests keep to what is safe after fork in a multi-threaded process:
    // hangsafe's own calls, atomics, raw syscalls) and then `_exit`s.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or(101);
        // SAFETY: ends the child without running the parent's atexit
        // handlers or destructors.
        unsafe { libc::_exit(code) };
    }
    let end = Instant::now() + limit;
    loop {
        let mut status = 0;
        // SAFETY: waits for our own child.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if r == pid {
            if libc::WIFEXITED(status) {
                return Ended::Code(libc::WEXITSTATUS(status));
            }
            return Ended::Signal(libc::WTERMSIG(status));
        }
        if Instant::now() >= end {
            // SAFETY: kills and reaps only the child forked above.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, &mut status, 0);
            }
            return Ended::Hung;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

pub(crate) use hangsafe_testkit::wait::eventually;

/// A pipe nobody writes to (unless the test does): `(read, write)`.
pub(crate) fn pipe() -> (std::os::fd::OwnedFd, std::os::fd::OwnedFd) {
    let (r, w) = std::io::pipe().expect("pipe");
    (r.into(), w.into())
}
