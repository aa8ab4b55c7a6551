//! The caller's side: [`spawn`], [`Builder`] and the [`Runner`] handle.

use super::ctx::Ctx;
use super::error::{RunError, SpawnError};
use super::pool::{Job, Pool};
use super::shared::{Shared, Waiter};
use super::state::{CancelReason, Finish, State};
use super::timer::{self, TimerKind, TimerTarget};
use crate::cancel::word::CancelWord;
use crate::examine::{self, Examinable, Examiner, Pod, Ticket};
use crate::sync::{Arc, Weak};
use std::future::Future;
use std::marker::PhantomData;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// How long `wait` spins on the state before parking: a runner that is
/// about to finish is picked up without a futex round trip.
const WAIT_SPIN: Duration = Duration::from_micros(20);

/// Runs `f` on a pooled thread, without a deadline.
///
/// Equivalent to `Builder::new().spawn(f)`. The closure owns what it uses;
/// its return value is handed back through the [`Runner`].
///
/// ```
/// let r = hangsafe::runner::spawn(|_ctx| "hello".len()).unwrap();
/// assert_eq!(r.wait(), Ok(5));
/// ```
pub fn spawn<F, T>(f: F) -> Result<Runner<T>, SpawnError>
where
    F: FnOnce(&Ctx<'_>) -> T + Send + 'static,
    T: Send + 'static,
{
    Builder::new().spawn(f)
}

/// Configures one runner: deadline, key and pool.
///
/// ```
/// use hangsafe::runner::{Builder, SpawnError};
/// use std::time::Duration;
///
/// let first = Builder::new()
///     .key("sda")
///     .timeout(Duration::from_secs(5))
///     .spawn(|ctx| while !ctx.is_cancelled() { std::thread::sleep(Duration::from_millis(1)) })
///     .unwrap();
/// // While the first probe of "sda" has not finished, no second one starts.
/// let second = Builder::new().key("sda").spawn(|_| ());
/// assert!(matches!(second, Err(SpawnError::KeyBusy { .. })));
/// drop(first); // cancels; the key frees as soon as the work returns
/// ```
#[derive(Clone, Debug, Default)]
#[must_use = "a Builder does nothing until .spawn() is called"]
pub struct Builder {
    deadline: Option<Instant>,
    key: Option<String>,
    pool: Option<Pool>,
}

impl Builder {
    /// A runner with no deadline and no key, on the global pool.
    pub fn new() -> Self {
        Builder::default()
    }

    /// Cancels the runner `d` after `spawn` (measured on the monotonic
    /// clock). A zero timeout cancels at once. A timeout too long for the
    /// clock (such as `Duration::MAX`) saturates to a deadline decades
    /// away: in effect, none. Never panics.
    pub fn timeout(mut self, d: Duration) -> Self {
        self.deadline = Some(Instant::now().checked_add(d).unwrap_or_else(far_future));
        self
    }

    /// Cancels the runner at `deadline`.
    pub fn deadline(mut self, deadline: Instant) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// Applies the per-key rule: spawning fails with
    /// [`SpawnError::KeyBusy`] while an earlier runner with this key has
    /// not finished (still running, or hung after a cancel).
    pub fn key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Runs on `pool` instead of the global pool.
    pub fn pool(mut self, pool: &Pool) -> Self {
        self.pool = Some(pool.clone());
        self
    }

    /// Starts the work. On error, `f` has been dropped and nothing else is
    /// left behind.
    pub fn spawn<F, T>(self, f: F) -> Result<Runner<T>, SpawnError>
    where
        F: FnOnce(&Ctx<'_>) -> T + Send + 'static,
        T: Send + 'static,
    {
        let pool = self.pool.as_ref().unwrap_or_else(|| Pool::global());
        let inner = &pool.inner;
        inner.admit()?;
        let guard = match &self.key {
            Some(k) => Some(
                inner
                    .keys
                    .try_take(k)
                    .ok_or_else(|| SpawnError::KeyBusy { key: k.clone() })?,
            ),
            None => None,
        };
        if self.deadline.is_some() {
            // A deadline nobody enforces must not go unnoticed: refuse the
            // runner, loudly (H2).
            timer::ensure_started().map_err(|e| {
                log::error!("hangsafe: no deadline timer ({e}); runner with a deadline refused");
                SpawnError::ThreadCreate(e)
            })?;
        }
        let deadline = self.deadline;
        // Both references exist before any thread can see the job (R1).
        let shared = Arc::new(Shared::new(
            Arc::clone(&inner.counters),
            deadline,
            inner.cfg.abandon_after,
        ));
        let theirs = Arc::clone(&shared);
        let job: Job = Box::new(move |word: &Arc<CancelWord>, ready: &mut dyn FnMut()| {
            // The work's own panics are caught inside; this catches one in
            // hangsafe's bookkeeping around it, so that the pool thread
            // survives (or exits cleanly) instead of unwinding through the
            // pool (H5).
            let run = AssertUnwindSafe(|| run_job(&theirs, word, f, guard, ready));
            if let Err(p) = catch_unwind(run) {
                log::error!(
                    "hangsafe: internal error: a runner job's bookkeeping panicked: {}",
                    panic_message(&*p)
                );
            }
        });
        inner.dispatch(job)?;
        crate::runner::metrics::Counters::inc(&inner.counters.spawned);
        if let Some(when) = deadline {
            let weak: Weak<Shared<T>> = Arc::downgrade(&shared);
            timer::schedule(when, TimerKind::Deadline, weak);
        }
        Ok(Runner {
            shared,
            taken: false,
            _value: PhantomData,
        })
    }
}

fn far_future() -> Instant {
    // ~30 years: effectively "no deadline" without overflowing Instant.
    // `Instant` holds an i64 of seconds, so this cannot overflow; should
    // the clock ever say otherwise, take the farthest that fits.
    const YEAR: u64 = 60 * 60 * 24 * 365;
    let now = Instant::now();
    [30 * YEAR, YEAR, 60 * 60 * 24]
        .into_iter()
        .find_map(|s| now.checked_add(Duration::from_secs(s)))
        .unwrap_or(now)
}

/// The body of every job: bind, run (unless already cancelled), publish.
fn run_job<F, T: Send + 'static>(
    shared: &Arc<Shared<T>>,
    word: &Arc<CancelWord>,
    f: F,
    key: Option<super::keys::KeyGuard>,
    ready: &mut dyn FnMut(),
) where
    F: FnOnce(&Ctx<'_>) -> T,
{
    let in_scope = crate::cancel::thread::enter_scope();
    debug_assert!(in_scope, "a pool thread runs one job at a time");
    let gen = word.begin();
    if shared.bind(word, gen) {
        // Cancelled before the work started (released early, or deadline
        // already past): the work never runs (R1). Drop it, free the key,
        // and end the runner. The thread goes straight back to the pool.
        let _ = catch_unwind(AssertUnwindSafe(move || drop(f)));
        crate::cancel::thread::end_job(word);
        crate::cancel::thread::leave_scope();
        drop(key);
        ready();
        // Nothing was published, so the final state alone makes examination
        // Gone; the flag is set anyway (this path is rare).
        shared.examine_cell().end(0);
        let fin = shared.finish_unrun();
        note_finish(shared, fin);
        return;
    }
    let ctx = Ctx::new(word, gen, shared.deadline(), shared, shared.examine_cell());
    let result = {
        let _own = OwnWork::enter(shared);
        catch_unwind(AssertUnwindSafe(|| f(&ctx))).map_err(|p| panic_message(&*p))
    };
    // The work has returned (or panicked): it publishes no more, and from
    // here on examination answers Gone (R48). Set by this thread, the
    // seqlock's single writer, before the final state CAS below, so whoever
    // sees the runner finished also sees Gone. Only if it published: a
    // runner that never did is Gone by its final state, and the store would
    // be this thread's only access to the cell's line (a transfer from the
    // spawning thread's cache that the final CAS would wait for).
    if ctx.examine_seq() != 0 {
        shared.examine_cell().end(ctx.examine_seq());
    }
    // Leave the thread clean for its next job: a new generation (a late
    // cancel of this job can no longer touch it, R5) and the cancel signal
    // unblocked, so a stale pending instance is delivered and ignored now
    // (R19).
    crate::cancel::thread::end_job(word);
    crate::cancel::thread::leave_scope();
    // The work has returned: the key is free before the outcome is
    // published, so whoever sees the outcome may reuse the key (R9).
    drop(key);
    if let Err(msg) = &result {
        log::error!("hangsafe: runner work panicked: {msg}");
    }
    ready();
    let (fin, dropped) = shared.finish(result);
    // A value produced after a cancel is dropped here, on the worker,
    // outside every lock; its destructor is user code.
    if dropped.is_some() {
        let _ = catch_unwind(AssertUnwindSafe(move || drop(dropped)));
    }
    note_finish(shared, fin);
}

thread_local! {
    /// The address of the `Shared` whose work this thread is running (0
    /// when none): lets [`Runner::wait`] see that it was called from inside
    /// its own work.
    static OWN_WORK: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Marks the calling thread as running the work of `shared` until dropped
/// (also when the work panics).
struct OwnWork(usize);

impl OwnWork {
    fn enter<T>(shared: &Arc<Shared<T>>) -> OwnWork {
        let previous = OWN_WORK.with(|w| w.replace(Arc::as_ptr(shared) as usize));
        OwnWork(previous)
    }

    /// Whether the calling thread is running the work of `shared`.
    fn is<T>(shared: &Arc<Shared<T>>) -> bool {
        OWN_WORK.with(|w| w.get()) == Arc::as_ptr(shared) as usize
    }
}

impl Drop for OwnWork {
    fn drop(&mut self) {
        OWN_WORK.with(|w| w.set(self.0));
    }
}

fn note_finish<T>(shared: &Shared<T>, fin: Finish) {
    match fin {
        Finish::Done => log::trace!("hangsafe: runner done"),
        Finish::Panicked => log::warn!("hangsafe: runner dead after a panic"),
        Finish::AfterCancel { abandoned } => {
            if abandoned {
                crate::runner::metrics::Counters::dec(&shared.counters().abandoned_now);
                log::info!("hangsafe: abandoned runner returned; its thread is back in the pool");
            } else {
                log::debug!("hangsafe: cancelled runner returned (dead)");
            }
        }
    }
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        String::from("<non-string panic payload>")
    }
}

/// Cancels `shared` for `reason`, and on effect arms the abandonment check.
/// Returns the resulting state.
fn cancel_runner<T: Send + 'static>(shared: &Arc<Shared<T>>, reason: CancelReason) -> State {
    let (state, _) = cancel_and_report(shared, reason);
    state
}

/// Whether this very call's cancel took effect.
fn cancel_took_effect<T: Send + 'static>(shared: &Arc<Shared<T>>, reason: CancelReason) -> bool {
    cancel_and_report(shared, reason).1
}

