//! The `runner.h` API: a drop-in for multipath-tools' `libmpathutil`
//! runner, on top of [`hangsafe_core::runner`].
//!
//! A C runner is a [`Runner`] whose value is the runner's private copy of
//! the caller's data ([`Buffer`]): the copy is moved into the work, the C
//! function fills it in on a pool thread, and the work hands it back as its
//! result. Whoever ends up owning the copy frees it: the handle (after
//! `Done`), or the pool thread (work that returned after a cancel, or work
//! that never started because it was released first).

use crate::barrier;
use crate::buffer::Buffer;
use crate::errno;
use hangsafe_core::runner::{Builder, Ctx, Runner, State};
use std::ffi::{c_char, c_int, c_uint, c_ulong, c_void, CStr};
use std::ptr;
use std::time::Duration;

/// `RUNNER_IDLE` of `enum runner_status`. Never returned: a hangsafe runner
/// is running from the moment `get_runner()` returns.
pub const RUNNER_IDLE: c_int = 0;
/// `RUNNER_RUNNING`: the work has not finished and was not cancelled.
pub const RUNNER_RUNNING: c_int = 1;
/// `RUNNER_DONE`: the work returned; its data can be copied out.
pub const RUNNER_DONE: c_int = 2;
/// `RUNNER_CANCELLED`: the runner timed out (or was cancelled) before the
/// work returned. No data will ever be copied out.
pub const RUNNER_CANCELLED: c_int = 3;
/// `RUNNER_DEAD`: the work ended without a result (it returned after the
/// cancel).
pub const RUNNER_DEAD: c_int = 4;

// The core documents its state values as the C enum's. `status` maps them
// with a match anyway; these checks catch a divergence at compile time.
const _: () = assert!(State::Running as u8 as c_int == RUNNER_RUNNING);
const _: () = assert!(State::Done as u8 as c_int == RUNNER_DONE);
const _: () = assert!(State::Cancelled as u8 as c_int == RUNNER_CANCELLED);
const _: () = assert!(State::Dead as u8 as c_int == RUNNER_DEAD);

/// `runner_func`: the C work function, `void (*)(void *data)`.
/// `None` is the C null pointer.
pub type RunnerFunc = Option<unsafe extern "C" fn(data: *mut c_void)>;

/// `struct runner_context`: the opaque handle `get_runner()` returns.
pub struct RunnerContext {
    pub(crate) runner: Runner<Buffer>,
}

impl std::fmt::Debug for RunnerContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunnerContext").finish_non_exhaustive()
    }
}

/// The C value of a core state.
pub(crate) fn status(state: State) -> c_int {
    match state {
        State::Running => RUNNER_RUNNING,
        State::Done => RUNNER_DONE,
        State::Cancelled => RUNNER_CANCELLED,
        State::Dead => RUNNER_DEAD,
    }
}

/// The work function, made movable to the pool thread together with its
/// data. `get_runner` and `hs_set_spawn` (module `set`) both run C work
/// this way.
pub(crate) struct Work {
    func: unsafe extern "C" fn(data: *mut c_void),
    data: Buffer,
}

impl Work {
    /// Checks the C arguments of `what` (`get_runner`, `hs_set_spawn`) and
    /// copies the data: the work, or the `errno` value to fail with
    /// (`EINVAL` for a null `func` or `data` or a zero `size`, `ENOMEM`),
    /// the reason logged.
    ///
    /// # Safety
    ///
    /// `data` must be null or readable for `size` bytes; `func` must be
    /// null or a function as `get_runner`'s contract describes.
    pub(crate) unsafe fn prepare(
        what: &str,
        func: RunnerFunc,
        data: *const c_void,
        size: c_uint,
    ) -> Result<Work, c_int> {
        let Some(func) = func else {
            return Err(invalid_arg(what, "func is NULL"));
        };
        if data.is_null() {
            return Err(invalid_arg(what, "data is NULL"));
        }
        if size == 0 {
            return Err(invalid_arg(what, "size is 0"));
        }
        // c_uint always fits in usize on the supported 64-bit platforms.
        let len = size as usize;
        // SAFETY: `data` is non-null and readable for `size` bytes
        // (caller's contract).
        let Some(copy) = (unsafe { Buffer::copy_from(data.cast::<u8>(), len) }) else {
            log::error!("{what}: cannot allocate {len} bytes for the runner's data");
            return Err(libc::ENOMEM);
        };
        Ok(Work { func, data: copy })
    }

    /// Runs the C function on the private copy and returns the copy. While
    /// it runs, `hs_publish` on this thread publishes through `ctx`.
    pub(crate) fn run(mut self, ctx: &Ctx<'_>) -> Buffer {
        let p = self.data.as_mut_ptr().cast::<c_void>();
        let func = self.func;
        crate::examine::with_publisher(ctx, || {
            // SAFETY: `get_runner`'s (and `hs_set_spawn`'s) contract makes
            // `func` a function that may be called with a pointer to `size`
            // bytes of the caller's data type, on any thread, and that
            // returns normally. `p` points to this work's exclusive,
            // 16-byte aligned copy of those bytes, which stays alive and
            // unaliased for the whole call (we own it by value).
            unsafe { func(p) }
        });
        self.data
    }
}

