//! The typed robust mutex: a [`RawRobustMutex`] and the [`AnyBitPattern`] data it
//! protects, side by side in shared memory, with an RAII guard.

use super::any_bit_pattern::AnyBitPattern;
use super::error::{Acquired, Error};
use super::raw::RawRobustMutex;
use std::cell::UnsafeCell;
use std::fmt;
use std::marker::PhantomData;
use std::mem::ManuallyDrop;
use std::ops::{Deref, DerefMut};
use std::time::{Duration, Instant};

/// A process-shared robust mutex protecting a `T`, living in a
/// [`SharedRegion`](super::SharedRegion).
///
/// It is the typed face of [`RawRobustMutex`]: locking returns a
/// [`RobustMutexGuard`] that dereferences to the data and unlocks on drop.
/// A `RobustMutex` is never owned by value: it is placed in shared memory by
/// a [`SharedRegion`](super::SharedRegion), which hands out `&RobustMutex<T>`
/// (it also dereferences to it).
///
/// # The owner-dead protocol
///
/// When a lock holder dies (is killed, crashes, `_exit`s) while holding the
/// lock, the next locker is given the lock *and* told so:
/// [`lock`](Self::lock) returns [`LockError::OwnerDead`], which carries the
/// guard. The data may be half-updated. The new owner must either
///
/// * repair the data and call [`RobustMutexGuard::make_consistent`], after
///   which the mutex is normal again, or
/// * drop the guard without doing so, which makes the mutex **permanently
///   not recoverable**: every later lock, in every process, fails with
///   [`LockError::NotRecoverable`]. That is the pthread semantics, and the
///   only safe default: nobody vouched for the data.
///
/// # Layout
///
/// `#[repr(C)]`: the [`RawRobustMutex`] (64 bytes, 8-aligned) followed by
/// the `T` at the next multiple of `T`'s alignment.
///
/// # Example
///
/// ```
/// use hangsafe::robust::{LockError, SharedRegion};
///
/// // Two counters that must stay equal.
/// let region = SharedRegion::anonymous([0u64; 2])?;
/// let mut pair = match region.lock() {
///     Ok(guard) => guard,
///     Err(LockError::OwnerDead(dead)) => {
///         // A previous owner died mid-update: repair, then vouch for it.
///         let mut guard = dead.into_guard();
///         let n = guard[0].max(guard[1]);
///         *guard = [n, n];
///         guard.make_consistent()?;
///         guard
///     }
///     Err(e) => panic!("cannot lock: {e}"),
/// };
/// pair[0] += 1;
/// pair[1] += 1;
/// drop(pair);
/// assert_eq!(*region.lock().unwrap(), [1, 1]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[repr(C)]
pub struct RobustMutex<T: AnyBitPattern> {
    raw: RawRobustMutex,
    data: UnsafeCell<T>,
}

// SAFETY: the data is only reached through a guard, and a guard exists only
// while the calling thread holds the raw lock, which excludes every other
// thread (of any process) from holding one. The lock is taken over only
// from a thread that is gone, and a thread with a live (leaked) guard never
// goes: `held` keeps it parked at exit (H6), so no reference a guard lent
// can outlive the lock. So `&RobustMutex<T>` lets at
// most one thread at a time access the `T`, which may therefore move
// between threads: `T: Send` (implied by `AnyBitPattern`) suffices, as for
// `std::sync::Mutex`. The raw mutex is all atomics.
unsafe impl<T: AnyBitPattern> Sync for RobustMutex<T> {}

/// What a lock attempt on a [`RobustMutex`] gives: the guard, or why not.
pub type LockResult<'a, T> = Result<RobustMutexGuard<'a, T>, LockError<RobustMutexGuard<'a, T>>>;

impl<T: AnyBitPattern> RobustMutex<T> {
    /// Offset of the data from the start of the mutex.
    pub(crate) const DATA_OFFSET: usize = std::mem::offset_of!(RobustMutex<T>, data);

    /// Initialises a mutex and its data in place, unlocked and consistent.
    ///
    /// # Safety
    ///
    /// `ptr` must be valid for writes of a `RobustMutex<T>`, aligned, and
    /// hold a valid `RawRobustMutex` value (any bytes do: it is all
    /// integers), and nothing may use the mutex until this returns (it is
    /// not yet published to other processes).
    pub(crate) unsafe fn init_in_place(ptr: *mut RobustMutex<T>, value: T) -> Result<(), Error> {
        // SAFETY: the caller guarantees `ptr` is aligned and valid, and the
        // raw mutex's bytes are a valid value (all integer fields); `init`
        // only needs a shared reference.
        let raw = unsafe { &(*ptr).raw };
        raw.init()?;
        // SAFETY: valid for writes (caller); `T: AnyBitPattern` has no destructor, so
        // overwriting the old bytes without dropping them is correct, and
        // nobody else accesses the data yet.
        unsafe { std::ptr::addr_of_mut!((*ptr).data).cast::<T>().write(value) };
        Ok(())
    }

