//! The seqlock core: one writer, any number of readers, every shared access
//! atomic.
//!
//! This is the sequence lock of Hans Boehm's "Can seqlocks get along with
//! programming language memory models?" (MSPC 2012), in the form he shows
//! correct under the C++11 model, which Rust's atomics follow:
//!
//! ```text
//! writer (one thread)                 reader (any thread)
//! s = our own record of seq           s1 = seq.load(Acquire)
//! seq.store(s + 1, Relaxed)           if s1 is odd: retry
//! fence(Release)                      d  = data.load(Relaxed) (each word)
//! data.store(.., Relaxed) (each)      fence(Acquire)
//! seq.store(s + 2, Release)           s2 = seq.load(Relaxed)
//!                                     accept d iff s1 == s2
//! ```
//!
//! Why it is sound: if the reader loaded any data word written by a later
//! publish than `s1`'s, that word was stored after the writer's release
//! fence, so the reader's acquire fence synchronises with it and the
//! writer's `seq = s + 1` (before that fence) happens before the reader's
//! `s2` load, which therefore cannot return `s1`. If `s1 == s2` the reader
//! saw no later publish; and `s1` was loaded with acquire from the
//! publish's final `seq = s + 2` (release), so the data it loaded is at
//! least that publish's. The snapshot is therefore exactly one publish.
//!
//! The data are `AtomicU64` words, never plain memory, so a reader racing
//! the writer performs no data race at all (no volatile or non-atomic read
//! of memory someone else writes): a torn snapshot is merely a set of
//! `u64`s that fails validation and is thrown away. It is turned into a
//! typed value only after validation (`pod.rs`). Nothing here is
//! `unsafe`: even a broken single-writer invariant (two concurrent
//! publishers) could only make a reader accept inconsistent words, and a
//! [`Pod`](super::Pod) type is valid for any words.
//!
//! The single writer is the runner's worker thread: it publishes through
//! its [`Ctx`](crate::runner::Ctx), which is `!Sync`, so no other thread
//! can reach the publishing side (the `Ctx` also keeps the writer's record
//! of the sequence); the same thread sets [`ENDED`] after the work has
//! returned, if it published anything (a runner that never published is
//! known to have ended from its state word). The *release* flag, set by
//! another thread (the handle's `Drop`), lives in its own atomic so that
//! the sequence word keeps a single writer.

use super::error::Error;
use crate::sync::{fence, AtomicBool, AtomicU64, Ordering};

/// Data capacity in 64-bit words: 64 bytes of published state.
pub(crate) const WORDS: usize = 8;

/// The largest state read from a single cache line: the line the sequence
/// word and the tag start (checked below).
// Used only by compile-time layout assertions, which older compilers (the
// MSRV, 1.87) do not count as uses.
#[allow(dead_code)]
pub(crate) const ONE_LINE: usize = 48;

/// Flag in the sequence word: the work has ended (returned or panicked).
/// Set once, by the worker, after its last publish (if it published).
pub(crate) const ENDED: u64 = 1 << 63;

/// How many snapshot attempts one read makes before it gives up with
/// [`Error::Again`]: a writer publishing continuously, or preempted
/// in the middle of a publish, must not keep a reader looping forever.
/// Each attempt is a handful of loads, and a failed one is followed by a
/// short pause ([`BACKOFF`]), so a read that never gets a snapshot gives up
/// after about 64 × 16 spin-loop hints: about 15 µs on the project's VM (the
/// hint's latency varies between CPUs, from a few to ~140 cycles). Under
/// loom, two attempts keep the model small.
#[cfg(not(hangsafe_loom))]
pub(crate) const READ_ATTEMPTS: u32 = 64;
#[cfg(hangsafe_loom)]
pub(crate) const READ_ATTEMPTS: u32 = 2;

