//! [`Nexus`]: fd and timeout registrations with a foreign event loop, safe
//! against arbitrarily late `occurred` calls (libxl's hook nexus).

use super::hooks::{Hooks, Interest, Ready};
use super::registry::{Full, Registry};
use super::token::Token;
use std::fmt;
use std::io;
use std::os::fd::RawFd;
use std::time::Instant;

/// The registrations one owner keeps with an application's event loop,
/// each named by a generational [`Token`].
///
/// This is libxl's "hook nexus" done with tokens: the value the loop hands
/// back (`for_libxl` in libxl) is a token, never a pointer, so an
/// arbitrarily old one is recognised and dropped instead of dereferenced.
/// `K` is the owner's tag for each registration (what to do when it
/// fires).
///
/// The nexus is a plain data structure: methods take `&mut self` and the
/// [`Hooks`] to call, and the owner provides the locking. Because a hook
/// never gets `&mut Nexus`, it cannot re-enter it.
///
/// ```
/// use hangsafe::nexus::{Fired, Hooks, Ignored, Interest, Nexus, Token};
/// use std::os::fd::{AsRawFd, RawFd};
/// use std::time::Instant;
///
/// # struct Loop;
/// # impl Hooks for Loop {
/// #     fn fd_register(&mut self, _: RawFd, _: Interest, _: Token) -> std::io::Result<()> { Ok(()) }
/// #     fn fd_modify(&mut self, _: RawFd, _: Interest, _: Token) -> std::io::Result<()> { Ok(()) }
/// #     fn fd_deregister(&mut self, _: RawFd, _: Token) {}
/// #     fn timeout_register(&mut self, _: Instant, _: Token) -> std::io::Result<()> { Ok(()) }
/// #     fn timeout_modify(&mut self, _: Instant, _: Token) -> std::io::Result<()> { Ok(()) }
/// # }
/// let mut hooks = Loop;
/// let mut nexus = Nexus::new();
/// let (r, mut w) = std::io::pipe().unwrap();
/// let t = nexus.register_fd(&mut hooks, r.as_raw_fd(), Interest::READABLE, "pipe").unwrap();
///
/// // The loop says "readable", but nothing was written: re-checked, dropped.
/// assert_eq!(nexus.occurred_fd(t, r.as_raw_fd(), libc::POLLIN), Err(Ignored::NotReady));
///
/// std::io::Write::write_all(&mut w, b"x").unwrap();
/// match nexus.occurred_fd(t, r.as_raw_fd(), libc::POLLIN) {
///     Ok(Fired::Fd { key, ready, .. }) => assert!(key == "pipe" && ready.is_readable()),
///     other => panic!("{other:?}"),
/// }
///
/// // After deregistration the same event is stale.
/// nexus.deregister_fd(&mut hooks, t);
/// assert_eq!(nexus.occurred_fd(t, r.as_raw_fd(), libc::POLLIN), Err(Ignored::Stale));
/// ```
pub struct Nexus<K> {
    fds: Registry<FdReg<K>>,
    timeouts: Registry<TimeReg<K>>,
}

struct FdReg<K> {
    fd: RawFd,
    interest: Interest,
    key: K,
}

struct TimeReg<K> {
    deadline: Instant,
    key: K,
    /// Withdrawn (modified to fire at once); the slot waits for the loop's
    /// last `occurred_timeout` before it is recycled.
    withdrawn: bool,
}

/// A valid event, to be acted upon by the nexus's owner.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fired<K> {
    /// The fd of a live registration is ready *now*.
    Fd {
        /// The registration's tag.
        key: K,
        /// The registered fd.
        fd: RawFd,
        /// What a zero-timeout `poll` found just now (not what the loop
        /// reported).
        ready: Ready,
    },
    /// A live timeout's deadline has passed. The registration is over (its
    /// token is stale from now on).
    Timeout {
        /// The registration's tag.
        key: K,
        /// The deadline it was registered for.
        deadline: Instant,
    },
}

/// Why an `occurred` call was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Ignored {
    /// The token names no live registration: it was deregistered, fired
    /// already, its slot reused, or it never came from this owner.
    Stale,
    /// The fd does not match the registration's (a mix-up in the loop, or
    /// an event about an older fd with the same token).
    FdMismatch {
        /// The fd registered under the token.
        registered: RawFd,
        /// The fd the loop reported.
        reported: RawFd,
    },
    /// A zero-timeout `poll` found none of the awaited conditions: the
    /// event was spurious or outdated.
    NotReady,
    /// The re-check itself failed (an `errno` other than `EINTR`).
    CheckFailed(i32),
    /// The timeout fired before its deadline (a loop on another clock, or
    /// rounding). The registration was renewed for the same deadline under
    /// a new token.
    NotDue {
        /// The renewed registration's token.
        renewed: Token,
    },
    /// The last `occurred_timeout` of a withdrawn registration: its slot
    /// is recycled now.
    Withdrawn,
}

