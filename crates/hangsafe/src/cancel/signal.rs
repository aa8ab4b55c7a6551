//! The cancel signal: installation, the handler, and sending.
//!
//! The handler is async-signal-safe: it allocates nothing, takes no lock,
//! cannot panic, and saves and restores `errno`. It acts only if the
//! current thread's current job has a cancel pending:
//!
//! * If the interrupted PC is inside the stub's `[begin, end)`, the syscall
//!   has not taken effect (not entered yet, or entered and rewound for a
//!   restart): the PC moves to `cancel`, which returns `-ECANCELED` (R13,
//!   R14).
//! * If the PC is elsewhere in the stub (before `begin`, or at `end` and
//!   after: the syscall completed or returned `EINTR`), nothing for that
//!   call: the next stub call tests the cancel bit before trapping, and a
//!   completed call's result is kept (R16).
//! * In addition, if a signal handler has interrupted an *outer*
//!   cancellable call (the in-call depth the stub keeps next to the cancel
//!   word counts more calls than the one the PC is in), the handler adds
//!   the cancel signal to the interrupted context's mask and re-raises it
//!   to this thread. It stays pending while that signal handler runs;
//!   returning from it restores the outer call's mask, the signal is
//!   delivered again, and this time the PC is back in the outer stub
//!   (R18). This also covers a handler that makes its own cancellable call
//!   which consumes the first signal. `end_job` unblocks the signal when
//!   the job ends, in case that handler never returned normally (R19).
//! * Otherwise the thread is in ordinary code: nothing. The cancel bit is
//!   set, and the next cancellable call sees it before trapping.
//!
//! Deferring only for a nested handler (and not for ordinary code) keeps
//! signal traffic minimal and makes hangsafe usable under valgrind, which
//! ignores a handler's change to `uc_sigmask`.

use super::thread;
use crate::platform;
use std::ffi::{c_int, c_void};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

/// The installed cancel signal, 0 until installed.
static SIGNAL: AtomicI32 = AtomicI32::new(0);

// Process-wide counters (relaxed atomics: lock-free, so the handler may
// touch them).
static SENT: AtomicU64 = AtomicU64::new(0);
static HANDLED: AtomicU64 = AtomicU64::new(0);
static REDIRECTED: AtomicU64 = AtomicU64::new(0);
static DEFERRED: AtomicU64 = AtomicU64::new(0);

/// Process-wide cancellation counters, from [`metrics`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Metrics {
    /// Cancel signals sent: exactly one per cancel that found its target
    /// thread bound (R21).
    pub signals_sent: u64,
    /// Times the cancel handler ran (a deferred signal runs it again).
    pub handler_runs: u64,
    /// Syscalls cancelled by moving the PC to the stub's `cancel` label.
    pub redirected: u64,
    /// Signals deferred (masked and re-raised) because a signal handler
    /// had interrupted an outer cancellable call (R18).
    pub deferred: u64,
}

/// The former name of [`Metrics`].
#[deprecated(since = "0.2.0", note = "renamed to `hangsafe::cancel::Metrics`")]
pub type Stats = Metrics;

/// The former name of [`metrics`].
#[deprecated(since = "0.2.0", note = "renamed to `hangsafe::cancel::metrics`")]
pub fn stats() -> Metrics {
    metrics()
}

/// A snapshot of the process-wide cancellation counters.
///
/// ```
/// let s = hangsafe::cancel::metrics();
/// assert!(s.handler_runs >= s.redirected + s.deferred);
/// ```
pub fn metrics() -> Metrics {
    Metrics {
        signals_sent: SENT.load(Ordering::Relaxed),
        handler_runs: HANDLED.load(Ordering::Relaxed),
        redirected: REDIRECTED.load(Ordering::Relaxed),
        deferred: DEFERRED.load(Ordering::Relaxed),
    }
}
static INSTALL: Mutex<()> = Mutex::new(());

/// Which real-time signal carries cancels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CancelSignal {
    /// `SIGRTMIN() + k`.
    RtMinPlus(i32),
    /// An explicit signal number (must be a real-time signal).
    Number(i32),
}

