//! The raw robust mutex: the protocol on a PI futex word.
//!
//! # Protocol
//!
//! Fields (all atomics; the struct is plain shared memory):
//!
//! | field   | written by                  | meaning |
//! |---------|-----------------------------|---------|
//! | `word`  | lockers, unlockers, kernel  | PI futex word: owner TID, `WAITERS`, `OWNER_DIED` |
//! | `state` | the owner only              | consistent / inconsistent / not-recoverable |
//! | `owner` | the owner only              | owner's nonce (tells a reused TID from the owner) |
//! | `ns`    | `init` only                 | PID namespace; 0 = not initialised |
//!
//! * **lock**: CAS `word` 0 → my TID (Acquire). That single CAS is the
//!   whole uncontended path; then the owner records its nonce and reads
//!   `state`. Otherwise the slow path:
//!   * word shows my TID: if `owner` is my nonce I hold it (`Deadlock`);
//!     otherwise the holder was a dead thread whose TID I reuse, and I take
//!     over with a CAS (`OwnerDead`).
//!   * `FUTEX_LOCK_PI2` blocks until the kernel grants the lock. A grant
//!     from a dead owner (the kernel ran its `exit_pi_state_list` and the
//!     owner had waiters) carries `OWNER_DIED`, which the new owner clears.
//!   * before asking the kernel, a contended lock waits in userspace
//!     while the word keeps changing (R37, R64), and once the word stands
//!     still with `WAITERS` clear, checks whether the holder's TID still
//!     exists; if not, it takes over with a CAS from that exact word
//!     (`OwnerDead`, R63), as after `ESRCH` below.
//!   * `ESRCH`: the owner is dead and nobody was queued, so no kernel state
//!     exists for it. Take over with a CAS from the dead TID, keeping
//!     `WAITERS`. Of several contenders that all got `ESRCH`, exactly one
//!     CAS wins; the rest loop and queue behind the winner.
//! * **unlock**: clear `owner`, then CAS my TID → 0 (Release). That CAS is
//!   the single atomic action that releases the lock; after it neither this
//!   process nor the kernel touches the mutex. If it fails, `WAITERS` is
//!   set and `FUTEX_UNLOCK_PI` hands the lock to the top waiter, writing the
//!   word inside the syscall, before unlock returns.
//!
//! There is no robust list (`set_robust_list`) and no `list_op_pending`:
//! the kernel keeps no pointer into the mutex beyond a syscall, except the
//! `pi_state` it holds while waiters are queued, which it drops when it
//! hands the lock over. That is what makes (c), no write after unlock, hold
//! on every kernel, where glibc's robust mutexes break it (BZ 14485).

use super::error::{Acquired, Error};
use super::kernel::{Deadline, Kernel, Me, Point};
use super::spin::{Next, Spin};
use super::word::{owner, CONSISTENT, INCONSISTENT, MAGIC, NOT_RECOVERABLE, OWNER_DIED, WAITERS};
use crate::sync::{AtomicU32, AtomicU64, Ordering};
use std::fmt;

/// A process-shared, robust, error-checking mutex without data, for
/// memory shared between processes.
///
/// Place it in `MAP_SHARED` memory (a memfd, a file under `/dev/shm`, or an
/// anonymous shared mapping inherited over `fork`), initialise it once with
/// [`RawRobustMutex::init`], and lock it from any thread of any process in
/// the same PID namespace. For a typed mutex in a named region see
/// [`RobustMutex`](super::RobustMutex).
///
/// * When an owner dies holding it, the next owner gets
///   [`Acquired::OwnerDead`]; it repairs the data and calls
///   [`consistent`](Self::consistent), or unlocks without doing so, which
///   makes the mutex permanently [`Error::NotRecoverable`].
/// * A waiter always wakes up when the owner dies.
/// * Once [`unlock`](Self::unlock) returns, neither the process nor the
///   kernel writes to the mutex's memory again: it may be unmapped or reused
///   at once.
/// * Uncontended lock and unlock are one atomic operation each.
///
/// ```
/// use hangsafe::robust::{Acquired, RawRobustMutex};
///
/// let m = RawRobustMutex::new()?;
/// match m.lock()? {
///     Acquired::Consistent => {}
///     Acquired::OwnerDead => {
///         // repair the shared data, then:
///         m.consistent()?;
///     }
/// }
/// m.unlock()?;
/// # Ok::<(), hangsafe::robust::Error>(())
/// ```
#[repr(C, align(8))]
pub struct RawRobustMutex {
    word: AtomicU32,
    state: AtomicU32,
    owner: AtomicU64,
    ns: AtomicU64,
    magic: AtomicU32,
    _reserved: [u32; 9],
}

