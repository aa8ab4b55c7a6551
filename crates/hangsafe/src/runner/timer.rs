//! The deadline timer: one thread, a binary heap, and weak references.
//!
//! Deadlines are enforced proactively: at a runner's deadline the timer
//! cancels it even if nobody calls `check()`, so that cancellation can reach
//! the work on time. The same timer fires the abandonment check a grace
//! period after each cancel.
//!
//! Entries hold `Weak` references, so a runner that ended and was released
//! is freed at once; its stale entry is skipped when it fires (R4). To keep
//! memory bounded when many runners with far deadlines finish early, the
//! heap is compacted (dead and decided entries dropped) whenever it doubles
//! past its last compacted size. With an empty heap the thread sleeps on a
//! condition variable without a timeout: an idle process uses no CPU.

use std::cmp::Ordering as CmpOrdering;
use std::collections::BinaryHeap;
use std::io;
use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock, Weak};
use std::time::Instant;

/// What a timer entry does when it fires.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TimerKind {
    /// Cancel the runner if it is still running.
    Deadline,
    /// Mark the runner abandoned if its work has not returned.
    AbandonCheck,
}

/// Something the timer can fire on.
pub(crate) trait TimerTarget: Send + Sync {
    /// Fires `kind`; a target that has moved on ignores it.
    fn fire(self: Arc<Self>, kind: TimerKind);
    /// Whether firing `kind` could still do anything (used to compact).
    fn pending(&self, kind: TimerKind) -> bool;
}

struct Entry {
    when: Instant,
    seq: u64,
    kind: TimerKind,
    target: Weak<dyn TimerTarget>,
}

impl PartialEq for Entry {
    fn eq(&self, o: &Self) -> bool {
        self.when == o.when && self.seq == o.seq
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, o: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(o))
    }
}
impl Ord for Entry {
    // Reversed: BinaryHeap is a max-heap and we want the earliest first.
    fn cmp(&self, o: &Self) -> CmpOrdering {
        (o.when, o.seq).cmp(&(self.when, self.seq))
    }
}

struct Inner {
    heap: BinaryHeap<Entry>,
    seq: u64,
    compact_at: usize,
    /// Set by the exit hook: the thread returns.
    stop: bool,
}

struct Timer {
    inner: Mutex<Inner>,
    cv: Condvar,
    /// The thread's `pthread_t`, for the exit hook to join (0: not stored
    /// yet, or already taken).
    thread: AtomicU64,
}

const MIN_COMPACT: usize = 1024;

/// One incarnation of the timer. A fork child (whose timer thread exists
/// only in the parent) and the exit hook (which stops the thread) start a
/// new epoch; the next `timer()` call then starts a new timer thread.
/// Incarnations are never freed: an old one is kept reachable through
/// `_prev` (the parent's heap may still be referenced by copies of the
/// parent's threads' stacks in the child's memory).
struct Incarnation {
    epoch: u64,
    timer: OnceLock<Result<&'static Timer, io::ErrorKind>>,
    _prev: *const Incarnation,
}

/// The current epoch (see [`Incarnation`]).
static EPOCH: AtomicU64 = AtomicU64::new(0);
/// The current incarnation, null before the first use.
static CURRENT: AtomicPtr<Incarnation> = AtomicPtr::new(std::ptr::null_mut());

/// The incarnation of the current epoch, created on first use.
fn incarnation() -> &'static Incarnation {
    let epoch = EPOCH.load(Ordering::Acquire);
    let mut cur = CURRENT.load(Ordering::Acquire);
    loop {
        // SAFETY: a non-null CURRENT points to a leaked, never freed
        // Incarnation.
        if let Some(inc) = unsafe { cur.as_ref() } {
            if inc.epoch == epoch {
                return inc;
            }
        }
        let new = Box::into_raw(Box::new(Incarnation {
            epoch,
            timer: OnceLock::new(),
            _prev: cur,
        }));
        match CURRENT.compare_exchange(cur, new, Ordering::AcqRel, Ordering::Acquire) {
            // SAFETY: just leaked; never freed.
            Ok(_) => return unsafe { &*new },
            Err(seen) => {
                // SAFETY: `new` was never shared; freeing our own box.
                drop(unsafe { Box::from_raw(new) });
                cur = seen;
            }
        }
    }
}

fn timer() -> io::Result<&'static Timer> {
    let r = incarnation().timer.get_or_init(|| {
        let t: &'static Timer = Box::leak(Box::new(Timer {
            inner: Mutex::new(Inner {
                heap: BinaryHeap::new(),
                seq: 0,
                compact_at: MIN_COMPACT,
                stop: false,
            }),
            cv: Condvar::new(),
            thread: AtomicU64::new(0),
        }));
        super::process::ensure_hooks();
        // Every asynchronous signal blocked, from its first instruction
        // (H10): process-directed signals go to the application.
        crate::cancel::with_signals_blocked(|| {
            std::thread::Builder::new()
                .name("hangsafe-timer".into())
                .stack_size(64 * 1024)
                .spawn(move || t.run())
        })
        .map(|h| {
            use std::os::unix::thread::JoinHandleExt;
            // `pthread_t` is a `c_ulong`: u64 on the supported targets.
            #[allow(clippy::unnecessary_cast)]
            let raw = h.into_pthread_t() as u64;
            t.thread.store(raw, Ordering::Release);
            t
        })
        .map_err(|e| e.kind())
    });
    match r {
        Ok(t) => Ok(t),
        Err(kind) => Err(io::Error::new(
            *kind,
            "cannot start the hangsafe deadline timer thread",
        )),
    }
}

/// For the fork child handler: the timer thread does not exist in the
/// child; the next use starts a new one. Lock-free, allocates nothing.
pub(crate) fn after_fork_child() {
    EPOCH.fetch_add(1, Ordering::AcqRel);
}

