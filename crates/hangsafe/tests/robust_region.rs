//! `SharedRegion` and the typed `RobustMutex<T>` across real processes.
//!
//! Children are made with `fork` from the multi-threaded test harness. A
//! child runs the region/mutex API under test, atomics on shared memory and
//! raw syscalls, then `_exit`s with a code that the parent checks: it never
//! panics on purpose, never prints, and never returns into the harness.
//! (Opening a region allocates; glibc's `fork` leaves `malloc` usable in
//! the child.)
//!
//! Every named region has a unique name (`hangsafe-test-<pid>-<n>`) owned by
//! a guard that unlinks it when the test ends, pass or fail. Every wait on a
//! child is bounded: a hang fails the test instead of hanging it.

use hangsafe::robust::{
    AnyBitPattern, Error, LockError, RegionError, RegionOptions, RobustMutexGuard, SharedRegion,
};
use hangsafe_testkit::process::{die, fork, Child, Exit, Shm};
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Hard cap on waiting for any child.
const LONG: Duration = Duration::from_secs(30);

// ---- test support ----

/// A unique region name, unlinked when dropped.
struct Name(String);

impl Name {
    fn new() -> Name {
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        Name(format!("hangsafe-test-{}-{n}", std::process::id()))
    }

    fn path(&self) -> String {
        format!("/dev/shm/{}", self.0)
    }
}

impl std::ops::Deref for Name {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl Drop for Name {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(self.path());
    }
}

/// Spins (yielding) until `flag` is nonzero.
fn await_flag(flag: &AtomicU32) {
    while flag.load(Ordering::SeqCst) == 0 {
        std::hint::spin_loop();
        // SAFETY: no preconditions.
        unsafe { libc::sched_yield() };
    }
}

/// Child exit codes.
mod code {
    pub(crate) const OK: i32 = 0;
    pub(crate) const NOT_READY: i32 = 10;
    pub(crate) const OWNER_DEAD: i32 = 11;
    pub(crate) const NOT_RECOVERABLE: i32 = 12;
    pub(crate) const LOCK_FAILED: i32 = 13;
    pub(crate) const OPEN_FAILED: i32 = 14;
    pub(crate) const WRONG_DATA: i32 = 15;
}

fn lock_code<G>(e: &LockError<G>) -> i32 {
    match e {
        LockError::OwnerDead(_) => code::OWNER_DEAD,
        LockError::NotRecoverable => code::NOT_RECOVERABLE,
        _ => code::LOCK_FAILED,
    }
}

/// Two fields that must stay equal: updated one at a time under the lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C)]
struct Pair {
    a: u64,
    b: u64,
}

// SAFETY: repr(C), two u64s: every bit pattern is valid; no pointers.
unsafe impl AnyBitPattern for Pair {}

/// Creates a file under /dev/shm holding exactly `bytes`.
fn write_shm_file(name: &Name, bytes: &[u8]) {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(name.path())
        .expect("create test file");
    f.write_all(bytes).expect("write test file");
}

fn read_shm_file(name: &Name) -> Vec<u8> {
    std::fs::read(name.path()).expect("read test file")
}

// ---- races between processes ----

