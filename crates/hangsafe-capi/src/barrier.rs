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
    run_signal_safe(what, on_panic, || {
        crate::logger::ensure_installed();
        body()
    })
}

/// Like [`run`], but does not install the logger first, so that an entry
/// point which is otherwise async-signal-safe stays so: on the path where
/// nothing panics this adds only a landing pad, no allocation, lock or
/// syscall. (Reaching the panic path is a bug; there, logging happens only
/// if some earlier call installed the logger.)
pub(crate) fn run_signal_safe<R>(what: &str, on_panic: R, body: impl FnOnce() -> R) -> R {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(r) => r,
        Err(_) => {
            log::error!("{what}: internal error (a panic was caught at the C boundary)");
            crate::errno::set(libc::ENOTRECOVERABLE);
            on_panic
        }
    }
}