/// A builder for C work with a deadline `timeout_usec` microseconds from
/// now (0: none). A huge value saturates to a deadline decades away.
pub(crate) fn builder(timeout_usec: c_ulong) -> Builder {
    let builder = Builder::new();
    if timeout_usec == 0 {
        return builder;
    }
    // `unsigned long` is 64 bits on every supported (LP64) platform.
    builder.timeout(Duration::from_micros(timeout_usec))
}

/// Logs `what: msg` and returns `EINVAL`.
fn invalid_arg(what: &str, msg: &str) -> c_int {
    log::error!("{what}: {msg}");
    libc::EINVAL
}

/// Returns the name of a runner state: `"idle"`, `"running"`, `"done"`,
/// `"cancelled"`, `"dead"`, or `"unknown"` for any other value. The string
/// is static.
#[no_mangle]
pub extern "C" fn runner_state_name(state: c_int) -> *const c_char {
    let name: &'static CStr = match state {
        RUNNER_IDLE => c"idle",
        RUNNER_RUNNING => c"running",
        RUNNER_DONE => c"done",
        RUNNER_CANCELLED => c"cancelled",
        RUNNER_DEAD => c"dead",
        _ => c"unknown",
    };
    name.as_ptr()
}

/// Starts `func` on a copy of `size` bytes at `data`, on a pooled runner
/// thread, cancelling it `timeout_usec` microseconds from now (0: never).
///
/// Returns the handle, or null with `errno` set: `EINVAL` for a null
/// `func`, a null `data` or a zero `size`; `ENOMEM` if the copy cannot be
/// allocated; `EAGAIN` (or the OS's code) when no thread is available;
/// `EBUSY` for a busy key.
///
/// # Safety
///
/// * `data` must be readable for `size` bytes (it is only read during this
///   call).
/// * `func` must be safe to call on another thread with a pointer to a
///   16-byte aligned copy of those bytes, and must return normally: no
///   unwinding, `longjmp` or `pthread_exit` out of it.
#[no_mangle]
pub unsafe extern "C" fn get_runner(
    func: RunnerFunc,
    data: *mut c_void,
    size: c_uint,
    timeout_usec: c_ulong,
) -> *mut RunnerContext {
    barrier::run("get_runner", ptr::null_mut(), || {
        // SAFETY: the caller's contract is this function's, forwarded.
        unsafe { start(func, data, size, timeout_usec) }
    })
}

/// The body of [`get_runner`], with the same contract.
unsafe fn start(
    func: RunnerFunc,
    data: *mut c_void,
    size: c_uint,
    timeout_usec: c_ulong,
) -> *mut RunnerContext {
    // SAFETY: the caller's contract is `prepare`'s.
    let work = match unsafe { Work::prepare("get_runner", func, data, size) } {
        Ok(w) => w,
        Err(code) => {
            errno::set(code);
            return ptr::null_mut();
        }
    };
    match builder(timeout_usec).spawn(move |ctx: &Ctx<'_>| work.run(ctx)) {
        Ok(runner) => Box::into_raw(Box::new(RunnerContext { runner })),
        Err(e) => {
            log::error!("get_runner: cannot start a runner: {e}");
            errno::set(errno::from_spawn_error(&e));
            ptr::null_mut()
        }
    }
}

/// Returns the runner's state without blocking, cancelling it first if its
/// deadline has passed. While the state is `RUNNER_DONE`, every call copies
/// the result into `data` (unless `data` is null): `size` bytes, or only
/// the bytes that exist if `size` is larger than at `get_runner()`.
///
/// Returns `-1` with `errno` = `EINVAL` if `rctx` is null.
///
/// # Safety
///
/// * `rctx` must be null or a handle from [`get_runner`] that has not been
///   released.
/// * `data` must be null or writable for `size` bytes.
#[no_mangle]
pub unsafe extern "C" fn check_runner(
    rctx: *mut RunnerContext,
    data: *mut c_void,
    size: c_uint,
) -> c_int {
    barrier::run("check_runner", -1, || {
        // SAFETY: the caller's contract is this function's, forwarded.
        unsafe { check(rctx, data, size) }
    })
}

/// The body of [`check_runner`], with the same contract.
unsafe fn check(rctx: *mut RunnerContext, data: *mut c_void, size: c_uint) -> c_int {
    if rctx.is_null() {
        log::error!("check_runner: rctx is NULL");
        errno::set(libc::EINVAL);
        return -1;
    }
    // SAFETY: `rctx` is non-null and, by the caller's contract, a live
    // handle from `get_runner` (a `Box<RunnerContext>` turned into a raw
    // pointer). Only shared access is taken, so C may call this on one
    // handle from several threads: `Runner<Buffer>` is `Sync` (checked at
    // compile time in `buffer.rs`).
    let ctx = unsafe { &*rctx };
    let state = ctx.runner.check();
    if state == State::Done && !data.is_null() {
        if let Some(result) = ctx.runner.result() {
            // SAFETY: `data` is non-null and writable for `size` bytes
            // (caller's contract).
            unsafe { copy_out(result.as_slice(), data.cast::<u8>(), size as usize) };
        }
    }
    status(state)
}