/// N processes race `create_or_open` on one name, released together:
/// exactly one creates (its `init` is what everybody reads), nobody gets
/// `NotReady` or any other error.
#[test]
fn r36_create_or_open_race_between_processes_has_one_creator_and_one_value() {
    const N: usize = 8;
    #[repr(C)]
    struct Board {
        gate: AtomicU32,
        arrived: AtomicU32,
        /// Per child: 1 + created, data.a, data.b.
        slots: [[AtomicU64; 3]; N],
    }
    for _round in 0..5 {
        let name = Name::new();
        // SAFETY: all-zero bytes are a valid `Board` (atomics only).
        let board = unsafe { Shm::<Board>::zeroed() };
        let children: Vec<Child> = (0..N)
            .map(|i| {
                let (board, name) = (&*board, &*name);
                fork(move || {
                    board.arrived.fetch_add(1, Ordering::SeqCst);
                    await_flag(&board.gate);
                    let k = i as u64 + 1;
                    let region = match SharedRegion::create_or_open(name, Pair { a: k, b: k * 100 })
                    {
                        Ok(r) => r,
                        Err(RegionError::NotReady { .. }) => return code::NOT_READY,
                        Err(_) => return code::OPEN_FAILED,
                    };
                    let data = match region.lock() {
                        Ok(g) => *g,
                        Err(e) => return lock_code(&e),
                    };
                    let slot = &board.slots[i];
                    slot[1].store(data.a, Ordering::SeqCst);
                    slot[2].store(data.b, Ordering::SeqCst);
                    slot[0].store(1 + u64::from(region.is_creator()), Ordering::SeqCst);
                    code::OK
                })
            })
            .collect();
        let end = Instant::now() + LONG;
        while board.arrived.load(Ordering::SeqCst) < N as u32 {
            assert!(Instant::now() < end, "children did not start");
            std::thread::yield_now();
        }
        board.gate.store(1, Ordering::SeqCst);
        for c in children {
            assert_eq!(c.wait(LONG), Exit::Code(code::OK));
        }
        let creators: Vec<usize> = (0..N)
            .filter(|&i| board.slots[i][0].load(Ordering::SeqCst) == 2)
            .collect();
        assert_eq!(creators.len(), 1, "creators: {creators:?}");
        let k = creators[0] as u64 + 1;
        for slot in &board.slots {
            assert_eq!(slot[1].load(Ordering::SeqCst), k);
            assert_eq!(slot[2].load(Ordering::SeqCst), k * 100);
        }
        // And a later process sees the same region.
        let again: SharedRegion<Pair> = SharedRegion::open(&name).unwrap();
        assert_eq!(*again.lock().unwrap(), Pair { a: k, b: k * 100 });
    }
}

/// Processes that open a file before its creator (initialising in place,
/// as `create_from_fd` does) publishes it wait for the magic number and
/// then see the initialised data: the Release/Acquire publication.
#[test]
fn r36_openers_wait_for_an_in_place_creator_to_publish() {
    const N: usize = 4;
    #[repr(C)]
    struct Board {
        arrived: AtomicU32,
        ok: AtomicU32,
    }
    let name = Name::new();
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(name.path())
        .unwrap();
    // SAFETY: all-zero bytes are a valid `Board` (atomics only).
    let board = unsafe { Shm::<Board>::zeroed() };
    let children: Vec<Child> = (0..N)
        .map(|_| {
            let (board, name) = (&*board, &*name);
            fork(move || {
                board.arrived.fetch_add(1, Ordering::SeqCst);
                let opts = RegionOptions::new().ready_timeout(Duration::from_secs(20));
                let region: SharedRegion<Pair> = match opts.open(name) {
                    Ok(r) => r,
                    Err(RegionError::NotReady { .. }) => return code::NOT_READY,
                    Err(_) => return code::OPEN_FAILED,
                };
                let data = match region.lock() {
                    Ok(g) => *g,
                    Err(e) => return lock_code(&e),
                };
                if data != (Pair { a: 7, b: 700 }) {
                    return code::WRONG_DATA;
                }
                board.ok.fetch_add(1, Ordering::SeqCst);
                code::OK
            })
        })
        .collect();
    let end = Instant::now() + LONG;
    while board.arrived.load(Ordering::SeqCst) < N as u32 {
        assert!(Instant::now() < end, "children did not start");
        std::thread::yield_now();
    }
    // Give the openers time to find the file empty and start waiting (the
    // test is correct without it; it only makes the waiting path likely).
    std::thread::sleep(Duration::from_millis(30));
    let region = SharedRegion::create_from_fd(file, Pair { a: 7, b: 700 }).unwrap();
    assert!(region.is_creator());
    for c in children {
        assert_eq!(c.wait(LONG), Exit::Code(code::OK));
    }
    assert_eq!(board.ok.load(Ordering::SeqCst), N as u32);
}

/// An anonymous region shared with a forked child: both processes add 1
/// to a counter N times under the lock, with a window between read and
/// write; no increment is lost.
#[test]
fn anonymous_region_counter_incremented_by_two_processes_is_2n() {
    const N: u64 = 20_000;
    let region = SharedRegion::anonymous(0u64).unwrap();
    // SAFETY: all-zero bytes are a valid `AtomicU32` (atomics only).
    let gate = unsafe { Shm::<AtomicU32>::zeroed() };
    let add = |region: &SharedRegion<u64>| -> i32 {
        for _ in 0..N {
            let mut g = match region.lock() {
                Ok(g) => g,
                Err(e) => return lock_code(&e),
            };
            let v = *g;
            std::hint::spin_loop();
            *g = v + 1;
        }
        code::OK
    };
    let child = {
        let (region, gate) = (&region, &*gate);
        fork(move || {
            await_flag(gate);
            add(region)
        })
    };
    gate.store(1, Ordering::SeqCst);
    assert_eq!(add(&region), code::OK);
    assert_eq!(child.wait(LONG), Exit::Code(code::OK));
    assert_eq!(*region.lock().unwrap(), 2 * N);
}