/// A seqlock-protected slot of up to [`WORDS`] words plus a type tag.
///
/// The sequence word holds the publish counter in its low 63 bits (0:
/// nothing published; odd: a publish in progress; `2n`: `n` publishes
/// done) and [`ENDED`] in the top bit. At one publish per nanosecond the
/// counter would need centuries to reach the flag.
///
/// Layout: the sequence word, the tag and the first six data words fill
/// one 64-byte cache line, so a state of up to 48 bytes is read from a
/// single line. Under a writer publishing flat out, that line moves between
/// the two cores as a whole and an attempt usually validates; a second line
/// doubles the transfers per attempt and the chances that the writer
/// intervenes.
#[derive(Debug)]
#[repr(C, align(64))]
pub(crate) struct SeqCell {
    seq: AtomicU64,
    tag: AtomicU64,
    data: [AtomicU64; WORDS],
    /// Set by the runner's handle when it is released (dropped).
    released: AtomicBool,
}

// The layout the single-line claim rests on (loom's atomics are larger).
#[cfg(not(hangsafe_loom))]
const _: () = assert!(
    std::mem::align_of::<SeqCell>() == 64
        && std::mem::offset_of!(SeqCell, seq) == 0
        && std::mem::offset_of!(SeqCell, data) + ONE_LINE == 64
);

/// What a successful read returns besides the data words.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Raw {
    /// The (even) sequence value the snapshot was taken at.
    pub(crate) seq: u64,
    /// The type tag published with the data.
    pub(crate) tag: u64,
}

/// Spin-loop hints after a failed attempt (a publish in progress, or one
/// that landed during the read). Retrying at once would pull the cache line
/// back from the writer in the middle of its publish, slowing it and
/// prolonging the very window the reader waits out; a short pause lets the
/// publish finish. Against a worker publishing flat out, 16 gave both sides
/// the best rates on the project's VM (reads ~70–170 ns, no `Again`, the
/// writer ~3× faster than with a bare retry); 4 left the writer slow, 64
/// made reads slow.
const BACKOFF: u32 = 16;

#[inline]
fn spin() {
    #[cfg(hangsafe_loom)]
    loom::thread::yield_now();
    #[cfg(not(hangsafe_loom))]
    for _ in 0..BACKOFF {
        std::hint::spin_loop();
    }
}

impl Default for SeqCell {
    fn default() -> Self {
        Self::new()
    }
}

impl SeqCell {
    pub(crate) fn new() -> Self {
        SeqCell {
            seq: AtomicU64::new(0),
            tag: AtomicU64::new(0),
            data: std::array::from_fn(|_| AtomicU64::new(0)),
            released: AtomicBool::new(false),
        }
    }

    // ---- the writer (the worker thread only) ------------------------------

    /// Publishes `words` (at most [`WORDS`]) with `tag`. Never blocks, never
    /// waits for readers. Only the single writer may call this.
    ///
    /// `last` is the writer's own record of the sequence word: 0 before its
    /// first publish, then what the previous call returned. The writer keeps
    /// it (the runner's `Ctx` does) instead of loading `seq`, for two
    /// reasons. It keeps the writer's state off the cache lines readers
    /// poll. And loom's partial-order reduction remembers only the last
    /// access to each atomic: a writer loading `seq` would hide the readers'
    /// loads from its next store, and loom would never run a reader after a
    /// publish has begun (the models "passed" that way, exploring one
    /// execution); with no writer load, they explore those interleavings.
    pub(crate) fn write(&self, last: u64, tag: u64, words: &[u64]) -> u64 {
        assert!(words.len() <= WORDS, "hangsafe: seqlock write too large");
        debug_assert!(last & 1 == 0, "hangsafe: nested publish");
        debug_assert!(last & ENDED == 0, "hangsafe: publish after the work ended");
        self.seq.store(last + 1, Ordering::Relaxed);
        // Orders the odd `seq` before every data store below (Boehm: a
        // reader that sees any of them sees the odd value or later).
        fence(Ordering::Release);
        self.tag.store(tag, Ordering::Relaxed);
        for (cell, &w) in self.data.iter().zip(words) {
            cell.store(w, Ordering::Relaxed);
        }
        // Releases the data to a reader whose first load sees `last + 2`.
        self.seq.store(last + 2, Ordering::Release);
        last + 2
    }

