//! [`RunnerSet`]: many runners, one fd, any event loop.

use super::error::{Rejected, SetError};
use super::guard::{self, Section};
use super::hooks::{Hooks, Interest};
use super::nexus::{Fired, Ignored, Nexus};
use super::notify::Notifier;
use super::registry::Registry;
use super::sys::EventFd;
use super::token::Token;
use crate::runner::{Builder, Ctx, RunError, Runner, State};
use crate::sync::{lock, Arc, Mutex, MutexGuard};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fmt;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::time::{Duration, Instant};

/// Many runners, each named by a [`Token`], behind one file descriptor that
/// becomes readable when any of them is decided.
///
/// Plug it into any event loop:
///
/// * **a poll loop**: wait for [`as_fd`](AsFd::as_fd) to be readable, with
///   [`poll_timeout`](Self::poll_timeout) as the timeout, then
///   [`drain`](Self::drain);
/// * **a loop with registration hooks** (libxl style): [`attach`](Self::attach)
///   a [`Hooks`] implementation; the set registers its fd and its earliest
///   deadline with the loop, and the loop calls
///   [`occurred_fd`](Self::occurred_fd) / [`occurred_timeout`](Self::occurred_timeout),
///   then [`drain`](Self::drain).
///
/// [`drain`](Self::drain) yields each runner's outcome exactly once (its
/// token is stale afterwards) and never anything for a runner that was
/// [`release`](Self::release)d. Deadlines are enforced by the runners' own
/// timer; the set also applies them itself whenever it is drained or its
/// timeout fires, so a loop sees `Err(TimedOut)` on time even if the timer
/// thread is starved.
///
/// All methods take `&self` and may be called from any thread; the set's
/// lock is held only for bookkeeping and the application's hooks, never
/// while user work or user destructors run.
///
/// ```
/// use hangsafe::nexus::RunnerSet;
/// use hangsafe::runner::{Builder, RunError};
/// use std::os::fd::AsFd;
/// use std::time::Duration;
///
/// let set = RunnerSet::new().unwrap();
/// let fast = set.spawn(Builder::new(), |_| "pong").unwrap();
/// let hung = set
///     .spawn(Builder::new().timeout(Duration::from_millis(20)), |ctx| {
///         while !ctx.is_cancelled() {
///             std::thread::sleep(Duration::from_millis(1));
///         }
///         "late"
///     })
///     .unwrap();
///
/// let mut seen = Vec::new();
/// while seen.len() < 2 {
///     // Any poll loop: sleep until the fd is readable or the next deadline.
///     // Saturating: a deadline decades away must not wrap to a negative
///     // ("forever") or overflow.
///     let timeout = set
///         .poll_timeout()
///         .map_or(-1, |d| i32::try_from(d.as_millis() + 1).unwrap_or(i32::MAX));
///     let mut pfd = libc::pollfd { fd: std::os::fd::AsRawFd::as_raw_fd(&set.as_fd()), events: libc::POLLIN, revents: 0 };
///     unsafe { libc::poll(&mut pfd, 1, timeout) };
///     seen.extend(set.drain().unwrap());
/// }
/// seen.sort_by_key(|(t, _)| *t);
/// assert_eq!(seen, vec![(fast, Ok("pong")), (hung, Err(RunError::TimedOut))]);
/// ```
pub struct RunnerSet<T: Send + 'static> {
    notifier: Arc<Notifier<EventFd>>,
    inner: Mutex<Inner<T>>,
}

/// What the set's own registrations with the loop stand for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Src {
    /// The completion eventfd.
    Completion,
    /// The earliest deadline.
    Deadline,
}

struct Attached {
    hooks: Box<dyn Hooks>,
    /// The armed timeout and its deadline.
    timer: Option<(Token, Instant)>,
}