/// A region in a memfd, opened by a child from an inherited descriptor.
#[test]
fn memfd_region_is_opened_from_fd_by_a_child() {
    // SAFETY: memfd_create returns a new descriptor or -1 (checked).
    let fd = unsafe { libc::memfd_create(c"hangsafe-test".as_ptr(), libc::MFD_CLOEXEC) };
    assert!(fd >= 0, "memfd_create: {}", std::io::Error::last_os_error());
    // SAFETY: a new descriptor nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let region = SharedRegion::create_from_fd(fd, [1u32, 2, 3]).unwrap();
    let dup = region.fd().unwrap().try_clone_to_owned().unwrap();
    let child = fork(move || {
        let other = match SharedRegion::<[u32; 3]>::open_from_fd(dup) {
            Ok(r) => r,
            Err(_) => return code::OPEN_FAILED,
        };
        let code = match other.lock() {
            Ok(mut g) if *g == [1, 2, 3] => {
                g[2] = 30;
                code::OK
            }
            Ok(_) => code::WRONG_DATA,
            Err(e) => lock_code(&e),
        };
        code
    });
    assert_eq!(child.wait(LONG), Exit::Code(code::OK));
    assert_eq!(*region.lock().unwrap(), [1, 2, 30]);
    // A non-empty file is not created over.
    let dup = region.fd().unwrap().try_clone_to_owned().unwrap();
    assert!(matches!(
        SharedRegion::create_from_fd(dup, [0u32; 3]),
        Err(RegionError::Exists)
    ));
    assert_eq!(*region.lock().unwrap(), [1, 2, 30]);
}

// ---- owner death ----

/// Child: opens `name`, locks, writes only `a` of the pair (a half update
/// breaking `a == b`), and SIGKILLs itself holding the lock.
fn child_dies_mid_update(name: &Name, a: u64) -> Child {
    let name = &**name;
    fork(move || {
        let region: SharedRegion<Pair> = match SharedRegion::open(name) {
            Ok(r) => r,
            Err(_) => return code::OPEN_FAILED,
        };
        let mut g = match region.lock() {
            Ok(g) => g,
            Err(e) => return lock_code(&e),
        };
        g.a = a;
        die()
    })
}

/// The owner dies halfway through a two-field update: the next `lock` is
/// `OwnerDead` carrying the guard, the half update is visible, the repair
/// plus `make_consistent` makes the next lock clean, in this process and
/// in another one.
#[test]
fn owner_killed_mid_update_next_lock_is_owner_dead_with_guard_then_repaired() {
    let name = Name::new();
    let region = SharedRegion::create(&name, Pair { a: 0, b: 0 }).unwrap();
    let child = child_dies_mid_update(&name, 1);
    assert_eq!(child.wait(LONG), Exit::Signal(libc::SIGKILL));

    let mut g = match region.lock() {
        Err(LockError::OwnerDead(mut dead)) => {
            assert!(!dead.get_mut().is_consistent());
            assert_eq!(**dead.get_ref(), Pair { a: 1, b: 0 }, "half update");
            dead.into_guard()
        }
        other => panic!("expected OwnerDead, got {:?}", other.map(|g| *g)),
    };
    g.b = g.a;
    g.make_consistent().unwrap();
    assert!(g.is_consistent());
    RobustMutexGuard::unlock(g).unwrap();

    let g = region.lock().expect("clean lock after repair");
    assert!(g.is_consistent());
    assert_eq!(*g, Pair { a: 1, b: 1 });
    drop(g);

    // Another process sees the repaired, consistent state too.
    let name_ref = &*name;
    let child = fork(move || {
        let region: SharedRegion<Pair> = match SharedRegion::open(name_ref) {
            Ok(r) => r,
            Err(_) => return code::OPEN_FAILED,
        };
        let g = match region.lock() {
            Ok(g) => g,
            Err(e) => return lock_code(&e),
        };
        if *g == (Pair { a: 1, b: 1 }) {
            code::OK
        } else {
            code::WRONG_DATA
        }
    });
    assert_eq!(child.wait(LONG), Exit::Code(code::OK));
}

