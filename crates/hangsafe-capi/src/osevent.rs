//! libxl-style event hooks for a C runner set (`struct hs_osevent_hooks`,
//! [`hs_set_attach`], [`hs_set_detach`], [`hs_osevent_occurred_fd`],
//! [`hs_osevent_occurred_timeout`]).
//!
//! The application owns the event loop. A set attached to it registers its
//! completion fd and its earliest deadline through the application's five
//! hooks, and the loop reports back with the `occurred` functions, passing
//! the `for_hs` value it was given. That value is a generational
//! [`Token`] cast to `void *`: hangsafe never dereferences it, so a stale,
//! duplicated or garbage value is recognised and dropped (libxl's hook
//! nexus, done with tokens: R38–R41, R45).
//!
//! The bookkeeping is the core's [`RunnerSet::attach`]: its `Nexus` makes
//! and ends the registrations and calls the hooks one at a time with the
//! set's lock held (serialised, never nested). This module adapts the C
//! function pointers to the core's [`Hooks`] trait ([`CHooks`]) and keeps
//! what C adds on top: the application's own registration value
//! (`for_app_registration`), handed back to `fd_modify`, `fd_deregister`
//! and `timeout_modify`. Those values are forgotten when a registration
//! ends: at `fd_deregister`, when its `occurred_timeout` arrives, and with
//! the attachment at detach.
//!
//! Re-entry: each C hook runs inside a [`HookScope`] (a thread-local
//! mark); every entry point of a set checks it first and fails with
//! `EDEADLK` instead of deadlocking on the set's lock (R46).

use crate::barrier;
use crate::errno;
use crate::set::{self, HookScope, HsSet};
use hangsafe_core::nexus::{Hooks, Ignored, Interest, RunnerSet, SetError, Token};
use std::collections::HashMap;
use std::ffi::{c_int, c_short, c_void};
use std::io;
use std::os::fd::RawFd;
use std::ptr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Instant;

/// `fd_register`: watch `fd` for `events`, report with `for_hs`.
pub type HsFdRegisterFn = Option<
    unsafe extern "C" fn(
        user: *mut c_void,
        fd: c_int,
        for_app_registration_out: *mut *mut c_void,
        events: c_short,
        for_hs: *mut c_void,
    ) -> c_int,
>;
/// `fd_modify`: change what a registration waits for.
pub type HsFdModifyFn = Option<
    unsafe extern "C" fn(
        user: *mut c_void,
        fd: c_int,
        for_app_registration_update: *mut *mut c_void,
        events: c_short,
    ) -> c_int,
>;
/// `fd_deregister`: stop watching.
pub type HsFdDeregisterFn =
    Option<unsafe extern "C" fn(user: *mut c_void, fd: c_int, for_app_registration: *mut c_void)>;
/// `timeout_register`: one `occurred_timeout` at or after `abs`
/// (`CLOCK_MONOTONIC`).
pub type HsTimeoutRegisterFn = Option<
    unsafe extern "C" fn(
        user: *mut c_void,
        for_app_registration_out: *mut *mut c_void,
        abs: libc::timespec,
        for_hs: *mut c_void,
    ) -> c_int,
>;
/// `timeout_modify`: only ever called with `{0, 0}` (fire as soon as
/// possible: the withdrawal).
pub type HsTimeoutModifyFn = Option<
    unsafe extern "C" fn(
        user: *mut c_void,
        for_app_registration_update: *mut *mut c_void,
        abs: libc::timespec,
    ) -> c_int,
>;

/// `struct hs_osevent_hooks`: the application's event loop. All five
/// pointers are required.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct HsOseventHooks {
    /// `fd_register`.
    pub fd_register: HsFdRegisterFn,
    /// `fd_modify`.
    pub fd_modify: HsFdModifyFn,
    /// `fd_deregister`.
    pub fd_deregister: HsFdDeregisterFn,
    /// `timeout_register`.
    pub timeout_register: HsTimeoutRegisterFn,
    /// `timeout_modify`.
    pub timeout_modify: HsTimeoutModifyFn,
}

// ---- the application's registration values ----------------------------------

