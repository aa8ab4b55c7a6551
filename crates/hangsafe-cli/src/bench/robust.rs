//! `hangsafe bench`'s robust-mutex parts: hangsafe's `RawRobustMutex`
//! against glibc's robust process-shared mutex (plain and PI) and, where it
//! applies, std's `Mutex`, every mutex but std's in a `MAP_SHARED` mapping.
//!
//! * uncontended lock + unlock, interleaved round by round;
//! * two processes, pinned to two CPUs: strict ping-pong (turns by the
//!   counter's parity; time per turn) and free-running (time per
//!   acquisition), each repetition running every mutex in rotating order;
//! * owner death with nobody waiting: a child locks and is SIGKILLed, and
//!   once it is reaped the parent times the `lock` that reports it
//!   (alternating mutexes sample by sample).

use super::{
    fmt_ratio, interleave, peer_row, ratio_verdict, scaled, subject_row, target_met, with_target,
    Quartiles, Row, Section, Workload,
};
use hangsafe::robust::{Acquired, RawRobustMutex};
use hangsafe_testkit::peers::glibc_mutex::{GlibcMutex, Protocol};
use hangsafe_testkit::process::{die, fork, Exit, Shm};
use hangsafe_testkit::stats::{block_len, block_ratios, quantile};
use std::hint::black_box;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The process-shared mutexes compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Hangsafe,
    Glibc,
    GlibcPi,
}

const KINDS: [Kind; 3] = [Kind::Hangsafe, Kind::Glibc, Kind::GlibcPi];

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Hangsafe => "hangsafe RawRobustMutex",
            Kind::Glibc => "glibc robust pshared",
            Kind::GlibcPi => "glibc robust PI pshared",
        }
    }
}

/// One cache line per field group.
#[repr(C, align(64))]
struct Line<T>(T);

/// The shared mapping of one measurement. All-zero is a valid value.
#[repr(C)]
struct Arena {
    hs: Line<RawRobustMutex>,
    gl: Line<GlibcMutex>,
    counter: Line<AtomicU64>,
    ready: Line<AtomicU32>,
    start: AtomicU32,
    stop: AtomicU32,
    acquired: Line<[AtomicU64; 2]>,
}

/// An arena and which glibc mutex it holds, if any (to destroy it before
/// re-initialising).
struct Shared {
    map: Shm<Arena>,
    glibc: Option<Kind>,
}

impl Shared {
    fn new() -> Shared {
        Shared {
            // SAFETY: all-zero bytes are a valid Arena (atomics, a raw
            // mutex before `init`, a pthread mutex before its init); its
            // 64-byte alignment is below a page.
            map: unsafe { Shm::zeroed() },
            glibc: None,
        }
    }

    /// (Re-)initialises the mutex as `kind` and zeroes the counters. No
    /// other process may be using the arena.
    fn init(&mut self, kind: Kind) -> Result<(), String> {
        if self.glibc.take().is_some() {
            // SAFETY: a glibc mutex initialised here, unlocked (every user
            // unlocked or was reaped after its owner-dead lock was
            // repaired and unlocked), used by nobody now.
            unsafe { self.map.gl.0.destroy() };
        }
        let a = &*self.map;
        match kind {
            Kind::Hangsafe => {
                a.hs.0
                    .init()
                    .map_err(|e| format!("RawRobustMutex::init: {e}"))?
            }
            Kind::Glibc | Kind::GlibcPi => {
                let p = if kind == Kind::Glibc {
                    Protocol::Robust
                } else {
                    Protocol::RobustPi
                };
                // SAFETY: unused, and destroyed above if it was initialised.
                unsafe { a.gl.0.init(p) }
                    .map_err(|e| format!("pthread_mutex_init: {}", errno_text(e)))?;
                self.glibc = Some(kind);
            }
        }
        a.counter.0.store(0, Ordering::Relaxed);
        for v in [&a.ready.0, &a.start, &a.stop] {
            v.store(0, Ordering::Relaxed);
        }
        for v in &a.acquired.0 {
            v.store(0, Ordering::SeqCst);
        }
        Ok(())
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        if self.glibc.is_some() {
            // SAFETY: as in `init`: unlocked and unused.
            unsafe { self.map.gl.0.destroy() };
        }
    }
}

fn errno_text(e: i32) -> String {
    std::io::Error::from_raw_os_error(e).to_string()
}

impl Arena {
    /// Locks; `Ok(true)` after an owner died. Errors are errno values.
    #[inline(always)]
    fn lock(&self, kind: Kind) -> Result<bool, i32> {
        match kind {
            Kind::Hangsafe => match self.hs.0.lock() {
                Ok(Acquired::Consistent) => Ok(false),
                Ok(Acquired::OwnerDead) => Ok(true),
                Err(e) => Err(e.errno()),
            },
            _ => self.gl.0.lock(),
        }
    }

