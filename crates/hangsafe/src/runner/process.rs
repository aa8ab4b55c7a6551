//! Process-level life of hangsafe's threads: `fork` and process exit.
//!
//! Registered once, when the first pool thread or the timer thread starts:
//!
//! * **`pthread_atfork`.** After `fork`, only the forking thread exists in
//!   the child; every other pool thread, and the timer thread, exist only
//!   in the parent. Without care, the child's spawn would hand work to an
//!   idle thread of the parent (the job never runs) and no deadline would
//!   be enforced (H7, H8). A lock that another thread held at the moment
//!   of the fork would stay locked forever in the child, so the handlers
//!   follow the design glibc uses for malloc's locks: the *prepare*
//!   handler takes the pool-level locks (the pool registry, each pool's
//!   idle stack and key set, the cancel signal's installation lock) in
//!   that order, the *parent* handler releases them, and the *child*
//!   handler, running in the child's only thread with the locks in hand,
//!   resets the state (no idle threads, no thread counted alive, no keys
//!   held, a new process generation so that cancel words of the parent's
//!   threads are never signalled, and the timer restarted lazily) and
//!   releases them. No lock is ever taken in the child that another
//!   thread could have held.
//! * **`atexit`.** At process exit (return from Rust `main`, `exit()` in
//!   C), idle pool threads and the timer thread are told to stop and are
//!   joined, within [`EXIT_BOUND`] in total, so that tools that check for
//!   leaks at exit (valgrind) see no thread of hangsafe's that was merely
//!   idle (issue "Clean exit"). Threads that run work are left alone:
//!   exit never waits for work. Locks are only tried until the bound, so
//!   an `exit` from a signal handler or from inside work cannot deadlock
//!   here.

use super::pool::PoolInner;
use crate::sync::{lock, Arc, Mutex, MutexGuard};
use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{TryLockError, Weak};
use std::time::{Duration, Instant};

/// How long the exit hook may spend stopping and joining idle threads and
/// the timer, in total.
pub(crate) const EXIT_BOUND: Duration = Duration::from_secs(2);

/// Every pool built in this process (weak: a registry must not keep a
/// dropped pool alive). Pruned on registration.
static POOLS: Mutex<Vec<Weak<PoolInner>>> = Mutex::new(Vec::new());

/// Whether the hooks are registered. A flag, not a `Once`: a `Once` that
/// another thread is running at the moment of a fork stays "running"
/// forever in the child.
static HOOKS: AtomicBool = AtomicBool::new(false);

/// Adds a new pool to the registry the fork and exit hooks walk.
pub(crate) fn register(pool: &Arc<PoolInner>) {
    let mut pools = lock(&POOLS);
    pools.retain(|w| w.strong_count() > 0);
    pools.push(Arc::downgrade(pool));
}

/// Registers the fork handlers and the exit hook, once per process. Called
/// before the first pool thread or timer thread is created.
pub(crate) fn ensure_hooks() {
    if HOOKS.load(Ordering::Acquire) || HOOKS.swap(true, Ordering::AcqRel) {
        return;
    }
    {
        // SAFETY: the three handlers are `extern "C" fn()`s that live as
        // long as the process (static functions of this crate; see
        // `-z nodelete` for the shared C library) and follow the rules of
        // fork handlers described in the module docs.
        let r = unsafe {
            libc::pthread_atfork(
                Some(before_fork),
                Some(after_fork_parent),
                Some(after_fork_child),
            )
        };
        if r != 0 {
            log::error!("hangsafe: pthread_atfork failed ({r}); a fork child must exec at once");
        }
        // SAFETY: as above, a static function.
        if unsafe { libc::atexit(at_exit) } != 0 {
            log::warn!("hangsafe: atexit failed; idle threads are not joined at exit");
        }
    }
}

// ---- fork -------------------------------------------------------------------

/// What the prepare handler holds until the parent or child handler runs.
struct Held {
    pools: Vec<super::pool::ForkHold>,
    _install: MutexGuard<'static, ()>,
    _registry: MutexGuard<'static, Vec<Weak<PoolInner>>>,
}

thread_local! {
    /// The forking thread's locks, between the fork handlers (all three run
    /// on that thread; in the child, on its copy).
    static HELD: RefCell<Option<Held>> = const { RefCell::new(None) };
}

extern "C" fn before_fork() {
    // One-time initialisations that another thread may be running right
    // now: finish them here, or the child would inherit them "in progress"
    // forever (a pool thread of the child would wait for the cancel
    // signal's installation that never completes).
    crate::cancel::thread::ensure_signal_installed();
    let _ = super::pool::Pool::global();
    // Lock order: registry, then each pool's idle stack and key set, then
    // the installation lock. Nothing in hangsafe takes them in another
    // order, and none is held while waiting for anything else.
    let registry = lock(&POOLS);
    let pools = registry
        .iter()
        .filter_map(Weak::upgrade)
        .map(|p| p.hold_for_fork())
        .collect();
    let install = crate::cancel::install_lock();
    HELD.with(|h| {
        *h.borrow_mut() = Some(Held {
            pools,
            _install: install,
            _registry: registry,
        })
    });
}

extern "C" fn after_fork_parent() {
    // Releases everything (the pools' locks first: field order).
    HELD.with(|h| drop(h.borrow_mut().take()));
}

extern "C" fn after_fork_child() {
    crate::cancel::thread::after_fork_child();
    super::timer::after_fork_child();
    HELD.with(|h| {
        if let Some(held) = h.borrow_mut().take() {
            for p in held.pools {
                p.reset_in_child();
            }
        }
    });
}

// ---- exit -------------------------------------------------------------------

