//! R34: the SIGKILL storm.
//!
//! Several processes hammer a critical section that updates two fields
//! (`a += 1`, work, `b += 1`: they are equal whenever the lock is free).
//! The parent kills them at random moments and respawns them, for a few
//! seconds (`HANGSAFE_STORM_SECS`, default 3). Each kill is exact about
//! whether the victim held the lock: the parent stops it (SIGSTOP), reads
//! the lock word (only the holder can change a word that names it), then
//! SIGKILLs it. The test checks:
//!
//! * no hang: the survivors keep making progress, and the parent can lock
//!   at the end;
//! * no double owner: an owner entering finds nobody inside;
//! * no inconsistent data after recovery: a clean (`Consistent`) lock
//!   always finds `a == b`; an `OwnerDead` lock repairs them;
//! * `OwnerDead` is seen if and only if a holder died: the number of
//!   `OwnerDead` results equals the number of victims that held the lock.

use super::support::*;
use crate::robust::{Acquired, RawRobustMutex};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

const WORKERS: usize = 4;

#[repr(C)]
struct Storm {
    m: RawRobustMutex,
    a: AtomicU64,
    b: AtomicU64,
    /// Owners inside the critical section (0 or 1).
    inside: AtomicU32,
    owner_dead: AtomicU64,
    clean: AtomicU64,
    double_owner: AtomicU64,
    inconsistent: AtomicU64,
    errors: AtomicU64,
    /// The first failure: 1000 * step + errno (1 lock, 2 consistent, 3 unlock).
    first_error: AtomicU32,
}

fn worker(s: &Storm, seed: u64) -> i32 {
    let mut rng = seed | 1;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    loop {
        match s.m.lock() {
            Ok(Acquired::Consistent) => {
                if s.inside.swap(1, Ordering::Relaxed) != 0 {
                    s.double_owner.fetch_add(1, Ordering::Relaxed);
                }
                if s.a.load(Ordering::Relaxed) != s.b.load(Ordering::Relaxed) {
                    s.inconsistent.fetch_add(1, Ordering::Relaxed);
                }
                s.clean.fetch_add(1, Ordering::Relaxed);
            }
            Ok(Acquired::OwnerDead) => {
                // The dead holder may have left `inside` at 1 and a != b.
                s.inside.store(1, Ordering::Relaxed);
                s.b.store(s.a.load(Ordering::Relaxed), Ordering::Relaxed);
                s.owner_dead.fetch_add(1, Ordering::Relaxed);
                if let Err(e) = s.m.consistent() {
                    fail(s, 2, &e);
                    return code::OTHER;
                }
            }
            Err(e) => {
                fail(s, 1, &e);
                return code::OTHER;
            }
        }
        s.a.fetch_add(1, Ordering::Relaxed);
        for _ in 0..(next() % 64) {
            std::hint::spin_loop();
        }
        s.b.fetch_add(1, Ordering::Relaxed);
        s.inside.store(0, Ordering::Relaxed);
        if let Err(e) = s.m.unlock() {
            fail(s, 3, &e);
            return code::OTHER;
        }
        if next() % 8 == 0 {
            std::thread::yield_now();
        }
    }
}

/// Called with the holder stopped, before it is killed. Every earlier
/// holder death hands exactly one `OwnerDead` to the next locker, which
/// counts it in `owner_dead`. A holder stopped between `lock()` returning
/// `OwnerDead` and its count has taken that `OwnerDead` with it: the count
/// is then one short of the earlier deaths, and only this holder can be the
/// one (it holds the lock, so nobody else can be recovering). Count it on
/// its behalf, so that "`OwnerDead` iff a holder died" stays exact (the
/// window is a few instructions wide; qemu-user under load hit it).
fn settle_uncounted_recovery(s: &Storm, earlier_deaths: u64) {
    let counted = s.owner_dead.load(Ordering::Relaxed);
    assert!(
        counted + 1 >= earlier_deaths,
        "{earlier_deaths} holder deaths but only {counted} OwnerDead"
    );
    if counted < earlier_deaths {
        s.owner_dead.fetch_add(1, Ordering::Relaxed);
    }
}

fn fail(s: &Storm, step: u32, e: &crate::robust::Error) {
    let _ = s.first_error.compare_exchange(
        0,
        step * 1000 + e.errno() as u32,
        Ordering::Relaxed,
        Ordering::Relaxed,
    );
    s.errors.fetch_add(1, Ordering::Relaxed);
}

