//! A hand-written `epoll` loop driving a [`RunnerSet`] through the
//! **hooks** API, the way libxl drives an application's event loop.
//!
//! The loop owns an epoll instance and a timer heap. It hands the set a
//! [`Hooks`] implementation ([`EpollHooks`]) through
//! [`RunnerSet::attach`]; the set uses it to register its completion fd
//! (`epoll_ctl` ADD/MOD/DEL, with the set's [`Token`] as epoll's `u64`)
//! and its earliest deadline (a timer keyed by token). The loop then:
//!
//! 1. sleeps in `epoll_wait` until an fd event or the earliest timer;
//! 2. reports each fd event with [`RunnerSet::occurred_fd`] and each due
//!    timer with [`RunnerSet::occurred_timeout`], passing back the token it
//!    was given. Late or stale reports are harmless: the set drops them
//!    (`Err(SetError::Ignored(_))`);
//! 3. calls [`RunnerSet::drain`] for the outcomes.
//!
//! The hooks are `Send` and run **under the set's lock**, on whichever
//! thread called into the set. So the epoll fd and the timer heap live in
//! an `Arc<Mutex<LoopState>>` shared by the hooks and the loop, and the
//! loop never holds that mutex while it calls into the set (the set's lock
//! is taken first, then the hooks take the loop's: the other order would
//! deadlock). A hook never calls back into the set.
//!
//! ```text
//! cargo run -p hangsafe --example epoll_loop -- 600
//! ```
// Also compiled into tests/event_loops.rs through #[path], which uses its
// items: they are public for that crate.
#![allow(unreachable_pub)]

use hangsafe::nexus::{Hooks, Interest, RunnerSet, SetError, Token};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

#[path = "probes/mod.rs"]
mod probes;

pub use probes::Summary;

/// The loop gives up (returning an incomplete summary) after this long.
const LIMIT: Duration = Duration::from_secs(30);

/// The event loop's own state, shared by the loop and its [`EpollHooks`].
pub struct LoopState {
    epoll: OwnedFd,
    /// The fd registered under each live fd token (epoll reports only the
    /// token; `occurred_fd` wants the fd too, as libxl's callback does).
    fds: HashMap<Token, RawFd>,
    /// Armed timers, earliest first. Entries whose token was re-armed or
    /// has fired are skipped when they surface (lazy deletion).
    heap: BinaryHeap<Reverse<(Instant, Token)>>,
    /// The current deadline of each armed timer.
    timers: HashMap<Token, Instant>,
}

impl std::fmt::Debug for LoopState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoopState").finish_non_exhaustive()
    }
}