fn cancel_and_report<T: Send + 'static>(
    shared: &Arc<Shared<T>>,
    reason: CancelReason,
) -> (State, bool) {
    let before = shared.cancel(reason);
    if before.state() == State::Running {
        log::debug!("hangsafe: runner cancelled in state 'running' ({reason:?})");
        // A grace period past the clock's range means "never abandoned"
        // (H2): no check is armed, and nothing overflows.
        if let Some(when) = Instant::now().checked_add(shared.grace()) {
            let weak: Weak<Shared<T>> = Arc::downgrade(shared);
            timer::schedule(when, TimerKind::AbandonCheck, weak);
        }
        (State::Cancelled, true)
    } else {
        log::trace!("hangsafe: runner cancelled in state '{}'", before.state());
        (before.state(), false)
    }
}

/// The runner's token, as `Ctx::token` hands it out.
pub(crate) struct RunnerToken<T: Send + 'static>(pub(crate) Arc<Shared<T>>);

impl<T: Send + 'static> crate::cancel::Target for RunnerToken<T> {
    fn cancel(&self) -> bool {
        cancel_took_effect(&self.0, CancelReason::Explicit)
    }

    fn is_cancelled(&self) -> bool {
        self.0.word().cancel_reason().is_some()
    }

    fn bind(&self, binding: crate::cancel::word::Binding) -> bool {
        self.0.bind_extra(binding)
    }

    fn unbind(&self, word: &CancelWord) {
        self.0.unbind_extra(word)
    }
}

