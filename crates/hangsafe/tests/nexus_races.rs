//! The stale-event races of `hangsafe::nexus` on real fds, real runners and
//! real threads (R38–R46 in docs/races.md).

mod support;

use hangsafe::nexus::{Fired, Hooks, Ignored, Interest, Nexus, RunnerSet, SetError, Token};
use hangsafe::runner::{Builder, RunError};
use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::eventually;

/// A loop that records what it was asked to watch, and checks the hook
/// contract: never two hooks at once, never one inside another.
#[derive(Default)]
struct LoopState {
    fds: HashMap<Token, (RawFd, Interest)>,
    timers: HashMap<Token, Instant>,
    modified: Vec<Token>,
    calls: usize,
}

#[derive(Clone, Default)]
struct Recorder {
    state: Arc<Mutex<LoopState>>,
    in_call: Arc<AtomicBool>,
    /// A set to call back into from inside a hook (R46).
    reenter: Arc<Mutex<Option<Arc<RunnerSet<u32>>>>>,
    reentry_results: Arc<Mutex<Vec<bool>>>,
}

impl Recorder {
    fn call<R>(&self, f: impl FnOnce(&mut LoopState) -> R) -> R {
        assert!(
            !self.in_call.swap(true, Ordering::SeqCst),
            "a hook was called while another was running"
        );
        // Try to re-enter the set from inside the hook: it must refuse.
        if let Some(set) = self.reenter.lock().unwrap().clone() {
            let refused = matches!(set.drain(), Err(SetError::InHook))
                && !set.release(Token::from_parts(0, 1).unwrap())
                && set.state(Token::from_parts(0, 1).unwrap()).is_none();
            self.reentry_results.lock().unwrap().push(refused);
        }
        let r = f(&mut self.state.lock().unwrap());
        self.in_call.store(false, Ordering::SeqCst);
        r
    }

    fn fd_token(&self) -> (Token, RawFd) {
        let s = self.state.lock().unwrap();
        let (t, (fd, _)) = s.fds.iter().next().expect("the set's fd is registered");
        (*t, *fd)
    }

    fn timer(&self) -> Option<(Token, Instant)> {
        let s = self.state.lock().unwrap();
        s.timers
            .iter()
            .min_by_key(|(_, d)| **d)
            .map(|(t, d)| (*t, *d))
    }
}

impl Hooks for Recorder {
    fn fd_register(&mut self, fd: RawFd, i: Interest, t: Token) -> io::Result<()> {
        self.call(|s| {
            s.calls += 1;
            s.fds.insert(t, (fd, i));
        });
        Ok(())
    }
    fn fd_modify(&mut self, fd: RawFd, i: Interest, t: Token) -> io::Result<()> {
        self.call(|s| {
            s.calls += 1;
            s.fds.insert(t, (fd, i));
        });
        Ok(())
    }
    fn fd_deregister(&mut self, _fd: RawFd, t: Token) {
        self.call(|s| {
            s.calls += 1;
            s.fds.remove(&t);
        });
    }
    fn timeout_register(&mut self, d: Instant, t: Token) -> io::Result<()> {
        self.call(|s| {
            s.calls += 1;
            s.timers.insert(t, d);
        });
        Ok(())
    }
    fn timeout_modify(&mut self, d: Instant, t: Token) -> io::Result<()> {
        self.call(|s| {
            s.calls += 1;
            s.modified.push(t);
            if let Some(x) = s.timers.get_mut(&t) {
                *x = d;
            }
        });
        Ok(())
    }
}

fn pipe() -> (std::io::PipeReader, std::io::PipeWriter) {
    std::io::pipe().unwrap()
}