impl LoopState {
    /// A new epoll instance with no registrations.
    pub fn new() -> io::Result<Arc<Mutex<LoopState>>> {
        // SAFETY: epoll_create1 takes no pointers; the result is checked.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Arc::new(Mutex::new(LoopState {
            // SAFETY: a fresh descriptor owned by nobody else.
            epoll: unsafe { OwnedFd::from_raw_fd(fd) },
            fds: HashMap::new(),
            heap: BinaryHeap::new(),
            timers: HashMap::new(),
        })))
    }

    fn ctl(&self, op: libc::c_int, fd: RawFd, events: u32, token: Token) -> io::Result<()> {
        let mut ev = libc::epoll_event {
            events,
            u64: token.as_u64(),
        };
        // SAFETY: `ev` is a valid epoll_event for the duration of the call
        // (ignored by EPOLL_CTL_DEL); both fds are plain integers the
        // kernel checks.
        let r = unsafe { libc::epoll_ctl(self.epoll.as_raw_fd(), op, fd, &mut ev) };
        if r < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }

    /// The earliest armed deadline.
    pub fn next_deadline(&mut self) -> Option<Instant> {
        while let Some(&Reverse((at, t))) = self.heap.peek() {
            if self.timers.get(&t) == Some(&at) {
                return Some(at);
            }
            self.heap.pop();
        }
        None
    }

    /// Removes and returns the timers due at `now`. Each fires once: its
    /// token is forgotten here, as the hooks contract asks.
    pub fn take_due(&mut self, now: Instant) -> Vec<Token> {
        let mut due = Vec::new();
        while let Some(&Reverse((at, t))) = self.heap.peek() {
            if at > now {
                break;
            }
            self.heap.pop();
            if self.timers.get(&t) == Some(&at) {
                self.timers.remove(&t);
                due.push(t);
            }
        }
        due
    }

    /// The fd registered under `t`, or -1 if none is (the set drops the
    /// event as stale either way).
    pub fn fd_of(&self, t: Token) -> RawFd {
        self.fds.get(&t).copied().unwrap_or(-1)
    }

    /// The live fd registrations.
    pub fn fd_tokens(&self) -> Vec<(Token, RawFd)> {
        self.fds.iter().map(|(t, fd)| (*t, *fd)).collect()
    }

    /// The armed timers.
    pub fn timer_tokens(&self) -> Vec<(Token, Instant)> {
        self.timers.iter().map(|(t, at)| (*t, *at)).collect()
    }

    /// Forgets the timer `t`, as if it had fired.
    pub fn forget_timer(&mut self, t: Token) -> Option<Instant> {
        self.timers.remove(&t)
    }

    /// The epoll fd, for `epoll_wait`.
    pub fn epoll_fd(&self) -> RawFd {
        self.epoll.as_raw_fd()
    }
}

/// Locks the loop state (a panicking holder does not poison the example).
pub fn lock(s: &Mutex<LoopState>) -> MutexGuard<'_, LoopState> {
    s.lock().unwrap_or_else(|p| p.into_inner())
}

/// The set's view of the loop: registrations go to epoll and the timer
/// heap. Counts its calls, so tests can check that a dropped event caused
/// none.
pub struct EpollHooks {
    /// The state shared with the loop.
    pub state: Arc<Mutex<LoopState>>,
    /// Hook calls so far.
    pub calls: Arc<std::sync::atomic::AtomicUsize>,
}

impl std::fmt::Debug for EpollHooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EpollHooks").finish_non_exhaustive()
    }
}

impl EpollHooks {
    fn enter(&self) -> MutexGuard<'_, LoopState> {
        self.calls
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        lock(&self.state)
    }
}

impl Hooks for EpollHooks {
    fn fd_register(&mut self, fd: RawFd, interest: Interest, token: Token) -> io::Result<()> {
        let mut s = self.enter();
        s.ctl(libc::EPOLL_CTL_ADD, fd, interest.to_epoll(), token)?;
        s.fds.insert(token, fd);
        Ok(())
    }

    fn fd_modify(&mut self, fd: RawFd, interest: Interest, token: Token) -> io::Result<()> {
        let mut s = self.enter();
        s.ctl(libc::EPOLL_CTL_MOD, fd, interest.to_epoll(), token)?;
        s.fds.insert(token, fd);
        Ok(())
    }

    fn fd_deregister(&mut self, fd: RawFd, token: Token) {
        let mut s = self.enter();
        if let Err(e) = s.ctl(libc::EPOLL_CTL_DEL, fd, 0, token) {
            eprintln!("epoll_ctl(DEL, {fd}): {e}");
        }
        s.fds.remove(&token);
    }

    fn timeout_register(&mut self, deadline: Instant, token: Token) -> io::Result<()> {
        let mut s = self.enter();
        s.timers.insert(token, deadline);
        s.heap.push(Reverse((deadline, token)));
        Ok(())
    }

    fn timeout_modify(&mut self, deadline: Instant, token: Token) -> io::Result<()> {
        let mut s = self.enter();
        // A timer that fired already is gone: ignore it, as the contract
        // says (its `occurred_timeout` is on its way).
        if let Some(at) = s.timers.get_mut(&token) {
            *at = deadline;
            s.heap.push(Reverse((deadline, token)));
        }
        Ok(())
    }
}