struct Inner<T: Send + 'static> {
    /// `None` while a spawn reserved the slot and has not filled it.
    runners: Registry<Option<Runner<T>>>,
    /// Deadlines of runners, earliest first; entries of runners that left
    /// or were decided are dropped lazily.
    deadlines: BinaryHeap<Reverse<(Instant, Token)>>,
    /// Notices taken from the notifier, not yet resolved.
    pending: Vec<Token>,
    /// The registrations with the loop. It outlives attachments, so that a
    /// token of an earlier attachment stays stale (R38).
    nexus: Nexus<Src>,
    attached: Option<Attached>,
}

/// The hooks of a detached set: only a withdrawn timeout's late event can
/// still arrive, and it needs no hook.
struct Detached;

impl Hooks for Detached {
    fn fd_register(&mut self, _: RawFd, _: Interest, _: Token) -> io::Result<()> {
        Err(io::Error::from_raw_os_error(libc::ENOTCONN))
    }
    fn fd_modify(&mut self, _: RawFd, _: Interest, _: Token) -> io::Result<()> {
        Err(io::Error::from_raw_os_error(libc::ENOTCONN))
    }
    fn fd_deregister(&mut self, _: RawFd, _: Token) {}
    fn timeout_register(&mut self, _: Instant, _: Token) -> io::Result<()> {
        Err(io::Error::from_raw_os_error(libc::ENOTCONN))
    }
    fn timeout_modify(&mut self, _: Instant, _: Token) -> io::Result<()> {
        Ok(())
    }
}

/// The outcomes [`RunnerSet::drain`] collected: `(token, outcome)` pairs,
/// in the order the runners were decided.
pub struct Drain<T>(std::vec::IntoIter<(Token, Result<T, RunError>)>);

impl<T> Iterator for Drain<T> {
    type Item = (Token, Result<T, RunError>);
    fn next(&mut self) -> Option<Self::Item> {
        self.0.next()
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.size_hint()
    }
}

impl<T> ExactSizeIterator for Drain<T> {}

impl<T: fmt::Debug> fmt::Debug for Drain<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Drain").field(&self.0.as_slice()).finish()
    }
}

impl<T: Send + 'static> fmt::Debug for RunnerSet<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunnerSet")
            .field("fd", &self.notifier.signal().as_raw_fd())
            .finish_non_exhaustive()
    }
}

