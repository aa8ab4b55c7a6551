//! The `RunnerSet` stress: 10,000 probes through an event loop, with
//! random release, cancel and deadline, and late, stale and garbage events
//! injected from the loop and from another thread.
//!
//! Two loops drive the same workload:
//!
//! * the **hooks path** (`r38_r39_r43_r44_r45_set_stress_epoll_hooks`): the
//!   set is attached to the epoll loop of `examples/epoll_loop.rs` through
//!   its `Hooks`; the loop reports fd events and due timers with
//!   `occurred_fd` / `occurred_timeout` and drains **only** after
//!   `occurred_fd` returned `Ok`: every outcome, timed-out ones included,
//!   must come through the set's fd, so a lost wake-up (R44) stalls the
//!   run and fails it. About 25 times per run the set is detached and
//!   attached again, so events of earlier attachments exist (R38) and
//!   withdrawn timeouts fire late (R39);
//! * the **poll path** (`r43_r44_set_stress_poll_loop`): `poll(2)` on the
//!   set's fd with `poll_timeout()`, drain when it is readable or a
//!   deadline is due.
//!
//! Checked: every non-released probe's outcome arrives exactly once and is
//! the one its work implies (`Ok(value)`, `TimedOut` for a hung probe with
//! a deadline, `Cancelled` for a cancelled one); nothing ever arrives for a
//! released probe (R43), even when it was released after its completion
//! notice was taken and before the drain; no token is yielded twice; at
//! most `window` probes are in the set at once; stale events return
//! `Err(SetError::Ignored(_))` and change nothing (no hook call, no runner,
//! no pending completion consumed) (R38, R39); an early timer event is
//! dropped and renewed (R45); the set is empty at the end, and the pool's
//! threads all retire.
//!
//! Knobs: `HANGSAFE_SET_PROBES` (probes per test, default 10,000),
//! `HANGSAFE_SET_WINDOW` (most probes in the set at once, default 200),
//! `HANGSAFE_SEED` (replays a run; printed).

mod support;

#[allow(dead_code)]
#[path = "../examples/epoll_loop.rs"]
mod epoll_loop;

use epoll_loop::{lock, EpollHooks, LoopState};
use hangsafe::nexus::{Ignored, RunnerSet, SetError, Token};
use hangsafe::runner::{Builder, Ctx, Pool, RunError, State};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::{eventually, Rng};

/// One stress at a time: two at once would only slow each other down on a
/// small machine.
static SERIAL: Mutex<()> = Mutex::new(());

/// No spawn and no outcome for this long fails the run (every probe is
/// decided within ~30 ms of being spawned, when the machine lets it run).
const STALL: Duration = Duration::from_secs(30);

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// What a probe's work does, and so what its outcome must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// Returns its value at once.
    Instant,
    /// Sleeps up to 2 ms (not cancellably), returns its value.
    Sleepy,
    /// Hangs until cancelled; its deadline (1–25 ms) cancels it.
    TimesOut,
    /// Hangs until cancelled; no deadline, the loop cancels it.
    Cancelled,
}

/// When the loop releases a probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fate {
    Kept,
    /// Right after the spawn.
    AtSpawn,
    /// Just before the next drain, after `occurred_fd` may have taken its
    /// completion notice: the strongest R43 case.
    BeforeDrain,
    /// At a random moment (possibly after its outcome arrived: then
    /// `release` must say the token is stale).
    Later,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Status {
    InFlight,
    Released,
    Arrived,
}

