//! The robust mutex against `std::sync::Mutex` and glibc's robust
//! process-shared `pthread_mutex_t`, in one run.
//!
//! * `robust_uncontended` (criterion): one lock + unlock, nobody else
//!   around. Every mutex but std's lives in a `MAP_SHARED` mapping, as a
//!   process-shared mutex does:
//!   - `hangsafe_raw`: `RawRobustMutex::lock` + `unlock`, the subject;
//!   - `std_mutex`: `std::sync::Mutex<()>` lock + guard drop;
//!   - `glibc_robust_pshared`: `PTHREAD_PROCESS_SHARED` +
//!     `PTHREAD_MUTEX_ROBUST`, default type (the peer of the targets);
//!   - `glibc_robust_pi_pshared`: the same plus `PTHREAD_PRIO_INHERIT`,
//!     the closest glibc analogue of hangsafe's design (PI futex word);
//!   - `glibc_plain_pshared`: `PTHREAD_PROCESS_SHARED` only, not robust.
//!
//!   Targets: hangsafe / std <= 1.5, hangsafe / glibc robust <= 1.0 (time
//!   ratios). Criterion measures each function in its own time window, so
//!   on a loaded or virtual machine the windows differ by more than the
//!   effect; the same comparison is therefore repeated as an interleaved
//!   A/B (short alternating batches, one ratio per round, median and
//!   quartiles), and the targets are judged on both.
//! * contended, 2 processes (hand-rolled, needs `fork`): two children lock
//!   the same mutex in a loop for a fixed time, interleaved A B C, B C A,
//!   ... over several repetitions, medians reported. The children are
//!   pinned to two distinct CPUs (when the process may use two): unpinned,
//!   the scheduler may put both on one CPU, where they time-share and
//!   hardly ever contend (the `same CPU` column shows how often that
//!   happened). Voluntary context switches per second (sleeps, i.e.
//!   contended locks that went to the kernel) and involuntary ones
//!   (preemption by other load) are printed alongside.
//!   - free-running: `{lock; counter += 1; note an owner change; unlock}`.
//!     Acquisitions/s and handoffs/s (acquisitions by the other process
//!     than the previous one) tell different stories: glibc's non-PI
//!     robust mutex lets the unlocker take the lock straight back before
//!     the woken waiter runs (barging), and settles most contention in
//!     userspace; a PI futex (hangsafe, glibc PI) sleeps in the kernel on
//!     every contended lock and hands the lock to the queued waiter inside
//!     `FUTEX_UNLOCK_PI`, so each handoff costs a sleep and a wakeup;
//!   - ping-pong: the processes take turns by the counter's parity
//!     (`lock; if it is my turn, counter += 1; unlock`): turns per second,
//!     the rate at which work passes strictly between two processes
//!     through the mutex alone.
//! * owner-death recovery (hand-rolled), per robust kind, interleaved:
//!   - uncontended: a child locks and SIGKILLs itself; once it is reaped,
//!     the parent times a `lock` that must return owner-dead (hangsafe:
//!     once the word stands still, a signal-0 `kill` finds the holder's
//!     TID gone and a CAS takes over, R63; glibc: the
//!     kernel's robust-list walk at the child's exit already marked the
//!     word `FUTEX_OWNER_DIED`, so its lock stays in userspace; glibc PI:
//!     the marked word still fails the fast CAS and goes to
//!     `FUTEX_LOCK_PI`);
//!   - contended: a waiter process blocks in `lock` (confirmed through
//!     `/proc/<pid>/syscall`: it is in `futex`); the owner process writes a
//!     `CLOCK_MONOTONIC` timestamp to shared memory and SIGKILLs itself;
//!     the waiter timestamps the return of its `lock` (owner-dead). Owner
//!     and waiter are pinned to distinct CPUs as above (unpinned, where
//!     the woken waiter runs, on an idle CPU or behind the dying owner's
//!     exit, decides the figure more than the mutex does), and the parent
//!     sleeps in `waitpid` meanwhile. On a VM the figure is dominated by
//!     waking an idle virtual CPU.
//!
//!   p50/p99 over many iterations, re-initialising the mutex each time.
//!
//! Knobs (environment): `HANGSAFE_ROBUST_SECS` (seconds per contended run,
//! default 1), `HANGSAFE_ROBUST_REPS` (contended repetitions, default 5),
//! `HANGSAFE_ROBUST_DEATHS` (owner-death iterations per kind and mode,
//! default 500), `HANGSAFE_ROBUST_PARTS` (which non-criterion parts run,
//! comma-separated: `ab,handoff,pingpong,death`, the default; `none` for
//! the criterion group only), `HANGSAFE_ROBUST_PIN=0` (do not pin the two
//! contending children to distinct CPUs). With
//! `--test` the hand-rolled parts run once, minimally, as a smoke test (a
//! few dozen short-lived children), and print no figures; with `--list`
//! they are skipped.
//!
//! ```text
//! CARGO_TARGET_DIR=/tmp/target-bench cargo bench -p hangsafe --bench robust
//! HANGSAFE_ROBUST_REPS=9 HANGSAFE_ROBUST_DEATHS=5000 cargo bench -p hangsafe --bench robust
//! cargo bench -p hangsafe --bench robust -- --test
//! ```

mod common;

use criterion::Criterion;
use hangsafe::robust::{Acquired, RawRobustMutex};
use hangsafe_testkit::env;
use hangsafe_testkit::process::{die, fork, Child, Exit, Shm as TkShm};
use std::cell::{Cell, UnsafeCell};
use std::hint::black_box;
use std::io::{Read, Write};
use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