#[cfg(not(hangsafe_loom))]
const _: () = {
    assert!(std::mem::size_of::<RawRobustMutex>() == RawRobustMutex::SIZE);
    assert!(std::mem::align_of::<RawRobustMutex>() == 8);
};

impl RawRobustMutex {
    /// Size in bytes of the in-memory representation (the C
    /// `hs_robust_mutex_t` has the same size and alignment).
    pub const SIZE: usize = 64;

    /// A new, unlocked mutex belonging to the caller's PID namespace.
    ///
    /// Fails only when the namespace cannot be identified (no `/proc`).
    #[cfg(not(hangsafe_loom))]
    pub fn new() -> Result<RawRobustMutex, Error> {
        let ns = super::ident::pid_namespace()?;
        Ok(RawRobustMutex::with_namespace(ns))
    }

    pub(crate) fn with_namespace(ns: u64) -> RawRobustMutex {
        RawRobustMutex {
            word: AtomicU32::new(0),
            state: AtomicU32::new(CONSISTENT),
            owner: AtomicU64::new(0),
            ns: AtomicU64::new(ns),
            magic: AtomicU32::new(MAGIC),
            _reserved: [0; 9],
        }
    }

    /// Initialises (or re-initialises) a mutex in place: unlocked,
    /// consistent, belonging to the caller's PID namespace.
    ///
    /// Like `pthread_mutex_init`, this must not race with any other use of
    /// the mutex; initialise before other processes can see the memory.
    #[cfg(not(hangsafe_loom))]
    pub fn init(&self) -> Result<(), Error> {
        let ns = super::ident::pid_namespace()?;
        self.word.store(0, Ordering::Relaxed);
        self.state.store(CONSISTENT, Ordering::Relaxed);
        self.owner.store(0, Ordering::Relaxed);
        self.magic.store(MAGIC, Ordering::Relaxed);
        self.ns.store(ns, Ordering::Release);
        Ok(())
    }

    /// Blocks until the lock is held.
    ///
    /// `Ok(Acquired::OwnerDead)` holds the lock too; see [`Acquired`].
    #[cfg(not(hangsafe_loom))]
    #[inline]
    pub fn lock(&self) -> Result<Acquired, Error> {
        self.lock_with(&super::kernel::Linux, None)
    }

    /// Takes the lock if no live thread holds it. A dead owner is recovered
    /// (`OwnerDead`), as `pthread_mutex_trylock` does; a live owner gives
    /// [`Error::WouldBlock`].
    #[cfg(not(hangsafe_loom))]
    #[inline]
    pub fn try_lock(&self) -> Result<Acquired, Error> {
        self.try_lock_with(&super::kernel::Linux)
    }

    /// Blocks until the lock is held or `deadline` passes
    /// ([`Error::TimedOut`]). The deadline is on the monotonic clock.
    #[cfg(not(hangsafe_loom))]
    pub fn lock_until(&self, deadline: std::time::Instant) -> Result<Acquired, Error> {
        let now = std::time::Instant::now();
        let left = deadline.saturating_duration_since(now);
        self.lock_with(&super::kernel::Linux, Some(deadline_after(left)))
    }

    /// Blocks until the lock is held or `timeout` has passed.
    #[cfg(not(hangsafe_loom))]
    pub fn lock_timeout(&self, timeout: std::time::Duration) -> Result<Acquired, Error> {
        self.lock_with(&super::kernel::Linux, Some(deadline_after(timeout)))
    }

    /// Blocks until the lock is held or the absolute `CLOCK_MONOTONIC` time
    /// `(sec, nsec)` passes. `nsec` must be below 1e9.
    #[cfg(not(hangsafe_loom))]
    pub fn lock_until_monotonic(&self, sec: i64, nsec: i64) -> Result<Acquired, Error> {
        if !(0..1_000_000_000).contains(&nsec) || sec < 0 {
            return Err(Error::Os(std::io::Error::from_raw_os_error(libc::EINVAL)));
        }
        let sec = sec.min(i64::MAX / 4);
        self.lock_with(&super::kernel::Linux, Some(Deadline { sec, nsec }))
    }

