//! R24: no write after unlock. The mutex's memory is reused the moment
//! unlock returns (or, harsher, the moment the releasing CAS is done,
//! while the owner is still inside `unlock`), with bytes that look like
//! the owner's TID; then the owner is killed. The bytes must never change.
//!
//! The same harness runs glibc's robust process-shared mutex as a foil.
//! glibc releases with an atomic exchange and clears the thread's
//! `list_op_pending` afterwards; an owner killed between the two leaves the
//! kernel a pointer to memory that is no longer a mutex, and the kernel's
//! exit path (`handle_futex_death`) sets `OWNER_DIED` in it if the word
//! there equals the dead TID (glibc BZ 14485). The test puts the owner in
//! exactly that state: a real glibc lock and unlock, then
//! `list_op_pending` pointed back at the mutex, which is what the thread's
//! memory holds between those two instructions; it cannot stop a thread
//! between two of glibc's instructions by other means.

use super::support::*;
use crate::robust::kernel::Point;
use crate::robust::RawRobustMutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(20);

/// The arena: the lock under test first (its bytes are what is reused),
/// then bookkeeping.
#[repr(C, align(64))]
struct Arena<L> {
    lock: L,
    _pad: [u64; 8],
    /// The owner's TID, published when it reached the point to be killed.
    tid: AtomicU32,
    gate: AtomicU32,
    arrived: AtomicU32,
    held: AtomicU32,
}

/// Overwrites the first `len` bytes at `p` with `tid`-like values (the TID
/// alone, with WAITERS, with OWNER_DIED) and returns the copy written.
fn reuse(p: *mut u8, len: usize, tid: u32) -> Vec<u8> {
    let words = [tid, tid | 0x8000_0000, tid | 0x4000_0000, tid];
    let mut bytes = Vec::with_capacity(len);
    for i in 0..len / 4 {
        bytes.extend_from_slice(&words[i % words.len()].to_ne_bytes());
    }
    // Offset 0 (the futex word in both layouts) holds the plain TID.
    bytes[..4].copy_from_slice(&tid.to_ne_bytes());
    // SAFETY: `p` points to `len` writable bytes of the shared arena, and
    // no live process uses them as a lock any more (the owner released
    // it and is paused); this is the reuse the test is about.
    unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), p, len) };
    bytes
}

fn read(p: *const u8, len: usize) -> Vec<u8> {
    // SAFETY: `p` points to `len` readable bytes of the shared arena.
    unsafe { std::slice::from_raw_parts(p, len).to_vec() }
}

fn my_tid() -> u32 {
    // SAFETY: gettid cannot fail.
    unsafe { libc::gettid() as u32 }
}

/// R24: killed inside unlock right after the releasing CAS, or right after
/// unlock returned, with the memory already reused: unchanged, for an
/// uncontended unlock (CAS) and a contended one (FUTEX_UNLOCK_PI), and
/// (R63) by an owner that took the lock over from a dead holder through
/// the liveness check.
#[test]
fn r24_reused_after_unlock_never_written() {
    for (contended, at_cas, recovered) in [
        (false, true, false),
        (false, false, false),
        (true, false, false),
        (false, true, true),
        (false, false, true),
    ] {
        // SAFETY: all-zero bytes are a valid value of the mapped type (atomics,
        // a raw mutex before `init`, a zeroed `pthread_mutex_t`).
        let ar: Shm<Arena<RawRobustMutex>> = unsafe { Shm::zeroed() };
        ar.lock.init().unwrap();
        let waiter = contended.then(|| {
            // A waiter that takes the lock, releases it and exits: the
            // owner's unlock has to hand over through the kernel.
            let h = fork(|| {
                let _ = ar.lock.lock_with(&FailKernel::plain(), None);
                ar.held.store(1, Ordering::SeqCst);
                while ar.gate.load(Ordering::SeqCst) == 0 {
                    std::thread::yield_now();
                }
                let _ = ar.lock.unlock_with(&FailKernel::plain());
                code::CONSISTENT
            });
            eventually(LIMIT, "held", || ar.held.load(Ordering::SeqCst) == 1);
            h
        });
        if recovered {
            // A holder dies with nobody waiting and is reaped: the owner
            // below finds its TID gone (R63) and takes over.
            let dead = fork(|| {
                let _ = ar.lock.lock_with(&FailKernel::plain(), None);
                die()
            });
            assert_eq!(dead.wait(LIMIT), Exit::Signal(libc::SIGKILL));
        }
        let owner = fork(|| {
            let k = FailKernel::plain();
            match ar.lock.lock_with(&k, None) {
                Ok(crate::robust::Acquired::Consistent) if !recovered => {}
                Ok(crate::robust::Acquired::OwnerDead) if recovered => {
                    if ar.lock.consistent_with(&k).is_err() {
                        return code::OTHER;
                    }
                }
                _ => return code::OTHER,
            }
            ar.tid.store(my_tid(), Ordering::SeqCst);
            if at_cas {
                // Pause forever inside unlock, right after the CAS; the
                // parent's reuse and SIGKILL happen there.
                let k = FailKernel {
                    kill_at: None,
                    pause_at: Some((Point::AfterUnlockCas, &ar.gate)),
                    arrived: Some(&ar.arrived),
                    kernel_only: false,
                };
                let _ = ar.lock.unlock_with(&k);
            } else {
                let _ = ar.lock.unlock_with(&FailKernel::plain());
                ar.arrived.store(1, Ordering::SeqCst);
            }
            loop {
                std::thread::yield_now();
            }
        });
        if let Some(w) = waiter {
            // The owner is queued behind the waiter. The waiter's unlock
            // hands it the lock through the kernel, which always sets
            // WAITERS on a hand-over, so the owner's own unlock must go
            // through FUTEX_UNLOCK_PI too: the kernel path is exercised.
            eventually(LIMIT, "owner blocked", || blocked_in_futex(owner.pid));
            settle();
            ar.gate.store(1, Ordering::SeqCst);
            assert_eq!(w.wait(LIMIT), Exit::Code(code::CONSISTENT));
            ar.gate.store(0, Ordering::SeqCst);
        }
        eventually(LIMIT, "owner released", || {
            ar.arrived.load(Ordering::SeqCst) == 1
        });
        let tid = ar.tid.load(Ordering::SeqCst);
        let p = &ar.lock as *const RawRobustMutex as *mut u8;
        let written = reuse(p, RawRobustMutex::SIZE, tid);
        owner.kill();
        assert_eq!(owner.wait(LIMIT), Exit::Signal(libc::SIGKILL));
        assert_eq!(
            read(p, RawRobustMutex::SIZE),
            written,
            "reused memory changed after the owner died \
             (contended={contended}, at_cas={at_cas}, recovered={recovered})"
        );
    }
}