const GROUP: &str = "robust_uncontended";
const HS: &str = "hangsafe_raw";
const STD: &str = "std_mutex";
const GL_ROBUST: &str = "glibc_robust_pshared";
const GL_ROBUST_PI: &str = "glibc_robust_pi_pshared";
const GL_PLAIN: &str = "glibc_plain_pshared";

/// Target: hangsafe's uncontended time at most this many times std's.
const TARGET_VS_STD: f64 = 1.5;
/// Target: hangsafe no slower than glibc's robust mutex.
const TARGET_VS_GLIBC: f64 = 1.0;

// ---------------------------------------------------------------------------
// Mutex kinds in shared memory
// ---------------------------------------------------------------------------

/// The process-shared mutexes compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Hangsafe,
    GlibcRobust,
    GlibcRobustPi,
    GlibcPlain,
}

impl Kind {
    /// The kinds that survive an owner's death.
    const ROBUST: [Kind; 3] = [Kind::Hangsafe, Kind::GlibcRobust, Kind::GlibcRobustPi];

    fn name(self) -> &'static str {
        match self {
            Kind::Hangsafe => "hangsafe",
            Kind::GlibcRobust => "glibc robust",
            Kind::GlibcRobustPi => "glibc robust PI",
            Kind::GlibcPlain => "glibc plain",
        }
    }
}

/// One cache line per field group, so that control traffic does not share
/// a line with the lock.
#[repr(C, align(64))]
struct Line<T>(T);

/// What the contended loops update under the lock.
#[repr(C)]
struct Data {
    counter: AtomicU64,
    handoffs: AtomicU64,
    /// 1 or 2: which child held the lock last; 0 = nobody yet.
    last_owner: AtomicU32,
}

/// Parent-to-children control.
#[repr(C)]
struct Ctl {
    ready: AtomicU32,
    start: AtomicU32,
    stop: AtomicU32,
}

/// Children-to-parent results.
#[repr(C)]
struct Out {
    acquired: [AtomicU64; 2],
    t_kill: AtomicU64,
    t_wake: AtomicU64,
}

/// The shared mapping: both mutexes (only the one of the current kind is
/// used) and the fields around them. Every field is valid all-zero.
#[repr(C)]
struct Arena {
    hs: Line<RawRobustMutex>,
    gl: Line<UnsafeCell<libc::pthread_mutex_t>>,
    data: Line<Data>,
    ctl: Line<Ctl>,
    out: Line<Out>,
}

/// A zero-filled anonymous `MAP_SHARED` mapping of one [`Arena`],
/// inherited by `fork` children. Unmapped on drop.
struct Shm {
    map: TkShm<Arena>,
    /// Whether the mutex was last initialised as a glibc one (process-local
    /// bookkeeping), so that re-initialisation destroys it first.
    glibc_inited: Cell<bool>,
}

impl Shm {
    fn new() -> Shm {
        Shm {
            // SAFETY: all-zero bytes are a valid Arena (atomics, the raw
            // mutex before `init`, a pthread_mutex_t, which is plain bytes),
            // whose 64-byte alignment a page satisfies.
            map: unsafe { TkShm::zeroed() },
            glibc_inited: Cell::new(false),
        }
    }

    /// (Re-)initialises the mutex as `kind` and zeroes the data, control
    /// and result fields. No other process may be using the arena.
    fn init(&self, kind: Kind) {
        let a: &Arena = self;
        if self.glibc_inited.replace(false) {
            // SAFETY: a glibc mutex we initialised, unlocked, and used by no
            // other process right now (the caller's contract).
            check_rc(
                unsafe { libc::pthread_mutex_destroy(a.gl()) },
                "pthread_mutex_destroy",
            );
        }
        match kind {
            Kind::Hangsafe => a.hs.0.init().expect("RawRobustMutex::init"),
            Kind::GlibcRobust => glibc_init(a.gl(), true, false),
            Kind::GlibcRobustPi => glibc_init(a.gl(), true, true),
            Kind::GlibcPlain => glibc_init(a.gl(), false, false),
        }
        self.glibc_inited.set(kind != Kind::Hangsafe);
        for v in [&a.data.0.counter, &a.data.0.handoffs] {
            v.store(0, Ordering::Relaxed);
        }
        a.data.0.last_owner.store(0, Ordering::Relaxed);
        for v in [&a.ctl.0.ready, &a.ctl.0.start, &a.ctl.0.stop] {
            v.store(0, Ordering::Relaxed);
        }
        for v in a.out.0.acquired.iter() {
            v.store(0, Ordering::Relaxed);
        }
        a.out.0.t_kill.store(0, Ordering::Relaxed);
        a.out.0.t_wake.store(0, Ordering::SeqCst);
    }
}

impl std::ops::Deref for Shm {
    type Target = Arena;
    fn deref(&self) -> &Arena {
        &self.map
    }
}

#[cold]
#[inline(never)]
fn rc_failed(rc: i32, what: &str) -> ! {
    panic!("{what}: {}", std::io::Error::from_raw_os_error(rc))
}

#[inline(always)]
fn check_rc(rc: i32, what: &str) {
    if rc != 0 {
        rc_failed(rc, what)
    }
}

