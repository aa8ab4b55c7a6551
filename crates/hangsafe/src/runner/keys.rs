//! The per-key rule: at most one unfinished runner per key.
//!
//! multipathd keeps one checker per path and never starts a second while the
//! first is hung. A [`KeyGuard`] is taken at spawn and dropped by the worker
//! as soon as the work has returned (before the runner's final state is
//! published, so a caller who sees the outcome can immediately spawn again
//! for the same key: race R9), or when the job is dropped unrun.

use crate::sync::{lock, Arc, Mutex};
use std::collections::HashSet;

#[derive(Debug, Default)]
pub(crate) struct KeySet(Mutex<HashSet<Arc<str>>>);

/// Ownership of one key; releases it on drop.
#[derive(Debug)]
pub(crate) struct KeyGuard {
    set: Arc<KeySet>,
    key: Arc<str>,
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
        })
    }
}

impl Drop for KeyGuard {
    fn drop(&mut self) {
        lock(&self.set.0).remove(&self.key);
    }
}
