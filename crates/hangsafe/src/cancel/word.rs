//! The per-thread cancel word: a job generation plus a cancel bit, changed
//! only by compare-and-swap.
//!
//! A pooled thread runs many jobs. Each job gets a fresh generation when the
//! thread begins it, and a canceller may only set the cancel bit for the
//! exact generation it was told about. A cancel aimed at an earlier job
//! therefore fails its CAS and has no effect on the job the thread runs now
//! (race R5 in `docs/races.md`): a pooled thread never acts on a cancel meant
//! for an earlier job.
//!
//! Layout of the `u64`:
//!
//! | bits   | meaning                                                       |
//! |--------|---------------------------------------------------------------|
//! | 0      | `CANCEL`: the current generation's job is cancelled           |
//! | 1      | `SENDING`: a canceller is between its CAS and its signal       |
//! | 2      | `RETIRED`: the thread is exiting; nothing may target it again |
//! | 3..64  | the generation (61 bits: never wraps in practice)             |
//!
//! `SENDING` is what makes "never signal a thread that may have exited"
//! hold: a canceller sets `CANCEL|SENDING` in one CAS, sends the cancel
//! signal, then clears `SENDING`; a retiring thread waits for `SENDING` to
//! clear and then sets `RETIRED` in a CAS that fails while `SENDING` is
//! set. After `RETIRED`, every canceller's CAS fails, so no signal can be
//! sent to the exiting thread (race R7), and since only the CAS winner
//! sends, there is at most one signal per cancel (R8, R21).
//!
//! `CANCEL` is also what the assembly stub tests: the word and the thread's
//! in-call depth are a [`StubWord`], whose layout and cancel bit
//! `platform` defines (and checks against the assembly at compile time).

use crate::platform::{self, StubWord};
use crate::sync::{Arc, AtomicU64, Ordering};

const CANCEL: u64 = 1 << platform::CANCEL_BIT;
const SENDING: u64 = 1 << 1;
const RETIRED: u64 = 1 << 2;
const GEN_SHIFT: u32 = 3;

/// A job generation on one thread.
pub(crate) type Gen = u64;

/// A thread bound to a cancellation target: its word and the generation of
/// the job or scope there.
#[derive(Debug)]
pub(crate) struct Binding {
    pub(crate) word: Arc<CancelWord>,
    pub(crate) gen: Gen,
}

impl Binding {
    /// Cancels the bound job if the thread is still on it: sets the bit
    /// and, as the CAS winner, sends the one signal (R5, R7, R8).
    pub(crate) fn cancel(&self) {
        if self.word.request(self.gen) == Request::Set {
            self.word.deliver();
        }
    }
}

/// One thread's cancel word, its in-call depth, and the thread's kernel
/// TID (for the signal).
///
/// The word and the depth are the [`StubWord`] the assembly stub reads
/// (the cancel bit) and writes (the depth, around the syscall).
#[derive(Debug)]
pub(crate) struct CancelWord {
    stub: StubWord<AtomicU64>,
    /// The owning thread's kernel TID (0: never signal). Atomic only so
    /// that a fork child can rebind the forking thread's word to its new
    /// TID (`thread::after_fork_child`).
    tid: std::sync::atomic::AtomicI32,
    /// The process generation (`thread::fork_generation`) the TID belongs
    /// to. A word created before a fork names a thread of the parent: in
    /// the child it is never signalled (H7).
    fork_gen: std::sync::atomic::AtomicU64,
}

/// What [`CancelWord::request`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Request {
    /// This call set the cancel bit for `gen`; the caller owns the (single)
    /// notification and must call [`CancelWord::sent`] when it is done.
    Set,
    /// The bit was already set for `gen` by someone else: nothing to do.
    AlreadySet,
    /// The thread has moved past `gen` (or retired): the cancel is stale.
    Stale,
}

impl CancelWord {
    /// A word for a model or test, bound to no thread (never signalled).
    #[cfg(any(test, hangsafe_loom))]
    pub(crate) fn new() -> Self {
        Self::for_thread(0)
    }

    /// The word of the thread with kernel TID `tid` (0: never signal).
    pub(crate) fn for_thread(tid: i32) -> Self {
        CancelWord {
            stub: StubWord::new(AtomicU64::new(0)),
            tid: std::sync::atomic::AtomicI32::new(tid),
            fork_gen: std::sync::atomic::AtomicU64::new(fork_gen_now()),
        }
    }

    /// Rebinds the word to the calling thread's TID in the current process
    /// generation. Only for the one thread of a fork child.
    #[cfg(not(hangsafe_loom))]
    pub(crate) fn rebind_after_fork(&self, tid: i32, gen: u64) {
        self.tid.store(tid, std::sync::atomic::Ordering::Relaxed);
        self.fork_gen
            .store(gen, std::sync::atomic::Ordering::Relaxed);
    }