/// `pthread_mutex_init` of a process-shared mutex at `m`, optionally
/// robust and priority-inheriting; default type. Checks every call.
fn glibc_init(m: *mut libc::pthread_mutex_t, robust: bool, pi: bool) {
    let mut attr = MaybeUninit::<libc::pthread_mutexattr_t>::uninit();
    let a = attr.as_mut_ptr();
    // SAFETY: `a` points to storage for an attribute object, initialised by
    // pthread_mutexattr_init before any other use and destroyed at the end;
    // `m` points to a pthread_mutex_t in our shared mapping that no thread
    // or process is using (the caller's contract).
    unsafe {
        check_rc(libc::pthread_mutexattr_init(a), "pthread_mutexattr_init");
        check_rc(
            libc::pthread_mutexattr_setpshared(a, libc::PTHREAD_PROCESS_SHARED),
            "pthread_mutexattr_setpshared",
        );
        if robust {
            check_rc(
                libc::pthread_mutexattr_setrobust(a, libc::PTHREAD_MUTEX_ROBUST),
                "pthread_mutexattr_setrobust",
            );
        }
        if pi {
            check_rc(
                libc::pthread_mutexattr_setprotocol(a, libc::PTHREAD_PRIO_INHERIT),
                "pthread_mutexattr_setprotocol",
            );
        }
        check_rc(libc::pthread_mutex_init(m, a), "pthread_mutex_init");
        check_rc(
            libc::pthread_mutexattr_destroy(a),
            "pthread_mutexattr_destroy",
        );
    }
}

impl Arena {
    fn gl(&self) -> *mut libc::pthread_mutex_t {
        self.gl.0.get()
    }

    /// Locks the mutex of `kind`; errors as errno values (usable as exit
    /// codes in children).
    #[inline]
    fn lock(&self, kind: Kind) -> Result<Acquired, i32> {
        match kind {
            Kind::Hangsafe => self.hs.0.lock().map_err(|e| e.errno()),
            _ => {
                // SAFETY: an initialised glibc mutex in our shared mapping.
                match unsafe { libc::pthread_mutex_lock(self.gl()) } {
                    0 => Ok(Acquired::Consistent),
                    libc::EOWNERDEAD => Ok(Acquired::OwnerDead),
                    e => Err(e),
                }
            }
        }
    }

    fn consistent(&self, kind: Kind) -> Result<(), i32> {
        match kind {
            Kind::Hangsafe => self.hs.0.consistent().map_err(|e| e.errno()),
            _ => {
                // SAFETY: an initialised glibc mutex we hold after
                // EOWNERDEAD.
                match unsafe { libc::pthread_mutex_consistent(self.gl()) } {
                    0 => Ok(()),
                    e => Err(e),
                }
            }
        }
    }

