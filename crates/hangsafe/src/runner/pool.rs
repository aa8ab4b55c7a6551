//! The thread pool runners run on.
//!
//! Design, in the order a job meets it:
//!
//! * **Direct hand-off.** Idle threads sit on a LIFO stack. `spawn` pops
//!   the most recently idle thread (the one most likely still spinning, with
//!   a warm cache), puts the job in its mailbox and unparks it. No shared
//!   queue, no thundering herd. If no thread is idle, a new one is created
//!   with the job as its first task; if that fails, `spawn` returns
//!   [`SpawnError::ThreadCreate`] and the job is dropped on the caller's
//!   thread. Jobs are never queued behind hung work.
//! * **Short spin, then park.** A thread that finished a job spins for a few
//!   microseconds before parking, so back-to-back runners skip the futex
//!   round trip; after that it parks with the idle timeout and retires when
//!   the timeout expires. An idle process therefore uses no CPU.
//! * **Abandonment.** Work that has not returned `abandon_after` after its
//!   cancel is counted as abandoned (the timer marks it). The thread stays
//!   with its work, and later spawns get fresh threads: the pool "replaces"
//!   it. When the abandoned count reaches `max_abandoned`, spawning fails
//!   with [`SpawnError::TooManyAbandoned`]. An abandoned thread that does
//!   come back is uncounted and reused.

use super::error::SpawnError;
use super::keys::KeySet;
use super::metrics::{Counters, Metrics};
use super::process::{self, JoinSlot};
use crate::cancel::word::CancelWord;
use crate::sync::{lock, Arc, AtomicBool, AtomicUsize, Mutex, MutexGuard, Ordering};
use std::collections::HashSet;
use std::io;
use std::sync::OnceLock;
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

/// A unit of work for a pool thread: runs a runner's job on the thread
/// whose cancel word is given. The job calls `ready` once the work has
/// returned and just before it publishes the outcome, so the thread is back
/// on the idle stack by the time the caller sees the result: a caller that
/// spawns again at once reuses this thread instead of creating one.
pub(crate) type Job = Box<dyn FnOnce(&Arc<CancelWord>, &mut dyn FnMut()) + Send + 'static>;

/// How long a thread that just went idle spins before parking.
const SPIN: Duration = Duration::from_micros(50);

/// Default configuration values; see [`PoolBuilder`].
const DEFAULT_STACK: usize = 256 * 1024;
const DEFAULT_IDLE: Duration = Duration::from_secs(10);
const DEFAULT_MAX_THREADS: usize = 4096;
const DEFAULT_MAX_ABANDONED: usize = 256;
const DEFAULT_ABANDON_AFTER: Duration = Duration::from_millis(250);

#[derive(Clone, Debug)]
pub(crate) struct Config {
    pub(crate) stack_size: usize,
    pub(crate) idle_timeout: Duration,
    pub(crate) max_threads: usize,
    pub(crate) max_abandoned: usize,
    pub(crate) abandon_after: Duration,
    pub(crate) name: String,
}

/// Configures a [`Pool`].
///
/// ```
/// use std::time::Duration;
/// let pool = hangsafe::runner::Pool::builder()
///     .stack_size(64 * 1024)
///     .idle_timeout(Duration::from_secs(1))
///     .max_abandoned(8)
///     .build();
/// let r = pool.spawn(|_| 6 * 7).unwrap();
/// assert_eq!(r.wait(), Ok(42));
/// ```
#[derive(Clone, Debug)]
pub struct PoolBuilder(Config);

impl Default for PoolBuilder {
    fn default() -> Self {
        PoolBuilder(Config {
            stack_size: DEFAULT_STACK,
            idle_timeout: DEFAULT_IDLE,
            max_threads: DEFAULT_MAX_THREADS,
            max_abandoned: DEFAULT_MAX_ABANDONED,
            abandon_after: DEFAULT_ABANDON_AFTER,
            name: String::from("hangsafe"),
        })
    }
}