    /// Marks the state protected by an `OwnerDead` lock as repaired. Only
    /// the owner may call it, and only while the mutex is inconsistent.
    #[cfg(not(hangsafe_loom))]
    pub fn consistent(&self) -> Result<(), Error> {
        self.consistent_with(&super::kernel::Linux)
    }

    /// Releases the lock. Fails with [`Error::NotOwner`] unless the calling
    /// thread holds it. Unlocking an inconsistent mutex (an `OwnerDead` lock
    /// without [`consistent`](Self::consistent)) makes it permanently
    /// not-recoverable and wakes every waiter with that error.
    ///
    /// After this returns `Ok`, the mutex's memory is never written again by
    /// this process or by the kernel on its behalf.
    #[cfg(not(hangsafe_loom))]
    #[inline]
    pub fn unlock(&self) -> Result<(), Error> {
        self.unlock_with(&super::kernel::Linux)
    }

    /// Whether the mutex is permanently unusable.
    pub fn is_not_recoverable(&self) -> bool {
        self.state.load(Ordering::Relaxed) == NOT_RECOVERABLE
    }

    /// Tests: make the word say `tid` holds the lock with `nonce`, as a
    /// dead thread would leave it.
    #[cfg(test)]
    pub(crate) fn fake_owner_for_tests(&self, tid: u32, nonce: u64) {
        self.word.store(tid, Ordering::SeqCst);
        self.owner.store(nonce, Ordering::SeqCst);
    }

    /// Tests: the raw lock word.
    #[cfg(test)]
    pub(crate) fn debug_word(&self) -> u32 {
        self.word.load(Ordering::SeqCst)
    }

    /// Whether the calling thread may use this mutex at all: it is
    /// initialised, and in the caller's PID namespace.
    #[cfg(not(hangsafe_loom))]
    pub(crate) fn check_caller(&self) -> Result<(), Error> {
        self.check(&super::ident::me()?)
    }

    // ---- the protocol, generic over the kernel ----

    #[inline(always)]
    fn check(&self, me: &Me) -> Result<(), Error> {
        let ns = self.ns.load(Ordering::Acquire);
        if ns == me.ns {
            return Ok(());
        }
        Err(self.check_failed(ns))
    }

    #[cold]
    #[inline(never)]
    fn check_failed(&self, ns: u64) -> Error {
        if ns == 0 || self.magic.load(Ordering::Relaxed) != MAGIC {
            Error::Uninitialized
        } else {
            Error::ForeignNamespace
        }
    }

    #[inline(always)]
    pub(crate) fn lock_with<K: Kernel>(
        &self,
        k: &K,
        deadline: Option<Deadline>,
    ) -> Result<Acquired, Error> {
        match k.me_cached() {
            Some(me) => self.lock_as(k, &me, deadline, false),
            None => self.lock_first(k, deadline, false),
        }
    }

    #[inline(always)]
    pub(crate) fn try_lock_with<K: Kernel>(&self, k: &K) -> Result<Acquired, Error> {
        match k.me_cached() {
            Some(me) => self.lock_as(k, &me, None, true),
            None => self.lock_first(k, None, true),
        }
    }

    /// The calling thread's first use (or a kernel without an identity
    /// cache): resolve the identity, then lock.
    #[cold]
    #[inline(never)]
    fn lock_first<K: Kernel>(
        &self,
        k: &K,
        deadline: Option<Deadline>,
        try_only: bool,
    ) -> Result<Acquired, Error> {
        let me = k.me()?;
        self.lock_as(k, &me, deadline, try_only)
    }