/// `try_lock` also takes over a dead owner's lock (as
/// `pthread_mutex_trylock` does), and the repair can be made in place
/// through `OwnerDead::get_mut`.
#[test]
fn owner_killed_try_lock_takes_over_with_owner_dead() {
    let name = Name::new();
    let region = SharedRegion::create(&name, Pair { a: 5, b: 5 }).unwrap();
    assert_eq!(
        child_dies_mid_update(&name, 6).wait(LONG),
        Exit::Signal(libc::SIGKILL)
    );
    match region.try_lock() {
        Err(LockError::OwnerDead(mut dead)) => {
            let g = dead.get_mut();
            g.b = g.a;
            g.make_consistent().unwrap();
        }
        other => panic!("expected OwnerDead, got {:?}", other.map(|g| *g)),
    }
    assert_eq!(*region.try_lock().unwrap(), Pair { a: 6, b: 6 });
}

/// Dropping an owner-dead guard without `make_consistent` makes the mutex
/// permanently not recoverable, for every locker in every process.
#[test]
fn owner_dead_guard_dropped_without_repair_makes_mutex_not_recoverable() {
    let name = Name::new();
    let region = SharedRegion::create(&name, Pair { a: 0, b: 0 }).unwrap();
    assert_eq!(
        child_dies_mid_update(&name, 1).wait(LONG),
        Exit::Signal(libc::SIGKILL)
    );
    match region.lock() {
        Err(LockError::OwnerDead(dead)) => drop(dead),
        other => panic!("expected OwnerDead, got {:?}", other.map(|g| *g)),
    }
    assert!(region.is_not_recoverable());
    assert!(matches!(region.lock(), Err(LockError::NotRecoverable)));
    assert!(matches!(region.try_lock(), Err(LockError::NotRecoverable)));
    assert!(matches!(
        region.lock_timeout(Duration::from_millis(10)),
        Err(LockError::NotRecoverable)
    ));
    let name_ref = &*name;
    let child = fork(move || {
        let region: SharedRegion<Pair> = match SharedRegion::open(name_ref) {
            Ok(r) => r,
            Err(_) => return code::OPEN_FAILED,
        };
        let code = match region.lock() {
            Ok(_) => code::OK,
            Err(e) => lock_code(&e),
        };
        code
    });
    assert_eq!(child.wait(LONG), Exit::Code(code::NOT_RECOVERABLE));
}

/// A live owner in another process: `try_lock` is `WouldBlock`, a timed
/// lock is `TimedOut` (after its timeout, not much later); once the owner
/// unlocks, the lock is clean.
#[test]
fn live_owner_in_other_process_gives_would_block_and_timed_out() {
    #[repr(C)]
    struct Board {
        locked: AtomicU32,
        release: AtomicU32,
    }
    let region = SharedRegion::anonymous(Pair { a: 0, b: 0 }).unwrap();
    // SAFETY: all-zero bytes are a valid `Board` (atomics only).
    let board = unsafe { Shm::<Board>::zeroed() };
    let child = {
        let (region, board) = (&region, &*board);
        fork(move || {
            let mut g = match region.lock() {
                Ok(g) => g,
                Err(e) => return lock_code(&e),
            };
            *g = Pair { a: 2, b: 2 };
            board.locked.store(1, Ordering::SeqCst);
            await_flag(&board.release);
            drop(g);
            code::OK
        })
    };
    await_flag(&board.locked);
    assert!(matches!(region.try_lock(), Err(LockError::WouldBlock)));
    let t = Instant::now();
    assert!(matches!(
        region.lock_timeout(Duration::from_millis(50)),
        Err(LockError::TimedOut)
    ));
    assert!(t.elapsed() >= Duration::from_millis(50));
    assert!(matches!(
        region.lock_until(Instant::now() + Duration::from_millis(5)),
        Err(LockError::TimedOut)
    ));
    board.release.store(1, Ordering::SeqCst);
    let g = region
        .lock_timeout(LONG)
        .expect("lock after the owner unlocked");
    assert!(g.is_consistent());
    assert_eq!(*g, Pair { a: 2, b: 2 });
    drop(g);
    assert_eq!(child.wait(LONG), Exit::Code(code::OK));
}