    /// How many cancellable calls the owning thread is inside. For the
    /// owning thread (its signal handler) only.
    #[cfg(not(hangsafe_loom))]
    #[inline]
    pub(crate) fn in_call(&self) -> u32 {
        self.stub.in_call.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The part the assembly stub reads and writes, for
    /// `platform::cancellable_syscall` on the owning thread.
    #[cfg(not(hangsafe_loom))]
    #[inline(always)]
    pub(crate) fn stub(&self) -> &StubWord {
        &self.stub
    }

    /// Whether the current generation's job has a cancel pending. This is
    /// what the signal handler and the syscall wrappers ask.
    #[inline]
    pub(crate) fn pending(&self) -> bool {
        self.stub.word.load(Ordering::Acquire) & CANCEL != 0
    }

    /// Starts a new job on the owning thread and returns its generation.
    /// Any cancel bit of the previous generation is discarded with it.
    /// Only the owning thread calls this.
    ///
    /// A retired word is left alone (R20): that happens when a scope ends
    /// in a thread-local destructor that runs after the word's own, and
    /// clearing `RETIRED` would let a canceller target the exiting thread.
    pub(crate) fn begin(&self) -> Gen {
        let mut cur = self.stub.word.load(Ordering::Relaxed);
        loop {
            if cur & RETIRED != 0 {
                return cur >> GEN_SHIFT;
            }
            let gen = (cur >> GEN_SHIFT) + 1;
            // Keep SENDING: a canceller of the previous generation may still
            // be between its CAS and its signal; it clears the bit itself.
            let new = (gen << GEN_SHIFT) | (cur & SENDING);
            match self.stub.word.compare_exchange_weak(
                cur,
                new,
                Ordering::SeqCst,
                Ordering::Relaxed,
            ) {
                Ok(_) => return gen,
                Err(seen) => cur = seen,
            }
        }
    }

    /// Sets the cancel bit for `gen`, together with `SENDING`, if and only
    /// if the thread is still on `gen`.
    pub(crate) fn request(&self, gen: Gen) -> Request {
        let mut cur = self.stub.word.load(Ordering::Acquire);
        loop {
            if cur & RETIRED != 0 || cur >> GEN_SHIFT != gen {
                return Request::Stale;
            }
            if cur & CANCEL != 0 {
                return Request::AlreadySet;
            }
            match self.stub.word.compare_exchange_weak(
                cur,
                cur | CANCEL | SENDING,
                Ordering::SeqCst,
                Ordering::Acquire,
            ) {
                Ok(_) => return Request::Set,
                Err(seen) => cur = seen,
            }
        }
    }

    /// Ends the notification a successful [`request`](Self::request) began.
    pub(crate) fn sent(&self) {
        self.stub.word.fetch_and(!SENDING, Ordering::Release);
    }

    /// Completes a successful [`request`](Self::request): sends the one
    /// cancel signal for it (so a syscall blocked in the stub is
    /// interrupted), then clears `SENDING`. The thread cannot retire in
    /// between (R7), so the TID still names it.
    pub(crate) fn deliver(&self) {
        #[cfg(not(hangsafe_loom))]
        {
            use std::sync::atomic::Ordering::Relaxed;
            // A word of the parent's threads, seen in a fork child: its TID
            // names no thread of this process (H7).
            if self.fork_gen.load(Relaxed) == fork_gen_now() {
                super::signal::send(self.tid.load(Relaxed));
            }
        }
        self.sent();
    }

    /// Whether the job of generation `gen` has been cancelled.
    #[inline]
    pub(crate) fn is_cancelled(&self, gen: Gen) -> bool {
        let cur = self.stub.word.load(Ordering::Acquire);
        cur >> GEN_SHIFT == gen && cur & CANCEL != 0
    }

    /// Marks the thread as exiting. Waits (briefly: one syscall of a
    /// canceller) while a canceller is between its CAS and its signal, then
    /// makes every later `request` fail. Only the owning thread calls this.
    pub(crate) fn retire(&self) {
        let mut cur = self.stub.word.load(Ordering::Acquire);
        loop {
            if cur & SENDING != 0 {
                crate::sync::thread::yield_now();
                cur = self.stub.word.load(Ordering::Acquire);
                continue;
            }
            match self.stub.word.compare_exchange_weak(
                cur,
                cur | RETIRED,
                Ordering::SeqCst,
                Ordering::Acquire,
            ) {
                Ok(_) => return,
                Err(seen) => cur = seen,
            }
        }
    }

    /// Whether the thread has retired.
    #[cfg(test)]
    pub(crate) fn is_retired(&self) -> bool {
        self.stub.word.load(Ordering::Acquire) & RETIRED != 0
    }
}

/// The current process generation (bumped in every fork child).
#[cfg(not(hangsafe_loom))]
fn fork_gen_now() -> u64 {
    super::thread::fork_generation()
}

#[cfg(hangsafe_loom)]
fn fork_gen_now() -> u64 {
    0
}

#[cfg(all(test, not(hangsafe_loom)))]
mod tests {
    use super::*;

    /// R5: a cancel for an earlier generation never touches the current job.
    #[test]
    fn r5_stale_generation_is_ignored() {
        let w = CancelWord::new();
        let g1 = w.begin();
        let g2 = w.begin();
        assert_ne!(g1, g2);
        assert_eq!(w.request(g1), Request::Stale);
        assert!(!w.is_cancelled(g2));
        assert_eq!(w.request(g2), Request::Set);
        w.sent();
        assert_eq!(w.request(g2), Request::AlreadySet);
        assert!(w.is_cancelled(g2));
        let g3 = w.begin();
        assert!(!w.is_cancelled(g3), "a cancel does not survive its job");
    }

    /// R7: after retire, nothing can target the thread.
    #[test]
    fn r7_retired_thread_cannot_be_targeted() {
        let w = CancelWord::new();
        let g = w.begin();
        w.retire();
        assert!(w.is_retired());
        assert_eq!(w.request(g), Request::Stale);
    }
}