impl PoolBuilder {
    /// Stack size of pool threads (default 256 KiB). Raised to the
    /// platform's `PTHREAD_STACK_MIN` if smaller.
    pub fn stack_size(mut self, bytes: usize) -> Self {
        self.0.stack_size = bytes.max(libc::PTHREAD_STACK_MIN);
        self
    }

    /// How long a thread stays idle before it exits (default 10 s). Zero
    /// retires a thread as soon as its short post-job spin ends. A timeout
    /// too long for the clock (such as `Duration::MAX`) means idle threads
    /// never time out; they still exit when the pool is dropped.
    pub fn idle_timeout(mut self, d: Duration) -> Self {
        self.0.idle_timeout = d;
        self
    }

    /// The most threads the pool creates, abandoned ones included
    /// (default 4096). At the limit, spawn fails with
    /// [`SpawnError::PoolFull`] unless a thread is idle.
    pub fn max_threads(mut self, n: usize) -> Self {
        self.0.max_threads = n.max(1);
        self
    }

    /// The cap on abandoned threads (default 256): while that many threads
    /// are abandoned, spawning fails with
    /// [`SpawnError::TooManyAbandoned`]. 0 refuses new work while any
    /// thread is abandoned.
    pub fn max_abandoned(mut self, n: usize) -> Self {
        self.0.max_abandoned = n;
        self
    }

    /// How long cancelled work may keep running before its thread counts as
    /// abandoned (default 250 ms). A duration too long for the clock (such
    /// as `Duration::MAX`) means cancelled work is never counted as
    /// abandoned. Never panics, whatever the value.
    pub fn abandon_after(mut self, d: Duration) -> Self {
        self.0.abandon_after = d;
        self
    }

    /// Prefix of the pool's thread names (default `"hangsafe"`). A name
    /// with a NUL byte cannot name a thread: every spawn on such a pool
    /// then fails with [`SpawnError::ThreadCreate`] (`InvalidInput`).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.0.name = name.into();
        self
    }

    /// Creates the pool. No thread is started until the first spawn.
    pub fn build(self) -> Pool {
        let inner = Arc::new(PoolInner {
            cfg: self.0,
            counters: Arc::new(Counters::default()),
            keys: Arc::new(KeySet::default()),
            idle: Idle {
                list: Mutex::new(Vec::new()),
            },
            shutdown: AtomicBool::new(false),
            next_id: AtomicUsize::new(0),
        });
        process::register(&inner);
        Pool {
            _owner: Arc::new(Owner(Arc::clone(&inner))),
            inner,
        }
    }
}

/// A pool of threads for runners.
///
/// Cloning is cheap and shares the pool. When the last clone is dropped,
/// idle threads exit; threads still running work exit when it returns.
/// Most programs use [`Pool::global`] through
/// [`spawn`](crate::runner::spawn) and never create one.
#[derive(Clone)]
pub struct Pool {
    pub(crate) inner: Arc<PoolInner>,
    _owner: Arc<Owner>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("name", &self.inner.cfg.name)
            .field("metrics", &self.metrics())
            .finish()
    }
}

/// Shuts the pool down when the last user-facing clone goes.
struct Owner(Arc<PoolInner>);

impl Drop for Owner {
    fn drop(&mut self) {
        self.0.shutdown.store(true, Ordering::SeqCst);
        for w in lock(&self.0.idle.list).iter() {
            w.thread.unpark();
        }
    }
}

pub(crate) struct PoolInner {
    pub(crate) cfg: Config,
    pub(crate) counters: Arc<Counters>,
    pub(crate) keys: Arc<KeySet>,
    idle: Idle,
    shutdown: AtomicBool,
    next_id: AtomicUsize,
}

/// The idle stack. Its length is mirrored into `threads_idle` with a plain
/// store under the lock, so metrics cost the hot path no read-modify-write.
struct Idle {
    list: Mutex<Vec<Arc<Worker>>>,
}

impl Idle {
    fn push(&self, w: Arc<Worker>, counters: &Counters) {
        let mut l = lock(&self.list);
        l.push(w);
        counters
            .threads_idle
            .store(l.len() as u64, Ordering::Relaxed);
    }