/// The same thread locking twice is refused (error-checking mutex), with
/// no second guard.
#[test]
fn relock_by_the_same_thread_is_deadlock_error() {
    let region = SharedRegion::anonymous(0u8).unwrap();
    let g = region.lock().unwrap();
    match region.lock() {
        Err(LockError::Other(Error::Deadlock)) => {}
        other => panic!("expected Deadlock, got {:?}", other.map(|g| *g)),
    }
    drop(g);
    drop(region.lock().unwrap());
}

// ---- validation: refused regions, untouched files ----

/// Opening a region of `[u64; 2]` as `[u32; 3]`: layout mismatch naming the
/// field and both values.
#[test]
fn r36_open_with_type_of_other_size_is_layout_mismatch() {
    let name = Name::new();
    let _r = SharedRegion::create(&name, [1u64, 2]).unwrap();
    match SharedRegion::<[u32; 3]>::open(&name) {
        Err(RegionError::LayoutMismatch {
            field,
            expected,
            found,
        }) => {
            assert_eq!((field, expected, found), ("data_size", 12, 16));
        }
        other => panic!("expected LayoutMismatch, got {other:?}"),
    }
    // create_or_open refuses it the same way and does not clobber it.
    assert!(matches!(
        SharedRegion::create_or_open(&name, [0u32; 3]),
        Err(RegionError::LayoutMismatch { .. })
    ));
    assert_eq!(
        *SharedRegion::<[u64; 2]>::open(&name)
            .unwrap()
            .lock()
            .unwrap(),
        [1, 2]
    );
}

/// Same size and alignment, different type: the default tags differ. An
/// explicit tag overrides the type name: equal tags agree, different tags
/// are refused.
#[test]
fn r36_open_with_same_size_but_other_tag_is_layout_mismatch() {
    let name = Name::new();
    let _r = SharedRegion::create(&name, [1u64, 2]).unwrap();
    match SharedRegion::<[i64; 2]>::open(&name) {
        Err(RegionError::LayoutMismatch {
            field: "layout_tag",
            expected,
            found,
        }) => {
            assert_eq!(expected, SharedRegion::<[i64; 2]>::default_tag());
            assert_eq!(found, SharedRegion::<[u64; 2]>::default_tag());
        }
        other => panic!("expected a layout_tag mismatch, got {other:?}"),
    }

    let tagged = Name::new();
    let _r = RegionOptions::new()
        .tag(0xfeed)
        .create(&tagged, [3u64, 4])
        .unwrap();
    // Another program with another type name, same agreed tag: accepted.
    let other: SharedRegion<[i64; 2]> = RegionOptions::new().tag(0xfeed).open(&tagged).unwrap();
    assert_eq!(*other.lock().unwrap(), [3, 4]);
    // Same type, other tag: refused.
    assert!(matches!(
        RegionOptions::new().tag(0xbeef).open::<[u64; 2]>(&tagged),
        Err(RegionError::LayoutMismatch {
            field: "layout_tag",
            expected: 0xbeef,
            found: 0xfeed
        })
    ));
    // Same type, default tag: refused too.
    assert!(matches!(
        SharedRegion::<[u64; 2]>::open(&tagged),
        Err(RegionError::LayoutMismatch {
            field: "layout_tag",
            ..
        })
    ));
}

/// A file of garbage is `BadMagic`, and opening it writes nothing.
#[test]
fn garbage_file_is_bad_magic_and_left_untouched() {
    let name = Name::new();
    let garbage: Vec<u8> = (0..4096u32).map(|i| (i * 31 + 7) as u8).collect();
    write_shm_file(&name, &garbage);
    match SharedRegion::<Pair>::open(&name) {
        Err(RegionError::BadMagic { found }) => {
            assert_eq!(found, u64::from_ne_bytes(garbage[..8].try_into().unwrap()));
        }
        other => panic!("expected BadMagic, got {other:?}"),
    }
    assert!(matches!(
        SharedRegion::create_or_open(&name, Pair { a: 0, b: 0 }),
        Err(RegionError::BadMagic { .. })
    ));
    assert_eq!(read_shm_file(&name), garbage, "file modified");
}