    #[inline(always)]
    fn unlock(&self, kind: Kind) -> Result<(), i32> {
        match kind {
            Kind::Hangsafe => self.hs.0.unlock().map_err(|e| e.errno()),
            _ => self.gl.0.unlock(),
        }
    }

    fn consistent(&self, kind: Kind) -> Result<(), i32> {
        match kind {
            Kind::Hangsafe => self.hs.0.consistent().map_err(|e| e.errno()),
            _ => self.gl.0.consistent(),
        }
    }
}

// ---------------------------------------------------------------------------
// Uncontended

/// Times `batch` lock + unlock cycles of `kind`.
fn cycles(a: &Arena, kind: Kind, batch: u32) -> Result<Duration, String> {
    let t = Instant::now();
    for _ in 0..batch {
        match black_box(a).lock(kind) {
            Ok(false) => {}
            other => return Err(format!("{}: lock: {other:?}", kind.name())),
        }
        a.unlock(kind)
            .map_err(|e| format!("{}: unlock: {}", kind.name(), errno_text(e)))?;
    }
    Ok(t.elapsed())
}

pub(super) fn uncontended(work: &Workload) -> Result<Section, String> {
    let batch = work.read_batch;
    let mut arenas = Vec::new();
    for kind in KINDS {
        let mut s = Shared::new();
        s.init(kind)?;
        arenas.push(s);
    }
    let std_mutex = std::sync::Mutex::new(());
    let mut arms: Vec<Box<dyn FnMut() -> Result<Duration, String> + '_>> = KINDS
        .iter()
        .zip(&arenas)
        .map(|(&kind, s)| {
            Box::new(move || cycles(&s.map, kind, batch))
                as Box<dyn FnMut() -> Result<Duration, String>>
        })
        .collect();
    arms.push(Box::new(|| {
        let t = Instant::now();
        for _ in 0..batch {
            drop(
                black_box(&std_mutex)
                    .lock()
                    .map_err(|_| "std mutex poisoned")?,
            );
        }
        Ok(t.elapsed())
    }));
    let mut refs: Vec<&mut dyn FnMut() -> Result<Duration, String>> =
        arms.iter_mut().map(|b| &mut **b as _).collect();
    let t = interleave(&mut refs, work.read_rounds, work.cap)?;
    drop(refs);
    drop(arms);

    let glibc = peer_row(Kind::Glibc.name(), &t[1], &t[0], batch);
    let met = glibc.ratio.and_then(|q| target_met(&q, |r| r >= 1.0));
    let std_row = peer_row(
        "std::sync::Mutex (not shared, not robust)",
        &t[3],
        &t[0],
        batch,
    );
    let std_met = std_row.ratio.and_then(|q| target_met(&q, |r| r >= 0.5));
    Ok(Section {
        key: "robust_uncontended",
        title: "Robust mutex, uncontended: lock + unlock, nobody else around",
        method: format!("{} rounds of {batch} per mutex", t[0].len()),
        columns: &["median/op"],
        rows: vec![
            subject_row(Kind::Hangsafe.name(), &t[0], batch),
            with_target(glibc, "no slower", met),
            peer_row(Kind::GlibcPi.name(), &t[2], &t[0], batch),
            with_target(std_row, "within 2x", std_met),
        ],
        notes: Vec::new(),
    })
}

// ---------------------------------------------------------------------------
// Two processes

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pattern {
    /// Lock, count, unlock, as fast as possible.
    Free,
    /// Take turns by the counter's parity.
    PingPong,
}

/// The first two CPUs this process may run on (`None` with fewer).
fn two_cpus() -> Option<[usize; 2]> {
    // SAFETY: cpu_set_t is a plain bit array; all-zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid out-buffer of the size passed.
    let r = unsafe { libc::sched_getaffinity(0, std::mem::size_of_val(&set), &mut set) };
    if r != 0 {
        return None;
    }
    let max = 8 * std::mem::size_of_val(&set);
    // SAFETY: CPU_ISSET reads bit `c` of a valid set; `c` is below its size.
    let mut cpus = (0..max).filter(|&c| unsafe { libc::CPU_ISSET(c, &set) });
    Some([cpus.next()?, cpus.next()?])
}

/// Pins the calling process to `cpu` (best effort).
fn pin_to(cpu: usize) {
    // SAFETY: cpu_set_t is a plain bit array; all-zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: CPU_SET writes bit `cpu` (below the set's size, from
    // `two_cpus`) of a valid set; sched_setaffinity reads it.
    unsafe {
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set);
    }
}

