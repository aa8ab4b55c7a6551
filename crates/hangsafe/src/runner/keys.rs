//! The per-key rule: at most one unfinished runner per key.
//!
//! multipathd keeps one checker per path and never starts a second while the
//! first is hung. A [`KeyGuard`] is taken at spawn and dropped by the worker
//! as soon as the work has returned (before the runner's final state is
//! published, so a caller who sees the outcome can immediately spawn again
//! for the same key: race R9), or when the job is dropped unrun.

use crate::sync::{lock, Arc, Mutex, MutexGuard};
use std::collections::HashSet;

#[derive(Debug, Default)]
pub(crate) struct KeySet(Mutex<HashSet<Arc<str>>>);

/// Ownership of one key; releases it on drop.
#[derive(Debug)]
pub(crate) struct KeyGuard {
    set: Arc<KeySet>,
    key: Arc<str>,
    /// The process generation the key was taken in. A fork child clears
    /// every key; a guard of the parent's generation (work that called
    /// fork) must not free a key the child has taken since.
    gen: u64,
}

impl KeySet {
    /// Reserves `key`, or returns `None` if an unfinished runner holds it.
    pub(crate) fn try_take(self: &Arc<Self>, key: &str) -> Option<KeyGuard> {
        let key: Arc<str> = Arc::from(key);
        if !lock(&self.0).insert(Arc::clone(&key)) {
            return None;
        }
        Some(KeyGuard {
            set: Arc::clone(self),
            key,
            gen: crate::cancel::thread::fork_generation(),
        })
    }

    /// The whole set, locked (for the fork handlers).
    pub(crate) fn lock_all(&self) -> MutexGuard<'_, HashSet<Arc<str>>> {
        lock(&self.0)
    }
}

impl Drop for KeyGuard {
    fn drop(&mut self) {
        if self.gen == crate::cancel::thread::fork_generation() {
            lock(&self.set.0).remove(&self.key);
        }
    }
}