#[derive(Debug)]
struct Probe {
    kind: Kind,
    value: u64,
    status: Status,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Action {
    Cancel(Token),
    Release(Token),
}

#[derive(Default, Debug)]
struct Counts {
    spawned: usize,
    spawn_retries: usize,
    ok: usize,
    timed_out: usize,
    cancelled: usize,
    released: usize,
    released_before_drain: usize,
    release_after_arrival: usize,
    drains: usize,
    empty_drains: usize,
    turns: usize,
    reattached: usize,
    injected: usize,
    early_fires: usize,
    early_renewed: usize,
    timer_events: usize,
    withdrawn_events: usize,
    not_ready: usize,
    max_in_set: usize,
}

/// Tokens an injector may use, each stale by construction.
#[derive(Default)]
struct StaleTokens {
    /// fd tokens of earlier attachments.
    fd: Vec<Token>,
    /// Timeout tokens whose one event was delivered.
    timeout: Vec<Token>,
}

fn hang(ctx: &Ctx<'_>) -> u64 {
    while !ctx.is_cancelled() {
        let _ = hangsafe::cancel::sleep(Duration::from_millis(5));
    }
    u64::MAX
}

/// A token no registration of a small nexus can have (index ≥ 2²⁰).
fn garbage(rng: &mut Rng) -> Token {
    let index = (1 << 20) + rng.below(1 << 30) as u32;
    let generation = 1 + rng.below(u32::MAX as u64 - 1) as u32;
    Token::from_parts(index, generation).unwrap()
}

/// Threads of this process whose name starts with `prefix`.
fn named_threads(prefix: &str) -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("comm")).ok())
        .filter(|name| name.starts_with(prefix))
        .count()
}

