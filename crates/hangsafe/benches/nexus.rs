//! Stale-proof events: what the tokens, the fd re-check and a `RunnerSet`
//! cost, each against a peer measured in the same run.
//!
//! * `nexus_token_lookup` (criterion): one lookup among 1,024 live
//!   registrations whose slots were recycled before (generations > 1):
//!   - `registry_get_hit` / `registry_get_stale`: `Registry::get` with a
//!     live token / with a stale one (same slot, older generation);
//!   - `hashmap_get_hit` / `hashmap_get_miss`: `HashMap<u64, u64>` (std's
//!     SipHash) keyed by the token's `u64`, the usual way to map an event
//!     loop's data back to an object; the peer;
//!   - `mutex_registry_get_hit` / `mutex_hashmap_get_hit`: the same behind
//!     a `std::sync::Mutex` locked for the lookup only, as `RunnerSet`
//!     keeps its registry.
//! * `nexus_occurred_fd` (criterion): `Nexus::occurred_fd` for a readable
//!   eventfd (token lookup, fd match, zero-timeout `poll` re-check) against
//!   a bare `poll(fd, POLLIN, 0)`: the ratio is the nexus's overhead on top
//!   of the re-check syscall it must make. `nexus_occurred_fd_stale` shows
//!   a stale token's cost (dropped before any syscall). Criterion's
//!   separate time windows drift by several percent for a ~200 ns
//!   syscall, so an interleaved A/B (alternating batches, median and
//!   quartiles of the per-round overhead) follows the tables.
//! * `runner_set_throughput` (criterion, elements = probes): a batch of
//!   trivial probes (`|_| 1`), at most `WINDOW` in flight, collected:
//!   - `set_epoll_hooks`: a `RunnerSet` attached to the epoll loop of
//!     `examples/epoll_loop.rs` (hooks path: `epoll_wait`, `occurred_fd`,
//!     `drain`);
//!   - `set_epoll_plain`: the same set's fd in a plain epoll loop (no
//!     hooks: `epoll_wait`, `drain`);
//!   - `thread_per_probe`: `std::thread::spawn` + `join`, the same window;
//!   - `runner_wait`: `hangsafe::runner::spawn` + `Runner::wait`, the same
//!     window (no set, no fd).
//!
//! After the groups, ratio tables (`peer / subject`) are printed from
//! criterion's own estimates, and probes per second for the throughput
//! group.
//!
//! Knobs (environment): `HANGSAFE_NEXUS_SECS` (measurement seconds per
//! bench, default 1.5), `HANGSAFE_NEXUS_BATCH` (probes per throughput
//! iteration, default 2,000), `HANGSAFE_NEXUS_WINDOW` (probes in flight,
//! default 64).
//!
//! ```text
//! CARGO_TARGET_DIR=/tmp/target-bench cargo bench -p hangsafe --bench nexus
//! HANGSAFE_NEXUS_SECS=1 cargo bench -p hangsafe --bench nexus -- throughput
//! ```

mod common;

#[allow(dead_code)]
#[path = "../examples/epoll_loop.rs"]
mod epoll_loop;

use criterion::{Criterion, SamplingMode, Throughput};
use epoll_loop::{lock, EpollHooks, LoopState};
use hangsafe::nexus::{Fired, Hooks, Ignored, Interest, Nexus, Registry, RunnerSet, Token};
use hangsafe::runner::{self, Builder, Runner};
use std::collections::{HashMap, VecDeque};
use std::hint::black_box;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const LOOKUP: &str = "nexus_token_lookup";
const REG_HIT: &str = "registry_get_hit";
const REG_STALE: &str = "registry_get_stale";
const MAP_HIT: &str = "hashmap_get_hit";
const MAP_MISS: &str = "hashmap_get_miss";
const MUTEX_REG: &str = "mutex_registry_get_hit";
const MUTEX_MAP: &str = "mutex_hashmap_get_hit";

const OCCURRED: &str = "nexus_occurred_fd";
const NEXUS_FD: &str = "nexus_occurred_fd";
const POLL_ZERO: &str = "poll_zero";
const NEXUS_STALE: &str = "nexus_occurred_fd_stale";