impl fmt::Display for Ignored {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ignored::Stale => f.write_str("stale token"),
            Ignored::FdMismatch {
                registered,
                reported,
            } => write!(
                f,
                "fd {reported} reported for a registration of fd {registered}"
            ),
            Ignored::NotReady => f.write_str("fd not ready when re-checked"),
            Ignored::CheckFailed(e) => write!(
                f,
                "re-checking the fd failed: {}",
                io::Error::from_raw_os_error(*e)
            ),
            Ignored::NotDue { renewed } => {
                write!(
                    f,
                    "timeout fired before its deadline (renewed as {renewed})"
                )
            }
            Ignored::Withdrawn => f.write_str("last event of a withdrawn timeout"),
        }
    }
}

impl std::error::Error for Ignored {}

/// Why a registration could not be made or changed.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The application's hook failed; nothing is registered.
    Hook(io::Error),
    /// The token names no live registration.
    Stale,
    /// No slot is left (every slot in use or retired).
    Full,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Hook(e) => write!(f, "event loop hook failed: {e}"),
            Error::Stale => f.write_str("stale token"),
            Error::Full => Full.fmt(f),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Hook(e) => Some(e),
            _ => None,
        }
    }
}

impl From<Full> for Error {
    fn from(_: Full) -> Self {
        Error::Full
    }
}

/// Counts of a nexus's registrations.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Metrics {
    /// Live fd registrations.
    pub fds: usize,
    /// Live timeout registrations, withdrawn ones included.
    pub timeouts: usize,
    /// Withdrawn timeouts still waiting for their last `occurred_timeout`.
    pub withdrawn: usize,
    /// Slots retired because their generations ran out.
    pub retired: usize,
}

impl<K: Copy> Default for Nexus<K> {
    fn default() -> Self {
        Nexus::new()
    }
}

impl<K: Copy> fmt::Debug for Nexus<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Nexus")
            .field("metrics", &self.metrics())
            .finish()
    }
}

impl<K: Copy> Nexus<K> {
    /// No registrations.
    pub fn new() -> Self {
        Nexus {
            fds: Registry::new(),
            timeouts: Registry::new(),
        }
    }

    /// A nexus whose token registries use the given limits (see
    /// [`Registry::with_limits`]); for exhaustion tests.
    ///
    /// # Panics
    ///
    /// As [`Registry::with_limits`]: if `max_generation` is 0 or
    /// `max_slots` is 0 or above 2³².
    pub fn with_limits(max_generation: u32, max_slots: usize) -> Self {
        Nexus {
            fds: Registry::with_limits(max_generation, max_slots),
            timeouts: Registry::with_limits(max_generation, max_slots),
        }
    }

    /// Counts of the live registrations.
    pub fn metrics(&self) -> Metrics {
        Metrics {
            fds: self.fds.len(),
            timeouts: self.timeouts.len(),
            withdrawn: self.timeouts.iter().filter(|(_, r)| r.withdrawn).count(),
            retired: self.fds.retired() + self.timeouts.retired(),
        }
    }

    // ---- fds --------------------------------------------------------------

    /// Registers `fd` with the loop. The caller keeps `fd` open until it
    /// deregisters it.
    pub fn register_fd<H: Hooks + ?Sized>(
        &mut self,
        hooks: &mut H,
        fd: RawFd,
        interest: Interest,
        key: K,
    ) -> Result<Token, Error> {
        let t = self.fds.insert(FdReg { fd, interest, key })?;
        if let Err(e) = hooks.fd_register(fd, interest, t) {
            // The loop has no registration: forget the token (its slot
            // moves to the next generation, so it can never match).
            self.fds.remove(t);
            return Err(Error::Hook(e));
        }
        Ok(t)
    }

    /// Changes what a live fd registration waits for.
    pub fn modify_fd<H: Hooks + ?Sized>(
        &mut self,
        hooks: &mut H,
        token: Token,
        interest: Interest,
    ) -> Result<(), Error> {
        let reg = self.fds.get_mut(token).ok_or(Error::Stale)?;
        hooks
            .fd_modify(reg.fd, interest, token)
            .map_err(Error::Hook)?;
        reg.interest = interest;
        Ok(())
    }

    /// Ends an fd registration. Its token is stale at once: events the loop
    /// still delivers for it are dropped, even after the slot is reused
    /// and even if the fd number is reused (R38, R40). Returns false for a
    /// stale token.
    pub fn deregister_fd<H: Hooks + ?Sized>(&mut self, hooks: &mut H, token: Token) -> bool {
        match self.fds.remove(token) {
            Some(reg) => {
                hooks.fd_deregister(reg.fd, token);
                true
            }
            None => false,
        }
    }

    /// The application's report that `fd` (registered under `token`) is
    /// ready. Any thread, any delay.
    ///
    /// Drops the event unless the token is live, the fd matches, and a
    /// zero-timeout `poll` of the fd finds one of the awaited conditions
    /// now; the `revents` the loop passes are not trusted (libxl's re-check,
    /// R38–R41).
    #[cfg(not(hangsafe_loom))]
    pub fn occurred_fd(
        &mut self,
        token: Token,
        fd: RawFd,
        revents: i16,
    ) -> Result<Fired<K>, Ignored> {
        self.occurred_fd_with(token, fd, revents, super::sys::poll_now)
    }

