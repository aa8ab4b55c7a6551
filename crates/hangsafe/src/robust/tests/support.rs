//! Shared memory, fork and fail points for the robust-mutex tests.

use crate::robust::error::Error;
use crate::robust::kernel::{Deadline, Kernel, Linux, Me, Point};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The real kernel, plus: SIGKILL self when reaching `kill_at`; spin on a
/// shared gate when reaching `pause_at` (until the gate opens).
pub(crate) struct FailKernel<'a> {
    pub(crate) kill_at: Option<Point>,
    pub(crate) pause_at: Option<(Point, &'a AtomicU32)>,
    /// Counts arrivals at `pause_at`.
    pub(crate) arrived: Option<&'a AtomicU32>,
}

impl FailKernel<'_> {
    pub(crate) fn plain() -> FailKernel<'static> {
        FailKernel {
            kill_at: None,
            pause_at: None,
            arrived: None,
        }
    }
    pub(crate) fn kill_at(p: Point) -> FailKernel<'static> {
        FailKernel {
            kill_at: Some(p),
            pause_at: None,
            arrived: None,
        }
    }
}

impl Kernel for FailKernel<'_> {
    fn me(&self) -> Result<Me, Error> {
        Linux.me()
    }
    fn lock_pi(&self, word: &AtomicU32, deadline: Option<Deadline>) -> Result<(), i32> {
        Linux.lock_pi(word, deadline)
    }
    fn trylock_pi(&self, word: &AtomicU32) -> Result<(), i32> {
        Linux.trylock_pi(word)
    }
    fn unlock_pi(&self, word: &AtomicU32) -> Result<(), i32> {
        Linux.unlock_pi(word)
    }
    fn backoff(&self, attempt: u32) {
        Linux.backoff(attempt)
    }
    fn point(&self, p: Point) {
        if self.kill_at == Some(p) {
            die();
        }
        if let Some((at, gate)) = self.pause_at {
            if at == p {
                if let Some(a) = self.arrived {
                    a.fetch_add(1, Ordering::SeqCst);
                }
                while gate.load(Ordering::SeqCst) == 0 {
                    std::hint::spin_loop();
                    // SAFETY: sched_yield has no preconditions.
                    unsafe { libc::sched_yield() };
                }
            }
        }
    }
}

/// SIGKILL the calling process, now.
pub(crate) fn die() -> ! {
    // SAFETY: kill/getpid have no memory preconditions; SIGKILL cannot be
    // caught, so this does not return.
    unsafe {
        libc::kill(libc::getpid(), libc::SIGKILL);
        libc::_exit(99)
    }
}

/// An anonymous `MAP_SHARED` mapping of `T`s, inherited by fork children,
/// zero-initialised. Unmapped on drop (in the parent).
pub(crate) struct Shm<T> {
    ptr: *mut T,
    len: usize,
}

impl<T> Shm<T> {
    /// Maps `n` zeroed `T`s. `T` must be valid when all-zero (atomics and
    /// the raw mutex before `init` are).
    pub(crate) fn zeroed() -> Shm<T> {
        let len = std::mem::size_of::<T>().max(1);
        // SAFETY: a fresh anonymous mapping; no existing memory is affected.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(p, libc::MAP_FAILED, "mmap");
        Shm { ptr: p.cast(), len }
    }
}

impl<T> std::ops::Deref for Shm<T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the mapping is page-aligned, zero-filled (valid for the
        // `T`s these tests use) and lives as long as `self`.
        unsafe { &*self.ptr }
    }
}

impl<T> Drop for Shm<T> {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `zeroed`; no reference
        // into it outlives `self`.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

/// A forked child process.
pub(crate) struct Child {
    pub(crate) pid: libc::pid_t,
    reaped: bool,
}

/// How a child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Exit {
    Code(i32),
    Signal(i32),
}