/// The default: `SIGRTMIN() + 4`, clear of the signals glibc and common
/// daemons claim. Override with [`install`] before the first runner or
/// scope, or with the environment variable `HANGSAFE_CANCEL_SIGNAL`
/// (`RTMIN+k`, `RTMAX-k`, either with a `SIG` prefix, a number, or `off`
/// for cooperative cancellation only: the cancel bit is still checked
/// before every cancellable syscall, but a blocked one is not
/// interrupted). A value that is not understood or out of range is
/// refused: it is logged as an error and no signal is installed
/// (cooperative cancellation), rather than silently replaced by the
/// default.
pub const DEFAULT_SIGNAL: CancelSignal = CancelSignal::RtMinPlus(4);

impl CancelSignal {
    fn resolve(self) -> Result<c_int, InstallError> {
        let (min, max) = (libc::SIGRTMIN(), libc::SIGRTMAX());
        let sig = match self {
            CancelSignal::RtMinPlus(k) => min.checked_add(k).unwrap_or(c_int::MAX),
            CancelSignal::Number(n) => n,
        };
        if sig < min || sig > max {
            return Err(InstallError::OutOfRange {
                signal: sig,
                min,
                max,
            });
        }
        Ok(sig)
    }

    /// The environment's choice: `Ok(None)` if `HANGSAFE_CANCEL_SIGNAL` is
    /// unset or empty, `Err(None)` if it switches the signal off,
    /// `Err(Some(msg))` if it is not understood (H13: refused, never a
    /// silent fallback to the default).
    fn from_env() -> Result<Option<CancelSignal>, Option<String>> {
        let Some(raw) = std::env::var_os("HANGSAFE_CANCEL_SIGNAL") else {
            return Ok(None);
        };
        let v = raw.to_string_lossy();
        let v = v.trim();
        if v.is_empty() {
            return Ok(None);
        }
        if v.eq_ignore_ascii_case("off") || v.eq_ignore_ascii_case("none") {
            return Err(None);
        }
        match v.parse::<CancelSignal>() {
            Ok(which) => match which.resolve() {
                Ok(_) => Ok(Some(which)),
                Err(e) => Err(Some(format!("HANGSAFE_CANCEL_SIGNAL={v:?}: {e}"))),
            },
            Err(e) => Err(Some(format!("HANGSAFE_CANCEL_SIGNAL={v:?}: {e}"))),
        }
    }
}

/// A cancel signal name that could not be parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseSignalError(String);

impl fmt::Display for ParseSignalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} is not a real-time signal: use RTMIN+k, RTMAX-k (optionally with a SIG \
             prefix), a signal number, or off",
            self.0
        )
    }
}

impl std::error::Error for ParseSignalError {}

impl std::str::FromStr for CancelSignal {
    type Err = ParseSignalError;

    /// Parses `RTMIN+k`, `RTMAX-k`, `RTMIN`, `RTMAX` (any case, with or
    /// without a `SIG` prefix) or a plain signal number. Whether the signal
    /// is in range is checked by [`install`].
    ///
    /// ```
    /// use hangsafe::cancel::CancelSignal;
    /// assert_eq!("SIGRTMIN+5".parse(), Ok(CancelSignal::RtMinPlus(5)));
    /// let max_minus_2: CancelSignal = "RTMAX-2".parse().unwrap();
    /// assert_eq!(
    ///     max_minus_2,
    ///     CancelSignal::RtMinPlus(libc::SIGRTMAX() - 2 - libc::SIGRTMIN())
    /// );
    /// assert!("abc".parse::<CancelSignal>().is_err());
    /// ```
    fn from_str(v: &str) -> Result<Self, Self::Err> {
        let err = || ParseSignalError(v.to_owned());
        let t = v.trim();
        let upper = t.to_ascii_uppercase();
        let name = upper.strip_prefix("SIG").unwrap_or(&upper);
        let offset = |rest: &str, sign: char| -> Result<i32, ParseSignalError> {
            match rest.strip_prefix(sign) {
                None if rest.is_empty() => Ok(0),
                Some(k) if !k.is_empty() && k.bytes().all(|b| b.is_ascii_digit()) => {
                    k.parse().map_err(|_| err())
                }
                _ => Err(err()),
            }
        };
        if let Some(rest) = name.strip_prefix("RTMIN") {
            return Ok(CancelSignal::RtMinPlus(offset(rest, '+')?));
        }
        if let Some(rest) = name.strip_prefix("RTMAX") {
            let k = offset(rest, '-')?;
            let span = libc::SIGRTMAX() - libc::SIGRTMIN();
            return Ok(CancelSignal::RtMinPlus(span - k));
        }
        if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
            return t.parse().map(CancelSignal::Number).map_err(|_| err());
        }
        Err(err())
    }
}

