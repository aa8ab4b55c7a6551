//! Runner sets for C (`hs_set_*` of `hangsafe.h`): many runners behind one
//! fd, on top of the core's [`RunnerSet`], for a C event loop such as
//! multipathd's checker loop.
//!
//! An `hs_set` is an [`HsSet`]: the core set, whose runners' values are
//! the runners' private data copies ([`Buffer`]), plus the outcomes a drain
//! has taken out of the core set and not yet handed to the C callback
//! (`undelivered`).
//!
//! # Locking
//!
//! * The core set's own lock is held only for bookkeeping and the
//!   application's event-loop hooks (module `osevent`, libxl style).
//! * `undelivered` is held across the core set's `drain` (so an outcome is
//!   always either in the core set or in `undelivered`, never between the
//!   two, when `cancel`, `release` or `examine` look for it), and across
//!   `cancel` and `release`. Order: `undelivered`, then the core set's lock.
//! * `hs_set_drain` calls the C callback with **no lock held**: the
//!   callback may spawn into, cancel and release in the same set (a checker
//!   loop respawns from it). An outcome is popped from `undelivered` under
//!   the lock, then delivered, so each is delivered exactly once, and a
//!   release from the callback of a token whose outcome is still
//!   undelivered drops that outcome.
//!
//! # Re-entrancy (`EDEADLK`)
//!
//! * Inside an event-loop hook (a [`HookScope`] is alive on the thread,
//!   set by the `osevent` module around every call of a C hook), every
//!   `hs_set_*` call on any set fails with `EDEADLK` before taking any
//!   lock: the hook may run with the set's locks held.
//! * Inside a drain callback of a set, `hs_set_drain` and `hs_set_free` of
//!   **that** set fail with `EDEADLK` (a nested drain would recurse, a free
//!   would pull the set from under the outer drain); other sets are fine.

use crate::barrier;
use crate::buffer::Buffer;
use crate::errno;
use crate::examine;
use crate::runner::{self, RunnerFunc, Work, RUNNER_DEAD, RUNNER_DONE};
use hangsafe_core::nexus::{RunnerSet, SetError, Token};
use hangsafe_core::runner::{Ctx, RunError};
use std::cell::Cell;
use std::collections::VecDeque;
use std::ffi::{c_int, c_uint, c_ulong, c_void};
use std::os::fd::AsRawFd;
use std::ptr;
use std::sync::{Mutex, MutexGuard};

/// `hs_token`: a generational token, never 0.
pub type HsToken = u64;

/// `hs_outcome_fn`: `void (*)(void *arg, hs_token token, int state, const
/// void *data, unsigned int size)`. `None` is the C null pointer.
pub type HsOutcomeFn = Option<
    unsafe extern "C" fn(
        arg: *mut c_void,
        token: HsToken,
        state: c_int,
        data: *const c_void,
        size: c_uint,
    ),
>;

/// An outcome the core set yielded: the work's data, or why there is none.
pub(crate) type Outcome = (Token, Result<Buffer, RunError>);

/// `struct hs_set`: the opaque handle `hs_set_new()` returns.
pub struct HsSet {
    /// The runners. The `osevent` module reaches it for `attach`, `detach`
    /// and the `occurred` calls.
    pub(crate) set: RunnerSet<Buffer>,
    /// Outcomes drained from `set`, not yet handed to a callback.
    undelivered: Mutex<VecDeque<Outcome>>,
    /// The event-loop hooks' state (module `osevent`).
    pub(crate) osevent: crate::osevent::Osevent,
}

// C threads share one set through a pointer: what every entry point's
// shared access relies on, checked at compile time.
const _: fn() = || {
    fn shared_between_threads<T: Send + Sync>() {}
    shared_between_threads::<HsSet>();
};

impl std::fmt::Debug for HsSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HsSet")
            .field("fd", &self.set.as_raw_fd())
            .finish_non_exhaustive()
    }
}

