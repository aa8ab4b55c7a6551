//! The application's event loop, as hangsafe sees it: libxl's "osevent"
//! hooks, with [`Token`]s in place of `for_libxl` pointers.

use super::token::Token;
use std::io;
use std::os::fd::RawFd;
use std::time::Instant;

/// Which conditions an fd registration waits for (`poll(2)` bits).
///
/// ```
/// use hangsafe::nexus::Interest;
/// let i = Interest::READABLE | Interest::WRITABLE;
/// assert!(i.is_readable() && i.is_writable());
/// assert_eq!(i.to_epoll(), (libc::EPOLLIN | libc::EPOLLOUT) as u32);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Interest(i16);

impl Interest {
    /// `POLLIN`.
    pub const READABLE: Interest = Interest(libc::POLLIN);
    /// `POLLOUT`.
    pub const WRITABLE: Interest = Interest(libc::POLLOUT);
    /// `POLLPRI`.
    pub const PRIORITY: Interest = Interest(libc::POLLPRI);

    /// The `poll(2)` event bits.
    pub const fn bits(self) -> i16 {
        self.0
    }

    /// Whether `POLLIN` is included.
    pub const fn is_readable(self) -> bool {
        self.0 & libc::POLLIN != 0
    }

    /// Whether `POLLOUT` is included.
    pub const fn is_writable(self) -> bool {
        self.0 & libc::POLLOUT != 0
    }

    /// The same interest as `epoll_event.events` bits (level-triggered).
    pub const fn to_epoll(self) -> u32 {
        let mut e = 0u32;
        if self.0 & libc::POLLIN != 0 {
            e |= libc::EPOLLIN as u32;
        }
        if self.0 & libc::POLLOUT != 0 {
            e |= libc::EPOLLOUT as u32;
        }
        if self.0 & libc::POLLPRI != 0 {
            e |= libc::EPOLLPRI as u32;
        }
        e
    }
}

impl std::ops::BitOr for Interest {
    type Output = Interest;
    fn bitor(self, rhs: Interest) -> Interest {
        Interest(self.0 | rhs.0)
    }
}

/// The conditions an fd was found in when it was re-checked (`poll(2)`
/// `revents` bits: the interest's bits plus `POLLERR`, `POLLHUP` and
/// `POLLNVAL`, which `poll` always reports).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Ready(pub i16);

impl Ready {
    /// Whether `POLLIN` is set.
    pub const fn is_readable(self) -> bool {
        self.0 & libc::POLLIN != 0
    }

    /// Whether `POLLOUT` is set.
    pub const fn is_writable(self) -> bool {
        self.0 & libc::POLLOUT != 0
    }

    /// Whether `POLLERR`, `POLLHUP` or `POLLNVAL` is set.
    pub const fn is_error(self) -> bool {
        self.0 & (libc::POLLERR | libc::POLLHUP | libc::POLLNVAL) != 0
    }
}

/// The application's event loop, as hangsafe drives it (libxl's
/// `libxl_osevent_hooks`).
///
/// hangsafe calls these to tell the loop what to watch; the loop calls the
/// owner's `occurred_fd` / `occurred_timeout` (on a
/// [`RunnerSet`](super::RunnerSet) or a [`Nexus`](super::Nexus)) when
/// something happens, passing back the [`Token`] it was given. Those calls
/// may come from any thread and arbitrarily late: after the registration
/// was changed or removed, after its slot was reused, after the fd number
/// was closed and reused. hangsafe recognises and drops every such stale
/// call, so the loop need not synchronise with it.
///
/// # The contract
///
/// * Hooks are called one at a time (never concurrently, never one from
///   inside another), with the owner's lock held. A hook must not call back
///   into the owner: a [`RunnerSet`](super::RunnerSet) entry point called
///   from inside a hook returns [`SetError::InHook`](super::SetError::InHook)
///   instead of deadlocking.
/// * A hook that returns an error leaves no registration behind: hangsafe
///   forgets the token, and a late event for it is dropped.
/// * **fds.** After `fd_register`, the loop reports readiness (level- or
///   edge-triggered, possibly spuriously, possibly late) through
///   `occurred_fd(token, fd, revents)` until `fd_deregister` for that token.
///   hangsafe re-checks the fd with a zero-timeout `poll` before acting.
/// * **Timeouts.** A timeout registration fires **once**: the loop calls
///   `occurred_timeout(token)` exactly once at or after `deadline`, and the
///   registration is then over. There is no timeout deregistration: to
///   withdraw one, hangsafe calls `timeout_modify` with a deadline already
///   past ("fire as soon as possible") and recycles the token's slot only
///   when that last `occurred_timeout` arrives (libxl's final rule). The
///   modification may reach a registration that has already fired and
///   whose `occurred_timeout` is on its way: the loop then ignores it.
/// * Hooks should not block; they run with the owner's lock held.
///
/// # Example: a loop that records registrations
///
/// ```
/// use hangsafe::nexus::{Hooks, Interest, Token};
/// use std::collections::HashMap;
/// use std::os::fd::RawFd;
/// use std::time::Instant;
///
/// #[derive(Default)]
/// struct MyLoop {
///     fds: HashMap<Token, (RawFd, Interest)>,
///     timers: HashMap<Token, Instant>,
/// }
///
/// impl Hooks for MyLoop {
///     fn fd_register(&mut self, fd: RawFd, i: Interest, t: Token) -> std::io::Result<()> {
///         self.fds.insert(t, (fd, i));
///         Ok(())
///     }
///     fn fd_modify(&mut self, fd: RawFd, i: Interest, t: Token) -> std::io::Result<()> {
///         self.fds.insert(t, (fd, i));
///         Ok(())
///     }
///     fn fd_deregister(&mut self, _fd: RawFd, t: Token) {
///         self.fds.remove(&t);
///     }
///     fn timeout_register(&mut self, at: Instant, t: Token) -> std::io::Result<()> {
///         self.timers.insert(t, at);
///         Ok(())
///     }
///     fn timeout_modify(&mut self, at: Instant, t: Token) -> std::io::Result<()> {
///         // Ignored if `t` has already fired.
///         if let Some(d) = self.timers.get_mut(&t) {
///             *d = at;
///         }
///         Ok(())
///     }
/// }
/// ```
pub trait Hooks: Send {
    /// Start watching `fd` for `interest`, reporting it with `token`.
    fn fd_register(&mut self, fd: RawFd, interest: Interest, token: Token) -> io::Result<()>;

    /// Change what the registration `token` of `fd` waits for.
    fn fd_modify(&mut self, fd: RawFd, interest: Interest, token: Token) -> io::Result<()>;

    /// Stop watching `fd` for `token`. Events already on their way may
    /// still be reported; hangsafe drops them.
    fn fd_deregister(&mut self, fd: RawFd, token: Token);

    /// Call `occurred_timeout(token)` once, at or after `deadline`
    /// (`CLOCK_MONOTONIC`, as [`Instant`]).
    fn timeout_register(&mut self, deadline: Instant, token: Token) -> io::Result<()>;

    /// Move the registration `token` to `deadline`. hangsafe calls this
    /// only to withdraw a registration, with a deadline already past: fire
    /// it as soon as possible. Ignore it for a registration that has
    /// already fired.
    fn timeout_modify(&mut self, deadline: Instant, token: Token) -> io::Result<()>;
}