const THROUGHPUT: &str = "runner_set_throughput";
const SET_HOOKS: &str = "set_epoll_hooks";
const SET_PLAIN: &str = "set_epoll_plain";
const THREADS: &str = "thread_per_probe";
const RUNNER_WAIT: &str = "runner_wait";

/// Live registrations in the lookup benches (a power of two).
const LIVE: usize = 1024;

struct Knobs {
    secs: f64,
    batch: usize,
    window: usize,
}

fn knobs() -> Knobs {
    Knobs {
        secs: hangsafe_testkit::env::or("HANGSAFE_NEXUS_SECS", 1.5f64).max(0.1),
        batch: hangsafe_testkit::env::or("HANGSAFE_NEXUS_BATCH", 2000usize).max(1),
        window: hangsafe_testkit::env::or("HANGSAFE_NEXUS_WINDOW", 64usize).max(1),
    }
}

// ---- token lookup -------------------------------------------------------

fn lookup(c: &mut Criterion, k: &Knobs) {
    // Recycle every slot a few times first, so tokens carry generations
    // above 1 and the stale tokens name occupied slots.
    let mut reg = Registry::new();
    let mut stale = Vec::with_capacity(LIVE);
    for round in 0..3 {
        let ts: Vec<Token> = (0..LIVE as u64).map(|i| reg.insert(i).unwrap()).collect();
        if round < 2 {
            for t in &ts {
                reg.remove(*t);
            }
            if round == 1 {
                stale = ts;
            }
        }
    }
    let live: Vec<Token> = reg.iter().map(|(t, _)| t).collect();
    assert_eq!(live.len(), LIVE);
    let map: HashMap<u64, u64> = live
        .iter()
        .map(|t| (t.as_u64(), u64::from(t.index())))
        .collect();
    // Sanity, outside the timing: hits hit, stale tokens miss.
    for (t, s) in live.iter().zip(&stale) {
        assert_eq!(reg.get(*t), Some(&u64::from(t.index())));
        assert_eq!(reg.get(*s), None);
        assert_eq!(map.get(&t.as_u64()), Some(&u64::from(t.index())));
        assert_eq!(map.get(&s.as_u64()), None);
    }
    let mreg = Mutex::new(reg);
    let mmap = Mutex::new(map);
    // The registry, moved into the mutex, is reached through it.
    let reg = || mreg.lock().unwrap();

    let mut g = c.benchmark_group(LOOKUP);
    g.warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs_f64(k.secs))
        .sample_size(100);
    let mask = LIVE - 1;
    {
        let r = reg();
        let mut i = 0usize;
        g.bench_function(REG_HIT, |b| {
            b.iter(|| {
                i = i.wrapping_add(1);
                r.get(black_box(live[i & mask])).copied()
            })
        });
        let mut i = 0usize;
        g.bench_function(REG_STALE, |b| {
            b.iter(|| {
                i = i.wrapping_add(1);
                r.get(black_box(stale[i & mask])).copied()
            })
        });
    }
    {
        let m = mmap.lock().unwrap();
        let mut i = 0usize;
        g.bench_function(MAP_HIT, |b| {
            b.iter(|| {
                i = i.wrapping_add(1);
                m.get(&black_box(live[i & mask]).as_u64()).copied()
            })
        });
        let mut i = 0usize;
        g.bench_function(MAP_MISS, |b| {
            b.iter(|| {
                i = i.wrapping_add(1);
                m.get(&black_box(stale[i & mask]).as_u64()).copied()
            })
        });
    }
    let mut i = 0usize;
    g.bench_function(MUTEX_REG, |b| {
        b.iter(|| {
            i = i.wrapping_add(1);
            mreg.lock().unwrap().get(black_box(live[i & mask])).copied()
        })
    });
    let mut i = 0usize;
    g.bench_function(MUTEX_MAP, |b| {
        b.iter(|| {
            i = i.wrapping_add(1);
            mmap.lock()
                .unwrap()
                .get(&black_box(live[i & mask]).as_u64())
                .copied()
        })
    });
    g.finish();
}