/// An application's opaque pointer (`user`, `for_app_registration`): only
/// stored and passed back, never dereferenced by hangsafe.
#[derive(Clone, Copy, Debug)]
struct AppPtr(*mut c_void);

// SAFETY: hangsafe never dereferences these pointers; it hands them back to
// the application's hooks, which the header documents as called from any
// thread that calls into the set. Moving the bare address between threads
// is therefore sound.
unsafe impl Send for AppPtr {}

/// The `for_app_registration` values of one attachment, by token.
#[derive(Debug, Default)]
struct Regs {
    fds: HashMap<u64, AppPtr>,
    timeouts: HashMap<u64, AppPtr>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A set's osevent state: the registration values of the current
/// attachment. The lock also serialises attach and detach.
#[derive(Debug, Default)]
pub(crate) struct Osevent {
    current: Mutex<Weak<Mutex<Regs>>>,
}

// ---- the adapter --------------------------------------------------------------

/// The C hooks as the core's [`Hooks`].
struct CHooks {
    hooks: Checked,
    user: AppPtr,
    regs: Arc<Mutex<Regs>>,
}

/// `HsOseventHooks` with every pointer present.
#[derive(Clone, Copy)]
struct Checked {
    fd_register:
        unsafe extern "C" fn(*mut c_void, c_int, *mut *mut c_void, c_short, *mut c_void) -> c_int,
    fd_modify: unsafe extern "C" fn(*mut c_void, c_int, *mut *mut c_void, c_short) -> c_int,
    fd_deregister: unsafe extern "C" fn(*mut c_void, c_int, *mut c_void),
    timeout_register:
        unsafe extern "C" fn(*mut c_void, *mut *mut c_void, libc::timespec, *mut c_void) -> c_int,
    timeout_modify: unsafe extern "C" fn(*mut c_void, *mut *mut c_void, libc::timespec) -> c_int,
}

impl Checked {
    fn new(h: &HsOseventHooks) -> Option<Checked> {
        Some(Checked {
            fd_register: h.fd_register?,
            fd_modify: h.fd_modify?,
            fd_deregister: h.fd_deregister?,
            timeout_register: h.timeout_register?,
            timeout_modify: h.timeout_modify?,
        })
    }
}

/// A hook's return value as a result: 0 is success; a positive value that
/// fits an `errno` (1..4095) is that error; anything else is `EIO`.
fn hook_result(what: &str, r: c_int) -> io::Result<()> {
    match r {
        0 => Ok(()),
        1..=4095 => Err(io::Error::from_raw_os_error(r)),
        _ => {
            log::warn!("hs_osevent_hooks.{what} returned {r}; reported as EIO");
            Err(io::Error::from_raw_os_error(libc::EIO))
        }
    }
}

/// `deadline` on `CLOCK_MONOTONIC`, rounded so that it is never earlier
/// than the instant itself. [`Instant`] is `CLOCK_MONOTONIC` on Linux; the
/// clock is read after `Instant::now()`, so the sum errs late, never early
/// (an early event would only be renewed, R45).
fn to_timespec(deadline: Instant) -> libc::timespec {
    let before = Instant::now();
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, exclusively borrowed timespec.
    if unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) } != 0 {
        log::error!(
            "hs_osevent: clock_gettime(CLOCK_MONOTONIC) failed: {}",
            io::Error::last_os_error()
        );
    }
    let now_ns = i128::from(ts.tv_sec) * 1_000_000_000 + i128::from(ts.tv_nsec);
    let ahead = deadline.saturating_duration_since(before).as_nanos();
    let behind = before.saturating_duration_since(deadline).as_nanos();
    let ns = i128::try_from(ahead)
        .unwrap_or(i128::MAX)
        .saturating_sub(i128::try_from(behind).unwrap_or(i128::MAX))
        .saturating_add(now_ns)
        .max(1);
    let sec = ns / 1_000_000_000;
    libc::timespec {
        tv_sec: libc::time_t::try_from(sec).unwrap_or(libc::time_t::MAX),
        // 0..=999_999_999 always fits.
        tv_nsec: (ns % 1_000_000_000) as libc::c_long,
    }
}