    fn pop(&self, counters: &Counters) -> Option<Arc<Worker>> {
        let mut l = lock(&self.list);
        let w = l.pop();
        counters
            .threads_idle
            .store(l.len() as u64, Ordering::Relaxed);
        w
    }

    /// Removes `me`; false if it is no longer on the stack.
    fn remove(&self, me: &Arc<Worker>, counters: &Counters) -> bool {
        let mut l = lock(&self.list);
        match l.iter().position(|w| Arc::ptr_eq(w, me)) {
            Some(pos) => {
                l.remove(pos);
                counters
                    .threads_idle
                    .store(l.len() as u64, Ordering::Relaxed);
                true
            }
            None => false,
        }
    }
}

/// One pool thread, as seen from the pool.
struct Worker {
    word: Arc<CancelWord>,
    mailbox: Mutex<Option<Job>>,
    full: AtomicBool,
    thread: Thread,
    /// The process generation the thread was created in: in a fork child,
    /// a worker of an older generation is the forking thread's copy (fork
    /// called from inside work), which finishes its job and exits.
    gen: u64,
    /// Who joins or detaches the thread (the exit hook joins idle ones).
    join: Arc<JoinSlot>,
}

impl Pool {
    /// The process-wide pool used by [`spawn`](crate::runner::spawn) and
    /// [`Builder`](crate::runner::Builder) by default.
    pub fn global() -> &'static Pool {
        static GLOBAL: OnceLock<Pool> = OnceLock::new();
        GLOBAL.get_or_init(Pool::new)
    }

    /// A pool with the default configuration.
    pub fn new() -> Pool {
        PoolBuilder::default().build()
    }

    /// Configures a new pool.
    pub fn builder() -> PoolBuilder {
        PoolBuilder::default()
    }

    /// Spawns a runner on this pool; see [`spawn`](crate::runner::spawn).
    pub fn spawn<F, T>(&self, f: F) -> Result<super::Runner<T>, SpawnError>
    where
        F: FnOnce(&super::Ctx<'_>) -> T + Send + 'static,
        T: Send + 'static,
    {
        super::Builder::new().pool(self).spawn(f)
    }

    /// A snapshot of the pool's counters.
    pub fn metrics(&self) -> Metrics {
        self.inner.counters.snapshot()
    }
}

impl Default for Pool {
    fn default() -> Self {
        Pool::new()
    }
}

impl PoolInner {
    /// Refuses new work while the abandoned cap is reached.
    pub(crate) fn admit(&self) -> Result<(), SpawnError> {
        let abandoned = self.counters.abandoned_now.load(Ordering::Relaxed);
        if abandoned > 0 && abandoned >= self.cfg.max_abandoned as u64 {
            return Err(SpawnError::TooManyAbandoned {
                max_abandoned: self.cfg.max_abandoned,
            });
        }
        Ok(())
    }

    /// Hands `job` to an idle thread, or to a new one.
    pub(crate) fn dispatch(self: &Arc<Self>, job: Job) -> Result<(), SpawnError> {
        if let Some(w) = self.idle.pop(&self.counters) {
            w.give(job);
            return Ok(());
        }
        // std refuses (panics on) a thread name with a NUL byte.
        if self.cfg.name.contains('\0') {
            log::error!("hangsafe: the pool's thread name contains a NUL byte");
            return Err(SpawnError::ThreadCreate(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the pool's thread name contains a NUL byte",
            )));
        }
        let alive = self.counters.threads_alive.fetch_add(1, Ordering::Relaxed);
        if alive >= self.cfg.max_threads as u64 {
            Counters::dec(&self.counters.threads_alive);
            return Err(SpawnError::PoolFull {
                max_threads: self.cfg.max_threads,
            });
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let pool = Arc::clone(self);
        process::ensure_hooks();
        let slot = Arc::new(JoinSlot::default());
        let theirs = Arc::clone(&slot);
        // Created with every asynchronous signal blocked (H10): no window
        // in which a process-directed signal can land on the new thread.
        let spawned = crate::cancel::with_signals_blocked(|| {
            thread::Builder::new()
                .name(format!("{}-{id}", self.cfg.name))
                .stack_size(self.cfg.stack_size)
                .spawn(move || pool.worker_main(job, theirs))
        });
        match spawned {
            Ok(handle) => {
                slot.set(handle);
                Ok(())
            }
            Err(e) => {
                Counters::dec(&self.counters.threads_alive);
                log::error!("hangsafe: cannot create a runner thread: {e}");
                Err(SpawnError::ThreadCreate(e))
            }
        }
    }