/// Why the cancel signal could not be installed.
#[derive(Debug)]
#[non_exhaustive]
pub enum InstallError {
    /// The signal is not between `SIGRTMIN()` and `SIGRTMAX()`.
    OutOfRange {
        /// The requested signal.
        signal: i32,
        /// `SIGRTMIN()`.
        min: i32,
        /// `SIGRTMAX()`.
        max: i32,
    },
    /// The application already has a handler on that signal.
    Occupied {
        /// The signal.
        signal: i32,
    },
    /// hangsafe already installed a different signal.
    AlreadyInstalled {
        /// The signal in use.
        signal: i32,
    },
    /// `sigaction` failed.
    Os(std::io::Error),
}

impl fmt::Display for InstallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InstallError::OutOfRange { signal, min, max } => write!(
                f,
                "cancel signal {signal} is not a real-time signal ({min}..={max})"
            ),
            InstallError::Occupied { signal } => write!(
                f,
                "signal {signal} already has a handler; choose another cancel signal \
                 (hangsafe::cancel::install or HANGSAFE_CANCEL_SIGNAL)"
            ),
            InstallError::AlreadyInstalled { signal } => {
                write!(f, "hangsafe already uses signal {signal} for cancellation")
            }
            InstallError::Os(e) => write!(f, "cannot install the cancel signal handler: {e}"),
        }
    }
}

impl std::error::Error for InstallError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            InstallError::Os(e) => Some(e),
            _ => None,
        }
    }
}

/// Installs the cancel signal handler on `which`.
///
/// Called implicitly (with the environment's choice or
/// [`DEFAULT_SIGNAL`]) the first time a thread uses cancellation; call it
/// yourself first to choose the signal or to see the error. Installing the
/// same signal again is a no-op; a different one fails with
/// [`InstallError::AlreadyInstalled`]. If the application already handles
/// the signal, installation is refused ([`InstallError::Occupied`]):
/// cancellation then stays cooperative (the cancel bit is still checked
/// before every cancellable syscall, but a blocked call is not
/// interrupted).
///
/// ```
/// use hangsafe::cancel::{install, signal, DEFAULT_SIGNAL};
/// let sig = install(DEFAULT_SIGNAL).unwrap();
/// assert_eq!(signal(), Some(sig));
/// assert!(sig >= libc::SIGRTMIN() && sig <= libc::SIGRTMAX());
/// ```
pub fn install(which: CancelSignal) -> Result<i32, InstallError> {
    let sig = which.resolve()?;
    let _g = crate::sync::lock(&INSTALL);
    let cur = SIGNAL.load(Ordering::Acquire);
    if cur != 0 {
        return if cur == sig {
            Ok(sig)
        } else {
            Err(InstallError::AlreadyInstalled { signal: cur })
        };
    }
    // SAFETY: sigaction with a zeroed, then fully initialised struct; the
    // handler is an `extern "C"` function that only does
    // async-signal-safe work.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        if libc::sigaction(sig, std::ptr::null(), &mut old) != 0 {
            return Err(InstallError::Os(std::io::Error::last_os_error()));
        }
        if old.sa_sigaction != libc::SIG_DFL && old.sa_sigaction != libc::SIG_IGN {
            return Err(InstallError::Occupied { signal: sig });
        }
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = handler as *const () as usize;
        sa.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART | libc::SA_ONSTACK;
        libc::sigfillset(&mut sa.sa_mask);
        if libc::sigaction(sig, &sa, std::ptr::null_mut()) != 0 {
            return Err(InstallError::Os(std::io::Error::last_os_error()));
        }
    }
    SIGNAL.store(sig, Ordering::Release);
    log::debug!("hangsafe: cancel signal {sig} installed");
    Ok(sig)
}