impl CHooks {
    /// Runs a C hook with the re-entry mark set.
    fn call<R>(&self, f: impl FnOnce(&Checked, *mut c_void) -> R) -> R {
        let _mark = HookScope::enter();
        f(&self.hooks, self.user.0)
    }

    fn regs(&self) -> MutexGuard<'_, Regs> {
        lock(&self.regs)
    }
}

impl Hooks for CHooks {
    fn fd_register(&mut self, fd: RawFd, interest: Interest, token: Token) -> io::Result<()> {
        let mut out: *mut c_void = ptr::null_mut();
        let r = self.call(|h, user| {
            // SAFETY: `hs_set_attach`'s contract makes `fd_register` a
            // function of this signature that may be called on this
            // thread with the application's `user`. `out` is a valid,
            // exclusively borrowed `void *` that lives across the call.
            unsafe { (h.fd_register)(user, fd, &mut out, interest.bits(), token.as_ptr()) }
        });
        hook_result("fd_register", r)?;
        self.regs().fds.insert(token.as_u64(), AppPtr(out));
        Ok(())
    }

    fn fd_modify(&mut self, fd: RawFd, interest: Interest, token: Token) -> io::Result<()> {
        let mut value = self
            .regs()
            .fds
            .get(&token.as_u64())
            .map_or(ptr::null_mut(), |p| p.0);
        let r = self.call(|h, user| {
            // SAFETY: as in `fd_register`; `value` is a valid, exclusively
            // borrowed `void *` for the call.
            unsafe { (h.fd_modify)(user, fd, &mut value, interest.bits()) }
        });
        // The updated value is kept even if the hook failed (libxl's rule).
        self.regs().fds.insert(token.as_u64(), AppPtr(value));
        hook_result("fd_modify", r)
    }

    fn fd_deregister(&mut self, fd: RawFd, token: Token) {
        let value = self
            .regs()
            .fds
            .remove(&token.as_u64())
            .map_or(ptr::null_mut(), |p| p.0);
        self.call(|h, user| {
            // SAFETY: as in `fd_register`; the value is the application's
            // own, passed back untouched.
            unsafe { (h.fd_deregister)(user, fd, value) }
        });
    }

    fn timeout_register(&mut self, deadline: Instant, token: Token) -> io::Result<()> {
        let abs = to_timespec(deadline);
        let mut out: *mut c_void = ptr::null_mut();
        let r = self.call(|h, user| {
            // SAFETY: as in `fd_register`.
            unsafe { (h.timeout_register)(user, &mut out, abs, token.as_ptr()) }
        });
        hook_result("timeout_register", r)?;
        self.regs().timeouts.insert(token.as_u64(), AppPtr(out));
        Ok(())
    }

    fn timeout_modify(&mut self, _deadline: Instant, token: Token) -> io::Result<()> {
        // The core modifies a timeout only to withdraw it: "now" is {0, 0}.
        let now = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        let mut value = self
            .regs()
            .timeouts
            .get(&token.as_u64())
            .map_or(ptr::null_mut(), |p| p.0);
        let r = self.call(|h, user| {
            // SAFETY: as in `fd_register`; `value` is a valid, exclusively
            // borrowed `void *` for the call.
            unsafe { (h.timeout_modify)(user, &mut value, now) }
        });
        self.regs().timeouts.insert(token.as_u64(), AppPtr(value));
        hook_result("timeout_modify", r)
    }
}

// ---- the operations, on the core set ------------------------------------------

/// The `errno` that describes a refused call.
pub(crate) fn set_error_errno(e: &SetError) -> c_int {
    match e {
        SetError::InHook => libc::EDEADLK,
        SetError::Attachment => libc::EBUSY,
        SetError::Hook(io) => io.raw_os_error().unwrap_or(libc::EIO),
        SetError::Full => libc::ENOSPC,
        SetError::Spawn(s) => errno::from_spawn_error(s),
        SetError::Ignored(why) => ignored_errno(why),
        _ => libc::EIO,
    }
}

/// The `errno` an `occurred` call leaves for a dropped event.
fn ignored_errno(why: &Ignored) -> c_int {
    match why {
        Ignored::Stale | Ignored::Withdrawn => libc::ESTALE,
        Ignored::FdMismatch { .. } => libc::EBADF,
        Ignored::NotReady | Ignored::NotDue { .. } => libc::EAGAIN,
        Ignored::CheckFailed(e) => *e,
        _ => libc::ESTALE,
    }
}