    /// Blocks until the lock is held.
    ///
    /// # Errors
    ///
    /// * [`LockError::OwnerDead`]: the lock **is held**, but its previous
    ///   owner died holding it; the guard inside must be repaired and marked
    ///   consistent (see [the type's docs](Self)).
    /// * [`LockError::NotRecoverable`]: an owner gave up on the data; the
    ///   mutex can never be locked again.
    /// * [`LockError::Other`]: misuse, e.g. [`Error::Deadlock`] when the
    ///   calling thread already holds the lock (robust mutexes are
    ///   error-checking, never recursive), or [`Error::ForeignNamespace`].
    #[inline]
    pub fn lock(&self) -> LockResult<'_, T> {
        self.guarded(RawRobustMutex::lock)
    }

    /// Takes the lock if no live thread holds it; [`LockError::WouldBlock`]
    /// otherwise. A dead owner's lock is taken over
    /// ([`LockError::OwnerDead`]), as `pthread_mutex_trylock` does.
    #[inline]
    pub fn try_lock(&self) -> LockResult<'_, T> {
        self.guarded(RawRobustMutex::try_lock)
    }

    /// Blocks until the lock is held or `timeout` has passed
    /// ([`LockError::TimedOut`]).
    ///
    /// A timed lock is the defence against a hung owner (indistinguishable
    /// from a slow one) and against the undetectable case of a dead owner
    /// whose TID was reused by an unrelated thread; see the
    /// [module docs](super).
    pub fn lock_timeout(&self, timeout: Duration) -> LockResult<'_, T> {
        self.guarded(|m| m.lock_timeout(timeout))
    }

    /// Blocks until the lock is held or `deadline` passes
    /// ([`LockError::TimedOut`]).
    pub fn lock_until(&self, deadline: Instant) -> LockResult<'_, T> {
        self.guarded(|m| m.lock_until(deadline))
    }

    /// Whether the mutex is permanently unusable (an owner dropped an
    /// owner-dead guard without [`make_consistent`](RobustMutexGuard::make_consistent)).
    pub fn is_not_recoverable(&self) -> bool {
        self.raw.is_not_recoverable()
    }

    /// Takes the lock with `lock` and wraps the outcome in a guard, once
    /// this thread's exit is watched (H6: a leaked guard keeps its thread,
    /// and so the lock, alive).
    #[inline]
    fn guarded(
        &self,
        lock: impl FnOnce(&RawRobustMutex) -> Result<Acquired, Error>,
    ) -> LockResult<'_, T> {
        if let Err(e) = super::held::watch() {
            return Err(LockError::Other(e));
        }
        self.guard(lock(&self.raw))
    }

    fn guard(&self, r: Result<Acquired, Error>) -> LockResult<'_, T> {
        let make = |consistent| {
            super::held::acquired();
            RobustMutexGuard {
                mutex: self,
                consistent,
                _not_send: PhantomData,
            }
        };
        match r {
            Ok(Acquired::Consistent) => Ok(make(true)),
            Ok(Acquired::OwnerDead) => Err(LockError::OwnerDead(OwnerDead { guard: make(false) })),
            Err(Error::NotRecoverable) => Err(LockError::NotRecoverable),
            Err(Error::WouldBlock) => Err(LockError::WouldBlock),
            Err(Error::TimedOut) => Err(LockError::TimedOut),
            Err(e) => Err(LockError::Other(e)),
        }
    }
}

impl<T: AnyBitPattern> fmt::Debug for RobustMutex<T> {
    /// Shows the lock's state, never the data: reading it would need the
    /// lock, and taking the lock could take over a dead owner's lock, which
    /// a debug print must not do.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RobustMutex")
            .field("raw", &self.raw)
            .finish_non_exhaustive()
    }
}