    fn worker_main(self: Arc<Self>, first: Job, join: Arc<JoinSlot>) {
        let me = Arc::new(Worker {
            // The thread's own word: what the stub and the signal handler
            // of this thread see (and retired when the thread exits).
            word: crate::cancel::thread::current(),
            mailbox: Mutex::new(None),
            full: AtomicBool::new(false),
            thread: thread::current(),
            gen: crate::cancel::thread::fork_generation(),
            join,
        });
        log::debug!("hangsafe: runner thread started");
        let mut job = Some(first);
        while let Some(j) = job.take() {
            // Every job starts with the pool thread's own mask, whatever the
            // previous job did to it: all asynchronous signals blocked but
            // the cancel signal (H10, H11).
            crate::cancel::reset_internal_mask();
            let mut idle = false;
            j(&me.word, &mut || {
                if !self.shutdown.load(Ordering::SeqCst) && me.is_of_this_process() {
                    self.idle.push(Arc::clone(&me), &self.counters);
                    idle = true;
                }
            });
            if !idle {
                break;
            }
            job = me.wait_for_job(&self);
        }
        // R7: from here on no canceller can target this thread.
        me.word.retire();
        // A fork child's copy of a parent worker was never counted there.
        if me.is_of_this_process() {
            Counters::dec(&self.counters.threads_alive);
        }
        me.join.release_self();
        log::debug!("hangsafe: runner thread exits");
    }

    /// For the fork prepare handler: takes this pool's locks, so that the
    /// child inherits them unlocked and consistent (see [`process`]).
    pub(crate) fn hold_for_fork(self: &Arc<Self>) -> ForkHold {
        let idle = lock(&self.idle.list);
        let keys = self.keys.lock_all();
        // SAFETY: both guards borrow from `*self`, which `pool` (an Arc
        // clone) keeps alive at the same address for as long as the
        // ForkHold exists; the guards are fields declared before `pool`,
        // so they are dropped (unlocked) before it.
        unsafe {
            ForkHold {
                idle: std::mem::transmute::<
                    MutexGuard<'_, Vec<Arc<Worker>>>,
                    MutexGuard<'static, Vec<Arc<Worker>>>,
                >(idle),
                keys: std::mem::transmute::<
                    MutexGuard<'_, HashSet<Arc<str>>>,
                    MutexGuard<'static, HashSet<Arc<str>>>,
                >(keys),
                pool: Arc::clone(self),
            }
        }
    }

    /// For the exit hook: takes every idle thread off the idle stack (so
    /// no spawn can hand it work), tells it to exit, and returns the
    /// threads to join. Gives up on the lock at `until` (it is held only
    /// for a few stores, unless exit interrupted its holder).
    pub(crate) fn stop_idle_at_exit(&self, until: std::time::Instant) -> Vec<libc::pthread_t> {
        let Some(mut list) = process::lock_until(&self.idle.list, until) else {
            return Vec::new();
        };
        let idle: Vec<Arc<Worker>> = list.drain(..).collect();
        self.counters.threads_idle.store(0, Ordering::Relaxed);
        drop(list);
        let mut threads = Vec::with_capacity(idle.len());
        for w in idle {
            if let Some(t) = w.join.claim(until) {
                threads.push(t);
            }
            // A job that does not call `ready` ends the worker's loop.
            w.give(Box::new(|_, _| {}));
        }
        threads
    }
}

/// A pool's locks, held by the forking thread across `fork` (prepare to
/// parent/child handler).
pub(crate) struct ForkHold {
    idle: MutexGuard<'static, Vec<Arc<Worker>>>,
    keys: MutexGuard<'static, HashSet<Arc<str>>>,
    pool: Arc<PoolInner>,
}

