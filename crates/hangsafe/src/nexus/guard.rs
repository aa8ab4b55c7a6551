//! Re-entry detection: a thread inside an owner's locked section (where
//! the application's hooks run) must not enter an owner again.
//!
//! Owners call the application's [`Hooks`](super::Hooks) with their lock
//! held, so that registrations reach the loop in the order they were made
//! and never concurrently. A hook that called back into the owner would
//! deadlock on that lock; instead, every entry point checks this
//! thread-local mark first and refuses with
//! [`SetError::InHook`](super::SetError::InHook) (R46).

use std::cell::Cell;

thread_local! {
    static DEPTH: Cell<u32> = const { Cell::new(0) };
}

/// Whether this thread is inside an owner's locked section.
pub(crate) fn inside() -> bool {
    DEPTH.with(|d| d.get() != 0)
}

/// Marks this thread as inside a locked section until dropped (also on
/// unwind, so a panicking hook does not leave the mark set).
pub(crate) struct Section(());

impl Section {
    pub(crate) fn enter() -> Section {
        DEPTH.with(|d| d.set(d.get() + 1));
        Section(())
    }
}

impl Drop for Section {
    fn drop(&mut self) {
        DEPTH.with(|d| d.set(d.get() - 1));
    }
}
