//! Fork a child that runs a closure, wait for it with a limit, and an
//! anonymous shared mapping the child inherits: the test's own side
//! channel, independent of the code under test.

use std::time::{Duration, Instant};

/// A forked child; killed and reaped on drop unless waited for, so that a
/// panicking parent leaves no process behind.
#[derive(Debug)]
pub struct Child {
    /// The child's process ID.
    pub pid: libc::pid_t,
    reaped: bool,
}

/// How a child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// `_exit(code)`.
    Code(i32),
    /// Killed by this signal.
    Signal(i32),
}

impl Exit {
    fn from_status(status: libc::c_int) -> Exit {
        if libc::WIFEXITED(status) {
            Exit::Code(libc::WEXITSTATUS(status))
        } else {
            Exit::Signal(libc::WTERMSIG(status))
        }
    }
}

/// Forks; the child runs `f` and `_exit`s with its return value (101 if
/// it panicked).
///
/// `f` runs in a child of a possibly multi-threaded process: it must
/// restrict itself to what is safe there (atomics, the API under test, raw
/// system calls); it ends with `_exit`, running no destructors or at-exit
/// handlers and never returning into the caller's code.
pub fn fork(f: impl FnOnce() -> i32) -> Child {
    // SAFETY: the child runs only `f` under the contract above, then
    // `_exit`s without unwinding into the test harness.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
    if pid == 0 {
        let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or(101);
        // SAFETY: leaves the child without unwinding or running at-exit
        // handlers.
        unsafe { libc::_exit(code) };
    }
    Child { pid, reaped: false }
}

impl Child {
    /// Waits for the child, at most `limit`; kills it and panics ("hang")
    /// on timeout. Polls with `yield` at first, then 50 µs sleeps, so that
    /// a short-lived child is seen promptly.
    pub fn wait(mut self, limit: Duration) -> Exit {
        let end = Instant::now() + limit;
        let mut spins = 0u32;
        loop {
            let mut status = 0;
            // SAFETY: a valid out-pointer; our own unreaped child.
            let r = unsafe { libc::waitpid(self.pid, &mut status, libc::WNOHANG) };
            if r == self.pid {
                self.reaped = true;
                return Exit::from_status(status);
            }
            assert_eq!(r, 0, "waitpid: {}", std::io::Error::last_os_error());
            if Instant::now() > end {
                self.kill();
                panic!("child {} did not finish within {limit:?}: hang", self.pid);
            }
            spins += 1;
            if spins < 100 {
                std::thread::yield_now();
            } else {
                std::thread::sleep(Duration::from_micros(50));
            }
        }
    }

    /// Waits for a child that is certain to end soon, blocked in `waitpid`
    /// rather than polling, so that the parent takes no CPU from the
    /// processes being timed.
    pub fn wait_blocking(mut self) -> Exit {
        let mut status = 0;
        let r = loop {
            // SAFETY: a valid out-pointer; our own unreaped child.
            let r = unsafe { libc::waitpid(self.pid, &mut status, 0) };
            if r >= 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
                break r;
            }
        };
        assert_eq!(r, self.pid, "waitpid: {}", std::io::Error::last_os_error());
        self.reaped = true;
        Exit::from_status(status)
    }

    /// SIGKILLs the child (reaped on drop or by [`Child::wait`]).
    pub fn kill(&self) {
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
            // SAFETY: a valid out-pointer; our own unreaped child.
            unsafe { libc::waitpid(self.pid, &mut status, 0) };
        }
    }
}

/// SIGKILLs the calling process, now (in a child: "the owner dies here").
pub fn die() -> ! {
    std::sync::atomic::compiler_fence(std::sync::atomic::Ordering::SeqCst);
    // SAFETY: kill/getpid have no memory preconditions; SIGKILL cannot be
    // caught, so this does not return (`_exit` in case it did).
    unsafe {
        libc::kill(libc::getpid(), libc::SIGKILL);
        libc::_exit(99)
    }
}

/// An anonymous `MAP_SHARED` mapping of one zero-filled `T`, inherited by
/// fork children. Unmapped on drop (in each process that drops it).
#[derive(Debug)]
pub struct Shm<T> {
    ptr: std::ptr::NonNull<T>,
}

impl<T> Shm<T> {
    /// Maps a zeroed `T`.
    ///
    /// # Safety
    ///
    /// All-zero bytes must be a valid `T` (atomics, arrays of them, a raw
    /// mutex before its `init`, `libc::pthread_mutex_t` are), and `T`'s
    /// alignment at most a page.
    pub unsafe fn zeroed() -> Shm<T> {
        // SAFETY: a fresh anonymous mapping; no existing memory is affected.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                Self::len(),
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(
            p,
            libc::MAP_FAILED,
            "mmap: {}",
            std::io::Error::last_os_error()
        );
        Shm {
            ptr: std::ptr::NonNull::new(p.cast()).expect("mmap returned null"),
        }
    }

    fn len() -> usize {
        std::mem::size_of::<T>().max(1)
    }

    /// The mapping's address.
    pub fn as_ptr(&self) -> *mut T {
        self.ptr.as_ptr()
    }
}

impl<T> std::ops::Deref for Shm<T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: page-aligned, zero-filled (a valid `T` by `zeroed`'s
        // contract) and mapped as long as `self` lives.
        unsafe { self.ptr.as_ref() }
    }
}

impl<T> Drop for Shm<T> {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `zeroed`; no reference
        // into it outlives `self`.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), Self::len()) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[test]
    fn child_writes_shared_memory_and_exit_codes_are_reported() {
        // SAFETY: an all-zero AtomicU32 is 0.
        let shm = unsafe { Shm::<AtomicU32>::zeroed() };
        let c = fork(|| {
            shm.store(42, Ordering::SeqCst);
            7
        });
        assert_eq!(c.wait(Duration::from_secs(30)), Exit::Code(7));
        assert_eq!(shm.load(Ordering::SeqCst), 42);
        assert_eq!(fork(|| die()).wait_blocking(), Exit::Signal(libc::SIGKILL));
        assert_eq!(fork(|| panic!("boom")).wait_blocking(), Exit::Code(101));
    }

    #[test]
    #[should_panic(expected = "hang")]
    fn a_hung_child_is_killed_and_reported() {
        let c = fork(|| loop {
            std::thread::sleep(Duration::from_secs(1));
        });
        c.wait(Duration::from_millis(50));
    }
}