impl Osevent {
    /// `hs_set_attach` on the core set: 0, or -1 with `errno`.
    pub(crate) fn attach<T: Send + 'static>(
        &self,
        set: &RunnerSet<T>,
        hooks: &HsOseventHooks,
        user: *mut c_void,
    ) -> c_int {
        let Some(checked) = Checked::new(hooks) else {
            log::error!("hs_set_attach: a hook in hooks is NULL");
            errno::set(libc::EINVAL);
            return -1;
        };
        let mut current = lock(&self.current);
        let regs = Arc::new(Mutex::new(Regs::default()));
        let adapter = CHooks {
            hooks: checked,
            user: AppPtr(user),
            regs: Arc::clone(&regs),
        };
        match set.attach(Box::new(adapter)) {
            Ok(()) => {
                *current = Arc::downgrade(&regs);
                0
            }
            Err(e) => {
                log::error!("hs_set_attach: {e}");
                errno::set(set_error_errno(&e));
                -1
            }
        }
    }

    /// `hs_set_detach` on the core set: 0, or -1 with `errno`.
    pub(crate) fn detach<T: Send + 'static>(&self, set: &RunnerSet<T>) -> c_int {
        let mut current = lock(&self.current);
        match set.detach() {
            Some(adapter) => {
                // Dropping the adapter forgets the attachment's registration
                // values: no hook is called for them again.
                drop(adapter);
                *current = Weak::new();
                0
            }
            None => {
                log::error!("hs_set_detach: the set is not attached");
                errno::set(libc::ENOTCONN);
                -1
            }
        }
    }

    /// Forgets the application's value for a timeout that occurred.
    fn forget_timeout(&self, token: Token) {
        let regs = lock(&self.current).upgrade();
        if let Some(regs) = regs {
            lock(&regs).timeouts.remove(&token.as_u64());
        }
    }

    /// How many registration values the current attachment holds (fds,
    /// timeouts); for tests.
    #[cfg(test)]
    fn held(&self) -> (usize, usize) {
        lock(&self.current).upgrade().map_or((0, 0), |r| {
            let r = lock(&r);
            (r.fds.len(), r.timeouts.len())
        })
    }

    /// `hs_osevent_occurred_fd` on the core set.
    pub(crate) fn occurred_fd<T: Send + 'static>(
        &self,
        set: &RunnerSet<T>,
        for_hs: *mut c_void,
        fd: c_int,
        revents: c_short,
    ) {
        let Some(token) = Token::from_ptr(for_hs) else {
            log::debug!("hs_osevent_occurred_fd: for_hs {for_hs:p} is no token; dropped");
            errno::set(libc::ESTALE);
            return;
        };
        match set.occurred_fd(token, fd, revents) {
            Ok(()) => errno::set(0),
            Err(e) => {
                log::debug!("hs_osevent_occurred_fd: {e}");
                errno::set(set_error_errno(&e));
            }
        }
    }

    /// `hs_osevent_occurred_timeout` on the core set.
    pub(crate) fn occurred_timeout<T: Send + 'static>(
        &self,
        set: &RunnerSet<T>,
        for_hs: *mut c_void,
    ) {
        let Some(token) = Token::from_ptr(for_hs) else {
            log::debug!("hs_osevent_occurred_timeout: for_hs {for_hs:p} is no token; dropped");
            errno::set(libc::ESTALE);
            return;
        };
        let r = set.occurred_timeout(token);
        if !matches!(r, Err(SetError::InHook)) {
            // The application's registration is spent (a timeout fires
            // once): forget its value. Tokens are never reused, so this
            // touches nothing else, whatever attachment is current.
            self.forget_timeout(token);
        }
        match r {
            Ok(()) => errno::set(0),
            Err(e) => {
                log::debug!("hs_osevent_occurred_timeout: {e}");
                errno::set(set_error_errno(&e));
            }
        }
    }
}

// ---- the C API -------------------------------------------------------------

