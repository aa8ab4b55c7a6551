//! hangsafe: supervise work that may hang, without losing memory safety,
//! resources or liveness when it times out, is cancelled or dies.
//!
//! The crate is built from five mechanisms, each from a public design
//! discussion:
//!
//! * [`runner`]: work on a pooled, detached thread with a deadline, whose
//!   handle can be released at any time without blocking (multipath-tools'
//!   runner, without its start race).
//! * [`cancel`]: race-free cancellation of blocking syscalls (the musl /
//!   glibc 2.41 design): a cancelled runner's blocked `read`, `poll`,
//!   `accept`… returns `Cancelled` unless it already took effect, and the
//!   thread goes back to the pool.
//! * [`nexus`]: stale-proof events (libxl's hook nexus): generational
//!   tokens that a late callback cannot misuse, hooks for any event loop,
//!   and [`RunnerSet`](nexus::RunnerSet), many runners behind one fd.
//! * [`examine`]: consistent snapshots of what a running worker published
//!   (utrace's prepare/finish examine, on a seqlock sound under Rust's
//!   memory model); a runner that ended or was released is `Gone`.
//! * [`robust`]: a process-shared mutex in shared memory that survives its
//!   owner's death (the next owner is told), loses no wakeup, and is never
//!   written after unlock, on every kernel (PI futexes, no robust list).
//!
//! ```
//! use hangsafe::runner::{Builder, RunError};
//! use std::time::Duration;
//!
//! let probe = Builder::new()
//!     .timeout(Duration::from_secs(2))
//!     .spawn(|_ctx| std::fs::metadata("/").map(|m| m.is_dir()))
//!     .unwrap();
//! match probe.wait() {
//!     Ok(Ok(is_dir)) => assert!(is_dir),
//!     Ok(Err(io)) => panic!("probe failed: {io}"),
//!     Err(RunError::TimedOut) => panic!("/ is hung"),
//!     Err(e) => panic!("{e}"),
//! }
//! ```
//!
//! # Platform
//!
//! Linux only: x86_64 is first-class; on aarch64 the library's tests run
//! under qemu-user in CI. Elsewhere the crate refuses to compile with a
//! clear message.

#![warn(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]
// Under `--cfg hangsafe_loom` (this crate's own model-checking cfg; a
// user's `--cfg loom` leaves hangsafe whole) only the model-checked core is
// built; the rest is unused.
#![cfg_attr(hangsafe_loom, allow(dead_code, unused_imports, unreachable_pub))]

#[cfg(not(target_os = "linux"))]
compile_error!("hangsafe is unsupported on this platform: it needs Linux (x86_64 or aarch64).");

#[cfg(all(
    target_os = "linux",
    not(any(target_arch = "x86_64", target_arch = "aarch64"))
))]
compile_error!(
    "hangsafe is unsupported on this architecture: it supports x86_64 and aarch64 Linux."
);

#[cfg(not(hangsafe_loom))]
pub mod cancel;
#[cfg(hangsafe_loom)]
mod cancel {
    //! Under loom only the cancel word is built (it is model-checked).
    pub(crate) mod word;
}
mod error;
pub mod examine;
pub mod nexus;
mod platform;
#[cfg(not(hangsafe_loom))]
pub mod robust;
#[cfg(hangsafe_loom)]
mod robust;
pub mod runner;
mod sync;

pub use error::{is_cancelled, Cancelled};

/// The README's Rust examples, compiled and run as doctests (`cargo test
/// --doc`): each is a complete program. Its other code blocks are marked
/// `sh`, `console`, `c` or `text`, which rustdoc does not test (the C
/// blocks are compiled by `.ci/readme-c-examples.sh`).
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;
