//! Typed guards alive on each thread, and what happens when a thread exits
//! with one still alive (H6 in `docs/races.md`).
//!
//! A [`RobustMutexGuard`](super::RobustMutexGuard) lends `&T`/`&mut T`
//! into the shared data, and the lock is only ever taken over from an owner
//! whose *thread is gone*. Safe code can leak a guard (`Box::leak`,
//! `mem::forget` of an `Rc` cycle, …), derive a `&T` from it, hand that to
//! another thread and let the locking thread exit: the next locker would
//! then take the lock over (`ESRCH`, `OwnerDead`) while the `&T` is alive.
//!
//! So a thread that exits while one of its guards was never dropped does
//! not exit: its TID stays alive, and the lock stays held for good, as a
//! leaked `std::sync::MutexGuard` keeps its `Mutex` locked. The check runs
//! in a `pthread_key_create` destructor, which glibc runs after every
//! thread-local destructor (so a guard kept in a `thread_local!` is dropped
//! first) and never at process exit (`exit` runs no key destructors, so a
//! process never hangs on its way out). The per-thread count is a
//! destructor-less thread local, readable at any point of thread teardown.

use super::error::Error;
use std::cell::Cell;
use std::ffi::c_void;
use std::sync::OnceLock;

thread_local! {
    /// Guards alive on this thread.
    static HELD: Cell<usize> = const { Cell::new(0) };
    /// Whether this thread's key value is set (its exit will be checked).
    static WATCHED: Cell<bool> = const { Cell::new(false) };
}

/// The key whose destructor checks an exiting thread; `None` if no key
/// could be created.
fn key() -> Option<libc::pthread_key_t> {
    static KEY: OnceLock<Option<libc::pthread_key_t>> = OnceLock::new();
    *KEY.get_or_init(|| {
        let mut k: libc::pthread_key_t = 0;
        // SAFETY: `k` is a valid out-pointer; `on_thread_exit` is an
        // `extern "C"` function with the destructor's signature that never
        // unwinds.
        let r = unsafe { libc::pthread_key_create(&mut k, Some(on_thread_exit)) };
        if r == 0 {
            Some(k)
        } else {
            log::error!(
                "robust mutex: pthread_key_create failed ({}); typed locks are refused",
                std::io::Error::from_raw_os_error(r)
            );
            None
        }
    })
}

/// Makes sure this thread's exit is checked. Called before a typed lock is
/// taken, so that a failure refuses the lock instead of handing out a
/// guard nobody would watch.
pub(crate) fn watch() -> Result<(), Error> {
    if WATCHED.with(Cell::get) {
        return Ok(());
    }
    let Some(k) = key() else {
        return Err(Error::Os(std::io::Error::other(
            "robust mutex: no thread-exit check available (pthread_key_create failed)",
        )));
    };
    // Any non-null value: the destructor only runs for those.
    let marker = std::ptr::NonNull::<c_void>::dangling().as_ptr();
    // SAFETY: `k` is a live key; the value is never dereferenced.
    let r = unsafe { libc::pthread_setspecific(k, marker) };
    if r != 0 {
        return Err(Error::Os(std::io::Error::from_raw_os_error(r)));
    }
    WATCHED.with(|w| w.set(true));
    Ok(())
}

/// A guard was created on this thread.
#[inline]
pub(crate) fn acquired() {
    HELD.with(|h| h.set(h.get().saturating_add(1)));
}

/// A guard of this thread was dropped or unlocked.
#[inline]
pub(crate) fn released() {
    HELD.with(|h| h.set(h.get().saturating_sub(1)));
}

/// The key's destructor: runs as the thread exits, after its thread-local
/// destructors. A guard still alive now was leaked: keep the thread (and
/// with it the lock) for good. Only async-signal-safe calls: the thread is
/// half torn down, so no logging framework (it may use thread locals).
extern "C" fn on_thread_exit(_: *mut c_void) {
    if HELD.with(Cell::get) == 0 {
        return;
    }
    const MSG: &[u8] = b"hangsafe: a thread exits with a RobustMutexGuard it never dropped \
(leaked); it is kept alive so that the lock stays held and no reference into the data \
can be outlived (H6)\n";
    // SAFETY: writes MSG's bytes, which live for the program, to stderr.
    let _ = unsafe { libc::write(2, MSG.as_ptr().cast(), MSG.len()) };
    loop {
        // SAFETY: `pause` has no preconditions; it returns after a signal
        // handler ran, and the loop goes back to waiting.
        unsafe { libc::pause() };
    }
}
