//! The synchronisation facade.
//!
//! Every atomic, lock and cell that takes part in a protocol checked by loom
//! is imported from here, never from `std` directly. A normal build gets the
//! `std` types; a build with `RUSTFLAGS="--cfg hangsafe_loom"` gets loom's instrumented
//! doubles, so that the same source is what the model checker explores. This
//! is the pattern tokio and crossbeam use.
//!
//! `UnsafeCell` is wrapped so that both builds share loom's closure-based
//! `with`/`with_mut` API; under loom every access is checked for data races.

#[cfg(hangsafe_loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicBool, AtomicU32, AtomicU64, Ordering};
#[cfg(hangsafe_loom)]
pub(crate) use loom::sync::{Arc, Mutex, MutexGuard};
#[cfg(hangsafe_loom)]
pub(crate) use loom::thread;

#[cfg(not(hangsafe_loom))]
pub(crate) use std::sync::atomic::{
    fence, AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering,
};
#[cfg(not(hangsafe_loom))]
pub(crate) use std::sync::{Arc, Mutex, MutexGuard, Weak};
#[cfg(not(hangsafe_loom))]
pub(crate) use std::thread;

/// A cell with loom's access-tracking API.
///
/// Outside loom this is `core::cell::UnsafeCell` with two closure accessors
/// that compile to nothing; under loom, each access is recorded and a
/// concurrent pair of accesses where one writes fails the model.
#[derive(Debug)]
pub(crate) struct UnsafeCell<T>(
    #[cfg(hangsafe_loom)] loom::cell::UnsafeCell<T>,
    #[cfg(not(hangsafe_loom))] core::cell::UnsafeCell<T>,
);

impl<T> UnsafeCell<T> {
    pub(crate) fn new(value: T) -> Self {
        #[cfg(hangsafe_loom)]
        return Self(loom::cell::UnsafeCell::new(value));
        #[cfg(not(hangsafe_loom))]
        return Self(core::cell::UnsafeCell::new(value));
    }

    /// Runs `f` with a shared pointer to the contents. The caller's protocol
    /// must exclude concurrent writers.
    #[inline]
    pub(crate) fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
        #[cfg(hangsafe_loom)]
        return self.0.with(f);
        #[cfg(not(hangsafe_loom))]
        return f(self.0.get());
    }

    /// Runs `f` with an exclusive pointer to the contents. The caller's
    /// protocol must exclude every concurrent access.
    #[inline]
    pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        #[cfg(hangsafe_loom)]
        return self.0.with_mut(f);
        #[cfg(not(hangsafe_loom))]
        return f(self.0.get());
    }
}

/// Aligns `T` to its own cache-line pair (128 bytes: x86_64 prefetches
/// lines in pairs, and several aarch64 cores have 128-byte lines), so that
/// writes to neighbouring data do not bounce the line `T` is read from.
#[derive(Debug, Default)]
#[repr(align(128))]
pub(crate) struct CachePadded<T>(pub(crate) T);

impl<T> std::ops::Deref for CachePadded<T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        &self.0
    }
}

/// Locks a mutex, ignoring poisoning.
///
/// hangsafe never runs user code while holding one of its own locks, so a
/// poisoned lock can only come from a bug in hangsafe itself; the data it
/// guards is still consistent at every unlock point, so carrying on is sound.
#[inline]
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}