/// A file of zeroes shorter than a header is `TooSmall`, untouched.
#[test]
fn short_zero_file_is_too_small_and_left_untouched() {
    let name = Name::new();
    write_shm_file(&name, &[0u8; 64]);
    assert!(matches!(
        SharedRegion::<Pair>::open(&name),
        Err(RegionError::TooSmall { len: 64, .. })
    ));
    assert_eq!(read_shm_file(&name), vec![0u8; 64], "file modified");
}

/// A real region's bytes, truncated after the header: the header matches
/// but the file cannot hold the data: `TooSmall`, untouched.
#[test]
fn truncated_region_is_too_small_and_left_untouched() {
    let name = Name::new();
    let _r = SharedRegion::create(&name, Pair { a: 1, b: 2 }).unwrap();
    let full = read_shm_file(&name);
    let copy = Name::new();
    write_shm_file(&copy, &full[..full.len() - 8]);
    assert!(matches!(
        SharedRegion::<Pair>::open(&copy),
        Err(RegionError::TooSmall { .. })
    ));
    assert_eq!(
        read_shm_file(&copy),
        full[..full.len() - 8],
        "file modified"
    );
}

/// A copy of a real region with another header version:
/// `VersionMismatch`, untouched.
#[test]
fn r36_other_header_version_is_version_mismatch_and_left_untouched() {
    let name = Name::new();
    let _r = SharedRegion::create(&name, Pair { a: 1, b: 2 }).unwrap();
    let mut bytes = read_shm_file(&name);
    assert_eq!(&bytes[..8], &u64::from_be_bytes(*b"HSREGION").to_ne_bytes());
    assert_eq!(bytes[8..12], 1u32.to_ne_bytes(), "version at offset 8");
    bytes[8..12].copy_from_slice(&2u32.to_ne_bytes());
    let copy = Name::new();
    write_shm_file(&copy, &bytes);
    match SharedRegion::<Pair>::open(&copy) {
        Err(RegionError::VersionMismatch { found, expected }) => {
            assert_eq!((found, expected), (2, 1));
        }
        other => panic!("expected VersionMismatch, got {other:?}"),
    }
    assert_eq!(read_shm_file(&copy), bytes, "file modified");
}

/// A creator that died mid-initialisation (simulated: a file of the right
/// size whose magic is still 0, or a file still empty) is reported as
/// `NotReady` once the opener's bound passes: no hang, no clobbering.
#[test]
fn r36_creator_died_mid_init_opener_gets_not_ready_within_bound() {
    let name = Name::new();
    let region = SharedRegion::create(&name, Pair { a: 1, b: 2 }).unwrap();
    let len = read_shm_file(&name).len();
    drop(region);

    let bound = Duration::from_millis(200);
    let opts = RegionOptions::new().ready_timeout(bound);
    for contents in [vec![0u8; len], Vec::new()] {
        let dead = Name::new();
        write_shm_file(&dead, &contents);
        for create in [false, true] {
            let t = Instant::now();
            let r = if create {
                opts.create_or_open(&dead, Pair { a: 0, b: 0 })
            } else {
                opts.open(&dead)
            };
            let took = t.elapsed();
            match r {
                Err(RegionError::NotReady { waited }) => assert!(waited >= bound),
                other => panic!("expected NotReady, got {other:?}"),
            }
            assert!(took >= bound, "gave up early: {took:?}");
            assert!(took < bound + Duration::from_secs(5), "hang: {took:?}");
        }
        assert_eq!(read_shm_file(&dead), contents, "file modified");
    }

    // A zero timeout does not wait.
    let dead = Name::new();
    write_shm_file(&dead, &vec![0u8; len]);
    let t = Instant::now();
    assert!(matches!(
        RegionOptions::new()
            .ready_timeout(Duration::ZERO)
            .open::<Pair>(&dead),
        Err(RegionError::NotReady { .. })
    ));
    assert!(t.elapsed() < Duration::from_secs(1));
}

// ---- names ----