    /// Marks the work as ended: every later read or validation is `Gone`.
    /// Called once by the writer, after its last publish; `last` as for
    /// [`write`](Self::write).
    ///
    /// A writer that never published need not call it (the runner's worker
    /// does not, on its hot path: the store would be its only access to
    /// this cache line, a transfer from the spawning thread's cache that
    /// the final state CAS would wait for). Readers then learn of the end
    /// from the runner's state instead: see [`read`](Self::read).
    pub(crate) fn end(&self, last: u64) {
        // Release is more than the flag needs (the runner's final state CAS
        // comes after it and releases it); it is free on x86_64.
        self.seq.store(last | ENDED, Ordering::Release);
    }

    /// The writer's view of its own last publish: fills `out` and returns
    /// the tag. Only the writer may call this, and only after it has
    /// published (it reads its own stores, so no validation is needed).
    #[cfg_attr(hangsafe_loom, allow(dead_code))]
    pub(crate) fn peek_own(&self, out: &mut [u64]) -> u64 {
        for (o, cell) in out.iter_mut().zip(&self.data) {
            *o = cell.load(Ordering::Relaxed);
        }
        self.tag.load(Ordering::Relaxed)
    }

    // ---- anyone -----------------------------------------------------------

    /// Marks the runner as released (its handle was dropped): every later
    /// read or validation is `Gone`. Any thread; idempotent.
    pub(crate) fn release(&self) {
        self.released.store(true, Ordering::Release);
    }

    /// Takes a consistent snapshot into `out` (its first `out.len()` words,
    /// at most [`WORDS`]).
    ///
    /// * `Err(Gone)`: ended or released; or nothing was ever published and
    ///   `ended()` (the runner's state says its work is over) holds;
    /// * `Err(Unpublished)`: nothing published yet;
    /// * `Err(Again)`: no consistent snapshot in [`READ_ATTEMPTS`] attempts;
    /// * `Ok(raw)`: `out` holds the words of exactly one publish, the one
    ///   that made the sequence `raw.seq`.
    pub(crate) fn read(&self, out: &mut [u64], ended: impl FnOnce() -> bool) -> Result<Raw, Error> {
        debug_assert!(out.len() <= WORDS);
        if self.released.load(Ordering::Acquire) {
            return Err(Error::Gone);
        }
        for _ in 0..READ_ATTEMPTS {
            let s1 = self.seq.load(Ordering::Acquire);
            if s1 & ENDED != 0 {
                return Err(Error::Gone);
            }
            if s1 == 0 {
                // Never published, so the writer may not set `ENDED` (see
                // `end`): ask the runner.
                return Err(if ended() {
                    Error::Gone
                } else {
                    Error::Unpublished
                });
            }
            if s1 & 1 != 0 {
                // A publish is in progress.
                spin();
                continue;
            }
            let tag = self.tag.load(Ordering::Relaxed);
            for (o, cell) in out.iter_mut().zip(&self.data) {
                *o = cell.load(Ordering::Relaxed);
            }
            // Orders the data loads before the re-check of `seq` (Boehm's
            // reader-side fence; an acquire *load* of `seq` here would not
            // keep the earlier data loads from moving after it).
            fence(Ordering::Acquire);
            let s2 = self.seq.load(Ordering::Relaxed);
            if s1 == s2 {
                return Ok(Raw { seq: s1, tag });
            }
            spin();
        }
        Err(Error::Again)
    }

    /// Checks that nothing happened since a snapshot taken at `seq`:
    /// `Ok` if no publish has started since, `Err(Again)` if one has,
    /// `Err(Gone)` if the work ended or the runner was released.
    ///
    /// The acquire fence first makes this a seqlock re-check for whatever
    /// the caller read in between: if the caller observed any store the
    /// worker made after starting a later publish, the result is `Again`.
    pub(crate) fn validate(&self, seq: u64) -> Result<(), Error> {
        fence(Ordering::Acquire);
        let now = self.seq.load(Ordering::Relaxed);
        if now & ENDED != 0 || self.released.load(Ordering::Acquire) {
            Err(Error::Gone)
        } else if now != seq {
            Err(Error::Again)
        } else {
            Ok(())
        }
    }

    /// Test hook: leaves the cell as a writer preempted in the middle of a
    /// publish after `last` would (odd sequence), forever.
    #[cfg(all(test, not(hangsafe_loom)))]
    pub(crate) fn stall_mid_publish(&self, last: u64) {
        self.seq.store(last | 1, Ordering::Relaxed);
    }
}