    #[inline]
    fn unlock(&self, kind: Kind) -> Result<(), i32> {
        match kind {
            Kind::Hangsafe => self.hs.0.unlock().map_err(|e| e.errno()),
            _ => {
                // SAFETY: an initialised glibc mutex the caller holds.
                match unsafe { libc::pthread_mutex_unlock(self.gl()) } {
                    0 => Ok(()),
                    e => Err(e),
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Uncontended lock + unlock
// ---------------------------------------------------------------------------

#[cold]
#[inline(never)]
fn hs_failed(what: &str, r: &dyn std::fmt::Debug) -> ! {
    panic!("hangsafe {what}: {r:?}")
}

#[inline(always)]
fn hs_cycle(m: &RawRobustMutex) {
    match m.lock() {
        Ok(Acquired::Consistent) => {}
        other => hs_failed("lock", &other),
    }
    if let Err(e) = m.unlock() {
        hs_failed("unlock", &e)
    }
}

#[inline(always)]
fn std_cycle(m: &std::sync::Mutex<()>) {
    drop(m.lock().expect("std mutex poisoned"));
}

#[inline(always)]
fn glibc_cycle(m: *mut libc::pthread_mutex_t) {
    // SAFETY: `m` is an initialised process-shared mutex in a live mapping,
    // not held by this thread (every cycle unlocks what it locked).
    unsafe {
        check_rc(libc::pthread_mutex_lock(m), "pthread_mutex_lock");
        check_rc(libc::pthread_mutex_unlock(m), "pthread_mutex_unlock");
    }
}

/// The mutexes of the uncontended comparisons, each in its own mapping.
struct Uncontended {
    hs: Shm,
    std: std::sync::Mutex<()>,
    robust: Shm,
    robust_pi: Shm,
    plain: Shm,
}

impl Uncontended {
    fn new() -> Uncontended {
        let u = Uncontended {
            hs: Shm::new(),
            std: std::sync::Mutex::new(()),
            robust: Shm::new(),
            robust_pi: Shm::new(),
            plain: Shm::new(),
        };
        u.hs.init(Kind::Hangsafe);
        u.robust.init(Kind::GlibcRobust);
        u.robust_pi.init(Kind::GlibcRobustPi);
        u.plain.init(Kind::GlibcPlain);
        // Sanity, outside the timing (also resolves this thread's identity
        // for hangsafe, as in any process that used the mutex before).
        hs_cycle(&u.hs.hs.0);
        std_cycle(&u.std);
        for s in [&u.robust, &u.robust_pi, &u.plain] {
            glibc_cycle(s.gl());
        }
        u
    }
}

fn uncontended(c: &mut Criterion, u: &Uncontended) {
    let mut g = c.benchmark_group(GROUP);
    g.warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(100);
    let hs = &u.hs.hs.0;
    g.bench_function(HS, |b| b.iter(|| hs_cycle(black_box(hs))));
    g.bench_function(STD, |b| b.iter(|| std_cycle(black_box(&u.std))));
    for (name, shm) in [
        (GL_ROBUST, &u.robust),
        (GL_ROBUST_PI, &u.robust_pi),
        (GL_PLAIN, &u.plain),
    ] {
        let m = shm.gl();
        g.bench_function(name, |b| b.iter(|| glibc_cycle(black_box(m))));
    }
    g.finish();
}

/// Times `n` cycles of one kind.
#[inline(never)]
fn batch(n: u32, mut cycle: impl FnMut()) -> Duration {
    let t = Instant::now();
    for _ in 0..n {
        cycle();
    }
    t.elapsed()
}

/// Interleaved A/B of the uncontended cycle: `rounds` rounds, each timing a
/// batch of every kind (rotating the order), giving per round the ratio
/// hangsafe / peer. Returns, per peer, the sorted per-round ratios.
fn interleaved_uncontended(
    u: &Uncontended,
    rounds: usize,
    n: u32,
) -> Vec<(&'static str, Vec<f64>)> {
    let hs = &u.hs.hs.0;
    let (robust, pi, plain) = (u.robust.gl(), u.robust_pi.gl(), u.plain.gl());
    let run = |which: usize| -> Duration {
        match which {
            0 => batch(n, || hs_cycle(black_box(hs))),
            1 => batch(n, || std_cycle(black_box(&u.std))),
            2 => batch(n, || glibc_cycle(black_box(robust))),
            3 => batch(n, || glibc_cycle(black_box(pi))),
            _ => batch(n, || glibc_cycle(black_box(plain))),
        }
    };
    const KINDS: usize = 5;
    for k in 0..KINDS {
        run(k); // warm up
    }
    let peers = [STD, GL_ROBUST, GL_ROBUST_PI, GL_PLAIN];
    let mut ratios: Vec<Vec<f64>> = vec![Vec::with_capacity(rounds); peers.len()];
    for r in 0..rounds {
        let mut t = [Duration::ZERO; KINDS];
        for i in 0..KINDS {
            let k = (i + r) % KINDS;
            t[k] = run(k);
        }
        for (p, v) in ratios.iter_mut().enumerate() {
            v.push(t[0].as_secs_f64() / t[p + 1].as_secs_f64());
        }
    }
    peers
        .into_iter()
        .zip(ratios)
        .map(|(p, mut v)| {
            v.sort_by(f64::total_cmp);
            (p, v)
        })
        .collect()
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    quantile(&s, 0.5)
}

fn pass(ok: bool) -> &'static str {
    if ok {
        "PASS"
    } else {
        "FAIL"
    }
}

/// PASS/FAIL lines for the uncontended targets from criterion's estimates
/// (`ratios` are peer / hangsafe, so hangsafe / peer is their inverse).
fn uncontended_targets_criterion(ratios: &[common::Ratio]) {
    for (peer, max) in [
        (STD, TARGET_VS_STD),
        (GL_ROBUST, TARGET_VS_GLIBC),
        (GL_ROBUST_PI, TARGET_VS_GLIBC),
    ] {
        if let Some(r) = ratios.iter().find(|r| r.peer == peer) {
            let x = 1.0 / r.mean;
            println!(
                "  target (criterion): hangsafe / {peer} <= {max:.1}: {} ({x:.2}, CI [{:.2}, {:.2}])",
                pass(x <= max),
                1.0 / r.mean_upper,
                1.0 / r.mean_lower
            );
        }
    }
}

// ---------------------------------------------------------------------------
// Processes
// ---------------------------------------------------------------------------

/// CLOCK_MONOTONIC in nanoseconds: comparable across processes.
fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid out-pointer; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Waits for a child that must exit with code 0.
fn expect_code0(c: Child, what: &str) {
    let e = c.wait(Duration::from_secs(30));
    assert_eq!(e, Exit::Code(0), "{what}: child ended with {e:?}");
}

/// Waits for a child that is certain to end soon by SIGKILL, blocked in
/// `waitpid` rather than polling, so that the parent takes no CPU from the
/// processes being timed.
fn expect_killed(c: Child, what: &str) {
    let e = c.wait_blocking();
    assert_eq!(
        e,
        Exit::Signal(libc::SIGKILL),
        "{what}: child ended with {e:?}"
    );
}

/// Polls `cond` (yielding) until true; panics after 10 s.
fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::yield_now();
    }
}

/// Waits until process `pid` (single-threaded) is blocked in `futex`, per
/// `/proc/<pid>/syscall` (first field: the syscall number, or `running`).
fn wait_blocked_in_futex(pid: libc::pid_t) {
    let path = format!("/proc/{pid}/syscall");
    wait_until("the waiter to block in futex", || {
        std::fs::read_to_string(&path)
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse::<i64>().ok())
            == Some(libc::SYS_futex)
    });
}

// ---------------------------------------------------------------------------
// Contended: two processes
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pattern {
    /// Lock, count, note an owner change, unlock, as fast as possible.
    Free,
    /// Take turns by the counter's parity.
    PingPong,
}

/// One contended run's raw figures.
#[derive(Clone, Copy, Debug)]
struct Run {
    secs: f64,
    /// Lock acquisitions by both children.
    acquisitions: u64,
    /// Free: acquisitions by another child than the previous one.
    /// Ping-pong: turns taken (each one is a handoff).
    handoffs: u64,
    /// The smaller child's share of the acquisitions (0.5 = even).
    min_share: f64,
    /// Context switches of both children during the window: voluntary
    /// (slept, e.g. blocked in the lock) and involuntary (preempted).
    voluntary: u64,
    involuntary: u64,
    /// Fraction of samples (every 10 ms) where both children had last run
    /// on the same CPU: time-sharing one CPU rather than contending.
    same_cpu: f64,
}

/// (voluntary, involuntary) context switches of process `pid` so far.
fn sched_stats(pid: libc::pid_t) -> (u64, u64) {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        s.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    (
        field("voluntary_ctxt_switches:"),
        field("nonvoluntary_ctxt_switches:"),
    )
}

/// The first two CPUs this process may run on, to pin the two contending
/// children to (`None` with fewer than two, or when
/// `HANGSAFE_ROBUST_PIN=0`). Unpinned, the scheduler may put both children
/// on one CPU, where they time-share instead of contending.
fn pin_cpus() -> Option<[usize; 2]> {
    if std::env::var("HANGSAFE_ROBUST_PIN").is_ok_and(|v| v == "0") {
        return None;
    }
    // SAFETY: cpu_set_t is a plain bit array; all-zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid out-buffer of the size passed.
    let r = unsafe { libc::sched_getaffinity(0, std::mem::size_of_val(&set), &mut set) };
    assert_eq!(
        r,
        0,
        "sched_getaffinity: {}",
        std::io::Error::last_os_error()
    );
    let max = 8 * std::mem::size_of_val(&set);
    // SAFETY: CPU_ISSET reads bit `c` of a valid set; `c` is below its size.
    let mut cpus = (0..max).filter(|&c| unsafe { libc::CPU_ISSET(c, &set) });
    Some([cpus.next()?, cpus.next()?])
}

/// Pins the calling process to `cpu`. Returns 0 or an errno.
fn pin_to(cpu: usize) -> i32 {
    // SAFETY: cpu_set_t is a plain bit array; all-zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: CPU_SET writes bit `cpu` of a valid set; `cpu` came from
    // CPU_ISSET over the same size. sched_setaffinity reads the set.
    let r = unsafe {
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set)
    };
    if r == 0 {
        0
    } else {
        std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO)
    }
}