/// Names that are not a single `/dev/shm` entry are refused by every
/// named operation, before touching the filesystem.
#[test]
fn invalid_names_are_refused() {
    let long = "x".repeat(256);
    for bad in [
        "",
        "/",
        "a/b",
        "/a/b",
        "//a",
        "a\0b",
        ".",
        "..",
        long.as_str(),
    ] {
        let is_invalid = |r: Result<(), RegionError>| matches!(r, Err(RegionError::InvalidName { ref name, .. }) if name == bad);
        assert!(
            is_invalid(SharedRegion::create(bad, 0u8).map(drop)),
            "create {bad:?}"
        );
        assert!(
            is_invalid(SharedRegion::<u8>::open(bad).map(drop)),
            "open {bad:?}"
        );
        assert!(
            is_invalid(SharedRegion::create_or_open(bad, 0u8).map(drop)),
            "create_or_open {bad:?}"
        );
        assert!(is_invalid(SharedRegion::unlink(bad)), "unlink {bad:?}");
    }
    // The longest valid name works, with or without the leading '/'.
    let mut longest = format!("hangsafe-test-{}-", std::process::id());
    longest.extend(std::iter::repeat_n('y', 255 - longest.len()));
    let name = Name(longest);
    let slashed = format!("/{}", &*name);
    let _r = SharedRegion::create(&slashed, 1u8).unwrap();
    assert_eq!(*SharedRegion::<u8>::open(&name).unwrap().lock().unwrap(), 1);
}

/// Opening a name that does not exist is `NotFound` (and creates nothing);
/// unlinking it too.
#[test]
fn open_nonexistent_is_not_found() {
    let name = Name::new();
    assert!(matches!(
        SharedRegion::<u8>::open(&name),
        Err(RegionError::NotFound)
    ));
    assert!(!std::path::Path::new(&name.path()).exists());
    assert!(matches!(
        SharedRegion::unlink(&name),
        Err(RegionError::NotFound)
    ));
}

/// Creating a name that exists, as a region or as any other file, is
/// `Exists`, and leaves it as it was.
#[test]
fn create_existing_is_exists() {
    let name = Name::new();
    let first = SharedRegion::create(&name, 7u32).unwrap();
    assert!(first.is_creator());
    assert!(matches!(
        SharedRegion::create(&name, 8u32),
        Err(RegionError::Exists)
    ));
    assert!(matches!(
        SharedRegion::create(&name, [0u8; 3]),
        Err(RegionError::Exists)
    ));
    let opened = SharedRegion::create_or_open(&name, 9u32).unwrap();
    assert!(!opened.is_creator());
    assert_eq!(*opened.lock().unwrap(), 7);

    let other = Name::new();
    write_shm_file(&other, b"not a region");
    assert!(matches!(
        SharedRegion::create(&other, 0u32),
        Err(RegionError::Exists)
    ));
    assert_eq!(read_shm_file(&other), b"not a region");
}

/// Unlinking removes the name only: mapped handles keep working, and a new
/// region of that name is unrelated.
#[test]
fn unlink_removes_the_name_not_the_mapping() {
    let name = Name::new();
    let old = SharedRegion::create(&name, 1u64).unwrap();
    SharedRegion::unlink(&name).unwrap();
    assert!(matches!(
        SharedRegion::<u64>::open(&name),
        Err(RegionError::NotFound)
    ));
    *old.lock().unwrap() = 2;
    let new = SharedRegion::create(&name, 10u64).unwrap();
    assert_eq!(*new.lock().unwrap(), 10);
    assert_eq!(*old.lock().unwrap(), 2);
}

/// Created files are 0600 by default; `mode` changes that (under umask).
#[test]
fn created_file_mode_is_0600_by_default_and_configurable() {
    let name = Name::new();
    let _r = SharedRegion::create(&name, 0u8).unwrap();
    let mode = std::fs::metadata(name.path()).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);

    let name = Name::new();
    let _r = RegionOptions::new().mode(0o400).create(&name, 0u8).unwrap();
    let mode = std::fs::metadata(name.path()).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o400);
}

/// The region's descriptor is usable (e.g. to pass along) and is
/// close-on-exec; an anonymous region has none.
#[test]
fn region_fd_is_cloexec_and_anonymous_has_none() {
    let name = Name::new();
    let region = SharedRegion::create(&name, 0u8).unwrap();
    let fd = region.fd().expect("named region has an fd");
    // SAFETY: F_GETFD on a live borrowed descriptor.
    let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFD) };
    assert!(flags >= 0 && flags & libc::FD_CLOEXEC != 0);
    assert!(SharedRegion::anonymous(0u8).unwrap().fd().is_none());
}