/// A child's loop: returns its exit code (0, an errno, or 200 for an
/// unexpected owner-dead lock).
fn child_loop(a: &Arena, kind: Kind, idx: usize, pattern: Pattern, pin: Option<[usize; 2]>) -> i32 {
    if let Some(cpus) = pin {
        pin_to(cpus[idx]);
    }
    // One untimed cycle: first-use costs fall outside the window.
    match a.lock(kind).and_then(|dead| a.unlock(kind).map(|()| dead)) {
        Ok(false) => {}
        Ok(true) => return 200,
        Err(e) => return e,
    }
    a.ready.0.fetch_add(1, Ordering::AcqRel);
    while a.start.load(Ordering::Acquire) == 0 {
        std::hint::spin_loop();
    }
    let me = idx as u64;
    let mut n = 0u64;
    while a.stop.load(Ordering::Relaxed) == 0 {
        match a.lock(kind) {
            Ok(false) => {}
            Ok(true) => return 200,
            Err(e) => return e,
        }
        let c = a.counter.0.load(Ordering::Relaxed);
        if pattern == Pattern::Free || c % 2 == me {
            a.counter.0.store(c + 1, Ordering::Relaxed);
        }
        if let Err(e) = a.unlock(kind) {
            return e;
        }
        n += 1;
    }
    a.acquired.0[idx].store(n, Ordering::SeqCst);
    0
}

