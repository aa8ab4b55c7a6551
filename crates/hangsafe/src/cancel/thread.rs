//! Each thread's cancel word, as the stub and the signal handler find it.
//!
//! `CURRENT` is a `const`-initialised thread-local raw pointer with no
//! destructor: reading it compiles to a plain TLS load with no lazy
//! initialisation, which is async-signal-safe. `OWNER` keeps the word alive
//! and, when the thread exits, clears `CURRENT` and retires the word (R7)
//! before freeing its reference.

use super::word::CancelWord;
use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The process generation: 0 in the original process, bumped by the fork
/// child handler. Anything that names a thread (a cancel word's TID, a pool
/// worker, a key reservation, the timer) records the generation it was
/// made in; in a fork child, whatever belongs to an older generation names
/// a thread that does not exist there.
static FORK_GEN: AtomicU64 = AtomicU64::new(0);

/// The current process generation.
#[inline]
pub(crate) fn fork_generation() -> u64 {
    FORK_GEN.load(Ordering::Relaxed)
}

/// For the fork child handler (the child's only thread): starts a new
/// process generation and rebinds this thread's cancel word, if any, to
/// its new TID. Takes no lock and allocates nothing.
pub(crate) fn after_fork_child() {
    let gen = FORK_GEN.fetch_add(1, Ordering::Relaxed) + 1;
    let w = CURRENT.with(|c| c.get());
    if !w.is_null() {
        // SAFETY: a non-null CURRENT points to the word OWNER keeps alive
        // for the life of this thread; gettid has no preconditions.
        unsafe { (*w).rebind_after_fork(libc::gettid(), gen) };
    }
}

thread_local! {
    static CURRENT: Cell<*const CancelWord> = const { Cell::new(std::ptr::null()) };
    /// Set by the signal handler when it added the cancel signal to the
    /// interrupted context's mask; cleared when the job ends and the signal
    /// is unblocked again.
    static MASKED: Cell<bool> = const { Cell::new(false) };
    static OWNER: Owner = const { Owner(RefCell::new(None)) };
    /// Whether the thread is inside a scope or a runner's work.
    static IN_SCOPE: Cell<bool> = const { Cell::new(false) };
}

/// Marks the thread as inside a scope; false if it already was.
pub(crate) fn enter_scope() -> bool {
    !IN_SCOPE.with(|s| s.replace(true))
}

/// Marks the thread as outside any scope.
pub(crate) fn leave_scope() {
    IN_SCOPE.with(|s| s.set(false));
}

struct Owner(RefCell<Option<Arc<CancelWord>>>);

impl Drop for Owner {
    fn drop(&mut self) {
        CURRENT.with(|c| c.set(std::ptr::null()));
        if let Some(w) = self.0.borrow_mut().take() {
            w.retire();
        }
    }
}

/// Makes sure the one-time installation of the cancel signal has finished
/// (for the fork prepare handler).
pub(crate) fn ensure_signal_installed() {
    super::signal::ensure_installed();
}

/// This thread's cancel word, created on first use.
pub(crate) fn current() -> Arc<CancelWord> {
    OWNER.with(|o| {
        let mut slot = o.0.borrow_mut();
        if let Some(w) = slot.as_ref() {
            return Arc::clone(w);
        }
        // SAFETY: gettid has no preconditions.
        let tid = unsafe { libc::gettid() };
        let w = Arc::new(CancelWord::for_thread(tid));
        CURRENT.with(|c| c.set(Arc::as_ptr(&w)));
        *slot = Some(Arc::clone(&w));
        drop(slot);
        super::signal::ensure_installed();
        super::signal::unblock();
        w
    })
}

/// The word the stub should use: this thread's, if it has one. A thread
/// without one has never been in a scope or a runner job, so nothing can
/// cancel it, and its calls are plain syscalls. (Creating one here could
/// allocate inside a signal handler.)
#[inline(always)]
pub(crate) fn stub_word() -> Option<*const CancelWord> {
    let w = CURRENT.with(|c| c.get());
    (!w.is_null()).then_some(w)
}

/// Whether this thread's current job or scope has a cancel pending.
#[inline]
pub(crate) fn pending() -> bool {
    let w = CURRENT.with(|c| c.get());
    // SAFETY: as in `stub_word`.
    !w.is_null() && unsafe { (*w).pending() }
}

/// For the signal handler: this thread's word, or null. Async-signal-safe.
#[inline]
pub(crate) fn current_for_handler() -> *const CancelWord {
    CURRENT.with(|c| c.get())
}

/// For the signal handler: note that the cancel signal is now masked in
/// the interrupted context. Async-signal-safe.
#[inline]
pub(crate) fn note_masked() {
    MASKED.with(|m| m.set(true));
}

/// Ends a job or scope on this thread: a new generation (dropping any
/// cancel of the old one), then the signal unblocked if the handler masked
/// it, so a pending stale instance is delivered now and ignored (R5, R19).
pub(crate) fn end_job(word: &CancelWord) {
    word.begin();
    if MASKED.with(|m| m.replace(false)) {
        super::signal::unblock();
    }
}