/// The CPU process `pid` last ran on (`/proc/<pid>/stat` field 39).
fn last_cpu(pid: libc::pid_t) -> Option<u32> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name, which may hold spaces.
    let rest = &s[s.rfind(')')? + 2..];
    rest.split_whitespace().nth(39 - 3)?.parse().ok()
}

/// A child's loop. Returns its exit code: 0, or the errno of a failed lock
/// or unlock (an owner-dead lock here is a bug: code 200).
fn contended_child(
    a: &Arena,
    kind: Kind,
    idx: usize,
    pattern: Pattern,
    pin: Option<[usize; 2]>,
) -> i32 {
    let me = idx as u32 + 1;
    if let Some(cpus) = pin {
        let e = pin_to(cpus[idx]);
        if e != 0 {
            return e;
        }
    }
    // One untimed cycle first, so that first-use costs (hangsafe resolves
    // the thread's identity on its first lock) fall outside the window.
    match a.lock(kind) {
        Ok(Acquired::Consistent) => {}
        Ok(Acquired::OwnerDead) => return 200,
        Err(e) => return e,
    }
    if let Err(e) = a.unlock(kind) {
        return e;
    }
    a.ctl.0.ready.fetch_add(1, Ordering::AcqRel);
    while a.ctl.0.start.load(Ordering::Acquire) == 0 {
        std::thread::yield_now();
    }
    let d = &a.data.0;
    let mut n = 0u64;
    while a.ctl.0.stop.load(Ordering::Relaxed) == 0 {
        match a.lock(kind) {
            Ok(Acquired::Consistent) => {}
            Ok(Acquired::OwnerDead) => return 200,
            Err(e) => return e,
        }
        let c = d.counter.load(Ordering::Relaxed);
        match pattern {
            Pattern::Free => {
                d.counter.store(c + 1, Ordering::Relaxed);
                if d.last_owner.load(Ordering::Relaxed) != me {
                    d.last_owner.store(me, Ordering::Relaxed);
                    d.handoffs
                        .store(d.handoffs.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
                }
            }
            Pattern::PingPong => {
                if c % 2 == idx as u64 {
                    d.counter.store(c + 1, Ordering::Relaxed);
                }
            }
        }
        if let Err(e) = a.unlock(kind) {
            return e;
        }
        n += 1;
    }
    a.out.0.acquired[idx].store(n, Ordering::Release);
    0
}

fn contended_run(
    shm: &Shm,
    kind: Kind,
    pattern: Pattern,
    secs: f64,
    pin: Option<[usize; 2]>,
) -> Run {
    shm.init(kind);
    let a: &Arena = shm;
    let kids: Vec<Child> = (0..2)
        .map(|i| fork(move || contended_child(a, kind, i, pattern, pin)))
        .collect();
    wait_until("both children ready", || {
        a.ctl.0.ready.load(Ordering::Acquire) == 2
    });
    let t0 = Instant::now();
    a.ctl.0.start.store(1, Ordering::Release);
    let end = t0 + Duration::from_secs_f64(secs);
    let before = [sched_stats(kids[0].pid), sched_stats(kids[1].pid)];
    let (mut samples, mut same_cpu) = (0u32, 0u32);
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        std::thread::sleep((end - now).min(Duration::from_millis(10)));
        if let (Some(c0), Some(c1)) = (last_cpu(kids[0].pid), last_cpu(kids[1].pid)) {
            samples += 1;
            same_cpu += u32::from(c0 == c1);
        }
    }
    let after = [sched_stats(kids[0].pid), sched_stats(kids[1].pid)];
    a.ctl.0.stop.store(1, Ordering::Release);
    let elapsed = t0.elapsed().as_secs_f64();
    let mut switches = [0u64; 2];
    for i in 0..2 {
        switches[0] += after[i].0.saturating_sub(before[i].0);
        switches[1] += after[i].1.saturating_sub(before[i].1);
    }
    for k in kids {
        expect_code0(k, &format!("{} {pattern:?} child", kind.name()));
    }
    let per: [u64; 2] = [
        a.out.0.acquired[0].load(Ordering::Acquire),
        a.out.0.acquired[1].load(Ordering::Acquire),
    ];
    let acquisitions = per[0] + per[1];
    let handoffs = match pattern {
        Pattern::Free => {
            let c = a.data.0.counter.load(Ordering::Acquire);
            assert_eq!(
                c,
                acquisitions,
                "{}: lost updates under the lock",
                kind.name()
            );
            a.data.0.handoffs.load(Ordering::Acquire)
        }
        Pattern::PingPong => a.data.0.counter.load(Ordering::Acquire),
    };
    Run {
        secs: elapsed,
        acquisitions,
        handoffs,
        min_share: per[0].min(per[1]) as f64 / acquisitions.max(1) as f64,
        voluntary: switches[0],
        involuntary: switches[1],
        same_cpu: f64::from(same_cpu) / f64::from(samples.max(1)),
    }
}