/// An RAII guard of a [`RobustMutex`]: the lock is held while it lives, and
/// released when it is dropped. Dereferences to the data.
///
/// **Dropping a guard that is not [consistent](Self::is_consistent)**, i.e.
/// one obtained from [`LockError::OwnerDead`] without a successful
/// [`make_consistent`](Self::make_consistent), **makes the mutex permanently
/// not recoverable** for every process. A warning is logged when that
/// happens.
///
/// The guard is `!Send`: the lock belongs to the thread that took it (the
/// kernel records its TID as the owner), so only that thread can release it.
///
/// ```compile_fail,E0277
/// use hangsafe::robust::SharedRegion;
///
/// let region = SharedRegion::anonymous(0u32).unwrap();
/// let guard = region.lock().unwrap();
/// std::thread::scope(|s| {
///     s.spawn(move || drop(guard)); // error: the guard is not `Send`
/// });
/// ```
///
/// Errors of the unlock in `Drop` cannot be returned; they are logged with
/// [`log::error!`]. They only happen on misuse (e.g. a guard copied into a
/// `fork` child by the fork itself) or an unexpected kernel error. Use
/// [`RobustMutexGuard::unlock`] to see them.
#[must_use = "if unused the RobustMutex will immediately unlock"]
pub struct RobustMutexGuard<'a, T: AnyBitPattern> {
    mutex: &'a RobustMutex<T>,
    consistent: bool,
    /// `!Send`: the lock is owned by this thread's TID.
    _not_send: PhantomData<*mut ()>,
}

// SAFETY: a shared reference to the guard only gives `&T` (through
// `Deref`), so sharing the guard between threads is sharing a `&T`, which
// is sound when `T: Sync`. The guard is still `!Send`: only the locking
// thread may drop (unlock) it.
unsafe impl<T: AnyBitPattern + Sync> Sync for RobustMutexGuard<'_, T> {}

impl<T: AnyBitPattern> RobustMutexGuard<'_, T> {
    /// The mutex this guard holds (to check that a guard belongs to a
    /// given region).
    pub(crate) fn held(&self) -> *const RobustMutex<T> {
        self.mutex
    }

    /// Marks the data as repaired after an owner died holding the lock, so
    /// that dropping this guard unlocks normally instead of making the
    /// mutex not recoverable.
    ///
    /// Call it only once the data is consistent again: from then on, other
    /// processes trust it. On a guard that is already consistent this does
    /// nothing and returns `Ok`.
    ///
    /// ```
    /// use hangsafe::robust::SharedRegion;
    ///
    /// let region = SharedRegion::anonymous(7u32)?;
    /// let mut guard = region.lock().unwrap();
    /// assert!(guard.is_consistent());
    /// guard.make_consistent()?; // no-op on a consistent guard
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// Those of [`RawRobustMutex::consistent`]; they mean the lock's state
    /// was changed behind this guard (e.g. by another process writing the
    /// shared memory directly).
    pub fn make_consistent(&mut self) -> Result<(), Error> {
        if self.consistent {
            return Ok(());
        }
        self.mutex.raw.consistent()?;
        self.consistent = true;
        Ok(())
    }

    /// Whether the data is vouched for: `true` for a normal lock, `false`
    /// for an owner-dead one until [`make_consistent`](Self::make_consistent)
    /// succeeds.
    pub fn is_consistent(&self) -> bool {
        self.consistent
    }

    /// Unlocks, returning the unlock's error instead of logging it (as
    /// dropping the guard does).
    ///
    /// An associated function (`RobustMutexGuard::unlock(guard)`), so that
    /// it does not shadow a method of `T`.
    ///
    /// ```
    /// use hangsafe::robust::{RobustMutexGuard, SharedRegion};
    ///
    /// let region = SharedRegion::anonymous(0u64)?;
    /// let mut guard = region.lock().unwrap();
    /// *guard += 1;
    /// RobustMutexGuard::unlock(guard)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn unlock(this: Self) -> Result<(), Error> {
        let this = ManuallyDrop::new(this);
        super::held::released();
        let r = this.mutex.raw.unlock();
        if r.is_ok() && !this.consistent {
            warn_not_recoverable();
        }
        r
    }
}

#[cold]
fn warn_not_recoverable() {
    log::warn!(
        "robust mutex: an owner-dead guard was dropped without make_consistent(); \
         the mutex is now permanently not recoverable"
    );
}

impl<T: AnyBitPattern> Deref for RobustMutexGuard<'_, T> {
    type Target = T;

    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: the guard exists only while this thread holds the lock,
        // so no other guard (in any thread or process using the protocol)
        // accesses the data; the `&T` borrows the guard, so it cannot
        // outlive the lock, even when the guard is leaked: a thread never
        // exits with a live guard (`held`, H6), so the lock is not taken
        // over while the borrow may live. Any bytes are a valid `T` (`T: AnyBitPattern`), so a dead
        // owner's partial write cannot make this reference invalid.
        unsafe { &*self.mutex.data.get() }
    }
}