/// One run of `kind`: nanoseconds per acquisition (free) or per turn
/// (ping-pong).
fn contended_run(
    s: &mut Shared,
    kind: Kind,
    pattern: Pattern,
    secs: f64,
    pin: Option<[usize; 2]>,
) -> Result<f64, String> {
    s.init(kind)?;
    let a: &Arena = &s.map;
    let kids = [0, 1].map(|i| fork(|| child_loop(a, kind, i, pattern, pin)));
    let deadline = Instant::now() + Duration::from_secs(10);
    while a.ready.0.load(Ordering::Acquire) < 2 {
        if Instant::now() > deadline {
            a.stop.store(1, Ordering::SeqCst);
            a.start.store(1, Ordering::SeqCst);
            return Err(format!(
                "{}: the contending children never started",
                kind.name()
            ));
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    let t0 = Instant::now();
    a.start.store(1, Ordering::Release);
    std::thread::sleep(Duration::from_secs_f64(secs));
    a.stop.store(1, Ordering::SeqCst);
    let window = t0.elapsed().as_secs_f64();
    for k in kids {
        match k.wait(Duration::from_secs(30)) {
            Exit::Code(0) => {}
            other => {
                return Err(format!(
                    "{}: a contending child ended with {other:?}",
                    kind.name()
                ))
            }
        }
    }
    let events = match pattern {
        Pattern::Free => a.acquired.0.iter().map(|v| v.load(Ordering::SeqCst)).sum(),
        Pattern::PingPong => a.counter.0.load(Ordering::SeqCst),
    };
    Ok(window * 1e9 / events.max(1) as f64)
}

fn contended(work: &Workload, pattern: Pattern) -> Result<Section, String> {
    let Some(pin) = two_cpus() else {
        return Ok(Section {
            key: match pattern {
                Pattern::Free => "robust_free_running",
                Pattern::PingPong => "robust_ping_pong",
            },
            title: "Robust mutex, two processes: skipped (needs two CPUs)",
            method: String::from("-"),
            columns: &[],
            rows: Vec::new(),
            notes: Vec::new(),
        });
    };
    let reps = scaled(5, work.scale, 3);
    let secs = if work.scale < 0.5 { 0.1 } else { 0.25 };
    let mut s = Shared::new();
    let mut t: [Vec<f64>; 3] = Default::default();
    let start = Instant::now();
    for rep in 0..reps {
        if rep >= 3 && start.elapsed() > work.cap {
            break;
        }
        for k in 0..KINDS.len() {
            let i = (rep + k) % KINDS.len();
            t[i].push(contended_run(&mut s, KINDS[i], pattern, secs, Some(pin))?);
        }
    }
    let (key, title, column, target, min): (_, _, &'static [&'static str], _, f64) = match pattern {
        Pattern::Free => (
            "robust_free_running",
            "Robust mutex, two processes free-running: lock, count, unlock",
            &["time/acq"],
            "at least half the rate",
            0.5,
        ),
        Pattern::PingPong => (
            "robust_ping_pong",
            "Robust mutex, two processes taking strict turns through the mutex",
            &["time/turn"],
            "no slower",
            1.0,
        ),
    };
    let glibc = peer_row(Kind::Glibc.name(), &t[1], &t[0], 1);
    let met = glibc.ratio.and_then(|q| target_met(&q, |r| r >= min));
    Ok(Section {
        key,
        title,
        method: format!(
            "{} runs of {secs} s per mutex, rotating, children pinned to CPUs {} and {}",
            t[0].len(),
            pin[0],
            pin[1]
        ),
        columns: column,
        rows: vec![
            subject_row(Kind::Hangsafe.name(), &t[0], 1),
            with_target(glibc, target, met),
            peer_row(Kind::GlibcPi.name(), &t[2], &t[0], 1),
        ],
        notes: vec![String::from(
            "glibc's non-PI robust mutex settles contention in userspace (the unlocker \
             may barge); a PI futex hands a queued waiter the lock in the kernel",
        )],
    })
}

pub(super) fn free_running(work: &Workload) -> Result<Section, String> {
    contended(work, Pattern::Free)
}

pub(super) fn ping_pong(work: &Workload) -> Result<Section, String> {
    contended(work, Pattern::PingPong)
}

// ---------------------------------------------------------------------------
// Owner death, nobody waiting

/// One sample: a child locks and is SIGKILLed; once it is reaped, the
/// time of the parent's `lock` (which must report the death).
fn death_sample(s: &mut Shared, kind: Kind) -> Result<f64, String> {
    s.init(kind)?;
    let a: &Arena = &s.map;
    let c = fork(|| match a.lock(kind) {
        Ok(_) => die(),
        Err(e) => e,
    });
    match c.wait(Duration::from_secs(10)) {
        Exit::Signal(libc::SIGKILL) => {}
        other => return Err(format!("{}: the owner ended with {other:?}", kind.name())),
    }
    let t = Instant::now();
    let r = a.lock(kind);
    let ns = t.elapsed().as_nanos() as f64;
    match r {
        Ok(true) => {}
        other => return Err(format!("{}: lock after the death: {other:?}", kind.name())),
    }
    a.consistent(kind)
        .and_then(|()| a.unlock(kind))
        .map_err(|e| format!("{}: repair: {}", kind.name(), errno_text(e)))?;
    Ok(ns)
}

pub(super) fn recovery(work: &Workload) -> Result<Section, String> {
    let n = scaled(400, work.scale, 30);
    let mut s = Shared::new();
    let mut t: [Vec<f64>; 3] = Default::default();
    for kind in KINDS {
        death_sample(&mut s, kind)?; // warm-up
    }
    let start = Instant::now();
    for i in 0..n {
        if i >= 30 && start.elapsed() > work.cap {
            break;
        }
        for k in 0..KINDS.len() {
            let j = (i + k) % KINDS.len();
            t[j].push(death_sample(&mut s, KINDS[j])?);
        }
    }
    let row = |kind: Kind, v: &[f64], subject: &[f64]| -> Row {
        let mut sorted = v.to_vec();
        sorted.sort_by(f64::total_cmp);
        let values_ns = vec![quantile(&sorted, 0.5), quantile(&sorted, 0.99)];
        if kind == Kind::Hangsafe {
            return Row {
                name: kind.name(),
                values_ns,
                ratio: None,
                verdict: None,
            };
        }
        let mut blocks = block_ratios(subject, v);
        let q = Quartiles::of(&mut blocks);
        Row {
            name: kind.name(),
            values_ns,
            ratio: Some(q),
            verdict: Some(format!("p50: {}", ratio_verdict(&q))),
        }
    };
    let pi = row(Kind::GlibcPi, &t[2], &t[0]);
    let met = pi.ratio.and_then(|q| target_met(&q, |r| r >= 1.0));
    Ok(Section {
        key: "robust_recovery",
        title: "Robust mutex, owner death with nobody waiting: the next lock (owner-dead)",
        method: format!(
            "{} deaths per mutex, alternating; ratio of the p50s per block of {}",
            t[0].len(),
            block_len(t[0].len())
        ),
        columns: &["p50", "p99"],
        rows: vec![
            row(Kind::Hangsafe, &t[0], &t[0]),
            row(Kind::Glibc, &t[1], &t[0]),
            with_target(pi, "p50 no slower", met),
        ],
        notes: vec![format!(
            "glibc finds the death already written into its mutex by the kernel's \
             robust-list walk (the write after unlock hangsafe never allows); overall p50 \
             ratio to glibc robust PI {}",
            fmt_ratio(quantile_sorted(&t[2], 0.5) / quantile_sorted(&t[0], 0.5))
        )],
    })
}

fn quantile_sorted(v: &[f64], q: f64) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    quantile(&s, q)
}