/// Forks; the child runs `f` and `_exit`s with its return value.
pub(crate) fn fork(f: impl FnOnce() -> i32) -> Child {
    // SAFETY: the child runs only `f`, which by the contract of these tests
    // uses atomics, the mutex protocol and raw syscalls, then `_exit`s
    // without running destructors or at-exit handlers.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
    if pid == 0 {
        let code = f();
        // SAFETY: leaves the child without unwinding into the test harness.
        unsafe { libc::_exit(code) };
    }
    Child { pid, reaped: false }
}

impl Child {
    /// Waits for the child, at most `limit`; kills it and panics on timeout.
    pub(crate) fn wait(mut self, limit: Duration) -> Exit {
        let end = Instant::now() + limit;
        loop {
            let mut status = 0;
            // SAFETY: valid out-pointer; our own child.
            let r = unsafe { libc::waitpid(self.pid, &mut status, libc::WNOHANG) };
            if r == self.pid {
                self.reaped = true;
                return if libc::WIFEXITED(status) {
                    Exit::Code(libc::WEXITSTATUS(status))
                } else {
                    Exit::Signal(libc::WTERMSIG(status))
                };
            }
            assert!(r == 0, "waitpid: {}", std::io::Error::last_os_error());
            if Instant::now() > end {
                self.kill();
                panic!("child {} did not finish within {limit:?}: hang", self.pid);
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// SIGKILLs the child (reaped on drop or by `wait`).
    pub(crate) fn kill(&self) {
        // SAFETY: signalling our own unreaped child: its PID cannot have
        // been reused.
        unsafe { libc::kill(self.pid, libc::SIGKILL) };
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if !self.reaped {
            self.kill();
            let mut status = 0;
            // SAFETY: our own child.
            unsafe { libc::waitpid(self.pid, &mut status, 0) };
        }
    }
}

/// Polls `cond` until true; panics after `limit`.
pub(crate) fn eventually(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < end, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Whether process `pid` (single-threaded) sleeps in the futex syscall.
///
/// Under qemu-user (`HANGSAFE_UNDER_EMULATION`, the aarch64 CI run),
/// `/proc/<pid>/syscall` describes qemu's host thread with the host's
/// numbering, so only "sleeps in some syscall" can be observed; the
/// callers then allow a settle time (see [`settle`]).
pub(crate) fn blocked_in_futex(pid: libc::pid_t) -> bool {
    let s = std::fs::read_to_string(format!("/proc/{pid}/syscall")).unwrap_or_default();
    let first = s.split_whitespace().next().unwrap_or("");
    if under_emulation() {
        return first.parse::<i64>().is_ok_and(|n| n >= 0);
    }
    first == libc::SYS_futex.to_string()
}

pub(crate) fn under_emulation() -> bool {
    std::env::var_os("HANGSAFE_UNDER_EMULATION").is_some()
}

/// After [`blocked_in_futex`] said yes: under emulation, give the process
/// time to really reach the futex wait.
pub(crate) fn settle() {
    if under_emulation() {
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Process state letter from `/proc/<pid>/stat` (after the `(comm)`).
pub(crate) fn proc_state(pid: libc::pid_t) -> Option<char> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    s.rsplit_once(')')?.1.trim_start().chars().next()
}

/// Child exit codes used by the tests.
pub(crate) mod code {
    pub(crate) const CONSISTENT: i32 = 10;
    pub(crate) const OWNER_DEAD: i32 = 11;
    pub(crate) const NOT_RECOVERABLE: i32 = 12;
    pub(crate) const TIMED_OUT: i32 = 13;
    pub(crate) const BUSY: i32 = 14;
    pub(crate) const OTHER: i32 = 20;
}

/// Maps a lock result to a child exit code.
pub(crate) fn lock_code(r: &Result<crate::robust::Acquired, Error>) -> i32 {
    use crate::robust::Acquired;
    match r {
        Ok(Acquired::Consistent) => code::CONSISTENT,
        Ok(Acquired::OwnerDead) => code::OWNER_DEAD,
        Err(Error::NotRecoverable) => code::NOT_RECOVERABLE,
        Err(Error::TimedOut) => code::TIMED_OUT,
        Err(Error::WouldBlock) => code::BUSY,
        Err(_) => code::OTHER,
    }
}