/// Hands `set` to the application's event loop: registers the set's fd
/// (`POLLIN`) through `hooks->fd_register` and, while a runner has a
/// deadline, the earliest deadline through `timeout_register`, and keeps
/// them up to date from then on. `*hooks` is copied; `user` is passed to
/// every hook.
///
/// Returns 0, or -1 with `errno`: `EINVAL` (NULL set or hooks, a NULL hook
/// in `*hooks`), `EBUSY` (attached already), `EDEADLK` (inside a hook), or
/// the failure of `fd_register` (its return value if it is an `errno`
/// value, otherwise `EIO`); the set is then not attached and may be
/// attached again.
///
/// # Safety
///
/// `set` must be null or a live set from `hs_set_new`; `hooks` must be
/// null or point to a readable `struct hs_osevent_hooks` whose functions
/// may be called, with `user`, on any thread that calls into the set,
/// until the set is detached or freed; they must return normally.
#[no_mangle]
pub unsafe extern "C" fn hs_set_attach(
    set: *mut HsSet,
    hooks: *const HsOseventHooks,
    user: *mut c_void,
) -> c_int {
    barrier::run("hs_set_attach", -1, || {
        // SAFETY: forwarded from the caller.
        let s = match unsafe { set::entry("hs_set_attach", set) } {
            Ok(s) => s,
            Err(code) => return fail(code),
        };
        if hooks.is_null() {
            log::error!("hs_set_attach: hooks is NULL");
            return fail(libc::EINVAL);
        }
        // SAFETY: non-null and readable (caller's contract); copied.
        let hooks = unsafe { *hooks };
        s.osevent.attach(&s.set, &hooks, user)
    })
}

/// Takes the set back from the event loop: its fd is deregistered
/// (`fd_deregister`) and a registered timeout withdrawn (`timeout_modify`
/// to `{0, 0}`); no hook is called afterwards. The withdrawn timeout's
/// last `occurred_timeout` may still arrive and is dropped, as every event
/// of this attachment is, also after a new [`hs_set_attach`].
///
/// Returns 0, or -1 with `errno`: `EINVAL` (NULL), `ENOTCONN` (not
/// attached), `EDEADLK` (inside a hook).
///
/// # Safety
///
/// `set` must be null or a live set from `hs_set_new`.
#[no_mangle]
pub unsafe extern "C" fn hs_set_detach(set: *mut HsSet) -> c_int {
    barrier::run("hs_set_detach", -1, || {
        // SAFETY: forwarded from the caller.
        match unsafe { set::entry("hs_set_detach", set) } {
            Ok(s) => s.osevent.detach(&s.set),
            Err(code) => fail(code),
        }
    })
}

/// The loop's report that `fd`, registered with `for_hs`, has `revents`.
/// Any thread, any delay. The event is acted upon only if `for_hs` names
/// the set's live fd registration, `fd` matches it, and a zero-timeout
/// `poll` finds the fd readable now; then an outcome waits: call
/// `hs_set_drain`. `events` is not used (the registration's own is
/// re-checked).
///
/// `errno` tells what happened: 0 acted upon; `ESTALE` a stale, garbage or
/// duplicated `for_hs` (dropped); `EBADF` another fd; `EAGAIN` not ready
/// when re-checked; `EINVAL` NULL set; `EDEADLK` inside a hook (not
/// consumed: deliver it again from outside).
///
/// # Safety
///
/// `set` must be null or a live set from `hs_set_new`. `for_hs` is never
/// dereferenced: any value is allowed.
#[no_mangle]
pub unsafe extern "C" fn hs_osevent_occurred_fd(
    set: *mut HsSet,
    for_hs: *mut c_void,
    fd: c_int,
    events: c_short,
    revents: c_short,
) {
    let _ = events;
    barrier::run("hs_osevent_occurred_fd", (), || {
        // SAFETY: forwarded from the caller.
        match unsafe { set::entry("hs_osevent_occurred_fd", set) } {
            Ok(s) => s.osevent.occurred_fd(&s.set, for_hs, fd, revents),
            Err(code) => errno::set(code),
        }
    });
}