/// Whether `fd` is readable now.
fn readable(fd: RawFd) -> bool {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, a zero timeout.
    unsafe { libc::poll(&mut p, 1, 0) == 1 }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Flavor {
    Hooks,
    Poll,
}

struct Stress {
    flavor: Flavor,
    seed: u64,
    rng: Rng,
    total: usize,
    window: usize,
    pool: Pool,
    probes: HashMap<Token, Probe>,
    in_flight: usize,
    actions: BinaryHeap<Reverse<(Instant, Action)>>,
    before_drain: Vec<Token>,
    c: Counts,
    last_progress: Instant,
}

impl Stress {
    fn new(flavor: Flavor) -> Stress {
        let total = env_usize("HANGSAFE_SET_PROBES", 10_000);
        let window = env_usize("HANGSAFE_SET_WINDOW", 200).max(1);
        let (rng, seed) = Rng::from_env_or_time("HANGSAFE_SEED");
        eprintln!("set stress ({flavor:?}): {total} probes, window {window}, HANGSAFE_SEED={seed}");
        // Cancelled work returns within milliseconds (it waits in
        // cancel::sleep), so the default abandon_after (250 ms) never
        // fires unless the machine stalls; the thread cap leaves room for
        // works still returning after their runners left the set.
        let pool = Pool::builder()
            .name(Stress::name_of(flavor))
            .max_threads(4 * window + 64)
            .idle_timeout(Duration::from_millis(200))
            .build();
        Stress {
            flavor,
            seed,
            rng,
            total,
            window,
            pool,
            probes: HashMap::new(),
            in_flight: 0,
            actions: BinaryHeap::new(),
            before_drain: Vec::new(),
            c: Counts::default(),
            last_progress: Instant::now(),
        }
    }

    /// The pool's thread-name prefix (thread names are cut to 15 bytes).
    fn name_of(flavor: Flavor) -> &'static str {
        match flavor {
            Flavor::Hooks => "stress-hooks",
            Flavor::Poll => "stress-poll",
        }
    }

    fn pool_name(&self) -> String {
        format!("{}-", Stress::name_of(self.flavor))
    }

    fn done(&self) -> bool {
        self.c.spawned == self.total && self.in_flight == 0
    }

    /// Spawns up to the window (at most 64 per turn, to interleave).
    fn spawn_some(&mut self, set: &RunnerSet<u64>) {
        let seed = self.seed;
        for _ in 0..64 {
            if self.c.spawned == self.total || self.in_flight >= self.window {
                break;
            }
            let r = self.rng.below(100);
            let kind = match r {
                0..35 => Kind::Instant,
                35..50 => Kind::Sleepy,
                50..75 => Kind::TimesOut,
                _ => Kind::Cancelled,
            };
            let value = self.rng.next() >> 1;
            let mut b = Builder::new().pool(&self.pool);
            match kind {
                Kind::TimesOut => {
                    b = b.timeout(Duration::from_micros(1000 + self.rng.below(24_000)));
                }
                Kind::Instant | Kind::Sleepy if self.rng.below(3) == 0 => {
                    // Never reached: arms (and replaces) the loop's timer.
                    b = b.timeout(Duration::from_secs(120));
                }
                _ => {}
            }
            let nap = Duration::from_micros(self.rng.below(2000));
            let spawned = match kind {
                Kind::Instant => set.spawn(b, move |_| value),
                Kind::Sleepy => set.spawn(b, move |_| {
                    std::thread::sleep(nap);
                    value
                }),
                Kind::TimesOut | Kind::Cancelled => set.spawn(b, hang),
            };
            let token = match spawned {
                Ok(t) => t,
                // Threads of released or timed-out runners may still be
                // returning: try again next turn.
                // (A run where it keeps failing stalls, and fails.)
                Err(SetError::Spawn(_)) => {
                    self.c.spawn_retries += 1;
                    break;
                }
                Err(e) => panic!("spawn: {e} (seed {seed})"),
            };
            self.c.spawned += 1;
            self.last_progress = Instant::now();
            let old = self.probes.insert(
                token,
                Probe {
                    kind,
                    value,
                    status: Status::InFlight,
                },
            );
            assert!(old.is_none(), "token {token} issued twice (seed {seed})");
            self.in_flight += 1;
            let now = Instant::now();
            if kind == Kind::Cancelled {
                let at = now + Duration::from_micros(self.rng.below(15_000));
                self.actions.push(Reverse((at, Action::Cancel(token))));
            }
            let fate = match self.rng.below(100) {
                0..5 => Fate::AtSpawn,
                5..10 if kind == Kind::Instant => Fate::BeforeDrain,
                10..16 => Fate::Later,
                _ => Fate::Kept,
            };
            match fate {
                Fate::Kept => {}
                Fate::AtSpawn => self.release(set, token),
                Fate::BeforeDrain => self.before_drain.push(token),
                Fate::Later => {
                    let at = now + Duration::from_micros(self.rng.below(30_000));
                    self.actions.push(Reverse((at, Action::Release(token))));
                }
            }
        }
        let len = set.len();
        self.c.max_in_set = self.c.max_in_set.max(len);
        assert!(
            len <= self.window,
            "{len} runners in the set, window {} (seed {seed})",
            self.window
        );
    }

    fn release(&mut self, set: &RunnerSet<u64>, token: Token) {
        let seed = self.seed;
        let p = self.probes.get_mut(&token).expect("our token");
        match p.status {
            Status::InFlight => {
                assert!(set.release(token), "release of live {token} (seed {seed})");
                p.status = Status::Released;
                self.in_flight -= 1;
                self.c.released += 1;
            }
            Status::Arrived | Status::Released => {
                assert!(
                    !set.release(token),
                    "release of stale {token} succeeded (seed {seed})"
                );
                self.c.release_after_arrival += usize::from(p.status == Status::Arrived);
            }
        }
    }

    /// Runs the actions due at `now`; returns the next one's time.
    fn run_actions(&mut self, set: &RunnerSet<u64>, now: Instant) -> Option<Instant> {
        let seed = self.seed;
        while let Some(&Reverse((at, action))) = self.actions.peek() {
            if at > now {
                return Some(at);
            }
            self.actions.pop();
            match action {
                Action::Release(t) => self.release(set, t),
                Action::Cancel(t) => {
                    let st = set.cancel(t);
                    match self.probes[&t].status {
                        // It hangs until cancelled: the cancel takes effect.
                        Status::InFlight => assert_eq!(
                            st,
                            Some(State::Cancelled),
                            "cancel of hung {t} (seed {seed})"
                        ),
                        Status::Released => assert_eq!(st, None, "cancel of released {t}"),
                        Status::Arrived => panic!("{t} arrived before its cancel (seed {seed})"),
                    }
                }
            }
        }
        None
    }

    /// Releases the probes meant to go just before a drain.
    fn release_before_drain(&mut self, set: &RunnerSet<u64>) {
        for t in std::mem::take(&mut self.before_drain) {
            if self.probes[&t].status == Status::InFlight {
                self.c.released_before_drain += 1;
            }
            self.release(set, t);
        }
    }

    /// Drains and checks every outcome.
    fn drain(&mut self, set: &RunnerSet<u64>) {
        let seed = self.seed;
        self.release_before_drain(set);
        self.c.drains += 1;
        let mut n = 0;
        for (t, out) in set.drain().expect("drain") {
            n += 1;
            let p = self
                .probes
                .get_mut(&t)
                .unwrap_or_else(|| panic!("foreign token {t} yielded (seed {seed})"));
            match p.status {
                Status::InFlight => {}
                Status::Released => {
                    panic!("released {t} yielded {out:?} (R43, seed {seed})")
                }
                Status::Arrived => panic!("{t} yielded twice: {out:?} (seed {seed})"),
            }
            let want = match p.kind {
                Kind::Instant | Kind::Sleepy => Ok(p.value),
                Kind::TimesOut => Err(RunError::TimedOut),
                Kind::Cancelled => Err(RunError::Cancelled),
            };
            assert_eq!(out, want, "{t} ({:?}) (seed {seed})", p.kind);
            match out {
                Ok(_) => self.c.ok += 1,
                Err(RunError::TimedOut) => self.c.timed_out += 1,
                Err(_) => self.c.cancelled += 1,
            }
            p.status = Status::Arrived;
            self.in_flight -= 1;
            self.last_progress = Instant::now();
        }
        self.c.empty_drains += usize::from(n == 0);
    }

    /// Fails the run if nothing was spawned and nothing arrived for too
    /// long, saying whether a drain would have found outcomes (a lost
    /// wake-up) or not.
    fn check_stall(&mut self, set: &RunnerSet<u64>) {
        if self.done() || self.last_progress.elapsed() < STALL {
            return;
        }
        let waiting: Vec<_> = set.drain().expect("drain").map(|(t, _)| t).collect();
        panic!(
            "no progress for {STALL:?} with {} probes in flight; a drain now yields {} \
             ({}); pool {:?}; counts {:?} (seed {})",
            self.in_flight,
            waiting.len(),
            if waiting.is_empty() {
                "the runners are not decided"
            } else {
                "a lost wake-up, R44"
            },
            self.pool.metrics(),
            self.c,
            self.seed
        );
    }

    /// The end: nothing left anywhere, the pool's threads retire.
    fn finish(mut self, set: RunnerSet<u64>) {
        let seed = self.seed;
        self.drain(&set);
        assert_eq!(self.in_flight, 0);
        assert_eq!(set.len(), 0, "runners left in the set (seed {seed})");
        let c = &self.c;
        eprintln!("set stress ({:?}): {c:?}", self.flavor);
        assert_eq!(c.spawned, self.total);
        assert_eq!(c.ok + c.timed_out + c.cancelled + c.released, self.total);
        if self.total >= 1000 {
            // The random mix really happened.
            assert!(c.ok > 0 && c.timed_out > 0 && c.cancelled > 0 && c.released > 0);
            assert!(c.released_before_drain > 0, "{c:?}");
        }
        drop(set);
        let pool = &self.pool;
        assert!(
            eventually(Duration::from_secs(30), || {
                let m = pool.metrics();
                m.live_contexts == 0 && m.threads_abandoned == 0
            }),
            "works still running: {:?} (seed {seed})",
            pool.metrics()
        );
        let m = pool.metrics();
        assert_eq!(m.runners_spawned, self.total as u64, "{m:?}");
        assert!(
            eventually(Duration::from_secs(30), || pool.metrics().threads_alive
                == 0),
            "pool threads did not retire: {:?}",
            pool.metrics()
        );
        // Every thread this test created is gone (by name: the other
        // test's thread and the runner timer thread come and go
        // independently of this one).
        let prefix = self.pool_name();
        assert!(
            eventually(Duration::from_secs(10), || named_threads(&prefix) == 0),
            "threads leaked: {} named {prefix}*",
            named_threads(&prefix)
        );
    }
}