/// R38 + R40 on real fds: fd number N is registered, deregistered and
/// closed; a new pipe gets the same number and is registered in the same
/// slot. A late event for the old registration is stale; an event for the
/// new one is re-checked against the *new* file, so the old file's
/// readiness is not passed on.
#[test]
fn r38_r40_closed_and_reused_fd_number() {
    let mut hooks = Recorder::default();
    let mut nexus = Nexus::with_limits(u32::MAX, 1);
    let (r1, mut w1) = pipe();
    w1.write_all(b"old data").unwrap(); // the old file is readable
    let n = r1.as_raw_fd();
    let old = nexus
        .register_fd(&mut hooks, n, Interest::READABLE, 1)
        .unwrap();
    assert!(matches!(
        nexus.occurred_fd(old, n, libc::POLLIN),
        Ok(Fired::Fd { key: 1, .. })
    ));
    assert!(nexus.deregister_fd(&mut hooks, old));
    // Close the old file and reuse its number for a new pipe in one step
    // (dup2 closes what `n` was), so that no other thread of this test
    // binary can take the number in between.
    let n = r1.into_raw_fd();
    let (r2, mut w2) = pipe();
    // SAFETY: `n` is owned by this test (taken out of `r1` above) and `r2`
    // is open; dup2 atomically closes the old file at `n`.
    assert_eq!(unsafe { libc::dup2(r2.as_raw_fd(), n) }, n);
    drop(r2);
    // SAFETY: `n` now refers to the new pipe's read end, owned by nothing
    // else; it is closed once, when `_r2` drops.
    let _r2 = unsafe { OwnedFd::from_raw_fd(n) };
    let new = nexus
        .register_fd(&mut hooks, n, Interest::READABLE, 2)
        .unwrap();
    assert_eq!(new.index(), old.index(), "and the slot reused");
    // The loop's late event about the old file.
    assert_eq!(nexus.occurred_fd(old, n, libc::POLLIN), Err(Ignored::Stale));
    // The loop misattributes the old readiness to the new registration:
    // the re-check finds the new pipe empty.
    assert_eq!(
        nexus.occurred_fd(new, n, libc::POLLIN),
        Err(Ignored::NotReady)
    );
    w2.write_all(b"x").unwrap();
    match nexus.occurred_fd(new, n, 0) {
        Ok(Fired::Fd { key: 2, ready, .. }) => assert!(ready.is_readable()),
        other => panic!("{other:?}"),
    }
    drop(w1);
}

/// R43: a released runner's completion notice arrives after its slot was
/// reused by a new runner. Only the new runner's outcome is drained.
#[test]
fn r43_released_runner_yields_nothing_even_after_slot_reuse() {
    let set = RunnerSet::<u32>::with_limits(u32::MAX, 1).unwrap();
    let gate = Arc::new(AtomicBool::new(false));
    let g = Arc::clone(&gate);
    // Ignores its cancel until the gate opens: its notice comes late.
    let released = set
        .spawn(Builder::new(), move |_| {
            while !g.load(Ordering::Acquire) {
                std::thread::sleep(Duration::from_millis(1));
            }
            1
        })
        .unwrap();
    assert!(set.release(released));
    assert!(!set.release(released), "released once");
    assert_eq!(set.state(released), None);
    let kept = set.spawn(Builder::new(), |_| 2).unwrap();
    assert_eq!(kept.index(), released.index());
    gate.store(true, Ordering::Release);
    let mut got = Vec::new();
    assert!(eventually(Duration::from_secs(20), || {
        got.extend(set.drain().unwrap());
        !got.is_empty()
    }));
    // Give the released runner's worker time to finish, then drain again.
    std::thread::sleep(Duration::from_millis(20));
    got.extend(set.drain().unwrap());
    assert_eq!(got, vec![(kept, Ok(2))]);
    assert!(set.is_empty());
}