/// The loop's report that the timeout registered with `for_hs` occurred;
/// the registration is over (a timeout fires once). Any thread, any delay.
/// Acted upon only for the set's live, not withdrawn timeout whose
/// deadline has passed: due deadlines are applied and the next one is
/// registered; then call `hs_set_drain`. One that fired early is
/// registered again for the same deadline.
///
/// `errno` tells what happened: 0 acted upon; `ESTALE` a stale, garbage,
/// duplicated or withdrawn `for_hs` (dropped); `EAGAIN` early (registered
/// again); `EINVAL` NULL set; `EDEADLK` inside a hook (not consumed).
///
/// # Safety
///
/// `set` must be null or a live set from `hs_set_new`. `for_hs` is never
/// dereferenced: any value is allowed.
#[no_mangle]
pub unsafe extern "C" fn hs_osevent_occurred_timeout(set: *mut HsSet, for_hs: *mut c_void) {
    barrier::run("hs_osevent_occurred_timeout", (), || {
        // SAFETY: forwarded from the caller.
        match unsafe { set::entry("hs_osevent_occurred_timeout", set) } {
            Ok(s) => s.osevent.occurred_timeout(&s.set, for_hs),
            Err(code) => errno::set(code),
        }
    });
}

/// Sets `errno` and returns -1.
fn fail(code: c_int) -> c_int {
    errno::set(code);
    -1
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::set::{hs_set_drain, hs_set_free, hs_set_new, hs_set_spawn, HsToken};
    use std::ffi::c_uint;
    use std::time::Duration;

    /// What the test loop was asked to do.
    #[derive(Default)]
    struct Rec {
        /// Live timeouts: (for_hs, abs).
        timers: Mutex<Vec<(usize, libc::timespec)>>,
        fds: Mutex<Vec<usize>>,
        /// Timeouts withdrawn ({0, 0}).
        withdrawn: Mutex<Vec<usize>>,
    }

    fn rec<'a>(user: *mut c_void) -> &'a Rec {
        // SAFETY: every test passes a `Rec` that outlives the set.
        unsafe { &*user.cast::<Rec>() }
    }

    unsafe extern "C" fn fd_register(
        user: *mut c_void,
        _fd: c_int,
        out: *mut *mut c_void,
        _events: c_short,
        for_hs: *mut c_void,
    ) -> c_int {
        lock(&rec(user).fds).push(for_hs as usize);
        // SAFETY: `out` is hangsafe's valid `void *` slot.
        unsafe { *out = for_hs };
        0
    }
    unsafe extern "C" fn fd_modify(
        _: *mut c_void,
        _: c_int,
        _: *mut *mut c_void,
        _: c_short,
    ) -> c_int {
        0
    }
    unsafe extern "C" fn fd_deregister(user: *mut c_void, _fd: c_int, reg: *mut c_void) {
        lock(&rec(user).fds).retain(|&f| f != reg as usize);
    }
    unsafe extern "C" fn timeout_register(
        user: *mut c_void,
        out: *mut *mut c_void,
        abs: libc::timespec,
        for_hs: *mut c_void,
    ) -> c_int {
        lock(&rec(user).timers).push((for_hs as usize, abs));
        // SAFETY: as above.
        unsafe { *out = for_hs };
        0
    }
    unsafe extern "C" fn timeout_modify(
        user: *mut c_void,
        update: *mut *mut c_void,
        abs: libc::timespec,
    ) -> c_int {
        assert_eq!((abs.tv_sec, abs.tv_nsec), (0, 0));
        // SAFETY: as above; it holds what timeout_register stored.
        let reg = unsafe { *update } as usize;
        lock(&rec(user).withdrawn).push(reg);
        0
    }

    const HOOKS: HsOseventHooks = HsOseventHooks {
        fd_register: Some(fd_register),
        fd_modify: Some(fd_modify),
        fd_deregister: Some(fd_deregister),
        timeout_register: Some(timeout_register),
        timeout_modify: Some(timeout_modify),
    };

    /// Work that runs until it is cancelled.
    unsafe extern "C" fn until_cancelled(_: *mut c_void) {
        let end = Instant::now() + Duration::from_secs(30);
        while crate::cancel::hs_testcancel() == 0 && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    unsafe extern "C" fn ignore(_: *mut c_void, _: HsToken, _: c_int, _: *const c_void, _: c_uint) {
    }

    fn mono_ns() -> i128 {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: a valid timespec.
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
        ns(ts)
    }

    fn ns(ts: libc::timespec) -> i128 {
        i128::from(ts.tv_sec) * 1_000_000_000 + i128::from(ts.tv_nsec)
    }

    /// Delivers every timeout the test loop holds, each once its `abs` has
    /// come; returns how many were acted upon.
    fn fire_timers(s: *mut HsSet, r: &Rec) -> usize {
        let armed: Vec<_> = std::mem::take(&mut *lock(&r.timers));
        let mut acted = 0;
        for (t, abs) in armed {
            while mono_ns() < ns(abs) {
                std::thread::sleep(Duration::from_micros(200));
            }
            // SAFETY: `s` is live; `t` is only decoded.
            unsafe { hs_osevent_occurred_timeout(s, t as *mut c_void) };
            if errno::get() == 0 {
                acted += 1;
            }
        }
        acted
    }

    /// H113: the application's value of every timeout that occurred is
    /// forgotten; 200 runners' timeouts leave none behind.
    #[test]
    fn h113_fired_timeouts_leave_no_registration_value_behind() {
        let r = Rec::default();
        let user = std::ptr::addr_of!(r).cast_mut().cast::<c_void>();
        let data = 0u64;
        let d = std::ptr::addr_of!(data).cast::<c_void>();
        let mut acted = 0;
        // SAFETY: a fresh set, valid hooks whose `user` outlives it, and
        // a work function that returns normally.
        unsafe {
            let s = hs_set_new();
            assert!(!s.is_null());
            assert_eq!(hs_set_attach(s, &HOOKS, user), 0);
            for _ in 0..200 {
                assert_ne!(hs_set_spawn(s, Some(until_cancelled), d, 8, 5000), 0);
                let end = Instant::now() + Duration::from_secs(30);
                loop {
                    acted += fire_timers(s, &r);
                    if hs_set_drain(s, Some(ignore), ptr::null_mut()) > 0 || Instant::now() > end {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
            acted += fire_timers(s, &r);
            // Most deadlines reach the set through the loop (some through
            // the runners' own timer first, under load).
            assert!(acted >= 100, "{acted} timeouts acted upon");
            assert_eq!((*s).osevent.held(), (1, 0), "only the fd's value is held");
            assert_eq!(hs_set_detach(s), 0);
            assert_eq!((*s).osevent.held(), (0, 0));
            assert!(lock(&r.fds).is_empty());
            hs_set_free(s);
        }
    }

    /// R61: a deadline converted to CLOCK_MONOTONIC is never earlier than
    /// the deadline (an early event would only be renewed, R45), also at
    /// the extremes.
    #[test]
    fn r61_monotonic_deadlines_are_never_early() {
        for ahead in [0u64, 1, 1_000, 1_000_000, 3_600_000_000_000] {
            // The clock before the deadline is taken: a lower bound of it.
            let floor = mono_ns();
            let deadline = Instant::now() + Duration::from_nanos(ahead);
            let ts = to_timespec(deadline);
            assert!(ns(ts) >= floor + i128::from(ahead), "{ahead} ns ahead");
            assert!((0..1_000_000_000).contains(&ts.tv_nsec));
        }
        let past = to_timespec(Instant::now() - Duration::from_millis(5));
        assert!(ns(past) <= mono_ns() && ns(past) >= 1);
        let far = to_timespec(Instant::now() + Duration::from_secs(u64::from(u32::MAX)));
        assert!(far.tv_sec > 0 && (0..1_000_000_000).contains(&far.tv_nsec));
    }

    #[test]
    fn hook_results_map_to_errno() {
        assert!(hook_result("x", 0).is_ok());
        for (r, e) in [
            (libc::ENOMEM, libc::ENOMEM),
            (4095, 4095),
            (4096, libc::EIO),
            (-1, libc::EIO),
            (c_int::MIN, libc::EIO),
        ] {
            assert_eq!(hook_result("x", r).unwrap_err().raw_os_error(), Some(e));
        }
    }
}
