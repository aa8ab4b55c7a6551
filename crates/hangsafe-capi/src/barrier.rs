//! The panic barrier around every exported function.
//!
//! Unwinding out of an `extern "C"` function aborts the process. The
//! exported functions are written so that no input can make them panic;
//! this barrier is the second line of defence against a bug (in this crate
//! or in the core library) turning into an abort of the C program.

use std::panic::{catch_unwind, AssertUnwindSafe};

/// Makes sure the logger is installed, then runs `body`; if either panics,
/// logs the fact, sets `errno` to `ENOTRECOVERABLE` and returns `on_panic`
/// instead.
///
/// `AssertUnwindSafe` is sound here: after a panic nothing the closure
/// touched is used again by the caller, which only receives `on_panic`.
pub(crate) fn run<R>(what: &str, on_panic: R, body: impl FnOnce() -> R) -> R {
    let guarded = || {
        crate::logger::ensure_installed();
        body()
    };
    match catch_unwind(AssertUnwindSafe(guarded)) {
        Ok(r) => r,
        Err(_) => {
            log::error!("{what}: internal error (a panic was caught at the C boundary)");
            crate::errno::set(libc::ENOTRECOVERABLE);
            on_panic
        }
    }
}
