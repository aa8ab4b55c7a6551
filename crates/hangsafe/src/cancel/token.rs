//! Cancellation tokens and scopes: cancellation for any thread.
//!
//! A thread *enters* a token's scope; while it is inside, cancelling the
//! token from anywhere makes the thread's cancellable syscalls fail with
//! [`Error::Cancelled`](super::Error::Cancelled) (interrupting one that is
//! blocked and has not taken effect). A runner's work is inside its
//! runner's scope from start to end; [`Ctx::token`](crate::runner::Ctx::token)
//! gives that token to the work, e.g. to let helper threads join the scope.
//!
//! The binding protocol is the runner's (R1): entering stores the thread's
//! binding and then reads "cancelled?" under the token's lock; cancelling
//! sets "cancelled" and then reads the bindings under the same lock. Either
//! the enterer sees the cancel or the canceller sees the binding.

use super::thread;
use super::word::{Binding, CancelWord};
use crate::sync::lock;
use std::fmt;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex};

/// Something a thread can be bound to for cancellation.
pub(crate) trait Target: Send + Sync {
    /// Cancels; true if this call did it (false if already cancelled or
    /// finished).
    fn cancel(&self) -> bool;
    /// Whether a cancel has taken effect.
    fn is_cancelled(&self) -> bool;
    /// Binds a thread's job; returns true (after cancelling that job) if a
    /// cancel already happened.
    fn bind(&self, binding: Binding) -> bool;
    /// Removes the binding of `word`.
    fn unbind(&self, word: &CancelWord);
}

/// A handle that cancels the threads inside its scopes.
///
/// Cloning shares the token. It is `Send + Sync`: cancel it from any
/// thread.
///
/// ```
/// use hangsafe::cancel::{self, CancelToken};
/// use std::time::Duration;
///
/// let token = CancelToken::new();
/// let t2 = token.clone();
/// let sleeper = std::thread::spawn(move || {
///     let _scope = t2.enter().unwrap();
///     cancel::sleep(Duration::from_secs(3600)) // interrupted by the cancel
/// });
/// std::thread::sleep(Duration::from_millis(20));
/// token.cancel();
/// assert_eq!(sleeper.join().unwrap(), Err(cancel::Error::Cancelled));
/// ```
#[derive(Clone)]
pub struct CancelToken(pub(crate) Arc<dyn Target>);

impl fmt::Debug for CancelToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CancelToken")
            .field("cancelled", &self.is_cancelled())
            .finish()
    }
}

impl Default for CancelToken {
    fn default() -> Self {
        CancelToken::new()
    }
}

impl CancelToken {
    /// A new, uncancelled token.
    pub fn new() -> Self {
        CancelToken(Arc::new(Standalone(Mutex::new(State::default()))))
    }

    /// Cancels the token: every thread inside one of its scopes, now or
    /// later, gets `Cancelled` from its cancellable syscalls. Returns true
    /// if this call cancelled it. Never blocks beyond a short lock; sends at
    /// most one signal per bound thread.
    pub fn cancel(&self) -> bool {
        self.0.cancel()
    }

    /// Whether the token has been cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.0.is_cancelled()
    }

    /// Enters a scope of this token on the current thread, until the
    /// returned guard is dropped.
    ///
    /// Fails with [`ScopeError::Nested`] if the thread is already inside a
    /// scope (or is running a runner's work): a thread has one cancel word,
    /// so scopes do not nest.
    pub fn enter(&self) -> Result<Scope, ScopeError> {
        if !thread::enter_scope() {
            return Err(ScopeError::Nested);
        }
        let word = thread::current();
        let gen = word.begin();
        self.0.bind(Binding {
            word: Arc::clone(&word),
            gen,
        });
        Ok(Scope {
            target: Arc::clone(&self.0),
            word,
            _not_send: PhantomData,
        })
    }
}

/// Why a scope could not be entered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ScopeError {
    /// The thread is already inside a scope or running a runner's work.
    Nested,
}

impl fmt::Display for ScopeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScopeError::Nested => f.write_str(
                "this thread is already inside a cancellation scope (or a runner's work)",
            ),
        }
    }
}

impl std::error::Error for ScopeError {}

/// The guard of a scope; leaving it (dropping) unbinds the thread, starts
/// a new generation (so a late cancel of this scope cannot touch whatever
/// the thread does next) and leaves the cancel signal unblocked.
///
/// A scope belongs to the thread that entered it: it is not `Send`
/// (H1 in `docs/races.md`), so it cannot be left on another thread.
///
/// ```compile_fail,E0277
/// let token = hangsafe::cancel::CancelToken::new();
/// let scope = token.enter().unwrap();
/// std::thread::spawn(move || drop(scope)); // error: `Scope` is not `Send`
/// ```
///
/// ```compile_fail,E0277
/// fn assert_sync<T: Sync>() {}
/// assert_sync::<hangsafe::cancel::Scope>();
/// ```
pub struct Scope {
    target: Arc<dyn Target>,
    word: Arc<CancelWord>,
    // A scope belongs to the thread that entered it.
    _not_send: PhantomData<*const ()>,
}

impl fmt::Debug for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scope").finish_non_exhaustive()
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        self.target.unbind(&self.word);
        thread::end_job(&self.word);
        thread::leave_scope();
    }
}

#[derive(Default)]
struct State {
    cancelled: bool,
    bound: Vec<Binding>,
}

struct Standalone(Mutex<State>);

impl Target for Standalone {
    fn cancel(&self) -> bool {
        let mut st = lock(&self.0);
        if st.cancelled {
            return false;
        }
        st.cancelled = true;
        for b in &st.bound {
            b.cancel();
        }
        true
    }

    fn is_cancelled(&self) -> bool {
        lock(&self.0).cancelled
    }

    fn bind(&self, binding: Binding) -> bool {
        let mut st = lock(&self.0);
        let cancelled = st.cancelled;
        if cancelled {
            binding.cancel();
        }
        st.bound.push(binding);
        cancelled
    }

    fn unbind(&self, word: &CancelWord) {
        lock(&self.0)
            .bound
            .retain(|b| !std::ptr::eq(&*b.word, word));
    }
}