/// The concurrent injector: stale and garbage events from another thread,
/// arbitrarily late. Each must be dropped as stale.
fn inject_from_another_thread(
    set: &RunnerSet<u64>,
    stale: &Mutex<StaleTokens>,
    stop: &AtomicBool,
    count: &AtomicUsize,
    seed: u64,
) {
    let mut rng = Rng::new(seed ^ 0x5EED);
    let fd = set.as_raw_fd();
    while !stop.load(Ordering::Relaxed) {
        let (t, is_fd) = {
            let s = stale.lock().unwrap();
            match rng.below(4) {
                0 if !s.fd.is_empty() => (s.fd[rng.below(s.fd.len() as u64) as usize], true),
                1 if !s.timeout.is_empty() => {
                    (s.timeout[rng.below(s.timeout.len() as u64) as usize], false)
                }
                k => (garbage(&mut rng), k % 2 == 0),
            }
        };
        let r = if is_fd {
            set.occurred_fd(t, fd, libc::POLLIN)
        } else {
            set.occurred_timeout(t)
        };
        assert!(
            matches!(r, Err(SetError::Ignored(Ignored::Stale))),
            "late {} event for {t} from another thread: {r:?} (seed {seed})",
            if is_fd { "fd" } else { "timeout" }
        );
        count.fetch_add(1, Ordering::Relaxed);
        std::thread::sleep(Duration::from_micros(300));
    }
}