/// R43, the set itself gone: a worker that ends after its set was dropped
/// writes nothing anywhere (in particular not to whatever file reused the
/// eventfd's number).
#[test]
fn r43_worker_ending_after_the_set_is_dropped_writes_nowhere() {
    let set = RunnerSet::<u32>::new().unwrap();
    let efd = set.as_raw_fd();
    let gate = Arc::new(AtomicBool::new(false));
    let finished = Arc::new(AtomicBool::new(false));
    let started = Arc::new(AtomicBool::new(false));
    let (g, f, s) = (
        Arc::clone(&gate),
        Arc::clone(&finished),
        Arc::clone(&started),
    );
    set.spawn(Builder::new(), move |_| {
        s.store(true, Ordering::Release);
        while !g.load(Ordering::Acquire) {
            std::thread::sleep(Duration::from_millis(1));
        }
        f.store(true, Ordering::Release);
        3
    })
    .unwrap();
    // Released before it started, the work would never run (R1).
    assert!(eventually(Duration::from_secs(20), || started.load(Ordering::Acquire)));
    drop(set);
    // The eventfd's number is free again: a pipe takes it.
    let (mut r, w) = pipe();
    let reused = r.as_raw_fd() == efd || w.as_raw_fd() == efd;
    gate.store(true, Ordering::Release);
    assert!(eventually(Duration::from_secs(20), || finished.load(Ordering::Acquire)));
    std::thread::sleep(Duration::from_millis(20));
    // SAFETY-free check: the pipe must be empty (non-blocking read).
    let mut pfd = libc::pollfd {
        fd: r.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    assert_eq!(
        // SAFETY: one valid pollfd, zero timeout.
        unsafe { libc::poll(&mut pfd, 1, 0) },
        0,
        "something wrote to the reused fd"
    );
    drop(w);
    let mut buf = Vec::new();
    r.read_to_end(&mut buf).unwrap();
    assert!(buf.is_empty());
    eprintln!("eventfd number reused by the pipe: {reused}");
}

/// R44: a runner decided before the set could register its notice (it
/// finished between spawn and insert) is still drained, exactly once.
#[test]
fn r44_runner_decided_before_insert_is_drained_once() {
    let set = RunnerSet::<u32>::new().unwrap();
    let r = hangsafe::runner::spawn(|_| 9).unwrap();
    assert!(eventually(Duration::from_secs(20), || r.is_finished()));
    let t = set.insert(r).unwrap();
    let mut got: Vec<_> = set.drain().unwrap().collect();
    got.extend(set.drain().unwrap());
    assert_eq!(got, vec![(t, Ok(9))]);
    assert_eq!(set.drain().unwrap().len(), 0);
}

/// R46: hooks are never called concurrently or re-entrantly, and a hook
/// that calls back into the set is refused instead of deadlocking.
#[test]
fn r46_hooks_are_serialised_and_reentry_is_refused() {
    let set = Arc::new(RunnerSet::<u32>::new().unwrap());
    let hooks = Recorder::default();
    *hooks.reenter.lock().unwrap() = Some(Arc::clone(&set));
    set.attach(Box::new(hooks.clone())).unwrap();
    assert!(matches!(
        set.attach(Box::new(Recorder::default())),
        Err(SetError::Attachment)
    ));
    // Many threads churn registrations (deadlines) and deliver events.
    let threads: Vec<_> = (0..4)
        .map(|i| {
            let set = Arc::clone(&set);
            let hooks = hooks.clone();
            std::thread::spawn(move || {
                for j in 0..50u32 {
                    let d = Duration::from_millis(1 + ((i * 50 + j) % 7) as u64);
                    let t = set
                        .spawn(Builder::new().timeout(d), move |ctx| {
                            while !ctx.is_cancelled() {
                                std::thread::sleep(Duration::from_micros(200));
                            }
                            j
                        })
                        .unwrap();
                    if j % 3 == 0 {
                        set.release(t);
                    }
                    let (ft, fd) = hooks.fd_token();
                    let _ = set.occurred_fd(ft, fd, libc::POLLIN);
                    if let Some((tt, _)) = hooks.timer() {
                        let _ = set.occurred_timeout(tt);
                    }
                    let _ = set.drain().unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let results = hooks.reentry_results.lock().unwrap().clone();
    assert!(!results.is_empty());
    assert!(
        results.iter().all(|r| *r),
        "a re-entry from a hook was not refused"
    );
    *hooks.reenter.lock().unwrap() = None;
    assert!(set.detach().is_some());
}

/// R39 + R45 at the set level: an earlier deadline replaces the armed
/// timeout (withdrawn: modified to fire at once); the withdrawn timeout's
/// late event is dropped; an early event is dropped and renewed; the real
/// one applies the deadline.
#[test]
fn r39_r45_set_timeouts_follow_the_final_rule() {
    let set = RunnerSet::<u32>::new().unwrap();
    let hooks = Recorder::default();
    set.attach(Box::new(hooks.clone())).unwrap();
    assert!(hooks.timer().is_none(), "no deadline, no timeout");
    let hung = |ctx: &hangsafe::runner::Ctx<'_>| {
        while !ctx.is_cancelled() {
            std::thread::sleep(Duration::from_millis(1));
        }
        0
    };
    let late = set
        .spawn(Builder::new().timeout(Duration::from_secs(3600)), hung)
        .unwrap();
    let (t_late, _) = hooks.timer().unwrap();
    let soon = set
        .spawn(Builder::new().timeout(Duration::from_millis(300)), hung)
        .unwrap();
    let (t_soon, d_soon) = {
        let s = hooks.state.lock().unwrap();
        assert_eq!(s.modified, vec![t_late], "the later timeout was withdrawn");
        let (t, d) = s.timers.iter().find(|(t, _)| **t != t_late).unwrap();
        (*t, *d)
    };
    // The loop fires the withdrawn one (as asked): dropped.
    assert!(matches!(
        set.occurred_timeout(t_late),
        Err(SetError::Ignored(Ignored::Withdrawn))
    ));
    assert!(matches!(
        set.occurred_timeout(t_late),
        Err(SetError::Ignored(Ignored::Stale))
    ));
    hooks.state.lock().unwrap().timers.remove(&t_late);
    // Early: dropped and renewed under a new token for the same deadline.
    let renewed = match set.occurred_timeout(t_soon) {
        Err(SetError::Ignored(Ignored::NotDue { renewed })) => renewed,
        // The machine was slow enough for 300 ms to pass: fine, then the
        // deadline simply applied.
        Ok(()) => t_soon,
        other => panic!("{other:?}"),
    };
    if renewed != t_soon {
        assert_eq!(
            hooks.state.lock().unwrap().timers.get(&renewed),
            Some(&d_soon)
        );
        let wait = d_soon.saturating_duration_since(Instant::now());
        std::thread::sleep(wait + Duration::from_millis(5));
        set.occurred_timeout(renewed).unwrap();
    }
    // The cancel is decided when the timeout is handled, but the outcome is
    // queued by whichever thread decides it: wait for it (bounded), as a
    // slow machine (qemu-user) may need a moment.
    let mut out: Vec<_> = set.drain().unwrap().collect();
    let until = Instant::now() + Duration::from_secs(10);
    while out.is_empty() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(5));
        out = set.drain().unwrap().collect();
    }
    assert_eq!(out, vec![(soon, Err(RunError::TimedOut))]);
    assert_eq!(set.state(late), Some(hangsafe::runner::State::Running));
    set.release(late);
    drop(set);
}

/// Counts how many occurred_fd calls are dropped as stale across many
/// attach/detach cycles: every event for an old attachment is stale.
#[test]
fn r38_events_for_a_previous_attachment_are_stale() {
    let set = RunnerSet::<u32>::new().unwrap();
    let mut old = Vec::new();
    for _ in 0..20 {
        let hooks = Recorder::default();
        set.attach(Box::new(hooks.clone())).unwrap();
        let (t, fd) = hooks.fd_token();
        for (ot, ofd) in &old {
            assert!(matches!(
                set.occurred_fd(*ot, *ofd, libc::POLLIN),
                Err(SetError::Ignored(Ignored::Stale))
            ));
        }
        old.push((t, fd));
        set.detach().unwrap();
    }
    // Detached: still stale, never misdelivered.
    for (ot, ofd) in &old {
        assert!(matches!(
            set.occurred_fd(*ot, *ofd, libc::POLLIN),
            Err(SetError::Ignored(Ignored::Stale))
        ));
    }
}