/// Locks `m`, trying until `until`; `None` if it stayed locked (its holder
/// may be the thread that is exiting, interrupted by a signal).
pub(crate) fn lock_until<T>(m: &Mutex<T>, until: Instant) -> Option<MutexGuard<'_, T>> {
    loop {
        match m.try_lock() {
            Ok(g) => return Some(g),
            Err(TryLockError::Poisoned(p)) => return Some(p.into_inner()),
            Err(TryLockError::WouldBlock) => {
                if Instant::now() >= until {
                    return None;
                }
                std::thread::yield_now();
            }
        }
    }
}

extern "C" fn at_exit() {
    // Nothing may unwind out of an atexit handler.
    let _ = std::panic::catch_unwind(stop_idle_threads);
}

/// Stops and joins the idle pool threads and the timer thread of this
/// process, within [`EXIT_BOUND`].
fn stop_idle_threads() {
    let until = Instant::now() + EXIT_BOUND;
    let mut threads = Vec::new();
    if let Some(registry) = lock_until(&POOLS, until) {
        let pools: Vec<_> = registry.iter().filter_map(Weak::upgrade).collect();
        drop(registry);
        for p in &pools {
            threads.extend(p.stop_idle_at_exit(until));
        }
    }
    threads.extend(super::timer::stop_at_exit(until));
    for t in threads {
        join_until(t, until);
    }
}

/// Joins `t`, waiting at most until `until`; detaches it if it has not
/// ended by then.
fn join_until(t: libc::pthread_t, until: Instant) {
    let left = until.saturating_duration_since(Instant::now());
    // SAFETY: a zeroed timespec, then filled by clock_gettime.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: writes the current CLOCK_REALTIME time into `ts`
    // (pthread_timedjoin_np measures against CLOCK_REALTIME).
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
    let nanos = ts.tv_nsec as u64 + u64::from(left.subsec_nanos());
    ts.tv_sec = ts
        .tv_sec
        .saturating_add(left.as_secs().min(3600) as libc::time_t)
        .saturating_add((nanos / 1_000_000_000) as libc::time_t);
    ts.tv_nsec = (nanos % 1_000_000_000) as _;
    // SAFETY: `t` is a joinable thread of this process that only this
    // function joins or detaches (ownership passed through `JoinSlot`).
    let r = unsafe { libc::pthread_timedjoin_np(t, std::ptr::null_mut(), &ts) };
    if r != 0 {
        // SAFETY: as above; not joined, so still ours to detach.
        unsafe { libc::pthread_detach(t) };
    }
}

/// Who ends a pool thread's `pthread_t`: joined by the exit hook, or
/// detached (by itself when it exits normally, or by its spawner if it
/// exited before the spawner stored the handle).
#[derive(Default)]
pub(crate) struct JoinSlot(Mutex<SlotState>);

#[derive(Default)]
enum SlotState {
    /// The spawner has not stored the handle yet.
    #[default]
    Empty,
    /// Joinable, nobody has claimed it.
    Handle(libc::pthread_t),
    /// The thread has exited (or is exiting) and wants to be detached.
    Exited,
    /// Detached, or handed to the exit hook to join.
    Done,
}

impl JoinSlot {
    /// The spawner stores the new thread's handle.
    pub(crate) fn set(&self, handle: std::thread::JoinHandle<()>) {
        use std::os::unix::thread::JoinHandleExt;
        let t = handle.into_pthread_t();
        let mut s = lock(&self.0);
        match *s {
            SlotState::Exited => {
                // SAFETY: `t` is joinable and owned by nobody else.
                unsafe { libc::pthread_detach(t) };
                *s = SlotState::Done;
            }
            _ => *s = SlotState::Handle(t),
        }
    }

    /// The thread itself, as it exits normally: detach unless the exit hook
    /// claimed it.
    pub(crate) fn release_self(&self) {
        let mut s = lock(&self.0);
        match *s {
            SlotState::Handle(t) => {
                // SAFETY: `t` is this very thread, joinable, unclaimed.
                unsafe { libc::pthread_detach(t) };
                *s = SlotState::Done;
            }
            SlotState::Empty => *s = SlotState::Exited,
            SlotState::Exited | SlotState::Done => {}
        }
    }

    /// The exit hook takes the handle to join it.
    pub(crate) fn claim(&self, until: Instant) -> Option<libc::pthread_t> {
        let mut s = lock_until(&self.0, until)?;
        match *s {
            SlotState::Handle(t) => {
                *s = SlotState::Done;
                Some(t)
            }
            _ => None,
        }
    }
}

/// Keeps a clone of the main thread's `std` handle, if `t` is it.
///
/// `Runner::wait` parks, so it calls `std::thread::current()` on the
/// caller's thread. On the main thread, `std` creates that handle lazily
/// and keeps only a pointer into the middle of its allocation in a
/// thread-local, which valgrind's leak check reports as "possibly lost"
/// at exit (any Rust program that calls `thread::current()` on its main
/// thread shows it). A clone held here is a pointer to the start of the
/// allocation, so the block is "still reachable": a program that uses
/// runners stays clean under `--show-possibly-lost=yes
/// --errors-for-leak-kinds=definite,possible`.
pub(crate) fn keep_main_thread(t: &std::thread::Thread) {
    static MAIN: std::sync::OnceLock<std::thread::Thread> = std::sync::OnceLock::new();
    thread_local! {
        static ASKED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }
    if MAIN.get().is_some() || ASKED.with(|a| a.replace(true)) {
        return;
    }
    // SAFETY: getpid and gettid have no preconditions.
    if unsafe { libc::getpid() == libc::gettid() } {
        let _ = MAIN.set(t.clone());
    }
}