impl<T: Send + 'static> RunnerSet<T> {
    /// An empty set. Fails only if no eventfd can be created.
    pub fn new() -> io::Result<Self> {
        Self::with_limits(super::registry::MAX_GENERATION, u32::MAX as usize + 1)
    }

    /// An empty set whose token registry has the given limits (see
    /// [`Registry::with_limits`]); small limits exercise exhaustion.
    ///
    /// # Errors
    ///
    /// `InvalidInput` if `max_generation` is 0 or `max_slots` is 0 or
    /// above 2³² (where [`Registry::with_limits`] would panic); otherwise
    /// only if no eventfd can be created.
    pub fn with_limits(max_generation: u32, max_slots: usize) -> io::Result<Self> {
        if max_generation == 0 || !(1..=super::registry::MAX_SLOTS).contains(&max_slots) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "RunnerSet limits out of range: max_generation {max_generation} (needs >= 1), \
                     max_slots {max_slots} (needs 1..=2^32)"
                ),
            ));
        }
        Ok(RunnerSet {
            notifier: Arc::new(Notifier::new(EventFd::new()?)),
            inner: Mutex::new(Inner {
                runners: Registry::with_limits(max_generation, max_slots),
                deadlines: BinaryHeap::new(),
                pending: Vec::new(),
                nexus: Nexus::new(),
                attached: None,
            }),
        })
    }

    /// Takes the set's lock, unless this thread is inside a hook or another
    /// locked section (R46). The returned section marks the thread until
    /// the guard is dropped.
    fn enter(&self) -> Result<(MutexGuard<'_, Inner<T>>, Section), SetError> {
        if guard::inside() {
            return Err(SetError::InHook);
        }
        let section = Section::enter();
        Ok((lock(&self.inner), section))
    }

    /// Spawns `f` as `builder` describes and adds it to the set.
    ///
    /// On error nothing is left behind: with [`SetError::Full`] the work
    /// was never started.
    pub fn spawn<F>(&self, builder: Builder, f: F) -> Result<Token, SetError>
    where
        F: FnOnce(&Ctx<'_>) -> T + Send + 'static,
    {
        // Reserve the token first, so that a full set refuses before any
        // work starts; spawn outside the lock (it may create a thread).
        let token = {
            let (mut inner, _s) = self.enter()?;
            inner.runners.insert(None).map_err(|_| SetError::Full)?
        };
        match builder.spawn(f) {
            Ok(runner) => {
                let (mut inner, _s) = self.enter()?;
                match self.fill(&mut inner, token, runner) {
                    Ok(()) => Ok(token),
                    Err(runner) => {
                        // Released (cancelled) outside the lock.
                        drop(inner);
                        drop(runner);
                        Err(SetError::Ignored(Ignored::Stale))
                    }
                }
            }
            Err(e) => {
                let (mut inner, _s) = self.enter()?;
                inner.runners.remove(token);
                Err(SetError::Spawn(e))
            }
        }
    }

    /// Adds a runner spawned elsewhere. A refused runner is handed back.
    pub fn insert(&self, runner: Runner<T>) -> Result<Token, Rejected<T>> {
        let (mut inner, _s) = match self.enter() {
            Ok(g) => g,
            Err(reason) => return Err(Rejected { reason, runner }),
        };
        let token = match inner.runners.insert(None) {
            Ok(t) => t,
            Err(_) => {
                return Err(Rejected {
                    reason: SetError::Full,
                    runner,
                })
            }
        };
        match self.fill(&mut inner, token, runner) {
            Ok(()) => Ok(token),
            Err(runner) => Err(Rejected {
                reason: SetError::Ignored(Ignored::Stale),
                runner,
            }),
        }
    }

    /// Puts `runner` into the slot reserved for it under `token`. The slot
    /// cannot be gone: only the reserving call removes a reserved slot
    /// (`release`, `drain` and `Drop` take issued runners only, H4). Were
    /// it gone anyway, the runner is handed back rather than panicking.
    fn fill(&self, inner: &mut Inner<T>, token: Token, runner: Runner<T>) -> Result<(), Runner<T>> {
        let Some(slot @ None) = inner.runners.get_mut(token) else {
            log::error!("hangsafe: internal error: RunnerSet slot {token:?} lost its reservation");
            return Err(runner);
        };
        let notifier = Arc::clone(&self.notifier);
        if !runner.on_decided(Box::new(move || notifier.notify(token))) {
            // Decided before we could ask to be told: tell ourselves (R44).
            self.notifier.notify(token);
        }
        let deadline = runner.deadline();
        *slot = Some(runner);
        if let Some(d) = deadline {
            inner.deadlines.push(Reverse((d, token)));
        }
        inner.rearm();
        Ok(())
    }

    /// Releases a runner: it is removed (its token is stale from now on),
    /// cancelled if still running, and its outcome is never yielded by
    /// [`drain`](Self::drain), even if its completion notice is on its way
    /// (R43). Never blocks. Returns false for a stale token.
    ///
    /// A token that was never issued is stale too, including the one a
    /// concurrent [`spawn`](Self::spawn) has reserved but not returned yet
    /// (tokens are predictable): its slot is left to that spawn (H4).
    pub fn release(&self, token: Token) -> bool {
        let runner = match self.enter() {
            Ok((mut inner, _s)) => inner.remove_issued(token),
            Err(_) => {
                log::error!("hangsafe: RunnerSet::release called from inside a hook; ignored");
                return false;
            }
        };
        // Dropped outside the lock: a value the work returned is user data
        // with a destructor that may call back into this set.
        let released = runner.is_some();
        drop(runner);
        released
    }

    /// Cancels a runner (it stays in the set, and its `Err(Cancelled)`
    /// outcome will be drained). Returns its state as
    /// [`Runner::cancel`] does, or `None` for a stale token.
    pub fn cancel(&self, token: Token) -> Option<State> {
        let (inner, _s) = self.enter().ok()?;
        inner.runners.get(token)?.as_ref().map(Runner::cancel)
    }

    /// The state of a runner, or `None` for a stale token.
    pub fn state(&self, token: Token) -> Option<State> {
        let (inner, _s) = self.enter().ok()?;
        inner.runners.get(token)?.as_ref().map(Runner::state)
    }

    /// Whether `token` names a runner of this set (not yet drained or
    /// released).
    pub fn contains(&self, token: Token) -> bool {
        self.state(token).is_some()
    }

    /// Runners in the set (running, or decided and not yet drained).
    pub fn len(&self) -> usize {
        self.enter().map_or(0, |(inner, _s)| inner.runners.len())
    }

    /// Whether the set holds no runner.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Collects the outcome of every runner decided since the last drain,
    /// applying due deadlines first. Each runner yielded leaves the set
    /// (its token is stale from now on). Never blocks.
    pub fn drain(&self) -> Result<Drain<T>, SetError> {
        let (mut inner, _s) = self.enter()?;
        let out = inner.collect(&self.notifier, Instant::now());
        Ok(Drain(out.into_iter()))
    }

    /// The earliest deadline of a running runner, for a poll loop's
    /// timeout.
    pub fn next_deadline(&self) -> Option<Instant> {
        let (mut inner, _s) = self.enter().ok()?;
        inner.earliest()
    }

    /// How long a poll loop may sleep before the next deadline is due
    /// (zero if one is due already); `None` if no runner has a deadline.
    pub fn poll_timeout(&self) -> Option<Duration> {
        self.next_deadline()
            .map(|d| d.saturating_duration_since(Instant::now()))
    }

    /// A handle for examining the runner `token`'s published state (see
    /// [`examine`](crate::examine)); a stale token, a released or drained
    /// runner, is [`Gone`](crate::examine::Error::Gone), like
    /// utrace's `_pid` calls (R49).
    ///
    /// ```
    /// use hangsafe::examine::{self, Progress};
    /// use hangsafe::nexus::RunnerSet;
    /// use hangsafe::runner::Builder;
    ///
    /// let set = RunnerSet::new().unwrap();
    /// let (tx, rx) = std::sync::mpsc::channel::<()>();
    /// let t = set
    ///     .spawn(Builder::new(), move |ctx| {
    ///         ctx.enter_phase("SG_IO");
    ///         let _ = rx.recv();
    ///     })
    ///     .unwrap();
    /// let ex = set.examiner(t).unwrap();
    /// let phase = loop {
    ///     match ex.examine(|p: &Progress| p.phase().to_owned()) {
    ///         Ok(p) => break p,
    ///         Err(examine::Error::Unpublished) => std::thread::yield_now(),
    ///         Err(e) => panic!("{e}"),
    ///     }
    /// };
    /// assert_eq!(phase, "SG_IO");
    /// set.release(t);
    /// assert_eq!(ex.examine(|p: &Progress| p.done()), Err(examine::Error::Gone));
    /// assert!(matches!(set.examiner(t), Err(examine::Error::Gone)));
    /// drop(tx);
    /// ```
    pub fn examiner(
        &self,
        token: Token,
    ) -> Result<crate::examine::Examiner, crate::examine::Error> {
        let (inner, _s) = self.enter().map_err(|_| crate::examine::Error::Gone)?;
        match inner.runners.get(token) {
            Some(Some(r)) => Ok(r.examiner()),
            _ => Err(crate::examine::Error::Gone),
        }
    }

    // ---- the application's event loop --------------------------------------

    /// Hands the set to an event loop: registers its fd (readable) and its
    /// earliest deadline through `hooks`, and keeps them up to date. The
    /// loop then calls [`occurred_fd`](Self::occurred_fd) and
    /// [`occurred_timeout`](Self::occurred_timeout), followed by
    /// [`drain`](Self::drain).
    pub fn attach(&self, mut hooks: Box<dyn Hooks>) -> Result<(), SetError> {
        let (mut inner, _s) = self.enter()?;
        if inner.attached.is_some() {
            return Err(SetError::Attachment);
        }
        inner.nexus.register_fd(
            &mut *hooks,
            self.notifier.signal().as_raw_fd(),
            Interest::READABLE,
            Src::Completion,
        )?;
        inner.attached = Some(Attached { hooks, timer: None });
        inner.rearm();
        Ok(())
    }

    /// Takes the hooks back: the fd is deregistered and the timeout
    /// withdrawn. Its last `occurred_timeout` may still arrive and is
    /// dropped, as every later event of this attachment is, even after a
    /// new [`attach`](Self::attach). `None` if not attached.
    pub fn detach(&self) -> Option<Box<dyn Hooks>> {
        let (mut inner, _s) = self.enter().ok()?;
        let mut a = inner.attached.take()?;
        inner.nexus.deregister_all(&mut *a.hooks);
        Some(a.hooks)
    }

    /// The loop's report that `fd`, registered under `token`, is ready.
    /// Any thread, any delay: a stale token, another fd, or an fd that is
    /// not readable when re-checked is dropped, as
    /// `Err(SetError::Ignored(_))` (R38, R40, R41). On `Ok`, completions are
    /// waiting: call [`drain`](Self::drain). Nothing is consumed here, so
    /// the fd stays readable until a drain.
    pub fn occurred_fd(&self, token: Token, fd: RawFd, revents: i16) -> Result<(), SetError> {
        let (mut inner, _s) = self.enter()?;
        match inner.nexus.occurred_fd(token, fd, revents)? {
            // The fd stays readable until `drain` clears it: an event
            // delivered without a drain after it is repeated, not lost.
            Fired::Fd {
                key: Src::Completion,
                ..
            } => Ok(()),
            // The nexus answers an fd event with an fd registration only.
            other => {
                log::error!("hangsafe: internal error: fd event fired {other:?}; ignored");
                Err(SetError::Ignored(Ignored::Stale))
            }
        }
    }

    /// The loop's report that the timeout registered under `token` fired.
    /// Any thread, any delay: a stale or withdrawn token, or a deadline
    /// not yet reached, is dropped (R39, R45). On `Ok`, due deadlines were
    /// applied and the next one armed: call [`drain`](Self::drain).
    pub fn occurred_timeout(&self, token: Token) -> Result<(), SetError> {
        let (mut inner, _s) = self.enter()?;
        let Inner {
            nexus, attached, ..
        } = &mut *inner;
        let r = match attached {
            Some(a) => nexus.occurred_timeout(&mut *a.hooks, token, Instant::now()),
            None => nexus.occurred_timeout(&mut Detached, token, Instant::now()),
        };
        match r {
            Ok(Fired::Timeout { .. }) => {
                if let Some(a) = attached {
                    if a.timer.is_some_and(|(t, _)| t == token) {
                        a.timer = None;
                    }
                }
                inner.apply_deadlines(Instant::now());
                inner.rearm();
                Ok(())
            }
            Err(Ignored::NotDue { renewed }) => {
                if let Some((t, _)) = attached.as_mut().and_then(|a| a.timer.as_mut()) {
                    if *t == token {
                        *t = renewed;
                    }
                }
                Err(SetError::Ignored(Ignored::NotDue { renewed }))
            }
            Err(e) => Err(SetError::Ignored(e)),
            // The nexus answers a timeout event with a timeout only.
            Ok(other) => {
                log::error!("hangsafe: internal error: timeout event fired {other:?}; ignored");
                Err(SetError::Ignored(Ignored::Stale))
            }
        }
    }
}