// ---- occurred_fd ----------------------------------------------------------

/// A loop that accepts every registration and does nothing.
struct NoLoop;

impl Hooks for NoLoop {
    fn fd_register(&mut self, _: RawFd, _: Interest, _: Token) -> std::io::Result<()> {
        Ok(())
    }
    fn fd_modify(&mut self, _: RawFd, _: Interest, _: Token) -> std::io::Result<()> {
        Ok(())
    }
    fn fd_deregister(&mut self, _: RawFd, _: Token) {}
    fn timeout_register(&mut self, _: Instant, _: Token) -> std::io::Result<()> {
        Ok(())
    }
    fn timeout_modify(&mut self, _: Instant, _: Token) -> std::io::Result<()> {
        Ok(())
    }
}

/// An eventfd made readable once and never read: every poll finds it so.
fn readable_eventfd() -> OwnedFd {
    // SAFETY: eventfd takes no pointers; the result is checked.
    let fd = unsafe { libc::eventfd(1, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
    assert!(fd >= 0, "eventfd: {}", std::io::Error::last_os_error());
    // SAFETY: a fresh descriptor owned by nobody else.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

fn poll_zero(fd: RawFd) -> i16 {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd; a zero timeout never blocks.
    let n = unsafe { libc::poll(&mut p, 1, 0) };
    assert_eq!(n, 1);
    p.revents
}

/// A nexus with a readable eventfd registered under `live`, and a stale
/// token `old` of the same slot's previous registration.
struct FdFixture {
    _efd: OwnedFd,
    fd: RawFd,
    nexus: Nexus<u8>,
    live: Token,
    old: Token,
}

fn fd_fixture() -> FdFixture {
    let efd = readable_eventfd();
    let fd = efd.as_raw_fd();
    let mut nexus: Nexus<u8> = Nexus::new();
    let t = nexus
        .register_fd(&mut NoLoop, fd, Interest::READABLE, 7)
        .unwrap();
    // A stale token of the same slot: register, deregister, register.
    let old = nexus
        .register_fd(&mut NoLoop, fd, Interest::READABLE, 8)
        .unwrap();
    nexus.deregister_fd(&mut NoLoop, old);
    let _again = nexus
        .register_fd(&mut NoLoop, fd, Interest::READABLE, 9)
        .unwrap();
    assert!(matches!(
        nexus.occurred_fd(t, fd, libc::POLLIN),
        Ok(Fired::Fd { key: 7, .. })
    ));
    assert_eq!(
        nexus.occurred_fd(old, fd, libc::POLLIN),
        Err(Ignored::Stale)
    );
    assert_eq!(poll_zero(fd) & libc::POLLIN, libc::POLLIN);
    FdFixture {
        _efd: efd,
        fd,
        nexus,
        live: t,
        old,
    }
}

fn occurred(c: &mut Criterion, k: &Knobs) {
    let FdFixture {
        _efd,
        fd,
        mut nexus,
        live: t,
        old,
    } = fd_fixture();
    let mut g = c.benchmark_group(OCCURRED);
    g.warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs_f64(k.secs))
        .sample_size(100);
    g.bench_function(NEXUS_FD, |b| {
        b.iter(|| nexus.occurred_fd(black_box(t), black_box(fd), libc::POLLIN))
    });
    g.bench_function(POLL_ZERO, |b| b.iter(|| poll_zero(black_box(fd))));
    g.bench_function(NEXUS_STALE, |b| {
        b.iter(|| nexus.occurred_fd(black_box(old), black_box(fd), libc::POLLIN))
    });
    g.finish();
}

/// `occurred_fd`'s overhead over the bare `poll` it makes, in percent,
/// from alternating batches (criterion's separate time windows for a
/// ~200 ns syscall drift by several percent): one figure per round,
/// sorted.
fn interleaved_overhead(rounds: usize, batch: u32) -> Vec<f64> {
    let FdFixture {
        _efd,
        fd,
        mut nexus,
        live,
        ..
    } = fd_fixture();
    let raw = || {
        let t = Instant::now();
        for _ in 0..batch {
            black_box(poll_zero(black_box(fd)));
        }
        t.elapsed()
    };
    let nex = || {
        let t = Instant::now();
        for _ in 0..batch {
            let _ = black_box(nexus.occurred_fd(black_box(live), black_box(fd), libc::POLLIN));
        }
        t.elapsed()
    };
    common::interleaved_overhead(rounds, raw, nex)
}

// ---- RunnerSet throughput -----------------------------------------------

/// A `RunnerSet` attached to the example's epoll loop.
struct HooksLoop {
    set: RunnerSet<u64>,
    state: Arc<Mutex<LoopState>>,
}

impl HooksLoop {
    fn new() -> HooksLoop {
        let set = RunnerSet::new().unwrap();
        let state = LoopState::new().unwrap();
        set.attach(Box::new(EpollHooks {
            state: Arc::clone(&state),
            calls: Default::default(),
        }))
        .unwrap();
        HooksLoop { set, state }
    }

    /// Runs `batch` probes, at most `window` in the set; returns the sum
    /// of their values (= `batch`).
    fn run(&self, batch: usize, window: usize) -> u64 {
        let (mut spawned, mut sum, mut in_flight) = (0, 0u64, 0);
        let epfd = lock(&self.state).epoll_fd();
        while spawned < batch || in_flight > 0 {
            while spawned < batch && in_flight < window {
                self.set.spawn(Builder::new(), |_| black_box(1u64)).unwrap();
                spawned += 1;
                in_flight += 1;
            }
            let mut woke = false;
            for (bits, ev) in epoll_loop::wait(epfd, 1000) {
                let token = Token::from_u64(bits).unwrap();
                let fd = lock(&self.state).fd_of(token);
                woke |= self
                    .set
                    .occurred_fd(token, fd, epoll_loop::poll_bits(ev))
                    .is_ok();
            }
            if woke {
                for (_, out) in self.set.drain().unwrap() {
                    sum += out.unwrap();
                    in_flight -= 1;
                }
            }
        }
        sum
    }
}

/// A `RunnerSet` whose fd sits in a plain epoll instance.
struct PlainLoop {
    set: RunnerSet<u64>,
    epoll: OwnedFd,
}

impl PlainLoop {
    fn new() -> PlainLoop {
        let set = RunnerSet::new().unwrap();
        // SAFETY: no pointers; checked below.
        let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        assert!(ep >= 0);
        // SAFETY: a fresh descriptor owned by nobody else.
        let epoll = unsafe { OwnedFd::from_raw_fd(ep) };
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: 0,
        };
        // SAFETY: `ev` is valid for the call; both fds are open.
        let r = unsafe { libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, set.as_raw_fd(), &mut ev) };
        assert_eq!(r, 0, "epoll_ctl: {}", std::io::Error::last_os_error());
        PlainLoop { set, epoll }
    }

    fn run(&self, batch: usize, window: usize) -> u64 {
        let (mut spawned, mut sum, mut in_flight) = (0, 0u64, 0);
        while spawned < batch || in_flight > 0 {
            while spawned < batch && in_flight < window {
                self.set.spawn(Builder::new(), |_| black_box(1u64)).unwrap();
                spawned += 1;
                in_flight += 1;
            }
            if !epoll_loop::wait(self.epoll.as_raw_fd(), 1000).is_empty() {
                for (_, out) in self.set.drain().unwrap() {
                    sum += out.unwrap();
                    in_flight -= 1;
                }
            }
        }
        sum
    }
}