/// epoll's event bits as `poll(2)` `revents` (the kernel uses the same
/// values for the bits both have).
pub fn poll_bits(events: u32) -> i16 {
    let mut r = 0;
    for (e, p) in [
        (libc::EPOLLIN, libc::POLLIN),
        (libc::EPOLLOUT, libc::POLLOUT),
        (libc::EPOLLPRI, libc::POLLPRI),
        (libc::EPOLLERR, libc::POLLERR),
        (libc::EPOLLHUP, libc::POLLHUP),
    ] {
        if events & e as u32 != 0 {
            r |= p;
        }
    }
    r
}

/// `epoll_wait`'s timeout in milliseconds for a wake-up at `at`, rounded
/// up (waking early only costs a turn of the loop, but rounding down to 0
/// would spin).
pub fn timeout_ms(at: Instant) -> i32 {
    let d = at.saturating_duration_since(Instant::now());
    d.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128) as i32
}

/// Waits for up to 16 events; returns `(token bits, epoll events)` pairs.
pub fn wait(epfd: RawFd, timeout_ms: i32) -> Vec<(u64, u32)> {
    let mut evs = [libc::epoll_event { events: 0, u64: 0 }; 16];
    // SAFETY: `evs` has room for the 16 events the kernel may write.
    let n = unsafe { libc::epoll_wait(epfd, evs.as_mut_ptr(), evs.len() as i32, timeout_ms) };
    if n < 0 {
        let e = io::Error::last_os_error();
        assert_eq!(e.kind(), io::ErrorKind::Interrupted, "epoll_wait: {e}");
        return Vec::new();
    }
    evs[..n as usize]
        .iter()
        .map(|ev| {
            // Copies out of the (packed on x86_64) struct.
            let (bits, events) = (ev.u64, ev.events);
            (bits, events)
        })
        .collect()
}

/// Spawns `probes` probes of the mix in `probes/mod.rs` into a set
/// attached to a fresh epoll loop, runs the loop until every awaited
/// outcome has arrived (or 30 s passed), and reports what arrived.
pub fn run(probes: usize) -> Summary {
    let set = RunnerSet::<u64>::new().expect("eventfd");
    let state = LoopState::new().expect("epoll_create1");
    let hooks = EpollHooks {
        state: Arc::clone(&state),
        calls: Default::default(),
    };
    set.attach(Box::new(hooks)).expect("attach");
    let mut plan = probes::Plan::spawn(&set, probes);
    let limit = Instant::now() + LIMIT;

    while !plan.complete() && Instant::now() < limit {
        // Never hold the loop's mutex while calling into the set.
        let (epfd, wake_at) = {
            let mut s = lock(&state);
            (
                s.epoll_fd(),
                s.next_deadline().map_or(limit, |d| d.min(limit)),
            )
        };
        let events = wait(epfd, timeout_ms(wake_at));
        plan.wakeups += 1;
        for (bits, ev) in events {
            let Some(token) = Token::from_u64(bits) else {
                continue;
            };
            let fd = lock(&state).fd_of(token);
            match set.occurred_fd(token, fd, poll_bits(ev)) {
                Ok(()) => {}
                Err(SetError::Ignored(_)) => plan.ignored += 1,
                Err(e) => panic!("occurred_fd: {e}"),
            }
        }
        let due = lock(&state).take_due(Instant::now());
        for token in due {
            match set.occurred_timeout(token) {
                Ok(()) => {}
                Err(SetError::Ignored(_)) => plan.ignored += 1,
                Err(e) => panic!("occurred_timeout: {e}"),
            }
        }
        plan.record(set.drain().expect("drain"));
        plan.cancel_hung(&set);
    }
    let summary = plan.finish(&set);
    // Deregisters the fd and withdraws the timer through the hooks, which
    // are handed back; the epoll fd closes with the last `Arc`.
    drop(set.detach());
    summary
}

fn main() {
    let n = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(120);
    let s = run(n);
    probes::print("epoll loop (hooks)", &s);
    assert!(s.complete && s.left == 0);
}