/// The installed cancel signal, if any.
pub fn signal() -> Option<i32> {
    match SIGNAL.load(Ordering::Acquire) {
        0 => None,
        s => Some(s),
    }
}

/// Installs the default signal once; logs (once) if that is impossible.
pub(crate) fn ensure_installed() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        if SIGNAL.load(Ordering::Acquire) != 0 {
            return;
        }
        let which = match CancelSignal::from_env() {
            Ok(which) => which.unwrap_or(DEFAULT_SIGNAL),
            Err(None) => {
                log::info!("hangsafe: cancel signal off (HANGSAFE_CANCEL_SIGNAL); cancellation is cooperative");
                return;
            }
            Err(Some(msg)) => {
                // Refused, not replaced by the default: the user asked for
                // another signal, maybe because the default is taken.
                log::error!(
                    "hangsafe: {msg}; no cancel signal installed, cancellation is \
                     cooperative (blocked syscalls are not interrupted)"
                );
                return;
            }
        };
        if let Err(e) = install(which) {
            log::error!("hangsafe: {e}; blocked syscalls will not be interrupted by cancels");
        }
    });
}

/// Unblocks the cancel signal on this thread.
pub(crate) fn unblock() {
    let sig = SIGNAL.load(Ordering::Acquire);
    if sig == 0 {
        return;
    }
    // SAFETY: a local sigset, initialised by sigemptyset before use.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, sig);
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
    }
}

/// Sends the cancel signal to thread `tid` of this process. Called only by
/// the winner of the cancel word's CAS, while `SENDING` keeps the thread
/// from retiring (R7, R8).
pub(crate) fn send(tid: i32) {
    let sig = SIGNAL.load(Ordering::Acquire);
    if sig == 0 || tid <= 0 {
        return;
    }
    if !still_ours(sig) {
        return;
    }
    SENT.fetch_add(1, Ordering::Relaxed);
    // SAFETY: tgkill on our own process; `tid` is a live thread of it
    // because it cannot retire while SENDING is set.
    unsafe {
        libc::syscall(libc::SYS_tgkill, libc::getpid(), tid, sig);
    }
}

/// Whether `sig` still runs hangsafe's handler (H12). The application may
/// have reset it to `SIG_DFL` (the first cancel would kill the process) or
/// installed its own handler since: then no signal is sent and the cancel
/// stays cooperative (the cancel bit is set; the work sees it at its next
/// check or cancellable call). Logged once.
fn still_ours(sig: c_int) -> bool {
    static WARNED: AtomicBool = AtomicBool::new(false);
    // SAFETY: queries the current action into a zeroed struct; no change.
    let ours = unsafe {
        let mut cur: libc::sigaction = std::mem::zeroed();
        libc::sigaction(sig, std::ptr::null(), &mut cur) == 0
            && cur.sa_sigaction == handler as *const () as usize
    };
    if !ours && !WARNED.swap(true, Ordering::Relaxed) {
        log::error!(
            "hangsafe: the cancel signal {sig} no longer runs hangsafe's handler (the \
             application changed it); cancels are cooperative from now on: blocked \
             syscalls are not interrupted"
        );
    }
    ours
}

/// The signal mask of hangsafe's own threads (pool threads, idle or
/// running work, and the timer): every signal blocked except the cancel
/// signal (if installed), the synchronous fault signals, which the kernel
/// delivers to the faulting thread anyway (blocking them would turn a fault
/// into a kill without the application's handler), and `SIGPIPE`, which the
/// kernel sends to the thread that wrote (so the application's choice for
/// it, usually `SIG_IGN`, applies to work as to any thread).
/// Process-directed signals therefore go to the application's threads
/// (H10).
pub(crate) fn internal_mask() -> libc::sigset_t {
    // SAFETY: a local set, initialised by sigfillset before use.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut set);
        for s in [
            libc::SIGSEGV,
            libc::SIGBUS,
            libc::SIGFPE,
            libc::SIGILL,
            libc::SIGTRAP,
            libc::SIGSYS,
            libc::SIGPIPE,
        ] {
            libc::sigdelset(&mut set, s);
        }
        let sig = SIGNAL.load(Ordering::Acquire);
        if sig != 0 {
            libc::sigdelset(&mut set, sig);
        }
        set
    }
}