/// Copies `result` into `dst`, or its first `size` bytes if it is longer.
///
/// # Safety
///
/// `dst` must be writable for `size` bytes and must not overlap `result`.
unsafe fn copy_out(result: &[u8], dst: *mut u8, size: usize) {
    if size > result.len() {
        log::warn!(
            "check_runner: {size} bytes requested, the runner has {}; copying {}",
            result.len(),
            result.len()
        );
    }
    let n = size.min(result.len());
    // SAFETY: `result` is readable for `n <= result.len()` bytes, `dst` is
    // writable for `n <= size` bytes (caller's contract), and the runner's
    // private copy cannot overlap the caller's memory.
    unsafe { ptr::copy_nonoverlapping(result.as_ptr(), dst, n) };
}

/// Releases a runner handle without blocking. If the work still runs, it is
/// cancelled; its thread returns to the pool when the work returns. A null
/// `rctx` is ignored.
///
/// # Safety
///
/// `rctx` must be null or a handle from [`get_runner`] that has not been
/// released; it must not be used again afterwards.
#[no_mangle]
pub unsafe extern "C" fn release_runner(rctx: *mut RunnerContext) {
    barrier::run("release_runner", (), || {
        if rctx.is_null() {
            return;
        }
        // SAFETY: `rctx` came from `Box::into_raw` in `get_runner` and, by
        // the caller's contract, has not been released: we take back the
        // unique ownership of the box. Dropping the `Runner` inside cancels
        // the work if it still runs and never blocks.
        drop(unsafe { Box::from_raw(rctx) });
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn name(state: c_int) -> &'static str {
        // SAFETY: runner_state_name returns a static NUL-terminated string.
        unsafe { CStr::from_ptr(runner_state_name(state)) }
            .to_str()
            .unwrap()
    }

    #[test]
    fn state_names() {
        assert_eq!(name(RUNNER_IDLE), "idle");
        assert_eq!(name(RUNNER_RUNNING), "running");
        assert_eq!(name(RUNNER_DONE), "done");
        assert_eq!(name(RUNNER_CANCELLED), "cancelled");
        assert_eq!(name(RUNNER_DEAD), "dead");
        for bad in [-1, 5, 1000, c_int::MIN, c_int::MAX] {
            assert_eq!(name(bad), "unknown");
        }
    }

    unsafe extern "C" fn add_one(data: *mut c_void) {
        // SAFETY: the tests below pass a u64.
        unsafe { *data.cast::<u64>() += 1 };
    }

    fn errno() -> Option<i32> {
        std::io::Error::last_os_error().raw_os_error()
    }

    #[test]
    fn bad_arguments_are_einval() {
        let mut v = 0u64;
        let p = ptr::addr_of_mut!(v).cast::<c_void>();
        // SAFETY: every call is refused before `data` is read.
        unsafe {
            assert!(get_runner(None, p, 8, 0).is_null());
            assert_eq!(errno(), Some(libc::EINVAL));
            assert!(get_runner(Some(add_one), ptr::null_mut(), 8, 0).is_null());
            assert_eq!(errno(), Some(libc::EINVAL));
            assert!(get_runner(Some(add_one), p, 0, 0).is_null());
            assert_eq!(errno(), Some(libc::EINVAL));
            assert_eq!(check_runner(ptr::null_mut(), p, 8), -1);
            assert_eq!(errno(), Some(libc::EINVAL));
            release_runner(ptr::null_mut());
        }
    }

    #[test]
    fn runs_and_copies_out() {
        let mut v = 41u64;
        let p = ptr::addr_of_mut!(v).cast::<c_void>();
        // SAFETY: `p` is a valid u64 for reads and writes; add_one expects
        // one and returns normally.
        unsafe {
            // The largest timeout must not overflow anything.
            let r = get_runner(Some(add_one), p, 8, c_ulong::MAX);
            assert!(!r.is_null());
            let start = Instant::now();
            let mut st = check_runner(r, ptr::null_mut(), 0);
            while st == RUNNER_RUNNING && start.elapsed() < Duration::from_secs(10) {
                std::thread::sleep(Duration::from_millis(1));
                st = check_runner(r, ptr::null_mut(), 0);
            }
            assert_eq!(st, RUNNER_DONE);
            assert_eq!(v, 41, "nothing is copied while data is NULL");
            assert_eq!(check_runner(r, p, 8), RUNNER_DONE);
            assert_eq!(v, 42);
            release_runner(r);
        }
    }
}