impl<T: Send + 'static> super::ctx::TokenSource for Arc<Shared<T>> {
    fn token(&self) -> crate::cancel::CancelToken {
        crate::cancel::CancelToken(Arc::new(RunnerToken(Arc::clone(self))))
    }
}

impl<T: Send + 'static> TimerTarget for Shared<T> {
    fn fire(self: Arc<Self>, kind: TimerKind) {
        match kind {
            TimerKind::Deadline => {
                cancel_runner(&self, CancelReason::Deadline);
            }
            TimerKind::AbandonCheck => {
                if self.mark_abandoned() {
                    let c = self.counters();
                    crate::runner::metrics::Counters::inc(&c.abandoned_now);
                    crate::runner::metrics::Counters::inc(&c.abandoned_total);
                    log::warn!(
                        "hangsafe: runner still running {:?} after its cancel; thread abandoned",
                        self.grace()
                    );
                }
            }
        }
    }

    fn pending(&self, kind: TimerKind) -> bool {
        let w = self.word();
        match kind {
            TimerKind::Deadline => w.state() == State::Running,
            TimerKind::AbandonCheck => w.state() == State::Cancelled && !w.abandoned(),
        }
    }
}

/// The handle of a running piece of work.
///
/// Dropping the handle *releases* the runner: if the work is still running
/// it is cancelled, and the call never blocks. The handle is also a
/// [`Future`] resolving to the same value as [`wait`](Self::wait).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let r = hangsafe::runner::spawn(|_| 7).unwrap();
/// assert_eq!(r.await, Ok(7));
/// # }
/// ```
///
/// # Threads
///
/// A `Runner<T>` may move to another thread whenever `T: Send` (its value
/// is handed over by value). It may be *shared* between threads
/// (`&Runner<T>` sent elsewhere) only if `T: Sync` as well, because
/// [`result`](Self::result) lends a `&T` to every thread holding the
/// reference. A value that is `Send` but not `Sync`, such as a
/// [`Cell`](std::cell::Cell), therefore gives a handle that is `Send` but
/// not `Sync`:
///
/// ```compile_fail,E0277
/// fn assert_sync<T: Sync>() {}
/// // error[E0277]: `Cell<u64>` cannot be shared between threads safely
/// assert_sync::<hangsafe::runner::Runner<std::cell::Cell<u64>>>();
/// ```
///
/// ```compile_fail,E0277
/// use std::cell::Cell;
/// let r = hangsafe::runner::spawn(|_| Cell::new(0u64)).unwrap();
/// // Two threads incrementing the same `Cell` through `result()` would be a
/// // data race: refused at compile time.
/// std::thread::scope(|s| {
///     s.spawn(|| r.result().map(|c| c.set(c.get() + 1)));
///     s.spawn(|| r.result().map(|c| c.set(c.get() + 1)));
/// });
/// ```
///
/// With a `Sync` value the same code compiles:
///
/// ```
/// let r = hangsafe::runner::spawn(|_| 7u64).unwrap();
/// while !r.is_finished() {
///     std::thread::yield_now();
/// }
/// std::thread::scope(|s| {
///     s.spawn(|| assert_eq!(r.result(), Some(&7)));
///     s.spawn(|| assert_eq!(r.result(), Some(&7)));
/// });
/// ```
#[must_use = "dropping a Runner cancels its work"]
pub struct Runner<T: Send + 'static> {
    shared: Arc<Shared<T>>,
    taken: bool,
    /// Makes the handle `Sync` only if `T` is (`result()` lends `&T`), and
    /// `Send` only if `T` is; the handle stays `Unpin` (impl below).
    _value: PhantomData<T>,
}

