//! Who the calling thread is: TID, a per-thread nonce, and the PID
//! namespace, cached per thread and corrected after `fork`.
//!
//! * The TID is what the kernel writes into a PI futex word, so the
//!   protocol must use exactly `gettid()` in the caller's namespace.
//! * The nonce is 64 random bits drawn once per thread. The word alone
//!   cannot tell "I hold this lock" from "a dead thread that had my TID
//!   holds it" (TIDs are reused; `pid_max` may be as small as 32768); the
//!   owner's nonce, stored next to the word, can.
//! * The namespace is the inode of `/proc/self/ns/pid`, compared with the
//!   one the mutex was initialised in.
//!
//! A `fork` child has a new TID but a copy of the parent's thread-locals,
//! and, after `unshare(CLONE_NEWPID)`, a new namespace. A `pthread_atfork`
//! child handler (registered on first use) clears both caches, so the
//! child's first lock reads them afresh. A child created by a raw
//! `clone`/`clone3` syscall skips the handler; such a child must not use a
//! robust mutex before `exec`.

use super::error::Error;
use super::kernel::Me;
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Once;

// This thread's identity, one cell per field; `ME_TID == 0` means "not
// read yet". Separate cells, not one `Cell<Me>`: copying the padded struct
// out made the compiler read it back with loads that straddle the earlier
// narrower stores, a store-forwarding stall that cost about a quarter of
// an uncontended lock+unlock (measured, `benches/robust.rs`).
thread_local! {
    static ME_TID: Cell<u32> = const { Cell::new(0) };
    static ME_NONCE: Cell<u64> = const { Cell::new(0) };
    static ME_NS: Cell<u64> = const { Cell::new(0) };
}

/// This process's PID namespace inode; 0 means "not read yet".
static PID_NS: AtomicU64 = AtomicU64::new(0);

static ATFORK: Once = Once::new();

/// The calling thread's identity.
#[inline]
pub(crate) fn me() -> Result<Me, Error> {
    match cached() {
        Some(m) => Ok(m),
        None => me_slow(),
    }
}

/// The calling thread's identity if it was read before (and not cleared by
/// a fork since): three thread-local loads, no call.
#[inline(always)]
pub(crate) fn cached() -> Option<Me> {
    let tid = ME_TID.get();
    if tid == 0 {
        return None;
    }
    Some(Me {
        tid,
        nonce: ME_NONCE.get(),
        ns: ME_NS.get(),
    })
}

/// Registers the fork handler (once), before anything is cached.
fn register_atfork() {
    ATFORK.call_once(|| {
        // SAFETY: `after_fork_child` is an `extern "C" fn()` that stays
        // valid for the life of the process (it is a static function).
        let r = unsafe { libc::pthread_atfork(None, None, Some(after_fork_child)) };
        if r != 0 {
            log::warn!("robust mutex: pthread_atfork failed ({r}); fork children must exec");
        }
    });
}

#[cold]
#[inline(never)]
fn me_slow() -> Result<Me, Error> {
    let ns = pid_namespace()?;
    // SAFETY: gettid has no arguments and cannot fail.
    let tid = unsafe { libc::gettid() } as u32;
    let m = Me {
        tid,
        nonce: nonce(),
        ns,
    };
    ME_NONCE.set(m.nonce);
    ME_NS.set(m.ns);
    ME_TID.set(m.tid);
    Ok(m)
}

/// The PID namespace this process lives in (inode of `/proc/self/ns/pid`).
pub(crate) fn pid_namespace() -> Result<u64, Error> {
    let ns = PID_NS.load(Ordering::Relaxed);
    if ns != 0 {
        return Ok(ns);
    }
    // Whatever is cached from here on must be cleared in fork children
    // (a child may be in another namespace after unshare(CLONE_NEWPID)).
    register_atfork();
    let meta = std::fs::metadata("/proc/self/ns/pid").map_err(|e| {
        Error::Os(std::io::Error::new(
            e.kind(),
            format!("cannot identify the PID namespace (/proc/self/ns/pid): {e}"),
        ))
    })?;
    let ns = std::os::unix::fs::MetadataExt::ino(&meta);
    PID_NS.store(ns, Ordering::Relaxed);
    Ok(ns)
}

/// 64 random, nonzero bits.
fn nonce() -> u64 {
    let mut buf = [0u8; 8];
    // SAFETY: `buf` is valid for 8 bytes of writes.
    let n = unsafe { libc::getrandom(buf.as_mut_ptr().cast(), buf.len(), libc::GRND_NONBLOCK) };
    let mut v = u64::from_ne_bytes(buf);
    if n != 8 {
        // No entropy yet (early boot): mix what is unique to this thread.
        // SAFETY: gettid/getpid cannot fail.
        let (tid, pid) = unsafe { (libc::gettid() as u64, libc::getpid() as u64) };
        let t = super::kernel::clock(libc::CLOCK_MONOTONIC);
        v = splitmix(tid << 32 ^ pid ^ (t.0 as u64) << 20 ^ t.1 as u64 ^ &buf as *const _ as u64);
    }
    v | 1
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// `pthread_atfork` child handler: runs in the child, on the only thread,
/// before `fork` returns there. Clears the caches so they are read afresh.
extern "C" fn after_fork_child() {
    PID_NS.store(0, Ordering::Relaxed);
    // Const-initialised `Cell`s: no lazy init, no destructor, no
    // allocation. A zero TID makes the next `me()` read everything afresh.
    ME_TID.set(0);
}