/// Runs every robust kind `reps` times, interleaved (A B C, B C A, ...).
fn contended(
    pattern: Pattern,
    secs: f64,
    reps: usize,
    pin: Option<[usize; 2]>,
) -> Vec<(Kind, Vec<Run>)> {
    let shm = Shm::new();
    let kinds = Kind::ROBUST;
    let mut runs: Vec<Vec<Run>> = vec![Vec::new(); kinds.len()];
    for r in 0..reps {
        for i in 0..kinds.len() {
            let k = (i + r) % kinds.len();
            runs[k].push(contended_run(&shm, kinds[k], pattern, secs, pin));
        }
    }
    kinds.into_iter().zip(runs).collect()
}

fn print_contended(
    pattern: Pattern,
    results: &[(Kind, Vec<Run>)],
    secs: f64,
    pin: Option<[usize; 2]>,
) {
    println!();
    let rate = |r: &Run, v: u64| v as f64 / r.secs;
    let reps = results[0].1.len();
    let pinned = match pin {
        Some([a, b]) => format!("children pinned to CPUs {a} and {b}"),
        None => String::from("children not pinned"),
    };
    match pattern {
        Pattern::Free => {
            println!("== contended, 2 processes, free-running: medians of {reps} interleaved runs of {secs} s, {pinned} ==");
            println!(
                "{:<18} {:>14} {:>14} {:>11} {:>11} {:>12} {:>12} {:>9}",
                "mutex",
                "acquisitions/s",
                "handoffs/s",
                "handoff %",
                "min share",
                "vol cs/s",
                "invol cs/s",
                "same CPU"
            );
        }
        Pattern::PingPong => {
            println!("== contended, 2 processes, ping-pong (strict turns): medians of {reps} interleaved runs of {secs} s, {pinned} ==");
            println!(
                "{:<18} {:>14} {:>14} {:>11} {:>11} {:>12} {:>12} {:>9}",
                "mutex",
                "acquisitions/s",
                "turns/s",
                "acq/turn",
                "min share",
                "vol cs/s",
                "invol cs/s",
                "same CPU"
            );
        }
    }
    for (kind, runs) in results {
        let acq: Vec<f64> = runs.iter().map(|r| rate(r, r.acquisitions)).collect();
        let ho: Vec<f64> = runs.iter().map(|r| rate(r, r.handoffs)).collect();
        let third: Vec<f64> = runs
            .iter()
            .map(|r| match pattern {
                Pattern::Free => 100.0 * r.handoffs as f64 / r.acquisitions.max(1) as f64,
                Pattern::PingPong => r.acquisitions as f64 / r.handoffs.max(1) as f64,
            })
            .collect();
        let share: Vec<f64> = runs.iter().map(|r| r.min_share).collect();
        let vol: Vec<f64> = runs.iter().map(|r| rate(r, r.voluntary)).collect();
        let invol: Vec<f64> = runs.iter().map(|r| rate(r, r.involuntary)).collect();
        let same: Vec<f64> = runs.iter().map(|r| 100.0 * r.same_cpu).collect();
        println!(
            "{:<18} {:>14.0} {:>14.0} {:>11.2} {:>11.2} {:>12.0} {:>12.0} {:>8.0}%",
            kind.name(),
            median(&acq),
            median(&ho),
            median(&third),
            median(&share),
            median(&vol),
            median(&invol),
            median(&same)
        );
    }
    // Ratios hangsafe / peer per repetition (adjacent runs), then median.
    let hs = &results
        .iter()
        .find(|(k, _)| *k == Kind::Hangsafe)
        .expect("hangsafe ran")
        .1;
    let (a_name, h_name) = match pattern {
        Pattern::Free => ("acquisitions/s", "handoffs/s"),
        Pattern::PingPong => ("acquisitions/s", "turns/s"),
    };
    for (kind, runs) in results.iter().filter(|(k, _)| *k != Kind::Hangsafe) {
        let ra: Vec<f64> = hs
            .iter()
            .zip(runs)
            .map(|(h, p)| rate(h, h.acquisitions) / rate(p, p.acquisitions))
            .collect();
        let rh: Vec<f64> = hs
            .iter()
            .zip(runs)
            .map(|(h, p)| rate(h, h.handoffs) / rate(p, p.handoffs.max(1)))
            .collect();
        let (ma, mh) = (median(&ra), median(&rh));
        println!(
            "  hangsafe / {}: {a_name} {ma:.3}, {h_name} {mh:.3} (median of per-repetition ratios; higher is better)",
            kind.name()
        );
        println!(
            "  target: no slower than {} in {a_name}: {}; in {h_name}: {}",
            kind.name(),
            pass(ma >= 1.0),
            pass(mh >= 1.0)
        );
    }
    if pattern == Pattern::Free {
        for line in [
            "note: glibc's non-PI robust mutex settles most contention in userspace: the unlocker",
            "may re-take the lock before a woken waiter runs (barging), and a waiter whose",
            "FUTEX_WAIT finds the word changed retries its CAS at once; so the lock can change",
            "hands without anyone sleeping (few voluntary switches per handoff). A PI futex",
            "(hangsafe, glibc PI) has no such path: a contended lock sleeps in FUTEX_LOCK_PI(2)",
            "and an unlock with a waiter hands the lock over in FUTEX_UNLOCK_PI (strict, no",
            "barging), so each handoff costs a sleep and a wakeup. 'handoff %' is the share of",
            "acquisitions that changed owner; 'same CPU' near 100% (unpinned runs) means the",
            "children time-shared one CPU and the figures say little about contention.",
        ] {
            println!("  {line}");
        }
    } else {
        for line in [
            "note: turns/s is the rate at which work passes strictly between the processes;",
            "acq/turn counts the lock cycles spent per turn (1 = perfect alternation).",
        ] {
            println!("  {line}");
        }
    }
}