// The handle never pins its value: it holds it behind an `Arc`.
impl<T: Send + 'static> Unpin for Runner<T> {}

impl<T: Send + 'static> std::fmt::Debug for Runner<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runner")
            .field("state", &self.state())
            .field("deadline", &self.deadline())
            .finish()
    }
}

impl<T: Send + 'static> Runner<T> {
    /// The state, without side effects.
    pub fn state(&self) -> State {
        self.shared.word().state()
    }

    /// The state, after applying the deadline: a runner still `Running`
    /// past its deadline is cancelled here, as `check_runner()` does in
    /// multipath-tools' runner (the timer would do the same a moment later). Never blocks.
    pub fn check(&self) -> State {
        let st = self.state();
        if st == State::Running {
            if let Some(d) = self.shared.deadline() {
                if Instant::now() >= d {
                    return cancel_runner(&self.shared, CancelReason::Deadline);
                }
            }
        }
        st
    }

    /// Cancels the work if it is still running, and returns the resulting
    /// state: `Cancelled` if the cancel took effect now or earlier, `Done`
    /// if the work had already returned (completion won), `Dead` if it had
    /// died. Never blocks.
    pub fn cancel(&self) -> State {
        cancel_runner(&self.shared, CancelReason::Explicit)
    }

    /// Borrows the value if the runner is `Done`.
    pub fn result(&self) -> Option<&T> {
        if self.taken {
            return None;
        }
        // SAFETY: the `&T` is reachable from several threads only through
        // `&Runner<T>`, and `Runner<T>` is `Sync` only if `T` is (its
        // `PhantomData<T>`): `peek`'s contract holds.
        unsafe { self.shared.peek() }
    }

    /// The deadline, if any.
    pub fn deadline(&self) -> Option<Instant> {
        self.shared.deadline()
    }

    /// Whether the work has ended (`Done` or `Dead`), so its thread is no
    /// longer occupied by it.
    pub fn is_finished(&self) -> bool {
        matches!(self.state(), State::Done | State::Dead)
    }

    /// Blocks until the outcome is decided and returns it: the value, or
    /// why there is none. With a deadline this returns at the deadline at
    /// the latest (as `Err(TimedOut)`), even if the work is stuck.
    ///
    /// Called from inside the runner's own work (which cannot finish while
    /// it waits), it fails at once with [`RunError::WaitOnSelf`] and
    /// cancels the runner, as dropping the handle does.
    ///
    /// # Panics
    ///
    /// If the outcome was already taken through `wait_timeout` or `.await`.
    pub fn wait(mut self) -> Result<T, RunError> {
        if OwnWork::is(&self.shared) {
            log::error!("hangsafe: Runner::wait called from inside the runner's own work");
            return Err(RunError::WaitOnSelf);
        }
        loop {
            if let Some(r) = self.wait_until(None) {
                return r;
            }
        }
    }

    /// Like [`wait`](Self::wait), but gives up after `timeout`, returning
    /// `None` and leaving the runner as it is. A timeout too long for the
    /// clock (such as `Duration::MAX`) saturates: in effect, no timeout.
    ///
    /// # Panics
    ///
    /// If the outcome was already taken.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<Result<T, RunError>> {
        let deadline = Instant::now()
            .checked_add(timeout)
            .unwrap_or_else(far_future);
        self.wait_until(Some(deadline))
    }

    /// Takes the outcome if it is decided, without blocking; `None` while
    /// the work runs. After it returned `Some`, the outcome is gone: a
    /// second call panics, as `wait` does.
    ///
    /// ```
    /// let mut r = hangsafe::runner::spawn(|_| 1 + 1).unwrap();
    /// let out = loop {
    ///     if let Some(out) = r.try_wait() {
    ///         break out;
    ///     }
    ///     std::thread::yield_now();
    /// };
    /// assert_eq!(out, Ok(2));
    /// ```
    ///
    /// # Panics
    ///
    /// If the outcome was already taken.
    pub fn try_wait(&mut self) -> Option<Result<T, RunError>> {
        self.check();
        self.take()
    }

    /// Arranges for `notice` to run once when the outcome is decided (on
    /// the thread that decides it, outside every runner lock). Returns
    /// false, registering nothing, if it is decided already. Replaces any
    /// waiter registered before; only a sole owner (a `RunnerSet`) uses it.
    pub(crate) fn on_decided(&self, notice: Box<dyn FnOnce() + Send>) -> bool {
        self.shared.register(Waiter::Notice(notice))
    }

    fn take(&mut self) -> Option<Result<T, RunError>> {
        assert!(!self.taken, "hangsafe: runner outcome already taken");
        let r = self.shared.take();
        if r.is_some() {
            self.taken = true;
        }
        r
    }

    fn wait_until(&mut self, until: Option<Instant>) -> Option<Result<T, RunError>> {
        // Spin briefly: a trivial job's outcome usually arrives within a
        // microsecond, and parking would add two futex calls. Pause between
        // polls (polling the state word back to back slows the worker's
        // write to it), and yield now and then, so that on a busy machine
        // the worker gets the CPU instead of this loop.
        let start = Instant::now();
        for poll in 1u32.. {
            if let Some(r) = self.take() {
                return Some(r);
            }
            if poll.is_multiple_of(8) {
                if start.elapsed() >= WAIT_SPIN {
                    break;
                }
                std::thread::yield_now();
            } else {
                for _ in 0..16 {
                    std::hint::spin_loop();
                }
            }
        }
        loop {
            let me = std::thread::current();
            super::process::keep_main_thread(&me);
            if !self.shared.register(Waiter::Thread(me)) {
                return self.take();
            }
            // Re-check after registering: the deadline may have passed
            // without the timer having fired yet.
            self.check();
            match until {
                None => std::thread::park(),
                Some(u) => {
                    let now = Instant::now();
                    if now >= u {
                        return self.take();
                    }
                    std::thread::park_timeout(u - now);
                }
            }
            if let Some(r) = self.take() {
                return Some(r);
            }
        }
    }
}