impl HsSet {
    /// An empty set.
    pub(crate) fn new() -> std::io::Result<HsSet> {
        Ok(HsSet {
            set: RunnerSet::new()?,
            undelivered: Mutex::new(VecDeque::new()),
            osevent: crate::osevent::Osevent::default(),
        })
    }

    /// The undelivered outcomes, locked. A panic while it was held (a bug)
    /// leaves a consistent queue, so poisoning is ignored.
    fn undelivered(&self) -> MutexGuard<'_, VecDeque<Outcome>> {
        self.undelivered.lock().unwrap_or_else(|p| p.into_inner())
    }
}

// ---- re-entrancy marks ----------------------------------------------------

thread_local! {
    /// How many C hooks this thread is inside (see [`HookScope`]).
    static IN_HOOK: Cell<u32> = const { Cell::new(0) };
    /// The innermost drain callback frame running on this thread.
    static DRAINING: Cell<*const DrainFrame> = const { Cell::new(ptr::null()) };
}

/// Marks the thread as inside an application hook until dropped (also on
/// unwind). The `osevent` module wraps every call of a C hook in one, so
/// that every `hs_set_*` call from inside the hook fails with `EDEADLK`
/// instead of deadlocking on a lock the caller of the hook holds.
// Constructed by the `osevent` module only.
pub(crate) struct HookScope(());

impl HookScope {
    /// Enters a hook.
    pub(crate) fn enter() -> HookScope {
        IN_HOOK.with(|d| d.set(d.get().saturating_add(1)));
        HookScope(())
    }
}

impl Drop for HookScope {
    fn drop(&mut self) {
        IN_HOOK.with(|d| d.set(d.get().saturating_sub(1)));
    }
}

/// Whether this thread is inside an application hook.
pub(crate) fn in_hook() -> bool {
    IN_HOOK.with(|d| d.get() != 0)
}

/// One drain callback loop running on this thread, linked to the one it
/// is nested in. Frames live on the stack of `drain_body` and are unlinked
/// before it returns (also on unwind), so the chain only ever points to
/// live frames.
struct DrainFrame {
    set: *const HsSet,
    outer: *const DrainFrame,
}

/// Unlinks a [`DrainFrame`] when dropped.
struct Unlink(*const DrainFrame);

impl Drop for Unlink {
    fn drop(&mut self) {
        DRAINING.with(|d| d.set(self.0));
    }
}

/// Whether this thread is inside a drain callback of `set`.
fn draining(set: *const HsSet) -> bool {
    let mut frame = DRAINING.with(Cell::get);
    while !frame.is_null() {
        // SAFETY: every pointer in the chain is a `DrainFrame` on this
        // thread's stack in a `drain_body` call that has not returned (it
        // unlinks its frame before returning, also on unwind, and frames
        // are linked and unlinked in stack order).
        let f = unsafe { &*frame };
        if ptr::eq(f.set, set) {
            return true;
        }
        frame = f.outer;
    }
    false
}

// ---- helpers -----------------------------------------------------------------

/// Sets `errno` and returns `ret`.
fn fail<R>(code: c_int, ret: R) -> R {
    errno::set(code);
    ret
}

/// The set behind a C pointer, or the `errno` value to fail with: `EINVAL`
/// for NULL, `EDEADLK` from inside a hook. Logged.
///
/// # Safety
///
/// `set` must be null or a live set from `hs_set_new`.
pub(crate) unsafe fn entry<'a>(what: &str, set: *const HsSet) -> Result<&'a HsSet, c_int> {
    if set.is_null() {
        log::error!("{what}: set is NULL");
        return Err(libc::EINVAL);
    }
    if in_hook() {
        log::error!("{what}: called from inside an event-loop hook; refused");
        return Err(libc::EDEADLK);
    }
    // SAFETY: non-null and live (caller's contract); only shared access.
    Ok(unsafe { &*set })
}