fn threads(batch: usize, window: usize) -> u64 {
    let mut q = VecDeque::with_capacity(window);
    let mut sum = 0;
    for _ in 0..batch {
        if q.len() == window {
            sum += q
                .pop_front()
                .map_or(0, |h: std::thread::JoinHandle<u64>| h.join().unwrap());
        }
        q.push_back(std::thread::spawn(|| black_box(1u64)));
    }
    sum + q.into_iter().map(|h| h.join().unwrap()).sum::<u64>()
}

fn runners(batch: usize, window: usize) -> u64 {
    let mut q: VecDeque<Runner<u64>> = VecDeque::with_capacity(window);
    let mut sum = 0;
    for _ in 0..batch {
        if q.len() == window {
            sum += q.pop_front().map_or(0, |r| r.wait().unwrap());
        }
        q.push_back(runner::spawn(|_| black_box(1u64)).unwrap());
    }
    sum + q.into_iter().map(|r| r.wait().unwrap()).sum::<u64>()
}

fn throughput(c: &mut Criterion, k: &Knobs) {
    let (batch, window) = (k.batch, k.window);
    let hooks = HooksLoop::new();
    let plain = PlainLoop::new();
    // Sanity, outside the timing: every probe is counted once.
    assert_eq!(hooks.run(batch, window), batch as u64);
    assert_eq!(plain.run(batch, window), batch as u64);
    assert_eq!(threads(batch.min(100), window), batch.min(100) as u64);
    assert_eq!(runners(batch, window), batch as u64);
    assert!(hooks.set.is_empty() && plain.set.is_empty());

    let mut g = c.benchmark_group(THROUGHPUT);
    g.throughput(Throughput::Elements(batch as u64))
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs_f64(k.secs))
        .sample_size(10);
    g.bench_function(SET_HOOKS, |b| b.iter(|| hooks.run(batch, window)));
    g.bench_function(SET_PLAIN, |b| b.iter(|| plain.run(batch, window)));
    g.bench_function(RUNNER_WAIT, |b| b.iter(|| runners(batch, window)));
    g.bench_function(THREADS, |b| b.iter(|| threads(batch, window)));
    g.finish();
    drop(hooks.set.detach());
}