impl<T: Send + 'static> Future for Runner<T> {
    type Output = Result<T, RunError>;

    /// # Panics
    ///
    /// If polled again after it returned `Ready`.
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if let Some(r) = this.take() {
            return Poll::Ready(r);
        }
        this.check();
        if !this.shared.register(Waiter::Task(cx.waker().clone())) {
            if let Some(r) = this.take() {
                return Poll::Ready(r);
            }
        }
        Poll::Pending
    }
}

impl<T: Send + 'static> Drop for Runner<T> {
    fn drop(&mut self) {
        // Released before its outcome was taken: examination answers Gone
        // from now on (R49). A handle whose outcome was taken (a timed-out
        // probe drained from a RunnerSet, say) leaves work that still runs
        // examinable until it returns: that is when "in SG_IO for 41 s"
        // matters most.
        if !self.taken {
            self.shared.examine_cell().release();
        }
        if self.shared.word().state() == State::Running {
            cancel_runner(&self.shared, CancelReason::Released);
        }
        // A value nobody took is dropped here, on the releasing thread,
        // not by whoever drops the context's last reference: that may be a
        // library thread (the timer firing, a pool thread, a token's
        // holder), and a value's destructor is user code that may block
        // (R53). Done is final (a cancel cannot undo it), and only the
        // handle takes.
        if !self.taken && self.shared.word().state() == State::Done {
            self.taken = true;
            drop(self.shared.take());
        }
    }
}