/// The token `raw` names, or `ESTALE` (0 is never a token).
fn parse_token(what: &str, raw: HsToken) -> Result<Token, c_int> {
    Token::from_u64(raw).ok_or_else(|| {
        log::debug!("{what}: token {raw:#x} is not a token");
        libc::ESTALE
    })
}

/// The `errno` value for a core set error.
fn errno_of(what: &str, e: &SetError) -> c_int {
    match e {
        SetError::Spawn(s) => errno::from_spawn_error(s),
        SetError::Full => libc::ENOSPC,
        SetError::InHook => libc::EDEADLK,
        other => {
            log::error!("{what}: {other}");
            libc::EAGAIN
        }
    }
}

// ---- the C API ---------------------------------------------------------------

/// Creates an empty runner set. Returns it, or null with `errno` set (the
/// OS's code if no eventfd can be created, `ENOMEM`).
#[no_mangle]
pub extern "C" fn hs_set_new() -> *mut HsSet {
    barrier::run("hs_set_new", ptr::null_mut(), || match HsSet::new() {
        Ok(s) => Box::into_raw(Box::new(s)),
        Err(e) => {
            log::error!("hs_set_new: {e}");
            fail(e.raw_os_error().unwrap_or(libc::ENOMEM), ptr::null_mut())
        }
    })
}

/// Frees a set: releases every runner still in it (cancelling those still
/// running; nothing more is delivered) and its undelivered outcomes. Never
/// blocks. NULL is ignored. Refused (`errno` = `EDEADLK`, logged, nothing
/// freed) from inside a hook or a drain callback of this set.
///
/// # Safety
///
/// `set` must be null or a live set from `hs_set_new`, not used by any
/// other thread during or after this call.
#[no_mangle]
pub unsafe extern "C" fn hs_set_free(set: *mut HsSet) {
    barrier::run("hs_set_free", (), || {
        if set.is_null() {
            return;
        }
        if in_hook() || draining(set) {
            log::error!("hs_set_free: called from inside a hook or a drain callback; refused");
            errno::set(libc::EDEADLK);
            return;
        }
        // SAFETY: `set` came from `Box::into_raw` in `hs_set_new` and, by
        // the caller's contract, is not used again: we take back its
        // ownership. Dropping it releases every runner without blocking.
        drop(unsafe { Box::from_raw(set) });
    });
}

/// The set's file descriptor: readable (`POLLIN`) while an outcome waits to
/// be drained. -1 with `EINVAL` for NULL. Valid until `hs_set_free`.
///
/// # Safety
///
/// `set` must be null or a live set from `hs_set_new`.
#[no_mangle]
pub unsafe extern "C" fn hs_set_fd(set: *const HsSet) -> c_int {
    barrier::run("hs_set_fd", -1, || {
        if set.is_null() {
            log::error!("hs_set_fd: set is NULL");
            return fail(libc::EINVAL, -1);
        }
        // SAFETY: non-null and live (caller's contract). The fd never
        // changes and takes no lock, so this is fine inside a hook too.
        unsafe { &*set }.set.as_raw_fd()
    })
}

/// Milliseconds until the earliest deadline of a running runner, rounded
/// up and saturated at `INT_MAX`; 0 if one is due; -1 if none (for
/// `poll()`). Also -1 with `errno` set for NULL (`EINVAL`) or from inside
/// a hook (`EDEADLK`).
///
/// # Safety
///
/// `set` must be null or a live set from `hs_set_new`.
#[no_mangle]
pub unsafe extern "C" fn hs_set_timeout_ms(set: *const HsSet) -> c_int {
    barrier::run("hs_set_timeout_ms", -1, || {
        // SAFETY: forwarded from the caller.
        let set = match unsafe { entry("hs_set_timeout_ms", set) } {
            Ok(s) => s,
            Err(code) => return fail(code, -1),
        };
        match set.set.poll_timeout() {
            None => -1,
            Some(d) => {
                let ms = d.as_nanos().div_ceil(1_000_000);
                c_int::try_from(ms).unwrap_or(c_int::MAX)
            }
        }
    })
}

