//! Race-free cancellation of blocking syscalls.
//!
//! `pthread_cancel` cannot be used soundly from Rust (its forced unwind
//! through frames with destructors is undefined behaviour), and "enable
//! asynchronous cancellation around the syscall" loses results: the cancel
//! can act after the kernel returned a byte count or a new descriptor but
//! before user space stored it. hangsafe uses the design of the "cancellable syscalls in userspace" discussion, which
//! musl adopted and glibc 2.41 copied:
//!
//! 1. Every cancellable syscall goes through a small assembly stub
//!    (`platform`, one file per architecture). Between its `begin` and
//!    `end` labels it only tests the thread's cancel bit and traps into the
//!    kernel.
//! 2. A canceller sets the target thread's cancel bit (by CAS, for the
//!    exact job generation: never a stale cancel) and sends it **one**
//!    real-time signal.
//! 3. The signal handler moves the interrupted PC to the stub's `cancel`
//!    label **only** if it is inside `[begin, end)`: the syscall has then
//!    not taken effect (not yet entered, or rewound by the kernel for a
//!    restart). Anywhere else (the syscall completed, or returned `EINTR`,
//!    or another signal handler runs) it re-raises the signal with the
//!    signal masked in the interrupted context, so it comes back when that
//!    context is left.
//!
//! So a cancel acts only if the syscall has not taken effect; a completed
//! call's result is always returned, and the cancel shows at the next
//! cancellation point. Cancellation reaches Rust as
//! [`Error::Cancelled`], never as an unwind and never as `EINTR`.
//!
//! Who can be cancelled: a runner's work (cancel the runner, explicitly,
//! by its deadline or by dropping its handle), and any thread inside a
//! [`CancelToken`]'s [`Scope`]. Outside of both, the wrappers are the plain
//! syscalls.
//!
//! ```
//! use hangsafe::runner::{Builder, RunError};
//! use std::time::Duration;
//!
//! let (r, _w) = std::io::pipe().unwrap();
//! // A read nobody answers, with a 20 ms deadline: the read is interrupted,
//! // the work returns, and the thread goes back to the pool.
//! let probe = Builder::new()
//!     .timeout(Duration::from_millis(20))
//!     .spawn(move |_| {
//!         let mut b = [0u8; 1];
//!         hangsafe::cancel::read(&r, &mut b)
//!     })
//!     .unwrap();
//! assert_eq!(probe.wait(), Err(RunError::TimedOut));
//! ```
//!
//! What cannot be cancelled: work that never reaches a cancellation point
//! (a busy loop, a plain libc call, uninterruptible sleep in the kernel).
//! Such work is abandoned by the runner pool, as before.

mod error;
mod fd;
mod fs;
mod io;
mod net;
mod process;
mod raw;
mod signal;
mod syscall;
pub(crate) mod thread;
mod token;
mod wait;
pub(crate) mod word;

pub use error::{Error, Result};
pub use fd::Cancellable;
pub use fs::{fcntl_lock_wait, fdatasync, flock, fsync, openat};
pub use io::{close, pread, pwrite, read, readv, write, writev};
pub use net::{
    accept4, connect, recv, recvfrom, recvmsg, send, sendmsg, sendto, RecvMsg, SockAddr,
};
pub use process::{wait4, waitid};
pub use raw::{ioctl, syscall};
pub use signal::{
    install, metrics, signal, CancelSignal, InstallError, Metrics, ParseSignalError, DEFAULT_SIGNAL,
};
pub(crate) use signal::{install_lock, reset_internal_mask, with_signals_blocked};
#[allow(deprecated)]
pub use signal::{stats, Stats};
pub use syscall::testcancel;
pub(crate) use token::Target;
pub use token::{CancelToken, Scope, ScopeError};
pub use wait::{epoll_wait, poll, ppoll, sleep};