/// Examination of the state the work publishes (see [`crate::examine`]).
impl<T: Send + 'static> Runner<T> {
    /// A handle that examines this runner from any thread and may outlive
    /// it (after which it answers [`Gone`](examine::Error::Gone)). It does not
    /// keep the runner's context alive.
    pub fn examiner(&self) -> Examiner {
        let weak: Weak<dyn Examinable> = Arc::downgrade(&self.shared) as Weak<dyn Examinable>;
        Examiner::new(weak)
    }

    /// Takes a consistent snapshot of the state the work last published,
    /// as an `S`, with the publish it came from (utrace's
    /// `prepare_examine`). Never blocks; bounded even if the worker
    /// publishes continuously.
    ///
    /// # Errors
    ///
    /// * [`Gone`](examine::Error::Gone): the work has returned or panicked;
    /// * [`Unpublished`](examine::Error::Unpublished): nothing published yet;
    /// * [`WrongType`](examine::Error::WrongType): the last state published
    ///   is not an `S`;
    /// * [`Again`](examine::Error::Again): the worker kept publishing and no
    ///   consistent snapshot was taken within the bound; retry.
    pub fn prepare_examine<S: Pod>(&self) -> Result<Ticket<S>, examine::Error> {
        crate::examine::prepare(self.shared.examine_cell(), || self.is_finished())
    }

    /// Checks that the worker has not published since `ticket` was
    /// prepared (utrace's `finish_examine`): `Ok` means the ticket's state
    /// is still the current one, so what the caller concluded from it (and
    /// from anything the worker writes only as part of a later publish)
    /// still holds.
    ///
    /// # Errors
    ///
    /// * [`Again`](examine::Error::Again): the worker published in between;
    /// * [`Gone`](examine::Error::Gone): the work has ended meanwhile;
    /// * [`ForeignTicket`](examine::Error::ForeignTicket): `ticket` was
    ///   prepared on another runner.
    pub fn finish_examine<S>(&self, ticket: &Ticket<S>) -> Result<(), examine::Error> {
        crate::examine::finish(self.shared.examine_cell(), ticket)
    }

    /// Runs `f` on a consistent snapshot of the published state, then
    /// checks it is still current; if the worker published meanwhile, tries
    /// again, up to [`EXAMINE_ATTEMPTS`](crate::examine::EXAMINE_ATTEMPTS)
    /// times, then gives up with [`Again`](examine::Error::Again). `f` may
    /// therefore run more than once; only the result of the run whose
    /// snapshot was still current is returned.
    ///
    /// ```
    /// use hangsafe::examine::{self, Progress};
    ///
    /// let r = hangsafe::runner::spawn(|ctx| {
    ///     ctx.enter_phase("inquiry");
    ///     while !ctx.is_cancelled() {
    ///         std::thread::yield_now();
    ///     }
    /// })
    /// .unwrap();
    /// let phase = loop {
    ///     match r.examine(|p: &Progress| p.phase().to_owned()) {
    ///         Err(examine::Error::Unpublished) => std::thread::yield_now(),
    ///         other => break other,
    ///     }
    /// };
    /// assert_eq!(phase.as_deref(), Ok("inquiry"));
    /// ```
    ///
    /// # Errors
    ///
    /// As [`prepare_examine`](Self::prepare_examine), plus `Again` when
    /// every attempt saw a publish in between.
    pub fn examine<S: Pod, R>(&self, f: impl FnMut(&S) -> R) -> Result<R, examine::Error> {
        crate::examine::examine(self.shared.examine_cell(), || self.is_finished(), f)
    }
}