fn print_rates(batch: usize, window: usize) {
    let rows: Vec<(&str, f64)> = [SET_HOOKS, SET_PLAIN, RUNNER_WAIT, THREADS]
        .iter()
        .filter_map(|b| {
            common::read_estimate(THROUGHPUT, b)
                .ok()
                .map(|e| (*b, batch as f64 / e.mean.point * 1e9))
        })
        .collect();
    let Some(&(_, subject)) = rows.iter().find(|(b, _)| *b == SET_HOOKS) else {
        return;
    };
    println!();
    println!("== {THROUGHPUT}: probes per second ({batch} per batch, at most {window} in flight; criterion mean) ==");
    for (b, rate) in &rows {
        println!(
            "{b:<18} {:>12.0} probes/s   {SET_HOOKS} / {b}: {:.2}",
            rate,
            subject / rate
        );
    }
}

fn main() {
    common::mark_start();
    let k = knobs();
    let load_before = common::system_load();
    let mut c = common::criterion().without_plots().configure_from_args();
    lookup(&mut c, &k);
    occurred(&mut c, &k);
    throughput(&mut c, &k);
    c.final_summary();
    if common::read_estimate(LOOKUP, REG_HIT).is_ok()
        || common::read_estimate(THROUGHPUT, SET_HOOKS).is_ok()
    {
        println!();
        println!("system before: {load_before}");
        println!("system after:  {}", common::system_load());
    }
    common::print_ratios(LOOKUP, REG_HIT, &[MAP_HIT, REG_STALE, MAP_MISS]);
    common::print_ratios(LOOKUP, MUTEX_REG, &[MUTEX_MAP]);
    common::print_ratios(OCCURRED, NEXUS_FD, &[POLL_ZERO, NEXUS_STALE]);
    common::print_ratios(THROUGHPUT, SET_HOOKS, &[SET_PLAIN, RUNNER_WAIT, THREADS]);
    print_rates(k.batch, k.window);

    // Not a criterion group: skipped for `--list`/`--test` invocations.
    if common::listing_or_smoke_test() {
        return;
    }
    let ov = interleaved_overhead(101, 20_000);
    common::print_overhead(
        "occurred_fd vs bare poll(fd, POLLIN, 0)",
        "nexus overhead",
        &ov,
    );
}