impl ForkHold {
    /// In the fork child (its only thread): the pool's threads do not exist
    /// here. Forgets the idle ones, frees every key (their runners' work
    /// runs only in the parent), and zeroes the thread counters; then
    /// unlocks. Runners already decided keep their counts.
    pub(crate) fn reset_in_child(mut self) {
        // Dropping these Arcs only decrements them: each worker is still
        // referenced by its (parent) thread's copy of `me`, and nothing in
        // a Worker's drop touches the thread it names.
        self.idle.clear();
        self.keys.clear();
        let c = &self.pool.counters;
        c.threads_idle.store(0, Ordering::Relaxed);
        c.threads_alive.store(0, Ordering::Relaxed);
        c.abandoned_now.store(0, Ordering::Relaxed);
    }
}

impl PoolInner {
    /// Removes `me` from the idle stack. False if a spawner popped it first
    /// (and therefore a job is on its way).
    fn leave_idle(&self, me: &Arc<Worker>) -> bool {
        self.idle.remove(me, &self.counters)
    }
}

impl Worker {
    /// Whether this thread was created in this process (not in a parent
    /// before a fork).
    fn is_of_this_process(&self) -> bool {
        self.gen == crate::cancel::thread::fork_generation()
    }

    fn give(&self, job: Job) {
        *lock(&self.mailbox) = Some(job);
        self.full.store(true, Ordering::Release);
        self.thread.unpark();
    }

    fn take(&self) -> Option<Job> {
        self.full.store(false, Ordering::Relaxed);
        lock(&self.mailbox).take()
    }

    /// Waits for a job; `None` means the thread should exit (idle timeout or
    /// shutdown, and nobody popped it from the idle stack).
    ///
    /// The thread is on the idle stack while it waits, so it must come out
    /// of here either with the job a spawner handed it or off the stack:
    /// should the waiting itself ever panic, the thread leaves the stack
    /// (or takes the job already on its way) instead of dying on it, which
    /// would swallow the next spawn's job (H3).
    fn wait_for_job(self: &Arc<Self>, pool: &PoolInner) -> Option<Job> {
        let wait = std::panic::AssertUnwindSafe(|| self.wait_for_job_inner(pool));
        match std::panic::catch_unwind(wait) {
            Ok(job) => job,
            Err(_) => {
                log::error!("hangsafe: internal error: an idle pool thread panicked; it recovers");
                self.leave_or_take(pool)
            }
        }
    }

    /// Leaves the idle stack (`None`: exit), or, if a spawner popped this
    /// thread first, waits for the job it is handing over.
    fn leave_or_take(self: &Arc<Self>, pool: &PoolInner) -> Option<Job> {
        if pool.leave_idle(self) {
            return None;
        }
        // A spawner popped us and is about to hand a job over.
        while !self.full.load(Ordering::Acquire) {
            thread::park();
        }
        self.take()
    }

    fn wait_for_job_inner(self: &Arc<Self>, pool: &PoolInner) -> Option<Job> {
        // Spin briefly (back-to-back runners then skip the futex round
        // trip), pausing between polls and yielding now and then so that a
        // busy machine's runnable threads are not starved by this loop.
        let start = Instant::now();
        for poll in 1u32.. {
            if self.full.load(Ordering::Acquire) {
                return self.take();
            }
            if poll.is_multiple_of(8) {
                if start.elapsed() >= SPIN {
                    break;
                }
                thread::yield_now();
            } else {
                for _ in 0..16 {
                    std::hint::spin_loop();
                }
            }
        }
        // `None`: an idle timeout past the clock's range, i.e. never (H3).
        let deadline = start.checked_add(pool.cfg.idle_timeout);
        loop {
            if self.full.load(Ordering::Acquire) {
                return self.take();
            }
            let now = Instant::now();
            let expired = deadline.is_some_and(|d| now >= d);
            if expired || pool.shutdown.load(Ordering::SeqCst) {
                return self.leave_or_take(pool);
            }
            match deadline {
                Some(d) => thread::park_timeout(d.saturating_duration_since(now)),
                None => thread::park(),
            }
        }
    }
}