#[test]
fn r34_sigkill_storm() {
    let secs: u64 = std::env::var("HANGSAFE_STORM_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    // SAFETY: all-zero bytes are a valid value of the mapped type (atomics,
    // a raw mutex before `init`, a zeroed `pthread_mutex_t`).
    let s: Shm<Storm> = unsafe { Shm::zeroed() };
    s.m.init().unwrap();
    let mut seed = 0x9e37_79b9_7f4a_7c15u64 ^ std::process::id() as u64;
    let mut rand = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut kids: Vec<Child> = (0..WORKERS)
        .map(|_| {
            let r = rand();
            fork(|| worker(&s, r))
        })
        .collect();
    let (mut kills, mut died_holding) = (0u64, 0u64);
    let end = Instant::now() + Duration::from_secs(secs);
    let mut last_progress = (Instant::now(), 0u64);
    while Instant::now() < end {
        std::thread::sleep(Duration::from_micros(200 + rand() % 5000));
        let i = (rand() % WORKERS as u64) as usize;
        let victim = &kids[i];
        // Stop it, so that whether it holds the lock cannot change.
        // SAFETY: signalling our own unreaped child.
        unsafe { libc::kill(victim.pid, libc::SIGSTOP) };
        eventually(Duration::from_secs(10), "victim stopped", || {
            matches!(proc_state(victim.pid), Some('T') | Some('t') | Some('Z'))
        });
        let word = s.m.debug_word();
        if word & 0x3fff_ffff == victim.pid as u32 {
            settle_uncounted_recovery(&s, died_holding);
            died_holding += 1;
        }
        victim.kill();
        let old = std::mem::replace(&mut kids[i], {
            let r = rand();
            fork(|| worker(&s, r))
        });
        assert_eq!(
            old.wait(Duration::from_secs(10)),
            Exit::Signal(libc::SIGKILL)
        );
        kills += 1;
        let done = s.clean.load(Ordering::Relaxed) + s.owner_dead.load(Ordering::Relaxed);
        if done != last_progress.1 {
            last_progress = (Instant::now(), done);
        }
        assert!(
            last_progress.0.elapsed() < Duration::from_secs(10),
            "no progress for 10 s: hang (word {:#x})",
            s.m.debug_word()
        );
        assert_eq!(
            s.errors.load(Ordering::Relaxed),
            0,
            "a worker failed: {}",
            s.first_error.load(Ordering::Relaxed)
        );
    }
    // Stop the storm: stop everyone, count the holder, kill them all.
    for k in &kids {
        // SAFETY: our own unreaped children.
        unsafe { libc::kill(k.pid, libc::SIGSTOP) };
    }
    for k in &kids {
        eventually(Duration::from_secs(10), "worker stopped", || {
            matches!(proc_state(k.pid), Some('T') | Some('t') | Some('Z'))
        });
    }
    let word = s.m.debug_word();
    if kids.iter().any(|k| word & 0x3fff_ffff == k.pid as u32) {
        settle_uncounted_recovery(&s, died_holding);
        died_holding += 1;
    }
    for k in kids {
        k.kill();
        assert_eq!(k.wait(Duration::from_secs(10)), Exit::Signal(libc::SIGKILL));
        kills += 1;
    }
    // The parent recovers whatever is left.
    let how =
        s.m.lock_timeout(Duration::from_secs(10))
            .expect("final lock: hang or error");
    if how == Acquired::OwnerDead {
        s.owner_dead.fetch_add(1, Ordering::Relaxed);
        s.b.store(s.a.load(Ordering::Relaxed), Ordering::Relaxed);
        s.m.consistent().unwrap();
    } else {
        assert_eq!(s.a.load(Ordering::Relaxed), s.b.load(Ordering::Relaxed));
    }
    s.m.unlock().unwrap();
    let (clean, dead) = (
        s.clean.load(Ordering::Relaxed),
        s.owner_dead.load(Ordering::Relaxed),
    );
    eprintln!(
        "r34 storm: {secs} s, {kills} kills, {died_holding} while holding, \
         {dead} OwnerDead, {clean} clean locks"
    );
    assert_eq!(
        s.double_owner.load(Ordering::Relaxed),
        0,
        "two owners at once"
    );
    assert_eq!(
        s.inconsistent.load(Ordering::Relaxed),
        0,
        "a clean lock saw a != b"
    );
    assert_eq!(s.errors.load(Ordering::Relaxed), 0);
    assert_eq!(
        dead, died_holding,
        "OwnerDead must be seen iff a holder died"
    );
    assert!(kills >= 10 && clean > 1000, "the storm did too little");
}