impl<T: AnyBitPattern> DerefMut for RobustMutexGuard<'_, T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`, the lock excludes every other access; the
        // `&mut T` borrows the guard mutably, so it is unique within this
        // thread too.
        unsafe { &mut *self.mutex.data.get() }
    }
}

impl<T: AnyBitPattern> Drop for RobustMutexGuard<'_, T> {
    fn drop(&mut self) {
        super::held::released();
        match self.mutex.raw.unlock() {
            Ok(()) if !self.consistent => warn_not_recoverable(),
            Ok(()) => {}
            Err(e) => log::error!("robust mutex: unlock in guard drop failed: {e}"),
        }
    }
}

impl<T: AnyBitPattern + fmt::Debug> fmt::Debug for RobustMutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RobustMutexGuard")
            .field("data", &**self)
            .field("consistent", &self.consistent)
            .finish()
    }
}

/// The lock is held, but its previous owner died holding it: the protected
/// data may be half-updated. Carries the guard (`G`, usually a
/// [`RobustMutexGuard`]).
///
/// Take the guard with [`into_guard`](Self::into_guard), repair the data,
/// and call [`RobustMutexGuard::make_consistent`]. Dropping this value (or
/// the guard) without that makes the mutex **permanently not recoverable**.
pub struct OwnerDead<G> {
    guard: G,
}

impl<G> OwnerDead<G> {
    /// The guard: the lock is held through it.
    pub fn into_guard(self) -> G {
        self.guard
    }

    /// A reference to the guard.
    pub fn get_ref(&self) -> &G {
        &self.guard
    }

    /// A mutable reference to the guard, to repair the data in place.
    pub fn get_mut(&mut self) -> &mut G {
        &mut self.guard
    }
}

impl<G> fmt::Debug for OwnerDead<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnerDead").finish_non_exhaustive()
    }
}

impl<G> fmt::Display for OwnerDead<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "the previous owner of the robust mutex died holding it; \
             the protected data may be inconsistent",
        )
    }
}

impl<G> std::error::Error for OwnerDead<G> {}

/// Why a lock of a [`RobustMutex`] did not return a normal guard.
///
/// Like `std::sync::TryLockError`, it is generic over the guard it may
/// carry ([`LockError::OwnerDead`]) and implements [`std::error::Error`] for
/// any guard; since a guard borrows the mutex, convert it (e.g. with
/// `to_string()`) before returning it from a function with
/// `Box<dyn Error + 'static>`.
#[non_exhaustive]
pub enum LockError<G> {
    /// The lock **is held** (the guard is inside), but its previous owner
    /// died holding it. See [`OwnerDead`]. `EOWNERDEAD` in C.
    OwnerDead(OwnerDead<G>),
    /// An owner dropped an owner-dead guard without repairing the data; the
    /// mutex can never be locked again. `ENOTRECOVERABLE`.
    NotRecoverable,
    /// `try_lock`: a live thread holds the lock. `EBUSY`.
    WouldBlock,
    /// The timeout or deadline passed first. `ETIMEDOUT`.
    TimedOut,
    /// Any other failure of the raw mutex (e.g. [`Error::Deadlock`]).
    Other(Error),
}

impl<G> From<OwnerDead<G>> for LockError<G> {
    fn from(e: OwnerDead<G>) -> LockError<G> {
        LockError::OwnerDead(e)
    }
}

impl<G> fmt::Debug for LockError<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LockError::OwnerDead(e) => f.debug_tuple("OwnerDead").field(e).finish(),
            LockError::NotRecoverable => f.write_str("NotRecoverable"),
            LockError::WouldBlock => f.write_str("WouldBlock"),
            LockError::TimedOut => f.write_str("TimedOut"),
            LockError::Other(e) => f.debug_tuple("Other").field(e).finish(),
        }
    }
}

impl<G> fmt::Display for LockError<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LockError::OwnerDead(e) => fmt::Display::fmt(e, f),
            LockError::NotRecoverable => fmt::Display::fmt(&Error::NotRecoverable, f),
            LockError::WouldBlock => fmt::Display::fmt(&Error::WouldBlock, f),
            LockError::TimedOut => fmt::Display::fmt(&Error::TimedOut, f),
            LockError::Other(e) => fmt::Display::fmt(e, f),
        }
    }
}

impl<G> std::error::Error for LockError<G> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        // `Other` displays the raw error itself, so it is transparent: its
        // source is the raw error's source.
        match self {
            LockError::Other(e) => e.source(),
            _ => None,
        }
    }
}
