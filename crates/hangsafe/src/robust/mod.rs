//! A process-shared robust mutex that survives its owner's death, loses no
//! wakeup, and is never written after unlock.
//!
//! glibc's robust mutexes have two design flaws (Torvald Riegel, LKML,
//! December 2016): a waiter's wakeup is lost when the releasing thread dies
//! between its store and `FUTEX_WAKE` (fixed in the kernel since 5.5), and
//! the kernel may write to the mutex after it was unlocked, because the
//! thread's `list_op_pending` still points at it when it dies, by which
//! time the memory may belong to another object (glibc BZ 14485).
//!
//! # Design
//!
//! hangsafe uses **PI futexes and no robust list**:
//!
//! * Lock is a CAS of the word from 0 to the caller's TID; unlock a CAS
//!   back to 0. Contended lock is `FUTEX_LOCK_PI2`, contended unlock
//!   `FUTEX_UNLOCK_PI`, which hands the lock to the top waiter in one
//!   kernel operation.
//! * An owner that dies with waiters queued owns their `pi_state`; the
//!   kernel's exit path (`exit_pi_state_list`) releases it, and the waiter
//!   it wakes finds `OWNER_DIED` in the word: **no lost wakeup**, on any
//!   kernel, because the wakeup is the kernel's own hand-over and not a
//!   separate `FUTEX_WAKE` the dying thread had to issue.
//! * An owner that dies without waiters leaves its TID in the word. A
//!   contended locker that sees the word stand still asks whether that
//!   TID still exists (a signal-0 `kill`); if not, it takes over with a
//!   CAS from that exact word (R63 in `docs/races.md`). Otherwise its
//!   `FUTEX_LOCK_PI2` fails with `ESRCH` (no such task) and it takes over
//!   the same way.
//! * Because nothing is registered with the kernel outside a syscall,
//!   **nothing writes the mutex after unlock's CAS**: there is no
//!   `list_op_pending` for the exit path to follow.
//!
//! The price, measured in `benches/robust.rs` and the README:
//!
//! * a kernel hand-over on contended unlock: a queued waiter gets the lock
//!   strictly, with a sleep and a wakeup, where glibc's non-PI robust
//!   mutex lets the unlocker barge. A contended lock therefore waits in
//!   userspace first, for as long as the word keeps changing and backing
//!   off between looks (R37, R64; `spin.rs`), and queues only once the
//!   word stands still;
//! * recovery from an owner that died with nobody waiting costs a
//!   liveness check (a syscall), where glibc finds `OWNER_DIED` already
//!   written into the mutex by the kernel, which is the very write this
//!   design forbids;
//! * priority inheritance semantics, a feature for the daemons hangsafe is
//!   for.
//!
//! See [`RawRobustMutex`] for the field by field protocol, and
//! `docs/races.md` (R24–R37) and `docs/races.md` (R63, R64) for every
//! race it handles and the test that shows it.
//!
//! # What cannot be detected
//!
//! * **A dead owner's TID reused by an unrelated live thread before anyone
//!   looks.** The kernel then believes that thread owns the lock, and
//!   waiters sleep until it exits (at which point they are handed the lock
//!   with `OWNER_DIED`). Reuse by a thread that itself uses the mutex is
//!   detected (its nonce differs from the owner's). TIDs are allocated
//!   cyclically, so this needs `pid_max` allocations (32768 by default on
//!   some systems, 4194304 on most 64-bit ones) between the death and the
//!   next lock attempt; use [`RawRobustMutex::lock_timeout`] where that
//!   matters.
//! * **A live owner that hangs** is indistinguishable from a slow one;
//!   the lock stays held. Use a timed lock.
//! * **Other PID namespaces.** TIDs mean nothing across namespaces, so a
//!   mutex refuses callers from a namespace other than the one it was
//!   initialised in ([`Error::ForeignNamespace`]) rather than misjudge an
//!   owner dead.
//! * **Children of raw `clone`** that skip `pthread_atfork` handlers keep
//!   the parent's cached TID; they must not use the mutex before `exec`.
//!   `fork()` children are handled.
//!
//! # Fork, exec, signals, timeouts
//!
//! * A `fork` child does not hold its parent's locks (its TID differs);
//!   its `unlock` of one is [`Error::NotOwner`].
//! * `exec` by a holder releases nothing: the lock is held by a thread
//!   that no longer knows it. If the exec'ing thread is the only thread,
//!   the kernel's exec path hands queued waiters the lock with `OWNER_DIED`
//!   (it releases `pi_state`s as at exit); without waiters, the TID stays
//!   alive and the lock stays held. Do not exec while holding.
//! * A signal during a blocked lock runs its handler and the kernel
//!   restarts the wait (`FUTEX_LOCK_PI` is never interrupted with `EINTR`).
//!   The hangsafe cancel signal does not cancel a lock.
//! * A timed-out lock may leave `WAITERS` set; the owner's next unlock then
//!   takes the kernel path, which clears it.

#[cfg(not(hangsafe_loom))]
mod any_bit_pattern;
mod error;
#[cfg(not(hangsafe_loom))]
mod held;
#[cfg(not(hangsafe_loom))]
mod ident;
mod kernel;
#[cfg(not(hangsafe_loom))]
mod mutex;
mod raw;
#[cfg(not(hangsafe_loom))]
mod region;
mod spin;
mod word;

#[cfg(all(test, not(hangsafe_loom)))]
mod logic_tests;
// Real processes and syscalls: not under Miri.
#[cfg(all(test, not(hangsafe_loom), not(miri)))]
mod tests;

#[cfg(hangsafe_loom)]
mod loom_tests;

#[cfg(not(hangsafe_loom))]
pub use any_bit_pattern::AnyBitPattern;
pub use error::{Acquired, Error};
#[cfg(not(hangsafe_loom))]
pub use mutex::{LockError, LockResult, OwnerDead, RobustMutex, RobustMutexGuard};
pub use raw::RawRobustMutex;
#[cfg(not(hangsafe_loom))]
pub use region::{RegionError, RegionOptions, RegionTrust, SharedRegion, UntrustedReason};