// ---------------------------------------------------------------------------
// Owner-death recovery
// ---------------------------------------------------------------------------

/// One uncontended recovery: a child locks and SIGKILLs itself; after it is
/// reaped, the time of the parent's owner-dead `lock`. Nanoseconds.
fn death_uncontended(shm: &Shm, kind: Kind) -> u64 {
    shm.init(kind);
    let a: &Arena = shm;
    let child = fork(|| match a.lock(kind) {
        Ok(Acquired::Consistent) => die(),
        Ok(Acquired::OwnerDead) => 200,
        Err(e) => e,
    });
    expect_killed(child, &format!("{} dying owner", kind.name()));
    let t0 = Instant::now();
    let r = a.lock(kind);
    let dt = t0.elapsed();
    assert_eq!(
        r,
        Ok(Acquired::OwnerDead),
        "{}: lock after death",
        kind.name()
    );
    a.consistent(kind)
        .unwrap_or_else(|e| rc_failed(e, "consistent"));
    a.unlock(kind).unwrap_or_else(|e| rc_failed(e, "unlock"));
    dt.as_nanos() as u64
}

/// One contended recovery: the owner process holds the lock, a waiter
/// process blocks in `lock`; the owner timestamps and SIGKILLs itself; the
/// waiter timestamps its owner-dead return. Nanoseconds between the two.
fn death_contended(shm: &Shm, kind: Kind, pin: Option<[usize; 2]>) -> u64 {
    shm.init(kind);
    let a: &Arena = shm;
    let (mut go_r, mut go_w) = std::io::pipe().expect("pipe");
    let owner = fork(move || {
        if let Some([cpu, _]) = pin {
            let e = pin_to(cpu);
            if e != 0 {
                return e;
            }
        }
        match a.lock(kind) {
            Ok(Acquired::Consistent) => {}
            Ok(Acquired::OwnerDead) => return 200,
            Err(e) => return e,
        }
        a.ctl.0.ready.store(1, Ordering::Release);
        let mut b = [0u8; 1];
        if go_r.read_exact(&mut b).is_err() {
            return 201;
        }
        a.out.0.t_kill.store(now_ns(), Ordering::SeqCst);
        die()
    });
    wait_until("the owner to lock", || {
        a.ctl.0.ready.load(Ordering::Acquire) == 1
    });
    let waiter = fork(|| {
        if let Some([_, cpu]) = pin {
            let e = pin_to(cpu);
            if e != 0 {
                return e;
            }
        }
        let r = a.lock(kind);
        let t = now_ns();
        a.out.0.t_wake.store(t, Ordering::SeqCst);
        match r {
            Ok(Acquired::OwnerDead) => {}
            Ok(Acquired::Consistent) => return 200,
            Err(e) => return e,
        }
        if let Err(e) = a.consistent(kind) {
            return e;
        }
        match a.unlock(kind) {
            Ok(()) => 0,
            Err(e) => e,
        }
    });
    wait_blocked_in_futex(waiter.pid);
    go_w.write_all(&[1]).expect("write to the owner's pipe");
    expect_killed(owner, &format!("{} dying owner", kind.name()));
    expect_code0(waiter, &format!("{} waiter", kind.name()));
    let t_kill = a.out.0.t_kill.load(Ordering::SeqCst);
    let t_wake = a.out.0.t_wake.load(Ordering::SeqCst);
    assert!(
        t_kill != 0 && t_wake >= t_kill,
        "{}: timestamps",
        kind.name()
    );
    t_wake - t_kill
}

struct Percentiles {
    p50: f64,
    p99: f64,
    mean: f64,
    n: usize,
}

fn percentiles(mut v: Vec<u64>) -> Percentiles {
    v.sort_unstable();
    let at = |q: f64| v[((v.len() as f64 - 1.0) * q).round() as usize] as f64;
    Percentiles {
        p50: at(0.50),
        p99: at(0.99),
        mean: v.iter().sum::<u64>() as f64 / v.len() as f64,
        n: v.len(),
    }
}

/// `iters` recoveries per robust kind, interleaved per iteration.
fn deaths(contended: bool, iters: usize, pin: Option<[usize; 2]>) -> Vec<(Kind, Percentiles)> {
    let shm = Shm::new();
    let kinds = Kind::ROBUST;
    let mut samples: Vec<Vec<u64>> = vec![Vec::with_capacity(iters); kinds.len()];
    for it in 0..iters {
        for i in 0..kinds.len() {
            let k = (i + it) % kinds.len();
            samples[k].push(if contended {
                death_contended(&shm, kinds[k], pin)
            } else {
                death_uncontended(&shm, kinds[k])
            });
        }
    }
    kinds
        .into_iter()
        .zip(samples.into_iter().map(percentiles))
        .collect()
}

