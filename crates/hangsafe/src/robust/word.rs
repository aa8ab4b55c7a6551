//! The lock word and the consistency state: bit layouts and their names.
//!
//! The lock word is a PI futex word as the kernel defines it
//! (`Documentation/locking/pi-futex.rst`): the owner's TID in the low 30
//! bits, [`WAITERS`] when the kernel has (or may have) waiters queued, and
//! [`OWNER_DIED`] when the kernel handed the lock over from a dead owner.
//! Zero is "unlocked". Nothing else is ever stored in it, so that the kernel
//! and userspace always agree on its meaning.

/// Kernel: waiters are (or may be) queued; unlock must go through
/// `FUTEX_UNLOCK_PI`.
pub(crate) const WAITERS: u32 = 0x8000_0000;
/// Kernel: the previous owner died while holding the lock.
pub(crate) const OWNER_DIED: u32 = 0x4000_0000;
/// The owner's TID.
pub(crate) const TID_MASK: u32 = 0x3fff_ffff;

/// `state`: the data the mutex protects is consistent.
pub(crate) const CONSISTENT: u32 = 0;
/// `state`: an owner died holding the lock; the current owner has been told
/// (`OwnerDead`) and has not yet called `consistent`.
pub(crate) const INCONSISTENT: u32 = 1;
/// `state`: an owner unlocked while inconsistent; the mutex is permanently
/// unusable.
pub(crate) const NOT_RECOVERABLE: u32 = 2;

/// Magic number of an initialised raw mutex ("HSRM").
pub(crate) const MAGIC: u32 = 0x4853_524d;

/// The owner TID of a lock word (0 when unlocked).
#[inline]
pub(crate) const fn owner(word: u32) -> u32 {
    word & TID_MASK
}