/// R38–R40 and R45 from the loop's own thread, where "changes nothing" can
/// be checked exactly: no hook call, no runner gone, no pending completion
/// consumed.
fn inject_from_the_loop(
    st: &mut Stress,
    set: &RunnerSet<u64>,
    state: &Mutex<LoopState>,
    calls: &AtomicUsize,
    stale: &Mutex<StaleTokens>,
    other_fd: RawFd,
) {
    let seed = st.seed;
    let set_fd = set.as_raw_fd();
    let (fd_tokens, timers) = {
        let s = lock(state);
        (s.fd_tokens(), s.timer_tokens())
    };
    let pick = st.rng.below(6);
    let calls_before = calls.load(Ordering::Relaxed);
    let len_before = set.len();
    let readable_before = readable(set_fd);
    /// Which drop reason an injection must get.
    type Want = fn(&Ignored) -> bool;
    let (what, r, want): (&str, Result<(), SetError>, Want) = match pick {
        // R38: an fd event of an earlier attachment.
        0 => {
            let t = {
                let s = stale.lock().unwrap();
                if s.fd.is_empty() {
                    return;
                }
                s.fd[st.rng.below(s.fd.len() as u64) as usize]
            };
            let r = set.occurred_fd(t, set_fd, libc::POLLIN);
            ("old fd token", r, |i| *i == Ignored::Stale)
        }
        // R39: a timeout event delivered already, delivered again.
        1 => {
            let t = {
                let s = stale.lock().unwrap();
                if s.timeout.is_empty() {
                    return;
                }
                s.timeout[st.rng.below(s.timeout.len() as u64) as usize]
            };
            let r = set.occurred_timeout(t);
            ("spent timeout token", r, |i| *i == Ignored::Stale)
        }
        // Garbage, both kinds.
        2 => {
            let r = set.occurred_fd(garbage(&mut st.rng), set_fd, libc::POLLIN);
            ("garbage fd token", r, |i| *i == Ignored::Stale)
        }
        3 => {
            let r = set.occurred_timeout(garbage(&mut st.rng));
            ("garbage timeout token", r, |i| *i == Ignored::Stale)
        }
        // R40: the live token with another fd (a closed and reused number).
        4 => {
            let Some(&(t, _)) = fd_tokens.first() else {
                return;
            };
            let r = set.occurred_fd(t, other_fd, libc::POLLIN);
            ("live fd token, wrong fd", r, |i| {
                matches!(i, Ignored::FdMismatch { .. })
            })
        }
        // R45: the armed timer delivered before its deadline.
        _ => {
            let Some(&(t, at)) = timers.iter().max_by_key(|(_, at)| *at) else {
                return;
            };
            // Often due within microseconds (hundreds of deadlines are
            // 1–25 ms away): then it may well be due when it arrives.
            if at <= Instant::now() {
                return;
            }
            lock(state).forget_timer(t);
            let r = set.occurred_timeout(t);
            stale.lock().unwrap().timeout.push(t);
            st.c.early_fires += 1;
            match r {
                Err(SetError::Ignored(Ignored::NotDue { renewed })) => {
                    assert_ne!(renewed, t);
                    st.c.early_renewed += 1;
                    let s = lock(state);
                    assert!(
                        s.timer_tokens().iter().any(|(r, _)| *r == renewed),
                        "the renewed timer {renewed} reached the loop (seed {seed})"
                    );
                }
                // A withdrawn timer's last event; or the deadline passed
                // on a slow machine: it simply applied.
                Err(SetError::Ignored(Ignored::Withdrawn)) => {}
                Ok(()) => assert!(Instant::now() >= at, "fired before {at:?}"),
                other => panic!("early event for armed {t}: {other:?} (seed {seed})"),
            }
            return;
        }
    };
    st.c.injected += 1;
    match &r {
        Err(SetError::Ignored(i)) if want(i) => {}
        other => panic!("{what}: {other:?} (seed {seed})"),
    }
    assert_eq!(
        calls.load(Ordering::Relaxed),
        calls_before,
        "{what}: a dropped event called a hook (seed {seed})"
    );
    assert_eq!(
        set.len(),
        len_before,
        "{what}: changed the set (seed {seed})"
    );
    if readable_before {
        assert!(
            readable(set_fd),
            "{what}: a dropped event consumed completions (seed {seed})"
        );
    }
}