fn print_deaths(contended: bool, results: &[(Kind, Percentiles)], pin: Option<[usize; 2]>) {
    let title = if contended {
        "owner-death recovery, contended: owner's timestamp before SIGKILL to the blocked waiter's return"
    } else {
        "owner-death recovery, uncontended: lock() returning owner-dead after the owner was reaped"
    };
    let pinned = match (contended, pin) {
        (true, Some([o, w])) => format!(", owner on CPU {o}, waiter on CPU {w}"),
        (true, None) => String::from(", not pinned"),
        (false, _) => String::new(),
    };
    println!();
    println!("== {title} ({} iterations each{pinned}) ==", results[0].1.n);
    println!("{:<18} {:>12} {:>12} {:>12}", "mutex", "p50", "p99", "mean");
    for (kind, p) in results {
        println!(
            "{:<18} {:>12} {:>12} {:>12}",
            kind.name(),
            common::fmt_ns(p.p50),
            common::fmt_ns(p.p99),
            common::fmt_ns(p.mean)
        );
    }
    let hs = &results
        .iter()
        .find(|(k, _)| *k == Kind::Hangsafe)
        .expect("hangsafe ran")
        .1;
    for (kind, p) in results.iter().filter(|(k, _)| *k != Kind::Hangsafe) {
        let (r50, r99) = (hs.p50 / p.p50, hs.p99 / p.p99);
        println!(
            "  hangsafe / {}: p50 {r50:.2}, p99 {r99:.2} (time ratios; lower is better)",
            kind.name()
        );
        println!(
            "  target: no slower than {}: p50 {}, p99 {}",
            kind.name(),
            pass(r50 <= 1.0),
            pass(r99 <= 1.0)
        );
    }
}

// ---------------------------------------------------------------------------

fn main() {
    common::mark_start();
    let args: Vec<String> = std::env::args().collect();
    let test_mode = args.iter().any(|a| a == "--test");
    let list_mode = args.iter().any(|a| a == "--list");

    let load_before = common::system_load();
    let u = Uncontended::new();
    let mut c = common::criterion().configure_from_args();
    uncontended(&mut c, &u);
    c.final_summary();
    if common::read_estimate(GROUP, HS).is_ok() {
        println!();
        println!("system before: {load_before}");
        println!("system after:  {}", common::system_load());
    }
    let r = common::print_ratios(GROUP, HS, &[STD, GL_ROBUST, GL_ROBUST_PI, GL_PLAIN]);
    uncontended_targets_criterion(&r);

    if list_mode {
        return;
    }
    // Smoke parameters under `--test`: every code path once, no figures.
    let (rounds, batch_n, secs, reps, iters) = if test_mode {
        (3, 100, 0.02, 1, 2)
    } else {
        (
            201,
            20_000,
            env::or("HANGSAFE_ROBUST_SECS", 1.0f64),
            env::or("HANGSAFE_ROBUST_REPS", 5usize).max(1),
            env::or("HANGSAFE_ROBUST_DEATHS", 500usize).max(1),
        )
    };

    let parts = env::or(
        "HANGSAFE_ROBUST_PARTS",
        String::from("ab,handoff,pingpong,death"),
    );
    let part = |name: &str| parts.split(',').any(|p| p.trim() == name);

    if part("ab") {
        let ab = interleaved_uncontended(&u, rounds, batch_n);
        if !test_mode {
            print_interleaved(&ab, rounds, batch_n);
        }
    }
    let load_before = common::system_load();
    let pin = pin_cpus();
    for (name, pattern) in [("handoff", Pattern::Free), ("pingpong", Pattern::PingPong)] {
        if part(name) {
            let r = contended(pattern, secs, reps, pin);
            if !test_mode {
                print_contended(pattern, &r, secs, pin);
            }
        }
    }
    if part("death") {
        for contended in [false, true] {
            let r = deaths(contended, iters, pin);
            if !test_mode {
                print_deaths(contended, &r, pin);
            }
        }
    }
    if test_mode {
        println!("robust: hand-rolled measurements smoke-tested (--test: no figures)");
    } else if ["handoff", "pingpong", "death"].iter().any(|p| part(p)) {
        println!();
        println!("system before (hand-rolled part): {load_before}");
        println!(
            "system after:                     {}",
            common::system_load()
        );
    }
}

fn print_interleaved(ab: &[(&str, Vec<f64>)], rounds: usize, batch_n: u32) {
    println!();
    println!(
        "== robust_uncontended, interleaved A/B ({rounds} rounds of {batch_n} lock+unlock per mutex) =="
    );
    println!(
        "{:<26} {:>16} {:>20}",
        "hangsafe / peer (time)", "median", "quartiles"
    );
    for (peer, v) in ab {
        println!(
            "{:<26} {:>16.3} {:>20}",
            peer,
            quantile(v, 0.5),
            format!("[{:.3}, {:.3}]", quantile(v, 0.25), quantile(v, 0.75))
        );
    }
    for (peer, max) in [
        (STD, TARGET_VS_STD),
        (GL_ROBUST, TARGET_VS_GLIBC),
        (GL_ROBUST_PI, TARGET_VS_GLIBC),
    ] {
        if let Some((_, v)) = ab.iter().find(|(p, _)| *p == peer) {
            let m = quantile(v, 0.5);
            println!(
                "  target (interleaved): hangsafe / {peer} <= {max:.1}: {} (median {m:.3})",
                pass(m <= max)
            );
        }
    }
}