    /// [`occurred_fd`](Self::occurred_fd) with the re-check supplied (the
    /// models and Miri cannot make syscalls).
    pub(crate) fn occurred_fd_with(
        &mut self,
        token: Token,
        fd: RawFd,
        revents: i16,
        recheck: impl FnOnce(RawFd, Interest) -> Result<Ready, i32>,
    ) -> Result<Fired<K>, Ignored> {
        let reg = self.fds.get(token).ok_or(Ignored::Stale)?;
        if reg.fd != fd {
            return Err(Ignored::FdMismatch {
                registered: reg.fd,
                reported: fd,
            });
        }
        let ready = recheck(fd, reg.interest).map_err(Ignored::CheckFailed)?;
        if ready.0 == 0 {
            log::trace!("hangsafe: nexus: fd {fd} reported {revents:#x} but is not ready");
            return Err(Ignored::NotReady);
        }
        Ok(Fired::Fd {
            key: reg.key,
            fd,
            ready,
        })
    }

    // ---- timeouts ---------------------------------------------------------

    /// Asks the loop for one `occurred_timeout` at or after `deadline`.
    pub fn register_timeout<H: Hooks + ?Sized>(
        &mut self,
        hooks: &mut H,
        deadline: Instant,
        key: K,
    ) -> Result<Token, Error> {
        let t = self.timeouts.insert(TimeReg {
            deadline,
            key,
            withdrawn: false,
        })?;
        if let Err(e) = hooks.timeout_register(deadline, t) {
            self.timeouts.remove(t);
            return Err(Error::Hook(e));
        }
        Ok(t)
    }

    /// Withdraws a timeout registration: the loop is asked to fire it as
    /// soon as possible (`timeout_modify` with a past deadline), its event
    /// will be dropped, and its slot is recycled only when that event
    /// arrives (libxl's final rule, R39). Returns false for a stale or
    /// already withdrawn token.
    ///
    /// If the hook fails, the slot stays withdrawn until an
    /// `occurred_timeout` arrives, which may be never: one slot is then
    /// lost, but no token is ever reused under a late event.
    pub fn withdraw_timeout<H: Hooks + ?Sized>(&mut self, hooks: &mut H, token: Token) -> bool {
        let Some(reg) = self.timeouts.get_mut(token) else {
            return false;
        };
        if reg.withdrawn {
            return false;
        }
        reg.withdrawn = true;
        if let Err(e) = hooks.timeout_modify(Instant::now(), token) {
            log::error!(
                "hangsafe: nexus: withdrawing timeout {token} failed: {e}; its slot stays reserved"
            );
        }
        true
    }

    /// The application's report that the timeout registered under `token`
    /// fired. Any thread, any delay.
    ///
    /// * A stale token is dropped (R39).
    /// * A withdrawn registration's last event is dropped and its slot
    ///   recycled.
    /// * An event before the deadline (measured at `now`) is dropped, and
    ///   since the loop's registration is spent, a new one is made for the
    ///   same deadline (R45). If that fails, the timeout is reported as
    ///   fired rather than lost.
    /// * Otherwise the registration is over and is reported as fired.
    pub fn occurred_timeout<H: Hooks + ?Sized>(
        &mut self,
        hooks: &mut H,
        token: Token,
        now: Instant,
    ) -> Result<Fired<K>, Ignored> {
        let reg = self.timeouts.get(token).ok_or(Ignored::Stale)?;
        if reg.withdrawn {
            self.timeouts.remove(token);
            return Err(Ignored::Withdrawn);
        }
        let (deadline, key) = (reg.deadline, reg.key);
        self.timeouts.remove(token);
        if now < deadline {
            match self.register_timeout(hooks, deadline, key) {
                Ok(t) => {
                    log::debug!("hangsafe: nexus: timeout {token} fired early; renewed as {t}");
                    return Err(Ignored::NotDue { renewed: t });
                }
                Err(e) => log::error!(
                    "hangsafe: nexus: renewing early timeout {token} failed ({e}); firing it now"
                ),
            }
        }
        Ok(Fired::Timeout { key, deadline })
    }

    /// The deadline of a live, not withdrawn timeout registration.
    pub fn timeout_deadline(&self, token: Token) -> Option<Instant> {
        self.timeouts
            .get(token)
            .filter(|r| !r.withdrawn)
            .map(|r| r.deadline)
    }

    /// Ends every registration: fds are deregistered, timeouts withdrawn.
    /// Withdrawn timeouts keep their slots until their last events arrive.
    pub fn deregister_all<H: Hooks + ?Sized>(&mut self, hooks: &mut H) {
        for (t, reg) in self.fds.drain() {
            hooks.fd_deregister(reg.fd, t);
        }
        let live: Vec<Token> = self
            .timeouts
            .iter()
            .filter(|(_, r)| !r.withdrawn)
            .map(|(t, _)| t)
            .collect();
        for t in live {
            self.withdraw_timeout(hooks, t);
        }
    }
}