/// The hooks path: the epoll loop of `examples/epoll_loop.rs`.
fn run_hooks() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let mut st = Stress::new(Flavor::Hooks);
    let seed = st.seed;
    let set = RunnerSet::<u64>::new().unwrap();
    let state = LoopState::new().unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let hooks = || EpollHooks {
        state: Arc::clone(&state),
        calls: Arc::clone(&calls),
    };
    set.attach(Box::new(hooks())).unwrap();
    let stale = Mutex::new(StaleTokens::default());
    let stop = AtomicBool::new(false);
    let injected_elsewhere = AtomicUsize::new(0);
    // Another open fd, for events that name the wrong one (R40).
    let (other, _other_w) = support::pipe();

    std::thread::scope(|s| {
        s.spawn(|| inject_from_another_thread(&set, &stale, &stop, &injected_elsewhere, seed));
        // Stop the injector even if the loop panics.
        struct Stop<'a>(&'a AtomicBool);
        impl Drop for Stop<'_> {
            fn drop(&mut self) {
                self.0.store(true, Ordering::Relaxed);
            }
        }
        let _stop = Stop(&stop);

        // About 25 reattachments per run, however many turns it takes.
        let every = (st.total / 25).max(20) as u64;
        let mut next_reattach = (every / 2 + st.rng.below(every)) as usize;
        while !st.done() {
            st.c.turns += 1;
            st.spawn_some(&set);
            let now = Instant::now();
            let next_action = st.run_actions(&set, now);
            let (epfd, timer) = {
                let mut s = lock(&state);
                (s.epoll_fd(), s.next_deadline())
            };
            let mut wake = now + Duration::from_millis(50);
            for t in [timer, next_action].into_iter().flatten() {
                wake = wake.min(t);
            }
            let mut woke = false;
            for (bits, ev) in epoll_loop::wait(epfd, epoll_loop::timeout_ms(wake)) {
                let token = Token::from_u64(bits).expect("our tokens");
                let fd = lock(&state).fd_of(token);
                match set.occurred_fd(token, fd, epoll_loop::poll_bits(ev)) {
                    Ok(()) => woke = true,
                    Err(SetError::Ignored(Ignored::NotReady)) => st.c.not_ready += 1,
                    other => panic!("loop's fd event {token}: {other:?} (seed {seed})"),
                }
            }
            let due = lock(&state).take_due(Instant::now());
            for t in due {
                let r = set.occurred_timeout(t);
                stale.lock().unwrap().timeout.push(t);
                match r {
                    // The deadlines applied; their notices come through
                    // the fd like every other.
                    Ok(()) => st.c.timer_events += 1,
                    Err(SetError::Ignored(Ignored::Withdrawn)) => st.c.withdrawn_events += 1,
                    other => panic!("loop's timer {t}: {other:?} (seed {seed})"),
                }
            }
            // Drain only when the set's fd said so: every outcome, timed-out
            // ones included, must come through it, so a lost wake-up (R44)
            // stalls the run.
            if woke {
                st.drain(&set);
            }
            if st.rng.below(4) == 0 {
                inject_from_the_loop(&mut st, &set, &state, &calls, &stale, other.as_raw_fd());
            }
            if st.c.spawned >= next_reattach {
                next_reattach = st.c.spawned + (every / 2 + st.rng.below(every)) as usize;
                let old: Vec<Token> = lock(&state).fd_tokens().iter().map(|(t, _)| *t).collect();
                assert_eq!(old.len(), 1, "one fd registration while attached");
                drop(set.detach().expect("attached"));
                assert!(
                    lock(&state).fd_tokens().is_empty(),
                    "detach deregistered the fd"
                );
                stale.lock().unwrap().fd.extend(old);
                set.attach(Box::new(hooks())).unwrap();
                st.c.reattached += 1;
            }
            st.check_stall(&set);
        }
        // Deliver what the loop still has armed (withdrawn or not): each is
        // accepted once, then stale.
        drop(set.detach());
        let left = lock(&state).timer_tokens();
        for (t, _) in left {
            lock(&state).forget_timer(t);
            let r = set.occurred_timeout(t);
            assert!(
                matches!(r, Err(SetError::Ignored(Ignored::Withdrawn))),
                "detached set's timer {t}: {r:?}"
            );
            assert!(matches!(
                set.occurred_timeout(t),
                Err(SetError::Ignored(Ignored::Stale))
            ));
        }
        stop.store(true, Ordering::Relaxed);
    });
    let elsewhere = injected_elsewhere.load(Ordering::Relaxed);
    eprintln!(
        "set stress (Hooks): {} stale events injected by the loop, {elsewhere} by another thread, \
         {} hook calls, {} reattachments",
        st.c.injected,
        calls.load(Ordering::Relaxed),
        st.c.reattached
    );
    if st.total >= 1000 {
        assert!(st.c.injected > 0 && elsewhere > 0 && st.c.reattached > 0);
    }
    st.finish(set);
}

/// The plain path: `poll(2)` on the set's fd.
fn run_poll() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let mut st = Stress::new(Flavor::Poll);
    let set = RunnerSet::<u64>::new().unwrap();
    while !st.done() {
        st.c.turns += 1;
        st.spawn_some(&set);
        let now = Instant::now();
        let next_action = st.run_actions(&set, now);
        let deadline = set.poll_timeout();
        let mut wait = Duration::from_millis(50);
        for d in [
            deadline,
            next_action.map(|a| a.saturating_duration_since(now)),
        ]
        .into_iter()
        .flatten()
        {
            wait = wait.min(d);
        }
        let mut p = libc::pollfd {
            fd: set.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = wait.as_nanos().div_ceil(1_000_000) as i32;
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut p, 1, ms) };
        let due = set.poll_timeout() == Some(Duration::ZERO);
        if n == 1 || due {
            st.drain(&set);
        }
        st.check_stall(&set);
    }
    st.finish(set);
}

#[test]
fn r38_r39_r43_r44_r45_set_stress_epoll_hooks() {
    run_hooks();
}

#[test]
fn r43_r44_set_stress_poll_loop() {
    run_poll();
}
