//! Errors of [`RunnerSet`](super::RunnerSet).

use super::nexus::{Error, Ignored};
use crate::runner::{Runner, SpawnError};
use std::fmt;
use std::io;

/// Why a [`RunnerSet`](super::RunnerSet) call did nothing.
#[derive(Debug)]
#[non_exhaustive]
pub enum SetError {
    /// The runner could not be spawned; nothing was added.
    Spawn(SpawnError),
    /// No token is left (every slot in use or retired).
    Full,
    /// Called from inside one of the application's [`Hooks`](super::Hooks)
    /// (or another locked section of a set on this thread): refused instead
    /// of deadlocking. An `occurred` event refused this way has not been
    /// consumed; deliver it again from outside the hook.
    InHook,
    /// `attach` on a set that has hooks attached already.
    Attachment,
    /// An application hook failed.
    Hook(io::Error),
    /// The event was dropped, for the reason given (stale token, fd
    /// mismatch, not ready, not due…). Nothing is wrong: this is the
    /// protection at work.
    Ignored(Ignored),
}

impl fmt::Display for SetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SetError::Spawn(e) => write!(f, "cannot spawn into the runner set: {e}"),
            SetError::Full => f.write_str("runner set full: every token slot is in use or retired"),
            SetError::InHook => {
                f.write_str("runner set entered from inside an event-loop hook (refused)")
            }
            SetError::Attachment => f.write_str("runner set already has event-loop hooks attached"),
            SetError::Hook(e) => write!(f, "event loop hook failed: {e}"),
            SetError::Ignored(why) => write!(f, "event ignored: {why}"),
        }
    }
}

impl std::error::Error for SetError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SetError::Spawn(e) => Some(e),
            SetError::Hook(e) => Some(e),
            SetError::Ignored(e) => Some(e),
            _ => None,
        }
    }
}

impl From<Error> for SetError {
    fn from(e: Error) -> Self {
        match e {
            Error::Hook(e) => SetError::Hook(e),
            Error::Full => SetError::Full,
            // The set only passes tokens it holds.
            Error::Stale => SetError::Ignored(Ignored::Stale),
        }
    }
}

impl From<Ignored> for SetError {
    fn from(e: Ignored) -> Self {
        SetError::Ignored(e)
    }
}

/// A runner that [`RunnerSet::insert`](super::RunnerSet::insert) refused,
/// handed back unharmed (still running) with the reason.
pub struct Rejected<T: Send + 'static> {
    /// Why.
    pub reason: SetError,
    /// The runner, as it was passed in.
    pub runner: Runner<T>,
}

impl<T: Send + 'static> fmt::Debug for Rejected<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rejected")
            .field("reason", &self.reason)
            .field("runner", &self.runner)
            .finish()
    }
}

impl<T: Send + 'static> fmt::Display for Rejected<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "runner not added: {}", self.reason)
    }
}

impl<T: Send + 'static> std::error::Error for Rejected<T> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.reason)
    }
}