impl<T: Send + 'static> Inner<T> {
    /// Removes the runner `token` names, if it was issued (its spawn has
    /// filled the slot). A reserved slot stays with its spawn.
    fn remove_issued(&mut self, token: Token) -> Option<Runner<T>> {
        match self.runners.get(token) {
            Some(Some(_)) => self.runners.remove(token).flatten(),
            _ => None,
        }
    }

    /// Runs `check()` on every runner whose deadline is due: it is
    /// cancelled as timed out (if still running), and its notice follows.
    fn apply_deadlines(&mut self, now: Instant) {
        while let Some(Reverse((d, t))) = self.deadlines.peek().copied() {
            if d > now {
                break;
            }
            self.deadlines.pop();
            if let Some(Some(r)) = self.runners.get(t) {
                r.check();
            }
        }
    }

    /// The earliest deadline of a runner still running, dropping entries
    /// of runners that left the set or were decided.
    fn earliest(&mut self) -> Option<Instant> {
        while let Some(Reverse((d, t))) = self.deadlines.peek().copied() {
            match self.runners.get(t) {
                Some(Some(r)) if r.state() == State::Running => return Some(d),
                _ => {
                    self.deadlines.pop();
                }
            }
        }
        None
    }

    /// Keeps the loop's timeout at or before the earliest deadline. An
    /// armed timeout later than needed is replaced; one earlier than needed
    /// is left to fire (a spurious wake-up is cheaper than two hook calls
    /// per completion).
    fn rearm(&mut self) {
        if self.attached.is_none() {
            return;
        }
        let want = self.earliest();
        let (Some(a), Some(want)) = (self.attached.as_mut(), want) else {
            return;
        };
        if let Some((t, at)) = a.timer {
            if at <= want {
                return;
            }
            self.nexus.withdraw_timeout(&mut *a.hooks, t);
            a.timer = None;
        }
        match self
            .nexus
            .register_timeout(&mut *a.hooks, want, Src::Deadline)
        {
            Ok(t) => a.timer = Some((t, want)),
            // The runners' own timer still enforces every deadline; the
            // loop just learns of it through the fd instead.
            Err(e) => log::error!("hangsafe: RunnerSet: registering the deadline failed: {e}"),
        }
    }

    /// The body of `drain`.
    fn collect(
        &mut self,
        notifier: &Notifier<EventFd>,
        now: Instant,
    ) -> Vec<(Token, Result<T, RunError>)> {
        self.apply_deadlines(now);
        notifier.take(&mut self.pending);
        let mut out = Vec::with_capacity(self.pending.len());
        let mut keep = Vec::new();
        for t in std::mem::take(&mut self.pending) {
            let Some(Some(r)) = self.runners.get_mut(t) else {
                // Released, or drained already: a stale notice (R43).
                continue;
            };
            match r.try_wait() {
                Some(outcome) => {
                    self.runners.remove(t);
                    out.push((t, outcome));
                }
                // A notice is sent only once the outcome is decided; keep
                // it rather than lose it if that ever changes.
                None => keep.push(t),
            }
        }
        self.pending = keep;
        self.rearm();
        out
    }
}

impl<T: Send + 'static> AsFd for RunnerSet<T> {
    /// The eventfd that is readable while a decided runner waits to be
    /// drained (and, rarely, spuriously).
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.notifier.signal().as_fd()
    }
}

impl<T: Send + 'static> AsRawFd for RunnerSet<T> {
    fn as_raw_fd(&self) -> RawFd {
        self.notifier.signal().as_raw_fd()
    }
}

impl<T: Send + 'static> Drop for RunnerSet<T> {
    /// Detaches from the loop and releases every runner (cancelling those
    /// still running). Never blocks. Workers still running keep the eventfd
    /// open through their notices, so none of them can write to a reused fd
    /// number.
    fn drop(&mut self) {
        let runners = {
            let inner = self.inner.get_mut().unwrap_or_else(|p| p.into_inner());
            if let Some(mut a) = inner.attached.take() {
                let _s = Section::enter();
                inner.nexus.deregister_all(&mut *a.hooks);
            }
            inner.runners.drain()
        };
        drop(runners);
    }
}