/// Starts `func` on a private copy of `size` bytes at `data` (as
/// `get_runner`), cancelled `timeout_usec` µs from now (0: never; huge
/// values saturate), in `set`. Returns its token, or 0 with `errno`:
/// `EINVAL` (NULL set, func or data, size 0), `ENOMEM`, `EAGAIN` (no
/// thread), `ENOSPC` (no token left), `EDEADLK` (inside a hook).
///
/// # Safety
///
/// `set` as for `hs_set_fd`; `data` and `func` as for `get_runner`.
#[no_mangle]
pub unsafe extern "C" fn hs_set_spawn(
    set: *mut HsSet,
    func: RunnerFunc,
    data: *const c_void,
    size: c_uint,
    timeout_usec: c_ulong,
) -> HsToken {
    barrier::run("hs_set_spawn", 0, || {
        // SAFETY: forwarded from the caller.
        match unsafe { spawn(set, func, data, size, timeout_usec) } {
            Ok(t) => t.as_u64(),
            Err(code) => fail(code, 0),
        }
    })
}

/// The body of [`hs_set_spawn`], with the same contract.
unsafe fn spawn(
    set: *mut HsSet,
    func: RunnerFunc,
    data: *const c_void,
    size: c_uint,
    timeout_usec: c_ulong,
) -> Result<Token, c_int> {
    // SAFETY: forwarded from the caller.
    let set = unsafe { entry("hs_set_spawn", set) }?;
    // SAFETY: forwarded from the caller.
    let work = unsafe { Work::prepare("hs_set_spawn", func, data, size) }?;
    let builder = runner::builder(timeout_usec);
    set.set
        .spawn(builder, move |ctx: &Ctx<'_>| work.run(ctx))
        .map_err(|e| {
            log::error!("hs_set_spawn: {e}");
            errno_of("hs_set_spawn", &e)
        })
}

/// Cancels the runner `token` (its `RUNNER_DEAD` outcome will be drained;
/// no effect if it is decided already). 0, or -1 with `ESTALE` for a token
/// not (or no longer) in the set, `EINVAL` (NULL), `EDEADLK` (in a hook).
///
/// # Safety
///
/// `set` must be null or a live set from `hs_set_new`.
#[no_mangle]
pub unsafe extern "C" fn hs_set_cancel(set: *mut HsSet, token: HsToken) -> c_int {
    barrier::run("hs_set_cancel", -1, || {
        // SAFETY: forwarded from the caller.
        let r = unsafe { entry("hs_set_cancel", set) }.and_then(|set| {
            let t = parse_token("hs_set_cancel", token)?;
            let q = set.undelivered();
            if set.set.cancel(t).is_some() || q.iter().any(|(u, _)| *u == t) {
                Ok(0)
            } else {
                Err(libc::ESTALE)
            }
        });
        r.unwrap_or_else(|code| fail(code, -1))
    })
}

/// Releases the runner `token`: removed from the set, cancelled if still
/// running, and no outcome is ever delivered for it, even one already
/// taken by a drain that is delivering others. Never blocks. 0, or -1 with
/// `ESTALE`, `EINVAL` (NULL), `EDEADLK` (in a hook).
///
/// # Safety
///
/// `set` must be null or a live set from `hs_set_new`.
#[no_mangle]
pub unsafe extern "C" fn hs_set_release(set: *mut HsSet, token: HsToken) -> c_int {
    barrier::run("hs_set_release", -1, || {
        // SAFETY: forwarded from the caller.
        let r = unsafe { entry("hs_set_release", set) }.and_then(|set| {
            let t = parse_token("hs_set_release", token)?;
            let dropped = {
                let mut q = set.undelivered();
                if set.set.release(t) {
                    return Ok(0);
                }
                let at = q.iter().position(|(u, _)| *u == t);
                at.and_then(|i| q.remove(i))
            };
            // The outcome (the work's data copy) is freed outside the lock.
            dropped.map(|_| 0).ok_or(libc::ESTALE)
        });
        r.unwrap_or_else(|code| fail(code, -1))
    })
}

/// Calls `func(arg, token, state, data, size)` once per decided runner:
/// `RUNNER_DONE` with the work's data (valid during the call only) or
/// `RUNNER_DEAD` with NULL and 0 (timed out, cancelled, crashed work).
/// Applies due deadlines first. Returns how many calls were made, or -1
/// with `errno`: `EINVAL` (NULL set or func), `EDEADLK` (inside a hook,
/// or inside a drain callback of this set).
///
/// The callback may call `hs_set_spawn`, `hs_set_cancel`,
/// `hs_set_release` and `hs_set_examine` on this set; it runs with no lock
/// of the set held. It must return normally (no `longjmp`, no C++
/// exception).
///
/// # Safety
///
/// `set` must be null or a live set from `hs_set_new`; `func` must be
/// callable with `arg` as described.
#[no_mangle]
pub unsafe extern "C" fn hs_set_drain(
    set: *mut HsSet,
    func: HsOutcomeFn,
    arg: *mut c_void,
) -> c_int {
    barrier::run("hs_set_drain", -1, || {
        // SAFETY: forwarded from the caller.
        let r = unsafe { entry("hs_set_drain", set) }.and_then(|s| {
            let Some(func) = func else {
                log::error!("hs_set_drain: func is NULL");
                return Err(libc::EINVAL);
            };
            if draining(s) {
                log::error!("hs_set_drain: called from its own drain callback; refused");
                return Err(libc::EDEADLK);
            }
            // SAFETY: forwarded from the caller.
            Ok(unsafe { drain_body(s, func, arg) })
        });
        r.unwrap_or_else(|code| fail(code, -1))
    })
}

/// The callback type, non-null.
type OutcomeFn = unsafe extern "C" fn(*mut c_void, HsToken, c_int, *const c_void, c_uint);

/// Moves the decided outcomes into `undelivered`, then delivers them one
/// by one with no lock held.
///
/// # Safety
///
/// As [`hs_set_drain`].
unsafe fn drain_body(set: &HsSet, func: OutcomeFn, arg: *mut c_void) -> c_int {
    {
        let mut q = set.undelivered();
        match set.set.drain() {
            Ok(d) => q.extend(d),
            Err(e) => {
                log::error!("hs_set_drain: {e}");
                return fail(errno_of("hs_set_drain", &e), -1);
            }
        }
    }
    let frame = DrainFrame {
        set,
        outer: DRAINING.with(Cell::get),
    };
    DRAINING.with(|d| d.set(&frame));
    let _unlink = Unlink(frame.outer);
    let mut delivered: c_int = 0;
    loop {
        let next = set.undelivered().pop_front();
        let Some((t, outcome)) = next else { break };
        // SAFETY: forwarded from the caller.
        unsafe { deliver(func, arg, t, &outcome) };
        delivered = delivered.saturating_add(1);
    }
    delivered
}

/// Calls the C callback for one outcome.
///
/// # Safety
///
/// `func` must be callable with `arg` (the caller's contract).
unsafe fn deliver(func: OutcomeFn, arg: *mut c_void, t: Token, outcome: &Result<Buffer, RunError>) {
    let (state, data, size) = match outcome {
        Ok(b) => {
            let bytes = b.as_slice();
            // A buffer's length came from a `c_uint`.
            let size = c_uint::try_from(bytes.len()).unwrap_or(c_uint::MAX);
            (RUNNER_DONE, bytes.as_ptr().cast::<c_void>(), size)
        }
        Err(_) => (RUNNER_DEAD, ptr::null(), 0),
    };
    // SAFETY: `func` is callable with `arg` (caller's contract); `data` is
    // null or points to `size` readable bytes that stay alive until after
    // the call (the outcome is borrowed across it).
    unsafe { func(arg, t.as_u64(), state, data, size) };
}

/// Takes a consistent copy of what the runner `token`'s work last
/// published (see `hs_runner_examine`). 0, or -1 with `errno`: `EINVAL`
/// (NULL set or out, size 0), `EAGAIN`, `ESRCH` (the work has ended, or
/// the runner was released during the call), `ENODATA`, `ESTALE` (token
/// not in the set), `EDEADLK` (inside a hook).
///
/// # Safety
///
/// `set` must be null or a live set from `hs_set_new`; `out` must be null
/// or writable for `size` bytes.
#[no_mangle]
pub unsafe extern "C" fn hs_set_examine(
    set: *mut HsSet,
    token: HsToken,
    out: *mut c_void,
    size: c_uint,
) -> c_int {
    barrier::run("hs_set_examine", -1, || {
        // SAFETY: forwarded from the caller.
        let r = unsafe { entry("hs_set_examine", set) }.and_then(|set| {
            examine::check_out("hs_set_examine", out, size)?;
            let t = parse_token("hs_set_examine", token)?;
            let examiner = {
                let q = set.undelivered();
                match set.set.examiner(t) {
                    Ok(ex) => ex,
                    // Drained, its outcome not delivered yet: it ended.
                    Err(_) if q.iter().any(|(u, _)| *u == t) => return Err(libc::ESRCH),
                    Err(_) => return Err(libc::ESTALE),
                }
            };
            // SAFETY: `out` is writable for `size` bytes (caller's
            // contract).
            unsafe { examine::snapshot_into(|| examiner.examine(examine::copy_of), out, size) }
        });
        r.map_or_else(|code| fail(code, -1), |()| 0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn errno() -> Option<i32> {
        std::io::Error::last_os_error().raw_os_error()
    }

    unsafe extern "C" fn add_one(data: *mut c_void) {
        // SAFETY: the tests pass a u64.
        unsafe { *data.cast::<u64>() += 1 };
    }

    unsafe extern "C" fn collect(
        arg: *mut c_void,
        token: HsToken,
        state: c_int,
        data: *const c_void,
        size: c_uint,
    ) {
        // SAFETY: `arg` is the test's Vec; `data` is a u64 when DONE.
        let seen = unsafe { &mut *arg.cast::<Vec<(HsToken, c_int, u64)>>() };
        let v = if data.is_null() {
            assert_eq!(size, 0);
            0
        } else {
            assert_eq!(size, 8);
            // SAFETY: 8 readable bytes, 16-byte aligned.
            unsafe { *data.cast::<u64>() }
        };
        seen.push((token, state, v));
    }

    #[test]
    fn null_and_bad_arguments() {
        let v = 1u64;
        let p = ptr::addr_of!(v).cast::<c_void>();
        // SAFETY: every call below is refused before dereferencing, or
        // gets a live set.
        unsafe {
            assert_eq!(hs_set_fd(ptr::null()), -1);
            assert_eq!(errno(), Some(libc::EINVAL));
            assert_eq!(hs_set_timeout_ms(ptr::null()), -1);
            assert_eq!(errno(), Some(libc::EINVAL));
            assert_eq!(hs_set_spawn(ptr::null_mut(), Some(add_one), p, 8, 0), 0);
            assert_eq!(errno(), Some(libc::EINVAL));
            hs_set_free(ptr::null_mut());
            let s = hs_set_new();
            assert!(!s.is_null());
            assert!(hs_set_fd(s) >= 0);
            assert_eq!(hs_set_timeout_ms(s), -1);
            assert_eq!(hs_set_spawn(s, None, p, 8, 0), 0);
            assert_eq!(errno(), Some(libc::EINVAL));
            assert_eq!(hs_set_spawn(s, Some(add_one), p, 0, 0), 0);
            assert_eq!(errno(), Some(libc::EINVAL));
            for t in [0, 1, u64::MAX, 0x1_0000_0000] {
                assert_eq!(hs_set_cancel(s, t), -1);
                assert_eq!(errno(), Some(libc::ESTALE));
                assert_eq!(hs_set_release(s, t), -1);
                assert_eq!(errno(), Some(libc::ESTALE));
            }
            assert_eq!(hs_set_drain(s, None, ptr::null_mut()), -1);
            assert_eq!(errno(), Some(libc::EINVAL));
            hs_set_free(s);
        }
    }

    /// H108: from inside an application hook every call fails with
    /// EDEADLK before taking a lock, and `hs_set_free` frees nothing.
    #[test]
    fn h108_calls_from_inside_a_hook_are_edeadlk() {
        let v = 1u64;
        let p = ptr::addr_of!(v).cast::<c_void>();
        let mut out = [0u8; 8];
        // SAFETY: a live set; every call is refused before touching `p`
        // or `out`, which are valid anyway.
        unsafe {
            let s = hs_set_new();
            let t = hs_set_spawn(s, Some(add_one), p, 8, 0);
            assert_ne!(t, 0);
            {
                let _hook = HookScope::enter();
                assert!(in_hook());
                assert_eq!(hs_set_timeout_ms(s), -1);
                assert_eq!(errno(), Some(libc::EDEADLK));
                assert_eq!(hs_set_spawn(s, Some(add_one), p, 8, 0), 0);
                assert_eq!(errno(), Some(libc::EDEADLK));
                assert_eq!(hs_set_cancel(s, t), -1);
                assert_eq!(errno(), Some(libc::EDEADLK));
                assert_eq!(hs_set_release(s, t), -1);
                assert_eq!(errno(), Some(libc::EDEADLK));
                assert_eq!(hs_set_drain(s, Some(collect), ptr::null_mut()), -1);
                assert_eq!(errno(), Some(libc::EDEADLK));
                let o = out.as_mut_ptr().cast();
                assert_eq!(hs_set_examine(s, t, o, 8), -1);
                assert_eq!(errno(), Some(libc::EDEADLK));
                hs_set_free(s);
                assert_eq!(errno(), Some(libc::EDEADLK));
                // The fd takes no lock: it is answered.
                assert!(hs_set_fd(s) >= 0);
            }
            assert!(!in_hook());
            assert_eq!(hs_set_release(s, t), 0);
            hs_set_free(s);
        }
    }

    #[test]
    fn spawn_drain_release() {
        let v = 41u64;
        let p = ptr::addr_of!(v).cast::<c_void>();
        let mut seen: Vec<(HsToken, c_int, u64)> = Vec::new();
        let arg = ptr::addr_of_mut!(seen).cast::<c_void>();
        // SAFETY: a live set, a u64 for add_one, `seen` for collect.
        unsafe {
            let s = hs_set_new();
            let a = hs_set_spawn(s, Some(add_one), p, 8, c_ulong::MAX);
            let b = hs_set_spawn(s, Some(add_one), p, 8, 0);
            assert!(a != 0 && b != 0 && a != b);
            assert_eq!(hs_set_release(s, b), 0);
            assert_eq!(hs_set_release(s, b), -1);
            let start = Instant::now();
            while seen.is_empty() && start.elapsed() < Duration::from_secs(20) {
                assert!(hs_set_drain(s, Some(collect), arg) >= 0);
                std::thread::sleep(Duration::from_millis(1));
            }
            assert_eq!(seen, vec![(a, RUNNER_DONE, 42)]);
            assert_eq!(hs_set_cancel(s, a), -1);
            assert_eq!(errno(), Some(libc::ESTALE));
            hs_set_free(s);
        }
        assert_eq!(v, 41, "the caller's data is never written");
    }
}