/// The glibc foil: the same harness with a robust process-shared
/// `pthread_mutex_t`. The owner's death with `list_op_pending` still set
/// makes the kernel write `OWNER_DIED` into memory that was reused.
#[test]
fn r24_glibc_robust_mutex_writes_after_unlock_foil() {
    // SAFETY: all-zero bytes are a valid value of the mapped type (atomics,
    // a raw mutex before `init`, a zeroed `pthread_mutex_t`).
    let ar: Shm<Arena<libc::pthread_mutex_t>> = unsafe { Shm::zeroed() };
    let m = &ar.lock as *const libc::pthread_mutex_t as *mut libc::pthread_mutex_t;
    // SAFETY: `m` points to zeroed shared memory large enough for a
    // pthread_mutex_t; the attribute object is initialised and destroyed
    // here; every call's result is checked.
    unsafe {
        let mut a: libc::pthread_mutexattr_t = std::mem::zeroed();
        assert_eq!(libc::pthread_mutexattr_init(&mut a), 0);
        assert_eq!(
            libc::pthread_mutexattr_setpshared(&mut a, libc::PTHREAD_PROCESS_SHARED),
            0
        );
        assert_eq!(
            libc::pthread_mutexattr_setrobust(&mut a, libc::PTHREAD_MUTEX_ROBUST),
            0
        );
        assert_eq!(libc::pthread_mutex_init(m, &a), 0);
        libc::pthread_mutexattr_destroy(&mut a);
    }
    let owner = fork(|| {
        // SAFETY: `m` is an initialised robust pshared mutex in memory
        // shared with the parent; this child is single-threaded.
        unsafe {
            if libc::pthread_mutex_lock(m) != 0 || libc::pthread_mutex_unlock(m) != 0 {
                return code::OTHER;
            }
        }
        // Rebuild the state between glibc's releasing exchange and its
        // clearing of list_op_pending: the thread's robust list head (glibc
        // registered it with set_robust_list) points its pending op at the
        // mutex again.
        let mut head: *mut usize = std::ptr::null_mut();
        let mut len: usize = 0;
        // SAFETY: valid out-pointers; pid 0 is the calling thread.
        let r = unsafe {
            libc::syscall(
                libc::SYS_get_robust_list,
                0,
                &mut head as *mut *mut usize,
                &mut len as *mut usize,
            )
        };
        if r != 0 || head.is_null() || len != 3 * std::mem::size_of::<usize>() {
            return code::BUSY;
        }
        // struct robust_list_head { list; long futex_offset; list_op_pending }
        // SAFETY: `head` is this thread's live robust list head (glibc's
        // struct pthread member), three words long as the kernel reported.
        unsafe {
            let futex_offset = *head.add(1) as isize;
            let entry = (m as *mut u8).offset(-futex_offset);
            *head.add(2) = entry as usize;
        }
        ar.tid.store(my_tid(), Ordering::SeqCst);
        ar.arrived.store(1, Ordering::SeqCst);
        loop {
            std::thread::yield_now();
        }
    });
    eventually(LIMIT, "glibc owner released", || {
        ar.arrived.load(Ordering::SeqCst) == 1 || proc_state(owner.pid) == Some('Z')
    });
    if ar.arrived.load(Ordering::SeqCst) == 0 {
        let exit = owner.wait(LIMIT);
        if exit == Exit::Code(code::BUSY) && under_emulation() {
            // qemu-user does not implement set_robust_list: glibc's robust
            // mutexes are not robust there at all, so there is no window.
            eprintln!("r24 foil: no robust list under emulation; nothing to show");
            return;
        }
        panic!("the glibc owner could not set up the window: {exit:?}");
    }
    let tid = ar.tid.load(Ordering::SeqCst);
    assert_ne!(tid, 0, "the glibc owner could not set up the window");
    let len = std::mem::size_of::<libc::pthread_mutex_t>();
    let written = reuse(m.cast(), len, tid);
    owner.kill();
    assert_eq!(owner.wait(LIMIT), Exit::Signal(libc::SIGKILL));
    let after = read(m.cast(), len);
    let word = u32::from_ne_bytes(after[..4].try_into().unwrap());
    eprintln!(
        "r24 foil: glibc robust mutex, reused word {tid:#x} became {word:#x} after the owner died"
    );
    assert_ne!(
        after, written,
        "expected the kernel to write into the reused memory (glibc BZ 14485)"
    );
    // handle_futex_death replaced the "TID" with WAITERS|OWNER_DIED bits.
    assert_eq!(
        word, 0x4000_0000,
        "the kernel's OWNER_DIED store in the reused word"
    );
}