    /// The uncontended path: one CAS of the word from 0 to my TID.
    #[inline(always)]
    fn lock_as<K: Kernel>(
        &self,
        k: &K,
        me: &Me,
        deadline: Option<Deadline>,
        try_only: bool,
    ) -> Result<Acquired, Error> {
        self.check(me)?;
        if self
            .word
            .compare_exchange(0, me.tid, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
        {
            k.point(Point::AfterLockCas);
            return self.acquired(k, me, false);
        }
        self.lock_slow(k, me, deadline, try_only)
    }

    /// The word was not 0. Loops until the lock is held or a definite error:
    /// each round settles what userspace can ([`lock_userspace`]), and asks
    /// the kernel otherwise ([`lock_kernel`]).
    ///
    /// [`lock_userspace`]: Self::lock_userspace
    /// [`lock_kernel`]: Self::lock_kernel
    #[cold]
    #[inline(never)]
    fn lock_slow<K: Kernel>(
        &self,
        k: &K,
        me: &Me,
        deadline: Option<Deadline>,
        try_only: bool,
    ) -> Result<Acquired, Error> {
        let mut einval = 0;
        let mut spin = Spin::new();
        loop {
            if self.state.load(Ordering::Relaxed) == NOT_RECOVERABLE {
                return Err(Error::NotRecoverable);
            }
            let holder = match self.lock_userspace(k, me, &mut spin, try_only) {
                Round::Done(r) => return r,
                Round::Again => continue,
                Round::Kernel(holder) => holder,
            };
            if let Some(r) = self.lock_kernel(k, me, holder, deadline, try_only, &mut einval) {
                return r;
            }
        }
    }

    /// One round in userspace: take a free word, report or take over a
    /// word naming my TID, take over from a holder that no longer exists
    /// (R63), or spin while that is likely to pay (R37, R64; see
    /// [`super::spin`]). Answers `Kernel(holder)` when the kernel must be
    /// asked.
    fn lock_userspace<K: Kernel>(&self, k: &K, me: &Me, spin: &mut Spin, try_only: bool) -> Round {
        let w = self.word.load(Ordering::Relaxed);
        let holder = owner(w);
        if holder == 0 {
            // Free (a kernel unlock left it at 0 just now). Keep the
            // flags: a stale WAITERS only costs one UNLOCK_PI.
            if self.take(w, me) {
                k.point(Point::AfterLockCas);
                return Round::Done(self.acquired(k, me, w & OWNER_DIED != 0));
            }
            return Round::Again;
        }
        if holder == me.tid {
            if self.owner.load(Ordering::Relaxed) == me.nonce {
                return Round::Done(Err(Error::Deadlock));
            }
            // R28: the word names my TID but not my nonce: a dead thread
            // that had my TID holds it (two live threads never share a
            // TID). Queued waiters, if any, are attached to me as the
            // kernel sees it, so taking over keeps kernel and word in
            // agreement.
            if self.take(w, me) {
                k.point(Point::AfterLockCas);
                return Round::Done(self.acquired(k, me, true));
            }
            return Round::Again;
        }
        if try_only {
            return Round::Kernel(holder);
        }
        match spin.next(k, w) {
            Next::Spin(pauses) => {
                for _ in 0..pauses {
                    k.spin();
                }
                Round::Again
            }
            Next::CheckAlive => self.check_holder(k, me, w),
            Next::Queue => Round::Kernel(holder),
        }
    }

    /// R63: the word `w` (no `WAITERS`) has named the same holder for a
    /// while. If no thread has that TID any more, the holder died with
    /// nobody queued, so the kernel keeps no state for the word and the
    /// lock can be taken over in userspace, from exactly `w`: a waiter
    /// that queued meanwhile set `WAITERS`, a holder that unlocked changed
    /// the TID, and either makes the CAS fail.
    fn check_holder<K: Kernel>(&self, k: &K, me: &Me, w: u32) -> Round {
        if k.alive(owner(w)) {
            return Round::Again;
        }
        k.point(Point::AfterDeadHolder);
        if self.take(w, me) {
            k.point(Point::AfterLockCas);
            return Round::Done(self.acquired(k, me, true));
        }
        Round::Again
    }

    /// Asks the kernel for a lock `holder` holds. `Some` is the answer;
    /// `None` means: look at the word again.
    fn lock_kernel<K: Kernel>(
        &self,
        k: &K,
        me: &Me,
        holder: u32,
        deadline: Option<Deadline>,
        try_only: bool,
        einval: &mut u32,
    ) -> Option<Result<Acquired, Error>> {
        let r = if try_only {
            k.trylock_pi(&self.word)
        } else {
            k.lock_pi(&self.word, deadline)
        };
        match r {
            Ok(()) => {
                // The kernel granted the lock: the word holds my TID,
                // WAITERS, and OWNER_DIED if it came from a dead owner.
                crate::sync::fence(Ordering::Acquire);
                k.point(Point::AfterLockCas);
                let died = self.clear_owner_died();
                Some(self.acquired(k, me, died))
            }
            Err(libc::ESRCH) => {
                // R25: the owner is dead and nobody was queued on it;
                // the kernel set WAITERS on the way. Take over from that
                // exact dead TID; if another contender won, loop.
                k.point(Point::AfterEsrch);
                let w = self.word.load(Ordering::Relaxed);
                if owner(w) == holder && self.take(w, me) {
                    k.point(Point::AfterLockCas);
                    return Some(self.acquired(k, me, true));
                }
                None
            }
            // R35: an exiting owner's hand-over is in flight. The
            // kernel gave the lock to a queued waiter that has not yet
            // written its TID into the word, which still names the dead
            // owner without OWNER_DIED (no robust list sets it), and
            // FUTEX_LOCK_PI refuses that combination with EINVAL until
            // the new owner's fix-up runs. Back off and retry; a word
            // stuck in that state for about a second was not put there
            // by this protocol, and is reported.
            Err(libc::EINVAL) => {
                if try_only {
                    return Some(Err(Error::WouldBlock));
                }
                if *einval == EINVAL_RETRIES {
                    return Some(Err(Error::from_errno(libc::EINVAL)));
                }
                k.backoff(*einval);
                *einval += 1;
                None
            }
            // The kernel sees my TID in the word: handled at the top.
            Err(libc::EDEADLK) => None,
            // The owner is exiting or the word changed under the
            // kernel: retry.
            Err(libc::EAGAIN) if !try_only => None,
            Err(libc::EINTR) => None,
            Err(libc::EAGAIN) | Err(libc::EBUSY) => Some(Err(Error::WouldBlock)),
            Err(libc::ETIMEDOUT) => Some(Err(Error::TimedOut)),
            Err(e) => Some(Err(Error::from_errno(e))),
        }
    }

    /// CAS from `w` to my TID, keeping `WAITERS` (a queued waiter must
    /// still be handed the lock by `FUTEX_UNLOCK_PI`) and dropping
    /// `OWNER_DIED` (recorded in `state` instead).
    #[inline]
    fn take(&self, w: u32, me: &Me) -> bool {
        self.word
            .compare_exchange(
                w,
                me.tid | (w & WAITERS),
                Ordering::Acquire,
                Ordering::Relaxed,
            )
            .is_ok()
    }

    /// Clears `OWNER_DIED` from a word I own (the kernel may be setting
    /// `WAITERS` concurrently). Returns whether it was set.
    fn clear_owner_died(&self) -> bool {
        let mut w = self.word.load(Ordering::Relaxed);
        while w & OWNER_DIED != 0 {
            match self.word.compare_exchange_weak(
                w,
                w & !OWNER_DIED,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(cur) => w = cur,
            }
        }
        false
    }

    /// The lock is mine. Record it, and report how it was found.
    #[inline(always)]
    fn acquired<K: Kernel>(&self, k: &K, me: &Me, died: bool) -> Result<Acquired, Error> {
        self.owner.store(me.nonce, Ordering::Relaxed);
        let state = self.state.load(Ordering::Relaxed);
        if state == CONSISTENT && !died {
            k.point(Point::BeforeReturn);
            return Ok(Acquired::Consistent);
        }
        self.acquired_slow(k, me, state)
    }

    #[cold]
    #[inline(never)]
    fn acquired_slow<K: Kernel>(&self, k: &K, me: &Me, state: u32) -> Result<Acquired, Error> {
        if state == NOT_RECOVERABLE {
            // R27: pass the lock on (so queued waiters chain out with the
            // same error) and refuse.
            self.release(k, me)?;
            return Err(Error::NotRecoverable);
        }
        // An owner died holding it, or died while repairing it (R26: the
        // state is still INCONSISTENT from the first death).
        if state != INCONSISTENT {
            self.state.store(INCONSISTENT, Ordering::Relaxed);
        }
        k.point(Point::BeforeReturn);
        Ok(Acquired::OwnerDead)
    }

    #[inline]
    pub(crate) fn consistent_with<K: Kernel>(&self, k: &K) -> Result<(), Error> {
        let me = k.me()?;
        self.check(&me)?;
        self.check_owner(&me)?;
        if self.state.load(Ordering::Relaxed) != INCONSISTENT {
            return Err(Error::NotInconsistent);
        }
        self.state.store(CONSISTENT, Ordering::Relaxed);
        Ok(())
    }

    #[inline(always)]
    fn check_owner(&self, me: &Me) -> Result<(), Error> {
        if owner(self.word.load(Ordering::Relaxed)) != me.tid
            || self.owner.load(Ordering::Relaxed) != me.nonce
        {
            return Err(Error::NotOwner);
        }
        Ok(())
    }

    #[inline(always)]
    pub(crate) fn unlock_with<K: Kernel>(&self, k: &K) -> Result<(), Error> {
        match k.me_cached() {
            Some(me) => self.unlock_as(k, &me),
            None => self.unlock_first(k),
        }
    }

    #[cold]
    #[inline(never)]
    fn unlock_first<K: Kernel>(&self, k: &K) -> Result<(), Error> {
        let me = k.me()?;
        self.unlock_as(k, &me)
    }

    #[inline(always)]
    fn unlock_as<K: Kernel>(&self, k: &K, me: &Me) -> Result<(), Error> {
        self.check(me)?;
        self.check_owner(me)?;
        if self.state.load(Ordering::Relaxed) == INCONSISTENT {
            // R27: unlock while inconsistent.
            self.state.store(NOT_RECOVERABLE, Ordering::Relaxed);
        }
        self.release(k, me)
    }

    /// Releases a lock the caller holds.
    #[inline(always)]
    fn release<K: Kernel>(&self, k: &K, me: &Me) -> Result<(), Error> {
        self.owner.store(0, Ordering::Relaxed);
        match self
            .word
            .compare_exchange(me.tid, 0, Ordering::Release, Ordering::Relaxed)
        {
            Ok(_) => {
                // Released. From here on the memory may belong to someone
                // else: touch nothing (R24).
                k.point(Point::AfterUnlockCas);
                Ok(())
            }
            Err(_) => self.release_slow(k),
        }
    }

    #[cold]
    #[inline(never)]
    fn release_slow<K: Kernel>(&self, k: &K) -> Result<(), Error> {
        // WAITERS is set: the kernel must pick and wake the next owner. It
        // writes the word inside the syscall, i.e. before unlock returns.
        k.point(Point::FailedUnlockCas);
        match k.unlock_pi(&self.word) {
            Ok(()) => Ok(()),
            Err(libc::EPERM) => Err(Error::NotOwner),
            Err(e) => Err(Error::from_errno(e)),
        }
    }
}

/// What one round of [`RawRobustMutex::lock_slow`] in userspace decided.
enum Round {
    /// The lock is held, or a definite error.
    Done(Result<Acquired, Error>),
    /// The word changed or a spin passed: look again.
    Again,
    /// Ask the kernel; the word named this holder.
    Kernel(u32),
}

/// How many times a transient `EINVAL` (R35) is retried: with
/// [`Kernel::backoff`]'s sleeps, about a second.
const EINVAL_RETRIES: u32 = 10_000;

/// The absolute monotonic time `d` from now.
#[cfg(not(hangsafe_loom))]
pub(crate) fn deadline_after(d: std::time::Duration) -> Deadline {
    let (sec, nsec) = super::kernel::clock(libc::CLOCK_MONOTONIC);
    let total = nsec as u128 + d.subsec_nanos() as u128;
    let sec = sec
        .saturating_add(i64::try_from(d.as_secs()).unwrap_or(i64::MAX / 2))
        .saturating_add((total / 1_000_000_000) as i64)
        .min(i64::MAX / 2);
    Deadline {
        sec,
        nsec: (total % 1_000_000_000) as i64,
    }
}

impl fmt::Debug for RawRobustMutex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let w = self.word.load(Ordering::Relaxed);
        f.debug_struct("RawRobustMutex")
            .field("owner_tid", &owner(w))
            .field("waiters", &(w & WAITERS != 0))
            .field(
                "state",
                &match self.state.load(Ordering::Relaxed) {
                    CONSISTENT => "consistent",
                    INCONSISTENT => "inconsistent",
                    NOT_RECOVERABLE => "not-recoverable",
                    _ => "invalid",
                },
            )
            .finish()
    }
}