/// Sets the calling thread's mask to [`internal_mask`]: what a pool thread
/// does before every job, whatever the previous job did to it (H11). One
/// syscall.
pub(crate) fn reset_internal_mask() {
    let set = internal_mask();
    // SAFETY: `set` is an initialised signal set.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &set, std::ptr::null_mut()) };
}

/// Runs `f` (which creates a thread) with every asynchronous signal
/// blocked in the calling thread, so the new thread starts with them
/// blocked and no signal can reach it before it sets its own mask; the
/// caller's mask is restored afterwards.
pub(crate) fn with_signals_blocked<R>(f: impl FnOnce() -> R) -> R {
    let mut set = internal_mask();
    let sig = SIGNAL.load(Ordering::Acquire);
    // SAFETY: local, initialised signal sets; `old` receives the mask.
    let old = unsafe {
        if sig != 0 {
            // The new thread unblocks it itself once its word exists.
            libc::sigaddset(&mut set, sig);
        }
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::pthread_sigmask(libc::SIG_SETMASK, &set, &mut old);
        old
    };
    let r = f();
    // SAFETY: restores the mask saved above.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut()) };
    r
}

/// For the fork prepare handler: holds the installation lock across
/// `fork`, so the child never inherits it locked by another thread.
pub(crate) fn install_lock() -> std::sync::MutexGuard<'static, ()> {
    crate::sync::lock(&INSTALL)
}

extern "C" fn handler(sig: c_int, _info: *mut libc::siginfo_t, ctx: *mut c_void) {
    // SAFETY: __errno_location is async-signal-safe and returns this
    // thread's errno slot.
    let errno = unsafe { libc::__errno_location() };
    // SAFETY: as above; a plain read of this thread's errno.
    let saved = unsafe { *errno };
    HANDLED.fetch_add(1, Ordering::Relaxed);
    let word = thread::current_for_handler();
    // SAFETY: a non-null CURRENT points to the word its OWNER keeps alive
    // for the life of the thread; `pending` is one atomic load.
    if !word.is_null() && unsafe { (*word).pending() } {
        let uc = ctx.cast::<libc::ucontext_t>();
        let range = platform::stub_range();
        // SAFETY: `ctx` is the ucontext the kernel gave this SA_SIGINFO
        // handler.
        let pc = unsafe { platform::context_pc(uc) };
        // SAFETY: a non-null CURRENT word is live (see above); the depth is
        // written only by this thread's stub.
        let depth = unsafe { (*word).in_call() };
        // Cancellable calls interrupted by a signal handler that is still
        // running (the innermost call, if the PC is in it, is not one).
        let outer = depth.saturating_sub(u32::from(range.counts(pc)));
        if pc >= range.begin && pc < range.end {
            // SAFETY: inside [begin, end) the stub has not changed the
            // stack or any callee-saved register since `begin`, so resuming
            // at `cancel` (which undoes the prologue, sets the return value
            // and returns) is a valid continuation of this register state.
            unsafe { platform::set_context_pc(uc, range.cancel) };
            REDIRECTED.fetch_add(1, Ordering::Relaxed);
        }
        if outer > 0 {
            // A signal handler interrupted an outer cancellable call (and,
            // if it makes its own call, this signal may just have been
            // spent on that one): keep the signal for the outer call.
            // SAFETY: `uc_sigmask` is the mask restored when this handler
            // returns; adding our signal there keeps the re-raised instance
            // pending until the interrupted handler returns and the outer
            // call's context unblocks it. getpid/gettid/tgkill are
            // async-signal-safe syscalls.
            unsafe {
                libc::sigaddset(&mut (*uc).uc_sigmask, sig);
                libc::syscall(libc::SYS_tgkill, libc::getpid(), libc::gettid(), sig);
            }
            thread::note_masked();
            DEFERRED.fetch_add(1, Ordering::Relaxed);
        }
    }
    // SAFETY: restoring this thread's errno.
    unsafe { *errno = saved };
}