/// For the exit hook: stops this process's timer thread, if it runs, and
/// returns it to be joined. A later deadline (from another exit handler)
/// starts a new timer.
pub(crate) fn stop_at_exit(until: std::time::Instant) -> Option<libc::pthread_t> {
    let cur = CURRENT.load(Ordering::Acquire);
    // SAFETY: see `incarnation`.
    let inc = unsafe { cur.as_ref() }?;
    if inc.epoch != EPOCH.load(Ordering::Acquire) {
        return None; // the parent's timer, in a fork child
    }
    let t = *inc.timer.get()?.as_ref().ok()?;
    EPOCH.fetch_add(1, Ordering::AcqRel);
    let mut g = super::process::lock_until(&t.inner, until)?;
    g.stop = true;
    drop(g);
    t.cv.notify_all();
    match t.thread.swap(0, Ordering::AcqRel) {
        0 => None,
        #[allow(clippy::unnecessary_cast)] // see `timer()`
        th => Some(th as libc::pthread_t),
    }
}

// SAFETY: `_prev` is only a keep-alive link to a leaked, immutable-after-
// publication Incarnation; nothing is ever read through it.
unsafe impl Send for Incarnation {}
// SAFETY: as above.
unsafe impl Sync for Incarnation {}

/// Makes sure the timer thread runs, so that a later [`schedule`] cannot
/// fail. Call before committing to a runner with a deadline.
pub(crate) fn ensure_started() -> io::Result<()> {
    timer().map(|_| ())
}

/// Fires `kind` on `target` at `when` (or at once if `when` has passed).
/// Does nothing if the timer could not be started; callers that need the
/// guarantee call [`ensure_started`] first.
pub(crate) fn schedule(when: Instant, kind: TimerKind, target: Weak<dyn TimerTarget>) {
    let t = match timer() {
        Ok(t) => t,
        Err(e) => {
            // Never silent: this entry will not fire (H2).
            log::error!("hangsafe: {e}: a {kind:?} timer entry is dropped");
            return;
        }
    };
    let mut g = crate::sync::lock(&t.inner);
    let seq = g.seq;
    // Only breaks ties between equal instants; wrapping is harmless.
    g.seq = g.seq.wrapping_add(1);
    let earliest = g.heap.peek().is_none_or(|top| when < top.when);
    g.heap.push(Entry {
        when,
        seq,
        kind,
        target,
    });
    // The references compaction takes are dropped after the lock: one of
    // them may turn out to be a context's last, and dropping a context
    // under the timer's lock would run its destructors there (R53).
    let mut seen: Vec<Arc<dyn TimerTarget>> = Vec::new();
    if g.heap.len() >= g.compact_at {
        g.heap.retain(|e| match e.target.upgrade() {
            Some(t) => {
                let keep = t.pending(e.kind);
                seen.push(t);
                keep
            }
            None => false,
        });
        g.compact_at = g.heap.len().saturating_mul(2).max(MIN_COMPACT);
    }
    drop(g);
    drop(seen);
    if earliest {
        t.cv.notify_one();
    }
}

impl Timer {
    /// The timer thread's body. It returns only when the timer is stopped
    /// (at process exit): a panic in hangsafe's own bookkeeping (firing an
    /// entry is caught one by one in [`fire_due`](Self::fire_due)) is
    /// logged and the loop restarts, so deadlines stay enforced for the
    /// whole process (H2).
    fn run(&self) {
        loop {
            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.run_loop())) {
                Ok(()) => return,
                Err(p) => log::error!(
                    "hangsafe: internal error: the deadline timer panicked ({}); it carries on",
                    panic_text(&*p)
                ),
            }
        }
    }

    /// Fires what is due, each entry on its own: one that panics is logged
    /// and dropped, and the others still fire.
    fn fire_due(due: &mut Vec<(TimerKind, Weak<dyn TimerTarget>)>) {
        for (kind, target) in due.drain(..) {
            let fire = std::panic::AssertUnwindSafe(|| {
                if let Some(t) = target.upgrade() {
                    t.fire(kind);
                }
            });
            if let Err(p) = std::panic::catch_unwind(fire) {
                log::error!(
                    "hangsafe: internal error: firing a {kind:?} timer entry panicked ({}); \
                     the timer carries on",
                    panic_text(&*p)
                );
            }
        }
    }

    /// Fires entries as they fall due; returns once the timer is stopped.
    fn run_loop(&self) {
        let mut due: Vec<(TimerKind, Weak<dyn TimerTarget>)> = Vec::new();
        let mut g = crate::sync::lock(&self.inner);
        loop {
            if g.stop {
                return;
            }
            let now = Instant::now();
            while g.heap.peek().is_some_and(|top| top.when <= now) {
                if let Some(e) = g.heap.pop() {
                    due.push((e.kind, e.target));
                }
            }
            if !due.is_empty() {
                // Fire without the lock: firing may schedule (abandon checks).
                drop(g);
                Self::fire_due(&mut due);
                g = crate::sync::lock(&self.inner);
                continue;
            }
            g = match g.heap.peek().map(|top| top.when) {
                None => match self.cv.wait(g) {
                    Ok(g) => g,
                    Err(p) => p.into_inner(),
                },
                Some(when) => match self.cv.wait_timeout(g, when.saturating_duration_since(now)) {
                    Ok((g, _)) => g,
                    Err(p) => p.into_inner().0,
                },
            };
        }
    }
}

fn panic_text(p: &(dyn std::any::Any + Send)) -> &str {
    p.downcast_ref::<&str>()
        .copied()
        .or_else(|| p.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("<non-string panic payload>")
}

#[cfg(test)]
#[path = "timer_tests.rs"]
mod tests;
